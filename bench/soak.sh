#!/usr/bin/env bash
# Soak (issue #18): for SOAK_SECONDS (default 600) at once, on SQLite, a chat load that keeps
# SOAK_SESSIONS chat sessions alive (default 10,000; SOAK_CHAT_CONCURRENCY connections, default
# 64; each turn goes to the next session in turn) and a closed-loop invoke load
# (SOAK_INVOKE_CONCURRENCY, default 8). Both print their figures per SOAK_REPORT_EVERY seconds
# (default 60) besides their summary; the gateway's RSS is sampled every SOAK_RSS_EVERY seconds
# (default 10). The session cache is sized for the sessions (`sessions.max_sessions`), so none
# is evicted; SOAK_MAX_MESSAGES sets `sessions.max_messages` (default: the gateway's, 100).
# Prints one JSON line per interval and per RSS sample, then the summary line last.
source "$(dirname "$0")/lib.sh"
SOAK_SECONDS="${SOAK_SECONDS:-600}"
SESSIONS="${SOAK_SESSIONS:-10000}"
CHAT_C="${SOAK_CHAT_CONCURRENCY:-64}"
INVOKE_C="${SOAK_INVOKE_CONCURRENCY:-8}"
EVERY="${SOAK_REPORT_EVERY:-60}"
RSS_EVERY="${SOAK_RSS_EVERY:-10}"

build
start_mock
sessions_yaml="$(printf 'sessions:\n  max_sessions: %s' "$SESSIONS")"
[ -n "${SOAK_MAX_MESSAGES:-}" ] && sessions_yaml+="$(printf '\n  max_messages: %s' "$SOAK_MAX_MESSAGES")"
start_gateway_on "${SOAK_STORE:-sqlite}" "$sessions_yaml"
gateway_log="$WORK/gateway-${GATEWAY_URL##*:}.log"
db="$WORK/ws-${SOAK_STORE:-sqlite}/bench.db"

rss_kb() { ps -o rss= -p "$1" | tr -d ' '; }
load1() { cut -d' ' -f1 /proc/loadavg; }

echo "{\"label\":\"soak-machine\",\"cores\":$(nproc),\"loadavg\":\"$(cut -d' ' -f1-3 /proc/loadavg)\"}"
rss_start=$(rss_kb "$GATEWAY_PID")
cpu_start=$(cpu_ticks "$GATEWAY_PID")

soak_load() { # LABEL CONCURRENCY URL BODY [agw-load options...] -> its lines, also in $WORK/LABEL
  local label=$1 c=$2 url=$3 body=$4
  shift 4
  "$BIN/agw-load" --label "$label" --concurrency "$c" --duration "$SOAK_SECONDS" --warmup 0 \
    --report-every "$EVERY" --url "$url" --body "$body" "$@" | tee "$WORK/$label.out"
}
soak_load soak-chat "$CHAT_C" "$GATEWAY_URL/v1/agents/bench/chat" '{"message":"hello"}' \
  --sessions "$SESSIONS" &
chat=$!
soak_load soak-invoke "$INVOKE_C" "$GATEWAY_URL$INVOKE_PATH" "$INVOKE_BODY" &
invoke=$!

# RSS every RSS_EVERY seconds until both loads are done (t counts from their start).
t0=$(date +%s%N)
next=$RSS_EVERY
: >"$WORK/rss"
while kill -0 "$chat" 2>/dev/null || kill -0 "$invoke" 2>/dev/null; do
  if [ $(( ($(date +%s%N) - t0) / 1000000000 )) -ge "$next" ]; then
    kb=$(rss_kb "$GATEWAY_PID")
    echo "$next $kb" >>"$WORK/rss"
    # The database and its write-ahead log apart: a log that is never checkpointed grows.
    # (Either may be missing: persistence off, or no log yet.)
    db_mb=$(du -k "$db" 2>/dev/null | awk '{printf "%.1f", $1/1024}' || true)
    wal_mb=$(du -k "$db-wal" 2>/dev/null | awk '{printf "%.1f", $1/1024}' || true)
    echo "{\"label\":\"soak-rss\",\"t_s\":$next,\"rss_mb\":$(awk "BEGIN{printf \"%.1f\", $kb/1024}"),\"db_mb\":${db_mb:-0},\"wal_mb\":${wal_mb:-0},\"load1\":$(load1)}"
    next=$((next + RSS_EVERY))
  fi
  sleep 0.2
