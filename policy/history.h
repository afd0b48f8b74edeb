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
 * write transaction.  Keys are "host|address", "|address" and "host|":
 * every attempt updates all three, and a lookup consults all three, so a
 * resolver that fails (or is made to fail) to name the MX host does not
 * hide the history, nor does an address the host was never seen at (an
 * attacker who answers the host's A query with an address of its own).
 * Where no MX host owns the address and the address lookup of one failed,
 * that host's own record counts too (history_apply_unowned()): the
 * attacker who answers the MTA's query and fails the gateway's.  Values
 * are fixed-size records (history.c), keys at most HISTORY_KEY_MAX bytes.
 *
 * The store is bounded (docs/policy.md, "Bounded stores"): at most
 * max_entries records.  A newcomer that finds it full evicts records that
 * no longer decide anything (no completed STARTTLS within the window);
 * a record that still expects TLS is never evicted for it: the newcomer
 * is not recorded instead.  Updates of existing records always go
 * through.  Counters: mxguard_tls_history_entries,
 * mxguard_tls_history_evictions_total{reason},
 * mxguard_tls_history_refusals_total{reason}.
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

#define HISTORY_ENTRIES	100000	/* config tls_history_max_entries */
#define HISTORY_KEY_MAX	(255 + 1 + 45)	/* "host|address" */

/* Opens (creates) DIR/history.mdb with the default limits. */
struct history	*history_open(const char *dir, char *err, size_t errsz);
/* The same with limits: max_entries records; window_s tells which
 * records still decide (expect TLS); mapsize 0 derives the file's bound
 * (a test gives a small one to see MDB_MAP_FULL). */
struct history	*history_open_limits(const char *dir, size_t max_entries,
		    int64_t window_s, size_t mapsize, char *err, size_t errsz);
/* Records in the store. */
size_t		 history_count(struct history *);
/* A new tls_history_window (SIGHUP): which records still decide. */
void		 history_set_window(struct history *, int64_t window_s);
void		 history_close(struct history *);
/* "host|address" into buf; -1 if it does not fit, host is longer than a
 * DNS name (255) or dst is no IP. */
int		 history_key(const char *host, const struct sockaddr *dst,
		    char *buf, size_t sz);
/* 1 found (e filled), 0 none, -1 error, HISTORY_UNREADABLE a record in
 * a layout this version does not know (another version's: it may expect
 * TLS, so it counts as a store that cannot answer).  Here and in
 * history_record(), dst NULL names the host's own record ("host|", host
 * not empty). */
#define HISTORY_UNREADABLE	2
int		 history_get(struct history *, const char *host,
		    const struct sockaddr *dst, struct history_entry *e);
/* Records one attempt at time now.  prev (may be NULL) receives the entry
 * as it was before (zeroed when there was none).  0, or -1 when nothing
 * was written (a newcomer refused by a full store, a store error). */
int		 history_record(struct history *, const char *host,
		    const struct sockaddr *dst, int starttls_offered,
		    int tls_ok, int64_t now, struct history_entry *prev);
/* Merges o into e towards "completed STARTTLS": the later last_tls,
 * last_fail and last_seen, the earlier first_tls, the larger counts.
 * Whatever o holds, history_expects_tls() of the result is at least that
 * of e before: a record learned elsewhere never downgrades one known
 * here.  (redis_hist_decode() brings o's times back to now + 300 s at
 * most, and the write brings them back to now.) */
void		 history_entry_merge(struct history_entry *e,
		    const struct history_entry *o);
/* Merges a record learned elsewhere (policy/redis.c) into the address's
 * record ("|address"), under the store's bounds; a newcomer that expects
 * no TLS is not written.  0, or -1 when refused or on error. */
int		 history_merge(struct history *, const struct sockaddr *dst,
		    const struct history_entry *o, int64_t now);
/* The same into the MX host's own record ("host|"). */
int		 history_merge_host(struct history *, const char *host,
		    const struct history_entry *o, int64_t now);
/* Did the server complete STARTTLS within window_s seconds of now? */
int		 history_expects_tls(const struct history_entry *,
		    int64_t now, int64_t window_s);
int		 history_del(struct history *, const char *host,
		    const struct sockaddr *dst);

/*
 * The policy engine's view.  history_apply(): a verdict that would allow
 * cleartext (TLS_LEVEL_MAY) becomes TLS_LEVEL_ENCRYPT with source
 * "tls-history" when the server at dst (MX host v->mx_host) completed
 * STARTTLS within window_s; returns 1 then, else 0.  A store that
 * cannot answer (a read error) counts as a record that expects TLS:
 * what the history demands at most (history_unreadable()).
 * history_unreadable(): raises a TLS_LEVEL_MAY verdict to ENCRYPT, the
 * most the history can demand, because it could not be asked (why);
 * logged as event=tls-history-unreadable.
 * history_note(): policy_record_tls()'s work: records the attempt and
 * logs a downgrade (a server that completed STARTTLS within the window
 * and now did not) as stripped.
 */
struct policy_verdict;
int		 history_apply(struct history *, int64_t window_s,
		    const struct sockaddr *dst, struct policy_verdict *v);
/* history_apply_unowned(): no MX host was found to own dst, and the
 * address lookup of host, an MX host of the domain, failed: host may
 * own dst (an attacker who answers the MTA's query for it with an
 * address of its own fails the gateway's), so its own record ("host|")
 * decides as in history_apply(); 1 when it raised the verdict. */
int		 history_apply_unowned(struct history *, int64_t window_s,
		    const struct sockaddr *dst, const char *host,
		    struct policy_verdict *v);
void		 history_unreadable(struct policy_verdict *v,
		    const struct sockaddr *dst, const char *why);
void		 history_note(struct history *, int64_t window_s,
		    const struct sockaddr *dst, const char *mx_host,
		    int starttls_offered, int tls_ok);

#endif
