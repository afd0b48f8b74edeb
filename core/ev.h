/*
 * ev.h - the event loop: epoll for file descriptors, a binary heap of
 * millisecond timers, nothing else.  Modelled on redis' ae.c.
 *
 * One loop per process.  Callbacks run on the loop's thread; a callback may
 * add or delete any fd or timer, including its own.  The caller owns the
 * file descriptors: ev_fd_del() stops watching but never closes.
 * Timers are allocated by ev_timer_new() and freed by ev_timer_free(),
 * which also stops them.
 */
#ifndef MXG_EV_H
#define MXG_EV_H

#include <stdint.h>

#define EV_READ		0x1
#define EV_WRITE	0x2
#define EV_ERROR	0x4	/* reported only: EPOLLERR/EPOLLHUP */
/* The peer shut down its sending side (EPOLLRDHUP): asked for alone, it
 * reports a FIN without asking for the data before it (EV_READ asks for
 * both, and reports a FIN as EV_READ too) */
#define EV_HUP		0x8

struct ev_loop;
struct ev_timer;

typedef void ev_fd_cb(int fd, int events, void *arg);
typedef void ev_timer_cb(void *arg);

struct ev_loop	*ev_loop_new(void);
void		 ev_loop_free(struct ev_loop *);
/* Runs until ev_loop_stop(); returns 0, or -1 on an epoll error.  Each
 * turn handles the ready fds, then the due timers. */
int		 ev_loop_run(struct ev_loop *);
void		 ev_loop_stop(struct ev_loop *);
/* Milliseconds of CLOCK_MONOTONIC, cached once per loop iteration: what
 * timers go by.  It does not count time the host spent suspended. */
uint64_t	 ev_now(struct ev_loop *);
/* Milliseconds of CLOCK_BOOTTIME, read at the turn's first ask and the
 * same for the rest of it (ev_now_update() reads it anew): for a lifetime (a
 * DNS TTL, a verdict's or an upstream leg's age), which must end when
 * its time has passed, a suspend included. */
uint64_t	 ev_boot_now(struct ev_loop *);
/* Reads the clocks again: after work long enough in one callback that a
 * timer armed from the cached time would be short by it. */
void		 ev_now_update(struct ev_loop *);

/* Watch fd for events (EV_READ|EV_WRITE, possibly 0); replaces an earlier
 * registration's callback and mask.  Returns 0 or -1 with errno. */
int		 ev_fd_set(struct ev_loop *, int fd, int events, ev_fd_cb *,
		    void *arg);
/* Changes the mask only. */
int		 ev_fd_mask(struct ev_loop *, int fd, int events);
void		 ev_fd_del(struct ev_loop *, int fd);
void		 ev_fd_forget(struct ev_loop *, int fd);	/* before close() */

struct ev_timer	*ev_timer_new(struct ev_loop *, ev_timer_cb *, void *arg);
/* (Re)arms the timer to fire once, ms milliseconds from now. */
void		 ev_timer_arm(struct ev_timer *, uint64_t ms);
void		 ev_timer_stop(struct ev_timer *);
int		 ev_timer_pending(const struct ev_timer *);
void		 ev_timer_free(struct ev_timer *);

#endif
