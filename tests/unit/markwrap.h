/*
 * markwrap.h - setsockopt() as it is, but SO_MARK never reaches the
 * kernel (a test is no CAP_NET_ADMIN holder): mark_seen is the last mark
 * asked for, and while mark_fails is set the call fails with EPERM, as
 * without CAP_NET_ADMIN (`mxguard policy`).  A test that includes it
 * lists "setsockopt" in its WRAP line.
 */
#ifndef MXG_TEST_MARKWRAP_H
#define MXG_TEST_MARKWRAP_H

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

static int mark_fails;
static uint32_t mark_seen;

int __real_setsockopt(int, int, int, const void *, socklen_t);
int __wrap_setsockopt(int, int, int, const void *, socklen_t);

int
__wrap_setsockopt(int fd, int level, int name, const void *v, socklen_t len)
{
	if (level != SOL_SOCKET || name != SO_MARK)
		return __real_setsockopt(fd, level, name, v, len);
	memcpy(&mark_seen, v, sizeof(mark_seen));
	if (mark_fails) {
		errno = EPERM;
		return -1;
	}
	return 0;
}

#endif
