/*
 * override.h - per-destination TLS policy overrides (config tls_policy),
 * in the spirit of Postfix's smtp_tls_policy_maps.  One line each:
 *
 *     DEST LEVEL [match=NAME[:NAME...]]
 *
 * DEST is a domain ("example.com": that domain only), a parent domain with
 * a leading dot (".example.com": every subdomain, not the domain itself),
 * or an IP address (IPv4, IPv6, or [IPv6]): the destination address
 * mxguard intercepted, e.g. a relay host the MTA uses as smarthost.
 * LEVEL: none | may | encrypt | dane | verify | secure.  match= gives the
 * names the certificate must carry for verify/secure (a leading dot allows
 * any subdomain); by default verify checks the MX host name and secure
 * checks the recipient domain and its subdomains.
 *
 * Lookup order: the destination address, then the exact domain, then the
 * closest parent ".domain".
 */
#ifndef MXG_OVERRIDE_H
#define MXG_OVERRIDE_H

#include <sys/socket.h>

#include "core/config.h"

#define OVR_MAX_MATCH	8

enum ovr_level { OVR_NONE, OVR_MAY, OVR_ENCRYPT, OVR_DANE, OVR_VERIFY,
	OVR_SECURE };

struct ovr_entry {
	int		 is_addr;
	int		 family;
	unsigned char	 addr[16];
	char		 dest[256];	/* domain, or ".parent" */
	enum ovr_level	 level;
	int		 nmatch;
	char		 match[OVR_MAX_MATCH][256];
	char		 line[300];	/* as configured, for logs */
};

struct ovr_table {
	int		 n;
	struct ovr_entry *e;
};

/* Parses cfg->tls_policy; 0, or -1 with err naming the bad line. */
int		 ovr_load(struct ovr_table *, const struct strlist *,
		    char *err, size_t errsz);
void		 ovr_clear(struct ovr_table *);
/* domain already normalised; dst may be NULL. */
const struct ovr_entry *ovr_find(const struct ovr_table *,
		    const char *domain, const struct sockaddr *dst);
const char	*ovr_level_name(enum ovr_level);

#endif
