#!/bin/bash
# fresh-root.sh: runs a command in a clean clone of this repository inside a
# bare Debian 12 root file system, as root, the way a newcomer on a new
# machine would run it.  Nothing the host has installed or configured is
# visible in there, so a package scripts/deps.sh forgets to install, or a
# test that reads the host's /etc, fails here.  The kernel (netfilter,
# network namespaces) is the host's.  This is what .ci/run runs.
#
# usage (as root, from anywhere in the repository):
#   scripts/fresh-root.sh                      './scripts/deps.sh && make check'
#   scripts/fresh-root.sh 'CMD'                any command, run in the clone
#   scripts/fresh-root.sh './scripts/deps.sh && make check-ns NS=^57'
#
# Environment:
#   FRESH_BASE=/var/cache/mxguard/debian12   the cached root (debootstrap of
#                              bookworm, made once, never written to after)
#   FRESH_SEED=DIR             make the cache by copying DIR (an existing
#                              bookworm debootstrap) instead of running
#                              debootstrap
#   FRESH_REBUILD=1            throw the cache away and make it again
#   FRESH_COMMIT=REV           the commit to test (default HEAD); uncommitted
#                              changes are never part of the test
#   FRESH_KEEP=1               keep the run's root ($FRESH_BASE.run.PID)
#   FRESH_TIMEOUT=4800         seconds the command may take (then it fails):
#                              80 minutes, under the CI runner's 90; the
#                              suite aims at 45 (docs/testing.md)
#   CI                         passed into the root when set
#
# Each run starts from a pristine copy of the cache ($FRESH_BASE.run.PID,
# removed afterwards) with the host's apt sources and resolv.conf, clones
# the repository at the commit into /root/project, and runs the command
# chrooted in a mount namespace of its own (unshare -m): the root bound onto
# itself (`ip netns exec` remounts "/", which must be a mount point), /proc,
# /sys, /dev and a private tmpfs /run.  Every mount lives and dies with
# that namespace, so nothing is left mounted on the host even when the run
# is killed; processes the command left behind in the root are killed
# before the copy is removed.  Exits with the command's status.
set -euo pipefail
{	# parsed whole before it runs: editing this file under a run is harmless

BASE=${FRESH_BASE:-/var/cache/mxguard/debian12}
SUITE=bookworm
# Run on the copy, inside the private mount namespace (see the end).
if [ "${_FRESH_STAGE:-}" = chroot ]; then
	run=$1 cmd=$2
	mount --bind "$run" "$run"
	mount -t proc proc "$run/proc"
	mount --rbind /sys "$run/sys"
	mount --rbind /dev "$run/dev"
	mount -t tmpfs -o mode=0755 tmpfs "$run/run"
	mkdir -p "$run/run/netns" "$run/run/lock"
	envs=(HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
	      TERM=dumb LANG=C.UTF-8)
	[ -n "${CI:-}" ] && envs+=("CI=$CI")
	set +e
	timeout -k 30 "${FRESH_TIMEOUT:-4800}" chroot "$run" /usr/bin/env -i "${envs[@]}" \
		/bin/bash -c "cd /root/project && $cmd" </dev/null
	rc=$?
	[ "$rc" = 124 ] && echo "fresh-root: timeout after ${FRESH_TIMEOUT:-4800}s" >&2
	# whatever the command left running in the root (a daemon an install
	# started, a test's straggler) goes before the copy is removed
	for i in 1 2 3 4 5 6; do
		left=()
		for p in /proc/[0-9]*; do
			[ "$(readlink "$p/root" 2>/dev/null)" = "$run" ] && left+=("${p#/proc/}")
		done
		[ ${#left[@]} = 0 ] && break
		if [ "$i" -lt 4 ]; then sig=TERM; else sig=KILL; fi
		kill -"$sig" "${left[@]}" 2>/dev/null
		sleep 0.5
	done
	exit "$rc"
fi

[ "$(id -u)" = 0 ] || { echo "fresh-root: needs root (chroot, mounts)" >&2; exit 2; }
PROJECT=$(git rev-parse --show-toplevel)
COMMIT=$(git -C "$PROJECT" rev-parse --verify "${FRESH_COMMIT:-HEAD}^{commit}")
CMD=${1:-'./scripts/deps.sh && make check'}
if [ -n "$(git -C "$PROJECT" status --porcelain --untracked-files=no)" ]; then
	echo "fresh-root: note: uncommitted changes in $PROJECT are not tested"
fi

# The cache: made once, under a lock (runs may start side by side), into
# a temporary name that becomes the cache only when complete.
make_base() {
	local tmp=$BASE.new
	rm -rf --one-file-system "$tmp"
	if [ -n "${FRESH_SEED:-}" ]; then
		[ -x "$FRESH_SEED/bin/bash" ] && [ -f "$FRESH_SEED/etc/debian_version" ] ||
			{ echo "fresh-root: FRESH_SEED=$FRESH_SEED is not a Debian root" >&2; return 1; }
		echo "fresh-root: copying $FRESH_SEED into $BASE (once)"
		cp -a "$FRESH_SEED" "$tmp"
	else
		if ! command -v debootstrap >/dev/null; then
			apt-get update -qq
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
		fi
		echo "fresh-root: debootstrap $SUITE into $BASE (once; log $BASE.log)"
		# git: a newcomer has it (the clone came with it); nothing else
		# beyond Debian's required and important packages
		debootstrap --include=git "$SUITE" "$tmp" >"$BASE.log" 2>&1 ||
			{ tail -n 20 "$BASE.log" >&2; return 1; }
	fi
	grep -q '^12' "$tmp/etc/debian_version" ||
		{ echo "fresh-root: $tmp is not Debian 12" >&2; return 1; }
	rm -rf "$tmp/var/cache/apt/archives/"*.deb "$tmp/var/lib/apt/lists/"* 2>/dev/null || true
	mv "$tmp" "$BASE"
}
mkdir -p "$(dirname "$BASE")"
exec 9>"$BASE.lock"
flock 9
[ "${FRESH_REBUILD:-0}" = 1 ] && rm -rf --one-file-system "$BASE"
[ -x "$BASE/bin/bash" ] || make_base
exec 9>&-	# unlocks; the command's processes must not hold it

RUN=$BASE.run.$$
cleanup() {
	local rc=$?
	if [ "${FRESH_KEEP:-0}" = 1 ]; then
		echo "fresh-root: kept $RUN"
	elif ! awk -v r="$RUN" 'index($2, r) == 1 {f=1} END {exit !f}' /proc/mounts; then
		rm -rf --one-file-system "$RUN"
	else
		echo "fresh-root: something is mounted under $RUN; not removing it" >&2
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rm -rf --one-file-system "$RUN"
cp -a "$BASE" "$RUN"
# The machine's package sources (a new Debian machine has its installer's
# sources; here the host's, proxies included), and its resolver.
if [ -e /etc/apt/sources.list ] || compgen -G '/etc/apt/sources.list.d/*' >/dev/null; then
	rm -f "$RUN/etc/apt/sources.list"
	[ -e /etc/apt/sources.list ] && cp /etc/apt/sources.list "$RUN/etc/apt/"
	[ -d /etc/apt/sources.list.d ] && cp -r /etc/apt/sources.list.d/. "$RUN/etc/apt/sources.list.d/"
fi
[ -d /etc/apt/apt.conf.d ] && cp -r /etc/apt/apt.conf.d/. "$RUN/etc/apt/apt.conf.d/"
[ -d /etc/apt/trusted.gpg.d ] && cp -r /etc/apt/trusted.gpg.d/. "$RUN/etc/apt/trusted.gpg.d/"
cp -L /etc/resolv.conf "$RUN/etc/resolv.conf"

git clone -q --no-checkout "$PROJECT" "$RUN/root/project"
# a commit no branch holds (a detached HEAD) does not come with the clone
git -C "$RUN/root/project" cat-file -e "$COMMIT^{commit}" 2>/dev/null ||
	git -C "$PROJECT" push -q "$RUN/root/project" "$COMMIT:refs/heads/fresh-root-under-test"
git -C "$RUN/root/project" checkout -q --detach "$COMMIT"

echo "fresh-root: $(git -C "$PROJECT" log -1 --format='%h %s' "$COMMIT")"
echo "fresh-root: in $RUN: $CMD"
start=$SECONDS
set +e
_FRESH_STAGE=chroot unshare --mount --propagation private \
	"$(readlink -f "${BASH_SOURCE[0]}")" "$RUN" "$CMD"
rc=$?
set -e
echo "fresh-root: exit $rc after $(( (SECONDS - start) / 60 )) min $(( (SECONDS - start) % 60 )) s"
exit "$rc"
}
