/*
 * test_log.c - log_q()/log_qn(): a value from outside, however hostile
 * (spaces, '=', quotes, backslashes, CR/LF, control bytes, UTF-8, bytes
 * that are not UTF-8), is one logfmt value.  A strict logfmt parser (below)
 * splits a line built as the callers build theirs ("event=x from=%s
 * next=1") and must find exactly the three fields, with the value decoding
 * to the original text (bytes that are not UTF-8 to U+FFFD).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/log.h"

/* ---------------------------------------------------- a strict logfmt parser
 *
 * line   = field *(" " field)
 * field  = key "=" value
 * key    = 1*(%x21-7E except '=' and '"')
 * value  = bare / quoted
 * bare   = 1*(%x21-7E except '=' and '"')
 * quoted = '"' *(%x20-7E except '"' and '\' / escape) '"'
 * escape = '\' ('"' / '\' / '/' / 'b' / 'f' / 'n' / 'r' / 't' / 'u' 4HEX)
 *
 * Stricter than the logfmt parsers in use (go-logfmt, python's logfmter):
 * no raw byte outside printable ASCII, every key has a value, and a \u
 * escape of a surrogate must be a high one followed by a low one (serde's
 * rule), so what passes here passes there.
 */
#define MAXF 8

struct field {
	char	key[64];
	char	val[8192];	/* decoded, UTF-8 */
	size_t	vlen;
};

static int
key_byte(unsigned char c)
{
	return c > ' ' && c < 0x7f && c != '=' && c != '"';
}

static int
hex4(const char *p, long *v)
{
	int i;

	*v = 0;
	for (i = 0; i < 4; i++) {
		char c = p[i];

		*v <<= 4;
		if (c >= '0' && c <= '9')
			*v |= c - '0';
		else if (c >= 'a' && c <= 'f')
			*v |= c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			*v |= c - 'A' + 10;
		else
			return -1;
	}
	return 0;
}

