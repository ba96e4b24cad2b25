# Mamori's build entry points. `make run` and `make test` are the two set-up commands of the
# README: each installs what it is missing (scripts/ensure-deps) before it builds.

SWIFT ?= swift
CC ?= cc
VENV := $(CURDIR)/.build-venv
# Tests and benchmarks find the Python peers (argon2-cffi, pyotp) through this variable.
export MAMORI_PYTHON := $(VENV)/bin/python3

PREFIX ?= /usr/local
DESTDIR ?=
SYSCONFDIR ?= /etc
# Where Debian's Linux-PAM looks for modules by name.
PAMDIR ?= /lib/$(shell $(CC) -print-multiarch)/security
# Installed binaries carry the Swift runtime (--static-swift-stdlib), so a terminal needs only
# libargon2, libqrencode and libc; such a build relinks everything, hence its own scratch path.
RELEASE := $(SWIFT) build -c release --static-swift-stdlib --scratch-path .build-static

.PHONY: all build run test format fuzz bench clean install man deb deb-check

all: build

build:
	@scripts/ensure-deps build
	$(SWIFT) build
	$(MAKE) -C pam BUILD=$(CURDIR)/.build/pam

# The main job: mamorid on its development defaults (state in .mamori/, socket
# .mamori/mamori.sock, the bundled policies/). Stop it with Ctrl-C.
run: build
	@echo "mamorid: serving .mamori/mamori.sock with the policy in policies/ (Ctrl-C stops it)."
	@echo "In another terminal, as root (the break-glass operator) or any user:"
	@echo "  export MAMORI_SOCKET=$(CURDIR)/.mamori/mamori.sock"
	@echo "  .build/debug/mamori status      # or: scripts/mamori-call '{\"op\":\"status\"}'"
	@echo "See docs/protocol.md for every operation."
	@.build/debug/mamorid

# The toolchain's swift-format with .swift-format (4 spaces, 120 columns); `make test` fails on
# any file it would change.
FORMATTED := Package.swift Sources Tests Benchmarks Fuzz
format:
	$(SWIFT) format format --in-place --recursive --parallel $(FORMATTED)

# Everything here runs as root (CI does): the tests attack mamorid as other uids through setpriv,
# and the PAM tests drive real PAM stacks and a private sshd.
test:
	@scripts/ensure-deps test
	$(SWIFT) format lint --strict --recursive --parallel $(FORMATTED)
	$(MAKE) -C pam BUILD=$(CURDIR)/.build/pam
	$(SWIFT) build --build-tests
	.build/debug/mamori policy check policies
	.build/debug/mamori policy test policies
	@# The fuzz targets' kept inputs (seeds and any crash once found) replayed in the ordinary build.
	.build/debug/mamori-fuzz-line Fuzz/corpus/line
	.build/debug/mamori-fuzz-policy Fuzz/corpus/policy
	@# The PAM module's C tests under ASan and UBSan, its phases against a real mamorid, and a
	@# login through a real OpenSSH sshd and ssh client.
	$(MAKE) -C pam BUILD=$(CURDIR)/.build/pam check MAMORID=$(CURDIR)/.build/debug/mamorid
	$(MAKE) -C pam BUILD=$(CURDIR)/.build/pam sshd-test MAMORID=$(CURDIR)/.build/debug/mamorid MAMORI_PYTHON=$(MAMORI_PYTHON)
	@# Every reply the tests receive is logged and checked against the published schema; the
	@# PostgreSQL tests run against two private servers started for them and removed after (the
	@# second for the suite that crashes and restarts its server).
	rm -f .build/replies.jsonl
	MAMORI_REPLY_LOG=$(CURDIR)/.build/replies.jsonl scripts/with-postgres \
		scripts/with-postgres --as MAMORI_TEST_POSTGRES_SPARE $(SWIFT) test --disable-xctest
	$(MAMORI_PYTHON) scripts/check-replies docs/protocol-v1.schema.json .build/replies.jsonl

