/*
 * history.h - the persistent TLS history (docs/policy.md, "Order of the
 * sources", item 4; an addition to what the RFCs ask):
 * per MX host name and address, when the server last completed STARTTLS
 * and when it last failed to (STARTTLS missing from the EHLO reply, a
 * refusal such as 454, a failed handshake).
 *
 * A server that completed STARTTLS within the window (config
 * tls_history_window) and now does not is treated as stripped: the policy
 * gives such a destination TLS_LEVEL_ENCRYPT with source "tls-history"
 * and the delivery is deferred instead of going out in cleartext.
 *
 * LMDB file DIR/history.mdb (its own environment); every update is one
 * write transaction.  Keys are "host|address" and "|address": every
 * attempt updates both, and a lookup consults both, so a resolver that
 * fails (or is made to fail) to name the MX host does not hide the
 * history.  Values are fixed-size records (history.c).
 */
#ifndef MXG_HISTORY_H
#define MXG_HISTORY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct history;

struct history_entry {
	int64_t		 first_tls;	/* wall-clock seconds; 0 never */
	int64_t		 last_tls;	/* last completed STARTTLS */
	int64_t		 last_fail;	/* last time STARTTLS did not work */
	int64_t		 last_seen;	/* last update of any kind */
	uint32_t	 tls_count;
	uint32_t	 fail_count;
};

struct history	*history_open(const char *dir, char *err, size_t errsz);
void		 history_close(struct history *);
/* "host|address" into buf; -1 if it does not fit or dst is no IP. */
int		 history_key(const char *host, const struct sockaddr *dst,
		    char *buf, size_t sz);
/* 1 found (e filled), 0 none, -1 error. */
int		 history_get(struct history *, const char *host,
		    const struct sockaddr *dst, struct history_entry *e);
/* Records one attempt at time now.  prev (may be NULL) receives the entry
 * as it was before (zeroed when there was none).  0 or -1. */
int		 history_record(struct history *, const char *host,
		    const struct sockaddr *dst, int starttls_offered,
		    int tls_ok, int64_t now, struct history_entry *prev);
/* Did the server complete STARTTLS within window_s seconds of now? */
int		 history_expects_tls(const struct history_entry *,
		    int64_t now, int64_t window_s);
int		 history_del(struct history *, const char *host,
		    const struct sockaddr *dst);

/*
 * The policy engine's view.  history_apply(): a verdict that would allow
 * cleartext (TLS_LEVEL_MAY) becomes TLS_LEVEL_ENCRYPT with source
 * "tls-history" when the server at dst (MX host v->mx_host) completed
 * STARTTLS within window_s; returns 1 then, else 0.
 * history_note(): policy_record_tls()'s work: records the attempt and
 * logs a downgrade (a server that completed STARTTLS within the window
 * and now did not) as stripped.
 */
struct policy_verdict;
int		 history_apply(struct history *, int64_t window_s,
		    const struct sockaddr *dst, struct policy_verdict *v);
void		 history_note(struct history *, int64_t window_s,
		    const struct sockaddr *dst, const char *mx_host,
		    int starttls_offered, int tls_ok);

#endif
