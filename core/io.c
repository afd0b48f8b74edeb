/*
 * io.c - sockets and TLS as events (see io.h).
 *
 * Each io has two timers: the inactivity timeout, and a zero-delay "defer"
 * timer used to deliver events that arise outside the event loop (a write
 * error inside io_write(), bytes left buffered when reading resumes), so
 * that callbacks are never re-entered.
 *
 * An io freed from inside its own callback is only marked; the handler
 * that called the callback frees it on the way out.
 *
 * TLS output is corked: OpenSSL writes its records into our own buffer
 * (tout, through a small BIO), and the buffer goes to the socket in one
 * send() when the loop has handled the current batch of events (the defer
 * timer).  So the handshake's Finished and the first command after it
 * share a segment, and a 64 KiB SSL_write is one send instead of four
 * (measured: cheaper than four sends straight from OpenSSL's buffer).
 * The buffer is bounded (TOUT_MAX; OpenSSL then sees a retry, exactly as
 * with a full socket) and freed when empty.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "core/io.h"

#define TOUT_MAX	(256 * 1024)
/* The first record of a burst decides the buffer's size: a large one
 * means bulk data (a 64 KiB SSL_write is four records), so no growing
 * copies follow. */
#define TOUT_BULK	(80 * 1024)

enum io_state { ST_CONNECTING, ST_HANDSHAKE, ST_OPEN, ST_DEAD };

struct io {
	struct ev_loop	*loop;
	int		 fd;
	io_cb		*cb;
	void		*arg;
	enum io_state	 state;
	SSL		*ssl;
	int		 server;

	char		*in;		/* bytes at in[inoff .. inoff+inlen) */
	size_t		 inoff, inlen;
	char		*out;
	size_t		 outoff, outlen, outsz;
	char		*tout;		/* TLS records not yet sent */
	size_t		 toutoff, toutlen, toutsz;
	size_t		 lowat;

	int		 paused;
	int		 eof;		/* peer closed; reported */
	int		 halfopen;	/* writable after the peer's EOF */
	int		 eof_told;	/* IO_DISCONNECTED delivered */
	int		 hup_told;	/* IO_HANGUP delivered */
	int		 busy;		/* inside a callback chain */
	int		 freed;		/* io_free() while busy */
	int		 hs_want;	/* EV_READ/EV_WRITE the handshake waits */
	int		 rd_want_write;	/* SSL_read wants the socket writable */
	int		 wr_want_read;	/* SSL_write wants it readable */
	int		 pending_error;	/* error to deliver from defer */
	int		 pending_data;	/* redeliver DATAIN from defer */
	int		 pending_hs;	/* first handshake step from defer */
	int		 pending_flush;	/* tout to send from defer */
	int		 parked;	/* fd out of epoll after a hangup */
	int		 tls_failed;	/* a TLS error: no resumption */
	int		 aborted;	/* io_abort(): nothing more is sent */
	struct io	*lnext, **lprevp;	/* lingering: the list */

	uint64_t	 timeout;
	struct ev_timer	*tmo;
	struct ev_timer	*defer;
	char		 err[256];
	unsigned long long rbytes, wbytes;
};

static void io_fd_cb(int, int, void *);
static void io_update(struct io *);

/* ios handed over by io_linger(), waiting for their peers to close */
static struct io *lingering;
static size_t nlingering;

static const char *event_names[] = {
	"connected", "tls-ready", "data-in", "low-water", "timeout", "error",
	"disconnected", "hangup",
};

const char *
io_event_name(enum io_event e)
{
	return (unsigned)e < sizeof(event_names) / sizeof(event_names[0]) ?
	    event_names[e] : "?";
}

static void
linger_unlink(struct io *io)
{
	if (io->lprevp == NULL)
		return;
	if ((*io->lprevp = io->lnext) != NULL)
		io->lnext->lprevp = io->lprevp;
	io->lprevp = NULL;
	nlingering--;
}

