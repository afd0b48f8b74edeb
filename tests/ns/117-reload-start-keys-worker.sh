#!/bin/bash
# 117: a worker started again after a reload that changed a key only a
# start applies (state_dir here) runs with the values the daemon started
# with, as its sibling does.  Before, the supervisor started it on the
# reloaded configuration as it was: it opened its LMDB stores in the new,
# empty state_dir, where none of the MTA-STS policies and TLS history the
# daemon had learned were (first contact again for every domain, in that
# worker only), and the reload had said the key applied at the next start.
. "$(dirname "$0")/../lib/ns.sh"
need_mxguard
ns_setup
make_cert mx1 mx1.tls.test
rcv_listener 10.25.1.10 mx1
rcv_mailbox alice@tls.test
rcv_setup
snd_setup
snd_postconf "smtp_connection_cache_on_demand = no"
snd_route tls.test 10.25.1.10
mxg_start "workers = 2"

wpid() { grep -E "event=worker-start worker=$1 pid=" "$MXLOG" | tail -n1 | sed -E 's/.* pid=([0-9]+).*/\1/'; }
# the inode of the history.mdb the process maps (by inode: the path
# /proc shows for a file of another mount namespace, ip netns exec's,
# is not the one this shell sees when / is itself a bind mount, as in
# scripts/fresh-root.sh's chroot)
stores_of() { awk '$6 ~ /\/history\.mdb$/ {print $5}' "/proc/$1/maps" | sort -u; }
ino() { stat -c %i "$1"; }
P0=$(wpid 0); P1=$(wpid 1)
[ -n "$P0" ] && [ -n "$P1" ] && [ "$P0" != "$P1" ] || fail "two workers expected"
_mapped() { [ -n "$(stores_of "$1")" ]; }
wait_for 10 "worker 0 opened its stores" _mapped "$P0"
assert "worker 0's stores in state_dir" [ "$(stores_of "$P0")" = "$(ino "$T/mxstate/history.mdb")" ]

new_body "$T/body" 2000
send_mail bob@sender.test alice@tls.test "$T/body" "before the reload"
wait_mailbox alice@tls.test 1 60

# state_dir edited (a directory the workers could open) and reloaded:
# read, said to apply at the next start only
mkdir -p "$T/other"
chmod 0755 "$T/other"
echo "state_dir = $T/other" >>"$T/mxguard.conf"
kill -HUP "$MXG_PID"
wait_log "$MXLOG" "mxguard\[$P0\]: event=reloaded" 20
wait_log "$MXLOG" "mxguard\[$P1\]: event=reloaded" 20
assert "the reload named state_dir" grep -qE "mxguard\[$MXG_PID\]: event=reload-note keys=state_dir note=" "$MXLOG"

# worker 0 dies; the supervisor starts it again
kill -KILL "$P0"
_restarted() { local p; p=$(wpid 0); [ -n "$p" ] && [ "$p" != "$P0" ]; }
wait_for 20 "worker 0 started again" _restarted
N0=$(wpid 0)
wait_for 10 "the new worker 0 opened its stores" _mapped "$N0"
log "worker 0: $P0 -> $N0, history.mdb inode $(stores_of "$N0") ($(awk '$6 ~ /history/ {print $6}' "/proc/$N0/maps" | sort -u | tr '\n' ' '))"
assert "the new worker 0 opened the stores the daemon started with" [ "$(stores_of "$N0")" = "$(ino "$T/mxstate/history.mdb")" ]
assert "nothing made in the edited state_dir" [ -z "$(ls -A "$T/other")" ]

# and it relays: sessions until the new worker took one
M=1
while [ "$(grep -cE "mxguard\[$N0\]: .*event=connect " "$MXLOG")" -lt 1 ] && [ "$M" -lt 30 ]; do
	M=$((M + 1))
	send_mail bob@sender.test alice@tls.test "$T/body" "after the restart $M"
	wait_mailbox alice@tls.test $M 60
done
assert "the new worker 0 took a session" [ "$(grep -cE "mxguard\[$N0\]: .*event=connect " "$MXLOG")" -ge 1 ]
assert "nothing made in the edited state_dir" [ -z "$(ls -A "$T/other")" ]
pass "a worker started after a reload keeps the start's state_dir"
