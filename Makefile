# iptv-billing: developer and CI entry points. `make help` lists the targets.
# CI runs `bash .ci/run` (= `make test`) in a fresh clone, possibly on a fresh machine.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV      ?= .venv
BIN       := $(VENV)/bin
STAMP     := $(VENV)/.installed
# First interpreter on PATH that is Python >= 3.11 (override: make PYTHON=/path/to/python3.12).
PYTHON    ?= $(shell for p in python3 python3.13 python3.12 python3.11; do \
                command -v $$p >/dev/null 2>&1 && \
                $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && \
                { command -v $$p; break; }; done)
HOST      ?= 127.0.0.1
PORT      ?= 8000
# Test directories that exist (git does not keep empty directories).
TEST_DIRS := $(wildcard tests/unit tests/integration tests/e2e)
PYTEST_ARGS ?=
BENCH_ARGS  ?= --subscriptions 100000
# Where Debian's postgresql packages put their server binaries (one bin/ per major version).
PG_LIBDIR   ?= /usr/lib/postgresql
# nginx and its RTMP module as Debian installs them (tests/e2e/nginx_rtmp.py runs them).
NGINX       ?= /usr/sbin/nginx
NGINX_RTMP_MODULE ?= /usr/lib/nginx/modules/ngx_rtmp_module.so

export PIP_DISABLE_PIP_VERSION_CHECK := 1
export PIP_NO_INPUT := 1

.PHONY: help venv install run system-deps tools lint test bench clean distclean

help:
	@echo "make run          serve the API on http://$(HOST):$(PORT) (docs at /docs), demo data seeded"
	@echo "make test         system deps + install + lint + the whole test suite (what CI runs)"
	@echo "make install      create $(VENV) and install the project with its test extras"
	@echo "make system-deps  install the Debian packages the tests need, when missing (postgresql,"
	@echo "                  nginx-light + libnginx-mod-rtmp, ffmpeg, redis-server)"
	@echo "make tools        install anvil (a local Ethereum node, from npm) into .tools/"
	@echo "make lint         ruff check, ruff format --check, mypy"
	@echo "make bench        example benchmark: iptv-billing bench billing-run $(BENCH_ARGS)"
	@echo "make clean        remove caches and build artefacts (distclean: also $(VENV))"

venv install: $(STAMP)

# Re-run only when pyproject.toml is newer than the stamp.
$(STAMP): pyproject.toml
	@if [ ! -x "$(BIN)/python" ]; then \
	    if [ -z "$(PYTHON)" ]; then \
	        echo "error: no Python >= 3.11 found on PATH (set PYTHON=/path/to/python3.11)" >&2; exit 1; \
	    fi; \
	    echo "creating $(VENV) with $(PYTHON) ($$($(PYTHON) --version 2>&1))"; \
	    $(PYTHON) -m venv $(VENV) || { \
	        echo "error: '$(PYTHON) -m venv' failed; on Debian/Ubuntu: apt-get install python3-venv" >&2; \
	        rm -rf $(VENV); exit 1; }; \
	fi
	$(BIN)/python -m pip install --quiet --progress-bar off --upgrade pip
	$(BIN)/python -m pip install --progress-bar off -e '.[test]'
	@touch $@

run: install
	exec $(BIN)/iptv-billing serve --host $(HOST) --port $(PORT) --seed-demo

