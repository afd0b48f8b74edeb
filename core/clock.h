/*
 * clock.h - the time the policy stores go by.
 *
 * A cached MTA-STS policy ends at its max_age, and the TLS history
 * forgets a server after its window, both measured against the wall
 * clock.  An attacker on the path who can move that clock (NTP answers
 * are not authenticated on most hosts) moves it a year forward, and every
 * cached policy and every history record has expired: with the policy
 * host and the TXT record blocked too, the next session to an MTA-STS
 * domain has no policy and can be stripped of STARTTLS.
 *
 * clock_now() is the wall clock, except that it never runs ahead of the
 * time that has really passed since the process took its anchor
 * (CLOCK_BOOTTIME, which counts suspend and which no clock setting
 * moves), by more than CLOCK_AHEAD_SLACK_S plus an NTP slew allowance
 * (500 ppm).  A step forward beyond that is not followed (logged,
 * event=clock-ahead, once an hour while it lasts); a step back is
 * followed, and the anchor moves with it, so a later step forward is
 * measured from there.  A restart takes the clock as it is: the daemon's
 * supervisor anchors before it forks, so a worker started again after a
 * crash keeps the daemon's anchor.
 *
 * Only policy decisions use it (MTA-STS cache, TLS history, Redis merge);
 * log time stamps, TLSRPT days and certificate validity keep the wall
 * clock.
 */
#ifndef MXG_CLOCK_H
#define MXG_CLOCK_H

#include <stdint.h>

#define CLOCK_AHEAD_SLACK_S	120

/* Takes the anchor now (the wall clock as it is); clock_now() takes it
 * itself on its first call.  Call before forking workers. */
void		 clock_anchor(void);
/* The policy time, Unix seconds (see above). */
int64_t		 clock_now(void);
/* Seconds the wall clock is ahead of clock_now() (0 when it is not). */
int64_t		 clock_ahead(void);

#endif
