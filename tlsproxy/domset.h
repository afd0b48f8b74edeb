/*
 * domset.h - a bounded set of TLSRPT reports, for counting attempts once
 * per report (RFC 8460 section 4.4).
 *
 * A report is kept as its 64-bit key, policy_report_key() (policy/
 * verdict.h): the policy domain and the policy it published, as the
 * recorder groups them.  The set has room for 16 at first and doubles
 * up to DOMSET_MAX: a relay host's session, and the upstream connection
 * that carries it, see every domain of the MTA's mail.  Beyond that a
 * new key is refused, and the caller leaves it uncounted rather than
 * counting it again at every recipient or reuse.  A zeroed struct is an
 * empty set; domset_clear() frees it.
 */
#ifndef MXG_DOMSET_H
#define MXG_DOMSET_H

#include <stdint.h>

#define DOMSET_MIN	16
#define DOMSET_MAX	4096

struct domset {
	uint64_t	*key;
	int		 n, cap;
};

/* 1: added; 0: already in; -1: full (DOMSET_MAX) or out of memory. */
int		 domset_add(struct domset *, uint64_t key);
void		 domset_clear(struct domset *);

#endif
