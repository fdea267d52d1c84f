#!/usr/bin/env bash
# Benchmark: the shared Redis tier (issue 6).
#
#   bench/redis_tier.sh
#
# 1. Hit throughput through a replica whose hot tier is cold: the gateway runs
#    with `--store redis://...` and `--memory-max 2` (a 2-byte memory tier,
#    which refuses every entry, so every hit reads Redis), against
#    `redis-benchmark -t get` of a value of the cached entry's size, with the
#    same number of connections, interleaved in the same run.
# 2. Redis cost per cache hit and per miss: INFO commandstats and INFO stats
#    deltas (commands, calls, µs inside Redis, network bytes) and the
#    redis-server process's CPU time, divided by the hits / misses the gateway
#    counted over the same interval. A miss includes the cross-replica flight
#    (lock, second lookup, release; docs/redis.md).
#
# Environment (defaults in brackets):
#   THREADS [2]        gateway --threads
#   CONNS [32]         wrk -c and redis-benchmark -c
#   DURATION [10]      seconds per measured throughput run
#   RUNS [3]           measured runs per side (interleaved)
#   COST_DURATION [5]  seconds of the per-hit and per-miss cost runs
#   WARMUP [3]         seconds of unmeasured warm-up
#   LLMCACHE_BIN, REQ_TEMPLATE, KEEP_TMP=1, BENCH_SUMMARY (as bench/run-all)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

THREADS="${THREADS:-2}"
CONNS="${CONNS:-32}"
DURATION="${DURATION:-10}"
RUNS="${RUNS:-3}"
COST_DURATION="${COST_DURATION:-5}"
WARMUP="${WARMUP:-3}"

for tool in redis-server redis-cli redis-benchmark; do
  command -v "$tool" >/dev/null || die "$tool not found (scripts/install-deps installs redis)"
done
bench_init redis
CLK_TCK=$(getconf CLK_TCK)

# start_redis -> REDIS_PORT, REDIS_PID (the `timeout` wrapper), REDIS_REAL_PID.
start_redis() {
  local dir="$BENCH_TMP/redis" attempt
  mkdir -p "$dir"
  for attempt in 1 2 3 4 5; do
    REDIS_PORT="$(free_port)"
    timeout "$BENCH_MAX_LIFETIME" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 \
      --save "" --appendonly no --dir "$dir" --logfile "$dir/redis.log" \
      --maxmemory 1gb --maxmemory-policy allkeys-lru </dev/null >/dev/null 2>&1 &
    REDIS_PID=$!
    BENCH_PIDS+=("$REDIS_PID")
    for _ in $(seq 100); do
      [[ "$(redis-cli -p "$REDIS_PORT" PING 2>/dev/null)" == PONG ]] && break
      kill -0 "$REDIS_PID" 2>/dev/null || break
      sleep 0.05
    done
    if [[ "$(redis-cli -p "$REDIS_PORT" PING 2>/dev/null)" == PONG ]]; then
      REDIS_REAL_PID="$(pgrep -P "$REDIS_PID" | head -n1)"
      log "redis-server $(redis-server --version | sed -E 's/.*v=([^ ]+).*/\1/') on 127.0.0.1:$REDIS_PORT (pid $REDIS_REAL_PID)"
      return 0
    fi
    stop_pid "$REDIS_PID"
    log "redis-server did not start on port $REDIS_PORT (attempt $attempt)"
  done
  die "redis-server did not start"
}
rcli() { redis-cli -p "$REDIS_PORT" "$@"; }
# info_field SECTION NAME -> a numeric field of INFO SECTION
info_field() { rcli INFO "$1" | tr -d '\r' | awk -F: -v n="$2" '$1==n{print $2}'; }

start_redis
start_fake fake
start_gateway gw "$FAKE_PORT" "$THREADS" --store "redis://127.0.0.1:$REDIS_PORT" --memory-max 2
GW_URL="http://127.0.0.1:$GW_PORT/v1/chat/completions"

