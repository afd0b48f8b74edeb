/*
 * test_sts_parse.c - MTA-STS TXT record parser, policy parser (a table of
 * good and bad policies), MX pattern matcher, domain normalisation.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "policy/sts.h"

struct txt_case {
	const char	*txt;
	int		 want;		/* 1 valid, 0 not STS, -1 malformed */
	const char	*id;
	unsigned	 fix;		/* the STS_LENIENT_TXT_* bits */
};

static const struct txt_case txt_cases[] = {
	{ "v=STSv1; id=20160831085700Z;", 1, "20160831085700Z", 0 },
	{ "v=STSv1; id=20160831085700Z", 1, "20160831085700Z", 0 },
	{ "v=STSv1;id=abc", 1, "abc", 0 },
	{ "v=STSv1 ; id=abc ;", 1, "abc", 0 },
	{ "v=STSv1;\tid=abc;\t", 1, "abc", 0 },
	{ "v=STSv1; id=abc; ext=foo", 1, "abc", 0 },
	{ "v=STSv1; ext_1.x-y=v; id=Z9", 1, "Z9", 0 },
	{ "v=STSv1; id=12345678901234567890123456789012", 1,
	    "12345678901234567890123456789012", 0 },
	{ "v=STSv1; id=123456789012345678901234567890123", -1, NULL, 0 },
	{ "v=STSv1; id=abc/def", -1, NULL, 0 },
	{ "v=STSv1; id=abc:def", -1, NULL, 0 },
	{ "v=STSv1; id=2024-01-01+1", -1, NULL, 0 },
	{ "v=STSv1; id=2024-01-01-0123456789-0123456789", 1,
	    "2024-01-01-0123456789-0123456789", STS_LENIENT_TXT_ID_CHARS },
	{ "v=STSv1; id=2024-01-01-0123456789-0123456789x", -1, NULL, 0 },
	{ "v=STSv1; id=", -1, NULL, 0 },
	{ "v=STSv1;", -1, NULL, 0 },
	/* no ';' after the version: not an STS record (section 3.1) */
	{ "v=STSv1", 0, NULL, 0 },
	{ "v=STSv1 \t", 0, NULL, 0 },
	{ "v=STSv1; id=a; id=b", -1, NULL, 0 },
	/* an extension's name of 32 characters, of 33; a value holding '='
	 * or DEL (sts-ext-value) */
	{ "v=STSv1; id=abc; a2345678901234567890123456789012=x", 1, "abc", 0 },
	{ "v=STSv1; id=abc; a23456789012345678901234567890123=x", -1, NULL, 0 },
	{ "v=STSv1; id=abc; ext=a=b", -1, NULL, 0 },
	{ "v=STSv1; id=abc; ext=a\x7f", -1, NULL, 0 },
	/* two ids, one the other's prefix: still two ids */
	{ "v=STSv1; id=abc; id=ab", -1, NULL, 0 },
	{ "v=STSv1; id=ab; id=abc", -1, NULL, 0 },
	{ "v=STSv1; ID=a; Id=b", -1, NULL, 0 },
	{ "v=STSv1; ID=a/b", -1, NULL, 0 },
	{ "v=STSv1; id = a b", -1, NULL, 0 },
	{ "v=STSv1; id =", -1, NULL, 0 },
	{ "v=STSv1; id = ;", -1, NULL, 0 },
	{ "v=STSv1 id=abc", 0, NULL, 0 },
	{ "v=STSv1; id=a b", -1, NULL, 0 },
	{ "v=STSv1; =x; id=a", -1, NULL, 0 },
	/* accepted outside the ABNF (docs/policy.md's table) */
	{ "v=STSv1; ID=abc", 1, "abc", STS_LENIENT_TXT_KEY_CASE },
	{ "v=STSv1; id = abc;", 1, "abc", STS_LENIENT_TXT_EQ_WSP },
	{ "v=STSv1;id\t=abc", 1, "abc", STS_LENIENT_TXT_EQ_WSP },
	{ "v=STSv1; id= abc; ext = x", 1, "abc", STS_LENIENT_TXT_EQ_WSP },
	{ "v=STSv1; id=abc; id=abc", 1, "abc", STS_LENIENT_TXT_REPEAT },
	{ "v=STSv1; ID=abc; Id=abc", 1, "abc", STS_LENIENT_TXT_KEY_CASE |
	    STS_LENIENT_TXT_REPEAT },
	/* with an "id=", "ID=" is an extension, as the ABNF reads it */
	{ "v=STSv1; id=a; ID=b", 1, "a", 0 },
	{ "v=STSv1; ID=a/b; id = a", 1, "a", STS_LENIENT_TXT_EQ_WSP },
	/* an id with the separators of a date */
	{ "v=STSv1; id=2024-01-01_v2.x", 1, "2024-01-01_v2.x",
	    STS_LENIENT_TXT_ID_CHARS },
	{ "v=STSv10; id=abc", 0, NULL, 0 },
	{ "v=spf1 -all", 0, NULL, 0 },
	{ "V=STSv1; id=abc", 0, NULL, 0 },
	{ " v=STSv1; id=abc", 0, NULL, 0 },
	{ "", 0, NULL, 0 },
};

