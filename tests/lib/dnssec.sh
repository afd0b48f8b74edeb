# shellcheck shell=bash
# DNSSEC test infrastructure for the DANE scenarios (tests/ns/4x-*.sh).
# Sourced after tests/lib/ns.sh, used after ns_setup:
#
#   knot (knotd) in $RCV on $DNSSEC_IP serves the test zones, pre-signed with
#   ldns-signzone (knot's own signing off); unbound in $SND on 127.0.0.1
#   validates with the test trust anchors (a DS per signed zone, no root
#   anchor: every other name is insecure) and reaches knot through one
#   stub-zone per test zone.  mxguard gets dns_servers = 127.0.0.1, and
#   /etc/netns/$SND/resolv.conf points at the same unbound with
#   "options trust-ad" (glibc strips the AD bit otherwise), so
#   posttls-finger in $SND sees the same DNS as mxguard.
#
#   dnssec_zone ZONE signed|unsigned   start a zone (SOA, NS, ns A)
#   dnssec_rr ZONE "RR line"           add a record (absolute names)
#   dnssec_mx DOMAIN HOST ADDR         MX DOMAIN -> HOST, HOST A ADDR
#   dnssec_tlsa ZONE HOST U S M CERT   TLSA _25._tcp.HOST from a PEM cert
#   dnssec_break_sig ZONE OWNER TYPE   after signing: corrupt that RRSIG
#   dnssec_servfail ZONE LABEL         delegate LABEL.ZONE to a server that
#                                      answers SERVFAIL to everything
#   dnssec_blackhole ZONE LABEL        delegate LABEL.ZONE to a server that
#                                      reads queries and never answers
#                                      (lookups below it time out)
#   dnssec_start                       sign, start knot + unbound, wait
#   dnssec_check NAME TYPE REGEX       drill through unbound matches REGEX
#   dnssec_rcode NAME TYPE             rcode unbound answers
#   ptf_record DOMAIN                  posttls-finger -c -l dane -L summary
#                                      DOMAIN, verdict kept for
#   dane_differential DOMAIN VERDICT   assert it agrees with mxguard's
#   mxg_verdict QID RCPT DOMAIN        mxguard's verdict from the logs
#
# mxguard gets $DNSSEC_MXG_CONF (dns_servers = 127.0.0.1).  Run
# ptf_record before mxg_start: the divert rules would send posttls-finger's
# port-25 connections to mxguard.
#
# Everything runs inside the scenario's namespaces and temp dir and is
# cleaned up by ns.sh's EXIT trap (the processes are recorded with bg).

DNSSEC_IP=10.25.1.63
DNSSEC_FAIL_IP=10.25.1.64
DNSSEC_BLACKHOLE_IP=10.25.1.65
DNSSEC_MXG_CONF="dns_servers = 127.0.0.1
dns_timeout = 5s"
ZD=""  # $T/dnssec
_DNSSEC_ZONES=()
_DNSSEC_SIGNED=()
_DNSSEC_BREAK=()

_dnssec_init() {
	[ -n "$ZD" ] && return 0
	ZD=$T/dnssec
	mkdir -p "$ZD/keys" "$ZD/knot-run" "$ZD/knot-db"
}

dnssec_zone() {	# ZONE signed|unsigned
	_dnssec_init
	local z=$1
	_DNSSEC_ZONES+=("$z")
	[ "$2" = signed ] && _DNSSEC_SIGNED+=("$z")
	cat >"$ZD/$z.zone" <<EOF
\$ORIGIN $z.
\$TTL 60
@	IN SOA ns.$z. hostmaster.$z. 1 3600 600 86400 30
@	IN NS ns.$z.
ns	IN A $DNSSEC_IP
EOF
}

dnssec_rr() { echo "$2" >>"$ZD/$1.zone"; }

dnssec_mx() {	# DOMAIN HOST ADDR (HOST inside zone DOMAIN)
	dnssec_rr "$1" "$1. IN MX 10 $2."
	dnssec_rr "$1" "$2. IN A $3"
}

# _tlsa_data U S M CERTFILE: hex association data (openssl and od only)
_tlsa_der() {	# S CERTFILE: DER of the certificate (0) or its public key (1)
	if [ "$1" = 0 ]; then
		openssl x509 -in "$2" -outform DER
	else
		openssl x509 -in "$2" -noout -pubkey | openssl pkey -pubin -outform DER
	fi
}
_tlsa_data() {
	case $3 in
	0) _tlsa_der "$2" "$4" | od -An -v -tx1 | tr -d ' \n' ;;
	1) _tlsa_der "$2" "$4" | openssl dgst -sha256 -r | cut -d' ' -f1 ;;
	2) _tlsa_der "$2" "$4" | openssl dgst -sha512 -r | cut -d' ' -f1 ;;
	esac
}

