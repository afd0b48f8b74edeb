/*
 * test_report_run.c - the TLSRPT delivery run (tlsproxy/report.c): its
 * deadlines, its parked retries, the --now preview, the mailto SSRF check
 * and the de-duplication of URIs.
 *
 * DNS is faked (fakedns.h).  The report receivers are small SMTP servers
 * on 127.0.0.1 in this process, on the run's own event loop; leg_new() is
 * wrapped so that a connection to an MX address 127.0.0.N (or any other)
 * port 25 goes to server N's port instead, and so that the test sees
 * every address the run connects to.  Session timeouts are 60 s, so only
 * the run's own deadlines (milliseconds here, through struct report_opts)
 * can end a try against a server that never answers.  mdb_env_sync() is
 * wrapped to count the store's flushes to disk.
 */
// WRAP: dns_query dns_cancel leg_new policy_record_tls mdb_env_sync tlsrpt_gzip gethostname time clock_gettime
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <lmdb.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "core/config.h"
#include "core/ev.h"
#include "core/io.h"
#include "core/log.h"
#include "core/stats.h"
#include "policy/dns.h"
#include "policy/tlsrpt.h"
#include "tlsproxy/leg.h"
#include "tlsproxy/report.h"

#include "fakedns.h"
#include "timestep.h"

/* the wall clock (CLOCK_REALTIME, which the delivery state is kept in)
 * stepped with time(): time_step seconds; the others as they are */
int __real_clock_gettime(clockid_t, struct timespec *);
int __wrap_clock_gettime(clockid_t, struct timespec *);

int
__wrap_clock_gettime(clockid_t id, struct timespec *ts)
{
	int rc = __real_clock_gettime(id, ts);

	if (rc == 0 && id == CLOCK_REALTIME)
		ts->tv_sec += (time_t)time_step;
	return rc;
}

/* ---- SMTP receivers ---------------------------------------------------- */

/* TRICKLE: a greeting that never ends, one byte every TRICKLE_MS */
enum mode { GOOD, TARPIT, TEMPFAIL, TRICKLE };

#define TRICKLE_MS	20

#define NSRV	4

static struct srv {
	int		 lfd;
	uint16_t	 port;
	enum mode	 mode;
	int		 conns, msgs;
	char		 last_id[128];	/* Report-ID of the last message */
	char		 ehlo[300];	/* the last EHLO's argument */
} srv[NSRV + 1];		/* 1..NSRV: 127.0.0.N */

struct conn {
	struct conn	*next;		/* every connection, for end_test */
	int		 fd;
	struct srv	*s;
	int		 data;
	struct ev_timer	*drip;		/* TRICKLE */
	size_t		 dripped;
	char		 buf[65536];
	size_t		 n;
};

static struct conn *conns;
static void (*on_msg)(void);	/* called as a message is received */
static int clobber_key;		/* a message received spoils the key file */
static void key_file(int good);

static void
say(struct conn *c, const char *s)
{
	(void)!write(c->fd, s, strlen(s));
}

static void
conn_close(struct conn *c)
{
	struct conn **pp;

	for (pp = &conns; *pp != NULL; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	ev_timer_free(c->drip);
	ev_fd_del(loop, c->fd);
	close(c->fd);
	free(c);
}

/* The Subject's "Report-ID: <...>" of a message in buf. */
static void
report_id_of(const char *buf, size_t n, char *out, size_t sz)
{
	const char *p = memmem(buf, n, "Report-ID: <", 12), *e;

	out[0] = '\0';
	if (p == NULL)
		return;
	p += 12;
	if ((e = memchr(p, '>', n - (size_t)(p - buf))) != NULL)
		snprintf(out, sz, "%.*s", (int)(e - p), p);
}

static void
on_conn(int fd, int events, void *arg)
{
	struct conn *c = arg;
	char *nl, *end;
	ssize_t k;

	(void)events;
	if (c->n == sizeof(c->buf))
		c->n = 0;
	k = read(fd, c->buf + c->n, sizeof(c->buf) - c->n);
	if (k <= 0) {
		conn_close(c);
		return;
	}
	c->n += (size_t)k;
	if (c->s->mode == TARPIT || c->s->mode == TRICKLE)
		return;
	for (;;) {
		if (c->data) {
			end = memmem(c->buf, c->n, "\r\n.\r\n", 5);
			if (end == NULL)
				return;
			c->data = 0;
			c->s->msgs++;
			if (on_msg != NULL)
				on_msg();
			if (clobber_key)
				key_file(0);
			report_id_of(c->buf, (size_t)(end - c->buf),
			    c->s->last_id, sizeof(c->s->last_id));
			say(c, "250 2.0.0 queued\r\n");
			nl = end + 4;
		} else {
			if ((nl = memchr(c->buf, '\n', c->n)) == NULL)
				return;
			if (strncasecmp(c->buf, "EHLO", 4) == 0) {
				snprintf(c->s->ehlo, sizeof(c->s->ehlo),
				    "%.*s", (int)(nl - c->buf) - 5 -
				    (nl[-1] == '\r'), c->buf + 5);
				say(c, "250-fake\r\n250 8BITMIME\r\n");
			}
			else if (strncasecmp(c->buf, "DATA", 4) == 0) {
				c->data = 1;
				say(c, "354 go\r\n");
			} else if (strncasecmp(c->buf, "QUIT", 4) == 0) {
				say(c, "221 bye\r\n");
				conn_close(c);
				return;
			} else
				say(c, "250 ok\r\n");
		}
		nl++;
		memmove(c->buf, nl, c->n - (size_t)(nl - c->buf));
		c->n -= (size_t)(nl - c->buf);
	}
}

/* One more byte of "220-x\r\n220-x\r\n...": a reply that never ends,
 * sent slowly enough that no read of the client ever waits long. */
static void
drip(void *arg)
{
	static const char line[] = "220-x\r\n";
	struct conn *c = arg;

	(void)!write(c->fd, &line[c->dripped++ % (sizeof(line) - 1)], 1);
	ev_timer_arm(c->drip, TRICKLE_MS);
}

static void
on_accept(int fd, int events, void *arg)
{
	struct srv *s = arg;
	struct conn *c;
	int cfd;

	(void)events;
	if ((cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK)) == -1)
		return;
	s->conns++;
	c = calloc(1, sizeof(*c));
	c->fd = cfd;
	c->s = s;
	c->next = conns;
	conns = c;
	if (s->mode == GOOD)
		say(c, "220 fake ESMTP\r\n");
	else if (s->mode == TEMPFAIL)
		say(c, "421 4.3.2 try later\r\n");
	else if (s->mode == TRICKLE) {
		c->drip = ev_timer_new(loop, drip, c);
		ev_timer_arm(c->drip, TRICKLE_MS);
	}
	ev_fd_set(loop, cfd, EV_READ, on_conn, c);
}

static void
srv_start(int i, enum mode m)
{
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	struct srv *s = &srv[i];

	s->mode = m;
	s->conns = s->msgs = 0;
	s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	assert_true(s->lfd >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(s->lfd, (struct sockaddr *)&sin, sizeof(sin)),
	    0);
	assert_int_equal(listen(s->lfd, 16), 0);
	assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&sin, &sl),
	    0);
	s->port = ntohs(sin.sin_port);
	assert_int_equal(ev_fd_set(loop, s->lfd, EV_READ, on_accept, s), 0);
}

static void
srv_stop(int i)
{
	if (srv[i].lfd > 0) {
		ev_fd_del(loop, srv[i].lfd);
		close(srv[i].lfd);
	}
	srv[i].lfd = 0;
}

/* ---- leg_new: MX address 127.0.0.N or w.x.y.N -> server N -------------- */

static int dials;
static char dialed[16][INET6_ADDRSTRLEN];

struct leg *__real_leg_new(const struct leg_env *,
    const struct sockaddr_storage *, const char *, leg_cb *, void *);
struct leg *__wrap_leg_new(const struct leg_env *,
    const struct sockaddr_storage *, const char *, leg_cb *, void *);

struct leg *
__wrap_leg_new(const struct leg_env *env, const struct sockaddr_storage *dst,
    const char *tag, leg_cb *cb, void *arg)
{
	struct sockaddr_storage to = *dst;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&to;
	unsigned n;

	assert_int_equal(dst->ss_family, AF_INET);
	inet_ntop(AF_INET, &s4->sin_addr, dialed[dials % 16],
	    sizeof(dialed[0]));
	dials++;
	n = ntohl(s4->sin_addr.s_addr) & 0xff;
	assert_true(n >= 1 && n <= NSRV);
	s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	s4->sin_port = htons(srv[n].port);
	return __real_leg_new(env, &to, tag, cb, arg);
}

/* ---- the TLS history: a report's legs must leave it alone ------------- */

static int recorded;

void __wrap_policy_record_tls(struct policy *, const struct sockaddr *,
    const char *, int, int);
void
__wrap_policy_record_tls(struct policy *p, const struct sockaddr *dst,
    const char *mx_host, int offered, int ok)
{
	(void)p; (void)dst; (void)mx_host; (void)offered; (void)ok;
	recorded++;
}

/* ---- mdb_env_sync: the store's flushes to disk ------------------------- */

static int syncs;

int __real_mdb_env_sync(MDB_env *, int);
int __wrap_mdb_env_sync(MDB_env *, int);

int
__wrap_mdb_env_sync(MDB_env *env, int force)
{
	syncs++;
	return __real_mdb_env_sync(env, force);
}

/* tlsrpt_gzip() as it is, after gzip_delay_ms of work: a report that is
 * slow to build (a large one, a busy host) */
static int gzip_delay_ms;

/* gethostname() as it is, or fake_host when set */
static const char *fake_host;

int __real_gethostname(char *, size_t);
int __wrap_gethostname(char *, size_t);

int
__wrap_gethostname(char *name, size_t len)
{
	if (fake_host == NULL)
		return __real_gethostname(name, len);
	snprintf(name, len, "%s", fake_host);
	return 0;
}
static char last_json[65536];	/* the last report gzipped */