done
wait "$chat" || true
wait "$invoke" || true
rss_end=$(rss_kb "$GATEWAY_PID")
cpu_used=$(( $(cpu_ticks "$GATEWAY_PID") - cpu_start ))
active=$(curl -fs "$GATEWAY_URL/metrics" | awk '/^agw_chat_sessions_active/ {print $NF}' || true)
db_kb=$(du -ck "$db"* 2>/dev/null | awk 'END {print $1}')
# Warnings and errors the gateway logged, but the one it logs at start with auth off.
log_problems=$(grep -E 'WARN|ERROR' "$gateway_log" | grep -vc 'auth is off' || true)
grep -E 'WARN|ERROR' "$gateway_log" | grep -v 'auth is off' | sed 's/\x1b\[[0-9;]*m//g' | head -n 5 \
  | sed 's/^/gateway log: /' || true

python3 - "$WORK" "$rss_start" "$rss_end" "$EVERY" "$RSS_EVERY" "${active:-null}" "$db_kb" \
  "$log_problems" "$cpu_used" "$(getconf CLK_TCK)" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'PY'
import json, math, sys
work, rss_start, rss_end, every, rss_every = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
active, db_kb, problems, ticks, hz, loadavg = sys.argv[6], int(sys.argv[7]), int(sys.argv[8]), int(sys.argv[9]), int(sys.argv[10]), sys.argv[11]
mb = lambda kb: round(kb / 1024, 1)

def lines(label):
    runs = [json.loads(l) for l in open(f"{work}/{label}.out") if l.startswith("{")]
    return [r for r in runs if "interval" in r], runs[-1]

samples = [tuple(map(int, l.split())) for l in open(f"{work}/rss")]
rss = [kb for _, kb in samples]
# Per interval of the loads: the largest sample taken in it.
per_minute = {}
for t, kb in samples:
    n = max(1, math.ceil(t / every))
    per_minute[n] = max(per_minute.get(n, 0), kb)
print(json.dumps({"label": "soak-rss-per-interval", "every_s": every,
                  "rss_max_mb": [mb(per_minute[n]) for n in sorted(per_minute)]}))

parts, errors = [], 0
for label in ("soak-chat", "soak-invoke"):
    intervals, total = lines(label)
    errors += total["errors"]
    p50 = [i["p50_ms"] for i in intervals]
    p99 = [i["p99_ms"] for i in intervals]
    extra = ""
    if "sessions" in total:
        extra = f" sessions={total['sessions_open']}/{total['sessions']} session_err={total['session_errors']}"
    parts.append(f"{label.removeprefix('soak-')} {total['requests']} req {total['rps']:.0f}/s err={total['errors']}{extra}"
                 f" p50/min {min(p50, default=0)}-{max(p50, default=0)}ms p99/min {min(p99, default=0)}-{max(p99, default=0)}ms")
served = sum(lines(l)[1]["requests"] for l in ("soak-chat", "soak-invoke"))
cpu = f"{ticks / hz / served * 1e6:.0f}us/req" if served else "n/a"
rss_max = max(rss + [rss_start, rss_end])
print(f"soak: {'; '.join(parts)}; RSS start {mb(rss_start)}MB max {mb(rss_max)}MB end {mb(rss_end)}MB; "
      f"sessions cached {active}; db {mb(db_kb)}MB; gateway CPU {cpu}; log warn/error lines {problems}; "
      f"loadavg at end {loadavg} (errors total: {errors})")
sys.exit(1 if errors else 0)
PY
