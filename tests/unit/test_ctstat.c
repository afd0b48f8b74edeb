/*
 * test_ctstat.c - conntrack's drop counters (core/ctstat.c), the evidence
 * that a failed MTA-STS fetch or lookup was this host's doing: the "drop"
 * column found by its name and summed over the CPUs' lines, read afresh
 * at each call; a file of another layout refused at the open; and the
 * kernel's own file, where this kernel has one, parsed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <string.h>

#include "ctfake.h"

static void
test_drops_summed(void **state)
{
	(void)state;
	assert_int_equal(ctfake_open(9), 0);
	assert_int_equal(ctstat_drops(), 9);
	assert_int_equal(ctfake_set(0x123), 0);
	assert_int_equal(ctstat_drops(), 0x123);
	assert_int_equal(ctstat_drops(), 0x123);
	ctfake_close();
}

static void
test_other_layout_refused(void **state)
{
	FILE *f;

	(void)state;
	assert_int_equal(ctfake_open(0), 0);
	ctstat_close();
	assert_non_null(f = fopen(ctfake_path, "w"));
	fprintf(f, "entries found new\n00000001 00000002 00000003\n");
	fclose(f);
	errno = 0;
	assert_int_equal(ctstat_open(ctfake_path), -1);
	assert_int_equal(errno, ENOMSG);
	/* not open: read afresh each time, and 0 for what cannot be read */
	assert_int_equal(ctstat_drops(), 0);
	unlink(ctfake_path);
	assert_int_equal(ctstat_drops(), 0);
}

/* The kernel's file, where conntrack runs in this namespace: the layout
 * ctstat parses (the columns have changed across kernels; "drop" has
 * stayed) */
static void
test_kernel_file(void **state)
{
	(void)state;
	if (ctstat_open(CTSTAT_PATH) == -1) {
		assert_int_equal(errno, ENOENT);
		skip();
	}
	(void)ctstat_drops();
	ctstat_close();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_drops_summed),
		cmocka_unit_test(test_other_layout_refused),
		cmocka_unit_test(test_kernel_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
