# kbvault — plain Makefile. `make`, `make test`, `make install`, `make bench`.
# Variables: CC, CFLAGS, LDFLAGS, PREFIX, DESTDIR, SANITIZE=address,undefined

CC      ?= cc
PREFIX  ?= /usr/local
BINDIR  ?= $(PREFIX)/bin
MANDIR  ?= $(PREFIX)/share/man
SYSCONFDIR ?= /etc
UNITDIR ?= $(PREFIX)/lib/systemd/system
DOCDIR  ?= $(PREFIX)/share/doc/kbvault
# Where the cron file goes: not /etc/cron.d by default, so installing enables no job by
# surprise (make install CRONDIR=/etc/cron.d does).
CRONDIR ?= $(DOCDIR)/cron.d
CFLAGS  ?= -O2 -g
PKGS    := libzstd libsodium lmdb libxxhash jansson inih libpq libcurl expat libcrypto

ifneq ($(SANITIZE),)
BUILD   ?= build/san
CFLAGS  += -O1 -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=$(SANITIZE)
else
BUILD   ?= build
endif

# BLAKE3, the chunk-id hash of new repositories (format/blob.md): the reference C
# implementation as Debian ships it (librust-blake3-dev carries the crate's C sources; no
# Rust is built), compiled here with its x86-64 assembly, portable code elsewhere.
BLAKE3_DIR ?= $(firstword $(wildcard /usr/share/cargo/registry/blake3-1.*/c) /usr/share/cargo/registry/blake3-1.3.1/c)
BLAKE3_C   := blake3.c blake3_dispatch.c blake3_portable.c
ifeq ($(shell uname -m),x86_64)
BLAKE3_S   := blake3_sse2_x86-64_unix.S blake3_sse41_x86-64_unix.S blake3_avx2_x86-64_unix.S blake3_avx512_x86-64_unix.S
BLAKE3_DEFS :=
else
BLAKE3_S   :=
BLAKE3_DEFS := -DBLAKE3_NO_SSE2 -DBLAKE3_NO_SSE41 -DBLAKE3_NO_AVX2 -DBLAKE3_NO_AVX512 -DBLAKE3_USE_NEON=0
endif

PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
             -Iinclude -Isrc -I$(BLAKE3_DIR) $(PKG_CFLAGS) -MMD -MP $(CFLAGS)
LIBS       = $(PKG_LIBS) -lpthread -lm

