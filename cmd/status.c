/*
 * status.c - `mxguard status [--metrics]`: asks the running daemon over
 * its control socket (cmd/control.c; with none on the file's, the one
 * its record names: cmd_record_daemon()) and prints the answer: summary
 * lines (pid, uptime; the digest of the configuration it runs, see
 * cmd/control.h) and every counter as "name value", or with --metrics the same
 * counters in Prometheus text format.  Exit 0, or 1 when no daemon
 * answers or it answers with an error ("error busy": its control
 * connections are all taken; "error ..."), which goes to stderr.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "cmd/cmd.h"
#include "core/dirperm.h"
#include "core/cidr.h"


/*
 * A connection to the daemon's control socket at path, with secs for
 * connecting (a unix connect waits while the backlog is full), sending
 * and each read; -1 with errno.
 */
static int
ctl_connect(const char *path, int secs)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct timeval tv = { secs, 0 };
	int fd;

	if (strlen(path) >= sizeof(sun.sun_path) || *path == '\0') {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(sun.sun_path, path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		int saved = errno;

		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

/*
 * The daemon's record of where it runs: a reload keeps the start's
 * control_socket and state_dir (config_keep_start_keys()), so a file
 * edited since no longer says where the running daemon listens.  Root
 * writes the record at the start, before the privilege drop, in a
 * directory only root writes (RuntimeDirectory=, /run/mxguard), named
 * after the configuration file's path, which an edit does not change,
 * and not after anything in it.  `user` cannot write there: a worker
 * taken over cannot point root's commands (rules watch) at a socket of
 * its own.  A command trusts the record only when the directory and the
 * file are root's (or its own user's, who wrote them) and nobody else's
 * to write, it names this very file, and the socket it names is
 * listened on by the process it names (SO_PEERCRED): a record left by a
 * daemon gone is no daemon.  MXGUARD_RUNDIR moves the directory (the
 * tests).
 */
static const char *
rundir(void)
{
	const char *d = secure_getenv("MXGUARD_RUNDIR");

	return d != NULL && *d == '/' ? d : CMD_RUNDIR;
}

/* The record's path for the configuration file at config_path, and the
 * file's absolute path in conf; -1 when there is none to record. */
static int
record_path(const char *config_path, char *conf, size_t confsz, char *rec,
    size_t recsz)
{
	uint64_t h = 14695981039346656037ULL;	/* FNV-1a */
	const char *p;
	char *rp;
	int n;

	if (config_path == NULL || (rp = realpath(config_path, NULL)) == NULL)
		return -1;
	for (p = rp; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	n = snprintf(conf, confsz, "%s", rp);
	free(rp);
	if (n < 0 || (size_t)n >= confsz)
		return -1;
	n = snprintf(rec, recsz, "%s/daemon-%016llx", rundir(),
	    (unsigned long long)h);
	return n < 0 || (size_t)n >= recsz ? -1 : 0;
}

int
cmd_record_daemon(const char *config_path, const struct config *cfg,
    char *err, size_t errsz)
{
	char conf[PATH_MAX], rec[PATH_MAX], tmp[PATH_MAX + 32];
	struct stat st;
	FILE *fp = NULL;
	int fd = -1;

	*err = '\0';
	if (config_path == NULL)	/* the defaults: nothing to edit */
		return 0;
	if (record_path(config_path, conf, sizeof(conf), rec,
	    sizeof(rec)) == -1) {
		snprintf(err, errsz, "%s: %s", config_path, errno ?
		    strerror(errno) : "path too long");
		return -1;
	}
	if (strchr(conf, '\n') || strchr(cfg->control_socket, '\n') ||
	    strchr(cfg->state_dir, '\n')) {
		snprintf(err, errsz, "a path with a newline");
		return -1;
	}
	/* root's, as RuntimeDirectory= makes it (see make_parent()) */
	(void)mkdir(rundir(), 0755);
	if (lstat(rundir(), &st) == -1 || !S_ISDIR(st.st_mode) ||
	    dir_writers(&st, geteuid(), (gid_t)-1) != DIRW_NONE) {
		snprintf(err, errsz, "%s: not a directory only root writes",
		    rundir());
		return -1;
	}
	snprintf(tmp, sizeof(tmp), "%s.%ld", rec, (long)getpid());
	(void)unlink(tmp);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, 0644)) == -1 || fchmod(fd, 0644) == -1 ||
	    (fp = fdopen(fd, "w")) == NULL)
		goto fail;
	fd = -1;
	fprintf(fp, "pid %ld\nconfig %s\ncontrol_socket %s\nstate_dir %s\n",
	    (long)getpid(), conf, cfg->control_socket, cfg->state_dir);
	if (fclose(fp) == EOF) {
		fp = NULL;
		goto fail;
	}
	fp = NULL;
	if (rename(tmp, rec) == -1)
		goto fail;
	return 0;
fail:
	snprintf(err, errsz, "%s: %s", tmp, strerror(errno));
	if (fp != NULL)
		fclose(fp);
	if (fd != -1)
		close(fd);
	(void)unlink(tmp);
	return -1;
}

