/*
 * redisd.h - a real redis-server for the unit tests that need one
 * (test_redis, test_redis_engine): started on a unix socket in the test's
 * temporary directory, without persistence, with extra "--key value"
 * arguments (TLS ports, requirepass), and killed at the end.  Test code
 * only; every helper is static inline so a test takes what it uses.
 *
 *   redisd_start(sock, dir, pass, extra..., NULL)  its pid, once it answers
 *                                                  PING (after AUTH pass)
 *   redisd_vtry(sock, dir, pass, ap)   the same, but -1 (after printing
 *                             the server's log) if redis-server exited
 *                             before answering, e.g. its TCP port was
 *                             taken between free_port() and its bind:
 *                             the caller may retry on another port
 *   redisd_conn(sock, pass)   a synchronous connection (AUTH pass done);
 *                             NULL if it cannot connect or AUTH fails
 *   redisd_kill(&pid, sock)   SIGKILL (after SIGCONT: a test may have
 *                             stopped it), reaped, socket removed
 */
#ifndef MXG_TEST_REDISD_H
#define MXG_TEST_REDISD_H

#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

static inline redisContext *
redisd_conn(const char *sock, const char *pass)
{
	redisContext *c = redisConnectUnix(sock);
	redisReply *r;

	if (c == NULL || c->err) {
		if (c)
			redisFree(c);
		return NULL;
	}
	if (pass != NULL) {
		r = redisCommand(c, "AUTH %s", pass);
		if (r == NULL || r->type == REDIS_REPLY_ERROR) {
			freeReplyObject(r);
			redisFree(c);
			return NULL;
		}
		freeReplyObject(r);
	}
	return c;
}

/* Prints the server's log (dir/redis.log) to stderr: why it did not start. */
static inline void
redisd_print_log(const char *dir)
{
	char path[300], line[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/redis.log", dir);
	if ((f = fopen(path, "r")) == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL)
		fprintf(stderr, "redis-server: %s", line);
	fclose(f);
}

/*
 * Waits for PING on a condition, not a fixed time: until the server
 * answers, exits (-1), or 30 s pass (a failure: two cores busy with
 * sanitized tests start it within a second).
 */
static inline pid_t
redisd_vtry(const char *sock, const char *dir, const char *pass, va_list ap)
{
	const char *argv[40];
	char logf[300];
	int n = 0, i, st;
	pid_t pid;

	snprintf(logf, sizeof(logf), "%s/redis.log", dir);
	unlink(logf);
	argv[n++] = "redis-server";
	argv[n++] = "--port";
	argv[n++] = "0";
	argv[n++] = "--unixsocket";
	argv[n++] = sock;
	argv[n++] = "--dir";
	argv[n++] = dir;
	argv[n++] = "--save";
	argv[n++] = "";
	argv[n++] = "--appendonly";
	argv[n++] = "no";
	argv[n++] = "--logfile";
	argv[n++] = logf;
	argv[n++] = "--loglevel";
	argv[n++] = "warning";
	while (n < 38 && (argv[n] = va_arg(ap, const char *)) != NULL)
		n++;
	argv[n] = NULL;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY);

		dup2(fd, 1);
		execvp("redis-server", (char **)argv);
		_exit(127);
	}
	for (i = 0; i < 3000; i++) {
		redisContext *c = redisd_conn(sock, pass);
		redisReply *r;

		if (c != NULL) {
			r = redisCommand(c, "PING");
			if (r != NULL && r->type == REDIS_REPLY_STATUS) {
				freeReplyObject(r);
				redisFree(c);
				return pid;
			}
			freeReplyObject(r);
			redisFree(c);
		}
		if (waitpid(pid, &st, WNOHANG) == pid) {
			fprintf(stderr, "redis-server exited (status 0x%x) "
			    "before answering PING\n", st);
			redisd_print_log(dir);
			return -1;
		}
		usleep(10000);
	}
	redisd_print_log(dir);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	fail_msg("redis-server did not answer PING within 30 s");
	return -1;
}

static inline pid_t
redisd_vstart(const char *sock, const char *dir, const char *pass,
    va_list ap)
{
	pid_t pid = redisd_vtry(sock, dir, pass, ap);

	if (pid < 0)
		fail_msg("redis-server did not start");
	return pid;
}

static inline pid_t
redisd_start(const char *sock, const char *dir, const char *pass, ...)
{
	va_list ap;
	pid_t pid;

	va_start(ap, pass);
	pid = redisd_vstart(sock, dir, pass, ap);
	va_end(ap);
	return pid;
}

static inline void
redisd_kill(pid_t *pid, const char *sock)
{
	if (*pid <= 0)
		return;
	kill(*pid, SIGCONT);
	kill(*pid, SIGKILL);
	waitpid(*pid, NULL, 0);
	*pid = -1;
	unlink(sock);
}

#endif
