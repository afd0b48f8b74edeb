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
 * back while the daemon runs, if another tool took it away, all of it or
 * part (rules_check()); "watch" runs that check at every change of the
 * ruleset and every 30 s (rules_watch(), mxguard-rules-watch.service).
 * boot, remove, stop and watch also run when the configuration file does
 * not load (cmd_rules_unloaded()): remove by the fixed names, stop by
 * what the set in place does with no daemon, watch keeping the set.
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
	ENSURE_PRESENT,		/* the whole set is in place, or nothing to do */
	ENSURE_NO_DAEMON,	/* gone, but no daemon answers: nothing to do */
	ENSURE_PUT_BACK,	/* gone or incomplete, and installed again */
	ENSURE_NOT_PUT_BACK,	/* gone and left so (msg says why), or error */
	ENSURE_REFUSING,	/* the refusal set stands in (fail_mode = closed) */
	ENSURE_BUSY,		/* gone, the daemon busy: not put back yet */
};

/*
 * One check, for `rules ensure` and `rules watch`.  A tool that replaces
 * the whole ruleset (`nft flush ruleset`, Debian's nftables.conf, a
 * firewall's reload, iptables-restore without --noflush) takes mxguard's
 * rules away, and with them the interception and the fail mode, while the
 * daemon runs on: every port-25 flow then goes direct.  One that replaces
 * or flushes a single table (`iptables -F`, `iptables -t mangle -F` of a
 * QoS script, iptables-restore of a file that holds only *filter, `nft
 * flush table inet mxguard`) takes part of them: the guard (the fail
 * mode), or the steering (every flow direct with fail_mode = open,
 * refused with closed).  Either is put back when a daemon answers with
 * this very file's configuration (a file edited since may divert
 * elsewhere than the daemon listens, or mark otherwise): the set in place
 * is compared with the file's (rules_state()), and one that is not whole
 * is installed again.  The refusal set is no loss: it stays until the
 * daemon runs the file (below).  No daemon: nothing to do (its unit
 * installs the rules when it starts; `rules stop` may have removed them
 * on purpose).  A daemon that is there but does not say which
 * configuration it runs (cc.busy: its 16 control connections are all
 * taken, which anyone who may connect can do, its `user` included; no
 * answer in time) is no "no daemon": its rules stay lost meanwhile.  It
 * is handled as a file that differs (below: the set in place kept
 * unless broken, the refusal set with closed, nothing with open), and
 * asked again (ENSURE_BUSY: `rules watch` every WATCH_REFUSED_PERIOD_S).
 *
 * With a file edited since, the set in place is not compared with the
 * file's (it is the one the daemon's configuration wanted): incomplete
 * then means a chain of mxguard's without a rule or a jump into it.
 * Gone or incomplete so, and fail_mode = closed in the file: the
 * refusal set goes in (every port-25 flow refused, mxguard's own
 * too), as leaving nothing would send every flow direct, the very thing
 * the closed mode refuses; *refused is set.  While it is set (`rules
 * watch` keeps it from one check to the next) and the daemon comes to run
 * the file (a reload), the configured set replaces the refusal set.  A
 * refusal set found in place sets it too, whoever put it in (`rules
 * boot` on a file that did not load, this watch before a restart, which
 * forgets the flag): it stays until the daemon runs the file, no longer.
 * The whole set found in place clears it: nothing is refused any more,
 * and a flag left set would have a later partial flush answered with
 * the refusal set, and the watch look every 2 s, for nothing.  msg gets
 * the line to log, "" when there is nothing to say.
 */
