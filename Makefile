# The two set-up commands of the README. Each creates .venv on first use (idempotent) and installs
# requirements/lock.txt: every package at the exact version and hash the tests ran with, the CPU
# torch among them (an unpinned torch would pull a multi-GB CUDA build). A GPU user installs their
# own CUDA torch, then `pip install -e .` (pyproject.toml's ranges) in that environment.
PYTHON ?= python3
VENV   := .venv
LOCK   := requirements/lock.txt
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml $(LOCK) | cksum | cut -d' ' -f1)
OUT    ?= demo-out
# pip-compile's own pin; `make lock ARGS="--upgrade-package transformers"` upgrades one package
PIP_TOOLS := pip-tools==7.6.2
ARGS   ?=

.PHONY: demo test install lock clean

install: $(STAMP)

$(STAMP): pyproject.toml $(LOCK)
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -qq --require-hashes --no-deps -r $(LOCK)
	$(VENV)/bin/python -m pip install -qq --no-deps --no-build-isolation -e .
	$(VENV)/bin/python -m pip check
	rm -f $(VENV)/.installed-*
	touch $@

demo: $(STAMP)
	$(VENV)/bin/ja-adapt demo --out $(OUT)

# ruff first (format and lint, pyproject.toml's [tool.ruff]): seconds, before the suite's minutes
test: $(STAMP)
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/python -m pytest

# Resolve pyproject.toml's ranges (with the dev and bench extras: the suite runs TRL beside
# ja-adapt) under the CPU torch pin into the lock, with hashes. Keeps every existing pin it can; ARGS="--upgrade" re-resolves everything.
lock:
	test -x .venv-lock/bin/pip-compile || ($(PYTHON) -m venv .venv-lock && .venv-lock/bin/python -m pip install -q $(PIP_TOOLS))
	CUSTOM_COMPILE_COMMAND="make lock" .venv-lock/bin/pip-compile --quiet --extra dev --extra bench --generate-hashes \
	  --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links \
	  -c requirements/torch-cpu.txt -o $(LOCK) $(ARGS) pyproject.toml

clean:
	rm -rf $(VENV) .venv-lock demo-out
