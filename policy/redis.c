/*
 * redis.c - the Redis client of the shared policy state (see redis.h):
 * hiredis's async API on the process's event loop (core/ev_redis.c).
 *
 * States: no context (waiting for the connect timer: the first connect
 * runs from the loop, later ones after a back-off of 250 ms doubling to
 * 10 s); connecting (AUTH or PING queued, the timer bounds it by
 * redis_timeout); up (the AUTH or PING answered).  Operations are taken
 * only while up; otherwise they fail at once and are counted.
 *
 * Every command has a timer of redis_timeout.  hiredis 0.14 has no
 * timeouts of its own and no way to take back a command it has sent, so
 * a command that times out fails towards its caller at once, and the
 * connection is dropped (a server that does not answer one command in
 * time is not trusted with the next) and made again after the back-off.
 * Dropping runs every outstanding command's callback with no reply; an
 * op (struct redis_op) is freed there, in the reply callback, and only
 * there.  redis_cancel() only stops the caller's callback.
 *
 * Write-through goes through two small server-side scripts (EVAL) so that
 * concurrent gateways merge instead of overwriting: a policy is replaced
 * only by a newer fetch (redis_sts_replaces()), a history record is merged
 * field by field towards TLS (history_entry_merge()).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "core/ev_redis.h"
#include "core/log.h"
#include "core/stats.h"
#include "policy/redis.h"

#define BACKOFF_MIN	250	/* ms */
#define BACKOFF_MAX	10000
#define DOWN_LOG_S	10	/* an operation refused while down: logged
				 * at most this often */

/* KEYS[1] key, ARGV[1] value, ARGV[2] its fetch time, ARGV[3] ttl (s):
 * the newer fetch wins (redis_sts_replaces()); a value claiming a fetch
 * time in the future (no gateway wrote it; readers refuse it) does not
 * block the writes that follow */
static const char sts_put_lua[] =
    "local cur = redis.call('GET', KEYS[1]) "
    "if cur then "
    "  local f = tonumber(string.match(cur, '^MXGS1 (%d+) ')) "
    "  local now = tonumber(redis.call('TIME')[1]) "
    "  if f and f > tonumber(ARGV[2]) and f <= now + 300 then "
    "    return 0 end "
    "end "
    "redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3]) "
    "return 1";

/* KEYS[1] key, ARGV[1] value, ARGV[2] ttl (s): merged with the value
 * there as history_entry_merge() does; a value there with a time in the
 * future (readers refuse it) is replaced, not merged */
static const char hist_put_lua[] =
    "local function nums(v) "
    "  local t = {} "
    "  if not v or string.sub(v, 1, 6) ~= 'MXGH1 ' then return t end "
    "  for x in string.gmatch(string.sub(v, 7), '%d+') do "
    "    t[#t + 1] = tonumber(x) end "
    "  return t "
    "end "
    "local n = nums(ARGV[1]) "
    "if #n ~= 6 then return redis.error_reply('bad value') end "
    "local o = nums(redis.call('GET', KEYS[1])) "
    "local now = tonumber(redis.call('TIME')[1]) "
    "for i = 1, 4 do if o[i] and o[i] > now + 300 then o = {} end end "
    "if #o == 6 then "
    "  if o[1] > 0 and (n[1] == 0 or o[1] < n[1]) then n[1] = o[1] end "
    "  for i = 2, 6 do if o[i] > n[i] then n[i] = o[i] end end "
    "end "
    "redis.call('SET', KEYS[1], string.format('MXGH1 %d %d %d %d %d %d', "
    "  n[1], n[2], n[3], n[4], n[5], n[6]), 'EX', ARGV[2]) "
    "return 1";

enum op_kind { OP_STS_GET, OP_HIST_GET, OP_PUT, OP_HELLO };

struct redis_op {
	struct redis	*rs;
	struct redis_op	*next, *prev;
	struct ev_timer	*tmo;
	enum op_kind	 kind;
	const char	*name;		/* the errors counter's op label */
	redis_sts_cb	*scb;
	redis_hist_cb	*hcb;
	void		*arg;
	int		 done;		/* the caller has its answer (or
					 * cancelled, or wants none) */
	int		 failed;	/* counted and logged once */
	char		 what[300];	/* domain or address, for logs */
};

