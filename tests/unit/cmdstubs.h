/*
 * cmdstubs.h - what a test that includes a command's source (cmd/check.c,
 * cmd/policy.c, cmd/report.c) needs from cmd/main.c and cmd/priv.c,
 * which it does not link: no usage text, no privilege drop (the tests
 * run as they are).  Test code only.
 */
#ifndef MXG_TEST_CMDSTUBS_H
#define MXG_TEST_CMDSTUBS_H

void
cmd_usage(const char *name, FILE *f)
{
}

int
priv_drop_cmd(const struct config *cfg, int net_admin, char *err,
    size_t errsz)
{
	return 0;
}

#endif
