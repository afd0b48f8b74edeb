/*
 * ctlreq.h - the request grammar of the control socket and the metrics
 * endpoint, apart from their sockets so that a fuzzer can link it.
 *
 * Both functions read exactly len bytes of req (no NUL needed, a NUL is an
 * ordinary byte) and keep no state; nothing is allocated.
 */
#ifndef MXG_CTLREQ_H
#define MXG_CTLREQ_H

#include <stddef.h>

enum ctl_req {
	CTL_REQ_STATUS,		/* unix: "status" */
	CTL_REQ_METRICS,	/* unix: "metrics"; http: GET /metrics or / */
	CTL_REQ_UNKNOWN,	/* unix: any other line */
	CTL_REQ_NOT_FOUND,	/* http: GET of another path */
	CTL_REQ_BAD_METHOD,	/* http: not a GET */
};

/* 1 when req holds a whole request: a line (unix), or a header block
 * ending in an empty line (http); else 0. */
int		 ctl_req_complete(const char *req, size_t len, int http);
/* What a complete (or, at EOF, partial) request asks for. */
enum ctl_req	 ctl_req_parse(const char *req, size_t len, int http);

#endif