static void
really_free(struct io *io)
{
	linger_unlink(io);
	if (io->fd != -1) {
		/* close() below takes the fd out of epoll: no syscall */
		ev_fd_forget(io->loop, io->fd);
		if (io->ssl != NULL && !io->tls_failed && !io->aborted) {
			/* OpenSSL marks the session of an SSL freed without
			 * a shutdown as not resumable; a connection that
			 * ended without a TLS error deserves resumption */
			if (io->state == ST_OPEN && (!io->eof || io->halfopen))
				SSL_shutdown(io->ssl);	/* close_notify (in
							 * return, after the
							 * peer's half-close) */
			SSL_set_shutdown(io->ssl, SSL_SENT_SHUTDOWN |
			    SSL_RECEIVED_SHUTDOWN);
		}
		if (io->toutlen > 0)	/* best effort, never blocks */
			(void)send(io->fd, io->tout + io->toutoff,
			    io->toutlen, MSG_NOSIGNAL | MSG_DONTWAIT);
		close(io->fd);
	}
	/* after SSL_shutdown(), whose write arms the defer timer */
	ev_timer_free(io->tmo);
	ev_timer_free(io->defer);
	SSL_free(io->ssl);
	free(io->in);
	free(io->out);
	free(io->tout);
	free(io);
}

void
io_abort(struct io *io)
{
	if (io == NULL)
		return;
	/* the bytes queued here never go: neither the TLS records corked
	 * in tout (which really_free() would send, and a close_notify
	 * after them) nor the plaintext waiting to be encrypted or sent */
	io->aborted = 1;
	io->outlen = io->outoff = 0;
	io->toutlen = io->toutoff = 0;
	io_free(io);
}

void
io_free(struct io *io)
{
	if (io == NULL)
		return;
	if (io->busy) {
		linger_unlink(io);
		io->freed = 1;
		io->cb = NULL;
		ev_timer_stop(io->tmo);
		ev_timer_stop(io->defer);
		return;
	}
	really_free(io);
}

/* Delivers an event; returns 0 if the io is still alive afterwards. */
static int
emit(struct io *io, enum io_event ev)
{
	if (io->freed || io->cb == NULL)
		return -1;
	io->cb(io, ev, io->arg);
	return io->freed ? -1 : 0;
}

static void
set_err(struct io *io, const char *what, int e)
{
	if (e)
		snprintf(io->err, sizeof(io->err), "%s: %s", what, strerror(e));
	else
		snprintf(io->err, sizeof(io->err), "%s", what);
}

static void
set_ssl_err(struct io *io, const char *what, int sslerr)
{
	unsigned long e = ERR_peek_last_error();
	char buf[200];

	io->tls_failed = 1;
	if (sslerr == SSL_ERROR_SYSCALL && e == 0) {
		if (errno)
			set_err(io, what, errno);
		else
			snprintf(io->err, sizeof(io->err),
			    "%s: unexpected EOF from peer", what);
	} else if (e != 0) {
		ERR_error_string_n(e, buf, sizeof(buf));
		snprintf(io->err, sizeof(io->err), "%s: %s", what, buf);
	} else
		snprintf(io->err, sizeof(io->err), "%s: TLS error %d", what,
		    sslerr);
	ERR_clear_error();
}

static void
touch(struct io *io)
{
	if (io->timeout)
		ev_timer_arm(io->tmo, io->timeout);
}

static void
tmo_cb(void *arg)
{
	struct io *io = arg;

	io->busy++;
	snprintf(io->err, sizeof(io->err), "timeout");
	emit(io, IO_TIMEOUT);
	io->busy--;
	if (io->freed)
		really_free(io);
}

static void do_read(struct io *, int redeliver);
static void do_handshake(struct io *);
static int drain_tout(struct io *);

static void
defer_cb(void *arg)
{
	struct io *io = arg;

	io->busy++;
	if (io->pending_flush && !io->pending_error) {
		size_t before = io_queued(io);

		io->pending_flush = 0;
		if (drain_tout(io) == -1)
			io->pending_error = 1;
		else if (io->state == ST_OPEN && before > io->lowat &&
		    io_queued(io) <= io->lowat && emit(io, IO_LOWAT) == -1)
			goto out;	/* freed by its owner */
	}
	if (io->pending_error) {
		io->pending_error = 0;
		io->state = ST_DEAD;
		emit(io, IO_ERROR);
	} else if (io->pending_hs) {
		io->pending_hs = 0;
		if (io->state == ST_HANDSHAKE)
			do_handshake(io);
	} else if (io->pending_data) {
		io->pending_data = 0;
		if (io->state == ST_OPEN && !io->paused)
			do_read(io, 1);
	}
out:
	io->busy--;
	if (io->freed)
		really_free(io);
	else
		io_update(io);
}

static struct io *
io_alloc(struct ev_loop *loop, int fd, io_cb *cb, void *arg,
    enum io_state state)
{
	struct io *io;

