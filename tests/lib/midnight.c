/*
 * midnight.c - an LD_PRELOAD shim for tests/ns/115: the wall clock moved
 * forward so that it reads MXG_FAKE_SOD seconds after the next 00:00 UTC
 * when the process starts (time(), gettimeofday(), clock_gettime() of
 * CLOCK_REALTIME and its kin; the monotonic clocks are left alone).  The
 * offset is taken once, in the process that loads the shim: workers
 * forked from it share it, so a worker started again later reads the
 * same day a few seconds on.  Test code only.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

static time_t offset;

static int (*real_cg)(clockid_t, struct timespec *);

__attribute__((constructor)) static void
init(void)
{
	const char *s = getenv("MXG_FAKE_SOD");
	struct timespec ts;

	real_cg = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT,
	    "clock_gettime");
	if (s == NULL || real_cg == NULL || real_cg(CLOCK_REALTIME, &ts) != 0)
		return;
	offset = 86400 - ts.tv_sec % 86400 + atol(s);
}

int
clock_gettime(clockid_t id, struct timespec *ts)
{
	int rc = real_cg(id, ts);

	if (rc == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE ||
	    id == CLOCK_TAI))
		ts->tv_sec += offset;
	return rc;
}

int
gettimeofday(struct timeval *restrict tv, void *restrict tz)
{
	struct timespec ts;

	(void)tz;
	if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
		return -1;
	tv->tv_sec = ts.tv_sec;
	tv->tv_usec = ts.tv_nsec / 1000;
	return 0;
}

time_t
time(time_t *t)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
		return (time_t)-1;
	if (t != NULL)
		*t = ts.tv_sec;
	return ts.tv_sec;
}
