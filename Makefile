# Two commands do all set-up on a fresh clone: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run demo test compat-env prometheus-tools monitoring-manifests lint typecheck pytest clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,jwt,examples]'
	touch $(STAMP)

venv: $(STAMP)

# The SQL data service example (examples/sql_service) on 127.0.0.1:17001, health checks on :8877,
# metrics on :17101; Ctrl+C stops it gracefully.
run: $(STAMP)
	cd examples && ../$(BIN)/gooddata-flight-server start --methods-provider sql_service.main \
		--config sql_service/config.toml --dev-log

# A scripted client against a freshly started SQL service on free ports; stops it at the end.
demo: $(STAMP)
	$(BIN)/python examples/demo_client.py

# The isolated venv in which tests/compat runs GoodData FlexConnect on this package: .venv-compat/,
# rebuilt only when what goes into it changes (a change under src/ only reinstalls this package).
compat-env: $(STAMP)
	$(BIN)/python -m tests.compat.environment

# promtool and the prometheus server for tests/ops (the alert rules' unit tests, a real Prometheus
# scraping a live server): taken from PATH, else unpacked from Debian's `prometheus` package into
# .tools/prometheus/bin (apt-get download + dpkg-deb -x: nothing installed system-wide, no service
# started; ~3 s). Where apt cannot do it the tests that need them are skipped, with the reason, unless
# GDFS_REQUIRE_PROMETHEUS=1 (.ci/run sets it) makes that an error. See tests/ops/prometheus_tools.py.
prometheus-tools: $(STAMP)
	$(BIN)/python -m tests.ops.prometheus_tools

# deploy/k8s/monitoring's PrometheusRule and dashboard ConfigMap carry copies of
# deploy/prometheus/gdfs-alerts.yaml and deploy/grafana/gdfs-overview.json; rewrite them after a change.
monitoring-manifests: $(STAMP)
	$(BIN)/python -m tests.deploy.monitoring_manifests

test: $(STAMP) compat-env prometheus-tools
	$(BIN)/ruff check src tests examples benchmarks
	$(BIN)/ruff format --check src tests examples benchmarks
	$(BIN)/mypy
	$(BIN)/pytest

# The framework against raw pyarrow.flight and the original gooddata-flight-server (installed on first
# use into benchmarks/.venv-original), same run (~8.5 min, 2 cores); not part of `make test`.
# Options: make bench BENCH_ARGS="--reps 3 --workloads doget,action_8" (see benchmarks/README.md).
.PHONY: bench
bench: $(STAMP)
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

# sample-config.toml is generated from the settings declared in src/gooddata_flight_server/settings.py
.PHONY: sample-config
sample-config: $(STAMP)
	$(BIN)/python -m gooddata_flight_server._sample_config > sample-config.toml

# A query round trip through ADBC (Flight SQL) vs plain Flight GetFlightInfo/DoGet on the SQL service
# (~30 s). Options: make bench-flightsql BENCH_ARGS="--seconds 3 --reps 5"
.PHONY: bench-flightsql
bench-flightsql: $(STAMP)
	$(BIN)/python -m benchmarks.flightsql $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .venv-compat .tools benchmarks/.venv-original .mypy_cache .pytest_cache .ruff_cache