static void
test_txt_table(void **state)
{
	size_t i;
	char id[STS_ID_MAX + 1], err[128];

	for (i = 0; i < sizeof(txt_cases) / sizeof(txt_cases[0]); i++) {
		const struct txt_case *c = &txt_cases[i];
		unsigned fix;
		int r = sts_txt_parse(c->txt, strlen(c->txt), id, &fix, err,
		    sizeof(err));

		if (r != c->want)
			fail_msg("TXT \"%s\": got %d want %d (%s)", c->txt, r,
			    c->want, err);
		if (c->id != NULL)
			assert_string_equal(id, c->id);
		if (fix != c->fix)
			fail_msg("TXT \"%s\": lenient 0x%x want 0x%x", c->txt,
			    fix, c->fix);
	}
}

static void
test_txt_nul(void **state)
{
	char id[STS_ID_MAX + 1], err[128];
	const char t[] = "v=STSv1; id=ab\0c";

	assert_int_equal(sts_txt_parse(t, sizeof(t) - 1, id, NULL, err,
	    sizeof(err)), -1);
}

/* the record is the range given, not up to a NUL: "v=STSv1;id=1" cut
 * after its version has no ';', no STS record */
static void
test_txt_bounded(void **state)
{
	char id[STS_ID_MAX + 1], err[128];
	const char t[] = "v=STSv1;id=1";

	assert_int_equal(sts_txt_parse(t, 7, id, NULL, err, sizeof(err)), 0);
	assert_int_equal(sts_txt_parse(t, 8, id, NULL, err, sizeof(err)), -1);
	assert_int_equal(sts_txt_parse(t, sizeof(t) - 1, id, NULL, err,
	    sizeof(err)), 1);
	assert_string_equal(id, "1");
	/* a field cut before its '=', in a buffer of exactly its bytes:
	 * nothing past them is read (ASan's to see) */
	{
		char *b = malloc(10);

		assert_non_null(b);
		memcpy(b, "v=STSv1;id", 10);
		assert_int_equal(sts_txt_parse(b, 10, id, NULL, err,
		    sizeof(err)), -1);
		free(b);
	}
}

static void
test_txt_select(void **state)
{
	char id[STS_ID_MAX + 1], err[128];
	const char *one[] = { "v=spf1 -all", "v=STSv1; id=x1" };
	const char *two[] = { "v=STSv1; id=x1", "v=STSv1; id=x2" };
	const char *bad[] = { "v=STSv1; id=x/1", "foo" };
	const char *none[] = { "foo", "bar" };
	size_t l1[] = { 11, 14 }, l2[] = { 14, 14 }, lb[] = { 15, 3 },
	    ln[] = { 3, 3 };

	assert_int_equal(sts_txt_select(one, l1, 2, id, NULL, err,
	    sizeof(err)), 1);
	assert_string_equal(id, "x1");
	/* the one record's lenient bits; a record that is no STSv1 one
	 * (v=spf1) does not count */
	{
		const char *lax[] = { "v=spf1 -all", "v=STSv1; ID = x1" };
		const char *twolax[] = { "v=STSv1; id=x1", "v=STSv1; ID = x1" };
		size_t ll[] = { 11, 16 }, l2l[] = { 14, 16 };
		unsigned fix = 99;

		assert_int_equal(sts_txt_select(lax, ll, 2, id, &fix, err,
		    sizeof(err)), 1);
		assert_string_equal(id, "x1");
		assert_int_equal(fix, STS_LENIENT_TXT_KEY_CASE |
		    STS_LENIENT_TXT_EQ_WSP);
		/* two records, even of the same id: none (section 3.1) */
		assert_int_equal(sts_txt_select(twolax, l2l, 2, id, &fix, err,
		    sizeof(err)), -1);
		assert_int_equal(fix, 0);
		assert_string_equal(id, "");
	}
	assert_int_equal(sts_txt_select(two, l2, 2, id, NULL, err,
	    sizeof(err)), -1);
	assert_string_equal(id, "");
	assert_int_equal(sts_txt_select(bad, lb, 2, id, NULL, err,
	    sizeof(err)), -1);
	assert_int_equal(sts_txt_select(none, ln, 2, id, NULL, err,
	    sizeof(err)), 0);
	assert_int_equal(sts_txt_select(NULL, NULL, 0, id, NULL, err,
	    sizeof(err)), 0);
	/* a record without the ';' after "v=STSv1" is discarded, not a
	 * second (invalid) record beside the domain's valid one */
	{
		const char *stray[] = { "v=STSv1", "v=STSv1; id=x3",
		    "v=STSv1 id=x4" };
		size_t ls[] = { 7, 14, 13 };

		assert_int_equal(sts_txt_select(stray, ls, 3, id, NULL, err,
		    sizeof(err)), 1);
		assert_string_equal(id, "x3");
		assert_int_equal(sts_txt_select(stray, ls, 1, id, NULL, err,
		    sizeof(err)), 0);
	}
}

struct pol_case {
	const char	*body;
	int		 ok;
	int		 mode;
	unsigned	 max_age;
	int		 nmx;
	unsigned	 fix;		/* the STS_LENIENT_* bits it must set */
};

#define E STS_MODE_ENFORCE
#define T STS_MODE_TESTING
#define N STS_MODE_NONE

