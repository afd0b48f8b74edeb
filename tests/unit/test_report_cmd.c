/*
 * test_report_cmd.c - `mxguard report show DOMAIN` (cmd/report.c) on a
 * real TLSRPT store: the domain given is taken in the daemon's spelling
 * (lower case, A-labels, no trailing dot), which is how the store keeps
 * it, so "Bücher.TEST." finds the counts of xn--bcher-kva.test.  A name
 * that is no domain at all is refused.
 *
 * cmd/ is not in libmxguard.a: the module is compiled in here, with a
 * stand-in for priv_drop_cmd() (cmd/priv.c).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <fcntl.h>
#include <unistd.h>
#include <cmocka.h>

#include "cmd/report.c"
#include "tests/unit/cmdcapture.h"
#include "tests/unit/cmdstubs.h"

static char dir[] = "/tmp/mxg-report-cmd-XXXXXX";
static char outpath[300];
static char out[65536];
static struct config *cfg;

static int
setup(void **state)
{
	char err[256];
	struct tlsrpt_store *st;
	struct tlsrpt_attempt a;

	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(outpath, sizeof(outpath), "%s.out", dir);
	if ((st = tlsrpt_store_open(dir, NULL, err, sizeof(err))) == NULL) {
		fprintf(stderr, "setup: %s\n", err);
		return -1;
	}
	memset(&a, 0, sizeof(a));
	a.policy_domain = "xn--bcher-kva.test";
	a.policy_type = TLSRPT_POLICY_NONE;
	a.result = TLSRPT_SUCCESS;
	if (tlsrpt_record(st, tlsrpt_day((int64_t)time(NULL)), &a) == -1) {
		fprintf(stderr, "setup: %s\n", tlsrpt_store_error(st));
		return -1;
	}
	tlsrpt_store_close(st);
	if ((cfg = config_load(NULL, err, sizeof(err))) == NULL)
		return -1;
	free(cfg->state_dir);
	cfg->state_dir = strdup(dir);
	return 0;
}

static int
teardown(void **state)
{
	char cmd[400];

	config_free(cfg);
	unlink(outpath);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* `mxguard report ARGS...` with stdout in out[]; its exit status. */
static int
run(int argc, char **argv)
{
	return cmd_capture(cmd_report, argc, argv, cfg, outpath, out,
	    sizeof(out), NULL, NULL, 0);
}

static void
test_show_domain_normalised(void **state)
{
	char *plain[] = { "report", "show", "xn--bcher-kva.test", NULL };
	char *upper[] = { "report", "show", "XN--BCHER-KVA.Test.", "--json",
	    NULL };
	char *ulabel[] = { "report", "show", "B\xc3\x9c" "cher.TEST.", NULL };
	char *bad[] = { "report", "show", "a..b", NULL };

	assert_int_equal(run(3, plain), 0);
	assert_non_null(strstr(out, "xn--bcher-kva.test"));
	assert_non_null(strstr(out, "successful=1"));
	/* case and the trailing dot: the same domain */
	assert_int_equal(run(4, upper), 0);
	assert_non_null(strstr(out, "\"domain\": \"xn--bcher-kva.test\", "
	    "\"successful\": 1"));
	/* a U-label: its A-label */
	assert_int_equal(run(3, ulabel), 0);
	assert_non_null(strstr(out, "xn--bcher-kva.test"));
	assert_non_null(strstr(out, "successful=1"));
	/* no domain: refused, nothing shown */
	assert_int_equal(run(3, bad), 1);
	assert_string_equal(out, "");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_show_domain_normalised),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
