/*
 * test_http_parse.c - the MTA-STS HTTP response parser: Content-Length,
 * chunked, too large, redirects, wrong content type, truncation, byte by
 * byte arrival; the DNS name check (sts_dns_name_check()) and http_get()
 * refusing a policy host that is no DNS name instead of cutting it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/config.h"
#include "core/ev.h"
#include "core/log.h"
#include "policy/dns.h"
#include "policy/http.h"
#include "policy/sts.h"

#define MAXB (64 * 1024)
#define S(x) x, sizeof(x) - 1

static enum http_result
parse(const char *s, int eof, struct http_resp *r)
{
	return http_parse_response(s, strlen(s), eof, MAXB, r);
}

static void
expect_body(const char *resp, const char *body)
{
	struct http_resp r;

	if (parse(resp, 0, &r) != HTTP_DONE)
		fail_msg("not parsed: %s", r.err);
	assert_int_equal(r.bodylen, strlen(body));
	assert_memory_equal(r.body, body, r.bodylen);
	http_resp_clear(&r);
}

static void
expect_err(const char *resp, int eof, const char *needle)
{
	struct http_resp r;

	assert_int_equal(parse(resp, eof, &r), HTTP_ERR);
	if (strstr(r.err, needle) == NULL)
		fail_msg("error \"%s\" lacks \"%s\"", r.err, needle);
}

static void
test_content_length(void **state)
{
	expect_body("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
	    "Content-Length: 5\r\n\r\nhello", "hello");
	expect_body("HTTP/1.1 200 OK\r\nContent-Type: text/plain; "
	    "charset=utf-8\r\nContent-Length: 5\r\n\r\nhelloEXTRA", "hello");
	expect_body("HTTP/1.0 200 OK\nContent-type: TEXT/PLAIN\n"
	    "content-length:  0 \n\n", "");
	expect_body("HTTP/1.1 200\r\nContent-Type: text/plain\r\n"
	    "Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc", "abc");
}

static void
test_chunked(void **state)
{
	expect_body("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n"
	    "5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\n", "hello, world");
	expect_body("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
	    "Transfer-Encoding: Chunked\r\n\r\n"
	    "A\r\n0123456789\r\n0\r\nX-Trailer: 1\r\n\r\n", "0123456789");
	expect_err("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
	    "Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", 0,
	    "chunk size");
	expect_err("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", 0,
	    "CRLF");
	expect_err("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
	    "Transfer-Encoding: gzip\r\n\r\n", 0, "Transfer-Encoding");
	expect_err("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
	    "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 0,
	    "both");
}

static void
test_too_large(void **state)
{
	struct http_resp r;
	char big[256];
	char *chunked;
	size_t i, o = 0;

	snprintf(big, sizeof(big), "HTTP/1.1 200 OK\r\nContent-Type: "
	    "text/plain\r\nContent-Length: %d\r\n\r\n", MAXB + 1);
	expect_err(big, 0, "limit");
	snprintf(big, sizeof(big), "HTTP/1.1 200 OK\r\nContent-Type: "
	    "text/plain\r\nContent-Length: %d\r\n\r\n", MAXB);
	assert_int_equal(parse(big, 0, &r), HTTP_MORE);
	/* chunked, 17 chunks of 4 KiB: over 64 KiB */
	chunked = malloc(100000);
	assert_non_null(chunked);
	o += (size_t)sprintf(chunked, "HTTP/1.1 200 OK\r\nContent-Type: "
	    "text/plain\r\nTransfer-Encoding: chunked\r\n\r\n");
	for (i = 0; i < 17; i++) {
		o += (size_t)sprintf(chunked + o, "1000\r\n");
		memset(chunked + o, 'a', 4096);
		o += 4096;
		o += (size_t)sprintf(chunked + o, "\r\n");
	}
	o += (size_t)sprintf(chunked + o, "0\r\n\r\n");
	assert_int_equal(http_parse_response(chunked, o, 0, MAXB, &r),
	    HTTP_ERR);
	assert_non_null(strstr(r.err, "limit"));
	/* the limit counts body bytes only: 17 x 4 KiB fits a 68 KiB cap */
	assert_int_equal(http_parse_response(chunked, o, 0, 16 * 4096, &r),
	    HTTP_ERR);
	assert_int_equal(http_parse_response(chunked, o, 0, 17 * 4096, &r),
	    HTTP_DONE);
	assert_int_equal(r.bodylen, 17 * 4096);
	http_resp_clear(&r);
	free(chunked);
	/* endless headers */
	chunked = malloc(HTTP_HDR_MAX + 100);
	o = (size_t)sprintf(chunked, "HTTP/1.1 200 OK\r\n");
	while (o < HTTP_HDR_MAX + 50)
		o += (size_t)sprintf(chunked + o, "X: y\r\n");
	assert_int_equal(http_parse_response(chunked, o, 0, MAXB, &r),
	    HTTP_ERR);
	free(chunked);
}

