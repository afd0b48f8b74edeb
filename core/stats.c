/*
 * stats.c - metric registry (see stats.h).  A linear list: there are a
 * few dozen metrics and lookups by name happen on rare events only.
 * Every metric and its strings belong to the registry for the life of the
 * process.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/stats.h"

/* Seconds, from a millisecond (a cached policy) to five minutes (a slow
 * session): the durations the histograms measure. */
static const double seconds_bounds[] = { 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300 };

struct stat_ctr {
	struct stat_ctr	*next;
	char		*name;
	char		*help;
	enum stat_type	 type;
	int		 typed;		/* type said by the caller */
	int64_t		 value;		/* histogram: count */
	/* histograms only */
	size_t		 nb;
	double		 le[STATS_MAX_BUCKETS];
	uint64_t	 bucket[STATS_MAX_BUCKETS];	/* not cumulative */
	double		 sum;
};

static struct stat_ctr *head, **tail = &head;

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

static struct stat_ctr *
lookup(const char *name, const char *help, enum stat_type type, int typed)
{
	struct stat_ctr *c, *fam = NULL;
	size_t n = family_len(name);

	for (c = head; c; c = c->next) {
		if (strcmp(c->name, name) == 0)
			break;
		if (fam == NULL && family_len(c->name) == n &&
		    strncmp(c->name, name, n) == 0)
			fam = c;
	}
	if (c == NULL) {
		if ((c = calloc(1, sizeof(*c))) == NULL ||
		    (c->name = strdup(name)) == NULL)
			abort();
		if (fam != NULL && !typed) {
			c->type = fam->type;
			c->typed = fam->typed;
		} else if (typed) {
			c->type = type;
			c->typed = 1;
		} else	/* the old guess, for callers that do not say */
			c->type = n > 6 && strncmp(name + n - 6, "_total", 6)
			    == 0 ? STAT_COUNTER : STAT_GAUGE;
		*tail = c;
		tail = &c->next;
	}
	if (typed) {
		struct stat_ctr *d;

		/* one family, one type: an explicit one wins over a guess,
		 * two explicit ones must agree */
		for (d = head; d; d = d->next)
			if (same_family(c, d)) {
				if (d->typed && d->type != type)
					abort();
				d->type = type;
				d->typed = 1;
			}
	}
	if (c->help == NULL && help != NULL && (c->help = strdup(help)) == NULL)
		abort();
	return c;
}

struct stat_ctr *
stats_get(const char *name, const char *help)
{
	return lookup(name, help, STAT_COUNTER, 0);
}

struct stat_ctr *
stats_counter(const char *name, const char *help)
{
	return lookup(name, help, STAT_COUNTER, 1);
}

struct stat_ctr *
stats_gauge(const char *name, const char *help)
{
	return lookup(name, help, STAT_GAUGE, 1);
}

struct stat_ctr *
stats_histogram(const char *name, const char *help, const double *bounds,
    size_t n)
{
	struct stat_ctr *c;
	size_t i;

	if (bounds == NULL) {
		bounds = seconds_bounds;
		n = sizeof(seconds_bounds) / sizeof(seconds_bounds[0]);
	}
	if (strchr(name, '{') != NULL || n == 0 || n > STATS_MAX_BUCKETS)
		abort();
	for (i = 1; i < n; i++)
		if (!(bounds[i - 1] < bounds[i]))
			abort();
	c = lookup(name, help, STAT_HISTOGRAM, 1);
	if (c->nb == 0) {
		memcpy(c->le, bounds, n * sizeof(*bounds));
		c->nb = n;
	}
	return c;
}

void
stats_observe(struct stat_ctr *c, double v)
{
	size_t i;

	if (c->type != STAT_HISTOGRAM)
		return;
	for (i = 0; i < c->nb && v > c->le[i]; i++)
		;
	if (i < c->nb)
		c->bucket[i]++;
	c->value++;
	c->sum += v;
}

double
stats_clock(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void
stats_add(struct stat_ctr *c, int64_t d)
{
	if (c->type != STAT_HISTOGRAM)
		c->value += d;
}

void
stats_set(struct stat_ctr *c, int64_t v)
{
	if (c->type != STAT_HISTOGRAM)
		c->value = v;
}

int64_t
stats_value(const struct stat_ctr *c)
{
	return c->value;
}

enum stat_type
stats_type(const struct stat_ctr *c)
{
	return c->type;
}

void
stats_inc_name(const char *name)
{
	stats_add(stats_get(name, NULL), 1);
}

static void
write_histogram(FILE *fp, const struct stat_ctr *c)
{
	uint64_t cum = 0;
	size_t i;

	for (i = 0; i < c->nb; i++) {
		cum += c->bucket[i];
		fprintf(fp, "%s_bucket{le=\"%g\"} %llu\n", c->name, c->le[i],
		    (unsigned long long)cum);
	}
	fprintf(fp, "%s_bucket{le=\"+Inf\"} %lld\n%s_sum %.9g\n"
	    "%s_count %lld\n", c->name, (long long)c->value, c->name, c->sum,
	    c->name, (long long)c->value);
}

/* Prometheus wants each family's samples together, under one HELP/TYPE. */
void
stats_write_prometheus(FILE *fp)
{
	static const char *tname[] = { "counter", "gauge", "histogram" };
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
		    help ? help : c->name, n, c->name, tname[c->type]);
		if (c->type == STAT_HISTOGRAM) {
			write_histogram(fp, c);
			continue;
		}
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
		if (c->type == STAT_HISTOGRAM)
			fprintf(fp, "%s_count %lld\n%s_sum %.9g\n", c->name,
			    (long long)c->value, c->name, c->sum);
		else
			fprintf(fp, "%s %lld\n", c->name, (long long)c->value);
}
