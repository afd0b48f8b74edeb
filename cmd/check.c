/*
 * check.c - `mxguard check DOMAIN [ADDRESS] [--deadline S] [--helo N]
 * [--json]`, in the spirit of posttls-finger: for every MX host of DOMAIN and
 * each of its addresses (A, then AAAA: all the MX walk keeps; or only ADDRESS),
 * the DNSSEC status of the MX and address records, the TLSA records and what
 * DANE makes of them, the MTA-STS policy, the verdict mxguard would give, and a
 * real STARTTLS handshake set up with that verdict's settings (SNI, DANE TLSA
 * records, names) and judged by policy_tls_check(), as the proxy does, then
 * EHLO inside TLS, whose refusal fails the proxy's leg; after a refusal of
 * STARTTLS at may, NOOP, as the leg goes on in cleartext on that connection
 * (which the server may have closed); at level none greeting and EHLO only,
 * as the proxy never asks for STARTTLS there.  The probes run
 * one after the other, none started after the deadline (CHECK_DEADLINE seconds,
 * or --deadline), none running past it; each step waits as long as the daemon's
 * leg would (the configuration's connect_timeout, command_timeout,
 * tls_timeout, re-armed by progress as io.c re-arms them: bytes read, in
 * the handshake bytes sent; greeting_timeout, a deadline from the connect,
 * as the leg's), never past the deadline
 * (see step_begin()), which --deadline sets.  A probe the deadline cuts
 * short is not judged ("unknown": the server did not time out, the check
 * did); an address the deadline leaves out, or one the MX walk did not keep
 * (more than MX_MAX_ADDRS for a host, counted in nmore), is said to be not
 * probed, by name where it is known, never left out silently; so are the MX
 * hosts the walk did not look up at all (more than MX_MAX_HOSTS, nunkept),
 * whose addresses the daemon defers an enforce domain's mail to, and the
 * addresses of a host's A or AAAA lookup that failed (failed_lookups()).  Server replies
 * go through the proxy's own SMTP reply and EHLO parsers (tlsproxy/smtp.h), so
 * that both read a masked STARTTLS (XXXXXXXA, XXXXXXXX) the same way, and EHLO
 * goes as the proxy's leg says it (HELO after a 5xx, see probe_hello()), with
 * the name an MTA here would say (--helo, else the host name when it has a
 * dot, else the address literal of the probe's local address, and in HELO
 * the bare host name: see default_helo(), probe_helo_name(),
 * helo_domain()).  Readable text by default, one JSON
 * object with --json.
 *
 * Exit status (monitoring plugins' convention, cmd.h): 0 every checked address
 * would get the mail as its verdict requires; 1 all would get it but some not
 * as required (report-only failures, cleartext where TLS was possible, an
 * address in bypass_dst, whose flow goes direct and is never mxguard's), or
 * some address was not probed; 2 some would defer it (policy or handshake, a
 * greeting or an EHLO reply that refuses service, EHLO refused inside TLS); 3 a
 * probe the deadline cut short and none deferred (see worse()), usage or setup
 * errors.  --json writes one object (schema 1, jansson): null for what is
 * absent, the server's UTF-8 as it is, invalid bytes as U+FFFD with
 * "<member>_invalid_utf8": true beside.  Under enforcement = monitor the probe
 * is judged as enforce mode would judge it (what the daemon only logs as
 * would-defer), and the output says it is monitored.  When a daemon answers on
 * control_socket and runs another configuration than the file read
 * (cmd_config_vs_daemon(), cmd.h), the first line on stderr says so, or JSON's
 * config_warning; the exit status stays the probes'.
 *
 * The probe connection carries upstream_mark, so divert rules let it pass
 * (setting the mark needs CAP_NET_ADMIN).  With rules_mode = local a mark that
 * cannot be set ends the check with exit 3 (see probe_mark()).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "cmd/cmd.h"
#include "cmd/priv.h"
#include "core/ev.h"
#include "core/log.h"
#include "core/netaddr.h"
#include "policy/dane.h"
#include "policy/dns.h"
#include "policy/mx.h"
#include "policy/policy.h"
#include "policy/sts.h"
#include "tlsproxy/smtp.h"
#include "tlsproxy/tls.h"

/* Texts from the remote server are cut to fit, on purpose. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

/* every address the MX walk keeps */
#define MAXP		(MX_MAX_HOSTS * MX_MAX_ADDRS)
/* the probes' time in all, in seconds: a domain with many unreachable
 * addresses must not hold the check for hours (each may wait
 * connect_timeout to connect, then greeting_timeout and command_timeout
 * for each reply, as the daemon waits); a step gets what is left of the
 * deadline when that is less.  Longer than the longest default step
 * (greeting_timeout, 5 min), so that one silent server is judged as the
 * daemon judges it (defer), not cut short (unknown). */
#define CHECK_DEADLINE	600
/* the most --deadline may ask for: a day */
#define CHECK_DEADLINE_MAX 86400

struct probe {
	char		 host[256];
	int		 pref;
	struct sockaddr_storage addr;
	char		 addrstr[64];
	struct dane_info *dane;
	struct policy_verdict *v;	/* enforce mode's, see on_verdict */
	int		 monitored;	/* enforcement = monitor applies */
	int		 bypassed;	/* in bypass_dst: goes direct */
	/* the handshake */
	int		 connected;
	int		 greeting;	/* its code; -1 none or malformed */
	char		 banner[256];
	char		 helo_name[SMTP_DOMAIN_MAX + 1];	/* said in EHLO
					 * and HELO */
	int		 ehlo;		/* its reply's code; -1 none or
					 * malformed; 0 not sent */
	int		 helo;		/* the same for HELO, said after a
					 * 5xx to EHLO as the proxy does */
	int		 starttls;
	int		 masked;
	int		 starttls_code;	/* the reply to STARTTLS; -1 none or
					 * malformed; 0 not sent */
	int		 noop;		/* NOOP's code after a refused
					 * STARTTLS at may; -1 none or
					 * malformed; 0 not sent */
	int		 tls;
	int		 ehlo_tls;	/* EHLO's code inside TLS; -1 none or
					 * malformed; 0 not sent */
	char		 tls_proto[32], cipher[64];
	char		 subject[256], issuer[256];
	int		 check_ok;
	int		 report_failed;	/* the report-only (MTA-STS testing)
					 * check failed: delivered, a warning */
	int		 dropped;	/* a failure the proxy ends the
					 * connection on at any level */
	char		 reason[48], detail[256];
	char		 error[256];
	int		 deliverable;
	int		 refused;	/* the server refused service in its
					 * greeting: not delivered there */
	char		 outcome[200];	/* what the proxy does, when the
					 * result alone does not say it */
	int		 skipped;	/* not probed: the deadline passed */
	char		 cut[32];	/* the step the check's deadline cut
					 * short, or "": not judged */
};

struct run {
	struct ev_loop	*loop;
	struct dns	*dns;
	struct policy	*pol;
	int		 outstanding;
	char		 domain[256];
	struct mx_result *mx;		/* the MX walk's answer */
	int		 single;	/* only the ADDRESS given */
	int		 nprobe;
	struct probe	*probes;	/* MAXP */
	int		 deadline;	/* the check's, in seconds */
	char		 helo[SMTP_DOMAIN_MAX + 1];	/* said in EHLO, HELO;
					 * "": each probe's address literal */
	struct cmd_cfgcheck cc;		/* the file's digest, the daemon's */
};

static void
one_done(struct run *r)
{
	if (--r->outstanding == 0)
		ev_loop_stop(r->loop);
}

static void
wait_all(struct run *r)
{
	if (r->outstanding > 0)
		ev_loop_run(r->loop);
}

static void
on_walk(void *arg, struct mx_result *m)
{
	struct run *r = arg;

	r->mx = m;
	one_done(r);
}

/* Probes for every host's addresses of one family, in the walk's order. */
static void
add_probes(struct run *r, int family)
{
	const struct mx_result *m = r->mx;
	int i, j;

	for (i = 0; i < m->nhost; i++)
		for (j = 0; j < m->host[i].naddr && r->nprobe < MAXP; j++) {
			const struct sockaddr_storage *ss = &m->host[i].addr[j];
			struct probe *p;

			if (ss->ss_family != family)
				continue;
			p = &r->probes[r->nprobe++];
			snprintf(p->host, sizeof(p->host), "%s",
			    m->host[i].name);
			p->pref = m->host[i].pref;
			p->addr = *ss;
			inet_ntop(family, family == AF_INET6 ?
			    (const void *)&((const struct sockaddr_in6 *)ss)->
			    sin6_addr : (const void *)&((const struct
			    sockaddr_in *)ss)->sin_addr, p->addrstr,
			    sizeof(p->addrstr));
		}
}

struct vq {
	struct run	*r;
	struct probe	*p;
};

static void
on_dane(void *arg, struct dane_info *d)
{
	struct vq *q = arg;

	q->p->dane = d;
	one_done(q->r);
	free(q);
}

struct dstwalk {
	struct run	*r;
	struct mx_result *m;
};

static void
on_dst_walk(void *arg, struct mx_result *m)
{
	struct dstwalk *w = arg;

	w->m = m;
	one_done(w->r);
}

