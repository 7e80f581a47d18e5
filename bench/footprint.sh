#!/usr/bin/env bash
# Footprint: time from start to a healthy /v1/health for the example workspace and for a
# generated 1,000-agent workspace; resident memory idle, under load (16 connections), and with
# 10,000 and 100,000 idle chat sessions (persistence off). Summary line last.
source "$(dirname "$0")/lib.sh"
build
start_mock
SESSIONS_SMALL="${FOOTPRINT_SESSIONS_SMALL:-10000}"
SESSIONS_LARGE="${FOOTPRINT_SESSIONS_LARGE:-100000}"

rss_mb() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }

startup() { # WORKSPACE -> STARTUP_MS; leaves the gateway running
  local port; port=$(free_port)
  local t0; t0=$(date +%s%N)
  OPENAI_API_KEY=bench OPENAI_API_BASE="$MOCK_URL/v1" RUST_LOG=warn \
    "$BIN/agents-gateway" serve --host 127.0.0.1 --port "$port" -w "$1" >"$WORK/gw-$port.log" 2>&1 &
  GATEWAY_PID=$!
  PIDS+=($GATEWAY_PID)
  GATEWAY_URL="http://127.0.0.1:$port"
  for _ in $(seq 1 20000); do
    curl -fs -o /dev/null "$GATEWAY_URL/v1/health" && break
    sleep 0.005
  done
  STARTUP_MS=$(( ($(date +%s%N) - t0) / 1000000 ))
}

# The example workspace.
cp -r "$ROOT/examples/workspace" "$WORK/example"
rm -f "$WORK"/example/*.db*
startup "$WORK/example"
example_ms=$STARTUP_MS
stop_gateway

# 1,000 agents.
big="$WORK/big"
mkdir -p "$big"
printf 'model:\n  default: openai/bench\nauth:\n  enabled: false\npersistence:\n  enabled: false\n' >"$big/gateway.yaml"
for i in $(seq 1 1000); do
  mkdir -p "$big/agents/agent-$i"
  printf -- '---\ndescription: Agent %s\n---\nYou are agent %s.\n' "$i" "$i" >"$big/agents/agent-$i/AGENT.md"
done
startup "$big"
big_ms=$STARTUP_MS
stop_gateway

# Memory: idle, under load, with many sessions.
ws="$WORK/ws"
make_workspace "$ws" "$(printf 'persistence:\n  enabled: false\nsessions:\n  max_sessions: 1000000\n  ttl_seconds: 86400')"
startup "$ws"
sleep 1
idle=$(rss_mb "$GATEWAY_PID")
load "load-c16" 16 "$GATEWAY_URL$INVOKE_PATH" "$INVOKE_BODY" >"$WORK/load.json" &
loader=$!
peak=0
while kill -0 "$loader" 2>/dev/null; do
  now=$(rss_mb "$GATEWAY_PID")
  peak=$(python3 -c "print(max($peak, $now))")
  sleep 0.1
done
cat "$WORK/load.json"
sessions() { # N: opens N more chat sessions
  "$BIN/agw-load" --label "sessions" --concurrency 32 --requests "$1" --warmup 0 \
    --url "$GATEWAY_URL/v1/agents/bench/chat" --body '{"message":"hello"}' | tail -n 1
}
sessions "$SESSIONS_SMALL"
small=$(rss_mb "$GATEWAY_PID")
sessions $((SESSIONS_LARGE - SESSIONS_SMALL))
large=$(rss_mb "$GATEWAY_PID")
stop_gateway
echo "footprint: startup example ${example_ms}ms, 1000 agents ${big_ms}ms; RSS idle ${idle}MB, under load ${peak}MB, ${SESSIONS_SMALL} sessions ${small}MB, ${SESSIONS_LARGE} sessions ${large}MB"