static const struct pol_case pol_cases[] = {
	/* RFC 8461 section 3.2 example */
	{ "version: STSv1\nmode: enforce\nmx: mail.example.com\n"
	  "mx: *.example.net\nmx: backupmx.example.com\nmax_age: 604800\n",
	  1, E, 604800, 3, 0 },
	/* same with CRLF */
	{ "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\n"
	  "mx: *.example.net\r\nmx: backupmx.example.com\r\n"
	  "max_age: 604800\r\n", 1, E, 604800, 3, 0 },
	/* no final line end */
	{ "version: STSv1\nmode: testing\nmx: mx.example.com\nmax_age: 86400",
	  1, T, 86400, 1, 0 },
	/* mixed LF and CRLF */
	{ "version: STSv1\r\nmode: testing\nmx: mx.example.com\r\n"
	  "max_age: 86400\n", 1, T, 86400, 1, 0 },
	/* none without mx */
	{ "version: STSv1\nmode: none\nmax_age: 86400\n", 1, N, 86400, 0, 0 },
	/* none with mx */
	{ "version: STSv1\nmode: none\nmx: a.example\nmax_age: 1\n", 1, N, 1, 1, 0 },
	/* order does not matter */
	{ "max_age: 100\nmx: a.example\nmode: enforce\nversion: STSv1\n",
	  1, E, 100, 1, 0 },
	/* whitespace after ':' and at the end of values */
	{ "version:STSv1\nmode:\tenforce \nmx:   a.example\t\nmax_age: 5  \n",
	  1, E, 5, 1, 0 },
	/* unknown keys ignored, even repeated */
	{ "version: STSv1\nmode: enforce\nfoo: bar baz\nfoo: x\n"
	  "mx: a.example\nmax_age: 5\n", 1, E, 5, 1, 0 },
	/* max_age bounds */
	{ "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 0\n",
	  1, E, 0, 1, 0 },
	{ "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 31557600\n",
	  1, E, 31557600, 1, 0 },
	{ "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 0031557600\n",
	  1, E, 31557600, 1, 0 },
	/* trailing empty lines */
	{ "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 5\n\n\n",
	  1, E, 5, 1, 0 },
	/* upper-case mx pattern is lowered */
	{ "version: STSv1\nmode: enforce\nmx: MX.Example.COM\nmax_age: 5\n",
	  1, E, 5, 1, 0 },

	/* ---- bad ---- */
	{ "", 0, 0, 0, 0, 0 },
	{ "version: STSv1\nmode: enforce\nmax_age: 86400\n", 0, 0, 0, 0, 0 },
	{ "version: STSv1\nmode: testing\nmax_age: 86400\n", 0, 0, 0, 0, 0 },
	{ "mode: enforce\nmx: a.example\nmax_age: 5\n", 0, 0, 0, 0, 0 },
	{ "version: STSv1\nmx: a.example\nmax_age: 5\n", 0, 0, 0, 0, 0 },
	{ "version: STSv1\nmode: enforce\nmx: a.example\n", 0, 0, 0, 0, 0 },
	{ "version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 5\n",
	  0, 0, 0, 0, 0 },
	{ "version: STSv1\nmode: enforcing\nmx: a.example\nmax_age: 5\n",
	  0, 0, 0, 0, 0 },
	{ "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: -1\n",
	  0, 0, 0, 0, 0 },
	{ "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 1d\n",
	  0, 0, 0, 0, 0 },
	{ "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: \n",
	  0, 0, 0, 0, 0 },
	/* mx patterns */
	{ "version: STSv1\nmode: enforce\nmx: mail.*.example\nmax_age: 5\n",
	  0, 0, 0, 0, 0 },
	{ "version: STSv1\nmode: enforce\nmx: *mail.example\nmax_age: 5\n",
	  0, 0, 0, 0, 0 },
	{ "version: STSv1\nmode: enforce\nmx: *.*.example\nmax_age: 5\n",
	  0, 0, 0, 0, 0 },
	{ "version: STSv1\nmode: enforce\nmx: *\nmax_age: 5\n", 0, 0, 0, 0, 0 },
	{ "version: STSv1\nmode: enforce\nmx: a..example\nmax_age: 5\n",
	  0, 0, 0, 0, 0 },
	{ "version: STSv1\nmode: enforce\nmx: a example\nmax_age: 5\n",
	  0, 0, 0, 0, 0 },
	{ "version: STSv1\nmode: enforce\nmx: -a.example\nmax_age: 5\n",
	  0, 0, 0, 0, 0 },
	{ "version: STSv1\nmode: enforce\nmx: a_b.example\nmax_age: 5\n",
	  0, 0, 0, 0, 0 },
	/* a key of 32 characters is an extension, one of 33 or not
	 * starting with a letter or digit is no key */
	{ "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 5\n"
	  "a2345678901234567890123456789012: x\n", 1, E, 5, 1, 0 },
	{ "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 5\n"
	  "a23456789012345678901234567890123: x\n", 0, 0, 0, 0, 0 },
	{ "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 5\n"
	  "_ext: x\n", 0, 0, 0, 0, 0 },
	/* a label ending with a hyphen, one of 64 octets (63 is fine) */
	{ "version: STSv1\nmode: enforce\nmx: a-.example\nmax_age: 5\n",
	  0, 0, 0, 0, 0 },
	{ "version: STSv1\nmode: enforce\nmx: "
	  "a123456789012345678901234567890123456789012345678901234567890123"
	  ".example\nmax_age: 5\n", 0, 0, 0, 0, 0 },
	{ "version: STSv1\nmode: enforce\nmx: "
	  "a12345678901234567890123456789012345678901234567890123456789012"
	  ".example\nmax_age: 5\n", 1, E, 5, 1, 0 },
	/* no colon, bare CR, control and non-ASCII bytes */
	{ "version STSv1\nmode: enforce\nmx: a.example\nmax_age: 5\n",
	  0, 0, 0, 0, 0 },
	{ "version: STSv1\rmode: enforce\nmx: a.example\nmax_age: 5\n",
	  0, 0, 0, 0, 0 },
	{ "version: STSv1\nmode: enforce\nfoo: a\x01\nmx: a.example\nmax_age: 5\n",
	  0, 0, 0, 0, 0 },
	{ "version: STSv1\nmode: enforce\nfoo: a\x7f\nmx: a.example\nmax_age: 5\n",
	  0, 0, 0, 0, 0 },
	/* an extension's value may be UTF-8 (RFC 8461 sts-policy-vchar) */
	{ "version: STSv1\nmode: enforce\nnote: K\xc3\xb6ln\nmx: a.example\n"
	  "max_age: 5\n", 1, STS_MODE_ENFORCE, 5, 1, 0 },
	/* ---- accepted outside the ABNF (docs/policy.md's table) ---- */
#define L(x) STS_LENIENT_##x
	/* a UTF-8 byte order mark */
	{ "\xef\xbb\xbfversion: STSv1\nmode: enforce\nmx: a.example\n"
	  "max_age: 5\n", 1, E, 5, 1, L(BOM) },
	/* empty and blank lines between fields, LF or CRLF */
	{ "version: STSv1\n\nmode: enforce\nmx: a.example\nmax_age: 5\n",
	  1, E, 5, 1, L(BLANK) },
	{ "version: STSv1\r\n\r\nmode: enforce\r\nmx: a.example\r\n \t\r\n"
	  "max_age: 5\r\n", 1, E, 5, 1, L(BLANK) },
	/* blanks before a key or its ':' */
	{ " version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 5\n",
	  1, E, 5, 1, L(KEY_WSP) },
	{ "version : STSv1\nmode:enforce\n\tmx\t: a.example\nmax_age: 5\n",
	  1, E, 5, 1, L(KEY_WSP) },
	/* the case of keys and of the version and mode values */
	{ "Version: STSv1\nMODE: enforce\nMx: a.example\nMax_Age: 5\n",
	  1, E, 5, 1, L(KEY_CASE) },
	{ "version: stsv1\nmode: Enforce\nmx: a.example\nmax_age: 5\n",
	  1, E, 5, 1, L(VALUE_CASE) },
	{ "version: STSv1\nmode: TESTING\nmx: a.example\nmax_age: 5\n",
	  1, T, 5, 1, L(VALUE_CASE) },
	/* max_age above the RFC's maximum is the maximum; leading zeros */
	{ "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 31557601\n",
	  1, E, 31557600, 1, L(MAX_AGE) },
	{ "version: STSv1\nmode: enforce\nmx: a.example\n"
	  "max_age: 99999999999999999999999999\n", 1, E, 31557600, 1,
	  L(MAX_AGE) },
	/* 2^64 + 1: the maximum, not what a 64-bit sum wraps to (1) */
	{ "version: STSv1\nmode: enforce\nmx: a.example\n"
	  "max_age: 18446744073709551617\n", 1, E, 31557600, 1,
	  L(MAX_AGE) },
	{ "version: STSv1\nmode: enforce\nmx: a.example\n"
	  "max_age: 000000000000000086400\n", 1, E, 86400, 1, 0 },
	/* repeated fields that say the same; max_age: the first */
	{ "version: STSv1\nversion: STSv1\nmode: enforce\nmode: Enforce\n"
	  "mx: a.example\nmax_age: 5\n", 1, E, 5, 1,
	  L(REPEAT) | L(VALUE_CASE) },
	{ "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 86400\n"
	  "max_age: 604800\n", 1, E, 86400, 1, L(REPEAT) },
	{ "version: STSv1\nmode: testing\nmx: a.example\nmax_age: 5\n"
	  "mode: testing\n", 1, T, 5, 1, L(REPEAT) },
	/* mx: a trailing dot, U-labels */
	{ "version: STSv1\nmode: enforce\nmx: a.example.\n"
	  "mx: *.example.net.\nmax_age: 5\n", 1, E, 5, 2, L(MX_DOT) },
	{ "version: STSv1\nmode: enforce\nmx: m\xc3\xa4il.example\n"
	  "mx: *.B\xc3\xbc" "cher.example.\nmax_age: 5\n", 1, E, 5, 2,
	  L(MX_ULABEL) | L(MX_DOT) },
	/* an extension without a value */
	{ "version: STSv1\nmode: enforce\nnote:\nmx: a.example\nmax_age: 5\n",
	  1, E, 5, 1, L(EXT_EMPTY) },
	/* beside the exact spelling, another case is an extension, as the
	 * ABNF reads it (test_policy_strict_reading) */
	{ "version: STSv1\nmode: enforce\nMode: none\nmx: a.example\n"
	  "max_age: 5\n", 1, E, 5, 1, 0 },
	/* a blank line at the end is no fix; in the middle, one */
	{ "\xef\xbb\xbf Version : stsv1\n\nmode: enforce\nmx: A.example.\n"
	  "max_age: 40000000\n\n", 1, E, 31557600, 1,
	  L(BOM) | L(KEY_WSP) | L(KEY_CASE) | L(VALUE_CASE) | L(BLANK) |
	  L(MX_DOT) | L(MAX_AGE) },
#undef L

	/* ---- still refused: what could change what the policy says ---- */
	{ "version: STSv1\nmode: enforce\nmode: testing\nmx: a.example\n"
	  "max_age: 5\n", 0, 0, 0, 0, 0 },
	{ "version: STSv1\nMode: enforce\nMODE: none\nmx: a.example\n"
	  "max_age: 5\n", 0, 0, 0, 0, 0 },
	{ "version: STSv1\nmode: testing\nmx: a.example\nmax_age: 5\n"
	  "mode: enforce\n", 0, 0, 0, 0, 0 },
	{ "version: STSv1\nmode: enforce\nmode: enforcing\nmx: a.example\n"
	  "max_age: 5\n", 0, 0, 0, 0, 0 },
	{ "version: STSv1\nversion: STSv2\nmode: enforce\nmx: a.example\n"
	  "max_age: 5\n", 0, 0, 0, 0, 0 },
	{ "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 5\n"
	  "max_age: x\n", 0, 0, 0, 0, 0 },
	{ "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: +5\n",
	  0, 0, 0, 0, 0 },
	{ "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 5 5\n",
	  0, 0, 0, 0, 0 },
	{ "version: STSv1\nmode: enforce\nmx:\nmx: a.example\nmax_age: 5\n",
	  0, 0, 0, 0, 0 },
	{ "version: STSv1\nmode: enforce\nmx: a.example..\nmax_age: 5\n",
	  0, 0, 0, 0, 0 },
	{ "version: STSv1\nmode: enforce\nmx: .\nmax_age: 5\n", 0, 0, 0, 0, 0 },
	{ "version: STSv1\nmode: enforce\nmx: *.\nmax_age: 5\n", 0, 0, 0, 0, 0 },
	{ "version: STSv1\nmode: enforce\nmx: \xff\xfe.example\nmax_age: 5\n",
	  0, 0, 0, 0, 0 },
	{ "version: STSv1\nmode: enforce\nmx: *.\xe4\xb8\xad*.example\n"
	  "max_age: 5\n", 0, 0, 0, 0, 0 },
	{ "version: STSv1\nmode\nmx: a.example\nmax_age: 5\n", 0, 0, 0, 0, 0 },
	/* a byte order mark is taken only at the start */
	{ "version: STSv1\n\xef\xbb\xbfmode: enforce\nmx: a.example\n"
	  "max_age: 5\n", 0, 0, 0, 0, 0 },
	/* an HTML page is not a policy */
	{ "<html><body>version: STSv1</body></html>\n", 0, 0, 0, 0, 0 },
};

