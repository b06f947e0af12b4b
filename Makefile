# The two commands the README promises on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Exact versions with hashes (requirements/*.txt, made by `make lock` from pyproject.toml's
# ranges): what `make run`, `make test` and CI install, so a new upstream release changes
# nothing until `make lock` takes it on purpose. `make test-latest` tries the newest releases.
LOCK_RUN  := requirements/run.txt
LOCK_TEST := requirements/test.txt
STAMP_RUN := $(VENV)/.installed-run
STAMP     := $(VENV)/.installed-test
# The MLflow tracking server the MLflow sink's tests start: a tool, in a venv of its own,
# so its hundreds of MB of dependencies never meet the agent's.
MLFLOW_VENV  := .venv-mlflow
MLFLOW_STAMP := $(MLFLOW_VENV)/.installed
UV_VERSION ?= 0.13.9
CONFIG ?= agent.toml
# Debian packages the integration tests start as real servers.
DEB_TOOLS := prometheus:prometheus promtool:prometheus prometheus-node-exporter:prometheus-node-exporter \
             mosquitto:mosquitto mosquitto_pub:mosquitto-clients \
             prometheus-alertmanager:prometheus-alertmanager systemd-analyze:systemd openssl:openssl \
             chromium:chromium rsyslogd:rsyslog
PYTEST_ARGS ?=

.PHONY: run test test-latest lock lint typecheck check deps venv bench clean fuzz

# --no-deps: the lock is complete; `pip check` proves it. The project itself is built with the
# locked setuptools (--no-build-isolation), so no step installs an unpinned package.
$(STAMP_RUN): $(LOCK_RUN) pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r $(LOCK_RUN)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip check
	touch $@

$(STAMP): $(STAMP_RUN) $(LOCK_TEST)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r $(LOCK_TEST)
	$(BIN)/python -m pip check
	touch $@

$(MLFLOW_STAMP): requirements/mlflow.txt
	test -x $(MLFLOW_VENV)/bin/python || $(PYTHON) -m venv $(MLFLOW_VENV)
	$(MLFLOW_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements/mlflow.txt
	touch $@

venv: $(STAMP)

run: $(STAMP_RUN)
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

test: deps $(STAMP) $(MLFLOW_STAMP) lint typecheck
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The newest releases pyproject.toml's ranges allow, in a venv of their own, through the same
# suite: an upstream change is found here on purpose, not by a user. `pip list` shows what ran.
test-latest: deps
	rm -rf .venv-latest
	$(PYTHON) -m venv .venv-latest
	.venv-latest/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	.venv-latest/bin/python -m pip install --quiet --upgrade --upgrade-strategy eager -e '.[test]'
	.venv-latest/bin/python -m pip list --format=freeze
	.venv-latest/bin/ruff check agent plugins tests bench contrib
	.venv-latest/bin/mypy
	.venv-latest/bin/python -m pytest $(PYTEST_ARGS)

# Refresh the lock files from pyproject.toml (uv, pinned here, resolves for every platform; in a
# venv of its own, so a lock that no longer matches pyproject.toml can still be remade).
lock:
	test -x .venv-lock/bin/uv || { $(PYTHON) -m venv .venv-lock && \
	  .venv-lock/bin/python -m pip install --quiet --disable-pip-version-check 'uv==$(UV_VERSION)'; }
	.venv-lock/bin/uv pip compile pyproject.toml requirements/build.in --universal --python-version 3.11 \
	  --generate-hashes --upgrade -q -o $(LOCK_RUN)
	.venv-lock/bin/uv pip compile pyproject.toml requirements/build.in --extra test --extra demo --universal \
	  --python-version 3.11 --generate-hashes --upgrade -c $(LOCK_RUN) -q -o $(LOCK_TEST)
	.venv-lock/bin/uv pip compile requirements/mlflow.in --universal --python-version 3.11 \
	  --generate-hashes -q -o requirements/mlflow.txt
# The property-based fuzzers of tests/fuzz, 20,000 examples each instead of `make test`'s 100.
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest tests/fuzz -p no:cacheprovider --timeout=0 $(PYTEST_ARGS)

bench: $(STAMP) deps
	$(BIN)/python bench/overhead.py

# Every plugin on under synthetic load for 90 s, generous bounds (`bench/soak.py --minutes 60`
# is the long run whose figures are in bench/README.md).
.PHONY: soak
soak: deps $(STAMP)
	INFERWATCH_SOAK=1 $(BIN)/python -m pytest -m soak tests/integration/test_soak.py

clean:
	rm -rf $(VENV) .venv-latest .venv-lock $(MLFLOW_VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis *.egg-info
