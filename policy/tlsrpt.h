/*
 * tlsrpt.h - SMTP TLS Reporting (RFC 8460): the self-contained core.
 *
 *   tlsrpt.c         the _smtp._tls TXT record (section 3) and its rua
 *                    URIs; pure functions, no I/O, fuzzed.
 *   tlsrpt_store.c   per UTC day, per policy domain and policy: session
 *                    counts and failure-detail buckets, in LMDB under
 *                    state_dir (tlsrpt.mdb), bounded; which reports are
 *                    due, which were sent, pruning.
 *   tlsrpt_report.c  the aggregate report (section 4) as JSON (jansson),
 *                    gzip (zlib), the report file name (section 5.1).
 *   tlsrpt_mail.c    the mailto report message (section 5.3), DKIM-signed
 *                    with libopendkim.
 *
 * Nothing here knows sessions, DNS or delivery: the caller records each
 * attempt, looks the TXT record up, and delivers what these functions
 * build (docs/tlsrpt.md says what is wired and what is not).
 *
 * Memory: every char ** / unsigned char ** result is malloc'd and
 * belongs to the caller (free()); every struct filled by a parser is the
 * caller's storage.  Strings in a struct tlsrpt_attempt are only read.
 */
#ifndef MXG_TLSRPT_H
#define MXG_TLSRPT_H

#include <stddef.h>
#include <stdint.h>

/* ---- the TXT record and its URIs (tlsrpt.c) ---- */

#define TLSRPT_TXT_MAX	4096	/* longer TXT input is refused */
#define TLSRPT_RUA_MAX	8	/* URIs in one rua field */
#define TLSRPT_URI_MAX	1024	/* one URI as published */

enum tlsrpt_uri_kind { TLSRPT_URI_MAILTO, TLSRPT_URI_HTTPS };

struct tlsrpt_uri {
	enum tlsrpt_uri_kind	 kind;
	char	 uri[TLSRPT_URI_MAX + 1];	/* as published */
	/* mailto: the addr-spec, percent-decoded, domain lower case */
	char	 addr[64 + 1 + 253 + 1];
	/* https: host lower case, port (443 if absent), request target
	 * (path and query, "/" when the URI has none) */
	char	 host[253 + 1];
	uint16_t port;
	char	 path[TLSRPT_URI_MAX + 1];
};

struct tlsrpt_policy_record {
	int			 nrua;
	struct tlsrpt_uri	 rua[TLSRPT_RUA_MAX];
	int			 rua_over;	/* valid URIs past the first
						 * TLSRPT_RUA_MAX: not used */
};

/*
 * One rua URI: 0 = a mailto: or https: URI we can deliver to (u filled),
 * -1 = anything else (err says why).
 */
int	tlsrpt_uri_parse(const char *s, size_t len, struct tlsrpt_uri *u,
	    char *err, size_t errsz);
/*
 * One TXT record: 1 = a valid TLSRPTv1 record (r filled), 0 = not a
 * TLSRPT record (does not start with "v=TLSRPTv1" and a delimiter),
 * -1 = a TLSRPT record that is malformed (err says why).
 */
int	tlsrpt_txt_parse(const char *txt, size_t len,
	    struct tlsrpt_policy_record *r, char *err, size_t errsz);
/*
 * All TXT records of _smtp._tls.D (section 3): 1 = exactly one TLSRPT
 * record and it is valid (r filled); 0 = none, or several (err says
 * so); -1 = the one record is malformed (err).  Only 1 means "report".
 */
int	tlsrpt_txt_select(const char *const *txts, const size_t *lens, int n,
	    struct tlsrpt_policy_record *r, char *err, size_t errsz);

/* 1 if s[0..n) is an LDH host name: labels 1-63, at most 253 in all, no
 * trailing dot. */
int	tlsrpt_valid_host(const char *s, size_t n);

/* ---- recording (tlsrpt_store.c) ---- */

enum tlsrpt_policy_type {
	TLSRPT_POLICY_STS,
	TLSRPT_POLICY_TLSA,
	TLSRPT_POLICY_NONE,		/* "no-policy-found" */
	TLSRPT_POLICY_NTYPES
};

/* RFC 8460 section 4.3 result types; TLSRPT_SUCCESS is a good session. */
enum tlsrpt_result {
	TLSRPT_SUCCESS,
	TLSRPT_STARTTLS_NOT_SUPPORTED,
	TLSRPT_CERTIFICATE_HOST_MISMATCH,
	TLSRPT_CERTIFICATE_EXPIRED,
	TLSRPT_CERTIFICATE_NOT_TRUSTED,
	TLSRPT_VALIDATION_FAILURE,
	TLSRPT_TLSA_INVALID,
	TLSRPT_DNSSEC_INVALID,
	TLSRPT_DANE_REQUIRED,
	TLSRPT_STS_POLICY_FETCH_ERROR,
	TLSRPT_STS_POLICY_INVALID,
	TLSRPT_STS_WEBPKI_INVALID,
	TLSRPT_NRESULTS
};

