/*
 * test_ev.c - the event loop and the io layer: timer order, re-arming,
 * fd readiness, deletion of a registration by an earlier callback of the
 * same batch, io line reading, back-pressure and redelivery after pause.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/ev.h"
#include "core/io.h"

#include "testloop.h"

static struct ev_loop *loop;
static char order[64];
static int norder;

static void
mark_cb(void *arg)
{
	order[norder++] = *(const char *)arg;
	order[norder] = '\0';
}

static void
stop_cb(void *arg)
{
	ev_loop_stop(loop);
}

static void
test_timer_order(void **state)
{
	static const char a = 'a', b = 'b', c = 'c', d = 'd';
	struct ev_timer *ta, *tb, *tc, *td, *stop;

	loop = ev_loop_new();
	norder = 0;
	ta = ev_timer_new(loop, mark_cb, (void *)&a);
	tb = ev_timer_new(loop, mark_cb, (void *)&b);
	tc = ev_timer_new(loop, mark_cb, (void *)&c);
	td = ev_timer_new(loop, mark_cb, (void *)&d);
	stop = ev_timer_new(loop, stop_cb, NULL);
	ev_timer_arm(ta, 30);
	ev_timer_arm(tb, 10);
	ev_timer_arm(tc, 20);
	ev_timer_arm(td, 5);
	ev_timer_stop(td);		/* never fires */
	ev_timer_arm(tb, 25);		/* re-armed: now after c */
	ev_timer_arm(stop, 50);
	assert_int_equal(ev_loop_run(loop), 0);
	assert_string_equal(order, "cba");
	assert_false(ev_timer_pending(ta));
	ev_timer_free(ta); ev_timer_free(tb); ev_timer_free(tc);
	ev_timer_free(td); ev_timer_free(stop);
	ev_loop_free(loop);
}

static int sp1[2], sp2[2], fired1, fired2;

/* The first of two ready fds deletes the other: its event in the same
 * batch must not be delivered. */
static void
fd1_cb(int fd, int events, void *arg)
{
	fired1++;
	ev_fd_del(loop, sp2[0]);
	ev_fd_del(loop, sp1[0]);
	ev_loop_stop(loop);
}

static void
fd2_cb(int fd, int events, void *arg)
{
	fired2++;
	ev_fd_del(loop, sp1[0]);
	ev_fd_del(loop, sp2[0]);
	ev_loop_stop(loop);
}

static void
test_fd_delete_in_batch(void **state)
{
	loop = ev_loop_new();
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp1), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp2), 0);
	assert_int_equal(ev_fd_set(loop, sp1[0], EV_READ, fd1_cb, NULL), 0);
	assert_int_equal(ev_fd_set(loop, sp2[0], EV_READ, fd2_cb, NULL), 0);
	assert_int_equal(write(sp1[1], "x", 1), 1);
	assert_int_equal(write(sp2[1], "y", 1), 1);
	fired1 = fired2 = 0;
	ev_loop_run(loop);
	/* exactly one of them ran, whichever epoll listed first */
	assert_int_equal(fired1 + fired2, 1);
	close(sp1[0]); close(sp1[1]); close(sp2[0]); close(sp2[1]);
	ev_loop_free(loop);
}

static struct ev_timer *idle_tmo;

/* Progress re-arms the inactivity timer, as the io layer's touch() does. */
static void
progress_cb(int fd, int events, void *arg)
{
	char c;

	if (read(fd, &c, 1) == 1) {
		order[norder++] = 'f';
		order[norder] = '\0';
		ev_timer_arm(idle_tmo, 1000);
	}
}

/*
 * The process was held up (load, a paused VM) past an inactivity timeout
 * while its peer sent something: at the next turn the fd comes first, and
 * the timer its progress re-armed does not fire.  With the timers first,
 * the peer's session was timed out with its data already waiting.
 */
static void
test_fd_before_due_timer(void **state)
{
	static const char t = 't';
	struct ev_timer *stop;

	loop = ev_loop_new();
	norder = 0;
	order[0] = '\0';
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp1), 0);
	assert_int_equal(ev_fd_set(loop, sp1[0], EV_READ, progress_cb, NULL),
	    0);
	idle_tmo = ev_timer_new(loop, mark_cb, (void *)&t);
	stop = ev_timer_new(loop, stop_cb, NULL);
	ev_timer_arm(idle_tmo, 50);
	ev_timer_arm(stop, 300);
	assert_int_equal(write(sp1[1], "x", 1), 1);
	usleep(150 * 1000);	/* held up: both due before the loop runs */
	assert_int_equal(ev_loop_run(loop), 0);
	assert_string_equal(order, "f");
	assert_true(ev_timer_pending(idle_tmo));
	ev_fd_del(loop, sp1[0]);
	close(sp1[0]);
	close(sp1[1]);
	ev_timer_free(idle_tmo);
	ev_timer_free(stop);
	ev_loop_free(loop);
}

/* ---- io ---------------------------------------------------------------- */

struct rec {
	int	 datain, disconnected, errors;
	char	 lines[8][64];
	int	 nlines;
	int	 consume;	/* take lines on DATAIN */
};

static void
io_rec_cb(struct io *io, enum io_event ev, void *arg)
{
	struct rec *r = arg;
	char *line;
	ssize_t n;

	switch (ev) {
	case IO_DATAIN:
		r->datain++;
		while (r->consume && (n = io_getline(io, 100, &line)) >= 0)
			if (r->nlines < 8)
				snprintf(r->lines[r->nlines++], 64, "%s", line);
		break;
	case IO_DISCONNECTED:
		r->disconnected++;
		ev_loop_stop(loop);
		break;
	case IO_ERROR:
		r->errors++;
		ev_loop_stop(loop);
		break;
	default:
		break;
	}
}

