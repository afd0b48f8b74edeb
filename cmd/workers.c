/*
 * workers.c - the supervisor of `workers` processes (see workers.h).
 *
 * Order, as in the single process (cmd/run.c) and as in nginx's master:
 * as root the supervisor opens every worker's listeners (one socket per
 * `listen` address and worker, SO_REUSEPORT, so that the kernel spreads
 * connections over the workers and a worker's backlog survives its
 * death), the NFQUEUE and the control socket, then forks the workers.
 * A worker keeps its own listeners and the write end of its ready pipe,
 * closes every other inherited descriptor (the supervisor's epoll, queue,
 * control socket: never shared), opens its own event loop and policy
 * engine, drops privileges (cmd/priv.c) and only then opens its LMDB
 * environments (an MDB_env never crosses a fork; state_dir is `user`'s,
 * so neither a worker nor the supervisor opens a store as root), before
 * it accepts anything.
 *
 * The supervisor keeps root, like nginx's master or Postfix's master: it
 * must be able to start a worker again as root (listeners are inherited,
 * privileges are dropped and then the stores opened in the new worker).  It
 * reads nothing from the network but control requests (cmd/ctlreq.c,
 * fuzzed) and the kernel's queue messages.
 *
 * The supervisor owns:
 *   - the NFQUEUE (one queue, one owner): steering verdicts need the
 *     session count of the whole daemon, which it reads from the shared
 *     metrics; a worker's death never leaves a queue without a reader;
 *   - the control socket and metrics endpoint: the metrics of all
 *     workers summed (core/stats.c, struct stats_shm);
 *   - the workers' lives: a worker that exits is logged (event=worker-exit
 *     with its status), counted (mxguard_worker_exits_total) and started
 *     again (event=worker-start): at once after a long life, else after a
 *     back-off of 100 ms doubling to 30 s, so a crash loop does not spin.
 *     Its listeners stay open in the supervisor meanwhile: connections
 *     queued on them wait for the new worker; only its sessions under way
 *     are lost (the MTA retries those).  A worker that fails before it
 *     was ever ready, while the daemon was not yet, stops the daemon
 *     (exit 1): a configuration that cannot start must not loop.  One
 *     that was ready is started again even then: a session could
 *     otherwise stop the whole daemon (and with fail_mode = open, send
 *     every flow direct) while a sibling is slow to start.
 *   - signals: SIGHUP reloads its own configuration (for the queue and
 *     for workers started later), builds what a worker builds from files
 *     (config_verify(), as root) and, only when it took the new one,
 *     passes it to every worker (sigqueue() of WORKER_SIG_RELOAD, with
 *     the digest of the bytes it checked: a worker that reads others
 *     retires; one the signal cannot be queued to is told to retire,
 *     WORKER_SIG_RETIRE), which
 *     reloads its own; a worker that
 *     cannot (it reads the files as `user`: a file only root may read)
 *     retires and is started again on the supervisor's configuration
 *     (tls_policy_file as the supervisor read it: the bytes are in
 *     struct config), so the workers never run two configurations for
 *     long.  A reload
 *     the supervisor refuses reaches no worker.  SIGTERM/SIGINT drains:
 *     the queue is released, the
 *     supervisor closes its copies of the listeners, every worker drains,
 *     and the supervisor exits when the last worker has, or kills what is
 *     left drain_timeout + 5 s later.
 *   - systemd: READY=1 once every worker said it is up; the workers never
 *     talk to systemd (NOTIFY_SOCKET is removed from their environment).
 *     In systemd's place, the supervisor watches the workers: each writes
 *     a heartbeat into its metrics slot every WORKER_BEAT_MS; one silent
 *     for WORKER_HANG_MS is logged (event=worker-hung), killed and, like
 *     any dead worker, started again.  So is a worker started again
 *     later that is not ready WORKER_HANG_MS after its fork
 *     (event=worker-hung phase=start).
 */
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "cmd/control.h"
#include "cmd/workers.h"
#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/lsan_interface.h>
#endif
#include "core/ev.h"
#include "core/log.h"
#include "core/netaddr.h"
#include "core/sdnotify.h"
#include "core/stats.h"
#include "nfq/nfq.h"
#include "tlsproxy/proxy.h"