# Prefill one answer, check that the repeat is a hit with the same bytes and
# that it came from Redis (the memory tier holds nothing).
static_body >"$BENCH_TMP/request.json"
REQ_BYTES=$(wc -c <"$BENCH_TMP/request.json")
post() { curl -fsS -o "$1" -D "$1.h" -H 'Content-Type: application/json' --data-binary @"$BENCH_TMP/request.json" "$GW_URL"; }
post "$BENCH_TMP/miss.json"
grep -qi '^x-llmcache: miss' "$BENCH_TMP/miss.json.h" || die "prefill was not a miss"
post "$BENCH_TMP/hit.json"
grep -qi '^x-llmcache: hit' "$BENCH_TMP/hit.json.h" || die "second request was not a hit"
cmp -s "$BENCH_TMP/miss.json" "$BENCH_TMP/hit.json" || die "hit body differs from the miss body"
[[ "$(gw_entries "$GW_PORT")" == 0 ]] || die "the memory tier holds entries: hits would not read Redis"
ANS_BYTES=$(wc -c <"$BENCH_TMP/hit.json")
ENTRY_KEY="$(rcli --scan --pattern 'llmcache:e:*' | head -n1)"
[[ -n "$ENTRY_KEY" ]] || die "no entry in Redis after the prefill"
VALUE_BYTES=$(rcli HSTRLEN "$ENTRY_KEY" v)
ENTRY_MEM=$(rcli MEMORY USAGE "$ENTRY_KEY")
log "request $REQ_BYTES B, answer $ANS_BYTES B, Redis value (hash field v) $VALUE_BYTES B, entry hash $ENTRY_MEM B in Redis memory"

# redis-benchmark GETs the literal key "key:__rand_int__" (no -r): give it a
# value of the entry's size.
head -c "$VALUE_BYTES" /dev/zero | tr '\0' x | rcli -x SET key:__rand_int__ >/dev/null
[[ "$(rcli STRLEN key:__rand_int__)" == "$VALUE_BYTES" ]] || die "could not set the redis-benchmark key"

# ---- Redis cost per hit and per miss ---------------------------------------

# cost_run KIND COUNTER_FN wrk-args... : resets Redis's stats, runs wrk, and
# writes $BENCH_TMP/cost.KIND (one "name value" line per measure, per request).
cost_run() {
  local kind="$1" counter="$2" json n0 n1 c0 c1 g0 g1 out
  out="$BENCH_TMP/cost.$kind"
  shift 2
  wait_quiet "${QUIET_MAX:-30}"
  rcli CONFIG RESETSTAT >/dev/null
  n0=$("$counter" "$GW_PORT")
  c0=$(proc_cpu_ticks "$REDIS_REAL_PID"); g0=$(proc_cpu_ticks "$GW_REAL_PID")
  json=$(run_wrk "$BENCH_TMP/wrk.cost.$kind.txt" -t1 -c"$CONNS" -d"${COST_DURATION}s" "$@")
  c1=$(proc_cpu_ticks "$REDIS_REAL_PID"); g1=$(proc_cpu_ticks "$GW_REAL_PID")
  n1=$("$counter" "$GW_PORT")
  local n=$((n1 - n0))
  ((n > 0)) || die "no ${kind}es counted"
  {
    echo "requests $n"
    echo "rps $(json_get "$json" rps)"
    echo "redis_cpu_us $(calc "1e6 * ($c1 - $c0) / $CLK_TCK / $n")"
    echo "gw_cpu_us $(calc "1e6 * ($g1 - $g0) / $CLK_TCK / $n")"
    echo "net_in_bytes $(calc "$(info_field stats total_net_input_bytes) / $n")"
    echo "net_out_bytes $(calc "$(info_field stats total_net_output_bytes) / $n")"
    # Commands as Redis counts them (scripts' inner calls included; the INFO
    # calls of this script are left out).
    rcli INFO commandstats | tr -d '\r' | grep '^cmdstat_' | grep -v -e '^cmdstat_info:' -e '^cmdstat_config' |
      sed -E 's/^cmdstat_([^:]+):calls=([0-9]+),usec=([0-9]+).*/\1 \2 \3/' |
      awk -v n="$n" '{ printf "cmd:%s %.4f %.2f\n", $1, $2 / n, $3 / n }'
  } >"$out"
  log "$kind cost: $n requests at $(json_get "$json" rps) req/s; $(grep -c '^cmd:' "$out") commands"
}

