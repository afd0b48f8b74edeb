/*
 * redis.c - the Redis client of the shared policy state (see redis.h):
 * its own connection on the process's event loop (core/ev.h): a
 * non-blocking TCP or unix socket, optionally TLS (OpenSSL, the server's
 * certificate verified against redis_tls_ca_file or the system store and
 * redis_tls_server_name, which must be one of its subjectAltNames: the
 * subject CN is never used; a client certificate for tls-auth-clients).
 * hiredis does only what it is good at: formatting commands
 * (redisvFormatCommand) and parsing RESP replies (redisReader, which
 * refuses arrays: no_array()).  Commands
 * are written in order and their ops wait in a FIFO; each reply answers
 * the FIFO's head.
 *
 * States: no context (waiting for the connect timer: the first connect
 * runs from the loop, later ones after a back-off of 250 ms doubling to
 * 10 s); connecting (AUTH or PING queued, the timer bounds it by
 * redis_timeout, and so does the TLS handshake); up (the AUTH or PING
 * answered).  A certificate that fails verification, or a handshake
 * that fails, is counted (errors{op="tls"}) and logged, and retried after
 * the back-off like a refused connect.  Operations are taken
 * only while up; otherwise they fail at once and are counted.
 *
 * Every command has a timer of redis_timeout.  A command sent cannot be
 * taken back (its reply would answer the next one), so
 * a command that times out fails towards its caller at once, and the
 * connection is dropped (a server that does not answer one command in
 * time is not trusted with the next) and made again after the back-off.
 * Dropping answers every outstanding op -1 and frees it (fail_all()); an
 * op (struct redis_op) is freed there, when its reply comes (on_reply(),
 * on_hello()) or when it could not be queued (op_abandon()), and nowhere
 * else.  redis_cancel() only stops the caller's callback.
 *
 * Reload: the engine makes a new client from the new configuration and
 * retires the old one (redis_retire()): it takes no new ops, its ops
 * under way are answered as they would have been (so a request never
 * holds a freed op), and it frees itself after the last one, without
 * reconnecting and without touching the mxguard_redis_up gauge.
 *
 * Fork: the socket belongs to the process that connected (rs->pid).  A
 * forked copy that frees the client it inherited only forgets the fd on
 * the loop (the epoll instance is shared across fork(): deleting it would
 * take the parent's socket off the parent's loop) and writes nothing (no
 * TLS close_notify); one that uses it drops it unused first.
 *
 * Write-through goes through two small server-side scripts (EVAL) so that
 * concurrent gateways merge instead of overwriting: a policy is replaced
 * only by a newer fetch (redis_sts_replaces()), a history record is merged
 * field by field towards TLS (history_entry_merge()).  Values name their
 * key (redis_val.c): a read checks the name against the key asked for,
 * and the scripts neither keep nor merge a value there that names
 * another key.
 */
#include <sys/socket.h>
#include <sys/un.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/stats.h"
#include "policy/redis.h"

#define BACKOFF_MIN	250	/* ms */
#define BACKOFF_MAX	10000
#define DOWN_LOG_S	10	/* an operation refused while down: logged
				 * at most this often */
#define INVALID_LOG_S	10	/* and a value read that is not used */

/* KEYS[1] key, ARGV[1] value, ARGV[2] its fetch time, ARGV[3] ttl (s),
 * ARGV[4] the domain (the name in the value): the newer fetch wins
 * (redis_sts_replaces()); a value claiming a fetch time more than
 * REDIS_SKEW_S ahead of Redis's clock (made up, or from a gateway whose
 * clock is that far ahead: readers refuse it, redis_sts_decode()), or
 * naming another domain (copied from its key), or in the format before
 * names (MXGS1), does not block the writes that follow.  Unlike TLS
 * history, replacing that one loses nothing a reader could use, and a
 * policy from Redis only ever decides where a gateway has none of its
 * own (redis_sts_usable()). */
static const char sts_put_lua[] =
    "local cur = redis.call('GET', KEYS[1]) "
    "if cur then "
    "  local n, f = string.match(cur, '^MXGS2 (%S+) (%d+) ') "
    "  f = tonumber(f) "
    "  local now = tonumber(redis.call('TIME')[1]) "
    "  if f and n == ARGV[4] and f > tonumber(ARGV[2]) and "
    "    f <= now + 300 then return 0 end "
    "end "
    "redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3]) "
    "return 1";

/* KEYS[1] key, ARGV[1] value, ARGV[2] ttl (s), ARGV[3] the address (the
 * name in the value): merged field by field with the value there as
 * history_entry_merge() does.  The gateways'
 * clocks differ: a time ahead of Redis's own by more than REDIS_SKEW_S
 * (300), in the value there or in the new one, is brought back to
 * now + 300, never a reason to throw the value there away: a gateway
 * whose clock is ahead would otherwise write TLS evidence that the next
 * failure-only write of another (what stripping STARTTLS causes)
 * replaces.  A value there that
 * readers refuse whatever the clock (not six numbers, first_tls after
 * last_tls or only one of them, a count beyond 32 bits, another
 * address's name, the format before names: MXGH1) is replaced, not
 * merged, so it cannot block the writes that follow, and a record
 * copied from another address's key never passes into this one's under
 * this one's name. */
