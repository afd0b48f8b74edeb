# shellcheck shell=bash
# A world with every kind of outcome mxguard has, for the metrics scenario
# (tests/ns/78-metrics-dashboard.sh) and the dashboard screenshot
# (scripts/dashboard-screenshot.sh).  Source after ns.sh, dnssec.sh, sts.sh
# and nfq.sh; call mixed_world after ns_setup, then mixed_mxguard.
#
#   domain        receiver                       expected outcome
#   dane.test     10.25.1.11, TLSA 3 1 1 (signed) delivered, DANE, TLSv1.3
#   sts.test      10.25.1.12, MTA-STS enforce     delivered, verify, TLSv1.3
#   tls12.test    10.25.1.13, TLS 1.2 at most     delivered, opportunistic
#   plain.test    10.25.1.14, no STARTTLS         delivered in cleartext
#   enc.test      10.25.1.14 (tls_policy encrypt) deferred, starttls-not-supported
#   strip.test    10.25.1.15, STARTTLS stripped   deferred, dane-required
#                 by a middlebox (signed, TLSA)
#   stsbad.test   10.25.1.17, certificate for     deferred,
#                 another name, MTA-STS enforce   certificate-host-mismatch
#   direct.test   10.25.1.18, on bypass_dst       bypassed by the NFQUEUE
#                                                 steering, never seen
#   Subject "reject-me" to any receiver: 550 at the end of DATA (the
#   receiver's header_checks), a message not accepted upstream.
#
# dane.test, sts.test, strip.test and stsbad.test publish TLSRPT records
# (tlsrpt_enable is on; the daily reports are not due during a run).
# The resolver self-check names dane.test (signed) and bogus.dane.test (a
# broken signature), so mxguard_dns_validating is 1.
#
#   mixed_world              DNS, MTA-STS, receivers, middlebox, sender
#   mixed_mxguard [lines]    mxguard (NFQUEUE steering, metrics_listen on
#                            127.0.0.1:$MIXED_METRICS_PORT in $SND)
#   mixed_send DOMAIN [SUBJ] one message to a@DOMAIN (MSGID is set)
#   mixed_prometheus INTERVAL a Prometheus scraping mxguard (below)

MIXED_DOMAINS="dane.test sts.test tls12.test plain.test enc.test strip.test stsbad.test direct.test"
MIXED_METRICS_PORT=9125

mixed_world() {
	local d
	make_cert mxdane mx.dane.test
	make_cert mxsts mx.sts.test
	make_cert mxtls12 mx.tls12.test
	make_cert mxstrip mx.strip.test
	make_cert mxwrong mx.elsewhere.test

	dnssec_zone dane.test signed
	dnssec_mx dane.test mx.dane.test 10.25.1.11
	dnssec_tlsa dane.test mx.dane.test 3 1 1 "$T/pki/mxdane.crt"
	dnssec_rr dane.test "bogus.dane.test. 300 IN A 192.0.2.7"
	dnssec_break_sig dane.test bogus.dane.test. A
	dnssec_zone strip.test signed
	dnssec_mx strip.test mx.strip.test 10.25.1.15
	dnssec_tlsa strip.test mx.strip.test 3 1 1 "$T/pki/mxstrip.crt"
	for d in sts stsbad; do
		dnssec_zone $d.test unsigned
		dnssec_rr $d.test "_mta-sts.$d.test. IN TXT \"v=STSv1; id=20261201\""
		dnssec_rr $d.test "mta-sts.$d.test. IN A $STS_IP"
	done
	dnssec_mx sts.test mx.sts.test 10.25.1.12
	# TLSRPT records: successes (dane, sts) and failures (strip, stsbad)
	# are counted for reports; the other domains count as no-record
	for d in dane strip sts stsbad; do
		dnssec_rr $d.test "_smtp._tls.$d.test. IN TXT \"v=TLSRPTv1; rua=mailto:tlsrpt@sender.test\""
	done
	dnssec_mx stsbad.test mx.stsbad.test 10.25.1.17
	dnssec_zone tls12.test unsigned
	dnssec_mx tls12.test mx.tls12.test 10.25.1.13
	dnssec_zone plain.test unsigned
	dnssec_mx plain.test mx.plain.test 10.25.1.14
	dnssec_zone enc.test unsigned
	dnssec_mx enc.test mx.plain.enc.test 10.25.1.14
	dnssec_zone direct.test unsigned
	dnssec_mx direct.test mx.direct.test 10.25.1.18
	dnssec_start

	sts_site sts.test
	sts_site stsbad.test
	printf 'version: STSv1\nmode: enforce\nmx: mx.sts.test\nmax_age: 86400\n' | sts_policy sts.test
	printf 'version: STSv1\nmode: enforce\nmx: mx.stsbad.test\nmax_age: 86400\n' | sts_policy stsbad.test
	sts_start

	printf '/^Subject: reject-me/ REJECT 5.7.1 rejected by the test content filter\n' \
		>"$T/rcv-header-checks"
	RCV_EXTRA_MAIN="header_checks = regexp:$T/rcv-header-checks
${RCV_EXTRA_MAIN:-}"
	rcv_listener 10.25.1.11 mxdane
	rcv_listener 10.25.1.12 mxsts
	rcv_listener 10.25.1.13 mxtls12 -o smtpd_tls_protocols=!TLSv1.3 \
		-o smtpd_tls_mandatory_protocols=!TLSv1.3
	rcv_listener 10.25.1.14 none
	rcv_listener 10.25.1.115 mxstrip
	rcv_listener 10.25.1.17 mxwrong
	rcv_listener 10.25.1.18 none
	for d in $MIXED_DOMAINS; do rcv_mailbox "a@$d"; done
	rcv_setup
	bad_start 10.25.1.15 --mode mitm --upstream 10.25.1.115:25
	snd_setup
	snd_route dane.test 10.25.1.11
	snd_route sts.test 10.25.1.12
	snd_route tls12.test 10.25.1.13
	snd_route plain.test 10.25.1.14
	snd_route enc.test 10.25.1.14
	snd_route strip.test 10.25.1.15
	snd_route stsbad.test 10.25.1.17
	snd_route direct.test 10.25.1.18
}

