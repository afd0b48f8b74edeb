/*
 * test_sandbox.c - the seccomp filter of the workers and the single
 * process (core/sandbox.c).  Run as root, as the unit tests are: the
 * test process itself, unfiltered, can open a raw IP socket and a packet
 * socket (so the denials below are the filter's, not a missing
 * capability).  In a child that installed the filter, root still:
 *   - socket() of AF_INET or AF_INET6 with SOCK_RAW (with or without
 *     SOCK_CLOEXEC, with high bits set in the registers' upper halves),
 *     of AF_INET with SOCK_PACKET, and of AF_PACKET fails with EPERM;
 *   - TCP, UDP (both families), AF_NETLINK raw (NFQUEUE, getifaddrs())
 *     and AF_UNIX sockets open, and getifaddrs() works;
 *   - io_uring_setup() fails with EPERM (unfiltered it works here);
 *   - a system call of another ABI (x32, and int 0x80 where the kernel
 *     runs 32-bit code) kills the process with SIGSYS.
 * Where seccomp(2) itself is refused (systemd's @system-service filter:
 * EPERM), the filter still goes in, through prctl().
 * Each child reports by its exit status: 0, or the number of the first
 * check that failed (its line on stderr says which).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <errno.h>
#include <ifaddrs.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <netinet/in.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/io_uring.h>
#include <linux/netlink.h>
#include <linux/seccomp.h>
#include <cmocka.h>

#include "core/sandbox.h"

#ifndef SYS_io_uring_setup
#define SYS_io_uring_setup 425
#endif

/* Runs fn in a child; returns its wait status. */
static int
in_child(void (*fn)(void))
{
	pid_t pid;
	int st;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	assert_true(pid != -1);
	if (pid == 0) {
		/* cmocka's handlers must not catch the child's faults */
		signal(SIGSEGV, SIG_DFL);
		signal(SIGILL, SIG_DFL);
		signal(SIGBUS, SIG_DFL);
		signal(SIGFPE, SIG_DFL);
		signal(SIGSYS, SIG_DFL);
		fn();
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return st;
}

static void
child_ok(int st)
{
	if (WIFSIGNALED(st))
		fail_msg("the child was killed by signal %d", WTERMSIG(st));
	assert_true(WIFEXITED(st));
	if (WEXITSTATUS(st) != 0)
		fail_msg("check %d failed in the child", WEXITSTATUS(st));
}

static int check_no;

/* in a child: the socket must open (denied 0) or fail with EPERM */
static void
sock(const char *what, int denied, long domain, long type, long proto)
{
	long fd;
	int e;

	check_no++;
	errno = 0;
	fd = syscall(SYS_socket, domain, type, proto);
	e = errno;
	if (fd >= 0)
		close((int)fd);
	if (denied && (fd != -1 || e != EPERM)) {
		fprintf(stderr, "check %d: %s: expected EPERM, got fd %ld "
		    "(%s)\n", check_no, what, fd, strerror(e));
		_exit(check_no);
	}
	if (!denied && fd < 0) {
		fprintf(stderr, "check %d: %s: expected a socket, got %s\n",
		    check_no, what, strerror(e));
		_exit(check_no);
	}
}

static void
install(void)
{
	char err[256];

	if (sandbox_install(err, sizeof(err)) == -1) {
		fprintf(stderr, "sandbox_install: %s\n", err);
		_exit(100);
	}
}

static long
uring_setup(void)
{
	struct io_uring_params p;
	long fd;

	memset(&p, 0, sizeof(p));
	fd = syscall(SYS_io_uring_setup, 4, &p);
	if (fd >= 0)
		close((int)fd);
	return fd;
}

/* The test process, unfiltered and root, opens what the filter denies. */
static void
test_unfiltered_can(void **state)
{
	int fd;

	(void)state;
	/* not skipped: without root the kernel refuses these sockets with
	 * the same EPERM as the filter, and test_filtered would pass
	 * whatever the filter does (the unit tests run as root:
	 * docs/testing.md) */
	if (geteuid() != 0)
		fail_msg("not root: the raw socket denials of test_filtered "
		    "would be the kernel's, not the filter's");
	assert_true((fd = socket(AF_INET, SOCK_RAW, IPPROTO_TCP)) >= 0);
	close(fd);
	assert_true((fd = socket(AF_INET6, SOCK_RAW, IPPROTO_TCP)) >= 0);
	close(fd);
	assert_true((fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL))) >= 0);
	close(fd);
	assert_true(uring_setup() >= 0);
}

