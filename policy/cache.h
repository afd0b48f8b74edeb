/*
 * cache.h - the persistent MTA-STS policy cache (LMDB in state_dir).
 *
 * One record per policy domain: the policy text as fetched (re-parsed on
 * every read, so a record that no longer parses is simply absent), the
 * TXT id it was fetched under, and wall-clock times.  Every put is one
 * LMDB write transaction, committed with fsync: a record is either there
 * whole or not at all, and survives kill -9 and power loss.
 */
#ifndef MXG_CACHE_H
#define MXG_CACHE_H

#include <stdint.h>
#include <time.h>

#include "policy/sts.h"

struct sts_cache;

struct sts_cache_entry {
	char		 id[STS_ID_MAX + 1];
	int64_t		 fetched;	/* time the policy was fetched */
	int64_t		 expires;	/* fetched + max_age */
	int64_t		 checked;	/* last time the TXT id was seen */
	char		*body;		/* policy text, malloc'd */
	size_t		 bodylen;
	struct sts_policy pol;		/* parsed body (on get) */
};

enum sts_cache_state {
	STS_CACHE_FRESH,	/* valid, not yet due for refresh */
	STS_CACHE_REFRESH,	/* valid, within the refresh margin */
	STS_CACHE_EXPIRED,	/* past max_age: no longer a policy */
};

/* Opens (creates) DIR/sts-cache.mdb. */
struct sts_cache *sts_cache_open(const char *dir, char *err, size_t errsz);
void		 sts_cache_close(struct sts_cache *);
/* 1 found (entry filled; sts_cache_entry_clear() after), 0 absent,
 * -1 error. */
int		 sts_cache_get(struct sts_cache *, const char *domain,
		    struct sts_cache_entry *);
/* Stores a copy; 0 or -1. */
int		 sts_cache_put(struct sts_cache *, const char *domain,
		    const struct sts_cache_entry *);
int		 sts_cache_del(struct sts_cache *, const char *domain);
void		 sts_cache_entry_clear(struct sts_cache_entry *);
/* margin_pct: refresh when less than this percentage of max_age is left
 * (and, per RFC 8461 section 5.1, whenever a day has passed since the id
 * was last checked). */
enum sts_cache_state sts_cache_state(const struct sts_cache_entry *,
		    int64_t now, int margin_pct);

#endif