/* The configuration file's path the commands were given (main.c), for
 * the daemon's record */
static const char *config_path;

void
cmd_set_config_path(const char *path)
{
	config_path = path;
}

/*
 * The record of a daemon started on this very configuration file: its
 * pid and control socket; -1 when there is none to trust (see rundir()).
 */
static int
record_read(pid_t *pid, char *sock, size_t socksz)
{
	char conf[PATH_MAX], rec[PATH_MAX], buf[3 * PATH_MAX + 256], *p, *e;
	struct stat st, dst;
	ssize_t n;
	long v;
	int fd, ok = 0;

	if (record_path(config_path, conf, sizeof(conf), rec,
	    sizeof(rec)) == -1 || lstat(rundir(), &dst) == -1 ||
	    !S_ISDIR(dst.st_mode) || dir_writers(&dst, geteuid(),
	    (gid_t)-1) != DIRW_NONE)
		return -1;
	if ((fd = open(rec, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) == -1)
		return -1;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (st.st_uid == 0 ||
	    st.st_uid == geteuid()) && (st.st_mode & 022) == 0 &&
	    (n = read(fd, buf, sizeof(buf) - 1)) > 0) {
		buf[n] = '\0';
		ok = 1;
	}
	close(fd);
	if (!ok || strncmp(buf, "pid ", 4) != 0 ||
	    (v = strtol(buf + 4, &p, 10)) <= 0 || strncmp(p, "\nconfig ", 8)
	    != 0 || (e = strchr(p += 8, '\n')) == NULL ||
	    (size_t)(e - p) != strlen(conf) || strncmp(p, conf, e - p) != 0 ||
	    strncmp(e, "\ncontrol_socket ", 16) != 0 ||
	    (p = strchr(e += 16, '\n')) == NULL || (size_t)(p - e) >= socksz)
		return -1;
	*pid = (pid_t)v;
	snprintf(sock, socksz, "%.*s", (int)(p - e), e);
	return 0;
}

/* How daemon_digest() found the daemon. */
enum { DG_ANSWERED, DG_NONE, DG_BUSY };

/*
 * The digest of the configuration the daemon runs, from the second line
 * of its status ("# config digest 1a2b3c4d, applied ..."): DG_ANSWERED
 * with *digest.  DG_NONE when no daemon is there: no socket file, nobody
 * listening (ECONNREFUSED), or the process that listens on it is gone (a
 * child holding the descriptor on).  DG_BUSY when one is there but did
 * not say: its connections all taken ("error busy": anyone who may
 * connect can hold them, the daemon's `user` included), its backlog full
 * (EAGAIN) or no answer in time, another answer (an older daemon without
 * the line).  `rules watch` must not take a busy daemon for a dead one.
 * sdir gets the state_dir it runs with ("# state_dir ..."), "" from a
 * daemon that does not say.
 */
