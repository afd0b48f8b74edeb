/*
 * log.c - event lines to stderr or syslog (see log.h).
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"

static const char *log_ident = "mxguard";
static int log_syslog;
static int log_stamp = 1;
static int log_journal;		/* stderr is a journald stream */
static enum log_level log_max = LOG_LVL_INFO;

/*
 * systemd sets JOURNAL_STREAM to "DEV:INODE" of the stream it connected
 * to stdout/stderr (sd-daemon(3), systemd.exec(5)).  The variable is
 * inherited by children whose stderr may go elsewhere (a pipe, a
 * terminal), so only a match with stderr's own device and inode counts.
 */
static int
stderr_is_journal(void)
{
	const char *e = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	int n = 0;

	if (e == NULL || sscanf(e, "%llu:%llu%n", &dev, &ino, &n) != 2 ||
	    e[n] != '\0' || fstat(STDERR_FILENO, &st) == -1)
		return 0;
	return (unsigned long long)st.st_dev == dev &&
	    (unsigned long long)st.st_ino == ino;
}

void
log_init(const char *ident, int use_syslog, enum log_level level)
{
	log_ident = ident;
	log_syslog = use_syslog;
	log_max = level;
	/* journald stamps lines itself, and knows the pid and unit */
	log_journal = stderr_is_journal();
	log_stamp = !log_journal;
	if (use_syslog)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void
log_set_level(enum log_level level)
{
	log_max = level;
}

int
log_enabled(enum log_level level)
{
	return level <= log_max;
}

int
log_level_parse(const char *s)
{
	static const char *names[] = { "err", "warn", "info", "debug" };
	int i;

	for (i = 0; i < 4; i++)
		if (strcmp(s, names[i]) == 0)
			return i;
	return -1;
}

/*
 * A line that did not fit was cut by vsnprintf() anywhere: in a quoted
 * value, whose closing quote is then missing, in the middle of an escape
 * ("\u00" and no more), or between the halves of a surrogate pair, which
 * logfmt readers refuse or misread.  Cut it again where nothing breaks:
 * inside a quoted value after its last whole character or escape, closed
 * with `..."` (as log_qn() ends a value it cut); outside one, before the
 * field the cut fell in.  " truncated=yes" says that the line is not
 * whole.  sz >= 64.
 */
static void
line_cut(char *line, size_t sz)
{
	static const char tail[] = " truncated=yes";
	size_t lim = sz - sizeof(tail) - 4, i = 0, n, field = 0;
	int inq = 0;

	while (i < lim) {
		if (!inq) {
			if (line[i] == ' ')
				field = i;
			else if (line[i] == '"')
				inq = 1;
			i++;
			continue;
		}
		n = 1;
		if (line[i] == '\\') {
			/* \X, \uXXXX, or a pair \udXXX\udXXX (high first) */
			n = 2;
			if (line[i + 1] == 'u')
				n = line[i + 2] == 'd' && (line[i + 3] == '8' ||
				    line[i + 3] == '9' || line[i + 3] == 'a' ||
				    line[i + 3] == 'b') ? 12 : 6;
		} else if (line[i] == '"')
			inq = 0;
		if (i + n > lim)
			break;
		i += n;
	}
	if (inq) {
		memcpy(line + i, "...\"", 4);
		i += 4;
	} else
		i = field;
	/* (no space before the cut: the tail alone, without its space) */
	memcpy(line + i, tail + (i == 0), sizeof(tail) - (i == 0));
}

/*
 * A record on stderr (time stamp or priority, "mxguard[pid]: ", the line,
 * the newline) is formatted in one buffer of PIPE_BUF bytes and written
 * with one call.  The workers share stderr; when it is a pipe (a
 * container runtime's, `2>&1 | logger`), POSIX keeps a write of at most
 * PIPE_BUF bytes whole, and splits a longer one wherever the pipe is
 * full: another worker's line then lands inside it, and the rest of it,
 * text from inside a quoted value that a peer chose, reads as a line of
 * its own, with whatever fields that text holds.  The line is cut to fit
 * (line_cut()).
 */
#define PREFIX_MAX	128	/* stamp, ident (cut to 64), pid */

void
log_msg(enum log_level level, const char *fmt, ...)
{
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	char rec[PIPE_BUF], *line;
	size_t pre = 0, room, len;
	va_list ap;
	int n;

	if (level > log_max)
		return;
	if (!log_syslog) {
		if (log_journal)	/* "<N>": the line's syslog priority */
			pre = (size_t)snprintf(rec, PREFIX_MAX, "<%d>",
			    prio[level]);
		else {
			char stamp[64] = "";

			if (log_stamp) {
				struct timespec ts;
				struct tm tm;

				clock_gettime(CLOCK_REALTIME, &ts);
				gmtime_r(&ts.tv_sec, &tm);
				snprintf(stamp, sizeof(stamp),
				    "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ ",
				    tm.tm_year + 1900, tm.tm_mon + 1,
				    tm.tm_mday, tm.tm_hour, tm.tm_min,
				    tm.tm_sec, (ts.tv_nsec / 1000000) % 1000);
			}
			pre = (size_t)snprintf(rec, PREFIX_MAX, "%s%.64s[%ld]: ",
			    stamp, log_ident, (long)getpid());
		}
		if (pre >= PREFIX_MAX)
			pre = PREFIX_MAX - 1;
	}
	/* the line, and room for the newline after it */
	line = rec + pre;
	room = sizeof(rec) - pre - 1;
	va_start(ap, fmt);
	n = vsnprintf(line, room, fmt, ap);
	va_end(ap);
	if (n >= (int)room)
		line_cut(line, room);
	if (log_syslog) {
		syslog(prio[level], "%s", line);
		return;
	}
	len = pre + strlen(line);
	rec[len++] = '\n';
	(void)fwrite(rec, 1, len, stderr);
}

/*
 * The code point of the UTF-8 sequence at s[0..len), with its length in
 * *n; -1 (and *n = 1) when s does not start with a valid, shortest-form
 * sequence of a scalar value (no surrogates, nothing above U+10FFFF).
 */
static long
utf8_next(const unsigned char *s, size_t len, size_t *n)
{
	static const long min[] = { 0, 0, 0x80, 0x800, 0x10000 };
	size_t need, i;
	long cp;

	*n = 1;
	if (s[0] < 0x80)
		return s[0];
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		need = 2; cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		need = 3; cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		need = 4; cp = s[0] & 0x07;
	} else
		return -1;
	if (len < need)
		return -1;
	for (i = 1; i < need; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return -1;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if (cp < min[need] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return -1;
	*n = need;
	return cp;
}

/* "\uXXXX" for a code point of the BMP, into out (7 bytes with NUL) */
static size_t
put_u(char *out, long cp)
{
	static const char hex[] = "0123456789abcdef";

	out[0] = '\\'; out[1] = 'u';
	out[2] = hex[(cp >> 12) & 15]; out[3] = hex[(cp >> 8) & 15];
	out[4] = hex[(cp >> 4) & 15]; out[5] = hex[cp & 15];
	return 6;
}

/*
 * The quoting is logfmt's (and JSON's, whose string syntax logfmt parsers
 * use for quoted values): \" \\ \n \r \t, other control bytes and
 * everything beyond ASCII as \uXXXX (UTF-16 pairs above U+FFFF), so a line
 * is plain ASCII, cannot be split, and decodes to the original text.  A
 * byte that is not part of valid UTF-8 becomes \ufffd, U+FFFD.
 */
const char *
log_qn(char *buf, size_t bufsz, const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i, o = 0, n;
	int plain = len > 0;

	for (i = 0; i < len && plain; i++)
		if (u[i] <= ' ' || u[i] >= 0x7f || u[i] == '"' ||
		    u[i] == '\\' || u[i] == '=')
			plain = 0;
	if (plain && len < bufsz) {
		memcpy(buf, s, len);
		buf[len] = '\0';
		return buf;
	}
	buf[o++] = '"';
	for (i = 0; i < len; i += n) {
		char tmp[13];
		size_t tn;
		long cp = utf8_next(u + i, len - i, &n);

		if (cp == '"' || cp == '\\') {
			tmp[0] = '\\'; tmp[1] = (char)cp; tn = 2;
		} else if (cp == '\n' || cp == '\r' || cp == '\t') {
			tmp[0] = '\\';
			tmp[1] = cp == '\n' ? 'n' : cp == '\r' ? 'r' : 't';
			tn = 2;
		} else if (cp >= ' ' && cp < 0x7f) {
			tmp[0] = (char)cp; tn = 1;
		} else if (cp < 0)
			tn = put_u(tmp, 0xfffd);
		else if (cp < 0x10000)
			tn = put_u(tmp, cp);
		else {
			tn = put_u(tmp, 0xd800 + ((cp - 0x10000) >> 10));
			tn += put_u(tmp + tn, 0xdc00 + ((cp - 0x10000) & 0x3ff));
		}
		if (o + tn + 5 > bufsz) {	/* room for "...", '"', NUL */
			memcpy(buf + o, "...", 3);
			o += 3;
			break;
		}
		memcpy(buf + o, tmp, tn);
		o += tn;
	}
	buf[o++] = '"';
	buf[o] = '\0';
	return buf;
}

const char *
log_q(char *buf, size_t bufsz, const char *s)
{
	return log_qn(buf, bufsz, s ? s : "", s ? strlen(s) : 0);
}