# libFuzzer for FUZZ_SECONDS per target: the PAM module's reply scanner and request escaping (C,
# ASan and UBSan), then the socket's line decoder with request parsing and the policy loader
# (Swift, -sanitize=fuzzer with ASan, in a scratch path of their own). New inputs go to
# .build-fuzz/corpus/; a crash is written to .build-fuzz/ and stops the run. Keep a crash that
# was fixed in Fuzz/corpus/ (or pam/tests/corpus/) so that `make test` replays it.
FUZZ_SECONDS ?= 60
# The Swift toolchain's clang has libFuzzer's runtime (Debian's clang needs libclang-rt-dev).
FUZZ_CC ?= $(dir $(realpath $(shell command -v $(SWIFT))))clang
# lld: gold fails on these links (an internal error in its DWARF reader); the toolchain ships lld.
FUZZ_SWIFT := $(SWIFT) build --scratch-path .build-fuzz -Xswiftc -sanitize=fuzzer,address -Xswiftc -DMAMORI_FUZZ \
	-Xswiftc -use-ld=lld
fuzz:
	@scripts/ensure-deps build
	$(MAKE) -C pam BUILD=$(CURDIR)/.build/pam fuzz FUZZ_CC=$(FUZZ_CC) FUZZ_SECONDS=$(FUZZ_SECONDS)
	$(FUZZ_SWIFT) --product mamori-fuzz-line
	$(FUZZ_SWIFT) --product mamori-fuzz-policy
	@mkdir -p .build-fuzz/corpus/line .build-fuzz/corpus/policy
	.build-fuzz/debug/mamori-fuzz-line -max_total_time=$(FUZZ_SECONDS) -max_len=512 -print_final_stats=1 \
		-artifact_prefix=.build-fuzz/line- .build-fuzz/corpus/line Fuzz/corpus/line
	.build-fuzz/debug/mamori-fuzz-policy -max_total_time=$(FUZZ_SECONDS) -max_len=8192 -print_final_stats=1 \
		-artifact_prefix=.build-fuzz/policy- .build-fuzz/corpus/policy Fuzz/corpus/policy

# Release build: the figures are about the code, not the debug runtime checks.
bench:
	@scripts/ensure-deps bench
	$(SWIFT) build -c release --product mamori-bench
	$(SWIFT) build -c release --product mamorid
	$(SWIFT) build -c release --product mamori-hub
	$(CC) -O2 -Wall -Wextra -Werror -pthread Benchmarks/loadgen.c -o .build/release/loadgen
	$(MAKE) -C pam BUILD=$(CURDIR)/.build/pam
	@# The hub's figures need a PostgreSQL server: a private one, as for the tests.
	scripts/with-postgres .build/release/mamori-bench

# The manual pages (scripts/make-man), into .build-man/: `man -l .build-man/man8/pam_mamori.8.gz`.
man: build
	$(SWIFT) build --product mamori-hub
	scripts/make-man .build-man $$($(SWIFT) build --show-bin-path)

# Debian packages (mamori, mamori-hub) in .build-deb/, checked by lintian (scripts/build-deb).
deb:
	@scripts/ensure-deps deb
	scripts/build-deb

# The packages installed into a fresh Debian 12 root made by debootstrap, and checked there
# (scripts/deb-check; as root; fetches Debian's packages, so it is not part of make test).
deb-check:
	@scripts/ensure-deps deb
	scripts/deb-check