#define MAX_WORKERS	64
#define MAX_LFDS	16
#define MAX_RELOADS	64
#define LONG_LIFE_MS	10000	/* a worker that lived this long restarts
				 * at once */
#define BACKOFF_MIN_MS	100
#define BACKOFF_MAX_MS	30000
#define DRAIN_GRACE_MS	5000

struct sup;

struct wslot {
	struct sup	*sup;
	int		 slot;
	pid_t		 pid;		/* 0: not running */
	int		 fds[MAX_LFDS];
	int		 nfds;
	int		 rfd;		/* read end of its ready pipe */
	int		 ready;
	uint64_t	 started_ms;
	int		 fails;		/* short lives in a row */
	int		 killed;	/* hung: SIGKILL sent */
	struct ev_timer	*restart;
};

struct sup {
	struct ev_loop		*loop;
	const struct cmd_opts	*opts;
	struct config		*cfg;
	struct config		*old[MAX_RELOADS];	/* replaced */
	int			 nold;
	const struct config	*loaded;	/* main.c's, freed there */
	struct wslot		 w[MAX_WORKERS];
	int			 n;
	struct stats_shm	*shm;
	struct nfq		*nfq;
	struct control		*control;
	int			 sigfd;
	int			 draining;
	int			 announced;	/* every worker was up once */
	int			 rc;
	struct ev_timer		*deadline;
	struct ev_timer		*watchdog;
	uint64_t		 watchdog_ms;
	struct ev_timer		*hang;		/* heartbeat check */
	uint64_t		 hang_due;	/* when it should run */
	struct stat_ctr		*st_exits;
	struct stat_ctr		*st_live;
};

int
workers_count(const struct config *cfg)
{
	cpu_set_t set;
	int n = cfg->workers;

	if (n == 0) {
		n = sched_getaffinity(0, sizeof(set), &set) == 0 ?
		    CPU_COUNT(&set) : (int)sysconf(_SC_NPROCESSORS_ONLN);
		if (n < 1)
			n = 1;
	}
	return n > MAX_WORKERS ? MAX_WORKERS : n;
}

int
worker_started(const struct worker_info *w)
{
	char c = 'R';

	/* after the drop: a change of credentials clears PDEATHSIG */
	(void)prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0);
	if (getppid() != w->parent) {
		log_err("event=fatal worker=%d error=\"the supervisor is gone\"",
		    w->slot);
		return -1;
	}
	log_info("event=worker-ready worker=%d pid=%ld", w->slot,
	    (long)getpid());
	while (write(w->readyfd, &c, 1) == -1 && errno == EINTR)
		;
	return 0;
}

static int
live_workers(const struct sup *s)
{
	int i, n = 0;

	for (i = 0; i < s->n; i++)
		if (s->w[i].pid > 0)
			n++;
	return n;
}

static int64_t
sessions(const struct sup *s)
{
	return stats_shm_sum(s->shm, "mxguard_sessions_active");
}

/* For nfq: the daemon is full when all its workers' sessions together
 * reach max_sessions (the limit each worker enforces, too), each worker
 * counted for at most its share (max_sessions / workers, rounded up).  A
 * worker may be compromised, and "full" is what fail_mode = open turns
 * into flows going direct: one slot's word alone must not say it.  A
 * worker that truly holds more than its share makes the daemon look less
 * full than it is; new flows are then still diverted, and a worker
 * refuses them with 421 (the MTA retries), never sends them direct. */
static int
saturated(void *arg)
{
	struct sup *s = arg;
	int64_t share = (s->cfg->max_sessions + s->n - 1) / s->n;

	return stats_shm_sum_capped(s->shm, "mxguard_sessions_active",
	    share) >= s->cfg->max_sessions;
}