int __real_tlsrpt_gzip(const void *, size_t, unsigned char **, size_t *);
int __wrap_tlsrpt_gzip(const void *, size_t, unsigned char **, size_t *);

int
__wrap_tlsrpt_gzip(const void *in, size_t len, unsigned char **out,
    size_t *outlen)
{
	if (gzip_delay_ms > 0)
		usleep((useconds_t)gzip_delay_ms * 1000);
	snprintf(last_json, sizeof(last_json), "%.*s", (int)len,
	    (const char *)in);
	return __real_tlsrpt_gzip(in, len, out, outlen);
}

/* ---- the run ----------------------------------------------------------- */

static char dir[64], keyfile[128];
static char keypem[8192];
static size_t keylen;
static struct config *cfg;
static struct tlsrpt_store *st;
static struct report_totals tot;
static struct tlsrpt_limits *lim;	/* the next begin_test()'s store */
static char storedir[128];		/* the test's store */
static int finished;
static uint64_t took_ms;

static void
setstr(char **p, const char *v)
{
	free(*p);
	*p = strdup(v);
}

static int
setup(void **state)
{
	char err[256];
	EVP_PKEY *pk;
	FILE *f;

	(void)state;
	/* the fake receivers write() to connections the run may have
	 * closed (a TRICKLE drip due in the same timer pass as the try's
	 * deadline): EPIPE, not the death of the test process */
	signal(SIGPIPE, SIG_IGN);
	snprintf(dir, sizeof(dir), "/tmp/mxg-rrun-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(keyfile, sizeof(keyfile), "%s/dkim.key", dir);
	assert_non_null(pk = EVP_RSA_gen(2048));
	assert_non_null(f = fopen(keyfile, "w"));
	assert_int_equal(PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL,
	    NULL), 1);
	fclose(f);
	EVP_PKEY_free(pk);
	assert_non_null(f = fopen(keyfile, "r"));
	keylen = fread(keypem, 1, sizeof(keypem), f);
	fclose(f);
	assert_true(keylen > 0 && keylen < sizeof(keypem));
	cfg = config_load(NULL, err, sizeof(err));
	assert_non_null(cfg);
	setstr(&cfg->tlsrpt_dkim_key, keyfile);
	setstr(&cfg->tlsrpt_dkim_selector, "tlsrpt");
	setstr(&cfg->tlsrpt_from, "noreply@sender.test");
	setstr(&cfg->tlsrpt_org_name, "test");
	cfg->tlsrpt_private_destinations = 1;
	cfg->connect_timeout = cfg->greeting_timeout = 60000;
	cfg->command_timeout = cfg->data_block_timeout = 60000;
	cfg->data_done_timeout = cfg->tls_timeout = 60000;
	log_init("test_report_run", 0, LOG_LVL_INFO);
	return 0;
}

/* The DKIM key file: the test's key, or no key at all. */
static void
key_file(int good)
{
	FILE *f = fopen(keyfile, "w");

	assert_non_null(f);
	if (good)
		assert_int_equal(fwrite(keypem, 1, keylen, f), keylen);
	else
		fputs("not a key\n", f);
	fclose(f);
}

static int
teardown(void **state)
{
	char cmd[200];

	(void)state;
	config_free(cfg);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	(void)!system(cmd);
	return 0;
}

/* A fresh store, loop and receivers for one test. */
static void
begin_test(void)
{
	char err[256], sub[128], cmd[200];
	static int n;
	int i;

	snprintf(sub, sizeof(sub), "%s/s%d", dir, n++);
	snprintf(storedir, sizeof(storedir), "%s", sub);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", sub);
	(void)!system(cmd);
	st = tlsrpt_store_open(sub, lim, err, sizeof(err));
	assert_non_null(st);
	lim = NULL;
	loop = ev_loop_new();
	assert_non_null(loop);
	for (i = 1; i <= NSRV; i++)
		srv_start(i, GOOD);
	dials = 0;
	clobber_key = 0;
	on_msg = NULL;
	key_file(1);
}

static void
end_test(void)
{
	int i;

	for (i = 1; i <= NSRV; i++)
		srv_stop(i);
	while (conns != NULL)
		conn_close(conns);
	fakes_clear();
	io_linger_flush();
	ev_loop_free(loop);
	loop = NULL;
	tlsrpt_store_close(st);
	st = NULL;
}

static int64_t
today(void)
{
	return tlsrpt_day((int64_t)time(NULL));
}

/* One successful session of domain on day. */
static void
record(const char *domain, int64_t day)
{
	struct tlsrpt_attempt a;

	memset(&a, 0, sizeof(a));
	a.policy_domain = domain;
	a.policy_type = TLSRPT_POLICY_NONE;
	a.result = TLSRPT_SUCCESS;
	assert_true(tlsrpt_record(st, day, &a) >= 0);
}

/* _smtp._tls.domain with rua (one TXT string). */
static void
rua(const char *domain, const char *uris)
{
	struct msg m;
	char name[300], txt[1000];

	snprintf(name, sizeof(name), "_smtp._tls.%s", domain);
	snprintf(txt, sizeof(txt), "v=TLSRPTv1; rua=%s", uris);
	begin(&m, 0x1234, 0, 0, name, DNS_T_TXT, 1, 0, 0);
	rr_txt(&m, name, txt, NULL, 300);
	answer(name, DNS_T_TXT, DNS_INSECURE, &m);
}

/* _smtp._tls.domain answers st (no records), after ms */
static void
txt_fails(const char *domain, enum dns_status status, uint64_t ms)
{
	char name[300];

	snprintf(name, sizeof(name), "_smtp._tls.%s", domain);
	answer(name, DNS_T_TXT, status, NULL);
	fake_of(name, DNS_T_TXT)->delay_ms = ms;
}

/* 65 TXT records at _smtp._tls.domain, one more than an answer keeps
 * (DNS_MAX_RR): first (NULL: junk), 63 junk, then last (NULL: one that
 * runs past its rdata, unreadable) */
static void
rua_cut(const char *domain, const char *first, const char *last)
{
	struct msg m;
	char name[300];
	int i;

	snprintf(name, sizeof(name), "_smtp._tls.%s", domain);
	begin(&m, 0x1235, 0, 0, name, DNS_T_TXT, 65, 0, 0);
	if (first != NULL)
		rr_txt(&m, name, first, NULL, 300);
	else
		rr_txt_q(&m, "\001x", 2, 300);
	for (i = 0; i < 63; i++)
		rr_txt_q(&m, "\001x", 2, 300);
	if (last != NULL)
		rr_txt(&m, name, last, NULL, 300);
	else
		rr_txt_q(&m, "\011v=TLSRPT", 9, 300);
	answer(name, DNS_T_TXT, DNS_INSECURE, &m);
}

/* TXT queries of _smtp._tls.domain so far */
static int
txt_asked(const char *domain)
{
	char name[300];
	struct fake *f;

	snprintf(name, sizeof(name), "_smtp._tls.%s", domain);
	f = fake_of(name, DNS_T_TXT);
	return f != NULL ? f->asked : 0;
}

/* domain's single MX host mx.<domain> at ip */
static void
mxat(const char *domain, const char *ip)
{
	char h[300];

	snprintf(h, sizeof(h), "mx.%s", domain);
	mx(domain, 0, h, NULL);
	a(h, 0, ip);
}

static void
run_done(void *arg, const struct report_totals *t)
{
	(void)arg;
	tot = *t;
	finished = 1;
	ev_loop_stop(loop);
}

static void
guard(void *arg)
{
	(void)arg;
	ev_loop_stop(loop);
}

static void
opts_fast(struct report_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->backoff_ms = 300;
	o->backoff_max_ms = 300;
	o->try_ms = 400;
	o->job_ms = 1000;
}

static uint64_t setup_ms;	/* the last run's report_run() call */

static uint64_t
clock_ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* One run, to its end or guard_ms. */
static void
run(const struct report_opts *o, uint64_t guard_ms)
{
	struct report_run *r;
	struct ev_timer *g;
	char err[256];
	uint64_t t0;

	finished = 0;
	syncs = 0;
	memset(&tot, 0, sizeof(tot));
	t0 = clock_ms_now();
	r = report_run(loop, cfg, st, NULL, o, run_done, NULL, err,
	    sizeof(err));
	if (r == NULL)
		fail_msg("report_run: %s", err);
	/* took_ms (and the guard) from the run's first turn of the loop:
	 * not from the loop's cached time, that of begin_test's
	 * ev_loop_new(), nor from before report_run()'s own setup (the
	 * system's CA store, TLS contexts: seconds on a loaded machine
	 * under ASan), which the deadlines tested here do not cover */
	ev_now_update(loop);
	setup_ms = ev_now(loop) - t0;
	g = ev_timer_new(loop, guard, NULL);
	ev_timer_arm(g, guard_ms);
	t0 = ev_now(loop);
	ev_loop_run(loop);
	took_ms = ev_now(loop) - t0;
	ev_timer_free(g);
	if (!finished) {
		report_cancel(r);
		fail_msg("the run did not end within %llu ms",
		    (unsigned long long)guard_ms);
	}
}

/* Turns the loop for ms (servers answer, QUITs finish). */
static void
settle(uint64_t ms)
{
	struct ev_timer *g = ev_timer_new(loop, guard, NULL);

	ev_timer_arm(g, ms);
	ev_loop_run(loop);
	ev_timer_free(g);
}

static int
is_sent(const char *domain, int64_t day)
{
	return tlsrpt_is_sent(st, day, domain, NULL);
}

/*
 * Domain a.test (first in the due list) has two rua addresses whose MX
 * hosts accept and never answer (server 1, a tarpit); b.test's receiver
 * is good.  B's report arrives in the same run, which ends within a.test's
 * deadline, not after the 60 s session timeouts; A is parked, not sent.
 */
