/*
 * control.c - the daemon's control socket and Prometheus endpoint (see
 * control.h).  Both are one-shot request/response servers on the event
 * loop:
 *
 *   unix socket (control_socket): the client sends one line, "status" or
 *     "metrics", and reads the answer until EOF.  "status" is a header
 *     (pid, uptime; the state_dir it runs with, its start's, which a
 *     reload keeps; the configuration run: its digest, when applied) and
 *     every counter as "name value"; "metrics" is the Prometheus text
 *     format, the configuration as mxguard_config_info{digest} and
 *     mxguard_config_applied_timestamp_seconds.
 *   TCP (metrics_listen, off when empty): HTTP/1.0 or 1.1 GET /metrics,
 *     answered with Connection: close.
 *
 * The request grammar is in ctlreq.c (fuzzed by tests/fuzz/fuzz_control.c).
 * Requests are capped at CTL_MAX_REQ bytes.
 *
 * The two listeners have separate budgets of connections, because they
 * are reached by different people: the unix socket only by root (and
 * `user`), metrics_listen by whatever can reach its address, often a
 * whole management network.  CTL_MAX_METRICS idle HTTP clients fill only
 * the metrics slots; `mxguard status` keeps its CTL_MAX_UNIX, of which the
 * last CTL_ROOT_ONLY take only a peer of uid 0 (SO_PEERCRED): the watch.  (In the
 * supervisor of workers nothing else goes through here: the workers'
 * metrics come from shared memory, core/stats.c, and reloads and drains
 * are signals.)  A metrics client has CTL_METRICS_TIMEOUT_MS from accept
 * to send its request and read the whole answer, one deadline that reads
 * do not push back, so a client that trickles its request or reads
 * slowly holds a slot a few seconds at most; a unix client has
 * CTL_UNIX_TIMEOUT_MS for its request and as much again for the answer.
 * A connection beyond its listener's budget is answered at once (HTTP
 * 503, or "error busy") and closed, counted in
 * mxguard_control_refused_total{listener,reason} and logged as
 * event=control-refused at most once per CTL_LOG_EVERY_MS per listener,
 * with the number refused since the last line: a flood costs a line
 * every few seconds, not one per connection.  A listener whose accept()
 * fails for lack of descriptors or memory rests for CTL_PAUSE_MS
 * (level-triggered epoll would wake it again at once, for ever).
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmd/control.h"
#include "cmd/ctlreq.h"
#include "core/dirperm.h"
#include "core/log.h"
#include "core/stats.h"

#define CTL_MAX_REQ		4096
#define CTL_MAX_UNIX		16	/* control socket connections */
#define CTL_ROOT_ONLY		4	/* of them, for root's alone */
#define CTL_MAX_METRICS		16	/* metrics_listen connections */
#define CTL_UNIX_TIMEOUT_MS	5000	/* request; again for the answer */
#define CTL_METRICS_TIMEOUT_MS	3000	/* request and answer, from accept */
#define CTL_PAUSE_MS		1000	/* a listener's rest after EMFILE */
#define CTL_LOG_EVERY_MS	10000	/* control-refused lines per listener */

enum { CTL_UNIX, CTL_METRICS, CTL_NLISTENERS };

struct control;

struct listener {
	struct control	*ctl;
	const char	*name;		/* "unix", "metrics": label, log */
	int		 fd;
	int		 nconns, max;
	int		 nroot;		/* unix: root's connections */
	uint64_t	 timeout_ms;
	struct ev_timer	*resume;	/* paused after EMFILE and kin */
	uint64_t	 logged_at;	/* ev_now() of the last line, 0 never */
	unsigned long	 unlogged;	/* refusals since that line */
	struct stat_ctr	*st_full, *st_error, *st_timeouts;
};

struct cconn {
	struct control	*ctl;
	struct listener	*l;
	struct cconn	*next;
	int		 fd;
	int		 http;
	int		 root;		/* unix: a peer of uid 0 */
	char		 req[CTL_MAX_REQ + 1];
	size_t		 reqlen;
	char		*out;
	size_t		 outlen, outoff;
	struct ev_timer	*timer;
};

