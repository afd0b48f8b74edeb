/*
 * stats.h - named counters, gauges and histograms for `mxguard status` and
 * the Prometheus endpoint.
 *
 * A module asks once for a metric by its full Prometheus name, labels
 * included (stats_counter("mxguard_sessions_total", "Sessions accepted")),
 * and keeps the pointer; the registry owns the metrics and lives as long
 * as the process.  Asking again for the same name returns the same
 * metric, so a label value known only at run time (a failure reason) costs
 * one lookup per event, not an allocation.  Label values must come from
 * fixed sets: every distinct value is a metric kept for ever.
 *
 * The type is the caller's to say: stats_counter(), stats_gauge(),
 * stats_histogram().  stats_get() is the older call for callers that do
 * not say: a name ending in "_total" is a counter, any other a gauge,
 * unless its family was already registered with an explicit type.
 */
#ifndef MXG_STATS_H
#define MXG_STATS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct stat_ctr;

enum stat_type { STAT_COUNTER, STAT_GAUGE, STAT_HISTOGRAM };

/* Never return NULL: out of memory there aborts, since losing a metric
 * silently would make the metrics lie.  help may be NULL after the first
 * registration of a metric family.  Registering a family again with
 * another type aborts too: that is a programming error. */
struct stat_ctr	*stats_counter(const char *name, const char *help);
struct stat_ctr	*stats_gauge(const char *name, const char *help);
/* A histogram with fixed upper bounds (ascending, n <= STATS_MAX_BUCKETS;
 * the +Inf bucket is implicit); bounds NULL: STATS_SECONDS_BOUNDS.  The
 * name has no labels. */
#define STATS_MAX_BUCKETS	16
struct stat_ctr	*stats_histogram(const char *name, const char *help,
		    const double *bounds, size_t n);
void		 stats_observe(struct stat_ctr *, double value);
/* CLOCK_MONOTONIC in seconds, for durations to observe. */
double		 stats_clock(void);

struct stat_ctr	*stats_get(const char *name, const char *help);
void		 stats_add(struct stat_ctr *, int64_t delta);
void		 stats_set(struct stat_ctr *, int64_t value);
/* A counter's or gauge's value; a histogram's count of observations. */
int64_t		 stats_value(const struct stat_ctr *);
enum stat_type	 stats_type(const struct stat_ctr *);
/* Convenience: stats_add(stats_get(name, NULL), 1). */
void		 stats_inc_name(const char *name);

/* Prometheus text format 0.0.4 (HELP/TYPE once per family; histograms as
 * cumulative _bucket{le=...} lines ending in +Inf, then _sum and _count). */
void		 stats_write_prometheus(FILE *);
/* "name value" lines, for humans (a histogram as _count and _sum). */
void		 stats_write_plain(FILE *);

/*
 * Workers (cmd/workers.c).  The supervisor makes the shared slots before
 * forking (one per worker); a worker attaches to its slot first thing
 * after fork: the metrics it registers from then on keep their numbers in
 * the slot (the supervisor's own, inherited by fork, are forgotten).
 * Who can write what: the supervisor maps every slot read-write (it
 * empties a dead worker's); stats_shm_attach() leaves a worker write
 * access to its own slot only, and a read-only view of the others, which
 * it cannot make writable again; every process may read every slot.  In
 * the supervisor, after stats_shm_supervise(), the two writers above
 * print the merge: its own metrics, the retired totals of dead workers
 * and every slot; counters and histograms are summed, gauges too except
 * those of a shared store (the largest) and the supervisor's own (its
 * value).  A worker may have been compromised, so what its slot says
 * never changes a metric the supervisor has itself (a record of the same
 * name is ignored, whatever its type), and its counters and histogram
 * counts below 0 count as 0.  Nor does a worker's claim of a type hide
 * the others' numbers: a counter's family name ends in "_total" and no
 * other's does (stats_get() guesses so; a worker's record whose type
 * does not fit its name is left out of the merge), and a gauge wins over
 * a histogram of the same name; a worker's gauge or histogram named like
 * a histogram's lines (X_bucket, X_sum, X_count: no metric of mxguard's
 * is) is left out.  stats_shm_retire() folds a dead worker's
 * counters and histograms into the retired totals and empties its slot
 * (before the slot's next worker starts).  stats_shm_sum(): a counter's
 * or gauge's sum over the slots, each slot's value 0 or more
 * (mxguard_sessions_active for the session limit).  The slots live as
 * long as the processes.  stats_shm_new(): NULL with errno set on
 * failure (it needs /proc/self/fd).
 */
struct stats_shm;
struct stats_shm *stats_shm_new(int nslots);
void		 stats_shm_attach(struct stats_shm *, int slot);
/* In a process forked for a short job (a configuration check): every
 * metric becomes a private copy, so nothing it counts or sets reaches the
 * shared slot of the process it was forked from. */
void		 stats_detach(void);
void		 stats_shm_supervise(struct stats_shm *);
/* A family the supervisor prints beside the merge, outside the registry
 * (cmd/control.c: the configuration's digest): no worker's record of it
 * is merged, so none puts a sample of its making under that name, nor a
 * second HELP and TYPE that makes a scraper throw the answer away.  At
 * most STATS_RESERVED_MAX; the string is kept, not copied. */
#define STATS_RESERVED_MAX	8
void		 stats_reserve(const char *family);
void		 stats_shm_retire(struct stats_shm *, int slot);
int64_t		 stats_shm_sum(struct stats_shm *, const char *name);
/* The same with each slot's value at most cap (cap < 0: no cap): what a
 * decision that must not follow one slot's word alone sums (a worker
 * that claims more sessions than its share makes the daemon look full,
 * and with fail_mode = open a full daemon lets new flows go direct). */
int64_t		 stats_shm_sum_capped(struct stats_shm *, const char *name,
		    int64_t cap);
/* For tests and the supervisor: where a slot is mapped in the caller,
 * read-write where it may write the slot (the supervisor: every slot; a
 * worker: its own), else read-only (a write there faults). */
const void	*stats_shm_slot_view(const struct stats_shm *, int slot);
/* A worker's heartbeat (its loop's clock, CLOCK_MONOTONIC ms), and the
 * last one of a slot as the supervisor sees it (0: none yet). */
void		 stats_shm_beat(uint64_t now_ms);
uint64_t	 stats_shm_last_beat(struct stats_shm *, int slot);
/* A worker's word on the configuration it runs (config_digest32(), at
 * its start and at each reload it applied), and a slot's as the
 * supervisor reads it: 1 with *digest, 0 when its worker said none (not
 * started yet, or dead).  Only a worker's word: for the operator's eyes
 * (`mxguard status`), never for a decision. */
void		 stats_shm_config(uint32_t digest);
int		 stats_shm_slot_config(struct stats_shm *, int slot,
		    uint32_t *digest);

#endif
