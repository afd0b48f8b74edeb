/*
 * test_smtp_data.c - unit tests for the DATA scanner (smtp_data_scan):
 * a table of inputs and expected outputs, then the property that feeding a
 * message in any two pieces, byte by byte, or into a tiny out buffer gives
 * exactly what one call gives, then random messages against a reference.
 * smtp_data_clean: the prefixes it passes through unchanged, and the
 * relay's loop (clean spans as they are, the scanner up to the next LF)
 * giving exactly what one scan gives.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "tlsproxy/smtp.h"

#define S(x)	x, sizeof(x) - 1

struct result {
	enum smtp_data_status st;
	size_t	 consumed;	/* total over all calls */
	size_t	 len;
	char	 out[4096];
	unsigned long bare_lf, bare_cr;
	unsigned long long bytes_in;
};

/* One call with the out size the header promises is always enough. */
static void
one_shot(const char *in, size_t n, struct result *r)
{
	struct smtp_data d;
	size_t c, p;

	assert_true(3 * n + 3 <= sizeof(r->out));
	smtp_data_init(&d);
	r->st = smtp_data_scan(&d, in, n, r->out, 3 * n + 3, &c, &p);
	assert_int_not_equal(r->st, SMTP_DATA_FULL);
	r->consumed = c;
	r->len = p;
	r->bare_lf = d.bare_lf;
	r->bare_cr = d.bare_cr;
	r->bytes_in = d.bytes_in;
	assert_int_equal(d.bytes_in, c);
}

/* Feeds in[0..n) cut at the offsets in cuts (ascending, ncuts of them),
 * giving each call room for 3 * len + 3; stops at END. */
static void
pieces(const char *in, size_t n, const size_t *cuts, int ncuts,
    struct result *r)
{
	struct smtp_data d;
	size_t from = 0, to, c, p;
	int i;

	smtp_data_init(&d);
	r->len = 0;
	r->consumed = 0;
	r->st = SMTP_DATA_MORE;
	for (i = 0; i <= ncuts; i++) {
		to = i < ncuts ? cuts[i] : n;
		assert_true(r->len + 3 * (to - from) + 3 <= sizeof(r->out));
		r->st = smtp_data_scan(&d, in + from, to - from,
		    r->out + r->len, 3 * (to - from) + 3, &c, &p);
		assert_int_not_equal(r->st, SMTP_DATA_FULL);
		r->len += p;
		r->consumed += c;
		if (r->st == SMTP_DATA_END)
			break;
		assert_int_equal(c, to - from);
		from = to;
	}
	r->bare_lf = d.bare_lf;
	r->bare_cr = d.bare_cr;
	r->bytes_in = d.bytes_in;
}

/* Feeds all of in with out buffers of outsz bytes, resuming after FULL. */
static void
tiny_out(const char *in, size_t n, size_t outsz, struct result *r)
{
	struct smtp_data d;
	size_t pos = 0, c, p;
	int guard = 0;

	smtp_data_init(&d);
	r->len = 0;
	for (;;) {
		assert_true(++guard < 100000);
		assert_true(r->len + outsz <= sizeof(r->out));
		r->st = smtp_data_scan(&d, in + pos, n - pos, r->out + r->len,
		    outsz, &c, &p);
		assert_true(p <= outsz);
		r->len += p;
		pos += c;
		if (r->st == SMTP_DATA_END)
			break;
		if (r->st == SMTP_DATA_MORE) {
			assert_int_equal(pos, n);
			break;
		}
		/* FULL: out must really be full */
		assert_int_equal(p, outsz);
	}
	r->consumed = pos;
	r->bare_lf = d.bare_lf;
	r->bare_cr = d.bare_cr;
	r->bytes_in = d.bytes_in;
}

/* body_pump's loop (tlsproxy/session.c) over in[0..n), fed in pieces cut
 * at the offsets in cuts: the clean prefix as it is, else the scanner up
 * to and including the next LF. */
