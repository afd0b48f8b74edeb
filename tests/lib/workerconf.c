/*
 * workerconf.c - an LD_PRELOAD shim for tests/ns/92: while the file named
 * by MXG_SHIM_FLAG exists, a worker (a process whose parent is named
 * mxguard: the supervisor) that opens MXG_SHIM_CONF gets MXG_SHIM_ALT
 * instead.  It stands for the configuration file rewritten between the
 * supervisor's read and the workers' (an editor or configuration
 * management at the wrong moment), without a race in the test.  Test
 * code only.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int
parent_is_mxguard(void)
{
	char path[64], comm[64] = "";
	FILE *(*real)(const char *, const char *);
	FILE *fp;

	real = (FILE *(*)(const char *, const char *))dlsym(RTLD_NEXT,
	    "fopen");
	snprintf(path, sizeof(path), "/proc/%ld/comm", (long)getppid());
	if (real == NULL || (fp = real(path, "r")) == NULL)
		return 0;
	if (fgets(comm, sizeof(comm), fp) == NULL)
		comm[0] = '\0';
	fclose(fp);
	return strcmp(comm, "mxguard\n") == 0;
}

static const char *
swap(const char *path)
{
	const char *conf = getenv("MXG_SHIM_CONF");
	const char *alt = getenv("MXG_SHIM_ALT");
	const char *flag = getenv("MXG_SHIM_FLAG");

	if (conf == NULL || alt == NULL || flag == NULL ||
	    strcmp(path, conf) != 0 || access(flag, F_OK) != 0 ||
	    !parent_is_mxguard())
		return path;
	return alt;
}

FILE *
fopen(const char *path, const char *mode)
{
	FILE *(*real)(const char *, const char *);

	real = (FILE *(*)(const char *, const char *))dlsym(RTLD_NEXT,
	    "fopen");
	return real != NULL ? real(swap(path), mode) : NULL;
}

FILE *
fopen64(const char *path, const char *mode)
{
	FILE *(*real)(const char *, const char *);

	real = (FILE *(*)(const char *, const char *))dlsym(RTLD_NEXT,
	    "fopen64");
	return real != NULL ? real(swap(path), mode) : NULL;
}