	if ((io = calloc(1, sizeof(*io))) == NULL)
		return NULL;
	io->loop = loop;
	io->fd = fd;
	io->cb = cb;
	io->arg = arg;
	io->state = state;
	io->tmo = ev_timer_new(loop, tmo_cb, io);
	io->defer = ev_timer_new(loop, defer_cb, io);
	if (io->tmo == NULL || io->defer == NULL ||
	    ev_fd_set(loop, fd, state == ST_CONNECTING ? EV_WRITE : EV_READ,
	    io_fd_cb, io) == -1) {
		io->fd = -1;	/* caller still owns it on failure */
		really_free(io);
		return NULL;
	}
	return io;
}

struct io *
io_new(struct ev_loop *loop, int fd, io_cb *cb, void *arg)
{
	return io_alloc(loop, fd, cb, arg, ST_OPEN);
}

/* io_new() + io_wait_connected() in one epoll_ctl. */
struct io *
io_new_connecting(struct ev_loop *loop, int fd, io_cb *cb, void *arg)
{
	return io_alloc(loop, fd, cb, arg, ST_CONNECTING);
}

void
io_set_cb(struct io *io, io_cb *cb, void *arg)
{
	io->cb = cb;
	io->arg = arg;
}

int
io_fd(const struct io *io)
{
	return io->fd;
}

SSL *
io_ssl(const struct io *io)
{
	return io->ssl;
}

struct ev_loop *
io_loop(const struct io *io)
{
	return io->loop;
}

const char *
io_error(const struct io *io)
{
	return io->err[0] ? io->err : "no error";
}

unsigned long long
io_bytes_in(const struct io *io)
{
	return io->rbytes;
}

unsigned long long
io_bytes_out(const struct io *io)
{
	return io->wbytes;
}

void
io_set_timeout(struct io *io, uint64_t ms)
{
	io->timeout = ms;
	if (ms)
		ev_timer_arm(io->tmo, ms);
	else
		ev_timer_stop(io->tmo);
}

void
io_set_deadline(struct io *io, uint64_t ms)
{
	/* a deadline, not an inactivity timeout: touch() does not re-arm,
	 * so a peer that reads or writes a byte now and then cannot hold
	 * the connection past it */
	io_set_timeout(io, ms);
	io->timeout = 0;
}

void
io_set_lowat(struct io *io, size_t lowat)
{
	io->lowat = lowat;
}

void
io_set_halfopen(struct io *io, int on)
{
	io->halfopen = on;
}

void
io_wait_connected(struct io *io)
{
	io->state = ST_CONNECTING;
	io_update(io);
}

void
io_pause(struct io *io, int pause)
{
	if (io->paused == pause)
		return;
	io->paused = pause;
	if (!pause && io->state == ST_OPEN && (io->inlen > 0 ||
	    (io->ssl != NULL && SSL_has_pending(io->ssl)))) {
		/* bytes buffered here or inside OpenSSL need no socket event
		 * (what waits in the socket does: epoll is level-triggered,
		 * so no read that would only say EAGAIN) */
		io->pending_data = 1;
		ev_timer_arm(io->defer, 0);
	}
	io_update(io);
}

int
io_paused(const struct io *io)
{
	return io->paused;
}

/* ---- epoll interest ---------------------------------------------------- */

static void
io_update(struct io *io)
{
	int mask = 0;

	if (io->freed || io->fd == -1)
		return;
	switch (io->state) {
	case ST_CONNECTING:
		mask = EV_WRITE;
		break;
	case ST_HANDSHAKE:
		if (io->hs_want == 0)
			return;	/* first step pending: leave epoll alone */
		mask = io->hs_want;
		if (io->toutlen > 0 && !io->pending_flush)
			mask |= EV_WRITE;
		break;
	case ST_OPEN:
		/* Not while SSL_read waits to write (a TLS 1.3 KeyUpdate
		 * it must answer, with tout full): it reads nothing more
		 * until the socket takes our output, and the peer's bytes
		 * waiting in the socket would wake the loop at once, for
		 * ever (a peer that never reads and asks for key updates
		 * held a CPU until the timeout).  EV_WRITE below resumes;
		 * a reset still shows (epoll always reports errors). */
		if (!io->paused && !io->eof && io->inlen < IO_INBUF_MAX &&
		    !io->rd_want_write)
			mask |= EV_READ;
		else if (io->paused && !io->eof && !io->hup_told)
			mask |= EV_HUP;	/* the peer's FIN, data unread */
		if (io->toutlen > 0 && !io->pending_flush)
			mask |= EV_WRITE;	/* the socket refused some */
		if (io->outlen > 0)
			mask |= io->wr_want_read ? EV_READ : EV_WRITE;
		/* only for a read that may happen: a paused io (or a full
		 * input buffer) reads nothing when the socket has room,
		 * and epoll would report that room, level-triggered, at
		 * every turn (resuming asks again) */
		if (io->rd_want_write && !io->paused && !io->eof &&
		    io->inlen < IO_INBUF_MAX)
			mask |= EV_WRITE;
		break;
	case ST_DEAD:
		break;
	}
	if (io->parked) {
		if (!(mask & EV_READ))
			return;
		io->parked = 0;
		ev_fd_set(io->loop, io->fd, mask, io_fd_cb, io);
		return;
	}
	ev_fd_mask(io->loop, io->fd, mask);
}

