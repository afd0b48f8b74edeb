/*
 * run.c - the daemon: `mxguard run`.
 *
 * Order matters, as in relayd: everything that needs root is opened first
 * (listeners, NFQUEUE, the control socket), then privileges are dropped,
 * then the LMDB stores in state_dir are opened, then systemd hears
 * READY=1 and the loop runs.  The stores come after the drop because
 * state_dir belongs to the unprivileged `user`: root opening a file there
 * would follow whatever link a compromised process running as `user`
 * planted (history.mdb -> /etc/shadow), and would leave files `user`
 * cannot open.  The policy engine itself is made before the drop (the
 * proxy needs it), without its stores (policy_new_nostores()).
 *
 * Signals arrive through a signalfd, as one more fd in the loop:
 *   SIGTERM, SIGINT  drain: stop accepting, let sessions finish for up to
 *                    drain_timeout, then exit;
 *   SIGHUP           reload the configuration; sessions under way keep
 *                    running (a bad file is logged and ignored).  A
 *                    worker gets the supervisor's reload as
 *                    WORKER_SIG_RELOAD (SIGRTMIN+1, with the digest of
 *                    what the supervisor checked; cmd/workers.h); a
 *                    SIGHUP sent to it directly still reloads it.  The
 *                    reload applies whole or not at all (reload()).  A
 *                    worker that cannot apply a reload the supervisor
 *                    accepted (it reads the files as `user`, the
 *                    supervisor as root) retires: it drains and exits
 *                    with WORKER_EXIT_RETIRE, and the supervisor starts
 *                    it again on the new configuration, read as root.
 *                    So no worker goes on with a configuration the
 *                    others no longer run; nor one whose reload the
 *                    supervisor could not queue (WORKER_SIG_RETIRE).
 *
 * With tlsrpt_enable, a timer sends the TLSRPT reports that are due
 * (tlsproxy/report.c): after a random delay of up to tlsrpt_max_delay at
 * start, then every day after 00:00 UTC plus such a delay, so that
 * report receivers are not hit by every sender at midnight, and sooner
 * when a receiver that failed is due for another try (report_arm(): a run
 * parks a failed URI and a later run retries it, for up to 24 hours).
 * After each run, and after one that could not start, the counts older
 * than tlsrpt_retention days are pruned (report_prune()).
 * A configuration a reload replaced is freed at once (free_old()), but
 * for the one a TLSRPT run under way started with, kept until it ends.
 *
 * With `workers` above 1, cmd_run() hands over to the supervisor
 * (cmd/workers.c), which forks workers that each run run_daemon() with a
 * struct worker_info: its listeners come from the supervisor, the NFQUEUE
 * and the control socket stay with the supervisor, the policy engine is
 * made here after the fork, then privileges are dropped, then its stores
 * are opened (an MDB_env never crosses a fork).
 * Right after the drop, each worker and the single process install a
 * seccomp filter (core/sandbox.h): the capability kept for SO_MARK would
 * let a compromised one open raw and packet sockets and read or inject
 * into every TCP session on the host.  The supervisor, which forks and
 * signals workers as root, does not install it.
 * Only worker 0 runs the TLSRPT timer and the MTA-STS background refresh
 * (one of each per daemon, as before); every worker runs the resolver
 * self-check, whose word its own policy engine needs, and starts it again
 * at each reload it takes (the engine then asks the new resolver).
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>
#include <openssl/ssl.h>

#include "cmd/cmd.h"
#include "cmd/control.h"
#include "cmd/priv.h"
#include "cmd/workers.h"
#include "core/clock.h"
#include "core/ctstat.h"
#include "core/ev.h"
#include "core/io.h"
#include "core/log.h"
#include "core/netaddr.h"
#include "core/sandbox.h"
#include "core/sdnotify.h"
#include "core/stats.h"
#include "nfq/nfq.h"
#include "policy/dnscheck.h"
#include "policy/policy.h"
#include "policy/tlsrpt.h"
#include "tlsproxy/proxy.h"
#include "tlsproxy/report.h"
#include "tlsproxy/tls.h"


#define MAX_RELOADS 64

struct daemon {
	struct ev_loop		*loop;
	const struct cmd_opts	*opts;
	struct config		*cfg;		/* current */
	struct config		*old[MAX_RELOADS];	/* replaced */
	int			 nold;
	const struct config	*loaded;	/* main.c's, freed there */
	int			 partial;	/* the last reload failed
						 * after some parts took it
						 * (out of memory): exiting */
	int			 exit_rc;
	struct proxy		*proxy;
	struct policy		*policy;
	struct nfq		*nfq;
	struct control		*control;
	struct ev_timer		*drain_timer;
	struct ev_timer		*drain_deadline;
	struct ev_timer		*watchdog;
	uint64_t		 watchdog_ms;
	struct ev_timer		*beat;		/* workers: to the supervisor */
	struct ev_timer		*report_timer;	/* next TLSRPT run */
	struct ev_timer		*clock_timer;	/* the anchor's policy time
						 * kept (the one that saves) */
	struct report_run	*report;	/* the run under way */
	struct dnscheck		*dnscheck;	/* resolver self-check */
	int			 sigfd;
	int			 draining;
	int			 retiring;	/* a worker whose reload
						 * failed: exits to be started
						 * again on the new one */
	const struct worker_info *w;	/* NULL: the one process */
};

