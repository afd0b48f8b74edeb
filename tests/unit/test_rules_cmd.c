/*
 * test_rules_cmd.c - the check of `mxguard rules ensure` and `rules
 * watch` (rules_check(), cmd/rules.c) against a daemon's control socket
 * (cmd/control.c, in a child), with the netfilter side faked: what
 * rules_state() finds is the test's word, and rules_install() and
 * rules_refuse_install() only count and change that word.
 *
 * A daemon whose 16 control connections are all taken (idle clients:
 * anyone who may connect, the daemon's `user` included, can hold them)
 * is busy, not gone: the rules a flush took are not left out as for no
 * daemon; with fail_mode = closed the refusal set goes in, and once the
 * daemon answers with the file's digest the configured set; with open,
 * nothing, and ENSURE_BUSY (watch asks again in 2 s).  A refusal set
 * found in place, which this check did not put in (a watch before its
 * restart, `rules boot`), is replaced once the daemon runs the file; the
 * whole set found in place ends the refusal.
 * How the daemon was found: no socket, or a listener whose process is
 * gone, is none; one that does not answer in time is busy.  What
 * `mxguard status` prints of an answer holds no control byte but
 * newlines and is valid UTF-8, however the reads split it.
 *
 * cmd/ is not in libmxguard.a: the modules are compiled in here.
 */
// WRAP: rules_state rules_install rules_refuse_install rules_inplace
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <fcntl.h>
#include <locale.h>
#include <wchar.h>
#include <wctype.h>
#include <cmocka.h>

#include "cmd/rules.c"
#include "cmd/status.c"
#include "cmd/control.c"
#include "cmd/ctlreq.c"
#include "tests/unit/cmdstubs.h"
#include "tests/unit/cmdcapture.h"

static char dir[] = "/tmp/mxg-rules-cmd-XXXXXX";
static char sockpath[100];
static struct config *cfg;

#include "tests/unit/ctldaemon.h"
static int fake_st, installs, refusals;

int	__wrap_rules_state(const struct config *, struct rbuf *, int *,
	    char *, size_t);
int	__wrap_rules_install(const struct config *, char *, size_t);
int	__wrap_rules_refuse_install(const struct config *, char *, size_t);

int
__wrap_rules_state(const struct config *c, struct rbuf *missing,
    int *broken, char *err, size_t errsz)
{
	*broken = fake_st == RULES_ST_NONE;
	return fake_st;
}

int
__wrap_rules_install(const struct config *c, char *err, size_t errsz)
{
	installs++;
	fake_st = RULES_ST_COMPLETE;
	return 0;
}

int
__wrap_rules_refuse_install(const struct config *c, char *err,
    size_t errsz)
{
	refusals++;
	fake_st = RULES_ST_REFUSAL;
	return 0;
}

static struct rules_inplace fake_ip;

int	__wrap_rules_inplace(struct rules_inplace *, char *, size_t);

int
__wrap_rules_inplace(struct rules_inplace *ip, char *err, size_t errsz)
{
	*ip = fake_ip;
	return 0;
}

static int
sock_connect(void)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd;

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", sockpath);
	assert_true((fd = socket(AF_UNIX, SOCK_STREAM, 0)) >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	return fd;
}

static void
set_mode(const char *mode)
{
	free(cfg->fail_mode);
	cfg->fail_mode = strdup(mode);
}

/* Waits (5 s at most) until the daemon answers with its digest. */
static void
wait_answers(void)
{
	struct cmd_cfgcheck cc;
	int i;

	for (i = 0; i < 50; i++) {
		cmd_config_vs_daemon(cfg, &cc);
		if (cc.reached)
			return;
		(void)poll(NULL, 0, 100);
	}
	fail_msg("the daemon never answered again");
}

/*
 * Every control connection held by an idle client, the rules gone: not
 * "no daemon" (red before: ENSURE_NO_DAEMON, nothing put back and the
 * next look 30 s later, for as long as the slots stay taken).  Open: not
 * put back, ENSURE_BUSY, the message says busy.  Closed: the refusal
 * set.  Slots free again: the configured set in its place.
 */
