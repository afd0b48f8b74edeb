/*
 * fuzz_config.c - libFuzzer target for the configuration parser
 * (core/config.c): the input is a whole mxguard.conf.  config_load()
 * reads a path, so the text goes into a memfd read as /proc/self/fd/N.
 *
 * Beyond memory errors, a configuration that loads must print (config_dump,
 * "in file syntax") as text that loads again to the same configuration:
 * the dump of the reloaded configuration equals the first dump.
 */
#include <sys/mman.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int mfd = -1;
static char mpath[64];

static int
put(const void *p, size_t n)
{
	if (ftruncate(mfd, 0) == -1 ||
	    (n > 0 && pwrite(mfd, p, n, 0) != (ssize_t)n))
		return -1;
	return 0;
}

static char *
dump(const struct config *c, size_t *len)
{
	char *buf = NULL;
	FILE *fp = open_memstream(&buf, len);

	if (fp == NULL)
		abort();
	config_dump(c, fp, 1);
	if (fclose(fp) != 0)
		abort();
	return buf;
}

/* the longest line of a dump: config_load refuses lines of 4095 bytes */
static size_t
longest_line(const char *s, size_t len)
{
	size_t max = 0, cur = 0, i;

	for (i = 0; i < len; i++, cur++)
		if (s[i] == '\n') {
			if (cur > max)
				max = cur;
			cur = -1;
		}
	return max;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config *c, *c2;
	char err[512], *d1, *d2;
	size_t l1, l2;

	if (mfd == -1) {
		log_set_level(LOG_LVL_ERR);
		if ((mfd = memfd_create("fuzz-config", MFD_CLOEXEC)) == -1)
			abort();
		snprintf(mpath, sizeof(mpath), "/proc/self/fd/%d", mfd);
	}
	if (put(data, size) == -1)
		abort();
	if ((c = config_load(mpath, err, sizeof(err))) == NULL) {
		if (err[0] == '\0')
			abort();	/* a refusal always says why */
		return 0;
	}
	d1 = dump(c, &l1);
	config_free(c);
	if (longest_line(d1, l1) + 1 < 4095) {
		if (put(d1, l1) == -1)
			abort();
		if ((c2 = config_load(mpath, err, sizeof(err))) == NULL) {
			fprintf(stderr, "dump does not reload: %s\n%s", err, d1);
			abort();
		}
		d2 = dump(c2, &l2);
		config_free(c2);
		if (l1 != l2 || memcmp(d1, d2, l1) != 0) {
			fprintf(stderr, "dump changed on reload:\n%s---\n%s",
			    d1, d2);
			abort();
		}
		free(d2);
	}
	free(d1);
	return 0;
}
