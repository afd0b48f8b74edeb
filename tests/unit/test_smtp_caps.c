/*
 * test_smtp_caps.c - unit tests for the EHLO capability parser and filter
 * (smtp_caps_parse, smtp_caps_filter).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdlib.h>
#include <limits.h>
#include <string.h>
#include <cmocka.h>

#include "tlsproxy/smtp.h"

static struct smtp_reply ehlo, back;

/* Builds a reply from NULL-terminated lines given without "250-". */
static void
mkreply(struct smtp_reply *r, int code, const char *const *kw)
{
	char line[SMTP_LINE_MAX];
	size_t n;
	int i;

	smtp_reply_init(r);
	for (i = 0; kw[i] != NULL; i++) {
		n = strlen(kw[i]);
		assert_true(n + 4 <= sizeof(line));
		line[0] = '0' + code / 100;
		line[1] = '0' + code / 10 % 10;
		line[2] = '0' + code % 10;
		line[3] = kw[i + 1] != NULL ? '-' : ' ';
		memcpy(line + 4, kw[i], n);
		assert_int_equal(smtp_reply_feed(r, line, n + 4),
		    kw[i + 1] != NULL ? SMTP_REPLY_MORE : SMTP_REPLY_DONE);
	}
}

/*
 * Checks out[0..len) is a well-formed multi-line 250 reply: CRLF after every
 * line, "250-" on all but the last, "250 " on the last, nothing else; and
 * that the reply parser accepts it.  Returns the number of lines.
 */
static int
check_wellformed(const char *out, size_t len)
{
	const char *p = out, *end = out + len, *eol;
	int n = 0;

	assert_true(len >= 6);
	smtp_reply_init(&back);
	while (p < end) {
		eol = memchr(p, '\n', (size_t)(end - p));
		assert_non_null(eol);
		assert_true(eol - p >= 5);
		assert_int_equal(eol[-1], '\r');
		assert_null(memchr(p, '\r', (size_t)(eol - 1 - p)));
		assert_memory_equal(p, "250", 3);
		if (eol + 1 == end)
			assert_int_equal(p[3], ' ');
		else
			assert_int_equal(p[3], '-');
		assert_int_equal(smtp_reply_feed(&back, p, (size_t)(eol - 1 - p)),
		    eol + 1 == end ? SMTP_REPLY_DONE : SMTP_REPLY_MORE);
		n++;
		p = eol + 1;
	}
	return n;
}

/* Whether line text (without "250-") t is in the reply out. */
static int
has_line(const char *out, size_t len, const char *t)
{
	size_t n = strlen(t), i;

	for (i = 0; i + n + 6 <= len; i++)
		if ((i == 0 || out[i - 1] == '\n') &&
		    memcmp(out + i + 4, t, n) == 0 &&
		    memcmp(out + i + 4 + n, "\r\n", 2) == 0)
			return 1;
	return 0;
}

static const char *const full[] = {
	"mx.example.com Hello client [192.0.2.9]",
	"PIPELINING",
	"SIZE 35882577",
	"ETRN",
	"STARTTLS",
	"AUTH PLAIN LOGIN",
	"AUTH=PLAIN LOGIN",
	"ENHANCEDSTATUSCODES",
	"8BITMIME",
	"DSN",
	"SMTPUTF8",
	"CHUNKING",
	"BINARYMIME",
	"XCLIENT NAME ADDR PROTO HELO",
	"XFORWARD NAME ADDR",
	"VRFY",
	"DELIVERBY",
	"X-EXPS GSSAPI NTLM",
	NULL,
};

static void
test_parse_flags(void **state)
{
	struct smtp_caps c;

	mkreply(&ehlo, 250, full);
	smtp_caps_parse(&ehlo, &c);
	assert_int_equal(c.flags, SMTP_CAP_STARTTLS | SMTP_CAP_PIPELINING |
	    SMTP_CAP_SIZE | SMTP_CAP_8BITMIME | SMTP_CAP_SMTPUTF8 |
	    SMTP_CAP_CHUNKING | SMTP_CAP_AUTH | SMTP_CAP_DSN |
	    SMTP_CAP_ENHSTATUS);
	assert_int_equal(c.size, 35882577);
}

