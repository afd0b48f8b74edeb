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
 *
 * LEVEL takes Postfix's names and meanings (docs/policy.md has the table):
 * none | may | encrypt | dane (opportunistic DANE: DANE when usable TLSA
 * records exist, else may) | dane-only (mandatory DANE) | fingerprint |
 * verify | secure.  One exception for this release: in a tls_policy line
 * of mxguard.conf a plain "dane" keeps mxguard's old meaning, mandatory
 * DANE (Postfix's dane-only), with a warning; in a tls_policy_file (a
 * Postfix table) "dane" is always Postfix's opportunistic DANE.
 *
 * Attributes, as Postfix writes and reads them (white space or commas
 * between them and the level; level and attribute names in any case):
 *   match=   verify/secure: names the certificate must carry, ":"
 *            separated (a leading dot allows any subdomain); by default
 *            verify checks the MX host name and secure checks the
 *            recipient domain and its subdomains.  fingerprint: SHA-256
 *            digests of the certificate or of its public key, hex with
 *            or without ":" between the bytes, several separated by "|"
 *            (or given in several match= attributes).  An empty
 *            match= is an error (Postfix: an invalid policy).
 *   protocols= the TLS versions allowed: ">=TLSv1.2", "<=TLSv1.2", an
 *            exclusion list "!SSLv2:!SSLv3:!TLSv1:!TLSv1.1" or an
 *            inclusion list "TLSv1.2:TLSv1.3"; enforced on the upstream
 *            SSL before the handshake (a contiguous range only);
 *            once per line, as in Postfix.
 *
 * tls_policy_file names a Postfix smtp_tls_policy_maps source file (the
 * texthash syntax: KEY whitespace VALUE, "#" comments, a line starting
 * with whitespace continues the previous one).  Keys: domain, .domain,
 * [host] and [host]:port (an IP literal becomes a destination address
 * entry, a name a domain entry; a port other than 25 or "smtp" is
 * skipped with a warning: mxguard only sees port 25).  Errors name
 * FILE:LINE; so do a key with a trailing dot (Postfix never looks one
 * up) and a NUL byte (the line would end there).  Lines of
 * mxguard.conf come before the file's entries (first match wins).
 *
 * Lookup order: the destination address, then the exact domain, then the
 * closest parent ".domain".
 *
 * enforcement_override lines of mxguard.conf, "DEST enforce|monitor",
 * load into a table of their own (ovr_load_enforcement) with the same DEST
 * forms and lookup (ovr_find); an entry's `monitor` says which.
 *
 * The table owns its entries (one array); ovr_clear frees it.
 */
#ifndef MXG_OVERRIDE_H
#define MXG_OVERRIDE_H

#include <sys/socket.h>

#include "core/config.h"

#define OVR_MAX_MATCH	8

/* OVR_DANE is mandatory DANE (Postfix's dane-only); OVR_DANE_MAY is
 * Postfix's dane.  The old values keep their numbers. */
enum ovr_level { OVR_NONE, OVR_MAY, OVR_ENCRYPT, OVR_DANE, OVR_VERIFY,
	OVR_SECURE, OVR_DANE_MAY, OVR_FINGERPRINT };

struct ovr_entry {
	int		 is_addr;
	int		 family;
	unsigned char	 addr[16];
	char		 dest[256];	/* domain, or ".parent" */
	enum ovr_level	 level;
	int		 nmatch;
	char		 match[OVR_MAX_MATCH][256];
	int		 nfp;		/* fingerprint: SHA-256 digests */
	unsigned char	 fp[OVR_MAX_MATCH][32];
	int		 min_proto;	/* protocols=: OpenSSL version */
	int		 max_proto;	/* numbers, 0 = not limited */
	char		 line[300];	/* as configured, for logs */
	int		 monitor;	/* enforcement_override: monitor (1)
					 * or enforce (0) */
};

struct ovr_table {
	int		 n;
	struct ovr_entry *e;
	int		 nd;		/* domain entries, */
	int		*didx;		/* their indices sorted by dest */
	int		 nwarn;		/* warnings of the last load (each */
	char		 warn[512];	/* also logged); the last one */
};

/* Parses the tls_policy lines, then the Postfix table file (NULL or ""
 * for none): its bytes from text (len of them, as config_load() read
 * them) when not NULL, else from the file itself; 0, or -1 with err
 * naming the bad line (FILE:LINE for the file).  Warnings (the old
 * "dane" spelling, a skipped port) are logged with log_warn and counted
 * in the table. */
int		 ovr_load(struct ovr_table *, const struct strlist *,
		    const char *file, const char *text, size_t len,
		    char *err, size_t errsz);
/* The enforcement_override lines; 0, or -1 with err naming the line. */
int		 ovr_load_enforcement(struct ovr_table *,
		    const struct strlist *, char *err, size_t errsz);
void		 ovr_clear(struct ovr_table *);
/* domain already normalised; dst may be NULL. */
const struct ovr_entry *ovr_find(const struct ovr_table *,
		    const char *domain, const struct sockaddr *dst);
const char	*ovr_level_name(enum ovr_level);

#endif
