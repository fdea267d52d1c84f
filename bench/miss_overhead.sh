#!/usr/bin/env bash
# Benchmark 2: latency the gateway adds to a cache miss, against calling the
# fake upstream directly, in the same run.
#
#   bench/miss_overhead.sh
#
# Every request has a body of its own (post_unique.lua puts a run tag and a
# counter into the prompt), so every request through the gateway is an honest
# miss: lookup in memory and RocksDB, upstream call, insert into both tiers.
# The direct runs send the same kind of bodies to the fake upstream. A third
# target, nginx as a plain reverse proxy (no cache, keep-alive upstream) in
# front of the same fake, shows what one proxy hop costs on this machine.
#
# With DECOMPOSE=1 a second phase (at the first CONNS_LIST value) sends the
# same unique requests through the gateway with Cache-Control variants, to
# split the miss cost: "no-cache, no-store" (no lookup, no insert: the
# gateway as a bare proxy), "no-store" (lookup only), "no-cache" (insert
# only).
#
# Environment (defaults in brackets):
#   THREADS [1]          gateway --threads (and nginx worker_processes)
#   CONNS_LIST ["1 4"]   wrk -c values (one wrk thread): latency, not throughput
#   DURATION [10]        seconds per measured run
#   RUNS [3]             runs per target and concurrency, interleaved
#   WARMUP [3]           seconds of unmeasured warm-up per target
#   NGINX_PROXY [1]      also measure the nginx reverse-proxy reference
#   DECOMPOSE [1]        also run the Cache-Control decomposition phase
#   LLMCACHE_BIN, REQ_TEMPLATE, KEEP_TMP=1, BENCH_SUMMARY, QUIET_MAX [30]
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

THREADS="${THREADS:-1}"
CONNS_LIST="${CONNS_LIST:-1 4}"
DURATION="${DURATION:-10}"
RUNS="${RUNS:-3}"
WARMUP="${WARMUP:-3}"
NGINX_PROXY="${NGINX_PROXY:-1}"
DECOMPOSE="${DECOMPOSE:-1}"
FIRST_CONNS=${CONNS_LIST%% *}

bench_init miss
start_fake fake
start_gateway gw "$FAKE_PORT" "$THREADS"
GW_URL="http://127.0.0.1:$GW_PORT/v1/chat/completions"
UP_URL="http://127.0.0.1:$FAKE_PORT/v1/chat/completions"

# A unique body through the gateway is a miss, and a second time a hit.
sed "s/@@ID@@/probe-$$-$RANDOM/" "$REQ_TEMPLATE" | tr -d '\n' >"$BENCH_TMP/probe.json"
for want in miss hit; do
  curl -fsS -o /dev/null -D "$BENCH_TMP/probe.h" -H 'Content-Type: application/json' \
    --data-binary @"$BENCH_TMP/probe.json" "$GW_URL"
  grep -qi "^x-llmcache: $want" "$BENCH_TMP/probe.h" || die "probe request was not a $want"
done
ANS_BYTES=$(curl -fsS -H 'Content-Type: application/json' --data-binary @"$BENCH_TMP/probe.json" "$UP_URL" | wc -c)
REQ_BYTES=$(wc -c <"$BENCH_TMP/probe.json")
log "request ~$REQ_BYTES B, answer ~$ANS_BYTES B"

TARGETS=(direct gw)
if ((NGINX_PROXY)); then
  start_nginx proxy "$THREADS" proxy "$FAKE_PORT"
  PX_URL="http://127.0.0.1:$NGINX_PORT/v1/chat/completions"
  curl -fsS -o "$BENCH_TMP/px.json" -H 'Content-Type: application/json' --data-binary @"$BENCH_TMP/probe.json" "$PX_URL"
  [[ $(wc -c <"$BENCH_TMP/px.json") -eq $ANS_BYTES ]] || die "the nginx proxy answers differently"
  TARGETS=(direct proxy gw)
fi

declare -A NAME=(
  [direct]="fake upstream directly"
  [proxy]="nginx reverse proxy, no cache (reference hop)"
  [gw]="llmcache, every request a miss"
  [gw_pass]="llmcache, no-cache + no-store (no lookup, no insert)"
  [gw_lookup]="llmcache, no-store (lookup, no insert)"
  [gw_store]="llmcache, no-cache (no lookup, insert)"
)
declare -A HEADER=([gw_pass]="Cache-Control: no-cache, no-store" [gw_lookup]="Cache-Control: no-store" [gw_store]="Cache-Control: no-cache")

