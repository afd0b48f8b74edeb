# shellcheck shell=bash
# MTA-STS policy hosts for the scenarios tests/ns/3*.sh: one nginx in $RCV
# on $STS_IP:443 serving https://mta-sts.DOMAIN/.well-known/mta-sts.txt for
# every DOMAIN registered with sts_site, with a certificate from the test CA
# (ns.sh make_cert).  Source after ns.sh.
#
#   sts_site DOMAIN [KIND]                      before sts_start (KIND: make_cert's)
#   sts_policy DOMAIN <<EOF ... EOF             the policy text (any time)
#   sts_start / sts_stop                          nginx up / down
#   sts_fetches DOMAIN                            requests nginx served for it
#
# mxguard verifies the policy host against tls_ca_file, which ns.sh's
# mxg_start already sets to the test CA.

STS_IP=10.25.1.80
STS_PID=""
_STS_SITES=()

sts_site() {
	local dom=$1 kind=${2:-valid}
	_STS_SITES+=("$dom")
	make_cert "sts-$dom" "mta-sts.$dom" "$kind"
	mkdir -p "$T/www/$dom/.well-known"
}

sts_policy() {	# DOMAIN, policy text on stdin (LF line ends kept as given)
	mkdir -p "$T/www/$1/.well-known"
	cat >"$T/www/$1/.well-known/mta-sts.txt.new"
	chmod 644 "$T/www/$1/.well-known/mta-sts.txt.new"
	mv "$T/www/$1/.well-known/mta-sts.txt.new" "$T/www/$1/.well-known/mta-sts.txt"
}