static int
daemon_digest(const char *path, pid_t pid, uint32_t *digest, char *sdir,
    size_t sdirsz)
{
	static const char tag[] = "\n# config digest ", dtag[] =
	    "\n# state_dir ";
	struct ucred cr;
	socklen_t crlen = sizeof(cr);
	/* room for the digest line and the state_dir line after it, the
	 * longest path make_state_dir() takes (4,095) */
	char buf[4096 + 1024], *p, *e;
	size_t len = 0;
	ssize_t n;
	int fd, rc = DG_BUSY;

	*sdir = '\0';
	if ((fd = ctl_connect(path, CMD_DIGEST_TIMEOUT_S)) == -1)
		return errno == ENOENT || errno == ECONNREFUSED ||
		    errno == ENOTDIR || errno == ENAMETOOLONG ? DG_NONE :
		    DG_BUSY;
	/* the listener's credentials from its listen(): a socket whose
	 * listener died is held by no daemon, whoever still has the fd */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &crlen) == -1)
		cr.pid = 0;
	if (cr.pid > 0 && kill(cr.pid, 0) == -1 && errno == ESRCH) {
		rc = DG_NONE;
		goto out;
	}
	/* a recorded daemon's socket: listened on by that daemon */
	if (pid > 0 && cr.pid != pid) {
		rc = DG_NONE;
		goto out;
	}
	if (send(fd, "status\n", 7, MSG_NOSIGNAL) != 7)
		goto out;
	(void)shutdown(fd, SHUT_WR);
	/* the header is all that is wanted: up to the end of the line
	 * after the digest's (the state_dir's; a daemon without it says
	 * something else there) */
	while (len < sizeof(buf) - 1) {
		if ((n = read(fd, buf + len, sizeof(buf) - 1 - len)) == -1 &&
		    errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		buf[len] = '\0';
		if ((p = strstr(buf, tag)) != NULL &&
		    (p = strchr(p + 1, '\n')) != NULL &&
		    strchr(p + 1, '\n') != NULL)
			break;
	}
	buf[len] = '\0';
	if ((p = strstr(buf, tag)) == NULL)
		goto out;
	p += sizeof(tag) - 1;
	if (strspn(p, "0123456789abcdef") == 8 && p[8] == ',') {
		*digest = (uint32_t)strtoul(p, NULL, 16);
		rc = DG_ANSWERED;
	}
	if ((p = strstr(buf, dtag)) != NULL &&
	    (e = strchr(p += sizeof(dtag) - 1, '\n')) != NULL)
		snprintf(sdir, sdirsz, "%.*s", (int)(e - p), p);
out:
	close(fd);
	return rc;
}

/* The same directory, however spelled (a trailing slash, a symbolic
 * link in a parent): a string compare alone took those for another. */
static int
same_dir(const char *a, const char *b)
{
	struct stat sa, sb;

	return stat(a, &sa) == 0 && stat(b, &sb) == 0 &&
	    S_ISDIR(sa.st_mode) && sa.st_dev == sb.st_dev &&
	    sa.st_ino == sb.st_ino;
}

