#!/usr/bin/env bash
# Benchmark: what the semantic stream adds to a miss on the shared Redis tier
# (docs/scaling.md). Two replicas (A and B) with `--semantic on` share one
# redis-server; wrk sends unique questions (all misses) to A. INFO
# commandstats and the redis-server process's CPU time over the run, divided
# by A's misses, give the whole Redis cost of a miss with semantic on; the
# stream's own commands (XADD by A, MULTI/XINFO/XRANGE/XREAD/EXEC snapshots
# and blocking XREADs by both readers) are listed apart, per appended event.
#
#   bench/redis_stream_cost.sh
#
# Environment (defaults in brackets): CONNS [4] wrk connections,
# DURATION [5] seconds, LLMCACHE_BIN, REQ_TEMPLATE, KEEP_TMP=1 (as bench/run-all).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CONNS="${CONNS:-4}"
DURATION="${DURATION:-5}"
command -v redis-server >/dev/null || die "redis-server not found"
bench_init redis-stream
CLK_TCK=$(getconf CLK_TCK)

REDIS_PORT="$(free_port)"
timeout "$BENCH_MAX_LIFETIME" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" \
  --appendonly no --dir "$BENCH_TMP" </dev/null >/dev/null 2>&1 &
BENCH_PIDS+=("$!")
for _ in $(seq 100); do [[ "$(redis-cli -p "$REDIS_PORT" PING 2>/dev/null)" == PONG ]] && break; sleep 0.05; done
REDIS_REAL_PID="$(pgrep -P "${BENCH_PIDS[-1]}" | head -n1)"
[[ -n "$REDIS_REAL_PID" ]] || die "redis-server did not start"
rcli() { redis-cli -p "$REDIS_PORT" "$@"; }

start_fake fake
REPLICA=(--store "redis://127.0.0.1:$REDIS_PORT" --memory-max 2 --semantic on)
start_gateway b "$FAKE_PORT" 1 "${REPLICA[@]}"
B_PORT=$GW_PORT
start_gateway a "$FAKE_PORT" 2 "${REPLICA[@]}"
A_PORT=$GW_PORT
appended() { metric "$A_PORT" llmcache_semantic_replication_appended_total ''; }
applied() { metric "$B_PORT" llmcache_semantic_replication_applied_total ''; }

rcli CONFIG RESETSTAT >/dev/null
m0=$(gw_misses "$A_PORT"); e0=$(appended); p0=$(applied); c0=$(proc_cpu_ticks "$REDIS_REAL_PID")
json=$(run_wrk "$BENCH_TMP/wrk.txt" -t1 -c"$CONNS" -d"${DURATION}s" \
  -s "$LUA_DIR/post_unique.lua" "http://127.0.0.1:$A_PORT/v1/chat/completions" -- \
  "$REQ_TEMPLATE" "stream-$$-$RANDOM")
m1=$(gw_misses "$A_PORT")
# Until B has applied every event A appended (the readers' work is part of the cost).
for _ in $(seq 200); do
  e1=$(appended)
  (($(applied) - p0 >= e1 - e0)) && break
  sleep 0.05
done
p1=$(applied); c1=$(proc_cpu_ticks "$REDIS_REAL_PID")
misses=$((m1 - m0)); events=$((e1 - e0))
((misses > 0 && events > 0)) || die "no misses ($misses) or no stream events ($events)"
log "$misses misses on A at $(json_get "$json" rps) req/s, $events events appended, $((p1 - p0)) applied on B"

echo "per miss (semantic on, 2 replicas reading the stream):"
echo "  redis-server CPU us: $(calc "1e6 * ($c1 - $c0) / $CLK_TCK / $misses")"
echo "  bytes to Redis: $(calc "$(rcli INFO stats | tr -d '\r' | awk -F: '$1=="total_net_input_bytes"{print $2}') / $misses")"
rcli INFO commandstats | tr -d '\r' | grep '^cmdstat_' | grep -v -e '^cmdstat_info:' -e '^cmdstat_config' |
  sed -E 's/^cmdstat_([^:]+):calls=([0-9]+),usec=([0-9]+).*/\1 \2 \3/' |
  awk -v n="$misses" -v e="$events" '
    { calls += $2; usec += $3
      if ($1 ~ /^(xadd|multi|exec|xinfo\|stream|xrange|xread)$/) {
        scalls += $2; susec += $3
        printf "  stream %-14s %7.3f calls/event %7.2f us/event\n", $1, $2 / e, $3 / e } }
    END {
      printf "  commands: %.2f (%.2f us inside Redis)\n", calls / n, usec / n
      printf "  of which the stream: %.2f calls (%.2f us) per event\n", scalls / e, susec / e }'
