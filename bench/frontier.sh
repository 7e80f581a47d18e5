#!/usr/bin/env bash
# Throughput frontier: the highest request rate held with p99 under 5, 10 and 50 ms, for the
# mock LLM alone (the ceiling), and invoke through the gateway with persistence off, SQLite and
# PostgreSQL (TEST_POSTGRES_URL). Open-loop load (agw-load --rate) on a ladder of rates; a rate
# is "held" when at least 95% of it is served with no errors. Summary line last.
source "$(dirname "$0")/lib.sh"
build
start_mock
read -r -a RATES <<<"${FRONTIER_RATES:-250 500 1000 1500 2000 3000 4000 6000 8000 12000}"

frontier() { # LABEL URL BODY -> prints runs, sets RESULT
  local label=$1 url=$2 body=$3 line
  local lines=()
  for rate in "${RATES[@]}"; do
    line=$("$BIN/agw-load" --label "$label-$rate" --rate "$rate" --concurrency 512 \
      --duration "$DURATION" --warmup "$WARMUP" --url "$url" --body "$body" | tail -n 1)
    echo "$line"
    lines+=("$line")
    if ! python3 -c "import json,sys; d=json.loads(sys.argv[1]); sys.exit(0 if d['errors']==0 and d['p99_ms']<=50 and d['rps']>=0.95*d['target_rps'] else 1)" "$line"; then
      break
    fi
  done
  RESULT=$(python3 - "$label" "${lines[@]}" <<'PY'
import json, sys
label, runs = sys.argv[1], [json.loads(a) for a in sys.argv[2:]]
held = [r for r in runs if r["errors"] == 0 and r["rps"] >= 0.95 * r["target_rps"]]
def best(limit):
    ok = [r["target_rps"] for r in held if r["p99_ms"] <= limit]
    return f"{int(max(ok))}/s" if ok else "-"
print(f"{label}: p99<5ms {best(5)}, <10ms {best(10)}, <50ms {best(50)}")
PY
)
}

summary=()
frontier mock "$MOCK_URL$CHAT_PATH" "$CHAT_BODY"
summary+=("$RESULT")
for store in off sqlite postgres; do
  start_gateway_on "$store"
  frontier "gateway-$store" "$GATEWAY_URL$INVOKE_PATH" "$INVOKE_BODY"
  summary+=("$RESULT")
  stop_gateway
done
echo "frontier: $(IFS='; '; echo "${summary[*]}")"
