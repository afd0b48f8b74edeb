/*
 * verdict.h - the value a policy decision produces, at the bottom of
 * policy/ so that dane.c, history.c and tlsproxy/ can use it without the
 * engine's header.
 *
 * A verdict says what the upstream leg must prove before a recipient's
 * mail may cross it.  `level` is always what is enforced.  `report_only`
 * marks an MTA-STS policy in mode testing: its check (the names and CA
 * store in `tls`) is evaluated and reported, never enforced, and it never
 * weakens `level` (which require_tls or the TLS history may still raise to
 * encrypt).
 *
 * `monitor` (enforcement = monitor) marks a verdict whose demand is only
 * watched: `would_level` is what enforce mode would demand (DEFER: it
 * would defer already at the decision, reason and detail say why), and
 * `level` is MAY, the best TLS available.  Its checks still run on the
 * leg, and a check that fails sets the proof's failed flag and the
 * result's would_defer; nothing a monitored recipient's leg proves is
 * more than it proved, so an enforced recipient never rides on it below
 * its own policy.
 *
 * A verdict is a value: whoever keeps one beyond a callback keeps a copy
 * (policy_verdict_dup), never a pointer into another owner's verdict.
 *
 * Who frees what: the receiver of a verdict frees it with
 * policy_verdict_free(); policy_verdict_dup() returns a new, independent
 * verdict (the private TLS part is copied or reference-counted, the
 * report part copied).
 */
#ifndef MXG_VERDICT_H
#define MXG_VERDICT_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/ssl.h>

enum tls_level {
	TLS_LEVEL_NONE,		/* cleartext; do not even try STARTTLS */
	TLS_LEVEL_MAY,		/* STARTTLS if offered; check only logged */
	TLS_LEVEL_ENCRYPT,	/* TLS required, not authenticated */
	TLS_LEVEL_DANE,		/* TLS required, authenticated by TLSA */
	TLS_LEVEL_VERIFY,	/* TLS required, WebPKI + name (MTA-STS) */
	TLS_LEVEL_DEFER,	/* decided already: do not deliver now */
};

struct policy_tls;		/* private to policy/ */
struct policy_rpt;		/* private to policy/ (verdict_tls.h) */

struct policy_verdict {
	enum tls_level	 level;
	int		 report_only;	/* MTA-STS testing: its check is
					 * reported, never enforced */
	int		 monitor;	/* enforcement = monitor: level is
					 * MAY, would_level only watched */
	enum tls_level	 would_level;	/* monitor: what enforce mode would
					 * demand */
	const char	*source;	/* "override", "dane", "mta-sts",
					 * "tls-history", "require_tls",
					 * "default" (static strings) */
	char		 domain[256];	/* normalised recipient domain */
	char		 mx_host[256];	/* MX host H owning A; "" unknown */
	char		 reason[48];	/* RFC 8460 result type, for DEFER;
					 * "store-error" or "local-error"
					 * when local is set */
	int		 local;		/* deferred for this gateway's own
					 * trouble (a store that cannot
					 * answer, a fetch it could not
					 * make), or an MTA-STS testing
					 * check it could not make so: not
					 * reported (TLSRPT) */
	char		 detail[256];	/* human words for logs and replies */
	char		 sts_note[96];	/* MTA-STS policy used: mode, id,
					 * cached|fetched, age; or why none */
	struct policy_tls *tls;
	struct policy_rpt *rpt;		/* the published policy that applied,
					 * as a TLSRPT report names it (type,
					 * policy strings, MX patterns); NULL:
					 * no-policy-found */
	const char	*dane_note;	/* why DANE could not apply: NULL,
					 * "resolver-not-validating", or
					 * "tlsa-unusable" (MTA-STS enforce
					 * decided instead; static; logged
					 * dane=not-applicable) */
};

/*
 * What an upstream leg has proven, as a value: the leg keeps it, a parked
 * leg carries it, and a recipient's mail crosses the leg only if
 * policy_leg_fits() says this proof satisfies the recipient's verdict.
 */
struct tls_proof {
	int		 tls;		/* a TLS session is up on the leg */
	int		 failed;	/* a check on this leg failed, even a
					 * report-only one: never parked,
					 * never cached for resumption */
	enum tls_level	 level;		/* what was proven: NONE (cleartext),
					 * ENCRYPT (TLS, unauthenticated),
					 * DANE or VERIFY (authenticated) */
	char		 mx_host[256];	/* the host it was proven for */
	unsigned char	 id[32];	/* SHA-256 over what authenticated it:
					 * DANE: TLSA RRset, base domain and
					 * reference names; VERIFY: CA store
					 * identity, name-check flags (MTA-STS:
					 * DNS-IDs only) and reference names */
	int64_t		 not_after;	/* VERIFY: the earliest notAfter of
					 * the chain that verified (seconds,
					 * policy clock); from then on the id
					 * stands for nothing and the live
					 * chain is judged.  0: no limit (a
					 * fingerprint) */
};

