/*
 * test_config.c - the configuration parser: defaults, every value type,
 * errors with FILE:LINE.
 */
// WRAP: strdup strndup
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/config.h"
#include "core/log.h"

#include "testconf.h"

/* strdup()/strndup() failing from the nth call on (0: never), for the
 * out-of-memory paths of config_keep_start_keys() */
static int fail_dup_at, ndup;

char *__real_strdup(const char *);
char *__wrap_strdup(const char *);
char *__real_strndup(const char *, size_t);
char *__wrap_strndup(const char *, size_t);

char *
__wrap_strdup(const char *s)
{
	if (fail_dup_at > 0 && ++ndup >= fail_dup_at)
		return NULL;
	return __real_strdup(s);
}

char *
__wrap_strndup(const char *s, size_t n)
{
	if (fail_dup_at > 0 && ++ndup >= fail_dup_at)
		return NULL;
	return __real_strndup(s, n);
}

static struct config *
load_text(const char *text, char *err, size_t errsz)
{
	return testconf_load(text, err, errsz);
}

static void
test_defaults(void **state)
{
	char err[256];
	struct config *c = config_load(NULL, err, sizeof(err));

	assert_non_null(c);
	assert_int_equal(c->listen.n, 2);
	assert_string_equal(c->listen.v[0], "127.0.0.1:10025");
	assert_int_equal(c->upstream_mark, 0x4d58);
	assert_string_equal(c->fail_mode, "closed");
	assert_int_equal(c->command_timeout, 5 * 60 * 1000);
	assert_int_equal(c->sts_max_body, 64 * 1024);
	assert_int_equal(c->log_level, LOG_LVL_INFO);
	assert_int_equal(c->tls_policy.n, 0);
	/* TLSRPT sends to third parties: off until asked for */
	assert_int_equal(c->tlsrpt_enable, 0);
	assert_int_equal(c->tlsrpt_https_only, 0);
	assert_string_equal(c->tlsrpt_dkim_selector, "tlsrpt");
	assert_int_equal(c->tlsrpt_retention, 7);
	/* an https rua names any port: 443 only, unless listed */
	assert_int_equal(c->tlsrpt_https_ports.n, 1);
	assert_string_equal(c->tlsrpt_https_ports.v[0], "443");
	assert_int_equal(c->workers, 0);	/* one per CPU */
	/* NAT64: the well-known prefix, as before the key */
	assert_int_equal(c->nat64_prefix.n, 1);
	assert_string_equal(c->nat64_prefix.v[0], "64:ff9b::/96");
	config_free(c);
}

