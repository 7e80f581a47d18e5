#!/usr/bin/env bash
# agentgate: intent calls and whole server flows (start + 3 steps) per second against the
# FoodPanda example site, 16 connections, with the site's `/` route (plain axum, no agentgate)
# measured beside them as the baseline. Prints JSON lines, then the summary line last.
source "$(dirname "$0")/lib.sh"
flag=()
[ "$PROFILE" = release ] && flag=(--release)
(cd "$ROOT" && cargo build -q "${flag[@]}" -p agentgate --example foodpanda_server && cargo build -q "${flag[@]}" -p agw-bench)
port=$(free_port)
"$ROOT/target/$PROFILE/examples/foodpanda_server" --addr "127.0.0.1:$port" >"$WORK/site.log" 2>&1 &
PIDS+=($!)
SITE="http://127.0.0.1:$port"
wait_for "$SITE/.well-known/agent-manifest.json"
C="${BENCH_CONNECTIONS:-16}"
run() { "$BIN/agw-load" --duration "$DURATION" --warmup "$WARMUP" --concurrency "$C" --header 'X-API-Key: demo-key' "$@" | tail -n 1; }
baseline=$(run --label baseline-get-root --method GET --url "$SITE/")
intent=$(run --label intent --url "$SITE/agent/intents/search_restaurants" --body '{"query":"pizza","location":"Berlin"}')
flow=$(run --label server-flow --url "$SITE" --flow-start /agent/flows/order_food/start \
  --flow-step '/agent/flows/order_food/step/search {"query":"pizza","location":"Berlin"}' \
  --flow-step '/agent/flows/order_food/step/select_restaurant {"restaurant_id":"r1"}' \
  --flow-step '/agent/flows/order_food/step/checkout {"items":[{"item_id":"m1","quantity":2}],"delivery_address":"Alexanderplatz 1"}')
echo "$baseline"; echo "$intent"; echo "$flow"
summary() { python3 -c "import json,sys; d=json.loads(sys.argv[1]); print(f\"{d['label']} {int(d['rps'])}/s p50={d['p50_ms']}ms p99={d['p99_ms']}ms err={d['errors']}\")" "$1"; }
echo "agentgate (c=$C): $(summary "$baseline"); $(summary "$intent"); $(summary "$flow")"
