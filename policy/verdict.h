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
 * A verdict is a value: whoever keeps one beyond a callback keeps a copy
 * (policy_verdict_dup), never a pointer into another owner's verdict.
 *
 * Who frees what: the receiver of a verdict frees it with
 * policy_verdict_free(); policy_verdict_dup() returns a new, independent
 * verdict (the private TLS part is copied or reference-counted).
 */
#ifndef MXG_VERDICT_H
#define MXG_VERDICT_H

enum tls_level {
	TLS_LEVEL_NONE,		/* cleartext; do not even try STARTTLS */
	TLS_LEVEL_MAY,		/* STARTTLS if offered; check only logged */
	TLS_LEVEL_ENCRYPT,	/* TLS required, not authenticated */
	TLS_LEVEL_DANE,		/* TLS required, authenticated by TLSA */
	TLS_LEVEL_VERIFY,	/* TLS required, WebPKI + name (MTA-STS) */
	TLS_LEVEL_DEFER,	/* decided already: do not deliver now */
};

struct policy_tls;		/* private to policy/ */

struct policy_verdict {
	enum tls_level	 level;
	int		 report_only;	/* MTA-STS testing: its check is
					 * reported, never enforced */
	const char	*source;	/* "override", "dane", "mta-sts",
					 * "tls-history", "require_tls",
					 * "default" (static strings) */
	char		 domain[256];	/* normalised recipient domain */
	char		 mx_host[256];	/* MX host H owning A; "" unknown */
	char		 reason[48];	/* RFC 8460 result type, for DEFER */
	char		 detail[256];	/* human words for logs and replies */
	char		 sts_note[96];	/* MTA-STS policy used: mode, id,
					 * cached|fetched, age; or why none */
	struct policy_tls *tls;
};

const char	*tls_level_name(enum tls_level);
struct policy_verdict *policy_verdict_dup(const struct policy_verdict *);
void		 policy_verdict_free(struct policy_verdict *);

#endif
