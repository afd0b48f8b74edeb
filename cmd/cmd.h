/*
 * cmd.h - the subcommands of the mxguard binary (the top floor: these wire
 * core/, nfq/, policy/ and tlsproxy/ together).
 *
 * Each gets the arguments after its own name and the loaded configuration
 * (owned by main.c) and returns the process exit status.
 */
#ifndef MXG_CMD_H
#define MXG_CMD_H

#include "core/config.h"

struct cmd_opts {
	const char	*config_path;	/* NULL: built-in defaults */
	int		 debug;
};

int	cmd_run(int argc, char **argv, struct config *cfg,
	    const struct cmd_opts *opts);
int	cmd_rules(int argc, char **argv, struct config *cfg,
	    const struct cmd_opts *opts);
int	cmd_status(int argc, char **argv, struct config *cfg,
	    const struct cmd_opts *opts);
int	cmd_policy(int argc, char **argv, struct config *cfg,
	    const struct cmd_opts *opts);
int	cmd_check(int argc, char **argv, struct config *cfg,
	    const struct cmd_opts *opts);
int	cmd_report(int argc, char **argv, struct config *cfg,
	    const struct cmd_opts *opts);

#endif
