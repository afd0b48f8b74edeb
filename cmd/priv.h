/*
 * priv.h - dropping root.  Called once, after every privileged resource
 * (listeners with IP_TRANSPARENT, the netlink queue, the control socket)
 * exists and before any LMDB store in state_dir is opened: switches to
 * config `user` (nothing if empty) and keeps one capability for SO_MARK
 * on each new upstream socket: CAP_NET_ADMIN with nfnetlink (the process
 * sends the queue's verdicts, which need it), else CAP_NET_RAW where the
 * kernel takes it for SO_MARK (5.17 and later; CAP_NET_ADMIN before),
 * which cannot change netfilter rules.
 */
#ifndef MXG_PRIV_H
#define MXG_PRIV_H

#include "core/config.h"

int	priv_drop(const struct config *, int nfnetlink, char *err,
	    size_t errsz);

/*
 * The command line's drop (`mxguard policy`, `check`, `report`), called
 * before the first store in state_dir is opened and before the network
 * is read: run as root with a non-empty `user`, switches to it, keeping
 * with mark what a worker keeps for SO_MARK (CAP_NET_RAW on Linux 5.17
 * and later, else CAP_NET_ADMIN) and then installing the worker's
 * seccomp filter (core/sandbox.h): the check's probe and the report's
 * mail legs set SO_MARK; `policy` and `report show` need no capability.
 * So the stores are never opened as root in a directory `user` owns, and
 * a command taken over by what it parses cannot change netfilter rules.
 * Unprivileged, or with `user` empty (root by configuration), nothing
 * changes.  0, or -1 with err saying why.
 */
int	priv_drop_cmd(const struct config *, int mark, char *err,
	    size_t errsz);

#endif
