/*
 * proxy.c - listeners, accept and the original destination (see proxy.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6/ip6_tables.h>

#include "core/io.h"
#include "core/log.h"
#include "core/netaddr.h"
#include "core/stats.h"
#include "tlsproxy/proxy.h"
#include "tlsproxy/session.h"
#include "tlsproxy/tls.h"

#define MAX_LISTENERS 16

struct proxy {
	struct session_env	 env;
	int			 fds[MAX_LISTENERS];
	int			 nfds;
	int			 tproxy;
	struct stat_ctr		*st_refused;
	struct stat_ctr		*st_notdiverted;
	struct stat_ctr		*st_localdst;
	struct stat_ctr		*st_emfile;
	struct ev_timer		*resume;	/* listeners paused on EMFILE */
	int64_t			(*total)(void *);	/* workers: all sessions */
	void			*total_arg;
};

/* Out of file descriptors: the listeners stay readable, so stop watching
 * them for a moment instead of spinning (one log line per pause). */
static void
listeners_pause(struct proxy *p, int err)
{
	int i;

	stats_add(p->st_emfile, 1);
	log_warn("event=accept-paused error=\"%s\" sessions=%d "
	    "pause_ms=100", strerror(err), p->env.nsessions);
	for (i = 0; i < p->nfds; i++)
		ev_fd_mask(p->env.loop, p->fds[i], 0);
	ev_timer_arm(p->resume, 100);
}

static void
listeners_resume(void *arg)
{
	struct proxy *p = arg;
	int i;

	for (i = 0; i < p->nfds; i++)
		ev_fd_mask(p->env.loop, p->fds[i], EV_READ);
}

static int
original_dst(struct proxy *p, int fd, struct sockaddr_storage *dst)
{
	socklen_t len = sizeof(*dst);
	struct sockaddr_storage local;
	socklen_t llen = sizeof(local);

	if (getsockname(fd, (struct sockaddr *)&local, &llen) == -1)
		return -1;
	if (p->tproxy) {
		*dst = local;
		return 0;
	}
	/* listeners are IPV6_V6ONLY: an IPv6 socket has IPv6 flows only */
	if (local.ss_family == AF_INET6)
		return getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, dst,
		    &len);
	return getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, dst, &len);
}

static in_port_t
port_of(const struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET ?
	    ((const struct sockaddr_in *)ss)->sin_port :
	    ((const struct sockaddr_in6 *)ss)->sin6_port;
}

/* A connection made to the listener itself, not diverted to it: there is
 * no remote MX behind it.  Under REDIRECT its "original destination" is
 * its own local address; under TPROXY the local address always is the
 * original destination, so a connection to the listener's own port is
 * the one that was not diverted. */
static int
not_diverted(const struct proxy *p, int lfd,
    const struct sockaddr_storage *dst, const struct sockaddr_storage *local)
{
	struct sockaddr_storage ls;
	socklen_t len = sizeof(ls);

	if (!p->tproxy)
		return netaddr_same_host(dst, local) &&
		    port_of(dst) == port_of(local);
	if (getsockname(lfd, (struct sockaddr *)&ls, &len) == -1)
		return 1;
	return port_of(local) == port_of(&ls);
}

/* Gateway mode, an original destination that connect() takes for this
 * host itself: 127.0.0.0/8 and ::1, and 0.0.0.0/8 and ::, which Linux
 * connects to the loopback address.  No MTA's SYN carries one on the
 * wire, but under REDIRECT in PREROUTING one sent to the gateway does:
 * nat rewrites it before the kernel's martian check, and we would relay
 * a host behind the gateway to whatever listens on its loopback (the
 * rules leave the gateway's own addresses alone, but cannot tell 0.0.0.0
 * from a broadcast; this holds whatever rules divert).  In local mode
 * the client is a process of this host, which can connect there itself
 * (and the rules never divert lo). */
static int
local_dst(const struct proxy *p, const struct sockaddr_storage *dst)
{
	const char *cls = netaddr_class((const struct sockaddr *)dst);

	if (strcmp(p->env.cfg->rules_mode, "local") == 0)
		return 0;
	return strcmp(cls, "loopback") == 0 ||
	    strcmp(cls, "this-network") == 0 ||
	    strcmp(cls, "unspecified") == 0;
}

static void
refuse(int fd, const char *line)
{
	/* best effort: a full socket buffer just loses the courtesy */
	(void)!write(fd, line, strlen(line));
	close(fd);
}