void
cmd_config_vs_daemon(const struct config *cfg, struct cmd_cfgcheck *c)
{
	char rsock[sizeof(((struct sockaddr_un *)0)->sun_path)];
	pid_t rpid = 0;
	size_t n = 0;
	char *p;

	memset(c, 0, sizeof(*c));
	c->file = config_digest32(cfg);
	switch (daemon_digest(cfg->control_socket, 0, &c->daemon, c->state_dir,
	    sizeof(c->state_dir))) {
	case DG_NONE:
		/* none on the file's: one started on this file may listen
		 * on its start's (a reload keeps it) */
		if (record_read(&rpid, rsock, sizeof(rsock)) == -1 ||
		    strcmp(rsock, cfg->control_socket) == 0)
			return;
		switch (daemon_digest(rsock, rpid, &c->daemon, c->state_dir,
		    sizeof(c->state_dir))) {
		case DG_NONE:
			return;
		case DG_BUSY:
			c->busy = 1;
			break;
		}
		snprintf(c->socket, sizeof(c->socket), "%s", rsock);
		if (c->busy)
			return;
		break;
	case DG_BUSY:
		c->busy = 1;
		return;
	}
	c->reached = 1;
	/* a reload keeps the start's state_dir (config_keep_start_keys()),
	 * and the digest is the file's then: said apart */
	if (*c->state_dir && strcmp(c->state_dir, cfg->state_dir) != 0 &&
	    !same_dir(c->state_dir, cfg->state_dir)) {
		/* the answer's bytes go to a terminal: with workers = 1 the
		 * process that answers parses the network */
		for (p = c->state_dir; *p; p++)
			if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
				*p = '?';
		n = (size_t)snprintf(c->warning, sizeof(c->warning), "the "
		    "daemon runs with state_dir %.200s, kept from its start (a "
		    "reload does not move it), not the file's %.200s: this "
		    "reads the stores in %.200s; restart mxguard for the "
		    "file's to apply",
		    c->state_dir, cfg->state_dir, cfg->state_dir);
		c->other_dir = 1;
	} else if (c->daemon != c->file) {
		n = (size_t)snprintf(c->warning, sizeof(c->warning), "this "
		    "answer is for the configuration file on disk (digest "
		    "%08x), not for the one the daemon runs (digest %08x): it "
		    "takes the file at a reload, or its log says why it "
		    "refused it", c->file, c->daemon);
		/* the file's digest covers tls_policy_file's bytes: one
		 * this user cannot read makes another digest than the
		 * daemon's */
		if (cfg->digest_errno != 0 && n < sizeof(c->warning))
			n += (size_t)snprintf(c->warning + n,
			    sizeof(c->warning) - n, " (here tls_policy_file "
			    "%.200s could not be read: %s)",
			    cfg->tls_policy_file, strerror(cfg->digest_errno));
	}
	if (*c->socket && n < sizeof(c->warning))
		snprintf(c->warning + n, sizeof(c->warning) - n, "%sthe daemon "
		    "listens on control_socket %s, kept from its start, not "
		    "the file's %.200s: asked there; restart mxguard for the "
		    "file's to apply", n > 0 ? "; " : "", c->socket,
		    cfg->control_socket);
}

void
cmd_config_json(json_t *root, const struct cmd_cfgcheck *c)
{
	char d[16];

	snprintf(d, sizeof(d), "%08x", c->file);
	json_object_set_new(root, "config_digest", json_string(d));
	snprintf(d, sizeof(d), "%08x", c->daemon);
	json_object_set_new(root, "daemon_config_digest", c->reached ?
	    json_string(d) : json_null());
	json_object_set_new(root, "config_warning", *c->warning ?
	    json_string(c->warning) : json_null());
}

/* put_clean()'s state between reads: a UTF-8 sequence begun */
struct clean {
	unsigned char	 seq[4];	/* the sequence so far */
	size_t		 len;
	size_t		 need;		/* continuation bytes still to come */
	unsigned char	 lo, hi;	/* the next one's range */
	uint32_t	 cp;
};

/*
 * Printable-looking code points that change what a terminal shows
 * around them, or show nothing: the bidirectional controls (U+061C,
 * U+200E-U+200F, U+202A-U+202E, U+2066-U+2069) reorder the rest of a
 * line ("Trojan Source": a label value from the network that reads
 * otherwise than its bytes), and the invisible format characters (soft
 * hyphen, zero-width spaces and joiners, word joiner and invisible
 * operators, line and paragraph separators, the byte order mark, the
 * tag characters) hide text or make two values look alike.
 */
