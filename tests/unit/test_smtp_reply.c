/*
 * test_smtp_reply.c - unit tests for the SMTP reply parser
 * (smtp_reply_feed, smtp_reply_text, smtp_reply_enhanced).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "tlsproxy/smtp.h"

static struct smtp_reply rep;

static enum smtp_reply_status
feed(struct smtp_reply *r, const char *s)
{
	return smtp_reply_feed(r, s, strlen(s));
}

/* Feeds NULL-terminated lines; every one but the last must say MORE. */
static enum smtp_reply_status
feed_all(struct smtp_reply *r, const char *const *lines)
{
	enum smtp_reply_status st = SMTP_REPLY_BAD;
	int i;

	smtp_reply_init(r);
	for (i = 0; lines[i] != NULL; i++) {
		st = feed(r, lines[i]);
		if (lines[i + 1] != NULL && st != SMTP_REPLY_MORE)
			return st;
	}
	return st;
}

static void
assert_text(const struct smtp_reply *r, int i, const char *want)
{
	const char *t;
	size_t n;

	t = smtp_reply_text(r, i, &n);
	assert_non_null(t);
	assert_int_equal(n, strlen(want));
	assert_memory_equal(t, want, n);
}

static void
test_single_line(void **state)
{
	const char *s = "220 mx.example.com ESMTP ready";

	smtp_reply_init(&rep);
	assert_int_equal(feed(&rep, s), SMTP_REPLY_DONE);
	assert_int_equal(rep.code, 220);
	assert_int_equal(rep.nlines, 1);
	assert_null(rep.err);
	assert_int_equal(rep.len, strlen(s) + 2);
	assert_memory_equal(rep.buf, "220 mx.example.com ESMTP ready\r\n",
	    rep.len);
	assert_text(&rep, 0, "mx.example.com ESMTP ready");
}

static void
test_multi_line(void **state)
{
	static const char want[] =
	    "250-mx.example.com\r\n250-PIPELINING\r\n250 SIZE 1000\r\n";

	smtp_reply_init(&rep);
	assert_int_equal(feed(&rep, "250-mx.example.com"), SMTP_REPLY_MORE);
	assert_int_equal(feed(&rep, "250-PIPELINING"), SMTP_REPLY_MORE);
	assert_int_equal(feed(&rep, "250 SIZE 1000"), SMTP_REPLY_DONE);
	assert_int_equal(rep.code, 250);
	assert_int_equal(rep.nlines, 3);
	assert_int_equal(rep.len, sizeof(want) - 1);
	assert_memory_equal(rep.buf, want, rep.len);
	assert_text(&rep, 0, "mx.example.com");
	assert_text(&rep, 1, "PIPELINING");
	assert_text(&rep, 2, "SIZE 1000");
}

static void
test_no_text(void **state)
{
	smtp_reply_init(&rep);
	assert_int_equal(feed(&rep, "250"), SMTP_REPLY_DONE);
	assert_int_equal(rep.code, 250);
	assert_memory_equal(rep.buf, "250\r\n", 5);
	assert_int_equal(rep.len, 5);
	assert_text(&rep, 0, "");

	/* Empty continuation line, then a bare code ends the reply. */
	smtp_reply_init(&rep);
	assert_int_equal(feed(&rep, "250-"), SMTP_REPLY_MORE);
	assert_int_equal(feed(&rep, "250 "), SMTP_REPLY_DONE);
	assert_text(&rep, 0, "");
	assert_text(&rep, 1, "");

	smtp_reply_init(&rep);
	assert_int_equal(feed(&rep, "354-x"), SMTP_REPLY_MORE);
	assert_int_equal(feed(&rep, "354"), SMTP_REPLY_DONE);
	assert_int_equal(rep.nlines, 2);
	assert_memory_equal(rep.buf, "354-x\r\n354\r\n", rep.len);
	/* a bare code ends the reply: a line after it is no part of it */
	assert_int_equal(feed(&rep, "354 y"), SMTP_REPLY_BAD);
	smtp_reply_init(&rep);
	assert_int_equal(feed(&rep, "250"), SMTP_REPLY_DONE);
	assert_int_equal(feed(&rep, "250 x"), SMTP_REPLY_BAD);
}

/* The line is the range given, not up to a NUL: the bytes after it (the
 * splitter's buffer) are not read as its separator or its code */
