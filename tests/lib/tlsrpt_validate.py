#!/usr/bin/python3
"""tlsrpt_validate.py - checks an SMTP TLS report as its receiver would
(RFC 8460).  Test code only; python3's standard library, no jsonschema.

  tlsrpt_validate.py report FILE [--domain D]   JSON, or gzip JSON (1f 8b)
  tlsrpt_validate.py post META BODY [--domain D]  an https POST as
                                                  tests/lib/tlsrpt_https.py
                                                  stores it
  tlsrpt_validate.py mail FILE [--domain D]     a mailto message (RFC 5322)

Section 4 (the JSON): only the section 4.4 keys, each of its JSON type;
date-range one UTC day, 00:00:00Z to 23:59:59Z, RFC 3339; one policy
domain per report; policy-type sts, tlsa or no-policy-found; an sts
policy-string the policy's lines, a tlsa one TLSA records in presentation
form; result-type from section 4.3's list, certificate-expired not for a
certificate its failure-reason-code says is not yet valid (4.3.2.2); IP
addresses that parse;
failed-session-count at least 1 and no more, summed, than the summary's
failures.  Section 5.1: the file name's ABNF, its policy domain and its
timestamps those of the JSON.  Section 5.3 (mail): Subject, the
TLS-Report-Domain and TLS-Report-Submitter fields, multipart/report with
report-type "tlsrpt", the report as application/tlsrpt+gzip (or +json),
a DKIM-Signature without l= whose h= covers the report's fields.
Section 5.4 (https): POST, Content-Type application/tlsrpt+gzip or +json.
Exit 0 when sound, 1 with every deviation on stderr.
"""
import datetime
import email
import email.policy
import gzip
import ipaddress
import json
import re
import sys

RESULT_TYPES = {
    "starttls-not-supported", "certificate-host-mismatch",
    "certificate-expired", "certificate-not-trusted", "validation-failure",
    "tlsa-invalid", "dnssec-invalid", "dane-required",
    "sts-policy-fetch-error", "sts-policy-invalid", "sts-webpki-invalid",
}
TOP = {"organization-name": str, "date-range": dict, "contact-info": str,
       "report-id": str, "policies": list}
POLICY = {"policy-type": str, "policy-string": list, "policy-domain": str,
          "mx-host": list}
SUMMARY = {"total-successful-session-count": int,
           "total-failure-session-count": int}
DETAIL = {"result-type": str, "sending-mta-ip": str,
          "receiving-mx-hostname": str, "receiving-mx-helo": str,
          "receiving-ip": str, "failed-session-count": int,
          "additional-information": str, "failure-reason-code": str}
LDH = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                 r"\.)*[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?$")
TLSA = re.compile(r"^[0-9]{1,3} [0-9]{1,3} [0-9]{1,3} [0-9A-Fa-f]+$")
STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
FILENAME = re.compile(r"^(?P<sender>[^!]+)!(?P<domain>[^!]+)!(?P<begin>\d+)!"
                      r"(?P<end>\d+)(!(?P<uid>[A-Za-z0-9]+))?"
                      r"\.(?P<ext>json|json\.gz)$")

errors = []


def bad(msg):
    errors.append(msg)


def keys(obj, spec, where, required):
    if not isinstance(obj, dict):
        bad("%s: not an object" % where)
        return False
    for k in obj:
        if k not in spec:
            bad("%s: key %r is not in RFC 8460 section 4.4" % (where, k))
    for k, t in spec.items():
        if k not in obj:
            if k in required:
                bad("%s: required key %r missing" % (where, k))
            continue
        v = obj[k]
        # a JSON true is a python int: not a count
        if not isinstance(v, t) or (t is int and isinstance(v, bool)):
            bad("%s: %r is %s, not %s" % (where, k, type(v).__name__,
                                         t.__name__))
    return True


def stamp(s, where):
    if not isinstance(s, str) or not STAMP.match(s):
        bad("%s: %r is not an RFC 3339 UTC date-time" % (where, s))
        return None
    try:
        return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=datetime.timezone.utc)
    except ValueError:
        bad("%s: %r is no date" % (where, s))
        return None


def ip(s, where):
    try:
        ipaddress.ip_address(s)
    except ValueError:
        bad("%s: %r is not an IP address" % (where, s))


