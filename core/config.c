/*
 * config.c - mxguard.conf parser (see config.h).
 *
 * One table names every key, its type, its default and where it goes in
 * struct config; defaults are parsed by the same code as file values, so a
 * default can never be a value the file would refuse.  docs/configuration.md
 * documents the same table; `mxguard -n -v` prints it.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "core/cidr.h"
#include "core/config.h"
#include "core/dirperm.h"
#include "core/log.h"
#include "core/netaddr.h"

enum ctype {
	C_STR,		/* any string */
	C_ENUM,		/* one of the words in .choices */
	C_INT,		/* 0 .. INT_MAX */
	C_BOOL,		/* yes/no */
	C_DUR,		/* duration, stored as ms (uint64_t) */
	C_MARK,		/* 32-bit, decimal or 0x hex */
	C_SIZE,		/* bytes, suffixes k, m */
	C_LIST,		/* words separated by space or comma; replaces */
	C_RLIST,	/* repeatable: each occurrence adds one entry */
	C_LOGLEVEL,
};

struct ckey {
	const char	*name;
	enum ctype	 type;
	size_t		 off;
	const char	*def;
	const char	*choices;	/* C_ENUM: "a|b|c" */
};

#define O(f) offsetof(struct config, f)

static const struct ckey keys[] = {
	{ "listen",		C_LIST,	O(listen),	"127.0.0.1:10025 [::1]:10025", NULL },
	{ "listen_mode",	C_ENUM,	O(listen_mode),	"redirect", "redirect|tproxy" },
	{ "max_sessions",	C_INT,	O(max_sessions), "4000", NULL },
	{ "upstream_reuse",	C_BOOL,	O(upstream_reuse), "yes", NULL },
	{ "upstream_reuse_time", C_DUR,	O(upstream_reuse_time), "5s", NULL },
	{ "upstream_reuse_time_limit", C_DUR, O(upstream_reuse_time_limit), "300s", NULL },
	{ "upstream_reuse_max",	C_INT,	O(upstream_reuse_max), "100", NULL },
	{ "upstream_source",	C_ENUM,	O(upstream_source), "auto", "auto|client|system" },

	{ "upstream_mark",	C_MARK,	O(upstream_mark), "0x4d58", NULL },
	{ "intercept_mark",	C_MARK,	O(intercept_mark), "0x4d49", NULL },
	{ "mark_mask",		C_MARK,	O(mark_mask),	"0xffff", NULL },
	{ "fail_mode",		C_ENUM,	O(fail_mode),	"closed", "open|closed" },
	{ "steering",		C_ENUM,	O(steering),	"nfqueue", "nfqueue|none" },
	{ "nfqueue_num",	C_INT,	O(nfqueue_num),	"2525", NULL },
	{ "nfqueue_maxlen",	C_INT,	O(nfqueue_maxlen), "4096", NULL },
	{ "nfqueue_bufsize",	C_SIZE,	O(nfqueue_bufsize), "8m", NULL },
	{ "rules_mode",		C_ENUM,	O(rules_mode),	"local", "local|gateway" },
	{ "rules_backend",	C_ENUM,	O(rules_backend), "iptables", "iptables|nftables" },
	{ "divert_port",	C_INT,	O(divert_port),	"10025", NULL },
	{ "tproxy_table",	C_INT,	O(tproxy_table), "100", NULL },
	{ "bypass_src",		C_LIST,	O(bypass_src),	"", NULL },
	{ "bypass_dst",		C_LIST,	O(bypass_dst),	"", NULL },
	{ "bypass_interfaces",	C_LIST,	O(bypass_interfaces), "", NULL },
	{ "local_users",	C_LIST,	O(local_users),	"", NULL },

	{ "user",		C_STR,	O(user),	"mxguard", NULL },
	{ "state_dir",		C_STR,	O(state_dir),	"/var/lib/mxguard", NULL },
	{ "control_socket",	C_STR,	O(control_socket), "/run/mxguard/control.sock", NULL },
	{ "metrics_listen",	C_STR,	O(metrics_listen), "", NULL },
	{ "log",		C_ENUM,	O(log),		"stderr", "stderr|syslog" },
	{ "log_level",		C_LOGLEVEL, O(log_level), "info", NULL },
	{ "drain_timeout",	C_DUR,	O(drain_timeout), "60s", NULL },
	{ "workers",		C_INT,	O(workers),	"0", NULL },

	{ "connect_timeout",	C_DUR,	O(connect_timeout), "30s", NULL },
	{ "greeting_timeout",	C_DUR,	O(greeting_timeout), "5m", NULL },
	{ "command_timeout",	C_DUR,	O(command_timeout), "5m", NULL },
	{ "client_timeout",	C_DUR,	O(client_timeout), "5m", NULL },
	{ "data_block_timeout",	C_DUR,	O(data_block_timeout), "3m", NULL },
	{ "data_done_timeout",	C_DUR,	O(data_done_timeout), "10m", NULL },
	{ "tls_timeout",	C_DUR,	O(tls_timeout),	"60s", NULL },
	{ "policy_timeout",	C_DUR,	O(policy_timeout), "60s", NULL },

	{ "tls_ca_file",	C_STR,	O(tls_ca_file),	"", NULL },
	{ "tls_ca_path",	C_STR,	O(tls_ca_path),	"", NULL },
	{ "tls_cert_file",	C_STR,	O(tls_cert_file), "", NULL },
	{ "tls_key_file",	C_STR,	O(tls_key_file), "", NULL },
	{ "tls_ciphers",	C_STR,	O(tls_ciphers),	"DEFAULT", NULL },
	{ "tls_min_version",	C_ENUM,	O(tls_min_version), "TLSv1", "TLSv1|TLSv1.1|TLSv1.2|TLSv1.3" },

	{ "require_tls",	C_ENUM,	O(require_tls),	"no", "no|yes" },
	{ "tls_policy",		C_RLIST, O(tls_policy),	"", NULL },
	{ "tls_policy_file",	C_STR,	O(tls_policy_file), "", NULL },
	{ "enforcement",	C_ENUM,	O(enforcement),	"enforce", "enforce|monitor" },
	{ "enforcement_override", C_RLIST, O(enforcement_override), "", NULL },
	{ "dane_enable",	C_BOOL,	O(dane_enable),	"yes", NULL },
	{ "sts_enable",		C_BOOL,	O(sts_enable),	"yes", NULL },
	{ "tls_history",	C_BOOL,	O(tls_history),	"yes", NULL },
	{ "tls_history_window",	C_DUR,	O(tls_history_window), "30d", NULL },
	{ "dns_servers",	C_LIST,	O(dns_servers),	"", NULL },
	{ "dns_timeout",	C_DUR,	O(dns_timeout),	"10s", NULL },
	{ "dns_check_interval",	C_DUR,	O(dns_check_interval), "300s", NULL },
	{ "dns_check_signed_name", C_STR, O(dns_check_signed_name), ".", NULL },
	{ "dns_check_bogus_name", C_STR, O(dns_check_bogus_name), "", NULL },
	{ "sts_fetch_timeout",	C_DUR,	O(sts_fetch_timeout), "30s", NULL },
	{ "sts_max_body",	C_SIZE,	O(sts_max_body), "64k", NULL },
	{ "sts_refresh_margin",	C_INT,	O(sts_refresh_margin), "25", NULL },
	{ "sts_refresh_interval", C_DUR, O(sts_refresh_interval), "1h", NULL },
	{ "sts_refresh_max",	C_INT,	O(sts_refresh_max), "100", NULL },
	{ "sts_cache_max_entries", C_INT, O(sts_cache_max_entries), "10000", NULL },
	{ "sts_cache_max_entry_size", C_SIZE, O(sts_cache_max_entry_size), "8k", NULL },
	{ "tls_history_max_entries", C_INT, O(tls_history_max_entries), "100000", NULL },
	{ "nat64_prefix",	C_LIST,	O(nat64_prefix), "64:ff9b::/96", NULL },
	{ "redis_address",	C_STR,	O(redis_address), "", NULL },
	{ "redis_username",	C_STR,	O(redis_username), "", NULL },
	{ "redis_password",	C_STR,	O(redis_password), "", NULL },
	{ "redis_prefix",	C_STR,	O(redis_prefix), "mxguard:", NULL },
	{ "redis_timeout",	C_DUR,	O(redis_timeout), "500ms", NULL },
	{ "redis_tls",		C_BOOL,	O(redis_tls),	"no", NULL },
	{ "redis_tls_ca_file",	C_STR,	O(redis_tls_ca_file), "", NULL },
	{ "redis_tls_server_name", C_STR, O(redis_tls_server_name), "", NULL },
	{ "redis_tls_cert_file", C_STR,	O(redis_tls_cert_file), "", NULL },
	{ "redis_tls_key_file",	C_STR,	O(redis_tls_key_file), "", NULL },

	{ "tlsrpt_enable",	C_BOOL,	O(tlsrpt_enable), "no", NULL },
	{ "tlsrpt_org_name",	C_STR,	O(tlsrpt_org_name), "", NULL },
	{ "tlsrpt_contact",	C_STR,	O(tlsrpt_contact), "", NULL },
	{ "tlsrpt_from",	C_STR,	O(tlsrpt_from),	"", NULL },
	{ "tlsrpt_dkim_key",	C_STR,	O(tlsrpt_dkim_key), "", NULL },
	{ "tlsrpt_dkim_selector", C_STR, O(tlsrpt_dkim_selector), "tlsrpt", NULL },
	{ "tlsrpt_dkim_domain",	C_STR,	O(tlsrpt_dkim_domain), "", NULL },
	{ "tlsrpt_https_only",	C_BOOL,	O(tlsrpt_https_only), "no", NULL },
	{ "tlsrpt_private_destinations", C_BOOL, O(tlsrpt_private_destinations), "no", NULL },
	{ "tlsrpt_https_ports",	C_LIST,	O(tlsrpt_https_ports), "443", NULL },
	{ "tlsrpt_max_delay",	C_DUR,	O(tlsrpt_max_delay), "4h", NULL },
	{ "tlsrpt_retention",	C_INT,	O(tlsrpt_retention), "7", NULL },
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))
#define MAX_LINE	4094	/* bytes of a line, without its newline */