# Debian packages for the tests: PostgreSQL server binaries (tests/conftest.py starts its own
# throwaway server), nginx with the RTMP module, ffmpeg and redis-server (the e2e tests start
# their own instances on free 127.0.0.1 ports). Installs only what is missing, in one apt-get
# run; the nginx/redis services the packages ship are kept from starting (ports 80 and 6379).
system-deps:
	@missing=""; found=""; \
	if ls $(PG_LIBDIR)/*/bin/pg_ctl >/dev/null 2>&1; then \
	    found="$$found, PostgreSQL $$(ls -d $(PG_LIBDIR)/*/bin | sort -V | tail -n 1)"; \
	else missing="$$missing postgresql"; fi; \
	if [ -x $(NGINX) ]; then found="$$found, $$($(NGINX) -v 2>&1 | sed 's/^nginx version: //')"; \
	else missing="$$missing nginx"; fi; \
	if [ -f $(NGINX_RTMP_MODULE) ]; then found="$$found + $$(basename $(NGINX_RTMP_MODULE))"; \
	else missing="$$missing libnginx-mod-rtmp"; fi; \
	if command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1; then \
	    found="$$found, ffmpeg"; \
	else missing="$$missing ffmpeg"; fi; \
	if command -v redis-server >/dev/null 2>&1; then found="$$found, redis-server"; \
	else missing="$$missing redis-server"; fi; \
	if [ -z "$$missing" ]; then \
	    echo "system-deps: all found: $${found#, }"; \
	    exit 0; \
	fi; \
	if [ "$$(id -u)" -eq 0 ]; then SUDO=""; \
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; \
	else \
	    echo "error: missing system packages:$$missing; installing them needs root." >&2; \
	    echo "       Run as root or with password-less sudo, or: apt-get install$$missing" >&2; \
	    exit 1; \
	fi; \
	if ! command -v apt-get >/dev/null 2>&1; then \
	    echo "error: missing system packages:$$missing; apt-get is not available. Install" >&2; \
	    echo "       PostgreSQL >= 15 (initdb, pg_ctl; set IPTV_BILLING_PG_BINDIR), nginx with" >&2; \
	    echo "       the RTMP module ($(NGINX), $(NGINX_RTMP_MODULE)), ffmpeg, redis-server" >&2; \
	    exit 1; \
	fi; \
	$$SUDO apt-get update -q; \
	packages=""; \
	for package in $$missing; do \
	    if [ "$$package" = nginx ] && apt-cache show nginx-light >/dev/null 2>&1; then \
	        package=nginx-light; \
	    fi; \
	    packages="$$packages $$package"; \
	done; \
	echo "system-deps: installing$$packages"; \
	case " $$missing " in *" postgresql "*) \
	    $$SUDO mkdir -p /etc/postgresql-common/createcluster.d; \
	    echo "create_main_cluster = false" | $$SUDO tee \
	        /etc/postgresql-common/createcluster.d/50-iptv-billing.conf >/dev/null;; \
	esac; \
	if [ ! -e /usr/sbin/policy-rc.d ]; then \
	    trap '$$SUDO rm -f /usr/sbin/policy-rc.d' EXIT; \
	    printf '#!/bin/sh\n# make system-deps: no service starts during apt-get install\nexit 101\n' \
	        | $$SUDO tee /usr/sbin/policy-rc.d >/dev/null; \
	    $$SUDO chmod 755 /usr/sbin/policy-rc.d; \
	fi; \
	$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
	    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold $$packages; \
	case " $$missing " in *" postgresql "*) \
	    if command -v pg_lsclusters >/dev/null 2>&1; then \
	        pg_lsclusters --no-header 2>/dev/null | while read -r ver name port status rest; do \
	            if [ "$$status" = online ]; then \
	                $$SUDO pg_ctlcluster "$$ver" "$$name" stop || true; \
	            fi; \
	        done; \
	    fi;; \
	esac; \
	for service in nginx:/run/nginx.pid redis-server:/run/redis/redis-server.pid; do \
	    name=$${service%%:*}; pidfile=$${service#*:}; \
	    case " $$missing " in *" $$name "*) ;; *) continue;; esac; \
	    if [ -d /run/systemd/system ]; then \
	        $$SUDO systemctl disable --now --quiet "$$name" 2>/dev/null || true; \
	    fi; \
	    if [ -s "$$pidfile" ] && pid=$$(cat "$$pidfile") && $$SUDO kill -0 "$$pid" 2>/dev/null; then \
	        echo "system-deps: stopping the $$name service the package started"; \
	        $$SUDO kill "$$pid" || true; \
	    fi; \
	done; \
	still=""; \
	ls $(PG_LIBDIR)/*/bin/pg_ctl >/dev/null 2>&1 || still="$$still $(PG_LIBDIR)/*/bin/pg_ctl"; \
	[ -x $(NGINX) ] || still="$$still $(NGINX)"; \
	[ -f $(NGINX_RTMP_MODULE) ] || still="$$still $(NGINX_RTMP_MODULE)"; \
	for tool in ffmpeg ffprobe redis-server; do \
	    command -v $$tool >/dev/null 2>&1 || still="$$still $$tool"; \
	done; \
	if [ -n "$$still" ]; then \
	    echo "error: installed$$packages but still missing:$$still" >&2; exit 1; \
	fi; \
	echo "system-deps: installed$$packages"

# anvil, Foundry's local Ethereum node, for the anchoring tests (npm; Debian's npm if missing).
tools:
	@if ! command -v npm >/dev/null 2>&1; then \
	    if [ "$$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then \
	        echo "tools: installing Debian's npm"; \
	        apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
	            --no-install-recommends npm; \
	    else \
	        echo "error: npm is needed to install anvil (apt-get install npm)" >&2; exit 1; \
	    fi; \
	fi
	bash scripts/install-anvil.sh

lint: install
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy

test: system-deps install tools lint
	$(BIN)/pytest -p no:cacheprovider --durations=15 $(PYTEST_ARGS) $(TEST_DIRS)

bench: install
	$(BIN)/iptv-billing bench billing-run $(BENCH_ARGS)

clean:
	rm -rf build dist .pytest_cache .mypy_cache .ruff_cache .hypothesis .coverage htmlcov
	find src tests -depth -name '*.egg-info' -exec rm -rf {} + 2>/dev/null || true
	find src tests -depth -name __pycache__ -type d -exec rm -rf {} + 2>/dev/null || true

distclean: clean
	rm -rf $(VENV) .tools
