/*
 * ev_redis.c - hiredis async adapter for core/ev.h (see ev_redis.h).
 *
 * A context freed in a forked copy of the process (redis_free() in a
 * worker that inherited the parent's client) only forgets its fd: the
 * epoll instance is shared across fork().
 *
 * The other subtlety: redisAsyncHandleRead() may end the context (the server
 * closed the connection, a callback freed it), and hiredis then calls the
 * cleanup hook from inside it.  The adapter's state must outlive that
 * call, so cleanup only marks it dead while the fd callback runs, and the
 * fd callback frees it on the way out.
 */
#include <stdlib.h>
#include <unistd.h>

#include "core/ev_redis.h"

struct ev_redis {
	struct ev_loop		*loop;
	redisAsyncContext	*ac;
	int			 fd;
	int			 mask;
	pid_t			 pid;	/* the process that attached */
	int			 busy;	/* inside on_fd() */
	int			 dead;	/* cleanup came while busy */
};

static void
on_fd(int fd, int events, void *arg)
{
	struct ev_redis *e = arg;

	e->busy = 1;
	/* an error or hang-up is reported as readable: hiredis's read sees
	 * the EOF or the error and ends the context */
	if (events & (EV_READ | EV_ERROR))
		redisAsyncHandleRead(e->ac);
	if (!e->dead && (events & EV_WRITE))
		redisAsyncHandleWrite(e->ac);
	e->busy = 0;
	if (e->dead)
		free(e);
}

static void
update(struct ev_redis *e, int mask)
{
	if (mask == e->mask)
		return;
	e->mask = mask;
	(void)ev_fd_set(e->loop, e->fd, mask, on_fd, e);
}

static void
add_read(void *arg)
{
	struct ev_redis *e = arg;

	update(e, e->mask | EV_READ);
}

static void
del_read(void *arg)
{
	struct ev_redis *e = arg;

	update(e, e->mask & ~EV_READ);
}

static void
add_write(void *arg)
{
	struct ev_redis *e = arg;

	update(e, e->mask | EV_WRITE);
}

static void
del_write(void *arg)
{
	struct ev_redis *e = arg;

	update(e, e->mask & ~EV_WRITE);
}

static void
cleanup(void *arg)
{
	struct ev_redis *e = arg;

	/* hiredis closes the fd after this hook.  In a forked copy of the
	 * process the epoll instance is the parent's too: deleting the
	 * registration there would take the parent's socket off its loop */
	if (e->pid == getpid())
		ev_fd_del(e->loop, e->fd);
	else
		ev_fd_forget(e->loop, e->fd);
	e->ac->ev.data = NULL;
	if (e->busy)
		e->dead = 1;
	else
		free(e);
}

int
ev_redis_attach(struct ev_loop *loop, redisAsyncContext *ac)
{
	struct ev_redis *e;

	if (ac->ev.data != NULL)
		return -1;
	if ((e = calloc(1, sizeof(*e))) == NULL)
		return -1;
	e->loop = loop;
	e->ac = ac;
	e->fd = ac->c.fd;
	e->pid = getpid();
	ac->ev.addRead = add_read;
	ac->ev.delRead = del_read;
	ac->ev.addWrite = add_write;
	ac->ev.delWrite = del_write;
	ac->ev.cleanup = cleanup;
	ac->ev.data = e;
	return 0;
}
