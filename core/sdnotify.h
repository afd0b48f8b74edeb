/*
 * sdnotify.h - the systemd notify protocol (READY=1, STOPPING=1,
 * RELOADING=1, WATCHDOG=1, STATUS=...), spoken directly over
 * $NOTIFY_SOCKET so mxguard needs no libsystemd.  Every call is a no-op
 * when not run by systemd.
 */
#ifndef MXG_SDNOTIFY_H
#define MXG_SDNOTIFY_H

#include <stdint.h>

int		 sd_notifyf(const char *fmt, ...)
		    __attribute__((format(printf, 1, 2)));
/* Half of $WATCHDOG_USEC in ms, or 0 when the watchdog is off. */
uint64_t	 sd_watchdog_interval_ms(void);

#endif