dnssec_tlsa() {	# ZONE HOST U S M CERTFILE
	local d
	d=$(_tlsa_data "$3" "$4" "$5" "$6") || fail "TLSA data from $6"
	dnssec_rr "$1" "_25._tcp.$2. IN TLSA $3 $4 $5 $d"
}

dnssec_break_sig() { _DNSSEC_BREAK+=("$1|$2|$3"); }

dnssec_servfail() {	# ZONE LABEL
	dnssec_rr "$1" "$2.$1. IN NS nsfail.$1."
	dnssec_rr "$1" "nsfail.$1. IN A $DNSSEC_FAIL_IP"
	_DNSSEC_SERVFAIL=1
}

dnssec_blackhole() {	# ZONE LABEL
	dnssec_rr "$1" "$2.$1. IN NS nsblack.$1."
	dnssec_rr "$1" "nsblack.$1. IN A $DNSSEC_BLACKHOLE_IP"
	_DNSSEC_BLACKHOLE=1
}

_dnssec_sign() {	# ZONE -> $ZD/ZONE.signed, DS into $ZD/anchors
	local z=$1 ksk zsk
	(
		cd "$ZD/keys" || exit 1
		ksk=$(ldns-keygen -a ECDSAP256SHA256 -k "$z") || exit 1
		zsk=$(ldns-keygen -a ECDSAP256SHA256 "$z") || exit 1
		ldns-signzone -n -o "$z" -f "$ZD/$z.signed" "$ZD/$z.zone" "$ksk" "$zsk" || exit 1
		ldns-key2ds -n -2 "$ksk.key" >>"$ZD/anchors" || exit 1
	) >"$ZD/sign-$z.log" 2>&1 || fail "signing $z: $(cat "$ZD/sign-$z.log")"
}

# Flips one character of the signature (last field) of OWNER's RRSIG
# covering TYPE: the data stays the same, the signature no longer verifies.
_dnssec_break() {	# ZONE OWNER TYPE
	python3 - "$ZD/$1.signed" "$2" "$3" <<'EOF' || fail "breaking signature of $2 $3"
import sys
path, owner, typ = sys.argv[1], sys.argv[2].rstrip(".").lower() + ".", sys.argv[3].upper()
out, n = [], 0
for line in open(path):
    f = line.split()
    if len(f) > 5 and f[0].lower() == owner and f[3] == "RRSIG" and f[4].upper() == typ:
        sig = f[-1]
        i = len(sig) // 2
        c = "B" if sig[i] != "B" else "C"
        f[-1] = sig[:i] + c + sig[i + 1:]
        line = "\t".join(f) + "\n"
        n += 1
    out.append(line)
if n == 0:
    sys.exit("no RRSIG %s for %s" % (typ, owner))
open(path, "w").write("".join(out))
EOF
}

dnssec_start() {
	_dnssec_init
	local z b
	: >"$ZD/anchors"
	for z in "${_DNSSEC_ZONES[@]}"; do
		if [[ " ${_DNSSEC_SIGNED[*]} " == *" $z "* ]]; then
			_dnssec_sign "$z"
		else
			cp "$ZD/$z.zone" "$ZD/$z.signed"
		fi
	done
	for b in "${_DNSSEC_BREAK[@]}"; do
		IFS='|' read -r z o t <<<"$b"
		_dnssec_break "$z" "$o" "$t"
	done
	rcv_addr "$DNSSEC_IP"
	{
		cat <<EOF
server:
    rundir: "$ZD/knot-run"
    listen: $DNSSEC_IP@53
database:
    storage: "$ZD/knot-db"
log:
  - target: stderr
    any: info
template:
  - id: default
    storage: "$ZD"
    dnssec-signing: off
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
    semantic-checks: off
zone:
EOF
		for z in "${_DNSSEC_ZONES[@]}"; do
			printf '  - domain: %s\n    file: %s.signed\n' "$z" "$z"
		done
	} >"$ZD/knot.conf"
	bg "$RCV" "$ZD/knot.log" knotd -c "$ZD/knot.conf"
	if [ "${_DNSSEC_SERVFAIL:-0}" = 1 ]; then
		rcv_addr "$DNSSEC_FAIL_IP"
		cat >"$ZD/servfail.py" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 53))
