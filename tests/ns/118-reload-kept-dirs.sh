#!/bin/bash
# 118: a reload keeps state_dir and control_socket (only a start applies
# them: config_keep_start_keys()), while the commands read the file's.
# They now say so.  The daemon's status names the state_dir it runs with
# ("# state_dir DIR"); with the file's edited and reloaded it still names
# the start's, policy warns that it reads the file's stores, and `report
# send` sends nothing (exit 1) rather than send from, and mark sent in, a
# store the daemon does not record in.  With control_socket edited and
# reloaded, status finds no daemon at the file's, asks the start's that
# the daemon's record names, and says that an edited control_socket
# applies at a restart.  Before: no state_dir line, no
# warning, report send ran on the file's store, status said only "No such
# file or directory (is mxguard running?)".  With both edited and
# reloaded, `report send` finds the daemon through its record (written
# at its start, where only root writes) on the start's control_socket,
# and refuses as with state_dir alone; before, it found no daemon and
# sent from the file's state_dir, nothing said.
. "$(dirname "$0")/../lib/ns.sh"
need_mxguard
ns_setup

MXG_EXTRA_CONF="dns_servers = 127.0.0.1:9
dns_timeout = 2s
tls_policy = cli.test none"
C=$T/mxguard.conf
M=$MXGUARD
# offline CMD...: in a network namespace of its own (loopback only, no
# resolver); the control socket is a file
offline() { unshare -n bash -c 'ip link set lo up && exec "$@"' _ "$@"; }
# rc EXPECTED "what" CMD...: the exit status of CMD is EXPECTED
rc() {
	local want=$1 what=$2 got; shift 2
	"$@" >"$T/out" 2>"$T/err"; got=$?
	[ "$got" = "$want" ] || { cat "$T/out" "$T/err" >&2; fail "$what: exit $got, want $want"; }
	log "ok: $what: exit $want"
}

mxg_start "workers = 1"
rc 0 "status" "$M" -c "$C" status
assert "status: the daemon's state_dir" grep -qx "# state_dir $T/mxstate" "$T/out"
rc 0 "policy on the daemon's state_dir" offline "$M" -c "$C" policy cli.test
assert "policy: no warning" [ ! -s "$T/err" ]

# state_dir edited and reloaded: the daemon keeps its start's
mkdir -p "$T/other"
chmod 0755 "$T/other"
echo "state_dir = $T/other" >>"$C"
kill -HUP "$MXG_PID"
wait_log "$MXLOG" "event=reload-note keys=state_dir note=" 20
wait_log "$MXLOG" "event=reloaded " 20
rc 0 "status after the reload" "$M" -c "$C" status
assert "status: still the start's state_dir" grep -qx "# state_dir $T/mxstate" "$T/out"
rc 1 "report send on the file's state_dir" offline "$M" -c "$C" report send
assert "report send: says why, nothing sent" grep -q "the daemon runs with state_dir $T/mxstate.*; nothing sent$" "$T/err"
assert "report send: nothing made in the file's state_dir" [ -z "$(ls -A "$T/other")" ]
# (policy opens its cache in the file's state_dir: said)
offline "$M" -c "$C" policy cli.test >"$T/out" 2>"$T/err"
assert "policy: warns of the daemon's state_dir" grep -q "^mxguard: policy: warning: the daemon runs with state_dir $T/mxstate, kept from its start" "$T/err"

# control_socket edited and reloaded: no daemon at the file's; status
# asks the start's, which the daemon's record names, and says so
echo "control_socket = $T/other.sock" >>"$C"
kill -HUP "$MXG_PID"
wait_log "$MXLOG" "event=reload-note keys=\"?state_dir, control_socket\"? note=" 20
rc 0 "status on the edited control_socket" "$M" -c "$C" status
assert "status: no daemon there, the start's socket asked" grep -q "no mxguard daemon listens on control_socket $T/other.sock, the file's; the one started on this file listens on its start's, $T/mxguard.sock (a reload keeps it), and answers below: restart mxguard for the file's to apply" "$T/err"
assert "status: the daemon's answer" grep -qx "# state_dir $T/mxstate" "$T/out"
# both edited and reloaded: the daemon's record (written as root at its
# start, in MXGUARD_RUNDIR) leads report send to the start's socket,
# whose status names the start's state_dir: nothing sent, both named
assert "the daemon's record names its start's socket" grep -qx "control_socket $T/mxguard.sock" "$MXGUARD_RUNDIR"/daemon-*
# (policy above made its cache there: what report send would add)
before=$(ls -A "$T/other")
rc 1 "report send with both edited" offline "$M" -c "$C" report send
assert "report send: the start's state_dir and control_socket, nothing sent" grep -q "the daemon runs with state_dir $T/mxstate, kept from its start.*; the daemon listens on control_socket $T/mxguard.sock, kept from its start, not the file's $T/other.sock: asked there;.*; nothing sent$" "$T/err"
assert "report send: nothing made in the file's state_dir" [ "$(ls -A "$T/other")" = "$before" ]
pass "the commands say when the daemon runs with the start's state_dir or control_socket"
