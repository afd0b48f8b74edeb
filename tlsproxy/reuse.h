/*
 * reuse.h - upstream TLS legs kept open between sessions.
 *
 * A legacy MTA opens a new connection for every message it sends to an MX
 * (most do: Sendmail, appliances, Exchange without connection caching).
 * When such a session ends with QUIT after a completed transaction, its
 * verified TLS leg to the MX is parked here for a few seconds instead of
 * being closed; the next session from the same client to the same MX
 * takes it over and skips the TCP connect, the greeting, STARTTLS and the
 * TLS handshake.  It is Postfix's SMTP connection cache, done in front of
 * an MTA that has none.
 *
 * A leg is keyed by destination address and client address (so the MX
 * keeps seeing one client's EHLO name per connection); it is never shared
 * by two sessions at once.  While parked, anything from the server (a 421,
 * a close, an error) or the end of the idle time closes it (QUIT first when
 * possible, then io_linger: the server closes first).  The taker re-checks
 * the recipient domain's policy against the leg before any envelope byte
 * crosses it (tlsproxy/leg.c, leg_fits).
 *
 * Ownership: reuse_park() takes the io and the set of counted reports on
 * success (0); reuse_take() hands them to the caller.  reuse_free() closes every
 * parked leg.
 */
#ifndef MXG_REUSE_H
#define MXG_REUSE_H

#include <stdint.h>

#include "core/io.h"
#include "policy/policy.h"
#include "tlsproxy/domset.h"

struct reuse;

/* After its QUIT (and 221) an upstream connection waits this long for the
 * server to close first (io_linger), then closes itself. */
#define UPSTREAM_LINGER_MS	1000

struct reuse_leg {
	struct io		*up;		/* TLS established, idle */
	struct tls_proof	 proof;		/* what its TLS proved (a value) */
	char			 greeting[512];	/* the server's 220, with CRLF */
	char			 tls_proto[16];
	char			 tls_verify[48];
	unsigned		 uses;		/* sessions it served */
	uint64_t		 born;		/* ev_boot_now() at its connect */
	struct domset		 counted;	/* TLSRPT: reports (domain
						 * and policy) this
						 * connection was counted a
						 * success in */
};

struct reuse	*reuse_new(void);
void		 reuse_free(struct reuse *);
/* Closes every parked leg (drain, reload of the TLS settings). */
void		 reuse_flush(struct reuse *);
/* 0: parked (ownership taken); -1: full, the caller keeps the leg. */
int		 reuse_park(struct reuse *, const char *key,
		    struct reuse_leg *, uint64_t idle_ms, int max_legs);
/* 0 and *leg filled: the newest parked leg for key; -1: none. */
int		 reuse_take(struct reuse *, const char *key, struct reuse_leg *);
int		 reuse_count(const struct reuse *);

#endif
