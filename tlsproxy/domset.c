/*
 * domset.c - a bounded set of TLSRPT reports (see domset.h).
 *
 * A linear scan: a set holds the reports of one session or one upstream
 * connection, and is asked once per recipient's verdict.
 */
#include <stdlib.h>

#include "tlsproxy/domset.h"

int
domset_add(struct domset *s, uint64_t key)
{
	uint64_t *n;
	int i, cap;

	for (i = 0; i < s->n; i++)
		if (s->key[i] == key)
			return 0;
	if (s->n == s->cap) {
		cap = s->cap ? 2 * s->cap : DOMSET_MIN;
		if (cap > DOMSET_MAX ||
		    (n = realloc(s->key, (size_t)cap * sizeof(*n))) == NULL)
			return -1;
		s->key = n;
		s->cap = cap;
	}
	s->key[s->n++] = key;
	return 1;
}

void
domset_clear(struct domset *s)
{
	free(s->key);
	s->key = NULL;
	s->n = s->cap = 0;
}
