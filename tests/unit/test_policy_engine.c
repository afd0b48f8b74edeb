/*
 * test_policy_engine.c - policy_lookup() decisions end to end on the event
 * loop, against a fake DNS server in the process and a pre-filled LMDB
 * policy cache (the HTTPS fetch itself is covered by tests/ns/3*.sh):
 * enforce with a matching MX, MX not in the policy, destination not an MX,
 * testing mode, TXT gone but cached policy in force, TXT id changed and
 * fetch failing (cached kept), no policy, overrides by address and domain,
 * invalid and internationalised domains, MTA-STS disabled; the TLS
 * history of an MX host whose address lookup failed, where no host owns
 * the destination; a domain whose
 * _mta-sts/mta-sts names are no DNS names (refused before any query); a
 * cached policy within the refresh margin refreshed also when its TXT
 * record is missing or the lookup fails (SERVFAIL), a failed refresh
 * leaving it as it was; the refresh timer refreshing, with no lookup, a
 * recently used policy within the margin (not an idle or a fresh one);
 * the dane=not-applicable note while the resolver does not validate, and
 * match= with Postfix's nexthop, dot-nexthop and hostname; stores that
 * cannot answer (a read error, a store that did not open) giving the
 * strictest verdict they could have informed, never "no record"; a
 * destination behind the well-known NAT64 prefix judged as its IPv4
 * address; a cached policy outliving a step of the wall clock forward;
 * an expired cached policy fetched again under its id when the TXT lookup
 * fails or finds no record (http_get() mocked for those policy hosts:
 * struct mock_http), never for a domain with nothing cached; each
 * allocation of a lookup failing in turn never giving a verdict below the
 * domain's policy.
 */
// WRAP: mdb_get time http_get http_cancel malloc calloc realloc strdup strndup clock_gettime
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>

#include "core/config.h"
#include "core/ev.h"
#include "core/log.h"
#include "core/netaddr.h"
#include "core/stats.h"
#include "policy/cache.h"
#include "policy/dane.h"
#include "policy/dns.h"
#include "policy/history.h"
#include "policy/http.h"
#include "policy/policy.h"
#include "policy/tlsrpt.h"
#include "policy/verdict_tls.h"

#include "dnsmsg.h"
#include "mdbfail.h"	/* store reads fail while set: test_store_read_error */
#include "tests/unit/timestep.h"
#include "tests/unit/suspend.h"

/* allocation failures on demand (test_oom_never_below_policy) */
#include "allocfail.h"

char *__real_strdup(const char *);
char *__wrap_strdup(const char *);
char *__real_strndup(const char *, size_t);
char *__wrap_strndup(const char *, size_t);

char *
__wrap_strdup(const char *s)
{
	return oom_now() ? NULL : __real_strdup(s);
}

char *
__wrap_strndup(const char *s, size_t n)
{
	return oom_now() ? NULL : __real_strndup(s, n);
}

/* a 247-octet domain: _mta-sts.D and mta-sts.D are longer than 253 */
static char longdom[256];
static char longtxt[270];

/* the _mta-sts.nidrot.test record: a new id at every answer (fake_read) */
static char rot_txt[64];
static int rot_n;

/* 63 TXT records at _mta-sts.tc.test that are no STSv1 record */
#define TC_JUNK1	{ "_mta-sts.tc.test", DNS_T_TXT, "x" }
#define TC_JUNK9	TC_JUNK1, TC_JUNK1, TC_JUNK1, TC_JUNK1, TC_JUNK1, \
			TC_JUNK1, TC_JUNK1, TC_JUNK1, TC_JUNK1
#define TC_JUNK63	TC_JUNK9, TC_JUNK9, TC_JUNK9, TC_JUNK9, TC_JUNK9, \
			TC_JUNK9, TC_JUNK9

/* 64 at _mta-sts.tn.test and _mta-sts.tl.test (test_txt_cut_one) */
#define TJ1(o)		{ o, DNS_T_TXT, "x" }
#define TJ8(o)		TJ1(o), TJ1(o), TJ1(o), TJ1(o), TJ1(o), TJ1(o), \
			TJ1(o), TJ1(o)
#define TJ64(o)		TJ8(o), TJ8(o), TJ8(o), TJ8(o), TJ8(o), TJ8(o), \
			TJ8(o), TJ8(o)

static const struct zrr zone[] = {
	/* 65 TXT records, one v=STSv1 record among them: first
	 * (tn.test), last (tl.test) */
	{ "tn.test", DNS_T_MX, "10 mx1.manymx.test" },
	{ "_mta-sts.tn.test", DNS_T_TXT, "v=STSv1; id=n1" },
	TJ64("_mta-sts.tn.test"),
	{ "tl.test", DNS_T_MX, "10 mx1.manymx.test" },
	TJ64("_mta-sts.tl.test"),
	{ "_mta-sts.tl.test", DNS_T_TXT, "v=STSv1; id=l1" },
	/* 65 TXT records, one more than an answer keeps (DNS_MAX_RR): a
	 * v=STSv1 record first, another last (test_txt_cut) */
	{ "tc.test", DNS_T_MX, "10 mx1.manymx.test" },
	{ "_mta-sts.tc.test", DNS_T_TXT, "v=STSv1; id=t1" },
	TC_JUNK63,
	{ "_mta-sts.tc.test", DNS_T_TXT, "v=STSv1; id=t2" },
	{ "enf.test", DNS_T_MX, "10 mx1.enf.test" },
	{ "enf.test", DNS_T_MX, "20 rogue.other.test" },
	{ "mx1.enf.test", DNS_T_A, "192.0.2.1" },
	{ "rogue.other.test", DNS_T_A, "192.0.2.66" },
	{ "_mta-sts.enf.test", DNS_T_TXT, "v=STSv1; id=one" },
	{ "_smtp._tls.enf.test", DNS_T_TXT,
	    "v=TLSRPTv1; rua=https://rpt.enf.test/tlsrpt" },
	/* a record the parser refuses with an error text that holds
	 * double quotes (test_tlsrpt_bad_record_logged) */
	{ "_smtp._tls.badrpt.test", DNS_T_TXT,
	    "v=TLSRPTv1; rua=mailto:r@badrpt.test?subject=x" },
	/* test_dane_no_starttls_reported */
	{ "_smtp._tls.danerpt.test", DNS_T_TXT,
	    "v=TLSRPTv1; rua=https://rpt.danerpt.test/" },
	/* test_tlsrpt_sending_ip_private */
	{ "_smtp._tls.srcip.test", DNS_T_TXT,
	    "v=TLSRPTv1; rua=https://rpt.srcip.test/" },
	/* test_tlsrpt_receiving_ip_nat64 */
	{ "_smtp._tls.dstip.test", DNS_T_TXT,
	    "v=TLSRPTv1; rua=https://rpt.dstip.test/" },
	{ "tst.test", DNS_T_MX, "10 mx.tst.test" },
	{ "mx.tst.test", DNS_T_A, "192.0.2.2" },
	{ "_mta-sts.tst.test", DNS_T_TXT, "v=STSv1; id=t1" },
	{ "gone.test", DNS_T_MX, "10 mx.gone.test" },
	{ "mx.gone.test", DNS_T_A, "192.0.2.3" },
	{ "newid.test", DNS_T_MX, "10 mx.newid.test" },
	{ "mx.newid.test", DNS_T_A, "192.0.2.4" },
	{ "_mta-sts.newid.test", DNS_T_TXT, "v=STSv1; id=two" },
	{ "plain.test", DNS_T_MX, "10 mx.plain.test" },
	{ "mx.plain.test", DNS_T_A, "192.0.2.5" },
	{ "xn--bcher-kva.test", DNS_T_MX, "10 mx.plain.test" },
	{ "refresh.test", DNS_T_MX, "10 mx.refresh.test" },
	{ "mx.refresh.test", DNS_T_A, "192.0.2.6" },
	{ "_mta-sts.refresh.test", DNS_T_TXT, "v=STSv1; id=r1" },
	{ "shared.test", DNS_T_MX, "10 a.shared.test" },
	{ "shared.test", DNS_T_MX, "20 b.shared.test" },
	{ "a.shared.test", DNS_T_A, "192.0.2.8" },
	{ "b.shared.test", DNS_T_A, "192.0.2.8" },
	{ "refsupp.test", DNS_T_MX, "10 mx.refsupp.test" },
	{ "mx.refsupp.test", DNS_T_A, "192.0.2.11" },
	{ "refsf.test", DNS_T_MX, "10 mx.refsf.test" },
	{ "mx.refsf.test", DNS_T_A, "192.0.2.12" },
	{ "_mta-sts.refsf.test", T_SERVFAIL, "" },
	{ longdom, DNS_T_MX, "10 mx.plain.test" },
	{ longtxt, DNS_T_TXT, "v=STSv1; id=long1" },
	{ "expired.test", DNS_T_MX, "10 mx.expired.test" },
	/* testing mode, the MX host listed: the report check passes */
	{ "tstok.test", DNS_T_MX, "10 mx.tstok.test" },
	{ "mx.tstok.test", DNS_T_A, "192.0.2.10" },
	{ "_mta-sts.tstok.test", DNS_T_TXT, "v=STSv1; id=k1" },
	/* queries for mx.slow.test are never answered (fake_read drops) */
	{ "slow.test", DNS_T_MX, "10 mx.slow.test" },
	{ "mx.slow.test", DNS_T_A, "192.0.2.11" },
	{ "mx.expired.test", DNS_T_A, "192.0.2.7" },
	/* the background refresh: due, idle (not used in a max_age), fresh */
	{ "_mta-sts.bgdue.test", DNS_T_TXT, "v=STSv1; id=bd2" },
	{ "_mta-sts.bgidle.test", DNS_T_TXT, "v=STSv1; id=bi1" },
	{ "_mta-sts.bgfresh.test", DNS_T_TXT, "v=STSv1; id=bf1" },
	/* signed zones (AD set): DANE against MTA-STS */
	{ "unus.signed.test", DNS_T_MX, "10 mx.unus.signed.test" },
	{ "mx.unus.signed.test", DNS_T_A, "192.0.2.40" },
	{ "_25._tcp.mx.unus.signed.test", DNS_T_TLSA, "1 1 1 abababababababababababababababababababababababababababababababab" },
	{ "usab.signed.test", DNS_T_MX, "10 mx.usab.signed.test" },
	{ "mx.usab.signed.test", DNS_T_A, "192.0.2.41" },
	{ "_25._tcp.mx.usab.signed.test", DNS_T_TLSA, "3 1 1 abababababababababababababababababababababababababababababababab" },
	{ "onlyunus.signed.test", DNS_T_MX, "10 mx.onlyunus.signed.test" },
	{ "mx.onlyunus.signed.test", DNS_T_A, "192.0.2.42" },
	{ "_25._tcp.mx.onlyunus.signed.test", DNS_T_TLSA, "1 1 1 abababababababababababababababababababababababababababababababab" },
	{ "mxfail.signed.test", T_SERVFAIL, "" },
	/* a secure MX RRset whose host the enforce policy does not list */
	{ "unlisted.signed.test", DNS_T_MX, "10 mx.unlisted.signed.test" },
	{ "mx.unlisted.signed.test", DNS_T_A, "192.0.2.44" },
	{ "_25._tcp.mx.unlisted.signed.test", DNS_T_TLSA, "3 1 1 abababababababababababababababababababababababababababababababab" },
	/* an unsigned MX RRset naming a host of a signed zone with usable
	 * TLSA records, and an MTA-STS testing policy that does not list it
	 * (test_insecure_mx_dane_over_testing) */
	{ "stsdanet.test", DNS_T_MX, "10 mx.usab.signed.test" },
	/* null MX (RFC 7505), signed and not */
	{ "nullmx.signed.test", DNS_T_MX, "0 " },
	{ "nullmx.test", DNS_T_MX, "0 " },
	/* an MTA-STS enforce domain in an unsigned zone: the attacker on
	 * the path adds an MX host of a signed zone of its own, with the
	 * real MX's address and TLSA records for its own key */
	{ "stsdane.test", DNS_T_MX, "10 mx.stsdane.test" },
	{ "stsdane.test", DNS_T_MX, "5 evil.signed.test" },
	{ "mx.stsdane.test", DNS_T_A, "192.0.2.50" },
	{ "evil.signed.test", DNS_T_A, "192.0.2.50" },
	{ "_25._tcp.evil.signed.test", DNS_T_TLSA, "3 1 1 cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd" },
	/* a signed MX host that is a CNAME, answered one link at a time
	 * (the client asks the target itself); the TLSA records are at the
	 * expanded name only (RFC 7672 section 2.2.2) */
	{ "split.signed.test", DNS_T_MX, "10 mx.split.signed.test" },
	{ "mx.split.signed.test", DNS_T_CNAME, "real.split.signed.test" },
	{ "real.split.signed.test", DNS_T_A, "192.0.2.60" },
	{ "_25._tcp.real.split.signed.test", DNS_T_TLSA, "3 1 1 abababababababababababababababababababababababababababababababab" },
	/* a lookup held open by a slow MX walk while another stores a
	 * newer policy */
	{ "race.test", DNS_T_MX, "10 mx.slow.test" },
	{ "_mta-sts.race.test", T_SERVFAIL, "" },
	/* a first fetch held back while a later one (another worker's)
	 * stores a newer policy (test_held_back_fetch_not_over_newer) */
	{ "stale.test", DNS_T_MX, "10 mx.stale.test" },
	{ "mx.stale.test", DNS_T_A, "192.0.2.21" },
	{ "_mta-sts.stale.test", DNS_T_TXT, "v=STSv1; id=s1" },
	/* expired cached enforce policies, the TXT lookup failing
	 * (SERVFAIL) or finding no record (NXDOMAIN); the policy hosts are
	 * the mock's (struct mock_http) */
	{ "expsf.test", DNS_T_MX, "10 mx.expsf.test" },
	{ "mx.expsf.test", DNS_T_A, "192.0.2.70" },
	{ "_mta-sts.expsf.test", T_SERVFAIL, "" },
	{ "expnx.test", DNS_T_MX, "10 mx.expnx.test" },
	{ "mx.expnx.test", DNS_T_A, "192.0.2.71" },
	{ "expfail.test", DNS_T_MX, "10 mx.expfail.test" },
	{ "mx.expfail.test", DNS_T_A, "192.0.2.72" },
	{ "_mta-sts.expfail.test", T_SERVFAIL, "" },
	{ "exprl.test", DNS_T_MX, "10 mx.exprl.test" },
	{ "mx.exprl.test", DNS_T_A, "192.0.2.74" },
	{ "_mta-sts.exprl.test", T_SERVFAIL, "" },
	/* a policy file the strict ABNF refused (test_lenient_policy) */
	{ "lenient.test", DNS_T_MX, "10 mx.lenient.test" },
	{ "mx.lenient.test", DNS_T_A, "192.0.2.75" },
	{ "_mta-sts.lenient.test", DNS_T_TXT, "v=STSv1; ID = len1" },
	/* nothing cached, the TXT lookup failing */
	{ "nocache.test", DNS_T_MX, "10 mx.nocache.test" },
	{ "mx.nocache.test", DNS_T_A, "192.0.2.73" },
	{ "_mta-sts.nocache.test", T_SERVFAIL, "" },
	/* a TXT record with an id other than the cached one, and no
	 * policy host (mta-sts.usedmark.test does not resolve) */
	{ "usedmark.test", DNS_T_MX, "10 mx.usedmark.test" },
	{ "mx.usedmark.test", DNS_T_A, "192.0.2.14" },
	{ "_mta-sts.usedmark.test", DNS_T_TXT, "v=STSv1; id=spoofed2" },
	/* the MX host's address lookup fails (an attacker on the path
	 * answered the MTA's with an address of its own and drops the
	 * gateway's); mx.hok.test resolves, to another address than the
	 * one the MTA connects to (a relay's) */
	{ "hfail.test", DNS_T_MX, "10 mx.hfail.test" },
	{ "mx.hfail.test", T_SERVFAIL, "" },
	{ "hok.test", DNS_T_MX, "10 mx.hok.test" },
	{ "mx.hok.test", DNS_T_A, "192.0.2.91" },
	/* a valid enforce policy cached under id "one", and a TXT record
	 * with another id (an attacker's on every answer, or the domain's
	 * own while its policy host is down); the policy host is the
	 * mock's.  nidnc.test: the same with nothing cached; nidrl.test: the
	 * same as nidbo.test, for the reload */
	{ "nidbo.test", DNS_T_MX, "10 mx.nidbo.test" },
	{ "mx.nidbo.test", DNS_T_A, "192.0.2.15" },
	{ "_mta-sts.nidbo.test", DNS_T_TXT, "v=STSv1; id=new2" },
	/* test_new_id_backoff_restarts_after_success */
	{ "nidok.test", DNS_T_MX, "10 mx.nidok.test" },
	{ "mx.nidok.test", DNS_T_A, "192.0.2.76" },
	{ "_mta-sts.nidok.test", DNS_T_TXT, "v=STSv1; id=ok2" },
	{ "nidnc.test", DNS_T_MX, "10 mx.nidnc.test" },
	{ "mx.nidnc.test", DNS_T_A, "192.0.2.16" },
	{ "_mta-sts.nidnc.test", DNS_T_TXT, "v=STSv1; id=nc1" },
	{ "nidrl.test", DNS_T_MX, "10 mx.nidrl.test" },
	{ "mx.nidrl.test", DNS_T_A, "192.0.2.18" },
	{ "_mta-sts.nidrl.test", DNS_T_TXT, "v=STSv1; id=rl2" },
	/* nidrj.test, nidrb.test: as nidrl.test, a fetch under the new id
	 * running across a reload (test_reload_fetch_not_joined,
	 * test_reload_old_fetch_no_backoff) */
	{ "nidrj.test", DNS_T_MX, "10 mx.nidrj.test" },
	{ "mx.nidrj.test", DNS_T_A, "192.0.2.19" },
	{ "_mta-sts.nidrj.test", DNS_T_TXT, "v=STSv1; id=rj2" },
	{ "nidrb.test", DNS_T_MX, "10 mx.nidrb.test" },
	{ "mx.nidrb.test", DNS_T_A, "192.0.2.20" },
	{ "_mta-sts.nidrb.test", DNS_T_TXT, "v=STSv1; id=rb2" },
	/* nidrk.test: a fetch across a reload that succeeds through the
	 * replaced CA store (test_reload_old_fetch_not_kept) */
	{ "nidrk.test", DNS_T_MX, "10 mx.nidrk.test" },
	{ "mx.nidrk.test", DNS_T_A, "192.0.2.22" },
	{ "_mta-sts.nidrk.test", DNS_T_TXT, "v=STSv1; id=rk2" },
	{ "nidrot.test", DNS_T_MX, "10 mx.nidrot.test" },
	{ "mx.nidrot.test", DNS_T_A, "192.0.2.17" },
	{ "_mta-sts.nidrot.test", DNS_T_TXT, rot_txt },
	/* an enforce policy of 70 mx patterns (test_many_mx_patterns):
	 * mx1 in the first 64, mx70 past them */
	{ "manymx.test", DNS_T_MX, "10 mx1.manymx.test" },
	{ "manymx.test", DNS_T_MX, "20 mx70.manymx.test" },
	{ "mx1.manymx.test", DNS_T_A, "192.0.2.77" },
	{ "mx70.manymx.test", DNS_T_A, "192.0.2.78" },
	{ "_mta-sts.manymx.test", DNS_T_TXT, "v=STSv1; id=mm1" },
	{ "manymxt.test", DNS_T_MX, "10 mx70.manymx.test" },
	{ "_mta-sts.manymxt.test", DNS_T_TXT, "v=STSv1; id=mt1" },
	{ "manymxc.test", DNS_T_MX, "10 mx70.manymx.test" },
	{ "_mta-sts.manymxc.test", DNS_T_TXT, "v=STSv1; id=mc1" },
	/* 17 MX hosts, one more than the walk keeps (MX_MAX_HOSTS): the
	 * least preferred owns the destination (test_mx_hosts_unkept) */
	{ "bigmx.test", DNS_T_MX, "10 a01.bigmx.test" },
	{ "bigmx.test", DNS_T_MX, "10 a02.bigmx.test" },
	{ "bigmx.test", DNS_T_MX, "10 a03.bigmx.test" },
	{ "bigmx.test", DNS_T_MX, "10 a04.bigmx.test" },
	{ "bigmx.test", DNS_T_MX, "10 a05.bigmx.test" },
	{ "bigmx.test", DNS_T_MX, "10 a06.bigmx.test" },
	{ "bigmx.test", DNS_T_MX, "10 a07.bigmx.test" },
	{ "bigmx.test", DNS_T_MX, "10 a08.bigmx.test" },
	{ "bigmx.test", DNS_T_MX, "10 a09.bigmx.test" },
	{ "bigmx.test", DNS_T_MX, "10 a10.bigmx.test" },
	{ "bigmx.test", DNS_T_MX, "10 a11.bigmx.test" },
	{ "bigmx.test", DNS_T_MX, "10 a12.bigmx.test" },
	{ "bigmx.test", DNS_T_MX, "10 a13.bigmx.test" },
	{ "bigmx.test", DNS_T_MX, "10 a14.bigmx.test" },
	{ "bigmx.test", DNS_T_MX, "10 a15.bigmx.test" },
	{ "bigmx.test", DNS_T_MX, "10 a16.bigmx.test" },
	{ "bigmx.test", DNS_T_MX, "90 z.bigmx.test" },
	{ "a01.bigmx.test", DNS_T_A, "192.0.2.80" },
	{ "z.bigmx.test", DNS_T_A, "192.0.2.79" },
	{ "_mta-sts.bigmx.test", DNS_T_TXT, "v=STSv1; id=bm1" },
	{ "_mta-sts.bigmxt.test", DNS_T_TXT, "v=STSv1; id=bt1" },
	{ "bigmxt.test", DNS_T_MX, "10 a01.bigmx.test" },
	{ "bigmxt.test", DNS_T_MX, "10 a02.bigmx.test" },
	{ "bigmxt.test", DNS_T_MX, "10 a03.bigmx.test" },
	{ "bigmxt.test", DNS_T_MX, "10 a04.bigmx.test" },
	{ "bigmxt.test", DNS_T_MX, "10 a05.bigmx.test" },
	{ "bigmxt.test", DNS_T_MX, "10 a06.bigmx.test" },
	{ "bigmxt.test", DNS_T_MX, "10 a07.bigmx.test" },
	{ "bigmxt.test", DNS_T_MX, "10 a08.bigmx.test" },
	{ "bigmxt.test", DNS_T_MX, "10 a09.bigmx.test" },
	{ "bigmxt.test", DNS_T_MX, "10 a10.bigmx.test" },
	{ "bigmxt.test", DNS_T_MX, "10 a11.bigmx.test" },
	{ "bigmxt.test", DNS_T_MX, "10 a12.bigmx.test" },
	{ "bigmxt.test", DNS_T_MX, "10 a13.bigmx.test" },
	{ "bigmxt.test", DNS_T_MX, "10 a14.bigmx.test" },
	{ "bigmxt.test", DNS_T_MX, "10 a15.bigmx.test" },
	{ "bigmxt.test", DNS_T_MX, "10 a16.bigmx.test" },
	{ "bigmxt.test", DNS_T_MX, "90 z.bigmx.test" },
	{ NULL, 0, NULL },
};

