/*
 * priv.c - dropping root (see priv.h).
 *
 * As root: the state directory is created and given to `user`, every
 * capability but the one kept leaves the bounding set, then
 * PR_SET_KEEPCAPS lets setresuid() keep the permitted set, and capset()
 * leaves that one alone in the permitted and effective sets.  The one
 * kept: SO_MARK on each new upstream socket needs CAP_NET_RAW (Linux
 * 5.17 and later) or CAP_NET_ADMIN.  A process that reads the netlink
 * queue keeps CAP_NET_ADMIN, which nfnetlink asks of every verdict; any
 * other (a worker, steering = none) keeps CAP_NET_RAW where the kernel
 * takes it for SO_MARK (tried first with it alone effective), so that a
 * compromised worker cannot rewrite the netfilter rules that steer the
 * flows.  No libcap: the two syscalls are enough.  Every step is
 * checked, the bounding set's too (a capability PR_CAPBSET_DROP could not
 * take out, for want of CAP_SETPCAP, refuses the drop), and the drop ends
 * with no_new_privs.
 *
 * Started unprivileged with capabilities (systemd User= with
 * AmbientCapabilities=), only the capability sets are trimmed.
 *
 * state_dir belongs to `user` afterwards, so whatever runs as `user`
 * can put anything there: the daemon and the command line open the
 * stores in it only after this drop (cmd/run.c, priv_drop_cmd()), never
 * as root, which would follow a planted link.
 */
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <linux/capability.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cmd/priv.h"
#include "core/dirperm.h"
#include "core/log.h"
#include "core/sandbox.h"

