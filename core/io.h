/*
 * io.h - buffered, non-blocking socket with optional TLS, as events.
 *
 * After OpenSMTPD's ioev.h: the owner of a struct io never calls read(),
 * write(), SSL_read() or epoll itself; it gets one callback with an event:
 *
 *   IO_CONNECTED     a non-blocking connect() completed
 *   IO_TLSREADY      the TLS handshake completed (verification is the
 *                    owner's business: look at the SSL object)
 *   IO_DATAIN        new bytes are in the input buffer
 *   IO_LOWAT         the output buffer drained to the low-water mark
 *   IO_TIMEOUT       no progress for the timeout set with io_set_timeout()
 *   IO_ERROR         a socket or TLS error; io_error() says which
 *   IO_DISCONNECTED  the peer closed (after a last IO_DATAIN if any)
 *   IO_HANGUP        the peer shut down its sending side while reading is
 *                    paused: what it sent before is still unread (resume
 *                    to get it, then IO_DISCONNECTED as usual)
 *
 * Events are never delivered from inside io_write() and friends, only from
 * the event loop, so an owner can write from its callback without
 * re-entering itself.  The owner may io_free() from inside its callback.
 *
 * Buffers are allocated when needed and released when empty, so an idle
 * connection holds no buffer memory.  The input buffer is bounded
 * (IO_INBUF_MAX): when it is full, reading stops until the owner consumes.
 * The output buffer is not bounded by io: the owner applies back-pressure
 * by looking at io_queued() and pausing the other side's reads.
 *
 * io_new() takes ownership of the fd; io_free() closes it and frees the SSL
 * object given to io_start_tls().  io_linger() is the other way out: the
 * owner hands the io back to io.c, which frees it once the peer has
 * closed (or at a deadline).
 */
#ifndef MXG_IO_H
#define MXG_IO_H

#include <stddef.h>
#include <sys/types.h>
#include <openssl/ssl.h>

#include "core/ev.h"

#define IO_INBUF_MAX	(64 * 1024)

enum io_event {
	IO_CONNECTED,
	IO_TLSREADY,
	IO_DATAIN,
	IO_LOWAT,
	IO_TIMEOUT,
	IO_ERROR,
	IO_DISCONNECTED,
	IO_HANGUP,
};

struct io;
typedef void io_cb(struct io *, enum io_event, void *arg);

struct io	*io_new(struct ev_loop *, int fd, io_cb *, void *arg);
void		 io_free(struct io *);
/* io_free(), but what is still queued for the peer (plain or TLS
 * records) is dropped, not sent "best effort" on the way out, and no
 * close_notify follows it: for a connection whose last bytes must not
 * reach the peer (a message's final dot, when the session gave up on
 * the message). */
void		 io_abort(struct io *);
void		 io_set_cb(struct io *, io_cb *, void *arg);
int		 io_fd(const struct io *);
const char	*io_event_name(enum io_event);

/* Waits for a non-blocking connect() already started on the fd. */
void		 io_wait_connected(struct io *);
/* io_new() and io_wait_connected() at once (one epoll_ctl less). */
struct io	*io_new_connecting(struct ev_loop *, int fd, io_cb *,
		    void *arg);

/* Starts a TLS handshake; ssl must be fresh (SSL_new), set up for the
 * client or server role by the caller (SNI, DANE, verify mode).  io owns
 * it from here. */
int		 io_start_tls(struct io *, SSL *ssl, int server);
SSL		*io_ssl(const struct io *);
/* The loop the io runs on. */
struct ev_loop	*io_loop(const struct io *);

/* Timeout in ms (0: none), restarted on every read or write progress. */
void		 io_set_timeout(struct io *, uint64_t ms);
/* IO_TIMEOUT ms from now, whatever progress is made (until the next
 * io_set_timeout or io_set_deadline). */
void		 io_set_deadline(struct io *, uint64_t ms);
/* IO_LOWAT is sent when a flush brings io_queued() from above lowat to at
 * or below it. */
void		 io_set_lowat(struct io *, size_t lowat);
/* Half-open mode (off by default): at the peer's EOF (a TCP FIN, a TLS
 * close_notify) IO_DISCONNECTED still comes, once, but the io stays open
 * for writing, so the owner can still answer a peer that shut down only
 * its sending side.  Input still buffered is delivered as before.  A
 * later reset (or a Unix socket's full close) is IO_ERROR.  A TCP peer
 * that closed entirely looks the same as one that half-closed until a
 * write draws its reset.  Not for TLS EOF without close_notify: that is
 * IO_ERROR, as always. */
void		 io_set_halfopen(struct io *, int on);
/* Stop or resume reading (back-pressure).  Resuming redelivers
 * IO_DATAIN for bytes still buffered.  While paused, the peer's close is
 * still heard: its FIN is IO_HANGUP (once; the bytes before it wait in
 * the socket), a reset (or a Unix socket's close) IO_ERROR at once, so
 * an owner that holds a peer back learns that it left without reading
 * what it sent. */
void		 io_pause(struct io *, int pause);
int		 io_paused(const struct io *);

/* Input buffer. */
size_t		 io_datalen(const struct io *);
char		*io_data(const struct io *);
void		 io_drop(struct io *, size_t n);
/* Takes one line ending in LF (a CR before the LF is removed too) off the
 * input: returns its length and sets *line (NUL-terminated, valid until
 * the next io call).  Returns -1 when no complete line is buffered, -2
 * when more than maxline bytes arrived without a line end. */
ssize_t		 io_getline(struct io *, size_t maxline, char **line);

/* Output: appends, and writes what the socket takes now. */
int		 io_write(struct io *, const void *buf, size_t len);
int		 io_printf(struct io *, const char *fmt, ...)
		    __attribute__((format(printf, 2, 3)));
size_t		 io_queued(const struct io *);

/* The graceful end of a connection whose last words are said (a QUIT
 * written, a 221 read): the io leaves its owner (no more events), sends
 * what is queued, reads and drops what arrives, and is freed when the peer
 * closes, on an error, or ms after this call at the latest (a peer that
 * keeps talking does not extend it).  Waiting for the peer's close means
 * this side never writes into a socket the peer has closed: the reset that
 * would draw leaves a conntrack entry behind (docs/rules.md, rule 0).  A
 * TLS EOF without close_notify counts as a clean end here.  An io that is
 * not open (connecting, handshaking, failed) is freed at once. */
void		 io_linger(struct io *, uint64_t ms);
/* How many ios are lingering (drain waits for them). */
size_t		 io_lingering(void);
/* Frees every lingering io now (the end of the process). */
void		 io_linger_flush(void);

const char	*io_error(const struct io *);
unsigned long long io_bytes_in(const struct io *);
unsigned long long io_bytes_out(const struct io *);

#endif
