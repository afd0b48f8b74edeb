#!/bin/bash
# 102: `mxguard rules ensure`, and `mxguard rules watch`
# (mxguard-rules-watch.service), which runs the same check at every change
# of the ruleset and every 30 s.
# Another tool replaces the whole ruleset while mxguard runs (here: the
# iptables tables flushed, as `nft flush ruleset` or a firewall's reload
# does): every port-25 flow would go direct.  `rules ensure` finds none of
# mxguard's rules, the daemon running this very file, and installs the set
# again: a mail sent then goes through mxguard (TLS at the receiver).
# One table flushed (`iptables -t mangle -F`: the steering gone;
# `iptables -F`: the guard gone; the same for IPv6) is a partial loss,
# put back alike, by ensure and by the watch, one line each naming what
# was missing.
# With the rules in place it does nothing; with the file edited since the
# daemon loaded it, it installs the refusal set (fail_mode = closed in the
# file; the watch then puts the file's set in once the daemon is reloaded
# on it) or nothing (open), and exits 1; with no daemon running, it does
# nothing (its unit installs the rules when it starts).  With
# control_socket edited and reloaded, ensure finds the daemon on its
# start's through its record and puts the rules back, naming that socket.
. "$(dirname "$0")/../lib/ns.sh"
. "$(dirname "$0")/../lib/nfq.sh"
need_mxguard
ns_setup
tls_world
nfq_start "fail_mode = closed"

ensure() { mxg_ctl rules ensure 2>"$T/ensure.err"; }
present() { mxg_ctl rules show >/dev/null; }
wipe() {	# what a whole-ruleset replacement leaves: empty tables
	local t
	for t in raw mangle nat filter; do
		in_snd iptables -t "$t" -F; in_snd iptables -t "$t" -X
		in_snd ip6tables -t "$t" -F; in_snd ip6tables -t "$t" -X
	done
}

assert "rules in place: ensure says nothing, exit 0" ensure
assert "rules in place: no message" [ ! -s "$T/ensure.err" ]

wipe
assert "wiped: rules show says not installed" bash -c "! ip netns exec $SND $MXGUARD -c $T/mxguard.conf rules show >/dev/null"
assert "wiped: ensure puts them back (exit 0)" ensure
assert "wiped: ensure says so" grep -q "were gone.*installed again" "$T/ensure.err"
assert "wiped: rules show says installed" present

new_body "$T/body" 1500
send_mail bob@sender.test alice@tls.test "$T/body" "after the rules came back"
qid=$(find_qid "$MSGID"); mid=$MSGID
wait_status "$qid" alice@tls.test sent
wait_mailbox alice@tls.test 1
f=$(msg_file_by_id alice@tls.test "$mid") || fail "message not stored"
assert "delivered through mxguard (TLS at the receiver)" [ -n "$(received_tls "$f")" ]

# a partial loss: one table flushed, the chain declared still (what
# `iptables -t mangle -F` of a QoS script or `iptables -F` leaves);
# `rules show` still finds mxguard's chains, ensure sees the set is not
# whole and installs it again
steer_in() { in_snd iptables-save -t mangle | grep -q -- '-A MXGUARD_STEER .*NFQUEUE' &&
	in_snd iptables-save -t mangle | grep -q -- '-A OUTPUT .*-j MXGUARD_STEER'; }
guard_in() { in_snd iptables-save -t filter | grep -q -- '-A MXGUARD_GUARD .*REJECT' &&
	in_snd iptables-save -t filter | grep -q -- '-A OUTPUT .*-j MXGUARD_GUARD'; }
guard6_in() { in_snd ip6tables-save -t filter | grep -q -- '-A MXGUARD_GUARD .*REJECT' &&
	in_snd ip6tables-save -t filter | grep -q -- '-A OUTPUT .*-j MXGUARD_GUARD'; }
in_snd iptables -t mangle -F
assert "mangle flushed: the steering is gone" eval '! steer_in' 
assert "mangle flushed: ensure puts it back (exit 0)" ensure
assert "mangle flushed: ensure says what was missing" \
	grep -q "were incomplete (IPv4 mangle table: MXGUARD_STEER holds 0 of its .* rules, the jump from OUTPUT gone): installed again" "$T/ensure.err"
