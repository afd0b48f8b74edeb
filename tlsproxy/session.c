/*
 * session.c - the SMTP session state machine (DESIGN.md section 3).
 *
 * One struct session per diverted connection, with two legs: `cl`, the
 * MTA that thinks it talks to the remote MX, and `up`, our own connection
 * to that MX.  The state names what the session waits for.  Two functions
 * carry it, after OpenSMTPD's mta_session.c:
 *
 *   session_enter(s, state)   moves to a state and sends what that state
 *                             sends (a command upstream, usually);
 *   session_on_reply(s, r)    handles the upstream's reply in the current
 *                             state and picks the next one.
 *
 * Client commands are read only in the states that wait for the client
 * (S_WAIT_HELO, S_IDLE); in every other state they stay buffered in the
 * io layer, which is all that pipelining needs.
 *
 * The upstream leg is upgraded lazily, at the first RCPT, when the
 * recipient domain that keys the policy is known: MAIL FROM is answered
 * locally and replayed upstream after STARTTLS.  Failures of policy are
 * never 5xx: 421 at the first RCPT of a session (the MTA tries another MX
 * or queues), 450 later in the session.
 *
 * Who frees what: the session owns both io objects, its verdicts and its
 * strings; session_free() runs from a zero-delay timer so that no
 * callback on the stack still points at the session.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/io.h"
#include "core/log.h"
#include "core/stats.h"
#include "tlsproxy/session.h"
#include "tlsproxy/smtp.h"

enum sstate {
	S_CONNECT,	/* connecting upstream */
	S_GREETING,	/* waiting for the upstream's 220 */
	S_WAIT_HELO,	/* waiting for the client's EHLO/HELO */
	S_EHLO,		/* EHLO sent upstream */
	S_HELO,		/* EHLO refused; HELO sent upstream */
	S_IDLE,		/* waiting for the client's next command */
	S_POLICY,	/* policy lookup for a RCPT's domain */
	S_STARTTLS,	/* STARTTLS sent upstream */
	S_TLS,		/* upstream handshake */
	S_EHLO_TLS,	/* EHLO sent again inside TLS */
	S_MAIL,		/* MAIL FROM replayed upstream */
	S_RCPT,		/* RCPT TO sent upstream */
	S_DATA,		/* DATA sent upstream, waiting for 354 */
	S_BODY,		/* relaying the message */
	S_DATA_END,	/* "." sent, waiting for the final reply */
	S_RSET,		/* RSET sent upstream */
	S_QUIT,		/* QUIT sent upstream */
	S_CLIENT_TLS,	/* handshake with the client (local STARTTLS) */
	S_CLOSING,	/* flushing the last reply to the client */
	S_DEAD,		/* waiting to be freed */
};

static const char *state_names[] = {
	"CONNECT", "GREETING", "WAIT_HELO", "EHLO", "HELO", "IDLE", "POLICY",
	"STARTTLS", "TLS", "EHLO_TLS", "MAIL", "RCPT", "DATA", "BODY",
	"DATA_END", "RSET", "QUIT", "CLIENT_TLS", "CLOSING", "DEAD",
};

/* Output towards the upstream above this pauses reading from the client
 * during DATA; it resumes at the low-water mark. */
#define BODY_HIWAT	(256 * 1024)
#define BODY_LOWAT	(64 * 1024)
#define MAX_VERDICTS	8

struct verdict_slot {
	struct policy_verdict	*v;
};

struct session {
	struct session_env	*env;
	struct session		*next, **prevp;	/* env->sessions */
	char			 id[20];
	enum sstate		 state;
	struct io		*cl;
	struct io		*up;
	struct sockaddr_storage	 client_addr;
	struct sockaddr_storage	 dst_addr;
	char			 client_str[64];
	char			 dst_str[64];
	uint64_t		 started;
	struct ev_timer		*reaper;

	struct smtp_reply	*rep;		/* reply being read */
	int			 processing;	/* in client_process() */

	/* client side */
	char			 helo[SMTP_DOMAIN_MAX + 1];
	int			 client_ehlo;	/* used EHLO, not HELO */
	int			 client_tls;

	/* upstream side */
	struct smtp_caps	 caps;
	char			*ehlo_reply;	/* filtered, for the client */
	size_t			 ehlo_reply_len;
	char			 banner[128];	/* upstream greeting text */
	int			 up_refused;	/* greeting was not 2xx */
	int			 up_decided;	/* TLS question settled */
	int			 up_tls;
	int			 reconnect;	/* RECONNECT_*: a new upstream
						 * connection the client does
						 * not see */
	char			 greeting[512];	/* the upstream's 220, as sent */
	unsigned		 reuse_uses;	/* sessions the leg served */
	struct policy_verdict	*leg_verdict;	/* a reused leg's old verdict,
						 * until a fresh one fits */
	unsigned long long	 up_base;	/* io_bytes_out() at adoption */
	struct policy_verdict	*up_verdict;	/* the one TLS was set for */
	char			 tls_proto[16];
	char			 tls_verify[48];

	/* per-domain verdicts of this session */
	struct policy_verdict	*verdicts[MAX_VERDICTS];
	int			 nverdicts;
	struct policy_req	*preq;
	struct policy_verdict	*cur_verdict;	/* of the pending RCPT */

	/* transaction */
	char			*tx_mail;	/* "MAIL FROM:<...> ..." */
	char			 tx_from[SMTP_PATH_MAX + 1];
	int			 tx_up_mail;	/* MAIL accepted upstream */
	int			 rcpt_pipelined; /* RCPT went with MAIL */
	int			 up_discard;	/* upstream replies to drop */
	char			*tx_mail_fail;	/* upstream's MAIL reply */
	int			 tx_rcpts_ok;
	int			 tx_rcpts;
	char			*rcpt_line;	/* RCPT being handled */
	char			 rcpt_domain[SMTP_DOMAIN_MAX + 1];
	struct smtp_data	 body;
	int			 quit_client;	/* client asked QUIT */
	int			 internal_rset;	/* RSET not asked by client */

	unsigned		 msgs;
	unsigned		 policy_fails;
	unsigned long long	 up_out;	/* bytes sent upstream */
	unsigned long long	 cl_in;		/* bytes from a closed client */
};

/* Why the session opens a new upstream connection of its own. */
enum {
	RECONNECT_NONE,
	RECONNECT_PLAIN,	/* opportunistic TLS failed: cleartext retry */
	RECONNECT_FRESH,	/* a reused leg does not fit the recipient */
};

static void session_enter(struct session *, enum sstate);
static void reconnect_start(struct session *, int);
static void session_on_reply(struct session *, struct smtp_reply *);
static void session_close(struct session *, const char *why);
static void client_process(struct session *);
static void rcpt_continue(struct session *);
static void body_pump(struct session *);
static void up_io_cb(struct io *, enum io_event, void *);
static int upstream_socket(struct session *);
static void cl_io_cb(struct io *, enum io_event, void *);

static struct stat_ctr *st_sessions, *st_active, *st_msgs_ok, *st_msgs_fail,
    *st_tls, *st_plain, *st_policy_fail, *st_inject, *st_reused;

static void
stats_init(void)
{
	if (st_sessions)
		return;
	st_sessions = stats_get("mxguard_sessions_total",
	    "SMTP sessions accepted");
	st_active = stats_get("mxguard_sessions_active",
	    "SMTP sessions open now");
	st_msgs_ok = stats_get("mxguard_messages_total{result=\"accepted\"}",
	    "Messages by the upstream's final reply");
	st_msgs_fail = stats_get("mxguard_messages_total{result=\"not-accepted\"}",
	    NULL);
	st_tls = stats_get("mxguard_upstream_total{tls=\"yes\"}",
	    "Upstream legs by whether TLS was used");
	st_plain = stats_get("mxguard_upstream_total{tls=\"no\"}", NULL);
	st_reused = stats_get("mxguard_upstream_total{tls=\"reused\"}", NULL);
	st_policy_fail = stats_get("mxguard_policy_deferrals_total",
	    "Recipients deferred because the TLS policy was not met");
	st_inject = stats_get("mxguard_starttls_injections_total",
	    "Sessions dropped for plaintext injected around STARTTLS");
}