/* Leaves cap alone in the permitted and effective sets; cap -1: none. */
static int
capset_only(int cap, char *err, size_t errsz)
{
	struct __user_cap_header_struct h = {
		.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct d[2];

	memset(d, 0, sizeof(d));
	if (cap >= 0)
		d[cap / 32].effective = d[cap / 32].permitted =
		    1u << (cap % 32);
	if (syscall(SYS_capset, &h, d) == -1) {
		snprintf(err, errsz, "capset: %s", strerror(errno));
		return -1;
	}
	/* no capability survives an exec */
	(void)prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
	return 0;
}

/* Is cap in this process's permitted set? */
static int
cap_held(int cap)
{
	struct __user_cap_header_struct h = {
		.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct d[2];

	if (syscall(SYS_capget, &h, d) == -1)
		return 0;
	return (d[cap / 32].permitted & (1u << (cap % 32))) != 0;
}

/*
 * Store files that root made (an mxguard before the stores were opened
 * only as `user`, or a run with `user` empty) are given to `user`, who
 * could not open them otherwise: the MTA-STS cache and the TLS history
 * would be lost to an upgrade.  Safe in a directory `user` controls: the
 * name is opened O_PATH|O_NOFOLLOW (nothing is read, a link stays a link)
 * and only a regular file with one link, root's, is changed, through that
 * descriptor: never a link's target, nor a root file hard-linked in.
 */
static void
give_root_stores(int dirfd, const char *dir, uid_t uid, gid_t gid)
{
	/* the stores' files: policy/cache.c, history.c, tlsrpt_store.c
	 * (the last also locks the TLSRPT run with tlsrpt.run.lock) */
	static const char *const names[] = { "sts-cache.mdb",
	    "sts-cache.mdb-lock", "history.mdb", "history.mdb-lock",
	    "tlsrpt.mdb", "tlsrpt.mdb-lock", "tlsrpt.run.lock" };
	struct stat st;
	size_t i;
	int f;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if ((f = openat(dirfd, names[i], O_PATH | O_NOFOLLOW |
		    O_CLOEXEC)) == -1)
			continue;
		if (fstat(f, &st) == 0 && S_ISREG(st.st_mode) &&
		    st.st_nlink == 1 && st.st_uid == 0) {
			if (fchownat(f, "", uid, gid, AT_EMPTY_PATH) == 0)
				log_info("event=state-file-owner file=%s/%s "
				    "uid=%ld note=\"made by root, given to "
				    "user\"", dir, names[i], (long)uid);
			else
				log_warn("event=state-file-owner file=%s/%s "
				    "error=\"chown: %s\"", dir, names[i],
				    strerror(errno));
		}
		close(f);
	}
}

/* Only root may change the entries of the directory st describes: its
 * owner is root and no one else may write it (a group write for group
 * 0 aside). */
static int
root_only_dir(const struct stat *st)
{
	return st->st_uid == 0 && !(st->st_mode & S_IWOTH) &&
	    (!(st->st_mode & S_IWGRP) || st->st_gid == 0);
}

#define LINK_DEPTH_MAX	8

/*
 * dirfd/name is a symbolic link in place of a parent of state_dir.  It
 * is followed only when root made it in a directory only root may write
 * (/var/lib linked to another disk): no one else can have put it there.
 * Its target is then walked a component at a time with the same rules,
 * nothing made there: each a directory, or such a link.  The directory's
 * descriptor; -1 with err said when the target cannot be walked; -2 when
 * the link is not to be followed (the caller refuses it).
 */
static int
follow_root_link(int dirfd, const char *name, int depth, char *err,
    size_t errsz)
{
	struct stat ds, ls;
	char target[PATH_MAX], *c, *next;
	ssize_t n;
	int fd, sub;

	if (depth >= LINK_DEPTH_MAX || fstat(dirfd, &ds) == -1 ||
	    fstatat(dirfd, name, &ls, AT_SYMLINK_NOFOLLOW) == -1 ||
	    !S_ISLNK(ls.st_mode) || ls.st_uid != 0 || !root_only_dir(&ds))
		return -2;
	if ((n = readlinkat(dirfd, name, target, sizeof(target) - 1)) <= 0)
		return -2;
	target[n] = '\0';
	if ((fd = openat(dirfd, *target == '/' ? "/" : ".", O_RDONLY |
	    O_DIRECTORY | O_CLOEXEC)) == -1)
		goto fail;
	for (c = target; *c != '\0'; c = next) {
		if ((next = strchr(c, '/')) != NULL)
			*next++ = '\0';
		else
			next = c + strlen(c);
		if (*c == '\0' || strcmp(c, ".") == 0)
			continue;
		if ((sub = openat(fd, c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		    O_CLOEXEC)) == -1 && (errno == ELOOP || errno == ENOTDIR))
			sub = follow_root_link(fd, c, depth + 1, err, errsz);
		close(fd);
		if ((fd = sub) == -2) {
			snprintf(err, errsz, "state_dir: a symbolic link of root's "
			    "leads through %s, which is a symbolic link that is "
			    "not root's or lies where others may write: refused "
			    "(give the real path)", c);
			return -1;
		}
		if (fd == -1)
			goto fail;
	}
	return fd;
fail:
	if (*err == '\0')
		snprintf(err, errsz, "state_dir: following the symbolic link "
		    "%s (to %s): %s", name, target, strerror(errno));
	return -1;
}

/*
 * The directory dirfd/name, opened without following a symbolic link
 * and made when missing (0750 the last component of state_dir, 0755 a
 * parent); path: what has been walked of state_dir dir so far, name
 * last, for the error.  -1 and err said when it cannot be, or is a
 * symbolic link or no directory.
 */
static int
open_dir_at(int dirfd, const char *name, int last, const char *dir,
    const char *path, char *err, size_t errsz)
{
	int fd, made = 0;

	for (;;) {
		if ((fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY |
		    O_NOFOLLOW | O_CLOEXEC)) != -1)
			return fd;
		if (errno != ENOENT || made)
			break;
		/* missing: made, then opened as any other (whatever took
		 * its place in between is judged the same way) */
		if (mkdirat(dirfd, name, last ? 0750 : 0755) == -1 &&
		    errno != EEXIST) {
			snprintf(err, errsz, "mkdir %s: %s", path,
			    strerror(errno));
			return -1;
		}
		made = 1;
	}
	if ((errno == ELOOP || errno == ENOTDIR) && !last) {
		/* a parent that is a link root made where only root writes:
		 * followed (follow_root_link()) */
		int saved = errno;

		*err = '\0';
		if ((fd = follow_root_link(dirfd, name, 0, err, errsz)) >= 0)
			return fd;
		if (fd == -1)
			return -1;
		errno = saved;
	}
	if ((errno == ELOOP || errno == ENOTDIR) && last)
		snprintf(err, errsz, "state_dir %s: not a directory (a "
		    "symbolic link is refused: give the real path)", path);
	else if (errno == ELOOP || errno == ENOTDIR)
		snprintf(err, errsz, "state_dir %s: %s is not a directory (a "
		    "symbolic link above state_dir is followed only when it "
		    "is root's, in a directory only root may write: give the "
		    "real path)", dir, path);
	else if (last)
		snprintf(err, errsz, "state_dir %s: %s", path,
		    strerror(errno));
	else
		snprintf(err, errsz, "state_dir %s: %s: %s", dir, path,
		    strerror(errno));
	return -1;
}