static void
test_status(void **state)
{
	expect_err("HTTP/1.1 301 Moved Permanently\r\nLocation: https://x/\r\n"
	    "Content-Length: 0\r\n\r\n", 0, "redirect");
	expect_err("HTTP/1.1 302 Found\r\n\r\n", 0, "redirect");
	expect_err("HTTP/1.1 404 Not Found\r\n\r\n", 0, "404");
	expect_err("HTTP/1.1 204 No Content\r\n\r\n", 0, "204");
	expect_err("HTTP/2 200\r\n\r\n", 0, "status line");
	expect_err("HTTP/1.1 20 OK\r\n\r\n", 0, "status line");
	expect_err("ICY 200 OK\r\n\r\n", 0, "status line");
	expect_err("HTTP/1.1 200OK\r\n\r\n", 0, "status line");
	/* HTTP/1.0 and 1.1 only, a first digit of 1 to 5, and three
	 * digits: no other version, class or digit is read as a status */
	expect_err("HTTP/1.2 200 OK\r\nContent-Type: text/plain\r\n"
	    "Content-Length: 1\r\n\r\nx", 0, "malformed status line");
	expect_err("HTTP/1.1 600 OK\r\n\r\n", 0, "malformed status line");
	expect_err("HTTP/1.1 20: OK\r\n\r\n", 0, "malformed status line");
}

static void
test_content_type(void **state)
{
	expect_err("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
	    "Content-Length: 1\r\n\r\nx", 0, "text/plain");
	expect_err("HTTP/1.1 200 OK\r\nContent-Type: text/plainx\r\n"
	    "Content-Length: 1\r\n\r\nx", 0, "text/plain");
	expect_err("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx", 0,
	    "Content-Type");
	/* every Content-Type line must say text/plain: nginx with
	 * "add_header Content-Type text/plain;" beside its own type of a
	 * .txt file sends two, the same (its header order here); the
	 * domain's policy is served, as other senders read it.  Red
	 * before: "repeated Content-Type", no policy for such a domain */
	expect_body("HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\n"
	    "Content-Type: text/plain\r\nContent-Length: 1\r\n"
	    "Connection: close\r\nContent-Type: text/plain\r\n"
	    "Accept-Ranges: bytes\r\n\r\nx", "x");
	expect_body("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
	    "Content-Type: TEXT/PLAIN; charset=utf-8\r\n"
	    "Content-Length: 1\r\n\r\nx", "x");
	/* one of them another type (nginx's "return 200" with its
	 * default_type and the added one), in either order: which one the
	 * host meant nobody knows */
	expect_err("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream"
	    "\r\nContent-Type: text/plain\r\nContent-Length: 1\r\n\r\nx",
	    0, "text/plain");
	expect_err("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
	    "Content-Type: text/html\r\nContent-Length: 1\r\n\r\nx", 0,
	    "text/plain");
	expect_err("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
	    "Content-Type:\r\nContent-Length: 1\r\n\r\nx", 0,
	    "text/plain");
	/* the two lines merged into one (Apache's "Header append
	 * Content-Type", a proxy combining a repeated field): taken as the
	 * two lines are.  Red before: "Content-Type is not text/plain",
	 * no policy for such a domain */
	expect_body("HTTP/1.1 200 OK\r\nContent-Type: text/plain, "
	    "text/plain\r\nContent-Length: 1\r\n\r\nx", "x");
	expect_body("HTTP/1.1 200 OK\r\nContent-Type: text/plain; "
	    "charset=utf-8,TEXT/PLAIN\r\nContent-Length: 1\r\n\r\nx", "x");
	/* a comma in a quoted parameter separates nothing; empty
	 * elements are skipped */
	expect_body("HTTP/1.1 200 OK\r\nContent-Type: text/plain; "
	    "x=\"a, text/html\\\", b\"\r\nContent-Length: 1\r\n\r\nx", "x");
	expect_body("HTTP/1.1 200 OK\r\nContent-Type: , text/plain,,"
	    "\r\nContent-Length: 1\r\n\r\nx", "x");
	/* and as with two lines, another type among them is refused, so
	 * are a list of nothing and an unterminated quoted string */
	expect_err("HTTP/1.1 200 OK\r\nContent-Type: text/plain, "
	    "text/html\r\nContent-Length: 1\r\n\r\nx", 0, "text/plain");
	expect_err("HTTP/1.1 200 OK\r\nContent-Type: text/html; x=\","
	    "text/plain\r\nContent-Length: 1\r\n\r\nx", 0, "text/plain");
	expect_err("HTTP/1.1 200 OK\r\nContent-Type: ,  ,\r\n"
	    "Content-Length: 1\r\n\r\nx", 0, "text/plain");
	expect_err("HTTP/1.1 200 OK\r\nContent-Type: text/plain; "
	    "x=\"a\r\nContent-Length: 1\r\n\r\nx", 0, "text/plain");
}

