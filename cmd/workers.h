/*
 * workers.h - the daemon on several processes (config `workers`).
 *
 * workers_run() is the supervisor: it opens, as root, what needs root
 * (one set of SO_REUSEPORT listeners per worker, the NFQUEUE, the control
 * socket and metrics endpoint), forks the workers, restarts one that dies
 * (with back-off), passes a reload it took on SIGHUP to the workers as
 * WORKER_SIG_RELOAD (below) and SIGTERM/SIGINT as SIGTERM, answers the
 * control socket with the metrics of all workers summed (core/stats.h,
 * struct stats_shm) and tells systemd READY=1 once every worker is up.
 * Each worker runs run_daemon() (cmd/run.c) with its worker_info: it
 * opens the policy engine and its LMDB stores itself, after the fork,
 * then drops privileges, then calls worker_started().
 */
#ifndef MXG_WORKERS_H
#define MXG_WORKERS_H

#include <sys/types.h>

#include <signal.h>

#include "cmd/cmd.h"
#include "core/config.h"
#include "core/stats.h"

struct worker_info {
	int		 slot;		/* 0 .. workers-1 */
	const int	*fds;		/* its listeners */
	int		 nfds;
	int		 readyfd;	/* write end: "up" to the supervisor */
	pid_t		 parent;
	struct stats_shm *shm;
};

/* A worker's heartbeat period, and the silence after which the
 * supervisor takes it for hung: killed (SIGKILL), then started again. */
#define WORKER_BEAT_MS	1000
#define WORKER_HANG_MS	30000

/* The processes `workers` asks for: 0 is one per CPU this process may
 * run on; at most 64. */
int	workers_count(const struct config *);
/* build_info and process_start_time_seconds (run.c), set by the
 * process that serves the metrics */
void	process_metrics(void);
/* The supervisor; returns the exit status. */
int	workers_run(struct config *, const struct cmd_opts *);
/* In a worker, after dropping privileges: die with the supervisor, tell
 * it this worker is up.  0, or -1 (logged) when the supervisor is gone. */
int	worker_started(const struct worker_info *);

/* cmd/run.c: the daemon's loop; w NULL for the single process. */
/* What a reload from cur to ncfg cannot apply, checked before any part
 * takes ncfg: a bypass entry that is no prefix, or a key the installed
 * rules depend on.  0, or -1 with err (cmd/run.c; the supervisor's and
 * each process's reload). */
int	reload_check(const struct config *cur, const struct config *ncfg,
	    char *err, size_t errsz);
/* Builds, and throws away, in a child process, what a process started
 * on cfg builds from files: the policy engine without its stores
 * (override files, CA store, resolver, Redis client and its TLS files)
 * and the proxy's TLS context.  0, or -1 with err.  The supervisor runs
 * it as root before a reload commits; each process before any part of it
 * takes a reload.  Waits for its child with waitpid() on that pid. */
int	config_verify(const struct config *, char *err, size_t errsz);
/* Logs what config_load() accepted with a warning (event=config-warning),
 * once per process that read the file itself: the single process and the
 * supervisor, at start and at each reload they take (cmd/run.c). */
void	config_warnings_log(const struct config *);
/* The keys a reload from cur to ncfg read but only a start applies
 * (config_start_keys_changed(), and workers when ncfg asks for another
 * count than nrunning): logged as event=reload-note when say is set
 * (the single process and the supervisor, once per reload they take),
 * and set back to cur's in ncfg (config_keep_start_keys()), so that a
 * worker started again after the reload runs with the state_dir, user
 * and the rest the others run with.  -1 when out of memory (ncfg is
 * then not to be taken). */
int	reload_start_keys(const struct config *cur, struct config *ncfg,
	    int nrunning, int say);
/* A worker's exit status when it retired because it could not apply a
 * reload the supervisor accepted: started again at once, on the
 * supervisor's (new) configuration, not counted as a failure. */
#define WORKER_EXIT_RETIRE	75
/* The supervisor's reload of a worker: a real-time signal, sent with
 * sigqueue() and the digest (config_digest32) of what the supervisor
 * checked.  Real-time signals are queued one by one with their values;
 * a second SIGHUP sent while the first is pending is dropped, digest and
 * all, so a worker that had not yet read the first would check the file
 * against a digest the supervisor no longer runs.  Blocked in the
 * supervisor before it forks (its default action ends a process), read
 * by each worker's signalfd. */
#define WORKER_SIG_RELOAD	(SIGRTMIN + 1)
/* The supervisor's fallback when it could not queue WORKER_SIG_RELOAD to
 * a worker: a real-time signal fails (EAGAIN) once the pending signals
 * of the worker's user reach its RLIMIT_SIGPENDING, which any process of
 * that user can arrange (a compromised worker, queueing signals to
 * itself).  A classic signal is delivered whatever that count, so the
 * worker is told to retire (as when its own reload fails) and is started
 * again on the supervisor's configuration, rather than go on with the
 * one the reload replaced.  Blocked in the supervisor before it forks
 * (its default action ends a process), read by each worker's signalfd;
 * the single process leaves it alone. */
#define WORKER_SIG_RETIRE	SIGUSR1
int	run_daemon(struct config *, const struct cmd_opts *,
	    const struct worker_info *w);

#endif
