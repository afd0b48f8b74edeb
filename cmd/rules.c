/*
 * rules.c - `mxguard rules install|boot|ensure|watch|remove|stop|show|generate`:
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
 * (rules_check()); "watch" runs that check at every change of the
 * ruleset and every 30 s (rules_watch(), mxguard-rules-watch.service).
 */
#include <sys/socket.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "core/config.h"
#include "nfq/rules.h"

/* What one check of the rules found (rules_check()). */
enum ensure_result {
	ENSURE_PRESENT,		/* some of mxguard's rules are in place */
	ENSURE_NO_DAEMON,	/* gone, but no daemon answers: nothing to do */
	ENSURE_PUT_BACK,	/* gone, and installed again */
	ENSURE_NOT_PUT_BACK,	/* gone and left so (msg says why), or error */
	ENSURE_REFUSING,	/* the refusal set stands in (fail_mode = closed) */
};

/*
 * One check, for `rules ensure` and `rules watch`.  A tool that replaces
 * the whole ruleset (`nft flush ruleset`, Debian's nftables.conf, a
 * firewall's reload, iptables-restore without --noflush) takes mxguard's
 * rules away, and with them the interception and the fail mode, while the
 * daemon runs on: every port-25 flow then goes direct.  The set is put
 * back only when none of mxguard's rules is left (one present is what was
 * installed; replacing it is `rules install`'s business) and a daemon
 * answers with this very file's configuration (a file edited since may
 * divert elsewhere than the daemon listens, or mark otherwise).  No
 * daemon: nothing to do (its unit installs the rules when it starts;
 * `rules stop` may have removed them on purpose).
 *
 * Gone, with a file edited since, and fail_mode = closed in it: the
 * refusal set goes in (every port-25 flow refused, mxguard's own too), as
 * leaving nothing would send every flow direct, the very thing the closed
 * mode refuses; *refused is set.  While it is set (`rules watch` keeps it
 * from one check to the next) and the daemon comes to run the file (a
 * reload), the configured set replaces the refusal set.  msg gets the line
 * to log, "" when there is nothing to say.
 */
static enum ensure_result
rules_check(const struct config *cfg, int *refused, char *msg, size_t msgsz)
{
	struct cmd_cfgcheck cc;
	char err[1024] = "";
	FILE *null;
	int rc;

	msg[0] = '\0';
	if ((null = fopen("/dev/null", "w")) == NULL) {
		snprintf(msg, msgsz, "/dev/null: %s", strerror(errno));
		return ENSURE_NOT_PUT_BACK;
	}
	rc = rules_show(cfg, null, err, sizeof(err));
	fclose(null);
	if (rc == -1) {
		snprintf(msg, msgsz, "reading the rules: %s", err);
		return ENSURE_NOT_PUT_BACK;
	}
	if (rc == 1 && !*refused)
		return ENSURE_PRESENT;
	cmd_config_vs_daemon(cfg, &cc);
	if (rc == 1) {
		/* the refusal set this watch put in: until the daemon runs
		 * the file, it stays */
		if (!cc.reached || cc.daemon != cc.file)
			return ENSURE_REFUSING;
		if (rules_install(cfg, err, sizeof(err)) == -1) {
			snprintf(msg, msgsz, "the daemon runs the configuration "
			    "file now, but its rules could not be installed in "
			    "place of the refusal set: %s", err);
			return ENSURE_REFUSING;
		}
		*refused = 0;
		snprintf(msg, msgsz, "the daemon runs the configuration file "
		    "now: its rules installed in place of the refusal set");
		return ENSURE_PUT_BACK;
	}
	if (!cc.reached)
		return ENSURE_NO_DAEMON;
	if (cc.daemon != cc.file && strcmp(cfg->fail_mode, "closed") == 0) {
		if (rules_refuse_install(cfg, err, sizeof(err)) == -1) {
			snprintf(msg, msgsz, "mxguard's netfilter rules are gone "
			    "(port-25 flows go direct), the configuration file "
			    "differs from the one the daemon runs, and the "
			    "refusal set could not be installed either: %s",
			    err);
			return ENSURE_NOT_PUT_BACK;
		}
		*refused = 1;
		snprintf(msg, msgsz, "mxguard's netfilter rules were gone, and "
		    "the configuration file differs from the one the daemon "
		    "runs (digest %08x, the daemon's %08x): installed the "
		    "refusal set instead (fail_mode = closed): every port-25 "
		    "flow is refused, mxguard's own too, until the daemon is "
		    "reloaded on the file (then `rules watch` installs its "
		    "rules, or run \"mxguard rules install\")", cc.file,
		    cc.daemon);
		return ENSURE_REFUSING;
	}
	if (cc.daemon != cc.file) {
		snprintf(msg, msgsz, "mxguard's netfilter rules are gone "
		    "(port-25 flows go direct), and the configuration file "
		    "differs from the one the daemon runs (digest %08x, the "
		    "daemon's %08x): not put back; reload mxguard on the file, "
		    "then run \"mxguard rules install\"", cc.file, cc.daemon);
		return ENSURE_NOT_PUT_BACK;
	}
	if (rules_install(cfg, err, sizeof(err)) == -1) {
		snprintf(msg, msgsz, "mxguard's netfilter rules are gone "
		    "(port-25 flows go direct) and could not be put back: %s",
		    err);
		return ENSURE_NOT_PUT_BACK;
	}
	snprintf(msg, msgsz, "mxguard's netfilter rules were gone (another "
	    "tool replaced the ruleset?): installed again");
	return ENSURE_PUT_BACK;
}

