/*
 * reuse.c - parked upstream legs (see reuse.h).
 *
 * A small list: parked legs are few (bounded by max_legs) and short-lived,
 * and a lookup happens once per session, so a linear scan is cheaper than
 * anything cleverer.
 */
#include <stdlib.h>
#include <string.h>

#include "core/ev.h"
#include "core/log.h"
#include "core/stats.h"
#include "tlsproxy/reuse.h"

struct parked {
	struct parked	*next, **prevp;
	struct reuse	*r;
	char		*key;
	uint64_t	 until;		/* ev_boot_now() of the idle end */
	struct reuse_leg leg;
};

struct reuse {
	struct parked	*head;
	int		 n;
};

static struct stat_ctr *st_parked, *st_expired, *st_dropped;

struct reuse *
reuse_new(void)
{
	struct reuse *r;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	if (st_parked == NULL) {
		st_parked = stats_get("mxguard_upstream_parked",
		    "Upstream TLS legs parked for reuse now");
		st_expired = stats_get("mxguard_upstream_park_closed_total"
		    "{why=\"idle\"}", "Parked legs closed, by why");
		st_dropped = stats_get("mxguard_upstream_park_closed_total"
		    "{why=\"server\"}", NULL);
	}
	return r;
}

static void
unlink_parked(struct parked *p)
{
	if ((*p->prevp = p->next) != NULL)
		p->next->prevp = p->prevp;
	p->r->n--;
	stats_add(st_parked, -1);
}

/* Closes a parked leg, a polite QUIT first when the leg is healthy (the
 * idle time is over, the cache is flushed).  The server is left to close
 * first (io_linger, which frees at once a connection the server has
 * closed or that failed): no write of ours meets a closed socket. */
static void
close_parked(struct parked *p, int quit)
{
	unlink_parked(p);
	if (quit)
		io_write(p->leg.up, "QUIT\r\n", 6);
	io_linger(p->leg.up, UPSTREAM_LINGER_MS);
	domset_clear(&p->leg.counted);
	free(p->key);
	free(p);
}

static void
parked_cb(struct io *io, enum io_event ev, void *arg)
{
	struct parked *p = arg;
	char q[1024];

	(void)io;
	switch (ev) {
	case IO_TIMEOUT:
		log_debug("event=upstream-unparked key=%s why=idle",
		    log_q(q, sizeof(q), p->key));
		stats_add(st_expired, 1);
		close_parked(p, 1);
		break;
	case IO_DATAIN:		/* a 421 before the server hangs up */
	case IO_DISCONNECTED:
	case IO_ERROR:
		log_debug("event=upstream-unparked key=%s why=%s",
		    log_q(q, sizeof(q), p->key),
		    ev == IO_DATAIN ? "server-spoke" : io_event_name(ev));
		stats_add(st_dropped, 1);
		close_parked(p, 0);
		break;
	default:
		break;
	}
}

int
reuse_park(struct reuse *r, const char *key, struct reuse_leg *leg,
    uint64_t idle_ms, int max_legs)
{
	struct parked *p;

	if (r == NULL || r->n >= max_legs || idle_ms == 0)
		return -1;
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return -1;
	if ((p->key = strdup(key)) == NULL) {
		free(p);
		return -1;
	}
	p->r = r;
	p->leg = *leg;
	io_set_cb(p->leg.up, parked_cb, p);
	io_set_lowat(p->leg.up, 0);
	io_pause(p->leg.up, 0);		/* hear a 421 or a close */
	/* a deadline: a server that draws writes from us (a TLS key update
	 * it asks for) makes progress, but the leg stays idle.  A timer
	 * does not count a suspend of the host (CLOCK_MONOTONIC): the boot
	 * clock's end is judged again at the take */
	io_set_deadline(p->leg.up, idle_ms);
	p->until = ev_boot_now(io_loop(p->leg.up)) + idle_ms;
	if ((p->next = r->head) != NULL)
		p->next->prevp = &p->next;
	r->head = p;
	p->prevp = &r->head;
	r->n++;
	stats_add(st_parked, 1);
	return 0;
}

int
reuse_take(struct reuse *r, const char *key, struct reuse_leg *leg)
{
	struct parked *p, *next;
	char q[1024];

	if (r == NULL)
		return -1;
	/* the head is the most recently parked: the freshest leg; one
	 * whose idle time ran out while the host was suspended (its timer
	 * has not seen that time) gets its QUIT now, not a session */
	for (p = r->head; p != NULL; p = next) {
		next = p->next;
		if (strcmp(p->key, key) != 0)
			continue;
		if (ev_boot_now(io_loop(p->leg.up)) < p->until)
			break;
		log_debug("event=upstream-unparked key=%s why=idle-suspended",
		    log_q(q, sizeof(q), p->key));
		stats_add(st_expired, 1);
		close_parked(p, 1);
	}
	if (p == NULL)
		return -1;
	unlink_parked(p);
	*leg = p->leg;
	io_set_timeout(leg->up, 0);
	free(p->key);
	free(p);
	return 0;
}

void
reuse_flush(struct reuse *r)
{
	if (r == NULL)
		return;
	while (r->head != NULL)
		close_parked(r->head, 1);
}

void
reuse_free(struct reuse *r)
{
	reuse_flush(r);
	free(r);
}

int
reuse_count(const struct reuse *r)
{
	return r ? r->n : 0;
}