void
sockaddr_fmt(const struct sockaddr *sa, char *buf, size_t sz)
{
	char a[INET6_ADDRSTRLEN] = "?";

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;

		inet_ntop(AF_INET, &in->sin_addr, a, sizeof(a));
		snprintf(buf, sz, "%s:%u", a, ntohs(in->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;

		inet_ntop(AF_INET6, &in6->sin6_addr, a, sizeof(a));
		snprintf(buf, sz, "[%s]:%u", a, ntohs(in6->sin6_port));
	} else
		snprintf(buf, sz, "?");
}

static socklen_t
sa_len(const struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) :
	    sizeof(struct sockaddr_in);
}

/* ---- output helpers ---------------------------------------------------- */

static void
cl_printf(struct session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
cl_printf(struct session *s, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 2, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(buf) - 3)
		n = (int)sizeof(buf) - 3;
	log_debug("sid=%s event=reply-to-client text=\"%.*s\"", s->id, n, buf);
	memcpy(buf + n, "\r\n", 2);
	io_write(s->cl, buf, (size_t)n + 2);
}

static void
up_printf(struct session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
up_printf(struct session *s, const char *fmt, ...)
{
	char buf[SMTP_LINE_MAX + 3];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 2, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n > sizeof(buf) - 3)
		n = (int)sizeof(buf) - 3;
	log_debug("sid=%s event=command-upstream text=\"%.*s\"", s->id, n,
	    buf);
	memcpy(buf + n, "\r\n", 2);
	io_write(s->up, buf, (size_t)n + 2);
}

/* MAIL and the RCPT that caused it, in one write (RFC 2920) when the
 * upstream offers PIPELINING: one round trip and one TLS record less. */
static void
up_mail_rcpt(struct session *s)
{
	char buf[2 * (SMTP_LINE_MAX + 2)];
	int n;

	log_debug("sid=%s event=command-upstream text=\"%s\"", s->id,
	    s->tx_mail);
	log_debug("sid=%s event=command-upstream text=\"%s\" pipelined=yes",
	    s->id, s->rcpt_line);
	n = snprintf(buf, sizeof(buf), "%s\r\n%s\r\n", s->tx_mail,
	    s->rcpt_line);
	if (n < 0 || (size_t)n >= sizeof(buf)) {
		up_printf(s, "%s", s->tx_mail);	/* cannot happen: bounded */
		return;
	}
	s->rcpt_pipelined = 1;
	io_write(s->up, buf, (size_t)n);
}

static void
cl_relay(struct session *s, const struct smtp_reply *r)
{
	io_write(s->cl, r->buf, r->len);
}

/* ---- lifetime ---------------------------------------------------------- */

/* Bytes this session sent on its current upstream leg (a reused leg's
 * counter started in an earlier session). */
static unsigned long long
up_bytes(const struct session *s)
{
	return s->up ? io_bytes_out(s->up) - s->up_base : 0ULL;
}

static void
tx_clear(struct session *s)
{
	free(s->tx_mail);
	free(s->tx_mail_fail);
	free(s->rcpt_line);
	s->tx_mail = s->tx_mail_fail = s->rcpt_line = NULL;
	s->tx_from[0] = '\0';
	s->tx_up_mail = s->tx_rcpts_ok = s->tx_rcpts = 0;
}

static void
session_free(void *arg)
{
	struct session *s = arg;
	int i;

	log_info("sid=%s event=close client=%s dst=%s messages=%u "
	    "policy_deferrals=%u duration_ms=%llu client_bytes_in=%llu "
	    "upstream_bytes_out=%llu", s->id, s->client_str, s->dst_str,
	    s->msgs, s->policy_fails,
	    (unsigned long long)(ev_now(s->env->loop) - s->started),
	    s->cl_in + (s->cl ? io_bytes_in(s->cl) : 0ULL),
	    s->up_out + up_bytes(s));
	policy_cancel(s->preq);
	io_free(s->cl);
	io_free(s->up);
	ev_timer_free(s->reaper);
	for (i = 0; i < s->nverdicts; i++)
		policy_verdict_free(s->verdicts[i]);
	policy_verdict_free(s->leg_verdict);
	free(s->rep);
	free(s->ehlo_reply);
	tx_clear(s);
	s->env->nsessions--;
	stats_add(st_active, -1);
	if ((*s->prevp = s->next) != NULL)
		s->next->prevp = s->prevp;
	free(s);
}

void
session_abort_all(struct session_env *env)
{
	while (env->sessions != NULL)
		session_free(env->sessions);
}

/* Ends the session; the last reply to the client is flushed first (for
 * at most a few seconds). */
static void
session_close(struct session *s, const char *why)
{
	if (s->state == S_DEAD || s->state == S_CLOSING)
		return;
	log_debug("sid=%s event=closing why=\"%s\"", s->id, why);
	if (s->preq) {
		policy_cancel(s->preq);
		s->preq = NULL;
	}
	if (s->up) {
		s->up_out += up_bytes(s);
		io_free(s->up);
		s->up = NULL;
	}
	if (s->cl && io_queued(s->cl) > 0) {
		s->state = S_CLOSING;
		io_pause(s->cl, 1);
		io_set_lowat(s->cl, 0);
		io_set_timeout(s->cl, 5000);
		return;
	}
	s->state = S_DEAD;
	ev_timer_arm(s->reaper, 0);
}