CLK_TCK=$(getconf CLK_TCK)
target_pids() {
  case "$1" in
    gw*) echo "$GW_REAL_PID" ;;
    proxy) echo "$NGINX_MASTER $(pgrep -P "$NGINX_MASTER" | tr '\n' ' ')" ;;
    direct) echo "$(pgrep -P "$FAKE_PID" | head -n1)" ;;
  esac
}
cpu_ticks() { local s=0 p; for p in $(target_pids "$1"); do s=$((s + $(proc_cpu_ticks "$p"))); done; echo $s; }

RUN_NO=0
# one_run TARGET CONNS -> appends "p50 p99 rps mean cpu_us_per_req" to res.TARGET.cCONNS
# (cpu: the gateway's, nginx's or the fake's CPU time per request)
one_run() {
  local tgt="$1" conns="$2" url json
  RUN_NO=$((RUN_NO + 1))
  local tag="r$RUN_NO-$tgt-$$-$RANDOM"
  case "$tgt" in gw*) url="$GW_URL" ;; proxy) url="$PX_URL" ;; *) url="$UP_URL" ;; esac
  local hdr=()
  [[ -n "${HEADER[$tgt]:-}" ]] && hdr=("${HEADER[$tgt]}")
  wait_quiet "${QUIET_MAX:-30}"
  local c0 h0 c1 h1 t0 t1
  c0=$(($(gw_misses "$GW_PORT") + $(gw_bypasses "$GW_PORT"))); h0=$(gw_hits "$GW_PORT"); t0=$(cpu_ticks "$tgt")
  json=$(run_wrk "$BENCH_TMP/wrk.$tgt.c$conns.$RUN_NO.txt" -t1 -c"$conns" -d"${DURATION}s" --latency \
    -s "$LUA_DIR/post_unique.lua" "$url" -- "$REQ_TEMPLATE" "$tag" "${hdr[@]}")
  c1=$(($(gw_misses "$GW_PORT") + $(gw_bypasses "$GW_PORT"))); h1=$(gw_hits "$GW_PORT"); t1=$(cpu_ticks "$tgt")
  local req errs
  req=$(json_get "$json" requests)
  errs=$(node -e 'const o=JSON.parse(process.argv[1]);console.log(o.err_connect+o.err_read+o.err_write+o.err_status+o.err_timeout)' "$json")
  [[ "$errs" == 0 ]] || die "$tgt run had $errs errors: $json"
  if [[ $tgt == gw* ]]; then
    ((h1 == h0)) || die "the gateway served $((h1 - h0)) hits in a miss run"
    local d=$((c1 - c0))
    ((d >= req && d <= req + conns)) || die "gateway counted $d misses/bypasses for $req wrk requests"
  fi
  local us
  us=$(calc "1e6 * ($t1 - $t0) / $CLK_TCK / $req")
  printf '%s %s %s %s %s\n' "$(json_get "$json" p50_ms)" "$(json_get "$json" p99_ms)" \
    "$(json_get "$json" rps)" "$(json_get "$json" mean_ms)" "$us" >>"$BENCH_TMP/res.$tgt.c$conns"
  log "$tgt c=$conns: p50 $(json_get "$json" p50_ms) ms, p99 $(json_get "$json" p99_ms) ms, $(json_get "$json" rps) req/s, ${us} CPU us/req"
}

log "warm-up ${WARMUP}s each"
warm() { timeout $((WARMUP + 30)) wrk -t1 -c4 -d"${WARMUP}s" -s "$LUA_DIR/post_unique.lua" "$1" -- "$REQ_TEMPLATE" "warm-$2-$$" >/dev/null; }
warm "$UP_URL" up
warm "$GW_URL" gw
((NGINX_PROXY)) && warm "$PX_URL" px

# rotate_runs CONNS TARGET... : RUNS rounds, the order rotating every round.
rotate_runs() {
  local conns="$1" r k
  shift
  local t=("$@") n=$#
  for r in $(seq "$RUNS"); do
    for k in $(seq 0 $((n - 1))); do one_run "${t[$(((k + r) % n))]}" "$conns"; done
  done
}
for conns in $CONNS_LIST; do rotate_runs "$conns" "${TARGETS[@]}"; done
DTARGETS=()
if ((DECOMPOSE)); then
  DTARGETS=(direct gw_pass gw_lookup gw_store)
  rotate_runs "$FIRST_CONNS" gw_pass gw_lookup gw_store
fi

