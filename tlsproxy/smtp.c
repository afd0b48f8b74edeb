/*
 * smtp.c - SMTP protocol pieces that do no I/O: the reply parser, the
 * command parser, the EHLO capability parser and filter, and the DATA
 * scanner that finds the end of a message and normalises line breaks.
 *
 * Everything here reads bytes that came from outside, so every loop is
 * bounded by an explicit length, nothing is NUL-terminated by assumption,
 * and character classes are plain ASCII tests (no locale-dependent ctype).
 */
#include <limits.h>
#include <stddef.h>
#include <string.h>

#include "tlsproxy/smtp.h"

static int
is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static int
is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static unsigned char
to_lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

/* Compares n bytes of s with the upper-case ASCII literal up, ignoring case. */
static int
ci_eq(const char *s, size_t n, const char *up)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (up[i] == '\0')
			return 0;
		if (to_lower((unsigned char)s[i]) !=
		    to_lower((unsigned char)up[i]))
			return 0;
	}
	return up[n] == '\0';
}

/* Whether s (n bytes) starts with the upper-case literal up, ignoring case. */
static int
ci_prefix(const char *s, size_t n, const char *up)
{
	size_t i;

	for (i = 0; up[i] != '\0'; i++)
		if (i >= n || to_lower((unsigned char)s[i]) !=
		    to_lower((unsigned char)up[i]))
			return 0;
	return 1;
}

/* ---- reply parser ------------------------------------------------------ */

void
smtp_reply_init(struct smtp_reply *r)
{
	/* buf, off and tlen are only read below nlines/len: no need to clear
	 * 16 KB for every reply. */
	r->code = 0;
	r->nlines = 0;
	r->len = 0;
	r->err = NULL;
}

static enum smtp_reply_status
reply_bad(struct smtp_reply *r, const char *why)
{
	r->err = why;
	return SMTP_REPLY_BAD;
}

/* A reply is complete once a line without the '-' continuation arrived;
 * the byte before each line's text is its separator (or last digit). */
static int
reply_complete(const struct smtp_reply *r)
{
	if (r->nlines == 0)
		return 0;
	return r->buf[r->off[r->nlines - 1] - 1] != '-';
}

enum smtp_reply_status
smtp_reply_feed(struct smtp_reply *r, const char *line, size_t len)
{
	const unsigned char *u = (const unsigned char *)line;
	size_t i, need, hdr;
	int code, more;

	if (r->err != NULL)
		return SMTP_REPLY_BAD;
	if (reply_complete(r))
		return reply_bad(r, "line after the end of the reply");
	if (len > SMTP_LINE_MAX)
		return reply_bad(r, "reply line too long");
	if (len < 3 || !is_digit(u[0]) || !is_digit(u[1]) || !is_digit(u[2]))
		return reply_bad(r, "malformed reply code");
	code = (u[0] - '0') * 100 + (u[1] - '0') * 10 + (u[2] - '0');
	if (code < 200 || code > 599)
		return reply_bad(r, "reply code out of range");
	if (len > 3 && u[3] != ' ' && u[3] != '-')
		return reply_bad(r, "bad separator after reply code");
	if (r->nlines > 0 && code != r->code)
		return reply_bad(r, "reply code changes between lines");
	/* The reply is relayed verbatim: a NUL, or a CR or LF that the line
	 * splitter left inside the line, could smuggle a line to the client. */
	for (i = 3; i < len; i++)
		if (u[i] == '\0' || u[i] == '\r' || u[i] == '\n')
			return reply_bad(r, "NUL, CR or LF inside a reply line");
	if (r->nlines >= SMTP_REPLY_MAX_LINES)
		return reply_bad(r, "too many reply lines");
	need = len + 2;
	if (need > SMTP_REPLY_MAX - r->len)
		return reply_bad(r, "reply too long");

	hdr = len > 3 ? 4 : 3;
	more = len > 3 && u[3] == '-';
	memcpy(r->buf + r->len, line, len);
	r->buf[r->len + len] = '\r';
	r->buf[r->len + len + 1] = '\n';
	r->off[r->nlines] = (unsigned short)(r->len + hdr);
	r->tlen[r->nlines] = (unsigned short)(len - hdr);
	r->nlines++;
	r->len += need;
	r->code = code;
	return more ? SMTP_REPLY_MORE : SMTP_REPLY_DONE;
}

