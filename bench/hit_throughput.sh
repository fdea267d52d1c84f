#!/usr/bin/env bash
# Benchmark 1: exact-hit throughput and latency of the gateway, as a ratio to
# nginx serving the same answer bytes as a static file, in the same run.
#
#   bench/hit_throughput.sh
#
# Environment (defaults in brackets):
#   THREADS [1]       gateway --threads and nginx worker_processes (the same)
#   WRK_THREADS [1]   wrk -t
#   CONNS [64]        wrk -c for the throughput runs
#   LAT_CONNS [4]     wrk -c for the light-load latency runs (0: skip them)
#   DURATION [10]     seconds per measured run
#   RUNS [3]          measured runs per server and phase (interleaved)
#   WARMUP [3]        seconds of unmeasured warm-up per server
#   LLMCACHE_BIN, REQ_TEMPLATE, KEEP_TMP=1, BENCH_SUMMARY (file to append
#   "ROW|..." summary lines to, used by bench/run-all)
#
# wrk POSTs the ~1 KB chat request to the gateway (an exact hit after one
# prefill request) and GETs /answer.json from nginx (nginx's static module
# answers POST with 405): the response bytes are identical; the gateway also
# reads a ~1 KB request body per request, which nginx does not.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

THREADS="${THREADS:-1}"
WRK_THREADS="${WRK_THREADS:-1}"
CONNS="${CONNS:-64}"
LAT_CONNS="${LAT_CONNS:-4}"
DURATION="${DURATION:-10}"
RUNS="${RUNS:-3}"
WARMUP="${WARMUP:-3}"

bench_init hit
start_fake fake
start_gateway gw "$FAKE_PORT" "$THREADS"
GW_URL="http://127.0.0.1:$GW_PORT/v1/chat/completions"

# Prefill with one request, then check that the same request is a hit.
static_body >"$BENCH_TMP/request.json"
REQ_BYTES=$(wc -c <"$BENCH_TMP/request.json")
curl -fsS -o "$BENCH_TMP/miss.json" -D "$BENCH_TMP/miss.h" -H 'Content-Type: application/json' \
  --data-binary @"$BENCH_TMP/request.json" "$GW_URL"
grep -qi '^x-llmcache: miss' "$BENCH_TMP/miss.h" || die "prefill was not a miss"
curl -fsS -o "$BENCH_TMP/answer.json" -D "$BENCH_TMP/hit.h" -H 'Content-Type: application/json' \
  --data-binary @"$BENCH_TMP/request.json" "$GW_URL"
grep -qi '^x-llmcache: hit' "$BENCH_TMP/hit.h" || die "second request was not a hit"
cmp -s "$BENCH_TMP/miss.json" "$BENCH_TMP/answer.json" || die "hit body differs from the miss body"
ANS_BYTES=$(wc -c <"$BENCH_TMP/answer.json")
log "request $REQ_BYTES B, cached answer $ANS_BYTES B"

start_nginx nginx "$THREADS" static "$BENCH_TMP/answer.json"
NG_URL="http://127.0.0.1:$NGINX_PORT/answer.json"
curl -fsS -o "$BENCH_TMP/nginx.json" "$NG_URL"
cmp -s "$BENCH_TMP/nginx.json" "$BENCH_TMP/answer.json" || die "nginx serves different bytes"

GW_HEAD=$(curl -fsS -D - -o /dev/null -H 'Content-Type: application/json' --data-binary @"$BENCH_TMP/request.json" "$GW_URL" | wc -c)
NG_HEAD=$(curl -fsS -D - -o /dev/null "$NG_URL" | wc -c)
log "response header bytes: gateway $GW_HEAD, nginx $NG_HEAD"

# PIN_SERVER_CPU / PIN_WRK_CPU: give the server and wrk a core each, so the
# two never preempt each other (what a load balancer and a server on
# separate machines see).
if [[ -n "${PIN_SERVER_CPU:-}" ]]; then
  taskset -a -p -c "$PIN_SERVER_CPU" "$GW_REAL_PID" >/dev/null
  for p in $NGINX_MASTER $(pgrep -P "$NGINX_MASTER"); do taskset -a -p -c "$PIN_SERVER_CPU" "$p" >/dev/null; done
fi

server_pids() { # the processes whose CPU time we account to a server
  case "$1" in
    gw) echo "$GW_REAL_PID" ;;
    nginx) echo "$NGINX_MASTER $(pgrep -P "$NGINX_MASTER" | tr '\n' ' ')" ;;
  esac
}
cpu_ticks() { local s=0 p; for p in $(server_pids "$1"); do s=$((s + $(proc_cpu_ticks "$p"))); done; echo $s; }
CLK_TCK=$(getconf CLK_TCK)

