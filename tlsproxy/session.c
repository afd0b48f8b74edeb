/*
 * session.c - the SMTP session state machine (docs/session.md).
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
 * session_enter() is not reentrant: it never handles a client command;
 * session_run(), at the end of every entry into the session, does.
 *
 * Client commands are read only in the states that wait for the client
 * (S_WAIT_HELO, S_IDLE); in every other state they stay buffered in the
 * io layer, which is all that pipelining needs.  A client whose replies
 * pile up unread is not read either (CL_HIWAT), nor one the server takes
 * the message from more slowly than it sends it (BODY_HIWAT), nor any
 * before the server's greeting; the io still tells when such a client
 * leaves (IO_HANGUP, client_hangup()).
 *
 * The upstream leg (leg.c) is a lower layer the session drives: it owns
 * the connection, its TLS and what that TLS proved, and reports back
 * through leg_event().  It is secured lazily, at the first RCPT, when
 * the recipient domain that keys the policy is known: MAIL FROM is
 * answered locally and replayed upstream after STARTTLS.  Failures of
 * policy are never 5xx: 421 at the first RCPT of a session (the MTA tries
 * another MX or queues), 450 later in the session.
 *
 * Who frees what: the session owns the client io, the leg, its verdicts
 * and its strings; session_free() runs from a zero-delay timer so that no
 * callback on the stack still points at the session.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/io.h"
#include "core/log.h"
#include "core/netaddr.h"
#include "core/stats.h"
#include "policy/sts.h"
#include "tlsproxy/domset.h"
#include "tlsproxy/leg.h"
#include "tlsproxy/session.h"
#include "tlsproxy/smtp.h"

enum sstate {
	S_GREETING,	/* the leg connects; waiting for the server's 220 */
	S_WAIT_HELO,	/* waiting for the client's EHLO/HELO */
	S_EHLO,		/* the leg says EHLO (or HELO) upstream */
	S_IDLE,		/* waiting for the client's next command */
	S_POLICY,	/* policy lookup for a RCPT's domain */
	S_SECURE,	/* the leg is made to meet the first verdict */
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
	"GREETING", "WAIT_HELO", "EHLO", "IDLE", "POLICY", "SECURE", "MAIL",
	"RCPT", "DATA", "BODY", "DATA_END", "RSET", "QUIT", "CLIENT_TLS",
	"CLOSING", "DEAD",
};

/* Replies queued for a client that does not read them: above CL_HIWAT
 * the session stops reading (and handling) the client's commands, and
 * resumes when the queue drained to CL_LOWAT.  With the io's bounded
 * input buffer, a client that pipelines without reading holds at most
 * this much of mxguard's memory. */
#define CL_HIWAT	(64 * 1024)
#define CL_LOWAT	(16 * 1024)
/* Output towards the upstream above this pauses reading from the client
 * during DATA; it resumes at the low-water mark.  Kept below the io's
 * bound on TLS output less one 64 KiB write, so a body write is always
 * encrypted at once and never parked (copied) in the io's buffer. */
#define BODY_HIWAT	(128 * 1024)
#define BODY_LOWAT	(64 * 1024)
#define MAX_VERDICTS	8
/* Extensions the client is offered (smtp_caps_filter), whose parameters
 * it may use. */
#define RELAYED_CAPS	(SMTP_CAP_SIZE | SMTP_CAP_PIPELINING | \
			 SMTP_CAP_8BITMIME | SMTP_CAP_SMTPUTF8 | \
			 SMTP_CAP_DSN | SMTP_CAP_ENHSTATUS)
/* The engine owns policy_timeout and always answers by then (a deferral
 * when it ran out of time).  The session waits this much longer only as
 * a safety net against an engine bug. */
#define POLICY_GRACE	(30 * 1000)
/* A verdict serves the later transactions of its session this long after
 * its lookup began, then the domain is looked up again (the engine's
 * caches answer at once): an MTA-STS policy or TLS history learned
 * meanwhile applies within a minute, not only when the MTA closes a
 * connection it may keep for many minutes. */
#define VERDICT_MAX_AGE	(60 * 1000)

struct verdict_slot {
	struct policy_verdict	*v;
};

/* A domain the upstream accepted a recipient of in this transaction, and
 * the generation of the verdict it went under: a reload before DATA has
 * it judged again (data_rejudge). */
struct tx_dom {
	char			*dom;		/* as the engine is asked */
	uint64_t		 gen;
	int			 shared;	/* it normalised */
	int			 rcpts;		/* its accepted recipients */
	int			 would;		/* counted would-defer */
};

struct session {
	struct session_env	*env;
	struct session		*next, **prevp;	/* env->sessions */
	char			 id[20];
	enum sstate		 state;
	struct io		*cl;
	struct leg		*up;		/* the upstream leg */
	struct sockaddr_storage	 client_addr;
	struct sockaddr_storage	 dst_addr;
	char			 client_str[64];
	char			 dst_str[64];
	uint64_t		 started;
	struct ev_timer		*reaper;
	struct ev_timer		*ptimer;	/* policy lookup */
	struct ev_timer		*eof_timer;	/* the client closed in
						 * the message: the rest by
						 * data_done_timeout */

	int			 client_due;	/* client commands to handle */
	int			 cl_blocked;	/* its replies pile up: paused
						 * until they drain */
	int			 running;	/* in session_run() */

	/* client side */
	char			 helo[SMTP_DOMAIN_MAX + 1];
	int			 client_ehlo;	/* used EHLO, not HELO */
	int			 client_tls;
	char			*ehlo_reply;	/* filtered, for the client */
	size_t			 ehlo_reply_len;
	char			 banner[128];	/* upstream EHLO greeting text */
	struct smtp_caps	 reply_caps;	/* what ehlo_reply offers */
	struct smtp_caps	 offered;	/* what the client was offered
						 * last (its MAIL and RCPT
						 * parameters rely on it) */

	/* per-domain verdicts of this session, each with the configuration
	 * generation (env->gen) its lookup began under, when it began, the
	 * last transaction it served, and whether it may serve later
	 * recipients: only one for a domain that normalised, as the engine
	 * names a domain it refuses by a log token (cut to 200 octets, '?'
	 * for what is not LDH), which may be another name */
	struct {
		struct policy_verdict	*v;
		uint64_t		 gen;
		uint64_t		 at;
		unsigned		 txn;
		int			 shared;
	}			 verdicts[MAX_VERDICTS];
	int			 nverdicts;
	unsigned		 txn;		/* transactions begun (MAIL) */
	uint64_t		 preq_gen;	/* env->gen when preq began */
	uint64_t		 preq_at;	/* ev_boot_now() when preq
						 * began: a suspend counts
						 * towards a verdict's age */
	int			 preq_shared;	/* preq's domain normalised */
	char			*preq_dom;	/* the domain preq asked about,
						 * as it was asked */
	struct policy_verdict	*leg_verdict;	/* the one the leg was secured
						 * for (one of verdicts[], kept
						 * from eviction; the leg has
						 * its own copy) */
	struct policy_req	*preq;
	struct policy_verdict	*cur_verdict;	/* of the pending RCPT */
	int			 reasked;	/* the pending RCPT is the first,
						 * asked again after a reload
						 * while its leg was secured or
						 * MAIL waited for its reply */
	unsigned		 up_rcpts;	/* RCPTs sent upstream */
	int			 rcpt_would;	/* the pending RCPT was counted
						 * would-defer (once, however
						 * often it is judged again) */

	/* transaction */
	char			*tx_mail;	/* "MAIL FROM:<...> ..." */
	char			 tx_from[SMTP_PATH_MAX + 1];
	int			 tx_up_mail;	/* MAIL accepted upstream */
	int			 rcpt_pipelined; /* RCPT went with MAIL */
	int			 up_discard;	/* upstream replies to drop */
	char			*tx_mail_fail;	/* upstream's MAIL reply */
	int			 tx_rcpts_ok;
	int			 tx_rcpts;
	struct tx_dom		*tx_doms;	/* accepted recipients' domains */
	int			 ntx_doms;
	int			 rejudge;	/* 1 + the tx_doms entry asked
						 * again before DATA; 0 */
	char			*held354;	/* the upstream's 354, held from
						 * the client while a reload's
						 * re-judge runs (data_rejudge):
						 * no byte of the body is out */
	size_t			 held354_len;
	char			*rcpt_line;	/* RCPT being handled */
	char			 rcpt_domain[SMTP_DOMAIN_MAX + 1];
	struct smtp_data	 body;
	int			 quit_client;	/* client asked QUIT */
	int			 cl_eof;	/* the client shut its side down
						 * after its dot: it gets the
						 * final reply, and the end */
	int			 cl_fin;	/* its FIN seen while it was
						 * not read (client_hangup()):
						 * what it sent before is still
						 * to be read, no new MAIL */
	unsigned long long	 bdat_skip;	/* bytes of a refused BDAT's
						 * chunk still to discard */
	int			 after_data;	/* the client's last command
						 * was DATA and no 354 went
						 * to it: what it sent behind
						 * DATA before the reply is
						 * message content
						 * (client_process) */
	int			 internal_rset;	/* RSET not asked by client */
	int			 rset_refused;	/* the upstream refused an RSET:
						 * its transaction state is not
						 * known, so its connection
						 * carries no more transactions
						 * and is never parked, until
						 * an EHLO it accepts (after
						 * the client's STARTTLS)
						 * resets it */

	/* TLSRPT: one attempt per policy domain and session (a success
	 * once per connection too: leg_count_domain()) */
	struct domset		 reported;	/* TLSRPT: reports counted */

	unsigned		 msgs;
	unsigned		 bare_paths;	/* MAIL/RCPT paths sent without
						 * < >, relayed with them */
	unsigned		 policy_fails;
	char			 why[300];	/* why it ended: the reply
						 * mxguard gave, or what the
						 * client or server did */
	unsigned long long	 up_out;	/* bytes sent upstream by legs
						 * no longer held */
	unsigned long long	 cl_in;		/* bytes from a closed client */
	char			 tx_domains[256]; /* recipient domains sent
						 * upstream, comma-separated */
	int			 tx_would_defer; /* monitor: recipients of
						 * this transaction enforce
						 * mode would defer */
};

static void session_enter(struct session *, enum sstate);
static void session_on_reply(struct session *, struct smtp_reply *);
static void session_close(struct session *, const char *why);
static void client_process(struct session *);
static void session_run(struct session *);
static void rcpt_continue(struct session *);
static void body_pump(struct session *);
static void leg_event(struct leg *, enum leg_event, const struct leg_news *,
    void *);
static void cl_io_cb(struct io *, enum io_event, void *);
static void ehlo_done(struct session *, const struct smtp_reply *);
static void mail_replay(struct session *);
static int caps_shrank(const struct session *);
static void mail_refused_softly(struct session *, const struct smtp_reply *);
static int final_unknown_p(const struct session *);
static const char *final_unknown(const struct session *);
static int params_adapt(struct session *, const char *, char *, size_t,
    char *, size_t);
static void policy_expired(void *);
static void client_eof_end(struct session *, const char *);
static void client_eof_after_dot(struct session *);
static void client_eof_deadline(struct session *);
static void client_eof_expired(void *);

static struct stat_ctr *st_sessions, *st_active, *st_msgs_ok, *st_msgs_fail,
    *st_policy_fail, *st_inject, *st_duration;

static void
stats_init(void)
{
	if (st_sessions)
		return;
	st_sessions = stats_counter("mxguard_sessions_total",
	    "SMTP sessions accepted");
	st_active = stats_gauge("mxguard_sessions_active",
	    "SMTP sessions open now");
	st_duration = stats_histogram("mxguard_session_seconds",
	    "SMTP sessions, from accept to close", NULL, 0);
	st_msgs_ok = stats_counter("mxguard_messages_total"
	    "{result=\"accepted\"}", "Messages by the upstream's final reply");
	st_msgs_fail = stats_counter("mxguard_messages_total"
	    "{result=\"not-accepted\"}", NULL);
	/* counted by the leg (leg.c); registered here to keep their order */
	stats_counter("mxguard_upstream_total{tls=\"yes\"}",
	    "Upstream legs by whether TLS was used");
	stats_counter("mxguard_upstream_total{tls=\"no\"}", NULL);
	stats_counter("mxguard_upstream_reused_total",
	    "Upstream connections reused from an earlier session");
	st_policy_fail = stats_counter("mxguard_policy_deferrals_total",
	    "Recipients deferred because the TLS policy was not met");
	st_inject = stats_counter("mxguard_starttls_injections_total",
	    "Sessions dropped for plaintext injected around STARTTLS");
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
	if (log_enabled(LOG_LVL_DEBUG)) {
		char q[SMTP_LINE_MAX * 2];

		log_debug("sid=%s event=reply-to-client text=%s", s->id,
		    log_qn(q, sizeof(q), buf, (size_t)n));
	}
	memcpy(buf + n, "\r\n", 2);
	io_write(s->cl, buf, (size_t)n + 2);
}

static void
cl_relay(struct session *s, const struct smtp_reply *r)
{
	io_write(s->cl, r->buf, r->len);
}

/* The reply to the client's EHLO (or HELO), from what is known. */
static void
send_ehlo(struct session *s)
{
	if (s->client_ehlo) {
		io_write(s->cl, s->ehlo_reply, s->ehlo_reply_len);
		s->offered = s->reply_caps;
	} else {
		cl_printf(s, "250 %s", s->banner[0] ? s->banner : "mxguard");
		memset(&s->offered, 0, sizeof(s->offered));
	}
}

/* ---- lifetime ---------------------------------------------------------- */

/* Bytes this session sent upstream, on every leg it held. */
static unsigned long long
up_bytes(const struct session *s)
{
	return s->up_out + (s->up ? leg_bytes_out(s->up) : 0ULL);
}

/* Lets the leg go (closing its connection). */
static void
up_drop(struct session *s)
{
	if (s->up == NULL)
		return;
	s->up_out += leg_bytes_out(s->up);
	leg_free(s->up);
	s->up = NULL;
}

static int
up_refused(const struct session *s)
{
	return s->up != NULL && leg_refused(s->up);
}

static int
up_settled(const struct session *s)
{
	return s->up != NULL && leg_settled(s->up);
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
	s->tx_domains[0] = '\0';
	s->tx_would_defer = 0;
	while (s->ntx_doms > 0)
		free(s->tx_doms[--s->ntx_doms].dom);
	free(s->tx_doms);
	s->tx_doms = NULL;
}

