/*
 * config.h - mxguard.conf: "key = value" lines, '#' comments, blank lines.
 *
 * Every key has a built-in default, so no file at all is a valid
 * configuration.  A key given twice keeps the last value, except list keys
 * marked "repeatable" in config.c, which accumulate.  Unknown keys, bad
 * values, a NUL byte and a '#' after a value (a comment takes a line of
 * its own) are errors reported as "FILE:LINE: message".
 *
 * config_load() returns a struct the caller frees with config_free(); the
 * strings inside belong to it.  Durations are stored in milliseconds and
 * accept the suffixes ms, s, m, h, d (no suffix: seconds).
 */
#ifndef MXG_CONFIG_H
#define MXG_CONFIG_H

#include <sys/socket.h>

#include <stdint.h>
#include <stdio.h>

struct strlist {
	char	**v;
	int	  n;
};

struct config {
	/* listener */
	struct strlist	 listen;	/* "ADDR:PORT", "[ADDR6]:PORT" */
	char		*listen_mode;	/* redirect | tproxy */
	int		 max_sessions;
	int		 upstream_reuse;	/* park TLS legs after QUIT */
	uint64_t	 upstream_reuse_time;	/* idle time of a parked leg */
	uint64_t	 upstream_reuse_time_limit; /* a leg older than this
					 * (since its connect) is not
					 * parked again; 0 no limit */
	int		 upstream_reuse_max;	/* parked legs at most */
	char		*upstream_source;	/* auto | client | system:
					 * config_upstream_client() */

	/* netfilter */
	uint32_t	 upstream_mark;	/* SO_MARK of own sockets = BYPASS */
	uint32_t	 intercept_mark;
	uint32_t	 mark_mask;
	char		*fail_mode;	/* open | closed */
	char		*steering;	/* nfqueue | none */
	int		 nfqueue_num;
	int		 nfqueue_maxlen;	/* kernel queue length (packets) */
	size_t		 nfqueue_bufsize; /* netlink receive buffer */
	char		*rules_mode;	/* local | gateway */
	char		*rules_backend;	/* iptables | nftables */
	int		 divert_port;	/* REDIRECT/TPROXY target port */
	int		 tproxy_table;	/* policy routing table for TPROXY */
	struct strlist	 bypass_src;	/* CIDRs */
	struct strlist	 bypass_dst;	/* CIDRs */
	struct strlist	 bypass_interfaces; /* gateway: the outside ones */
	struct strlist	 local_users;	/* local: whose flows; "" = all */

	/* process */
	char		*user;		/* "" = keep running as started */
	char		*state_dir;
	char		*control_socket;
	char		*metrics_listen; /* "" = off */
	char		*log;		/* stderr | syslog */
	int		 log_level;	/* enum log_level */
	uint64_t	 drain_timeout;
	int		 workers;	/* processes; 0 = one per CPU */

	/* SMTP session timeouts (RFC 5321 4.5.3.2) */
	uint64_t	 connect_timeout;
	uint64_t	 greeting_timeout;
	uint64_t	 command_timeout;	/* upstream reply to a command */
	uint64_t	 client_timeout;	/* client idle between commands */
	uint64_t	 data_block_timeout;	/* one DATA block either way */
	uint64_t	 data_done_timeout;	/* final reply after "." */
	uint64_t	 tls_timeout;		/* upstream handshake */
	uint64_t	 policy_timeout;	/* policy decision at RCPT */

	/* TLS */
	char		*tls_ca_file;	/* "" = system store */
	char		*tls_ca_path;
	char		*tls_cert_file;	/* local cert: offer STARTTLS to client */
	char		*tls_key_file;
	char		*tls_ciphers;	/* TLS <= 1.2 cipher list */
	char		*tls_min_version; /* TLSv1, TLSv1.2, ... */