log "warm-up ${WARMUP}s"
timeout $((WARMUP + 30)) wrk -t1 -c"$CONNS" -d"${WARMUP}s" -s "$LUA_DIR/post_static.lua" "$GW_URL" -- "$REQ_TEMPLATE" >/dev/null
cost_run hit gw_hits --latency -s "$LUA_DIR/post_static.lua" "$GW_URL" -- "$REQ_TEMPLATE"
cost_run miss gw_misses --latency -s "$LUA_DIR/post_unique.lua" "$GW_URL" -- "$REQ_TEMPLATE" "cost-$$-$RANDOM"

# ---- hit throughput vs redis-benchmark GET -----------------------------------

# One measured run -> appends "rps p50_ms p99_ms server_cpu% redis_cpu%" to res.SIDE
gw_run() {
  local out="$BENCH_TMP/wrk.gw.$1.txt" json t0 t1 r0 r1 h0 h1
  wait_quiet "${QUIET_MAX:-30}"
  h0=$(gw_hits "$GW_PORT"); t0=$(proc_cpu_ticks "$GW_REAL_PID"); r0=$(proc_cpu_ticks "$REDIS_REAL_PID")
  json=$(run_wrk "$out" -t1 -c"$CONNS" -d"${DURATION}s" --latency -s "$LUA_DIR/post_static.lua" "$GW_URL" -- "$REQ_TEMPLATE")
  h1=$(gw_hits "$GW_PORT"); t1=$(proc_cpu_ticks "$GW_REAL_PID"); r1=$(proc_cpu_ticks "$REDIS_REAL_PID")
  local req secs errs
  req=$(json_get "$json" requests); secs=$(json_get "$json" duration_s)
  errs=$(node -e 'const o=JSON.parse(process.argv[1]);console.log(o.err_connect+o.err_read+o.err_write+o.err_status+o.err_timeout)' "$json")
  [[ "$errs" == 0 ]] || die "gateway run had $errs errors: $json"
  local d=$((h1 - h0))
  ((d >= req && d <= req + CONNS)) || die "gateway counted $d hits for $req wrk requests"
  printf '%s %s %s %s %s\n' "$(json_get "$json" rps)" "$(json_get "$json" p50_ms)" "$(json_get "$json" p99_ms)" \
    "$(calc "100 * ($t1 - $t0) / $CLK_TCK / $secs")" "$(calc "100 * ($r1 - $r0) / $CLK_TCK / $secs")" >>"$BENCH_TMP/res.gw"
  log "gateway (Redis hit) c=$CONNS: $(tail -n1 "$BENCH_TMP/res.gw")"
}
RB_REQUESTS=200000
rb_run() {
  local out="$BENCH_TMP/rb.$1.csv" r0 r1 s0 s1
  wait_quiet "${QUIET_MAX:-30}"
  r0=$(proc_cpu_ticks "$REDIS_REAL_PID"); s0=$(date +%s.%N)
  timeout 300 redis-benchmark -p "$REDIS_PORT" -t get -d "$VALUE_BYTES" -c "$CONNS" -n "$RB_REQUESTS" --csv >"$out" 2>&1 ||
    { cat "$out" >&2; die "redis-benchmark failed"; }
  r1=$(proc_cpu_ticks "$REDIS_REAL_PID"); s1=$(date +%s.%N)
  # "GET","rps","avg","min","p50","p95","p99","max"
  local row
  row=$(tr -d '"' <"$out" | awk -F, '$1=="GET"{print $2, $5, $7}')
  [[ -n "$row" ]] || { cat "$out" >&2; die "redis-benchmark printed no GET row"; }
  printf '%s - %s\n' "$row" "$(calc "100 * ($r1 - $r0) / $CLK_TCK / ($s1 - $s0)")" >>"$BENCH_TMP/res.rb"
  log "redis-benchmark GET -d $VALUE_BYTES -c $CONNS: $(tail -n1 "$BENCH_TMP/res.rb")"
}

