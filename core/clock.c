/*
 * clock.c - the time the policy stores go by (see clock.h).
 *
 * The anchor file: one line, "mxguard-clock 1 BOOT_ID OFFSET AT LAST",
 * OFFSET the wall clock minus CLOCK_BOOTTIME at the anchor, AT the
 * CLOCK_BOOTTIME of the anchor, LAST the policy time when the line was
 * written, in seconds.  The anchor is only good for the boot whose id
 * (/proc/sys/kernel/random/boot_id) it names.  AT keeps the slew
 * allowance growing from the first anchor across restarts (a file
 * without it, from an older version, starts it again at the restore).
 * LAST is what a later boot keeps of it: a floor (without LAST, the
 * anchor's own time, OFFSET + AT).
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"

#define WARN_EVERY_S	3600
/* NTP slews at most 500 ppm: a clock that runs that much faster or slower
 * than the boot clock is being corrected, not stepped */
#define SLEW_DIV	2000
#define BOOT_ID_FILE	"/proc/sys/kernel/random/boot_id"
#define MAGIC		"mxguard-clock 1"

static int	anchored;
static int64_t	anchor_wall;	/* wall clock at the anchor */
static int64_t	anchor_boot;	/* CLOCK_BOOTTIME at the anchor */
static int64_t	last_warn_boot;
static int	warned;

static int64_t
boot_now(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_BOOTTIME, &ts) == -1 &&
	    clock_gettime(CLOCK_MONOTONIC, &ts) == -1)
		return 0;
	return (int64_t)ts.tv_sec;
}

void
clock_anchor(void)
{
	anchor_wall = (int64_t)time(NULL);
	anchor_boot = boot_now();
	anchored = 1;
	warned = 0;
}

/* This boot's id, 36 characters: 0, or -1 when there is none. */
static int
boot_id(char id[40])
{
	FILE *f = fopen(BOOT_ID_FILE, "re");
	size_t n;

	if (f == NULL)
		return -1;
	n = fread(id, 1, 39, f);
	fclose(f);
	while (n > 0 && (id[n - 1] == '\n' || id[n - 1] == ' '))
		n--;
	id[n] = '\0';
	return n == 36 ? 0 : -1;
}

/*
 * Another boot's line: the policy time it last knew (LAST, else the
 * anchor's) is a floor for this boot.  A wall clock behind it by more
 * than the slack was set back since, by an NTP answer at boot or a
 * clock battery gone flat: the anchor is taken at the floor instead, so
 * that a certificate that expired before the last run is not valid
 * again, nor a policy or history record written now dated in the past.
 * 2 when floored, else 0.
 */
static int
floor_from(int n, int64_t offset, int64_t at, int64_t last)
{
	int64_t floor, wall = (int64_t)time(NULL);

	if (n >= 4 && last > 0)
		floor = last;
	else if (n >= 3 && at >= 0)
		floor = offset + at;
	else
		return 0;
	if (wall >= floor - CLOCK_SLACK_S)
		return 0;
	/* at the floor, not below: the clock behind is read as a step
	 * back, and the policy clock stays the slack above it */
	anchor_wall = floor + CLOCK_SLACK_S;
	anchor_boot = boot_now();
	anchored = 1;
	warned = 0;
	log_warn("event=clock-behind-last-boot behind_s=%lld note=\"the wall "
	    "clock is behind the time mxguard knew in an earlier boot: the "
	    "policy clock starts there (if the clock is right now: remove "
	    "%s in state_dir and restart mxguard)\"",
	    (long long)(floor - wall), CLOCK_ANCHOR_FILE);
	return 2;
}

/* A time the anchor file may name, either way (OFFSET may be below 0 on
 * a clock before 1970): beyond CLOCK_TIME_MAX the file is corrupt or
 * edited (sscanf() makes INT64_MAX of any number too large), and OFFSET
 * plus the boot clock, OFFSET + AT, or LAST plus the slack overflowed. */
static int
in_range(int64_t t)
{
	return t >= -CLOCK_TIME_MAX && t <= CLOCK_TIME_MAX;
}

