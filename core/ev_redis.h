/*
 * ev_redis.h - hiredis's async API on mxguard's event loop (core/ev.h),
 * as hiredis's own adapters do it for ae or libevent: hiredis asks for
 * read and write interest through hooks, the loop calls
 * redisAsyncHandleRead/Write when the socket is ready.
 *
 * ev_redis_attach() once per redisAsyncContext, right after
 * redisAsyncConnect*(); the adapter's state is freed by hiredis's cleanup
 * hook when the context goes (redisAsyncFree, or the connection closing),
 * so the caller frees nothing of it.  Timeouts are not the adapter's:
 * hiredis 0.14 has none for async commands; the caller keeps its own
 * timers (policy/redis.c).
 */
#ifndef MXG_EV_REDIS_H
#define MXG_EV_REDIS_H

#include <hiredis/async.h>

#include "core/ev.h"

/* 0, or -1 (out of memory, or the context has an adapter already). */
int	ev_redis_attach(struct ev_loop *, redisAsyncContext *);

#endif