static void
test_policy_table(void **state)
{
	size_t i, n = sizeof(pol_cases) / sizeof(pol_cases[0]);
	struct sts_policy p;
	char err[128];

	assert_true(n >= 30);
	for (i = 0; i < n; i++) {
		const struct pol_case *c = &pol_cases[i];
		int r = sts_policy_parse(c->body, strlen(c->body), &p, err,
		    sizeof(err));

		if ((r == 0) != c->ok)
			fail_msg("case %zu: got %d (%s), want %s:\n%s", i, r,
			    r ? err : "", c->ok ? "ok" : "error", c->body);
		if (!c->ok)
			continue;
		assert_int_equal(p.mode, c->mode);
		assert_int_equal(p.max_age, c->max_age);
		assert_int_equal(p.nmx, c->nmx);
		if (p.lenient != c->fix)
			fail_msg("case %zu: lenient 0x%x, want 0x%x:\n%s", i,
			    p.lenient, c->fix, c->body);
	}
}

static void
test_policy_fields(void **state)
{
	struct sts_policy p;
	char err[128];
	const char *b = "version: STSv1\nmode: enforce\nmx: MX.Example.COM\n"
	    "mx: *.example.net\nmax_age: 5\n";

	assert_int_equal(sts_policy_parse(b, strlen(b), &p, err, sizeof(err)),
	    0);
	assert_string_equal(p.mx[0], "mx.example.com");
	assert_string_equal(p.mx[1], "*.example.net");
	assert_true(sts_policy_match(&p, "mx.example.com"));
	assert_true(sts_policy_match(&p, "MX.EXAMPLE.COM."));
	assert_true(sts_policy_match(&p, "a.example.net"));
	assert_false(sts_policy_match(&p, "example.net"));
	assert_false(sts_policy_match(&p, "x.mx.example.com"));
}