/*
 * The DANE view of probe p's address into p->dane, and p's MX host when
 * it had none (ADDRESS given), as the daemon judges the address: P::G (P
 * a nat64_prefix) and ::ffff:G are G's (netaddr_judged()), and its owner
 * is found by an MX walk for it (policy.c's), which reads every address
 * record of an answer.  The walk that listed the probes keeps 8 per host
 * (MX_MAX_ADDRS): judged on those (mx_result_set_dst()), an address past
 * them was no MX host's, and the view said "defer" (a host publishing
 * TLSA records) or another host's, beside the daemon's DANE verdict.
 * Its answers come from the resolver's cache.  0, or -1 out of memory.
 */
static int
dane_view(struct run *r, struct probe *p)
{
	struct dstwalk w = { r, NULL };
	struct sockaddr_storage jd;
	struct vq *q;
	int owner;

	if (netaddr_judged((struct sockaddr *)&p->addr, &jd) == -1)
		return 0;	/* no DANE view */
	r->outstanding++;
	if (mx_walk(r->dns, r->domain, (struct sockaddr *)&jd,
	    jd.ss_family == AF_INET6 ? MX_WALK_AAAA : MX_WALK_A, on_dst_walk,
	    &w) == NULL) {
		r->outstanding--;
		return -1;
	}
	wait_all(r);
	if (w.m == NULL)
		return -1;
	owner = w.m->owner;
	if (owner >= 0 && strcmp(p->host, "-") == 0) {
		snprintf(p->host, sizeof(p->host), "%s",
		    w.m->host[owner].name);
		p->pref = w.m->host[owner].pref;
	}
	if ((q = calloc(1, sizeof(*q))) == NULL) {
		free(w.m);
		return -1;
	}
	q->r = r;
	q->p = p;
	r->outstanding++;
	if (dane_lookup(r->loop, r->dns, w.m, (struct sockaddr *)&jd,
	    on_dane, q) == NULL) {
		free(q);
		r->outstanding--;
	}
	free(w.m);
	wait_all(r);
	return 0;
}

static void
on_verdict(void *arg, struct policy_verdict *v)
{
	struct vq *q = arg;

	/* check shows what enforce mode would do: a monitored verdict is
	 * probed and judged as the enforced one */
	if (v->monitor) {
		q->p->monitored = 1;
		v->level = v->would_level;
		v->monitor = 0;
	}
	q->p->v = v;
	one_done(q->r);
	free(q);
}

/* ---- a blocking SMTP probe ------------------------------------------- */

/* The probe's connection (non-blocking): bytes read and not yet parsed,
 * and when the current step and the whole check end (mono_ms()). */
struct conn {
	int		 fd;
	SSL		*ssl;
	char		 buf[8192];
	size_t		 n;
	const struct config *cfg;	/* the daemon's timeouts */
	const char	*helo;		/* the name said in EHLO (and HELO,
					 * unless an address literal:
					 * helo_domain()) */
	int64_t		 deadline;	/* the check's */
	int64_t		 idle;		/* the step's timeout (ms), as the
					 * leg sets it for the step */
	int64_t		 step_end;	/* idle from the step's start or its
					 * last progress, or deadline if
					 * sooner */
	int		 fixed;		/* the step is a deadline: progress
					 * does not re-arm it */
	int		 timed_out;	/* the last wait ran out */
	int		 cut;		/* ... at the check's deadline */
};

/* CLOCK_MONOTONIC in milliseconds. */
static int64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The same in seconds (the check's deadline). */
static time_t
mono_now(void)
{
	return (time_t)(mono_ms() / 1000);
}

/* The step's time from now: its timeout, cut to what is left of the
 * check's deadline. */
static void
step_arm(struct conn *c)
{
	int64_t end = mono_ms() + c->idle;

	c->step_end = end < c->deadline ? end : c->deadline;
}

/*
 * A step begins with the timeout (ms) the daemon's leg sets for it: an
 * inactivity timeout, re-armed by bytes read (step_arm()), in the TLS
 * handshake by bytes sent (handshake_sent()), as io.c re-arms the
 * leg's, so a server the daemon waits for is waited for;
 * always cut to what is left of the check's deadline (a socket timeout
 * per step let a probe begun near the deadline run past it by a timeout
 * per step, and per read).
 */
static void
step_begin(struct conn *c, uint64_t ms)
{
	c->idle = (int64_t)ms;
	c->timed_out = c->cut = c->fixed = 0;
	step_arm(c);
}

/* A step the leg gives a deadline (the greeting: io_set_deadline() in
 * tlsproxy/leg.c), which bytes read do not re-arm. */
static void
step_begin_deadline(struct conn *c, uint64_t ms)
{
	step_begin(c, ms);
	c->fixed = 1;
}

/* Progress in the step: re-arms it, unless it is a deadline. */
static void
step_progress(struct conn *c)
{
	if (!c->fixed)
		step_arm(c);
}

/* Waits for events on c until the step's end: 0, or -1 (errno). */
static int
conn_wait(struct conn *c, short events)
{
	struct pollfd pfd = { c->fd, events, 0 };
	int64_t left;
	int n;

	for (;;) {
		if ((left = c->step_end - mono_ms()) <= 0 ||
		    (n = poll(&pfd, 1, (int)left)) == 0) {
			c->timed_out = 1;
			c->cut = c->step_end == c->deadline;
			errno = ETIMEDOUT;
			return -1;
		}
		if (n > 0)
			return 0;
		if (errno != EINTR)
			return -1;
	}
}

/* After an SSL call that returned rc <= 0: waits for what it wants, 0;
 * -1 when it failed for good, or the step's time ran out. */
static int
ssl_wait(struct conn *c, int rc)
{
	switch (SSL_get_error(c->ssl, rc)) {
	case SSL_ERROR_WANT_READ:
		return conn_wait(c, POLLIN);
	case SSL_ERROR_WANT_WRITE:
		return conn_wait(c, POLLOUT);
	default:
		return -1;
	}
}

/* What a step that ran out of time was cut by. */
static const char *
timeout_word(const struct conn *c)
{
	return c->cut ? "timed out: the check's deadline passed" :
	    "timed out";
}

/* Notes that the check's deadline, not the server, ended the probe in
 * step (judge() leaves it unjudged); after a step that failed. */
static void
probe_cut(struct probe *p, const struct conn *c, const char *step)
{
	if (c->timed_out && c->cut && p->cut[0] == '\0')
		snprintf(p->cut, sizeof(p->cut), "%s", step);
}

/* Reads into c->buf within the step, which bytes read re-arm: bytes
 * read, 0 closed, -1 error. */
static ssize_t
conn_read(struct conn *c)
{
	for (;;) {
		ssize_t k;
		int n;

		if (c->ssl != NULL) {
			n = SSL_read(c->ssl, c->buf + c->n,
			    (int)(sizeof(c->buf) - c->n));
			if (n > 0) {
				step_progress(c);
				return n;
			}
			if (ssl_wait(c, n) == -1)
				return c->timed_out ? -1 : n == 0 ? 0 : -1;
			continue;
		}
		if ((k = read(c->fd, c->buf + c->n, sizeof(c->buf) - c->n))
		    >= 0) {
			if (k > 0)
				step_progress(c);
			return k;
		}
		if ((errno != EAGAIN && errno != EINTR) ||
		    conn_wait(c, POLLIN) == -1)
			return -1;
	}
}

/*
 * One reply, through the proxy's reply parser; returns its code, or -1
 * (connection closed, or a reply the proxy would refuse too).  last gets
 * "code text" of its last line.
 */
static int
read_reply(struct conn *c, struct smtp_reply *rep, char *last,
    size_t lastsz)
{
	enum smtp_reply_status st;

	smtp_reply_init(rep);
	snprintf(last, lastsz, "no reply");
	for (;;) {
		char *eol;
		ssize_t k;

		while ((eol = memchr(c->buf, '\n', c->n)) != NULL) {
			size_t len = (size_t)(eol - c->buf);
			size_t tl;
			const char *t;

			if (len > 0 && c->buf[len - 1] == '\r')
				len--;
			st = smtp_reply_feed(rep, c->buf, len);
			c->n -= (size_t)(eol + 1 - c->buf);
			memmove(c->buf, eol + 1, c->n);
			if (st == SMTP_REPLY_BAD) {
				snprintf(last, lastsz, "malformed reply: %s",
				    rep->err);
				return -1;
			}
			if (st == SMTP_REPLY_DONE) {
				t = smtp_reply_text(rep, rep->nlines - 1, &tl);
				snprintf(last, lastsz, "%d %.*s", rep->code,
				    (int)tl, t);
				return rep->code;
			}
		}
		if (c->n >= sizeof(c->buf)) {
			snprintf(last, lastsz, "reply line too long");
			return -1;
		}
		if ((k = conn_read(c)) <= 0) {
			if (c->timed_out)
				snprintf(last, lastsz, "%s", timeout_word(c));
			return -1;
		}
		c->n += (size_t)k;
	}
}

/* A command, which begins a step (sending it, reading its reply) of
 * command_timeout, as the leg's commands. */
static int
send_line(struct conn *c, const char *s)
{
	char b[600];
	int n = snprintf(b, sizeof(b), "%s\r\n", s), off = 0, k;

	step_begin(c, c->cfg->command_timeout);
	while (off < n) {
		if (c->ssl != NULL) {
			/* retried with the same arguments, as OpenSSL wants */
			if ((k = SSL_write(c->ssl, b, n)) > 0)
				return 0;
			if (ssl_wait(c, k) == -1)
				return -1;
			continue;
		}
		if ((k = (int)write(c->fd, b + off, (size_t)(n - off))) > 0)
			off += k;
		else if ((k == -1 && errno != EAGAIN && errno != EINTR) ||
		    k == 0 || conn_wait(c, POLLOUT) == -1)
			return -1;
	}
	return 0;
}

/*
 * Marks the probe's socket with upstream_mark, as the proxy marks its own
 * upstream connections.  With rules_mode = local mxguard's rules catch
 * this host's own port-25 connections: an unmarked probe would be queued
 * or diverted to mxguard itself, and the check would report on mxguard's
 * STARTTLS, not the MX's.  So there a mark that cannot be set (no
 * CAP_NET_ADMIN) is an error, never a silent unmarked probe; in gateway
 * mode the rules see forwarded flows only and the probe may go unmarked.
 * Returns 0, or -1 with p->error saying what to do.
 */
static int
probe_mark(struct probe *p, int fd, const struct config *cfg)
{
	uint32_t mark = cfg->upstream_mark;
	char addr[sizeof(p->addrstr)];
	int e;

	if (setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) == 0)
		return 0;
	e = errno;
	if (strcmp(cfg->rules_mode, "local") != 0) {
		log_info("event=check-unmarked address=%s rules_mode=%s "
		    "error=\"%s\"", p->addrstr, cfg->rules_mode, strerror(e));
		return 0;
	}
	/* a copy: GCC's -Wrestrict sees p->error and p->addrstr as one */
	snprintf(addr, sizeof(addr), "%s", p->addrstr);
	snprintf(p->error, sizeof(p->error), "cannot mark the probe to %s "
	    "with upstream_mark 0x%x (SO_MARK: %s); with rules_mode = local "
	    "mxguard's rules would divert it to mxguard itself: run as root "
	    "or with CAP_NET_ADMIN", addr, (unsigned)mark, strerror(e));
	return -1;
}

