/*
 * ctldaemon.h - a daemon's control socket for the command tests
 * (test_policy_cmd.c, test_rules_cmd.c): cmd/control.c in a child
 * process, answering at the including file's `sockpath` with the
 * configuration `cfg` and the digest given, the way a running daemon
 * would.  The includer compiles cmd/control.c and cmd/status.c in and
 * defines sockpath and cfg.  daemon_stop() kills the child and removes the socket.
 */
#ifndef MXG_TEST_CTLDAEMON_H
#define MXG_TEST_CTLDAEMON_H

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

/* when set, the daemon writes its record for this configuration file
 * (cmd_record_daemon(), in MXGUARD_RUNDIR) */
static const char *daemon_record_conf;

static pid_t
daemon_start(uint32_t digest)
{
	int p[2];
	pid_t pid;
	char c;

	assert_int_equal(pipe(p), 0);
	assert_true((pid = fork()) >= 0);
	if (pid == 0) {
		struct ev_loop *loop = ev_loop_new();
		struct control *ctl;
		char err[256];

		/* gone with the test, also when an assertion ends it */
		(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (loop == NULL || (ctl = control_open(loop, cfg, err,
		    sizeof(err))) == NULL)
			_exit(1);
		control_set_config(ctl, digest);
		/* as the daemon records itself at its start (cmd.h) */
		if (daemon_record_conf != NULL && cmd_record_daemon(
		    daemon_record_conf, cfg, err, sizeof(err)) == -1)
			_exit(1);
		(void)!write(p[1], "r", 1);
		ev_loop_run(loop);
		_exit(0);
	}
	close(p[1]);
	assert_int_equal(read(p[0], &c, 1), 1);
	close(p[0]);
	return pid;
}

static void
daemon_stop(pid_t pid)
{
	assert_int_equal(kill(pid, SIGKILL), 0);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	unlink(sockpath);
}

#endif
