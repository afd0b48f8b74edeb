/*
 * test_priv.c - the state directory's hand-over at the drop (cmd/priv.c,
 * make_state_dir()), as root, each drop in a child of its own (a drop
 * cannot be undone): a directory that root made or that `user` already
 * owns is given to `user`; one that another user owns, or that others
 * can write, is refused and left as it was; so is a path with a symbolic
 * link in it, state_dir or a parent, nothing made or chowned where it
 * leads; what a command that sets SO_MARK keeps after its drop.
 * Skipped when not root.
 *
 * cmd/ is not in libmxguard.a, so the module is compiled in here.
 */
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <linux/capability.h>
#include <pwd.h>
#include <unistd.h>
#include <cmocka.h>

#include "cmd/priv.c"
#include "testconf.h"

#define OTHER_UID	54321	/* some other local user */

static char base[] = "/tmp/mxg-priv-XXXXXX";
static char sdir[128];
static uid_t nobody_uid;

static int
setup(void **state)
{
	struct passwd *pw;

	if (geteuid() != 0 || (pw = getpwnam("nobody")) == NULL)
		return 0;
	nobody_uid = pw->pw_uid;
	assert_non_null(mkdtemp(base));
	snprintf(sdir, sizeof(sdir), "%s/state", base);
	return 0;
}

static int
teardown(void **state)
{
	char cmd[256];

	if (*sdir != '\0') {
		snprintf(cmd, sizeof(cmd), "rm -rf %s", base);
		assert_int_equal(system(cmd), 0);
	}
	return 0;
}

/* priv_drop_cmd() with user = nobody and state_dir = dir in a child: its
 * exit status, 0 when it dropped, 1 when it refused; its error in err. */
static int
drop_in_child_at(const char *dir, char *err, size_t errsz)
{
	char text[256], e[400];
	int p[2], st;
	ssize_t n;
	pid_t pid;

	snprintf(text, sizeof(text), "user = nobody\nstate_dir = %s\n", dir);
	assert_int_equal(pipe(p), 0);
	assert_true((pid = fork()) >= 0);
	if (pid == 0) {
		struct config *cfg;
		int rc;

		close(p[0]);
		e[0] = '\0';
		if ((cfg = testconf_load(text, e, sizeof(e))) == NULL)
			_exit(3);
		rc = priv_drop_cmd(cfg, 0, e, sizeof(e));
		(void)!write(p[1], e, strlen(e));
		_exit(rc == 0 ? 0 : 1);
	}
	close(p[1]);
	n = read(p[0], err, errsz - 1);
	err[n > 0 ? n : 0] = '\0';
	close(p[0]);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	return WEXITSTATUS(st);
}

/* The same with state_dir = sdir. */
static int
drop_in_child(char *err, size_t errsz)
{
	return drop_in_child_at(sdir, err, errsz);
}

static void
fresh(mode_t mode, uid_t uid, gid_t gid)
{
	char cmd[256];

	/* whatever a test before left in it, failing */
	snprintf(cmd, sizeof(cmd), "rm -rf %s", sdir);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(mkdir(sdir, mode), 0);
	assert_int_equal(chmod(sdir, mode), 0);
	assert_int_equal(chown(sdir, uid, gid), 0);
}

static void
owner_is(uid_t uid, mode_t mode)
{
	struct stat st;

	assert_int_equal(lstat(sdir, &st), 0);
	assert_int_equal(st.st_uid, uid);
	assert_int_equal(st.st_mode & 07777, mode);
}

/* What a drop takes over: a directory it makes, root's, or `user`'s. */
static void
test_taken(void **state)
{
	char err[400];

	if (*sdir == '\0')
		skip();
	(void)rmdir(sdir);
	assert_int_equal(drop_in_child(err, sizeof(err)), 0);
	owner_is(nobody_uid, 0750);
	fresh(0750, 0, 0);
	assert_int_equal(drop_in_child(err, sizeof(err)), 0);
	owner_is(nobody_uid, 0750);
	assert_int_equal(drop_in_child(err, sizeof(err)), 0);
	owner_is(nobody_uid, 0750);
}

/* The state files root made (mxguard run, or a command, with user =
 * empty before `user` was set) are given to `user`, the TLSRPT run's lock
 * too: left root's 0600, every run of the daemon failed to open it. */
