/*
 * store.c - opening an LMDB store under state_dir (see store.h).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "policy/store.h"

int
store_open(const char *dir, const char *file, size_t mapsize, MDB_env **envp,
    MDB_dbi *dbi, char *err, size_t errsz)
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
	if ((rc = mdb_env_create(&env)) != 0)
		goto fail;
	mdb_env_set_mapsize(env, mapsize);
	if ((rc = mdb_env_open(env, path, MDB_NOSUBDIR | MDB_NOTLS,
	    0600)) != 0)
		goto fail;
	if ((rc = mdb_txn_begin(env, NULL, 0, &txn)) != 0)
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
	snprintf(err, errsz, "%s: %s", path, mdb_strerror(rc));
	if (env != NULL)
		mdb_env_close(env);
	return -1;
}
