/*
 * leg.h - the upstream leg: mxguard's own SMTP connection to the MX that
 * a diverted session was headed for, as one object with one state.
 *
 * The leg owns everything that is a fact about that connection: the
 * socket and its io, the greeting, the EHLO (or HELO) exchange and the
 * server's extensions, STARTTLS, the TLS handshake and the policy check
 * of it, and what that check proved (struct tls_proof, a value).  It also
 * owns the connections the client never sees: a new connection when a
 * reused leg does not fit the first recipient, and the cleartext retry
 * after an opportunistic handshake failed.  Finally it parks itself in
 * the reuse cache (reuse.h) and is adopted from there.
 *
 * The session (session.c) is the layer above: it speaks the envelope and
 * the message through the leg and hears back through one callback, as
 * io.c's owners do:
 *
 *   LEG_GREETING    the server's greeting (relay it; not 2xx: refused)
 *   LEG_HELLO       the final reply to the client's EHLO (or HELO)
 *   LEG_READY       leg_secure() finished: the leg carries the verdict's
 *                   mail now (in TLS or, where the verdict allows, in
 *                   cleartext); the MAIL replay may go
 *   LEG_TLS_FAILED  leg_secure(): the verdict is not met (news->res says
 *                   why); the leg is closed
 *   LEG_REPLY       a reply the session's commands asked for (or an
 *                   unsolicited one, like a 421 before a hang-up)
 *   LEG_LOWAT       the output drained (message back-pressure)
 *   LEG_ERROR       timeout, lost connection, garbage, injection; the leg
 *                   is closed (news->err and news->why say which)
 *   LEG_CLOSED      the server's 221 (or its close) after leg_quit()
 *
 * Events are delivered from the event loop only (from the leg's io
 * callback), never from inside a leg_*() call: the calls that can decide
 * at once (leg_secure) say so by their return value.  The session may
 * leg_free() from inside its callback.
 *
 * States (one enum, traced at debug level as "leg A -> B"):
 *
 *   CONNECT -> GREETING -> HELLO [-> HELO] -> OPEN
 *   OPEN -> STARTTLS -> HANDSHAKE -> EHLO_TLS -> OPEN
 *   OPEN | HANDSHAKE -> (new connection) CONNECT -> ... -> OPEN   (silent)
 *   OPEN -> BODY -> DOT -> OPEN
 *   OPEN -> QUIT -> CLOSED (the connection lingers in io.c until the
 *   server closes: io_linger);  any -> CLOSED on an error
 *   OPEN -> PARKED (the leg object is gone; its io lives in reuse.c)
 *
 * Who frees what: leg_new() and leg_adopt() return a leg the caller frees
 * with leg_free() (which closes the connection), unless leg_park()
 * succeeded, which frees it.  The leg keeps its own copy of the verdict
 * given to leg_secure().  Never includes session.h.
 */
#ifndef MXG_LEG_H
#define MXG_LEG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/config.h"
#include "core/ev.h"
#include "policy/policy.h"
#include "tlsproxy/reuse.h"
#include "tlsproxy/smtp.h"
#include "tlsproxy/tls.h"

struct leg;

enum leg_event {
	LEG_GREETING,
	LEG_HELLO,
	LEG_READY,
	LEG_TLS_FAILED,
	LEG_REPLY,
	LEG_LOWAT,
	LEG_ERROR,
	LEG_CLOSED,
};

enum leg_error {
	LEG_E_CONNECT,		/* the TCP connect failed or timed out */
	LEG_E_TIMEOUT,		/* no reply in time */
	LEG_E_LOST,		/* closed or reset by the server */
	LEG_E_PROTOCOL,		/* a malformed or over-long reply */
	LEG_E_EARLY,		/* the server spoke during the message */
	LEG_E_INJECTION,	/* plaintext after the 220 to STARTTLS */
	LEG_E_REFUSED,		/* a silent reconnect was refused */
	LEG_E_TLS,		/* TLS could not be set up, or EHLO inside
				 * it was refused */
	LEG_E_INTERNAL,		/* out of memory, TLS set-up */
};