static void
test_values(void **state)
{
	char err[256];
	struct config *c = load_text(
	    "# comment\n"
	    "\n"
	    "  listen = 10.0.0.1:25, [::1]:26  \n"
	    "upstream_mark=0x10\n"
	    "connect_timeout = 1500ms\n"
	    "client_timeout = 2m\n"
	    "tls_history_window = 7d\n"
	    "sts_max_body = 2k\n"
	    "fail_mode = open\n"
	    "dane_enable = no\n"
	    "log_level = debug\n"
	    "tls_policy = example.com secure\n"
	    "tls_policy = [192.0.2.1] encrypt\n"
	    "max_sessions = 7\n"
	    "workers = 3\n"
	    "tlsrpt_https_ports = 443, 8443\n"
	    "user =\n", err, sizeof(err));

	assert_non_null(c);
	assert_int_equal(c->listen.n, 2);
	assert_string_equal(c->listen.v[1], "[::1]:26");
	assert_int_equal(c->upstream_mark, 0x10);
	assert_int_equal(c->connect_timeout, 1500);
	assert_int_equal(c->client_timeout, 120000);
	assert_int_equal(c->tls_history_window, 7ULL * 86400000);
	assert_int_equal(c->sts_max_body, 2048);
	assert_string_equal(c->fail_mode, "open");
	assert_int_equal(c->dane_enable, 0);
	assert_int_equal(c->log_level, LOG_LVL_DEBUG);
	assert_int_equal(c->tls_policy.n, 2);
	assert_string_equal(c->tls_policy.v[1], "[192.0.2.1] encrypt");
	assert_int_equal(c->max_sessions, 7);
	assert_int_equal(c->workers, 3);
	assert_int_equal(c->tlsrpt_https_ports.n, 2);
	assert_string_equal(c->tlsrpt_https_ports.v[1], "8443");
	assert_string_equal(c->user, "");
	config_free(c);
	/* marks: a leading zero is decimal, never octal (010 is ten) */
	c = load_text("upstream_mark = 010\nmark_mask = 0XffFF\n"
	    "user =\n", err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(c->upstream_mark, 10);
	assert_int_equal(c->mark_mask, 0xffff);
	config_free(c);
}

static void
expect_error(const char *text, const char *needle)
{
	char err[256] = "";
	struct config *c = load_text(text, err, sizeof(err));

	assert_null(c);
	if (strstr(err, needle) == NULL)
		fail_msg("error \"%s\" lacks \"%s\"", err, needle);
}

static void
test_errors(void **state)
{
	expect_error("listen = 1.2.3.4:25\nbogus_key = 1\n", ":2: unknown key \"bogus_key\"");
	expect_error("fail_mode = maybe\n", ":1: fail_mode: value is not one of");
	/* TPROXY keeps the destination port: a listener on 25 would take
	 * every diverted flow for a direct one and refuse it */
	expect_error("divert_port = 25\nlisten = 127.0.0.1:25\n",
	    "divert_port: not 25");
	expect_error("\n\nmax_sessions = -1\n", ":3: max_sessions");
	expect_error("connect_timeout = 5y\n", ":1: connect_timeout: not a duration");
	expect_error("dane_enable = 1\n", "expected yes or no");
	expect_error("upstream_mark = 0x1ffffffff\n", "not a 32-bit number");
	expect_error("just some words\n", ":1: expected \"key = value\"");
	expect_error("upstream_mark = 0x4d49\n", "must differ");
	/* 0 under the mask: the rules would treat every undecided flow as
	 * mxguard's own (nothing intercepted) */
	expect_error("upstream_mark = 0x10000\n", "must not be 0 under "
	    "mark_mask");
	expect_error("intercept_mark = 0x14d49\n", "within mark_mask");
	expect_error("nfqueue_maxlen = 0\n", "nfqueue_maxlen");
	expect_error("nfqueue_num = 65536\n", "nfqueue_num");
	expect_error("tproxy_table = 254\n", "tproxy_table");
	expect_error("tproxy_table = 0\n", "tproxy_table");
	expect_error("tls_cert_file = /x.pem\n", "go together");
	expect_error("listen =\n", "at least one address");
	expect_error("log_level = loud\n", "expected err, warn, info or debug");
	expect_error("tlsrpt_from = Postmaster <pm@x.example>\n", "tlsrpt_from");
	expect_error("tlsrpt_from = nobody\n", "tlsrpt_from");
	expect_error("tlsrpt_retention = 1\n", "tlsrpt_retention");
	expect_error("tlsrpt_https_ports =\n", "tlsrpt_https_ports: at least "
	    "one port");
	expect_error("tlsrpt_https_ports = 443 0\n", "tlsrpt_https_ports: "
	    "port numbers, 1 to 65535");
	expect_error("tlsrpt_https_ports = 65536\n", "tlsrpt_https_ports: "
	    "port numbers");
	expect_error("tlsrpt_https_ports = 000443\n", "tlsrpt_https_ports: "
	    "port numbers");
	expect_error("tlsrpt_https_ports = https\n", "tlsrpt_https_ports: "
	    "port numbers");
	expect_error("tlsrpt_https_ports = -443\n", "tlsrpt_https_ports: "
	    "port numbers");
	expect_error("workers = 65\n", "workers: at most 64");
	expect_error("workers = -1\n", ":1: workers");
	expect_error("redis_address = /run/redis.sock\nredis_tls = yes\n",
	    "redis_tls needs redis_address IP:PORT");
	expect_error("redis_tls = yes\n", "redis_tls needs redis_address");
	/* the inside interfaces only mean something in gateway mode */
	expect_error("bypass_interfaces = eth1\n", "only with rules_mode "
	    "= gateway");
	expect_error("rules_mode = gateway\nbypass_interfaces = lo\n",
	    "not lo");
	expect_error("rules_mode = gateway\nbypass_interfaces = "
	    "averyverylongname0\n", "1 to 15 characters");
	expect_error("rules_mode = gateway\nbypass_interfaces = eth+1\n",
	    "'+' only at its end");
	expect_error("rules_mode = gateway\nbypass_interfaces = "
	    "\"eth1\"\n", "quotes");
	expect_error("rules_mode = gateway\nbypass_interfaces = +\n",
	    "a prefix ending in '+'");
	expect_error("redis_address = 10.0.0.1:6379\n"
	    "redis_tls_ca_file = /ca.pem\n", "need redis_tls yes");
	expect_error("redis_address = 10.0.0.1:6379\nredis_tls = yes\n"
	    "redis_tls_key_file = /k.pem\n", "needs redis_tls_cert_file");
	/* 0 armed no timer (a session could wait for ever), and a history
	 * window below a second matched nothing: refused, not silent */
	expect_error("connect_timeout = 0\n", "connect_timeout: at least 1s");
	expect_error("data_done_timeout = 999ms\n",
	    "data_done_timeout: at least 1s");
	expect_error("policy_timeout = 0s\n", "policy_timeout: at least 1s");
	expect_error("dns_timeout = 0\n", "dns_timeout: at least 1s");
	expect_error("sts_fetch_timeout = 0\n", "sts_fetch_timeout");
	expect_error("tls_history_window = 500ms\n",
	    "tls_history_window: at least 1s");
}

/*
 * sts_max_body is the largest MTA-STS policy body a fetch takes: a larger
 * one is "response too large", a failed fetch, and a failed fetch is no
 * policy (first contact: opportunistic TLS, an attacker on the path strips
 * STARTTLS or presents any certificate; a cached policy is never refreshed
 * and expires).  "sts_max_body = 64", a typo of 64k, loaded in silence and
 * turned off every enforce policy longer than 64 bytes (most are: the
 * version, mode, mx and max_age lines of one MX host).  Refused
 * below 1k, as the timeouts are below 1s (red before: loaded); 1k and the
 * default load, and 0 is still the default (policy.c).
 */
static void
test_sts_max_body_floor(void **state)
{
	char err[256];
	struct config *c;

	(void)state;
	expect_error("sts_max_body = 64\n", "sts_max_body: at least 1k");
	expect_error("sts_max_body = 1023\n", "sts_max_body: at least 1k");
	c = load_text("sts_max_body = 1k\n", err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(c->sts_max_body, 1024);
	config_free(c);
	c = load_text("sts_max_body = 0\n", err, sizeof(err));
	assert_non_null(c);
	config_free(c);
}

/*
 * A bypass_dst or bypass_src entry with host bits set (203.0.113.7/3, a
 * typo of /32) lets its whole prefix (192.0.0.0/3, an eighth of IPv4) go
 * direct, with no policy.  Only `rules install` and `mxguard -n -v` said
 * so (rules_warning()); but with steering = nfqueue (the default) the
 * daemon applies the bypass lists itself and a reload (SIGHUP) takes a
 * new one without `rules install`, and the unit's plain `mxguard -n` does
 * not print it: the mail to those MX hosts went below their domains'
 * MTA-STS and DANE policies without a word.  Now a config warning, at
 * every load (event=config-warning, mxguard -n): red before, no warning.
 */
static void
test_bypass_host_bits(void **state)
{
	char err[256];
	struct config *c;

	(void)state;
	c = load_text("bypass_dst = 192.0.2.0/24 203.0.113.7/3\n", err,
	    sizeof(err));
	assert_non_null(c);
	assert_int_equal(c->warnings.n, 1);
	assert_non_null(strstr(c->warnings.v[0], "bypass_dst 203.0.113.7/3 "
	    "has host bits set: it bypasses all of 192.0.0.0/3"));
	config_free(c);
	c = load_text("bypass_src = 2001:db8::1/64\n", err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(c->warnings.n, 1);
	assert_non_null(strstr(c->warnings.v[0], "bypass_src 2001:db8::1/64 "
	    "has host bits set: it bypasses all of 2001:db8::/64"));
	config_free(c);
	/* exact prefixes, bare addresses, /0, and what the rules refuse
	 * (nfq_config_check() says why): no warning */
	c = load_text("bypass_dst = 192.0.2.0/24 2001:db8::/32 10.1.2.3 "
	    "10.1 192.0.2.0/33 ::/0\nbypass_src = 2001:db8::1/128\n", err,
	    sizeof(err));
	assert_non_null(c);
	assert_int_equal(c->warnings.n, 0);
	config_free(c);
}

/*
 * sts_refresh_margin = 0: sts_cache_state() calls a policy due for
 * refresh when what is left of its max_age is at most 0%, that is never
 * before it expired: neither a lookup nor the background round (whatever
 * sts_refresh_interval says) refreshes a cached policy before expiry (RFC
 * 8461 section 5.1), and at max_age the next lookup's fetch is all that
 * stands between the domain and no policy: an attacker on the path who
 * blocks that one fetch gets its mail sent opportunistically.  It loaded
 * without a word (the docs said nothing of 0).  Now a warning (red before:
 * none); 1, and 0 with sts_enable = no, none.
 */
static void
test_refresh_margin_zero(void **state)
{
	char err[256];
	struct config *c;

	(void)state;
	c = load_text("sts_refresh_margin = 0\n", err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(c->warnings.n, 1);
	assert_non_null(strstr(c->warnings.v[0], "sts_refresh_margin = 0: "
	    "no cached MTA-STS policy is refreshed before it expires"));
	config_free(c);
	c = load_text("sts_refresh_margin = 1\n", err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(c->warnings.n, 0);
	config_free(c);
	/* no MTA-STS, nothing to refresh */
	c = load_text("sts_enable = no\nsts_refresh_margin = 0\n", err,
	    sizeof(err));
	assert_non_null(c);
	assert_int_equal(c->warnings.n, 0);
	config_free(c);
}

/*
 * A NUL byte ends a C string: the line would be read up to it, and what
 * follows lost (tls_min_version = TLSv1\0.2 read as TLSv1, the match= of
 * a tls_policy line dropped).  Refused with the line.
 */
static void
test_nul_byte(void **state)
{
	static const char text[] = "user =\ntls_min_version = TLSv1\0.2\n";
	char path[] = "/tmp/mxg-conf-XXXXXX", err[256] = "";
	struct config *c;
	int fd;

	assert_true((fd = mkstemp(path)) >= 0);
	assert_int_equal(write(fd, text, sizeof(text) - 1),
	    (ssize_t)sizeof(text) - 1);
	close(fd);
	c = config_load(path, err, sizeof(err));
	unlink(path);
	assert_null(c);
	if (strstr(err, ":2: NUL byte") == NULL)
		fail_msg("got \"%s\"", err);
}

/*
 * "#" starts a comment only at the start of a line: one after a value
 * was part of it, silently so for a string (dns_check_signed_name =
 * example.com # signed: a self-check of a name that does not exist).
 * Refused with the line, except in a password, which may hold anything.
 */
static void
test_comment_after_value(void **state)
{
	char err[256];
	struct config *c;

	expect_error("dns_check_signed_name = example.com # signed\n",
	    ":1: dns_check_signed_name: '#' after the value");
	expect_error("user =\nfail_mode = closed # note\n",
	    ":2: fail_mode: '#' after the value");
	expect_error("tls_policy = a.test secure\t# partner\n",
	    ":1: tls_policy: '#' after the value");
	expect_error("user = #\n", ":1: user: '#' after the value");
	/* any byte that separates list items counts as a space: the dump
	 * joins items with one, and "a #b" would not load again */
	expect_error("listen = 127.0.0.1:10025,#x\n",
	    ":1: listen: '#' after the value");
	expect_error("listen = 127.0.0.1:10025\r#x\n",
	    ":1: listen: '#' after the value");
	expect_error("user = a\v#x\n", ":1: user: '#' after the value");
	c = load_text("redis_address = 10.0.0.1:6379\n"
	    "redis_password = pa #ss\ntls_ciphers = HIGH:#x\n", err,
	    sizeof(err));
	assert_non_null(c);
	assert_string_equal(c->redis_password, "pa #ss");
	config_free(c);
}

/*
 * nat64_prefix: IPv6 prefixes of the lengths RFC 6052 allows, "none" or
 * nothing to turn the NAT64 rule off; anything else refused at load with
 * FILE:LINE and the entry, never a list the judging code would read
 * otherwise than meant.
 */
static void
test_nat64_prefix(void **state)
{
	char err[256];
	struct config *c;

	c = load_text("nat64_prefix = 2001:db8:64::/96, 64:ff9b::/96 "
	    "2001:db8:100::/40\n", err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(c->nat64_prefix.n, 3);
	assert_string_equal(c->nat64_prefix.v[0], "2001:db8:64::/96");
	assert_string_equal(c->nat64_prefix.v[2], "2001:db8:100::/40");
	config_free(c);
	c = load_text("nat64_prefix = 2001:db8::/32 2001:db9:0:100::/56 "
	    "2001:dba:1::/48 2001:dbb:1:2::/64\n", err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(c->nat64_prefix.n, 4);
	config_free(c);
	c = load_text("nat64_prefix = none\n", err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(c->nat64_prefix.n, 1);
	assert_string_equal(c->nat64_prefix.v[0], "none");
	config_free(c);
	c = load_text("nat64_prefix =\n", err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(c->nat64_prefix.n, 0);
	config_free(c);
	expect_error("\nnat64_prefix = 2001:db8:64::/97\n", ":2: nat64_prefix: "
	    "\"2001:db8:64::/97\": a NAT64 prefix is 32, 40, 48, 56, 64 or "
	    "96 bits long");
	expect_error("nat64_prefix = 2001:db8:64::/128\n", "32, 40, 48, 56, "
	    "64 or 96");
	expect_error("nat64_prefix = 2001:db8:64::1/96\n", ":1: nat64_prefix: "
	    "\"2001:db8:64::1/96\": bits set after the first 96");
	expect_error("nat64_prefix = 192.0.2.0/24\n", "an IPv4 prefix");
	expect_error("nat64_prefix = 2001:db8:64::\n", "not an IPv6 prefix");
	expect_error("nat64_prefix = nat64.example/96\n", "not an IPv6 prefix");
	expect_error("nat64_prefix = 2001:db8:0:0:100::/96\n", "\"u\" octet");
	expect_error("nat64_prefix = none 64:ff9b::/96\n", "stands alone");
	expect_error("nat64_prefix = 2001:db8::/32 2001:db8:64::/96\n",
	    "overlap");
	/* the last line wins, and the error names it */
	expect_error("nat64_prefix = none\nnat64_prefix = 64:ff9b::/95\n",
	    ":2: nat64_prefix:");
}

/* A timeout of exactly 1s is fine; a short window with the history off
 * says nothing. */
static void
test_timeout_floor(void **state)
{
	char err[256];
	struct config *c;

	(void)state;
	c = load_text("connect_timeout = 1000ms\ntls_history = no\n"
	    "tls_history_window = 0\n", err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(c->connect_timeout, 1000);
	config_free(c);
}

/* The digest a worker compares at a reload: the file's bytes, then
 * tls_policy_file's; a change in either changes it. */
static void
test_digest(void **state)
{
	char err[256], pol[] = "/tmp/mxg-pol-XXXXXX", text[128];
	struct config *a, *b, *c;
	FILE *fp;
	int fd;

	(void)state;
	assert_true((fd = mkstemp(pol)) >= 0);
	assert_non_null(fp = fdopen(fd, "w"));
	fputs("a.example secure\n", fp);
	fclose(fp);
	snprintf(text, sizeof(text), "tls_policy_file = %s\n", pol);
	assert_non_null(a = load_text(text, err, sizeof(err)));
	assert_non_null(b = load_text(text, err, sizeof(err)));
	assert_memory_equal(a->digest, b->digest, sizeof(a->digest));
	assert_int_equal(config_digest32(a), config_digest32(b));
	/* the policy file changes, the main file does not */
	assert_non_null(fp = fopen(pol, "w"));
	fputs("a.example encrypt\n", fp);
	fclose(fp);
	assert_non_null(c = load_text(text, err, sizeof(err)));
	assert_int_not_equal(config_digest32(a), config_digest32(c));
	config_free(c);
	/* the main file changes */
	snprintf(text, sizeof(text), "tls_policy_file = %s\n\n", pol);
	assert_non_null(c = load_text(text, err, sizeof(err)));
	assert_int_not_equal(config_digest32(b), config_digest32(c));
	config_free(a);
	config_free(b);
	config_free(c);
	unlink(pol);
}

/* The same key twice: the last value wins, as in Postfix's main.cf, and
 * a warning names both lines; a repeatable key (tls_policy) is just
 * repeated. */
static void
test_key_twice(void **state)
{
	char err[256];
	struct config *c;

	(void)state;
	c = load_text("require_tls = yes\n"
	    "tls_policy = a.example secure\n"
	    "tls_policy = b.example secure\n"
	    "# a comment\n"
	    "require_tls = no\n", err, sizeof(err));
	assert_non_null(c);
	assert_string_equal(c->require_tls, "no");
	assert_int_equal(c->tls_policy.n, 2);
	assert_int_equal(c->warnings.n, 1);
	assert_non_null(strstr(c->warnings.v[0], ":5: require_tls set "
	    "again (first at line 1)"));
	config_free(c);

	c = load_text("listen = 127.0.0.1:10025 [::1]:10025\nrequire_tls = yes\n", err,
	    sizeof(err));
	assert_non_null(c);
	assert_int_equal(c->warnings.n, 0);
	config_free(c);
}

/*
 * steering = none diverts every port-25 flow to divert_port whether the
 * daemon runs or not: on a port any user may bind, a process of any user
 * that listens there while mxguard does not (a restart, a stop with
 * fail_mode = closed, the boot) gets the mail (shown by hand in a network
 * namespace: nobody's listener on 127.0.0.1:10025 took a connection to
 * 192.0.2.99:25).  A warning says so (red before: none); none with
 * NFQUEUE steering, under TPROXY, or for a port below
 * net.ipv4.ip_unprivileged_port_start (where the host has one).
 */
static void
test_divert_port_takeable(void **state)
{
	char err[256];
	struct config *c;
	FILE *fp;
	int start = 1024;

	(void)state;
	if ((fp = fopen("/proc/sys/net/ipv4/ip_unprivileged_port_start",
	    "r")) != NULL) {
		assert_int_equal(fscanf(fp, "%d", &start), 1);
		fclose(fp);
	}
	c = load_text("steering = none\n", err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(c->warnings.n, 1);
	assert_non_null(strstr(c->warnings.v[0], "divert_port 10025 is a "
	    "port any local user may bind"));
	config_free(c);
	c = load_text("steering = none\nrules_mode = gateway\n"
	    "listen_mode = tproxy\nbypass_interfaces = eth1\n", err,
	    sizeof(err));
	assert_non_null(c);
	assert_int_equal(c->warnings.n, 0);
	config_free(c);
	c = load_text("listen = 127.0.0.1:10025 [::1]:10025\n", err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(c->warnings.n, 0);
	config_free(c);
	if (start <= 1000)
		return;		/* no port a user may not bind */
	c = load_text("steering = none\nlisten = 127.0.0.1:1000 [::1]:1000\n"
	    "divert_port = 1000\n", err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(c->warnings.n, 0);
	config_free(c);
}

/*
 * fail_mode = open on a port any user may bind: `rules stop` (the unit's
 * ExecStopPost) removes the rules with fail_mode = open, so while the
 * daemon is down every port-25 flow goes direct; a process of any local
 * user that listens on divert_port (or another listen port) meanwhile (a
 * restart, the boot before mxguard starts) keeps the daemon from binding
 * it (EADDRINUSE), the start fails, systemd retries in vain, and the mail
 * goes direct for as long as that process holds the port: an attacker on
 * the path strips STARTTLS.  Whatever the steering or listen_mode.  A
 * warning says so (red before: none with NFQUEUE steering, the default);
 * none with fail_mode = closed, nor for ports below
 * net.ipv4.ip_unprivileged_port_start.
 */
static void
test_fail_open_port_takeable(void **state)
{
	char err[256];
	struct config *c;
	FILE *fp;
	int start = 1024, i, n;

	(void)state;
	if ((fp = fopen("/proc/sys/net/ipv4/ip_unprivileged_port_start",
	    "r")) != NULL) {
		assert_int_equal(fscanf(fp, "%d", &start), 1);
		fclose(fp);
	}
	if (start > 10025)
		return;		/* no user may bind the default port */
	c = load_text("fail_mode = open\n", err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(c->warnings.n, 1);
	assert_non_null(strstr(c->warnings.v[0], "fail_mode = open with "
	    "listen port 10025, a port any local user may bind"));
	config_free(c);
	/* TPROXY: a transparent listener needs a capability, but the bind
	 * of the port does not */
	c = load_text("fail_mode = open\nrules_mode = gateway\n"
	    "listen_mode = tproxy\nbypass_interfaces = eth1\n"
	    "listen = 0.0.0.0:10025 [::]:10025\n", err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(c->warnings.n, 1);
	assert_non_null(strstr(c->warnings.v[0], "fail_mode = open with "));
	config_free(c);
	/* steering = none: the two holes, each said once */
	c = load_text("fail_mode = open\nsteering = none\n", err,
	    sizeof(err));
	assert_non_null(c);
	assert_int_equal(c->warnings.n, 2);
	for (i = n = 0; i < c->warnings.n; i++)
		n += strstr(c->warnings.v[i], "fail_mode = open with ") != NULL;
	assert_int_equal(n, 1);
	config_free(c);
	c = load_text("fail_mode = closed\n", err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(c->warnings.n, 0);
	config_free(c);
	if (start <= 1000)
		return;		/* no port a user may not bind */
	c = load_text("fail_mode = open\nlisten = 127.0.0.1:1000 "
	    "[::1]:1000\ndivert_port = 1000\n", err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(c->warnings.n, 0);
	config_free(c);
	/* a listen address of another port: the daemon binds it too */
	c = load_text("fail_mode = open\nlisten = 127.0.0.1:1000 "
	    "[::1]:1000 127.0.0.1:10026\ndivert_port = 1000\n", err,
	    sizeof(err));
	assert_non_null(c);
	assert_int_equal(c->warnings.n, 1);
	assert_non_null(strstr(c->warnings.v[0], "fail_mode = open with "
	    "listen port 10026, a port any local user may bind"));
	config_free(c);
}

/* The text loaded from a file of the given mode. */
static struct config *
load_mode(const char *text, mode_t mode, char *err, size_t errsz)
{
	char path[] = "/tmp/mxg-conf-XXXXXX";
	struct config *c;
	int fd;

	assert_true((fd = mkstemp(path)) >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
	c = config_load(path, err, errsz);
	unlink(path);
	return c;
}

/*
 * Whoever may write mxguard.conf or its tls_policy_file decides every
 * recipient's policy at the next reload or start: "tls_policy = .com
 * none", a bypass_dst of 0.0.0.0/0, fail_mode = open.  A file others
 * could write (world-writable, or owned by another user, say `user`'s
 * after a chown meant for the state directory) loaded without a word, so
 * an unprivileged local user could lower any domain below its MTA-STS or
 * DANE policy.  Now a warning for each (red before: none); a file of
 * root's (or of the user loading it) that only its owner writes, none.
 */
static void
test_file_writable_by_others(void **state)
{
	char err[256], pol[] = "/tmp/mxg-pol-XXXXXX", text[128];
	struct config *c;
	int fd;

	(void)state;
	c = load_mode("log_level = info\n", 0646, err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(c->warnings.n, 1);
	assert_non_null(strstr(c->warnings.v[0], "others than root may "
	    "write it"));
	config_free(c);
	c = load_mode("log_level = info\n", 0644, err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(c->warnings.n, 0);
	config_free(c);
	/* the tls_policy_file, read at each load */
	assert_true((fd = mkstemp(pol)) >= 0);
	assert_int_equal(write(fd, "example.com secure\n", 19), 19);
	assert_int_equal(fchmod(fd, 0666), 0);
	close(fd);
	snprintf(text, sizeof(text), "tls_policy_file = %s\n", pol);
	c = load_mode(text, 0600, err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(c->warnings.n, 1);
	assert_non_null(strstr(c->warnings.v[0], "tls_policy_file"));
	assert_non_null(strstr(c->warnings.v[0], "others than root may "
	    "write it"));
	config_free(c);
	assert_int_equal(chmod(pol, 0644), 0);
	c = load_mode(text, 0600, err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(c->warnings.n, 0);
	config_free(c);
	unlink(pol);
	/* /dev/null (0666), the empty file of `-c /dev/null`: no one
	 * can put anything in it (red before: the warning) */
	c = config_load("/dev/null", err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(c->warnings.n, 0);
	config_free(c);
}

/*
 * redis_password in a file every local user may read, as `make install`
 * leaves mxguard.conf (0644) and as it stays when the password is added
 * to it: any local user could then read the shared policy state (which
 * domains this host mails, over what) and write values that defer mail
 * to a domain on every gateway.  A warning says so (red before: none);
 * 0640 or 0600, as docs/configuration.md asks, none.
 */
static void
test_password_readable_by_others(void **state)
{
	const char *text = "redis_password = s3cret-pw\n";
	char err[256];
	struct config *c;

	(void)state;
	c = load_mode(text, 0644, err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(c->warnings.n, 1);
	assert_non_null(strstr(c->warnings.v[0], "redis_password is set in "
	    "a file other users can read (mode 0644)"));
	assert_null(strstr(c->warnings.v[0], "s3cret-pw"));
	config_free(c);
	c = load_mode(text, 0640, err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(c->warnings.n, 0);
	config_free(c);
	c = load_mode("listen = 127.0.0.1:10025 [::1]:10025\n", 0644, err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(c->warnings.n, 0);
	config_free(c);
}

/*
 * A divert_port no listen address has: the rules mxguard writes would
 * divert every connection to a closed port, and all mail would be
 * deferred, with a configuration that loaded without a word (red before:
 * no warning).  A port some listen address has, IPv6 included, is fine.
 */
static void
test_divert_port_unheard(void **state)
{
	char err[256];
	struct config *c;

	(void)state;
	c = load_text("listen = 127.0.0.1:2525 [::1]:2525\n", err,
	    sizeof(err));
	assert_non_null(c);
	assert_int_equal(c->warnings.n, 1);
	assert_non_null(strstr(c->warnings.v[0], "divert_port 10025 is the "
	    "port of no listen address"));
	config_free(c);
	c = load_text("listen = 127.0.0.1:2525 [::1]:2525\n"
	    "divert_port = 2525\n", err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(c->warnings.n, 0);
	config_free(c);
	c = load_text("listen = [::1]:10025 0.0.0.0:10025\n", err,
	    sizeof(err));
	assert_non_null(c);
	assert_int_equal(c->warnings.n, 0);
	config_free(c);
	/* one family without divert_port where REDIRECT sends it (local
	 * mode: its loopback address, or the wildcard): said, with what
	 * happens to those flows */
	c = load_text("listen = [::1]:2525 127.0.0.1:10025\n", err,
	    sizeof(err));
	assert_non_null(c);
	assert_int_equal(c->warnings.n, 1);
	assert_non_null(strstr(c->warnings.v[0], "no listen address holds "
	    "[::1]'s port 10025, where the rules send diverted IPv6 flows: "
	    "mxguard drops their SYNs"));
	config_free(c);
	/* a specific address is not where REDIRECT sends local flows;
	 * with steering = none they go there all the same */
	c = load_text("listen = 10.1.2.3:10025 [::1]:10025\n"
	    "steering = none\n", err, sizeof(err));
	assert_non_null(c);
	assert_true(c->warnings.n >= 1);
	assert_non_null(strstr(c->warnings.v[0], "no listen address holds "
	    "127.0.0.1's port 10025, where the rules send diverted IPv4 "
	    "flows: whatever listens there"));
	config_free(c);
	/* the defaults agree */
	c = load_text("", err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(c->warnings.n, 0);
	config_free(c);
	/* gateway mode with the default (loopback) addresses: a forwarded
	 * flow reaches neither (docs/rules.md); a wildcard does */
	c = load_text("rules_mode = gateway\nbypass_interfaces = wan0\n",
	    err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(c->warnings.n, 1);
	assert_non_null(strstr(c->warnings.v[0], "no listen address holds "
	    "an IPv4 address's port 10025, where the rules send diverted "
	    "IPv4 flows: mxguard drops their SYNs"));
	config_free(c);
	c = load_text("rules_mode = gateway\nbypass_interfaces = wan0\n"
	    "listen = 0.0.0.0:10025 [::]:10025\n", err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(c->warnings.n, 0);
	config_free(c);
}

/* DNS and fetch timeouts that cannot fit in policy_timeout draw a
 * warning; the defaults (10 s, 30 s, 60 s) fit. */
static void
test_timeouts_fit_policy_timeout(void **state)
{
	char err[256];
	struct config *c;

	(void)state;
	c = load_text("dns_timeout = 30s\n", err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(c->warnings.n, 1);
	assert_non_null(strstr(c->warnings.v[0], "exceed policy_timeout "
	    "(60000 ms)"));
	config_free(c);
	c = load_text("policy_timeout = 20s\n", err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(c->warnings.n, 1);
	config_free(c);
	c = load_text("policy_timeout = 20s\ndns_timeout = 5s\n"
	    "sts_fetch_timeout = 10s\n", err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(c->warnings.n, 0);
	config_free(c);
}

/*
 * The bounds of numeric keys at their edges, the first value refused
 * and the last one taken, and values that do not fit their type refused
 * rather than wrapped; and every key the installed rules depend on named
 * when a reload changes it (a reload cannot apply it: the rules would
 * not match the daemon).
 */
static void
test_bounds_and_rules_keys(void **state)
{
	static const char *const ok[] = {
		"max_sessions = 1\n",
		"tproxy_table = 252\n",
		"tproxy_table = 256\n",
		"sts_refresh_margin = 90\n",
		"sts_cache_max_entry_size = 1k\n",
		"sts_cache_max_entry_size = 1m\n",
		"redis_address = 127.0.0.1:6379\nredis_timeout = 59999ms\n",
		"drain_timeout = 1000d\n",
		"nfqueue_bufsize = 2m\n",
	};
	static const char *const rules[][2] = {
		{ "rules_backend = nftables\n", "rules_backend" },
		{ "listen_mode = tproxy\n", "listen_mode" },
		{ "divert_port = 10026\n", "divert_port" },
		{ "tproxy_table = 101\n", "tproxy_table" },
		{ "nfqueue_num = 2526\n", "nfqueue_num" },
		{ "upstream_mark = 0x4d5a\n", "upstream_mark" },
		{ "mark_mask = 0xfffff\n", "mark_mask" },
		{ "local_users = root\n", "local_users" },
	};
	char err[256], text[256];
	struct config *a, *b;
	size_t i;

	expect_error("max_sessions = 0\n", "max_sessions");
	expect_error("tproxy_table = 253\n", "tproxy_table");
	expect_error("tproxy_table = 255\n", "tproxy_table");
	expect_error("sts_refresh_margin = 91\n", "sts_refresh_margin");
	expect_error("sts_cache_max_entry_size = 1023\n",
	    "sts_cache_max_entry_size");
	expect_error("sts_cache_max_entry_size = 1048577\n",
	    "sts_cache_max_entry_size");
	/* redis_timeout must leave the lookup time to act on its answer */
	expect_error("redis_address = 127.0.0.1:6379\nredis_timeout = 60s\n",
	    "redis_timeout");
	/* 2^64 ms and more: refused, not wrapped to a short duration */
	expect_error("drain_timeout = 18446744073709551615ms\n",
	    "not a duration");
	expect_error("drain_timeout = 300000000000000d\n", "not a duration");
	expect_error("nfqueue_bufsize = 9223372036854775807k\n",
	    "not a size");
	expect_error("nfqueue_bufsize = 8mb\n", "not a size");
	expect_error("sts_max_body = 64x\n", "not a size");
	/* an enum's word whole: a prefix is refused, never taken for a
	 * value the code then compares as none of the words */
	expect_error("require_tls = y\n", "require_tls: value is not one");
	expect_error("fail_mode = clos\n", "fail_mode: value is not one");
	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		if ((a = load_text(ok[i], err, sizeof(err))) == NULL)
			fail_msg("\"%s\" refused: %s", ok[i], err);
		config_free(a);
	}
	assert_non_null(a = load_text("steering = none\n", err,
	    sizeof(err)));
	for (i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
		snprintf(text, sizeof(text), "steering = none\n%s",
		    rules[i][0]);
		if ((b = load_text(text, err, sizeof(err))) == NULL)
			fail_msg("\"%s\" refused: %s", rules[i][0], err);
		if (config_rules_key_changed(a, b) == NULL ||
		    strcmp(config_rules_key_changed(a, b), rules[i][1]) != 0)
			fail_msg("%s: %s named", rules[i][0],
			    config_rules_key_changed(a, b) ?
			    config_rules_key_changed(a, b) : "none");
		config_free(b);
	}
	config_free(a);
}

/* The keys a reload cannot apply: the installed rules depend on them. */
static void
test_rules_keys(void **state)
{
	char err[256];
	struct config *a = load_text("steering = none\n", err, sizeof(err));
	struct config *b;

	assert_non_null(a);
	b = load_text("steering = none\nlog_level = debug\n", err,
	    sizeof(err));
	assert_null(config_rules_key_changed(a, b));
	config_free(b);
	b = load_text("steering = none\nfail_mode = open\n", err,
	    sizeof(err));
	assert_string_equal(config_rules_key_changed(a, b), "fail_mode");
	config_free(b);
	b = load_text("steering = none\nintercept_mark = 0x4d4a\n", err,
	    sizeof(err));
	assert_string_equal(config_rules_key_changed(a, b), "intercept_mark");
	config_free(b);
	b = load_text("steering = none\nbypass_dst = 192.0.2.0/24\n", err,
	    sizeof(err));
	assert_string_equal(config_rules_key_changed(a, b), "bypass_dst");
	config_free(b);
	b = load_text("steering = nfqueue\n", err, sizeof(err));
	assert_string_equal(config_rules_key_changed(a, b), "steering");
	config_free(b);
	config_free(a);
	/* the chains return for the outside interfaces */
	a = load_text("rules_mode = gateway\nbypass_interfaces = wan0\n",
	    err, sizeof(err));
	b = load_text("rules_mode = gateway\nbypass_interfaces = wan0 "
	    "wan1\n", err, sizeof(err));
	assert_non_null(a);
	assert_non_null(b);
	assert_string_equal(config_rules_key_changed(a, b),
	    "bypass_interfaces");
	config_free(b);
	config_free(a);
	/* with steering the daemon applies the bypass lists: reloadable */
	a = load_text("steering = nfqueue\n", err, sizeof(err));
	b = load_text("steering = nfqueue\nbypass_src = 10.0.0.0/8\n", err,
	    sizeof(err));
	assert_non_null(a);
	assert_non_null(b);
	assert_null(config_rules_key_changed(a, b));
	config_free(b);
	config_free(a);
}

/* config_rules_key_changed() names listen for a to b (said, not a crash,
 * when it names nothing) */
static void
assert_listen_key(const struct config *a, const struct config *b)
{
	const char *k = config_rules_key_changed(a, b);

	if (k == NULL)
		fail_msg("listen = %s -> %s%s%s: the divert target moves, yet "
		    "no rules key changed (a reload takes it)", a->listen.v[0],
		    b->listen.v[0], b->listen.n > 1 ? " " : "",
		    b->listen.n > 1 ? b->listen.v[1] : "");
	assert_string_equal(k, "listen");
}

/*
 * Gateway mode under REDIRECT: a family whose listen entries name an
 * address and no wildcard is diverted with DNAT to that address
 * (nfq/rules.c), so the installed rules depend on `listen` there.  A
 * reload took a change of it (a start key: the daemon kept listening
 * where it started) while the file's rules, put in by `rules install` or
 * by `rules watch` after a flush (the daemon runs the file, by its
 * digest), took every flow the daemon diverted to the new address, where
 * nothing of mxguard's listened and any local user could (10025 is above
 * ip_unprivileged_port_start).  Such a change is a rules key; one that
 * leaves the target where it was is not.
 */
static void
test_rules_key_listen_divert(void **state)
{
	char err[256];
	struct config *a, *b;

	a = load_text("rules_mode = gateway\nbypass_interfaces = wan0\n"
	    "listen = 10.25.2.253:10025\n", err, sizeof(err));
	assert_non_null(a);
	/* another address: DNAT elsewhere */
	b = load_text("rules_mode = gateway\nbypass_interfaces = wan0\n"
	    "listen = 10.25.2.252:10025\n", err, sizeof(err));
	assert_non_null(b);
	assert_listen_key(a, b);
	config_free(b);
	/* a wildcard: REDIRECT, to the inbound interface's first address */
	b = load_text("rules_mode = gateway\nbypass_interfaces = wan0\n"
	    "listen = 0.0.0.0:10025\n", err, sizeof(err));
	assert_non_null(b);
	assert_listen_key(a, b);
	config_free(b);
	/* an IPv6 address added: that family is now DNAT'd to it */
	b = load_text("rules_mode = gateway\nbypass_interfaces = wan0\n"
	    "listen = 10.25.2.253:10025 [2001:db8::1]:10025\n", err,
	    sizeof(err));
	assert_non_null(b);
	assert_listen_key(a, b);
	config_free(b);
	/* the same target: an address on another port added */
	b = load_text("rules_mode = gateway\nbypass_interfaces = wan0\n"
	    "listen = 10.25.2.253:10025 10.25.2.253:10026\n", err,
	    sizeof(err));
	assert_non_null(b);
	assert_null(config_rules_key_changed(a, b));
	config_free(b);
	config_free(a);
	/* wildcards: REDIRECT before and after */
	a = load_text("rules_mode = gateway\nbypass_interfaces = wan0\n"
	    "listen = 0.0.0.0:10025\n", err, sizeof(err));
	b = load_text("rules_mode = gateway\nbypass_interfaces = wan0\n"
	    "listen = 0.0.0.0:10025 [::]:10025\n", err, sizeof(err));
	assert_non_null(a);
	assert_non_null(b);
	assert_null(config_rules_key_changed(a, b));
	config_free(b);
	config_free(a);
	/* local mode REDIRECTs to the loopback address, TPROXY to the
	 * port: listen is no rules key there */
	a = load_text("listen = 127.0.0.1:10025\n", err, sizeof(err));
	b = load_text("listen = 127.0.0.1:10025 [::1]:10025\n", err,
	    sizeof(err));
	assert_non_null(a);
	assert_non_null(b);
	assert_null(config_rules_key_changed(a, b));
	config_free(b);
	config_free(a);
	a = load_text("rules_mode = gateway\nbypass_interfaces = wan0\n"
	    "listen_mode = tproxy\nlisten = 10.25.2.253:10025\n", err,
	    sizeof(err));
	b = load_text("rules_mode = gateway\nbypass_interfaces = wan0\n"
	    "listen_mode = tproxy\nlisten = 10.25.2.252:10025\n", err,
	    sizeof(err));
	assert_non_null(a);
	assert_non_null(b);
	assert_null(config_rules_key_changed(a, b));
	config_free(b);
	config_free(a);
}

/* The keys a reload reads but only a start applies: named, so that the
 * reload's event=reload-note can say so (cmd/run.c reload_start_keys()). */
static void
test_start_keys(void **state)
{
	char err[256], buf[256];
	struct config *a = load_text("", err, sizeof(err));
	struct config *b;

	assert_non_null(a);
	/* what a reload applies is not named */
	b = load_text("log_level = debug\nmax_sessions = 10\n"
	    "tls_min_version = TLSv1.2\n", err, sizeof(err));
	assert_non_null(b);
	assert_int_equal(config_start_keys_changed(a, b, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "");
	config_free(b);
	b = load_text("listen = 127.0.0.1:10025\nstate_dir = /tmp/x\n"
	    "log = syslog\nnfqueue_maxlen = 100\n", err, sizeof(err));
	assert_non_null(b);
	assert_int_equal(config_start_keys_changed(a, b, buf, sizeof(buf)), 4);
	assert_string_equal(buf, "listen, state_dir, log, nfqueue_maxlen");
	config_free(b);
	b = load_text("user = nobody\ncontrol_socket = /tmp/c.sock\n"
	    "metrics_listen = 127.0.0.1:9125\nnfqueue_bufsize = 1m\n", err,
	    sizeof(err));
	assert_non_null(b);
	assert_int_equal(config_start_keys_changed(a, b, buf, sizeof(buf)), 4);
	assert_string_equal(buf, "user, control_socket, metrics_listen, "
	    "nfqueue_bufsize");
	config_free(b);
	config_free(a);
}

/* A reload keeps the values of those keys the processes started with
 * (config_keep_start_keys()): a worker started again after the reload
 * opens the stores in the same state_dir, as the same user, as the
 * others; what a reload applies is left as the file has it. */
static void
test_keep_start_keys(void **state)
{
	char err[256], buf[256];
	struct config *a = load_text("state_dir = /var/lib/a\nuser = nobody\n"
	    "listen = 127.0.0.1:10025 [::1]:10025\n", err, sizeof(err));
	struct config *b;

	assert_non_null(a);
	b = load_text("state_dir = /tmp/b\nuser = mail\nlog = syslog\n"
	    "listen = 127.0.0.1:10026\ncontrol_socket = /tmp/c.sock\n"
	    "metrics_listen = 127.0.0.1:9125\nnfqueue_maxlen = 100\n"
	    "nfqueue_bufsize = 1m\nmax_sessions = 10\n", err, sizeof(err));
	assert_non_null(b);
	assert_int_equal(config_keep_start_keys(b, a), 0);
	assert_int_equal(config_start_keys_changed(a, b, buf, sizeof(buf)), 0);
	assert_string_equal(b->state_dir, "/var/lib/a");
	assert_string_equal(b->user, "nobody");
	assert_int_equal(b->listen.n, 2);
	assert_string_equal(b->listen.v[1], "[::1]:10025");
	/* a key the reload applies stays the file's */
	assert_int_equal(b->max_sessions, 10);
	config_free(b);
	config_free(a);
}

/* config_keep_start_keys() out of memory at each of its copies (the
 * listen list's two entries, then user, state_dir, control_socket,
 * metrics_listen, log): -1, and the reload's configuration, part kept,
 * part the file's, is freed whole by config_free() (the reload refuses
 * it): nothing leaked or freed twice (ASan), the running one untouched. */
static void
test_keep_start_keys_enomem(void **state)
{
	char err[256];
	struct config *a, *b;
	int at, rc;

	a = load_text("state_dir = /var/lib/a\nuser = nobody\n"
	    "listen = 127.0.0.1:10025 [::1]:10025\n", err, sizeof(err));
	assert_non_null(a);
	for (at = 1; ; at++) {
		b = load_text("state_dir = /tmp/b\nuser = mail\nlog = syslog\n"
		    "listen = 127.0.0.1:10026\ncontrol_socket = /tmp/c.sock\n"
		    "metrics_listen = 127.0.0.1:9125\n", err, sizeof(err));
		assert_non_null(b);
		ndup = 0;
		fail_dup_at = at;
		rc = config_keep_start_keys(b, a);
		fail_dup_at = 0;
		config_free(b);
		if (rc == 0)
			break;
		assert_int_equal(rc, -1);
	}
	assert_int_equal(at, 8);	/* 7 copies, each failed once */
	assert_string_equal(a->state_dir, "/var/lib/a");
	assert_int_equal(a->listen.n, 2);
	config_free(a);
}

/* TLS to Redis: the keys load; off by default. */
static void
test_redis_tls(void **state)
{
	char err[256] = "";
	struct config *c = load_text("redis_address = 10.0.9.50:6379\n"
	    "redis_tls = yes\nredis_tls_ca_file = /etc/ca.pem\n"
	    "redis_tls_server_name = redis.gw.example\n"
	    "redis_tls_cert_file = /etc/c.pem\n"
	    "redis_tls_key_file = /etc/k.pem\n", err, sizeof(err));

	if (c == NULL)
		fail_msg("%s", err);
	assert_int_equal(c->redis_tls, 1);
	assert_string_equal(c->redis_tls_ca_file, "/etc/ca.pem");
	assert_string_equal(c->redis_tls_server_name, "redis.gw.example");
	assert_string_equal(c->redis_tls_cert_file, "/etc/c.pem");
	assert_string_equal(c->redis_tls_key_file, "/etc/k.pem");
	config_free(c);
	c = load_text("", err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(c->redis_tls, 0);
	assert_string_equal(c->redis_tls_server_name, "");
	config_free(c);
}

static void
test_missing_file(void **state)
{
	char err[256];

	assert_null(config_load("/nonexistent/mxguard.conf", err, sizeof(err)));
	assert_non_null(strstr(err, "No such file"));
}

/* mxguard -n does not show redis_password; the full dump (fuzz_config's
 * round trip) does. */
static void
test_dump_hides_secrets(void **state)
{
	char err[256], *buf = NULL;
	size_t len = 0;
	struct config *c = load_text("redis_address = 127.0.0.1:6379\n"
	    "redis_password = s3cret-pw\n", err, sizeof(err));
	FILE *fp;

	assert_non_null(c);
	assert_non_null(fp = open_memstream(&buf, &len));
	config_dump(c, fp, 0);
	fclose(fp);
	assert_null(strstr(buf, "s3cret-pw"));
	assert_non_null(strstr(buf, "redis_password = (set, not shown)\n"));
	free(buf);
	buf = NULL;
	assert_non_null(fp = open_memstream(&buf, &len));
	config_dump(c, fp, 1);
	fclose(fp);
	assert_non_null(strstr(buf, "redis_password = s3cret-pw\n"));
	free(buf);
	config_free(c);
}

/*
 * upstream_source: where an upstream leg leaves from.  auto is the
 * client's address in local mode (the MTA's own, the one in its SPF
 * record) and the system's choice in gateway mode; client is refused in
 * gateway mode, where the inside MTA's address is not this host's.
 */
static void
test_upstream_source(void **state)
{
	static const struct {
		const char	*text;
		const char	*value;
		int		 client;
	} ok[] = {
		{ "", "auto", 1 },
		{ "rules_mode = gateway\n", "auto", 0 },
		{ "upstream_source = client\n", "client", 1 },
		{ "upstream_source = system\n", "system", 0 },
		{ "rules_mode = gateway\nupstream_source = system\n",
		    "system", 0 },
		{ "rules_mode = gateway\nupstream_source = auto\n",
		    "auto", 0 },
	};
	char err[256], *buf = NULL;
	struct config *c;
	FILE *fp;
	size_t i, len = 0;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		c = load_text(ok[i].text, err, sizeof(err));
		if (c == NULL)
			fail_msg("\"%s\": %s", ok[i].text, err);
		assert_string_equal(c->upstream_source, ok[i].value);
		if (config_upstream_client(c) != ok[i].client)
			fail_msg("\"%s\": client %d", ok[i].text,
			    config_upstream_client(c));
		config_free(c);
	}
	expect_error("rules_mode = gateway\nupstream_source = client\n",
	    "upstream_source: client only with rules_mode = local");
	expect_error("upstream_source = mta\n",
	    ":1: upstream_source: value is not one of");
	/* -n -v shows it */
	c = load_text("", err, sizeof(err));
	assert_non_null(c);
	assert_non_null(fp = open_memstream(&buf, &len));
	config_dump(c, fp, 0);
	fclose(fp);
	assert_non_null(strstr(buf, "\nupstream_source = auto\n"));
	free(buf);
	config_free(c);
}

/*
 * listen and metrics_listen are numeric ADDR:PORT or [ADDR6]:PORT.  A
 * value that is not (a host name, a port out of range, no port) loaded,
 * so `mxguard -n` (ExecStartPre, an operator's check after an edit) said
 * nothing, and only the start found it: the daemon stopped on "listen:
 * bad address" after the rules were in (with fail_mode = open the mail
 * then goes direct, unprotected, while systemd restarts it in vain), or,
 * for metrics_listen, ran on with neither the endpoint nor the control
 * socket (event=control-unavailable), so that `mxguard status` found no
 * daemon and `rules watch` put no removed rules back.  Now a bad value
 * stops the load, as docs/configuration.md says of every bad value, and
 * a reload with one is refused.
 */
static void
test_listen_addresses(void **state)
{
	static const char *ok[] = {
		"listen = 0.0.0.0:10025 [::]:10025\n",
		"listen = [::1]:10025, 127.0.0.1:10025\n",
		"metrics_listen = 127.0.0.1:9125\n",
		"metrics_listen = [::1]:9125\n",
		"metrics_listen =\n",
	};
	char err[256];
	struct config *c;
	size_t i;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		if ((c = load_text(ok[i], err, sizeof(err))) == NULL)
			fail_msg("\"%s\": %s", ok[i], err);
		config_free(c);
	}
	expect_error("listen = localhost:10025\n",
	    "listen: \"localhost:10025\" is not ADDR:PORT or [ADDR6]:PORT");
	expect_error("listen = 127.0.0.1:10025 [::1]:100250\n",
	    "listen: \"[::1]:100250\" is not ADDR:PORT");
	expect_error("listen = 127.0.0.1\n", "listen: \"127.0.0.1\" is not");
	expect_error("metrics_listen = localhost:9125\n",
	    "metrics_listen: \"localhost:9125\" is not ADDR:PORT or "
	    "[ADDR6]:PORT");
	expect_error("metrics_listen = 9125\n", "metrics_listen: \"9125\"");
}

/*
 * The documentation of the keys against the key table: an operator reads
 * the defaults in docs/configuration.md, mxguard.conf(5) and the example
 * file, and nothing else kept them from drifting apart from config.c's.
 * Each documented key must load, with its documented default giving the
 * very configuration the code's default gives (compared as `mxguard -n
 * -v` prints it, so "5m" and "300s" are the same); every key the code
 * takes must be in both documents; and the example file, whose uncommented
 * lines it says are the defaults, must load to the defaults.  Run from the
 * top of the tree, as make check-unit does.
 */
static char *
dump_of(const struct config *c)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *fp;

	assert_non_null(fp = open_memstream(&buf, &len));
	config_dump(c, fp, 1);
	fclose(fp);
	return buf;
}

/* A documented default as a value: empty and none are an empty value;
 * roff's font escapes and \- are taken out. */
static void
doc_value(char *dst, size_t dstsz, const char *src, size_t n)
{
	size_t i, k = 0;

	for (i = 0; i < n && k + 1 < dstsz; i++) {
		if (src[i] == '\\' && i + 1 < n && src[i + 1] == 'f') {
			i += 2;		/* \fB, \fI, \fR, \fP */
			continue;
		}
		if (src[i] == '\\' && i + 1 < n && src[i + 1] == '-')
			continue;
		if (src[i] == '`')
			continue;
		dst[k++] = src[i];
	}
	dst[k] = '\0';
	while (k > 0 && dst[k - 1] == ' ')
		dst[--k] = '\0';
	if (strcmp(dst, "empty") == 0 || strcmp(dst, "none") == 0)
		dst[0] = '\0';
}

/* key = value must load to the defaults' dump */
static void
expect_doc_default(const char *doc, const char *key, const char *value,
    const char *defaults)
{
	char text[512], err[512], *d;
	struct config *c;

	snprintf(text, sizeof(text), "%s = %s\n", key, value);
	if ((c = load_text(text, err, sizeof(err))) == NULL)
		fail_msg("%s: %s = %s does not load: %s", doc, key, value, err);
	d = dump_of(c);
	config_free(c);
	if (strcmp(d, defaults) != 0)
		fail_msg("%s: %s = %s is not the code's default", doc, key,
		    value);
	free(d);
}

/* "\nkey =" or "\nkey = ...": the key in a document's list of keys */
static int
listed(const char *keys, const char *key)
{
	char k[112];

	snprintf(k, sizeof(k), "\n%s\n", key);
	return strstr(keys, k) != NULL;
}

static void
test_docs_defaults(void **state)
{
	char err[512], line[8192], key[96], val[256], mdkeys[8192] = "\n",
	    mankeys[8192] = "\n", *defaults, *d, *p, *q;
	struct config *c;
	FILE *fp;
	int nmd = 0, nman = 0;

	assert_non_null(c = config_load(NULL, err, sizeof(err)));
	defaults = dump_of(c);
	config_free(c);

	/* docs/configuration.md: "| `key` | default | meaning |", or
	 * "| `key1`, `key2` | ..." */
	if ((fp = fopen("docs/configuration.md", "r")) == NULL)
		fail_msg("docs/configuration.md: run from the top of the tree");
	while (fgets(line, sizeof(line), fp) != NULL) {
		char *cell2, *end;

		if (strncmp(line, "| `", 3) != 0 ||
		    (cell2 = strstr(line + 2, " | ")) == NULL ||
		    (end = strstr(cell2 + 3, " |")) == NULL)
			continue;
		doc_value(val, sizeof(val), cell2 + 3, end - (cell2 + 3));
		for (p = line + 2; p < cell2 && (p = strchr(p, '`')) != NULL &&
		    p < cell2; p = q + 1) {
			assert_non_null(q = strchr(p + 1, '`'));
			snprintf(key, sizeof(key), "%.*s", (int)(q - p - 1),
			    p + 1);
			expect_doc_default("docs/configuration.md", key, val,
			    defaults);
			strcat(mdkeys, key);
			strcat(mdkeys, "\n");
			nmd++;
		}
	}
	fclose(fp);

	/* docs/mxguard.conf.5: "\fBkey\fP (default: ...)", or "\fBkey1\fP
	 * \fR,\fP \fBkey2\fP (default: ...)" */
	if ((fp = fopen("docs/mxguard.conf.5", "r")) == NULL)
		fail_msg("docs/mxguard.conf.5: run from the top of the tree");
	while (fgets(line, sizeof(line), fp) != NULL) {
		char *dflt, *end;

		if (strncmp(line, "\\fB", 3) != 0 ||
		    (dflt = strstr(line, " (default: ")) == NULL ||
		    (end = strrchr(dflt, ')')) == NULL)
			continue;
		doc_value(val, sizeof(val), dflt + 11, end - (dflt + 11));
		for (p = line; p < dflt && (p = strstr(p, "\\fB")) != NULL &&
		    p < dflt; p = q) {
			assert_non_null(q = strstr(p, "\\fP"));
			snprintf(key, sizeof(key), "%.*s", (int)(q - p - 3),
			    p + 3);
			expect_doc_default("docs/mxguard.conf.5", key, val,
			    defaults);
			strcat(mankeys, key);
			strcat(mankeys, "\n");
			nman++;
		}
	}
	fclose(fp);

	/* every key the code dumps ("key = ...") is documented in both
	 * (the repeatable ones, tls_policy and enforcement_override, dump
	 * nothing when empty and are checked by name) */
	for (p = defaults; *p != '\0'; p = strchr(p, '\n') + 1) {
		snprintf(key, sizeof(key), "%.*s", (int)strcspn(p, " "), p);
		if (!listed(mdkeys, key))
			fail_msg("%s: not in docs/configuration.md", key);
		if (!listed(mankeys, key))
			fail_msg("%s: not in docs/mxguard.conf.5", key);
	}
	assert_true(listed(mdkeys, "tls_policy") &&
	    listed(mankeys, "tls_policy"));
	assert_true(listed(mdkeys, "enforcement_override") &&
	    listed(mankeys, "enforcement_override"));
	assert_true(nmd > 80 && nman > 80);	/* the parsers found them */

	/* the example file: its uncommented lines are the defaults */
	if ((c = config_load("docs/mxguard.conf.example", err,
	    sizeof(err))) == NULL)
		fail_msg("docs/mxguard.conf.example: %s", err);
	d = dump_of(c);
	config_free(c);
	for (p = d, q = defaults; *p != '\0' && strcspn(p, "\n") ==
	    strcspn(q, "\n") && strncmp(p, q, strcspn(p, "\n")) == 0;
	    p = strchr(p, '\n') + 1, q = strchr(q, '\n') + 1)
		;
	if (*p != '\0' || *q != '\0')
		fail_msg("docs/mxguard.conf.example: \"%.*s\", where the "
		    "default is \"%.*s\"", (int)strcspn(p, "\n"), p,
		    (int)strcspn(q, "\n"), q);
	free(d);
	free(defaults);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_rules_keys),
		cmocka_unit_test(test_bounds_and_rules_keys),
		cmocka_unit_test(test_rules_key_listen_divert),
		cmocka_unit_test(test_start_keys),
		cmocka_unit_test(test_keep_start_keys),
		cmocka_unit_test(test_keep_start_keys_enomem),
		cmocka_unit_test(test_redis_tls),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_timeout_floor),
		cmocka_unit_test(test_refresh_margin_zero),
		cmocka_unit_test(test_bypass_host_bits),
		cmocka_unit_test(test_sts_max_body_floor),
		cmocka_unit_test(test_key_twice),
		cmocka_unit_test(test_divert_port_unheard),
		cmocka_unit_test(test_timeouts_fit_policy_timeout),
		cmocka_unit_test(test_password_readable_by_others),
		cmocka_unit_test(test_file_writable_by_others),
		cmocka_unit_test(test_divert_port_takeable),
		cmocka_unit_test(test_fail_open_port_takeable),
		cmocka_unit_test(test_digest),
		cmocka_unit_test(test_dump_hides_secrets),
		cmocka_unit_test(test_nat64_prefix),
		cmocka_unit_test(test_nul_byte),
		cmocka_unit_test(test_comment_after_value),
		cmocka_unit_test(test_upstream_source),
		cmocka_unit_test(test_listen_addresses),
		cmocka_unit_test(test_docs_defaults),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
