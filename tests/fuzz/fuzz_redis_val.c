/*
 * fuzz_redis_val.c - the values read back from the shared Redis store
 * (policy/redis_val.c) and the history merge they feed
 * (history_entry_merge()).  Everything in Redis is untrusted, so besides
 * memory safety this checks the promises the verdict code relies on:
 *
 *   - an accepted MTA-STS value has an id of letters, digits, '-', '_',
 *     '.' (what the TXT parser takes), a fetch time not
 *     ahead of the clock by more than REDIS_SKEW_S, and an expiry that is
 *     exactly the fetch time plus the policy's own max_age; encoding it
 *     again and decoding that gives the same record;
 *   - an accepted history value has no time ahead of the clock by more
 *     than REDIS_SKEW_S (a time beyond, another gateway's clock, is
 *     brought back to it, not refused: a last_tls brought back still
 *     expects TLS), first_tls not after last_tls, and it re-encodes to a
 *     value that decodes to the same record;
 *   - merging an accepted history value into any local record never makes
 *     history_expects_tls() false where it was true (the store only moves
 *     towards "this MX did TLS").
 *
 *   - an accepted value names the key it is read for (FUZZ_DOMAIN,
 *     FUZZ_ADDR): the decoders compare the name whole.
 *
 * Input: the first byte picks the value kind (even: MTA-STS, odd:
 * history); for history, the bytes after the value's first 255 are the
 * local record, taken raw.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy/cache.h"
#include "policy/history.h"
#include "policy/redis.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW	INT64_C(1796083200)	/* 2026-12-01 */
#define FUZZ_DOMAIN	"example.com"	/* the keys values are read for */
#define FUZZ_ADDR	"192.0.2.1"

static void
check_sts(const char *buf, size_t len)
{
	struct sts_cache_entry e, again;
	char err[160], *enc;
	size_t enclen, i;

	if (redis_sts_decode(buf, len, FUZZ_DOMAIN, NOW, &e, err,
	    sizeof(err)) == -1)
		return;
	if (len < 6 + sizeof(FUZZ_DOMAIN) || memcmp(buf + 6, FUZZ_DOMAIN " ",
	    sizeof(FUZZ_DOMAIN)) != 0)
		__builtin_trap();
	if (e.id[0] == '\0' || e.fetched > NOW + REDIS_SKEW_S ||
	    e.expires != e.fetched + (int64_t)e.pol.max_age ||
	    e.body == NULL || e.body[e.bodylen] != '\0')
		__builtin_trap();
	for (i = 0; e.id[i] != '\0'; i++)
		if (!((e.id[i] >= '0' && e.id[i] <= '9') ||
		    (e.id[i] >= 'a' && e.id[i] <= 'z') ||
		    (e.id[i] >= 'A' && e.id[i] <= 'Z') || e.id[i] == '-' ||
		    e.id[i] == '_' || e.id[i] == '.'))
			__builtin_trap();
	if (redis_sts_encode(FUZZ_DOMAIN, &e, &enc, &enclen) == -1)
		__builtin_trap();
	if (redis_sts_decode(enc, enclen, FUZZ_DOMAIN, NOW, &again, err,
	    sizeof(err)) == -1)
		__builtin_trap();
	if (strcmp(again.id, e.id) != 0 || again.fetched != e.fetched ||
	    again.expires != e.expires || again.bodylen != e.bodylen ||
	    memcmp(again.body, e.body, e.bodylen) != 0 ||
	    again.pol.mode != e.pol.mode ||
	    again.pol.max_age != e.pol.max_age ||
	    again.pol.nmx != e.pol.nmx)
		__builtin_trap();
	free(enc);
	sts_cache_entry_clear(&again);
	sts_cache_entry_clear(&e);
}

static void
check_hist(const char *buf, size_t len, const uint8_t *local,
    size_t locallen)
{
	static const int64_t windows[] = { 1, 86400, 30 * 86400 };
	struct history_entry o, again, e, m;
	char err[160], enc[REDIS_HIST_MAX];
	size_t w;

	if (redis_hist_decode(buf, len, FUZZ_ADDR, NOW, &o, err,
	    sizeof(err)) == -1)
		return;
	if (len < 6 + sizeof(FUZZ_ADDR) || memcmp(buf + 6, FUZZ_ADDR " ",
	    sizeof(FUZZ_ADDR)) != 0)
		__builtin_trap();
	if (o.first_tls > o.last_tls || (o.first_tls == 0) !=
	    (o.last_tls == 0) || o.first_tls > NOW + REDIS_SKEW_S ||
	    o.last_tls > NOW + REDIS_SKEW_S ||
	    o.last_fail > NOW + REDIS_SKEW_S ||
	    o.last_seen > NOW + REDIS_SKEW_S)
		__builtin_trap();
	/* a last_tls at the bound (brought back, or written there) still
	 * counts: skew never makes TLS evidence useless */
	if (o.last_tls == NOW + REDIS_SKEW_S &&
	    !history_expects_tls(&o, NOW, 1))
		__builtin_trap();
	if (redis_hist_encode(FUZZ_ADDR, &o, enc, sizeof(enc)) == -1)
		__builtin_trap();
	if (redis_hist_decode(enc, strlen(enc), FUZZ_ADDR, NOW, &again, err,
	    sizeof(err)) == -1 || memcmp(&again, &o, sizeof(o)) != 0)
		__builtin_trap();

	/* any local record, including nonsense a broken disk could hold */
	memset(&e, 0, sizeof(e));
	memcpy(&e, local, locallen < sizeof(e) ? locallen : sizeof(e));
	m = e;
	history_entry_merge(&m, &o);
	for (w = 0; w < sizeof(windows) / sizeof(windows[0]); w++)
		if (history_expects_tls(&e, NOW, windows[w]) &&
		    !history_expects_tls(&m, NOW, windows[w]))
			__builtin_trap();
	/* and the merge never loses what the local record knew */
	if (m.last_tls < e.last_tls || m.last_seen < e.last_seen ||
	    m.tls_count < e.tls_count || m.fail_count < e.fail_count)
		__builtin_trap();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf;
	size_t vlen;

	if (size < 1)
		return 0;
	/* a copy of exactly the value's bytes, so that ASan sees any read
	 * past its end (Redis replies are not NUL-terminated for us) */
	if (data[0] % 2 == 0) {
		vlen = size - 1;
		if ((buf = malloc(vlen ? vlen : 1)) == NULL)
			return 0;
		memcpy(buf, data + 1, vlen);
		check_sts(buf, vlen);
	} else {
		vlen = size - 1 < 255 ? size - 1 : 255;
		if ((buf = malloc(vlen ? vlen : 1)) == NULL)
			return 0;
		memcpy(buf, data + 1, vlen);
		check_hist(buf, vlen, data + 1 + vlen, size - 1 - vlen);
	}
	free(buf);
	return 0;
}
