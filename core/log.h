/*
 * log.h - one line per event, to stderr or syslog.
 *
 * Lines are logfmt, "event=NAME key=value ...": the callers format the
 * fields, and every value that can hold text from outside (the network, a
 * DNS answer, an HTTP body, a certificate, the client, the configuration)
 * goes through log_q(), so that no sender, server or record can add a
 * field or a line of its own.  A line that does not fit, with its time
 * stamp, prefix and newline, in PIPE_BUF (4,096) bytes is cut where no
 * value or escape breaks, and ends in "truncated=yes": each record is
 * one write that a pipe shared by the workers never splits (log.c).
 * On stderr each line gets an ISO-8601 time and "mxguard[pid]: " in front,
 * except when stderr is the systemd journal (JOURNAL_STREAM names
 * stderr's device and inode): journald stamps lines and knows the pid
 * itself, so a line gets only its syslog priority, "<3>" err, "<4>"
 * warning, "<6>" info, "<7>" debug, which journald strips and records.
 */
#ifndef MXG_LOG_H
#define MXG_LOG_H

#include <stddef.h>

enum log_level { LOG_LVL_ERR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

void	 log_init(const char *ident, int use_syslog, enum log_level level);
void	 log_set_level(enum log_level level);
int	 log_enabled(enum log_level level);
void	 log_msg(enum log_level level, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
/* Parses "err", "warn", "info", "debug"; -1 if none of them. */
int	 log_level_parse(const char *s);

#define log_err(...)	log_msg(LOG_LVL_ERR, __VA_ARGS__)
#define log_warn(...)	log_msg(LOG_LVL_WARN, __VA_ARGS__)
/* info and debug: the arguments (quoting, names) are not even computed
 * below the level */
#define log_info(...)	do { if (log_enabled(LOG_LVL_INFO)) \
	log_msg(LOG_LVL_INFO, __VA_ARGS__); } while (0)
#define log_debug(...)	do { if (log_enabled(LOG_LVL_DEBUG)) \
	log_msg(LOG_LVL_DEBUG, __VA_ARGS__); } while (0)

/* Writes s into buf as a logfmt value: as is when it is a plain token
 * (printable ASCII without '"', '\\' or '='), else in double quotes with
 * JSON's escapes: \" \\ \n \r \t, and \uXXXX for other control bytes
 * and for everything beyond ASCII (a byte that is not valid UTF-8 becomes
 * \ufffd).  "" for an empty or NULL s.  Truncated to fit, with "..." at
 * the end inside the quotes.  Returns buf.  bufsz >= 8. */
const char *log_q(char *buf, size_t bufsz, const char *s);
/* Same for a byte range that need not be NUL-terminated. */
const char *log_qn(char *buf, size_t bufsz, const char *s, size_t len);

#endif
