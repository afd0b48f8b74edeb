# shellcheck shell=bash
# mxguard integration-test harness.  Sourced by every tests/ns/*.sh scenario
# (and by scripts/demo.sh).  Needs bash, root, iproute2, iptables, postfix,
# openssl, python3.
#
# Topology (created by ns_setup), all names unique per process (mxg-$$-...):
#
#   [ $SND ] snd0 10.25.1.1/24 ---veth--- rcv0 10.25.1.2/24 [ $RCV ]
#     sending Postfix (TLS off)          receiving Postfix listeners and
#     mxguard on 127.0.0.1:10025         bad servers on 10.25.1.10.. (extra
#                                        addresses on rcv0)
#
# Everything created is recorded and removed by the EXIT trap (ns_cleanup):
# processes we started, Postfix instances, namespaces, /etc/netns/<ns>, and
# the temp dir $T (kept if MXG_KEEP=1, for debugging).
#
# Synchronisation is always by polling a condition with a timeout (wait_*),
# never by a bare sleep.
#
# API (see each function's comment):
#   setup      ns_setup; rcv_addr ADDR; in_snd/in_rcv CMD; bg NS LOG CMD
#   checks     assert "what" CMD...; lacks REGEX CMD...; fail MSG;
#              fail_loud MSG; pass MSG; log MSG
#   waiting    wait_for SECS "what" CMD; wait_port NS ADDR PORT;
#              wait_log FILE REGEX; wait_status QID RCPT REGEX;
#              wait_deferred QID;
#              wait_queue_empty; wait_queue_count N; wait_mailbox ADDR [N];
#              wait_rcv_idle
#   pki        make_ca; make_cert NAME DNSNAME [valid|expired|selfsigned|
#              client|cn-only]
#   receiver   rcv_listener ADDR CERT|none [-o ...]; rcv_mailbox A@D...;
#              rcv_setup ($RD, log $RD/maillog); bad_start ADDR --mode ...
#   both ends  tls_world (mx1.tls.test on 10.25.1.10, alice@tls.test)
#   sender     snd_setup ($SD, log $SD/maillog, SND_EXTRA_MAIN);
#              snd_route DOMAIN ADDR[:PORT]; snd_postconf; snd_release;
#              snd_flush (after wait_deferred QID); send_mail FROM TO BODY
#              [SUBJ] [HEADER] (MSGID, MSGFILE); new_body FILE [BYTES];
#              find_qid MSGID
#   results    snd_status QID RCPT; queue_has/queue_json/queue_reason QID;
#              queue_count; mailbox_files/mailbox_count ADDR;
#              all_mailbox_count; msg_file_by_id ADDR MSGID; body_hash FILE;
#              msg_copies ADDR MSGID; assert_once ADDR MSGID [SENTFILE];
#              received_tls FILE; rcv_tls_sessions; rcv_envelopes ADDR;
#              snd_route_addr DOMAIN; count_log FILE REGEX
#   mxguard    mxg_start [conf lines] (MXG_EXTRA_CONF, MXG_LOG_LEVEL; log
#              $MXLOG); mxg_stop; mxg_kill_all (MXG_KILLED);
#              mxg_rules_install/remove; rule_packets RE; scrape_metric NAME CMD;
#              metric_in FILE NAME;
#              mx_count REGEX; need_mxguard; with_mxguard
# A scenario fails (after its own checks, or at mxg_stop) if mxguard or one
# of its workers crashed (the worker's event=worker-exit with a crash
# signal in $MXLOG: the supervisor exits 0 all the same), or a sanitizer
# wrote a report into $MXLOG.
#
# Pitfall: the divert rule matches every tcp/25 flow leaving the sender
# namespace, including connections to 127.0.0.1:25 (the sender Postfix's own
# listener): submit test mail with send_mail (sendmail -C), not over SMTP.

set -o pipefail

LIBDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NS_PREFIX="mxg-$$"
SND="$NS_PREFIX-snd"
RCV="$NS_PREFIX-rcv"
SND_IP=10.25.1.1
RCV_IP=10.25.1.2
MXG_PORT=10025
MXG_MARK=0x4d58
VMAIL_UID=$(id -u nobody)
VMAIL_GID=$(id -g nobody)

_NS_LIST=()
_PIDS=()
_POSTFIX_DIRS=()
T=""

