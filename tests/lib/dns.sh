# shellcheck shell=bash
# DNS peers for the MTA-STS (and later DANE) scenarios.  Source after
# tests/lib/ns.sh and call after ns_setup:
#
#   dns_records <<EOF          records of the zone "test." (relative names,
#   enf IN MX 10 mx1.enf        $ORIGIN test., default TTL $DNS_TTL)
#   EOF
#   dns_start                  knot (authoritative, $DNS_AUTH_IP) and unbound
#                              (resolver, $DNS_RESOLVER) in $RCV
#   dns_records <<EOF ... EOF  later: replace the records, bump the serial,
#                              reload knot (unbound caches for 1 s at most)
#   dns_wait NAME TYPE REGEX   poll the resolver until the answer matches
#
# mxguard is pointed at the resolver with "dns_servers = $DNS_RESOLVER"
# (DNS_MXG_CONF holds the config lines).  No DNSSEC here: unbound runs the
# iterator only.  Processes are started with bg (ns.sh) and removed by its
# cleanup.

DNS_AUTH_IP=10.25.1.53
DNS_RESOLVER=10.25.1.54
DNS_TTL=${DNS_TTL:-1}
DNS_MXG_CONF="dns_servers = $DNS_RESOLVER
dns_timeout = 3s"
_DNS_SERIAL=1
_DNS_RUNNING=0

dns_records() {
	local d=$T/dns
	mkdir -p "$d/zones" "$d/db"
	_DNS_SERIAL=$((_DNS_SERIAL + 1))
	{
		printf '$ORIGIN test.\n$TTL %s\n' "$DNS_TTL"
		printf '@ IN SOA ns1.test. hostmaster.test. %d 60 60 600 1\n' "$_DNS_SERIAL"
		printf '@ IN NS ns1.test.\nns1 IN A %s\n' "$DNS_AUTH_IP"
		cat
	} >"$d/zones/test.zone.new"
	mv "$d/zones/test.zone.new" "$d/zones/test.zone"
	if [ "$_DNS_RUNNING" = 1 ]; then
		in_rcv knotc -s "$d/knot.sock" zone-reload test. >/dev/null ||
			fail "knotc zone-reload"
		wait_for 10 "knot serves serial $_DNS_SERIAL" _dns_serial_is "$_DNS_SERIAL"
	fi
}
_dns_serial_is() {
	in_rcv drill -Q @"$DNS_AUTH_IP" test. SOA 2>/dev/null | grep -qE " $1 "
}

dns_start() {
	local d=$T/dns u=$T/unbound
	[ -f "$d/zones/test.zone" ] || fail "dns_start: call dns_records first"
	rcv_addr "$DNS_AUTH_IP"
	rcv_addr "$DNS_RESOLVER"
	cat >"$d/knot.conf" <<EOC
server:
    rundir: "$d"
    listen: $DNS_AUTH_IP@53
database:
    storage: "$d/db"
control:
    listen: "$d/knot.sock"
log:
  - target: "$d/knot.log"
    any: info
template:
  - id: default
    storage: "$d/zones"
    file: "%s.zone"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
    semantic-checks: off
zone:
  - domain: test.
EOC
	mkdir -p "$u"
	cat >"$u/unbound.conf" <<EOC
server:
    interface: $DNS_RESOLVER
    port: 53
    access-control: 0.0.0.0/0 allow
    do-not-query-localhost: no
    username: ""
    chroot: ""
    directory: "$u"
    pidfile: "$u/unbound.pid"
    use-syslog: no
    logfile: "$u/unbound.log"
    verbosity: 1
    do-daemonize: no
    num-threads: 1
    so-reuseport: no
    module-config: "iterator"
    qname-minimisation: no
    cache-max-ttl: 1
    cache-max-negative-ttl: 1
    local-zone: "test." nodefault
    domain-insecure: "test."
stub-zone:
    name: "test."
    stub-addr: $DNS_AUTH_IP
EOC
	bg "$RCV" "$d/knotd.out" knotd -c "$d/knot.conf"
	wait_port "$RCV" "$DNS_AUTH_IP" 53
	bg "$RCV" "$u/unbound.out" unbound -d -c "$u/unbound.conf"
	wait_port "$RCV" "$DNS_RESOLVER" 53
	_DNS_RUNNING=1
	wait_for 10 "resolver answers for test." _dns_answers test. SOA "IN[[:space:]]+SOA"
	log "dns: knot on $DNS_AUTH_IP, unbound on $DNS_RESOLVER"
}

_dns_answers() {	# NAME TYPE REGEX
	in_snd drill -Q @"$DNS_RESOLVER" "$1" "$2" 2>/dev/null | grep -qE -- "$3" ||
		in_snd drill @"$DNS_RESOLVER" "$1" "$2" 2>/dev/null | grep -E "^$1" | grep -qE -- "$3"
}

# dns_wait NAME TYPE REGEX [TIMEOUT]: the resolver's answer matches.
dns_wait() { wait_for "${4:-15}" "DNS $1 $2 ~ $3" _dns_answers "$1" "$2" "$3"; }

# dns_wait_gone NAME TYPE [TIMEOUT]: the resolver has no record of that type.
dns_wait_gone() { wait_for "${3:-15}" "DNS $1 $2 gone" _dns_none "$1" "$2"; }
_dns_none() {
	local out
	out=$(in_snd drill @"$DNS_RESOLVER" "$1" "$2" 2>/dev/null) || return 1
	grep -qE "rcode: (NXDOMAIN|NOERROR)" <<<"$out" &&
		! grep -E "^$1\\.?[[:space:]]" <<<"$out" | grep -qE "IN[[:space:]]+$2"
}