/* Closes every descriptor from 3 up but those in keep (ascending). */
static void
close_all_but(const int *keep, int nkeep)
{
	unsigned int lo = 3;
	int i;

	for (i = 0; i < nkeep; i++) {
		if (keep[i] < (int)lo)
			continue;
		if ((unsigned int)keep[i] > lo)
			(void)close_range(lo, (unsigned int)keep[i] - 1, 0);
		lo = (unsigned int)keep[i] + 1;
	}
	(void)close_range(lo, ~0U, 0);
}

static int
int_cmp(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

/* The child side of a fork: never returns. */
static void
worker_main(struct sup *s, struct wslot *ws, int readyfd, pid_t parent)
{
	struct worker_info wi;
	int keep[MAX_LFDS + 1], nkeep = 0, i, rc;
	sigset_t none;

	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	for (i = 0; i < ws->nfds; i++)
		keep[nkeep++] = ws->fds[i];
	keep[nkeep++] = readyfd;
	qsort(keep, (size_t)nkeep, sizeof(keep[0]), int_cmp);
	close_all_but(keep, nkeep);
	closelog();	/* its descriptor went above; log_init opens again */
	stats_shm_attach(s->shm, ws->slot);
	sigemptyset(&none);
	sigaddset(&none, SIGCHLD);
	sigprocmask(SIG_UNBLOCK, &none, NULL);
	memset(&wi, 0, sizeof(wi));
	wi.slot = ws->slot;
	wi.fds = ws->fds;
	wi.nfds = ws->nfds;
	wi.readyfd = readyfd;
	wi.parent = parent;
	wi.shm = s->shm;
	rc = run_daemon(s->cfg, s->opts, &wi);
	fflush(stderr);
#ifdef __SANITIZE_ADDRESS__
	/* _exit() skips LeakSanitizer's check at exit (an atexit hook), so
	 * no worker was ever checked: the ASan runs of the tests saw the
	 * supervisor only.  A leak ends the worker with a report. */
	__lsan_do_leak_check();
#endif
	_exit(rc);
}

static void ready_cb(int, int, void *);

static int
worker_fork(struct sup *s, struct wslot *ws)
{
	int p[2];
	pid_t pid, parent = getpid();

	if (pipe2(p, O_CLOEXEC) == -1) {
		log_err("event=worker-start-failed worker=%d error=\"pipe: %s\"",
		    ws->slot, strerror(errno));
		return -1;
	}
	fflush(stderr);
	if ((pid = fork()) == -1) {
		log_err("event=worker-start-failed worker=%d error=\"fork: %s\"",
		    ws->slot, strerror(errno));
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid == 0) {
		close(p[0]);
		worker_main(s, ws, p[1], parent);
	}
	close(p[1]);
	ws->pid = pid;
	ws->rfd = p[0];
	ws->ready = 0;
	ws->killed = 0;
	ws->started_ms = ev_now(s->loop);
	(void)fcntl(ws->rfd, F_SETFL, O_NONBLOCK);
	if (ev_fd_set(s->loop, ws->rfd, EV_READ, ready_cb, ws) == -1)
		log_warn("event=worker-watch-failed worker=%d error=\"%s\"",
		    ws->slot, strerror(errno));
	stats_set(s->st_live, live_workers(s));
	log_info("event=worker-start worker=%d pid=%ld", ws->slot, (long)pid);
	return 0;
}

static void
close_ready(struct wslot *ws)
{
	if (ws->rfd == -1)
		return;
	ev_fd_del(ws->sup->loop, ws->rfd);
	close(ws->rfd);
	ws->rfd = -1;
}

static void
ready_cb(int fd, int events, void *arg)
{
	struct wslot *ws = arg;
	struct sup *s = ws->sup;
	char buf[16];
	ssize_t n;
	int i;

	while ((n = read(fd, buf, sizeof(buf))) == -1 && errno == EINTR)
		;
	if (n == -1 && errno == EAGAIN)
		return;
	if (n <= 0) {			/* the worker's end closed */
		close_ready(ws);
		return;
	}
	ws->ready = 1;
	if (s->announced)
		return;
	for (i = 0; i < s->n; i++)
		if (!s->w[i].ready)
			return;
	s->announced = 1;
	sd_notifyf("READY=1\nSTATUS=relaying, %d workers", s->n);
	log_info("event=started pid=%ld workers=%d openssl=\"%s\"",
	    (long)getpid(), s->n, OpenSSL_version(OPENSSL_VERSION));
}

static void
restart_cb(void *arg)
{
	struct wslot *ws = arg;
	struct sup *s = ws->sup;

	if (s->draining || ws->pid > 0)
		return;
	if (worker_fork(s, ws) == -1)
		ev_timer_arm(ws->restart, BACKOFF_MAX_MS);
}

static void
close_listeners(struct sup *s)
{
	int i, j;

	for (i = 0; i < s->n; i++) {
		for (j = 0; j < s->w[i].nfds; j++)
			close(s->w[i].fds[j]);
		s->w[i].nfds = 0;
	}
}

/*
 * Signals worker i.  A failure is logged: the worker then goes on as it
 * was (a reload not applied, a drain or kill not done).  Under a
 * capability bounding set without CAP_KILL a root supervisor cannot
 * signal workers that dropped to another user (systemd/mxguard.service
 * keeps CAP_KILL for this).
 */
static int
signal_worker(struct sup *s, int i, int sig)
{
	if (s->w[i].pid <= 0 || kill(s->w[i].pid, sig) == 0)
		return 0;
	log_err("event=worker-signal-failed worker=%d pid=%ld signal=%s "
	    "error=\"%s\"", i, (long)s->w[i].pid, sigabbrev_np(sig),
	    strerror(errno));
	return -1;
}

/* WORKER_SIG_RELOAD with the digest of the configuration the supervisor
 * checked: a worker that reads other bytes (the file changed since)
 * retires rather than run a configuration nobody checked beside the
 * others.  (Not SIGHUP: see workers.h.)  One that could not be queued
 * (EAGAIN: the signal queue of the workers' user is full) is told to
 * retire instead (WORKER_SIG_RETIRE), so that it does not go on with the
 * configuration this reload replaced. */
static int
reload_worker(struct sup *s, int i)
{
	union sigval v;
	int saved;

	if (s->w[i].pid <= 0)
		return 0;
	v.sival_int = (int)config_digest32(s->cfg);
	if (sigqueue(s->w[i].pid, WORKER_SIG_RELOAD, v) == 0)
		return 0;
	saved = errno;
	log_err("event=worker-signal-failed worker=%d pid=%ld signal=RTMIN+1 "
	    "error=\"%s\"", i, (long)s->w[i].pid, strerror(saved));
	if (saved == ESRCH)
		return -1;	/* gone: reaped, then started on s->cfg */
	if (signal_worker(s, i, WORKER_SIG_RETIRE) == 0)
		log_warn("event=worker-retire-asked worker=%d pid=%ld "
		    "reason=reload-not-delivered note=\"started again on "
		    "the new configuration once its sessions are done\"", i,
		    (long)s->w[i].pid);
	return -1;
}

static void
start_drain(struct sup *s)
{
	int i;

	if (s->draining)
		return;
	s->draining = 1;
	sd_notifyf("STOPPING=1");
	log_info("event=draining sessions=%lld timeout_ms=%llu workers=%d",
	    (long long)sessions(s), (unsigned long long)s->cfg->drain_timeout,
	    live_workers(s));
	/* new flows now meet the rules' fail mode, not a dead listener */
	nfq_close(s->nfq);
	s->nfq = NULL;
	close_listeners(s);
	for (i = 0; i < s->n; i++) {
		ev_timer_stop(s->w[i].restart);
		signal_worker(s, i, SIGTERM);
	}
	if (live_workers(s) == 0) {
		ev_loop_stop(s->loop);
		return;
	}
	ev_timer_arm(s->deadline, s->cfg->drain_timeout + DRAIN_GRACE_MS);
}

static void
deadline_cb(void *arg)
{
	struct sup *s = arg;
	int i;

	log_warn("event=drain-kill workers=%d note=\"workers still running "
	    "past drain_timeout\"", live_workers(s));
	for (i = 0; i < s->n; i++)
		signal_worker(s, i, SIGKILL);
}

static void
reload(struct sup *s)
{
	struct config *ncfg;
	char err[512], q[1024];
	int i, committed = 0;

	/* as each worker does: a daemon on its way out takes no new
	 * configuration, and systemd, told STOPPING=1, hears no READY=1 */
	if (s->draining) {
		log_info("event=reload-ignored reason=draining");
		return;
	}
	/* before every worker is up systemd has heard no READY=1 yet, and
	 * must not hear one from a reload: ready_cb() says it */
	if (s->announced)
		sd_notifyf("RELOADING=1");
	log_info("event=reloading workers=%d", live_workers(s));
	if (s->nold == MAX_RELOADS)
		log_err("event=reload-failed error=\"too many reloads; "
		    "restart mxguard\"");
	else if ((ncfg = config_load(s->opts->config_path, err,
	    sizeof(err))) == NULL)
		log_err("event=reload-failed error=%s",
		    log_q(q, sizeof(q), err));
	else if (reload_check(s->cfg, ncfg, err, sizeof(err)) == -1 ||
	    config_verify(ncfg, err, sizeof(err)) == -1) {
		log_err("event=reload-failed error=%s",
		    log_q(q, sizeof(q), err));
		config_free(ncfg);
	} else if (reload_start_keys(s->cfg, ncfg, s->n, 1) == -1) {
		log_err("event=reload-failed error=%s",
		    log_q(q, sizeof(q), "out of memory"));
		config_free(ncfg);
	} else {
		if (s->opts->debug)
			ncfg->log_level = LOG_LVL_DEBUG;
		if (s->nfq && nfq_reconfigure(s->nfq, ncfg, err, sizeof(err)) ==
		    -1) {
			log_err("event=reload-failed error=%s",
			    log_q(q, sizeof(q), err));
			s->old[s->nold++] = ncfg;
		} else {
			committed = 1;
			log_set_level(ncfg->log_level);
			/* for the workers started from here on (config_load()
			 * checked the list) */
			(void)netaddr_set_nat64(&ncfg->nat64_prefix, err,
			    sizeof(err));
			log_info("event=reload-checked config=%s digest=%08x",
			    log_q(q, sizeof(q), s->opts->config_path ?
			    s->opts->config_path : "(defaults)"),
			    config_digest32(ncfg));
			config_warnings_log(ncfg);
			s->old[s->nold++] = s->cfg;
			s->cfg = ncfg;
			control_set_config(s->control,
			    config_digest32(ncfg));
			/* nothing here keeps a replaced one (the queue and
			 * the control socket copied what they need; each
			 * worker has its own copy): free them, or every
			 * reload would keep one until MAX_RELOADS refuses */
			for (i = 0; i < s->nold; i++)
				if (s->old[i] != s->loaded)
					config_free(s->old[i]);
			s->nold = 0;
		}
	}
	/* each worker reloads itself, and says so; only a configuration
	 * the supervisor took: a worker started again later runs the
	 * supervisor's, so the workers never split between two (a worker
	 * that cannot apply this one retires and is started on it) */
	if (committed)
		for (i = 0; i < s->n; i++)
			reload_worker(s, i);
	if (s->announced)
		sd_notifyf("READY=1");
}

static void
status_str(int st, char *buf, size_t sz)
{
	if (WIFEXITED(st))
		snprintf(buf, sz, "exit:%d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(buf, sz, "signal:%d", WTERMSIG(st));
	else
		snprintf(buf, sz, "0x%x", st);
}

static void
reap(struct sup *s)
{
	struct wslot *ws;
	char sts[32];
	uint64_t lived, delay;
	pid_t pid;
	int st, i, was_ready;

	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		for (ws = NULL, i = 0; i < s->n; i++)
			if (s->w[i].pid == pid)
				ws = &s->w[i];
		if (ws == NULL)
			continue;
		status_str(st, sts, sizeof(sts));
		lived = ev_now(s->loop) - ws->started_ms;
		ws->pid = 0;
		/* not up until its successor says so: the daemon is not
		 * announced on a slot whose worker is dead */
		was_ready = ws->ready;
		ws->ready = 0;
		close_ready(ws);
		/* its counters live on in the totals; then the slot is free */
		stats_shm_retire(s->shm, ws->slot);
		stats_set(s->st_live, live_workers(s));
		if (s->draining) {
			log_info("event=worker-exit worker=%d pid=%ld status=%s",
			    ws->slot, (long)pid, sts);
			continue;
		}
		if (WIFEXITED(st) && WEXITSTATUS(st) == WORKER_EXIT_RETIRE) {
			/* planned: it could not apply the reload, also one
			 * that came while the others were still starting
			 * (no failure to start: its successor runs the
			 * configuration the supervisor took) */
			log_info("event=worker-retired worker=%d pid=%ld "
			    "lived_ms=%llu", ws->slot, (long)pid,
			    (unsigned long long)lived);
			ev_timer_arm(ws->restart, 0);
			continue;
		}
		stats_add(s->st_exits, 1);
		log_warn("event=worker-exit worker=%d pid=%ld status=%s "
		    "lived_ms=%llu", ws->slot, (long)pid, sts,
		    (unsigned long long)lived);
		/* one that never got up: the configuration cannot start,
		 * and must not loop.  One that was up (and serving) while a
		 * sibling still starts died as any worker may later, from
		 * what it was sent: started again, the daemon goes on */
		if (!s->announced && !was_ready) {
			log_err("event=fatal error=\"worker %d failed while "
			    "starting\"", ws->slot);
			s->rc = 1;
			start_drain(s);
			continue;
		}
		if (lived >= LONG_LIFE_MS)
			ws->fails = 0;
		else if (ws->fails < 16)
			ws->fails++;
		delay = ws->fails == 0 ? 0 : (uint64_t)BACKOFF_MIN_MS <<
		    (ws->fails - 1);
		if (delay > BACKOFF_MAX_MS)
			delay = BACKOFF_MAX_MS;
		log_info("event=worker-restart worker=%d in_ms=%llu",
		    ws->slot, (unsigned long long)delay);
		ev_timer_arm(ws->restart, delay);
	}
	if (s->draining && live_workers(s) == 0) {
		log_info("event=drained");
		ev_loop_stop(s->loop);
	}
}

static void
signal_cb(int fd, int events, void *arg)
{
	struct sup *s = arg;
	struct signalfd_siginfo si;

	while (read(fd, &si, sizeof(si)) == sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGTERM:
		case SIGINT:
			start_drain(s);
			break;
		case SIGHUP:
			reload(s);
			break;
		case SIGCHLD:
			reap(s);
			break;
		}
	}
}