/* A name an MX takes in EHLO: a host name with a dot. */
static int
helo_ok(const char *name)
{
	return sts_valid_hostname(name) && strchr(name, '.') != NULL;
}

/*
 * The EHLO name for host (gethostname()'s): host itself when it is a
 * dotted host name, else "": each probe then says the address literal of
 * its connection's local address (helo_literal()).  No resolver: an
 * AI_CANONNAME lookup of a bare name waited for DNS timeouts when DNS
 * was down, before the first probe.  Many MXes refuse EHLO with a bare
 * or invalid name, which the MTA, whose name the proxy relays, would
 * not send; an address literal is valid EHLO syntax.
 */
static void
helo_from(const char *host, char *buf, size_t sz)
{
	snprintf(buf, sz, "%s", helo_ok(host) ? host : "");
}

/* The host's name for EHLO (helo_from()), or "". */
static void
default_helo(char *buf, size_t sz)
{
	char host[SMTP_DOMAIN_MAX + 2];

	if (gethostname(host, sizeof(host)) == -1)
		host[0] = '\0';
	host[sizeof(host) - 1] = '\0';
	helo_from(host, buf, sz);
}

/*
 * The address literal of a local address, for EHLO (RFC 5321 section
 * 4.1.3): [192.0.2.1], [IPv6:2001:db8::1]; an IPv4-mapped address is
 * the IPv4 one the connection uses.  0, or -1.
 */
static int
helo_literal(const struct sockaddr_storage *ss, char *buf, size_t sz)
{
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
	char a[INET6_ADDRSTRLEN];
	struct in_addr v4;

	if (ss->ss_family == AF_INET)
		v4 = ((const struct sockaddr_in *)ss)->sin_addr;
	else if (ss->ss_family == AF_INET6 &&
	    IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
		memcpy(&v4, &s6->sin6_addr.s6_addr[12], sizeof(v4));
	else if (ss->ss_family == AF_INET6) {
		if (inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof(a)) == NULL)
			return -1;
		snprintf(buf, sz, "[IPv6:%s]", a);
		return 0;
	} else
		return -1;
	if (inet_ntop(AF_INET, &v4, a, sizeof(a)) == NULL)
		return -1;
	snprintf(buf, sz, "[%s]", a);
	return 0;
}

/*
 * The name for HELO, which takes a domain and never an address literal
 * (RFC 5321 section 4.1.1.1; EHLO takes either): name itself when it is
 * no literal, else host (gethostname()'s) when it is a host name, even
 * without a dot, else "localhost".
 */
static void
helo_domain(const char *name, const char *host, char *buf, size_t sz)
{
	if (name[0] != '[')
		snprintf(buf, sz, "%s", name);
	else if (sts_valid_hostname(host))
		snprintf(buf, sz, "%s", host);
	else
		snprintf(buf, sz, "localhost");
}

/* The name the probe says: helo, or without one the address literal of
 * the connection's local address.  0, or -1 with p->error set. */
static int
probe_helo_name(struct probe *p, int fd, const char *helo)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (helo != NULL && *helo != '\0') {
		snprintf(p->helo_name, sizeof(p->helo_name), "%s", helo);
		return 0;
	}
	if (getsockname(fd, (struct sockaddr *)&ss, &len) == -1 ||
	    helo_literal(&ss, p->helo_name, sizeof(p->helo_name)) == -1) {
		snprintf(p->error, sizeof(p->error), "the probe's local "
		    "address, for EHLO: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* A command of the probe: its reply's code, -1 for none (last says why);
 * the step is named when the check's deadline cut it (probe_cut()). */
static int
probe_cmd(struct probe *p, struct conn *c, struct smtp_reply *rep,
    const char *verb, const char *arg, const char *step, char *last,
    size_t lastsz)
{
	char line[SMTP_DOMAIN_MAX + 16];
	int code;

	snprintf(line, sizeof(line), "%s%s%s", verb, arg ? " " : "",
	    arg ? arg : "");
	snprintf(last, lastsz, "cannot send it");
	code = send_line(c, line) == -1 ? -1 : read_reply(c, rep, last,
	    lastsz);
	probe_cut(p, c, step);
	return code;
}

/*
 * EHLO as the proxy's leg says it (leg_on_reply(), LS_HELLO/LS_HELO):
 * any 2xx will do; after a 5xx it says HELO, whose 2xx offers no
 * extension (so no STARTTLS); any other reply the proxy relays to the
 * MTA.  p->ehlo, p->helo get the codes.  Returns 0 (caps set), 1 refused
 * (the connection can still be QUIT), -1 no reply (it cannot).
 */
static int
probe_hello(struct probe *p, struct conn *c, struct smtp_reply *rep,
    struct smtp_caps *caps)
{
	char last[512], ehlo[512], host[SMTP_DOMAIN_MAX + 2];
	char name[SMTP_DOMAIN_MAX + 2];

	memset(caps, 0, sizeof(*caps));
	p->ehlo = probe_cmd(p, c, rep, "EHLO", c->helo, "EHLO", last,
	    sizeof(last));
	if (p->ehlo / 100 == 2) {
		smtp_caps_parse(rep, caps);
		return 0;
	}
	if (p->ehlo / 100 != 5) {
		snprintf(p->error, sizeof(p->error), "EHLO %s: %s",
		    p->ehlo == -1 ? "failed" : "refused", last);
		return p->ehlo == -1 ? -1 : 1;
	}
	snprintf(ehlo, sizeof(ehlo), "%s", last);
	if (gethostname(host, sizeof(host)) == -1)
		host[0] = '\0';
	host[sizeof(host) - 1] = '\0';
	helo_domain(c->helo, host, name, sizeof(name));
	p->helo = probe_cmd(p, c, rep, "HELO", name, "HELO", last,
	    sizeof(last));
	if (p->helo / 100 == 2)
		return 0;
	snprintf(p->error, sizeof(p->error), "EHLO refused: %s; HELO %s: %s",
	    ehlo, p->helo == -1 ? "failed" : "refused", last);
	return p->helo == -1 ? -1 : 1;
}

/*
 * EHLO inside TLS, as the leg says it once the handshake is checked
 * (tls_ready(), LS_EHLO_TLS): any 2xx will do; another reply, or none,
 * fails the leg (leg_fail(): a 421 to the MTA at any level, with no
 * cleartext retry).  p->ehlo_tls gets the code.  Returns 0, or -1 with
 * p->error naming the step.
 */
static int
probe_ehlo_tls(struct probe *p, struct conn *c, struct smtp_reply *rep)
{
	char last[512];

	p->ehlo_tls = probe_cmd(p, c, rep, "EHLO", c->helo,
	    "EHLO after STARTTLS", last, sizeof(last));
	if (p->ehlo_tls / 100 == 2)
		return 0;
	snprintf(p->error, sizeof(p->error), "EHLO after STARTTLS %s: %s",
	    p->ehlo_tls == -1 ? "failed" : "refused", last);
	return -1;
}

/*
 * After a reply that refuses STARTTLS the leg goes on in cleartext at
 * may, on the same connection (leg_on_reply(), LS_STARTTLS): the
 * session's next command goes there, and a server that closed after its
 * refusal, or answers 421 (closing), or nothing, loses the leg its mail
 * (leg_fail(): a 421 to the MTA).  NOOP stands for that command.
 * p->noop gets its code.  Returns 0 when the connection goes on, -1 when
 * it does not (p->dropped, p->error says why).
 */
static int
probe_after_refusal(struct probe *p, struct conn *c, struct smtp_reply *rep)
{
	char last[512], refusal[sizeof(p->error)];

	p->noop = probe_cmd(p, c, rep, "NOOP", NULL, "NOOP", last,
	    sizeof(last));
	if (p->noop != -1 && p->noop != 421)
		return 0;
	snprintf(refusal, sizeof(refusal), "%s", p->error);
	snprintf(p->error, sizeof(p->error), "%s; then NOOP %s: %s", refusal,
	    p->noop == -1 ? "failed" : "refused", last);
	p->dropped = 1;
	return -1;
}

/* The TCP connection within its step (connect_timeout): 0, or -1 with
 * p->error set. */
static int
probe_connect(struct probe *p, struct conn *c)
{
	socklen_t len = sizeof(int);
	int e = 0;

	step_begin(c, c->cfg->connect_timeout);
	if (connect(c->fd, (struct sockaddr *)&p->addr,
	    p->addr.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) :
	    sizeof(struct sockaddr_in)) == 0)
		return 0;
	if (errno != EINPROGRESS)
		e = errno;
	else if (conn_wait(c, POLLOUT) == -1)
		e = errno;
	else if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &len) == -1)
		e = errno;
	if (e == 0)
		return 0;
	probe_cut(p, c, "connect");
	snprintf(p->error, sizeof(p->error), "connect: %s", c->timed_out ?
	    timeout_word(c) : strerror(e));
	return -1;
}

