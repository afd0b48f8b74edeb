/*
 * test_tlsrpt.c - the _smtp._tls TXT record parser and selector and the
 * rua URI parser (RFC 8460 section 3).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "policy/tlsrpt.h"

static struct tlsrpt_policy_record rec;
static char err[256];

static int
parse(const char *s)
{
	err[0] = '\0';
	return tlsrpt_txt_parse(s, strlen(s), &rec, err, sizeof(err));
}

static void
test_txt_valid(void **state)
{
	assert_int_equal(parse("v=TLSRPTv1; rua=mailto:tlsrpt@example.com"),
	    1);
	assert_int_equal(rec.nrua, 1);
	assert_int_equal(rec.rua[0].kind, TLSRPT_URI_MAILTO);
	assert_string_equal(rec.rua[0].addr, "tlsrpt@example.com");
	assert_string_equal(rec.rua[0].uri, "mailto:tlsrpt@example.com");

	assert_int_equal(parse("v=TLSRPTv1;rua=https://reports.example.com/"
	    "v1/tlsrpt"), 1);
	assert_int_equal(rec.nrua, 1);
	assert_int_equal(rec.rua[0].kind, TLSRPT_URI_HTTPS);
	assert_string_equal(rec.rua[0].host, "reports.example.com");
	assert_int_equal(rec.rua[0].port, 443);
	assert_string_equal(rec.rua[0].path, "/v1/tlsrpt");

	/* delimiters with whitespace, a trailing delimiter */
	assert_int_equal(parse("v=TLSRPTv1 \t;\trua=mailto:a@b.example ; "),
	    1);
	assert_int_equal(rec.nrua, 1);
	assert_string_equal(rec.rua[0].addr, "a@b.example");
	/* trailing whitespace without a delimiter is tolerated */
	assert_int_equal(parse("v=TLSRPTv1; rua=mailto:a@b.example  "), 1);
}

static void
test_txt_several_rua(void **state)
{
	assert_int_equal(parse("v=TLSRPTv1; rua=mailto:a@x.example,"
	    "https://r.example:8443/post?k=v , mailto:b%40c@y.example"), -1);
	/* "b%40c@y": two "@" after decoding: refused */
	assert_non_null(strstr(err, "rua URI 3"));

	assert_int_equal(parse("v=TLSRPTv1; rua=mailto:a@x.example,"
	    "https://r.example:8443/post?k=v , mailto:b.c@Y.Example"), 1);
	assert_int_equal(rec.nrua, 3);
	assert_int_equal(rec.rua[0].kind, TLSRPT_URI_MAILTO);
	assert_string_equal(rec.rua[0].addr, "a@x.example");
	assert_int_equal(rec.rua[1].kind, TLSRPT_URI_HTTPS);
	assert_string_equal(rec.rua[1].host, "r.example");
	assert_int_equal(rec.rua[1].port, 8443);
	assert_string_equal(rec.rua[1].path, "/post?k=v");
	assert_int_equal(rec.rua[2].kind, TLSRPT_URI_MAILTO);
	assert_string_equal(rec.rua[2].addr, "b.c@y.example");

	/* eight are used; a ninth is checked, counted and not used (RFC
	 * 8460 sets no bound: the record is valid).  Red before: -1 */
	assert_int_equal(parse("v=TLSRPTv1;rua=mailto:1@a.example,"
	    "mailto:2@a.example,mailto:3@a.example,mailto:4@a.example,"
	    "mailto:5@a.example,mailto:6@a.example,mailto:7@a.example,"
	    "mailto:8@a.example"), 1);
	assert_int_equal(rec.nrua, 8);
	assert_int_equal(parse("v=TLSRPTv1;rua=mailto:1@a.example,"
	    "mailto:2@a.example,mailto:3@a.example,mailto:4@a.example,"
	    "mailto:5@a.example,mailto:6@a.example,mailto:7@a.example,"
	    "mailto:8@a.example,mailto:9@a.example"), 1);
	assert_int_equal(rec.nrua, 8);
	assert_int_equal(rec.rua_over, 1);
	assert_string_equal(rec.rua[7].addr, "8@a.example");
	/* a bad one past the bound still makes the record malformed */
	assert_int_equal(parse("v=TLSRPTv1;rua=mailto:1@a.example,"
	    "mailto:2@a.example,mailto:3@a.example,mailto:4@a.example,"
	    "mailto:5@a.example,mailto:6@a.example,mailto:7@a.example,"
	    "mailto:8@a.example,mailto:9@a.example,http://x.example/"), -1);
	assert_non_null(strstr(err, "rua URI 10"));
}