static void
test_parse_variants(void **state)
{
	static const char *const lower[] = { "mx", "starttls", "size 1000",
	    "pipelining", NULL };
	static const char *const nosize[] = { "mx", "SIZE", NULL };
	static const char *const zero[] = { "mx", "SIZE 0", NULL };
	static const char *const junk[] = { "mx", "SIZE lots", NULL };
	static const char *const huge[] = { "mx",
	    "SIZE 99999999999999999999999999999", NULL };
	static const char *const oldauth[] = { "mx", "AUTH=LOGIN", NULL };
	static const char *const only[] = { "mx.example.com", NULL };
	static const char *const greet[] = { "STARTTLS", "PIPELINING", NULL };
	static const char *const near[] = { "mx", "STARTTLSX", "SIZES 5",
	    "START TLS", NULL };
	struct smtp_caps c;

	mkreply(&ehlo, 250, lower);
	smtp_caps_parse(&ehlo, &c);
	assert_int_equal(c.flags, SMTP_CAP_STARTTLS | SMTP_CAP_SIZE |
	    SMTP_CAP_PIPELINING);
	assert_int_equal(c.size, 1000);

	mkreply(&ehlo, 250, nosize);
	smtp_caps_parse(&ehlo, &c);
	assert_int_equal(c.flags, SMTP_CAP_SIZE);
	assert_int_equal(c.size, 0);
	mkreply(&ehlo, 250, zero);
	smtp_caps_parse(&ehlo, &c);
	assert_int_equal(c.flags, SMTP_CAP_SIZE);
	assert_int_equal(c.size, 0);
	mkreply(&ehlo, 250, junk);
	smtp_caps_parse(&ehlo, &c);
	assert_int_equal(c.size, 0);
	mkreply(&ehlo, 250, huge);
	smtp_caps_parse(&ehlo, &c);
	assert_true(c.size > 1000000000UL);
	/* saturated, not wrapped round to some smaller limit */
	assert_true(c.size == ULONG_MAX);

	mkreply(&ehlo, 250, oldauth);
	smtp_caps_parse(&ehlo, &c);
	assert_int_equal(c.flags, SMTP_CAP_AUTH);

	mkreply(&ehlo, 250, only);
	smtp_caps_parse(&ehlo, &c);
	assert_int_equal(c.flags, 0);

	/* The first line is the greeting, never a keyword. */
	mkreply(&ehlo, 250, greet);
	smtp_caps_parse(&ehlo, &c);
	assert_int_equal(c.flags, SMTP_CAP_PIPELINING);

	mkreply(&ehlo, 250, near);
	smtp_caps_parse(&ehlo, &c);
	assert_int_equal(c.flags, 0);

	/* A refused EHLO has no capabilities. */
	mkreply(&ehlo, 502, lower);
	smtp_caps_parse(&ehlo, &c);
	assert_int_equal(c.flags, 0);
	assert_int_equal(c.size, 0);
}

static void
test_masked(void **state)
{
	static const char *const a[] = { "mx", "PIPELINING", "XXXXXXXA",
	    "8BITMIME", NULL };
	static const char *const b[] = { "mx", "XXXXXXXX", NULL };
	static const char *const c7[] = { "mx", "XXXXXXA", NULL };
	static const char *const c9[] = { "mx", "XXXXXXXXA", NULL };
	static const char *const d[] = { "mx", "XXXXXXAX", NULL };
	static const char *const e[] = { "mx", "XXXXXXXB", NULL };
	static const char *const lc[] = { "mx", "xXxxxxXa", NULL };
	static const char *const lc8[] = { "mx", "xxxxxxxx", NULL };
	struct smtp_caps c;
	char out[512];
	size_t n;

	mkreply(&ehlo, 250, a);
	smtp_caps_parse(&ehlo, &c);
	assert_int_equal(c.flags, SMTP_CAP_STARTTLS_MASKED |
	    SMTP_CAP_PIPELINING | SMTP_CAP_8BITMIME);
	n = smtp_caps_filter(&ehlo, 0, out, sizeof(out));
	assert_int_equal(check_wellformed(out, n), 3);
	assert_false(has_line(out, n, "XXXXXXXA"));
	assert_true(has_line(out, n, "8BITMIME"));

	mkreply(&ehlo, 250, b);
	smtp_caps_parse(&ehlo, &c);
	assert_int_equal(c.flags, SMTP_CAP_STARTTLS_MASKED);
	n = smtp_caps_filter(&ehlo, 0, out, sizeof(out));
	assert_int_equal(n, strlen("250 mx\r\n"));
	assert_memory_equal(out, "250 mx\r\n", n);

	/* the middlebox's X's in either case */
	mkreply(&ehlo, 250, lc);
	smtp_caps_parse(&ehlo, &c);
	assert_int_equal(c.flags, SMTP_CAP_STARTTLS_MASKED);
	mkreply(&ehlo, 250, lc8);
	smtp_caps_parse(&ehlo, &c);
	assert_int_equal(c.flags, SMTP_CAP_STARTTLS_MASKED);

	mkreply(&ehlo, 250, c7);
	smtp_caps_parse(&ehlo, &c);
	assert_int_equal(c.flags, 0);
	mkreply(&ehlo, 250, c9);
	smtp_caps_parse(&ehlo, &c);
	assert_int_equal(c.flags, 0);
	mkreply(&ehlo, 250, d);
	smtp_caps_parse(&ehlo, &c);
	assert_int_equal(c.flags, 0);
	mkreply(&ehlo, 250, e);
	smtp_caps_parse(&ehlo, &c);
	assert_int_equal(c.flags, 0);
}