struct fake {
	int fd, port, queries;
	char names[256][512];	/* the names asked, in order */
	int nnames;
};
static struct fake fk;
static struct ev_loop *loop;
static char statedir[] = "/tmp/mxg-pol-test-XXXXXX";

static void
fake_read(int fd, int events, void *arg)
{
	unsigned char q[1500];
	struct sockaddr_storage from;
	socklen_t fl = sizeof(from);
	ssize_t n = recvfrom(fd, q, sizeof(q), 0, (struct sockaddr *)&from,
	    &fl);
	char name[512];
	int qtype;
	struct msg m;

	if (n < 17)
		return;
	fk.queries++;
	if (zone_question(q, n, name, sizeof(name), &qtype) == -1)
		return;
	if (strcasecmp(name, "mx.slow.test") == 0)
		return;		/* a black hole: the lookup never ends */
	if (fk.nnames < 256)
		snprintf(fk.names[fk.nnames++], sizeof(fk.names[0]), "%s",
		    name);
	if (strcasecmp(name, "_mta-sts.nidrot.test") == 0)
		snprintf(rot_txt, sizeof(rot_txt), "v=STSv1; id=rot%d",
		    ++rot_n);
	zone_answer(zone, q, name, qtype, &m);
	sendto(fd, m.b, (size_t)m.n, 0, (struct sockaddr *)&from, fl);
}

/*
 * http_get() for one policy host: the fetch answers body (NULL: fails)
 * from a timer, as the real one would from the loop; other hosts go to
 * the real client.  calls counts the fetches of that host.
 */
struct http_req *__real_http_get(struct ev_loop *, struct dns *, SSL_CTX *,
    const char *, const char *, uint64_t, size_t, uint32_t, http_cb *,
    void *);
void __real_http_cancel(struct http_req *);
struct http_req *__wrap_http_get(struct ev_loop *, struct dns *, SSL_CTX *,
    const char *, const char *, uint64_t, size_t, uint32_t, http_cb *,
    void *);
void __wrap_http_cancel(struct http_req *);

/* one fetch of the mock's under way */
struct mock_fetch {
	struct ev_timer	*t;
	http_cb		*cb;
	void		*arg;
	SSL_CTX		*ctx;		/* the CA store it was made with */
	int		 live;
};

static struct mock_http {
	char		 host[256];	/* empty: no mock */
	const char	*body;
	int		 calls, pending;	/* pending: fetches live */
	int		 delay;		/* ms until it answers; 0: 20 */
	int		 at_once;	/* fetches live at once; 0: one */
	int		 fail_first;	/* the first fetch's CA store is
					 * fail_ctx (one that lacks the
					 * policy host's root) */
	SSL_CTX		*fail_ctx;	/* a fetch made with it fails,
					 * whatever body */
	const char	*first_body;	/* non-NULL: what a fetch made
					 * with the first fetch's CA store
					 * gets (first_ctx: one that
					 * trusted a CA a reload removed) */
	SSL_CTX		*first_ctx;
	struct mock_fetch f[2];
} mh;

static void
mock_http_fire(void *arg)
{
	struct mock_fetch *f = arg;

	f->live = 0;
	mh.pending--;
	if (mh.first_body != NULL && f->ctx == mh.first_ctx)
		f->cb(f->arg, 0, mh.first_body, strlen(mh.first_body), NULL,
		    NULL);
	else if (mh.body != NULL && f->ctx != mh.fail_ctx)
		f->cb(f->arg, 0, mh.body, strlen(mh.body), NULL, NULL);
	else
		f->cb(f->arg, -1, NULL, 0, "sts-policy-fetch-error",
		    "connection refused (mock)");
}

struct http_req *
__wrap_http_get(struct ev_loop *l, struct dns *d, SSL_CTX *ctx,
    const char *host, const char *path, uint64_t tmo, size_t maxbody,
    uint32_t mark, http_cb *cb, void *arg)
{
	struct mock_fetch *f;

	if (mh.host[0] == '\0' || strcmp(host, mh.host) != 0)
		return __real_http_get(l, d, ctx, host, path, tmo, maxbody,
		    mark, cb, arg);
	assert_string_equal(path, "/.well-known/mta-sts.txt");
	/* one fetch at a time, unless the test allows two */
	assert_true(mh.pending < (mh.at_once > 1 ? 2 : 1));
	f = mh.f[0].live ? &mh.f[1] : &mh.f[0];
	mh.calls++;
	mh.pending++;
	if (mh.fail_first && mh.calls == 1)
		mh.fail_ctx = ctx;
	if (mh.calls == 1)
		mh.first_ctx = ctx;
	f->live = 1;
	f->cb = cb;
	f->arg = arg;
	f->ctx = ctx;
	ev_timer_arm(f->t, mh.delay ? (uint64_t)mh.delay : 20);
	return (struct http_req *)f;
}

void
__wrap_http_cancel(struct http_req *h)
{
	int i;

	for (i = 0; i < 2; i++)
		if (h != NULL && h == (struct http_req *)&mh.f[i]) {
			ev_timer_stop(mh.f[i].t);
			mh.f[i].live = 0;
			mh.pending--;
			return;
		}
	__real_http_cancel(h);
}

static void
mock_http(const char *host, const char *body)
{
	int i;

	snprintf(mh.host, sizeof(mh.host), "%s", host);
	mh.body = body;
	mh.calls = mh.pending = 0;
	for (i = 0; i < 2; i++)
		if (mh.f[i].t == NULL)
			mh.f[i].t = ev_timer_new(loop, mock_http_fire,
			    &mh.f[i]);
}

static void
mock_http_off(void)
{
	ev_timer_free(mh.f[0].t);
	ev_timer_free(mh.f[1].t);
	memset(&mh, 0, sizeof(mh));
}

static void
cache_policy_used(const char *domain, const char *id, const char *body,
    int64_t age, uint32_t max_age, int64_t unused)
{
	char err[256];
	struct sts_cache *c = sts_cache_open(statedir, err, sizeof(err));
	struct sts_cache_entry e;
	int64_t now = (int64_t)time(NULL);

	assert_non_null(c);
	memset(&e, 0, sizeof(e));
	snprintf(e.id, sizeof(e.id), "%s", id);
	e.body = (char *)body;
	e.bodylen = strlen(body);
	e.fetched = now - age;
	e.checked = e.fetched;
	e.expires = e.fetched + max_age;
	e.last_used = unused ? now - unused : 0;
	assert_int_equal(sts_cache_put(c, domain, &e), 0);
	sts_cache_close(c);
}

static void
cache_policy(const char *domain, const char *id, const char *body,
    int64_t age, uint32_t max_age)
{
	cache_policy_used(domain, id, body, age, max_age, 0);
}

static struct policy *pol;
/* settings for the next mkpolicy() */
static int cfg_require_tls, cfg_tlsrpt, cfg_rpt_private;
static uint64_t cfg_policy_timeout = 5000, cfg_dns_timeout = 2000;
static uint64_t cfg_refresh_interval;	/* 0: the default */
static int cfg_refresh_max;		/* 0: the default */
static int cfg_dns_port;		/* 0: the fake's (fk.port) */
static const char *cfg_file;		/* NULL: the defaults */

static struct config *
mkcfg(const char *const *overrides, int sts)
{
	char err[256], srv[64];
	struct config *cfg = config_load(cfg_file, err, sizeof(err));
	int i;

	if (cfg == NULL)
		fail_msg("config_load: %s", err);
	snprintf(srv, sizeof(srv), "127.0.0.1:%d",
	    cfg_dns_port ? cfg_dns_port : fk.port);
	cfg->dns_servers.v = calloc(1, sizeof(char *));
	cfg->dns_servers.v[0] = strdup(srv);
	cfg->dns_servers.n = 1;
	cfg->dns_timeout = cfg_dns_timeout;
	cfg->policy_timeout = cfg_policy_timeout;
	if (cfg_require_tls) {
		free(cfg->require_tls);
		cfg->require_tls = strdup("yes");
	}
	cfg->sts_fetch_timeout = 1500;
	if (cfg_refresh_interval)
		cfg->sts_refresh_interval = cfg_refresh_interval;
	if (cfg_refresh_max)
		cfg->sts_refresh_max = cfg_refresh_max;
	cfg->sts_enable = sts;
	cfg->tlsrpt_enable = cfg_tlsrpt;
	cfg->tlsrpt_private_destinations = cfg_rpt_private;
	free(cfg->state_dir);
	cfg->state_dir = strdup(statedir);
	for (i = 0; overrides && overrides[i]; i++) {
		cfg->tls_policy.v = realloc(cfg->tls_policy.v,
		    (size_t)(i + 1) * sizeof(char *));
		cfg->tls_policy.v[i] = strdup(overrides[i]);
		cfg->tls_policy.n = i + 1;
	}
	return cfg;
}

static struct policy *
mkpolicy(const char *const *overrides, int sts)
{
	char err[256];
	struct config *cfg = mkcfg(overrides, sts);
	struct policy *p;

	p = policy_new(loop, cfg, err, sizeof(err));
	if (p == NULL)
		fail_msg("policy_new: %s", err);
	config_free(cfg);
	return p;
}

static int
setup(void **state)
{
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	static const char *enf = "version: STSv1\nmode: enforce\n"
	    "mx: mx1.enf.test\nmax_age: 86400\n";
	static const char *tst = "version: STSv1\nmode: testing\n"
	    "mx: *.elsewhere.test\nmax_age: 86400\n";

	if (getenv("TEST_DEBUG"))
		log_init("test", 0, LOG_LVL_DEBUG);
	else
		log_init("test", 0, LOG_LVL_ERR);
	if (mkdtemp(statedir) == NULL)
		return -1;
	/* 63 + 1 + 63 + 1 + 63 + 1 + 50 + 5 octets */
	memset(longdom, 'a', 246);
	longdom[63] = longdom[127] = longdom[191] = '.';
	memcpy(longdom + 242, ".test", 6);
	snprintf(longtxt, sizeof(longtxt), "_mta-sts.%s", longdom);
	loop = ev_loop_new();
	fk.fd = socket(AF_INET, SOCK_DGRAM, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fk.fd, (struct sockaddr *)&sin, sizeof(sin)) == -1)
		return -1;
	getsockname(fk.fd, (struct sockaddr *)&sin, &sl);
	fk.port = ntohs(sin.sin_port);
	ev_fd_set(loop, fk.fd, EV_READ, fake_read, NULL);
	cache_policy("enf.test", "one", enf, 10, 86400);
	cache_policy("tst.test", "t1", tst, 10, 86400);
	cache_policy("gone.test", "g1", enf, 10, 86400);
	/* 80000 s into 86400: inside the 25 % refresh margin */
	cache_policy("refresh.test", "r1", "version: STSv1\nmode: enforce\n"
	    "mx: mx.refresh.test\nmax_age: 86400\n", 80000, 86400);
	cache_policy("shared.test", "s1", "version: STSv1\nmode: enforce\n"
	    "mx: b.shared.test\nmax_age: 86400\n", 10, 86400);
	/* expired, and no TXT record any more: no policy */
	cache_policy("expired.test", "e1", enf, 90000, 86400);
	cache_policy("tstok.test", "k1", "version: STSv1\nmode: testing\n"
	    "mx: mx.tstok.test\nmax_age: 86400\n", 10, 86400);
	cache_policy("newid.test", "one", "version: STSv1\nmode: enforce\n"
	    "mx: mx.newid.test\nmax_age: 86400\n", 10, 86400);
	/* within the refresh margin; no TXT record / its lookup fails */
	cache_policy("refsupp.test", "rs1", "version: STSv1\nmode: enforce\n"
	    "mx: mx.refsupp.test\nmax_age: 86400\n", 80000, 86400);
	cache_policy("unus.signed.test", "u1", "version: STSv1\nmode: "
	    "enforce\nmx: mx.unus.signed.test\nmax_age: 86400\n", 10, 86400);
	cache_policy("usab.signed.test", "u2", "version: STSv1\nmode: "
	    "enforce\nmx: mx.usab.signed.test\nmax_age: 86400\n", 10, 86400);
	cache_policy("unlisted.signed.test", "ul1", "version: STSv1\nmode: "
	    "enforce\nmx: mx.elsewhere.test\nmax_age: 86400\n", 10, 86400);
	cache_policy("stsdane.test", "sd1", "version: STSv1\nmode: "
	    "enforce\nmx: mx.stsdane.test\nmax_age: 86400\n", 10, 86400);
	cache_policy("stsdanet.test", "sdt1", "version: STSv1\nmode: "
	    "testing\nmx: mx.elsewhere.test\nmax_age: 86400\n", 10, 86400);
	cache_policy("refsf.test", "rf1", "version: STSv1\nmode: enforce\n"
	    "mx: mx.refsf.test\nmax_age: 86400\n", 80000, 86400);
	return 0;
}

static int
teardown(void **state)
{
	char cmd[300];

	ev_fd_del(loop, fk.fd);
	close(fk.fd);
	ev_loop_free(loop);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", statedir);
	return system(cmd) == 0 ? 0 : -1;
}

static struct policy_verdict *got_v;

static void
got(void *arg, struct policy_verdict *v)
{
	got_v = v;
	ev_loop_stop(loop);
}

static struct policy_verdict *
lookup(struct policy *p, const char *domain, const char *ip)
{
	struct sockaddr_in sin;
	struct ev_timer *guard = ev_timer_new(loop,
	    (ev_timer_cb *)ev_loop_stop, loop);

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(25);
	inet_pton(AF_INET, ip, &sin.sin_addr);
	got_v = NULL;
	assert_non_null(policy_lookup(p, domain, (struct sockaddr *)&sin,
	    sizeof(sin), "t1", got, NULL));
	assert_null(got_v);			/* never synchronous */
	ev_timer_arm(guard, 10000);
	ev_loop_run(loop);
	ev_timer_free(guard);
	assert_non_null(got_v);
	return got_v;
}

static void
test_enforce_match(void **state)
{
	struct policy *p = mkpolicy(NULL, 1);
	struct policy_verdict *v = lookup(p, "ENF.test.", "192.0.2.1");

	assert_int_equal(v->level, TLS_LEVEL_VERIFY);
	assert_string_equal(v->source, "mta-sts");
	assert_string_equal(v->domain, "enf.test");
	assert_string_equal(v->mx_host, "mx1.enf.test");
	assert_int_equal(v->report_only, 0);
	assert_non_null(strstr(v->sts_note, "cached"));
	policy_verdict_free(v);
	policy_free(p);
}

/*
 * MTA-STS enforce verifies the certificate for the MX host H the policy
 * lists (RFC 8461 section 4.1), the one name the leg takes: not the
 * recipient domain, nor any other.  A certificate for D itself (its web
 * server's, say) must not pass for mx1.enf.test.  Red with the mutant of
 * sts_enforce() that puts D in the names: names[0] "enf.test", expected
 * "mx1.enf.test" (the level, source and mx_host stay as they were).
 */
static void
test_enforce_verifies_mx_host_name(void **state)
{
	struct policy *p = mkpolicy(NULL, 1);
	struct policy_verdict *v = lookup(p, "enf.test", "192.0.2.1");

	assert_int_equal(v->level, TLS_LEVEL_VERIFY);
	assert_non_null(v->tls);
	assert_int_equal(v->tls->nnames, 1);
	assert_string_equal(v->tls->names[0], "mx1.enf.test");
	policy_verdict_free(v);
	policy_free(p);
}

static void
test_enforce_mx_not_in_policy(void **state)
{
	struct policy *p = mkpolicy(NULL, 1);
	struct policy_verdict *v = lookup(p, "enf.test", "192.0.2.66");

	assert_int_equal(v->level, TLS_LEVEL_DEFER);
	assert_string_equal(v->reason, "validation-failure");
	assert_string_equal(v->mx_host, "rogue.other.test");
	assert_non_null(strstr(v->detail, "not in the MTA-STS policy"));
	policy_verdict_free(v);
	policy_free(p);
}

static void
test_enforce_not_an_mx(void **state)
{
	struct policy *p = mkpolicy(NULL, 1);
	struct policy_verdict *v = lookup(p, "enf.test", "198.51.100.7");

	assert_int_equal(v->level, TLS_LEVEL_DEFER);
	assert_string_equal(v->reason, "validation-failure");
	assert_non_null(strstr(v->detail, "not an address of any MX"));
	policy_verdict_free(v);
	policy_free(p);
}

static void
test_override_relay_address(void **state)
{
	const char *ovr[] = { "198.51.100.7 encrypt", NULL };
	struct policy *p = mkpolicy(ovr, 1);
	struct policy_verdict *v = lookup(p, "enf.test", "198.51.100.7");

	assert_int_equal(v->level, TLS_LEVEL_ENCRYPT);
	assert_string_equal(v->source, "override");
	policy_verdict_free(v);
	policy_free(p);
}

/* An engine with MTA-STS on and these enforcement_override lines. */
static struct policy *
mkpolicy_modes(const char *const *lines, int n)
{
	struct config *cfg = mkcfg(NULL, 1);
	struct policy *p;
	char err[256];
	int i;

	cfg->enforcement_override.v = calloc((size_t)n, sizeof(char *));
	for (i = 0; i < n; i++)
		cfg->enforcement_override.v[i] = strdup(lines[i]);
	cfg->enforcement_override.n = n;
	if ((p = policy_new(loop, cfg, err, sizeof(err))) == NULL)
		fail_msg("policy_new: %s", err);
	config_free(cfg);
	return p;
}

/* With "192.0.2.66 monitor": enf.test's MTA-STS enforce verdict stays
 * enforced (deferred there: not one of its MX hosts), plain.test's
 * default one is monitored. */
static void
enforced_and_monitored(struct policy *p)
{
	struct policy_verdict *v = lookup(p, "enf.test", "192.0.2.66");

	assert_string_equal(v->source, "mta-sts");
	assert_int_equal(v->monitor, 0);
	assert_int_equal(v->level, TLS_LEVEL_DEFER);
	policy_verdict_free(v);
	v = lookup(p, "plain.test", "192.0.2.66");
	assert_int_equal(v->monitor, 1);
	assert_int_equal(v->level, TLS_LEVEL_MAY);
	policy_verdict_free(v);
}

/*
 * enforcement_override: "enf.test enforce" next to "192.0.2.66 monitor"
 * (a relay or partner address watched during a rollout).  The address
 * line was looked up first and decided alone, so enf.test's mail sent to
 * 192.0.2.66 was monitored: an attacker who answers the MTA's (unsigned)
 * MX query of enf.test with that address, and strips STARTTLS on the
 * path to it, got enf.test's mail delivered in cleartext although
 * enforce mode defers it (192.0.2.66 is no host of its MTA-STS policy).
 * An enforce line for the domain or the address wins over a monitor line
 * for the other; the address line still monitors the domains without a
 * line of their own whose verdict is no policy of the domain's own
 * (test_address_monitor_not_domain_policy).
 */
static void
test_enforcement_override_enforce_wins(void **state)
{
	const char *lines[] = { "enf.test enforce", "192.0.2.66 monitor" };
	struct policy *p = mkpolicy_modes(lines, 2);

	enforced_and_monitored(p);
	policy_free(p);
}

/*
 * The converse of test_enforcement_override_enforce_wins: "enf.test
 * monitor" next to "192.0.2.66 enforce".  The address's enforce line wins
 * as the domain's would: enf.test's mail to 192.0.2.66 (no host of its
 * policy) is deferred, not monitored.  Red with the mutant of monitored()
 * without "(a != NULL && !a->monitor) ||": monitor 1 (expected 0), the
 * mail delivered over whatever TLS the address offers.
 */
static void
test_enforcement_override_address_enforce_wins(void **state)
{
	const char *lines[] = { "enf.test monitor", "192.0.2.66 enforce" };
	struct policy *p = mkpolicy_modes(lines, 2);
	struct policy_verdict *v = lookup(p, "enf.test", "192.0.2.66");

	(void)state;
	assert_int_equal(v->monitor, 0);
	assert_int_equal(v->level, TLS_LEVEL_DEFER);
	policy_verdict_free(v);
	policy_free(p);
}

/*
 * "192.0.2.66 monitor" alone, enforcement = enforce.  The address line
 * monitored every domain without a line of its own, MTA-STS enforce ones
 * included: an attacker who answers the MTA's MX query of enf.test with
 * 192.0.2.66 and strips STARTTLS on the path got enf.test's mail in
 * cleartext.  A domain's own policy is now monitored only by a line for
 * the domain (or enforcement = monitor); the address line still monitors
 * what this gateway demands of the address (here the default).
 */
static void
test_address_monitor_not_domain_policy(void **state)
{
	const char *lines[] = { "192.0.2.66 monitor", "enf.test monitor" };
	struct policy *p = mkpolicy_modes(lines, 1);
	struct policy_verdict *v;

	enforced_and_monitored(p);
	policy_free(p);

	/* a line for the domain still monitors it */
	p = mkpolicy_modes(lines, 2);
	v = lookup(p, "enf.test", "192.0.2.66");
	assert_int_equal(v->monitor, 1);
	assert_int_equal(v->would_level, TLS_LEVEL_DEFER);
	policy_verdict_free(v);
	policy_free(p);
}

/*
 * An address's monitor line reaches only what this gateway demands of the
 * address, never a verdict the domain's own word decided
 * (domain_decided()): DANE (usab.signed.test's usable TLSA records) and a
 * tls_policy line for the domain (plain.test encrypt) stay enforced at
 * "192.0.2.41 monitor" and "192.0.2.5 monitor", as MTA-STS enforce does
 * (test_address_monitor_not_domain_policy).  Red with the mutant of
 * domain_decided() without "dane": usab.signed.test monitored (monitor 1,
 * expected 0); and with the one returning 0 for a domain's override line:
 * plain.test monitored.
 */
static void
test_address_monitor_not_dane_or_domain_line(void **state)
{
	const char *ovr[] = { "plain.test encrypt", NULL };
	struct config *cfg = mkcfg(ovr, 1);
	struct policy *p;
	struct policy_verdict *v;
	char err[256];

	(void)state;
	cfg->enforcement_override.v = calloc(2, sizeof(char *));
	cfg->enforcement_override.v[0] = strdup("192.0.2.41 monitor");
	cfg->enforcement_override.v[1] = strdup("192.0.2.5 monitor");
	cfg->enforcement_override.n = 2;
	if ((p = policy_new(loop, cfg, err, sizeof(err))) == NULL)
		fail_msg("policy_new: %s", err);
	config_free(cfg);
	policy_set_resolver_validating(p, 1);
	v = lookup(p, "usab.signed.test", "192.0.2.41");
	assert_string_equal(v->source, "dane");
	assert_int_equal(v->monitor, 0);
	assert_int_equal(v->level, TLS_LEVEL_DANE);
	policy_verdict_free(v);
	v = lookup(p, "plain.test", "192.0.2.5");
	assert_string_equal(v->source, "override");
	assert_int_equal(v->monitor, 0);
	assert_int_equal(v->level, TLS_LEVEL_ENCRYPT);
	policy_verdict_free(v);
	/* the address's line still monitors what the gateway demands */
	v = lookup(p, "xn--bcher-kva.test", "192.0.2.5");
	assert_int_equal(v->monitor, 1);
	policy_verdict_free(v);
	policy_free(p);
}

