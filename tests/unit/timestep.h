/*
 * timestep.h - time() as it is, plus time_step seconds: a step of the wall
 * clock that the boot clock does not see, as an NTP answer makes one
 * (core/clock.c sees no time pass).  A test that includes it lists
 * "time" in its WRAP line.
 */
#ifndef MXG_TEST_TIMESTEP_H
#define MXG_TEST_TIMESTEP_H

#include <stdint.h>
#include <time.h>

time_t __real_time(time_t *);
time_t __wrap_time(time_t *);
static int64_t time_step;

time_t
__wrap_time(time_t *t)
{
	time_t now = __real_time(NULL) + (time_t)time_step;

	if (t != NULL)
		*t = now;
	return now;
}

#endif