/* Handshake bytes the probe sent since *sent re-arm the step, as each
 * send of the leg's handshake records re-arms its timeout (io.c,
 * drain_tout()); the server's records, which OpenSSL reads, re-arm
 * neither. */
static void
handshake_sent(struct conn *c, uint64_t *sent)
{
	uint64_t n = BIO_number_written(SSL_get_wbio(c->ssl));

	if (n != *sent) {
		*sent = n;
		step_progress(c);
	}
}

/* The TLS handshake within its step (tls_timeout, re-armed by what the
 * probe sends: handshake_sent()): 0, or -1 with p->error set. */
static int
probe_handshake(struct probe *p, struct conn *c, SSL *ssl)
{
	uint64_t sent;
	char e[200];
	int rc;

	step_begin(c, c->cfg->tls_timeout);
	c->ssl = ssl;
	sent = BIO_number_written(SSL_get_wbio(ssl));
	while ((rc = SSL_connect(ssl)) != 1) {
		handshake_sent(c, &sent);
		if (ssl_wait(c, rc) == -1)
			break;
	}
	if (rc == 1)
		return 0;
	c->ssl = NULL;
	probe_cut(p, c, "TLS handshake");
	if (c->timed_out)
		snprintf(e, sizeof(e), "%s", timeout_word(c));
	else
		ERR_error_string_n(ERR_get_error(), e, sizeof(e));
	snprintf(p->error, sizeof(p->error), "TLS handshake failed: %s", e);
	return -1;
}

/* The handshake, saying helo in EHLO and HELO (or, NULL or "", the
 * address literal of the local address: probe_helo_name()), every step
 * within the daemon's timeout for it and before deadline (mono_ms()); -1
 * only when the probe cannot be made as it must be (probe_mark()), every
 * other failure is a result in p. */
static int
probe_tls(struct probe *p, struct tls_ctx *tc, const struct config *cfg,
    const char *helo, int64_t deadline)
{
	char last[512];
	struct conn c;
	struct smtp_reply *rep;
	struct smtp_caps caps;
	SSL *ssl = NULL;
	int fd, code, rc, ret = 0;

	if ((rep = malloc(sizeof(*rep))) == NULL) {
		snprintf(p->error, sizeof(p->error), "out of memory");
		return 0;
	}
	if ((fd = socket(p->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC |
	    SOCK_NONBLOCK, 0)) == -1) {
		snprintf(p->error, sizeof(p->error), "socket: %s",
		    strerror(errno));
		free(rep);
		return 0;
	}
	c.fd = fd;
	c.ssl = NULL;
	c.n = 0;
	c.cfg = cfg;
	c.helo = p->helo_name;
	c.deadline = deadline;
	if (probe_mark(p, fd, cfg) == -1) {
		ret = -1;
		goto out;
	}
	if (probe_connect(p, &c) == -1 || probe_helo_name(p, fd, helo) == -1)
		goto out;
	p->connected = 1;
	/* any 2xx will do, as for the proxy's leg (tlsproxy/leg.c) */
	step_begin_deadline(&c, cfg->greeting_timeout);
	p->greeting = code = read_reply(&c, rep, last, sizeof(last));
	probe_cut(p, &c, "greeting");
	if (code / 100 != 2) {
		snprintf(p->error, sizeof(p->error), "greeting: %s", last);
		if (code == -1)
			goto out;
		goto quit;
	}
	snprintf(p->banner, sizeof(p->banner), "%s", last + 4);
	if ((rc = probe_hello(p, &c, rep, &caps)) != 0) {
		if (rc == -1)
			goto out;
		goto quit;
	}
	p->starttls = (caps.flags & SMTP_CAP_STARTTLS) != 0;
	p->masked = (caps.flags & SMTP_CAP_STARTTLS_MASKED) != 0;
	/* level none: cleartext without asking (leg_decide()) */
	if (p->v->level == TLS_LEVEL_NONE)
		goto quit;
	if (!p->starttls) {
		snprintf(p->error, sizeof(p->error), "no STARTTLS offered%s",
		    p->masked ? " (masked by a middlebox: XXXXXXXA or "
		    "XXXXXXXX)" : p->helo > 0 ? " (EHLO refused, HELO "
		    "accepted: no extensions)" : "");
		goto quit;
	}
	p->starttls_code = code = probe_cmd(p, &c, rep, "STARTTLS", NULL,
	    "STARTTLS", last, sizeof(last));
	if (code != 220) {
		snprintf(p->error, sizeof(p->error), "STARTTLS %s: %s",
		    code == -1 ? "failed" : "refused", last);
		/* a refusal is the leg's cleartext at may, on this
		 * connection; no reply (closed, timed out, malformed) fails
		 * it (leg_fail()) */
		if (code == -1) {
			p->dropped = 1;
			goto out;
		}
		if (p->v->level == TLS_LEVEL_MAY &&
		    probe_after_refusal(p, &c, rep) == -1)
			goto out;
		goto quit;
	}
	/* bytes after the 220 belong to no one: never read them as TLS */
	if (c.n > 0) {
		snprintf(p->error, sizeof(p->error), "data after the STARTTLS "
		    "reply (injection)");
		p->dropped = 1;
		goto out;
	}
	if ((ssl = tls_client_new(tc)) == NULL ||
	    policy_tls_prepare(p->v, ssl) == -1) {
		snprintf(p->error, sizeof(p->error), "cannot set up TLS "
		    "with this verdict");
		p->dropped = 1;
		goto out;
	}
	SSL_set_fd(ssl, fd);
	if (probe_handshake(p, &c, ssl) == -1)
		goto out;
	p->tls = 1;
	snprintf(p->tls_proto, sizeof(p->tls_proto), "%s",
	    SSL_get_version(ssl));
	snprintf(p->cipher, sizeof(p->cipher), "%s",
	    SSL_get_cipher_name(ssl));
	tls_peer_names(ssl, p->subject, sizeof(p->subject), p->issuer,
	    sizeof(p->issuer));
	{
		struct tls_proof proof;
		struct tls_result res;

		p->check_ok = policy_tls_check(p->v, ssl, &proof, &res) == 0;
		p->report_failed = res.report_failed;
		snprintf(p->reason, sizeof(p->reason), "%s", res.reason);
		snprintf(p->detail, sizeof(p->detail), "%s", res.detail);
	}
	/* the leg closes on a failed check, and says EHLO after a good one */
	if (p->check_ok && probe_ehlo_tls(p, &c, rep) == -1 &&
	    p->ehlo_tls == -1)
		goto out;
	send_line(&c, "QUIT");
	SSL_shutdown(ssl);
	goto out;
quit:
	send_line(&c, "QUIT");
out:
	ERR_clear_error();
	SSL_free(ssl);
	close(fd);
	free(rep);
	return ret;
}

/* judge() after EHLO (or HELO): 1 when the proxy delivers nothing on
 * this connection for its reply (a refusal the MTA gets, or none: 421),
 * with p's result set. */
