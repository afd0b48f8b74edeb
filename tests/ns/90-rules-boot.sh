#!/bin/bash
# 90: `mxguard rules boot`, what mxguard-rules.service runs before the
# network comes up.  With a configuration that does not load it installs
# the refusal set: the MTA's port-25 connection is refused (a reset) and
# never reaches the MX, over IPv4 and IPv6 alike, and the command exits 1.
# `rules install` with a good configuration (here through the daemon's
# start) replaces the refusal set: the next session is diverted as usual.
# So does a configuration whose set cannot be installed (nftables with
# NFQUEUE steering on this kernel).  With a good configuration `rules boot` installs exactly what `rules
# install` does and exits 0; `rules remove` leaves the namespace's tables
# as they were before.
. "$(dirname "$0")/../lib/ns.sh"
. "$(dirname "$0")/../lib/nfq.sh"
need_mxguard
ns_setup
bad_start 10.25.1.30 --mode normal
assert "fresh namespace: no tables" [ -z "$(ipt_snapshot)" ]

cat >"$T/mta.py" <<'PYEOF'
import socket, sys
try:
    c = socket.create_connection((sys.argv[1], 25), timeout=5)
    print("greeting:", c.recv(300))
    c.sendall(b"QUIT\r\n")
    print("quit:", c.recv(300))
    print("port:", c.getsockname()[1])
except OSError as e:
    print("error:", repr(e))
PYEOF

# a configuration that does not load: the refusal set
printf 'user =\nfail_mode = sometimes\n' >"$T/broken.conf"
in_snd "$MXGUARD" -c "$T/broken.conf" rules boot >"$T/boot.out" 2>&1
rc=$?
cat "$T/boot.out" >&2
assert "rules boot with a broken configuration exits 1" [ "$rc" = 1 ]
assert "rules boot says it installed the refusal set" grep -q "installed the refusal set" "$T/boot.out"
assert "the refusal set is in iptables and ip6tables (OUTPUT and FORWARD)" bash -c "
	for t in iptables ip6tables; do
		s=\$(ip netns exec '$SND' \$t-save -t filter)
		grep -q -- '-A MXGUARD_GUARD -p tcp -j REJECT --reject-with tcp-reset' <<<\"\$s\" &&
		grep -q -- '-A OUTPUT ! -o lo -p tcp -m tcp --dport 25 .*-j MXGUARD_GUARD' <<<\"\$s\" &&
		grep -q -- '-A FORWARD ! -i lo -p tcp -m tcp --dport 25 .*-j MXGUARD_GUARD' <<<\"\$s\" || exit 1
	done"
in_snd python3 "$T/mta.py" 10.25.1.30 >"$T/mta1.out" 2>&1
cat "$T/mta1.out" >&2
assert "the MTA's connection is refused" grep -q '^error: ConnectionRefusedError' "$T/mta1.out"
assert "the MX saw no connection" lacks ' open ' cat "$BADLOG"
printf 'user =\n' >"$T/defaults.conf"
assert "rules show sees mxguard's rules" in_snd "$MXGUARD" -c "$T/defaults.conf" rules show

# a configuration that loads but whose set cannot be installed (the nft
# queue statement, which this kernel lacks): the refusal set too
in_snd "$MXGUARD" -c "$T/defaults.conf" rules remove || fail "rules remove"
assert "rules remove takes the refusal set out" [ -z "$(ipt_snapshot)" ]
printf 'user =\nrules_backend = nftables\n' >"$T/nftq.conf"
in_snd "$MXGUARD" -c "$T/nftq.conf" rules boot >"$T/boot1.out" 2>&1
rc=$?
cat "$T/boot1.out" >&2
assert "rules boot whose set fails exits 1" [ "$rc" = 1 ]
assert "it says why, then that it installed the refusal set" bash -c "grep -q 'CONFIG_NFT_QUEUE' '$T/boot1.out' && grep -q 'installed the refusal set' '$T/boot1.out'"
assert "the refusal set is in" bash -c "ip netns exec '$SND' iptables-save | grep -q -- '-A MXGUARD_GUARD -p tcp -j REJECT --reject-with tcp-reset'"

# the daemon's start installs the configured set over it
nfq_start
in_snd python3 "$T/mta.py" 10.25.1.30 >"$T/mta2.out" 2>&1
cat "$T/mta2.out" >&2
assert "the next session is answered" grep -q '^quit: ' "$T/mta2.out"
CPORT=$(sed -n 's/^port: //p' "$T/mta2.out")
assert "mxguard took it" grep -qE "event=connect client=$SND_IP:$CPORT dst=10\.25\.1\.30:25" "$MXLOG"
assert "the refusal set is gone" lacks '-A MXGUARD_GUARD -p tcp -j REJECT' in_snd iptables-save
assert "no FORWARD jump is left" lacks '-A FORWARD .*MXGUARD' in_snd iptables-save
INSTALLED=$(ipt_snapshot)
mxg_stop

# a good configuration: boot is install
mxg_ctl rules remove || fail "rules remove"
assert "rules remove leaves the tables as they were" [ -z "$(ipt_snapshot)" ]
mxg_ctl rules boot >"$T/boot2.out" 2>&1
rc=$?
cat "$T/boot2.out" >&2
assert "rules boot with a good configuration exits 0" [ "$rc" = 0 ]
assert "rules boot installs what rules install does" [ "$(ipt_snapshot)" = "$INSTALLED" ]
mxg_ctl rules remove || fail "rules remove"
assert "rules remove leaves the tables as they were" [ -z "$(ipt_snapshot)" ]
pass "rules boot: the configured set, or the refusal set when the configuration does not load"
