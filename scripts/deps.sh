#!/bin/bash
# Installs everything the build, the whole test suite, the demo, the fuzzers
# and the benchmarks need (Debian 12), as root or as a user with sudo.
# tests/ns use curl (metrics), nft (rules), drill and ldns-* (ldnsutils),
# knotd, unbound, nginx, posttls-finger and smtp-source (postfix), man,
# redis-server (shared policy state) and keepalived (the HA pair, 74);
# prometheus and promtool (scenario 78: the metrics and the dashboard);
# the benchmarks stunnel4, perf, gnuplot and git.  .ci/run proves the list
# complete: it runs this script on a bare Debian 12 (scripts/fresh-root.sh).
# Idempotent: when every package is already installed it touches nothing
# (no apt-get update, no network).  Never leaves host services running:
# service starts are blocked with Debian's policy-rc.d mechanism during the
# install, and any of the test daemons the install started anyway are
# stopped again.
set -euo pipefail

PKGS=(
	build-essential pkg-config clang libclang-rt-14-dev
	libssl-dev libc-ares-dev libnetfilter-queue-dev libnfnetlink-dev libmnl-dev
	liblmdb-dev libcmocka-dev libidn2-dev libjansson-dev zlib1g-dev libopendkim-dev python3-dkim
	postfix unbound knot ldnsutils nginx-light stunnel4 swaks
	libhiredis-dev redis-server keepalived
	iptables nftables iproute2 procps openssl ca-certificates python3 conntrack curl git
	man-db groff-base systemd valgrind linux-perf gnuplot-nox
	prometheus
)
SERVICES=(postfix unbound nginx knot stunnel4 redis-server keepalived prometheus prometheus-node-exporter)

SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo

missing=()
for p in "${PKGS[@]}"; do
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	[ "$st" = "install ok installed" ] || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	echo "deps: all ${#PKGS[@]} packages present"
	exit 0
fi
echo "deps: installing ${missing[*]}"

# running NAME...: a process of that name in our own network namespace.
# The test suites' daemons (nginx, unbound, knotd in network namespaces,
# perhaps of another run on the same machine) are not host services.
running() {
	local me p
	me=$(readlink /proc/self/ns/net)
	for p in $(pidof "$@" 2>/dev/null); do
		[ "$($SUDO readlink "/proc/$p/ns/net" 2>/dev/null)" = "$me" ] && return 0
	done
	return 1
}
is_running() {	# SERVICE: is its daemon running on the host?
	case $1 in
	postfix)  $SUDO postfix status >/dev/null 2>&1 ;;
	unbound)  running unbound ;;
	nginx)    running nginx ;;
	knot)     running knotd ;;
	stunnel4) running stunnel4 stunnel ;;
	redis-server) running redis-server ;;
	keepalived) running keepalived ;;
	prometheus) running prometheus ;;
	prometheus-node-exporter) running prometheus-node-exporter ;;
	esac
}
was_running=()
for s in "${SERVICES[@]}"; do
	if is_running "$s"; then was_running+=("$s"); fi
done

# Block service starts for the duration of the install, unless the machine
# already has a policy-rc.d (then it is left exactly as it is).
created_policy=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\n# temporary, scripts/deps.sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
	$SUDO chmod 755 /usr/sbin/policy-rc.d
	created_policy=1
fi
cleanup() {
	if [ "$created_policy" = 1 ]; then $SUDO rm -f /usr/sbin/policy-rc.d; fi
}
trap cleanup EXIT

# Postfix: no questions, no configuration.
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
echo "postfix postfix/mailname string localhost" | $SUDO debconf-set-selections

export DEBIAN_FRONTEND=noninteractive
${SUDO:+$SUDO -E} apt-get update
${SUDO:+$SUDO -E} apt-get install -y "${missing[@]}"

# Stop whatever the install started (policy-rc.d should have prevented it).
for s in "${SERVICES[@]}"; do
	case " ${was_running[*]:-} " in *" $s "*) continue;; esac
	if is_running "$s"; then
		echo "deps: stopping host service $s started by the install"
		if [ -d /run/systemd/system ]; then
			$SUDO systemctl stop "$s" || true
		elif [ -x "/etc/init.d/$s" ]; then
			$SUDO "/etc/init.d/$s" stop || true
		fi
		[ "$s" = postfix ] && { $SUDO postfix stop >/dev/null 2>&1 || true; }
	fi
done
echo "deps: done"
