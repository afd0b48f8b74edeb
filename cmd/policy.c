/*
 * policy.c - `mxguard policy DOMAIN [--dst ADDRESS] [--json]`: what
 * mxguard knows and would decide for a recipient domain.  Prints the MX
 * hosts and their addresses (the daemon's own MX walk, policy/mx.c, in
 * its order), the _mta-sts TXT record, the MTA-STS policy (from the cache
 * or fetched now, with its age), and the verdict policy_lookup() gives
 * for every MX address, or with --dst for that one address (the one the
 * MTA connects to, an MX host's or not; an IPv4 address in IPv6 clothes,
 * IPv4-mapped or well-known NAT64, is judged as that IPv4 address, as the
 * daemon judges it), without connecting anywhere.  Runs its own event loop with the configured resolver and the
 * daemon's policy cache (state_dir); a fetched policy is cached as the
 * daemon would.  Run as root, it drops to `user` before opening that
 * cache (cmd/priv.h), as the daemon does.  Readable text, or with --json
 * one object (schema 1, null for what is absent; the TXT records are
 * quoted as in the log).
 * Exit status (cmd.h): 0 every verdict would deliver as required; 1 some
 * would deliver only because its policy is report-only (MTA-STS testing)
 * while enforcing would not, or its address is in bypass_dst (the flow
 * goes direct, mxguard never sees it: the verdict is said, with that
 * note, and applies to nothing), or the MX answer named more hosts than
 * the walk looks up (MX_MAX_HOSTS: no verdict for their addresses, said
 * in the MX list, JSON mx.unkept_hosts); 2 some MX address would be
 * deferred; 3 usage
 * or setup errors, a lookup that gave no verdict, or a DNS lookup the
 * verdicts depend on that failed (UNKNOWN, as a monitoring plugin says
 * it: the MX, an MX host's A or AAAA, the _mta-sts TXT with MTA-STS on, timed out or SERVFAIL, or a
 * verdict deferred for dnssec-invalid): "could not find out", not "this
 * is the policy"; stderr names each failed lookup, JSON dns_failures.
 * Verdicts that all come from tls_policy overrides depend on no lookup
 * and keep their status, but for a verify line without a name of its
 * own, which needs H (the MX lookup's): without H no handshake can pass
 * its check and the proxy defers, so it exits 2 (3 with that lookup
 * failed), policy_verdict_unmeetable().  Under
 * enforcement = monitor the level and the status are enforce mode's (what
 * monitor only logs as would-defer), and the line says it is monitored.
 * The resolver self-check (policy/dnscheck.h) runs once first: its result
 * is printed and handed to the engine, whose verdicts then note when DANE
 * cannot apply.
 * When a daemon answers on control_socket and runs another configuration
 * than the file read (cmd_config_vs_daemon(), cmd.h), the first line on
 * stderr says so, or JSON's config_warning; the exit status stays the
 * verdicts'.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cmd/cmd.h"
#include "cmd/priv.h"
#include "core/clock.h"
#include "core/ev.h"
#include "core/log.h"
#include "core/netaddr.h"
#include "policy/cache.h"
#include "policy/dns.h"
#include "policy/dnscheck.h"
#include "policy/mx.h"
#include "policy/policy.h"
#include "policy/sts.h"

struct run {
	struct ev_loop	*loop;
	int		 outstanding;
	/* MX hosts and their addresses */
	struct mx_result *mx;
	/* TXT */
	enum dns_status	 txt_st;
	int		 ntxt;
	char		 txt[8][512];
	/* verdict */
	struct policy_verdict *v;
	/* the resolver self-check: -1 not run, 0, 1 */
	int		 validating;
	char		 why[128];
};

static void
one_done(struct run *r)
{
	if (--r->outstanding == 0)
		ev_loop_stop(r->loop);
}

static void
wait_all(struct run *r)
{
	if (r->outstanding > 0)
		ev_loop_run(r->loop);
}

static void
on_walk(void *arg, struct mx_result *m)
{
	struct run *r = arg;

	r->mx = m;
	one_done(r);
}

