/*
 * blockpw.c - an LD_PRELOAD shim for tests/ns/86 and 94: getpwnam() waits
 * while the file named by MXG_BLOCK_FILE exists, then does the real
 * lookup.  It stands for NSS (an LDAP or sssd lookup) that hangs: a worker
 * started again while the file is there is stuck in its privilege drop,
 * before it is ready.  With MXG_BLOCK_PASS set, the first caller that
 * creates that file (O_EXCL) is not held: one worker gets up, the others
 * hang.  A caller that is held says so with the file MXG_BLOCK_FILE.held.PID
 * (made as it begins to wait), so that a test can wait for a worker to be
 * stuck there instead of sleeping.  Test code only.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

struct passwd *
getpwnam(const char *name)
{
	struct passwd *(*real)(const char *);
	const char *f = getenv("MXG_BLOCK_FILE");
	const char *pass = getenv("MXG_BLOCK_PASS");
	char held[4096];
	int fd;

	if (f != NULL && pass != NULL && access(f, F_OK) == 0 &&
	    (fd = open(pass, O_WRONLY | O_CREAT | O_EXCL, 0644)) != -1) {
		close(fd);
		f = NULL;
	}
	if (f != NULL && access(f, F_OK) == 0 &&
	    snprintf(held, sizeof(held), "%s.held.%ld", f, (long)getpid()) <
	    (int)sizeof(held) &&
	    (fd = open(held, O_WRONLY | O_CREAT, 0644)) != -1)
		close(fd);
	while (f != NULL && access(f, F_OK) == 0)
		usleep(100 * 1000);
	real = (struct passwd *(*)(const char *))dlsym(RTLD_NEXT, "getpwnam");
	return real != NULL ? real(name) : NULL;
}
