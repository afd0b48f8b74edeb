/*
 * test_dns_mx.c - dns_mx_hosts(): MX answers to host lists, null MX
 * targets skipped, the implicit MX of a domain without MX records, and
 * nothing for a failed lookup.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "policy/dns.h"

static struct dns_answer *
mx_answer(int n, const char **hosts, const int *prefs)
{
	struct dns_answer *a = calloc(1, sizeof(*a) + n * sizeof(a->rr[0]));
	int i;

	a->nrr = n;
	for (i = 0; i < n; i++) {
		a->rr[i].type = DNS_T_MX;
		strcpy(a->rr[i].u.mx.host, hosts[i]);
		a->rr[i].u.mx.pref = (uint16_t)prefs[i];
	}
	return a;
}

static void
test_answer(void **state)
{
	const char *h[] = { "mx1.example.com", "", "mx2.example.com" };
	const int p[] = { 10, 0, 20 };
	struct dns_answer *a = mx_answer(3, h, p);
	struct dns_mx out[4];

	assert_int_equal(dns_mx_hosts(DNS_SECURE, a, "example.com", out, 4), 2);
	assert_string_equal(out[0].name, "mx1.example.com");
	assert_int_equal(out[0].pref, 10);
	assert_string_equal(out[1].name, "mx2.example.com");
	assert_int_equal(out[1].pref, 20);
	/* bounded by max */
	assert_int_equal(dns_mx_hosts(DNS_INSECURE, a, "example.com", out, 1), 1);
	free(a);
}

static void
test_implicit_and_failure(void **state)
{
	struct dns_mx out[2];

	assert_int_equal(dns_mx_hosts(DNS_NODATA, NULL, "example.org", out, 2), 1);
	assert_string_equal(out[0].name, "example.org");
	assert_int_equal(out[0].pref, 0);
	assert_int_equal(dns_mx_hosts(DNS_NXDOMAIN, NULL, "x.test", out, 2), 1);
	assert_int_equal(dns_mx_hosts(DNS_SERVFAIL, NULL, "x.test", out, 2), 0);
	assert_int_equal(dns_mx_hosts(DNS_TIMEOUT, NULL, "x.test", out, 2), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_answer),
		cmocka_unit_test(test_implicit_and_failure),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