/*
 * mkdir -p: the parents 0755, state_dir itself 0750, which must be a
 * directory and is given to uid/gid.  Walked a component at a time from
 * "/" (from the working directory for a relative path), each opened
 * without following a symbolic link: a link planted in place of state_dir
 * or of any directory above it (whoever may write its parent: `user`,
 * when state_dir lies below a directory of theirs) must not make root
 * make a directory where the link leads, nor give the link's target to
 * `user`.
 */
static int
make_state_dir(const char *dir, uid_t uid, gid_t gid, char *err,
    size_t errsz)
{
	char path[4096], walked[4096];
	char *name, *next;
	size_t len;
	struct stat st;
	enum dir_writer w;
	uid_t me;
	gid_t mygid;
	int fd, sub;

	if (*dir == '\0')
		return 0;
	if (snprintf(path, sizeof(path), "%s", dir) >= (int)sizeof(path)) {
		snprintf(err, errsz, "state_dir: path too long");
		return -1;
	}
	len = 0;
	if (*path == '/')
		walked[len++] = '/';
	walked[len] = '\0';
	if ((fd = open(*path == '/' ? "/" : ".", O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC)) == -1) {
		snprintf(err, errsz, "state_dir %s: opening %s: %s", dir,
		    *path == '/' ? "/" : "the working directory",
		    strerror(errno));
		goto fail;
	}
	for (name = path; *name == '/'; name++)
		;
	/* "/" alone: the root directory itself */
	while (*name != '\0') {
		next = strchr(name, '/');
		if (next != NULL)
			*next++ = '\0';
		/* walked: the path so far, as given less repeated slashes;
		 * never longer than path, itself shorter than 4096 */
		len += (size_t)snprintf(walked + len, sizeof(walked) - len,
		    "%s%s", len > 0 && walked[len - 1] != '/' ? "/" : "",
		    name);
		while (next != NULL && *next == '/')
			next++;
		sub = open_dir_at(fd, name, next == NULL || *next == '\0',
		    dir, walked, err, errsz);
		close(fd);
		if ((fd = sub) == -1)
			goto fail;
		name = next != NULL ? next : "";
	}
	if (fstat(fd, &st) == -1) {
		snprintf(err, errsz, "state_dir %s: %s", walked,
		    strerror(errno));
		goto fail;
	}
	/*
	 * Not taken over: a directory another user owns, or that others can
	 * write.  Whoever could write it may have left files in it (their
	 * own sts-cache.mdb, still theirs to write after the chown: forged
	 * policies) or swap them later; and an existing directory of theirs
	 * (state_dir made in /tmp before the first start, or another
	 * service's named by mistake, or /tmp itself) is not root's to
	 * give to `user`.
	 */
	me = uid != (uid_t)-1 ? uid : geteuid();
	mygid = uid != (uid_t)-1 ? gid : getegid();
	if ((w = dir_writers(&st, me, mygid)) == DIRW_OWNER) {
		snprintf(err, errsz, "state_dir %s belongs to uid %ld, neither "
		    "root nor the user mxguard runs as: not taken over (make "
		    "it anew, or chown it to that user)", walked,
		    (long)st.st_uid);
		goto fail;
	}
	if (w != DIRW_NONE) {
		char who[32];

		if (w == DIRW_OTHERS)
			snprintf(who, sizeof(who), "others");
		else
			snprintf(who, sizeof(who), "group %ld",
			    (long)st.st_gid);
		snprintf(err, errsz, "state_dir %s is writable by %s (mode "
		    "%04o): not taken over (chmod go-w, or 0750 as the unit's "
		    "StateDirectoryMode=)", walked, who,
		    (unsigned)(st.st_mode & 07777));
		goto fail;
	}
	if (uid != (uid_t)-1 && (st.st_uid != uid || st.st_gid != gid) &&
	    fchown(fd, uid, gid) == -1) {
		snprintf(err, errsz, "chown %s: %s", walked, strerror(errno));
		goto fail;
	}
	if (uid != (uid_t)-1)
		give_root_stores(fd, walked, uid, gid);
	close(fd);
	return 0;
fail:
	if (fd != -1)
		close(fd);
	return -1;
}

