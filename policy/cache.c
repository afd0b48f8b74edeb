/*
 * cache.c - persistent MTA-STS policy cache on LMDB (see cache.h).
 *
 * Value layout (host byte order; the file is local state, never shipped):
 *   "MXS1" | fetched i64 | expires i64 | checked i64 | id[33] |
 *   bodylen u32 | body
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <lmdb.h>

#include "core/log.h"
#include "policy/store.h"
#include "policy/cache.h"

#define MAGIC		"MXS1"
#define HDR_LEN		(4 + 8 + 8 + 8 + (STS_ID_MAX + 1) + 4)
#define MAX_BODY	(1024 * 1024)

struct sts_cache {
	MDB_env	*env;
	MDB_dbi	 dbi;
};

struct sts_cache *
sts_cache_open(const char *dir, char *err, size_t errsz)
{
	struct sts_cache *c;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	if (store_open(dir, "sts-cache.mdb", 256UL * 1024 * 1024, &c->env, &c->dbi, err,
	    errsz) == -1) {
		free(c);
		return NULL;
	}
	return c;
}

void
sts_cache_close(struct sts_cache *c)
{
	if (c == NULL)
		return;
	mdb_env_close(c->env);
	free(c);
}

void
sts_cache_entry_clear(struct sts_cache_entry *e)
{
	free(e->body);
	e->body = NULL;
	e->bodylen = 0;
}

int
sts_cache_get(struct sts_cache *c, const char *domain,
    struct sts_cache_entry *e)
{
	MDB_txn *txn;
	MDB_val k, v;
	const unsigned char *p;
	uint32_t bl;
	char perr[128];
	int rc;

	memset(e, 0, sizeof(*e));
	k.mv_data = (void *)domain;
	k.mv_size = strlen(domain);
	if (mdb_txn_begin(c->env, NULL, MDB_RDONLY, &txn) != 0)
		return -1;
	rc = mdb_get(txn, c->dbi, &k, &v);
	if (rc == MDB_NOTFOUND) {
		mdb_txn_abort(txn);
		return 0;
	}
	if (rc != 0) {
		mdb_txn_abort(txn);
		return -1;
	}
	p = v.mv_data;
	if (v.mv_size < HDR_LEN || memcmp(p, MAGIC, 4) != 0)
		goto bad;
	memcpy(&e->fetched, p + 4, 8);
	memcpy(&e->expires, p + 12, 8);
	memcpy(&e->checked, p + 20, 8);
	memcpy(e->id, p + 28, STS_ID_MAX + 1);
	e->id[STS_ID_MAX] = '\0';
	memcpy(&bl, p + 28 + STS_ID_MAX + 1, 4);
	if (bl > MAX_BODY || v.mv_size != HDR_LEN + (size_t)bl)
		goto bad;
	if ((e->body = malloc((size_t)bl + 1)) == NULL) {
		mdb_txn_abort(txn);
		return -1;
	}
	memcpy(e->body, p + HDR_LEN, bl);
	e->body[bl] = '\0';
	e->bodylen = bl;
	mdb_txn_abort(txn);
	if (sts_policy_parse(e->body, e->bodylen, &e->pol, perr,
	    sizeof(perr)) == -1) {
		char q[512];

		log_warn("event=sts-cache-corrupt domain=%s what=policy",
		    log_q(q, sizeof(q), domain));
		sts_cache_entry_clear(e);
		return 0;
	}
	return 1;
bad:
	mdb_txn_abort(txn);
	{
		char q[512];

		log_warn("event=sts-cache-corrupt domain=%s what=record",
		    log_q(q, sizeof(q), domain));
	}
	return 0;
}

int
sts_cache_put(struct sts_cache *c, const char *domain,
    const struct sts_cache_entry *e)
{
	MDB_txn *txn;
	MDB_val k, v;
	unsigned char *p;
	uint32_t bl = (uint32_t)e->bodylen;
	int rc;

	if (e->bodylen > MAX_BODY)
		return -1;
	if ((p = malloc(HDR_LEN + e->bodylen)) == NULL)
		return -1;
	memcpy(p, MAGIC, 4);
	memcpy(p + 4, &e->fetched, 8);
	memcpy(p + 12, &e->expires, 8);
	memcpy(p + 20, &e->checked, 8);
	memset(p + 28, 0, STS_ID_MAX + 1);
	memcpy(p + 28, e->id, strnlen(e->id, STS_ID_MAX));
	memcpy(p + 28 + STS_ID_MAX + 1, &bl, 4);
	if (e->bodylen)
		memcpy(p + HDR_LEN, e->body, e->bodylen);
	k.mv_data = (void *)domain;
	k.mv_size = strlen(domain);
	v.mv_data = p;
	v.mv_size = HDR_LEN + e->bodylen;
	if ((rc = mdb_txn_begin(c->env, NULL, 0, &txn)) == 0) {
		if ((rc = mdb_put(txn, c->dbi, &k, &v, 0)) == 0)
			rc = mdb_txn_commit(txn);
		else
			mdb_txn_abort(txn);
	}
	free(p);
	if (rc != 0) {
		char q[512];

		log_warn("event=sts-cache-error domain=%s error=\"%s\"",
		    log_q(q, sizeof(q), domain), mdb_strerror(rc));
		return -1;
	}
	return 0;
}

int
sts_cache_del(struct sts_cache *c, const char *domain)
{
	MDB_txn *txn;
	MDB_val k;
	int rc;

	k.mv_data = (void *)domain;
	k.mv_size = strlen(domain);
	if ((rc = mdb_txn_begin(c->env, NULL, 0, &txn)) != 0)
		return -1;
	rc = mdb_del(txn, c->dbi, &k, NULL);
	if (rc != 0 && rc != MDB_NOTFOUND) {
		mdb_txn_abort(txn);
		return -1;
	}
	return mdb_txn_commit(txn) == 0 ? 0 : -1;
}

enum sts_cache_state
sts_cache_state(const struct sts_cache_entry *e, int64_t now, int margin_pct)
{
	int64_t age = (int64_t)e->pol.max_age;

	if (now >= e->expires)
		return STS_CACHE_EXPIRED;
	if (margin_pct < 0)
		margin_pct = 0;
	if (margin_pct > 100)
		margin_pct = 100;
	if (e->expires - now <= age * margin_pct / 100)
		return STS_CACHE_REFRESH;
	return STS_CACHE_FRESH;
}
