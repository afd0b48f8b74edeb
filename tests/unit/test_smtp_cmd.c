/*
 * test_smtp_cmd.c - unit tests for the SMTP command parser
 * (smtp_cmd_parse, smtp_verb_name).
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

static struct smtp_cmd cmd;

static int
parse(const char *s, const char **err)
{
	return smtp_cmd_parse(s, strlen(s), &cmd, err);
}

/* Parses s, which must be accepted, and checks verb/path/domain/params. */
static void
ok(const char *s, enum smtp_verb v, const char *path, const char *domain,
    const char *params)
{
	const char *err = "unset";

	if (parse(s, &err) != 0)
		fail_msg("rejected \"%s\": %s", s, err ? err : "(null)");
	assert_int_equal(cmd.verb, v);
	if (path != NULL)
		assert_string_equal(cmd.path, path);
	if (domain != NULL)
		assert_string_equal(cmd.domain, domain);
	if (params != NULL) {
		assert_int_equal(cmd.paramslen, strlen(params));
		assert_memory_equal(cmd.params, params, cmd.paramslen);
	}
}

/* Parses s, which must be refused with verb v and an error text. */
static void
bad(const char *s, enum smtp_verb v)
{
	const char *err = NULL;

	if (parse(s, &err) != -1)
		fail_msg("accepted \"%s\"", s);
	if (err == NULL || *err == '\0')
		fail_msg("no error text for \"%s\"", s);
	if (cmd.verb != v)
		fail_msg("\"%s\": verb %s, want %s", s,
		    smtp_verb_name(cmd.verb), smtp_verb_name(v));
}

static void
test_every_verb(void **state)
{
	static const struct {
		const char *line;
		enum smtp_verb verb;
		const char *arg;
	} t[] = {
		{ "HELO mx.example.com", SMTP_CMD_HELO, "mx.example.com" },
		{ "EHLO [192.0.2.7]", SMTP_CMD_EHLO, "[192.0.2.7]" },
		{ "MAIL FROM:<a@b.example>", SMTP_CMD_MAIL, "FROM:<a@b.example>" },
		{ "RCPT TO:<c@d.example>", SMTP_CMD_RCPT, "TO:<c@d.example>" },
		{ "DATA", SMTP_CMD_DATA, "" },
		{ "RSET", SMTP_CMD_RSET, "" },
		{ "NOOP", SMTP_CMD_NOOP, "" },
		{ "NOOP anything at all", SMTP_CMD_NOOP, "anything at all" },
		{ "QUIT", SMTP_CMD_QUIT, "" },
		{ "VRFY postmaster", SMTP_CMD_VRFY, "postmaster" },
		{ "EXPN staff", SMTP_CMD_EXPN, "staff" },
		{ "HELP", SMTP_CMD_HELP, "" },
		{ "HELP MAIL", SMTP_CMD_HELP, "MAIL" },
		{ "STARTTLS", SMTP_CMD_STARTTLS, "" },
		{ "BDAT 1000 LAST", SMTP_CMD_BDAT, "1000 LAST" },
		{ "AUTH PLAIN dGVzdAB0ZXN0AHRlc3Q=", SMTP_CMD_AUTH,
		    "PLAIN dGVzdAB0ZXN0AHRlc3Q=" },
	};
	const char *err;
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		err = "unset";
		if (parse(t[i].line, &err) != 0)
			fail_msg("rejected \"%s\": %s", t[i].line, err);
		assert_null(err);
		assert_int_equal(cmd.verb, t[i].verb);
		assert_int_equal(cmd.arglen, strlen(t[i].arg));
		assert_memory_equal(cmd.arg, t[i].arg, cmd.arglen);
		/* arg points into the line */
		if (cmd.arglen > 0)
			assert_ptr_equal(cmd.arg, t[i].line +
			    strlen(t[i].line) - cmd.arglen);
	}
}

static void
test_verb_names(void **state)
{
	static const char *const names[] = {
		"HELO", "EHLO", "MAIL", "RCPT", "DATA", "RSET", "NOOP", "QUIT",
		"VRFY", "EXPN", "HELP", "STARTTLS", "BDAT", "AUTH",
	};
	size_t i;

	assert_int_equal(SMTP_CMD_HELO, 1);
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		assert_string_equal(smtp_verb_name((enum smtp_verb)(i + 1)),
		    names[i]);
	assert_string_equal(smtp_verb_name(SMTP_CMD_UNKNOWN), "UNKNOWN");
	assert_string_equal(smtp_verb_name((enum smtp_verb)999), "UNKNOWN");
	assert_string_equal(smtp_verb_name((enum smtp_verb)-1), "UNKNOWN");
}

