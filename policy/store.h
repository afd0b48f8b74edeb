/*
 * store.h - the persistent stores under state_dir: one LMDB file each
 * (sts-cache.mdb, history.mdb), opened the same way.  Writes are one
 * synchronous transaction each, so a store survives kill -9.
 */
#ifndef MXG_STORE_H
#define MXG_STORE_H

#include <stddef.h>
#include <lmdb.h>

/* Creates dir (0700) if needed and opens DIR/FILE with the default
 * database.  0, or -1 with err naming the file; on success the caller
 * owns *env and closes it with mdb_env_close(). */
int	store_open(const char *dir, const char *file, size_t mapsize,
	    MDB_env **env, MDB_dbi *dbi, char *err, size_t errsz);

#endif
