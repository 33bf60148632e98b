#!/usr/bin/env bash
# `make api-test` (part of `make test`): schemathesis (from PyPI, pinned) generates requests
# from the running server's own /openapi.json, valid and invalid, and checks that none gets a
# 5xx and every answer matches the schema it claims. The server is the debug `parley serve`
# with the demo merchants on a scratch database; the token is an admin's of one merchant.
set -euo pipefail
cd "$(dirname "$0")/.."
version=4.32.5
venv=.cache/venv-schemathesis
if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$version"; then
  echo "api-test: installing schemathesis $version"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "schemathesis==$version"
fi
bin=./target/debug/parley
data="$PWD/target/api-test"
mkdir -p "$data"
rm -f "$data"/parley.db*
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$data/parley.toml" <<TOML
data_dir = "$data"
[server]
port = $port
TOML
RUST_LOG=warn "$bin" --config "$data/parley.toml" serve \
  --ingest fixtures/merchants/trailhead --ingest fixtures/merchants/glowleaf > "$data/serve.log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 600); do
  if curl -sf "http://127.0.0.1:$port/readyz" >/dev/null; then break; fi
  if ! kill -0 "$pid" 2>/dev/null; then echo "api-test: parley serve died:"; cat "$data/serve.log"; exit 1; fi
  sleep 0.5
done
token=$("$bin" --config "$data/parley.toml" token create --merchant trailhead --name schemathesis --role admin 2>/dev/null)
# Something to work on: an escalation (id 1) in the merchant the token belongs to.
curl -sf -X POST "http://127.0.0.1:$port/v1/simulator/messages" -H 'content-type: application/json' \
  -d '{"merchant_id": "trailhead", "from": "+15550009999", "body": "can I speak to a human please"}' >/dev/null
# Paths name the token's merchant (another merchant's ids are a plain 404, tested elsewhere).
cat > "$data/schemathesis.toml" <<TOML
[parameters]
"path.merchant_id" = "trailhead"
TOML
"$venv/bin/schemathesis" --config-file "$data/schemathesis.toml" run "http://127.0.0.1:$port/openapi.json" \
  --header "Authorization: Bearer $token" \
  --checks ${API_TEST_CHECKS:-not_a_server_error,response_schema_conformance} \
  --max-examples "${API_TEST_EXAMPLES:-30}" --seed 1 --workers 1 \
  --request-timeout 60
if grep -E "panicked" "$data/serve.log"; then echo "api-test: the server panicked"; exit 1; fi
echo "api-test: passed"
