/*
 * test_redis_val.c - the shared store's values and merge rules without a
 * Redis server (policy/redis_val.c, history_entry_merge()): strict
 * decoding (a malformed value is refused whole), a policy from Redis used
 * only where the local state has none and only in mode enforce, the newer
 * fetch winning a write, times of a history record ahead of the clock
 * brought back to now + REDIS_SKEW_S (never a reason to drop it), a
 * value read for another key than the one it names refused (as is the
 * format before names, MXGS1/MXGH1), and the
 * TLS history merge never moving away from "this server did TLS"
 * whatever either side holds.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "policy/history.h"
#include "policy/redis.h"

#define NOW	1800000000LL
#define D1	"d.example"	/* the keys the values are read for */
#define A1	"192.0.2.1"

static const char enforce[] = "version: STSv1\nmode: enforce\n"
    "mx: mx.example.com\nmax_age: 86400\n";
static const char testing[] = "version: STSv1\nmode: testing\n"
    "mx: mx.example.com\nmax_age: 86400\n";

static void
entry(struct sts_cache_entry *e, const char *body, int64_t fetched)
{
	memset(e, 0, sizeof(*e));
	snprintf(e->id, sizeof(e->id), "abc123");
	e->fetched = fetched;
	e->expires = fetched + 86400;
	e->body = (char *)body;
	e->bodylen = strlen(body);
}

static int
decode_str(const char *s, struct sts_cache_entry *e)
{
	char err[160];

	return redis_sts_decode(s, strlen(s), D1, NOW, e, err, sizeof(err));
}

