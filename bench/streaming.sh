#!/usr/bin/env bash
# Streaming: extra time to the first chunk and extra per-chunk delay of chat streaming through
# the gateway, against the mock LLM streaming 20 chunks paced 20 ms apart. The direct request
# asks for usage in the stream as the gateway does (the mock then sends one more paced chunk).
# Summary line last.
source "$(dirname "$0")/lib.sh"
build
start_mock
curl -fs -X PUT "$MOCK_URL/_mock/default" -H 'content-type: application/json' \
  -d '{"text": "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty", "chunk_delay_ms": 20}' >/dev/null
start_gateway_on off
stream() { # LABEL URL BODY
  "$BIN/agw-load" --label "$1" --concurrency 4 --duration "$DURATION" --warmup "$WARMUP" \
    --url "$2" --body "$3" --stream | tail -n 1
}
direct=$(stream direct-stream "$MOCK_URL$CHAT_PATH" '{"model":"bench","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hello"}]}')
through=$(stream gateway-stream "$GATEWAY_URL/v1/agents/bench/chat" '{"message":"hello","options":{"stream":true}}')
echo "$direct"
echo "$through"
python3 - "$direct" "$through" <<'PY'
import json, sys
d, g = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print("streaming: first chunk p50=+%.3fms p99=+%.3fms; chunk gap p50=+%.3fms p99=+%.3fms (mock gap p50 %.3fms)" % (
    g["first_chunk_p50_ms"] - d["first_chunk_p50_ms"], g["first_chunk_p99_ms"] - d["first_chunk_p99_ms"],
    g["chunk_gap_p50_ms"] - d["chunk_gap_p50_ms"], g["chunk_gap_p99_ms"] - d["chunk_gap_p99_ms"], d["chunk_gap_p50_ms"]))
PY