static void
on_check(void *arg, int validating, const char *why)
{
	struct run *r = arg;

	r->validating = validating;
	snprintf(r->why, sizeof(r->why), "%s", why);
	one_done(r);
}

static const char *
st_name(int st)
{
	return st < 0 ? "-" : dns_status_name(st);
}

static void
on_txt(void *arg, enum dns_status st, const struct dns_answer *a)
{
	struct run *r = arg;
	int i;

	r->txt_st = st;
	if (a != NULL && (st == DNS_SECURE || st == DNS_INSECURE))
		for (i = 0; i < a->nrr && r->ntxt < 8; i++) {
			char q[512];

			snprintf(r->txt[r->ntxt++], 512, "%s", log_qn(q,
			    sizeof(q), a->rr[i].u.txt.text,
			    a->rr[i].u.txt.len));
		}
	one_done(r);
}

static void
on_verdict(void *arg, struct policy_verdict *v)
{
	struct run *r = arg;

	r->v = v;
	one_done(r);
}

static const char *
addr_str(const struct sockaddr_storage *ss, char *buf, size_t sz)
{
	const void *p = ss->ss_family == AF_INET ?
	    (const void *)&((const struct sockaddr_in *)ss)->sin_addr :
	    (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr;

	return inet_ntop(ss->ss_family, p, buf, (socklen_t)sz) ? buf : "?";
}

/* Version of the --json layout (raised when a member changes meaning). */
#define POLICY_JSON_SCHEMA	1

/* One verdict, printed, or added to the JSON array vs; returns the exit
 * status it calls for (cmd.h). */
static int
print_verdict(const char *host, const char *addr, const char *judged,
    int bypassed, const struct policy_verdict *v, json_t *vs)
{
	/* enforce mode's outcome, also for a monitored verdict */
	enum tls_level lvl = v->monitor ? v->would_level : v->level;
	/* verify with no name to check (no H): no handshake passes, the
	 * proxy defers the mail (policy_verdict_unmeetable()) */
	int unmeetable = policy_verdict_unmeetable(v);
	json_t *o;

	if (vs != NULL) {
		o = json_object();
		cmd_json_set(o, "host", host);
		cmd_json_set(o, "address", addr);
		cmd_json_set(o, "judged_address", judged);
		cmd_json_set(o, "level", tls_level_name(lvl));
		cmd_json_set(o, "enforcement", v->monitor ? "monitor" :
		    "enforce");
		cmd_json_set(o, "delivered_level", tls_level_name(v->level));
		json_object_set_new(o, "report_only",
		    json_boolean(v->report_only));
		cmd_json_set(o, "source", v->source);
		cmd_json_set(o, "mx", v->mx_host);
		cmd_json_set(o, "reason", v->reason);
		cmd_json_set(o, "detail", v->detail);
		cmd_json_set(o, "dane", v->dane_note ? "not-applicable" :
		    NULL);
		cmd_json_set(o, "dane_reason", v->dane_note);
		json_object_set_new(o, "bypassed", json_boolean(bypassed));
		json_object_set_new(o, "unmeetable",
		    json_boolean(unmeetable));
		json_array_append_new(vs, o);
	} else {
		if (addr != NULL)
			printf("  %s [%s]%s%s%s: %s", host, addr,
			    judged ? " (judged as " : "", judged ? judged :
			    "", judged ? ")" : "", tls_level_name(lvl));
		else
			printf("  (no MX address): %s",
			    tls_level_name(lvl));
		if (v->report_only)
			printf(" (report only)");
		if (v->monitor)
			printf(" (enforcement=monitor: delivered with %s%s)",
			    tls_level_name(v->level), lvl == TLS_LEVEL_DEFER ?
			    ", logged as would-defer" : "");
		printf("  source=%s", v->source);
		if (v->mx_host[0])
			printf(" mx=%s", v->mx_host);
		if (v->reason[0])
			printf(" reason=%s", v->reason);
		if (v->dane_note)
			printf(" dane=not-applicable dane_reason=%s",
			    v->dane_note);
		printf("\n    %s\n", v->detail);
		if (unmeetable)
			printf("    no name to verify the certificate for (no "
			    "MX host of the domain owns this address, or the "
			    "MX lookup failed): every handshake fails the "
			    "check, the mail is %s\n", v->monitor ?
			    "delivered, logged as would-defer" : "deferred");
		if (bypassed)
			printf("    bypass_dst: mxguard never sees this flow "
			    "(it goes direct): the MTA delivers with its own "
			    "TLS settings, none of the above applies\n");
	}
	/* the verdict is the daemon's for a flow it never gets: the mail
	 * goes, with nothing of it enforced */
	if (bypassed)
		return CMD_WARNING;
	if (lvl == TLS_LEVEL_DEFER || unmeetable)
		return CMD_DEFER;
	/* report-only: would deliver, but enforcing would not */
	return v->report_only && v->reason[0] ? CMD_WARNING : CMD_OK;
}

/* An address as the MTA would connect to it (port 25). */
static int
parse_dst(const char *s, struct sockaddr_storage *ss)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, s, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons(25);
		return 0;
	}
	if (inet_pton(AF_INET6, s, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(25);
		return 0;
	}
	return -1;
}

