/*
 * test_http_throttle.c - an MTA-STS policy host cannot make mxguard's
 * HTTPS client parse its response once per byte (policy/http.c
 * parse_due()): the parser reads the whole response each time, so a
 * response sent a byte per TLS record made the work quadratic (17 s of
 * CPU in a 30 s fetch, measured by a reviewer).  Now a parse happens at
 * once only when the response grew by a quarter since the last one, or
 * ended; the rest waits for a 20 ms timer.  Included whole, for the
 * static function.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "policy/http.c"

/* Parses done at once while a response of total bytes arrives a byte
 * per event. */
static size_t
immediate_parses(size_t total)
{
	size_t len, parsed = 0, n = 0;

	for (len = 1; len <= total; len++)
		if (parse_due(parsed, len, 0)) {
			parsed = len;
			n++;
		}
	return n;
}

static void
test_byte_per_record(void **state)
{
	size_t n = immediate_parses(151 * 1024);

	(void)state;
	/* geometric: about log(151 KiB) / log(1.25) + a few, not 154,624 */
	assert_true(n > 10);
	assert_true(n < 80);
}

static void
test_first_and_end(void **state)
{
	(void)state;
	assert_true(parse_due(0, 1, 0));	/* the first bytes at once */
	assert_true(parse_due(1000, 1001, 1));	/* the end at once */
	assert_false(parse_due(1000, 1100, 0));	/* +10%: later */
	assert_true(parse_due(1000, 1250, 0));	/* +25%: now */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_byte_per_record),
		cmocka_unit_test(test_first_and_end),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
