/*
 * dirperm.c - whether others than those trusted may write a directory
 * (see dirperm.h).
 */
#include "core/dirperm.h"

enum dir_writer
dir_writers(const struct stat *st, uid_t uid, gid_t gid)
{
	if (st->st_uid != 0 && (uid == (uid_t)-1 || st->st_uid != uid))
		return DIRW_OWNER;
	if (st->st_mode & S_IWOTH)
		return DIRW_OTHERS;
	if ((st->st_mode & S_IWGRP) && st->st_gid != 0 &&
	    (gid == (gid_t)-1 || st->st_gid != gid))
		return DIRW_GROUP;
	return DIRW_NONE;
}
