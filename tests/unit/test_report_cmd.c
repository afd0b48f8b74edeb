/*
 * test_report_cmd.c - `mxguard report show DOMAIN` (cmd/report.c) on a
 * real TLSRPT store: the domain given is taken in the daemon's spelling
 * (lower case, A-labels, no trailing dot), which is how the store keeps
 * it, so "Bücher.TEST." finds the counts of xn--bcher-kva.test.  A name
 * that is no domain at all is refused.  With a daemon that runs on
 * another state_dir (the file's edited since its start; a reload keeps
 * the start's), `report send` sends nothing from the file's and says why,
 * also when control_socket was edited too (the daemon's record).
 *
 * cmd/ is not in libmxguard.a: the modules are compiled in here, with a
 * stand-in for priv_drop_cmd() (cmd/priv.c).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "cmd/report.c"
#include "cmd/status.c"
#include "tests/unit/cmdcapture.h"
#include "tests/unit/cmdstubs.h"

static char dir[] = "/tmp/mxg-report-cmd-XXXXXX";
static char outpath[300], errpath[300], sockpath[100];
static char out[65536], errout[4096];
static struct config *cfg;

static int
setup(void **state)
{
	char err[256];
	struct tlsrpt_store *st;
	struct tlsrpt_attempt a;

	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(outpath, sizeof(outpath), "%s.out", dir);
	snprintf(errpath, sizeof(errpath), "%s.err", dir);
	snprintf(sockpath, sizeof(sockpath), "%s.sock", dir);
	if ((st = tlsrpt_store_open(dir, NULL, err, sizeof(err))) == NULL) {
		fprintf(stderr, "setup: %s\n", err);
		return -1;
	}
	memset(&a, 0, sizeof(a));
	a.policy_domain = "xn--bcher-kva.test";
	a.policy_type = TLSRPT_POLICY_NONE;
	a.result = TLSRPT_SUCCESS;
	if (tlsrpt_record(st, tlsrpt_day((int64_t)time(NULL)), &a) == -1) {
		fprintf(stderr, "setup: %s\n", tlsrpt_store_error(st));
		return -1;
	}
	tlsrpt_store_close(st);
	if ((cfg = config_load(NULL, err, sizeof(err))) == NULL)
		return -1;
	free(cfg->state_dir);
	cfg->state_dir = strdup(dir);
	free(cfg->control_socket);
	cfg->control_socket = strdup(sockpath);
	return 0;
}

static int
teardown(void **state)
{
	char cmd[400];

	config_free(cfg);
	unlink(outpath);
	unlink(errpath);
	snprintf(cmd, sizeof(cmd), "%s.lnk", dir);
	unlink(cmd);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* `mxguard report ARGS...` with stdout in out[]; its exit status. */
static int
run(int argc, char **argv)
{
	return cmd_capture(cmd_report, argc, argv, cfg, outpath, out,
	    sizeof(out), NULL, NULL, 0);
}

static void
test_show_domain_normalised(void **state)
{
	char *plain[] = { "report", "show", "xn--bcher-kva.test", NULL };
	char *upper[] = { "report", "show", "XN--BCHER-KVA.Test.", "--json",
	    NULL };
	char *ulabel[] = { "report", "show", "B\xc3\x9c" "cher.TEST.", NULL };
	char *bad[] = { "report", "show", "a..b", NULL };

	assert_int_equal(run(3, plain), 0);
	assert_non_null(strstr(out, "xn--bcher-kva.test"));
	assert_non_null(strstr(out, "successful=1"));
	/* case and the trailing dot: the same domain */
	assert_int_equal(run(4, upper), 0);
	assert_non_null(strstr(out, "\"domain\": \"xn--bcher-kva.test\", "
	    "\"successful\": 1"));
	/* a U-label: its A-label */
	assert_int_equal(run(3, ulabel), 0);
	assert_non_null(strstr(out, "xn--bcher-kva.test"));
	assert_non_null(strstr(out, "successful=1"));
	/* no domain: refused, nothing shown */
	assert_int_equal(run(3, bad), 1);
	assert_string_equal(out, "");
}

/*
 * A daemon that answers on the file's control_socket, but runs with the
 * state_dir of its start: the file's was edited since, and a reload
 * keeps the start's.  `report send` read the file's store (a
 * directory the daemon does not record in) and sent from it; now it
 * sends nothing and says which directory the daemon runs with.
 */
