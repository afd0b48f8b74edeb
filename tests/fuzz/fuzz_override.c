/*
 * fuzz_override.c - libFuzzer target for the operator's policy table
 * (policy/override.c): the input is a whole tls_policy_file in Postfix
 * syntax, read from its bytes as config_load() hands them over.
 *
 * Beyond memory errors, a table that loads must keep the promises the
 * engine relies on (ovr_find() decides a recipient's level by them):
 * - the sorted index holds every domain entry once, in strict order
 *   (dup_check() refused two lines for one destination);
 * - each domain entry is what ovr_find() returns for its own name (a
 *   ".parent" entry for a name one label below it, unless that name has
 *   an entry of its own);
 * - each address entry is what ovr_find() returns for its own address
 *   (as the engine judges it: mapped and NAT64 forms are the IPv4 one),
 *   whatever the domain;
 * - no destination is an address in all but form: a domain whose last
 *   label is all digits is refused (an IPv4 typo would match no mail).
 */
#include <sys/socket.h>
#include <netinet/in.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/log.h"
#include "policy/override.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_domain(const struct ovr_table *t, int i)
{
	const struct ovr_entry *e = &t->e[i], *r;
	const char *last = strrchr(e->dest, '.');
	char probe[sizeof(e->dest) + 16];

	last = last != NULL ? last + 1 : e->dest;
	if (*last != '\0' && strspn(last, "0123456789") == strlen(last))
		__builtin_trap();
	if (e->dest[0] != '.') {
		if (ovr_find(t, e->dest, NULL) != e)
			__builtin_trap();
		return;
	}
	snprintf(probe, sizeof(probe), "zq-fuzz-probe%s", e->dest);
	r = ovr_find(t, probe, NULL);
	if (r == NULL || (r != e && r->dest[0] == '.'))
		__builtin_trap();
}

static void
check_addr(const struct ovr_table *t, int i)
{
	const struct ovr_entry *e = &t->e[i];
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	if (e->family == AF_INET) {
		ss.ss_family = AF_INET;
		memcpy(&((struct sockaddr_in *)&ss)->sin_addr, e->addr, 4);
	} else if (e->family == AF_INET6) {
		ss.ss_family = AF_INET6;
		memcpy(&((struct sockaddr_in6 *)&ss)->sin6_addr, e->addr, 16);
	} else
		__builtin_trap();
	if (ovr_find(t, "zq-fuzz-probe.example", (struct sockaddr *)&ss) != e)
		__builtin_trap();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int inited;
	struct strlist none;
	struct ovr_table t;
	char err[512];
	int i, nd = 0;

	if (!inited) {
		log_init("fuzz_override", 0, LOG_LVL_ERR);
		inited = 1;
	}
	memset(&none, 0, sizeof(none));
	memset(&t, 0, sizeof(t));
	if (ovr_load(&t, &none, "fuzz", (const char *)data, size, err,
	    sizeof(err)) == -1)
		return 0;
	for (i = 0; i < t.n; i++) {
		if (t.e[i].is_addr) {
			check_addr(&t, i);
			continue;
		}
		nd++;
		check_domain(&t, i);
	}
	if (nd != t.nd)
		__builtin_trap();
	for (i = 1; i < t.nd; i++)
		if (strcmp(t.e[t.didx[i - 1]].dest, t.e[t.didx[i]].dest) >= 0)
			__builtin_trap();
	ovr_clear(&t);
	return 0;
}
