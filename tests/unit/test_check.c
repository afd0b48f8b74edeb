/*
 * test_check.c - `mxguard check`'s judgement of a probe (cmd/check.c):
 * the probe's real SMTP and TLS exchange with a scripted server (a child
 * process on a loopback port), then what the command says the proxy
 * would do with the mail, which must be what tlsproxy/leg.c does:
 *   - no STARTTLS under encrypt with a report-only (MTA-STS testing)
 *     policy beside it (require_tls, or the TLS history): deferred, as
 *     the leg fails there (report_only never lowers the enforced level);
 *   - a report-only check that fails on TLS: delivered, but a warning
 *     (exit 1), not a clean 0;
 *   - plaintext after the 220 to STARTTLS under may: the proxy drops the
 *     connection (injection), so deferred, not "deliver in cleartext";
 *   - a greeting that is not 2xx (554, 421), or none, under may: the
 *     proxy relays the refusal to the MTA (or answers 421) and nothing
 *     is delivered there, so not "deliver";
 *   - EHLO (HELO) with --helo's name or the host's dotted name, else the
 *     address literal of the probe's local address (no resolver), never
 *     an invalid name, as the proxy relays the MTA's;
 *   - EHLO as the proxy's leg says it: a 4xx is relayed to the MTA
 *     ("refused", not "deliver"), a 5xx makes it say HELO, whose 2xx
 *     offers no STARTTLS (cleartext at may, defer at encrypt) and whose
 *     refusal is relayed; no reply is a 421 ("defer");
 *   - at level none (a tls_policy override) the probe still connects,
 *     reads the greeting and says EHLO, without STARTTLS: a refused
 *     greeting is "refused" there too, not "deliver" unprobed;
 *   - no reply to STARTTLS fails the leg ("defer" at may too); only a
 *     reply refuses it (cleartext at may, on that connection: one the
 *     server closes after its refusal is "defer");
 *   - after the handshake and its check, EHLO inside TLS as the leg says
 *     it: a refusal, or no reply, is a 421 from the proxy ("defer"), at
 *     may too;
 *   - each step waits the configuration's timeout for it, as the leg
 *     (greeting_timeout, command_timeout...), re-armed by bytes read;
 *     the handshake's (tls_timeout) by the handshake records the probe
 *     sends, as io.c re-arms the leg's;
 *   - a probe begun near the check's deadline ends by it: each step
 *     waits at most what is left (a server that sends its greeting a
 *     byte at a time held it a socket timeout per read);
 *   - a probe the check's deadline cuts short is not judged ("unknown",
 *     exit 3 unless another address defers), and says how to raise it;
 *   - STARTTLS "not reached" (JSON null), never "not offered", for a
 *     probe that got no EHLO (or HELO) reply to see it in;
 *   - every address the MX walk keeps is probed (not 4 per family), and
 *     those the deadline or the walk's bound leave out are listed, in
 *     the text and in JSON, and make a clean 0 a warning.
 * Verdicts come from policy_lookup() with tls_policy overrides (the
 * resolver is unreachable, the override decides), then set as the
 * engine sets them for a testing policy.
 *
 * cmd/ is not in libmxguard.a: the module is compiled in here, with
 * stand-ins for what it calls in main.c and priv.c.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/wait.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "cmd/check.c"
#include "cmd/status.c"
#include "tests/unit/testcert.h"
#include "tests/unit/lookupwait.h"
#include "tests/unit/cmdstubs.h"
#include "tests/unit/cmdcapture.h"
#include "tests/unit/dnsmsg.h"
#include <sys/prctl.h>

/* The EHLO name the probes say, and the scripted servers expect (else
 * they exit 5, or 4 inside TLS): srv_helo, TEST_HELO unless a test sets
 * it before the server's fork. */
#define TEST_HELO	"mta.check.test"
static const char *srv_helo = TEST_HELO;
static const char *srv_helo_domain;	/* HELO's name, if not srv_helo */

static char cafile[] = "/tmp/mxg-check-ca-XXXXXX";
static EVP_PKEY *ca_key, *bad_ca_key;
static X509 *ca, *bad_ca;
static struct ev_loop *loop;
static struct policy *pol;
static struct config *cfg;
static struct tls_ctx *tc;

static struct policy_verdict *
verdict(const char *domain, const char *ip)
{
	return lookup_wait(loop, pol, domain, ip);
}

static int
setup(void **state)
{
	char err[256];
	FILE *f;
	int fd;
	const char *ovr[] = {
		"192.0.2.1 verify match=mx.good.test",
		"192.0.2.3 may",
		"192.0.2.4 encrypt",
		"192.0.2.5 none",
	};
	int i;

	signal(SIGPIPE, SIG_IGN);
	log_init("test", 0, LOG_LVL_ERR);
	ca_key = EVP_EC_gen("P-256");
	bad_ca_key = EVP_EC_gen("P-256");
	ca = test_cert(ca_key, "test CA", NULL, NULL, NULL, -3600, 86400, 1);
	bad_ca = test_cert(bad_ca_key, "other CA", NULL, NULL, NULL, -3600,
	    86400, 1);
	if ((fd = mkstemp(cafile)) == -1 || (f = fdopen(fd, "w")) == NULL)
		return -1;
	PEM_write_X509(f, ca);
	fclose(f);
	loop = ev_loop_new();
	cfg = config_load(NULL, err, sizeof(err));
	free(cfg->tls_ca_file);
	cfg->tls_ca_file = strdup(cafile);
	free(cfg->rules_mode);
	cfg->rules_mode = strdup("gateway");	/* probe_mark() never refuses */
	cfg->dns_servers.v = calloc(1, sizeof(char *));
	cfg->dns_servers.v[0] = strdup("127.0.0.1:9");	/* nothing there */
	cfg->dns_servers.n = 1;
	cfg->dns_timeout = 600;
	cfg->sts_enable = 0;
	cfg->tls_history = 0;
	cfg->tls_policy.v = calloc(4, sizeof(char *));
	for (i = 0; i < 4; i++)
		cfg->tls_policy.v[i] = strdup(ovr[i]);
	cfg->tls_policy.n = 4;
	if ((pol = policy_new(loop, cfg, err, sizeof(err))) == NULL ||
	    (tc = tls_ctx_new(cfg, err, sizeof(err))) == NULL) {
		fprintf(stderr, "setup: %s\n", err);
		return -1;
	}
	return 0;
}

static int
teardown(void **state)
{
	tls_ctx_free(tc);
	policy_free(pol);
	config_free(cfg);
	ev_loop_free(loop);
	unlink(cafile);
	X509_free(ca);
	X509_free(bad_ca);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(bad_ca_key);
	return 0;
}

/* STARTTLS_UNUSED: STARTTLS offered, and the server exits 0 only when
 * the next command is QUIT, not STARTTLS */
/* EHLO_*: 220, then EHLO answered 421, not at all, or 502 and HELO
 * (expected, else the server exits 3) answered 250 or 550 */
/* GREET_LATE: the greeting after 1.5 s, then as NO_STARTTLS */
/* STARTTLS_NONE, STARTTLS_454, STARTTLS_454_CLOSE: STARTTLS offered,
 * then not answered (the server closes), or refused with 454 (then NOOP
 * expected and answered 250, then QUIT, else exit 3), or refused with
 * 454 and the server closes */
/* TLS_CERT: after the handshake EHLO answered 250 (or QUIT, from a probe
 * whose check failed, 221); TLS_EHLO_*: that EHLO (expected, else the
 * server exits 4) answered 550, or not at all (the server closes) */
/* TLS_TRICKLE, TLS_STALL: TLS 1.2, each of the server's two flights
 * held back (srv_accept_slow()): 700 ms and 700 ms, or 700 ms and
 * 1300 ms; then as TLS_CERT */
enum script { NO_STARTTLS, INJECT, TLS_CERT, GREET_554, GREET_421,
    GREET_NONE, STARTTLS_UNUSED, EHLO_421, EHLO_NONE, EHLO_HELO_250,
    EHLO_HELO_550, GREET_SLOW, TLS_EHLO_550, TLS_EHLO_NONE, GREET_LATE,
    STARTTLS_NONE, STARTTLS_454, TLS_TRICKLE, TLS_STALL,
    STARTTLS_454_CLOSE };

/* Reads one command line from fd (or SSL); 1 when it starts with what. */
static int
srv_cmd(int fd, SSL *ssl, const char *what)
{
	size_t n = 0, w = strlen(what);
	int same = 1;
	char c;

	while ((ssl ? SSL_read(ssl, &c, 1) : read(fd, &c, 1)) == 1 &&
	    c != '\n') {
		if (n < w && c != what[n])
			same = 0;
		n++;
	}
	return same && n >= w;
}

/* Reads one command line from fd (or SSL); 1 when it is "verb srv_helo". */
static int
srv_hello(int fd, SSL *ssl, const char *verb)
{
	char want[300];

	snprintf(want, sizeof(want), "%s %s\r", verb, strcmp(verb, "HELO") ==
	    0 && srv_helo_domain != NULL ? srv_helo_domain : srv_helo);
	return srv_cmd(fd, ssl, want);
}

/* Reads one command line from fd (or SSL), discarded. */
static void
srv_line(int fd, SSL *ssl)
{
	(void)srv_cmd(fd, ssl, "");
}

static void
srv_say(int fd, SSL *ssl, const char *s)
{
	if (ssl)
		(void)SSL_write(ssl, s, (int)strlen(s));
	else
		(void)!write(fd, s, strlen(s));
}