static void
relay(const char *in, size_t n, const size_t *cuts, int ncuts,
    struct result *r)
{
	struct smtp_data d;
	size_t from = 0, to, pos, c, p, lim;
	const char *lf;
	int i;

	smtp_data_init(&d);
	r->len = 0;
	r->consumed = 0;
	r->st = SMTP_DATA_MORE;
	for (i = 0; i <= ncuts && r->st != SMTP_DATA_END; i++) {
		to = i < ncuts ? cuts[i] : n;
		for (pos = from; pos < to;) {
			if ((c = smtp_data_clean(&d, in + pos, to - pos)) > 0) {
				assert_true(c <= to - pos);
				assert_true(r->len + c <= sizeof(r->out));
				memcpy(r->out + r->len, in + pos, c);
				r->len += c;
				pos += c;
				continue;
			}
			lf = memchr(in + pos, '\n', to - pos);
			lim = lf ? (size_t)(lf - (in + pos)) + 1 : to - pos;
			assert_true(r->len + 3 * lim + 3 <= sizeof(r->out));
			r->st = smtp_data_scan(&d, in + pos, lim,
			    r->out + r->len, 3 * lim + 3, &c, &p);
			assert_int_not_equal(r->st, SMTP_DATA_FULL);
			assert_true(c > 0);
			r->len += p;
			pos += c;
			if (r->st == SMTP_DATA_END)
				break;
		}
		r->consumed = pos;
		from = to;
	}
	r->bare_lf = d.bare_lf;
	r->bare_cr = d.bare_cr;
	r->bytes_in = d.bytes_in;
}

static void
same(const struct result *a, const struct result *b, const char *what,
    size_t at)
{
	if (a->st != b->st || a->consumed != b->consumed ||
	    a->len != b->len || memcmp(a->out, b->out, a->len) != 0 ||
	    a->bare_lf != b->bare_lf || a->bare_cr != b->bare_cr ||
	    a->bytes_in != b->bytes_in)
		fail_msg("%s %zu: st %d/%d consumed %zu/%zu len %zu/%zu "
		    "lf %lu/%lu cr %lu/%lu", what, at, a->st, b->st,
		    a->consumed, b->consumed, a->len, b->len, a->bare_lf,
		    b->bare_lf, a->bare_cr, b->bare_cr);
}