const char *
smtp_reply_text(const struct smtp_reply *r, int i, size_t *len)
{
	if (i < 0 || i >= r->nlines) {
		if (len != NULL)
			*len = 0;
		return NULL;
	}
	if (len != NULL)
		*len = r->tlen[i];
	return r->buf + r->off[i];
}

/* Length of a run of 1 to 3 digits at t[i..n), or 0. */
static size_t
digits13(const char *t, size_t i, size_t n)
{
	size_t k = 0;

	while (i + k < n && is_digit((unsigned char)t[i + k]))
		k++;
	return k >= 1 && k <= 3 ? k : 0;
}

void
smtp_reply_enhanced(const struct smtp_reply *r, char *out, size_t outsz)
{
	const char *t;
	size_t n, i, k;
	int cls;

	if (outsz == 0)
		return;
	out[0] = '\0';
	if ((t = smtp_reply_text(r, r->nlines - 1, &n)) == NULL)
		return;
	/* RFC 3463: class.subject.detail, the class repeating the first
	 * digit of the reply code (RFC 2034 section 4). */
	cls = r->code / 100;
	if (cls != 2 && cls != 4 && cls != 5)
		return;
	if (n < 5 || t[0] != '0' + cls || t[1] != '.')
		return;
	i = 2;
	if ((k = digits13(t, i, n)) == 0)
		return;
	i += k;
	if (i >= n || t[i] != '.')
		return;
	i++;
	if ((k = digits13(t, i, n)) == 0)
		return;
	i += k;
	if (i < n && t[i] != ' ')
		return;
	if (i + 1 > outsz)
		return;
	memcpy(out, t, i);
	out[i] = '\0';
}

/* ---- command parser ---------------------------------------------------- */

static const char *const verb_names[] = {
	[SMTP_CMD_UNKNOWN] = "UNKNOWN",
	[SMTP_CMD_HELO] = "HELO",
	[SMTP_CMD_EHLO] = "EHLO",
	[SMTP_CMD_MAIL] = "MAIL",
	[SMTP_CMD_RCPT] = "RCPT",
	[SMTP_CMD_DATA] = "DATA",
	[SMTP_CMD_RSET] = "RSET",
	[SMTP_CMD_NOOP] = "NOOP",
	[SMTP_CMD_QUIT] = "QUIT",
	[SMTP_CMD_VRFY] = "VRFY",
	[SMTP_CMD_EXPN] = "EXPN",
	[SMTP_CMD_HELP] = "HELP",
	[SMTP_CMD_STARTTLS] = "STARTTLS",
	[SMTP_CMD_BDAT] = "BDAT",
	[SMTP_CMD_AUTH] = "AUTH",
};
#define NVERBS	(sizeof(verb_names) / sizeof(verb_names[0]))

const char *
smtp_verb_name(enum smtp_verb v)
{
	if ((unsigned)v >= NVERBS)
		return "UNKNOWN";
	return verb_names[v];
}

/* RFC 5321 atext, plus UTF-8 bytes (RFC 6531) which are passed through. */
static int
is_atext(unsigned char c)
{
	if (is_alpha(c) || is_digit(c) || c >= 0x80)
		return 1;
	return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

static int
is_ascii(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] >= 0x80)
			return 0;
	return 1;
}

/* Letters, digits, hyphen, underscore (seen in the wild) and UTF-8 bytes. */
static int
is_ldh(unsigned char c)
{
	return is_alpha(c) || is_digit(c) || c == '-' || c == '_' || c >= 0x80;
}

/*
 * Scans a domain (a name or an address literal) starting at p, ending at the
 * first byte that cannot belong to it.  Returns the end, or NULL when what
 * is there is not a domain.
 */