mixed_mxguard() {
	nfq_start "$DNSSEC_MXG_CONF
$STS_MXG_CONF
dns_check_signed_name = dane.test
dns_check_bogus_name = bogus.dane.test
metrics_listen = 127.0.0.1:$MIXED_METRICS_PORT
tls_policy = enc.test encrypt
tlsrpt_enable = yes
tlsrpt_private_destinations = yes
bypass_dst = 10.25.1.18/32
$*"
	wait_port "$SND" 127.0.0.1 "$MIXED_METRICS_PORT"
}

mixed_send() {	# DOMAIN [SUBJECT]
	[ -f "$T/mixed-body" ] || new_body "$T/mixed-body" 3000
	send_mail x@sender.test "a@$1" "$T/mixed-body" "${2:-mixed traffic to $1}"
}

# mixed_prometheus INTERVAL: Debian's Prometheus in $SND on 127.0.0.1:9090,
#   its configuration and TSDB under $T/prom, scraping mxguard's endpoint
#   every INTERVAL (job "mxguard"); waits until it is ready and has scraped.
PROM_URL=http://127.0.0.1:9090
mixed_prometheus() {
	local p=$T/prom
	mkdir -p "$p/data"
	cat >"$p/prometheus.yml" <<EOC
global:
  scrape_interval: $1
  evaluation_interval: $1
scrape_configs:
  - job_name: mxguard
    static_configs:
      - targets: ['127.0.0.1:$MIXED_METRICS_PORT']
EOC
	promtool check config "$p/prometheus.yml" >"$p/check.log" 2>&1 ||
		fail "prometheus.yml: $(cat "$p/check.log")"
	bg "$SND" "$p/prometheus.log" prometheus --config.file="$p/prometheus.yml" \
		--storage.tsdb.path="$p/data" --web.listen-address=127.0.0.1:9090 \
		--web.console.templates="$p" --web.console.libraries="$p"
	wait_port "$SND" 127.0.0.1 9090 30
	wait_for 30 "Prometheus ready" in_snd curl -sf "$PROM_URL/-/ready"
	wait_for 30 "Prometheus scraped mxguard" _prom_has 'up{job="mxguard"} == 1'
	log "prometheus: $PROM_URL in $SND, scraping 127.0.0.1:$MIXED_METRICS_PORT every $1"
}

# _prom_has EXPR: an instant query of EXPR returns at least one sample.
_prom_has() {
	local out
	out=$(in_snd promtool query instant "$PROM_URL" "$1" 2>/dev/null) && [ -n "$out" ]
}