static const struct {
	const char *in;
	size_t inlen;
	const char *out;
	size_t outlen;
	enum smtp_data_status st;
	size_t consumed;
	unsigned long lf, cr;
} table[] = {
	{ S("Hello\r\n.\r\n"), S("Hello\r\n.\r\n"), SMTP_DATA_END, 10, 0, 0 },
	{ S(".\r\n"), S(".\r\n"), SMTP_DATA_END, 3, 0, 0 },
	{ S(".\r\nQUIT\r\n"), S(".\r\n"), SMTP_DATA_END, 3, 0, 0 },
	{ S("\r\n.\r\n"), S("\r\n.\r\n"), SMTP_DATA_END, 5, 0, 0 },
	{ S("a\r\n.\r\nMAIL FROM:<x>\r\n"), S("a\r\n.\r\n"), SMTP_DATA_END,
	    6, 0, 0 },
	/* smuggling: LF.LF, CR.CR, CRLF.LF, LF.CRLF, CRLF.CR */
	{ S("a\n.\nMAIL FROM:<x>\r\n"), S("a\r\n..\r\nMAIL FROM:<x>\r\n"),
	    SMTP_DATA_MORE, 19, 2, 0 },
	{ S("a\r.\rb"), S("a\r\n..\r\nb"), SMTP_DATA_MORE, 5, 0, 2 },
	{ S("a\r\n.\nb\r\n"), S("a\r\n..\r\nb\r\n"), SMTP_DATA_MORE, 8, 1,
	    0 },
	{ S("a\r\n.\rb"), S("a\r\n..\r\nb"), SMTP_DATA_MORE, 6, 0, 1 },
	{ S("a\n.\r\nb"), S("a\r\n..\r\nb"), SMTP_DATA_MORE, 6, 1, 0 },
	{ S("a\r.\r\nb"), S("a\r\n..\r\nb"), SMTP_DATA_MORE, 6, 0, 1 },
	{ S("a\r\n.\r.\r\n"), S("a\r\n..\r\n..\r\n"), SMTP_DATA_MORE, 8, 0,
	    1 },
	{ S("a\r\n.\r\r\n"), S("a\r\n..\r\n\r\n"), SMTP_DATA_MORE, 7, 0, 1 },
	{ S("\n.\n"), S("\r\n..\r\n"), SMTP_DATA_MORE, 3, 2, 0 },
	{ S(".\n"), S("..\r\n"), SMTP_DATA_MORE, 2, 1, 0 },
	{ S(".\rX"), S("..\r\nX"), SMTP_DATA_MORE, 3, 0, 1 },
	/* client dot-stuffing passes through */
	{ S("a\r\n..\r\n.\r\n"), S("a\r\n..\r\n.\r\n"), SMTP_DATA_END, 10, 0,
	    0 },
	{ S("..\r\n"), S("..\r\n"), SMTP_DATA_MORE, 4, 0, 0 },
	{ S("a\r\n.foo\r\n"), S("a\r\n.foo\r\n"), SMTP_DATA_MORE, 9, 0, 0 },
	{ S(".x\r\n.\r\n"), S(".x\r\n.\r\n"), SMTP_DATA_END, 7, 0, 0 },
	{ S("a\r\n...\r\n"), S("a\r\n...\r\n"), SMTP_DATA_MORE, 8, 0, 0 },
	/* a dot after a normalised break is doubled, even mid-message */
	{ S("x\n.y\r\n"), S("x\r\n..y\r\n"), SMTP_DATA_MORE, 6, 1, 0 },
	{ S("x\n..\r\n"), S("x\r\n...\r\n"), SMTP_DATA_MORE, 6, 1, 0 },
	/* bare breaks */
	{ S("a\r\r\n"), S("a\r\n\r\n"), SMTP_DATA_MORE, 4, 0, 1 },
	{ S("a\n\r\n.\r\n"), S("a\r\n\r\n.\r\n"), SMTP_DATA_END, 7, 1, 0 },
	{ S("a\r\n\n.\r\n"), S("a\r\n\r\n..\r\n"), SMTP_DATA_MORE, 7, 1, 0 },
	{ S("a\rb\nc\r\n.\r\n"), S("a\r\nb\r\nc\r\n.\r\n"), SMTP_DATA_END,
	    10, 1, 1 },
	{ S("\n\n\r\r"), S("\r\n\r\n\r\n\r\n"), SMTP_DATA_MORE, 4, 2, 1 },
	/* held back: the rest decides */
	{ S("a\r\n.\r"), S("a\r\n"), SMTP_DATA_MORE, 5, 0, 0 },
	{ S("a\r\n."), S("a\r\n"), SMTP_DATA_MORE, 4, 0, 0 },
	{ S("."), S(""), SMTP_DATA_MORE, 1, 0, 0 },
	{ S("a\r"), S("a\r\n"), SMTP_DATA_MORE, 2, 0, 0 },
	{ S(""), S(""), SMTP_DATA_MORE, 0, 0, 0 },
	/* NUL and 8-bit bytes are data */
	{ S("a\0b\xff\r\n.\r\n"), S("a\0b\xff\r\n.\r\n"), SMTP_DATA_END, 9,
	    0, 0 },
	/* "." CRLF only ends data at a line start */
	{ S("a.\r\nb .\r\n"), S("a.\r\nb .\r\n"), SMTP_DATA_MORE, 9, 0, 0 },
};