static const char *
scan_domain(const char *p, const char *end)
{
	const char *q = p;
	size_t label;
	int wide;

	if (p < end && *p == '[') {
		/* Address literal: kept as text, only its characters checked
		 * (RFC 5321 dtext, narrowed to what IPv4/IPv6 literals use). */
		for (q = p + 1; q < end && *q != ']'; q++) {
			unsigned char c = (unsigned char)*q;

			if (!is_alpha(c) && !is_digit(c) && c != '.' &&
			    c != ':' && c != '-')
				return NULL;
		}
		if (q >= end || q == p + 1)
			return NULL;
		return q + 1;
	}
	/*
	 * A label of letters, digits and hyphens is what DNS asks for, at
	 * most 63 octets.  A U-label (UTF-8, SMTPUTF8) is not: its DNS form
	 * is the A-label, and 22 Thai or Chinese characters (66 octets) make
	 * an A-label of some 30.  Its length is the policy engine's to judge
	 * after the conversion (a temporary refusal there), not a 501 here,
	 * which the MTA would take for the address's permanent failure.
	 */
	label = 0;
	wide = 0;
	for (; q < end; q++) {
		unsigned char c = (unsigned char)*q;

		if (c == '.') {
			if (label == 0)
				return NULL;	/* leading dot or ".." */
			if (label > 63 && !wide)
				return NULL;
			label = 0;
			wide = 0;
		} else if (is_ldh(c)) {
			label++;
			if (c >= 0x80)
				wide = 1;
		} else
			break;
	}
	if (q == p || (label > 63 && !wide))
		return NULL;
	return q;
}

/*
 * Parses "<path>" at *pp and fills cmd->path and cmd->domain.  Returns 0 and
 * advances *pp past '>', or -1 with *err set.  With bare, what is at *pp is
 * a mailbox without the brackets that must end exactly at end: no null
 * path, no source route.
 */
static int
parse_path(const char **pp, const char *end, struct smtp_cmd *cmd, int bare,
    const char **err)
{
	const char *p = *pp, *mbox, *at = NULL, *q;
	size_t n, i;

	if (bare) {
		if (p >= end || *p == '@') {
			*err = "5.5.4 Syntax: address must be enclosed in <>";
			return -1;
		}
	} else if (p >= end || *p != '<') {
		*err = "5.5.4 Syntax: address must be enclosed in <>";
		return -1;
	} else
		p++;
	if (!bare && p < end && *p == '>') {
		if (cmd->verb == SMTP_CMD_RCPT) {
			*err = "5.1.3 Null recipient not allowed";
			return -1;
		}
		*pp = p + 1;
		return 0;
	}

	/* Source route "@a,@b:" (RFC 5321 4.1.2, accepted and ignored). */
	if (p < end && *p == '@') {
		for (;;) {
			if (p >= end || *p != '@' ||
			    (q = scan_domain(p + 1, end)) == NULL) {
				*err = "5.1.3 Bad source route";
				return -1;
			}
			p = q;
			if (p < end && *p == ',') {
				p++;
				continue;
			}
			if (p < end && *p == ':') {
				p++;
				break;
			}
			*err = "5.1.3 Bad source route";
			return -1;
		}
	}

	/* Local part: a quoted string (may hold '@', '>', spaces) or atoms. */
	mbox = p;
	if (p < end && *p == '"') {
		for (p++; p < end && *p != '"'; p++) {
			unsigned char c = (unsigned char)*p;

			if (c == '\\') {
				if (++p >= end)
					break;
				c = (unsigned char)*p;
			}
			if (c < 0x20 || c == 0x7f)
				break;
		}
		if (p >= end || *p != '"') {
			*err = "5.1.3 Bad quoted local part";
			return -1;
		}
		p++;
	} else {
		while (p < end && (is_atext((unsigned char)*p) || *p == '.'))
			p++;
	}
	if (p == mbox) {
		*err = "5.1.3 Bad address syntax";
		return -1;
	}

	if (p < end && *p == '@') {
		at = p;
		if ((q = scan_domain(p + 1, end)) == NULL) {
			*err = "5.1.2 Bad domain syntax";
			return -1;
		}
		p = q;
	}
	if (bare && p != end) {
		*err = "5.1.3 Bad address syntax";
		return -1;
	}
	if (!bare && (p >= end || *p != '>')) {
		*err = "5.1.3 Bad address syntax or missing '>'";
		return -1;
	}

	/* Only <postmaster> may go without a domain (RFC 5321 4.1.1.3). */
	if (at == NULL && (cmd->verb != SMTP_CMD_RCPT ||
	    !ci_eq(mbox, (size_t)(p - mbox), "POSTMASTER"))) {
		*err = "5.1.3 Address needs a domain";
		return -1;
	}

	/*
	 * RFC 5321's 256 octets (4.5.3.1.3) are what every server must
	 * take, not a bound on what it may: a longer path (SMTPUTF8 makes
	 * them, RFC 6531 counts octets) is the upstream's to judge, and the
	 * command goes to it as it came.  The line bounds the copy.
	 */
	n = (size_t)(p - mbox);
	memcpy(cmd->path, mbox, n);
	cmd->path[n] = '\0';

	if (at != NULL) {
		n = (size_t)(p - (at + 1));
		/* Trailing dot of an absolute name; literals end in ']'. */
		if (n > 0 && at[n] == '.')
			n--;
		/* An ASCII name is its own A-label, and over 255 octets no
		 * name at all (RFC 5321 4.5.3.1.2).  A UTF-8 one is judged
		 * on its A-label (the policy engine): mapped and ignored
		 * characters (UTS #46) make its octets no measure of it. */
		if (n > SMTP_DOMAIN_MAX && is_ascii(at + 1, n)) {
			*err = "5.1.2 Domain too long";
			return -1;
		}
		for (i = 0; i < n; i++)
			cmd->domain[i] = (char)to_lower((unsigned char)at[1 + i]);
		cmd->domain[n] = '\0';
	}
	*pp = bare ? p : p + 1;
	return 0;
}