static void
test_txt_extensions(void **state)
{
	assert_int_equal(parse("v=TLSRPTv1; foo=bar; rua=mailto:a@b.example;"
	    " x.y_z-1=!\"#$%&'()*+,-./:<>?@[\\]^_`{|}~"), 1);
	assert_int_equal(rec.nrua, 1);
	assert_string_equal(rec.rua[0].addr, "a@b.example");
	/* "RUA" is another (unknown) field: the record then has no rua */
	assert_int_equal(parse("v=TLSRPTv1; RUA=mailto:a@b.example"), -1);
	assert_string_equal(err, "no rua field");
	/* a 32-character extension name is fine, 33 is not */
	assert_int_equal(parse("v=TLSRPTv1; rua=mailto:a@b.example; "
	    "abcdefghijklmnopqrstuvwxyz012345=1"), 1);
	assert_int_equal(parse("v=TLSRPTv1; rua=mailto:a@b.example; "
	    "abcdefghijklmnopqrstuvwxyz0123456=1"), -1);
}

static void
test_txt_not_tlsrpt(void **state)
{
	assert_int_equal(parse(""), 0);
	assert_int_equal(parse("v=spf1 -all"), 0);
	assert_int_equal(parse("v=TLSRPTv10; rua=mailto:a@b.example"), 0);
	assert_int_equal(parse("v=tlsrptv1; rua=mailto:a@b.example"), 0);
	assert_int_equal(parse(" v=TLSRPTv1; rua=mailto:a@b.example"), 0);
}

static void
test_txt_bad_syntax(void **state)
{
	static const char *const bad[] = {
		"v=TLSRPTv1",				/* no field */
		"v=TLSRPTv1;",				/* no rua */
		"v=TLSRPTv1 rua=mailto:a@b.example",	/* no ';' */
		"v=TLSRPTv1; rua=",			/* empty rua */
		"v=TLSRPTv1; rua=mailto:a@b.example,",	/* empty URI */
		"v=TLSRPTv1; rua=mailto:a@b.example,,mailto:c@d.example",
		"v=TLSRPTv1; rua=mailto:a@b.example; rua=mailto:c@d.example",
		"v=TLSRPTv1; rua=mailto:a@b.example; ext",
		"v=TLSRPTv1; rua=mailto:a@b.example; ext=",
		"v=TLSRPTv1; rua=mailto:a@b.example; =x",
		"v=TLSRPTv1; rua=mailto:a@b.example; _x=1",
		"v=TLSRPTv1; rua=mailto:a@b.example; x=a=b",
		"v=TLSRPTv1; rua=mailto:a@b.example x",
		"v=TLSRPTv1; rua = mailto:a@b.example",
		"v=TLSRPTv1; rua=ftp://a.example/x",
		"v=TLSRPTv1; rua=mailto:a@b.example!10m",
		"v=TLSRPTv1; rua=http://a.example/x",
		"v=TLSRPTv1; rua=mailto:a@b.example;; x=y",
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (parse(bad[i]) != -1)
			fail_msg("accepted: %s", bad[i]);
		assert_true(err[0] != '\0');
	}
	/* the errors say what is wrong */
	parse("v=TLSRPTv1; rua=mailto:a@b.example; rua=mailto:c@d.example");
	assert_string_equal(err, "repeated rua field");
	parse("v=TLSRPTv1 rua=mailto:a@b.example");
	assert_string_equal(err, "expected ';' at offset 11");
	parse("v=TLSRPTv1; rua=mailto:a@b.example!10m");
	assert_non_null(strstr(err, "'!' in a URI must be percent-encoded"));
	parse("v=TLSRPTv1; rua=ftp://a.example/x");
	assert_non_null(strstr(err, "unsupported URI scheme"));
}