static void
test_framing(void **state)
{
	struct http_resp r;

	/* neither Content-Length nor chunked: the body ends with the
	 * connection (the TLS close_notify) */
	assert_int_equal(parse("HTTP/1.1 200 OK\r\nContent-Type: text/plain"
	    "\r\n\r\nabc", 0, &r), HTTP_MORE);
	assert_int_equal(parse("HTTP/1.1 200 OK\r\nContent-Type: text/plain"
	    "\r\n\r\nabc", 1, &r), HTTP_DONE);
	assert_int_equal(r.bodylen, 3);
	assert_string_equal(r.body, "abc");
	http_resp_clear(&r);
	expect_err("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
	    "Content-Length: 1x\r\n\r\nabc", 0, "Content-Length");
	expect_err("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
	    "Content-Length: 1\r\nContent-Length: 2\r\n\r\nabc", 0,
	    "conflicting");
	expect_err("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
	    " folded\r\nContent-Length: 1\r\n\r\nx", 0, "folding");
	expect_err("HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", 0,
	    "malformed header");
}

/* A response whose headers (the status line and the empty line after
 * them included) end at byte total, then the body "x". */
static char *
headers_of(size_t total)
{
	const char *head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
	    "Content-Length: 1\r\nX-Pad: ";
	size_t hl = strlen(head), pad = total - hl - 4;
	char *b = malloc(total + 2);

	assert_non_null(b);
	memcpy(b, head, hl);
	memset(b + hl, 'a', pad);
	memcpy(b + hl + pad, "\r\n\r\nx", 6);
	b[total + 1] = '\0';
	return b;
}

/*
 * The header section's bound, HTTP_HDR_MAX octets up to and with the
 * empty line: at it the policy is read, one past it refused, and so is a
 * header line that has not ended past it (no waiting for more).  A
 * header line without a name, or with white space in its name (RFC 9112
 * section 5.1: "Content-Type :" is no Content-Type a server may send),
 * is malformed, not another header skipped.  A Content-Length that is
 * empty, or too long to be read without overflow, is refused.
 */
static void
test_header_bounds(void **state)
{
	struct http_resp r;
	char *b;

	(void)state;
	b = headers_of(HTTP_HDR_MAX);
	assert_int_equal(http_parse_response(b, HTTP_HDR_MAX + 1, 0, MAXB,
	    &r), HTTP_DONE);
	assert_int_equal(r.bodylen, 1);
	http_resp_clear(&r);
	free(b);
	b = headers_of(HTTP_HDR_MAX + 1);
	expect_err(b, 0, "headers too long");
	free(b);
	/* a header line still open: more to come up to the bound, then
	 * refused */
	b = malloc(HTTP_HDR_MAX + 2);
	assert_non_null(b);
	memcpy(b, "HTTP/1.1 200 OK\r\nX-Pad: ", 24);
	memset(b + 24, 'a', HTTP_HDR_MAX + 1 - 24);
	b[HTTP_HDR_MAX + 1] = '\0';
	assert_int_equal(http_parse_response(b, HTTP_HDR_MAX, 0, MAXB, &r),
	    HTTP_MORE);
	expect_err(b, 0, "headers too long");
	free(b);

	expect_err("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
	    ": x\r\nContent-Length: 1\r\n\r\nx", 0, "malformed header line");
	expect_err("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
	    "Content-Length : 1\r\n\r\nx", 0, "malformed header name");
	expect_err("HTTP/1.1 200 OK\r\nContent Type: text/html\r\n"
	    "Content-Type: text/plain\r\nContent-Length: 1\r\n\r\nx", 0,
	    "malformed header name");
	expect_err("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
	    "Content-Length: \r\n\r\n", 0, "bad Content-Length");
	/* 2^64 + 5: read on in a long long, it wraps to 5 */
	expect_err("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
	    "Content-Length: 18446744073709551621\r\n\r\nhello", 0,
	    "bad Content-Length");
	/* white space before a Content-Type's parameters is the type's
	 * (RFC 9110 section 5.6.6: OWS ";") */
	expect_body("HTTP/1.1 200 OK\r\nContent-Type: text/plain ; "
	    "charset=utf-8\r\nContent-Length: 1\r\n\r\nx", "x");
}