static void
strlist_clear(struct strlist *l)
{
	int i;

	for (i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

static int
strlist_add(struct strlist *l, const char *s, size_t len)
{
	char **n;

	if ((n = realloc(l->v, (l->n + 1) * sizeof(*n))) == NULL)
		return -1;
	l->v = n;
	if ((l->v[l->n] = strndup(s, len)) == NULL)
		return -1;
	l->n++;
	return 0;
}

static int
parse_dur(const char *s, uint64_t *ms)
{
	char *end;
	unsigned long long v;
	uint64_t mul = 1000;

	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -1;
	if (strcmp(end, "ms") == 0)
		mul = 1;
	else if (*end == '\0' || strcmp(end, "s") == 0)
		mul = 1000;
	else if (strcmp(end, "m") == 0)
		mul = 60000;
	else if (strcmp(end, "h") == 0)
		mul = 3600000;
	else if (strcmp(end, "d") == 0)
		mul = 86400000;
	else
		return -1;
	if (v > UINT64_MAX / mul / 2)
		return -1;
	*ms = v * mul;
	return 0;
}

static int
parse_u32(const char *s, uint32_t *out)
{
	char *end;
	unsigned long long v;

	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	/* decimal or 0x hex, as documented: never octal (a leading zero
	 * must not turn 010 into 8, a mark another tool may own) */
	v = strtoull(s, &end, s[0] == '0' && (s[1] == 'x' || s[1] == 'X') ?
	    16 : 10);
	if (errno || *end || v > 0xffffffffULL)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

static int
enum_ok(const char *choices, const char *v)
{
	size_t n = strlen(v);
	const char *p = choices;

	while (p) {
		const char *bar = strchr(p, '|');
		size_t len = bar ? (size_t)(bar - p) : strlen(p);

		if (len == n && strncmp(p, v, n) == 0)
			return 1;
		p = bar ? bar + 1 : NULL;
	}
	return 0;
}

/* Sets one key; returns NULL or a static error text. */
static const char *
set_key(struct config *c, const struct ckey *k, const char *v)
{
	void *f = (char *)c + k->off;
	uint64_t u64;
	uint32_t u32;
	char *end;
	long l;
	int lvl;

	switch (k->type) {
	case C_ENUM:
		if (!enum_ok(k->choices, v))
			return "value is not one of the allowed words";
		/* FALLTHROUGH */
	case C_STR: {
		char *d = strdup(v);

		if (d == NULL)
			return "out of memory";
		free(*(char **)f);
		*(char **)f = d;
		return NULL;
	}
	case C_INT:
		errno = 0;
		l = strtol(v, &end, 10);
		if (!*v || *end || errno || l < 0 || l > INT_MAX)
			return "not a non-negative integer";
		*(int *)f = (int)l;
		return NULL;
	case C_BOOL:
		if (strcmp(v, "yes") == 0)
			*(int *)f = 1;
		else if (strcmp(v, "no") == 0)
			*(int *)f = 0;
		else
			return "expected yes or no";
		return NULL;
	case C_DUR:
		if (parse_dur(v, &u64) == -1)
			return "not a duration (NUMBER with ms, s, m, h or d)";
		*(uint64_t *)f = u64;
		return NULL;
	case C_MARK:
		if (parse_u32(v, &u32) == -1)
			return "not a 32-bit number";
		*(uint32_t *)f = u32;
		return NULL;
	case C_SIZE:
		errno = 0;
		l = strtol(v, &end, 10);
		if (!isdigit((unsigned char)*v) || errno || l < 0)
			return "not a size (NUMBER with optional k or m)";
		if (*end == 'k' && end[1] == '\0' && l <= LONG_MAX / 1024)
			l *= 1024;
		else if (*end == 'm' && end[1] == '\0' &&
		    l <= LONG_MAX / (1024 * 1024))
			l *= 1024 * 1024;
		else if (*end)
			return "not a size (NUMBER with optional k or m)";
		*(size_t *)f = (size_t)l;
		return NULL;
	case C_LOGLEVEL:
		if ((lvl = log_level_parse(v)) < 0)
			return "expected err, warn, info or debug";
		*(int *)f = lvl;
		return NULL;
	case C_LIST: {
		struct strlist *sl = f;
		const char *p = v;

		strlist_clear(sl);
		while (*p) {
			size_t n;

			/* any byte the line reader trims separates items, so
			 * that an item never ends in one (config_dump) */
			p += strspn(p, " \t\r\v\f,");
			if ((n = strcspn(p, " \t\r\v\f,")) == 0)
				break;
			if (strlist_add(sl, p, n) == -1)
				return "out of memory";
			p += n;
		}
		return NULL;
	}
	case C_RLIST:
		if (*v == '\0')
			return NULL;
		if (strlist_add(f, v, strlen(v)) == -1)
			return "out of memory";
		return NULL;
	}
	return "internal: bad key type";
}

/* No listen address has divert_port for its port ("host:port",
 * "[v6]:port"): the generated rules would divert to a closed port. */
static int
divert_unheard(const struct config *c)
{
	const char *p;
	int i;

	for (i = 0; i < c->listen.n; i++)
		if ((p = strrchr(c->listen.v[i], ':')) != NULL &&
		    strtol(p + 1, NULL, 10) == c->divert_port)
			return 0;
	return 1;
}

/*
 * The first port an unprivileged process may bind in this network
 * namespace (net.ipv4.ip_unprivileged_port_start, IPv6 too; 1024 where it
 * cannot be read).
 */
static int
unprivileged_port_start(void)
{
	FILE *fp;
	int v = 1024;

	if ((fp = fopen("/proc/sys/net/ipv4/ip_unprivileged_port_start",
	    "re")) != NULL) {
		if (fscanf(fp, "%d", &v) != 1)
			v = 1024;
		fclose(fp);
	}
	return v;
}

/*
 * steering = none diverts (REDIRECT) every port-25 flow to divert_port
 * whether mxguard runs or not; a port any user may bind is then any
 * user's to listen on whenever mxguard does not (a restart, a stop with
 * fail_mode = closed, the boot before it starts), and the mail goes to
 * that process.  TPROXY hands flows only to transparent sockets, which
 * need a capability; NFQUEUE steering diverts only the flows the daemon
 * took.  -1 when the rules leave no such hole, else the first port an
 * unprivileged process may bind.
 */
static int
divert_port_takeable(const struct config *c)
{
	int start;

	if (strcmp(c->steering, "none") != 0 || config_tproxy(c))
		return -1;
	start = unprivileged_port_start();
	return c->divert_port >= start ? start : -1;
}

/*
 * fail_mode = open: `rules stop` (the unit's ExecStopPost) removes the
 * rules, so while the daemon is down every port-25 flow goes direct.  A
 * process of any local user that listens on a port the daemon must bind
 * (divert_port, or any listen port) while it is down (a restart, the boot
 * before it starts) keeps it from starting (address in use), whatever the
 * steering or listen_mode (a transparent socket needs a capability, its
 * port does not), and the mail goes direct for as long as that process
 * holds the port: an attacker on the path then strips STARTTLS.  -1 when
 * no such port, else the port; *start the first port an unprivileged
 * process may bind.
 */
static int
fail_open_port_takeable(const struct config *c, int *start)
{
	struct sockaddr_storage ss;
	int i, port;

	if (strcmp(c->fail_mode, "open") != 0)
		return -1;
	*start = unprivileged_port_start();
	if (c->divert_port >= *start)
		return c->divert_port;
	for (i = 0; i < c->listen.n; i++) {
		if (config_hostport(c->listen.v[i], &ss) == -1)
			continue;
		port = ntohs(ss.ss_family == AF_INET ?
		    ((struct sockaddr_in *)&ss)->sin_port :
		    ((struct sockaddr_in6 *)&ss)->sin6_port);
		if (port >= *start)
			return port;
	}
	return -1;
}

/* local_users: only in local mode (a forwarded packet has no local
 * socket, so no owner), each entry a user or a uid. */
static const char *
check_local_users(const struct config *c)
{
	static char buf[512];
	uint32_t uids[CONFIG_LOCAL_USERS_MAX];
	char err[300];

	if (c->local_users.n == 0)
		return NULL;
	if (strcmp(c->rules_mode, "local") != 0)
		return "local_users: only with rules_mode = local (a forwarded "
		    "flow has no local user)";
	if (config_local_uids(c, uids, err, sizeof(err)) == -1) {
		snprintf(buf, sizeof(buf), "local_users: %s", err);
		return buf;
	}
	return NULL;
}

static int
uid_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

int
config_local_uids(const struct config *c,
    uint32_t uids[CONFIG_LOCAL_USERS_MAX], char *err, size_t errsz)
{
	int i, n = 0, k;

	if (c->local_users.n > CONFIG_LOCAL_USERS_MAX) {
		snprintf(err, errsz, "at most %d users",
		    CONFIG_LOCAL_USERS_MAX);
		return -1;
	}
	for (i = 0; i < c->local_users.n; i++) {
		const char *v = c->local_users.v[i];
		struct passwd *pw;
		unsigned long long u;
		char *end;

		if (*v >= '0' && *v <= '9') {
			errno = 0;
			u = strtoull(v, &end, 10);
			/* (uid_t)-1 is "no uid" to the kernel */
			if (errno != 0 || *end != '\0' || u >= UINT32_MAX) {
				snprintf(err, errsz, "\"%.64s\" is not a uid "
				    "(0..%u)", v, UINT32_MAX - 1);
				return -1;
			}
		} else {
			/* a name the password database knows now: the
			 * rules carry its uid, as iptables-save shows it */
			if ((pw = getpwnam(v)) == NULL) {
				snprintf(err, errsz, "no user \"%.64s\"", v);
				return -1;
			}
			u = pw->pw_uid;
		}
		uids[n++] = (uint32_t)u;
	}
	qsort(uids, (size_t)n, sizeof(uids[0]), uid_cmp);
	for (i = k = 0; i < n; i++)
		if (k == 0 || uids[k - 1] != uids[i])
			uids[k++] = uids[i];
	return k;
}

static int warn_add(struct config *, const char *, ...)
    __attribute__((format(printf, 2, 3)));

static int
warn_add(struct config *c, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	return strlist_add(&c->warnings, buf, strlen(buf));
}

static int key_secret(const char *);

/*
 * '#' starts a comment only at the start of a line; one after a value
 * is part of it, which the operator did not mean: in a string it would
 * pass in silence (a self-check name, a path).  NULL, or the error.  A
 * password may hold anything.
 */
static const char *
comment_in(const struct ckey *k, const char *v)
{
	const char *h;

	if (key_secret(k->name))
		return NULL;
	/* after any byte that separates list items: config_dump joins
	 * items with a space, so "a,#b" would come back as a comment */
	for (h = strchr(v, '#'); h != NULL; h = strchr(h + 1, '#'))
		if (h == v || strchr(" \t\r\v\f", h[-1]) != NULL ||
		    (k->type == C_LIST && h[-1] == ','))
			return "'#' after the value: a comment goes on a "
			    "line of its own";
	return NULL;
}

static const struct ckey *
find_key(const char *name)
{
	size_t i;

	for (i = 0; i < NKEYS; i++)
		if (strcmp(keys[i].name, name) == 0)
			return &keys[i];
	return NULL;
}

/* bypass_interfaces: names as the kernel takes them (below IFNAMSIZ,
 * no '/', ':', white space or quotes), an optional trailing '+' as in
 * iptables' -i; and only where the rules have an input interface. */
static const char *
check_interfaces(const struct config *c)
{
	const struct strlist *l = &c->bypass_interfaces;
	int i;

	if (l->n > 0 && strcmp(c->rules_mode, "gateway") != 0)
		return "bypass_interfaces: only with rules_mode = gateway "
		    "(in local mode every outbound flow of this host is meant)";
	for (i = 0; i < l->n; i++) {
		const char *v = l->v[i];
		size_t n = strlen(v), k;

		if (n == 0 || n > 15 || strcmp(v, "+") == 0 ||
		    strcmp(v, ".") == 0 || strcmp(v, "..") == 0 ||
		    strcmp(v, "lo") == 0)
			return "bypass_interfaces: an interface name (1 to "
			    "15 characters, not lo), or a prefix ending in '+'";
		for (k = 0; k < n; k++)
			if (strchr("/:\"'\\*!{}", v[k]) != NULL ||
			    (unsigned char)v[k] <= ' ' ||
			    (unsigned char)v[k] >= 0x7f ||
			    (v[k] == '+' && k != n - 1))
				return "bypass_interfaces: an interface name "
				    "has no '/', ':', quotes, '*', '!', braces "
				    "or spaces ('+' only at its end)";
	}
	return NULL;
}

/* A timeout of 0 would arm no timer, or one that fires at once: neither
 * is what anyone writing 0 could mean, so each needs 1s at least. */
static const char *
check_timeouts(const struct config *c)
{
	static const struct {
		size_t		 off;
		const char	*err;
	} t[] = {
		{ O(connect_timeout), "connect_timeout: at least 1s" },
		{ O(greeting_timeout), "greeting_timeout: at least 1s" },
		{ O(command_timeout), "command_timeout: at least 1s" },
		{ O(client_timeout), "client_timeout: at least 1s" },
		{ O(data_block_timeout), "data_block_timeout: at least 1s" },
		{ O(data_done_timeout), "data_done_timeout: at least 1s" },
		{ O(tls_timeout), "tls_timeout: at least 1s" },
		{ O(policy_timeout), "policy_timeout: at least 1s" },
		{ O(dns_timeout), "dns_timeout: at least 1s" },
		{ O(sts_fetch_timeout), "sts_fetch_timeout: at least 1s" },
	};
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (*(const uint64_t *)((const char *)c + t[i].off) < 1000)
			return t[i].err;
	/* the history keeps seconds: below 1s it would never match */
	if (c->tls_history && c->tls_history_window < 1000)
		return "tls_history_window: at least 1s (tls_history = no "
		    "turns the history off)";
	return NULL;
}

/*
 * listen and metrics_listen: numeric "ADDR:PORT" or "[ADDR6]:PORT", read
 * as the listeners read them (config_hostport(); cmd/control.c's parser
 * takes the same).  Checked at load, so that `mxguard -n` and a reload
 * refuse what the start would: a listen address the daemon cannot read
 * stopped it only after the rules were in (with fail_mode = open, the
 * mail went direct while systemd restarted it in vain), and a bad
 * metrics_listen took the control socket down with the endpoint.
 */
static const char *
check_listen(const struct config *c)
{
	static char buf[400];
	struct sockaddr_storage ss;
	int i;

	for (i = 0; i < c->listen.n; i++)
		if (config_hostport(c->listen.v[i], &ss) == -1) {
			snprintf(buf, sizeof(buf), "listen: \"%.200s\" is not "
			    "ADDR:PORT or [ADDR6]:PORT (a numeric address, a "
			    "port 1..65535)", c->listen.v[i]);
			return buf;
		}
	if (*c->metrics_listen != '\0' &&
	    config_hostport(c->metrics_listen, &ss) == -1) {
		snprintf(buf, sizeof(buf), "metrics_listen: \"%.200s\" is not "
		    "ADDR:PORT or [ADDR6]:PORT (a numeric address, a port "
		    "1..65535)", c->metrics_listen);
		return buf;
	}
	return NULL;
}

/* Cross-key checks, after the whole file. */
static const char *
validate(const struct config *c)
{
	const char *e;

	if (c->listen.n == 0)
		return "listen: at least one address is needed";
	if ((e = check_listen(c)) != NULL)
		return e;
	if (c->max_sessions < 1)
		return "max_sessions: must be at least 1";
	if ((e = check_timeouts(c)) != NULL)
		return e;
	if (c->upstream_reuse_max < 0)
		return "upstream_reuse_max: must not be negative";
	if (c->workers > 64)
		return "workers: at most 64 (0: one per CPU)";
	/* the rules compare marks under mark_mask: a mark with bits
	 * outside it, or 0 under it, matches what was not meant (0: every
	 * flow not decided yet would pass the intercept rule) */
	if ((c->upstream_mark & c->mark_mask) == 0 ||
	    (c->intercept_mark & c->mark_mask) == 0)
		return "upstream_mark and intercept_mark must not be 0 "
		    "under mark_mask";
	if ((c->upstream_mark & ~c->mark_mask) != 0 ||
	    (c->intercept_mark & ~c->mark_mask) != 0)
		return "upstream_mark and intercept_mark must lie within "
		    "mark_mask";
	if (c->nfqueue_num < 0 || c->nfqueue_num > 65535)
		return "nfqueue_num: 0..65535";
	if (c->nfqueue_maxlen < 1)
		return "nfqueue_maxlen: at least 1 (0 would make every SYN "
		    "meet a full queue)";
	/* 0 unspec, 253 default, 254 main, 255 local: the system's own */
	if (c->tproxy_table < 1 || (c->tproxy_table >= 253 &&
	    c->tproxy_table <= 255))
		return "tproxy_table: a table of its own (not 0, 253, 254, "
		    "255)";
	if ((c->upstream_mark & c->mark_mask) ==
	    (c->intercept_mark & c->mark_mask))
		return "upstream_mark and intercept_mark must differ under mark_mask";
	if ((e = check_interfaces(c)) != NULL)
		return e;
	if ((e = check_local_users(c)) != NULL)
		return e;
	/* a gateway's inside MTA address is not this host's: leaving from
	 * it needs IP_TRANSPARENT and the replies routed back to us, which
	 * mxguard does not set up */
	if (strcmp(c->upstream_source, "client") == 0 &&
	    strcmp(c->rules_mode, "local") != 0)
		return "upstream_source: client only with rules_mode = local "
		    "(in gateway mode the client's address is not this "
		    "host's; a transparent source is not supported)";
	if ((*c->tls_cert_file == '\0') != (*c->tls_key_file == '\0'))
		return "tls_cert_file and tls_key_file go together";
	if (c->divert_port < 1 || c->divert_port > 65535)
		return "divert_port: must be 1..65535";
	/* The rules divert port 25 and let port 25 sent by mxguard's own
	 * marked sockets through: a listener on 25 could not tell a diverted
	 * flow from one sent to it (TPROXY keeps the destination port), and
	 * every flow would be refused as not diverted. */
	if (c->divert_port == 25)
		return "divert_port: not 25 (the port the rules divert)";
	if (c->sts_refresh_margin > 90)
		return "sts_refresh_margin: at most 90 (percent)";
	if (c->sts_refresh_max < 1)
		return "sts_refresh_max: at least 1";
	if (c->sts_cache_max_entries < 1 || c->tls_history_max_entries < 1)
		return "sts_cache_max_entries, tls_history_max_entries: at "
		    "least 1";
	/* a body above it is a failed fetch, and a failed fetch is no
	 * policy: "64" for 64k would turn off every enforce policy in
	 * silence (0 is the default, policy.c) */
	if (c->sts_max_body != 0 && c->sts_max_body < 1024)
		return "sts_max_body: at least 1k (a policy body above it is a "
		    "failed fetch, and its domain's mail goes without the "
		    "policy)";
	if (c->sts_cache_max_entry_size < 1024 ||
	    c->sts_cache_max_entry_size > 1024 * 1024)
		return "sts_cache_max_entry_size: 1k to 1m";
	if (*c->redis_address != '\0' && (c->redis_timeout < 10 ||
	    c->redis_timeout >= c->policy_timeout))
		return "redis_timeout: at least 10ms and below policy_timeout";
	if (*c->redis_address != '\0' && *c->redis_address != '/' &&
	    strrchr(c->redis_address, ':') == NULL)
		return "redis_address: IP:PORT, [IPv6]:PORT or /path/to/socket";
	if (*c->redis_username != '\0' && *c->redis_password == '\0')
		return "redis_username needs redis_password";
	if (c->redis_tls && (*c->redis_address == '\0' ||
	    *c->redis_address == '/'))
		return "redis_tls needs redis_address IP:PORT (not a unix "
		    "socket)";
	if (*c->redis_tls_key_file != '\0' && *c->redis_tls_cert_file == '\0')
		return "redis_tls_key_file needs redis_tls_cert_file";
	if (!c->redis_tls && (*c->redis_tls_ca_file != '\0' ||
	    *c->redis_tls_server_name != '\0' ||
	    *c->redis_tls_cert_file != '\0'))
		return "redis_tls_* settings need redis_tls yes";
	if (strlen(c->redis_prefix) > 64 ||
	    strpbrk(c->redis_prefix, " \t\r\n") != NULL)
		return "redis_prefix: at most 64 characters, no white space";
	if (c->tlsrpt_retention < 2 || c->tlsrpt_retention > 366)
		return "tlsrpt_retention: 2 to 366 (days)";
	if (c->tlsrpt_https_ports.n == 0)
		return "tlsrpt_https_ports: at least one port";
	for (int i = 0; i < c->tlsrpt_https_ports.n; i++) {
		const char *p = c->tlsrpt_https_ports.v[i];

		if (strspn(p, "0123456789") != strlen(p) || strlen(p) > 5 ||
		    atoi(p) < 1 || atoi(p) > 65535)
			return "tlsrpt_https_ports: port numbers, 1 to 65535";
	}
	if (*c->tlsrpt_from != '\0' && (strchr(c->tlsrpt_from, '@') == NULL ||
	    strpbrk(c->tlsrpt_from, " \t<>\"\r\n") != NULL))
		return "tlsrpt_from: a plain address, local@domain";
	return NULL;
}

/* nat64_prefix, checked by the code that applies it (netaddr.c), with
 * the line that set it: line 0 is the default. */
static int
check_nat64(const struct config *c, const char *path, int line, char *err,
    size_t errsz)
{
	char why[256];

	if (netaddr_nat64_check(&c->nat64_prefix, why, sizeof(why)) == 0)
		return 0;
	if (line > 0)
		snprintf(err, errsz, "%s:%d: nat64_prefix: %s", path, line,
		    why);
	else
		snprintf(err, errsz, "%s: nat64_prefix: %s", path ? path :
		    "defaults", why);
	return -1;
}

static int
strlist_eq(const struct strlist *a, const struct strlist *b)
{
	int i;

	if (a->n != b->n)
		return 0;
	for (i = 0; i < a->n; i++)
		if (strcmp(a->v[i], b->v[i]) != 0)
			return 0;
	return 1;
}

/*
 * Gateway mode under REDIRECT: where a family's diverted flows go.
 * REDIRECT sends a flow to the first address of the interface it came in
 * on (at divert_port), which a wildcard listen address holds, and a
 * specific one only when it is that address: a flow that comes in on
 * another inside interface, or after an address was put before it, lands
 * where mxguard does not listen and any local user may bind (above
 * ip_unprivileged_port_start), and the MTA's mail goes to that process.
 * So a family whose listen entries at divert_port name addresses and no
 * wildcard is diverted with DNAT to the first of them that is not a
 * loopback address, else to the loopback one, which the kernel drops as
 * a martian coming in on another interface: never someone else's
 * listener ("ADDR:PORT", "[ADDR6]:PORT" in buf).  NULL for REDIRECT: a
 * wildcard, no entry of the family (config_listen_unheard() judges that),
 * local mode (the loopback address), TPROXY.  nfq/rules.c diverts
 * by it; config_rules_key_changed() names listen when it moves.
 */
const char *
config_divert_to(const struct config *c, int af, char *buf, size_t sz)
{
	const char *to = NULL;
	char a[INET6_ADDRSTRLEN];
	int i, lo = 0, islo;

	if (strcmp(c->rules_mode, "local") == 0 || config_tproxy(c))
		return NULL;
	for (i = 0; i < c->listen.n; i++) {
		struct sockaddr_storage ss;
		const struct sockaddr_in *s4 = (const void *)&ss;
		const struct sockaddr_in6 *s6 = (const void *)&ss;
		const void *ip = af == AF_INET ? (const void *)&s4->sin_addr :
		    (const void *)&s6->sin6_addr;

		if (config_hostport(c->listen.v[i], &ss) == -1 ||
		    ss.ss_family != af || ntohs(af == AF_INET ? s4->sin_port :
		    s6->sin6_port) != c->divert_port)
			continue;
		if (af == AF_INET ? s4->sin_addr.s_addr == htonl(INADDR_ANY) :
		    IN6_IS_ADDR_UNSPECIFIED(&s6->sin6_addr))
			return NULL;	/* holds every address */
		islo = af == AF_INET ? ntohl(s4->sin_addr.s_addr) >> 24 == 127 :
		    IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr);
		/* the first, unless it is a loopback one and this not */
		if ((to != NULL && (!lo || islo)) ||
		    inet_ntop(af, ip, a, sizeof(a)) == NULL)
			continue;
		lo = islo;
		snprintf(buf, sz, af == AF_INET ? "%s:%d" : "[%s]:%d", a,
		    c->divert_port);
		to = buf;
	}
	return to;
}

/* Whether a and b divert flows of family af to the same place. */
static int
divert_same(const struct config *a, const struct config *b, int af)
{
	char ba[INET6_ADDRSTRLEN + 16], bb[INET6_ADDRSTRLEN + 16];
	const char *ta = config_divert_to(a, af, ba, sizeof(ba));
	const char *tb = config_divert_to(b, af, bb, sizeof(bb));

	if (ta == NULL || tb == NULL)
		return ta == tb;
	return strcmp(ta, tb) == 0;
}

const char *
config_rules_key_changed(const struct config *a, const struct config *b)
{
#define STR(k)	if (strcmp(a->k, b->k) != 0) return #k
#define NUM(k)	if (a->k != b->k) return #k
	STR(rules_mode);
	STR(rules_backend);
	STR(listen_mode);
	STR(fail_mode);
	STR(steering);
	NUM(divert_port);
	NUM(tproxy_table);
	NUM(nfqueue_num);
	NUM(intercept_mark);
	NUM(upstream_mark);
	NUM(mark_mask);
	if (!strlist_eq(&a->bypass_interfaces, &b->bypass_interfaces))
		return "bypass_interfaces";
	if (!strlist_eq(&a->local_users, &b->local_users))
		return "local_users";
	/* gateway mode under REDIRECT: DNAT to a listen address (a reload
	 * keeps the listeners the daemon started with) */
	if (!strlist_eq(&a->listen, &b->listen) &&
	    (!divert_same(a, b, AF_INET) || !divert_same(a, b, AF_INET6)))
		return "listen";
	/* with steering the daemon applies the bypass lists itself */
	if (strcmp(a->steering, "none") == 0) {
		if (!strlist_eq(&a->bypass_src, &b->bypass_src))
			return "bypass_src";
		if (!strlist_eq(&a->bypass_dst, &b->bypass_dst))
			return "bypass_dst";
	}
#undef STR
#undef NUM
	return NULL;
}

int
config_start_keys_changed(const struct config *a, const struct config *b,
    char *buf, size_t bufsz)
{
	size_t len = 0;
	int n = 0;

#define NOTE(changed, k) do {						\
	if (changed) {							\
		snprintf(buf + len, bufsz - len, "%s%s", n ? ", " : "", k); \
		len += strlen(buf + len);				\
		n++;							\
	}								\
} while (0)
	if (bufsz == 0)
		return 0;
	buf[0] = '\0';
	NOTE(!strlist_eq(&a->listen, &b->listen), "listen");
	NOTE(strcmp(a->user, b->user) != 0, "user");
	NOTE(strcmp(a->state_dir, b->state_dir) != 0, "state_dir");
	NOTE(strcmp(a->control_socket, b->control_socket) != 0,
	    "control_socket");
	NOTE(strcmp(a->metrics_listen, b->metrics_listen) != 0,
	    "metrics_listen");
	NOTE(strcmp(a->log, b->log) != 0, "log");
	NOTE(a->nfqueue_maxlen != b->nfqueue_maxlen, "nfqueue_maxlen");
	NOTE(a->nfqueue_bufsize != b->nfqueue_bufsize, "nfqueue_bufsize");
#undef NOTE
	return n;
}

/* One string key of ncfg set to cur's (config_keep_start_keys()). */
static int
keep_str(char **dst, const char *src)
{
	char *d;

	if (strcmp(*dst, src) == 0)
		return 0;
	if ((d = strdup(src)) == NULL)
		return -1;
	free(*dst);
	*dst = d;
	return 0;
}

int
config_keep_start_keys(struct config *ncfg, const struct config *cur)
{
	struct strlist l = { NULL, 0 };
	int i;

	if (!strlist_eq(&ncfg->listen, &cur->listen)) {
		for (i = 0; i < cur->listen.n; i++)
			if (strlist_add(&l, cur->listen.v[i],
			    strlen(cur->listen.v[i])) == -1) {
				strlist_clear(&l);
				return -1;
			}
		strlist_clear(&ncfg->listen);
		ncfg->listen = l;
	}
	if (keep_str(&ncfg->user, cur->user) == -1 ||
	    keep_str(&ncfg->state_dir, cur->state_dir) == -1 ||
	    keep_str(&ncfg->control_socket, cur->control_socket) == -1 ||
	    keep_str(&ncfg->metrics_listen, cur->metrics_listen) == -1 ||
	    keep_str(&ncfg->log, cur->log) == -1)
		return -1;
	ncfg->nfqueue_maxlen = cur->nfqueue_maxlen;
	ncfg->nfqueue_bufsize = cur->nfqueue_bufsize;
	return 0;
}

/*
 * mxguard.conf and tls_policy_file decide every recipient's policy: one
 * that others than root (and the user loading it) may write lets them
 * lower any domain at the next reload or start (tls_policy = .com none,
 * bypass_dst = 0.0.0.0/0, fail_mode = open).  Said at each load (the
 * directory is not judged: core/dirperm.h).  -1 out of memory.
 */
static int
warn_writable(struct config *c, int fd, const char *path, const char *what)
{
	struct stat st;
	enum dir_writer w;

	/* /dev/null (`-c /dev/null`, the defaults) is 0666, and empty
	 * whoever writes to it */
	if (fstat(fd, &st) == -1 || (S_ISCHR(st.st_mode) &&
	    major(st.st_rdev) == 1 && minor(st.st_rdev) == 3) ||
	    (w = dir_writers(&st, geteuid(), (gid_t)-1)) == DIRW_NONE)
		return 0;
	return warn_add(c, "%s: %s: others than root may write it (%s, "
	    "mode %04o): whoever can decides every recipient's TLS policy "
	    "at the next reload or start (tls_policy = .com none, a "
	    "bypass_dst, fail_mode = open); chown root and chmod go-w", path,
	    what, w == DIRW_OWNER ? "owned by another user" : w == DIRW_OTHERS ?
	    "others may write it" : "a group other than root's may write it",
	    (unsigned)(st.st_mode & 07777));
}

/* tls_policy_file's bytes into the digest and c->tls_policy_text; one
 * that cannot be read adds its errno instead (the reader that parses it
 * reports the error). */
static int
digest_file(EVP_MD_CTX *md, struct config *c)
{
	FILE *fp;
	char *text = NULL, *nt;
	size_t len = 0, cap = 0, n;

	if ((fp = fopen(c->tls_policy_file, "r")) == NULL) {
		c->digest_errno = errno;
		return EVP_DigestUpdate(md, &c->digest_errno,
		    sizeof(c->digest_errno)) == 1 ? 0 : -1;
	}
	if (warn_writable(c, fileno(fp), c->tls_policy_file,
	    "tls_policy_file") == -1)
		goto fail;
	for (;;) {
		if (cap - len < 8192) {
			cap = cap ? cap * 2 : 16384;
			if ((nt = realloc(text, cap)) == NULL)
				goto fail;
			text = nt;
		}
		if ((n = fread(text + len, 1, cap - len - 1, fp)) == 0)
			break;
		if (EVP_DigestUpdate(md, text + len, n) != 1)
			goto fail;
		len += n;
	}
	if (ferror(fp)) {
		/* as if unreadable: the parser reads the file and says why */
		free(text);
		text = NULL;
		c->digest_errno = EIO;
		if (EVP_DigestUpdate(md, &c->digest_errno,
		    sizeof(c->digest_errno)) != 1)
			goto fail;
	} else
		text[len] = '\0';
	fclose(fp);
	c->tls_policy_text = text;
	c->tls_policy_len = text != NULL ? len : 0;
	return 0;
fail:
	free(text);
	fclose(fp);
	return -1;
}

uint32_t
config_digest32(const struct config *c)
{
	return (uint32_t)c->digest[0] << 24 | (uint32_t)c->digest[1] << 16 |
	    (uint32_t)c->digest[2] << 8 | c->digest[3];
}

/*
 * The k-th bypass entry, bypass_src's then bypass_dst's: 1 when it has
 * host bits set, what it really bypasses into buf; 0 for an exact prefix,
 * a bare address, or what is no prefix at all (nfq_config_check() refuses
 * it, saying why); -1 past the last entry.
 */
static int
host_bits_at(const struct config *c, int k, char *buf, size_t bufsz)
{
	int dst = k >= c->bypass_src.n;
	const struct strlist *l = dst ? &c->bypass_dst : &c->bypass_src;
	const char *entry;
	struct cidr net;
	char nettxt[INET6_ADDRSTRLEN + 8];

	if (dst)
		k -= c->bypass_src.n;
	if (k >= l->n)
		return -1;
	entry = l->v[k];
	if (!cidr_host_bits(entry, &net))
		return 0;
	snprintf(buf, bufsz, "%s %s has host bits set: it bypasses all of %s "
	    "(every port-25 flow %s it goes direct, with no policy); write "
	    "the prefix or the address meant", dst ? "bypass_dst" :
	    "bypass_src", entry, cidr_str(&net, nettxt, sizeof(nettxt)),
	    dst ? "to" : "from");
	return 1;
}

const char *
config_host_bits_warning(const struct config *c, char *buf, size_t bufsz)
{
	int k, r;

	for (k = 0; (r = host_bits_at(c, k, buf, bufsz)) != -1; k++)
		if (r == 1)
			return buf;
	return NULL;
}

/*
 * What loads but is likely not what the operator meant, or leaves a hole
 * (event=config-warning, mxguard -n); each is said once per load.  -1
 * out of memory.
 */
static int
cross_key_warnings(struct config *c, const char *where)
{
	char say[512];
	int unpriv, port, i, j, rc = 0;

	if (divert_unheard(c))
		rc |= warn_add(c, "%s: divert_port %d is the port of no listen "
		    "address: the rules mxguard writes send diverted "
		    "connections there, where nothing listens (every one "
		    "refused, the mail deferred)", where, c->divert_port);
	else if (config_listen_unheard(c, AF_INET) ||
	    config_listen_unheard(c, AF_INET6)) {
		int u4 = config_listen_unheard(c, AF_INET);

		rc |= warn_add(c, "%s: no listen address holds %s port %d, "
		    "where the rules send diverted %s flows: %s", where,
		    strcmp(c->rules_mode, "local") != 0 ? (u4 ? "an IPv4 "
		    "address's" : "an IPv6 address's") : u4 ? "127.0.0.1's" :
		    "[::1]'s",
		    c->divert_port, u4 ? "IPv4" : "IPv6",
		    strcmp(c->steering, "none") == 0 ? "whatever listens "
		    "there (any local user, above "
		    "ip_unprivileged_port_start) gets them; add it to listen" :
		    "mxguard drops their SYNs (event=nfq-verdict "
		    "reason=no-listener) and that mail stays queued; add it "
		    "to listen");
	}
	/* A TXT query the attacker (or a broken path) lets time out takes
	 * dns_timeout; only then is an expired cached policy fetched again
	 * (the policy host's addresses, dns_timeout again, then the GET):
	 * if that cannot end within policy_timeout, the lookup goes on
	 * without the policy it could have had. */
	if (2 * c->dns_timeout + c->sts_fetch_timeout > c->policy_timeout)
		rc |= warn_add(c, "%s: dns_timeout (%llu ms) twice and "
		    "sts_fetch_timeout (%llu ms) exceed policy_timeout (%llu "
		    "ms): an expired MTA-STS policy fetched again after its TXT "
		    "lookup timed out may not arrive in time, and the domain's "
		    "mail goes without it", where,
		    (unsigned long long)c->dns_timeout,
		    (unsigned long long)c->sts_fetch_timeout,
		    (unsigned long long)c->policy_timeout);
	/* a policy is due for refresh when at most this percentage of its
	 * max_age is left (sts_cache_state()): 0 is never before it expired,
	 * so nothing refreshes it in time (RFC 8461 section 5.1) */
	if (c->sts_enable && c->sts_refresh_margin == 0)
		rc |= warn_add(c, "%s: sts_refresh_margin = 0: no cached MTA-STS "
		    "policy is refreshed before it expires (neither by a lookup "
		    "nor by the background refresh), so at its max_age the next "
		    "lookup's fetch is all that keeps it, and an attacker on the "
		    "path who blocks that fetch leaves the domain with no policy "
		    "(its mail goes opportunistically); give 1 or more (the "
		    "default is 25)", where);
	/* said by `rules install` too (config_host_bits_warning()), but
	 * with steering = nfqueue a reload applies the lists without it */
	for (i = 0; (j = host_bits_at(c, i, say, sizeof(say))) != -1; i++)
		if (j == 1)
			rc |= warn_add(c, "%s: %s", where, say);
	if ((unpriv = divert_port_takeable(c)) >= 0)
		rc |= warn_add(c, "%s: divert_port %d is a port any local user "
		    "may bind (from %d, net.ipv4.ip_unprivileged_port_start): "
		    "with steering = none the rules divert every port-25 flow "
		    "to it whether mxguard runs or not, so while it does not (a "
		    "restart, a stop with fail_mode = closed, the boot before "
		    "it starts) whatever listens there gets the mail, and keeps "
		    "the port from mxguard; choose a divert_port (and listen "
		    "port) below %d, or steering = nfqueue", where,
		    c->divert_port, unpriv, unpriv);
	if ((port = fail_open_port_takeable(c, &unpriv)) >= 0)
		rc |= warn_add(c, "%s: fail_mode = open with listen port %d, a "
		    "port any local user may bind (from %d, "
		    "net.ipv4.ip_unprivileged_port_start): with fail_mode = "
		    "open the rules go when mxguard stops, and a process that "
		    "listens there while it is down (a restart, the boot "
		    "before it starts) keeps it from starting (address in "
		    "use): every port-25 flow then goes direct, unprotected, "
		    "for as long as that process holds the port; choose a "
		    "divert_port (and listen ports) below %d, or fail_mode = "
		    "closed", where, port, unpriv, unpriv);
	return rc == 0 ? 0 : -1;
}

struct config *
config_load(const char *path, char *err, size_t errsz)
{
	struct config *c;
	struct stat st;
	FILE *fp = NULL;
	char *line = NULL;
	const char *e;
	size_t i, cap = 0;
	ssize_t len;
	int lineno = 0, setat[NKEYS] = { 0 };
	EVP_MD_CTX *md = NULL;

	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
		snprintf(err, errsz, "out of memory");
		goto fail;
	}
	for (i = 0; i < NKEYS; i++) {
		if ((e = set_key(c, &keys[i], keys[i].def)) != NULL) {
			snprintf(err, errsz, "default of %s: %s", keys[i].name, e);
			goto fail;
		}
	}
	if (path == NULL)
		goto check;
	if ((fp = fopen(path, "r")) == NULL) {
		snprintf(err, errsz, "%s: %s", path, strerror(errno));
		goto fail;
	}
	while ((len = getline(&line, &cap, fp)) != -1) {
		char *p = line, *eq, *name, *val, *end;
		const struct ckey *k;
		size_t n = (size_t)len;

		lineno++;
		if (EVP_DigestUpdate(md, line, n) != 1) {
			snprintf(err, errsz, "%s: digest failed", path);
			goto fail;
		}
		if (n - (line[n - 1] == '\n') > MAX_LINE) {
			snprintf(err, errsz, "%s:%d: line too long", path, lineno);
			goto fail;
		}
		/* the value would end at the NUL, the rest of it lost
		 * (TLSv1\0.2 read as TLSv1, a tls_policy's match= dropped) */
		if (memchr(line, '\0', n) != NULL) {
			snprintf(err, errsz, "%s:%d: NUL byte in the line", path,
			    lineno);
			goto fail;
		}
		while (n > 0 && isspace((unsigned char)line[n - 1]))
			line[--n] = '\0';
		p += strspn(p, " \t");
		if (*p == '\0' || *p == '#')
			continue;
		if ((eq = strchr(p, '=')) == NULL) {
			snprintf(err, errsz, "%s:%d: expected \"key = value\"",
			    path, lineno);
			goto fail;
		}
		name = p;
		end = eq;
		while (end > name && isspace((unsigned char)end[-1]))
			end--;
		*end = '\0';
		val = eq + 1;
		val += strspn(val, " \t");
		if ((k = find_key(name)) == NULL) {
			snprintf(err, errsz, "%s:%d: unknown key \"%s\"", path,
			    lineno, name);
			goto fail;
		}
		if ((e = comment_in(k, val)) != NULL ||
		    (e = set_key(c, k, val)) != NULL) {
			snprintf(err, errsz, "%s:%d: %s: %s", path, lineno,
			    name, e);
			goto fail;
		}
		/* the last one wins, as in Postfix's main.cf, which warns
		 * too: a line added above an existing one would otherwise
		 * be overridden in silence (require_tls = yes, then the
		 * example's require_tls = no further down) */
		if (k->type != C_RLIST && setat[k - keys] != 0 &&
		    warn_add(c, "%s:%d: %s set again (first at line %d): "
		    "this later value replaces that one", path, lineno,
		    name, setat[k - keys]) == -1) {
			snprintf(err, errsz, "out of memory");
			goto fail;
		}
		setat[k - keys] = lineno;
	}
	if (ferror(fp)) {
		snprintf(err, errsz, "%s: read error", path);
		goto fail;
	}
	if (warn_writable(c, fileno(fp), path, "the configuration") == -1) {
		snprintf(err, errsz, "out of memory");
		goto fail;
	}
	/* make install leaves the file 0644, and the password added later
	 * is every local user's (docs/configuration.md, redis_password) */
	if (*c->redis_password != '\0' && fstat(fileno(fp), &st) == 0 &&
	    (st.st_mode & S_IROTH) && warn_add(c, "%s: redis_password is "
	    "set in a file other users can read (mode %04o): any local user "
	    "can read and write the shared policy state with it; chmod o-r "
	    "(0640, group %s's, or 0600)", path,
	    (unsigned)(st.st_mode & 07777), *c->user ? c->user : "root") ==
	    -1) {
		snprintf(err, errsz, "out of memory");
		goto fail;
	}
	fclose(fp);
	fp = NULL;
	free(line);
	line = NULL;
check:
	if ((e = validate(c)) != NULL) {
		snprintf(err, errsz, "%s: %s", path ? path : "defaults", e);
		goto fail;
	}
	if (check_nat64(c, path, setat[find_key("nat64_prefix") - keys], err,
	    errsz) == -1)
		goto fail;
	if (cross_key_warnings(c, path ? path : "defaults") == -1) {
		snprintf(err, errsz, "out of memory");
		goto fail;
	}
	/* a NUL between the two: no file's bytes can pass for the other's */
	if (EVP_DigestUpdate(md, "", 1) != 1 || (*c->tls_policy_file != '\0' &&
	    digest_file(md, c) == -1) ||
	    EVP_DigestFinal_ex(md, c->digest, NULL) != 1) {
		snprintf(err, errsz, "%s: digest failed", path ? path :
		    "defaults");
		goto fail;
	}
	EVP_MD_CTX_free(md);
	return c;
fail:
	if (fp)
		fclose(fp);
	free(line);
	EVP_MD_CTX_free(md);
	config_free(c);
	return NULL;
}