/* Workers but the first do not run the daemon-wide timers. */
static void
worker_config(const struct daemon *d, struct config *cfg)
{
	if (d->w != NULL && d->w->slot > 0)
		cfg->sts_refresh_interval = 0;
}

static int64_t
total_sessions(void *arg)
{
	return stats_shm_sum(arg, "mxguard_sessions_active");
}

static void report_schedule(struct daemon *, int);

/* The self-check's word goes to the engine, which notes in its verdicts
 * that DANE cannot apply while the resolver does not validate. */
static void
dns_checked(void *arg, int validating, const char *why)
{
	struct daemon *d = arg;

	(void)why;
	policy_set_resolver_validating(d->policy, validating);
}

/* DANE rests on the resolver's AD bit: say when it cannot (once per
 * daemon: the single process or worker 0; at start and at each reload
 * taken, as config_warnings_log()). */
static void
dns_servers_warn(const struct daemon *d, const struct config *cfg)
{
	const char *rs;
	char q[1024];
	int others;

	if (d->w != NULL && d->w->slot > 0)
		return;
	if ((rs = dnscheck_remote_server(cfg, NULL, &others)) != NULL)
		log_warn("event=dns-server-remote server=%s note=\"not a "
		    "loopback address: the AD bit of its answers is believed "
		    "as sent, and anyone on the path to it could forge it; "
		    "DANE wants a validating resolver on this host\"",
		    log_q(q, sizeof(q), rs));
	if (others > 0)
		log_warn("event=dns-servers-ignored count=%d note=\"only the "
		    "first resolver is asked: falling back to another when "
		    "it is slow would let an attacker who delays it choose a "
		    "resolver that may not validate\"", others);
}

/*
 * The resolver self-check, on cfg's resolver: at start, and again at each
 * reload the process took, since the engine then asks the resolver of the
 * new configuration (dns_servers, or resolv.conf read again).  A check
 * left on the old one would go on saying the resolver validates, in the
 * gauge and in the verdicts, while the engine's may not: DANE off with no
 * alert.  Until the new check's first round ends the engine's word is
 * "not known" (no note in verdicts); the gauge keeps the last round's.
 */
static void
dnscheck_start(struct daemon *d, const struct config *cfg)
{
	char err[512], q[1024];

	if (d->dnscheck != NULL) {
		dnscheck_free(d->dnscheck);
		d->dnscheck = NULL;
		policy_set_resolver_validating(d->policy, -1);
		if (cfg->dns_check_interval == 0)
			log_info("event=dns-check-off note=\"dns_check_interval "
			    "= 0: mxguard_dns_validating keeps its last value "
			    "until a restart\"");
	}
	if (cfg->dns_check_interval > 0 && (d->dnscheck = dnscheck_new(d->loop,
	    cfg, 0, 0, dns_checked, d, err, sizeof(err))) == NULL)
		log_warn("event=dns-check-unavailable error=%s",
		    log_q(q, sizeof(q), err));
}

/*
 * Frees the configurations reloads replaced, once nothing can use one:
 * every part of the daemon reads the current one (the last reload was
 * applied whole), but for a TLSRPT run under way, which keeps the
 * configuration it began with: that one stays (in old[]) until the run
 * ends, the others go.  Without this, every reload kept one, and after
 * MAX_RELOADS a reload was refused; keeping them all while a run went on
 * (up to REPORT_RUN_MS) refused every reload past the 64th of the run.
 */
static void
free_old(struct daemon *d)
{
	int i, n = 0;

	if (d->partial)
		return;
	for (i = 0; i < d->nold; i++) {
		if (d->report != NULL &&
		    d->old[i] == report_run_config(d->report))
			d->old[n++] = d->old[i];
		else if (d->old[i] != d->loaded && d->old[i] != d->cfg)
			config_free(d->old[i]);
	}
	d->nold = n;
}

int
reload_check(const struct config *cur, const struct config *ncfg,
    char *err, size_t errsz)
{
	const char *key;

	/* what nfq_reconfigure would refuse, refused before the proxy and
	 * the engine take the new configuration (no reload in part) */
	if (nfq_config_check(ncfg, err, errsz) == -1)
		return -1;
	if ((key = config_rules_key_changed(cur, ncfg)) != NULL) {
		/* a restart, not `rules install` first: rules for the new
		 * value while this daemon serves the old one would send flows
		 * where it does not listen (a new divert_port or DNAT target,
		 * which any local user may bind) */
		snprintf(err, errsz, "%s changed: the installed netfilter "
		    "rules depend on it; restart mxguard (its start installs "
		    "the rules)", key);
		return -1;
	}
	return 0;
}

