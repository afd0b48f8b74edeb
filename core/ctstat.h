/*
 * ctstat.h - conntrack's own drops, read as evidence that a failed
 * connection or query was this host's doing.
 *
 * When the conntrack table of the network namespace is full and no entry
 * can be evicted (every one is assured: a flood of established flows,
 * which a gateway's relayed clients can make), the kernel drops a new
 * flow's first packet.  Measured on 6.18: a UDP send then fails at once
 * with EPERM, but a TCP connect() says EINPROGRESS and its SYN and every
 * retransmission are dropped silently, so the connection times out as if
 * the remote host never answered.  The table's per-CPU "drop" counters
 * (/proc/net/stat/nf_conntrack) move with each such packet: a failure
 * while they moved may be this host's, whatever the remote did.  Only
 * this host's netfilter moves them; nobody on the path can.
 */
#ifndef MXG_CTSTAT_H
#define MXG_CTSTAT_H

#include <stdint.h>

#define CTSTAT_PATH	"/proc/net/stat/nf_conntrack"

/* Opens path (CTSTAT_PATH if NULL) and keeps it open, before privileges
 * are dropped: 0, or -1 with errno (ENOENT: no conntrack in this
 * namespace; ENOMSG: no drop column).  Not open, ctstat_drops() reads
 * the path afresh each time (0 if it cannot). */
int		 ctstat_open(const char *path);
/* The drop counters' total now.  0 when there is no such file; when it
 * is open and cannot be read or parsed, a value other than the last
 * (a failure that says nothing is counted as local: that only defers) */
uint64_t	 ctstat_drops(void);
void		 ctstat_close(void);

#endif