static int
hello_failed(struct probe *p)
{
	int code = p->helo != 0 ? p->helo : p->ehlo;
	const char *cmd = p->helo != 0 ? "HELO" : "EHLO";

	if (code / 100 == 2)
		return 0;
	p->deliverable = 0;
	if (code == -1) {
		snprintf(p->outcome, sizeof(p->outcome), "no reply to %s: "
		    "mxguard answers the MTA 421", cmd);
		return 1;
	}
	p->refused = 1;
	if (p->helo != 0)
		snprintf(p->outcome, sizeof(p->outcome), "the server refused "
		    "EHLO (%d) and HELO (%d): mxguard relays the HELO reply to "
		    "the MTA and delivers nothing on this connection", p->ehlo,
		    p->helo);
	else
		snprintf(p->outcome, sizeof(p->outcome), "the server refused "
		    "EHLO (%d): mxguard relays that reply to the MTA and "
		    "delivers nothing on this connection", p->ehlo);
	return 1;
}

/* judge() after the TLS check: 1 when EHLO inside TLS failed, which
 * ends the leg (421 to the MTA), with p's result set. */
static int
tls_ehlo_failed(struct probe *p)
{
	if (!p->tls || !p->check_ok || p->ehlo_tls / 100 == 2)
		return 0;
	p->deliverable = 0;
	if (p->ehlo_tls == -1)
		snprintf(p->outcome, sizeof(p->outcome), "no reply to EHLO "
		    "after STARTTLS: mxguard ends the connection and answers "
		    "the MTA 421");
	else
		snprintf(p->outcome, sizeof(p->outcome), "the server refused "
		    "EHLO after STARTTLS (%d): mxguard ends the connection "
		    "and answers the MTA 421", p->ehlo_tls);
	return 1;
}

/*
 * What the proxy would do with the mail after this probe.  It connects
 * upstream before anything else: a greeting that is not 2xx is relayed
 * to the MTA as it is, and every command after it but QUIT answered 451
 * (a 4xx greeting) or 503 (5xx), tlsproxy/session.c; no greeting (closed,
 * timed out, malformed) is a 421 to the MTA.  Either way no mail goes
 * there, at any level, none included.  So it is after EHLO: the leg
 * says HELO after a 5xx to it, and relays any other refusal of EHLO, or
 * of that HELO, to the MTA, which must greet again (S_WAIT_HELO); no
 * reply is a 421 to the MTA.  At none the mail goes in cleartext
 * once the greeting and EHLO (or HELO) went through.  Without TLS
 * it goes on in cleartext only where the enforced level is may
 * (no STARTTLS offered, STARTTLS refused, a failed handshake: a new
 * cleartext connection); report_only never lowers that level: an MTA-STS
 * testing policy keeps require_tls's or the TLS history's encrypt
 * (policy/verdict.h).  Plaintext after the STARTTLS reply, or TLS that
 * cannot be set up, ends the connection at any level; so does no reply
 * to STARTTLS (only a reply refuses it), a server that closes the
 * connection after refusing it (the leg's cleartext at may goes on
 * there: probe_after_refusal()), and a refusal of the EHLO the leg says
 * inside TLS, or no reply to it (a 421 to the MTA).
 */
static void
judge(struct probe *p)
{
	const struct policy_verdict *v = p->v;

	/* the check's own deadline ended it: nothing the daemon would do */
	if (p->cut[0] != '\0') {
		p->deliverable = 0;
		snprintf(p->outcome, sizeof(p->outcome), "deadline: the "
		    "check's deadline (not the server) cut the probe short "
		    "in the %s step: not judged; raise it with --deadline "
		    "SECONDS", p->cut);
		return;
	}
	if (p->connected && p->greeting / 100 != 2) {
		p->deliverable = 0;
		if (p->greeting > 0) {
			p->refused = 1;
			snprintf(p->outcome, sizeof(p->outcome), "the server "
			    "refused service (%d): mxguard relays its "
			    "greeting to the MTA, and answers %s to all but "
			    "QUIT", p->greeting, p->greeting / 100 == 4 ?
			    "451" : "503");
		} else
			snprintf(p->outcome, sizeof(p->outcome), "no "
			    "greeting from the server: mxguard answers the "
			    "MTA 421");
		return;
	}
	if (p->connected && hello_failed(p))
		return;
	if (tls_ehlo_failed(p))
		return;
	if (p->starttls_code == -1) {
		p->deliverable = 0;
		snprintf(p->outcome, sizeof(p->outcome), "no reply to "
		    "STARTTLS: mxguard ends the connection and answers the MTA "
		    "421");
		return;
	}
	if (p->noop == -1 || p->noop == 421) {
		p->deliverable = 0;
		snprintf(p->outcome, sizeof(p->outcome), "the server refused "
		    "STARTTLS (%d), then %s: mxguard, going on in cleartext "
		    "there, answers the MTA 421", p->starttls_code,
		    p->noop == -1 ? "closed the connection" : "said it closes "
		    "it (421)");
		return;
	}
	/* the server as the MTA meets it is judged above; the verdict is
	 * for a flow mxguard never gets: the MTA's own TLS decides */
	if (p->bypassed) {
		p->deliverable = 1;
		snprintf(p->outcome, sizeof(p->outcome), "bypass_dst: "
		    "mxguard never sees this flow (it goes direct): the MTA "
		    "delivers with its own TLS settings, not this verdict");
		return;
	}
	if (v->level == TLS_LEVEL_DEFER)
		p->deliverable = 0;
	else if (v->level == TLS_LEVEL_NONE)
		p->deliverable = p->connected && p->error[0] == '\0';
	else if (p->tls)
		p->deliverable = p->check_ok;
	else if (!p->connected || p->error[0] == '\0' || p->dropped)
		p->deliverable = 0;
	else
		p->deliverable = v->level <= TLS_LEVEL_MAY;
	if (!p->tls && p->reason[0] == '\0' && v->level > TLS_LEVEL_MAY &&
	    v->level != TLS_LEVEL_DEFER)
		snprintf(p->reason, sizeof(p->reason), "%s",
		    policy_no_starttls_reason(v));
}

/*
 * Delivered, but not with what the verdict asked for: a report-only
 * (MTA-STS testing) check that failed, on TLS or for want of it, or a
 * TLS-capable verdict that ended in cleartext.
 */
static int
probe_warning(const struct probe *p)
{
	const struct policy_verdict *v = p->v;

	if (p->bypassed)
		return 1;
	if (v->level == TLS_LEVEL_NONE || v->level == TLS_LEVEL_DEFER)
		return 0;
	return !p->tls || !p->check_ok || p->report_failed;
}

/*
 * The exit status of two results: a probe that defers decides it (the
 * mail waits, whatever the others say), then one the deadline cut short
 * (not judged: it may have deferred), then a warning.
 */
static int
worse(int a, int b)
{
	static const int rank[] = { [CMD_OK] = 0, [CMD_WARNING] = 1,
	    [CMD_UNKNOWN] = 2, [CMD_DEFER] = 3 };

	return rank[b] > rank[a] ? b : a;
}

/*
 * MX hosts of the answer the walk did not look up (past MX_MAX_HOSTS, or
 * in records past DNS_MAX_RR): their addresses are not known, so none of
 * them was probed; the daemon defers an MTA-STS enforce domain's mail to
 * such an address (local-error).  Without ADDRESS only.
 */
static int
unkept_hosts(const struct run *r)
{
	return r->single ? 0 : r->mx->nunkept;
}

/*
 * A kept MX host's address lookup of one family (AF_INET: A, AF_INET6:
 * AAAA) that failed (SERVFAIL or bogus, timeout, error, local error):
 * the addresses it would have given are not known, so not probed, and
 * the daemon's verdict for a flow to one of them is not what the probes
 * show (a host with no address left was not even named).  Without
 * ADDRESS only.
 */
static int
lookup_failed(const struct run *r, int i, int family)
{
	return !r->single && mx_status_failed(mx_host_status(&r->mx->host[i],
	    family));
}

/* The kept hosts' failed address lookups (each family of each host
 * counts once). */
static int
failed_lookups(const struct run *r)
{
	int i, n = 0;

	for (i = 0; i < r->mx->nhost && !r->single; i++)
		n += lookup_failed(r, i, AF_INET) +
		    lookup_failed(r, i, AF_INET6);
	return n;
}

/*
 * The handshakes, one after the other, with each verdict's settings,
 * until deadline (CLOCK_MONOTONIC seconds): each step of a probe waits
 * as the daemon would (step_begin()), at most what is left; one the
 * deadline leaves no second for is marked skipped, one it cuts short is
 * not judged (p->cut).  Returns the exit status the probes call for, or -1
 * (p->error said on stderr) when a probe cannot be made as it must be.
 */
