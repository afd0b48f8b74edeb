/*
 * fuzz_cmd.c - libFuzzer target for the SMTP command parser.  The whole
 * input is parsed as one line (so over-long lines are covered), then each
 * LF-separated line of it; results are checked against the promises made
 * in smtp.h, a bare path's bracketed form (smtp_cmd_bracket) among them.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tlsproxy/smtp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
within(const char *p, size_t n, const char *line, size_t len)
{
	return p >= line && p + n <= line + len;
}

/* A bare path: no bracket anywhere on the line, and the bracketed line
 * relayed in its place fits a line and parses, not bare, to the same
 * path, domain and parameters (what the server reads is what was judged). */
static void
check_bare(const struct smtp_cmd *cmd, const char *line, size_t len)
{
	static struct smtp_cmd c2;
	char out[SMTP_LINE_MAX + 1];
	const char *err = NULL;
	size_t n;

	if (memchr(line, '<', len) != NULL || memchr(line, '>', len) != NULL)
		abort();
	if (cmd->path[0] == '\0' || cmd->path[0] == '@')
		abort();
	n = smtp_cmd_bracket(cmd, NULL, 0);
	if (n > SMTP_LINE_MAX || smtp_cmd_bracket(cmd, out, sizeof(out)) != n ||
	    strlen(out) != n)
		abort();
	if (smtp_cmd_parse(out, n, &c2, &err) != 0 || c2.bare ||
	    c2.verb != cmd->verb || strcmp(c2.path, cmd->path) != 0 ||
	    strcmp(c2.domain, cmd->domain) != 0 ||
	    c2.paramslen != cmd->paramslen ||
	    memcmp(c2.params, cmd->params, cmd->paramslen) != 0)
		abort();
}

static void
parse_one(const char *src, size_t len)
{
	struct smtp_cmd cmd;
	const char *err = NULL;
	char *line;
	size_t i, n;
	int rc;

	/* exact-size copy so that ASan sees any over-read */
	line = malloc(len ? len : 1);
	memcpy(line, src, len);
	rc = smtp_cmd_parse(line, len, &cmd, &err);
	if (rc == -1) {
		if (err == NULL || *err == '\0')
			abort();
		free(line);
		return;
	}
	if (rc != 0 || err != NULL || cmd.verb == SMTP_CMD_UNKNOWN ||
	    len > SMTP_LINE_MAX)
		abort();
	if (strcmp(smtp_verb_name(cmd.verb), "UNKNOWN") == 0)
		abort();
	if (cmd.arglen > 0 && !within(cmd.arg, cmd.arglen, line, len))
		abort();
	for (i = 0; i < cmd.arglen; i++)
		if (cmd.arg[i] == '\0' || cmd.arg[i] == '\r' ||
		    cmd.arg[i] == '\n')
			abort();
	if (cmd.verb == SMTP_CMD_MAIL || cmd.verb == SMTP_CMD_RCPT) {
		/* no length bound of its own (the upstream judges it): a
		 * copy of bytes of the line */
		n = strnlen(cmd.path, sizeof(cmd.path));
		if (n >= len)
			abort();
		if (cmd.verb == SMTP_CMD_RCPT && n == 0)
			abort();
		/* the path is a copy of bytes of the line */
		if (n > 0 && memmem(line, len, cmd.path, n) == NULL)
			abort();
		/* an ASCII domain is its own A-label, <= 255 octets; a
		 * UTF-8 one is bounded by the line */
		n = strnlen(cmd.domain, sizeof(cmd.domain));
		if (n >= len)
			abort();
		for (i = 0; i < n && (unsigned char)cmd.domain[i] < 0x80; i++)
			;
		if (i == n && n > SMTP_DOMAIN_MAX)
			abort();
		for (i = 0; i < n; i++)
			if ((cmd.domain[i] >= 'A' && cmd.domain[i] <= 'Z') ||
			    cmd.domain[i] == '@' || cmd.domain[i] == '>' ||
			    cmd.domain[i] == ' ')
				abort();
		if (n > 0 && (cmd.domain[n - 1] == '.' ||
		    cmd.domain[0] == '.'))
			abort();
		if (cmd.paramslen > 0 &&
		    !within(cmd.params, cmd.paramslen, line, len))
			abort();
		for (i = 0; i < cmd.paramslen; i++)
			if ((unsigned char)cmd.params[i] < 0x20)
				abort();
		if (cmd.bare)
			check_bare(&cmd, line, len);
	}
	free(line);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size, *nl;
	size_t len;

	parse_one(p, size);
	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		len = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
		if (len > 0 && p[len - 1] == '\r')
			len--;
		parse_one(p, len);
		p = nl != NULL ? nl + 1 : end;
	}
	return 0;
}
