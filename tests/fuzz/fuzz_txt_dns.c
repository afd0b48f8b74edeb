/*
 * fuzz_txt_dns.c - the DNS response parser (TXT, MX, A, TLSA answers):
 * every record's rdata (and a TLSA record's data) inside the response
 * kept in raw; the records past the kept (more than DNS_MAX_RR), read on
 * demand: TXT text by dns_txt_cut() and dns_txt_all() (the TXT lookups'
 * whole RRset), any rdata by dns_rr_cut() (mx.c's address match), inside
 * raw too.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy/dns.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* [p, p + n) inside the response the answer keeps */
static int
within(const struct dns_answer *a, const unsigned char *p, size_t n)
{
	return a->raw != NULL && p >= a->raw &&
	    p <= a->raw + a->rawlen && n <= (size_t)(a->raw + a->rawlen - p);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const int types[] = { DNS_T_TXT, DNS_T_MX, DNS_T_A, DNS_T_AAAA,
	    DNS_T_TLSA };
	struct dns_answer *a;
	struct dns_txt_all w;
	uint16_t rdlen;
	int i;

	if (size < 1)
		return 0;
	a = dns_parse(data + 1, (int)(size - 1), "_mta-sts.example.com",
	    types[data[0] % 5]);
	if (a == NULL)
		return 0;
	memset(&w, 0, sizeof(w));
	for (i = 0; i < a->nrr; i++) {
		if (a->raw != NULL && a->rr[i].rdata != NULL &&
		    !within(a, a->rr[i].rdata, a->rr[i].rdlen))
			__builtin_trap();
		if (a->rr[i].type == DNS_T_TLSA && a->rr[i].u.tlsa.len > 0 &&
		    a->raw != NULL && !within(a, a->rr[i].u.tlsa.data,
		    a->rr[i].u.tlsa.len))
			__builtin_trap();
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
	for (i = 0; i < a->ndropped; i++) {
		const unsigned char *rd = dns_rr_cut(a, i, &rdlen);

		/* none only in an answer malformed past a kept record
		 * (DNS_ERROR, which no reader takes for records) */
		if ((rd == NULL && a->status != DNS_ERROR) ||
		    (rd != NULL && !within(a, rd, rdlen)))
			__builtin_trap();
	}
	if (a->qtype == DNS_T_TXT && dns_txt_all(a, &w) == 0) {
		if (w.n != a->nrr + a->ndropped)
			__builtin_trap();
		for (i = 0; i < w.n; i++)
			if (w.txt[i] == NULL || strlen(w.txt[i]) > w.len[i])
				__builtin_trap();
	}
	dns_txt_all_free(&w);
	dns_answer_unref(a);
	return 0;
}
