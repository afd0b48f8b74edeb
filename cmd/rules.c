/*
 * rules.c - `mxguard rules install|remove|stop|show|generate`: the
 * netfilter rule sets of nfq/rules.c, with marks, ports and modes from the
 * config.  "stop" is remove, except with fail_mode = closed (whatever the
 * steering), where the rules stay so that flows are refused while the
 * daemon is down: the systemd unit runs it after the daemon stops.
 * "boot" is install for the early unit (mxguard-rules.service, before the
 * network is up); when the configured set cannot be installed, or the
 * configuration does not load (main() then calls cmd_rules_refuse()), it
 * puts the refusal set in instead, so that no port-25 flow goes out
 * unprotected before mxguard runs, and exits 1.
 */
#include <stdio.h>
#include <string.h>

#include "cmd/cmd.h"
#include "nfq/rules.h"

int
cmd_rules(int argc, char **argv, struct config *cfg,
    const struct cmd_opts *opts)
{
	char err[1024] = "";
	const char *what = argc > 1 ? argv[1] : "";
	const char *warn;
	int rc;

	if (argc != 2)
		goto usage;
	if (strcmp(what, "boot") == 0) {
		if (rules_install(cfg, err, sizeof(err)) == -1) {
			fprintf(stderr, "mxguard: rules boot: %s\n", err);
			return cmd_rules_refuse(cfg);
		}
		return 0;
	}
	if (strcmp(what, "install") == 0) {
		if (rules_install(cfg, err, sizeof(err)) == -1) {
			fprintf(stderr, "mxguard: rules install: %s\n", err);
			return 1;
		}
		if ((warn = rules_warning(cfg)) != NULL)
			fprintf(stderr, "mxguard: rules install: WARNING: %s\n",
			    warn);
		return 0;
	}
	if (strcmp(what, "remove") == 0) {
		if (rules_remove(cfg, err, sizeof(err)) == -1) {
			fprintf(stderr, "mxguard: rules remove: %s\n", err);
			return 1;
		}
		return 0;
	}
	if (strcmp(what, "stop") == 0) {
		/* the service's ExecStopPost: fail-closed keeps the rules, so
		 * port-25 flows are refused until mxguard is back */
		/* (steering = none too: its divert, with nobody listening,
		 * refuses; removing it would send every flow direct) */
		if (strcmp(cfg->fail_mode, "closed") == 0) {
			fprintf(stderr, "mxguard: fail_mode = closed: rules stay "
			    "installed, new port-25 flows are refused until "
			    "mxguard runs again (\"mxguard rules remove\" lifts "
			    "them)\n");
			return 0;
		}
		if (rules_remove(cfg, err, sizeof(err)) == -1) {
			fprintf(stderr, "mxguard: rules stop: %s\n", err);
			return 1;
		}
		return 0;
	}
	if (strcmp(what, "show") == 0) {
		if ((rc = rules_show(cfg, stdout, err, sizeof(err))) == -1) {
			fprintf(stderr, "mxguard: rules show: %s\n", err);
			return 1;
		}
		/* exit 0 when installed, 3 when not (as systemctl is-active) */
		return rc == 1 ? 0 : 3;
	}
	if (strcmp(what, "generate") == 0) {
		if (rules_generate(cfg, stdout, err, sizeof(err)) == -1) {
			fprintf(stderr, "mxguard: rules generate: %s\n", err);
			return 1;
		}
		return 0;
	}
usage:
	fprintf(stderr, "usage: mxguard [-c file] rules "
	    "install|boot|remove|stop|show|generate\n");
	return 2;
}

int
cmd_rules_refuse(const struct config *cfg)
{
	char err[1024] = "";

	if (rules_refuse_install(cfg, err, sizeof(err)) == -1) {
		fprintf(stderr, "mxguard: rules boot: the refusal set could "
		    "not be installed either: %s\n", err);
		return 1;
	}
	fprintf(stderr, "mxguard: rules boot: installed the refusal set "
	    "instead: every outbound port-25 flow is refused (mail stays "
	    "queued) until \"mxguard rules install\" succeeds\n");
	return 1;
}