static int
hidden(uint32_t cp)
{
	return cp == 0xad || cp == 0x61c || cp == 0x180e ||
	    (cp >= 0x200b && cp <= 0x200f) ||
	    (cp >= 0x2028 && cp <= 0x202e) ||
	    (cp >= 0x2060 && cp <= 0x206f) || cp == 0xfeff ||
	    (cp >= 0xe0000 && cp <= 0xe007f);
}

/*
 * The daemon's answer as a terminal may show it.  With workers = 1 the
 * process that answers is the one that parses the network, and one taken
 * over would otherwise write escape sequences to the terminal of whoever
 * asks, root's say (set its title, answer-back, the clipboard); label
 * values carry names and text from the network in any case.  So only
 * newline and valid UTF-8 of printable code points go through: every
 * other C0 byte, DEL, a C1 control (U+0080-U+009F: some terminals act on
 * U+009B as on ESC [), a bidirectional or invisible format character
 * (hidden()), and each invalid sequence (a stray 0x80-0xbf, a
 * raw C1 byte that a terminal in an 8-bit mode takes for one, an overlong
 * form, a surrogate, beyond U+10FFFF, a sequence cut short) become one
 * '?'.  Neither text format has another control byte.  A sequence split
 * across reads waits in *st for its rest; put_clean_end() prints what
 * is left of one at the end of the answer.
 */
static void
put_clean(FILE *fp, const char *buf, size_t n, struct clean *st)
{
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)buf[i];

		if (st->need > 0) {
			if (c >= st->lo && c <= st->hi) {
				st->seq[st->len++] = c;
				st->cp = st->cp << 6 | (c & 0x3f);
				st->lo = 0x80;
				st->hi = 0xbf;
				if (--st->need > 0)
					continue;
				if (st->cp <= 0x9f || hidden(st->cp))
					putc('?', fp);
				else
					fwrite(st->seq, 1, st->len, fp);
				st->len = 0;
				continue;
			}
			/* cut short: c starts afresh */
			putc('?', fp);
			st->need = st->len = 0;
		}
		st->lo = 0x80;
		st->hi = 0xbf;
		if (c < 0x80) {
			putc((c < 0x20 && c != '\n') || c == 0x7f ? '?' : c, fp);
			continue;
		}
		/* the second byte's range excludes overlong forms, the
		 * surrogates (0xed 0xa0-0xbf) and beyond U+10FFFF */
		if (c >= 0xc2 && c <= 0xdf)
			st->need = 1, st->cp = c & 0x1f;
		else if (c >= 0xe0 && c <= 0xef) {
			st->need = 2, st->cp = c & 0x0f;
			if (c == 0xe0)
				st->lo = 0xa0;
			else if (c == 0xed)
				st->hi = 0x9f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			st->need = 3, st->cp = c & 0x07;
			if (c == 0xf0)
				st->lo = 0x90;
			else if (c == 0xf4)
				st->hi = 0x8f;
		} else {
			putc('?', fp);
			continue;
		}
		st->seq[0] = c;
		st->len = 1;
	}
}

static void
put_clean_end(FILE *fp, struct clean *st)
{
	if (st->need > 0)
		putc('?', fp);
	memset(st, 0, sizeof(*st));
}

/*
 * A connection to the daemon started on this configuration file, on the
 * control socket its record names (record_read()) when that is not the
 * file's, and only when that socket's listener is the record's pid; -1
 * when there is none.
 */
static int
recorded_daemon(const struct config *cfg, char *sock, size_t socksz)
{
	struct ucred cr;
	socklen_t crlen = sizeof(cr);
	pid_t pid;
	int fd;

	if (record_read(&pid, sock, socksz) == -1 ||
	    strcmp(sock, cfg->control_socket) == 0 ||
	    (fd = ctl_connect(sock, 5)) == -1)
		return -1;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &crlen) == -1 ||
	    cr.pid != pid) {
		close(fd);
		return -1;
	}
	return fd;
}