# Puts the binaries, the unit, the configuration and the default policy where Debian admins look
# for locally installed software. An existing configuration or policy is never overwritten.
install:
	@scripts/ensure-deps build
	$(RELEASE) --product mamorid
	$(RELEASE) --product mamori
	install -D -s -m 0755 .build-static/release/mamorid $(DESTDIR)$(PREFIX)/sbin/mamorid
	install -D -s -m 0755 .build-static/release/mamori $(DESTDIR)$(PREFIX)/bin/mamori
	install -D -m 0755 contrib/mamori-audit-verify.py $(DESTDIR)$(PREFIX)/bin/mamori-trail-verify
	install -D -m 0644 contrib/systemd/mamorid.service $(DESTDIR)$(PREFIX)/lib/systemd/system/mamorid.service
	@# For a member terminal of a town (docs/town.md): copied into mamorid.service.d by its administrator.
	install -D -m 0644 contrib/systemd/mamorid.service.d/member.conf $(DESTDIR)$(PREFIX)/share/mamori/systemd/mamorid-member.conf
	sed -i 's|/usr/local/|$(PREFIX)/|g' $(DESTDIR)$(PREFIX)/lib/systemd/system/mamorid.service
	@# mamorid's own system user; into a DESTDIR (a package being staged) none is made: the
	@# package's maintainer scripts make it.
	if [ -z "$(DESTDIR)" ] && ! getent passwd mamori >/dev/null; then \
	  useradd --system --user-group --no-create-home --home-dir /var/lib/mamori --shell /usr/sbin/nologin \
	    --comment "Mamori access-control daemon" mamori; fi
	install -d -m 0750 $(DESTDIR)$(SYSCONFDIR)/mamori
	test -e $(DESTDIR)$(SYSCONFDIR)/mamori/mamorid.yaml || install -m 0640 contrib/mamorid.yaml $(DESTDIR)$(SYSCONFDIR)/mamori/mamorid.yaml
	test -e $(DESTDIR)$(SYSCONFDIR)/mamori/policies || { install -d -m 0750 $(DESTDIR)$(SYSCONFDIR)/mamori/policies && install -m 0640 policies/*.yaml $(DESTDIR)$(SYSCONFDIR)/mamori/policies/; }
	@# The daemon reads its configuration and policy through its group; only root changes them.
	if getent group mamori >/dev/null; then \
	  chgrp -R mamori $(DESTDIR)$(SYSCONFDIR)/mamori; fi
	install -d -m 0755 $(DESTDIR)$(PREFIX)/share/mamori/policies/tests $(DESTDIR)$(PREFIX)/share/doc/mamori
	install -m 0644 policies/*.yaml $(DESTDIR)$(PREFIX)/share/mamori/policies/
	install -m 0644 policies/tests/*.yaml $(DESTDIR)$(PREFIX)/share/mamori/policies/tests/
	install -m 0644 README.md docs/*.md $(DESTDIR)$(PREFIX)/share/doc/mamori/
	$(MAKE) -C pam BUILD=$(CURDIR)/.build-static/pam
	install -D -m 0644 .build-static/pam/pam_mamori.so $(DESTDIR)$(PAMDIR)/pam_mamori.so
	install -d -m 0755 $(DESTDIR)$(PREFIX)/share/mamori/pam.d
	install -m 0644 pam/examples/* $(DESTDIR)$(PREFIX)/share/mamori/pam.d/
	@# pam-auth-update reads /usr/share/pam-configs only: copy it there to use it (docs/pam.md).
	install -D -m 0644 contrib/pam-configs/mamori $(DESTDIR)$(PREFIX)/share/mamori/pam-configs/mamori
	scripts/make-man .build-static/man .build-static/release
	for section in 1 5 8; do \
	  install -d -m 0755 $(DESTDIR)$(PREFIX)/share/man/man$$section && \
	  install -m 0644 .build-static/man/man$$section/*.gz $(DESTDIR)$(PREFIX)/share/man/man$$section/; done
	@# A terminal's install: the hub's pages belong with the hub (make deb's mamori-hub package).
	rm -f $(DESTDIR)$(PREFIX)/share/man/man8/mamori-hub*

clean:
	rm -rf .build .build-static .build-fuzz .build-venv .build-man .build-deb .build-debroot