/*
 * A bare path ("MAIL FROM:a@b.example", which Postfix, Exchange and Sendmail
 * take, and scan-to-mail devices without a queue send): one token up to the
 * first space, a mailbox as parse_path() reads one between < and >.  Any
 * '<' or '>' in the rest of the line refuses it: "RCPT TO:a@x <b@y>" is read
 * by some servers as b@y, which is not the domain judged here.
 */
static int
parse_bare_path(const char **pp, const char *end, struct smtp_cmd *cmd,
    const char **err)
{
	const char *p = *pp, *tok;

	if (memchr(p, '<', (size_t)(end - p)) != NULL ||
	    memchr(p, '>', (size_t)(end - p)) != NULL) {
		*err = "5.5.4 Syntax: address must be enclosed in <>";
		return -1;
	}
	if ((tok = memchr(p, ' ', (size_t)(end - p))) == NULL)
		tok = end;
	if (parse_path(&p, tok, cmd, 1, err) == -1)
		return -1;
	cmd->bare = 1;
	*pp = p;
	return 0;
}

/* MAIL FROM:<path> [params] / RCPT TO:<path> [params] */
static int
parse_mail_rcpt(struct smtp_cmd *cmd, const char **err)
{
	const char *p = cmd->arg, *end = cmd->arg + cmd->arglen;
	const char *kw = cmd->verb == SMTP_CMD_MAIL ? "FROM:" : "TO:";

	/* Some clients double the space after the verb. */
	while (p < end && *p == ' ')
		p++;
	if (!ci_prefix(p, (size_t)(end - p), kw)) {
		*err = cmd->verb == SMTP_CMD_MAIL ?
		    "5.5.4 Syntax: MAIL FROM:<address>" :
		    "5.5.4 Syntax: RCPT TO:<address>";
		return -1;
	}
	p += strlen(kw);
	/* Not RFC 5321, but widespread: "MAIL FROM: <a@b>". */
	while (p < end && *p == ' ')
		p++;
	if (p < end && *p != '<') {
		if (parse_bare_path(&p, end, cmd, err) == -1)
			return -1;
	} else if (parse_path(&p, end, cmd, 0, err) == -1)
		return -1;

	if (p < end && *p != ' ') {
		*err = "5.5.4 Syntax error after address";
		return -1;
	}
	while (p < end && *p == ' ')
		p++;
	cmd->params = p;
	cmd->paramslen = (size_t)(end - p);
	/* Parameters may be relayed upstream: no control characters. */
	for (; p < end; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f) {
			*err = "5.5.4 Invalid character in parameters";
			return -1;
		}
	/* smtp_cmd_bracket() must fit in a line: two bytes more, and the
	 * spaces this one may have had fewer */
	if (cmd->bare && smtp_cmd_bracket(cmd, NULL, 0) > SMTP_LINE_MAX) {
		*err = "5.5.2 Line too long";
		return -1;
	}
	return 0;
}

size_t
smtp_cmd_bracket(const struct smtp_cmd *cmd, char *out, size_t outsz)
{
	const char *kw = cmd->verb == SMTP_CMD_MAIL ? "MAIL FROM:<" :
	    "RCPT TO:<";
	size_t n, k = strlen(kw), pl = strlen(cmd->path);

	n = k + pl + 1 + (cmd->paramslen ? 1 + cmd->paramslen : 0);
	if (out == NULL || n >= outsz)
		return n;
	memcpy(out, kw, k);
	memcpy(out + k, cmd->path, pl);
	out[k + pl] = '>';
	if (cmd->paramslen) {
		out[k + pl + 1] = ' ';
		memcpy(out + k + pl + 2, cmd->params, cmd->paramslen);
	}
	out[n] = '\0';
	return n;
}

