#!/usr/bin/env bash
# `make fuzz`: every cargo-fuzz target for FUZZ_SECONDS (default 60) each, growing the kept
# corpus in fuzz/corpus/<target>/ (new inputs are kept, then the corpus is minimised). Installs cargo-fuzz
# from crates.io on first use. libFuzzer needs nightly compiler flags; the stable toolchain
# allows them with RUSTC_BOOTSTRAP=1 (there is no other toolchain on this machine).
# FUZZ_TARGETS="a b" picks targets. A crash stops the run and leaves its input in
# fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${FUZZ_SECONDS:-60}"
export RUSTC_BOOTSTRAP=1
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz"
  cargo install --locked cargo-fuzz
fi
targets="${FUZZ_TARGETS:-$(cd fuzz && cargo fuzz list)}"
for target in $targets; do
  echo "fuzz: $target for ${seconds}s"
  mkdir -p "fuzz/corpus/$target"
  (cd fuzz && cargo fuzz run "$target" "corpus/$target" -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1)
  # Keep only what adds coverage.
  (cd fuzz && cargo fuzz cmin "$target" "corpus/$target" >/dev/null 2>&1 || true)
done
echo "fuzz: done; corpus sizes:"
for target in $targets; do echo "  $target: $(ls "fuzz/corpus/$target" | wc -l) inputs"; done
