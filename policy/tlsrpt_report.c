/*
 * tlsrpt_report.c - the aggregate report of RFC 8460 section 4 from the
 * stored counts (jansson), its gzip (zlib) and its file name (section
 * 5.1).  See tlsrpt.h; the JSON and gzip buffers are malloc'd and the
 * caller's.
 *
 * One report covers one policy domain and one UTC day: "date-range" is
 * 00:00:00Z to 23:59:59Z of that day, and every stored policy of the
 * domain for the day (a policy that changed during the day is another
 * one) is an element of "policies".  Detail strings come from remote
 * servers (the HELO name) or from our own logs; bytes outside printable
 * ASCII are replaced with "?" so that the JSON is always valid UTF-8.
 * Optional fields with no value are left out, as section 4 allows.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <lmdb.h>
#include <zlib.h>

#include "policy/store.h"
#include "policy/tlsrpt.h"
#include "policy/tlsrpt_int.h"

static const char *const bucket_keys[TR_BUCKET_STRS] = {
	"sending-mta-ip",
	"receiving-mx-hostname",
	"receiving-mx-helo",
	"receiving-ip",
	"failure-reason-code",
	"additional-information",
};

/* A JSON string of stored bytes, printable ASCII only. */
static json_t *
jstr(const struct tr_str *s)
{
	char buf[65536];
	uint16_t i;

	for (i = 0; i < s->n; i++)
		buf[i] = s->p[i] >= 0x20 && s->p[i] < 0x7f ? (char)s->p[i] :
		    '?';
	return json_stringn(buf, s->n);
}

/* Adds key: value to o, taking the reference of value; -1 on NULL. */
static int
set_new(json_t *o, const char *key, json_t *value)
{
	if (value == NULL)
		return -1;
	return json_object_set_new(o, key, value) == 0 ? 0 : -1;
}

static json_int_t
jcount(uint64_t n)
{
	return n > (uint64_t)INT64_MAX ? INT64_MAX : (json_int_t)n;
}

static int
rfc3339(int64_t t, char *buf, size_t sz)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (gmtime_r(&tt, &tm) == NULL ||
	    strftime(buf, sz, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		return -1;
	return 0;
}

/* One element of "policies" from a stored entry. */
static json_t *
policy_json(const struct tr_entry *e, const char *domain)
{
	json_t *p, *pol, *sum, *arr;
	const unsigned char *q;
	struct tr_str s;
	struct tr_bucket bk;
	uint32_t i;
	int k;

	if ((p = json_object()) == NULL)
		return NULL;
	if ((pol = json_object()) == NULL || set_new(p, "policy", pol) == -1)
		goto fail;
	if (set_new(pol, "policy-type", json_string(
	    tlsrpt_policy_type_name((enum tlsrpt_policy_type)e->type))) == -1)
		goto fail;
	if (e->nstr > 0) {
		if ((arr = json_array()) == NULL ||
		    set_new(pol, "policy-string", arr) == -1)
			goto fail;
		for (q = e->strs, i = 0; i < e->nstr; i++) {
			tr_next_str(&q, &s);
			if (json_array_append_new(arr, jstr(&s)) == -1)
				goto fail;
		}
	}
	if (set_new(pol, "policy-domain", json_string(domain)) == -1)
		goto fail;
	if (e->nmx > 0) {
		if ((arr = json_array()) == NULL ||
		    set_new(pol, "mx-host", arr) == -1)
			goto fail;
		for (q = e->mx, i = 0; i < e->nmx; i++) {
			tr_next_str(&q, &s);
			if (json_array_append_new(arr, jstr(&s)) == -1)
				goto fail;
		}
	}
	if ((sum = json_object()) == NULL || set_new(p, "summary", sum) == -1 ||
	    set_new(sum, "total-successful-session-count",
	    json_integer(jcount(e->successful))) == -1 ||
	    set_new(sum, "total-failure-session-count",
	    json_integer(jcount(e->failed))) == -1)
		goto fail;
	if (e->nbuckets == 0)
		return p;
	if ((arr = json_array()) == NULL ||
	    set_new(p, "failure-details", arr) == -1)
		goto fail;
	for (q = e->buckets, i = 0; i < e->nbuckets; i++) {
		json_t *d = json_object();

		tr_next_bucket(&q, &bk);
		if (d == NULL || json_array_append_new(arr, d) == -1)
			goto fail;
		if (set_new(d, "result-type", json_string(tlsrpt_result_name(
		    (enum tlsrpt_result)bk.result))) == -1)
			goto fail;
		for (k = 0; k < TR_BUCKET_STRS; k++)
			if (bk.s[k].n > 0 &&
			    set_new(d, bucket_keys[k], jstr(&bk.s[k])) == -1)
				goto fail;
		if (set_new(d, "failed-session-count",
		    json_integer(jcount(bk.count))) == -1)
			goto fail;
	}
	return p;
fail:
	json_decref(p);
	return NULL;
}

int
tlsrpt_report_build(struct tlsrpt_store *st, const char *domain, int64_t day,
    const char *org_name, const char *contact, const char *report_id,
    char **json)
{
	unsigned char pfx[4 + 254 + 1];
	char dom[254], t0[32], t1[32];
	json_t *root = NULL, *range, *pols;
	MDB_txn *txn = NULL;
	MDB_cursor *c = NULL;
	MDB_val k, v;
	struct tr_entry e;
	int plen, rc, ret = -1, n = 0;

	*json = NULL;
	if (org_name == NULL || contact == NULL || report_id == NULL) {
		tr_seterr(st, "report without organization, contact or id");
		return -1;
	}
	if ((plen = tr_domain_prefix(day, domain, pfx)) == -1) {
		tr_seterr(st, "bad policy domain or day");
		return -1;
	}
	memcpy(dom, pfx + 4, (size_t)plen - 4);	/* normalised, with NUL */
	if (rfc3339(day * 86400, t0, sizeof(t0)) == -1 ||
	    rfc3339(day * 86400 + 86399, t1, sizeof(t1)) == -1) {
		tr_seterr(st, "day out of range");
		return -1;
	}
	if ((root = json_object()) == NULL ||
	    set_new(root, "organization-name", json_string(org_name)) == -1 ||
	    (range = json_object()) == NULL ||
	    set_new(root, "date-range", range) == -1 ||
	    set_new(range, "start-datetime", json_string(t0)) == -1 ||
	    set_new(range, "end-datetime", json_string(t1)) == -1 ||
	    set_new(root, "contact-info", json_string(contact)) == -1 ||
	    set_new(root, "report-id", json_string(report_id)) == -1 ||
	    (pols = json_array()) == NULL ||
	    set_new(root, "policies", pols) == -1) {
		tr_seterr(st, "JSON: out of memory or invalid UTF-8 in the "
		    "organization, contact or report id");
		goto out;
	}
	if ((rc = store_txn_begin(st->env, MDB_RDONLY, &txn)) != 0 ||
	    (rc = mdb_cursor_open(txn, st->entries, &c)) != 0) {
		tr_seterr(st, "txn: %s", mdb_strerror(rc));
		goto out;
	}
	k.mv_data = pfx;
	k.mv_size = (size_t)plen;
	for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
	    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		json_t *p;

		if (k.mv_size < (size_t)plen ||
		    memcmp(k.mv_data, pfx, (size_t)plen) != 0)
			break;
		if (tr_entry_decode(v.mv_data, v.mv_size, &e) == -1) {
			tr_seterr(st, "entries: corrupt entry");
			goto out;
		}
		if ((p = policy_json(&e, dom)) == NULL ||
		    json_array_append_new(pols, p) == -1) {
			tr_seterr(st, "JSON: out of memory");
			goto out;
		}
		n++;
	}
	if (rc != 0 && rc != MDB_NOTFOUND) {
		tr_seterr(st, "cursor: %s", mdb_strerror(rc));
		goto out;
	}
	if (n == 0) {
		ret = 0;
		goto out;
	}
	if ((*json = json_dumps(root, JSON_INDENT(2))) == NULL) {
		tr_seterr(st, "JSON: cannot serialise");
		goto out;
	}
	ret = 1;
out:
	if (c != NULL)
		mdb_cursor_close(c);
	if (txn != NULL)
		mdb_txn_abort(txn);
	json_decref(root);
	return ret;
}

