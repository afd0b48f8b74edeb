# mxguard build.  Every module folder's *.c goes into one static library;
# cmd/ holds the entry point.  New source files need no Makefile edit.
#
#   make              build build/mxguard
#   make check        unit tests, brief fuzz runs, namespace integration tests
#   make check-unit | check-fuzz | check-ns
#   make fuzz-long    every fuzzer for FUZZ_LONG_SECONDS (not in check)
#   make check-asan   ASan/UBSan build in build-asan/: unit tests, relay scenarios
#   make asan         the same with every scenario (NS=pattern to choose)
#   make install      PREFIX=/usr/local DESTDIR=
#   make bench        benchmarks (docs/performance.md)
#   make soak         chaos soak, SOAK_SECONDS=300 (SOAK_ASAN=1: the ASan
#                     build); not in check (docs/testing.md, Chaos soak)

PREFIX     ?= /usr/local
SBINDIR    ?= $(PREFIX)/sbin
MANDIR     ?= $(PREFIX)/share/man
SYSCONFDIR ?= /etc
UNITDIR    ?= /lib/systemd/system
DESTDIR    ?=

B        ?= build
CC       ?= cc
PKGS      = openssl libcares libnetfilter_queue libnfnetlink lmdb libidn2 jansson zlib opendkim hiredis
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   := $(shell pkg-config --libs $(PKGS))

WARN      = -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wstrict-prototypes \
            -Wmissing-prototypes -Wformat=2 -Wno-unused-parameter
HARDEN    = -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fPIE \
            -fstack-clash-protection -fcf-protection
OPT      ?= -O2 -g
CFLAGS   += -std=gnu11 $(OPT) $(WARN) -D_GNU_SOURCE -I. $(PKG_CFLAGS) -DMXG_NFQ_VERSION=\"$(shell pkg-config --modversion libnetfilter_queue)\"
LDFLAGS  += -pie -Wl,-z,relro,-z,now -Wl,-z,noexecstack

ifeq ($(SAN),1)
HARDEN    = -fno-omit-frame-pointer
CFLAGS   += -fsanitize=address,undefined -fno-sanitize-recover=undefined
LDFLAGS  += -fsanitize=address,undefined
endif
CFLAGS   += $(HARDEN)

LIB_SRC  := $(wildcard core/*.c policy/*.c nfq/*.c tlsproxy/*.c)
CMD_SRC  := $(wildcard cmd/*.c)
LIB_OBJ  := $(LIB_SRC:%.c=$(B)/%.o)
CMD_OBJ  := $(CMD_SRC:%.c=$(B)/%.o)
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(B)/tests/%)
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=$(B)/fuzz/%)

all: $(B)/mxguard

$(B)/%.o: %.c $(wildcard */*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(B)/libmxguard.a: $(LIB_OBJ)
	rm -f $@ && ar rcs $@ $^

$(B)/mxguard: $(CMD_OBJ) $(B)/libmxguard.a
	$(CC) $(LDFLAGS) -o $@ $(CMD_OBJ) $(B)/libmxguard.a $(PKG_LIBS)

# Unit tests link the library and cmocka; each may --wrap symbols it mocks
# by listing them in a "// WRAP: sym1 sym2" comment line.
# tests/unit/testfilter.c (MXG_TEST=pattern: one test of a binary) goes in
# every one.
$(B)/tests/%: tests/unit/%.c $(wildcard tests/unit/*.h) tests/unit/testfilter.c $(B)/libmxguard.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Wno-missing-prototypes $(LDFLAGS) -o $@ $< tests/unit/testfilter.c \
	  $(foreach s,$(shell sed -n 's,^// WRAP:,,p' $<),-Wl,--wrap=$(s)) \
	  $(B)/libmxguard.a $(PKG_LIBS) -lcmocka

# cmd/ is not in the library: test_control compiles these two itself
$(B)/tests/test_control: cmd/control.c cmd/ctlreq.c
# test_check includes cmd/check.c for its static probe and judgement
$(B)/tests/test_check: cmd/check.c cmd/status.c
$(B)/tests/test_report_cmd: cmd/report.c cmd/status.c
$(B)/tests/test_policy_cmd: cmd/policy.c cmd/status.c cmd/control.c cmd/ctlreq.c tests/unit/ctldaemon.h
# test_http_throttle includes policy/http.c for a static function
$(B)/tests/test_http_throttle: policy/http.c
# test_nfq_ct includes nfq/nfq.c (ct_forget()'s helpers are static)
$(B)/tests/test_nfq_ct: nfq/nfq.c
# test_priv includes cmd/priv.c (make_state_dir() is static)
$(B)/tests/test_priv: cmd/priv.c
$(B)/tests/test_rules_cmd: cmd/rules.c cmd/status.c cmd/control.c cmd/ctlreq.c tests/unit/ctldaemon.h

unit: $(UNIT_BIN)

check-unit: $(UNIT_BIN)
	@sh tests/run-unit.sh $(UNIT_BIN)

# Fuzz targets: clang + libFuzzer + ASan/UBSan.  The library is compiled
# once with coverage instrumentation (fuzzer-no-link) and linked into each;
# cmd/ (but main.c) goes in as an archive, so a target that calls cmd/ code
# (fuzz_control: cmd/ctlreq.c) pulls in only the objects it needs.
FUZZ_SAN    = -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS = -std=gnu11 -g -O1 -D_GNU_SOURCE -I. $(PKG_CFLAGS) \
              -Wall -Wextra -Werror -Wno-unused-parameter
FUZZ_OBJ   := $(LIB_SRC:%.c=$(B)/fuzzobj/%.o)
FUZZ_CMD   := $(filter-out $(B)/fuzzobj/cmd/main.o,$(CMD_SRC:%.c=$(B)/fuzzobj/%.o))
$(B)/fuzzobj/%.o: %.c $(wildcard */*.h)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) $(FUZZ_SAN) -fsanitize=fuzzer-no-link -c -o $@ $<
.PRECIOUS: $(B)/fuzzobj/%.o
$(B)/fuzzobj/libcmd.a: $(FUZZ_CMD)
	rm -f $@ && ar rcs $@ $^
