/*
 * store.c - opening a bounded LMDB store under state_dir (see store.h),
 * the check, before any store is opened, that neither of its files is a
 * symbolic link, and beginning a transaction on a file that another
 * process has grown.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/log.h"
#include "core/stats.h"
#include "policy/store.h"

#define PAGE	4096
#define LEAF_MAX 2000	/* LMDB's largest node in a 4 KiB leaf, about */

size_t
store_mapsize(const struct store_limits *l)
{
	size_t per, n, sz;

	if (l->mapsize != 0)
		return l->mapsize;
	/* a record that fits a leaf node shares leaf pages (half full at
	 * worst); a larger value goes to overflow pages of its own, its key
	 * and page number to a leaf */
	if (l->entry_max + 16 <= LEAF_MAX)
		per = 2 * (l->entry_max + 16);
	else
		per = (l->entry_max + 16 + PAGE - 1) / PAGE * PAGE + 2 * 300;
	n = l->max_entries ? l->max_entries : 1;
	sz = n * per;
	sz += sz / 2 + 2 * 1024 * 1024;
	return (sz + 1024 * 1024 - 1) / (1024 * 1024) * (1024 * 1024);
}

/*
 * mdb_env_open() cannot be told O_NOFOLLOW, so the files are looked at
 * first.  That is a time-of-check check: a process that can write
 * state_dir may still swap a file for a link in between, so it is defence
 * in depth only.  What closes the hole is that the stores are opened only
 * by the unprivileged `user` that owns state_dir, never by root
 * (cmd/priv.h): a link then leads nowhere that user could not write
 * anyway.
 */
int
store_check_files(const char *path, char *err, size_t errsz)
{
	static const char *const suffix[] = { "", "-lock" };
	char f[4096];
	struct stat st;
	size_t i;

	for (i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
		if (snprintf(f, sizeof(f), "%s%s", path, suffix[i]) >=
		    (int)sizeof(f)) {
			snprintf(err, errsz, "%s: path too long", path);
			return -1;
		}
		if (lstat(f, &st) == -1) {
			if (errno == ENOENT)
				continue;	/* LMDB makes it */
			snprintf(err, errsz, "checking %s before opening it: "
			    "%s", f, strerror(errno));
			return -1;
		}
		if (S_ISLNK(st.st_mode)) {
			snprintf(err, errsz, "refusing to open %s: it is a "
			    "symbolic link (a store is never opened through "
			    "one; remove it)", f);
			return -1;
		}
		if (!S_ISREG(st.st_mode)) {
			snprintf(err, errsz, "refusing to open %s: not a "
			    "regular file", f);
			return -1;
		}
	}
	return 0;
}

int
store_open(const char *dir, const char *file, const struct store_limits *l,
    MDB_env **envp, MDB_dbi *dbi, char *err, size_t errsz)
{
	MDB_env *env = NULL;
	MDB_txn *txn;
	char path[4096];
	int rc;

	if (mkdir(dir, 0700) == -1 && errno != EEXIST) {
		snprintf(err, errsz, "%s: %s", dir, strerror(errno));
		return -1;
	}
	if (snprintf(path, sizeof(path), "%s/%s", dir, file) >=
	    (int)sizeof(path)) {
		snprintf(err, errsz, "state_dir too long");
		return -1;
	}
	if (store_check_files(path, err, errsz) == -1)
		return -1;
	if ((rc = mdb_env_create(&env)) != 0)
		goto fail;
	/* a file already larger (an older, unbounded version) keeps its
	 * data: LMDB never maps less than what is in use */
	if ((rc = mdb_env_set_mapsize(env, store_mapsize(l))) != 0)
		goto fail;
	if ((rc = mdb_env_open(env, path, MDB_NOSUBDIR | MDB_NOTLS,
	    0600)) != 0)
		goto fail;
	/* read slots left by a killed process (a worker) pin old pages */
	(void)mdb_reader_check(env, NULL);
	if ((rc = store_txn_begin(env, 0, &txn)) != 0)
		goto fail;
	if ((rc = mdb_dbi_open(txn, NULL, 0, dbi)) != 0) {
		mdb_txn_abort(txn);
		goto fail;
	}
	if ((rc = mdb_txn_commit(txn)) != 0)
		goto fail;
	*envp = env;
	return 0;
fail:
	snprintf(err, errsz, "opening %s: %s%s", path, mdb_strerror(rc),
	    rc == EACCES ? STORE_EACCES_HINT : "");
	if (env != NULL)
		mdb_env_close(env);
	return -1;
}

/*
 * LMDB returns MDB_MAP_RESIZED from mdb_txn_begin() only (0.9: when the
 * last committed meta page names a page beyond this process's map).  A
 * put or a commit never does: a write transaction, once begun, holds the
 * writer lock, so no other process grows the file under it, and a write
 * beyond this process's own map is MDB_MAP_FULL, which every owner
 * answers already (store_full()).
 *
 * mdb_env_set_mapsize(env, 0) maps the file anew with the size its meta
 * page records (every commit persists the larger of that and the
 * committer's map: so the largest map of any process), at least what is
 * in use.  Unmapping under an open transaction of this process would
 * pull its pages from under it; LMDB refuses only an open write
 * transaction (EINVAL), so the callers guarantee the rest (store.h).
 * The adopted map is larger than what this process's limits give: its
 * count bound (max_entries) still holds, and the file was already that
 * large.
 */