col() { awk -v c="$2" '{print $c}' "$1"; }
med() { median $(col "$1" "$2"); }
all() { col "$1" "$2" | awk '{printf "%s%s", (NR>1?", ":""), $1}'; }
f3() { awk -v x="$1" 'BEGIN{printf "%.3f", x}'; }
f1() { awk -v x="$1" 'BEGIN{printf "%.1f", x}'; }
f0() { awk -v x="$1" 'BEGIN{printf "%.0f", x}'; }

row() { # row CONNS TARGET DIRECT_P50
  local conns="$1" tgt="$2" dp="$3" f p added="-" rr="-"
  f="$BENCH_TMP/res.$tgt.c$conns"
  p=$(med "$f" 1)
  if [[ $tgt != direct ]]; then added=$(f3 "$(calc "$p - $dp")"); rr=$(ratio "$p" "$dp"); fi
  [[ $tgt == gw ]] && added="**$added**"
  echo "| $conns | ${NAME[$tgt]} | $(f3 "$p") | $added | $rr | $(f3 "$(med "$f" 2)") | $(f0 "$(med "$f" 3)") | $(f1 "$(med "$f" 5)") | $(all "$f" 1) |"
}

ENTRIES=$(gw_entries "$GW_PORT")
dp=$(med "$BENCH_TMP/res.direct.c$FIRST_CONNS" 1); gp=$(med "$BENCH_TMP/res.gw.c$FIRST_CONNS" 1)
added=$(calc "$gp - $dp")
{
  echo "### Added latency of a miss (gateway vs fake upstream directly)"
  echo
  echo "$(machine_summary). Gateway --threads $THREADS$( ((NGINX_PROXY)) && echo ", nginx proxy worker_processes $THREADS"); wrk -t1, ${DURATION}s per run, $RUNS runs per target interleaved, median shown."
  ((BENCH_NOISE_WARNINGS == 0)) || echo "WARNING: $BENCH_NOISE_WARNINGS run(s) started while the machine was busy with other work."
  echo "Every request unique (request ~$REQ_BYTES B, answer ~$ANS_BYTES B); the gateway held $ENTRIES entries at the end."
  echo "CPU µs/req is the CPU time of the process(es) named in the row (fake, nginx, gateway) per request."
  echo
  echo "| connections | target | p50 ms | added p50 ms | p50 ratio to direct | p99 ms | req/s | CPU µs/req | runs p50 ms |"
  echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
  for conns in $CONNS_LIST; do
    cdp=$(med "$BENCH_TMP/res.direct.c$conns" 1)
    for tgt in "${TARGETS[@]}"; do row "$conns" "$tgt" "$cdp"; done
  done
  if ((DECOMPOSE)); then
    echo
    echo "Decomposition at $FIRST_CONNS connection(s) (same unique requests, Cache-Control variants; direct p50 from the runs above):"
    echo
    echo "| connections | target | p50 ms | added p50 ms | p50 ratio to direct | p99 ms | req/s | CPU µs/req | runs p50 ms |"
    echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
    for tgt in gw_pass gw_lookup gw_store gw; do row "$FIRST_CONNS" "$tgt" "$dp"; done
  fi
  echo
  echo "Added p50 latency of a miss at $FIRST_CONNS connection(s): **$(f3 "$added") ms** (target <= 0.3 ms: $(le "$added" 0.3)); gateway/direct p50 ratio $(ratio "$gp" "$dp")."
  if ((NGINX_PROXY)); then
    pp=$(med "$BENCH_TMP/res.proxy.c$FIRST_CONNS" 1)
    padded=$(calc "$pp - $dp")
    echo "For reference, nginx as a plain proxy adds $(f3 "$padded") ms at p50 here; the gateway adds $(ratio "$added" "$padded")x that."
  fi
} >"$BENCH_TMP/report.md"
cat "$BENCH_TMP/report.md"

if [[ -n "${BENCH_SUMMARY:-}" ]]; then
  px=""
  if ((NGINX_PROXY)); then
    pp=$(med "$BENCH_TMP/res.proxy.c$FIRST_CONNS" 1)
    px="; an nginx proxy hop adds $(f3 "$(calc "$pp - $dp")") ms"
  fi
  echo "ROW|Miss added p50, $FIRST_CONNS conn, threads $THREADS|direct $(f3 "$dp") ms, via gateway $(f3 "$gp") ms: **+$(f3 "$added") ms**$px|$(ratio "$gp" "$dp") (gateway/direct p50)|<= +0.3 ms|$(le "$added" 0.3)" >>"$BENCH_SUMMARY"
fi
