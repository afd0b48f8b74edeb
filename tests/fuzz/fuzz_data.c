/*
 * fuzz_data.c - libFuzzer target for the DATA scanner.  The input is the
 * client's bytes after DATA.  Checked: with the promised out size one call
 * never says FULL; the output has no bare CR or LF and holds no end of data
 * except the terminator at its very end; the output equals a reference
 * written with look-ahead; and feeding the input in two pieces, or into a
 * tiny out buffer, or the relay's way (smtp_data_clean spans as they are,
 * the scanner up to the next LF, as body_pump does), in one piece or two,
 * gives exactly what one call gives.  And the end is where a strict
 * receiver finds it in the raw input (the first CRLF . CRLF, counting the
 * CRLF that ended the DATA line): no input ends the message for mxguard
 * and not for such a receiver, or the other way round.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tlsproxy/smtp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The same rules as smtp_data_scan, written with look-ahead; stops where
 * the rest of the input would be needed to decide. */
static size_t
reference(const char *in, size_t n, char *out, int *end, size_t *endpos)
{
	size_t i = 0, o = 0;
	int bol = 1;		/* 1 after a client CRLF, 2 after a bare one */

	*end = 0;
	while (i < n) {
		if (bol == 1 && in[i] == '.') {
			if (i + 1 >= n || (in[i + 1] == '\r' && i + 2 >= n))
				break;
			if (in[i + 1] == '\r' && in[i + 2] == '\n') {
				memcpy(out + o, ".\r\n", 3);
				*end = 1;
				*endpos = i + 3;
				return o + 3;
			}
			if (in[i + 1] == '\r' || in[i + 1] == '\n') {
				memcpy(out + o, "..\r\n", 4);
				o += 4;
				i += 2;
				bol = 2;
				continue;
			}
			out[o++] = in[i++];
			bol = 0;
			continue;
		}
		if (bol == 2 && in[i] == '.') {
			out[o++] = '.';
			out[o++] = in[i++];
			bol = 0;
			continue;
		}
		if (in[i] == '\r' || in[i] == '\n') {
			bol = in[i] == '\r' && i + 1 < n && in[i + 1] == '\n' ?
			    1 : 2;
			i += bol == 1 ? 2 : 1;
			out[o++] = '\r';
			out[o++] = '\n';
			continue;
		}
		out[o++] = in[i++];
		bol = 0;
	}
	return o;
}

/* body_pump's loop (tlsproxy/session.c) over in[0..n): the clean prefix
 * copied as it is, else the scanner up to and including the next LF. */
static size_t
relay(struct smtp_data *d, const char *in, size_t n, char *out, size_t cap,
    size_t *consumed, enum smtp_data_status *st)
{
	size_t pos = 0, o = 0, c, p, lim;
	const char *lf;

	*st = SMTP_DATA_MORE;
	while (pos < n) {
		if ((c = smtp_data_clean(d, in + pos, n - pos)) > 0) {
			if (c > n - pos || o + c > cap)
				abort();
			memcpy(out + o, in + pos, c);
			o += c;
			pos += c;
			continue;
		}
		lf = memchr(in + pos, '\n', n - pos);
		lim = lf != NULL ? (size_t)(lf - (in + pos)) + 1 : n - pos;
		*st = smtp_data_scan(d, in + pos, lim, out + o, cap - o, &c,
		    &p);
		if (*st == SMTP_DATA_FULL || c == 0)
			abort();
		o += p;
		pos += c;
		if (*st == SMTP_DATA_END)
			break;
	}
	*consumed = pos;
	return o;
}

static void
check_output(const char *out, size_t len, enum smtp_data_status st)
{
	const char *p;
	size_t i;

	for (i = 0; i < len; i++) {
		if (out[i] == '\r' && (i + 1 == len || out[i + 1] != '\n'))
			abort();
		if (out[i] == '\n' && (i == 0 || out[i - 1] != '\r'))
			abort();
	}
	/* data start counts as a line start */
	if (len >= 3 && memcmp(out, ".\r\n", 3) == 0 &&
	    (st != SMTP_DATA_END || len != 3))
		abort();
	p = memmem(out, len, "\r\n.\r\n", 5);
	if (p != NULL && (st != SMTP_DATA_END || p != out + len - 5))
		abort();
	if (st == SMTP_DATA_END && (len < 3 ||
	    memcmp(out + len - 3, ".\r\n", 3) != 0 ||
	    (len > 3 && (len < 5 || memcmp(out + len - 5, "\r\n", 2) != 0))))
		abort();
}

