/*
 * http.c - HTTPS GET for MTA-STS policies, and POST for TLSRPT reports
 * (see http.h).  One client: the same DNS, WebPKI check with SNI and
 * host name (DNS-IDs only), SO_MARK and overall timeout for both methods.
 *
 * A GET tries the addresses of the host staggered, as RFC 8305 (Happy
 * Eyeballs) does connections (start_next()): the first at once, the next
 * when an attempt fails (refused or cut, a certificate that does not
 * verify, a bad response) or a quarter of the fetch's time after the
 * last start, the earlier attempts left open; up to GET_TRIES_MAX at
 * once; the first whole, valid response wins and the others are closed.
 * A POST (TLSRPT) tries them one at a time, never two at once, so that a
 * report goes out once: one that refuses or cuts the connection, does
 * not finish the TLS handshake within a quarter of the time, or presents
 * a certificate that does not verify gives way to the next.
 *
 * Both start without waiting for both DNS answers (RFC 8305 section 3,
 * dns_done()): at once when the AAAA answer is in, RESOLUTION_DELAY_MS
 * after a first A answer; the other family's addresses join those still
 * to try when they come.
 *
 * The response parser re-parses the whole buffer each time bytes arrive:
 * the buffer is bounded (headers + a 64 KiB body), so that is cheap, and
 * it keeps the parser a pure function that is easy to test and fuzz.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "core/clock.h"
#include "core/ctstat.h"
#include "core/io.h"
#include "core/log.h"
#include "core/netaddr.h"
#include "policy/dns.h"
#include "policy/http.h"
#include "policy/sts.h"
#include "policy/verdict.h"

#define ERR(...) do { snprintf(r->err, sizeof(r->err), __VA_ARGS__); \
	return HTTP_ERR; } while (0)

void
http_resp_clear(struct http_resp *r)
{
	free(r->body);
	r->body = NULL;
	r->bodylen = 0;
}

/* Finds the next line in [p, end): returns its end (before CR LF / LF)
 * and sets *next after the terminator; NULL if no LF yet. */
static const char *
line_end(const char *p, const char *end, const char **next)
{
	const char *lf = memchr(p, '\n', (size_t)(end - p));

	if (lf == NULL)
		return NULL;
	*next = lf + 1;
	if (lf > p && lf[-1] == '\r')
		return lf - 1;
	return lf;
}

static int
ieq(const char *a, size_t alen, const char *b)
{
	return alen == strlen(b) && strncasecmp(a, b, alen) == 0;
}

static void
trim(const char **s, const char **e)
{
	while (*s < *e && (**s == ' ' || **s == '\t'))
		(*s)++;
	while (*e > *s && ((*e)[-1] == ' ' || (*e)[-1] == '\t'))
		(*e)--;
}