static void
test_case_insensitive(void **state)
{
	ok("ehlo client.example", SMTP_CMD_EHLO, NULL, NULL, NULL);
	ok("Helo client.example", SMTP_CMD_HELO, NULL, NULL, NULL);
	ok("mail from:<A@B.Example>", SMTP_CMD_MAIL, "A@B.Example",
	    "b.example", "");
	ok("Mail From:<x@y.example>", SMTP_CMD_MAIL, "x@y.example", NULL, "");
	ok("rcpt to:<x@Y.EXAMPLE>", SMTP_CMD_RCPT, "x@Y.EXAMPLE", "y.example",
	    "");
	ok("RcPt tO:<x@y.example>", SMTP_CMD_RCPT, NULL, NULL, NULL);
	ok("sTaRtTlS", SMTP_CMD_STARTTLS, NULL, NULL, NULL);
	ok("data", SMTP_CMD_DATA, NULL, NULL, NULL);
	ok("quit", SMTP_CMD_QUIT, NULL, NULL, NULL);
}

static void
test_null_paths(void **state)
{
	ok("MAIL FROM:<>", SMTP_CMD_MAIL, "", "", "");
	ok("MAIL FROM:<> SIZE=1000", SMTP_CMD_MAIL, "", "", "SIZE=1000");
	ok("MAIL FROM: <>", SMTP_CMD_MAIL, "", "", "");
	bad("RCPT TO:<>", SMTP_CMD_RCPT);
	bad("RCPT TO: <>", SMTP_CMD_RCPT);
	bad("RCPT TO:<> NOTIFY=NEVER", SMTP_CMD_RCPT);
}

static void
test_missing_brackets(void **state)
{
	/* (a bare path without any bracket: test_bare_path) */
	bad("MAIL FROM:<a@b.example", SMTP_CMD_MAIL);
	bad("MAIL FROM:a@b.example>", SMTP_CMD_MAIL);
	bad("RCPT TO:<c@d.example", SMTP_CMD_RCPT);
	bad("RCPT TO:", SMTP_CMD_RCPT);
	bad("MAIL FROM:", SMTP_CMD_MAIL);
	bad("MAIL FROM:<", SMTP_CMD_MAIL);
	bad("MAIL", SMTP_CMD_MAIL);
	bad("RCPT", SMTP_CMD_RCPT);
	/* keyword and colon */
	bad("MAIL FROM <a@b.example>", SMTP_CMD_MAIL);
	bad("MAIL TO:<a@b.example>", SMTP_CMD_MAIL);
	bad("RCPT FROM:<a@b.example>", SMTP_CMD_RCPT);
	bad("MAIL FRO:<a@b.example>", SMTP_CMD_MAIL);
	bad("RCPT TO :<a@b.example>", SMTP_CMD_RCPT);
	bad("MAIL FROM:<<a@b.example>>", SMTP_CMD_MAIL);
}

/* Checks that the line smtp_cmd_bracket() makes of the last parse is want,
 * and that it parses, not bare, to the same path, domain and params. */
static void
bracketed(const char *want)
{
	struct smtp_cmd c2;
	char out[SMTP_LINE_MAX + 1], path[SMTP_LINE_MAX + 1];
	char dom[SMTP_LINE_MAX + 1], params[SMTP_LINE_MAX + 1];
	const char *err = NULL;
	size_t n;

	n = smtp_cmd_bracket(&cmd, out, sizeof(out));
	assert_int_equal(n, strlen(want));
	assert_string_equal(out, want);
	snprintf(path, sizeof(path), "%s", cmd.path);
	snprintf(dom, sizeof(dom), "%s", cmd.domain);
	snprintf(params, sizeof(params), "%.*s", (int)cmd.paramslen,
	    cmd.params);
	if (smtp_cmd_parse(out, n, &c2, &err) != 0)
		fail_msg("\"%s\" refused: %s", out, err);
	assert_int_equal(c2.bare, 0);
	assert_int_equal(c2.verb, cmd.verb);
	assert_string_equal(c2.path, path);
	assert_string_equal(c2.domain, dom);
	assert_int_equal(c2.paramslen, strlen(params));
	assert_memory_equal(c2.params, params, c2.paramslen);
}

/*
 * MAIL FROM:a@b.example, as scan-to-mail devices send it and Postfix,
 * Exchange and Sendmail take it: one token, the mailbox grammar of <...>,
 * relayed in the bracketed form.
 */