static void
test_txt_bounded(void **state)
{
	char big[TLSRPT_TXT_MAX + 64];
	size_t n;

	n = (size_t)snprintf(big, sizeof(big), "v=TLSRPTv1; rua=mailto:a@b."
	    "example; x=");
	memset(big + n, 'a', sizeof(big) - n - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(parse(big), -1);
	assert_non_null(strstr(err, "longer than"));
	big[TLSRPT_TXT_MAX] = '\0';
	assert_int_equal(parse(big), 1);
	/* embedded NUL: not part of any token */
	assert_int_equal(tlsrpt_txt_parse("v=TLSRPTv1; rua=mailto:a@b.example"
	    "\0x", 36, &rec, err, sizeof(err)), -1);
}

static void
test_txt_select(void **state)
{
	const char *one[] = { "v=spf1 -all",
	    "v=TLSRPTv1; rua=mailto:a@b.example" };
	const char *two[] = { "v=TLSRPTv1; rua=mailto:a@b.example",
	    "v=TLSRPTv1; rua=https://c.example/" };
	const char *twobad[] = { "v=TLSRPTv1; rua=mailto:a@b.example",
	    "v=TLSRPTv1" };
	const char *bad[] = { "v=TLSRPTv1; rua=gopher://x", "other" };
	const char *none[] = { "v=spf1 -all", "hello" };
	size_t l[2];

	l[0] = strlen(one[0]);
	l[1] = strlen(one[1]);
	assert_int_equal(tlsrpt_txt_select(one, l, 2, &rec, err,
	    sizeof(err)), 1);
	assert_int_equal(rec.nrua, 1);
	/* two valid records mean none */
	l[0] = strlen(two[0]);
	l[1] = strlen(two[1]);
	assert_int_equal(tlsrpt_txt_select(two, l, 2, &rec, err,
	    sizeof(err)), 0);
	assert_int_equal(rec.nrua, 0);
	assert_non_null(strstr(err, "more than one"));
	l[0] = strlen(twobad[0]);
	l[1] = strlen(twobad[1]);
	assert_int_equal(tlsrpt_txt_select(twobad, l, 2, &rec, err,
	    sizeof(err)), 0);
	assert_int_equal(rec.nrua, 0);
	l[0] = strlen(bad[0]);
	l[1] = strlen(bad[1]);
	assert_int_equal(tlsrpt_txt_select(bad, l, 2, &rec, err,
	    sizeof(err)), -1);
	assert_int_equal(rec.nrua, 0);
	l[0] = strlen(none[0]);
	l[1] = strlen(none[1]);
	assert_int_equal(tlsrpt_txt_select(none, l, 2, &rec, err,
	    sizeof(err)), 0);
	assert_int_equal(tlsrpt_txt_select(none, l, 0, &rec, err,
	    sizeof(err)), 0);
}

static int
uri(const char *s, struct tlsrpt_uri *u)
{
	err[0] = '\0';
	return tlsrpt_uri_parse(s, strlen(s), u, err, sizeof(err));
}

static void
test_uri_mailto(void **state)
{
	struct tlsrpt_uri u;

	assert_int_equal(uri("mailto:tls-reports@Example.COM", &u), 0);
	assert_int_equal(u.kind, TLSRPT_URI_MAILTO);
	assert_string_equal(u.addr, "tls-reports@example.com");
	assert_int_equal(uri("MAILTO:a+b.c@x.example", &u), 0);
	assert_string_equal(u.addr, "a+b.c@x.example");
	/* a percent-encoded "!" decodes into the local part; a "," is
	 * no dot-atom character even when encoded */
	assert_int_equal(uri("mailto:a%21b@x.example", &u), 0);
	assert_string_equal(u.addr, "a!b@x.example");
	assert_int_equal(uri("mailto:a%2Cb@x.example", &u), -1);
	assert_int_equal(uri("mailto:a@x.example!10m", &u), -1);
	assert_non_null(strstr(err, "percent-encoded"));
	assert_int_equal(uri("mailto:a@x.example?subject=hi", &u), -1);
	assert_non_null(strstr(err, "header fields"));
	assert_int_equal(uri("mailto:", &u), -1);
	assert_int_equal(uri("mailto:@x.example", &u), -1);
	assert_int_equal(uri("mailto:a@", &u), -1);
	assert_int_equal(uri("mailto:a@b@x.example", &u), -1);
	assert_int_equal(uri("mailto:a..b@x.example", &u), -1);
	assert_int_equal(uri("mailto:.a@x.example", &u), -1);
	assert_int_equal(uri("mailto:a@x_y.example", &u), -1);
	assert_int_equal(uri("mailto:a@-x.example", &u), -1);
	assert_int_equal(uri("mailto:a%0d%0aBcc:x@x.example", &u), -1);
	assert_non_null(strstr(err, "0x0d"));
	assert_int_equal(uri("mailto:a%2@x.example", &u), -1);
	assert_non_null(strstr(err, "percent-encoding"));
	assert_int_equal(uri("mailto:a@x.example#f", &u), -1);
	assert_int_equal(uri("mailto:a@x.example,b@y.example", &u), -1);
	assert_int_equal(uri("mailto:a b@x.example", &u), -1);
	assert_int_equal(uri("mailto:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaa@x.example", &u), -1);	/* 65 */
	assert_int_equal(uri("mailto:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaa@x.example", &u), 0);	/* 64 */
}

static void
test_uri_https(void **state)
{
	struct tlsrpt_uri u;

	assert_int_equal(uri("https://Reports.Example.com", &u), 0);
	assert_int_equal(u.kind, TLSRPT_URI_HTTPS);
	assert_string_equal(u.host, "reports.example.com");
	assert_int_equal(u.port, 443);
	assert_string_equal(u.path, "/");
	assert_int_equal(uri("https://r.example?x=1", &u), 0);
	assert_string_equal(u.path, "/?x=1");
	assert_int_equal(uri("HTTPS://r.example:1/a/b%20c", &u), 0);
	assert_int_equal(u.port, 1);
	assert_string_equal(u.path, "/a/b%20c");
	assert_int_equal(uri("https://r.example:65535/", &u), 0);
	assert_int_equal(u.port, 65535);

	assert_int_equal(uri("https://r.example:65536/", &u), -1);
	assert_non_null(strstr(err, "port"));
	assert_int_equal(uri("https://r.example:0/", &u), -1);
	assert_int_equal(uri("https://r.example:/", &u), -1);
	assert_int_equal(uri("https://r.example:44x/", &u), -1);
	assert_int_equal(uri("https://r.example:0000443/", &u), -1);
	assert_int_equal(uri("https://user@r.example/", &u), -1);
	assert_non_null(strstr(err, "user information"));
	assert_int_equal(uri("https://[2001:db8::1]/", &u), -1);
	assert_int_equal(uri("https://r.example/#frag", &u), -1);
	assert_int_equal(uri("https://r.example/a[1]", &u), -1);
	assert_int_equal(uri("https:r.example/", &u), -1);
	assert_int_equal(uri("https:///x", &u), -1);
	assert_int_equal(uri("https://r_x.example/", &u), -1);
	assert_int_equal(uri("https://r.example/a b", &u), -1);
	assert_int_equal(uri("https://r.example/a\x80", &u), -1);
	assert_int_equal(uri("https://r.example/a;b", &u), -1);
	assert_int_equal(uri("http://r.example/", &u), -1);
	assert_non_null(strstr(err, "unsupported URI scheme"));
	assert_int_equal(uri("", &u), -1);
	assert_int_equal(uri("https", &u), -1);
}

static void
test_uri_bounded(void **state)
{
	char big[TLSRPT_URI_MAX + 2];
	struct tlsrpt_uri u;
	size_t n;

	n = (size_t)snprintf(big, sizeof(big), "https://r.example/");
	memset(big + n, 'a', sizeof(big) - n - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(uri(big, &u), -1);		/* 1025 */
	assert_non_null(strstr(err, "longer"));
	big[TLSRPT_URI_MAX] = '\0';
	assert_int_equal(uri(big, &u), 0);		/* 1024 */
	assert_int_equal(strlen(u.path), TLSRPT_URI_MAX - 17);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_txt_valid),
		cmocka_unit_test(test_txt_several_rua),
		cmocka_unit_test(test_txt_extensions),
		cmocka_unit_test(test_txt_not_tlsrpt),
		cmocka_unit_test(test_txt_bad_syntax),
		cmocka_unit_test(test_txt_bounded),
		cmocka_unit_test(test_txt_select),
		cmocka_unit_test(test_uri_mailto),
		cmocka_unit_test(test_uri_https),
		cmocka_unit_test(test_uri_bounded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