/* What OpenSSL wrote to wb goes to fd, ms milliseconds later. */
static void
srv_flush(int fd, BIO *wb, int ms)
{
	char b[16384];
	int n;

	if (BIO_ctrl_pending(wb) == 0)
		return;
	usleep((useconds_t)ms * 1000);
	while ((n = BIO_read(wb, b, sizeof(b))) > 0)
		if (write(fd, b, (size_t)n) != n)
			_exit(0);
}

/*
 * The server's side of a TLS 1.2 handshake through memory BIOs, so that
 * its two flights (ServerHello to ServerHelloDone; its Finished, after
 * the client's) go gap[0], gap[1] ms after what they answer: a slow
 * server whose handshake progresses.  The client's records go out
 * between the two.  Then on the socket itself.
 */
static SSL *
srv_accept_slow(int fd, SSL_CTX *sctx, const int gap[2])
{
	SSL *ssl = SSL_new(sctx);
	BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
	char b[16384];
	int rc, n;

	BIO_set_mem_eof_return(rb, -1);
	SSL_set_bio(ssl, rb, wb);
	while ((rc = SSL_accept(ssl)) != 1) {
		if (SSL_get_error(ssl, rc) != SSL_ERROR_WANT_READ)
			_exit(2);
		srv_flush(fd, wb, gap[0]);
		if ((n = (int)read(fd, b, sizeof(b))) <= 0)
			_exit(6);	/* the client gave up */
		BIO_write(rb, b, n);
	}
	srv_flush(fd, wb, gap[1]);
	SSL_set_fd(ssl, fd);	/* nothing read is left in rb */
	return ssl;
}

/* The server: one connection, scripted; in a child. */
static void
serve(int lfd, enum script how, X509 *cert, EVP_PKEY *key)
{
	SSL_CTX *sctx;
	SSL *ssl;
	int fd;

	alarm(10);	/* never held by a probe that does not come */
	if ((fd = accept(lfd, NULL, NULL)) == -1)
		_exit(1);
	if (how == GREET_NONE)
		_exit(0);
	if (how == GREET_SLOW) {
		const char *g = "220 slow.test ESMTP\r\n";

		/* a byte every 300 ms: 6 s in all, never 300 ms silent */
		for (; *g != '\0'; g++) {
			usleep(300 * 1000);
			if (write(fd, g, 1) != 1)
				_exit(0);
		}
		_exit(0);
	}
	if (how == GREET_554 || how == GREET_421) {
		srv_say(fd, NULL, how == GREET_554 ? "554 go away\r\n" :
		    "421 busy\r\n");
		srv_line(fd, NULL);		/* QUIT, or nothing */
		_exit(0);
	}
	if (how == GREET_LATE)
		usleep(1500 * 1000);
	srv_say(fd, NULL, "220 mx.good.test ESMTP\r\n");
	if (!srv_hello(fd, NULL, "EHLO"))
		_exit(5);
	if (how == EHLO_NONE)
		_exit(0);
	if (how == EHLO_421) {
		srv_say(fd, NULL, "421 4.7.0 try again later\r\n");
		_exit(srv_cmd(fd, NULL, "QUIT") ? 0 : 3);
	}
	if (how == EHLO_HELO_250 || how == EHLO_HELO_550) {
		srv_say(fd, NULL, "502 5.5.2 EHLO not implemented\r\n");
		if (!srv_hello(fd, NULL, "HELO"))
			_exit(3);
		srv_say(fd, NULL, how == EHLO_HELO_250 ? "250 mx.good.test\r\n" :
		    "550 5.7.1 go away\r\n");
		_exit(srv_cmd(fd, NULL, "QUIT") ? 0 : 3);
	}
	if (how == NO_STARTTLS || how == GREET_LATE) {
		srv_say(fd, NULL, "250-mx.good.test\r\n250 PIPELINING\r\n");
		srv_line(fd, NULL);		/* QUIT */
		srv_say(fd, NULL, "221 bye\r\n");
		_exit(0);
	}
	srv_say(fd, NULL, "250-mx.good.test\r\n250 STARTTLS\r\n");
	if (how == STARTTLS_UNUSED)
		_exit(srv_cmd(fd, NULL, "QUIT") ? 0 : 3);
	srv_line(fd, NULL);			/* STARTTLS */
	if (how == STARTTLS_NONE)
		_exit(0);
	if (how == STARTTLS_454 || how == STARTTLS_454_CLOSE) {
		srv_say(fd, NULL, "454 4.7.0 TLS not available\r\n");
		if (how == STARTTLS_454_CLOSE)
			_exit(0);
		if (!srv_cmd(fd, NULL, "NOOP\r"))
			_exit(3);
		srv_say(fd, NULL, "250 2.0.0 ok\r\n");
		_exit(srv_cmd(fd, NULL, "QUIT") ? 0 : 3);
	}
	if (how == INJECT) {
		srv_say(fd, NULL, "220 go ahead\r\n250 injected\r\n");
		srv_line(fd, NULL);
		_exit(0);
	}
	srv_say(fd, NULL, "220 go ahead\r\n");
	sctx = SSL_CTX_new(TLS_server_method());
	SSL_CTX_use_certificate(sctx, cert);
	SSL_CTX_use_PrivateKey(sctx, key);
	if (how == TLS_TRICKLE || how == TLS_STALL) {
		static const int trickle[2] = { 700, 700 },
		    stall[2] = { 700, 1300 };

		SSL_CTX_set_max_proto_version(sctx, TLS1_2_VERSION);
		ssl = srv_accept_slow(fd, sctx, how == TLS_STALL ? stall :
		    trickle);
	} else {
		ssl = SSL_new(sctx);
		SSL_set_fd(ssl, fd);
		if (SSL_accept(ssl) != 1)
			_exit(2);
	}
	if (!srv_hello(fd, ssl, "EHLO")) {
		/* QUIT after a failed check */
		srv_say(fd, ssl, "221 bye\r\n");
		_exit(how == TLS_CERT ? 0 : 4);
	}
	if (how == TLS_EHLO_NONE)
		_exit(0);
	srv_say(fd, ssl, how == TLS_EHLO_550 ? "550 5.7.1 not after "
	    "STARTTLS\r\n" : "250-mx.good.test\r\n250 PIPELINING\r\n");
	how = srv_cmd(fd, ssl, "QUIT") ? 0 : 3;
	srv_say(fd, ssl, "221 bye\r\n");
	_exit(how);
}

/* A scripted server on a loopback port, in a child, for p: its pid. */
static pid_t
serve_for(struct probe *p, enum script how, X509 *cert, EVP_PKEY *key)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&p->addr;
	socklen_t sl = sizeof(*sin);
	pid_t pid;
	int lfd;

	memset(p, 0, sizeof(*p));
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(lfd, (struct sockaddr *)sin, sl), 0);
	assert_int_equal(listen(lfd, 1), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)sin, &sl), 0);
	snprintf(p->addrstr, sizeof(p->addrstr), "127.0.0.1");
	snprintf(p->host, sizeof(p->host), "mx.good.test");
	if ((pid = fork()) == 0)
		serve(lfd, how, cert, key);
	close(lfd);
	return pid;
}

/* The exit status of the last scripted server. */
static int srv_status;

static void
srv_wait(pid_t pid)
{
	int st;

	waitpid(pid, &st, 0);
	srv_status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Probes a scripted server with verdict v, as cmd_check() does, and
 * judges the result. */
static void
probe(struct probe *p, struct policy_verdict *v, enum script how, X509 *cert,
    EVP_PKEY *key)
{
	pid_t pid = serve_for(p, how, cert, key);

	p->v = v;
	assert_int_equal(probe_tls(p, tc, cfg, TEST_HELO,
	    mono_ms() + CHECK_DEADLINE * 1000), 0);
	judge(p);
	srv_wait(pid);
	p->v = NULL;
}

/*
 * require_tls = yes (or the TLS history) makes encrypt, and an MTA-STS
 * testing policy beside it sets report_only: a server without STARTTLS
 * is deferred by the proxy (leg_decide(): only may settles in
 * cleartext), so check must say defer, not "deliver" with a warning.
 */
static void
test_encrypt_report_only_no_starttls(void **state)
{
	struct policy_verdict *v = verdict("any.test", "192.0.2.4");
	struct probe p;

	assert_int_equal(v->level, TLS_LEVEL_ENCRYPT);
	v->report_only = 1;
	v->source = "require_tls";
	probe(&p, v, NO_STARTTLS, NULL, NULL);
	assert_true(p.connected);
	assert_false(p.starttls);
	assert_int_equal(p.deliverable, 0);
	assert_string_equal(p.reason, "starttls-not-supported");
	/* may with the same testing policy: cleartext, a warning */
	v->level = TLS_LEVEL_MAY;
	probe(&p, v, NO_STARTTLS, NULL, NULL);
	assert_int_equal(p.deliverable, 1);
	p.v = v;
	assert_int_equal(probe_warning(&p), 1);
	policy_verdict_free(v);
}

/*
 * MTA-STS testing: the handshake succeeds, the certificate is not
 * trusted.  The proxy delivers and reports (event=policy-report); check
 * delivers too, but exits with a warning, as docs/mxguard.8 says.
 */
static void
test_report_only_failure_warns(void **state)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *forged = test_cert(k, "mx.good.test", "mx.good.test", bad_ca,
	    bad_ca_key, -3600, 86400, 0);
	X509 *good = test_cert(k, "mx.good.test", "mx.good.test", ca, ca_key,
	    -3600, 86400, 0);
	struct policy_verdict *v = verdict("testing.test", "192.0.2.1");
	struct probe p;

	v->level = TLS_LEVEL_MAY;
	v->report_only = 1;
	probe(&p, v, TLS_CERT, forged, k);
	assert_true(p.tls);
	assert_int_equal(p.deliverable, 1);
	assert_string_equal(p.reason, "certificate-not-trusted");
	p.v = v;
	assert_int_equal(probe_warning(&p), 1);
	/* the same with a trusted certificate: no warning */
	probe(&p, v, TLS_CERT, good, k);
	assert_true(p.tls);
	assert_int_equal(p.deliverable, 1);
	p.v = v;
	assert_int_equal(probe_warning(&p), 0);
	policy_verdict_free(v);
	X509_free(forged);
	X509_free(good);
	EVP_PKEY_free(k);
}