int
tlsrpt_gzip(const void *in, size_t len, unsigned char **out, size_t *outlen)
{
	z_stream z;
	unsigned char *b;
	uLong bound;

	*out = NULL;
	*outlen = 0;
	if (len > UINT32_MAX)
		return -1;
	memset(&z, 0, sizeof(z));
	/* 15 + 16: a gzip header and trailer (RFC 1952), not raw deflate */
	if (deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 8,
	    Z_DEFAULT_STRATEGY) != Z_OK)
		return -1;
	bound = deflateBound(&z, (uLong)len);
	if ((b = malloc(bound)) == NULL) {
		deflateEnd(&z);
		return -1;
	}
	z.next_in = (Bytef *)(uintptr_t)in;
	z.avail_in = (uInt)len;
	z.next_out = b;
	z.avail_out = (uInt)bound;
	if (deflate(&z, Z_FINISH) != Z_STREAM_END) {
		deflateEnd(&z);
		free(b);
		return -1;
	}
	*outlen = z.total_out;
	deflateEnd(&z);
	*out = b;
	return 0;
}

int
tlsrpt_filename(const char *sender, const char *policy_domain, int64_t day,
    const char *unique_id, char *buf, size_t sz)
{
	size_t i, n;
	int r;

	if (sender == NULL || policy_domain == NULL ||
	    !tlsrpt_valid_host(sender, strlen(sender)) ||
	    !tlsrpt_valid_host(policy_domain, strlen(policy_domain)) ||
	    day < 0)
		return -1;
	if (unique_id != NULL) {
		n = strlen(unique_id);
		if (n == 0 || n > 64)
			return -1;
		for (i = 0; i < n; i++) {
			char ch = unique_id[i];

			if (!((ch >= 'a' && ch <= 'z') ||
			    (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')))
				return -1;
		}
		r = snprintf(buf, sz, "%s!%s!%lld!%lld!%s.json.gz", sender,
		    policy_domain, (long long)(day * 86400),
		    (long long)(day * 86400 + 86399), unique_id);
	} else
		r = snprintf(buf, sz, "%s!%s!%lld!%lld.json.gz", sender,
		    policy_domain, (long long)(day * 86400),
		    (long long)(day * 86400 + 86399));
	return r < 0 || (size_t)r >= sz ? -1 : 0;
}
