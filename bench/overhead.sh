#!/usr/bin/env bash
# Gateway overhead: p50/p99 of an invoke through the gateway minus the same model call sent
# straight to the mock LLM, at concurrency 1 and 16, persistence off and on (SQLite). Goal:
# p99 overhead under 1 ms with persistence off. Beside it, with persistence off, the same
# call through a bare hop built from the gateway's parts (agw-proxy: axum in, reqwest out,
# nothing else): what any hop costs on this machine, so the gateway's own work is the
# difference. Also CPU time per request of each process, from /proc: the cost that decides
# throughput once the cores are busy. One JSON line per run, the summary last.
source "$(dirname "$0")/lib.sh"
build
start_mock
start_proxy "$MOCK_URL$CHAT_PATH"

measure() { # LABEL CONCURRENCY PID URL BODY -> RUN (JSON line), CPU (us per request)
  local before; before=$(cpu_ticks "$3")
  RUN=$(load "$1" "$2" "$4" "$5")
  CPU=$(cpu_us_per_request $(($(cpu_ticks "$3") - before)) "$RUN")
  echo "$RUN"
}

summary=()
for store in off sqlite; do
  start_gateway_on "$store"
  for c in 1 16; do
    measure "direct-c$c" "$c" "$MOCK_PID" "$MOCK_URL$CHAT_PATH" "$CHAT_BODY"
    direct=$RUN mock_cpu=$CPU
    hop=null hop_cpu=null
    if [ "$store" = off ]; then
      measure "bare-hop-c$c" "$c" "$PROXY_PID" "$PROXY_URL$CHAT_PATH" "$CHAT_BODY"
      hop=$RUN hop_cpu=$CPU
    fi
    measure "gateway-$store-c$c" "$c" "$GATEWAY_PID" "$GATEWAY_URL$INVOKE_PATH" "$INVOKE_BODY"
    through=$RUN gateway_cpu=$CPU
    echo "{\"label\":\"cpu-$store-c$c\",\"mock_cpu_us_per_request\":$mock_cpu,\"bare_hop_cpu_us_per_request\":$hop_cpu,\"gateway_cpu_us_per_invoke\":$gateway_cpu}"
    summary+=("$(python3 - "$direct" "$through" "$hop" "$store" "$c" "$gateway_cpu" "$hop_cpu" <<'PY'
import json, sys
d, g, h = json.loads(sys.argv[1]), json.loads(sys.argv[2]), json.loads(sys.argv[3])
line = f"{sys.argv[4]}/c{sys.argv[5]} p50={g['p50_ms'] - d['p50_ms']:+.3f}ms p99={g['p99_ms'] - d['p99_ms']:+.3f}ms cpu={sys.argv[6]}us"
if h:
    line += f" (bare hop p50={h['p50_ms'] - d['p50_ms']:+.3f}ms p99={h['p99_ms'] - d['p99_ms']:+.3f}ms cpu={sys.argv[7]}us)"
print(line)
PY
)")
  done
  stop_gateway
done
echo "overhead: ${summary[*]}"
