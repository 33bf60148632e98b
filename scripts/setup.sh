#!/usr/bin/env bash
# Installs everything Parley needs on a fresh machine of our kind (Debian, Rust toolchain,
# Python 3 with pip): system tools, then the model files. Safe to run repeatedly.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

need_apt=()
command -v unzip >/dev/null || need_apt+=(unzip)
command -v sha256sum >/dev/null || need_apt+=(coreutils)
command -v curl >/dev/null || need_apt+=(curl)
# The disk-full tests mount a small tmpfs of their own.
command -v mount >/dev/null || need_apt+=(mount)
# schemathesis (make api-test) goes into a virtualenv.
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
# The agent inbox's browser test drives Debian's Chromium through chromedriver.
[[ -x /usr/bin/chromium ]] || need_apt+=(chromium)
[[ -x /usr/bin/chromedriver ]] || need_apt+=(chromium-driver)
if ((${#need_apt[@]})); then
  echo "setup: installing ${need_apt[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
for component in rustfmt clippy; do
  if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
    echo "setup: installing $component"
    rustup component add "$component"
  fi
done
bash "$root/scripts/fetch-models.sh"