static void
test_bare_path(void **state)
{
	ok("MAIL FROM:a@b.example", SMTP_CMD_MAIL, "a@b.example", "b.example",
	    "");
	assert_int_equal(cmd.bare, 1);
	bracketed("MAIL FROM:<a@b.example>");
	ok("RCPT TO:c@D.Example.", SMTP_CMD_RCPT, "c@D.Example.", "d.example",
	    "");
	assert_int_equal(cmd.bare, 1);
	bracketed("RCPT TO:<c@D.Example.>");
	/* the spaces mxguard skipped, and trailing blanks */
	ok("mail  from:  a@b.example  ", SMTP_CMD_MAIL, "a@b.example",
	    "b.example", "");
	bracketed("MAIL FROM:<a@b.example>");
	/* with parameters */
	ok("MAIL FROM:a@b.example SIZE=100 BODY=8BITMIME", SMTP_CMD_MAIL,
	    "a@b.example", "b.example", "SIZE=100 BODY=8BITMIME");
	assert_int_equal(cmd.bare, 1);
	bracketed("MAIL FROM:<a@b.example> SIZE=100 BODY=8BITMIME");
	ok("RCPT TO:c@d.example   NOTIFY=NEVER", SMTP_CMD_RCPT, "c@d.example",
	    "d.example", "NOTIFY=NEVER");
	bracketed("RCPT TO:<c@d.example> NOTIFY=NEVER");
	/* what else the grammar takes: literals, quoted local parts
	 * without spaces, postmaster */
	ok("RCPT TO:u@[192.0.2.1]", SMTP_CMD_RCPT, "u@[192.0.2.1]",
	    "[192.0.2.1]", "");
	ok("RCPT TO:\"a@b\"@d.example", SMTP_CMD_RCPT, "\"a@b\"@d.example",
	    "d.example", "");
	bracketed("RCPT TO:<\"a@b\"@d.example>");
	ok("RCPT TO:postmaster", SMTP_CMD_RCPT, "postmaster", "", "");
	bracketed("RCPT TO:<postmaster>");
	/* a bracketed path is not bare */
	ok("MAIL FROM:<a@b.example>", SMTP_CMD_MAIL, "a@b.example", NULL, "");
	assert_int_equal(cmd.bare, 0);
}

/* What a bare path may not be: a second, bracketed address riding along
 * (a lenient server could read that one while mxguard judged the first),
 * a source route, a quoted part with a space, nothing. */
static void
test_bare_path_refused(void **state)
{
	const char *err;

	/* any '<' or '>' anywhere after the colon */
	bad("RCPT TO:a@x.example <b@y.example>", SMTP_CMD_RCPT);
	bad("RCPT TO:a@x.example NOTIFY=<b@y.example>", SMTP_CMD_RCPT);
	bad("RCPT TO:a@x.example X=<", SMTP_CMD_RCPT);
	bad("RCPT TO:a@x.example X=>", SMTP_CMD_RCPT);
	bad("RCPT TO:a@x.example<b@y.example>", SMTP_CMD_RCPT);
	bad("RCPT TO:a<b>@x.example", SMTP_CMD_RCPT);
	bad("MAIL FROM:a@b.example>", SMTP_CMD_MAIL);
	bad("MAIL FROM:a@b.example <>", SMTP_CMD_MAIL);
	err = NULL;
	assert_int_equal(parse("RCPT TO:a@x.example <b@y.example>", &err),
	    -1);
	assert_string_equal(err,
	    "5.5.4 Syntax: address must be enclosed in <>");
	/* no source route without the brackets */
	bad("RCPT TO:@r.example:c@d.example", SMTP_CMD_RCPT);
	bad("RCPT TO:@r.example,@s.example:c@d.example", SMTP_CMD_RCPT);
	/* one token: a quoted local part with a space is cut, and refused */
	bad("RCPT TO:\"a b\"@d.example", SMTP_CMD_RCPT);
	bad("RCPT TO:\"a\\ b\"@d.example", SMTP_CMD_RCPT);
	/* the token must be a whole mailbox */
	bad("RCPT TO:c@d.example,e@f.example", SMTP_CMD_RCPT);
	bad("RCPT TO:c@d.example;e@f.example", SMTP_CMD_RCPT);
	bad("RCPT TO:c@d.example:e@f.example", SMTP_CMD_RCPT);
	bad("RCPT TO:c@d.example\te@f.example", SMTP_CMD_RCPT);
	bad("RCPT TO:c@@d.example", SMTP_CMD_RCPT);
	bad("RCPT TO:c@d..example", SMTP_CMD_RCPT);
	bad("RCPT TO:user", SMTP_CMD_RCPT);
	bad("MAIL FROM:postmaster", SMTP_CMD_MAIL);
	bad("RCPT TO:@", SMTP_CMD_RCPT);
	/* empty: MAIL FROM:<> is the null path only in brackets */
	bad("MAIL FROM:", SMTP_CMD_MAIL);
	bad("MAIL FROM:   ", SMTP_CMD_MAIL);
	bad("RCPT TO:", SMTP_CMD_RCPT);
	bad("RCPT TO: ", SMTP_CMD_RCPT);
	bad("RCPT TO:<>", SMTP_CMD_RCPT);
	/* parameters as today */
	bad("MAIL FROM:a@b.example SIZE=1\x01", SMTP_CMD_MAIL);
	bad("MAIL FROM:a@b.example X=\ty", SMTP_CMD_MAIL);
	/* the keyword as today */
	bad("MAIL FROM a@b.example", SMTP_CMD_MAIL);
	bad("RCPT TO c@d.example", SMTP_CMD_RCPT);
}