static void
test_bounded_line(void **state)
{
	smtp_reply_init(&rep);
	assert_int_equal(smtp_reply_feed(&rep, "250-more", 3),
	    SMTP_REPLY_DONE);
	assert_int_equal(rep.nlines, 1);
	assert_text(&rep, 0, "");
	smtp_reply_init(&rep);
	assert_int_equal(smtp_reply_feed(&rep, "250 ok", 2), SMTP_REPLY_BAD);
	assert_non_null(rep.err);
}

static void
test_bad_codes(void **state)
{
	static const char *const bad[] = {
		"100 x", "199 x", "099 x", "600 x", "699 x", "999", "000",
		"25", "2", "", "25 x", "2500 x", "2500", "abc x", "2a0 x",
		"25a", " 250 x", "-250 x", "250x", "x250 ok",
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		smtp_reply_init(&rep);
		if (feed(&rep, bad[i]) != SMTP_REPLY_BAD)
			fail_msg("accepted \"%s\"", bad[i]);
		assert_non_null(rep.err);
	}
	/* Bounds of the accepted range. */
	smtp_reply_init(&rep);
	assert_int_equal(feed(&rep, "200 a"), SMTP_REPLY_DONE);
	smtp_reply_init(&rep);
	assert_int_equal(feed(&rep, "599 a"), SMTP_REPLY_DONE);
}

static void
test_mixed_codes(void **state)
{
	static const char *const l1[] = { "250-a", "251 b", NULL };
	static const char *const l2[] = { "250-a", "250-b", "550 c", NULL };
	static const char *const l3[] = { "450-a", "451-b", NULL };

	assert_int_equal(feed_all(&rep, l1), SMTP_REPLY_BAD);
	assert_non_null(rep.err);
	assert_int_equal(feed_all(&rep, l2), SMTP_REPLY_BAD);
	assert_int_equal(feed_all(&rep, l3), SMTP_REPLY_BAD);
}

static void
test_bad_separator(void **state)
{
	static const char *const bad[] = {
		"250_x", "250\tx", "250:x", "250.x", "250+x", "250=", "250\x80",
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		smtp_reply_init(&rep);
		if (feed(&rep, bad[i]) != SMTP_REPLY_BAD)
			fail_msg("accepted \"%s\"", bad[i]);
	}
}

static void
test_long_line(void **state)
{
	char line[SMTP_LINE_MAX + 2];

	memset(line, 'a', sizeof(line));
	memcpy(line, "250 ", 4);
	smtp_reply_init(&rep);
	assert_int_equal(smtp_reply_feed(&rep, line, SMTP_LINE_MAX),
	    SMTP_REPLY_DONE);
	assert_int_equal(rep.len, SMTP_LINE_MAX + 2);
	smtp_reply_init(&rep);
	assert_int_equal(smtp_reply_feed(&rep, line, SMTP_LINE_MAX + 1),
	    SMTP_REPLY_BAD);
	assert_non_null(rep.err);
	/* A long continuation line in the middle, too. */
	line[3] = '-';
	smtp_reply_init(&rep);
	assert_int_equal(feed(&rep, "250-a"), SMTP_REPLY_MORE);
	assert_int_equal(smtp_reply_feed(&rep, line, SMTP_LINE_MAX + 2),
	    SMTP_REPLY_BAD);
}

static void
test_too_many_lines(void **state)
{
	int i;

	smtp_reply_init(&rep);
	for (i = 0; i < SMTP_REPLY_MAX_LINES - 1; i++)
		assert_int_equal(feed(&rep, "250-x"), SMTP_REPLY_MORE);
	assert_int_equal(feed(&rep, "250 x"), SMTP_REPLY_DONE);
	assert_int_equal(rep.nlines, SMTP_REPLY_MAX_LINES);

	smtp_reply_init(&rep);
	for (i = 0; i < SMTP_REPLY_MAX_LINES; i++)
		assert_int_equal(feed(&rep, "250-x"), SMTP_REPLY_MORE);
	assert_int_equal(feed(&rep, "250 x"), SMTP_REPLY_BAD);
	assert_non_null(rep.err);
	assert_int_equal(rep.nlines, SMTP_REPLY_MAX_LINES);
}

static void
test_total_size(void **state)
{
	char line[2000];
	size_t used = 0;
	int i, fits = SMTP_REPLY_MAX / (sizeof(line) + 2);

	memset(line, 'b', sizeof(line));
	memcpy(line, "250-", 4);
	smtp_reply_init(&rep);
	for (i = 0; i < fits; i++) {
		assert_int_equal(smtp_reply_feed(&rep, line, sizeof(line)),
		    SMTP_REPLY_MORE);
		used += sizeof(line) + 2;
	}
	assert_int_equal(rep.len, used);
	assert_true(used + sizeof(line) + 2 > SMTP_REPLY_MAX);
	assert_int_equal(smtp_reply_feed(&rep, line, sizeof(line)),
	    SMTP_REPLY_BAD);
	assert_non_null(rep.err);
	assert_int_equal(rep.len, used);
}