/* Plaintext after the 220 to STARTTLS: the proxy drops the connection
 * (event=starttls-injection) at any level, so the mail waits. */
static void
test_injection_defers_under_may(void **state)
{
	struct policy_verdict *v = verdict("any.test", "192.0.2.3");
	struct probe p;

	assert_int_equal(v->level, TLS_LEVEL_MAY);
	probe(&p, v, INJECT, NULL, NULL);
	assert_true(p.starttls);
	assert_false(p.tls);
	assert_non_null(strstr(p.error, "injection"));
	assert_int_equal(p.deliverable, 0);
	policy_verdict_free(v);
}

/* What f(r) printed on stdout, in buf. */
static void printed(void (*)(struct run *), struct run *, char *, size_t);
static void json_out(struct run *);

/* A run of one probe, p, as `mxguard check DOMAIN ADDRESS` makes. */
static void
one_run(struct run *r, struct mx_result *m, struct probe *p)
{
	memset(m, 0, sizeof(*m));
	memset(r, 0, sizeof(*r));
	r->mx = m;
	r->probes = p;
	r->nprobe = 1;
	r->single = 1;
	r->deadline = CHECK_DEADLINE;
	snprintf(r->helo, sizeof(r->helo), "%s", TEST_HELO);
}

/*
 * A server that refuses service in its greeting (554, 421) under may:
 * the proxy relays that greeting to the MTA and answers every command
 * after it but QUIT (tlsproxy/session.c): nothing is delivered there, and
 * check said "deliver".  Now: not deliverable, result "refused", saying
 * what the MTA gets (exit status 2: not deliverable).  No greeting at all (the server
 * closes): the proxy answers 421, so "defer", not "deliver".
 */
static void
test_greeting_refused_under_may(void **state)
{
	struct policy_verdict *v = verdict("any.test", "192.0.2.3");
	struct mx_result m;
	struct probe p;
	struct run r;
	char *out = malloc(65536);

	assert_int_equal(v->level, TLS_LEVEL_MAY);
	one_run(&r, &m, &p);

	probe(&p, v, GREET_554, NULL, NULL);
	assert_true(p.connected);
	assert_int_equal(p.deliverable, 0);
	assert_string_equal(p.error, "greeting: 554 go away");
	p.v = v;
	printed(print_text, &r, out, 65536);
	assert_non_null(strstr(out, "  result:   refused: the server refused "
	    "service (554): mxguard relays its greeting to the MTA, and "
	    "answers 503 to all but QUIT\n"));
	assert_null(strstr(out, "deliver"));

	probe(&p, v, GREET_421, NULL, NULL);
	assert_int_equal(p.deliverable, 0);
	p.v = v;
	printed(print_text, &r, out, 65536);
	assert_non_null(strstr(out, "  result:   refused: the server refused "
	    "service (421): mxguard relays its greeting to the MTA, and "
	    "answers 451 to all but QUIT\n"));
	printed(json_out, &r, out, 65536);
	assert_non_null(strstr(out, "\"result\":\"refused\""));
	assert_non_null(strstr(out, "\"greeting_code\":421"));

	probe(&p, v, GREET_NONE, NULL, NULL);
	assert_true(p.connected);
	assert_int_equal(p.deliverable, 0);
	p.v = v;
	printed(print_text, &r, out, 65536);
	assert_non_null(strstr(out, "  result:   defer: no greeting from the "
	    "server: mxguard answers the MTA 421\n"));

	policy_verdict_free(v);
	free(out);
}

/* What f(r) printed on stdout, in buf. */
static void
printed(void (*f)(struct run *), struct run *r, char *buf, size_t sz)
{
	char path[] = "/tmp/mxg-check-out-XXXXXX";
	int fd = mkstemp(path), saved, file;

	assert_true(fd >= 0);
	close(fd);
	fflush(stdout);
	saved = capture_begin(1, path, &file);
	f(r);
	fflush(stdout);
	capture_end(1, saved, file, buf, sz);
	unlink(path);
}

static void
json_out(struct run *r)
{
	assert_int_equal(print_json(r), 0);
}

static void
sa(struct sockaddr_storage *ss, const char *ip)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, ip, &s4->sin_addr) == 1)
		s4->sin_family = AF_INET;
	else {
		assert_int_equal(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
		s6->sin6_family = AF_INET6;
	}
}

/*
 * An MX host with 6 A and 2 AAAA records, and 3 more in DNS than the
 * walk keeps: all 8 kept are probed (the check took 4 per family and
 * said nothing of the rest).  With the deadline passed none is probed:
 * each says "not probed", and the summary counts 11 (8 by address, 3
 * beyond the walk's bound), in the text and in JSON; exit status 1, not
 * a clean 0.
 */
static void
test_all_addresses_probed_or_listed(void **state)
{
	static const char *ips[] = { "192.0.2.10", "192.0.2.11",
	    "192.0.2.12", "192.0.2.13", "192.0.2.14", "192.0.2.15",
	    "2001:db8::10", "2001:db8::11" };
	struct policy_verdict *v = verdict("any.test", "192.0.2.3");
	struct mx_result *m = calloc(1, sizeof(*m));
	struct run r;
	char *out = malloc(65536);
	int i;

	memset(&r, 0, sizeof(r));
	r.deadline = CHECK_DEADLINE;
	r.probes = calloc(MAXP, sizeof(*r.probes));
	snprintf(r.domain, sizeof(r.domain), "many.test");
	snprintf(m->domain, sizeof(m->domain), "many.test");
	m->status = DNS_INSECURE;
	m->nhost = 1;
	snprintf(m->host[0].name, sizeof(m->host[0].name), "mx.many.test");
	m->host[0].pref = 10;
	m->host[0].naddr = 8;
	m->host[0].nmore = 3;
	for (i = 0; i < 8; i++)
		sa(&m->host[0].addr[i], ips[i]);
	r.mx = m;
	add_probes(&r, AF_INET);
	add_probes(&r, AF_INET6);
	assert_int_equal(r.nprobe, 8);
	for (i = 0; i < 8; i++)
		assert_string_equal(r.probes[i].addrstr, ips[i]);

	assert_int_equal(v->level, TLS_LEVEL_MAY);
	for (i = 0; i < r.nprobe; i++)
		r.probes[i].v = v;
	assert_int_equal(run_probes(&r, tc, cfg, mono_now() - 1),
	    CMD_WARNING);
	for (i = 0; i < r.nprobe; i++) {
		assert_true(r.probes[i].skipped);
		assert_false(r.probes[i].connected);
	}
	printed(print_text, &r, out, 65536);
	assert_non_null(strstr(out, "MX 10 mx.many.test [192.0.2.15]\n"));
	assert_non_null(strstr(out, "result:   not probed\n"));
	assert_null(strstr(out, "result:   deliver"));
	assert_non_null(strstr(out, "not probed: 11 addresses\n"));
	assert_non_null(strstr(out, "  MX 10 mx.many.test [2001:db8::11]: "
	    "the check's 600 s deadline had passed\n"));
	assert_non_null(strstr(out, "  MX 10 mx.many.test: 3 more addresses "
	    "in DNS than the 8 per host the MX walk keeps\n"));
	printed(json_out, &r, out, 65536);
	assert_non_null(strstr(out, "\"result\":\"not-probed\""));
	assert_non_null(strstr(out, "\"not_probed\":[{\"host\":"
	    "\"mx.many.test\",\"pref\":10,\"address\":\"192.0.2.10\","
	    "\"why\":\"deadline\"}"));
	assert_non_null(strstr(out, "{\"host\":\"mx.many.test\",\"pref\":10,"
	    "\"address\":null,\"count\":3,\"why\":\"mx-walk-limit\"}]"));
	assert_non_null(strstr(out, "\"not_probed_count\":11"));
	assert_non_null(strstr(out, "\"deadline\":600"));

	/* ADDRESS given: the walk's other addresses are not the question */
	r.nprobe = 1;
	r.single = 1;
	r.probes[0].skipped = 0;
	printed(print_text, &r, out, 65536);
	assert_null(strstr(out, "not probed"));

	policy_verdict_free(v);
	free(r.probes);
	free(m);
	free(out);
}

/*
 * A tls_policy override "none": the proxy still connects upstream first
 * and relays the greeting (a refusal included), then says EHLO, and only
 * skips STARTTLS (leg_decide()).  check did not probe at all and said
 * "deliver"; now it probes greeting and EHLO, never STARTTLS, through
 * run_probes() as cmd_check() does.
 */