struct control {
	struct ev_loop	*loop;
	struct listener	 l[CTL_NLISTENERS];
	char		*path;
	char		*state_dir;	/* the start's: a reload keeps it */
	struct cconn	*conns;
	time_t		 started;
	struct stat_ctr	*st_requests;
	uint32_t	 digest;	/* the configuration run */
	time_t		 applied;
	struct stats_shm *shm;		/* the supervisor's workers, */
	int		 nworkers;	/* or NULL, 0 */
};

static void conn_free(struct cconn *);

static void
conn_timeout(void *arg)
{
	struct cconn *c = arg;

	stats_add(c->l->st_timeouts, 1);
	log_debug("event=control-timeout listener=%s received=%zu sent=%zu",
	    c->l->name, c->reqlen, c->outoff);
	conn_free(c);
}

static void
conn_free(struct cconn *c)
{
	struct cconn **pp;

	for (pp = &c->ctl->conns; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	c->l->nconns--;
	if (c->root)
		c->l->nroot--;
	ev_fd_del(c->ctl->loop, c->fd);
	close(c->fd);
	ev_timer_free(c->timer);
	free(c->out);
	free(c);
}

static void
conn_write_cb(int fd, int events, void *arg)
{
	struct cconn *c = arg;

	while (c->outoff < c->outlen) {
		ssize_t n = send(fd, c->out + c->outoff, c->outlen - c->outoff,
		    MSG_NOSIGNAL);

		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			break;
		}
		c->outoff += (size_t)n;
	}
	conn_free(c);
}

/*
 * The configuration the daemon runs: its digest, as event=reloaded and
 * event=reload-checked log it, and when it was applied; in the
 * supervisor, the one its workers were told, and each worker that says
 * it runs another (its word, from its metrics slot: a reload it has not
 * applied yet, or a SIGHUP sent to it alone).  Not in the registry
 * (core/stats.h): a digest is no label value from a fixed set.
 */
static void
render_config(struct control *ctl, int prometheus, FILE *fp)
{
	char when[32];
	struct tm tm;
	uint32_t d;
	int i, other = 0;

	if (prometheus) {
		fprintf(fp, "# HELP mxguard_config_info The configuration the "
		    "daemon runs (with workers: the one they were told), by "
		    "the digest its log gives at event=reloaded\n"
		    "# TYPE mxguard_config_info gauge\n"
		    "mxguard_config_info{digest=\"%08x\"} 1\n"
		    "# HELP mxguard_config_applied_timestamp_seconds When "
		    "the daemon started on that configuration or reloaded "
		    "to it\n"
		    "# TYPE mxguard_config_applied_timestamp_seconds gauge\n"
		    "mxguard_config_applied_timestamp_seconds %lld\n",
		    ctl->digest, (long long)ctl->applied);
	} else {
		if (gmtime_r(&ctl->applied, &tm) == NULL ||
		    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ",
		    &tm) == 0)
			snprintf(when, sizeof(when), "%lld",
			    (long long)ctl->applied);
		fprintf(fp, "# config digest %08x, applied %s\n",
		    ctl->digest, when);
		/* the third line, after the digest that scripts read as
		 * the second: the commands compare it with the file's
		 * (status.c) */
		fprintf(fp, "# state_dir %s\n", ctl->state_dir);
	}
	for (i = 0; i < ctl->nworkers; i++) {
		if (!stats_shm_slot_config(ctl->shm, i, &d) ||
		    d == ctl->digest)
			continue;
		other++;
		if (!prometheus)
			fprintf(fp, "# worker %d runs config digest %08x, "
			    "not %08x\n", i, d, ctl->digest);
	}
	if (prometheus && ctl->nworkers > 0)
		fprintf(fp, "# HELP mxguard_config_workers_other Workers "
		    "that say they run another configuration than "
		    "mxguard_config_info's\n"
		    "# TYPE mxguard_config_workers_other gauge\n"
		    "mxguard_config_workers_other %d\n", other);
}

