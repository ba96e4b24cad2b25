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

.PHONY: all build run test bench clean install

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

test:
	@scripts/ensure-deps test
	$(MAKE) -C pam BUILD=$(CURDIR)/.build/pam
	$(SWIFT) build --build-tests
	.build/debug/mamori policy check policies
	.build/debug/mamori policy test policies
	$(SWIFT) test --disable-xctest

# Release build: the figures are about the code, not the debug runtime checks.
bench:
	@scripts/ensure-deps bench
	$(SWIFT) build -c release --product mamori-bench
	$(SWIFT) build -c release --product mamorid
	$(CC) -O2 -Wall -Wextra -Werror -pthread Benchmarks/loadgen.c -o .build/release/loadgen
	$(MAKE) -C pam BUILD=$(CURDIR)/.build/pam
	.build/release/mamori-bench

# Puts the binaries, the unit, the configuration and the default policy where Debian admins look
# for locally installed software. An existing configuration or policy is never overwritten.
install:
	@scripts/ensure-deps build
	$(RELEASE) --product mamorid
	$(RELEASE) --product mamori
	install -D -s -m 0755 .build-static/release/mamorid $(DESTDIR)$(PREFIX)/sbin/mamorid
	install -D -s -m 0755 .build-static/release/mamori $(DESTDIR)$(PREFIX)/bin/mamori
	install -D -m 0755 contrib/mamori-audit-verify.py $(DESTDIR)$(PREFIX)/bin/mamori-audit-verify
	install -D -m 0644 contrib/systemd/mamorid.service $(DESTDIR)$(PREFIX)/lib/systemd/system/mamorid.service
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

clean:
	rm -rf .build .build-static .build-venv