LIB_SRC := $(wildcard src/util/*.c src/codec/*.c src/store/*.c src/store/s3/*.c src/engine/*.c src/sources/*.c src/config/*.c)
CLI_SRC := $(wildcard src/cli/*.c)
LIB_OBJ := $(LIB_SRC:src/%.c=$(BUILD)/obj/%.o) $(BLAKE3_C:%.c=$(BUILD)/obj/blake3/%.o) $(BLAKE3_S:%.S=$(BUILD)/obj/blake3/%.o)
CLI_OBJ := $(CLI_SRC:src/%.c=$(BUILD)/obj/%.o)
LIBKBV  := $(BUILD)/libkbvault.a
PROG    := $(BUILD)/kbvault

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
TOOL_SRC := $(wildcard tests/tools/*.c)
TOOL_BIN := $(TOOL_SRC:tests/tools/%.c=$(BUILD)/tests/%)
FUZZ_NAMES := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_REPLAY := $(FUZZ_NAMES:%=$(BUILD)/tests/fuzz_%)
MAN1      := $(wildcard docs/man/*.1)
MAN5      := $(wildcard docs/man/*.5)
BENCH_SRC := $(wildcard bench/*.c)
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

.PHONY: backup restore all deps bench-deps fuzz fuzz-campaign fuzz-seeds test test-unit test-cli install uninstall clean demo bench bench-quick bench-synthetic bench-synthetic-quick bench-pg bench-pg-quick bench-pitr bench-pitr-quick bench-sources bench-gc bench-s3 bench-speed bench-files soak check-san
all: $(PROG)

$(BUILD)/obj/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/obj/blake3/%.o: $(BLAKE3_DIR)/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(BLAKE3_DEFS) -I$(BLAKE3_DIR) -MMD -MP -c -o $@ $<

$(BUILD)/obj/blake3/%.o: $(BLAKE3_DIR)/%.S
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(addprefix $(BLAKE3_DIR)/,$(BLAKE3_C) $(BLAKE3_S)):
	@echo "kbvault: $@ is missing: BLAKE3's C sources come from Debian's librust-blake3-dev (run 'make deps' as root)" >&2; exit 1

$(LIBKBV): $(LIB_OBJ)
	rm -f $@
	ar rcs $@ $^

$(PROG): $(CLI_OBJ) $(LIBKBV)
	$(CC) $(LDFLAGS) -o $@ $(CLI_OBJ) $(LIBKBV) $(LIBS)

$(BUILD)/tests/%: tests/unit/%.c $(LIBKBV)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(LIBKBV) $(LIBS) $(shell pkg-config --libs cmocka 2>/dev/null) $(LDFLAGS)

# Corpus replay of each fuzz target, without libFuzzer (runs in make test).
$(BUILD)/tests/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/replay.c $(LIBKBV)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests/fuzz -DCORPUS='"tests/fuzz/corpus/$*"' -o $@ $< tests/fuzz/replay.c $(LIBKBV) $(LIBS) $(LDFLAGS)

$(BUILD)/tests/%: tests/tools/%.c $(LIBKBV)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(LIBKBV) $(LIBS) $(LDFLAGS)

$(BUILD)/bench/%: bench/%.c $(LIBKBV)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -O2 -o $@ $< $(LIBKBV) $(LIBS) $(LDFLAGS)

# Install the Debian packages the build and the tests need (as root, through apt-get).
deps:
	@scripts/deps.sh

bench-deps:
	@scripts/deps.sh bench

TEST_ENV = PROMTOOL=$(abspath build/tools/promtool) KBVAULT=$(abspath $(PROG)) GENDUMP=$(abspath $(BUILD)/bench/gendump) MKSNAP=$(abspath $(BUILD)/tests/mksnap)

# The core suites run a second time with their repositories on object storage (Ceph).
CLI_S3 := tests/cli/basic.bats tests/cli/crash.bats tests/cli/gc.bats tests/cli/badinput.bats tests/cli/pitr.bats

test: deps
	@$(MAKE) --no-print-directory $(PROG) $(UNIT_BIN) $(FUZZ_REPLAY) $(BENCH_BIN) $(TOOL_BIN)
	@$(TEST_ENV) scripts/run-tests.sh --unit $(UNIT_BIN) $(FUZZ_REPLAY) --cli tests/cli/*.bats --cli-s3 $(CLI_S3)

test-unit: $(UNIT_BIN) $(FUZZ_REPLAY)
	@scripts/run-tests.sh --unit $(UNIT_BIN) $(FUZZ_REPLAY)

test-cli: $(PROG) $(BENCH_BIN) $(TOOL_BIN)
	@$(TEST_ENV) scripts/run-tests.sh --cli tests/cli/*.bats --cli-s3 $(CLI_S3)

# The README's first command: install, build, and a short demonstration on the default repository.
demo: deps
	@$(MAKE) --no-print-directory all $(BENCH_BIN)
	@KBVAULT=$(abspath $(PROG)) GENDUMP=$(abspath $(BUILD)/bench/gendump) scripts/demo.sh

# The benchmark: a real PostgreSQL knowledge base, Qdrant-like and Neo4j-like streams,
# kbvault against restic, borg and nightly gzip (bench/kb.sh).
bench: deps bench-deps all $(BENCH_BIN)
	@KBVAULT=$(abspath $(PROG)) BENCHBIN=$(abspath $(BUILD)/bench) bench/kb.sh full

bench-quick: deps bench-deps all $(BENCH_BIN)
	@KBVAULT=$(abspath $(PROG)) BENCHBIN=$(abspath $(BUILD)/bench) bench/kb.sh quick

# Synthetic pg_dump output (bench/gendump): one 1.1 GB dump, ten nights, chunk sweep
# through real repositories (bench/run.sh).
bench-synthetic: deps bench-deps all $(BENCH_BIN)
	@KBVAULT=$(abspath $(PROG)) BENCHBIN=$(abspath $(BUILD)/bench) bench/run.sh full

bench-synthetic-quick: deps bench-deps all $(BENCH_BIN)
	@KBVAULT=$(abspath $(PROG)) BENCHBIN=$(abspath $(BUILD)/bench) bench/run.sh quick

# PostgreSQL sources over days of an evolving database (bench/pg-evolve.sh).
bench-pg: deps bench-deps all
	@KBVAULT=$(abspath $(PROG)) bench/pg-evolve.sh full

bench-pg-quick: deps bench-deps all
	@KBVAULT=$(abspath $(PROG)) bench/pg-evolve.sh quick

# Point-in-time recovery against pgBackRest: base backups per night, archiving per segment,
# restore to a time (bench/pitr.sh).
bench-pitr: deps bench-deps all
	@KBVAULT=$(abspath $(PROG)) bench/pitr.sh full

bench-pitr-quick: deps bench-deps all
	@KBVAULT=$(abspath $(PROG)) bench/pitr.sh quick

# gc and check on a repository of > 1M chunks vs restic forget --prune (bench/gc.sh).
bench-gc: deps bench-deps all $(BENCH_BIN)
	@KBVAULT=$(abspath $(PROG)) BENCHBIN=$(abspath $(BUILD)/bench) bench/gc.sh

# kbvault against restic on Debian's Ceph radosgw, same run, on the knowledge-base series of
# make bench (bench/s3.sh; DATA=synthetic for the bench/gendump series).
bench-s3: deps bench-deps all $(BENCH_BIN)
	@KBVAULT=$(abspath $(PROG)) GENDUMP=$(abspath $(BUILD)/bench/gendump) bench/s3.sh
	@# three writer hosts at once against one, and requests per operation (bench/s3-hosts.sh)
	@KBVAULT=$(abspath $(PROG)) GENDUMP=$(abspath $(BUILD)/bench/gendump) bench/s3-hosts.sh
	@# gc on 1,000 and 10,000 packs, and restic on the same data (bench/s3-manypacks.sh)
	@KBVAULT=$(abspath $(PROG)) bench/s3-manypacks.sh
	@# short commands on the bucket 30 ms away: the start of a command (bench/s3-start.sh)
	@KBVAULT=$(abspath $(PROG)) RTT_MS=30 bench/s3-start.sh

# The speed aims (issue 17): first snapshot, unchanged re-snapshot and restore of a ~1 GB
# dump against restic in one run, and the zstd level sweep (bench/speed.sh; MB, ROUNDS,
# LEVELS, NIGHTS).
bench-speed: deps bench-deps all $(BENCH_BIN)
	@KBVAULT=$(abspath $(PROG)) GENDUMP=$(abspath $(BUILD)/bench/gendump) MICROBENCH=$(abspath $(BUILD)/bench/microbench) bench/speed.sh

# A restore of 20,000 small files against restic, each round on a fresh ext4
# (bench/restore-tree.sh; ROUNDS, OTHER, S3=1 [RTT_MS=N], TREE=random).
bench-files: deps bench-deps all
	@KBVAULT=$(abspath $(PROG)) bench/restore-tree.sh

# Qdrant snapshots and Neo4j dumps over nights, through the stand-ins (bench/sources.sh).
bench-sources: deps bench-deps all
	@KBVAULT=$(abspath $(PROG)) bench/sources.sh

soak: deps all $(BENCH_BIN)
	@KBVAULT=$(abspath $(PROG)) GENDUMP=$(abspath $(BUILD)/bench/gendump) KBV_SOAK=1 \
		scripts/run-tests.sh --cli tests/cli/crash.bats tests/cli/gc.bats tests/cli/manyhosts.bats tests/cli/shared.bats tests/cli/large.bats \
		--cli-s3 tests/cli/large.bats
	@# every repository file flipped, truncated and deleted in turn (tests/soak/corruption.sh)
	@KBVAULT=$(abspath $(PROG)) tests/soak/corruption.sh

# libFuzzer with ASan+UBSan, FUZZ_SECONDS per target (default 60); new inputs go to
# build/fuzz/corpus-NAME; copy the interesting ones into tests/fuzz/corpus/NAME.
FUZZ_SECONDS ?= 60
fuzz: deps
	@scripts/deps.sh fuzz
	@mkdir -p build/fuzz
	@for t in $(FUZZ_NAMES); do \
		clang -std=c11 -D_GNU_SOURCE -g -O1 -Iinclude -Isrc -Itests/fuzz -I$(BLAKE3_DIR) $(BLAKE3_DEFS) $(PKG_CFLAGS) \
			-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -o build/fuzz/fuzz_$$t tests/fuzz/fuzz_$$t.c $(LIB_SRC) \
			$(addprefix $(BLAKE3_DIR)/,$(BLAKE3_C) $(BLAKE3_S)) $(LIBS) || exit 1; \
		mkdir -p build/fuzz/corpus-$$t && cp tests/fuzz/corpus/$$t/* build/fuzz/corpus-$$t/; \
		echo "== fuzz $$t ($(FUZZ_SECONDS) s)"; \
		build/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=build/fuzz/ \
			build/fuzz/corpus-$$t 2>&1 | tail -2 || exit 1; \
	done

# A fuzz campaign: each of FUZZ_TARGETS (default: all) until it has used FUZZ_CPU_SECONDS
# of CPU (default one hour); executions, corpus growth and findings per target go to
# build/fuzz/campaign.log (tests/fuzz/campaign.sh).
FUZZ_CPU_SECONDS ?= 3600
fuzz-campaign:
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=1
	@FUZZ_CPU_SECONDS=$(FUZZ_CPU_SECONDS) tests/fuzz/campaign.sh $(FUZZ_TARGETS)

fuzz-seeds: $(LIBKBV)
	$(CC) $(ALL_CFLAGS) -o $(BUILD)/seeds tests/fuzz/seeds.c $(LIBKBV) $(LIBS)
	$(BUILD)/seeds

# What teams already type. The configuration (-c via KBVAULT_CONFIG, ./kbvault.conf or
# /etc/kbvault/kbvault.conf) names the sources, the repository and the [retention] policy.
#   make backup                                   snapshot every source, then gc
#   make restore BACKUP=<snapshot|latest> [SOURCE=<name>] [FORCE=1]
#                                                 every source (or one) back where it came from
KBVAULT_BIN ?= $(PROG)
backup: $(if $(filter $(PROG),$(KBVAULT_BIN)),$(PROG))
	$(KBVAULT_BIN) snapshot
	$(KBVAULT_BIN) gc

restore: $(if $(filter $(PROG),$(KBVAULT_BIN)),$(PROG))
	@test -n "$(BACKUP)" || { echo "usage: make restore BACKUP=<snapshot id, prefix or latest> [SOURCE=<name>] [FORCE=1]" >&2; exit 2; }
	$(KBVAULT_BIN) restore $(BACKUP) $(if $(SOURCE),--source $(SOURCE),--all-sources --in-place) $(if $(FORCE),--force)

install: $(PROG)
	install -d $(DESTDIR)$(BINDIR)
	install -m 755 $(PROG) $(DESTDIR)$(BINDIR)/kbvault
	install -d $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5
	install -m 644 $(MAN1) $(DESTDIR)$(MANDIR)/man1/
	install -m 644 $(MAN5) $(DESTDIR)$(MANDIR)/man5/
	@# The schedules call the program where it was installed, not where the sources say.
	install -d $(DESTDIR)$(UNITDIR) $(DESTDIR)$(CRONDIR)
	for u in docs/systemd/*; do \
		sed 's|/usr/local/bin/kbvault|$(BINDIR)/kbvault|g' "$$u" > $(DESTDIR)$(UNITDIR)/$$(basename "$$u") && \
		chmod 644 $(DESTDIR)$(UNITDIR)/$$(basename "$$u") || exit 1; \
	done
	sed 's|^PATH=/usr/local/bin:|PATH=$(BINDIR):|' docs/cron/kbvault > $(DESTDIR)$(CRONDIR)/kbvault
	chmod 644 $(DESTDIR)$(CRONDIR)/kbvault
	install -d $(DESTDIR)$(DOCDIR)/prometheus
	install -m 644 docs/prometheus/kbvault-rules.yml $(DESTDIR)$(DOCDIR)/prometheus/
	install -d -m 755 $(DESTDIR)$(SYSCONFDIR)/kbvault
	install -m 600 docs/examples/kbvault.conf $(DESTDIR)$(SYSCONFDIR)/kbvault/kbvault.conf.example

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/kbvault $(addprefix $(DESTDIR)$(MANDIR)/man1/,$(notdir $(MAN1))) \
		$(addprefix $(DESTDIR)$(MANDIR)/man5/,$(notdir $(MAN5))) \
		$(addprefix $(DESTDIR)$(UNITDIR)/,$(notdir $(wildcard docs/systemd/*))) \
		$(DESTDIR)$(CRONDIR)/kbvault $(DESTDIR)$(SYSCONFDIR)/kbvault/kbvault.conf.example \
		$(DESTDIR)$(DOCDIR)/prometheus/kbvault-rules.yml

clean:
	rm -rf build

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d)
