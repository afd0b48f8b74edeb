/*
 * fuzz_tlsrpt_txt.c - the _smtp._tls TXT record parser and selector.
 * Besides memory errors, traps when an accepted record breaks what the
 * delivery code will rely on: 1..TLSRPT_RUA_MAX URIs, each either a
 * single plain address or an https host name, port and absolute path,
 * with no byte that could end a header line or a request line.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "policy/tlsrpt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_printable(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
			__builtin_trap();
}

static void
check_record(const struct tlsrpt_policy_record *r)
{
	int i;

	if (r->nrua < 1 || r->nrua > TLSRPT_RUA_MAX)
		__builtin_trap();
	for (i = 0; i < r->nrua; i++) {
		const struct tlsrpt_uri *u = &r->rua[i];
		const char *at;

		check_printable(u->uri);
		if (u->kind == TLSRPT_URI_MAILTO) {
			check_printable(u->addr);
			if ((at = strchr(u->addr, '@')) == NULL ||
			    strchr(at + 1, '@') != NULL ||
			    !tlsrpt_valid_host(at + 1, strlen(at + 1)))
				__builtin_trap();
		} else if (u->kind == TLSRPT_URI_HTTPS) {
			check_printable(u->path);
			if (!tlsrpt_valid_host(u->host, strlen(u->host)) ||
			    u->port == 0 || u->path[0] != '/')
				__builtin_trap();
		} else
			__builtin_trap();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct tlsrpt_policy_record r;
	char err[256];
	const char *recs[4];
	size_t lens[4], i, start = 0;
	int n = 0, rc;

	rc = tlsrpt_txt_parse((const char *)data, size, &r, err, sizeof(err));
	if (rc == 1)
		check_record(&r);
	else if (rc == -1 && err[0] == '\0')
		__builtin_trap();
	/* split at 0xff into up to 4 records for the selector */
	for (i = 0; i <= size && n < 4; i++)
		if (i == size || data[i] == 0xff) {
			recs[n] = (const char *)data + start;
			lens[n++] = i - start;
			start = i + 1;
		}
	rc = tlsrpt_txt_select(recs, lens, n, &r, err, sizeof(err));
	if (rc == 1)
		check_record(&r);
	else if (r.nrua != 0)
		__builtin_trap();
	return 0;
}