/* The child of config_verify(): builds, reports on fd, returns its exit
 * status. */
static int
verify_build(const struct config *cfg, int fd)
{
	struct ev_loop *loop;
	struct policy *p;
	struct tls_ctx *t;
	char err[512];
	int rc = 1;

	if ((loop = ev_loop_new()) == NULL) {
		snprintf(err, sizeof(err), "checking the configuration: "
		    "event loop: %s", strerror(errno));
		goto fail;
	}
	/* the engine as a process starting on cfg makes it, without its
	 * stores (state_dir is checked when they open, after the drop):
	 * the override files, the CA store, the resolver, the Redis client
	 * and its TLS files; it connects nowhere before the loop runs.
	 * Address lines are judged by cfg's nat64_prefix, as such a process
	 * judges them (this child's own copy; config_load() checked it) */
	(void)netaddr_set_nat64(&cfg->nat64_prefix, err, sizeof(err));
	if ((p = policy_new_nostores(loop, cfg, err, sizeof(err))) == NULL)
		goto fail;
	policy_free(p);
	if ((t = tls_ctx_new(cfg, err, sizeof(err))) == NULL)
		goto fail;
	tls_ctx_free(t);
	rc = 0;
fail:
	if (rc != 0)
		(void)!write(fd, err, strnlen(err, sizeof(err)));
	ev_loop_free(loop);
	return rc;
}

void
config_warnings_log(const struct config *cfg)
{
	char q[1100];
	int i;

	for (i = 0; i < cfg->warnings.n; i++)
		log_warn("event=config-warning warning=%s",
		    log_q(q, sizeof(q), cfg->warnings.v[i]));
}

int
reload_start_keys(const struct config *cur, struct config *ncfg,
    int nrunning, int say)
{
	char keys[256], all[300], q[320];
	int n;

	n = config_start_keys_changed(cur, ncfg, keys, sizeof(keys));
	if (workers_count(ncfg) != nrunning) {
		snprintf(all, sizeof(all), "workers%s%s", n ? ", " : "", keys);
		n++;
	} else
		snprintf(all, sizeof(all), "%s", keys);
	/* read and accepted, yet not in effect: said, or the operator
	 * takes the reload for the change */
	if (say && n > 0)
		log_warn("event=reload-note keys=%s note=\"changed, but "
		    "applied at the next start only (systemctl restart)\"",
		    log_q(q, sizeof(q), all));
	return config_keep_start_keys(ncfg, cur);
}

/*
 * In a child process, so that nothing of the check stays in this one (a
 * gauge the Redis client sets, c-ares and OpenSSL state): the parent
 * waits for it, briefly blocking its loop, as a reload may.
 */
int
config_verify(const struct config *cfg, char *err, size_t errsz)
{
	size_t got = 0;
	ssize_t n;
	pid_t pid;
	int p[2], st = 0;

	if (pipe2(p, O_CLOEXEC) == -1) {
		snprintf(err, errsz, "checking the configuration: pipe: %s",
		    strerror(errno));
		return -1;
	}
	fflush(stderr);
	if ((pid = fork()) == -1) {
		snprintf(err, errsz, "checking the configuration: fork: %s",
		    strerror(errno));
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid == 0) {
		close(p[0]);
		stats_detach();
		_exit(verify_build(cfg, p[1]));
	}
	close(p[1]);
	while (got + 1 < errsz && ((n = read(p[0], err + got,
	    errsz - 1 - got)) > 0 || (n == -1 && errno == EINTR)))
		if (n > 0)
			got += (size_t)n;
	if (errsz > 0)
		err[got] = '\0';
	close(p[0]);
	/* this child only: the supervisor's reap of its workers (waitpid
	 * -1) runs from the loop, which waits for this */
	while (waitpid(pid, &st, 0) == -1 && errno == EINTR)
		;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	if (got == 0)
		snprintf(err, errsz, "checking the configuration: the check "
		    "process ended with status 0x%x", st);
	return -1;
}

static void start_drain(struct daemon *);

/*
 * The single process re-reads its files on SIGHUP as `user`: say at start
 * which of them it will not be able to read (a file only root may read),
 * rather than let the first reload fail.  Workers need no warning: one
 * that cannot read a file retires and is started again, as root.
 */
static void
reload_readable_check(const struct config *cfg, const char *config_path)
{
	const char *files[] = { config_path, cfg->tls_policy_file,
	    cfg->tls_ca_file, cfg->tls_cert_file, cfg->tls_key_file,
	    cfg->redis_tls_ca_file, cfg->redis_tls_cert_file,
	    cfg->redis_tls_key_file };
	char q[1024];
	size_t i;

	if (cfg->user == NULL || cfg->user[0] == '\0')
		return;
	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		if (files[i] == NULL || files[i][0] == '\0' ||
		    access(files[i], R_OK) == 0)
			continue;
		log_warn("event=reload-unreadable file=%s error=\"%s\" "
		    "note=\"this process runs as %s and re-reads the file on "
		    "a reload (SIGHUP), which will fail: make it readable by "
		    "that user's group (chgrp, chmod 0640), or restart "
		    "mxguard to apply a change\"", log_q(q, sizeof(q),
		    files[i]), strerror(errno), cfg->user);
	}
}