/* What an event carries; pointers are valid during the callback only. */
struct leg_news {
	const struct smtp_reply	*reply;	/* GREETING, HELLO, REPLY; READY
					 * after TLS: the EHLO reply in it */
	const struct tls_result	*res;	/* READY (report-only notes),
					 * TLS_FAILED */
	int			 helo;	/* HELLO: the reply is HELO's (the
					 * server refused EHLO) */
	enum leg_error		 err;	/* ERROR */
	const char		*why;	/* ERROR: text; READY in cleartext:
					 * the reason ("starttls-refused") */
};

typedef void leg_cb(struct leg *, enum leg_event, const struct leg_news *,
    void *arg);

/* The environment a leg runs in.  cfg and tls are read through the
 * caller's pointers at each use: a reload replaces them. */
struct leg_env {
	struct ev_loop		 *loop;
	const struct config	**cfg;
	struct tls_ctx		**tls;
	struct policy		 *policy;
	struct sockaddr_storage	  client;	/* the session's client, whose
					 * address the leg leaves from
					 * when config_upstream_client()
					 * (ss_family 0: no client, as
					 * TLSRPT's own legs) */
	int			  no_history;	/* TLSRPT's own legs: what
					 * their servers offer is not
					 * recorded (an attacker names
					 * them, and would fill the TLS
					 * history with them) */
};

/* leg_secure()'s answer when it could decide at once. */
enum {
	LEG_SECURE_ERROR = -2,	/* no connection (res->detail says why) */
	LEG_SECURE_FAILED = -1,	/* res says why; the leg is unusable */
	LEG_SECURE_READY = 0,	/* cleartext allowed: MAIL may go */
	LEG_SECURE_PENDING = 1,	/* LEG_READY / LEG_TLS_FAILED follow */
};

/* A new connection to dst; LEG_GREETING follows.  tag names the session
 * in log lines.  NULL with errno on error; when the connection must leave
 * from the client's address and cannot (EADDRNOTAVAIL: the address left
 * the host; or a family the destination's cannot have), it is not made
 * from another one: NULL, logged as event=upstream-bind-failed. */
struct leg	*leg_new(const struct leg_env *,
		    const struct sockaddr_storage *dst, const char *tag,
		    leg_cb *, void *arg);
/* Takes a parked leg for key from the cache: NULL if there is none.  The
 * adopted leg is OPEN, its proof the one it earned before. */
struct leg	*leg_adopt(const struct leg_env *, struct reuse *,
		    const char *key, const struct sockaddr_storage *dst,
		    const char *tag, leg_cb *, void *arg);
void		 leg_free(struct leg *);
/* Parks an OPEN, proven, idle TLS leg under key, unless its connection
 * is age_limit_ms old or older (0: no limit).  0: parked and freed; -1:
 * not parkable (or the cache is full), the caller keeps it. */
int		 leg_park(struct leg *, struct reuse *, const char *key,
		    uint64_t idle_ms, uint64_t age_limit_ms, int max_legs);

/* EHLO name (EHLO, or HELO only if the server refuses EHLO with 5xx);
 * LEG_HELLO follows.  The name is also what the leg says after STARTTLS
 * and on a silent reconnect.  Replies still due to earlier commands are
 * read and dropped first, never taken for the EHLO's: the caller forgets
 * its own count of them.  The reply after them must then look like the
 * EHLO's (250 with the server's name, as in its last EHLO reply), or the
 * leg fails (LEG_E_PROTOCOL): one reply too many is no EHLO reply. */
void		 leg_hello(struct leg *, const char *name);
/* Makes the leg carry mail under verdict v: STARTTLS, handshake and the
 * check (or cleartext where v allows it, or a cleartext retry on a new
 * connection after an opportunistic handshake failed).  fresh: first
 * leave this connection for a new one (a reused leg that does not fit).
 * Returns LEG_SECURE_*; res is filled when it returns at once. */
