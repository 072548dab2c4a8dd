# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# pinhole — build, test, demo, benchmark. `make V=1` shows the commands.

OUT       := .output
CLANG     ?= clang
CC        ?= cc
BPFTOOL   ?= bpftool
ARCH      := $(shell uname -m | sed 's/x86_64/x86/;s/aarch64/arm64/')
MULTIARCH := $(shell $(CC) -print-multiarch 2>/dev/null || echo $(shell uname -m)-linux-gnu)

ifeq ($(V),1)
Q :=
msg =
else
Q := @
msg = @printf '  %-8s %s\n' "$(1)" "$(2)";
endif

BPF_CFLAGS := -g -O2 -target bpf -D__TARGET_ARCH_$(ARCH) -Wall -Werror \
	      -Iinclude -I/usr/include/$(MULTIARCH) $(BPF_EXTRA_CFLAGS)
USER_CFLAGS := -g -O2 -Wall -Wextra -Werror -std=gnu11 -D_GNU_SOURCE \
	       -Iinclude -Iuser -I$(OUT) $(EXTRA_CFLAGS)
LDLIBS := -lxdp -lbpf -lelf -lz -lsystemd

# `pinhole --version` and state.build (with a hash of the BPF objects).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo unknown)

# make install: PREFIX, DESTDIR, and where the unit and config go.
PREFIX     ?= /usr/local
DESTDIR    ?=
SBINDIR    ?= $(PREFIX)/sbin
MANDIR     ?= $(PREFIX)/share/man
SYSCONFDIR ?= /etc
UNITDIR    ?= $(PREFIX)/lib/systemd/system

BPF_SRCS  := $(wildcard bpf/*.bpf.c)
BPF_OBJS  := $(patsubst bpf/%.bpf.c,$(OUT)/%.bpf.o,$(BPF_SRCS))
SKELS     := $(patsubst bpf/%.bpf.c,$(OUT)/%.skel.h,$(BPF_SRCS))
BPF_HDRS  := $(wildcard bpf/lib/*.h) $(wildcard include/pinhole/*.h)

USER_SRCS := $(wildcard user/*.c)
USER_OBJS := $(patsubst user/%.c,$(OUT)/user/%.o,$(USER_SRCS))
# Everything but main(): linked into unit tests, BPF tests and tools.
LIB_OBJS  := $(filter-out $(OUT)/user/main.o,$(USER_OBJS))
USER_HDRS := $(wildcard user/*.h) $(wildcard include/pinhole/*.h)

UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(OUT)/tests/unit/%,$(UNIT_SRCS))
BPFT_SRCS := $(wildcard tests/bpf/test_*.c)
BPFT_BINS := $(patsubst tests/bpf/%.c,$(OUT)/tests/bpf/%,$(BPFT_SRCS))
TEST_HDRS := $(wildcard tests/*.h tests/*/*.h)
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(patsubst tests/fuzz/%.c,$(OUT)/tests/fuzz/%,$(FUZZ_SRCS))
FUZZ_LIB_SRCS := $(filter-out user/main.c,$(USER_SRCS))
VM_TOOLS  := $(OUT)/tests/vm/phverify
# make vmtest KERNEL=6.1|6.12|ABI-NAME [VMTEST=full|quick|pktgen]
KERNEL    ?= 6.1
VMTEST    ?= full

.DELETE_ON_ERROR:
.SECONDARY:
.PHONY: all deps test unit bpftest e2e fuzz fuzz-long bench bench-smoke demo clean vmtest install FORCE

all: pinhole

$(OUT) $(OUT)/user $(OUT)/tests/unit $(OUT)/tests/bpf $(OUT)/tests/fuzz $(OUT)/tests/vm:
	$(Q)mkdir -p $@

$(OUT)/%.bpf.o: bpf/%.bpf.c $(BPF_HDRS) tests/bpf/stack_depth.py | $(OUT)
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@
	$(Q)/usr/bin/python3 tests/bpf/stack_depth.py $(if $(filter 1,$(V)),-v) $@