/*
 * What a lenient parse keeps: mx patterns in the form MX records give
 * (A-labels, no trailing dot), so they match the hosts; the names the
 * log line gives.
 */
static void
test_policy_lenient_fields(void **state)
{
	struct sts_policy p;
	char err[128], names[256];
	const char *b = "mode: enforce\nmx: MX.Example.COM.\n"
	    "mx: *.B\xc3\xbc" "cher.example\nmx: m\xc3\xa4il.example\n"
	    "version: STSv1\nmax_age: 5\n";

	assert_int_equal(sts_policy_parse(b, strlen(b), &p, err, sizeof(err)),
	    0);
	assert_int_equal(p.nmx, 3);
	assert_string_equal(p.mx[0], "mx.example.com");
	assert_string_equal(p.mx[1], "*.xn--bcher-kva.example");
	assert_string_equal(p.mx[2], "xn--mil-qla.example");
	assert_true(sts_policy_match(&p, "mx.example.com."));
	assert_true(sts_policy_match(&p, "a.xn--bcher-kva.example"));
	assert_true(sts_policy_match(&p, "XN--MIL-QLA.example"));
	assert_false(sts_policy_match(&p, "xn--bcher-kva.example"));
	assert_string_equal(sts_lenient_names(p.lenient, names,
	    sizeof(names)), "mx-trailing-dot,mx-u-label");
	assert_string_equal(sts_lenient_names(0, names, sizeof(names)), "-");
	assert_string_equal(sts_lenient_names(STS_LENIENT_BOM |
	    STS_LENIENT_MAX_AGE, names, sizeof(names)),
	    "bom,max-age-clamped");
	/* a buffer too small keeps the names that fit */
	assert_string_equal(sts_lenient_names(STS_LENIENT_BOM |
	    STS_LENIENT_MAX_AGE, names, 8), "bom");
}

