/*
 * fuzz_tlsrpt_entry.c - an entry of the TLSRPT store read back from
 * DIR/tlsrpt.mdb (policy/tlsrpt_store.c: tr_entry_decode(), the layout
 * in tlsrpt_int.h), which another version or a corrupted file may have
 * written.  The report builder, the counters and the recorder walk a
 * decoded entry with tr_next_str() and tr_next_bucket(), which check no
 * length: tr_entry_decode() is all that keeps them inside the value.
 * Besides memory errors (the value is a copy of exactly its bytes, so
 * ASan sees a read past its end), an accepted entry has a known policy
 * type, every bucket a failure result type, and the walk over its
 * strings, MX patterns and buckets stays in the value and ends exactly
 * at its end, the strings' lengths included.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy/tlsrpt.h"
#include "policy/tlsrpt_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
within(const unsigned char *b, const unsigned char *end,
    const struct tr_str *s)
{
	if (s->p < b || s->p > end || (size_t)(end - s->p) < s->n)
		__builtin_trap();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tr_entry e;
	struct tr_str s;
	struct tr_bucket bk;
	const unsigned char *q, *end;
	unsigned char *b;
	uint32_t i;
	int k;

	if ((b = malloc(size ? size : 1)) == NULL)
		return 0;
	memcpy(b, data, size);
	end = b + size;
	if (tr_entry_decode(b, size, &e) == -1)
		goto out;
	if (e.type >= TLSRPT_POLICY_NTYPES || e.end != end ||
	    e.strs != b + TR_HDR)
		__builtin_trap();
	for (q = e.strs, i = 0; i < e.nstr; i++) {
		tr_next_str(&q, &s);
		within(b, end, &s);
	}
	if (q != e.mx)
		__builtin_trap();
	for (i = 0; i < e.nmx; i++) {
		tr_next_str(&q, &s);
		within(b, end, &s);
	}
	if (q != e.buckets)
		__builtin_trap();
	for (i = 0; i < e.nbuckets; i++) {
		if (end - q < 9)
			__builtin_trap();
		tr_next_bucket(&q, &bk);
		if (bk.result == TLSRPT_SUCCESS || bk.result >= TLSRPT_NRESULTS)
			__builtin_trap();
		for (k = 0; k < TR_BUCKET_STRS; k++)
			within(b, end, &bk.s[k]);
	}
	if (q != end)
		__builtin_trap();
out:
	free(b);
	return 0;
}