# one_run SERVER CONNS TAG -> appends "rps p50 p99 server_cpu% server_us/req wrk_cpu%"
# to $BENCH_TMP/res.SERVER.TAG
RUN_NO=0
one_run() { run_checked one_attempt "$@"; }
one_attempt() {
  local srv="$1" conns="$2" tag="$3" json t0 t1 out
  local hits0 hits1
  RUN_NO=$((RUN_NO + 1))
  out="$BENCH_TMP/wrk.$srv.$tag.$RUN_NO.txt"
  wait_quiet "${QUIET_MAX:-30}"
  t0=$(cpu_ticks "$srv")
  if [[ "$srv" == gw ]]; then
    hits0=$(gw_hits "$GW_PORT")
    json=$(run_wrk "$out" -t"$WRK_THREADS" -c"$conns" -d"${DURATION}s" \
      --latency -s "$LUA_DIR/post_static.lua" "$GW_URL" -- "$REQ_TEMPLATE")
    hits1=$(gw_hits "$GW_PORT")
  else
    json=$(run_wrk "$out" -t"$WRK_THREADS" -c"$conns" -d"${DURATION}s" \
      --latency -s "$LUA_DIR/get.lua" "$NG_URL")
  fi
  t1=$(cpu_ticks "$srv")
  local req errs secs
  req=$(json_get "$json" requests)
  secs=$(json_get "$json" duration_s)
  errs=$(node -e 'const o=JSON.parse(process.argv[1]);console.log(o.err_connect+o.err_read+o.err_write+o.err_status+o.err_timeout)' "$json")
  [[ "$errs" == 0 ]] || die "$srv run had $errs errors: $json"
  if [[ "$srv" == gw ]]; then
    # Every response wrk counted must be a cache hit (a few in-flight ones at
    # the end are counted by the gateway but not by wrk).
    local d=$((hits1 - hits0))
    ((d >= req && d <= req + conns)) || die "gateway counted $d hits for $req wrk requests"
  fi
  local cpu us wcpu
  cpu=$(calc "100 * ($t1 - $t0) / $CLK_TCK / $secs")
  us=$(calc "1e6 * ($t1 - $t0) / $CLK_TCK / $req")
  wcpu=$(calc "100 * $(cat "$out.cpu") / $secs")
  printf '%s %s %s %s %s %s\n' "$(json_get "$json" rps)" "$(json_get "$json" p50_ms)" \
    "$(json_get "$json" p99_ms)" "$cpu" "$us" "$wcpu" >>"$BENCH_TMP/res.$srv.$tag"
  LAST_RES_FILE="$BENCH_TMP/res.$srv.$tag"
  LAST_SHARE=$(calc "$cpu + $wcpu")
  log "$srv c=$conns: $(json_get "$json" rps) req/s, p50 $(json_get "$json" p50_ms) ms, p99 $(json_get "$json" p99_ms) ms, server CPU $cpu% ($us us/req), wrk CPU $wcpu%"
}

log "warm-up ${WARMUP}s each"
timeout $((WARMUP + 30)) wrk -t"$WRK_THREADS" -c"$CONNS" -d"${WARMUP}s" -s "$LUA_DIR/post_static.lua" "$GW_URL" -- "$REQ_TEMPLATE" >/dev/null
timeout $((WARMUP + 30)) wrk -t"$WRK_THREADS" -c"$CONNS" -d"${WARMUP}s" "$NG_URL" >/dev/null

phases=("$CONNS")
((LAT_CONNS > 0)) && phases+=("$LAT_CONNS")
for conns in "${phases[@]}"; do
  for r in $(seq "$RUNS"); do
    # Alternate the order so that neither server always runs first.
    if ((r % 2)); then one_run gw "$conns" "c$conns"; one_run nginx "$conns" "c$conns"
    else one_run nginx "$conns" "c$conns"; one_run gw "$conns" "c$conns"; fi
  done
done

col() { awk -v c="$2" '{print $c}' "$1"; }
med() { median $(col "$1" "$2"); }
all() { col "$1" "$2" | awk '{printf "%s%s", (NR>1?", ":""), $1}'; }
f3() { awk -v x="$1" 'BEGIN{printf "%.3f", x}'; }
f1() { awk -v x="$1" 'BEGIN{printf "%.1f", x}'; }
f0() { awk -v x="$1" 'BEGIN{printf "%.0f", x}'; }

