/*
 * test_tlsrpt_mail.c - the mailto report message (RFC 8460 section 5.3):
 * its header fields and MIME structure, the attachment decoding back to
 * the report, and its DKIM signature verified by an independent
 * implementation (python3-dkim, tests/unit/tlsrpt_dkim_verify.py, with
 * the key record served from a file instead of DNS); a changed message
 * must then fail to verify.
 *
 * The verifier runs under /usr/bin/python3, where Debian's python3-dkim
 * lives (a python3 earlier on PATH may be another installation).  When
 * it is missing the test fails: scripts/deps.sh installs it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <zlib.h>

#include "policy/tlsrpt.h"

static char dir[64], keyfile[128], txtfile[128], msgfile[128];

static const char json[] = "{\"organization-name\": \"test\", "
    "\"report-id\": \"r1\"}";

static int
setup(void **state)
{
	EVP_PKEY *pk;
	unsigned char *der = NULL;
	char *b64;
	FILE *f;
	int n;

	snprintf(dir, sizeof(dir), "/tmp/mxg-tlsrpt-mail-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(keyfile, sizeof(keyfile), "%s/dkim.key", dir);
	snprintf(txtfile, sizeof(txtfile), "%s/dkim.txt", dir);
	snprintf(msgfile, sizeof(msgfile), "%s/msg.eml", dir);
	/* a fresh RSA key; its public half as the DKIM key record */
	assert_non_null(pk = EVP_RSA_gen(2048));
	assert_non_null(f = fopen(keyfile, "w"));
	assert_int_equal(PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL,
	    NULL), 1);
	fclose(f);
	assert_true((n = i2d_PUBKEY(pk, &der)) > 0);
	assert_non_null(b64 = malloc((size_t)n * 2 + 4));
	EVP_EncodeBlock((unsigned char *)b64, der, n);
	assert_non_null(f = fopen(txtfile, "w"));
	fprintf(f, "v=DKIM1; k=rsa; s=tlsrpt; p=%s\n", b64);
	fclose(f);
	free(b64);
	OPENSSL_free(der);
	EVP_PKEY_free(pk);
	return 0;
}

static int
teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void
write_file(const char *path, const char *s, size_t n)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fwrite(s, 1, n, f), n);
	fclose(f);
}

/* Runs the independent verifier: its exit status. */
static int
verify(const char *selector, const char *domain)
{
	char cmd[1024];
	int st;

	snprintf(cmd, sizeof(cmd), "/usr/bin/python3 "
	    "tests/unit/tlsrpt_dkim_verify.py %s %s %s %s", msgfile, selector,
	    domain, txtfile);
	st = system(cmd);
	assert_true(WIFEXITED(st));
	return WEXITSTATUS(st);
}

static char *
build(struct tlsrpt_mail *m, unsigned char **gz, size_t *msglen)
{
	char name[256], err[256];
	char *msg;
	size_t gzlen;

	assert_int_equal(tlsrpt_gzip(json, strlen(json), gz, &gzlen), 0);
	assert_int_equal(tlsrpt_filename("sender.example", "company-y.example",
	    19844, "1", name, sizeof(name)), 0);
	memset(m, 0, sizeof(*m));
	m->from = "tlsrpt@sender.example";
	m->to = "tls-reports@company-y.example";
	m->submitter = "sender.example";
	m->policy_domain = "company-y.example";
	m->report_id = "20240501.1";
	m->filename = strdup(name);
	m->date = 1714611600;		/* Thu, 02 May 2024 01:00:00 +0000 */
	m->gz = *gz;
	m->gzlen = gzlen;
	m->dkim_key_file = keyfile;
	m->dkim_selector = "mxg";
	m->dkim_domain = "sender.example";
	if (tlsrpt_mail_build(m, &msg, msglen, err, sizeof(err)) == -1)
		fail_msg("tlsrpt_mail_build: %s", err);
	return msg;
}

/* The header field named name (a line "name: ..."), or NULL. */
static const char *
header(const char *msg, const char *line)
{
	const char *end = strstr(msg, "\r\n\r\n"), *p;

	p = strstr(msg, line);
	return p != NULL && p < end && (p == msg || p[-1] == '\n') ? p : NULL;
}