log()  { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
fail() {
	printf 'FAIL: %s\n' "$*" >&2
	if [ -n "${T:-}" ] && [ "${MXG_DUMP:-1}" = 1 ]; then _dump_logs >&2; fi
	exit 1
}
pass() { printf 'PASS: %s\n' "$*" >&2; exit 0; }
assert() {	# assert "description" command...
	local what=$1; shift
	"$@" || fail "$what"
	log "ok: $what"
}
# lacks REGEX CMD...: CMD succeeds and no line of its output matches REGEX
#   (grep -E).  The negative checks written `! CMD | grep -q RE` (without
#   pipefail in bash -c) or `! grep -q RE FILE` also passed when CMD failed
#   or FILE did not exist: no output, no match.  For a file: lacks RE cat FILE.
lacks() {
	local re=$1 out rc=0; shift
	out=$T/lacks.$BASHPID
	"$@" >"$out" 2>"$out.err" || rc=$?
	if [ "$rc" != 0 ]; then
		log "lacks: '$*' exited $rc: $(head -c 300 "$out.err")"
		return 1
	fi
	! grep -qE -- "$re" "$out"
}

# fail_loud MSG: fail from anywhere.  In a subshell (a command
#   substitution like $(queue_count), a pipeline) fail's exit ends only
#   that subshell and the caller goes on with its empty output; under
#   wait_for its message goes to /dev/null.  The message goes to the
#   scenario's own stderr, and a subshell stops the scenario's shell too
#   (TERM: its trap exits, the EXIT trap cleans up).
exec {_MXG_ERR}>&2
fail_loud() {
	[ "$BASHPID" = "$$" ] || kill -TERM "$$"
	fail "$@" 2>&"$_MXG_ERR"
}

_dump_logs() {
	local f
	for f in "$T"/*/maillog "$T"/mxguard*.log "$T"/bad-*.log; do
		[ -f "$f" ] || continue
		echo "----- tail of $f"
		tail -n 40 "$f"
	done
}

ns_cleanup() {
	local rc=$? p d ns i
	set +e
	trap - EXIT INT TERM
	_mxg_postmortem || { [ "$rc" = 0 ] && rc=1; }
	for p in "${_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
	for d in "${_POSTFIX_DIRS[@]}"; do
		ns=${d%%|*}; d=${d#*|}
		ip netns exec "$ns" postfix -c "$d/etc" stop >/dev/null 2>&1
	done
	# Anything still running inside our namespaces was started by this test.
	for i in 1 2 3 4 5 6 7 8 9 10; do
		local left=""
		for ns in "${_NS_LIST[@]}"; do
			left+=$(ip netns pids "$ns" 2>/dev/null)
		done
		[ -z "$left" ] && break
		for ns in "${_NS_LIST[@]}"; do
			for p in $(ip netns pids "$ns" 2>/dev/null); do
				if [ "$i" -lt 6 ]; then kill -TERM "$p"; else kill -KILL "$p"; fi 2>/dev/null
			done
		done
		sleep 0.2
	done
	for p in "${_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	for ns in "${_NS_LIST[@]}"; do
		ip netns del "$ns" 2>/dev/null
		rm -rf "/etc/netns/$ns"
	done
	if [ -n "$T" ] && [ -d "$T" ]; then
		if [ "${MXG_KEEP:-0}" = 1 ]; then echo "kept $T" >&2; else rm -rf "$T"; fi
	fi
	exit "$rc"
}

# _mxg_crashes FILE...: the lines of mxguard logs saying a worker died of
#   a crash signal (SIGILL, SIGABRT, SIGBUS, SIGFPE, SIGSEGV).  With more
#   than one worker (`workers = 0`, the harness's default: one per CPU) the
#   supervisor logs such a death, starts another worker, and after a drain
#   exits 0 whatever its workers died of: its own exit status says nothing
#   of theirs.  (SIGKILL, signal:9, is what scenarios send on purpose.)
#   Files that are not there are skipped (grep's status for them would
#   hide a match in the others); the caller tests the output.
_mxg_crashes() {
	local f
	for f in "$@"; do
		[ -f "$f" ] || continue
		grep -hE 'event=worker-exit worker=[0-9]+ pid=[0-9]+ status=signal:(4|6|7|8|11)( |$)' "$f"
	done | sort -u
}

# _mxg_crash_status ST: fails (1) and says so when ST, a wait status of
#   the daemon's process, is a death from a crash signal.
_mxg_crash_status() {
	case $1 in
	132|134|135|136|139)
		echo "FAIL: mxguard (pid $MXG_PID) died from signal $(($1 - 128))" >&2
		return 1 ;;
	esac
	return 0
}

# _mxg_postmortem: stop mxguard (if still running) and fail the test if it
# or one of its workers crashed (SIGSEGV/SIGABRT/SIGBUS/SIGILL/SIGFPE) or a
# sanitizer reported anything in its log, even when every assertion passed.
_mxg_postmortem() {
	local st=0 bad=0 crashed
	if [ -n "$MXG_PID" ]; then
		if kill -0 "$MXG_PID" 2>/dev/null; then
			kill -TERM "$MXG_PID" 2>/dev/null
			local end=$((SECONDS + 15))
			while kill -0 "$MXG_PID" 2>/dev/null && [ $SECONDS -lt $end ]; do sleep 0.1; done
			kill -KILL "$MXG_PID" 2>/dev/null
		fi
		wait "$MXG_PID" 2>/dev/null; st=$?
		_mxg_crash_status "$st" || bad=1
	fi
	# every daemon log of the scenario (gw_start's per case too)
	if [ -n "$T" ] && crashed=$(_mxg_crashes "$MXLOG" "$T"/*mxguard*.log) &&
	    [ -n "$crashed" ]; then
		echo "FAIL: mxguard worker(s) crashed:" >&2
		head -n 10 <<<"$crashed" >&2
		bad=1
	fi
	if [ -n "$MXLOG" ] && grep -qsE 'ERROR: (Address|Leak|Memory|Thread)Sanitizer|runtime error: ' "$MXLOG"; then
		echo "FAIL: sanitizer report in $MXLOG:" >&2
		grep -sE -A25 'ERROR: (Address|Leak|Memory|Thread)Sanitizer|runtime error: ' "$MXLOG" | head -n 60 >&2
		bad=1
	fi
	[ "$bad" = 0 ]
}

# ns_resolver NS: the namespace's own resolv.conf, never the host's:
#   tests/lib/nxdns.py on 127.0.0.53 answers NXDOMAIN for every name (the
#   test domains exist nowhere).  Nothing answering at all would make every
#   lookup fail, and mxguard defers a delivery whose MX lookup failed.
#   (127.0.0.53: unbound of tests/lib/dnssec.sh takes 127.0.0.1.)
ns_resolver() {
	local ns=$1
	mkdir -p "/etc/netns/$ns"
	echo "nameserver 127.0.0.53" >"/etc/netns/$ns/resolv.conf"
	rm -f "$T/nxdns-$ns.ready"
	bg "$ns" "$T/nxdns-$ns.out" python3 "$LIBDIR/nxdns.py" 127.0.0.53 \
	    "$T/nxdns-$ns.ready"
	wait_for 10 "the stub resolver in $ns" test -s "$T/nxdns-$ns.ready"
}

# ns_setup: temp dir, namespaces, veth, addresses, lo up, trap.
ns_setup() {
	[ "$(id -u)" = 0 ] || { echo "must run as root" >&2; exit 1; }
	trap ns_cleanup EXIT
	trap 'exit 130' INT TERM
	T=$(mktemp -d "/tmp/mxg-$$.XXXXXX")
	chmod 755 "$T"
	# where the daemons record their paths and the commands find them
	# (cmd.h, cmd_record_daemon()): this scenario's, not the host's
	export MXGUARD_RUNDIR=$T/run
	local ns
	for ns in "$SND" "$RCV"; do
		ip netns add "$ns" || fail "ip netns add $ns"
		_NS_LIST+=("$ns")
		ip -n "$ns" link set lo up
		ns_resolver "$ns"
		printf '127.0.0.1 localhost\n' >"/etc/netns/$ns/hosts"
	done
	# Both ends are created directly inside the namespaces: no name is ever
	# visible in (or can collide in) the host's namespace.
	ip link add snd0 netns "$SND" type veth peer name rcv0 netns "$RCV" ||
		fail "veth creation"
	ip -n "$SND" addr add "$SND_IP/24" dev snd0
	ip -n "$RCV" addr add "$RCV_IP/24" dev rcv0
	ip -n "$SND" link set snd0 up
	ip -n "$RCV" link set rcv0 up
	log "namespaces $SND $RCV, temp dir $T"
}

# rcv_addr ADDR: add a further address (a listener) on the receiver side.
rcv_addr() {
	ip -n "$RCV" addr show dev rcv0 | grep -q "inet $1/" ||
		ip -n "$RCV" addr add "$1/24" dev rcv0
}

in_snd() { ip netns exec "$SND" "$@"; }
in_rcv() { ip netns exec "$RCV" "$@"; }

# tcp_greet_as USER HOST PORT [BIND_IP BIND_PORT]: one TCP connection from
#   $SND as USER (tests/lib/tcpgreet.py, copied where USER may read it);
#   prints "refused", "greeting LINE" or "error ..."
tcp_greet_as() {
	local u=$1; shift
	[ -f "$T/tcpgreet.py" ] || install -m 644 "$LIBDIR/tcpgreet.py" "$T/tcpgreet.py"
	in_snd setpriv --reuid="$u" --regid="$(id -g "$u")" --clear-groups \
		/usr/bin/python3 "$T/tcpgreet.py" "$@"
}

# bg NS LOGFILE cmd...: start a background process in NS, record its pid.
BG_PID=""
bg() {
	local ns=$1 out=$2; shift 2
	ip netns exec "$ns" "$@" >"$out" 2>&1 &
	BG_PID=$!
	_PIDS+=("$BG_PID")
}

# ---------------------------------------------------------------- waiting

# wait_for TIMEOUT DESCRIPTION cmd...: poll cmd until it succeeds.
wait_for() {
	local timeout=$1 what=$2; shift 2
	local end=$((SECONDS + timeout))
	while ! "$@" >/dev/null 2>&1; do
		[ "$SECONDS" -ge "$end" ] && fail "timeout (${timeout}s) waiting for $what"
		sleep 0.1
	done
}

_port_open() {	# NS ADDR PORT
	ip netns exec "$1" ss -Htln "sport = :$3" | awk '{print $4}' |
		grep -qE "^(\\[?::\\]?|\\*|0\\.0\\.0\\.0|\\[?$2\\]?):$3\$"
}
wait_port() { wait_for "${4:-15}" "listener $2:$3 in $1" _port_open "$1" "$2" "$3"; }

wait_log() {	# FILE REGEX [TIMEOUT]
	wait_for "${3:-20}" "/$2/ in $1" grep -qE -- "$2" "$1"
}

# count_log FILE REGEX: number of matching lines (0 if none / no file).
count_log() { grep -cE -- "$2" "$1" 2>/dev/null || true; }

# ---------------------------------------------------------------- certificates

# make_ca: test CA in $T/pki/ca.{key,crt}
make_ca() {
	local d=$T/pki
	mkdir -p "$d"
	[ -f "$d/ca.crt" ] && return 0
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$d/ca.key" -out "$d/ca.crt" -days 30 -subj "/CN=mxguard test CA" \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" >/dev/null 2>&1 ||
		fail "make_ca"
}

# make_cert NAME DNSNAME [valid|expired|selfsigned|client|cn-only]
#   -> $T/pki/NAME.pem (key + cert + CA chain, for smtpd_tls_chain_files),
#      $T/pki/NAME.key, $T/pki/NAME.crt.  "wrong name" = pass another DNSNAME.
#      client: a valid certificate for TLS clients (extendedKeyUsage
#      clientAuth instead of serverAuth).  cn-only: valid, but DNSNAME only
#      in the subject CN, no subjectAltName.
make_cert() {
	local name=$1 cn=$2 kind=${3:-valid} d=$T/pki
	make_ca
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
		-out "$d/$name.key" 2>/dev/null || fail "genpkey $name"
	local eku=serverAuth san="subjectAltName=DNS:$cn"
	if [ "$kind" = client ]; then eku=clientAuth kind=valid; fi
	if [ "$kind" = cn-only ]; then san="" kind=valid; fi
	{
		[ -z "$san" ] || echo "$san"
		printf 'basicConstraints=CA:FALSE\nextendedKeyUsage=%s\n' "$eku"
	} >"$d/$name.ext"
	case $kind in
	selfsigned)
		openssl req -x509 -key "$d/$name.key" -out "$d/$name.crt" -days 30 \
			-subj "/CN=$cn" -addext "subjectAltName=DNS:$cn" >/dev/null 2>&1 ;;
	valid|expired)
		openssl req -new -key "$d/$name.key" -subj "/CN=$cn" -out "$d/$name.csr" 2>/dev/null &&
		if [ "$kind" = expired ]; then
			# x509 -not_before/-not_after need OpenSSL 3.4; use `ca` instead.
			mkdir -p "$d/ca-db"; : >"$d/ca-db/index"
			openssl ca -batch -config <(printf '[ca]\ndefault_ca=c\n[c]\ndatabase=%s\nnew_certs_dir=%s\nserial=%s\npolicy=p\ndefault_md=sha256\n[p]\ncommonName=supplied\n' \
				"$d/ca-db/index" "$d/ca-db" "$d/ca-db/serial") \
				-rand_serial -cert "$d/ca.crt" -keyfile "$d/ca.key" -in "$d/$name.csr" \
				-out "$d/$name.crt" -startdate 20200101000000Z -enddate 20200201000000Z \
				-extfile "$d/$name.ext" -notext >/dev/null 2>&1
		else
			openssl x509 -req -in "$d/$name.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" \
				-CAcreateserial -days 20 -extfile "$d/$name.ext" -out "$d/$name.crt" >/dev/null 2>&1
		fi ;;
	*) fail "make_cert: unknown kind $kind" ;;
	esac || fail "make_cert $name $cn $kind"
	cat "$d/$name.key" "$d/$name.crt" >"$d/$name.pem"
	[ "$kind" = selfsigned ] || cat "$d/ca.crt" >>"$d/$name.pem"
	chmod 644 "$d"/*
}

# ---------------------------------------------------------------- Postfix

# Layout of an instance in DIR: DIR/etc (config, -c DIR/etc), DIR/queue,
# DIR/data, DIR/maillog (the config directory must hold only root's files).
_postfix_common() {	# DIR NAME HOSTNAME
	local dir=$1 host=$3
	mkdir -p "$dir/etc" "$dir/queue" "$dir/data"
	chown postfix:postfix "$dir/data"
	cat >"$dir/etc/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $dir/queue
data_directory = $dir/data
myhostname = $host
mydomain = ${host#*.}
myorigin = \$myhostname
mydestination =
inet_interfaces = all
inet_protocols = ipv4
maillog_file = $dir/maillog
maillog_file_prefixes = /tmp
alias_maps =
alias_database =
smtputf8_enable = no
biff = no
smtp_host_lookup = native
smtpd_peername_lookup = no
disable_dns_lookups = yes
message_size_limit = 52428800
mailbox_size_limit = 0
virtual_mailbox_limit = 0
delay_warning_time = 0
maximal_queue_lifetime = 1d
bounce_queue_lifetime = 1d
EOF
	# stock master.cf services up to postlog, without the catch-all smtp
	# listener, chroot column set to n (no copies of /etc files needed).
	# The package's own copy under /usr/share: /etc/postfix/master.cf.proto
	# is made by the postinst and is the host's configuration to change.
	sed -e '/^#/d' -e '/^$/d' -e '/^[[:space:]]/d' /usr/share/postfix/master.cf.dist |
		awk '$1 == "smtp" && $2 == "inet" {next}
		     {if (NF >= 8) $5 = "n"; print}
		     $1 == "postlog" {exit}' >"$dir/etc/master.cf"
	grep -q '^postlog' "$dir/etc/master.cf" ||
		echo 'postlog   unix-dgram n  -       n       -       1       postlogd' >>"$dir/etc/master.cf"
}

# _pf_settle DIR: Postfix loads main.cf, master.cf and texthash maps again
#   and again, 300 ms apart, until the file is 2 s old ("pausing to let
#   file cool down": it may be half written).  Every postfix, postqueue or
#   postconf -h, and every daemon that reads a file the test has just
#   written, would wait those 2 s.  The test's writes are complete when it
#   calls Postfix: their times are set back.
_pf_settle() {
	touch -d '-10 seconds' "$1"/etc/*
}

# pf_reload DIR: after a change to DIR/etc (postconf -e, a map, master.cf).
pf_reload() {
	_pf_settle "$1"
	postfix -c "$1/etc" reload >/dev/null 2>&1
}

_postfix_start() {	# NS DIR
	local ns=$1 dir=$2
	_pf_settle "$dir"
	ip netns exec "$ns" postfix -c "$dir/etc" start >"$dir/start.log" 2>&1 ||
		fail "postfix -c $dir/etc start: $(cat "$dir/start.log")"
	_POSTFIX_DIRS+=("$ns|$dir")
	wait_for 15 "postfix master in $dir" test -s "$dir/queue/pid/master.pid"
	wait_log "$dir/maillog" "daemon started" 15
}

# snd_setup: sending Postfix (the legacy MTA: TLS off) in $SND, dir $SD.
#   Routes are added with snd_route before or after start (texthash is read
#   at process start; snd_route reloads if running).
#   Messages with a header "X-Hold: yes" go to the hold queue (snd_release).
SD=""
snd_setup() {
	SD=$T/snd
	_postfix_common "$SD" snd sender.test
	cat >>"$SD/etc/main.cf" <<EOF
smtp_tls_security_level = none
smtpd_tls_security_level = none
relayhost =
transport_maps = texthash:$SD/etc/transport
header_checks = regexp:$SD/etc/header_checks
mynetworks = 127.0.0.0/8
smtp_connection_cache_on_demand = yes
default_destination_concurrency_limit = 20
smtp_connect_timeout = 10s
minimal_backoff_time = 300s
maximal_backoff_time = 600s
queue_run_delay = 300s
EOF
	_postconf_extra "$SD/etc" "$SND_EXTRA_MAIN"
	echo '/^X-Hold: yes/ HOLD' >"$SD/etc/header_checks"
	# bounces to our own envelope senders are dropped
	printf 'sender.test discard:\n' >"$SD/etc/transport"
	echo "127.0.0.1:smtp inet n - n - - smtpd" >>"$SD/etc/master.cf"
	_postfix_start "$SND" "$SD"
}

# snd_route DOMAIN ADDR[:PORT]: deliver mail for DOMAIN to ADDR directly.
snd_route() {
	local dest=$2 port=25
	case $dest in *:*) port=${dest#*:}; dest=${dest%:*};; esac
	echo "$1 smtp:[$dest]:$port" >>"$SD/etc/transport"
	if [ -s "$SD/queue/pid/master.pid" ]; then pf_reload "$SD"; fi
}

# _postconf_extra DIR LINES: each "key = value" line of LINES set with
#   postconf -e, which replaces an earlier value of the key.  Appended
#   instead, a repeated key makes Postfix warn at every start and reload,
#   and postlogd, writing its own warnings into its full socket, can hang.
_postconf_extra() {
	local line
	while IFS= read -r line; do
		[[ "$line" =~ ^[[:space:]]*(#|$) ]] && continue
		postconf -c "$1" -e "$line" || fail "postconf -c $1 -e '$line'"
	done <<<"$2"
}

snd_postconf() {	# snd_postconf "k = v"...  (then reload)
	postconf -c "$SD/etc" -e "$@" || fail "postconf $*"
	pf_reload "$SD"
}

# rcv_setup: receiving Postfix in $RCV (dir $RD), virtual Maildir mailboxes
#   under $RD/mail/DOMAIN/USER/.  Listeners come from rcv_listener calls made
#   BEFORE rcv_setup; mailboxes from rcv_mailbox calls made before it.
RD=$T/rcv
_RCV_LISTENERS=()
_RCV_BOXES=()
_RCV_DOMAINS=()
rcv_listener() {	# ADDR CERTNAME|none [extra -o options...]
	local addr=$1 cert=$2; shift 2
	_RCV_LISTENERS+=("$addr|$cert|$*")
}
rcv_mailbox() {	# user@domain ...
	local a
	for a in "$@"; do
		_RCV_BOXES+=("$a")
		case " ${_RCV_DOMAINS[*]} " in *" ${a#*@} "*) ;; *) _RCV_DOMAINS+=("${a#*@}");; esac
	done
}
rcv_setup() {
	RD=$T/rcv
	_postfix_common "$RD" rcv mx.receiver.test
	mkdir -p "$RD/mail"
	chown "$VMAIL_UID:$VMAIL_GID" "$RD/mail"
	: >"$RD/etc/vmailbox"
	local a
	for a in "${_RCV_BOXES[@]}"; do echo "$a ${a#*@}/${a%@*}/" >>"$RD/etc/vmailbox"; done
	cat >>"$RD/etc/main.cf" <<EOF
virtual_mailbox_domains = ${_RCV_DOMAINS[*]}
virtual_mailbox_base = $RD/mail
virtual_mailbox_maps = texthash:$RD/etc/vmailbox
virtual_uid_maps = static:$VMAIL_UID
virtual_gid_maps = static:$VMAIL_GID
virtual_minimum_uid = 1
virtual_mailbox_limit = 0
mynetworks = 127.0.0.0/8
smtpd_tls_security_level = none
smtpd_tls_loglevel = 1
smtpd_tls_received_header = yes
smtpd_helo_required = no
# The vulnerable (pre-3.9 default) behaviour, so that smuggling through the
# relay is detected rather than masked by the receiver.
smtpd_forbid_bare_newline = no
EOF
	_postconf_extra "$RD/etc" "$RCV_EXTRA_MAIN"
	local l addr cert extra o
	for l in "${_RCV_LISTENERS[@]}"; do
		IFS='|' read -r addr cert extra <<<"$l"
		rcv_addr "$addr"
		o=""
		if [ "$cert" != none ]; then
			o="-o smtpd_tls_security_level=may -o smtpd_tls_chain_files=$T/pki/$cert.pem"
		fi
		echo "$addr:smtp inet n - n - - smtpd -o syslog_name=postfix/rcv-$addr $o $extra" >>"$RD/etc/master.cf"
	done
	_postfix_start "$RCV" "$RD"
	for l in "${_RCV_LISTENERS[@]}"; do wait_port "$RCV" "${l%%|*}" 25; done
}

# ---------------------------------------------------------------- sending

# new_body FILE [BYTES]: write a 7-bit test body (with dot-leading lines,
# trailing blanks, long lines); BYTES roughly sets its size.
new_body() {
	python3 - "$1" "${2:-4000}" <<'EOF'
import sys, os, base64
path, size = sys.argv[1], int(sys.argv[2])
lines = ["Test body " + os.urandom(6).hex(), ".", "..leading dots", ". dot space",
         "trailing blanks   ", "", "x" * 900, "tab\there", "end of fixed part"]
n = sum(len(l) + 1 for l in lines)
rnd = base64.b64encode(os.urandom(max(0, (size - n) * 3 // 4))).decode()
# dot-leading lines all through the body (dot-stuffing and the end-of-data
# scan across buffer boundaries): a lone ".", "..", ". x", ".\t"
dots = [".", "..", ". x", ".\t", "...", "."]
for k, i in enumerate(range(0, len(rnd), 76)):
    lines.append(rnd[i:i + 76])
    if k % 37 == 36:
        lines.append(dots[(k // 37) % len(dots)])
with open(path, "w") as f:
    f.write("\n".join(lines) + "\n")
EOF
}

# send_mail FROM TO[,TO...] BODYFILE [SUBJECT] [EXTRA_HEADER]: submit through
#   the sending Postfix (sendmail -C).  Sets MSGID (the Message-ID used, also
#   the key for find_qid) and MSGFILE (the message as submitted).
MSGID=""
MSGFILE=""
_MSGN=0
send_mail() {
	local from=$1 to=$2 body=$3 subj=${4:-test} extra=${5:-}
	_MSGN=$((_MSGN + 1))
	MSGID="mxg-$$-$_MSGN-$RANDOM@sender.test"
	{
		printf 'From: <%s>\nTo: %s\nSubject: %s\nMessage-ID: <%s>\nDate: %s\n' \
			"$from" "$to" "$subj" "$MSGID" "$(date -R)"
		[ -n "$extra" ] && printf '%s\n' "$extra"
		printf '\n'
		cat "$body"
	} >"$T/msg.$_MSGN"
	MSGFILE=$T/msg.$_MSGN
	# shellcheck disable=SC2046
	ip netns exec "$SND" sendmail -i -C "$SD/etc" -f "$from" -- $(tr ',' ' ' <<<"$to") \
		<"$T/msg.$_MSGN" || fail "sendmail"
}

# find_qid MSGID: queue id the sending Postfix gave the message (waits).
find_qid() {
	wait_log "$SD/maillog" "message-id=<$1>" 20
	grep -E "message-id=<$1>" "$SD/maillog" | head -n1 | sed -E 's/.*: ([0-9A-Za-z]+): message-id=.*/\1/'
}

# snd_status QID RCPT: last status=... word logged by the sender's smtp
#   client (or discard/bounce) for that recipient; empty if none yet.
snd_status() {
	grep -E " $1: to=<$2>.* status=" "$SD/maillog" | tail -n1 |
		sed -E 's/.* status=([a-z]+).*/\1/'
}
wait_status() {	# QID RCPT REGEX [TIMEOUT]
	[ -n "$1" ] || fail "no sender queue id for $2 (message not picked up?)"
	wait_for "${4:-30}" "status /$3/ for $2 ($1) in sender log" \
		_status_is "$1" "$2" "$3"
	log "sender: $1 to=<$2> status=$(snd_status "$1" "$2")"
}
_status_is() { [[ "$(snd_status "$1" "$2")" =~ ^($3)$ ]]; }

snd_release() {	# release held mail and flush
	postsuper -c "$SD/etc" -H ALL >/dev/null 2>&1
	postqueue -c "$SD/etc" -f
}
snd_flush() { postqueue -c "$SD/etc" -f; }

# Queue inspection (postqueue -j: one JSON object per line).
# _postqueue DIR: the queue of the Postfix instance configured in DIR into
#   the file $PQ_OUT.  A postqueue that fails (a wrong configuration
#   directory, a queue it cannot read) fails the scenario (fail_loud): its
#   empty output read as an empty queue, so that "sender queue empty" and
#   wait_rcv_idle passed whatever was queued.
PQ_OUT=""
_postqueue() {
	local rc=0
	PQ_OUT=$T/postqueue.$BASHPID
	postqueue -c "$1" -j >"$PQ_OUT" 2>"$PQ_OUT.err" || rc=$?
	[ "$rc" = 0 ] ||
		fail_loud "postqueue -c $1 -j exited $rc: $(head -c 300 "$PQ_OUT.err")"
}
queue_count() { _postqueue "$SD/etc"; grep -c . "$PQ_OUT" || true; }
queue_has() {	# QID: queued (any queue)?
	_postqueue "$SD/etc"; grep -q "\"queue_id\": *\"$1\"" "$PQ_OUT"
}
queue_json() { _postqueue "$SD/etc"; grep "\"queue_id\": *\"$1\"" "$PQ_OUT"; }
# queue_reason QID: "queue_name: delay_reason" of a queued message.
queue_reason() {
	_postqueue "$SD/etc"; python3 -c '
import json, sys
for l in sys.stdin:
    m = json.loads(l)
    if m["queue_id"] == sys.argv[1]:
        r = "; ".join(x.get("delay_reason", "") for x in m.get("recipients", []))
        print("%s: %s" % (m["queue_name"], r or "(no attempt yet)"))
' "$1" <"$PQ_OUT"
}
# wait_deferred QID [TIMEOUT]: the message sits in the sender's deferred
#   queue, i.e. the queue manager has finished the attempt whose
#   status=deferred the smtp client logged (and has marked the destination
#   dead, if it did).  Flush (snd_flush) only after this: a flush that
#   reaches the queue manager while the message is still active is lost
#   for it, and it then waits out minimal_backoff_time (300 s).
wait_deferred() { wait_for "${2:-30}" "$1 in the deferred queue" _in_deferred "$1"; }
_in_deferred() { queue_json "$1" | grep -qE '"queue_name": *"deferred"'; }
wait_queue_empty() { wait_for "${1:-30}" "empty sender queue" _queue_n 0; }
wait_queue_count() { wait_for "${2:-30}" "$1 message(s) in sender queue" _queue_n "$1"; }
_queue_n() { [ "$(queue_count)" = "$1" ]; }

# ---------------------------------------------------------------- receiving

# wait_rcv_idle: the receiver's queue is empty (everything it accepted has
#   been delivered to the mailboxes).
wait_rcv_idle() { wait_for "${1:-20}" "empty receiver queue" _rcv_idle; }
_rcv_idle() { _postqueue "$RD/etc"; [ ! -s "$PQ_OUT" ]; }

mailbox_dir() { echo "$RD/mail/${1#*@}/${1%@*}"; }
# mailbox_files ADDR: delivered messages (Maildir new/ and cur/), sorted.
mailbox_files() {
	local d
	d=$(mailbox_dir "$1")
	find "$d/new" "$d/cur" -type f 2>/dev/null | sort
}
mailbox_count() { mailbox_files "$1" | grep -c . || true; }
# wait_mailbox ADDR [COUNT] [TIMEOUT]: at least COUNT messages stored (a
#   wait, not a count: duplicates pass; assert_once counts a message).
wait_mailbox() {	# ADDR [COUNT] [TIMEOUT]
	wait_for "${3:-30}" "${2:-1} message(s) in mailbox $1" _mbox_n "$1" "${2:-1}"
}
_mbox_n() { [ "$(mailbox_count "$1")" -ge "$2" ]; }
# all_mailbox_count: messages stored for every mailbox together.
all_mailbox_count() { find "$RD/mail" -path '*/new/*' -type f 2>/dev/null | grep -c . || true; }

# body_hash FILE: sha256 of the body (after the first empty line).
body_hash() {
	awk 'b {print} /^$/ && !b {b=1}' "$1" | sha256sum | cut -d' ' -f1
}
# msg_copies ADDR MSGID: how many stored messages of ADDR carry that
#   Message-ID in their header (a copy whose body repeats the header is
#   one copy).  wait_mailbox waits for at least N messages and
#   msg_file_by_id finds the first: neither sees a second copy.
msg_copies() {
	local f n=0
	for f in $(mailbox_files "$1"); do
		awk '/^$/ {exit} tolower($0) ~ /^message-id:/ && index($0, "<" m ">") {h = 1; exit}
			END {exit !h}' m="$2" "$f" && n=$((n + 1))
	done
	echo "$n"
}
# assert_once ADDR MSGID [SENTFILE]: the message arrived exactly once:
#   once the receiver's queue is empty (what it accepted is delivered),
#   one stored copy carries MSGID, and with SENTFILE (the message as
#   submitted, LF line ends) its body is SENTFILE's, byte for byte (not
#   cut, not sent twice inside one transaction).
assert_once() {
	local n f
	wait_rcv_idle
	n=$(msg_copies "$1" "$2")
	assert "message <$2> stored exactly once for $1 (copies: $n)" [ "$n" = 1 ]
	[ -n "${3:-}" ] || return 0
	f=$(msg_file_by_id "$1" "$2") || fail "message <$2> not in the mailbox of $1"
	assert "message <$2> for $1 arrived whole (body as sent: $(wc -c <"$3") bytes sent, $(wc -c <"$f") stored)" \
		[ "$(body_hash "$3")" = "$(body_hash "$f")" ]
}
# msg_file_by_id ADDR MSGID: the stored message carrying that Message-ID.
msg_file_by_id() {
	local f
	for f in $(mailbox_files "$1"); do
		grep -qiF "Message-ID: <$2>" "$f" && { echo "$f"; return 0; }
	done
	return 1
}
# received_tls FILE: the TLS comment of the receiver's topmost Received
#   header, e.g. "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)",
#   empty for cleartext.
received_tls() {
	# a file that is not there has no TLS either: "no TLS" checks
	# ([ -z "$(received_tls F)" ]) passed on a missing message
	[ -r "$1" ] || fail_loud "received_tls: no message file '$1'"
	awk '/^$/ {exit} {print}' "$1" | awk '
		/^Received:/ { if (n++) exit; r = $0; next }
		/^[ \t]/ && n == 1 { r = r $0; next }
		n == 1 { exit }
		END { print r }' | sed -nE 's/.*\(using (TLSv[0-9.]+ with cipher [A-Z0-9_-]+).*/\1/p'
}
# rcv_tls_sessions: number of "TLS connection established" in receiver log.
rcv_tls_sessions() { count_log "$RD/maillog" "TLS connection established from"; }

# rcv_envelopes ADDR: sessions of the receiver's listener ADDR that sent
#   MAIL or RCPT (accepted or refused), from smtpd's command summary on
#   its "disconnect from" line, once every session there has ended (it
#   waits for that).  What an envelope that crossed shows: smtpd logs no
#   accepted RCPT, and a recipient's address appears in the receiver's
#   log only once the message is delivered (or refused), so grepping the
#   log for the address misses an envelope whose transaction went no
#   further.
rcv_envelopes() {
	local re="postfix/rcv-${1//./\\.}/smtpd\\[[0-9]+\\]: "
	wait_for 20 "every session at the receiver's $1 ended" _rcv_ended "$re"
	count_log "$RD/maillog" "${re}disconnect from .* (mail|rcpt)="
}
_rcv_ended() {
	[ "$(count_log "$RD/maillog" "${1}connect from ")" = \
	  "$(count_log "$RD/maillog" "${1}disconnect from ")" ]
}
# snd_route_addr DOMAIN: the address snd_route sends DOMAIN's mail to.
snd_route_addr() {
	sed -nE "s/^$1 smtp:\\[([^]]+)\\]:[0-9]+\$/\\1/p" "$SD/etc/transport" | tail -n 1
}

# ---------------------------------------------------------------- bad servers

# bad_start ADDR MODE [args...]: tests/lib/badsmtp.py on ADDR:25 in $RCV,
#   logging to $T/bad-ADDR.log (what it received, one line per event).
bad_start() {
	local addr=$1; shift
	rcv_addr "$addr"
	BADLOG=$T/bad-$addr.log
	: >"$BADLOG"
	bg "$RCV" "$T/bad-$addr.out" python3 "$LIBDIR/badsmtp.py" --listen "$addr" --port 25 \
		--log "$BADLOG" "$@"
	wait_port "$RCV" "$addr" 25
}

# workers_conf [LINE...]: $T/mxguard.conf for two workers as `nobody` in
#   local mode (steering = none, listening on 127.0.0.1:$MXG_PORT, no
#   control socket, state in $T/mxstate), then each LINE: the daemon the
#   supervisor and worker scenarios start by hand.
workers_conf() {
	mkdir -p "$T/mxstate"
	{
		cat <<EOC
listen = 127.0.0.1:$MXG_PORT [::1]:$MXG_PORT
upstream_mark = $MXG_MARK
log_level = debug
state_dir = $T/mxstate
steering = none
control_socket =
drain_timeout = 2s
workers = 2
user = nobody
EOC
		local l
		for l in "$@"; do printf '%s\n' "$l"; done
	} >"$T/mxguard.conf"
}

# workers_exit_ok P0 P1: after a SIGTERM, both workers exit 0, then the
#   supervisor ($MXG_PID) does (it is reaped here: MXG_PID is cleared).
workers_exit_ok() {
	local rc
	wait_log "$MXLOG" "event=worker-exit worker=0 pid=$1 status=exit:0" 30
	wait_log "$MXLOG" "event=worker-exit worker=1 pid=$2 status=exit:0" 30
	wait_for 10 "the supervisor exited" bash -c "! [ -e /proc/$MXG_PID ] || grep -q ' Z ' /proc/$MXG_PID/stat"
	wait "$MXG_PID"; rc=$?
	assert "the supervisor exited 0" [ "$rc" = 0 ]
	MXG_PID=""
}

# tls_world: the set-up most relay scenarios share: the receiver
#   mx1.tls.test on 10.25.1.10 with STARTTLS (a test certificate) and the
#   mailbox alice@tls.test, the sender routing tls.test there.
tls_world() {
	make_cert mx1 mx1.tls.test
	rcv_listener 10.25.1.10 mx1
	rcv_mailbox alice@tls.test
	rcv_setup
	snd_setup
	snd_route tls.test 10.25.1.10
}

# ---------------------------------------------------------------- mxguard

# mxg_preload SHIM VAR=VALUE...: build tests/lib/SHIM.c as an LD_PRELOAD
#   library and point MXGUARD at a wrapper that runs the real binary under
#   it with the VAR=VALUE settings in its environment (an ASan build wants
#   its runtime first: the shim comes before it, hence verify_asan_link_order).
mxg_preload() {
	local shim=$1 real=$MXGUARD; shift
	cc -shared -fPIC -O2 -Wall -Wextra -o "$T/$shim.so" "$LIBDIR/$shim.c" -ldl ||
		fail "building the $shim shim"
	MXGUARD=$T/mxguard-$shim
	printf '#!/bin/sh\nLD_PRELOAD=%s %s ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 exec %s "$@"\n' \
		"$T/$shim.so" "$*" "$real" >"$MXGUARD"
	chmod 755 "$MXGUARD"
}

# mxg_start [extra config lines]: config in $T/mxguard.conf, process in $SND,
#   log $MXLOG; waits for its event=started, then installs the divert rules.
MXLOG=""
MXG_PID=""
mxg_start() {
	[ -n "${MXGUARD:-}" ] && [ -x "$MXGUARD" ] || fail "MXGUARD not set or not executable (${MXGUARD:-})"
	make_ca
	mkdir -p "$T/mxstate"
	cat >"$T/mxguard.conf" <<EOF
# generated by tests/lib/ns.sh
listen = 127.0.0.1:$MXG_PORT [::1]:$MXG_PORT
upstream_mark = $MXG_MARK
log_level = ${MXG_LOG_LEVEL:-debug}
state_dir = $T/mxstate
user =
tls_ca_file = $T/pki/ca.crt
# the tests divert with plain nat REDIRECT rules (no NFQUEUE steering), and
# every run has its own control socket
steering = none
control_socket = $T/mxguard.sock
drain_timeout = 5s
$MXG_EXTRA_CONF
$*
EOF
	"$MXGUARD" -n -c "$T/mxguard.conf" >"$T/mxguard-check.log" 2>&1 ||
		fail "mxguard -n rejects config: $(cat "$T/mxguard-check.log")"
	MXLOG=$T/mxguard.log
	bg "$SND" "$MXLOG" "$MXGUARD" -c "$T/mxguard.conf" run
	MXG_PID=$BG_PID
	wait_for 15 "mxguard event=listening in $MXLOG" _mxg_listening
	mxg_rules_install
}
_mxg_listening() {
	kill -0 "$MXG_PID" 2>/dev/null || fail "mxguard exited: $(tail -n 20 "$MXLOG")"
	# A line only this process writes (its listener, NFQUEUE and control
	# socket are open by then): after a restart $MXLOG still holds the
	# previous instance's lines until the new process has truncated it,
	# which on a loaded machine can come after the first grep here.
	grep -qE "event=started pid=$MXG_PID " "$MXLOG"
}

# Local-mode divert rules (what `mxguard rules install` will generate):
#   nat OUTPUT: tcp dport 25 -> chain MXGUARD_OUT
#   MXGUARD_OUT: packets carrying mxguard's upstream mark RETURN (loop
#   avoidance: mxguard's own connection goes out unchanged), every other
#   port-25 flow is REDIRECTed to mxguard's listener port.
mxg_rules_install() {
	in_snd iptables -t nat -N MXGUARD_OUT &&
	in_snd iptables -t nat -A OUTPUT -p tcp --dport 25 -j MXGUARD_OUT &&
	in_snd iptables -t nat -A MXGUARD_OUT -m mark --mark "$MXG_MARK" -j RETURN &&
	in_snd iptables -t nat -A MXGUARD_OUT -p tcp -j REDIRECT --to-ports "$MXG_PORT" ||
		fail "installing divert rules"
}
mxg_rules_remove() {
	in_snd iptables -t nat -D OUTPUT -p tcp --dport 25 -j MXGUARD_OUT 2>/dev/null
	in_snd iptables -t nat -F MXGUARD_OUT 2>/dev/null
	in_snd iptables -t nat -X MXGUARD_OUT 2>/dev/null
	return 0
}
# rule_packets RULE-REGEX: packet counter of the MXGUARD_OUT rule matching.
rule_packets() {
	in_snd iptables -t nat -L MXGUARD_OUT -v -n -x | awk -v re="$1" '$0 ~ re {print $1; exit}'
}

mxg_stop() {
	local st crashed
	[ -n "$MXG_PID" ] || return 0
	mxg_rules_remove
	kill -TERM "$MXG_PID" 2>/dev/null
	local end=$((SECONDS + 10))
	while kill -0 "$MXG_PID" 2>/dev/null && [ $SECONDS -lt $end ]; do sleep 0.1; done
	kill -0 "$MXG_PID" 2>/dev/null && { log "mxguard did not exit on SIGTERM"; kill -KILL "$MXG_PID"; }
	wait "$MXG_PID" 2>/dev/null; st=$?
	# a crash at the stop fails here: MXG_PID cleared, the postmortem
	# would not see this process, and the next mxg_start truncates
	# $MXLOG, where a worker's crash was said
	_mxg_crash_status "$st" || fail "mxguard crashed at its stop"
	crashed=$(_mxg_crashes "$MXLOG")
	[ -z "$crashed" ] || fail "mxguard worker(s) crashed: $crashed"
	MXG_PID=""
}

# mxg_kill_all: SIGKILL the whole daemon, the supervisor ($MXG_PID) and
#   its workers, none of them left to run a line of its shutdown (a
#   crash, a power cut as far as processes go).  Killing the supervisor
#   alone is no such thing: its workers get SIGTERM (PDEATHSIG) and drain
#   and exit as after a stop.  Each process is stopped first (SIGSTOP: the
#   supervisor can start no new worker, a worker handles no signal),
#   then all are killed at once.  The rules stay; MXG_PID is cleared.
mxg_kill_all() {
	local pids p end
	[ -n "$MXG_PID" ] || fail "mxg_kill_all: no daemon"
	kill -STOP "$MXG_PID" || fail "mxg_kill_all: SIGSTOP to $MXG_PID"
	pids="$MXG_PID $(ps -o pid= --ppid "$MXG_PID")"
	# shellcheck disable=SC2086
	kill -STOP $pids
	log "mxg_kill_all: SIGKILL to $pids"
	# shellcheck disable=SC2086
	kill -KILL $pids
	wait "$MXG_PID" 2>/dev/null
	end=$((SECONDS + 10))
	for p in $pids; do
		while [ -e "/proc/$p" ] && ! grep -q ' Z ' "/proc/$p/stat" 2>/dev/null; do
			[ "$SECONDS" -lt "$end" ] || fail "mxg_kill_all: pid $p still there"
			sleep 0.1
		done
	done
	MXG_KILLED=$pids
	MXG_PID=""
}

# scrape_metric NAME CMD...: the value of metric NAME in the output of CMD
#   (a `mxguard status --metrics`), 0 when NAME is not there (a labelled
#   counter appears once counted).  A CMD that fails fails the scenario
#   (fail_loud): its empty output read as 0 for every metric, and checks
#   like "no flow was dropped" (= 0) passed with the daemon unreachable.
scrape_metric() {
	local n=$1 out rc=0; shift
	out=$T/metrics.$BASHPID
	"$@" >"$out" 2>"$out.err" || rc=$?
	[ "$rc" = 0 ] || fail_loud "metric $n: '$*' exited $rc: $(head -c 300 "$out.err")"
	metric_in "$out" "$n"
}

# metric_in FILE NAME: the value of metric NAME in FILE, a saved
#   `mxguard status --metrics` (several values compared from one scrape);
#   0 when NAME is not there.
metric_in() {
	awk -v n="$2" '$1 == n {print $2; f=1} END {if (!f) print 0}' "$1"
}

# mx_count REGEX: number of mxguard log lines matching.
mx_count() { count_log "$MXLOG" "$1"; }

# need_mxguard: scenarios that only make sense with mxguard call this.
need_mxguard() {
	# 77: skipped (tests/run-ns.sh counts it so), not passed
	if [ "${MXG_BASELINE:-0}" = 1 ]; then echo "SKIP: needs mxguard" >&2; exit 77; fi
	[ -n "${MXGUARD:-}" ] && [ -x "$MXGUARD" ] ||
		fail "MXGUARD is not set to an executable (make check-ns sets it)"
}

# with_mxguard: true unless MXG_BASELINE=1 (run a scenario against plain
#   Postfix-to-Postfix delivery, to validate the harness itself).
with_mxguard() { [ "${MXG_BASELINE:-0}" != 1 ]; }
