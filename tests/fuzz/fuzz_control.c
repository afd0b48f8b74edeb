/*
 * fuzz_control.c - libFuzzer target for the control socket's request
 * grammar (cmd/ctlreq.c), as conn_read_cb and respond use it: the input
 * is offered as a unix request and as an HTTP request.  An exact-size
 * copy lets ASan see any read past the request; the answers are checked
 * against the grammar documented in ctlreq.c.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/ctlreq.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* length of the first line, up to CR or LF */
static size_t
line_len(const char *p, size_t len)
{
	size_t n;

	for (n = 0; n < len && p[n] != '\r' && p[n] != '\n'; n++)
		;
	return n;
}

static void
check_unix(const char *req, size_t len)
{
	enum ctl_req k = ctl_req_parse(req, len, 0);
	size_t n = line_len(req, len);

	if (ctl_req_complete(req, len, 0) != (memchr(req, '\n', len) != NULL))
		abort();
	switch (k) {
	case CTL_REQ_STATUS:
		if (n != 6 || memcmp(req, "status", 6) != 0)
			abort();
		break;
	case CTL_REQ_METRICS:
		if (n != 7 || memcmp(req, "metrics", 7) != 0)
			abort();
		break;
	case CTL_REQ_UNKNOWN:
		if ((n == 6 && memcmp(req, "status", 6) == 0) ||
		    (n == 7 && memcmp(req, "metrics", 7) == 0))
			abort();
		break;
	default:	/* HTTP answers are never given to a unix request */
		abort();
	}
}

static void
check_http(const char *req, size_t len)
{
	enum ctl_req k = ctl_req_parse(req, len, 1);
	int get = len >= 4 && memcmp(req, "GET ", 4) == 0;
	size_t i;

	if (ctl_req_complete(req, len, 1) !=
	    (memmem(req, len, "\n\n", 2) != NULL ||
	    memmem(req, len, "\r\n\r\n", 4) != NULL))
		abort();
	if (!get) {
		if (k != CTL_REQ_BAD_METHOD)
			abort();
		return;
	}
	if (k == CTL_REQ_METRICS) {
		/* the path is "/" or "/metrics", then the end or a stop byte */
		i = len > 5 && req[5] == 'm' ? 12 : 5;
		if (len < i || (req[4] != '/') ||
		    (i == 12 && memcmp(req + 4, "/metrics", 8) != 0) ||
		    (len > i && strchr(" \r\n?", req[i]) == NULL) ||
		    (len > i && req[i] == '\0'))
			abort();
	} else if (k != CTL_REQ_NOT_FOUND)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *req = malloc(size ? size : 1);

	memcpy(req, data, size);
	check_unix(req, size);
	check_http(req, size);
	free(req);
	return 0;
}