int
clock_anchor_restore(const char *dir, char *err, size_t errsz)
{
	char path[4096], line[160], id[40], fid[40];
	int64_t offset, at = -1, last = -1, boot;
	struct stat st;
	FILE *f;
	int fd, rc = -1, n;

	if (*dir == '\0' || boot_id(id) == -1)
		return 0;
	snprintf(path, sizeof(path), "%s/%s", dir, CLOCK_ANCHOR_FILE);
	/*
	 * Read as root (main.c, before any drop: the daemon's start, `rules
	 * install`, `rules boot`) in a directory `user` owns: no link is
	 * followed, and O_NONBLOCK with the S_ISREG test keeps a planted
	 * FIFO from holding the open, and the start, for ever.
	 */
	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY |
	    O_CLOEXEC)) == -1) {
		/* none, or a user who cannot read state_dir (`mxguard
		 * status` as a monitoring user), nor the stores in it */
		if (errno == ENOENT || errno == EACCES)
			return 0;
		snprintf(err, errsz, "%s: %s", path, errno == ELOOP ?
		    "a symbolic link, not followed" : strerror(errno));
		return -1;
	}
	errno = 0;
	if (fstat(fd, &st) == -1 || (f = S_ISREG(st.st_mode) ?
	    fdopen(fd, "r") : NULL) == NULL) {
		snprintf(err, errsz, "%s: %s", path, errno != 0 ?
		    strerror(errno) : "not a regular file, not read");
		close(fd);
		return -1;
	}
	if (fgets(line, sizeof(line), f) == NULL ||
	    (n = sscanf(line, MAGIC " %39s %" SCNd64 " %" SCNd64 " %" SCNd64,
	    fid, &offset, &at, &last)) < 2 || strlen(fid) != 36 ||
	    !in_range(offset) || (n >= 3 && !in_range(at)) ||
	    (n >= 4 && !in_range(last))) {
		snprintf(err, errsz, "%s: not an anchor line", path);
		goto out;
	}
	rc = 0;
	if (strcmp(fid, id) != 0) {
		rc = floor_from(n, offset, at, last);	/* another boot's */
		goto out;
	}
	/* the same line of time either way; an anchor taken earlier in
	 * the boot allows the slew of all the time since */
	boot = boot_now();
	anchor_boot = n >= 3 && at >= 0 && at <= boot ? at : boot;
	anchor_wall = offset + anchor_boot;
	anchored = 1;
	warned = 0;
	rc = 1;
out:
	fclose(f);
	return rc;
}

int
clock_anchor_save(const char *dir, char *err, size_t errsz)
{
	char path[4096], tmp[4096], id[40], line[160];
	int64_t now;
	int fd, n;

	if (!anchored)
		clock_anchor();
	now = clock_now();
	if (boot_id(id) == -1) {
		snprintf(err, errsz, "%s: no boot id", BOOT_ID_FILE);
		return -1;
	}
	if (snprintf(path, sizeof(path), "%s/%s", dir, CLOCK_ANCHOR_FILE) >=
	    (int)sizeof(path) - 16) {
		snprintf(err, errsz, "state_dir: path too long");
		return -1;
	}
	snprintf(tmp, sizeof(tmp), "%.4000s.%ld", path, (long)getpid());
	n = snprintf(line, sizeof(line), MAGIC " %s %" PRId64 " %" PRId64
	    " %" PRId64 "\n", id, anchor_wall - anchor_boot, anchor_boot, now);
	(void)unlink(tmp);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, 0644)) == -1) {
		snprintf(err, errsz, "%s: %s", tmp, strerror(errno));
		return -1;
	}
	if (write(fd, line, (size_t)n) != n || fsync(fd) == -1) {
		snprintf(err, errsz, "%s: %s", tmp, strerror(errno));
		close(fd);
		(void)unlink(tmp);
		return -1;
	}
	close(fd);
	if (rename(tmp, path) == -1) {
		snprintf(err, errsz, "%s: %s", path, strerror(errno));
		(void)unlink(tmp);
		return -1;
	}
	return 0;
}

int64_t
clock_now(void)
{
	int64_t wall = (int64_t)time(NULL), boot, passed, expected, room,
	    now;

	if (!anchored)
		clock_anchor();
	boot = boot_now();
	if ((passed = boot - anchor_boot) < 0)
		passed = 0;
	expected = anchor_wall + passed;
	room = passed / SLEW_DIV + CLOCK_SLACK_S;
	if (wall >= expected - room && wall <= expected + room) {
		if (warned)
			log_info("event=clock-step-over note=\"the wall clock "
			    "is within what the time passed explains again\"");
		warned = 0;
		return wall;
	}
	now = wall > expected ? expected + room : expected - room;
	if (!warned || boot - last_warn_boot >= WARN_EVERY_S) {
		log_warn("event=clock-step step_s=%lld note=\"the wall clock "
		    "is %s what the time passed since mxguard took it "
		    "explains; MTA-STS policies and the TLS history go by "
		    "the time passed, not by the step (if the clock is "
		    "right now: remove %s in state_dir and restart "
		    "mxguard)\"", (long long)(wall - now), wall > now ?
		    "ahead of" : "behind", CLOCK_ANCHOR_FILE);
		warned = 1;
		last_warn_boot = boot;
	}
	return now;
}