/* The body of an answer: "status" (plain) or "metrics" (Prometheus). */
static int
render(struct control *ctl, int prometheus, char **buf, size_t *len)
{
	FILE *fp;

	if ((fp = open_memstream(buf, len)) == NULL)
		return -1;
	if (prometheus) {
		stats_write_prometheus(fp);
		render_config(ctl, 1, fp);
	} else {
		fprintf(fp, "# mxguard pid %ld, up %llds\n", (long)getpid(),
		    (long long)(time(NULL) - ctl->started));
		render_config(ctl, 0, fp);
		stats_write_plain(fp);
	}
	if (fclose(fp) != 0) {
		free(*buf);
		*buf = NULL;
		return -1;
	}
	return 0;
}

static void
respond(struct cconn *c)
{
	char *body = NULL;
	size_t blen = 0;
	enum ctl_req kind;
	FILE *fp;

	stats_add(c->ctl->st_requests, 1);
	kind = ctl_req_parse(c->req, c->reqlen, c->http);
	if (c->http) {
		int ok = kind == CTL_REQ_METRICS &&
		    render(c->ctl, 1, &body, &blen) == 0;

		if ((fp = open_memstream(&c->out, &c->outlen)) == NULL)
			goto fail;
		if (ok)
			fprintf(fp, "HTTP/1.1 200 OK\r\nContent-Type: text/plain; "
			    "version=0.0.4; charset=utf-8\r\n");
		else if (kind == CTL_REQ_BAD_METHOD)
			fprintf(fp, "HTTP/1.1 405 Method Not Allowed\r\n");
		else
			fprintf(fp, "HTTP/1.1 %s\r\n", kind == CTL_REQ_METRICS ?
			    "500 Internal Server Error" : "404 Not Found");
		fprintf(fp, "Content-Length: %zu\r\nConnection: close\r\n\r\n",
		    ok ? blen : 0);
		if (ok)
			fwrite(body, 1, blen, fp);
		free(body);
		body = NULL;
		if (fclose(fp) != 0)
			goto fail;
	} else {
		if (kind == CTL_REQ_UNKNOWN) {
			c->out = strdup("error unknown request\n");
			if (c->out == NULL)
				goto fail;
			c->outlen = strlen(c->out);
			goto send;
		}
		if (render(c->ctl, kind == CTL_REQ_METRICS, &c->out,
		    &c->outlen) == -1)
			goto fail;
	}
send:
	/* a metrics client's deadline runs on from accept (see the top) */
	if (!c->http)
		ev_timer_arm(c->timer, CTL_UNIX_TIMEOUT_MS);
	if (ev_fd_set(c->ctl->loop, c->fd, EV_WRITE, conn_write_cb, c) == -1)
		goto fail;
	conn_write_cb(c->fd, EV_WRITE, c);
	return;
fail:
	free(body);	/* (rendered, and no stream to put it in) */
	conn_free(c);
}

static void
conn_read_cb(int fd, int events, void *arg)
{
	struct cconn *c = arg;
	ssize_t n;

	for (;;) {
		if (c->reqlen == CTL_MAX_REQ) {
			conn_free(c);
			return;
		}
		n = recv(fd, c->req + c->reqlen, CTL_MAX_REQ - c->reqlen, 0);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			/* EOF: a unix client may shut down after its line */
			if (n == 0 && !c->http && c->reqlen > 0)
				break;
			conn_free(c);
			return;
		}
		c->reqlen += (size_t)n;
		c->req[c->reqlen] = '\0';
		if (ctl_req_complete(c->req, c->reqlen, c->http))
			break;
	}
	ev_fd_mask(c->ctl->loop, fd, 0);
	respond(c);
}

/*
 * Counts a refusal and logs it, at most once per CTL_LOG_EVERY_MS per
 * listener, with the refusals since the last line (the counter has them
 * all).  err: the accept() error, 0 for a full listener.
 */