static void
test_tarpit_does_not_hold_up_others(void **state)
{
	struct report_opts o;
	int64_t y = today() - 1;

	(void)state;
	begin_test();
	srv[1].mode = TARPIT;
	record("a.test", y);
	record("b.test", y);
	rua("a.test", "mailto:r@tarpit.test,mailto:s@tarpit2.test");
	mxat("tarpit.test", "127.0.0.1");
	mxat("tarpit2.test", "127.0.0.1");
	rua("b.test", "mailto:r@good.test");
	mxat("good.test", "127.0.0.2");
	opts_fast(&o);
	run(&o, 10000);
	settle(200);
	assert_int_equal(srv[2].msgs, 1);
	assert_int_equal(tot.sent, 1);
	print_message("tarpit run: %llu ms (setup %llu ms)\n",
	    (unsigned long long)took_ms, (unsigned long long)setup_ms);
	assert_true(took_ms < 2500);		/* a.test's deadline: 1 s */
	assert_int_equal(tot.waiting, 1);
	assert_true(tot.parked >= 2);
	assert_true(tot.next_retry_ms > 0);
	assert_int_equal(is_sent("b.test", y), 1);
	assert_int_equal(is_sent("a.test", y), 0);	/* retried later */
	end_test();
}

/* A report slow to build (600 ms in one callback) still gives its first
 * try the whole try_ms (400 ms): the try's deadline was armed from the
 * loop's time cached before the build, and passed at once ("the try's
 * deadline (400 ms) passed" 3 ms into the try, seen on a busy host). */
static void
test_slow_build_keeps_try_time(void **state)
{
	struct report_opts o;
	int64_t y = today() - 1;

	(void)state;
	begin_test();
	record("b.test", y);
	rua("b.test", "mailto:r@good.test");
	mxat("good.test", "127.0.0.2");
	opts_fast(&o);
	o.job_ms = 5000;
	gzip_delay_ms = 600;
	run(&o, 10000);
	gzip_delay_ms = 0;
	settle(200);
	assert_int_equal(tot.sent, 1);
	assert_int_equal(srv[2].msgs, 1);
	assert_int_equal(is_sent("b.test", y), 1);
	end_test();
}

/* The MX hosts of a rua address are the rua domain's choice, an
 * attacker's as easily as anyone's: what they offer (STARTTLS or not) is
 * not recorded in the TLS history, which they would otherwise fill with
 * records that expect TLS (never evicted), for the window. */
static void
test_report_legs_record_nothing(void **state)
{
	struct report_opts o;
	int64_t y = today() - 1;

	(void)state;
	begin_test();
	recorded = 0;
	record("b.test", y);
	rua("b.test", "mailto:r@good.test");
	mxat("good.test", "127.0.0.2");
	opts_fast(&o);
	run(&o, 10000);
	assert_int_equal(srv[2].msgs, 1);
	assert_int_equal(recorded, 0);
	end_test();
}

/*
 * The run makes its mail legs' TLS context after the drop (the daemon's
 * run, `report send`), as `user`: a local certificate's key (tls_cert_file,
 * tls_key_file: the client side's STARTTLS, root's 0600 as keys are)
 * cannot be read there, and the run needs no server side.  Making it
 * failed every run, every day, with "loading tls_key_file".  Here files
 * that do not exist stand for files the run's user cannot read.
 */
static void
test_server_key_not_read(void **state)
{
	struct report_opts o;
	struct report_run *r;
	struct ev_timer *g;
	char err[256];
	int64_t y = today() - 1;

	(void)state;
	begin_test();
	setstr(&cfg->tls_cert_file, "/nonexistent/mxguard-local.pem");
	setstr(&cfg->tls_key_file, "/nonexistent/mxguard-local.key");
	record("b.test", y);
	rua("b.test", "mailto:r@good.test");
	mxat("good.test", "127.0.0.2");
	opts_fast(&o);
	finished = 0;
	memset(&tot, 0, sizeof(tot));
	r = report_run(loop, cfg, st, NULL, &o, run_done, NULL, err,
	    sizeof(err));
	/* put back before any assertion: the later tests share cfg */
	setstr(&cfg->tls_cert_file, "");
	setstr(&cfg->tls_key_file, "");
	if (r == NULL)
		fail_msg("report_run: %s", err);
	g = ev_timer_new(loop, guard, NULL);
	ev_timer_arm(g, 10000);
	ev_loop_run(loop);
	ev_timer_free(g);
	if (!finished) {
		report_cancel(r);
		fail_msg("the run did not end within 10 s");
	}
	settle(200);
	assert_int_equal(tot.sent, 1);
	assert_int_equal(srv[2].msgs, 1);
	assert_int_equal(is_sent("b.test", y), 1);
	end_test();
}

/* Each deadline on its own: a try's (both tarpit URIs are tried, each
 * for try_ms), and the pair's (the first try outlives it: the second URI
 * is parked without a try). */
static void
test_try_and_job_deadlines(void **state)
{
	struct report_opts o;
	int64_t y = today() - 1;

	(void)state;
	begin_test();
	srv[1].mode = TARPIT;
	record("a.test", y);
	rua("a.test", "mailto:r@tarpit.test,mailto:s@tarpit2.test");
	mxat("tarpit.test", "127.0.0.1");
	mxat("tarpit2.test", "127.0.0.1");
	opts_fast(&o);
	o.try_ms = 400;
	o.job_ms = 8000;
	run(&o, 10000);
	print_message("try deadlines: %llu ms\n", (unsigned long long)took_ms);
	assert_true(took_ms < 2500);
	assert_int_equal(srv[1].conns, 2);
	assert_int_equal(tot.parked, 2);
	end_test();

	begin_test();
	srv[1].mode = TARPIT;
	record("a.test", y);
	rua("a.test", "mailto:r@tarpit.test,mailto:s@tarpit2.test");
	mxat("tarpit.test", "127.0.0.1");
	mxat("tarpit2.test", "127.0.0.1");
	opts_fast(&o);
	o.try_ms = 8000;
	o.job_ms = 600;
	run(&o, 10000);
	print_message("job deadline: %llu ms\n", (unsigned long long)took_ms);
	assert_true(took_ms < 2500);
	assert_int_equal(srv[1].conns, 1);
	assert_int_equal(tot.parked, 2);
	assert_int_equal(tot.waiting, 1);
	end_test();
}

/*
 * A receiver that fails (421) and then recovers: the report is not lost,
 * the pair stays due while its URI is parked, a run before the next try
 * leaves it alone, and a later run delivers it, only to the URI that had
 * failed (the other one got it in the first run).  The backoff
 * (RETRY_BACKOFF_MS) is what the end of the first run and the setup of
 * the second (CA store, TLS contexts: up to 1 s seen with 4 ASan copies
 * at once, 2 s with 8, past the 2 s it was) may take while the retry is
 * still "not yet due"; the third run waits only until the try is due.
 */
#define RETRY_BACKOFF_MS	6000

static void
test_failed_uri_retried_later(void **state)
{
	struct report_opts o;
	struct timespec first_end, now;
	int64_t due_in;
	size_t n;
	struct tlsrpt_due due[4];
	int64_t y = today() - 1;

	(void)state;
	begin_test();
	srv[1].mode = TEMPFAIL;
	record("c.test", y);
	rua("c.test", "mailto:r@flaky.test,mailto:r@good.test");
	mxat("flaky.test", "127.0.0.1");
	mxat("good.test", "127.0.0.2");
	opts_fast(&o);
	o.backoff_ms = o.backoff_max_ms = RETRY_BACKOFF_MS;
	run(&o, 10000);
	clock_gettime(CLOCK_MONOTONIC, &first_end);
	settle(100);
	assert_int_equal(srv[2].msgs, 1);
	assert_int_equal(srv[1].msgs, 0);
	assert_int_equal(tot.sent, 1);
	assert_int_equal(tot.failed, 0);
	assert_int_equal(tot.parked, 1);
	assert_int_equal(is_sent("c.test", y), 0);
	assert_int_equal(tlsrpt_due_list(st, today(), due, 4, &n), 1);

	/* the receiver is back, but the URI's next try is not yet due */
	srv[1].mode = GOOD;
	run(&o, 10000);
	print_message("second run's setup: %llu ms\n",
	    (unsigned long long)setup_ms);
	assert_int_equal(tot.waiting, 1);
	assert_int_equal(srv[1].conns, 1);
	assert_int_equal(is_sent("c.test", y), 0);

	/* until the try is due: RETRY_BACKOFF_MS from the first run's
	 * failure, which came before that run's end */
	clock_gettime(CLOCK_MONOTONIC, &now);
	due_in = RETRY_BACKOFF_MS + 100 - ((now.tv_sec - first_end.tv_sec) *
	    1000 + (now.tv_nsec - first_end.tv_nsec) / 1000000);
	if (due_in > 0)
		settle((uint64_t)due_in);
	run(&o, 10000);
	settle(100);
	assert_int_equal(srv[1].msgs, 1);
	assert_int_equal(srv[2].msgs, 1);	/* not sent twice */
	/* the same report under the same id (RFC 8460 section 4.4): a
	 * receiver can tell a retry from another report */
	print_message("report-id: first run %s, retry %s\n", srv[2].last_id,
	    srv[1].last_id);
	assert_true(srv[2].last_id[0] != '\0');
	assert_string_equal(srv[1].last_id, srv[2].last_id);
	assert_int_equal(tot.sent, 1);
	assert_int_equal(tot.waiting, 0);
	assert_int_equal(is_sent("c.test", y), 1);
	end_test();
}

/* A receiver that never recovers is given up give_up_ms after the first
 * try, and the pair is then marked sent. */
static void
test_given_up_after_window(void **state)
{
	struct report_opts o;
	int64_t y = today() - 1;
	int i;

	(void)state;
	begin_test();
	srv[1].mode = TEMPFAIL;
	record("d.test", y);
	rua("d.test", "mailto:r@down.test");
	mxat("down.test", "127.0.0.1");
	opts_fast(&o);
	o.backoff_ms = 200;
	o.backoff_max_ms = 400;
	o.give_up_ms = 1000;
	for (i = 0; i < 10 && is_sent("d.test", y) != 1; i++) {
		run(&o, 10000);
		if (tot.next_retry_ms > 0)
			settle(450);
	}
	assert_int_equal(is_sent("d.test", y), 1);
	assert_int_equal(tot.failed, 1);
	assert_true(srv[1].conns >= 2 && srv[1].conns <= 6);
	end_test();
}

