/*
 * allocfail.h - allocations that fail on demand, for sweeps that fail
 * each allocation of a scenario in turn (test_oom_*).  A test file that
 * includes it also carries "malloc calloc realloc" in its "// WRAP:" line.
 * While oom_at is not -1, the allocation numbered oom_at (counted from 0
 * in oom_n) made by mxguard's code fails, once, with ENOMEM; none fails
 * while oom_pause is set (a mock's own), and the libraries' own
 * (OpenSSL, c-ares, LMDB, cmocka) are not wrapped.  oom_now() serves the
 * file's own wrappers (strdup and the like).
 */
#ifndef MXG_TEST_ALLOCFAIL_H
#define MXG_TEST_ALLOCFAIL_H

#include <errno.h>
#include <stddef.h>

static long oom_at = -1, oom_n;
static int oom_pause;

static int
oom_now(void)
{
	if (oom_at < 0 || oom_pause || oom_n++ != oom_at)
		return 0;
	errno = ENOMEM;
	return 1;
}

void *__real_malloc(size_t);
void *__wrap_malloc(size_t);
void *__real_calloc(size_t, size_t);
void *__wrap_calloc(size_t, size_t);
void *__real_realloc(void *, size_t);
void *__wrap_realloc(void *, size_t);

void *
__wrap_malloc(size_t n)
{
	return oom_now() ? NULL : __real_malloc(n);
}

void *
__wrap_calloc(size_t n, size_t sz)
{
	return oom_now() ? NULL : __real_calloc(n, sz);
}

void *
__wrap_realloc(void *p, size_t n)
{
	return oom_now() ? NULL : __real_realloc(p, n);
}

#endif