static void
test_busy_is_no_dead_daemon(void **state)
{
	int idle[CTL_MAX_UNIX], i, refused = 0;
	char msg[1536];
	pid_t pid;

	pid = daemon_start(config_digest32(cfg));
	for (i = 0; i < CTL_MAX_UNIX; i++)
		idle[i] = sock_connect();

	set_mode("open");
	fake_st = RULES_ST_NONE;
	installs = refusals = 0;
	assert_int_equal(rules_check(cfg, &refused, msg, sizeof(msg)),
	    ENSURE_BUSY);
	assert_int_equal(installs + refusals, 0);
	assert_non_null(strstr(msg, "control socket is busy"));
	assert_int_equal(rules_ensure(cfg), 1);

	set_mode("closed");
	assert_int_equal(rules_check(cfg, &refused, msg, sizeof(msg)),
	    ENSURE_REFUSING);
	assert_int_equal(refusals, 1);
	assert_int_equal(installs, 0);
	assert_int_equal(refused, 1);
	/* still busy: the refusal set stays */
	assert_int_equal(rules_check(cfg, &refused, msg, sizeof(msg)),
	    ENSURE_REFUSING);
	assert_int_equal(installs, 0);

	for (i = 0; i < CTL_MAX_UNIX; i++)
		close(idle[i]);
	wait_answers();
	assert_int_equal(rules_check(cfg, &refused, msg, sizeof(msg)),
	    ENSURE_PUT_BACK);
	assert_int_equal(installs, 1);
	assert_int_equal(refused, 0);
	assert_int_equal(fake_st, RULES_ST_COMPLETE);
	daemon_stop(pid);
}

/*
 * A refusal set in place that this check did not put in (refused 0: a
 * watch that restarted, `rules boot`), the daemon running the file: the
 * configured set replaces it (red before: ENSURE_PRESENT, the refusal
 * set kept, every port-25 flow refused while the daemon runs).  With no
 * daemon, or one running another configuration, it stays.
 */
static void
test_refusal_set_replaced(void **state)
{
	char msg[1536];
	int refused = 0;
	pid_t pid;

	set_mode("closed");
	installs = refusals = 0;
	fake_st = RULES_ST_REFUSAL;
	assert_int_equal(rules_check(cfg, &refused, msg, sizeof(msg)),
	    ENSURE_REFUSING);
	assert_int_equal(installs + refusals, 0);

	pid = daemon_start(config_digest32(cfg) ^ 1);
	refused = 0;
	assert_int_equal(rules_check(cfg, &refused, msg, sizeof(msg)),
	    ENSURE_REFUSING);
	assert_int_equal(installs + refusals, 0);
	daemon_stop(pid);

	pid = daemon_start(config_digest32(cfg));
	refused = 0;
	assert_int_equal(rules_check(cfg, &refused, msg, sizeof(msg)),
	    ENSURE_PUT_BACK);
	assert_int_equal(installs, 1);
	assert_int_equal(refused, 0);
	assert_int_equal(rules_ensure(cfg), 0);
	daemon_stop(pid);

	/* the whole set in place (an operator's `rules install` over the
	 * refusal set, the daemon on another digest): no refusal any more
	 * (red before: ENSURE_REFUSING, refused still 1) */
	pid = daemon_start(config_digest32(cfg) ^ 1);
	refused = 1;
	installs = refusals = 0;
	fake_st = RULES_ST_COMPLETE;
	assert_int_equal(rules_check(cfg, &refused, msg, sizeof(msg)),
	    ENSURE_PRESENT);
	assert_int_equal(refused, 0);
	assert_int_equal(installs + refusals, 0);
	daemon_stop(pid);
}

/* A listening socket at sockpath made by a child that then exits, handed
 * to us (SCM_RIGHTS): its listener's process is gone. */
