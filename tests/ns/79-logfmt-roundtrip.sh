#!/bin/bash
# 79: every line mxguard logs is strict logfmt, and hostile peer text
# round-trips through it (issue 13).  A scripted SMTP peer
# (tests/lib/badsmtp.py, STARTTLS with a test certificate) greets with a
# banner and accepts the message with a reply whose texts hold UTF-8,
# double quotes, backslashes, control bytes (ESC, DEL, tab, 0x01), spaces,
# "key=value" look-alikes and invalid UTF-8 (a lone 0xff, a truncated
# three-byte sequence, an overlong form).  mxguard runs at debug level (the
# upstream lines are logged too).  A strict logfmt parser written here in
# python3 then reads the whole log:
#   TIMESTAMP mxguard[PID]: key=value( key=value)*
#   key    [a-zA-Z_][a-zA-Z0-9_.-]*, each at most once per line
#   value  bare: printable ASCII without space, '"', '=', '\'; or
#          "quoted" with JSON's escapes (\" \\ \/ \b \f \n \r \t \uXXXX,
#          surrogates only in pairs), nothing but printable ASCII inside
# The test fails on any line that does not parse, and unless the decoded
# banner and end-of-data reply equal the bytes the peer sent with each byte
# that does not begin a valid shortest-form UTF-8 sequence replaced by
# U+FFFD (core/log.c, log_qn).
. "$(dirname "$0")/../lib/ns.sh"
need_mxguard
not() { ! "$@"; }
ns_setup
make_cert hostile mx.hostile.test

# the hostile texts, as raw bytes (no CR, LF or NUL: they would end the
# SMTP line or the argument)
banner=$(printf 'mx.hostile.test ESMTP "Gr\xc3\xbc\xc3\x9fe" \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80 back\\slash tab\there esc\x1b[31m del\x7f soh\x01 bad\xff trunc\xe6\x97 overlong\xc0\xaf key=value a==b end')
reply=$(printf '2.0.0 Ok: id="q=1" path=C:\\tmp\\x \xe2\x9c\x93 ctrl\x02\x1f mixed\xed\xa0\x80surrogate "unterminated')
printf '%s' "$banner" >"$T/banner.bin"
printf '%s' "$reply" >"$T/reply.bin"

bad_start 10.25.1.10 --mode normal --cert "$T/pki/hostile.pem" --banner "$banner" --data-reply "$reply"
snd_setup
snd_route hostile.test 10.25.1.10
MXG_LOG_LEVEL=debug mxg_start

new_body "$T/body" 2000
send_mail x@sender.test u@hostile.test "$T/body" "hostile peer text"
q=$(find_qid "$MSGID")
wait_status "$q" u@hostile.test sent
wait_log "$BADLOG" "message tls bytes="
wait_log "$MXLOG" "event=delivery domains=hostile.test "
# the connection's close line: every line of that session is written
wait_log "$MXLOG" "event=close .*dst=10.25.1.10:25 "
mxg_stop

cat >"$T/logfmt.py" <<'EOF'
import json, re, sys

log, banner_f, reply_f = sys.argv[1:4]

