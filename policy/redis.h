/*
 * redis.h - the optional shared policy state: MTA-STS policies and TLS
 * history in a Redis server that several gateways share (config
 * redis_address; docs/policy.md, "Shared state in Redis").
 *
 * LMDB (policy/cache.c, policy/history.c) stays each gateway's source of
 * truth.  Redis is written through (every policy this gateway fetched,
 * every TLS history update) and read on a local miss; what is read can
 * only make a verdict stricter or equal, never weaker than the local
 * state alone would make it:
 *   - an MTA-STS policy from Redis is used only when this gateway has no
 *     valid policy of its own and its own TXT lookup and fetch gave none
 *     (sts_effective() in policy.c: fresh fetch, then the LMDB cache, then
 *     Redis), only in mode enforce, only unexpired, and it is never copied
 *     into LMDB, so it never suppresses a fetch of the real policy;
 *   - a TLS history record from Redis is merged field by field towards
 *     "completed STARTTLS" (later last_tls wins), never away from it;
 *     both an address's record and an MX host's own record (whatever
 *     its address: redis_host_get(), redis_host_put()) are shared.
 * Every value names its key (the domain, the MX host's address): one read
 * under another key (copied there) is not that key's, and is ignored and
 * counted like a value that does not parse, claims a policy fetch in the
 * future or a max_age the policy text does not carry, or is in the
 * format of an mxguard before names (MXGS1, MXGH1)
 * (mxguard_redis_invalid_total{kind}; logged at most every 10 s at
 * warning, the rest at debug); a history time ahead of the clock
 * is brought back to now + REDIS_SKEW_S (clocks differ; TLS evidence is
 * never dropped for it).
 *
 * The client (redis.c) is one per process, on the process's event loop
 * (policy_new() makes it, policy_free() frees it), with AUTH, optional
 * TLS (redis_tls: the server's certificate verified, its name a
 * subjectAltName, never only the subject CN; a client certificate for
 * tls-auth-clients), its own timeouts (redis_timeout) and
 * reconnection with back-off.  A connection is never shared across
 * fork(): the first connect runs from the loop, not from redis_new(); a
 * worker forked later frees the inherited engine (redis_free() there
 * leaves the parent's socket on the parent's loop and writes nothing to
 * it) and makes its own loop and engine; and a connection used in another
 * process than the one that made it is dropped unused.  While Redis is
 * down (or its certificate fails verification) every operation fails at
 * once (a lookup asks nothing and waits for nothing) and is counted:
 * mxguard_redis_errors_total{op}, mxguard_redis_up.
 *
 * Who frees what: redis_new()/redis_free(); a get returns an op that ends
 * with its callback (always from the loop, never from inside the get) or
 * with redis_cancel() (no callback).  Values passed to callbacks belong
 * to the client and live only during the callback.
 */
#ifndef MXG_REDIS_H
#define MXG_REDIS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/config.h"
#include "core/ev.h"
#include "policy/cache.h"
#include "policy/history.h"

struct redis;
struct redis_op;

/* ---- the client (redis.c) ---- */

/* NULL with err when cfg->redis_address is empty (off: err "") or the
 * address cannot be used. */
struct redis	*redis_new(struct ev_loop *, const struct config *,
		    char *err, size_t errsz);
void		 redis_free(struct redis *);
/* A reload's end of a client: no new ops are handed to it; those under
 * way are answered as usual (reply, timeout, disconnect), then it frees
 * itself.  Frees at once when none is under way. */
void		 redis_retire(struct redis *);
/* Connected and authenticated. */
int		 redis_up(const struct redis *);

/* rc: 1 found and valid (e filled, e->pol parsed), 0 absent or invalid
 * (counted), -1 error or timeout (counted). */
typedef void	 redis_sts_cb(void *arg, int rc,
		    const struct sts_cache_entry *e);
typedef void	 redis_hist_cb(void *arg, int rc,
		    const struct history_entry *e);