/* --now: today's counts go out as a preview; today is not marked sent,
 * so what is counted later today is still reported tomorrow. */
static void
test_now_is_a_preview(void **state)
{
	struct report_opts o;
	struct tlsrpt_due due[4];
	size_t n;
	int64_t t = today();
	char first[128];

	(void)state;
	begin_test();
	record("e.test", t);
	rua("e.test", "mailto:r@good.test");
	mxat("good.test", "127.0.0.2");
	opts_fast(&o);
	o.now = 1;
	run(&o, 10000);
	settle(100);
	assert_int_equal(srv[2].msgs, 1);
	assert_int_equal(tot.sent, 1);
	assert_int_equal(is_sent("e.test", t), 0);
	snprintf(first, sizeof(first), "%s", srv[2].last_id);
	record("e.test", t);	/* later today */
	assert_int_equal(tlsrpt_due_list(st, t + 1, due, 4, &n), 1);
	assert_string_equal(due[0].domain, "e.test");
	/* a second preview is sent again: no state is kept for today, not
	 * even its report-id (the day's report, with more in it, must not
	 * share the id of a preview a receiver may have kept) */
	run(&o, 10000);
	settle(100);
	assert_int_equal(srv[2].msgs, 2);
	assert_true(first[0] != '\0');
	assert_string_not_equal(first, srv[2].last_id);
	end_test();
}

/* A mailto whose MX resolves to 127.0.0.2 is refused without
 * tlsrpt_private_destinations: no connection, a final failure; but not
 * when another of the MX host's address lookups failed (aaaa_fails:
 * SERVFAIL): the address it would have named may be global, so the
 * refusal is no final answer (parked, retried), as a POST's. */
static void
mailto_private_refused(int aaaa_fails)
{
	struct report_opts o;
	int64_t y = today() - 1;

	begin_test();
	record("f.test", y);
	rua("f.test", "mailto:r@internal.test");
	mxat("internal.test", "127.0.0.2");
	if (aaaa_fails)
		fail_with("mx.internal.test", DNS_T_AAAA, -1);
	opts_fast(&o);
	cfg->tlsrpt_private_destinations = 0;
	run(&o, 10000);
	cfg->tlsrpt_private_destinations = 1;
	settle(100);
	assert_int_equal(dials, 0);
	assert_int_equal(srv[2].conns, 0);
	assert_int_equal(tot.sent, 0);
	assert_int_equal(tot.failed, aaaa_fails ? 0 : 1);
	assert_int_equal(tot.parked, aaaa_fails ? 1 : 0);
	/* final: no retries; or retried later */
	assert_int_equal(is_sent("f.test", y), aaaa_fails ? 0 : 1);
	end_test();
}

static void
test_mailto_private_refused(void **state)
{
	(void)state;
	mailto_private_refused(0);
}

static void
test_mailto_private_refused_lookup_failed(void **state)
{
	(void)state;
	mailto_private_refused(1);
}

/* An https rua on a port not in tlsrpt_https_ports (default 443) is
 * refused before any lookup of its host: a final failure.  Listed, the
 * same URI is tried (its host has no address here: parked). */
static void
test_https_port_refused(void **state)
{
	struct report_opts o;
	int64_t y = today() - 1;
	char *saved;

	(void)state;
	begin_test();
	record("p.test", y);
	rua("p.test", "https://rpt.p.test:6379/r");
	opts_fast(&o);
	queries = 0;
	run(&o, 10000);
	assert_int_equal(queries, 1);		/* the TXT record only */
	assert_int_equal(tot.failed, 1);
	assert_int_equal(tot.parked, 0);
	assert_int_equal(is_sent("p.test", y), 1);	/* final: no retries */
	end_test();

	begin_test();
	record("p.test", y);
	rua("p.test", "https://rpt.p.test:6379/r");
	assert_int_equal(cfg->tlsrpt_https_ports.n, 1);
	saved = cfg->tlsrpt_https_ports.v[0];
	cfg->tlsrpt_https_ports.v[0] = "6379";
	opts_fast(&o);
	queries = 0;
	run(&o, 10000);
	cfg->tlsrpt_https_ports.v[0] = saved;
	assert_int_equal(queries, 3);		/* TXT, then A and AAAA */
	assert_int_equal(tot.failed, 0);
	assert_int_equal(tot.parked, 1);
	assert_int_equal(is_sent("p.test", y), 0);
	end_test();
}

/*
 * An https rua whose host has only addresses we may not go to is refused
 * for good, as a mailto's: one try, a final failure, the pair marked
 * sent.  On the old code it was parked and retried for 24 h, logging its
 * refusals at every try.  A host whose addresses cannot be had (SERVFAIL)
 * is no such case: parked; and with tlsrpt_private_destinations a failed
 * POST to a private address is an ordinary failure.
 */
static void
test_https_private_refused(void **state)
{
	struct report_opts o;
	int64_t y = today() - 1;
	char *saved;

	(void)state;
	begin_test();
	record("i.test", y);
	rua("i.test", "https://report.internal.test/tlsrpt");
	a("report.internal.test", 0, "127.0.0.2");
	record("j.test", y);
	rua("j.test", "https://report.broken.test/tlsrpt");
	fail_with("report.broken.test", DNS_T_A, -1);
	fail_with("report.broken.test", DNS_T_AAAA, -1);
	opts_fast(&o);
	cfg->tlsrpt_private_destinations = 0;
	run(&o, 10000);
	cfg->tlsrpt_private_destinations = 1;
	assert_int_equal(tot.failed, 1);
	assert_int_equal(tot.parked, 1);
	assert_int_equal(is_sent("i.test", y), 1);	/* final */
	assert_int_equal(is_sent("j.test", y), 0);	/* retried later */
	/* the POST said why it gave up: its host was asked once */
	assert_int_equal(fake_of("report.internal.test", DNS_T_A)->asked, 1);
	end_test();

	/* (port 1, where nothing listens: a connection refused; the
	 * port must be one tlsrpt_https_ports allows) */
	begin_test();
	record("i.test", y);
	rua("i.test", "https://report.internal.test:1/tlsrpt");
	a("report.internal.test", 0, "127.0.0.2");
	opts_fast(&o);
	saved = cfg->tlsrpt_https_ports.v[0];
	cfg->tlsrpt_https_ports.v[0] = "1";
	run(&o, 10000);
	cfg->tlsrpt_https_ports.v[0] = saved;
	assert_int_equal(tot.failed, 0);
	assert_int_equal(tot.parked, 1);
	assert_int_equal(is_sent("i.test", y), 0);
	end_test();
}

/*
 * The pair's deadline holds over the lookups the run makes: a TXT lookup
 * that outlives it is a failed lookup (the pair kept for a retry), and an
 * https try whose host lookup is slow ends at it (private destinations
 * refused: the refusal would be final, but it never came); such a try is
 * an ordinary failure, parked, not final.
 */
static void
test_lookup_deadlines(void **state)
{
	struct report_opts o;
	struct msg m;
	int64_t y = today() - 1;

	(void)state;
	begin_test();
	record("s.test", y);
	txt_fails("s.test", DNS_TIMEOUT, 5000);
	opts_fast(&o);
	o.job_ms = 500;
	run(&o, 10000);
	print_message("TXT past the deadline: %llu ms\n",
	    (unsigned long long)took_ms);
	assert_true(took_ms < 1500);
	assert_int_equal(tot.deferred, 1);
	assert_true(tot.next_retry_ms > 0);
	assert_int_equal(is_sent("s.test", y), 0);
	end_test();

	begin_test();
	record("i.test", y);
	rua("i.test", "https://report.slow.test/tlsrpt");
	a("report.slow.test", 0, "127.0.0.2");
	begin(&m, 0x1234, 0, 0, "report.slow.test", DNS_T_AAAA, 0, 0, 0);
	answer("report.slow.test", DNS_T_AAAA, DNS_NODATA, &m);
	fake_of("report.slow.test", DNS_T_AAAA)->delay_ms = 5000;
	opts_fast(&o);
	o.job_ms = 1000;
	cfg->tlsrpt_private_destinations = 0;
	run(&o, 10000);
	cfg->tlsrpt_private_destinations = 1;
	print_message("https try ended after %llu ms\n",
	    (unsigned long long)took_ms);
	/* at the pair's deadline (1 s), not at the answer (5 s) */
	assert_true(took_ms >= 1000 && took_ms < 3000);
	assert_int_equal(fake_of("report.slow.test", DNS_T_AAAA)->asked, 1);
	assert_int_equal(tot.parked, 1);
	assert_int_equal(tot.failed, 0);
	assert_int_equal(is_sent("i.test", y), 0);
	end_test();
}

/* The same URI eight times (and once more spelled otherwise) is one
 * report; a mailto try walks at most 2 hosts x 2 addresses. */