/* A temporary failure for the client, then the end. */
static void
session_tempfail(struct session *s, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
session_tempfail(struct session *s, const char *code, const char *fmt, ...)
{
	char text[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	/* (a client that quit has its 221 already) */
	if (s->cl && s->state != S_CLIENT_TLS && !s->quit_client)
		cl_printf(s, "%s mxguard: %s", code, text);
	session_close(s, text);
}

/* ---- state machine ----------------------------------------------------- */

/* What a resumed TLS session may stand for: this destination, under
 * what the policy checked (MX host, names, TLSA digest). */
static void
resume_key(struct session *s, char *key, size_t sz)
{
	char pk[600];

	if (policy_tls_session_key(s->up_verdict, pk, sizeof(pk)) == -1)
		snprintf(pk, sizeof(pk), "%s|%s", s->up_verdict->mx_host,
		    tls_level_name(s->up_verdict->level));
	snprintf(key, sz, "%s|%s", s->dst_str, pk);
}

static int
waits_for_client(enum sstate st)
{
	return st == S_WAIT_HELO || st == S_IDLE;
}

static void
session_enter(struct session *s, enum sstate st)
{
	const struct config *cfg = s->env->cfg;
	char key[700];
	SSL *ssl;

	if (s->state == S_DEAD || s->state == S_CLOSING)
		return;
	log_debug("sid=%s state %s -> %s", s->id, state_names[s->state],
	    state_names[st]);
	s->state = st;

	/* timeouts: the client only while we wait for it */
	if (s->cl)
		io_set_timeout(s->cl, waits_for_client(st) ?
		    cfg->client_timeout : st == S_BODY ?
		    cfg->data_block_timeout : 0);

	switch (st) {
	case S_CONNECT:
		io_set_timeout(s->up, cfg->connect_timeout);
		io_wait_connected(s->up);
		break;
	case S_GREETING:
		io_set_timeout(s->up, cfg->greeting_timeout);
		break;
	case S_WAIT_HELO:
	case S_IDLE:
		io_set_timeout(s->up, 0);
		io_pause(s->cl, 0);
		client_process(s);
		break;
	case S_EHLO:
	case S_EHLO_TLS:
		io_set_timeout(s->up, cfg->command_timeout);
		up_printf(s, "EHLO %s", s->helo);
		break;
	case S_HELO:
		io_set_timeout(s->up, cfg->command_timeout);
		up_printf(s, "HELO %s", s->helo);
		break;
	case S_POLICY:
		/* the upstream is idle meanwhile: its timer bounds the
		 * lookup */
		io_set_timeout(s->up, cfg->policy_timeout);
		break;
	case S_STARTTLS:
		io_set_timeout(s->up, cfg->command_timeout);
		up_printf(s, "STARTTLS");
		break;
	case S_TLS:
		if ((ssl = tls_client_new(s->env->tls)) == NULL ||
		    policy_tls_prepare(s->up_verdict, ssl) == -1) {
			SSL_free(ssl);
			session_tempfail(s, "421 4.7.0", "cannot set up TLS "
			    "towards %s", s->dst_str);
			return;
		}
		resume_key(s, key, sizeof(key));
		tls_client_resume(s->env->tls, ssl, key);
		if (io_start_tls(s->up, ssl, 0) == -1) {
			SSL_free(ssl);
			session_tempfail(s, "421 4.7.0", "cannot set up TLS "
			    "towards %s", s->dst_str);
			return;
		}
		io_set_timeout(s->up, cfg->tls_timeout);
		break;
	case S_MAIL:
		io_set_timeout(s->up, cfg->command_timeout);
		if ((s->caps.flags & SMTP_CAP_PIPELINING) && s->rcpt_line)
			up_mail_rcpt(s);
		else
			up_printf(s, "%s", s->tx_mail);
		break;
	case S_RCPT:
		io_set_timeout(s->up, cfg->command_timeout);
		if (s->rcpt_pipelined)
			s->rcpt_pipelined = 0;	/* sent with MAIL */
		else
			up_printf(s, "%s", s->rcpt_line);
		break;
	case S_DATA:
		io_set_timeout(s->up, cfg->command_timeout);
		up_printf(s, "DATA");
		break;
	case S_BODY:
		io_set_timeout(s->up, cfg->data_block_timeout);
		io_set_lowat(s->up, BODY_LOWAT);
		/* idle sessions give OpenSSL's record buffers back; a
		 * message in flight keeps them instead of reallocating
		 * them around every record */
		if (io_ssl(s->up) != NULL)
			SSL_clear_mode(io_ssl(s->up), SSL_MODE_RELEASE_BUFFERS);
		smtp_data_init(&s->body);
		body_pump(s);
		break;
	case S_DATA_END:
		io_set_timeout(s->up, cfg->data_done_timeout);
		break;
	case S_RSET:
		io_set_timeout(s->up, cfg->command_timeout);
		up_printf(s, "RSET");
		break;
	case S_QUIT:
		io_set_timeout(s->up, cfg->command_timeout);
		up_printf(s, "QUIT");
		break;
	case S_CLIENT_TLS:
		io_set_timeout(s->cl, cfg->tls_timeout);
		break;
	case S_CLOSING:
	case S_DEAD:
		break;
	}
}

/* ---- policy ------------------------------------------------------------ */

static struct policy_verdict *
verdict_find(struct session *s, const char *domain)
{
	int i;

	for (i = 0; i < s->nverdicts; i++)
		if (strcmp(s->verdicts[i]->domain, domain) == 0)
			return s->verdicts[i];
	return NULL;
}

/* A policy failure: 421 at the first RCPT of a session, which ends it,
 * 450 later. */
static void
policy_failed(struct session *s, const struct policy_verdict *v,
    const char *reason, const char *detail)
{
	const char *enh = strcmp(reason, "starttls-not-supported") == 0 ||
	    strcmp(reason, "dane-required") == 0 ? "4.7.10" :
	    strncmp(reason, "certificate", 11) == 0 ||
	    strcmp(reason, "validation-failure") == 0 ||
	    strcmp(reason, "tlsa-invalid") == 0 ? "4.7.5" : "4.7.0";
	char d[300];

	s->policy_fails++;
	stats_add(st_policy_fail, 1);
	stats_add(stats_get(*reason ? (snprintf(d, sizeof(d),
	    "mxguard_policy_failures_total{reason=\"%s\"}", reason), d) :
	    "mxguard_policy_failures_total{reason=\"unknown\"}",
	    "Policy failures by RFC 8460 result type"), 1);
	log_info("sid=%s event=policy-failure domain=%s dst=%s mx=%s "
	    "source=%s level=%s reason=%s detail=%s first_rcpt=%s", s->id,
	    v->domain, s->dst_str, v->mx_host[0] ? v->mx_host : "-",
	    v->source, tls_level_name(v->level), reason,
	    log_q(d, sizeof(d), detail), s->up_decided ? "no" : "yes");
	if (!s->up_decided) {
		snprintf(d, sizeof(d), "421 %s", enh);
		session_tempfail(s, d, "TLS policy of %s not met (%s: %s); "
		    "try again later", v->domain, reason, detail);
		return;
	}
	cl_printf(s, "450 %s mxguard: TLS policy of %s not met by this "
	    "connection (%s: %s)", enh, v->domain, reason, detail);
	free(s->rcpt_line);
	s->rcpt_line = NULL;
	session_enter(s, S_IDLE);
}

static void
log_tls(struct session *s)
{
	SSL *ssl = io_ssl(s->up);
	char subj[256], iss[256], q1[300], q2[300];

	tls_peer_names(ssl, subj, sizeof(subj), iss, sizeof(iss));
	log_info("sid=%s event=tls dst=%s mx=%s protocol=%s cipher=%s "
	    "resumed=%s subject=%s issuer=%s verify=%s", s->id, s->dst_str,
	    s->up_verdict->mx_host[0] ? s->up_verdict->mx_host : "-",
	    SSL_get_version(ssl), SSL_get_cipher_name(ssl),
	    SSL_session_reused(ssl) ? "yes" : "no",
	    log_q(q1, sizeof(q1), subj), log_q(q2, sizeof(q2), iss),
	    s->tls_verify);
}

/* The first RCPT decides what the upstream leg becomes. */
static void
upstream_decide(struct session *s, struct policy_verdict *v)
{
	s->up_verdict = v;
	if (v->level == TLS_LEVEL_DEFER) {
		policy_failed(s, v, v->reason[0] ? v->reason :
		    "validation-failure", v->detail);
		return;
	}
	if (v->level == TLS_LEVEL_NONE) {
		s->up_decided = 1;
		stats_add(st_plain, 1);
		log_info("sid=%s event=cleartext dst=%s domain=%s reason=%s",
		    s->id, s->dst_str, v->domain, "policy-none");
		session_enter(s, S_MAIL);
		return;
	}
	if (s->caps.flags & SMTP_CAP_STARTTLS) {
		session_enter(s, S_STARTTLS);
		return;
	}
	policy_record_tls(s->env->policy, (struct sockaddr *)&s->dst_addr,
	    v->mx_host, 0, 0);
	if (v->level == TLS_LEVEL_MAY) {
		s->up_decided = 1;
		stats_add(st_plain, 1);
		log_info("sid=%s event=cleartext dst=%s domain=%s reason=%s%s",
		    s->id, s->dst_str, v->domain, "starttls-not-offered",
		    s->caps.flags & SMTP_CAP_STARTTLS_MASKED ?
		    " middlebox=starttls-masked" : "");
		if (v->report_only)
			log_info("sid=%s event=policy-report domain=%s "
			    "mode=testing reason=%s", s->id, v->domain,
			    policy_no_starttls_reason(v));
		session_enter(s, S_MAIL);
		return;
	}
	policy_failed(s, v, policy_no_starttls_reason(v),
	    s->caps.flags & SMTP_CAP_STARTTLS_MASKED ?
	    "STARTTLS masked in the EHLO reply (middlebox signature "
	    "XXXXXXXA): stripped on the path" :
	    "the server did not offer STARTTLS");
}

/* Later RCPTs: does the established leg satisfy this domain's verdict? */
static int
upstream_satisfies(struct session *s, struct policy_verdict *v,
    char *reason, size_t rsz, char *detail, size_t dsz)
{
	if (v->level == TLS_LEVEL_DEFER) {
		snprintf(reason, rsz, "%s", v->reason[0] ? v->reason :
		    "validation-failure");
		snprintf(detail, dsz, "%s", v->detail);
		return 0;
	}
	if (v->level <= TLS_LEVEL_MAY)
		return 1;
	if (!s->up_tls) {
		snprintf(reason, rsz, "%s", policy_no_starttls_reason(v));
		snprintf(detail, dsz, "this connection is not encrypted");
		return 0;
	}
	return policy_tls_check(v, io_ssl(s->up), reason, rsz, detail,
	    dsz) == 0;
}

/* Does the established leg carry this verdict?  A reused leg that was
 * verified for the same requirements (the resumption key: MX host, level,
 * names, TLSA digest) does without checking again. */
static int
leg_fits(struct session *s, struct policy_verdict *v, char *reason,
    size_t rsz, char *detail, size_t dsz)
{
	char k1[600], k2[600];

	if (v == s->up_verdict)
		return 1;
	if (s->reuse_uses > 0 && v->level != TLS_LEVEL_DEFER &&
	    policy_tls_session_key(v, k1, sizeof(k1)) == 0 &&
	    policy_tls_session_key(s->up_verdict, k2, sizeof(k2)) == 0 &&
	    strcmp(k1, k2) == 0)
		return 1;
	return upstream_satisfies(s, v, reason, rsz, detail, dsz);
}

static void
rcpt_with_verdict(struct session *s, struct policy_verdict *v)
{
	char reason[48], detail[256];

	s->cur_verdict = v;
	if (!s->up_decided) {
		upstream_decide(s, v);
		return;
	}
	if (!leg_fits(s, v, reason, sizeof(reason), detail, sizeof(detail))) {
		if (s->reuse_uses > 0 && s->msgs == 0 && !s->tx_up_mail &&
		    v->level != TLS_LEVEL_DEFER) {
			/* a reused leg this recipient's policy does not
			 * accept: a connection of its own, as without reuse */
			log_info("sid=%s event=upstream-reuse-mismatch dst=%s "
			    "domain=%s reason=%s action=reconnect", s->id,
			    s->dst_str, v->domain, reason);
			io_write(s->up, "QUIT\r\n", 6);
			s->reuse_uses = 0;
			s->up_decided = s->up_tls = 0;
			memset(&s->caps, 0, sizeof(s->caps));
			reconnect_start(s, RECONNECT_FRESH);
			return;
		}
		policy_failed(s, v, reason, detail);
		return;
	}
	if (s->leg_verdict != NULL && s->up_verdict == s->leg_verdict) {
		/* the reused leg now stands for this session's fresh
		 * verdict; the old one is done */
		s->up_verdict = v;
		policy_verdict_free(s->leg_verdict);
		s->leg_verdict = NULL;
	}
	rcpt_continue(s);
}

static void
policy_done(void *arg, struct policy_verdict *v)
{
	struct session *s = arg;
	char q[300];

	s->preq = NULL;
	/* the policy engine logged why; this ties it to the session */
	log_info("sid=%s event=verdict domain=%s dst=%s mx=%s source=%s "
	    "level=%s%s%s%s", s->id, v->domain, s->dst_str,
	    v->mx_host[0] ? v->mx_host : "-", v->source,
	    tls_level_name(v->level), v->report_only ? " mode=testing" : "",
	    v->reason[0] ? " reason=" : "", v->reason);
	if (v->level == TLS_LEVEL_DEFER && v->detail[0])
		log_debug("sid=%s event=verdict-detail detail=%s", s->id,
		    log_q(q, sizeof(q), v->detail));
	if (s->nverdicts < MAX_VERDICTS)
		s->verdicts[s->nverdicts++] = v;
	else {
		/* keep the list bounded: the oldest non-leg verdict goes */
		int i = s->verdicts[0] == s->up_verdict ? 1 : 0;

		policy_verdict_free(s->verdicts[i]);
		memmove(&s->verdicts[i], &s->verdicts[i + 1],
		    (MAX_VERDICTS - i - 1) * sizeof(v));
		s->verdicts[MAX_VERDICTS - 1] = v;
	}
	rcpt_with_verdict(s, v);
}

/* After the policy allowed the RCPT: MAIL first if not yet upstream. */
static void
rcpt_continue(struct session *s)
{
	if (!s->tx_up_mail)
		session_enter(s, S_MAIL);
	else
		session_enter(s, S_RCPT);
}

/* ---- client commands --------------------------------------------------- */

static void
cmd_helo(struct session *s, const struct smtp_cmd *cmd)
{
	size_t n = cmd->arglen;

	if (n == 0) {
		cl_printf(s, "501 5.5.4 Syntax: %s hostname",
		    smtp_verb_name(cmd->verb));
		return;
	}
	if (n > SMTP_DOMAIN_MAX)
		n = SMTP_DOMAIN_MAX;
	memcpy(s->helo, cmd->arg, n);
	s->helo[n] = '\0';
	s->client_ehlo = cmd->verb == SMTP_CMD_EHLO;
	if (s->ehlo_reply == NULL) {
		session_enter(s, S_EHLO);
		return;
	}
	/* a repeated EHLO: answered from what we know, and it resets */
	if (s->tx_up_mail) {
		s->internal_rset = 1;
		tx_clear(s);
		session_enter(s, S_RSET);
		return;
	}
	tx_clear(s);
	if (s->client_ehlo)
		io_write(s->cl, s->ehlo_reply, s->ehlo_reply_len);
	else
		cl_printf(s, "250 %s", s->banner[0] ? s->banner : "mxguard");
	session_enter(s, S_IDLE);
}

static void
cmd_mail(struct session *s, const char *line, const struct smtp_cmd *cmd)
{
	if (s->state == S_WAIT_HELO) {
		cl_printf(s, "503 5.5.1 Error: send HELO/EHLO first");
		return;
	}
	if (s->tx_mail) {
		cl_printf(s, "503 5.5.1 Error: nested MAIL command");
		return;
	}
	if ((s->tx_mail = strdup(line)) == NULL) {
		cl_printf(s, "451 4.3.0 mxguard: out of memory");
		return;
	}
	snprintf(s->tx_from, sizeof(s->tx_from), "%s", cmd->path);
	/* nothing is committed yet: the upstream sees MAIL after the
	 * policy of the first recipient decided how to talk to it */
	cl_printf(s, "250 2.1.0 Ok");
}

static void
cmd_rcpt(struct session *s, const char *line, const struct smtp_cmd *cmd)
{
	struct policy_verdict *v;

	if (s->tx_mail == NULL) {
		cl_printf(s, "503 5.5.1 Error: need MAIL command");
		return;
	}
	s->tx_rcpts++;
	if (s->tx_mail_fail) {
		/* the upstream refused MAIL: every RCPT gets its reply */
		io_write(s->cl, s->tx_mail_fail, strlen(s->tx_mail_fail));
		return;
	}
	free(s->rcpt_line);
	if ((s->rcpt_line = strdup(line)) == NULL) {
		cl_printf(s, "451 4.3.0 mxguard: out of memory");
		return;
	}
	snprintf(s->rcpt_domain, sizeof(s->rcpt_domain), "%s", cmd->domain);
	if ((v = verdict_find(s, cmd->domain)) != NULL) {
		rcpt_with_verdict(s, v);
		return;
	}
	session_enter(s, S_POLICY);
	s->preq = policy_lookup(s->env->policy, cmd->domain,
	    (struct sockaddr *)&s->dst_addr, sa_len(&s->dst_addr), s->id,
	    policy_done, s);
	if (s->preq == NULL) {
		cl_printf(s, "451 4.3.0 mxguard: cannot evaluate the TLS "
		    "policy (out of memory)");
		session_enter(s, S_IDLE);
	}
}

static void
cmd_data(struct session *s)
{
	if (s->tx_mail == NULL) {
		cl_printf(s, "503 5.5.1 Error: need MAIL command");
		return;
	}
	if (s->tx_rcpts_ok == 0) {
		cl_printf(s, "554 5.5.1 Error: no valid recipients");
		return;
	}
	session_enter(s, S_DATA);
}

static void
cmd_starttls(struct session *s)
{
	SSL *ssl;

	if (s->client_tls || !tls_server_enabled(s->env->tls)) {
		cl_printf(s, "502 5.5.1 Error: command not implemented");
		return;
	}
	if (s->tx_mail) {
		cl_printf(s, "503 5.5.1 Error: STARTTLS inside a transaction");
		return;
	}
	if (io_datalen(s->cl) > 0) {
		/* pipelined after STARTTLS: CVE-2011-0411 class */
		stats_add(st_inject, 1);
		log_warn("sid=%s event=starttls-injection side=client "
		    "client=%s", s->id, s->client_str);
		session_close(s, "client pipelined data after STARTTLS");
		return;
	}
	if ((ssl = tls_server_new(s->env->tls)) == NULL) {
		cl_printf(s, "454 4.7.0 TLS not available");
		return;
	}
	cl_printf(s, "220 2.0.0 Ready to start TLS");
	if (io_start_tls(s->cl, ssl, 1) == -1) {
		SSL_free(ssl);
		session_close(s, "cannot start TLS with the client");
		return;
	}
	session_enter(s, S_CLIENT_TLS);
}

/* "dst|client address": a leg serves one client towards one MX. */
static int
reuse_key(const struct session *s, char *buf, size_t sz)
{
	char a[INET6_ADDRSTRLEN];
	const void *ip = s->client_addr.ss_family == AF_INET6 ?
	    (const void *)&((const struct sockaddr_in6 *)
	    (const void *)&s->client_addr)->sin6_addr :
	    (const void *)&((const struct sockaddr_in *)
	    (const void *)&s->client_addr)->sin_addr;
	int n;

	if (inet_ntop(s->client_addr.ss_family, ip, a, sizeof(a)) == NULL)
		return -1;
	n = snprintf(buf, sz, "%s|%s", s->dst_str, a);
	return n < 0 || (size_t)n >= sz ? -1 : 0;
}

/* After the client's QUIT: an idle, verified TLS leg goes to the reuse
 * cache instead of being closed.  Returns 1 if it went. */
static int
park_upstream(struct session *s)
{
	const struct config *cfg = s->env->cfg;
	struct reuse_leg leg;
	char key[200];
	int i;

	if (!cfg->upstream_reuse || s->env->draining || s->up == NULL ||
	    !s->up_tls || s->up_refused || s->tx_up_mail || s->up_discard ||
	    s->state != S_IDLE || s->greeting[0] == '\0' ||
	    io_datalen(s->up) > 0 || io_queued(s->up) > 0 ||
	    reuse_key(s, key, sizeof(key)) == -1)
		return 0;
	for (i = 0; i < s->nverdicts; i++)
		if (s->verdicts[i] == s->up_verdict)
			break;
	if (i == s->nverdicts && s->up_verdict != s->leg_verdict)
		return 0;
	memset(&leg, 0, sizeof(leg));
	leg.up = s->up;
	leg.verdict = s->up_verdict;
	leg.uses = s->reuse_uses + 1;
	snprintf(leg.greeting, sizeof(leg.greeting), "%s", s->greeting);
	snprintf(leg.tls_proto, sizeof(leg.tls_proto), "%s", s->tls_proto);
	snprintf(leg.tls_verify, sizeof(leg.tls_verify), "%s",
	    s->tls_verify);
	s->up_out += up_bytes(s);
	if (reuse_park(s->env->reuse, key, &leg, cfg->upstream_reuse_time,
	    cfg->upstream_reuse_max) == -1)
		return 0;
	/* the leg and its verdict belong to the cache now */
	if (s->up_verdict == s->leg_verdict)
		s->leg_verdict = NULL;
	else {
		memmove(&s->verdicts[i], &s->verdicts[i + 1],
		    (size_t)(s->nverdicts - i - 1) * sizeof(s->verdicts[0]));
		s->nverdicts--;
	}
	s->up = NULL;
	s->up_verdict = NULL;
	log_info("sid=%s event=upstream-parked dst=%s uses=%u", s->id,
	    s->dst_str, leg.uses);
	return 1;
}

static void
cmd_quit(struct session *s)
{
	s->quit_client = 1;
	/* Answered at once, as Postfix's smtpd does: the client's mail is
	 * settled, and its session ends a round trip earlier.  The
	 * upstream leg is parked for the next session, or gets its QUIT
	 * and we wait for the 221. */
	cl_printf(s, "221 2.0.0 Bye");
	if (park_upstream(s)) {
		session_close(s, "client quit");
		return;
	}
	if (s->up && !s->up_refused) {
		session_enter(s, S_QUIT);
		return;
	}
	session_close(s, "client quit");
}

static void
client_command(struct session *s, char *line, size_t len)
{
	struct smtp_cmd cmd;
	const char *err;

	log_debug("sid=%s event=client-command text=\"%.*s\"", s->id,
	    (int)len, line);
	if (smtp_cmd_parse(line, len, &cmd, &err) == -1) {
		/* err starts with its enhanced status code */
		cl_printf(s, "%s %s", cmd.verb == SMTP_CMD_UNKNOWN ? "500" :
		    "501", err);
		return;
	}
	if (s->up_refused && cmd.verb != SMTP_CMD_QUIT) {
		cl_printf(s, "503 5.5.0 Error: the server refused service");
		return;
	}
	if (s->state == S_WAIT_HELO && cmd.verb != SMTP_CMD_EHLO &&
	    cmd.verb != SMTP_CMD_HELO && cmd.verb != SMTP_CMD_QUIT &&
	    cmd.verb != SMTP_CMD_NOOP && cmd.verb != SMTP_CMD_RSET &&
	    cmd.verb != SMTP_CMD_STARTTLS) {
		cl_printf(s, "503 5.5.1 Error: send HELO/EHLO first");
		return;
	}
	switch (cmd.verb) {
	case SMTP_CMD_HELO:
	case SMTP_CMD_EHLO:
		cmd_helo(s, &cmd);
		break;
	case SMTP_CMD_MAIL:
		cmd_mail(s, line, &cmd);
		break;
	case SMTP_CMD_RCPT:
		cmd_rcpt(s, line, &cmd);
		break;
	case SMTP_CMD_DATA:
		cmd_data(s);
		break;
	case SMTP_CMD_RSET:
		if (s->tx_up_mail) {
			tx_clear(s);
			session_enter(s, S_RSET);
		} else {
			tx_clear(s);
			cl_printf(s, "250 2.0.0 Ok");
		}
		break;
	case SMTP_CMD_NOOP:
		cl_printf(s, "250 2.0.0 Ok");
		break;
	case SMTP_CMD_VRFY:
		cl_printf(s, "252 2.5.2 Cannot VRFY user, but will accept "
		    "message and attempt delivery");
		break;
	case SMTP_CMD_HELP:
		cl_printf(s, "214 2.0.0 See RFC 5321");
		break;
	case SMTP_CMD_QUIT:
		cmd_quit(s);
		break;
	case SMTP_CMD_STARTTLS:
		cmd_starttls(s);
		break;
	case SMTP_CMD_EXPN:
	case SMTP_CMD_BDAT:
	case SMTP_CMD_AUTH:
	case SMTP_CMD_UNKNOWN:
		cl_printf(s, "502 5.5.1 Error: command not implemented");
		break;
	}
}

/* Handles buffered client lines while the session waits for the client. */
static void
client_process(struct session *s)
{
	char *line;
	ssize_t n;

	if (s->processing)
		return;		/* the outer loop goes on */
	s->processing = 1;
	while (waits_for_client(s->state) && s->cl != NULL) {
		n = io_getline(s->cl, SMTP_LINE_MAX, &line);
		if (n == -1)
			break;
		if (n == -2) {
			cl_printf(s, "500 5.5.2 Error: line too long");
			session_close(s, "client line too long");
			break;
		}
		client_command(s, line, (size_t)n);
	}
	s->processing = 0;
}

/* ---- DATA -------------------------------------------------------------- */

static void
body_pump(struct session *s)
{
	static char out[3 * IO_INBUF_MAX + 16];
	enum smtp_data_status st = SMTP_DATA_MORE;
	size_t used, made;

	while (s->state == S_BODY && io_datalen(s->cl) > 0) {
		if (io_queued(s->up) > BODY_HIWAT) {
			io_pause(s->cl, 1);	/* resumed at IO_LOWAT */
			return;
		}
		st = smtp_data_scan(&s->body, io_data(s->cl),
		    io_datalen(s->cl), out, sizeof(out), &used, &made);
		io_write(s->up, out, made);
		io_drop(s->cl, used);
		if (st == SMTP_DATA_END) {
			if (s->body.bare_lf || s->body.bare_cr)
				log_info("sid=%s event=normalised bare_lf=%lu "
				    "bare_cr=%lu", s->id, s->body.bare_lf,
				    s->body.bare_cr);
			session_enter(s, S_DATA_END);
			return;
		}
	}
	if (s->state == S_BODY && io_paused(s->cl) &&
	    io_queued(s->up) <= BODY_HIWAT)
		io_pause(s->cl, 0);
}

static void
message_done(struct session *s, const struct smtp_reply *r)
{
	char q[300];
	size_t tl;
	const char *t = smtp_reply_text(r, r->nlines - 1, &tl);

	s->msgs++;
	stats_add(r->code / 100 == 2 ? st_msgs_ok : st_msgs_fail, 1);
	log_info("sid=%s event=message from=<%s> rcpts=%d size=%llu "
	    "tls=%s result=%s reply=%s", s->id, s->tx_from, s->tx_rcpts_ok,
	    s->body.bytes_in, s->up_tls ? s->tls_proto : "none",
	    r->code / 100 == 2 ? "accepted" : r->code / 100 == 4 ?
	    "deferred" : "rejected", log_qn(q, sizeof(q), t, tl));
}

/* ---- upstream replies -------------------------------------------------- */

static void
ehlo_done(struct session *s, const struct smtp_reply *r)
{
	char buf[SMTP_REPLY_MAX];
	size_t n, tl;
	const char *t = smtp_reply_text(r, 0, &tl);

	smtp_caps_parse(r, &s->caps);
	snprintf(s->banner, sizeof(s->banner), "%.*s", (int)tl, t);
	n = smtp_caps_filter(r, tls_server_enabled(s->env->tls) &&
	    !s->client_tls, buf, sizeof(buf));
	free(s->ehlo_reply);
	s->ehlo_reply = NULL;
	if (n == 0 || (s->ehlo_reply = malloc(n)) == NULL) {
		session_tempfail(s, "421 4.3.0", "cannot relay the EHLO "
		    "reply of %s", s->dst_str);
		return;
	}
	memcpy(s->ehlo_reply, buf, n);
	s->ehlo_reply_len = n;
}

/* A new upstream connection the client does not see: its greeting and
 * EHLO are consumed (reconnect_ready() goes on from there). */
static void
reconnect_start(struct session *s, int why)
{
	int ufd;

	s->up_out += up_bytes(s);
	io_free(s->up);
	s->up = NULL;
	s->up_base = 0;
	s->reconnect = why;
	if ((ufd = upstream_socket(s)) == -1 ||
	    (s->up = io_new(s->env->loop, ufd, up_io_cb, s)) == NULL) {
		if (ufd != -1)
			close(ufd);
		session_tempfail(s, "421 4.4.1", "cannot reconnect to %s",
		    s->dst_str);
		return;
	}
	session_enter(s, S_CONNECT);
}

/* Opportunistic TLS that fails in the handshake: like Postfix at level
 * "may", deliver over a new cleartext connection rather than never. */
static void
plain_retry_start(struct session *s, const char *why)
{
	log_info("sid=%s event=tls-fallback dst=%s domain=%s error=\"%s\" "
	    "action=cleartext-retry", s->id, s->dst_str,
	    s->up_verdict->domain, why);
	reconnect_start(s, RECONNECT_PLAIN);
}

static void
reconnect_ready(struct session *s)
{
	int why = s->reconnect;

	s->reconnect = RECONNECT_NONE;
	if (why == RECONNECT_FRESH) {
		/* as for the first RCPT of any session */
		upstream_decide(s, s->cur_verdict);
		return;
	}
	s->up_decided = 1;
	stats_add(st_plain, 1);
	log_info("sid=%s event=cleartext dst=%s domain=%s reason=%s", s->id,
	    s->dst_str, s->up_verdict->domain, "tls-handshake-failed");
	session_enter(s, S_MAIL);
}

static void
session_on_reply(struct session *s, struct smtp_reply *r)
{
	int ok = r->code / 100 == 2;
	char reason[48], detail[256];
	size_t tl;
	const char *t;

	switch (s->state) {
	case S_GREETING:
		t = smtp_reply_text(r, 0, &tl);
		log_info("sid=%s event=greeting dst=%s code=%d banner=%s",
		    s->id, s->dst_str, r->code, log_qn(detail, sizeof(detail),
		    t, tl));
		if (s->reconnect) {
			if (!ok)
				session_tempfail(s, "421 4.4.2", "%s refused "
				    "a new connection (%d)", s->dst_str,
				    r->code);
			else
				session_enter(s, S_EHLO);
			break;
		}
		if (r->len < sizeof(s->greeting))	/* for a reuse */
			snprintf(s->greeting, sizeof(s->greeting), "%.*s",
			    (int)r->len, r->buf);
		cl_relay(s, r);
		if (!ok)
			s->up_refused = 1;
		session_enter(s, S_WAIT_HELO);
		break;
	case S_EHLO:
		if (ok) {
			ehlo_done(s, r);
			if (s->state == S_CLOSING || s->state == S_DEAD)
				break;
			if (s->reconnect) {
				reconnect_ready(s);
				break;
			}
			if (s->client_ehlo)
				io_write(s->cl, s->ehlo_reply,
				    s->ehlo_reply_len);
			else
				cl_printf(s, "250 %s", s->banner);
			session_enter(s, S_IDLE);
		} else if (r->code / 100 == 5) {
			session_enter(s, S_HELO);
		} else if (s->reconnect) {
			session_tempfail(s, "421 4.4.2", "%s refused EHLO on "
			    "a new connection (%d)", s->dst_str, r->code);
		} else {
			cl_relay(s, r);
			session_enter(s, S_WAIT_HELO);
		}
		break;
	case S_HELO:
		if (ok) {
			memset(&s->caps, 0, sizeof(s->caps));
			t = smtp_reply_text(r, 0, &tl);
			snprintf(s->banner, sizeof(s->banner), "%.*s",
			    (int)tl, t);
			free(s->ehlo_reply);
			if (asprintf(&s->ehlo_reply, "250 %s\r\n",
			    s->banner) == -1) {
				s->ehlo_reply = NULL;
				session_tempfail(s, "421 4.3.0", "out of memory");
				break;
			}
			s->ehlo_reply_len = strlen(s->ehlo_reply);
			if (s->reconnect) {
				reconnect_ready(s);
				break;
			}
			cl_printf(s, "250 %s", s->banner);
			session_enter(s, S_IDLE);
		} else if (s->reconnect) {
			session_tempfail(s, "421 4.4.2", "%s refused HELO on "
			    "a new connection (%d)", s->dst_str, r->code);
		} else {
			cl_relay(s, r);
			session_enter(s, S_WAIT_HELO);
		}
		break;
	case S_STARTTLS:
		if (r->code == 220) {
			if (io_datalen(s->up) > 0) {
				/* plaintext after the 220: CVE-2011-0411 */
				stats_add(st_inject, 1);
				log_warn("sid=%s event=starttls-injection "
				    "side=upstream dst=%s bytes=%zu", s->id,
				    s->dst_str, io_datalen(s->up));
				session_tempfail(s, "421 4.7.0", "%s sent "
				    "plaintext after its reply to STARTTLS "
				    "(injection); connection dropped",
				    s->dst_str);
				break;
			}
			session_enter(s, S_TLS);
			break;
		}
		policy_record_tls(s->env->policy,
		    (struct sockaddr *)&s->dst_addr, s->up_verdict->mx_host,
		    1, 0);
		if (s->up_verdict->level == TLS_LEVEL_MAY) {
			s->up_decided = 1;
			stats_add(st_plain, 1);
			log_info("sid=%s event=cleartext dst=%s domain=%s "
			    "reason=starttls-refused code=%d", s->id,
			    s->dst_str, s->up_verdict->domain, r->code);
			session_enter(s, S_MAIL);
			break;
		}
		t = smtp_reply_text(r, r->nlines - 1, &tl);
		snprintf(detail, sizeof(detail), "STARTTLS refused: %d %.*s",
		    r->code, (int)tl, t);
		policy_failed(s, s->up_verdict, "starttls-not-supported",
		    detail);
		break;
	case S_EHLO_TLS:
		if (!ok) {
			session_tempfail(s, "421 4.7.0", "%s refused EHLO "
			    "after STARTTLS (%d)", s->dst_str, r->code);
			break;
		}
		ehlo_done(s, r);
		if (s->state == S_EHLO_TLS)
			session_enter(s, S_MAIL);
		break;
	case S_MAIL:
		if (ok) {
			s->tx_up_mail = 1;
			session_enter(s, S_RCPT);
			break;
		}
		if (s->rcpt_pipelined) {
			/* the RCPT sent with it will be refused too: that
			 * reply is not the client's */
			s->rcpt_pipelined = 0;
			s->up_discard++;
		}
		/* client got 250 for MAIL: its RCPTs carry the refusal */
		if ((s->tx_mail_fail = malloc(r->len + 1)) != NULL) {
			memcpy(s->tx_mail_fail, r->buf, r->len);
			s->tx_mail_fail[r->len] = '\0';
		}
		cl_relay(s, r);
		session_enter(s, S_IDLE);
		break;
	case S_RCPT:
		if (ok)
			s->tx_rcpts_ok++;
		cl_relay(s, r);
		free(s->rcpt_line);
		s->rcpt_line = NULL;
		session_enter(s, S_IDLE);
		break;
	case S_DATA:
		cl_relay(s, r);
		session_enter(s, r->code == 354 ? S_BODY : S_IDLE);
		break;
	case S_DATA_END:
		message_done(s, r);
		cl_relay(s, r);
		io_set_lowat(s->up, 0);
		if (io_ssl(s->up) != NULL)
			SSL_set_mode(io_ssl(s->up), SSL_MODE_RELEASE_BUFFERS);
		tx_clear(s);
		session_enter(s, S_IDLE);
		break;
	case S_RSET:
		if (s->internal_rset) {
			/* for a repeated EHLO */
			s->internal_rset = 0;
			if (s->client_ehlo)
				io_write(s->cl, s->ehlo_reply,
				    s->ehlo_reply_len);
			else
				cl_printf(s, "250 %s", s->banner);
		} else
			cl_relay(s, r);
		session_enter(s, S_IDLE);
		break;
	case S_QUIT:
		session_close(s, "client quit");
		break;
	default:
		/* an unsolicited reply: usually a 421 before the server
		 * hangs up */
		t = smtp_reply_text(r, r->nlines - 1, &tl);
		log_info("sid=%s event=unsolicited-reply dst=%s state=%s "
		    "code=%d text=%s", s->id, s->dst_str,
		    state_names[s->state], r->code,
		    log_qn(reason, sizeof(reason), t, tl));
		session_tempfail(s, "421 4.4.2", "%s closed the session "
		    "(%d)", s->dst_str, r->code);
		break;
	}
}

static void
up_read_replies(struct session *s)
{
	enum smtp_reply_status st;
	char *line;
	ssize_t n;

	while (s->up && s->state != S_DEAD && s->state != S_CLOSING &&
	    s->state != S_TLS && s->state != S_BODY) {
		n = io_getline(s->up, SMTP_LINE_MAX, &line);
		if (n == -1)
			return;
		if (n == -2) {
			session_tempfail(s, "421 4.4.2", "%s sent an "
			    "over-long reply line", s->dst_str);
			return;
		}
		if (s->rep == NULL) {
			if ((s->rep = malloc(sizeof(*s->rep))) == NULL) {
				session_tempfail(s, "421 4.3.0",
				    "out of memory");
				return;
			}
			smtp_reply_init(s->rep);
		}
		log_debug("sid=%s event=upstream-line text=\"%.*s\"", s->id,
		    (int)n, line);
		st = smtp_reply_feed(s->rep, line, (size_t)n);
		if (st == SMTP_REPLY_MORE)
			continue;
		if (st == SMTP_REPLY_BAD) {
			char q[200];

			session_tempfail(s, "421 4.4.2", "%s sent a malformed "
			    "reply (%s): %s", s->dst_str, s->rep->err,
			    log_qn(q, sizeof(q), line, (size_t)n));
			return;
		}
		{
			struct smtp_reply *r = s->rep;

			s->rep = NULL;
			if (s->up_discard > 0) {
				s->up_discard--;
				log_debug("sid=%s event=reply-dropped code=%d "
				    "why=pipelined-rcpt-after-refused-mail",
				    s->id, r->code);
			} else
				session_on_reply(s, r);
			free(r);
		}
	}
}

/* ---- io events --------------------------------------------------------- */

static void
up_io_cb(struct io *io, enum io_event ev, void *arg)
{
	struct session *s = arg;
	char reason[48], detail[256];

	if (s->state == S_DEAD || s->state == S_CLOSING)
		return;
	switch (ev) {
	case IO_CONNECTED:
		log_debug("sid=%s event=upstream-connected dst=%s", s->id,
		    s->dst_str);
		session_enter(s, S_GREETING);
		break;
	case IO_DATAIN:
		if (s->state == S_BODY) {
			/* no server speaks before the dot; whatever it says
			 * now, the message is not accepted */
			log_info("sid=%s event=early-reply dst=%s bytes=%zu",
			    s->id, s->dst_str, io_datalen(io));
			session_tempfail(s, "451 4.4.2", "%s replied before "
			    "the end of the message", s->dst_str);
			break;
		}
		up_read_replies(s);
		break;
	case IO_TLSREADY: {
		struct policy_verdict *v = s->up_verdict;
		int ok;

		tls_client_done(s->env->tls, io_ssl(io));
		ok = policy_tls_check(v, io_ssl(io), reason, sizeof(reason),
		    detail, sizeof(detail)) == 0;
		snprintf(s->tls_verify, sizeof(s->tls_verify), "%s", reason);
		snprintf(s->tls_proto, sizeof(s->tls_proto), "%s",
		    SSL_get_version(io_ssl(io)));
		log_tls(s);
		policy_record_tls(s->env->policy,
		    (struct sockaddr *)&s->dst_addr, v->mx_host, 1, 1);
		if (!ok) {
			char key[700];

			resume_key(s, key, sizeof(key));
			tls_client_forget(s->env->tls, key);
			policy_failed(s, v, reason, detail);
			break;
		}
		if (v->report_only && strcmp(reason, "success") != 0)
			log_info("sid=%s event=policy-report domain=%s "
			    "mode=testing reason=%s detail=\"%s\"", s->id,
			    v->domain, reason, detail);
		s->up_decided = s->up_tls = 1;
		stats_add(st_tls, 1);
		session_enter(s, S_EHLO_TLS);
		break;
	}
	case IO_LOWAT:
		if (s->state == S_BODY && io_paused(s->cl))
			body_pump(s);
		break;
	case IO_TIMEOUT:
		if (s->state == S_POLICY) {
			struct policy_verdict tmp;

			policy_cancel(s->preq);
			s->preq = NULL;
			memset(&tmp, 0, sizeof(tmp));
			snprintf(tmp.domain, sizeof(tmp.domain), "%s",
			    s->rcpt_domain);
			tmp.level = TLS_LEVEL_DEFER;
			tmp.source = "timeout";
			policy_failed(s, &tmp, "validation-failure",
			    "the policy lookup timed out");
			break;
		}
		if (s->state == S_TLS &&
		    s->up_verdict->level <= TLS_LEVEL_MAY) {
			policy_record_tls(s->env->policy,
			    (struct sockaddr *)&s->dst_addr,
			    s->up_verdict->mx_host, 1, 0);
			plain_retry_start(s, "TLS handshake timeout");
			break;
		}
		session_tempfail(s, s->state == S_BODY ||
		    s->state == S_DATA_END ? "451 4.4.2" : "421 4.4.2",
		    "timeout in state %s waiting for %s",
		    state_names[s->state], s->dst_str);
		break;
	case IO_ERROR:
	case IO_DISCONNECTED:
		if (s->state == S_TLS) {
			policy_record_tls(s->env->policy,
			    (struct sockaddr *)&s->dst_addr,
			    s->up_verdict->mx_host, 1, 0);
			log_info("sid=%s event=tls-failed dst=%s error=\"%s\"",
			    s->id, s->dst_str, io_error(io));
			if (s->up_verdict->level > TLS_LEVEL_MAY) {
				policy_failed(s, s->up_verdict,
				    "validation-failure", io_error(io));
				break;
			}
			plain_retry_start(s, io_error(io));
			break;
		}
		if (s->state == S_CONNECT) {
			session_tempfail(s, "421 4.4.1", "cannot connect to "
			    "%s: %s", s->dst_str, io_error(io));
			break;
		}
		if (s->state == S_QUIT) {
			/* the server hung up instead of answering QUIT */
			session_close(s, "upstream closed at QUIT");
			break;
		}
		session_tempfail(s, s->state == S_BODY ||
		    s->state == S_DATA_END ? "451 4.4.2" : "421 4.4.2",
		    "connection to %s lost in state %s: %s", s->dst_str,
		    state_names[s->state], ev == IO_ERROR ? io_error(io) :
		    "closed by the server");
		break;
	}
}

static void
cl_io_cb(struct io *io, enum io_event ev, void *arg)
{
	struct session *s = arg;

	if (s->state == S_DEAD)
		return;
	if (s->state == S_CLOSING) {
		/* the last reply is out, or the client went away */
		if (ev == IO_LOWAT || ev == IO_ERROR || ev == IO_TIMEOUT ||
		    ev == IO_DISCONNECTED) {
			s->state = S_DEAD;
			ev_timer_arm(s->reaper, 0);
		}
		return;
	}
	if (s->state == S_QUIT) {
		/* the client has its 221; only the upstream's QUIT is left */
		if (ev == IO_DATAIN)
			io_drop(io, io_datalen(io));
		else if (ev == IO_DISCONNECTED || ev == IO_ERROR ||
		    ev == IO_TIMEOUT) {
			s->cl_in += io_bytes_in(io);
			io_free(io);
			s->cl = NULL;
		}
		return;
	}
	switch (ev) {
	case IO_DATAIN:
		if (waits_for_client(s->state))
			client_process(s);
		else if (s->state == S_BODY)
			body_pump(s);
		break;
	case IO_TLSREADY:
		s->client_tls = 1;
		s->helo[0] = '\0';
		log_info("sid=%s event=client-tls protocol=%s cipher=%s",
		    s->id, SSL_get_version(io_ssl(io)),
		    SSL_get_cipher_name(io_ssl(io)));
		/* the client must EHLO again; our reply must not offer
		 * STARTTLS twice */
		if (s->ehlo_reply) {
			free(s->ehlo_reply);
			s->ehlo_reply = NULL;
		}
		session_enter(s, S_WAIT_HELO);
		break;
	case IO_TIMEOUT:
		cl_printf(s, "421 4.4.2 mxguard: timeout, closing");
		session_close(s, "client timeout");
		break;
	case IO_LOWAT:
		break;
	case IO_ERROR:
	case IO_DISCONNECTED:
		/* In DATA this leaves the upstream without its ".": the
		 * server discards the partial message. */
		session_close(s, ev == IO_ERROR ? io_error(io) :
		    "client closed");
		break;
	case IO_CONNECTED:
		break;
	}
}

/* ---- start ------------------------------------------------------------- */

static int
upstream_socket(struct session *s)
{
	const struct config *cfg = s->env->cfg;
	int fd, one = 1;
	uint32_t mark = cfg->upstream_mark;

	fd = socket(s->dst_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -1;
	/* the divert rules skip this mark: our own connection must not
	 * come back to us */
	if (setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) == -1)
		goto fail;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&s->dst_addr,
	    sa_len(&s->dst_addr)) == -1 && errno != EINPROGRESS)
		goto fail;
	return fd;
fail:
	close(fd);
	return -1;
}