/* The status line at p (before le): its code, or -1 when malformed. */
static int
status_code(const char *p, const char *le)
{
	if (le - p < 12 || memcmp(p, "HTTP/1.", 7) != 0 ||
	    (p[7] != '0' && p[7] != '1') || p[8] != ' ' ||
	    p[9] < '1' || p[9] > '5' || p[10] < '0' || p[10] > '9' ||
	    p[11] < '0' || p[11] > '9' || (le - p > 12 && p[12] != ' '))
		return -1;
	return (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
}

#define HTTP_INTERIM_MAX 8

/*
 * A Content-Type value says text/plain: each of its comma-separated
 * elements is text/plain with or without parameters.  Several elements
 * are what a proxy or Apache's mod_headers ("Header append") makes of
 * two Content-Type lines, which are taken as two lines (below); refused,
 * such a domain's enforce policy was no policy here.  A comma inside a
 * quoted parameter value separates nothing; empty elements are skipped
 * (RFC 9110 section 5.6.1), but one element at least must be there.
 */
static int
ctype_text_plain(const char *vs, const char *ve)
{
	const char *p = vs, *es, *te;
	int quoted, n = 0;

	while (p <= ve) {
		es = p;
		te = NULL;
		for (quoted = 0; p < ve && (quoted || *p != ','); p++) {
			if (quoted && *p == '\\' && p + 1 < ve)
				p++;
			else if (*p == '"')
				quoted = !quoted;
			else if (!quoted && *p == ';' && te == NULL)
				te = p;
		}
		if (quoted)
			return 0;	/* an unterminated quoted string */
		if (te == NULL)
			te = p;
		{
			const char *ts = es, *ee = p;

			trim(&ts, &ee);
			if (ts != ee) {
				trim(&ts, &te);
				if (!ieq(ts, (size_t)(te - ts), "text/plain"))
					return 0;
				n++;
			}
		}
		p++;	/* over the comma, or past ve */
	}
	return n > 0;
}

/*
 * Steps over interim responses (100 Continue, 103 Early Hints: a 1xx
 * status line and headers up to an empty line, RFC 9110 section 15.2),
 * which a client must accept before the final response; 101 (Switching
 * Protocols) is final, and no upgrade was asked for.  HTTP_DONE with
 * *final at the final response's status line, HTTP_MORE, or HTTP_ERR
 * with *why: malformed, more than HTTP_INTERIM_MAX of them, or more than
 * HTTP_HDR_MAX bytes before the final status line.
 */
static enum http_result
skip_interim(const char *buf, size_t len, const char **final,
    const char **why)
{
	const char *p = buf, *end = buf + len, *le, *next;
	int n, code;

	*why = "malformed status line";
	for (n = 0;; n++) {
		if ((le = line_end(p, end, &next)) == NULL)
			goto more;
		if ((code = status_code(p, le)) == -1)
			return HTTP_ERR;
		if (code / 100 != 1 || code == 101) {
			*final = p;
			return HTTP_DONE;
		}
		if (n == HTTP_INTERIM_MAX) {
			*why = "too many interim (1xx) responses";
			return HTTP_ERR;
		}
		/* its headers, up to the empty line */
		do {
			p = next;
			if ((le = line_end(p, end, &next)) == NULL)
				goto more;
		} while (le != p);
		p = next;
	}
more:
	if (len > HTTP_HDR_MAX) {
		*why = "status line too long";
		return HTTP_ERR;
	}
	return HTTP_MORE;
}

enum http_result
http_parse_response(const char *buf, size_t len, int eof, size_t maxbody,
    struct http_resp *r)
{
	const char *p = buf, *end = buf + len, *le, *next;
	const char *why;
	long long clen = -1;
	int chunked = 0, have_type = 0, code;

	r->body = NULL;
	r->bodylen = 0;
	r->err[0] = '\0';
	r->status = 0;
	r->nomem = 0;
	/* status line, after any interim responses */
	switch (skip_interim(buf, len, &p, &why)) {
	case HTTP_ERR:
		ERR("%s", why);
	case HTTP_MORE:
		if (eof)
			ERR("truncated response (no status line)");
		return HTTP_MORE;
	case HTTP_DONE:
		break;
	}
	if ((le = line_end(p, end, &next)) == NULL)	/* (skip_interim) */
		ERR("malformed status line");
	code = status_code(p, le);
	r->status = code;
	if (code >= 300 && code < 400)
		ERR("status %d: redirects are not followed", code);
	if (code != 200)
		ERR("status %d", code);
	p = next;
	/* headers */
	for (;;) {
		const char *colon, *vs, *ve;

		if ((le = line_end(p, end, &next)) == NULL) {
			if (len > HTTP_HDR_MAX)
				ERR("headers too long");
			if (eof)
				ERR("truncated response (in headers)");
			return HTTP_MORE;
		}
		if ((size_t)(next - buf) > HTTP_HDR_MAX)
			ERR("headers too long");
		if (le == p) {
			p = next;
			break;
		}
		if (*p == ' ' || *p == '\t')
			ERR("obsolete header folding");
		if ((colon = memchr(p, ':', (size_t)(le - p))) == NULL ||
		    colon == p)
			ERR("malformed header line");
		for (const char *q = p; q < colon; q++)
			if (*q <= ' ' || *q >= 0x7f)
				ERR("malformed header name");
		vs = colon + 1;
		ve = le;
		trim(&vs, &ve);
		if (ieq(p, (size_t)(colon - p), "content-length")) {
			long long v = 0;

			if (vs == ve || ve - vs > 12)
				ERR("bad Content-Length");
			for (const char *q = vs; q < ve; q++) {
				if (*q < '0' || *q > '9')
					ERR("bad Content-Length");
				v = v * 10 + (*q - '0');
			}
			if (clen != -1 && clen != v)
				ERR("conflicting Content-Length headers");
			clen = v;
		} else if (ieq(p, (size_t)(colon - p), "transfer-encoding")) {
			if (!ieq(vs, (size_t)(ve - vs), "chunked"))
				ERR("unsupported Transfer-Encoding");
			chunked = 1;
		} else if (ieq(p, (size_t)(colon - p), "content-type")) {
			/*
			 * Every Content-Type line must say text/plain, and
			 * then there may be several: nginx with "add_header
			 * Content-Type text/plain;" beside the type it gives
			 * a .txt file sends two, the same.  Refused as a
			 * repeat, such a domain's policy was no policy here
			 * (opportunistic TLS where it published enforce),
			 * while senders that read the first line enforced
			 * it.  One of another type is refused: which one the
			 * host meant nobody knows.  The same holds for the
			 * elements of one line (ctype_text_plain()).
			 */
			have_type = 1;
			if (!ctype_text_plain(vs, ve))
				ERR("Content-Type is not text/plain");
		}
		p = next;
	}
	if (!have_type)
		ERR("no Content-Type");
	if (chunked && clen != -1)
		ERR("both Content-Length and chunked encoding");
	if (!chunked && clen == -1) {
		/* the body ends where the connection does (RFC 9112
		 * section 6.3, some policy hosts answer so to our
		 * "Connection: close"): over TLS eof is the server's
		 * close_notify, since core/io.c reports a close without one
		 * as an error, so a connection cut on the path is no end */
		if ((size_t)(end - p) > maxbody)
			ERR("body exceeds the %zu byte limit", maxbody);
		if (!eof)
			return HTTP_MORE;
		clen = (long long)(end - p);
	}
	if (!chunked) {
		if ((unsigned long long)clen > maxbody)
			ERR("body of %lld bytes exceeds the %zu byte limit",
			    clen, maxbody);
		if ((size_t)(end - p) < (size_t)clen) {
			if (eof)
				ERR("truncated body (%zu of %lld bytes)",
				    (size_t)(end - p), clen);
			return HTTP_MORE;
		}
		if ((r->body = malloc((size_t)clen + 1)) == NULL) {
			r->nomem = 1;
			ERR("out of memory");
		}
		memcpy(r->body, p, (size_t)clen);
		r->body[clen] = '\0';
		r->bodylen = (size_t)clen;
		return HTTP_DONE;
	}
	/* chunked: first pass checks and measures, second copies */
	{
		const char *cp = p;
		size_t total = 0, o = 0;
		int pass;

		for (pass = 0; pass < 2; pass++) {
			cp = p;
			total = 0;
			for (;;) {
				unsigned long sz = 0;
				int nd = 0;
				const char *q;

				if ((le = line_end(cp, end, &next)) == NULL) {
					if (end - cp > 1024)
						ERR("chunk size line too long");
					goto more;
				}
				for (q = cp; q < le; q++) {
					int c = *q, d;

					if (c >= '0' && c <= '9')
						d = c - '0';
					else if (c >= 'a' && c <= 'f')
						d = c - 'a' + 10;
					else if (c >= 'A' && c <= 'F')
						d = c - 'A' + 10;
					else
						break;
					if (++nd > 8)
						ERR("chunk size too long");
					sz = sz * 16 + (unsigned long)d;
				}
				if (nd == 0 || (q < le && *q != ';' &&
				    *q != ' ' && *q != '\t'))
					ERR("malformed chunk size");
				cp = next;
				if (sz == 0) {
					/* trailers up to an empty line */
					for (;;) {
						int empty;

						if ((le = line_end(cp, end,
						    &next)) == NULL) {
							if (end - cp > 4096)
								ERR("trailers too "
								    "long");
							goto more;
						}
						empty = le == cp;
						cp = next;
						if (empty)
							break;
					}
					break;
				}
				if (total + sz > maxbody)
					ERR("chunked body exceeds the %zu byte "
					    "limit", maxbody);
				if ((size_t)(end - cp) < sz + 1)
					goto more;
				if (pass == 1) {
					memcpy(r->body + o, cp, sz);
					o += sz;
				}
				total += sz;
				cp += sz;
				if (*cp == '\n')
					cp++;
				else if (*cp == '\r') {
					if (end - cp < 2)
						goto more;
					if (cp[1] != '\n')
						ERR("chunk not followed by "
						    "CRLF");
					cp += 2;
				} else
					ERR("chunk not followed by CRLF");
			}
			if (pass == 0 &&
			    (r->body = malloc(total + 1)) == NULL) {
				r->nomem = 1;
				ERR("out of memory");
			}
		}
		r->body[o] = '\0';
		r->bodylen = o;
		return HTTP_DONE;
more:
		free(r->body);
		r->body = NULL;
		if (eof)
			ERR("truncated chunked body");
		return HTTP_MORE;
	}
}

enum http_result
http_status_line(const char *buf, size_t len, int *code)
{
	const char *p, *le, *next, *why;
	enum http_result hr;

	if ((hr = skip_interim(buf, len, &p, &why)) != HTTP_DONE)
		return hr;
	if ((le = line_end(p, buf + len, &next)) == NULL)
		return HTTP_ERR;
	*code = status_code(p, le);
	return HTTP_DONE;
}

/* ---- the client ---- */

#define MAX_ADDRS 8
/*
 * A GET's attempts open at once, at most.  They start staggered
 * (start_next()): the next address try_ms (a quarter of the fetch's time)
 * after the last start, or at once when an attempt fails, so the stagger
 * alone opens at most four before the deadline; the bound holds however
 * quickly addresses fail, and caps the fetch's sockets and buffers.
 */
#define GET_TRIES_MAX HTTP_GET_TRIES_MAX
/*
 * How long an A answer that came first waits for the AAAA answer before
 * the attempts start with its addresses alone: RFC 8305 section 3's
 * recommended Resolution Delay, so that IPv6 still goes first when its
 * answer is merely a little later.  Waiting for both answers, as before,
 * let whoever delays one of them (an attacker on an unsigned zone's
 * path, a resolver that drops AAAA queries) spend up to the DNS timeout
 * of the fetch's time before any connection.
 */
#define RESOLUTION_DELAY_MS 50

/* One address's attempt: its connection, TLS and response so far. */
struct http_try {
	struct http_req	*h;
	char		 addr[64];	/* its address, for messages */
	struct io	*io;
	int		 tls_up;
	int		 cut;		/* POST: a handshake deadline set */
	char		*buf;
	size_t		 len, cap;
	size_t		 parsed_len;	/* GET: len at the last parse */
	struct ev_timer	*parse_tmr;	/* GET: a parse put off */
	int		 nlate;		/* GET: put-off parses so far */
};

struct http_req {
	struct ev_loop	*loop;
	struct dns	*dns;
	SSL_CTX		*ctx;
	char		 host[256];
	char		 path[1100];
	uint16_t	 port;
	const char	*ctype;		/* POST: Content-Type */
	unsigned char	*post;		/* POST: the body (a copy); NULL: GET */
	int		 any_address;	/* POST: non-global addresses too */
	size_t		 postlen;
	size_t		 maxbody;
	uint64_t	 timeout_ms;	/* the whole fetch */
	uint64_t	 try_ms;	/* GET: the stagger; POST: one address's
					 * connect and handshake, while others
					 * remain */
	uint32_t	 mark;
	http_cb		*cb;
	void		*arg;
	struct ev_timer	*timer;
	struct ev_timer	*stagger;	/* GET: the next address's start */
	struct ev_timer	*resdelay;	/* the A answer's wait for AAAA */
	struct dns_req	*q4, *q6;
	int		 pending_dns;
	int		 started;	/* attempts may start (dns_done()) */
	struct sockaddr_storage addrs[2 * MAX_ADDRS];	/* MAX_ADDRS per
					 * family in a DNS answer, MAX_ADDRS
					 * to try after addrs_interleave() */
	int		 naddrs, next;
	int		 nrefused;	/* POST: addresses netaddr refused */
	int		 dnsfail;	/* a query got no answer (SERVFAIL,
					 * timeout): it might have named an
					 * address that is not refused */
	unsigned	 dns_local0;	/* dns_local_failures() at the
					 * queries' start */
	uint64_t	 ct_drops0;	/* ctstat_drops() at the start */
	int		 nreached;	/* attempts whose TLS handshake
					 * completed: packets both ways */
	struct http_try	*tries[GET_TRIES_MAX];	/* open; a POST's in [0] */
	int		 ntries;
	char		 lasterr[400];
	char		 localerr[400];	/* an address not tried for want of
					 * descriptors, ports or memory */
	char		 certerr[400];	/* an address's certificate did not
					 * verify: the reason if none serves */
	char		 hosterr[400];	/* GET: what a verified host answered
					 * instead of a policy: the reason if
					 * none serves */
};

static void
try_free(struct http_try *t)
{
	if (t == NULL)
		return;
	if (t->io != NULL)
		io_free(t->io);
	ev_timer_free(t->parse_tmr);
	free(t->buf);
	free(t);
}

/* Everything, the attempts still open included: their sockets closed,
 * their timers gone, so none of them calls back. */
static void
req_free(struct http_req *h)
{
	int i;

	dns_cancel(h->q4);
	dns_cancel(h->q6);
	for (i = 0; i < GET_TRIES_MAX; i++)
		try_free(h->tries[i]);
	ev_timer_free(h->timer);
	ev_timer_free(h->stagger);
	ev_timer_free(h->resdelay);
	free(h->post);
	free(h);
}

/*
 * Every address of the host answered (its TLS handshake completed) and
 * every DNS answer came in: the table's drops cannot have changed the
 * fetch's outcome.  A flow with an entry is not dropped for a full table,
 * and one that finished its handshake has an assured entry, which is
 * never evicted; what such a host then said (a status, a certificate, a
 * stall) is its own.  Without this, any drop elsewhere in the namespace
 * meanwhile (a busy gateway's table at its limit, a clash) made a host's
 * authenticated 404 or bad certificate a local error, deferring with
 * nothing cached for as long as such drops go on.  An address not
 * reached (a SYN unanswered: perhaps dropped here) keeps the drops'
 * verdict, as does a query that got no answer.
 */
static int
all_reached(const struct http_req *h)
{
	return h->pending_dns == 0 && !h->dnsfail && h->next >= h->naddrs &&
	    h->nreached >= h->naddrs;
}

/* The fetch's one result: h is freed (every attempt with it) before the
 * callback, which may start another fetch. */
static void
finish(struct http_req *h, int ok, const char *body, size_t len,
    const char *kind, const char *err)
{
	http_cb *cb = h->cb;
	void *arg = h->arg;

	h->cb = NULL;
	if (ok == 0) {
		char *copy = malloc(len + 1);

		/* (the host served: no memory here is no failure of its) */
		if (copy == NULL) {
			req_free(h);
			cb(arg, -1, NULL, 0, HTTP_LOCAL_ERROR, "out of memory");
			return;
		}
		memcpy(copy, body, len);
		copy[len] = '\0';
		req_free(h);
		cb(arg, 0, copy, len, NULL, NULL);
		free(copy);
		return;
	}
	{
		char e[450];
		uint64_t drops;

		snprintf(e, sizeof(e), "%s", err);
		/* conntrack dropped packets here meanwhile (its table full):
		 * a SYN of ours may have been one, which looks like an
		 * address that never answers, and a DNS query too.  Whatever
		 * the addresses said, one might have served (as fail_all()
		 * says of localerr).  Nobody on the path moves the counter.
		 * Not when every address answered (all_reached()), nor for
		 * a refusal of the destinations, which is no network's
		 * doing */
		if (strcmp(kind, HTTP_LOCAL_ERROR) != 0 &&
		    strcmp(kind, HTTP_DESTINATION_REFUSED) != 0 &&
		    !all_reached(h) &&
		    (drops = ctstat_drops()) != h->ct_drops0) {
			snprintf(e, sizeof(e), "conntrack table full: %llu "
			    "packets dropped during the fetch; %s",
			    (unsigned long long)(drops - h->ct_drops0), err);
			kind = HTTP_LOCAL_ERROR;
		}
		req_free(h);
		cb(arg, -1, NULL, 0, kind, e);
	}
}

/*
 * No address served and none is left: the fetch fails with the most
 * telling reason.  What a verified host answered first (a status, a bad
 * response), else a certificate that did not verify (sts-webpki-invalid,
 * TLSRPT's result type), else the last connection error; at the
 * deadline (timeout: what the attempts open were doing) that comes first
 * when neither of the others is there.
 */
static void
fail_all(struct http_req *h, const char *timeout)
{
	const char *kind = "sts-policy-fetch-error", *why = NULL;
	char e[450];

	if (h->localerr[0]) {
		/* an address this host could not try: whatever the others
		 * said, it might have served */
		kind = HTTP_LOCAL_ERROR;
		why = h->localerr;
	} else if (h->hosterr[0])
		why = h->hosterr;
	else if (h->certerr[0]) {
		kind = "sts-webpki-invalid";
		why = h->certerr;
	} else if (h->naddrs == 0 && h->nrefused > 0 && h->pending_dns == 0 &&
	    !h->dnsfail)
		/* every address refused, all answers in: final for the
		 * caller (tlsproxy/report.c).  Not at the deadline with a
		 * query still out, nor after a query that failed (its
		 * resolver's timeout, a SERVFAIL): its answer might have
		 * named one that is not refused, so that is an error to be
		 * retried.  An NXDOMAIN or NODATA is an answer */
		kind = HTTP_DESTINATION_REFUSED;
	if (timeout == NULL)
		snprintf(e, sizeof(e), "%s", why != NULL ? why :
		    h->lasterr[0] ? h->lasterr : "no address");
	else if (why != NULL)
		snprintf(e, sizeof(e), "%s; then %s", why, timeout);
	else if (h->lasterr[0])
		snprintf(e, sizeof(e), "%s; before: %s", timeout, h->lasterr);
	else
		snprintf(e, sizeof(e), "%s", timeout);
	finish(h, -1, NULL, 0, kind, e);
}

static void start_next(struct http_req *);

/* An attempt that failed (t->h->lasterr, certerr or hosterr says why):
 * closed and forgotten; the next address starts at once, or the fetch
 * fails when none is left or open.  The other attempts go on. */
static void
try_end(struct http_try *t)
{
	struct http_req *h = t->h;
	int i;

	for (i = 0; i < GET_TRIES_MAX; i++)
		if (h->tries[i] == t) {
			h->tries[i] = NULL;
			h->ntries--;
		}
	try_free(t);
	start_next(h);
}

/* Whether x has a subjectAltName dNSName: without one, the host name
 * check fails whatever its subject CN says (see io_event()). */
static int
has_dns_san(X509 *x)
{
	GENERAL_NAMES *gens;
	int i, found = 0;

	if (x == NULL || (gens = X509_get_ext_d2i(x, NID_subject_alt_name,
	    NULL, NULL)) == NULL)
		return 0;
	for (i = 0; i < sk_GENERAL_NAME_num(gens) && !found; i++)
		found = sk_GENERAL_NAME_value(gens, i)->type == GEN_DNS;
	GENERAL_NAMES_free(gens);
	return found;
}

/*
 * The peer's chain as the fetch judges it once the handshake is up.  The
 * handshake verified it at the time io_event() set when the connection
 * came up (IO_CONNECTED); a GET's handshake has no deadline of its own,
 * only the fetch's (sts_fetch_timeout), so the server, or an attacker on
 * the path who holds the host's flight, can make that time lie well
 * before the end of the handshake.  A chain whose earliest notAfter is no
 * longer after clock_now() is verified afresh, now, as policy_tls_check()
 * does for an MX (verdict.c verify_peer()): with the SSL's own parameters
 * (host, host flags, purpose, security level), at clock_now().  Before,
 * the handshake's X509_V_OK stood, and a policy was taken from a host
 * whose certificate had expired at the check.
 */
static long
peer_verify_now(SSL *ssl)
{
	X509 *peer = SSL_get0_peer_certificate(ssl);
	X509_STORE_CTX *xc;
	X509_VERIFY_PARAM *param;
	long vr = SSL_get_verify_result(ssl);

	if (peer == NULL)
		return X509_V_ERR_UNSPECIFIED;
	if (vr != X509_V_OK || clock_now() <
	    policy_chain_not_after(SSL_get0_verified_chain(ssl)))
		return vr;
	if ((xc = X509_STORE_CTX_new()) == NULL)
		return X509_V_ERR_OUT_OF_MEM;
	if (!X509_STORE_CTX_init(xc, SSL_CTX_get_cert_store(
	    SSL_get_SSL_CTX(ssl)), peer, SSL_get_peer_cert_chain(ssl)) ||
	    !X509_STORE_CTX_set_default(xc, "ssl_server")) {
		vr = X509_V_ERR_UNSPECIFIED;
		goto done;
	}
	param = X509_STORE_CTX_get0_param(xc);
	X509_VERIFY_PARAM_set_auth_level(param, SSL_get_security_level(ssl));
	if (!X509_VERIFY_PARAM_set1(param, SSL_get0_param(ssl))) {
		vr = X509_V_ERR_OUT_OF_MEM;
		goto done;
	}
	X509_VERIFY_PARAM_set_time(param, (time_t)clock_now());
	if (X509_verify_cert(xc) == 1)
		vr = X509_V_OK;
	else if ((vr = X509_STORE_CTX_get_error(xc)) == X509_V_OK)
		vr = X509_V_ERR_UNSPECIFIED;
done:
	X509_STORE_CTX_free(xc);
	ERR_clear_error();
	return vr;
}

#define PARSE_LATER_MS	20
/* The put-off parses of one attempt wait PARSE_LATER_MS, then twice as
 * long each time, up to PARSE_LATER_MS << PARSE_LATER_SHIFT_MAX (5.12 s):
 * see parse_later_ms(). */
#define PARSE_LATER_SHIFT_MAX 8

/* Parse now (1), or put it off (0)?  See io_event(). */
static int
parse_due(size_t parsed_len, size_t len, int eof)
{
	return eof || parsed_len == 0 || len - parsed_len >= parsed_len / 4;
}

/* A GET's response at one address as received so far: the fetch's
 * result when it is whole (the other attempts cancelled with it), the
 * attempt's end when it is wrong, nothing while more is needed (eof: the
 * server closed). */
static void
parse_get(struct http_try *t, int eof)
{
	struct http_req *h = t->h;
	struct http_resp resp;
	enum http_result hr;

	ev_timer_stop(t->parse_tmr);
	t->parsed_len = t->len;
	memset(&resp, 0, sizeof(resp));
	hr = http_parse_response(t->buf ? t->buf : "", t->len, eof,
	    h->maxbody, &resp);
	if (hr == HTTP_MORE)
		return;
	if (hr == HTTP_ERR && resp.nomem) {
		/* no memory here for what the host sent: this address might
		 * have served (fail_all()) */
		snprintf(h->localerr, sizeof(h->localerr), "%s: %s", t->addr,
		    resp.err);
		try_end(t);
		return;
	}
	if (hr == HTTP_ERR) {
		/* the host's own answer, inside verified TLS: the fetch's
		 * reason if no address serves.  Another address may still
		 * serve the policy (a host mid-rollout, or one attempt of
		 * several racing): for MTA-STS a failed fetch only ever means
		 * no policy, so it is not given up here, and which of two
		 * racing attempts answers first must not decide the fetch */
		if (!h->hosterr[0])
			snprintf(h->hosterr, sizeof(h->hosterr), "%s (%s)",
			    resp.err, t->addr);
		try_end(t);
		return;
	}
	{
		char *b = resp.body;
		size_t bl = resp.bodylen;

		resp.body = NULL;
		finish(h, 0, b, bl, NULL, NULL);
		free(b);
	}
}

/*
 * The connection failed (a cut without close_notify, a reset) after the
 * GET's response began, or the fetch's deadline came: 1 and the callback
 * if what came is whole by its framing (Content-Length, chunked),
 * whatever ended the connection after it.  Its last bytes may be there
 * unparsed: parse_due() puts off a parse of a small last piece (a
 * chunked body's "0" chunk), and servers that answer "Connection: close"
 * often end without close_notify at once.  A body framed by the end of
 * the connection alone is not whole here (eof 0): a cut is no end, as in
 * parse_get().
 */
static int
get_whole(struct http_try *t)
{
	struct http_resp resp;
	char *b;

	ev_timer_stop(t->parse_tmr);
	memset(&resp, 0, sizeof(resp));
	if (http_parse_response(t->buf ? t->buf : "", t->len, 0,
	    t->h->maxbody, &resp) != HTTP_DONE) {
		/* (whole, but no memory here to copy it: not the cut's
		 * doing, fail_all()) */
		if (resp.nomem)
			snprintf(t->h->localerr, sizeof(t->h->localerr),
			    "%s: %s", t->addr, resp.err);
		http_resp_clear(&resp);
		return 0;
	}
	b = resp.body;
	finish(t->h, 0, b, resp.bodylen, NULL, NULL);
	free(b);
	return 1;
}

/*
 * How long the attempt's next put-off parse waits.  Each reads the whole
 * response again, and a host that sends its next byte as soon as the
 * last one was parsed got one every PARSE_LATER_MS: with a response of
 * 150 KiB (the receive bound) that is 1,500 parses of it in a 30 s
 * fetch, 0.6 s of the event loop per attempt and four attempts a fetch,
 * for a byte every 20 ms.  Doubling, there are about a dozen in the same
 * time, whatever the host sends; a host that serves its policy whole
 * sends the last piece once, and waits at most as long again as its
 * response took so far (the fetch's deadline takes a whole response at
 * once: get_whole()).
 */
static uint64_t
parse_later_ms(const struct http_try *t)
{
	return (uint64_t)PARSE_LATER_MS << (t->nlate < PARSE_LATER_SHIFT_MAX ?
	    t->nlate : PARSE_LATER_SHIFT_MAX);
}

static void
parse_later(void *arg)
{
	struct http_try *t = arg;

	/* (parse_get() may free t) */
	if (t->nlate < PARSE_LATER_SHIFT_MAX)
		t->nlate++;
	parse_get(t, 0);
}

static void
io_event(struct io *io, enum io_event ev, void *arg)
{
	struct http_try *t = arg;
	struct http_req *h = t->h;
	enum http_result hr;
	SSL *ssl;
	long vr;

	switch (ev) {
	case IO_CONNECTED:
		if ((ssl = SSL_new(h->ctx)) == NULL ||
		    !SSL_set_tlsext_host_name(ssl, h->host) ||
		    !SSL_set1_host(ssl, h->host)) {
			SSL_free(ssl);
			finish(h, -1, NULL, 0, HTTP_LOCAL_ERROR,
			    "TLS setup failed");
			return;
		}
		/* DNS-IDs only, as for the MX under MTA-STS: RFC 8461 section
		 * 3.3 wants the policy host's certificate valid for it per RFC
		 * 6125, whose successor RFC 9525 drops the subject CN */
		SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS |
		    X509_CHECK_FLAG_NEVER_CHECK_SUBJECT);
		SSL_set_verify(ssl, SSL_VERIFY_NONE, NULL);
		/* the certificate is checked once, after the handshake
		 * (peer_verify_now()): a TLS 1.2 renegotiation would bring
		 * one that check never sees, whatever ctx the caller made */
		SSL_set_options(ssl, SSL_OP_NO_RENEGOTIATION);
		/* validity on the policy clock (core/clock.h) */
		X509_VERIFY_PARAM_set_time(SSL_get0_param(ssl),
		    (time_t)clock_now());
		if (io_start_tls(io, ssl, 0) == -1) {
			finish(h, -1, NULL, 0, "sts-policy-fetch-error",
			    "TLS start failed");
			return;
		}
		return;
	case IO_TLSREADY:
		h->nreached++;
		ssl = io_ssl(io);
		vr = peer_verify_now(ssl);
		if (vr != X509_V_OK) {
			char qe[500];

			/* the next address, if any: this answer is not the
			 * host's (nothing it says is authenticated), and
			 * anyone on the path to this one address can give
			 * it, as it can a reset or a hanging handshake, which
			 * move on too.  Ending the fetch here let such an
			 * attacker fail every fetch of a policy the other
			 * addresses serve (for MTA-STS a failed fetch means
			 * no policy, never a stricter one); a policy from
			 * another address is verified there.  The error is
			 * the fetch's reason if no address serves. */
			snprintf(h->certerr, sizeof(h->certerr),
			    "certificate of %s: %s%s", h->host,
			    X509_verify_cert_error_string(vr),
			    vr == X509_V_ERR_HOSTNAME_MISMATCH &&
			    !has_dns_san(SSL_get0_peer_certificate(ssl)) ?
			    " (it has no subjectAltName DNS name; its subject "
			    "CN is not used)" : "");
			log_warn("event=http-certificate-invalid host=%s "
			    "address=%s detail=%s%s", h->host, t->addr,
			    log_q(qe, sizeof(qe), h->certerr),
			    h->next < h->naddrs ? " note=\"the next address "
			    "is tried\"" : "");
			try_end(t);
			return;
		}
		t->tls_up = 1;
		/* a GET's attempt stays open until its response is whole or
		 * the fetch's deadline: the handshake may be one the host did
		 * while what follows is an attacker's on the path to this
		 * address, so the stagger starts other addresses meanwhile
		 * (start_next()).  A POST goes out once, to one address */
		if (h->post != NULL) {
			char hp[270];

			io_set_timeout(io, 0);
			if (h->port != 443)
				snprintf(hp, sizeof(hp), "%s:%u", h->host,
				    h->port);
			else
				snprintf(hp, sizeof(hp), "%s", h->host);
			io_printf(io, "POST %s HTTP/1.1\r\nHost: %s\r\n"
			    "User-Agent: mxguard\r\nContent-Type: %s\r\n"
			    "Content-Length: %zu\r\nConnection: close\r\n"
			    "\r\n", h->path, hp, h->ctype, h->postlen);
			io_write(io, h->post, h->postlen);
			return;
		}
		io_printf(io, "GET %s HTTP/1.1\r\nHost: %s\r\n"
		    "User-Agent: mxguard\r\nAccept: text/plain\r\n"
		    "Connection: close\r\n\r\n", h->path, h->host);
		return;
	case IO_DATAIN:
	case IO_DISCONNECTED:
		if (ev == IO_DATAIN) {
			size_t n = io_datalen(io);
			size_t lim = h->maxbody * 2 + HTTP_HDR_MAX + 4096;

			if (t->len + n > lim) {
				if (h->post != NULL) {
					finish(h, -1, NULL, 0,
					    "sts-policy-fetch-error",
					    "response too large");
					return;
				}
				if (!h->hosterr[0])
					snprintf(h->hosterr,
					    sizeof(h->hosterr), "response too "
					    "large (%s)", t->addr);
				try_end(t);
				return;
			}
			if (t->len + n + 1 > t->cap) {
				size_t nc = (t->len + n + 1) * 2;
				char *nb;

				if (nc > lim + 1)
					nc = lim + 1;
				if ((nb = realloc(t->buf, nc)) == NULL) {
					finish(h, -1, NULL, 0,
					    HTTP_LOCAL_ERROR, "out of memory");
					return;
				}
				t->buf = nb;
				t->cap = nc;
			}
			memcpy(t->buf + t->len, io_data(io), n);
			t->len += n;
			io_drop(io, n);
		} else if (!t->tls_up) {
			snprintf(h->lasterr, sizeof(h->lasterr), "%s: "
			    "connection closed during TLS handshake", t->addr);
			try_end(t);
			return;
		}
		if (h->post != NULL) {
			/* a POST needs only the status: 2xx delivered */
			int code;

			hr = http_status_line(t->buf ? t->buf : "", t->len,
			    &code);
			if (hr == HTTP_MORE && ev == IO_DISCONNECTED)
				hr = HTTP_ERR;
			if (hr == HTTP_MORE)
				return;
			if (hr == HTTP_ERR) {
				finish(h, -1, NULL, 0, "http-error",
				    "malformed or missing status line");
				return;
			}
			if (code / 100 != 2) {
				char e[64];

				snprintf(e, sizeof(e), "status %d", code);
				finish(h, -1, NULL, 0, "http-error", e);
				return;
			}
			finish(h, 0, "", 0, NULL, NULL);
			return;
		}
		/* the parser reads the whole response each time: a policy
		 * host that sends it a byte per TLS record would make that
		 * quadratic (17 s of CPU in a 30 s fetch, measured).  Parse
		 * at once when the response grew by a quarter since the last
		 * parse (geometric) or ended; otherwise later, once, whatever
		 * more comes meanwhile: PARSE_LATER_MS, then twice as long
		 * as the last time (parse_later_ms()), so that a host that
		 * trickles a byte after each parse does not get the whole
		 * response parsed again every PARSE_LATER_MS. */
		if (!parse_due(t->parsed_len, t->len, ev ==
		    IO_DISCONNECTED)) {
			if (!ev_timer_pending(t->parse_tmr))
				ev_timer_arm(t->parse_tmr, parse_later_ms(t));
			return;
		}
		parse_get(t, ev == IO_DISCONNECTED);
		return;
	case IO_TIMEOUT:
		/* a POST's address deadline (try_start()), before its
		 * handshake: the next address.  A GET's attempts have none
		 * (the stagger starts the next beside them, the fetch's
		 * deadline ends them all) */
		if (!t->tls_up) {
			snprintf(h->lasterr, sizeof(h->lasterr), "%s: no TLS "
			    "handshake within %llu ms", t->addr,
			    (unsigned long long)h->try_ms);
			try_end(t);
			return;
		}
		finish(h, -1, NULL, 0, "sts-policy-fetch-error", "timeout");
		return;
	case IO_ERROR:
		snprintf(h->lasterr, sizeof(h->lasterr), "%s: %s", t->addr,
		    io_error(io));
		if (t->tls_up && h->post == NULL && get_whole(t))
			return;
		/* a GET's connection cut (a reset, no close_notify) after
		 * the handshake: nothing the host said ended it, and anyone
		 * on the path to this address can, so the next address, if
		 * any (the fetch ends with this error if none serves); only
		 * an authenticated answer (a status, a close_notify) is the
		 * host's */
		if (t->tls_up && h->post != NULL) {
			finish(h, -1, NULL, 0, "sts-policy-fetch-error",
			    h->lasterr);
			return;
		}
		try_end(t);
		return;
	default:
		return;
	}
}