static void
refused(struct listener *l, struct stat_ctr *st, const char *reason, int err)
{
	uint64_t now = ev_now(l->ctl->loop);

	stats_add(st, 1);
	l->unlogged++;
	if (l->logged_at != 0 && now - l->logged_at < CTL_LOG_EVERY_MS)
		return;
	if (err != 0)
		log_warn("event=control-refused listener=%s reason=%s "
		    "refused=%lu error=\"%s\"", l->name, reason, l->unlogged,
		    strerror(err));
	else
		log_warn("event=control-refused listener=%s reason=%s "
		    "limit=%d refused=%lu", l->name, reason, l->max,
		    l->unlogged);
	l->logged_at = now;
	l->unlogged = 0;
}

/* A connection beyond the budget: told so (best effort: a fresh socket's
 * buffer is empty) and closed. */
static void
refuse_full(struct listener *l, int fd)
{
	static const char busy_http[] = "HTTP/1.1 503 Service Unavailable\r\n"
	    "Content-Length: 0\r\nConnection: close\r\n\r\n";
	static const char busy_unix[] = "error busy\n";

	if (l == &l->ctl->l[CTL_METRICS])
		(void)!send(fd, busy_http, sizeof(busy_http) - 1,
		    MSG_NOSIGNAL | MSG_DONTWAIT);
	else
		(void)!send(fd, busy_unix, sizeof(busy_unix) - 1,
		    MSG_NOSIGNAL | MSG_DONTWAIT);
	close(fd);
	refused(l, l->st_full, "max_connections", 0);
}

static void
listener_resume(void *arg)
{
	struct listener *l = arg;

	if (ev_fd_mask(l->ctl->loop, l->fd, EV_READ) == -1)
		log_warn("event=control-resume-failed listener=%s "
		    "error=\"%s\"", l->name, strerror(errno));
}

static void
accept_cb(int lfd, int events, void *arg)
{
	struct listener *l = arg;
	struct control *ctl = l->ctl;
	struct cconn *c;
	int fd, i, root;

	for (i = 0; i < 16; i++) {
		if ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK |
		    SOCK_CLOEXEC)) == -1) {
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM) {
				refused(l, l->st_error, "accept_error", errno);
				(void)ev_fd_mask(ctl->loop, lfd, 0);
				ev_timer_arm(l->resume, CTL_PAUSE_MS);
			}
			return;
		}
		root = 0;
		if (l == &ctl->l[CTL_UNIX]) {
			struct ucred cr;
			socklen_t crlen = sizeof(cr);

			root = getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr,
			    &crlen) == 0 && cr.uid == 0;
		}
		/* the last CTL_ROOT_ONLY unix slots are root's: `rules
		 * watch` and `rules ensure` (root) must tell a running
		 * daemon from none even while the daemon's `user` or the
		 * socket's group hold every other connection */
		if (l->nconns >= l->max || (l == &ctl->l[CTL_UNIX] && !root &&
		    l->nconns - l->nroot >= l->max - CTL_ROOT_ONLY)) {
			refuse_full(l, fd);
			continue;
		}
		if ((c = calloc(1, sizeof(*c))) == NULL)
			goto fail;
		c->ctl = ctl;
		c->root = root;
		c->l = l;
		c->fd = fd;
		c->http = l == &ctl->l[CTL_METRICS];
		if ((c->timer = ev_timer_new(ctl->loop, conn_timeout, c)) ==
		    NULL || ev_fd_set(ctl->loop, fd, EV_READ, conn_read_cb,
		    c) == -1)
			goto fail;
		c->next = ctl->conns;
		ctl->conns = c;
		l->nconns++;
		l->nroot += root;
		ev_timer_arm(c->timer, l->timeout_ms);
		continue;
fail:
		log_warn("event=control-accept-failed listener=%s "
		    "error=\"%s\"", l->name, strerror(errno));
		if (c != NULL) {
			ev_timer_free(c->timer);
			free(c);
		}
		close(fd);
	}
}