static void
session_free(void *arg)
{
	struct session *s = arg;
	char q[400];
	int i;

	/* why=: the only line that says why a session mxguard ended with a
	 * 4xx of its own (the server unreachable, silent, gone, or talking
	 * nonsense) ended, and in which state */
	log_info("sid=%s event=close client=%s dst=%s messages=%u "
	    "policy_deferrals=%u bare_paths=%u duration_ms=%llu "
	    "client_bytes_in=%llu upstream_bytes_out=%llu why=%s", s->id,
	    s->client_str, s->dst_str, s->msgs, s->policy_fails, s->bare_paths,
	    (unsigned long long)(ev_now(s->env->loop) - s->started),
	    s->cl_in + (s->cl ? io_bytes_in(s->cl) : 0ULL), up_bytes(s),
	    log_q(q, sizeof(q), s->why[0] ? s->why : "-"));
	policy_cancel(s->preq);
	io_free(s->cl);
	up_drop(s);
	ev_timer_free(s->reaper);
	ev_timer_free(s->ptimer);
	ev_timer_free(s->eof_timer);
	free(s->preq_dom);
	free(s->held354);
	domset_clear(&s->reported);
	for (i = 0; i < s->nverdicts; i++)
		policy_verdict_free(s->verdicts[i].v);
	free(s->ehlo_reply);
	tx_clear(s);
	s->env->nsessions--;
	stats_add(st_active, -1);
	stats_observe(st_duration,
	    (double)(ev_now(s->env->loop) - s->started) / 1000.0);
	if ((*s->prevp = s->next) != NULL)
		s->next->prevp = s->prevp;
	free(s);
}

/*
 * The process stops (the drain's deadline: drain_timeout after SIGTERM)
 * with the session's dot out and its final reply not in: whether the
 * server took the message is not known, and the MTA, without a 2xx,
 * sends it again.  As at every other loss of the final reply
 * (leg_error(), client_eof_expired()) the client gets a 451 that says
 * so, which its log keeps (written now, a plain socket's at once, a TLS
 * one's records on their way out with io_free()), and the log names the
 * message at risk.  Before the dot nothing was delivered: no such word.
 */
static void
final_reply_cut(struct session *s)
{
	log_info("sid=%s event=final-reply-lost dst=%s why=%s "
	    "note=client-may-resend", s->id, s->dst_str,
	    "\"mxguard stopped (drain_timeout) before the final reply\"");
	cl_printf(s, "451 4.4.2 mxguard: shutting down before the final "
	    "reply from %s (in state %s)%s", s->dst_str,
	    state_names[s->state], final_unknown(s));
}

/* The drain has begun: each session that waits for its client with no
 * transaction under way ends (drain_idle(), from session_run()). */
void
session_drain_all(struct session_env *env)
{
	struct session *s;

	/* (a session ended here is freed from its reaper timer, later) */
	for (s = env->sessions; s != NULL; s = s->next)
		session_run(s);
}

void
session_abort_all(struct session_env *env)
{
	struct session *s;

	while ((s = env->sessions) != NULL) {
		if (!s->why[0])
			snprintf(s->why, sizeof(s->why), "mxguard stopped");
		if (final_unknown_p(s) && s->cl != NULL)
			final_reply_cut(s);
		session_free(s);
	}
}

/* Ends the session; the last reply to the client is flushed first (for
 * at most a few seconds). */