int
smtp_cmd_parse(const char *line, size_t len, struct smtp_cmd *cmd,
    const char **err)
{
	const char *dummy, *sp;
	size_t vlen, i;
	enum smtp_verb v;

	if (err == NULL)
		err = &dummy;
	*err = NULL;
	cmd->verb = SMTP_CMD_UNKNOWN;
	cmd->arg = "";
	cmd->arglen = 0;
	cmd->path[0] = '\0';
	cmd->domain[0] = '\0';
	cmd->params = "";
	cmd->paramslen = 0;
	cmd->bare = 0;

	if (len > SMTP_LINE_MAX) {
		*err = "5.5.2 Line too long";
		return -1;
	}
	/* Trailing blanks are noise some clients add; ignore them. */
	while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t'))
		len--;
	if (len == 0) {
		*err = "5.5.2 Empty command";
		return -1;
	}

	sp = memchr(line, ' ', len);
	vlen = sp != NULL ? (size_t)(sp - line) : len;
	v = SMTP_CMD_UNKNOWN;
	for (i = 1; i < NVERBS; i++)
		if (ci_eq(line, vlen, verb_names[i])) {
			v = (enum smtp_verb)i;
			break;
		}
	if (v == SMTP_CMD_UNKNOWN) {
		*err = "5.5.2 Command unrecognized";
		return -1;
	}
	cmd->verb = v;
	if (sp != NULL) {
		cmd->arg = sp + 1;
		cmd->arglen = len - vlen - 1;
	}
	for (i = 0; i < cmd->arglen; i++) {
		unsigned char c = (unsigned char)cmd->arg[i];

		if (c == '\0' || c == '\r' || c == '\n') {
			*err = "5.5.2 Invalid character in command";
			return -1;
		}
	}

	switch (v) {
	case SMTP_CMD_HELO:
	case SMTP_CMD_EHLO:
		if (cmd->arglen == 0) {
			*err = v == SMTP_CMD_HELO ?
			    "5.5.4 Syntax: HELO hostname" :
			    "5.5.4 Syntax: EHLO hostname";
			return -1;
		}
		break;
	case SMTP_CMD_MAIL:
	case SMTP_CMD_RCPT:
		return parse_mail_rcpt(cmd, err);
	case SMTP_CMD_DATA:
	case SMTP_CMD_RSET:
	case SMTP_CMD_QUIT:
	case SMTP_CMD_STARTTLS:
		if (cmd->arglen != 0) {
			*err = "5.5.4 Syntax error (no parameters allowed)";
			return -1;
		}
		break;
	case SMTP_CMD_VRFY:
	case SMTP_CMD_EXPN:
	case SMTP_CMD_BDAT:
	case SMTP_CMD_AUTH:
		if (cmd->arglen == 0) {
			*err = "5.5.4 Syntax error (argument required)";
			return -1;
		}
		break;
	case SMTP_CMD_NOOP:
	case SMTP_CMD_HELP:
	case SMTP_CMD_UNKNOWN:
		break;
	}
	return 0;
}

/* ---- EHLO capabilities ------------------------------------------------- */

/* Extensions whose lines smtp_caps_filter relays as they came. */
#define CAPS_RELAYED	(SMTP_CAP_PIPELINING | SMTP_CAP_SIZE | \
    SMTP_CAP_8BITMIME | SMTP_CAP_SMTPUTF8 | SMTP_CAP_DSN | \
    SMTP_CAP_ENHSTATUS)

static const struct {
	const char	*kw;
	unsigned	 flag;
} cap_names[] = {
	{ "STARTTLS",		SMTP_CAP_STARTTLS },
	{ "PIPELINING",		SMTP_CAP_PIPELINING },
	{ "SIZE",		SMTP_CAP_SIZE },
	{ "8BITMIME",		SMTP_CAP_8BITMIME },
	{ "SMTPUTF8",		SMTP_CAP_SMTPUTF8 },
	{ "CHUNKING",		SMTP_CAP_CHUNKING },
	{ "AUTH",		SMTP_CAP_AUTH },
	{ "DSN",		SMTP_CAP_DSN },
	{ "ENHANCEDSTATUSCODES", SMTP_CAP_ENHSTATUS },
};

