/*
 * test_proxy.c - the listeners and the original destination (proxy.c):
 * an accepted connection is relayed to its original destination, one made
 * to the listener directly is refused with 421.  The kernel's answer to
 * SO_ORIGINAL_DST (REDIRECT) is mocked: a unit test has no netfilter.
 * And the start's open-file warning (event=fd-limit) comes below what a
 * worker may hold at once, not only its sessions (getrlimit() mocked).
 */
// WRAP: getsockopt getrlimit64 setrlimit64
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6/ip6_tables.h>
#include <cmocka.h>

#include "core/config.h"
#include "core/ev.h"
#include "core/log.h"
#include "tlsproxy/proxy.h"
#include "testloop.h"

#include "testconf.h"

static struct {
	int			 fake;		/* answer SO_ORIGINAL_DST */
	struct sockaddr_in	 orig;		/* with this */
	int			 asked;		/* SO_ORIGINAL_DST calls */
	struct sockaddr_in6	 orig6;		/* IPv6: with this */
	int			 asked6;	/* IP6T_SO_ORIGINAL_DST calls */
} g;

int __real_getsockopt(int, int, int, void *, socklen_t *);
int __wrap_getsockopt(int, int, int, void *, socklen_t *);

int
__wrap_getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
	if (level == SOL_IP && name == SO_ORIGINAL_DST) {
		g.asked++;
		if (!g.fake) {
			errno = ENOENT;
			return -1;
		}
		if (*len < sizeof(g.orig)) {
			errno = EINVAL;
			return -1;
		}
		memcpy(val, &g.orig, sizeof(g.orig));
		*len = sizeof(g.orig);
		return 0;
	}
	if (level == SOL_IPV6 && name == IP6T_SO_ORIGINAL_DST) {
		g.asked6++;
		if (!g.fake || *len < sizeof(g.orig6)) {
			errno = ENOENT;
			return -1;
		}
		memcpy(val, &g.orig6, sizeof(g.orig6));
		*len = sizeof(g.orig6);
		return 0;
	}
	return __real_getsockopt(fd, level, name, val, len);
}

/* RLIMIT_NOFILE as the process sees it, while set (soft = hard: fd_budget()
 * has nothing to raise) */
static rlim_t fake_nofile;

int __real_getrlimit64(int, struct rlimit64 *);
int __wrap_getrlimit64(int, struct rlimit64 *);
int __real_setrlimit64(int, const struct rlimit64 *);
int __wrap_setrlimit64(int, const struct rlimit64 *);

int
__wrap_getrlimit64(int res, struct rlimit64 *rl)
{
	if (res == RLIMIT_NOFILE && fake_nofile != 0) {
		rl->rlim_cur = rl->rlim_max = fake_nofile;
		return 0;
	}
	return __real_getrlimit64(res, rl);
}

int
__wrap_setrlimit64(int res, const struct rlimit64 *rl)
{
	if (res == RLIMIT_NOFILE && fake_nofile != 0)
		return 0;
	return __real_setrlimit64(res, rl);
}

static struct config *
load_text(const char *text)
{
	char err[256];
	struct config *c = testconf_load(text, err, sizeof(err));

	if (c == NULL)
		fail_msg("config_load: %s", err);
	return c;
}

/* A listening socket on 127.0.0.1 (port 0: any); its port in *port. */
static int
tcp_listener(uint16_t *port)
{
	struct sockaddr_in sin = { 0 };
	socklen_t sl = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);

	assert_true(fd >= 0);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(fd, 8), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
	*port = ntohs(sin.sin_port);
	return fd;
}

/* A port nothing listens on now (for mxguard's own listener). */
static uint16_t
free_port(void)
{
	uint16_t port;
	int fd = tcp_listener(&port);

	close(fd);
	return port;
}

static int
tcp_connect(uint16_t port)
{
	struct sockaddr_in sin = { 0 };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	sin.sin_family = AF_INET;
	sin.sin_port = htons(port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)),
	    0);
	assert_int_equal(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
	return fd;
}