static const char hist_put_lua[] =
    "local function nums(v) "
    "  local t = {} "
    "  if not v then return t end "
    "  local a, r = string.match(v, '^MXGH2 (%S+) (.*)$') "
    "  if a ~= ARGV[3] then return t end "
    "  for x in string.gmatch(r, '%d+') do "
    "    t[#t + 1] = tonumber(x) end "
    "  return t "
    "end "
    "local function ok(t) "
    "  return #t == 6 and (t[1] == 0) == (t[2] == 0) and t[1] <= t[2] "
    "    and t[5] <= 4294967295 and t[6] <= 4294967295 "
    "end "
    "local function clamp(t, lim) "
    "  for i = 1, 4 do if t[i] > lim then t[i] = lim end end "
    "end "
    "local n = nums(ARGV[1]) "
    "if not ok(n) then return redis.error_reply('bad value') end "
    "local o = nums(redis.call('GET', KEYS[1])) "
    "local lim = tonumber(redis.call('TIME')[1]) + 300 "
    "clamp(n, lim) "
    "if ok(o) then "
    "  clamp(o, lim) "
    "  if o[1] > 0 and (n[1] == 0 or o[1] < n[1]) then n[1] = o[1] end "
    "  for i = 2, 6 do if o[i] > n[i] then n[i] = o[i] end end "
    "end "
    "redis.call('SET', KEYS[1], "
    "  string.format('MXGH2 %s %d %d %d %d %d %d', ARGV[3], "
    "  n[1], n[2], n[3], n[4], n[5], n[6]), 'EX', ARGV[2]) "
    "return 1";

enum op_kind { OP_STS_GET, OP_HIST_GET, OP_PUT, OP_HELLO };

enum conn_state {
	CS_NONE,		/* no socket: waiting for the connect timer */
	CS_CONNECTING,		/* non-blocking connect() under way */
	CS_HANDSHAKE,		/* TLS handshake under way */
	CS_OPEN			/* commands flow (AUTH/PING first) */
};

struct redis_op {
	struct redis	*rs;
	struct redis_op	*next, *prev;	/* the FIFO: replies come in order */
	struct ev_timer	*tmo;
	enum op_kind	 kind;
	const char	*name;		/* the errors counter's op label */
	redis_sts_cb	*scb;
	redis_hist_cb	*hcb;
	void		*arg;
	int		 done;		/* the caller has its answer (or
					 * cancelled, or wants none) */
	int		 failed;	/* counted and logged once */
	char		 what[300];	/* domain or address: the name its
					 * value must carry, and for logs */
};

struct redis {
	struct ev_loop	*loop;
	/* the connection */
	enum conn_state	 cs;
	int		 fd;
	int		 mask;		/* registered with the loop */
	SSL		*ssl;
	int		 ssl_wants_write;
	redisReader	*rd;
	int		 array_refused;	/* why rd failed: no_array() */
	char		*obuf;		/* formatted commands not yet written */
	size_t		 olen, ooff, ocap;
	unsigned	 gen;		/* bumped by each close */
	pid_t		 pid;		/* the process the socket belongs to */
	int		 up;
	/* where */
	int		 is_unix;
	char		 host[64];
	int		 port;
	char		 path[108];
	struct sockaddr_storage sa;
	socklen_t	 salen;
	SSL_CTX		*tls;		/* NULL: plain */
	char		*server_name;	/* what the certificate must name */
	int		 name_is_ip;
	char		*address;	/* as configured */
	char		 qaddr[300];	/* the same, a log value (log_q) */
	char		*username;
	char		*password;
	char		*prefix;
	uint64_t	 timeout;
	int64_t		 hist_ttl;	/* s */
	uint64_t	 backoff;
	struct ev_timer	*conn_tmr;
	struct redis_op	*ops, *ops_tail;
	int64_t		 down_logged;
	int64_t		 invalid_logged;
	int		 quiet;		/* redis_free(), a forked copy: ops
					 * end without a word */
	int		 settled;	/* the first connect has ended, one
					 * way or the other */
	int		 busy;		/* inside a loop callback that may
					 * call the caller's callbacks */
	int		 freed;		/* redis_free() came while busy */
	int		 retired;	/* redis_retire(): no new ops; freed
					 * when the last one has ended */
};

static void	 drop(struct redis *, const char *why, const char *detail);
static void	 really_free(struct redis *);

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
	if (rs->retired)	/* the gauge is its successor's */
		return;
	stats_set(stats_gauge("mxguard_redis_up", "1 while the shared "
	    "policy store (Redis) is connected and authenticated"), up);
}

/* Around every loop callback that may reach the caller's callbacks: a
 * redis_free() from one of those is carried out on the way out. */
static void
enter(struct redis *rs)
{
	rs->busy++;
}

static void
leave(struct redis *rs)
{
	if (--rs->busy == 0 && (rs->freed ||
	    (rs->retired && rs->ops == NULL)))
		really_free(rs);
}

/* ---- ops ---- */

static void
op_unlink(struct redis_op *op)
{
	struct redis *rs = op->rs;

	if (op->prev != NULL)
		op->prev->next = op->next;
	else if (rs->ops == op)
		rs->ops = op->next;
	if (op->next != NULL)
		op->next->prev = op->prev;
	else if (rs->ops_tail == op)
		rs->ops_tail = op->prev;
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

	enter(rs);
	snprintf(d, sizeof(d), "no answer within redis_timeout (%llums)",
	    (unsigned long long)rs->timeout);
	op_fail(op, "timeout", d);
	/* frees op with every other outstanding one */
	drop(rs, "timeout", d);
	leave(rs);
}

/* A value read for op that is not used: counted, and logged at warning
 * at most every INVALID_LOG_S (the rest at debug): while a gateway of an
 * older version shares the server, every read of what it wrote is one. */