struct redis {
	struct ev_loop	*loop;
	redisAsyncContext *ac;
	pid_t		 pid;		/* the process ac belongs to */
	int		 up;
	int		 is_unix;
	char		 host[64];
	int		 port;
	char		 path[108];
	char		*address;	/* as configured */
	char		 qaddr[300];	/* the same, a log value (log_q) */
	char		*username;
	char		*password;
	char		*prefix;
	uint64_t	 timeout;
	int64_t		 hist_ttl;	/* s */
	uint64_t	 backoff;
	struct ev_timer	*conn_tmr;
	struct redis_op	*ops;
	int64_t		 down_logged;
	int		 quiet;		/* redis_free(), a forked copy: ops
					 * end without a word */
	int		 settled;	/* the first connect has ended, one
					 * way or the other */
};

static void	 drop(struct redis *, const char *why, const char *detail);

static void
count_error(const char *op)
{
	char name[100];

	snprintf(name, sizeof(name), "mxguard_redis_errors_total{op=\"%s\"}",
	    op);
	stats_add(stats_counter(name, "Redis operations that failed (the "
	    "local state decided alone)"), 1);
}

static void
count_invalid(const char *kind)
{
	char name[100];

	snprintf(name, sizeof(name), "mxguard_redis_invalid_total"
	    "{kind=\"%s\"}", kind);
	stats_add(stats_counter(name, "Values read from Redis that were "
	    "malformed and ignored"), 1);
}

static void
set_up(struct redis *rs, int up)
{
	rs->up = up;
	stats_set(stats_gauge("mxguard_redis_up", "1 while the shared "
	    "policy store (Redis) is connected and authenticated"), up);
}

/* ---- ops ---- */

static void
op_unlink(struct redis_op *op)
{
	if (op->prev != NULL)
		op->prev->next = op->next;
	else if (op->rs->ops == op)
		op->rs->ops = op->next;
	if (op->next != NULL)
		op->next->prev = op->prev;
	op->next = op->prev = NULL;
}

static void
op_free(struct redis_op *op)
{
	op_unlink(op);
	ev_timer_free(op->tmo);
	free(op);
}

/* The caller's answer, once. */
static void
op_answer(struct redis_op *op, int rc, const struct sts_cache_entry *se,
    const struct history_entry *he)
{
	if (op->done)
		return;
	op->done = 1;
	if (op->scb != NULL)
		op->scb(op->arg, rc, se);
	else if (op->hcb != NULL)
		op->hcb(op->arg, rc, he);
}

static void
op_fail(struct redis_op *op, const char *why, const char *detail)
{
	char qw[320], qd[300];

	if (op->failed || op->rs->quiet)
		return;
	op->failed = 1;
	if (op->kind == OP_HELLO)
		count_error("connect");
	else {
		count_error(op->name);
		log_warn("event=redis-error op=%s key=%s reason=%s detail=%s "
		    "note=\"local state decides alone\"", op->name,
		    log_q(qw, sizeof(qw), op->what), why,
		    log_q(qd, sizeof(qd), detail ? detail : "-"));
	}
	op_answer(op, -1, NULL, NULL);
}

static void
on_op_timeout(void *arg)
{
	struct redis_op *op = arg;
	struct redis *rs = op->rs;
	char d[80];

	snprintf(d, sizeof(d), "no answer within redis_timeout (%llums)",
	    (unsigned long long)rs->timeout);
	op_fail(op, "timeout", d);
	/* frees op through its reply callback */
	drop(rs, "timeout", d);
}