/*
 * A file RFC 8461's ABNF takes is read as the ABNF reads it: a known key
 * in another case next to its exact spelling is the extension the ABNF
 * makes of it (as "ID=" next to "id=" in the TXT record), not a second
 * mode that made an enforce policy invalid, nor an mx pattern, max_age or
 * version the strict reader never saw.  Cached bodies (LMDB, Redis) were
 * checked strictly when stored; they must still load as they were.
 */
static void
test_policy_strict_reading(void **state)
{
	struct sts_policy p;
	char err[128];
	const char *ext = "version: STSv1\nmode: enforce\nMode: none\n"
	    "MX: other.example\nmx: a.example\nMax_Age: 1\nmax_age: 86400\n"
	    "VERSION: STSv2\nMODE: nonsense\n";
	/* without an exact spelling, another case is the key */
	const char *folded = "Version: STSv1\nMode: enforce\nMX: a.example\n"
	    "mx: b.example\nMax_Age: 5\n";

	assert_int_equal(sts_policy_parse(ext, strlen(ext), &p, err,
	    sizeof(err)), 0);
	assert_int_equal(p.mode, STS_MODE_ENFORCE);
	assert_int_equal(p.max_age, 86400);
	assert_int_equal(p.nmx, 1);
	assert_string_equal(p.mx[0], "a.example");
	assert_false(sts_policy_match(&p, "other.example"));
	assert_int_equal(p.lenient, 0);

	/* "MX:" next to "mx:": the exact one only */
	assert_int_equal(sts_policy_parse(folded, strlen(folded), &p, err,
	    sizeof(err)), 0);
	assert_int_equal(p.mode, STS_MODE_ENFORCE);
	assert_int_equal(p.max_age, 5);
	assert_int_equal(p.nmx, 1);
	assert_string_equal(p.mx[0], "b.example");
	assert_int_equal(p.lenient, STS_LENIENT_KEY_CASE);

	/* mode none needs no mx: a strict reader takes "MX:" for an
	 * extension there, and so does this one (no pattern, no bit; a
	 * malformed one no error); enforce with no "mx:" takes it */
	{
		const char *none = "version: STSv1\nmode: none\n"
		    "max_age: 5\nMX: b.e\nMx: not a pattern!\n";
		const char *enf = "version: STSv1\nmax_age: 5\nMX: a.example\n"
		    "mode: enforce\n";

		assert_int_equal(sts_policy_parse(none, strlen(none), &p, err,
		    sizeof(err)), 0);
		assert_int_equal(p.mode, STS_MODE_NONE);
		assert_int_equal(p.nmx, 0);
		assert_int_equal(p.lenient, 0);
		assert_int_equal(sts_policy_parse(enf, strlen(enf), &p, err,
		    sizeof(err)), 0);
		assert_int_equal(p.nmx, 1);
		assert_string_equal(p.mx[0], "a.example");
		assert_int_equal(p.lenient, STS_LENIENT_KEY_CASE);
	}
}

static void
test_policy_nul(void **state)
{
	struct sts_policy p;
	char err[128];
	const char b[] = "version: STSv1\nmode: enforce\nmx: a.ex\0ample\n"
	    "max_age: 5\n";

	assert_int_equal(sts_policy_parse(b, sizeof(b) - 1, &p, err,
	    sizeof(err)), -1);
}

static void
test_policy_too_many_mx(void **state)
{
	char body[8192];
	size_t o = 0;
	int i;
	struct sts_policy p;
	char err[128];

	o += (size_t)snprintf(body + o, sizeof(body) - o,
	    "version: STSv1\nmode: enforce\nmax_age: 5\n");
	for (i = 0; i < STS_MAX_MX; i++)
		o += (size_t)snprintf(body + o, sizeof(body) - o,
		    "mx: m%d.example\n", i);
	assert_int_equal(sts_policy_parse(body, o, &p, err, sizeof(err)), 0);
	assert_int_equal(p.nmx, STS_MAX_MX);
	assert_int_equal(p.mx_over, 0);
	/* more: the domain's policy all the same (not "no policy"); the
	 * patterns past the room are checked, counted, and match nothing */
	o += (size_t)snprintf(body + o, sizeof(body) - o, "mx: one.more\n");
	assert_int_equal(sts_policy_parse(body, o, &p, err, sizeof(err)), 0);
	assert_int_equal(p.nmx, STS_MAX_MX);
	assert_int_equal(p.mx_over, 1);
	assert_int_equal(p.mode, STS_MODE_ENFORCE);
	assert_true(sts_policy_match(&p, "m0.example"));
	assert_false(sts_policy_match(&p, "one.more"));
	/* ... and one of them malformed is an invalid file, as before */
	o += (size_t)snprintf(body + o, sizeof(body) - o, "mx: bad..one\n");
	assert_int_equal(sts_policy_parse(body, o, &p, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "bad mx pattern"));
}

/* The same past the room with "MX:" lines (no line spelling "mx"): with
 * mode enforce they are patterns, counted; with mode none extensions. */