static enum ensure_result
rules_check(const struct config *cfg, int *refused, char *msg, size_t msgsz)
{
	struct cmd_cfgcheck cc;
	struct rbuf missing = { 0 };
	char err[1024] = "", what[700], why[256];
	enum ensure_result r;
	int st, was, broken, differs;
	size_t n;

	msg[0] = '\0';
	cc.socket[0] = '\0';
	st = rules_state(cfg, &missing, &broken, err, sizeof(err));
	if (st == -1) {
		snprintf(msg, msgsz, "reading the rules: %s", err);
		r = ENSURE_NOT_PUT_BACK;
		goto out;
	}
	/* what was lost, for the lines below */
	was = st;
	if (st == RULES_ST_PARTIAL)
		snprintf(what, sizeof(what), "incomplete (%.600s)",
		    missing.s ? missing.s : "");
	else
		snprintf(what, sizeof(what), "gone");
	/* refused follows what is in place: the whole set (say an
	 * operator's `rules install` over the refusal set) ends it */
	if (st == RULES_ST_REFUSAL)
		*refused = 1;
	else if (st == RULES_ST_COMPLETE)
		*refused = 0;
	r = ENSURE_PRESENT;
	if (st == RULES_ST_COMPLETE)
		goto out;
	cmd_config_vs_daemon(cfg, &cc);
	if (st != RULES_ST_NONE && *refused) {
		/* the refusal set this watch put in: until the daemon runs
		 * the file, it stays (and goes in again if a flush left
		 * only its chain) */
		r = ENSURE_REFUSING;
		if (!cc.reached || cc.daemon != cc.file) {
			if (st == RULES_ST_PARTIAL && rules_refuse_install(cfg,
			    err, sizeof(err)) == -1)
				snprintf(msg, msgsz, "the refusal set is "
				    "incomplete and could not be installed "
				    "again: %s", err);
			goto out;
		}
		if (rules_install(cfg, err, sizeof(err)) == -1) {
			snprintf(msg, msgsz, "the daemon runs the configuration "
			    "file now, but its rules could not be installed in "
			    "place of the refusal set: %s", err);
			goto out;
		}
		*refused = 0;
		snprintf(msg, msgsz, "the daemon runs the configuration file "
		    "now: its rules installed in place of the refusal set");
		r = ENSURE_PUT_BACK;
		goto out;
	}
	r = ENSURE_NO_DAEMON;
	if (!cc.reached && !cc.busy)
		goto out;
	/* busy: which configuration the daemon runs is unknown, so as a
	 * file that differs */
	differs = cc.busy || cc.daemon != cc.file;
	if (cc.busy)
		snprintf(why, sizeof(why), "the daemon's control socket is "
		    "busy (every connection taken, or no answer in %d s), so "
		    "whether it runs this configuration file is unknown",
		    CMD_DIGEST_TIMEOUT_S);
	else
		snprintf(why, sizeof(why), "the configuration file differs "
		    "from the one the daemon runs (digest %08x, the daemon's "
		    "%08x)", cc.file, cc.daemon);
	/* a file edited since is no measure of the set in place (another
	 * queue, other bypasses): only damage that no install leaves (a
	 * chain of mxguard's emptied, no longer entered, or taken whole
	 * where the set's shape has it: rules_inplace_text()) counts then */
	r = ENSURE_PRESENT;
	if (st == RULES_ST_PARTIAL && differs && !broken)
		goto out;
	if (differs && strcmp(cfg->fail_mode, "closed") == 0) {
		if (rules_refuse_install(cfg, err, sizeof(err)) == -1) {
			snprintf(msg, msgsz, "mxguard's netfilter rules are %s "
			    "(port-25 flows may go direct), %s, and the "
			    "refusal set could not be installed either: %s",
			    what, why, err);
			r = ENSURE_NOT_PUT_BACK;
			goto out;
		}
		*refused = 1;
		snprintf(msg, msgsz, "mxguard's netfilter rules were %s, and "
		    "%s: installed the refusal set instead (fail_mode = "
		    "closed): every port-25 flow is refused, mxguard's own "
		    "too, until the daemon answers that it runs the file "
		    "(then `rules watch` installs its rules, or run "
		    "\"mxguard rules install\")", what, why);
		r = ENSURE_REFUSING;
		goto out;
	}
	r = ENSURE_NOT_PUT_BACK;
	if (cc.busy) {
		snprintf(msg, msgsz, "mxguard's netfilter rules are %s "
		    "(port-25 flows may go direct), and %s: not put back yet, "
		    "asking again", what, why);
		r = ENSURE_BUSY;
		goto out;
	}
	if (differs) {
		snprintf(msg, msgsz, "mxguard's netfilter rules are %s "
		    "(port-25 flows may go direct), and %s: not put back; "
		    "reload mxguard on the file, then run \"mxguard rules "
		    "install\"", what, why);
		goto out;
	}
	if (rules_install(cfg, err, sizeof(err)) == -1) {
		snprintf(msg, msgsz, "mxguard's netfilter rules are %s "
		    "(port-25 flows may go direct) and could not be put back: "
		    "%s", what, err);
		goto out;
	}
	/* installed: whole now?  (one that still compares incomplete would
	 * be installed again at every check: said, not hidden) */
	rbuf_free(&missing);
	if ((st = rules_state(cfg, &missing, &broken, err, sizeof(err))) !=
	    RULES_ST_COMPLETE) {
		snprintf(msg, msgsz, "mxguard's netfilter rules were %s: "
		    "installed again, but they are still not the whole set "
		    "afterwards (%.400s)", what, st == -1 ? err :
		    missing.s ? missing.s : "?");
		goto out;
	}
	snprintf(msg, msgsz, "mxguard's netfilter rules were %s%s: installed "
	    "again", what, was == RULES_ST_NONE ? " (another tool replaced "
	    "the ruleset?)" : "");
	*refused = 0;
	r = ENSURE_PUT_BACK;
out:
	/* the daemon found on its start's socket, through its record: the
	 * operator reads where, and that the file's waits for a restart */
	if (*cc.socket && *msg && (n = strlen(msg)) < msgsz)
		snprintf(msg + n, msgsz - n, " (the daemon answered on "
		    "control_socket %s, kept from its start, not the file's "
		    "%s: restart mxguard for the file's to apply)", cc.socket,
		    cfg->control_socket);
	rbuf_free(&missing);
	return r;
}