assert "mangle flushed: the steering is back" steer_in
in_snd ip6tables -F
assert "ip6tables -F: ensure puts the IPv6 guard back" ensure
assert "ip6tables -F: ensure names IPv6" grep -q "were incomplete (IPv6 filter table: MXGUARD_GUARD" "$T/ensure.err"
assert "ip6tables -F: the IPv6 guard is back" guard6_in
assert "whole again: ensure says nothing" ensure
assert "whole again: no message" [ ! -s "$T/ensure.err" ]

# `rules watch` follows the ruleset's changes (nf_tables' netlink
# messages): a wipe is answered at once, not at its 30 s round
bg "$SND" "$T/watch.log" "$MXGUARD" -c "$T/mxguard.conf" rules watch
watch_pid=$BG_PID
wait_log "$T/watch.log" "checking mxguard's netfilter rules at every ruleset change"
assert "watch: nothing said while the rules are in place" \
	bash -c "! grep -q 'gone' '$T/watch.log'"
wipe
wait_for 10 "the watch to put the rules back" present
wait_log "$T/watch.log" "were gone.*installed again"
# again: a second wipe, a second answer (one line each)
wipe
wait_for 10 "the watch to put the rules back a second time" present
wait_for 10 "two 'installed again' lines" bash -c "[ \$(grep -c 'installed again' '$T/watch.log') = 2 ]"
# partial losses, each answered with one line: the steering (mangle
# flushed: with fail_mode = open every flow would go direct), then the
# fail-closed guard (filter flushed)
in_snd iptables -t mangle -F
wait_for 10 "the watch to put the steering back" steer_in
wait_log "$T/watch.log" "were incomplete \(IPv4 mangle table: MXGUARD_STEER.*installed again"
in_snd iptables -F
wait_for 10 "the watch to put the guard back" guard_in
wait_log "$T/watch.log" "were incomplete \(IPv4 filter table: MXGUARD_GUARD.*installed again"
wait_for 10 "four 'installed again' lines" bash -c "[ \$(grep -c 'installed again' '$T/watch.log') = 4 ]"
new_body "$T/body2" 1500
send_mail bob@sender.test alice@tls.test "$T/body2" "after a table flush"
qid=$(find_qid "$MSGID"); mid=$MSGID
wait_status "$qid" alice@tls.test sent
wait_mailbox alice@tls.test 2
f=$(msg_file_by_id alice@tls.test "$mid") || fail "message not stored"
assert "after the flushes: delivered through mxguard (TLS at the receiver)" [ -n "$(received_tls "$f")" ]
assert "the watch said nothing more" [ "$(grep -c 'installed again' "$T/watch.log")" = 4 ]
kill "$watch_pid"; wait "$watch_pid" 2>/dev/null

# the file edited since the daemon loaded it, fail_mode = closed in it:
# not the file's set (it may divert elsewhere than the daemon listens),
# but the refusal set, never nothing (every flow would go direct)
echo "# an edit not yet reloaded" >>"$T/mxguard.conf"
# a chain taken whole is a loss too: the nat table replaced by one
# without MXGUARD_DIVERT (red before: kept, ensure exited 0; with a
# queueing set, every flow the daemon diverted went direct)
printf '*nat\nCOMMIT\n' | in_snd iptables-restore || fail "nat replaced"
assert "file edited, nat chain taken whole: ensure exits 1" bash -c "! ip netns exec $SND $MXGUARD -c $T/mxguard.conf rules ensure 2>$T/ensure.err"
assert "file edited, nat chain taken whole: the refusal set instead" \
	grep -q "were incomplete (IPv4 nat table: chain MXGUARD_DIVERT gone.*installed the refusal set instead" "$T/ensure.err"
in_snd "$MXGUARD" -c "$T/mxguard.conf" rules install || fail "the set back"
# a chain of mxguard's emptied is a loss whatever the file says: the
# same refusal set
in_snd iptables -t mangle -F
assert "file edited, mangle flushed: ensure exits 1" bash -c "! ip netns exec $SND $MXGUARD -c $T/mxguard.conf rules ensure 2>$T/ensure.err"
assert "file edited, mangle flushed: the refusal set instead" \
	grep -q "were incomplete (IPv4 mangle table: MXGUARD_STEER.*installed the refusal set instead" "$T/ensure.err"