/*
 * A reload this process could not apply.  The single process goes on
 * with what it has.  A worker only gets the supervisor's reload
 * (WORKER_SIG_RELOAD) once the supervisor has loaded and checked the new
 * configuration as root, so a failure here is
 * the worker's own (a file `user` may not read, a resource): it retires
 * rather than go on with a configuration the others no longer run.
 */
static void
retire(struct daemon *d, const char *reason)
{
	if (d->w == NULL || d->retiring)
		return;
	log_warn("event=worker-retiring worker=%d reason=%s "
	    "note=\"the supervisor starts this worker again on the new "
	    "configuration once its sessions are done; they take no new "
	    "transaction or recipient (421)\"", d->w->slot, reason);
	d->retiring = 1;
	if (d->proxy != NULL)
		proxy_retire(d->proxy);
	start_drain(d);
}

static void
reload_failed(struct daemon *d, const char *err)
{
	char q[1024];

	log_err("event=reload-failed error=%s", log_q(q, sizeof(q), err));
	retire(d, "reload-failed");
}

/*
 * checked: a worker's reload that the supervisor asked for, with the
 * digest (config_digest32) of the bytes it loaded and checked as root.
 * The worker reads the files again (as `user`, and it must: the same
 * bytes may make different objects there); bytes that differ (the file
 * changed in between) are a configuration nobody checked, so the worker
 * retires and is started again on the supervisor's.
 */
static void
reload(struct daemon *d, int checked, uint32_t digest)
{
	struct config *ncfg;
	struct tls_ctx *tls;
	char err[512], q[1024];

	/* (before RELOADING=1: systemd, told STOPPING=1, must hear no
	 * READY=1 after it) */
	if (d->draining) {
		log_info("event=reload-ignored reason=draining");
		return;
	}
	sd_notifyf("RELOADING=1");
	if (d->nold == MAX_RELOADS) {
		reload_failed(d, "too many reloads; restart mxguard");
		goto done;
	}
	if ((ncfg = config_load(d->opts->config_path, err, sizeof(err))) ==
	    NULL) {
		reload_failed(d, err);
		goto done;
	}
	if (checked && config_digest32(ncfg) != digest) {
		if (ncfg->digest_errno != 0)
			snprintf(err, sizeof(err), "tls_policy_file %s: %s",
			    ncfg->tls_policy_file,
			    strerror(ncfg->digest_errno));
		else
			snprintf(err, sizeof(err), "the configuration changed "
			    "after the supervisor checked it (digest %08x, "
			    "the supervisor's %08x)", config_digest32(ncfg),
			    digest);
		config_free(ncfg);
		reload_failed(d, err);
		goto done;
	}
	if (reload_check(d->cfg, ncfg, err, sizeof(err)) == -1 ||
	    config_verify(ncfg, err, sizeof(err)) == -1) {
		config_free(ncfg);
		reload_failed(d, err);
		goto done;
	}
	/* (a worker's cfg has the values its process started with: the
	 * supervisor's, kept so at each reload) */
	if (reload_start_keys(d->cfg, ncfg, 1, d->w == NULL) == -1) {
		config_free(ncfg);
		reload_failed(d, "out of memory");
		goto done;
	}
	if (d->opts->debug)
		ncfg->log_level = LOG_LVL_DEBUG;
	worker_config(d, ncfg);
	/* applied whole or not at all: what can fail is made first (the
	 * proxy's TLS context; the engine makes its resolver, CA store and
	 * Redis client before it commits anything), so that a refusal
	 * leaves every part on the configuration it had, never a proxy on
	 * the new one beside an engine on the old */
	if ((tls = proxy_prepare(ncfg, err, sizeof(err))) == NULL) {
		config_free(ncfg);
		reload_failed(d, err);
		goto done;
	}
	/* tlsrpt_enable turned off: the engine closes the TLSRPT store,
	 * which a run under way writes its delivery state to (it would
	 * write freed memory); the run ends first, its URIs stay due */
	if (!ncfg->tlsrpt_enable && d->report != NULL) {
		report_cancel(d->report);
		d->report = NULL;
		log_info("event=tlsrpt-run-cancelled reason=reload "
		    "note=\"tlsrpt_enable = no\"");
	}
	/* the engine's override table is checked (two lines for one
	 * destination) by the nat64_prefix it will be judged by: ncfg's,
	 * back to the running one's if the engine refuses ncfg */
	(void)netaddr_set_nat64(&ncfg->nat64_prefix, err, sizeof(err));
	if (policy_reconfigure(d->policy, ncfg, err, sizeof(err)) == -1) {
		char e2[64];

		(void)netaddr_set_nat64(&d->cfg->nat64_prefix, e2,
		    sizeof(e2));
		tls_ctx_free(tls);
		config_free(ncfg);
		reload_failed(d, err);
		/* the store stayed open: the cancelled run's URIs later */
		if (d->report == NULL && !d->draining &&
		    !ev_timer_pending(d->report_timer))
			report_schedule(d, 0);
		goto done;
	}
	proxy_commit(d->proxy, ncfg, tls);
	/* the proxy and the engine judge by ncfg from here on, the
	 * partial reload below too (config_load() checked the list) */
	(void)netaddr_set_nat64(&ncfg->nat64_prefix, err, sizeof(err));
	if (d->nfq && nfq_reconfigure(d->nfq, ncfg, err, sizeof(err)) == -1) {
		/* past reload_check() only memory fails here, after the
		 * proxy and the engine took ncfg: rather than steer on the
		 * old lists, the process drains and exits 1 (systemd starts
		 * it again, on the file) */
		d->old[d->nold++] = ncfg;
		d->partial = 1;
		reload_failed(d, err);
		log_err("event=reload-partial note=\"the queue kept the "
		    "old configuration: draining to exit and be started "
		    "again\"");
		d->exit_rc = 1;
		start_drain(d);
		goto done;
	}
	log_set_level(ncfg->log_level);
	if (d->w == NULL)
		config_warnings_log(ncfg);
	/* the engine asks ncfg's resolver now: so does the check */
	dns_servers_warn(d, ncfg);
	dnscheck_start(d, ncfg);
	d->old[d->nold++] = d->cfg;
	d->cfg = ncfg;
	d->partial = 0;
	free_old(d);
	/* tlsrpt_enable turned on: the first run after a random delay */
	if (d->report == NULL && !ev_timer_pending(d->report_timer))
		report_schedule(d, 1);
	/* for `mxguard status` and the metrics (a worker: its slot, read
	 * by the supervisor) */
	control_set_config(d->control, config_digest32(ncfg));
	stats_shm_config(config_digest32(ncfg));
	log_info("event=reloaded config=%s digest=%08x", log_q(q, sizeof(q),
	    d->opts->config_path ? d->opts->config_path : "(defaults)"),
	    config_digest32(ncfg));
done:
	sd_notifyf("READY=1");
}