def check_policy(i, el, domain):
    w = "policies[%d]" % i
    if not keys(el, {"policy": dict, "summary": dict,
                     "failure-details": list}, w, {"policy", "summary"}):
        return None
    pol, summ = el.get("policy"), el.get("summary")
    if isinstance(pol, dict):
        keys(pol, POLICY, w + ".policy", {"policy-type", "policy-domain"})
        t = pol.get("policy-type")
        if t not in ("sts", "tlsa", "no-policy-found"):
            bad("%s.policy: policy-type %r" % (w, t))
        strs = pol.get("policy-string", [])
        mx = pol.get("mx-host", [])
        for arr, name in ((strs, "policy-string"), (mx, "mx-host")):
            if isinstance(arr, list) and not all(isinstance(s, str)
                                                 for s in arr):
                bad("%s.policy: %s holds a non-string" % (w, name))
        if t == "sts":
            if not strs or strs[0] != "version: STSv1" or \
                    not any(s.startswith("mode: ") for s in strs) or \
                    not any(s.startswith("max_age: ") for s in strs):
                bad("%s.policy: sts policy-string is not the policy's "
                    "lines: %r" % (w, strs))
        elif t == "tlsa":
            if not strs:
                bad("%s.policy: tlsa without its TLSA records" % w)
            for s in strs:
                if not TLSA.match(str(s)):
                    bad("%s.policy: %r is no TLSA record" % (w, s))
        elif t == "no-policy-found" and (strs or mx):
            bad("%s.policy: no-policy-found with a policy or mx-host" % w)
        d = pol.get("policy-domain")
        if domain is not None and d != domain:
            bad("%s.policy: policy-domain %r, the report's is %r" %
                (w, d, domain))
        if isinstance(d, str) and not LDH.match(d):
            bad("%s.policy: policy-domain %r is no host name" % (w, d))
    fails = 0
    if isinstance(summ, dict):
        keys(summ, SUMMARY, w + ".summary", set(SUMMARY))
        for k in SUMMARY:
            if isinstance(summ.get(k), int) and summ[k] < 0:
                bad("%s.summary: %s < 0" % (w, k))
        fails = summ.get("total-failure-session-count", 0)
    total = 0
    for j, fd in enumerate(el.get("failure-details", [])):
        fw = "%s.failure-details[%d]" % (w, j)
        if not keys(fd, DETAIL, fw, {"result-type", "failed-session-count"}):
            continue
        if fd.get("result-type") not in RESULT_TYPES:
            bad("%s: result-type %r is not in section 4.3" %
                (fw, fd.get("result-type")))
        # section 4.3.2.2: certificate-expired is a certificate that has
        # expired; one not yet valid is another certificate failure
        # (certificate-not-trusted covers those)
        why = " ".join(str(fd.get(k, "")) for k in
                       ("failure-reason-code", "additional-information"))
        if fd.get("result-type") == "certificate-expired" and \
                re.search(r"not\s+yet\s+valid", why, re.I):
            bad("%s: certificate-expired for a certificate not yet valid "
                "(%r)" % (fw, why.strip()))
        for k in ("sending-mta-ip", "receiving-ip"):
            if k in fd:
                ip(fd[k], fw + "." + k)
        n = fd.get("failed-session-count")
        if isinstance(n, int):
            if n < 1:
                bad("%s: failed-session-count %d" % (fw, n))
            total += n
        ai = fd.get("additional-information")
        if ai is not None and not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", ai):
            bad("%s: additional-information %r is no URI" % (fw, ai))
    if isinstance(fails, int) and total > fails:
        bad("%s: failure-details count %d sessions, the summary %d" %
            (w, total, fails))
    if "failure-details" in el and not el["failure-details"]:
        bad("%s: an empty failure-details" % w)
    return pol.get("policy-domain") if isinstance(pol, dict) else None


def check_report(raw, domain=None):
    """raw: bytes, JSON or gzip JSON.  Returns the report."""
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    try:
        text = raw.decode("utf-8")
        r = json.loads(text)
    except (UnicodeDecodeError, ValueError) as e:
        bad("not UTF-8 JSON: %s" % e)
        return None
    if not keys(r, TOP, "report", set(TOP)):
        return None
    dr = r.get("date-range")
    t0 = t1 = None
    if isinstance(dr, dict):
        keys(dr, {"start-datetime": str, "end-datetime": str}, "date-range",
             {"start-datetime", "end-datetime"})
        t0 = stamp(dr.get("start-datetime"), "start-datetime")
        t1 = stamp(dr.get("end-datetime"), "end-datetime")
        if t0 and t1:
            if (t0.hour, t0.minute, t0.second) != (0, 0, 0) or \
                    t1 - t0 != datetime.timedelta(seconds=86399):
                bad("date-range %s .. %s is not one UTC day" % (t0, t1))
    for k in ("organization-name", "contact-info", "report-id"):
        if isinstance(r.get(k), str) and not r[k]:
            bad("%s is empty" % k)
    pols = r.get("policies")
    if isinstance(pols, list):
        if not pols:
            bad("policies is empty")
        seen = set()
        first = domain
        for i, el in enumerate(pols):
            d = check_policy(i, el, first)
            if first is None:
                first = d
            if isinstance(el, dict):
                p = json.dumps(el.get("policy"), sort_keys=True)
                if p in seen:
                    bad("policies[%d]: the same policy twice" % i)
                seen.add(p)
        r["_domain"] = first
    r["_t0"], r["_t1"] = t0, t1
    return r


