/*
 * rules.c - `mxguard rules install|boot|ensure|remove|stop|show|generate`:
 * the netfilter rule sets of nfq/rules.c, with marks, ports and modes from
 * the config.  "stop" is remove, except with fail_mode = closed (whatever the
 * steering), where the rules stay so that flows are refused while the
 * daemon is down: the systemd unit runs it after the daemon stops.
 * "boot" is install for the early unit (mxguard-rules.service, before the
 * network is up); when the configured set cannot be installed, or the
 * configuration does not load (main() then calls cmd_rules_refuse()), it
 * puts the refusal set in instead, so that no port-25 flow goes out
 * unprotected before mxguard runs, and exits 1.  "ensure" puts the set
 * back while the daemon runs, if another tool took it away
 * (rules_ensure(), mxguard-rules-ensure.timer).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cmd/cmd.h"
#include "nfq/rules.h"

/*
 * `rules ensure`, every 30 s while mxguard.service runs
 * (mxguard-rules-ensure.timer).  A tool that replaces the whole ruleset
 * (`nft flush ruleset`, Debian's nftables.conf, a firewall's reload,
 * iptables-restore without --noflush) takes mxguard's rules away, and with
 * them the interception and the fail mode, while the daemon runs on: every
 * port-25 flow then goes direct.  The set is put back only when none of
 * mxguard's rules is left (one present is what was installed; replacing
 * it is `rules install`'s business) and a daemon answers with this very
 * file's configuration (a file edited since may divert elsewhere than the
 * daemon listens, or mark otherwise).  No daemon: nothing to do (its unit
 * installs the rules when it starts; `rules stop` may have removed them on
 * purpose).  0: present, put back, or no daemon; 1: gone and not put back,
 * or an error (stderr says which).
 */
static int
rules_ensure(const struct config *cfg)
{
	struct cmd_cfgcheck cc;
	char err[1024] = "";
	FILE *null;
	int rc;

	if ((null = fopen("/dev/null", "w")) == NULL) {
		fprintf(stderr, "mxguard: rules ensure: /dev/null: %s\n",
		    strerror(errno));
		return 1;
	}
	rc = rules_show(cfg, null, err, sizeof(err));
	fclose(null);
	if (rc == -1) {
		fprintf(stderr, "mxguard: rules ensure: reading the rules: "
		    "%s\n", err);
		return 1;
	}
	if (rc == 1)
		return 0;
	memset(&cc, 0, sizeof(cc));
	cmd_config_vs_daemon(cfg, &cc);
	if (!cc.reached)
		return 0;
	if (cc.daemon != cc.file) {
		fprintf(stderr, "mxguard: rules ensure: mxguard's netfilter "
		    "rules are gone (port-25 flows go direct), and the "
		    "configuration file differs from the one the daemon runs "
		    "(digest %08x, the daemon's %08x): not put back; reload "
		    "mxguard on the file, then run \"mxguard rules install\"\n",
		    cc.file, cc.daemon);
		return 1;
	}
	if (rules_install(cfg, err, sizeof(err)) == -1) {
		fprintf(stderr, "mxguard: rules ensure: mxguard's netfilter "
		    "rules are gone (port-25 flows go direct) and could not "
		    "be put back: %s\n", err);
		return 1;
	}
	fprintf(stderr, "mxguard: rules ensure: mxguard's netfilter rules "
	    "were gone (another tool replaced the ruleset?): installed "
	    "again\n");
	return 0;
}

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
	if (strcmp(what, "ensure") == 0)
		return rules_ensure(cfg);
	if (strcmp(what, "generate") == 0) {
		if (rules_generate(cfg, stdout, err, sizeof(err)) == -1) {
			fprintf(stderr, "mxguard: rules generate: %s\n", err);
			return 1;
		}
		return 0;
	}
usage:
	fprintf(stderr, "usage: mxguard [-c file] rules "
	    "install|boot|ensure|remove|stop|show|generate\n");
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