/* No address is tried any more (a failure that would fail them all):
 * neither those left nor a late DNS answer's. */
static void
no_more(struct http_req *h)
{
	dns_cancel(h->q4);
	dns_cancel(h->q6);
	h->q4 = h->q6 = NULL;
	h->pending_dns = 0;
	h->next = h->naddrs;
}

/* errno of a socket() or connect() that failed for want of this host's
 * own resources (descriptors, memory, local ports), not for anything the
 * address did. */
static int
local_errno(int e)
{
	return e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM ||
	    e == EADDRNOTAVAIL;
}

/*
 * Opens a connection to the next address that takes one: 0, or -1 when
 * none is left (h->lasterr says why the last one failed).
 */
static int
try_start(struct http_req *h)
{
	struct http_try *t;
	int slot;

	for (slot = 0; slot < GET_TRIES_MAX && h->tries[slot] != NULL; slot++)
		;
	if (slot == GET_TRIES_MAX)
		return -1;
	while (h->next < h->naddrs) {
		struct sockaddr_storage *ss = &h->addrs[h->next++];
		socklen_t sl = ss->ss_family == AF_INET ?
		    sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
		char addr[64];
		int fd;

		netaddr_fmt((struct sockaddr *)ss, addr, sizeof(addr));
		fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, 0);
		if (fd == -1) {
			snprintf(h->lasterr, sizeof(h->lasterr), "%s: socket: "
			    "%s", addr, strerror(errno));
			if (local_errno(errno))
				snprintf(h->localerr, sizeof(h->localerr),
				    "%s", h->lasterr);
			continue;
		}
		/* a report's POST goes where a published record says, on a
		 * port tlsrpt_https_ports may open: unmarked, a divert rule
		 * could take it into mxguard's own listener.  Fatal, as for
		 * an SMTP leg (leg.c).  An MTA-STS GET goes to port 443,
		 * which no rule diverts, and `mxguard policy` fetches
		 * without the capability: it goes on unmarked. */
		if (h->mark != 0 && setsockopt(fd, SOL_SOCKET, SO_MARK,
		    &h->mark, sizeof(h->mark)) == -1 && h->post != NULL) {
			snprintf(h->lasterr, sizeof(h->lasterr), "SO_MARK "
			    "0x%x on the report's connection: %s (unmarked, "
			    "the divert rules would not know it as mxguard's "
			    "own)", h->mark, strerror(errno));
			close(fd);
			no_more(h);
			return -1;
		}
		if (connect(fd, (struct sockaddr *)ss, sl) == -1 &&
		    errno != EINPROGRESS) {
			snprintf(h->lasterr, sizeof(h->lasterr), "%s: connect: "
			    "%s", addr, strerror(errno));
			if (local_errno(errno))
				snprintf(h->localerr, sizeof(h->localerr),
				    "%s", h->lasterr);
			close(fd);
			continue;
		}
		if ((t = calloc(1, sizeof(*t))) == NULL ||
		    (t->parse_tmr = ev_timer_new(h->loop, parse_later,
		    t)) == NULL ||
		    (t->io = io_new(h->loop, fd, io_event, t)) == NULL) {
			snprintf(h->lasterr, sizeof(h->lasterr), "%s: out of "
			    "memory", addr);
			snprintf(h->localerr, sizeof(h->localerr), "%s",
			    h->lasterr);
			if (t != NULL)
				ev_timer_free(t->parse_tmr);
			free(t);
			close(fd);
			no_more(h);
			return -1;
		}
		t->h = h;
		snprintf(t->addr, sizeof(t->addr), "%s", addr);
		h->tries[slot] = t;
		h->ntries++;
		io_wait_connected(t->io);
		/* a POST's address that takes the connection and never
		 * finishes the TLS handshake (a dead backend behind it, a
		 * route that swallows the SYN) must not hold the whole
		 * request while others remain: it gets a quarter of the
		 * time, then the next one is tried (IO_TIMEOUT before the
		 * handshake).  A GET's is not cut: the stagger starts the
		 * next one beside it */
		if (h->post != NULL && h->next < h->naddrs) {
			io_set_deadline(t->io, h->try_ms);
			t->cut = 1;
		}
		return 0;
	}
	return -1;
}

