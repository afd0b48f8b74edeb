/*
 * clock.h - the time the policy stores go by.
 *
 * A cached MTA-STS policy ends at its max_age, and the TLS history
 * forgets a server after its window, both measured against the wall
 * clock.  An attacker on the path who can move that clock (NTP answers
 * are not authenticated on most hosts) moves it a year forward, and every
 * cached policy and every history record has expired: with the policy
 * host and the TXT record blocked too, the next session to an MTA-STS
 * domain has no policy and can be stripped of STARTTLS.  A step back
 * does the same in two moves: records written while the clock is behind
 * carry its times, and look old once it is set right.
 *
 * clock_now() is the wall clock as long as the time that has really
 * passed since the anchor (CLOCK_BOOTTIME, which counts suspend and which
 * no clock setting moves) explains it, within CLOCK_SLACK_S plus NTP's
 * largest slew (500 ppm) either way.  A step beyond that, forward or
 * back, is not followed: clock_now() stays at the edge of what the time
 * passed explains, and the step is logged (event=clock-step, once an
 * hour while it lasts).
 *
 * The anchor is taken at the start (clock_anchor()) and kept for the
 * boot in state_dir (clock_anchor_save(), the daemon), so that a restart
 * of the daemon (a crash, the watchdog) or a command such as `mxguard
 * policy` goes by the same clock (clock_anchor_restore()), not by
 * whatever the wall clock says then.  A new boot takes the wall clock
 * again, unless it is behind the policy time the file last recorded (the
 * daemon writes it again every CLOCK_SAVE_EVERY_S and when it stops):
 * then that time, a floor, so that a clock set back at boot does not make
 * expired certificates valid again.  Removing the file and restarting is
 * how an operator accepts a clock known to be right.
 *
 * Only policy decisions use it (MTA-STS cache, TLS history, Redis merge,
 * certificate validity: X509_VERIFY_PARAM_set_time() wherever a chain is
 * verified); log time stamps and TLSRPT days keep the wall clock.
 */
#ifndef MXG_CLOCK_H
#define MXG_CLOCK_H

#include <stddef.h>
#include <stdint.h>

#define CLOCK_SLACK_S		120
#define CLOCK_ANCHOR_FILE	"clock.anchor"
/* The largest time a file of ours may name, 9999-12-31T23:59:59Z (what
 * a certificate's time can say): a time read back beyond it is corrupt,
 * and sums of such times with the clock's would overflow int64_t. */
#define CLOCK_TIME_MAX		INT64_C(253402300799)
#define CLOCK_SAVE_EVERY_S	3600

/* Takes the anchor now (the wall clock as it is); clock_now() takes it
 * itself on its first call.  Call before forking workers. */
void		 clock_anchor(void);
/* The anchor this boot's daemon kept in dir/CLOCK_ANCHOR_FILE: 1 taken,
 * 0 none for this boot (no file, another boot, no boot id), 2 another
 * boot's whose last policy time is ahead of the wall clock: taken as the
 * anchor (logged), -1 a file that cannot be read or does not parse (err
 * says why; the anchor stays as it was). */
int		 clock_anchor_restore(const char *dir, char *err, size_t errsz);
/* Keeps the anchor in dir/CLOCK_ANCHOR_FILE for this boot, with the
 * policy time now (a new file renamed over the old one): 0, or -1 with
 * err. */
int		 clock_anchor_save(const char *dir, char *err, size_t errsz);
/* The policy time, Unix seconds (see above). */
int64_t		 clock_now(void);

#endif
