# Two entry points: `make demo` and `make test`. Both create .venv when it is missing.
# The install stamp is keyed by a hash of pyproject.toml and of this checkout's path, so a ready
# venv is reused as is, and only a change of requirements (or a venv reused by another clone,
# as .ci/run does) triggers one reinstall.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
KEY := $(shell (cat pyproject.toml; echo "$(CURDIR)") | sha256sum | cut -c1-12)
# compat mode puts the checkout itself on sys.path (a .pth entry), so a worktree or a
# `pythonpath = .` in pytest always wins over the installed copy.
PIP_INSTALL := $(PY) -m pip install --disable-pip-version-check -q --config-settings editable_mode=compat

.PHONY: demo test test-fast gpu-check venv clean-venv bench

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.stamp-base-$(KEY): | $(PY)
	$(PIP_INSTALL) -e .
	@touch $@

# the demo's last step (metad2a search digits) extracts features, exports and plots: those extras too
$(VENV)/.stamp-demo-$(KEY): | $(PY)
	$(PIP_INSTALL) -e '.[features,export,plot]'
	@touch $@ $(VENV)/.stamp-base-$(KEY)

$(VENV)/.stamp-test-$(KEY): | $(PY)
	$(PIP_INSTALL) -e '.[test]'
	@touch $@ $(VENV)/.stamp-base-$(KEY)

venv: $(VENV)/.stamp-base-$(KEY)

demo: $(VENV)/.stamp-demo-$(KEY)
	$(PY) -m metad2a.demo

test: $(VENV)/.stamp-test-$(KEY)
	$(PY) -m pytest -q

# everything but the subprocess, Ray and end-to-end tests (marked slow): well under a minute
test-fast: $(VENV)/.stamp-test-$(KEY)
	$(PY) -m pytest -q -m "not slow"

# CPU vs CUDA equality and meta-training/search on CUDA (tests marked gpu; skipped without CUDA)
gpu-check: $(VENV)/.stamp-test-$(KEY)
	$(PY) -m pytest -q -m gpu -rs

bench: $(VENV)/.stamp-test-$(KEY)
	$(PY) benchmarks/bench_nb201.py

clean-venv:
	rm -rf $(VENV)