/*
 * Starts the next address when an attempt may open: for a POST only when
 * none is (one address at a time: a report must not go out twice); for a
 * GET up to GET_TRIES_MAX, staggered as RFC 8305 (Happy Eyeballs) does
 * connections: the first at once, the next when one fails or try_ms
 * after the last start, the earlier ones left open.  The first attempt
 * with a whole valid response wins, the others are cancelled with the
 * fetch (finish()).  Before, a GET's address that had not sent the whole
 * response within try_ms was cut for the next, so a policy host slower
 * than that at every address but the last, or whose only reachable
 * address was not the last, failed every fetch.  When none is left,
 * none is open and no DNS answer is to come, the fetch fails; with one
 * to come, the stagger runs on, so that its addresses start when the
 * last start's stagger is over (dns_done()).
 */
static void
start_next(struct http_req *h)
{
	int cap = h->post != NULL ? 1 : GET_TRIES_MAX;

	if (!h->started)	/* the resolution delay (dns_done()) */
		return;
	if (h->ntries < cap && try_start(h) == 0 && h->post == NULL &&
	    (h->next < h->naddrs || h->pending_dns > 0))
		ev_timer_arm(h->stagger, h->try_ms);
	else if (h->next >= h->naddrs && h->pending_dns == 0)
		ev_timer_stop(h->stagger);
	if (h->ntries == 0 && h->pending_dns == 0)
		fail_all(h, NULL);
}

