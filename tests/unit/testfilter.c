/*
 * Linked into every unit test binary: MXG_TEST=PATTERN runs only the
 * tests whose name matches PATTERN (cmocka's filter: '*' and '?'
 * wildcards), for iterating on one test of a large binary:
 *
 *   MXG_TEST='test_upstream_bind*' build/tests/test_session
 *
 * A pattern that matches nothing runs no test and says so; the binary
 * still exits 0 then, so run-unit.sh never takes MXG_TEST (make
 * check-unit unsets it).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

static void test_filter_from_env(void) __attribute__((constructor));

static void
test_filter_from_env(void)
{
	const char *p = getenv("MXG_TEST");

	if (p != NULL && *p != '\0')
		cmocka_set_test_filter(p);
}
