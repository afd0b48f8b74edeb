/*
 * stubs.c - subcommands not built yet say so and fail.  Each moves to its
 * own file when it is written.
 */
#include <stdio.h>

#include "cmd/cmd.h"

int
cmd_check(int argc, char **argv, struct config *cfg,
    const struct cmd_opts *opts)
{
	fprintf(stderr, "mxguard: check: not available in this build\n");
	return 1;
}
