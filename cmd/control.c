/*
 * control.c - the daemon's control socket and Prometheus endpoint (see
 * control.h).  Both are one-shot request/response servers on the event
 * loop:
 *
 *   unix socket (control_socket): the client sends one line, "status" or
 *     "metrics", and reads the answer until EOF.  "status" is a header
 *     (pid, uptime) and every counter as "name value"; "metrics" is the
 *     Prometheus text format.
 *   TCP (metrics_listen, off when empty): HTTP/1.0 or 1.1 GET /metrics,
 *     answered with Connection: close.
 *
 * The request grammar is in ctlreq.c (fuzzed by tests/fuzz/fuzz_control.c).
 * A connection has CTL_TIMEOUT_MS to send its request; requests are capped
 * at CTL_MAX_REQ bytes and connections at CTL_MAX_CONN.
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmd/control.h"
#include "cmd/ctlreq.h"
#include "core/log.h"
#include "core/stats.h"

#define CTL_MAX_REQ	4096
#define CTL_MAX_CONN	32
#define CTL_TIMEOUT_MS	5000

struct control;

struct cconn {
	struct control	*ctl;
	struct cconn	*next;
	int		 fd;
	int		 http;
	char		 req[CTL_MAX_REQ + 1];
	size_t		 reqlen;
	char		*out;
	size_t		 outlen, outoff;
	struct ev_timer	*timer;
};

struct control {
	struct ev_loop	*loop;
	int		 ufd, tfd;
	char		*path;
	struct cconn	*conns;
	int		 nconns;
	time_t		 started;
	struct stat_ctr	*st_requests;
};

static void conn_free(struct cconn *);

static void
conn_timeout(void *arg)
{
	conn_free(arg);
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
	c->ctl->nconns--;
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

/* The body of an answer: "status" (plain) or "metrics" (Prometheus). */
static int
render(struct control *ctl, int prometheus, char **buf, size_t *len)
{
	FILE *fp;

	if ((fp = open_memstream(buf, len)) == NULL)
		return -1;
	if (prometheus)
		stats_write_prometheus(fp);
	else {
		fprintf(fp, "# mxguard pid %ld, up %llds\n", (long)getpid(),
		    (long long)(time(NULL) - ctl->started));
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
	ev_timer_arm(c->timer, CTL_TIMEOUT_MS);
	if (ev_fd_set(c->ctl->loop, c->fd, EV_WRITE, conn_write_cb, c) == -1)
		goto fail;
	conn_write_cb(c->fd, EV_WRITE, c);
	return;
fail:
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

static void
accept_cb(int lfd, int events, void *arg)
{
	struct control *ctl = arg;
	int fd, i;

	for (i = 0; i < 16; i++) {
		struct cconn *c;

		if ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK |
		    SOCK_CLOEXEC)) == -1)
			return;
		if (ctl->nconns >= CTL_MAX_CONN ||
		    (c = calloc(1, sizeof(*c))) == NULL) {
			close(fd);
			continue;
		}
		c->ctl = ctl;
		c->fd = fd;
		c->http = lfd == ctl->tfd;
		if ((c->timer = ev_timer_new(ctl->loop, conn_timeout, c)) ==
		    NULL || ev_fd_set(ctl->loop, fd, EV_READ, conn_read_cb,
		    c) == -1) {
			if (c->timer)
				ev_timer_free(c->timer);
			close(fd);
			free(c);
			continue;
		}
		c->next = ctl->conns;
		ctl->conns = c;
		ctl->nconns++;
		ev_timer_arm(c->timer, CTL_TIMEOUT_MS);
	}
}

/*
 * Creates the socket's directory if missing (0755, owned by `user`).  It
 * is given away through a descriptor opened with O_NOFOLLOW: whatever
 * replaces the new directory by a symbolic link between mkdir() and here
 * does not get the link's target chowned.
 */
static void
make_parent(const char *path, uid_t uid, gid_t gid)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char *slash, q[256];
	int fd;

	snprintf(dir, sizeof(dir), "%s", path);
	if ((slash = strrchr(dir, '/')) == NULL || slash == dir)
		return;
	*slash = '\0';
	if (mkdir(dir, 0755) == -1 || uid == (uid_t)-1)
		return;
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC)) == -1 || fchown(fd, uid, gid) == -1)
		log_warn("event=control-chown path=%s error=\"%s\"",
		    log_q(q, sizeof(q), dir), strerror(errno));
	if (fd != -1)
		close(fd);
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
	make_parent(cfg->control_socket, uid, gid);
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
	ctl->ufd = fd;
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
	ctl->tfd = fd;
	return 0;
}

struct control *
control_open(struct ev_loop *loop, const struct config *cfg, char *err,
    size_t errsz)
{
	struct control *ctl;

	if ((ctl = calloc(1, sizeof(*ctl))) == NULL) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	ctl->loop = loop;
	ctl->ufd = ctl->tfd = -1;
	ctl->started = time(NULL);
	ctl->st_requests = stats_get("mxguard_control_requests_total",
	    "Requests answered on the control socket and metrics endpoint");
	if (*cfg->control_socket) {
		if (open_unix(ctl, cfg, err, errsz) == -1)
			goto fail;
		if ((ctl->path = strdup(cfg->control_socket)) == NULL ||
		    ev_fd_set(loop, ctl->ufd, EV_READ, accept_cb, ctl) == -1) {
			snprintf(err, errsz, "out of memory");
			goto fail;
		}
	}
	if (*cfg->metrics_listen) {
		if (open_tcp(ctl, cfg, err, errsz) == -1)
			goto fail;
		if (ev_fd_set(loop, ctl->tfd, EV_READ, accept_cb, ctl) == -1) {
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
control_close(struct control *ctl)
{
	if (ctl == NULL)
		return;
	while (ctl->conns)
		conn_free(ctl->conns);
	if (ctl->ufd != -1) {
		ev_fd_del(ctl->loop, ctl->ufd);
		close(ctl->ufd);
		if (ctl->path)
			(void)unlink(ctl->path);
	}
	if (ctl->tfd != -1) {
		ev_fd_del(ctl->loop, ctl->tfd);
		close(ctl->tfd);
	}
	free(ctl->path);
	free(ctl);
}