static void
test_level_none_probed(void **state)
{
	struct policy_verdict *v = verdict("any.test", "192.0.2.5");
	struct mx_result m;
	struct probe p;
	struct run r;
	char *out = malloc(65536);
	pid_t pid;

	assert_int_equal(v->level, TLS_LEVEL_NONE);
	one_run(&r, &m, &p);

	/* a 554 greeting: refused, exit status 2 */
	pid = serve_for(&p, GREET_554, NULL, NULL);
	p.v = v;
	assert_int_equal(run_probes(&r, tc, cfg, mono_now() +
	    CHECK_DEADLINE), CMD_DEFER);
	srv_wait(pid);
	assert_true(p.connected);
	assert_int_equal(p.greeting, 554);
	assert_int_equal(p.deliverable, 0);
	printed(print_text, &r, out, 65536);
	assert_non_null(strstr(out, "  result:   refused: the server refused "
	    "service (554)"));

	/* no greeting: the proxy answers 421 */
	pid = serve_for(&p, GREET_NONE, NULL, NULL);
	p.v = v;
	assert_int_equal(run_probes(&r, tc, cfg, mono_now() +
	    CHECK_DEADLINE), CMD_DEFER);
	srv_wait(pid);
	printed(print_text, &r, out, 65536);
	assert_non_null(strstr(out, "  result:   defer: no greeting"));

	/* a good server offering STARTTLS: greeting, EHLO, then QUIT with
	 * no STARTTLS (the server exits 0 only then); deliver, exit 0 */
	pid = serve_for(&p, STARTTLS_UNUSED, NULL, NULL);
	p.v = v;
	assert_int_equal(run_probes(&r, tc, cfg, mono_now() +
	    CHECK_DEADLINE), CMD_OK);
	srv_wait(pid);
	assert_int_equal(srv_status, 0);
	assert_true(p.starttls);
	assert_false(p.tls);
	assert_int_equal(p.deliverable, 1);
	assert_string_equal(p.error, "");
	printed(print_text, &r, out, 65536);
	assert_non_null(strstr(out, "  STARTTLS: offered (not asked for: "
	    "level none)\n"));
	assert_non_null(strstr(out, "  result:   deliver\n"));

	/* nothing listens there any more: the proxy answers 421 */
	p.connected = 0;
	p.error[0] = '\0';
	p.v = v;
	assert_int_equal(run_probes(&r, tc, cfg, mono_now() +
	    CHECK_DEADLINE), CMD_DEFER);
	assert_false(p.connected);
	assert_int_equal(p.deliverable, 0);

	policy_verdict_free(v);
	free(out);
}

/* One probe of a scripted server through run_probes(): its exit status;
 * the server's in srv_status. */
static int
run_one(struct run *r, struct probe *p, struct policy_verdict *v,
    enum script how)
{
	pid_t pid = serve_for(p, how, NULL, NULL);
	int rc;

	p->v = v;
	rc = run_probes(r, tc, cfg, mono_now() + CHECK_DEADLINE);
	srv_wait(pid);
	return rc;
}

/*
 * An MX answer that names more hosts than the 16 the walk looks up
 * (MX_MAX_HOSTS; records past DNS_MAX_RR likewise, mx.c nunkept): the
 * least preferred were never looked up, so never probed, and the daemon
 * defers an MTA-STS enforce domain's mail to their addresses
 * (local-error, policy.c sts_enforce()).  check said nothing of them and
 * exited 0 on the hosts it did probe, where mxguard(8) promises that
 * what the walk did not keep is listed, never left out silently, and
 * makes the exit status at least 1.  Now they are listed, in the text
 * and in JSON (why "mx-hosts-limit"), and the exit status is 1.
 */
static void
test_unkept_mx_hosts_listed(void **state)
{
	struct policy_verdict *v = verdict("any.test", "192.0.2.5");
	struct mx_result m;
	struct probe p;
	struct run r;
	char *out = malloc(65536);

	assert_int_equal(v->level, TLS_LEVEL_NONE);
	one_run(&r, &m, &p);
	r.single = 0;			/* the domain's MX hosts, no ADDRESS */
	snprintf(r.domain, sizeof(r.domain), "many.test");
	snprintf(m.domain, sizeof(m.domain), "many.test");
	m.status = DNS_INSECURE;
	m.nhost = 1;
	snprintf(m.host[0].name, sizeof(m.host[0].name), "mx.many.test");
	m.host[0].pref = 10;
	m.nunkept = 4;
	assert_int_equal(run_one(&r, &p, v, STARTTLS_UNUSED), CMD_WARNING);
	assert_int_equal(srv_status, 0);
	assert_int_equal(p.deliverable, 1);
	printed(print_text, &r, out, 65536);
	assert_non_null(strstr(out, "  result:   deliver\n"));
	if (strstr(out, "\nnot probed: 4 MX hosts\n") == NULL ||
	    strstr(out, "  4 more MX hosts in DNS than the 16 the MX walk "
	    "looks up (the least preferred: their addresses were not looked "
	    "up)\n") == NULL)
		fail_msg("the hosts not looked up not listed:\n%s", out);
	printed(json_out, &r, out, 65536);
	if (strstr(out, "\"not_probed\":[{\"host\":null,\"pref\":null,"
	    "\"address\":null,\"count\":4,\"why\":\"mx-hosts-limit\"}]") ==
	    NULL || strstr(out, "\"not_probed_count\":4") == NULL)
		fail_msg("JSON: %s", out);

	/* ADDRESS given: the walk's other hosts are not the question */
	r.single = 1;
	assert_int_equal(run_one(&r, &p, v, STARTTLS_UNUSED), CMD_OK);
	printed(print_text, &r, out, 65536);
	assert_null(strstr(out, "not probed"));

	policy_verdict_free(v);
	free(out);
}

/*
 * An MX host whose A lookup failed (SERVFAIL: bogus or a broken server)
 * and whose AAAA lookup timed out has no address to probe: check said
 * nothing of it and exited 0 on the other host's probe, though the
 * addresses it hides are the daemon's to judge, and `mxguard policy`
 * exits 3 on the same answers.  Now each failed lookup is listed, in the
 * text and in JSON (why "address-lookup-failed"), and the exit status is
 * at least 1; with nothing else to probe, 3 (unknown), not 2.  A NODATA
 * answer (no address of that family) is no failure.
 */
static void
test_failed_address_lookups_listed(void **state)
{
	struct policy_verdict *v = verdict("any.test", "192.0.2.5");
	struct mx_result m;
	struct probe p;
	struct run r;
	char *out = malloc(65536);

	assert_int_equal(v->level, TLS_LEVEL_NONE);
	one_run(&r, &m, &p);
	r.single = 0;			/* the domain's MX hosts, no ADDRESS */
	snprintf(r.domain, sizeof(r.domain), "fail.test");
	snprintf(m.domain, sizeof(m.domain), "fail.test");
	m.status = DNS_INSECURE;
	m.nhost = 2;
	snprintf(m.host[0].name, sizeof(m.host[0].name), "mx1.fail.test");
	m.host[0].pref = 10;
	m.host[0].st4 = DNS_INSECURE;	/* the probe's address */
	m.host[0].st6 = DNS_NODATA;
	snprintf(m.host[1].name, sizeof(m.host[1].name), "mx2.fail.test");
	m.host[1].pref = 20;
	m.host[1].st4 = DNS_SERVFAIL;
	m.host[1].st6 = DNS_TIMEOUT;
	assert_int_equal(run_one(&r, &p, v, STARTTLS_UNUSED), CMD_WARNING);
	assert_int_equal(srv_status, 0);
	assert_int_equal(p.deliverable, 1);
	printed(print_text, &r, out, 65536);
	assert_non_null(strstr(out, "  result:   deliver\n"));
	if (strstr(out, "\nnot probed: 2 failed address lookups\n") == NULL ||
	    strstr(out, "  MX 20 mx2.fail.test: its A lookup failed "
	    "(servfail): its IPv4 addresses are not known\n") == NULL ||
	    strstr(out, "  MX 20 mx2.fail.test: its AAAA lookup failed "
	    "(timeout): its IPv6 addresses are not known\n") == NULL ||
	    strstr(out, "mx1.fail.test: its") != NULL)
		fail_msg("the failed lookups not listed:\n%s", out);
	printed(json_out, &r, out, 65536);
	if (strstr(out, "{\"host\":\"mx2.fail.test\",\"pref\":20,"
	    "\"address\":null,\"lookup\":\"A\",\"status\":\"servfail\","
	    "\"why\":\"address-lookup-failed\"}") == NULL ||
	    strstr(out, "\"lookup\":\"AAAA\",\"status\":\"timeout\"") ==
	    NULL || strstr(out, "\"not_probed_count\":2") == NULL)
		fail_msg("JSON: %s", out);

	/* ADDRESS given: the walk's other hosts are not the question */
	r.single = 1;
	assert_int_equal(run_one(&r, &p, v, STARTTLS_UNUSED), CMD_OK);
	printed(print_text, &r, out, 65536);
	assert_null(strstr(out, "not probed"));

	policy_verdict_free(v);
	free(out);
}

/*
 * The proxy's leg relays a 4xx to EHLO to the MTA, which must greet
 * again: nothing is delivered on that connection, and check said
 * "deliver" under may.  After a 5xx to EHLO the leg says HELO (check
 * said "deliver" without trying it): its 250 offers no extension, so no
 * STARTTLS (cleartext at may, defer at encrypt), and its refusal goes to
 * the MTA.  No reply to EHLO is a 421 from the proxy.
 */
