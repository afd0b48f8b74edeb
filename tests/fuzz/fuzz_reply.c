/*
 * fuzz_reply.c - libFuzzer target for the SMTP reply parser and the EHLO
 * capability parser and filter.  The input is split into lines at LF (a
 * CR before the LF is dropped, as the io layer does); lines are fed until
 * a reply is complete or refused, then a new reply starts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tlsproxy/smtp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct smtp_reply rep;
static char fout[SMTP_REPLY_MAX + 64];

static void
check_done(const struct smtp_reply *r)
{
	struct smtp_caps caps;
	const char *t, *p, *end, *eol;
	char enh[12];
	size_t n, len, i;
	int k;

	if (r->code < 200 || r->code > 599 || r->nlines < 1 ||
	    r->nlines > SMTP_REPLY_MAX_LINES || r->len > SMTP_REPLY_MAX)
		abort();
	/* buf holds the lines, each CRLF-terminated, texts inside them */
	for (k = 0; k < r->nlines; k++) {
		t = smtp_reply_text(r, k, &n);
		if (t == NULL || t < r->buf || t + n + 2 > r->buf + r->len ||
		    memcmp(t + n, "\r\n", 2) != 0 ||
		    memchr(t, '\r', n) != NULL || memchr(t, '\n', n) != NULL ||
		    memchr(t, '\0', n) != NULL)
			abort();
	}
	if (smtp_reply_text(r, r->nlines, &n) != NULL || n != 0)
		abort();

	smtp_reply_enhanced(r, enh, sizeof(enh));
	len = strlen(enh);
	if (len != 0 && (len < 5 || len > 9 || enh[0] != '0' + r->code / 100))
		abort();

	smtp_caps_parse(r, &caps);
	if (r->code != 250 && caps.flags != 0)
		abort();

	for (k = 0; k < 2; k++) {
		/* The filtered reply is never longer than the original plus
		 * one STARTTLS line (14) and the separator a bare "250"
		 * greeting line gains (1). */
		len = smtp_caps_filter(r, k, fout, r->len + 15);
		if (len == 0 || len > r->len + 15)
			abort();
		p = fout;
		end = fout + len;
		while (p < end) {
			eol = memchr(p, '\n', (size_t)(end - p));
			if (eol == NULL || eol - p < 5 || eol[-1] != '\r' ||
			    memcmp(p, "250", 3) != 0 ||
			    p[3] != (eol + 1 == end ? ' ' : '-') ||
			    memchr(p, '\r', (size_t)(eol - 1 - p)) != NULL)
				abort();
			p = eol + 1;
		}
		/* Any smaller buffer: 0, and no write past it (ASan). */
		i = len > 0 ? (size_t)(r->len % len) : 0;
		{
			char *small = malloc(i ? i : 1);

			if (smtp_caps_filter(r, k, small, i) != 0)
				abort();
			free(small);
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size, *nl;
	enum smtp_reply_status st;
	size_t len;
	char *line;

	smtp_reply_init(&rep);
	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		len = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
		if (len > 0 && p[len - 1] == '\r')
			len--;
		/* exact-size copy so that ASan sees any over-read */
		line = malloc(len ? len : 1);
		memcpy(line, p, len);
		st = smtp_reply_feed(&rep, line, len);
		free(line);
		if (st == SMTP_REPLY_BAD) {
			if (rep.err == NULL)
				abort();
			smtp_reply_init(&rep);
		} else if (st == SMTP_REPLY_DONE) {
			check_done(&rep);
			smtp_reply_init(&rep);
		} else if (st != SMTP_REPLY_MORE || rep.err != NULL)
			abort();
		p = nl != NULL ? nl + 1 : end;
	}
	return 0;
}
