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

PG_URL="${TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
PG_SCHEMA="bench_$(date +%s)_$$"

cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql "$PG_URL" -qc "DROP SCHEMA IF EXISTS \"$PG_SCHEMA\" CASCADE" >/dev/null 2>&1 || true
  # BENCH_KEEP=1 leaves the workspaces and logs for a look afterwards.
  if [ -n "${BENCH_KEEP:-}" ]; then echo "bench: kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

build() { # BENCH_SKIP_BUILD=1: measure the binaries already built (paired runs of one build)
  [ -n "${BENCH_SKIP_BUILD:-}" ] && return 0
  local flag=()
  [ "$PROFILE" = release ] && flag=(--release)
  (cd "$ROOT" && cargo build -q "${flag[@]}" -p agents-gateway-cli -p mock-llm -p agw-bench)
}

# The model call the benchmarks make: an OpenAI chat request (to the mock, or through the bare
# hop), and the invoke the gateway turns into it.
CHAT_PATH=/v1/chat/completions
CHAT_BODY='{"model":"bench","messages":[{"role":"user","content":"hello"}]}'
INVOKE_PATH=/v1/agents/bench/invoke
INVOKE_BODY='{"message":"hello"}'

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_for() { # URL [TRIES of 50 ms, default 200]
  for _ in $(seq 1 "${2:-200}"); do
    if curl -fs -o /dev/null "$1"; then return 0; fi
    sleep 0.05
  done
  echo "bench: $1 never answered" >&2
  return 1
}

start_mock() { # -> MOCK_URL, MOCK_PID
  local port; port=$(free_port)
  "$BIN/mock-llm" --port "$port" --default-text "Benchmarks are fun." >"$WORK/mock.log" 2>&1 &
  MOCK_PID=$!
  PIDS+=($MOCK_PID)
  MOCK_URL="http://127.0.0.1:$port"
  wait_for "$MOCK_URL/_mock/health"
}

start_proxy() { # UPSTREAM_URL -> PROXY_URL, PROXY_PID: the bare hop (agw-proxy) in front of it
  local port; port=$(free_port)
  "${WRAPPER[@]}" "$BIN/agw-proxy" --port "$port" --upstream "$1" >"$WORK/proxy-$port.log" 2>&1 &
  PROXY_PID=$!
  PIDS+=($PROXY_PID)
  PROXY_URL="http://127.0.0.1:$port"
  wait_for "$PROXY_URL/_proxy/health" "$(start_tries)"
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

# GATEWAY_WORKER_THREADS=N runs the gateway (only) on N runtime threads (default: one per core).
# WRAPPER (an array) is a command the gateway or the bare hop runs under, e.g. valgrind; they
# are then given a minute to start.
start_gateway() { # WORKSPACE -> GATEWAY_URL, GATEWAY_PID
  local port; port=$(free_port)
  local threads=()
  [ -n "${GATEWAY_WORKER_THREADS:-}" ] && threads=(TOKIO_WORKER_THREADS="$GATEWAY_WORKER_THREADS")
  env "${threads[@]}" OPENAI_API_KEY=bench OPENAI_API_BASE="$MOCK_URL/v1" RUST_LOG="${BENCH_RUST_LOG:-warn}" \
    "${WRAPPER[@]}" "$BIN/agents-gateway" serve --host 127.0.0.1 --port "$port" -w "$1" \
    >"$WORK/gateway-$port.log" 2>&1 &
  GATEWAY_PID=$!
  PIDS+=($GATEWAY_PID)
  GATEWAY_URL="http://127.0.0.1:$port"
  wait_for "$GATEWAY_URL/v1/health" "$(start_tries)"
}
WRAPPER=()
start_tries() { [ ${#WRAPPER[@]} -gt 0 ] && echo 1200 || echo 200; }

# The persistence section for STORE: off, sqlite or postgres (a schema of its own).
persistence_yaml() {
  case $1 in
    off) printf 'persistence:\n  enabled: false' ;;
    sqlite) printf 'persistence:\n  url: sqlite:///bench.db' ;;
    postgres) printf 'persistence:\n  url: "%s"\n  db_schema: %s' "$PG_URL" "$PG_SCHEMA" ;;
  esac
}

start_gateway_on() { # STORE [EXTRA_YAML] -> GATEWAY_URL, GATEWAY_PID
  local ws="$WORK/ws-$1"
  make_workspace "$ws" "$(persistence_yaml "$1")${2:+
$2}"
  start_gateway "$ws"
}

stop_pid() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
stop_gateway() { stop_pid "$GATEWAY_PID"; }

load() { # LABEL CONCURRENCY URL BODY -> JSON line
  "$BIN/agw-load" --label "$1" --concurrency "$2" --duration "$DURATION" --warmup "$WARMUP" --url "$3" --body "$4" | tail -n 1
}

# CPU time (user + system, in clock ticks) a process has used so far.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# Microseconds of CPU per request: TICKS used by a process during one `load` run that
# reported JSON_LINE (the warm-up's requests are counted at the measured rate).
cpu_us_per_request() { # TICKS JSON_LINE
  python3 - "$1" "$2" "$(getconf CLK_TCK)" "$DURATION" "$WARMUP" <<'PY'
import json, sys
ticks, run, hz, duration, warmup = int(sys.argv[1]), json.loads(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
served = run['rps'] * (duration + warmup)
print(f"{ticks / hz / served * 1e6:.0f}" if served else "null")
PY
}