static void
test_filter_drops(void **state)
{
	static const char want[] =
	    "250-mx.example.com Hello client [192.0.2.9]\r\n"
	    "250-PIPELINING\r\n"
	    "250-SIZE\r\n"
	    "250-ENHANCEDSTATUSCODES\r\n"
	    "250-8BITMIME\r\n"
	    "250-DSN\r\n"
	    "250 SMTPUTF8\r\n";
	char out[1024];
	size_t n;

	mkreply(&ehlo, 250, full);
	n = smtp_caps_filter(&ehlo, 0, out, sizeof(out));
	assert_int_equal(n, sizeof(want) - 1);
	assert_memory_equal(out, want, n);
	assert_int_equal(check_wellformed(out, n), 7);
	assert_false(has_line(out, n, "STARTTLS"));
	assert_false(has_line(out, n, "CHUNKING"));
	assert_false(has_line(out, n, "BINARYMIME"));
	assert_false(has_line(out, n, "AUTH PLAIN LOGIN"));
	assert_false(has_line(out, n, "XCLIENT NAME ADDR PROTO HELO"));
	assert_false(has_line(out, n, "ETRN"));
}

static void
test_filter_starttls(void **state)
{
	static const char want[] =
	    "250-mx.example.com Hello client [192.0.2.9]\r\n"
	    "250-PIPELINING\r\n"
	    "250-SIZE\r\n"
	    "250-STARTTLS\r\n"
	    "250-ENHANCEDSTATUSCODES\r\n"
	    "250-8BITMIME\r\n"
	    "250-DSN\r\n"
	    "250 SMTPUTF8\r\n";
	static const char *const notls[] = { "mx", "PIPELINING", "XXXXXXXA",
	    NULL };
	static const char *const twice[] = { "mx", "starttls", "STARTTLS",
	    "DSN", NULL };
	char out[1024];
	size_t n;

	mkreply(&ehlo, 250, full);
	n = smtp_caps_filter(&ehlo, 1, out, sizeof(out));
	assert_int_equal(n, sizeof(want) - 1);
	assert_memory_equal(out, want, n);
	assert_int_equal(check_wellformed(out, n), 8);

	/* Our STARTTLS is the client leg's: offered even when the upstream's
	 * was absent or masked. */
	mkreply(&ehlo, 250, notls);
	n = smtp_caps_filter(&ehlo, 1, out, sizeof(out));
	assert_int_equal(check_wellformed(out, n), 3);
	assert_memory_equal(out, "250-mx\r\n250-PIPELINING\r\n250 STARTTLS\r\n",
	    n);

	/* ... and only once. */
	mkreply(&ehlo, 250, twice);
	n = smtp_caps_filter(&ehlo, 1, out, sizeof(out));
	assert_memory_equal(out, "250-mx\r\n250-STARTTLS\r\n250 DSN\r\n", n);
	assert_int_equal(n, strlen("250-mx\r\n250-STARTTLS\r\n250 DSN\r\n"));
	n = smtp_caps_filter(&ehlo, 0, out, sizeof(out));
	assert_memory_equal(out, "250-mx\r\n250 DSN\r\n", n);
}

static void
test_filter_single_line(void **state)
{
	static const char *const one[] = { "mx.example.com ESMTP", NULL };
	static const char *const last_dropped[] = { "mx", "SIZE 10", "AUTH X",
	    NULL };
	char out[256];
	size_t n;

	mkreply(&ehlo, 250, one);
	n = smtp_caps_filter(&ehlo, 0, out, sizeof(out));
	assert_int_equal(n, strlen("250 mx.example.com ESMTP\r\n"));
	assert_memory_equal(out, "250 mx.example.com ESMTP\r\n", n);
	assert_int_equal(check_wellformed(out, n), 1);

	n = smtp_caps_filter(&ehlo, 1, out, sizeof(out));
	assert_int_equal(check_wellformed(out, n), 2);
	assert_memory_equal(out, "250-mx.example.com ESMTP\r\n250 STARTTLS\r\n",
	    n);

	/* The upstream's last line dropped: the new last line gets "250 ". */
	mkreply(&ehlo, 250, last_dropped);
	n = smtp_caps_filter(&ehlo, 0, out, sizeof(out));
	assert_int_equal(check_wellformed(out, n), 2);
	assert_memory_equal(out, "250-mx\r\n250 SIZE\r\n", n);
}