/*
 * Classifies one EHLO line (text after "250-").  Returns its SMTP_CAP_ flag,
 * or 0 for anything mxguard does not know; *kwlen gets the keyword length.
 */
static unsigned
cap_classify(const char *t, size_t n, size_t *kwlen)
{
	const char *sp;
	size_t k, i;

	sp = memchr(t, ' ', n);
	k = sp != NULL ? (size_t)(sp - t) : n;
	*kwlen = k;
	for (i = 0; i < sizeof(cap_names) / sizeof(cap_names[0]); i++)
		if (ci_eq(t, k, cap_names[i].kw))
			return cap_names[i].flag;
	/* Pre-RFC 2554 servers announce "AUTH=LOGIN". */
	if (ci_prefix(t, k, "AUTH="))
		return SMTP_CAP_AUTH;
	/* A middlebox (Cisco "ESMTP inspection") overwrote STARTTLS in place
	 * with X's, keeping the length: "XXXXXXXA" or "XXXXXXXX". */
	if (k == 8) {
		for (i = 0; i < 7; i++)
			if (t[i] != 'X' && t[i] != 'x')
				break;
		if (i == 7 && (t[7] == 'X' || t[7] == 'x' || t[7] == 'A' ||
		    t[7] == 'a'))
			return SMTP_CAP_STARTTLS_MASKED;
	}
	return 0;
}

/* SIZE argument; saturates rather than wrapping on absurd values. */
static unsigned long
cap_size(const char *t, size_t n, size_t kwlen)
{
	unsigned long v = 0;
	size_t i = kwlen;

	while (i < n && t[i] == ' ')
		i++;
	if (i == n || !is_digit((unsigned char)t[i]))
		return 0;
	for (; i < n && is_digit((unsigned char)t[i]); i++) {
		unsigned d = (unsigned)(t[i] - '0');

		if (v > (ULONG_MAX - d) / 10)
			return ULONG_MAX;
		v = v * 10 + d;
	}
	return v;
}

void
smtp_caps_parse(const struct smtp_reply *ehlo, struct smtp_caps *caps)
{
	const char *t;
	size_t n, kwlen;
	unsigned f;
	int i;

	caps->flags = 0;
	caps->size = 0;
	if (ehlo->code != 250)
		return;
	/* Line 0 is the greeting ("mx.example.com Hello ..."), not a
	 * keyword. */
	for (i = 1; i < ehlo->nlines; i++) {
		t = smtp_reply_text(ehlo, i, &n);
		f = cap_classify(t, n, &kwlen);
		caps->flags |= f;
		if (f == SMTP_CAP_SIZE)
			caps->size = cap_size(t, n, kwlen);
	}
}

size_t
smtp_caps_filter(const struct smtp_reply *ehlo, int offer_starttls,
    char *out, size_t outsz)
{
	const char *keep[SMTP_REPLY_MAX_LINES + 1];
	size_t klen[SMTP_REPLY_MAX_LINES + 1];
	const char *t;
	size_t n, kwlen, o;
	unsigned f;
	int i, nkeep, have_tls = 0;

	if (ehlo->nlines == 0)
		return 0;
	keep[0] = smtp_reply_text(ehlo, 0, &klen[0]);
	nkeep = 1;
	for (i = 1; i < ehlo->nlines; i++) {
		t = smtp_reply_text(ehlo, i, &n);
		f = cap_classify(t, n, &kwlen);
		if (f == SMTP_CAP_STARTTLS) {
			/* Our STARTTLS is the client leg's: offer it once,
			 * where the upstream had it. */
			if (!offer_starttls || have_tls)
				continue;
			have_tls = 1;
			t = "STARTTLS";
			n = 8;
		} else if ((f & CAPS_RELAYED) == 0)
			continue;
		else if (f == SMTP_CAP_SIZE)
			/* The keyword, not the limit: the client reads the
			 * cleartext EHLO, which an attacker on the path
			 * writes, and an MTA bounces a message over a limit
			 * it is shown without trying (Postfix: 5.3.4).  Its
			 * SIZE= goes with the replayed MAIL, and the
			 * server's limit inside TLS decides there. */
			n = kwlen;
		keep[nkeep] = t;
		klen[nkeep] = n;
		nkeep++;
	}
	/* The client-side STARTTLS is mxguard's own (local certificate), so
	 * offer it even when the upstream did not, or had it masked. */
	if (offer_starttls && !have_tls) {
		keep[nkeep] = "STARTTLS";
		klen[nkeep] = 8;
		nkeep++;
	}

	o = 0;
	for (i = 0; i < nkeep; i++) {
		if (klen[i] + 6 > outsz - o)
			return 0;
		memcpy(out + o, "250", 3);
		out[o + 3] = i == nkeep - 1 ? ' ' : '-';
		memcpy(out + o + 4, keep[i], klen[i]);
		o += 4 + klen[i];
		out[o++] = '\r';
		out[o++] = '\n';
	}
	return o;
}