/*
 * A DNSSEC-validated null MX (RFC 7505): the domain accepts no mail, so
 * whatever address the MTA was sent to is none of its own; the verdict
 * was "no DANE" and then may, and the mail went there.  Now deferred.
 * An unsigned null MX anyone on the path can forge: it decides nothing.
 */
static void
test_secure_null_mx(void **state)
{
	struct policy *p = mkpolicy(NULL, 1);
	struct policy_verdict *v = lookup(p, "nullmx.signed.test",
	    "192.0.2.5");

	assert_int_equal(v->level, TLS_LEVEL_DEFER);
	assert_string_equal(v->source, "dane");
	assert_non_null(strstr(v->detail, "null MX"));
	policy_verdict_free(v);
	v = lookup(p, "nullmx.test", "192.0.2.5");
	assert_int_equal(v->level, TLS_LEVEL_MAY);
	policy_verdict_free(v);
	policy_free(p);
}

static void
test_override_domain(void **state)
{
	const char *ovr[] = { ".plain.test none", "plain.test verify",
	    "enf.test may", NULL };
	struct policy *p = mkpolicy(ovr, 1);
	struct policy_verdict *v = lookup(p, "plain.test", "192.0.2.5");

	assert_int_equal(v->level, TLS_LEVEL_VERIFY);
	assert_string_equal(v->source, "override");
	assert_string_equal(v->mx_host, "mx.plain.test");
	policy_verdict_free(v);
	v = lookup(p, "sub.plain.test", "192.0.2.5");
	assert_int_equal(v->level, TLS_LEVEL_NONE);
	policy_verdict_free(v);
	/* an override beats an enforce policy */
	v = lookup(p, "enf.test", "192.0.2.66");
	assert_int_equal(v->level, TLS_LEVEL_MAY);
	assert_string_equal(v->source, "override");
	policy_verdict_free(v);
	policy_free(p);
}

static void
test_testing_reports(void **state)
{
	struct policy *p = mkpolicy(NULL, 1);
	struct policy_verdict *v = lookup(p, "tst.test", "192.0.2.2");

	/* the failure (MX host not in the policy) is reported; what is
	 * enforced is what applies without the policy */
	assert_int_equal(v->level, TLS_LEVEL_MAY);
	assert_int_equal(v->report_only, 1);
	assert_string_equal(v->reason, "validation-failure");
	policy_verdict_free(v);
	policy_free(p);
}

/*
 * A testing policy's check fails when the destination is no address of an
 * MX host of D: reported (reason validation-failure, report_only), the
 * level still what applies without the policy.  Red with the mutant of
 * sts_testing() that leaves reason empty there: "" (expected
 * "validation-failure"), the failure never reported.
 */
static void
test_testing_not_an_mx_reported(void **state)
{
	struct policy *p = mkpolicy(NULL, 1);
	struct policy_verdict *v = lookup(p, "tstok.test", "198.51.100.9");

	(void)state;
	assert_int_equal(v->level, TLS_LEVEL_MAY);
	assert_int_equal(v->report_only, 1);
	assert_string_equal(v->mx_host, "");
	assert_string_equal(v->reason, "validation-failure");
	policy_verdict_free(v);
	policy_free(p);
}

/*
 * MTA-STS testing never weakens what would apply without the policy: the
 * enforced level is what require_tls, the TLS history or the default
 * give; the policy's check (names) is only reported.
 */
static void
test_testing_is_opportunistic(void **state)
{
	struct policy *p = mkpolicy(NULL, 1);
	struct policy_verdict *v = lookup(p, "tstok.test", "192.0.2.10");

	assert_int_equal(v->level, TLS_LEVEL_MAY);
	assert_int_equal(v->report_only, 1);
	assert_string_equal(v->source, "mta-sts");
	assert_string_equal(v->reason, "");
	assert_string_equal(v->mx_host, "mx.tstok.test");
	assert_non_null(v->tls);	/* the names to report against */
	assert_non_null(strstr(v->sts_note, "mode=testing"));
	policy_verdict_free(v);
	policy_free(p);
}

static void
test_testing_keeps_require_tls(void **state)
{
	struct policy *p;
	struct policy_verdict *v;

	cfg_require_tls = 1;
	p = mkpolicy(NULL, 1);
	cfg_require_tls = 0;
	/* the report check would pass ... */
	v = lookup(p, "tstok.test", "192.0.2.10");
	assert_int_equal(v->level, TLS_LEVEL_ENCRYPT);
	assert_int_equal(v->report_only, 1);
	assert_string_equal(v->source, "require_tls");
	policy_verdict_free(v);
	/* ... or fail: never below encrypt, never verify */
	v = lookup(p, "tst.test", "192.0.2.2");
	assert_int_equal(v->level, TLS_LEVEL_ENCRYPT);
	assert_int_equal(v->report_only, 1);
	assert_string_equal(v->reason, "validation-failure");
	policy_verdict_free(v);
	/* destination not an MX address: reported, still encrypt */
	v = lookup(p, "tst.test", "198.51.100.9");
	assert_int_equal(v->level, TLS_LEVEL_ENCRYPT);
	assert_int_equal(v->report_only, 1);
	policy_verdict_free(v);
	policy_free(p);
}

static void
test_testing_keeps_history(void **state)
{
	char err[256];
	struct history *h = history_open(statedir, err, sizeof(err));
	struct sockaddr_in sin;
	struct policy *p;
	struct policy_verdict *v;

	assert_non_null(h);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	inet_pton(AF_INET, "192.0.2.2", &sin.sin_addr);
	assert_int_equal(history_record(h, "mx.tst.test",
	    (struct sockaddr *)&sin, 1, 1, (int64_t)time(NULL), NULL), 0);
	history_close(h);
	p = mkpolicy(NULL, 1);
	v = lookup(p, "tst.test", "192.0.2.2");
	assert_int_equal(v->level, TLS_LEVEL_ENCRYPT);
	assert_string_equal(v->source, "tls-history");
	assert_int_equal(v->report_only, 1);
	assert_string_equal(v->mx_host, "mx.tst.test");
	policy_verdict_free(v);
	policy_free(p);
	h = history_open(statedir, err, sizeof(err));
	assert_non_null(h);
	history_del(h, "mx.tst.test", (struct sockaddr *)&sin);
	history_del(h, "", (struct sockaddr *)&sin);
	history_close(h);
}

/*
 * The MX host completed STARTTLS (at 192.0.2.90).  An attacker on the path
 * answers the MTA's (unsigned) address query for it with 198.51.100.66,
 * an address of its own, and makes the gateway's fail (SERVFAIL, or drops
 * it: a timeout): no MX host is found to own the destination.  The host
 * whose lookup failed may own it, so its own record ("host|", whatever
 * the address) counts, as DANE counts such a failure: encrypt, and the
 * stripped STARTTLS defers.  Before, only the address's record was asked
 * (nothing known there): may, the mail in cleartext to the attacker.  A
 * host whose lookup answered other addresses does not own it (a relay's
 * address keeps what applies to it).
 */
static void
test_history_host_lookup_failed(void **state)
{
	char err[256];
	struct history *h = history_open(statedir, err, sizeof(err));
	struct sockaddr_in old, hok;
	struct policy *p;
	struct policy_verdict *v;

	assert_non_null(h);
	memset(&old, 0, sizeof(old));
	old.sin_family = AF_INET;
	inet_pton(AF_INET, "192.0.2.90", &old.sin_addr);
	hok = old;
	inet_pton(AF_INET, "192.0.2.91", &hok.sin_addr);
	history_note(h, 30 * 86400, (struct sockaddr *)&old, "mx.hfail.test",
	    1, 1);
	history_note(h, 30 * 86400, (struct sockaddr *)&hok, "mx.hok.test",
	    1, 1);
	history_close(h);
	p = mkpolicy(NULL, 1);
	v = lookup(p, "hfail.test", "198.51.100.66");
	assert_int_equal(v->level, TLS_LEVEL_ENCRYPT);
	assert_string_equal(v->source, "tls-history");
	assert_non_null(strstr(v->detail, "mx.hfail.test"));
	/* mxguard's view names no host: the leg records under none */
	assert_string_equal(v->mx_host, "");
	policy_verdict_free(v);
	v = lookup(p, "hok.test", "198.51.100.66");
	assert_int_equal(v->level, TLS_LEVEL_MAY);
	assert_string_equal(v->source, "default");
	policy_verdict_free(v);
	policy_free(p);
}

/*
 * The engine owns policy_timeout: it always answers by then, and while
 * the DNSSEC/DANE lookups are still running that answer is a deferral
 * (dnssec-invalid), never a fallback to cleartext.
 */
static void
test_timeout_verdict(void **state)
{
	struct policy *p;
	struct policy_verdict *v;
	struct timespec t0, t1;
	long ms;

	cfg_policy_timeout = 300;
	cfg_dns_timeout = 10000;
	p = mkpolicy(NULL, 1);
	cfg_policy_timeout = 5000;
	cfg_dns_timeout = 2000;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	v = lookup(p, "slow.test", "192.0.2.11");
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 +
	    (t1.tv_nsec - t0.tv_nsec) / 1000000;
	print_message("timeout verdict after %ld ms: %s %s\n", ms,
	    tls_level_name(v->level), v->reason);
	/* by policy_timeout (300 ms; the loop's clock may run a little
	 * early), long before the resolver's 10 s: the bound half-way, for
	 * a loaded machine */
	assert_true(ms < 5000);
	assert_int_equal(v->level, TLS_LEVEL_DEFER);
	assert_string_equal(v->source, "dane");
	assert_string_equal(v->reason, "dnssec-invalid");
	policy_verdict_free(v);
	policy_free(p);
}

static void
test_txt_gone_cached_enforced(void **state)
{
	struct policy *p = mkpolicy(NULL, 1);
	struct policy_verdict *v = lookup(p, "gone.test", "192.0.2.3");

	/* policy (mx1.enf.test only) still applies: mx.gone.test deferred */
	assert_int_equal(v->level, TLS_LEVEL_DEFER);
	assert_string_equal(v->reason, "validation-failure");
	policy_verdict_free(v);
	policy_free(p);
}

static void
test_new_id_fetch_fails_keeps_cache(void **state)
{
	struct policy *p = mkpolicy(NULL, 1);
	struct policy_verdict *v = lookup(p, "newid.test", "192.0.2.4");
	struct sts_cache_entry e;

	/* mta-sts.newid.test does not resolve: cached policy used */
	assert_int_equal(v->level, TLS_LEVEL_VERIFY);
	assert_string_equal(v->mx_host, "mx.newid.test");
	assert_non_null(strstr(v->sts_note, "id=one"));
	policy_verdict_free(v);
	assert_int_equal(sts_cache_get(policy_sts_cache(p), "newid.test", &e),
	    1);
	assert_string_equal(e.id, "one");	/* not replaced */
	sts_cache_entry_clear(&e);
	policy_free(p);
}

/*
 * A cached policy that decides after the fetch under a new TXT id failed
 * took part in a decision, and is marked used like one whose id was
 * unchanged.  An attacker who answers the TXT query with a new id at every
 * lookup and blocks the policy host then did that at no cost: the policy
 * decided every lookup but stayed "unused", so the background refresh
 * dropped it (sts_cache_due(): nobody used it in a whole max_age) and it
 * ran out, though every refresh it let through worked.  Its record here
 * is one a background refresh wrote (fetched now, last used two hours
 * ago).  Old code: last_used stayed two hours old.
 */
static void
test_cached_decides_after_failed_fetch_marked_used(void **state)
{
	struct policy *p;
	struct policy_verdict *v;
	struct sts_cache_entry e;
	int64_t before = (int64_t)time(NULL);

	cache_policy_used("usedmark.test", "one", "version: STSv1\n"
	    "mode: enforce\nmx: mx.usedmark.test\nmax_age: 86400\n", 10,
	    86400, 7200);
	p = mkpolicy(NULL, 1);
	v = lookup(p, "usedmark.test", "192.0.2.14");
	assert_int_equal(v->level, TLS_LEVEL_VERIFY);
	assert_non_null(strstr(v->sts_note, "id=one"));
	policy_verdict_free(v);
	assert_int_equal(sts_cache_get(policy_sts_cache(p), "usedmark.test",
	    &e), 1);
	assert_string_equal(e.id, "one");
	assert_true(e.last_used >= before);
	sts_cache_entry_clear(&e);
	policy_free(p);
}

static void
poll_cb(void *arg)
{
	ev_loop_stop(loop);
}

/*
 * A valid policy is cached, the TXT record names another id, and the
 * fetch under it fails (an attacker on the path writes a new id into
 * every answer of an unsigned zone and blocks or stalls the policy host;
 * or the domain published a new id while its policy host is down).  The
 * cached policy decides after the failed fetch, and the next lookups
 * within the domain's back-off decide with it at once: no fetch, no wait
 * (old code: every lookup started a fetch and waited for it, up to
 * sts_fetch_timeout, so every message to the domain waited and the
 * policy host got a fetch per message).  The back-off does not stop the
 * background refresh (no round sat out), and a fetch that works there
 * replaces the policy and ends the back-off.
 */
static void
test_new_id_failed_fetch_backs_off(void **state)
{
	static const char *body = "version: STSv1\nmode: enforce\n"
	    "mx: mx.nidbo.test\nmax_age: 86400\n";
	struct stat_ctr *backoff = stats_get(
	    "mxguard_sts_new_id_backoff_total", "x");
	int64_t before_backoff = stats_value(backoff);
	struct ev_timer *t;
	struct policy_verdict *v;
	struct sts_cache_entry e;
	struct config *cfg;
	struct policy *p;
	char err[256];
	int i;

	/* within the refresh margin: the background refresh may take it */
	cache_policy("nidbo.test", "one", body, 80000, 86400);
	mock_http("mta-sts.nidbo.test", NULL);
	p = mkpolicy(NULL, 1);
	v = lookup(p, "nidbo.test", "192.0.2.15");
	assert_int_equal(mh.calls, 1);
	assert_int_equal(v->level, TLS_LEVEL_VERIFY);
	assert_non_null(strstr(v->sts_note, "id=one,cached"));
	policy_verdict_free(v);
	/* within the back-off: the cached policy decides, no fetch */
	for (i = 0; i < 3; i++) {
		v = lookup(p, "nidbo.test", "192.0.2.15");
		assert_int_equal(v->level, TLS_LEVEL_VERIFY);
		assert_non_null(strstr(v->sts_note, "id=one,cached"));
		policy_verdict_free(v);
	}
	assert_int_equal(mh.calls, 1);
	assert_int_equal(stats_value(backoff), before_backoff + 3);
	/* the background refresh goes on: its fetch (under the TXT id)
	 * works and replaces the policy */
	mh.body = body;
	cfg_refresh_interval = 100;
	cfg = mkcfg(NULL, 1);
	cfg_refresh_interval = 0;
	assert_int_equal(policy_reconfigure(p, cfg, err, sizeof(err)), 0);
	config_free(cfg);
	t = ev_timer_new(loop, poll_cb, NULL);
	for (i = 0; i < 60 && (mh.calls < 2 || mh.pending); i++) {
		ev_timer_arm(t, 50);
		ev_loop_run(loop);
	}
	ev_timer_free(t);
	assert_int_equal(mh.calls, 2);
	assert_int_equal(sts_cache_get(policy_sts_cache(p), "nidbo.test", &e),
	    1);
	assert_string_equal(e.id, "new2");
	sts_cache_entry_clear(&e);
	/* the id is the cached one now: it decides, nothing fetched */
	v = lookup(p, "nidbo.test", "192.0.2.15");
	assert_int_equal(v->level, TLS_LEVEL_VERIFY);
	assert_non_null(strstr(v->sts_note, "id=new2,cached"));
	policy_verdict_free(v);
	assert_int_equal(mh.calls, 2);
	policy_free(p);
	mock_http_off();
}

/* time passes, the wall clock's and the boot clock's alike (a lookup's
 * back-off is on the policy clock, core/clock.h) */
static void
time_passes(int64_t s)
{
	time_step += s;
	suspended_s += s;
}

/* A lookup of nidok.test; did it fetch (mh.calls rose)? */
static int
nidok_fetched(struct policy *p)
{
	int calls = mh.calls;
	struct policy_verdict *v = lookup(p, "nidok.test", "192.0.2.76");

	assert_int_equal(v->level, TLS_LEVEL_VERIFY);
	policy_verdict_free(v);
	return mh.calls > calls;
}

/*
 * A fetch under a new id that works, in a lookup (not the background
 * refresh), ends the domain's back-off record: the next failure under a
 * new id starts the back-off again at its first step (60 s,
 * REFETCH_BACKOFF_S), not at the second, as a domain whose policy host came back and went down again is
 * no worse than one whose host failed once.  Red before (the record kept
 * after a lookup's fetch worked): the second failure's back-off was 120
 * s, and the lookup 61 s after it decided with the cached policy.
 */
static void
test_new_id_backoff_restarts_after_success(void **state)
{
	static const char *body = "version: STSv1\nmode: enforce\n"
	    "mx: mx.nidok.test\nmax_age: 86400\n";
	struct sts_cache_entry e;
	struct policy *p;

	cache_policy("nidok.test", "one", body, 10, 86400);
	mock_http("mta-sts.nidok.test", NULL);
	p = mkpolicy(NULL, 1);
	/* the fetch under ok2 fails: backed off 60 s */
	assert_true(nidok_fetched(p));
	assert_false(nidok_fetched(p));
	/* past it, the policy host serves: ok2 cached, the record gone */
	time_passes(61);
	mh.body = body;
	assert_true(nidok_fetched(p));
	assert_int_equal(sts_cache_get(policy_sts_cache(p), "nidok.test", &e),
	    1);
	assert_string_equal(e.id, "ok2");
	/* the domain's cached id is another again, its host down again */
	snprintf(e.id, sizeof(e.id), "one");
	assert_int_equal(sts_cache_put(policy_sts_cache(p), "nidok.test", &e),
	    0);
	sts_cache_entry_clear(&e);
	mh.body = NULL;
	assert_true(nidok_fetched(p));
	assert_false(nidok_fetched(p));
	/* the first step again: past 60 s, the next lookup fetches */
	time_passes(61);
	if (!nidok_fetched(p))
		fail_msg("61 s after a failure that followed a fetch that "
		    "worked, the lookup was still backed off");
	time_step = 0;
	suspended_s = 0;
	policy_free(p);
	mock_http_off();
}

/*
 * The end of the two back-off-at-reload tests: a reload, the policy host
 * answers now (body), and the first lookup after it fetches (one more
 * call) and decides by what it fetched (note).  Frees p.
 */
static void
reload_then_fetched(struct policy *p, const char *body, const char *domain,
    const char *ip, const char *note)
{
	struct policy_verdict *v;
	struct config *cfg;
	char err[256];

	cfg = mkcfg(NULL, 1);
	assert_int_equal(policy_reconfigure(p, cfg, err, sizeof(err)), 0);
	config_free(cfg);
	mh.body = body;
	v = lookup(p, domain, ip);
	assert_int_equal(mh.calls, 2);
	assert_int_equal(v->level, TLS_LEVEL_VERIFY);
	assert_non_null(strstr(v->sts_note, note));
	policy_verdict_free(v);
	policy_free(p);
	mock_http_off();
}

/*
 * A reload ends the back-off above: the reload's resolver and CA store
 * serve every fetch that starts after it, and the failures that began the
 * back-off were the old ones' (a CA bundle that lacked the policy host's
 * root, a resolver that failed its name, which the operator fixed and
 * reloaded for).  The domain published a new id meanwhile (its policy
 * may be stricter than the cached one: enforce where testing was cached);
 * the first lookup after the reload fetches it.  Old code: the back-off
 * (up to 16 min) outlived the reload, and the older cached policy went on
 * deciding without a fetch.
 */
static void
test_new_id_backoff_ends_at_reload(void **state)
{
	static const char *testing = "version: STSv1\nmode: testing\n"
	    "mx: mx.nidrl.test\nmax_age: 86400\n";
	static const char *body = "version: STSv1\nmode: enforce\n"
	    "mx: mx.nidrl.test\nmax_age: 86400\n";
	struct policy_verdict *v;
	struct policy *p;
	int i;

	cache_policy("nidrl.test", "one", testing, 10, 86400);
	mock_http("mta-sts.nidrl.test", NULL);
	p = mkpolicy(NULL, 1);
	/* the fetch under new2 fails, the next lookup is backed off */
	for (i = 0; i < 2; i++) {
		v = lookup(p, "nidrl.test", "192.0.2.18");
		assert_int_not_equal(v->level, TLS_LEVEL_VERIFY);
		assert_non_null(strstr(v->sts_note, "mode=testing,id=one,"
		    "cached"));
		policy_verdict_free(v);
	}
	assert_int_equal(mh.calls, 1);
	reload_then_fetched(p, body, "nidrl.test", "192.0.2.18",
	    "mode=enforce,id=rl2,fetched");
}

static struct policy_verdict *two_v[2];
static int two_n;

static void
got_two(void *arg, struct policy_verdict *v)
{
	two_v[(intptr_t)arg] = v;
	if (++two_n == 2)
		ev_loop_stop(loop);
}

/* Runs the loop until *n reaches want (at most 10 s). */
static void
run_until(const int *n, int want)
{
	struct ev_timer *t = ev_timer_new(loop, poll_cb, NULL);
	int k;

	for (k = 0; k < 200 && *n < want; k++) {
		ev_timer_arm(t, 50);
		ev_loop_run(loop);
	}
	ev_timer_free(t);
	assert_int_equal(*n, want);
}

/* Starts a lookup of domain at ip whose verdict got_two() keeps as
 * two_v[i]. */
static void
lookup_start(struct policy *p, const char *domain, const char *ip,
    intptr_t i)
{
	struct sockaddr_in sin;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(25);
	inet_pton(AF_INET, ip, &sin.sin_addr);
	assert_non_null(policy_lookup(p, domain, (struct sockaddr *)&sin,
	    sizeof(sin), "t1", got_two, (void *)i));
}

/* A reload while the fetch of the domain's new id runs through the CA
 * store (and resolver) it replaced, one that lacks the policy host's
 * root: the first fetch fails (after 1 s), whatever the host serves. */
static struct policy *
reload_during_fetch(const char *domain, const char *ip, const char *body)
{
	static const char *testing = "version: STSv1\nmode: testing\n"
	    "mx: mx.nid.test\nmax_age: 86400\n";
	struct config *cfg;
	struct policy *p;
	char err[256], host[300];

	cache_policy(domain, "one", testing, 10, 86400);
	snprintf(host, sizeof(host), "mta-sts.%s", domain);
	mock_http(host, body);
	mh.at_once = 2;
	mh.fail_first = 1;
	mh.delay = 1000;
	p = mkpolicy(NULL, 1);
	two_n = 0;
	lookup_start(p, domain, ip, 0);
	run_until(&mh.calls, 1);	/* its fetch under the new id runs */
	cfg = mkcfg(NULL, 1);
	assert_int_equal(policy_reconfigure(p, cfg, err, sizeof(err)), 0);
	config_free(cfg);
	mh.delay = 0;
	return p;
}