/*
 * SIZE goes to the client without its limit.  The client reads the
 * cleartext EHLO, which an attacker on the path writes, and an MTA that
 * sees a limit below its message bounces it there and then (Postfix:
 * "message size ... exceeds size limit ... of server", 5.3.4), a
 * permanent failure of mail whose policy demands authenticated TLS.
 * The server's own limit, inside TLS, still refuses such a message at
 * the replayed MAIL FROM (its SIZE= parameter).
 */
static void
test_filter_size_without_limit(void **state)
{
	static const char *const small[] = { "mx", "SIZE 1", "PIPELINING",
	    NULL };
	static const char *const lower[] = { "mx", "size 1000", NULL };
	static const char *const bare[] = { "mx", "SIZE", NULL };
	char out[256];
	size_t n;

	mkreply(&ehlo, 250, small);
	n = smtp_caps_filter(&ehlo, 0, out, sizeof(out));
	assert_int_equal(check_wellformed(out, n), 3);
	assert_memory_equal(out, "250-mx\r\n250-SIZE\r\n250 PIPELINING\r\n",
	    n);
	assert_int_equal(n, strlen("250-mx\r\n250-SIZE\r\n"
	    "250 PIPELINING\r\n"));

	mkreply(&ehlo, 250, lower);
	n = smtp_caps_filter(&ehlo, 0, out, sizeof(out));
	assert_int_equal(n, strlen("250-mx\r\n250 size\r\n"));
	assert_memory_equal(out, "250-mx\r\n250 size\r\n", n);

	mkreply(&ehlo, 250, bare);
	n = smtp_caps_filter(&ehlo, 0, out, sizeof(out));
	assert_int_equal(n, strlen("250-mx\r\n250 SIZE\r\n"));
	assert_memory_equal(out, "250-mx\r\n250 SIZE\r\n", n);
}

static void
test_filter_small_out(void **state)
{
	char out[1024], out2[1024];
	size_t n, m, sz;

	mkreply(&ehlo, 250, full);
	n = smtp_caps_filter(&ehlo, 1, out, sizeof(out));
	assert_true(n > 0);
	/* Exactly enough space works, anything less gives 0. */
	assert_int_equal(smtp_caps_filter(&ehlo, 1, out2, n), n);
	assert_memory_equal(out, out2, n);
	for (sz = 0; sz < n; sz++) {
		memset(out2, 'Q', sizeof(out2));
		m = smtp_caps_filter(&ehlo, 1, out2, sz);
		assert_int_equal(m, 0);
		/* and nothing was written past sz */
		assert_int_equal(out2[sz], 'Q');
	}
	/* An empty reply gives 0 too. */
	smtp_reply_init(&ehlo);
	assert_int_equal(smtp_caps_filter(&ehlo, 1, out, sizeof(out)), 0);
}

static void
test_filter_big(void **state)
{
	/* The largest reply the parser takes still fits 2 * SMTP_REPLY_MAX. */
	static char out[2 * SMTP_REPLY_MAX];
	char line[SMTP_LINE_MAX];
	size_t n;
	int i;

	smtp_reply_init(&ehlo);
	memset(line, 'a', sizeof(line));
	memcpy(line, "250-SIZE ", 9);
	for (i = 0; i < 7; i++)
		assert_int_equal(smtp_reply_feed(&ehlo, line, sizeof(line)),
		    SMTP_REPLY_MORE);
	assert_int_equal(smtp_reply_feed(&ehlo, "250 DSN", 7),
	    SMTP_REPLY_DONE);
	n = smtp_caps_filter(&ehlo, 1, out, sizeof(out));
	assert_int_equal(check_wellformed(out, n), 9);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_flags),
		cmocka_unit_test(test_parse_variants),
		cmocka_unit_test(test_masked),
		cmocka_unit_test(test_filter_drops),
		cmocka_unit_test(test_filter_starttls),
		cmocka_unit_test(test_filter_single_line),
		cmocka_unit_test(test_filter_size_without_limit),
		cmocka_unit_test(test_filter_small_out),
		cmocka_unit_test(test_filter_big),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
