/*
 * sesstime.so: LD_PRELOAD shim that records, for every AF_INET TCP socket a
 * program connect()s, the time from connect() to close().  Used on
 * smtp-source to get per-session times as the legacy MTA sees them.
 * At exit the durations (seconds, one per line) are appended to
 * $SESSTIME_FILE.
 *
 * Build: cc -O2 -shared -fPIC -o sesstime.so sesstime.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAXFD 65536

static double	 start[MAXFD];
static double	*dur;
static size_t	 ndur, cap;
static int	(*real_connect)(int, const struct sockaddr *, socklen_t);
static int	(*real_close)(int);

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int
connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	if (real_connect == NULL)
		real_connect = (int (*)(int, const struct sockaddr *,
		    socklen_t))dlsym(RTLD_NEXT, "connect");
	if (fd >= 0 && fd < MAXFD && sa != NULL && sa->sa_family == AF_INET)
		start[fd] = now();
	return real_connect(fd, sa, len);
}

int
close(int fd)
{
	if (real_close == NULL)
		real_close = (int (*)(int))dlsym(RTLD_NEXT, "close");
	if (fd >= 0 && fd < MAXFD && start[fd] != 0) {
		if (ndur == cap) {
			size_t ncap = cap ? cap * 2 : 4096;
			double *d = realloc(dur, ncap * sizeof(*d));
			if (d != NULL) {
				dur = d;
				cap = ncap;
			}
		}
		if (ndur < cap)
			dur[ndur++] = now() - start[fd];
		start[fd] = 0;
	}
	return real_close(fd);
}

__attribute__((destructor)) static void
dump(void)
{
	const char *path = getenv("SESSTIME_FILE");
	FILE *f;
	size_t i;

	if (path == NULL || ndur == 0 || (f = fopen(path, "a")) == NULL)
		return;
	for (i = 0; i < ndur; i++)
		fprintf(f, "%.6f\n", dur[i]);
	fclose(f);
}
