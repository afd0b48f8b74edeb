/*
 * test_io_tls.c - the io layer with TLS: corked output (the handshake's
 * last flight and the first write after it leave in one send), bulk data
 * through the bounded TLS output buffer with back-pressure and a
 * low-water event, a writer paced by low-water events, a clean close
 * (close_notify), bulk data across TLS 1.3 key updates the peer
 * requests while the writer is backed up, and a flood of key update
 * requests from a peer that does not read (no busy loop).
 *
 * The peer is a plain OpenSSL server driven by hand.  For counting sends
 * it sits on an AF_UNIX SOCK_SEQPACKET socket, which keeps the boundary
 * of every send() the io makes; it reads each message and feeds it to its
 * SSL through a memory BIO.
 */
// WRAP: epoll_wait
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "core/ev.h"
#include "core/io.h"

#include "testloop.h"

static struct ev_loop *loop;

/* The loop's wake-ups: a loop that spins on an fd it cannot serve wakes
 * up without end. */
static unsigned long epoll_wakeups;

int __real_epoll_wait(int, struct epoll_event *, int, int);
int __wrap_epoll_wait(int, struct epoll_event *, int, int);

int
__wrap_epoll_wait(int epfd, struct epoll_event *evs, int max, int timeout)
{
	epoll_wakeups++;
	return __real_epoll_wait(epfd, evs, max, timeout);
}
static SSL_CTX *sctx, *cctx;

struct peer {
	int	 fd;
	SSL	*ssl;
	BIO	*in;		/* what the io sent, fed by hand */
	int	 sends;		/* messages received (SEQPACKET) */
	int	 hs_done;
};

struct client {
	int	 tlsready;
	int	 lowat;
	int	 errors;
	const char *first;	/* written from the TLSREADY callback */
};

static void
client_cb(struct io *io, enum io_event ev, void *arg)
{
	struct client *c = arg;

	switch (ev) {
	case IO_TLSREADY:
		c->tlsready++;
		if (c->first)
			io_write(io, c->first, strlen(c->first));
		break;
	case IO_LOWAT:
		c->lowat++;
		break;
	case IO_ERROR:
		c->errors++;
		break;
	default:
		break;
	}
}

static SSL_CTX *
server_ctx(void)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	assert_non_null(key);
	assert_non_null(ctx);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, key);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN",
	    MBSTRING_ASC, (const unsigned char *)"peer.test", -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	assert_true(X509_sign(x, key, EVP_sha256()) > 0);
	assert_int_equal(SSL_CTX_use_certificate(ctx, x), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(ctx, key), 1);
	X509_free(x);
	EVP_PKEY_free(key);
	return ctx;
}