/* `rules ensure`: one check.  0: present, put back, or no daemon (a
 * refusal set that stands as it was included); 1: gone and not put back
 * (the daemon busy included), the refusal set put in instead, or an
 * error (stderr says which). */
static int
rules_ensure(const struct config *cfg)
{
	char msg[1536];
	enum ensure_result r;
	int refused = 0;

	r = rules_check(cfg, &refused, msg, sizeof(msg));
	if (msg[0] != '\0')
		fprintf(stderr, "mxguard: rules ensure: %s\n", msg);
	return r == ENSURE_NOT_PUT_BACK || r == ENSURE_BUSY ||
	    (r == ENSURE_REFUSING && msg[0] != '\0') ? 1 : 0;
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
 * costs a check a second: two readings of the ruleset, rules_check()'s
 * and what the set does with no daemon, for a later check on a file that
 * does not load).  The configuration file is
 * read again for each check, so the digest compared with the daemon's is
 * that of the file as it is (an operator's reload between two checks);
 * while it does not load, watch_unloaded().
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
#define WATCH_REFUSED_PERIOD_S	2	/* while the refusal set stands in,
					 * or the daemon is busy */

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

/* What `rules watch` keeps from one check to the next. */
struct watch_state {
	int	refused;	/* rules_check()'s */
	int	unloaded;	/* the file did not load at the last check */
	int	closed;		/* the set last seen in place refused with
				 * no daemon (rules_inplace()) */
};

/*
 * The check while the configuration file does not load (a local_users
 * user deleted, a typo after an edit; the daemon refuses such a reload
 * and runs on with what it loaded): there is no file's set to compare
 * with or to install, and the daemon's is not known here.  The set in
 * place is the daemon's, as far as anyone can tell: kept as it is, and
 * not checked otherwise.  Only when it is gone or damaged (a chain of
 * mxguard's emptied or no longer entered) while the set last seen
 * refused with no daemon (fail_mode = closed, or the refusal set) does
 * the watch act: the refusal set goes in, as rules_check() does for a
 * file that differs with closed, since leaving nothing sends every flow
 * direct.  A fail-open set lost so is said and left (its fail mode lets
 * flows go direct anyway).  Said once on the way in (the state, then
 * any change of it), once on the way out.
 */
static enum ensure_result
watch_unloaded(const char *why, struct watch_state *ws, char *msg,
    size_t msgsz)
{
	struct rules_inplace ip;
	struct config *defaults;
	char err[1024] = "";
	int first = !ws->unloaded;

	ws->unloaded = 1;
	if (rules_inplace(&ip, err, sizeof(err)) == -1) {
		snprintf(msg, msgsz, "the configuration does not load (%s), "
		    "and the rules in place could not be read: %s", why, err);
		return ENSURE_NOT_PUT_BACK;
	}
	if (ip.any && !ip.broken) {
		ws->closed = ip.refuses;
		if (first)
			snprintf(msg, msgsz, "the configuration does not load "
			    "(%s): the rules in place are kept as they are, "
			    "not compared with the file, until it loads", why);
		else
			msg[0] = '\0';
		return ENSURE_PRESENT;
	}
	if (!ws->closed) {
		snprintf(msg, msgsz, "the configuration does not load (%s), "
		    "and mxguard's netfilter rules are %s (port-25 flows may "
		    "go direct): not put back until it loads", why,
		    ip.any ? "damaged" : "gone");
		return ENSURE_NOT_PUT_BACK;
	}
	/* the refusal set needs nothing of the file: the defaults do */
	if ((defaults = config_load(NULL, err, sizeof(err))) == NULL ||
	    rules_refuse_install(defaults, err, sizeof(err)) == -1) {
		config_free(defaults);
		snprintf(msg, msgsz, "the configuration does not load (%s), "
		    "mxguard's netfilter rules are %s (port-25 flows may go "
		    "direct), and the refusal set could not be installed: %s",
		    why, ip.any ? "damaged" : "gone", err);
		return ENSURE_NOT_PUT_BACK;
	}
	config_free(defaults);
	ws->refused = 1;
	snprintf(msg, msgsz, "the configuration does not load (%s), and "
	    "mxguard's netfilter rules were %s while the set in place "
	    "refused with no daemon (fail-closed): installed the refusal set "
	    "(every port-25 flow refused) until the file loads and the daemon "
	    "runs it", why, ip.any ? "damaged" : "gone");
	return ENSURE_REFUSING;
}

/* The check with the configuration file as it is now (watch_unloaded()
 * when it does not load). */
static enum ensure_result
watch_check(const char *path, struct watch_state *ws, char *msg,
    size_t msgsz)
{
	struct config *cfg;
	struct rules_inplace ip;
	char err[512] = "", m[1536];
	enum ensure_result r;

	if ((cfg = config_load(path, err, sizeof(err))) == NULL)
		return watch_unloaded(err, ws, msg, msgsz);
	r = rules_check(cfg, &ws->refused, m, sizeof(m));
	config_free(cfg);
	if (ws->unloaded)
		snprintf(msg, msgsz, "the configuration loads again%s%s",
		    m[0] ? ": " : ": the rules are checked against it", m);
	else
		snprintf(msg, msgsz, "%s", m);
	ws->unloaded = 0;
	/* what the set in place does with no daemon, for a later check
	 * on a file that does not load */
	if (rules_inplace(&ip, err, sizeof(err)) == 0 && ip.any && !ip.broken)
		ws->closed = ip.refuses;
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
	struct watch_state ws = { 0, 0, 0 };
	char msg[1800], last[1800] = "";
	enum ensure_result r;
	struct timespec checked;
	time_t last_said = 0, now;
	long gap;
	int fd, n, period;

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
		r = watch_check(path, &ws, msg, sizeof(msg));
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
		 * every port-25 flow waits for the next check; busy: the
		 * rules are gone until the daemon answers */
		period = ws.refused || r == ENSURE_BUSY ? WATCH_REFUSED_PERIOD_S :
		    WATCH_PERIOD_S;
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

/*
 * `rules stop` with fail_mode = closed: the rules stay, so that port-25
 * flows are refused while mxguard is down.  But only the file's own set
 * refuses: the one in place may be another (the daemon ran with
 * fail_mode = open and the file was switched to closed, which a reload
 * refuses: it takes this very restart), whose guard refuses nothing, and
 * with no daemon on the queue every flow would go direct, for as long as
 * the daemon stays down (a start that fails on the edited file: for
 * good).  So a set in place that is not the file's whole set (nor the
 * refusal set) is replaced by the file's, or by the refusal set if that
 * cannot be installed.  (The watch cannot: with no daemon it does
 * nothing.)
 */
static int
rules_stop_closed(const struct config *cfg)
{
	struct rbuf missing = { 0 };
	char err[1024] = "";
	int st, broken, rc = 0;

	st = rules_state(cfg, &missing, &broken, err, sizeof(err));
	/* none in place: removed on purpose (`rules remove`, which the
	 * documentation gives for taking mxguard out of the path) */
	if (st == RULES_ST_PARTIAL || st == -1) {
		if (st == -1)
			fprintf(stderr, "mxguard: rules stop: reading the "
			    "rules: %s\n", err);
		if (rules_install(cfg, err, sizeof(err)) == 0)
			fprintf(stderr, "mxguard: fail_mode = closed: the rules "
			    "in place were not this configuration's (%s): "
			    "installed its own\n", missing.s ? missing.s :
			    "could not be read");
		else if (rules_refuse_install(cfg, err, sizeof(err)) == 0)
			fprintf(stderr, "mxguard: fail_mode = closed: the rules "
			    "in place were not this configuration's, which "
			    "could not be installed: installed the refusal set "
			    "(every port-25 flow refused)\n");
		else {
			fprintf(stderr, "mxguard: rules stop: fail_mode = "
			    "closed, but neither this configuration's rules nor "
			    "the refusal set could be installed: %s\n", err);
			rc = 1;
		}
	}
	rbuf_free(&missing);
	if (st == RULES_ST_NONE)
		fprintf(stderr, "mxguard: fail_mode = closed, but no rules of "
		    "mxguard's are installed (\"mxguard rules remove\"?): "
		    "port-25 flows go direct\n");
	else if (rc == 0)
		fprintf(stderr, "mxguard: fail_mode = closed: rules stay "
		    "installed, new port-25 flows are refused until mxguard "
		    "runs again (\"mxguard rules remove\" lifts them)\n");
	return rc;
}

int
cmd_rules(int argc, char **argv, struct config *cfg,
    const struct cmd_opts *opts)
{
	char err[1024] = "", hb[600];
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
		/* the lists go into the rules: what an entry really bypasses
		 * is said here too, not only by -n and the daemon's load */
		if ((warn = config_host_bits_warning(cfg, hb, sizeof(hb))) !=
		    NULL)
			fprintf(stderr, "mxguard: rules install: WARNING: %s\n",
			    warn);
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
		if (strcmp(cfg->fail_mode, "closed") == 0)
			return rules_stop_closed(cfg);
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

/*
 * `rules stop` with a file that does not load: fail_mode is not known
 * from it, so the set in place tells.  One that refuses with no daemon
 * (a closed guard, the refusal set, or mxguard's rules with no guard to
 * tell by) stays, as stop keeps it with fail_mode = closed: removing it
 * would send every port-25 flow direct while mxguard is down, and the
 * start that follows fails on the same file.  A fail-open set is
 * removed, as stop removes it with fail_mode = open.  Rules that cannot
 * be read stay as they are.
 */
static int
rules_stop_unloaded(const struct config *defaults, const char *why)
{
	struct rules_inplace ip;
	char err[1024] = "";

	if (rules_inplace(&ip, err, sizeof(err)) == -1) {
		fprintf(stderr, "mxguard: rules stop: the configuration does "
		    "not load (%s), and the rules in place could not be read "
		    "(%s): left as they are\n", why, err);
		return 1;
	}
	if (!ip.any)
		return 0;
	if (ip.refuses) {
		fprintf(stderr, "mxguard: rules stop: the configuration does "
		    "not load (%s): the rules in place refuse port-25 flows "
		    "while mxguard is down (fail-closed): they stay installed "
		    "(\"mxguard rules remove\" lifts them)\n", why);
		return 0;
	}
	if (rules_remove(defaults, err, sizeof(err)) == -1) {
		fprintf(stderr, "mxguard: rules stop: %s\n", err);
		return 1;
	}
	fprintf(stderr, "mxguard: rules stop: the configuration does not load "
	    "(%s): the rules in place were fail-open: removed\n", why);
	return 0;
}

int
cmd_rules_unloaded(int argc, char **argv, const struct config *defaults,
    const struct cmd_opts *opts, const char *why)
{
	char err[1024] = "";
	const char *what = argc == 2 ? argv[1] : "";

	if (strcmp(what, "boot") == 0)
		return cmd_rules_refuse(defaults);
	if (strcmp(what, "remove") == 0) {
		/* by the names alone: the chains, the table, and the ip
		 * rules and routes of RULES_RT_PROTO */
		if (rules_remove(defaults, err, sizeof(err)) == -1) {
			fprintf(stderr, "mxguard: rules remove: %s\n", err);
			return 1;
		}
		fprintf(stderr, "mxguard: rules remove: the configuration does "
		    "not load (%s): mxguard's rules removed by their names "
		    "(chains MXGUARD_*, table inet mxguard, the TPROXY ip "
		    "rules and routes of proto %d)\n", why, RULES_RT_PROTO);
		return 0;
	}
	if (strcmp(what, "stop") == 0)
		return rules_stop_unloaded(defaults, why);
	if (strcmp(what, "watch") == 0)
		return rules_watch(opts->config_path);
	return -1;
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
