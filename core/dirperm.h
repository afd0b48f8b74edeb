/*
 * dirperm.h - whether others than those trusted may write a directory:
 * make, replace or remove names in it (plant a socket, a link, a file of
 * theirs).  One predicate for every directory mxguard creates names in
 * as root: state_dir (cmd/priv.c refuses it) and the control socket's
 * (cmd/control.c warns).  Each caller names the owner and the group it
 * trusts besides root, and acts on the answer its own way.
 *
 * Judged from a struct stat the caller took: of a descriptor opened
 * O_NOFOLLOW (priv.c: a symbolic link is refused before), or stat() of
 * the path (control.c: the directory a link leads to, where the names
 * are made).  The directory's parents are not judged: whoever writes one
 * can rename the directory away and put another in its place, which the
 * caller's own checks (O_NOFOLLOW, the socket's type at chown) meet.
 */
#ifndef MXG_DIRPERM_H
#define MXG_DIRPERM_H

#include <sys/stat.h>
#include <sys/types.h>

enum dir_writer {
	DIRW_NONE,	/* root, or the trusted owner and group, alone */
	DIRW_OWNER,	/* owned by another user */
	DIRW_OTHERS,	/* writable by others (the sticky bit included) */
	DIRW_GROUP,	/* writable by a group neither root's nor trusted */
};

/*
 * Who else may write the directory st describes.  Root (uid 0, gid 0)
 * is always trusted; uid and gid add one owner and one group, (uid_t)-1
 * and (gid_t)-1 none.  The sticky bit does not help: it keeps others
 * from removing names they did not make, not from making the one the
 * caller is about to (a socket, a store file) first.
 */
enum dir_writer	 dir_writers(const struct stat *st, uid_t uid, gid_t gid);

#endif