while True:
    q, peer = s.recvfrom(4096)
    if len(q) < 12:
        continue
    # echo the header and question, QR=1, RD copied, RA=1, rcode SERVFAIL,
    # no records
    end = 12
    while end < len(q) and q[end] != 0:
        end += q[end] + 1
    end += 5
    hdr = q[:2] + bytes([0x80 | (q[2] & 0x01), 0x82]) + b"\x00\x01" + b"\x00" * 6
    s.sendto(hdr + q[12:end], peer)
EOF
		bg "$RCV" "$ZD/servfail.log" python3 "$ZD/servfail.py" "$DNSSEC_FAIL_IP"
	fi
	if [ "${_DNSSEC_BLACKHOLE:-0}" = 1 ]; then
		rcv_addr "$DNSSEC_BLACKHOLE_IP"
		# a bound socket (no ICMP port unreachable), read and dropped
		cat >"$ZD/blackhole.py" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 53))
while True:
    s.recvfrom(4096)
EOF
		bg "$RCV" "$ZD/blackhole.log" python3 "$ZD/blackhole.py" "$DNSSEC_BLACKHOLE_IP"
	fi
	{
		cat <<EOF
server:
    interface: 127.0.0.1
    port: 53
    do-daemonize: no
    username: ""
    chroot: ""
    directory: "$ZD"
    pidfile: "$ZD/unbound.pid"
    use-syslog: no
    logfile: ""
    verbosity: 1
    val-log-level: 2
    num-threads: 1
    do-ip6: no
    do-not-query-localhost: no
    access-control: 127.0.0.0/8 allow
    module-config: "validator iterator"
    trust-anchor-file: "$ZD/anchors"
    qname-minimisation: no
    aggressive-nsec: no
    cache-max-negative-ttl: 5
    ede: yes
    local-zone: "test." nodefault
    domain-insecure: "."
remote-control:
    control-enable: no
stub-zone:
    name: "."
    stub-addr: $DNSSEC_IP
EOF
		for z in "${_DNSSEC_ZONES[@]}"; do
			printf 'stub-zone:\n    name: "%s"\n    stub-addr: %s\n' "$z" "$DNSSEC_IP"
		done
	} >"$ZD/unbound.conf"
	unbound-checkconf "$ZD/unbound.conf" >"$ZD/unbound-check.log" 2>&1 ||
		fail "unbound.conf: $(cat "$ZD/unbound-check.log")"
	bg "$SND" "$ZD/unbound.log" unbound -d -c "$ZD/unbound.conf"
	printf 'nameserver 127.0.0.1\noptions trust-ad\n' >"/etc/netns/$SND/resolv.conf"
	wait_port "$RCV" "$DNSSEC_IP" 53
	wait_port "$SND" 127.0.0.1 53
	for z in "${_DNSSEC_ZONES[@]}"; do
		if [[ " ${_DNSSEC_SIGNED[*]} " == *" $z "* ]]; then
			wait_for 15 "secure SOA of $z through unbound" _dnssec_ad "$z" SOA
		else
			wait_for 15 "SOA of $z through unbound" _dnssec_has "$z" SOA
		fi
	done
	log "dns: knot on $DNSSEC_IP (zones ${_DNSSEC_ZONES[*]}), unbound on 127.0.0.1 in $SND"
}

_dnssec_drill() { in_snd drill -D "$2" "$1" @127.0.0.1 2>/dev/null; }
_dnssec_has() { _dnssec_drill "$1" "$2" | grep -qE "^$1\.[[:space:]].*[[:space:]]$2[[:space:]]"; }
_dnssec_ad() { _dnssec_drill "$1" "$2" | grep -qE '^;; flags: .*\bad\b' && _dnssec_has "$1" "$2"; }
# _dnssec_noad NAME TYPE: an answer came, with the record and without the
#   AD bit (`not _dnssec_ad` also passed when drill got no answer at all).
_dnssec_noad() {
	local out
	out=$(_dnssec_drill "$1" "$2") || return 1
	grep -qE '^;; flags: ' <<<"$out" &&
		grep -qE "^$1\.[[:space:]].*[[:space:]]$2[[:space:]]" <<<"$out" &&
		! grep -qE '^;; flags: .*\bad\b' <<<"$out"
}
# dnssec_check NAME TYPE REGEX: the answer (drill output) matches REGEX.
dnssec_check() { _dnssec_drill "$1" "$2" | grep -qE -- "$3"; }
dnssec_rcode() { _dnssec_drill "$1" "$2" | sed -nE 's/.*rcode: ([A-Z]+).*/\1/p' | head -n1; }

