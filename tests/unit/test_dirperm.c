/*
 * test_dirperm.c - dir_writers() (core/dirperm.c), the one judgement of
 * "a directory others may write" behind state_dir's refusal
 * (cmd/priv.c) and the control socket directory's warning
 * (cmd/control.c), each with its own trusted owner and group.
 *
 * Owner: root's always, the trusted uid's when given, anyone else's
 * never.  Group write: root's group, or the trusted gid when given; a
 * group write bit with no other group to trust is fine for root's group
 * only (the control socket's rule).  Others' write bit: never, the
 * sticky bit included (it keeps others from removing names, not from
 * making the one about to be made).  A directory through a symbolic
 * link is judged as stat() finds it: the directory it leads to (where
 * the names are made).  Real directories for the modes, a struct stat
 * of our making for owners and groups we cannot chown to.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/dirperm.h"

#define OTHER	54321	/* a uid and gid that are neither root nor us */
#define USER	4242	/* the trusted `user` */

static char dir[] = "/tmp/mxg-dirperm-XXXXXX";

static struct stat
mk(uid_t uid, gid_t gid, mode_t mode)
{
	struct stat st;

	memset(&st, 0, sizeof(st));
	st.st_uid = uid;
	st.st_gid = gid;
	st.st_mode = S_IFDIR | mode;
	return st;
}

static void
test_owner(void **state)
{
	struct stat st;

	st = mk(0, 0, 0755);
	assert_int_equal(dir_writers(&st, (uid_t)-1, (gid_t)-1), DIRW_NONE);
	st = mk(USER, USER, 0750);
	assert_int_equal(dir_writers(&st, USER, USER), DIRW_NONE);
	/* `user`'s, but the caller trusts root alone (control.c as root) */
	assert_int_equal(dir_writers(&st, 0, (gid_t)-1), DIRW_OWNER);
	assert_int_equal(dir_writers(&st, (uid_t)-1, (gid_t)-1), DIRW_OWNER);
	st = mk(OTHER, 0, 0700);
	assert_int_equal(dir_writers(&st, USER, USER), DIRW_OWNER);
	/* the owner is judged first: another's, and writable by all */
	st = mk(OTHER, OTHER, 0777);
	assert_int_equal(dir_writers(&st, USER, USER), DIRW_OWNER);
}

static void
test_group_write(void **state)
{
	struct stat st;

	st = mk(0, 0, 0770);
	assert_int_equal(dir_writers(&st, USER, (gid_t)-1), DIRW_NONE);
	st = mk(0, USER, 0770);
	/* priv.c trusts `user`'s group; control.c root's alone */
	assert_int_equal(dir_writers(&st, USER, USER), DIRW_NONE);
	assert_int_equal(dir_writers(&st, 0, (gid_t)-1), DIRW_GROUP);
	st = mk(USER, OTHER, 0770);
	assert_int_equal(dir_writers(&st, USER, USER), DIRW_GROUP);
	/* a group that may not write is no matter */
	st = mk(0, OTHER, 0750);
	assert_int_equal(dir_writers(&st, USER, USER), DIRW_NONE);
}

static void
test_others_and_sticky(void **state)
{
	char d[300];
	struct stat st;

	snprintf(d, sizeof(d), "%s/sticky", dir);
	assert_int_equal(mkdir(d, 0700), 0);
	assert_int_equal(chmod(d, 01777), 0);
	assert_int_equal(stat(d, &st), 0);
	assert_int_equal(dir_writers(&st, geteuid(), getegid()), DIRW_OTHERS);
	assert_int_equal(chmod(d, 0777), 0);
	assert_int_equal(stat(d, &st), 0);
	assert_int_equal(dir_writers(&st, geteuid(), getegid()), DIRW_OTHERS);
	assert_int_equal(chmod(d, 0755), 0);
	assert_int_equal(stat(d, &st), 0);
	assert_int_equal(dir_writers(&st, geteuid(), getegid()), DIRW_NONE);
	/* root's, writable by others: root does not make it safe */
	st = mk(0, 0, 01777);
	assert_int_equal(dir_writers(&st, (uid_t)-1, (gid_t)-1), DIRW_OTHERS);
	assert_int_equal(rmdir(d), 0);
}

/* Through a link: the directory it leads to is judged, as stat() finds
 * it (control.c); priv.c refuses the link itself (O_NOFOLLOW, before). */
static void
test_symlinked_dir(void **state)
{
	char d[300], l[300];
	struct stat st;

	snprintf(d, sizeof(d), "%s/target", dir);
	snprintf(l, sizeof(l), "%s/link", dir);
	assert_int_equal(mkdir(d, 0700), 0);
	assert_int_equal(symlink(d, l), 0);
	assert_int_equal(stat(l, &st), 0);
	assert_int_equal(dir_writers(&st, geteuid(), getegid()), DIRW_NONE);
	assert_int_equal(chmod(d, 01777), 0);
	assert_int_equal(stat(l, &st), 0);
	assert_int_equal(dir_writers(&st, geteuid(), getegid()), DIRW_OTHERS);
	assert_int_equal(unlink(l), 0);
	assert_int_equal(rmdir(d), 0);
}

static int
setup(void **state)
{
	return mkdtemp(dir) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	return rmdir(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_owner),
		cmocka_unit_test(test_group_write),
		cmocka_unit_test(test_others_and_sticky),
		cmocka_unit_test(test_symlinked_dir),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
