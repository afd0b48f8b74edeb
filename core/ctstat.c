/*
 * ctstat.c - conntrack's drop counters (see ctstat.h).
 *
 * The file is one header line naming the columns, then one line per CPU
 * of hexadecimal counters: the "drop" column is found by its name, and
 * the lines are summed.  The descriptor is opened once (before the drop
 * of privileges, so that no sandbox of the unprivileged process stands
 * between) and read again from offset 0 each time: procfs makes the
 * text afresh for each read from the start.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/ctstat.h"
#include "core/log.h"

#define CTSTAT_MAX	(1024 * 1024)	/* 200 octets a CPU: thousands */

static int	 ct_fd = -1;
static char	 ct_path[256] = CTSTAT_PATH;
static uint64_t	 ct_last;
static int	 ct_warned;

/* The whole file in a buffer (NUL-terminated, to free): NULL on error */
static char *
read_all(int fd)
{
	char *b = NULL, *nb;
	size_t len = 0, cap = 0;
	ssize_t n;

	for (;;) {
		if (cap - len < 4096) {
			if (cap >= CTSTAT_MAX ||
			    (nb = realloc(b, cap + 8192)) == NULL)
				goto fail;
			b = nb;
			cap += 8192;
		}
		if ((n = pread(fd, b + len, cap - len - 1, (off_t)len)) == -1) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (b == NULL)
		goto fail;
	b[len] = '\0';
	return b;
 fail:
	free(b);
	return NULL;
}

/* The "drop" column summed over the CPUs' lines: 0, or -1 if the text
 * is not of that shape */
static int
parse(char *text, uint64_t *sum)
{
	char *line, *save = NULL, *f, *fsave, *end;
	int col = -1, i, nlines = 0;

	*sum = 0;
	if ((line = strtok_r(text, "\n", &save)) == NULL)
		return -1;
	for (i = 0, f = strtok_r(line, " \t", &fsave); f != NULL;
	    f = strtok_r(NULL, " \t", &fsave), i++)
		if (strcmp(f, "drop") == 0)
			col = i;
	if (col == -1)
		return -1;
	while ((line = strtok_r(NULL, "\n", &save)) != NULL) {
		for (i = 0, f = strtok_r(line, " \t", &fsave);
		    f != NULL && i < col; f = strtok_r(NULL, " \t", &fsave))
			i++;
		if (f == NULL)
			return -1;
		errno = 0;
		*sum += strtoull(f, &end, 16);
		if (errno != 0 || end == f || *end != '\0')
			return -1;
		nlines++;
	}
	return nlines > 0 ? 0 : -1;
}

int
ctstat_open(const char *path)
{
	char *text;
	uint64_t sum;
	int fd;

	ctstat_close();
	if (path != NULL)
		snprintf(ct_path, sizeof(ct_path), "%s", path);
	if ((fd = open(ct_path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) == -1)
		return -1;
	if ((text = read_all(fd)) == NULL) {
		close(fd);
		return -1;
	}
	if (parse(text, &sum) == -1) {
		free(text);
		close(fd);
		errno = ENOMSG;
		return -1;
	}
	free(text);
	ct_fd = fd;
	ct_last = sum;
	return 0;
}

uint64_t
ctstat_drops(void)
{
	char *text;
	uint64_t sum;
	int fd;

	/* not opened (conntrack loaded since, or a command of its own):
	 * read it once, nothing kept open */
	if (ct_fd == -1) {
		if ((fd = open(ct_path, O_RDONLY | O_CLOEXEC |
		    O_NOCTTY)) == -1)
			return 0;
		text = read_all(fd);
		close(fd);
		if (text == NULL || parse(text, &sum) == -1)
			sum = 0;
		free(text);
		return sum;
	}
	if ((text = read_all(ct_fd)) == NULL || parse(text, &sum) == -1) {
		if (!ct_warned++)
			log_warn("event=conntrack-stat-unreadable path=%s "
			    "error=\"%s\"", ct_path, text == NULL ?
			    strerror(errno) : "not the expected columns");
		free(text);
		return ++ct_last;
	}
	free(text);
	return ct_last = sum;
}

void
ctstat_close(void)
{
	if (ct_fd != -1)
		close(ct_fd);
	ct_fd = -1;
	ct_warned = 0;
}