def check_filename(name, r, domain):
    m = FILENAME.match(name or "")
    if m is None:
        bad("file name %r breaks section 5.1's ABNF" % name)
        return None
    if not LDH.match(m.group("sender")):
        bad("file name: sender %r is no domain" % m.group("sender"))
    if domain is not None and m.group("domain") != domain:
        bad("file name: policy-domain %r, not %r" % (m.group("domain"),
                                                       domain))
    if r is not None and r.get("_t0") and r.get("_t1"):
        if int(m.group("begin")) != int(r["_t0"].timestamp()) or \
                int(m.group("end")) != int(r["_t1"].timestamp()):
            bad("file name: timestamps %s!%s are not the date-range's" %
                (m.group("begin"), m.group("end")))
    return m


def check_post(meta, body, domain):
    lines = meta.decode("latin-1").splitlines()
    if not lines or not re.match(r"^POST \S+ HTTP/1\.[01]$", lines[0]):
        bad("https: not a POST: %r" % (lines[:1],))
    ctype = [ln.split(":", 1)[1].strip() for ln in lines[1:]
             if ln.lower().startswith("content-type:")]
    if len(ctype) != 1 or ctype[0].lower() not in (
            "application/tlsrpt+gzip", "application/tlsrpt+json"):
        bad("https: Content-Type %r" % ctype)
    elif ctype[0].lower() == "application/tlsrpt+gzip" and \
            body[:2] != b"\x1f\x8b":
        bad("https: application/tlsrpt+gzip but the body is no gzip")
    return check_report(body, domain)


def check_mail(raw, domain):
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    for h in ("From", "To", "Date", "Subject", "TLS-Report-Domain",
              "TLS-Report-Submitter", "MIME-Version", "Content-Type",
              "DKIM-Signature"):
        if len(msg.get_all(h, [])) != 1:
            bad("mail: %d %s fields, not one" % (len(msg.get_all(h, [])), h))
    subj = " ".join(str(msg.get("Subject", "")).split())
    m = re.match(r"^Report Domain: (\S+) Submitter: (\S+) "
                 r"Report-ID: <([^<>@\s]+@[^<>@\s]+)>$", subj)
    rd = str(msg.get("TLS-Report-Domain", "")).strip()
    rs = str(msg.get("TLS-Report-Submitter", "")).strip()
    if m is None:
        bad("mail: Subject %r is not section 5.3's" % subj)
    elif m.group(1) != rd or m.group(2) != rs:
        bad("mail: Subject names %s/%s, the fields %s/%s" %
            (m.group(1), m.group(2), rd, rs))
    if domain is not None and rd != domain:
        bad("mail: TLS-Report-Domain %r, not %r" % (rd, domain))
    if msg.get_content_type() != "multipart/report" or \
            msg.get_param("report-type") != "tlsrpt":
        bad("mail: Content-Type %r" % msg.get("Content-Type"))
    sig = re.sub(r"\s+", "", str(msg.get("DKIM-Signature", "")))
    tags = dict(t.split("=", 1) for t in sig.split(";") if "=" in t)
    if "l" in tags:
        bad("mail: DKIM-Signature has an l= tag (section 5.3)")
    signed = set(tags.get("h", "").lower().split(":"))
    for h in ("from", "subject", "tls-report-domain",
              "tls-report-submitter", "content-type"):
        if h not in signed:
            bad("mail: DKIM h= does not cover %s" % h)
    reports = [p for p in msg.walk() if p.get_content_type() in
               ("application/tlsrpt+gzip", "application/tlsrpt+json")]
    if len(reports) != 1:
        bad("mail: %d report parts, not one" % len(reports))
        return None
    part = reports[0]
    body = part.get_payload(decode=True)
    if part.get_content_type() == "application/tlsrpt+gzip" and \
            body[:2] != b"\x1f\x8b":
        bad("mail: application/tlsrpt+gzip but the part is no gzip")
    r = check_report(body, domain or rd)
    fm = check_filename(part.get_filename(), r, rd)
    if fm is not None and fm.group("sender") != rs:
        # section 5.1: the sender is the domain that made the report
        bad("mail: file name sender %r, TLS-Report-Submitter %r" %
            (fm.group("sender"), rs))
    if r is not None and r.get("_domain") not in (None, rd):
        bad("mail: the report is of %r, the mail of %r" % (r["_domain"], rd))
    return r


def main(argv):
    domain = None
    if "--domain" in argv:
        i = argv.index("--domain")
        domain = argv[i + 1]
        del argv[i:i + 2]
    if len(argv) < 3 or argv[1] not in ("report", "post", "mail"):
        sys.stderr.write(__doc__)
        return 2
    if argv[1] == "report":
        check_report(open(argv[2], "rb").read(), domain)
    elif argv[1] == "post":
        check_post(open(argv[2], "rb").read(), open(argv[3], "rb").read(),
                   domain)
    else:
        check_mail(open(argv[2], "rb").read(), domain)
    for e in errors:
        sys.stderr.write("tlsrpt_validate: %s\n" % e)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