static void
on_reply(redisAsyncContext *ac, void *r, void *priv)
{
	struct redis_op *op = priv;
	redisReply *reply = r;
	int64_t now = (int64_t)time(NULL);
	char err[160], qw[320], qe[200];

	if (op == NULL)
		return;
	if (reply == NULL) {
		op_fail(op, "disconnected", ac->errstr[0] ? ac->errstr :
		    "connection closed");
		op_free(op);
		return;
	}
	if (reply->type == REDIS_REPLY_ERROR) {
		op_fail(op, "reply", reply->str);
		op_free(op);
		return;
	}
	switch (op->kind) {
	case OP_STS_GET: {
		struct sts_cache_entry e;

		if (reply->type == REDIS_REPLY_NIL) {
			op_answer(op, 0, NULL, NULL);
			break;
		}
		if (reply->type != REDIS_REPLY_STRING ||
		    redis_sts_decode(reply->str, reply->len, now, &e, err,
		    sizeof(err)) == -1) {
			if (reply->type != REDIS_REPLY_STRING)
				snprintf(err, sizeof(err), "not a string");
			count_invalid("sts");
			log_warn("event=redis-invalid kind=sts domain=%s "
			    "detail=%s note=\"ignored\"",
			    log_q(qw, sizeof(qw), op->what),
			    log_q(qe, sizeof(qe), err));
			op_answer(op, 0, NULL, NULL);
			break;
		}
		op_answer(op, 1, &e, NULL);
		sts_cache_entry_clear(&e);
		break;
	}
	case OP_HIST_GET: {
		struct history_entry e;

		if (reply->type == REDIS_REPLY_NIL) {
			op_answer(op, 0, NULL, NULL);
			break;
		}
		if (reply->type != REDIS_REPLY_STRING ||
		    redis_hist_decode(reply->str, reply->len, now, &e, err,
		    sizeof(err)) == -1) {
			if (reply->type != REDIS_REPLY_STRING)
				snprintf(err, sizeof(err), "not a string");
			count_invalid("history");
			log_warn("event=redis-invalid kind=history dst=%s "
			    "detail=%s note=\"ignored\"",
			    log_q(qw, sizeof(qw), op->what),
			    log_q(qe, sizeof(qe), err));
			op_answer(op, 0, NULL, NULL);
			break;
		}
		op_answer(op, 1, NULL, &e);
		break;
	}
	case OP_PUT:
	case OP_HELLO:
		break;
	}
	op_free(op);
}

/* A new op on the live context; NULL (counted) when Redis is not up. */
static struct redis_op *
op_new(struct redis *rs, enum op_kind kind, const char *name,
    const char *what)
{
	struct redis_op *op;
	int64_t now = (int64_t)time(NULL);

	if (rs->ac != NULL && rs->pid != getpid())
		drop(rs, "fork", "the connection belongs to another process");
	if (!rs->up) {
		count_error(name);
		if (!rs->settled)	/* still connecting at start: no news */
			log_debug("event=redis-error op=%s reason=connecting "
			    "address=%s", name, rs->qaddr);
		else if (now - rs->down_logged >= DOWN_LOG_S) {
			rs->down_logged = now;
			log_warn("event=redis-error op=%s reason=down "
			    "address=%s note=\"not connected; local state "
			    "decides alone (logged every %ds)\"", name,
			    rs->qaddr, DOWN_LOG_S);
		}
		return NULL;
	}
	if ((op = calloc(1, sizeof(*op))) == NULL)
		return NULL;
	if ((op->tmo = ev_timer_new(rs->loop, on_op_timeout, op)) == NULL) {
		free(op);
		return NULL;
	}
	op->rs = rs;
	op->kind = kind;
	op->name = name;
	snprintf(op->what, sizeof(op->what), "%s", what);
	op->next = rs->ops;
	if (rs->ops != NULL)
		rs->ops->prev = op;
	rs->ops = op;
	ev_timer_arm(op->tmo, rs->timeout);
	return op;
}

/* After a failed redisAsyncCommand: the op never reaches on_reply. */
static void
op_abandon(struct redis_op *op)
{
	struct redis *rs = op->rs;

	op->done = 1;
	count_error(op->name);
	op_free(op);
	drop(rs, "command", "redisAsyncCommand failed");
}

/* ---- connection ---- */

static void
arm_reconnect(struct redis *rs)
{
	rs->settled = 1;
	ev_timer_arm(rs->conn_tmr, rs->backoff);
	rs->backoff = rs->backoff * 2 > BACKOFF_MAX ? BACKOFF_MAX :
	    rs->backoff * 2;
}

/* Ends the context: every outstanding op is answered -1 and freed (in
 * on_reply); reconnects after the back-off. */
static void
drop(struct redis *rs, const char *why, const char *detail)
{
	redisAsyncContext *ac = rs->ac;
	char qd[300];
	int was_up = rs->up;

	if (ac == NULL)
		return;
	rs->ac = NULL;
	set_up(rs, 0);
	if (rs->pid != getpid()) {
		/* a forked copy: answer nobody (the requests are the
		 * parent's) */
		struct redis_op *op;

		for (op = rs->ops; op != NULL; op = op->next)
			op->done = 1;
		rs->quiet = 1;
	}
	log_warn("event=redis-down address=%s reason=%s detail=%s "
	    "was_up=%s retry_in=%llums", rs->qaddr, why,
	    log_q(qd, sizeof(qd), detail), was_up ? "yes" : "no",
	    (unsigned long long)rs->backoff);
	redisAsyncFree(ac);
	rs->quiet = 0;
	arm_reconnect(rs);
}

