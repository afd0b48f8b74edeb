/*
 * priv.h - dropping root.  Called once, after every privileged resource
 * (listeners with IP_TRANSPARENT, the netlink queue, the control socket)
 * exists: switches to config `user` (nothing if empty) and keeps only
 * CAP_NET_ADMIN, which SO_MARK on each new upstream socket needs.
 */
#ifndef MXG_PRIV_H
#define MXG_PRIV_H

#include "core/config.h"

int	priv_drop(const struct config *, char *err, size_t errsz);

#endif