static void
invalid(struct redis_op *op, const char *kind, const char *field,
    const char *err)
{
	struct redis *rs = op->rs;
	int64_t now = clock_now();
	char qw[320], qe[200];

	count_invalid(kind);
	if (now - rs->invalid_logged >= INVALID_LOG_S) {
		rs->invalid_logged = now;
		log_warn("event=redis-invalid kind=%s %s=%s detail=%s "
		    "note=\"ignored (logged every %ds, the others at "
		    "debug)\"", kind, field, log_q(qw, sizeof(qw), op->what),
		    log_q(qe, sizeof(qe), err), INVALID_LOG_S);
	} else
		log_debug("event=redis-invalid kind=%s %s=%s detail=%s "
		    "note=\"ignored\"", kind, field,
		    log_q(qw, sizeof(qw), op->what),
		    log_q(qe, sizeof(qe), err));
}

/* A reply for op (taken off the FIFO already); frees op. */
static void
on_reply(struct redis_op *op, redisReply *reply)
{
	int64_t now = clock_now();
	char err[160];

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
		    redis_sts_decode(reply->str, reply->len, op->what, now,
		    &e, err, sizeof(err)) == -1) {
			if (reply->type != REDIS_REPLY_STRING)
				snprintf(err, sizeof(err), "not a string");
			invalid(op, "sts", "domain", err);
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
		    redis_hist_decode(reply->str, reply->len, op->what, now,
		    &e, err, sizeof(err)) == -1) {
			if (reply->type != REDIS_REPLY_STRING)
				snprintf(err, sizeof(err), "not a string");
			invalid(op, "history", "dst", err);
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

/* A new op at the FIFO's tail; NULL (counted) when Redis is not up. */
static struct redis_op *
op_new(struct redis *rs, enum op_kind kind, const char *name,
    const char *what)
{
	struct redis_op *op;
	int64_t now = clock_now();

	if (rs->cs != CS_NONE && rs->pid != getpid())
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
	op->prev = rs->ops_tail;
	if (rs->ops_tail != NULL)
		rs->ops_tail->next = op;
	else
		rs->ops = op;
	rs->ops_tail = op;
	ev_timer_arm(op->tmo, rs->timeout);
	return op;
}

/* After a command that could not be queued: the op gets no reply. */
static void
op_abandon(struct redis_op *op)
{
	struct redis *rs = op->rs;

	enter(rs);
	op->done = 1;
	count_error(op->name);
	op_free(op);
	drop(rs, "command", "could not queue the command");
	leave(rs);
}

/* ---- the connection ---- */

/* What the connection waits for.  During the TLS handshake only what
 * OpenSSL asked for: the AUTH/PING queued for after it is no reason to
 * wait for the socket to be writable, which it is all along (the loop is
 * level-triggered: it would spin until the server answers, for up to
 * redis_timeout at every attempt). */
static void
set_mask(struct redis *rs)
{
	int m = EV_READ;

	if (rs->cs == CS_CONNECTING)
		m = EV_WRITE;
	else if (rs->cs == CS_HANDSHAKE) {
		if (rs->ssl_wants_write)
			m |= EV_WRITE;
	} else if (rs->olen > rs->ooff || rs->ssl_wants_write)
		m |= EV_WRITE;
	if (m != rs->mask) {
		rs->mask = m;
		(void)ev_fd_mask(rs->loop, rs->fd, m);
	}
}

/* Appends a formatted command (len bytes; freed here); the loop writes
 * it, never the caller's call. */
static int
queue_cmd(struct redis *rs, char *cmd, int len)
{
	size_t need;

	if (len < 0 || cmd == NULL)
		return -1;
	if (rs->ooff > 0) {
		memmove(rs->obuf, rs->obuf + rs->ooff, rs->olen - rs->ooff);
		rs->olen -= rs->ooff;
		rs->ooff = 0;
	}
	need = rs->olen + (size_t)len;
	if (need > rs->ocap) {
		size_t cap = rs->ocap ? rs->ocap : 1024;
		char *p;

		while (cap < need)
			cap *= 2;
		if ((p = realloc(rs->obuf, cap)) == NULL) {
			redisFreeCommand(cmd);
			return -1;
		}
		rs->obuf = p;
		rs->ocap = cap;
	}
	memcpy(rs->obuf + rs->olen, cmd, (size_t)len);
	rs->olen += (size_t)len;
	redisFreeCommand(cmd);
	if (rs->cs == CS_OPEN)
		set_mask(rs);
	return 0;
}

static int
queue_fmt(struct redis *rs, const char *fmt, ...)
{
	va_list ap;
	char *cmd = NULL;
	int len;

	va_start(ap, fmt);
	len = redisvFormatCommand(&cmd, fmt, ap);
	va_end(ap);
	return queue_cmd(rs, cmd, len);
}

/* Closes the socket (the ops are the caller's business).  In a forked
 * copy of the process the epoll instance is the parent's too: the
 * registration is only forgotten, never deleted, and nothing is written
 * (no TLS close_notify). */
static void
conn_close(struct redis *rs)
{
	if (rs->cs == CS_NONE)
		return;
	if (rs->pid == getpid())
		ev_fd_del(rs->loop, rs->fd);
	else
		ev_fd_forget(rs->loop, rs->fd);
	if (rs->ssl != NULL)
		SSL_free(rs->ssl);
	rs->ssl = NULL;
	rs->ssl_wants_write = 0;
	close(rs->fd);
	rs->fd = -1;
	if (rs->rd != NULL)
		redisReaderFree(rs->rd);
	rs->rd = NULL;
	free(rs->obuf);
	rs->obuf = NULL;
	rs->olen = rs->ooff = rs->ocap = 0;
	rs->mask = 0;
	rs->cs = CS_NONE;
	rs->gen++;
}

/* Every outstanding op answered -1 (not the hello: the connection's
 * end is counted once, by its caller) and freed: the only place, with
 * on_reply() and op_abandon(), where ops are freed. */
static void
fail_all(struct redis *rs, const char *detail)
{
	struct redis_op *op;

	while ((op = rs->ops) != NULL) {
		op_unlink(op);
		if (op->kind == OP_HELLO)
			op->done = 1;
		else
			op_fail(op, "disconnected", detail);
		op_free(op);
	}
}

static void
arm_reconnect(struct redis *rs)
{
	rs->settled = 1;
	if (rs->retired)	/* freed on the way out (leave()) */
		return;
	ev_timer_arm(rs->conn_tmr, rs->backoff);
	rs->backoff = rs->backoff * 2 > BACKOFF_MAX ? BACKOFF_MAX :
	    rs->backoff * 2;
}

/* Ends the connection: every outstanding op is answered -1 and freed;
 * reconnects after the back-off. */
static void
drop(struct redis *rs, const char *why, const char *detail)
{
	char qd[300];
	int was_up = rs->up;

	if (rs->cs == CS_NONE)
		return;
	enter(rs);
	set_up(rs, 0);
	if (rs->pid != getpid()) {
		/* a forked copy: answer nobody (the requests are the
		 * parent's) */
		struct redis_op *op;

		for (op = rs->ops; op != NULL; op = op->next)
			op->done = 1;
		rs->quiet = 1;
	}
	conn_close(rs);
	if (rs->retired)	/* a reload replaced it: no retry */
		log_warn("event=redis-down address=%s reason=%s detail=%s "
		    "was_up=%s client=retired", rs->qaddr, why,
		    log_q(qd, sizeof(qd), detail), was_up ? "yes" : "no");
	else
		log_warn("event=redis-down address=%s reason=%s detail=%s "
		    "was_up=%s retry_in=%llums", rs->qaddr, why,
		    log_q(qd, sizeof(qd), detail), was_up ? "yes" : "no",
		    (unsigned long long)rs->backoff);
	fail_all(rs, detail);
	if (!rs->freed)
		rs->quiet = 0;
	arm_reconnect(rs);
	leave(rs);
}

/* The connection failed before it was up: counted under op (connect,
 * tls) and logged, as a refused connect always was. */
static void
conn_fail(struct redis *rs, const char *op, const char *detail)
{
	char qe[300];

	enter(rs);
	conn_close(rs);
	set_up(rs, 0);
	fail_all(rs, detail);
	count_error(op);
	log_warn("event=redis-error op=%s address=%s detail=%s "
	    "retry_in=%llums%s", op, rs->qaddr, log_q(qe, sizeof(qe),
	    detail), (unsigned long long)rs->backoff,
	    strcmp(op, "tls") == 0 ? " note=\"the server's certificate or "
	    "the TLS handshake was refused; local state decides alone\"" :
	    "");
	arm_reconnect(rs);
	leave(rs);
}

/* The server ended a TLS connection before AUTH/PING was answered. */
static void
refused_hint(char *d, size_t sz)
{
	size_t n = strlen(d);

	snprintf(d + n, sz - n, " (closed by the server after the TLS "
	    "handshake: does it require a client certificate, "
	    "tls-auth-clients, that redis_tls_cert_file does not give?)");
}

/* The server ended an open connection. */
static void
conn_closed(struct redis *rs, const char *detail)
{
	char qe[300];

	enter(rs);
	if (rs->ssl != NULL && !rs->up) {
		/* a TLS connection refused after the handshake (TLS 1.3:
		 * the server checks the client's certificate then) */
		char d[300];

		snprintf(d, sizeof(d), "%s", detail);
		refused_hint(d, sizeof(d));
		conn_fail(rs, "tls", d);
		leave(rs);
		return;
	}
	conn_close(rs);
	set_up(rs, 0);
	count_error("connection");
	log_warn("event=redis-down address=%s reason=closed detail=%s "
	    "retry_in=%llums", rs->qaddr, log_q(qe, sizeof(qe), detail),
	    (unsigned long long)rs->backoff);
	fail_all(rs, detail);
	arm_reconnect(rs);
	leave(rs);
}

static const char *
ssl_detail(struct redis *rs, char *buf, size_t sz)
{
	unsigned long e;
	long v;

	if (rs->ssl != NULL && (v = SSL_get_verify_result(rs->ssl)) !=
	    X509_V_OK) {
		if (v == X509_V_ERR_HOSTNAME_MISMATCH ||
		    v == X509_V_ERR_IP_ADDRESS_MISMATCH)
			/* the CN is never looked at (tls_begin()): say so,
			 * a certificate naming the server only there is
			 * still common */
			snprintf(buf, sz, "certificate verification failed: "
			    "%s matches no %s subjectAltName of the certificate "
			    "(its subject CN is not used)", rs->server_name,
			    rs->name_is_ip ? "IP" : "DNS");
		else
			snprintf(buf, sz, "certificate verification failed: "
			    "%s", X509_verify_cert_error_string(v));
		ERR_clear_error();
		return buf;
	}
	if ((e = ERR_get_error()) != 0)
		ERR_error_string_n(e, buf, sz);
	else
		snprintf(buf, sz, "TLS: %s", errno ? strerror(errno) :
		    "connection closed");
	ERR_clear_error();
	return buf;
}

static void
on_hello(struct redis *rs, struct redis_op *op, redisReply *reply)
{
	op_free(op);
	if (reply->type == REDIS_REPLY_ERROR) {
		count_error("auth");
		drop(rs, rs->password[0] ? "auth" : "ping", reply->str);
		return;
	}
	ev_timer_stop(rs->conn_tmr);
	rs->backoff = BACKOFF_MIN;
	rs->settled = 1;
	set_up(rs, 1);
	log_info("event=redis-up address=%s auth=%s tls=%s", rs->qaddr,
	    rs->password[0] ? (rs->username[0] ? "acl-user" : "password") :
	    "none", rs->ssl != NULL ? SSL_get_version(rs->ssl) : "no");
}

/* Writes what the socket takes: 0, or -1 after a drop. */
static int
conn_flush(struct redis *rs)
{
	char d[256];
	ssize_t n;
	int r;

	rs->ssl_wants_write = 0;
	while (rs->olen > rs->ooff) {
		size_t len = rs->olen - rs->ooff;

		if (rs->ssl != NULL) {
			ERR_clear_error();
			r = SSL_write(rs->ssl, rs->obuf + rs->ooff,
			    len > INT_MAX ? INT_MAX : (int)len);
			if (r > 0) {
				rs->ooff += (size_t)r;
				continue;
			}
			switch (SSL_get_error(rs->ssl, r)) {
			case SSL_ERROR_WANT_WRITE:
				rs->ssl_wants_write = 1;
				return 0;
			case SSL_ERROR_WANT_READ:
				return 0;
			default:
				ssl_detail(rs, d, sizeof(d));
				if (!rs->up) {	/* TLS 1.3: the server
						 * refused us after the
						 * handshake */
					refused_hint(d, sizeof(d));
					conn_fail(rs, "tls", d);
				} else
					drop(rs, "write", d);
				return -1;
			}
		}
		n = send(rs->fd, rs->obuf + rs->ooff, len, MSG_NOSIGNAL);
		if (n > 0) {
			rs->ooff += (size_t)n;
			continue;
		}
		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			return 0;
		snprintf(d, sizeof(d), "write: %s", strerror(errno));
		drop(rs, "write", d);
		return -1;
	}
	rs->olen = rs->ooff = 0;
	return 0;
}

/*
 * The reader's reply objects: hiredis's own, but no arrays.  No command
 * mxguard sends is answered with one: GET with a string or nil, AUTH and
 * PING with a status, both scripts (EVAL) with an integer or an error
 * (their TIME's array stays inside the script).  hiredis's default reader
 * allocates an array the size its header claims at once ("*1000000000":
 * calloc of 8 GB) and frees it slot by slot on the event loop (over a
 * minute), and lets a server stream elements into it without bound:
 * REDIS_REPLY_MAX bounds only the bytes not yet parsed.  A server or a
 * path to it that sends one would stall every worker of every gateway.
 * Refused (NULL) when its header comes, the reader fails as on any
 * protocol error: the connection is dropped and made again.
 */
static redisReplyObjectFunctions reply_fns;

#if HIREDIS_MAJOR >= 1
static void *
no_array(const redisReadTask *task, size_t elements)
#else
static void *
no_array(const redisReadTask *task, int elements)
#endif
{
	struct redis *rs = task->privdata;

	(void)elements;
	if (rs != NULL)
		rs->array_refused = 1;
	return NULL;
}

static redisReader *
reader_new(struct redis *rs)
{
	redisReader *rd;

	if ((rd = redisReaderCreate()) == NULL)
		return NULL;
	if (reply_fns.createArray == NULL) {
		/* the defaults are hiredis's statics: taken from a reader */
		reply_fns = *rd->fn;
		reply_fns.createArray = no_array;
	}
	rd->fn = &reply_fns;
	rd->privdata = rs;
	rs->array_refused = 0;
	return rd;
}

/*
 * Hands each complete reply to the FIFO's head; -1 when the connection
 * ended (dropped, or from a callback).  What is left unparsed is part of
 * one reply: every reply mxguard asks for is small (a policy of at most
 * 64 KiB), so a server that sends more than REDIS_REPLY_MAX of one is not
 * one to wait for (its memory would be ours).
 */
#define REDIS_REPLY_MAX	(1024 * 1024)
static int
conn_replies(struct redis *rs, unsigned gen)
{
	char d[256];
	void *r;

	for (;;) {
		struct redis_op *op;

		r = NULL;
		if (redisReaderGetReply(rs->rd, &r) != REDIS_OK) {
			if (rs->array_refused)
				snprintf(d, sizeof(d), "protocol: an array "
				    "reply (mxguard asks for none)");
			else
				snprintf(d, sizeof(d), "protocol: %s",
				    rs->rd->errstr);
			drop(rs, "protocol", d);
			return -1;
		}
		if (r == NULL)
			break;
		if ((op = rs->ops) == NULL) {
			freeReplyObject(r);
			drop(rs, "protocol", "a reply to no command");
			return -1;
		}
		op_unlink(op);
		if (op->kind == OP_HELLO)
			on_hello(rs, op, r);
		else
			on_reply(op, r);
		freeReplyObject(r);
		if (rs->freed || rs->gen != gen)
			return -1;	/* ended from a callback */
	}
	if (rs->rd->len - rs->rd->pos > REDIS_REPLY_MAX) {
		snprintf(d, sizeof(d), "protocol: a reply of over %d bytes",
		    REDIS_REPLY_MAX);
		drop(rs, "protocol", d);
		return -1;
	}
	return 0;
}

/* Reads what is there and hands each reply to the FIFO's head. */
static void
conn_read(struct redis *rs)
{
	char buf[16384], d[256];
	unsigned gen = rs->gen;
	const char *eof = NULL;
	ssize_t n;
	int sr;

	for (;;) {
		if (rs->ssl != NULL) {
			ERR_clear_error();
			errno = 0;
			sr = SSL_read(rs->ssl, buf, sizeof(buf));
			if (sr > 0)
				n = sr;
			else {
				switch (SSL_get_error(rs->ssl, sr)) {
				case SSL_ERROR_WANT_READ:
					break;
				case SSL_ERROR_WANT_WRITE:
					rs->ssl_wants_write = 1;
					break;
				case SSL_ERROR_ZERO_RETURN:
					eof = "the server closed the "
					    "connection";
					break;
				default:
					eof = ssl_detail(rs, d, sizeof(d));
					break;
				}
				break;
			}
		} else {
			n = recv(rs->fd, buf, sizeof(buf), 0);
			if (n == 0) {
				eof = "the server closed the connection";
				break;
			}
			if (n == -1) {
				if (errno == EINTR)
					continue;
				if (errno != EAGAIN) {
					snprintf(d, sizeof(d), "read: %s",
					    strerror(errno));
					eof = d;
				}
				break;
			}
		}
		if (redisReaderFeed(rs->rd, buf, (size_t)n) != REDIS_OK)
			break;
		/* a fast server can send more than one read's worth before
		 * EAGAIN: hand over what is complete as it grows */
		if (rs->rd->len - rs->rd->pos > REDIS_REPLY_MAX &&
		    conn_replies(rs, gen) == -1)
			return;
	}
	/* the replies that came before any end */
	if (conn_replies(rs, gen) == -1)
		return;
	if (eof != NULL)
		conn_closed(rs, eof);
}

/* The TLS client side on the connected socket. */
static int
tls_begin(struct redis *rs)
{
	X509_VERIFY_PARAM *vp;

	if ((rs->ssl = SSL_new(rs->tls)) == NULL ||
	    SSL_set_fd(rs->ssl, rs->fd) != 1)
		return -1;
	vp = SSL_get0_param(rs->ssl);
	/* validity on the policy clock (core/clock.h) */
	X509_VERIFY_PARAM_set_time(vp, (time_t)clock_now());
	if (rs->name_is_ip) {
		if (X509_VERIFY_PARAM_set1_ip_asc(vp, rs->server_name) != 1)
			return -1;
	} else if (SSL_set_tlsext_host_name(rs->ssl, rs->server_name) != 1 ||
	    SSL_set1_host(rs->ssl, rs->server_name) != 1)
		return -1;
	/* subjectAltName only, as for MTA-STS (policy/http.c): OpenSSL
	 * would take the subject CN of a certificate without a DNS name
	 * in it, which RFC 9525 no longer allows; and a wildcard only as
	 * the whole leftmost label (r*.example names nothing here) */
	SSL_set_hostflags(rs->ssl, X509_CHECK_FLAG_NEVER_CHECK_SUBJECT |
	    X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	SSL_set_connect_state(rs->ssl);
	rs->cs = CS_HANDSHAKE;
	return 0;
}

static void
on_fd(int fd, int events, void *arg)
{
	struct redis *rs = arg;
	char d[256];
	int e = 0, r;
	socklen_t el = sizeof(e);

	enter(rs);
	switch (rs->cs) {
	case CS_NONE:
		break;
	case CS_CONNECTING:
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) == -1)
			e = errno;
		if (e != 0) {
			snprintf(d, sizeof(d), "connect: %s", strerror(e));
			conn_fail(rs, "connect", d);
			break;
		}
		if (rs->tls == NULL) {
			rs->cs = CS_OPEN;
			goto open;
		}
		if (tls_begin(rs) == -1) {
			conn_fail(rs, "tls", ssl_detail(rs, d, sizeof(d)));
			break;
		}
		/* FALLTHROUGH */
	case CS_HANDSHAKE:
		ERR_clear_error();
		errno = 0;
		if ((r = SSL_connect(rs->ssl)) != 1) {
			switch (SSL_get_error(rs->ssl, r)) {
			case SSL_ERROR_WANT_READ:
				rs->ssl_wants_write = 0;
				set_mask(rs);
				break;
			case SSL_ERROR_WANT_WRITE:
				rs->ssl_wants_write = 1;
				set_mask(rs);
				break;
			default:
				conn_fail(rs, "tls", ssl_detail(rs, d,
				    sizeof(d)));
				break;
			}
			break;
		}
		rs->ssl_wants_write = 0;
		rs->cs = CS_OPEN;
		log_debug("event=redis-tls address=%s version=%s cipher=%s "
		    "name=%s", rs->qaddr, SSL_get_version(rs->ssl),
		    SSL_get_cipher_name(rs->ssl), rs->server_name);
		/* FALLTHROUGH */
	case CS_OPEN:
	open:
		if (conn_flush(rs) == -1)
			break;
		conn_read(rs);
		if (!rs->freed && rs->cs == CS_OPEN) {
			/* a reply callback may have queued more */
			if (rs->olen > rs->ooff && conn_flush(rs) == -1)
				break;
			set_mask(rs);
		}
		break;
	}
	leave(rs);
}

