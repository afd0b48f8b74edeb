/*
 * test_cache_sts.c - the persistent MTA-STS policy cache: round trip,
 * persistence across reopen, id change (replace), expiry and refresh
 * margin, corrupt records.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "policy/cache.h"

static char dir[] = "/tmp/mxg-cache-test-XXXXXX";

static const char *P1 = "version: STSv1\nmode: enforce\nmx: mx1.example\n"
    "max_age: 1000\n";
static const char *P2 = "version: STSv1\nmode: testing\nmx: *.example\n"
    "max_age: 86400\n";

static void
fill(struct sts_cache_entry *e, const char *id, const char *body,
    int64_t fetched, uint32_t max_age)
{
	memset(e, 0, sizeof(*e));
	snprintf(e->id, sizeof(e->id), "%s", id);
	e->body = (char *)body;
	e->bodylen = strlen(body);
	e->fetched = fetched;
	e->checked = fetched;
	e->expires = fetched + max_age;
}

static int
setup(void **state)
{
	char *d = mkdtemp(dir);

	assert_non_null(d);
	return 0;
}

static int
teardown(void **state)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void
test_roundtrip_persist(void **state)
{
	struct sts_cache *c;
	struct sts_cache_entry e, g;
	char err[256];

	c = sts_cache_open(dir, err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(sts_cache_get(c, "example.com", &g), 0);
	fill(&e, "id1", P1, 1000, 1000);
	assert_int_equal(sts_cache_put(c, "example.com", &e), 0);
	assert_int_equal(sts_cache_get(c, "example.com", &g), 1);
	assert_string_equal(g.id, "id1");
	assert_int_equal(g.pol.mode, STS_MODE_ENFORCE);
	assert_string_equal(g.pol.mx[0], "mx1.example");
	sts_cache_entry_clear(&g);
	sts_cache_close(c);

	/* a new process (reopen) sees the record */
	c = sts_cache_open(dir, err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(sts_cache_get(c, "example.com", &g), 1);
	assert_string_equal(g.id, "id1");
	assert_int_equal(g.fetched, 1000);
	assert_int_equal(g.expires, 2000);
	assert_int_equal(g.bodylen, strlen(P1));
	sts_cache_entry_clear(&g);
	assert_int_equal(sts_cache_get(c, "other.example", &g), 0);
	sts_cache_close(c);
}

static void
test_id_change(void **state)
{
	struct sts_cache *c;
	struct sts_cache_entry e, g;
	char err[256];

	c = sts_cache_open(dir, err, sizeof(err));
	assert_non_null(c);
	fill(&e, "old", P1, 1000, 1000);
	assert_int_equal(sts_cache_put(c, "idchange.example", &e), 0);
	fill(&e, "new", P2, 1500, 86400);
	assert_int_equal(sts_cache_put(c, "idchange.example", &e), 0);
	assert_int_equal(sts_cache_get(c, "idchange.example", &g), 1);
	assert_string_equal(g.id, "new");
	assert_int_equal(g.pol.mode, STS_MODE_TESTING);
	assert_int_equal(g.pol.max_age, 86400);
	sts_cache_entry_clear(&g);
	assert_int_equal(sts_cache_del(c, "idchange.example"), 0);
	assert_int_equal(sts_cache_get(c, "idchange.example", &g), 0);
	sts_cache_close(c);
}

static void
test_expiry(void **state)
{
	struct sts_cache_entry e;

	fill(&e, "x", P1, 1000, 1000);
	e.pol.max_age = 1000;
	/* margin 25%: refresh in the last 250 s */
	assert_int_equal(sts_cache_state(&e, 1000, 25), STS_CACHE_FRESH);
	assert_int_equal(sts_cache_state(&e, 1749, 25), STS_CACHE_FRESH);
	assert_int_equal(sts_cache_state(&e, 1750, 25), STS_CACHE_REFRESH);
	assert_int_equal(sts_cache_state(&e, 1999, 25), STS_CACHE_REFRESH);
	assert_int_equal(sts_cache_state(&e, 2000, 25), STS_CACHE_EXPIRED);
	assert_int_equal(sts_cache_state(&e, 99999, 25), STS_CACHE_EXPIRED);
	assert_int_equal(sts_cache_state(&e, 1999, 0), STS_CACHE_FRESH);
	assert_int_equal(sts_cache_state(&e, 1000, 100), STS_CACHE_REFRESH);
	/* max_age 0: expired at once */
	fill(&e, "x", P1, 1000, 0);
	e.pol.max_age = 0;
	assert_int_equal(sts_cache_state(&e, 1000, 25), STS_CACHE_EXPIRED);
}

static void
test_bad_body_is_absent(void **state)
{
	struct sts_cache *c;
	struct sts_cache_entry e, g;
	char err[256];

	c = sts_cache_open(dir, err, sizeof(err));
	assert_non_null(c);
	fill(&e, "id", "not a policy", 1000, 1000);
	assert_int_equal(sts_cache_put(c, "bad.example", &e), 0);
	assert_int_equal(sts_cache_get(c, "bad.example", &g), 0);
	sts_cache_close(c);
}

static void
test_open_fails(void **state)
{
	char err[256];

	assert_null(sts_cache_open("/proc/no/such/dir", err, sizeof(err)));
	assert_true(strlen(err) > 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip_persist),
		cmocka_unit_test(test_id_change),
		cmocka_unit_test(test_expiry),
		cmocka_unit_test(test_bad_body_is_absent),
		cmocka_unit_test(test_open_fails),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