static void
test_table(void **state)
{
	struct result r;
	size_t i;

	for (i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		one_shot(table[i].in, table[i].inlen, &r);
		if (r.st != table[i].st || r.consumed != table[i].consumed ||
		    r.len != table[i].outlen ||
		    memcmp(r.out, table[i].out, r.len) != 0 ||
		    r.bare_lf != table[i].lf || r.bare_cr != table[i].cr)
			fail_msg("table[%zu]: st %d consumed %zu out \"%.*s\" "
			    "lf %lu cr %lu", i, r.st, r.consumed, (int)r.len,
			    r.out, r.bare_lf, r.bare_cr);
	}
}

/* Messages for the split properties. */
static const struct {
	const char *in;
	size_t n;
} msgs[] = {
	{ S("Subject: hi\r\n\r\nbody line\r\n.\r\nQUIT\r\n") },
	{ S("a\n.\nMAIL FROM:<x>\r\nRCPT TO:<y>\r\nDATA\r\n.\r\n") },
	{ S("a\r.\rb\r\n.\r\n") },
	{ S("a\r\n.\nb\r\n.\r\nNOOP\r\n") },
	{ S("x\n.\r\ny\r.\r\nz\r\n.\rw\r\n.\r\n") },
	{ S("..leading\r\n..\r\n.x\r\n\r\n.\r\n") },
	{ S(".\r\nafter the end") },
	{ S("\r\n.\r\n") },
	{ S("\n\n\r\r\n.\n.\r.\r\n.\r\n") },
	{ S("no terminator\r\n.\r") },
	{ S("lone dot at end\r\n.") },
	{ S("\r\r\r\n\n\n.\r\n") },
	{ S("a\r\n.\r.\r\n.\r\r\n.\r\n") },
	{ S(".\n.\r\n") },
	{ S(".\r.\r\n") },
	{ S("long line aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n.\r\n") },
};

static void
test_split_two(void **state)
{
	struct result a, b;
	size_t i, k;

	for (i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
		one_shot(msgs[i].in, msgs[i].n, &a);
		for (k = 0; k <= msgs[i].n; k++) {
			pieces(msgs[i].in, msgs[i].n, &k, 1, &b);
			same(&a, &b, "split at", k);
		}
	}
}

static void
test_split_three(void **state)
{
	struct result a, b;
	size_t i, cut[2];

	for (i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
		one_shot(msgs[i].in, msgs[i].n, &a);
		for (cut[0] = 0; cut[0] <= msgs[i].n; cut[0]++)
			for (cut[1] = cut[0]; cut[1] <= msgs[i].n; cut[1]++) {
				pieces(msgs[i].in, msgs[i].n, cut, 2, &b);
				same(&a, &b, "split3 at", cut[0] * 1000 +
				    cut[1]);
			}
	}
}

static void
test_byte_by_byte(void **state)
{
	struct result a, b;
	size_t i, k, cuts[256];

	for (k = 0; k < 256; k++)
		cuts[k] = k + 1;
	for (i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
		assert_true(msgs[i].n <= 256);
		one_shot(msgs[i].in, msgs[i].n, &a);
		pieces(msgs[i].in, msgs[i].n, cuts, (int)msgs[i].n - 1, &b);
		same(&a, &b, "byte by byte", i);
	}
}

static void
test_tiny_out(void **state)
{
	struct result a, b;
	size_t i, sz;

	for (i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
		one_shot(msgs[i].in, msgs[i].n, &a);
		for (sz = 1; sz <= 6; sz++) {
			tiny_out(msgs[i].in, msgs[i].n, sz, &b);
			same(&a, &b, "out size", sz);
		}
	}
	for (i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		one_shot(table[i].in, table[i].inlen, &a);
		for (sz = 1; sz <= 4; sz++) {
			tiny_out(table[i].in, table[i].inlen, sz, &b);
			same(&a, &b, "table out size", i * 10 + sz);
		}
	}
}

