/*
 * cmdcapture.h - runs one of mxguard's commands (cmd_policy, cmd_report,
 * ...) in the test process with its standard output (and, when asked,
 * its standard error) in files, and hands back what it printed and its
 * exit status.  Test code only.
 */
#ifndef MXG_TEST_CMDCAPTURE_H
#define MXG_TEST_CMDCAPTURE_H

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

/* fd's output goes to path (created, truncated) until capture_end();
 * the descriptor it had, and the file's in *file. */
static inline int
capture_begin(int fd, const char *path, int *file)
{
	int saved = dup(fd);

	*file = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(saved >= 0 && *file >= 0);
	dup2(*file, fd);
	return saved;
}

/* fd back to saved; what went to the file in buf[sz], cut, NUL ended */
static inline void
capture_end(int fd, int saved, int file, char *buf, size_t sz)
{
	ssize_t n;

	dup2(saved, fd);
	close(saved);
	n = pread(file, buf, sz - 1, 0);
	buf[n > 0 ? n : 0] = '\0';
	close(file);
}

/* The command with argc/argv, cfg and default options; stdout goes to
 * path and what it printed to out[outsz]; with errpath, stderr likewise
 * to errpath and err[errsz].  Its exit status. */
static inline int
cmd_capture(int (*cmd)(int, char **, struct config *,
    const struct cmd_opts *), int argc, char **argv, struct config *cfg,
    const char *path, char *out, size_t outsz, const char *errpath,
    char *err, size_t errsz)
{
	struct cmd_opts opts = { NULL, 0, 0 };
	int saved, saved2 = -1, file, file2 = -1, rc;

	fflush(stdout);
	fflush(stderr);
	saved = capture_begin(1, path, &file);
	if (errpath != NULL)
		saved2 = capture_begin(2, errpath, &file2);
	rc = cmd(argc, argv, cfg, &opts);
	fflush(stdout);
	fflush(stderr);
	capture_end(1, saved, file, out, outsz);
	if (errpath != NULL)
		capture_end(2, saved2, file2, err, errsz);
	return rc;
}

#endif