/* `rules ensure`: one check.  0: present, put back, or no daemon; 1: gone
 * and not put back, the refusal set put in instead, or an error (stderr
 * says which). */
static int
rules_ensure(const struct config *cfg)
{
	char msg[1536];
	enum ensure_result r;
	int refused = 0;

	r = rules_check(cfg, &refused, msg, sizeof(msg));
	if (msg[0] != '\0')
		fprintf(stderr, "mxguard: rules ensure: %s\n", msg);
	return r == ENSURE_NOT_PUT_BACK || r == ENSURE_REFUSING ? 1 : 0;
}

/*
 * `rules watch` (mxguard-rules-watch.service, as root while mxguard.service
 * runs): the check of rules_check() at once whenever the host's ruleset
 * changes, and every WATCH_PERIOD_S besides.  nf_tables tells every
 * member of NFNLGRP_NFTABLES of each change it commits (iptables-nft's and
 * nft's alike), so a flush that takes mxguard's rules away is answered in
 * well under a second, not at the next round of a timer.  The period
 * covers what sends no such message (the legacy iptables backend) and
 * messages lost to a full socket buffer (ENOBUFS).  A burst of changes (a
 * firewall's reload is many) is checked once, when WATCH_QUIET_MS pass
 * without one, or after WATCH_SETTLE_MAX_MS, and checks are WATCH_GAP_MS
 * apart at least (a host whose rules change all the time, a fail2ban,
 * costs one `iptables-save` a second).  The configuration file is
 * read again for each check, so the digest compared with the daemon's is
 * that of the file as it is (an operator's reload between two checks).
 * While the refusal set it put in stands (rules_check()), it checks every
 * WATCH_REFUSED_PERIOD_S, so that the configured set follows a reload of
 * the daemon within seconds.  A
 * line goes to stderr (the journal) when the outcome changes, and a
 * repeated "not put back" again every WATCH_REPEAT_S, not every check.
 * Returns only on an error that stops the watch (1).
 */
#define WATCH_PERIOD_S		30
#define WATCH_QUIET_MS		200
#define WATCH_SETTLE_MAX_MS	2000
#define WATCH_REPEAT_S		600
#define WATCH_GAP_MS		1000	/* at most one check a second */
#define WATCH_REFUSED_PERIOD_S	2	/* while the refusal set stands in */

/* A netlink socket in NFNLGRP_NFTABLES; -1 (errno) when the kernel has no
 * nf_tables or refuses (then the period alone checks). */
static int
watch_socket(void)
{
	struct sockaddr_nl sa;
	int fd, grp = NFNLGRP_NFTABLES, size = 1 << 20;

	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK,
	    NETLINK_NETFILTER);
	if (fd == -1)
		return -1;
	memset(&sa, 0, sizeof(sa));
	sa.nl_family = AF_NETLINK;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1 ||
	    setsockopt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &grp,
	    sizeof(grp)) == -1)
		goto fail;
	/* a firewall's reload sends one message per rule: room for many */
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
	return fd;
fail:
	grp = errno;
	close(fd);
	errno = grp;
	return -1;
}

/* Reads what is queued on fd; 1 if anything (or a lost message: ENOBUFS)
 * was there, 0 if nothing, -1 on another error. */
