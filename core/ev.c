/*
 * ev.c - epoll event loop with a timer heap (see ev.h).
 *
 * Registrations live in an array indexed by fd.  Each registration carries a
 * generation number that also travels in the epoll event's data, so an
 * event for an fd that was deleted (and perhaps reused) by an earlier
 * callback in the same batch is recognised as stale and dropped.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "core/ev.h"

struct ev_reg {
	ev_fd_cb	*cb;
	void		*arg;
	int		 mask;
	uint32_t	 gen;
};

struct ev_timer {
	struct ev_loop	*loop;
	ev_timer_cb	*cb;
	void		*arg;
	uint64_t	 when;
	int		 idx;		/* heap index, -1 when not armed */
};

struct ev_loop {
	int		 epfd;
	int		 stop;
	uint64_t	 now;
	uint64_t	 boot;		/* CLOCK_BOOTTIME ms of this turn,
					 * 0 until asked (ev_boot_now()) */
	struct ev_reg	*regs;
	int		 nregs;
	uint32_t	 gen;
	struct ev_timer	**heap;
	int		 nheap, heapsz;
};

static uint64_t
clock_ms(clockid_t id)
{
	struct timespec ts;

	if (clock_gettime(id, &ts) == -1)
		clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/*
 * A turn's clocks.  Timers go by CLOCK_MONOTONIC: a heartbeat and
 * its check (cmd/workers.c), a packet's wait (nfq) must not all fall due
 * together at a resume.  A lifetime (ev_boot_now()) goes by
 * CLOCK_BOOTTIME, which counts the time the host was suspended (a VM
 * paused for hours): a DNS answer's TTL, a verdict's or a leg's age end
 * when their time has passed, not that much later.
 */
static void
tick(struct ev_loop *loop)
{
	loop->now = clock_ms(CLOCK_MONOTONIC);
	loop->boot = 0;		/* read when a lifetime asks: most turns
				 * (the relay's) need none */
}

struct ev_loop *
ev_loop_new(void)
{
	struct ev_loop *loop;

	if ((loop = calloc(1, sizeof(*loop))) == NULL)
		return NULL;
	if ((loop->epfd = epoll_create1(EPOLL_CLOEXEC)) == -1) {
		free(loop);
		return NULL;
	}
	tick(loop);
	return loop;
}

void
ev_loop_free(struct ev_loop *loop)
{
	int i;

	if (loop == NULL)
		return;
	for (i = 0; i < loop->nheap; i++)
		loop->heap[i]->idx = -1;
	close(loop->epfd);
	free(loop->regs);
	free(loop->heap);
	free(loop);
}

uint64_t
ev_now(struct ev_loop *loop)
{
	return loop->now;
}

uint64_t
ev_boot_now(struct ev_loop *loop)
{
	if (loop->boot == 0)
		loop->boot = clock_ms(CLOCK_BOOTTIME);
	return loop->boot;
}

void
ev_now_update(struct ev_loop *loop)
{
	tick(loop);
}

void
ev_loop_stop(struct ev_loop *loop)
{
	loop->stop = 1;
}

static int
reg_grow(struct ev_loop *loop, int fd)
{
	struct ev_reg *n;
	int sz;

	if (fd < loop->nregs)
		return 0;
	sz = loop->nregs ? loop->nregs : 256;
	while (sz <= fd)
		sz *= 2;
	if ((n = realloc(loop->regs, sz * sizeof(*n))) == NULL)
		return -1;
	memset(n + loop->nregs, 0, (sz - loop->nregs) * sizeof(*n));
	loop->regs = n;
	loop->nregs = sz;
	return 0;
}

static uint32_t
ep_mask(int events)
{
	uint32_t m = 0;

	if (events & EV_READ)
		m |= EPOLLIN | EPOLLRDHUP;
	if (events & EV_WRITE)
		m |= EPOLLOUT;
	if (events & EV_HUP)
		m |= EPOLLRDHUP;
	return m;
}

static int
ep_ctl(struct ev_loop *loop, int op, int fd)
{
	struct epoll_event ee;
	struct ev_reg *r = &loop->regs[fd];

	memset(&ee, 0, sizeof(ee));
	ee.events = ep_mask(r->mask);
	ee.data.u64 = (uint64_t)(unsigned)fd | ((uint64_t)r->gen << 32);
	return epoll_ctl(loop->epfd, op, fd, &ee);
}

int
ev_fd_set(struct ev_loop *loop, int fd, int events, ev_fd_cb *cb, void *arg)
{
	struct ev_reg *r;
	int op;

	if (fd < 0 || reg_grow(loop, fd) == -1) {
		errno = fd < 0 ? EBADF : ENOMEM;
		return -1;
	}
	r = &loop->regs[fd];
	op = r->cb ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
	if (op == EPOLL_CTL_ADD)
		r->gen = ++loop->gen;
	r->cb = cb;
	r->arg = arg;
	r->mask = events;
	if (ep_ctl(loop, op, fd) == -1) {
		if (op == EPOLL_CTL_ADD)
			r->cb = NULL;
		return -1;
	}
	return 0;
}

int
ev_fd_mask(struct ev_loop *loop, int fd, int events)
{
	struct ev_reg *r;

	if (fd < 0 || fd >= loop->nregs || loop->regs[fd].cb == NULL) {
		errno = EBADF;
		return -1;
	}
	r = &loop->regs[fd];
	if (r->mask == events)
		return 0;
	r->mask = events;
	return ep_ctl(loop, EPOLL_CTL_MOD, fd);
}

/* For a caller that closes fd next: the kernel drops the epoll
 * registration with the last reference, so only our table changes. */
void
ev_fd_forget(struct ev_loop *loop, int fd)
{
	if (fd < 0 || fd >= loop->nregs)
		return;
	loop->regs[fd].cb = NULL;
	loop->regs[fd].arg = NULL;
	loop->regs[fd].mask = 0;
}

void
ev_fd_del(struct ev_loop *loop, int fd)
{
	if (fd < 0 || fd >= loop->nregs || loop->regs[fd].cb == NULL)
		return;
	epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
	loop->regs[fd].cb = NULL;
	loop->regs[fd].arg = NULL;
	loop->regs[fd].mask = 0;
}

/* ---- timer heap -------------------------------------------------------- */

static void
heap_swap(struct ev_loop *loop, int a, int b)
{
	struct ev_timer *t = loop->heap[a];

	loop->heap[a] = loop->heap[b];
	loop->heap[b] = t;
	loop->heap[a]->idx = a;
	loop->heap[b]->idx = b;
}

static void
heap_up(struct ev_loop *loop, int i)
{
	while (i > 0) {
		int p = (i - 1) / 2;

		if (loop->heap[p]->when <= loop->heap[i]->when)
			break;
		heap_swap(loop, i, p);
		i = p;
	}
}

static void
heap_down(struct ev_loop *loop, int i)
{
	for (;;) {
		int l = 2 * i + 1, r = l + 1, m = i;

		if (l < loop->nheap && loop->heap[l]->when < loop->heap[m]->when)
			m = l;
		if (r < loop->nheap && loop->heap[r]->when < loop->heap[m]->when)
			m = r;
		if (m == i)
			break;
		heap_swap(loop, i, m);
		i = m;
	}
}

static void
heap_remove(struct ev_loop *loop, struct ev_timer *t)
{
	int i = t->idx, last = loop->nheap - 1;

	if (i < 0)
		return;
	if (i != last) {
		heap_swap(loop, i, last);
		loop->nheap--;
		heap_down(loop, i);
		heap_up(loop, i);
	} else
		loop->nheap--;
	t->idx = -1;
}

struct ev_timer *
ev_timer_new(struct ev_loop *loop, ev_timer_cb *cb, void *arg)
{
	struct ev_timer *t;

	if ((t = calloc(1, sizeof(*t))) == NULL)
		return NULL;
	t->loop = loop;
	t->cb = cb;
	t->arg = arg;
	t->idx = -1;
	return t;
}

void
ev_timer_arm(struct ev_timer *t, uint64_t ms)
{
	struct ev_loop *loop = t->loop;

	heap_remove(loop, t);
	if (loop->nheap == loop->heapsz) {
		int sz = loop->heapsz ? loop->heapsz * 2 : 64;
		struct ev_timer **n = realloc(loop->heap, sz * sizeof(*n));

		if (n == NULL)
			abort();	/* a lost timer would hang a session */
		loop->heap = n;
		loop->heapsz = sz;
	}
	t->when = loop->now + ms;
	t->idx = loop->nheap++;
	loop->heap[t->idx] = t;
	heap_up(loop, t->idx);
}

void
ev_timer_stop(struct ev_timer *t)
{
	if (t != NULL)
		heap_remove(t->loop, t);
}

int
ev_timer_pending(const struct ev_timer *t)
{
	return t->idx >= 0;
}

void
ev_timer_free(struct ev_timer *t)
{
	if (t == NULL)
		return;
	heap_remove(t->loop, t);
	free(t);
}

/* ---- loop -------------------------------------------------------------- */

static void
run_timers(struct ev_loop *loop)
{
	while (loop->nheap > 0 && loop->heap[0]->when <= loop->now) {
		struct ev_timer *t = loop->heap[0];

		heap_remove(loop, t);
		t->cb(t->arg);
	}
}

int
ev_loop_run(struct ev_loop *loop)
{
	struct epoll_event evs[256];
	int i, n, timeout;

	loop->stop = 0;
	while (!loop->stop) {
		tick(loop);
		timeout = -1;
		if (loop->nheap > 0) {
			uint64_t w = loop->heap[0]->when;

			timeout = w <= loop->now ? 0 :
			    (int)(w - loop->now > 60000 ? 60000 : w - loop->now);
		}
		n = epoll_wait(loop->epfd, evs, 256, timeout);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		tick(loop);
		for (i = 0; i < n; i++) {
			int fd = (int)(evs[i].data.u64 & 0xffffffffu);
			uint32_t gen = (uint32_t)(evs[i].data.u64 >> 32);
			struct ev_reg *r;
			int what = 0;

			if (fd >= loop->nregs)
				continue;
			r = &loop->regs[fd];
			if (r->cb == NULL || r->gen != gen)
				continue;	/* deleted by an earlier callback */
			if (evs[i].events & (EPOLLIN | EPOLLRDHUP))
				what |= EV_READ;
			if (evs[i].events & EPOLLOUT)
				what |= EV_WRITE;
			if (evs[i].events & (EPOLLERR | EPOLLHUP))
				what |= EV_ERROR;
			if (evs[i].events & EPOLLRDHUP)
				what |= EV_HUP;
			r->cb(fd, what, r->arg);
		}
		if (loop->stop)
			break;
		/* After the fds, as in ae.c: when the process was held up
		 * (load, a stopped or paused VM) past a timeout, what its
		 * peer sent meanwhile is seen first, and an inactivity
		 * timer that this progress re-armed does not fire. */
		run_timers(loop);
	}
	return 0;
}
