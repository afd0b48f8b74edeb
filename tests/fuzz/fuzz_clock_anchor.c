/*
 * fuzz_clock_anchor.c - the anchor file state_dir/clock.anchor
 * (core/clock.c: clock_anchor_restore()), read as root at every start
 * and command from a directory `user` owns, and the policy clock it
 * leaves (clock_now()).  The file may be another version's, cut short,
 * or corrupt: besides memory errors and undefined behaviour (UBSan traps
 * on a signed overflow), the restore answers -1, 0, 1 or 2, and the
 * policy clock it leaves is a time a 64-bit time_t can hold.
 *
 * Input: the first byte picks the file's start.  Odd: the line begins
 * "mxguard-clock 1 BOOT_ID " with this boot's id (the path of a restart
 * in the same boot, which the fuzzer could not guess), the rest of the
 * input after it; even: the rest of the input is the whole file (another
 * boot's line, or none).
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[] = "/tmp/fuzz-clock-XXXXXX";
static char path[64];
static char bootline[64];

static void
cleanup(void)
{
	unlink(path);
	rmdir(dir);
}

static int
setup(void)
{
	FILE *f;
	char id[40];
	size_t n;

	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/%s", dir, CLOCK_ANCHOR_FILE);
	atexit(cleanup);
	if ((f = fopen("/proc/sys/kernel/random/boot_id", "re")) == NULL)
		return -1;
	n = fread(id, 1, 36, f);
	fclose(f);
	id[n] = '\0';
	snprintf(bootline, sizeof(bootline), "mxguard-clock 1 %s ", id);
	log_init("fuzz_clock_anchor", 0, LOG_LVL_ERR);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	char err[256];
	int fd, rc;

	if (!ready) {
		if (setup() == -1)
			abort();
		ready = 1;
	}
	if (size < 1)
		return 0;
	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600)) == -1)
		abort();
	if ((data[0] & 1 && write(fd, bootline, strlen(bootline)) !=
	    (ssize_t)strlen(bootline)) ||
	    write(fd, data + 1, size - 1) != (ssize_t)(size - 1))
		abort();
	close(fd);
	clock_anchor();
	rc = clock_anchor_restore(dir, err, sizeof(err));
	if (rc < -1 || rc > 2)
		__builtin_trap();
	(void)clock_now();
	(void)clock_now();
	return 0;
}