static void
on_hello(redisAsyncContext *ac, void *r, void *priv)
{
	struct redis_op *op = priv;
	struct redis *rs = op->rs;
	redisReply *reply = r;

	if (reply == NULL) {		/* the connection went first */
		op->done = 1;
		op_free(op);
		return;
	}
	op_free(op);
	if (reply->type == REDIS_REPLY_ERROR || rs->ac != ac) {
		if (rs->ac == ac) {
			count_error("auth");
			drop(rs, rs->password[0] ? "auth" : "ping",
			    reply->type == REDIS_REPLY_ERROR ? reply->str :
			    "unexpected reply");
		}
		return;
	}
	ev_timer_stop(rs->conn_tmr);
	rs->backoff = BACKOFF_MIN;
	rs->settled = 1;
	set_up(rs, 1);
	log_info("event=redis-up address=%s auth=%s", rs->qaddr,
	    rs->password[0] ? (rs->username[0] ? "acl-user" : "password") :
	    "none");
}

static void
on_connect(const redisAsyncContext *ac, int status)
{
	struct redis *rs = ac->data;

	if (status == REDIS_OK || rs == NULL || rs->ac != ac)
		return;
	/* hiredis frees the context after this callback */
	rs->ac = NULL;
	set_up(rs, 0);
	count_error("connect");
	char qe[300];

	log_warn("event=redis-error op=connect address=%s detail=%s "
	    "retry_in=%llums", rs->qaddr, log_q(qe, sizeof(qe),
	    ac->errstr[0] ? ac->errstr : "connect failed"),
	    (unsigned long long)rs->backoff);
	arm_reconnect(rs);
}

static void
on_disconnect(const redisAsyncContext *ac, int status)
{
	struct redis *rs = ac->data;

	if (rs == NULL || rs->ac != ac)
		return;		/* drop() ended it, and said so */
	rs->ac = NULL;
	set_up(rs, 0);
	count_error("connection");
	char qe[300];

	log_warn("event=redis-down address=%s reason=closed detail=%s "
	    "retry_in=%llums", rs->qaddr, log_q(qe, sizeof(qe),
	    ac->errstr[0] ? ac->errstr : "the server closed the connection"),
	    (unsigned long long)rs->backoff);
	arm_reconnect(rs);
}

static void
do_connect(struct redis *rs)
{
	redisAsyncContext *ac;
	struct redis_op *op;
	int rc;

	ac = rs->is_unix ? redisAsyncConnectUnix(rs->path) :
	    redisAsyncConnect(rs->host, rs->port);
	if (ac == NULL || ac->err) {
		count_error("connect");
		char qe[300];

		log_warn("event=redis-error op=connect address=%s detail=%s "
		    "retry_in=%llums", rs->qaddr, log_q(qe, sizeof(qe),
		    ac != NULL ? ac->errstr : "out of memory"),
		    (unsigned long long)rs->backoff);
		if (ac != NULL)
			redisAsyncFree(ac);
		arm_reconnect(rs);
		return;
	}
	ac->data = rs;
	rs->ac = ac;
	rs->pid = getpid();
	if (ev_redis_attach(rs->loop, ac) == -1) {
		drop(rs, "attach", "out of memory");
		return;
	}
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	/* queued now, written once connected: AUTH as Redis documents it
	 * (AUTH password, or AUTH username password for an ACL user), or a
	 * PING that proves the server answers */
	rs->up = 1;		/* let op_new() make the hello op */
	op = op_new(rs, OP_HELLO, "auth", rs->address);
	rs->up = 0;
	if (op == NULL) {
		drop(rs, "attach", "out of memory");
		return;
	}
	op->done = 1;
	if (rs->password[0] && rs->username[0])
		rc = redisAsyncCommand(ac, on_hello, op, "AUTH %s %s",
		    rs->username, rs->password);
	else if (rs->password[0])
		rc = redisAsyncCommand(ac, on_hello, op, "AUTH %s",
		    rs->password);
	else
		rc = redisAsyncCommand(ac, on_hello, op, "PING");
	if (rc != REDIS_OK) {
		op_abandon(op);
		return;
	}
	/* bounds the connect and the AUTH together */
	ev_timer_arm(rs->conn_tmr, rs->timeout);
}