/* ---- DATA scanner ------------------------------------------------------ */

/*
 * d->state holds the scanner state in its low byte and, when out filled in
 * the middle of a short sequence, which sequence (bits 8-11) and how much of
 * it was written (bits 12-15), so that any out size, even one byte, works.
 */
enum {
	DS_BOL,		/* line start after a client CRLF, or data start */
	DS_BOLN,	/* line start after a normalised bare CR or LF */
	DS_TEXT,	/* inside a line */
	DS_CR,		/* CR seen, already written as CRLF; LF may follow */
	DS_DOT,		/* "." at DS_BOL seen, held back */
	DS_DOTCR,	/* "." CR at DS_BOL seen, held back */
	DS_END,		/* terminator consumed */
};

enum {
	SEQ_NONE, SEQ_CRLF, SEQ_DOTDOT, SEQ_DOTDOTCRLF, SEQ_TERM, SEQ_DOT,
};

static const char *const seqs[] = {
	[SEQ_NONE] = "",
	[SEQ_CRLF] = "\r\n",
	[SEQ_DOTDOT] = "..",
	[SEQ_DOTDOTCRLF] = "..\r\n",
	[SEQ_TERM] = ".\r\n",
	[SEQ_DOT] = ".",
};

#define DS_STATE(s)	((s) & 0xff)
#define DS_PSEQ(s)	(((s) >> 8) & 0xf)
#define DS_POFF(s)	(((s) >> 12) & 0xf)

struct dsink {
	char	*out;
	size_t	 sz;
	size_t	 o;
	int	 pseq;		/* sequence still owed to out, or SEQ_NONE */
	int	 poff;		/* bytes of it already written */
};

/* Writes what fits of the owed sequence; returns 0 once it is all out. */
static int
sink_flush(struct dsink *k)
{
	const char *s = seqs[k->pseq];

	while (s[k->poff] != '\0' && k->o < k->sz)
		k->out[k->o++] = s[k->poff++];
	if (s[k->poff] != '\0')
		return -1;
	k->pseq = SEQ_NONE;
	k->poff = 0;
	return 0;
}

/* Queues a sequence (nothing else is owed when this is called) and writes
 * what fits; the loop in smtp_data_scan stops if something stays owed. */
static void
sink_emit(struct dsink *k, int seq)
{
	k->pseq = seq;
	k->poff = 0;
	(void)sink_flush(k);
}

void
smtp_data_init(struct smtp_data *d)
{
	d->state = DS_BOL;
	d->bytes_in = 0;
	d->bare_lf = 0;
	d->bare_cr = 0;
}

size_t
smtp_data_clean(struct smtp_data *d, const char *in, size_t inlen)
{
	int st = DS_STATE(d->state);
	const char *p, *lf, *cr;
	size_t i = 0;

	/* a held-back "." or CR, or a sequence still owed: the scanner */
	if (DS_PSEQ(d->state) != SEQ_NONE ||
	    (st != DS_BOL && st != DS_BOLN && st != DS_TEXT))
		return 0;
	while (i < inlen) {
		p = in + i;
		/* a dot at a line start: stuffing, or the terminator */
		if (st != DS_TEXT && *p == '.')
			break;
		if ((lf = memchr(p, '\n', inlen - i)) == NULL) {
			/* the start of a line: up to a CR, whose LF (or
			 * not) is still to come */
			if ((cr = memchr(p, '\r', inlen - i)) == NULL)
				cr = in + inlen;
			if (cr > p) {
				i += (size_t)(cr - p);
				st = DS_TEXT;
			}
			break;
		}
		/* a whole line: its only CR right before its LF */
		if (lf == p || lf[-1] != '\r' ||
		    memchr(p, '\r', (size_t)(lf - 1 - p)) != NULL)
			break;
		i = (size_t)(lf - in) + 1;
		st = DS_BOL;
	}
	if (i > 0) {
		d->state = st;	/* nothing owed (SEQ_NONE, offset 0) */
		d->bytes_in += i;
	}
	return i;
}