static void
accept_cb(int lfd, int events, void *arg)
{
	struct proxy *p = arg;
	struct sockaddr_storage client, dst, local;
	socklen_t clen, llen;
	char cs[64];
	int fd, n;

	for (n = 0; n < 64; n++) {
		clen = sizeof(client);
		fd = accept4(lfd, (struct sockaddr *)&client, &clen,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM)
				listeners_pause(p, errno);
			else if (errno != EAGAIN && errno != EINTR &&
			    errno != ECONNABORTED)
				log_warn("event=accept-failed error=\"%s\"",
				    strerror(errno));
			return;
		}
		netaddr_fmt((struct sockaddr *)&client, cs, sizeof(cs));
		if (p->env.draining) {
			refuse(fd, "421 4.3.2 mxguard: shutting down\r\n");
			continue;
		}
		if (p->env.nsessions >= p->env.cfg->max_sessions ||
		    (p->total != NULL && p->total(p->total_arg) >=
		    p->env.cfg->max_sessions)) {
			stats_add(p->st_refused, 1);
			log_warn("event=refused client=%s reason=max_sessions "
			    "limit=%d", cs, p->env.cfg->max_sessions);
			refuse(fd, "421 4.3.2 mxguard: too many sessions, "
			    "try again later\r\n");
			continue;
		}
		llen = sizeof(local);
		if (original_dst(p, fd, &dst) == -1 ||
		    getsockname(fd, (struct sockaddr *)&local, &llen) == -1 ||
		    not_diverted(p, lfd, &dst, &local)) {
			/* a direct connection to the listener: there is no
			 * remote MX to relay to */
			stats_add(p->st_notdiverted, 1);
			log_warn("event=refused client=%s reason=not-diverted",
			    cs);
			refuse(fd, "421 4.3.5 mxguard: connection was not "
			    "diverted; no destination\r\n");
			continue;
		}
		if (local_dst(p, &dst)) {
			char ds[64];

			netaddr_fmt((struct sockaddr *)&dst, ds, sizeof(ds));
			stats_add(p->st_localdst, 1);
			log_warn("event=refused client=%s reason=local-destination "
			    "dst=%s", cs, ds);
			refuse(fd, "421 4.3.5 mxguard: destination is this "
			    "host; not relayed\r\n");
			continue;
		}
		session_start(&p->env, fd, &client, &dst);
	}
}

/* A listening socket for spec (SO_REUSEPORT when asked: one per worker,
 * the kernel spreads connections over them); the fd, or -1 with err. */
static int
open_listener(const char *spec, int tproxy, int reuseport, char *err,
    size_t errsz)
{
	struct sockaddr_storage ss;
	int fd, one = 1;
	socklen_t len;

	if (config_hostport(spec, &ss) == -1) {
		snprintf(err, errsz, "listen: bad address \"%s\"", spec);
		return -1;
	}
	len = ss.ss_family == AF_INET ? sizeof(struct sockaddr_in) :
	    sizeof(struct sockaddr_in6);
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd == -1)
		goto fail;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one,
	    sizeof(one)) == -1)
		goto fail;
	if (ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (tproxy &&
	    setsockopt(fd, ss.ss_family == AF_INET ? SOL_IP : SOL_IPV6,
	    ss.ss_family == AF_INET ? IP_TRANSPARENT : IPV6_TRANSPARENT,
	    &one, sizeof(one)) == -1)
		goto fail;
	if (bind(fd, (struct sockaddr *)&ss, len) == -1 ||
	    listen(fd, 1024) == -1)
		goto fail;
	return fd;
fail:
	snprintf(err, errsz, "listening on %s: %s", spec, strerror(errno));
	if (fd != -1)
		close(fd);
	return -1;
}

static int
listen_one(struct proxy *p, const char *spec, char *err, size_t errsz)
{
	int fd;

	if ((fd = open_listener(spec, p->tproxy, 0, err, errsz)) == -1)
		return -1;
	if (ev_fd_set(p->env.loop, fd, EV_READ, accept_cb, p) == -1) {
		snprintf(err, errsz, "listening on %s: %s", spec,
		    strerror(errno));
		close(fd);
		return -1;
	}
	p->fds[p->nfds++] = fd;
	log_info("event=listening addr=%s mode=%s", spec,
	    p->tproxy ? "tproxy" : "redirect");
	return 0;
}

int
proxy_listen(const struct config *cfg, int *fds, int maxfds, char *err,
    size_t errsz)
{
	int i, n = 0;

	if (cfg->listen.n > MAX_LISTENERS || cfg->listen.n > maxfds) {
		snprintf(err, errsz, "listen: at most %d addresses",
		    MAX_LISTENERS);
		return -1;
	}
	for (i = 0; i < cfg->listen.n; i++) {
		if ((fds[n] = open_listener(cfg->listen.v[i],
		    config_tproxy(cfg), 1, err, errsz)) == -1)
			goto fail;
		n++;
	}
	return n;
fail:
	while (n > 0)
		close(fds[--n]);
	return -1;
}

/* Raise the soft open-file limit to the hard one, and say so when what a
 * worker may hold at once does not fit (the kernel would refuse before
 * mxguard could answer 421, and a fetch or lookup without a descriptor
 * defers as local-error): two per session (client, upstream), the parked
 * legs, the policy engine's fetches and resolver (policy_fd_need()), and
 * FD_FIXED for listeners, stores, logs, the control socket, Redis.  Each
 * worker may hold all of max_sessions (the count is shared, not split).
 * docs/deployment.md, "Open files". */
#define FD_FIXED	64