static int
run_probes(struct run *r, struct tls_ctx *tc, const struct config *cfg,
    time_t deadline)
{
	int i, rc = CMD_OK;

	for (i = 0; i < r->nprobe; i++) {
		struct probe *p = &r->probes[i];
		time_t left = deadline - mono_now();

		p->bypassed = cmd_bypassed_dst(cfg, &p->addr);

		/* none too: the proxy connects and relays the greeting */
		if (p->v->level != TLS_LEVEL_DEFER) {
			if (left <= 0) {
				p->skipped = 1;
				rc = worse(rc, CMD_WARNING);
				continue;
			}
			/* no report at all rather than one about the wrong
			 * peer */
			if (probe_tls(p, tc, cfg, r->helo,
			    (int64_t)deadline * 1000)
			    == -1) {
				fprintf(stderr, "mxguard: check: %s\n",
				    p->error);
				return -1;
			}
		}
		judge(p);
		if (p->cut[0] != '\0')
			rc = worse(rc, CMD_UNKNOWN);
		else if (!p->deliverable)
			rc = worse(rc, CMD_DEFER);
		else if (probe_warning(p))
			rc = worse(rc, CMD_WARNING);
	}
	/* addresses the MX walk did not keep were not probed either, nor
	 * the hosts it did not look up */
	if (!r->single)
		for (i = 0; i < r->mx->nhost; i++)
			if (r->mx->host[i].nmore > 0)
				rc = worse(rc, CMD_WARNING);
	if (unkept_hosts(r) > 0 || failed_lookups(r) > 0)
		rc = worse(rc, CMD_WARNING);
	return rc;
}

/* Addresses not probed: those the deadline left out, and (without
 * ADDRESS) those the MX walk did not keep. */
static int
not_probed(const struct run *r)
{
	int i, n = 0;

	for (i = 0; i < r->nprobe; i++)
		n += r->probes[i].skipped;
	for (i = 0; i < r->mx->nhost && !r->single; i++)
		n += r->mx->host[i].nmore;
	return n;
}

/* ---- output ----------------------------------------------------------- */

/*
 * A string member (for policy.c too): NULL or "" (nothing known) is JSON
 * null; valid UTF-8
 * goes out as it is; otherwise each byte of an invalid sequence becomes
 * U+FFFD and the sibling member "<key>_invalid_utf8": true says so.
 * Strings from the remote server (banner, certificate names, errors) are
 * whatever bytes it sent.
 */
static size_t
utf8_seq(const unsigned char *p, size_t n)
{
	size_t len, i;
	uint32_t cp;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		len = 2, cp = p[0] & 0x1f;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		len = 3, cp = p[0] & 0x0f;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		len = 4, cp = p[0] & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	/* overlong forms, surrogates, beyond U+10FFFF */
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return len;
}

int
cmd_json_set(json_t *o, const char *key, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n, i, k, o_len = 0;
	char *fixed, flag[64];
	int bad = 0;

	if (s == NULL || *s == '\0')
		return json_object_set_new(o, key, json_null());
	n = strlen(s);
	/* at most three bytes of U+FFFD per input byte */
	if ((fixed = malloc(3 * n + 1)) == NULL)
		return -1;
	for (i = 0; i < n; i += k) {
		if ((k = utf8_seq(p + i, n - i)) == 0) {
			memcpy(fixed + o_len, "\xef\xbf\xbd", 3);
			o_len += 3;
			k = 1;
			bad = 1;
		} else {
			memcpy(fixed + o_len, p + i, k);
			o_len += k;
		}
	}
	fixed[o_len] = '\0';
	if (json_object_set_new(o, key, json_stringn(fixed, o_len)) == -1) {
		free(fixed);
		return -1;
	}
	free(fixed);
	if (bad) {
		snprintf(flag, sizeof(flag), "%s_invalid_utf8", key);
		return json_object_set_new(o, flag, json_true());
	}
	return 0;
}

static const char *
dnssec_word(int st)
{
	return st == DNS_SECURE ? "secure" : st == DNS_INSECURE ?
	    "insecure" : st < 0 ? "-" : dns_status_name(st);
}

/* A failed lookup's status: servfail (bogus too), timeout, error, local,
 * or no answer (not answered when the walk reported) */
static const char *
lookup_word(int st)
{
	return st < 0 ? "no answer" : dns_status_name(st);
}

/* deliver, defer, refused (by the server's greeting), unknown (the
 * check's deadline cut the probe short) or not-probed */
static const char *
result_word(const struct probe *p)
{
	return p->skipped ? "not-probed" : p->cut[0] != '\0' ? "unknown" :
	    p->deliverable ? "deliver" : p->refused ? "refused" : "defer";
}

/* The summary of what was not probed, after the probes: never a silent
 * "all checked". */
static void
print_not_probed(const struct run *r)
{
	int i, n = not_probed(r), hosts = unkept_hosts(r);
	int failed = failed_lookups(r);

	if (n == 0 && hosts == 0 && failed == 0)
		return;
	/* "not probed: 11 addresses", "... and 4 MX hosts" */
	printf("\nnot probed:");
	if (n > 0)
		printf(" %d address%s%s", n, n == 1 ? "" : "es",
		    hosts > 0 && failed > 0 ? "," : hosts + failed > 0 ?
		    " and" : "");
	if (hosts > 0)
		printf(" %d MX host%s%s", hosts, hosts == 1 ? "" : "s",
		    failed > 0 ? " and" : "");
	if (failed > 0)
		printf(" %d failed address lookup%s", failed,
		    failed == 1 ? "" : "s");
	printf("\n");
	for (i = 0; i < r->nprobe; i++)
		if (r->probes[i].skipped)
			printf("  MX %d %s [%s]: the check's %d s deadline "
			    "had passed\n", r->probes[i].pref,
			    r->probes[i].host, r->probes[i].addrstr,
			    r->deadline);
	for (i = 0; i < r->mx->nhost && !r->single; i++)
		if (r->mx->host[i].nmore > 0)
			printf("  MX %d %s: %d more address%s in DNS than "
			    "the %d per host the MX walk keeps\n",
			    r->mx->host[i].pref, r->mx->host[i].name,
			    r->mx->host[i].nmore, r->mx->host[i].nmore == 1 ?
			    "" : "es", MX_MAX_ADDRS);
	if (hosts > 0)
		printf("  %d more MX host%s in DNS than the %d the MX walk "
		    "looks up (the least preferred: their addresses were not "
		    "looked up)\n", hosts, hosts == 1 ? "" : "s", MX_MAX_HOSTS);
	for (i = 0; i < r->mx->nhost && !r->single; i++) {
		const struct mx_host *h = &r->mx->host[i];

		if (lookup_failed(r, i, AF_INET))
			printf("  MX %d %s: its A lookup failed (%s): its IPv4 "
			    "addresses are not known\n", h->pref, h->name,
			    lookup_word(h->st4));
		if (lookup_failed(r, i, AF_INET6))
			printf("  MX %d %s: its AAAA lookup failed (%s): its "
			    "IPv6 addresses are not known\n", h->pref,
			    h->name, lookup_word(h->st6));
	}
	for (i = 0; i < r->nprobe; i++)
		if (r->probes[i].skipped) {
			printf("  (raise the deadline with --deadline "
			    "SECONDS)\n");
			break;
		}
}

/* EHLO, or HELO after a 5xx, went through: only then has the probe seen
 * whether STARTTLS is offered (neither text nor JSON says "not offered"
 * of a probe that never got that far). */
static int
hello_reached(const struct probe *p)
{
	return p->ehlo / 100 == 2 || p->helo / 100 == 2;
}

static void
print_text(struct run *r)
{
	int i, j;
	char t[600];

	printf("domain %s: MX %s%s%s\n", r->domain,
	    dns_status_name(r->mx->status), r->mx->implicit ?
	    " (no MX: the domain is its own MX host)" : "", r->mx->null_mx ?
	    " (null MX: the domain accepts no mail)" : "");
	if (r->helo[0] != '\0')
		printf("probing as: EHLO %s (--helo NAME: the MTA's name)\n",
		    r->helo);
	else
		printf("probing as: EHLO [the probe's local address] (the host "
		    "name has no dot; --helo NAME: the MTA's name)\n");
	for (i = 0; i < r->nprobe; i++) {
		struct probe *p = &r->probes[i];
		const struct dane_info *d = p->dane;
		const struct policy_verdict *v = p->v;

		printf("\nMX %d %s [%s]\n", p->pref, p->host, p->addrstr);
		if (d != NULL) {
			printf("  DNSSEC:   MX %s, address %s\n",
			    d->mx_secure ? "secure" : "insecure",
			    d->mx_host[0] ? (d->addr_secure ? "secure" :
			    "insecure") : "not an address of an MX host");
			if (d->tlsa_status >= 0)
				printf("  TLSA:     _25._tcp.%s: %s\n",
				    d->tlsa_base,
				    dnssec_word(d->tlsa_status));
			for (j = 0; j < d->ntlsa; j++) {
				dane_tlsa_format(&d->tlsa[j], t, 80);
				printf("            %s%s\n", t,
				    d->tlsa[j].usable ? "" : "  (unusable)");
			}
			printf("  DANE:     %s: %s\n", dane_state_name(d->state),
			    d->detail);
		}
		printf("  MTA-STS:  %s\n", v->sts_note[0] ? v->sts_note :
		    "none");
		printf("  verdict:  level=%s source=%s%s%s%s%s\n",
		    tls_level_name(v->level), v->source,
		    v->reason[0] ? " reason=" : "", v->reason,
		    v->report_only ? " (report only)" : "",
		    p->monitored ? " (enforcement=monitor: the daemon "
		    "delivers and logs would-defer)" : "");
		printf("            %s\n", v->detail);
		if (p->banner[0])
			printf("  server:   %s\n", p->banner);
		if (r->helo[0] == '\0' && p->helo_name[0] != '\0')
			printf("  EHLO as:  %s\n", p->helo_name);
		if (!hello_reached(p))
			printf("  STARTTLS: not reached\n");
		else
			printf("  STARTTLS: %s%s\n", p->starttls ? "offered" :
			    p->masked ? "masked (XXXXXXXA/XXXXXXXX: "
			    "middlebox)" : "not offered", v->level ==
			    TLS_LEVEL_NONE ? " (not asked for: level none)" :
			    "");
		if (p->tls) {
			printf("  TLS:      %s %s\n", p->tls_proto, p->cipher);
			printf("  cert:     subject %s\n", p->subject);
			printf("            issuer %s\n", p->issuer);
			printf("  check:    %s (%s)%s\n", p->reason, p->detail,
			    p->report_failed ? " (report only: not "
			    "enforced)" : "");
		}
		if (p->error[0])
			printf("  probe:    %s\n", p->error);
		if (p->skipped) {
			printf("  probe:    not probed: the check's %d s "
			    "deadline had passed\n", r->deadline);
			printf("  result:   not probed\n");
			continue;
		}
		if (p->outcome[0])
			printf("  result:   %s: %s\n", result_word(p),
			    p->outcome);
		else
			printf("  result:   %s%s%s\n", result_word(p),
			    p->reason[0] && !p->deliverable ? ": " : "",
			    !p->deliverable ? p->reason : "");
	}
	if (r->nprobe == 0)
		printf("no MX address to check\n");
	print_not_probed(r);
	for (i = 0; i < r->nprobe; i++)
		if (r->probes[i].cut[0] != '\0') {
			printf("\nnot judged: the check's %d s deadline cut "
			    "a probe short (the server did not time out): "
			    "raise it with --deadline SECONDS\n",
			    r->deadline);
			break;
		}
}

