#!/bin/bash
# 74: an HA pair of gateways sharing policy state through Redis.
#
#   SND 10.25.2.1 --+-- GW1 10.25.2.11 (keepalived, mxguard) --+-- RCV 10.25.1.x
#   (route via VIP) +-- GW2 10.25.2.12 (keepalived, mxguard) --+   (Postfix MX,
#                   +-- RDS 10.25.2.50 (Redis)                      DNS, nginx)
#   VIPs 10.25.2.254 (LAN) and 10.25.1.254 (WAN; VRRP, unicast peers), LAN
#   and WAN are bridges in SW.
#
# The legacy Postfix's default route is the VIP.  A first message to an
# MTA-STS enforce domain goes through GW1 (which holds the VIP), whose
# mxguard fetches the policy and writes it through to Redis.  Then the
# attacker's moment: the policy host and the _mta-sts TXT record become
# unreachable, and STARTTLS is stripped at the receiver.  GW1 fails over
# (its keepalived stops); a message sent during the failover reaches GW2,
# which has never seen the domain and cannot learn its policy itself, yet
# defers (4.7.10 starttls-not-supported) under the policy GW1 learned
# (GW2's log: the policy came from Redis).  When STARTTLS is back the
# message arrives, exactly once, after the MTA's retries.
# Redis is set up as docs/deployment.md says: TLS only, the gateways'
# client certificates required, an ACL user limited to mxguard's keys and
# commands (the default user off).
. "$(dirname "$0")/../lib/ns.sh"
. "$LIBDIR/dns.sh"
. "$LIBDIR/sts.sh"
. "$LIBDIR/redis.sh"
need_mxguard
command -v keepalived >/dev/null || fail "keepalived not installed (scripts/deps.sh)"
ns_setup
GW1="$NS_PREFIX-gw1"; GW2="$NS_PREFIX-gw2"; RDS="$NS_PREFIX-rds"; SW="$NS_PREFIX-sw"
for ns in "$GW1" "$GW2" "$RDS" "$SW"; do
	ip netns add "$ns" || fail "ip netns add $ns"
	_NS_LIST+=("$ns")	# the harness's cleanup removes them
	ip -n "$ns" link set lo up
	ns_resolver "$ns"
done
ip -n "$SW" link add br-lan type bridge
ip -n "$SW" link add br-wan type bridge
ip -n "$SW" link set br-lan up
ip -n "$SW" link set br-wan up
# plug NS IF BRIDGE: a veth from NS (named IF) into the switch's bridge
_port=0
plug() {
	_port=$((_port + 1))
	ip link add "$2" netns "$1" type veth peer name "p$_port" netns "$SW" || fail "veth $1 $2"
	ip -n "$SW" link set "p$_port" master "$3"
	ip -n "$SW" link set "p$_port" up
	ip -n "$1" link set "$2" up
}
ip -n "$SND" link del snd0		# re-wire: everything through the switch
plug "$SND" snd0 br-lan
plug "$GW1" lan0 br-lan
plug "$GW2" lan0 br-lan
plug "$RDS" rds0 br-lan
plug "$GW1" wan0 br-wan
plug "$GW2" wan0 br-wan
plug "$RCV" rcv0 br-wan
ip -n "$SND" addr add 10.25.2.1/24 dev snd0
ip -n "$GW1" addr add 10.25.2.11/24 dev lan0
ip -n "$GW2" addr add 10.25.2.12/24 dev lan0
ip -n "$RDS" addr add 10.25.2.50/24 dev rds0
ip -n "$GW1" addr add 10.25.1.251/24 dev wan0
ip -n "$GW2" addr add 10.25.1.252/24 dev wan0
ip -n "$RCV" addr add 10.25.1.2/24 dev rcv0
ip -n "$SND" route add default via 10.25.2.254
ip -n "$RCV" route add 10.25.2.0/24 via 10.25.1.254	# the pair's WAN VIP
for g in "$GW1" "$GW2"; do
	ip netns exec "$g" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
done