static void
test_dedup_and_address_cap(void **state)
{
	struct report_opts o;
	struct msg m;
	int64_t y = today() - 1;

	(void)state;
	begin_test();
	/* today's, a preview (--now): no delivery state to fall back on */
	record("g.test", today());
	rua("g.test", "mailto:r@good.test,mailto:r@good.test,"
	    "mailto:r@good.test,mailto:r@good.test,mailto:r@good.test,"
	    "mailto:r@good.test,mailto:r@GOOD.test,mailto:r@good.test");
	mxat("good.test", "127.0.0.2");
	opts_fast(&o);
	o.now = 1;
	run(&o, 10000);
	settle(100);
	assert_int_equal(srv[2].msgs, 1);
	assert_int_equal(tot.sent, 1);
	end_test();

	/* three MX hosts, each with two addresses, all tarpits (server 1):
	 * only the first two hosts' two addresses are dialed */
	begin_test();
	srv[1].mode = TEMPFAIL;
	record("h.test", y);
	rua("h.test", "mailto:r@many.test");
	begin(&m, 0x1234, 0, 0, "many.test", DNS_T_MX, 3, 0, 0);
	rr_name(&m, "many.test", DNS_T_MX, 10, "m1.many.test", 300);
	rr_name(&m, "many.test", DNS_T_MX, 20, "m2.many.test", 300);
	rr_name(&m, "many.test", DNS_T_MX, 30, "m3.many.test", 300);
	answer("many.test", DNS_T_MX, DNS_INSECURE, &m);
	{
		const char *hs[] = { "m1.many.test", "m2.many.test",
		    "m3.many.test" };
		int i;

		for (i = 0; i < 3; i++) {
			begin(&m, 0x1234, 0, 0, hs[i], DNS_T_A, 2, 0, 0);
			rr_a(&m, hs[i], "127.0.0.1", 300);
			rr_a(&m, hs[i], "127.0.1.1", 300);
			answer(hs[i], DNS_T_A, DNS_INSECURE, &m);
		}
	}
	opts_fast(&o);
	o.try_ms = 3000;
	o.job_ms = 5000;
	run(&o, 10000);
	assert_int_equal(dials, 4);
	assert_int_equal(tot.parked, 1);
	end_test();
}

/* One run reporting org.test's day y to mailto:r@good.test (MX
 * 127.0.0.2), its JSON kept in last_json. */
static void
org_report(struct report_opts *o, int64_t y)
{
	begin_test();
	record("org.test", y);
	rua("org.test", "mailto:r@good.test");
	mxat("good.test", "127.0.0.2");
	opts_fast(o);
	last_json[0] = '\0';
	run(o, 10000);
}

/*
 * organization-name, with tlsrpt_org_name empty, is the submitter: the
 * domain of tlsrpt_from, which the operator chose to show receivers, and
 * not this host's name, which every domain asking for reports learned
 * (an inside name such as gw3.dmz.corp.example, or a short one).  With
 * no tlsrpt_from either, the submitter is the host name, as it is in
 * the sender's address (report_from()).
 */
static void
test_org_name_default(void **state)
{
	struct report_opts o;
	char host[256] = "", want[400], *saved = strdup(cfg->tlsrpt_org_name);
	int64_t y = today() - 1;

	(void)state;
	assert_int_equal(gethostname(host, sizeof(host) - 1), 0);
	setstr(&cfg->tlsrpt_org_name, "");
	org_report(&o, y);
	assert_int_equal(srv[2].msgs, 1);
	if (strstr(last_json, "\"organization-name\": \"sender.test\"") ==
	    NULL)
		fail_msg("organization-name is not the submitter:\n%s",
		    last_json);
	end_test();

	/* no tlsrpt_from: noreply-tlsrpt@ the host name, and that name */
	setstr(&cfg->tlsrpt_from, "");
	org_report(&o, y);
	snprintf(want, sizeof(want), "\"organization-name\": \"%s\"", host);
	if (strstr(last_json, want) == NULL)
		fail_msg("no %s:\n%s", want, last_json);
	end_test();
	setstr(&cfg->tlsrpt_from, "noreply@sender.test");
	setstr(&cfg->tlsrpt_org_name, saved);
	free(saved);
}

/*
 * The report's EHLO name (RFC 5321 section 4.1.1.1: a fully qualified
 * domain name or an address literal).  It was gethostname()'s whatever
 * it was, and a Debian host's is a bare one ("gw"): a receiver that
 * refuses such a name (Postfix's reject_non_fqdn_helo_hostname) refused
 * EHLO and HELO, and the report was tried for 24 hours and given up.
 * Now: the host name when it is a dotted one, else the submitter (the
 * domain of tlsrpt_from) when it is, else the address literal of the
 * connection's local address (as mxguard check does).  With tlsrpt_from
 * set, its domain comes first: EHLO goes to the MX of whatever rua a
 * domain names, and the host name may be an inside one (red before:
 * EHLO mx.gw.test with tlsrpt_from noreply@sender.test).
 */
static void
test_ehlo_name(void **state)
{
	static const struct {
		const char	*host, *from, *want;
	} c[] = {
		{ "gw", "noreply@sender.test", "sender.test" },
		{ "gw", "", "[127.0.0.1]" },
		{ "mx.gw.test", "noreply@sender.test", "sender.test" },
		{ "mx.gw.test", "", "mx.gw.test" },
		{ "mx.gw.test", "noreply@localhost", "mx.gw.test" },
	};
	struct report_opts o;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		fake_host = c[i].host;
		setstr(&cfg->tlsrpt_from, c[i].from);
		begin_test();
		record("ehlo.test", today() - 1);
		rua("ehlo.test", "mailto:r@good.test");
		mxat("good.test", "127.0.0.2");
		srv[2].ehlo[0] = '\0';
		opts_fast(&o);
		run(&o, 10000);
		assert_int_equal(srv[2].msgs, 1);
		if (strcmp(srv[2].ehlo, c[i].want) != 0)
			fail_msg("host %s, tlsrpt_from \"%s\": EHLO %s, not %s",
			    c[i].host, c[i].from, srv[2].ehlo, c[i].want);
		end_test();
	}
	fake_host = NULL;
	setstr(&cfg->tlsrpt_from, "noreply@sender.test");
}

/*
 * A pair whose eight URIs all fail writes its delivery state with one
 * flush to disk (and one more, the first time, for its report-id), not
 * one per value: 26 fdatasyncs on worker 0's loop before.  The state is
 * all there: a run before the next try leaves the pair alone, the next
 * one tries all eight again.
 */
static void
test_one_flush_per_pair(void **state)
{
	struct report_opts o;
	int64_t y = today() - 1;
	char uris[600] = "", dom[32];
	int i;

	(void)state;
	begin_test();
	srv[1].mode = TEMPFAIL;
	record("k.test", y);
	for (i = 1; i <= 8; i++) {
		snprintf(dom, sizeof(dom), "f%d.test", i);
		mxat(dom, "127.0.0.1");
		snprintf(uris + strlen(uris), sizeof(uris) - strlen(uris),
		    "%smailto:r@%s", i > 1 ? "," : "", dom);
	}
	rua("k.test", uris);
	opts_fast(&o);
	o.backoff_ms = o.backoff_max_ms = 1500;
	o.try_ms = o.job_ms = 5000;
	run(&o, 10000);
	print_message("first run: %d flushes\n", syncs);
	assert_int_equal(tot.parked, 8);
	assert_int_equal(srv[1].conns, 8);
	assert_true(syncs <= 2);

	run(&o, 10000);		/* before the next try: nothing to do */
	assert_int_equal(tot.waiting, 1);
	assert_int_equal(srv[1].conns, 8);
	assert_true(syncs <= 1);

	settle(1600);
	run(&o, 10000);
	print_message("retry run: %d flushes\n", syncs);
	assert_int_equal(tot.parked, 8);
	assert_int_equal(srv[1].conns, 16);
	assert_true(syncs <= 1);
	assert_int_equal(is_sent("k.test", y), 0);
	end_test();
}

/*
 * The review's case: six pairs from three days ago whose TXT lookups time
 * out (300 ms here, dns_timeout in production) and one legitimate pair
 * from yesterday, a run of 1.4 s.  On the old code every run took the
 * oldest first and never got past them (due=7 deferred=7 sent=0, run
 * after run).  Now a failed lookup is a retry, and pairs never tried go
 * before retries: the legitimate report goes out before any of the
 * attackers' pairs is looked up again, although their retries are due
 * again by then (in the second run, when a run makes 4 lookups or more;
 * on a loaded machine it may take a third).
 */
static int slow_asked_at_msg[7];	/* slowN.test's lookups, at ok's */

static void
note_slow_asked(void)
{
	char dom[32];
	int i;

	for (i = 1; i <= 6; i++) {
		snprintf(dom, sizeof(dom), "slow%d.test", i);
		slow_asked_at_msg[i] = txt_asked(dom);
	}
}

static void
test_txt_timeouts_do_not_starve(void **state)
{
	struct report_opts o;
	int64_t y = today() - 1;
	char dom[32];
	int i, runs;

	(void)state;
	begin_test();
	for (i = 1; i <= 6; i++) {
		snprintf(dom, sizeof(dom), "slow%d.test", i);
		record(dom, y - 2);
		txt_fails(dom, DNS_TIMEOUT, 300);
	}
	record("ok.test", y);
	rua("ok.test", "mailto:r@good.test");
	mxat("good.test", "127.0.0.2");
	opts_fast(&o);
	o.backoff_ms = o.backoff_max_ms = 300;	/* retries due again */
	o.run_ms = 1400;	/* 3 to 5 lookups */
	memset(slow_asked_at_msg, 0, sizeof(slow_asked_at_msg));
	on_msg = note_slow_asked;
	/* a run makes one lookup at least: 7 runs reach ok.test */
	for (runs = 1; runs <= 7; runs++) {
		run(&o, 10000);
		print_message("run %d: due=%d deferred=%d sent=%d (%llu ms)\n",
		    runs, tot.due, tot.deferred, tot.sent,
		    (unsigned long long)took_ms);
		assert_true(took_ms < 2900);	/* run_ms + one lookup */
		if (tot.sent > 0)
			break;
	}
	settle(100);
	assert_int_equal(srv[2].msgs, 1);
	/* each attacker's pair was looked up once, none retried, before the
	 * report went out (the old code: 7 runs, and it never did) */
	for (i = 1; i <= 6; i++)
		assert_int_equal(slow_asked_at_msg[i], 1);
	assert_int_equal(is_sent("ok.test", y), 1);
	assert_int_equal(is_sent("slow1.test", y - 2), 0);	/* retried */
	end_test();
}

/*
 * A TXT lookup that fails (SERVFAIL) is retried as a failed URI is: not
 * before its next try (a run before then does not look it up), with a
 * growing backoff, and given up give_up_ms after the first failure: the
 * pair is dropped (marked sent without a report) and counted.  On the old
 * code it stayed due for ever and was looked up in every run.
 */
