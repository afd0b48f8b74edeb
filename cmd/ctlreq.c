/*
 * ctlreq.c - the control socket's request grammar (see ctlreq.h).
 *
 *   unix: one line, "status" or "metrics", ended by LF or CRLF (or by EOF).
 *   http: "GET PATH ..." where PATH up to ' ', '?', CR or LF is "/metrics"
 *     or "/"; the rest of the request (version, headers) is not looked at.
 *
 * Everything works on (pointer, length): a request with a NUL in it is
 * judged by all its bytes, not by the prefix before the NUL.
 */
#include <string.h>

#include "cmd/ctlreq.h"

int
ctl_req_complete(const char *req, size_t len, int http)
{
	if (!http)
		return memchr(req, '\n', len) != NULL;
	return memmem(req, len, "\r\n\r\n", 4) != NULL ||
	    memmem(req, len, "\n\n", 2) != NULL;
}

/* Length of the token at p (at most len bytes) up to any byte of stop. */
static size_t
span_until(const char *p, size_t len, const char *stop)
{
	size_t n;

	for (n = 0; n < len; n++)
		if (strchr(stop, p[n]) != NULL && p[n] != '\0')
			break;
	return n;
}

enum ctl_req
ctl_req_parse(const char *req, size_t len, int http)
{
	size_t n;

	if (http) {
		if (len < 4 || memcmp(req, "GET ", 4) != 0)
			return CTL_REQ_BAD_METHOD;
		req += 4;
		len -= 4;
		n = span_until(req, len, " \r\n?");
		if ((n == 8 && memcmp(req, "/metrics", 8) == 0) ||
		    (n == 1 && *req == '/'))
			return CTL_REQ_METRICS;
		return CTL_REQ_NOT_FOUND;
	}
	n = span_until(req, len, "\r\n");
	if (n == 6 && memcmp(req, "status", 6) == 0)
		return CTL_REQ_STATUS;
	if (n == 7 && memcmp(req, "metrics", 7) == 0)
		return CTL_REQ_METRICS;
	return CTL_REQ_UNKNOWN;
}