int
config_tproxy(const struct config *c)
{
	return strcmp(c->rules_mode, "local") != 0 &&
	    strcmp(c->listen_mode, "tproxy") == 0;
}

int
config_hostport(const char *s, struct sockaddr_storage *ss)
{
	char host[128];
	const char *colon;
	char *end;
	long port;
	struct sockaddr_in *in = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (*s == '[') {
		const char *rb = strchr(s, ']');

		if (rb == NULL || rb[1] != ':' || (size_t)(rb - s - 1) >=
		    sizeof(host))
			return -1;
		memcpy(host, s + 1, rb - s - 1);
		host[rb - s - 1] = '\0';
		colon = rb + 1;
	} else {
		if ((colon = strrchr(s, ':')) == NULL ||
		    (size_t)(colon - s) >= sizeof(host))
			return -1;
		memcpy(host, s, colon - s);
		host[colon - s] = '\0';
	}
	port = strtol(colon + 1, &end, 10);
	if (*end || port < 1 || port > 65535)
		return -1;
	if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)port);
	} else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
	} else
		return -1;
	return 0;
}

int
config_listen_unheard(const struct config *c, int family)
{
	static const uint8_t lo6[16] = { [15] = 1 };
	int i, local;

	if (c->listen.n == 0 || config_tproxy(c))
		return 0;
	local = strcmp(c->rules_mode, "local") == 0;
	for (i = 0; i < c->listen.n; i++) {
		struct sockaddr_storage ss;
		const struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		const struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		if (config_hostport(c->listen.v[i], &ss) == -1 ||
		    ss.ss_family != family || ntohs(family == AF_INET ?
		    s4->sin_port : s6->sin6_port) != c->divert_port)
			continue;
		/* gateway: REDIRECT goes to the inbound interface's
		 * address, which a wildcard holds, and a family of
		 * specific entries is DNATed to one (rules.c,
		 * gw_divert_to()); but a flow from another interface
		 * never reaches a loopback address, the default's (DNAT
		 * to it: a martian, dropped without a word) */
		if (!local) {
			if (!(family == AF_INET ?
			    ntohl(s4->sin_addr.s_addr) >> 24 == 127 :
			    memcmp(&s6->sin6_addr, lo6, 16) == 0))
				return 0;
			continue;
		}
		if (family == AF_INET ? s4->sin_addr.s_addr == htonl(INADDR_ANY) ||
		    s4->sin_addr.s_addr == htonl(INADDR_LOOPBACK) :
		    IN6_IS_ADDR_UNSPECIFIED(&s6->sin6_addr) ||
		    memcmp(&s6->sin6_addr, lo6, 16) == 0)
			return 0;
	}
	return 1;
}