/*
 * Whether SO_MARK works with CAP_NET_RAW alone effective (Linux 5.17 and
 * later): tried on a scratch socket, the permitted set unchanged, the
 * effective set put back after.  0 when it cannot even be tried.
 */
static int
mark_takes_net_raw(void)
{
	struct __user_cap_header_struct h = {
		.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct d[2], save[2];
	int fd, ok = 0;
	unsigned mark = 1;

	if (syscall(SYS_capget, &h, save) == -1)
		return 0;
	memcpy(d, save, sizeof(d));
	if (!(d[CAP_NET_RAW / 32].permitted & (1u << (CAP_NET_RAW % 32))))
		return 0;
	d[0].effective = d[1].effective = 0;
	d[CAP_NET_RAW / 32].effective = 1u << (CAP_NET_RAW % 32);
	if (syscall(SYS_capset, &h, d) == -1)
		return 0;
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) != -1) {
		ok = setsockopt(fd, SOL_SOCKET, SO_MARK, &mark,
		    sizeof(mark)) == 0;
		close(fd);
	}
	(void)syscall(SYS_capset, &h, save);
	return ok;
}

/* priv_drop(); keep: the capability that stays (KEEP_*). */
enum { KEEP_NONE, KEEP_NET_ADMIN, KEEP_MARK };

