/*
 * test_io_write.c - the io layer's output when a write cannot be taken:
 * the byte stream a peer receives is always a prefix of what the owner
 * wrote, never a stream with a hole in it, and the owner hears of the
 * failure (IO_ERROR).  A hole in the upstream leg's stream is a message
 * with a piece missing that the server still accepts (250) once the final
 * dot that was written after the hole arrives.
 *
 * Half-open mode (io_set_halfopen) is here too: after the peer's EOF the
 * io still writes, as the client leg does for a client that shut down
 * its side after its dot and waits for the final reply.
 *
 * realloc() and send() are wrapped, so that one call can be made to fail,
 * and malloc(), so that the input buffer cannot be had.
 */
// WRAP: realloc send malloc
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/ev.h"
#include "core/io.h"

#include "testloop.h"

void *__real_malloc(size_t);
void *__wrap_malloc(size_t);
void *__real_realloc(void *, size_t);
void *__wrap_realloc(void *, size_t);
ssize_t __real_send(int, const void *, size_t, int);
ssize_t __wrap_send(int, const void *, size_t, int);

static int fail_malloc;		/* every malloc() fails */
static unsigned long nmalloc_failed;
static int fail_realloc;	/* the next realloc() fails */
static int fail_send;		/* errno for the next send(), 0: none */

void *
__wrap_malloc(size_t n)
{
	if (fail_malloc) {
		nmalloc_failed++;
		return NULL;
	}
	return __real_malloc(n);
}

void *
__wrap_realloc(void *p, size_t n)
{
	if (fail_realloc) {
		fail_realloc = 0;
		return NULL;
	}
	return __real_realloc(p, n);
}

ssize_t
__wrap_send(int fd, const void *buf, size_t len, int flags)
{
	if (fail_send) {
		errno = fail_send;
		fail_send = 0;
		return -1;
	}
	return __real_send(fd, buf, len, flags);
}

static struct ev_loop *loop;

struct rec {
	int	errors;
	int	datain;
	int	disconnected;
	int	wrote;		/* io_write()'s value at IO_DISCONNECTED */
	const char *reply;	/* written at IO_DISCONNECTED */
};

static void
rec_cb(struct io *io, enum io_event ev, void *arg)
{
	struct rec *r = arg;

	if (ev == IO_ERROR)
		r->errors++;
	if (ev == IO_DATAIN)
		r->datain++;
	if (ev == IO_DISCONNECTED) {
		r->disconnected++;
		if (r->reply != NULL)
			r->wrote = io_write(io, r->reply, strlen(r->reply));
	}
}

/* Reads what the peer end gets while the loop runs, until it is quiet. */
static size_t
drain_peer(int fd, char *got, size_t gotsz)
{
	size_t len = 0;
	int idle = 0;

	while (idle < 20) {
		ssize_t n;

		testloop_run(loop, 2);
		n = read(fd, got + len, gotsz - len);
		if (n > 0) {
			len += (size_t)n;
			idle = 0;
		} else
			idle++;
	}
	return len;
}

/* Whether got[0..len) is a prefix of the concatenation of parts. */
static int
is_prefix(const char *got, size_t len, const char *const *parts,
    const size_t *plen, int nparts)
{
	size_t off = 0;
	int i;

	for (i = 0; i < nparts && off < len; i++) {
		size_t n = plen[i] < len - off ? plen[i] : len - off;

		if (memcmp(got + off, parts[i], n) != 0)
			return 0;
		off += n;
	}
	return off == len;
}

/* A new loop, and an io on one end of a socket pair (sp[1] the peer's),
 * reporting to r. */
static struct io *
pair_open(int sp[2], struct rec *r)
{
	struct io *io;

	loop = ev_loop_new();
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0,
	    sp), 0);
	io = io_new(loop, sp[0], rec_cb, r);
	assert_non_null(io);
	return io;
}

static void
pair_close(struct io *io, int sp[2])
{
	close(sp[1]);
	io_free(io);
	ev_loop_free(loop);
}

/*
 * Out of memory while queuing: io_write() returned -1 and dropped the
 * bytes, and the next write went out behind the ones before: the peer
 * got A..A TAIL, the B's missing, and the owner (leg_write(), which does
 * not look at io_write's value) never heard of it.
 */
static void
test_oom_queue_no_hole(void **state)
{
	static char a[600 * 1024], b[2 * 1024 * 1024], got[4 * 1024 * 1024];
	const char *parts[] = { a, b, "TAIL" };
	size_t plen[] = { sizeof(a), sizeof(b), 4 };
	struct rec r = { 0 };
	struct io *io;
	size_t len;
	int sp[2];

	(void)state;
	memset(a, 'A', sizeof(a));
	memset(b, 'B', sizeof(b));
	io = pair_open(sp, &r);
	assert_int_equal(io_write(io, a, sizeof(a)), 0);
	assert_true(io_queued(io) > 0);		/* the socket took less */
	fail_realloc = 1;
	(void)io_write(io, b, sizeof(b));	/* the queue cannot grow */
	fail_realloc = 0;
	(void)io_write(io, "TAIL", 4);
	len = drain_peer(sp[1], got, sizeof(got));
	if (!is_prefix(got, len, parts, plen, 3))
		fail_msg("the peer got %zu bytes that are not a prefix of "
		    "what was written (last byte '%c'): a hole in the stream",
		    len, len ? got[len - 1] : '-');
	assert_int_equal(r.errors, 1);
	pair_close(io, sp);
}