static void
test_ehlo_refused(void **state)
{
	struct policy_verdict *v = verdict("any.test", "192.0.2.3");
	struct mx_result m;
	struct probe p;
	struct run r;
	char *out = malloc(65536);

	assert_int_equal(v->level, TLS_LEVEL_MAY);
	one_run(&r, &m, &p);

	assert_int_equal(run_one(&r, &p, v, EHLO_421), CMD_DEFER);
	assert_int_equal(srv_status, 0);	/* QUIT after the 421 */
	assert_int_equal(p.ehlo, 421);
	assert_int_equal(p.deliverable, 0);
	assert_string_equal(p.error, "EHLO refused: 421 4.7.0 try again "
	    "later");
	printed(print_text, &r, out, 65536);
	assert_non_null(strstr(out, "  result:   refused: the server refused "
	    "EHLO (421): mxguard relays that reply to the MTA and delivers "
	    "nothing on this connection\n"));
	printed(json_out, &r, out, 65536);
	assert_non_null(strstr(out, "\"ehlo_code\":421,\"helo_code\":null"));
	assert_non_null(strstr(out, "\"result\":\"refused\""));

	/* 502, then HELO 250: cleartext at may, a warning */
	assert_int_equal(run_one(&r, &p, v, EHLO_HELO_250), CMD_WARNING);
	assert_int_equal(srv_status, 0);	/* HELO, then QUIT */
	assert_int_equal(p.ehlo, 502);
	assert_int_equal(p.helo, 250);
	assert_false(p.starttls);
	assert_int_equal(p.deliverable, 1);
	assert_string_equal(p.error, "no STARTTLS offered (EHLO refused, "
	    "HELO accepted: no extensions)");
	printed(json_out, &r, out, 65536);
	assert_non_null(strstr(out, "\"ehlo_code\":502,\"helo_code\":250"));
	assert_non_null(strstr(out, "\"result\":\"deliver\""));

	/* 502, then HELO 550: the MTA gets the 550 */
	assert_int_equal(run_one(&r, &p, v, EHLO_HELO_550), CMD_DEFER);
	assert_int_equal(srv_status, 0);
	assert_int_equal(p.deliverable, 0);
	assert_string_equal(p.error, "EHLO refused: 502 5.5.2 EHLO not "
	    "implemented; HELO refused: 550 5.7.1 go away");
	printed(print_text, &r, out, 65536);
	assert_non_null(strstr(out, "  result:   refused: the server refused "
	    "EHLO (502) and HELO (550): mxguard relays the HELO reply to the "
	    "MTA and delivers nothing on this connection\n"));

	/* no reply to EHLO */
	assert_int_equal(run_one(&r, &p, v, EHLO_NONE), CMD_DEFER);
	assert_int_equal(p.ehlo, -1);
	assert_int_equal(p.deliverable, 0);
	printed(print_text, &r, out, 65536);
	assert_non_null(strstr(out, "  result:   defer: no reply to EHLO: "
	    "mxguard answers the MTA 421\n"));

	/* HELO 250 under encrypt: no STARTTLS, deferred */
	policy_verdict_free(v);
	v = verdict("any.test", "192.0.2.4");
	assert_int_equal(v->level, TLS_LEVEL_ENCRYPT);
	assert_int_equal(run_one(&r, &p, v, EHLO_HELO_250), CMD_DEFER);
	assert_int_equal(srv_status, 0);
	assert_int_equal(p.deliverable, 0);
	assert_string_equal(p.reason, "starttls-not-supported");

	/* at none: HELO's 250 is enough, its refusal is not */
	policy_verdict_free(v);
	v = verdict("any.test", "192.0.2.5");
	assert_int_equal(run_one(&r, &p, v, EHLO_HELO_250), CMD_OK);
	assert_int_equal(srv_status, 0);
	assert_int_equal(p.deliverable, 1);
	assert_int_equal(run_one(&r, &p, v, EHLO_421), CMD_DEFER);
	assert_true(p.refused);

	policy_verdict_free(v);
	free(out);
}

/*
 * After the handshake and its check the leg says EHLO inside TLS
 * (tls_ready()), and a refusal of it, or none, fails the leg: a 421 to
 * the MTA at any level, with no cleartext retry.  check sent QUIT there
 * and said "deliver"; now it says EHLO too, and "defer" naming the step.
 */
static void
test_ehlo_after_starttls(void **state)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *good = test_cert(k, "mx.good.test", "mx.good.test", ca, ca_key,
	    -3600, 86400, 0);
	struct policy_verdict *v = verdict("any.test", "192.0.2.3");
	struct mx_result m;
	struct probe p;
	struct run r;
	char *out = malloc(65536);

	assert_int_equal(v->level, TLS_LEVEL_MAY);
	one_run(&r, &m, &p);

	/* 250 to EHLO inside TLS: deliver */
	probe(&p, v, TLS_CERT, good, k);
	assert_int_equal(srv_status, 0);	/* EHLO, then QUIT */
	assert_true(p.tls);
	assert_int_equal(p.ehlo_tls, 250);
	assert_int_equal(p.deliverable, 1);

	/* 550 to it: defer, at may too */
	probe(&p, v, TLS_EHLO_550, good, k);
	assert_int_equal(srv_status, 0);	/* QUIT after the 550 */
	assert_true(p.tls);
	assert_int_equal(p.ehlo_tls, 550);
	assert_int_equal(p.deliverable, 0);
	assert_false(p.refused);
	assert_string_equal(p.error, "EHLO after STARTTLS refused: 550 5.7.1 "
	    "not after STARTTLS");
	p.v = v;
	printed(print_text, &r, out, 65536);
	assert_non_null(strstr(out, "  result:   defer: the server refused "
	    "EHLO after STARTTLS (550): mxguard ends the connection and "
	    "answers the MTA 421\n"));
	printed(json_out, &r, out, 65536);
	assert_non_null(strstr(out, "\"ehlo_tls_code\":550"));
	assert_non_null(strstr(out, "\"result\":\"defer\""));

	/* the server closes instead: defer */
	probe(&p, v, TLS_EHLO_NONE, good, k);
	assert_int_equal(srv_status, 0);
	assert_int_equal(p.ehlo_tls, -1);
	assert_int_equal(p.deliverable, 0);
	assert_string_equal(p.error, "EHLO after STARTTLS failed: no reply");
	p.v = v;
	printed(print_text, &r, out, 65536);
	assert_non_null(strstr(out, "  result:   defer: no reply to EHLO "
	    "after STARTTLS: mxguard ends the connection and answers the MTA "
	    "421\n"));

	policy_verdict_free(v);
	X509_free(good);
	EVP_PKEY_free(k);
	free(out);
}

/*
 * Each step waits as long as the daemon's leg would: greeting_timeout
 * (5 min by default) for the greeting, a deadline from the connect, as
 * the leg's.  check waited 20 s per step, so a server slower than that
 * was "defer" where the daemon delivers.  With greeting_timeout = 1 s a
 * greeting after 1.5 s times out, as in the daemon; with 3 s it comes;
 * a greeting a byte every 300 ms (6 s in all) never leaves 1 s silent,
 * but the daemon gives it 1 s in all, and so does check.
 */
static void
test_step_timeouts_from_config(void **state)
{
	struct policy_verdict *v = verdict("any.test", "192.0.2.3");
	uint64_t saved = cfg->greeting_timeout;
	struct mx_result m;
	struct probe p;
	struct run r;

	assert_int_equal(v->level, TLS_LEVEL_MAY);
	one_run(&r, &m, &p);

	cfg->greeting_timeout = 1000;
	assert_int_equal(run_one(&r, &p, v, GREET_LATE), CMD_DEFER);
	assert_int_equal(p.greeting, -1);
	assert_string_equal(p.error, "greeting: timed out");

	/* cleartext at may: delivered, a warning */
	cfg->greeting_timeout = 3000;
	assert_int_equal(run_one(&r, &p, v, GREET_LATE), CMD_WARNING);
	assert_int_equal(p.greeting, 220);
	assert_int_equal(p.deliverable, 1);

	/* trickled past greeting_timeout: timed out, as in the daemon */
	cfg->greeting_timeout = 1000;
	assert_int_equal(run_one(&r, &p, v, GREET_SLOW), CMD_DEFER);
	assert_int_equal(p.greeting, -1);
	assert_string_equal(p.error, "greeting: timed out");

	/* within it: the server closes after its greeting, no reply to
	 * EHLO */
	cfg->greeting_timeout = 8000;
	assert_int_equal(run_one(&r, &p, v, GREET_SLOW), CMD_DEFER);
	assert_int_equal(p.greeting, 220);
	assert_int_equal(p.ehlo, -1);

	cfg->greeting_timeout = saved;
	policy_verdict_free(v);
}

/*
 * A probe that check's own deadline cuts short is not the server's
 * fault: it was judged as a server timeout ("defer", exit 2).  Now it
 * is "unknown" (exit 3, unless another address defers: that mail waits
 * whatever the cut probe would say), and the output says the deadline
 * cut it, in which step, and how to raise it (--deadline).
 */