static void
drain_check(void *arg)
{
	struct daemon *d = arg;

	/* the upstream connections that said QUIT wait for their servers'
	 * close (io_linger, at most UPSTREAM_LINGER_MS) */
	if (proxy_sessions(d->proxy) == 0 && io_lingering() == 0) {
		log_info("event=drained");
		ev_loop_stop(d->loop);
		return;
	}
	ev_timer_arm(d->drain_timer, 100);
}

static void
drain_expired(void *arg)
{
	struct daemon *d = arg;

	log_warn("event=drain-timeout sessions=%d", proxy_sessions(d->proxy));
	ev_loop_stop(d->loop);
}

static void
start_drain(struct daemon *d)
{
	if (d->draining)
		return;
	d->draining = 1;
	sd_notifyf("STOPPING=1");
	log_info("event=draining sessions=%d timeout_ms=%llu",
	    proxy_sessions(d->proxy),
	    (unsigned long long)d->cfg->drain_timeout);
	proxy_drain(d->proxy);
	ev_timer_stop(d->report_timer);
	report_cancel(d->report);
	d->report = NULL;
	/* new flows now meet the rules' fail mode, not a dead listener */
	nfq_close(d->nfq);
	d->nfq = NULL;
	ev_timer_arm(d->drain_deadline, d->cfg->drain_timeout);
	drain_check(d);
}

/*
 * A reload is done once per batch of signals read, for the last one
 * asked: the supervisor's (WORKER_SIG_RELOAD, with the digest of what it
 * checked) or anyone's SIGHUP (no digest).  Two reloads from the
 * supervisor that a worker reads at once are one, checked against the
 * supervisor's last digest, never the first's.
 */
static void
signal_cb(int fd, int events, void *arg)
{
	struct daemon *d = arg;
	struct signalfd_siginfo si;
	int want = 0, checked = 0;
	uint32_t digest = 0;

	while (read(fd, &si, sizeof(si)) == sizeof(si)) {
		if (d->w != NULL && (int)si.ssi_signo == WORKER_SIG_RELOAD) {
			/* the supervisor's (sigqueue): with its digest */
			if (si.ssi_code != SI_QUEUE ||
			    (pid_t)si.ssi_pid != d->w->parent)
				continue;
			want = checked = 1;
			digest = (uint32_t)si.ssi_int;
			continue;
		}
		switch (si.ssi_signo) {
		case SIGTERM:
		case SIGINT:
			start_drain(d);
			break;
		case SIGHUP:
			want = 1;
			checked = 0;
			break;
		case WORKER_SIG_RETIRE:
			/* a reload the supervisor could not queue to us */
			if (d->w != NULL)
				retire(d, "reload-not-delivered");
			break;
		}
	}
	if (want)
		reload(d, checked, digest);
}

