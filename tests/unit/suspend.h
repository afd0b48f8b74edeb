/*
 * suspend.h - clock_gettime() as it is, but CLOCK_BOOTTIME suspended_s
 * seconds ahead: time the host spent suspended (a VM paused), which
 * CLOCK_BOOTTIME counts and CLOCK_MONOTONIC (every timer, and the tests'
 * own waits) does not.  boot_frozen_ms, when not 0, stands CLOCK_BOOTTIME
 * still at that instant (milliseconds, suspended_s added): a lifetime's
 * end to the millisecond.  A test that includes it lists "clock_gettime"
 * in its WRAP line.
 */
#ifndef MXG_TEST_SUSPEND_H
#define MXG_TEST_SUSPEND_H

#include <stdint.h>
#include <time.h>

int __real_clock_gettime(clockid_t, struct timespec *);
int __wrap_clock_gettime(clockid_t, struct timespec *);
static int64_t suspended_s;
static uint64_t boot_frozen_ms;

int
__wrap_clock_gettime(clockid_t id, struct timespec *ts)
{
	int rc = __real_clock_gettime(id, ts);

	if (rc == 0 && id == CLOCK_BOOTTIME && boot_frozen_ms != 0) {
		ts->tv_sec = (time_t)(boot_frozen_ms / 1000);
		ts->tv_nsec = (long)(boot_frozen_ms % 1000) * 1000000;
	}
	if (rc == 0 && id == CLOCK_BOOTTIME)
		ts->tv_sec += (time_t)suspended_s;
	return rc;
}

#endif
