# Two commands for a newcomer: `make run` (the demo on the embedded default) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-dev
# Stripe's own tools (the official CLI and stripe-node), pinned in tests/stripe_tools.
STRIPE_TOOLS := tests/stripe_tools/node_modules/.installed

.PHONY: run test check bench clean

# Everything: the core with every extra and the test tools, and its two siblings (the local
# Stripe and the example shop, packages/), all editable over the one tree in src/.
SIBLINGS := -e ./packages/ichido-emulator -e ./packages/ichido-shop

$(STAMP): pyproject.toml packages/ichido-emulator/pyproject.toml packages/ichido-shop/pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "ichido needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]' $(SIBLINGS)
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/ichido demo

# `npm install --no-save`, not `npm ci`: the lock holds the platform binary packages a registry
# serves, and `npm ci` refuses a lock without all five; --no-save leaves the committed files be.
$(STRIPE_TOOLS): tests/stripe_tools/package-lock.json
	@if command -v npm >/dev/null; then \
		npm install --no-save --ignore-scripts --no-audit --no-fund --prefix tests/stripe_tools && touch $@; \
	else echo "npm not found: the Stripe CLI and stripe-node tests will skip (they run under CI=true)"; fi

test: $(STAMP) $(STRIPE_TOOLS)
	$(PY) -m pytest -q

# The type checker over the core (pyproject.toml's [tool.mypy]); CI runs it before the tests.
check: $(STAMP)
	$(PY) -m mypy

bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,bench]' $(SIBLINGS)
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(PY) -m bench all

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache tests/stripe_tools/node_modules \
		packages/*/build packages/*/*.egg-info