static void
fd_budget(const struct config *cfg)
{
	struct rlimit rl;
	rlim_t need = (rlim_t)cfg->max_sessions * 2 +
	    (rlim_t)cfg->upstream_reuse_max + (rlim_t)policy_fd_need(cfg) +
	    FD_FIXED;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur < need)
		log_warn("event=fd-limit limit=%llu needed=%llu "
		    "max_sessions=%d note=\"raise LimitNOFILE or lower "
		    "max_sessions\"", (unsigned long long)rl.rlim_cur,
		    (unsigned long long)need, cfg->max_sessions);
}

struct proxy *
proxy_new(struct ev_loop *loop, const struct config *cfg,
    struct policy *pol, char *err, size_t errsz)
{
	return proxy_new_fds(loop, cfg, pol, NULL, 0, err, errsz);
}

struct proxy *
proxy_new_fds(struct ev_loop *loop, const struct config *cfg,
    struct policy *pol, const int *fds, int nfds, char *err, size_t errsz)
{
	struct proxy *p;
	int i;

	if ((p = calloc(1, sizeof(*p))) == NULL) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	p->env.loop = loop;
	p->env.cfg = cfg;
	p->env.policy = pol;
	/* as the rules divert: local mode REDIRECTs even with
	 * listen_mode = tproxy */
	p->tproxy = config_tproxy(cfg);
	p->st_refused = stats_get("mxguard_refused_total{reason=\"max_sessions\"}",
	    "Connections refused by mxguard");
	p->st_notdiverted = stats_get(
	    "mxguard_refused_total{reason=\"not-diverted\"}", NULL);
	p->st_localdst = stats_get(
	    "mxguard_refused_total{reason=\"local-destination\"}", NULL);
	p->st_emfile = stats_get("mxguard_accept_pauses_total",
	    "Times accepting paused for lack of file descriptors");
	if ((p->resume = ev_timer_new(loop, listeners_resume, p)) == NULL) {
		snprintf(err, errsz, "out of memory");
		goto fail;
	}
	fd_budget(cfg);
	if ((p->env.tls = tls_ctx_new(cfg, err, errsz)) == NULL)
		goto fail;
	if ((p->env.reuse = reuse_new()) == NULL) {
		snprintf(err, errsz, "out of memory");
		goto fail;
	}
	if (fds != NULL) {
		/* a worker's listeners, opened by the supervisor */
		for (i = 0; i < nfds && i < MAX_LISTENERS; i++) {
			if (ev_fd_set(loop, fds[i], EV_READ, accept_cb, p) ==
			    -1) {
				snprintf(err, errsz, "event loop: %s",
				    strerror(errno));
				goto fail;
			}
			p->fds[p->nfds++] = fds[i];
		}
		return p;
	}
	if (cfg->listen.n > MAX_LISTENERS) {
		snprintf(err, errsz, "listen: at most %d addresses",
		    MAX_LISTENERS);
		goto fail;
	}
	for (i = 0; i < cfg->listen.n; i++)
		if (listen_one(p, cfg->listen.v[i], err, errsz) == -1)
			goto fail;
	return p;
fail:
	proxy_free(p);
	return NULL;
}

void
proxy_drain(struct proxy *p)
{
	int i;

	p->env.draining = 1;
	reuse_flush(p->env.reuse);	/* idle legs: QUIT now */
	for (i = 0; i < p->nfds; i++) {
		ev_fd_del(p->env.loop, p->fds[i]);
		close(p->fds[i]);
	}
	p->nfds = 0;
	/* idle sessions (no transaction under way): 421 now, not held to
	 * drain_timeout by a client that caches its connection */
	session_drain_all(&p->env);
}

void
proxy_free(struct proxy *p)
{
	if (p == NULL)
		return;
	proxy_drain(p);
	ev_timer_free(p->resume);
	reuse_free(p->env.reuse);
	session_abort_all(&p->env);
	io_linger_flush();
	tls_ctx_free(p->env.tls);
	free(p);
}

struct tls_ctx *
proxy_prepare(const struct config *cfg, char *err, size_t errsz)
{
	return tls_ctx_new(cfg, err, errsz);
}

void
proxy_commit(struct proxy *p, const struct config *cfg, struct tls_ctx *t)
{
	/* SSL objects of live sessions hold references to the old ones;
	 * parked legs were set up under the old settings: closed */
	reuse_flush(p->env.reuse);
	tls_ctx_free(p->env.tls);
	p->env.tls = t;
	p->env.cfg = cfg;
	p->env.gen++;
}

void
proxy_retire(struct proxy *p)
{
	p->env.retiring = 1;
}

void
proxy_set_total(struct proxy *p, int64_t (*total)(void *), void *arg)
{
	p->total = total;
	p->total_arg = arg;
}

int
proxy_sessions(const struct proxy *p)
{
	return p->env.nsessions;
}

int
proxy_saturated(void *arg)
{
	const struct proxy *p = arg;

	return p->env.nsessions >= p->env.cfg->max_sessions;
}