	/* policy */
	char		*require_tls;	/* no | yes: cleartext never */
	struct strlist	 tls_policy;	/* "DEST LEVEL [k=v ...]" repeatable */
	char		*tls_policy_file; /* Postfix smtp_tls_policy_maps
					 * source (texthash); "" = none */
	char		*enforcement;	/* enforce | monitor */
	struct strlist	 enforcement_override; /* "DEST enforce|monitor" */
	int		 dane_enable;
	int		 sts_enable;
	int		 tls_history;
	uint64_t	 tls_history_window;
	struct strlist	 dns_servers;	/* empty = /etc/resolv.conf */
	uint64_t	 dns_timeout;
	uint64_t	 dns_check_interval;	/* resolver self-check; 0 = off */
	char		*dns_check_signed_name;	/* its DNSKEY must be AD */
	char		*dns_check_bogus_name;	/* must SERVFAIL; "" = none */
	uint64_t	 sts_fetch_timeout;
	size_t		 sts_max_body;
	int		 sts_refresh_margin; /* percent of max_age left */
	uint64_t	 sts_refresh_interval; /* background round; 0 = off */
	int		 sts_refresh_max;	/* fetches one round starts */
	int		 sts_cache_max_entries;	/* policies in the cache */
	size_t		 sts_cache_max_entry_size; /* bytes of one policy */
	int		 tls_history_max_entries; /* records in the history */
	struct strlist	 nat64_prefix;	/* "PREFIX/LEN"; "none" or empty:
					 * none (core/netaddr.h) */

	/* shared policy state (policy/redis.c, docs/deployment.md) */
	char		*redis_address;	/* "" = off; IP:PORT or /path */
	char		*redis_username;	/* ACL user; "" = default */
	char		*redis_password;	/* "" = no AUTH */
	char		*redis_prefix;	/* key prefix */
	uint64_t	 redis_timeout;	/* one command, the connect */
	int		 redis_tls;	/* TLS to Redis (TCP only) */
	char		*redis_tls_ca_file;	/* "" = the system store */
	char		*redis_tls_server_name; /* "" = the host of the address */
	char		*redis_tls_cert_file;	/* client cert (tls-auth-clients) */
	char		*redis_tls_key_file;	/* "" = in the cert file */

	/* SMTP TLS Reporting (RFC 8460, docs/tlsrpt.md) */
	int		 tlsrpt_enable;
	char		*tlsrpt_org_name;	/* "" = the host name */
	char		*tlsrpt_contact;	/* "" = tlsrpt_from */
	char		*tlsrpt_from;		/* "" = mxguard-tlsrpt@host */
	char		*tlsrpt_dkim_key;	/* "" = no mailto reports */
	char		*tlsrpt_dkim_selector;
	char		*tlsrpt_dkim_domain;	/* "" = tlsrpt_from's domain */
	int		 tlsrpt_https_only;	/* never send to mailto: */
	int		 tlsrpt_private_destinations; /* rua hosts and
					 * MX hosts may be non-global */
	struct strlist	 tlsrpt_https_ports;	/* ports an https rua may use */
	uint64_t	 tlsrpt_max_delay;	/* random delay before sending */
	int		 tlsrpt_retention;	/* days of counts kept */

	/* not keys: what config_load() noticed but accepted ("FILE:LINE:
	 * ..."), for `-n` and the daemon's log */
	struct strlist	 warnings;
	/* SHA-256 of the bytes this configuration was made from: the file,
	 * then tls_policy_file's (what a worker reads again at a reload) */
	unsigned char	 digest[32];
	int		 digest_errno;	/* tls_policy_file unreadable */
	/* tls_policy_file's bytes as this load read them (NULL when it
	 * could not): the table is parsed from these, so a worker the
	 * supervisor starts again runs the file it checked, not an edit
	 * made since without a reload */
	char		*tls_policy_text;
	size_t		 tls_policy_len;
};

/* path NULL: defaults only.  On error returns NULL with err filled. */
struct config	*config_load(const char *path, char *err, size_t errsz);
void		 config_free(struct config *);
/* The first 32 bits of cfg->digest, as a number (a worker's check at a
 * reload, and the logs). */
uint32_t	 config_digest32(const struct config *);
/* The first bypass_src or bypass_dst entry with host bits set, what it
 * really bypasses, into buf (also a warning at every load); NULL when
 * none.  For `rules install`, which writes the lists into the rules. */
