# shellcheck shell=bash
# Helpers for the steering scenarios tests/ns/5*.sh, on top of ns.sh (which
# must be sourced first).  mxguard runs with steering = nfqueue and its own
# rule set (`mxguard rules install`) instead of the harness's plain REDIRECT.
#
#   NFQ_CONF      extra config lines for mxguard.conf (before mxg_start)
#   mxg_rules_install / mxg_rules_remove   replaced: mxguard's own rules
#   mxg_kill      stop the daemon, leave the rules (what a crash leaves)
#   mxg_ctl ARGS  `mxguard -c $T/mxguard.conf ARGS` in the sender namespace
#   metric NAME   value of one metric line from `status --metrics` (0 if none)
#   ipt_snapshot  iptables-save + ip6tables-save of $SND, no comments/counters

# steering config appended after the harness's own lines (last key wins)
nfq_extra_conf() {
	cat <<EOF2
steering = nfqueue
nfqueue_num = 2525
rules_mode = local
$NFQ_CONF
EOF2
}

mxg_ctl() { ip netns exec "$SND" "$MXGUARD" -c "$T/mxguard.conf" "$@"; }

mxg_rules_install() {
	mxg_ctl rules install >"$T/rules-install.log" 2>&1 ||
		fail "mxguard rules install: $(cat "$T/rules-install.log")"
}
# the rules stay when the daemon stops (that is what fail modes are about)
mxg_rules_remove() { :; }

# nfq_start [extra config lines]: mxguard with NFQUEUE steering in $SND.
nfq_start() {
	MXG_EXTRA_CONF="$(nfq_extra_conf)
$*" mxg_start
	wait_log "$MXLOG" "event=nfq-open" 10
}

# nfq_restart: start the daemon again with the same config (rules kept).
nfq_restart() {
	local n
	n=$(count_log "$MXLOG" "event=nfq-open")
	bg "$SND" "$T/mxguard.log.tmp" "$MXGUARD" -c "$T/mxguard.conf" run
	MXG_PID=$BG_PID
	# keep one log file: the new process appends through a tail
	wait_for 15 "mxguard restarted" _nfq_opened_again "$n"
}
_nfq_opened_again() {
	kill -0 "$MXG_PID" 2>/dev/null || fail "mxguard exited: $(tail -n 20 "$T/mxguard.log.tmp")"
	cat "$T/mxguard.log.tmp" >>"$MXLOG.restarts" 2>/dev/null
	grep -q "event=nfq-open" "$T/mxguard.log.tmp"
}

mxg_kill() { mxg_stop; }

metric() { scrape_metric "$1" mxg_ctl status --metrics; }

# ipt_save NS: iptables-save then ip6tables-save of NS, without comments.
#   Either failing fails the scenario (fail_loud): the empty output read
#   as "no tables" ([ -z "$(ipt_snapshot)" ]), and "remove restores"
#   compared two empty strings.
ipt_save() {
	local out rc=0
	out=$T/ipt.$BASHPID
	{ ip netns exec "$1" iptables-save && ip netns exec "$1" ip6tables-save; } \
		>"$out" 2>"$out.err" || rc=$?
	[ "$rc" = 0 ] ||
		fail_loud "iptables-save/ip6tables-save in $1 exited $rc: $(head -c 300 "$out.err")"
	grep -v '^#' "$out" || true
}
ipt_snapshot() { ipt_save "$SND" | sed -E 's/\[[0-9]+:[0-9]+\]/[0:0]/'; }

# mxg_stop_remove: stop the daemon and take its rules out (`rules remove`),
#   as between the runs of a scenario that tries several rule sets
mxg_stop_remove() {
	mxg_stop
	mxg_ctl rules remove >"$T/rm.log" 2>&1 || fail "rules remove: $(cat "$T/rm.log")"
}

# rules_installed: `mxguard rules show` says mxguard's rules are present
rules_installed() { mxg_ctl rules show >/dev/null 2>&1; }

# gw_setup: re-wire ns_setup's namespaces through a gateway namespace $GW
#   (ns 57, 58, 107, 109), IPv4 forwarding on:
#   [SND 10.25.2.1 snd0] -- [gw0 10.25.2.254 GW 10.25.1.254 gw1] -- [rcv0 10.25.1.2 RCV]
#   gw1 is the outside (bypass_interfaces).  in_gw CMD runs CMD there.
gw_setup() {
	GW="$NS_PREFIX-gw"
	ip netns add "$GW" || fail "ip netns add $GW"
	_NS_LIST+=("$GW")	# the harness's cleanup removes it with the others
	ip -n "$GW" link set lo up
	ns_resolver "$GW"
	ip -n "$SND" link del snd0
	ip link add snd0 netns "$SND" type veth peer name gw0 netns "$GW"
	ip link add gw1 netns "$GW" type veth peer name rcv0 netns "$RCV"
	ip -n "$SND" addr add 10.25.2.1/24 dev snd0
	ip -n "$GW" addr add 10.25.2.254/24 dev gw0
	ip -n "$GW" addr add 10.25.1.254/24 dev gw1
	ip -n "$RCV" addr add 10.25.1.2/24 dev rcv0
	local l
	for l in "$SND snd0" "$GW gw0" "$GW gw1" "$RCV rcv0"; do
		set -- $l
		ip -n "$1" link set "$2" up
	done
	ip -n "$SND" route add default via 10.25.2.254
	ip -n "$RCV" route add default via 10.25.1.254
	ip netns exec "$GW" sysctl -qw net.ipv4.ip_forward=1 \
		net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
}
in_gw() { ip netns exec "$GW" "$@"; }
# gw_syn_recv PORT: the gateway holds a half-open connection from the
#   MTA's port (mxguard's listener answered; its SYN-ACK lost on the way)
gw_syn_recv() { in_gw ss -Htn state syn-recv "dport = :$1" | grep -q .; }

# gw_start CONF-LINES [TAG]: mxguard in $GW in gateway mode, NFQUEUE
#   steering, bypass_interfaces = gw1, log_level debug, then CONF-LINES
#   (last key wins); its rules installed first.  MXLOG, MXG_PID as
#   mxg_start; TAG: a log of its own (gw-mxguard-TAG.log), for a scenario
#   that starts it once per case.  The NFQUEUE is waited for unless
#   CONF-LINES say steering = none.
gw_start() {
	mkdir -p "$T/mxstate"
	cat >"$T/gw.conf" <<EOF2
listen = 0.0.0.0:$MXG_PORT [::]:$MXG_PORT
rules_mode = gateway
steering = nfqueue
upstream_mark = $MXG_MARK
user =
state_dir = $T/mxstate
control_socket = $T/gw.sock
log_level = debug
drain_timeout = 2s
bypass_interfaces = gw1
$1
EOF2
	in_gw "$MXGUARD" -c "$T/gw.conf" rules install >"$T/gw-rules.log" 2>&1 ||
		fail "rules install: $(cat "$T/gw-rules.log")"
	MXLOG=$T/gw-mxguard${2:+-$2}.log
	bg "$GW" "$MXLOG" "$MXGUARD" -c "$T/gw.conf" run
	MXG_PID=$BG_PID
	wait_for 15 "mxguard (pid $MXG_PID) started in $GW" _mxg_listening
	case "$1" in
	*"steering = none"*) ;;
	*) wait_log "$MXLOG" "event=nfq-open" 10 ;;
	esac
}