/*
 * A daemon on path that answers one status request with answer: its
 * socket listened on by this process (the daemon's pid, as SO_PEERCRED
 * names it), or with child_listens by the child that answers.
 */
static pid_t
fake_daemon_at(const char *path, const char *answer, int child_listens)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char req[64];
	int lfd = -1, p[2];
	pid_t pid;

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	if (!child_listens) {
		assert_true((lfd = socket(AF_UNIX, SOCK_STREAM, 0)) >= 0);
		assert_int_equal(bind(lfd, (struct sockaddr *)&sun,
		    sizeof(sun)), 0);
		assert_int_equal(listen(lfd, 4), 0);
	}
	assert_int_equal(pipe(p), 0);
	assert_true((pid = fork()) >= 0);
	if (pid == 0) {
		size_t n = strlen(answer);
		int c;

		(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (child_listens && ((lfd = socket(AF_UNIX, SOCK_STREAM,
		    0)) == -1 || bind(lfd, (struct sockaddr *)&sun,
		    sizeof(sun)) == -1 || listen(lfd, 4) == -1))
			_exit(1);
		(void)!write(p[1], "r", 1);
		if ((c = accept(lfd, NULL, NULL)) == -1)
			_exit(1);
		while (read(c, req, sizeof(req)) > 0)
			;
		_exit(write(c, answer, n) == (ssize_t)n ? 0 : 1);
	}
	close(p[1]);
	assert_int_equal(read(p[0], req, 1), 1);
	close(p[0]);
	if (lfd != -1)
		close(lfd);
	return pid;
}

static void
stop_fake(pid_t pid, const char *path)
{
	(void)kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	unlink(path);
}

/* A daemon on sockpath that answers one status request with answer. */
static pid_t
fake_daemon(const char *answer)
{
	return fake_daemon_at(sockpath, answer, 0);
}

static void
test_send_other_state_dir(void **state)
{
	static const char answer[] = "# mxguard pid 1, up 1s\n"
	    "# state_dir /var/lib/mxguard-started\n"
	    "# config digest 00000000, applied 1\n"
	    "mxguard_sessions_total 0\n";
	char *argv[] = { "report", "send", NULL };
	int rc;
	pid_t pid;

	pid = fake_daemon(answer);
	rc = cmd_capture(cmd_report, 2, argv, cfg, outpath, out, sizeof(out),
	    errpath, errout, sizeof(errout));
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	unlink(sockpath);
	assert_int_equal(rc, 1);
	assert_string_equal(out, "");
	if (strstr(errout, "state_dir /var/lib/mxguard-started") == NULL ||
	    strstr(errout, "nothing sent") == NULL)
		fail_msg("stderr: %s", errout);
}

/*
 * The daemon's state_dir spelled otherwise than the file's, the same
 * directory: with a trailing slash, through a symbolic link in a parent.
 * Nothing is another directory's: no warning, and `report send` does
 * not refuse.  Before, the strings were compared: other_dir, and
 * report send sent nothing, exit 1.
 */
static void
test_same_state_dir_spelled_otherwise(void **state)
{
	struct cmd_cfgcheck cc;
	char answer[1024], lnk[300], *base = strrchr(dir, '/') + 1;
	pid_t pid;
	int i;

	snprintf(lnk, sizeof(lnk), "%s.lnk", dir);
	assert_int_equal(symlink("/tmp", lnk), 0);
	for (i = 0; i < 2; i++) {
		char sd[600];

		if (i == 0)
			snprintf(sd, sizeof(sd), "%s/", dir);
		else
			snprintf(sd, sizeof(sd), "%s/%s", lnk, base);
		snprintf(answer, sizeof(answer), "# mxguard pid 1, up 1s\n"
		    "# state_dir %s\n"
		    "# config digest %08x, applied 1\n"
		    "mxguard_sessions_total 0\n", sd, config_digest32(cfg));
		pid = fake_daemon(answer);
		cmd_config_vs_daemon(cfg, &cc);
		assert_int_equal(waitpid(pid, NULL, 0), pid);
		unlink(sockpath);
		assert_true(cc.reached);
		assert_string_equal(cc.state_dir, sd);
		if (cc.other_dir || *cc.warning)
			fail_msg("%s: %s", sd, cc.warning);
	}
	unlink(lnk);
}

