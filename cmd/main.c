/*
 * main.c - option parsing and subcommand dispatch.
 *
 *   mxguard [-d] [-c FILE] [run]            the daemon (foreground)
 *   mxguard [-c FILE] -n [-v]               check the configuration
 *                                           (-v: and the resolver)
 *   mxguard [-c FILE] rules install|remove|show
 *   mxguard [-c FILE] status [--metrics]
 *   mxguard [-c FILE] policy DOMAIN
 *   mxguard [-c FILE] check DOMAIN [ADDRESS] [--json]
 *   mxguard [-c FILE] report show [DOMAIN] [--json] | send [--now]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "core/config.h"
#include "core/ev.h"
#include "core/log.h"
#include "policy/dnscheck.h"
#include "policy/override.h"
#include "tlsproxy/tls.h"

#define DEFAULT_CONFIG "/etc/mxguard/mxguard.conf"

typedef int cmd_fn(int, char **, struct config *, const struct cmd_opts *);

static const struct {
	const char	*name;
	cmd_fn		*fn;
} cmds[] = {
	{ "run",	cmd_run },
	{ "rules",	cmd_rules },
	{ "status",	cmd_status },
	{ "policy",	cmd_policy },
	{ "check",	cmd_check },
	{ "report",	cmd_report },
};

static void
usage(void)
{
	fprintf(stderr,
	    "usage: mxguard [-d] [-c file] [run]\n"
	    "       mxguard [-c file] -n [-v]\n"
	    "       mxguard [-c file] rules install|remove|show\n"
	    "       mxguard [-c file] status [--metrics]\n"
	    "       mxguard [-c file] policy domain\n"
	    "       mxguard [-c file] check domain [address] [--json]\n"
	    "       mxguard [-c file] report show [domain] [--json]\n"
	    "       mxguard [-c file] report send [--now]\n");
	exit(2);
}

static void
dns_checked(void *arg, int validating, const char *why)
{
	struct ev_loop *loop = arg;

	fprintf(stderr, "mxguard: dns: %s (%s)%s\n", validating ?
	    "the resolver validates DNSSEC" : "WARNING: the resolver does "
	    "not validate DNSSEC", why, validating ? "" :
	    ": DANE cannot apply");
	ev_loop_stop(loop);
}

/* -n -v: one resolver self-check (policy/dnscheck.h), reported on stderr,
 * never fatal: the resolver may be down while the configuration is being
 * checked.  Only with -v, since a plain -n stays silent on success and
 * stdout carries the configuration dump. */
static void
check_dns(const struct config *cfg)
{
	struct ev_loop *loop;
	struct dnscheck *c = NULL;
	char err[256];

	if (cfg->dns_check_interval == 0)
		return;
	if ((loop = ev_loop_new()) == NULL ||
	    (c = dnscheck_new(loop, cfg, DNSCHECK_ONESHOT, 3000, dns_checked,
	    loop, err, sizeof(err))) == NULL)
		fprintf(stderr, "mxguard: dns: cannot check the resolver: "
		    "%s\n", loop ? err : "out of memory");
	else
		(void)ev_loop_run(loop);
	dnscheck_free(c);
	if (loop != NULL)
		ev_loop_free(loop);
}

/* -n: what the daemon would refuse at start, short of binding sockets:
 * the overrides and the TLS files too, not only the syntax. */
static int
check_config(const struct config *cfg, const char *path)
{
	struct ovr_table ovr = { 0, NULL };
	struct tls_ctx *tls;
	char err[512];

	if (ovr_load(&ovr, &cfg->tls_policy, err, sizeof(err)) == -1) {
		fprintf(stderr, "mxguard: %s: tls_policy: %s\n",
		    path ? path : "defaults", err);
		return 1;
	}
	ovr_clear(&ovr);
	if ((tls = tls_ctx_new(cfg, err, sizeof(err))) == NULL) {
		fprintf(stderr, "mxguard: %s: %s\n", path ? path : "defaults",
		    err);
		return 1;
	}
	tls_ctx_free(tls);
	return 0;
}

int
main(int argc, char **argv)
{
	struct cmd_opts opts = { NULL, 0 };
	struct config *cfg;
	char err[512];
	int ch, check_only = 0, verbose = 0, rc;
	size_t i;

	while ((ch = getopt(argc, argv, "+c:dnvh")) != -1) {
		switch (ch) {
		case 'c':
			opts.config_path = optarg;
			break;
		case 'd':
			opts.debug = 1;
			break;
		case 'n':
			check_only = 1;
			break;
		case 'v':
			verbose = 1;
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	/* the default file is optional; a named one must exist */
	if (opts.config_path == NULL && access(DEFAULT_CONFIG, F_OK) == 0)
		opts.config_path = DEFAULT_CONFIG;
	if ((cfg = config_load(opts.config_path, err, sizeof(err))) == NULL) {
		fprintf(stderr, "mxguard: %s\n", err);
		return 1;
	}
	if (opts.debug)
		cfg->log_level = LOG_LVL_DEBUG;
	if (check_only) {
		rc = check_config(cfg, opts.config_path);
		if (rc == 0 && verbose)
			check_dns(cfg);
		if (rc == 0 && verbose)
			config_dump(cfg, stdout);
		config_free(cfg);
		return rc;
	}
	if (argc == 0) {
		static char *run_argv[] = { "run", NULL };

		argc = 1;
		argv = run_argv;
	}
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (strcmp(argv[0], cmds[i].name) == 0) {
			rc = cmds[i].fn(argc, argv, cfg, &opts);
			config_free(cfg);
			return rc;
		}
	fprintf(stderr, "mxguard: unknown command \"%s\"\n", argv[0]);
	usage();
	return 2;
}
