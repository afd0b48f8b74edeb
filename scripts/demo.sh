#!/bin/bash
# mxguard demo: a legacy Postfix with TLS disabled sends mail for four
# domains through mxguard, inside throw-away network namespaces:
#   tls.test    receiver offers STARTTLS     -> mxguard upgrades the session
#   plain.test  receiver offers no STARTTLS  -> relayed in cleartext
#   strict.test same receiver as plain.test, but a policy requires TLS
#               (tls_policy = strict.test encrypt) -> refused with 421
#               4.7.10 starttls-not-supported: the mail stays queued
#   dies.test   server dies in mid-DATA      -> the mail stays queued
# Then prints, per message, what both ends saw, and tears everything down.
# Exits 1 when a message did not end as described above (make check-demo).
# Needs root.  Usage: ./scripts/demo.sh
set -e
cd "$(dirname "$0")/.."
if [ "${MXG_BASELINE:-0}" != 1 ]; then	# (MXG_BASELINE=1: demo without mxguard)
	./scripts/deps.sh
	make
fi
set +e
export MXGUARD=${MXGUARD:-$PWD/build/mxguard}
MXG_DUMP=0
MXG_LOG_LEVEL=info
. tests/lib/ns.sh

ns_setup
make_cert mx1 mx1.tls.test
make_cert dies mx.dies.test
rcv_listener 10.25.1.10 mx1
rcv_listener 10.25.1.11 none
rcv_mailbox alice@tls.test carol@plain.test erin@strict.test
rcv_setup
bad_start 10.25.1.12 --mode die --after 5000 --cert "$T/pki/dies.pem"
snd_setup
snd_route tls.test 10.25.1.10
snd_route plain.test 10.25.1.11
snd_route dies.test 10.25.1.12
snd_route strict.test 10.25.1.11
with_mxguard && mxg_start "tls_policy = strict.test encrypt"
echo
echo "== sender: Postfix, smtp_tls_security_level=none, in namespace $SND ($SND_IP)"
echo "== mxguard: listening on 127.0.0.1:$MXG_PORT, nat OUTPUT tcp/25 REDIRECT"
echo "== receivers in $RCV: 10.25.1.10 STARTTLS, 10.25.1.11 no STARTTLS, 10.25.1.12 dies mid-DATA"
echo "== policy: tls_policy = strict.test encrypt (TLS required for strict.test)"
echo

rcpts=(alice@tls.test carol@plain.test erin@strict.test dave@dies.test)
declare -A QID ID MF GOT
declare -A WANT=([alice@tls.test]=tls [carol@plain.test]=cleartext
	[erin@strict.test]=queued [dave@dies.test]=queued)
for r in "${rcpts[@]}"; do
	new_body "$T/body-$r" 50000
	send_mail bob@sender.test "$r" "$T/body-$r" "demo to $r"
	QID[$r]=$(find_qid "$MSGID"); ID[$r]=$MSGID; MF[$r]=$MSGFILE
done
for r in "${rcpts[@]}"; do
	wait_status "${QID[$r]}" "$r" 'sent|deferred|bounced' 60 2>/dev/null
done

echo "== results"
for r in "${rcpts[@]}"; do
	q=${QID[$r]}
	st=$(snd_status "$q" "$r")
	printf '\n%s (sender queue id %s)\n' "$r" "$q"
	printf '  sender saw:   status=%s, its own session in cleartext (TLS off)\n' "$st"
	case $st in
	sent)
		f=$(msg_file_by_id "$r" "${ID[$r]}")
		tls=$(received_tls "$f")
		if [ -n "$tls" ]; then
			printf '  receiver saw: delivered over TLS: %s\n' "$tls"
			GOT[$r]=tls
		else
			printf '  receiver saw: delivered in CLEARTEXT (no TLS on the receiving session)\n'
			GOT[$r]=cleartext
		fi
		printf '  sender log:   %s\n' "$(grep -E " $q: to=<$r>" "$SD/maillog" | tail -n1 | sed -E 's/.*status=[a-z]+ //')"
		if [ -n "$f" ] && [ "$(body_hash "${MF[$r]}")" = "$(body_hash "$f")" ]; then
			printf '  body intact:  yes\n'
		else
			printf '  body intact:  NO (see mailbox %s)\n' "$f"; GOT[$r]="${GOT[$r]}, body changed"
		fi
		;;
	*)
		reason=$(queue_reason "$q")
		printf '  still queued: %s\n' "$reason"
		GOT[$r]=queued
		[ "$r" = erin@strict.test ] && [[ $reason != *starttls-not-supported* ]] &&
			GOT[$r]="queued without starttls-not-supported"
		case $r in
		*@dies.test)
			printf '  server saw:   %s\n' "$(grep -E 'died|data-bytes' "$BADLOG" | head -n2 | cut -d' ' -f3- | tr '\n' ' ')" ;;
		*)
			printf '  server saw:   %s\n' "$(grep -c "<$r>" "$RD/maillog" 2>/dev/null | sed 's/^0$/no envelope for this recipient: nothing crossed in cleartext/')" ;;
		esac
		;;
	esac
done
echo
echo "== mxguard log (sessions)"
with_mxguard && grep -E 'event=(connect|tls|cleartext|message|close|verdict|policy-failure|upstream-parked|upstream-reused)' "$MXLOG" |
	sed -E 's/^[^ ]+ //; s/^/  /' | cut -c1-200
echo
bad=0
if with_mxguard; then
	for r in "${rcpts[@]}"; do
		[ "${GOT[$r]:-}" = "${WANT[$r]}" ] && continue
		echo "demo: FAILED: $r: expected ${WANT[$r]}, got ${GOT[$r]:-nothing}"; bad=1
	done
	[ "$bad" = 0 ] && echo "demo: every message ended as expected"
fi
echo "== tearing down"
exit "$bad"
