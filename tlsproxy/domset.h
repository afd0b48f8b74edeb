/*
 * domset.h - a bounded set of policy domains, for counting TLSRPT
 * attempts once each (RFC 8460 section 4.4).
 *
 * A domain is kept as a 64-bit hash of its name (domset_key(): the
 * engine's verdicts carry it normalized).  The set has room for 16 at
 * first and doubles up to DOMSET_MAX: a relay host's session, and the
 * upstream connection that carries it, see every domain of the MTA's
 * mail.  Beyond that a new domain is refused, and the caller leaves it
 * uncounted rather than counting it again at every recipient or reuse.
 * A zeroed struct is an empty set; domset_clear() frees it.
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

uint64_t	 domset_key(const char *domain);
/* 1: added; 0: already in; -1: full (DOMSET_MAX) or out of memory. */
int		 domset_add(struct domset *, uint64_t key);
void		 domset_clear(struct domset *);

#endif
