/*
 * test_policy_cmd.c - `mxguard policy DOMAIN [--json]` (cmd/policy.c)
 * against a fake DNS server (a child answering from a zone table, NXDOMAIN
 * for the rest) and a state_dir of its own: a cached
 * MTA-STS record that cannot be read is a store error, for the verdict
 * (defer, store-error, as the daemon decides) and for the line about the
 * cache, which said "none cached"; JSON says it in mta_sts_cache.  With
 * sts_enable = no the cache is "off", not "unavailable".  --dst gives the
 * verdict for one address, with its tls_policy and enforcement_override
 * lines.  With a daemon on control_socket running another configuration
 * than the file's, the first line on stderr (JSON: config_warning) says
 * the answer is for the file; with none, or the same, nothing does.
 * --dst with a well-known NAT64 address 64:ff9b::G is judged as G, as
 * the daemon judges it: G's MX host, G's tls_policy line.  A DNS lookup
 * that fails (no resolver at 127.0.0.1:9, SERVFAIL for the MX or an MX
 * host's address) exits 3 (UNKNOWN) and says on stderr which one,
 * unless only tls_policy overrides decided.
 *
 * cmd/ is not in libmxguard.a: the module is compiled in here, with
 * stand-ins for what it calls in main.c, priv.c and check.c.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <lmdb.h>

#include "cmd/policy.c"
#include "cmd/status.c"
#include "cmd/control.c"
#include "cmd/ctlreq.c"
#include "tests/unit/cmdcapture.h"
#include "tests/unit/cmdstubs.h"
#include "tests/unit/dnsmsg.h"
#include "tests/unit/lmdbraw.h"

int
cmd_json_set(json_t *o, const char *key, const char *s)
{
	return json_object_set_new(o, key, s == NULL || *s == '\0' ?
	    json_null() : json_string(s));
}

static char dir[] = "/tmp/mxg-policy-cmd-XXXXXX";
static char outpath[300], errpath[300], sockpath[300];
static char out[65536], errout[8192];
static struct config *cfg;

#include "tests/unit/ctldaemon.h"

/* A record for domain that does not decode. */
static void
corrupt(const char *domain)
{
	char path[400], err[256];
	struct sts_cache *c;

	c = sts_cache_open_limits(dir, 0, 0, 0, err, sizeof(err));
	assert_non_null(c);
	sts_cache_close(c);
	snprintf(path, sizeof(path), "%s/sts-cache.mdb", dir);
	lmdb_put_raw(path, domain, "junk!", 5);
}