/*
 * A lookup that starts after a reload does not join a fetch that started
 * before it: that one runs through the replaced CA store and resolver (a
 * CA bundle without the policy host's root, which the operator reloaded
 * to fix), and the reload's serve every fetch from then on.  The domain
 * went from testing (cached) to enforce under a new id; the lookup after
 * the reload fetches it through the new store and enforces it.  Old code:
 * the lookup joined the old fetch (one fetch in all), which failed, and
 * the cached testing policy decided (level may) for the recipient of a
 * domain that publishes enforce, as long as the old fetch ran (up to
 * sts_fetch_timeout, which an attacker on the path can hold it for).
 */
static void
test_reload_fetch_not_joined(void **state)
{
	static const char *body = "version: STSv1\nmode: enforce\n"
	    "mx: mx.nidrj.test\nmax_age: 86400\n";
	struct policy *p = reload_during_fetch("nidrj.test", "192.0.2.19",
	    body);
	intptr_t i;

	lookup_start(p, "nidrj.test", "192.0.2.19", 1);
	run_until(&two_n, 2);
	assert_string_equal(tls_level_name(two_v[1]->level), "verify");
	assert_non_null(strstr(two_v[1]->sts_note,
	    "mode=enforce,id=rj2,fetched"));
	assert_int_equal(mh.calls, 2);
	/* the lookup from before the reload: its fetch failed, and the
	 * policy stored meanwhile decides (cache_reread()) */
	assert_int_equal(two_v[0]->level, TLS_LEVEL_VERIFY);
	for (i = 0; i < 2; i++)
		policy_verdict_free(two_v[i]);
	policy_free(p);
	mock_http_off();
}

/*
 * A fetch that started before a reload and fails after it begins no
 * back-off: its failure came through the replaced CA store and resolver
 * (the reload ended the back-offs for that reason).  The next lookup
 * fetches the domain's new id through the reload's and enforces it.
 * Old code: the failure, after the reload, began the domain's back-off,
 * and for 60 s the cached testing policy decided at once (level may).
 */
static void
test_reload_old_fetch_no_backoff(void **state)
{
	static const char *body = "version: STSv1\nmode: enforce\n"
	    "mx: mx.nidrb.test\nmax_age: 86400\n";
	struct policy *p = reload_during_fetch("nidrb.test", "192.0.2.20",
	    body);
	struct policy_verdict *v;

	/* the old fetch fails; its lookup decides */
	run_until(&two_n, 1);
	assert_int_equal(two_v[0]->level, TLS_LEVEL_MAY);
	policy_verdict_free(two_v[0]);
	v = lookup(p, "nidrb.test", "192.0.2.20");
	assert_string_equal(tls_level_name(v->level), "verify");
	assert_non_null(strstr(v->sts_note, "mode=enforce,id=rb2,fetched"));
	assert_int_equal(mh.calls, 2);
	policy_verdict_free(v);
	policy_free(p);
	mock_http_off();
}

/*
 * A fetch that started before a reload and succeeds after it is used by
 * its own lookup but not cached: it passed through the replaced CA store,
 * which may have trusted a CA the reload removed (a distrusted one, from
 * which an attacker on the path has a certificate for the policy host).
 * Here the cached policy is enforce under id "one", the TXT record names
 * rk2, and the old store's fetch gets the attacker's "mode: none"; the
 * real policy host is out of reach afterwards (the mock fails every
 * other fetch).  The lookup after the reload fetches rk2 again through
 * the new store, which fails, and the cached enforce policy decides.
 * Old code: the attacker's policy was cached under rk2, the TXT id, and
 * decided every later lookup without a fetch: level may (none) for a
 * domain that enforces, for max_age.
 */
static void
test_reload_old_fetch_not_kept(void **state)
{
	static const char *enforce = "version: STSv1\nmode: enforce\n"
	    "mx: mx.nidrk.test\nmax_age: 86400\n";
	static const char *none = "version: STSv1\nmode: none\n"
	    "max_age: 86400\n";
	struct policy_verdict *v;
	struct config *cfg;
	struct policy *p;
	char err[256];

	cache_policy("nidrk.test", "one", enforce, 10, 86400);
	mock_http("mta-sts.nidrk.test", NULL);
	mh.first_body = none;
	mh.delay = 1000;
	p = mkpolicy(NULL, 1);
	two_n = 0;
	lookup_start(p, "nidrk.test", "192.0.2.22", 0);
	run_until(&mh.calls, 1);	/* its fetch under rk2 runs */
	cfg = mkcfg(NULL, 1);
	assert_int_equal(policy_reconfigure(p, cfg, err, sizeof(err)), 0);
	config_free(cfg);
	mh.delay = 0;
	/* the lookup from before the reload ends on what it started with */
	run_until(&two_n, 1);
	assert_int_equal(two_v[0]->level, TLS_LEVEL_MAY);
	policy_verdict_free(two_v[0]);
	v = lookup(p, "nidrk.test", "192.0.2.22");
	assert_int_equal(mh.calls, 2);
	assert_string_equal(tls_level_name(v->level), "verify");
	assert_non_null(strstr(v->sts_note, "mode=enforce,id=one,cached"));
	policy_verdict_free(v);
	policy_free(p);
	mock_http_off();
}

/*
 * The same attacker's TXT answers carry a new id each (rot1, rot2, ...)
 * and a TTL of 0 (the resolver's cache flushed here), so lookups that
 * overlap do not share one fetch: before the first fetch failed and its
 * back-off began, every lookup of the domain started a fetch of its own
 * and waited for it (a fetch per message for the whole first
 * sts_fetch_timeout, and again whenever a back-off ran out).  Now, while
 * a fetch under a new id of the domain runs, a lookup with a valid cached
 * policy and yet another new id is decided by it at once (one under the
 * same id still shares the fetch).  The second lookup starts while the
 * first one's fetch runs (1 s): one fetch.  Old code: two (the mock
 * refuses a second at a time).
 */
static void
test_new_id_one_fetch_at_a_time(void **state)
{
	static const char *body = "version: STSv1\nmode: enforce\n"
	    "mx: mx.nidrot.test\nmax_age: 86400\n";
	struct ev_timer *guard = ev_timer_new(loop,
	    (ev_timer_cb *)ev_loop_stop, loop), *t;
	struct sockaddr_in sin;
	struct policy *p;
	intptr_t i;

	cache_policy("nidrot.test", "one", body, 10, 86400);
	mock_http("mta-sts.nidrot.test", NULL);
	p = mkpolicy(NULL, 1);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(25);
	inet_pton(AF_INET, "192.0.2.17", &sin.sin_addr);
	mh.delay = 1000;
	two_n = 0;
	assert_non_null(policy_lookup(p, "nidrot.test", (struct sockaddr *)&sin,
	    sizeof(sin), "t1", got_two, (void *)0));
	/* its fetch under rot1 started and runs */
	t = ev_timer_new(loop, poll_cb, NULL);
	for (i = 0; i < 60 && mh.calls == 0; i++) {
		ev_timer_arm(t, 50);
		ev_loop_run(loop);
	}
	ev_timer_free(t);
	assert_int_equal(mh.calls, 1);
	dns_cache_flush(policy_dns(p));		/* TTL 0 */
	assert_non_null(policy_lookup(p, "nidrot.test", (struct sockaddr *)&sin,
	    sizeof(sin), "t1", got_two, (void *)1));
	ev_timer_arm(guard, 10000);
	ev_loop_run(loop);
	ev_timer_free(guard);
	assert_int_equal(two_n, 2);
	assert_int_equal(rot_n, 2);		/* two ids asked */
	assert_int_equal(mh.calls, 1);
	for (i = 0; i < 2; i++) {
		assert_int_equal(two_v[i]->level, TLS_LEVEL_VERIFY);
		assert_non_null(strstr(two_v[i]->sts_note, "id=one,cached"));
		policy_verdict_free(two_v[i]);
	}
	policy_free(p);
	mock_http_off();
}

/*
 * Nothing cached, a TXT record, and the fetch fails: no policy (RFC 8461
 * section 3.3), and the next lookup fetches again: there is no policy
 * to decide at once, and skipping the fetch could only lose one it might
 * find.  Unchanged by the back-off above.
 */
static void
test_new_id_no_cache_fetches_each_lookup(void **state)
{
	struct policy *p;
	struct policy_verdict *v;
	int i;

	mock_http("mta-sts.nidnc.test", NULL);
	p = mkpolicy(NULL, 1);
	for (i = 1; i <= 2; i++) {
		v = lookup(p, "nidnc.test", "192.0.2.16");
		assert_int_equal(mh.calls, i);
		assert_int_equal(v->level, TLS_LEVEL_MAY);
		assert_string_equal(v->sts_note, "sts-policy-fetch-error");
		policy_verdict_free(v);
	}
	policy_free(p);
	mock_http_off();
}

/*
 * The policy host serves a file that is no policy: the lookup has none,
 * and says so as RFC 8460's sts-policy-invalid (the result type of the
 * TLSRPT failure it records), with the parser's reason, not as a fetch
 * that failed (sts-policy-fetch-error).
 */
static void
test_fetched_policy_invalid(void **state)
{
	struct policy *p;
	struct policy_verdict *v;

	(void)state;
	mock_http("mta-sts.nidnc.test", "this is no policy\n");
	p = mkpolicy(NULL, 1);
	v = lookup(p, "nidnc.test", "192.0.2.16");
	assert_int_equal(mh.calls, 1);
	assert_int_equal(v->level, TLS_LEVEL_MAY);
	assert_string_equal(v->sts_note, "sts-policy-invalid");
	assert_non_null(strstr(v->detail, "no usable MTA-STS policy: "));
	policy_verdict_free(v);
	policy_free(p);
	mock_http_off();
}

static void
test_refresh_in_background(void **state)
{
	struct policy *p = mkpolicy(NULL, 1);
	struct stat_ctr *errs = stats_get(
	    "mxguard_sts_fetches_total{result=\"error\"}", "x");
	int64_t before = stats_value(errs);
	struct policy_verdict *v = lookup(p, "refresh.test", "192.0.2.6");
	struct ev_timer *t = ev_timer_new(loop, poll_cb, NULL);
	int i;

	/* the cached policy decides at once ... */
	assert_int_equal(v->level, TLS_LEVEL_VERIFY);
	assert_non_null(strstr(v->sts_note, "id=r1,cached"));
	policy_verdict_free(v);
	/* ... and a refresh was started behind it (it fails here: no
	 * mta-sts.refresh.test) */
	for (i = 0; i < 60 && stats_value(errs) == before; i++) {
		ev_timer_arm(t, 50);
		ev_loop_run(loop);
	}
	ev_timer_free(t);
	assert_int_equal(stats_value(errs), before + 1);
	policy_free(p);
}

static int
asked(const char *name)
{
	int i, n = 0;

	for (i = 0; i < fk.nnames; i++)
		if (strcasecmp(fk.names[i], name) == 0)
			n++;
	return n;
}

/* Runs the loop until the fake DNS was asked for name (or ms passed). */
static void
wait_asked(const char *name, int ms)
{
	struct ev_timer *t = ev_timer_new(loop, poll_cb, NULL);
	int i;

	for (i = 0; i < ms / 50 && asked(name) == 0; i++) {
		ev_timer_arm(t, 50);
		ev_loop_run(loop);
	}
	ev_timer_free(t);
}

/*
 * RFC 8461 section 5.1: a cached policy within the refresh margin is
 * refreshed before it expires even when the TXT record is gone (an
 * attacker suppressing it) or its lookup fails: the policy host is asked
 * (here it does not resolve, so the refresh fails) and the failure leaves
 * the cached policy exactly as it was.
 */
static void
refresh_without_txt(const char *domain, const char *ip, const char *id)
{
	struct policy *p = mkpolicy(NULL, 1);
	struct sts_cache_entry before, after;
	struct policy_verdict *v;
	char host[64];

	snprintf(host, sizeof(host), "mta-sts.%s", domain);
	assert_int_equal(sts_cache_get(policy_sts_cache(p), domain, &before),
	    1);
	fk.nnames = 0;
	v = lookup(p, domain, ip);
	assert_int_equal(v->level, TLS_LEVEL_VERIFY);
	assert_non_null(strstr(v->sts_note, "cached"));
	assert_non_null(strstr(v->sts_note, id));
	policy_verdict_free(v);
	wait_asked(host, 3000);
	assert_true(asked(host) > 0);
	assert_int_equal(sts_cache_get(policy_sts_cache(p), domain, &after),
	    1);
	assert_string_equal(after.id, before.id);
	assert_int_equal(after.expires, before.expires);
	assert_int_equal(after.fetched, before.fetched);
	sts_cache_entry_clear(&before);
	sts_cache_entry_clear(&after);
	policy_free(p);
}

static void
test_refresh_txt_missing(void **state)
{
	refresh_without_txt("refsupp.test", "192.0.2.11", "id=rs1");
}

static void
test_refresh_txt_servfail(void **state)
{
	refresh_without_txt("refsf.test", "192.0.2.12", "id=rf1");
}

/* Not within the margin: a missing TXT record starts no fetch. */
static void
test_no_refresh_when_fresh(void **state)
{
	struct policy *p = mkpolicy(NULL, 1);
	struct policy_verdict *v;

	fk.nnames = 0;
	v = lookup(p, "gone.test", "192.0.2.3");
	policy_verdict_free(v);
	wait_asked("mta-sts.gone.test", 500);
	assert_int_equal(asked("mta-sts.gone.test"), 0);
	policy_free(p);
}

/*
 * The background refresh: with no lookup at all, the refresh timer
 * refreshes a policy within the margin that was used during its max_age
 * (TXT record first, then the policy host, which does not resolve here:
 * the failed refresh leaves the policy as it was, logged and counted),
 * and leaves alone one not used for longer than its max_age and one far
 * from its expiry.
 */
static void
test_refresh_timer(void **state)
{
	static const char *body = "version: STSv1\nmode: enforce\n"
	    "mx: mx.bg.test\nmax_age: 86400\n";
	struct stat_ctr *errs = stats_get(
	    "mxguard_sts_refresh_background_total{result=\"error\"}", "x");
	int64_t before_errs = stats_value(errs);
	struct sts_cache_entry before, after;
	struct policy *p;

	cache_policy("bgdue.test", "bd1", body, 80000, 86400);
	/* within the margin, last used 90000 s ago: more than max_age */
	cache_policy_used("bgidle.test", "bi1", body, 80000, 86400, 90000);
	cache_policy("bgfresh.test", "bf1", body, 10, 86400);
	cfg_refresh_interval = 100;
	p = mkpolicy(NULL, 1);
	cfg_refresh_interval = 0;
	assert_int_equal(sts_cache_get(policy_sts_cache(p), "bgdue.test",
	    &before), 1);
	fk.nnames = 0;
	wait_asked("mta-sts.bgdue.test", 3000);
	/* TXT first (it names id bd2), then the policy host */
	assert_true(asked("_mta-sts.bgdue.test") > 0);
	assert_true(asked("mta-sts.bgdue.test") > 0);
	/* a few more rounds: the others are never due */
	wait_asked("_mta-sts.bgidle.test", 600);
	assert_int_equal(asked("_mta-sts.bgidle.test"), 0);
	assert_int_equal(asked("mta-sts.bgidle.test"), 0);
	assert_int_equal(asked("_mta-sts.bgfresh.test"), 0);
	assert_int_equal(asked("mta-sts.bgfresh.test"), 0);
	/* the failed refresh was counted and changed nothing */
	assert_true(stats_value(errs) > before_errs);
	assert_int_equal(sts_cache_get(policy_sts_cache(p), "bgdue.test",
	    &after), 1);
	assert_string_equal(after.id, "bd1");
	assert_int_equal(after.expires, before.expires);
	assert_int_equal(after.fetched, before.fetched);
	sts_cache_entry_clear(&before);
	sts_cache_entry_clear(&after);
	policy_free(p);
}

/*
 * A domain whose background refresh fails sits out the next rounds, so
 * one that is always the soonest to expire (an attacker's policy host
 * that never answers) does not take every place of every round: with one
 * place a round, the next due domain gets its refresh.  Before: only the
 * failing one was ever tried.
 */
static void
test_refresh_failing_not_first(void **state)
{
	static const char *body = "version: STSv1\nmode: enforce\n"
	    "mx: mx.bg.test\nmax_age: 86400\n";
	struct policy *p;

	/* both within the margin, both soonest of the cache; neither policy
	 * host resolves here, so both refreshes fail */
	cache_policy("bgfirst.test", "f1", body, 86000, 86400);
	cache_policy("bgsecond.test", "s1", body, 85900, 86400);
	cfg_refresh_interval = 100;
	cfg_refresh_max = 1;
	p = mkpolicy(NULL, 1);
	cfg_refresh_interval = 0;
	cfg_refresh_max = 0;
	fk.nnames = 0;
	wait_asked("mta-sts.bgfirst.test", 3000);
	assert_true(asked("mta-sts.bgfirst.test") > 0);
	wait_asked("_mta-sts.bgsecond.test", 3000);
	assert_true(asked("_mta-sts.bgsecond.test") > 0);
	policy_free(p);
}

/* The default interval (1h): no round in the test's time. */
static void
test_no_refresh_timer_by_default(void **state)
{
	static const char *body = "version: STSv1\nmode: enforce\n"
	    "mx: mx.bg.test\nmax_age: 86400\n";
	struct policy *p;

	cache_policy("bgdue.test", "bd1", body, 80000, 86400);
	p = mkpolicy(NULL, 1);
	fk.nnames = 0;
	wait_asked("_mta-sts.bgdue.test", 500);
	assert_int_equal(asked("_mta-sts.bgdue.test"), 0);
	policy_free(p);
}

/*
 * _mta-sts.D and mta-sts.D longer than 253 octets: no MTA-STS query at
 * all (never a cut name), the lookup counts as sts-policy-fetch-error,
 * and the decision goes on without MTA-STS.
 */
static void
test_long_domain_sts_refused(void **state)
{
	struct policy *p = mkpolicy(NULL, 1);
	struct policy_verdict *v;
	int i;

	assert_int_equal(strlen(longdom), 247);
	fk.nnames = 0;
	v = lookup(p, longdom, "192.0.2.5");
	assert_int_equal(v->level, TLS_LEVEL_MAY);
	assert_string_equal(v->mx_host, "mx.plain.test");
	assert_string_equal(v->sts_note, "sts-policy-fetch-error");
	assert_non_null(strstr(v->detail, "not a valid DNS name"));
	policy_verdict_free(v);
	wait_asked("-", 500);	/* time for a fetch to ask */
	for (i = 0; i < fk.nnames; i++) {
		if (strncmp(fk.names[i], "_mta-sts.", 9) == 0 ||
		    strncmp(fk.names[i], "mta-sts.", 8) == 0)
			fail_msg("asked for %s", fk.names[i]);
		assert_true(strlen(fk.names[i]) <= 253);
	}
	policy_free(p);
}

/* Two MX hosts on one address: H is the one the policy lists. */
static void
test_shared_address(void **state)
{
	struct policy *p = mkpolicy(NULL, 1);
	struct policy_verdict *v = lookup(p, "shared.test", "192.0.2.8");

	assert_int_equal(v->level, TLS_LEVEL_VERIFY);
	assert_string_equal(v->mx_host, "b.shared.test");
	policy_verdict_free(v);
	policy_free(p);
}

/*
 * Without a policy, H is the most preferred MX host owning A (a.shared.test
 * before b.shared.test), and its own record ("host|", whatever its
 * address) is the history that counts: a.shared.test completed STARTTLS
 * at the address it had before, 192.0.2.90; 192.0.2.8 has no record of
 * its own.  Encrypt, from a.shared.test's record.  Red with the mutant of
 * decide() without the break in the choice of H: mx_host
 * "b.shared.test", whose record knows nothing, and level may.
 */
static void
test_shared_address_most_preferred(void **state)
{
	char err[256];
	struct history *h = history_open(statedir, err, sizeof(err));
	struct sockaddr_in old;
	struct policy *p;
	struct policy_verdict *v;

	assert_non_null(h);
	memset(&old, 0, sizeof(old));
	old.sin_family = AF_INET;
	inet_pton(AF_INET, "192.0.2.90", &old.sin_addr);
	history_note(h, 30 * 86400, (struct sockaddr *)&old, "a.shared.test",
	    1, 1);
	history_close(h);
	p = mkpolicy(NULL, 0);
	v = lookup(p, "shared.test", "192.0.2.8");
	assert_string_equal(v->mx_host, "a.shared.test");
	assert_int_equal(v->level, TLS_LEVEL_ENCRYPT);
	assert_string_equal(v->source, "tls-history");
	policy_verdict_free(v);
	policy_free(p);
	h = history_open(statedir, err, sizeof(err));
	assert_non_null(h);
	history_del(h, "a.shared.test", (struct sockaddr *)&old);
	history_del(h, "a.shared.test", NULL);
	history_del(h, "", (struct sockaddr *)&old);
	history_close(h);
}

static void
test_expired_is_no_policy(void **state)
{
	struct policy *p = mkpolicy(NULL, 1);
	struct policy_verdict *v = lookup(p, "expired.test", "192.0.2.7");

	assert_int_equal(v->level, TLS_LEVEL_MAY);
	assert_string_equal(v->source, "default");
	policy_verdict_free(v);
	policy_free(p);
}

/*
 * An expired enforce policy is cached (nobody used it for a max_age, so
 * no refresh kept it) and the _mta-sts TXT lookup fails (SERVFAIL) or
 * finds no record (NXDOMAIN): an attacker on the path who controls DNS
 * timing.  The lookup fetches under the cached id, waits, and the fetched
 * policy decides (enforce: the MX must verify) and is stored.  Old code:
 * no policy, opportunistic, and a STARTTLS strip delivers in cleartext.
 */
static void
expired_refetched(const char *domain, const char *ip, const char *mx,
    const char *id)
{
	static char body[200];
	char host[300];
	struct policy *p;
	struct policy_verdict *v;
	struct sts_cache_entry e;
	int64_t now = (int64_t)time(NULL);

	snprintf(body, sizeof(body), "version: STSv1\nmode: enforce\n"
	    "mx: %s\nmax_age: 86400\n", mx);
	cache_policy(domain, id, body, 90000, 86400);	/* expired */
	snprintf(host, sizeof(host), "mta-sts.%s", domain);
	mock_http(host, body);
	p = mkpolicy(NULL, 1);
	v = lookup(p, domain, ip);
	assert_int_equal(v->level, TLS_LEVEL_VERIFY);
	assert_string_equal(v->source, "mta-sts");
	assert_int_equal(mh.calls, 1);
	assert_string_equal(v->mx_host, mx);
	assert_non_null(strstr(v->sts_note, "mode=enforce"));
	assert_non_null(strstr(v->sts_note, "fetched"));
	policy_verdict_free(v);
	/* stored under the cached id, valid again */
	assert_int_equal(sts_cache_get(policy_sts_cache(p), domain, &e), 1);
	assert_string_equal(e.id, id);
	assert_true(e.expires > now);
	sts_cache_entry_clear(&e);
	policy_free(p);
	mock_http_off();
}