const char *tlsrpt_policy_type_name(enum tlsrpt_policy_type);
const char *tlsrpt_result_name(enum tlsrpt_result);	/* NULL: success */

#define TLSRPT_FIELD_MAX 255	/* detail strings are cut to this length */

/*
 * One upstream attempt under a policy domain.  Policy strings: for sts
 * the policy file's lines, for tlsa the TLSA records in presentation
 * form; none for no-policy-found.  Any detail string may be NULL
 * (unknown).  failure_reason is a short text (RFC "failure-reason-code"),
 * additional_info a URI (RFC "additional-information").
 */
struct tlsrpt_attempt {
	const char		 *policy_domain;
	enum tlsrpt_policy_type	  policy_type;
	const char *const	 *policy_strings;
	int			  npolicy_strings;
	const char *const	 *mx_hosts;
	int			  nmx_hosts;
	enum tlsrpt_result	  result;
	const char		 *sending_mta_ip;
	const char		 *receiving_mx_hostname;
	const char		 *receiving_mx_helo;
	const char		 *receiving_ip;
	const char		 *failure_reason;
	const char		 *additional_info;
};

/*
 * Bounds.  Per day at most max_domains policy domains; per domain and
 * day at most max_policies distinct policies (a policy that changed
 * during the day is a new one) and max_buckets failure-detail buckets
 * over all its policies; one stored entry (policy strings, MX patterns,
 * buckets) at most max_entry bytes.  Sessions beyond a bound are counted,
 * never stored in detail: see struct tlsrpt_day_stats and
 * tlsrpt_counts.detail_overflow.  Zero fields take the defaults.
 */
struct tlsrpt_limits {
	uint32_t	 max_domains;	/* default 5000 */
	uint32_t	 max_policies;	/* default 4 */
	uint32_t	 max_buckets;	/* default 64 */
	uint32_t	 max_entry;	/* bytes, default 32768 */
	uint64_t	 mapsize;	/* LMDB map, default 1 GiB */
	/* report destinations (a pair's URI, tlsrpt_dest_claim()) per
	 * day, default 2 x max_domains */
	uint32_t	 max_destinations;
};

struct tlsrpt_store;

/* Opens (creating dir 0700 and the file) DIR/tlsrpt.mdb. */
struct tlsrpt_store *tlsrpt_store_open(const char *dir,
	    const struct tlsrpt_limits *, char *err, size_t errsz);
void	tlsrpt_store_close(struct tlsrpt_store *);
/* The last error of a call that returned -1. */
const char *tlsrpt_store_error(const struct tlsrpt_store *);

/* UTC day number of a Unix time (floor(t / 86400)). */
int64_t	tlsrpt_day(int64_t t);

/*
 * Counts one attempt into day: 0 = counted in detail (a failure whose
 * bucket did not fit is still counted in the summary and in
 * detail_overflow), 1 = over the domain, policy or entry bound: counted
 * only in the day's overflow, -1 = error (tlsrpt_store_error()), also for
 * an attempt that is malformed (no domain, unknown type or result).
 * One synchronous write transaction.
 */
int	tlsrpt_record(struct tlsrpt_store *, int64_t day,
	    const struct tlsrpt_attempt *);

struct tlsrpt_counts {
	uint64_t	 successful;
	uint64_t	 failed;
	uint64_t	 detail_overflow;	/* failures without a bucket */
	uint32_t	 policies;
	uint32_t	 buckets;
};
/* Sums over the domain's policies of the day: 1 found, 0 none, -1. */
int	tlsrpt_counts(struct tlsrpt_store *, int64_t day, const char *domain,
	    struct tlsrpt_counts *);

struct tlsrpt_day_stats {
	uint32_t	 domains;		/* domains stored for the day */
	uint64_t	 overflow_sessions;	/* attempts over a bound */
	uint32_t	 destinations;		/* tlsrpt_dest_claim()ed */
	uint32_t	 destinations_refused;	/* over max_destinations */
};
int	tlsrpt_day_stats(struct tlsrpt_store *, int64_t day,
	    struct tlsrpt_day_stats *);

struct tlsrpt_due {
	int64_t		 day;
	char		 domain[254];
};
/*
 * The (day, domain) pairs with counts, of days before today, not yet
 * marked sent, oldest day first: up to max into out, *n set.  Returns
 * the number of pairs due in all (may exceed max), or -1.
 */
long	tlsrpt_due_list(struct tlsrpt_store *, int64_t today,
	    struct tlsrpt_due *out, size_t max, size_t *n);
/* The domains with counts on day, sent or not, in key order: up to max
 * into out, *n set.  Returns how many there are (may exceed max), -1. */
long	tlsrpt_day_domains(struct tlsrpt_store *, int64_t day,
	    char (*out)[254], size_t max, size_t *n);
/* Marks (day, domain) sent at when, on disk before it returns 0 (-1
 * error).  The same as one tlsrpt_mark_batch() with sync. */
int	tlsrpt_mark_sent(struct tlsrpt_store *, int64_t day,
	    const char *domain, int64_t when);