static void
test_root_files_given(void **state)
{
	static const char *const names[] = { "sts-cache.mdb",
	    "tlsrpt.run.lock" };
	char err[400], path[300];
	struct stat st;
	size_t i;
	int fd;

	if (*sdir == '\0')
		skip();
	fresh(0750, 0, 0);
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", sdir, names[i]);
		assert_true((fd = open(path, O_CREAT | O_WRONLY, 0600)) >= 0);
		close(fd);
	}
	assert_int_equal(drop_in_child(err, sizeof(err)), 0);
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", sdir, names[i]);
		assert_int_equal(stat(path, &st), 0);
		if (st.st_uid != nobody_uid)
			fail_msg("%s still uid %ld", names[i], (long)st.st_uid);
		assert_int_equal(unlink(path), 0);
	}
}

/*
 * A state_dir another user owns (made in a directory anyone may write,
 * such as /tmp, before mxguard's first start; or another service's
 * directory named by mistake) was given to `user`, and what that user
 * had left in it stayed theirs: a sts-cache.mdb of their own, which
 * they could go on writing (forged MTA-STS policies) after the chown.
 */
static void
test_other_users_refused(void **state)
{
	char err[400];

	if (*sdir == '\0')
		skip();
	fresh(0700, OTHER_UID, OTHER_UID);
	assert_int_equal(drop_in_child(err, sizeof(err)), 1);
	assert_non_null(strstr(err, "belongs to uid 54321"));
	owner_is(OTHER_UID, 0700);
}

/* One that others (or a group not `user`'s) may write: whoever can write
 * it can plant or swap store files; state_dir = /tmp gave /tmp away. */
static void
test_writable_by_others_refused(void **state)
{
	char err[400];

	if (*sdir == '\0')
		skip();
	fresh(01777, 0, 0);
	assert_int_equal(drop_in_child(err, sizeof(err)), 1);
	assert_non_null(strstr(err, "writable by others (mode 1777)"));
	owner_is(0, 01777);
	fresh(0770, 0, OTHER_UID);
	assert_int_equal(drop_in_child(err, sizeof(err)), 1);
	assert_non_null(strstr(err, "writable by group 54321"));
	owner_is(0, 0770);
}

/*
 * A state_dir two levels or more below a directory `user` owns: that user
 * can replace a directory between it and state_dir with a symbolic link
 * between two runs.  Only the last component was opened O_NOFOLLOW, the
 * ones before it were followed (mkdir -p), so root made state_dir where
 * the link led and gave it to `user`, or gave away a root directory
 * already there.  Here owned/ is nobody's, owned/a a link to victim/,
 * root's, and state_dir owned/a/b: the drop must refuse, naming owned/a
 * as a symbolic link, and victim/ must stay as it was, with no b made in
 * it, nor its b (root's) given to nobody.
 */
static void
test_link_in_parent_refused(void **state)
{
	char err[400], owned[64], link[80], victim[64], vb[80];
	char dir[96];
	struct stat st;
	int rc;

	if (*sdir == '\0')
		skip();
	snprintf(owned, sizeof(owned), "%s/owned", base);
	snprintf(link, sizeof(link), "%s/a", owned);
	snprintf(victim, sizeof(victim), "%s/victim", base);
	snprintf(vb, sizeof(vb), "%s/b", victim);
	snprintf(dir, sizeof(dir), "%s/b", link);
	assert_int_equal(mkdir(owned, 0755), 0);
	assert_int_equal(chown(owned, nobody_uid, 65534), 0);
	assert_int_equal(mkdir(victim, 0755), 0);
	assert_int_equal(chmod(victim, 0755), 0);
	/* as nobody would: a link of theirs, in their directory */
	assert_int_equal(symlink(victim, link), 0);
	assert_int_equal(lchown(link, nobody_uid, 65534), 0);

	/* (a) nothing there yet: nothing may be made there */
	rc = drop_in_child_at(dir, err, sizeof(err));
	if (lstat(vb, &st) == 0)
		fail_msg("%s made through the link (uid %ld, mode %04o); the "
		    "drop returned %d: \"%s\"", vb, (long)st.st_uid,
		    (unsigned)(st.st_mode & 07777), rc, err);
	assert_int_equal(rc, 1);
	if (strstr(err, link) == NULL || strstr(err, "symbolic link") == NULL)
		fail_msg("the error does not name %s as a symbolic link: "
		    "\"%s\"", link, err);
	/* (b) a root directory there: not given away */
	assert_int_equal(mkdir(vb, 0750), 0);
	assert_int_equal(chmod(vb, 0750), 0);
	rc = drop_in_child_at(dir, err, sizeof(err));
	assert_int_equal(lstat(vb, &st), 0);
	if (st.st_uid != 0 || st.st_gid != 0)
		fail_msg("%s given to uid %ld through the link; the drop "
		    "returned %d", vb, (long)st.st_uid, rc);
	assert_int_equal(rc, 1);
	assert_non_null(strstr(err, link));
	assert_int_equal(lstat(victim, &st), 0);
	assert_int_equal(st.st_uid, 0);
	assert_int_equal(st.st_mode & 07777, 0755);
}

