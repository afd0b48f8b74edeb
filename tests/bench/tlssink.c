/*
 * tlssink: an event-driven ESMTP sink for mxguard's benchmarks.
 *
 * One thread, epoll (edge-triggered), non-blocking sockets, OpenSSL.  It
 * speaks just enough ESMTP to receive mail from smtp-source, mxguard and
 * stunnel: EHLO/HELO (advertising PIPELINING, 8BITMIME, and STARTTLS on TLS
 * listeners), STARTTLS, MAIL, RCPT, DATA (end-of-data found across buffer
 * boundaries, the body is counted and dropped), RSET, NOOP, QUIT.
 *
 *   tlssink -c CERT -k KEY [-t ADDR:PORT]... [-p ADDR:PORT]... [-s STATSFILE]
 *
 * -t listeners offer STARTTLS, -p listeners do not (the cleartext baseline).
 * On SIGUSR1 and on SIGTERM/SIGINT the counters are written to STATSFILE as
 * "key value" lines (SIGTERM then exits).
 *
 * Build: cc -O2 -o tlssink tlssink.c -lssl -lcrypto
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define LINE_MAX_	2048
#define OUT_MAX		2048
#define MAX_LISTEN	8

enum { ST_CMD, ST_DATA, ST_HS };

struct conn {
	int		 fd;
	int		 tls_listener;	/* may offer STARTTLS */
	int		 state;
	int		 dmatch;	/* end-of-data matcher state */
	int		 quit;		/* close once the output is flushed */
	int		 starttls;	/* start TLS once the output is flushed */
	SSL		*ssl;
	size_t		 inlen;
	size_t		 outlen, outoff;
	char		 in[LINE_MAX_];
	char		 out[OUT_MAX];
};

struct listener {
	int	fd;
	int	tls;
};

static SSL_CTX		*ctx;
static int		 ep;
static struct listener	 lst[MAX_LISTEN];
static int		 nlst;
static volatile sig_atomic_t want_stats, want_exit;
static const char	*statsfile;
static unsigned char	 rbuf[256 * 1024];

static struct {
	uint64_t conns, open, maxopen, handshakes, resumed, tls_fail;
	uint64_t msgs, bytes, cmds, errors;
} st;

static void
die(const char *m)
{
	perror(m);
	exit(1);
}

static void
write_stats(void)
{
	FILE *f;
	char tmp[4096];

	if (statsfile == NULL)
		return;
	snprintf(tmp, sizeof(tmp), "%s.tmp", statsfile);
	if ((f = fopen(tmp, "w")) == NULL)
		return;
	fprintf(f, "conns %llu\nopen %llu\nmaxopen %llu\nhandshakes %llu\n"
	    "resumed %llu\ntls_fail %llu\nmsgs %llu\nbytes %llu\ncmds %llu\n"
	    "errors %llu\n",
	    (unsigned long long)st.conns, (unsigned long long)st.open,
	    (unsigned long long)st.maxopen, (unsigned long long)st.handshakes,
	    (unsigned long long)st.resumed, (unsigned long long)st.tls_fail,
	    (unsigned long long)st.msgs, (unsigned long long)st.bytes,
	    (unsigned long long)st.cmds, (unsigned long long)st.errors);
	fclose(f);
	rename(tmp, statsfile);
}

static void
on_signal(int sig)
{
	if (sig == SIGUSR1)
		want_stats = 1;
	else
		want_exit = 1;
}

static void
conn_close(struct conn *c)
{
	if (c->ssl) {
		if (c->state != ST_HS)
			SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
	}
	close(c->fd);
	free(c);
	st.open--;
}

static void
reply(struct conn *c, const char *s)
{
	size_t n = strlen(s);

	if (c->outlen + n > OUT_MAX) {	/* client pipelines far too much */
		c->quit = 1;
		return;
	}
	memcpy(c->out + c->outlen, s, n);
	c->outlen += n;
}

/* Returns >0 bytes, 0 on EOF, -1 would block, -2 error. */
static ssize_t
c_read(struct conn *c, void *buf, size_t n)
{
	ssize_t r;

	if (c->ssl == NULL) {
		r = read(c->fd, buf, n);
		if (r >= 0)
			return r;
		return errno == EAGAIN || errno == EINTR ? -1 : -2;
	}
	r = SSL_read(c->ssl, buf, (int)n);
	if (r > 0)
		return r;
	switch (SSL_get_error(c->ssl, (int)r)) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		return -1;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	default:
		ERR_clear_error();
		return -2;
	}
}