/* ---- input ------------------------------------------------------------- */

size_t
io_datalen(const struct io *io)
{
	return io->inlen;
}

char *
io_data(const struct io *io)
{
	return io->in ? io->in + io->inoff : NULL;
}

/* After the owner consumed input: if reading had stopped on a full
 * buffer, OpenSSL may still hold decrypted bytes that no socket event will
 * announce, so look again from the loop. */
static void
consumed(struct io *io, int was_full)
{
	if (was_full && io->state == ST_OPEN && !io->freed) {
		io->pending_data = 1;
		ev_timer_arm(io->defer, 0);
	}
	io_update(io);
}

void
io_drop(struct io *io, size_t n)
{
	int was_full = io->inlen >= IO_INBUF_MAX;

	if (n > io->inlen)
		n = io->inlen;
	io->inoff += n;
	io->inlen -= n;
	consumed(io, was_full);
}

ssize_t
io_getline(struct io *io, size_t maxline, char **line)
{
	char *p, *lf;
	size_t len;
	int was_full = io->inlen >= IO_INBUF_MAX;

	if (io->inlen == 0)
		return -1;
	p = io->in + io->inoff;
	/* maxline counts the line without its CR LF: a CR may still wait
	 * for its LF in the next read */
	if ((lf = memchr(p, '\n', io->inlen)) == NULL)
		return io->inlen > maxline + 1 ? -2 : -1;
	len = (size_t)(lf - p);
	if (len > 0 && p[len - 1] == '\r')
		len--;
	if (len > maxline)
		return -2;
	p[len] = '\0';
	*lf = '\0';
	/* consume without freeing: *line stays valid until the next call */
	io->inoff += (size_t)(lf - p) + 1;
	io->inlen -= (size_t)(lf - p) + 1;
	*line = p;
	consumed(io, was_full);
	return (ssize_t)len;
}

/* Makes room for reading at the end of the input buffer; returns the
 * number of bytes that fit. */
static size_t
in_room(struct io *io)
{
	if (io->in == NULL) {
		if ((io->in = malloc(IO_INBUF_MAX)) == NULL)
			return 0;
		io->inoff = 0;
	}
	if (io->inoff > 0 && io->inoff + io->inlen > IO_INBUF_MAX / 2) {
		memmove(io->in, io->in + io->inoff, io->inlen);
		io->inoff = 0;
	}
	return IO_INBUF_MAX - io->inoff - io->inlen;
}