static void
test_exact_fill(void **state)
{
	char line[SMTP_LINE_MAX];
	size_t rest;

	memset(line, 'c', sizeof(line));
	memcpy(line, "250-", 4);
	smtp_reply_init(&rep);
	while (SMTP_REPLY_MAX - rep.len > SMTP_LINE_MAX + 2)
		assert_int_equal(smtp_reply_feed(&rep, line, SMTP_LINE_MAX),
		    SMTP_REPLY_MORE);
	rest = SMTP_REPLY_MAX - rep.len - 2;
	assert_true(rest >= 4);
	line[3] = ' ';
	assert_int_equal(smtp_reply_feed(&rep, line, rest), SMTP_REPLY_DONE);
	assert_int_equal(rep.len, SMTP_REPLY_MAX);
	assert_memory_equal(rep.buf + SMTP_REPLY_MAX - 2, "\r\n", 2);

	/* one byte more does not fit: refused, nothing written past buf */
	line[3] = '-';
	smtp_reply_init(&rep);
	while (SMTP_REPLY_MAX - rep.len > SMTP_LINE_MAX + 2)
		assert_int_equal(smtp_reply_feed(&rep, line, SMTP_LINE_MAX),
		    SMTP_REPLY_MORE);
	line[3] = ' ';
	assert_int_equal(smtp_reply_feed(&rep, line, rest + 1),
	    SMTP_REPLY_BAD);
	assert_int_equal(rep.len, SMTP_REPLY_MAX - rest - 2);
}

static void
test_nul_cr_lf(void **state)
{
	smtp_reply_init(&rep);
	assert_int_equal(smtp_reply_feed(&rep, "250 a\0b", 7), SMTP_REPLY_BAD);
	smtp_reply_init(&rep);
	assert_int_equal(smtp_reply_feed(&rep, "250 ab\0", 7), SMTP_REPLY_BAD);
	smtp_reply_init(&rep);
	assert_int_equal(smtp_reply_feed(&rep, "25\0 ab", 6), SMTP_REPLY_BAD);
	smtp_reply_init(&rep);
	assert_int_equal(feed(&rep, "250 a\r250 b"), SMTP_REPLY_BAD);
	smtp_reply_init(&rep);
	assert_int_equal(feed(&rep, "250-a\n250 b"), SMTP_REPLY_BAD);
	smtp_reply_init(&rep);
	assert_int_equal(feed(&rep, "250 ok\r"), SMTP_REPLY_BAD);
}

static void
test_garbage(void **state)
{
	static const char *const bad[] = {
		"HTTP/1.1 400 Bad Request", "<html>", "\x16\x03\x01\x02\x00",
		"SSH-2.0-OpenSSH_9.2", "+OK POP3", "* OK IMAP",
	};
	unsigned char buf[64];
	size_t i, j;
	unsigned seed = 12345;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		smtp_reply_init(&rep);
		assert_int_equal(feed(&rep, bad[i]), SMTP_REPLY_BAD);
	}
	/* Random bytes: whatever happens, the struct stays consistent. */
	for (i = 0; i < 2000; i++) {
		enum smtp_reply_status st;

		for (j = 0; j < sizeof(buf); j++) {
			seed = seed * 1103515245 + 12345;
			buf[j] = (unsigned char)(seed >> 16);
		}
		smtp_reply_init(&rep);
		st = smtp_reply_feed(&rep, (char *)buf, i % sizeof(buf));
		if (st == SMTP_REPLY_BAD)
			assert_non_null(rep.err);
		else
			assert_true(rep.code >= 200 && rep.code <= 599);
		assert_true(rep.len <= SMTP_REPLY_MAX);
	}
}

