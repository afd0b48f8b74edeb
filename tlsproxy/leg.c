/*
 * leg.c - the upstream leg (see leg.h): one connection to the MX, its
 * TLS, what that TLS proved, and the connections the client never sees.
 *
 * One state enum carries it (enum lstate, traced "leg A -> B" at debug
 * level, after OpenSMTPD's mta_session.c).  leg_enter() moves to a state
 * and sends what the state sends; leg_on_reply() handles a server reply
 * in the current state.  Replies to the session's own commands go up as
 * LEG_REPLY; everything the leg says by itself (EHLO on a silent
 * reconnect, STARTTLS, EHLO inside TLS) is answered here.
 *
 * The session is told through its callback, from the event loop only.
 * The callback may free the leg: leg_report() notices (busy/zombie) and
 * the caller returns at once.
 *
 * Who frees what: the leg owns its io (closed by leg_free), its reply
 * buffer and a copy of the verdict it was secured for.  A parked leg
 * hands its io and a copy of its proof to reuse.c.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/io.h"
#include "core/log.h"
#include "core/netaddr.h"
#include "core/stats.h"
#include "tlsproxy/leg.h"

enum lstate {
	LS_CONNECT,	/* TCP connect in progress */
	LS_GREETING,	/* waiting for the server's 220 */
	LS_HELLO,	/* EHLO sent */
	LS_HELO,	/* EHLO refused with 5xx; HELO sent */
	LS_OPEN,	/* carrying the session's commands (or idle) */
	LS_STARTTLS,	/* STARTTLS sent */
	LS_HANDSHAKE,	/* TLS handshake */
	LS_EHLO_TLS,	/* EHLO sent inside TLS */
	LS_BODY,	/* message bytes flowing; the server must be silent */
	LS_DOT,		/* final dot sent, waiting for the reply */
	LS_QUIT,	/* QUIT sent */
	LS_CLOSED,	/* no connection any more */
};

static const char *lstate_names[] = {
	"CONNECT", "GREETING", "HELLO", "HELO", "OPEN", "STARTTLS",
	"HANDSHAKE", "EHLO_TLS", "BODY", "DOT", "QUIT", "CLOSED",
};

/* Why the leg is on a connection the client does not see. */
enum {
	SILENT_NONE,
	SILENT_PLAIN,	/* opportunistic TLS failed: cleartext retry */
	SILENT_FRESH,	/* a reused leg does not fit: a connection of our own */
	SILENT_UNCAPPED, /* a monitored ceiling failed the handshake: TLS
			 * again without it (uncapped_retry()) */
};

struct leg {
	struct leg_env		 env;
	leg_cb			*cb;
	void			*arg;
	char			 tag[24];
	struct sockaddr_storage	 dst;
	char			 dst_str[64];
	enum lstate		 state;
	struct io		*io;
	struct smtp_reply	*rep;		/* reply being read */
	int			 pending;	/* replies due to the session */
	int			 owed;		/* replies due to commands from
						 * before leg_hello(): dropped,
						 * never the EHLO's */
	int			 stale;		/* the server spoke before the
						 * command it would answer */
	int			 owed_hello;	/* the EHLO went with replies
						 * owed: its reply is told from
						 * a stray (ehlo_reply_is) */
	char			 name[64];	/* the server's name, first
						 * word of its last EHLO or
						 * HELO reply on this
						 * connection ("" unknown) */
	int			 silent;	/* SILENT_*: this connection is
						 * the leg's own business */
	int			 uncapped;	/* this connection's handshake
						 * goes without the monitored
						 * protocols= ceiling */
	int			 settled;	/* TLS question decided */
	int			 skipped;	/* cleartext without asking for
						 * STARTTLS (a verdict of level
						 * none settled it) */
	char			 clear_why[24];	/* settled in cleartext: why
						 * (settle_cleartext's reason),
						 * else "" */
	int			 refused;	/* greeting was not 2xx: its
						 * class (4 or 5), else 0 */
	int			 reused;	/* adopted from the cache */
	unsigned		 uses;		/* sessions served before */
	uint64_t		 born;		/* ev_boot_now() at the connect of
						 * its connection */
	char			 helo[SMTP_DOMAIN_MAX + 1];
	struct smtp_caps	 caps;		/* of the last EHLO */
	struct tls_proof	 proof;
	struct tls_result	 res;		/* of the last TLS check */
	struct policy_verdict	*v;		/* copy: what leg_secure() is
						 * working for */
	char			 greeting[512];	/* the server's 220, as sent */
	char			 local[64];	/* our source address (the
						 * sending MTA IP of TLSRPT) */
	int			 bound;		/* this connection left from
						 * the client's address
						 * (upstream_source) */
	char			 tls_proto[16];
	unsigned long long	 out;		/* bytes of closed connections */
	unsigned long long	 base;		/* io_bytes_out() at adoption */
	int			 busy;		/* inside the callback */
	int			 zombie;	/* freed while busy */
	double			 hs_started;	/* stats_clock() at STARTTLS */
	int			 hs_unconfirmed; /* TLS 1.3, checked, EHLO
						 * sent: the server has not
						 * spoken inside TLS yet, and
						 * may still refuse the
						 * handshake (tls_confirmed) */
	int			 dot_out;	/* LS_DOT: the dot is out, the
						 * final reply's deadline runs */
	int			 dot_held;	/* leg_dot_held() */
	struct domset		 counted;	/* leg_count_domain(), of this
						 * connection */
};

static struct stat_ctr *st_tls, *st_plain, *st_inject, *st_reused,
    *st_handshake;

static void leg_io_cb(struct io *, enum io_event, void *);
static int leg_decide(struct leg *, struct tls_result *);

static void
stats_init(void)
{
	if (st_tls)
		return;
	st_tls = stats_counter("mxguard_upstream_total{tls=\"yes\"}",
	    "Upstream legs by whether TLS was used");
	st_plain = stats_counter("mxguard_upstream_total{tls=\"no\"}", NULL);
	st_reused = stats_counter("mxguard_upstream_reused_total",
	    "Upstream connections reused from an earlier session");
	st_handshake = stats_histogram("mxguard_tls_handshake_seconds",
	    "Upstream TLS handshakes, from STARTTLS accepted to done", NULL, 0);
	st_inject = stats_counter("mxguard_starttls_injections_total",
	    "Sessions dropped for plaintext injected around STARTTLS");
}

static socklen_t
dst_len(const struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) :
	    sizeof(struct sockaddr_in);
}

/* The address of ss alone, no port; "" for another family. */
static void
addr_fmt(const struct sockaddr_storage *ss, char *buf, size_t sz)
{
	const void *a;

	buf[0] = '\0';
	if (ss->ss_family == AF_INET)
		a = &((const struct sockaddr_in *)(const void *)ss)->sin_addr;
	else if (ss->ss_family == AF_INET6)
		a = &((const struct sockaddr_in6 *)(const void *)ss)->
		    sin6_addr;
	else
		return;
	if (inet_ntop(ss->ss_family, a, buf, sz) == NULL)
		buf[0] = '\0';
}

/* Our end of the connection, kept: the io goes when the leg fails. */
static void
local_fmt(struct leg *l)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	l->local[0] = '\0';
	if (getsockname(io_fd(l->io), (struct sockaddr *)&ss, &len) == -1)
		return;
	addr_fmt(&ss, l->local, sizeof(l->local));
}

static const struct config *
cfg(const struct leg *l)
{
	return *l->env.cfg;
}

/* ---- lifetime ---------------------------------------------------------- */

static void
leg_enter(struct leg *l, enum lstate st)
{
	if (l->state != st)
		log_debug("sid=%s event=leg-state from=%s to=%s", l->tag, lstate_names[l->state],
		    lstate_names[st]);
	l->state = st;
}

/* Lets go of the connection: closed at once, or, when its last words are
 * said (linger), kept by io.c until the server has closed (io_linger). */
