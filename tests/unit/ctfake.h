/*
 * ctfake.h - a stand-in for /proc/net/stat/nf_conntrack (core/ctstat.h)
 * for the unit tests: the kernel's layout (a header naming the columns,
 * a line of hexadecimal counters per CPU), its drop counters spread over
 * two CPUs.  ctfake_open() makes it and points ctstat at it; ctfake_set()
 * rewrites it, as the kernel's counters move; ctfake_close() removes it.
 * Test code only; static inline.
 */
#ifndef MXG_TEST_CTFAKE_H
#define MXG_TEST_CTFAKE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/ctstat.h"

static char ctfake_path[] = "/tmp/mxg-ctstat-test-XXXXXX";

static inline int
ctfake_set(uint64_t drops)
{
	FILE *f;

	if ((f = fopen(ctfake_path, "w")) == NULL)
		return -1;
	fprintf(f, "entries  clashres found new invalid ignore delete "
	    "chainlength insert insert_failed drop early_drop icmp_error  "
	    "expect_new expect_create expect_delete search_restart\n");
	/* the entries column full on both; the drops split between CPUs */
	fprintf(f, "00040000  00000000 00000000 00000000 00000000 00000000 "
	    "00000000 00000000 00000010 00000000 %08llx 00000007 00000000  "
	    "00000000 00000000 00000000 00000000\n",
	    (unsigned long long)(drops / 2));
	fprintf(f, "00040000  00000000 00000000 00000000 00000000 00000000 "
	    "00000000 00000000 00000004 00000000 %08llx 00000009 00000000  "
	    "00000000 00000000 00000000 00000000\n",
	    (unsigned long long)(drops - drops / 2));
	return fclose(f);
}

static inline int
ctfake_open(uint64_t drops)
{
	int fd;

	memcpy(ctfake_path + sizeof(ctfake_path) - 7, "XXXXXX", 6);
	if ((fd = mkstemp(ctfake_path)) == -1)
		return -1;
	close(fd);
	if (ctfake_set(drops) == -1)
		return -1;
	return ctstat_open(ctfake_path);
}

static inline void
ctfake_close(void)
{
	ctstat_close();
	unlink(ctfake_path);
}

#endif
