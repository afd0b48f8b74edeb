/*
 * testconf.h - a configuration from a text: written to a temporary file,
 * loaded by config_load() as the daemon loads its file, the file removed.
 * NULL with err when the text does not load.  Header-only, for the tests
 * that need a configuration other than the defaults.
 */
#ifndef MXG_TESTCONF_H
#define MXG_TESTCONF_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/config.h"

static struct config *
testconf_load(const char *text, char *err, size_t errsz)
{
	char path[] = "/tmp/mxg-conf-XXXXXX";
	struct config *c;
	FILE *fp;
	int fd;

	assert_true((fd = mkstemp(path)) >= 0);
	assert_non_null(fp = fdopen(fd, "w"));
	fputs(text, fp);
	fclose(fp);
	c = config_load(path, err, errsz);
	unlink(path);
	return c;
}

#endif