static int
watch_drain(int fd)
{
	char buf[8192];
	ssize_t n;
	int any = 0;

	for (;;) {
		n = recv(fd, buf, sizeof(buf), 0);
		if (n > 0) {
			any = 1;
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return any;
		if (n == -1 && errno == ENOBUFS)
			return 1;
		return n == 0 ? any : -1;
	}
}

/* Waits until the ruleset has been quiet for WATCH_QUIET_MS (at most
 * WATCH_SETTLE_MAX_MS), so that a burst of changes is checked once. */
static void
watch_settle(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int waited = 0;

	while (waited < WATCH_SETTLE_MAX_MS) {
		if (poll(&p, 1, WATCH_QUIET_MS) <= 0)
			return;
		if (watch_drain(fd) <= 0)
			return;
		waited += WATCH_QUIET_MS;
	}
}

/* The check with the configuration file as it is now; NOT_PUT_BACK with
 * msg when it no longer loads. */
static enum ensure_result
watch_check(const char *path, int *refused, char *msg, size_t msgsz)
{
	struct config *cfg;
	char err[512] = "";
	enum ensure_result r;

	if ((cfg = config_load(path, err, sizeof(err))) == NULL) {
		snprintf(msg, msgsz, "the configuration does not load, the "
		    "rules were not checked: %s", err);
		return ENSURE_NOT_PUT_BACK;
	}
	r = rules_check(cfg, refused, msg, msgsz);
	config_free(cfg);
	return r;
}

static long
ms_since(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - t->tv_sec) * 1000 +
	    (now.tv_nsec - t->tv_nsec) / 1000000;
}

static int
rules_watch(const char *path)
{
	struct pollfd p = { .fd = -1, .events = POLLIN };
	char msg[1536], last[1536] = "";
	enum ensure_result r;
	struct timespec checked;
	time_t last_said = 0, now;
	long gap;
	int fd, n, refused = 0, period;

	signal(SIGPIPE, SIG_IGN);	/* the control socket's peer may go */
	if ((fd = watch_socket()) == -1)
		fprintf(stderr, "mxguard: rules watch: ruleset changes cannot be "
		    "followed (netlink NFNLGRP_NFTABLES: %s): checking every "
		    "%d s only\n", strerror(errno), WATCH_PERIOD_S);
	else
		fprintf(stderr, "mxguard: rules watch: checking mxguard's "
		    "netfilter rules at every ruleset change and every %d s\n",
		    WATCH_PERIOD_S);
	p.fd = fd;
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &checked);
		r = watch_check(path, &refused, msg, sizeof(msg));
		now = time(NULL);
		/* a line when something changes; a repeated complaint
		 * only now and then */
		if (msg[0] != '\0' && (r == ENSURE_PUT_BACK ||
		    strcmp(msg, last) != 0 || now - last_said >= WATCH_REPEAT_S)) {
			fprintf(stderr, "mxguard: rules watch: %s\n", msg);
			last_said = now;
		}
		snprintf(last, sizeof(last), "%s", msg);
		/* refusing: a reload of the daemon changes no rule, and
		 * every port-25 flow waits for the next check */
		period = refused ? WATCH_REFUSED_PERIOD_S : WATCH_PERIOD_S;
		if (fd == -1) {
			(void)poll(NULL, 0, period * 1000);
			continue;
		}
		n = poll(&p, 1, period * 1000);
		if (n == -1 && errno != EINTR)
			goto fail;
		if (n == 1) {
			if (watch_drain(fd) == -1)
				goto fail;
			watch_settle(fd);
			gap = WATCH_GAP_MS - ms_since(&checked);
			if (gap > 0) {
				(void)poll(NULL, 0, gap);
				(void)watch_drain(fd);
			}
		}
	}
fail:
	fprintf(stderr, "mxguard: rules watch: waiting for ruleset changes: "
	    "%s\n", strerror(errno));
	close(fd);
	return 1;
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
	if (strcmp(what, "watch") == 0)
		return rules_watch(opts->config_path);
	if (strcmp(what, "generate") == 0) {
		if (rules_generate(cfg, stdout, err, sizeof(err)) == -1) {
			fprintf(stderr, "mxguard: rules generate: %s\n", err);
			return 1;
		}
		return 0;
	}
usage:
	fprintf(stderr, "usage: mxguard [-c file] rules "
	    "install|boot|ensure|watch|remove|stop|show|generate\n");
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