static void
leg_end_io(struct leg *l, int linger)
{
	if (l->io != NULL) {
		l->out += io_bytes_out(l->io) - l->base;
		if (linger)
			io_linger(l->io, UPSTREAM_LINGER_MS);
		else if (l->dot_held)
			/* the session gave up on the message while its dot
			 * was still queued here (it told the client so, and
			 * warned of no duplicate): it must never go, not
			 * even as the TLS records io_free() sends "best
			 * effort" on its way out */
			io_abort(l->io);
		else
			io_free(l->io);
		l->io = NULL;
	}
	l->base = 0;
	free(l->rep);
	l->rep = NULL;
	l->pending = 0;
	l->owed = 0;
	l->owed_hello = 0;
	l->name[0] = '\0';
}

static void
leg_close_io(struct leg *l)
{
	leg_end_io(l, 0);
}

static void
leg_linger_io(struct leg *l)
{
	leg_end_io(l, 1);
}

static void
leg_destroy(struct leg *l)
{
	leg_close_io(l);
	policy_verdict_free(l->v);
	domset_clear(&l->counted);
	free(l);
}

void
leg_free(struct leg *l)
{
	if (l == NULL)
		return;
	if (l->busy) {
		/* inside our own callback: close now, free on the way out */
		leg_close_io(l);
		l->zombie = 1;
		return;
	}
	leg_destroy(l);
}

/* Tells the session.  Returns -1 if the session freed the leg (the caller
 * must not touch it any more). */
static int
leg_report(struct leg *l, enum leg_event ev, const struct leg_news *n)
{
	struct leg_news none;

	if (n == NULL) {
		memset(&none, 0, sizeof(none));
		n = &none;
	}
	l->busy++;
	l->cb(l, ev, n, l->arg);
	l->busy--;
	if (l->zombie) {
		if (l->busy == 0)
			leg_destroy(l);
		return -1;
	}
	return 0;
}

