#!/bin/bash
# 16: SMTP smuggling through mxguard.  A client in the sender namespace talks
# to the receiver's IP:25 (diverted into mxguard) and hides
# "\n.\nMAIL FROM:..RCPT TO:..DATA.." inside one message.  The receiver runs
# with smtpd_forbid_bare_newline=no (vulnerable): without mxguard it stores
# two messages (checked as the baseline); through mxguard it must store
# exactly one and nothing for the smuggled recipient.
. "$(dirname "$0")/../lib/ns.sh"
ns_setup
make_cert mx1 mx1.tls.test
rcv_listener 10.25.1.10 mx1
rcv_mailbox judy@tls.test smuggled@tls.test
rcv_setup

smuggle() {	# -> prints the client's transcript, exit status 0 if DATA got 250
	in_snd python3 - <<'PY'
import socket, sys
s = socket.create_connection(("10.25.1.10", 25), timeout=20)
f = s.makefile("rb")
def reply():
    lines = []
    while True:
        l = f.readline()
        if not l:
            raise SystemExit("connection closed; got %r" % lines)
        lines.append(l.decode().rstrip())
        if l[3:4] != b"-":
            break
    print("S:", " | ".join(lines)); return lines[-1][:3]
def cmd(c, want):
    print("C:", c.strip()); s.sendall(c.encode())
    code = reply()
    if not code.startswith(want):
        raise SystemExit("unexpected %s to %s" % (code, c.strip()))
reply()
cmd("EHLO client.sender.test\r\n", "2")
cmd("MAIL FROM:<mallory@sender.test>\r\n", "2")
cmd("RCPT TO:<judy@tls.test>\r\n", "2")
cmd("DATA\r\n", "3")
body = ("Subject: carrier\r\nMessage-ID: <carrier@sender.test>\r\n\r\nhello\r\n"
        "\n.\n"
        "MAIL FROM:<mallory@sender.test>\r\nRCPT TO:<smuggled@tls.test>\r\nDATA\r\n"
        "Subject: smuggled\r\nMessage-ID: <smuggled@sender.test>\r\n\r\nsmuggled body\r\n"
        ".\r\n")
print("C: <body with \\n.\\n smuggling>"); s.sendall(body.encode())
code = reply()
try:
    s.sendall(b"QUIT\r\n"); reply()
except Exception:
    pass
sys.exit(0 if code.startswith("2") else 1)
PY
}

if ! with_mxguard; then
	smuggle >"$T/client.log" 2>&1; cat "$T/client.log" >&2
	wait_mailbox smuggled@tls.test 1 10
	assert "baseline: the receiver is vulnerable (2 messages)" [ "$(all_mailbox_count)" = 2 ]
	pass "baseline: smuggling works without mxguard (test is meaningful)"
fi

mxg_start
rc=0; smuggle >"$T/client.log" 2>&1 || rc=$?
cat "$T/client.log" >&2
log "client exit status $rc (0: DATA answered 2xx)"
# wait for the receiver to finish with the session before counting
wait_log "$RD/maillog" "disconnect from [^ ]*\\[$SND_IP\\]" 20
if [ "$rc" = 0 ]; then wait_mailbox judy@tls.test 1 20; fi
wait_rcv_idle
log "receiver: $(grep -E 'disconnect from' "$RD/maillog")"
assert "smuggled recipient got nothing" [ "$(mailbox_count smuggled@tls.test)" = 0 ]
assert "receiver stored exactly one message" [ "$(all_mailbox_count)" = 1 ]
assert "receiver saw one transaction (no smuggled MAIL)" \
	[ "$(count_log "$RD/maillog" 'smuggled@tls.test')" = 0 ]
pass "no smuggling through mxguard"
