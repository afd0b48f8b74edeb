/*
 * test_clock.c - the policy clock (core/clock.c) against a wall clock and
 * a boot clock the test moves: it follows the wall clock while the time
 * passed explains it (NTP's slew included), never a step beyond that,
 * forward or back; the anchor kept for the boot in a file is taken again
 * (a restart, a command), one of another boot or that does not parse is
 * not.
 */
// WRAP: time clock_gettime
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/clock.h"
#include "core/log.h"

static int64_t wall = 1900000000, boot = 1000;

time_t
__wrap_time(time_t *t)
{
	if (t != NULL)
		*t = (time_t)wall;
	return (time_t)wall;
}

int
__wrap_clock_gettime(clockid_t id, struct timespec *ts)
{
	ts->tv_sec = (time_t)boot;
	ts->tv_nsec = 0;
	return 0;
}

static void
pass(int64_t s)
{
	wall += s;
	boot += s;
}

static void
test_follows_the_wall_clock(void **state)
{
	clock_anchor();
	assert_int_equal(clock_now(), wall);
	pass(3600);
	assert_int_equal(clock_now(), wall);
	/* NTP slewing 400 ppm fast for 10 days, and a small step */
	boot += 864000;
	wall += 864000 + 345 + 100;
	assert_int_equal(clock_now(), wall);
}

static void
test_step_forward_not_followed(void **state)
{
	int64_t before;

	clock_anchor();
	before = wall;
	pass(60);
	wall += 365 * 86400LL;		/* an attacker's NTP answer */
	assert_int_equal(clock_now(), before + 60 + CLOCK_SLACK_S);
	/* time goes on at its pace from there */
	pass(86400);
	assert_int_equal(clock_now(), before + 60 + 86400 +
	    (60 + 86400) / 2000 + CLOCK_SLACK_S);
	/* the clock set right again: followed */
	wall -= 365 * 86400LL;
	assert_int_equal(clock_now(), wall);
}

/* A step back is not followed either: records written while the clock
 * is behind would carry its times, and look old once it is set right. */
static void
test_step_back_not_followed(void **state)
{
	int64_t before;

	clock_anchor();
	before = wall;
	pass(600);
	wall -= 365 * 86400LL;
	assert_int_equal(clock_now(), before + 600 - CLOCK_SLACK_S);
	/* and forward again: where it was */
	pass(10);
	wall += 365 * 86400LL;
	assert_int_equal(clock_now(), wall);
	/* within the slack back: followed */
	wall -= CLOCK_SLACK_S;
	assert_int_equal(clock_now(), wall);
}

static void
test_within_slack_followed(void **state)
{
	clock_anchor();
	pass(5);
	wall += CLOCK_SLACK_S;
	assert_int_equal(clock_now(), wall);
	wall += 1;
	assert_int_equal(clock_now(), wall - 1);
}

/* The anchor kept for the boot: a restart (or a command) goes by it,
 * not by the wall clock as it then is; another boot's, or a file that
 * does not parse, is not taken. */