#define CHUNKED "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n" \
	"Transfer-Encoding: chunked\r\n\r\n"

/* A response of prefix then n octets c, not ended: its result. */
static enum http_result
open_line(const char *prefix, char c, size_t n, struct http_resp *r)
{
	size_t pl = strlen(prefix);
	char *b = malloc(pl + n);
	enum http_result hr;

	assert_non_null(b);
	memcpy(b, prefix, pl);
	memset(b + pl, c, n);
	hr = http_parse_response(b, pl + n, 0, MAXB, r);
	free(b);
	return hr;
}

/*
 * The body's bounds, at maxbody and one past it, framed by the end of
 * the connection and chunked; a chunk size line and a trailer line that
 * have not ended are waited on up to 1,024 and 4,096 octets, refused
 * past them; a chunk size has at most 8 hex digits (more, leading zeros
 * or not, and one of 2^64 - 1 after a chunk could wrap the body's count
 * under its bound) and at least one (";x" is no last chunk that ends the
 * body); white space before a chunk extension and a bare LF after a
 * chunk are taken.  A chunk's data whose end is the buffer's end waits
 * for its CRLF: the octet past the buffer (here an 'X', as a receive
 * buffer may hold) is never read.
 */
static void
test_body_bounds(void **state)
{
	struct http_resp r;
	const char *eofb = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
	    "\r\n0123456789A";
	const char *cut;

	(void)state;
	/* framed by the end: 10 octets under a bound of 10 read, 11 refused
	 * before the end */
	assert_int_equal(http_parse_response(eofb, strlen(eofb) - 1, 1, 10,
	    &r), HTTP_DONE);
	assert_int_equal(r.bodylen, 10);
	http_resp_clear(&r);
	assert_int_equal(http_parse_response(eofb, strlen(eofb), 0, 10, &r),
	    HTTP_ERR);
	assert_non_null(strstr(r.err, "limit"));
	/* chunked: the same */
	assert_int_equal(http_parse_response(S(CHUNKED "A\r\n0123456789\r\n"
	    "0\r\n\r\n"), 0, 10, &r), HTTP_DONE);
	assert_int_equal(r.bodylen, 10);
	http_resp_clear(&r);
	assert_int_equal(http_parse_response(S(CHUNKED "5\r\nhello\r\n"
	    "6\r\nworld!\r\n0\r\n\r\n"), 0, 10, &r), HTTP_ERR);
	assert_non_null(strstr(r.err, "limit"));

	/* lines not ended */
	assert_int_equal(open_line(CHUNKED "5;", 'x', 1022, &r), HTTP_MORE);
	assert_int_equal(open_line(CHUNKED "5;", 'x', 1023, &r), HTTP_ERR);
	assert_non_null(strstr(r.err, "chunk size line too long"));
	assert_int_equal(open_line(CHUNKED "0\r\nX-T: ", 'x', 4091, &r),
	    HTTP_MORE);
	assert_int_equal(open_line(CHUNKED "0\r\nX-T: ", 'x', 4092, &r),
	    HTTP_ERR);
	assert_non_null(strstr(r.err, "trailers too long"));

	/* chunk sizes */
	expect_err(CHUNKED "000000005\r\nhello\r\n0\r\n\r\n", 0,
	    "chunk size too long");
	expect_err(CHUNKED "5\r\nhello\r\nFFFFFFFFFFFFFFFF\r\nx\r\n"
	    "0\r\n\r\n", 0, "chunk size too long");
	expect_err(CHUNKED ";x\r\n\r\n", 0, "malformed chunk size");
	expect_body(CHUNKED "00000005 ;ext=1\r\nhello\r\n0\t;e\r\n\r\n",
	    "hello");
	expect_body(CHUNKED "5\nhello\n0\n\n", "hello");

	/* the octet past the buffer */
	cut = CHUNKED "5\r\nhelloX";
	assert_int_equal(http_parse_response(cut, strlen(cut) - 1, 0, MAXB,
	    &r), HTTP_MORE);
	cut = CHUNKED "5\r\nhello\rX";
	assert_int_equal(http_parse_response(cut, strlen(cut) - 1, 0, MAXB,
	    &r), HTTP_MORE);
}

