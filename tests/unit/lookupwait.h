/*
 * lookupwait.h - policy_lookup() for DOMAIN and an IPv4 destination, run
 * on the loop until its verdict comes: the verdict (the engine's, freed
 * with it).  Test code only.
 */
#ifndef MXG_TEST_LOOKUPWAIT_H
#define MXG_TEST_LOOKUPWAIT_H

#include <arpa/inet.h>
#include <string.h>

#include "core/ev.h"
#include "policy/policy.h"

struct lookup_wait {
	struct ev_loop		*loop;
	struct policy_verdict	*got;
};

static void
lookup_wait_cb(void *arg, struct policy_verdict *v)
{
	struct lookup_wait *w = arg;

	w->got = v;
	ev_loop_stop(w->loop);
}

static inline struct policy_verdict *
lookup_wait(struct ev_loop *loop, struct policy *pol, const char *domain,
    const char *ip)
{
	struct lookup_wait w = { loop, NULL };
	struct sockaddr_in sin;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	assert_int_equal(inet_pton(AF_INET, ip, &sin.sin_addr), 1);
	assert_non_null(policy_lookup(pol, domain, (struct sockaddr *)&sin,
	    sizeof(sin), NULL, lookup_wait_cb, &w));
	ev_loop_run(loop);
	assert_non_null(w.got);
	return w.got;
}

#endif