/*
 * Creates the socket's directory if missing: 0755, root's (as systemd's
 * RuntimeDirectory= is).  Never given to `user`: root connects, unlinks
 * and binds in it at every start, and a directory `user` owns would let
 * a compromised worker plant a listening socket there, taken for another
 * mxguard running (or a file for a chown race).  The socket itself goes
 * to `user` (chown_socket()); its unlink at exit, as `user`, may then
 * fail, and the next start removes the stale name.
 */
static void
make_parent(const char *path)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char *slash;

	snprintf(dir, sizeof(dir), "%s", path);
	if ((slash = strrchr(dir, '/')) == NULL || slash == dir)
		return;
	*slash = '\0';
	(void)mkdir(dir, 0755);
}

/*
 * Says so when the socket's directory is one that others may write:
 * not root's (when root: `user`'s, say state_dir), or writable by others
 * or a group not root's.  Whoever writes it can put a listening socket
 * of their own at the name before a start ("another mxguard is
 * running": no control socket), and that socket then answers `mxguard
 * status` and `rules watch`, whose digest decides whether rules a
 * firewall reload took away go back in.  A warning, not a refusal: mail
 * does not depend on the control socket.
 */
static void
check_parent(const char *path)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)], q[256];
	struct stat st;
	char *slash;

	snprintf(dir, sizeof(dir), "%s", path);
	if ((slash = strrchr(dir, '/')) == NULL)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	if (stat(dir, &st) == -1)
		return;
	/* root's, or the daemon's own; group write for root's group only */
	if (dir_writers(&st, geteuid(), (gid_t)-1) == DIRW_NONE)
		return;
	log_warn("event=control-dir-unsafe dir=%s uid=%ld gid=%ld "
	    "mode=%04o note=\"others can write the control socket's "
	    "directory and put a socket of theirs in its place: use a "
	    "directory only root writes, such as /run/mxguard\"",
	    log_q(q, sizeof(q), dir), (long)st.st_uid, (long)st.st_gid,
	    (unsigned)(st.st_mode & 07777));
}

/*
 * Gives the socket file just bound at path to uid/gid.  A socket file's
 * owner can only be changed by name (fchown on the socket changes the
 * socket, not the file bind() made), so the name is changed without
 * following a symbolic link, and only while it is a socket: whoever can
 * write the directory (the unprivileged user, on a restart) may have put
 * a link or another file there since bind().  (Swapping in a hard link
 * to root's file between the two calls needs fs.protected_hardlinks off;
 * Debian has it on.)  Returns 0, -1 with errno, or -2 when path is no
 * longer a socket.
 */
static int
chown_socket(const char *path, uid_t uid, gid_t gid)
{
	struct stat st;

	if (fstatat(AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW) == -1)
		return -1;
	if (!S_ISSOCK(st.st_mode))
		return -2;
	return fchownat(AT_FDCWD, path, uid, gid, AT_SYMLINK_NOFOLLOW);
}