/* Version of the JSON layout: raised when a member changes meaning or
 * goes away (new members do not raise it). */
#define CHECK_JSON_SCHEMA	1

/* not_probed_count, and not_probed[]: {host, pref, address, why}, why
 * "deadline" for an address the deadline left out, "mx-walk-limit" with
 * address null and count for a host's addresses the walk did not keep,
 * "mx-hosts-limit" with host, pref and address null and count for the
 * MX hosts it did not look up (each counts once in not_probed_count), or
 * "address-lookup-failed" with address null, lookup ("A", "AAAA") and
 * status for a host's failed address lookup (one each). */
static int
json_not_probed(const struct run *r, json_t *root)
{
	json_t *arr, *o;
	int i;

	if ((arr = json_array()) == NULL ||
	    json_object_set_new(root, "not_probed", arr) == -1 ||
	    json_object_set_new(root, "not_probed_count",
	    json_integer(not_probed(r) + unkept_hosts(r) +
	    failed_lookups(r))) == -1)
		return -1;
	for (i = 0; i < r->nprobe; i++) {
		const struct probe *p = &r->probes[i];

		if (!p->skipped)
			continue;
		if ((o = json_object()) == NULL ||
		    json_array_append_new(arr, o) == -1)
			return -1;
		cmd_json_set(o, "host", p->host);
		json_object_set_new(o, "pref", json_integer(p->pref));
		cmd_json_set(o, "address", p->addrstr);
		cmd_json_set(o, "why", "deadline");
	}
	for (i = 0; i < r->mx->nhost && !r->single; i++) {
		const struct mx_host *h = &r->mx->host[i];

		if (h->nmore == 0)
			continue;
		if ((o = json_object()) == NULL ||
		    json_array_append_new(arr, o) == -1)
			return -1;
		cmd_json_set(o, "host", h->name);
		json_object_set_new(o, "pref", json_integer(h->pref));
		json_object_set_new(o, "address", json_null());
		json_object_set_new(o, "count", json_integer(h->nmore));
		cmd_json_set(o, "why", "mx-walk-limit");
	}
	if (unkept_hosts(r) > 0) {
		if ((o = json_object()) == NULL ||
		    json_array_append_new(arr, o) == -1)
			return -1;
		json_object_set_new(o, "host", json_null());
		json_object_set_new(o, "pref", json_null());
		json_object_set_new(o, "address", json_null());
		json_object_set_new(o, "count", json_integer(unkept_hosts(r)));
		cmd_json_set(o, "why", "mx-hosts-limit");
	}
	for (i = 0; i < r->mx->nhost && !r->single; i++) {
		const struct mx_host *h = &r->mx->host[i];
		int f;

		for (f = 0; f < 2; f++) {
			int family = f == 0 ? AF_INET : AF_INET6;

			if (!lookup_failed(r, i, family))
				continue;
			if ((o = json_object()) == NULL ||
			    json_array_append_new(arr, o) == -1)
				return -1;
			cmd_json_set(o, "host", h->name);
			json_object_set_new(o, "pref", json_integer(h->pref));
			json_object_set_new(o, "address", json_null());
			cmd_json_set(o, "lookup", f == 0 ? "A" : "AAAA");
			cmd_json_set(o, "status",
			    lookup_word(mx_host_status(h, family)));
			cmd_json_set(o, "why", "address-lookup-failed");
		}
	}
	return 0;
}

static int
print_json(struct run *r)
{
	json_t *root, *hosts, *h, *o, *recs, *rec;
	char t[4096];
	int i, j, rc = -1;

	if ((root = json_object()) == NULL || (hosts = json_array()) == NULL) {
		json_decref(root);
		return -1;
	}
	json_object_set_new(root, "schema", json_integer(CHECK_JSON_SCHEMA));
	cmd_json_set(root, "domain", r->domain);
	cmd_config_json(root, &r->cc);
	json_object_set_new(root, "deadline", json_integer(r->deadline));
	cmd_json_set(root, "helo", r->helo);
	cmd_json_set(root, "mx_status", dns_status_name(r->mx->status));
	json_object_set_new(root, "hosts", hosts);
	for (i = 0; i < r->nprobe; i++) {
		struct probe *p = &r->probes[i];
		const struct dane_info *d = p->dane;
		const struct policy_verdict *v = p->v;

		if ((h = json_object()) == NULL ||
		    json_array_append_new(hosts, h) == -1)
			goto fail;
		cmd_json_set(h, "host", p->host);
		json_object_set_new(h, "pref", json_integer(p->pref));
		cmd_json_set(h, "address", p->addrstr);
		if (d != NULL) {
			o = json_object();
			cmd_json_set(o, "mx", d->mx_secure ? "secure" : "insecure");
			cmd_json_set(o, "address", d->addr_secure ? "secure" :
			    "insecure");
			json_object_set_new(h, "dnssec", o);
			o = json_object();
			recs = json_array();
			cmd_json_set(o, "base", d->tlsa_base);
			cmd_json_set(o, "status", d->tlsa_status < 0 ? NULL :
			    dnssec_word(d->tlsa_status));
			for (j = 0; j < d->ntlsa; j++) {
				dane_tlsa_format(&d->tlsa[j], t, sizeof(t));
				rec = json_object();
				cmd_json_set(rec, "rr", t);
				json_object_set_new(rec, "usable",
				    json_boolean(d->tlsa[j].usable));
				json_array_append_new(recs, rec);
			}
			json_object_set_new(o, "records", recs);
			json_object_set_new(h, "tlsa", o);
			o = json_object();
			cmd_json_set(o, "state", dane_state_name(d->state));
			cmd_json_set(o, "detail", d->detail);
			json_object_set_new(h, "dane", o);
		} else {
			json_object_set_new(h, "dnssec", json_null());
			json_object_set_new(h, "tlsa", json_null());
			json_object_set_new(h, "dane", json_null());
		}
		cmd_json_set(h, "mta_sts", v->sts_note);
		o = json_object();
		cmd_json_set(o, "level", tls_level_name(v->level));
		cmd_json_set(o, "source", v->source);
		cmd_json_set(o, "reason", v->reason);
		json_object_set_new(o, "report_only",
		    json_boolean(v->report_only));
		cmd_json_set(o, "enforcement", p->monitored ? "monitor" :
		    "enforce");
		cmd_json_set(o, "detail", v->detail);
		json_object_set_new(h, "verdict", o);
		o = json_object();
		json_object_set_new(o, "connected", json_boolean(p->connected));
		json_object_set_new(o, "greeting_code", p->greeting > 0 ?
		    json_integer(p->greeting) : json_null());
		cmd_json_set(o, "banner", p->banner);
		cmd_json_set(o, "helo", p->helo_name);
		json_object_set_new(o, "ehlo_code", p->ehlo > 0 ?
		    json_integer(p->ehlo) : json_null());
		json_object_set_new(o, "helo_code", p->helo > 0 ?
		    json_integer(p->helo) : json_null());
		json_object_set_new(o, "ehlo_tls_code", p->ehlo_tls > 0 ?
		    json_integer(p->ehlo_tls) : json_null());
		json_object_set_new(o, "starttls", hello_reached(p) ?
		    json_boolean(p->starttls) : json_null());
		json_object_set_new(o, "starttls_masked", hello_reached(p) ?
		    json_boolean(p->masked) : json_null());
		json_object_set_new(o, "starttls_code", p->starttls_code > 0 ?
		    json_integer(p->starttls_code) : json_null());
		json_object_set_new(o, "noop_code", p->noop > 0 ?
		    json_integer(p->noop) : json_null());
		json_object_set_new(o, "tls", json_boolean(p->tls));
		cmd_json_set(o, "protocol", p->tls_proto);
		cmd_json_set(o, "cipher", p->cipher);
		cmd_json_set(o, "subject", p->subject);
		cmd_json_set(o, "issuer", p->issuer);
		cmd_json_set(o, "check", p->tls ? (p->check_ok ? "success" :
		    "failure") : NULL);
		json_object_set_new(o, "report_failed",
		    json_boolean(p->report_failed));
		cmd_json_set(o, "reason", p->reason);
		cmd_json_set(o, "detail", p->detail);
		cmd_json_set(o, "error", p->error);
		cmd_json_set(o, "deadline_cut", p->cut);
		json_object_set_new(h, "probe", o);
		cmd_json_set(h, "result", result_word(p));
		cmd_json_set(h, "result_detail", p->outcome);
		json_object_set_new(h, "bypassed", json_boolean(p->bypassed));
	}
	if (json_not_probed(r, root) == -1)
		goto fail;
	/* UTF-8 as it is (no JSON_ENSURE_ASCII) */
	if (json_dumpf(root, stdout, JSON_COMPACT) == -1)
		goto fail;
	putchar('\n');
	rc = 0;
fail:
	json_decref(root);
	return rc;
}

