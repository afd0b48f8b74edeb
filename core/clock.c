/*
 * clock.c - the time the policy stores go by (see clock.h).
 */
#include <time.h>

#include "core/clock.h"
#include "core/log.h"

#define WARN_EVERY_S	3600
/* NTP slews at most 500 ppm: a clock that runs that much faster than the
 * boot clock is being corrected, not stepped */
#define SLEW_DIV	2000

static int	anchored;
static int64_t	anchor_wall;	/* wall clock at the anchor */
static int64_t	anchor_boot;	/* CLOCK_BOOTTIME at the anchor */
static int64_t	last_warn_boot;
static int	warned;

static int64_t
boot_now(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_BOOTTIME, &ts) == -1 &&
	    clock_gettime(CLOCK_MONOTONIC, &ts) == -1)
		return 0;
	return (int64_t)ts.tv_sec;
}

void
clock_anchor(void)
{
	anchor_wall = (int64_t)time(NULL);
	anchor_boot = boot_now();
	anchored = 1;
	warned = 0;
}

int64_t
clock_now(void)
{
	int64_t wall = (int64_t)time(NULL), boot, passed, expected, limit;

	if (!anchored)
		clock_anchor();
	boot = boot_now();
	if ((passed = boot - anchor_boot) < 0)
		passed = 0;
	expected = anchor_wall + passed;
	limit = expected + passed / SLEW_DIV + CLOCK_AHEAD_SLACK_S;
	if (wall < expected - CLOCK_AHEAD_SLACK_S) {
		/* stepped back: followed, and a later step forward is
		 * measured from here */
		anchor_wall = wall;
		anchor_boot = boot;
	}
	if (wall <= limit) {
		if (warned)
			log_info("event=clock-ahead-over note=\"the wall "
			    "clock is within what the time passed explains "
			    "again\"");
		warned = 0;
		return wall;
	}
	if (!warned || boot - last_warn_boot >= WARN_EVERY_S) {
		log_warn("event=clock-ahead ahead_s=%lld note=\"the wall "
		    "clock stepped forward more than the time passed since "
		    "mxguard took it; MTA-STS policies and the TLS history "
		    "expire by the time passed, not by the step (restart "
		    "mxguard once the clock is known to be right)\"",
		    (long long)(wall - limit));
		warned = 1;
		last_warn_boot = boot;
	}
	return limit;
}

int64_t
clock_ahead(void)
{
	int64_t wall = (int64_t)time(NULL), now = clock_now();

	return wall > now ? wall - now : 0;
}