static int
open_unix(struct control *ctl, const struct config *cfg, char *err,
    size_t errsz)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	uid_t uid = (uid_t)-1;
	gid_t gid = (gid_t)-1;
	struct passwd *pw;
	int fd, crc;

	if (strlen(cfg->control_socket) >= sizeof(sun.sun_path)) {
		snprintf(err, errsz, "control_socket: path too long");
		return -1;
	}
	if (*cfg->user && geteuid() == 0 && (pw = getpwnam(cfg->user))) {
		uid = pw->pw_uid;
		gid = pw->pw_gid;
	}
	strcpy(sun.sun_path, cfg->control_socket);
	make_parent(cfg->control_socket);
	check_parent(cfg->control_socket);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) == -1) {
		snprintf(err, errsz, "socket: %s", strerror(errno));
		return -1;
	}
	/* a socket file left by a dead daemon goes; a live daemon's stays */
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0 ||
	    errno == EAGAIN) {
		close(fd);
		snprintf(err, errsz, "%s: another mxguard is running",
		    cfg->control_socket);
		return -1;
	}
	close(fd);
	(void)unlink(cfg->control_socket);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) == -1) {
		snprintf(err, errsz, "socket: %s", strerror(errno));
		return -1;
	}
	{
		mode_t old = umask(0117);
		int rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));

		umask(old);
		if (rc == -1 || listen(fd, 16) == -1) {
			snprintf(err, errsz, "%s: %s", cfg->control_socket,
			    strerror(errno));
			close(fd);
			return -1;
		}
	}
	if (uid != (uid_t)-1 &&
	    (crc = chown_socket(cfg->control_socket, uid, gid)) != 0) {
		char q[256];

		log_warn("event=control-chown path=%s error=\"%s\"",
		    log_q(q, sizeof(q), cfg->control_socket), crc == -2 ?
		    "not a socket: replaced since bind, left alone" :
		    strerror(errno));
	}
	ctl->l[CTL_UNIX].fd = fd;
	return 0;
}

/* "ADDR:PORT" or "[ADDR6]:PORT" */
static int
control_parse_addr(const char *s, struct sockaddr_storage *ss,
    socklen_t *len)
{
	char host[64];
	const char *colon, *h = s;
	size_t hl;
	char *end;
	long port;

	memset(ss, 0, sizeof(*ss));
	if ((colon = strrchr(s, ':')) == NULL)
		return -1;
	hl = (size_t)(colon - s);
	if (*s == '[') {
		if (hl < 2 || s[hl - 1] != ']')
			return -1;
		h = s + 1;
		hl -= 2;
	}
	if (hl == 0 || hl >= sizeof(host))
		return -1;
	memcpy(host, h, hl);
	host[hl] = '\0';
	port = strtol(colon + 1, &end, 10);
	if (colon[1] == '\0' || *end || port < 1 || port > 65535)
		return -1;
	if (inet_pton(AF_INET, host, &((struct sockaddr_in *)ss)->sin_addr) == 1) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		*len = sizeof(*sin);
		return 0;
	}
	if (inet_pton(AF_INET6, host,
	    &((struct sockaddr_in6 *)ss)->sin6_addr) == 1) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*sin6);
		return 0;
	}
	return -1;
}

static int
open_tcp(struct control *ctl, const struct config *cfg, char *err,
    size_t errsz)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, one = 1;

	if (control_parse_addr(cfg->metrics_listen, &ss, &len) == -1) {
		snprintf(err, errsz, "metrics_listen: \"%s\" is not ADDR:PORT "
		    "or [ADDR6]:PORT", cfg->metrics_listen);
		return -1;
	}
	if ((fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1) {
		snprintf(err, errsz, "socket: %s", strerror(errno));
		return -1;
	}
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) == -1 ||
	    listen(fd, 16) == -1) {
		snprintf(err, errsz, "metrics_listen %s: %s",
		    cfg->metrics_listen, strerror(errno));
		close(fd);
		return -1;
	}
	ctl->l[CTL_METRICS].fd = fd;
	return 0;
}