/* The address the daemon judges for the destination ss
 * (netaddr_judged(): IPv4-mapped or in a nat64_prefix is its IPv4
 * address, whose MX host, tls_policy and enforcement_override lines
 * apply).  1 when out differs from ss. */
static int
dst_judged(const struct sockaddr_storage *ss, struct sockaddr_storage *out)
{
	if (netaddr_judged((const struct sockaddr *)ss, out) == -1) {
		*out = *ss;
		return 0;
	}
	return out->ss_family != ss->ss_family;
}

static struct policy_verdict *
lookup(struct run *r, struct policy *p, const char *domain,
    const struct sockaddr_storage *ss)
{
	socklen_t sl = ss == NULL ? 0 : ss->ss_family == AF_INET ?
	    sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);

	r->v = NULL;
	r->outstanding = 1;
	if (policy_lookup(p, domain, (const struct sockaddr *)ss, sl, NULL,
	    on_verdict, r) == NULL)
		return NULL;
	wait_all(r);
	return r->v;
}

static int
worst(int a, int b)
{
	return a > b ? a : b;
}

/* One failed lookup: said on stderr, and in JSON's dns_failures. */
static void
dns_failure(json_t *arr, const char *type, const char *name, int st)
{
	const char *why = st < 0 ? "no answer" : dns_status_name(st);

	fprintf(stderr, "mxguard: policy: DNS lookup failed: %s %s: %s\n",
	    type, name, why);
	if (arr != NULL) {
		json_t *o = json_object();

		cmd_json_set(o, "type", type);
		cmd_json_set(o, "name", name);
		cmd_json_set(o, "status", why);
		json_array_append_new(arr, o);
	}
}

/*
 * The lookups the verdicts depend on that failed (the MX walk's, the
 * _mta-sts TXT when MTA-STS is on), each said on stderr and added to arr
 * (JSON, or NULL); dane_failed: a verdict was deferred for
 * dnssec-invalid (its own MX, address or TLSA lookups failed).  Returns
 * their number.
 */
static int
dns_failures(const struct run *r, const struct config *cfg,
    const char *txtname, int dane_failed, json_t *arr)
{
	const struct mx_result *m = r->mx;
	int i, n = 0;

	if (mx_status_failed(m->status)) {
		dns_failure(arr, "MX", m->domain, m->status);
		n++;
	}
	for (i = 0; i < m->nhost; i++) {
		if (mx_status_failed(m->host[i].st4)) {
			dns_failure(arr, "A", m->host[i].name, m->host[i].st4);
			n++;
		}
		if (mx_status_failed(m->host[i].st6)) {
			dns_failure(arr, "AAAA", m->host[i].name,
			    m->host[i].st6);
			n++;
		}
	}
	if (cfg->sts_enable && mx_status_failed(r->txt_st)) {
		dns_failure(arr, "TXT", txtname, r->txt_st);
		n++;
	}
	if (dane_failed) {
		fprintf(stderr, "mxguard: policy: DNS lookup failed: "
		    "DNSSEC/DANE (a verdict deferred for dnssec-invalid)\n");
		if (arr != NULL) {
			json_t *o = json_object();

			cmd_json_set(o, "type", "DANE");
			cmd_json_set(o, "name", m->domain);
			cmd_json_set(o, "status", "dnssec-invalid");
			json_array_append_new(arr, o);
		}
		n++;
	}
	return n;
}