/* The bracketed form is two bytes longer, and normalises the spaces: a
 * bare line whose bracketed form would not fit in a line is refused. */
static void
test_bare_path_too_long(void **state)
{
	char line[SMTP_LINE_MAX + 1];
	size_t pre = strlen("RCPT TO:u@d.example X=");
	const char *err = NULL;

	/* the bracketed form exactly SMTP_LINE_MAX */
	memset(line, 'y', sizeof(line));
	memcpy(line, "RCPT TO:u@d.example X=", pre);
	line[SMTP_LINE_MAX - 2] = '\0';
	ok(line, SMTP_CMD_RCPT, "u@d.example", "d.example", NULL);
	assert_int_equal(smtp_cmd_bracket(&cmd, NULL, 0), SMTP_LINE_MAX);
	/* one more: refused, where the bracketed one would be accepted
	 * by its length and refused by the server's */
	memset(line, 'y', sizeof(line));
	memcpy(line, "RCPT TO:u@d.example X=", pre);
	line[SMTP_LINE_MAX - 1] = '\0';
	assert_int_equal(parse(line, &err), -1);
	assert_string_equal(err, "5.5.2 Line too long");
	/* spaces the bracketed form drops count for nothing */
	memset(line, 'y', sizeof(line));
	memcpy(line, "RCPT  TO:    u@d.example     X=", pre + 9);
	line[SMTP_LINE_MAX] = '\0';
	ok(line, SMTP_CMD_RCPT, "u@d.example", "d.example", NULL);
	assert_int_equal(smtp_cmd_bracket(&cmd, NULL, 0), SMTP_LINE_MAX - 7);
	/* out too small: nothing written, the length returned */
	line[0] = 'z';
	assert_int_equal(smtp_cmd_bracket(&cmd, line, 10), SMTP_LINE_MAX - 7);
	assert_int_equal(line[0], 'z');
}

static void
test_space_after_colon(void **state)
{
	ok("MAIL FROM: <a@b.example>", SMTP_CMD_MAIL, "a@b.example",
	    "b.example", "");
	ok("RCPT TO:  <c@d.example> NOTIFY=NEVER", SMTP_CMD_RCPT,
	    "c@d.example", "d.example", "NOTIFY=NEVER");
	ok("MAIL  FROM:<a@b.example>", SMTP_CMD_MAIL, "a@b.example", NULL,
	    NULL);
}

static void
test_params(void **state)
{
	ok("MAIL FROM:<a@b.example> SIZE=100 BODY=8BITMIME", SMTP_CMD_MAIL,
	    "a@b.example", "b.example", "SIZE=100 BODY=8BITMIME");
	ok("MAIL FROM:<a@b.example>  SMTPUTF8", SMTP_CMD_MAIL, NULL, NULL,
	    "SMTPUTF8");
	ok("RCPT TO:<c@d.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;c@d",
	    SMTP_CMD_RCPT, "c@d.example", "d.example",
	    "NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;c@d");
	/* trailing blanks are dropped */
	ok("MAIL FROM:<a@b.example>   ", SMTP_CMD_MAIL, "a@b.example", NULL, "");
	ok("MAIL FROM:<a@b.example> SIZE=5 \t", SMTP_CMD_MAIL, NULL, NULL,
	    "SIZE=5");
	/* params must be separated from '>' */
	bad("MAIL FROM:<a@b.example>SIZE=100", SMTP_CMD_MAIL);
	bad("MAIL FROM:<a@b.example>>", SMTP_CMD_MAIL);
	/* no control characters in what may be relayed */
	bad("MAIL FROM:<a@b.example> SIZE=1\x01", SMTP_CMD_MAIL);
	bad("MAIL FROM:<a@b.example> X=\ty", SMTP_CMD_MAIL);
	bad("MAIL FROM:<a@b.example> X=\x7f", SMTP_CMD_MAIL);
	/* params point into the line */
	{
		const char *s = "MAIL FROM:<a@b.example> BODY=7BIT";

		assert_int_equal(parse(s, NULL), 0);
		assert_ptr_equal(cmd.params, s + strlen(s) - 9);
	}
}