struct control *
control_open(struct ev_loop *loop, const struct config *cfg, char *err,
    size_t errsz)
{
	struct control *ctl;
	int i;

	if ((ctl = calloc(1, sizeof(*ctl))) == NULL) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	ctl->loop = loop;
	ctl->l[CTL_UNIX].fd = ctl->l[CTL_METRICS].fd = -1;
	ctl->started = ctl->applied = time(NULL);
	ctl->digest = config_digest32(cfg);
	if ((ctl->state_dir = strdup(cfg->state_dir)) == NULL) {
		snprintf(err, errsz, "out of memory");
		goto fail;
	}
	ctl->st_requests = stats_get("mxguard_control_requests_total",
	    "Requests answered on the control socket and metrics endpoint");
	for (i = 0; i < CTL_NLISTENERS; i++) {
		struct listener *l = &ctl->l[i];
		char name[128];

		l->ctl = ctl;
		l->name = i == CTL_UNIX ? "unix" : "metrics";
		l->max = i == CTL_UNIX ? CTL_MAX_UNIX : CTL_MAX_METRICS;
		l->timeout_ms = i == CTL_UNIX ? CTL_UNIX_TIMEOUT_MS :
		    CTL_METRICS_TIMEOUT_MS;
		snprintf(name, sizeof(name), "mxguard_control_refused_total{"
		    "listener=\"%s\",reason=\"max_connections\"}", l->name);
		l->st_full = stats_counter(name, "Connections to the control "
		    "socket or metrics endpoint closed unserved: no free slot "
		    "(max_connections) or accept() failing (accept_error)");
		snprintf(name, sizeof(name), "mxguard_control_refused_total{"
		    "listener=\"%s\",reason=\"accept_error\"}", l->name);
		l->st_error = stats_counter(name, NULL);
		snprintf(name, sizeof(name), "mxguard_control_timeouts_total{"
		    "listener=\"%s\"}", l->name);
		l->st_timeouts = stats_counter(name, "Connections to the "
		    "control socket or metrics endpoint closed at their "
		    "deadline");
		if ((l->resume = ev_timer_new(loop, listener_resume, l)) ==
		    NULL) {
			snprintf(err, errsz, "out of memory");
			goto fail;
		}
	}
	if (*cfg->control_socket) {
		if (open_unix(ctl, cfg, err, errsz) == -1)
			goto fail;
		if ((ctl->path = strdup(cfg->control_socket)) == NULL ||
		    ev_fd_set(loop, ctl->l[CTL_UNIX].fd, EV_READ, accept_cb,
		    &ctl->l[CTL_UNIX]) == -1) {
			snprintf(err, errsz, "out of memory");
			goto fail;
		}
	}
	if (*cfg->metrics_listen) {
		if (open_tcp(ctl, cfg, err, errsz) == -1)
			goto fail;
		if (ev_fd_set(loop, ctl->l[CTL_METRICS].fd, EV_READ, accept_cb,
		    &ctl->l[CTL_METRICS]) == -1) {
			snprintf(err, errsz, "event loop: %s", strerror(errno));
			goto fail;
		}
	}
	{
		char qs[256], qm[256];

		log_info("event=control-open socket=%s metrics=%s",
		    log_q(qs, sizeof(qs), *cfg->control_socket ?
		    cfg->control_socket : "-"),
		    log_q(qm, sizeof(qm), *cfg->metrics_listen ?
		    cfg->metrics_listen : "-"));
	}
	return ctl;
fail:
	control_close(ctl);
	return NULL;
}

void
control_set_config(struct control *ctl, uint32_t digest)
{
	if (ctl == NULL)
		return;
	ctl->digest = digest;
	ctl->applied = time(NULL);
}

void
control_set_workers(struct control *ctl, struct stats_shm *shm, int n)
{
	ctl->shm = shm;
	ctl->nworkers = shm != NULL ? n : 0;
	/* render_config()'s families: a worker's records of these names
	 * would print a digest of its choosing beside the supervisor's, or
	 * a second HELP and TYPE that fails the whole scrape */
	stats_reserve("mxguard_config_info");
	stats_reserve("mxguard_config_applied_timestamp_seconds");
	stats_reserve("mxguard_config_workers_other");
}

void
control_close(struct control *ctl)
{
	int i;

	if (ctl == NULL)
		return;
	while (ctl->conns)
		conn_free(ctl->conns);
	for (i = 0; i < CTL_NLISTENERS; i++) {
		struct listener *l = &ctl->l[i];

		ev_timer_free(l->resume);
		if (l->fd == -1)
			continue;
		ev_fd_del(ctl->loop, l->fd);
		close(l->fd);
		if (i == CTL_UNIX && ctl->path)
			(void)unlink(ctl->path);
	}
	free(ctl->path);
	free(ctl->state_dir);
	free(ctl);
}
