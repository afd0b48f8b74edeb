/*
 * http.h - the minimal HTTPS client MTA-STS needs (RFC 8461 section 3.3):
 * one GET over TLS verified against the WebPKI for the host name (its
 * subjectAltName DNS names only, never the subject CN: RFC 9525), no
 * redirects, status 200 only, Content-Type text/plain, a body with
 * Content-Length or chunked encoding, bounded, with one overall timeout
 * (the host's addresses tried staggered: the next one a quarter of it
 * after the last, or at once when one fails, the earlier ones left open;
 * the first policy whole wins).
 * The same client POSTs TLSRPT reports (RFC 8460 section 5.2): any 2xx
 * status means delivered, the response body is not read.
 */
#ifndef MXG_HTTP_H
#define MXG_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/ssl.h>

#include "core/ev.h"

#define HTTP_HDR_MAX	(16 * 1024)
/* A GET's connections (attempts) open at once, at most (Happy Eyeballs,
 * http.c start_next()); a POST has one. */
#define HTTP_GET_TRIES_MAX 4

enum http_result { HTTP_MORE, HTTP_DONE, HTTP_ERR };

struct http_resp {
	int		 status;
	char		*body;		/* HTTP_DONE: malloc'd, NUL-terminated */
	size_t		 bodylen;
	char		 err[160];	/* HTTP_ERR */
	int		 nomem;		/* HTTP_ERR for want of memory here,
					 * not for anything the host sent */
};

/*
 * Parses the response bytes received so far (buf, len; eof = the peer
 * closed), interim (1xx) responses before the final one skipped.  HTTP_MORE: send more; HTTP_DONE: body filled; HTTP_ERR: err
 * says why (status not 200, wrong type, too large, truncated, malformed).
 * Frees nothing: call http_resp_clear() after HTTP_DONE.
 */
enum http_result http_parse_response(const char *buf, size_t len, int eof,
		    size_t maxbody, struct http_resp *);
void		 http_resp_clear(struct http_resp *);
/* Only the final status line, after any interim (1xx) responses:
 * HTTP_DONE with *code, HTTP_MORE, HTTP_ERR. */
enum http_result http_status_line(const char *buf, size_t len, int *code);

struct dns;
struct http_req;
/* ok: 0 with body/len, or -1 with err and kind ("sts-webpki-invalid" for
 * certificate failures, "sts-policy-fetch-error" otherwise). */
typedef void http_cb(void *arg, int ok, const char *body, size_t len,
    const char *kind, const char *err);

/* GET https://host/path.  ctx: verify store already loaded. */
struct http_req *http_get(struct ev_loop *, struct dns *, SSL_CTX *ctx,
		    const char *host, const char *path, uint64_t timeout_ms,
		    size_t maxbody, uint32_t sockmark, http_cb *, void *arg);
#define HTTP_DESTINATION_REFUSED "destination-refused"
/* kind of a failure for want of this host's own resources: an address
 * could not be tried (no descriptor, memory or local port), so the
 * failure says nothing about the host */
#define HTTP_LOCAL_ERROR "local-error"
/* POST body (copied) with Content-Type ctype to https://host:port/path,
 * one address at a time (an address that has not finished the TLS
 * handshake within a quarter of timeout_ms gives way to the next one):
 * never two at once, a report must not go out twice.
 * The callback's ok is 0 for a 2xx status (body empty), -1 otherwise
 * (err says why; kind is HTTP_DESTINATION_REFUSED when the host had
 * addresses and every one was refused, as below, so none was tried,
 * and both of its queries were answered; otherwise not meaningful).  Unless any_address, an
 * address of host that is not global unicast, or is this host's own
 * (core/netaddr.h), is never connected to
 * (event=tlsrpt-destination-refused): the host comes from a record anyone
 * may publish.  A sockmark that SO_MARK refuses fails the POST (a GET goes
 * on unmarked). */
struct http_req *http_post(struct ev_loop *, struct dns *, SSL_CTX *ctx,
		    const char *host, uint16_t port, const char *path,
		    const char *ctype, const void *body, size_t len,
		    uint64_t timeout_ms, uint32_t sockmark, int any_address,
		    http_cb *, void *arg);
void		 http_cancel(struct http_req *);

#endif
