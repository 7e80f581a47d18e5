# Shared helpers of the benchmark scripts (sourced, not run).
# BENCH_PROFILE=release (default) or debug; BENCH_DURATION seconds per measurement (default 10).

set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PROFILE="${BENCH_PROFILE:-release}"
DURATION="${BENCH_DURATION:-10}"
WARMUP="${BENCH_WARMUP:-2}"
BIN="$ROOT/target/$PROFILE"
WORK="$(mktemp -d)"
PIDS=()

cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

build() {
  local flag=()
  [ "$PROFILE" = release ] && flag=(--release)
  (cd "$ROOT" && cargo build -q "${flag[@]}" -p agents-gateway-cli -p mock-llm -p agw-bench)
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_for() { # url
  for _ in $(seq 1 200); do
    if curl -fs -o /dev/null "$1"; then return 0; fi
    sleep 0.05
  done
  echo "bench: $1 never answered" >&2
  return 1
}

start_mock() { # -> MOCK_URL
  local port; port=$(free_port)
  "$BIN/mock-llm" --port "$port" --default-text "Benchmarks are fun." >"$WORK/mock.log" 2>&1 &
  PIDS+=($!)
  MOCK_URL="http://127.0.0.1:$port"
  wait_for "$MOCK_URL/_mock/health"
}

# make_workspace DIR PERSISTENCE_YAML
make_workspace() {
  mkdir -p "$1/agents/bench"
  cat >"$1/agents/bench/AGENT.md" <<'MD'
---
description: Benchmark agent
---
You answer briefly.
MD
  printf 'model:\n  default: openai/bench\nauth:\n  enabled: false\n%s\n' "$2" >"$1/gateway.yaml"
}

start_gateway() { # WORKSPACE -> GATEWAY_URL, GATEWAY_PID
  local port; port=$(free_port)
  OPENAI_API_KEY=bench OPENAI_API_BASE="$MOCK_URL/v1" RUST_LOG=warn \
    "$BIN/agents-gateway" serve --host 127.0.0.1 --port "$port" -w "$1" >"$WORK/gateway-$port.log" 2>&1 &
  GATEWAY_PID=$!
  PIDS+=($GATEWAY_PID)
  GATEWAY_URL="http://127.0.0.1:$port"
  wait_for "$GATEWAY_URL/v1/health"
}

stop_gateway() {
  kill "$GATEWAY_PID" 2>/dev/null || true
  wait "$GATEWAY_PID" 2>/dev/null || true
}

load() { # LABEL CONCURRENCY URL BODY -> JSON line
  "$BIN/agw-load" --label "$1" --concurrency "$2" --duration "$DURATION" --warmup "$WARMUP" --url "$3" --body "$4" | tail -n 1
}
