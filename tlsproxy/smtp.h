/*
 * smtp.h - SMTP protocol pieces that do no I/O.
 *
 * The session (session.c) feeds these with lines and byte ranges that the io
 * layer delivered; nothing here allocates, so nothing here needs freeing.
 *
 *  - reply parser: accumulates the lines of one (possibly multi-line) server
 *    reply, bounded in line length, line count and total size;
 *  - command parser: splits a client command line into verb and argument and,
 *    for MAIL FROM / RCPT TO, extracts the path and the domain;
 *  - EHLO capability parser and filter: what the upstream offers, and the
 *    reply that mxguard relays to its client;
 *  - DATA scanner: copies message bytes towards the upstream, finds the
 *    CRLF.CRLF terminator across buffer boundaries, and normalises bare CR
 *    and bare LF to CRLF so that no byte sequence can end the message at the
 *    upstream earlier than it ends at mxguard (SMTP smuggling).
 */
#ifndef MXG_SMTP_H
#define MXG_SMTP_H

#include <stddef.h>

/* Longest reply or command line accepted, CRLF excluded (RFC 5321 says 512;
 * real servers send more). */
#define SMTP_LINE_MAX   2048
/* Bounds on one whole reply. */
#define SMTP_REPLY_MAX_LINES 64
#define SMTP_REPLY_MAX  (16 * 1024)

/* ---- reply parser ------------------------------------------------------ */

enum smtp_reply_status {
	SMTP_REPLY_MORE,	/* a continuation line ("250-"), feed the next */
	SMTP_REPLY_DONE,	/* the last line ("250 " or "250") arrived */
	SMTP_REPLY_BAD,		/* malformed; reply->err says why */
};

struct smtp_reply {
	int	 code;		/* 200..599 */
	int	 nlines;
	size_t	 len;		/* bytes used in buf */
	/* The lines as received, each rewritten to end in CRLF, so that the
	 * whole reply can be relayed verbatim. */
	char	 buf[SMTP_REPLY_MAX];
	/* Offsets of each line's text (after "ddd-"/"ddd ") in buf, and
	 * lengths, CRLF excluded. */
	unsigned short off[SMTP_REPLY_MAX_LINES];
	unsigned short tlen[SMTP_REPLY_MAX_LINES];
	const char *err;	/* static string when SMTP_REPLY_BAD */
};

void smtp_reply_init(struct smtp_reply *r);
/* Feed one line, without its line end (CRLF or bare LF already stripped).
 * Checks: three digits 2xx-5xx, separator ' ' or '-' or end of line, the
 * same code on every line, line length <= SMTP_LINE_MAX, no NUL, and the
 * line/size bounds above. */
enum smtp_reply_status smtp_reply_feed(struct smtp_reply *r,
    const char *line, size_t len);
/* Text of line i (0-based) after the code and separator; not NUL-ended. */
const char *smtp_reply_text(const struct smtp_reply *r, int i, size_t *len);
/* Enhanced status code ("4.7.1") of the last line into out, or "" when the
 * reply has none.  outsz >= 12 suffices. */
void smtp_reply_enhanced(const struct smtp_reply *r, char *out, size_t outsz);

/* ---- command parser ---------------------------------------------------- */

enum smtp_verb {
	SMTP_CMD_UNKNOWN = 0,
	SMTP_CMD_HELO, SMTP_CMD_EHLO, SMTP_CMD_MAIL, SMTP_CMD_RCPT,
	SMTP_CMD_DATA, SMTP_CMD_RSET, SMTP_CMD_NOOP, SMTP_CMD_QUIT,
	SMTP_CMD_VRFY, SMTP_CMD_EXPN, SMTP_CMD_HELP, SMTP_CMD_STARTTLS,
	SMTP_CMD_BDAT, SMTP_CMD_AUTH,
};

/* RFC 5321 4.5.3.1: what every server must take.  The parser refuses
 * no longer path (the upstream judges it), and only an ASCII domain
 * over SMTP_DOMAIN_MAX (a UTF-8 one is judged on its A-label). */
#define SMTP_PATH_MAX	 256	/* RFC 5321 4.5.3.1.3 */
#define SMTP_DOMAIN_MAX	 255	/* RFC 5321 4.5.3.1.2 */

struct smtp_cmd {
	enum smtp_verb verb;
	const char *arg;	/* points into the line: text after the verb
				 * and one space, may be empty */
	size_t	 arglen;
	/* MAIL and RCPT only, each as long as the line allows: */
	char	 path[SMTP_LINE_MAX + 1];	/* between < >, source route
						 * dropped, "" for <> */
	char	 domain[SMTP_LINE_MAX + 1];	/* after the '@', ASCII
						 * lowercased, a trailing '.'
						 * removed; "" if none */
	const char *params;	/* ESMTP parameters after '>', points into
				 * the line, may be empty */
	size_t	 paramslen;
	int	 bare;		/* the path came without < >: the line is
				 * never relayed, smtp_cmd_bracket() is */
};