$(OUT)/%.skel.h: $(OUT)/%.bpf.o | $(OUT)
	$(call msg,GEN-SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< > $@

# Rewritten only when VERSION changes, so a new commit relinks, not rebuilds.
$(OUT)/version.h: FORCE | $(OUT)
	$(Q)printf '#define PH_VERSION "%s"\n' '$(VERSION)' >$@.tmp; \
	if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv $@.tmp $@; fi

$(OUT)/user/loader.o $(OUT)/user/main.o: $(OUT)/version.h

$(OUT)/user/%.o: user/%.c $(USER_HDRS) $(SKELS) | $(OUT)/user
	$(call msg,CC,$@)
	$(Q)$(CC) $(USER_CFLAGS) -c $< -o $@

pinhole: $(USER_OBJS)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(USER_CFLAGS) $^ $(LDLIBS) -o $@

$(OUT)/tests/unit/%: tests/unit/%.c $(LIB_OBJS) $(TEST_HDRS) | $(OUT)/tests/unit
	$(call msg,CC,$@)
	$(Q)$(CC) $(USER_CFLAGS) -Itests $< $(LIB_OBJS) $(LDLIBS) -o $@

$(OUT)/tests/bpf/%: tests/bpf/%.c $(LIB_OBJS) $(SKELS) $(TEST_HDRS) | $(OUT)/tests/bpf
	$(call msg,CC,$@)
	$(Q)$(CC) $(USER_CFLAGS) -Itests $< $(LIB_OBJS) $(LDLIBS) -o $@

$(OUT)/tests/vm/%: tests/vm/%.c $(LIB_OBJS) $(SKELS) | $(OUT)/tests/vm
	$(call msg,CC,$@)
	$(Q)$(CC) $(USER_CFLAGS) $< $(LIB_OBJS) $(LDLIBS) -o $@

# Fuzz targets: the userspace library rebuilt with clang's libFuzzer + ASan.
$(OUT)/tests/fuzz/%: tests/fuzz/%.c $(FUZZ_LIB_SRCS) $(USER_HDRS) $(SKELS) $(OUT)/version.h | $(OUT)/tests/fuzz
	$(call msg,FUZZ-CC,$@)
	$(Q)$(CLANG) -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE \
		-Iinclude -Iuser -I$(OUT) -Itests $< $(FUZZ_LIB_SRCS) $(LDLIBS) -o $@

deps:
	$(Q)bash tests/deps.sh

unit: $(UNIT_BINS)
	$(Q)bash tests/run-tests.sh unit $(UNIT_BINS)

bpftest: $(BPFT_BINS) pinhole
	$(Q)bash tests/run-tests.sh bpf $(BPFT_BINS)

e2e: pinhole
	$(Q)bash tests/run-tests.sh e2e tests/e2e/test_*.sh

fuzz: $(FUZZ_BINS)
	$(Q)bash tests/run-tests.sh fuzz $(FUZZ_BINS)

fuzz-long: $(FUZZ_BINS)
	$(Q)FUZZ_SECONDS=$${FUZZ_SECONDS:-600} bash tests/run-tests.sh fuzz $(FUZZ_BINS)

# The README's test command: installs what it needs, then runs every suite.
test: deps
	$(Q)$(MAKE) --no-print-directory all $(UNIT_BINS) $(BPFT_BINS) $(FUZZ_BINS) $(VM_TOOLS)
	$(Q)bash tests/run-tests.sh all

# Debian's stock kernels in qemu (tests/vm/README.md, docs/kernels.md).
vmtest: all $(UNIT_BINS) $(BPFT_BINS) $(VM_TOOLS)
	$(Q)bash tests/vm/vmtest.sh $(KERNEL) $(VMTEST)

bench: deps all
	$(Q)$(MAKE) --no-print-directory -C tests/perf bench

bench-smoke: all
	$(Q)$(MAKE) --no-print-directory -C tests/perf smoke

demo: deps all
	$(Q)bash tests/demo.sh

# The binary, man pages pinhole(8) and pinhole.policy(5), a default policy
# (kept if one exists) and the systemd unit pinhole@.service (docs/install.md).
install: pinhole
	$(call msg,INSTALL,$(DESTDIR)$(PREFIX))
	$(Q)install -D -m 0755 pinhole $(DESTDIR)$(SBINDIR)/pinhole
	$(Q)install -D -m 0644 docs/man/pinhole.8 $(DESTDIR)$(MANDIR)/man8/pinhole.8
	$(Q)install -D -m 0644 docs/man/pinhole.policy.5 $(DESTDIR)$(MANDIR)/man5/pinhole.policy.5
	$(Q)install -d -m 0755 $(DESTDIR)$(SYSCONFDIR)/pinhole
	$(Q)[ -e $(DESTDIR)$(SYSCONFDIR)/pinhole/pinhole.policy ] || \
		install -m 0644 dist/pinhole.policy $(DESTDIR)$(SYSCONFDIR)/pinhole/pinhole.policy
	$(Q)sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
		dist/pinhole@.service.in >$(OUT)/pinhole@.service
	$(Q)install -D -m 0644 $(OUT)/pinhole@.service $(DESTDIR)$(UNITDIR)/pinhole@.service

clean:
	$(call msg,CLEAN,)
	$(Q)rm -rf $(OUT) pinhole
