/*
 * tlsrpt_mail.c - the report message for a mailto: rua (RFC 8460
 * section 5.3), DKIM-signed with libopendkim.  See tlsrpt.h; the
 * message is malloc'd and the caller's.
 *
 * Section 5.3 asks for: a multipart/report with report-type "tlsrpt",
 * the report as an application/tlsrpt+gzip part (base64, with the
 * section 5.1 file name), a Subject "Report Domain: D Submitter: S
 * Report-ID: <id>", the TLS-Report-Domain and TLS-Report-Submitter
 * header fields, and a valid DKIM signature by the reporting domain
 * without "l=" (receivers ignore unsigned reports).  We sign, relaxed/
 * relaxed, rsa-sha256, From, To, Date, Subject, Message-ID,
 * TLS-Report-Domain, TLS-Report-Submitter, MIME-Version and
 * Content-Type.  Header fields are never folded (all stay far below the
 * 998-octet limit), so what is signed is exactly what is sent.  Values
 * that would need quoting or could inject a line are refused.
 *
 * The key: tlsrpt_dkim_key_load() reads and checks it once, with the
 * library handle, for all the messages of a report run; without one,
 * tlsrpt_mail_build() reads the file itself.  Either way the key's bytes
 * are wiped (OPENSSL_cleanse) before they are freed.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <dkim.h>

#include "policy/tlsrpt.h"

#define ERR(...) do {						\
	snprintf(err, errsz, __VA_ARGS__);			\
	goto fail;						\
} while (0)

#define KEY_MAX	(64 * 1024)

struct buf {
	char	*p;
	size_t	 len, cap;
	int	 bad;
};

static void
bput(struct buf *b, const char *s, size_t n)
{
	char *np;
	size_t cap;

	if (b->bad)
		return;
	if (b->len + n + 1 > b->cap) {
		cap = b->cap ? b->cap : 4096;
		while (cap < b->len + n + 1)
			cap *= 2;
		if ((np = realloc(b->p, cap)) == NULL) {
			b->bad = 1;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void
bprintf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
bprintf(struct buf *b, const char *fmt, ...)
{
	char tmp[2048];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(tmp)) {
		b->bad = 1;
		return;
	}
	bput(b, tmp, (size_t)n);
}

/* Printable ASCII without space and without any of the extra bytes. */
static int
token_ok(const char *s, const char *extra)
{
	if (s == NULL || *s == '\0' || strlen(s) > 320)
		return 0;
	for (; *s != '\0'; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f ||
		    strchr(extra, *s) != NULL)
			return 0;
	return 1;
}

