# Build and test harness for the proxlb.balancer collection.
#
#   make demo          run playbooks/rebalance.yml against a simulated cluster (tools/pvesim)
#   make test          sanity + units + integration + report-browser-test (stops at the first failure)
#   make sanity        ansible-test sanity and lint (SANITY_ARGS='--test pylint' to pick tests)
#   make lint          ansible-lint, production profile, on roles and playbooks
#   make units         ansible-test units (UNITS_ARGS='tests/unit/plugins/module_utils/test_x.py')
#   make integration   ansible-test integration against the simulator (TARGETS='target ...')
#   make report-browser-test   the HTML plan report in headless Chromium (screenshots in tests/output/report/)
#   make test-matrix   sanity + units on every supported ansible-core (2.18, 2.19, 2.20, 2.21)
#   make build | clean | distclean
#
# Needs only Python 3.11 (or another python3 that ansible-core 2.19 supports), GNU make and git;
# everything else is installed from PyPI into .venv.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

ROOT := $(CURDIR)
PYTHON ?= $(shell python3.11 -c 'import sys' >/dev/null 2>&1 && echo python3.11 || echo python3)
VENV := $(ROOT)/.venv
VPY := $(VENV)/bin/python
VENV_STAMP := $(VENV)/.installed
REQUIREMENTS := scripts/requirements-dev.txt meta/ee-requirements.txt tests/unit/requirements.txt

BUILD := $(ROOT)/.build
# For ansible-playbook: the repo itself, reached through a symlink.
COLLECTIONS := $(BUILD)/collections
COLLECTION_LINK := $(COLLECTIONS)/ansible_collections/proxlb/balancer
# For ansible-test: a real copy (ansible-test resolves the working directory, so a symlink fails).
TEST_COPY := $(BUILD)/test/ansible_collections/proxlb/balancer

# Python version of the venv, used as ansible-test's --python.
PY_VERSION = $(shell $(VPY) -c 'import sys; print("%d.%d" % sys.version_info[:2])')
# ansible-test on a fresh copy in TEST_COPY (scripts/ansible_test.sh).
ANSIBLE_TEST = env TEST_COPY="$(TEST_COPY)" VENV="$(VENV)" scripts/ansible_test.sh

# ansible-test looks for a cached get-pip script when it builds virtual environments (pip 24.2
# for ansible-core 2.18/2.19, 25.2 for 2.20/2.21); the stand-in works without the download host.
# The directory is the one ansible-test derives from ~ (HOME, or the passwd entry without it).
GET_PIP_CACHE := $(shell $(PYTHON) -c 'import os; print(os.path.expanduser("~/.ansible/test/cache"))')
GET_PIP_VERSIONS := 24_2 25_2

# Extra arguments, e.g. make sanity SANITY_ARGS='--test pylint', make integration TARGETS=proxlb_plan
SANITY_ARGS ?=
UNITS_ARGS ?=
INTEGRATION_ARGS ?=
TARGETS ?=
SCENARIO ?= demo
# Older target Pythons checked by sanity-compat when they are installed.
COMPAT_PYTHONS ?= 3.9
DEMO_ARGS ?=

export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS)
export ANSIBLE_NOCOLOR ?= 1
export ANSIBLE_FORCE_COLOR ?= 0
export ANSIBLE_LOCALHOST_WARNING := False
export ANSIBLE_INVENTORY_UNPARSED_WARNING := False

.PHONY: help venv collection-link get-pip-standin demo test sanity sanity-compat lint units \
        integration report-browser-test build clean distclean

help:
	@sed -n '3,14p' Makefile | sed 's/^# \{0,1\}//'

# ---------------------------------------------------------------------------------------------
# Environment

venv: $(VENV_STAMP)

$(VENV_STAMP): $(REQUIREMENTS)
	@if [ ! -x "$(VPY)" ]; then \
	  echo "creating $(VENV) with $(PYTHON)"; \
	  $(PYTHON) -m venv "$(VENV)"; \
	fi
	$(VPY) -m pip install --quiet --disable-pip-version-check -r scripts/requirements-dev.txt
	@touch $@

collection-link:
	@mkdir -p "$(dir $(COLLECTION_LINK))"
	@ln -sfn ../../../.. "$(COLLECTION_LINK)"

