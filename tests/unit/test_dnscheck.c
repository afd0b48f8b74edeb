/*
 * test_dnscheck.c - the resolver self-check (policy/dnscheck.c) against a
 * fake resolver (fakedns.h): the root's DNSKEY with and without AD, a
 * SERVFAIL, a bogus name that is (or is not) rejected, the gauge
 * mxguard_dns_validating following the resolver from one round to the
 * next (each round asks again: no cached answer), and the verdict table.
 * The answers' statuses come from the real dns_parse(), so the root as a
 * query name goes through the production parser too.
 */
// WRAP: dns_query dns_cancel
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/config.h"
#include "core/ev.h"
#include "core/log.h"
#include "core/stats.h"
#include "policy/dns.h"
#include "policy/dnscheck.h"

#include "fakedns.h"

static struct config *cfg;
static int rounds, last, stop_after;

static void
checked(void *arg, int validating, const char *why)
{
	(void)arg;
	(void)why;
	rounds++;
	last = validating;
	if (rounds >= stop_after)
		ev_loop_stop(loop);
}

/* dnsmsg.h's putname() spells the root "" (one zero byte). */
static const char *
wire(const char *name)
{
	return strcmp(name, ".") == 0 ? "" : name;
}

/* A DNSKEY answer for name (a KSK-looking 4-byte stub key): the status
 * is what the real parser makes of it, AD set or not. */
static void
dnskey(const char *name, int ad)
{
	struct msg m;
	const char *w = wire(name);

	begin(&m, 0x1234, ad, 0, w, DNS_T_DNSKEY, 1, 0, 0);
	rr_hdr(&m, w, DNS_T_DNSKEY, 3600, 8);
	put16(&m, 257);
	m.b[m.n++] = 3;
	m.b[m.n++] = 13;
	put32(&m, 0x01020304);
	answer(name, DNS_T_DNSKEY, DNS_ERROR, &m);
}

static void
servfail(const char *name, int type)
{
	struct msg m;

	begin(&m, 0x1234, 0, 2, wire(name), type, 0, 0, 0);
	answer(name, type, DNS_ERROR, &m);
}

static void
a_rec(const char *name, int ad)
{
	struct msg m;

	begin(&m, 0x1234, ad, 0, name, DNS_T_A, 1, 0, 0);
	rr_a(&m, name, "192.0.2.1", 300);
	answer(name, DNS_T_A, DNS_ERROR, &m);
}

static void
set(char **field, const char *v)
{
	free(*field);
	*field = strdup(v);
}

static int
setup(void **state)
{
	char err[256];

	(void)state;
	loop = ev_loop_new();
	cfg = config_load(NULL, err, sizeof(err));
	assert_non_null(cfg);
	nfakes = 0;
	queries = 0;
	rounds = 0;
	last = -1;
	stop_after = 1;
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	fakes_clear();
	config_free(cfg);
	ev_loop_free(loop);
	return 0;
}

/* Runs the checker until stop_after rounds have ended. */
static int
run(int flags)
{
	struct dnscheck *c;
	char err[256];
	int st;

	c = dnscheck_new(loop, cfg, flags, 1000, checked, NULL, err,
	    sizeof(err));
	assert_non_null(c);
	assert_int_equal(dnscheck_state(c), -1);
	assert_int_equal(rounds, 0);		/* never synchronous */
	ev_loop_run(loop);
	st = dnscheck_state(c);
	dnscheck_free(c);
	return st;
}

static int64_t
gauge(void)
{
	return stats_value(stats_get("mxguard_dns_validating", NULL));
}

/* The default: the root's DNSKEY with AD is a validating resolver. */
static void
test_root_secure(void **s)
{
	dnskey(".", 1);
	assert_int_equal(run(0), 1);
	assert_int_equal(last, 1);
	assert_int_equal(gauge(), 1);
	assert_int_equal(queries, 1);
}

static void
test_root_without_ad(void **s)
{
	dnskey(".", 0);
	assert_int_equal(run(0), 0);
	assert_int_equal(gauge(), 0);
}

static void
test_root_servfail(void **s)
{
	servfail(".", DNS_T_DNSKEY);
	assert_int_equal(run(0), 0);
	assert_int_equal(gauge(), 0);
}

/* A configured signed name replaces the root (the test world has no
 * root zone). */
static void
test_signed_name(void **s)
{
	set(&cfg->dns_check_signed_name, "signed.test");
	dnskey(".", 0);
	dnskey("signed.test", 1);
	assert_int_equal(run(0), 1);
}

/* With a bogus name: validating only when it comes back SERVFAIL. */
static void
test_bogus(void **s)
{
	set(&cfg->dns_check_bogus_name, "bogus.test");
	dnskey(".", 1);
	servfail("bogus.test", DNS_T_A);
	assert_int_equal(run(0), 1);
	assert_int_equal(queries, 2);
	fakes_clear();
	dnskey(".", 1);
	a_rec("bogus.test", 0);			/* answered: not rejected */
	rounds = 0;
	assert_int_equal(run(0), 0);
	assert_int_equal(gauge(), 0);
}

/* Every round asks the resolver again: the gauge follows it. */
static void
test_rounds_follow(void **s)
{
	struct dnscheck *c;
	char err[256];

	cfg->dns_check_interval = 10;
	dnskey(".", 0);
	c = dnscheck_new(loop, cfg, 0, 1000, checked, NULL, err, sizeof(err));
	assert_non_null(c);
	ev_loop_run(loop);
	assert_int_equal(dnscheck_state(c), 0);
	assert_int_equal(gauge(), 0);
	fakes_clear();
	dnskey(".", 1);
	stop_after = 2;
	ev_loop_run(loop);
	assert_int_equal(dnscheck_state(c), 1);
	assert_int_equal(gauge(), 1);
	assert_int_equal(queries, 2);
	dnscheck_free(c);
}