static const struct zrr zone[] = {
	{ "nat.test", DNS_T_MX, "10 mx.nat.test" },
	{ "mx.nat.test", DNS_T_A, "192.0.2.7" },
	{ "sf.test", T_SERVFAIL, "" },
	{ "hostsf.test", DNS_T_MX, "10 mx.hostsf.test" },
	{ "mx.hostsf.test", T_SERVFAIL, "" },
	{ "nine.test", DNS_T_MX, "10 mx.nine.test" },
	{ "mx.nine.test", DNS_T_A, "192.0.2.51" },
	{ "mx.nine.test", DNS_T_A, "192.0.2.52" },
	{ "mx.nine.test", DNS_T_A, "192.0.2.53" },
	{ "mx.nine.test", DNS_T_A, "192.0.2.54" },
	{ "mx.nine.test", DNS_T_A, "192.0.2.55" },
	{ "mx.nine.test", DNS_T_A, "192.0.2.56" },
	{ "mx.nine.test", DNS_T_A, "192.0.2.57" },
	{ "mx.nine.test", DNS_T_A, "192.0.2.58" },
	{ "mx.nine.test", DNS_T_A, "192.0.2.59" },
	{ "many.test", DNS_T_MX, "11 mx01.many.test" },
	{ "many.test", DNS_T_MX, "12 mx02.many.test" },
	{ "many.test", DNS_T_MX, "13 mx03.many.test" },
	{ "many.test", DNS_T_MX, "14 mx04.many.test" },
	{ "many.test", DNS_T_MX, "15 mx05.many.test" },
	{ "many.test", DNS_T_MX, "16 mx06.many.test" },
	{ "many.test", DNS_T_MX, "17 mx07.many.test" },
	{ "many.test", DNS_T_MX, "18 mx08.many.test" },
	{ "many.test", DNS_T_MX, "19 mx09.many.test" },
	{ "many.test", DNS_T_MX, "20 mx10.many.test" },
	{ "many.test", DNS_T_MX, "21 mx11.many.test" },
	{ "many.test", DNS_T_MX, "22 mx12.many.test" },
	{ "many.test", DNS_T_MX, "23 mx13.many.test" },
	{ "many.test", DNS_T_MX, "24 mx14.many.test" },
	{ "many.test", DNS_T_MX, "25 mx15.many.test" },
	{ "many.test", DNS_T_MX, "26 mx16.many.test" },
	{ "many.test", DNS_T_MX, "27 mx17.many.test" },
	{ "mx01.many.test", DNS_T_A, "192.0.2.101" },
	{ "mx02.many.test", DNS_T_A, "192.0.2.102" },
	{ "mx03.many.test", DNS_T_A, "192.0.2.103" },
	{ "mx04.many.test", DNS_T_A, "192.0.2.104" },
	{ "mx05.many.test", DNS_T_A, "192.0.2.105" },
	{ "mx06.many.test", DNS_T_A, "192.0.2.106" },
	{ "mx07.many.test", DNS_T_A, "192.0.2.107" },
	{ "mx08.many.test", DNS_T_A, "192.0.2.108" },
	{ "mx09.many.test", DNS_T_A, "192.0.2.109" },
	{ "mx10.many.test", DNS_T_A, "192.0.2.110" },
	{ "mx11.many.test", DNS_T_A, "192.0.2.111" },
	{ "mx12.many.test", DNS_T_A, "192.0.2.112" },
	{ "mx13.many.test", DNS_T_A, "192.0.2.113" },
	{ "mx14.many.test", DNS_T_A, "192.0.2.114" },
	{ "mx15.many.test", DNS_T_A, "192.0.2.115" },
	{ "mx16.many.test", DNS_T_A, "192.0.2.116" },
	{ "mx17.many.test", DNS_T_A, "192.0.2.117" },
	{ NULL, 0, NULL },
};

/* A DNS server answering from zone on 127.0.0.1, in a child; its port
 * in *port. */