static size_t
put_utf8(char *o, long cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xc0 | cp >> 6);
		o[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xe0 | cp >> 12);
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		o[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | cp >> 18);
	o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	o[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* Returns the number of fields, or -1 if the line is not strict logfmt. */
static int
logfmt_parse(const char *line, struct field *f, int maxf)
{
	const char *p = line;
	int n = 0;

	for (;;) {
		size_t k = 0, o = 0;

		if (n == maxf)
			return -1;
		while (key_byte((unsigned char)*p) && k < sizeof(f[n].key) - 1)
			f[n].key[k++] = *p++;
		f[n].key[k] = '\0';
		if (k == 0 || *p++ != '=')
			return -1;
		if (*p == '"') {
			for (p++; *p != '"'; p++) {
				unsigned char c = (unsigned char)*p;
				long cp, lo;

				if (o + 4 >= sizeof(f[n].val))
					return -1;
				if (c < ' ' || c >= 0x7f)
					return -1;	/* raw: not strict */
				if (c != '\\') {
					f[n].val[o++] = (char)c;
					continue;
				}
				switch (*++p) {
				case '"': case '\\': case '/':
					f[n].val[o++] = *p; break;
				case 'b': f[n].val[o++] = '\b'; break;
				case 'f': f[n].val[o++] = '\f'; break;
				case 'n': f[n].val[o++] = '\n'; break;
				case 'r': f[n].val[o++] = '\r'; break;
				case 't': f[n].val[o++] = '\t'; break;
				case 'u':
					if (hex4(p + 1, &cp) == -1)
						return -1;
					p += 4;
					if (cp >= 0xdc00 && cp <= 0xdfff)
						return -1;	/* lone low */
					if (cp >= 0xd800 && cp <= 0xdbff) {
						if (p[1] != '\\' || p[2] != 'u' ||
						    hex4(p + 3, &lo) == -1 ||
						    lo < 0xdc00 || lo > 0xdfff)
							return -1;
						p += 6;
						cp = 0x10000 + ((cp - 0xd800) << 10) +
						    (lo - 0xdc00);
					}
					o += put_utf8(f[n].val + o, cp);
					break;
				default:
					return -1;
				}
			}
			p++;
		} else {
			while (key_byte((unsigned char)*p)) {
				if (o + 1 >= sizeof(f[n].val))
					return -1;
				f[n].val[o++] = *p++;
			}
			if (o == 0)
				return -1;
		}
		f[n].val[o] = '\0';
		f[n].vlen = o;
		n++;
		if (*p == '\0')
			return n;
		if (*p++ != ' ')
			return -1;
	}
}

/* ------------------------------------------------------------------ helpers */

/* What a logfmt reader must get back for s: s itself, with each byte that
 * is not part of valid UTF-8 replaced by U+FFFD. */
static size_t
expected(const unsigned char *s, size_t len, char *out)
{
	size_t i = 0, o = 0, need, j;
	long cp, min;

	while (i < len) {
		unsigned char c = s[i];

		if (c < 0x80) {
			out[o++] = (char)c;
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			need = 2, cp = c & 0x1f, min = 0x80;
		else if (c >= 0xe0 && c <= 0xef)
			need = 3, cp = c & 0x0f, min = 0x800;
		else if (c >= 0xf0 && c <= 0xf4)
			need = 4, cp = c & 0x07, min = 0x10000;
		else
			goto bad;
		if (i + need > len)
			goto bad;
		for (j = 1; j < need; j++) {
			if ((s[i + j] & 0xc0) != 0x80)
				goto bad;
			cp = cp << 6 | (s[i + j] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			goto bad;
		memcpy(out + o, s + i, need);
		o += need;
		i += need;
		continue;
bad:
		memcpy(out + o, "\xef\xbf\xbd", 3);
		o += 3;
		i++;
	}
	return o;
}

/* Quotes s (len bytes) into a buffer of bufsz, builds a line around it,
 * parses it strictly: exactly the three fields, and the value is s. */
static void
check_one(const char *s, size_t len, size_t bufsz)
{
	char *q = malloc(bufsz), line[9000], want[8192 * 3];
	struct field *f = calloc(MAXF, sizeof(*f));
	size_t wl, ql;
	int n;

	assert_non_null(q);
	assert_non_null(f);
	log_qn(q, bufsz, s, len);
	ql = strlen(q);
	assert_true(ql < bufsz);
	snprintf(line, sizeof(line), "event=x from=%s next=1", q);
	n = logfmt_parse(line, f, MAXF);
	if (n != 3)
		fail_msg("not 3 logfmt fields (%d): %s", n, line);
	assert_string_equal(f[0].key, "event");
	assert_string_equal(f[1].key, "from");
	assert_string_equal(f[2].key, "next");
	assert_string_equal(f[2].val, "1");
	wl = expected((const unsigned char *)s, len, want);
	if (f[1].vlen != wl || memcmp(f[1].val, want, wl) != 0) {
		/* only a value that cannot fit is cut: a prefix, then "..." */
		if (bufsz >= 6 * len + 6)	/* 6: \ufffd for one byte */
			fail_msg("value does not decode to the text: %s", line);
		if (f[1].vlen < 3 || f[1].vlen - 3 > wl ||
		    memcmp(f[1].val + f[1].vlen - 3, "...", 3) != 0 ||
		    memcmp(f[1].val, want, f[1].vlen - 3) != 0)
			fail_msg("cut value is not a prefix + \"...\": %s", line);
	}
	free(f);
	free(q);
}

/* ------------------------------------------------------------------- tests */

static void
test_hostile(void **state)
{
	static const char hostile[] =
	    "<a b=c> \"quoted\" back\\slash x=y level=err\n"
	    "event=forged line\r\ttab \x01\x1b[31m\x7f "
	    "caf\xc3\xa9 \xe2\x80\xae bidi \xf0\x9f\x98\x80 "
	    "\x80 \xff \xc3( \xed\xa0\x80 \xf4\x90\x80\x80 \xc0\xaf end";
	char q[1024];

	check_one(hostile, sizeof(hostile) - 1, sizeof(q));
	log_q(q, sizeof(q), hostile);
	/* one line, plain ASCII */
	assert_null(strchr(q, '\n'));
	assert_null(strchr(q, '\r'));
	for (size_t i = 0; q[i]; i++)
		assert_true((unsigned char)q[i] >= ' ' &&
		    (unsigned char)q[i] < 0x7f);
	/* the escapes themselves, as documented in log.h */
	assert_non_null(strstr(q, "\\\"quoted\\\""));
	assert_non_null(strstr(q, "back\\\\slash"));
	assert_non_null(strstr(q, "err\\nevent"));
	assert_non_null(strstr(q, "line\\r\\ttab \\u0001\\u001b[31m\\u007f"));
	assert_non_null(strstr(q, "caf\\u00e9 \\u202e bidi \\ud83d\\ude00"));
	assert_non_null(strstr(q, "\\ufffd \\ufffd \\ufffd( \\ufffd\\ufffd"
	    "\\ufffd \\ufffd\\ufffd\\ufffd\\ufffd \\ufffd\\ufffd end"));
}

static void
test_forged_fields(void **state)
{
	static const char *const v[] = {
		"x\" forged=1 y=\"",
		"bob@example.org> level=warn policy=none",
		"a=b",
		"=",
		"\"",
		"\\",
		"\\\"",
		"x\\",
		"",
		" ",
		"\n",
		"-",
		"mx1.example.com",
		"<bob@example.org>",
	};
	size_t i;

	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		check_one(v[i], strlen(v[i]), 256);
}

static void
test_plain_and_empty(void **state)
{
	char q[64];

	assert_string_equal(log_q(q, sizeof(q), "mx1.example.com"),
	    "mx1.example.com");
	assert_string_equal(log_q(q, sizeof(q), "<a@b.c>"), "<a@b.c>");
	assert_string_equal(log_q(q, sizeof(q), ""), "\"\"");
	assert_string_equal(log_q(q, sizeof(q), NULL), "\"\"");
	assert_string_equal(log_q(q, sizeof(q), "a b"), "\"a b\"");
	assert_string_equal(log_q(q, sizeof(q), "k=v"), "\"k=v\"");
}

static void
test_truncation(void **state)
{
	char big[3000];
	size_t i, sz;

	for (i = 0; i < sizeof(big); i++)
		big[i] = "a \"\\\n\xc3\xa9\xf0\x9f\x98\x80\xff="[i % 14];
	for (sz = 8; sz <= 80; sz++)
		check_one(big, sizeof(big), sz);
	check_one(big, sizeof(big), 512);
}

/* every single byte, and pseudo-random strings weighted toward the bytes
 * that matter, at several buffer sizes */
static void
test_all_bytes_and_random(void **state)
{
	static const unsigned char pick[] = { ' ', '=', '"', '\\', '\n', '\r',
	    '\t', 0, 0x7f, 0x80, 0xbf, 0xc2, 0xc3, 0xe0, 0xe2, 0xed, 0xf0,
	    0xf4, 0xf5, 0xff, 'a', 'Z', '.', '<', '>', '@' };
	unsigned char s[200];
	uint32_t x = 12345;
	int c, r;
	size_t i, len;

	for (c = 0; c < 256; c++) {
		s[0] = (unsigned char)c;
		check_one((char *)s, 1, 64);
	}
	for (r = 0; r < 20000; r++) {
		x = x * 1103515245 + 12345;
		len = (x >> 16) % sizeof(s);
		for (i = 0; i < len; i++) {
			x = x * 1103515245 + 12345;
			s[i] = (x >> 24) & 1 ? pick[(x >> 16) % sizeof(pick)] :
			    (unsigned char)(x >> 16);
		}
		check_one((char *)s, len, r % 3 == 0 ? 2048 : 8 + r % 200);
	}
}

/* ------------------------------------------------------- journald prefixes
 *
 * Logs one warning and one info line with stderr on a pipe and
 * JOURNAL_STREAM set to "DEV:INO" (the pipe's own when match, another
 * inode's otherwise); returns what came out of the pipe.
 */
static void
log_through_pipe(int match, char *out, size_t outsz)
{
	int p[2], saved;
	struct stat st;
	char env[64];
	ssize_t n;

	assert_int_equal(pipe(p), 0);
	assert_int_equal(fstat(p[1], &st), 0);
	snprintf(env, sizeof(env), "%llu:%llu",
	    (unsigned long long)st.st_dev,
	    (unsigned long long)st.st_ino + (match ? 0 : 1));
	assert_int_equal(setenv("JOURNAL_STREAM", env, 1), 0);
	fflush(stderr);
	assert_true((saved = dup(STDERR_FILENO)) >= 0);
	assert_int_equal(dup2(p[1], STDERR_FILENO), STDERR_FILENO);
	log_init("mxguard", 0, LOG_LVL_INFO);
	log_warn("event=test-warning n=%d", 1);
	log_info("event=test-info");
	log_debug("event=test-debug");
	fflush(stderr);
	assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
	close(saved);
	close(p[1]);
	n = read(p[0], out, outsz - 1);
	close(p[0]);
	unsetenv("JOURNAL_STREAM");
	log_init("mxguard", 0, LOG_LVL_INFO);
	assert_true(n > 0);
	out[n] = '\0';
}

static void
test_journal_prefix(void **state)
{
	char out[1024];

	(void)state;
	log_through_pipe(1, out, sizeof(out));
	assert_string_equal(out, "<4>event=test-warning n=1\n"
	    "<6>event=test-info\n");
	assert_null(strstr(out, "mxguard["));
}

/* JOURNAL_STREAM inherited while stderr goes elsewhere: the usual lines */
static void
test_journal_other_stream(void **state)
{
	char out[1024];

	(void)state;
	log_through_pipe(0, out, sizeof(out));
	assert_non_null(strstr(out, "mxguard["));
	assert_non_null(strstr(out, "]: event=test-warning n=1\n"));
	assert_null(strstr(out, "<4>"));
	/* the ISO-8601 stamp is back, since journald is not stamping */
	assert_true(out[4] == '-' && out[10] == 'T');
}

/* ------------------------------------------------------- lines cut to fit
 *
 * A line longer than log_msg()'s buffer (a debug line quoting a long,
 * hostile SMTP line is one) is cut.  It must stay strict logfmt: a quoted
 * value closed, no escape or surrogate pair cut in half, no key without
 * its value, and "truncated=yes" at its end.  The value's text is put
 * after pad bytes so that the cut falls at every offset of an escape.
 */
static void
log_long_line(const char *val, size_t vlen, size_t pad, const char *plain)
{
	static char q[12000], out[70000], s[5000];
	struct field *f = calloc(MAXF, sizeof(*f));
	int p[2], saved, n, i;
	ssize_t r;
	size_t o = 0;
	char *line, *nl;

	assert_non_null(f);
	memset(s, 'p', pad);
	for (o = pad; o + vlen < sizeof(s) - 1; o += vlen)
		memcpy(s + o, val, vlen);
	log_qn(q, sizeof(q), s, o);
	assert_int_equal(pipe(p), 0);
	fflush(stderr);
	assert_true((saved = dup(STDERR_FILENO)) >= 0);
	assert_int_equal(dup2(p[1], STDERR_FILENO), STDERR_FILENO);
	log_init("mxguard", 0, LOG_LVL_DEBUG);
	if (plain != NULL)	/* the cut in a bare value */
		log_debug("sid=0123456789ab event=upstream-line a=1 "
		    "x=\"a b\" text=%s next=1", plain + pad);
	else
		log_debug("sid=0123456789ab event=upstream-line a=1 text=%s "
		    "next=1", q);
	fflush(stderr);
	assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
	close(saved);
	close(p[1]);
	for (o = 0; (r = read(p[0], out + o, sizeof(out) - 1 - o)) > 0;)
		o += (size_t)r;
	close(p[0]);
	log_init("mxguard", 0, LOG_LVL_INFO);
	out[o] = '\0';
	assert_non_null(line = strstr(out, "]: "));
	line += 3;
	assert_non_null(nl = strchr(line, '\n'));
	*nl = '\0';
	assert_true(strlen(line) < 4096);
	n = logfmt_parse(line, f, MAXF);
	if (n < 2)
		fail_msg("cut line is not logfmt (pad %zu): ...%s", pad,
		    line + (strlen(line) > 80 ? strlen(line) - 80 : 0));
	assert_string_equal(f[n - 1].key, "truncated");
	assert_string_equal(f[n - 1].val, "yes");
	for (i = 0; i < n - 1; i++)
		assert_string_not_equal(f[i].key, "next");
	if (plain == NULL) {
		assert_string_equal(f[3].key, "text");
		assert_true(f[3].vlen > 500);
		assert_memory_equal(f[3].val + f[3].vlen - 3, "...", 3);
	}
	free(f);
}

static void
test_long_line_cut(void **state)
{
	static const char *const vals[] = {
		"\x01",			/* \u0001 */
		"\xf0\x9f\x98\x80",	/* \ud83d\ude00 */
		"\"",			/* \" */
		"a b",
		"\xff",			/* \ufffd */
	};
	static char bare[5000];
	size_t i, pad;

	(void)state;
	for (i = 0; i < sizeof(vals) / sizeof(vals[0]); i++)
		for (pad = 0; pad < 14; pad++)
			log_long_line(vals[i], strlen(vals[i]), pad, NULL);
	memset(bare, 'b', sizeof(bare) - 1);
	for (pad = 0; pad < 4; pad++)
		log_long_line("\x01", 1, pad, bare);
}

/*
 * Workers share stderr.  When it is a pipe (a container runtime's log
 * pipe, `mxguard run 2>&1 | logger`), POSIX keeps a write(2) of at most
 * PIPE_BUF bytes whole; a longer one may be split wherever the pipe is
 * full, and another worker's line lands in the middle: the rest of the
 * first line, text of the MX's reply from inside a quoted value, then
 * reads as a line of its own, with the fields the MX wrote there
 * (" event=forged ...").  So a record (time stamp, "mxguard[pid]: ",
 * line, newline) is at most PIPE_BUF bytes, one write.  Two processes
 * log lines cut to fit (a long reply of non-ASCII text, escaped) into
 * one pipe of PIPE_BUF bytes that is read slowly: every line read is one
 * of theirs, whole.  Red before: records of 4,135 bytes, and lines made
 * of the rest of another (most of them).
 */
static void
log_hostile_replies(int fd, int who)
{
	static char text[4000], q[8192];
	size_t o = 0;
	int i;

	while (o + 40 < sizeof(text)) {
		memcpy(text + o, " event=forged mx=victim.example ", 32);
		o += 32;
		memcpy(text + o, "\xc3\xa9\xc3\xa9", 4);	/* \u00e9 each */
		o += 4;
	}
	if (dup2(fd, STDERR_FILENO) != STDERR_FILENO)
		_exit(2);
	log_init("mxguard", 0, LOG_LVL_INFO);
	for (i = 0; i < 100; i++)
		log_info("sid=%06d%06d event=mail-refused dst=192.0.2.1:25 "
		    "code=550 text=%s", who, i, log_qn(q, sizeof(q), text, o));
	_exit(0);
}

static void
test_pipe_lines_whole(void **state)
{
	static char out[1 << 21];
	struct field *f = calloc(MAXF, sizeof(*f));
	char *line, *nl, *sep;
	int p[2], i, st, n, bad = 0, lines = 0, shown = 0;
	size_t o = 0, longest = 0;
	pid_t pid[2];
	ssize_t r;

	(void)state;
	assert_non_null(f);
	assert_int_equal(pipe(p), 0);
	/* the pipe's smallest size: a full pipe is what splits a write */
	assert_true(fcntl(p[1], F_SETPIPE_SZ, PIPE_BUF) >= PIPE_BUF);
	fflush(stderr);
	for (i = 0; i < 2; i++) {
		assert_true((pid[i] = fork()) != -1);
		if (pid[i] == 0) {
			close(p[0]);
			log_hostile_replies(p[1], i);
		}
	}
	close(p[1]);
	while ((r = read(p[0], out + o, o + 1000 < sizeof(out) - 1 ? 1000 :
	    sizeof(out) - 1 - o)) > 0)
		o += (size_t)r;
	close(p[0]);
	out[o] = '\0';
	for (i = 0; i < 2; i++) {
		assert_int_equal(waitpid(pid[i], &st, 0), pid[i]);
		assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	for (line = out; (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
		*nl = '\0';
		lines++;
		if ((size_t)(nl - line) + 1 > longest)
			longest = (size_t)(nl - line) + 1;
		/* "2026-...Z mxguard[pid]: sid=... event=mail-refused" */
		if ((sep = strstr(line, "]: ")) == NULL ||
		    strncmp(strchr(line, ' ') ? strchr(line, ' ') + 1 : "",
		    "mxguard[", 8) != 0 ||
		    (n = logfmt_parse(sep + 3, f, MAXF)) < 2 ||
		    strcmp(f[0].key, "sid") != 0 ||
		    strcmp(f[1].val, "mail-refused") != 0 ||
		    strcmp(f[n - 1].key, "truncated") != 0) {
			/* the first one, and the first that does not even
			 * start as a line of ours */
			if (bad++ == 0 || (sep == NULL && !shown)) {
				print_message("# not a whole line: %.100s\n",
				    line);
				shown |= sep == NULL;
			}
		}
	}
	free(f);
	print_message("# %d lines, %d not whole, longest record %zu bytes\n",
	    lines, bad, longest);
	if (longest > PIPE_BUF)
		fail_msg("a record of %zu bytes: more than PIPE_BUF (%d), "
		    "not one atomic write to a pipe", longest, PIPE_BUF);
	assert_int_equal(bad, 0);
	assert_int_equal(lines, 200);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hostile),
		cmocka_unit_test(test_forged_fields),
		cmocka_unit_test(test_plain_and_empty),
		cmocka_unit_test(test_truncation),
		cmocka_unit_test(test_all_bytes_and_random),
		cmocka_unit_test(test_journal_prefix),
		cmocka_unit_test(test_journal_other_stream),
		cmocka_unit_test(test_long_line_cut),
		cmocka_unit_test(test_pipe_lines_whole),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