static void
test_full_zero_out(void **state)
{
	struct smtp_data d;
	char out[16];
	size_t c, p;

	/* No room at all: nothing consumed, FULL. */
	smtp_data_init(&d);
	assert_int_equal(smtp_data_scan(&d, "abc", 3, out, 0, &c, &p),
	    SMTP_DATA_FULL);
	assert_int_equal(c, 0);
	assert_int_equal(p, 0);
	/* The held-back "." at the start of data needs no room. */
	smtp_data_init(&d);
	assert_int_equal(smtp_data_scan(&d, ".", 1, out, 0, &c, &p),
	    SMTP_DATA_MORE);
	assert_int_equal(c, 1);
	/* The terminator when out fills mid-way: FULL, then END with nothing
	 * more consumed. */
	assert_int_equal(smtp_data_scan(&d, "\r\nQUIT\r\n", 8, out, 1, &c,
	    &p), SMTP_DATA_FULL);
	assert_int_equal(c, 2);
	assert_int_equal(p, 1);
	assert_int_equal(out[0], '.');
	assert_int_equal(smtp_data_scan(&d, "QUIT\r\n", 6, out, sizeof(out),
	    &c, &p), SMTP_DATA_END);
	assert_int_equal(c, 0);
	assert_int_equal(p, 2);
	assert_memory_equal(out, "\r\n", 2);
	assert_int_equal(d.bytes_in, 3);
}

static void
test_after_end(void **state)
{
	struct smtp_data d;
	char out[64];
	size_t c, p;

	smtp_data_init(&d);
	assert_int_equal(smtp_data_scan(&d, S("x\r\n.\r\nRSET\r\n"), out,
	    sizeof(out), &c, &p), SMTP_DATA_END);
	assert_int_equal(c, 6);
	assert_int_equal(p, 6);
	assert_int_equal(d.bytes_in, 6);
	assert_int_equal(smtp_data_scan(&d, S("RSET\r\n"), out, sizeof(out),
	    &c, &p), SMTP_DATA_END);
	assert_int_equal(c, 0);
	assert_int_equal(p, 0);
	/* init starts a new message */
	smtp_data_init(&d);
	assert_int_equal(d.bytes_in, 0);
	assert_int_equal(smtp_data_scan(&d, S(".\r\n"), out, sizeof(out),
	    &c, &p), SMTP_DATA_END);
}

static void
test_counters_accumulate(void **state)
{
	struct smtp_data d;
	char out[64];
	size_t c, p;

	smtp_data_init(&d);
	assert_int_equal(smtp_data_scan(&d, S("a\nb\r"), out, sizeof(out),
	    &c, &p), SMTP_DATA_MORE);
	/* the CR is only known to be bare once 'c' arrives */
	assert_int_equal(d.bare_lf, 1);
	assert_int_equal(d.bare_cr, 0);
	assert_int_equal(smtp_data_scan(&d, S("c\n"), out, sizeof(out),
	    &c, &p), SMTP_DATA_MORE);
	assert_int_equal(d.bare_lf, 2);
	assert_int_equal(d.bare_cr, 1);
	assert_int_equal(d.bytes_in, 6);
}

/*
 * Reference: the same rules written with look-ahead over the whole input.
 * Stops where the rest of the input would be needed to decide.
 */
