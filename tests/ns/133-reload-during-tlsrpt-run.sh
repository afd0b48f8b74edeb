#!/bin/bash
# 133: reloads while a TLSRPT report run is under way.  The run keeps the
# configuration it started with; every other configuration a reload
# replaced serves nothing and must be freed.  Yesterday's counts for
# enf.test are in the store (tests/lib/tlsrpt_seed.c); its rua host takes
# the connection and never answers, so the run's try lasts
# sts_fetch_timeout (60 s) + 5 s.  Meanwhile 70 reloads (configuration
# management that reloads often): each must apply.  Before, each reload
# during the run kept the configuration it replaced, and the 65th was
# refused ("too many reloads; restart mxguard"), and so was every reload
# after it until the run ended.
. "$(dirname "$0")/../lib/ns.sh"
. "$LIBDIR/dns.sh"
. "$LIBDIR/sts.sh"
need_mxguard
ns_setup

RPT_IP=10.25.1.81
tlsrpt_tarpit_world "$RPT_IP"

MXG_EXTRA_CONF="$TLSRPT_RUN_CONF
sts_fetch_timeout = 60s"
# (60 s from the start: the run begins within tlsrpt_max_delay, and one
# that began before a reload set it lasted the 5 s of sts.sh's value and
# could end before the 70th reload, slower under ASan)
sts_mxguard_start
wait_for 30 "the run is waiting on the tarpit" grep -q accepted "$T/tarpit.out"
assert "the run is under way" grep -qE "event=tlsrpt-run due=1 " "$MXLOG"

n0=$(count_log "$MXLOG" "event=reloaded ")
for i in $(seq 1 70); do
	kill -HUP "$MXG_PID"
	_applied() { [ "$(count_log "$MXLOG" "event=reload(ed |-failed)")" -ge $((n0 + i)) ]; }
	wait_for 20 "reload $i answered" _applied
done
assert "the run was still under way at the last reload" \
	[ "$(count_log "$MXLOG" "event=tlsrpt-run-done")" = 0 ]
assert "no reload refused during the run ($(grep -m1 -oE 'event=reload-failed.*' "$MXLOG"))" \
	[ "$(count_log "$MXLOG" "event=reload-failed")" = 0 ]
assert "every reload applied" [ "$(count_log "$MXLOG" "event=reloaded ")" -ge $((n0 + 70)) ]
sts_send alice@enf.test "after the reloads"
wait_status "$QID" alice@enf.test sent
assert "no sanitizer report" [ "$(count_log "$MXLOG" "ERROR: AddressSanitizer|runtime error")" = 0 ]
pass "reloads during a TLSRPT run all apply: only the run's configuration is kept"