GW_RSS=$(proc_rss_mb "$GW_REAL_PID")
gr=$(med "$BENCH_TMP/res.gw.c$CONNS" 1); nr=$(med "$BENCH_TMP/res.nginx.c$CONNS" 1)
gp99=$(med "$BENCH_TMP/res.gw.c$CONNS" 3); np99=$(med "$BENCH_TMP/res.nginx.c$CONNS" 3)
rr=$(ratio "$gr" "$nr")
gus=$(med "$BENCH_TMP/res.gw.c$CONNS" 5); nus=$(med "$BENCH_TMP/res.nginx.c$CONNS" 5)
er=$(ratio "$nus" "$gus")
if ((LAT_CONNS > 0)); then
  lp99=$(med "$BENCH_TMP/res.gw.c$LAT_CONNS" 3); lnp99=$(med "$BENCH_TMP/res.nginx.c$LAT_CONNS" 3)
fi
{
  echo "### Exact-hit throughput (gateway vs nginx static file)"
  echo
  echo "$(machine_summary). Gateway --threads $THREADS, nginx worker_processes $THREADS;"
  echo "wrk -t$WRK_THREADS, ${DURATION}s per run, $RUNS runs per server interleaved, median shown."
  ((BENCH_NOISE_WARNINGS == 0)) || echo "Note: $BENCH_NOISE_WARNINGS run(s) started while the machine was busy with other work (see the log)."
  ((BENCH_RETRIES == 0)) || echo "$BENCH_RETRIES run(s) were repeated because the server and wrk together got < ${VALID_CPU_PCT}% CPU (another job took the cores)."
  ((BENCH_KEPT_NOISY == 0)) || echo "WARNING: $BENCH_KEPT_NOISY run(s) kept although still starved after $MAX_RETRIES repeats."
  echo "Request $REQ_BYTES B (gateway POST), answer $ANS_BYTES B (both); response headers: gateway $GW_HEAD B, nginx $NG_HEAD B. Gateway RSS ${GW_RSS} MiB."
  echo "CPU % is of one core over the run; µs/req is the server's CPU time per request."
  echo
  echo "| connections | server | req/s | p50 ms | p99 ms | server CPU % | server CPU µs/req | wrk CPU % | runs req/s |"
  echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
  for conns in "${phases[@]}"; do
    for srv in gw nginx; do
      f="$BENCH_TMP/res.$srv.c$conns"
      name=$([[ $srv == gw ]] && echo "llmcache (POST, hit)" || echo "nginx (GET, static file)")
      echo "| $conns | $name | $(f0 "$(med "$f" 1)") | $(f3 "$(med "$f" 2)") | $(f3 "$(med "$f" 3)") | $(f0 "$(med "$f" 4)") | $(f1 "$(med "$f" 5)") | $(f0 "$(med "$f" 6)") | $(all "$f" 1) |"
    done
  done
  echo
  echo "Throughput ratio gateway/nginx at $CONNS connections: **$rr** (target >= 0.5: $(ge "$rr" 0.5))."
  echo "CPU per request at $CONNS connections: gateway $(f1 "$gus") µs, nginx $(f1 "$nus") µs; nginx/gateway = **$er** (the throughput ratio if each had a core to itself and wrk were not a limit)."
  echo "Hit p99 at $CONNS connections: $(f3 "$gp99") ms (nginx $(f3 "$np99") ms, ratio $(ratio "$gp99" "$np99")); target <= 2 ms: $(le "$gp99" 2)."
  if ((LAT_CONNS > 0)); then
    echo "Hit p99 at $LAT_CONNS connections: $(f3 "$lp99") ms (nginx $(f3 "$lnp99") ms, ratio $(ratio "$lp99" "$lnp99")); target <= 2 ms: $(le "$lp99" 2)."
  fi
} >"$BENCH_TMP/report.md"
cat "$BENCH_TMP/report.md"

if [[ -n "${BENCH_SUMMARY:-}" ]]; then
  {
    echo "ROW|Hit throughput, $CONNS conns, threads $THREADS|gateway $(f0 "$gr") req/s vs nginx $(f0 "$nr") req/s|**$rr**|>= 0.5|$(ge "$rr" 0.5)"
    echo "ROW|Hit CPU per request, $CONNS conns|gateway $(f1 "$gus") µs vs nginx $(f1 "$nus") µs|$er (nginx/gateway)|(>= 0.5, same idea)|$(ge "$er" 0.5)"
    echo "ROW|Hit p99, $CONNS conns|$(f3 "$gp99") ms (nginx $(f3 "$np99") ms)|$(ratio "$gp99" "$np99") of nginx|<= 2 ms|$(le "$gp99" 2)"
    if ((LAT_CONNS > 0)); then
      echo "ROW|Hit p99, $LAT_CONNS conns|$(f3 "$lp99") ms (nginx $(f3 "$lnp99") ms)|$(ratio "$lp99" "$lnp99") of nginx|<= 2 ms|$(le "$lp99" 2)"
    fi
  } >>"$BENCH_SUMMARY"
fi