static void
test_policy_too_many_mx_case(void **state)
{
	char body[8192], body2[8192];
	size_t o = 0;
	int i;
	struct sts_policy p;
	char err[128];

	o += (size_t)snprintf(body + o, sizeof(body) - o,
	    "version: STSv1\nmode: enforce\nmax_age: 5\n");
	for (i = 0; i < STS_MAX_MX + 3; i++)
		o += (size_t)snprintf(body + o, sizeof(body) - o,
		    "MX: m%d.example.\n", i);
	assert_int_equal(sts_policy_parse(body, o, &p, err, sizeof(err)), 0);
	assert_int_equal(p.nmx, STS_MAX_MX);
	assert_int_equal(p.mx_over, 3);
	assert_true(p.lenient & STS_LENIENT_KEY_CASE);
	assert_true(p.lenient & STS_LENIENT_MX_DOT);
	assert_true(sts_policy_match(&p, "m63.example"));
	assert_false(sts_policy_match(&p, "m64.example"));
	/* a malformed one past the room: invalid with mode enforce ... */
	memcpy(body2, body, o);
	i = snprintf(body2 + o, sizeof(body2) - o, "MX: bad..one\n");
	assert_int_equal(sts_policy_parse(body2, o + (size_t)i, &p, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "line 71: bad mx pattern"));
	/* ... an extension with mode none, as every other "MX:" line */
	memcpy(body2 + 21, "none   ", 7);
	assert_int_equal(sts_policy_parse(body2, o + (size_t)i, &p, err,
	    sizeof(err)), 0);
	assert_int_equal(p.mode, STS_MODE_NONE);
	assert_int_equal(p.nmx, 0);
	assert_int_equal(p.mx_over, 0);
}

static void
test_mx_match(void **state)
{
	assert_true(sts_mx_match("*.example.com", "mail.example.com"));
	assert_false(sts_mx_match("*.example.com", "example.com"));
	assert_false(sts_mx_match("*.example.com", "a.b.example.com"));
	assert_false(sts_mx_match("*.example.com", ".example.com"));
	assert_false(sts_mx_match("*.example.com", "mailexample.com"));
	assert_true(sts_mx_match("*.example.com", "MAIL.Example.Com."));
	assert_true(sts_mx_match("mail.example.com", "mail.example.com"));
	assert_true(sts_mx_match("mail.example.com", "mail.example.com."));
	assert_false(sts_mx_match("mail.example.com", "xmail.example.com"));
	assert_false(sts_mx_match("mail.example.com", "mail.example.co"));
	assert_false(sts_mx_match("mail.example.com", ""));
	assert_false(sts_mx_match("example.com", "mail.example.com"));
	/* a host that only begins with the pattern's name */
	assert_false(sts_mx_match("mail.example.com",
	    "mail.example.com.attacker.test"));
	assert_false(sts_mx_match("mail.example.com", "mail.example.comx"));
	assert_false(sts_mx_match("*.example.com",
	    "mail.example.com.attacker.test"));
	assert_false(sts_mx_match("*.example.com", "mail.example.comx"));
}

/* A policy file is the range given: a last line "foo" whose ':' lies
 * past the range has no ':' */
static void
test_policy_bounded(void **state)
{
	static const char body[] = "version: STSv1\nmode: enforce\n"
	    "mx: a.example\nmax_age: 5\nfoo:";
	struct sts_policy p;
	char err[128];

	assert_int_equal(sts_policy_parse(body, sizeof(body) - 1, &p, err,
	    sizeof(err)), 0);
	assert_int_equal(sts_policy_parse(body, sizeof(body) - 2, &p, err,
	    sizeof(err)), -1);
}

/* the output's size counts the NUL: a name as long as outsz does not
 * fit, nothing written past it */
static void
test_domain_norm_outsz(void **state)
{
	char out[16], err[128];

	memset(out, 'Z', sizeof(out));
	assert_int_equal(sts_domain_norm("example.com", out, 11, err,
	    sizeof(err)), -1);
	assert_int_equal(out[11], 'Z');
	assert_int_equal(sts_domain_norm("example.com", out, 12, err,
	    sizeof(err)), 0);
	assert_string_equal(out, "example.com");
}

static void
test_domain_norm(void **state)
{
	char out[256], err[128];

	assert_int_equal(sts_domain_norm("Example.COM.", out, sizeof(out), err,
	    sizeof(err)), 0);
	assert_string_equal(out, "example.com");
	assert_int_equal(sts_domain_norm("b\xc3\xbc" "cher.example", out,
	    sizeof(out), err, sizeof(err)), 0);
	assert_string_equal(out, "xn--bcher-kva.example");
	assert_int_equal(sts_domain_norm("", out, sizeof(out), err,
	    sizeof(err)), -1);
	assert_int_equal(sts_domain_norm("a..b", out, sizeof(out), err,
	    sizeof(err)), -1);
	assert_int_equal(sts_domain_norm("[192.0.2.1]", out, sizeof(out), err,
	    sizeof(err)), -1);
	assert_int_equal(sts_domain_norm("\xff\xfe.example", out, sizeof(out),
	    err, sizeof(err)), -1);
	assert_int_equal(sts_domain_norm("a b.example", out, sizeof(out), err,
	    sizeof(err)), -1);
	/* a U-label over 63 octets whose A-label fits (test_smtp_cmd
	 * test_long_u_label), and one whose A-label does not */
	{
		char dom[300];
		int i;

		dom[0] = '\0';
		for (i = 0; i < 24; i++)
			strcat(dom, "\xe4\xb8\xad");
		strcat(dom, ".example");
		assert_int_equal(sts_domain_norm(dom, out, sizeof(out), err,
		    sizeof(err)), 0);
		assert_true(strncmp(out, "xn--", 4) == 0);
		assert_true(strchr(out, '.') - out <= 63);
		dom[0] = '\0';
		for (i = 0; i < 64; i++)	/* xn--...: 70 */
			strcat(dom, "\xc3\xbc");
		strcat(dom, ".example");
		assert_int_equal(sts_domain_norm(dom, out, sizeof(out), err,
		    sizeof(err)), -1);
	}
}