static void
test_truncated(void **state)
{
	struct http_resp r;

	assert_int_equal(parse("HTTP/1.1 200 OK\r\nContent-Type: text/plain"
	    "\r\nContent-Length: 10\r\n\r\nabc", 0, &r), HTTP_MORE);
	expect_err("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
	    "Content-Length: 10\r\n\r\nabc", 1, "truncated");
	expect_err("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n5\r\nhel", 1, "truncated");
	expect_err("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", 1,
	    "truncated");
	expect_err("HTTP/1.1 200 OK\r\nContent-Ty", 1, "truncated");
	expect_err("", 1, "truncated");
	assert_int_equal(parse("", 0, &r), HTTP_MORE);
	assert_int_equal(parse("HTTP/1.1 200 OK\r\nContent-Type: text/plain"
	    "\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n", 0,
	    &r), HTTP_MORE);
}

/* The whole response arriving one byte at a time: MORE until the end. */
static void
test_bytewise(void **state)
{
	const char *resp = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n"
	    "0\r\n\r\n";
	size_t n = strlen(resp), i;
	struct http_resp r;

	for (i = 0; i < n; i++)
		assert_int_equal(http_parse_response(resp, i, 0, MAXB, &r),
		    HTTP_MORE);
	assert_int_equal(http_parse_response(resp, n, 0, MAXB, &r), HTTP_DONE);
	assert_string_equal(r.body, "abcde");
	http_resp_clear(&r);
}

/* labels of n octets joined by dots, total octets exactly len */
static void
name_of(char *buf, size_t len, const char *prefix)
{
	size_t i, p = strlen(prefix);

	memcpy(buf, prefix, p);
	for (i = p; i < len; i++)
		buf[i] = (i - p) % 50 == 49 ? '.' : 'a';
	if (buf[len - 1] == '.')
		buf[len - 1] = 'b';
	buf[len] = '\0';
}

/* POST replies (TLSRPT): only the status line counts. */
static void
test_status_line(void **state)
{
	int code = 0;

	assert_int_equal(http_status_line("HTTP/1.1 201 Created\r\n", 22,
	    &code), HTTP_DONE);
	assert_int_equal(code, 201);
	assert_int_equal(http_status_line("HTTP/1.0 204\r\n", 14, &code),
	    HTTP_DONE);
	assert_int_equal(code, 204);
	assert_int_equal(http_status_line("HTTP/1.1 500 Oops\n", 18, &code),
	    HTTP_DONE);
	assert_int_equal(code, 500);
	assert_int_equal(http_status_line("HTTP/1.1 20", 11, &code),
	    HTTP_MORE);
	assert_int_equal(http_status_line("HTTP/2 200\r\n", 12, &code),
	    HTTP_ERR);
	assert_int_equal(http_status_line("HTTP/1.1 2000 x\r\n", 17,
	    &code), HTTP_ERR);
	assert_int_equal(http_status_line("SMTP/1.1 200 x\r\n", 16, &code),
	    HTTP_ERR);
	/* a TLSRPT receiver's reply is delivered on a 2xx status alone:
	 * "20:" is no 2xx (read as a digit, it was 210), nor a 6xx a
	 * status at all */
	code = 0;
	assert_int_equal(http_status_line("HTTP/1.1 20: x\r\n", 16, &code),
	    HTTP_ERR);
	assert_int_equal(http_status_line("HTTP/1.1 2:0 x\r\n", 16, &code),
	    HTTP_ERR);
	assert_int_equal(http_status_line("HTTP/1.1 600 x\r\n", 16, &code),
	    HTTP_ERR);
	assert_int_equal(http_status_line("HTTP/1.2 200 x\r\n", 16, &code),
	    HTTP_ERR);
	assert_int_equal(code, 0);
}

