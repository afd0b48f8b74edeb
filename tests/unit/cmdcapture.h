/*
 * cmdcapture.h - runs one of mxguard's commands (cmd_policy, cmd_report,
 * ...) in the test process with its standard output in a file, and hands
 * back what it printed and its exit status.  Test code only.
 */
#ifndef MXG_TEST_CMDCAPTURE_H
#define MXG_TEST_CMDCAPTURE_H

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

/* The command with argc/argv, cfg and default options; stdout goes to
 * path (created, truncated), and what it printed to out[outsz] (cut, NUL
 * terminated).  Its exit status. */
static inline int
cmd_capture(int (*cmd)(int, char **, struct config *,
    const struct cmd_opts *), int argc, char **argv, struct config *cfg,
    const char *path, char *out, size_t outsz)
{
	struct cmd_opts opts = { NULL, 0, 0 };
	int saved, fd, rc;
	ssize_t n;

	fflush(stdout);
	saved = dup(1);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(saved >= 0 && fd >= 0);
	dup2(fd, 1);
	rc = cmd(argc, argv, cfg, &opts);
	fflush(stdout);
	dup2(saved, 1);
	close(saved);
	n = pread(fd, out, outsz - 1, 0);
	out[n > 0 ? n : 0] = '\0';
	close(fd);
	return rc;
}

#endif
