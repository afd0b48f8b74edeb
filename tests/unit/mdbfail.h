/*
 * mdbfail.h - LMDB reads that fail on demand, for tests of "a store that
 * cannot answer".  A test file that includes it also carries the line
 * "// WRAP: mdb_get" (the Makefile links it with --wrap=mdb_get); while
 * mdb_get_fails is set every read fails with EIO.
 */
#ifndef MXG_TEST_MDBFAIL_H
#define MXG_TEST_MDBFAIL_H

#include <errno.h>
#include <lmdb.h>

static int mdb_get_fails;
int __real_mdb_get(MDB_txn *, MDB_dbi, MDB_val *, MDB_val *);
int __wrap_mdb_get(MDB_txn *, MDB_dbi, MDB_val *, MDB_val *);
int
__wrap_mdb_get(MDB_txn *txn, MDB_dbi dbi, MDB_val *k, MDB_val *v)
{
	if (mdb_get_fails)
		return EIO;
	return __real_mdb_get(txn, dbi, k, v);
}

#endif