static void
hang_arm(struct sup *s)
{
	s->hang_due = ev_now(s->loop) + WORKER_BEAT_MS;
	ev_timer_arm(s->hang, WORKER_BEAT_MS);
}

/* A worker whose loop stopped turning (no heartbeat for WORKER_HANG_MS)
 * serves nobody and would never exit: killed, and so started again.
 * The time this check ran late is the time the supervisor itself was
 * held up (a stopped process group, a host paused or overloaded): the
 * workers were most likely held up with it, and that silence is not
 * counted against them, or every worker was killed at the resume. */
static void
hang_cb(void *arg)
{
	struct sup *s = arg;
	uint64_t now = ev_now(s->loop), last, late, silent;
	int i;

	late = now > s->hang_due ? now - s->hang_due : 0;
	if (late > WORKER_BEAT_MS)
		log_warn("event=supervisor-late late_ms=%llu note=\"the "
		    "supervisor was held up (a stopped process, a paused or "
		    "overloaded host); that time is not counted against the "
		    "workers' heartbeats\"", (unsigned long long)late);
	for (i = 0; i < s->n && !s->draining; i++) {
		struct wslot *ws = &s->w[i];

		/* started again after the daemon was up, and never ready:
		 * stuck before its loop runs (NSS in getpwnam, a store's
		 * writer lock), while the kernel queues 1/N of the new
		 * connections on its listeners.  (At the first start
		 * systemd's start timeout decides.) */
		if (ws->pid > 0 && !ws->ready && !ws->killed &&
		    s->announced && now >= ws->started_ms &&
		    now - ws->started_ms >= WORKER_HANG_MS + late) {
			log_err("event=worker-hung worker=%d pid=%ld "
			    "phase=start not_ready_ms=%llu note=\"killed, to "
			    "be started again\"", i, (long)ws->pid,
			    (unsigned long long)(now - ws->started_ms));
			if (signal_worker(s, i, SIGKILL) == 0)
				ws->killed = 1;
			continue;
		}
		if (ws->pid <= 0 || !ws->ready || ws->killed ||
		    (last = stats_shm_last_beat(s->shm, i)) == 0 ||
		    now < last)
			continue;
		silent = now - last;
		if (silent < WORKER_HANG_MS + late)
			continue;
		log_err("event=worker-hung worker=%d pid=%ld silent_ms=%llu "
		    "note=\"killed, to be started again\"", i, (long)ws->pid,
		    (unsigned long long)silent);
		if (signal_worker(s, i, SIGKILL) == 0)
			ws->killed = 1;	/* else tried again at the next beat */
	}
	hang_arm(s);
}