static pid_t
dns_start(int *port)
{
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	pid_t pid;
	int fd;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true((fd = socket(AF_INET, SOCK_DGRAM, 0)) >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
	*port = ntohs(sin.sin_port);
	assert_true((pid = fork()) >= 0);
	if (pid == 0) {
		(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
		for (;;) {
			unsigned char q[1500];
			struct sockaddr_storage from;
			socklen_t fl = sizeof(from);
			ssize_t n = recvfrom(fd, q, sizeof(q), 0,
			    (struct sockaddr *)&from, &fl);
			char name[512];
			int qtype;
			struct msg m;

			if (n < 17 || zone_question(q, n, name, sizeof(name),
			    &qtype) == -1)
				continue;
			zone_answer(zone, q, name, qtype, &m);
			sendto(fd, m.b, (size_t)m.n, 0,
			    (struct sockaddr *)&from, fl);
		}
	}
	close(fd);
	return pid;
}

static int dnsport;
static pid_t dnspid;

static int
setup(void **state)
{
	char err[256];

	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(outpath, sizeof(outpath), "%s.out", dir);
	snprintf(errpath, sizeof(errpath), "%s.err", dir);
	snprintf(sockpath, sizeof(sockpath), "%s/control.sock", dir);
	if ((cfg = config_load(NULL, err, sizeof(err))) == NULL)
		return -1;
	free(cfg->state_dir);
	cfg->state_dir = strdup(dir);
	dnspid = dns_start(&dnsport);
	snprintf(err, sizeof(err), "127.0.0.1:%d", dnsport);
	cfg->dns_servers.v = calloc(1, sizeof(char *));
	cfg->dns_servers.v[0] = strdup(err);
	cfg->dns_servers.n = 1;
	cfg->dns_timeout = 1000;
	cfg->dns_check_interval = 0;
	cfg->tls_history = 0;
	/* no daemon there, unless a test starts one */
	free(cfg->control_socket);
	cfg->control_socket = strdup(sockpath);
	return 0;
}

static int
teardown(void **state)
{
	char cmd[400];

	kill(dnspid, SIGKILL);
	waitpid(dnspid, NULL, 0);
	config_free(cfg);
	unlink(outpath);
	unlink(errpath);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* `mxguard policy ARGS...` with stdout in out[], stderr in errout[];
 * its exit status. */
static int
run(int argc, char **argv)
{
	return cmd_capture(cmd_policy, argc, argv, cfg, outpath, out,
	    sizeof(out), errpath, errout, sizeof(errout));
}

static void
test_cache_read_error_shown(void **state)
{
	char *text[] = { "policy", "bad.test", NULL };
	char *js[] = { "policy", "bad.test", "--json", NULL };

	corrupt("bad.test");
	log_init("test", 0, LOG_LVL_ERR);
	assert_int_equal(run(2, text), CMD_DEFER);
	assert_non_null(strstr(out, "defer  source=mta-sts reason=store-error"));
	assert_null(strstr(out, "none cached"));
	assert_non_null(strstr(out, "MTA-STS policy cache: could not be read "
	    "for bad.test"));
	assert_int_equal(run(3, js), CMD_DEFER);
	assert_non_null(strstr(out, "\"mta_sts_cache\":\"read-error\""));
	assert_non_null(strstr(out, "\"mta_sts_policy\":null"));
	/* a domain the cache has nothing for: none cached, the cache ok */
	js[1] = "none.test";
	assert_int_equal(run(3, js), CMD_OK);
	assert_non_null(strstr(out, "\"mta_sts_cache\":\"ok\""));
	text[1] = "none.test";
	assert_int_equal(run(2, text), CMD_OK);
	assert_non_null(strstr(out, "MTA-STS policy: none cached"));
	/* MTA-STS off: no cache, and no word of one "unavailable" */
	cfg->sts_enable = 0;
	assert_int_equal(run(2, text), CMD_OK);
	assert_null(strstr(out, "unavailable"));
	assert_non_null(strstr(out, "MTA-STS: off (sts_enable = no)"));
	assert_int_equal(run(3, js), CMD_OK);
	assert_non_null(strstr(out, "\"mta_sts_cache\":\"off\""));
	cfg->sts_enable = 1;
}

static void
strlist_set(struct strlist *l, const char *a, const char *b)
{
	l->v = calloc(2, sizeof(char *));
	l->v[0] = strdup(a);
	l->v[1] = strdup(b);
	l->n = 2;
}

/*
 * --dst: the verdict for the address the MTA connects to, an MX host's
 * or not, from the engine with that address: its tls_policy line, and
 * its enforcement_override (a monitor line for the address, except where
 * the domain's line says enforce: enforce wins, as in the daemon).
 * Without --dst no MX address is known here and neither line applies.
 */
static void
test_dst(void **state)
{
	char *plain[] = { "policy", "relay.test", NULL };
	char *dst[] = { "policy", "relay.test", "--dst", "192.0.2.7", NULL };
	char *dst6[] = { "policy", "relay.test", "--json", "--dst",
	    "2001:db8::8", NULL };
	char *strict[] = { "policy", "strict.test", "--dst", "2001:db8::8",
	    NULL };
	char *bad[] = { "policy", "relay.test", "--dst", "mx.relay.test",
	    NULL };
	struct config *saved = cfg, *c;
	char err[256];

	assert_non_null(c = config_load(NULL, err, sizeof(err)));
	free(c->state_dir);
	c->state_dir = strdup(dir);
	c->dns_servers = saved->dns_servers;
	c->dns_timeout = 1000;
	c->dns_check_interval = 0;
	c->tls_history = 0;
	strlist_set(&c->tls_policy, "192.0.2.7 encrypt",
	    "2001:db8::8 encrypt");
	strlist_set(&c->enforcement_override, "2001:db8::8 monitor",
	    "strict.test enforce");
	cfg = c;
	assert_int_equal(run(2, plain), CMD_OK);
	assert_non_null(strstr(out, "(no MX address): may  source=default"));
	assert_int_equal(run(4, dst), CMD_OK);
	assert_non_null(strstr(out, "  - [192.0.2.7]: encrypt  "
	    "source=override"));
	assert_int_equal(run(5, dst6), CMD_OK);
	assert_non_null(strstr(out, "\"address\":\"2001:db8::8\","
	    "\"judged_address\":null,"
	    "\"level\":\"encrypt\",\"enforcement\":\"monitor\","
	    "\"delivered_level\":\"may\""));
	assert_int_equal(run(4, strict), CMD_OK);
	assert_non_null(strstr(out, "  - [2001:db8::8]: encrypt  "
	    "source=override"));
	assert_null(strstr(out, "enforcement=monitor"));
	assert_int_equal(run(4, bad), CMD_UNKNOWN);
	cfg = saved;
	c->dns_servers.v = NULL;
	c->dns_servers.n = 0;
	config_free(c);
}

/* cfg with the fake DNS server at port and one tls_policy line. */
static struct config *
dns_cfg(int port, const char *ovr)
{
	struct config *c;
	char err[256], srv[64];

	assert_non_null(c = config_load(NULL, err, sizeof(err)));
	free(c->state_dir);
	c->state_dir = strdup(dir);
	snprintf(srv, sizeof(srv), "127.0.0.1:%d", port);
	c->dns_servers.v = calloc(1, sizeof(char *));
	c->dns_servers.v[0] = strdup(srv);
	c->dns_servers.n = 1;
	c->dns_timeout = 1000;
	c->dns_check_interval = 0;
	c->tls_history = 0;
	c->sts_enable = 0;
	free(c->control_socket);
	c->control_socket = strdup(sockpath);
	if (ovr != NULL) {
		c->tls_policy.v = calloc(1, sizeof(char *));
		c->tls_policy.v[0] = strdup(ovr);
		c->tls_policy.n = 1;
	}
	return c;
}

/*
 * --dst 64:ff9b::192.0.2.7 (well-known NAT64, RFC 6052): the daemon
 * judges 192.0.2.7 (netaddr_judged()), whose MX host is mx.nat.test
 * and whose tls_policy line says encrypt.  policy named no MX host ("-")
 * for it; now the line names mx.nat.test and says which address was
 * judged, in the text and in JSON (judged_address); an IPv4-mapped one
 * the same.  A plain IPv6 address is judged as it is (no
 * judged_address).
 */
static void
test_dst_nat64(void **state)
{
	char *nat[] = { "policy", "nat.test", "--dst", "64:ff9b::192.0.2.7",
	    NULL };
	char *mapped[] = { "policy", "nat.test", "--dst",
	    "::ffff:192.0.2.7", NULL };
	char *js[] = { "policy", "nat.test", "--json", "--dst",
	    "64:ff9b::c000:207", NULL };
	char *v6[] = { "policy", "nat.test", "--json", "--dst",
	    "2001:db8::7", NULL };
	struct config *saved = cfg;

	log_init("test", 0, LOG_LVL_ERR);
	cfg = dns_cfg(dnsport, "192.0.2.7 encrypt");
	assert_int_equal(run(4, nat), CMD_OK);
	assert_non_null(strstr(out, "  mx.nat.test [64:ff9b::c000:207] "
	    "(judged as 192.0.2.7): encrypt  source=override"));
	assert_int_equal(run(4, mapped), CMD_OK);
	assert_non_null(strstr(out, "  mx.nat.test [::ffff:192.0.2.7] "
	    "(judged as 192.0.2.7): encrypt  source=override"));
	assert_int_equal(run(5, js), CMD_OK);
	assert_non_null(strstr(out, "\"host\":\"mx.nat.test\","
	    "\"address\":\"64:ff9b::c000:207\",\"judged_address\":"
	    "\"192.0.2.7\",\"level\":\"encrypt\""));
	assert_int_equal(run(5, v6), CMD_OK);
	assert_non_null(strstr(out, "\"host\":\"-\",\"address\":"
	    "\"2001:db8::7\",\"judged_address\":null,\"level\":\"may\""));
	config_free(cfg);
	cfg = saved;
}

/*
 * --dst with the 9th address of an MX host: past the 8 the walk keeps
 * per host (MX_MAX_ADDRS), still that host's for the daemon (mx.c reads
 * every record of the answer), whose verdict names it (JSON "mx").  The
 * line named the host from the 8 kept addresses: "-", no MX host's.
 * Now it names the host the verdict is for.  Red before: "  - [192.0.2.59]".
 */
static void
test_dst_past_kept_addresses(void **state)
{
	char *dst[] = { "policy", "nine.test", "--dst", "192.0.2.59", NULL };
	char *js[] = { "policy", "nine.test", "--json", "--dst",
	    "192.0.2.59", NULL };
	struct config *saved = cfg;

	log_init("test", 0, LOG_LVL_ERR);
	cfg = dns_cfg(dnsport, NULL);
	assert_int_equal(run(4, dst), CMD_OK);
	assert_non_null(strstr(out, "  mx.nine.test [192.0.2.59]: may"));
	assert_int_equal(run(5, js), CMD_OK);
	assert_non_null(strstr(out, "\"host\":\"mx.nine.test\","
	    "\"address\":\"192.0.2.59\""));
	config_free(cfg);
	cfg = saved;
}

/*
 * An MX answer naming more hosts than the 16 the walk looks up
 * (MX_MAX_HOSTS): the least preferred one, mx17, was not looked up, so
 * policy gave no verdict for its addresses and said nothing of it, exit 0
 * ("every address would get the mail as required"), while the daemon
 * defers an MTA-STS enforce domain's mail to such an address
 * (local-error).  mxguard check lists such hosts as not probed and exits
 * 1; so does policy now: the MX section says how many were not looked up,
 * JSON's mx has unkept_hosts, and the exit status is 1.  With --dst the
 * verdict is the daemon's for that address, as before.
 */
static void
test_unkept_mx_hosts(void **state)
{
	char *text[] = { "policy", "many.test", NULL };
	char *js[] = { "policy", "many.test", "--json", NULL };
	char *dst[] = { "policy", "many.test", "--dst", "192.0.2.101", NULL };
	struct config *saved = cfg;

	log_init("test", 0, LOG_LVL_ERR);
	cfg = dns_cfg(dnsport, NULL);
	assert_int_equal(run(2, text), CMD_WARNING);
	assert_non_null(strstr(out, "mx16.many.test [192.0.2.116]: may"));
	assert_null(strstr(out, "mx17.many.test"));
	if (strstr(out, "  (1 more MX host in DNS than the 16 mxguard looks "
	    "up: no verdict for its addresses below") == NULL)
		fail_msg("the host not looked up not said:\n%s", out);
	assert_int_equal(run(3, js), CMD_WARNING);
	assert_non_null(strstr(out, "\"unkept_hosts\":1"));
	assert_non_null(strstr(out, "\"exit_status\":1"));
	assert_int_equal(run(4, dst), CMD_OK);
	config_free(cfg);
	cfg = saved;
}

/*
 * A DNS lookup that failed: policy exited 0 (or 2) with the verdict it
 * could make, and a script could not tell "this is the policy" from
 * "could not find out".  Now 3 (UNKNOWN, as for a monitoring plugin), stderr naming each failed
 * lookup and JSON's dns_failures: no resolver at all (127.0.0.1:9), the
 * MX SERVFAIL, an MX host's A and AAAA SERVFAIL.  Verdicts that only
 * tls_policy overrides decided depend on no lookup: their status, and
 * nothing on stderr.  A domain whose lookups answer: 0, none named.
 */
static void
test_dns_failure_tempfail(void **state)
{
	char *none[] = { "policy", "none.test", NULL };
	char *sf[] = { "policy", "sf.test", NULL };
	char *hostsf[] = { "policy", "hostsf.test", "--json", NULL };
	char *nat[] = { "policy", "nat.test", NULL };
	char *ovr[] = { "policy", "none.test", "--json", NULL };
	struct config *saved = cfg;

	log_init("test", 0, LOG_LVL_ERR);
	cfg = dns_cfg(9, NULL);			/* nothing there */
	assert_int_equal(run(2, none), CMD_UNKNOWN);
	assert_non_null(strstr(errout, "mxguard: policy: DNS lookup failed: "
	    "MX none.test: "));
	assert_non_null(strstr(errout, "mxguard: policy: the verdicts shown "
	    "may be a temporary deferral or incomplete (exit status 3)\n"));
	config_free(cfg);

	cfg = dns_cfg(9, "none.test encrypt");
	assert_int_equal(run(3, ovr), CMD_OK);
	assert_string_equal(errout, "");
	assert_non_null(strstr(out, "\"dns_failures\":[]"));
	config_free(cfg);

	cfg = dns_cfg(dnsport, NULL);
	assert_int_equal(run(2, sf), CMD_UNKNOWN);
	assert_non_null(strstr(errout, "mxguard: policy: DNS lookup failed: "
	    "MX sf.test: servfail\n"));
	assert_int_equal(run(3, hostsf), CMD_UNKNOWN);
	assert_non_null(strstr(errout, "mxguard: policy: DNS lookup failed: "
	    "A mx.hostsf.test: servfail\n"));
	assert_non_null(strstr(errout, "mxguard: policy: DNS lookup failed: "
	    "AAAA mx.hostsf.test: servfail\n"));
	assert_non_null(strstr(out, "\"dns_failures\":[{\"type\":\"A\","
	    "\"name\":\"mx.hostsf.test\",\"status\":\"servfail\"}"));
	assert_non_null(strstr(out, "\"exit_status\":3"));
	assert_int_equal(run(2, nat), CMD_OK);
	assert_null(strstr(errout, "DNS lookup failed"));
	config_free(cfg);
	cfg = saved;
}

/*
 * The file read and the configuration the daemon runs: no daemon, no
 * word (config_digest the file's, daemon_config_digest null); a daemon
 * on another digest, a warning first on stderr naming both (JSON:
 * config_warning), the exit status unchanged; a daemon on the same
 * digest, no warning.
 */
static void
test_daemon_digest_warning(void **state)
{
	char *text[] = { "policy", "none.test", NULL };
	char *js[] = { "policy", "none.test", "--json", NULL };
	uint32_t file = config_digest32(cfg), other = file ^ 0x01020304;
	char want[256];
	pid_t pid;

	log_init("test", 0, LOG_LVL_ERR);
	assert_int_equal(run(2, text), CMD_OK);
	assert_null(strstr(errout, "warning"));
	assert_int_equal(run(3, js), CMD_OK);
	snprintf(want, sizeof(want), "\"config_digest\":\"%08x\","
	    "\"daemon_config_digest\":null,\"config_warning\":null", file);
	assert_non_null(strstr(out, want));

	pid = daemon_start(other);
	assert_int_equal(run(2, text), CMD_OK);
	snprintf(want, sizeof(want), "mxguard: policy: warning: this answer "
	    "is for the configuration file on disk (digest %08x), not for "
	    "the one the daemon runs (digest %08x)", file, other);
	assert_memory_equal(errout, want, strlen(want));
	assert_non_null(strstr(out, "domain none.test\n"));
	assert_int_equal(run(3, js), CMD_OK);
	snprintf(want, sizeof(want), "\"config_digest\":\"%08x\","
	    "\"daemon_config_digest\":\"%08x\",\"config_warning\":\"this "
	    "answer is for the configuration file on disk", file, other);
	assert_non_null(strstr(out, want));
	assert_null(strstr(errout, "warning"));
	daemon_stop(pid);

	pid = daemon_start(file);
	assert_int_equal(run(2, text), CMD_OK);
	assert_null(strstr(errout, "warning"));
	assert_int_equal(run(3, js), CMD_OK);
	snprintf(want, sizeof(want), "\"config_digest\":\"%08x\","
	    "\"daemon_config_digest\":\"%08x\",\"config_warning\":null",
	    file, file);
	assert_non_null(strstr(out, want));
	daemon_stop(pid);
}

/*
 * A destination in bypass_dst goes direct (the queue or the rules let
 * it through): mxguard never sees it, and the MTA delivers with its own
 * TLS settings.  policy said "encrypt", exit 0, as if the mail were held
 * to it; now it says the flow is bypassed (JSON "bypassed": true) and
 * exits 1, delivered but not as the verdict asks.  An address outside
 * the list is unchanged.
 */
static void
test_bypass_dst(void **state)
{
	char *dst[] = { "policy", "relay.test", "--dst", "192.0.2.7", NULL };
	char *js[] = { "policy", "relay.test", "--json", "--dst",
	    "192.0.2.7", NULL };
	char *other[] = { "policy", "relay.test", "--dst", "192.0.2.8",
	    NULL };
	struct config *saved = cfg, *c;
	char err[256];

	(void)state;
	assert_non_null(c = config_load(NULL, err, sizeof(err)));
	free(c->state_dir);
	c->state_dir = strdup(dir);
	c->dns_servers = saved->dns_servers;
	c->dns_timeout = 1000;
	c->dns_check_interval = 0;
	c->tls_history = 0;
	strlist_set(&c->tls_policy, "192.0.2.7 encrypt", "192.0.2.8 encrypt");
	strlist_set(&c->bypass_dst, "192.0.2.7/32", "2001:db8::/32");
	cfg = c;
	assert_int_equal(run(4, dst), CMD_WARNING);
	assert_non_null(strstr(out, "  - [192.0.2.7]: encrypt  "
	    "source=override"));
	assert_non_null(strstr(out, "bypass_dst: mxguard never sees this "
	    "flow"));
	assert_int_equal(run(5, js), CMD_WARNING);
	assert_non_null(strstr(out, "\"bypassed\":true"));
	assert_int_equal(run(4, other), CMD_OK);
	assert_null(strstr(out, "bypass_dst"));
	cfg = saved;
	c->dns_servers.v = NULL;
	c->dns_servers.n = 0;
	config_free(c);
}

/*
 * A verify line without match= (or with match=hostname) checks the name
 * of the MX host H that owns the destination, which the MX lookup finds.
 * Without H (the address is no MX host's, or the MX lookup failed) the
 * verdict has no name to check: the proxy fails every handshake
 * (certificate-host-mismatch, policy_tls_check()) and defers the mail.
 * policy printed "verify", exit 0 ("would deliver as required"), and took
 * a failed MX lookup for one the verdict did not depend on.  Now such a
 * verdict says so and exits 2 (defer), 3 when a lookup it depends on
 * failed; a verify line whose H is known, and secure (D's names), keep 0.
 */
static void
test_verify_without_name(void **state)
{
	char *owned[] = { "policy", "nat.test", "--dst", "192.0.2.7", NULL };
	char *relay[] = { "policy", "nat.test", "--dst", "192.0.2.99",
	    NULL };
	char *js[] = { "policy", "nat.test", "--json", "--dst", "192.0.2.99",
	    NULL };
	char *failed[] = { "policy", "none.test", "--dst", "192.0.2.7",
	    NULL };
	struct config *saved = cfg;

	(void)state;
	log_init("test", 0, LOG_LVL_ERR);
	cfg = dns_cfg(dnsport, "nat.test verify");
	assert_int_equal(run(4, owned), CMD_OK);
	assert_non_null(strstr(out, "  mx.nat.test [192.0.2.7]: verify  "
	    "source=override mx=mx.nat.test"));
	assert_int_equal(run(4, relay), CMD_DEFER);
	assert_non_null(strstr(out, "  - [192.0.2.99]: verify  "
	    "source=override"));
	assert_non_null(strstr(out, "no name to verify the certificate "
	    "for"));
	assert_int_equal(run(5, js), CMD_DEFER);
	assert_non_null(strstr(out, "\"exit_status\":2"));
	config_free(cfg);

	cfg = dns_cfg(dnsport, "nat.test verify match=hostname");
	assert_int_equal(run(4, owned), CMD_OK);
	assert_int_equal(run(4, relay), CMD_DEFER);
	config_free(cfg);

	/* secure checks D's names: no lookup needed */
	cfg = dns_cfg(dnsport, "nat.test secure");
	assert_int_equal(run(4, relay), CMD_OK);
	config_free(cfg);

	/* no resolver: H could not be had, the lookup is named */
	cfg = dns_cfg(9, "none.test verify");
	assert_int_equal(run(4, failed), CMD_UNKNOWN);
	assert_non_null(strstr(errout, "mxguard: policy: DNS lookup failed: "
	    "MX none.test: "));
	config_free(cfg);
	cfg = dns_cfg(9, "none.test secure");
	assert_int_equal(run(4, failed), CMD_OK);
	assert_string_equal(errout, "");
	config_free(cfg);
	cfg = saved;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cache_read_error_shown),
		cmocka_unit_test(test_dst),
		cmocka_unit_test(test_daemon_digest_warning),
		cmocka_unit_test(test_dst_nat64),
		cmocka_unit_test(test_dst_past_kept_addresses),
		cmocka_unit_test(test_unkept_mx_hosts),
		cmocka_unit_test(test_dns_failure_tempfail),
		cmocka_unit_test(test_bypass_dst),
		cmocka_unit_test(test_verify_without_name),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
