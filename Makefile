# Parley's entry points. `make run` and `make test` work on a fresh machine: each fetches
# what it needs (model files, verified by sha256) before building.
SHELL := /bin/bash
MODELS_DIR := $(CURDIR)/.cache/models
export ORT_DYLIB_PATH ?= $(MODELS_DIR)/onnxruntime/libonnxruntime.so
export PARLEY_MODEL_DIR ?= $(MODELS_DIR)/all-MiniLM-L6-v2-int8
# Incremental compilation only costs time and disk on clean builds (CI, fresh clones).
export CARGO_INCREMENTAL ?= 0
DEMO_MERCHANTS := fixtures/merchants/trailhead fixtures/merchants/glowleaf

.PHONY: models run test fmt lint unit evals api-test bench llm llm-stop test-llm fuzz soak

models:
	@bash scripts/setup.sh

## Build, ingest the demo merchants and serve on 127.0.0.1:8080.
run: models
	cargo build --locked -p parley-server
	./target/debug/parley serve $(addprefix --ingest ,$(DEMO_MERCHANTS))

## Everything CI checks: formatting, lints as errors, every test, the eval suites, and the
## property-based API test.
test: models fmt lint unit evals api-test

fmt:
	cargo fmt --all --check

lint:
	cargo clippy --workspace --all-targets --locked -- -D warnings

# Ends with one plain "N passed, N failed" line summed over every test binary.
unit:
	@mkdir -p .cache; set -o pipefail; cargo test --workspace --locked 2>&1 | tee .cache/test.log
	@awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($$(i+1) ~ /^passed/) p += $$i; if ($$(i+1) ~ /^failed/) f += $$i } } END { printf "tests: %d passed, %d failed\n", p, f }' .cache/test.log

# lumen is the held-out merchant: measured with the others, never tuned on (cadence was held
# out until issue 14 read its failures to choose classes of failure).
EVAL_SUITES := --suite fixtures/evals/trailhead.yaml --suite fixtures/evals/glowleaf.yaml --suite fixtures/evals/cadence.yaml --suite fixtures/evals/lumen.yaml
# Gates set just under the scores measured when they were last set (see README: issue 17 added
# 154 turns replying to flow messages, a weaker class, and lowered them to 0.78 / 0.95), plus the
# committed baseline report: a regression in any rate beyond the tolerance fails the build.
EVAL_GATES := --min-resolution 0.78 --min-escalation-recall 0.95 --baseline fixtures/evals/baseline.json --tolerance 0.03

## Reply quality over the fixture suites, offline (no LLM), gated.
evals:
	cargo build --locked -p parley-server
	RUST_LOG=warn ./target/debug/parley eval $(EVAL_SUITES) --out target/eval $(EVAL_GATES)

## schemathesis (PyPI, pinned) against the running debug server, from its own /openapi.json:
## no 5xx, every answer matching its schema. API_TEST_EXAMPLES (30) per operation.
api-test:
	cargo build --locked -p parley-server
	@bash scripts/api-test.sh

## Release-build benchmarks: a table on stdout and target/bench/bench.json (about 40 minutes on
## 2 cores, 25 of them the 10k-product ingest). They print figures and assert nothing. PARLEY_BENCH_QUICK=1 for a short smoke run,
## PARLEY_BENCH_ONLY=load,stop,ingest,retrieval,evals,segments to pick sections.
bench: models
	cargo bench --locked -p parley-server --bench bench
	cargo bench --locked -p parley-agent --bench pipeline

## A real small instruct model (SmolLM2-135M) behind an OpenAI-compatible API on 127.0.0.1:8088
## (PARLEY_LLM_PORT); prints the base URL. The first run compiles llama.cpp (several minutes).
llm:
	@bash scripts/llm.sh start

llm-stop:
	@bash scripts/llm.sh stop

LLM_URL = http://127.0.0.1:$${PARLEY_LLM_PORT:-8088}/v1
## Not part of `make test`: the async-openai client against the real local model, then the
## fixture suites with that model writing every reply (slow: minutes per hundred turns).
test-llm: models llm
	PARLEY_TEST_LLM_URL=$(LLM_URL) cargo test --locked -p parley-agent --test agent live_llm -- --ignored
	cargo build --locked -p parley-server
	PARLEY__LLM__BASE_URL=$(LLM_URL) PARLEY__LLM__MODEL=smollm2 PARLEY__LLM__TIMEOUT=60s PARLEY__LLM__MAX_TOKENS=120 \
	  RUST_LOG=warn ./target/debug/parley eval $(EVAL_SUITES) --out target/eval-llm

## Fuzzing (not part of `make test`, which replays the kept corpus instead): each cargo-fuzz
## target for FUZZ_SECONDS (default 60), growing fuzz/corpus/. FUZZ_TARGETS="a b" to pick.
fuzz:
	@bash scripts/fuzz.sh

## Soak (not part of `make test`): the release server under signed webhooks at
## PARLEY_SOAK_RATE msg/s (100) for PARLEY_SOAK_MINUTES (20), SIGKILLed and restarted every
## PARLEY_SOAK_KILL_EVERY seconds (240); reports acknowledged, stored, decided, answered,
## duplicated and lost, and RSS over time (target/bench/soak.json).
soak: models
	cargo bench --locked -p parley-server --bench soak