static void
stagger_due(void *arg)
{
	start_next(arg);
}

/*
 * The addresses still to try (from h->next), in the order they are
 * tried: the families alternate (RFC 8305 section 4), IPv6 first at the
 * start, then the family other than the last one started, so that a late
 * answer's addresses join the alternation where it is; MAX_ADDRS of them
 * (2 * MAX_ADDRS with those tried: each answer brings MAX_ADDRS at most,
 * and only the second comes late).  Counting those tried, a late answer
 * found no room once MAX_ADDRS of the first had failed (refused at once,
 * within the resolution delay), and the fetch failed without trying the
 * family that serves, which both answers in would have alternated with
 * them.  In the order the answers came, a GET's stagger
 * started the first family's four (each a quarter of the fetch's time
 * after the last) and never reached the other, so an attacker who stalls
 * one family's paths (and who may decide, for an unsigned zone, which
 * answer comes first) failed the fetch of a dual-stack host whose other
 * family serves.
 */
static void
addrs_interleave(struct http_req *h)
{
	struct sockaddr_storage fam[2][MAX_ADDRS];
	int n[2] = { 0, 0 }, k[2] = { 0, 0 }, i, f;

	for (i = h->next; i < h->naddrs; i++) {
		f = h->addrs[i].ss_family == AF_INET6;
		if (n[f] < MAX_ADDRS)
			fam[f][n[f]++] = h->addrs[i];
	}
	if (h->next > 0)
		f = h->addrs[h->next - 1].ss_family != AF_INET6;
	else
		f = n[1] > 0;
	h->naddrs = h->next;
	while (h->naddrs - h->next < MAX_ADDRS && (k[0] < n[0] ||
	    k[1] < n[1])) {
		if (k[f] < n[f])
			h->addrs[h->naddrs++] = fam[f][k[f]++];
		f = !f;
	}
}

