/*
 * cache.h - the persistent MTA-STS policy cache (LMDB in state_dir).
 *
 * One record per policy domain: the policy text as fetched (re-parsed on
 * every read, so a record that no longer parses is simply absent), the
 * TXT id it was fetched under, its mode, the count of its mx patterns
 * past STS_MAX_MX (a text stored as its fields no longer has them), and
 * wall-clock times.  Every put
 * is one LMDB write transaction, committed with fsync: a record is either
 * there whole or not at all, and survives kill -9 and power loss.
 *
 * The cache is bounded (docs/policy.md, "Bounded stores"): at most
 * max_entries policies of at most entry_max bytes each.  A newcomer that
 * finds the cache full evicts, in this order, expired (or unreadable)
 * records, then the least recently used policy of mode none, then of mode
 * testing; a live enforce policy is never evicted for it: the newcomer is
 * refused instead (and applies only to the lookup that fetched it).
 * Counters: mxguard_sts_cache_entries, mxguard_sts_cache_evictions_total
 * {reason}, mxguard_sts_cache_refusals_total{reason}.
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
	int64_t		 last_used;	/* last decision it took part in
					 * (0 on put: the fetch time) */
	char		*body;		/* policy text, malloc'd */
	size_t		 bodylen;
	struct sts_policy pol;		/* parsed body (on get) */
};

enum sts_cache_state {
	STS_CACHE_FRESH,	/* valid, not yet due for refresh */
	STS_CACHE_REFRESH,	/* valid, within the refresh margin */
	STS_CACHE_EXPIRED,	/* past max_age: no longer a policy */
};

#define STS_CACHE_ENTRIES	10000	/* config sts_cache_max_entries */
#define STS_CACHE_ENTRY_MAX	8192	/* config sts_cache_max_entry_size */

/* Opens (creates) DIR/sts-cache.mdb with the default limits. */
struct sts_cache *sts_cache_open(const char *dir, char *err, size_t errsz);
/* The same with limits: max_entries policies of at most entry_max bytes
 * (domain, times, id and policy text); mapsize 0 derives the file's bound
 * from the two (a test gives a small one to see MDB_MAP_FULL). */
struct sts_cache *sts_cache_open_limits(const char *dir, size_t max_entries,
		    size_t entry_max, size_t mapsize, char *err, size_t errsz);
void		 sts_cache_close(struct sts_cache *);
/* 1 found (entry filled; sts_cache_entry_clear() after), 0 absent,
 * -1 error. */
int		 sts_cache_get(struct sts_cache *, const char *domain,
		    struct sts_cache_entry *);
/* Stores a copy; 0, 1 when the cache holds a policy fetched later
 * (e->fetched is when the fetch started: the last one started wins), or
 * -1 when it was not stored (too large, the cache full of live enforce
 * policies, a store error: each logged and counted).  A record the cache
 * had for domain stays as it was on 1 and -1. */
int		 sts_cache_put(struct sts_cache *, const char *domain,
		    const struct sts_cache_entry *);
/* Notes that domain's policy took part in a decision at now (for the
 * least-recently-used order); writes at most once an hour per domain.
 * 1 when it wrote the mark (the policy's first use in that hour: the
 * engine then writes it through to Redis again), else 0. */
int		 sts_cache_touch(struct sts_cache *, const char *domain,
		    int64_t now);
/* Policies in the cache. */
size_t		 sts_cache_count(struct sts_cache *);
int		 sts_cache_del(struct sts_cache *, const char *domain);
void		 sts_cache_entry_clear(struct sts_cache_entry *);
/* A policy due for a background refresh (sts_cache_due()). */
struct sts_cache_due {
	char		 domain[256];
	char		 id[STS_ID_MAX + 1];
	int64_t		 expires;
	int64_t		 last_used;
};
/* Fills out[0..max-1] with the policies due for a refresh at now: live,
 * within margin_pct of their expiry, and used in a decision during the
 * last max_age (expires - fetched) seconds.  Soonest expiry first; the
 * number filled is returned (0 also on a store error).  Reads headers
 * only, in one read transaction. */
size_t		 sts_cache_due(struct sts_cache *, int64_t now, int margin_pct,
		    struct sts_cache_due *out, size_t max);
/* margin_pct: refresh when less than this percentage of max_age is left.
 * (A new id is found by the lookup itself, which reads the _mta-sts TXT
 * record every time, as RFC 8461 section 5.1 asks, not by this state.) */
enum sts_cache_state sts_cache_state(const struct sts_cache_entry *,
		    int64_t now, int margin_pct);

#endif