static int
drop_to_user(const struct config *cfg, int keep, char *err, size_t errsz)
{
	int cap = keep == KEEP_NONE ? -1 : keep == KEEP_MARK &&
	    mark_takes_net_raw() ? CAP_NET_RAW : CAP_NET_ADMIN;
	struct passwd *pw;
	uid_t uid;
	gid_t gid;
	unsigned long c;

	if (geteuid() != 0) {
		/* not root: every capability but the one kept goes (that
		 * one only if held; a test run as a user holds none) */
		if (make_state_dir(cfg->state_dir, (uid_t)-1, (gid_t)-1, err,
		    errsz) == -1)
			return -1;
		/* the one kept only if held: capset() cannot add it, and
		 * its failure must not leave every other one held */
		if (cap >= 0 && !cap_held(cap))
			cap = -1;
		return capset_only(cap, err, errsz);
	}
	if (*cfg->user == '\0') {
		log_info("event=privileges user=root note=\"user is empty: "
		    "running as root\"");
		return make_state_dir(cfg->state_dir, (uid_t)-1, (gid_t)-1,
		    err, errsz);
	}
	errno = 0;
	if ((pw = getpwnam(cfg->user)) == NULL) {
		snprintf(err, errsz, "user \"%s\": %s", cfg->user,
		    errno ? strerror(errno) : "no such user");
		return -1;
	}
	uid = pw->pw_uid;
	gid = pw->pw_gid;
	if (uid == 0) {
		snprintf(err, errsz, "user \"%s\" is root", cfg->user);
		return -1;
	}
	if (make_state_dir(cfg->state_dir, uid, gid, err, errsz) == -1)
		return -1;
	/* only the capability kept may ever come back.  A capability that
	 * stays in the bounding set (PR_CAPBSET_DROP needs CAP_SETPCAP) is
	 * a drop not done: refused, never passed over */
	for (c = 0; c <= 63; c++) {
		if (cap >= 0 && c == (unsigned long)cap)
			continue;
		if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) == 0)
			continue;
		if (errno == EINVAL)
			break;	/* past the kernel's last capability */
		if (prctl(PR_CAPBSET_READ, c, 0, 0, 0) != 0) {
			snprintf(err, errsz, "removing capability %lu from the "
			    "bounding set: %s%s", c, strerror(errno),
			    errno == EPERM ? " (CAP_SETPCAP is needed: keep "
			    "it in the unit's CapabilityBoundingSet=)" : "");
			return -1;
		}
	}
	if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) == -1) {
		snprintf(err, errsz, "PR_SET_KEEPCAPS: %s", strerror(errno));
		return -1;
	}
	if (setgroups(1, &gid) == -1 || setresgid(gid, gid, gid) == -1 ||
	    setresuid(uid, uid, uid) == -1) {
		snprintf(err, errsz, "switching to %s: %s", cfg->user,
		    strerror(errno));
		return -1;
	}
	(void)prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
	if (capset_only(cap, err, errsz) == -1)
		return -1;
	/* nothing exec'd from here on (nothing is) gains a privilege: a
	 * process that installs no seccomp filter (`mxguard policy`) too */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1) {
		snprintf(err, errsz, "PR_SET_NO_NEW_PRIVS: %s",
		    strerror(errno));
		return -1;
	}
	if (setuid(0) == 0) {
		snprintf(err, errsz, "could regain root after dropping it");
		return -1;
	}
	log_info("event=privileges user=%s uid=%ld gid=%ld caps=%s",
	    cfg->user, (long)uid, (long)gid, cap == CAP_NET_ADMIN ?
	    "cap_net_admin" : cap == CAP_NET_RAW ? "cap_net_raw" : "none");
	return 0;
}

int
priv_drop(const struct config *cfg, int nfnetlink, char *err, size_t errsz)
{
	return drop_to_user(cfg, nfnetlink ? KEEP_NET_ADMIN : KEEP_MARK, err,
	    errsz);
}

/*
 * The commands parse what the network sends after this (a hostile MX's
 * banner and certificates, a resolver's answers, a report endpoint's
 * reply), as a worker does: so they keep what a worker keeps for SO_MARK
 * (CAP_NET_RAW where the kernel takes it, which cannot change netfilter
 * rules, not CAP_NET_ADMIN, which can flush mxguard's own) and, keeping
 * one, take the worker's seccomp filter against raw and packet sockets.
 */
int
priv_drop_cmd(const struct config *cfg, int mark, char *err, size_t errsz)
{
	char why[400];

	if (geteuid() != 0 || *cfg->user == '\0')
		return 0;
	if (drop_to_user(cfg, mark ? KEEP_MARK : KEEP_NONE, why,
	    sizeof(why)) == -1) {
		snprintf(err, errsz, "dropping privileges to user \"%s\" "
		    "before opening the stores in %s: %s", cfg->user,
		    cfg->state_dir, why);
		return -1;
	}
	if (mark && sandbox_install(why, sizeof(why)) == -1) {
		snprintf(err, errsz, "after dropping privileges to user "
		    "\"%s\": %s", cfg->user, why);
		return -1;
	}
	if (mark)
		log_info("event=sandbox raw_sockets=denied "
		    "packet_sockets=denied io_uring=denied");
	return 0;
}