$(B)/fuzz/%: tests/fuzz/%.c $(FUZZ_OBJ) $(B)/fuzzobj/libcmd.a
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $< $(FUZZ_OBJ) \
	  $(B)/fuzzobj/libcmd.a $(PKG_LIBS)

fuzz: $(FUZZ_BIN)

# A smoke run per target in `make check` (CI has 45 minutes for all of it);
# `make fuzz-long` is the real run (docs/testing.md, "Fuzzing").
FUZZ_SECONDS ?= 5
check-fuzz: $(FUZZ_BIN)
	@sh tests/run-fuzz.sh $(FUZZ_SECONDS) $(FUZZ_BIN)

# Long fuzzing, not part of `make check`: every target (or FUZZ_TARGETS)
# for FUZZ_LONG_SECONDS, FUZZ_LONG_JOBS at a time under nice, its corpus
# kept and merged in FUZZ_LONG_DIR; prints executions, coverage and crashes.
FUZZ_LONG_SECONDS ?= 600
FUZZ_LONG_JOBS    ?= 2
FUZZ_LONG_DIR     ?= $(B)/fuzz-long
FUZZ_TARGETS      ?= $(FUZZ_BIN)
fuzz-long: $(FUZZ_BIN)
	@bash tests/fuzz/long.sh $(FUZZ_LONG_SECONDS) $(FUZZ_LONG_JOBS) \
	  $(FUZZ_LONG_DIR) $(FUZZ_TARGETS)

check-ns: $(B)/mxguard
	@MXGUARD=$(abspath $(B)/mxguard) bash tests/run-ns.sh '$(NS)'

# The ASan/UBSan pass of `make check`: every unit test, and the relay
# scenarios (1x, 2x) with a few later ones of the relay (106 a reset after
# the dot, 116 TLSRPT on a reused leg, 133 a reload during a report run,
# 138 a stopped daemon) against a sanitized daemon; the harness fails a
# scenario whose daemon log holds a sanitizer report.  `make asan` runs
# all scenarios (CI's 45 minutes do not hold them twice).
ASAN_NS ?= ^(1[0-9]|2[0-9]|106|116|133|138)-
# ASAN_NS_EXCLUDE (for `make asan`): four packet-path scenarios whose time
# is waits on the kernel (SYN retransmissions, a conntrack entry's CLOSE
# state, a drain), with nothing of the relay or no session at all: the
# normal pass runs them.
ASAN_NS_EXCLUDE ?= ^(113|120|131|134)-
check-asan:
	$(MAKE) -j$(JOBS) B=build-asan SAN=1 all unit
	sh tests/run-unit.sh $(patsubst $(B)/%,build-asan/%,$(UNIT_BIN))
	MXGUARD=$(abspath build-asan/mxguard) NS_EXCLUDE='$(ASAN_NS_EXCLUDE)' \
	  bash tests/run-ns.sh '$(ASAN_NS)'