/*
 * A send() error that does not last (ENOBUFS, ENOMEM) on a cleartext io:
 * the io noted the error for later (IO_ERROR from the loop), but the
 * next io_write() of the same round went to the socket, so the peer got
 * TWO without ONE.
 */
static void
test_send_error_no_hole(void **state)
{
	static char got[64];
	const char *parts[] = { "ONE\r\n", "TWO\r\n" };
	size_t plen[] = { 5, 5 };
	struct rec r = { 0 };
	struct io *io;
	size_t len;
	int sp[2];

	(void)state;
	io = pair_open(sp, &r);
	fail_send = ENOBUFS;
	(void)io_write(io, "ONE\r\n", 5);
	(void)io_write(io, "TWO\r\n", 5);
	len = drain_peer(sp[1], got, sizeof(got));
	if (!is_prefix(got, len, parts, plen, 2))
		fail_msg("the peer got \"%.*s\" after ONE failed: a hole in "
		    "the stream", (int)len, got);
	assert_int_equal(r.errors, 1);
	pair_close(io, sp);
}

/*
 * Out of memory for the input buffer: do_read() read nothing and said
 * nothing, and since epoll is level-triggered the loop called it again at
 * once, for as long as the allocation failed (or until the io's timeout):
 * a busy loop of the whole process.  It must be an error of the io.
 */
static void
test_oom_inbuf_no_spin(void **state)
{
	struct rec r = { 0 };
	unsigned long tries;
	struct io *io;
	int sp[2];

	(void)state;
	io = pair_open(sp, &r);
	assert_int_equal(write(sp[1], "250 ok\r\n", 8), 8);
	nmalloc_failed = 0;
	fail_malloc = 1;
	testloop_run(loop, 50);
	fail_malloc = 0;
	tries = nmalloc_failed;
	if (tries > 10)
		fail_msg("%lu reads tried in 50 ms without an input buffer "
		    "(a busy loop)", tries);
	assert_int_equal(r.errors, 1);
	assert_int_equal(r.datain, 0);
	pair_close(io, sp);
}

/*
 * Half-open: the peer sends its last command and shuts down its sending
 * side.  The io hands over the command, says IO_DISCONNECTED once, and
 * still writes the answer; the peer's full close after that is IO_ERROR,
 * once (no busy loop on the level-triggered hangup).  Without half-open
 * mode the answer cannot be written.
 */
static void
test_halfopen_write_after_eof(void **state)
{
	static char got[64];
	struct rec r = { 0 };
	struct io *io;
	size_t len;
	int sp[2];

	(void)state;
	io = pair_open(sp, &r);
	io_set_halfopen(io, 1);
	r.reply = "221 2.0.0 Bye\r\n";
	assert_int_equal(write(sp[1], "QUIT\r\n", 6), 6);
	assert_int_equal(shutdown(sp[1], SHUT_WR), 0);
	len = drain_peer(sp[1], got, sizeof(got));
	assert_int_equal(r.datain, 1);
	assert_int_equal(io_datalen(io), 6);	/* still there to be read */
	assert_memory_equal(io_data(io), "QUIT\r\n", 6);
	assert_int_equal(r.disconnected, 1);
	assert_int_equal(r.wrote, 0);
	assert_int_equal(r.errors, 0);
	assert_int_equal(len, strlen(r.reply));
	assert_memory_equal(got, r.reply, len);
	/* more later, still told once */
	io_pause(io, 1);
	io_pause(io, 0);
	assert_int_equal(io_write(io, "x\r\n", 3), 0);
	len = drain_peer(sp[1], got, sizeof(got));
	assert_int_equal(len, 3);
	assert_int_equal(r.disconnected, 1);
	/* the peer goes away entirely */
	close(sp[1]);
	testloop_run(loop, 30);
	assert_int_equal(r.errors, 1);
	assert_int_equal(io_write(io, "y\r\n", 3), -1);
	sp[1] = open("/dev/null", O_RDONLY);	/* for pair_close() */
	pair_close(io, sp);
}

/* The default: the peer's EOF ends the io, writes included. */
static void
test_no_halfopen_eof_ends(void **state)
{
	struct rec r = { 0 };
	struct io *io;
	int sp[2];

	(void)state;
	io = pair_open(sp, &r);
	r.reply = "221 2.0.0 Bye\r\n";
	assert_int_equal(shutdown(sp[1], SHUT_WR), 0);
	testloop_run(loop, 20);
	assert_int_equal(r.disconnected, 1);
	assert_int_equal(r.wrote, -1);
	pair_close(io, sp);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_oom_queue_no_hole),
		cmocka_unit_test(test_send_error_no_hole),
		cmocka_unit_test(test_oom_inbuf_no_spin),
		cmocka_unit_test(test_halfopen_write_after_eof),
		cmocka_unit_test(test_no_halfopen_eof_ends),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
