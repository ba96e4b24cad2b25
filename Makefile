# Mamori's build entry points. `make run` and `make test` are the two set-up commands of the
# README: each installs what it is missing (scripts/ensure-deps) before it builds.

SWIFT ?= swift
CC ?= cc
VENV := $(CURDIR)/.build-venv
# Tests and benchmarks find the Python peers (argon2-cffi, pyotp) through this variable.
export MAMORI_PYTHON := $(VENV)/bin/python3

.PHONY: all build run test bench clean

all: build

build:
	@scripts/ensure-deps build
	$(SWIFT) build

# The main job: mamorid on its development defaults (state in .mamori/, socket
# .mamori/mamori.sock, the bundled policies/). Stop it with Ctrl-C.
run: build
	@echo "mamorid: serving .mamori/mamori.sock with the policy in policies/ (Ctrl-C stops it)."
	@echo "In another terminal, as root (the break-glass operator) or any user:"
	@echo "  scripts/mamori-call '{\"op\":\"status\"}'"
	@echo "See docs/protocol.md for every operation."
	@.build/debug/mamorid

test:
	@scripts/ensure-deps test
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
	.build/release/mamori-bench

clean:
	rm -rf .build .build-venv