asan:
	$(MAKE) ASAN_NS='$(NS)' check-asan

# Chaos soak (tests/soak/run.sh): minutes of combined disturbances, not in
# `make check`.  Under the namespace lock, as every scenario run by hand.
SOAK_SECONDS ?= 300
SOAK_ASAN    ?= 0
soak:
ifeq ($(SOAK_ASAN),1)
	$(MAKE) B=build-asan SAN=1 all
	flock /tmp/mxg-ns.lock env MXGUARD=$(abspath build-asan/mxguard) \
	  SOAK_SECONDS=$(SOAK_SECONDS) bash tests/soak/run.sh
else
	$(MAKE) all
	flock /tmp/mxg-ns.lock env MXGUARD=$(abspath $(B)/mxguard) \
	  SOAK_SECONDS=$(SOAK_SECONDS) bash tests/soak/run.sh
endif
.PHONY: soak

# The README's first command: the demo must work (it exits non-zero when a
# message does not end as the demo says it does).
check-demo: all
	./scripts/demo.sh
.PHONY: check-demo

# Everything is built first, in parallel (JOBS, the CPUs), then the tests
# run one part after the other: a part's timing waits must not share the
# machine with another part.
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
check:
	$(MAKE) -j$(JOBS) all unit fuzz
	$(MAKE) check-unit
	$(MAKE) check-fuzz
	$(MAKE) check-ns
	$(MAKE) check-asan
	$(MAKE) check-demo

install: $(B)/mxguard
	install -D -m 0755 $(B)/mxguard $(DESTDIR)$(SBINDIR)/mxguard
	install -D -m 0644 docs/mxguard.8 $(DESTDIR)$(MANDIR)/man8/mxguard.8
	install -D -m 0644 docs/mxguard.conf.5 $(DESTDIR)$(MANDIR)/man5/mxguard.conf.5
	install -d $(DESTDIR)$(UNITDIR)
	sed -e 's,/usr/local/sbin/mxguard,$(SBINDIR)/mxguard,g' \
	    -e 's,/etc/mxguard/,$(SYSCONFDIR)/mxguard/,g' \
	    systemd/mxguard.service >$(DESTDIR)$(UNITDIR)/mxguard.service
	sed -e 's,/usr/local/sbin/mxguard,$(SBINDIR)/mxguard,g' \
	    -e 's,/etc/mxguard/,$(SYSCONFDIR)/mxguard/,g' \
	    systemd/mxguard-rules.service >$(DESTDIR)$(UNITDIR)/mxguard-rules.service
	sed -e 's,/usr/local/sbin/mxguard,$(SBINDIR)/mxguard,g' \
	    -e 's,/etc/mxguard/,$(SYSCONFDIR)/mxguard/,g' \
	    systemd/mxguard-rules-watch.service >$(DESTDIR)$(UNITDIR)/mxguard-rules-watch.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/mxguard.service $(DESTDIR)$(UNITDIR)/mxguard-rules.service \
	    $(DESTDIR)$(UNITDIR)/mxguard-rules-watch.service
	install -D -m 0644 systemd/mxguard.sysusers $(DESTDIR)/usr/lib/sysusers.d/mxguard.conf
	install -D -m 0644 systemd/mxguard.tmpfiles $(DESTDIR)/usr/lib/tmpfiles.d/mxguard.conf
	install -D -m 0755 systemd/mxguard.ca-certificates-hook \
	    $(DESTDIR)$(SYSCONFDIR)/ca-certificates/update.d/mxguard
	test -e $(DESTDIR)$(SYSCONFDIR)/mxguard/mxguard.conf || \
	  install -D -m 0644 docs/mxguard.conf.example $(DESTDIR)$(SYSCONFDIR)/mxguard/mxguard.conf

bench: $(B)/mxguard
	MXGUARD=$(abspath $(B)/mxguard) bash tests/bench/run.sh

clean:
	rm -rf build build-asan

.PHONY: all unit check-unit fuzz check-fuzz fuzz-long check-ns check check-asan asan install bench clean
