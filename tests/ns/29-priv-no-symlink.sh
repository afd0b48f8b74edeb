#!/bin/bash
# 29: ownership is never given away through a symbolic link.  mxguard,
# started as root with user = nobody, chowns state_dir and the control
# socket to nobody.  (a) state_dir is a symbolic link to a root-owned
# directory (planted by whoever can write state_dir's parent): mxguard
# refuses to start and the link's target stays root's.  (b) the socket file
# is replaced by a symbolic link to a root-owned file right after bind()
# (what the unprivileged user, who owns the socket's directory, can do on a
# restart; an LD_PRELOAD shim around bind() makes the race certain): the
# file stays root's and mxguard says it left the name alone.
. "$(dirname "$0")/../lib/ns.sh"
need_mxguard
ns_setup

conf() {	# FILE STATE_DIR
	cat >"$1" <<EOC
listen = 127.0.0.1:$MXG_PORT
steering = none
user = nobody
state_dir = $2
control_socket = $T/run/control.sock
log_level = debug
EOC
}
_exited_or_started() { ! kill -0 "$MXG_PID" 2>/dev/null || grep -q "event=started" "$MXLOG"; }

# (a) state_dir -> root's directory
mkdir -m 0755 "$T/victim-dir"
ln -s "$T/victim-dir" "$T/state-link"
conf "$T/a.conf" "$T/state-link"
MXLOG=$T/a.log
bg "$SND" "$MXLOG" "$MXGUARD" -c "$T/a.conf" run
MXG_PID=$BG_PID
wait_for 15 "mxguard to start or exit" _exited_or_started
assert "the symlink's target is still root's" [ "$(stat -c %u:%g "$T/victim-dir")" = 0:0 ]
assert "mxguard refused the symlinked state_dir" \
	grep -qE 'event=fatal .*state_dir .*symbolic link' "$MXLOG"
wait "$MXG_PID"; rc=$?
assert "and exited with an error (rc $rc)" [ "$rc" = 1 ]
MXG_PID=""

# (b) the socket swapped for a symlink to root's file after bind()
cat >"$T/swap.c" <<'EOC'
#define _GNU_SOURCE
#include <sys/socket.h>
#include <sys/un.h>
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
int
bind(int fd, const struct sockaddr *sa, socklen_t len)
{
	int (*real)(int, const struct sockaddr *, socklen_t) =
	    (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "bind");
	const char *p = getenv("SWAP_SOCK"), *to = getenv("SWAP_TO");
	int rc = real(fd, sa, len);

	if (rc == 0 && p && to && sa->sa_family == AF_UNIX &&
	    strcmp(((const struct sockaddr_un *)sa)->sun_path, p) == 0 &&
	    (unlink(p) == -1 || symlink(to, p) == -1))
		abort();
	return rc;
}
EOC
cc -shared -fPIC -o "$T/swap.so" "$T/swap.c" -ldl || fail "building the bind() shim"
echo "root's file" >"$T/victim-file"
chmod 0600 "$T/victim-file"
mkdir "$T/state"
conf "$T/b.conf" "$T/state"
MXLOG=$T/b.log
# an ASan build wants its runtime first; the shim only wraps bind()
bg "$SND" "$MXLOG" env LD_PRELOAD="$T/swap.so" SWAP_SOCK="$T/run/control.sock" \
	SWAP_TO="$T/victim-file" ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
	"$MXGUARD" -c "$T/b.conf" run
MXG_PID=$BG_PID
wait_for 15 "mxguard to start or exit" _exited_or_started
assert "mxguard started" kill -0 "$MXG_PID"
assert "the shim swapped the socket for a symlink" [ -L "$T/run/control.sock" ]
assert "the symlink's target is still root's" [ "$(stat -c %u:%g "$T/victim-file")" = 0:0 ]
assert "mxguard left the replaced name alone and said so" \
	grep -qE 'event=control-chown .*not a socket' "$MXLOG"
assert "state_dir (a real directory) went to nobody" [ "$(stat -c %U "$T/state")" = nobody ]
# root connects, unlinks and binds in it at every start: never the user's
assert "the socket's new directory stays root's" [ "$(stat -c %U "$T/run")" = root ]
mxg_stop
pass "no chown through a symbolic link"