int		 leg_secure(struct leg *, const struct policy_verdict *v,
		    int fresh, struct tls_result *res);
/* May a recipient with verdict v cross this leg, by what it proved? 0 yes
 * (res may carry a report-only note or a monitored would-defer), -1 no
 * (res says why).  A TLS leg outside the TLS settings now in force (a
 * reload since its handshake raised tls_min_version, or took its cipher
 * out of tls_ciphers or raised its @SECLEVEL) fits no verdict that
 * requires TLS; a monitored one that would require it fits, with a
 * would-defer. */
int		 leg_fits(struct leg *, const struct policy_verdict *v,
		    struct tls_result *res);

/* A command line (CRLF added) expecting nreplies replies; the command
 * timeout runs while replies are due. */
void		 leg_command(struct leg *, int nreplies, const char *line);
/* Two command lines in one write (RFC 2920 pipelining), two replies. */
void		 leg_command2(struct leg *, const char *l1, const char *l2);
/* The message: leg_body_begin() after the 354, leg_write() its bytes
 * (LEG_LOWAT when the output drained to lowat), leg_body_end() after the
 * final dot was written; the final reply comes as LEG_REPLY. */
void		 leg_body_begin(struct leg *, size_t lowat);
void		 leg_write(struct leg *, const void *, size_t);
void		 leg_body_end(struct leg *);
size_t		 leg_queued(const struct leg *);
/* QUIT; LEG_CLOSED follows (221, close or timeout). */
void		 leg_quit(struct leg *);

/* Facts. */
int		 leg_settled(const struct leg *);	/* TLS question decided */
int		 leg_refused(const struct leg *);	/* greeting 5xx: 5, other
							 * not 2xx: 4; else 0 */
int		 leg_reused(const struct leg *);	/* adopted, not left */
/* The leg is cleartext without having asked for STARTTLS (a verdict of
 * level none settled it): it shows nothing of the server's TLS. */
int		 leg_starttls_skipped(const struct leg *);
/* The dot of the last message was handed over (leg_body_end()) but has
 * not left mxguard: the server cannot have the message whole, whatever
 * happens to the leg now (still true after a LEG_ERROR). */
int		 leg_dot_held(const struct leg *);
/* Why the settled leg carries mail in cleartext: "policy-none",
 * "starttls-not-offered", "starttls-refused" or "tls-handshake-failed"
 * (the retry on a new connection); "" for a TLS leg or an unsettled one. */
const char	*leg_cleartext_reason(const struct leg *);
/* Whether errno err of leg_new() or a reconnect that failed is this
 * host's trouble (no memory, descriptor or local port): 421 4.3.0, else
 * 4.4.1.  Right after the failure. */
int		 leg_errno_local(int);
unsigned	 leg_uses(const struct leg *);		/* sessions served */
/* TLSRPT counts a success once per connection and report (key:
 * policy_report_key(): policy domain and policy), whatever sessions ride
 * it: 1 when this connection had not counted it yet (count it now), 0
 * when it had, -1 when there is no room to remember it (leave it
 * uncounted: else once per reuse).  A new connection of the leg starts
 * afresh. */
int		 leg_count_domain(struct leg *, uint64_t key);
const struct smtp_caps *leg_caps(const struct leg *);
const struct tls_proof *leg_proof(const struct leg *);
const char	*leg_greeting(const struct leg *);	/* as sent, CRLF */
const char	*leg_tls_proto(const struct leg *);	/* "" in cleartext */
const char	*leg_tls_cipher(const struct leg *);	/* "" in cleartext */
const char	*leg_tls_verify(const struct leg *);	/* last check's result */
const char	*leg_local_ip(const struct leg *);	/* our address on
							 * the last
							 * connection, "" */
/* Bytes written to the server by this leg object (across reconnects). */
unsigned long long leg_bytes_out(const struct leg *);
const char	*leg_state_name(const struct leg *);

#endif
