/*
 * stats.c - metric registry (see stats.h).  A linear list: there are a
 * few dozen metrics and lookups by name happen on rare events only.
 * Every metric and its strings belong to the registry for the life of the
 * process.
 *
 * Workers (cmd/workers.c): a metric's numbers (struct stat_val) live
 * either in the metric itself or, in a worker process, in that worker's
 * slot (struct stats_slot): one record per metric, with its name, help
 * and type, read by the supervisor, which prints the sum over all slots.
 * A slot whose worker died is folded into the supervisor's "retired"
 * totals (counters and histograms; gauges die with their process) before
 * a new worker gets it, so counters never go backwards.  Plain loads and
 * stores: a reader may see a metric one event behind, never a torn 64-bit
 * value (aligned, x86-64 and arm64).
 *
 * Who writes what.  Workers parse the network, so one may be compromised;
 * it must not be able to change what the other workers or the supervisor
 * count.  So every slot is shared memory of its own (a memfd, sealed
 * against shrinking and growing), which the supervisor maps twice before
 * forking: read-write, and read-only through a second descriptor opened
 * O_RDONLY; both descriptors are closed at once.  A worker, first thing
 * after fork, unmaps the read-write mappings of every slot but its own:
 * it writes its own slot only and reads every slot (the session limit is
 * the daemon's).  The read-only mappings cannot be made writable again:
 * a MAP_SHARED mapping of a descriptor not open for writing loses
 * VM_MAYWRITE, so mprotect(PROT_WRITE) fails with EACCES, and neither
 * madvise(MADV_REMOVE) nor a write to /proc/self/mem (FOLL_FORCE writes
 * only private copy-on-write mappings) gets through; no descriptor is
 * left to map the memory again.  The supervisor writes a slot only to
 * empty it once its worker is dead, and reads through the read-only
 * mappings.  What a worker's own slot says is still the worker's word,
 * so the supervisor trusts it little: a record named like one of its own
 * metrics is ignored, counts below 0 count as 0, sums stop at the
 * largest value instead of wrapping.
 */
#include <sys/mman.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/stats.h"

/* Seconds, from a millisecond (a cached policy) to five minutes (a slow
 * session): the durations the histograms measure. */
static const double seconds_bounds[] = { 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300 };

struct stat_val {
	int64_t		 value;		/* histogram: count */
	double		 sum;		/* histograms only */
	uint64_t	 bucket[STATS_MAX_BUCKETS];	/* not cumulative */
};

struct stat_ctr {
	struct stat_ctr	*next;
	char		*name;
	char		*help;
	enum stat_type	 type;
	int		 typed;		/* type said by the caller */
	int		 own;		/* merged list: the supervisor's own */
	/* histograms only */
	size_t		 nb;
	double		 le[STATS_MAX_BUCKETS];
	struct stat_val	*v;		/* &mine, or the shared record's */
	struct stat_val	 mine;
	struct stats_rec *rec;		/* shared record, or NULL */
};

/* One metric in a worker's slot. */
#define STATS_NAME_MAX	256
#define STATS_HELP_MAX	160
#define STATS_SLOT_RECS	512
struct stats_rec {
	char		 name[STATS_NAME_MAX];
	char		 help[STATS_HELP_MAX];
	int32_t		 type;
	int32_t		 nb;
	double		 le[STATS_MAX_BUCKETS];
	struct stat_val	 v;
};

struct stats_slot {
	uint32_t	 nrec;		/* published after the record is set */
	uint32_t	 pad;
	uint64_t	 beat;		/* the worker's last heartbeat (ms) */
	uint64_t	 config;	/* 1 << 32 | the digest its worker
					 * runs; 0 not said */
	struct stats_rec rec[STATS_SLOT_RECS];
};

/* One slot's mappings (MAP_SHARED, sizeof(struct stats_slot) each). */
struct stats_map {
	struct stats_slot	*rw;	/* the supervisor: all; a worker: its
					 * own (NULL for the others) */
	const struct stats_slot	*ro;	/* every process, every slot */
};