/* One value of the sent database: a pair's sent mark, or any other name
 * that is a host name (tlsproxy/report.c keeps its delivery state under
 * names in .invalid, which no policy domain can have). */
struct tlsrpt_mark {
	const char	*domain;
	int64_t		 when;
};
/*
 * Writes n values of day in one write transaction, all or none: 0, or -1
 * (tlsrpt_store_error()).  With sync they are on disk before it returns 0,
 * as tlsrpt_mark_sent()'s; without, they reach the OS at once and the disk
 * with the next flush (a synced write, tlsrpt_store_sync(), the recorder's
 * once-a-second flush, closing): a crash of the process loses nothing, a
 * crash of the OS before that flush may lose them.
 */
int	tlsrpt_mark_batch(struct tlsrpt_store *, int64_t day,
	    const struct tlsrpt_mark *, size_t n, int sync);
/*
 * A report destination of day (one URI of one pair, before the first
 * delivery state of that URI is written: tlsproxy/report.c): 1 counted,
 * 0 refused, the day has max_destinations already (the refusal counted;
 * the first of the day logged, event=tlsrpt-day-full), -1 error.  So the
 * deliveries of a day, and their state in the "sent" database, are
 * bounded whatever the _smtp._tls records publish (a wildcard record
 * makes every subdomain a policy domain).
 */
int	tlsrpt_dest_claim(struct tlsrpt_store *, int64_t day);
/*
 * The report run's lock, DIR/tlsrpt.run.lock (flock()): one run at a time
 * over a store, whichever process runs it (the daemon's, `mxguard report
 * send`), since two would send the same reports.  1 taken (until
 * tlsrpt_run_unlock(), closing, or the end of the process), 0 held by
 * another run (this handle's or another process's), -1 error.
 */
int	tlsrpt_run_lock(struct tlsrpt_store *);
void	tlsrpt_run_unlock(struct tlsrpt_store *);
/* Flushes the commits of this handle that are not on disk yet: 0, -1. */
int	tlsrpt_store_sync(struct tlsrpt_store *);
/* 1 sent (when filled if not NULL), 0 not, -1 error. */
int	tlsrpt_is_sent(struct tlsrpt_store *, int64_t day, const char *domain,
	    int64_t *when);
/* Deletes everything of days before today - retention_days.  Returns
 * the number of records deleted, or -1. */
long	tlsrpt_prune(struct tlsrpt_store *, int64_t today, int retention_days);

/* ---- the report (tlsrpt_report.c) ---- */

/*
 * The RFC 8460 section 4 JSON of domain's day: 1 built (*json, free()),
 * 0 nothing recorded for that pair, -1 error (tlsrpt_store_error()).
 * contact is the "contact-info" value (an address or URI).
 */
int	tlsrpt_report_build(struct tlsrpt_store *, const char *domain,
	    int64_t day, const char *org_name, const char *contact,
	    const char *report_id, char **json);
/* gzip (RFC 1952) of in: 0 (*out, free()) or -1. */
int	tlsrpt_gzip(const void *in, size_t len, unsigned char **out,
	    size_t *outlen);
/*
 * Section 5.1: sender!policy-domain!begin!end[!unique-id].json.gz, begin
 * and end the first and last second of day.  unique_id may be NULL;
 * otherwise letters and digits only.  0, or -1 (bad name, no room).
 */
int	tlsrpt_filename(const char *sender, const char *policy_domain,
	    int64_t day, const char *unique_id, char *buf, size_t sz);

/* ---- the mailto message (tlsrpt_mail.c) ---- */

struct tlsrpt_dkim_key;

struct tlsrpt_mail {
	const char		*from;		/* addr-spec */
	const char		*to;		/* addr-spec (the rua address) */
	const char		*submitter;	/* our domain */
	const char		*policy_domain;
	const char		*report_id;	/* "<id>" in the Subject */
	const char		*filename;	/* tlsrpt_filename() */
	int64_t			 date;		/* Unix time of Date: */
	const unsigned char	*gz;		/* the gzipped report */
	size_t			 gzlen;
	const char		*dkim_key_file;	/* PEM private key, read
						 * for this message */
	const struct tlsrpt_dkim_key *dkim_key;	/* or: loaded once
						 * (the file is not read) */
	const char		*dkim_selector;
	const char		*dkim_domain;
};

/*
 * The complete message, CRLF line ends, DKIM-Signature first: 0 (*msg,
 * *len; free()) or -1 with err.
 */
int	tlsrpt_mail_build(const struct tlsrpt_mail *, char **msg, size_t *len,
	    char *err, size_t errsz);
/*
 * The DKIM key read from path and checked (a PEM RSA private key), with
 * the signing library set up, once for many messages (struct tlsrpt_mail
 * dkim_key): NULL with err, or a key for tlsrpt_dkim_key_free(), which
 * wipes its bytes before freeing them.
 */
struct tlsrpt_dkim_key *tlsrpt_dkim_key_load(const char *path, char *err,
	    size_t errsz);
void	tlsrpt_dkim_key_free(struct tlsrpt_dkim_key *);

#endif
