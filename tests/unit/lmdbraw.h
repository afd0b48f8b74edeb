/*
 * lmdbraw.h - a raw value under a key of a store file that the module is
 * not holding open (an LMDB environment is opened once per process): a
 * record another version wrote, or a corrupt one.
 */
#ifndef MXG_TEST_LMDBRAW_H
#define MXG_TEST_LMDBRAW_H

#include <string.h>

#include <lmdb.h>

static void
lmdb_put_raw(const char *path, const char *key, const void *val,
    size_t len)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = { strlen(key), (void *)key }, v = { len, (void *)val };

	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_mapsize(env, 64 << 20), 0);
	assert_int_equal(mdb_env_open(env, path, MDB_NOSUBDIR, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, NULL, 0, &dbi), 0);
	assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

#endif
