#!/bin/bash
# 25: a local client pipelines "EHLO a" for 25 s and never reads a reply
# (issue 11, defect 5: before the bound, 64 MiB of such input in 20 s
# took mxguard from 8 MB to 942 MB of RSS).  mxguard stops reading a
# client whose replies pile up, so the RSS of the process serving it (a
# worker, not the supervisor) stays under 64 MB for the whole flood, and
# a real Postfix delivery through it succeeds meanwhile.
. "$(dirname "$0")/../lib/ns.sh"
need_mxguard
ns_setup
tls_world
MXG_LOG_LEVEL=info mxg_start

RSS_BOUND_KB=$((64 * 1024))
FLOOD_SECS=25

# the flooder: EHLO lines as fast as the socket takes them, no read ever
cat >"$T/flood.py" <<'PY'
import os, select, socket, sys, time
host, port, secs, state = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
s = socket.create_connection((host, port), timeout=10)
s.setblocking(False)
chunk = b"EHLO a\r\n" * 8192
sent, pending, stalled_since = 0, b"", None
open(os.path.join(state, "flood.started"), "w").close()
end = time.monotonic() + secs
while time.monotonic() < end:
    if not pending:
        pending = chunk
    select.select([], [s], [], 0.2)
    try:
        n = s.send(pending)
    except BlockingIOError:
        # mxguard stopped reading us: note it once it lasts a second
        now = time.monotonic()
        if stalled_since is None:
            stalled_since = now
        elif now - stalled_since > 1:
            open(os.path.join(state, "flood.blocked"), "a").close()
        continue
    except OSError as e:
        print("flood: send failed:", e)
        break
    stalled_since = None
    sent += n
    pending = pending[n:]
with open(os.path.join(state, "flood.sent"), "w") as f:
    f.write("%d\n" % sent)
s.close()
PY
bg "$SND" "$T/flood.out" python3 "$T/flood.py" 10.25.1.10 25 "$FLOOD_SECS" "$T"
FLOOD_PID=$BG_PID
wait_for 10 "the flood started" test -e "$T/flood.started"
wait_log "$MXLOG" "event=connect " 10
# the process that serves the flood: the one that logged its connect (with
# workers, a worker; $MXG_PID is then the supervisor, which relays nothing
# and whose RSS says nothing about the session's memory)
FLOOD_MXG=$(grep -m1 -E "event=connect " "$MXLOG" | sed -nE 's/.*mxguard\[([0-9]+)\]: .*/\1/p')
[ -n "$FLOOD_MXG" ] && [ -e "/proc/$FLOOD_MXG" ] || fail "no mxguard process for the flood's session"
log "the flood's session is served by pid $FLOOD_MXG (the daemon: $MXG_PID)"

max_rss=0 samples=0
sample_rss() {
	local r
	r=$(awk '/^VmRSS:/ {print $2}' "/proc/$FLOOD_MXG/status" 2>/dev/null) || return 0
	[ -n "$r" ] || return 0
	samples=$((samples + 1))
	[ "$r" -gt "$max_rss" ] && max_rss=$r
	return 0
}

# another client's session meanwhile: a real delivery, once mxguard
# pushes back on the flood (or after 20 s of it)
end=$((SECONDS + 20))
while [ ! -e "$T/flood.blocked" ] && [ $SECONDS -lt $end ]; do
	sample_rss
	sleep 0.2
done
log "flood blocked by mxguard: $([ -e "$T/flood.blocked" ] && echo yes || echo no)"
new_body "$T/body" 4000
send_mail bob@sender.test alice@tls.test "$T/body" "during the flood"
qid=$(find_qid "$MSGID")
delivered=""
while kill -0 "$FLOOD_PID" 2>/dev/null; do
	sample_rss
	if [ -z "$delivered" ] && [ "$(snd_status "$qid" alice@tls.test)" = sent ]; then
		delivered=yes
		log "delivered during the flood; mxguard RSS so far ${max_rss} kB"
	fi
	sleep 0.5
done
wait "$FLOOD_PID" 2>/dev/null
sample_rss
log "flood: $(cat "$T/flood.sent" 2>/dev/null || echo '?') bytes went in; mxguard max RSS ${max_rss} kB"
assert "the flood ran its $FLOOD_SECS s" [ -s "$T/flood.sent" ]
assert "the mail was delivered while the flood ran" [ "$delivered" = yes ]
wait_mailbox alice@tls.test 1
f=$(msg_file_by_id alice@tls.test "$MSGID") || fail "message not in the mailbox"
assert "message byte-identical" [ "$(body_hash "$T/msg.$_MSGN")" = "$(body_hash "$f")" ]
assert "the serving process's RSS was sampled ($samples samples)" [ "$samples" -ge 10 ]
assert "mxguard RSS stayed under $RSS_BOUND_KB kB (max $max_rss kB)" [ "$max_rss" -lt "$RSS_BOUND_KB" ]
assert "mxguard is alive" kill -0 "$MXG_PID"
assert "the process that served the flood is alive" kill -0 "$FLOOD_MXG"
pass "a client that pipelines without reading holds bounded memory; others are served"