/*
 * A client connection diverted to mxguard whose original destination is
 * the test's "MX" (the mocked SO_ORIGINAL_DST).  Runs the loop until the
 * MX is connected to or the client got an answer; returns 1 if the MX
 * was reached, 0 if not, and what the client got in got.
 */
static int
relay_once_to(const char *extra, in_addr_t addr, char *got, size_t gotsz)
{
	struct ev_loop *loop;
	struct config *cfg;
	struct proxy *p;
	char conf[512], err[256];
	uint16_t lport = free_port(), mxport;
	int mx, cl, up = -1, i;
	ssize_t n = 0;

	mx = tcp_listener(&mxport);
	memset(&g, 0, sizeof(g));
	g.fake = 1;
	g.orig.sin_family = AF_INET;
	g.orig.sin_port = htons(mxport);
	g.orig.sin_addr.s_addr = addr;
	snprintf(conf, sizeof(conf), "listen = 127.0.0.1:%u\n%s", lport,
	    extra);
	cfg = load_text(conf);
	assert_non_null(loop = ev_loop_new());
	p = proxy_new(loop, cfg, NULL, err, sizeof(err));
	if (p == NULL)
		fail_msg("proxy_new: %s", err);
	cl = tcp_connect(lport);
	got[0] = '\0';
	for (i = 0; i < 100 && up == -1; i++) {
		testloop_run(loop, 10);
		up = accept4(mx, NULL, NULL, SOCK_CLOEXEC);
		n = read(cl, got, gotsz - 1);
		if (n > 0) {
			got[n] = '\0';
			break;
		}
	}
	if (up == -1)
		up = accept4(mx, NULL, NULL, SOCK_CLOEXEC);
	if (up != -1)
		close(up);
	close(cl);
	proxy_free(p);
	ev_loop_free(loop);
	config_free(cfg);
	close(mx);
	return up != -1;
}

static int
relay_once(const char *extra, char *got, size_t gotsz)
{
	return relay_once_to(extra, htonl(INADDR_LOOPBACK), got, gotsz);
}

/* REDIRECT: the session goes to SO_ORIGINAL_DST, the client waits for
 * the MX's greeting. */
static void
test_redirect_relays_to_original(void **state)
{
	char got[256];

	assert_int_equal(relay_once("listen_mode = redirect\n", got,
	    sizeof(got)), 1);
	assert_string_equal(got, "");
	assert_true(g.asked > 0);
}

/* A connection made to the listener itself (its "original destination"
 * is the listener): 421, and nothing goes anywhere. */
static void
test_direct_connection_refused(void **state)
{
	struct ev_loop *loop;
	struct config *cfg;
	struct proxy *p;
	char conf[256], err[256], got[256];
	uint16_t lport = free_port();
	ssize_t n = -1;
	int cl, i;

	memset(&g, 0, sizeof(g));
	g.fake = 1;
	g.orig.sin_family = AF_INET;
	g.orig.sin_port = htons(lport);
	g.orig.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	snprintf(conf, sizeof(conf), "listen = 127.0.0.1:%u\n", lport);
	cfg = load_text(conf);
	assert_non_null(loop = ev_loop_new());
	assert_non_null(p = proxy_new(loop, cfg, NULL, err, sizeof(err)));
	cl = tcp_connect(lport);
	for (i = 0; i < 100; i++) {
		testloop_run(loop, 10);
		if ((n = read(cl, got, sizeof(got) - 1)) > 0)
			break;
	}
	assert_true(n > 0);
	got[n] = '\0';
	assert_memory_equal(got, "421 4.3.5 ", 10);
	close(cl);
	proxy_free(p);
	ev_loop_free(loop);
	config_free(cfg);
}

/* Gateway mode, an original destination that is this host's loopback,
 * or 0.0.0.0, which connect() takes for it (under REDIRECT in PREROUTING
 * nat rewrites such a SYN before the martian check): 421, nothing
 * relayed.  Local mode relays it (its clients are this host's own
 * processes: test_redirect_relays_to_original). */