struct stats_shm {
	int		 nslots;
	struct stats_map *map;		/* nslots of them */
};

static struct stat_ctr *head, **tail = &head;
static struct stats_slot *myslot;	/* a worker's */
static struct stats_shm *supervised;	/* the supervisor's */
static struct stat_ctr *retired;	/* dead workers' totals */
static const char *reserved[STATS_RESERVED_MAX];	/* stats_reserve() */
static size_t nreserved;
static void merged_free(struct stat_ctr *);
static size_t nretired;			/* names in it */
/* Names the retired totals keep: every name an honest worker registers,
 * many times over; a worker compromised again after each restart could
 * otherwise add STATS_SLOT_RECS new ones per life, for ever (and each
 * scrape walks the list once per name).  Values of names already there
 * are still added. */
#define STATS_RETIRED_MAX	(4 * STATS_SLOT_RECS)

static void
set_type(struct stat_ctr *c, enum stat_type t)
{
	c->type = t;
	if (c->rec != NULL)
		c->rec->type = (int32_t)t;
}

static void
set_help(struct stat_ctr *c)
{
	if (c->rec != NULL && c->help != NULL && c->rec->help[0] == '\0')
		snprintf(c->rec->help, sizeof(c->rec->help), "%s", c->help);
}

/* A new metric's numbers go to the worker's slot when there is room (a
 * metric that does not fit stays private: counted, never aggregated). */
static void
place(struct stat_ctr *c)
{
	struct stats_rec *r;
	uint32_t n;

	c->v = &c->mine;
	if (myslot == NULL || strlen(c->name) >= STATS_NAME_MAX ||
	    (n = myslot->nrec) >= STATS_SLOT_RECS)
		return;
	r = &myslot->rec[n];
	memset(r, 0, sizeof(*r));
	snprintf(r->name, sizeof(r->name), "%s", c->name);
	r->type = (int32_t)c->type;
	c->rec = r;
	c->v = &r->v;
	__atomic_store_n(&myslot->nrec, n + 1, __ATOMIC_RELEASE);
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
		place(c);
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
				set_type(d, type);
				d->typed = 1;
			}
	}
	if (c->help == NULL && help != NULL && (c->help = strdup(help)) == NULL)
		abort();
	set_help(c);
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
		if (c->rec != NULL) {
			memcpy(c->rec->le, bounds, n * sizeof(*bounds));
			c->rec->nb = (int32_t)n;
		}
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
		c->v->bucket[i]++;
	c->v->value++;
	c->v->sum += v;
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
		c->v->value += d;
}

void
stats_set(struct stat_ctr *c, int64_t v)
{
	if (c->type != STAT_HISTOGRAM)
		c->v->value = v;
}

int64_t
stats_value(const struct stat_ctr *c)
{
	return c->v->value;
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
		cum += c->v->bucket[i];
		fprintf(fp, "%s_bucket{le=\"%g\"} %llu\n", c->name, c->le[i],
		    (unsigned long long)cum);
	}
	fprintf(fp, "%s_bucket{le=\"+Inf\"} %lld\n%s_sum %.9g\n"
	    "%s_count %lld\n", c->name, (long long)c->v->value, c->name,
	    c->v->sum, c->name, (long long)c->v->value);
}

/* Prometheus wants each family's samples together, under one HELP/TYPE. */
static void
write_prometheus(struct stat_ctr *list, FILE *fp)
{
	static const char *tname[] = { "counter", "gauge", "histogram" };
	struct stat_ctr *c, *d;

	for (c = list; c; c = c->next) {
		const char *help = NULL;
		int n = (int)family_len(c->name);

		for (d = list; d != c && !same_family(d, c); d = d->next)
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
				    (long long)d->v->value);
	}
}

static void
write_plain(struct stat_ctr *list, FILE *fp)
{
	struct stat_ctr *c;

	for (c = list; c; c = c->next)
		if (c->type == STAT_HISTOGRAM)
			fprintf(fp, "%s_count %lld\n%s_sum %.9g\n", c->name,
			    (long long)c->v->value, c->name, c->v->sum);
		else
			fprintf(fp, "%s %lld\n", c->name,
			    (long long)c->v->value);
}