static void
test_deadline_cut_not_judged(void **state)
{
	struct policy_verdict *v = verdict("any.test", "192.0.2.3");
	struct mx_result m;
	struct probe p[2];
	struct check_args a;
	struct run r;
	char *out = malloc(65536);
	char *args[] = { "check", "a.test", "--deadline", "900", "--json",
	    NULL };
	pid_t pid, pid2;

	one_run(&r, &m, &p[0]);

	/* alone: unknown, exit 3 */
	pid = serve_for(&p[0], GREET_SLOW, NULL, NULL);
	p[0].v = v;
	assert_int_equal(run_probes(&r, tc, cfg, mono_now() + 2),
	    CMD_UNKNOWN);
	kill(pid, SIGKILL);
	srv_wait(pid);
	assert_string_equal(p[0].cut, "greeting");
	assert_int_equal(p[0].deliverable, 0);
	printed(print_text, &r, out, 65536);
	assert_non_null(strstr(out, "  result:   unknown: deadline: the "
	    "check's deadline (not the server) cut the probe short in the "
	    "greeting step: not judged; raise it with --deadline SECONDS\n"));
	assert_non_null(strstr(out, "\nnot judged: the check's 600 s "
	    "deadline cut a probe short (the server did not time out): "
	    "raise it with --deadline SECONDS\n"));
	printed(json_out, &r, out, 65536);
	assert_non_null(strstr(out, "\"deadline_cut\":\"greeting\""));
	assert_non_null(strstr(out, "\"result\":\"unknown\""));

	/* beside an address that refuses service: exit 2 */
	pid = serve_for(&p[0], GREET_554, NULL, NULL);
	pid2 = serve_for(&p[1], GREET_SLOW, NULL, NULL);
	p[0].v = p[1].v = v;
	r.nprobe = 2;
	r.single = 0;
	assert_int_equal(run_probes(&r, tc, cfg, mono_now() + 2), CMD_DEFER);
	kill(pid2, SIGKILL);
	srv_wait(pid);
	srv_wait(pid2);
	assert_string_equal(p[0].cut, "");
	assert_true(p[0].refused);
	assert_string_equal(p[1].cut, "greeting");

	/* unknown above a warning, below a defer */
	assert_int_equal(worse(CMD_WARNING, CMD_UNKNOWN), CMD_UNKNOWN);
	assert_int_equal(worse(CMD_UNKNOWN, CMD_WARNING), CMD_UNKNOWN);
	assert_int_equal(worse(CMD_UNKNOWN, CMD_DEFER), CMD_DEFER);
	assert_int_equal(worse(CMD_DEFER, CMD_UNKNOWN), CMD_DEFER);

	/* --deadline: 1 s to a day */
	assert_int_equal(check_args(5, args, &a), 0);
	assert_int_equal(a.deadline, 900);
	assert_true(a.json);
	assert_string_equal(a.domain, "a.test");
	assert_int_equal(check_args(2, args, &a), 0);
	assert_int_equal(a.deadline, CHECK_DEADLINE);
	assert_int_equal(check_args(3, args, &a), -1);	/* no value */
	args[3] = "0";
	assert_int_equal(check_args(4, args, &a), -1);
	args[3] = "86401";
	assert_int_equal(check_args(4, args, &a), -1);
	args[3] = "10s";
	assert_int_equal(check_args(4, args, &a), -1);

	policy_verdict_free(v);
	free(out);
}

/*
 * The daemon relays the MTA's own EHLO name; check said "EHLO
 * mxguard-check.invalid", which MXes that check the name refuse.  Now
 * it says --helo NAME, a host name, or the host's name when it has a
 * dot; in EHLO, HELO and EHLO inside TLS (the scripted servers check
 * it), and the output says which.
 */
static void
test_helo_name(void **state)
{
	struct policy_verdict *v = verdict("any.test", "192.0.2.5");
	char buf[SMTP_DOMAIN_MAX + 1], host[300];
	struct check_args a;
	struct mx_result m;
	struct probe p;
	struct run r;
	char *out = malloc(65536);
	char *args[] = { "check", "a.test", "--helo", "mta.example.test",
	    NULL };

	/* the host name when it has a dot */
	helo_from("mta.example.test", buf, sizeof(buf));
	assert_string_equal(buf, "mta.example.test");
	default_helo(buf, sizeof(buf));
	assert_int_equal(gethostname(host, sizeof(host)), 0);
	if (strchr(host, '.') != NULL && helo_ok(host))
		assert_string_equal(buf, host);
	else
		assert_string_equal(buf, "");

	/* --helo: a host name */
	assert_int_equal(check_args(4, args, &a), 0);
	assert_string_equal(a.helo, "mta.example.test");
	assert_int_equal(check_args(2, args, &a), 0);
	assert_null(a.helo);
	assert_int_equal(check_args(3, args, &a), -1);	/* no value */
	args[3] = "bad_name.example";
	assert_int_equal(check_args(4, args, &a), -1);
	args[3] = "a..example";
	assert_int_equal(check_args(4, args, &a), -1);

	/* the probe says it: the server exits 0 only then */
	one_run(&r, &m, &p);
	assert_int_equal(run_one(&r, &p, v, STARTTLS_UNUSED), CMD_OK);
	assert_int_equal(srv_status, 0);
	assert_string_equal(p.helo_name, TEST_HELO);
	printed(print_text, &r, out, 65536);
	assert_non_null(strstr(out, "\nprobing as: EHLO " TEST_HELO " (--helo "
	    "NAME: the MTA's name)\n"));
	assert_null(strstr(out, "EHLO as:"));
	printed(json_out, &r, out, 65536);
	assert_non_null(strstr(out, "\"helo\":\"" TEST_HELO "\""));
	snprintf(r.helo, sizeof(r.helo), "other.check.test");
	run_one(&r, &p, v, STARTTLS_UNUSED);
	assert_int_equal(srv_status, 5);

	policy_verdict_free(v);
	free(out);
}

/*
 * Without --helo and a dotted host name check asked the system resolver
 * for the host's canonical name (getaddrinfo(), AI_CANONNAME), which
 * waits for DNS timeouts when DNS is down, and fell back to
 * "mxguard-check.invalid".  Now it asks nothing: a bare or invalid host
 * name makes each probe say the address literal of its connection's
 * local address ([127.0.0.1]; [IPv6:...]), valid EHLO syntax (RFC 5321
 * 4.1.3), in EHLO and HELO; the text and JSON say so.
 */