# _ptf_config: $T/ptf/main.cf, posttls-finger's own configuration: the
#   defaults (DNS lookups on: its DANE needs the MX and TLSA records from
#   the validating unbound in $SND), with the test CA as trust store.
_ptf_config() {
	[ -f "$T/ptf/main.cf" ] && return 0
	mkdir -p "$T/ptf"
	make_ca
	printf 'compatibility_level = 3.6\nsmtp_tls_CAfile = %s\n' "$T/pki/ca.crt" >"$T/ptf/main.cf"
}

# ptf_verdict DOMAIN: posttls-finger with DANE against DOMAIN's MX, in $SND
#   (before mxguard's divert rules are installed, or after they are
#   removed): "verified", "untrusted" (TLS without authentication),
#   or "failure" (no TLS / connection refused by the policy).
#   The full output is kept in $T/ptf-DOMAIN.log.
#   posttls-finger reads $MAIL_CONFIG/main.cf (default /etc/postfix, which
#   a Postfix installed with "No configuration" does not have): it gets a
#   configuration of its own in $T/ptf (_ptf_config), so that nothing under
#   the host's /etc/postfix matters.  A run that did not get as far as a
#   connection (a "fatal:" line) fails the scenario instead of counting as
#   "failure", which the scenarios expecting no verification would accept.
ptf_verdict() {
	local out=$T/ptf-$1.log
	_ptf_config
	MAIL_CONFIG=$T/ptf in_snd timeout 30 posttls-finger -c -l dane -L summary "$1" >"$out" 2>&1
	if grep -qE 'fatal:' "$out"; then
		fail "posttls-finger $1 did not run: $(grep -E 'fatal:' "$out" | head -n1)"
	elif grep -qE '^posttls-finger: Verified TLS connection' "$out"; then
		echo verified
	elif grep -qE '^posttls-finger: (Untrusted|Anonymous|Trusted) TLS connection' "$out"; then
		echo untrusted
	else
		echo failure
	fi
}

# ---------------------------------------------------------------- differential

# dane_differential DOMAIN MXG_VERDICT: asserts that posttls-finger's DANE
#   verdict for DOMAIN (run earlier with ptf_verdict, kept in PTF[DOMAIN])
#   agrees with mxguard's: both "verified", or neither.
declare -A PTF=()
ptf_record() {
	PTF[$1]=$(ptf_verdict "$1") || fail "posttls-finger $1: no verdict"
	log "posttls-finger $1: ${PTF[$1]}"
}
dane_differential() {
	local dom=$1 mx=$2 p=${PTF[$1]:-}
	[ -n "$p" ] || fail "no posttls-finger verdict recorded for $dom"
	if [ "$p" = verified ]; then p=verified; else p=not-verified; fi
	if [ "$mx" = verified ]; then mx=verified; else mx=not-verified; fi
	assert "differential $dom: posttls-finger ($p, ${PTF[$1]}) agrees with mxguard ($mx)" [ "$p" = "$mx" ]
}

# mxg_verdict QID RCPT DOMAIN: "verified" when the message was delivered
#   and mxguard's line for that very delivery shows a leg authenticated by
#   DANE: event=delivery for DOMAIN with policy_source=dane
#   policy_level=dane verify=success, whose reply carries the receiver's
#   queue id the sender logged with status=sent ("queued as ID");
#   "delivered" when delivered otherwise, "queued" when it stayed in the
#   queue.  (A DANE policy line for DOMAIN plus any event=tls with
#   verify=success, another domain's session's too, made "verified".)
mxg_verdict() {
	local st id re
	st=$(snd_status "$1" "$2")
	if [ "$st" != sent ]; then
		echo queued
		return 0
	fi
	id=$(grep -E " $1: to=<$2>.* status=sent " "$SD/maillog" | tail -n1 |
		sed -nE 's/.* queued as ([0-9A-Za-z]+)\).*/\1/p')
	[ -n "$id" ] ||
		fail_loud "mxg_verdict: no receiver queue id in the sender's status=sent line for $2 ($1)"
	re="event=delivery domains=${3//./\\.} dst=[^ ]+ mx=[^ ]+"
	re+=" policy_source=dane policy_level=dane tls=[^ ]+ cipher=[^ ]+"
	re+=" verify=success reply=\"250 [^\"]* queued as $id\""
	if grep -qE -- "$re" "$MXLOG"; then
		echo verified
	else
		echo delivered
	fi
}

# not cmd...: negation usable with assert.
not() { ! "$@"; }