static void
test_gateway_local_destination_refused(void **state)
{
	char got[256];

	assert_int_equal(relay_once("rules_mode = gateway\n", got,
	    sizeof(got)), 0);
	assert_string_equal(got, "421 4.3.5 mxguard: destination is this "
	    "host; not relayed\r\n");
	assert_true(g.asked > 0);
	/* 0.0.0.0: connect() would reach the test MX on 127.0.0.1 */
	assert_int_equal(relay_once_to("rules_mode = gateway\n",
	    htonl(INADDR_ANY), got, sizeof(got)), 0);
	assert_string_equal(got, "421 4.3.5 mxguard: destination is this "
	    "host; not relayed\r\n");
}

/*
 * rules_mode = local with listen_mode = tproxy: the rules divert with
 * REDIRECT in local mode whatever listen_mode says (rules.c,
 * rules_tproxy_needed()), so the original destination is SO_ORIGINAL_DST;
 * the accepted socket's local address is the listener's own.  Taking it
 * for the destination refused every flow as "not diverted".
 */
static void
test_local_mode_tproxy_setting_redirects(void **state)
{
	char got[256];

	assert_int_equal(relay_once("listen_mode = tproxy\n"
	    "rules_mode = local\n", got, sizeof(got)), 1);
	assert_string_equal(got, "");
}

/* proxy_new() under cfg text with RLIMIT_NOFILE at limit: 1 when the
 * start warned event=fd-limit with needed=NEED. */
static int
fd_warned(const char *extra, rlim_t limit, unsigned long need)
{
	char path[] = "/tmp/mxg-proxy-fd-XXXXXX", conf[512], err[256];
	char line[1024], want[64];
	struct ev_loop *loop;
	struct config *cfg;
	struct proxy *p;
	FILE *f;
	int fd, saved, warned = 0;

	snprintf(conf, sizeof(conf), "listen = 127.0.0.1:%u\n%s",
	    free_port(), extra);
	cfg = load_text(conf);
	assert_non_null(loop = ev_loop_new());
	assert_true((fd = mkstemp(path)) >= 0);
	fflush(stderr);
	assert_true((saved = dup(2)) >= 0);
	assert_int_equal(dup2(fd, 2), 2);
	close(fd);
	log_set_level(LOG_LVL_WARN);
	fake_nofile = limit;
	p = proxy_new(loop, cfg, NULL, err, sizeof(err));
	fake_nofile = 0;
	log_set_level(getenv("MXG_TEST_DEBUG") ? LOG_LVL_DEBUG : LOG_LVL_ERR);
	fflush(stderr);
	assert_int_equal(dup2(saved, 2), 2);
	close(saved);
	if (p == NULL)
		fail_msg("proxy_new: %s", err);
	proxy_free(p);
	ev_loop_free(loop);
	config_free(cfg);
	snprintf(want, sizeof(want), " needed=%lu ", need);
	assert_non_null(f = fopen(path, "r"));
	while (fgets(line, sizeof(line), f) != NULL)
		if (strstr(line, "event=fd-limit") != NULL) {
			assert_non_null(strstr(line, want));
			warned = 1;
		}
	fclose(f);
	unlink(path);
	return warned;
}

/*
 * The start warns when the open-file limit is below what one worker may
 * hold at once: two per session, the parked legs (upstream_reuse_max),
 * four for the fetch each session's lookup may wait for, for each of the
 * 64 fetches nobody waits for and each of sts_refresh_max background
 * refreshes, the resolver's two, and 64 more (docs/deployment.md, "Open
 * files").  Red before: max_sessions * 2 + 64 (2,064 here), so a limit
 * of 6,821, which a flood of fetches exhausts, said nothing.
 */
static void
test_fd_limit_warning(void **state)
{
	const char *c = "max_sessions = 1000\nupstream_reuse_max = 100\n"
	    "sts_refresh_max = 100\n";
	const char *nosts = "max_sessions = 1000\nupstream_reuse_max = 100\n"
	    "sts_enable = no\n";
	unsigned long need = 1000 * 2 + 100 + 4 * (1000 + 64 + 100) + 2 + 64;
	unsigned long need_nosts = 1000 * 2 + 100 + 2 + 64;

	(void)state;
	assert_int_equal(need, 6822);
	assert_int_equal(fd_warned(c, need - 1, need), 1);
	assert_int_equal(fd_warned(c, need, need), 0);
	/* without MTA-STS no fetch */
	assert_int_equal(fd_warned(nosts, need_nosts - 1, need_nosts), 1);
	assert_int_equal(fd_warned(nosts, need_nosts, need_nosts), 0);
}