/* RFC 5322 date-time in UTC, without the locale. */
static int
mail_date(int64_t t, char *buf, size_t sz)
{
	static const char *const wd[] = { "Sun", "Mon", "Tue", "Wed", "Thu",
	    "Fri", "Sat" };
	static const char *const mo[] = { "Jan", "Feb", "Mar", "Apr", "May",
	    "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	time_t tt = (time_t)t;
	struct tm tm;

	if (gmtime_r(&tt, &tm) == NULL)
		return -1;
	snprintf(buf, sz, "%s, %02d %s %04d %02d:%02d:%02d +0000",
	    wd[tm.tm_wday], tm.tm_mday, mo[tm.tm_mon], tm.tm_year + 1900,
	    tm.tm_hour, tm.tm_min, tm.tm_sec);
	return 0;
}

static int
random_hex(char *out, size_t nbytes)
{
	unsigned char r[32];
	size_t i;

	if (nbytes > sizeof(r) || RAND_bytes(r, (int)nbytes) != 1)
		return -1;
	for (i = 0; i < nbytes; i++)
		snprintf(out + 2 * i, 3, "%02x", r[i]);
	return 0;
}

static unsigned char *
read_key(const char *path, char *err, size_t errsz)
{
	FILE *f;
	unsigned char *k;
	size_t n;

	if ((f = fopen(path, "r")) == NULL) {
		snprintf(err, errsz, "DKIM key %s: %m", path);
		return NULL;
	}
	if ((k = malloc(KEY_MAX + 1)) == NULL) {
		fclose(f);
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	n = fread(k, 1, KEY_MAX + 1, f);
	fclose(f);
	if (n == 0 || n > KEY_MAX) {
		free(k);
		snprintf(err, errsz, "DKIM key %s: empty or larger than %d",
		    path, KEY_MAX);
		return NULL;
	}
	k[n] = '\0';
	return k;
}

/* Is key a PEM private key of type RSA? */
static int
rsa_pem(const unsigned char *key)
{
	BIO *b;
	EVP_PKEY *pk;
	int ok;

	if ((b = BIO_new_mem_buf(key, -1)) == NULL)
		return 0;
	pk = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
	BIO_free(b);
	ok = pk != NULL && EVP_PKEY_get_base_id(pk) == EVP_PKEY_RSA;
	EVP_PKEY_free(pk);
	return ok;
}

struct tlsrpt_dkim_key {
	unsigned char	*pem;		/* KEY_MAX + 1 bytes, NUL-terminated */
	DKIM_LIB	*lib;		/* the signed header fields set */
};

void
tlsrpt_dkim_key_free(struct tlsrpt_dkim_key *k)
{
	if (k == NULL)
		return;
	if (k->lib != NULL)
		dkim_close(k->lib);
	if (k->pem != NULL) {
		OPENSSL_cleanse(k->pem, KEY_MAX + 1);
		free(k->pem);
	}
	free(k);
}

struct tlsrpt_dkim_key *
tlsrpt_dkim_key_load(const char *path, char *err, size_t errsz)
{
	static const char *signhdrs[] = { "from", "to", "date", "subject",
	    "message-id", "tls-report-domain", "tls-report-submitter",
	    "mime-version", "content-type", NULL };
	struct tlsrpt_dkim_key *k;

	if ((k = calloc(1, sizeof(*k))) == NULL) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	if (path == NULL || (k->pem = read_key(path, err, errsz)) == NULL) {
		if (path == NULL)
			snprintf(err, errsz, "no DKIM key file");
		goto fail;
	}
	/* checked here first: libopendkim leaks on its own failure path, and
	 * its status code does not say what is wrong with the key */
	if (!rsa_pem(k->pem))
		ERR("DKIM key %s: not a PEM RSA private key", path);
	if ((k->lib = dkim_init(NULL, NULL)) == NULL)
		ERR("DKIM: cannot initialise libopendkim");
	/* the library wants the array itself and the size of a char ** */
	if (dkim_options(k->lib, DKIM_OP_SETOPT, DKIM_OPTS_SIGNHDRS,
	    signhdrs, sizeof(char **)) != DKIM_STAT_OK)
		ERR("DKIM: cannot set the signed header fields");
	return k;
fail:
	tlsrpt_dkim_key_free(k);
	return NULL;
}

/* The signature header's value, line ends made CRLF. */
static int
dkim_signature(const struct tlsrpt_mail *m, const struct buf *hdrs,
    const struct buf *body, struct buf *out, char *err, size_t errsz)
{
	struct tlsrpt_dkim_key *own = NULL;
	const struct tlsrpt_dkim_key *k = m->dkim_key;
	DKIM *dkim = NULL;
	DKIM_STAT st;
	unsigned char *sig = NULL;
	const char *p, *nl;
	size_t siglen, i;
	int ret = -1;

	if (k == NULL &&
	    (k = own = tlsrpt_dkim_key_load(m->dkim_key_file, err,
	    errsz)) == NULL)
		return -1;
	dkim = dkim_sign(k->lib, (const unsigned char *)"tlsrpt", NULL,
	    k->pem,
	    (const unsigned char *)m->dkim_selector,
	    (const unsigned char *)m->dkim_domain, DKIM_CANON_RELAXED,
	    DKIM_CANON_RELAXED, DKIM_SIGN_RSASHA256, -1, &st);
	if (dkim == NULL)
		ERR("DKIM: cannot sign (status %d; is the key an RSA key?)",
		    st);
	/* one header field per CRLF-terminated line: none is folded */
	for (p = hdrs->p; (nl = strstr(p, "\r\n")) != NULL; p = nl + 2)
		if (dkim_header(dkim, (u_char *)(uintptr_t)p,
		    (size_t)(nl - p)) != DKIM_STAT_OK)
			ERR("DKIM: header: %s", dkim_geterror(dkim));
	if (dkim_eoh(dkim) != DKIM_STAT_OK)
		ERR("DKIM: end of header: %s", dkim_geterror(dkim));
	if (dkim_body(dkim, (u_char *)body->p, body->len) != DKIM_STAT_OK)
		ERR("DKIM: body: %s", dkim_geterror(dkim));
	if (dkim_eom(dkim, NULL) != DKIM_STAT_OK)
		ERR("DKIM: end of message: %s", dkim_geterror(dkim));
	if (dkim_getsighdr_d(dkim, strlen("DKIM-Signature: "), &sig,
	    &siglen) != DKIM_STAT_OK)
		ERR("DKIM: signature: %s", dkim_geterror(dkim));
	bput(out, "DKIM-Signature: ", 16);
	for (i = 0; i < siglen; i++) {
		if (sig[i] == '\r')
			continue;
		if (sig[i] == '\n')
			bput(out, "\r\n", 2);
		else
			bput(out, (const char *)sig + i, 1);
	}
	bput(out, "\r\n", 2);
	ret = 0;
fail:
	if (dkim != NULL)
		dkim_free(dkim);	/* frees sig */
	tlsrpt_dkim_key_free(own);
	return ret;
}

int
tlsrpt_mail_build(const struct tlsrpt_mail *m, char **msg, size_t *len,
    char *err, size_t errsz)
{
	struct buf h = { 0 }, body = { 0 }, out = { 0 };
	char date[64], bnd[40], mid[40], line[80];
	const char *at;
	size_t off;

	*msg = NULL;
	*len = 0;
	if (!token_ok(m->from, "<>\"(),;:\\[]") ||
	    !token_ok(m->to, "<>\"(),;:\\[]"))
		ERR("From or To is not a plain address");
	if (m->submitter == NULL || m->policy_domain == NULL ||
	    !tlsrpt_valid_host(m->submitter, strlen(m->submitter)) ||
	    !tlsrpt_valid_host(m->policy_domain, strlen(m->policy_domain)))
		ERR("submitter or policy domain is not a host name");
	if (!token_ok(m->report_id, "<>\"") ||
	    !token_ok(m->filename, "\"\\/"))
		ERR("report id or file name holds characters a header "
		    "cannot carry");
	if ((m->dkim_key_file == NULL && m->dkim_key == NULL) ||
	    m->dkim_selector == NULL ||
	    m->dkim_domain == NULL ||
	    !tlsrpt_valid_host(m->dkim_selector, strlen(m->dkim_selector)) ||
	    !tlsrpt_valid_host(m->dkim_domain, strlen(m->dkim_domain)))
		ERR("DKIM key, selector or domain missing or malformed");
	if (m->gz == NULL || m->gzlen == 0 || m->gzlen > 64 * 1024 * 1024)
		ERR("no report to attach");
	if (mail_date(m->date, date, sizeof(date)) == -1 ||
	    random_hex(bnd, 16) == -1 || random_hex(mid, 16) == -1)
		ERR("cannot make the date or random identifiers");
	at = strchr(m->report_id, '@');

	bprintf(&h, "From: %s\r\n", m->from);
	bprintf(&h, "To: %s\r\n", m->to);
	bprintf(&h, "Date: %s\r\n", date);
	/* the Report-ID is a msg-id: id-left "@" id-right */
	bprintf(&h, "Subject: Report Domain: %s Submitter: %s Report-ID: "
	    "<%s%s%s>\r\n", m->policy_domain, m->submitter, m->report_id,
	    at ? "" : "@", at ? "" : m->submitter);
	bprintf(&h, "Message-ID: <%s.tlsrpt@%s>\r\n", mid, m->submitter);
	bprintf(&h, "TLS-Report-Domain: %s\r\n", m->policy_domain);
	bprintf(&h, "TLS-Report-Submitter: %s\r\n", m->submitter);
	bprintf(&h, "MIME-Version: 1.0\r\n");
	bprintf(&h, "Content-Type: multipart/report; report-type=\"tlsrpt\"; "
	    "boundary=\"tlsrpt-%s\"\r\n", bnd);

	bprintf(&body, "This is a multipart message in MIME format.\r\n"
	    "\r\n--tlsrpt-%s\r\n", bnd);
	bprintf(&body, "Content-Type: text/plain; charset=\"us-ascii\"\r\n"
	    "Content-Transfer-Encoding: 7bit\r\n\r\n");
	bprintf(&body, "This is an aggregate TLS report (RFC 8460) from %s\r\n"
	    "about the TLS connections it made to the mail servers of %s.\r\n"
	    "\r\n--tlsrpt-%s\r\n", m->submitter, m->policy_domain, bnd);
	bprintf(&body, "Content-Type: application/tlsrpt+gzip\r\n"
	    "Content-Transfer-Encoding: base64\r\n"
	    "Content-Disposition: attachment; filename=\"%s\"\r\n\r\n",
	    m->filename);
	for (off = 0; off < m->gzlen; off += 57) {
		size_t n = m->gzlen - off < 57 ? m->gzlen - off : 57;
		int w = EVP_EncodeBlock((unsigned char *)line, m->gz + off,
		    (int)n);

		bput(&body, line, (size_t)w);
		bput(&body, "\r\n", 2);
	}
	bprintf(&body, "--tlsrpt-%s--\r\n", bnd);
	if (h.bad || body.bad)
		ERR("out of memory");

	if (dkim_signature(m, &h, &body, &out, err, errsz) == -1)
		goto fail;
	bput(&out, h.p, h.len);
	bput(&out, "\r\n", 2);
	bput(&out, body.p, body.len);
	if (out.bad)
		ERR("out of memory");
	*msg = out.p;
	*len = out.len;
	free(h.p);
	free(body.p);
	return 0;
fail:
	free(h.p);
	free(body.p);
	free(out.p);
	return -1;
}