/* ------------------------------------------------------------ workers */

static void
shm_free(struct stats_shm *m)
{
	int i;

	for (i = 0; i < m->nslots; i++) {
		if (m->map[i].rw != NULL)
			(void)munmap(m->map[i].rw, sizeof(struct stats_slot));
		if (m->map[i].ro != NULL)
			(void)munmap((void *)m->map[i].ro,
			    sizeof(struct stats_slot));
	}
	free(m->map);
	free(m);
}

/*
 * One slot's memory, mapped read-write and read-only (see the head
 * comment).  The read-only mapping must come from a descriptor opened
 * O_RDONLY: PROT_READ on the memfd's own O_RDWR descriptor would keep
 * VM_MAYWRITE, and mprotect() could make it writable again.  There is no
 * other way to a read-only descriptor of a memfd than reopening it
 * through /proc (ProtectProc=invisible still shows /proc/self).  The
 * seals: a slot never changes size, so no holder of the memory can make
 * its readers fault (SIGBUS) past a shrunk end.  Closes both descriptors
 * whatever happens; -1 with errno set on failure.
 */
static int
slot_map(struct stats_map *mp)
{
	char path[64];
	void *rw = MAP_FAILED, *ro = MAP_FAILED;
	int fd, rofd = -1, rc = -1, saved;

	if ((fd = memfd_create("mxguard-stats", MFD_CLOEXEC |
	    MFD_ALLOW_SEALING)) == -1)
		return -1;
	if (ftruncate(fd, (off_t)sizeof(struct stats_slot)) == -1 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW |
	    F_SEAL_SEAL) == -1)
		goto fail;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	if ((rofd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		goto fail;
	if ((rw = mmap(NULL, sizeof(struct stats_slot), PROT_READ |
	    PROT_WRITE, MAP_SHARED, fd, 0)) == MAP_FAILED ||
	    (ro = mmap(NULL, sizeof(struct stats_slot), PROT_READ,
	    MAP_SHARED, rofd, 0)) == MAP_FAILED)
		goto fail;
	mp->rw = rw;
	mp->ro = ro;
	rc = 0;
 fail:
	saved = errno;
	if (rc == -1 && rw != MAP_FAILED)
		(void)munmap(rw, sizeof(struct stats_slot));
	if (rofd != -1)
		close(rofd);
	close(fd);
	errno = saved;
	return rc;
}

struct stats_shm *
stats_shm_new(int nslots)
{
	struct stats_shm *m;
	int i, saved;

	if (nslots < 1) {
		errno = EINVAL;
		return NULL;
	}
	if ((m = calloc(1, sizeof(*m))) == NULL)
		return NULL;
	if ((m->map = calloc((size_t)nslots, sizeof(*m->map))) == NULL)
		goto fail;
	m->nslots = nslots;
	for (i = 0; i < nslots; i++)
		if (slot_map(&m->map[i]) == -1)
			goto fail;
	return m;
 fail:
	saved = errno;
	shm_free(m);
	errno = saved;
	return NULL;
}

void
stats_shm_attach(struct stats_shm *m, int slot)
{
	int i;

	/* the other workers' slots: readable, no longer writable.  A
	 * worker that could not give up writing them must not run. */
	for (i = 0; i < m->nslots; i++)
		if (i != slot && m->map[i].rw != NULL) {
			if (munmap(m->map[i].rw, sizeof(struct stats_slot)) ==
			    -1)
				abort();
			m->map[i].rw = NULL;
		}
	/* the supervisor's metrics, inherited by fork, are not ours: they
	 * stay allocated (a module may still hold a pointer) but unlisted */
	head = NULL;
	tail = &head;
	supervised = NULL;
	/* the retired totals are the supervisor's own copies, no module
	 * points into them: freed (dropped, each worker forked after a
	 * worker's death leaked them) */
	merged_free(retired);
	retired = NULL;
	nretired = 0;
	myslot = m->map[slot].rw;
	__atomic_store_n(&myslot->nrec, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&myslot->beat, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&myslot->config, 0, __ATOMIC_RELAXED);
}

const void *
stats_shm_slot_view(const struct stats_shm *m, int slot)
{
	if (m->map[slot].rw != NULL)
		return m->map[slot].rw;
	return m->map[slot].ro;
}

void
stats_detach(void)
{
	struct stat_ctr *c;

	for (c = head; c != NULL; c = c->next)
		if (c->rec != NULL) {
			c->mine = c->rec->v;
			c->v = &c->mine;
			c->rec = NULL;
		}
	myslot = NULL;
	supervised = NULL;
}

void
stats_shm_supervise(struct stats_shm *m)
{
	supervised = m;
}

void
stats_reserve(const char *family)
{
	size_t i;

	for (i = 0; i < nreserved; i++)
		if (strcmp(reserved[i], family) == 0)
			return;
	if (nreserved == STATS_RESERVED_MAX)
		abort();
	reserved[nreserved++] = family;
}

static int
is_reserved(const char *name)
{
	size_t i, n = family_len(name);

	for (i = 0; i < nreserved; i++)
		if (strlen(reserved[i]) == n &&
		    strncmp(reserved[i], name, n) == 0)
			return 1;
	return 0;
}

static int
rec_count(const struct stats_slot *sl)
{
	uint32_t n = __atomic_load_n(&sl->nrec, __ATOMIC_ACQUIRE);

	return n > STATS_SLOT_RECS ? STATS_SLOT_RECS : (int)n;
}

static int
name_start(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int
name_char(char c)
{
	return name_start(c) || (c >= '0' && c <= '9');
}

/*
 * Whether a worker's record name can be printed as it is: a metric name
 * ([a-zA-Z_:][a-zA-Z0-9_:]*), then at most one label set
 * {name="value",...} whose values hold no control byte and escape only
 * \\, \" and \n, and nothing after it (a histogram: no label set, its
 * lines add their own).  A worker may be compromised: a newline in a name
 * would put lines of its making into the text (a sample of the
 * supervisor's own metric, say), and a label set left open would make a
 * scraper throw away the whole answer, the supervisor's metrics with it.
 */
static int
rec_name_ok(const char *p, int32_t type)
{
	if (!name_start(*p) && *p != ':')
		return 0;
	while (name_char(*p) || *p == ':')
		p++;
	if (*p == '\0')
		return 1;
	if (*p++ != '{' || type == STAT_HISTOGRAM)
		return 0;
	if (*p == '}')
		return p[1] == '\0';
	for (;;) {
		if (!name_start(*p))
			return 0;
		while (name_char(*p))
			p++;
		if (*p++ != '=' || *p++ != '"')
			return 0;
		for (; *p != '"'; p++) {
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				return 0;	/* the end, or a control byte */
			if (*p == '\\' && *++p != '\\' && *p != '"' &&
			    *p != 'n')
				return 0;
		}
		p++;
		if (*p == '}')
			return p[1] == '\0';
		if (*p++ != ',')
			return 0;
	}
}

/* A worker's help text, as a HELP line may hold it: control bytes and
 * backslashes (the line's escape) become spaces. */
static char *
help_dup(const char *help)
{
	char *h, *p;

	if ((h = strndup(help, STATS_HELP_MAX - 1)) == NULL)
		abort();
	for (p = h; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f || *p == '\\')
			*p = ' ';
	return h;
}

/* A merged-list entry for rec's name (made when missing, unless *room
 * is 0; room NULL: no bound), or NULL when the name is known with another
 * type or other bounds, or when it is new and there is no room. */
static struct stat_ctr *
merge_find(struct stat_ctr **list, const struct stats_rec *r, int *made,
    size_t *room)
{
	struct stat_ctr *c, **pp;

	*made = 0;
	for (pp = list; (c = *pp) != NULL; pp = &c->next)
		if (strncmp(c->name, r->name, STATS_NAME_MAX) == 0)
			break;
	if (c != NULL) {
		if (c->type == STAT_HISTOGRAM && r->type == STAT_GAUGE &&
		    !c->own) {
			/* a gauge wins over a histogram of its name (see
			 * rec_type_ok()): the histogram's numbers go */
			c->type = STAT_GAUGE;
			c->nb = 0;
			memset(c->v, 0, sizeof(*c->v));
			free(c->help);
			c->help = NULL;
			*made = 1;
			return c;
		}
		if ((int32_t)c->type != r->type || (c->type == STAT_HISTOGRAM &&
		    (c->nb != (size_t)r->nb || memcmp(c->le, r->le,
		    c->nb * sizeof(double)) != 0)))
			return NULL;
		return c;
	}
	if (room != NULL) {
		if (*room == 0)
			return NULL;
		(*room)--;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (c->name = strndup(r->name, STATS_NAME_MAX - 1)) == NULL)
		abort();
	if (r->help[0] != '\0')
		c->help = help_dup(r->help);
	c->type = r->type == STAT_GAUGE || r->type == STAT_HISTOGRAM ?
	    (enum stat_type)r->type : STAT_COUNTER;
	c->typed = 1;
	c->nb = r->nb > 0 && r->nb <= STATS_MAX_BUCKETS ? (size_t)r->nb : 0;
	memcpy(c->le, r->le, c->nb * sizeof(double));
	c->v = &c->mine;
	*pp = c;
	*made = 1;
	return c;
}

/* Gauges whose value describes what every worker shares: a store's size
 * (GAUGE_MAX: the largest, not the sum), the resolver self-check and the
 * Redis connection (GAUGE_MIN: 0 if any worker saw it failing). */
#define GAUGE_SUM	0
#define GAUGE_MAX	1
#define GAUGE_MIN	2
static int
gauge_shared(const char *name)
{
	static const struct {
		const char	*fam;
		int		 how;
	} g[] = {
		{ "mxguard_sts_cache_entries", GAUGE_MAX },
		{ "mxguard_tls_history_entries", GAUGE_MAX },
		{ "mxguard_dns_validating", GAUGE_MIN },
		{ "mxguard_redis_up", GAUGE_MIN },
	};
	size_t i, n = family_len(name);

	for (i = 0; i < sizeof(g) / sizeof(g[0]); i++)
		if (strlen(g[i].fam) == n && strncmp(g[i].fam, name, n) == 0)
			return g[i].how;
	return GAUGE_SUM;
}

/* A worker's numbers are its own word: a sum stops at the largest value
 * (or the smallest) rather than wrap, which a worker writing INT64_MAX
 * could otherwise arrange (and signed overflow is undefined). */
static void
add_sat(int64_t *to, int64_t v)
{
	if (__builtin_add_overflow(*to, v, to))
		*to = v < 0 ? INT64_MIN : INT64_MAX;
}

/* A count: never below 0, so that no worker lowers the sum. */
static void
add_count(int64_t *to, int64_t v)
{
	add_sat(to, v < 0 ? 0 : v);
}

/* A bucket: as add_count(), for the unsigned type the buckets have (a
 * value past INT64_MAX is a negative one written as unsigned). */
static void
add_bucket(uint64_t *to, uint64_t v)
{
	if (v > INT64_MAX)
		return;
	*to = *to > UINT64_MAX - v ? UINT64_MAX : *to + v;
}

/*
 * Whether a worker's record has the type its name says.  The first record
 * of a name sets the type it is merged under, and records of another type
 * are left out: a compromised worker that registered a name first with
 * another type would push every honest worker's numbers of that name out
 * (a failure counter claimed as a gauge of 0, the resolver's health gauge
 * as a counter of 1), and from the retired totals for good.  So a counter
 * is a "_total" name and a "_total" name a counter (stats.h), and between
 * a gauge and a histogram of one name the gauge wins (merge_find()): a
 * health gauge is never hidden, a latency histogram may be.  Nor is a
 * gauge or histogram named like a histogram's lines (X_bucket, X_sum,
 * X_count): no metric of mxguard's is, and its family, printed beside
 * the histogram X's lines of the same name, is a second TYPE for that
 * name, on which a scraper that parses the text strictly throws the
 * whole answer away.
 */
static int
ends_with(const char *name, size_t n, const char *suffix)
{
	size_t sl = strlen(suffix);

	return n >= sl && strncmp(name + n - sl, suffix, sl) == 0;
}

static int
rec_type_ok(const struct stats_rec *r)
{
	size_t n = family_len(r->name);
	int total = ends_with(r->name, n, "_total");

	if (r->type == STAT_COUNTER)
		return total;
	if (ends_with(r->name, n, "_bucket") || ends_with(r->name, n, "_sum") ||
	    ends_with(r->name, n, "_count"))
		return 0;
	return (r->type == STAT_GAUGE || r->type == STAT_HISTOGRAM) && !total;
}

static void
merge_rec(struct stat_ctr **list, const struct stats_rec *r, int gauges,
    size_t *room)
{
	struct stat_ctr *c;
	int made;
	size_t i;

	if (r->name[0] == '\0' || (r->type == STAT_GAUGE && !gauges))
		return;
	/* a name that the text formats cannot carry as it is */
	if (!rec_name_ok(r->name, r->type))
		return;
	if (!rec_type_ok(r))
		return;
	/* printed by the supervisor outside the registry (stats_reserve()) */
	if (is_reserved(r->name))
		return;
	/* a histogram whose bounds its worker is still writing */
	if (r->type == STAT_HISTOGRAM && r->nb == 0)
		return;
	if ((c = merge_find(list, r, &made, room)) == NULL)
		return;
	/* the supervisor's own metric (mxguard_nfq_*, the workers'
	 * lives): only the supervisor counts it, and a worker's record of
	 * that name, of any type, would let a compromised worker change it */
	if (c->own)
		return;
	if (c->help == NULL && r->help[0] != '\0')
		c->help = help_dup(r->help);
	if (c->type == STAT_GAUGE) {
		switch (made ? GAUGE_SUM : gauge_shared(c->name)) {
		case GAUGE_MAX:
			if (r->v.value > c->v->value)
				c->v->value = r->v.value;
			return;
		case GAUGE_MIN:
			if (r->v.value < c->v->value)
				c->v->value = r->v.value;
			return;
		}
		add_sat(&c->v->value, r->v.value);
		return;
	}
	add_count(&c->v->value, r->v.value);
	if (c->type == STAT_HISTOGRAM) {
		c->v->sum += r->v.sum;
		for (i = 0; i < c->nb; i++)
			add_bucket(&c->v->bucket[i], r->v.bucket[i]);
	}
}

/* A worker's record as the supervisor may use it: a copy (the worker may
 * be writing it), its strings ended whatever the worker wrote there. */
static void
rec_copy(struct stats_rec *r, const struct stats_rec *from)
{
	memcpy(r, from, sizeof(*r));
	r->name[STATS_NAME_MAX - 1] = '\0';
	r->help[STATS_HELP_MAX - 1] = '\0';
}

/* c's name, type and numbers as a record (for merging). */
static void
as_rec(const struct stat_ctr *c, struct stats_rec *r)
{
	memset(r, 0, sizeof(*r));
	snprintf(r->name, sizeof(r->name), "%s", c->name);
	if (c->help != NULL)
		snprintf(r->help, sizeof(r->help), "%s", c->help);
	r->type = (int32_t)c->type;
	r->nb = (int32_t)c->nb;
	memcpy(r->le, c->le, c->nb * sizeof(double));
	r->v = *c->v;
}

void
stats_shm_retire(struct stats_shm *m, int slot)
{
	struct stats_slot *sl = m->map[slot].rw;
	struct stats_rec *r;
	int i, n = rec_count(m->map[slot].ro);

	if ((r = malloc(sizeof(*r))) == NULL)
		abort();
	for (i = 0; i < n; i++) {
		size_t room = STATS_RETIRED_MAX - nretired;

		rec_copy(r, &m->map[slot].ro->rec[i]);
		merge_rec(&retired, r, 0, &room);
		nretired = STATS_RETIRED_MAX - room;
	}
	free(r);
	__atomic_store_n(&sl->nrec, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&sl->config, 0, __ATOMIC_RELAXED);
	memset(sl->rec, 0, (size_t)n * sizeof(sl->rec[0]));
}

void
stats_shm_beat(uint64_t now_ms)
{
	if (myslot != NULL)
		__atomic_store_n(&myslot->beat, now_ms, __ATOMIC_RELAXED);
}

uint64_t
stats_shm_last_beat(struct stats_shm *m, int slot)
{
	return __atomic_load_n(&m->map[slot].ro->beat, __ATOMIC_RELAXED);
}

void
stats_shm_config(uint32_t digest)
{
	if (myslot != NULL)
		__atomic_store_n(&myslot->config, (uint64_t)1 << 32 | digest,
		    __ATOMIC_RELAXED);
}

int
stats_shm_slot_config(struct stats_shm *m, int slot, uint32_t *digest)
{
	uint64_t v = __atomic_load_n(&m->map[slot].ro->config,
	    __ATOMIC_RELAXED);

	*digest = (uint32_t)v;
	return v >> 32 == 1;
}

/* Each slot's value counts for 0 or more: this is the sum of
 * mxguard_sessions_active, and no worker may hide the others' sessions
 * by claiming fewer than none.  (It can still claim its slot is full:
 * see docs/architecture.md.) */
int64_t
stats_shm_sum_capped(struct stats_shm *m, const char *name, int64_t cap)
{
	int64_t sum = 0, v;
	int s, i, n;

	for (s = 0; s < m->nslots; s++) {
		const struct stats_slot *sl = m->map[s].ro;

		n = rec_count(sl);
		for (i = 0; i < n; i++)
			if (strncmp(sl->rec[i].name, name, STATS_NAME_MAX) == 0) {
				v = sl->rec[i].v.value;
				add_count(&sum, cap >= 0 && v > cap ? cap : v);
				break;
			}
	}
	return sum;
}

int64_t
stats_shm_sum(struct stats_shm *m, const char *name)
{
	return stats_shm_sum_capped(m, name, -1);
}

/* The supervisor's view: its own metrics, the retired totals, then
 * every slot; freed by merged_free(). */
static struct stat_ctr *
merged(void)
{
	struct stat_ctr *list = NULL, *c;
	struct stats_rec *r;
	int s, i, n;

	if ((r = malloc(sizeof(*r))) == NULL)
		abort();
	for (c = head; c; c = c->next) {
		struct stat_ctr *m;
		int made;

		as_rec(c, r);
		if ((m = merge_find(&list, r, &made, NULL)) != NULL && made) {
			*m->v = *c->v;
			m->own = 1;
		}
	}
	for (c = retired; c; c = c->next) {
		as_rec(c, r);
		merge_rec(&list, r, 0, NULL);
	}
	for (s = 0; s < supervised->nslots; s++) {
		const struct stats_slot *sl = supervised->map[s].ro;

		n = rec_count(sl);
		for (i = 0; i < n; i++) {
			rec_copy(r, &sl->rec[i]);
			merge_rec(&list, r, 1, NULL);
		}
	}
	free(r);
	return list;
}

static void
merged_free(struct stat_ctr *list)
{
	struct stat_ctr *c;

	while ((c = list) != NULL) {
		list = c->next;
		free(c->name);
		free(c->help);
		free(c);
	}
}

void
stats_write_prometheus(FILE *fp)
{
	struct stat_ctr *list;

	if (supervised == NULL) {
		write_prometheus(head, fp);
		return;
	}
	list = merged();
	write_prometheus(list, fp);
	merged_free(list);
}

void
stats_write_plain(FILE *fp)
{
	struct stat_ctr *list;

	if (supervised == NULL) {
		write_plain(head, fp);
		return;
	}
	list = merged();
	write_plain(list, fp);
	merged_free(list);
}