/*
 * RFC 3490 section 3.1's other label separators (U+3002 IDEOGRAPHIC FULL
 * STOP, U+FF0E FULLWIDTH FULL STOP, U+FF61 HALFWIDTH IDEOGRAPHIC FULL
 * STOP) are dots to the MTA's IDNA conversion (UTS #46): in the middle
 * and at the end (an absolute name) the domain is the one with '.', not
 * one refused (deferred) for a trailing dot that came with the mapping.
 */
static void
test_domain_norm_separators(void **state)
{
	static const char *const seps[] = {
		"\xe3\x80\x82", "\xef\xbc\x8e", "\xef\xbd\xa1",
	};
	/* 例え.テスト */
	const char *ja = "\xe4\xbe\x8b\xe3\x81\x88";
	const char *test = "\xe3\x83\x86\xe3\x82\xb9\xe3\x83\x88";
	char in[64], out[256], want[256], err[128];
	size_t i;

	snprintf(in, sizeof(in), "%s.%s", ja, test);
	assert_int_equal(sts_domain_norm(in, want, sizeof(want), err,
	    sizeof(err)), 0);
	assert_string_equal(want, "xn--r8jz45g.xn--zckzah");
	for (i = 0; i < sizeof(seps) / sizeof(seps[0]); i++) {
		snprintf(in, sizeof(in), "%s.%s%s", ja, test, seps[i]);
		if (sts_domain_norm(in, out, sizeof(out), err,
		    sizeof(err)) != 0)
			fail_msg("separator %zu at the end: %s", i, err);
		assert_string_equal(out, want);
		snprintf(in, sizeof(in), "%s%s%s", ja, seps[i], test);
		if (sts_domain_norm(in, out, sizeof(out), err,
		    sizeof(err)) != 0)
			fail_msg("separator %zu inside: %s", i, err);
		assert_string_equal(out, want);
		/* an ASCII name written with one is that name */
		snprintf(in, sizeof(in), "Example%scom%s", seps[i], seps[i]);
		assert_int_equal(sts_domain_norm(in, out, sizeof(out), err,
		    sizeof(err)), 0);
		assert_string_equal(out, "example.com");
		/* one trailing dot, mapped or not, never two */
		snprintf(in, sizeof(in), "%s.%s%s.", ja, test, seps[i]);
		assert_int_equal(sts_domain_norm(in, out, sizeof(out), err,
		    sizeof(err)), -1);
		snprintf(in, sizeof(in), "%s.%s%s%s", ja, test, seps[i],
		    seps[i]);
		assert_int_equal(sts_domain_norm(in, out, sizeof(out), err,
		    sizeof(err)), -1);
		snprintf(in, sizeof(in), "%s%s%s%s", ja, seps[i], seps[i],
		    test);
		assert_int_equal(sts_domain_norm(in, out, sizeof(out), err,
		    sizeof(err)), -1);
		snprintf(in, sizeof(in), "%s", seps[i]);
		assert_int_equal(sts_domain_norm(in, out, sizeof(out), err,
		    sizeof(err)), -1);
	}
	assert_int_equal(sts_domain_norm("example.com..", out, sizeof(out),
	    err, sizeof(err)), -1);
}

/*
 * The A-label is what is judged, however many octets of UTF-8 wrote it:
 * characters UTS #46 ignores (U+00AD SOFT HYPHEN) or maps (fullwidth
 * letters) make a long UTF-8 name of a short A-label.
 */
static void
test_domain_norm_long_utf8(void **state)
{
	char in[1400], out[256], err[128];
	size_t i;

	snprintf(in, sizeof(in), "ex");
	for (i = 0; i < 600; i++)
		strcat(in, "\xc2\xad");
	strcat(in, "ample.com");
	assert_true(strlen(in) > 1024);
	assert_int_equal(sts_domain_norm(in, out, sizeof(out), err,
	    sizeof(err)), 0);
	assert_string_equal(out, "example.com");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_txt_table),
		cmocka_unit_test(test_txt_nul),
		cmocka_unit_test(test_txt_bounded),
		cmocka_unit_test(test_txt_select),
		cmocka_unit_test(test_policy_table),
		cmocka_unit_test(test_policy_fields),
		cmocka_unit_test(test_policy_lenient_fields),
		cmocka_unit_test(test_policy_strict_reading),
		cmocka_unit_test(test_policy_nul),
		cmocka_unit_test(test_policy_too_many_mx),
		cmocka_unit_test(test_policy_too_many_mx_case),
		cmocka_unit_test(test_mx_match),
		cmocka_unit_test(test_policy_bounded),
		cmocka_unit_test(test_domain_norm_outsz),
		cmocka_unit_test(test_domain_norm),
		cmocka_unit_test(test_domain_norm_separators),
		cmocka_unit_test(test_domain_norm_long_utf8),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