/* The daemon's TLSRPT runs (report_tick, report_arm; report.h). */
#define REPORT_BACKOFF_MS	(5 * 60 * 1000)	/* 5, 10, 20, 40 min, */
#define REPORT_BACKOFF_MAX_MS	(60 * 60 * 1000) /* then hourly, 24 h */
#define REPORT_TRY_MS		(2 * 60 * 1000)	/* one mailto try */
#define REPORT_JOB_MS		(15 * 60 * 1000) /* one report */
#define REPORT_RUN_MS		(60 * 60 * 1000) /* one run */
#define REPORT_RETRY_MIN_MS	(30 * 1000)	/* between runs, at least */

/* A random delay in [0, max_ms]. */
static uint64_t
jitter(uint64_t max_ms)
{
	uint64_t r = 0;

	if (max_ms == 0 || RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
		return 0;
	return r % (max_ms + 1);
}

/*
 * The next report run: at start after a random delay, then after the next
 * UTC midnight plus such a delay, or sooner when a parked URI's next try
 * (retry_ms, wall clock ms, 0 none) comes first: RFC 8460 section 5.5
 * retries for up to 24 hours, with backoff (tlsproxy/report.c).
 */
static void
report_arm(struct daemon *d, int at_start, int64_t retry_ms)
{
	uint64_t now = (uint64_t)time(NULL), delay;
	struct timespec ts;
	int64_t wall, in;
	int retry = 0;

	if (d->w != NULL && d->w->slot > 0)
		return;		/* worker 0 sends the reports */
	if (!d->cfg->tlsrpt_enable || policy_tlsrpt_store(d->policy) == NULL)
		return;
	delay = jitter(d->cfg->tlsrpt_max_delay);
	if (!at_start)		/* the next UTC midnight */
		delay += (86400 - now % 86400) * 1000;
	if (retry_ms > 0) {
		clock_gettime(CLOCK_REALTIME, &ts);
		wall = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
		in = retry_ms - wall;
		if (in < REPORT_RETRY_MIN_MS)
			in = REPORT_RETRY_MIN_MS;
		if ((uint64_t)in < delay) {
			delay = (uint64_t)in;
			retry = 1;
		}
	}
	/* not in the first seconds of a day, whose predecessor's last
	 * counts may still be on their way (report_day_grace()); a single
	 * process at its start has none on their way, but worker 0 starts
	 * again on its own (a crash, a reload it cannot read) while the
	 * other workers' are */
	if (!at_start || d->w != NULL)
		delay = report_day_grace(now, delay,
		    REPORT_DAY_GRACE_S(d->cfg));
	log_info("event=tlsrpt-scheduled in_s=%llu%s",
	    (unsigned long long)(delay / 1000), retry ? " reason=retry" : "");
	ev_timer_arm(d->report_timer, delay);
}

static void
report_schedule(struct daemon *d, int at_start)
{
	report_arm(d, at_start, 0);
}

/*
 * Drops the counts older than tlsrpt_retention days: after every run, and
 * after a run that could not start too (a CA file gone, the store
 * unreadable), or a store whose runs never start would keep every day,
 * whatever tlsrpt_retention says, until newcomers meet its map's bound.
 */
static void
report_prune(struct daemon *d)
{
	struct tlsrpt_store *st = policy_tlsrpt_store(d->policy);
	long n;

	if (st != NULL && (n = tlsrpt_prune(st, tlsrpt_day((int64_t)time(
	    NULL)), d->cfg->tlsrpt_retention)) > 0)
		log_info("event=tlsrpt-pruned records=%ld", n);
}

static void
report_done(void *arg, const struct report_totals *t)
{
	struct daemon *d = arg;

	d->report = NULL;
	free_old(d);
	report_prune(d);
	if (!d->draining)
		report_arm(d, 0, t->next_retry_ms);
}

/*
 * One run: every due report, at most one try per URI under a deadline
 * (report.h), so that the run ends in bounded time (it holds the
 * configuration it started with: free_old()) and one receiver cannot hold
 * up the others.  Failed URIs are parked and retried by later runs.
 */
static void
report_tick(void *arg)
{
	struct daemon *d = arg;
	struct tlsrpt_store *st = policy_tlsrpt_store(d->policy);
	struct report_opts o;
	char err[512];

	if (d->report != NULL || d->draining || st == NULL)
		return;
	memset(&o, 0, sizeof(o));
	o.backoff_ms = REPORT_BACKOFF_MS;
	o.backoff_max_ms = REPORT_BACKOFF_MAX_MS;
	o.try_ms = REPORT_TRY_MS;
	o.job_ms = REPORT_JOB_MS;
	o.run_ms = REPORT_RUN_MS;
	if ((d->report = report_run(d->loop, d->cfg, st, d->policy, &o,
	    report_done, d, err, sizeof(err))) == NULL) {
		log_warn("event=tlsrpt-run-failed error=\"%s\"", err);
		report_prune(d);
		report_schedule(d, 0);
	}
}

/* Workers: "this loop still turns", for the supervisor (workers.c). */
static void
beat_cb(void *arg)
{
	struct daemon *d = arg;

	stats_shm_beat(ev_now(d->loop));
	ev_timer_arm(d->beat, WORKER_BEAT_MS);
}

/* The policy time kept in the anchor file now and then: what a later
 * boot takes as its floor (core/clock.h). */
static void
clock_save(struct daemon *d)
{
	char err[512], q[600];

	if (clock_anchor_save(d->cfg->state_dir, err, sizeof(err)) == -1)
		log_warn("event=clock-anchor-unsaved error=%s note=\"a "
		    "restart takes the wall clock as it then is\"",
		    log_q(q, sizeof(q), err));
}

static void
clock_cb(void *arg)
{
	struct daemon *d = arg;

	clock_save(d);
	ev_timer_arm(d->clock_timer, (uint64_t)CLOCK_SAVE_EVERY_S * 1000);
}

static void
watchdog_cb(void *arg)
{
	struct daemon *d = arg;

	sd_notifyf("WATCHDOG=1");
	ev_timer_arm(d->watchdog, d->watchdog_ms);
}

int
cmd_run(int argc, char **argv, struct config *cfg,
    const struct cmd_opts *opts)
{
	if (workers_count(cfg) > 1)
		return workers_run(cfg, opts);
	return run_daemon(cfg, opts, NULL);
}

/* The usual Prometheus idioms, set by the process that serves the
 * metrics (the single process, or the supervisor): an info gauge of 1
 * whose labels say what runs, and the start time in Unix seconds. */
void
process_metrics(void)
{
	char name[200];

	snprintf(name, sizeof(name), "mxguard_build_info{version=\"%s\","
	    "openssl=\"%s\"}", MXG_VERSION,
	    OpenSSL_version(OPENSSL_VERSION_STRING));
	stats_set(stats_gauge(name, "The mxguard build running, and the "
	    "OpenSSL it uses"), 1);
	stats_set(stats_gauge("process_start_time_seconds", "Start time of "
	    "the process since the Unix epoch in seconds"),
	    (int64_t)time(NULL));
}

int
run_daemon(struct config *cfg, const struct cmd_opts *opts,
    const struct worker_info *w)
{
	struct daemon d;
	sigset_t mask;
	char err[512], q[1024];
	int rc = 1, i;

	memset(&d, 0, sizeof(d));
	d.opts = opts;
	d.cfg = cfg;
	d.loaded = cfg;
	d.sigfd = -1;
	d.w = w;
	worker_config(&d, cfg);
	/* a worker says what it runs in its metrics slot (the supervisor's
	 * `mxguard status`); no-op in the single process */
	stats_shm_config(config_digest32(cfg));
	log_init("mxguard", strcmp(cfg->log, "syslog") == 0, cfg->log_level);
	signal(SIGPIPE, SIG_IGN);
	/* Session buffers (64 KiB input, TLS output bursts) come and go with
	 * every message: fixed thresholds keep glibc from returning and
	 * re-asking the kernel for that memory each time (brk/mmap churn). */
	mallopt(M_MMAP_THRESHOLD, 512 * 1024);
	mallopt(M_TRIM_THRESHOLD, 8 * 1024 * 1024);
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	if (w != NULL) {
		sigaddset(&mask, WORKER_SIG_RELOAD);
		sigaddset(&mask, WORKER_SIG_RETIRE);
	}
	sigprocmask(SIG_BLOCK, &mask, NULL);

	if ((d.loop = ev_loop_new()) == NULL) {
		log_err("event=fatal error=\"creating the event loop: %s\"",
		    strerror(errno));
		goto fail;
	}
	if ((d.sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC)) == -1 ||
	    ev_fd_set(d.loop, d.sigfd, EV_READ, signal_cb, &d) == -1) {
		log_err("event=fatal error=\"signalfd: %s\"", strerror(errno));
		goto fail;
	}
	d.drain_timer = ev_timer_new(d.loop, drain_check, &d);
	d.drain_deadline = ev_timer_new(d.loop, drain_expired, &d);
	d.watchdog = ev_timer_new(d.loop, watchdog_cb, &d);
	d.report_timer = ev_timer_new(d.loop, report_tick, &d);
	if (!d.drain_timer || !d.drain_deadline || !d.watchdog ||
	    !d.report_timer) {
		log_err("event=fatal error=\"out of memory\"");
		goto fail;
	}

	/* privileged part; the engine's stores wait for the drop */
	if ((d.policy = policy_new_nostores(d.loop, cfg, err,
	    sizeof(err))) == NULL) {
		log_err("event=fatal what=\"starting the policy engine\" "
		    "error=%s", log_q(q, sizeof(q), err));
		goto fail;
	}
	if ((d.proxy = w != NULL ? proxy_new_fds(d.loop, cfg, d.policy,
	    w->fds, w->nfds, err, sizeof(err)) : proxy_new(d.loop, cfg,
	    d.policy, err, sizeof(err))) == NULL) {
		log_err("event=fatal error=%s", log_q(q, sizeof(q), err));
		goto fail;
	}
	if (w != NULL)
		proxy_set_total(d.proxy, total_sessions, w->shm);
	/* (as in workers.c: without the queue's reader no flow would be
	 * intercepted while the daemon said it runs) */
	if (w == NULL && strcmp(cfg->steering, "nfqueue") == 0 &&
	    (d.nfq = nfq_open(d.loop, cfg, proxy_saturated, d.proxy, err,
	    sizeof(err))) == NULL) {
		log_err("event=fatal what=\"opening NFQUEUE %d (steering = "
		    "nfqueue)\" error=%s", cfg->nfqueue_num,
		    log_q(q, sizeof(q), err));
		goto fail;
	}
	if (w == NULL && (d.control = control_open(d.loop, cfg, err,
	    sizeof(err))) == NULL)
		log_warn("event=control-unavailable error=%s",
		    log_q(q, sizeof(q), err));
	/* as root, where `user` cannot write: where the commands find this
	 * daemon once the file's paths are edited (cmd.h) */
	else if (w == NULL && cmd_record_daemon(opts->config_path, cfg, err,
	    sizeof(err)) == -1)
		log_warn("event=daemon-record-failed error=%s",
		    log_q(q, sizeof(q), err));
	/* conntrack's drop counters, evidence that a failed MTA-STS fetch
	 * or lookup was this host's doing (core/ctstat.h): opened as root,
	 * before any sandbox of the unprivileged process.  None without
	 * conntrack in this namespace (tried again when asked) */
	if (ctstat_open(NULL) == -1)
		log_info("event=conntrack-stat path=%s error=\"%s\"",
		    CTSTAT_PATH, strerror(errno));
	if (priv_drop(cfg, d.nfq != NULL, err, sizeof(err)) == -1) {
		log_err("event=fatal what=\"dropping privileges\" error=%s",
		    log_q(q, sizeof(q), err));
		goto fail;
	}
	/* no raw or packet socket with the capability kept (core/sandbox.h);
	 * a process that cannot have the filter does not run */
	if (sandbox_install(err, sizeof(err)) == -1) {
		log_err("event=fatal what=\"denying raw sockets (seccomp)\" "
		    "error=%s", log_q(q, sizeof(q), err));
		goto fail;
	}
	log_info("event=sandbox raw_sockets=denied packet_sockets=denied "
	    "io_uring=denied");
	/* as `user` now (priv_drop made state_dir): see the head comment */
	policy_open_stores(d.policy, cfg);
	/* this boot's policy clock, for a restart and the commands (the
	 * workers share the supervisor's: worker 0 keeps it) */
	if ((w == NULL || w->slot == 0) && *cfg->state_dir != '\0') {
		if ((d.clock_timer = ev_timer_new(d.loop, clock_cb,
		    &d)) == NULL) {
			log_err("event=fatal error=\"out of memory\"");
			goto fail;
		}
		clock_cb(&d);
	}
	if (w == NULL)
		reload_readable_check(cfg, opts->config_path);
	if (w == NULL)
		config_warnings_log(cfg);

	if (w != NULL) {
		if ((d.beat = ev_timer_new(d.loop, beat_cb, &d)) == NULL) {
			log_err("event=fatal error=\"out of memory\"");
			goto fail;
		}
		beat_cb(&d);
		if (worker_started(w) == -1)
			goto fail;
	}
	if ((d.watchdog_ms = sd_watchdog_interval_ms()) > 0)
		ev_timer_arm(d.watchdog, d.watchdog_ms);
	report_schedule(&d, 1);
	dns_servers_warn(&d, cfg);
	dnscheck_start(&d, cfg);
	if (w == NULL) {
		process_metrics();
		sd_notifyf("READY=1\nSTATUS=relaying");
		log_info("event=started pid=%ld openssl=\"%s\"",
		    (long)getpid(), OpenSSL_version(OPENSSL_VERSION));
	}
	if (ev_loop_run(d.loop) == -1) {
		log_err("event=fatal error=\"event loop: %s\"", strerror(errno));
		goto fail;
	}
	log_info("event=stopped");
	if (d.clock_timer != NULL)
		clock_save(&d);		/* the floor as late as it can be */
	rc = d.retiring ? WORKER_EXIT_RETIRE : d.exit_rc;
fail:
	dnscheck_free(d.dnscheck);
	report_cancel(d.report);
	ev_timer_free(d.report_timer);
	ev_timer_free(d.clock_timer);
	nfq_close(d.nfq);
	control_close(d.control);
	proxy_free(d.proxy);
	policy_free(d.policy);
	ev_timer_free(d.drain_timer);
	ev_timer_free(d.drain_deadline);
	ev_timer_free(d.watchdog);
	ev_timer_free(d.beat);
	if (d.sigfd != -1)
		close(d.sigfd);
	ev_loop_free(d.loop);
	/* main.c frees the configuration it loaded */
	for (i = 0; i < d.nold; i++)
		if (d.old[i] != cfg)
			config_free(d.old[i]);
	if (d.cfg != cfg)
		config_free(d.cfg);
	return rc;
}