/* NULL when Redis is not up (counted: errors{op}): then no callback. */
struct redis_op	*redis_sts_get(struct redis *, const char *domain,
		    redis_sts_cb *, void *arg);
struct redis_op	*redis_hist_get(struct redis *, const struct sockaddr *dst,
		    redis_hist_cb *, void *arg);
/* An MX host's own record (history.h: "host|"), whatever its address:
 * an attacker who answers the host's address query with an address of
 * its own meets it on every gateway, not only on the one that saw the
 * host's TLS. */
struct redis_op	*redis_host_get(struct redis *, const char *host,
		    redis_hist_cb *, void *arg);
void		 redis_cancel(struct redis_op *);
/* Write-through, fire and forget (errors counted and logged).  The
 * server keeps the newer fetch of a policy (a compare on the fetch time,
 * in one script) and merges a history record towards TLS. */
void		 redis_sts_put(struct redis *, const char *domain,
		    const struct sts_cache_entry *);
void		 redis_hist_put(struct redis *, const struct sockaddr *dst,
		    const struct history_entry *);
void		 redis_host_put(struct redis *, const char *host,
		    const struct history_entry *);

/* ---- values and merge rules (redis_val.c; pure, no Redis) ---- */

#define REDIS_SKEW_S	300	/* clock difference tolerated between
				 * gateways */

#define REDIS_NAME_MAX	255	/* a key's name in a value: printable
				 * ASCII, no space */
#define REDIS_HIST_MAX	400	/* a history value's bytes, at most: the
				 * name (an MX host's, up to 255) and six
				 * numbers */

/* "MXGS2 DOMAIN FETCHED EXPIRES ID\n" then the policy text; malloc'd
 * into *out.  -1 when domain is no name a value can carry. */
int		 redis_sts_encode(const char *domain,
		    const struct sts_cache_entry *, char **out, size_t *len);
/* The value read under domain's key: 0 with e filled (body malloc'd, pol
 * parsed: sts_cache_entry_clear() after), -1 malformed (err says why):
 * bad header (MXGS1 included), another name than domain, an id that is
 * no MTA-STS id, a policy that does not parse, a fetch time in the
 * future, an expiry other than fetch time + the policy's max_age. */
int		 redis_sts_decode(const char *buf, size_t len,
		    const char *domain, int64_t now,
		    struct sts_cache_entry *e, char *err, size_t errsz);
/* May a policy read from Redis decide where the local state has none?
 * local is this gateway's own policy (NULL: none).  1 only when local is
 * absent or expired and remote is an unexpired enforce policy. */
int		 redis_sts_usable(const struct sts_cache_entry *local,
		    const struct sts_cache_entry *remote, int64_t now);
/* The rule the server-side script applies to a write: does a policy
 * fetched at new_fetched replace one fetched at cur_fetched?  (The newer
 * fetch wins; only successful fetches are ever written, so a failed
 * fetch never replaces anything.) */
int		 redis_sts_replaces(int64_t cur_fetched, int64_t new_fetched);

/* "MXGH2 NAME FIRST_TLS LAST_TLS LAST_FAIL LAST_SEEN TLS_COUNT
 * FAIL_COUNT", NAME as in the key: an address (inet_ntop()'s) or an MX
 * host's name (its own record) */
int		 redis_hist_encode(const char *addr,
		    const struct history_entry *, char *buf, size_t sz);
/* The value read under addr's key: 0, or -1 malformed: bad header (MXGH1
 * included), another name than addr, not six decimal numbers, first_tls
 * after last_tls (or only one of them), counts beyond 32 bits.  A time
 * after now + REDIS_SKEW_S (another gateway's clock is ahead) is brought
 * back to it, the record kept: never a reason to drop TLS evidence, and
 * a last_tls there still counts (history_expects_tls()). */
int		 redis_hist_decode(const char *buf, size_t len,
		    const char *addr, int64_t now, struct history_entry *e,
		    char *err, size_t errsz);

#endif