/*
 * Both control_socket and state_dir edited in the file since the daemon
 * started (a reload keeps the start's): no daemon on the file's socket,
 * and `report send` sent from the file's state_dir, nothing said, while
 * the daemon records in its own (its reports sent twice, or none).  Now
 * the daemon's record (cmd_record_daemon(), as the daemon writes it at
 * its start) leads to its start's socket, whose answer names its
 * state_dir: send refuses, exit 1, naming both.  A record is not
 * followed when its socket's listener is another process than the one
 * it names (a daemon gone), when its directory is others' to write, or
 * for another configuration file.
 */
static void
test_send_both_edited(void **state)
{
	static const char answer[] = "# mxguard pid 1, up 1s\n"
	    "# config digest 00000000, applied 1\n"
	    "# state_dir /var/lib/mxguard-started\n"
	    "mxguard_sessions_total 0\n";
	char *argv[] = { "report", "send", NULL };
	char rundir_[300], conf[300], other[300], started_sock[100], err[512];
	struct config *started;
	struct cmd_cfgcheck cc;
	int fd, rc;
	pid_t pid;

	snprintf(rundir_, sizeof(rundir_), "%s/run", dir);
	snprintf(conf, sizeof(conf), "%s/mxguard.conf", dir);
	snprintf(other, sizeof(other), "%s/other.conf", dir);
	snprintf(started_sock, sizeof(started_sock), "%s.started", dir);
	assert_true((fd = open(conf, O_WRONLY | O_CREAT, 0644)) >= 0);
	close(fd);
	assert_true((fd = open(other, O_WRONLY | O_CREAT, 0644)) >= 0);
	close(fd);
	assert_int_equal(setenv("MXGUARD_RUNDIR", rundir_, 1), 0);
	/* the daemon as it started: its record names this process */
	assert_non_null(started = config_load(NULL, err, sizeof(err)));
	free(started->control_socket);
	started->control_socket = strdup(started_sock);
	free(started->state_dir);
	started->state_dir = strdup("/var/lib/mxguard-started");
	if (cmd_record_daemon(conf, started, err, sizeof(err)) == -1)
		fail_msg("cmd_record_daemon: %s", err);
	cmd_set_config_path(conf);

	pid = fake_daemon_at(started_sock, answer, 0);
	rc = cmd_capture(cmd_report, 2, argv, cfg, outpath, out, sizeof(out),
	    errpath, errout, sizeof(errout));
	stop_fake(pid, started_sock);
	if (rc != 1 || strstr(errout, "state_dir /var/lib/mxguard-started") ==
	    NULL || strstr(errout, started_sock) == NULL ||
	    strstr(errout, "nothing sent") == NULL)
		fail_msg("exit %d, stderr: %s", rc, errout);
	assert_string_equal(out, "");

	/* the socket listened on by another process than the record's */
	pid = fake_daemon_at(started_sock, answer, 1);
	cmd_config_vs_daemon(cfg, &cc);
	assert_false(cc.reached || cc.busy || cc.other_dir || *cc.warning);
	stop_fake(pid, started_sock);
	/* its directory writable by others */
	assert_int_equal(chmod(rundir_, 0777), 0);
	pid = fake_daemon_at(started_sock, answer, 0);
	cmd_config_vs_daemon(cfg, &cc);
	assert_false(cc.reached || cc.busy || *cc.warning);
	stop_fake(pid, started_sock);
	assert_int_equal(chmod(rundir_, 0755), 0);
	/* another configuration file's command */
	cmd_set_config_path(other);
	pid = fake_daemon_at(started_sock, answer, 0);
	cmd_config_vs_daemon(cfg, &cc);
	assert_false(cc.reached || cc.busy || *cc.warning);
	stop_fake(pid, started_sock);
	/* the same file, and the record's listener: reached (each case
	 * above would be, but for what it tests) */
	cmd_set_config_path(conf);
	pid = fake_daemon_at(started_sock, answer, 0);
	cmd_config_vs_daemon(cfg, &cc);
	stop_fake(pid, started_sock);
	assert_true(cc.reached && cc.other_dir);
	assert_string_equal(cc.socket, started_sock);

	cmd_set_config_path(NULL);
	unsetenv("MXGUARD_RUNDIR");
	config_free(started);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_show_domain_normalised),
		cmocka_unit_test(test_send_other_state_dir),
		cmocka_unit_test(test_same_state_dir_spelled_otherwise),
		cmocka_unit_test(test_send_both_edited),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