static void
test_io_lines(void **state)
{
	struct rec r = { .consume = 1 };
	struct io *io;
	int sp[2];

	loop = ev_loop_new();
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0,
	    sp), 0);
	io = io_new(loop, sp[0], io_rec_cb, &r);
	assert_non_null(io);
	/* CRLF, bare LF, and a line split across writes */
	assert_int_equal(write(sp[1], "one\r\ntwo\nthr", 12), 12);
	testloop_run(loop, 20);
	assert_int_equal(r.nlines, 2);
	assert_int_equal(write(sp[1], "ee\r\n", 4), 4);
	testloop_run(loop, 20);
	assert_int_equal(r.nlines, 3);
	assert_string_equal(r.lines[0], "one");
	assert_string_equal(r.lines[1], "two");
	assert_string_equal(r.lines[2], "three");
	close(sp[1]);
	testloop_run(loop, 1000);
	assert_int_equal(r.disconnected, 1);
	io_free(io);
	ev_loop_free(loop);
}

static void
test_io_overlong_line(void **state)
{
	struct rec r = { .consume = 0 };
	struct io *io;
	char big[300], *line;
	int sp[2];

	loop = ev_loop_new();
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0,
	    sp), 0);
	io = io_new(loop, sp[0], io_rec_cb, &r);
	memset(big, 'x', sizeof(big));
	assert_int_equal(write(sp[1], big, sizeof(big)), (ssize_t)sizeof(big));
	testloop_run(loop, 20);
	assert_int_equal(io_getline(io, 100, &line), -2);
	assert_int_equal(io_getline(io, 1000, &line), -1);
	close(sp[1]);
	io_free(io);
	ev_loop_free(loop);
}

/* Paused: bytes wait in the kernel; resumed: buffered bytes come again
 * as DATAIN without a new socket event. */
static void
test_io_pause_resume(void **state)
{
	struct rec r = { .consume = 0 };
	struct io *io;
	int sp[2];

	loop = ev_loop_new();
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0,
	    sp), 0);
	io = io_new(loop, sp[0], io_rec_cb, &r);
	assert_int_equal(write(sp[1], "abc\r\n", 5), 5);
	testloop_run(loop, 20);
	assert_int_equal(r.datain, 1);
	assert_int_equal(io_datalen(io), 5);
	io_pause(io, 1);
	assert_int_equal(write(sp[1], "def\r\n", 5), 5);
	testloop_run(loop, 30);
	assert_int_equal(r.datain, 1);		/* nothing while paused */
	assert_int_equal(io_datalen(io), 5);
	r.consume = 1;
	io_pause(io, 0);
	testloop_run(loop, 30);
	assert_int_equal(r.nlines, 2);
	assert_string_equal(r.lines[1], "def");
	close(sp[1]);
	io_free(io);
	ev_loop_free(loop);
}

/* A full input buffer stops reading; consuming restarts it. */
static void
test_io_backpressure(void **state)
{
	struct rec r = { .consume = 0 };
	struct io *io;
	static char chunk[16384];
	size_t total = 0;
	ssize_t n;
	int sp[2];

	loop = ev_loop_new();
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0,
	    sp), 0);
	io = io_new(loop, sp[0], io_rec_cb, &r);
	memset(chunk, 'z', sizeof(chunk));
	while ((n = write(sp[1], chunk, sizeof(chunk))) > 0)
		total += (size_t)n;
	testloop_run(loop, 50);
	assert_int_equal(io_datalen(io), IO_INBUF_MAX);
	io_drop(io, IO_INBUF_MAX);
	testloop_run(loop, 50);
	assert_true(io_datalen(io) > 0);
	assert_true(total > IO_INBUF_MAX);
	close(sp[1]);
	io_free(io);
	ev_loop_free(loop);
}

/* io_write sends what it can and queues the rest; the queue drains as
 * the peer reads, with a low-water event. */
static int lowat_seen;

static void
io_lowat_cb(struct io *io, enum io_event ev, void *arg)
{
	if (ev == IO_LOWAT) {
		lowat_seen++;
		ev_loop_stop(loop);
	}
}

static void
test_io_write_queue(void **state)
{
	struct io *io;
	static char buf[1 << 20], sink[65536];
	int sp[2];
	size_t got = 0;

	loop = ev_loop_new();
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0,
	    sp), 0);
	io = io_new(loop, sp[0], io_lowat_cb, NULL);
	io_set_lowat(io, 0);
	memset(buf, 'q', sizeof(buf));
	assert_int_equal(io_write(io, buf, sizeof(buf)), 0);
	assert_true(io_queued(io) > 0);		/* the socket took less */
	lowat_seen = 0;
	while (lowat_seen == 0 && got < sizeof(buf)) {
		ssize_t n = read(sp[1], sink, sizeof(sink));

		if (n > 0)
			got += (size_t)n;
		testloop_run(loop, 5);
	}
	while (got < sizeof(buf)) {
		ssize_t n = read(sp[1], sink, sizeof(sink));

		if (n <= 0)
			break;
		got += (size_t)n;
	}
	assert_int_equal(lowat_seen, 1);
	assert_int_equal(io_queued(io), 0);
	assert_int_equal(got, sizeof(buf));
	assert_int_equal(io_bytes_out(io), sizeof(buf));
	close(sp[1]);
	io_free(io);
	ev_loop_free(loop);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_timer_order),
		cmocka_unit_test(test_fd_delete_in_batch),
		cmocka_unit_test(test_fd_before_due_timer),
		cmocka_unit_test(test_io_lines),
		cmocka_unit_test(test_io_overlong_line),
		cmocka_unit_test(test_io_pause_resume),
		cmocka_unit_test(test_io_backpressure),
		cmocka_unit_test(test_io_write_queue),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