const char	*config_host_bits_warning(const struct config *, char *buf,
		    size_t bufsz);
/* Every key and its value, as the file would say it; secrets 0 hides
 * the value of secret keys (redis_password). */
void		 config_dump(const struct config *, FILE *, int secrets);
/* The first key whose change between a and b the installed netfilter
 * rules would not follow (marks, mask, fail_mode, steering, the divert
 * target, the queue, the mode, and with steering = none the bypass
 * lists): `mxguard rules install` and a restart apply it, a reload
 * cannot.  NULL when none changed. */
const char	*config_rules_key_changed(const struct config *a,
		    const struct config *b);
/* The keys changed between a and b that only a start applies (the
 * listeners, control socket, metrics endpoint and queue opened as root,
 * the user, state_dir and log target taken at the drop), as "k1, k2"
 * in buf; workers, whose effective value is the process count, is the
 * caller's.  Returns how many. */
int		 config_start_keys_changed(const struct config *a,
		    const struct config *b, char *buf, size_t bufsz);
/* Those keys of ncfg (a reload's) set back to cur's, the values the
 * processes started with: a worker started again after a reload (a
 * crash, the hang watchdog) runs on ncfg, and must open the stores in
 * the state_dir and as the user the others run with, not an empty
 * state_dir of the edited file (every cached MTA-STS policy and all TLS
 * history missing there: first contact again).  The digest is the
 * file's bytes and does not change.  -1 when out of memory. */
int		 config_keep_start_keys(struct config *ncfg,
		    const struct config *cur);
/* Nonzero when the rules divert with TPROXY (listen_mode = tproxy in
 * gateway mode): the original destination is then the accepted socket's
 * local address.  Local mode always diverts with REDIRECT (OUTPUT has no
 * TPROXY), whatever listen_mode says: SO_ORIGINAL_DST.  The rules
 * (nfq/rules.c) and the listeners (tlsproxy/proxy.c) both ask here. */
int		 config_tproxy(const struct config *);
/* "ADDR:PORT" or "[ADDR6]:PORT" (a listen entry: numeric addresses
 * only, port 1..65535) into ss; -1 if it is none. */
int		 config_hostport(const char *s, struct sockaddr_storage *ss);
/* Whether a flow of family (AF_INET, AF_INET6) that the rules divert
 * with REDIRECT lands on an address none of c's listen entries holds
 * on divert_port (local mode: 127.0.0.1 or ::1, the OUTPUT hook's
 * target, held by that address or the family's wildcard; gateway mode:
 * no address of that family at all).  Whoever binds it there, any local
 * user above ip_unprivileged_port_start, gets the flow.  0 under TPROXY,
 * which hands flows to transparent sockets only. */
int		 config_listen_unheard(const struct config *c, int family);
/* Gateway mode under REDIRECT: a family (AF_INET, AF_INET6) whose listen
 * entries at divert_port name addresses and no wildcard is diverted with
 * DNAT to the first of them that is not a loopback address, else to the
 * loopback one ("ADDR:PORT", "[ADDR6]:PORT" into buf); NULL for REDIRECT
 * (a wildcard, no entry of the family, local mode) and TPROXY.  The rules
 * divert by it (nfq/rules.c), so listen is a rules key when it moves. */
const char	*config_divert_to(const struct config *c, int af, char *buf,
		    size_t sz);
/* Nonzero when an upstream leg leaves from its client's address
 * (upstream_source = client, or auto in local mode: the MTA's source is
 * one of this host's), 0 when the kernel picks it (system, or auto in
 * gateway mode). */
int		 config_upstream_client(const struct config *);
/* local_users as uids, sorted, without repeats: names through the
 * password database, numbers as they are.  Returns how many (0: every
 * user's flows are diverted), or -1 with err naming the entry that is
 * neither a known user nor a uid.  At most CONFIG_LOCAL_USERS_MAX. */
#define CONFIG_LOCAL_USERS_MAX	32
int		 config_local_uids(const struct config *,
		    uint32_t uids[CONFIG_LOCAL_USERS_MAX], char *err,
		    size_t errsz);

#endif