static void
on_conn_timer(void *arg)
{
	struct redis *rs = arg;

	if (rs->ac == NULL)
		do_connect(rs);
	else if (!rs->up)
		drop(rs, "connect-timeout", "not connected and authenticated "
		    "within redis_timeout");
}

/* ---- entry points ---- */

static int
parse_address(struct redis *rs, const char *a, char *err, size_t errsz)
{
	const char *colon;
	struct in6_addr a6;
	char *end;
	long port;
	size_t hl;

	if (a[0] == '/') {
		if (strlen(a) >= sizeof(rs->path)) {
			snprintf(err, errsz, "redis_address: socket path too "
			    "long");
			return -1;
		}
		snprintf(rs->path, sizeof(rs->path), "%s", a);
		rs->is_unix = 1;
		return 0;
	}
	if ((colon = strrchr(a, ':')) == NULL)
		goto bad;
	port = strtol(colon + 1, &end, 10);
	if (*end != '\0' || port < 1 || port > 65535 || colon[1] == '\0')
		goto bad;
	if (a[0] == '[') {
		if (colon == a || colon[-1] != ']')
			goto bad;
		a++;
		hl = (size_t)(colon - 1 - a);
	} else
		hl = (size_t)(colon - a);
	if (hl == 0 || hl >= sizeof(rs->host))
		goto bad;
	memcpy(rs->host, a, hl);
	rs->host[hl] = '\0';
	/* numeric only: hiredis would resolve a name with a blocking
	 * getaddrinfo() on the event loop */
	if (inet_pton(AF_INET, rs->host, &a6) != 1 &&
	    inet_pton(AF_INET6, rs->host, &a6) != 1) {
		snprintf(err, errsz, "redis_address: %s is not a numeric "
		    "address (a name would block the event loop on the "
		    "resolver)", rs->host);
		return -1;
	}
	rs->port = (int)port;
	return 0;
bad:
	snprintf(err, errsz, "redis_address: expected IP:PORT, [IPv6]:PORT "
	    "or /path/to/socket");
	return -1;
}

struct redis *
redis_new(struct ev_loop *loop, const struct config *cfg, char *err,
    size_t errsz)
{
	struct redis *rs;

	if (err != NULL && errsz > 0)
		err[0] = '\0';
	if (cfg->redis_address == NULL || cfg->redis_address[0] == '\0')
		return NULL;
	if ((rs = calloc(1, sizeof(*rs))) == NULL) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	rs->loop = loop;
	if (parse_address(rs, cfg->redis_address, err, errsz) == -1)
		goto fail;
	log_q(rs->qaddr, sizeof(rs->qaddr), cfg->redis_address);
	if ((rs->address = strdup(cfg->redis_address)) == NULL ||
	    (rs->username = strdup(cfg->redis_username)) == NULL ||
	    (rs->password = strdup(cfg->redis_password)) == NULL ||
	    (rs->prefix = strdup(cfg->redis_prefix)) == NULL ||
	    (rs->conn_tmr = ev_timer_new(loop, on_conn_timer, rs)) == NULL) {
		snprintf(err, errsz, "out of memory");
		goto fail;
	}
	rs->timeout = cfg->redis_timeout ? cfg->redis_timeout : 500;
	rs->hist_ttl = (int64_t)(cfg->tls_history_window / 1000);
	if (rs->hist_ttl < 86400)
		rs->hist_ttl = 86400;
	rs->backoff = BACKOFF_MIN;
	set_up(rs, 0);
	/* connect from the loop: a process forked before it runs makes
	 * its own connection */
	ev_timer_arm(rs->conn_tmr, 0);
	return rs;
fail:
	redis_free(rs);
	return NULL;
}

void
redis_free(struct redis *rs)
{
	struct redis_op *op;

	if (rs == NULL)
		return;
	/* nobody is answered from here on */
	for (op = rs->ops; op != NULL; op = op->next)
		op->done = 1;
	rs->quiet = 1;
	if (rs->ac != NULL) {
		redisAsyncContext *ac = rs->ac;

		rs->ac = NULL;
		ac->data = NULL;
		redisAsyncFree(ac);
	}
	while (rs->ops != NULL)		/* none left, unless never sent */
		op_free(rs->ops);
	ev_timer_free(rs->conn_tmr);
	free(rs->address);
	free(rs->username);
	if (rs->password != NULL)
		explicit_bzero(rs->password, strlen(rs->password));
	free(rs->password);
	free(rs->prefix);
	free(rs);
}