static void
test_expired_txt_servfail_refetched(void **state)
{
	expired_refetched("expsf.test", "192.0.2.70", "mx.expsf.test", "ef1");
}

static void
test_expired_txt_nxdomain_refetched(void **state)
{
	expired_refetched("expnx.test", "192.0.2.71", "mx.expnx.test", "en1");
}

/*
 * The same, but the refetch fails: no policy, as without it (an expired
 * policy is no policy), the cached record left as it was.  The next
 * lookup within the back-off fetches nothing: a policy host that does not
 * answer does not hold up every lookup of the domain.
 */
static void
test_expired_refetch_fails_no_policy(void **state)
{
	static const char *body = "version: STSv1\nmode: enforce\n"
	    "mx: mx.expfail.test\nmax_age: 86400\n";
	struct stat_ctr *backoff = stats_get(
	    "mxguard_sts_refetch_expired_total{result=\"backoff\"}", "x");
	int64_t before_backoff = stats_value(backoff);
	struct sts_cache_entry before, after;
	struct policy *p;
	struct policy_verdict *v;

	cache_policy("expfail.test", "xf1", body, 90000, 86400);
	mock_http("mta-sts.expfail.test", NULL);
	p = mkpolicy(NULL, 1);
	assert_int_equal(sts_cache_get(policy_sts_cache(p), "expfail.test",
	    &before), 1);
	v = lookup(p, "expfail.test", "192.0.2.72");
	assert_int_equal(mh.calls, 1);
	assert_int_equal(v->level, TLS_LEVEL_MAY);
	assert_string_equal(v->source, "default");
	assert_string_equal(v->sts_note, "");	/* as without the fetch */
	assert_non_null(strstr(v->detail, "expired"));
	policy_verdict_free(v);
	assert_int_equal(sts_cache_get(policy_sts_cache(p), "expfail.test",
	    &after), 1);
	assert_string_equal(after.id, "xf1");
	assert_int_equal(after.expires, before.expires);
	assert_int_equal(after.fetched, before.fetched);
	sts_cache_entry_clear(&before);
	sts_cache_entry_clear(&after);
	/* within the back-off: no fetch */
	v = lookup(p, "expfail.test", "192.0.2.72");
	assert_int_equal(mh.calls, 1);
	assert_int_equal(v->level, TLS_LEVEL_MAY);
	assert_int_equal(stats_value(backoff), before_backoff + 1);
	policy_verdict_free(v);
	policy_free(p);
	mock_http_off();
}

/*
 * A domain that publishes enforce in a file RFC 8461's ABNF refuses for
 * its layout alone (an empty line, "Mode:", an mx with a trailing dot,
 * max_age over the maximum), under a TXT record likewise ("ID = len1"):
 * its policy is in force, not none (old code: sts-policy-invalid, the
 * domain without protection, mail to any MX in the clear), and the log
 * lines of the record and of the fetch say what was let pass.
 */
static void
test_lenient_policy(void **state)
{
	static const char *body = "version: STSv1\n\nMode: enforce\n"
	    "mx: mx.lenient.test.\nmax_age: 99999999999\n";
	char path[200], line[2048];
	struct policy *p;
	struct policy_verdict *v;
	int fd, saved, found = 0, txtfound = 0;
	FILE *f;

	(void)state;
	mock_http("mta-sts.lenient.test", body);
	p = mkpolicy(NULL, 1);
	snprintf(path, sizeof(path), "%s/log", statedir);
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(saved >= 0 && fd >= 0);
	dup2(fd, STDERR_FILENO);
	close(fd);
	log_set_level(LOG_LVL_INFO);
	v = lookup(p, "lenient.test", "192.0.2.75");
	fflush(stderr);
	log_set_level(getenv("TEST_DEBUG") ? LOG_LVL_DEBUG : LOG_LVL_ERR);
	dup2(saved, STDERR_FILENO);
	close(saved);
	assert_int_equal(mh.calls, 1);
	assert_int_equal(v->level, TLS_LEVEL_VERIFY);
	assert_string_equal(v->source, "mta-sts");
	policy_verdict_free(v);
	policy_free(p);
	mock_http_off();
	assert_non_null(f = fopen(path, "r"));
	while (fgets(line, sizeof(line), f) != NULL)
		if (strstr(line, "event=sts-fetch domain=lenient.test id=len1 "
		    "result=ok mode=enforce max_age=31557600 mx_patterns=1 "
		    "lenient=blank-line,key-case,max-age-clamped,"
		    "mx-trailing-dot") != NULL)
			found++;
		else if (strstr(line, "event=sts-txt domain=lenient.test "
		    "id=len1 result=ok lenient=txt-whitespace-around-equals,"
		    "txt-key-case") != NULL)
			txtfound++;
	fclose(f);
	unlink(path);
	assert_int_equal(found, 1);
	assert_int_equal(txtfound, 1);
}

/* A testing policy's check of a host that could not be made here (past
 * what mxguard keeps): not reported to the domain (may, report only,
 * this gateway's, no reason) */
static void
assert_testing_unchecked(const struct policy_verdict *v)
{
	assert_int_equal(v->level, TLS_LEVEL_MAY);
	assert_int_equal(v->report_only, 1);
	assert_int_equal(v->local, 1);
	assert_string_equal(v->reason, "");
}

/*
 * An enforce policy with more mx patterns than mxguard keeps
 * (STS_MAX_MX, 64) is the domain's policy all the same: a host in the
 * first 64 is verified, one only a pattern past them could list is
 * deferred as this gateway's limit (local-error, not reported), from the
 * fetch and from the cache alike.  Old code: the file was invalid, no
 * policy, and both went opportunistically (may).
 */
static void
test_many_mx_patterns(void **state)
{
	static char body[4096];
	struct policy *p;
	struct policy_verdict *v;
	size_t o;
	int i;

	(void)state;
	o = (size_t)snprintf(body, sizeof(body), "version: STSv1\n"
	    "mode: enforce\nmax_age: 86400\n");
	for (i = 1; i <= 70; i++)
		o += (size_t)snprintf(body + o, sizeof(body) - o,
		    "mx: mx%d.manymx.test\n", i);
	mock_http("mta-sts.manymx.test", body);
	p = mkpolicy(NULL, 1);
	v = lookup(p, "manymx.test", "192.0.2.78");
	assert_int_equal(mh.calls, 1);
	assert_int_equal(v->level, TLS_LEVEL_DEFER);
	assert_string_equal(v->source, "mta-sts");
	assert_string_equal(v->reason, "local-error");
	assert_int_equal(v->local, 1);
	assert_string_equal(v->mx_host, "mx70.manymx.test");
	assert_non_null(strstr(v->detail, "6 not checked"));
	policy_verdict_free(v);
	/* from the cache now */
	v = lookup(p, "manymx.test", "192.0.2.77");
	assert_int_equal(mh.calls, 1);
	assert_int_equal(v->level, TLS_LEVEL_VERIFY);
	assert_string_equal(v->mx_host, "mx1.manymx.test");
	assert_non_null(strstr(v->sts_note, "cached"));
	policy_verdict_free(v);
	v = lookup(p, "manymx.test", "192.0.2.78");
	assert_int_equal(mh.calls, 1);
	assert_int_equal(v->level, TLS_LEVEL_DEFER);
	assert_string_equal(v->reason, "local-error");
	policy_verdict_free(v);
	policy_free(p);
	mock_http_off();
	/* a testing policy of the same patterns: the check of a host past
	 * them is not made, so not reported (no reason, local) */
	memcpy(strstr(body, "enforce"), "testing", 7);
	cache_policy("manymxt.test", "mt1", body, 10, 86400);
	p = mkpolicy(NULL, 1);
	v = lookup(p, "manymxt.test", "192.0.2.78");
	assert_testing_unchecked(v);
	assert_non_null(strstr(v->detail, "testing: not reported"));
	policy_verdict_free(v);
	policy_free(p);
}

/*
 * The same policy larger than sts_cache_max_entry_size as published
 * (long patterns): the cache keeps it as its fields, the first 64, and
 * its note of the dropped ones, so that after a restart (a new engine
 * reading the cache) the host only the 70th pattern lists still defers
 * as this gateway's limit.  Red before: validation-failure, reported to
 * the domain, for the note was lost with the patterns.
 */