static void
test_sts_roundtrip(void **state)
{
	struct sts_cache_entry e, d;
	char *buf, err[160];
	size_t len;

	entry(&e, enforce, NOW - 100);
	assert_int_equal(redis_sts_encode(D1, &e, &buf, &len), 0);
	assert_int_equal(redis_sts_decode(buf, len, D1, NOW, &d, err,
	    sizeof(err)), 0);
	assert_string_equal(d.id, "abc123");
	assert_int_equal(d.fetched, NOW - 100);
	assert_int_equal(d.expires, NOW - 100 + 86400);
	assert_int_equal(d.pol.mode, STS_MODE_ENFORCE);
	assert_int_equal(d.bodylen, strlen(enforce));
	assert_memory_equal(d.body, enforce, d.bodylen);
	sts_cache_entry_clear(&d);
	free(buf);
	/* an id the TXT parser takes with a date's separators
	 * (docs/policy.md) is one a peer takes too */
	snprintf(e.id, sizeof(e.id), "2024-01-01_v2.x");
	assert_int_equal(redis_sts_encode(D1, &e, &buf, &len), 0);
	assert_int_equal(redis_sts_decode(buf, len, D1, NOW, &d, err,
	    sizeof(err)), 0);
	assert_string_equal(d.id, "2024-01-01_v2.x");
	sts_cache_entry_clear(&d);
	free(buf);
	/* a value a peer of a version before the lenient parser wrote
	 * (its body strictly valid): "Max_Age: 1" is the extension it
	 * was there, the expiry its max_age; red before: "expiry is not
	 * fetch time + max_age" (1 read as the max_age) */
	{
		static const char old[] = "version: STSv1\nmode: enforce\n"
		    "Max_Age: 1\nmx: mx.example.com\nmax_age: 86400\n";

		entry(&e, old, NOW - 100);
		assert_int_equal(redis_sts_encode(D1, &e, &buf, &len), 0);
		assert_int_equal(redis_sts_decode(buf, len, D1, NOW, &d, err,
		    sizeof(err)), 0);
		assert_int_equal(d.pol.mode, STS_MODE_ENFORCE);
		assert_int_equal(d.pol.max_age, 86400);
		sts_cache_entry_clear(&d);
		free(buf);
	}
	/* a policy of more mx patterns than mxguard keeps: Redis holds the
	 * text as fetched, never the cache's compact form, so a peer counts
	 * the dropped ones too (a host only they list defers as local-error,
	 * policy.c) */
	{
		static char many[8192];
		size_t o;
		int i;

		o = (size_t)snprintf(many, sizeof(many), "version: STSv1\n"
		    "mode: enforce\nmax_age: 86400\n");
		for (i = 1; i <= 70; i++)
			o += (size_t)snprintf(many + o, sizeof(many) - o,
			    "mx: mx%d.%s.example\n", i, "aaaaaaaaaaaaaaaaaaaa"
			    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
		entry(&e, many, NOW - 100);
		assert_int_equal(redis_sts_encode(D1, &e, &buf, &len), 0);
		assert_int_equal(redis_sts_decode(buf, len, D1, NOW, &d, err,
		    sizeof(err)), 0);
		assert_int_equal(d.pol.nmx, STS_MAX_MX);
		assert_int_equal(d.pol.mx_over, 6);
		assert_int_equal(d.bodylen, o);
		sts_cache_entry_clear(&d);
		free(buf);
	}
}

static void
test_sts_malformed(void **state)
{
	struct sts_cache_entry d;
	char buf[512];
	const char *bad[] = {
		"",
		"MXGS2",
		"MXGS3 d.example 1799999000 1800085400 abc\n",
		"MXGS2 1799999000 1800085400 abc\n",	/* no name */
		"MXGS2 d.example x 1800085400 abc\n",
		"MXGS2 d.example 1799999000 1800085400 ab/c\n",	/* id */
		"MXGS2 d.example 1799999000 1800085400 ab c\n",
		"MXGS2 d.example 1799999000 1800085400 \n",
		("MXGS2 d.example 1799999000 1800085400 "
		    "abcdefghijabcdefghijabcdefghijabc\n"),	/* 33 */
		"MXGS2 d.example -1799999000 1800085400 abc\n",
		"MXGS2 d.example  1799999000 1800085400 abc\n",
		"MXGS2 d.example 1799999000 1800085400 abc",	/* no body line */
		"MXGS2 d.example  86400 abc\n",	/* an empty fetch time */
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(buf, sizeof(buf), "%s%s", bad[i], enforce);
		assert_int_equal(decode_str(buf, &d), -1);
	}
	/* a body that does not parse */
	assert_int_equal(decode_str("MXGS2 d.example 1799999000 1800085400 abc\n"
	    "version: STSv2\n", &d), -1);
	/* fetched in the future: would win every comparison for ever */
	snprintf(buf, sizeof(buf), "MXGS2 d.example %lld %lld abc\n%s", NOW + 3600,
	    NOW + 3600 + 86400, enforce);
	assert_int_equal(decode_str(buf, &d), -1);
	/* an expiry the policy's max_age does not give */
	snprintf(buf, sizeof(buf), "MXGS2 d.example %lld %lld abc\n%s", NOW - 10,
	    NOW - 10 + 86400 * 365, enforce);
	assert_int_equal(decode_str(buf, &d), -1);
	/* nor one it shortens */
	snprintf(buf, sizeof(buf), "MXGS2 d.example %lld %lld abc\n%s", NOW - 10,
	    NOW - 10 + 86400 - 1, enforce);
	assert_int_equal(decode_str(buf, &d), -1);
	/* fetched up to REDIS_SKEW_S ahead (another gateway's clock), not
	 * one second more */
	snprintf(buf, sizeof(buf), "MXGS2 d.example %lld %lld abc\n%s",
	    NOW + REDIS_SKEW_S + 1, NOW + REDIS_SKEW_S + 1 + 86400, enforce);
	assert_int_equal(decode_str(buf, &d), -1);
	snprintf(buf, sizeof(buf), "MXGS2 d.example %lld %lld abc\n%s",
	    NOW + REDIS_SKEW_S, NOW + REDIS_SKEW_S + 86400, enforce);
	assert_int_equal(decode_str(buf, &d), 0);
	sts_cache_entry_clear(&d);
	/* and the good one */
	snprintf(buf, sizeof(buf), "MXGS2 d.example %lld %lld abc\n%s", NOW - 10,
	    NOW - 10 + 86400, enforce);
	assert_int_equal(decode_str(buf, &d), 0);
	sts_cache_entry_clear(&d);
	/* within the clock skew allowed between gateways */
	snprintf(buf, sizeof(buf), "MXGS2 d.example %lld %lld abc\n%s", NOW + 60,
	    NOW + 60 + 86400, enforce);
	assert_int_equal(decode_str(buf, &d), 0);
	sts_cache_entry_clear(&d);
}

/* A value names its key: read for another domain (copied to its key) it
 * is refused, and so is one of the format before names (MXGS1, which an
 * older mxguard wrote and read); names a value cannot carry are not
 * written. */
static void
test_sts_name(void **state)
{
	struct sts_cache_entry e, d;
	char *buf, err[160], old[512], name[REDIS_NAME_MAX + 2];
	size_t len;

	entry(&e, enforce, NOW - 100);
	assert_int_equal(redis_sts_encode("a.example", &e, &buf, &len), 0);
	assert_true(len > 16 && memcmp(buf, "MXGS2 a.example ", 16) == 0);
	assert_int_equal(redis_sts_decode(buf, len, "a.example", NOW, &d, err,
	    sizeof(err)), 0);
	sts_cache_entry_clear(&d);
	assert_int_equal(redis_sts_decode(buf, len, "b.example", NOW, &d, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "names another key (a.example, not "
	    "b.example)"));
	/* the name whole, byte for byte */
	assert_int_equal(redis_sts_decode(buf, len, "a.exampl", NOW, &d, err,
	    sizeof(err)), -1);
	assert_int_equal(redis_sts_decode(buf, len, "a.example.", NOW, &d,
	    err, sizeof(err)), -1);
	assert_int_equal(redis_sts_decode(buf, len, "A.example", NOW, &d, err,
	    sizeof(err)), -1);
	free(buf);

	/* the format before names, well-formed as it was */
	snprintf(old, sizeof(old), "MXGS1 %lld %lld abc123\n%s", NOW - 10,
	    NOW - 10 + 86400, enforce);
	assert_int_equal(redis_sts_decode(old, strlen(old), "a.example", NOW,
	    &d, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "MXGS1, the format of an older mxguard"));

	/* names a value cannot carry: not written, never read */
	assert_int_equal(redis_sts_encode("", &e, &buf, &len), -1);
	assert_int_equal(redis_sts_encode("a b", &e, &buf, &len), -1);
	assert_int_equal(redis_sts_encode("a\nb", &e, &buf, &len), -1);
	memset(name, 'a', sizeof(name) - 1);
	name[REDIS_NAME_MAX + 1] = '\0';
	assert_int_equal(redis_sts_encode(name, &e, &buf, &len), -1);
	name[REDIS_NAME_MAX] = '\0';
	assert_int_equal(redis_sts_encode(name, &e, &buf, &len), 0);
	assert_int_equal(redis_sts_decode(buf, len, name, NOW, &d, err,
	    sizeof(err)), 0);
	sts_cache_entry_clear(&d);
	free(buf);
}

static void
parsed(struct sts_cache_entry *e, const char *body, int64_t fetched)
{
	char err[160];

	entry(e, body, fetched);
	assert_int_equal(sts_policy_parse(body, strlen(body), &e->pol, err,
	    sizeof(err)), 0);
}

static void
test_sts_usable(void **state)
{
	struct sts_cache_entry local, remote;

	/* no local policy: a remote enforce policy may decide */
	parsed(&remote, enforce, NOW - 100);
	assert_int_equal(redis_sts_usable(NULL, &remote, NOW), 1);
	/* a local valid policy always decides: not even a newer enforce
	 * policy (its MX patterns might be an attacker's) replaces it */
	parsed(&local, testing, NOW - 200);
	assert_int_equal(redis_sts_usable(&local, &remote, NOW), 0);
	parsed(&local, enforce, NOW - 200);
	assert_int_equal(redis_sts_usable(&local, &remote, NOW), 0);
	/* an expired local policy is no policy */
	parsed(&local, enforce, NOW - 86400 - 10);
	assert_int_equal(redis_sts_usable(&local, &remote, NOW), 1);
	/* from the second it expires, as sts_cache_state() says */
	parsed(&local, enforce, NOW - 86400);
	assert_int_equal(redis_sts_usable(&local, &remote, NOW), 1);
	parsed(&local, enforce, NOW - 86400 + 1);
	assert_int_equal(redis_sts_usable(&local, &remote, NOW), 0);
	/* testing and none decide nothing a miss does not: ignored (they
	 * would only stand in the way of this gateway's own fetch) */
	parsed(&remote, testing, NOW - 100);
	assert_int_equal(redis_sts_usable(NULL, &remote, NOW), 0);
	/* an expired remote policy is no policy either */
	parsed(&remote, enforce, NOW - 86400 - 1);
	assert_int_equal(redis_sts_usable(NULL, &remote, NOW), 0);
	parsed(&remote, enforce, NOW - 86400);
	assert_int_equal(redis_sts_usable(NULL, &remote, NOW), 0);
	parsed(&remote, enforce, NOW - 86400 + 1);
	assert_int_equal(redis_sts_usable(NULL, &remote, NOW), 1);
	parsed(&remote, enforce, NOW + REDIS_SKEW_S + 1);
	assert_int_equal(redis_sts_usable(NULL, &remote, NOW), 0);
	assert_int_equal(redis_sts_usable(NULL, NULL, NOW), 0);
}

static void
test_sts_replaces(void **state)
{
	assert_true(redis_sts_replaces(NOW - 10, NOW));
	assert_true(redis_sts_replaces(NOW, NOW));
	assert_false(redis_sts_replaces(NOW, NOW - 10));
}

static void
test_hist_roundtrip(void **state)
{
	struct history_entry e = { NOW - 1000, NOW - 10, NOW - 5, NOW - 5,
	    7, 2 }, d;
	char buf[200], err[160];

	assert_int_equal(redis_hist_encode(A1, &e, buf, sizeof(buf)), 0);
	assert_int_equal(redis_hist_decode(buf, strlen(buf), A1, NOW, &d, err,
	    sizeof(err)), 0);
	assert_memory_equal(&e, &d, sizeof(e));
}

static void
test_hist_malformed(void **state)
{
	struct history_entry d;
	char buf[200], err[160];
	const char *bad[] = {
		"",
		"MXGH2 ",
		"MXGH2 192.0.2.1 ",
		"MXGH2 192.0.2.1 1 2 3 4 5",
		"MXGH2 192.0.2.1 1 2 3 4 5 6 7",
		"MXGH2 192.0.2.1 1 2 3 4 5 6 ",
		"MXGH2 192.0.2.1 1 2 3 4 5 x",
		"MXGH2 192.0.2.1 -1 2 3 4 5 6",
		"MXGH2 192.0.2.1 1  2 3 4 5 6",
		"MXGH3 192.0.2.1 1 2 3 4 5 6",
		"MXGH2 1 2 3 4 5 6",		/* no name */
		"MXGH2 192.0.2.1 3 2 3 4 5 6",		/* first_tls after last_tls */
		"MXGH2 192.0.2.1 0 2 3 4 5 6",		/* last_tls without first */
		"MXGH2 192.0.2.1 1 2 3 4 5 4294967296",	/* beyond 32 bits */
		"MXGH2 192.0.2.1 1 2 3 4 5 1234567890123456789012",
		"MXGH2 192.0.2.1 1 2 3 4 4294967296 5",	/* the other count */
		"MXGH2 192.0.2.1 1 2 3 4 5 ",		/* an empty sixth */
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(redis_hist_decode(bad[i], strlen(bad[i]), A1, NOW,
		    &d, err, sizeof(err)), -1);
	/* REDIS_HIST_MAX bytes: too long, refused before it is copied (the
	 * copy's NUL would go one past the buffer: ASan's to see) */
	{
		char big[REDIS_HIST_MAX];

		memset(big, '1', sizeof(big));
		memcpy(big, "MXGH2 192.0.2.1 ", 16);
		assert_int_equal(redis_hist_decode(big, sizeof(big), A1, NOW,
		    &d, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "too long"));
	}
	/* first_tls after last_tls, both in the future: refused before
	 * they are brought back (which would make them equal) */
	snprintf(buf, sizeof(buf), "MXGH2 192.0.2.1 %lld %lld 0 %lld 1 0", NOW + 2000,
	    NOW + 1000, NOW);
	assert_int_equal(redis_hist_decode(buf, strlen(buf), A1, NOW, &d, err,
	    sizeof(err)), -1);
	assert_int_equal(redis_hist_decode("MXGH2 192.0.2.1 0 0 0 0 0 0", 27, A1,
	    NOW, &d, err, sizeof(err)), 0);
}

/* The same for history: the address in the value is the key's. */
static void
test_hist_name(void **state)
{
	struct history_entry e = { NOW - 1000, NOW - 10, NOW - 5, NOW - 5,
	    7, 2 }, d;
	static const char v6[] = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255";
	char buf[300], err[160];

	assert_int_equal(redis_hist_encode("192.0.2.50", &e, buf,
	    sizeof(buf)), 0);
	assert_string_equal(buf, "MXGH2 192.0.2.50 1799999000 1799999990 "
	    "1799999995 1799999995 7 2");
	assert_int_equal(redis_hist_decode(buf, strlen(buf), "192.0.2.50",
	    NOW, &d, err, sizeof(err)), 0);
	assert_memory_equal(&e, &d, sizeof(e));
	assert_int_equal(redis_hist_decode(buf, strlen(buf), "192.0.2.51",
	    NOW, &d, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "names another key (192.0.2.50, not "
	    "192.0.2.51)"));
	assert_int_equal(redis_hist_decode(buf, strlen(buf), "192.0.2.5",
	    NOW, &d, err, sizeof(err)), -1);
	/* the format before names, well-formed as it was */
	assert_int_equal(redis_hist_decode("MXGH1 1 2 3 4 5 6", 17,
	    "192.0.2.50", NOW, &d, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "MXGH1, the format of an older mxguard"));
	/* the longest address text, the largest numbers: fits */
	e.first_tls = e.last_tls = e.last_fail = e.last_seen =
	    999999999999999999LL;
	e.tls_count = e.fail_count = UINT32_MAX;
	assert_int_equal(redis_hist_encode(v6, &e, buf, sizeof(buf)), 0);
	assert_int_equal(redis_hist_decode(buf, strlen(buf), v6, NOW, &d,
	    err, sizeof(err)), 0);
	assert_int_equal(d.tls_count, UINT32_MAX);
	/* not a name */
	assert_int_equal(redis_hist_encode("", &e, buf, sizeof(buf)), -1);
	assert_int_equal(redis_hist_encode("a b", &e, buf, sizeof(buf)), -1);
}

/* Times ahead of this gateway's clock (another gateway's clock is ahead,
 * or the value is made up): each brought back to now + REDIS_SKEW_S, the
 * record kept.  Refused whole, the TLS evidence of a gateway whose clock
 * is ahead would be lost; kept as they are, a made-up last_tls far ahead
 * would keep the record expecting TLS long after the window. */
static void
test_hist_future_clamped(void **state)
{
	const int64_t window = 30 * 86400;
	struct history_entry d, local = { NOW - 9000, NOW - 60, 0, NOW - 60,
	    4, 0 }, m;
	char buf[200], err[160];

	snprintf(buf, sizeof(buf), "MXGH2 192.0.2.1 %lld %lld %lld %lld 1 2",
	    NOW - 10, NOW + 3600, NOW + 7200, NOW + 600);
	assert_int_equal(redis_hist_decode(buf, strlen(buf), A1, NOW, &d, err,
	    sizeof(err)), 0);
	assert_int_equal(d.first_tls, NOW - 10);
	assert_int_equal(d.last_tls, NOW + REDIS_SKEW_S);
	assert_int_equal(d.last_fail, NOW + REDIS_SKEW_S);
	assert_int_equal(d.last_seen, NOW + REDIS_SKEW_S);
	assert_int_equal(d.tls_count, 1);
	assert_int_equal(d.fail_count, 2);
	assert_true(history_expects_tls(&d, NOW, window));
	/* merged into a record that expects TLS: still expects it */
	m = local;
	history_entry_merge(&m, &d);
	assert_true(history_expects_tls(&m, NOW, window));
	assert_int_equal(m.first_tls, NOW - 9000);

	/* all four ahead, first_tls too: equal after, never crossed */
	snprintf(buf, sizeof(buf), "MXGH2 192.0.2.1 %lld %lld %lld %lld 1 0",
	    NOW + 1000, NOW + 999999999, NOW + 1, NOW + 301);
	assert_int_equal(redis_hist_decode(buf, strlen(buf), A1, NOW, &d, err,
	    sizeof(err)), 0);
	assert_int_equal(d.first_tls, NOW + REDIS_SKEW_S);
	assert_int_equal(d.last_tls, NOW + REDIS_SKEW_S);
	assert_int_equal(d.last_fail, NOW + 1);
	assert_int_equal(d.last_seen, NOW + REDIS_SKEW_S);
	/* within the tolerance: as they are */
	snprintf(buf, sizeof(buf), "MXGH2 192.0.2.1 %lld %lld 0 %lld 1 0", NOW - 10,
	    NOW + REDIS_SKEW_S, NOW + 299);
	assert_int_equal(redis_hist_decode(buf, strlen(buf), A1, NOW, &d, err,
	    sizeof(err)), 0);
	assert_int_equal(d.last_tls, NOW + REDIS_SKEW_S);
	assert_int_equal(d.last_seen, NOW + 299);
}

/* Random valid records: whatever the other side holds, the merge expects
 * TLS wherever either side did. */
static void
test_hist_merge_monotone(void **state)
{
	const int64_t window = 30 * 86400;
	int i;

	srandom(42);
	for (i = 0; i < 200000; i++) {
		struct history_entry a, b, m;
		char buf[200], err[160];
		int64_t span = (random() % 3 == 0) ? 100 : 90 * 86400;

		memset(&a, 0, sizeof(a));
		memset(&b, 0, sizeof(b));
		if (random() % 4) {
			a.last_tls = NOW - random() % span;
			a.first_tls = a.last_tls - random() % span;
		}
		a.last_fail = random() % 2 ? NOW - random() % span : 0;
		a.tls_count = (uint32_t)random();
		if (random() % 4) {
			/* up to an hour ahead: brought back on decoding */
			b.last_tls = NOW + (random() % 2 ? 3600 :
			    REDIS_SKEW_S) - random() % span;
			b.first_tls = b.last_tls - random() % span;
		}
		b.last_fail = random() % 2 ? NOW - random() % span : 0;
		b.fail_count = (uint32_t)random();
		/* b comes from Redis: only what decodes is merged */
		assert_int_equal(redis_hist_encode(A1, &b, buf, sizeof(buf)), 0);
		if (redis_hist_decode(buf, strlen(buf), A1, NOW, &b, err,
		    sizeof(err)) == -1)
			continue;
		m = a;
		history_entry_merge(&m, &b);
		if (history_expects_tls(&a, NOW, window))
			assert_true(history_expects_tls(&m, NOW, window));
		if (history_expects_tls(&b, NOW, window))
			assert_true(history_expects_tls(&m, NOW, window));
		assert_true(m.last_tls >= a.last_tls);
		assert_true(m.tls_count >= a.tls_count);
		/* and later, at any time, too */
		if (history_expects_tls(&a, NOW + 86400, window))
			assert_true(history_expects_tls(&m, NOW + 86400,
			    window));
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sts_roundtrip),
		cmocka_unit_test(test_sts_malformed),
		cmocka_unit_test(test_sts_name),
		cmocka_unit_test(test_sts_usable),
		cmocka_unit_test(test_sts_replaces),
		cmocka_unit_test(test_hist_roundtrip),
		cmocka_unit_test(test_hist_malformed),
		cmocka_unit_test(test_hist_name),
		cmocka_unit_test(test_hist_future_clamped),
		cmocka_unit_test(test_hist_merge_monotone),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
