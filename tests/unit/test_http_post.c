/*
 * test_http_post.c - where a TLSRPT POST may go (policy/http.c): the
 * report's https host comes from a TXT record anyone may publish, so an
 * address of it that is not global unicast is never connected to unless
 * the caller allows it (tlsrpt_private_destinations).  DNS is faked
 * (fakedns.h); the "report receiver" is a plain listening socket on
 * 127.0.0.1 that counts the connections it gets.
 */
// WRAP: dns_query dns_cancel
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/ssl.h>

#include "core/ev.h"
#include "policy/dns.h"
#include "policy/http.h"

#include "fakedns.h"

static int done, ok_seen, accepted;
static char err_seen[512];

static void
posted(void *arg, int ok, const char *body, size_t len, const char *kind,
    const char *err)
{
	(void)arg; (void)body; (void)len; (void)kind;
	done = 1;
	ok_seen = ok;
	snprintf(err_seen, sizeof(err_seen), "%s", err ? err : "");
	ev_loop_stop(loop);
}

static void
on_accept(int fd, int events, void *arg)
{
	int c;

	(void)events; (void)arg;
	if ((c = accept(fd, NULL, NULL)) != -1) {
		accepted++;
		close(c);	/* no TLS here: the POST fails after this */
	}
}

static void
guard(void *arg)
{
	(void)arg;
	ev_loop_stop(loop);
}

/* POSTs to https://rpt.test:PORT/r, where rpt.test is 127.0.0.1. */
static void
post(int any_address)
{
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	struct ev_timer *g;
	struct http_req *h;
	SSL_CTX *ctx;
	int lfd;

	done = accepted = 0;
	err_seen[0] = '\0';
	loop = ev_loop_new();
	assert_non_null(loop);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(lfd, 4), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&sin, &sl), 0);
	assert_int_equal(ev_fd_set(loop, lfd, EV_READ, on_accept, NULL), 0);
	a("rpt.test", 0, "127.0.0.1");
	ctx = SSL_CTX_new(TLS_client_method());
	assert_non_null(ctx);
	h = http_post(loop, NULL, ctx, "rpt.test", ntohs(sin.sin_port), "/r",
	    "application/tlsrpt+gzip", "x", 1, 3000, 0, any_address, posted,
	    NULL);
	assert_non_null(h);
	g = ev_timer_new(loop, guard, NULL);
	ev_timer_arm(g, 5000);
	ev_loop_run(loop);
	assert_true(done);
	ev_timer_free(g);
	ev_fd_del(loop, lfd);
	close(lfd);
	SSL_CTX_free(ctx);
	fakes_clear();
	ev_loop_free(loop);
	loop = NULL;
}

static void
test_loopback_refused(void **state)
{
	(void)state;
	post(0);
	assert_int_equal(ok_seen, -1);
	assert_int_equal(accepted, 0);
	assert_non_null(strstr(err_seen, "127.0.0.1, a loopback address"));
	assert_non_null(strstr(err_seen, "tlsrpt_private_destinations"));
}

static void
test_loopback_allowed(void **state)
{
	(void)state;
	post(1);
	assert_int_equal(ok_seen, -1);	/* no TLS server there */
	assert_int_equal(accepted, 1);	/* but it was asked */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_loopback_refused),
		cmocka_unit_test(test_loopback_allowed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
