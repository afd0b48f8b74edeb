/*
 * override.c - per-destination overrides (see override.h).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/override.h"
#include "policy/sts.h"

static const char *lvl_names[] = {
	"none", "may", "encrypt", "dane", "verify", "secure",
};

const char *
ovr_level_name(enum ovr_level l)
{
	return (unsigned)l < 6 ? lvl_names[l] : "?";
}

void
ovr_clear(struct ovr_table *t)
{
	free(t->e);
	t->e = NULL;
	t->n = 0;
}

static int
parse_line(const char *line, struct ovr_entry *e, char *err, size_t errsz)
{
	char buf[1024], *tok, *save = NULL, *dest, *lvl;
	char nerr[128];
	int i;

	memset(e, 0, sizeof(*e));
	snprintf(e->line, sizeof(e->line), "%s", line);
	if (strlen(line) >= sizeof(buf)) {
		snprintf(err, errsz, "tls_policy: line too long");
		return -1;
	}
	strcpy(buf, line);
	dest = strtok_r(buf, " \t", &save);
	lvl = strtok_r(NULL, " \t", &save);
	if (dest == NULL || lvl == NULL) {
		snprintf(err, errsz, "tls_policy \"%s\": want DEST LEVEL", line);
		return -1;
	}
	for (i = 0; i < 6; i++)
		if (strcmp(lvl, lvl_names[i]) == 0)
			break;
	if (i == 6) {
		snprintf(err, errsz, "tls_policy \"%s\": unknown level %s "
		    "(none|may|encrypt|dane|verify|secure)", line, lvl);
		return -1;
	}
	e->level = (enum ovr_level)i;
	{
		char a[64];
		size_t dl = strlen(dest);

		if (dest[0] == '[' && dl > 2 && dl < sizeof(a) &&
		    dest[dl - 1] == ']') {
			memcpy(a, dest + 1, dl - 2);
			a[dl - 2] = '\0';
		} else
			snprintf(a, sizeof(a), "%s", dest);
		if (inet_pton(AF_INET, a, e->addr) == 1) {
			e->is_addr = 1;
			e->family = AF_INET;
		} else if (inet_pton(AF_INET6, a, e->addr) == 1) {
			e->is_addr = 1;
			e->family = AF_INET6;
		}
	}
	if (!e->is_addr) {
		int dot = dest[0] == '.';

		if (sts_domain_norm(dest + dot, e->dest + dot,
		    sizeof(e->dest) - 1, nerr, sizeof(nerr)) == -1) {
			snprintf(err, errsz, "tls_policy \"%s\": %s", line,
			    nerr);
			return -1;
		}
		if (dot)
			e->dest[0] = '.';
	}
	while ((tok = strtok_r(NULL, " \t", &save)) != NULL) {
		if (strncmp(tok, "match=", 6) == 0) {
			char *m, *s2 = NULL;

			for (m = strtok_r(tok + 6, ":", &s2); m != NULL;
			    m = strtok_r(NULL, ":", &s2)) {
				if (e->nmatch >= OVR_MAX_MATCH) {
					snprintf(err, errsz, "tls_policy \"%s\": "
					    "too many match names", line);
					return -1;
				}
				snprintf(e->match[e->nmatch++], 256, "%s", m);
			}
		} else {
			snprintf(err, errsz, "tls_policy \"%s\": unknown "
			    "attribute %s", line, tok);
			return -1;
		}
	}
	return 0;
}

int
ovr_load(struct ovr_table *t, const struct strlist *l, char *err,
    size_t errsz)
{
	struct ovr_table n = { 0, NULL };
	int i;

	if (l->n > 0 && (n.e = calloc((size_t)l->n, sizeof(*n.e))) == NULL) {
		snprintf(err, errsz, "out of memory");
		return -1;
	}
	for (i = 0; i < l->n; i++) {
		if (parse_line(l->v[i], &n.e[n.n], err, errsz) == -1) {
			free(n.e);
			return -1;
		}
		n.n++;
	}
	ovr_clear(t);
	*t = n;
	return 0;
}

const struct ovr_entry *
ovr_find(const struct ovr_table *t, const char *domain,
    const struct sockaddr *dst)
{
	const char *p;
	int i;

	if (dst != NULL)
		for (i = 0; i < t->n; i++) {
			const struct ovr_entry *e = &t->e[i];

			if (!e->is_addr || e->family != dst->sa_family)
				continue;
			if (e->family == AF_INET && memcmp(e->addr,
			    &((const struct sockaddr_in *)dst)->sin_addr,
			    4) == 0)
				return e;
			if (e->family == AF_INET6 && memcmp(e->addr,
			    &((const struct sockaddr_in6 *)dst)->sin6_addr,
			    16) == 0)
				return e;
		}
	if (domain == NULL || domain[0] == '\0')
		return NULL;
	for (i = 0; i < t->n; i++)
		if (!t->e[i].is_addr && strcmp(t->e[i].dest, domain) == 0)
			return &t->e[i];
	for (p = strchr(domain, '.'); p != NULL; p = strchr(p + 1, '.'))
		for (i = 0; i < t->n; i++)
			if (!t->e[i].is_addr && strcmp(t->e[i].dest, p) == 0)
				return &t->e[i];
	return NULL;
}
