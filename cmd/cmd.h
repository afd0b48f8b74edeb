/*
 * cmd.h - the subcommands of the mxguard binary (the top floor: these wire
 * core/, nfq/, policy/ and tlsproxy/ together).
 *
 * Each gets the arguments after its own name and the loaded configuration
 * (owned by main.c) and returns the process exit status.
 */
#ifndef MXG_CMD_H
#define MXG_CMD_H

#include <stdint.h>
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

/*
 * policy and check answer for the configuration file they read; the
 * daemon may run another (the file edited and not reloaded yet, or a
 * reload that failed or was refused: it keeps the old one).
 * cmd_config_vs_daemon() asks the daemon on control_socket (2 s at most;
 * cmd/status.c) for the digest of the one it runs ("# config digest" in
 * its status, cmd/control.c) and compares it with the file's
 * (config_digest32()).  No daemon answering is no warning: the commands
 * are run without one too.  A daemon that runs with another state_dir
 * than the file's (edited since its start: a reload keeps the start's)
 * is warned of too (other_dir), the digest being the file's then: the
 * commands read the file's state_dir.  Nothing here changes an exit
 * status (`report send` refuses on other_dir itself).  busy
 * tells a daemon that is there but did not say (its connections all
 * taken, no answer in time) from none (`rules watch` acts on it).
 * No daemon on the file's control_socket: the one started on this very
 * file (cmd_set_config_path()) is asked on its start's, which its record
 * names (cmd_record_daemon(); a reload keeps the start's), and socket
 * says so, the warning too.
 */
struct cmd_cfgcheck {
	uint32_t	 file;		/* config_digest32() of the file read */
	int		 reached;	/* a daemon answered with its digest */
	uint32_t	 daemon;	/* the digest it runs, if reached */
	int		 busy;		/* not reached, but a daemon is there */
	char		 state_dir[4096]; /* the daemon's, if reached ("" if
					 * it did not say) */
	int		 other_dir;	/* ... and not the file's: a reload
					 * keeps the start's (warning) */
	char		 socket[108];	/* where it was asked when not the
					 * file's control_socket: its start's,
					 * from its record ("" if the file's) */
	char		 warning[2048];	/* "" unless reached and different */
};
void	cmd_config_vs_daemon(const struct config *, struct cmd_cfgcheck *);
/* the configuration file's path (main.c; NULL: the defaults) */
void	cmd_set_config_path(const char *);
/*
 * The daemon's record of the control_socket and state_dir it runs with,
 * for the commands that read a file edited since (cmd/status.c): written
 * as root at the start, before the privilege drop, in CMD_RUNDIR
 * (MXGUARD_RUNDIR in the environment), named after config_path.  -1 with
 * err: not written (the commands then know only the file's paths).
 */
#define CMD_RUNDIR	"/run/mxguard"
int	cmd_record_daemon(const char *config_path, const struct config *,
	    char *err, size_t errsz);
#define CMD_DIGEST_TIMEOUT_S	2	/* its wait: policy and check ask in
					 * passing */
/* JSON: config_digest, daemon_config_digest (null: no daemon answered)
 * and config_warning (null: none) */
void	cmd_config_json(struct json_t *root, const struct cmd_cfgcheck *);

/*
 * 1 when ss (a destination the MTA connects to, port 25) is in
 * bypass_dst: the rules or the queue let such a flow go direct, so
 * mxguard never sees it and no verdict of policy or check applies to it
 * (cmd/status.c).  An IPv4-mapped address is its IPv4 one, as the
 * packets are.
 */
struct sockaddr_storage;
int	cmd_bypassed_dst(const struct config *,
	    const struct sockaddr_storage *);

/* "usage: mxguard ..." for one subcommand (main.c) */
void	cmd_usage(const char *name, FILE *f);

int	cmd_run(int argc, char **argv, struct config *cfg,
	    const struct cmd_opts *opts);
int	cmd_rules(int argc, char **argv, struct config *cfg,
	    const struct cmd_opts *opts);
/* `rules boot` when the configured set is out of reach: the refusal set
 * (cfg: any loaded config, the defaults will do).  Returns 1. */
int	cmd_rules_refuse(const struct config *cfg);
/* `rules boot|remove|stop|watch` when the configuration file does not load
 * (why: the load's error; defaults: the built-in configuration): boot the
 * refusal set, remove by the fixed names, stop by what the set in place
 * does with no daemon, watch on (it reads the file at every check).  -1
 * for the other commands, which need the file. */
int	cmd_rules_unloaded(int argc, char **argv,
	    const struct config *defaults, const struct cmd_opts *opts,
	    const char *why);
int	cmd_status(int argc, char **argv, struct config *cfg,
	    const struct cmd_opts *opts);
int	cmd_policy(int argc, char **argv, struct config *cfg,
	    const struct cmd_opts *opts);
int	cmd_check(int argc, char **argv, struct config *cfg,
	    const struct cmd_opts *opts);
int	cmd_report(int argc, char **argv, struct config *cfg,
	    const struct cmd_opts *opts);

#endif
