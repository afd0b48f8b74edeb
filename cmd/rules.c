/*
 * rules.c - `mxguard rules install|remove|show|generate`: the netfilter
 * rule sets of nfq/rules.c, with marks, ports and modes from the config.
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
	int rc;

	if (argc != 2)
		goto usage;
	if (strcmp(what, "install") == 0) {
		if (rules_install(cfg, err, sizeof(err)) == -1) {
			fprintf(stderr, "mxguard: rules install: %s\n", err);
			return 1;
		}
		return 0;
	}
	if (strcmp(what, "remove") == 0) {
		if (rules_remove(cfg, err, sizeof(err)) == -1) {
			fprintf(stderr, "mxguard: rules remove: %s\n", err);
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
	    "install|remove|show|generate\n");
	return 2;
}