static int
group_setup(void **state)
{
	signal(SIGPIPE, SIG_IGN);
	log_init("test_proxy", 0, getenv("MXG_TEST_DEBUG") ? LOG_LVL_DEBUG :
	    LOG_LVL_ERR);
	return 0;
}

static int64_t
total_of(void *arg)
{
	return *(int64_t *)arg;
}

/* Runs loop until the MX's listener accepts a connection (1) or the
 * client cl has read something into got (0). */
static int
mx_or_reply(struct ev_loop *loop, int mx, int cl, char *got, size_t gotsz)
{
	ssize_t n;
	int up, i;

	got[0] = '\0';
	for (i = 0; i < 200; i++) {
		testloop_run(loop, 10);
		if ((up = accept4(mx, NULL, NULL, SOCK_CLOEXEC)) != -1) {
			close(up);
			return 1;
		}
		if ((n = read(cl, got, gotsz - 1)) > 0) {
			got[n] = '\0';
			return 0;
		}
	}
	fail_msg("neither the MX reached nor a reply");
	return -1;
}

/*
 * max_sessions: the session that reaches it is the last one taken, the
 * next gets 421 4.3.2 (the MTA tries again later), whether this worker's
 * own count or the total over the workers (proxy_set_total()) is at it.
 */
static void
test_max_sessions(void **state)
{
	struct ev_loop *loop;
	struct config *cfg;
	struct proxy *p;
	char conf[256], err[256], got[256];
	uint16_t lport = free_port(), mxport;
	int64_t total = 0;
	int mx, cl1, cl2, cl3;

	mx = tcp_listener(&mxport);
	memset(&g, 0, sizeof(g));
	g.fake = 1;
	g.orig.sin_family = AF_INET;
	g.orig.sin_port = htons(mxport);
	g.orig.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	snprintf(conf, sizeof(conf), "listen = 127.0.0.1:%u\n"
	    "max_sessions = 1\n", lport);
	cfg = load_text(conf);
	assert_non_null(loop = ev_loop_new());
	assert_non_null(p = proxy_new(loop, cfg, NULL, err, sizeof(err)));
	proxy_set_total(p, total_of, &total);
	/* the first: relayed, and under way (the MX sends no greeting) */
	cl1 = tcp_connect(lport);
	assert_int_equal(mx_or_reply(loop, mx, cl1, got, sizeof(got)), 1);
	assert_int_equal(proxy_sessions(p), 1);
	/* the second: refused */
	cl2 = tcp_connect(lport);
	assert_int_equal(mx_or_reply(loop, mx, cl2, got, sizeof(got)), 0);
	assert_string_equal(got, "421 4.3.2 mxguard: too many sessions, "
	    "try again later\r\n");
	close(cl1);
	close(cl2);
	proxy_free(p);
	ev_loop_free(loop);
	/* no session here, the workers' total at the limit: refused */
	assert_non_null(loop = ev_loop_new());
	assert_non_null(p = proxy_new(loop, cfg, NULL, err, sizeof(err)));
	total = 1;
	proxy_set_total(p, total_of, &total);
	cl3 = tcp_connect(lport);
	assert_int_equal(mx_or_reply(loop, mx, cl3, got, sizeof(got)), 0);
	assert_string_equal(got, "421 4.3.2 mxguard: too many sessions, "
	    "try again later\r\n");
	close(cl3);
	proxy_free(p);
	ev_loop_free(loop);
	config_free(cfg);
	close(mx);
}

/*
 * Gateway mode, IPv6: the original destination is read with
 * IP6T_SO_ORIGINAL_DST (the listeners are IPV6_V6ONLY), and "::", which
 * connect() takes for ::1, is this host: 421, nothing relayed.
 */