# Size redis-benchmark's request count to about DURATION seconds.
rb_run calibrate
RB_REQUESTS=$(awk -v r="$(awk '{print $1}' "$BENCH_TMP/res.rb")" -v d="$DURATION" 'BEGIN{printf "%d", r * d}')
: >"$BENCH_TMP/res.rb"
for r in $(seq "$RUNS"); do
  if ((r % 2)); then gw_run "$r"; rb_run "$r"; else rb_run "$r"; gw_run "$r"; fi
done
[[ "$(gw_entries "$GW_PORT")" == 0 ]] || die "the memory tier filled during the run"

# ---- report -----------------------------------------------------------------

col() { awk -v c="$2" '{print $c}' "$1"; }
med() { median $(col "$1" "$2"); }
all() { col "$1" "$2" | awk '{printf "%s%.0f", (NR>1?", ":""), $1}'; }
f0() { awk -v x="$1" 'BEGIN{printf "%.0f", x}'; }
f1() { awk -v x="$1" 'BEGIN{printf "%.1f", x}'; }
f3() { awk -v x="$1" 'BEGIN{printf "%.3f", x}'; }
cost() { awk -v k="$2" '$1==k{print $2}' "$BENCH_TMP/cost.$1"; }
# The commands RedisStore's and RedisFlight's Lua scripts call
# (src/store/redis_*.cc). Redis counts a script's inner calls in
# commandstats too, and the script's own usec includes theirs: top-level
# requests are the scripts plus every other command. SET is left out: a
# miss's flight lock is a top-level SET NX, and the one script that calls SET
# (resetting a drifted byte count on erase) does so rarely.
SCRIPT_INNER='^(decrby|del|get|hdel|hget|hincrby|hlen|hmget|hset|hstrlen|incrby|pexpire|pttl|type|zadd|zrem)$'
# sum_cmds KIND top|all COLUMN -> sum of per-request calls (2) or usec (3)
sum_cmds() {
  awk -v inner="$SCRIPT_INNER" -v which="$2" -v c="$3" '/^cmd:/{
      name = substr($1, 5); script = (name == "evalsha" || name == "eval")
      if (which == "top" && name ~ inner) next
      if (which == "all" && script) next
      s += $c } END{printf "%.2f", s}' "$BENCH_TMP/cost.$1"
}
round_trips() { sum_cmds "$1" top 2; }
cmds_total() { sum_cmds "$1" all 2; }
usec_total() { sum_cmds "$1" top 3; }

