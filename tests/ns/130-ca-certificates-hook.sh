#!/bin/bash
# 130: a ca-certificates update reloads mxguard.  The daemon reads its CA
# store (the system's unless tls_ca_file/tls_ca_path) at start and at each
# reload; update-ca-certificates runs /etc/ca-certificates/update.d/*
# after it changed the store, and `make install` puts mxguard's hook there.
# The real update-ca-certificates runs in a private mount namespace (the
# system's store, its configuration and the hooks directory are copies
# bound over the real paths), with a systemctl that records what it is
# asked: a CA distrusted in ca-certificates.conf draws one reload of an
# active mxguard.service; a run that changes nothing, or an inactive
# service, none; a failed reload is said and never fails the update.
. "$(dirname "$0")/../lib/ns.sh"
need_mxguard
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
T=$(mktemp -d /tmp/mxg-$$.XXXXXX)
trap 'rm -rf "$T"' EXIT
hook=$ROOT/systemd/mxguard.ca-certificates-hook

assert "make install puts the hook in update.d" bash -c \
	"make -s -C '$ROOT' -n install DESTDIR='$T/root' | tr -d '\\\\\n' | grep -q 'mxguard.ca-certificates-hook *$T/root/etc/ca-certificates/update.d/mxguard'"
mkdir -p "$T/hooks" "$T/bin"
install -m 0755 "$hook" "$T/hooks/mxguard"
assert "run-parts takes its name" bash -c "run-parts --test '$T/hooks' | grep -qx '$T/hooks/mxguard'"

# systemctl as the hook sees it: is-active answers $T/active's code,
# reload $T/reload's; every call is recorded
cat >"$T/bin/systemctl" <<EOS
#!/bin/sh
echo "\$*" >>"$T/calls"
case "\$*" in
*is-active*) exit \$(cat "$T/active") ;;
reload*) exit \$(cat "$T/reload") ;;
esac
exit 0
EOS
chmod 755 "$T/bin/systemctl"
echo 0 >"$T/active"
echo 0 >"$T/reload"

# update-ca-certificates on copies of the store: prints its summary
update() {
	: >"$T/calls"
	unshare -m --propagation private sh -c "
		mount --bind '$T/certs' /etc/ssl/certs &&
		mount --bind '$T/conf' /etc/ca-certificates.conf &&
		mkdir -p /etc/ca-certificates/update.d &&
		mount --bind '$T/hooks' /etc/ca-certificates/update.d &&
		PATH='$T/bin':\$PATH update-ca-certificates" >"$T/update.out" 2>&1
	local rc=$?
	cat "$T/update.out" >&2
	return $rc
}
cp -a /etc/ssl/certs "$T/certs"
cp /etc/ca-certificates.conf "$T/conf"
ca=$(grep -m1 '^mozilla/.*\.crt$' "$T/conf")
[ -n "$ca" ] || fail "no mozilla CA in /etc/ca-certificates.conf"
pem=$(basename "$ca" .crt).pem
assert "the store holds $pem first" [ -e "$T/certs/$pem" ]

# the copy brought in line with its configuration first (this host's
# store may lag behind it), then a run with no change: no reload
update || fail "update-ca-certificates failed"
update || fail "update-ca-certificates failed"
assert "no change: 0 added, 0 removed" grep -q "0 added, 0 removed" "$T/update.out"
assert "no change: no reload" bash -c "! grep -q reload '$T/calls'"

# a CA distrusted (the "!" of ca-certificates.conf): one reload
sed -i "s|^$ca\$|!$ca|" "$T/conf"
update || fail "update-ca-certificates failed"
assert "the CA left the store" [ ! -e "$T/certs/$pem" ]
assert "1 removed" grep -q "0 added, 1 removed" "$T/update.out"
assert "active mxguard.service reloaded once" [ "$(grep -c '^reload mxguard.service$' "$T/calls")" = 1 ]
assert "the hook said so" grep -q "mxguard: reloaded for the new CA store" "$T/update.out"
assert "no hook failure" bash -c "! grep -q '^E: ' '$T/update.out'"

# trusted again, with the service inactive: no reload
echo 3 >"$T/active"
sed -i "s|^!$ca\$|$ca|" "$T/conf"
update || fail "update-ca-certificates failed"
assert "1 added" grep -q "1 added, 0 removed" "$T/update.out"
assert "inactive: asked, no reload" bash -c "grep -q is-active '$T/calls' && ! grep -q '^reload' '$T/calls'"

# a reload that fails: said, and the update still succeeds
echo 0 >"$T/active"
echo 1 >"$T/reload"
sed -i "s|^$ca\$|!$ca|" "$T/conf"
update || fail "update-ca-certificates failed with a failed reload"
assert "the failed reload is said" grep -q "mxguard: reload failed: the old CA store stays in use" "$T/update.out"
assert "the hook exits 0 (no E: line)" bash -c "! grep -q '^E: ' '$T/update.out'"
pass "a ca-certificates update reloads mxguard"