static void
test_many_mx_patterns_compact(void **state)
{
	static char body[16384];
	struct policy *p;
	struct policy_verdict *v;
	size_t o;
	int i;

	(void)state;
	o = (size_t)snprintf(body, sizeof(body), "version: STSv1\n"
	    "mode: enforce\nmax_age: 86400\nmx: mx1.manymx.test\n");
	for (i = 2; i < 70; i++)
		o += (size_t)snprintf(body + o, sizeof(body) - o,
		    "mx: mx%d.%s.%s.manymx.test\n", i, "aaaaaaaaaaaaaaaaaaaaaa"
		    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbb"
		    "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
	o += (size_t)snprintf(body + o, sizeof(body) - o,
	    "mx: mx70.manymx.test\n");
	assert_true(o > STS_CACHE_ENTRY_MAX);
	cache_policy("manymxc.test", "mc1", body, 10, 86400);
	p = mkpolicy(NULL, 1);
	v = lookup(p, "manymxc.test", "192.0.2.78");
	assert_int_equal(v->level, TLS_LEVEL_DEFER);
	assert_string_equal(v->source, "mta-sts");
	assert_string_equal(v->reason, "local-error");
	assert_int_equal(v->local, 1);
	assert_string_equal(v->mx_host, "mx70.manymx.test");
	assert_non_null(strstr(v->detail, "6 not checked"));
	assert_non_null(strstr(v->sts_note, "cached"));
	policy_verdict_free(v);
	policy_free(p);
}

/* Takes domain's policy out of the cache. */
static void
uncache(const char *domain)
{
	char err[256];
	struct sts_cache *c = sts_cache_open(statedir, err, sizeof(err));

	assert_non_null(c);
	assert_int_equal(sts_cache_del(c, domain), 0);
	sts_cache_close(c);
}

/*
 * An _mta-sts TXT answer of 65 records, one past what an answer keeps
 * (DNS_MAX_RR), with a v=STSv1 record first and another last: the whole
 * answer has two, so the domain has no available policy (RFC 8461
 * section 3.1) and a cached one stays in force; the kept part has one.
 * With a valid cached policy under another id, that policy decides and
 * nothing is fetched.  Red before: the kept record taken for the whole
 * answer, its policy fetched (1 call) and deciding (mx1 not in it:
 * validation-failure).  The answer is read whole (the records past the
 * kept too): with nothing cached, two records are no valid record, so
 * no policy and nothing fetched, as RFC 8461 section 3.1 has it.
 */
static void
test_txt_cut(void **state)
{
	static const char *other = "version: STSv1\nmode: enforce\n"
	    "mx: elsewhere.test\nmax_age: 86400\n";
	struct policy *p;
	struct policy_verdict *v;

	(void)state;
	cache_policy("tc.test", "c0", "version: STSv1\nmode: enforce\n"
	    "mx: mx1.manymx.test\nmax_age: 86400\n", 10, 86400);
	mock_http("mta-sts.tc.test", other);
	p = mkpolicy(NULL, 1);
	v = lookup(p, "tc.test", "192.0.2.77");
	assert_int_equal(mh.calls, 0);
	assert_int_equal(v->level, TLS_LEVEL_VERIFY);
	assert_string_equal(v->source, "mta-sts");
	assert_string_equal(v->mx_host, "mx1.manymx.test");
	assert_non_null(strstr(v->sts_note, "cached"));
	policy_verdict_free(v);
	policy_free(p);
	/* nothing cached: two records, no policy */
	uncache("tc.test");
	p = mkpolicy(NULL, 1);
	v = lookup(p, "tc.test", "192.0.2.77");
	assert_int_equal(mh.calls, 0);
	assert_int_not_equal(v->level, TLS_LEVEL_DEFER);
	assert_int_not_equal(v->level, TLS_LEVEL_VERIFY);
	assert_non_null(strstr(v->detail, "more than one v=STSv1"));
	policy_verdict_free(v);
	policy_free(p);
	mock_http_off();
}

/*
 * An _mta-sts TXT answer of 65 records with one v=STSv1 record is one
 * valid record, wherever it sits: the answer is read whole, the records
 * past the 64 an answer keeps included.  tn.test's is first, under a new
 * id (n1), with an enforce policy cached under c0 that lists its old MX
 * host: the domain moved its MX and published n1, whose policy lists the
 * new one.  Red before (b1d22af read the kept part as maybe cut, and
 * kept c0 in force until its refresh near expiry, up to a max_age away):
 * no fetch (0 != 1), the new MX host deferred as not in c0's policy,
 * the mail deferred until then and bounced by the MTA's queue lifetime.
 * tl.test's record is the 65th, nothing cached: red before, no policy
 * (the record past the 64 unseen); now its enforce policy is fetched
 * and decides.
 */
static void
test_txt_cut_one(void **state)
{
	static const char *moved = "version: STSv1\nmode: enforce\n"
	    "mx: mx1.manymx.test\nmax_age: 86400\n";
	struct policy *p;
	struct policy_verdict *v;

	(void)state;
	cache_policy("tn.test", "c0", "version: STSv1\nmode: enforce\n"
	    "mx: old.tn.test\nmax_age: 86400\n", 10, 86400);
	mock_http("mta-sts.tn.test", moved);
	p = mkpolicy(NULL, 1);
	v = lookup(p, "tn.test", "192.0.2.77");
	assert_int_equal(mh.calls, 1);
	assert_int_equal(v->level, TLS_LEVEL_VERIFY);
	assert_string_equal(v->source, "mta-sts");
	assert_string_equal(v->mx_host, "mx1.manymx.test");
	policy_verdict_free(v);
	policy_free(p);
	mock_http_off();
	uncache("tn.test");

	mock_http("mta-sts.tl.test", moved);
	p = mkpolicy(NULL, 1);
	v = lookup(p, "tl.test", "192.0.2.77");
	assert_int_equal(mh.calls, 1);
	assert_int_equal(v->level, TLS_LEVEL_VERIFY);
	assert_string_equal(v->source, "mta-sts");
	policy_verdict_free(v);
	policy_free(p);
	mock_http_off();
	uncache("tl.test");
}

/* Runs the loop until the mocked policy host answered n fetches. */
static void
wait_fetched(int n)
{
	struct ev_timer *t = ev_timer_new(loop, poll_cb, NULL);
	int i;

	for (i = 0; i < 60 && (mh.calls < n || mh.pending); i++) {
		ev_timer_arm(t, 50);
		ev_loop_run(loop);
	}
	ev_timer_free(t);
	assert_int_equal(mh.calls, n);
	assert_false(mh.pending);
}

/* The id domain's cached policy is stored under. */
static void
assert_cached_id(struct policy *p, const char *domain, const char *id)
{
	struct sts_cache_entry e;

	assert_int_equal(sts_cache_get(policy_sts_cache(p), domain, &e), 1);
	assert_string_equal(e.id, id);
	sts_cache_entry_clear(&e);
}

/*
 * test_txt_cut's answer for a cached policy due for its refresh: it is
 * refreshed under its own id, as when the TXT lookup fails, by the
 * lookup that uses it and by the refresh timer alike, never under the
 * kept record's id.  Red before: the lookup's refresh fetched under t1
 * and stored t1; the timer's refresh did too.
 */
static void
test_txt_cut_refresh(void **state)
{
	static const char *body = "version: STSv1\nmode: enforce\n"
	    "mx: mx1.manymx.test\nmax_age: 86400\n";
	struct policy *p;
	struct policy_verdict *v;

	(void)state;
	uncache("tc.test");
	cache_policy("tc.test", "c0", body, 80000, 86400);
	mock_http("mta-sts.tc.test", body);
	p = mkpolicy(NULL, 1);
	v = lookup(p, "tc.test", "192.0.2.77");
	assert_int_equal(v->level, TLS_LEVEL_VERIFY);
	assert_non_null(strstr(v->sts_note, "id=c0,cached"));
	policy_verdict_free(v);
	wait_fetched(1);
	assert_cached_id(p, "tc.test", "c0");
	policy_free(p);
	mock_http_off();
	/* the refresh timer's, with no lookup */
	uncache("tc.test");
	cache_policy("tc.test", "c0", body, 80000, 86400);
	mock_http("mta-sts.tc.test", body);
	cfg_refresh_interval = 100;
	p = mkpolicy(NULL, 1);
	cfg_refresh_interval = 0;
	wait_fetched(1);
	assert_cached_id(p, "tc.test", "c0");
	policy_free(p);
	mock_http_off();
}

/*
 * The MTA connects to an MX host past the 16 the walk keeps: whether it
 * is in the policy nobody here knows, so an enforce policy defers it as
 * this gateway's limit (local-error, not reported) and a testing policy
 * does not report it; a kept host still verifies.  Old code: deferred
 * as validation-failure ("not an address of any MX host"), and the
 * testing check reported so to the domain by TLSRPT.
 */
static void
test_mx_hosts_unkept(void **state)
{
	struct policy *p;
	struct policy_verdict *v;

	(void)state;
	cache_policy("bigmx.test", "bm1", "version: STSv1\nmode: enforce\n"
	    "mx: *.bigmx.test\nmax_age: 86400\n", 10, 86400);
	cache_policy("bigmxt.test", "bt1", "version: STSv1\nmode: testing\n"
	    "mx: *.bigmx.test\nmax_age: 86400\n", 10, 86400);
	p = mkpolicy(NULL, 1);
	v = lookup(p, "bigmx.test", "192.0.2.79");
	assert_int_equal(v->level, TLS_LEVEL_DEFER);
	assert_string_equal(v->reason, "local-error");
	assert_int_equal(v->local, 1);
	assert_non_null(strstr(v->detail, "16 MX hosts"));
	policy_verdict_free(v);
	v = lookup(p, "bigmx.test", "192.0.2.80");
	assert_int_equal(v->level, TLS_LEVEL_VERIFY);
	assert_string_equal(v->mx_host, "a01.bigmx.test");
	policy_verdict_free(v);
	v = lookup(p, "bigmxt.test", "192.0.2.79");
	assert_testing_unchecked(v);
	policy_verdict_free(v);
	policy_free(p);
}

/*
 * The same back-off, then a reload: it ends, as the failed refetch came
 * through the replaced resolver and CA store (what the operator may have
 * reloaded to fix), and the next lookup fetches through the new ones
 * and finds the policy.  Old code: the back-off (up to 16 min) outlived
 * the reload, and the lookups went on with no policy.
 */
static void
test_expired_refetch_backoff_ends_at_reload(void **state)
{
	static const char *body = "version: STSv1\nmode: enforce\n"
	    "mx: mx.exprl.test\nmax_age: 86400\n";
	struct policy_verdict *v;
	struct policy *p;
	int i;

	cache_policy("exprl.test", "xr1", body, 90000, 86400);
	mock_http("mta-sts.exprl.test", NULL);
	p = mkpolicy(NULL, 1);
	/* the refetch fails, the next lookup is backed off: no policy */
	for (i = 0; i < 2; i++) {
		v = lookup(p, "exprl.test", "192.0.2.74");
		assert_int_equal(v->level, TLS_LEVEL_MAY);
		policy_verdict_free(v);
	}
	assert_int_equal(mh.calls, 1);
	reload_then_fetched(p, body, "exprl.test", "192.0.2.74",
	    "mode=enforce,id=xr1,fetched");
}

/* Nothing cached and the TXT lookup fails: no fetch (it would be one for
 * every domain whose TXT lookup fails), no policy. */
static void
test_no_cache_txt_servfail_no_fetch(void **state)
{
	struct policy *p = mkpolicy(NULL, 1);
	struct policy_verdict *v;

	mock_http("mta-sts.nocache.test", "version: STSv1\nmode: enforce\n"
	    "mx: mx.nocache.test\nmax_age: 86400\n");
	fk.nnames = 0;
	v = lookup(p, "nocache.test", "192.0.2.73");
	assert_int_equal(v->level, TLS_LEVEL_MAY);
	assert_string_equal(v->source, "default");
	policy_verdict_free(v);
	wait_asked("mta-sts.nocache.test", 300);
	assert_int_equal(asked("mta-sts.nocache.test"), 0);
	assert_int_equal(mh.calls, 0);
	policy_free(p);
	mock_http_off();
}

static void
test_no_policy(void **state)
{
	struct policy *p = mkpolicy(NULL, 1);
	struct policy_verdict *v = lookup(p, "plain.test", "192.0.2.5");

	assert_int_equal(v->level, TLS_LEVEL_MAY);
	assert_string_equal(v->source, "default");
	assert_string_equal(v->mx_host, "mx.plain.test");
	policy_verdict_free(v);
	/* internationalised domain: A-label used for lookups */
	v = lookup(p, "b\xc3\xbc" "cher.test", "192.0.2.5");
	assert_string_equal(v->domain, "xn--bcher-kva.test");
	assert_string_equal(v->mx_host, "mx.plain.test");
	policy_verdict_free(v);
	policy_free(p);
}

static void
test_invalid_domain(void **state)
{
	struct policy *p = mkpolicy(NULL, 1);
	struct policy_verdict *v = lookup(p, "bad..domain", "192.0.2.5");

	assert_int_equal(v->level, TLS_LEVEL_DEFER);
	assert_non_null(strstr(v->detail, "recipient domain"));
	policy_verdict_free(v);
	policy_free(p);
}

static void
test_sts_disabled(void **state)
{
	struct policy *p = mkpolicy(NULL, 0);
	struct policy_verdict *v = lookup(p, "enf.test", "192.0.2.66");

	assert_int_equal(v->level, TLS_LEVEL_MAY);
	policy_verdict_free(v);
	policy_free(p);
}

/*
 * Issue 13: while the resolver self-check says the resolver does not
 * validate, a verdict DANE could have decided notes why DANE did not
 * apply; not before the first check, not once it validates, and not for
 * an override that never asks DANE.
 */
static void
test_dane_not_applicable_note(void **state)
{
	const char *ovr[] = { "enf.test encrypt", "dane.plain.test dane",
	    NULL };
	struct policy *p = mkpolicy(ovr, 0);
	struct policy_verdict *v = lookup(p, "plain.test", "192.0.2.5");

	assert_null(v->dane_note);		/* not known yet */
	policy_verdict_free(v);
	policy_set_resolver_validating(p, 0);
	v = lookup(p, "plain.test", "192.0.2.5");
	assert_int_equal(v->level, TLS_LEVEL_MAY);
	assert_non_null(v->dane_note);
	assert_string_equal(v->dane_note, "resolver-not-validating");
	policy_verdict_free(v);
	/* Postfix's opportunistic dane asks DANE too */
	v = lookup(p, "dane.plain.test", "192.0.2.5");
	assert_string_equal(v->source, "override");
	assert_non_null(v->dane_note);
	policy_verdict_free(v);
	/* encrypt never asks DANE */
	v = lookup(p, "enf.test", "192.0.2.1");
	assert_int_equal(v->level, TLS_LEVEL_ENCRYPT);
	assert_null(v->dane_note);
	policy_verdict_free(v);
	policy_set_resolver_validating(p, 1);
	v = lookup(p, "plain.test", "192.0.2.5");
	assert_null(v->dane_note);
	policy_verdict_free(v);
	policy_free(p);
}

/*
 * DANE against MTA-STS in signed zones: usable TLSA records take
 * precedence over an enforce policy; only unusable ones (usage 1, PKIX-EE,
 * means nothing for SMTP) authenticate nothing and must not stand in for
 * the enforce policy's certificate check, though alone they make TLS
 * mandatory.  A failed MX lookup (SERVFAIL without an extended error)
 * defers: an attacker who breaks it must not turn DANE off.
 */
static void
test_dane_against_sts(void **state)
{
	struct policy *p = mkpolicy(NULL, 1);
	struct policy_verdict *v;

	policy_set_resolver_validating(p, 1);
	v = lookup(p, "unus.signed.test", "192.0.2.40");
	assert_int_equal(v->level, TLS_LEVEL_VERIFY);
	assert_string_equal(v->source, "mta-sts");
	assert_string_equal(v->mx_host, "mx.unus.signed.test");
	assert_non_null(v->dane_note);
	assert_string_equal(v->dane_note, "tlsa-unusable");
	policy_verdict_free(v);
	v = lookup(p, "usab.signed.test", "192.0.2.41");
	assert_int_equal(v->level, TLS_LEVEL_DANE);
	assert_string_equal(v->source, "dane");
	assert_non_null(strstr(v->sts_note, "ignored"));
	policy_verdict_free(v);
	v = lookup(p, "onlyunus.signed.test", "192.0.2.42");
	assert_int_equal(v->level, TLS_LEVEL_ENCRYPT);
	assert_string_equal(v->source, "dane");
	assert_null(v->dane_note);
	policy_verdict_free(v);
	v = lookup(p, "mxfail.signed.test", "192.0.2.43");
	assert_int_equal(v->level, TLS_LEVEL_DEFER);
	assert_string_equal(v->reason, "dnssec-invalid");
	policy_verdict_free(v);
	/* a secure MX RRset: DNSSEC says which hosts are D's MX, and DANE
	 * decides for its host even where the enforce policy does not list
	 * it (RFC 8461 section 2); only an insecure one leaves it to the
	 * policy (test_insecure_mx_dane_not_over_sts) */
	v = lookup(p, "unlisted.signed.test", "192.0.2.44");
	if (v->level != TLS_LEVEL_DANE)
		fail_msg("a secure MX host's usable TLSA records gave way to "
		    "the enforce policy: level %s source %s reason %s",
		    tls_level_name(v->level), v->source, v->reason);
	assert_string_equal(v->source, "dane");
	assert_string_equal(v->mx_host, "mx.unlisted.signed.test");
	assert_non_null(strstr(v->sts_note, "ignored"));
	policy_verdict_free(v);
	/* the self-check's word does not turn DANE off: its check name may
	 * fail where the zones that matter validate */
	policy_set_resolver_validating(p, 0);
	v = lookup(p, "usab.signed.test", "192.0.2.41");
	assert_int_equal(v->level, TLS_LEVEL_DANE);
	policy_verdict_free(v);
	v = lookup(p, "mxfail.signed.test", "192.0.2.43");
	assert_int_equal(v->level, TLS_LEVEL_DEFER);
	policy_verdict_free(v);
	policy_free(p);
}

/*
 * RFC 7672 section 2.2.2: the MX host is a secure CNAME, so its TLSA
 * records are looked up at the name it expands to first.  The resolver
 * here answers the CNAME alone and dns.c asks for the target itself (the
 * chain in two answers, not one).  Before, the expanded name was judged
 * from the last answer alone (asked for the target, owned by it: no
 * CNAME seen), so only _25._tcp.mx.split.signed.test was asked, which has
 * none: "no DANE", and the mail went at may.
 */
static void
test_dane_cname_chain_split(void **state)
{
	struct policy *p = mkpolicy(NULL, 0);
	struct policy_verdict *v;

	v = lookup(p, "split.signed.test", "192.0.2.60");
	assert_string_equal(v->source, "dane");
	assert_int_equal(v->level, TLS_LEVEL_DANE);
	assert_string_equal(v->mx_host, "mx.split.signed.test");
	assert_non_null(v->tls);
	assert_non_null(v->tls->dane);
	assert_string_equal(v->tls->dane->tlsa_base,
	    "real.split.signed.test");
	policy_verdict_free(v);
	policy_free(p);
}

/* lookup() towards an IPv6 destination */
static struct policy_verdict *
lookup6(struct policy *p, const char *domain, const char *ip)
{
	struct sockaddr_in6 s6;
	struct ev_timer *guard = ev_timer_new(loop,
	    (ev_timer_cb *)ev_loop_stop, loop);

	memset(&s6, 0, sizeof(s6));
	s6.sin6_family = AF_INET6;
	s6.sin6_port = htons(25);
	assert_int_equal(inet_pton(AF_INET6, ip, &s6.sin6_addr), 1);
	got_v = NULL;
	assert_non_null(policy_lookup(p, domain, (struct sockaddr *)&s6,
	    sizeof(s6), "t1", got, NULL));
	ev_timer_arm(guard, 10000);
	ev_loop_run(loop);
	ev_timer_free(guard);
	assert_non_null(got_v);
	return got_v;
}

/*
 * An MTA on an IPv6-only network reaches an IPv4-only MX through NAT64:
 * it connects to 64:ff9b::G (RFC 6052's well-known prefix, the AAAA its
 * DNS64 resolver made from the A record G), which is G.  The flow must get
 * what one to G gets: H owns A by its A records, DANE by their validation
 * (a DNS64 may hand out the synthesised AAAA without the AD bit, or
 * mxguard's resolver may have no DNS64 at all), the history of G's record.
 * Before: mxguard looked for H among AAAA records, found none, and the
 * DANE domain and the MTA-STS enforce one deferred for good (a DNS64
 * answer without AD would have turned DANE off), and a TLS success
 * through NAT64 was noted under the IPv6 form, which a lookup of G never
 * read.
 */
static void
test_nat64_is_its_ipv4(void **state)
{
	char err[256];
	struct history *h;
	struct sockaddr_in6 s6;
	struct sockaddr_in sin;
	struct policy *p = mkpolicy(NULL, 1);
	struct policy_verdict *v;

	policy_set_resolver_validating(p, 1);
	v = lookup6(p, "usab.signed.test", "64:ff9b::192.0.2.41");
	assert_int_equal(v->level, TLS_LEVEL_DANE);
	assert_string_equal(v->source, "dane");
	assert_string_equal(v->mx_host, "mx.usab.signed.test");
	policy_verdict_free(v);
	v = lookup6(p, "enf.test", "64:ff9b::c000:201");	/* 192.0.2.1 */
	assert_int_equal(v->level, TLS_LEVEL_VERIFY);
	assert_string_equal(v->mx_host, "mx1.enf.test");
	policy_verdict_free(v);
	/* not the embedded address: still no MX host's */
	v = lookup6(p, "enf.test", "64:ff9b::198.51.100.7");
	assert_int_equal(v->level, TLS_LEVEL_DEFER);
	policy_verdict_free(v);
	/* a success through NAT64 is G's history */
	memset(&s6, 0, sizeof(s6));
	s6.sin6_family = AF_INET6;
	inet_pton(AF_INET6, "64:ff9b::192.0.2.5", &s6.sin6_addr);
	policy_record_tls(p, (struct sockaddr *)&s6, NULL, 1, 1);
	v = lookup(p, "plain.test", "192.0.2.5");
	assert_int_equal(v->level, TLS_LEVEL_ENCRYPT);
	assert_string_equal(v->source, "tls-history");
	policy_verdict_free(v);
	policy_free(p);
	h = history_open(statedir, err, sizeof(err));
	assert_non_null(h);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	inet_pton(AF_INET, "192.0.2.5", &sin.sin_addr);
	history_del(h, "", (struct sockaddr *)&sin);
	history_del(h, "", (struct sockaddr *)&s6);
	history_close(h);
}

/*
 * The same through a network-specific NAT64 prefix (nat64_prefix =
 * 2001:db8:64::/96, RFC 6052): the MTA connects to 2001:db8:64::G, which
 * is G, the MX host's A record.  Before, only 64:ff9b::/96 was NAT64: no
 * MX host of the MTA-STS enforce domain had that address, and its mail
 * was deferred.
 */
static void
test_nat64_network_specific(void **state)
{
	static const char *nsp[] = { "2001:db8:64::/96", NULL };
	struct strlist l = { (char **)nsp, 1 };
	char err[256];
	struct policy *p = mkpolicy(NULL, 1);
	struct policy_verdict *v;

	assert_int_equal(netaddr_set_nat64(&l, err, sizeof(err)), 0);
	v = lookup6(p, "enf.test", "2001:db8:64::192.0.2.1");
	assert_int_equal(v->level, TLS_LEVEL_VERIFY);
	assert_string_equal(v->mx_host, "mx1.enf.test");
	policy_verdict_free(v);
	policy_free(p);
}

static int
nat64_restore(void **state)
{
	static const char *wkp[] = { "64:ff9b::/96", NULL };
	struct strlist l = { (char **)wkp, 1 };
	char err[256];

	return netaddr_set_nat64(&l, err, sizeof(err));
}

/*
 * Postfix's dane-only is mandatory DANE authentication: "There is no
 * fallback to "may" or "encrypt" when TLSA records are missing or
 * unusable" (postconf(5), smtp_tls_security_level).  A tls_policy_file
 * line "D dane-only" for a domain whose TLSA records are all unusable
 * (usage 1 here) must defer, never deliver over unauthenticated TLS
 * (Postfix's opportunistic dane does fall back to encrypt there).
 * Before: level encrypt, source override.
 */
static void
test_dane_only_unusable_defers(void **state)
{
	const char *ovr[] = { "onlyunus.signed.test dane-only", NULL };
	struct policy *p = mkpolicy(ovr, 1);
	struct policy_verdict *v;

	(void)state;
	policy_set_resolver_validating(p, 1);
	v = lookup(p, "onlyunus.signed.test", "192.0.2.42");
	assert_string_equal(v->source, "override");
	assert_int_equal(v->level, TLS_LEVEL_DEFER);
	assert_string_equal(v->reason, "dane-required");
	assert_null(v->rpt);	/* this gateway's demand: not reported */
	policy_verdict_free(v);
	policy_free(p);
}

/* Writes lines to a new tls_policy_file at pfile and a configuration
 * naming it at conf (both mkstemp templates, filled in). */
static void
write_policy_file_conf(char *pfile, char *conf, const char *lines)
{
	FILE *fp;
	int fd;

	assert_true((fd = mkstemp(pfile)) >= 0);
	assert_non_null(fp = fdopen(fd, "w"));
	fputs(lines, fp);
	fclose(fp);
	assert_true((fd = mkstemp(conf)) >= 0);
	assert_non_null(fp = fdopen(fd, "w"));
	fprintf(fp, "tls_policy_file = %s\n", pfile);
	fclose(fp);
}

/*
 * Postfix's opportunistic dane (a tls_policy_file line "D dane"): DANE
 * where the records are there, may where DNSSEC says there are none.
 * Only unusable TLSA records (usage 1) still demand TLS: encrypt, as
 * without the line
 * (test_dane_against_sts), never may.  And a DANE lookup that has not
 * answered by policy_timeout (the MX walk held in a black hole) is no
 * "no records": it defers, dane-required, as a signed zone must never
 * fall back.  Red with the mutant of apply_override_level() that passes
 * unusable records over for OVR_DANE_MAY: level may (expected encrypt);
 * and with the one without its "r->dane == NULL && r->dane_wanted"
 * deferral: level may at policy_timeout (expected defer).
 */
static void
test_dane_may_unusable_or_unfinished(void **state)
{
	char pfile[] = "/tmp/mxg-pol-file-XXXXXX", conf[] =
	    "/tmp/mxg-pol-conf-XXXXXX";
	struct policy *p;
	struct policy_verdict *v;

	(void)state;
	/* Postfix's meaning of dane: a tls_policy_file line */
	write_policy_file_conf(pfile, conf,
	    "onlyunus.signed.test dane\nslow.test dane\n");
	cfg_file = conf;
	cfg_policy_timeout = 300;
	p = mkpolicy(NULL, 1);
	cfg_policy_timeout = 5000;
	cfg_file = NULL;
	policy_set_resolver_validating(p, 1);
	v = lookup(p, "onlyunus.signed.test", "192.0.2.42");
	assert_string_equal(v->source, "override");
	if (v->level != TLS_LEVEL_ENCRYPT)
		fail_msg("dane with only unusable TLSA records: level %s, "
		    "expected encrypt (%s)", tls_level_name(v->level), v->detail);
	policy_verdict_free(v);
	v = lookup(p, "slow.test", "192.0.2.11");
	assert_string_equal(v->source, "override");
	if (v->level != TLS_LEVEL_DEFER)
		fail_msg("dane, DANE lookup unfinished at policy_timeout: "
		    "level %s, expected defer", tls_level_name(v->level));
	assert_string_equal(v->reason, "dane-required");
	policy_verdict_free(v);
	policy_free(p);
	unlink(pfile);
	unlink(conf);
}

/*
 * verify (Postfix: match=hostname by default) checks the certificate for
 * the MX host H that owns A.  When no MX host of D owns A (the MTA was
 * sent elsewhere, or the MX walk was held past policy_timeout) there is
 * no H: nothing may match, as for match=hostname and for an address
 * entry.  Before, the names became D and .D (secure's), so a certificate
 * for any subdomain of D (www.D, a hosted shop.D) passed a verify policy
 * that demanded the MX host's name.
 */
static void
test_override_verify_no_mx_host(void **state)
{
	const char *ovr[] = { "plain.test verify", NULL };
	struct policy *p = mkpolicy(ovr, 0);
	struct policy_verdict *v;

	(void)state;
	v = lookup(p, "plain.test", "192.0.2.5");
	assert_int_equal(v->level, TLS_LEVEL_VERIFY);
	assert_non_null(v->tls);
	assert_int_equal(v->tls->nnames, 1);
	assert_string_equal(v->tls->names[0], "mx.plain.test");
	policy_verdict_free(v);
	/* 198.51.100.9 is no address of an MX host of plain.test */
	v = lookup(p, "plain.test", "198.51.100.9");
	assert_int_equal(v->level, TLS_LEVEL_VERIFY);
	assert_string_equal(v->mx_host, "");
	assert_non_null(v->tls);
	assert_int_equal(v->tls->nnames, 0);
	policy_verdict_free(v);
	policy_free(p);
}

/*
 * secure without match= checks the certificate for D and its subdomains
 * (Postfix's default match=nexthop:dot-nexthop), whatever the MX host H:
 * a certificate for H alone (a provider's name, outside D) must not pass.
 * Red with the mutant of apply_override_level() that takes verify's
 * branch (H's name) for secure too: nnames 1, "mx.plain.test" (expected
 * 2, "plain.test" and ".plain.test").
 */
static void
test_override_secure_names_domain(void **state)
{
	const char *ovr[] = { "plain.test secure", NULL };
	struct policy *p = mkpolicy(ovr, 0);
	struct policy_verdict *v;

	(void)state;
	v = lookup(p, "plain.test", "192.0.2.5");
	assert_int_equal(v->level, TLS_LEVEL_VERIFY);
	assert_string_equal(v->mx_host, "mx.plain.test");
	assert_non_null(v->tls);
	assert_int_equal(v->tls->nnames, 2);
	assert_string_equal(v->tls->names[0], "plain.test");
	assert_string_equal(v->tls->names[1], ".plain.test");
	policy_verdict_free(v);
	policy_free(p);
}

/*
 * tls_policy_file decides as it was when the configuration was loaded:
 * the engine a worker builds from the supervisor's configuration (a
 * worker started again after a crash) parses the bytes the supervisor
 * read and checked.  Before, it read the file again, so an edit made
 * since and never reloaded (a line taken out by mistake, half written)
 * decided that worker's sessions while its siblings ran the checked one.
 */
static void
test_policy_file_as_loaded(void **state)
{
	char pfile[] = "/tmp/mxg-pol-file-XXXXXX", conf[] =
	    "/tmp/mxg-pol-conf-XXXXXX";
	struct policy_verdict *v;
	struct config *cfg;
	struct policy *p;
	char err[256];
	FILE *fp;

	(void)state;
	write_policy_file_conf(pfile, conf, "plain.test encrypt\n");
	cfg_file = conf;
	cfg = mkcfg(NULL, 0);
	cfg_file = NULL;
	/* edited after the load, and not reloaded */
	assert_non_null(fp = fopen(pfile, "w"));
	fputs("plain.test none\n", fp);
	fclose(fp);
	if ((p = policy_new(loop, cfg, err, sizeof(err))) == NULL)
		fail_msg("policy_new: %s", err);
	config_free(cfg);
	v = lookup(p, "plain.test", "192.0.2.5");
	assert_string_equal(v->source, "override");
	assert_int_equal(v->level, TLS_LEVEL_ENCRYPT);
	policy_verdict_free(v);
	policy_free(p);
	unlink(pfile);
	unlink(conf);
}

/*
 * DANE takes precedence over MTA-STS only where DNSSEC says which hosts
 * are D's MX.  With an insecure MX RRset the host list is the attacker's
 * to write: an MX host it adds, in a signed zone of its own with TLSA
 * records for its own key (and the real MX's address, the one the MTA
 * connects to), must not stand in for the enforce policy, which lists
 * the hosts D allows.  Before: level dane for evil.signed.test, the
 * attacker's certificate accepted, the enforce policy "ignored".
 */
static void
test_insecure_mx_dane_not_over_sts(void **state)
{
	struct policy *p = mkpolicy(NULL, 1);
	struct policy_verdict *v;

	(void)state;
	policy_set_resolver_validating(p, 1);
	v = lookup(p, "stsdane.test", "192.0.2.50");
	if (v->level == TLS_LEVEL_DANE)
		fail_msg("DANE for %s decided over the enforce policy",
		    v->mx_host);
	assert_string_equal(v->source, "mta-sts");
	assert_int_equal(v->level, TLS_LEVEL_VERIFY);
	assert_string_equal(v->mx_host, "mx.stsdane.test");
	policy_verdict_free(v);
	policy_free(p);
}

/*
 * Only an enforce policy takes over from DANE for a host of an insecure
 * MX RRset that it does not list (test_insecure_mx_dane_not_over_sts): a
 * testing policy enforces nothing, so it stands in for nothing, and the
 * host's usable TLSA records decide (DANE, the policy's mode noted as
 * ignored).  Red with the mutant of dane_decide() that drops
 * "sp->mode == STS_MODE_ENFORCE" from the insecure-MX check: level may,
 * source mta-sts (report only), below the DANE the records demand.
 */
static void
test_insecure_mx_dane_over_testing(void **state)
{
	struct policy *p = mkpolicy(NULL, 1);
	struct policy_verdict *v;

	(void)state;
	policy_set_resolver_validating(p, 1);
	v = lookup(p, "stsdanet.test", "192.0.2.41");
	if (v->level != TLS_LEVEL_DANE)
		fail_msg("a testing policy stood in for DANE: level %s "
		    "source %s", tls_level_name(v->level), v->source);
	assert_string_equal(v->source, "dane");
	assert_string_equal(v->mx_host, "mx.usab.signed.test");
	assert_non_null(strstr(v->sts_note, "mode=testing,ignored"));
	policy_verdict_free(v);
	policy_free(p);
}

/* match= with Postfix's strategies: nexthop, dot-nexthop, hostname */
static void
test_override_match_strategies(void **state)
{
	const char *ovr[] = {
	    "plain.test secure match=nexthop:dot-nexthop:hostname:x.test",
	    "enf.test verify match=hostname", NULL };
	struct policy *p = mkpolicy(ovr, 0);
	struct policy_verdict *v = lookup(p, "plain.test", "192.0.2.5");

	assert_int_equal(v->level, TLS_LEVEL_VERIFY);
	assert_non_null(v->tls);
	assert_int_equal(v->tls->nnames, 4);
	assert_string_equal(v->tls->names[0], "plain.test");
	assert_string_equal(v->tls->names[1], ".plain.test");
	assert_string_equal(v->tls->names[2], "mx.plain.test");
	assert_string_equal(v->tls->names[3], "x.test");
	policy_verdict_free(v);
	/* hostname with A owned by no MX host: no name, nothing matches */
	v = lookup(p, "enf.test", "198.51.100.9");
	assert_int_equal(v->level, TLS_LEVEL_VERIFY);
	assert_non_null(v->tls);
	assert_int_equal(v->tls->nnames, 0);
	policy_verdict_free(v);
	policy_free(p);
}

static struct stat_ctr *wait_ctr;
static int64_t wait_for;
static struct ev_timer *wait_poll;

static void
wait_check(void *arg)
{
	if (stats_value(wait_ctr) >= wait_for)
		ev_loop_stop(loop);
	else
		ev_timer_arm(wait_poll, 5);
}

/* Runs the loop until counter name reaches n (or 10 s). */
static void
wait_counter(const char *name, int64_t n)
{
	struct ev_timer *guard = ev_timer_new(loop,
	    (ev_timer_cb *)ev_loop_stop, loop);

	wait_ctr = stats_get(name, NULL);
	wait_for = n;
	wait_poll = ev_timer_new(loop, wait_check, NULL);
	ev_timer_arm(wait_poll, 0);
	ev_timer_arm(guard, 10000);
	ev_loop_run(loop);
	ev_timer_free(guard);
	ev_timer_free(wait_poll);
	assert_true(stats_value(wait_ctr) >= n);
}

#define C_OK	"mxguard_tlsrpt_attempts_total{result=\"success\"}"
#define C_FAIL	"mxguard_tlsrpt_attempts_total{result=\"failure\"}"
#define C_SKIP	"mxguard_tlsrpt_attempts_total{result=\"no-record\"}"

/*
 * A tls_policy override that no published policy backs decides for this
 * gateway alone: enf.test publishes MTA-STS, "enf.test dane-only" defers
 * it for want of TLSA records.  That failure is not the domain's policy
 * failing, and its detail quotes this gateway's configuration: not
 * reported.  (Before: counted as no-policy-found, dane-required, with
 * the tls_policy line as the failure reason.)  A failure of the same
 * domain under no override, made after it, is counted: exactly one.
 */
static void
test_override_not_reported(void **state)
{
	const char *ovr[] = { "enf.test dane-only", NULL };
	struct policy *p;
	struct policy_verdict *v, *f;
	struct policy_attempt a;
	struct sockaddr_in sin;
	struct tlsrpt_store *st;
	int64_t fail0 = stats_value(stats_get(C_FAIL, NULL));
	int64_t day = tlsrpt_day((int64_t)time(NULL));
	char err[256], *json = NULL;

	(void)state;
	cfg_tlsrpt = 1;
	p = mkpolicy(ovr, 1);
	cfg_tlsrpt = 0;
	v = lookup(p, "enf.test", "192.0.2.1");
	assert_int_equal(v->level, TLS_LEVEL_DEFER);
	assert_string_equal(v->source, "override");
	assert_null(v->rpt);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	inet_pton(AF_INET, "192.0.2.1", &sin.sin_addr);
	memset(&a, 0, sizeof(a));
	a.mx_addr = (struct sockaddr *)&sin;
	a.result = v->reason[0] ? v->reason : "validation-failure";
	a.detail = v->detail;
	policy_report_attempt(p, v, &a);
	/* the marker: the same domain, no override, a failure */
	assert_non_null(f = policy_verdict_dup(v));
	f->source = "default";
	snprintf(f->detail, sizeof(f->detail), "no STARTTLS");
	a.result = "starttls-not-supported";
	a.detail = f->detail;
	policy_report_attempt(p, f, &a);
	wait_counter(C_FAIL, fail0 + 1);
	assert_int_equal(stats_value(stats_get(C_FAIL, NULL)), fail0 + 1);
	policy_verdict_free(f);
	policy_verdict_free(v);
	policy_free(p);
	st = tlsrpt_store_open(statedir, NULL, err, sizeof(err));
	assert_non_null(st);
	assert_int_equal(tlsrpt_report_build(st, "enf.test", day, "org",
	    "mailto:r@org.test", "id1", &json), 1);
	assert_null(strstr(json, "tls_policy"));
	assert_null(strstr(json, "dane-required"));
	free(json);
	tlsrpt_store_close(st);
}

/*
 * TLSRPT recording: attempts under the enforce policy of enf.test (which
 * publishes _smtp._tls) are counted with the policy's lines, MX patterns,
 * the MX's address and HELO; plain.test publishes no record: nothing is
 * stored for it.  The attempts are made before the TXT answer: they wait
 * for it.
 */
static void
test_tlsrpt_recording(void **state)
{
	struct policy *p;
	struct policy_verdict *v, *w;
	struct policy_attempt a;
	struct sockaddr_in sin;
	struct tlsrpt_store *st;
	struct tlsrpt_counts c;
	int64_t ok0 = stats_value(stats_get(C_OK, NULL));
	int64_t fail0 = stats_value(stats_get(C_FAIL, NULL));
	int64_t skip0 = stats_value(stats_get(C_SKIP, NULL));
	int64_t day = tlsrpt_day((int64_t)time(NULL));
	char err[256], *json = NULL;

	cfg_tlsrpt = 1;
	p = mkpolicy(NULL, 1);
	cfg_tlsrpt = 0;
	v = lookup(p, "enf.test", "192.0.2.1");
	w = lookup(p, "plain.test", "192.0.2.5");
	assert_int_equal(v->level, TLS_LEVEL_VERIFY);
	assert_non_null(v->rpt);
	assert_null(w->rpt);			/* no-policy-found */
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	inet_pton(AF_INET, "192.0.2.1", &sin.sin_addr);
	memset(&a, 0, sizeof(a));
	a.mx_addr = (struct sockaddr *)&sin;
	a.local_ip = "11.22.33.25";
	a.greeting = "220 mx1.enf.test ESMTP ready\r\n";
	policy_report_attempt(p, v, &a);
	policy_report_attempt(p, v, &a);
	a.result = "certificate-expired";
	a.detail = "certificate has expired";
	policy_report_attempt(p, v, &a);
	a.result = NULL;
	policy_report_attempt(p, w, &a);
	/* the TXT record is there but the policy could not be fetched: a
	 * no-policy-found failure, even for a session that went well */
	{
		struct policy_verdict *f = policy_verdict_dup(v);

		assert_non_null(f);
		free(f->rpt);
		f->rpt = NULL;
		snprintf(f->sts_note, sizeof(f->sts_note),
		    "sts-policy-fetch-error");
		snprintf(f->detail, sizeof(f->detail), "connection refused");
		policy_report_attempt(p, f, &a);
		policy_verdict_free(f);
	}
	wait_counter(C_OK, ok0 + 2);
	wait_counter(C_FAIL, fail0 + 2);
	wait_counter(C_SKIP, skip0 + 1);
	policy_verdict_free(v);
	policy_verdict_free(w);
	policy_free(p);

	st = tlsrpt_store_open(statedir, NULL, err, sizeof(err));
	assert_non_null(st);
	assert_int_equal(tlsrpt_counts(st, day, "enf.test", &c), 1);
	assert_int_equal(c.successful, 2);
	assert_int_equal(c.failed, 2);
	assert_int_equal(tlsrpt_counts(st, day, "plain.test", &c), 0);
	assert_int_equal(tlsrpt_report_build(st, "enf.test", day, "org",
	    "mailto:r@org.test", "id1", &json), 1);
	/* compared without white space: the layout is jansson's */
	{
		char *q = json, *o = json;

		for (; *q; q++)
			if (*q != ' ' && *q != '\n')
				*o++ = *q;
		*o = '\0';
	}
	if (strstr(json, "\"policy-type\":\"sts\"") == NULL ||
	    strstr(json, "\"policy-string\":[\"version:STSv1\",\"mode:"
	    "enforce\",\"mx:mx1.enf.test\",\"max_age:86400\"]") == NULL ||
	    strstr(json, "\"mx-host\":[\"mx1.enf.test\"]") == NULL ||
	    strstr(json, "\"receiving-ip\":\"192.0.2.1\"") == NULL ||
	    strstr(json, "\"receiving-mx-helo\":\"mx1.enf.test\"") == NULL ||
	    strstr(json, "\"sending-mta-ip\":\"11.22.33.25\"") == NULL ||
	    strstr(json, "\"result-type\":\"certificate-expired\"") == NULL ||
	    strstr(json, "\"policy-type\":\"no-policy-found\"") == NULL ||
	    strstr(json, "\"result-type\":\"sts-policy-fetch-error\"") ==
	    NULL)
		fail_msg("report lacks what was recorded:\n%s", json);
	free(json);
	tlsrpt_store_close(st);
}

/*
 * A DANE MX that does not offer STARTTLS (or refuses it): the log and the
 * MTA's reply say dane-required (policy_no_starttls_reason()), but RFC
 * 8460 section 4.3.2.1 keeps that result type for a sender requiring DANE
 * that found no validated TLSA records; the report says section 4.3.1's
 * starttls-not-supported.  A verdict that deferred as dane-required (what
 * section 4.3.2.1 means) keeps it.
 */
static void
test_dane_no_starttls_reported(void **state)
{
	struct policy *p;
	struct policy_verdict *v, *f, *g;
	struct policy_attempt a;
	struct sockaddr_in sin;
	struct tlsrpt_store *st;
	int64_t fail0 = stats_value(stats_get(C_FAIL, NULL));
	int64_t day = tlsrpt_day((int64_t)time(NULL));
	char err[256], *json = NULL, *q;
	int n;

	(void)state;
	cfg_tlsrpt = 1;
	p = mkpolicy(NULL, 1);
	cfg_tlsrpt = 0;
	v = lookup(p, "enf.test", "192.0.2.1");
	assert_non_null(v->rpt);
	/* a DANE verdict of danerpt.test met by a cleartext leg */
	assert_non_null(f = policy_verdict_dup(v));
	snprintf(f->domain, sizeof(f->domain), "danerpt.test");
	f->level = TLS_LEVEL_DANE;
	f->source = "dane";
	f->rpt->type = TLSRPT_POLICY_TLSA;
	assert_string_equal(policy_no_starttls_reason(f), "dane-required");
	/* and one that deferred so */
	assert_non_null(g = policy_verdict_dup(f));
	g->level = TLS_LEVEL_DEFER;
	snprintf(g->reason, sizeof(g->reason), "dane-required");
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	inet_pton(AF_INET, "192.0.2.1", &sin.sin_addr);
	memset(&a, 0, sizeof(a));
	a.mx_addr = (struct sockaddr *)&sin;
	a.result = policy_no_starttls_reason(f);
	a.detail = "this connection is not encrypted";
	policy_report_attempt(p, f, &a);
	a.result = g->reason;
	a.detail = "no usable TLSA records";
	policy_report_attempt(p, g, &a);
	wait_counter(C_FAIL, fail0 + 2);
	policy_verdict_free(g);
	policy_verdict_free(f);
	policy_verdict_free(v);
	policy_free(p);
	st = tlsrpt_store_open(statedir, NULL, err, sizeof(err));
	assert_non_null(st);
	assert_int_equal(tlsrpt_report_build(st, "danerpt.test", day, "org",
	    "mailto:r@org.test", "id1", &json), 1);
	if (strstr(json, "\"result-type\": \"starttls-not-supported\"") ==
	    NULL)
		fail_msg("no starttls-not-supported:\n%s", json);
	for (n = 0, q = json; (q = strstr(q, "dane-required")) != NULL; q++)
		n++;
	if (n != 1)
		fail_msg("dane-required %d times, not once:\n%s", n, json);
	free(json);
	tlsrpt_store_close(st);
}

/*
 * sending-mta-ip is the address the receiver saw: our source address on
 * the leg when it is global.  A gateway behind NAT connects from a
 * private address, which no receiver saw and which tells every domain
 * that asks for reports how the network behind the gateway is numbered:
 * left out (private IPv4, ULA, shared, documentation alike), unless
 * tlsrpt_private_destinations says the receivers are on such a network.
 */
static void
test_tlsrpt_sending_ip_private(void **state)
{
	static const char *const hidden[] = { "10.25.1.1", "fd00::25",
	    "192.168.1.2", "100.64.0.7", "::ffff:172.16.0.9", NULL };
	static const char *const shown[] = { "11.22.33.25", "2a00::25",
	    NULL };
	struct policy *p;
	struct policy_verdict *v, *f;
	struct policy_attempt a;
	struct sockaddr_in sin;
	struct tlsrpt_store *st;
	struct tlsrpt_counts c;
	int64_t fail0 = stats_value(stats_get(C_FAIL, NULL));
	int64_t day = tlsrpt_day((int64_t)time(NULL));
	char err[256], *json = NULL, want[64];
	int i, n = 0;

	(void)state;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	inet_pton(AF_INET, "192.0.2.1", &sin.sin_addr);
	memset(&a, 0, sizeof(a));
	a.mx_addr = (struct sockaddr *)&sin;
	a.result = "starttls-not-supported";
	a.detail = "the server did not offer STARTTLS";
	for (i = 0; i < 2; i++) {
		const char *const *ip;

		cfg_tlsrpt = 1;
		cfg_rpt_private = i;
		p = mkpolicy(NULL, 1);
		cfg_tlsrpt = cfg_rpt_private = 0;
		v = lookup(p, "enf.test", "192.0.2.1");
		assert_non_null(f = policy_verdict_dup(v));
		snprintf(f->domain, sizeof(f->domain), "srcip.test");
		if (i == 0) {
			for (ip = hidden; *ip != NULL; ip++, n++) {
				a.local_ip = *ip;
				policy_report_attempt(p, f, &a);
			}
		} else {
			a.local_ip = "10.25.1.2";	/* a lab's */
			policy_report_attempt(p, f, &a);
			n++;
		}
		for (ip = shown; *ip != NULL; ip++, n++) {
			a.local_ip = *ip;
			policy_report_attempt(p, f, &a);
		}
		wait_counter(C_FAIL, fail0 + n);
		policy_verdict_free(f);
		policy_verdict_free(v);
		policy_free(p);
	}
	st = tlsrpt_store_open(statedir, NULL, err, sizeof(err));
	assert_non_null(st);
	assert_int_equal(tlsrpt_counts(st, day, "srcip.test", &c), 1);
	assert_int_equal(c.failed, n);
	assert_int_equal(tlsrpt_report_build(st, "srcip.test", day, "org",
	    "mailto:r@org.test", "id1", &json), 1);
	for (i = 0; hidden[i] != NULL; i++)
		if (strstr(json, hidden[i]) != NULL)
			fail_msg("%s in the report:\n%s", hidden[i], json);
	for (i = 0; shown[i] != NULL; i++) {
		snprintf(want, sizeof(want), "\"sending-mta-ip\": \"%s\"",
		    shown[i]);
		if (strstr(json, want) == NULL)
			fail_msg("no %s in the report:\n%s", want, json);
	}
	if (strstr(json, "\"sending-mta-ip\": \"10.25.1.2\"") == NULL)
		fail_msg("tlsrpt_private_destinations: no 10.25.1.2:\n%s",
		    json);
	free(json);
	tlsrpt_store_close(st);
}

/*
 * receiving-ip is the MX's address, the one its domain knows: through
 * NAT64 (or as an IPv4-mapped address) the IPv4 address behind the
 * prefix, as the engine judged the destination (netaddr_judged()), not
 * the synthesized IPv6 one, which no server of the domain has and which
 * tells every domain that asks for reports this network's NAT64 prefix
 * (a network-specific one is the operator's own).
 */
static void
test_tlsrpt_receiving_ip_nat64(void **state)
{
	static const char *const dst[] = { "64:ff9b::c000:201",
	    "::ffff:192.0.2.1", NULL };
	struct policy *p;
	struct policy_verdict *v, *f;
	struct policy_attempt a;
	struct sockaddr_in6 s6;
	struct tlsrpt_store *st;
	int64_t fail0 = stats_value(stats_get(C_FAIL, NULL));
	int64_t day = tlsrpt_day((int64_t)time(NULL));
	char err[256], *json = NULL;
	int i;

	(void)state;
	cfg_tlsrpt = 1;
	p = mkpolicy(NULL, 1);
	cfg_tlsrpt = 0;
	v = lookup6(p, "enf.test", "64:ff9b::c000:201");
	assert_non_null(f = policy_verdict_dup(v));
	snprintf(f->domain, sizeof(f->domain), "dstip.test");
	memset(&a, 0, sizeof(a));
	a.result = "starttls-not-supported";
	a.detail = "the server did not offer STARTTLS";
	for (i = 0; dst[i] != NULL; i++) {
		memset(&s6, 0, sizeof(s6));
		s6.sin6_family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, dst[i], &s6.sin6_addr),
		    1);
		a.mx_addr = (struct sockaddr *)&s6;
		policy_report_attempt(p, f, &a);
	}
	wait_counter(C_FAIL, fail0 + 2);
	policy_verdict_free(f);
	policy_verdict_free(v);
	policy_free(p);
	st = tlsrpt_store_open(statedir, NULL, err, sizeof(err));
	assert_non_null(st);
	assert_int_equal(tlsrpt_report_build(st, "dstip.test", day, "org",
	    "mailto:r@org.test", "id1", &json), 1);
	if (strstr(json, "\"receiving-ip\": \"192.0.2.1\"") == NULL ||
	    strstr(json, "64:ff9b") != NULL || strstr(json, "ffff") != NULL)
		fail_msg("receiving-ip not 192.0.2.1 alone:\n%s", json);
	free(json);
	tlsrpt_store_close(st);
}

