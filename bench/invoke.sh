#!/usr/bin/env bash
# Invoke throughput and latency through the gateway with the mock LLM answering instantly:
# concurrency 1, 10 and 50, persistence on SQLite and on PostgreSQL (TEST_POSTGRES_URL,
# default postgres://postgres@127.0.0.1:5432/test). Prints one JSON line per run, then the
# summary line last.
source "$(dirname "$0")/lib.sh"
build
start_mock
summary=()
errors=0
for store in sqlite postgres; do
  start_gateway_on "$store"
  for c in 1 10 50; do
    line=$(load "invoke-$store-c$c" "$c" "$GATEWAY_URL$INVOKE_PATH" "$INVOKE_BODY")
    echo "$line"
    rps=$(python3 -c "import json,sys; d=json.loads(sys.argv[1]); print(int(d['rps']))" "$line")
    p50=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['p50_ms'])" "$line")
    p99=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['p99_ms'])" "$line")
    e=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['errors'])" "$line")
    errors=$((errors + e))
    summary+=("$store/c$c ${rps}rps p50=${p50}ms p99=${p99}ms err=$e")
  done
  stop_gateway
done
echo "invoke: ${summary[*]} (errors total: $errors)"
[ "$errors" -eq 0 ]