static void
test_txt_failure_backs_off_and_gives_up(void **state)
{
	struct report_opts o;
	int64_t y = today() - 1;
	int i;

	(void)state;
	begin_test();
	record("z.test", y);
	txt_fails("z.test", DNS_SERVFAIL, 0);
	opts_fast(&o);
	/* longer than the end of a run and the setup of the next on a
	 * loaded machine under ASan (up to 1 s seen: 600 ms was not) */
	o.backoff_ms = 2000;
	o.backoff_max_ms = 2500;
	o.give_up_ms = 4000;
	run(&o, 10000);
	assert_int_equal(tot.deferred, 1);
	assert_true(tot.next_retry_ms > 0);
	assert_int_equal(txt_asked("z.test"), 1);
	assert_int_equal(is_sent("z.test", y), 0);

	run(&o, 10000);		/* before its next try */
	assert_int_equal(tot.waiting, 1);
	assert_int_equal(txt_asked("z.test"), 1);

	for (i = 0; i < 12 && is_sent("z.test", y) != 1; i++) {
		settle(1100);
		run(&o, 10000);
	}
	print_message("%d lookups\n", txt_asked("z.test"));
	assert_int_equal(is_sent("z.test", y), 1);
	assert_int_equal(tot.no_record, 1);		/* dropped */
	assert_true(txt_asked("z.test") >= 2 && txt_asked("z.test") <= 6);
	end_test();
}

/* A lookup that failed and then answers: the report goes out. */
static void
test_txt_failure_then_record(void **state)
{
	struct report_opts o;
	int64_t y = today() - 1;

	(void)state;
	begin_test();
	record("w.test", y);
	txt_fails("w.test", DNS_TIMEOUT, 0);
	mxat("good.test", "127.0.0.2");
	opts_fast(&o);
	run(&o, 10000);
	assert_int_equal(tot.deferred, 1);
	assert_int_equal(is_sent("w.test", y), 0);
	rua("w.test", "mailto:r@good.test");
	settle(350);
	run(&o, 10000);
	settle(100);
	assert_int_equal(tot.sent, 1);
	assert_int_equal(srv[2].msgs, 1);
	assert_int_equal(is_sent("w.test", y), 1);
	end_test();
}

/*
 * The domain had a valid record when its sessions were counted; at
 * delivery the lookup says there is none (NXDOMAIN, then two TLSRPT
 * records: RFC 8460 section 3 says no reports then).  A passing DNS
 * mistake, or an attacker answering for an unsigned zone to keep the
 * report of its attack from going out: the pair is retried, and the
 * report goes out when the record is back.  On the old code the first
 * such answer marked the pair sent for good.  A preview with no record
 * does not mark today sent either.
 */
static void
test_txt_no_record_is_temporary(void **state)
{
	struct report_opts o;
	struct msg m;
	int64_t y = today() - 1;
	char name[64] = "_smtp._tls.v.test";

	(void)state;
	begin_test();
	record("v.test", y);
	mxat("good.test", "127.0.0.2");
	opts_fast(&o);
	run(&o, 10000);				/* NXDOMAIN */
	assert_int_equal(tot.deferred, 1);
	assert_int_equal(tot.no_record, 0);
	assert_true(tot.next_retry_ms > 0);
	assert_int_equal(is_sent("v.test", y), 0);

	begin(&m, 0x1234, 0, 0, name, DNS_T_TXT, 2, 0, 0);
	rr_txt(&m, name, "v=TLSRPTv1; rua=mailto:r@good.test", NULL, 300);
	rr_txt(&m, name, "v=TLSRPTv1; rua=mailto:s@good.test", NULL, 300);
	answer(name, DNS_T_TXT, DNS_INSECURE, &m);
	settle(350);
	run(&o, 10000);				/* two records */
	assert_int_equal(tot.deferred, 1);
	assert_int_equal(is_sent("v.test", y), 0);
	assert_int_equal(txt_asked("v.test"), 1);

	rua("v.test", "mailto:r@good.test");
	settle(350);
	run(&o, 10000);
	settle(100);
	assert_int_equal(tot.sent, 1);
	assert_int_equal(srv[2].msgs, 1);
	assert_int_equal(is_sent("v.test", y), 1);

	/* a preview keeps no state: today is not marked sent */
	record("p.test", today());
	o.now = 1;
	run(&o, 10000);
	assert_int_equal(tot.deferred, 1);
	assert_int_equal(is_sent("p.test", today()), 0);
	end_test();
}

/*
 * An _smtp._tls answer of more TXT records than an answer keeps (64) was
 * judged on the kept ones: lone.test's only TLSRPT record, 65th, went
 * unseen (no report, retried until given up), two.test's second one,
 * 65th, too (RFC 8460 section 3: two records, no reports; one was sent).
 * Now the whole answer is read; keptone.test's 65th record cannot be
 * read: a failed lookup, deferred, not the kept record's report.  Red
 * before: lone.test deferred, two.test and keptone.test sent.
 */
static void
test_txt_cut(void **state)
{
	struct report_opts o;
	int64_t y = today() - 1;

	(void)state;
	begin_test();
	record("lone.test", y);
	record("two.test", y);
	record("keptone.test", y);
	rua_cut("lone.test", NULL, "v=TLSRPTv1; rua=mailto:r@good.test");
	rua_cut("two.test", "v=TLSRPTv1; rua=mailto:r@good.test",
	    "v=TLSRPTv1; rua=mailto:s@good.test");
	rua_cut("keptone.test", "v=TLSRPTv1; rua=mailto:r@good.test", NULL);
	mxat("good.test", "127.0.0.2");
	opts_fast(&o);
	run(&o, 10000);
	settle(100);
	assert_int_equal(tot.sent, 1);
	assert_int_equal(tot.deferred, 2);
	assert_int_equal(srv[2].msgs, 1);
	assert_int_equal(is_sent("lone.test", y), 1);
	assert_int_equal(is_sent("two.test", y), 0);
	assert_int_equal(is_sent("keptone.test", y), 0);
	end_test();
}

/* No record for the whole window: the pair is dropped, and counted. */
static void
test_txt_no_record_given_up(void **state)
{
	struct report_opts o;
	int64_t y = today() - 1;
	int i;

	(void)state;
	begin_test();
	record("u.test", y);
	txt_fails("u.test", DNS_NODATA, 0);
	opts_fast(&o);
	o.backoff_ms = 200;
	o.backoff_max_ms = 400;
	o.give_up_ms = 1000;
	for (i = 0; i < 12 && is_sent("u.test", y) != 1; i++) {
		run(&o, 10000);
		if (is_sent("u.test", y) != 1)
			settle(450);
	}
	assert_int_equal(is_sent("u.test", y), 1);
	assert_int_equal(tot.no_record, 1);
	assert_true(txt_asked("u.test") >= 2);
	end_test();
}

/*
 * The DKIM key is read once per run, at its first mailto URI, not for
 * every one: the first receiver spoils the key file when it gets its
 * message, and the second URI's message (and the next pair's) still goes
 * out, signed with the key the run read.  On the old code the file was
 * read again for each message: the second one could not be built and
 * was skipped.  The next run reads the file again (and finds no key).
 */
static void
test_dkim_key_read_once(void **state)
{
	struct report_opts o;
	int64_t y = today() - 1;

	(void)state;
	begin_test();
	record("m.test", y);
	record("n.test", y);
	rua("m.test", "mailto:r@good.test,mailto:r@other.test");
	rua("n.test", "mailto:s@other.test");
	mxat("good.test", "127.0.0.2");
	mxat("other.test", "127.0.0.3");
	opts_fast(&o);
	clobber_key = 1;
	run(&o, 10000);
	settle(100);
	clobber_key = 0;
	assert_int_equal(srv[2].msgs, 1);
	assert_int_equal(srv[3].msgs, 2);
	assert_int_equal(tot.sent, 3);
	assert_int_equal(tot.skipped, 0);

	record("q.test", y);
	rua("q.test", "mailto:r@good.test");
	run(&o, 10000);
	assert_int_equal(tot.skipped, 1);
	assert_int_equal(srv[2].msgs, 1);
	end_test();
}

/*
 * A receiver that trickles (a greeting that never ends, a byte every
 * 20 ms) is the report destination of five domains: the run gives it
 * dest_ms (1100 ms) in all, not a try (try_ms, 600 ms) for each of them.
 * a.test's try takes its 600 ms, b.test's only the 500 ms its
 * destination has left, c.test to e.test are parked without a try (two
 * connections); f.test's receiver is good and gets its report at once.
 * Before, each of the five took a whole try, one after the other (five
 * connections, 3 s).  The 500 ms left for b.test are the margin for a
 * loaded machine: a.test's try may end that much late and b.test still
 * gets one.  The time is only bounded half-way to the old 3 s.
 */
static void
test_destination_time_bound(void **state)
{
	static const char *const doms[] = { "a.test", "b.test", "c.test",
	    "d.test", "e.test" };
	char addr[64];
	struct report_opts o;
	int64_t y = today() - 1;
	size_t i;

	(void)state;
	begin_test();
	srv[1].mode = TRICKLE;
	for (i = 0; i < 5; i++) {
		record(doms[i], y);
		snprintf(addr, sizeof(addr), "mailto:%c@slow.test", 'a' +
		    (int)i);
		rua(doms[i], addr);
	}
	record("f.test", y);
	rua("f.test", "mailto:r@good.test");
	mxat("slow.test", "127.0.0.1");
	mxat("good.test", "127.0.0.2");
	opts_fast(&o);
	o.try_ms = 600;
	o.job_ms = 8000;
	o.dest_ms = 1100;
	run(&o, 10000);
	settle(100);
	print_message("6 reports, 5 to a trickling receiver: %llu ms\n",
	    (unsigned long long)took_ms);
	assert_int_equal(srv[1].conns, 2);
	assert_true(took_ms >= 1100 && took_ms < 2000);
	assert_int_equal(srv[2].msgs, 1);
	assert_int_equal(tot.sent, 1);
	assert_int_equal(tot.parked, 5);
	assert_int_equal(tot.waiting, 5);
	assert_int_equal(is_sent("f.test", y), 1);
	for (i = 0; i < 5; i++)
		assert_int_equal(is_sent(doms[i], y), 0);
	end_test();
}

