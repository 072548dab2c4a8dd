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
	      -Iinclude -I/usr/include/$(MULTIARCH)
USER_CFLAGS := -g -O2 -Wall -Wextra -Werror -std=gnu11 -D_GNU_SOURCE \
	       -Iinclude -Iuser -I$(OUT) $(EXTRA_CFLAGS)
LDLIBS := -lxdp -lbpf -lelf -lz

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

.DELETE_ON_ERROR:
.SECONDARY:
.PHONY: all deps test unit bpftest e2e fuzz fuzz-long bench bench-smoke demo clean

all: pinhole

$(OUT) $(OUT)/user $(OUT)/tests/unit $(OUT)/tests/bpf $(OUT)/tests/fuzz:
	$(Q)mkdir -p $@

$(OUT)/%.bpf.o: bpf/%.bpf.c $(BPF_HDRS) | $(OUT)
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(OUT)/%.skel.h: $(OUT)/%.bpf.o | $(OUT)
	$(call msg,GEN-SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< > $@

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

# Fuzz targets: the userspace library rebuilt with clang's libFuzzer + ASan.
$(OUT)/tests/fuzz/%: tests/fuzz/%.c $(FUZZ_LIB_SRCS) $(USER_HDRS) $(SKELS) | $(OUT)/tests/fuzz
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
	$(Q)$(MAKE) --no-print-directory all $(UNIT_BINS) $(BPFT_BINS) $(FUZZ_BINS)
	$(Q)bash tests/run-tests.sh all

bench: deps all
	$(Q)$(MAKE) --no-print-directory -C tests/perf bench

bench-smoke: all
	$(Q)$(MAKE) --no-print-directory -C tests/perf smoke

demo: deps all
	$(Q)bash tests/demo.sh

clean:
	$(call msg,CLEAN,)
	$(Q)rm -rf $(OUT) pinhole