sts_start() {
	local n=$T/nginx dom
	mkdir -p "$n"
	rcv_addr "$STS_IP"
	chmod -R a+rX "$T/www"
	{
		cat <<EOC
daemon off;
master_process on;
worker_processes 1;
user root root;
pid $n/nginx.pid;
error_log $n/error.log info;
events { worker_connections 64; }
http {
    access_log $n/access.log sts;
    log_format sts '\$host \$status \$request';
    client_body_temp_path $n/tmp;
    proxy_temp_path $n/tmp;
    fastcgi_temp_path $n/tmp;
    uwsgi_temp_path $n/tmp;
    scgi_temp_path $n/tmp;
EOC
		for dom in "${_STS_SITES[@]}"; do
			cat <<EOC
    server {
        listen $STS_IP:443 ssl;
        server_name mta-sts.$dom;
        ssl_certificate $T/pki/sts-$dom.crt;
        ssl_certificate_key $T/pki/sts-$dom.key;
        root $T/www/$dom;
        location = /.well-known/mta-sts.txt {
            types { }
            default_type text/plain;
        }
        location / { return 404; }
    }
EOC
		done
		echo "}"
	} >"$n/nginx.conf"
	# log_format must precede its use
	sed -i '/access_log/{h;d};/log_format/{G}' "$n/nginx.conf"
	mkdir -p "$n/tmp"
	: >"$n/access.log"
	in_rcv nginx -t -c "$n/nginx.conf" >"$n/check.log" 2>&1 ||
		fail "nginx config: $(cat "$n/check.log")"
	bg "$RCV" "$n/nginx.out" nginx -c "$n/nginx.conf"
	STS_PID=$BG_PID
	wait_port "$RCV" "$STS_IP" 443
	log "sts: nginx on $STS_IP:443 for ${_STS_SITES[*]}"
}

sts_stop() {
	[ -n "$STS_PID" ] || return 0
	kill -TERM "$STS_PID" 2>/dev/null
	wait_for 10 "nginx stopped" _sts_down
	wait "$STS_PID" 2>/dev/null
	STS_PID=""
}
_sts_down() { ! _port_open "$RCV" "$STS_IP" 443; }

sts_fetches() {	# DOMAIN: policy requests served for it
	count_log "$T/nginx/access.log" "^mta-sts\\.$1 200 GET /.well-known/mta-sts.txt"
}

# The config lines a scenario passes to mxg_start.
STS_MXG_CONF="sts_fetch_timeout = 5s
policy_timeout = 20s"

# sts_mxguard_start: mxg_start with the resolver and MTA-STS settings.
sts_mxguard_start() {
	MXG_EXTRA_CONF="$DNS_MXG_CONF
$STS_MXG_CONF
${MXG_EXTRA_CONF:-}"
	mxg_start
}

# sts_send TO SUBJECT: submit one message; sets QID.
QID=""
sts_send() {
	new_body "$T/body.$$" 1500
	send_mail bob@sender.test "$1" "$T/body.$$" "$2"
	QID=$(find_qid "$MSGID")
}

# sts_assert_deferred QID RCPT REASON [BEFORE]: the sender deferred the
#   recipient, the message stays in its queue with REASON in the delay
#   reason, the mailbox still holds BEFORE (0) messages once the receiver's
#   queue is empty, and mxguard logged REASON.
sts_assert_deferred() {
	local qid=$1 rcpt=$2 reason=$3 before=${4:-0} why
	wait_status "$qid" "$rcpt" deferred
	assert "message $qid still queued" queue_has "$qid"
	why=$(queue_reason "$qid")
	log "queue: $why"
	assert "delay reason names $reason" grep -qF -- "$reason" <<<"$why"
	assert "reply was a 4xx, never 5xx" grep -qE "said: 4[0-9][0-9]" <<<"$why"
	# counted once the receiver has stored what it accepted: a message
	# that crossed before the 4xx may still be in its queue
	wait_rcv_idle
	assert "nothing more delivered to $rcpt" [ "$(mailbox_count "$rcpt")" = "$before" ]
	assert "mxguard logged reason=$reason" grep -qE "reason=$reason" "$MXLOG"
}

# sts_assert_delivered QID RCPT: sent, stored exactly once and whole
#   (assert_once: one copy of QID's message, its body as submitted), and
#   over TLS at the receiver.
sts_assert_delivered() {
	local f mid sent
	wait_status "$1" "$2" sent
	mid=$(sed -nE "s/.* $1: message-id=<([^>]*)>.*/\1/p" "$SD/maillog" | head -n 1)
	[ -n "$mid" ] || fail "no Message-ID logged for $1"
	sent=$(grep -lF "Message-ID: <$mid>" "$T"/msg.* | head -n 1)
	[ -n "$sent" ] || fail "message <$mid> not among those submitted"
	wait_mailbox "$2" 1
	assert_once "$2" "$mid" "$sent"
	f=$(msg_file_by_id "$2" "$mid") || fail "message $mid not in mailbox"
	assert "Received header of $2 shows TLS" [ -n "$(received_tls "$f")" ]
}

# enf_receiver [CERTNAME] [CERTKIND]: the receiver mx1 on 10.25.1.10 with
#   STARTTLS (a certificate for CERTNAME, default mx1.enf.test; make_cert
#   kinds) and the mailbox alice@enf.test, the sender routing enf.test
#   there; with STS_MX2=1 also mx2 on 10.25.1.11 (mx2.enf.test).  No DNS.
enf_receiver() {
	make_cert mx1 "${1:-mx1.enf.test}" ${2:-}
	rcv_listener 10.25.1.10 mx1
	if [ "${STS_MX2:-0}" = 1 ]; then
		make_cert mx2 mx2.enf.test
		rcv_listener 10.25.1.11 mx2
	fi
	rcv_mailbox alice@enf.test
	rcv_setup
	snd_setup
	snd_route enf.test 10.25.1.10
}

# sts_enf_world CERTNAME [CERTKIND] [TXTID]: the world most enforce
# scenarios share.  One receiver, mx1.enf.test on 10.25.1.10, presenting a
# certificate for CERTNAME (make_cert kinds: "" valid, expired, ...); the
# sender routes enf.test there; DNS has enf.test's MX, mx1's address, the
# _mta-sts TXT record with id TXTID (default 1) and the policy host; nginx
# serves the site.  The caller writes the policy (sts_policy enf.test),
# then calls sts_start and sts_mxguard_start.  With STS_MX2=1 a second
# receiver, mx2.enf.test on 10.25.1.11 (valid certificate), has an address
# in DNS too, though it is no MX of enf.test (yet).
sts_enf_world() {
	local id=${3:-1} mx2=""
	[ "${STS_MX2:-0}" = 1 ] && mx2="mx2.enf IN A 10.25.1.11"
	enf_receiver "$1" "${2:-}"
	dns_records <<Z
enf IN MX 10 mx1.enf
mx1.enf IN A 10.25.1.10
_mta-sts.enf IN TXT "v=STSv1; id=$id"
mta-sts.enf IN A 10.25.1.80
$mx2
Z
	dns_start
	sts_site enf.test
}

# TLSRPT_RUN_CONF: one process, the one that sends the reports, with its
#   first report run within a second of its start (ns 93, 133, 137).
TLSRPT_RUN_CONF="workers = 1
tlsrpt_enable = yes
tlsrpt_private_destinations = yes
tlsrpt_max_delay = 1s
tlsrpt_org_name = mxguard test
tlsrpt_from = tlsrpt-noreply@sender.test"

# tlsrpt_seed_build: tests/lib/tlsrpt_seed.c as $T/tlsrpt_seed, linked
#   against the libmxguard.a next to $MXGUARD (with the sanitizers when that
#   build has them), to write counts into a state dir as the daemon would.
tlsrpt_seed_build() {
	local bld
	bld=$(dirname "$MXGUARD")
	[ -f "$bld/libmxguard.a" ] || fail "no $bld/libmxguard.a next to $MXGUARD"
	# shellcheck disable=SC2046
	cc -std=gnu11 -D_GNU_SOURCE -I"$LIBDIR/../.." $(pkg-config --cflags openssl lmdb jansson zlib opendkim) \
		$(nm "$bld/libmxguard.a" 2>/dev/null | grep __asan_ >/dev/null && echo -fsanitize=address,undefined) \
		-o "$T/tlsrpt_seed" "$LIBDIR/tlsrpt_seed.c" "$bld/libmxguard.a" \
		$(pkg-config --libs openssl libcares libnetfilter_queue libnfnetlink lmdb libidn2 jansson zlib opendkim) ||
		fail "cannot build tests/lib/tlsrpt_seed.c"
}

# tlsrpt_enf_world RPT_IP: the receiver mx1.enf.test (10.25.1.10, STARTTLS)
#   with alice@enf.test, routed there by the sender, and DNS for enf.test
#   with _smtp._tls.enf.test naming https://tlsrpt.enf.test/v1/report at
#   RPT_IP (the scenario starts what listens there).
tlsrpt_enf_world() {
	enf_receiver
	dns_records <<Z
enf IN MX 10 mx1.enf
mx1.enf IN A 10.25.1.10
_smtp._tls.enf IN TXT "v=TLSRPTv1; rua=https://tlsrpt.enf.test/v1/report"
tlsrpt.enf IN A $1
Z
	dns_start
	rcv_addr "$1"
}

# tlsrpt_tarpit_world RPT_IP: tlsrpt_enf_world with a rua host at RPT_IP
#   that takes the connection and never says a word (tests/lib/tarpit.py,
#   its lines in $T/tarpit.out), and yesterday's counts for enf.test in
#   $T/mxstate: the daemon's first report run waits on that host.
tlsrpt_tarpit_world() {
	tlsrpt_seed_build
	tlsrpt_enf_world "$1"
	mkdir -p "$T/mxstate"
	bg "$RCV" "$T/tarpit.out" python3 "$LIBDIR/tarpit.py" "$1" 443
	wait_port "$RCV" "$1" 443
	"$T/tlsrpt_seed" "$T/mxstate" enf.test 1 mx1.enf.test 10.25.1.10 ||
		fail "seeding yesterday's counts failed"
}
