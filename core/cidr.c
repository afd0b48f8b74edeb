/*
 * cidr.c - address prefixes (see cidr.h).
 */
#include <sys/socket.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cidr.h"

int
cidr_parse(const char *s, struct cidr *c)
{
	char buf[INET6_ADDRSTRLEN + 8];
	const char *slash;
	size_t n;
	int max, i;

	memset(c, 0, sizeof(*c));
	if ((slash = strchr(s, '/')) != NULL)
		n = (size_t)(slash - s);
	else
		n = strlen(s);
	if (n == 0 || n >= INET6_ADDRSTRLEN)
		return -1;
	memcpy(buf, s, n);
	buf[n] = '\0';
	if (inet_pton(AF_INET, buf, c->addr) == 1) {
		c->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, buf, c->addr) == 1) {
		c->family = AF_INET6;
		max = 128;
	} else
		return -1;
	c->plen = max;
	if (slash != NULL) {
		const char *p = slash + 1;
		char *end;
		long l;

		if (!isdigit((unsigned char)*p) || strlen(p) > 3)
			return -1;
		l = strtol(p, &end, 10);
		if (*end || l < 0 || l > max)
			return -1;
		c->plen = (int)l;
	}
	/* clear host bits, so "10.1.2.3/8" means 10.0.0.0/8 */
	for (i = 0; i < max / 8; i++) {
		int keep = c->plen - i * 8;

		if (keep >= 8)
			continue;
		if (keep <= 0)
			c->addr[i] = 0;
		else
			c->addr[i] &= (uint8_t)(0xff << (8 - keep));
	}
	return 0;
}

int
cidr_match(const struct cidr *c, int family, const void *addr)
{
	const uint8_t *a = addr;
	int full = c->plen / 8, rest = c->plen % 8;

	if (family != c->family)
		return 0;
	if (memcmp(a, c->addr, full) != 0)
		return 0;
	if (rest == 0)
		return 1;
	return ((a[full] ^ c->addr[full]) & (uint8_t)(0xff << (8 - rest))) == 0;
}

const char *
cidr_str(const struct cidr *c, char *buf, size_t bufsz)
{
	char a[INET6_ADDRSTRLEN];

	if (inet_ntop(c->family, c->addr, a, sizeof(a)) == NULL)
		snprintf(a, sizeof(a), "?");
	snprintf(buf, bufsz, "%s/%d", a, c->plen);
	return buf;
}

int
cidr_host_bits(const char *s, struct cidr *net)
{
	char a[INET6_ADDRSTRLEN];
	const char *slash = strchr(s, '/');
	struct cidr exact;

	if (slash == NULL || cidr_parse(s, net) == -1)
		return 0;
	/* the address as written, as a /32 or /128: other bits? */
	snprintf(a, sizeof(a), "%.*s", (int)(slash - s), s);
	if (cidr_parse(a, &exact) == -1)
		return 0;
	return memcmp(exact.addr, net->addr, sizeof(net->addr)) != 0;
}