/* The leg cannot go on: closed, and the session told why. */
static void
leg_fail(struct leg *l, enum leg_error err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
leg_fail(struct leg *l, enum leg_error err, const char *fmt, ...)
{
	struct leg_news n;
	char why[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	leg_close_io(l);
	leg_enter(l, LS_CLOSED);
	memset(&n, 0, sizeof(n));
	n.err = err;
	n.why = why;
	leg_report(l, LEG_ERROR, &n);
}

/* The client's address as a source towards a destination of family af,
 * port 0: the upstream family is the destination's, and an IPv4-mapped
 * client (::ffff:a.b.c.d) is its IPv4 address.  -1 when the client's
 * address cannot be one of that family. */
static int
source_of(const struct sockaddr_storage *client, int af,
    struct sockaddr_storage *src)
{
	const struct sockaddr_in6 *c6 = (const void *)client;
	struct sockaddr_in *s4 = (void *)src;
	struct sockaddr_in6 *s6 = (void *)src;

	memset(src, 0, sizeof(*src));
	if (client->ss_family == af && af == AF_INET) {
		*s4 = *(const struct sockaddr_in *)(const void *)client;
		s4->sin_port = 0;
		return 0;
	}
	if (client->ss_family != AF_INET6)
		return -1;
	if (af == AF_INET6 && !IN6_IS_ADDR_V4MAPPED(&c6->sin6_addr)) {
		/* the scope stays: a link-local source is one link's */
		*s6 = *c6;
		s6->sin6_port = 0;
		s6->sin6_flowinfo = 0;
		return 0;
	}
	if (af == AF_INET && IN6_IS_ADDR_V4MAPPED(&c6->sin6_addr)) {
		s4->sin_family = AF_INET;
		memcpy(&s4->sin_addr, &c6->sin6_addr.s6_addr[12], 4);
		return 0;
	}
	return -1;
}

/* upstream_source = client: the leg leaves from the address the MTA
 * chose (the one its SPF record, reverse DNS and HELO name are for),
 * never from another one: when that fails the session gets a 4xx. */
static int
bind_source(struct leg *l, int fd)
{
	struct sockaddr_storage src;
	char a[INET6_ADDRSTRLEN] = "", q[128];
	int one = 1, saved;

	if (source_of(&l->env.client, l->dst.ss_family, &src) == -1) {
		errno = EAFNOSUPPORT;
		addr_fmt(&l->env.client, a, sizeof(a));
		goto fail;
	}
	addr_fmt(&src, a, sizeof(a));
	/* the port is chosen at connect, unique per 4-tuple: a bind to
	 * port 0 alone reserves an ephemeral port of the address for any
	 * destination, and the range runs out at 28,000 legs; a kernel
	 * without the option still binds, the old way */
	(void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
	    sizeof(one));
	if (bind(fd, (struct sockaddr *)&src, dst_len(&src)) == 0)
		return 0;
fail:
	saved = errno;
	log_warn("sid=%s event=upstream-bind-failed src=%s dst=%s err=%s",
	    l->tag, a[0] ? a : "?", l->dst_str,
	    log_q(q, sizeof(q), strerror(saved)));
	errno = saved;
	return -1;
}

/*
 * The last upstream_socket() failed in connect() for want of a local
 * port: EADDRNOTAVAIL, every port of the ephemeral range taken towards
 * the destination's address and port (TIME_WAIT sockets of a busy
 * gateway to one large MX; with IP_BIND_ADDRESS_NO_PORT the port is
 * chosen there from the client's address too), or EAGAIN, the kernel's
 * older word for the same.  This host's trouble (leg_errno_local()),
 * where the same EADDRNOTAVAIL from bind_source() says the client's
 * address is not this host's (upstream-bind-failed, 4.4.1).  Read right
 * after the failure, as errno is.
 */
static int connect_no_port;

static int
upstream_socket(struct leg *l)
{
	int fd, one = 1, saved;
	uint32_t mark = cfg(l)->upstream_mark;

	connect_no_port = 0;
	fd = socket(l->dst.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -1;
	/* the divert rules skip this mark: our own connection must not
	 * come back to us */
	if (setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) == -1)
		goto fail;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	l->bound = 0;
	if (l->env.client.ss_family != 0 && config_upstream_client(cfg(l))) {
		if (bind_source(l, fd) == -1)
			goto fail;
		l->bound = 1;
	}
	if (connect(fd, (struct sockaddr *)&l->dst, dst_len(&l->dst)) == -1 &&
	    errno != EINPROGRESS) {
		connect_no_port = errno == EADDRNOTAVAIL || errno == EAGAIN;
		goto fail;
	}
	return fd;
fail:
	saved = errno;
	close(fd);
	errno = saved;
	return -1;
}

/* A new connection (the first, or one the client does not see). */
static int
leg_connect(struct leg *l)
{
	int fd;

	leg_close_io(l);
	if ((fd = upstream_socket(l)) == -1)
		return -1;
	if ((l->io = io_new_connecting(l->env.loop, fd, leg_io_cb, l)) ==
	    NULL) {
		close(fd);
		return -1;
	}
	l->base = 0;
	l->hs_unconfirmed = 0;
	l->born = ev_boot_now(l->env.loop);
	/* a new connection (the fresh one for a reused leg that did not
	 * fit, the cleartext retry) is counted anew */
	domset_clear(&l->counted);
	leg_enter(l, LS_CONNECT);
	io_set_timeout(l->io, cfg(l)->connect_timeout);
	return 0;
}

static struct leg *
leg_alloc(const struct leg_env *env, const struct sockaddr_storage *dst,
    const char *tag, leg_cb *cb, void *arg)
{
	struct leg *l;

	stats_init();
	if ((l = calloc(1, sizeof(*l))) == NULL)
		return NULL;
	l->env = *env;
	l->cb = cb;
	l->arg = arg;
	snprintf(l->tag, sizeof(l->tag), "%s", tag);
	l->dst = *dst;
	netaddr_fmt((const struct sockaddr *)&l->dst, l->dst_str,
	    sizeof(l->dst_str));
	return l;
}

struct leg *
leg_new(const struct leg_env *env, const struct sockaddr_storage *dst,
    const char *tag, leg_cb *cb, void *arg)
{
	struct leg *l;
	int saved;

	if ((l = leg_alloc(env, dst, tag, cb, arg)) == NULL)
		return NULL;
	if (leg_connect(l) == -1) {
		saved = errno;
		leg_destroy(l);
		errno = saved;
		return NULL;
	}
	return l;
}

struct leg *
leg_adopt(const struct leg_env *env, struct reuse *reuse, const char *key,
    const struct sockaddr_storage *dst, const char *tag, leg_cb *cb,
    void *arg)
{
	struct reuse_leg rl;
	struct leg *l;

	if (reuse_take(reuse, key, &rl) == -1)
		return NULL;
	if ((l = leg_alloc(env, dst, tag, cb, arg)) == NULL) {
		io_free(rl.up);
		domset_clear(&rl.counted);
		return NULL;
	}
	l->io = rl.up;
	io_set_cb(l->io, leg_io_cb, l);
	local_fmt(l);
	l->base = io_bytes_out(l->io);
	/* every recipient of the new session gets a fresh verdict, which
	 * must fit what this leg proved before (leg_fits) */
	l->proof = rl.proof;
	l->settled = 1;
	l->reused = 1;
	l->uses = rl.uses;
	l->born = rl.born;
	l->counted = rl.counted;
	snprintf(l->greeting, sizeof(l->greeting), "%s", rl.greeting);
	snprintf(l->tls_proto, sizeof(l->tls_proto), "%s", rl.tls_proto);
	snprintf(l->res.reason, sizeof(l->res.reason), "%s", rl.tls_verify);
	l->state = LS_OPEN;
	stats_add(st_reused, 1);
	log_info("sid=%s event=upstream-reused dst=%s uses=%u tls=%s", l->tag,
	    l->dst_str, l->uses, l->tls_proto);
	return l;
}

int
leg_park(struct leg *l, struct reuse *reuse, const char *key,
    uint64_t idle_ms, uint64_t age_limit_ms, int max_legs)
{
	struct reuse_leg rl;
	uint64_t age;

	/* only a leg that proved everything it was checked for, idle, with
	 * nothing in flight either way */
	if (l->state != LS_OPEN || l->io == NULL || !l->proof.tls ||
	    l->proof.failed || l->refused || l->pending > 0 || l->owed > 0 ||
	    l->greeting[0] == '\0' || l->rep != NULL ||
	    io_datalen(l->io) > 0 || io_queued(l->io) > 0)
		return -1;
	/* set up before a reload: the TLS settings it was made under
	 * (tls_min_version, ciphers, CA store) may no longer hold, and
	 * the reload flushed only the legs parked then */
	if (!tls_client_current(*l->env.tls, io_ssl(l->io))) {
		log_info("sid=%s event=upstream-not-parked dst=%s "
		    "reason=tls-settings-reloaded", l->tag, l->dst_str);
		return -1;
	}
	/* one handshake's proof, and the server's certificate with it,
	 * serves a bounded time (Postfix's
	 * smtp_connection_reuse_time_limit): a stream of sessions would
	 * otherwise keep the leg for ever.  On the boot clock: a suspend
	 * (a VM paused) is time the proof has served too */
	age = ev_boot_now(l->env.loop) - l->born;
	if (age_limit_ms > 0 && age >= age_limit_ms) {
		log_info("sid=%s event=upstream-not-parked dst=%s "
		    "reason=time-limit age=%llums uses=%u", l->tag, l->dst_str,
		    (unsigned long long)age, l->uses + 1);
		return -1;
	}
	memset(&rl, 0, sizeof(rl));
	rl.up = l->io;
	rl.proof = l->proof;
	rl.uses = l->uses + 1;
	rl.born = l->born;
	rl.counted = l->counted;	/* the cache's once parked */
	snprintf(rl.greeting, sizeof(rl.greeting), "%s", l->greeting);
	snprintf(rl.tls_proto, sizeof(rl.tls_proto), "%s", l->tls_proto);
	snprintf(rl.tls_verify, sizeof(rl.tls_verify), "%s", l->res.reason);
	if (reuse_park(reuse, key, &rl, idle_ms, max_legs) == -1)
		return -1;
	log_info("sid=%s event=upstream-parked dst=%s uses=%u", l->tag,
	    l->dst_str, rl.uses);
	log_debug("sid=%s event=leg-state from=%s to=PARKED", l->tag, lstate_names[l->state]);
	/* the io belongs to the cache now, with a copy of the proof */
	l->out += io_bytes_out(l->io) - l->base;
	l->io = NULL;
	memset(&l->counted, 0, sizeof(l->counted));
	leg_free(l);
	return 0;
}

/* ---- commands ---------------------------------------------------------- */

static void
leg_send(struct leg *l, const char *line)
{
	char buf[SMTP_LINE_MAX + 3];
	int n;

	if (l->io == NULL)
		return;
	n = snprintf(buf, sizeof(buf) - 2, "%s", line);
	if (n < 0 || (size_t)n > sizeof(buf) - 3)
		n = (int)sizeof(buf) - 3;
	if (log_enabled(LOG_LVL_DEBUG)) {
		char q[SMTP_LINE_MAX * 2];

		log_debug("sid=%s event=command-upstream text=%s", l->tag,
		    log_qn(q, sizeof(q), buf, (size_t)n));
	}
	memcpy(buf + n, "\r\n", 2);
	io_write(l->io, buf, (size_t)n + 2);
}

/* EHLO with the client's name: at first, after STARTTLS, on a reconnect. */
static void
send_ehlo(struct leg *l)
{
	char line[SMTP_DOMAIN_MAX + 8];

	io_set_timeout(l->io, cfg(l)->command_timeout);
	snprintf(line, sizeof(line), "EHLO %s", l->helo);
	leg_send(l, line);
}

/*
 * Bytes the server sent while no reply was due, still unread when a new
 * command goes out (or the message begins), would be taken for its answer
 * (a 250 sent with the 354 for the final reply to the dot): they are
 * marked here and fail the leg when read (leg_read_replies).
 */
static void
mark_stale(struct leg *l)
{
	if (l->pending == 0 && (io_datalen(l->io) > 0 || l->rep != NULL))
		l->stale = 1;
}

void
leg_command(struct leg *l, int nreplies, const char *line)
{
	if (l->io == NULL)
		return;
	mark_stale(l);
	l->pending += nreplies;
	io_set_timeout(l->io, cfg(l)->command_timeout);
	leg_send(l, line);
}

void
leg_command2(struct leg *l, const char *l1, const char *l2)
{
	char buf[2 * (SMTP_LINE_MAX + 2) + 1];	/* two lines, CRLFs, NUL */
	int n;

	if (l->io == NULL)
		return;
	if (log_enabled(LOG_LVL_DEBUG)) {
		char q1[SMTP_LINE_MAX * 2], q2[SMTP_LINE_MAX * 2];

		log_debug("sid=%s event=command-upstream text=%s", l->tag,
		    log_q(q1, sizeof(q1), l1));
		log_debug("sid=%s event=command-upstream text=%s "
		    "pipelined=yes", l->tag, log_q(q2, sizeof(q2), l2));
	}
	n = snprintf(buf, sizeof(buf), "%s\r\n%s\r\n", l1, l2);
	if (n < 0 || (size_t)n >= sizeof(buf)) {
		/* cannot happen (both lines are bounded); if it did, the
		 * session must not wait for replies to nothing */
		leg_command(l, 1, l1);
		leg_command(l, 1, l2);
		return;
	}
	mark_stale(l);
	l->pending += 2;
	io_set_timeout(l->io, cfg(l)->command_timeout);
	io_write(l->io, buf, (size_t)n);
}

void
leg_body_begin(struct leg *l, size_t lowat)
{
	if (l->io == NULL)
		return;
	mark_stale(l);
	leg_enter(l, LS_BODY);
	io_set_timeout(l->io, cfg(l)->data_block_timeout);
	io_set_lowat(l->io, lowat);
	/* idle legs give OpenSSL's record buffers back; a message in
	 * flight keeps them instead of reallocating them around every
	 * record */
	if (io_ssl(l->io) != NULL)
		SSL_clear_mode(io_ssl(l->io), SSL_MODE_RELEASE_BUFFERS);
}

void
leg_write(struct leg *l, const void *buf, size_t len)
{
	if (l->io != NULL)
		io_write(l->io, buf, len);
}

/*
 * The final reply has data_done_timeout in all from the moment the dot is
 * out, a deadline: while the client waits (or has gone after its dot:
 * the session waits for the reply owed to it) nobody but the server holds
 * the session, and one that trickled its reply a line at a time, or drew
 * writes from us (a TLS key update it asks for), restarted an inactivity
 * timeout for months.  While the message is still going out (the server
 * takes it slowly) each block it takes is progress, as in the body.
 */
static void
dot_deadline(struct leg *l)
{
	if (io_queued(l->io) > 0) {
		io_set_timeout(l->io, cfg(l)->data_done_timeout);
		io_set_lowat(l->io, 0);		/* IO_LOWAT: all out */
		return;
	}
	/* once: the key updates drawn later drain to 0 too */
	l->dot_out = 1;
	l->dot_held = 0;
	io_set_deadline(l->io, cfg(l)->data_done_timeout);
}

void
leg_body_end(struct leg *l)
{
	if (l->io == NULL)
		return;
	leg_enter(l, LS_DOT);
	l->pending = 1;
	l->dot_out = 0;
	l->dot_held = 1;
	dot_deadline(l);
}

size_t
leg_queued(const struct leg *l)
{
	return l->io ? io_queued(l->io) : 0;
}

void
leg_quit(struct leg *l)
{
	if (l->io == NULL)
		return;
	leg_enter(l, LS_QUIT);
	/* a deadline, not an inactivity timeout: after QUIT the session may
	 * be held by the server alone (the client has its 221 and may be
	 * gone), and a server that answers a line (or a byte) now and then
	 * must not keep it, its socket and its max_sessions slot */
	io_set_deadline(l->io, cfg(l)->command_timeout);
	leg_send(l, "QUIT");
}

void
leg_hello(struct leg *l, const char *name)
{
	if (name != l->helo)
		snprintf(l->helo, sizeof(l->helo), "%s", name);
	if (l->io == NULL)
		return;
	/* Replies still due to earlier commands (the RCPT pipelined with a
	 * MAIL the server refused, when the client's STARTTLS comes before
	 * it) arrive first: they are dropped, never taken for the EHLO's
	 * (RFC 3207: nothing from before STARTTLS counts after it).  Bytes
	 * that came unasked are stale. */
	l->owed += l->pending;
	l->pending = 0;
	l->owed_hello = l->owed > 0;
	if (l->owed == 0)
		mark_stale(l);
	leg_enter(l, LS_HELLO);
	send_ehlo(l);
}

/* ---- TLS --------------------------------------------------------------- */

/* What a resumed TLS session may stand for: this destination, under what
 * the policy checked (MX host, names, TLSA digest, CA store). */
static int
resume_key(struct leg *l, char *key, size_t sz)
{
	char pk[600];
	int n;

	/* no key, no resumption: never a shorter key that would stand for
	 * weaker checks */
	if (policy_tls_session_key(l->v, pk, sizeof(pk)) == -1)
		return -1;
	n = snprintf(key, sz, "%s|%s", l->dst_str, pk);
	return n < 0 || (size_t)n >= sz ? -1 : 0;
}

static void
record_tls(struct leg *l, int offered, int ok)
{
	if (l->env.no_history)
		return;
	policy_record_tls(l->env.policy, (struct sockaddr *)&l->dst,
	    l->v->mx_host, offered, ok);
}

/* The verdict lets the mail go in cleartext on this connection. */
static void
settle_cleartext(struct leg *l, const char *reason, const char *extra)
{
	l->settled = 1;
	memset(&l->proof, 0, sizeof(l->proof));
	l->proof.level = TLS_LEVEL_NONE;
	l->tls_proto[0] = '\0';
	snprintf(l->clear_why, sizeof(l->clear_why), "%s", reason);
	stats_add(st_plain, 1);
	log_info("sid=%s event=cleartext dst=%s domain=%s reason=%s%s",
	    l->tag, l->dst_str, l->v->domain, reason, extra);
}

static void
result_set(struct tls_result *res, const char *reason, const char *detail)
{
	memset(res, 0, sizeof(*res));
	snprintf(res->reason, sizeof(res->reason), "%s", reason);
	snprintf(res->detail, sizeof(res->detail), "%s", detail);
}

static void
start_handshake(struct leg *l)
{
	char key[700];
	SSL *ssl;

	if ((ssl = tls_client_new(*l->env.tls)) == NULL ||
	    policy_tls_prepare(l->v, ssl) == -1)
		goto fail;
	/* back to the client context's own highest version */
	if (l->uncapped && !SSL_set_max_proto_version(ssl,
	    SSL_CTX_get_max_proto_version(SSL_get_SSL_CTX(ssl))))
		goto fail;
	if (resume_key(l, key, sizeof(key)) == 0)
		tls_client_resume(*l->env.tls, ssl, key);
	if (io_start_tls(l->io, ssl, 0) == -1)
		goto fail;
	l->hs_started = stats_clock();
	leg_enter(l, LS_HANDSHAKE);
	io_set_timeout(l->io, cfg(l)->tls_timeout);
	return;
fail:
	SSL_free(ssl);
	leg_fail(l, LEG_E_TLS, "cannot set up TLS towards %s", l->dst_str);
}

/* Opportunistic TLS that fails in the handshake: like Postfix at level
 * "may", deliver over a new cleartext connection rather than never. */
static void
plain_retry(struct leg *l, const char *why)
{
	char q[300];

	log_info("sid=%s event=tls-fallback dst=%s domain=%s error=%s "
	    "action=cleartext-retry", l->tag, l->dst_str, l->v->domain,
	    log_q(q, sizeof(q), why));
	l->silent = SILENT_PLAIN;
	if (leg_connect(l) == -1) {
		/* as for the first connection and a reused leg's
		 * reconnect: no descriptor or memory is this host's trouble
		 * (421 4.3.0), anything else the network's (4.4.1) */
		int err = errno;

		leg_fail(l, leg_errno_local(err) ? LEG_E_INTERNAL :
		    LEG_E_CONNECT, "cannot reconnect to %s: %s", l->dst_str,
		    strerror(err));
	}
}

/*
 * Did a monitored verdict's protocols= ceiling (the enforce view's,
 * policy_tls_prepare()) fail this handshake?  Only while the SSL is held
 * below the client context's own highest version.  Under monitoring the
 * mail goes as may would send it: the handshake failed on a demand only
 * enforce mode would make (a server that speaks TLS 1.3 only, a
 * `protocols=<=TLSv1.2` line), and may's cleartext retry then sent the
 * mail in the clear where the server offered TLS, below what it would
 * get without mxguard.
 */
static int
monitored_cap_failed(const struct leg *l, SSL *ssl)
{
	int cap;

	if (ssl == NULL || l->uncapped || !l->v->monitor ||
	    l->v->would_level <= TLS_LEVEL_MAY ||
	    (cap = (int)SSL_get_max_proto_version(ssl)) == 0)
		return 0;
	return SSL_CTX_get_max_proto_version(SSL_get_SSL_CTX(ssl)) == 0 ||
	    cap < SSL_CTX_get_max_proto_version(SSL_get_SSL_CTX(ssl));
}

/* A new connection whose handshake goes without the monitored ceiling
 * (monitored_cap_failed()); its check judges the version then
 * (protocols_outside(): enforce mode's would-defer).  If it fails too,
 * the cleartext retry follows. */
static void
uncapped_retry(struct leg *l, const char *why)
{
	char q[300];

	log_info("sid=%s event=tls-fallback dst=%s domain=%s error=%s "
	    "action=tls-retry-uncapped note=\"the monitored protocols= "
	    "ceiling is judged after the handshake\"", l->tag, l->dst_str,
	    l->v->domain, log_q(q, sizeof(q), why));
	l->silent = SILENT_UNCAPPED;
	l->uncapped = 1;
	memset(&l->caps, 0, sizeof(l->caps));
	if (leg_connect(l) == -1) {
		int err = errno;

		leg_fail(l, leg_errno_local(err) ? LEG_E_INTERNAL :
		    LEG_E_CONNECT, "cannot reconnect to %s: %s", l->dst_str,
		    strerror(err));
	}
}

/* The first verdict decides what the leg becomes: LEG_SECURE_*. */
static int
leg_decide(struct leg *l, struct tls_result *res)
{
	const struct policy_verdict *v = l->v;

	memset(res, 0, sizeof(*res));
	if (v->level == TLS_LEVEL_NONE) {
		settle_cleartext(l, "policy-none", "");
		l->skipped = 1;
		return LEG_SECURE_READY;
	}
	if (l->caps.flags & SMTP_CAP_STARTTLS) {
		leg_enter(l, LS_STARTTLS);
		io_set_timeout(l->io, cfg(l)->command_timeout);
		leg_send(l, "STARTTLS");
		return LEG_SECURE_PENDING;
	}
	record_tls(l, 0, 0);
	if (v->level == TLS_LEVEL_MAY) {
		settle_cleartext(l, "starttls-not-offered",
		    l->caps.flags & SMTP_CAP_STARTTLS_MASKED ?
		    " middlebox=starttls-masked" : "");
		if (v->report_only)
			log_info("sid=%s event=policy-report domain=%s "
			    "mode=testing reason=%s", l->tag, v->domain,
			    policy_no_starttls_reason(v));
		return LEG_SECURE_READY;
	}
	result_set(res, policy_no_starttls_reason(v),
	    l->caps.flags & SMTP_CAP_STARTTLS_MASKED ?
	    "STARTTLS masked in the EHLO reply (middlebox signature "
	    "XXXXXXXA): stripped on the path" :
	    "the server did not offer STARTTLS");
	leg_close_io(l);
	leg_enter(l, LS_CLOSED);
	return LEG_SECURE_FAILED;
}

/* leg_decide() from the event loop: its outcome becomes an event. */
static void
leg_decide_report(struct leg *l)
{
	struct leg_news n;
	struct tls_result res;
	int r = leg_decide(l, &res);

	if (r == LEG_SECURE_PENDING)
		return;
	memset(&n, 0, sizeof(n));
	n.res = &res;
	n.why = r == LEG_SECURE_READY ? "decided" : NULL;
	leg_report(l, r == LEG_SECURE_READY ? LEG_READY : LEG_TLS_FAILED, &n);
}

int
leg_secure(struct leg *l, const struct policy_verdict *v, int fresh,
    struct tls_result *res)
{
	int err;

	memset(res, 0, sizeof(*res));
	policy_verdict_free(l->v);
	if ((l->v = policy_verdict_dup(v)) == NULL) {
		result_set(res, "internal-error", "out of memory");
		return LEG_SECURE_ERROR;
	}
	if (!fresh)
		return leg_decide(l, res);
	/* a connection of our own, as without reuse: nothing of this
	 * recipient's envelope crosses the leg that did not fit */
	if (l->io != NULL) {
		io_write(l->io, "QUIT\r\n", 6);
		leg_linger_io(l);
	}
	l->settled = l->reused = 0;
	l->uses = 0;
	l->uncapped = 0;
	l->clear_why[0] = '\0';
	memset(&l->proof, 0, sizeof(l->proof));
	memset(&l->caps, 0, sizeof(l->caps));
	l->tls_proto[0] = '\0';
	l->silent = SILENT_FRESH;
	if (leg_connect(l) == -1) {
		/* as for the first connection (leg_new): a bind to the
		 * client's address that failed was logged as
		 * upstream-bind-failed and no other address was tried; the
		 * session answers 421 with detail: 4.3.0 for this host's
		 * trouble ("internal-error"), 4.4.1 else.  errno first: what
		 * runs after may change it */
		err = errno;
		if (leg_errno_local(err))
			result_set(res, "internal-error", "");
		snprintf(res->detail, sizeof(res->detail), "cannot reconnect "
		    "to %s: %s", l->dst_str, strerror(err));
		leg_enter(l, LS_CLOSED);
		return LEG_SECURE_ERROR;
	}
	return LEG_SECURE_PENDING;
}

/*
 * Whether a failure to open an upstream connection (err, its errno) is
 * this host's (no memory, no descriptors, no local port: connect_no_port),
 * not the network's: the session's 421 says 4.3.0 then, 4.4.1 (no answer
 * from the host) else.
 */
int
leg_errno_local(int err)
{
	return err == ENOMEM || err == EMFILE || err == ENFILE ||
	    err == ENOBUFS || (connect_no_port && (err == EADDRNOTAVAIL ||
	    err == EAGAIN));
}

static const char *
proto_name(int version)
{
	switch (version) {
	case TLS1_VERSION:
		return "TLSv1";
	case TLS1_1_VERSION:
		return "TLSv1.1";
	case TLS1_2_VERSION:
		return "TLSv1.2";
	case TLS1_3_VERSION:
		return "TLSv1.3";
	default:
		return "an older TLS version";
	}
}

/*
 * What of the leg's live TLS the client context now in force would not
 * negotiate, into d: a reload since the handshake raised tls_min_version,
 * took the cipher out of tls_ciphers or raised its @SECLEVEL (which also
 * sets the key sizes and digests a chain is verified to).  -1 if so.
 */
static int
outside_tls_settings(struct leg *l, SSL *ssl, char *d, size_t dsz)
{
	const struct tls_ctx *t = *l->env.tls;
	int min = tls_client_min_version(t), lv = tls_client_security_level(t);

	if (min != 0 && SSL_version(ssl) < min) {
		snprintf(d, dsz, "%s is below tls_min_version %s",
		    SSL_get_version(ssl), proto_name(min));
		return -1;
	}
	if (tls_client_current(t, ssl))
		return 0;		/* made under these very settings */
	if (SSL_get_current_cipher(ssl) == NULL ||
	    !tls_client_cipher_allowed(t, SSL_get_current_cipher(ssl))) {
		snprintf(d, dsz, "cipher %s is not in tls_ciphers",
		    SSL_get_cipher_name(ssl));
		return -1;
	}
	if (SSL_get_security_level(ssl) < lv) {
		snprintf(d, dsz, "negotiated at security level %d, below "
		    "the %d of tls_ciphers", SSL_get_security_level(ssl), lv);
		return -1;
	}
	return 0;
}

/*
 * A leg negotiated before a reload that changed the TLS settings
 * (outside_tls_settings): for a verdict that requires TLS, what the
 * current client context would refuse does not count as TLS (a new
 * connection would not get it either).  Under may (and none) it still
 * carries the mail: the server negotiated the best it was offered, so a
 * new connection would most likely fail its handshake and retry in
 * cleartext, which is worse than this TLS.  A monitored verdict whose
 * enforced level requires TLS goes too, as monitoring delivers, with the
 * refusal enforce mode would give as its would-defer (unless the
 * policy's own check already made one).  -1 (res says why) when the leg
 * is outside them.
 */
static int
below_tls_settings(struct leg *l, const struct policy_verdict *v, SSL *ssl,
    struct tls_result *res)
{
	int watched = v->monitor && v->would_level > TLS_LEVEL_MAY;
	char d[160];

	if (ssl == NULL || (v->level <= TLS_LEVEL_MAY && !watched) ||
	    outside_tls_settings(l, ssl, d, sizeof(d)) == 0)
		return 0;
	if (v->level <= TLS_LEVEL_MAY && res->would_defer)
		return 0;
	result_set(res, "validation-failure", d);
	/* the gateway's own floor: nothing of the domain's servers, so
	 * nothing to report (RFC 8460) */
	res->untried = 1;
	if (v->level <= TLS_LEVEL_MAY) {
		res->would_defer = 1;
		return 0;
	}
	return -1;
}

int
leg_fits(struct leg *l, const struct policy_verdict *v,
    struct tls_result *res)
{
	SSL *ssl = l->proof.tls && l->io ? io_ssl(l->io) : NULL;

	/* kept in cleartext for another recipient's tls_policy none, on a
	 * server that offers STARTTLS: a may recipient would get TLS on a
	 * connection of its own, so it gets one (a reused leg: a new
	 * connection; else 450, and the MTA tries it again) rather than
	 * ride along in cleartext.  Only the none recipient's domain chose
	 * cleartext. */
	if (l->skipped && v->level == TLS_LEVEL_MAY &&
	    (l->caps.flags & SMTP_CAP_STARTTLS)) {
		memset(res, 0, sizeof(*res));
		result_set(res, "starttls-skipped", "this connection is in "
		    "cleartext for another recipient's tls_policy none; this "
		    "recipient gets TLS on a connection of its own");
		return -1;
	}
	if (policy_leg_fits(v, &l->proof, ssl, res) == -1)
		return -1;
	return below_tls_settings(l, v, ssl, res);
}

static void
log_tls(struct leg *l)
{
	SSL *ssl = io_ssl(l->io);
	char subj[256], iss[256], q1[300], q2[300];

	tls_peer_names(ssl, subj, sizeof(subj), iss, sizeof(iss));
	log_info("sid=%s event=tls dst=%s mx=%s protocol=%s cipher=%s "
	    "resumed=%s subject=%s issuer=%s verify=%s", l->tag, l->dst_str,
	    l->v->mx_host[0] ? l->v->mx_host : "-", SSL_get_version(ssl),
	    SSL_get_cipher_name(ssl), SSL_session_reused(ssl) ? "yes" : "no",
	    log_q(q1, sizeof(q1), subj), log_q(q2, sizeof(q2), iss),
	    l->res.reason);
}

/* Label values from fixed sets only: every value is a metric for ever. */
static void
count_tls(const struct leg *l)
{
	static const char *protos[] = { "TLSv1.3", "TLSv1.2", "TLSv1.1",
	    "TLSv1" };
	const char *p = "other";
	char name[160];
	size_t i;

	for (i = 0; i < sizeof(protos) / sizeof(protos[0]); i++)
		if (strcmp(l->tls_proto, protos[i]) == 0)
			p = protos[i];
	snprintf(name, sizeof(name), "mxguard_upstream_tls_total"
	    "{protocol=\"%s\",level=\"%s\"}", p,
	    tls_level_name(l->proof.level));
	stats_add(stats_counter(name, "Upstream TLS connections by protocol "
	    "and the policy level they proved"), 1);
}

/*
 * The server took the handshake: in TLS 1.2 when it completed, in TLS
 * 1.3 when the server first spoke inside it (its EHLO reply).  Until
 * then the leg is not settled, and a failure is the handshake's
 * (tls_broken: the cleartext retry under "may", the policy's failure
 * else), as in TLS 1.2, not a lost connection: that was 421 at every
 * attempt, the mail held until it bounced, and the TLS history told of
 * a working TLS.
 */
static void
tls_confirmed(struct leg *l)
{
	l->hs_unconfirmed = 0;
	record_tls(l, 1, 1);
	l->settled = 1;
	stats_add(st_tls, 1);
	count_tls(l);
}

static void
tls_ready(struct leg *l)
{
	SSL *ssl = io_ssl(l->io);
	struct leg_news n;
	int ok;

	stats_observe(st_handshake, stats_clock() - l->hs_started);
	ok = policy_tls_check(l->v, ssl, &l->proof, &l->res) == 0;
	/* only a session that proved everything is kept for resumption */
	tls_client_done(*l->env.tls, ssl, ok && !l->proof.failed,
	    l->proof.not_after);
	snprintf(l->tls_proto, sizeof(l->tls_proto), "%s",
	    SSL_get_version(ssl));
	if (log_enabled(LOG_LVL_INFO))	/* the names cost two X509 walks */
		log_tls(l);
	if (!ok) {
		record_tls(l, 1, 1);
		leg_close_io(l);
		leg_enter(l, LS_CLOSED);
		memset(&n, 0, sizeof(n));
		n.res = &l->res;
		leg_report(l, LEG_TLS_FAILED, &n);
		return;
	}
	if (l->res.report_failed) {
		char q[300];

		log_info("sid=%s event=policy-report domain=%s mode=testing "
		    "reason=%s detail=%s", l->tag, l->v->domain,
		    l->res.reason, log_q(q, sizeof(q), l->res.detail));
	}
	leg_enter(l, LS_EHLO_TLS);
	/* TLS 1.3: our side of the handshake is done before the server
	 * has read our Certificate and Finished (RFC 8446 section 4.4);
	 * it refuses them (a client certificate it requires, which
	 * mxguard has none of) with an alert that comes only now, where
	 * TLS 1.2 had it inside SSL_connect() */
	if (SSL_version(ssl) >= TLS1_3_VERSION)
		l->hs_unconfirmed = 1;
	else
		tls_confirmed(l);
	send_ehlo(l);
}

/* A handshake that did not complete (error, close or timeout). */
static void
tls_broken(struct leg *l, const char *why, int timeout)
{
	struct leg_news n;
	struct tls_result res;
	SSL *ssl = io_ssl(l->io);

	/* a session offered for resumption may be what broke it: the key's
	 * sessions are not offered again */
	if (ssl != NULL)
		tls_client_done(*l->env.tls, ssl, 0, 0);
	record_tls(l, 1, 0);
	/* a TLS 1.3 handshake the server refused after ours was done: what
	 * its check proved is not this leg's */
	l->hs_unconfirmed = 0;
	memset(&l->proof, 0, sizeof(l->proof));
	memset(&l->res, 0, sizeof(l->res));
	l->tls_proto[0] = '\0';
	char q[300];

	log_info("sid=%s event=tls-failed dst=%s error=%s", l->tag,
	    l->dst_str, log_q(q, sizeof(q), why));
	if (l->v->level <= TLS_LEVEL_MAY && monitored_cap_failed(l, ssl)) {
		uncapped_retry(l, why);
		return;
	}
	if (l->v->level <= TLS_LEVEL_MAY) {
		plain_retry(l, why);
		return;
	}
	if (timeout) {
		leg_fail(l, LEG_E_TIMEOUT, "timeout in the TLS handshake with "
		    "%s", l->dst_str);
		return;
	}
	result_set(&res, "validation-failure", why);
	leg_close_io(l);
	leg_enter(l, LS_CLOSED);
	memset(&n, 0, sizeof(n));
	n.res = &res;
	leg_report(l, LEG_TLS_FAILED, &n);
}

/* A silent connection is greeted and hello'd: go on with what it is for. */
static void
silent_ready(struct leg *l)
{
	struct leg_news n;
	int why = l->silent;

	l->silent = SILENT_NONE;
	leg_enter(l, LS_OPEN);
	io_set_timeout(l->io, 0);
	if (why == SILENT_FRESH || why == SILENT_UNCAPPED) {
		/* as for the first RCPT of any session */
		leg_decide_report(l);
		return;
	}
	settle_cleartext(l, "tls-handshake-failed", "");
	memset(&n, 0, sizeof(n));
	n.why = "tls-handshake-failed";
	leg_report(l, LEG_READY, &n);
}

/* ---- replies ----------------------------------------------------------- */

/* The first word of a reply's first line: the server's name, in a reply
 * to EHLO or HELO (RFC 5321 section 4.1.1.1). */
static void
reply_name(const struct smtp_reply *r, char *out, size_t sz)
{
	size_t tl, n = 0;
	const char *t = smtp_reply_text(r, 0, &tl);

	while (n < tl && t[n] != ' ')
		n++;
	snprintf(out, sz, "%.*s", (int)n, t);
}

/*
 * After the replies owed to commands from before the EHLO (leg_hello),
 * the next one is the EHLO's only if it looks it: 250, opening with the
 * name the server gave in its last reply to EHLO or HELO on this
 * connection.  A reply to another command opens with an enhanced status
 * code or some text, never the server's name (RFC 2034 section 3: no
 * enhanced code in an EHLO reply): one the server sent beyond those owed
 * (a stray, or a reply to a command it answered twice) is no EHLO reply,
 * and taken for one it would shift every later reply by one.  A server
 * that refuses this EHLO, or changes its name between two EHLOs, fails
 * this rare path too (421: the MTA tries again).
 */
static int
ehlo_reply_is(const struct leg *l, const struct smtp_reply *r)
{
	char name[sizeof(l->name)], enh[16];

	if (r->code != 250)
		return 0;
	reply_name(r, name, sizeof(name));
	if (l->name[0] != '\0')
		return strcasecmp(name, l->name) == 0;
	smtp_reply_enhanced(r, enh, sizeof(enh));
	return enh[0] == '\0';
}

static void
leg_on_reply(struct leg *l, struct smtp_reply *r)
{
	struct leg_news n;
	struct tls_result res;
	char detail[256];
	int ok = r->code / 100 == 2;
	size_t tl;
	const char *t;

	if (l->owed > 0) {
		l->owed--;
		log_debug("sid=%s event=reply-dropped code=%d "
		    "why=owed-before-ehlo", l->tag, r->code);
		return;
	}
	memset(&n, 0, sizeof(n));
	n.reply = r;
	switch (l->state) {
	case LS_GREETING:
		t = smtp_reply_text(r, 0, &tl);
		/* src: the address the MX sees, when it is the client's */
		log_info("sid=%s event=greeting dst=%s%s%s code=%d banner=%s",
		    l->tag, l->dst_str, l->bound ? " src=" : "",
		    l->bound ? l->local : "", r->code, log_qn(detail,
		    sizeof(detail), t, tl));
		leg_enter(l, LS_OPEN);
		io_set_timeout(l->io, 0);
		if (l->silent) {
			if (!ok) {
				leg_fail(l, LEG_E_REFUSED, "%s refused a new "
				    "connection (%d)", l->dst_str, r->code);
				return;
			}
			leg_hello(l, l->helo);
			return;
		}
		if (r->len < sizeof(l->greeting))	/* for a reuse */
			snprintf(l->greeting, sizeof(l->greeting), "%.*s",
			    (int)r->len, r->buf);
		/* only a 5xx refuses for good: a 3xx is no greeting at
		 * all, and a client must not read a 5xx into it */
		if (!ok)
			l->refused = r->code / 100 == 5 ? 5 : 4;
		leg_report(l, LEG_GREETING, &n);
		return;
	case LS_HELLO:
	case LS_HELO:
		if (l->owed_hello && !ehlo_reply_is(l, r)) {
			t = smtp_reply_text(r, r->nlines - 1, &tl);
			log_info("sid=%s event=stray-reply dst=%s code=%d "
			    "text=%s why=not-the-ehlo-reply", l->tag,
			    l->dst_str, r->code, log_qn(detail,
			    sizeof(detail), t, tl));
			leg_fail(l, LEG_E_PROTOCOL, "%s sent a reply (%d) "
			    "that is not its EHLO reply, beyond those still "
			    "due from before the EHLO", l->dst_str, r->code);
			return;
		}
		l->owed_hello = 0;
		if (ok) {
			reply_name(r, l->name, sizeof(l->name));
			if (l->state == LS_HELLO)
				smtp_caps_parse(r, &l->caps);
			else
				memset(&l->caps, 0, sizeof(l->caps));
			if (l->silent) {
				silent_ready(l);
				return;
			}
		} else if (r->code / 100 == 5 && l->state == LS_HELLO) {
			char line[SMTP_DOMAIN_MAX + 8];

			leg_enter(l, LS_HELO);
			snprintf(line, sizeof(line), "HELO %s", l->helo);
			leg_send(l, line);
			return;
		} else if (l->silent) {
			leg_fail(l, LEG_E_REFUSED, "%s refused %s on a new "
			    "connection (%d)", l->dst_str, l->state ==
			    LS_HELLO ? "EHLO" : "HELO", r->code);
			return;
		}
		n.helo = l->state == LS_HELO;
		leg_enter(l, LS_OPEN);
		io_set_timeout(l->io, 0);
		leg_report(l, LEG_HELLO, &n);
		return;
	case LS_STARTTLS:
		if (r->code == 220) {
			if (io_datalen(l->io) > 0) {
				/* plaintext after the 220: CVE-2011-0411 */
				stats_add(st_inject, 1);
				log_warn("sid=%s event=starttls-injection "
				    "side=upstream dst=%s bytes=%zu", l->tag,
				    l->dst_str, io_datalen(l->io));
				leg_fail(l, LEG_E_INJECTION, "%s sent "
				    "plaintext after its reply to STARTTLS "
				    "(injection); connection dropped",
				    l->dst_str);
				return;
			}
			start_handshake(l);
			return;
		}
		record_tls(l, 1, 0);
		leg_enter(l, LS_OPEN);
		io_set_timeout(l->io, 0);
		if (l->v->level <= TLS_LEVEL_MAY) {
			snprintf(detail, sizeof(detail), " code=%d", r->code);
			settle_cleartext(l, "starttls-refused", detail);
			n.reply = NULL;
			n.why = "starttls-refused";
			leg_report(l, LEG_READY, &n);
			return;
		}
		t = smtp_reply_text(r, r->nlines - 1, &tl);
		snprintf(detail, sizeof(detail), "STARTTLS refused: %d %.*s",
		    r->code, (int)tl, t);
		/* refused is as good as not offered: the same reason
		 * (dane-required under DANE), as leg_decide() gives */
		result_set(&res, policy_no_starttls_reason(l->v), detail);
		leg_close_io(l);
		leg_enter(l, LS_CLOSED);
		n.reply = NULL;
		n.res = &res;
		leg_report(l, LEG_TLS_FAILED, &n);
		return;
	case LS_EHLO_TLS:
		if (!ok) {
			leg_fail(l, LEG_E_TLS, "%s refused EHLO after "
			    "STARTTLS (%d)", l->dst_str, r->code);
			return;
		}
		smtp_caps_parse(r, &l->caps);
		reply_name(r, l->name, sizeof(l->name));
		leg_enter(l, LS_OPEN);
		io_set_timeout(l->io, 0);
		n.res = &l->res;
		leg_report(l, LEG_READY, &n);
		return;
	case LS_DOT:
		io_set_lowat(l->io, 0);
		if (io_ssl(l->io) != NULL)
			SSL_set_mode(io_ssl(l->io), SSL_MODE_RELEASE_BUFFERS);
		leg_enter(l, LS_OPEN);
		/* FALLTHROUGH */
	case LS_OPEN:
		if (l->pending > 0 && --l->pending == 0)
			io_set_timeout(l->io, 0);
		leg_report(l, LEG_REPLY, &n);
		return;
	case LS_QUIT:
		/* The server closes after its 221: io.c waits for that
		 * (io_linger), so that no close_notify of ours meets a
		 * closed socket.  The reset it would draw frees our source
		 * port at once but leaves the conntrack entry (BYPASS) in
		 * CLOSE state for 10 s, which a local MTA reusing the port
		 * would meet (docs/rules.md, rule 0). */
		leg_linger_io(l);
		leg_enter(l, LS_CLOSED);
		leg_report(l, LEG_CLOSED, NULL);
		return;
	default:
		return;
	}
}

static void
leg_read_replies(struct leg *l)
{
	enum smtp_reply_status st;
	struct smtp_reply *r;
	char *line;
	ssize_t n;

	while (l->io != NULL && l->state != LS_HANDSHAKE &&
	    l->state != LS_BODY && l->state != LS_CLOSED &&
	    l->state != LS_CONNECT) {
		if (l->stale) {
			log_info("sid=%s event=early-reply dst=%s bytes=%zu",
			    l->tag, l->dst_str, io_datalen(l->io));
			if (l->state == LS_DOT)
				leg_fail(l, LEG_E_EARLY, "%s replied before "
				    "the end of the message", l->dst_str);
			else
				leg_fail(l, LEG_E_PROTOCOL, "%s sent a reply "
				    "before the command it would answer",
				    l->dst_str);
			return;
		}
		n = io_getline(l->io, SMTP_LINE_MAX, &line);
		if (n == -1)
			return;
		if (n == -2) {
			leg_fail(l, LEG_E_PROTOCOL, "%s sent an over-long "
			    "reply line", l->dst_str);
			return;
		}
		if (l->rep == NULL) {
			if ((l->rep = malloc(sizeof(*l->rep))) == NULL) {
				leg_fail(l, LEG_E_INTERNAL, "out of memory");
				return;
			}
			smtp_reply_init(l->rep);
		}
		if (log_enabled(LOG_LVL_DEBUG)) {
			char q[SMTP_LINE_MAX * 2];

			log_debug("sid=%s event=upstream-line text=%s",
			    l->tag, log_qn(q, sizeof(q), line, (size_t)n));
		}
		st = smtp_reply_feed(l->rep, line, (size_t)n);
		if (st == SMTP_REPLY_MORE)
			continue;
		if (st == SMTP_REPLY_BAD) {
			char q[200];

			leg_fail(l, LEG_E_PROTOCOL, "%s sent a malformed "
			    "reply (%s): %s", l->dst_str, l->rep->err,
			    log_qn(q, sizeof(q), line, (size_t)n));
			return;
		}
		r = l->rep;
		l->rep = NULL;
		l->busy++;		/* r outlives a leg_free() in it */
		leg_on_reply(l, r);
		l->busy--;
		free(r);
		if (l->zombie) {
			if (l->busy == 0)
				leg_destroy(l);
			return;
		}
	}
}

/* ---- io events --------------------------------------------------------- */

static void
leg_io_cb(struct io *io, enum io_event ev, void *arg)
{
	struct leg *l = arg;
	struct leg_news n;

	if (l->state == LS_CLOSED)
		return;
	switch (ev) {
	case IO_CONNECTED:
		local_fmt(l);
		log_debug("sid=%s event=upstream-connected dst=%s src=%s",
		    l->tag, l->dst_str, l->local);
		leg_enter(l, LS_GREETING);
		/* a deadline: the client is not read before the 220, so
		 * its close goes unseen, and a server that trickled its
		 * greeting held the session for 16 KB times the timeout */
		io_set_deadline(l->io, cfg(l)->greeting_timeout);
		break;
	case IO_DATAIN:
		if (l->state == LS_BODY || (l->state == LS_DOT &&
		    !l->dot_out)) {
			/* no server speaks before the dot, nor while the dot
			 * is still queued here (it cannot have it); whatever
			 * it says now, the message is not accepted */
			log_info("sid=%s event=early-reply dst=%s bytes=%zu",
			    l->tag, l->dst_str, io_datalen(io));
			leg_fail(l, LEG_E_EARLY, "%s replied before the end "
			    "of the message", l->dst_str);
			break;
		}
		if (l->state == LS_EHLO_TLS && l->hs_unconfirmed)
			tls_confirmed(l);	/* it speaks inside TLS */
		leg_read_replies(l);
		break;
	case IO_TLSREADY:
		if (l->state == LS_HANDSHAKE)
			tls_ready(l);
		break;
	case IO_LOWAT:
		if (l->state == LS_DOT && !l->dot_out)
			dot_deadline(l);	/* the dot is out */
		memset(&n, 0, sizeof(n));
		leg_report(l, LEG_LOWAT, &n);
		break;
	case IO_TIMEOUT:
		if (l->state == LS_HANDSHAKE) {
			tls_broken(l, "TLS handshake timeout", 1);
			break;
		}
		if (l->state == LS_QUIT) {
			leg_close_io(l);
			leg_enter(l, LS_CLOSED);
			leg_report(l, LEG_CLOSED, NULL);
			break;
		}
		leg_fail(l, l->state == LS_CONNECT ? LEG_E_CONNECT :
		    LEG_E_TIMEOUT, "timeout in state %s waiting for %s",
		    lstate_names[l->state], l->dst_str);
		break;
	case IO_ERROR:
	case IO_DISCONNECTED:
		if (l->state == LS_HANDSHAKE || (l->state == LS_EHLO_TLS &&
		    l->hs_unconfirmed)) {
			tls_broken(l, io_error(io), 0);
			break;
		}
		if (l->state == LS_QUIT) {
			/* it hung up instead of answering QUIT */
			leg_close_io(l);
			leg_enter(l, LS_CLOSED);
			leg_report(l, LEG_CLOSED, NULL);
			break;
		}
		if (l->state == LS_CONNECT) {
			leg_fail(l, LEG_E_CONNECT, "cannot connect to %s: %s",
			    l->dst_str, io_error(io));
			break;
		}
		leg_fail(l, LEG_E_LOST, "connection to %s lost: %s",
		    l->dst_str, ev == IO_ERROR ? io_error(io) :
		    "closed by the server");
		break;
	case IO_HANGUP:		/* the leg's io is never paused */
		break;
	}
}

/* ---- facts ------------------------------------------------------------- */

int
leg_settled(const struct leg *l)
{
	return l->settled;
}

int
leg_refused(const struct leg *l)
{
	return l->refused;
}

int
leg_reused(const struct leg *l)
{
	return l->reused;
}

int
leg_starttls_skipped(const struct leg *l)
{
	return l->skipped;
}

int
leg_dot_held(const struct leg *l)
{
	return l->dot_held;
}

const char *
leg_cleartext_reason(const struct leg *l)
{
	return l->clear_why;
}

int
leg_count_domain(struct leg *l, uint64_t key)
{
	return domset_add(&l->counted, key);
}

unsigned
leg_uses(const struct leg *l)
{
	return l->uses;
}

const struct smtp_caps *
leg_caps(const struct leg *l)
{
	return &l->caps;
}

const struct tls_proof *
leg_proof(const struct leg *l)
{
	return &l->proof;
}

const char *
leg_greeting(const struct leg *l)
{
	return l->greeting;
}

const char *
leg_local_ip(const struct leg *l)
{
	return l->local;
}

const char *
leg_tls_proto(const struct leg *l)
{
	return l->proof.tls ? l->tls_proto : "";
}

const char *
leg_tls_cipher(const struct leg *l)
{
	SSL *ssl = l->proof.tls && l->io ? io_ssl(l->io) : NULL;
	const char *c = ssl ? SSL_get_cipher_name(ssl) : NULL;

	return c && strcmp(c, "(NONE)") != 0 ? c : "";
}

const char *
leg_tls_verify(const struct leg *l)
{
	return l->res.reason;
}

unsigned long long
leg_bytes_out(const struct leg *l)
{
	return l->out + (l->io ? io_bytes_out(l->io) - l->base : 0ULL);
}

const char *
leg_state_name(const struct leg *l)
{
	return lstate_names[l->state];
}
