/*
 * tlsrpt_int.h - shared by tlsrpt_store.c and tlsrpt_report.c (and, for
 * tr_sync()/tr_dirty() only, tlsrpt_rec.c): the store handle and the
 * stored entry's layout.  Not for other modules.
 *
 * LMDB file DIR/tlsrpt.mdb, three named databases:
 *   "entries"  key  day u32 BE | domain | NUL | policy type u8 |
 *                   SHA-256 of (type, policy strings, MX patterns)
 *              val  an entry (below)
 *   "days"     key  day u32 BE
 *              val  "MXD1" | domains u32 | overflow_sessions u64
 *              key  day u32 BE | 'b'  (the day's byte budget)
 *              val  "MXB1" | bytes u64 | full u32
 *              (bytes: the estimated file footprint of the day's
 *              entries, tr_foot(); full: TR_FULL_* bits, each logged
 *              once per day; a key of its own so that a binary that
 *              knows only MXD1 reads and prunes the days as before)
 *              key  day u32 BE | 'u'  (the day's report destinations)
 *              val  "MXU1" | claimed u32 | refused u32 | full u32
 *              (tlsrpt_dest_claim(); full: 1 once the refusal was
 *              logged)
 *   "sent"     key  day u32 BE | domain
 *              val  when i64 (Unix time the report was marked sent)
 * The day leads every key, so one day's records are adjacent, listing
 * is oldest first, and pruning is a cursor walk from the start.
 *
 * Entry (host byte order; local state only):
 *   "MXT1" | type u8 | 3 pad | successful u64 | failed u64 |
 *   detail_overflow u64 | nbuckets u32 | nstr u16 | nmx u16 |
 *   nstr x (len u16 | bytes) | nmx x (len u16 | bytes) |
 *   nbuckets x (result u8 | count u64 | 6 x (len u16 | bytes))
 * the six bucket strings being sending-mta-ip, receiving-mx-hostname,
 * receiving-mx-helo, receiving-ip, failure-reason-code,
 * additional-information.  Buckets are appended at the end.
 */
#ifndef MXG_TLSRPT_INT_H
#define MXG_TLSRPT_INT_H

#include <stddef.h>
#include <stdint.h>
#include <lmdb.h>

#include "policy/tlsrpt.h"

#define TR_MAGIC	"MXT1"
#define TR_HDR		40
#define TR_OFF_TYPE	4
#define TR_OFF_SUCC	8
#define TR_OFF_FAIL	16
#define TR_OFF_OVER	24
#define TR_OFF_NBUCK	32
#define TR_OFF_NSTR	36
#define TR_OFF_NMX	38
#define TR_BUCKET_STRS	6

/* tlsrpt_store.c's head comment explains these */
#define TR_STATE_NAME	(2 + 32 + 15)	/* "x-<32 hex>.tlsrpt.invalid" */
#define TR_URI_VALUES	5	/* delivery state per destination */
#define TR_PAIR_VALUES	5	/* per pair, besides its sent mark */
#define TR_PAGE		4096	/* LMDB's page on Linux */
#define TR_NODE_MAX	2000	/* largest node in a leaf page, about */
#define TR_DOMAIN_BYTES	8192	/* day budget per max_domains */
#define TR_DAYS_MAX	(366 + 2) /* tlsrpt_retention's bound + 2 */
#define TR_FULL_DOMAINS	1u	/* max_domains reached */
#define TR_FULL_BYTES	2u	/* the day's byte budget reached */
#define TR_FULL_STORE	4u	/* the map 3/4 used (store_room()) */

struct tlsrpt_store {
	MDB_env			*env;
	MDB_dbi			 entries, days, sent;
	struct tlsrpt_limits	 lim;		/* mapsize: the map set */
	uint64_t		 day_bytes;	/* budget per day */
	uint64_t		 synced_ms;	/* CLOCK_MONOTONIC, last sync */
	int			 dirty;		/* commits since, unsynced */
	int			 run_fd;	/* tlsrpt_run_lock()'s, or -1 */
	char			 lockpath[4096 + 20];
	char			 err[256];
};

struct tr_str {
	const unsigned char	*p;
	uint16_t		 n;
};

/* A decoded view of an entry; pointers into the value (valid while the
 * transaction that read it lives). */
struct tr_entry {
	uint8_t			 type;
	uint64_t		 successful, failed, detail_overflow;
	uint32_t		 nbuckets;
	uint16_t		 nstr, nmx;
	const unsigned char	*strs, *mx, *buckets, *end;
};

struct tr_bucket {
	uint8_t			 result;
	uint64_t		 count;
	struct tr_str		 s[TR_BUCKET_STRS];
};

/* Checks every length of the value; 0 or -1 (corrupt). */
int	tr_entry_decode(const void *, size_t, struct tr_entry *);
/* Reads the string at *pp and advances; only on decoded entries. */
void	tr_next_str(const unsigned char **pp, struct tr_str *);
void	tr_next_bucket(const unsigned char **pp, struct tr_bucket *);
/* Key prefix day | domain | NUL into buf (>= 4 + 254 + 1); length or -1
 * when the domain is not a host name.  The domain is lower-cased and a
 * trailing dot dropped. */
int	tr_domain_prefix(int64_t day, const char *domain, unsigned char *buf);
void	tr_seterr(struct tlsrpt_store *, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
/* The footprint in the file of a record (key klen, value vlen): leaf
 * pages half full at worst, or the value's own overflow pages. */
uint64_t tr_foot(size_t klen, size_t vlen);
/*
 * The environment is MDB_NOSYNC: commits reach the OS, not the disk.
 * tr_sync() flushes them (mdb_env_sync(env, 1)) when there are unsynced
 * commits and force is set or a second has passed since the last flush:
 * 0, or -1 (the error in tlsrpt_store_error()).  tr_dirty(): 1 while
 * commits of this handle are not known to be on disk.
 */
int	tr_sync(struct tlsrpt_store *, int force);
int	tr_dirty(const struct tlsrpt_store *);

#endif