get-pip-standin:
	@mkdir -p "$(GET_PIP_CACHE)"
	@for v in $(GET_PIP_VERSIONS); do \
	  f="$(GET_PIP_CACHE)/get_pip_$$v.py"; \
	  cmp -s scripts/get_pip_standin.py "$$f" || cp scripts/get_pip_standin.py "$$f"; \
	done

# ---------------------------------------------------------------------------------------------
# Demo

demo: venv collection-link
	scripts/with_pvesim.sh $(SCENARIO) -- scripts/run_demo.sh $(DEMO_ARGS)

# ---------------------------------------------------------------------------------------------
# Tests

test:
	$(MAKE) sanity
	$(MAKE) units
	$(MAKE) integration
	$(MAKE) report-browser-test

sanity: venv get-pip-standin
	$(ANSIBLE_TEST) sanity --venv --python $(PY_VERSION) --color no $(SANITY_ARGS)
	@if [ -z "$(SANITY_ARGS)" ]; then $(MAKE) sanity-compat && $(MAKE) lint; fi

# Module code must also run on the oldest Python in tests/config.yml (python_requires).
sanity-compat: venv get-pip-standin
	@found=$$(scripts/pybin.sh "$(BUILD)/pybin" $(COMPAT_PYTHONS)); \
	for v in $(COMPAT_PYTHONS); do \
	  case " $$(echo $$found) " in *" $$v "*) ;; *) echo "sanity-compat: Python $$v not found, skipped";; esac; \
	done; \
	for v in $$found; do \
	  echo "sanity-compat: compile and import on Python $$v"; \
	  PATH="$(BUILD)/pybin:$$PATH" $(ANSIBLE_TEST) sanity --venv --python $$v \
	    --test compile --test import --color no; \
	done

# Roles and playbooks, with the rules and the justified exceptions of .ansible-lint. The
# collection is found through COLLECTION_LINK; offline: true keeps ansible-lint away from Galaxy.
lint: venv collection-link
	PATH="$(VENV)/bin:$$PATH" $(VENV)/bin/ansible-lint --nocolor roles playbooks

units: venv
	$(ANSIBLE_TEST) units --local --python $(PY_VERSION) --color no $(UNITS_ARGS)

integration: venv
	scripts/with_pvesim.sh $(SCENARIO) -- $(ANSIBLE_TEST) integration --local --python $(PY_VERSION) \
	  --color no $(INTEGRATION_ARGS) $(TARGETS)

# A plain pytest run outside ansible-test: it installs Debian's chromium when it is missing (as
# root), and leaves its pages and screenshots in this checkout's tests/output/report/.
BROWSER_ARGS ?=
report-browser-test: venv
	$(VPY) -m pytest -p no:cacheprovider -q tests/browser $(BROWSER_ARGS)

# ---------------------------------------------------------------------------------------------
# Packaging

build: venv
	@mkdir -p "$(BUILD)/dist"
	$(VENV)/bin/ansible-galaxy collection build --force --output-path "$(BUILD)/dist" .

clean:
	rm -rf "$(BUILD)" tests/output tests/integration/integration_config.yml
	find . -path ./.venv -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf "$(VENV)"

# ---------------------------------------------------------------------------------------------
# Benchmark: planner speed and quality on simulated clusters (bench/README.md).
# make bench BENCH_ARGS='--quick' for a short run that writes no report.

BENCH_ARGS ?=

.PHONY: bench
bench: venv
	$(VPY) bench/run.py $(BENCH_ARGS)

# ---------------------------------------------------------------------------------------------
# Supported ansible-core versions: sanity + units on each release line, each in its own
# .build/venv-<version> (scripts/test_matrix.sh). Picks: MATRIX_VERSIONS=2.21, SANITY_ARGS, UNITS_ARGS.

MATRIX_VERSIONS ?= 2.18 2.19 2.20 2.21

.PHONY: test-matrix changelog
test-matrix: get-pip-standin
	env SANITY_ARGS="$(SANITY_ARGS)" UNITS_ARGS="$(UNITS_ARGS)" scripts/test_matrix.sh $(MATRIX_VERSIONS)

# Release notes: folds changelogs/fragments/ into changelogs/changelog.yaml under the version in
# galaxy.yml and renders CHANGELOG.md.
changelog: venv
	PATH="$(VENV)/bin:$$PATH" antsibull-changelog release