static void
test_message_structure(void **state)
{
	struct tlsrpt_mail m;
	unsigned char *gz, raw[4096], back[4096];
	char *msg, *p, *q, *sig, bnd[64];
	size_t len, rawlen = 0;
	z_stream z;

	msg = build(&m, &gz, &len);
	assert_int_equal(strlen(msg), len);
	/* CRLF only */
	for (p = msg; (p = strchr(p, '\n')) != NULL; p++)
		assert_int_equal(p[-1], '\r');
	assert_true(strncmp(msg, "DKIM-Signature: ", 16) == 0);
	assert_non_null(header(msg, "From: tlsrpt@sender.example\r\n"));
	assert_non_null(header(msg, "To: tls-reports@company-y.example\r\n"));
	assert_non_null(header(msg, "Date: Thu, 02 May 2024 01:00:00 +0000"
	    "\r\n"));
	assert_non_null(header(msg, "Subject: Report Domain: "
	    "company-y.example Submitter: sender.example Report-ID: "
	    "<20240501.1@sender.example>\r\n"));
	assert_non_null(header(msg, "TLS-Report-Domain: company-y.example\r\n"));
	assert_non_null(header(msg, "TLS-Report-Submitter: sender.example\r\n"));
	assert_non_null(header(msg, "MIME-Version: 1.0\r\n"));
	assert_non_null(header(msg, "Message-ID: <"));
	assert_non_null(p = (char *)header(msg, "Content-Type: "
	    "multipart/report; report-type=\"tlsrpt\"; boundary=\""));
	p = strstr(p, "boundary=\"") + 10;
	q = strchr(p, '"');
	snprintf(bnd, sizeof(bnd), "--%.*s", (int)(q - p), p);

	/* the signature: relaxed/relaxed, no l=, the section 5.3 fields */
	sig = strndup(msg, (size_t)(strstr(msg, "\r\nFrom: ") - msg));
	assert_non_null(strstr(sig, "c=relaxed/relaxed"));
	assert_non_null(strstr(sig, "a=rsa-sha256"));
	assert_non_null(strstr(sig, "d=sender.example"));
	assert_non_null(strstr(sig, "s=mxg"));
	assert_null(strstr(sig, " l="));
	assert_null(strstr(sig, ";l="));
	for (p = sig; *p != '\0'; p++)
		*p = (char)(*p == '\r' || *p == '\n' || *p == '\t' ? ' ' :
		    (*p >= 'A' && *p <= 'Z' ? *p + 32 : *p));
	assert_non_null(strstr(sig, "tls-report-domain"));
	assert_non_null(strstr(sig, "tls-report-submitter"));
	assert_non_null(strstr(sig, "subject"));
	assert_non_null(strstr(sig, "content-type"));
	free(sig);

	/* two parts, then the closing boundary */
	p = strstr(msg, bnd);
	assert_non_null(p);
	assert_non_null(strstr(p, "Content-Type: text/plain"));
	p = strstr(p + 1, bnd);
	assert_non_null(p);
	assert_non_null(strstr(p, "Content-Type: application/tlsrpt+gzip\r\n"
	    "Content-Transfer-Encoding: base64\r\nContent-Disposition: "
	    "attachment; filename=\"sender.example!company-y.example!"
	    "1714521600!1714607999!1.json.gz\"\r\n\r\n"));
	p = strstr(p, "\r\n\r\n") + 4;
	q = strstr(p, bnd);
	assert_non_null(q);
	assert_string_equal(q + strlen(bnd), "--\r\n");
	/* base64 lines of at most 76, decoding to the gzip we gave */
	while (p < q) {
		char *e = strstr(p, "\r\n");
		int n;

		assert_true(e - p <= 76);
		n = EVP_DecodeBlock(raw + rawlen, (unsigned char *)p,
		    (int)(e - p));
		assert_true(n > 0);
		rawlen += (size_t)n - (e[-1] == '=' ? (e[-2] == '=' ? 2 : 1) :
		    0);
		p = e + 2;
	}
	assert_int_equal(rawlen, m.gzlen);
	assert_memory_equal(raw, gz, rawlen);
	memset(&z, 0, sizeof(z));
	assert_int_equal(inflateInit2(&z, 16 + 15), Z_OK);
	z.next_in = raw;
	z.avail_in = (uInt)rawlen;
	z.next_out = back;
	z.avail_out = sizeof(back);
	assert_int_equal(inflate(&z, Z_FINISH), Z_STREAM_END);
	assert_memory_equal(back, json, strlen(json));
	inflateEnd(&z);
	free((char *)m.filename);
	free(gz);
	free(msg);
}

