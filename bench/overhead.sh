#!/usr/bin/env bash
# Gateway overhead: p50/p99 of an invoke through the gateway minus the same model call sent
# straight to the mock LLM, at concurrency 1 and 16, persistence off and on (SQLite). Goal:
# p99 overhead under 1 ms with persistence off. Also the gateway's CPU time per invoke (and the
# mock's per request), from /proc: the cost that decides throughput once the cores are busy.
# One JSON line per run, the summary last.
source "$(dirname "$0")/lib.sh"
build
start_mock
DIRECT_BODY='{"model":"bench","messages":[{"role":"user","content":"hello"}]}'
summary=()
for store in off sqlite; do
  start_gateway_on "$store"
  for c in 1 16; do
    before=$(cpu_ticks "$MOCK_PID")
    direct=$(load "direct-c$c" "$c" "$MOCK_URL/v1/chat/completions" "$DIRECT_BODY")
    mock_cpu=$(cpu_us_per_request $(($(cpu_ticks "$MOCK_PID") - before)) "$direct")
    before=$(cpu_ticks "$GATEWAY_PID")
    through=$(load "gateway-$store-c$c" "$c" "$GATEWAY_URL/v1/agents/bench/invoke" '{"message":"hello"}')
    gateway_cpu=$(cpu_us_per_request $(($(cpu_ticks "$GATEWAY_PID") - before)) "$through")
    echo "$direct"
    echo "$through"
    echo "{\"label\":\"cpu-$store-c$c\",\"mock_cpu_us_per_request\":$mock_cpu,\"gateway_cpu_us_per_invoke\":$gateway_cpu}"
    summary+=("$(python3 - "$direct" "$through" "$store" "$c" "$gateway_cpu" <<'PY'
import json, sys
d, g = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"{sys.argv[3]}/c{sys.argv[4]} p50=+{g['p50_ms'] - d['p50_ms']:.3f}ms p99=+{g['p99_ms'] - d['p99_ms']:.3f}ms cpu={sys.argv[5]}us")
PY
)")
  done
  stop_gateway
done
echo "overhead: ${summary[*]}"