/*
 * A parent that is a symbolic link root made in a directory only root
 * may write (/var/lib linked to another disk) is followed: only root can
 * have put it there.  Its target is walked with the same rules: a link
 * of another user's on the way there is refused all the same.
 */
static void
test_root_link_in_parent_followed(void **state)
{
	char err[400], trusted[64], lnk[80], real[64], dir[96], sd[96];
	char owned[64], ob[80], victim[64], lnk2[80], vs[96];
	struct stat st;
	int rc;

	if (*sdir == '\0')
		skip();
	snprintf(trusted, sizeof(trusted), "%s/trusted", base);
	snprintf(real, sizeof(real), "%s/real", base);
	snprintf(lnk, sizeof(lnk), "%s/lnk", trusted);
	snprintf(dir, sizeof(dir), "%s/sd", lnk);
	snprintf(sd, sizeof(sd), "%s/sd", real);
	assert_int_equal(mkdir(trusted, 0755), 0);
	assert_int_equal(chmod(trusted, 0755), 0);
	assert_int_equal(mkdir(real, 0755), 0);
	assert_int_equal(chmod(real, 0755), 0);
	assert_int_equal(symlink(real, lnk), 0);
	rc = drop_in_child_at(dir, err, sizeof(err));
	if (rc != 0)
		fail_msg("a link of root's in a directory of root's was refused: "
		    "\"%s\"", err);
	assert_int_equal(lstat(sd, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_uid, nobody_uid);

	/* root's link, but its target goes through nobody's link */
	snprintf(owned, sizeof(owned), "%s/owned2", base);
	snprintf(ob, sizeof(ob), "%s/b", owned);
	snprintf(victim, sizeof(victim), "%s/victim2", base);
	snprintf(lnk2, sizeof(lnk2), "%s/lnk2", trusted);
	snprintf(dir, sizeof(dir), "%s/sd", lnk2);
	snprintf(vs, sizeof(vs), "%s/sd", victim);
	assert_int_equal(mkdir(owned, 0755), 0);
	assert_int_equal(chown(owned, nobody_uid, 65534), 0);
	assert_int_equal(mkdir(victim, 0755), 0);
	assert_int_equal(symlink(victim, ob), 0);
	assert_int_equal(lchown(ob, nobody_uid, 65534), 0);
	assert_int_equal(symlink(ob, lnk2), 0);
	rc = drop_in_child_at(dir, err, sizeof(err));
	if (lstat(vs, &st) == 0)
		fail_msg("%s made through nobody's link (the drop returned "
		    "%d)", vs, rc);
	assert_int_equal(rc, 1);
	assert_non_null(strstr(err, "symbolic link"));

	/* root's link in a directory others may write: refused */
	assert_int_equal(chmod(trusted, 0777), 0);
	snprintf(dir, sizeof(dir), "%s/sd2", lnk);
	rc = drop_in_child_at(dir, err, sizeof(err));
	snprintf(sd, sizeof(sd), "%s/sd2", real);
	assert_int_equal(rc, 1);
	assert_int_not_equal(lstat(sd, &st), 0);
	assert_non_null(strstr(err, lnk));
}

/* A state_dir whose parents are missing is made as mkdir -p made it: the
 * parents root's, 0755 (umask permitting), state_dir 0750 and `user`'s;
 * "//" and "/./" change nothing.  A trailing slash neither (before, the
 * mkdir -p loop made state_dir as one of the parents: 0755). */
static void
test_parents_made(void **state)
{
	char err[400], top[64], mid[80], dir[96];
	struct stat st;
	mode_t um;

	if (*sdir == '\0')
		skip();
	snprintf(top, sizeof(top), "%s/deep", base);
	snprintf(mid, sizeof(mid), "%s/x", top);
	snprintf(dir, sizeof(dir), "%s//./deep/x/y", base);
	um = umask(022);
	assert_int_equal(drop_in_child_at(dir, err, sizeof(err)), 0);
	assert_int_equal(lstat(top, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_uid, 0);
	assert_int_equal(st.st_mode & 07777, 0755);
	assert_int_equal(lstat(mid, &st), 0);
	assert_int_equal(st.st_uid, 0);
	assert_int_equal(st.st_mode & 07777, 0755);
	snprintf(dir, sizeof(dir), "%s/y", mid);
	assert_int_equal(lstat(dir, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_uid, nobody_uid);
	assert_int_equal(st.st_mode & 07777, 0750);
	/* again: already there, nothing changes */
	assert_int_equal(drop_in_child_at(dir, err, sizeof(err)), 0);
	assert_int_equal(lstat(dir, &st), 0);
	assert_int_equal(st.st_uid, nobody_uid);
	assert_int_equal(st.st_mode & 07777, 0750);
	/* a trailing slash */
	snprintf(dir, sizeof(dir), "%s/z/", mid);
	assert_int_equal(drop_in_child_at(dir, err, sizeof(err)), 0);
	umask(um);
	assert_int_equal(lstat(dir, &st), 0);
	assert_int_equal(st.st_uid, nobody_uid);
	if ((st.st_mode & 07777) != 0750)
		fail_msg("%s made %04o, not 0750", dir,
		    (unsigned)(st.st_mode & 07777));
}

/*
 * `mxguard check` and `report send` kept CAP_NET_ADMIN after their drop,
 * and no seccomp filter, while parsing what a hostile MX, resolver or
 * report endpoint sends: taken over, the command could flush or rewrite
 * mxguard's netfilter rules, which a worker parsing the same cannot.
 * Where SO_MARK takes CAP_NET_RAW (Linux 5.17 on), the command now keeps
 * that, as a worker, and the worker's filter: SO_MARK works, CAP_NET_ADMIN
 * is gone, a raw socket is refused.
 */
static void
test_cmd_mark_keeps_net_raw(void **state)
{
	char text[256], e[400], out[512];
	int p[2], st;
	ssize_t n;
	pid_t pid;

	if (*sdir == '\0' || !mark_takes_net_raw())
		skip();
	(void)rmdir(sdir);
	snprintf(text, sizeof(text), "user = nobody\nstate_dir = %s\n", sdir);
	assert_int_equal(pipe(p), 0);
	assert_true((pid = fork()) >= 0);
	if (pid == 0) {
		struct __user_cap_header_struct h = {
			.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
		struct __user_cap_data_struct d[2];
		struct config *cfg;
		unsigned mark = 0x4d58;
		int fd;

		close(p[0]);
		e[0] = '\0';
		if ((cfg = testconf_load(text, e, sizeof(e))) == NULL ||
		    priv_drop_cmd(cfg, 1, e, sizeof(e)) == -1) {
			(void)!write(p[1], e, strlen(e));
			_exit(1);
		}
		out[0] = '\0';
		if (syscall(SYS_capget, &h, d) == -1 ||
		    (d[CAP_NET_ADMIN / 32].permitted &
		    (1u << (CAP_NET_ADMIN % 32))))
			strcat(out, "cap_net_admin kept; ");
		if ((fd = socket(AF_INET, SOCK_STREAM, 0)) == -1 ||
		    setsockopt(fd, SOL_SOCKET, SO_MARK, &mark,
		    sizeof(mark)) == -1)
			strcat(out, "no SO_MARK; ");
		if (fd != -1)
			close(fd);
		if ((fd = socket(AF_INET, SOCK_RAW, IPPROTO_TCP)) != -1) {
			strcat(out, "raw socket opened; ");
			close(fd);
		}
		if (prctl(PR_GET_SECCOMP, 0, 0, 0, 0) != 2)
			strcat(out, "no seccomp filter; ");
		(void)!write(p[1], out, strlen(out));
		_exit(*out == '\0' ? 0 : 2);
	}
	close(p[1]);
	n = read(p[0], out, sizeof(out) - 1);
	out[n > 0 ? n : 0] = '\0';
	close(p[0]);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	if (WEXITSTATUS(st) != 0)
		fail_msg("after priv_drop_cmd(mark): %s", out);
}

/*
 * The drop itself sets no_new_privs: `mxguard policy`, which keeps no
 * capability and so installs no seccomp filter (which would set it),
 * parses what the network sends after its drop, and an exec of a
 * set-user-ID program from there must not give back what the drop took
 * (it execs nothing itself).  Before, only the seccomp filter set it.
 */
static void
test_drop_sets_no_new_privs(void **state)
{
	char text[256], e[400], out[512];
	int p[2], st;
	ssize_t n;
	pid_t pid;

	if (*sdir == '\0')
		skip();
	(void)rmdir(sdir);
	snprintf(text, sizeof(text), "user = nobody\nstate_dir = %s\n", sdir);
	assert_int_equal(pipe(p), 0);
	assert_true((pid = fork()) >= 0);
	if (pid == 0) {
		struct config *cfg;

		close(p[0]);
		out[0] = e[0] = '\0';
		if ((cfg = testconf_load(text, e, sizeof(e))) == NULL)
			_exit(3);
		/* (a) a clean drop: no_new_privs set */
		if (priv_drop_cmd(cfg, 0, e, sizeof(e)) == -1) {
			snprintf(out, sizeof(out), "clean drop failed: %s", e);
			(void)!write(p[1], out, strlen(out));
			_exit(2);
		}
		if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
			strcat(out, "no_new_privs not set by the drop; ");
		(void)!write(p[1], out, strlen(out));
		_exit(*out == '\0' ? 0 : 2);
	}
	close(p[1]);
	n = read(p[0], out, sizeof(out) - 1);
	out[n > 0 ? n : 0] = '\0';
	close(p[0]);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	if (WEXITSTATUS(st) != 0)
		fail_msg("after priv_drop_cmd(): %s", out);
}

/*
 * A drop that cannot empty the bounding set must not pass for one.
 * PR_CAPBSET_DROP needs CAP_SETPCAP; without it (a unit or container
 * whose bounding set lacks it) every capability stayed in the bounding
 * set, the error was ignored (only EINVAL was looked at), and the drop
 * said it was done.  The child here takes CAP_SETPCAP out of its own
 * effective set first: the drop must refuse, naming the bounding set, or
 * leave it empty.
 */
static void
test_drop_without_setpcap(void **state)
{
	char text[256], e[400], out[512];
	int p[2], st;
	ssize_t n;
	pid_t pid;

	if (*sdir == '\0')
		skip();
	(void)rmdir(sdir);
	snprintf(text, sizeof(text), "user = nobody\nstate_dir = %s\n", sdir);
	assert_int_equal(pipe(p), 0);
	assert_true((pid = fork()) >= 0);
	if (pid == 0) {
		struct __user_cap_header_struct h = {
			.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
		struct __user_cap_data_struct d[2];
		struct config *cfg;
		unsigned long c;
		int rc;

		close(p[0]);
		out[0] = e[0] = '\0';
		if ((cfg = testconf_load(text, e, sizeof(e))) == NULL)
			_exit(3);
		/* (b) without CAP_SETPCAP in effect */
		if (syscall(SYS_capget, &h, d) == -1)
			_exit(3);
		d[CAP_SETPCAP / 32].effective &= ~(1u << (CAP_SETPCAP % 32));
		if (syscall(SYS_capset, &h, d) == -1)
			_exit(3);
		rc = priv_drop_cmd(cfg, 0, e, sizeof(e));
		if (rc == -1) {
			/* refused, and said why */
			if (strstr(e, "bounding") == NULL)
				snprintf(out, sizeof(out), "refused without "
				    "naming the bounding set: %s", e);
			(void)!write(p[1], out, strlen(out));
			_exit(*out == '\0' ? 0 : 2);
		}
		for (c = 0; c <= 63; c++)
			if (prctl(PR_CAPBSET_READ, c, 0, 0, 0) == 1) {
				snprintf(out, sizeof(out), "the drop said it was "
				    "done, and capability %lu is still in the "
				    "bounding set", c);
				break;
			}
		(void)!write(p[1], out, strlen(out));
		_exit(*out == '\0' ? 0 : 2);
	}
	close(p[1]);
	n = read(p[0], out, sizeof(out) - 1);
	out[n > 0 ? n : 0] = '\0';
	close(p[0]);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	if (WEXITSTATUS(st) != 0)
		fail_msg("without CAP_SETPCAP: %s", out);
}

/*
 * Started unprivileged with capabilities (systemd User= with
 * AmbientCapabilities=): the drop trims the sets to the one capability
 * kept.  When that one is not held (asked for CAP_NET_ADMIN, holding
 * CAP_NET_RAW and CAP_SYS_ADMIN), capset() failed, the failure was
 * ignored, and every capability the process held stayed.  The child
 * here becomes nobody keeping CAP_NET_RAW, CAP_SYS_ADMIN and
 * CAP_SETPCAP: after priv_drop() for a queue reader it must hold no
 * capability it was not meant to keep, or the drop must refuse.
 */
static void
test_unprivileged_drop_trims(void **state)
{
	char e[400], out[512];
	int p[2], st;
	ssize_t n;
	pid_t pid;

	if (*sdir == '\0')
		skip();
	assert_int_equal(pipe(p), 0);
	assert_true((pid = fork()) >= 0);
	if (pid == 0) {
		struct __user_cap_header_struct h = {
			.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
		struct __user_cap_data_struct d[2];
		struct config *cfg;
		int rc, c;

		close(p[0]);
		out[0] = e[0] = '\0';
		if ((cfg = testconf_load("user = nobody\nstate_dir =\n", e,
		    sizeof(e))) == NULL)
			_exit(3);
		if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) == -1 ||
		    setresgid(65534, 65534, 65534) == -1 ||
		    setresuid(nobody_uid, nobody_uid, nobody_uid) == -1)
			_exit(3);
		memset(d, 0, sizeof(d));
		d[CAP_NET_RAW / 32].permitted |= 1u << (CAP_NET_RAW % 32);
		d[CAP_SYS_ADMIN / 32].permitted |= 1u << (CAP_SYS_ADMIN % 32);
		d[CAP_SETPCAP / 32].permitted |= 1u << (CAP_SETPCAP % 32);
		d[0].effective = d[0].permitted;
		d[1].effective = d[1].permitted;
		if (syscall(SYS_capset, &h, d) == -1)
			_exit(3);
		rc = priv_drop(cfg, 1, e, sizeof(e));
		if (syscall(SYS_capget, &h, d) == -1)
			_exit(3);
		for (c = 0; c < 64; c++)
			if (c != CAP_NET_ADMIN && (d[c / 32].permitted |
			    d[c / 32].effective) & (1u << (c % 32))) {
				snprintf(out, sizeof(out), "priv_drop() "
				    "returned %d and capability %d is still "
				    "held", rc, c);
				break;
			}
		(void)!write(p[1], out, strlen(out));
		_exit(*out == '\0' ? 0 : 2);
	}
	close(p[1]);
	n = read(p[0], out, sizeof(out) - 1);
	out[n > 0 ? n : 0] = '\0';
	close(p[0]);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	if (WEXITSTATUS(st) != 0)
		fail_msg("unprivileged drop: %s (exit %d)", out,
		    WEXITSTATUS(st));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_taken),
		cmocka_unit_test(test_root_files_given),
		cmocka_unit_test(test_other_users_refused),
		cmocka_unit_test(test_writable_by_others_refused),
		cmocka_unit_test(test_link_in_parent_refused),
		cmocka_unit_test(test_root_link_in_parent_followed),
		cmocka_unit_test(test_parents_made),
		cmocka_unit_test(test_cmd_mark_keeps_net_raw),
		cmocka_unit_test(test_drop_sets_no_new_privs),
		cmocka_unit_test(test_drop_without_setpcap),
		cmocka_unit_test(test_unprivileged_drop_trims),
	};

	log_init("test", 0, LOG_LVL_ERR);
	return cmocka_run_group_tests(tests, setup, teardown);
}