# keepalived N NS SELF PEER PRIO STATE (first: the sender reaches DNS
# through the VIP)
ka_start() {
	cat >"$T/ka$1.conf" <<EOF
global_defs {
    router_id gw$1
}
vrrp_instance mxguard {
    state $6
    interface lan0
    virtual_router_id 74
    priority $5
    advert_int 1
    unicast_src_ip $3
    unicast_peer {
        $4
    }
    virtual_ipaddress {
        10.25.2.254/24 dev lan0
        10.25.1.254/24 dev wan0
    }
}
EOF
	bg "$2" "$T/ka$1.log" keepalived -n -l -P -f "$T/ka$1.conf" \
		-p "$T/ka$1.pid" -r "$T/ka$1-vrrp.pid" -c "$T/ka$1-chk.pid"
	eval "KA${1}_PID=$BG_PID"
}
has_vip() { ip -n "$1" addr show dev lan0 | grep -q "inet 10.25.2.254/"; }
ka_start 1 "$GW1" 10.25.2.11 10.25.2.12 150 MASTER
wait_for 15 "VIP on gw1" has_vip "$GW1"
ka_start 2 "$GW2" 10.25.2.12 10.25.2.11 100 BACKUP
wait_log "$T/ka2.log" "Entering BACKUP STATE" 15
assert "VIP only on gw1" lacks 'inet 10\.25\.2\.254/' ip -n "$GW2" addr show dev lan0
# the receiving world: mx1.enf.test with a valid certificate, DNS, nginx
sts_enf_world mx1.enf.test
sts_policy enf.test <<'P'
version: STSv1
mode: enforce
mx: mx1.enf.test
max_age: 86400
P
sts_start
REDIS_PASSWORD=pair-$RANDOM$RANDOM
REDIS_TLS=redis.pair.test REDIS_USER=mxguard
redis_start "$RDS" 10.25.2.50 6379 "$REDIS_PASSWORD"
assert "Redis refuses a client without a certificate" \
	bash -c "! ip netns exec '$RDS' redis-cli --tls --cacert '$T/pki/ca.crt' -h 10.25.2.50 -p 6379 PING 2>/dev/null | grep -q PONG"
assert "Redis refuses the default user" \
	bash -c "ip netns exec '$RDS' redis-cli --tls --cacert '$T/pki/ca.crt' --cert '$T/pki/redis-cli.crt' --key '$T/pki/redis-cli.key' -h 10.25.2.50 -p 6379 GET mxguard:x 2>&1 | grep -q NOAUTH"
assert "the ACL user reaches Redis over TLS" bash -c "$(declare -f rcli); $(declare -p T REDIS_NS REDIS_ADDR REDIS_PORT REDIS_PASS REDIS_TLS REDIS_USER); rcli PING | grep -q PONG"

# gw_conf N: gateway N's mxguard.conf (as 57-gateway.sh, plus Redis)
gw_conf() {
	mkdir -p "$T/gw$1-state"
	make_cert "gw$1-redis" "gw$1.pair.test" client
	cat >"$T/gw$1.conf" <<EOF
listen = 0.0.0.0:$MXG_PORT
listen_mode = redirect
rules_mode = gateway
bypass_interfaces = wan0
steering = nfqueue
fail_mode = closed
upstream_mark = $MXG_MARK
user =
state_dir = $T/gw$1-state
control_socket = $T/gw$1.sock
tls_ca_file = $T/pki/ca.crt
log_level = debug
drain_timeout = 2s
$DNS_MXG_CONF
$STS_MXG_CONF
redis_address = 10.25.2.50:6379
redis_username = $REDIS_USER
redis_password = $REDIS_PASSWORD
redis_timeout = 500ms
redis_tls = yes
redis_tls_ca_file = $T/pki/ca.crt
redis_tls_server_name = $REDIS_TLS
redis_tls_cert_file = $T/pki/gw$1-redis.crt
redis_tls_key_file = $T/pki/gw$1-redis.key
# every message makes its own leg: a TLS leg parked before STARTTLS was
# stripped would carry the next message (legitimately) and hide the test
upstream_reuse = no
EOF
}
# gw_start N NS: rules and daemon; sets GWn_PID, logs to $T/gwN.log
gw_start() {
	local n=$1 ns=$2 log=$T/gw$1.log
	gw_conf "$n"
	ip netns exec "$ns" "$MXGUARD" -n -c "$T/gw$n.conf" >"$T/gw$n-check.log" 2>&1 ||
		fail "gw$n: mxguard -n: $(cat "$T/gw$n-check.log")"
	ip netns exec "$ns" "$MXGUARD" -c "$T/gw$n.conf" rules install >"$T/gw$n-rules.log" 2>&1 ||
		fail "gw$n: rules install: $(cat "$T/gw$n-rules.log")"
	bg "$ns" "$log" "$MXGUARD" -c "$T/gw$n.conf" run
	eval "GW${n}_PID=$BG_PID"
	wait_for 15 "gw$n mxguard started" grep -qE "event=started pid=$BG_PID " "$log"
	wait_log "$log" "event=redis-up address=10.25.2.50:6379 auth=acl-user tls=TLSv1.3" 10
}
gw_start 1 "$GW1"
gw_start 2 "$GW2"
GW1LOG=$T/gw1.log GW2LOG=$T/gw2.log

_reach() { in_snd timeout 2 bash -c "exec 3<>/dev/tcp/10.25.1.10/25"; }
wait_for 15 "sender reaches the receiver through the VIP" _reach

