/*
 * main.c - option parsing and subcommand dispatch.
 *
 *   mxguard [-d] [-c FILE] [run]            the daemon (foreground)
 *   mxguard [-c FILE] -n [-v]               check the configuration
 *                                           (-v: and the resolver)
 *   mxguard [-c FILE] rules install|boot|ensure|watch|remove|stop|show|generate
 *   mxguard [-c FILE] status [--metrics]
 *   mxguard [-c FILE] policy DOMAIN [--dst ADDRESS] [--json]
 *   mxguard [-c FILE] check DOMAIN [ADDRESS] [--deadline SECONDS]
 *           [--helo NAME] [--json]
 *   mxguard [-c FILE] report show [DOMAIN] [--json] | send [--now]
 *   mxguard -h | --help | -V | --version;  mxguard COMMAND --help
 *
 * Exit status: check and policy follow the monitoring plugins' convention
 * (0 ok, 1 warning, 2 would defer, 3 unknown or error, usage errors
 * included); the other commands 0 ok, 1 error, 2 usage error.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ares.h>
#include <openssl/crypto.h>

#include "cmd/cmd.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/ev.h"
#include "core/log.h"
#include "core/netaddr.h"
#include "nfq/nfq.h"
#include "nfq/rules.h"
#include "policy/dnscheck.h"
#include "policy/override.h"
#include "policy/policy.h"
#include "tlsproxy/tls.h"

#define DEFAULT_CONFIG "/etc/mxguard/mxguard.conf"
#ifndef MXG_NFQ_VERSION
#define MXG_NFQ_VERSION	"unknown"
#endif

typedef int cmd_fn(int, char **, struct config *, const struct cmd_opts *);

/* Each subcommand with its usage, printed by `mxguard CMD --help`. */
static const struct {
	const char	*name;
	cmd_fn		*fn;
	const char	*usage;
	const char	*help;
} cmds[] = {
	{ "run",	cmd_run,	"[-d] [-c file] [run]",
	    "run the daemon in the foreground (-d: debug logging)" },
	{ "rules",	cmd_rules,	"[-c file] rules "
	    "install|boot|ensure|watch|remove|stop|show|generate",
	    "install, remove or show the netfilter rules (boot: install,\n"
	    "           or refuse all port-25 flows when that fails)" },
	{ "status",	cmd_status,	"[-c file] status [--metrics]",
	    "ask the running daemon for its status or its metrics" },
	{ "policy",	cmd_policy,	"[-c file] policy domain "
	    "[--dst address] [--json]",
	    "MX hosts, MTA-STS record and policy, and the verdict\n"
	    "           per MX address (or for the address given)" },
	{ "check",	cmd_check,	"[-c file] check domain [address] "
	    "[--deadline seconds] [--helo name] [--json]",
	    "DNSSEC, DANE and MTA-STS per MX address, and a real\n"
	    "           STARTTLS handshake judged as the proxy would" },
	{ "report",	cmd_report,	"[-c file] report show [domain] "
	    "[--json] | send [--now]",
	    "show the recorded TLSRPT data, or send the reports due" },
};

/* One exit-status table for --help and the man page (keep them alike). */
static const char exit_table[] =
    "exit status:\n"
    "  check, policy:  0 would deliver as required, 1 warning,\n"
    "                  2 would defer, 3 unknown or error (usage errors too,\n"
    "                  and a DNS lookup the verdicts depend on that failed)\n"
    "  other commands: 0 ok, 1 error, 2 usage error\n"
    "                  (rules show: 3 when the rules are not installed;\n"
    "                  report send: 2 when a report was not delivered,\n"
    "                  report: 1 on usage errors)\n";

void
cmd_usage(const char *name, FILE *f)
{
	size_t i;

	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (strcmp(cmds[i].name, name) == 0)
			fprintf(f, "usage: mxguard %s\n", cmds[i].usage);
}

