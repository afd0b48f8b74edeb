/*
 * store.h - the persistent stores under state_dir: one LMDB file each
 * (sts-cache.mdb, history.mdb), opened the same way.  Writes are one
 * synchronous transaction each, so a store survives kill -9.
 *
 * Every store is bounded (docs/policy.md, "Bounded stores"): at most
 * max_entries records of at most entry_max bytes (key and value), in a
 * map (the file's upper bound) sized from those two so that a store full
 * of records of the largest size still fits.  The owner of a store (the
 * MTA-STS cache, the TLS history) decides what to evict when it is full;
 * MDB_MAP_FULL is never fatal, the owner evicts and retries or refuses
 * the write.
 */
#ifndef MXG_STORE_H
#define MXG_STORE_H

#include <stddef.h>
#include <lmdb.h>

struct store_limits {
	size_t	max_entries;	/* records at most */
	size_t	entry_max;	/* bytes of one record (key + value) */
	size_t	mapsize;	/* 0: store_mapsize() of the two above */
};

/* The map size for limits l: every record on its own overflow pages,
 * B-tree pages half full, and half again for copy-on-write and free-page
 * fragmentation. */
size_t	store_mapsize(const struct store_limits *l);

/* Creates dir (0700) if needed and opens DIR/FILE with the default
 * database, its map bounded by l.  0, or -1 with err naming the file; on
 * success the caller owns *env and closes it with mdb_env_close(). */
int	store_open(const char *dir, const char *file,
	    const struct store_limits *l, MDB_env **env, MDB_dbi *dbi,
	    char *err, size_t errsz);

/* Refuses (-1, err saying which file and why) a store whose data file
 * PATH or lock file PATH-lock (MDB_NOSUBDIR) is a symbolic link or not a
 * regular file; a file that does not exist yet is fine.  Called by every
 * opener before mdb_env_open(); a time-of-check test only (store.c). */
int	store_check_files(const char *path, char *err, size_t errsz);

/* Appended to an open's error when LMDB says EACCES: most likely files an
 * older mxguard made as root, before it opened the stores as `user`. */
#define STORE_EACCES_HINT	" (a store file owned by another user? " \
	"give state_dir's files to the configured user)"

/*
 * mdb_txn_begin(env, NULL, flags, txn) that survives another process
 * having grown the file past this one's map: several processes share a
 * store (the workers, a `mxguard policy` run), and one that opened it
 * with larger limits (a worker started after a SIGHUP raised
 * *_max_entries) maps more and may write beyond the others' maps.  LMDB
 * then answers MDB_MAP_RESIZED; the map is set to the size the file now
 * has (logged: event=store-map-adopted) and the begin retried, once.
 * Only where no other transaction of this process is open on env: every
 * caller begins its transactions one after the other, except
 * store_room(), which runs inside its caller's write transaction (and
 * needs no resize there: store.c).  A write transaction first clears
 * the read slots of dead processes (mdb_reader_check()), which would pin
 * old pages (logged: event=store-readers-cleared).  0 or an LMDB error
 * code.
 */
int	store_txn_begin(MDB_env *env, unsigned int flags, MDB_txn **txn);

/*
 * A store error its caller turns into "no record" or "not written" (a
 * lookup that decides a verdict, a mark): counted every time in
 * mxguard_store_errors_total{store,op} and logged (event=store-error) at
 * most once a minute per store and op, so that a store failing on every
 * lookup neither floods the log nor passes unseen.  store and op come
 * from fixed sets ("history", "sts-cache"; "read", "write").
 */
void	store_error(const char *store, const char *op, int rc);

/* Records in the store (within txn); 0 on error. */
size_t	store_count(MDB_txn *txn, MDB_dbi dbi);

/* Is there room for a newcomer: the pages in use (the file's high-water
 * mark less its free list) below three quarters of the map?  The last
 * quarter is kept for updates of the records already in, so that a full
 * store never blocks the refresh of a record it keeps.  Reads the last
 * committed state (its own read-only transaction); called only inside the
 * caller's write transaction (store_txn_begin() says why). */
int	store_room(MDB_env *env);

/* Is rc the store being full (map or transaction), which the owner
 * answers by evicting, never by failing for good? */
int	store_full(int rc);

#endif
