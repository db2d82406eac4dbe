# Podium's two everyday commands:
#   make up     install what is missing, then run Podium on this host (python -m webapp.up)
#   make test   install what is missing, then run the tests against their own embedded services
# Also: make install, make lint, make stop (stop embedded servers a killed run left behind).
#
# Each install step is guarded by a stamp keyed by a hash of its inputs, so on a ready machine `make up` goes
# straight to starting Podium. Debian packages are checked with dpkg on every run (a few milliseconds).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := up
.DELETE_ON_ERROR:

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
VPY := $(VENV)/bin/python
ARGS ?=

# `make test` never touches the data or ports of a running `make up` (var/, 54329, 63799, 8000).
TEST_VAR_DIR ?= $(CURDIR)/var/test
TEST_PG_PORT ?= 54339
TEST_REDIS_PORT ?= 63809

# bubblewrap + libseccomp2 (its seccomp filter, through pyseccomp): the local executor's sandboxes. chromium: browser tests (Playwright drives Debian's Chromium).
DEB_PACKAGES := bubblewrap libseccomp2 chromium curl
# Debian's python3 cannot make a venv without python3-venv (no ensurepip).
ifneq ($(shell $(PYTHON) -c 'import ensurepip' 2>/dev/null && echo ok),ok)
DEB_PACKAGES += python3-venv
endif

hash = $(shell cat $(1) 2>/dev/null | sha256sum | cut -c1-12)

PY_STAMP := $(VENV)/.stamps/python-$(call hash,pyproject.toml client/pyproject.toml)

# The front end (static/, when it exists): npm deps keyed by the lock file, the bundle rebuilt when a source
# file is newer than its stamp.
NPM_INPUTS := $(wildcard static/package.json static/package-lock.json)
ifneq ($(wildcard static/package.json),)
NPM_STAMP := static/node_modules/.podium-deps-$(call hash,$(NPM_INPUTS))
STATIC_SOURCES := $(shell find static -path static/node_modules -prune -o -type f -print)
STATIC_STAMP := .stamps/static-build
endif

.PHONY: up test lint install system python node stop

up: install
	$(VPY) -m webapp.up

test: install
	PODIUM_VAR_DIR=$(TEST_VAR_DIR) PODIUM_PG_PORT=$(TEST_PG_PORT) PODIUM_REDIS_PORT=$(TEST_REDIS_PORT) \
		$(VPY) -m webapp.lib.embedded run -- $(VPY) -m pytest $(ARGS)

lint: python
	$(VENV)/bin/ruff check .

stop: python
	$(VPY) -m webapp.lib.embedded stop

install: system python node

system:
	@scripts/ensure-debian-packages $(DEB_PACKAGES)

python: $(PY_STAMP)

node: $(STATIC_STAMP)

$(VPY):
	$(PYTHON) -m venv $(VENV)

# pip, not uv: torch comes from the local wheel directory configured in pip's own config.
$(PY_STAMP): pyproject.toml client/pyproject.toml | $(VPY)
	$(VPY) -m pip install --quiet --upgrade pip
	$(VPY) -m pip install -e '.[dev]' -e ./client uv
	rm -f $(VENV)/.stamps/python-*
	mkdir -p $(@D) && touch $@

ifneq ($(NPM_STAMP),)
$(NPM_STAMP): $(NPM_INPUTS)
	@command -v npm >/dev/null || { echo "npm is needed to build static/: install Node.js and npm" >&2; exit 1; }
	cd static && if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; \
		else npm install --no-audit --no-fund; fi
	rm -f static/node_modules/.podium-deps-*
	touch $@

$(STATIC_STAMP): $(NPM_STAMP) $(STATIC_SOURCES)
	cd static && npm run build --if-present
	mkdir -p $(@D) && touch $@
endif