enum smtp_data_status
smtp_data_scan(struct smtp_data *d, const char *in, size_t inlen,
    char *out, size_t outsz, size_t *consumed, size_t *produced)
{
	struct dsink k = { out, outsz, 0, DS_PSEQ(d->state),
	    DS_POFF(d->state) };
	const char *ncr = NULL, *nlf = NULL;	/* next CR / LF at or after i */
	enum smtp_data_status ret;
	int st = DS_STATE(d->state);
	size_t i = 0;
	unsigned char c;

	for (;;) {
		if (k.pseq != SEQ_NONE && sink_flush(&k) == -1) {
			ret = SMTP_DATA_FULL;
			break;
		}
		if (st == DS_END) {
			ret = SMTP_DATA_END;
			break;
		}
		if (i == inlen) {
			ret = SMTP_DATA_MORE;
			break;
		}

		if (st == DS_TEXT) {
			/* Hot path: copy up to the next CR or LF.  Each memchr
			 * result is kept until i passes it, so every byte is
			 * scanned at most once per character searched for. */
			const char *p = in + i, *stop;
			size_t run, room;

			if (ncr == NULL || ncr < p) {
				ncr = memchr(p, '\r', inlen - i);
				if (ncr == NULL)
					ncr = in + inlen;
			}
			if (nlf == NULL || nlf < p) {
				nlf = memchr(p, '\n', inlen - i);
				if (nlf == NULL)
					nlf = in + inlen;
			}
			stop = ncr < nlf ? ncr : nlf;
			if (stop > p) {
				run = (size_t)(stop - p);
				room = k.sz - k.o;
				if (room == 0) {
					ret = SMTP_DATA_FULL;
					break;
				}
				if (run > room)
					run = room;
				memcpy(k.out + k.o, p, run);
				k.o += run;
				i += run;
				continue;
			}
			/* in[i] is CR or LF: handled below. */
		}

		c = (unsigned char)in[i];
		switch (st) {
		case DS_DOT:
			if (c == '\r') {
				st = DS_DOTCR;
				i++;
			} else if (c == '\n') {
				/* ".\n" would become ".\r\n", an end of data
				 * upstream that the client did not send. */
				d->bare_lf++;
				sink_emit(&k, SEQ_DOTDOTCRLF);
				st = DS_BOLN;
				i++;
			} else {
				/* The client's own dot-stuffing: as is. */
				sink_emit(&k, SEQ_DOT);
				st = DS_TEXT;
			}
			continue;
		case DS_DOTCR:
			if (c == '\n') {
				sink_emit(&k, SEQ_TERM);
				st = DS_END;
				i++;
			} else {
				/* CRLF "." bare CR: as above. */
				d->bare_cr++;
				sink_emit(&k, SEQ_DOTDOTCRLF);
				st = DS_BOLN;
			}
			continue;
		case DS_CR:
			if (c == '\n') {
				st = DS_BOL;
				i++;
			} else {
				d->bare_cr++;
				st = DS_BOLN;
			}
			continue;
		default:
			break;
		}

		/* DS_BOL, DS_BOLN, DS_TEXT */
		if (c == '\r') {
			/* Written as CRLF now whether or not an LF follows;
			 * only the next state depends on it. */
			sink_emit(&k, SEQ_CRLF);
			st = DS_CR;
			i++;
		} else if (c == '\n') {
			d->bare_lf++;
			sink_emit(&k, SEQ_CRLF);
			st = DS_BOLN;
			i++;
		} else if (c == '.' && st == DS_BOL) {
			st = DS_DOT;
			i++;
		} else if (c == '.' && st == DS_BOLN) {
			/* The client did not dot-stuff a line it did not
			 * see as one; the upstream must not unstuff it. */
			sink_emit(&k, SEQ_DOTDOT);
			st = DS_TEXT;
			i++;
		} else
			st = DS_TEXT;
	}

	d->state = st | (k.pseq << 8) | (k.poff << 12);
	d->bytes_in += i;
	if (consumed != NULL)
		*consumed = i;
	if (produced != NULL)
		*produced = k.o;
	return ret;
}