/* The outcome of a check, for logs, replies and reports. */
struct tls_result {
	char		 reason[48];	/* RFC 8460 result type, or "success" */
	char		 detail[256];
	int		 report_failed;	/* report_only: the MTA-STS testing
					 * check failed (reason, detail say
					 * why); delivery goes on */
	int		 would_defer;	/* monitor: enforce mode would defer
					 * here (reason, detail say why);
					 * delivery goes on */
	int		 untried;	/* the connection was never checked
					 * against this verdict's records (it
					 * was set up for another recipient,
					 * or fell below the gateway's own
					 * tls_min_version after a reload):
					 * a failure says nothing of the
					 * domain's servers, nothing to
					 * report */
};

/* Before the handshake: SNI, names, store, TLSA records on ssl. */
int		 policy_tls_prepare(const struct policy_verdict *, SSL *ssl);
/* After a handshake prepared for v: 0 if the session meets v's enforced
 * level, else -1 (res says why).  Fills *proof with what the session
 * proved (with failed set when any check, report-only included, did not
 * pass). */
int		 policy_tls_check(const struct policy_verdict *v, SSL *ssl,
		    struct tls_proof *proof, struct tls_result *res);
/* May a recipient with verdict v cross a leg that proved *proof?  ssl is
 * the leg's live TLS session (NULL in cleartext); a VERIFY verdict whose
 * names differ from the proof's is verified afresh against the peer's
 * chain.  0 yes, -1 no (res says why).  Never trusts anything but the
 * proof's values and the live session. */
int		 policy_leg_fits(const struct policy_verdict *v,
		    const struct tls_proof *proof, SSL *ssl,
		    struct tls_result *res);
/* 1 when no connection can meet what v's enforced level demands (a
 * monitored verdict's would_level): a WebPKI check (verify) with no
 * reference name and no fingerprint, as a tls_policy verify line without
 * match= (or with match=hostname) gives while no MX host owns the
 * destination (no H: the address is none of theirs, or the MX lookup
 * failed).  policy_tls_check() fails every handshake for such a verdict
 * (certificate-host-mismatch), so the mail is deferred; the commands say
 * so instead of "verify".  0 otherwise. */
int		 policy_verdict_unmeetable(const struct policy_verdict *);
/* RFC 8460 result type for "server did not offer STARTTLS" under v
 * ("starttls-not-supported", or "dane-required" for DANE; a monitored
 * verdict answers for its would_level). */
const char	*policy_no_starttls_reason(const struct policy_verdict *);
/* A TLS session-resumption key: equal only for verdicts whose checks are
 * the same checks (MX host, level, names, TLSA digest, CA store).  -1
 * when there is none (no resumption then, never a shorter key).  Cache a
 * session under it only after policy_tls_check() passed with
 * proof->failed == 0. */
int		 policy_tls_session_key(const struct policy_verdict *,
		    char *buf, size_t sz);

/* enforcement = monitor: turn a decided verdict into a monitored one
 * (level MAY, would_level the decided level); idempotent. */
void		 policy_verdict_monitor(struct policy_verdict *);

/*
 * Which TLSRPT report an attempt under v at time now (seconds since the
 * epoch) is counted in, as the recorder groups them (RFC 8460 section 4:
 * per policy domain, policy type, policy strings and MX patterns, and per
 * day): a 64-bit digest, equal only for the same report.  A session
 * reports once per key, and a connection counts a success once per key,
 * so a domain whose policy changed (other lines, DANE instead of MTA-STS)
 * is a new report, counted afresh.  SHA-256: policy strings are the
 * domains' own text, and a collision would leave another's success
 * uncounted.  0 when it cannot be computed.
 */
uint64_t	 policy_report_key(const struct policy_verdict *v,
		    int64_t now);

/* The earliest notAfter of a verified chain, in seconds since the epoch
 * (the policy clock's scale): a proof made by verifying it holds until
 * then.  1 (long past) when a time cannot be read or there is no chain,
 * so that the chain is judged again rather than trusted for ever. */
int64_t		 policy_chain_not_after(STACK_OF(X509) *chain);

const char	*tls_level_name(enum tls_level);
struct policy_verdict *policy_verdict_dup(const struct policy_verdict *);
void		 policy_verdict_free(struct policy_verdict *);

#endif
