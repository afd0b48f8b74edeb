/*
 * fuzz_store_rec.c - a record of the local stores read back from disk:
 * DIR/sts-cache.mdb (policy/cache.c: rec_decode(), layouts MXS1 and
 * MXS2) and DIR/history.mdb (policy/history.c: decode()), which another
 * version, a corrupted file or a crash may have written.  The value goes
 * into the file through an LMDB handle of the target's own (as
 * tests/unit/lmdbraw.h does), closed before the module opens the file;
 * then every reader of the module goes over it, with a store of one
 * entry, so that a write makes room and scans the record too:
 *
 *   - STS cache: sts_cache_get() (a policy found is a NUL-terminated
 *     copy whose text parses), sts_cache_state(), sts_cache_due(),
 *     sts_cache_touch(), and sts_cache_put() of another domain;
 *   - history: history_get() (a record found, or HISTORY_UNREADABLE),
 *     history_expects_tls(), history_record() of the same key (a success
 *     and a failure) and of another host.
 *
 * Besides memory errors, UBSan traps on a signed overflow of the times
 * a record holds.  Input: the first byte picks the store (even: STS
 * cache, odd: history), the rest is the value.
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lmdb.h>

#include "core/log.h"
#include "policy/cache.h"
#include "policy/history.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW	INT64_C(1796083200)	/* 2026-12-01 */
#define DOMAIN	"example.com"
#define MXHOST	"mx.example.com"

/* in /dev/shm when there is one: every commit of the history is a
 * synchronous one, which a disk makes a hundred times slower */
static char dir[64];

static void
rm_store(const char *file)
{
	char p[128];

	snprintf(p, sizeof(p), "%s/%s", dir, file);
	unlink(p);
	snprintf(p, sizeof(p), "%s/%s-lock", dir, file);
	unlink(p);
}

static void
cleanup(void)
{
	rm_store("sts-cache.mdb");
	rm_store("history.mdb");
	rmdir(dir);
}

/* The value under key in DIR/file, a new file. */
static void
put_raw(const char *file, const char *key, const void *val, size_t len)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = { strlen(key), (void *)key }, v = { len, (void *)val };
	char p[128];

	rm_store(file);
	snprintf(p, sizeof(p), "%s/%s", dir, file);
	if (mdb_env_create(&env) != 0 ||
	    mdb_env_set_mapsize(env, 8 << 20) != 0 ||
	    mdb_env_open(env, p, MDB_NOSUBDIR | MDB_NOSYNC, 0600) != 0 ||
	    mdb_txn_begin(env, NULL, 0, &txn) != 0 ||
	    mdb_dbi_open(txn, NULL, 0, &dbi) != 0 ||
	    mdb_put(txn, dbi, &k, &v, 0) != 0 || mdb_txn_commit(txn) != 0)
		abort();
	mdb_env_close(env);
}

static void
check_sts(const uint8_t *val, size_t len)
{
	static const char body[] = "version: STSv1\nmode: enforce\n"
	    "mx: mx.example.net\nmax_age: 86400\n";
	struct sts_cache *c;
	struct sts_cache_entry e;
	struct sts_cache_due due[4];
	char err[256];
	int rc;

	put_raw("sts-cache.mdb", DOMAIN, val, len);
	if ((c = sts_cache_open_limits(dir, 1, 0, 0, err, sizeof(err))) ==
	    NULL)
		abort();
	rc = sts_cache_get(c, DOMAIN, &e);
	if (rc == 1) {
		if (e.body == NULL || e.body[e.bodylen] != '\0' ||
		    e.id[STS_ID_MAX] != '\0')
			__builtin_trap();
		(void)sts_cache_state(&e, NOW, 0);
		(void)sts_cache_state(&e, NOW, 100);
		sts_cache_entry_clear(&e);
	} else if (rc != 0 && rc != -1)
		__builtin_trap();
	(void)sts_cache_due(c, NOW, 100, due, 4);
	(void)sts_cache_due(c, NOW, 1, due, 4);
	(void)sts_cache_touch(c, DOMAIN, NOW);
	memset(&e, 0, sizeof(e));
	snprintf(e.id, sizeof(e.id), "20261201");
	e.fetched = NOW;
	e.expires = NOW + 86400;
	e.checked = NOW;
	e.body = (char *)body;
	e.bodylen = sizeof(body) - 1;
	(void)sts_cache_put(c, "other.example", &e);
	(void)sts_cache_due(c, NOW + 86000, 50, due, 4);
	sts_cache_close(c);
}

static void
check_hist(const uint8_t *val, size_t len)
{
	struct sockaddr_in sin;
	struct history *h;
	struct history_entry e, prev;
	char key[512], err[256];
	int rc;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	inet_pton(AF_INET, "192.0.2.1", &sin.sin_addr);
	if (history_key(MXHOST, (struct sockaddr *)&sin, key,
	    sizeof(key)) == -1)
		abort();
	put_raw("history.mdb", key, val, len);
	if ((h = history_open_limits(dir, 1, 30 * 86400, 0, err,
	    sizeof(err))) == NULL)
		abort();
	rc = history_get(h, MXHOST, (struct sockaddr *)&sin, &e);
	if (rc != 0 && rc != 1 && rc != -1 && rc != HISTORY_UNREADABLE)
		__builtin_trap();
	(void)history_expects_tls(&e, NOW, 30 * 86400);
	(void)history_expects_tls(&e, NOW, 1);
	(void)history_record(h, MXHOST, (struct sockaddr *)&sin, 1, 1, NOW,
	    &prev);
	(void)history_record(h, MXHOST, (struct sockaddr *)&sin, 1, 0, NOW,
	    &prev);
	(void)history_record(h, "mx2.example.com", (struct sockaddr *)&sin,
	    1, 1, NOW, &prev);
	history_close(h);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;

	if (!ready) {
		snprintf(dir, sizeof(dir), "%s/fuzz-store-XXXXXX",
		    access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
		if (mkdtemp(dir) == NULL)
			abort();
		atexit(cleanup);
		log_init("fuzz_store_rec", 0, LOG_LVL_ERR);
		ready = 1;
	}
	/* LMDB takes no empty value: one byte at least */
	if (size < 2)
		return 0;
	if (data[0] % 2 == 0)
		check_sts(data + 1, size - 1);
	else
		check_hist(data + 1, size - 1);
	return 0;
}