wipe
assert "file edited: ensure exits 1" bash -c "! ip netns exec $SND $MXGUARD -c $T/mxguard.conf rules ensure 2>$T/ensure.err"
assert "file edited: ensure says why" grep -q "differs from the one the daemon runs" "$T/ensure.err"
assert "file edited, closed: the refusal set instead" grep -q "installed the refusal set instead" "$T/ensure.err"
assert "file edited, closed: no divert (the file's set is not in)" \
	bash -c "! ip netns exec $SND iptables-save -t nat | grep -q MXGUARD"
assert "file edited, closed: a refusal is in" \
	bash -c "ip netns exec $SND iptables-save -t filter | grep -q 'MXGUARD.*REJECT'"
send_mail bob@sender.test alice@tls.test "$T/body" "while the refusal set stands"
qid=$(find_qid "$MSGID"); mid=$MSGID
wait_deferred "$qid"
assert "refused: nothing reached the receiver" [ "$(mailbox_count alice@tls.test)" = 2 ]

# the same under `rules watch`, which then follows the daemon's reload on
# the file: the configured set goes in place of the refusal set
wipe
bg "$SND" "$T/watch2.log" "$MXGUARD" -c "$T/mxguard.conf" rules watch
watch_pid=$BG_PID
wait_log "$T/watch2.log" "installed the refusal set instead" 10
assert "watch, file edited: a refusal is in" \
	bash -c "ip netns exec $SND iptables-save -t filter | grep -q 'MXGUARD.*REJECT'"
kill -HUP "$MXG_PID"
wait_log "$MXLOG" "event=reloaded" 20
wait_log "$T/watch2.log" "its rules installed in place of the refusal set" 10
assert "after the reload: the divert is back" \
	bash -c "ip netns exec $SND iptables-save -t nat | grep -q MXGUARD"
kill "$watch_pid"; wait "$watch_pid" 2>/dev/null
snd_flush
wait_status "$qid" alice@tls.test sent
wait_mailbox alice@tls.test 3
f=$(msg_file_by_id alice@tls.test "$mid") || fail "message not stored"
assert "the deferred mail went through mxguard (TLS at the receiver)" [ -n "$(received_tls "$f")" ]

# edited to fail_mode = open: nothing put back (the operator's choice)
sed -i 's/^fail_mode = closed$/fail_mode = open/' "$T/mxguard.conf"
assert "the file now says open" grep -q '^fail_mode = open$' "$T/mxguard.conf"
wipe
assert "file edited, open: ensure exits 1" bash -c "! ip netns exec $SND $MXGUARD -c $T/mxguard.conf rules ensure 2>$T/ensure.err"
assert "file edited, open: ensure says why" grep -q "differs from the one the daemon runs.*not put back" "$T/ensure.err"
assert "file edited, open: nothing put back" bash -c "! ip netns exec $SND $MXGUARD -c $T/mxguard.conf rules show >/dev/null"

# control_socket edited and reloaded: the daemon listens on its start's
# (a reload keeps it); ensure finds it through its record and puts the
# rules back, naming the socket it asked (before: no daemon on the
# file's socket, nothing put back until a restart)
# (fail_mode back as the daemon runs it: a reload refuses its change)
sed -i 's/^fail_mode = open$/fail_mode = closed/' "$T/mxguard.conf"
echo "control_socket = $T/edited.sock" >>"$T/mxguard.conf"
n0=$(grep -c 'event=reloaded ' "$MXLOG")
kill -HUP "$MXG_PID"
wait_log "$MXLOG" "event=reload-note keys=control_socket " 20
wait_for 20 "the reload in both workers" bash -c "[ \$(grep -c 'event=reloaded ' '$MXLOG') -ge $((n0 + 2)) ]"
assert "control_socket edited: rules show says not installed" bash -c "! ip netns exec $SND $MXGUARD -c $T/mxguard.conf rules show >/dev/null"
assert "control_socket edited: ensure exits 0" ensure
assert "control_socket edited: ensure put them back" present
assert "control_socket edited: ensure names the socket asked" \
	grep -q "were gone.*installed again (the daemon answered on control_socket [^ ]*, kept from its start, not the file's $T/edited.sock: restart mxguard" "$T/ensure.err"

# no daemon: nothing to do (its record, left behind, names a socket
# nobody listens on: no daemon either)
mxg_kill
wipe
assert "no daemon: ensure exits 0" ensure
assert "no daemon: nothing installed" bash -c "! ip netns exec $SND $MXGUARD -c $T/mxguard.conf rules show >/dev/null"
pass "rules ensure and watch: put back while the daemon runs this file, not otherwise"