int
config_upstream_client(const struct config *c)
{
	if (strcmp(c->upstream_source, "auto") == 0)
		return strcmp(c->rules_mode, "local") == 0;
	return strcmp(c->upstream_source, "client") == 0;
}

void
config_free(struct config *c)
{
	size_t i;

	if (c == NULL)
		return;
	for (i = 0; i < NKEYS; i++) {
		void *f = (char *)c + keys[i].off;

		if (keys[i].type == C_STR || keys[i].type == C_ENUM) {
			char *v = *(char **)f;

			/* a secret does not stay in freed memory (a core
			 * dump, the next allocation's reader) */
			if (v != NULL && key_secret(keys[i].name))
				explicit_bzero(v, strlen(v));
			free(v);
		} else if (keys[i].type == C_LIST || keys[i].type == C_RLIST)
			strlist_clear(f);
	}
	strlist_clear(&c->warnings);
	free(c->tls_policy_text);
	free(c);
}

/* Keys whose value `mxguard -n` does not show (config_dump without
 * secrets): the output lands in terminals, tickets and mailing lists. */
static int
key_secret(const char *name)
{
	return strcmp(name, "redis_password") == 0;
}

void
config_dump(const struct config *c, FILE *out, int secrets)
{
	static const char *lvl[] = { "err", "warn", "info", "debug" };
	size_t i;
	int j;

	for (i = 0; i < NKEYS; i++) {
		const void *f = (const char *)c + keys[i].off;

		switch (keys[i].type) {
		case C_STR:
		case C_ENUM:
			fprintf(out, "%s = %s\n", keys[i].name,
			    !secrets && key_secret(keys[i].name) &&
			    **(char *const *)f != '\0' ? "(set, not shown)" :
			    *(char *const *)f);
			break;
		case C_INT:
			fprintf(out, "%s = %d\n", keys[i].name, *(const int *)f);
			break;
		case C_BOOL:
			fprintf(out, "%s = %s\n", keys[i].name,
			    *(const int *)f ? "yes" : "no");
			break;
		case C_DUR:
			fprintf(out, "%s = %llums\n", keys[i].name,
			    (unsigned long long)*(const uint64_t *)f);
			break;
		case C_MARK:
			fprintf(out, "%s = 0x%x\n", keys[i].name,
			    *(const uint32_t *)f);
			break;
		case C_SIZE:
			fprintf(out, "%s = %zu\n", keys[i].name,
			    *(const size_t *)f);
			break;
		case C_LOGLEVEL:
			fprintf(out, "%s = %s\n", keys[i].name,
			    lvl[*(const int *)f]);
			break;
		case C_LIST: {
			const struct strlist *l = f;

			fprintf(out, "%s =", keys[i].name);
			for (j = 0; j < l->n; j++)
				fprintf(out, " %s", l->v[j]);
			fputc('\n', out);
			break;
		}
		case C_RLIST: {
			const struct strlist *l = f;

			for (j = 0; j < l->n; j++)
				fprintf(out, "%s = %s\n", keys[i].name, l->v[j]);
			break;
		}
		}
	}
}