/* ---- the command ------------------------------------------------------ */

static int
usage(void)
{
	cmd_usage("check", stderr);
	return CMD_UNKNOWN;
}

/* What the command line asks for. */
struct check_args {
	const char	*domain, *address;
	int		 json;
	int		 deadline;	/* seconds */
	const char	*helo;		/* --helo, or NULL */
};

/* The arguments after "check": 0, or -1 (a usage error, said on
 * stderr when it is more than a wrong word). */
static int
check_args(int argc, char **argv, struct check_args *a)
{
	char *end;
	long n;
	int i;

	memset(a, 0, sizeof(*a));
	a->deadline = CHECK_DEADLINE;
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			a->json = 1;
		else if (strcmp(argv[i], "--deadline") == 0) {
			if (++i == argc)
				return -1;
			errno = 0;
			n = strtol(argv[i], &end, 10);
			if (errno != 0 || end == argv[i] || *end != '\0' ||
			    n < 1 || n > CHECK_DEADLINE_MAX) {
				fprintf(stderr, "mxguard: check: bad --deadline "
				    "%s: seconds, 1 to %d\n", argv[i],
				    CHECK_DEADLINE_MAX);
				return -1;
			}
			a->deadline = (int)n;
		} else if (strcmp(argv[i], "--helo") == 0) {
			if (++i == argc)
				return -1;
			if (!sts_valid_hostname(argv[i])) {
				fprintf(stderr, "mxguard: check: bad --helo "
				    "%s: not a host name\n", argv[i]);
				return -1;
			}
			a->helo = argv[i];
		} else if (argv[i][0] == '-')
			return -1;
		else if (a->domain == NULL)
			a->domain = argv[i];
		else if (a->address == NULL)
			a->address = argv[i];
		else
			return -1;
	}
	return a->domain == NULL ? -1 : 0;
}

int
cmd_check(int argc, char **argv, struct config *cfg,
    const struct cmd_opts *opts)
{
	struct run r;
	struct tls_ctx *tc = NULL;
	struct check_args a;
	const char *domain, *address;
	char err[512];
	int i, json, rc = CMD_UNKNOWN;

	if (check_args(argc, argv, &a) == -1)
		return usage();
	/* a server that closed or reset the probe's connection is a result,
	 * not a signal that ends the check (as for the daemon) */
	signal(SIGPIPE, SIG_IGN);
	domain = a.domain;
	address = a.address;
	json = a.json;
	log_init("mxguard", 0, opts->debug ? LOG_LVL_DEBUG : opts->verbose ?
	    LOG_LVL_INFO : LOG_LVL_ERR);
	memset(&r, 0, sizeof(r));
	r.deadline = a.deadline;
	/* the name the daemon would relay is the MTA's, here its host's */
	if (a.helo != NULL)
		snprintf(r.helo, sizeof(r.helo), "%s", a.helo);
	else
		default_helo(r.helo, sizeof(r.helo));
	if ((r.probes = calloc(MAXP, sizeof(*r.probes))) == NULL) {
		fprintf(stderr, "mxguard: check: out of memory\n");
		return CMD_UNKNOWN;
	}
	/* first: the answer is for the file read, which the daemon may
	 * not run (before the drop: the socket is root's and `user`'s) */
	cmd_config_vs_daemon(cfg, &r.cc);
	if (!json && *r.cc.warning)
		fprintf(stderr, "mxguard: check: warning: %s\n", r.cc.warning);
	/* the engine's spelling (A-labels), as `mxguard policy` and the
	 * daemon take a recipient domain: the MX walk of the name as typed
	 * (UTF-8) asked DNS for another name than the verdict's */
	if (sts_domain_norm(domain, r.domain, sizeof(r.domain), err,
	    sizeof(err)) == -1) {
		fprintf(stderr, "mxguard: check: bad domain %s: %s\n", domain,
		    err);
		goto done;
	}
	if ((r.loop = ev_loop_new()) == NULL)
		goto done;
	/* tls_ctx_new() and the engine (its Redis client's certificate and
	 * key) may read files only root reads: before the drop, as the
	 * daemon does; the engine's stores are opened as `user` (cmd/priv.h),
	 * which keeps what a worker keeps for the probe's SO_MARK */
	if ((tc = tls_ctx_new(cfg, err, sizeof(err))) == NULL ||
	    (r.pol = policy_new_nostores(r.loop, cfg, err,
	    sizeof(err))) == NULL ||
	    priv_drop_cmd(cfg, 1, err, sizeof(err)) == -1) {
		fprintf(stderr, "mxguard: check: %s\n", err);
		goto done;
	}
	policy_open_stores(r.pol, cfg);
	r.dns = policy_dns(r.pol);

	/* MX hosts and their addresses (the daemon's walk), or the one
	 * address given */
	r.outstanding = 1;
	if (mx_walk(r.dns, r.domain, NULL, MX_WALK_A | MX_WALK_AAAA, on_walk,
	    &r) == NULL)
		goto done;
	wait_all(&r);
	if (address != NULL) {
		struct probe *p = &r.probes[0];
		struct sockaddr_in *s4 = (void *)&p->addr;
		struct sockaddr_in6 *s6 = (void *)&p->addr;

		if (inet_pton(AF_INET, address, &s4->sin_addr) == 1) {
			s4->sin_family = AF_INET;
			s4->sin_port = htons(25);
		} else if (inet_pton(AF_INET6, address, &s6->sin6_addr) == 1) {
			s6->sin6_family = AF_INET6;
			s6->sin6_port = htons(25);
		} else {
			fprintf(stderr, "mxguard: check: bad address %s\n",
			    address);
			goto done;
		}
		snprintf(p->addrstr, sizeof(p->addrstr), "%s", address);
		snprintf(p->host, sizeof(p->host), "-");
		r.nprobe = 1;
		r.single = 1;
	} else {
		/* A first, then AAAA: the probes keep that order */
		add_probes(&r, AF_INET);
		add_probes(&r, AF_INET6);
	}
	/* DANE view and the verdict for each address */
	for (i = 0; i < r.nprobe; i++) {
		struct probe *p = &r.probes[i];
		struct vq *q;

		if (dane_view(&r, p) == -1 ||
		    (q = calloc(1, sizeof(*q))) == NULL)
			goto done;
		q->r = &r;
		q->p = p;
		r.outstanding++;
		if (policy_lookup(r.pol, r.domain, (struct sockaddr *)&p->addr,
		    p->addr.ss_family == AF_INET6 ?
		    sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in),
		    NULL, on_verdict, q) == NULL) {
			free(q);
			r.outstanding--;
			fprintf(stderr, "mxguard: check: policy lookup failed\n");
			goto done;
		}
		wait_all(&r);
	}
	/* the handshakes, with each verdict's settings */
	if ((rc = run_probes(&r, tc, cfg, mono_now() + r.deadline)) ==
	    -1) {
		rc = CMD_UNKNOWN;
		goto done;
	}
	/* nothing to probe: unknown when the MX lookup itself failed, or
	 * the address lookups that could have given something to probe */
	if (r.nprobe == 0)
		rc = (r.mx->status >= 0 && mx_status_failed(r.mx->status)) ||
		    failed_lookups(&r) > 0 ? CMD_UNKNOWN : CMD_DEFER;
	if (json) {
		if (print_json(&r) == -1) {
			fprintf(stderr, "mxguard: check: cannot write JSON\n");
			rc = CMD_UNKNOWN;
		}
	} else
		print_text(&r);
done:
	for (i = 0; i < r.nprobe; i++) {
		dane_info_free(r.probes[i].dane);
		policy_verdict_free(r.probes[i].v);
	}
	free(r.probes);
	free(r.mx);
	tls_ctx_free(tc);
	policy_free(r.pol);
	ev_loop_free(r.loop);
	return rc;
}