static int
orphan_listener(void)
{
	char cbuf[CMSG_SPACE(sizeof(int))], b;
	struct iovec iov = { &b, 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
	    .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct cmsghdr *cm;
	int sp[2], fd;
	pid_t pid;

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", sockpath);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	assert_true((pid = fork()) >= 0);
	if (pid == 0) {
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		if (fd == -1 || bind(fd, (struct sockaddr *)&sun,
		    sizeof(sun)) == -1 || listen(fd, 4) == -1)
			_exit(1);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
		_exit(sendmsg(sp[1], &mh, 0) == 1 ? 0 : 1);
	}
	close(sp[1]);
	assert_int_equal(recvmsg(sp[0], &mh, 0), 1);
	close(sp[0]);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	cm = CMSG_FIRSTHDR(&mh);
	assert_non_null(cm);
	memcpy(&fd, CMSG_DATA(cm), sizeof(int));
	return fd;
}

/*
 * How the daemon was found: no socket file, or a socket file nobody
 * listens on, is none; a listener whose process is gone (a descriptor
 * left in another) is none; a listener of a live process that does not
 * answer within the 2 s is busy.
 */
static void
test_none_or_busy(void **state)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct cmd_cfgcheck cc;
	int fd;

	unlink(sockpath);
	cmd_config_vs_daemon(cfg, &cc);
	assert_false(cc.reached);
	assert_false(cc.busy);

	/* bound, not listening: ECONNREFUSED */
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", sockpath);
	assert_true((fd = socket(AF_UNIX, SOCK_STREAM, 0)) >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	cmd_config_vs_daemon(cfg, &cc);
	assert_false(cc.busy);
	close(fd);
	unlink(sockpath);

	fd = orphan_listener();
	cmd_config_vs_daemon(cfg, &cc);
	assert_false(cc.reached);
	assert_false(cc.busy);
	close(fd);
	unlink(sockpath);

	/* ours: alive, and never accepting */
	assert_true((fd = socket(AF_UNIX, SOCK_STREAM, 0)) >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(listen(fd, 4), 0);
	cmd_config_vs_daemon(cfg, &cc);
	assert_false(cc.reached);
	assert_true(cc.busy);
	close(fd);
	unlink(sockpath);
}

/*
 * out is valid UTF-8 (by glibc's decoder, which takes up to U+10FFFF
 * only here) and has no control character but newline.
 */
static void
assert_terminal_safe(const char *out, size_t n)
{
	mbstate_t mb;
	wchar_t w;
	size_t i, k;

	assert_non_null(setlocale(LC_CTYPE, "C.UTF-8"));
	memset(&mb, 0, sizeof(mb));
	for (i = 0; i < n; i += k) {
		k = mbrtowc(&w, out + i, n - i, &mb);
		if (k == (size_t)-1 || k == (size_t)-2 || k == 0 ||
		    w > 0x10ffff || (w != L'\n' && iswcntrl((wint_t)w)))
			fail_msg("byte 0x%02x at %zu of what status printed",
			    (unsigned char)out[i], i);
	}
	(void)setlocale(LC_CTYPE, "C");
}

/* `mxguard status` with its fd (1: stdout, 2: stderr) caught in out
 * (outsz with the NUL); returns its exit code, *outlen what it wrote. */
static int
status_captured(int fd, char *out, size_t outsz, size_t *outlen)
{
	char *argv[] = { "status", NULL };
	FILE *fp = fd == 1 ? stdout : stderr;
	int tmp, saved, rc;
	ssize_t n;

	assert_true((tmp = fileno(tmpfile())) >= 0);
	fflush(fp);
	assert_true((saved = dup(fd)) >= 0);
	assert_int_equal(dup2(tmp, fd), fd);
	rc = cmd_status(1, argv, cfg, NULL);
	fflush(fp);
	assert_int_equal(dup2(saved, fd), fd);
	close(saved);
	n = pread(tmp, out, outsz - 1, 0);
	assert_true(n > 0);
	out[n] = '\0';
	*outlen = (size_t)n;
	return rc;
}

/*
 * `mxguard status` wrote the daemon's answer to the terminal as it came.
 * With workers = 1 the process that answers parses the network: taken
 * over, it wrote escape sequences to the terminal of whoever asked (root
 * running status: the window title, OSC 52 into the clipboard, a CSI as
 * ESC or as U+009B).  A fake daemon answers with them, with C1 bytes
 * that are not UTF-8 (raw 0x9b, an overlong U+009B) and a sequence cut
 * short at the end; what status prints is valid UTF-8 with no control
 * but newlines (glibc's decoder the judge), and keeps the rest.
 */
static void
test_status_output_clean(void **state)
{
	static const char answer[] = "# mxguard pid 1, up 1s\n"
	    "# config digest 00000000, applied 1\n"
	    "\x1b]52;c;ZWNobyBvd25lZA==\x07t_a_total{a=\"\xc2\x9b" "2J\"} 1\r\n"
	    "t_b_total{a=\"\xc3\xa9\"} 2\n"
	    "t_c_total{a=\"\x9b" "2J\xe0\x82\x9b" "2J\xc0\x9b\"} 3\n\xe2\x82";
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char out[512], req[64];
	size_t outlen;
	int lfd, rc;
	pid_t pid;

	unlink(sockpath);
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", sockpath);
	assert_true((lfd = socket(AF_UNIX, SOCK_STREAM, 0)) >= 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(listen(lfd, 4), 0);
	assert_true((pid = fork()) >= 0);
	if (pid == 0) {
		int c;

		(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
		if ((c = accept(lfd, NULL, NULL)) == -1)
			_exit(1);
		while (read(c, req, sizeof(req)) > 0)
			;
		_exit(write(c, answer, sizeof(answer) - 1) ==
		    (ssize_t)sizeof(answer) - 1 ? 0 : 1);
	}
	close(lfd);
	rc = status_captured(1, out, sizeof(out), &outlen);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	unlink(sockpath);
	assert_int_equal(rc, 0);
	assert_terminal_safe(out, outlen);
	assert_non_null(strstr(out, "\n# config digest 00000000, applied 1\n"));
	assert_non_null(strstr(out, "t_b_total{a=\"\xc3\xa9\"} 2\n"));
}

/* put_clean() of in, split at every place and a byte at a time, gives
 * want each time, and nothing a terminal acts on */
static void
assert_clean_cuts(const char *in, const char *want)
{
	struct clean cl;
	char *out;
	size_t len, cut, k, outlen;
	FILE *fp;

	len = strlen(in);
	/* cut == len + 1: a byte at a time */
	for (cut = 0; cut <= len + 1; cut++) {
		memset(&cl, 0, sizeof(cl));
		assert_non_null(fp = open_memstream(&out, &outlen));
		if (cut <= len) {
			put_clean(fp, in, cut, &cl);
			put_clean(fp, in + cut, len - cut, &cl);
		} else
			for (k = 0; k < len; k++)
				put_clean(fp, in + k, 1, &cl);
		put_clean_end(fp, &cl);
		assert_int_equal(fclose(fp), 0);
		if (strcmp(out, want) != 0)
			fail_msg("\"%s\" cut %zu: got \"%s\", not \"%s\"",
			    in, cut, out, want);
		assert_terminal_safe(out, outlen);
		free(out);
	}
}

/*
 * put_clean() on text split at every place, and a byte at a time: a
 * sequence split across reads comes out as in one (a C1 control still
 * '?', valid UTF-8 kept), each invalid one as '?' (a stray continuation
 * byte, raw C1, overlong forms, a surrogate, beyond U+10FFFF, one cut
 * short by the next lead byte or by the end).
 */
static void
test_status_clean_split(void **state)
{
	static const struct {
		const char	*in, *want;
	} t[] = {
		{ "a\xc2\x9b" "2Jb\n", "a?2Jb\n" },
		{ "\xc2\x85\xc2\x80\xc2\x9f", "???" },
		{ "\xc2\xa0\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80",
		  "\xc2\xa0\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80" },
		{ "\x9b[2J\x80\xbf", "?[2J??" },
		{ "\xc0\x9b\xc1\xbf", "????" },
		{ "\xe0\x82\x9b", "???" },
		{ "\xf0\x80\x82\x9b", "????" },
		{ "\xed\xa0\x80", "???" },
		{ "\xf4\x90\x80\x80\xf5\xff", "??????" },
		{ "\xe2\x82x\xf0\x9f\x98\xc3\xa9", "?x?\xc3\xa9" },
		{ "\x1b]0;t\x07\r\t\x7f", "?]0;t????" },
		{ "ok\xe2\x82", "ok?" },
		{ "\xc2", "?" },
	};
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		assert_clean_cuts(t[i].in, t[i].want);
}

/* UTF-8 of a code point, NUL-terminated */
static void
utf8(uint32_t cp, char *b)
{
	if (cp < 0x80)
		*b++ = (char)cp;
	else if (cp < 0x800) {
		*b++ = (char)(0xc0 | cp >> 6);
		*b++ = (char)(0x80 | (cp & 0x3f));
	} else if (cp < 0x10000) {
		*b++ = (char)(0xe0 | cp >> 12);
		*b++ = (char)(0x80 | (cp >> 6 & 0x3f));
		*b++ = (char)(0x80 | (cp & 0x3f));
	} else {
		*b++ = (char)(0xf0 | cp >> 18);
		*b++ = (char)(0x80 | (cp >> 12 & 0x3f));
		*b++ = (char)(0x80 | (cp >> 6 & 0x3f));
		*b++ = (char)(0x80 | (cp & 0x3f));
	}
	*b = '\0';
}

/*
 * Bidirectional controls and invisible format characters are valid,
 * printable-looking UTF-8 that glibc does not call controls, and went
 * to the terminal: a U+202E in a label value from the network (a
 * domain's TLSRPT text, an MX's reply) showed the rest of the line
 * reversed, a U+200B or a tag character hid what was there.  Each one
 * becomes '?', split anywhere; its neighbours, printable, stay.
 */
static void
test_status_clean_format(void **state)
{
	static const uint32_t bad[] = { 0xad, 0x61c, 0x180e, 0x200b,
	    0x200c, 0x200d, 0x200e, 0x200f, 0x2028, 0x2029, 0x202a, 0x202b,
	    0x202c, 0x202d, 0x202e, 0x2060, 0x2061, 0x2062, 0x2063, 0x2064,
	    0x2066, 0x2067, 0x2068, 0x2069, 0x206a, 0x206f, 0xfeff, 0xe0001,
	    0xe0020, 0xe007f };
	static const uint32_t good[] = { 0xac, 0xae, 0x61b, 0x61d, 0x200a,
	    0x2010, 0x2027, 0x202f, 0x205f, 0x2070, 0xfefe, 0xff01, 0xe0100,
	    0x1f600 };
	char cp[8], in[16], want[16];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		utf8(bad[i], cp);
		snprintf(in, sizeof(in), "a%sb", cp);
		assert_clean_cuts(in, "a?b");
	}
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		utf8(good[i], cp);
		snprintf(in, sizeof(in), "a%sb", cp);
		snprintf(want, sizeof(want), "%s", in);
		assert_clean_cuts(in, want);
	}
}

/*
 * The status's second line is the digest, as scripts read it (mxguard.8),
 * its third the state_dir (want, with its newline): a state_dir line put
 * before the digest moved it to the third.
 */
static void
assert_status_lines(const char *want)
{
	char out[2048], *l2, *l3;
	size_t n;

	assert_int_equal(status_captured(1, out, sizeof(out), &n), 0);
	if ((l2 = strchr(out, '\n')) == NULL ||
	    strncmp(++l2, "# config digest ", 16) != 0 ||
	    (l3 = strchr(l2, '\n')) == NULL ||
	    strncmp(++l3, want, strlen(want)) != 0)
		fail_msg("status: %s", out);
}

/*
 * A reload keeps the start's state_dir and control_socket
 * (config_keep_start_keys()), and the digest the daemon says is the
 * file's then, so the commands read another directory's stores than the
 * daemon's and said nothing.  Now the daemon's status names its
 * state_dir, and cmd_config_vs_daemon() warns when it is not the file's
 * (policy and check print it; report send refuses on it), without the
 * control bytes of what the daemon said.  A daemon on the file's
 * state_dir: no warning.
 */
static void
test_other_state_dir(void **state)
{
	struct cmd_cfgcheck cc;
	char *file_dir = cfg->state_dir;
	pid_t pid;

	cfg->state_dir = "/var/lib/mxguard-started";
	pid = daemon_start(config_digest32(cfg));
	cfg->state_dir = file_dir;
	cmd_config_vs_daemon(cfg, &cc);
	assert_status_lines("# state_dir /var/lib/mxguard-started\n");
	daemon_stop(pid);
	assert_true(cc.reached);
	assert_string_equal(cc.state_dir, "/var/lib/mxguard-started");
	if (!cc.other_dir || strstr(cc.warning,
	    "state_dir /var/lib/mxguard-started") == NULL)
		fail_msg("no warning of the daemon's state_dir: \"%s\"",
		    cc.warning);

	/* what the daemon says goes to a terminal: its control bytes not */
	cfg->state_dir = "/var/lib/\x1b]0;x\x07mxg";
	pid = daemon_start(config_digest32(cfg));
	cfg->state_dir = file_dir;
	cmd_config_vs_daemon(cfg, &cc);
	daemon_stop(pid);
	assert_true(cc.other_dir);
	assert_non_null(strstr(cc.warning, "state_dir /var/lib/?]0;x?mxg,"));

	pid = daemon_start(config_digest32(cfg));
	cmd_config_vs_daemon(cfg, &cc);
	daemon_stop(pid);
	assert_true(cc.reached);
	assert_false(cc.other_dir);
	assert_string_equal(cc.warning, "");
}

/*
 * A long state_dir (the daemon names it after its digest line): the
 * digest is still read, and the directory is the file's.  Before, the
 * header was read into 1,024 bytes: with a state_dir of 1,000 the digest
 * line fell outside it, and the daemon was taken for a busy one (no
 * digest, so policy and check could not compare, rules watch waited).
 */
static void
test_long_state_dir(void **state)
{
	struct cmd_cfgcheck cc;
	char *file_dir = cfg->state_dir, longdir[1100];
	pid_t pid;

	memset(longdir, 'd', 1000);
	longdir[0] = '/';
	longdir[1000] = '\0';
	cfg->state_dir = longdir;
	pid = daemon_start(config_digest32(cfg));
	cmd_config_vs_daemon(cfg, &cc);
	daemon_stop(pid);
	cfg->state_dir = file_dir;
	if (!cc.reached || cc.busy)
		fail_msg("daemon not reached (busy %d)", cc.busy);
	assert_int_equal(cc.daemon, cc.file);
	assert_false(cc.other_dir);
	assert_string_equal(cc.warning, "");
}

/*
 * `mxguard status` with no daemon on the file's control_socket says so,
 * and that one edited since the daemon's start is not where it listens
 * until a restart (a reload keeps it).
 */
static void
test_status_no_daemon_hint(void **state)
{
	char err[1024];
	size_t n;

	unlink(sockpath);
	assert_int_equal(status_captured(2, err, sizeof(err), &n), 1);
	if (strstr(err, "no mxguard daemon listens on control_socket") ==
	    NULL || strstr(err, "until restarted (a reload keeps it)") == NULL)
		fail_msg("stderr: %s", err);
}

/*
 * control_socket edited since the daemon started: status found no daemon
 * on the file's socket and exited 1 (with the hint of b6abe4c), though
 * the daemon's record says where it listens.  Now status asks there,
 * says so on stderr naming both sockets, and prints the answer (exit 0).
 */
static void
test_status_edited_socket(void **state)
{
	char rundir_[200], conf[200], rec[PATH_MAX], cpath[PATH_MAX];
	char out[4096], *file_sock = cfg->control_socket, edited[200];
	size_t n;
	int fd, rc;
	pid_t pid;

	snprintf(rundir_, sizeof(rundir_), "%s/run", dir);
	snprintf(conf, sizeof(conf), "%s/mxguard.conf", dir);
	snprintf(edited, sizeof(edited), "%s/edited.sock", dir);
	assert_true((fd = open(conf, O_WRONLY | O_CREAT, 0644)) >= 0);
	close(fd);
	assert_int_equal(setenv("MXGUARD_RUNDIR", rundir_, 1), 0);
	cmd_set_config_path(conf);
	daemon_record_conf = conf;
	pid = daemon_start(config_digest32(cfg));
	daemon_record_conf = NULL;
	cfg->control_socket = edited;

	rc = status_captured(2, out, sizeof(out), &n);
	if (rc != 0 || strstr(out, "no mxguard daemon listens on "
	    "control_socket") == NULL || strstr(out, edited) == NULL ||
	    strstr(out, file_sock) == NULL)
		fail_msg("exit %d, stderr: %s", rc, out);
	assert_int_equal(status_captured(1, out, sizeof(out), &n), 0);
	assert_non_null(strstr(out, "\n# config digest "));

	cfg->control_socket = file_sock;
	daemon_stop(pid);
	/* the daemon gone, its record left: none, and the hint */
	cfg->control_socket = edited;
	assert_int_equal(status_captured(2, out, sizeof(out), &n), 1);
	assert_non_null(strstr(out, "is it running?"));
	cfg->control_socket = file_sock;
	assert_int_equal(record_path(conf, cpath, sizeof(cpath), rec,
	    sizeof(rec)), 0);
	assert_int_equal(unlink(rec), 0);
	assert_int_equal(rmdir(rundir_), 0);
	assert_int_equal(unlink(conf), 0);
	cmd_set_config_path(NULL);
	unsetenv("MXGUARD_RUNDIR");
}

static void
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

/*
 * `rules watch` while the file does not load (a local_users user
 * deleted): it goes on.  The set in place is kept, said once (red before:
 * "not checked" at every check, and nothing done when a flush damaged a
 * fail-closed set, every flow then direct); damaged or gone after it was
 * seen refusing with no daemon, the refusal set goes in; a fail-open set
 * lost so is said and left.  The file loading again is said.
 */
static void
test_watch_unloaded(void **state)
{
	struct watch_state ws = { 0, 0, 0 }, ws2 = { 0, 0, 0 };
	char bad[128], good[128], text[256], msg[1800];

	snprintf(bad, sizeof(bad), "%s/bad.conf", dir);
	snprintf(good, sizeof(good), "%s/good.conf", dir);
	write_file(bad, "rules_mode = local\nfail_mode = closed\n"
	    "local_users = mxg-no-such-user\n");
	snprintf(text, sizeof(text), "control_socket = %s\n", sockpath);
	write_file(good, text);
	refusals = installs = 0;

	/* a fail-closed set in place: kept, said once */
	fake_ip = (struct rules_inplace){ 1, 1, 0 };
	assert_int_equal(watch_check(bad, &ws, msg, sizeof(msg)),
	    ENSURE_PRESENT);
	assert_non_null(strstr(msg, "does not load"));
	assert_non_null(strstr(msg, "kept as they are"));
	assert_int_equal(watch_check(bad, &ws, msg, sizeof(msg)),
	    ENSURE_PRESENT);
	assert_string_equal(msg, "");
	/* a flush empties the guard: the refusal set */
	fake_ip = (struct rules_inplace){ 1, 0, 1 };
	assert_int_equal(watch_check(bad, &ws, msg, sizeof(msg)),
	    ENSURE_REFUSING);
	assert_int_equal(refusals, 1);
	assert_int_equal(ws.refused, 1);
	assert_non_null(strstr(msg, "installed the refusal set"));
	/* the refusal set in place: kept, nothing said */
	fake_ip = (struct rules_inplace){ 1, 1, 0 };
	assert_int_equal(watch_check(bad, &ws, msg, sizeof(msg)),
	    ENSURE_PRESENT);
	assert_string_equal(msg, "");
	assert_int_equal(refusals, 1);

	/* a fail-open set, then gone: said, nothing installed */
	fake_ip = (struct rules_inplace){ 1, 0, 0 };
	assert_int_equal(watch_check(bad, &ws2, msg, sizeof(msg)),
	    ENSURE_PRESENT);
	fake_ip = (struct rules_inplace){ 0, 0, 0 };
	assert_int_equal(watch_check(bad, &ws2, msg, sizeof(msg)),
	    ENSURE_NOT_PUT_BACK);
	assert_non_null(strstr(msg, "are gone (port-25 flows may go direct): "
	    "not put back until it loads"));
	assert_int_equal(refusals, 1);
	assert_int_equal(installs, 0);

	/* the file loads again: said once */
	fake_st = RULES_ST_COMPLETE;
	assert_int_equal(watch_check(good, &ws2, msg, sizeof(msg)),
	    ENSURE_PRESENT);
	assert_string_equal(msg, "the configuration loads again: the rules "
	    "are checked against it");
	assert_int_equal(watch_check(good, &ws2, msg, sizeof(msg)),
	    ENSURE_PRESENT);
	assert_string_equal(msg, "");
	unlink(bad);
	unlink(good);
}

/*
 * control_socket edited in the file since the daemon started (a reload
 * keeps the start's), the rules gone: `rules ensure` and `rules watch`
 * found no daemon on the file's socket and put nothing back until a
 * restart (ENSURE_NO_DAEMON), port-25 flows going direct meanwhile.
 * Now the daemon's record (written at its start, here by control.c's
 * child) leads them to the start's socket: the daemon runs the file
 * (the same digest), so the set is installed again, and the line names
 * the socket asked and the file's.
 */
static void
test_ensure_edited_socket(void **state)
{
	char rundir_[200], conf[200], rec[PATH_MAX], cpath[PATH_MAX];
	char msg[1536], *file_sock = cfg->control_socket, edited[200];
	int fd, refused = 0;
	pid_t pid;

	snprintf(rundir_, sizeof(rundir_), "%s/run", dir);
	snprintf(conf, sizeof(conf), "%s/mxguard.conf", dir);
	snprintf(edited, sizeof(edited), "%s/edited.sock", dir);
	assert_true((fd = open(conf, O_WRONLY | O_CREAT, 0644)) >= 0);
	close(fd);
	assert_int_equal(setenv("MXGUARD_RUNDIR", rundir_, 1), 0);
	cmd_set_config_path(conf);
	daemon_record_conf = conf;
	pid = daemon_start(config_digest32(cfg));
	daemon_record_conf = NULL;
	cfg->control_socket = edited;

	set_mode("open");
	fake_st = RULES_ST_NONE;
	installs = refusals = 0;
	assert_int_equal(rules_check(cfg, &refused, msg, sizeof(msg)),
	    ENSURE_PUT_BACK);
	assert_int_equal(installs, 1);
	if (strstr(msg, "were gone") == NULL || strstr(msg, "answered on "
	    "control_socket") == NULL || strstr(msg, file_sock) == NULL ||
	    strstr(msg, edited) == NULL)
		fail_msg("msg: %s", msg);
	/* the set whole: nothing to say */
	assert_int_equal(rules_check(cfg, &refused, msg, sizeof(msg)),
	    ENSURE_PRESENT);
	assert_string_equal(msg, "");

	cfg->control_socket = file_sock;
	daemon_stop(pid);
	assert_int_equal(record_path(conf, cpath, sizeof(cpath), rec,
	    sizeof(rec)), 0);
	assert_int_equal(unlink(rec), 0);
	assert_int_equal(rmdir(rundir_), 0);
	assert_int_equal(unlink(conf), 0);
	cmd_set_config_path(NULL);
	unsetenv("MXGUARD_RUNDIR");
}

/*
 * `rules install` writes the bypass lists into the rules: an entry with
 * host bits set (203.0.113.7/3, a typo of /32) bypasses all of
 * 192.0.0.0/3, and install says so, once, from the same test as the
 * configuration's load warning (config_host_bits_warning(), core/cidr.c);
 * gateway mode without bypass_interfaces adds its own line.  Exact
 * prefixes: nothing said.
 */
static void
test_install_says_host_bits(void **state)
{
	char conf[200], out[256], errpath[200], errtxt[2048], err[256];
	char *argv[] = { "rules", "install", NULL };
	struct config *c;
	const char *p;
	int n = 0;

	snprintf(conf, sizeof(conf), "%s/hb.conf", dir);
	snprintf(errpath, sizeof(errpath), "%s/hb.err", dir);
	write_file(conf, "bypass_dst = 192.0.2.0/24 203.0.113.7/3\n");
	assert_non_null(c = config_load(conf, err, sizeof(err)));
	installs = 0;
	assert_int_equal(cmd_capture(cmd_rules, 2, argv, c, conf, out,
	    sizeof(out), errpath, errtxt, sizeof(errtxt)), 0);
	assert_int_equal(installs, 1);
	for (p = errtxt; (p = strstr(p, "has host bits set")) != NULL; p++)
		n++;
	assert_int_equal(n, 1);
	assert_non_null(strstr(errtxt, "rules install: WARNING: bypass_dst "
	    "203.0.113.7/3 has host bits set: it bypasses all of "
	    "192.0.0.0/3"));
	config_free(c);

	write_file(conf, "rules_mode = gateway\nlisten = 0.0.0.0:10025\n"
	    "bypass_src = 2001:db8::1/64\n");
	assert_non_null(c = config_load(conf, err, sizeof(err)));
	assert_int_equal(cmd_capture(cmd_rules, 2, argv, c, conf, out,
	    sizeof(out), errpath, errtxt, sizeof(errtxt)), 0);
	assert_non_null(strstr(errtxt, "bypass_src 2001:db8::1/64 has host "
	    "bits set: it bypasses all of 2001:db8::/64"));
	assert_non_null(strstr(errtxt, "bypass_interfaces is empty"));
	config_free(c);

	write_file(conf, "bypass_dst = 192.0.2.0/24 2001:db8::/32 10.1.2.3\n"
	    "bypass_src = 2001:db8::1/128\n");
	assert_non_null(c = config_load(conf, err, sizeof(err)));
	assert_int_equal(cmd_capture(cmd_rules, 2, argv, c, conf, out,
	    sizeof(out), errpath, errtxt, sizeof(errtxt)), 0);
	assert_string_equal(errtxt, "");
	config_free(c);
	unlink(conf);
	unlink(errpath);
}

static int
setup(void **state)
{
	char err[256];

	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(sockpath, sizeof(sockpath), "%s/control.sock", dir);
	if ((cfg = config_load(NULL, err, sizeof(err))) == NULL)
		return -1;
	free(cfg->control_socket);
	cfg->control_socket = strdup(sockpath);
	log_init("test", 0, LOG_LVL_ERR);
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

static int
teardown(void **state)
{
	config_free(cfg);
	unlink(sockpath);
	rmdir(dir);
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_busy_is_no_dead_daemon),
		cmocka_unit_test(test_refusal_set_replaced),
		cmocka_unit_test(test_none_or_busy),
		cmocka_unit_test(test_status_output_clean),
		cmocka_unit_test(test_status_clean_split),
		cmocka_unit_test(test_status_clean_format),
		cmocka_unit_test(test_other_state_dir),
		cmocka_unit_test(test_long_state_dir),
		cmocka_unit_test(test_status_no_daemon_hint),
		cmocka_unit_test(test_watch_unloaded),
		cmocka_unit_test(test_ensure_edited_socket),
		cmocka_unit_test(test_status_edited_socket),
		cmocka_unit_test(test_install_says_host_bits),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
