/*
 * sandbox.h - a seccomp filter that takes raw and packet sockets away
 * from a process that keeps CAP_NET_RAW.
 *
 * After the privilege drop (cmd/priv.c) a worker, and the single process,
 * keep one capability for SO_MARK on each new upstream socket:
 * CAP_NET_RAW (Linux 5.17 and later) or CAP_NET_ADMIN.  CAP_NET_RAW also
 * lets the process open raw IP sockets (AF_INET/AF_INET6, SOCK_RAW) and
 * packet sockets (AF_PACKET), with which a compromised worker could
 * read, and inject into, every TCP session on the host: the other
 * workers' cleartext legs to the MTA among them.  The unit's
 * RestrictAddressFamilies= cannot say "AF_INET but not SOCK_RAW"; a
 * seccomp filter can, and nothing the daemon does after the drop needs
 * either kind (its raw sockets are netlink: NFQUEUE, getifaddrs()).  A
 * process that kept CAP_NET_ADMIN, or runs as root (`user` empty), gets
 * the same filter.
 *
 * sandbox_install() sets PR_SET_NO_NEW_PRIVS (the daemon never execs
 * after the drop) and installs, for good and for every thread, a filter
 * that:
 *   - kills the process on a system call of another architecture or ABI
 *     than the native one (int 0x80 on x86_64, x32 system calls): their
 *     numbers mean other calls, which the rest of the filter would
 *     misread; mxguard never makes one;
 *   - fails socket() with EPERM for AF_PACKET, and for AF_INET and
 *     AF_INET6 with the type SOCK_RAW or SOCK_PACKET (flags such as
 *     SOCK_CLOEXEC aside); every other socket (TCP, UDP, AF_UNIX,
 *     AF_NETLINK raw) is allowed;
 *   - fails io_uring_setup(), io_uring_enter() and io_uring_register()
 *     with EPERM: IORING_OP_SOCKET opens sockets without socket(2);
 *   - allows everything else.
 * Only x86_64 and aarch64 are supported (the build fails elsewhere: an
 * architecture with socketcall(2) needs that checked too).
 *
 * The daemon refuses to start when the filter cannot be installed
 * (cmd/run.c): its documentation promises that a compromised worker
 * opens no raw socket, and every kernel a supported distribution ships
 * has seccomp filters (the shipped unit's SystemCallFilter= needs them
 * too).  Returns 0, or -1 with err saying why.
 */
#ifndef MXG_SANDBOX_H
#define MXG_SANDBOX_H

#include <stddef.h>

int	sandbox_install(char *err, size_t errsz);

#endif