static size_t
reference(const char *in, size_t n, char *out, int *end, size_t *endpos)
{
	size_t i = 0, o = 0;
	int bol = 1;		/* 1 after a client CRLF, 2 after a bare one */

	*end = 0;
	while (i < n) {
		if (bol == 1 && in[i] == '.') {
			if (i + 1 >= n)
				break;
			if (in[i + 1] == '\r') {
				if (i + 2 >= n)
					break;
				if (in[i + 2] == '\n') {
					memcpy(out + o, ".\r\n", 3);
					o += 3;
					*end = 1;
					*endpos = i + 3;
					break;
				}
				memcpy(out + o, "..\r\n", 4);
				o += 4;
				i += 2;
				bol = 2;
				continue;
			}
			if (in[i + 1] == '\n') {
				memcpy(out + o, "..\r\n", 4);
				o += 4;
				i += 2;
				bol = 2;
				continue;
			}
			out[o++] = '.';
			i++;
			bol = 0;
			continue;
		}
		if (bol == 2 && in[i] == '.') {
			out[o++] = '.';
			out[o++] = '.';
			i++;
			bol = 0;
			continue;
		}
		if (in[i] == '\r' && i + 1 < n && in[i + 1] == '\n') {
			i += 2;
			bol = 1;
		} else if (in[i] == '\r' || in[i] == '\n') {
			i++;
			bol = 2;
		} else {
			out[o++] = in[i++];
			bol = 0;
			continue;
		}
		out[o++] = '\r';
		out[o++] = '\n';
	}
	return o;
}

static void
test_random_vs_reference(void **state)
{
	static const char alpha[] = "\r\n.a";
	char in[48], ref[4 * sizeof(in) + 8];
	struct result a, b;
	size_t n, k, rlen, endpos = 0;
	unsigned seed = 4242;
	int iter, end;

	for (iter = 0; iter < 50000; iter++) {
		seed = seed * 1103515245 + 12345;
		n = (seed >> 16) % sizeof(in);
		for (k = 0; k < n; k++) {
			seed = seed * 1103515245 + 12345;
			in[k] = alpha[(seed >> 16) & 3];
		}
		one_shot(in, n, &a);
		rlen = reference(in, n, ref, &end, &endpos);
		/* The reference stops where a trailing CR's LF is unknown
		 * and already wrote its CRLF, like the scanner. */
		if (a.len != rlen || memcmp(a.out, ref, rlen) != 0)
			fail_msg("iter %d: output differs from reference", iter);
		assert_int_equal(a.st == SMTP_DATA_END, end);
		if (end)
			assert_int_equal(a.consumed, endpos);
		else
			assert_int_equal(a.consumed, n);
		seed = seed * 1103515245 + 12345;
		k = n ? (seed >> 16) % (n + 1) : 0;
		pieces(in, n, &k, 1, &b);
		same(&a, &b, "random split", (size_t)iter);
	}
}

/* What the clean path takes, and what it leaves to the scanner. */
static void
test_clean_prefix(void **state)
{
	static const struct {
		const char *in;
		size_t inlen;
		size_t clean;
	} t[] = {
		{ S("abc\r\ndef\r\n"), 10 },
		{ S("abc\r\ndef\r\n.\r\n"), 10 },	/* the terminator */
		{ S("abc\r\n..x\r\n"), 5 },		/* stuffing */
		{ S(".\r\n"), 0 },
		{ S("abc\r\nde"), 7 },			/* a line's start */
		{ S("abc\r\nde\r"), 7 },		/* CR: LF or not? */
		{ S("abc\nd\r\n"), 0 },			/* bare LF */
		{ S("a\rb\r\n"), 0 },			/* bare CR */
		{ S("\r\n\r\nx"), 5 },
		{ S("\n"), 0 },
		{ S(""), 0 },
		{ S("a\0b\xff\r\n"), 6 },
		{ S("a.\r\nb .\r\n"), 9 },		/* dots mid-line */
	};
	struct smtp_data d;
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		smtp_data_init(&d);
		if (smtp_data_clean(&d, t[i].in, t[i].inlen) != t[i].clean)
			fail_msg("t[%zu]: clean %zu, expected %zu", i,
			    smtp_data_clean(&d, t[i].in, t[i].inlen),
			    t[i].clean);
		assert_int_equal(d.bytes_in, t[i].clean);
	}
	/* mid-line ("ab" seen), a dot is data; after a bare LF (the
	 * scanner's), the next line's dot is the scanner's to double */
	smtp_data_init(&d);
	assert_int_equal(smtp_data_clean(&d, S("ab")), 2);
	assert_int_equal(smtp_data_clean(&d, S(".c\r\n")), 4);
	smtp_data_init(&d);
	{
		char out[16];
		size_t c, p;

		assert_int_equal(smtp_data_scan(&d, S("x\n"), out, sizeof(out),
		    &c, &p), SMTP_DATA_MORE);
	}
	assert_int_equal(smtp_data_clean(&d, S(".y\r\n")), 0);
	assert_int_equal(smtp_data_clean(&d, S("y\r\n")), 3);
}