/* The connection failed before it had a socket. */
static void
connect_error(struct redis *rs, const char *detail)
{
	char qe[300];

	count_error("connect");
	log_warn("event=redis-error op=connect address=%s detail=%s "
	    "retry_in=%llums", rs->qaddr, log_q(qe, sizeof(qe), detail),
	    (unsigned long long)rs->backoff);
	arm_reconnect(rs);
}

static void
do_connect(struct redis *rs)
{
	struct redis_op *op;
	char d[256];
	int fd, rc;

	fd = socket(rs->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (fd == -1) {
		snprintf(d, sizeof(d), "socket: %s", strerror(errno));
		connect_error(rs, d);
		return;
	}
	if (connect(fd, (struct sockaddr *)&rs->sa, rs->salen) == -1 &&
	    errno != EINPROGRESS) {
		snprintf(d, sizeof(d), "connect: %s", strerror(errno));
		close(fd);
		connect_error(rs, d);
		return;
	}
	if ((rs->rd = reader_new(rs)) == NULL ||
	    ev_fd_set(rs->loop, fd, EV_WRITE, on_fd, rs) == -1) {
		if (rs->rd != NULL)
			redisReaderFree(rs->rd);
		rs->rd = NULL;
		close(fd);
		connect_error(rs, "out of memory");
		return;
	}
	rs->fd = fd;
	rs->mask = EV_WRITE;	/* the connect's end (at once if done) */
	rs->cs = CS_CONNECTING;
	rs->pid = getpid();
	/* queued now, written once connected (and TLS is up): AUTH as
	 * Redis documents it (AUTH password, or AUTH username password for
	 * an ACL user), or a PING that proves the server answers */
	rs->up = 1;		/* let op_new() make the hello op */
	op = op_new(rs, OP_HELLO, "auth", rs->address);
	rs->up = 0;
	if (op == NULL) {
		drop(rs, "attach", "out of memory");
		return;
	}
	op->done = 1;
	if (rs->password[0] && rs->username[0])
		rc = queue_fmt(rs, "AUTH %s %s", rs->username, rs->password);
	else if (rs->password[0])
		rc = queue_fmt(rs, "AUTH %s", rs->password);
	else
		rc = queue_fmt(rs, "PING");
	if (rc == -1) {
		op_abandon(op);
		return;
	}
	/* bounds the connect, the TLS handshake and the AUTH together */
	ev_timer_arm(rs->conn_tmr, rs->timeout);
}

static void
on_conn_timer(void *arg)
{
	struct redis *rs = arg;

	enter(rs);
	if (rs->cs == CS_NONE)
		do_connect(rs);
	else if (!rs->up)
		drop(rs, "connect-timeout", "not connected and authenticated "
		    "within redis_timeout");
	leave(rs);
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
		struct sockaddr_un *un = (struct sockaddr_un *)&rs->sa;

		snprintf(rs->path, sizeof(rs->path), "%s", a);
		rs->is_unix = 1;
		un->sun_family = AF_UNIX;
		snprintf(un->sun_path, sizeof(un->sun_path), "%s", a);
		rs->salen = sizeof(*un);
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
	/* numeric only: resolving a name would block the event loop */
	if (inet_pton(AF_INET, rs->host, &a6) == 1) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&rs->sa;

		s4->sin_family = AF_INET;
		memcpy(&s4->sin_addr, &a6, sizeof(s4->sin_addr));
		s4->sin_port = htons((uint16_t)port);
		rs->salen = sizeof(*s4);
	} else if (inet_pton(AF_INET6, rs->host, &a6) == 1) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&rs->sa;

		s6->sin6_family = AF_INET6;
		s6->sin6_addr = a6;
		s6->sin6_port = htons((uint16_t)port);
		rs->salen = sizeof(*s6);
	} else {
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

/* The client context, once per redis_new(): TLS 1.2 or later, the
 * server's certificate verified (redis_tls_ca_file, or the system store),
 * a client certificate when configured (tls-auth-clients). */
static int
tls_setup(struct redis *rs, const struct config *cfg, char *err,
    size_t errsz)
{
	const char *what = "SSL_CTX_new";
	unsigned char ip[16];
	unsigned long e;
	char es[200];

	ERR_clear_error();
	if ((rs->tls = SSL_CTX_new(TLS_client_method())) == NULL)
		goto fail;
	what = "TLS 1.2";
	if (SSL_CTX_set_min_proto_version(rs->tls, TLS1_2_VERSION) != 1)
		goto fail;
	SSL_CTX_set_verify(rs->tls, SSL_VERIFY_PEER, NULL);
	/* no TLS 1.2 renegotiation, as on every TLS context of the daemon:
	 * nothing here needs one, and a server that asks for one would
	 * bring new keys and a certificate in the middle of a reply */
	SSL_CTX_set_options(rs->tls, SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_mode(rs->tls, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (cfg->redis_tls_ca_file[0] != '\0') {
		what = "redis_tls_ca_file";
		if (SSL_CTX_load_verify_locations(rs->tls,
		    cfg->redis_tls_ca_file, NULL) != 1)
			goto fail;
	} else {
		what = "the system's CA store";
		if (SSL_CTX_set_default_verify_paths(rs->tls) != 1)
			goto fail;
	}
	if (cfg->redis_tls_cert_file[0] != '\0') {
		what = "redis_tls_cert_file";
		if (SSL_CTX_use_certificate_chain_file(rs->tls,
		    cfg->redis_tls_cert_file) != 1)
			goto fail;
		what = "redis_tls_key_file";
		if (SSL_CTX_use_PrivateKey_file(rs->tls,
		    cfg->redis_tls_key_file[0] ? cfg->redis_tls_key_file :
		    cfg->redis_tls_cert_file, SSL_FILETYPE_PEM) != 1 ||
		    SSL_CTX_check_private_key(rs->tls) != 1)
			goto fail;
	}
	if ((rs->server_name = strdup(cfg->redis_tls_server_name[0] ?
	    cfg->redis_tls_server_name : rs->host)) == NULL) {
		snprintf(err, errsz, "out of memory");
		return -1;
	}
	rs->name_is_ip = inet_pton(AF_INET, rs->server_name, ip) == 1 ||
	    inet_pton(AF_INET6, rs->server_name, ip) == 1;
	return 0;
fail:
	e = ERR_get_error();
	ERR_error_string_n(e, es, sizeof(es));
	ERR_clear_error();
	snprintf(err, errsz, "redis_tls: %s: %s", what, e ? es : "failed");
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
	rs->fd = -1;
	if (parse_address(rs, cfg->redis_address, err, errsz) == -1)
		goto fail;
	if (cfg->redis_tls) {
		if (rs->is_unix) {
			snprintf(err, errsz, "redis_tls: needs an IP:PORT "
			    "redis_address, not a unix socket");
			goto fail;
		}
		if (tls_setup(rs, cfg, err, errsz) == -1)
			goto fail;
	}
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
	if (rs->busy > 0) {
		/* from a callback: on the way out (leave()) */
		rs->freed = 1;
		return;
	}
	really_free(rs);
}

void
redis_retire(struct redis *rs)
{
	if (rs == NULL)
		return;
	rs->retired = 1;
	if (rs->ops == NULL) {
		redis_free(rs);
		return;
	}
	/* the ops under way end as they would have (their reply, their
	 * redis_timeout, or the connection's end); leave() frees it after
	 * the last one */
}

static void
really_free(struct redis *rs)
{
	conn_close(rs);
	while (rs->ops != NULL)
		op_free(rs->ops);
	ev_timer_free(rs->conn_tmr);
	SSL_CTX_free(rs->tls);
	free(rs->server_name);
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
	/* freed when its reply (or the connection's end) comes: its reply
	 * still has to be taken off the FIFO */
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
	if (queue_fmt(rs, "GET %s", key) == -1) {
		op_abandon(op);
		return NULL;
	}
	return op;
}

/* A TLS history record: kind "hist:" (an address) or "hist-host:" (an
 * MX host's own record, whatever its address); name is the key's name
 * and the one its value must carry. */
static struct redis_op *
hist_get(struct redis *rs, const char *kind, const char *name,
    redis_hist_cb *cb, void *arg)
{
	struct redis_op *op;
	char key[400];

	if ((op = op_new(rs, OP_HIST_GET, "history-get", name)) == NULL)
		return NULL;
	op->hcb = cb;
	op->arg = arg;
	snprintf(key, sizeof(key), "%s%s%s", rs->prefix, kind, name);
	if (queue_fmt(rs, "GET %s", key) == -1) {
		op_abandon(op);
		return NULL;
	}
	return op;
}

struct redis_op *
redis_hist_get(struct redis *rs, const struct sockaddr *dst,
    redis_hist_cb *cb, void *arg)
{
	char a[64];

	if (rs == NULL || addr_key(dst, a, sizeof(a)) == -1)
		return NULL;
	return hist_get(rs, "hist:", a, cb, arg);
}

struct redis_op *
redis_host_get(struct redis *rs, const char *host, redis_hist_cb *cb,
    void *arg)
{
	if (rs == NULL || host == NULL || host[0] == '\0')
		return NULL;
	return hist_get(rs, "hist-host:", host, cb, arg);
}

void
redis_sts_put(struct redis *rs, const char *domain,
    const struct sts_cache_entry *e)
{
	struct redis_op *op;
	char key[400], fetched[32], ttl[32], *val;
	size_t len;
	int64_t now = clock_now();

	if (rs == NULL || e->expires <= now)
		return;
	if (redis_sts_encode(domain, e, &val, &len) == -1) {
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
	if (queue_fmt(rs, "EVAL %s 1 %s %b %s %s %s", sts_put_lua, key, val,
	    len, fetched, ttl, domain) == -1)
		op_abandon(op);
	free(val);
}

/* The write-through of a TLS history record (hist_get()'s kinds). */
static void
hist_put(struct redis *rs, const char *kind, const char *name,
    const struct history_entry *e)
{
	struct redis_op *op;
	char key[400], val[REDIS_HIST_MAX], ttl[32];

	if (redis_hist_encode(name, e, val, sizeof(val)) == -1)
		return;
	if ((op = op_new(rs, OP_PUT, "history-put", name)) == NULL)
		return;
	op->done = 1;
	snprintf(key, sizeof(key), "%s%s%s", rs->prefix, kind, name);
	snprintf(ttl, sizeof(ttl), "%" PRId64, rs->hist_ttl);
	if (queue_fmt(rs, "EVAL %s 1 %s %s %s %s", hist_put_lua, key, val,
	    ttl, name) == -1)
		op_abandon(op);
}

void
redis_hist_put(struct redis *rs, const struct sockaddr *dst,
    const struct history_entry *e)
{
	char a[64];

	if (rs == NULL || addr_key(dst, a, sizeof(a)) == -1)
		return;
	hist_put(rs, "hist:", a, e);
}

void
redis_host_put(struct redis *rs, const char *host,
    const struct history_entry *e)
{
	if (rs == NULL || host == NULL || host[0] == '\0')
		return;
	hist_put(rs, "hist-host:", host, e);
}
