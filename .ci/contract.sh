#!/usr/bin/env bash
# The API contract: schemathesis (from PyPI, pinned) generates requests from the gateway's own
# /openapi.json and checks every answer against it (every check: status codes documented,
# bodies matching their schemas, valid requests accepted, invalid ones refused, no 5xx).
# The gateway runs from target/debug on a copy of examples/workspace with SQLite and api-key
# auth on, a mock LLM behind it, in a network namespace of its own when the machine allows
# one (loopback only: the admin API's MCP servers are generated URLs, never to be reached).
#
#   .ci/contract.sh                        # 25 examples per operation (CI)
#   CONTRACT_EXAMPLES=500 .ci/contract.sh  # the longer run
#
# Exits non-zero on any failure; schemathesis' report says which operation and how to replay.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

SCHEMATHESIS_VERSION=4.32.5
examples="${CONTRACT_EXAMPLES:-25}"
venv="$root/target/contract-venv"

if [ "${CONTRACT_NETNS:-}" != inside ]; then
  # Outside the namespace: what needs the package registries and the build.
  if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
    echo "== installing schemathesis $SCHEMATHESIS_VERSION into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "schemathesis==$SCHEMATHESIS_VERSION"
  fi
  echo "== building agents-gateway and mock-llm"
  cargo build -q -p agents-gateway-cli -p mock-llm
  if unshare --net true 2>/dev/null; then
    exec unshare --net env CONTRACT_NETNS=inside bash "$0" "$@"
  fi
  echo "== no network namespace here: the MCP server operations (they connect out) are left out"
  CONTRACT_NETNS=none
fi

exclude=()
if [ "$CONTRACT_NETNS" = inside ]; then
  ip link set lo up
else
  exclude=(--exclude-path-regex '^/v1/admin/mcp-servers')
fi

work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_for() { # url log
  for _ in $(seq 1 100); do
    if curl -sf -o /dev/null "$1"; then return 0; fi
    sleep 0.2
  done
  echo "contract: $1 did not answer; its log:" >&2
  cat "$2" >&2
  return 1
}

# The workspace: the example's agent and tool, plus an agent with typed input and output (its
# own documented invoke route) and a personal agent (setup schema and user config routes).
ws="$work/workspace"
cp -r examples/workspace "$ws"
key="contract-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
cat >"$ws/gateway.yaml" <<EOF
model:
  default: openai/gpt-contract
providers:
  openai:
    max_retries: 0
persistence:
  url: sqlite:///contract.db
auth:
  enabled: true
  api_keys:
    - {name: contract, key: "$key", scopes: ["*"]}
memory:
  enabled: true
EOF
mkdir -p "$ws/agents/extractor" "$ws/agents/mailer"
cat >"$ws/agents/extractor/AGENT.md" <<'EOF'
---
description: Extracts a city's weather
input_schema:
  type: object
  required: [city]
  properties:
    city: {type: string}
output_schema:
  type: object
  properties:
    temperature: {type: number}
---
Extract the weather of the city.
EOF
cat >"$ws/agents/mailer/AGENT.md" <<'EOF'
---
description: Sends mail for its user
scope: personal
setup_schema:
  type: object
  properties:
    signature: {type: string}
---
Write mail.
EOF

mock_port="$(free_port)"
target/debug/mock-llm --port "$mock_port" >"$work/mock-llm.log" 2>&1 &
pids+=($!)
port="$(free_port)"
OPENAI_API_KEY=contract OPENAI_API_BASE="http://127.0.0.1:$mock_port/v1" \
  AGENT_GATEWAY_SECRET_KEY="$key" RUST_LOG=warn \
  target/debug/agents-gateway serve --workspace "$ws" --host 127.0.0.1 --port "$port" \
  >"$work/gateway.log" 2>&1 &
pids+=($!)
base="http://127.0.0.1:$port"
wait_for "$base/v1/health" "$work/gateway.log"

# What schemathesis is told of the API beyond its document, each with the reason:
# - a request the document accepts may still be refused for what it means: that is 400 here
#   (an unknown agent in a schedule, a cron expression that does not parse, the setup of an
#   agent that is not personal), which a schema cannot know; 422 stays a failure;
# - a few operations check across fields, which a schema (and a query string) cannot say:
#   the generic invoke and chat routes apply the agent's own input_schema (each such agent
#   has its typed route in the document), the memory routes take a user or a scope but not
#   both and at most the agent's max_content_chars, and an MCP server's fields depend on its
#   transport;
# - text never holds NUL (the document's description says so; no store keeps it), so none is
#   generated: the black-box tests check that it is refused.
accepted='"2xx", "3xx", "400", "401", "403", "404", "409", "429", "5xx"'
cat >"$work/schemathesis.toml" <<EOF
[generation]
allow-x00 = false

[checks.positive_data_acceptance]
expected-statuses = [$accepted]

[[operations]]
include-name-regex = '^(POST /v1/agents/\{agent_id\}/(invoke|chat|memories)|GET /v1/agents/\{agent_id\}/memories|POST /v1/admin/mcp-servers|PUT /v1/admin/mcp-servers/\{server_id\})$'
checks.positive_data_acceptance.expected-statuses = [$accepted, "422"]
EOF

echo "== schemathesis $SCHEMATHESIS_VERSION: $examples examples per operation against $base"
status=0
# From the temporary folder: schemathesis keeps its replay files in the working directory.
(cd "$work" && "$venv/bin/schemathesis" --no-color --config-file "$work/schemathesis.toml" run "$base/openapi.json" \
  --url "$base" \
  --checks all \
  --header "Authorization: Bearer $key" \
  --max-examples "$examples" \
  --seed "${CONTRACT_SEED:-1}" \
  --generation-database none \
  "${exclude[@]}") || status=$?
if [ "$status" -ne 0 ]; then
  echo "contract: schemathesis failed ($status); the gateway's log:" >&2
  tail -n 50 "$work/gateway.log" >&2
fi
exit "$status"