int
store_txn_begin(MDB_env *env, unsigned int flags, MDB_txn **txn)
{
	MDB_envinfo ei;
	const char *path;
	char qp[600];
	int rc, dead = 0;

	/* a writer first clears the read slots of processes that died in a
	 * read (a worker, a `mxguard policy` killed): each pins the snapshot
	 * it read, no page freed since is used again, and every commit grows
	 * the file until MDB_MAP_FULL refuses even updates.  The open's check
	 * alone leaves that to whoever opens the store next */
	if (!(flags & MDB_RDONLY) && mdb_reader_check(env, &dead) == 0 &&
	    dead > 0) {
		if (mdb_env_get_path(env, &path) != 0)
			path = "-";
		log_info("event=store-readers-cleared file=%s dead=%d "
		    "detail=\"read slots of processes that died in a read\"",
		    log_q(qp, sizeof(qp), path), dead);
	}
	if ((rc = mdb_txn_begin(env, NULL, flags, txn)) != MDB_MAP_RESIZED)
		return rc;
	if ((rc = mdb_env_set_mapsize(env, 0)) != 0)
		return rc;
	if (mdb_env_get_path(env, &path) != 0)
		path = "-";
	if (mdb_env_info(env, &ei) == 0)
		log_info("event=store-map-adopted file=%s mapsize=%zu "
		    "detail=\"another process grew the file past this "
		    "one's map\"", log_q(qp, sizeof(qp), path),
		    ei.me_mapsize);
	return mdb_txn_begin(env, NULL, flags, txn);
}

#define ERR_LOG_S	60	/* store_error(): one line a minute at most */
#define ERR_SLOTS	8	/* (store, op) pairs: fixed sets, few */

void
store_error(const char *store, const char *op, int rc)
{
	static struct {
		const char	*store, *op;
		time_t		 last;	/* 0: never logged */
		unsigned long	 quiet;	/* errors not logged since */
	} seen[ERR_SLOTS];
	struct timespec ts;
	char name[160], qe[300];
	size_t i;

	snprintf(name, sizeof(name), "mxguard_store_errors_total"
	    "{store=\"%s\",op=\"%s\"}", store, op);
	stats_add(stats_counter(name, "Store operations that failed (a "
	    "lookup taken as no record, a write not done)"), 1);
	for (i = 0; i < ERR_SLOTS - 1 && seen[i].store != NULL &&
	    (strcmp(seen[i].store, store) != 0 ||
	    strcmp(seen[i].op, op) != 0); i++)
		;
	/* the last slot, shared once the others are taken, only
	 * rate-limits more */
	if (seen[i].store == NULL) {
		seen[i].store = store;
		seen[i].op = op;
	}
	clock_gettime(CLOCK_MONOTONIC, &ts);
	if (seen[i].last != 0 && ts.tv_sec - seen[i].last < ERR_LOG_S) {
		seen[i].quiet++;
		return;
	}
	log_warn("event=store-error store=%s op=%s error=%s unlogged=%lu",
	    store, op, log_q(qe, sizeof(qe), mdb_strerror(rc)),
	    seen[i].quiet);
	seen[i].last = ts.tv_sec ? ts.tv_sec : 1;
	seen[i].quiet = 0;
}

size_t
store_count(MDB_txn *txn, MDB_dbi dbi)
{
	MDB_stat st;

	if (mdb_stat(txn, dbi, &st) != 0)
		return 0;
	return st.ms_entries;
}

int
store_full(int rc)
{
	return rc == MDB_MAP_FULL || rc == MDB_TXN_FULL;
}

int
store_room(MDB_env *env)
{
	MDB_envinfo ei;
	MDB_stat st;
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	size_t used, free_pages = 0, map_pages;

	if (mdb_env_info(env, &ei) != 0 || mdb_env_stat(env, &st) != 0)
		return 1;
	map_pages = ei.me_mapsize / st.ms_psize;
	/* the free list is database 0: each record a list of page numbers,
	 * its first word their count (mdb_stat -f reads it the same way,
	 * and LMDB opens it to read-only transactions only).  Called inside
	 * the caller's write transaction, so not store_txn_begin(): no
	 * resize may happen there, nor is one needed (the meta page this
	 * reads is the one that write transaction began from, which fitted
	 * the map). */
	if (mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) != 0)
		return 1;
	if (mdb_cursor_open(txn, 0, &cur) == 0) {
		while (mdb_cursor_get(cur, &k, &v, MDB_NEXT) == 0)
			if (v.mv_size >= sizeof(size_t)) {
				size_t n;

				memcpy(&n, v.mv_data, sizeof(n));
				free_pages += n;
			}
		mdb_cursor_close(cur);
	}
	mdb_txn_abort(txn);
	used = ei.me_last_pgno + 1;
	used = used > free_pages ? used - free_pages : 0;
	return used < map_pages / 4 * 3;
}