static int a_finished;

static void
a_done(void *arg, const struct report_totals *t)
{
	(void)arg;
	(void)t;
	a_finished = 1;
}

/*
 * One report run at a time over a store: the daemon's daily run and
 * `mxguard report send` sent the same reports twice when they met.  A
 * run that finds the lock taken by another process (a flock() on the
 * lock file here) sends nothing and says so (busy, a next try); when the
 * lock is free it sends.  Two runs of one process at once: the second is
 * busy, and the report goes out once.
 */
static void
test_one_run_at_a_time(void **state)
{
	struct report_opts o;
	struct report_run *ra;
	char path[200], err[256];
	int64_t y = today() - 1;
	int fd, i;

	(void)state;
	begin_test();
	record("b.test", y);
	rua("b.test", "mailto:r@good.test");
	mxat("good.test", "127.0.0.2");
	opts_fast(&o);
	snprintf(path, sizeof(path), "%s/tlsrpt.run.lock", storedir);
	fd = open(path, O_RDWR | O_CREAT, 0600);
	assert_true(fd >= 0);
	assert_int_equal(flock(fd, LOCK_EX | LOCK_NB), 0);
	run(&o, 10000);
	settle(100);
	assert_int_equal(tot.busy, 1);
	assert_true(tot.next_retry_ms > 0);
	assert_int_equal(srv[2].conns, 0);
	assert_int_equal(is_sent("b.test", y), 0);
	close(fd);
	run(&o, 10000);
	settle(100);
	assert_int_equal(tot.busy, 0);
	assert_int_equal(srv[2].msgs, 1);
	assert_int_equal(is_sent("b.test", y), 1);
	end_test();

	begin_test();
	record("b.test", y);
	rua("b.test", "mailto:r@good.test");
	mxat("good.test", "127.0.0.2");
	opts_fast(&o);
	a_finished = 0;
	ra = report_run(loop, cfg, st, NULL, &o, a_done, NULL, err,
	    sizeof(err));
	assert_non_null(ra);
	run(&o, 10000);
	assert_int_equal(tot.busy, 1);
	for (i = 0; i < 50 && !a_finished; i++)
		settle(100);
	assert_true(a_finished);
	settle(100);
	assert_int_equal(srv[2].msgs, 1);
	assert_int_equal(is_sent("b.test", y), 1);
	/* the lock went with the first run */
	run(&o, 10000);
	assert_int_equal(tot.busy, 0);
	end_test();
}

static int64_t
refused(const char *reason)
{
	char name[160];

	snprintf(name, sizeof(name), "mxguard_tlsrpt_destinations_refused_"
	    "total{reason=\"%s\"}", reason);
	return stats_value(stats_get(name, NULL));
}

/*
 * A wildcard _smtp._tls record makes every subdomain a policy domain, each
 * with its own report, deliveries and delivery state: the day's
 * destinations are bounded (max_destinations, here 2).  a.test's URI
 * fails and b.test's is delivered: both claimed; c.test's is over the
 * bound: skipped, counted, and the pair marked sent (not retried every
 * run).  a.test's retry is no new destination: it is tried and delivered.
 */
static void
test_day_destination_bound(void **state)
{
	struct tlsrpt_limits l = { .max_destinations = 2 };
	struct tlsrpt_day_stats ds;
	struct report_opts o;
	int64_t y = today() - 1, before = refused("day-limit");

	(void)state;
	lim = &l;
	begin_test();
	srv[1].mode = TEMPFAIL;
	record("a.test", y);
	record("b.test", y);
	record("c.test", y);
	rua("a.test", "mailto:r@flaky.test");
	rua("b.test", "mailto:r@good.test");
	rua("c.test", "mailto:s@good.test");
	mxat("flaky.test", "127.0.0.1");
	mxat("good.test", "127.0.0.2");
	opts_fast(&o);
	run(&o, 10000);
	settle(100);
	assert_int_equal(srv[1].conns, 1);
	assert_int_equal(srv[2].msgs, 1);
	assert_int_equal(tot.sent, 1);
	assert_int_equal(tot.skipped, 1);
	assert_int_equal(tot.parked, 1);
	assert_int_equal(refused("day-limit") - before, 1);
	assert_int_equal(is_sent("b.test", y), 1);
	assert_int_equal(is_sent("c.test", y), 1);
	assert_int_equal(is_sent("a.test", y), 0);
	assert_int_equal(tlsrpt_day_stats(st, y, &ds), 0);
	assert_int_equal(ds.destinations, 2);
	assert_int_equal(ds.destinations_refused, 1);

	srv[1].mode = GOOD;
	settle(400);
	run(&o, 10000);
	settle(100);
	assert_int_equal(srv[1].msgs, 1);
	assert_int_equal(is_sent("a.test", y), 1);
	assert_int_equal(tlsrpt_day_stats(st, y, &ds), 0);
	assert_int_equal(ds.destinations, 2);
	assert_int_equal(refused("day-limit") - before, 1);
	end_test();
}

/*
 * A URI the run skips (mailto under tlsrpt_https_only, or without a DKIM
 * key) is never tried, so it is no destination of the day nor of the
 * pair: its sibling https URI fails (its host's lookups SERVFAIL) and is
 * retried by three runs; only that one is claimed.  Red before: the
 * skipped mailto claimed a new destination at each run (destinations 4:
 * the https once, the mailto three times), so a pair whose https receiver
 * was down ate the day's max_destinations and its own 8, run after run,
 * until a URI its record names later was refused as over the bound.
 */
static void
test_skipped_uri_not_claimed(void **state)
{
	struct tlsrpt_day_stats ds;
	struct report_opts o;
	int64_t y = today() - 1, before = refused("pair-limit");
	int i;

	(void)state;
	begin_test();
	record("k.test", y);
	rua("k.test", "mailto:r@good.test,https://report.broken.test/t");
	mxat("good.test", "127.0.0.2");
	fail_with("report.broken.test", DNS_T_A, -1);
	fail_with("report.broken.test", DNS_T_AAAA, -1);
	opts_fast(&o);
	o.retry_now = 1;
	cfg->tlsrpt_https_only = 1;
	for (i = 0; i < 8; i++) {
		run(&o, 10000);
		assert_int_equal(tot.skipped, 1);
		assert_int_equal(tot.parked, 1);
	}
	cfg->tlsrpt_https_only = 0;
	assert_int_equal(srv[2].conns, 0);
	assert_int_equal(is_sent("k.test", y), 0);
	assert_int_equal(tlsrpt_day_stats(st, y, &ds), 0);
	assert_int_equal(ds.destinations, 1);
	/* the mailto may go now: a destination new to the pair, within
	 * its 8, tried and delivered */
	run(&o, 10000);
	settle(100);
	assert_int_equal(refused("pair-limit") - before, 0);
	assert_int_equal(srv[2].msgs, 1);
	assert_int_equal(tlsrpt_day_stats(st, y, &ds), 0);
	assert_int_equal(ds.destinations, 2);
	end_test();
}

/*
 * The delivery state is kept in wall-clock ms.  A run while the clock was
 * a year ahead (a host set right by NTP since, or an attacker on the path
 * to its NTP server) parks a failed URI with its next try a year ahead;
 * once the clock is set back, a next try further ahead than the longest
 * backoff (backoff_max_ms) was written before the step: the URI is tried
 * by the next run, and a first failure dated ahead starts the retry
 * window again, so that it still ends (give_up_ms).  Red before: the pair
 * waited for the year (waiting 1, nothing sent), past tlsrpt_retention,
 * which drops it unsent; and with its first failure a year ahead a URI
 * failing on was never given up.
 */
static void
test_clock_stepped_back(void **state)
{
	struct report_opts o;
	int64_t y = today() - 1;

	(void)state;
	begin_test();
	srv[1].mode = TEMPFAIL;
	record("a.test", y);
	record("b.test", y);
	rua("a.test", "mailto:r@flaky.test");
	rua("b.test", "mailto:r@down.test");
	mxat("flaky.test", "127.0.0.1");
	mxat("down.test", "127.0.0.1");
	opts_fast(&o);
	o.give_up_ms = 1500;
	time_step = 366 * 86400;
	run(&o, 10000);
	assert_int_equal(tot.parked, 2);
	assert_int_equal(tot.waiting, 2);

	/* set right; the backoff passes */
	time_step = 0;
	settle(400);
	fakes_clear();
	rua("a.test", "mailto:r@flaky.test");
	rua("b.test", "mailto:r@down.test");
	mxat("flaky.test", "127.0.0.2");
	mxat("down.test", "127.0.0.1");
	run(&o, 10000);
	settle(100);
	assert_int_equal(srv[2].msgs, 1);
	assert_int_equal(is_sent("a.test", y), 1);
	assert_int_equal(tot.parked, 1);	/* b.test's receiver, down */
	/* b.test's URI fails on, past give_up_ms from its first failure
	 * since the step: given up, the pair ends */
	settle(400);
	run(&o, 10000);
	assert_int_equal(tot.parked, 1);
	settle(1200);
	run(&o, 10000);
	assert_int_equal(tot.failed, 1);
	assert_int_equal(tot.parked, 0);
	assert_int_equal(is_sent("b.test", y), 1);
	end_test();
}

/* tlsproxy/report.c's state_name(): the name a delivery state value is
 * kept under in the store's "sent" database. */
static void
state_name_of(char tag, const char *domain, const char *uri, char *buf,
    size_t sz)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	char hex[33];
	int i;

	assert_non_null(c);
	assert_int_equal(EVP_DigestInit_ex(c, EVP_sha256(), NULL), 1);
	EVP_DigestUpdate(c, domain, strlen(domain) + 1);
	EVP_DigestUpdate(c, uri, strlen(uri));
	EVP_DigestFinal_ex(c, md, &mdlen);
	EVP_MD_CTX_free(c);
	for (i = 0; i < 16; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	snprintf(buf, sz, "%c-%s.tlsrpt.invalid", tag, hex);
}

