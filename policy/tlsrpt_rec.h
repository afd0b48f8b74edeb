/*
 * tlsrpt_rec.h - recording upstream attempts for SMTP TLS Reporting
 * (RFC 8460): the daemon's side of policy/tlsrpt_store.c.
 *
 * The engine (policy.c) owns one recorder while tlsrpt_enable is set and
 * hands it every attempt the sessions report (policy_report_attempt()).
 * The recorder counts an attempt into the store (state_dir/tlsrpt.mdb)
 * only for a policy domain that publishes a valid _smtp._tls TXT record
 * (RFC 8460 section 3, tlsrpt_txt_select()): it looks the record up with
 * the engine's c-ares client and caches the answer for its TTL.  While a
 * lookup runs, the domain's attempts wait (copied, at most
 * TLSRPT_REC_PENDING of them); they are counted, or dropped, with its
 * answer, under the UTC day they happened on.
 *
 * Who frees what: tlsrpt_rec_new()/tlsrpt_rec_free(); everything an
 * attempt points to is copied before tlsrpt_rec_attempt() returns.
 */
#ifndef MXG_TLSRPT_REC_H
#define MXG_TLSRPT_REC_H

#include <stddef.h>

#include "core/ev.h"
#include "policy/policy.h"

#define TLSRPT_REC_PENDING	32	/* attempts waiting per domain */
/* memory the attempts waiting for their domain's lookup may hold in all
 * (a copy holds the verdict, a DANE one its TLSA RRset twice: up to a few
 * hundred KB); beyond, an attempt is not recorded (counted as error) */
#define TLSRPT_REC_PENDING_BYTES (16UL * 1024 * 1024)
#define TLSRPT_REC_DOMAINS	10000	/* TXT answers cached at most */

struct dns;
struct dns_answer;
struct tlsrpt_policy_record;
struct tlsrpt_rec;
struct tlsrpt_store;

struct tlsrpt_rec *tlsrpt_rec_new(struct ev_loop *, const char *state_dir,
		    char *err, size_t errsz);
void		 tlsrpt_rec_free(struct tlsrpt_rec *);
/* dns: the engine's resolver of the moment (a reload replaces it; the
 * replaced one is freed once no lookup here uses it: tlsrpt_rec_uses()). */
void		 tlsrpt_rec_attempt(struct tlsrpt_rec *, struct dns *,
		    const struct policy_verdict *,
		    const struct policy_attempt *);
/* TXT lookups under way. */
int		 tlsrpt_rec_busy(const struct tlsrpt_rec *);
/* A TXT lookup under way sent to dns. */
int		 tlsrpt_rec_uses(const struct tlsrpt_rec *, const struct dns *);
struct tlsrpt_store *tlsrpt_rec_store(struct tlsrpt_rec *);

/* tlsrpt_txt_select() over a whole _smtp._tls TXT answer, the records
 * past the DNS_MAX_RR an answer keeps included (RFC 8460 section 3: a
 * second TLSRPT record past the 64th means no reports, a lone one there
 * means reports); for the recorder and the report run alike.  -2 when a
 * record past the kept cannot be read (out of memory, malformed): the
 * lookup failed, neither "no record" nor the kept part's verdict. */
int		 tlsrpt_txt_select_answer(const struct dns_answer *a,
		    struct tlsrpt_policy_record *r, char *err, size_t errsz);

/* The receiving MX's HELO name from its greeting ("220 mx.example ESMTP
 * ..."): the first word after the code, if it is a host name; else "". */
void		 tlsrpt_greeting_name(const char *greeting, char *out,
		    size_t outsz);

#endif
