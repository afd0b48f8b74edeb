/*
 * sandbox.c - the seccomp filter against raw and packet sockets (see
 * sandbox.h).  Written by hand in classic BPF, no libseccomp: twenty
 * instructions.
 *
 * The filter reads only the low 32 bits of socket()'s arguments: the
 * kernel takes domain and type as int, so high bits a caller sets in the
 * registers must not make a raw socket look like another one.
 *
 * Installed with seccomp(2) and SECCOMP_FILTER_FLAG_TSYNC, so that a
 * thread a library may have started is filtered too; where seccomp(2)
 * itself is refused (the shipped unit's SystemCallFilter=@system-service
 * does not include it: EPERM) or missing, with prctl(PR_SET_SECCOMP),
 * which filters the calling thread: the daemon has no other.
 */
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#include <endian.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/sandbox.h"

#if defined(__x86_64__)
#define SB_ARCH		AUDIT_ARCH_X86_64
#define SB_X32_BIT	0x40000000u	/* __X32_SYSCALL_BIT */
#elif defined(__aarch64__)
#define SB_ARCH		AUDIT_ARCH_AARCH64
#define SB_X32_BIT	0u		/* no x32: the test never jumps */
#else
/* another needs its AUDIT_ARCH_, and socketcall(2) filtered where it has one */
#error "no seccomp filter for this architecture (core/sandbox.h)"
#endif

/* io_uring's numbers are the same on both (the unified table) */
#ifndef __NR_io_uring_setup
#define __NR_io_uring_setup	425
#endif
#ifndef __NR_io_uring_enter
#define __NR_io_uring_enter	426
#endif
#ifndef __NR_io_uring_register
#define __NR_io_uring_register	427
#endif
#ifndef SECCOMP_RET_KILL_PROCESS
#define SECCOMP_RET_KILL_PROCESS 0x80000000u
#endif
#ifndef SOCK_PACKET
#define SOCK_PACKET		10
#endif

/* where the low 32 bits of argument i are */
#if __BYTE_ORDER == __LITTLE_ENDIAN
#define ARG_LO(i)	(offsetof(struct seccomp_data, args[i]))
#else
#define ARG_LO(i)	(offsetof(struct seccomp_data, args[i]) + 4)
#endif

/* The instructions' places, for the jumps: a jump's offset counts from
 * the next instruction. */
enum {
	I_ARCH, I_ARCH_OK, I_NR, I_X32, I_SOCKET, I_URING_SETUP,
	I_URING_ENTER, I_URING_REGISTER, I_ALLOW_CALL,
	I_DOMAIN, I_PACKET, I_INET, I_INET6,
	I_TYPE, I_TYPE_MASK, I_RAW, I_SOCK_PACKET, I_ALLOW_SOCKET,
	I_EPERM, I_KILL, I_COUNT
};
#define TO(target, at)	((target) - (at) - 1)

static const struct sock_filter prog[] = {
	[I_ARCH] = BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
	    offsetof(struct seccomp_data, arch)),
	[I_ARCH_OK] = BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SB_ARCH,
	    0, TO(I_KILL, I_ARCH_OK)),
	[I_NR] = BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
	    offsetof(struct seccomp_data, nr)),
	[I_X32] = BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, SB_X32_BIT,
	    TO(I_KILL, I_X32), 0),
	[I_SOCKET] = BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_socket,
	    TO(I_DOMAIN, I_SOCKET), 0),
	[I_URING_SETUP] = BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
	    __NR_io_uring_setup, TO(I_EPERM, I_URING_SETUP), 0),
	[I_URING_ENTER] = BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
	    __NR_io_uring_enter, TO(I_EPERM, I_URING_ENTER), 0),
	[I_URING_REGISTER] = BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
	    __NR_io_uring_register, TO(I_EPERM, I_URING_REGISTER), 0),
	[I_ALLOW_CALL] = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),

	/* socket(domain, type, protocol) */
	[I_DOMAIN] = BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG_LO(0)),
	[I_PACKET] = BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AF_PACKET,
	    TO(I_EPERM, I_PACKET), 0),
	[I_INET] = BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AF_INET,
	    TO(I_TYPE, I_INET), 0),
	[I_INET6] = BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AF_INET6,
	    0, TO(I_ALLOW_SOCKET, I_INET6)),
	[I_TYPE] = BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG_LO(1)),
	[I_TYPE_MASK] = BPF_STMT(BPF_ALU | BPF_AND | BPF_K, 0xf),
	[I_RAW] = BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SOCK_RAW,
	    TO(I_EPERM, I_RAW), 0),
	/* (the kernel turns AF_INET, SOCK_PACKET into AF_PACKET) */
	[I_SOCK_PACKET] = BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SOCK_PACKET,
	    TO(I_EPERM, I_SOCK_PACKET), 0),
	[I_ALLOW_SOCKET] = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),

	[I_EPERM] = BPF_STMT(BPF_RET | BPF_K,
	    SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
	[I_KILL] = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
};

_Static_assert(sizeof(prog) / sizeof(prog[0]) == I_COUNT,
    "every instruction has its place");

int
sandbox_install(char *err, size_t errsz)
{
	struct sock_fprog fp = {
		.len = (unsigned short)(sizeof(prog) / sizeof(prog[0])),
		.filter = (struct sock_filter *)prog,
	};
	long rc;

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1) {
		snprintf(err, errsz, "PR_SET_NO_NEW_PRIVS: %s",
		    strerror(errno));
		return -1;
	}
	rc = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
	    SECCOMP_FILTER_FLAG_TSYNC, &fp);
	if (rc > 0) {
		snprintf(err, errsz, "seccomp: thread %ld could not take the "
		    "filter", rc);
		return -1;
	}
	if (rc == -1 && (errno == EPERM || errno == ENOSYS) &&
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fp, 0, 0) == 0)
		rc = 0;
	if (rc != 0) {
		snprintf(err, errsz, "installing the seccomp filter: %s%s",
		    strerror(errno), errno == EINVAL ? " (a kernel without "
		    "CONFIG_SECCOMP_FILTER?)" : "");
		return -1;
	}
	return 0;
}