static void
test_helo_address_literal(void **state)
{
	struct policy_verdict *v = verdict("any.test", "192.0.2.3");
	struct sockaddr_storage ss;
	char buf[SMTP_DOMAIN_MAX + 1], host[SMTP_DOMAIN_MAX + 2];
	struct mx_result m;
	struct probe p;
	struct run r;
	char *out = malloc(65536);

	/* no name to say: the probe's address literal */
	helo_from("localhost", buf, sizeof(buf));
	assert_string_equal(buf, "");
	helo_from("-bad.example", buf, sizeof(buf));
	assert_string_equal(buf, "");
	helo_from("", buf, sizeof(buf));
	assert_string_equal(buf, "");

	/* the literals */
	sa(&ss, "192.0.2.1");
	assert_int_equal(helo_literal(&ss, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "[192.0.2.1]");
	sa(&ss, "2001:db8::1");
	assert_int_equal(helo_literal(&ss, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "[IPv6:2001:db8::1]");
	sa(&ss, "::ffff:192.0.2.7");
	assert_int_equal(helo_literal(&ss, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "[192.0.2.7]");

	/* the probe says it in EHLO, then in HELO after a 502: the scripted
	 * server exits 0 only then */
	one_run(&r, &m, &p);
	r.helo[0] = '\0';
	srv_helo = "[127.0.0.1]";
	assert_int_equal(run_one(&r, &p, v, NO_STARTTLS), CMD_WARNING);
	assert_int_equal(srv_status, 0);
	assert_string_equal(p.helo_name, "[127.0.0.1]");
	assert_int_equal(p.ehlo, 250);
	printed(print_text, &r, out, 65536);
	assert_non_null(strstr(out, "\nprobing as: EHLO [the probe's local "
	    "address] (the host name has no dot; --helo NAME: the MTA's "
	    "name)\n"));
	assert_non_null(strstr(out, "\n  EHLO as:  [127.0.0.1]\n"));
	printed(json_out, &r, out, 65536);
	assert_non_null(strstr(out, "\"helo\":null"));
	assert_non_null(strstr(out, "\"helo\":\"[127.0.0.1]\""));
	/* HELO takes a domain, never a literal (RFC 5321 4.1.1.1): after a
	 * 502 the probe says the host's name, dot or not, else localhost
	 * (before: HELO [127.0.0.1], which a strict server refuses) */
	helo_domain("[192.0.2.1]", "vm", buf, sizeof(buf));
	assert_string_equal(buf, "vm");
	helo_domain("[192.0.2.1]", "-bad", buf, sizeof(buf));
	assert_string_equal(buf, "localhost");
	helo_domain("mta.example", "vm", buf, sizeof(buf));
	assert_string_equal(buf, "mta.example");
	if (gethostname(host, sizeof(host)) == -1)
		host[0] = '\0';
	host[sizeof(host) - 1] = '\0';
	srv_helo_domain = sts_valid_hostname(host) ? host : "localhost";
	assert_int_equal(run_one(&r, &p, v, EHLO_HELO_250), CMD_WARNING);
	assert_int_equal(srv_status, 0);
	assert_int_equal(p.helo, 250);
	srv_helo = TEST_HELO;
	srv_helo_domain = NULL;

	policy_verdict_free(v);
	free(out);
}

/*
 * The leg settles in cleartext at may only on a reply to STARTTLS that
 * refuses it; no reply (the server closes, times out, or sends a
 * malformed one) fails the leg (leg_fail(): a 421 to the MTA).  check
 * said "deliver" for both; now no reply is "defer".
 */
static void
test_starttls_no_reply(void **state)
{
	struct policy_verdict *v = verdict("any.test", "192.0.2.3");
	struct mx_result m;
	struct probe p;
	struct run r;
	char *out = malloc(65536);

	assert_int_equal(v->level, TLS_LEVEL_MAY);
	one_run(&r, &m, &p);

	/* a refusal: cleartext on that connection, a warning */
	assert_int_equal(run_one(&r, &p, v, STARTTLS_454), CMD_WARNING);
	assert_int_equal(srv_status, 0);	/* NOOP, then QUIT */
	assert_int_equal(p.starttls_code, 454);
	assert_int_equal(p.noop, 250);
	assert_int_equal(p.deliverable, 1);

	/* no reply: defer */
	assert_int_equal(run_one(&r, &p, v, STARTTLS_NONE), CMD_DEFER);
	assert_int_equal(p.starttls_code, -1);
	assert_int_equal(p.deliverable, 0);
	assert_string_equal(p.error, "STARTTLS failed: no reply");
	printed(print_text, &r, out, 65536);
	assert_non_null(strstr(out, "  result:   defer: no reply to STARTTLS: "
	    "mxguard ends the connection and answers the MTA 421\n"));
	printed(json_out, &r, out, 65536);
	assert_non_null(strstr(out, "\"starttls_code\":null"));

	policy_verdict_free(v);
	free(out);
}

/*
 * The daemon's handshake timeout (tls_timeout) is re-armed by each send
 * of the leg's handshake records (io.c, drain_tout()); check counted it
 * from the handshake's start.  With tls_timeout = 1 s a TLS 1.2 server
 * whose two flights each come 700 ms after what they answer (1.4 s in
 * all, the client's records between them) was cut, and "deliver" at
 * may for a cleartext retry the daemon never needs; now the handshake
 * completes.  A server that stalls 1.3 s before its Finished is still
 * cut, by tls_timeout, not by the check's deadline.
 */
static void
test_handshake_timeout_rearmed(void **state)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *good = test_cert(k, "mx.good.test", "mx.good.test", ca, ca_key,
	    -3600, 86400, 0);
	struct policy_verdict *v = verdict("any.test", "192.0.2.3");
	uint64_t saved = cfg->tls_timeout;
	struct probe p;

	assert_int_equal(v->level, TLS_LEVEL_MAY);
	cfg->tls_timeout = 1000;

	probe(&p, v, TLS_TRICKLE, good, k);
	assert_string_equal(p.error, "");
	assert_true(p.tls);
	assert_string_equal(p.tls_proto, "TLSv1.2");
	assert_int_equal(p.ehlo_tls, 250);
	assert_int_equal(p.deliverable, 1);
	assert_int_equal(srv_status, 0);	/* EHLO, then QUIT */

	probe(&p, v, TLS_STALL, good, k);
	assert_false(p.tls);
	assert_string_equal(p.error, "TLS handshake failed: timed out");
	assert_string_equal(p.cut, "");

	cfg->tls_timeout = saved;
	policy_verdict_free(v);
	X509_free(good);
	EVP_PKEY_free(k);
}

/*
 * At may a reply refusing STARTTLS settles the leg in cleartext on the
 * same connection (leg_on_reply(), LS_STARTTLS); a server that closes it
 * after the refusal loses the leg (leg_fail(): connection lost, a 421 to
 * the MTA).  check said "deliver" for both; now it says NOOP after the
 * refusal, as the session's next command would go there: answered, the
 * connection goes on ("deliver", test_starttls_no_reply); closed, or 421,
 * "defer".
 */
static void
test_starttls_refused_then_closed(void **state)
{
	struct policy_verdict *v = verdict("any.test", "192.0.2.3");
	struct mx_result m;
	struct probe p;
	struct run r;
	char *out = malloc(65536);

	assert_int_equal(v->level, TLS_LEVEL_MAY);
	one_run(&r, &m, &p);

	assert_int_equal(run_one(&r, &p, v, STARTTLS_454_CLOSE), CMD_DEFER);
	assert_int_equal(srv_status, 0);
	assert_int_equal(p.starttls_code, 454);
	assert_int_equal(p.noop, -1);
	assert_int_equal(p.deliverable, 0);
	assert_string_equal(p.error, "STARTTLS refused: 454 4.7.0 TLS not "
	    "available; then NOOP failed: no reply");
	printed(print_text, &r, out, 65536);
	assert_non_null(strstr(out, "  result:   defer: the server refused "
	    "STARTTLS (454), then closed the connection: mxguard, going on "
	    "in cleartext there, answers the MTA 421\n"));
	printed(json_out, &r, out, 65536);
	assert_non_null(strstr(out, "\"starttls_code\":454,"
	    "\"noop_code\":null"));
	assert_non_null(strstr(out, "\"result\":\"defer\""));

	/* open after the refusal: NOOP's code in JSON */
	assert_int_equal(run_one(&r, &p, v, STARTTLS_454), CMD_WARNING);
	printed(json_out, &r, out, 65536);
	assert_non_null(strstr(out, "\"noop_code\":250"));
	assert_non_null(strstr(out, "\"result\":\"deliver\""));

	/* no NOOP above may: the refusal defers there already */
	policy_verdict_free(v);
	v = verdict("any.test", "192.0.2.4");
	assert_int_equal(run_one(&r, &p, v, STARTTLS_454_CLOSE), CMD_DEFER);
	assert_int_equal(p.noop, 0);
	assert_string_equal(p.reason, "starttls-not-supported");

	policy_verdict_free(v);
	free(out);
}

/* What a probe of a scripted server (or, how -1, of a loopback port
 * nobody listens on) printed, text in out and JSON in js. */
static void
starttls_said(struct run *r, struct probe *p, struct policy_verdict *v,
    int how, char *out, char *js)
{
	if (how == -1) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&p->addr;
		socklen_t sl = sizeof(*sin);
		int fd = socket(AF_INET, SOCK_STREAM, 0);

		/* bound, never listening: the connect is refused */
		memset(p, 0, sizeof(*p));
		sin->sin_family = AF_INET;
		sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		assert_int_equal(bind(fd, (struct sockaddr *)sin, sl), 0);
		assert_int_equal(getsockname(fd, (struct sockaddr *)sin, &sl),
		    0);
		snprintf(p->addrstr, sizeof(p->addrstr), "127.0.0.1");
		p->v = v;
		assert_int_equal(run_probes(r, tc, cfg, mono_now() +
		    CHECK_DEADLINE), CMD_DEFER);
		close(fd);
		assert_false(p->connected);
	} else
		run_one(r, p, v, (enum script)how);
	printed(print_text, r, out, 65536);
	printed(json_out, r, js, 65536);
}

/*
 * "STARTTLS: not offered" (JSON "starttls": false) was said of probes
 * that never got an EHLO (or HELO) reply to see it in: a refused
 * connection, a 554 greeting, EHLO refused or unanswered.  Now those say
 * "STARTTLS: not reached", and JSON starttls and starttls_masked are
 * null; a server that answered EHLO without STARTTLS is still "not
 * offered" (false).
 */
static void
test_starttls_not_reached(void **state)
{
	struct policy_verdict *v = verdict("any.test", "192.0.2.3");
	static const int unreached[] = { -1, GREET_554, EHLO_421,
	    EHLO_NONE };
	struct mx_result m;
	struct probe p;
	struct run r;
	char *out = malloc(65536), *js = malloc(65536);
	size_t i;

	assert_int_equal(v->level, TLS_LEVEL_MAY);
	one_run(&r, &m, &p);

	for (i = 0; i < sizeof(unreached) / sizeof(unreached[0]); i++) {
		starttls_said(&r, &p, v, unreached[i], out, js);
		assert_non_null(strstr(out, "\n  STARTTLS: not reached\n"));
		assert_null(strstr(out, "not offered"));
		assert_non_null(strstr(js, "\"starttls\":null,"
		    "\"starttls_masked\":null,"));
	}

	/* EHLO answered without STARTTLS, or HELO after a 5xx */
	starttls_said(&r, &p, v, NO_STARTTLS, out, js);
	assert_non_null(strstr(out, "\n  STARTTLS: not offered\n"));
	assert_non_null(strstr(js, "\"starttls\":false,"
	    "\"starttls_masked\":false,"));
	starttls_said(&r, &p, v, EHLO_HELO_250, out, js);
	assert_non_null(strstr(out, "\n  STARTTLS: not offered\n"));

	policy_verdict_free(v);
	free(out);
	free(js);
}

/* CLOCK_MONOTONIC in milliseconds (the test's own clock). */
static int64_t
test_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * A probe begun 1-2 s before the check's deadline, to a server that
 * sends its greeting a byte every 300 ms (6 s in all): each socket read
 * waited up to what was left when the probe began, so the probe ran 6 s
 * and past the deadline.  Now every step waits at most its timeout
 * and what is left of the deadline: the probe ends by it, and says so
 * (not judged: test_deadline_cut_not_judged).
 */
static void
test_deadline_bounds_steps(void **state)
{
	struct policy_verdict *v = verdict("any.test", "192.0.2.3");
	struct mx_result m;
	struct probe p;
	struct run r;
	int64_t t0, took;
	pid_t pid;

	one_run(&r, &m, &p);
	pid = serve_for(&p, GREET_SLOW, NULL, NULL);
	p.v = v;
	t0 = test_ms();
	assert_int_equal(run_probes(&r, tc, cfg, mono_now() + 2),
	    CMD_UNKNOWN);
	took = test_ms() - t0;
	kill(pid, SIGKILL);
	srv_wait(pid);
	/* by the deadline (1-2 s away: mono_now() is in seconds), not
	 * after the server's 6 s; the bound half-way between, as the
	 * error below, not the clock, says the deadline cut the probe */
	print_message("probe ended after %lld ms (deadline 1-2 s)\n",
	    (long long)took);
	assert_true(took <= 4000);
	assert_true(p.connected);
	assert_false(p.skipped);
	assert_int_equal(p.greeting, -1);
	assert_string_equal(p.error, "greeting: timed out: the check's "
	    "deadline passed");
	assert_int_equal(p.deliverable, 0);
	policy_verdict_free(v);
}

/*
 * A destination in bypass_dst goes direct: mxguard never sees the flow,
 * and the MTA delivers with its own TLS settings.  check judged the
 * server by the verdict (encrypt, no STARTTLS: "defer", exit 2) as if
 * mxguard held the mail to it; now it says the flow is bypassed,
 * "deliver" with exit 1 (delivered, not as the verdict asks), and JSON
 * "bypassed": true.  An address outside the list is judged as before.
 */
static void
test_bypass_dst(void **state)
{
	struct policy_verdict *v = verdict("any.test", "192.0.2.4");
	struct mx_result m;
	struct probe p;
	struct run r;
	char *out = malloc(65536);
	pid_t pid;

	(void)state;
	assert_int_equal(v->level, TLS_LEVEL_ENCRYPT);
	one_run(&r, &m, &p);
	cfg->bypass_dst.v = calloc(1, sizeof(char *));
	cfg->bypass_dst.v[0] = strdup("127.0.0.0/8");
	cfg->bypass_dst.n = 1;
	pid = serve_for(&p, NO_STARTTLS, NULL, NULL);
	p.v = v;
	assert_int_equal(run_probes(&r, tc, cfg, mono_now() +
	    CHECK_DEADLINE), CMD_WARNING);
	srv_wait(pid);
	assert_true(p.bypassed);
	assert_int_equal(p.deliverable, 1);
	printed(print_text, &r, out, 65536);
	assert_non_null(strstr(out, "  result:   deliver: bypass_dst: "
	    "mxguard never sees this flow"));
	printed(json_out, &r, out, 65536);
	assert_non_null(strstr(out, "\"bypassed\":true"));
	free(cfg->bypass_dst.v[0]);
	free(cfg->bypass_dst.v);
	cfg->bypass_dst.v = NULL;
	cfg->bypass_dst.n = 0;
	/* not bypassed: the verdict's defer */
	pid = serve_for(&p, NO_STARTTLS, NULL, NULL);
	p.v = v;
	assert_int_equal(run_probes(&r, tc, cfg, mono_now() +
	    CHECK_DEADLINE), CMD_DEFER);
	srv_wait(pid);
	assert_false(p.bypassed);
	policy_verdict_free(v);
	free(out);
}

/* A DNS server answering from zone on 127.0.0.1, in a child (NXDOMAIN
 * for what it lacks, AD under signed.test); its port in *port. */
static pid_t
zone_start(const struct zrr *zone, int *port)
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
		for (;;)
			zone_serve(fd, zone);
	}
	close(fd);
	return pid;
}

