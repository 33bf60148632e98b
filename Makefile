# Parley's entry points. `make run` and `make test` work on a fresh machine: each fetches
# what it needs (model files, verified by sha256) before building.
SHELL := /bin/bash
MODELS_DIR := $(CURDIR)/.cache/models
export ORT_DYLIB_PATH ?= $(MODELS_DIR)/onnxruntime/libonnxruntime.so
export PARLEY_MODEL_DIR ?= $(MODELS_DIR)/all-MiniLM-L6-v2-int8
# Incremental compilation only costs time and disk on clean builds (CI, fresh clones).
export CARGO_INCREMENTAL ?= 0
DEMO_MERCHANTS := fixtures/merchants/trailhead fixtures/merchants/glowleaf

.PHONY: models run test fmt lint unit bench

models:
	@bash scripts/setup.sh

## Build, ingest the demo merchants and serve on 127.0.0.1:8080.
run: models
	cargo build --locked -p parley-server
	./target/debug/parley serve $(addprefix --ingest ,$(DEMO_MERCHANTS))

## Everything CI checks: formatting, lints as errors, and every test.
test: models fmt lint unit

fmt:
	cargo fmt --all --check

lint:
	cargo clippy --workspace --all-targets --locked -- -D warnings

# Ends with one plain "N passed, N failed" line summed over every test binary.
unit:
	@mkdir -p .cache; set -o pipefail; cargo test --workspace --locked 2>&1 | tee .cache/test.log
	@awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($$(i+1) ~ /^passed/) p += $$i; if ($$(i+1) ~ /^failed/) f += $$i } } END { printf "tests: %d passed, %d failed\n", p, f }' .cache/test.log

## Benchmarks print figures; they assert nothing.
bench: models
	cargo bench --locked -p parley-knowledge --bench retrieval