static void
do_read(struct io *io, int redeliver)
{
	size_t room;
	ssize_t n;
	int got = 0, err = 0;

	io->rd_want_write = 0;
	while (!io->eof && (room = in_room(io)) > 0) {
		char *dst = io->in + io->inoff + io->inlen;

		if (io->ssl) {
			int r;

			ERR_clear_error();
			r = SSL_read(io->ssl, dst, (int)room);
			if (r > 0)
				n = r;
			else {
				int e = SSL_get_error(io->ssl, r);

				if (e == SSL_ERROR_WANT_READ)
					break;
				if (e == SSL_ERROR_WANT_WRITE) {
					io->rd_want_write = 1;
					break;
				}
				if (e == SSL_ERROR_ZERO_RETURN) {
					io->eof = 1;
					break;
				}
				set_ssl_err(io, "TLS read", e);
				err = 1;
				break;
			}
		} else {
			n = read(io->fd, dst, room);
			if (n == 0) {
				io->eof = 1;
				break;
			}
			if (n == -1) {
				if (errno == EAGAIN || errno == EINTR)
					break;
				set_err(io, "read", errno);
				err = 1;
				break;
			}
		}
		io->inlen += (size_t)n;
		io->rbytes += (unsigned long long)n;
		got = 1;
		/* Drained: the socket (a short read), or OpenSSL's buffer.
		 * Another read would only return EAGAIN; epoll is level-
		 * triggered and reports whatever arrives later. */
		if (io->ssl ? !SSL_has_pending(io->ssl) : (size_t)n < room)
			break;
	}
	if (io->in == NULL && !io->eof && !err) {
		/* no input buffer (in_room() could not allocate one): an
		 * error, not a read of nothing, which epoll, level-
		 * triggered, would call again at once (a busy loop) */
		set_err(io, "read", ENOMEM);
		err = 1;
	}
	if (got)
		touch(io);
	if (io->inlen > 0 && (got || redeliver))
		if (emit(io, IO_DATAIN) == -1)
			return;
	if (io->inlen == 0 && io->in != NULL) {
		/* idle connections hold no buffer */
		free(io->in);
		io->in = NULL;
		io->inoff = 0;
	}
	if (err) {
		io->state = ST_DEAD;
		emit(io, IO_ERROR);
	} else if (io->eof && io->state == ST_OPEN && !io->eof_told) {
		/* half-open: the io stays open for writing; only this side
		 * of the stream has ended (told once) */
		io->eof_told = 1;
		if (!io->halfopen)
			io->state = ST_DEAD;
		emit(io, IO_DISCONNECTED);
	}
}

/* The connection ended under an io that does not read (epoll's error or
 * hangup): IO_ERROR, with the socket's error if it has one. */
static void
peer_lost(struct io *io, const char *op, const char *why)
{
	int soerr = 0;
	socklen_t sl = sizeof(soerr);

	if (getsockopt(io->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == -1)
		soerr = errno;
	if (soerr)
		set_err(io, op, soerr);
	else
		snprintf(io->err, sizeof(io->err), "%s", why);
	io->state = ST_DEAD;
	emit(io, IO_ERROR);
}

/* A half-open io after its EOF reads no more, so epoll reports only the
 * end of the rest of the connection: a reset, or (a Unix socket) the
 * peer's close.  Writing is over; without this, the level-triggered
 * hangup would wake the loop for ever. */
static void
halfopen_lost(struct io *io)
{
	peer_lost(io, "write", "connection closed by peer after its EOF");
}

/* ---- output ------------------------------------------------------------ */

size_t
io_queued(const struct io *io)
{
	return io->outlen + io->toutlen;
}

/* ---- corked TLS output ------------------------------------------------- */

/* Sends what OpenSSL wrote; 0 when all went or the socket is full, -1 on
 * an error. */
static int
drain_tout(struct io *io)
{
	ssize_t n;

	while (io->toutlen > 0) {
		n = send(io->fd, io->tout + io->toutoff, io->toutlen,
		    MSG_NOSIGNAL);
		if (n == -1) {
			if (errno == EAGAIN || errno == EINTR)
				return 0;	/* io_update asks for EV_WRITE */
			set_err(io, "write", errno);
			return -1;
		}
		io->toutoff += (size_t)n;
		io->toutlen -= (size_t)n;
		touch(io);
	}
	free(io->tout);
	io->tout = NULL;
	io->toutoff = io->toutsz = 0;
	return 0;
}

static int
tout_bio_write(BIO *b, const char *data, int len)
{
	struct io *io = BIO_get_data(b);
	size_t n = (size_t)len;

	BIO_clear_retry_flags(b);
	if (len <= 0)
		return 0;
	if (io->toutlen >= TOUT_MAX) {
		BIO_set_retry_write(b);
		return -1;
	}
	if (io->toutoff + io->toutlen + n > io->toutsz) {
		if (io->toutoff > 0) {
			memmove(io->tout, io->tout + io->toutoff, io->toutlen);
			io->toutoff = 0;
		}
		if (io->toutlen + n > io->toutsz) {
			size_t sz = io->toutsz ? io->toutsz :
			    n >= 8192 ? TOUT_BULK : 4096;
			char *p;

			while (sz < io->toutlen + n)
				sz *= 2;
			if ((p = realloc(io->tout, sz)) == NULL)
				return -1;	/* a fatal TLS write error */
			io->tout = p;
			io->toutsz = sz;
		}
	}
	memcpy(io->tout + io->toutoff + io->toutlen, data, n);
	io->toutlen += n;
	if (!io->pending_flush) {
		io->pending_flush = 1;
		ev_timer_arm(io->defer, 0);
	}
	return len;
}

static long
tout_bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	(void)b;
	(void)num;
	(void)ptr;
	switch (cmd) {
	case BIO_CTRL_FLUSH:	/* sent from the loop, see drain_tout() */
		return 1;
	default:
		return 0;
	}
}