static void
test_domain_normalised(void **state)
{
	ok("RCPT TO:<User@Example.COM.>", SMTP_CMD_RCPT, "User@Example.COM.",
	    "example.com", "");
	ok("RCPT TO:<u@MX.Example.Org>", SMTP_CMD_RCPT, NULL, "mx.example.org",
	    NULL);
	ok("MAIL FROM:<u@localhost>", SMTP_CMD_MAIL, NULL, "localhost", NULL);
	ok("RCPT TO:<u@xn--bcher-kva.example>", SMTP_CMD_RCPT, NULL,
	    "xn--bcher-kva.example", NULL);
	/* UTF-8 domain (SMTPUTF8): bytes kept, ASCII lowercased */
	ok("RCPT TO:<u@B\xc3\xbc" "cher.Example>", SMTP_CMD_RCPT, NULL,
	    "b\xc3\xbc" "cher.example", NULL);
	ok("RCPT TO:<u@_dmarc.Example>", SMTP_CMD_RCPT, NULL, "_dmarc.example",
	    NULL);
	/* bad domains */
	bad("RCPT TO:<u@>", SMTP_CMD_RCPT);
	bad("RCPT TO:<u@.example>", SMTP_CMD_RCPT);
	bad("RCPT TO:<u@a..example>", SMTP_CMD_RCPT);
	bad("RCPT TO:<u@exa mple.com>", SMTP_CMD_RCPT);
	bad("RCPT TO:<u@a.example..>", SMTP_CMD_RCPT);
	bad("RCPT TO:<u@a@b.example>", SMTP_CMD_RCPT);
	bad("RCPT TO:<u@a,b.example>", SMTP_CMD_RCPT);
	bad("RCPT TO:<u@a/b.example>", SMTP_CMD_RCPT);
	bad("RCPT TO:<@>", SMTP_CMD_RCPT);
	bad("RCPT TO:<@a.example>", SMTP_CMD_RCPT);
}

static void
test_source_route(void **state)
{
	ok("RCPT TO:<@a.example,@b.example:user@d.example>", SMTP_CMD_RCPT,
	    "user@d.example", "d.example", "");
	ok("MAIL FROM:<@relay.example:Joe@Sender.Example> BODY=8BITMIME",
	    SMTP_CMD_MAIL, "Joe@Sender.Example", "sender.example",
	    "BODY=8BITMIME");
	ok("RCPT TO:<@[192.0.2.1]:u@d.example>", SMTP_CMD_RCPT, "u@d.example",
	    "d.example", "");
	bad("RCPT TO:<@a.example:>", SMTP_CMD_RCPT);
	bad("RCPT TO:<@a.example,user@d.example>", SMTP_CMD_RCPT);
	bad("RCPT TO:<@a.example,:user@d.example>", SMTP_CMD_RCPT);
	bad("RCPT TO:<@:user@d.example>", SMTP_CMD_RCPT);
	bad("RCPT TO:<@a.example;@b:user@d.example>", SMTP_CMD_RCPT);
}

static void
test_quoted_local(void **state)
{
	ok("RCPT TO:<\"a@b c\"@Example.org>", SMTP_CMD_RCPT,
	    "\"a@b c\"@Example.org", "example.org", "");
	ok("RCPT TO:<\"x\\\"@y>\"@example.org> NOTIFY=NEVER", SMTP_CMD_RCPT,
	    "\"x\\\"@y>\"@example.org", "example.org", "NOTIFY=NEVER");
	ok("MAIL FROM:<\"\"@example.org>", SMTP_CMD_MAIL, "\"\"@example.org",
	    "example.org", "");
	ok("RCPT TO:<first.last+tag@example.org>", SMTP_CMD_RCPT,
	    "first.last+tag@example.org", NULL, NULL);
	ok("RCPT TO:<!#$%&'*+-/=?^_`{|}~@example.org>", SMTP_CMD_RCPT,
	    "!#$%&'*+-/=?^_`{|}~@example.org", "example.org", NULL);
	/* SMTPUTF8 local parts (RFC 6531), bare and quoted */
	ok("RCPT TO:<j\xc3\xb6rg@example.org>", SMTP_CMD_RCPT,
	    "j\xc3\xb6rg@example.org", "example.org", "");
	ok("RCPT TO:<\"j\xc3\xb6 rg\"@example.org>", SMTP_CMD_RCPT, NULL,
	    "example.org", "");
	/* '@' and '>' quoted behind a source route: the domain is the
	 * mailbox's, the one the MTA delivers to */
	ok("RCPT TO:<@a.example,@b.example:\"x@y>z\"@D.Example.>",
	    SMTP_CMD_RCPT, "\"x@y>z\"@D.Example.", "d.example", "");
	bad("RCPT TO:<\"unterminated@example.org>", SMTP_CMD_RCPT);
	bad("RCPT TO:<\"a\"b@example.org>", SMTP_CMD_RCPT);
	bad("RCPT TO:<\"a\x01\"@example.org>", SMTP_CMD_RCPT);
	bad("RCPT TO:<a b@example.org>", SMTP_CMD_RCPT);
	bad("RCPT TO:<a(b)@example.org>", SMTP_CMD_RCPT);
	bad("RCPT TO:<a\\b@example.org>", SMTP_CMD_RCPT);
	bad("RCPT TO:<\"a\\", SMTP_CMD_RCPT);
}