/* 1 if in holds CRLF . CRLF after the DATA line's CRLF (*end: the offset
 * just past it), as a receiver that knows only that terminator sees it. */
static int
strict_end(const char *in, size_t n, size_t *end)
{
	size_t i;

	if (n >= 3 && memcmp(in, ".\r\n", 3) == 0) {
		*end = 3;
		return 1;
	}
	for (i = 0; i + 5 <= n; i++)
		if (memcmp(in + i, "\r\n.\r\n", 5) == 0) {
			*end = i + 5;
			return 1;
		}
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	struct smtp_data d, d2;
	enum smtp_data_status st, st2;
	size_t cap = 3 * size + 3, c, p, c2, p2, k, tot, len, pos, osz;
	char *out, *out2, *ref;
	int end, guard;
	size_t endpos = 0;

	out = malloc(cap);
	out2 = malloc(cap);
	ref = malloc(4 * size + 8);

	/* one call */
	smtp_data_init(&d);
	st = smtp_data_scan(&d, in, size, out, cap, &c, &p);
	if (st == SMTP_DATA_FULL || p > cap || c > size || d.bytes_in != c)
		abort();
	if (st == SMTP_DATA_MORE && c != size)
		abort();
	check_output(out, p, st);

	/* a strict receiver on the raw input */
	if (strict_end(in, size, &pos) != (st == SMTP_DATA_END) ||
	    (st == SMTP_DATA_END && pos != c))
		abort();

	/* reference */
	len = reference(in, size, ref, &end, &endpos);
	if (len != p || memcmp(ref, out, p) != 0 ||
	    end != (st == SMTP_DATA_END) || (end && endpos != c))
		abort();

	/* two pieces */
	k = size ? ((size_t)data[0] * 131 + data[size - 1] + size) % (size + 1)
	    : 0;
	smtp_data_init(&d2);
	st2 = smtp_data_scan(&d2, in, k, out2, 3 * k + 3, &c2, &p2);
	if (st2 == SMTP_DATA_FULL)
		abort();
	tot = c2;
	len = p2;
	if (st2 == SMTP_DATA_MORE) {
		if (c2 != k)
			abort();
		st2 = smtp_data_scan(&d2, in + k, size - k, out2 + len,
		    3 * (size - k) + 3, &c2, &p2);
		if (st2 == SMTP_DATA_FULL)
			abort();
		tot += c2;
		len += p2;
	}
	if (st2 != st || tot != c || len != p || memcmp(out, out2, p) != 0 ||
	    d2.bare_lf != d.bare_lf || d2.bare_cr != d.bare_cr ||
	    d2.bytes_in != d.bytes_in)
		abort();

	/* tiny out buffer, resumed after each FULL */
	osz = 1 + (size ? data[0] % 5 : 0);
	smtp_data_init(&d2);
	pos = 0;
	len = 0;
	for (guard = 0;; guard++) {
		if (guard > 4 * (int)size + 16 || len + osz > cap + osz)
			abort();
		st2 = smtp_data_scan(&d2, in + pos, size - pos, out2 + len,
		    len + osz <= cap ? osz : cap - len, &c2, &p2);
		pos += c2;
		len += p2;
		if (st2 != SMTP_DATA_FULL)
			break;
	}
	if (st2 != st || pos != c || len != p || memcmp(out, out2, p) != 0 ||
	    d2.bare_lf != d.bare_lf || d2.bare_cr != d.bare_cr)
		abort();

	/* the relay's way, in one piece and in two (cut at k) */
	smtp_data_init(&d2);
	len = relay(&d2, in, size, ref, 4 * size + 8, &tot, &st2);
	if (st2 != st || tot != c || len != p || memcmp(out, ref, p) != 0 ||
	    d2.bare_lf != d.bare_lf || d2.bare_cr != d.bare_cr ||
	    d2.bytes_in != d.bytes_in)
		abort();
	smtp_data_init(&d2);
	len = relay(&d2, in, k, ref, 4 * size + 8, &tot, &st2);
	if (st2 != SMTP_DATA_END) {
		if (tot != k)
			abort();
		len += relay(&d2, in + k, size - k, ref + len,
		    4 * size + 8 - len, &c2, &st2);
		tot += c2;
	}
	if (st2 != st || tot != c || len != p || memcmp(out, ref, p) != 0 ||
	    d2.bare_lf != d.bare_lf || d2.bare_cr != d.bare_cr ||
	    d2.bytes_in != d.bytes_in)
		abort();

	free(out);
	free(out2);
	free(ref);
	return 0;
}