static void
test_sticky(void **state)
{
	/* After the last line, more is an error; after an error, too. */
	smtp_reply_init(&rep);
	assert_int_equal(feed(&rep, "250 ok"), SMTP_REPLY_DONE);
	assert_int_equal(feed(&rep, "250 ok"), SMTP_REPLY_BAD);
	assert_non_null(rep.err);
	assert_int_equal(rep.nlines, 1);

	smtp_reply_init(&rep);
	assert_int_equal(feed(&rep, "250 "), SMTP_REPLY_DONE);
	assert_int_equal(feed(&rep, "250-x"), SMTP_REPLY_BAD);

	smtp_reply_init(&rep);
	assert_int_equal(feed(&rep, "250-a"), SMTP_REPLY_MORE);
	assert_int_equal(feed(&rep, "xyz"), SMTP_REPLY_BAD);
	assert_int_equal(feed(&rep, "250 ok"), SMTP_REPLY_BAD);

	/* init makes it usable again */
	smtp_reply_init(&rep);
	assert_null(rep.err);
	assert_int_equal(feed(&rep, "221 bye"), SMTP_REPLY_DONE);
}

static void
test_text(void **state)
{
	size_t n = 99;

	smtp_reply_init(&rep);
	assert_null(smtp_reply_text(&rep, 0, &n));
	assert_int_equal(n, 0);
	assert_int_equal(feed(&rep, "550-5.7.1 first"), SMTP_REPLY_MORE);
	assert_int_equal(feed(&rep, "550 5.7.1 second line"), SMTP_REPLY_DONE);
	assert_text(&rep, 0, "5.7.1 first");
	assert_text(&rep, 1, "5.7.1 second line");
	n = 99;
	assert_null(smtp_reply_text(&rep, 2, &n));
	assert_int_equal(n, 0);
	assert_null(smtp_reply_text(&rep, -1, &n));
}

static void
check_enh(const char *const *lines, const char *want)
{
	char out[12];

	memset(out, 'Z', sizeof(out));
	smtp_reply_init(&rep);
	assert_int_equal(feed_all(&rep, lines), SMTP_REPLY_DONE);
	smtp_reply_enhanced(&rep, out, sizeof(out));
	assert_string_equal(out, want);
}

static void
test_enhanced(void **state)
{
	static const char *const a[] = { "250 2.1.0 Ok", NULL };
	static const char *const b[] = { "550-5.7.1 one", "550 5.7.1 Denied",
	    NULL };
	static const char *const c[] = { "250 Ok", NULL };
	static const char *const d[] = { "451 4.7.1", NULL };
	static const char *const e[] = { "250 2.1.0Ok", NULL };
	static const char *const f[] = { "550 4.7.1 class mismatch", NULL };
	static const char *const g[] = { "250 2.1234.0 x", NULL };
	static const char *const h[] = { "550 5.123.456 max", NULL };
	static const char *const i[] = { "550-5.1.1 first only", "550 nope",
	    NULL };
	static const char *const j[] = { "250 2..0 x", NULL };
	static const char *const k[] = { "354 3.0.0 go", NULL };
	static const char *const l[] = { "250", NULL };
	static const char *const m[] = { "250 2.0", NULL };
	static const char *const n[] = { "421 4.4.2. timeout", NULL };
	char out[12];

	check_enh(a, "2.1.0");
	check_enh(b, "5.7.1");
	check_enh(c, "");
	check_enh(d, "4.7.1");
	check_enh(e, "");
	check_enh(f, "");
	check_enh(g, "");
	check_enh(h, "5.123.456");
	check_enh(i, "");
	check_enh(j, "");
	check_enh(k, "");
	check_enh(l, "");
	check_enh(m, "");
	check_enh(n, "");

	/* Too small an out buffer yields "", never a truncated code. */
	smtp_reply_init(&rep);
	assert_int_equal(feed(&rep, "550 5.123.456 max"), SMTP_REPLY_DONE);
	memset(out, 'Z', sizeof(out));
	smtp_reply_enhanced(&rep, out, 9);
	assert_string_equal(out, "");
	smtp_reply_enhanced(&rep, out, 10);
	assert_string_equal(out, "5.123.456");
	/* Nothing fed yet. */
	smtp_reply_init(&rep);
	memset(out, 'Z', sizeof(out));
	smtp_reply_enhanced(&rep, out, sizeof(out));
	assert_string_equal(out, "");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_single_line),
		cmocka_unit_test(test_multi_line),
		cmocka_unit_test(test_no_text),
		cmocka_unit_test(test_bounded_line),
		cmocka_unit_test(test_bad_codes),
		cmocka_unit_test(test_mixed_codes),
		cmocka_unit_test(test_bad_separator),
		cmocka_unit_test(test_long_line),
		cmocka_unit_test(test_too_many_lines),
		cmocka_unit_test(test_total_size),
		cmocka_unit_test(test_exact_fill),
		cmocka_unit_test(test_nul_cr_lf),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_sticky),
		cmocka_unit_test(test_text),
		cmocka_unit_test(test_enhanced),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