/*
 * Interim responses (100 Continue, 103 Early Hints) come before the final
 * one and are no answer: the POST's status is the final response's, and a
 * policy GET reads the final response.  On the old code a 100 before a
 * 200 was a failed POST (retried for a day, never delivered) and a
 * failed policy fetch.  101 is final (nothing was upgraded); more than 8,
 * or interim headers past the header limit, are refused.
 */
static void
test_interim_responses(void **state)
{
	struct http_resp r;
	char *big;
	size_t n;
	int code = 0, i;

	(void)state;
	assert_int_equal(http_status_line(S("HTTP/1.1 100 Continue\r\n\r\n"
	    "HTTP/1.1 202 Accepted\r\n"), &code), HTTP_DONE);
	assert_int_equal(code, 202);
	assert_int_equal(http_status_line(S("HTTP/1.1 103 Early Hints\r\n"
	    "Link: </a>; rel=preload\r\n\r\nHTTP/1.1 100 Continue\n\n"
	    "HTTP/1.1 500 Oops\r\n"), &code), HTTP_DONE);
	assert_int_equal(code, 500);
	/* the interim one alone, or cut in its headers: more to come */
	assert_int_equal(http_status_line(S("HTTP/1.1 100 Continue\r\n"),
	    &code), HTTP_MORE);
	assert_int_equal(http_status_line(S("HTTP/1.1 100 Continue\r\n\r\n"),
	    &code), HTTP_MORE);
	assert_int_equal(http_status_line(S("HTTP/1.1 100 Continue\r\n\r\n"
	    "HTTP/1.1 2"), &code), HTTP_MORE);
	assert_int_equal(http_status_line(S("HTTP/1.1 100 Continue\r\n\r\n"
	    "garbage\r\n"), &code), HTTP_ERR);
	/* 101 is final */
	assert_int_equal(http_status_line(S("HTTP/1.1 101 Switching\r\n\r\n"
	    "HTTP/1.1 200 OK\r\n"), &code), HTTP_DONE);
	assert_int_equal(code, 101);

	/* a policy after an interim response */
	assert_int_equal(http_parse_response(S("HTTP/1.1 100 Continue\r\n\r\n"
	    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
	    "Content-Length: 5\r\n\r\nhello"), 0, 1000, &r), HTTP_DONE);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.bodylen, 5);
	assert_memory_equal(r.body, "hello", 5);
	http_resp_clear(&r);
	assert_int_equal(http_parse_response(S("HTTP/1.1 103 Early\r\n\r\n"),
	    1, 1000, &r), HTTP_ERR);
	assert_string_equal(r.err, "truncated response (no status line)");

	/* nine interim responses: refused; eight: fine */
	n = 9 * 22 + 64;
	assert_non_null(big = malloc(n));
	for (i = 0, n = 0; i < 9; i++)
		n += (size_t)sprintf(big + n, "HTTP/1.1 100 Continue\r\n\r\n");
	n += (size_t)sprintf(big + n, "HTTP/1.1 200 OK\r\n");
	assert_int_equal(http_status_line(big, n, &code), HTTP_ERR);
	assert_int_equal(http_status_line(big + 25, n - 25, &code), HTTP_DONE);
	assert_int_equal(code, 200);
	free(big);
	/* interim headers beyond the limit */
	assert_non_null(big = malloc(HTTP_HDR_MAX + 200));
	n = (size_t)sprintf(big, "HTTP/1.1 103 Hints\r\n");
	while (n < HTTP_HDR_MAX + 100)
		n += (size_t)sprintf(big + n, "Link: </x>\r\n");
	assert_int_equal(http_status_line(big, n, &code), HTTP_ERR);
	free(big);
}