static void
test_dkim_verifies(void **state)
{
	struct tlsrpt_mail m;
	unsigned char *gz;
	char *msg, *p;
	size_t len;

	msg = build(&m, &gz, &len);
	write_file(msgfile, msg, len);
	assert_int_equal(verify("mxg", "sender.example"), 0);
	/* another key record: fails */
	assert_int_equal(verify("other", "sender.example"), 1);
	/* a signed header field changed: fails */
	p = strstr(msg, "Report Domain: company-y.example");
	p[15] = 'C';
	write_file(msgfile, msg, len);
	assert_int_equal(verify("mxg", "sender.example"), 1);
	p[15] = 'c';
	/* a byte of the attachment changed: fails */
	p = strstr(msg, "json.gz\"\r\n\r\n") + 12;
	*p = *p == 'A' ? 'B' : 'A';
	write_file(msgfile, msg, len);
	assert_int_equal(verify("mxg", "sender.example"), 1);
	free((char *)m.filename);
	free(gz);
	free(msg);
}

static void
test_refused(void **state)
{
	struct tlsrpt_mail m;
	unsigned char *gz;
	char *msg, *out, *name, err[256];
	size_t len;

	msg = build(&m, &gz, &len);
	free(msg);
	name = (char *)m.filename;
	m.to = "a@b.example\r\nBcc: x@y.example";
	assert_int_equal(tlsrpt_mail_build(&m, &out, &len, err, sizeof(err)),
	    -1);
	assert_null(out);
	m.to = "tls-reports@company-y.example";
	m.filename = "x\".json.gz";
	assert_int_equal(tlsrpt_mail_build(&m, &out, &len, err, sizeof(err)),
	    -1);
	m.filename = "ok.json.gz";
	m.report_id = "<id>";
	assert_int_equal(tlsrpt_mail_build(&m, &out, &len, err, sizeof(err)),
	    -1);
	m.report_id = "id@x.example";
	m.dkim_key_file = "/nonexistent/key";
	assert_int_equal(tlsrpt_mail_build(&m, &out, &len, err, sizeof(err)),
	    -1);
	assert_non_null(strstr(err, "/nonexistent/key"));
	m.dkim_key_file = txtfile;		/* not a private key */
	assert_int_equal(tlsrpt_mail_build(&m, &out, &len, err, sizeof(err)),
	    -1);
	assert_non_null(strstr(err, "not a PEM RSA private key"));
	m.dkim_key_file = keyfile;
	assert_int_equal(tlsrpt_mail_build(&m, &out, &len, err, sizeof(err)),
	    0);
	/* an id with "@" is used as it is */
	assert_non_null(strstr(out, "Report-ID: <id@x.example>\r\n"));
	free(out);
	free(name);
	free(gz);
}

/*
 * A key loaded once signs many messages (a report run's): the file is not
 * read again (here it is gone), and each signature verifies.  A file that
 * is no RSA key, or none, is refused at the load.
 */
static void
test_key_loaded_once(void **state)
{
	struct tlsrpt_mail m;
	struct tlsrpt_dkim_key *k;
	unsigned char *gz;
	char *msg, err[256], saved[160];
	size_t len;
	int i;

	assert_null(tlsrpt_dkim_key_load(txtfile, err, sizeof(err)));
	assert_non_null(strstr(err, "not a PEM RSA private key"));
	assert_null(tlsrpt_dkim_key_load("/nonexistent/key", err,
	    sizeof(err)));
	assert_non_null(k = tlsrpt_dkim_key_load(keyfile, err, sizeof(err)));
	snprintf(saved, sizeof(saved), "%s.saved", keyfile);
	for (i = 0; i < 2; i++) {
		msg = build(&m, &gz, &len);	/* from the file */
		free(msg);
		assert_int_equal(rename(keyfile, saved), 0);
		m.dkim_key = k;
		m.dkim_key_file = NULL;
		assert_int_equal(tlsrpt_mail_build(&m, &msg, &len, err,
		    sizeof(err)), 0);
		assert_int_equal(rename(saved, keyfile), 0);
		write_file(msgfile, msg, len);
		assert_int_equal(verify("mxg", "sender.example"), 0);
		free((char *)m.filename);
		free(gz);
		free(msg);
	}
	tlsrpt_dkim_key_free(k);
	tlsrpt_dkim_key_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_message_structure),
		cmocka_unit_test(test_dkim_verifies),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_key_loaded_once),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