static int
tout_bio_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

static BIO_METHOD *tout_method;

static BIO *
tout_bio_new(struct io *io)
{
	BIO *b;

	if (tout_method == NULL) {
		BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() |
		    BIO_TYPE_SOURCE_SINK, "mxguard tls output");

		if (m == NULL || !BIO_meth_set_write(m, tout_bio_write) ||
		    !BIO_meth_set_ctrl(m, tout_bio_ctrl) ||
		    !BIO_meth_set_create(m, tout_bio_create)) {
			BIO_meth_free(m);
			return NULL;
		}
		tout_method = m;
	}
	if ((b = BIO_new(tout_method)) != NULL)
		BIO_set_data(b, io);
	return b;
}

/* Writes buffered output; never emits.  Returns -1 on a fatal error. */
static int
flush_out(struct io *io)
{
	ssize_t n;
	int progress = 0;

	io->wr_want_read = 0;
	while (io->outlen > 0) {
		const char *src = io->out + io->outoff;

		if (io->ssl) {
			int r;

			ERR_clear_error();
			r = SSL_write(io->ssl, src, io->outlen > 1 << 30 ?
			    1 << 30 : (int)io->outlen);
			if (r > 0)
				n = r;
			else {
				int e = SSL_get_error(io->ssl, r);

				if (e == SSL_ERROR_WANT_WRITE)
					break;
				if (e == SSL_ERROR_WANT_READ) {
					io->wr_want_read = 1;
					break;
				}
				set_ssl_err(io, "TLS write", e);
				return -1;
			}
		} else {
			n = send(io->fd, src, io->outlen, MSG_NOSIGNAL);
			if (n == -1) {
				if (errno == EAGAIN || errno == EINTR)
					break;
				set_err(io, "write", errno);
				return -1;
			}
		}
		io->outoff += (size_t)n;
		io->outlen -= (size_t)n;
		io->wbytes += (unsigned long long)n;
		progress = 1;
	}
	if (io->outlen == 0 && io->out != NULL) {
		free(io->out);
		io->out = NULL;
		io->outoff = io->outsz = 0;
	}
	if (progress)
		touch(io);
	return 0;
}

/* Sends directly from the caller's buffer while nothing is queued (the
 * DATA path's common case), and queues only what the socket refused.
 * With SSL_MODE_ENABLE_PARTIAL_WRITE an SSL_write returns after one
 * record (16 KiB): loop, or the rest of a 64 KiB write would be copied to
 * the output buffer and encrypted only after another round of the loop. */
static ssize_t
write_direct(struct io *io, const char *buf, size_t len)
{
	ssize_t n;
	size_t done = 0;
	int r;

	if (io->ssl == NULL) {
		n = send(io->fd, buf, len, MSG_NOSIGNAL);
		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			return 0;
		if (n == -1)
			set_err(io, "write", errno);
		return n;
	}
	ERR_clear_error();
	while (done < len) {
		size_t chunk = len - done;

		r = SSL_write(io->ssl, buf + done, chunk > 1 << 30 ? 1 << 30 :
		    (int)chunk);
		if (r > 0) {
			done += (size_t)r;
			continue;
		}
		switch (SSL_get_error(io->ssl, r)) {
		case SSL_ERROR_WANT_WRITE:
			return (ssize_t)done;
		case SSL_ERROR_WANT_READ:
			io->wr_want_read = 1;
			return (ssize_t)done;
		default:
			set_ssl_err(io, "TLS write", SSL_get_error(io->ssl, r));
			return -1;
		}
	}
	return (ssize_t)done;
}

