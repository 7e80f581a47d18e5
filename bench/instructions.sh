#!/usr/bin/env bash
# Instructions per invoke: the gateway (persistence off, or INSTRUCTIONS_STORE=sqlite; or the
# bare hop agw-proxy with INSTRUCTIONS_STORE=bare-hop) runs under valgrind's callgrind, which
# counts the instructions it executes. For the same binary and requests the count barely moves
# however busy the machine is, unlike CPU time (±15% from run to run on a shared 2-core
# machine), so it shows what a change did to the gateway's own work. Two runs serve SMALL and LARGE invokes after the same start-up; their difference over
# LARGE - SMALL is one invoke. User space only: the kernel's share (sockets, wake-ups) is not
# counted. Summary line last.
source "$(dirname "$0")/lib.sh"
command -v valgrind >/dev/null || { echo "bench: valgrind is not installed" >&2; exit 1; }
SMALL="${INSTRUCTIONS_SMALL:-1000}"
LARGE="${INSTRUCTIONS_LARGE:-3000}"
STORE="${INSTRUCTIONS_STORE:-off}"
# INSTRUCTIONS_TELEMETRY: default (metrics on, no traces), traces (spans exported over OTLP
# HTTP/protobuf to the mock, which refuses them: the spans are made and encoded and sent all
# the same), metrics-off (metrics.enabled: false: nothing recorded).
TELEMETRY="${INSTRUCTIONS_TELEMETRY:-default}"
build
start_mock
count() { # REQUESTS -> COUNTED: instructions of a whole gateway (or bare hop) run serving them
  local out="$WORK/callgrind.$1"
  WRAPPER=(valgrind --tool=callgrind --callgrind-out-file="$out")
  local url body pid
  if [ "$STORE" = bare-hop ]; then
    start_proxy "$MOCK_URL$CHAT_PATH"
    url=$PROXY_URL$CHAT_PATH body=$CHAT_BODY pid=$PROXY_PID
  else
    local extra=""
    case "$TELEMETRY" in
      traces) extra="telemetry: {exporter: otlp, protocol: http, endpoint: \"$MOCK_URL\", metrics_interval_s: 0}" ;;
      metrics-off) extra="metrics: {enabled: false}" ;;
      default) ;;
      *) echo "bench: INSTRUCTIONS_TELEMETRY must be default, traces or metrics-off" >&2; exit 2 ;;
    esac
    start_gateway_on "$STORE" "$extra"
    url=$GATEWAY_URL$INVOKE_PATH body=$INVOKE_BODY pid=$GATEWAY_PID
  fi
  "$BIN/agw-load" --label "callgrind-$1" --concurrency 4 --requests "$1" --warmup 0 \
    --url "$url" --body "$body" | tail -n 1 >&2
  stop_pid "$pid"
  COUNTED=$(callgrind_annotate "$out" | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
}

count "$SMALL"
small=$COUNTED
count "$LARGE"
large=$COUNTED
per_invoke=$(( (large - small) / (LARGE - SMALL) ))
echo "{\"label\":\"instructions-$STORE-$TELEMETRY\",\"small\":$SMALL,\"small_total\":$small,\"large\":$LARGE,\"large_total\":$large,\"per_invoke\":$per_invoke}"
if [ "$STORE" = bare-hop ]; then
  echo "instructions: $per_invoke per request (bare hop, agw-proxy; callgrind, user space)"
else
  echo "instructions: $per_invoke per invoke (persistence $STORE; callgrind, user space)"
fi
