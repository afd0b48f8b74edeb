/*
 * fuzz_dane.c - the DANE module's parsers on untrusted DNS data: the
 * Extended DNS Error scan of a whole response, TLSA rdata parsing and
 * usability (including DER parsing of full certificates / keys), and the
 * RRset digest and formatting.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy/dane.h"
#include "policy/dns.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dane_tlsa t[4];
	struct dns_answer *a;
	unsigned char dg[32];
	char buf[80];
	int n = 0, i;

	(void)dane_ede_dnssec(dane_ede(data, size));
	/* the TLSA records of the response as dns.c parses them */
	if (size <= 65535 && (a = dns_parse(data, (int)size,
	    "_25._tcp.mx.example", DNS_T_TLSA)) != NULL) {
		for (i = 0; i < a->nrr && n < 4; i++)
			if (dane_tlsa_parse(a->rr[i].rdata, a->rr[i].rdlen,
			    &t[n]) == 0)
				n++;
		dns_answer_unref(a);
	}
	/* and the input itself as one rdata */
	if (n < 4 && dane_tlsa_parse(data, size, &t[n]) == 0)
		n++;
	dane_tlsa_digest(t, n, dg);
	for (i = 0; i < n; i++) {
		dane_tlsa_format(&t[i], buf, sizeof(buf));
		free(t[i].data);
	}
	return 0;
}
