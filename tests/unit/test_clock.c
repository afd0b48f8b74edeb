/*
 * test_clock.c - the policy clock (core/clock.c) against a wall clock and
 * a boot clock the test moves: it follows the wall clock while the time
 * passed explains it (NTP's slew included), never a step forward beyond
 * that, and follows a step back, measuring the next step forward from
 * there; the warning is logged once per step, not per call.
 */
// WRAP: time clock_gettime
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
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
	assert_int_equal(clock_ahead(), 0);
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
	assert_int_equal(clock_now(), before + 60 + CLOCK_AHEAD_SLACK_S);
	assert_int_equal(clock_ahead(),
	    365 * 86400LL - CLOCK_AHEAD_SLACK_S);
	/* time goes on at its pace from there */
	pass(86400);
	assert_int_equal(clock_now(), before + 60 + 86400 +
	    (60 + 86400) / 2000 + CLOCK_AHEAD_SLACK_S);
	/* the clock set right again: followed */
	wall -= 365 * 86400LL;
	assert_int_equal(clock_now(), wall);
	assert_int_equal(clock_ahead(), 0);
}

static void
test_step_back_followed(void **state)
{
	int64_t back;

	clock_anchor();
	pass(600);
	wall -= 86400;			/* stepped back a day */
	back = wall;
	assert_int_equal(clock_now(), back);
	/* and forward the same day again: measured from the step back */
	pass(10);
	wall += 86400;
	assert_int_equal(clock_now(), back + 10 + CLOCK_AHEAD_SLACK_S);
	wall -= 86400;
	assert_int_equal(clock_now(), wall);
}

static void
test_within_slack_followed(void **state)
{
	clock_anchor();
	pass(5);
	wall += CLOCK_AHEAD_SLACK_S;
	assert_int_equal(clock_now(), wall);
	wall += 1;
	assert_int_equal(clock_now(), wall - 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_follows_the_wall_clock),
		cmocka_unit_test(test_step_forward_not_followed),
		cmocka_unit_test(test_step_back_followed),
		cmocka_unit_test(test_within_slack_followed),
	};

	log_init("test", 0, LOG_LVL_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
