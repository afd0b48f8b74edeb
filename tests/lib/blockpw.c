/*
 * blockpw.c - an LD_PRELOAD shim for tests/ns/86: getpwnam() waits while
 * the file named by MXG_BLOCK_FILE exists, then does the real lookup.  It
 * stands for NSS (an LDAP or sssd lookup) that hangs: a worker started
 * again while the file is there is stuck in its privilege drop, before
 * it is ready.  Test code only.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pwd.h>
#include <stdlib.h>
#include <unistd.h>

struct passwd *
getpwnam(const char *name)
{
	struct passwd *(*real)(const char *);
	const char *f = getenv("MXG_BLOCK_FILE");

	while (f != NULL && access(f, F_OK) == 0)
		usleep(100 * 1000);
	real = (struct passwd *(*)(const char *))dlsym(RTLD_NEXT, "getpwnam");
	return real != NULL ? real(name) : NULL;
}