/* The attempts may start: the addresses ordered, the first started. */
static void
addrs_ready(struct http_req *h)
{
	h->started = 1;
	ev_timer_stop(h->resdelay);
	addrs_interleave(h);
	start_next(h);
}

static void
resdelay_due(void *arg)
{
	addrs_ready(arg);
}

static void
dns_done(struct http_req *h, enum dns_status st, const struct dns_answer *a)
{
	int i;

	if (a != NULL && (st == DNS_SECURE || st == DNS_INSECURE)) {
		int base = h->naddrs;

		/* MAX_ADDRS of each family: the first answer must not
		 * crowd out the other's (addrs_interleave()) */
		for (i = 0; i < a->nrr && h->naddrs - base < MAX_ADDRS;
		    i++) {
			struct sockaddr_storage *ss = &h->addrs[h->naddrs++];

			memset(ss, 0, sizeof(*ss));
			if (a->rr[i].type == DNS_T_A) {
				struct sockaddr_in *s4 = (void *)ss;

				s4->sin_family = AF_INET;
				s4->sin_port = htons(h->port);
				s4->sin_addr = a->rr[i].u.a;
			} else {
				struct sockaddr_in6 *s6 = (void *)ss;

				s6->sin6_family = AF_INET6;
				s6->sin6_port = htons(h->port);
				s6->sin6_addr = a->rr[i].u.aaaa;
			}
			/* a report's https host comes from a record its
			 * domain's owner wrote, and this socket carries
			 * upstream_mark, around the interception rules: no
			 * POST to this host or a private network unless
			 * allowed.  (An MTA-STS GET is not filtered: its
			 * host is the recipient domain's own, and a policy
			 * served from a private address is a deployment
			 * some networks have.) */
			if (h->post != NULL && netaddr_refuse(h->host,
			    (struct sockaddr *)ss, h->any_address,
			    h->lasterr, sizeof(h->lasterr))) {
				h->naddrs--;
				h->nrefused++;
			}
		}
	} else {
		int e = 0;

		if (st != DNS_NXDOMAIN && st != DNS_NODATA)
			h->dnsfail = 1;
		if (!h->lasterr[0])
			snprintf(h->lasterr, sizeof(h->lasterr), "%s: DNS %s",
			    h->host, dns_status_name(st));
		/* the resolver could not open its socket or send meanwhile
		 * (c-ares says "refused", dns.c SERVFAIL), or it failed
		 * for memory (DNS_LOCAL): not the host's answer, and its
		 * addresses might have served, as for a socket() of ours
		 * that failed so (try_start()) */
		if (h->dnsfail && (dns_local_failures(h->dns, &e) !=
		    h->dns_local0 || st == DNS_LOCAL))
			snprintf(h->localerr, sizeof(h->localerr), "%s: DNS "
			    "%s: the resolver could not send: %s", h->host,
			    dns_status_name(st), e ? strerror(e) :
			    "out of memory");
	}
	h->pending_dns--;
	if (!h->started) {
		/*
		 * RFC 8305 section 3: start once there are addresses and
		 * the AAAA answer (the preferred family's) is in, positive
		 * or not, or RESOLUTION_DELAY_MS after an A answer that
		 * came first; with no address yet, wait for the other
		 * answer.  Never both answers: whoever delays one of them
		 * must not hold the fetch
		 */
		if (h->pending_dns == 0 || (h->naddrs > 0 && h->q6 == NULL))
			addrs_ready(h);
		else if (h->naddrs > 0 && !ev_timer_pending(h->resdelay))
			ev_timer_arm(h->resdelay, RESOLUTION_DELAY_MS);
		return;
	}
	/* a late answer: its addresses join those still to try, in the
	 * alternation; the next starts now if no stagger runs (none open,
	 * or a quarter of the fetch's time since the last start), else
	 * when it is over.  A POST's attempt still in its handshake that
	 * was the last is no longer: it gets a quarter of the time from
	 * now, as any but the last does (try_start()).  One that had its
	 * quarter keeps it: re-armed, whoever times the answer would hold
	 * a hanging address up to twice its share */
	addrs_interleave(h);
	if (h->post != NULL && h->tries[0] != NULL && !h->tries[0]->tls_up &&
	    !h->tries[0]->cut && h->next < h->naddrs) {
		io_set_deadline(h->tries[0]->io, h->try_ms);
		h->tries[0]->cut = 1;
	}
	if (h->ntries == 0 || !ev_timer_pending(h->stagger))
		start_next(h);
}