/* Parses one client line (no line end).  Verbs are case-insensitive.
 * Returns 0, or -1 with *err set to a static text suitable for a 501 reply
 * (bad syntax of a known verb) or for a 500 reply (cmd->verb ==
 * SMTP_CMD_UNKNOWN).  "MAIL FROM:<>" is valid with an empty path; "RCPT
 * TO:<>" is not.  A source route (<@a,@b:user@d>) is accepted and dropped.
 * A path without < > is taken as one token, a mailbox without source route,
 * when no '<' or '>' follows it on the line (cmd->bare). */
int smtp_cmd_parse(const char *line, size_t len, struct smtp_cmd *cmd,
    const char **err);
/* For a parsed MAIL or RCPT: "MAIL FROM:<path> params" or "RCPT TO:<path>
 * params" into out (NUL-ended), the form a bare path (cmd->bare) is relayed
 * in, so that the server reads the address judged here.  Returns its length
 * (without the NUL); nothing is written when out is NULL or outsz is not
 * more than that.  For a bare path smtp_cmd_parse() made sure it is at most
 * SMTP_LINE_MAX. */
size_t smtp_cmd_bracket(const struct smtp_cmd *cmd, char *out, size_t outsz);
const char *smtp_verb_name(enum smtp_verb v);

/* ---- EHLO capabilities ------------------------------------------------- */

#define SMTP_CAP_STARTTLS	0x0001
#define SMTP_CAP_PIPELINING	0x0002
#define SMTP_CAP_SIZE		0x0004
#define SMTP_CAP_8BITMIME	0x0008
#define SMTP_CAP_SMTPUTF8	0x0010
#define SMTP_CAP_CHUNKING	0x0020
#define SMTP_CAP_AUTH		0x0040
#define SMTP_CAP_DSN		0x0080
#define SMTP_CAP_ENHSTATUS	0x0100
/* An EHLO keyword like "XXXXXXXA": a middlebox that overwrote STARTTLS. */
#define SMTP_CAP_STARTTLS_MASKED 0x1000

struct smtp_caps {
	unsigned flags;
	unsigned long size;	/* SIZE argument, 0 if none or unlimited */
};

void smtp_caps_parse(const struct smtp_reply *ehlo, struct smtp_caps *caps);
/* Builds the EHLO reply for the client: the upstream's first line kept,
 * then only the extensions mxguard can relay (SIZE, PIPELINING, 8BITMIME,
 * SMTPUTF8, DSN, ENHANCEDSTATUSCODES), STARTTLS only when offer_starttls;
 * CHUNKING, BINARYMIME, AUTH, XCLIENT and anything unknown are dropped.
 * SIZE goes without its limit (the cleartext EHLO is not authenticated).
 * Writes a complete CRLF-terminated 250 reply into out; returns its length,
 * or 0 when out is too small. */
size_t smtp_caps_filter(const struct smtp_reply *ehlo, int offer_starttls,
    char *out, size_t outsz);

/* ---- DATA scanner ------------------------------------------------------ */

enum smtp_data_status {
	SMTP_DATA_MORE,		/* all input consumed, message goes on */
	SMTP_DATA_END,		/* terminator consumed; bytes after it in
				 * the input are the client's next command */
	SMTP_DATA_FULL,		/* out filled before input was consumed */
};

struct smtp_data {
	int	 state;		/* private */
	unsigned long long bytes_in;	/* message bytes consumed */
	unsigned long bare_lf;		/* bare LFs normalised */
	unsigned long bare_cr;		/* bare CRs normalised */
};

void smtp_data_init(struct smtp_data *d);
/* Consumes bytes of in and appends what the upstream must receive to out:
 * CRLF line ends kept, a bare LF or a bare CR written as CRLF, and where
 * such a normalised line break is followed by '.', that dot doubled, since
 * the client never dot-stuffed a line it did not think was one.  The
 * terminator is only "CRLF . CRLF" as the client sent it (at the very
 * start of the data, ". CRLF"), and it is copied to out as ".\r\n".
 * *consumed and *produced report progress.  out needs no more than
 * 3 * inlen + 3 bytes to never return SMTP_DATA_FULL. */
enum smtp_data_status smtp_data_scan(struct smtp_data *d,
    const char *in, size_t inlen, char *out, size_t outsz,
    size_t *consumed, size_t *produced);
/* The length of the longest prefix of in that smtp_data_scan() would copy
 * to out unchanged, leaving nothing held back: whole lines that end in
 * CRLF, hold no other CR or LF and do not start with '.', then the start
 * of a line up to its first CR or LF.  Those bytes count as consumed (d
 * advances exactly as the scan would have), and the caller sends them as
 * they are, without a copy.  0 when the next byte needs the scanner. */
size_t smtp_data_clean(struct smtp_data *d, const char *in, size_t inlen);

#endif