PREFIX = re.compile(r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z mxguard\[\d+\]: ')
KEY = re.compile(r'[a-zA-Z_][a-zA-Z0-9_.-]*')
BARE = re.compile(r'[!#-<>-\[\]-~]+')          # 0x21-0x7e without " = \
QUOTED = re.compile(r'"((?:[ !#-\[\]-~]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*)"')


def parse(rest):
    """key=value pairs of one line, strictly; raises ValueError."""
    pairs, i = {}, 0
    while True:
        m = KEY.match(rest, i)
        if not m:
            raise ValueError("no key at column %d" % i)
        k, i = m.group(), m.end()
        if k in pairs:
            raise ValueError("key %s twice" % k)
        if rest[i:i + 1] != "=":
            raise ValueError("no '=' after key %s" % k)
        i += 1
        if rest[i:i + 1] == '"':
            m = QUOTED.match(rest, i)
            if not m:
                raise ValueError("bad quoted value for %s" % k)
            v = json.loads('"%s"' % m.group(1))
            # json.loads lets lone surrogates through: not text
            v.encode("utf-8")
        else:
            m = BARE.match(rest, i)
            if not m:
                raise ValueError("bad bare value for %s" % k)
            v = m.group()
        pairs[k] = v
        i = m.end()
        if i == len(rest):
            return pairs
        if rest[i] != " ":
            raise ValueError("no space after the value of %s" % k)
        i += 1


def expect(raw):
    """raw bytes as core/log.c decodes them: every byte that does not
    begin a valid shortest-form UTF-8 sequence of a scalar value becomes
    U+FFFD, and decoding goes on at the next byte."""
    out, i = [], 0
    while i < len(raw):
        for n in (1, 2, 3, 4):
            try:
                ch = raw[i:i + n].decode("utf-8")   # strict: no overlong,
            except UnicodeDecodeError:              # no surrogates
                continue
            if len(ch) == 1:
                out.append(ch)
                i += n
                break
        else:
            out.append("\ufffd")
            i += 1
    return "".join(out)


want_banner = expect(open(banner_f, "rb").read())
want_reply = expect(open(reply_f, "rb").read())
bad, lines, values = 0, 0, []
with open(log, "rb") as f:
    for no, b in enumerate(f, 1):
        lines += 1
        try:
            line = b.decode("ascii")
            if not line.endswith("\n"):
                raise ValueError("no newline at the end")
            line = line[:-1]
            m = PREFIX.match(line)
            if not m:
                raise ValueError("no 'TIMESTAMP mxguard[PID]: ' prefix")
            pairs = parse(line[m.end():])
        except (ValueError, UnicodeError) as e:
            bad += 1
            print("line %d does not parse (%s): %r" % (no, e, b[:300]))
            continue
        values.append(pairs)
print("%d lines, %d do not parse" % (lines, bad))
if lines < 20 or bad:
    sys.exit(1)

ok = True
# the banner: the upstream's greeting line, decoded, is "220 " + banner
hits = [p for p in values if any(v == "220 " + want_banner for v in p.values())]
print("banner round-trips in %d line(s): %s" % (len(hits), [p.get("event") for p in hits]))
ok &= len(hits) >= 1
# the end-of-data reply: in event=delivery as "250 " + text, in
# event=message as the text
d = [p for p in values if p.get("event") == "delivery" and p.get("domains") == "hostile.test"]
print("event=delivery reply round-trips: %s" % (len(d) == 1 and d[0].get("reply") == "250 " + want_reply))
ok &= len(d) == 1 and d[0].get("reply") == "250 " + want_reply
m = [p for p in values if p.get("event") == "message"]
print("event=message reply round-trips: %s" % (len(m) == 1 and m[0].get("reply") == want_reply))
ok &= len(m) == 1 and m[0].get("reply") == want_reply
if not ok:
    print("want banner %r" % want_banner)
    print("want reply  %r" % want_reply)
    for p in values:
        for v in p.values():
            if "hostile" in v or "unterminated" in v:
                print("  have %r" % v)
sys.exit(0 if ok else 1)
EOF
python3 "$T/logfmt.py" "$MXLOG" "$T/banner.bin" "$T/reply.bin" >"$T/logfmt.out" 2>&1
rc=$?
sed 's/^/  logfmt: /' "$T/logfmt.out" | head -n 40 >&2
assert "every mxguard log line is strict logfmt; hostile peer text round-trips" [ "$rc" = 0 ]
# the parser is strict, not blind: it refuses what it must
assert "the parser refuses a broken line" not python3 -c '
import sys; sys.argv[1:] = ["/dev/null", "/dev/null", "/dev/null"]
src = open("'"$T"'/logfmt.py").read().split("\ndef expect")[0]
exec(src)
for s in ["a=b c", "a=\"x", "a=b=c", "a=\"\\x\"", "a=b a=c", "1a=b", "a=\"\\ud800\""]:
    try:
        parse(s)
    except (ValueError, UnicodeError):
        continue
    sys.exit(0)     # accepted: the assertion fails
sys.exit(1)
'
pass "strict logfmt: $(grep -E '^[0-9]+ lines' "$T/logfmt.out"); banner and reply round-trip"