static void
test_anchor_file(void **state)
{
	char dir[] = "/tmp/mxg-clock-XXXXXX", path[128], err[256];
	int64_t start;
	FILE *f;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/%s", dir, CLOCK_ANCHOR_FILE);
	assert_int_equal(clock_anchor_restore(dir, err, sizeof(err)), 0);
	clock_anchor();
	start = wall;
	assert_int_equal(clock_anchor_save(dir, err, sizeof(err)), 0);
	/* a restart an hour later, on a clock a year ahead */
	pass(3600);
	wall += 365 * 86400LL;
	clock_anchor();
	assert_int_equal(clock_now(), wall);
	assert_int_equal(clock_anchor_restore(dir, err, sizeof(err)), 1);
	/* the allowance runs from the first anchor */
	assert_int_equal(clock_now(), start + 3600 + 3600 / 2000 +
	    CLOCK_SLACK_S);
	wall -= 365 * 86400LL;
	assert_int_equal(clock_now(), wall);
	/* another boot's anchor: not taken */
	assert_non_null(f = fopen(path, "w"));
	fprintf(f, "mxguard-clock 1 00000000-0000-0000-0000-000000000000 "
	    "5\n");
	fclose(f);
	clock_anchor();
	assert_int_equal(clock_anchor_restore(dir, err, sizeof(err)), 0);
	assert_int_equal(clock_now(), wall);
	/* a file that does not parse */
	assert_non_null(f = fopen(path, "w"));
	fprintf(f, "garbage\n");
	fclose(f);
	assert_int_equal(clock_anchor_restore(dir, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not an anchor line"));
	unlink(path);
	rmdir(dir);
}

/*
 * The anchor file is read before any privilege drop: by `mxguard run`
 * (the supervisor, root) and by every command root runs, `rules install`
 * and `rules boot` among them, in state_dir, which `user` owns.  A FIFO
 * planted there (by a compromised worker) made that open() block for
 * ever: the service's ExecStartPre and the boot unit hung, no rules and
 * no daemon, mail going direct.  A symbolic link had root read whatever
 * it named.  Only a regular file, reached without following a link, is
 * read; the alarm() ends the test if the open blocks again.
 */
static void
test_anchor_file_not_followed(void **state)
{
	char dir[] = "/tmp/mxg-clock-XXXXXX", path[128], real[128], err[256];

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/%s", dir, CLOCK_ANCHOR_FILE);
	snprintf(real, sizeof(real), "%s/elsewhere", dir);
	clock_anchor();
	/* a good anchor, named through a link */
	assert_int_equal(clock_anchor_save(dir, err, sizeof(err)), 0);
	assert_int_equal(rename(path, real), 0);
	assert_int_equal(symlink(real, path), 0);
	err[0] = '\0';
	assert_int_equal(clock_anchor_restore(dir, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "symbolic link"));
	assert_int_equal(unlink(path), 0);
	/* a FIFO nobody writes to */
	assert_int_equal(mkfifo(path, 0600), 0);
	alarm(10);
	err[0] = '\0';
	assert_int_equal(clock_anchor_restore(dir, err, sizeof(err)), -1);
	alarm(0);
	assert_non_null(strstr(err, "not a regular file"));
	/* the daemon's next save puts a file in its place */
	assert_int_equal(clock_anchor_save(dir, err, sizeof(err)), 0);
	assert_int_equal(clock_anchor_restore(dir, err, sizeof(err)), 1);
	unlink(path);
	unlink(real);
	rmdir(dir);
}

/* A restart late in the boot keeps the slew allowance of all the time
 * since the first anchor: ten days of NTP slewing 400 ppm fast is no
 * step after a restart either (the allowance started again at 120 s at
 * every restore). */
static void
test_anchor_file_keeps_slew(void **state)
{
	char dir[] = "/tmp/mxg-clock-XXXXXX", path[128], err[256];
	FILE *f;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/%s", dir, CLOCK_ANCHOR_FILE);
	clock_anchor();
	assert_int_equal(clock_anchor_save(dir, err, sizeof(err)), 0);
	boot += 864000;
	wall += 864000 + 345;
	assert_int_equal(clock_now(), wall);
	/* the restart: restored and saved again, as the daemon does */
	clock_anchor();
	assert_int_equal(clock_anchor_restore(dir, err, sizeof(err)), 1);
	assert_int_equal(clock_now(), wall);
	assert_int_equal(clock_anchor_save(dir, err, sizeof(err)), 0);
	pass(60);
	clock_anchor();
	assert_int_equal(clock_anchor_restore(dir, err, sizeof(err)), 1);
	assert_int_equal(clock_now(), wall);
	/* an anchor file of the older format (no AT, nor LAST): allowance
	 * from now */
	assert_non_null(f = fopen(path, "r"));
	assert_non_null(fgets(err, sizeof(err), f));
	fclose(f);
	*strrchr(err, ' ') = '\0';
	*strrchr(err, ' ') = '\0';
	assert_non_null(f = fopen(path, "w"));
	fprintf(f, "%s\n", err);
	fclose(f);
	clock_anchor();
	assert_int_equal(clock_anchor_restore(dir, err, sizeof(err)), 1);
	assert_int_equal(clock_now(), wall - 345 + CLOCK_SLACK_S);
	unlink(path);
	rmdir(dir);
}

/* Another boot's file: the policy time it last recorded is a floor.  A
 * clock set back at this boot (an NTP answer, a flat clock battery) is
 * not taken: the policy clock starts at that time and runs on by the
 * time passed; a clock at or ahead of it is taken as it is.  A file of
 * the version before (no LAST) floors at its anchor's own time. */
static void
test_another_boot_floor(void **state)
{
	char dir[] = "/tmp/mxg-clock-XXXXXX", path[128], err[256];
	const char *other = "00000000-0000-0000-0000-000000000000";
	int64_t last;
	FILE *f;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/%s", dir, CLOCK_ANCHOR_FILE);
	/* what this boot's daemon writes: the policy time last */
	clock_anchor();
	pass(7200);
	assert_int_equal(clock_anchor_save(dir, err, sizeof(err)), 0);
	assert_non_null(f = fopen(path, "r"));
	assert_non_null(fgets(err, sizeof(err), f));
	fclose(f);
	assert_int_equal(sscanf(strrchr(err, ' ') + 1, "%" SCNd64, &last), 1);
	assert_int_equal(last, wall);

	/* a later boot whose clock was set back a year */
	last = wall;
	assert_non_null(f = fopen(path, "w"));
	fprintf(f, "mxguard-clock 1 %s 5 1000 %" PRId64 "\n", other, last);
	fclose(f);
	wall -= 365 * 86400LL;
	boot = 50;
	clock_anchor();
	assert_int_equal(clock_anchor_restore(dir, err, sizeof(err)), 2);
	assert_int_equal(clock_now(), last);
	pass(600);
	assert_int_equal(clock_now(), last + 600);
	/* saved for this boot: a restart keeps the floored clock */
	assert_int_equal(clock_anchor_save(dir, err, sizeof(err)), 0);
	clock_anchor();
	assert_int_equal(clock_anchor_restore(dir, err, sizeof(err)), 1);
	assert_int_equal(clock_now(), last + 600);

	/* within the slack of it, or ahead: the wall clock as it is */
	assert_non_null(f = fopen(path, "w"));
	fprintf(f, "mxguard-clock 1 %s 5 1000 %" PRId64 "\n", other,
	    wall + CLOCK_SLACK_S);
	fclose(f);
	clock_anchor();
	assert_int_equal(clock_anchor_restore(dir, err, sizeof(err)), 0);
	assert_int_equal(clock_now(), wall);

	/* the format before LAST: the anchor's time, OFFSET + AT */
	assert_non_null(f = fopen(path, "w"));
	fprintf(f, "mxguard-clock 1 %s %" PRId64 " 1000\n", other,
	    wall + 86400 - 1000);
	fclose(f);
	clock_anchor();
	assert_int_equal(clock_anchor_restore(dir, err, sizeof(err)), 2);
	assert_int_equal(clock_now(), wall + 86400);
	unlink(path);
	rmdir(dir);
}

/*
 * An anchor file whose times no clock can mean (a corrupt file, or one
 * edited by hand): 9223372036854775807 is what sscanf() makes of any
 * number too large.  Added to the boot clock, or to the slack, the sum
 * overflowed int64_t (undefined; in practice the policy clock wrapped to
 * 292 billion years before 1970, and every certificate was "not yet
 * valid").  Refused as a line that does not parse: the policy clock is
 * the wall clock as it is, and the start says so.
 */
static void
test_anchor_file_out_of_range(void **state)
{
	static const char *const bad[] = {
		"9223372036854775807 1000 1900000000",	/* offset */
		"-9223372036854775807 1000 1900000000",
		"1899999000 9223372036854775807 1900000000",	/* at */
		"1899999000 1000 9223372036854775807",	/* last */
		"1899999000 1000 -9223372036854775807",
		"253402300800 0",	/* one second past 9999 */
	};
	const char *other = "00000000-0000-0000-0000-000000000000";
	char dir[] = "/tmp/mxg-clock-XXXXXX", path[128], err[256];
	char line[256], id[64];
	size_t i;
	int pass_no;
	FILE *f;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/%s", dir, CLOCK_ANCHOR_FILE);
	/* this boot's id, as the daemon writes it */
	clock_anchor();
	assert_int_equal(clock_anchor_save(dir, err, sizeof(err)), 0);
	assert_non_null(f = fopen(path, "r"));
	assert_non_null(fgets(line, sizeof(line), f));
	fclose(f);
	assert_int_equal(sscanf(line, "mxguard-clock 1 %63s", id), 1);
	for (pass_no = 0; pass_no < 2; pass_no++) {
		for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			assert_non_null(f = fopen(path, "w"));
			fprintf(f, "mxguard-clock 1 %s %s\n", pass_no == 0 ?
			    id : other, bad[i]);
			fclose(f);
			clock_anchor();
			err[0] = '\0';
			assert_int_equal(clock_anchor_restore(dir, err,
			    sizeof(err)), -1);
			assert_non_null(strstr(err, "not an anchor line"));
			assert_int_equal(clock_now(), wall);
			pass(1);
			assert_int_equal(clock_now(), wall);
		}
	}
	/* the largest time it takes: year 9999, another boot's floor */
	assert_non_null(f = fopen(path, "w"));
	fprintf(f, "mxguard-clock 1 %s 253402300799 0\n", other);
	fclose(f);
	clock_anchor();
	assert_int_equal(clock_anchor_restore(dir, err, sizeof(err)), 2);
	assert_int_equal(clock_now(), 253402300799LL);
	clock_anchor();
	unlink(path);
	rmdir(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_follows_the_wall_clock),
		cmocka_unit_test(test_step_forward_not_followed),
		cmocka_unit_test(test_step_back_not_followed),
		cmocka_unit_test(test_within_slack_followed),
		cmocka_unit_test(test_anchor_file),
		cmocka_unit_test(test_anchor_file_not_followed),
		cmocka_unit_test(test_anchor_file_keeps_slew),
		cmocka_unit_test(test_another_boot_floor),
		cmocka_unit_test(test_anchor_file_out_of_range),
	};

	log_init("test", 0, LOG_LVL_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