static int
setup(void **state)
{
	(void)state;
	sctx = server_ctx();
	cctx = SSL_CTX_new(TLS_client_method());
	assert_non_null(cctx);
	SSL_CTX_set_verify(cctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_read_ahead(cctx, 1);	/* as tlsproxy/tls.c does */
	SSL_CTX_set_session_cache_mode(cctx, SSL_SESS_CACHE_CLIENT |
	    SSL_SESS_CACHE_NO_INTERNAL_STORE);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
	return 0;
}

static void
peer_init(struct peer *p, int fd)
{
	memset(p, 0, sizeof(*p));
	p->fd = fd;
	p->ssl = SSL_new(sctx);
	p->in = BIO_new(BIO_s_mem());
	assert_non_null(p->ssl);
	assert_non_null(p->in);
	BIO_set_mem_eof_return(p->in, -1);
	/* reads from the memory BIO, writes straight to the socket */
	SSL_set_bio(p->ssl, p->in, BIO_new_socket(fd, BIO_NOCLOSE));
	SSL_set_accept_state(p->ssl);
}

/* Moves everything the io sent into the peer's SSL; counts sends. */
static void
peer_pump(struct peer *p)
{
	static char buf[300000];
	ssize_t n;

	while ((n = recv(p->fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
		p->sends++;
		BIO_write(p->in, buf, (int)n);
	}
	if (!p->hs_done && SSL_do_handshake(p->ssl) == 1)
		p->hs_done = 1;
}

/* A client io and the peer on socket type `type`, handshake done. */
static struct io *
tls_pair(int type, io_cb *cb, void *arg, struct client *c, struct peer *p)
{
	struct io *io;
	int sp[2], i;

	loop = ev_loop_new();
	assert_int_equal(socketpair(AF_UNIX, type | SOCK_NONBLOCK, 0, sp), 0);
	io = io_new(loop, sp[0], cb, arg);
	assert_non_null(io);
	peer_init(p, sp[1]);
	assert_int_equal(io_start_tls(io, SSL_new(cctx), 0), 0);
	for (i = 0; i < 200 && !(c->tlsready && p->hs_done); i++) {
		testloop_run(loop, 2);
		peer_pump(p);
	}
	assert_int_equal(c->tlsready, 1);
	assert_int_equal(p->hs_done, 1);
	return io;
}

static void
peer_free(struct peer *p)
{
	SSL_free(p->ssl);
	close(p->fd);
}

/* The client's Finished and the first command written from the
 * TLSREADY callback share one send; so do the bytes of one batch. */
static void
test_tls_corked_handshake(void **state)
{
	struct client c = { .first = "EHLO client.test\r\n" };
	struct peer p;
	struct io *io;
	char buf[64];
	int n, sends_hs;

	(void)state;
	io = tls_pair(SOCK_SEQPACKET, client_cb, &c, &c, &p);
	testloop_run(loop, 5);
	peer_pump(&p);
	/* ClientHello, then Finished (with TLS 1.3's compatibility CCS)
	 * and the EHLO: two sends in all, not three or more */
	assert_int_equal(p.sends, 2);
	n = SSL_read(p.ssl, buf, sizeof(buf) - 1);
	assert_int_equal(n, (int)strlen(c.first));
	buf[n] = '\0';
	assert_string_equal(buf, c.first);

	/* three writes in one callback batch: one send */
	sends_hs = p.sends;
	io_write(io, "MAIL FROM:<a@b>\r\n", 17);
	io_write(io, "RCPT TO:<c@d>\r\n", 15);
	io_write(io, "DATA\r\n", 6);
	testloop_run(loop, 5);
	peer_pump(&p);
	assert_int_equal(p.sends, sends_hs + 1);
	n = SSL_read(p.ssl, buf, sizeof(buf) - 1);
	assert_true(n > 0);
	assert_int_equal(c.errors, 0);
	io_free(io);
	peer_free(&p);
	ev_loop_free(loop);
}

/* 2 MB through TLS while the peer reads slowly: bounded buffering
 * (io_queued() counts the records not yet sent), every byte intact, a
 * low-water event at the end; then a close_notify on io_free(). */
static void
test_tls_bulk_backpressure(void **state)
{
	struct client c = { 0 };
	struct peer p;
	struct io *io;
	static char data[2 << 20], got[2 << 20];
	size_t have = 0, maxq = 0;
	int i, r;
	ssize_t n;
	char tmp[65536];

	(void)state;
	io = tls_pair(SOCK_STREAM, client_cb, &c, &c, &p);
	for (i = 0; i < (int)sizeof(data); i++)
		data[i] = (char)(i * 7 + i / 4096);
	io_set_lowat(io, 0);
	assert_int_equal(io_write(io, data, sizeof(data)), 0);
	for (i = 0; i < 20000 && (have < sizeof(data) || io_queued(io));
	    i++) {
		if (io_queued(io) > maxq)
			maxq = io_queued(io);
		testloop_run(loop, 1);
		/* a slow reader: one chunk per turn */
		if ((n = recv(p.fd, tmp, sizeof(tmp), MSG_DONTWAIT)) > 0)
			BIO_write(p.in, tmp, (int)n);
		while ((r = SSL_read(p.ssl, got + have, (int)(sizeof(got) -
		    have))) > 0)
			have += (size_t)r;
	}
	assert_int_equal(have, sizeof(data));
	assert_memory_equal(got, data, sizeof(data));
	assert_int_equal(io_queued(io), 0);
	assert_true(maxq > 0);
	assert_true(c.lowat >= 1);
	assert_int_equal(c.errors, 0);
	assert_int_equal(io_bytes_out(io), sizeof(data));

	/* io_free() sends close_notify: the peer sees a clean TLS EOF */
	io_free(io);
	while ((n = recv(p.fd, tmp, sizeof(tmp), MSG_DONTWAIT)) > 0)
		BIO_write(p.in, tmp, (int)n);
	r = SSL_read(p.ssl, tmp, sizeof(tmp));
	assert_int_equal(r, 0);
	assert_int_equal(SSL_get_error(p.ssl, r), SSL_ERROR_ZERO_RETURN);
	peer_free(&p);
	ev_loop_free(loop);
}

/* A writer that only writes above the low-water mark when told so (as
 * the DATA pump does): the drain from the loop must announce IO_LOWAT,
 * or the writer waits forever. */
struct pump {
	struct client	 c;
	const char	*data;
	size_t		 len, off;
};

#define PUMP_HIWAT	(256 * 1024)
#define PUMP_CHUNK	(64 * 1024)

static void
pump_fill(struct io *io, struct pump *pu)
{
	while (pu->off < pu->len && io_queued(io) <= PUMP_HIWAT) {
		size_t n = pu->len - pu->off < PUMP_CHUNK ?
		    pu->len - pu->off : PUMP_CHUNK;

		io_write(io, pu->data + pu->off, n);
		pu->off += n;
	}
}

static void
pump_cb(struct io *io, enum io_event ev, void *arg)
{
	struct pump *pu = arg;

	client_cb(io, ev, &pu->c);
	if (ev == IO_TLSREADY || ev == IO_LOWAT)
		pump_fill(io, pu);
}

static void
test_tls_lowat_pump(void **state)
{
	static char data[3 << 20], got[3 << 20];
	struct pump pu = { .data = data, .len = sizeof(data) };
	struct peer p;
	struct io *io;
	size_t have = 0;
	int sp[2], i, r;
	ssize_t n;
	char tmp[32768];

	(void)state;
	loop = ev_loop_new();
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0,
	    sp), 0);
	io = io_new(loop, sp[0], pump_cb, &pu);
	io_set_lowat(io, 64 * 1024);
	peer_init(&p, sp[1]);
	for (i = 0; i < (int)sizeof(data); i++)
		data[i] = (char)(i * 13 + i / 1000);
	assert_int_equal(io_start_tls(io, SSL_new(cctx), 0), 0);
	for (i = 0; i < 30000 && have < sizeof(data); i++) {
		testloop_run(loop, 1);
		if ((n = recv(p.fd, tmp, sizeof(tmp), MSG_DONTWAIT)) > 0)
			BIO_write(p.in, tmp, (int)n);
		if (!p.hs_done) {
			peer_pump(&p);
			continue;
		}
		while ((r = SSL_read(p.ssl, got + have, (int)(sizeof(got) -
		    have))) > 0)
			have += (size_t)r;
	}
	assert_int_equal(pu.off, sizeof(data));
	assert_int_equal(have, sizeof(data));
	assert_memory_equal(got, data, sizeof(data));
	assert_true(pu.c.lowat > 0);
	assert_int_equal(pu.c.errors, 0);
	io_free(io);
	peer_free(&p);
	ev_loop_free(loop);
}

/* KeyUpdate handshake messages seen by one side, by direction and by the
 * request_update field (0: update_not_requested, 1: update_requested). */
struct kucount {
	int	 sent[2];
	int	 rcvd[2];
};

static void
ku_msg_cb(int write_p, int version, int content_type, const void *buf,
    size_t len, SSL *ssl, void *arg)
{
	struct kucount *k = arg;
	const unsigned char *m = buf;

	(void)version;
	(void)ssl;
	/* type 24, a 3-byte length of 1, then request_update */
	if (content_type != SSL3_RT_HANDSHAKE || len != 5 ||
	    m[0] != SSL3_MT_KEY_UPDATE || m[4] > 1)
		return;
	if (write_p)
		k->sent[m[4]]++;
	else
		k->rcvd[m[4]]++;
}

static uint32_t
ku_next(uint32_t *x)
{
	/* xorshift32: a pattern in which a byte moved or repeated shows */
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return *x;
}

/* 2 MB through TLS 1.3 while the peer asks twice for a key update
 * (SSL_key_update(..., SSL_KEY_UPDATE_REQUESTED), after 256 KB and 1 MB
 * read) and reads slowly, so the writer is backed up (a small SO_SNDBUF,
 * the TLS output buffer full, most of the 2 MB in the io's output
 * buffer) when each request arrives.  The writer's OpenSSL must then
 * answer with its own KeyUpdate and switch its sending keys between two
 * records, its answer queued behind records the io has not sent yet,
 * while SSL_write keeps being refused and retried from the io's buffer:
 * a record lost, repeated or encrypted under the wrong key would show
 * as a hole, a repeat or a MAC failure at the peer.
 * Every byte arrives once and in order, the total is exact, the close
 * after it is a clean close_notify (under the new keys), and both
 * updates really took place: the msg callbacks count two requests sent
 * by the peer and received by the writer, and two answers sent by the
 * writer and received by the peer. */
static void
test_tls_key_update_backpressure(void **state)
{
	struct client c = { 0 };
	struct kucount kw = { 0 }, kp = { 0 };
	struct peer p;
	struct io *io;
	static char data[2 << 20], got[(2 << 20) + 65536];
	static const size_t at[] = { 256 * 1024, 1024 * 1024 };
	size_t have = 0, nku = 0;
	uint32_t x = 0x6d786775;	/* seed */
	int i, r, sz = 32 * 1024;
	ssize_t n;
	char tmp[16384];

	(void)state;
	io = tls_pair(SOCK_STREAM, client_cb, &c, &c, &p);
	assert_int_equal(SSL_version(io_ssl(io)), TLS1_3_VERSION);
	assert_int_equal(SSL_version(p.ssl), TLS1_3_VERSION);
	SSL_set_msg_callback(io_ssl(io), ku_msg_cb);
	SSL_set_msg_callback_arg(io_ssl(io), &kw);
	SSL_set_msg_callback(p.ssl, ku_msg_cb);
	SSL_set_msg_callback_arg(p.ssl, &kp);
	assert_int_equal(setsockopt(io_fd(io), SOL_SOCKET, SO_SNDBUF, &sz,
	    sizeof(sz)), 0);
	assert_int_equal(setsockopt(p.fd, SOL_SOCKET, SO_RCVBUF, &sz,
	    sizeof(sz)), 0);
	for (i = 0; i < (int)sizeof(data); i++)
		data[i] = (char)(ku_next(&x) >> 24);
	io_set_lowat(io, 0);
	assert_int_equal(io_write(io, data, sizeof(data)), 0);
	for (i = 0; i < 20000 && (have < sizeof(data) || io_queued(io));
	    i++) {
		testloop_run(loop, 1);
		/* a slow reader: one small chunk per turn */
		if ((n = recv(p.fd, tmp, sizeof(tmp), MSG_DONTWAIT)) > 0)
			BIO_write(p.in, tmp, (int)n);
		while ((r = SSL_read(p.ssl, got + have, (int)(sizeof(got) -
		    have))) > 0)
			have += (size_t)r;
		assert_int_equal(SSL_get_error(p.ssl, r), SSL_ERROR_WANT_READ);
		if (nku < sizeof(at) / sizeof(at[0]) && have >= at[nku]) {
			/* the writer is backed up as the request goes */
			assert_true(io_queued(io) > 256 * 1024);
			assert_int_equal(SSL_key_update(p.ssl,
			    SSL_KEY_UPDATE_REQUESTED), 1);
			assert_int_equal(SSL_do_handshake(p.ssl), 1);
			nku++;
		}
	}
	assert_int_equal(nku, 2);
	assert_int_equal(have, sizeof(data));
	assert_memory_equal(got, data, sizeof(data));
	assert_int_equal(io_queued(io), 0);
	assert_int_equal(c.errors, 0);
	assert_int_equal(io_bytes_out(io), sizeof(data));
	/* two requests from the peer, two answers from the writer */
	assert_int_equal(kp.sent[1], 2);
	assert_int_equal(kw.rcvd[1], 2);
	assert_int_equal(kw.sent[0], 2);
	assert_int_equal(kp.rcvd[0], 2);
	assert_int_equal(kw.sent[1] + kw.rcvd[0] + kp.sent[0] + kp.rcvd[1],
	    0);

	/* nothing after the 2 MB but a close_notify the peer can read */
	io_free(io);
	while ((n = recv(p.fd, tmp, sizeof(tmp), MSG_DONTWAIT)) > 0)
		BIO_write(p.in, tmp, (int)n);
	r = SSL_read(p.ssl, tmp, sizeof(tmp));
	assert_int_equal(r, 0);
	assert_int_equal(SSL_get_error(p.ssl, r), SSL_ERROR_ZERO_RETURN);
	peer_free(&p);
	ev_loop_free(loop);
}


/* A TLS 1.3 peer that never reads asks for key update after key update
 * (each answer a record of ours), then goes on sending.  Once the
 * answers it does not read fill the socket and the TLS output buffer,
 * SSL_read must write before it reads on.  The flood's state: */
#define KU_FLOOD	30000

struct kuflood {
	struct client	 c;
	struct kucount	 kw, kp;
	struct peer	 p;
	struct io	*io;
	char		*buf;	/* the peer's records */
	size_t		 have, off;
};

/* Sets up the io and the peer, and sends the requests as far as the io
 * reads them (the io's SO_SNDBUF small, its answers never read). */
static void
ku_flood_start(struct kuflood *f)
{
	static char buf[1 << 20];
	BIO *wb;
	int i, sz = 4096, stuck = 0;
	ssize_t n;

	memset(f, 0, sizeof(*f));
	f->buf = buf;
	f->io = tls_pair(SOCK_STREAM, client_cb, &f->c, &f->c, &f->p);
	assert_int_equal(SSL_version(io_ssl(f->io)), TLS1_3_VERSION);
	SSL_set_msg_callback(io_ssl(f->io), ku_msg_cb);
	SSL_set_msg_callback_arg(io_ssl(f->io), &f->kw);
	SSL_set_msg_callback(f->p.ssl, ku_msg_cb);
	SSL_set_msg_callback_arg(f->p.ssl, &f->kp);
	assert_int_equal(setsockopt(io_fd(f->io), SOL_SOCKET, SO_SNDBUF, &sz,
	    sizeof(sz)), 0);
	/* the peer's records collect in memory, sent in large pieces */
	wb = BIO_new(BIO_s_mem());
	assert_non_null(wb);
	SSL_set0_wbio(f->p.ssl, wb);
	for (i = 0; i < KU_FLOOD; i++) {
		assert_int_equal(SSL_key_update(f->p.ssl,
		    SSL_KEY_UPDATE_REQUESTED), 1);
		assert_int_equal(SSL_do_handshake(f->p.ssl), 1);
	}
	n = BIO_read(wb, buf, sizeof(buf));
	assert_true(n > 0);
	f->have = (size_t)n;
	for (i = 0; i < 2000 && f->off < f->have && stuck < 20; i++) {
		n = send(f->p.fd, buf + f->off, f->have - f->off,
		    MSG_DONTWAIT);
		if (n > 0) {
			f->off += (size_t)n;
			stuck = 0;
		} else
			stuck++;
		testloop_run(loop, 2);
	}
	assert_true(f->off < f->have);	/* the io stopped reading */
	assert_true(f->kw.rcvd[1] < KU_FLOOD);
	assert_int_equal(f->c.errors, 0);
}

/* The peer reads what the io sent (into its SSL, which must find no
 * application data in it). */
static void
ku_peer_read(struct kuflood *f)
{
	char tmp[16384];
	ssize_t n;
	int r;

	while ((n = recv(f->p.fd, tmp, sizeof(tmp), MSG_DONTWAIT)) > 0)
		BIO_write(f->p.in, tmp, (int)n);
	r = SSL_read(f->p.ssl, tmp, sizeof(tmp));
	assert_true(r <= 0);
	assert_int_equal(SSL_get_error(f->p.ssl, r), SSL_ERROR_WANT_READ);
}

/* The loop watched for 100 ms: it must sleep, not spin. */
static void
ku_no_spin(const char *what)
{
	unsigned long before = epoll_wakeups;

	testloop_run(loop, 100);
	if (epoll_wakeups - before > 50)
		fail_msg("the loop woke up %lu times in 100 ms, %s",
		    epoll_wakeups - before, what);
}

/* The peer reads from now on: every request is read and answered. */
static void
ku_flood_finish(struct kuflood *f)
{
	ssize_t n;
	int i;

	for (i = 0; i < 20000 && (f->off < f->have ||
	    f->kw.rcvd[1] < KU_FLOOD || io_queued(f->io) > 0 ||
	    f->kp.rcvd[0] < f->kw.sent[0]); i++) {
		if (f->off < f->have && (n = send(f->p.fd, f->buf + f->off,
		    f->have - f->off, MSG_DONTWAIT)) > 0)
			f->off += (size_t)n;
		testloop_run(loop, 1);
		ku_peer_read(f);
	}
	assert_int_equal(f->kp.sent[1], KU_FLOOD);
	assert_int_equal(f->kw.rcvd[1], KU_FLOOD);
	/* (OpenSSL may answer two requests with one update) */
	assert_true(f->kw.sent[0] > KU_FLOOD / 2);
	assert_int_equal(f->kp.rcvd[0], f->kw.sent[0]);
	assert_int_equal(f->kw.sent[1] + f->kp.rcvd[1], 0);
	assert_int_equal(f->c.errors, 0);
	io_free(f->io);
	peer_free(&f->p);
	ev_loop_free(loop);
}

/* The io waits for the socket to take its output, and does not wake up
 * again and again for the peer's bytes, which it cannot read yet (a
 * busy loop, one CPU for as long as the timeout lets the peer hold the
 * connection). */
static void
test_tls_key_update_flood_no_spin(void **state)
{
	struct kuflood f;

	(void)state;
	ku_flood_start(&f);
	ku_no_spin("waiting for the peer to read");
	ku_flood_finish(&f);
}

/* The same, and then the owner pauses the io (back-pressure) and the
 * peer reads all the io sent: nothing is left to write and the paused
 * io reads nothing, so the socket's room is no event for it (epoll
 * reports it as long as it lasts).  Resumed, it reads on. */
static void
test_tls_key_update_flood_paused_no_spin(void **state)
{
	struct kuflood f;
	int i;

	(void)state;
	ku_flood_start(&f);
	io_pause(f.io, 1);
	for (i = 0; i < 200 && io_queued(f.io) > 0; i++) {
		testloop_run(loop, 1);
		ku_peer_read(&f);
	}
	assert_int_equal(io_queued(f.io), 0);
	ku_no_spin("paused, with nothing to write");
	io_pause(f.io, 0);
	ku_flood_finish(&f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tls_corked_handshake),
		cmocka_unit_test(test_tls_bulk_backpressure),
		cmocka_unit_test(test_tls_lowat_pump),
		cmocka_unit_test(test_tls_key_update_backpressure),
		cmocka_unit_test(test_tls_key_update_flood_no_spin),
		cmocka_unit_test(test_tls_key_update_flood_paused_no_spin),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