static void
dns_done4(void *arg, enum dns_status st, const struct dns_answer *a)
{
	struct http_req *h = arg;

	h->q4 = NULL;
	dns_done(h, st, a);
}

static void
dns_done6(void *arg, enum dns_status st, const struct dns_answer *a)
{
	struct http_req *h = arg;

	h->q6 = NULL;
	dns_done(h, st, a);
}

/* The fetch's deadline: a response whole by its framing whose parse was
 * put off (parse_due()) is taken; otherwise the fetch fails, saying what
 * each attempt open was waiting for. */
static void
overall_timeout(void *arg)
{
	struct http_req *h = arg;
	char what[400];
	size_t o;
	int i, n = 0;

	for (i = 0; i < GET_TRIES_MAX; i++)
		if (h->tries[i] != NULL && h->tries[i]->tls_up &&
		    h->post == NULL && get_whole(h->tries[i]))
			return;
	o = (size_t)snprintf(what, sizeof(what), "timeout after %llu ms",
	    (unsigned long long)h->timeout_ms);
	if (h->pending_dns > 0 && o < sizeof(what))
		o += (size_t)snprintf(what + o, sizeof(what) - o, " resolving "
		    "%s (%s)", h->host, h->q4 != NULL && h->q6 != NULL ?
		    "A, AAAA" : h->q4 != NULL ? "A" : "AAAA");
	for (i = 0; i < GET_TRIES_MAX && o < sizeof(what); i++) {
		struct http_try *t = h->tries[i];

		if (t == NULL)
			continue;
		o += (size_t)snprintf(what + o, sizeof(what) - o, "%s%s %s",
		    n++ ? ", " : ": ", t->tls_up ? (t->len ? "response not "
		    "whole from" : "no response from") : "no TLS handshake "
		    "with", t->addr);
	}
	fail_all(h, what);
}