gr=$(med "$BENCH_TMP/res.gw" 1); rr=$(med "$BENCH_TMP/res.rb" 1)
RATIO=$(ratio "$gr" "$rr")
{
  echo "### Shared Redis tier: hits that read Redis, vs redis-benchmark GET"
  echo
  echo "$(machine_summary); redis-server $(redis-server --version | sed -E 's/.*v=([^ ]+).*/\1/') (1 thread, no persistence)."
  echo "Gateway --threads $THREADS, \`--store redis://...\` with \`--memory-max 2\` (the memory tier refuses every entry, so every hit reads Redis; checked: 0 memory-tier entries after the run)."
  echo "wrk -t1 -c$CONNS POSTs one ${REQ_BYTES}-byte chat request (an exact hit); redis-benchmark -t get -d $VALUE_BYTES -c $CONNS GETs a value the size of the cached entry's encoding ($VALUE_BYTES B; the answer is $ANS_BYTES B; the entry's hash takes $ENTRY_MEM B of Redis memory)."
  echo "${DURATION}s per run, $RUNS runs per side interleaved, median shown. All processes share the 2 cores."
  ((BENCH_NOISE_WARNINGS == 0)) || echo "Note: $BENCH_NOISE_WARNINGS run(s) started while the machine was busy with other work."
  echo
  echo "| client | req/s | p50 ms | p99 ms | gateway CPU % | redis-server CPU % | runs req/s |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | --- |"
  echo "| llmcache hit via Redis (wrk POST) | $(f0 "$gr") | $(f3 "$(med "$BENCH_TMP/res.gw" 2)") | $(f3 "$(med "$BENCH_TMP/res.gw" 3)") | $(f0 "$(med "$BENCH_TMP/res.gw" 4)") | $(f0 "$(med "$BENCH_TMP/res.gw" 5)") | $(all "$BENCH_TMP/res.gw" 1) |"
  echo "| redis-benchmark GET | $(f0 "$rr") | $(f3 "$(med "$BENCH_TMP/res.rb" 2)") | $(f3 "$(med "$BENCH_TMP/res.rb" 3)") | - | $(f0 "$(med "$BENCH_TMP/res.rb" 5)") | $(all "$BENCH_TMP/res.rb" 1) |"
  echo
  echo "Throughput ratio gateway/redis-benchmark: **$RATIO** (target >= 0.5: $(ge "$RATIO" 0.5))."
  echo
  echo "#### Redis cost per request (${COST_DURATION}s runs at $CONNS connections; INFO deltas / gateway-counted requests)"
  echo
  echo "| | hit (memory tier cold) | miss (unique prompts) |"
  echo "| --- | ---: | ---: |"
  echo "| requests measured | $(cost hit requests) | $(cost miss requests) |"
  echo "| req/s during the run | $(f0 "$(cost hit rps)") | $(f0 "$(cost miss rps)") |"
  echo "| requests to Redis (scripts + other commands) | $(round_trips hit) | $(round_trips miss) |"
  echo "| Redis commands executed (inside scripts included) | $(cmds_total hit) | $(cmds_total miss) |"
  echo "| µs inside Redis commands (commandstats) | $(usec_total hit) | $(usec_total miss) |"
  echo "| redis-server CPU µs (process time) | $(f1 "$(cost hit redis_cpu_us)") | $(f1 "$(cost miss redis_cpu_us)") |"
  echo "| gateway CPU µs (process time; misses include the upstream exchange) | $(f1 "$(cost hit gw_cpu_us)") | $(f1 "$(cost miss gw_cpu_us)") |"
  echo "| bytes to Redis | $(f0 "$(cost hit net_in_bytes)") | $(f0 "$(cost miss net_in_bytes)") |"
  echo "| bytes from Redis | $(f0 "$(cost hit net_out_bytes)") | $(f0 "$(cost miss net_out_bytes)") |"
  echo
  echo "Per command (calls per request, µs per request):"
  echo
  echo "| command | hit calls | hit µs | miss calls | miss µs |"
  echo "| --- | ---: | ---: | ---: | ---: |"
  join -a1 -a2 -e 0 -o 0,1.2,1.3,2.2,2.3 \
    <(grep '^cmd:' "$BENCH_TMP/cost.hit" | sed 's/^cmd://' | sort) \
    <(grep '^cmd:' "$BENCH_TMP/cost.miss" | sed 's/^cmd://' | sort) |
    awk '{printf "| %s | %s | %s | %s | %s |\n", toupper($1), $2, $3, $4, $5}'
  echo
  echo "redis-benchmark GET for comparison: redis-server CPU per GET $(f1 "$(awk -v c="$(med "$BENCH_TMP/res.rb" 5)" -v r="$rr" 'BEGIN{print (r>0 ? c*1e4/r : 0)}')") µs."
} >"$BENCH_TMP/report.md"
cat "$BENCH_TMP/report.md"

if [[ -n "${BENCH_SUMMARY:-}" ]]; then
  echo "ROW|Redis-tier hit throughput, $CONNS conns, threads $THREADS|gateway $(f0 "$gr") req/s vs redis-benchmark GET $(f0 "$rr") req/s|**$RATIO**|>= 0.5|$(ge "$RATIO" 0.5)" >>"$BENCH_SUMMARY"
fi