/* Notes what a verdict says of DNS: whether a lookup decided it (not
 * a tls_policy override alone: a verify line without a name of its own
 * depends on the MX lookup for H, and has none when that failed), and
 * whether DNSSEC/DANE failed. */
static void
note_dns(const struct policy_verdict *v, int *looked_up, int *dane_failed)
{
	if (strcmp(v->source, "override") != 0 ||
	    policy_verdict_unmeetable(v))
		*looked_up = 1;
	if (strcmp(v->reason, "dnssec-invalid") == 0)
		*dane_failed = 1;
}

int
cmd_policy(int argc, char **argv, struct config *cfg,
    const struct cmd_opts *opts)
{
	struct run *r;
	struct policy *p;
	struct sts_cache *cache;
	struct sts_cache_entry e;
	struct dnscheck *chk;
	struct cmd_cfgcheck cc;
	const char *dom = NULL;
	char err[256], domain[256], name[300], a[64], ja[64];
	json_t *root = NULL, *o, *arr, *hs, *vs = NULL;
	struct sockaddr_storage dst;
	int i, j, rc = CMD_OK, nlookups = 0, json = 0, crc, have_dst = 0;
	int looked_up = 0, dane_failed = 0;

	memset(&dst, 0, sizeof(dst));
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else if (strcmp(argv[i], "--dst") == 0 && i + 1 < argc &&
		    !have_dst) {
			if (parse_dst(argv[++i], &dst) == -1) {
				fprintf(stderr, "mxguard: policy: --dst %s: not "
				    "an IPv4 or IPv6 address\n", argv[i]);
				return CMD_UNKNOWN;
			}
			have_dst = 1;
		} else if (argv[i][0] == '-' || dom != NULL) {
			cmd_usage("policy", stderr);
			return CMD_UNKNOWN;
		} else
			dom = argv[i];
	}
	if (dom == NULL) {
		cmd_usage("policy", stderr);
		return CMD_UNKNOWN;
	}
	/* first: the answer is for the file read, which the daemon may
	 * not run (before the drop: the socket is root's and `user`'s) */
	cmd_config_vs_daemon(cfg, &cc);
	if (!json && *cc.warning)
		fprintf(stderr, "mxguard: policy: warning: %s\n", cc.warning);
	/* the engine's event lines are for the daemon's log: here only
	 * warnings, unless -v (info) or -d (debug) */
	log_init("mxguard", 0, opts->debug ? LOG_LVL_DEBUG : opts->verbose ?
	    LOG_LVL_INFO : LOG_LVL_WARN);
	if (sts_domain_norm(dom, domain, sizeof(domain), err,
	    sizeof(err)) == -1) {
		fprintf(stderr, "mxguard: policy: %s: %s\n", dom, err);
		return CMD_UNKNOWN;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL ||
	    (r->loop = ev_loop_new()) == NULL) {
		fprintf(stderr, "mxguard: policy: out of memory\n");
		free(r);
		return CMD_UNKNOWN;
	}
	/* the engine is made as root (its Redis client's certificate and
	 * key may be root's alone, as the daemon reads them before its
	 * drop), and opens the MTA-STS cache and the TLS history as `user`,
	 * never as root (cmd/priv.h) */
	if ((p = policy_new_nostores(r->loop, cfg, err, sizeof(err))) == NULL ||
	    priv_drop_cmd(cfg, 0, err, sizeof(err)) == -1) {
		fprintf(stderr, "mxguard: policy: %s\n", err);
		policy_free(p);
		ev_loop_free(r->loop);
		free(r);
		return CMD_UNKNOWN;
	}
	policy_open_stores(p, cfg);
	/* the daemon's resolver self-check, once (3 s at most, as -n -v):
	 * while the resolver does not validate, DANE cannot apply and the
	 * verdicts say so */
	r->validating = -1;
	if (cfg->dns_check_interval > 0) {
		r->outstanding = 1;
		if ((chk = dnscheck_new(r->loop, cfg, DNSCHECK_ONESHOT, 3000,
		    on_check, r, err, sizeof(err))) == NULL)
			r->outstanding = 0;
		wait_all(r);
		dnscheck_free(chk);
		policy_set_resolver_validating(p, r->validating);
	}
	if (json) {
		if ((root = json_object()) == NULL ||
		    (vs = json_array()) == NULL) {
			fprintf(stderr, "mxguard: policy: out of memory\n");
			rc = CMD_UNKNOWN;
			goto out;
		}
		json_object_set_new(root, "schema",
		    json_integer(POLICY_JSON_SCHEMA));
		cmd_json_set(root, "domain", domain);
		cmd_config_json(root, &cc);
		o = json_object();
		json_object_set_new(o, "validating", r->validating == -1 ?
		    json_null() : json_boolean(r->validating));
		cmd_json_set(o, "detail", r->why);
		json_object_set_new(root, "resolver", o);
	} else {
		printf("domain %s\n", domain);
		if (r->validating == 0)
			printf("resolver: does not validate DNSSEC (%s): DANE "
			    "not applicable\n", r->why);
		else if (r->validating == 1)
			printf("resolver: validates DNSSEC (%s)\n", r->why);
	}

	/* MX hosts with their addresses, and TXT */
	r->outstanding = 2;
	snprintf(name, sizeof(name), "_mta-sts.%s", domain);
	if (mx_walk(policy_dns(p), domain, NULL, MX_WALK_A | MX_WALK_AAAA,
	    on_walk, r) == NULL ||
	    dns_query(policy_dns(p), name, DNS_T_TXT, on_txt, r) == NULL) {
		fprintf(stderr, "mxguard: policy: out of memory\n");
		rc = CMD_UNKNOWN;
		goto out;
	}
	wait_all(r);
	if (json) {
		o = json_object();
		hs = json_array();
		cmd_json_set(o, "status", dns_status_name(r->mx->status));
		json_object_set_new(o, "implicit",
		    json_boolean(r->mx->implicit));
		json_object_set_new(o, "null_mx", json_boolean(r->mx->null_mx));
		for (i = 0; i < r->mx->nhost; i++) {
			const struct mx_host *h = &r->mx->host[i];
			json_t *ho = json_object();

			json_object_set_new(ho, "pref", json_integer(h->pref));
			cmd_json_set(ho, "name", h->name);
			cmd_json_set(ho, "a_status", h->st4 < 0 ? NULL :
			    dns_status_name(h->st4));
			cmd_json_set(ho, "aaaa_status", h->st6 < 0 ? NULL :
			    dns_status_name(h->st6));
			arr = json_array();
			for (j = 0; j < h->naddr; j++)
				json_array_append_new(arr, json_string(
				    addr_str(&h->addr[j], a, sizeof(a))));
			json_object_set_new(ho, "addresses", arr);
			json_array_append_new(hs, ho);
		}
		json_object_set_new(o, "hosts", hs);
		json_object_set_new(o, "unkept_hosts",
		    json_integer(r->mx->nunkept));
		json_object_set_new(root, "mx", o);
		o = json_object();
		arr = json_array();
		cmd_json_set(o, "name", name);
		cmd_json_set(o, "status", dns_status_name(r->txt_st));
		for (i = 0; i < r->ntxt; i++)
			json_array_append_new(arr, json_string(r->txt[i]));
		json_object_set_new(o, "records", arr);
		json_object_set_new(root, "mta_sts_txt", o);
	} else {
		if (r->mx->implicit)
			printf("MX (%s: implicit MX, the domain itself)\n",
			    dns_status_name(r->mx->status));
		else if (r->mx->null_mx)
			printf("MX (%s: null MX, the domain accepts no "
			    "mail)\n", dns_status_name(r->mx->status));
		else
			printf("MX (%s)\n", dns_status_name(r->mx->status));
		for (i = 0; i < r->mx->nhost; i++) {
			const struct mx_host *h = &r->mx->host[i];

			printf("  %5d %s  A:%s AAAA:%s", h->pref, h->name,
			    st_name(h->st4), st_name(h->st6));
			for (j = 0; j < h->naddr; j++)
				printf(" %s", addr_str(&h->addr[j], a,
				    sizeof(a)));
			printf("\n");
		}
		if (r->mx->nunkept > 0)
			printf("  (%d more MX host%s in DNS than the %d "
			    "mxguard looks up: no verdict for %s addresses "
			    "below; the daemon defers an MTA-STS enforce "
			    "domain's mail to them)\n", r->mx->nunkept,
			    r->mx->nunkept == 1 ? "" : "s", MX_MAX_HOSTS,
			    r->mx->nunkept == 1 ? "its" : "their");
		printf("MTA-STS TXT %s (%s)\n", name,
		    dns_status_name(r->txt_st));
		for (i = 0; i < r->ntxt; i++)
			printf("  %s\n", r->txt[i]);
		printf("verdicts\n");
	}

	/* --dst: the one address the MTA connects to, whether an MX
	 * host's or not (a relayhost, a transport map, an address an
	 * attacker's DNS answer gave the MTA), named by the MX host that
	 * owns the address the daemon judges for it: the verdict's (H),
	 * which the daemon found among every address record of the
	 * answers, else the host owning it among the walk's (8 per host,
	 * MX_MAX_ADDRS: an address past them was "-") */
	if (have_dst) {
		struct policy_verdict *v = lookup(r, p, domain, &dst);
		struct sockaddr_storage jd;
		int judged = dst_judged(&dst, &jd);
		int owner = mx_result_set_dst(r->mx,
		    (const struct sockaddr *)&jd);

		if (v == NULL)
			rc = CMD_UNKNOWN;
		else {
			if (json)
				cmd_json_set(root, "mta_sts_note", v->sts_note);
			else if (v->sts_note[0])
				printf("  (MTA-STS: %s)\n", v->sts_note);
			note_dns(v, &looked_up, &dane_failed);
			rc = worst(rc, print_verdict(v->mx_host[0] ?
			    v->mx_host : owner >= 0 ?
			    r->mx->host[owner].name : "-", addr_str(&dst, a,
			    sizeof(a)), judged ? addr_str(&jd, ja, sizeof(ja)) :
			    NULL, cmd_bypassed_dst(cfg, &dst), v, vs));
			policy_verdict_free(v);
		}
		nlookups = 1;
	}
	/* verdicts: the first lookup also fetches and caches the policy */
	for (i = 0; i < r->mx->nhost && !have_dst; i++)
		for (j = 0; j < r->mx->host[i].naddr; j++) {
			struct policy_verdict *v = lookup(r, p, domain,
			    &r->mx->host[i].addr[j]);

			if (v == NULL) {
				rc = worst(rc, CMD_UNKNOWN);
				continue;
			}
			if (nlookups++ == 0) {
				if (json)
					cmd_json_set(root, "mta_sts_note",
					    v->sts_note);
				else if (v->sts_note[0])
					printf("  (MTA-STS: %s)\n",
					    v->sts_note);
			}
			note_dns(v, &looked_up, &dane_failed);
			rc = worst(rc, print_verdict(r->mx->host[i].name,
			    addr_str(&r->mx->host[i].addr[j], a, sizeof(a)),
			    NULL, cmd_bypassed_dst(cfg,
			    &r->mx->host[i].addr[j]), v, vs));
			policy_verdict_free(v);
		}
	if (nlookups == 0) {
		struct policy_verdict *v = lookup(r, p, domain, NULL);

		if (v != NULL) {
			if (json)
				cmd_json_set(root, "mta_sts_note", v->sts_note);
			else if (v->sts_note[0])
				printf("  (MTA-STS: %s)\n", v->sts_note);
			note_dns(v, &looked_up, &dane_failed);
			rc = worst(rc, print_verdict(NULL, NULL, NULL, 0, v,
			    vs));
			policy_verdict_free(v);
		} else
			rc = CMD_UNKNOWN;
	}
	/* MX hosts the walk did not look up (MX_MAX_HOSTS): no verdict was
	 * shown for their addresses, which the daemon defers under an
	 * MTA-STS enforce policy (local-error); not "all as required", as
	 * mxguard check says of them too.  With --dst the verdict shown is
	 * the daemon's for that address. */
	if (!have_dst && r->mx->nunkept > 0)
		rc = worst(rc, CMD_WARNING);
	if (json)
		json_object_set_new(root, "verdicts", json_incref(vs));

	/* a failed lookup makes the answer "could not find out", unless
	 * only overrides decided (no lookup does then) */
	if (json)
		json_object_set_new(root, "dns_failures", arr = json_array());
	if (rc != CMD_UNKNOWN && (looked_up || dane_failed) &&
	    dns_failures(r, cfg, name, dane_failed, json ? arr : NULL) > 0) {
		fprintf(stderr, "mxguard: policy: the verdicts shown may be a "
		    "temporary deferral or incomplete (exit status %d)\n",
		    CMD_UNKNOWN);
		rc = CMD_UNKNOWN;
	}

	/* the policy as cached now; mta_sts_cache says whether the cache
	 * could answer (a read error is no "none cached": the engine then
	 * defers a domain with no policy fetched, store-error) */
	cache = policy_sts_cache(p);
	crc = cache == NULL ? -2 : sts_cache_get(cache, domain, &e);
	if (json)
		cmd_json_set(root, "mta_sts_cache", !cfg->sts_enable ? "off" :
		    crc == -2 ? "unavailable" : crc == -1 ? "read-error" :
		    "ok");
	if (crc == -2) {
		if (json)
			json_object_set_new(root, "mta_sts_policy",
			    json_null());
		else if (!cfg->sts_enable)
			printf("MTA-STS: off (sts_enable = no)\n");
		else
			printf("MTA-STS policy cache: unavailable (state_dir "
			    "%s)\n", cfg->state_dir);
	} else if (crc == -1) {
		if (json)
			json_object_set_new(root, "mta_sts_policy",
			    json_null());
		else
			printf("MTA-STS policy cache: could not be read for "
			    "%s (store error)\n", domain);
	} else if (crc == 1) {
		int64_t now = clock_now();
		static const char *states[] = { "fresh", "refresh due",
		    "expired" };
		const char *state = states[sts_cache_state(&e, now,
		    cfg->sts_refresh_margin)];

		if (json) {
			o = json_object();
			arr = json_array();
			cmd_json_set(o, "id", e.id);
			cmd_json_set(o, "mode", sts_mode_name(e.pol.mode));
			json_object_set_new(o, "max_age",
			    json_integer(e.pol.max_age));
			json_object_set_new(o, "age",
			    json_integer(now - e.fetched));
			json_object_set_new(o, "expires_in",
			    json_integer(e.expires - now));
			cmd_json_set(o, "state", state);
			for (i = 0; i < e.pol.nmx; i++)
				json_array_append_new(arr,
				    json_string(e.pol.mx[i]));
			json_object_set_new(o, "mx", arr);
			json_object_set_new(root, "mta_sts_policy", o);
		} else {
			printf("MTA-STS policy (cached): id=%s mode=%s "
			    "max_age=%u age=%llds expires_in=%llds "
			    "state=%s\n", e.id, sts_mode_name(e.pol.mode),
			    e.pol.max_age, (long long)(now - e.fetched),
			    (long long)(e.expires - now), state);
			for (i = 0; i < e.pol.nmx; i++)
				printf("  mx: %s\n", e.pol.mx[i]);
		}
		sts_cache_entry_clear(&e);
	} else if (json)
		json_object_set_new(root, "mta_sts_policy", json_null());
	else
		printf("MTA-STS policy: none cached\n");
	if (json) {
		json_object_set_new(root, "exit_status", json_integer(rc));
		if (json_dumpf(root, stdout, JSON_COMPACT) == -1) {
			fprintf(stderr, "mxguard: policy: cannot write "
			    "JSON\n");
			rc = CMD_UNKNOWN;
		} else
			putchar('\n');
	}
out:
	json_decref(vs);
	json_decref(root);
	policy_free(p);
	ev_loop_free(r->loop);
	free(r->mx);
	free(r);
	return rc;
}
