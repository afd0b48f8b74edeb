/*
 * status.c - `mxguard status [--metrics]`: asks the running daemon over
 * its control socket (cmd/control.c) and prints the answer: summary
 * lines (pid, uptime; the digest of the configuration it runs, see
 * cmd/control.h) and every counter as "name value", or with --metrics the same
 * counters in Prometheus text format.  Exit 0, or 1 when no daemon
 * answers or it answers with an error ("error busy": its control
 * connections are all taken; "error ..."), which goes to stderr.
 */
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cmd/cmd.h"

int
cmd_status(int argc, char **argv, struct config *cfg,
    const struct cmd_opts *opts)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct timeval tv = { 5, 0 };
	const char *req = "status\n";
	char buf[8192];
	ssize_t n;
	int fd, first = 1;

	if (argc == 2 && strcmp(argv[1], "--metrics") == 0)
		req = "metrics\n";
	else if (argc != 1) {
		fprintf(stderr, "usage: mxguard [-c file] status [--metrics]\n");
		return 2;
	}
	if (strlen(cfg->control_socket) >= sizeof(sun.sun_path) ||
	    *cfg->control_socket == '\0') {
		fprintf(stderr, "mxguard: status: no usable control_socket\n");
		return 1;
	}
	strcpy(sun.sun_path, cfg->control_socket);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1 ||
	    connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		fprintf(stderr, "mxguard: status: %s: %s (is mxguard "
		    "running?)\n", cfg->control_socket, strerror(errno));
		if (fd != -1)
			close(fd);
		return 1;
	}
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (send(fd, req, strlen(req), MSG_NOSIGNAL) != (ssize_t)strlen(req)) {
		fprintf(stderr, "mxguard: status: send: %s\n", strerror(errno));
		close(fd);
		return 1;
	}
	(void)shutdown(fd, SHUT_WR);
	while ((n = read(fd, buf, sizeof(buf))) != 0) {
		if (n == -1) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "mxguard: status: read: %s\n",
			    strerror(errno));
			close(fd);
			return 1;
		}
		/* the daemon's refusal is one line, first and alone */
		if (first && (size_t)n >= 6 && memcmp(buf, "error ", 6) == 0) {
			fprintf(stderr, "mxguard: status: the daemon answered: "
			    "%.*s%s", (int)n, buf, buf[n - 1] == '\n' ? "" :
			    "\n");
			close(fd);
			return 1;
		}
		first = 0;
		fwrite(buf, 1, (size_t)n, stdout);
	}
	close(fd);
	return fflush(stdout) == 0 ? 0 : 1;
}