static void
test_address_literal(void **state)
{
	ok("RCPT TO:<postmaster@[192.0.2.1]>", SMTP_CMD_RCPT,
	    "postmaster@[192.0.2.1]", "[192.0.2.1]", "");
	ok("RCPT TO:<u@[IPv6:2001:DB8::1]>", SMTP_CMD_RCPT,
	    "u@[IPv6:2001:DB8::1]", "[ipv6:2001:db8::1]", "");
	ok("MAIL FROM:<u@[192.0.2.1]> SIZE=1", SMTP_CMD_MAIL, NULL,
	    "[192.0.2.1]", "SIZE=1");
	ok("RCPT TO:<u@[IPv6:::FFFF:192.0.2.1]>", SMTP_CMD_RCPT, NULL,
	    "[ipv6:::ffff:192.0.2.1]", "");
	bad("RCPT TO:<u@[]>", SMTP_CMD_RCPT);
	bad("RCPT TO:<u@[192.0.2.1>", SMTP_CMD_RCPT);
	bad("RCPT TO:<u@[192.0.2.1]x>", SMTP_CMD_RCPT);
	bad("RCPT TO:<u@[192.0.2.1]].example>", SMTP_CMD_RCPT);
	bad("RCPT TO:<u@[1 2]>", SMTP_CMD_RCPT);
	bad("RCPT TO:<u@[a[b]>", SMTP_CMD_RCPT);
}

static void
test_no_domain(void **state)
{
	ok("RCPT TO:<postmaster>", SMTP_CMD_RCPT, "postmaster", "", "");
	ok("RCPT TO:<PostMaster>", SMTP_CMD_RCPT, "PostMaster", "", "");
	bad("RCPT TO:<user>", SMTP_CMD_RCPT);
	bad("MAIL FROM:<postmaster>", SMTP_CMD_MAIL);
	bad("MAIL FROM:<user>", SMTP_CMD_MAIL);
}