static void
help(FILE *f)
{
	size_t i;

	fprintf(f, "usage: mxguard [-d] [-c file] [run]\n"
	    "       mxguard [-c file] -n [-v]\n");
	for (i = 1; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		fprintf(f, "       mxguard %s\n", cmds[i].usage);
	fprintf(f, "       mxguard -h | --help | -V | --version\n"
	    "       mxguard command --help\n\n"
	    "options:\n"
	    "  -c file  configuration file (default " DEFAULT_CONFIG
	    ", if it exists)\n"
	    "  -d       debug logging\n"
	    "  -n       check the configuration and exit (-v: print it)\n"
	    "  -v       with policy and check: also log their info lines\n"
	    "  -h       this help; -V the version and the libraries' "
	    "versions\n"
	    "  (options go before the command: mxguard -v policy "
	    "example.com)\n\ncommands:\n");
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		fprintf(f, "  %-7s  %s\n", cmds[i].name, cmds[i].help);
	fprintf(f, "\n%s", exit_table);
}

static void
cmd_help(size_t i)
{
	printf("usage: mxguard %s\n\n%s\n\n", cmds[i].usage,
	    cmds[i].help);
	printf("%s", exit_table);
}

static void
usage(void)
{
	help(stderr);
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
	const char *rs;
	char err[256];
	int others;

	if ((rs = dnscheck_remote_server(cfg, NULL, &others)) != NULL)
		fprintf(stderr, "mxguard: dns: WARNING: the resolver %s is not "
		    "a loopback address: the AD bit of its answers is "
		    "believed as sent, and anyone on the path could forge "
		    "it (DANE wants a validating resolver on this host)\n",
		    rs);
	if (others > 0)
		fprintf(stderr, "mxguard: dns: WARNING: %d more resolver(s) "
		    "listed: only the first is asked\n", others);
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

/* The runtime versions of the libraries where they tell it; the
 * libnetfilter_queue one is the one built against (it has no call). */
static void
version(void)
{
	printf("mxguard %s\n", MXG_VERSION);
	printf("OpenSSL %s\n", OpenSSL_version(OPENSSL_VERSION_STRING));
	printf("c-ares %s\n", ares_version(NULL));
	printf("libnetfilter_queue %s\n", MXG_NFQ_VERSION);
}

/* -n: what the daemon would refuse at start, short of binding sockets:
 * the overrides and the TLS files too, not only the syntax; and the
 * policy engine as the daemon makes it at start (policy_new_nostores():
 * the overrides, the resolver's dns_servers, the CA store, the Redis
 * client and its TLS files), as a reload checks it (cmd/run.c,
 * verify_build()).  The overrides are loaded there only: each load logs
 * their warnings. */
static int
check_config(const struct config *cfg, const char *path)
{
	struct tls_ctx *tls;
	struct ev_loop *loop;
	struct policy *p;
	char err[512];

	if (nfq_config_check(cfg, err, sizeof(err)) == -1) {
		fprintf(stderr, "mxguard: %s: %s\n", path ? path : "defaults",
		    err);
		return 1;
	}
	if ((tls = tls_ctx_new(cfg, err, sizeof(err))) == NULL) {
		fprintf(stderr, "mxguard: %s: %s\n", path ? path : "defaults",
		    err);
		return 1;
	}
	tls_ctx_free(tls);
	/* it connects nowhere before a loop runs, and none does here */
	if ((loop = ev_loop_new()) == NULL) {
		fprintf(stderr, "mxguard: event loop: out of memory\n");
		return 1;
	}
	p = policy_new_nostores(loop, cfg, err, sizeof(err));
	policy_free(p);
	ev_loop_free(loop);
	if (p == NULL) {
		fprintf(stderr, "mxguard: %s: %s\n", path ? path : "defaults",
		    err);
		return 1;
	}
	return 0;
}

/* the rules commands that act without the file (cmd_rules_unloaded()) */
static int
rules_unloaded(int argc, char **argv)
{
	return argc == 2 && strcmp(argv[0], "rules") == 0 &&
	    (strcmp(argv[1], "boot") == 0 || strcmp(argv[1], "remove") == 0 ||
	    strcmp(argv[1], "stop") == 0 || strcmp(argv[1], "watch") == 0);
}

static int
monitoring(const char *name)
{
	return strcmp(name, "check") == 0 || strcmp(name, "policy") == 0;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help",	no_argument,	NULL,	'h' },
		{ "version",	no_argument,	NULL,	'V' },
		{ NULL,		0,		NULL,	0 }
	};
	struct cmd_opts opts = { NULL, 0, 0 };
	struct config *cfg;
	char err[512];
	int ch, check_only = 0, verbose = 0, rc;
	size_t i, ci;

	/* before any fork: the workers keep the daemon's anchor */
	clock_anchor();
	while ((ch = getopt_long(argc, argv, "+c:dnvhV", longopts,
	    NULL)) != -1) {
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
			opts.verbose = 1;
			break;
		case 'h':
			help(stdout);
			return 0;
		case 'V':
			version();
			return 0;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	/* -n checks the configuration and runs nothing: "mxguard -n check"
	 * or "mxguard -n rules remove" would exit 0 having done neither */
	if (check_only && argc > 0 &&
	    !(argc == 1 && strcmp(argv[0], "run") == 0)) {
		fprintf(stderr, "mxguard: -n checks the configuration and "
		    "runs no command (\"%s\"): mxguard [-v] [-c file] -n\n",
		    argv[0]);
		return 2;
	}
	if (argc == 0) {
		static char *run_argv[] = { "run", NULL };

		argc = 1;
		argv = run_argv;
	}
	for (ci = 0; ci < sizeof(cmds) / sizeof(cmds[0]); ci++)
		if (strcmp(argv[0], cmds[ci].name) == 0)
			break;
	if (!check_only && ci == sizeof(cmds) / sizeof(cmds[0])) {
		fprintf(stderr, "mxguard: unknown command \"%s\"\n", argv[0]);
		usage();
	}
	/* COMMAND --help or -h anywhere in its arguments: no configuration
	 * needed, nothing else done */
	if (!check_only)
		for (i = 1; i < (size_t)argc; i++)
			if (strcmp(argv[i], "--help") == 0 ||
			    strcmp(argv[i], "-h") == 0) {
				cmd_help(ci);
				return 0;
			}
	/* run takes no arguments: "mxguard run -n", an option after the
	 * command, would start the daemon where a check was meant */
	if (!check_only && cmds[ci].fn == cmd_run && argc > 1) {
		fprintf(stderr, "mxguard: run takes no arguments (\"%s\"); "
		    "options go before the command: mxguard [-d] [-n] "
		    "[-c file] run\n", argv[1]);
		return 2;
	}
	/* the default file is optional; a named one must exist */
	if (opts.config_path == NULL && access(DEFAULT_CONFIG, F_OK) == 0)
		opts.config_path = DEFAULT_CONFIG;
	cmd_set_config_path(opts.config_path);
	if ((cfg = config_load(opts.config_path, err, sizeof(err))) == NULL) {
		char why[512];

		fprintf(stderr, "mxguard: %s\n", err);
		/* at boot, a configuration that does not load still gets the
		 * refusal set: nothing goes out unprotected meanwhile; and
		 * mxguard can still be taken out of the path (remove), stopped
		 * (stop) and watched, the file fixed meanwhile */
		snprintf(why, sizeof(why), "%s", err);
		if (!check_only && rules_unloaded(argc, argv) &&
		    (cfg = config_load(NULL, err, sizeof(err))) != NULL) {
			rc = cmd_rules_unloaded(argc, argv, cfg, &opts, why);
			config_free(cfg);
			return rc == -1 ? 1 : rc;
		}
		return !check_only && monitoring(argv[0]) ? CMD_UNKNOWN : 1;
	}
	if (opts.debug)
		cfg->log_level = LOG_LVL_DEBUG;
	/* the NAT64 prefixes an address is judged through, in every
	 * process: the commands, the daemon and the workers it forks (a
	 * reload applies them again, as the log level: run.c, workers.c);
	 * and -n, whose override check judges address lines by them */
	if (netaddr_set_nat64(&cfg->nat64_prefix, err, sizeof(err)) == -1) {
		fprintf(stderr, "mxguard: nat64_prefix: %s\n", err);
		config_free(cfg);
		return 1;
	}
	if (check_only) {
		rc = check_config(cfg, opts.config_path);
		for (i = 0; rc == 0 && i < (size_t)cfg->warnings.n; i++)
			fprintf(stderr, "mxguard: WARNING: %s\n",
			    cfg->warnings.v[i]);
		if (rc == 0 && verbose && rules_warning(cfg) != NULL)
			fprintf(stderr, "mxguard: rules: WARNING: %s\n",
			    rules_warning(cfg));
		if (rc == 0 && verbose)
			check_dns(cfg);
		if (rc == 0 && verbose)
			config_dump(cfg, stdout, 0);
		config_free(cfg);
		return rc;
	}
	/* the policy clock this boot's daemon keeps (core/clock.h): a
	 * restarted daemon and the commands go by it, not by the wall
	 * clock as it is now */
	if (clock_anchor_restore(cfg->state_dir, err, sizeof(err)) == -1)
		fprintf(stderr, "mxguard: warning: %s: the policy clock is "
		    "the wall clock as it is\n", err);
	rc = cmds[ci].fn(argc, argv, cfg, &opts);
	config_free(cfg);
	return rc;
}
