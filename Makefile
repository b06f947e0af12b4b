# The two commands the README promises on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CONFIG ?= agent.toml
# Debian packages the integration tests start as real servers.
DEB_TOOLS := prometheus:prometheus promtool:prometheus prometheus-node-exporter:prometheus-node-exporter \
             mosquitto:mosquitto mosquitto_pub:mosquitto-clients \
             prometheus-alertmanager:prometheus-alertmanager systemd-analyze:systemd openssl:openssl
PYTEST_ARGS ?=

.PHONY: run test lint typecheck check deps venv bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/inferwatch run -c $(CONFIG)

# Installs only what is missing: `apt-get update` once, then one install.
deps:
	@missing=""; for pair in $(DEB_TOOLS); do tool=$${pair%%:*}; pkg=$${pair##*:}; \
	  command -v $$tool >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check agent plugins tests bench contrib

typecheck: $(STAMP)
	$(BIN)/mypy

test: deps $(STAMP) lint typecheck
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP) deps
	$(BIN)/python bench/overhead.py

# Every plugin on under synthetic load for 90 s, generous bounds (`bench/soak.py --minutes 60`
# is the long run whose figures are in bench/README.md).
.PHONY: soak
soak: deps $(STAMP)
	INFERWATCH_SOAK=1 $(BIN)/python -m pytest -m soak tests/integration/test_soak.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis *.egg-info