static void
test_dns_name_check(void **state)
{
	char buf[400], err[160];

	assert_int_equal(sts_dns_name_check("mta-sts.example.com", err,
	    sizeof(err)), 0);
	assert_int_equal(sts_dns_name_check("_mta-sts.example.com", err,
	    sizeof(err)), 0);
	assert_int_equal(sts_dns_name_check("_25._tcp.mx.xn--bcher-kva.test",
	    err, sizeof(err)), 0);
	name_of(buf, 253, "mta-sts.");
	assert_int_equal(sts_dns_name_check(buf, err, sizeof(err)), 0);
	name_of(buf, 254, "mta-sts.");
	assert_int_equal(sts_dns_name_check(buf, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "253"));
	name_of(buf, 300, "_mta-sts.");
	assert_int_equal(sts_dns_name_check(buf, err, sizeof(err)), -1);
	memset(buf, 'a', 64);
	memcpy(buf + 64, ".test", 6);
	assert_int_equal(sts_dns_name_check(buf, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "63"));
	buf[62] = '.';			/* 62, ".", "a", ".test" */
	assert_int_equal(sts_dns_name_check(buf, err, sizeof(err)), 0);
	assert_int_equal(sts_dns_name_check("", err, sizeof(err)), -1);
	assert_int_equal(sts_dns_name_check("a..b", err, sizeof(err)), -1);
	assert_int_equal(sts_dns_name_check("example.com.", err,
	    sizeof(err)), -1);
	assert_int_equal(sts_dns_name_check("-a.example", err, sizeof(err)),
	    -1);
	assert_int_equal(sts_dns_name_check("a-.example", err, sizeof(err)),
	    -1);
	assert_int_equal(sts_dns_name_check("a_b.example", err, sizeof(err)),
	    -1);
	assert_int_equal(sts_dns_name_check("mta-sts.a_b.example", err,
	    sizeof(err)), -1);
	assert_int_equal(sts_dns_name_check("b\xc3\xbc" "cher.test", err,
	    sizeof(err)), -1);	/* U-labels: IDNA first */
	assert_int_equal(sts_dns_name_check("a b.test", err, sizeof(err)),
	    -1);
}

static void
noop_cb(void *arg, int ok, const char *body, size_t len, const char *kind,
    const char *err)
{
	(*(int *)arg)++;
}

/* A policy host that is no DNS name is refused before any lookup, not
 * cut to fit (a cut name is another host). */
static void
test_get_refuses_long_host(void **state)
{
	char err[256], host[400], path[1200];
	struct config *cfg = config_load(NULL, err, sizeof(err));
	struct ev_loop *loop = ev_loop_new();
	struct dns *dns;
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	struct http_req *h;
	int calls = 0;

	assert_non_null(cfg);
	log_init("test", 0, LOG_LVL_ERR);
	cfg->dns_servers.v = calloc(1, sizeof(char *));
	cfg->dns_servers.v[0] = strdup("127.0.0.1:9");
	cfg->dns_servers.n = 1;
	dns = dns_new(loop, cfg, err, sizeof(err));
	assert_non_null(dns);
	name_of(host, 261, "mta-sts.");
	assert_null(http_get(loop, dns, ctx, host, "/.well-known/mta-sts.txt",
	    1000, MAXB, 0, noop_cb, &calls));
	name_of(host, 253, "mta-sts.");
	h = http_get(loop, dns, ctx, host, "/.well-known/mta-sts.txt", 1000,
	    MAXB, 0, noop_cb, &calls);
	assert_non_null(h);
	http_cancel(h);
	/* a path that does not fit whole is refused, not cut (a cut path
	 * is another resource): 1,099 octets fit, 1,100 do not */
	memset(path, 'p', sizeof(path));
	path[0] = '/';
	path[1100] = '\0';
	assert_null(http_get(loop, dns, ctx, "mta-sts.x.test", path, 1000,
	    MAXB, 0, noop_cb, &calls));
	path[1099] = '\0';
	h = http_get(loop, dns, ctx, "mta-sts.x.test", path, 1000, MAXB, 0,
	    noop_cb, &calls);
	assert_non_null(h);
	http_cancel(h);
	assert_int_equal(calls, 0);
	dns_free(dns);
	SSL_CTX_free(ctx);
	ev_loop_free(loop);
	config_free(cfg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_content_length),
		cmocka_unit_test(test_chunked),
		cmocka_unit_test(test_too_large),
		cmocka_unit_test(test_status),
		cmocka_unit_test(test_content_type),
		cmocka_unit_test(test_framing),
		cmocka_unit_test(test_header_bounds),
		cmocka_unit_test(test_body_bounds),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_bytewise),
		cmocka_unit_test(test_dns_name_check),
		cmocka_unit_test(test_status_line),
		cmocka_unit_test(test_interim_responses),
		cmocka_unit_test(test_get_refuses_long_host),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
