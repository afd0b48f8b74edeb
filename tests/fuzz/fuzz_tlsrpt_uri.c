/*
 * fuzz_tlsrpt_uri.c - the rua URI parser.  Traps when an accepted URI
 * yields something delivery could trip over (a mailto: address with
 * other than one "@", a control byte or space in an address or request
 * path, a bad host, port 0), or when parsing what was accepted again
 * gives another result.
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

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct tlsrpt_uri u, again;
	char err[256];
	const char *at;

	if (tlsrpt_uri_parse((const char *)data, size, &u, err,
	    sizeof(err)) == -1) {
		if (err[0] == '\0')
			__builtin_trap();
		return 0;
	}
	if (strlen(u.uri) != size || memcmp(u.uri, data, size) != 0)
		__builtin_trap();
	check_printable(u.uri);
	if (u.kind == TLSRPT_URI_MAILTO) {
		check_printable(u.addr);
		if ((at = strchr(u.addr, '@')) == NULL || at == u.addr ||
		    strchr(at + 1, '@') != NULL ||
		    !tlsrpt_valid_host(at + 1, strlen(at + 1)))
			__builtin_trap();
	} else if (u.kind == TLSRPT_URI_HTTPS) {
		check_printable(u.path);
		if (!tlsrpt_valid_host(u.host, strlen(u.host)) || u.port == 0 ||
		    u.path[0] != '/')
			__builtin_trap();
	} else
		__builtin_trap();
	if (tlsrpt_uri_parse(u.uri, strlen(u.uri), &again, err,
	    sizeof(err)) != 0 || memcmp(&u, &again, sizeof(u)) != 0)
		__builtin_trap();
	return 0;
}