int
io_write(struct io *io, const void *buf, size_t len)
{
	const char *p = buf;

	/* After a failed write nothing more goes out: a later write that
	 * the socket took would leave a hole in the stream (the rest of a
	 * message and its final dot, behind a piece that never went). */
	if (io->state == ST_DEAD || io->freed || io->pending_error)
		return -1;
	if (len == 0)
		return 0;
	/* Not while connecting or in a handshake: the state machine there
	 * decides when bytes may go. */
	if (io->state == ST_OPEN && io->outlen == 0 && !io->wr_want_read) {
		ssize_t n = write_direct(io, p, len);

		if (n == -1) {
			io->pending_error = 1;
			ev_timer_arm(io->defer, 0);
			return 0;
		}
		if (n > 0) {
			io->wbytes += (unsigned long long)n;
			touch(io);
		}
		p += n;
		len -= (size_t)n;
		if (len == 0)
			return 0;
	}
	if (io->outoff + io->outlen + len > io->outsz) {
		if (io->outoff > 0 && io->outlen + len <= io->outsz) {
			memmove(io->out, io->out + io->outoff, io->outlen);
			io->outoff = 0;
		} else {
			size_t sz = io->outsz ? io->outsz : 4096;
			char *n;

			while (sz < io->outlen + len)
				sz *= 2;
			if (io->outoff > 0) {
				memmove(io->out, io->out + io->outoff,
				    io->outlen);
				io->outoff = 0;
			}
			if ((n = realloc(io->out, sz)) == NULL) {
				/* these bytes are lost: the stream cannot go
				 * on without them, so it ends (IO_ERROR) */
				set_err(io, "write", ENOMEM);
				io->pending_error = 1;
				ev_timer_arm(io->defer, 0);
				return -1;
			}
			io->out = n;
			io->outsz = sz;
		}
	}
	memcpy(io->out + io->outoff + io->outlen, p, len);
	io->outlen += len;
	io_update(io);
	return 0;
}

/* A write that cannot be made (no memory for the text, or no text):
 * the stream ends there, as in io_write(), rather than go on with a
 * hole where these bytes belonged. */
static int
write_lost(struct io *io, int e)
{
	set_err(io, "write", e);
	io->pending_error = 1;
	ev_timer_arm(io->defer, 0);
	return -1;
}

int
io_printf(struct io *io, const char *fmt, ...)
{
	char buf[1024], *big;
	va_list ap;
	int n, r;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (io->state == ST_DEAD || io->freed || io->pending_error)
		return -1;
	if (n < 0)
		return write_lost(io, EINVAL);
	if ((size_t)n < sizeof(buf))
		return io_write(io, buf, (size_t)n);
	/* Longer than the buffer (an HTTP request head with a long path):
	 * written whole.  Refused instead, it left the next io_write()
	 * (the request's body) to go out alone, without its head. */
	if ((big = malloc((size_t)n + 1)) == NULL)
		return write_lost(io, ENOMEM);
	va_start(ap, fmt);
	(void)vsnprintf(big, (size_t)n + 1, fmt, ap);
	va_end(ap);
	r = io_write(io, big, (size_t)n);
	free(big);
	return r;
}

/* ---- TLS handshake ----------------------------------------------------- */

int
io_start_tls(struct io *io, SSL *ssl, int server)
{
	BIO *rb, *wb;

	if (io->ssl != NULL || io->state != ST_OPEN || io->outlen > 0)
		return -1;
	/* reads straight from the socket; writes corked (see the top) */
	if ((rb = BIO_new_socket(io->fd, BIO_NOCLOSE)) == NULL)
		return -1;
	if ((wb = tout_bio_new(io)) == NULL) {
		BIO_free(rb);
		return -1;
	}
	SSL_set_bio(ssl, rb, wb);
	/* io_write() retries a refused SSL_write from its own buffer */
	SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
	io->ssl = ssl;
	io->server = server;
	if (server)
		SSL_set_accept_state(ssl);
	else
		SSL_set_connect_state(ssl);
	io->state = ST_HANDSHAKE;
	/* The first step runs from the loop (never inside the caller's
	 * callback) without asking epoll for writability: the socket of a
	 * connection that just exchanged STARTTLS has room. */
	io->hs_want = 0;
	io->pending_hs = 1;
	ev_timer_arm(io->defer, 0);
	return 0;
}

static void
do_handshake(struct io *io)
{
	int r, e;

	io->pending_hs = 0;
	ERR_clear_error();
	r = SSL_do_handshake(io->ssl);
	if (r == 1) {
		io->state = ST_OPEN;
		touch(io);
		/* read-ahead may already hold the peer's first records: no
		 * socket event will announce them */
		io->pending_data = 1;
		ev_timer_arm(io->defer, 0);
		if (emit(io, IO_TLSREADY) == 0 && io->outlen > 0 &&
		    flush_out(io) == -1) {
			io->state = ST_DEAD;
			emit(io, IO_ERROR);
		}
		return;
	}
	e = SSL_get_error(io->ssl, r);
	if (e == SSL_ERROR_WANT_READ) {
		io->hs_want = EV_READ;
		return;
	}
	if (e == SSL_ERROR_WANT_WRITE) {
		io->hs_want = EV_WRITE;
		return;
	}
	set_ssl_err(io, "TLS handshake", e);
	io->state = ST_DEAD;
	emit(io, IO_ERROR);
}