# 1. through gw1: the policy is fetched, used, written through to Redis
MXLOG=$GW1LOG
sts_send alice@enf.test "first, through gw1"
sts_assert_delivered "$QID" alice@enf.test
assert "gw1 decided under the fetched policy" \
	grep -qE "event=policy domain=enf.test dst=10.25.1.10 .*level=verify result=ok .*fetched" "$GW1LOG"
assert "gw2 saw nothing yet" [ "$(count_log "$GW2LOG" 'domain=enf.test')" = 0 ]
_in_redis() { rcli GET mxguard:sts:enf.test | grep -q "^MXGS2 enf.test "; }
wait_for 10 "the policy in Redis" _in_redis
assert "one policy fetch" [ "$(sts_fetches enf.test)" = 1 ]

# 2. the attacker's moment: no policy host, no TXT record, STARTTLS
#    stripped at the receiver
sts_stop
dns_records <<'Z'
enf IN MX 10 mx1.enf
mx1.enf IN A 10.25.1.10
Z
dns_wait_gone _mta-sts.enf.test TXT
postconf -c "$RD/etc" -e "smtpd_discard_ehlo_keywords = starttls" || fail postconf
pf_reload "$RD"
_ehlo() { in_rcv bash -c "exec 3<>/dev/tcp/10.25.1.10/25; printf 'EHLO x\r\nQUIT\r\n' >&3; timeout 3 cat <&3"; }
_stripped() { local e; e=$(_ehlo); grep -q "^250 " <<<"$e" && ! grep -qi starttls <<<"$e"; }
wait_for 15 "STARTTLS gone from the receiver's EHLO" _stripped

# 3. fail over to gw2, and send during it
kill -TERM "$KA1_PID"
sts_send alice@enf.test "second, during the failover"
q2=$QID; m2=$MSGID
wait_for 15 "VIP on gw2" has_vip "$GW2"
assert "VIP gone from gw1" lacks 'inet 10\.25\.2\.254/' ip -n "$GW1" addr show dev lan0
log "failover: VIP on gw2"
# the MTA retries (its first attempt may have met gw1 while the VIP
# moved) until gw2 has decided for the domain
_gw2_decided() { grep -qE "event=policy domain=enf.test " "$GW2LOG"; }
for i in 1 2 3 4 5 6; do
	wait_for 60 "an attempt for $q2" bash -c "[ \$(grep -cE ' $q2: to=<alice@enf.test>.* status=' '$SD/maillog') -ge $i ]"
	wait_deferred "$q2" 60
	_gw2_decided && break
	snd_flush
done
_gw2_decided || fail "gw2 never decided for enf.test"
wait_status "$q2" alice@enf.test deferred
assert "gw2 took the policy from Redis" \
	grep -qE "event=sts-policy-from-redis domain=enf.test id=1 mode=enforce" "$GW2LOG"
assert "gw2's verdict: verify, MTA-STS, from redis" \
	grep -qE "event=policy domain=enf.test dst=10.25.1.10 mx=mx1.enf.test source=mta-sts level=verify .*sts=\"mode=enforce,id=1,redis," "$GW2LOG"
assert "gw2 deferred: starttls-not-supported" grep -qE "reason=starttls-not-supported" "$GW2LOG"
why=$(queue_reason "$q2"); log "queue: $why"
assert "the MTA got 4.7.10" grep -qE "said: 4[0-9][0-9] 4\.7\.10 " <<<"$why"
assert "gw2 could not fetch the policy itself" lacks 'event=sts-fetch domain=enf.test id=[^ ]* result=ok' cat "$GW2LOG"
assert "still one message at the receiver" [ "$(mailbox_count alice@enf.test)" = 1 ]
assert "nothing crossed in clear: the receiver saw one envelope, the first message's" \
	[ "$(rcv_envelopes 10.25.1.10)" = 1 ]

# 4. STARTTLS is back: the retry delivers, exactly once
postconf -c "$RD/etc" -X smtpd_discard_ehlo_keywords || fail postconf
pf_reload "$RD"
_tls_back() { _ehlo | grep -qi starttls; }
wait_for 15 "STARTTLS back at the receiver" _tls_back
wait_deferred "$q2" 60
snd_flush
wait_status "$q2" alice@enf.test sent 60
wait_mailbox alice@enf.test 2
f2=$(msg_file_by_id alice@enf.test "$m2") || fail "message 2 not stored"
assert "message 2 over TLS" [ -n "$(received_tls "$f2")" ]
assert "message 2 stored exactly once" \
	[ "$(grep -l "Message-ID: <$m2>" "$(mailbox_dir alice@enf.test)"/new/* | grep -c .)" = 1 ]
assert "exactly two messages for alice" [ "$(mailbox_count alice@enf.test)" = 2 ]
assert "gw2 relayed the retry" grep -qE "event=policy domain=enf.test .*level=verify result=ok" "$GW2LOG"
pass "HA pair: gw2 enforced the policy gw1 learned (via Redis) after the failover; the mail arrived once"