/*
 * `mxguard check D A` for A, the 9th address of D's signed MX host with
 * usable TLSA records: past the 8 addresses a host's walk keeps
 * (MX_MAX_ADDRS), A is still that host's, for the daemon (mx.c reads
 * every record of the answer) and so for the verdict, DANE.  The DANE
 * view check prints beside the verdict was judged on the 8 kept
 * addresses (mx_result_set_dst()): A no MX host's, the host's TLSA
 * records a defer ("validation-failure"), the probe's host "-", while
 * the verdict said dane.  Now it is judged as the daemon judges it.
 * Red before: DANE view defer, host "-".
 */
static void
test_dane_view_past_kept_addresses(void **state)
{
	static const struct zrr zone[] = {
		{ "nine.signed.test", DNS_T_MX, "10 mx.nine.signed.test" },
		{ "mx.nine.signed.test", DNS_T_A, "192.0.2.51" },
		{ "mx.nine.signed.test", DNS_T_A, "192.0.2.52" },
		{ "mx.nine.signed.test", DNS_T_A, "192.0.2.53" },
		{ "mx.nine.signed.test", DNS_T_A, "192.0.2.54" },
		{ "mx.nine.signed.test", DNS_T_A, "192.0.2.55" },
		{ "mx.nine.signed.test", DNS_T_A, "192.0.2.56" },
		{ "mx.nine.signed.test", DNS_T_A, "192.0.2.57" },
		{ "mx.nine.signed.test", DNS_T_A, "192.0.2.58" },
		{ "mx.nine.signed.test", DNS_T_A, "192.0.2.59" },
		{ "_25._tcp.mx.nine.signed.test", DNS_T_TLSA, "3 1 1 "
		    "00112233445566778899aabbccddeeff"
		    "00112233445566778899aabbccddeeff" },
		{ NULL, 0, NULL },
	};
	struct config *c;
	struct policy *zp;
	struct policy_verdict *v;
	struct run r;
	struct probe *p;
	char err[256];
	int port;
	pid_t pid = zone_start(zone, &port);

	(void)state;
	assert_non_null(c = config_load(NULL, err, sizeof(err)));
	snprintf(err, sizeof(err), "127.0.0.1:%d", port);
	c->dns_servers.v = calloc(1, sizeof(char *));
	c->dns_servers.v[0] = strdup(err);
	c->dns_servers.n = 1;
	c->dns_timeout = 1000;
	c->sts_enable = 0;
	c->tls_history = 0;
	assert_non_null(zp = policy_new(loop, c, err, sizeof(err)));

	memset(&r, 0, sizeof(r));
	r.loop = loop;
	r.pol = zp;
	r.dns = policy_dns(zp);
	r.probes = calloc(MAXP, sizeof(*r.probes));
	snprintf(r.domain, sizeof(r.domain), "nine.signed.test");
	r.outstanding = 1;
	assert_non_null(mx_walk(r.dns, r.domain, NULL, MX_WALK_A |
	    MX_WALK_AAAA, on_walk, &r));
	wait_all(&r);
	assert_non_null(r.mx);
	assert_int_equal(r.mx->host[0].naddr, MX_MAX_ADDRS);
	assert_int_equal(r.mx->host[0].nmore, 1);
	/* ADDRESS given, as cmd_check() sets its probe */
	p = &r.probes[0];
	sa(&p->addr, "192.0.2.59");
	p->addr.ss_family = AF_INET;
	((struct sockaddr_in *)&p->addr)->sin_port = htons(25);
	snprintf(p->addrstr, sizeof(p->addrstr), "192.0.2.59");
	snprintf(p->host, sizeof(p->host), "-");
	r.nprobe = 1;
	r.single = 1;
	assert_int_equal(dane_view(&r, p), 0);
	/* what the daemon decides for that address */
	v = lookup_wait(loop, zp, "nine.signed.test", "192.0.2.59");
	print_message("verdict %s (%s); DANE view %s (%s), host %s\n",
	    tls_level_name(v->level), v->mx_host,
	    p->dane ? dane_state_name(p->dane->state) : "none",
	    p->dane ? p->dane->detail : "-", p->host);
	assert_int_equal(v->level, TLS_LEVEL_DANE);
	assert_string_equal(v->mx_host, "mx.nine.signed.test");
	assert_non_null(p->dane);
	assert_int_equal(p->dane->state, DANE_USABLE);
	assert_string_equal(p->dane->mx_host, "mx.nine.signed.test");
	assert_string_equal(p->host, "mx.nine.signed.test");
	assert_int_equal(p->pref, 10);

	policy_verdict_free(v);
	dane_info_free(p->dane);
	free(r.probes);
	free(r.mx);
	policy_free(zp);
	config_free(c);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_encrypt_report_only_no_starttls),
		cmocka_unit_test(test_report_only_failure_warns),
		cmocka_unit_test(test_injection_defers_under_may),
		cmocka_unit_test(test_all_addresses_probed_or_listed),
		cmocka_unit_test(test_greeting_refused_under_may),
		cmocka_unit_test(test_level_none_probed),
		cmocka_unit_test(test_unkept_mx_hosts_listed),
		cmocka_unit_test(test_failed_address_lookups_listed),
		cmocka_unit_test(test_ehlo_refused),
		cmocka_unit_test(test_deadline_bounds_steps),
		cmocka_unit_test(test_ehlo_after_starttls),
		cmocka_unit_test(test_step_timeouts_from_config),
		cmocka_unit_test(test_deadline_cut_not_judged),
		cmocka_unit_test(test_helo_name),
		cmocka_unit_test(test_starttls_no_reply),
		cmocka_unit_test(test_handshake_timeout_rearmed),
		cmocka_unit_test(test_starttls_refused_then_closed),
		cmocka_unit_test(test_helo_address_literal),
		cmocka_unit_test(test_starttls_not_reached),
		cmocka_unit_test(test_bypass_dst),
		cmocka_unit_test(test_dane_view_past_kept_addresses),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