static void
test_too_long(void **state)
{
	char line[SMTP_LINE_MAX + 64], dom[400];
	char local[SMTP_PATH_MAX + 10];
	size_t n;

	/* A path of exactly SMTP_PATH_MAX bytes fits. */
	n = SMTP_PATH_MAX - strlen("@example.org");
	memset(local, 'a', n);
	local[n] = '\0';
	snprintf(line, sizeof(line), "RCPT TO:<%s@example.org>", local);
	ok(line, SMTP_CMD_RCPT, NULL, "example.org", "");
	assert_int_equal(strlen(cmd.path), SMTP_PATH_MAX);
	/* One more is the upstream's to judge (test_long_path). */
	snprintf(line, sizeof(line), "RCPT TO:<%sa@example.org>", local);
	ok(line, SMTP_CMD_RCPT, NULL, "example.org", "");
	assert_int_equal(strlen(cmd.path), SMTP_PATH_MAX + 1);

	/* Domain: 300 bytes in labels of 50. */
	dom[0] = '\0';
	while (strlen(dom) < 300)
		strcat(dom, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.");
	strcat(dom, "example");
	snprintf(line, sizeof(line), "RCPT TO:<u@%s>", dom);
	bad(line, SMTP_CMD_RCPT);
	/* behind a source route it is dropped, but still parsed */
	snprintf(line, sizeof(line), "RCPT TO:<@%s:u@d.example>", dom);
	ok(line, SMTP_CMD_RCPT, "u@d.example", "d.example", "");

	/* A label over 63 bytes. */
	memset(dom, 'b', 64);
	dom[64] = '\0';
	snprintf(line, sizeof(line), "RCPT TO:<u@%s.example>", dom);
	bad(line, SMTP_CMD_RCPT);
	dom[63] = '\0';
	snprintf(line, sizeof(line), "RCPT TO:<u@%s.example>", dom);
	ok(line, SMTP_CMD_RCPT, NULL, NULL, "");
	/* 64 octets, the last label */
	memset(dom, 'b', 64);
	dom[64] = '\0';
	snprintf(line, sizeof(line), "RCPT TO:<u@example.%s>", dom);
	bad(line, SMTP_CMD_RCPT);
}

/*
 * A U-label's octets are not a DNS label's: 24 Chinese characters are 72
 * octets of UTF-8 and the A-label xn--... of 37.  Such an address is
 * valid (SMTPUTF8); a 501 here is a bounce for it.  What its A-label
 * makes of it is for the policy engine (sts_domain_norm(), a deferral).
 */
static void
test_long_u_label(void **state)
{
	char line[SMTP_LINE_MAX], dom[200];
	size_t i;

	dom[0] = '\0';
	for (i = 0; i < 24; i++)
		strcat(dom, "\xe4\xb8\xad");	/* U+4E2D */
	assert_int_equal(strlen(dom), 72);
	snprintf(line, sizeof(line), "RCPT TO:<u@%s.example>", dom);
	ok(line, SMTP_CMD_RCPT, NULL, NULL, "");
	assert_int_equal(strlen(cmd.domain), 72 + strlen(".example"));
	snprintf(line, sizeof(line), "RCPT TO:<u@example.%s>", dom);
	ok(line, SMTP_CMD_RCPT, NULL, NULL, "");
	snprintf(line, sizeof(line), "MAIL FROM:<u@%s.example> SMTPUTF8", dom);
	ok(line, SMTP_CMD_MAIL, NULL, NULL, "SMTPUTF8");

	/* The line itself. */
	memset(line, 'x', sizeof(line));
	memcpy(line, "NOOP ", 5);
	assert_int_equal(smtp_cmd_parse(line, SMTP_LINE_MAX, &cmd, NULL), 0);
	assert_int_equal(smtp_cmd_parse(line, SMTP_LINE_MAX + 1, &cmd, NULL),
	    -1);
}

/*
 * RFC 5321's 256-octet path and 255-octet domain are what a server must
 * take (4.5.3.1); SMTPUTF8 counts octets (RFC 6531), and a UTF-8 domain's
 * octets say nothing of its A-label, which is what DNS holds.  A path
 * the line holds goes to the upstream, which answers for it; a UTF-8
 * domain is judged on its A-label by the policy engine.  Both were a
 * 501 here, which the MTA takes for a permanent failure: a bounce.
 */
static void
test_long_path(void **state)
{
	char line[SMTP_LINE_MAX + 1], dom[400], want[400], local[1200];
	size_t i;

	/* five labels of 20 Chinese characters: 313 octets of UTF-8, an
	 * A-label of 153 */
	dom[0] = '\0';
	for (i = 0; i < 100; i++) {
		if (i > 0 && i % 20 == 0)
			strcat(dom, ".");
		strcat(dom, "\xe4\xb8\xad");
	}
	strcat(dom, ".Example");
	assert_true(strlen(dom) > SMTP_DOMAIN_MAX);
	snprintf(want, sizeof(want), "%.*s.example", (int)strlen(dom) - 8,
	    dom);
	snprintf(line, sizeof(line), "RCPT TO:<u@%s.> NOTIFY=NEVER", dom);
	ok(line, SMTP_CMD_RCPT, NULL, want, "NOTIFY=NEVER");
	snprintf(line, sizeof(line), "MAIL FROM:<u@%s> SMTPUTF8", dom);
	ok(line, SMTP_CMD_MAIL, NULL, want, "SMTPUTF8");

	/* a UTF-8 local part: a path of some 1,000 octets */
	local[0] = '\0';
	for (i = 0; i < 300; i++)
		strcat(local, "\xc3\xa9");
	snprintf(line, sizeof(line), "RCPT TO:<%s@%s>", local, dom);
	ok(line, SMTP_CMD_RCPT, NULL, want, "");
	assert_int_equal(strlen(cmd.path), strlen(local) + 1 + strlen(dom));

	/* as long as the line holds */
	memset(local, 'a', 1000);
	local[1000] = '\0';
	snprintf(line, sizeof(line), "MAIL FROM:<%s%s@example.org>", local,
	    local);
	assert_true(strlen(line) > 2000 && strlen(line) <= SMTP_LINE_MAX);
	ok(line, SMTP_CMD_MAIL, NULL, "example.org", "");
	assert_int_equal(strlen(cmd.path), 2 * strlen(local) +
	    strlen("@example.org"));

	/* An ASCII domain is its own A-label: over 255 octets it is none. */
	dom[0] = '\0';
	while (strlen(dom) < 250)
		strcat(dom, "abcdefghi.");
	strcat(dom, "example");
	snprintf(line, sizeof(line), "RCPT TO:<u@%s>", dom);
	bad(line, SMTP_CMD_RCPT);
	snprintf(line, sizeof(line), "RCPT TO:<u@xn--%s>", dom);
	bad(line, SMTP_CMD_RCPT);
	/* 255 with the trailing dot off */
	snprintf(line, sizeof(line), "RCPT TO:<u@%.255s.>", dom);
	ok(line, SMTP_CMD_RCPT, NULL, NULL, "");
	assert_int_equal(strlen(cmd.domain), 255);
}

static void
test_unknown(void **state)
{
	bad("FOO bar", SMTP_CMD_UNKNOWN);
	bad("MAILX FROM:<a@b.example>", SMTP_CMD_UNKNOWN);
	bad("MAI", SMTP_CMD_UNKNOWN);
	bad("STARTTLSX", SMTP_CMD_UNKNOWN);
	bad("GET / HTTP/1.1", SMTP_CMD_UNKNOWN);
	bad(" HELO x", SMTP_CMD_UNKNOWN);
	bad("HELO\tx", SMTP_CMD_UNKNOWN);
	bad("\x16\x03\x01", SMTP_CMD_UNKNOWN);
	bad("X", SMTP_CMD_UNKNOWN);
}

static void
test_empty(void **state)
{
	const char *err = NULL;

	assert_int_equal(smtp_cmd_parse("", 0, &cmd, &err), -1);
	assert_int_equal(cmd.verb, SMTP_CMD_UNKNOWN);
	assert_non_null(err);
	bad("   ", SMTP_CMD_UNKNOWN);
	bad("\t", SMTP_CMD_UNKNOWN);
	/* NULL err is allowed */
	assert_int_equal(smtp_cmd_parse("", 0, &cmd, NULL), -1);
}

static void
test_arg_rules(void **state)
{
	bad("DATA now", SMTP_CMD_DATA);
	bad("QUIT please", SMTP_CMD_QUIT);
	bad("RSET x", SMTP_CMD_RSET);
	bad("STARTTLS x", SMTP_CMD_STARTTLS);
	bad("HELO", SMTP_CMD_HELO);
	bad("EHLO", SMTP_CMD_EHLO);
	bad("EHLO ", SMTP_CMD_EHLO);
	bad("VRFY", SMTP_CMD_VRFY);
	bad("EXPN", SMTP_CMD_EXPN);
	bad("BDAT", SMTP_CMD_BDAT);
	bad("AUTH", SMTP_CMD_AUTH);
	ok("DATA ", SMTP_CMD_DATA, NULL, NULL, NULL);
	ok("QUIT\t", SMTP_CMD_QUIT, NULL, NULL, NULL);
}

static void
test_nul_cr_lf(void **state)
{
	const char *err = NULL;

	assert_int_equal(smtp_cmd_parse("EHLO a\0b", 8, &cmd, &err), -1);
	assert_int_equal(cmd.verb, SMTP_CMD_EHLO);
	assert_non_null(err);
	assert_int_equal(smtp_cmd_parse("MAIL FROM:<a@b>\0", 16, &cmd, &err),
	    -1);
	assert_int_equal(smtp_cmd_parse("DA\0A", 4, &cmd, &err), -1);
	assert_int_equal(cmd.verb, SMTP_CMD_UNKNOWN);
	bad("NOOP a\rRCPT TO:<x@y>", SMTP_CMD_NOOP);
	bad("RCPT TO:<a@b.example> X=1\nDATA", SMTP_CMD_RCPT);
	bad("MAIL FROM:<a@b.example>\r", SMTP_CMD_MAIL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_verb),
		cmocka_unit_test(test_verb_names),
		cmocka_unit_test(test_case_insensitive),
		cmocka_unit_test(test_null_paths),
		cmocka_unit_test(test_missing_brackets),
		cmocka_unit_test(test_bare_path),
		cmocka_unit_test(test_bare_path_refused),
		cmocka_unit_test(test_bare_path_too_long),
		cmocka_unit_test(test_space_after_colon),
		cmocka_unit_test(test_params),
		cmocka_unit_test(test_domain_normalised),
		cmocka_unit_test(test_source_route),
		cmocka_unit_test(test_quoted_local),
		cmocka_unit_test(test_address_literal),
		cmocka_unit_test(test_no_domain),
		cmocka_unit_test(test_too_long),
		cmocka_unit_test(test_long_u_label),
		cmocka_unit_test(test_long_path),
		cmocka_unit_test(test_unknown),
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_arg_rules),
		cmocka_unit_test(test_nul_cr_lf),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