static ssize_t
c_write(struct conn *c, const void *buf, size_t n)
{
	ssize_t r;

	if (c->ssl == NULL) {
		r = send(c->fd, buf, n, MSG_NOSIGNAL);
		if (r >= 0)
			return r;
		return errno == EAGAIN || errno == EINTR ? -1 : -2;
	}
	r = SSL_write(c->ssl, buf, (int)n);
	if (r > 0)
		return r;
	switch (SSL_get_error(c->ssl, (int)r)) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		return -1;
	default:
		ERR_clear_error();
		return -2;
	}
}

/*
 * End-of-data matcher: states 0 mid-line, 1 CR, 2 CRLF (line start),
 * 3 CRLF ".", 4 CRLF "." CR.  Returns the offset just past the terminator,
 * or -1 when the buffer ends first.
 */
static ssize_t
scan_eod(int *s, const unsigned char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char ch;

		if (*s == 0) {
			const unsigned char *q = memchr(p + i, '\r', n - i);
			if (q == NULL)
				return -1;
			i = (size_t)(q - p);
			*s = 1;
			continue;
		}
		ch = p[i];
		switch (*s) {
		case 1:
			*s = ch == '\n' ? 2 : ch == '\r' ? 1 : 0;
			break;
		case 2:
			*s = ch == '.' ? 3 : ch == '\r' ? 1 : 0;
			break;
		case 3:
			*s = ch == '\r' ? 4 : 0;
			break;
		case 4:
			if (ch == '\n') {
				*s = 0;
				return (ssize_t)i + 1;
			}
			*s = ch == '\r' ? 1 : 0;
			break;
		}
	}
	return -1;
}

static int
verb(const char *line, const char *v)
{
	size_t n = strlen(v);

	return strncasecmp(line, v, n) == 0 &&
	    (line[n] == '\0' || line[n] == ' ' || line[n] == '\r');
}

static void
command(struct conn *c, char *line)
{
	st.cmds++;
	if (verb(line, "EHLO")) {
		reply(c, "250-tlssink\r\n250-PIPELINING\r\n250-8BITMIME\r\n"
		    "250-SIZE 104857600\r\n");
		if (c->tls_listener && c->ssl == NULL)
			reply(c, "250-STARTTLS\r\n");
		reply(c, "250 ENHANCEDSTATUSCODES\r\n");
	} else if (verb(line, "HELO")) {
		reply(c, "250 tlssink\r\n");
	} else if (verb(line, "STARTTLS") && c->tls_listener &&
	    c->ssl == NULL) {
		reply(c, "220 2.0.0 Ready to start TLS\r\n");
		c->starttls = 1;
	} else if (verb(line, "MAIL")) {
		reply(c, "250 2.1.0 Ok\r\n");
	} else if (verb(line, "RCPT")) {
		reply(c, "250 2.1.5 Ok\r\n");
	} else if (verb(line, "DATA")) {
		reply(c, "354 End data with <CR><LF>.<CR><LF>\r\n");
		c->state = ST_DATA;
		c->dmatch = 2;
	} else if (verb(line, "RSET") || verb(line, "NOOP")) {
		reply(c, "250 2.0.0 Ok\r\n");
	} else if (verb(line, "QUIT")) {
		reply(c, "221 2.0.0 Bye\r\n");
		c->quit = 1;
	} else {
		reply(c, "502 5.5.2 Error: command not recognized\r\n");
		st.errors++;
	}
}

/* Feeds received bytes to the session.  Returns -1 to drop the connection. */
static int
feed(struct conn *c, const unsigned char *p, size_t n)
{
	while (n > 0 && !c->quit && !c->starttls) {
		if (c->state == ST_DATA) {
			ssize_t k = scan_eod(&c->dmatch, p, n);

			if (k < 0) {
				st.bytes += n;
				return 0;
			}
			st.bytes += (size_t)k;
			st.msgs++;
			reply(c, "250 2.0.0 Ok: queued as SINK\r\n");
			c->state = ST_CMD;
			p += k;
			n -= (size_t)k;
			continue;
		}
		const unsigned char *nl = memchr(p, '\n', n);
		size_t take = nl ? (size_t)(nl - p) + 1 : n;

		if (c->inlen + take >= sizeof(c->in)) {
			reply(c, "500 5.5.0 Line too long\r\n");
			c->quit = 1;
			return 0;
		}
		memcpy(c->in + c->inlen, p, take);
		c->inlen += take;
		p += take;
		n -= take;
		if (nl == NULL)
			return 0;
		c->in[c->inlen] = '\0';
		c->inlen = 0;
		command(c, c->in);
	}
	/* bytes pipelined behind STARTTLS are discarded (RFC 3207) */
	return 0;
}