/*
 * A domain's _smtp._tls record that does not parse is logged with the
 * parser's error as one logfmt value.  Some of those errors hold double
 * quotes (mailto: header fields ("?") are not supported): they were
 * written between quotes as they were, so the line's error field ended
 * at the first of them and the rest became stray text.
 */
static void
test_tlsrpt_bad_record_logged(void **state)
{
	char path[200], line[2048], q[300];
	struct policy *p;
	struct policy_verdict *v;
	struct policy_attempt a;
	struct sockaddr_in sin;
	int64_t skip0 = stats_value(stats_get(C_SKIP, NULL));
	int fd, saved, found = 0;
	FILE *f;

	(void)state;
	cfg_tlsrpt = 1;
	p = mkpolicy(NULL, 1);
	cfg_tlsrpt = 0;
	v = lookup(p, "plain.test", "192.0.2.5");
	snprintf(v->domain, sizeof(v->domain), "badrpt.test");
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	inet_pton(AF_INET, "192.0.2.5", &sin.sin_addr);
	memset(&a, 0, sizeof(a));
	a.mx_addr = (struct sockaddr *)&sin;
	snprintf(path, sizeof(path), "%s/log", statedir);
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(saved >= 0 && fd >= 0);
	dup2(fd, STDERR_FILENO);
	close(fd);
	log_set_level(LOG_LVL_INFO);
	policy_report_attempt(p, v, &a);
	wait_counter(C_SKIP, skip0 + 1);
	fflush(stderr);
	log_set_level(getenv("TEST_DEBUG") ? LOG_LVL_DEBUG : LOG_LVL_ERR);
	dup2(saved, STDERR_FILENO);
	close(saved);
	policy_verdict_free(v);
	policy_free(p);
	assert_int_equal(stats_value(stats_get(C_SKIP, NULL)), skip0 + 1);
	log_q(q, sizeof(q), "rua URI 1: mailto: header fields (\"?\") are "
	    "not supported");
	assert_non_null(f = fopen(path, "r"));
	while (fgets(line, sizeof(line), f) != NULL) {
		char *e;

		if (strstr(line, "event=tlsrpt-discover domain=badrpt.test ")
		    == NULL)
			continue;
		found++;
		if ((e = strstr(line, " error=")) == NULL ||
		    strncmp(e + 7, q, strlen(q)) != 0 ||
		    e[7 + strlen(q)] != ' ')
			fail_msg("error is not one logfmt value: %s", line);
	}
	fclose(f);
	unlink(path);
	assert_int_equal(found, 1);
}

static void
test_cancel(void **state)
{
	struct policy *p = mkpolicy(NULL, 1);
	struct sockaddr_in sin;
	struct policy_req *r;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	got_v = NULL;
	r = policy_lookup(p, "enf.test", (struct sockaddr *)&sin, sizeof(sin),
	    NULL, got, NULL);
	assert_non_null(r);
	policy_cancel(r);
	policy_free(p);
	assert_null(got_v);
}

/*
 * A reload (SIGHUP: policy_reconfigure) while a lookup is under way
 * takes the new resolver and CA store at once, for every lookup that
 * starts after it; the one under way ends on what it started with.  The
 * lookup of slow.test (never answered) holds the engine busy at the
 * reload, which moves dns_servers to a second server; the first one then
 * stops answering.  A lookup started while slow.test still runs must be
 * answered by the new server, and its verdict must name the new CA store.
 * (A reload that found the engine busy used to keep the old resolver and
 * CA store until the engine was idle: an attacker who keeps some lookup
 * running at all times kept a CA store the operator had replaced.)
 *
 * policy_timeout is what keeps slow.test running: the other lookups must
 * be answered within it (3 s: a 400 ms one decided enf.test on a loaded
 * machine too, "did not finish within policy_timeout"), and slow.test's
 * own verdict comes by it, not by the resolver's 10 s (the guard's 8 s).
 * The teardown puts back the settings and the first DNS server, so that
 * a failure here does not fail the tests after it.
 */
#define BUSY_POLICY_TIMEOUT_MS	3000
#define BUSY_GUARD_MS		8000

static struct policy_verdict *slow_v;

static int
reload_teardown(void **state)
{
	(void)state;
	cfg_policy_timeout = 5000;
	cfg_dns_timeout = 2000;
	cfg_dns_port = 0;
	ev_fd_set(loop, fk.fd, EV_READ, fake_read, NULL);
	return 0;
}

static void
got_slow(void *arg, struct policy_verdict *v)
{
	slow_v = v;
	ev_loop_stop(loop);
}

static void
test_reload_while_busy(void **state)
{
	struct policy *p;
	struct policy_verdict *v;
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	struct config *cfg;
	struct ev_timer *guard;
	char err[256];
	int fd2, port2, i;
	struct dns *old;
	uint64_t gen0;

	cfg_policy_timeout = BUSY_POLICY_TIMEOUT_MS;
	cfg_dns_timeout = 10000;
	p = mkpolicy(NULL, 1);
	/* the second server: the same zone on another port */
	fd2 = socket(AF_INET, SOCK_DGRAM, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd2, (struct sockaddr *)&sin, sizeof(sin)), 0);
	getsockname(fd2, (struct sockaddr *)&sin, &sl);
	port2 = ntohs(sin.sin_port);
	ev_fd_set(loop, fd2, EV_READ, fake_read, NULL);

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(25);
	inet_pton(AF_INET, "192.0.2.11", &sin.sin_addr);
	slow_v = NULL;
	assert_non_null(policy_lookup(p, "slow.test", (struct sockaddr *)&sin,
	    sizeof(sin), "t1", got_slow, NULL));
	/* a verdict naming the CA store before the reload */
	v = lookup(p, "enf.test", "192.0.2.1");
	assert_int_equal(v->level, TLS_LEVEL_VERIFY);
	gen0 = v->tls->store_gen;
	policy_verdict_free(v);
	/* the reload comes while slow.test waits */
	old = policy_dns(p);
	cfg_dns_port = port2;
	cfg = mkcfg(NULL, 1);
	cfg_dns_port = 0;
	assert_int_equal(policy_reconfigure(p, cfg, err, sizeof(err)), 0);
	config_free(cfg);
	ev_fd_del(loop, fk.fd);		/* the old server goes quiet */
	assert_ptr_not_equal(policy_dns(p), old);	/* at once */
	/* a lookup started now, slow.test still running: answered by the
	 * new server, under the new CA store */
	v = lookup(p, "enf.test", "192.0.2.1");
	assert_null(slow_v);		/* slow.test still runs */
	assert_int_equal(v->level, TLS_LEVEL_VERIFY);
	assert_true(v->tls->store_gen != gen0);
	policy_verdict_free(v);
	guard = ev_timer_new(loop, (ev_timer_cb *)ev_loop_stop, loop);
	ev_timer_arm(guard, BUSY_GUARD_MS);
	if (slow_v == NULL)
		ev_loop_run(loop);
	ev_timer_free(guard);
	assert_non_null(slow_v);	/* its policy_timeout verdict */
	policy_verdict_free(slow_v);
	/* the engine is idle: the loop frees the replaced resolver */
	for (i = 0; i < 5; i++) {
		guard = ev_timer_new(loop, (ev_timer_cb *)ev_loop_stop, loop);
		ev_timer_arm(guard, 20);
		ev_loop_run(loop);
		ev_timer_free(guard);
	}

	/* the new resolver answers the next lookup */
	v = lookup(p, "enf.test", "192.0.2.1");
	assert_int_equal(v->level, TLS_LEVEL_VERIFY);
	assert_string_equal(v->mx_host, "mx1.enf.test");
	policy_verdict_free(v);
	policy_free(p);
	ev_fd_del(loop, fd2);
	close(fd2);
	ev_fd_set(loop, fk.fd, EV_READ, fake_read, NULL);
	cfg_policy_timeout = 5000;
	cfg_dns_timeout = 2000;
}

/*
 * An engine that is never idle, yet whose every lookup ends, takes every
 * reload.  Lookups of slow.test (never answered, each ended by its
 * policy_timeout) overlap: the next one starts before the one before it
 * ends, so at no moment is the engine idle, as on a gateway that the MTA
 * keeps busy.  After each reload the lookup started before it ends, and
 * then the resolver and CA store it replaced serve nothing: they must be
 * freed then, not when the whole engine is idle.  (They were kept until
 * the engine was idle: the ninth reload was refused, "8 reloads while
 * lookups never stopped running", on a busy gateway for as long as it
 * stayed busy, and the operator's tightened tls_policy with it.)
 */
#define STAGGER_RELOADS		12
#define STAGGER_TIMEOUT_MS	200

static int stagger_done;