static void
test_gateway_ipv6_unspecified_refused(void **state)
{
	struct ev_loop *loop;
	struct config *cfg;
	struct proxy *p;
	struct sockaddr_in6 s6;
	char conf[256], err[256], got[256];
	uint16_t lport = free_port(), mxport;
	int mx, cl;

	mx = tcp_listener(&mxport);
	memset(&g, 0, sizeof(g));
	g.fake = 1;
	g.orig6.sin6_family = AF_INET6;
	g.orig6.sin6_port = htons(mxport);
	g.orig6.sin6_addr = in6addr_any;
	snprintf(conf, sizeof(conf), "listen = [::1]:%u\n"
	    "rules_mode = gateway\n", lport);
	cfg = load_text(conf);
	assert_non_null(loop = ev_loop_new());
	p = proxy_new(loop, cfg, NULL, err, sizeof(err));
	if (p == NULL)
		fail_msg("proxy_new: %s", err);
	memset(&s6, 0, sizeof(s6));
	s6.sin6_family = AF_INET6;
	s6.sin6_port = htons(lport);
	s6.sin6_addr = in6addr_loopback;
	assert_true((cl = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC,
	    0)) >= 0);
	assert_int_equal(connect(cl, (struct sockaddr *)&s6, sizeof(s6)), 0);
	assert_int_equal(fcntl(cl, F_SETFL, O_NONBLOCK), 0);
	assert_int_equal(mx_or_reply(loop, mx, cl, got, sizeof(got)), 0);
	assert_string_equal(got, "421 4.3.5 mxguard: destination is this "
	    "host; not relayed\r\n");
	assert_true(g.asked6 > 0);
	assert_int_equal(g.asked, 0);
	close(cl);
	proxy_free(p);
	ev_loop_free(loop);
	config_free(cfg);
	close(mx);
}

/*
 * listen_mode = tproxy in gateway mode: the accepted socket's local
 * address is the original destination (SO_ORIGINAL_DST is never asked),
 * and a connection made to the listener's own port was not diverted:
 * 421 4.3.5, nothing relayed.  Needs IP_TRANSPARENT (CAP_NET_ADMIN):
 * skipped without it.
 */
static void
test_tproxy_direct_refused(void **state)
{
	struct ev_loop *loop;
	struct config *cfg;
	struct proxy *p;
	char conf[256], err[256], got[256];
	uint16_t lport = free_port(), mxport;
	int mx, cl;

	mx = tcp_listener(&mxport);
	memset(&g, 0, sizeof(g));
	g.fake = 1;			/* a relay if it were asked */
	g.orig.sin_family = AF_INET;
	g.orig.sin_port = htons(mxport);
	g.orig.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	snprintf(conf, sizeof(conf), "listen = 127.0.0.1:%u\n"
	    "listen_mode = tproxy\nrules_mode = gateway\n", lport);
	cfg = load_text(conf);
	assert_non_null(loop = ev_loop_new());
	if ((p = proxy_new(loop, cfg, NULL, err, sizeof(err))) == NULL) {
		ev_loop_free(loop);
		config_free(cfg);
		close(mx);
		skip();
	}
	cl = tcp_connect(lport);
	assert_int_equal(mx_or_reply(loop, mx, cl, got, sizeof(got)), 0);
	assert_string_equal(got, "421 4.3.5 mxguard: connection was not "
	    "diverted; no destination\r\n");
	assert_int_equal(g.asked, 0);
	close(cl);
	proxy_free(p);
	ev_loop_free(loop);
	config_free(cfg);
	close(mx);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_redirect_relays_to_original),
		cmocka_unit_test(test_direct_connection_refused),
		cmocka_unit_test(test_gateway_local_destination_refused),
		cmocka_unit_test(test_local_mode_tproxy_setting_redirects),
		cmocka_unit_test(test_fd_limit_warning),
		cmocka_unit_test(test_max_sessions),
		cmocka_unit_test(test_gateway_ipv6_unspecified_refused),
		cmocka_unit_test(test_tproxy_direct_refused),
	};

	return cmocka_run_group_tests(tests, group_setup, NULL);
}
