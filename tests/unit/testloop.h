/*
 * testloop.h - run a test's event loop for a while: the loop runs until
 * a timer of ms milliseconds stops it (events due meanwhile are handled).
 * Header-only, for the tests of the loop and the io layer.
 */
#ifndef MXG_TESTLOOP_H
#define MXG_TESTLOOP_H

#include <stdint.h>

#include "core/ev.h"

static void
testloop_stop(void *arg)
{
	ev_loop_stop(arg);
}

static void
testloop_run(struct ev_loop *l, uint64_t ms)
{
	struct ev_timer *t = ev_timer_new(l, testloop_stop, l);

	ev_timer_arm(t, ms);
	ev_loop_run(l);
	ev_timer_free(t);
}

#endif