/* A sequence still owed to out (out filled in the middle of one): the
 * fast path takes nothing, whatever the state underneath says; the
 * scanner writes what is owed first, and nothing is lost */
static void
test_clean_owed(void **state)
{
	struct smtp_data d;
	char out[16];
	size_t c, p;

	smtp_data_init(&d);
	/* a bare LF made CRLF, one byte of room: the LF is owed */
	assert_int_equal(smtp_data_scan(&d, S("\n"), out, 1, &c, &p),
	    SMTP_DATA_FULL);
	assert_int_equal(c, 1);
	assert_int_equal(p, 1);
	assert_memory_equal(out, "\r", 1);
	assert_int_equal(smtp_data_clean(&d, S("b\r\n")), 0);
	assert_int_equal(smtp_data_scan(&d, S("b\r\n"), out, sizeof(out),
	    &c, &p), SMTP_DATA_MORE);
	assert_int_equal(c, 3);
	assert_int_equal(p, 4);
	assert_memory_equal(out, "\nb\r\n", 4);
}

static void
test_relay_table(void **state)
{
	struct result a, b;
	size_t i, k;

	for (i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		one_shot(table[i].in, table[i].inlen, &a);
		relay(table[i].in, table[i].inlen, NULL, 0, &b);
		same(&a, &b, "relay table", i);
		for (k = 0; k <= table[i].inlen; k++) {
			relay(table[i].in, table[i].inlen, &k, 1, &b);
			same(&a, &b, "relay table split", i * 1000 + k);
		}
	}
}

static void
test_relay_random(void **state)
{
	static const char alpha[] = "\r\n.aaaa\r\nbb";
	char in[200];
	struct result a, b;
	size_t n, k, cuts[2];
	unsigned seed = 777;
	int iter;

	for (iter = 0; iter < 50000; iter++) {
		seed = seed * 1103515245 + 12345;
		n = (seed >> 16) % sizeof(in);
		for (k = 0; k < n; k++) {
			seed = seed * 1103515245 + 12345;
			in[k] = alpha[(seed >> 16) % (sizeof(alpha) - 1)];
		}
		one_shot(in, n, &a);
		relay(in, n, NULL, 0, &b);
		same(&a, &b, "relay random", (size_t)iter);
		seed = seed * 1103515245 + 12345;
		cuts[0] = n ? (seed >> 16) % (n + 1) : 0;
		seed = seed * 1103515245 + 12345;
		cuts[1] = cuts[0] + (n - cuts[0] ? (seed >> 16) %
		    (n - cuts[0] + 1) : 0);
		relay(in, n, cuts, 2, &b);
		same(&a, &b, "relay random split", (size_t)iter);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_split_two),
		cmocka_unit_test(test_split_three),
		cmocka_unit_test(test_byte_by_byte),
		cmocka_unit_test(test_tiny_out),
		cmocka_unit_test(test_full_zero_out),
		cmocka_unit_test(test_after_end),
		cmocka_unit_test(test_counters_accumulate),
		cmocka_unit_test(test_random_vs_reference),
		cmocka_unit_test(test_clean_prefix),
		cmocka_unit_test(test_clean_owed),
		cmocka_unit_test(test_relay_table),
		cmocka_unit_test(test_relay_random),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
