/* fuzz_txt_dns.c - the DNS response parser (TXT, MX, A, TLSA answers). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy/dns.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const int types[] = { DNS_T_TXT, DNS_T_MX, DNS_T_A, DNS_T_AAAA,
	    DNS_T_TLSA };
	struct dns_answer *a;
	int i;

	if (size < 1)
		return 0;
	a = dns_parse(data + 1, (int)(size - 1), "_mta-sts.example.com",
	    types[data[0] % 5]);
	if (a == NULL)
		return 0;
	for (i = 0; i < a->nrr; i++) {
		if (a->rr[i].type == DNS_T_TXT &&
		    strlen(a->rr[i].u.txt.text) > a->rr[i].u.txt.len)
			__builtin_trap();
		if (a->rr[i].type == DNS_T_MX &&
		    strlen(a->rr[i].u.mx.host) > 255)
			__builtin_trap();
	}
	/* the TXT records past the kept, read on demand */
	for (i = 0; i < a->ndropped; i++) {
		size_t len;
		char *t = dns_txt_cut(a, i, &len);

		if (t != NULL && strlen(t) > len)
			__builtin_trap();
		free(t);
	}
	dns_answer_unref(a);
	return 0;
}
