# postern: build, test, demo.  `make` builds ./postern; `make test` installs what
# it needs (Debian packages, as root), builds, and runs every test.

CC      ?= cc
# OPT is what a sanitizer or debug build changes; CFLAGS from the command line
# adds to the fixed flags instead of replacing them.
OPT     ?= -O2 -g
BASE_CFLAGS = $(OPT) -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror
# Layers: lib/ (pure) <- policy/ <- proxy/.  Each folder is compiled with the
# -I flags of itself and the layers below it only, so an upward include
# fails to build.
INC_lib    = -Ilib
INC_policy = -Ilib -Ipolicy
INC_proxy  = -Ilib -Ipolicy -Iproxy
ALL_CFLAGS = $(BASE_CFLAGS) $(INC_proxy) $(CFLAGS)
PKGS     = openssl libconfig libsystemd libmicrohttpd libcurl jansson
LIBS     = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -llmdb -lhiredis -lev -lpthread
PYTHON  ?= /usr/bin/python3

# make install: GNU-style directories; DESTDIR is prepended to each.  The
# sample config goes to SYSCONFDIR/postern/postern.conf.sample, never over
# an operator's postern.conf; packagers set PREFIX=/usr SYSCONFDIR=/etc.
# The unit and the man page get SBINDIR and SYSCONFDIR written into them.
PREFIX     ?= /usr/local
SBINDIR    ?= $(PREFIX)/sbin
SYSCONFDIR ?= $(PREFIX)/etc
MANDIR     ?= $(PREFIX)/share/man
UNITDIR    ?= $(PREFIX)/lib/systemd/system
INSTALL    ?= install

BUILD    = build
# Parsers and other pure code: no libev, no sockets; linked into fuzzers.
PURE_SRC = lib/addr.c lib/buf.c lib/dialog.c lib/imap.c lib/imap_grammar.c lib/imap_quote.c lib/pop3.c lib/sasl.c lib/route.c lib/route_map.c lib/log.c \
           lib/proxyproto.c lib/prom.c lib/imap_resp.c lib/pop3_resp.c lib/account.c lib/utf8.c \
           lib/lookup_msg.c lib/lookup_nginx.c lib/lookup_json.c lib/sieve.c lib/sieve_resp.c
# The config loader: lib/ too, but it reads files and resolves host names.
CONFIG_SRC = lib/config.c lib/config_check.c lib/config_listen.c lib/config_backend.c lib/config_policy.c \
             lib/config_lookup.c lib/state_url.c
# What unit tests link: the pure code and the config loader.
UNIT_SRC = $(PURE_SRC) $(CONFIG_SRC) $(POLICY_SRC)
CORE_SRC = $(CONFIG_SRC) proxy/metrics.c proxy/metrics_http.c proxy/tls.c proxy/link.c proxy/listener.c proxy/conn.c proxy/conn_index.c proxy/login.c \
           proxy/sasl_exchange.c proxy/reason.c proxy/imap_session.c proxy/pop3_session.c proxy/sieve_session.c proxy/backend.c \
           proxy/backend_imap.c proxy/backend_pop3.c proxy/backend_sieve.c proxy/relay.c proxy/worker.c \
           proxy/runtime.c proxy/registry.c proxy/health.c proxy/lifecycle.c proxy/notify.c proxy/admin.c \
           proxy/admin_answer.c proxy/admin_client.c proxy/admin_cmd.c proxy/admin_request.c \
           proxy/admin_worker.c proxy/admin_lookup.c proxy/lookup.c proxy/lookup_breaker.c \
           proxy/lookup_cache.c proxy/dynback.c