static void
watchdog_cb(void *arg)
{
	struct sup *s = arg;

	sd_notifyf("WATCHDOG=1");
	ev_timer_arm(s->watchdog, s->watchdog_ms);
}

int
workers_run(struct config *cfg, const struct cmd_opts *opts)
{
	struct sup *s;
	sigset_t mask;
	char err[512], q[1024];
	int i, j, rc = 1;

	log_init("mxguard", strcmp(cfg->log, "syslog") == 0, cfg->log_level);
	signal(SIGPIPE, SIG_IGN);
	config_warnings_log(cfg);
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		log_err("event=fatal error=\"out of memory\"");
		return 1;
	}
	s->opts = opts;
	s->cfg = cfg;
	s->loaded = cfg;
	s->sigfd = -1;
	s->n = workers_count(cfg);
	for (i = 0; i < MAX_WORKERS; i++) {
		s->w[i].sup = s;
		s->w[i].slot = i;
		s->w[i].rfd = -1;
	}
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGCHLD);
	/* blocked before the forks: a worker's reload waits for its loop */
	sigaddset(&mask, WORKER_SIG_RELOAD);
	sigaddset(&mask, WORKER_SIG_RETIRE);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	if ((s->loop = ev_loop_new()) == NULL ||
	    (s->sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC)) ==
	    -1 || ev_fd_set(s->loop, s->sigfd, EV_READ, signal_cb, s) == -1) {
		log_err("event=fatal error=\"event loop, signalfd: %s\"",
		    strerror(errno));
		goto fail;
	}
	s->deadline = ev_timer_new(s->loop, deadline_cb, s);
	s->watchdog = ev_timer_new(s->loop, watchdog_cb, s);
	s->hang = ev_timer_new(s->loop, hang_cb, s);
	if (s->deadline == NULL || s->watchdog == NULL || s->hang == NULL) {
		log_err("event=fatal error=\"out of memory\"");
		goto fail;
	}
	/* not only memory: each slot is a memfd reopened through /proc */
	if ((s->shm = stats_shm_new(s->n)) == NULL) {
		log_err("event=fatal what=\"shared metrics\" error=\"%s\"",
		    strerror(errno));
		goto fail;
	}
	for (i = 0; i < s->n; i++)
		if ((s->w[i].restart = ev_timer_new(s->loop, restart_cb,
		    &s->w[i])) == NULL) {
			log_err("event=fatal error=\"out of memory\"");
			goto fail;
		}

	/* privileged part: every worker's listeners, the queue, control */
	for (i = 0; i < s->n; i++)
		if ((s->w[i].nfds = proxy_listen(cfg, s->w[i].fds, MAX_LFDS,
		    err, sizeof(err))) == -1) {
			s->w[i].nfds = 0;
			log_err("event=fatal error=%s",
			    log_q(q, sizeof(q), err));
			goto fail;
		}
	for (j = 0; j < cfg->listen.n; j++)
		log_info("event=listening addr=%s mode=%s workers=%d",
		    cfg->listen.v[j], cfg->listen_mode, s->n);
	stats_shm_supervise(s->shm);
	/* steering = nfqueue: the rules send every new flow to the queue,
	 * and without a reader there no flow is ever intercepted (fail
	 * open: all go direct; closed: none goes).  A daemon that says it
	 * is running then would hide that: it stops instead. */
	if (strcmp(cfg->steering, "nfqueue") == 0 &&
	    (s->nfq = nfq_open(s->loop, cfg, saturated, s, err,
	    sizeof(err))) == NULL) {
		log_err("event=fatal what=\"opening NFQUEUE %d (steering = "
		    "nfqueue)\" error=%s", cfg->nfqueue_num,
		    log_q(q, sizeof(q), err));
		goto fail;
	}
	if ((s->control = control_open(s->loop, cfg, err, sizeof(err))) ==
	    NULL)
		log_warn("event=control-unavailable error=%s",
		    log_q(q, sizeof(q), err));
	else {
		control_set_workers(s->control, s->shm, s->n);
		/* where the commands find this daemon once the file's
		 * paths are edited (cmd.h) */
		if (cmd_record_daemon(s->opts->config_path, cfg, err,
		    sizeof(err)) == -1)
			log_warn("event=daemon-record-failed error=%s",
			    log_q(q, sizeof(q), err));
	}
	process_metrics();
	stats_set(stats_gauge("mxguard_workers_configured",
	    "Worker processes the daemon runs (config workers)"), s->n);
	s->st_live = stats_gauge("mxguard_workers",
	    "Worker processes running now");
	s->st_exits = stats_counter("mxguard_worker_exits_total",
	    "Worker processes that exited unasked (each was restarted)");

	for (i = 0; i < s->n; i++)
		if (worker_fork(s, &s->w[i]) == -1)
			goto fail;
	if ((s->watchdog_ms = sd_watchdog_interval_ms()) > 0)
		ev_timer_arm(s->watchdog, s->watchdog_ms);
	hang_arm(s);
	if (ev_loop_run(s->loop) == -1) {
		log_err("event=fatal error=\"event loop: %s\"",
		    strerror(errno));
		goto fail;
	}
	log_info("event=stopped");
	rc = s->rc;
fail:
	if (live_workers(s) > 0) {
		/* a failure after some forks: take them down with us */
		for (i = 0; i < s->n; i++)
			signal_worker(s, i, SIGKILL);
		while (waitpid(-1, NULL, 0) > 0)
			;
	}
	close_listeners(s);
	nfq_close(s->nfq);
	control_close(s->control);
	for (i = 0; i < s->n; i++) {
		close_ready(&s->w[i]);
		ev_timer_free(s->w[i].restart);
	}
	ev_timer_free(s->deadline);
	ev_timer_free(s->watchdog);
	ev_timer_free(s->hang);
	if (s->sigfd != -1)
		close(s->sigfd);
	ev_loop_free(s->loop);
	for (i = 0; i < s->nold; i++)
		if (s->old[i] != cfg)
			config_free(s->old[i]);
	if (s->cfg != cfg)
		config_free(s->cfg);
	free(s);
	return rc;
}
