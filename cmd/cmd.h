/*
 * cmd.h - the subcommands of the mxguard binary (the top floor: these wire
 * core/, nfq/, policy/ and tlsproxy/ together).
 *
 * Each gets the arguments after its own name and the loaded configuration
 * (owned by main.c) and returns the process exit status.
 */
#ifndef MXG_CMD_H
#define MXG_CMD_H

#include <stdio.h>

#include "core/config.h"

/* The release; the build may pass -DMXG_VERSION="..." instead. */
#ifndef MXG_VERSION
#define MXG_VERSION	"0.1.0"
#endif

/* check and policy exit as monitoring plugins do */
#define CMD_OK		0	/* would deliver as required */
#define CMD_WARNING	1	/* would deliver, but something is amiss */
#define CMD_DEFER	2	/* would defer */
#define CMD_UNKNOWN	3	/* unknown or error, usage errors included */

struct cmd_opts {
	const char	*config_path;	/* NULL: built-in defaults */
	int		 debug;
	int		 verbose;	/* -v: the tools show info lines too */
};

/* A string member of a JSON object: NULL or "" as null, invalid UTF-8
 * replaced by U+FFFD and flagged by "<key>_invalid_utf8": true (check.c) */
struct json_t;
int	cmd_json_set(struct json_t *o, const char *key, const char *s);

/* "usage: mxguard ..." for one subcommand (main.c) */
void	cmd_usage(const char *name, FILE *f);

int	cmd_run(int argc, char **argv, struct config *cfg,
	    const struct cmd_opts *opts);
int	cmd_rules(int argc, char **argv, struct config *cfg,
	    const struct cmd_opts *opts);
/* `rules boot` when the configured set is out of reach: the refusal set
 * (cfg: any loaded config, the defaults will do).  Returns 1. */
int	cmd_rules_refuse(const struct config *cfg);
int	cmd_status(int argc, char **argv, struct config *cfg,
	    const struct cmd_opts *opts);
int	cmd_policy(int argc, char **argv, struct config *cfg,
	    const struct cmd_opts *opts);
int	cmd_check(int argc, char **argv, struct config *cfg,
	    const struct cmd_opts *opts);
int	cmd_report(int argc, char **argv, struct config *cfg,
	    const struct cmd_opts *opts);

#endif