int
redis_up(const struct redis *rs)
{
	return rs != NULL && rs->up;
}

void
redis_cancel(struct redis_op *op)
{
	if (op == NULL)
		return;
	/* freed when its reply (or the connection's end) comes */
	op->done = 1;
	op->scb = NULL;
	op->hcb = NULL;
}

static int
addr_key(const struct sockaddr *dst, char *buf, size_t sz)
{
	char a[INET6_ADDRSTRLEN];

	if (dst == NULL)
		return -1;
	if (dst->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)
		    (const void *)dst)->sin_addr, a, sizeof(a));
	else if (dst->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)
		    (const void *)dst)->sin6_addr, a, sizeof(a));
	else
		return -1;
	snprintf(buf, sz, "%s", a);
	return 0;
}

struct redis_op *
redis_sts_get(struct redis *rs, const char *domain, redis_sts_cb *cb,
    void *arg)
{
	struct redis_op *op;
	char key[400];

	if (rs == NULL || (op = op_new(rs, OP_STS_GET, "sts-get", domain)) ==
	    NULL)
		return NULL;
	op->scb = cb;
	op->arg = arg;
	snprintf(key, sizeof(key), "%ssts:%s", rs->prefix, domain);
	if (redisAsyncCommand(rs->ac, on_reply, op, "GET %s", key) !=
	    REDIS_OK) {
		op_abandon(op);
		return NULL;
	}
	return op;
}

struct redis_op *
redis_hist_get(struct redis *rs, const struct sockaddr *dst,
    redis_hist_cb *cb, void *arg)
{
	struct redis_op *op;
	char a[64], key[200];

	if (rs == NULL || addr_key(dst, a, sizeof(a)) == -1 ||
	    (op = op_new(rs, OP_HIST_GET, "history-get", a)) == NULL)
		return NULL;
	op->hcb = cb;
	op->arg = arg;
	snprintf(key, sizeof(key), "%shist:%s", rs->prefix, a);
	if (redisAsyncCommand(rs->ac, on_reply, op, "GET %s", key) !=
	    REDIS_OK) {
		op_abandon(op);
		return NULL;
	}
	return op;
}

void
redis_sts_put(struct redis *rs, const char *domain,
    const struct sts_cache_entry *e)
{
	struct redis_op *op;
	char key[400], fetched[32], ttl[32], *val;
	size_t len;
	int64_t now = (int64_t)time(NULL);

	if (rs == NULL || e->expires <= now)
		return;
	if (redis_sts_encode(e, &val, &len) == -1) {
		count_error("sts-put");
		return;
	}
	if ((op = op_new(rs, OP_PUT, "sts-put", domain)) == NULL) {
		free(val);
		return;
	}
	op->done = 1;
	snprintf(key, sizeof(key), "%ssts:%s", rs->prefix, domain);
	snprintf(fetched, sizeof(fetched), "%" PRId64, e->fetched);
	snprintf(ttl, sizeof(ttl), "%" PRId64, e->expires - now);
	if (redisAsyncCommand(rs->ac, on_reply, op, "EVAL %s 1 %s %b %s %s",
	    sts_put_lua, key, val, len, fetched, ttl) != REDIS_OK)
		op_abandon(op);
	free(val);
}

void
redis_hist_put(struct redis *rs, const struct sockaddr *dst,
    const struct history_entry *e)
{
	struct redis_op *op;
	char a[64], key[200], val[200], ttl[32];

	if (rs == NULL || addr_key(dst, a, sizeof(a)) == -1 ||
	    redis_hist_encode(e, val, sizeof(val)) == -1)
		return;
	if ((op = op_new(rs, OP_PUT, "history-put", a)) == NULL)
		return;
	op->done = 1;
	snprintf(key, sizeof(key), "%shist:%s", rs->prefix, a);
	snprintf(ttl, sizeof(ttl), "%" PRId64, rs->hist_ttl);
	if (redisAsyncCommand(rs->ac, on_reply, op, "EVAL %s 1 %s %s %s",
	    hist_put_lua, key, val, ttl) != REDIS_OK)
		op_abandon(op);
}