static void
filtered_sockets(void)
{
	struct ifaddrs *ifs = NULL;

	install();
	check_no = 0;
	sock("AF_INET SOCK_RAW tcp", 1, AF_INET, SOCK_RAW, IPPROTO_TCP);
	sock("AF_INET SOCK_RAW raw", 1, AF_INET, SOCK_RAW, IPPROTO_RAW);
	sock("AF_INET SOCK_RAW|CLOEXEC|NONBLOCK", 1, AF_INET,
	    SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, IPPROTO_TCP);
	sock("AF_INET6 SOCK_RAW tcp", 1, AF_INET6, SOCK_RAW, IPPROTO_TCP);
	sock("AF_INET6 SOCK_RAW icmpv6", 1, AF_INET6, SOCK_RAW,
	    IPPROTO_ICMPV6);
	sock("AF_INET SOCK_PACKET", 1, AF_INET, SOCK_PACKET, htons(ETH_P_ALL));
	sock("AF_PACKET SOCK_RAW", 1, AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
	sock("AF_PACKET SOCK_DGRAM", 1, AF_PACKET, SOCK_DGRAM,
	    htons(ETH_P_ALL));
	/* the kernel takes int: high bits in the registers change nothing */
	sock("AF_INET SOCK_RAW, high bits in domain", 1,
	    (long)(0x100000000L | AF_INET), SOCK_RAW, IPPROTO_TCP);
	sock("AF_INET SOCK_RAW, high bits in type", 1, AF_INET,
	    (long)(0x100000000L | SOCK_RAW), IPPROTO_TCP);
	sock("AF_PACKET, high bits in domain", 1,
	    (long)(0x7700000000L | AF_PACKET), SOCK_RAW, htons(ETH_P_ALL));
	/* what the daemon uses */
	sock("AF_INET SOCK_STREAM", 0, AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	sock("AF_INET6 SOCK_STREAM", 0, AF_INET6, SOCK_STREAM, 0);
	sock("AF_INET SOCK_DGRAM", 0, AF_INET, SOCK_DGRAM, 0);
	sock("AF_INET6 SOCK_DGRAM", 0, AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK, 0);
	sock("AF_NETLINK SOCK_RAW netfilter", 0, AF_NETLINK,
	    SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
	sock("AF_NETLINK SOCK_RAW route", 0, AF_NETLINK, SOCK_RAW,
	    NETLINK_ROUTE);
	sock("AF_UNIX SOCK_STREAM", 0, AF_UNIX, SOCK_STREAM, 0);
	sock("AF_UNIX SOCK_DGRAM", 0, AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	check_no++;
	if (getifaddrs(&ifs) == -1) {
		fprintf(stderr, "check %d: getifaddrs: %s\n", check_no,
		    strerror(errno));
		_exit(check_no);
	}
	freeifaddrs(ifs);
	check_no++;
	errno = 0;
	if (uring_setup() != -1 || errno != EPERM) {
		fprintf(stderr, "check %d: io_uring_setup: expected EPERM, "
		    "got %s\n", check_no, strerror(errno));
		_exit(check_no);
	}
	check_no++;
	if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1) {
		fprintf(stderr, "check %d: no_new_privs is not set\n",
		    check_no);
		_exit(check_no);
	}
}

static void
test_filtered(void **state)
{
	(void)state;
	child_ok(in_child(filtered_sockets));
}

/* An outer filter that refuses seccomp(2) with EPERM, as systemd's
 * SystemCallFilter=@system-service does. */
static void
outer_no_seccomp(void)
{
	static struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
		    offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_seccomp, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog fp = { .len = 4, .filter = f };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1 ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fp, 0, 0) == -1)
		_exit(101);
	errno = 0;
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fp) != -1 ||
	    errno != EPERM)
		_exit(102);	/* the outer filter does not work */
	install();
	check_no = 0;
	sock("AF_INET SOCK_RAW under systemd's filter", 1, AF_INET, SOCK_RAW,
	    IPPROTO_TCP);
	sock("AF_INET SOCK_STREAM under systemd's filter", 0, AF_INET,
	    SOCK_STREAM, 0);
}

static void
test_seccomp_refused(void **state)
{
	(void)state;
	child_ok(in_child(outer_no_seccomp));
}

#if defined(__x86_64__)
static void
x32_getpid(void)
{
	install();
	(void)syscall(0x40000000L | SYS_getpid);
	_exit(3);
}

static long
int80_getpid(void)
{
	long ret = 20;	/* i386 getpid */

	__asm__ volatile("int $0x80" : "+a"(ret) : : "memory");
	return ret;
}

static void
unfiltered_int80(void)
{
	_exit(int80_getpid() == (long)getpid() ? 0 : 4);
}

static void
filtered_int80(void)
{
	install();
	(void)int80_getpid();
	_exit(3);
}

static void
test_foreign_abi(void **state)
{
	int st;

	(void)state;
	st = in_child(x32_getpid);
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGSYS);
	st = in_child(unfiltered_int80);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		/* reported as skipped, not as passed */
		print_message("int 0x80 does not run here (no IA32 "
		    "emulation)\n");
		skip();
	}
	st = in_child(filtered_int80);
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGSYS);
}
#else
static void
test_foreign_abi(void **state)
{
	(void)state;
	skip();
}
#endif

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unfiltered_can),
		cmocka_unit_test(test_filtered),
		cmocka_unit_test(test_seccomp_refused),
		cmocka_unit_test(test_foreign_abi),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