static struct http_req *
http_start(struct ev_loop *loop, struct dns *dns, SSL_CTX *ctx,
    const char *host, uint16_t port, const char *path, uint64_t timeout_ms,
    size_t maxbody, uint32_t sockmark, http_cb *cb, void *arg)
{
	struct http_req *h;
	char err[160];

	/* a name that is no DNS name is refused, never cut to fit host[]:
	 * a cut name is another host */
	if (sts_dns_name_check(host, err, sizeof(err)) == -1) {
		log_warn("event=http-refused host=%.80s%s reason=\"not a "
		    "valid DNS name: %s\"", host, strlen(host) > 80 ? "..." :
		    "", err);
		return NULL;
	}
	if (strlen(path) >= sizeof(h->path) || port == 0)
		return NULL;
	if ((h = calloc(1, sizeof(*h))) == NULL)
		return NULL;
	h->loop = loop;
	h->dns = dns;
	h->ctx = ctx;
	snprintf(h->host, sizeof(h->host), "%s", host);
	snprintf(h->path, sizeof(h->path), "%s", path);
	h->port = port;
	h->maxbody = maxbody;
	h->mark = sockmark;
	h->cb = cb;
	h->arg = arg;
	if ((h->timer = ev_timer_new(loop, overall_timeout, h)) == NULL ||
	    (h->stagger = ev_timer_new(loop, stagger_due, h)) == NULL ||
	    (h->resdelay = ev_timer_new(loop, resdelay_due, h)) == NULL) {
		ev_timer_free(h->timer);
		ev_timer_free(h->stagger);
		free(h);
		return NULL;
	}
	h->ct_drops0 = ctstat_drops();
	h->timeout_ms = timeout_ms ? timeout_ms : 30000;
	ev_timer_arm(h->timer, h->timeout_ms);
	h->try_ms = h->timeout_ms / 4 + 1;
	return h;
}

static struct http_req *
http_resolve(struct http_req *h)
{
	h->pending_dns = 2;
	h->dns_local0 = dns_local_failures(h->dns, NULL);
	h->q4 = dns_query(h->dns, h->host, DNS_T_A, dns_done4, h);
	h->q6 = dns_query(h->dns, h->host, DNS_T_AAAA, dns_done6, h);
	if (h->q4 == NULL || h->q6 == NULL) {
		req_free(h);
		return NULL;
	}
	return h;
}

struct http_req *
http_get(struct ev_loop *loop, struct dns *dns, SSL_CTX *ctx,
    const char *host, const char *path, uint64_t timeout_ms, size_t maxbody,
    uint32_t sockmark, http_cb *cb, void *arg)
{
	struct http_req *h;

	if ((h = http_start(loop, dns, ctx, host, 443, path, timeout_ms,
	    maxbody, sockmark, cb, arg)) == NULL)
		return NULL;
	return http_resolve(h);
}

struct http_req *
http_post(struct ev_loop *loop, struct dns *dns, SSL_CTX *ctx,
    const char *host, uint16_t port, const char *path, const char *ctype,
    const void *body, size_t len, uint64_t timeout_ms, uint32_t sockmark,
    int any_address, http_cb *cb, void *arg)
{
	struct http_req *h;

	/* the type goes into a header line: no line breaks */
	if (ctype == NULL || strpbrk(ctype, "\r\n") != NULL || len == 0)
		return NULL;
	if ((h = http_start(loop, dns, ctx, host, port, path, timeout_ms,
	    4096, sockmark, cb, arg)) == NULL)
		return NULL;
	if ((h->post = malloc(len)) == NULL) {
		req_free(h);
		return NULL;
	}
	memcpy(h->post, body, len);
	h->postlen = len;
	h->any_address = any_address;
	h->ctype = ctype;
	return http_resolve(h);
}

void
http_cancel(struct http_req *h)
{
	if (h != NULL)
		req_free(h);
}
