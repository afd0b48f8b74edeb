/*
 * tlsrpt_seed.c - writes TLSRPT counts for a past UTC day into a state
 * directory's store, so that a scenario can show the daemon's own daily
 * run sending a report that is due, without moving the clock.
 *
 *   tlsrpt_seed STATE_DIR DOMAIN DAYS_AGO MX_HOST MX_IP
 *
 * Records one successful and one failed (certificate-not-trusted) session
 * of an sts policy "mode: enforce, mx: MX_HOST" on that day.  Built by
 * the scenario against build/libmxguard.a; test code only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "policy/tlsrpt.h"

int
main(int argc, char **argv)
{
	struct tlsrpt_store *st;
	struct tlsrpt_attempt a = { 0 };
	char line[300];
	const char *strings[4], *mx[1];
	char err[256];
	int64_t day;

	if (argc != 6) {
		fprintf(stderr, "usage: tlsrpt_seed STATE_DIR DOMAIN DAYS_AGO "
		    "MX_HOST MX_IP\n");
		return 2;
	}
	if ((st = tlsrpt_store_open(argv[1], NULL, err, sizeof(err))) == NULL) {
		fprintf(stderr, "tlsrpt_seed: %s\n", err);
		return 1;
	}
	day = tlsrpt_day((int64_t)time(NULL) - 86400 * atoll(argv[3]));
	snprintf(line, sizeof(line), "mx: %s", argv[4]);
	strings[0] = "version: STSv1";
	strings[1] = "mode: enforce";
	strings[2] = line;
	strings[3] = "max_age: 86400";
	mx[0] = argv[4];
	a.policy_domain = argv[2];
	a.policy_type = TLSRPT_POLICY_STS;
	a.policy_strings = strings;
	a.npolicy_strings = 4;
	a.mx_hosts = mx;
	a.nmx_hosts = 1;
	a.sending_mta_ip = "10.25.1.1";
	a.receiving_mx_hostname = argv[4];
	a.receiving_ip = argv[5];
	a.result = TLSRPT_SUCCESS;
	if (tlsrpt_record(st, day, &a) == -1)
		goto fail;
	a.result = TLSRPT_CERTIFICATE_NOT_TRUSTED;
	a.failure_reason = "seeded";
	if (tlsrpt_record(st, day, &a) == -1)
		goto fail;
	tlsrpt_store_close(st);
	return 0;
fail:
	fprintf(stderr, "tlsrpt_seed: %s\n", tlsrpt_store_error(st));
	tlsrpt_store_close(st);
	return 1;
}
