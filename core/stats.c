/*
 * stats.c - counter registry (see stats.h).  A linear list: there are a
 * few dozen counters and lookups by name happen on rare events only.
 */
#include <stdlib.h>
#include <string.h>

#include "core/stats.h"

struct stat_ctr {
	struct stat_ctr	*next;
	char		*name;
	char		*help;
	int		 gauge;
	int64_t		 value;
};

static struct stat_ctr *head, **tail = &head;

struct stat_ctr *
stats_get(const char *name, const char *help)
{
	struct stat_ctr *c;

	for (c = head; c; c = c->next)
		if (strcmp(c->name, name) == 0) {
			if (c->help == NULL && help != NULL)
				c->help = strdup(help);
			return c;
		}
	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (c->name = strdup(name)) == NULL)
		abort();
	if (help)
		c->help = strdup(help);
	/* "_total" names are counters, everything else a gauge */
	{
		const char *b = strchr(name, '{');
		size_t n = b ? (size_t)(b - name) : strlen(name);

		c->gauge = !(n > 6 && strncmp(name + n - 6, "_total", 6) == 0);
	}
	*tail = c;
	tail = &c->next;
	return c;
}

void
stats_add(struct stat_ctr *c, int64_t d)
{
	c->value += d;
}

void
stats_set(struct stat_ctr *c, int64_t v)
{
	c->value = v;
}

int64_t
stats_value(const struct stat_ctr *c)
{
	return c->value;
}

void
stats_inc_name(const char *name)
{
	stats_add(stats_get(name, NULL), 1);
}

static size_t
family_len(const char *name)
{
	const char *b = strchr(name, '{');

	return b ? (size_t)(b - name) : strlen(name);
}

static int
same_family(const struct stat_ctr *a, const struct stat_ctr *b)
{
	size_t n = family_len(a->name);

	return family_len(b->name) == n && strncmp(a->name, b->name, n) == 0;
}

/* Prometheus wants each family's samples together, under one HELP/TYPE. */
void
stats_write_prometheus(FILE *fp)
{
	struct stat_ctr *c, *d;

	for (c = head; c; c = c->next) {
		const char *help = NULL;
		int n = (int)family_len(c->name);

		for (d = head; d != c && !same_family(d, c); d = d->next)
			;
		if (d != c)
			continue;	/* printed with its first member */
		for (d = c; d; d = d->next)
			if (help == NULL && same_family(c, d))
				help = d->help;
		fprintf(fp, "# HELP %.*s %s\n# TYPE %.*s %s\n", n, c->name,
		    help ? help : c->name, n, c->name,
		    c->gauge ? "gauge" : "counter");
		for (d = c; d; d = d->next)
			if (same_family(c, d))
				fprintf(fp, "%s %lld\n", d->name,
				    (long long)d->value);
	}
}

void
stats_write_plain(FILE *fp)
{
	struct stat_ctr *c;

	for (c = head; c; c = c->next)
		fprintf(fp, "%s %lld\n", c->name, (long long)c->value);
}
