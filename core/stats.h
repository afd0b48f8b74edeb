/*
 * stats.h - named counters and gauges for `mxguard status` and the
 * Prometheus endpoint.
 *
 * A module asks once for a counter by its full Prometheus name, labels
 * included (stats_get("mxguard_sessions_total", "Sessions accepted")), and
 * keeps the pointer; the registry owns the counters and lives as long as
 * the process.  Asking again for the same name returns the same counter,
 * so a label value known only at run time (a failure reason) costs one
 * lookup per event, not an allocation.
 */
#ifndef MXG_STATS_H
#define MXG_STATS_H

#include <stdint.h>
#include <stdio.h>

struct stat_ctr;

/* Never returns NULL: out of memory there aborts, since losing a counter
 * silently would make the metrics lie.  help may be NULL after the first
 * registration of a metric family. */
struct stat_ctr	*stats_get(const char *name, const char *help);
void		 stats_add(struct stat_ctr *, int64_t delta);
void		 stats_set(struct stat_ctr *, int64_t value);
int64_t		 stats_value(const struct stat_ctr *);
/* Convenience: stats_add(stats_get(name, NULL), 1). */
void		 stats_inc_name(const char *name);

/* Prometheus text format (HELP/TYPE once per family). */
void		 stats_write_prometheus(FILE *);
/* "name value" lines, for humans. */
void		 stats_write_plain(FILE *);

#endif