MAIN_SRC = proxy/main.c
# policy/: decisions and the state behind them
POLICY_SRC = $(wildcard policy/*.c)
SRC      = $(PURE_SRC) $(CORE_SRC) $(POLICY_SRC) $(MAIN_SRC)
OBJ      = $(SRC:%.c=$(BUILD)/%.o)
HDR      = $(wildcard lib/*.h proxy/*.h policy/*.h)
# Each object also depends on the headers it includes (-MMD writes them to
# a .d file beside it), so a header edit rebuilds exactly what it touches.
DEPFLAGS = -MMD -MP

# tests/unit/test_proxy_*.c test proxy/ pieces that run without sockets
# (tables, the state machine's names, the admin command table): they link
# every daemon object but main.o.
UNIT_PROXY = $(patsubst tests/unit/%.c,%,$(wildcard tests/unit/test_proxy_*.c))
UNIT     = $(filter-out $(UNIT_PROXY),$(patsubst tests/unit/%.c,%,$(wildcard tests/unit/test_*.c)))
FUZZ     = fuzz_imap fuzz_pop3 fuzz_proxyproto fuzz_sasl fuzz_imap_resp fuzz_pop3_resp fuzz_dialog \
           fuzz_lookup_nginx fuzz_lookup_json fuzz_sieve fuzz_sieve_resp

.PHONY: all depcheck deps check-structure test unit unit-asan postern-asan fuzz fuzz-short integration integration-asan \
        demo bench scale format clean install uninstall install-check docker docker-test

all: postern

# The -dev packages are what a build needs first: say so instead of
# stopping at the first missing header (order-only, so it never forces a
# rebuild).
depcheck:
	@pkg-config --exists $(PKGS) && for h in lmdb.h hiredis/hiredis.h ev.h; do \
	  [ -f /usr/include/$$h ] || exit 1; done || { \
	  echo "postern: the build dependencies are missing: run 'make deps' first (as root, it installs the Debian packages)" >&2; exit 1; }

postern: $(OBJ)
	$(CC) $(ALL_CFLAGS) -o $@ $(OBJ) $(LIBS)

# The daemon inside a build directory (the sanitizer build uses it).
$(BUILD)/postern: $(OBJ)
	$(CC) $(ALL_CFLAGS) -o $@ $(OBJ) $(LIBS)

$(BUILD)/lib/%.o: lib/%.c | depcheck
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(DEPFLAGS) $(INC_lib) $(CFLAGS) -c -o $@ $<

$(BUILD)/policy/%.o: policy/%.c | depcheck
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(DEPFLAGS) $(INC_policy) $(CFLAGS) -c -o $@ $<

$(BUILD)/proxy/%.o: proxy/%.c | depcheck
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(DEPFLAGS) $(INC_proxy) $(CFLAGS) -c -o $@ $<

deps:
	@sh tests/deps.sh

# ---- install ------------------------------------------------------------------
SUBST = sed -e 's|/usr/local/sbin|$(SBINDIR)|g' -e 's|/usr/local/etc|$(SYSCONFDIR)|g'

install: postern
	$(INSTALL) -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSCONFDIR)/postern \
	  $(DESTDIR)$(MANDIR)/man8
	$(INSTALL) -m 755 postern $(DESTDIR)$(SBINDIR)/postern
	$(SUBST) etc/postern.service > $(DESTDIR)$(UNITDIR)/postern.service
	$(SUBST) etc/postern.service > $(DESTDIR)$(UNITDIR)/postern@.service
	chmod 644 $(DESTDIR)$(UNITDIR)/postern.service $(DESTDIR)$(UNITDIR)/postern@.service
	$(INSTALL) -m 644 etc/postern.conf $(DESTDIR)$(SYSCONFDIR)/postern/postern.conf.sample
	$(SUBST) man/postern.8 > $(DESTDIR)$(MANDIR)/man8/postern.8
	chmod 644 $(DESTDIR)$(MANDIR)/man8/postern.8

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/postern $(DESTDIR)$(UNITDIR)/postern.service \
	  $(DESTDIR)$(UNITDIR)/postern@.service \
	  $(DESTDIR)$(SYSCONFDIR)/postern/postern.conf.sample $(DESTDIR)$(MANDIR)/man8/postern.8

# make install into a temporary DESTDIR (default and packager layouts): the
# files land where postern(8) says, the man page renders without warnings,
# the unit passes systemd-analyze verify where that tool exists.
install-check: postern
	@sh tests/install_check.sh

# ---- unit tests: each tests/unit/test_X.c links the pure objects and config --
LIB_OBJ = $(patsubst %.c,$(BUILD)/%.o,$(wildcard $(UNIT_SRC)))

$(BUILD)/unit/%: tests/unit/%.c $(LIB_OBJ) tests/unit/unit.h tests/unit/redis_server.h
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(DEPFLAGS) $(INC_policy) $(CFLAGS) -Itests/unit -o $@ $< $(LIB_OBJ) $(LIBS) -lcmocka

# test_proxy_admin also reads man/postern.8 (SRCDIR): the page must name the
# table's commands.
$(BUILD)/unit/test_proxy_%: tests/unit/test_proxy_%.c $(filter-out $(BUILD)/proxy/main.o,$(OBJ)) tests/unit/unit.h man/postern.8
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(DEPFLAGS) $(INC_proxy) $(CFLAGS) -Itests/unit -DSRCDIR='"$(CURDIR)"' -o $@ $< $(filter-out $(BUILD)/proxy/main.o,$(OBJ)) $(LIBS) -lcmocka

unit: $(UNIT:%=$(BUILD)/unit/%) $(UNIT_PROXY:%=$(BUILD)/unit/%)
	@set -e; for t in $^; do echo "== $$t"; $$t; done

# The same unit tests under AddressSanitizer and UndefinedBehaviorSanitizer.
ASAN_OPT = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
unit-asan:
	$(MAKE) --no-print-directory BUILD=$(BUILD)/asan OPT="$(ASAN_OPT)" unit

# postern itself under both sanitizers: build/asan/postern.
postern-asan:
	$(MAKE) --no-print-directory BUILD=$(BUILD)/asan OPT="$(ASAN_OPT)" $(BUILD)/asan/postern

# ---- fuzzing (clang, libFuzzer) ---------------------------------------------
FUZZ_CFLAGS = -std=c11 -D_GNU_SOURCE -g -O1 -Ilib -fsanitize=fuzzer,address,undefined
# The pure code is compiled once for every fuzzer (instrumented, without
# libFuzzer's main), each harness then only compiles itself and links.
FUZZ_OBJ = $(PURE_SRC:%.c=$(BUILD)/fuzz/obj/%.o)
$(BUILD)/fuzz/obj/%.o: %.c $(HDR)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS:-fsanitize=fuzzer,%=-fsanitize=fuzzer-no-link,%) -c -o $@ $<
$(BUILD)/fuzz/%: tests/fuzz/%.c $(wildcard tests/fuzz/*.h) $(FUZZ_OBJ) $(HDR)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_OBJ) -lcrypto -ljansson -lm

fuzz: $(FUZZ:%=$(BUILD)/fuzz/%)
	@set -e; for f in $(FUZZ); do n=$${f#fuzz_}; mkdir -p $(BUILD)/fuzz/corpus-$$n; \
	  $(BUILD)/fuzz/$$f -max_total_time=$${FUZZ_SECONDS:-300} -dict=tests/fuzz/$$n.dict \
	    $(BUILD)/fuzz/corpus-$$n tests/fuzz/corpus/$$n; done

# A short run, part of `make test`: the committed corpora replayed, then
# each fuzzer a few seconds more (`make fuzz` runs 300 s each).
fuzz-short:
	$(MAKE) --no-print-directory -j2 $(FUZZ:%=$(BUILD)/fuzz/%)
	$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=$${FUZZ_SECONDS:-12}

# ---- integration: real Dovecot backends, real clients, real TLS -------------
integration: postern
	$(PYTHON) -m pytest -q -p no:cacheprovider --durations=25 tests/integration

# The integration suite against build/asan/postern.  Every sanitizer report
# (ASan, LeakSanitizer at exit, UBSan) goes to a file in SAN_LOGS, and any
# such file fails the run (tests/integration/conftest.py prints them).
# The harness stops postern with SIGTERM, so it returns from main() and the
# leak check runs.  POSTERN_TIMEOUT_SCALE stretches the harness's waits.
SAN_LOGS = $(abspath $(BUILD))/asan/reports
integration-asan: postern-asan
	rm -rf $(SAN_LOGS) && mkdir -p $(SAN_LOGS)
	POSTERN_BIN=$(abspath $(BUILD))/asan/postern POSTERN_SANITIZER_LOGS=$(SAN_LOGS) \
	POSTERN_TIMEOUT_SCALE=$${POSTERN_TIMEOUT_SCALE:-2} \
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:log_path=$(SAN_LOGS)/asan \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:log_path=$(SAN_LOGS)/ubsan \
	  $(PYTHON) -m pytest -q -p no:cacheprovider --durations=25 tests/integration

# The tree's shape: file sizes, no weak symbols, no module cycles
# (tests/tools/structure.sh).
check-structure: postern
	@PYTHON=$(PYTHON) sh tests/tools/structure.sh $(BUILD)

test: deps
	$(MAKE) --no-print-directory all
	$(MAKE) --no-print-directory check-structure
	$(MAKE) --no-print-directory install-check
	$(MAKE) --no-print-directory unit
	$(MAKE) --no-print-directory unit-asan
	$(MAKE) --no-print-directory fuzz-short
	$(MAKE) --no-print-directory integration
	$(MAKE) --no-print-directory integration-asan
	$(MAKE) --no-print-directory docker-test

# ---- the container image (Dockerfile; README "Running in Docker") -----------
# `make docker` builds postern:latest with docker when its daemon answers,
# else with podman into the private store build/podman (tests/docker/podman.sh
# runs podman on it); the base image is made by debootstrap if missing.
docker:
	@sh tests/docker/build.sh

# Builds the image and runs it before real Dovecots (tests/docker/test_image.py);
# says SKIPPED when this machine has neither engine.
docker-test:
	@PYTHON=$(PYTHON) sh tests/docker/test.sh

demo: deps
	$(MAKE) --no-print-directory all
	$(PYTHON) tests/integration/demo.py

# ---- bench: postern side by side with HAProxy and nginx mail (not in `test`) --
# Installs its peers (Debian packages), builds the load generator, starts two
# Dovecot backends and every proxy on 127.0.0.1, prints a table.  QUICK=1 for
# a short run; tests/bench/bench.py lists the other knobs.
$(BUILD)/bench/loadgen: tests/bench/loadgen.c
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(CFLAGS) -o $@ $< -lssl -lcrypto

# The scale harness (tests/bench/scale.py): a fake IMAP backend that holds
# any number of sessions cheaply, and a client that opens N TLS sessions.
$(BUILD)/bench/scale_backend: tests/bench/scale_backend.c
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(CFLAGS) -o $@ $<

$(BUILD)/bench/scale_client: tests/bench/scale_client.c
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(CFLAGS) -o $@ $< -lssl -lcrypto

bench:
	@sh tests/bench/deps.sh
	$(MAKE) --no-print-directory postern $(BUILD)/bench/loadgen
	POSTERN=$(CURDIR)/postern LOADGEN=$(CURDIR)/$(BUILD)/bench/loadgen $(PYTHON) tests/bench/bench.py

# ---- scale: N concurrent idle IMAP sessions through postern and HAProxy ------
# (not in `test`).  Installs HAProxy and Redis, builds the fake backend and
# the client, sets the sysctls it needs for the run (and puts them back),
# prints a table (build/scale/table.txt).  N is the largest step;
# SCALE_STEPS="1000 2000" picks the steps; tests/bench/scale.py lists the
# other knobs.  Where the nofile hard limit cannot hold N in one process,
# each proxy runs as several on one port (PER_PROC=2500 forces it).
N ?= 100000
scale:
	@sh tests/bench/deps.sh
	$(MAKE) --no-print-directory postern $(BUILD)/bench/scale_backend $(BUILD)/bench/scale_client
	N=$(N) POSTERN=$(CURDIR)/postern SCALE_BACKEND=$(CURDIR)/$(BUILD)/bench/scale_backend \
	  SCALE_CLIENT=$(CURDIR)/$(BUILD)/bench/scale_client $(PYTHON) tests/bench/scale.py

format:
	clang-format -i lib/*.c lib/*.h proxy/*.c proxy/*.h policy/*.c policy/*.h tests/unit/*.c tests/unit/*.h tests/fuzz/*.c tests/bench/*.c

clean:
	rm -rf $(BUILD) postern

-include $(OBJ:.o=.d) $(wildcard $(BUILD)/unit/*.d)