static void
session_close(struct session *s, const char *why)
{
	if (s->state == S_DEAD || s->state == S_CLOSING)
		return;
	if (!s->why[0])		/* for the close line */
		snprintf(s->why, sizeof(s->why), "%s", why);
	if (log_enabled(LOG_LVL_DEBUG)) {
		char q[300];

		log_debug("sid=%s event=closing why=%s", s->id,
		    log_q(q, sizeof(q), why));
	}
	if (s->preq) {
		policy_cancel(s->preq);
		s->preq = NULL;
	}
	if (s->ptimer)
		ev_timer_stop(s->ptimer);
	up_drop(s);
	if (s->cl && io_queued(s->cl) > 0) {
		s->state = S_CLOSING;
		io_pause(s->cl, 1);
		io_set_lowat(s->cl, 0);
		/* the last replies get 5 s in all: a client reading a byte
		 * now and then must not hold the session */
		io_set_deadline(s->cl, 5000);
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
	char text[512], line[600];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	snprintf(line, sizeof(line), "%s mxguard: %s", code, text);
	/* (a client that quit has its 221 already) */
	if (s->cl && s->state != S_CLIENT_TLS && !s->quit_client) {
		cl_printf(s, "%s", line);
		session_close(s, line);	/* the close line quotes it */
	} else
		session_close(s, text);
}

/* The server answered what (DATA, the end of the message) with a reply
 * that is neither what goes on nor a refusal: logged (event), and the
 * client gets status (a 4xx), so that it keeps the message. */
static void
bad_reply(struct session *s, const struct smtp_reply *r, const char *event,
    const char *status, const char *what, const char *tail)
{
	char q[SMTP_LINE_MAX * 2];
	const char *t;
	size_t tl;

	t = smtp_reply_text(r, r->nlines - 1, &tl);
	log_info("sid=%s event=%s dst=%s code=%d text=%s", s->id, event,
	    s->dst_str, r->code, log_qn(q, sizeof(q), t, tl));
	session_tempfail(s, status, "%s answered %s with %d%s", s->dst_str,
	    what, r->code, tail);
}

/* ---- state machine ----------------------------------------------------- */

static int
waits_for_client(enum sstate st)
{
	return st == S_WAIT_HELO || st == S_IDLE;
}

static void
session_enter(struct session *s, enum sstate st)
{
	const struct config *cfg = s->env->cfg;

	if (s->state == S_DEAD || s->state == S_CLOSING)
		return;
	log_debug("sid=%s event=state from=%s to=%s", s->id, state_names[s->state],
	    state_names[st]);
	s->state = st;

	/* timeouts: the client only while we wait for it */
	if (s->cl)
		io_set_timeout(s->cl, waits_for_client(st) ?
		    cfg->client_timeout : st == S_BODY ?
		    cfg->data_block_timeout : 0);

	switch (st) {
	case S_GREETING:
	case S_SECURE:
		break;
	case S_WAIT_HELO:
	case S_IDLE:
		/* never handled from inside a transition: session_run()
		 * does, when the event that led here has unwound */
		if (!s->cl_blocked)
			io_pause(s->cl, 0);
		s->client_due = 1;
		break;
	case S_EHLO:
		/* the leg drops what earlier commands are still owed (the
		 * client's STARTTLS came before them) */
		s->up_discard = 0;
		leg_hello(s->up, s->helo);
		break;
	case S_POLICY:
		if (s->ptimer == NULL)
			s->ptimer = ev_timer_new(s->env->loop, policy_expired,
			    s);
		/* a safety net only: the engine answers by policy_timeout
		 * (its timeout path has its own, documented deferrals) */
		if (s->ptimer != NULL)
			ev_timer_arm(s->ptimer, cfg->policy_timeout +
			    (s->env->policy_grace ? s->env->policy_grace :
			    POLICY_GRACE));
		break;
	case S_MAIL:
		mail_replay(s);
		break;
	case S_RCPT:
		if (s->rcpt_pipelined)
			s->rcpt_pipelined = 0;	/* sent with MAIL */
		else {
			char rl[SMTP_LINE_MAX + 1], why[256];

			/* (RCPT parameters are only ever dropped) */
			params_adapt(s, s->rcpt_line, rl, sizeof(rl), why,
			    sizeof(why));
			s->up_rcpts++;
			leg_command(s->up, 1, rl);
		}
		break;
	case S_DATA:
		leg_command(s->up, 1, "DATA");
		break;
	case S_BODY:
		s->after_data = 0;	/* what follows DATA is the body */
		leg_body_begin(s->up, BODY_LOWAT);
		smtp_data_init(&s->body);
		body_pump(s);
		break;
	case S_DATA_END:
		break;
	case S_RSET:
		leg_command(s->up, 1, "RSET");
		break;
	case S_QUIT:
		leg_quit(s->up);
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

static void retiring_tempfail(struct session *);
static void policy_ask(struct session *);
static void data_withheld(struct session *, const char *);

/* The leg or the last RCPT uses v: it may not be freed. */
static int
verdict_named(const struct session *s, const struct policy_verdict *v)
{
	return v == s->leg_verdict || v == s->cur_verdict;
}

/* Frees verdicts[i] and closes the gap. */
static void
verdict_remove(struct session *s, int i)
{
	policy_verdict_free(s->verdicts[i].v);
	memmove(&s->verdicts[i], &s->verdicts[i + 1],
	    (size_t)(s->nverdicts - i - 1) * sizeof(s->verdicts[0]));
	s->nverdicts--;
}

/* Forgets verdicts[i], unless the leg or the last RCPT still names it:
 * it then serves no one else, and goes when they name another
 * (verdicts_prune). */
static void
verdict_drop(struct session *s, int i)
{
	if (verdict_named(s, s->verdicts[i].v))
		s->verdicts[i].shared = 0;
	else
		verdict_remove(s, i);
}

/* After leg_verdict or cur_verdict changed: a verdict that serves no
 * later recipient (dropped for its age, or of a domain that did not
 * normalise) and that neither names any more is freed, rather than
 * hold one of the eight places until eviction pushes out one in use. */
static void
verdicts_prune(struct session *s)
{
	int i = 0;

	while (i < s->nverdicts)
		if (s->verdicts[i].shared || verdict_named(s,
		    s->verdicts[i].v))
			i++;
		else
			verdict_remove(s, i);	/* moves the rest down */
}

static struct policy_verdict *
verdict_find(struct session *s, const char *domain)
{
	uint64_t max_age = s->env->verdict_max_age ?
	    s->env->verdict_max_age : VERDICT_MAX_AGE;
	int i;

	/* a verdict of the configuration before a reload is not reused:
	 * the new one may demand more */
	for (i = 0; i < s->nverdicts; i++) {
		if (s->verdicts[i].gen != s->env->gen ||
		    !s->verdicts[i].shared ||
		    strcmp(s->verdicts[i].v->domain, domain) != 0)
			continue;
		/* nor one past its age, in a new transaction: the engine
		 * may know more of the domain by now (the transaction it
		 * last served keeps it, whatever its age) */
		if (s->verdicts[i].txn != s->txn &&
		    ev_boot_now(s->env->loop) - s->verdicts[i].at >=
		    max_age) {
			log_info("sid=%s event=verdict-stale domain=%s "
			    "why=max-age action=lookup-again", s->id, domain);
			verdict_drop(s, i);
			return NULL;
		}
		s->verdicts[i].txn = s->txn;
		return s->verdicts[i].v;
	}
	return NULL;
}

/* v's place in verdicts[], or -1. */
static int
verdict_slot(const struct session *s, const struct policy_verdict *v)
{
	int i;

	for (i = 0; i < s->nverdicts; i++)
		if (s->verdicts[i].v == v)
			return i;
	return -1;
}

/*
 * TLSRPT: the outcome of this session's upstream attempt under v, once
 * per report it counts in (policy_report_key(): the policy domain and
 * the policy it published, as the report groups them; one beyond the
 * set's room goes unreported rather than once per recipient).  result
 * NULL is a success, which RFC 8460 section 4.4 counts per negotiated
 * connection: a leg reused from an earlier session adds none for a
 * report it was counted in already (leg_count_domain()), or the counts
 * would follow how often the MTA reconnects; a domain's new policy is
 * another report, which the connection has not been counted in yet.  A
 * failure is this session's and counts as such.  The engine records it
 * only for domains that ask for reports.
 */
static void
report_attempt(struct session *s, const struct policy_verdict *v,
    const char *result, const char *detail)
{
	struct policy_attempt a;
	uint64_t key;

	/* a leg that never asked for STARTTLS (another recipient's
	 * override, level none, settled it) says nothing of this domain's
	 * MX: a failure here would be this gateway's choice, reported as
	 * the server's */
	if (result != NULL && s->up != NULL && leg_starttls_skipped(s->up))
		return;
	key = policy_report_key(v, (int64_t)time(NULL));
	if (domset_add(&s->reported, key) != 1)
		return;
	if (result == NULL && s->up != NULL &&
	    leg_count_domain(s->up, key) != 1)
		return;
	memset(&a, 0, sizeof(a));
	a.result = result;
	a.detail = detail;
	a.mx_addr = (const struct sockaddr *)&s->dst_addr;
	a.local_ip = s->up != NULL ? leg_local_ip(s->up) : NULL;
	a.greeting = s->up != NULL ? leg_greeting(s->up) : NULL;
	policy_report_attempt(s->env->policy, v, &a);
}

/* The leg is in cleartext because (why, the leg's reason) its TLS
 * handshake failed, a server that offered STARTTLS. */
static int
handshake_failed(const char *why)
{
	return why != NULL && strcmp(why, "tls-handshake-failed") == 0;
}

/* What cleartext under v is reported as: a failed handshake is
 * validation-failure, else the policy's own no-STARTTLS reason. */
static const char *
cleartext_reason(const struct policy_verdict *v, const char *why)
{
	return handshake_failed(why) ? "validation-failure" :
	    policy_no_starttls_reason(v);
}

/*
 * enforcement = monitor: the leg meets v, but would it meet what enforce
 * mode demands?  When not, one would-defer line and count per recipient,
 * and the report names the failure (the published policy failed, even if
 * the mail went), unless the leg was never tried against v's policy
 * (res->untried: as for an enforced recipient, nothing to report).
 * Returns 1 when it was a would-defer.
 */
static int
would_defer(struct session *s, const struct policy_verdict *v,
    const struct tls_result *res, const char *why, int n)
{
	const char *stage, *reason, *detail;
	char q[300], name[160];

	if (!v->monitor)
		return 0;
	if (v->would_level == TLS_LEVEL_DEFER) {
		stage = "policy";
		reason = v->reason[0] ? v->reason : "validation-failure";
		detail = v->detail;
	} else if (res != NULL && res->would_defer) {
		stage = "tls";
		reason = res->reason;
		detail = res->detail;
	} else if (v->would_level > TLS_LEVEL_MAY &&
	    (s->up == NULL || !leg_proof(s->up)->tls)) {
		stage = "starttls";
		reason = cleartext_reason(v, why);
		detail = handshake_failed(why) ? "TLS handshake failed; "
		    "delivered in cleartext" : "no TLS on this connection; "
		    "delivered in cleartext";
	} else
		return 0;
	if (n == 0)	/* counted already, when first judged */
		goto report;
	s->tx_would_defer += n;
	snprintf(name, sizeof(name), "mxguard_would_defer_total{stage=\"%s\"}",
	    stage);
	stats_add(stats_get(name, "enforcement = monitor: recipients enforce "
	    "mode would have deferred, delivered"), n);
	log_warn("sid=%s event=would-defer domain=%s dst=%s mx=%s source=%s "
	    "level=%s stage=%s reason=%s detail=%s action=delivered "
	    "enforcement=monitor", s->id, v->domain, s->dst_str,
	    v->mx_host[0] ? v->mx_host : "-", v->source,
	    tls_level_name(v->would_level), stage, reason,
	    log_q(q, sizeof(q), detail));
report:
	if (res == NULL || !res->would_defer || !res->untried)
		report_attempt(s, v, reason, detail);
	return 1;
}

/*
 * The leg meets v (enforced): what a report says of it.  A testing
 * policy's failed check (res, or one the engine knew: v->reason) is a
 * failure; so is cleartext, which only a verdict without TLS required
 * allows (why: the leg's reason for it).  A tls_policy "none" override
 * is the sender's own choice, nothing to report.  n: the recipients a
 * would-defer counts (0 when counted before: the same recipient judged
 * again after a reload).  1 when it was a would-defer.
 */
static int
report_met(struct session *s, const struct policy_verdict *v,
    const struct tls_result *res, const char *why, int n)
{
	if (would_defer(s, v, res, why, n))
		return 1;
	if (v->level == TLS_LEVEL_NONE)
		return 0;
	if (res != NULL && res->report_failed)
		report_attempt(s, v, res->reason, res->detail);
	else if (v->report_only && v->reason[0])
		report_attempt(s, v, v->reason, v->detail);
	else if (!leg_proof(s->up)->tls)
		report_attempt(s, v, cleartext_reason(v, why),
		    handshake_failed(why) ? "TLS handshake failed; "
		    "delivered in cleartext" : "the server did not offer "
		    "STARTTLS; delivered in cleartext");
	else
		report_attempt(s, v, NULL, NULL);
	return 0;
}

/* report_met() for the pending RCPT: a would-defer counted once, though
 * a reload has it judged again (secured_reask, rcpt_stale). */
static void
rcpt_met(struct session *s, const struct policy_verdict *v,
    const struct tls_result *res, const char *why)
{
	if (report_met(s, v, res, why, !s->rcpt_would))
		s->rcpt_would = 1;
}

/* Is the pending RCPT the session's first, whose failure is a 421 that
 * ends it?  Its own leg is not settled yet; an adopted one is, but has
 * carried none of this session's recipients (the MTA gets 421 and tries
 * its next MX either way). */
static int
first_rcpt(const struct session *s)
{
	return !up_settled(s) || s->reasked || (leg_reused(s->up) &&
	    s->leg_verdict == NULL);
}

/*
 * The server said 354 and a reload's re-judge does not let the message go
 * (data_rejudge): nothing of the body went, and nothing may, for an empty
 * or partial message ended by a dot would be delivered.  The upstream
 * connection is closed without the dot (the server discards the
 * transaction, RFC 5321 4.1.1.4) by the session_tempfail() that follows,
 * and the client's DATA gets its 4xx: the MTA keeps the message.
 */
static void
data_withheld(struct session *s, const char *why)
{
	log_info("sid=%s event=data-withheld dst=%s why=%s "
	    "action=close-upstream-without-dot", s->id, s->dst_str, why);
	free(s->held354);
	s->held354 = NULL;
}

/* A policy failure: 421 at the first RCPT of a session, which ends it,
 * 450 later; reported (TLSRPT) unless the connection was never tried
 * against v's policy (report 0). */
static void
policy_failed_as(struct session *s, const struct policy_verdict *v,
    const char *reason, const char *detail, int report)
{
	const char *enh = strcmp(reason, "starttls-not-supported") == 0 ||
	    strcmp(reason, "dane-required") == 0 ? "4.7.10" :
	    strncmp(reason, "certificate", 11) == 0 ||
	    strcmp(reason, "validation-failure") == 0 ||
	    strcmp(reason, "tlsa-invalid") == 0 ? "4.7.5" : "4.7.0";
	int first = first_rcpt(s);
	char d[300];

	s->policy_fails++;
	if (report)
		report_attempt(s, v, *reason ? reason : "validation-failure",
		    detail);
	stats_add(st_policy_fail, 1);
	stats_add(stats_get(*reason ? (snprintf(d, sizeof(d),
	    "mxguard_policy_failures_total{reason=\"%s\"}", reason), d) :
	    "mxguard_policy_failures_total{reason=\"unknown\"}",
	    "Policy failures by RFC 8460 result type"), 1);
	log_info("sid=%s event=policy-failure domain=%s dst=%s mx=%s "
	    "source=%s level=%s reason=%s detail=%s first_rcpt=%s", s->id,
	    v->domain, s->dst_str, v->mx_host[0] ? v->mx_host : "-",
	    v->source, tls_level_name(v->level), reason,
	    log_q(d, sizeof(d), detail), first ? "yes" : "no");
	if (s->held354 != NULL) {
		/* the server's 354 is held: the session ends without the
		 * dot, the MTA keeps the message (data_withheld) */
		data_withheld(s, "policy-not-met");
		snprintf(d, sizeof(d), "450 %s", enh);
		session_tempfail(s, d, "TLS policy of %s not met by this "
		    "connection (%s: %s)", v->domain, reason, detail);
		return;
	}
	if (first) {
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
policy_failed(struct session *s, const struct policy_verdict *v,
    const char *reason, const char *detail)
{
	policy_failed_as(s, v, reason, detail, 1);
}

/* The leg meets the first verdict: the envelope may go. */
static void
leg_secured(struct session *s, const struct smtp_reply *tls_ehlo)
{
	if (tls_ehlo != NULL) {
		ehlo_done(s, tls_ehlo);
		if (s->state == S_CLOSING || s->state == S_DEAD)
			return;
	}
	session_enter(s, S_MAIL);
}

/*
 * The leg was being secured for the first RCPT's verdict (STARTTLS, the
 * handshake, the EHLO after it: as long as the server, or an attacker on
 * the path who holds its packets, takes) and a reload came meanwhile: the
 * verdict is the old configuration's, and the new one may demand more
 * (a tls_policy line, require_tls).  The verdict's place in verdicts[],
 * or -1 when it is still of the configuration in force.
 */
static int
secured_stale(const struct session *s)
{
	int i = verdict_slot(s, s->cur_verdict);

	return i != -1 && s->verdicts[i].gen != s->env->gen ? i : -1;
}

/* The domain of verdicts[i] is looked up again, and its verdict judged
 * against what the leg proved (leg_fits), as a later recipient's would
 * be; a failure is still the first RCPT's 421 when first. */
static void
secured_reask(struct session *s, int i, const char *why, int first)
{
	const struct policy_verdict *v = s->verdicts[i].v;

	log_info("sid=%s event=verdict-stale domain=%s why=%s "
	    "action=lookup-again", s->id, v->domain, why);
	/* a verdict that serves others is of a domain that normalised:
	 * its name is the one to ask; else preq_dom was asked for it */
	if (s->verdicts[i].shared) {
		free(s->preq_dom);
		if ((s->preq_dom = strdup(v->domain)) == NULL) {
			session_tempfail(s, "421 4.3.0", "out of memory");
			return;
		}
		s->preq_shared = 1;
	}
	s->reasked = first;
	policy_ask(s);
}

/* The first RCPT decides what the upstream leg becomes; fresh: on a new
 * connection (a reused leg did not fit). */
static void
upstream_decide(struct session *s, struct policy_verdict *v, int fresh)
{
	struct tls_result res;

	s->leg_verdict = v;
	verdicts_prune(s);
	if (v->level == TLS_LEVEL_DEFER) {
		policy_failed(s, v, v->reason[0] ? v->reason :
		    "validation-failure", v->detail);
		return;
	}
	/* a new connection: replies the old one still owed (a pipelined
	 * RCPT after a refused MAIL) never come on it; the leg forgets its
	 * own count, so does the session, or the new connection's first
	 * replies would be taken for the old ones */
	if (fresh)
		s->up_discard = 0;
	session_enter(s, S_SECURE);
	switch (leg_secure(s->up, v, fresh, &res)) {
	case LEG_SECURE_READY:
		rcpt_met(s, v, &res, leg_proof(s->up)->tls ? NULL :
		    "decided");
		leg_secured(s, NULL);
		break;
	case LEG_SECURE_FAILED:
		policy_failed(s, v, res.reason, res.detail);
		break;
	case LEG_SECURE_ERROR:
		/* out of memory is ours (4.3.0), a reconnect that failed
		 * the network's (4.4.1) */
		session_tempfail(s, strcmp(res.reason, "internal-error") == 0 ?
		    "421 4.3.0" : "421 4.4.1", "%s", res.detail);
		break;
	default:
		break;		/* LEG_READY or LEG_TLS_FAILED follows */
	}
}

/*
 * A verdict that demands TLS of a leg in cleartext because its handshake
 * failed (the retry under a "may" or testing verdict: the first RCPT's,
 * or its old one before a reload, secured_reask): the failure is the
 * handshake's, as for a domain that demanded TLS from the start
 * (validation-failure), not a server without STARTTLS.
 */
static void
failed_handshake_cleartext(struct session *s, const struct policy_verdict *v,
    struct tls_result *res)
{
	const char *why = leg_cleartext_reason(s->up);

	if (leg_proof(s->up)->tls || !handshake_failed(why) ||
	    strcmp(res->reason, policy_no_starttls_reason(v)) != 0)
		return;
	snprintf(res->reason, sizeof(res->reason), "%s",
	    cleartext_reason(v, why));
	snprintf(res->detail, sizeof(res->detail), "TLS handshake failed; "
	    "this connection is not encrypted");
}

static void
rcpt_with_verdict(struct session *s, struct policy_verdict *v)
{
	struct tls_result res;
	int fit;

	s->cur_verdict = v;
	verdicts_prune(s);
	if (!up_settled(s)) {
		upstream_decide(s, v, 0);
		return;
	}
	/* a monitored recipient gets a fresh leg too where a reused one
	 * would make a would-defer a fresh one might not (enforce mode's
	 * behaviour, so the would-defer lines say what enforce would do) */
	fit = leg_fits(s->up, v, &res);
	failed_handshake_cleartext(s, v, &res);	/* a would-defer's too */
	if (fit == -1 || (res.would_defer &&
	    v->would_level != TLS_LEVEL_DEFER && leg_reused(s->up))) {
		if (leg_reused(s->up) && s->msgs == 0 && !s->tx_up_mail &&
		    v->level != TLS_LEVEL_DEFER) {
			/* a reused leg this recipient's policy does not
			 * accept: a connection of its own, as without reuse */
			log_info("sid=%s event=upstream-reuse-mismatch dst=%s "
			    "domain=%s reason=%s action=reconnect", s->id,
			    s->dst_str, v->domain, res.reason);
			upstream_decide(s, v, 1);
			return;
		}
		if (!res.would_defer) {
			policy_failed_as(s, v, res.reason, res.detail,
			    !res.untried);
			return;
		}
	}
	if (res.report_failed) {
		char q[300];

		log_info("sid=%s event=policy-report domain=%s mode=testing "
		    "reason=%s detail=%s", s->id, v->domain, res.reason,
		    log_q(q, sizeof(q), res.detail));
	}
	/* the leg's cleartext is what LEG_READY said it was (a failed
	 * handshake is not a server without STARTTLS), for the first RCPT
	 * asked again (secured_reask) and a later one alike */
	rcpt_met(s, v, &res, leg_cleartext_reason(s->up));
	/* an adopted leg's first fit; or the first RCPT asked again after
	 * a reload while its leg was secured: the old verdict is what the
	 * leg was made for, this one what the mail goes under (the
	 * delivery line names it) */
	if (s->leg_verdict == NULL || s->reasked) {
		s->leg_verdict = v;
		verdicts_prune(s);
	}
	rcpt_continue(s);
}

/*
 * MAIL went upstream and the pending RCPT is to follow it (the server
 * does not pipeline): a reload while MAIL waited for its reply (as long
 * as the server, or an attacker on the path who holds its packets,
 * takes) ended the RCPT's verdict, and the new one may demand more.  The
 * domain is looked up again and judged against the leg, as at LEG_READY
 * (secured_reask); a worker that could not apply the reload refuses the
 * recipient, not accepted yet.  1 when the RCPT does not go now.
 */
static int
rcpt_stale(struct session *s)
{
	int i;

	if (s->env->retiring) {
		retiring_tempfail(s);
		return 1;
	}
	if ((i = secured_stale(s)) == -1)
		return 0;
	/* the session's first RCPT (none went upstream yet) keeps its 421 */
	secured_reask(s, i, "reloaded-before-rcpt", s->up_rcpts == 0);
	return 1;
}

/* The upstream accepted the pending RCPT: its domain, with the
 * generation of its verdict, for the check before DATA.  -1 when it
 * cannot be kept (out of memory). */
static int
tx_dom_add(struct session *s)
{
	const char *dom = s->preq_shared ? s->rcpt_domain : s->preq_dom;
	int i = verdict_slot(s, s->cur_verdict);
	uint64_t gen = i != -1 ? s->verdicts[i].gen : UINT64_MAX;
	struct tx_dom *d;

	if (dom == NULL)
		return -1;
	for (i = 0; i < s->ntx_doms; i++)
		if (s->tx_doms[i].shared == s->preq_shared &&
		    strcmp(s->tx_doms[i].dom, dom) == 0) {
			/* the domain's newer verdict fitted the leg too */
			s->tx_doms[i].gen = gen;
			s->tx_doms[i].rcpts++;
			s->tx_doms[i].would += s->rcpt_would;
			return 0;
		}
	if ((d = reallocarray(s->tx_doms, (size_t)s->ntx_doms + 1,
	    sizeof(*d))) == NULL)
		return -1;
	s->tx_doms = d;
	d += s->ntx_doms;
	if ((d->dom = strdup(dom)) == NULL)
		return -1;
	d->gen = gen;
	d->shared = s->preq_shared;
	d->rcpts = 1;
	d->would = s->rcpt_would;
	s->ntx_doms++;
	return 0;
}

/* The first accepted domain of the transaction whose verdict is of an
 * older generation than the one in force, or -1. */
static int
tx_stale(const struct session *s)
{
	int i;

	for (i = 0; i < s->ntx_doms; i++)
		if (s->tx_doms[i].gen != s->env->gen)
			return i;
	return -1;
}

/* Before DATA goes: tx_doms[k] was accepted under a verdict a reload
 * ended since; its domain is looked up again (data_with_verdict). */
static void
data_rejudge(struct session *s, int k)
{
	const struct tx_dom *d = &s->tx_doms[k];

	log_info("sid=%s event=verdict-stale domain=%s why=reloaded-before-data "
	    "action=lookup-again", s->id, d->shared ? d->dom : "-");
	free(s->preq_dom);
	if ((s->preq_dom = strdup(d->dom)) == NULL) {
		if (s->held354 != NULL) {
			data_withheld(s, "out-of-memory");
			session_tempfail(s, "451 4.3.0", "out of memory");
			return;
		}
		/* DATA is answered; after a first domain that fitted the
		 * session is in POLICY, with no lookup or timer to end it */
		cl_printf(s, "451 4.3.0 mxguard: out of memory");
		session_enter(s, S_IDLE);
		return;
	}
	/* the name for replies and logs, as at RCPT */
	snprintf(s->rcpt_domain, sizeof(s->rcpt_domain), "%.*s",
	    (int)sizeof(s->rcpt_domain) - 1, d->dom);
	s->preq_shared = d->shared;
	s->reasked = 0;
	s->rejudge = k + 1;
	policy_ask(s);
}

/* Every accepted domain's verdict is of the configuration in force:
 * DATA goes, or the server's 354 held meanwhile goes to the client. */
static void
data_go(struct session *s)
{
	if (s->held354 == NULL) {
		session_enter(s, S_DATA);
		return;
	}
	io_write(s->cl, s->held354, s->held354_len);
	free(s->held354);
	s->held354 = NULL;
	session_enter(s, S_BODY);
}

/*
 * An accepted domain's new verdict before DATA, judged against the leg
 * as a later RCPT's would be.  When it does not fit, nothing of the
 * message has gone: DATA gets the 450 such a recipient would, and the
 * MTA keeps the message (the transaction stays open, as after the
 * server's own 4xx to DATA).  When it fits, the next stale domain, or
 * DATA.
 */
static void
data_with_verdict(struct session *s, struct policy_verdict *v)
{
	struct tx_dom *d = &s->tx_doms[s->rejudge - 1];
	struct tls_result res;
	int fit, i;

	s->rejudge = 0;
	s->cur_verdict = v;
	verdicts_prune(s);
	fit = leg_fits(s->up, v, &res);
	failed_handshake_cleartext(s, v, &res);
	if (fit == -1 && !res.would_defer) {
		policy_failed_as(s, v, res.reason, res.detail, !res.untried);
		return;
	}
	/* its recipients were counted at RCPT when they would have been
	 * deferred then: only those that were not are counted now */
	if (report_met(s, v, &res, leg_cleartext_reason(s->up),
	    d->rcpts - d->would))
		d->would = d->rcpts;
	/* the leg's own domain: the delivery line names the verdict the
	 * mail goes under */
	if (s->leg_verdict != NULL && d->shared &&
	    strcmp(s->leg_verdict->domain, d->dom) == 0 &&
	    (i = verdict_slot(s, s->leg_verdict)) != -1 &&
	    s->verdicts[i].gen != s->env->gen) {
		s->leg_verdict = v;
		verdicts_prune(s);
	}
	i = verdict_slot(s, v);
	d->gen = i != -1 ? s->verdicts[i].gen : UINT64_MAX;
	if ((i = tx_stale(s)) != -1) {
		data_rejudge(s, i);
		return;
	}
	data_go(s);
}

static void
policy_done(void *arg, struct policy_verdict *v)
{
	struct session *s = arg;
	char q[300];

	s->preq = NULL;
	if (s->ptimer)
		ev_timer_stop(s->ptimer);
	/* the policy engine logged why; this ties it to the session */
	log_info("sid=%s event=verdict domain=%s dst=%s mx=%s source=%s "
	    "level=%s%s%s%s%s%s", s->id, v->domain, s->dst_str,
	    v->mx_host[0] ? v->mx_host : "-", v->source,
	    tls_level_name(v->level), v->report_only ? " mode=testing" : "",
	    v->monitor ? " enforcement=monitor would_level=" : "",
	    v->monitor ? tls_level_name(v->would_level) : "",
	    v->reason[0] ? " reason=" : "", v->reason);
	if (v->level == TLS_LEVEL_DEFER && v->detail[0])
		log_debug("sid=%s event=verdict-detail detail=%s", s->id,
		    log_q(q, sizeof(q), v->detail));
	if (s->preq_gen != s->env->gen && !s->env->retiring) {
		/* begun before a reload, under the old tls_policy lines and
		 * switches (the engine reads them at the lookup's start),
		 * and the new configuration may demand more: asked again */
		log_info("sid=%s event=verdict-stale domain=%s "
		    "why=reloaded-during-lookup action=lookup-again", s->id,
		    v->domain);
		policy_verdict_free(v);
		policy_ask(s);
		session_run(s);
		return;
	}
	if (s->nverdicts == MAX_VERDICTS) {
		/* keep the list bounded: the oldest verdict that neither
		 * the leg nor the pending RCPT names goes (two at most are
		 * named, so one of the first three is free) */
		int i = 0;

		while (verdict_named(s, s->verdicts[i].v))
			i++;
		verdict_remove(s, i);
	}
	s->verdicts[s->nverdicts].v = v;
	s->verdicts[s->nverdicts].shared = s->preq_shared;
	s->verdicts[s->nverdicts].at = s->preq_at;
	s->verdicts[s->nverdicts].txn = s->txn;
	s->verdicts[s->nverdicts++].gen = s->preq_gen;
	if (s->env->retiring) {
		/* decided by the configuration this worker could not
		 * replace: not used */
		retiring_tempfail(s);
		return;
	}
	if (s->rejudge)
		data_with_verdict(s, v);
	else
		rcpt_with_verdict(s, v);
	session_run(s);
}

/* The engine did not answer long after policy_timeout: its bug, not a
 * policy decision.  The recipient is deferred. */
static void
policy_expired(void *arg)
{
	struct session *s = arg;

	if (s->state != S_POLICY)
		return;
	policy_cancel(s->preq);
	s->preq = NULL;
	s->rejudge = 0;
	log_warn("sid=%s event=internal-error what=\"no policy verdict for "
	    "%s long after policy_timeout\"", s->id, s->rcpt_domain);
	s->policy_fails++;
	/* the first RCPT as for a policy failure (an adopted leg's too) */
	if (s->held354 != NULL) {
		data_withheld(s, "no-verdict");
		session_tempfail(s, "451 4.3.0", "no TLS policy verdict for "
		    "%s (internal error); try again later", s->rcpt_domain);
	} else if (first_rcpt(s)) {
		session_tempfail(s, "421 4.3.0", "no TLS policy verdict for "
		    "%s (internal error); try again later", s->rcpt_domain);
	} else {
		cl_printf(s, "451 4.3.0 mxguard: no TLS policy verdict for %s "
		    "(internal error)", s->rcpt_domain);
		free(s->rcpt_line);
		s->rcpt_line = NULL;
		session_enter(s, S_IDLE);
	}
	session_run(s);
}

/* After the policy allowed the RCPT: MAIL first if not yet upstream. */
static void
rcpt_continue(struct session *s)
{
	s->reasked = 0;
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
	send_ehlo(s);
	session_enter(s, S_IDLE);
}

/*
 * This worker could not apply a reload the supervisor took: the verdicts
 * it would give follow the configuration the others no longer run, and
 * may demand less.  A new transaction or recipient ends the session with
 * 421 (the MTA retries, on a worker with the new configuration), and so
 * does a RCPT still to follow MAIL, or DATA, under a verdict from before:
 * another worker would judge it again (its generation never moves here),
 * and the server's 354 (data_354_stale: the upstream is closed without
 * the dot).  A message whose body is flowing goes on, as in any worker.
 */
static void
retiring_tempfail(struct session *s)
{
	if (s->held354 != NULL || s->state == S_DATA)
		data_withheld(s, "retiring");
	session_tempfail(s, "421 4.3.2", "this mxguard worker is restarting "
	    "on a new configuration; try again");
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
	if (s->rset_refused) {
		/* what the server still holds of the last transaction is
		 * not known: no transaction goes on this connection */
		session_tempfail(s, "421 4.5.0", "%s refused RSET; try again "
		    "on a new connection", s->dst_str);
		return;
	}
	if ((s->tx_mail = strdup(line)) == NULL) {
		cl_printf(s, "451 4.3.0 mxguard: out of memory");
		return;
	}
	s->txn++;
	/* for the summary line: a longer path (the upstream judges it) is
	 * cut there */
	snprintf(s->tx_from, sizeof(s->tx_from), "%.*s",
	    (int)sizeof(s->tx_from) - 1, cmd->path);
	/* nothing is committed yet: the upstream sees MAIL after the
	 * policy of the first recipient decided how to talk to it */
	cl_printf(s, "250 2.1.0 Ok");
}

static void
cmd_rcpt(struct session *s, const char *line, const struct smtp_cmd *cmd)
{
	struct policy_verdict *v;
	const char *dom = s->rcpt_domain;
	char nerr[160];

	s->reasked = 0;
	s->rcpt_would = 0;
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
	/* the engine's spelling (A-labels, lower case), which its verdicts
	 * carry: another recipient at a U-label domain finds the verdict
	 * as one at an ASCII domain does, instead of a lookup of its own
	 * for every recipient; what does not normalise goes as it came,
	 * whole (the engine refuses it, with its reason): the copy in
	 * rcpt_domain, cut to fit, only names it in logs and replies, as a
	 * cut name may be another, valid one */
	s->preq_shared = sts_domain_norm(cmd->domain, s->rcpt_domain,
	    sizeof(s->rcpt_domain), nerr, sizeof(nerr)) == 0;
	if (!s->preq_shared) {
		snprintf(s->rcpt_domain, sizeof(s->rcpt_domain), "%.*s",
		    (int)sizeof(s->rcpt_domain) - 1, cmd->domain);
		dom = cmd->domain;
	} else if ((v = verdict_find(s, dom)) != NULL) {
		rcpt_with_verdict(s, v);
		return;
	}
	free(s->preq_dom);
	if ((s->preq_dom = strdup(dom)) == NULL) {
		cl_printf(s, "451 4.3.0 mxguard: out of memory");
		return;
	}
	policy_ask(s);
}

/* The policy engine is asked about preq_dom under this configuration. */
static void
policy_ask(struct session *s)
{
	session_enter(s, S_POLICY);
	s->preq_gen = s->env->gen;
	s->preq_at = ev_boot_now(s->env->loop);
	s->preq = policy_lookup(s->env->policy, s->preq_dom,
	    (struct sockaddr *)&s->dst_addr, sa_len(&s->dst_addr), s->id,
	    policy_done, s);
	if (s->preq == NULL) {
		s->rejudge = 0;
		if (s->held354 != NULL) {
			data_withheld(s, "out-of-memory");
			session_tempfail(s, "451 4.3.0", "cannot evaluate the "
			    "TLS policy (out of memory)");
			return;
		}
		cl_printf(s, "451 4.3.0 mxguard: cannot evaluate the TLS "
		    "policy (out of memory)");
		session_enter(s, S_IDLE);
	}
}

static void
cmd_data(struct session *s)
{
	int k;

	if (s->tx_mail == NULL) {
		cl_printf(s, "503 5.5.1 Error: need MAIL command");
		return;
	}
	if (s->tx_rcpts_ok == 0) {
		cl_printf(s, "554 5.5.1 Error: no valid recipients");
		return;
	}
	/* the accepted recipients went under verdicts a reload this worker
	 * could not apply may have ended: not relayed (as at LEG_READY) */
	if (s->env->retiring) {
		retiring_tempfail(s);
		return;
	}
	/* a reload since an accepted recipient's verdict: judged again
	 * before the message goes (no lookup without a reload) */
	if ((k = tx_stale(s)) != -1) {
		data_rejudge(s, k);
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

/* "dst|client address[%scope]": a leg serves one client towards one MX.
 * A link-local address is one link's: fe80::1 on two links is two hosts,
 * or two sources the MTA chose (upstream_source binds the leg to the
 * link), so the scope is part of the key. */
static int
reuse_key(const struct session *s, char *buf, size_t sz)
{
	const struct sockaddr_in6 *c6 = (const void *)&s->client_addr;
	char a[INET6_ADDRSTRLEN];
	const void *ip = s->client_addr.ss_family == AF_INET6 ?
	    (const void *)&c6->sin6_addr :
	    (const void *)&((const struct sockaddr_in *)
	    (const void *)&s->client_addr)->sin_addr;
	unsigned scope = s->client_addr.ss_family == AF_INET6 ?
	    (unsigned)c6->sin6_scope_id : 0;
	int n;

	if (inet_ntop(s->client_addr.ss_family, ip, a, sizeof(a)) == NULL)
		return -1;
	if (scope != 0)
		n = snprintf(buf, sz, "%s|%s%%%u", s->dst_str, a, scope);
	else
		n = snprintf(buf, sz, "%s|%s", s->dst_str, a);
	return n < 0 || (size_t)n >= sz ? -1 : 0;
}

/* After the client's QUIT: an idle, proven TLS leg goes to the reuse
 * cache instead of being closed (leg_park() judges the leg itself).
 * Returns 1 if it went. */
static int
park_upstream(struct session *s)
{
	const struct config *cfg = s->env->cfg;
	unsigned long long out;
	char key[200];

	if (!cfg->upstream_reuse || s->env->draining || s->up == NULL ||
	    s->tx_up_mail || s->up_discard || s->rset_refused ||
	    s->state != S_IDLE ||
	    reuse_key(s, key, sizeof(key)) == -1)
		return 0;
	out = leg_bytes_out(s->up);
	if (leg_park(s->up, s->env->reuse, key, cfg->upstream_reuse_time,
	    cfg->upstream_reuse_time_limit, cfg->upstream_reuse_max) == -1)
		return 0;
	/* the leg belongs to the cache now, with a copy of its proof */
	s->up = NULL;
	s->up_out += out;
	return 1;
}

/* The client is done (its QUIT, its EOF, its failed TLS, the drain): an
 * upstream that has not refused gets QUIT and the session waits for its
 * 221 (S_QUIT); without one the session ends now. */
static void
client_done(struct session *s, const char *why)
{
	if (s->up && !up_refused(s)) {
		session_enter(s, S_QUIT);
		return;
	}
	session_close(s, why);
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
	client_done(s, "client quit");
}

/*
 * BDAT is refused (CHUNKING is never offered), but a client that sends
 * it anyway sends its chunk right behind it: those bytes are message
 * content, and read as commands they could make a transaction of their
 * own (SMTP smuggling).  The chunk is discarded as it arrives.  Its size
 * is 1*DIGIT (RFC 3030), leading zeros allowed.  One that cannot be read
 * (no digits, something else after them, or more than 18 significant
 * ones) leaves nothing to tell the chunk from commands: -1, and the
 * session ends with a 4xx (the MTA keeps the message).  Before, such a
 * size skipped nothing and the chunk was read as commands.
 */
static int
bdat_skip_set(struct session *s, const struct smtp_cmd *cmd)
{
	unsigned long long n = 0;
	size_t i, sig = 0;

	for (i = 0; i < cmd->arglen && cmd->arg[i] >= '0' &&
	    cmd->arg[i] <= '9'; i++) {
		if (n == 0 && cmd->arg[i] == '0')
			continue;	/* a leading zero */
		if (++sig > 18)
			return -1;
		n = n * 10 + (unsigned)(cmd->arg[i] - '0');
	}
	if (i == 0 || (i < cmd->arglen && cmd->arg[i] != ' '))
		return -1;
	s->bdat_skip = n;
	return 0;
}

static void
client_command(struct session *s, char *line, size_t len)
{
	struct smtp_cmd cmd;
	char bline[SMTP_LINE_MAX + 1];
	const char *err;

	if (log_enabled(LOG_LVL_DEBUG)) {
		char q[SMTP_LINE_MAX * 2];

		log_debug("sid=%s event=client-command text=%s", s->id,
		    log_qn(q, sizeof(q), line, len));
	}
	/* the verb even of a line that does not parse ("DATA x") */
	if (smtp_cmd_parse(line, len, &cmd, &err) == -1) {
		s->after_data = cmd.verb == SMTP_CMD_DATA;
		/* err starts with its enhanced status code */
		cl_printf(s, "%s %s", cmd.verb == SMTP_CMD_UNKNOWN ? "500" :
		    "501", err);
		return;
	}
	s->after_data = cmd.verb == SMTP_CMD_DATA;
	if (cmd.verb == SMTP_CMD_BDAT && bdat_skip_set(s, &cmd) == -1) {
		log_info("sid=%s event=bdat-size-unreadable client=%s "
		    "action=close", s->id, s->client_str);
		session_tempfail(s, "421 4.5.0", "BDAT without a chunk size "
		    "that can be read: its chunk cannot be told from "
		    "commands");
		return;
	}
	if (up_refused(s) && cmd.verb != SMTP_CMD_QUIT) {
		/* after a 554 greeting RFC 5321 (section 3.1) wants 503 to
		 * all but QUIT; after a 4xx one the refusal is for now,
		 * and a client that goes on must not read a 5xx into it */
		if (leg_refused(s->up) == 4)
			cl_printf(s, "451 4.3.0 Error: the server refused "
			    "service for now");
		else
			cl_printf(s, "503 5.5.0 Error: the server refused "
			    "service");
		return;
	}
	/* NOOP, HELP, EXPN, VRFY and RSET are processed normally before
	 * EHLO (RFC 5321 section 4.1.4), not refused with 503 */
	if (s->state == S_WAIT_HELO && cmd.verb != SMTP_CMD_EHLO &&
	    cmd.verb != SMTP_CMD_HELO && cmd.verb != SMTP_CMD_QUIT &&
	    cmd.verb != SMTP_CMD_NOOP && cmd.verb != SMTP_CMD_RSET &&
	    cmd.verb != SMTP_CMD_VRFY && cmd.verb != SMTP_CMD_EXPN &&
	    cmd.verb != SMTP_CMD_HELP && cmd.verb != SMTP_CMD_STARTTLS) {
		cl_printf(s, "503 5.5.1 Error: send HELO/EHLO first");
		return;
	}
	if (s->env->retiring && (cmd.verb == SMTP_CMD_MAIL ||
	    (cmd.verb == SMTP_CMD_RCPT && s->tx_mail != NULL))) {
		retiring_tempfail(s);
		return;
	}
	/* shutting down: a transaction begun now could be cut after its
	 * dot at the drain's deadline, and the MTA, without the reply,
	 * would send it again (a duplicate); one under way goes on */
	if (s->env->draining && cmd.verb == SMTP_CMD_MAIL) {
		session_tempfail(s, "421 4.3.2", "shutting down; "
		    "try again");
		return;
	}
	/* the client's side has ended: a transaction begun now could never
	 * have its message, so nothing of it goes upstream */
	if ((s->cl_eof || s->cl_fin) && cmd.verb == SMTP_CMD_MAIL) {
		log_info("sid=%s event=client-eof-command command=MAIL "
		    "action=refused", s->id);
		cl_printf(s, "421 4.3.0 mxguard: you closed your side of the "
		    "connection; no new transaction");
		client_eof_end(s, "client closed, then MAIL");
		return;
	}
	/* a path without < > goes upstream in them: what the server reads
	 * is the address judged here, whatever its parser makes of the
	 * client's form (the parser made sure the result fits a line) */
	if ((cmd.verb == SMTP_CMD_MAIL || cmd.verb == SMTP_CMD_RCPT) &&
	    cmd.bare) {
		smtp_cmd_bracket(&cmd, bline, sizeof(bline));
		line = bline;
		s->bare_paths++;
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

/*
 * The client's DATA was refused (by mxguard or the server: no 354 went to
 * it), and it had sent more behind DATA before it could have read that
 * reply.  DATA ends a group (RFC 2920 section 3.1), so those bytes are
 * its message, sent without waiting for the 354: read as commands, a line
 * of the message ("RCPT TO:<...>", "DATA", a transaction of its own) went
 * upstream, and its replies went to the client as answers to its own
 * later commands (SMTP smuggling, as for BDAT's chunk).  The client has
 * its refusal of DATA; the session ends without reading them.
 */
static void
pipelined_after_data(struct session *s)
{
	log_info("sid=%s event=pipelined-after-data client=%s bytes=%zu "
	    "action=close", s->id, s->client_str, io_datalen(s->cl));
	session_tempfail(s, "421 4.5.0", "you sent more behind DATA before "
	    "its reply (RFC 2920); closing");
}

/* Handles buffered client lines while the session waits for the client.
 * Called by session_run() only. */
static void
client_process(struct session *s)
{
	char *line;
	ssize_t n;

	while (waits_for_client(s->state) && s->cl != NULL) {
		if (s->after_data) {
			/* DATA refused: what came behind it is content */
			s->after_data = 0;
			if (io_datalen(s->cl) > 0) {
				pipelined_after_data(s);
				break;
			}
		}
		if (io_queued(s->cl) > CL_HIWAT) {
			/* the client does not read its replies: neither
			 * do we read its commands (IO_LOWAT resumes) */
			if (!s->cl_blocked)
				log_debug("sid=%s event=client-blocked "
				    "queued=%zu", s->id, io_queued(s->cl));
			s->cl_blocked = 1;
			io_pause(s->cl, 1);
			break;
		}
		if (s->bdat_skip > 0) {
			size_t k = io_datalen(s->cl);

			if (k > s->bdat_skip)
				k = (size_t)s->bdat_skip;
			io_drop(s->cl, k);
			s->bdat_skip -= k;
			if (s->bdat_skip > 0)
				break;	/* the rest of the chunk is due */
		}
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
}

/*
 * Draining (SIGTERM, or a worker retiring), and the session waits for its
 * client with no transaction under way: before its EHLO, or between
 * messages, its commands so far answered.  Nothing of a message is at
 * stake, and the client's next MAIL would get 421 anyway (client_command).
 * Left open, a client that keeps its connection between messages
 * (Sendmail's connection cache holds one up to ConnectionCacheTimeout,
 * 5 minutes) held the drain, the stop of the service or of a retiring
 * worker, for all of drain_timeout, to be cut then.  It gets the 421 now
 * (RFC 5321 section 3.8: a server that must shut down may send it at any
 * time), and the upstream its QUIT, as at a client's QUIT (never parked
 * while draining).  A transaction under way goes on to its end.
 */
static void
drain_idle(struct session *s)
{
	static const char line[] = "421 4.3.2 mxguard: shutting down; try "
	    "again";

	cl_printf(s, "%s", line);
	if (!s->why[0])		/* for the close line */
		snprintf(s->why, sizeof(s->why), "%s", line);
	s->quit_client = 1;	/* nothing more goes to the client */
	client_done(s, line);
}

/*
 * Does what transitions left to do, outside of them.  session_enter()
 * never handles client commands itself (a command would then run inside
 * the transition that led to it, and the next transition inside that
 * one); it marks them due.  Every entry into the session (the client's
 * io, the leg, the policy's answer, timers) ends here, and this loop
 * handles them, as OpenSMTPD's mta_enter_state() loops instead of
 * recursing.
 */
static void
session_run(struct session *s)
{
	if (s->running)
		return;		/* the outer loop goes on */
	s->running = 1;
	while (s->client_due && waits_for_client(s->state) && s->cl != NULL) {
		s->client_due = 0;
		client_process(s);
	}
	/* a client that half-closed after its dot (or whose FIN was seen
	 * while it was not read, client_eof()) has its final reply, and
	 * what it pipelined before its EOF is handled: no command is left
	 * to come */
	if (s->cl_eof && waits_for_client(s->state) && s->cl != NULL &&
	    !s->cl_blocked && !s->client_due)
		client_eof_end(s, s->msgs > 0 ? "client closed after the "
		    "final reply" : "client closed");
	if (s->env->draining && waits_for_client(s->state) && s->cl != NULL &&
	    s->tx_mail == NULL && !s->cl_blocked && !s->client_due &&
	    s->bdat_skip == 0)
		drain_idle(s);
	s->running = 0;
}

/*
 * The client's EOF (it shut down its sending side, or closed).  After
 * its dot the final reply is still owed: it is relayed, and what the
 * client pipelined before its EOF (a QUIT) is answered, as a client that
 * half-closes reads on; a reply lost here would make the MTA send the
 * message again (a duplicate if the server took it).  The rest of the
 * message, read before the EOF, is still relayed; it decides, within
 * data_done_timeout of the EOF (client_eof_deadline()).  Between
 * commands (WAIT_HELO, IDLE) the commands read before the EOF are
 * answered and the upstream gets QUIT.  Anywhere else (a command or the
 * message under way) the session ends at once: the upstream gets no dot
 * for a message the client did not finish, and discards it.
 */
static void
client_eof(struct session *s)
{
	s->cl_eof = 1;
	if (s->state == S_DATA_END) {
		client_eof_after_dot(s);
		return;
	}
	if (s->state == S_BODY && io_datalen(s->cl) > 0) {
		client_eof_deadline(s);
		return;		/* body_pump() decides */
	}
	if (waits_for_client(s->state))
		/* between commands (also a FIN seen while the client was
		 * not read, client_hangup(), whose EOF is read only now):
		 * what it sent before its EOF is answered, then the
		 * upstream gets QUIT (session_run(), client_eof_end()), so
		 * the server ends its side cleanly as for any client that
		 * quits, not with "lost connection" */
		return;
	session_close(s, "client closed");
}

/* The client closed after its dot (its EOF read, or its FIN seen while
 * held back): the final reply is still owed to it, within the deadline. */
static void
client_eof_after_dot(struct session *s)
{
	log_info("sid=%s event=client-eof state=%s action=wait-final-reply",
	    s->id, state_names[s->state]);
	client_eof_deadline(s);
}

/*
 * The client's FIN while it is not read (io_pause()).  What it sent
 * before its FIN waits unread in the socket.
 *
 * Before the server's greeting (the client is not read until then) it
 * can have sent no command it may send: the MTA gave up (its own
 * greeting timeout, a restart).  Nothing can come of the session, and
 * waiting for the greeting to read the EOF held an upstream connection
 * and a max_sessions slot for greeting_timeout, one more for each retry
 * of the MTA: the upstream is closed (no greeting yet, so no QUIT).
 *
 * Held back in the message (body_hold(): the server takes it more
 * slowly than the client sends it), whether its dot is among the rest is
 * not known until it is read, at the server's pace.  It is relayed as
 * before (its dot, if it comes, leads to DATA_END and the final reply
 * owed to a client that half-closed; the FIN without it to the end, no
 * dot upstream), but no longer than the deadline: unseen, the close left
 * the session to a server that took a segment per data_block_timeout,
 * for days.
 *
 * Wherever it comes, a MAIL the client pipelined before its FIN is
 * refused when it is read (cl_fin), as after an EOF read: its message
 * could never come, so nothing of it goes upstream.
 *
 * A client whose replies pile up (cl_blocked) and that closes has them
 * unread in its socket, which makes its close a reset (IO_ERROR, at
 * once); its FIN is a half-close by a client that may still read them,
 * and client_timeout bounds it as any client.
 */
static void
client_hangup(struct session *s)
{
	s->cl_fin = 1;
	switch (s->state) {
	case S_GREETING:
		log_info("sid=%s event=client-eof state=%s dst=%s "
		    "action=close", s->id, state_names[s->state], s->dst_str);
		session_close(s, "client closed before the greeting");
		break;
	case S_BODY:
		client_eof_deadline(s);
		break;
	case S_DATA_END:
		client_eof_after_dot(s);
		break;
	default:
		break;
	}
}

/*
 * Once the client has closed (its FIN seen, or its EOF read) before the
 * message is out and its final reply in, only the server paces the
 * session: a server that takes a small segment per data_block_timeout
 * (each one restarts it) held it, its max_sessions slot and two sockets,
 * for as long as mxguard had buffered (days).  The rest of the message
 * and the final reply get data_done_timeout from that moment, in all:
 * the leg's own timeouts run as before inside it.  Armed once.
 */
static void
client_eof_deadline(struct session *s)
{
	uint64_t ms = s->env->cfg->data_done_timeout;

	if (s->eof_timer == NULL && (s->eof_timer = ev_timer_new(
	    s->env->loop, client_eof_expired, s)) == NULL) {
		/* the bound cannot be kept: no dot goes upstream for it */
		session_tempfail(s, "451 4.3.0", "out of memory (in state "
		    "%s)", state_names[s->state]);
		return;
	}
	if (ev_timer_pending(s->eof_timer))
		return;
	if (s->state == S_BODY)
		log_info("sid=%s event=client-eof state=%s action=relay-rest "
		    "deadline_ms=%llu", s->id, state_names[s->state],
		    (unsigned long long)ms);
	ev_timer_arm(s->eof_timer, ms);
}

/* data_done_timeout after the client's close: in BODY its dot has not
 * been read, so none went upstream, and none will (nothing delivered,
 * the MTA sends it again); in DATA_END the final reply is lost, as at
 * the leg's own timeout, and the 451 says so (final_unknown()). */
static void
client_eof_expired(void *arg)
{
	struct session *s = arg;

	if (s->state == S_DEAD || s->state == S_CLOSING)
		return;
	if (s->state == S_BODY) {
		log_info("sid=%s event=client-eof-expired state=%s dst=%s "
		    "action=no-dot", s->id, state_names[s->state],
		    s->dst_str);
		session_tempfail(s, "451 4.4.2", "you closed in the message "
		    "and %s did not take the rest within data_done_timeout; "
		    "not delivered (in state %s)", s->dst_str,
		    state_names[s->state]);
	} else if (s->state == S_DATA_END) {
		if (final_unknown_p(s))
			log_info("sid=%s event=final-reply-lost dst=%s why=%s "
			    "note=client-may-resend", s->id, s->dst_str,
			    "\"no final reply within data_done_timeout of "
			    "the client's close\"");
		session_tempfail(s, "451 4.4.2", "no final reply from %s "
		    "within data_done_timeout of your close (in state %s)%s",
		    s->dst_str, state_names[s->state], final_unknown(s));
	}
	session_run(s);
}

/* The end of a session whose client half-closed: nothing more will come
 * from it.  The upstream gets QUIT (the leg is never parked, as for any
 * client that leaves without QUIT); the client has its replies. */
static void
client_eof_end(struct session *s, const char *why)
{
	if (!s->why[0])
		snprintf(s->why, sizeof(s->why), "%s", why);
	client_done(s, why);
}

/* ---- DATA -------------------------------------------------------------- */

/*
 * Back-pressure in BODY: the client is not read while the upstream's
 * output is above BODY_HIWAT.  Its data_block_timeout does not run
 * meanwhile: the client is not late, mxguard holds it back, and a 421
 * would make it send the message again.  The upstream leg's own
 * data_block_timeout (no byte taken in that long) bounds the wait.
 */
static void
body_hold(struct session *s, int hold)
{
	io_pause(s->cl, hold);
	io_set_timeout(s->cl, hold ? 0 : s->env->cfg->data_block_timeout);
}

/*
 * What the scanner made goes out in batches, not a write per line: a
 * line the clean path does not take (a dot-stuffed line, one with a bare
 * CR or LF) is scanned alone, and each went to leg_write() at once: a
 * send() of a few bytes in cleartext (TCP_NODELAY: a segment each), a
 * TLS record of its own under TLS.  A message of "." lines, which anyone
 * who can send mail through the MTA can write and the MTA dot-stuffs,
 * cost a million sends or records per 4 MB (100 to 200 times the CPU of
 * any other message of that size, and as many packets towards the MX).
 * Now scanned lines collect in `out`, and so do clean spans behind them
 * while it holds some, and `out` is written when it is about to hold
 * BODY_BATCH, before the client is held back, at the dot and at the end
 * of the pump.  Clean spans with nothing collected go out from the input
 * buffer as before (no copy).
 */
#define BODY_BATCH	IO_INBUF_MAX

static void
body_flush(struct session *s, const char *out, size_t *pend)
{
	if (*pend > 0)
		leg_write(s->up, out, *pend);
	*pend = 0;
}

static void
body_pump(struct session *s)
{
	static char out[3 * IO_INBUF_MAX + 16];
	enum smtp_data_status st = SMTP_DATA_MORE;
	const char *in, *lf;
	size_t len, used, made, pend = 0;

	while (s->state == S_BODY && io_datalen(s->cl) > 0) {
		if (leg_queued(s->up) + pend > BODY_HIWAT) {
			body_flush(s, out, &pend);
			body_hold(s, 1);	/* resumed at LEG_LOWAT */
			return;
		}
		in = io_data(s->cl);
		len = io_datalen(s->cl);
		/* Lines the scanner would copy unchanged go out from the
		 * input buffer (no copy, no per-line state machine), or
		 * join the batch when there is one; the scanner repairs,
		 * or ends, the rest a line at a time. */
		if ((used = smtp_data_clean(&s->body, in, len)) > 0) {
			if (pend > 0 && pend + used <= BODY_BATCH) {
				memcpy(out + pend, in, used);
				pend += used;
			} else {
				body_flush(s, out, &pend);
				leg_write(s->up, in, used);
			}
			io_drop(s->cl, used);
			continue;
		}
		if ((lf = memchr(in, '\n', len)) != NULL)
			len = (size_t)(lf - in) + 1;
		/* room for the scanner's worst case (each byte of the line
		 * made three), as `out` has for a whole input buffer */
		if (pend > 0 && (pend + 3 * len + 16 > sizeof(out) ||
		    pend >= BODY_BATCH))
			body_flush(s, out, &pend);
		st = smtp_data_scan(&s->body, in, len, out + pend,
		    sizeof(out) - pend, &used, &made);
		pend += made;
		io_drop(s->cl, used);
		if (st == SMTP_DATA_END) {
			body_flush(s, out, &pend);
			leg_body_end(s->up);
			if (s->body.bare_lf || s->body.bare_cr)
				log_info("sid=%s event=normalised bare_lf=%lu "
				    "bare_cr=%lu", s->id, s->body.bare_lf,
				    s->body.bare_cr);
			session_enter(s, S_DATA_END);
			if (s->cl_eof)	/* the EOF came with the dot */
				client_eof(s);
			return;
		}
	}
	body_flush(s, out, &pend);
	if (s->state == S_BODY && s->cl_eof && io_datalen(s->cl) == 0) {
		/* the client ended in the message: no dot goes upstream */
		session_close(s, "client closed");
		return;
	}
	if (s->state == S_BODY && io_paused(s->cl) &&
	    leg_queued(s->up) <= BODY_HIWAT)
		body_hold(s, 0);
}

/* The summary line's recipient domains: those the upstream accepted a
 * recipient for, each once, as long as they fit. */
static void
tx_add_domain(struct session *s, const char *d)
{
	size_t n = strlen(s->tx_domains), dl = strlen(d);
	const char *p;

	for (p = s->tx_domains; dl > 0 && (p = strstr(p, d)) != NULL; p++)
		if ((p == s->tx_domains || p[-1] == ',') &&
		    (p[dl] == ',' || p[dl] == '\0'))
			return;
	if (dl > 0 && n + dl + 2 <= sizeof(s->tx_domains))
		snprintf(s->tx_domains + n, sizeof(s->tx_domains) - n, "%s%s",
		    n ? "," : "", d);
}

/*
 * One line per message with everything an operator asks about it: where
 * it went, under which policy, over what TLS, verified how, and what the
 * upstream said (its whole final reply line, code included).
 */
static void
delivery_summary(struct session *s, const struct smtp_reply *r)
{
	const struct policy_verdict *v = s->leg_verdict;
	char qd[300], qm[300], qr[600], qc[80], qp[40], qv[80];
	size_t tl;
	const char *t = smtp_reply_text(r, r->nlines - 1, &tl);
	char reply[512];

	snprintf(reply, sizeof(reply), "%d %.*s", r->code, (int)tl, t);
	log_info("sid=%s event=delivery domains=%s dst=%s mx=%s "
	    "policy_source=%s policy_level=%s%s tls=%s cipher=%s verify=%s "
	    "reply=%s%s%s", s->id, log_q(qd, sizeof(qd), s->tx_domains),
	    s->dst_str,
	    log_q(qm, sizeof(qm), v ? v->mx_host : ""),
	    v && v->source ? v->source : "none",
	    v ? tls_level_name(v->level) : "none",
	    s->tx_would_defer ? " enforcement=monitor would_defer=yes" :
	    v && v->monitor ? " enforcement=monitor would_defer=no" : "",
	    log_q(qp, sizeof(qp), s->up && *leg_tls_proto(s->up) ?
	    leg_tls_proto(s->up) : "none"),
	    log_q(qc, sizeof(qc), s->up && *leg_tls_cipher(s->up) ?
	    leg_tls_cipher(s->up) : "none"),
	    log_q(qv, sizeof(qv), s->up && *leg_tls_verify(s->up) ?
	    leg_tls_verify(s->up) : "none"),
	    log_q(qr, sizeof(qr), reply),
	    v && v->dane_note ? " dane=not-applicable dane_reason=" : "",
	    v && v->dane_note ? v->dane_note : "");
}

static void
message_done(struct session *s, const struct smtp_reply *r)
{
	char q[300], qf[SMTP_PATH_MAX * 2 + 16];
	size_t tl;
	const char *t = smtp_reply_text(r, r->nlines - 1, &tl);

	s->msgs++;
	stats_add(r->code / 100 == 2 ? st_msgs_ok : st_msgs_fail, 1);
	log_info("sid=%s event=message from=%s rcpts=%d size=%llu "
	    "tls=%s result=%s reply=%s", s->id, log_q(qf, sizeof(qf),
	    s->tx_from), s->tx_rcpts_ok,
	    s->body.bytes_in, s->up && *leg_tls_proto(s->up) ?
	    leg_tls_proto(s->up) : "none",
	    r->code / 100 == 2 ? "accepted" : r->code / 100 == 4 ?
	    "deferred" : "rejected", log_qn(q, sizeof(q), t, tl));
	delivery_summary(s, r);
}

/* ---- MAIL and RCPT parameters across STARTTLS -------------------------- */

/*
 * The client was offered the extensions of the server's cleartext EHLO;
 * its MAIL and RCPT are replayed after the EHLO inside TLS, whose
 * extensions may differ.  That difference is ours to absorb: it must
 * never become a permanent failure for the MTA.  A parameter whose
 * extension is gone is dropped where that is harmless (SIZE, and the DSN
 * parameters RET, ENVID, NOTIFY, ORCPT: the server then simply does not
 * know them), and otherwise the recipient gets a 4xx with the reason
 * (BODY=8BITMIME: no downgrade here, it would corrupt the message;
 * SMTPUTF8: the message may carry UTF-8 headers).
 */
static int
param_is(const char *p, size_t n, const char *key)
{
	size_t k = strlen(key);

	return n >= k && strncasecmp(p, key, k) == 0 &&
	    (n == k || p[k] == '=');
}

/* The reply's words for an extension the leg lacks: taken back inside
 * TLS, or never offered (a client using it unoffered is told so, not
 * that the server changed). */
static const char *
before(const struct session *s, unsigned cap)
{
	return (s->offered.flags & cap) ? " after STARTTLS (it did before)" :
	    " (and never did: it was not offered to you)";
}

/* Writes line with the parameters the leg's EHLO does not cover dropped
 * into out.  -1 (why: a reply for the client) when a parameter can be
 * neither dropped nor kept. */
static int
params_adapt(struct session *s, const char *line, char *out, size_t outsz,
    char *why, size_t whysz)
{
	unsigned c = leg_caps(s->up)->flags;
	struct smtp_cmd cmd;
	const char *err, *p, *end;
	size_t len = strlen(line), o, n;
	int dropped = 0;

	snprintf(out, outsz, "%s", line);
	if (smtp_cmd_parse(line, len, &cmd, &err) == -1 ||
	    cmd.params == NULL || cmd.paramslen == 0)
		return 0;
	o = (size_t)(cmd.params - line);
	while (o > 0 && line[o - 1] == ' ')
		o--;
	if (o >= outsz)
		return 0;
	memcpy(out, line, o);
	out[o] = '\0';
	p = cmd.params;
	end = cmd.params + cmd.paramslen;
	while (p < end) {
		while (p < end && *p == ' ')
			p++;
		for (n = 0; p + n < end && p[n] != ' '; n++)
			;
		if (n == 0)
			break;
		if (cmd.verb == SMTP_CMD_MAIL && param_is(p, n, "BODY") &&
		    !(c & SMTP_CAP_8BITMIME)) {
			if (n > 5 && strncasecmp(p + 5, "8BITMIME", n - 5) ==
			    0 && n - 5 == 8) {
				snprintf(why, whysz, "451 4.6.3 mxguard: %s "
				    "does not offer 8BITMIME%s; try again "
				    "later", s->dst_str, before(s,
				    SMTP_CAP_8BITMIME));
				return -1;
			}
			dropped = 1;		/* BODY=7BIT is the default */
		} else if (cmd.verb == SMTP_CMD_MAIL &&
		    param_is(p, n, "SMTPUTF8") && !(c & SMTP_CAP_SMTPUTF8)) {
			snprintf(why, whysz, "451 4.6.7 mxguard: %s does not "
			    "offer SMTPUTF8%s; try again later", s->dst_str,
			    before(s, SMTP_CAP_SMTPUTF8));
			return -1;
		} else if ((cmd.verb == SMTP_CMD_MAIL &&
		    param_is(p, n, "SIZE") && !(c & SMTP_CAP_SIZE)) ||
		    (!(c & SMTP_CAP_DSN) && (param_is(p, n, "RET") ||
		    param_is(p, n, "ENVID") || param_is(p, n, "NOTIFY") ||
		    param_is(p, n, "ORCPT")))) {
			dropped = 1;
		} else if (o + 1 + n < outsz) {
			out[o++] = ' ';
			memcpy(out + o, p, n);
			out[o += n] = '\0';
		}
		p += n;
	}
	if (dropped) {
		char q[600];

		log_info("sid=%s event=params-adapted dst=%s command=%s "
		    "sent=%s why=extensions-changed-after-starttls", s->id,
		    s->dst_str, smtp_verb_name(cmd.verb),
		    log_q(q, sizeof(q), out));
	}
	return 0;
}

/* Did the server take back, inside TLS, an extension the client was
 * offered?  (Its SIZE limit is no such promise: the client was offered
 * SIZE without one, and a 552 for a message over the limit inside TLS
 * is the server's own answer, as the MTA would have met it there.) */
static int
caps_shrank(const struct session *s)
{
	const struct smtp_caps *now = leg_caps(s->up);
	unsigned mask = SMTP_CAP_SIZE | SMTP_CAP_8BITMIME |
	    SMTP_CAP_SMTPUTF8 | SMTP_CAP_DSN;

	return (s->offered.flags & ~now->flags & mask) != 0;
}

/* MAIL replayed upstream, with its parameters fitted to the leg. */
static void
mail_replay(struct session *s)
{
	char ml[SMTP_LINE_MAX + 1], rl[SMTP_LINE_MAX + 1], why[256];

	if (params_adapt(s, s->tx_mail, ml, sizeof(ml), why,
	    sizeof(why)) == -1) {
		char q[600];

		log_info("sid=%s event=mail-deferred dst=%s "
		    "why=extensions-changed-after-starttls reply=%s",
		    s->id, s->dst_str, log_q(q, sizeof(q), why));
		if (asprintf(&s->tx_mail_fail, "%s\r\n", why) == -1)
			s->tx_mail_fail = NULL;
		cl_printf(s, "%s", why);
		free(s->rcpt_line);
		s->rcpt_line = NULL;
		session_enter(s, S_IDLE);
		return;
	}
	if ((leg_caps(s->up)->flags & SMTP_CAP_PIPELINING) && s->rcpt_line) {
		params_adapt(s, s->rcpt_line, rl, sizeof(rl), why,
		    sizeof(why));
		s->rcpt_pipelined = 1;
		s->up_rcpts++;
		leg_command2(s->up, ml, rl);
	} else
		leg_command(s->up, 1, ml);
}

/* A 5xx to the replayed MAIL from a server whose extensions changed
 * across STARTTLS: the client was promised what the server took back,
 * so this is not the MTA's permanent failure.  Its RCPTs get a 4xx. */
static void
mail_refused_softly(struct session *s, const struct smtp_reply *r)
{
	char enh[16], q[300];
	size_t tl;
	const char *t = smtp_reply_text(r, r->nlines - 1, &tl);
	int code = r->code == 552 ? 452 : r->code == 555 ? 455 : 451;

	smtp_reply_enhanced(r, enh, sizeof(enh));
	if (enh[0] == '5')
		enh[0] = '4';
	else
		snprintf(enh, sizeof(enh), "4.5.4");
	free(s->tx_mail_fail);
	if (asprintf(&s->tx_mail_fail, "%d %s mxguard: %s refused MAIL "
	    "after STARTTLS, where its extensions differ from those offered "
	    "before (%d %s); try again later\r\n", code, enh, s->dst_str,
	    r->code, log_qn(q, sizeof(q), t, tl)) == -1)
		s->tx_mail_fail = NULL;
	log_info("sid=%s event=mail-softened dst=%s code=%d "
	    "why=extensions-changed-after-starttls", s->id, s->dst_str,
	    r->code);
	if (s->tx_mail_fail)
		io_write(s->cl, s->tx_mail_fail, strlen(s->tx_mail_fail));
	else
		cl_printf(s, "451 4.3.0 mxguard: out of memory");
	session_enter(s, S_IDLE);
}

/* A reply's text, every line's, joined by spaces, printable only (it
 * becomes part of a line of mxguard's own). */
static void
reply_flat(const struct smtp_reply *r, char *text, size_t sz)
{
	size_t o = 0, tl, k;
	const char *t;
	int i;

	for (i = 0; i < r->nlines && o + 2 < sz; i++) {
		t = smtp_reply_text(r, i, &tl);
		if (o > 0)
			text[o++] = ' ';
		for (k = 0; k < tl && o + 1 < sz; k++)
			text[o++] = t[k] < ' ' || t[k] == 0x7f ? '?' : t[k];
	}
	text[o] = '\0';
}

/*
 * The upstream refused the replayed MAIL.  The client, told 250 for its
 * MAIL, hears of it at RCPT, and so does every later RCPT of the
 * transaction (tx_mail_fail).  A 4xx goes as it came: the MTA keeps the
 * mail.  A 5xx becomes 550 with the server's reply in its text: at RCPT
 * a 552 is "too many recipients" to a client that follows RFC 5321
 * (section 4.5.3.1.10: read it as 452), which would keep a message the
 * server refused for good (its size) queued for days; 550 is permanent
 * at RCPT for every client, and the text says it was MAIL the server
 * refused, not the recipient.
 */
static void
mail_refused(struct session *s, const struct smtp_reply *r)
{
	char enh[16], text[400], q[600];

	free(s->tx_mail_fail);
	s->tx_mail_fail = NULL;
	reply_flat(r, text, sizeof(text));
	log_info("sid=%s event=mail-refused dst=%s code=%d text=%s", s->id,
	    s->dst_str, r->code, log_q(q, sizeof(q), text));
	if (r->code / 100 != 5) {
		if ((s->tx_mail_fail = malloc(r->len + 1)) != NULL) {
			memcpy(s->tx_mail_fail, r->buf, r->len);
			s->tx_mail_fail[r->len] = '\0';
		}
	} else {
		smtp_reply_enhanced(r, enh, sizeof(enh));
		if (enh[0] == '\0')
			snprintf(enh, sizeof(enh), "%s", r->code == 552 ?
			    "5.3.4" : "5.0.0");
		if (asprintf(&s->tx_mail_fail, "550 %s mxguard: %s refused "
		    "MAIL FROM: %d %s\r\n", enh, s->dst_str, r->code,
		    text) == -1)
			s->tx_mail_fail = NULL;
	}
	if (s->tx_mail_fail)
		io_write(s->cl, s->tx_mail_fail, strlen(s->tx_mail_fail));
	else
		cl_printf(s, "451 4.3.0 mxguard: out of memory");
}

/* Whether t[0..n) is one of words, ignoring case; a word ending in '*'
 * takes any ending ("encrypt*": encryption, encrypted). */
static int
is_word(const char *t, size_t n, const char *const *words)
{
	const char *w;
	size_t wl;
	int m, star;

	for (m = 0; (w = words[m]) != NULL; m++) {
		wl = strlen(w);
		star = wl > 0 && w[wl - 1] == '*';
		wl -= star;
		if ((n == wl || (star && n > wl)) &&
		    strncasecmp(t, w, wl) == 0)
			return 1;
	}
	return 0;
}

/* Whether the run t[0..n) is an address or a host name: an '@', or a
 * '.' before a letter ("tls.example"; not "5.7.1" or "TLSv1.2"). */
static int
is_name(const char *t, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (t[i] == '@' || (t[i] == '.' && i + 1 < n &&
		    isalpha((unsigned char)t[i + 1])))
			return 1;
	return 0;
}

/*
 * Whether a line of r names one of words (is_word) as a word of its own.
 * A run of letters and digits with '.', '-', '_' and '@' inside it is an
 * address or a host name when is_name() says so, and names no word:
 * "<bob@tls.example>", "mtls-filter.example".  Any other run is split
 * at '-' and '_' into words, a trailing '.' (the end of a sentence) no
 * part of the last: so "TLS.", "SSL/TLS", "(STARTTLS)", "non-TLS",
 * "STARTTLS-required" and "TLSv1.2" (with "tlsv1*" in words) name TLS,
 * and "mtls" does not.
 */
static int
names_word(const struct smtp_reply *r, const char *const *words)
{
	const char *t;
	size_t tl, i, j, n, a, b;
	int k;

	for (k = 0; k < r->nlines; k++) {
		t = smtp_reply_text(r, k, &tl);
		for (i = 0; i < tl; i = j) {
			for (j = i; j < tl && (isalnum((unsigned char)t[j]) ||
			    (t[j] != '\0' && strchr(".-_@", t[j]) != NULL));
			    j++)
				;
			n = j - i;
			while (n > 0 && t[i + n - 1] == '.')
				n--;
			if (n > 0 && !is_name(t + i, n))
				for (a = 0; a < n; a = b + 1) {
					for (b = a; b < n && t[i + b] != '-' &&
					    t[i + b] != '_'; b++)
						;
					if (b > a && is_word(t + i + a, b - a,
					    words))
						return 1;
				}
			if (j == i)
				j++;
		}
	}
	return 0;
}

/*
 * A 5xx that asks for TLS: any 530 (RFC 3207's "Must issue a STARTTLS
 * command first"), X.7.10 ("encryption needed", RFC 5248), and X.7.0,
 * X.7.1, X.7.11 or a 5xx without an enhanced code whose text names TLS
 * (also "TLSv1.2"), STARTTLS or encryption as a word ("550 5.7.1 TLS
 * required", "554 5.7.1 Must issue a STARTTLS command first", "550
 * 5.7.1 non-TLS connections refused"; Exim, which has no enhanced
 * codes: "550 TLS required", "550 Encryption required").  X.7.0 and
 * X.7.1 are also the codes of every other policy refusal (relay denied,
 * SPF, spam, a content filter's ban) whose text often quotes an address
 * or a host name: those stay refusals, hence the word (names_word()):
 * "<c@mtls.example>" or "encrypted.zip" names no TLS.  The reply to the
 * message's end (content: the server has judged the message) takes
 * those words without encryption: there "554 5.7.1 Encrypted
 * attachments are not allowed" is about the message, a refusal for
 * good, not a wish for TLS.
 */
static int
asks_for_tls(const struct smtp_reply *r, int content)
{
	static const char *const tls_words[] = {
		"tls", "starttls", "tlsv1*", "tls1*", "encrypt*",
		"unencrypt*", NULL,
	};
	static const char *const tls_only[] = {
		"tls", "starttls", "tlsv1*", "tls1*", NULL,
	};
	const char *const *words = content ? tls_only : tls_words;
	char enh[16];

	if (r->code == 530)
		return 1;
	if (r->code / 100 != 5)
		return 0;
	smtp_reply_enhanced(r, enh, sizeof(enh));
	if (enh[0] == '\0')
		return names_word(r, words);
	if (strcmp(enh, "5.7.10") == 0)
		return 1;
	if (strcmp(enh, "5.7.1") == 0 || strcmp(enh, "5.7.0") == 0 ||
	    strcmp(enh, "5.7.11") == 0)
		return names_word(r, words);
	return 0;
}

/*
 * The server refused cmd with a 5xx that asks for TLS (asks_for_tls), on
 * a leg in cleartext.  That is no verdict on the message: the TLS the
 * server asks for failed for now (the cleartext retry after a failed
 * handshake; a refused STARTTLS), was not offered on this connection
 * (stripped on the path, or the server's own misconfiguration: RFC 3207
 * forbids a public MX to require it), or was turned off for the domain
 * (tls_policy none).  Relayed, the 5xx would bounce the mail; out gets a
 * 451 4.7.0 that says why (no CRLF), and the MTA keeps the mail.
 * Returns 0, out untouched, for any other reply or a TLS leg.
 */
static int
tls_refusal_softened(struct session *s, const struct smtp_reply *r,
    const char *cmd, char *out, size_t outsz)
{
	const char *why = s->up != NULL ? leg_cleartext_reason(s->up) : "";
	const char *how;
	char text[200], q[300];

	/* in DATA_END the reply judges the message's content */
	if (*why == '\0' || !asks_for_tls(r, s->state == S_DATA_END))
		return 0;
	if (strcmp(why, "tls-handshake-failed") == 0)
		how = "the TLS handshake with it failed";
	else if (strcmp(why, "starttls-refused") == 0)
		how = "refused it";
	else if (strcmp(why, "starttls-not-offered") == 0)
		how = "did not offer it on this connection";
	else if (strcmp(why, "policy-none") == 0)
		how = "tls_policy none keeps this connection in cleartext";
	else
		how = "this connection is in cleartext";
	reply_flat(r, text, sizeof(text));
	log_info("sid=%s event=tls-required dst=%s command=%s code=%d "
	    "cleartext=%s action=deferred text=%s", s->id, s->dst_str, cmd,
	    r->code, why, log_q(q, sizeof(q), text));
	snprintf(out, outsz, "451 4.7.0 mxguard: %s requires STARTTLS and "
	    "%s; try again later (%s refused: %d %s)", s->dst_str, how, cmd,
	    r->code, text);
	return 1;
}

/* A refusal of the replayed MAIL that asks for TLS: its RCPTs get the
 * softened reply (tls_refusal_softened).  Returns 0 for any other. */
static int
mail_refused_tls(struct session *s, const struct smtp_reply *r)
{
	char line[512];

	if (!tls_refusal_softened(s, r, "MAIL", line, sizeof(line)))
		return 0;
	free(s->tx_mail_fail);
	if (asprintf(&s->tx_mail_fail, "%s\r\n", line) == -1) {
		s->tx_mail_fail = NULL;
		cl_printf(s, "451 4.3.0 mxguard: out of memory");
		return 1;
	}
	io_write(s->cl, s->tx_mail_fail, strlen(s->tx_mail_fail));
	return 1;
}

/* A refusal of RCPT or DATA goes to the client as it came, or softened
 * (tls_refusal_softened). */
static void
refusal_relay(struct session *s, const struct smtp_reply *r, const char *cmd)
{
	char line[512];

	if (tls_refusal_softened(s, r, cmd, line, sizeof(line)))
		cl_printf(s, "%s", line);
	else
		cl_relay(s, r);
}

/* ---- upstream replies -------------------------------------------------- */

/* The reply to EHLO (or HELO) becomes the one the client gets. */
static void
ehlo_done(struct session *s, const struct smtp_reply *r)
{
	char buf[SMTP_REPLY_MAX];
	size_t n, tl;
	const char *t = smtp_reply_text(r, 0, &tl);

	snprintf(s->banner, sizeof(s->banner), "%.*s", (int)tl, t);
	smtp_caps_parse(r, &s->reply_caps);
	s->reply_caps.flags &= RELAYED_CAPS;
	/* SIZE is offered without its limit (smtp_caps_filter): none was
	 * promised */
	s->reply_caps.size = 0;
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

static void
helo_done(struct session *s, const struct smtp_reply *r)
{
	size_t tl;
	const char *t = smtp_reply_text(r, 0, &tl);

	snprintf(s->banner, sizeof(s->banner), "%.*s", (int)tl, t);
	memset(&s->reply_caps, 0, sizeof(s->reply_caps));
	free(s->ehlo_reply);
	if (asprintf(&s->ehlo_reply, "250 %s\r\n", s->banner) == -1) {
		s->ehlo_reply = NULL;
		session_tempfail(s, "421 4.3.0", "out of memory");
		return;
	}
	s->ehlo_reply_len = strlen(s->ehlo_reply);
}

/*
 * The upstream's reply to RSET: the client's own, or the session's for a
 * repeated EHLO (internal_rset: the client gets its EHLO reply).  The
 * session forgot the transaction when it sent RSET; a reply other than
 * 2xx means the server may not have (RFC 5321 knows no other reply to
 * RSET), so this connection carries no more transactions: the client's
 * next MAIL gets 421, and the leg is closed, never parked (unless an
 * EHLO the server accepts resets it first: rset_refused_cleared).  A
 * client's RSET gets the reply as it came; a 421 (the server is closing)
 * ends the session at once.
 */
static void
rset_done(struct session *s, const struct smtp_reply *r)
{
	int internal = s->internal_rset;
	char q[300];
	size_t tl;
	const char *t;

	s->internal_rset = 0;
	if (r->code / 100 != 2) {
		t = smtp_reply_text(r, r->nlines - 1, &tl);
		log_info("sid=%s event=rset-refused dst=%s code=%d text=%s "
		    "asked_by=%s", s->id, s->dst_str, r->code,
		    log_qn(q, sizeof(q), t, tl), internal ? "mxguard" :
		    "client");
		s->rset_refused = 1;
		if (r->code == 421) {
			cl_relay(s, r);
			snprintf(q, sizeof(q), "%s answered RSET with 421",
			    s->dst_str);
			session_close(s, q);
			return;
		}
	}
	if (internal)
		send_ehlo(s);
	else
		cl_relay(s, r);
	session_enter(s, S_IDLE);
}

/*
 * The EHLO after the client's own STARTTLS went upstream and the server
 * accepted it: that resets its state as an RSET would (RFC 5321 section
 * 4.1.4), so what its refused RSET left is gone and the connection may
 * carry transactions again.  (A HELO, where the server refused EHLO, is
 * not relied on for that.)
 */
static void
rset_refused_cleared(struct session *s)
{
	s->rset_refused = 0;
	log_info("sid=%s event=rset-refused-cleared dst=%s "
	    "why=ehlo-accepted-after-starttls", s->id, s->dst_str);
}

/*
 * The server's 354: nothing of the body has gone yet.  A reload while
 * DATA waited for it (as long as the server, or an attacker on the path
 * who holds its packets, takes: command_timeout) ended the verdicts the
 * accepted recipients went under; as at the client's DATA (cmd_data),
 * each stale domain is judged again before a byte of the message goes,
 * the 354 held from the client meanwhile (data_go() passes it on,
 * data_withheld() ends the session without the dot).  A worker that
 * could not apply the reload ends it so too.  1 when the 354 is not
 * relayed now.
 */
static int
data_354_stale(struct session *s, const struct smtp_reply *r)
{
	int k;

	if (s->env->retiring) {
		retiring_tempfail(s);
		return 1;
	}
	if ((k = tx_stale(s)) == -1)
		return 0;
	if ((s->held354 = malloc(r->len)) == NULL) {
		data_withheld(s, "out-of-memory");
		session_tempfail(s, "451 4.3.0", "out of memory");
		return 1;
	}
	memcpy(s->held354, r->buf, r->len);
	s->held354_len = r->len;
	log_info("sid=%s event=data-held dst=%s why=reloaded-before-body",
	    s->id, s->dst_str);
	data_rejudge(s, k);
	return 1;
}

static void
session_on_reply(struct session *s, struct smtp_reply *r)
{
	int ok = r->code / 100 == 2;
	char q[48];
	size_t tl;
	const char *t;

	if (r->code / 100 == 3 && (s->state == S_MAIL ||
	    s->state == S_RCPT || s->state == S_RSET)) {
		/* only DATA asks for a 3xx ("go ahead"): to these it is
		 * neither success nor refusal, and an MTA reads a reply
		 * that is not 2xx or 4xx as a permanent failure (relayed
		 * for a RCPT, a bounce); 421, and it keeps the mail */
		bad_reply(s, r, "bad-reply", "421 4.5.0",
		    state_names[s->state], ", not 2xx, 4xx or 5xx");
		return;
	}
	switch (s->state) {
	case S_MAIL:
		if (ok) {
			s->tx_up_mail = 1;
			if (!s->rcpt_pipelined && rcpt_stale(s))
				break;
			session_enter(s, S_RCPT);
			break;
		}
		if (s->rcpt_pipelined) {
			/* the RCPT sent with it will be refused too: that
			 * reply is not the client's */
			s->rcpt_pipelined = 0;
			s->up_discard++;
		}
		if (mail_refused_tls(s, r)) {
			session_enter(s, S_IDLE);
			break;
		}
		if (r->code / 100 == 5 && caps_shrank(s)) {
			mail_refused_softly(s, r);
			break;
		}
		/* client got 250 for MAIL: its RCPTs carry the refusal */
		mail_refused(s, r);
		session_enter(s, S_IDLE);
		break;
	case S_RCPT:
		if (ok && tx_dom_add(s) == -1) {
			/* unchecked before DATA it must not go: the MTA
			 * keeps the message */
			session_tempfail(s, "421 4.3.0", "out of memory");
			break;
		}
		if (ok) {
			s->tx_rcpts_ok++;
			tx_add_domain(s, s->rcpt_domain);
			cl_relay(s, r);
		} else
			refusal_relay(s, r, "RCPT");
		free(s->rcpt_line);
		s->rcpt_line = NULL;
		session_enter(s, S_IDLE);
		break;
	case S_DATA:
		if (r->code != 354 && r->code / 100 < 4) {
			/* neither "go ahead" nor a refusal: a client told
			 * 250 here might count its message as delivered */
			bad_reply(s, r, "bad-data-reply", "421 4.5.0",
			    "DATA", ", not 354");
			break;
		}
		if (r->code == 354 && data_354_stale(s, r))
			break;
		if (r->code == 354)
			cl_relay(s, r);
		else
			refusal_relay(s, r, "DATA");
		session_enter(s, r->code == 354 ? S_BODY : S_IDLE);
		break;
	case S_DATA_END:
		if (r->code / 100 == 3) {
			/* not an answer to the message (a second 354): the
			 * server has not said whether it took it, and an MTA
			 * reads a final reply that is not 2xx or 4xx as a
			 * permanent failure; 451, and it keeps the message.
			 * The dot is out (a reply while it is still queued
			 * fails the leg first: early-reply), so the outcome
			 * is lost, as at the leg's own failures (leg_error) */
			if (final_unknown_p(s))
				log_info("sid=%s event=final-reply-lost dst=%s "
				    "why=%s note=client-may-resend", s->id,
				    s->dst_str, "\"3xx to the end of the "
				    "message\"");
			bad_reply(s, r, "bad-final-reply", "451 4.5.0",
			    "the end of the message", final_unknown(s));
			break;
		}
		message_done(s, r);
		/* a 530 for the message in cleartext bounces it as surely
		 * as one to MAIL */
		refusal_relay(s, r, "the message");
		tx_clear(s);
		session_enter(s, S_IDLE);
		break;
	case S_RSET:
		rset_done(s, r);
		break;
	default:
		/* an unsolicited reply: usually a 421 before the server
		 * hangs up */
		t = smtp_reply_text(r, r->nlines - 1, &tl);
		log_info("sid=%s event=unsolicited-reply dst=%s state=%s "
		    "code=%d text=%s", s->id, s->dst_str,
		    state_names[s->state], r->code, log_qn(q, sizeof(q), t,
		    tl));
		session_tempfail(s, "421 4.4.2", "%s closed the session "
		    "(%d)", s->dst_str, r->code);
		break;
	}
}

/* ---- the leg's news ---------------------------------------------------- */

/*
 * After the dot, a 451 for a final reply that never came (a reset, a
 * cut, a timeout, a malformed reply) makes the MTA send the message
 * again, though the server may have taken it: RFC 1047's duplicate.  An
 * MTA that lost the connection there says so in its log ("message may be
 * sent more than once"); one that got a 451 cannot, so the reply, which
 * its log keeps, says it.
 */
static int
final_unknown_p(const struct session *s)
{
	/* a dot still queued here never reached the server: no duplicate */
	return s->state == S_DATA_END && !(s->up != NULL &&
	    leg_dot_held(s->up));
}

static const char *
final_unknown(const struct session *s)
{
	return final_unknown_p(s) ? "; the server may have taken the "
	    "message, a retry may deliver it twice (RFC 1047)" : "";
}

static void
leg_error(struct session *s, const struct leg_news *n)
{
	const char *code;

	switch (n->err) {
	case LEG_E_CONNECT:
		code = "421 4.4.1";
		break;
	case LEG_E_INJECTION:
	case LEG_E_TLS:
		code = "421 4.7.0";
		break;
	case LEG_E_INTERNAL:
		code = "421 4.3.0";
		break;
	default:
		code = s->state == S_BODY || s->state == S_DATA_END ?
		    "451 4.4.2" : "421 4.4.2";
		break;
	}
	if (final_unknown_p(s)) {
		char q[300];

		/* whether the server took the message is not known: the
		 * client, with a 451, sends it again */
		log_info("sid=%s event=final-reply-lost dst=%s why=%s "
		    "note=client-may-resend", s->id, s->dst_str,
		    log_q(q, sizeof(q), n->why));
	}
	session_tempfail(s, code, "%s (in state %s)%s", n->why,
	    state_names[s->state], final_unknown(s));
}

static void
leg_event(struct leg *l, enum leg_event ev, const struct leg_news *n,
    void *arg)
{
	struct session *s = arg;
	const struct smtp_reply *r = n->reply;
	int i;

	if (s->state == S_DEAD || s->state == S_CLOSING)
		return;
	switch (ev) {
	case LEG_GREETING:
		if (r->code / 100 == 3) {
			/* no greeting, neither welcome nor refusal: relayed,
			 * an MTA takes it for a permanent failure (Postfix's
			 * smtp_helo() bounces every recipient with 5.5.0,
			 * where it softens a 5xx greeting and tries the next
			 * MX); a 421 greeting keeps the mail, as for a 3xx
			 * to EHLO, MAIL, RCPT or RSET (session_on_reply) */
			bad_reply(s, r, "bad-reply", "421 4.5.0",
			    "the connection", ", not a greeting (2xx, 4xx or "
			    "5xx)");
			break;
		}
		cl_relay(s, r);
		session_enter(s, S_WAIT_HELO);
		break;
	case LEG_HELLO:
		if (r->code / 100 == 3) {
			/* no answer to EHLO or HELO (see session_on_reply) */
			bad_reply(s, r, "bad-reply", "421 4.5.0", n->helo ?
			    "HELO" : "EHLO", ", not 2xx, 4xx or 5xx");
			break;
		}
		if (r->code / 100 != 2) {
			cl_relay(s, r);
			session_enter(s, S_WAIT_HELO);
			break;
		}
		if (n->helo)
			helo_done(s, r);
		else
			ehlo_done(s, r);
		if (s->state == S_CLOSING || s->state == S_DEAD)
			break;
		if (s->rset_refused && !n->helo)
			rset_refused_cleared(s);
		send_ehlo(s);
		session_enter(s, S_IDLE);
		break;
	case LEG_READY:
		if (s->state != S_SECURE)
			break;
		if (s->env->retiring) {
			/* a reload this worker could not apply came while the
			 * leg was secured: the others run the new
			 * configuration, which may demand more, and its gen
			 * never moves here; the recipient is not accepted
			 * yet, so it is refused as one asked now would be */
			retiring_tempfail(s);
			break;
		}
		if ((i = secured_stale(s)) == -1) {
			rcpt_met(s, s->cur_verdict, n->res, n->why);
			leg_secured(s, r);
			break;
		}
		if (r != NULL) {
			ehlo_done(s, r);	/* the capabilities inside TLS */
			if (s->state == S_CLOSING || s->state == S_DEAD)
				break;
		}
		secured_reask(s, i, "reloaded-while-secured", 1);
		break;
	case LEG_TLS_FAILED:
		policy_failed(s, s->cur_verdict, n->res->reason,
		    n->res->detail);
		break;
	case LEG_REPLY:
		if (s->up_discard > 0) {
			s->up_discard--;
			log_debug("sid=%s event=reply-dropped code=%d "
			    "why=pipelined-rcpt-after-refused-mail", s->id,
			    r->code);
			break;
		}
		session_on_reply(s, (struct smtp_reply *)r);
		break;
	case LEG_LOWAT:
		if (s->state == S_BODY && io_paused(s->cl))
			body_pump(s);
		break;
	case LEG_ERROR:
		if (s->state == S_QUIT) {
			session_close(s, "upstream closed at QUIT");
			break;
		}
		leg_error(s, n);
		break;
	case LEG_CLOSED:
		session_close(s, "client quit");
		break;
	}
	session_run(s);
}

/* ---- io events --------------------------------------------------------- */

/*
 * The client's TLS handshake (after its STARTTLS and our 220) failed or
 * timed out.  Nothing can be said to it: a reply in cleartext would be
 * garbage to its TLS, and one queued for after the handshake never goes.
 * Queued all the same, the timeout's 421 held the session in CLOSING
 * for its 5 s, with its max_sessions slot and the upstream connection.
 * The client's side ends at once; the MTA keeps the message it had not
 * sent yet (no transaction is open across STARTTLS: cmd_starttls refuses
 * it inside one; a message finished before it had the server's own 250).
 * The upstream, between transactions, gets QUIT (never parked), as for
 * any client that leaves, so that the server ends its side cleanly, not
 * with "lost connection".
 */
static void
client_tls_failed(struct session *s, const char *why)
{
	char q[300];

	log_warn("sid=%s event=client-tls-failed client=%s error=%s "
	    "action=close", s->id, s->client_str, log_q(q, sizeof(q), why));
	if (!s->why[0])		/* for the close line */
		snprintf(s->why, sizeof(s->why), "client TLS failed: %s", why);
	s->cl_in += io_bytes_in(s->cl);
	io_free(s->cl);		/* (freed when its callback returns) */
	s->cl = NULL;
	client_done(s, s->why);
}

static void
cl_io_cb(struct io *io, enum io_event ev, void *arg)
{
	struct session *s = arg;

	if (s->state == S_DEAD)
		return;
	if (s->state == S_CLIENT_TLS && (ev == IO_TIMEOUT || ev == IO_ERROR)) {
		client_tls_failed(s, ev == IO_TIMEOUT ?
		    "timeout in the TLS handshake" : io_error(io));
		session_run(s);
		return;
	}
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
			s->client_due = 1;
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
		if (s->cl_blocked) {
			s->cl_blocked = 0;
			if (waits_for_client(s->state)) {
				io_pause(s->cl, 0);
				s->client_due = 1;
			}
		}
		break;
	case IO_DISCONNECTED:
		client_eof(s);
		break;
	case IO_HANGUP:
		client_hangup(s);
		break;
	case IO_ERROR:
		/* In DATA this leaves the upstream without its ".": the
		 * server discards the partial message.  After it, the
		 * reply is lost with the client, whether or not its EOF
		 * came first: a reset, or the close of its own TLS without
		 * close_notify (how an MTA ends a connection it timed out
		 * on), comes straight in DATA_END.  A dot still queued
		 * here never goes (io_abort), so no duplicate then. */
		if (final_unknown_p(s))
			log_info("sid=%s event=client-gone state=%s "
			    "note=client-may-resend", s->id,
			    state_names[s->state]);
		/* The client is gone (a reset, a write that failed): what
		 * is still queued for it can never go, and its io, dead,
		 * reports nothing more.  Closed with it, the session sat in
		 * CLOSING until the deadline, holding its max_sessions slot
		 * and the upstream connection: it ends at once.  Between
		 * commands the upstream gets QUIT, as for a client that
		 * closes there (client_eof()). */
		s->cl_in += io_bytes_in(io);
		s->cl = NULL;
		if (waits_for_client(s->state))
			client_eof_end(s, io_error(io));
		else
			session_close(s, io_error(io));
		io_free(io);
		break;
	case IO_CONNECTED:
		break;
	}
	session_run(s);
}

/* ---- start ------------------------------------------------------------- */

int
session_start(struct session_env *env, int fd,
    const struct sockaddr_storage *client, const struct sockaddr_storage *dst)
{
	static unsigned long long seq;
	static unsigned base;
	struct session *s;
	struct leg_env lenv;
	char key[200];
	int saved;

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
	netaddr_fmt((struct sockaddr *)client, s->client_str,
	    sizeof(s->client_str));
	netaddr_fmt((struct sockaddr *)dst, s->dst_str, sizeof(s->dst_str));
	s->started = ev_now(env->loop);
	s->state = S_GREETING;
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
	io_set_lowat(s->cl, CL_LOWAT);
	/* a client may shut its side down after its dot and still read the
	 * final reply (client_eof()) */
	io_set_halfopen(s->cl, 1);
	log_info("sid=%s event=connect client=%s dst=%s", s->id,
	    s->client_str, s->dst_str);
	memset(&lenv, 0, sizeof(lenv));
	lenv.loop = env->loop;
	lenv.cfg = &env->cfg;
	lenv.tls = &env->tls;
	lenv.policy = env->policy;
	/* upstream_source: the leg may leave from the client's address; a
	 * parked leg is keyed by it (reuse_key), so an adopted one did */
	lenv.client = *client;
	if (env->cfg->upstream_reuse && !env->draining &&
	    reuse_key(s, key, sizeof(key)) == 0 &&
	    (s->up = leg_adopt(&lenv, env->reuse, key, dst, s->id, leg_event,
	    s)) != NULL) {
		/* a new session on a parked leg: the client gets the leg's
		 * greeting, and its EHLO goes upstream inside the TLS
		 * session */
		io_write(s->cl, leg_greeting(s->up),
		    strlen(leg_greeting(s->up)));
		session_enter(s, S_WAIT_HELO);
		return 0;
	}
	if ((s->up = leg_new(&lenv, dst, s->id, leg_event, s)) == NULL) {
		/* the close line says why, as for a reconnect that fails
		 * (upstream_decide()); a failed bind to the client's
		 * address was logged as upstream-bind-failed */
		saved = errno;
		session_tempfail(s, leg_errno_local(saved) ? "421 4.3.0" :
		    "421 4.4.1", "cannot connect to %s: %s", s->dst_str,
		    strerror(saved));
		return 0;
	}
	/* nothing from the client before the 220; its close is still heard
	 * (client_hangup()) */
	io_pause(s->cl, 1);
	return 0;
fail:
	s->state = S_DEAD;
	session_free(s);
	return -1;
}
