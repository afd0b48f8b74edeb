#!/bin/bash
# 93: a reload that turns tlsrpt_enable off while a report run is under
# way.  Yesterday's counts for enf.test are in the store (tests/lib/
# tlsrpt_seed.c); its rua host accepts TCP and never answers (the POST's
# try lasts sts_fetch_timeout + 5 s).  While the daemon's run waits on it,
# SIGHUP with tlsrpt_enable = no: the engine closes the TLSRPT store, so
# the run must end first (event=tlsrpt-run-cancelled).  Before, the run
# went on and wrote its delivery state into the freed store when its try
# ended: the process died (SIGSEGV; ASan: heap-use-after-free).  The
# daemon must outlive the try's deadline and still relay mail.
. "$(dirname "$0")/../lib/ns.sh"
. "$LIBDIR/dns.sh"
. "$LIBDIR/sts.sh"
need_mxguard
ns_setup

RPT_IP=10.25.1.81
tlsrpt_tarpit_world "$RPT_IP"

MXG_EXTRA_CONF="$TLSRPT_RUN_CONF"
sts_mxguard_start
sed -i 's/^sts_fetch_timeout = .*/sts_fetch_timeout = 2s/' "$T/mxguard.conf"
kill -HUP "$MXG_PID"
wait_log "$MXLOG" "event=reloaded " 10
wait_for 30 "the run is waiting on the tarpit" grep -q accepted "$T/tarpit.out"
assert "the run is under way" grep -qE "event=tlsrpt-run due=1 " "$MXLOG"
assert "and not done" [ "$(count_log "$MXLOG" "event=tlsrpt-run-done")" = 0 ]

sed -i 's/^tlsrpt_enable = yes/tlsrpt_enable = no/' "$T/mxguard.conf"
kill -HUP "$MXG_PID"
_two() { [ "$(count_log "$MXLOG" "event=reloaded ")" -ge 2 ]; }
wait_for 10 "the reload applied" _two
# the run's connection is closed with it (before: at the try's deadline,
# sts_fetch_timeout 2s + 5s, when the run then wrote into the freed store)
wait_for 15 "the tarpit's connection closed" grep -q closed "$T/tarpit.out"
sts_send alice@enf.test "after the reload"
wait_status "$QID" alice@enf.test sent
assert "mxguard is still running" kill -0 "$MXG_PID"
assert "no sanitizer report" [ "$(count_log "$MXLOG" "ERROR: AddressSanitizer|runtime error")" = 0 ]
assert "the run was cancelled by the reload" grep -qE "event=tlsrpt-run-cancelled reason=reload" "$MXLOG"
pass "a reload turning TLSRPT off ends the report run first: no write into the closed store"