/* ---- graceful end ------------------------------------------------------ */

static void
linger_cb(struct io *io, enum io_event ev, void *arg)
{
	(void)arg;
	switch (ev) {
	case IO_DATAIN:
		io_drop(io, io->inlen);
		break;
	case IO_TIMEOUT:
	case IO_ERROR:
	case IO_DISCONNECTED:
		io_free(io);
		break;
	default:
		break;
	}
}

void
io_linger(struct io *io, uint64_t ms)
{
	if (io == NULL || io->freed)
		return;
	if (io->state != ST_OPEN || io->eof || ms == 0) {
		io_free(io);
		return;
	}
	io->cb = linger_cb;
	io->arg = NULL;
	io->lowat = 0;
	if (io->ssl != NULL)
		SSL_set_options(io->ssl, SSL_OP_IGNORE_UNEXPECTED_EOF);
	if ((io->lnext = lingering) != NULL)
		io->lnext->lprevp = &io->lnext;
	lingering = io;
	io->lprevp = &lingering;
	nlingering++;
	io_set_deadline(io, ms);
	io_pause(io, 0);
}

size_t
io_lingering(void)
{
	return nlingering;
}

void
io_linger_flush(void)
{
	while (lingering != NULL)
		io_free(lingering);
}

/* ---- the fd callback --------------------------------------------------- */

static void
io_fd_cb(int fd, int events, void *arg)
{
	struct io *io = arg;
	size_t before;
	int soerr = 0;
	socklen_t sl = sizeof(soerr);

	io->busy++;
	switch (io->state) {
	case ST_CONNECTING:
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == -1)
			soerr = errno;
		if (soerr) {
			set_err(io, "connect", soerr);
			io->state = ST_DEAD;
			emit(io, IO_ERROR);
			break;
		}
		io->state = ST_OPEN;
		touch(io);
		if (emit(io, IO_CONNECTED) == 0 && io->outlen > 0 &&
		    flush_out(io) == -1) {
			io->state = ST_DEAD;
			emit(io, IO_ERROR);
		}
		break;
	case ST_HANDSHAKE:
		if (io->toutlen > 0 && drain_tout(io) == -1) {
			io->state = ST_DEAD;
			emit(io, IO_ERROR);
			break;
		}
		do_handshake(io);
		break;
	case ST_OPEN:
		if (io->eof && (events & EV_ERROR)) {
			halfopen_lost(io);
			break;
		}
		if ((io->outlen > 0 || io->toutlen > 0) &&
		    ((events & EV_WRITE) ||
		    (io->wr_want_read && (events & EV_READ)))) {
			before = io_queued(io);
			if (drain_tout(io) == -1 || flush_out(io) == -1 ||
			    drain_tout(io) == -1) {
				io->state = ST_DEAD;
				emit(io, IO_ERROR);
				break;
			}
			if (before > io->lowat && io_queued(io) <= io->lowat &&
			    emit(io, IO_LOWAT) == -1)
				break;
		}
		if (io->state != ST_OPEN)
			break;
		if (!io->paused && io->inlen < IO_INBUF_MAX &&
		    (events & (EV_READ | EV_ERROR) ||
		    (io->rd_want_write && (events & EV_WRITE))))
			do_read(io, 0);
		else if (io->paused && (events & EV_ERROR))
			/* a reset (or a Unix socket's close) while the owner
			 * holds the peer back: the connection is over, and
			 * the owner must not wait to read again to hear it */
			peer_lost(io, "read", "connection closed by peer");
		else if (io->paused && (events & EV_HUP) && !io->eof &&
		    !io->hup_told) {
			/* the peer's FIN: what it sent before is still in
			 * the socket, unread; told once (the mask drops
			 * EV_HUP), its EOF comes when reading resumes */
			io->hup_told = 1;
			emit(io, IO_HANGUP);
		} else if (events & EV_ERROR) {
			/* epoll reports errors and hangups even with an empty
			 * mask: park the fd until the owner reads again */
			ev_fd_del(io->loop, io->fd);
			io->parked = 1;
		}
		break;
	case ST_DEAD:
		/* an error was reported; stop listening */
		break;
	}
	io->busy--;
	if (io->freed)
		really_free(io);
	else
		io_update(io);
}