static void
got_stagger(void *arg, struct policy_verdict *v)
{
	(void)arg;
	policy_verdict_free(v);
	stagger_done++;
	ev_loop_stop(loop);
}

static void
test_reload_busy_staggered(void **state)
{
	struct policy *p;
	struct sockaddr_in sin;
	struct config *cfg;
	struct ev_timer *guard;
	char err[256];
	int k, started = 0;

	(void)state;
	cfg_policy_timeout = STAGGER_TIMEOUT_MS;
	cfg_dns_timeout = 10000;
	p = mkpolicy(NULL, 1);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(25);
	inet_pton(AF_INET, "192.0.2.11", &sin.sin_addr);
	stagger_done = 0;
	/* (the loop's clock read again after each CA store load: a lookup's
	 * policy_timeout runs from it) */
	ev_now_update(loop);
	assert_non_null(policy_lookup(p, "slow.test", (struct sockaddr *)&sin,
	    sizeof(sin), "s0", got_stagger, NULL));
	started++;
	/* half a policy_timeout apart: one runs while the other ends */
	guard = ev_timer_new(loop, (ev_timer_cb *)ev_loop_stop, loop);
	ev_timer_arm(guard, STAGGER_TIMEOUT_MS / 2);
	ev_loop_run(loop);
	ev_timer_free(guard);
	assert_int_equal(stagger_done, 0);
	for (k = 1; k <= STAGGER_RELOADS; k++) {
		/* the next lookup, then the end of the one before it */
		ev_now_update(loop);
		assert_non_null(policy_lookup(p, "slow.test",
		    (struct sockaddr *)&sin, sizeof(sin), "sk", got_stagger,
		    NULL));
		started++;
		guard = ev_timer_new(loop, (ev_timer_cb *)ev_loop_stop, loop);
		ev_timer_arm(guard, BUSY_GUARD_MS);
		while (stagger_done < started - 1 && ev_timer_pending(guard))
			ev_loop_run(loop);
		ev_timer_free(guard);
		assert_int_equal(stagger_done, started - 1);
		/* busy: the lookup just started still runs */
		cfg = mkcfg(NULL, 1);
		err[0] = '\0';
		if (policy_reconfigure(p, cfg, err, sizeof(err)) != 0)
			fail_msg("reload %d refused: %s", k, err);
		config_free(cfg);
	}
	guard = ev_timer_new(loop, (ev_timer_cb *)ev_loop_stop, loop);
	ev_timer_arm(guard, BUSY_GUARD_MS);
	while (stagger_done < started && ev_timer_pending(guard))
		ev_loop_run(loop);
	ev_timer_free(guard);
	assert_int_equal(stagger_done, started);
	policy_free(p);
}

/*
 * A store read that fails is no "no record": the MTA-STS cache may hold
 * an enforce policy (RFC 8461: it applies whatever DNS says now), so a
 * domain with no policy fetched now is deferred, a local failure that
 * TLSRPT does not report; DANE still decides where it applies; the TLS
 * history may expect TLS, so a cleartext-allowing verdict requires it.
 */
static void
test_store_read_error(void **state)
{
	struct policy *p = mkpolicy(NULL, 1);
	struct policy_verdict *v;

	mdb_get_fails = 1;
	/* the cached policy's domain, whose TXT record is gone, and one
	 * whose policy host does not resolve: neither gets "no policy" */
	v = lookup(p, "gone.test", "192.0.2.3");
	assert_int_equal(v->level, TLS_LEVEL_DEFER);
	assert_string_equal(v->reason, "store-error");
	assert_int_equal(v->local, 1);
	policy_verdict_free(v);
	v = lookup(p, "enf.test", "192.0.2.1");
	assert_int_equal(v->level, TLS_LEVEL_DEFER);
	assert_string_equal(v->reason, "store-error");
	policy_verdict_free(v);
	v = lookup(p, "plain.test", "192.0.2.5");
	assert_int_equal(v->level, TLS_LEVEL_DEFER);
	policy_verdict_free(v);
	/* DANE decides without the cache */
	policy_set_resolver_validating(p, 1);
	v = lookup(p, "usab.signed.test", "192.0.2.41");
	assert_int_equal(v->level, TLS_LEVEL_DANE);
	policy_verdict_free(v);
	policy_free(p);
	/* MTA-STS off: only the history is asked */
	p = mkpolicy(NULL, 0);
	v = lookup(p, "plain.test", "192.0.2.5");
	assert_int_equal(v->level, TLS_LEVEL_ENCRYPT);
	assert_string_equal(v->source, "tls-history");
	assert_non_null(strstr(v->detail, "could not be read"));
	policy_verdict_free(v);
	mdb_get_fails = 0;
	v = lookup(p, "plain.test", "192.0.2.5");
	assert_int_equal(v->level, TLS_LEVEL_MAY);
	policy_verdict_free(v);
	policy_free(p);
}

/*
 * A store that did not open (here its file is a symbolic link, which
 * store_open() refuses) is asked as one that cannot answer; a reload
 * tries it again, and once it is open the verdicts are as before.
 */
static void
test_store_not_open(void **state)
{
	char dir[] = "/tmp/mxg-pol-noopen-XXXXXX", path[300], cmd[300];
	char err[256];
	struct config *cfg;
	struct policy *p;
	struct policy_verdict *v;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/history.mdb", dir);
	assert_int_equal(symlink("/nonexistent-history", path), 0);
	snprintf(path, sizeof(path), "%s/sts-cache.mdb", dir);
	assert_int_equal(symlink("/nonexistent-cache", path), 0);
	cfg = mkcfg(NULL, 1);
	free(cfg->state_dir);
	cfg->state_dir = strdup(dir);
	p = policy_new(loop, cfg, err, sizeof(err));
	assert_non_null(p);
	v = lookup(p, "plain.test", "192.0.2.5");
	assert_int_equal(v->level, TLS_LEVEL_DEFER);
	assert_string_equal(v->reason, "store-error");
	policy_verdict_free(v);
	cfg->sts_enable = 0;
	assert_int_equal(policy_reconfigure(p, cfg, err, sizeof(err)), 0);
	v = lookup(p, "plain.test", "192.0.2.5");
	assert_int_equal(v->level, TLS_LEVEL_ENCRYPT);
	assert_string_equal(v->source, "tls-history");
	assert_non_null(strstr(v->detail, "not open"));
	policy_verdict_free(v);
	/* the links go; the reload opens both stores */
	snprintf(path, sizeof(path), "%s/history.mdb", dir);
	assert_int_equal(unlink(path), 0);
	snprintf(path, sizeof(path), "%s/sts-cache.mdb", dir);
	assert_int_equal(unlink(path), 0);
	cfg->sts_enable = 1;
	assert_int_equal(policy_reconfigure(p, cfg, err, sizeof(err)), 0);
	v = lookup(p, "plain.test", "192.0.2.5");
	assert_int_equal(v->level, TLS_LEVEL_MAY);
	assert_string_equal(v->source, "default");
	policy_verdict_free(v);
	policy_free(p);
	config_free(cfg);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

/* Another worker (or lookup) stores the domain's new enforce policy while
 * this lookup is under way, and the attacker fails this lookup's TXT
 * query: the lookup decides on the policy fetched last, not on the testing
 * one it read at its start (before: may). */
static void
store_enforce_later(void *arg)
{
	cache_policy("race.test", "t2", "version: STSv1\nmode: enforce\n"
	    "mx: mx.race.test\nmax_age: 86400\n", 0, 86400);
}

static void
test_newer_policy_stored_meanwhile(void **state)
{
	struct policy *p;
	struct policy_verdict *v;
	struct ev_timer *t = ev_timer_new(loop, store_enforce_later, NULL);

	cache_policy("race.test", "t1", "version: STSv1\nmode: testing\n"
	    "mx: mx.race.test\nmax_age: 86400\n", 10, 86400);
	p = mkpolicy(NULL, 1);
	ev_timer_arm(t, 1000);	/* 1 s into a 5 s lookup */
	v = lookup(p, "race.test", "192.0.2.11");
	/* the cache holds enforce t2 when the decision is taken; the
	 * destination is no known MX address: enforce would defer */
	assert_int_equal(v->level, TLS_LEVEL_DEFER);
	assert_non_null(strstr(v->sts_note, "mode=enforce,id=t2,cached"));
	policy_verdict_free(v);
	ev_timer_free(t);
	policy_free(p);
}

/*
 * A lookup's own fetch is held back (an attacker on the path delays the
 * policy host's response) while a fetch started later, by another worker
 * sharing the cache, stores the domain's newer policy: enforce, where the
 * held-back response still carries the testing policy the host served
 * before.  The cache keeps the newer one (sts_cache_put(): the fetch
 * started last wins), and so must the decision (docs/policy.md: "a
 * response an attacker holds back cannot replace a policy fetched after
 * it"; cache_reread()).  Old code: the lookup decided on the policy its
 * own fetch brought (may, report-only), weaker than the cache held.
 */
static void
test_held_back_fetch_not_over_newer(void **state)
{
	struct policy *p;
	struct policy_verdict *v;
	struct sts_cache_entry e;

	mock_http("mta-sts.stale.test", "version: STSv1\nmode: testing\n"
	    "mx: mx.stale.test\nmax_age: 86400\n");
	mh.delay = 1000;
	p = mkpolicy(NULL, 1);
	two_n = 0;
	lookup_start(p, "stale.test", "192.0.2.21", 0);
	/* while the lookup's fetch is held (once it started: a store
	 * before it would be the older one), the other worker's fetch
	 * starts 5 s after it and stores */
	run_until(&mh.calls, 1);
	time_step = 5;
	cache_policy("stale.test", "s2", "version: STSv1\nmode: enforce\n"
	    "mx: mx.stale.test\nmax_age: 86400\n", 0, 86400);
	run_until(&two_n, 1);
	v = two_v[0];
	time_step = 0;
	assert_int_equal(mh.calls, 1);
	/* the cache kept the newer policy ... */
	assert_int_equal(sts_cache_get(policy_sts_cache(p), "stale.test", &e),
	    1);
	assert_string_equal(e.id, "s2");
	sts_cache_entry_clear(&e);
	/* ... and it decides */
	assert_int_equal(v->level, TLS_LEVEL_VERIFY);
	assert_string_equal(v->source, "mta-sts");
	assert_int_equal(v->report_only, 0);
	assert_non_null(strstr(v->sts_note, "mode=enforce,id=s2,cached"));
	policy_verdict_free(v);
	mock_http_off();
	policy_free(p);
}

/*
 * An attacker who moves the gateway's clock a year forward (an NTP answer)
 * expired every cached MTA-STS policy: with the TXT record and the policy
 * host blocked, gone.test had no policy and its mail went in cleartext.
 * The policy clock does not follow a step no time passed explains: the
 * cached policy still decides.
 */
static void
test_clock_step_keeps_cached_policy(void **state)
{
	struct policy *p = mkpolicy(NULL, 1);
	struct policy_verdict *v;

	time_step = 365 * 86400LL;
	v = lookup(p, "gone.test", "192.0.2.3");
	time_step = 0;
	assert_int_equal(v->level, TLS_LEVEL_DEFER);
	assert_string_equal(v->reason, "validation-failure");
	policy_verdict_free(v);
	policy_free(p);
}

/*
 * Out of memory anywhere in a lookup: each allocation the engine makes
 * for it fails in turn (one per round, a fresh engine each), and the
 * verdict is never below what the domain's policy demands: a deferral
 * at worst (or policy_lookup() refusing, which the session answers with
 * 4xx), never "no policy" or cleartext.  enf.test's cached enforce
 * policy (192.0.2.66 is an MX the policy does not name: only a deferral
 * is right; 192.0.2.1 is named: verify), a server of the TLS history
 * (encrypt), a DANE domain (dane), and first contact with nidnc.test,
 * whose TXT record is read and policy fetched (verify).  Red before for
 * that one: an answer dns.c had no memory to read (its record table, a
 * TXT record's text) was the server's error, a failed TXT lookup with
 * nothing cached, no policy; now it is this host's (DNS_LOCAL), which
 * defers.
 */
struct oom_case {
	const char	*domain, *ip;
	enum tls_level	 want;		/* or TLS_LEVEL_DEFER */
	int		 dane;		/* the resolver validates */
	const char	*fetch;		/* the policy host serves this (the
					 * mock), nothing cached: what the
					 * round's fetch stored is dropped */
	const char	*cached_id;	/* and what was cached before (this
					 * id, cached_body) put back */
	const char	*cached_body;
};

static void
oom_sweep(const struct oom_case *c)
{
	struct sockaddr_in sin;
	struct ev_timer *guard;
	struct policy *p;
	long at, made;

	for (at = 0; ; at++) {
		if (c->fetch != NULL) {
			char host[300];

			snprintf(host, sizeof(host), "mta-sts.%s", c->domain);
			mock_http(host, c->fetch);
		}
		p = mkpolicy(NULL, 1);
		policy_set_resolver_validating(p, c->dane);
		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		sin.sin_port = htons(25);
		inet_pton(AF_INET, c->ip, &sin.sin_addr);
		guard = ev_timer_new(loop, (ev_timer_cb *)ev_loop_stop, loop);
		got_v = NULL;
		oom_n = 0;
		oom_at = at;
		if (policy_lookup(p, c->domain, (struct sockaddr *)&sin,
		    sizeof(sin), "t1", got, NULL) != NULL) {
			ev_timer_arm(guard, 10000);
			ev_loop_run(loop);
			if (got_v == NULL)
				fail_msg("%s [%s], allocation %ld failing: no "
				    "verdict", c->domain, c->ip, at);
		}
		made = oom_n;
		oom_at = -1;
		ev_timer_free(guard);
		if (got_v != NULL && got_v->level != c->want &&
		    got_v->level != TLS_LEVEL_DEFER)
			fail_msg("%s [%s], allocation %ld of %ld failing: "
			    "level %d (source %s, reason %s: %s), want %d "
			    "or a deferral", c->domain, c->ip, at, made,
			    got_v->level, got_v->source ? got_v->source : "-",
			    got_v->reason ? got_v->reason : "-",
			    got_v->detail, c->want);
		if (got_v != NULL)
			policy_verdict_free(got_v);
		policy_free(p);
		if (c->fetch != NULL) {
			char err[256];
			struct sts_cache *sc = sts_cache_open(statedir, err,
			    sizeof(err));

			assert_non_null(sc);
			sts_cache_del(sc, c->domain);
			sts_cache_close(sc);
			mock_http_off();
			if (c->cached_id != NULL)
				cache_policy(c->domain, c->cached_id,
				    c->cached_body, 10, 86400);
		}
		if (made <= at)
			break;		/* every allocation has failed once */
	}
	print_message("%s [%s]: %ld allocations, each failed once\n",
	    c->domain, c->ip, at);
}

static void
test_oom_never_below_policy(void **state)
{
	static const struct oom_case cases[] = {
		{ "enf.test", "192.0.2.66", TLS_LEVEL_DEFER, 0, NULL, NULL,
		    NULL },
		{ "enf.test", "192.0.2.1", TLS_LEVEL_VERIFY, 0, NULL, NULL,
		    NULL },
		{ "tst.test", "192.0.2.2", TLS_LEVEL_ENCRYPT, 0, NULL, NULL,
		    NULL },
		{ "usab.signed.test", "192.0.2.41", TLS_LEVEL_DANE, 1, NULL,
		    NULL, NULL },
		/* first contact: the TXT record, then the fetch */
		{ "nidnc.test", "192.0.2.16", TLS_LEVEL_VERIFY, 0,
		    "version: STSv1\nmode: enforce\nmx: mx.nidnc.test\n"
		    "max_age: 86400\n", NULL, NULL },
		/* a new TXT id over a cached enforce policy: the fetch */
		{ "newid.test", "192.0.2.4", TLS_LEVEL_VERIFY, 0,
		    "version: STSv1\nmode: enforce\nmx: mx.newid.test\n"
		    "max_age: 86400\n", "one", "version: STSv1\nmode: "
		    "enforce\nmx: mx.newid.test\nmax_age: 86400\n" },
		/* the history of an MX host whose address lookup fails,
		 * no host owning the destination */
		{ "hfail.test", "198.51.100.66", TLS_LEVEL_ENCRYPT, 0, NULL,
		    NULL, NULL },
		/* DANE through a secure CNAME answered one link at a time;
		 * only unusable TLSA records; a validated null MX */
		{ "split.signed.test", "192.0.2.60", TLS_LEVEL_DANE, 1, NULL,
		    NULL, NULL },
		{ "onlyunus.signed.test", "192.0.2.42", TLS_LEVEL_ENCRYPT, 1,
		    NULL, NULL, NULL },
		{ "nullmx.signed.test", "192.0.2.5", TLS_LEVEL_DEFER, 1, NULL,
		    NULL, NULL },
	};
	char err[256];
	struct history *h = history_open(statedir, err, sizeof(err));
	struct sockaddr_in sin, hf;
	size_t i;

	assert_non_null(h);
	memset(&sin, 0, sizeof(sin));
	memset(&hf, 0, sizeof(hf));
	sin.sin_family = AF_INET;
	inet_pton(AF_INET, "192.0.2.2", &sin.sin_addr);
	history_note(h, 30 * 86400, (struct sockaddr *)&sin, "mx.tst.test",
	    1, 1);
	inet_pton(AF_INET, "192.0.2.90", &hf.sin_addr);
	hf.sin_family = AF_INET;
	history_note(h, 30 * 86400, (struct sockaddr *)&hf, "mx.hfail.test",
	    1, 1);
	history_close(h);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		oom_sweep(&cases[i]);
	h = history_open(statedir, err, sizeof(err));
	assert_non_null(h);
	history_del(h, "mx.tst.test", (struct sockaddr *)&sin);
	history_del(h, "", (struct sockaddr *)&sin);
	history_close(h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_enforce_match),
		cmocka_unit_test(test_enforce_verifies_mx_host_name),
		cmocka_unit_test(test_enforce_mx_not_in_policy),
		cmocka_unit_test(test_enforce_not_an_mx),
		cmocka_unit_test(test_override_relay_address),
		cmocka_unit_test(test_override_domain),
		cmocka_unit_test(test_testing_reports),
		cmocka_unit_test(test_testing_not_an_mx_reported),
		cmocka_unit_test(test_testing_is_opportunistic),
		cmocka_unit_test(test_testing_keeps_require_tls),
		cmocka_unit_test(test_testing_keeps_history),
		cmocka_unit_test(test_enforcement_override_enforce_wins),
		cmocka_unit_test(test_enforcement_override_address_enforce_wins),
		cmocka_unit_test(test_address_monitor_not_domain_policy),
		cmocka_unit_test(test_address_monitor_not_dane_or_domain_line),
		cmocka_unit_test(test_secure_null_mx),
		cmocka_unit_test(test_history_host_lookup_failed),
		cmocka_unit_test(test_timeout_verdict),
		cmocka_unit_test(test_txt_gone_cached_enforced),
		cmocka_unit_test(test_new_id_fetch_fails_keeps_cache),
		cmocka_unit_test(test_cached_decides_after_failed_fetch_marked_used),
		cmocka_unit_test(test_new_id_failed_fetch_backs_off),
		cmocka_unit_test(test_new_id_backoff_restarts_after_success),
		cmocka_unit_test(test_new_id_no_cache_fetches_each_lookup),
		cmocka_unit_test(test_fetched_policy_invalid),
		cmocka_unit_test(test_new_id_one_fetch_at_a_time),
		cmocka_unit_test(test_new_id_backoff_ends_at_reload),
		cmocka_unit_test(test_reload_fetch_not_joined),
		cmocka_unit_test(test_reload_old_fetch_no_backoff),
		cmocka_unit_test(test_reload_old_fetch_not_kept),
		cmocka_unit_test(test_refresh_in_background),
		cmocka_unit_test(test_refresh_txt_missing),
		cmocka_unit_test(test_refresh_txt_servfail),
		cmocka_unit_test(test_no_refresh_when_fresh),
		cmocka_unit_test(test_refresh_timer),
		cmocka_unit_test(test_refresh_failing_not_first),
		cmocka_unit_test(test_no_refresh_timer_by_default),
		cmocka_unit_test(test_long_domain_sts_refused),
		cmocka_unit_test(test_expired_is_no_policy),
		cmocka_unit_test(test_expired_txt_servfail_refetched),
		cmocka_unit_test(test_expired_txt_nxdomain_refetched),
		cmocka_unit_test(test_expired_refetch_fails_no_policy),
		cmocka_unit_test(test_lenient_policy),
		cmocka_unit_test(test_expired_refetch_backoff_ends_at_reload),
		cmocka_unit_test(test_no_cache_txt_servfail_no_fetch),
		cmocka_unit_test(test_clock_step_keeps_cached_policy),
		cmocka_unit_test(test_shared_address),
		cmocka_unit_test(test_shared_address_most_preferred),
		cmocka_unit_test(test_no_policy),
		cmocka_unit_test(test_invalid_domain),
		cmocka_unit_test(test_sts_disabled),
		cmocka_unit_test(test_dane_not_applicable_note),
		cmocka_unit_test(test_dane_against_sts),
		cmocka_unit_test(test_dane_cname_chain_split),
		cmocka_unit_test(test_nat64_is_its_ipv4),
		cmocka_unit_test_teardown(test_nat64_network_specific,
		    nat64_restore),
		cmocka_unit_test(test_override_match_strategies),
		cmocka_unit_test(test_dane_only_unusable_defers),
		cmocka_unit_test(test_dane_may_unusable_or_unfinished),
		cmocka_unit_test(test_override_verify_no_mx_host),
		cmocka_unit_test(test_override_secure_names_domain),
		cmocka_unit_test(test_policy_file_as_loaded),
		cmocka_unit_test(test_insecure_mx_dane_not_over_sts),
		cmocka_unit_test(test_insecure_mx_dane_over_testing),
		cmocka_unit_test(test_cancel),
		cmocka_unit_test(test_tlsrpt_recording),
		cmocka_unit_test(test_tlsrpt_bad_record_logged),
		cmocka_unit_test(test_dane_no_starttls_reported),
		cmocka_unit_test(test_override_not_reported),
		cmocka_unit_test(test_tlsrpt_sending_ip_private),
		cmocka_unit_test(test_tlsrpt_receiving_ip_nat64),
		cmocka_unit_test_teardown(test_reload_while_busy,
		    reload_teardown),
		cmocka_unit_test_teardown(test_reload_busy_staggered,
		    reload_teardown),
		cmocka_unit_test(test_store_read_error),
		cmocka_unit_test(test_store_not_open),
		cmocka_unit_test(test_newer_policy_stored_meanwhile),
		cmocka_unit_test(test_held_back_fetch_not_over_newer),
		cmocka_unit_test(test_many_mx_patterns),
		cmocka_unit_test(test_many_mx_patterns_compact),
		cmocka_unit_test(test_txt_cut),
		cmocka_unit_test(test_txt_cut_refresh),
		cmocka_unit_test(test_txt_cut_one),
		cmocka_unit_test(test_mx_hosts_unkept),
		cmocka_unit_test(test_oom_never_below_policy),
	};

	(void)pol;
	return cmocka_run_group_tests(tests, setup, teardown);
}