/* A new session on a parked leg: the client gets the leg's greeting, and
 * its EHLO goes upstream inside the TLS session. */
static void
session_adopt(struct session *s, struct reuse_leg *leg)
{
	s->up = leg->up;
	io_set_cb(s->up, up_io_cb, s);
	s->up_base = io_bytes_out(s->up);
	/* not among the session's verdicts: every recipient gets a fresh
	 * one, which must fit the leg (rcpt_with_verdict) */
	s->up_verdict = s->leg_verdict = leg->verdict;
	s->up_decided = s->up_tls = 1;
	s->reuse_uses = leg->uses;
	snprintf(s->greeting, sizeof(s->greeting), "%s", leg->greeting);
	snprintf(s->tls_proto, sizeof(s->tls_proto), "%s", leg->tls_proto);
	snprintf(s->tls_verify, sizeof(s->tls_verify), "%s",
	    leg->tls_verify);
	stats_add(st_reused, 1);
	log_info("sid=%s event=upstream-reused dst=%s uses=%u tls=%s",
	    s->id, s->dst_str, s->reuse_uses, s->tls_proto);
	io_write(s->cl, s->greeting, strlen(s->greeting));
	session_enter(s, S_WAIT_HELO);
}

int
session_start(struct session_env *env, int fd,
    const struct sockaddr_storage *client, const struct sockaddr_storage *dst)
{
	static unsigned long long seq;
	static unsigned base;
	struct session *s;
	struct reuse_leg leg;
	char key[200];
	int ufd, saved;

	stats_init();
	if (base == 0)
		base = (unsigned)getpid() << 16 ^ (unsigned)ev_now(env->loop);
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		close(fd);
		return -1;
	}
	s->env = env;
	snprintf(s->id, sizeof(s->id), "%08x%04llx", base, ++seq & 0xffff);
	s->client_addr = *client;
	s->dst_addr = *dst;
	sockaddr_fmt((struct sockaddr *)client, s->client_str,
	    sizeof(s->client_str));
	sockaddr_fmt((struct sockaddr *)dst, s->dst_str, sizeof(s->dst_str));
	s->started = ev_now(env->loop);
	s->state = S_CONNECT;
	if ((s->next = env->sessions) != NULL)
		s->next->prevp = &s->next;
	env->sessions = s;
	s->prevp = &env->sessions;
	env->nsessions++;
	stats_add(st_sessions, 1);
	stats_add(st_active, 1);
	if ((s->reaper = ev_timer_new(env->loop, session_free, s)) == NULL ||
	    (s->cl = io_new(env->loop, fd, cl_io_cb, s)) == NULL) {
		close(fd);
		goto fail;
	}
	log_info("sid=%s event=connect client=%s dst=%s", s->id,
	    s->client_str, s->dst_str);
	if (env->cfg->upstream_reuse && !env->draining &&
	    reuse_key(s, key, sizeof(key)) == 0 &&
	    reuse_take(env->reuse, key, &leg) == 0) {
		session_adopt(s, &leg);
		return 0;
	}
	if ((ufd = upstream_socket(s)) == -1 ||
	    (s->up = io_new(env->loop, ufd, up_io_cb, s)) == NULL) {
		saved = errno;
		if (ufd != -1)
			close(ufd);
		cl_printf(s, "421 4.4.1 mxguard: cannot connect to %s: %s",
		    s->dst_str, strerror(saved));
		session_close(s, "upstream socket");
		return 0;
	}
	io_pause(s->cl, 1);	/* nothing from the client before the 220 */
	session_enter(s, S_CONNECT);
	return 0;
fail:
	s->state = S_DEAD;
	session_free(s);
	return -1;
}