/* Runs the connection until it would block.  Returns -1 once closed. */
static int
pump(struct conn *c)
{
	for (;;) {
		if (c->state == ST_HS) {
			int r = SSL_do_handshake(c->ssl);

			if (r == 1) {
				c->state = ST_CMD;
				st.handshakes++;
				if (SSL_session_reused(c->ssl))
					st.resumed++;
				continue;
			}
			r = SSL_get_error(c->ssl, r);
			if (r == SSL_ERROR_WANT_READ ||
			    r == SSL_ERROR_WANT_WRITE)
				return 0;
			ERR_clear_error();
			st.tls_fail++;
			goto drop;
		}
		while (c->outoff < c->outlen) {
			ssize_t w = c_write(c, c->out + c->outoff,
			    c->outlen - c->outoff);
			if (w == -1)
				return 0;	/* EPOLLOUT resumes us */
			if (w < 0)
				goto drop;
			c->outoff += (size_t)w;
		}
		c->outoff = c->outlen = 0;
		if (c->quit)
			goto drop;
		if (c->starttls) {
			c->starttls = 0;
			c->inlen = 0;
			if ((c->ssl = SSL_new(ctx)) == NULL ||
			    SSL_set_fd(c->ssl, c->fd) != 1)
				goto drop;
			SSL_set_accept_state(c->ssl);
			c->state = ST_HS;
			continue;
		}
		ssize_t r = c_read(c, rbuf, sizeof(rbuf));
		if (r == -1)
			return 0;
		if (r <= 0)
			goto drop;
		if (feed(c, rbuf, (size_t)r) == -1)
			goto drop;
	}
drop:
	conn_close(c);
	return -1;
}

static void
accept_all(struct listener *l)
{
	for (;;) {
		int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct epoll_event ev;
		struct conn *c;
		int one = 1;

		if (fd == -1) {
			if (errno != EAGAIN && errno != EINTR &&
			    errno != ECONNABORTED)
				perror("accept");
			return;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if ((c = calloc(1, sizeof(*c))) == NULL) {
			close(fd);
			continue;
		}
		c->fd = fd;
		c->tls_listener = l->tls;
		st.conns++;
		if (++st.open > st.maxopen)
			st.maxopen = st.open;
		reply(c, "220 tlssink ESMTP\r\n");
		ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
		ev.data.ptr = c;
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == -1) {
			conn_close(c);
			continue;
		}
		pump(c);
	}
}

static void
add_listener(const char *spec, int tls)
{
	char host[256];
	const char *colon = strrchr(spec, ':');
	struct sockaddr_in sin;
	struct epoll_event ev;
	int fd, one = 1;

	if (colon == NULL || (size_t)(colon - spec) >= sizeof(host) ||
	    nlst == MAX_LISTEN) {
		fprintf(stderr, "tlssink: bad listener %s\n", spec);
		exit(2);
	}
	memcpy(host, spec, (size_t)(colon - spec));
	host[colon - spec] = '\0';
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)atoi(colon + 1));
	if (inet_pton(AF_INET, host, &sin.sin_addr) != 1) {
		fprintf(stderr, "tlssink: bad address %s\n", host);
		exit(2);
	}
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		die("socket");
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1)
		die("bind");
	if (listen(fd, 4096) == -1)
		die("listen");
	lst[nlst].fd = fd;
	lst[nlst].tls = tls;
	ev.events = EPOLLIN;
	ev.data.ptr = &lst[nlst];
	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == -1)
		die("epoll_ctl");
	nlst++;
}

int
main(int argc, char **argv)
{
	const char *cert = NULL, *key = NULL;
	struct epoll_event evs[512];
	struct sigaction sa;
	int ch, i;

	if ((ep = epoll_create1(EPOLL_CLOEXEC)) == -1)
		die("epoll_create1");
	while ((ch = getopt(argc, argv, "c:k:t:p:s:")) != -1) {
		switch (ch) {
		case 'c': cert = optarg; break;
		case 'k': key = optarg; break;
		case 't': add_listener(optarg, 1); break;
		case 'p': add_listener(optarg, 0); break;
		case 's': statsfile = optarg; break;
		default:
			fprintf(stderr, "usage: tlssink -c CERT -k KEY "
			    "[-t ADDR:PORT]... [-p ADDR:PORT]... [-s FILE]\n");
			return 2;
		}
	}
	if (nlst == 0 || cert == NULL || key == NULL) {
		fprintf(stderr, "tlssink: need -c, -k and a listener\n");
		return 2;
	}
	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL ||
	    SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		ERR_print_errors_fp(stderr);
		return 1;
	}
	/* like a real MX: tickets on (OpenSSL's default), small idle memory */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	while (!want_exit) {
		int n = epoll_wait(ep, evs, 512, 1000);

		if (want_stats) {
			want_stats = 0;
			write_stats();
		}
		for (i = 0; i < n; i++) {
			void *p = evs[i].data.ptr;

			if (p >= (void *)lst && p < (void *)(lst + MAX_LISTEN))
				accept_all(p);
			else
				pump(p);
		}
	}
	write_stats();
	return 0;
}