/* ONESHOT (mxguard -n) leaves the gauge alone. */
static void
test_oneshot(void **s)
{
	struct stat_ctr *g = stats_get("mxguard_dns_validating", NULL);

	stats_set(g, 1);
	dnskey(".", 0);
	assert_int_equal(run(DNSCHECK_ONESHOT), 0);
	assert_int_equal(last, 0);
	assert_int_equal(gauge(), 1);
}

/* dns_servers off this host draw a warning: the AD bit is believed as
 * sent.  Loopback in every form c-ares takes is on this host. */
static void
test_remote_server(void **s)
{
	static const struct { const char *v; int remote; } t[] = {
		{ "127.0.0.1", 0 }, { "127.0.0.53:5353", 0 }, { "::1", 0 },
		{ "[::1]:53", 0 }, { "10.0.0.1", 1 }, { "192.0.2.1:53", 1 },
		{ "2001:db8::1", 1 }, { "[2001:db8::1]:53", 1 },
		{ "resolver.example", 1 },
	};
	char err[256], rc[] = "/tmp/mxg-resolv-XXXXXX";
	struct config *c = config_load(NULL, err, sizeof(err));
	size_t i;
	int fd, others;
	FILE *f;

	assert_non_null(c);
	/* an empty dns_servers: resolv.conf's first nameserver is the one
	 * asked, the others never */
	assert_true((fd = mkstemp(rc)) >= 0);
	assert_non_null(f = fdopen(fd, "w"));
	fputs("nameserver 10.0.0.9\nnameserver 127.0.0.1\n", f);
	fclose(f);
	assert_string_equal(dnscheck_remote_server(c, rc, &others),
	    "10.0.0.9");
	assert_int_equal(others, 1);
	assert_non_null(f = fopen(rc, "w"));
	fputs("nameserver 127.0.0.1\nnameserver 10.0.0.9\n", f);
	fclose(f);
	assert_null(dnscheck_remote_server(c, rc, &others));
	assert_int_equal(others, 1);
	c->dns_servers.v = calloc(2, sizeof(char *));
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		c->dns_servers.v[0] = (char *)t[i].v;
		c->dns_servers.n = 1;
		if ((dnscheck_remote_server(c, rc, &others) != NULL) !=
		    t[i].remote || (others != 0 && t[i].remote != 1))
			fail_msg("%s: remote=%d expected", t[i].v,
			    t[i].remote);
	}
	/* dns_servers replaces resolv.conf; of several, the first decides,
	 * the second is never asked */
	c->dns_servers.v[0] = (char *)"127.0.0.1";
	c->dns_servers.v[1] = (char *)"10.0.0.2";
	c->dns_servers.n = 2;
	assert_null(dnscheck_remote_server(c, rc, &others));
	assert_int_equal(others, 1);
	c->dns_servers.v[0] = (char *)"10.0.0.2";
	c->dns_servers.v[1] = (char *)"127.0.0.1";
	assert_string_equal(dnscheck_remote_server(c, rc, NULL), "10.0.0.2");
	free(c->dns_servers.v);
	c->dns_servers.v = NULL;
	c->dns_servers.n = 0;
	config_free(c);
	unlink(rc);
}

static void
test_verdict(void **s)
{
	const char *why;

	assert_int_equal(dnscheck_verdict(DNS_SECURE, -1, &why), 1);
	assert_int_equal(dnscheck_verdict(DNS_SECURE, DNS_SERVFAIL, &why), 1);
	assert_int_equal(dnscheck_verdict(DNS_SECURE, DNS_INSECURE, &why), 0);
	assert_int_equal(dnscheck_verdict(DNS_SECURE, DNS_NXDOMAIN, &why), 0);
	assert_int_equal(dnscheck_verdict(DNS_SECURE, DNS_TIMEOUT, &why), 0);
	assert_int_equal(dnscheck_verdict(DNS_INSECURE, -1, &why), 0);
	assert_int_equal(dnscheck_verdict(DNS_NODATA, -1, &why), 0);
	assert_int_equal(dnscheck_verdict(DNS_TIMEOUT, DNS_SERVFAIL, &why), 0);
	assert_string_equal(why, "the resolver did not answer");
	assert_int_equal(dnscheck_verdict(DNS_ERROR, -1, &why), 0);
}

/* The root as a query name survives the real parser. */
static void
test_parse_root(void **s)
{
	struct dns_answer *a;
	struct msg m;

	begin(&m, 0x1234, 1, 0, "", DNS_T_DNSKEY, 1, 0, 0);
	rr_hdr(&m, "", DNS_T_DNSKEY, 3600, 4);
	put32(&m, 0x01010303);
	a = dns_parse(m.b, m.n, ".", DNS_T_DNSKEY);
	assert_non_null(a);
	assert_int_equal(a->status, DNS_SECURE);
	assert_int_equal(a->nrr, 1);
	assert_string_equal(a->qname, "");
	dns_answer_unref(a);
}

int
main(void)
{
	const struct CMUnitTest t[] = {
		cmocka_unit_test_setup_teardown(test_root_secure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_root_without_ad, setup, teardown),
		cmocka_unit_test_setup_teardown(test_root_servfail, setup, teardown),
		cmocka_unit_test_setup_teardown(test_signed_name, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bogus, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rounds_follow, setup, teardown),
		cmocka_unit_test_setup_teardown(test_oneshot, setup, teardown),
		cmocka_unit_test(test_verdict),
		cmocka_unit_test(test_remote_server),
		cmocka_unit_test(test_parse_root),
	};

	log_init("test_dnscheck", 0, LOG_LVL_ERR);
	return cmocka_run_group_tests(t, NULL, NULL);
}
