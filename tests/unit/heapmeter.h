/*
 * heapmeter.h - does glibc's mallinfo2() see this process's allocations?
 * Not under ASan (make SAN=1, make check-asan): its allocator does not
 * feed glibc's counters, the growth reads 0, and a bound measured with
 * them would pass (or a positive check fail) for nothing.  Tests that
 * measure the heap skip that part when heap_measurable() is 0.
 */
#ifndef MXG_TEST_HEAPMETER_H
#define MXG_TEST_HEAPMETER_H

#include <malloc.h>
#include <stdlib.h>

static inline int
heap_measurable(void)
{
	struct mallinfo2 m0 = mallinfo2(), m1;
	void *volatile p = malloc(64 * 1024);	/* below the mmap threshold */
	int ok;

	m1 = mallinfo2();
	ok = p != NULL && m1.uordblks >= m0.uordblks + 64 * 1024;
	free(p);
	return ok;
}

#endif
