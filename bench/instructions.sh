#!/usr/bin/env bash
# Instructions per invoke: the gateway (persistence off, or INSTRUCTIONS_STORE=sqlite) runs
# under valgrind's callgrind, which counts the instructions it executes. For the same binary
# and requests the count barely moves however busy the machine is, unlike CPU time (±15% from
# run to run on a shared 2-core machine), so it shows what a change did to the gateway's own
# work. Two runs serve SMALL and LARGE invokes after the same start-up; their difference over
# LARGE - SMALL is one invoke. User space only: the kernel's share (sockets, wake-ups) is not
# counted. Summary line last.
source "$(dirname "$0")/lib.sh"
command -v valgrind >/dev/null || { echo "bench: valgrind is not installed" >&2; exit 1; }
SMALL="${INSTRUCTIONS_SMALL:-1000}"
LARGE="${INSTRUCTIONS_LARGE:-3000}"
STORE="${INSTRUCTIONS_STORE:-off}"
build
start_mock
workspace="$WORK/ws-$STORE"
make_workspace "$workspace" "$(persistence_yaml "$STORE")"

count() { # REQUESTS -> instructions of a whole gateway run serving them
  local port pid out="$WORK/callgrind.$1"
  port=$(free_port)
  env OPENAI_API_KEY=bench OPENAI_API_BASE="$MOCK_URL/v1" RUST_LOG=warn \
    valgrind --tool=callgrind --callgrind-out-file="$out" \
    "$BIN/agents-gateway" serve --host 127.0.0.1 --port "$port" -w "$workspace" \
    >"$WORK/callgrind-$1.log" 2>&1 &
  pid=$!
  PIDS+=($pid)
  for _ in $(seq 1 600); do
    curl -fs -o /dev/null "http://127.0.0.1:$port/v1/health" && break
    sleep 0.1
  done
  "$BIN/agw-load" --label "callgrind-$1" --concurrency 4 --requests "$1" --warmup 0 \
    --url "http://127.0.0.1:$port/v1/agents/bench/invoke" --body '{"message":"hello"}' | tail -n 1 >&2
  kill -INT "$pid"
  wait "$pid" 2>/dev/null || true
  callgrind_annotate "$out" | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }'
}

small=$(count "$SMALL")
large=$(count "$LARGE")
per_invoke=$(( (large - small) / (LARGE - SMALL) ))
echo "{\"label\":\"instructions-$STORE\",\"small\":$SMALL,\"small_total\":$small,\"large\":$LARGE,\"large_total\":$large,\"per_invoke\":$per_invoke}"
echo "instructions: $per_invoke per invoke (persistence $STORE; callgrind, user space)"
