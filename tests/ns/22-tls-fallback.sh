#!/bin/bash
# 22: opportunistic TLS whose handshake fails (a server that offers
# STARTTLS but cannot do TLS): with no policy requiring TLS, mxguard
# retries over a new cleartext connection, as Postfix does at level "may",
# instead of deferring the mail forever.  The receiver stores the message
# once, in cleartext; mxguard logs the fallback.
. "$(dirname "$0")/../lib/ns.sh"
need_mxguard
ns_setup
make_cert broken mx.broken.test
snd_setup
mkdir -p "$T/store"
bad_start 10.25.1.13 --mode badtls --cert "$T/pki/broken.pem" --store "$T/store"
snd_route broken.test 10.25.1.13
mxg_start

new_body "$T/body" 4000
send_mail bob@sender.test frank@broken.test "$T/body" "tls fallback"
qid=$(find_qid "$MSGID")
wait_status "$qid" frank@broken.test sent
assert "the handshake was attempted and failed" grep -q "badtls clienthello=" "$BADLOG"
assert "mxguard logged the fallback" grep -qE "event=tls-fallback .*action=cleartext-retry" "$MXLOG"
assert "delivered in cleartext on the retry" grep -qE "event=message .*tls=none result=accepted" "$MXLOG"
assert "exactly one message stored" [ "$(count_log "$BADLOG" ' message ')" = 1 ]
pass "failed opportunistic handshake falls back to cleartext"