int
cmd_status(int argc, char **argv, struct config *cfg,
    const struct cmd_opts *opts)
{
	const char *req = "status\n";
	char buf[8192], rsock[sizeof(((struct sockaddr_un *)0)->sun_path)];
	ssize_t n;
	struct clean cl = { 0 };
	int fd, first = 1;

	if (argc == 2 && strcmp(argv[1], "--metrics") == 0)
		req = "metrics\n";
	else if (argc != 1) {
		fprintf(stderr, "usage: mxguard [-c file] status [--metrics]\n");
		return 2;
	}
	if (strlen(cfg->control_socket) >= sizeof(((struct sockaddr_un *)0)->
	    sun_path) || *cfg->control_socket == '\0') {
		fprintf(stderr, "mxguard: status: no usable control_socket\n");
		return 1;
	}
	if ((fd = ctl_connect(cfg->control_socket, 5)) == -1) {
		int e = errno;

		/* a reload keeps the start's control_socket: the file's may
		 * not be where the daemon listens; its record says where */
		if ((e == ENOENT || e == ECONNREFUSED || e == ENOTDIR) &&
		    (fd = recorded_daemon(cfg, rsock, sizeof(rsock))) != -1)
			fprintf(stderr, "mxguard: status: no mxguard daemon "
			    "listens on control_socket %s, the file's; the one "
			    "started on this file listens on its start's, %s "
			    "(a reload keeps it), and answers below: restart "
			    "mxguard for the file's to apply\n",
			    cfg->control_socket, rsock);
		else if (e == ENOENT || e == ECONNREFUSED || e == ENOTDIR)
			fprintf(stderr, "mxguard: status: no mxguard daemon "
			    "listens on control_socket %s (%s): is it "
			    "running? If control_socket was edited since it "
			    "started, it listens on the old one until "
			    "restarted (a reload keeps it)\n",
			    cfg->control_socket, strerror(e));
		else
			fprintf(stderr, "mxguard: status: %s: %s (is mxguard "
			    "running?)\n", cfg->control_socket, strerror(e));
		if (fd == -1)
			return 1;
	}
	if (send(fd, req, strlen(req), MSG_NOSIGNAL) != (ssize_t)strlen(req)) {
		fprintf(stderr, "mxguard: status: send: %s\n", strerror(errno));
		close(fd);
		return 1;
	}
	(void)shutdown(fd, SHUT_WR);
	while ((n = read(fd, buf, sizeof(buf))) != 0) {
		if (n == -1) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "mxguard: status: read: %s\n",
			    strerror(errno));
			close(fd);
			return 1;
		}
		/* the daemon's refusal is one line, first and alone */
		if (first && (size_t)n >= 6 && memcmp(buf, "error ", 6) == 0) {
			fprintf(stderr, "mxguard: status: the daemon answered: ");
			put_clean(stderr, buf, (size_t)n, &cl);
			put_clean_end(stderr, &cl);
			if (buf[n - 1] != '\n')
				fputc('\n', stderr);
			close(fd);
			return 1;
		}
		first = 0;
		put_clean(stdout, buf, (size_t)n, &cl);
	}
	put_clean_end(stdout, &cl);
	close(fd);
	return fflush(stdout) == 0 ? 0 : 1;
}

int
cmd_bypassed_dst(const struct config *cfg, const struct sockaddr_storage *ss)
{
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
	const void *a;
	struct cidr c;
	int i, fam = ss->ss_family;

	if (fam == AF_INET)
		a = &((const struct sockaddr_in *)ss)->sin_addr;
	else if (fam == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
		fam = AF_INET;
		a = &s6->sin6_addr.s6_addr[12];
	} else if (fam == AF_INET6)
		a = &s6->sin6_addr;
	else
		return 0;
	for (i = 0; i < cfg->bypass_dst.n; i++)
		if (cidr_parse(cfg->bypass_dst.v[i], &c) == 0 &&
		    cidr_match(&c, fam, a))
			return 1;
	return 0;
}