/*
 * A URI's first failure read back from a corrupt store as INT64_MIN
 * (not 0, "none", nor ahead of now): backoff() took now - first, a
 * signed overflow (undefined; in practice a negative delay, so the
 * backoff's least), and next - first, which wrapped below give_up_ms
 * for ever: the URI was never given up, retried at every run until
 * tlsrpt_retention pruned the day.  A first failure before 1970 now
 * starts the window again, as one ahead of now does.
 */
static void
test_corrupt_first_failure(void **state)
{
	struct report_opts o;
	int64_t y = today() - 1;
	char name[80];

	(void)state;
	begin_test();
	srv[1].mode = TEMPFAIL;
	record("b.test", y);
	rua("b.test", "mailto:r@down.test");
	mxat("down.test", "127.0.0.1");
	state_name_of('f', "b.test", "mailto:r@down.test", name,
	    sizeof(name));
	assert_int_equal(tlsrpt_mark_sent(st, y, name, INT64_MIN), 0);
	opts_fast(&o);
	o.give_up_ms = 1500;
	run(&o, 10000);
	assert_int_equal(tot.parked, 1);
	/* it fails on, past give_up_ms from the first failure of this
	 * run: given up, the pair ends */
	settle(400);
	run(&o, 10000);
	assert_int_equal(tot.parked, 1);
	settle(1200);
	run(&o, 10000);
	assert_int_equal(tot.failed, 1);
	assert_int_equal(tot.parked, 0);
	assert_int_equal(is_sent("b.test", y), 1);
	end_test();
}

/*
 * A URI's failed tries read back from a corrupt store (another version's
 * value under the same name, an edited tlsrpt.mdb): try_uri() took the
 * 8-byte value as an int, and backoff() wrote tries + 1 back, a signed
 * overflow at INT_MAX (undefined; in practice the count wrapped to
 * INT_MIN and went on from there) and 0 for a value that reads as -1:
 * the log's try= and the stored count went negative or back to zero.
 * The count decides nothing (the time since the first failure gives a
 * URI up), but it is what the operator reads.  Now a count out of range
 * is taken as the bound, TRIES_MAX, and counts on from there.  Red
 * before: "tries 2147483647 read back, -2147483648 written", the log
 * saying try=-2147483648.
 */
static void
test_corrupt_tries(void **state)
{
	static const int64_t bad[] = { INT32_MAX, UINT32_MAX, -5,
	    INT64_MAX };
	struct report_opts o;
	int64_t y = today() - 1, v;
	char name[80];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		begin_test();
		srv[1].mode = TEMPFAIL;
		record("b.test", y);
		rua("b.test", "mailto:r@down.test");
		mxat("down.test", "127.0.0.1");
		state_name_of('t', "b.test", "mailto:r@down.test", name,
		    sizeof(name));
		assert_int_equal(tlsrpt_mark_sent(st, y, name, bad[i]), 0);
		/* a first failure of now, or the claim takes it for a
		 * new URI */
		state_name_of('f', "b.test", "mailto:r@down.test", name,
		    sizeof(name));
		assert_int_equal(tlsrpt_mark_sent(st, y, name,
		    (int64_t)time(NULL) * 1000), 0);
		opts_fast(&o);
		run(&o, 10000);
		assert_int_equal(tot.parked, 1);
		state_name_of('t', "b.test", "mailto:r@down.test", name,
		    sizeof(name));
		assert_int_equal(tlsrpt_is_sent(st, y, name, &v), 1);
		if (v < 1 || v > INT32_MAX - 1)
			fail_msg("tries %lld read back, %lld written",
			    (long long)bad[i], (long long)v);
		end_test();
	}
}

/* A pair's count of URIs claimed read back below 0 (a corrupt or edited
 * tlsrpt.mdb) is taken as at the pair's bound, as a count of tries past
 * its own is (test_corrupt_tries): before, -5 passed `n >= PAIR_DESTS`
 * and every new URI was tried, the pair's bound of 8 gone. */
static void
test_corrupt_dest_count(void **state)
{
	static const int64_t bad[] = { -1, -5, INT64_MIN };
	struct report_opts o;
	int64_t y = today() - 1, before;
	char name[80];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		begin_test();
		before = refused("pair-limit");
		srv[1].mode = TEMPFAIL;
		record("b.test", y);
		rua("b.test", "mailto:r@down.test");
		mxat("down.test", "127.0.0.1");
		state_name_of('u', "b.test", "", name, sizeof(name));
		assert_int_equal(tlsrpt_mark_sent(st, y, name, bad[i]), 0);
		opts_fast(&o);
		run(&o, 10000);
		if (srv[1].conns != 0)
			fail_msg("a pair's claimed count of %lld read back: a "
			    "new URI was tried", (long long)bad[i]);
		assert_int_equal(refused("pair-limit") - before, 1);
		end_test();
	}
}

/* A record that names new URIs at every lookup: the pair tries at most 8
 * URIs ever; the rest are skipped and the pair ends (marked sent) instead
 * of trying 8 more destinations at each retry until the day is pruned. */
static void
test_pair_destination_bound(void **state)
{
	struct report_opts o;
	int64_t y = today() - 1, before = refused("pair-limit");

	(void)state;
	begin_test();
	srv[1].mode = TEMPFAIL;
	record("a.test", y);
	rua("a.test", "mailto:r1@t.test,mailto:r2@t.test,mailto:r3@t.test,"
	    "mailto:r4@t.test,mailto:r5@t.test,mailto:r6@t.test,"
	    "mailto:r7@t.test,mailto:r8@t.test");
	mxat("t.test", "127.0.0.1");
	opts_fast(&o);
	o.job_ms = 8000;
	run(&o, 10000);
	assert_int_equal(srv[1].conns, 8);
	assert_int_equal(tot.parked, 8);
	assert_int_equal(is_sent("a.test", y), 0);

	fakes_clear();
	rua("a.test", "mailto:s1@g.test,mailto:s2@g.test");
	mxat("g.test", "127.0.0.2");
	o.retry_now = 1;
	run(&o, 10000);
	settle(100);
	assert_int_equal(srv[2].conns, 0);
	assert_int_equal(tot.skipped, 2);
	assert_int_equal(refused("pair-limit") - before, 2);
	assert_int_equal(is_sent("a.test", y), 1);
	end_test();
}

/*
 * A daily run is never in the first grace seconds of a UTC day (the last
 * day's counts may still be on their way: an attempt waiting for its
 * _smtp._tls lookup, a worker's flush): with tlsrpt_max_delay = 0 every
 * run fell at 00:00:00 and sent the day without them.  Outside that
 * window the delay is left alone.
 */
static void
test_day_grace(void **state)
{
	uint64_t day = 86400ULL * 20000;	/* a midnight, UTC */

	/* the grace: 60 s plus twice dns_timeout, 10 s by default, as
	 * docs/tlsrpt.md says (was 81: twice the sum rounded once) */
	assert_int_equal(REPORT_DAY_GRACE_S(cfg), 80);
	/* at midnight exactly: moved to midnight + 80 s */
	assert_int_equal(report_day_grace(day - 10, 10000, 80), 90000);
	/* at 00:00:30: to 00:01:20 */
	assert_int_equal(report_day_grace(day, 30000, 80), 80000);
	/* the window's last millisecond, and its end */
	assert_int_equal(report_day_grace(day, 79999, 80), 80000);
	assert_int_equal(report_day_grace(day, 80000, 80), 80000);
	/* before midnight and well after: as they are */
	assert_int_equal(report_day_grace(day - 10, 5000, 80), 5000);
	assert_int_equal(report_day_grace(day - 3600, 4000000, 80), 4000000);
	/* a run due days later: the window of that day */
	assert_int_equal(report_day_grace(day, 86400000ULL * 2 + 1000, 80),
	    86400000ULL * 2 + 80000);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tarpit_does_not_hold_up_others),
		cmocka_unit_test(test_slow_build_keeps_try_time),
		cmocka_unit_test(test_try_and_job_deadlines),
		cmocka_unit_test(test_day_grace),
		cmocka_unit_test(test_report_legs_record_nothing),
		cmocka_unit_test(test_server_key_not_read),
		cmocka_unit_test(test_failed_uri_retried_later),
		cmocka_unit_test(test_given_up_after_window),
		cmocka_unit_test(test_now_is_a_preview),
		cmocka_unit_test(test_mailto_private_refused),
		cmocka_unit_test(test_mailto_private_refused_lookup_failed),
		cmocka_unit_test(test_https_port_refused),
		cmocka_unit_test(test_https_private_refused),
		cmocka_unit_test(test_lookup_deadlines),
		cmocka_unit_test(test_dedup_and_address_cap),
		cmocka_unit_test(test_org_name_default),
		cmocka_unit_test(test_ehlo_name),
		cmocka_unit_test(test_one_flush_per_pair),
		cmocka_unit_test(test_txt_timeouts_do_not_starve),
		cmocka_unit_test(test_txt_failure_backs_off_and_gives_up),
		cmocka_unit_test(test_txt_failure_then_record),
		cmocka_unit_test(test_txt_no_record_is_temporary),
		cmocka_unit_test(test_txt_no_record_given_up),
		cmocka_unit_test(test_txt_cut),
		cmocka_unit_test(test_dkim_key_read_once),
		cmocka_unit_test(test_day_destination_bound),
		cmocka_unit_test(test_pair_destination_bound),
		cmocka_unit_test(test_skipped_uri_not_claimed),
		cmocka_unit_test(test_clock_stepped_back),
		cmocka_unit_test(test_corrupt_first_failure),
		cmocka_unit_test(test_corrupt_tries),
		cmocka_unit_test(test_corrupt_dest_count),
		cmocka_unit_test(test_destination_time_bound),
		cmocka_unit_test(test_one_run_at_a_time),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
