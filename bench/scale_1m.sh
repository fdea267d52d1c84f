#!/usr/bin/env bash
# Benchmark 3: hit latency with 1,000,000 stored entries against hit latency
# with 10,000, measured in the same run.
#
#   bench/scale_1m.sh
#
# Two gateways (same --threads, one fake upstream) are filled over HTTP with
# N_SMALL and N_LARGE distinct ~1 KB chat requests (post_keyed.lua "fill":
# request i has "key-<i>" in its prompt), so the entries sit in the memory
# tier and in RocksDB exactly as in production. Then wrk sends uniformly
# random keys i in [0, N) to each gateway, interleaved, every request a hit.
#
# Environment (defaults in brackets):
#   N_SMALL [10000], N_LARGE [1000000]
#   THREADS [1]          gateway --threads
#   FILL_CONNS [32]      wrk -c while filling
#   FILL_MAX [1500]      seconds allowed per fill before giving up
#   CONNS_LIST ["4 64"]  wrk -c values of the measured runs (one wrk thread)
#   DURATION [10]        seconds per measured run
#   RUNS [3]             runs per gateway and concurrency, interleaved
#   WARMUP [5]           seconds of unmeasured random hits per gateway
#   SETTLE_MAX [300]     seconds to wait for RocksDB flushes/compactions
#   REVISIT [1]          also pair fresh-key runs with revisits of the same
#                        keys at the first CONNS_LIST value (first-read cost)
#   LLMCACHE_BIN, REQ_TEMPLATE, KEEP_TMP=1, BENCH_SUMMARY, QUIET_MAX [30]
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

N_SMALL="${N_SMALL:-10000}"
N_LARGE="${N_LARGE:-1000000}"
THREADS="${THREADS:-1}"
FILL_CONNS="${FILL_CONNS:-32}"
FILL_MAX="${FILL_MAX:-1500}"
CONNS_LIST="${CONNS_LIST:-4 64}"
DURATION="${DURATION:-10}"
RUNS="${RUNS:-3}"
WARMUP="${WARMUP:-5}"
SETTLE_MAX="${SETTLE_MAX:-300}"
REVISIT="${REVISIT:-1}"

# ~2.6 KB of gateway RSS per entry was measured; insist on headroom.
need_mb=$(((N_LARGE + N_SMALL) * 4 / 1024 + 1024))
avail_mb=$(awk '/MemAvailable/{printf "%.0f", $2/1024}' /proc/meminfo)
((avail_mb >= need_mb)) || die "need ~${need_mb} MiB of available memory for $N_LARGE entries, have ${avail_mb} MiB"

bench_init scale
start_fake fake
start_gateway small "$FAKE_PORT" "$THREADS"
S_PORT=$GW_PORT S_PID=$GW_REAL_PID
start_gateway large "$FAKE_PORT" "$THREADS"
L_PORT=$GW_PORT L_PID=$GW_REAL_PID

url_of() { echo "http://127.0.0.1:$1/v1/chat/completions"; }

# fill PORT PID N NAME: sends keys 0..N-1 until the memory tier holds N entries.
fill() {
  local port="$1" pid="$2" n="$3" name="$4"
  local out="$BENCH_TMP/fill.$name.txt" start=$SECONDS last_log=$SECONDS entries=0
  wrk -t1 -c"$FILL_CONNS" -d"${FILL_MAX}s" -T10s -s "$LUA_DIR/post_keyed.lua" "$(url_of "$port")" \
    -- "$REQ_TEMPLATE" fill "$n" 1 >"$out" 2>&1 &
  local wpid=$!
  BENCH_PIDS+=("$wpid")
  while :; do
    sleep 1
    entries=$(gw_entries "$port")
    if ((entries >= n)); then break; fi
    if ! kill -0 "$wpid" 2>/dev/null; then
      cat "$out" >&2
      die "fill of $name ended with $entries of $n entries"
    fi
    if ((SECONDS - last_log >= 30)); then
      log "fill $name: $entries / $n entries, $((entries / (SECONDS - start + 1)))/s, RSS $(proc_rss_mb "$pid") MiB"
      last_log=$SECONDS
    fi
  done
  kill -INT "$wpid" 2>/dev/null || true
  wait "$wpid" 2>/dev/null || true
  local keep=() p
  for p in "${BENCH_PIDS[@]}"; do [[ "$p" == "$wpid" ]] || keep+=("$p"); done
  BENCH_PIDS=("${keep[@]}")
  local secs=$((SECONDS - start))
  FILL_SECS[$name]=$secs
  log "fill $name: $entries entries in ${secs}s ($((entries / (secs > 0 ? secs : 1)))/s), RSS $(proc_rss_mb "$pid") MiB"
  ((entries == n)) || die "$name holds $entries entries, expected $n"
}

# Waits until the gateway process itself is nearly idle (RocksDB flushes and
# compactions run on its background threads).
settle() {
  local pid="$1" name="$2" deadline=$((SECONDS + SETTLE_MAX)) a b
  while ((SECONDS < deadline)); do
    a=$(proc_cpu_ticks "$pid"); sleep 2; b=$(proc_cpu_ticks "$pid")
    if (((b - a) * 100 / (2 * $(getconf CLK_TCK)) < 3)); then
      log "$name settled"
      return 0
    fi
  done
  log "WARNING: $name still busy after ${SETTLE_MAX}s"
}

declare -A FILL_SECS
fill "$S_PORT" "$S_PID" "$N_SMALL" small
fill "$L_PORT" "$L_PID" "$N_LARGE" large
settle "$S_PID" small
settle "$L_PID" large

# A random key is a hit on both (spot check through curl: x-llmcache header).
for pn in "$S_PORT:$N_SMALL" "$L_PORT:$N_LARGE"; do
  port=${pn%%:*} n=${pn##*:}
  k=$((n - 1))
  sed "s/@@ID@@/key-$k/" "$REQ_TEMPLATE" | tr -d '\n' >"$BENCH_TMP/spot.json"
  curl -fsS -o /dev/null -D "$BENCH_TMP/spot.h" -H 'Content-Type: application/json' \
    --data-binary @"$BENCH_TMP/spot.json" "$(url_of "$port")"
  grep -qi '^x-llmcache: hit' "$BENCH_TMP/spot.h" || die "key-$k is not a hit on port $port"
done

CLK_TCK=$(getconf CLK_TCK)
SEED=1
# one_run small|large CONNS [TAG [SEED]] -> appends to res.NAME.cCONNS[.TAG];
# a run gets a fresh key sequence unless SEED is given (a revisit).
one_run() { run_checked one_attempt "$@"; }
one_attempt() {
  local name="$1" conns="$2" tag="${3:-}" port pid n json out
  if [[ $name == small ]]; then port=$S_PORT pid=$S_PID n=$N_SMALL; else port=$L_PORT pid=$L_PID n=$N_LARGE; fi
  if [[ -n "${4:-}" ]]; then SEED="$4"; else SEED=$((SEED + 1)); fi
  LAST_SEED[$name]=$SEED
  wait_quiet "${QUIET_MAX:-30}"
  local h0 m0 h1 m1 t0 t1 s0 s1 f0 f1
  h0=$(gw_hits "$port"); m0=$(gw_misses "$port"); t0=$(proc_cpu_ticks "$pid")
  s0=$(proc_sys_ticks "$pid"); f0=$(proc_minflt "$pid")
  out="$BENCH_TMP/wrk.$name.c$conns.$SEED.$RANDOM.txt"
  json=$(run_wrk "$out" -t1 -c"$conns" -d"${DURATION}s" --latency \
    -s "$LUA_DIR/post_keyed.lua" "$(url_of "$port")" -- "$REQ_TEMPLATE" random "$n" 1 "$SEED")
  h1=$(gw_hits "$port"); m1=$(gw_misses "$port"); t1=$(proc_cpu_ticks "$pid")
  s1=$(proc_sys_ticks "$pid"); f1=$(proc_minflt "$pid")
  local req
  req=$(json_get "$json" requests)
  ((m1 == m0)) || die "$name: $((m1 - m0)) misses during a hit run"
  ((h1 - h0 >= req && h1 - h0 <= req + conns)) || die "$name: $((h1 - h0)) hits for $req requests"
  local errs
  errs=$(node -e 'const o=JSON.parse(process.argv[1]);console.log(o.err_connect+o.err_read+o.err_write+o.err_status+o.err_timeout)' "$json")
  [[ "$errs" == 0 ]] || die "$name run had $errs errors: $json"
  local us sus flt
  us=$(calc "1e6 * ($t1 - $t0) / $CLK_TCK / $req")
  sus=$(calc "1e6 * ($s1 - $s0) / $CLK_TCK / $req")
  flt=$(calc "($f1 - $f0) / $req")
  printf '%s %s %s %s %s %s\n' "$(json_get "$json" p50_ms)" "$(json_get "$json" p99_ms)" "$(json_get "$json" rps)" "$us" \
    "$sus" "$flt" >>"$BENCH_TMP/res.$name.c$conns${tag:+.$tag}"
  LAST_RES_FILE="$BENCH_TMP/res.$name.c$conns${tag:+.$tag}"
  local secs
  secs=$(json_get "$json" duration_s)
  LAST_SHARE=$(calc "100 * ($t1 - $t0) / $CLK_TCK / $secs + 100 * $(cat "$out.cpu") / $secs")
  log "$name ($n entries) c=$conns${tag:+ $tag}: p50 $(json_get "$json" p50_ms) ms, p99 $(json_get "$json" p99_ms) ms, $(json_get "$json" rps) req/s, $us CPU us/req (kernel $sus), $flt page faults/req"
}

log "warm-up ${WARMUP}s each"
for pn in "$S_PORT:$N_SMALL" "$L_PORT:$N_LARGE"; do
  timeout $((WARMUP + 30)) wrk -t1 -c4 -d"${WARMUP}s" -s "$LUA_DIR/post_keyed.lua" "$(url_of "${pn%%:*}")" \
    -- "$REQ_TEMPLATE" random "${pn##*:}" 1 999 >/dev/null
done

declare -A LAST_SEED
for conns in $CONNS_LIST; do
  for r in $(seq "$RUNS"); do
    if ((r % 2)); then one_run small "$conns"; one_run large "$conns"
    else one_run large "$conns"; one_run small "$conns"; fi
  done
done
# Revisits: the same key sequence as a gateway's previous run, so that (at 1M)
# the entries were already read once since their insert. The memory tier
# copies an entry on its first read after Insert; with 1M keys and 10 s runs
# nearly every read above is such a first read, with 10k almost none is.
FIRST_CONNS=${CONNS_LIST%% *}
if ((REVISIT)); then
  for r in $(seq "$RUNS"); do
    for name in large small; do
      one_run "$name" "$FIRST_CONNS" fresh
      one_run "$name" "$FIRST_CONNS" revisit "${LAST_SEED[$name]}"
    done
  done
fi

col() { awk -v c="$2" '{print $c}' "$1"; }
med() { median $(col "$1" "$2"); }
all() { col "$1" "$2" | awk '{printf "%s%s", (NR>1?", ":""), $1}'; }
f3() { awk -v x="$1" 'BEGIN{printf "%.3f", x}'; }
f1() { awk -v x="$1" 'BEGIN{printf "%.1f", x}'; }
f0() { awk -v x="$1" 'BEGIN{printf "%.0f", x}'; }
tier() { metric "$1" 'llmcache_tier_entries{' "tier=\"$2\""; }
du_mb() { du -sm "$1" 2>/dev/null | awk '{print $1}'; }

{
  echo "### Hit latency at $N_LARGE vs $N_SMALL stored entries"
  echo
  echo "$(machine_summary). Both gateways --threads $THREADS, filled over HTTP (wrk -c$FILL_CONNS, all misses, fake upstream latency 0);"
  echo "measured with wrk -t1, uniformly random keys, every request a hit; ${DURATION}s per run, $RUNS runs per gateway interleaved, median shown."
  ((BENCH_NOISE_WARNINGS == 0)) || echo "Note: $BENCH_NOISE_WARNINGS run(s) started while the machine was busy with other work (see the log)."
  ((BENCH_RETRIES == 0)) || echo "$BENCH_RETRIES run(s) were repeated because the gateway and wrk together got < ${VALID_CPU_PCT}% CPU (another job took the cores)."
  ((BENCH_KEPT_NOISY == 0)) || echo "WARNING: $BENCH_KEPT_NOISY run(s) kept although still starved after $MAX_RETRIES repeats."
  echo
  echo "| entries | fill time s | memory-tier entries | RocksDB entries | RSS MiB | data dir MiB |"
  echo "| ---: | ---: | ---: | ---: | ---: | ---: |"
  echo "| $N_SMALL | ${FILL_SECS[small]} | $(tier "$S_PORT" memory) | $(tier "$S_PORT" rocksdb) | $(proc_rss_mb "$S_PID") | $(du_mb "$BENCH_TMP/small-data") |"
  echo "| $N_LARGE | ${FILL_SECS[large]} | $(tier "$L_PORT" memory) | $(tier "$L_PORT" rocksdb) | $(proc_rss_mb "$L_PID") | $(du_mb "$BENCH_TMP/large-data") |"
  echo
  echo "| connections | entries | p50 ms | p99 ms | req/s | CPU µs/req | of which kernel | page faults/req | runs p50 ms | runs p99 ms |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"
  for conns in $CONNS_LIST; do
    for name in small large; do
      f="$BENCH_TMP/res.$name.c$conns"
      n=$([[ $name == small ]] && echo "$N_SMALL" || echo "$N_LARGE")
      echo "| $conns | $n | $(f3 "$(med "$f" 1)") | $(f3 "$(med "$f" 2)") | $(f0 "$(med "$f" 3)") | $(f1 "$(med "$f" 4)") | $(f1 "$(med "$f" 5)") | $(awk -v x="$(med "$f" 6)" 'BEGIN{printf "%.2f", x}') | $(all "$f" 1) | $(all "$f" 2) |"
    done
  done
  if ((REVISIT)); then
    for tag in fresh revisit; do
      for name in small large; do
        f="$BENCH_TMP/res.$name.c$FIRST_CONNS.$tag"
        n=$([[ $name == small ]] && echo "$N_SMALL" || echo "$N_LARGE")
        echo "| $FIRST_CONNS, $tag keys | $n | $(f3 "$(med "$f" 1)") | $(f3 "$(med "$f" 2)") | $(f0 "$(med "$f" 3)") | $(f1 "$(med "$f" 4)") | $(f1 "$(med "$f" 5)") | $(awk -v x="$(med "$f" 6)" 'BEGIN{printf "%.2f", x}') | $(all "$f" 1) | $(all "$f" 2) |"
      done
    done
  fi
  echo
  echo "| connections | p50 ratio large/small | p99 ratio large/small | req/s ratio large/small | target (latency ratio <= 1.5) |"
  echo "| --- | ---: | ---: | ---: | --- |"
  for conns in $CONNS_LIST; do
    s="$BENCH_TMP/res.small.c$conns" l="$BENCH_TMP/res.large.c$conns"
    r50=$(ratio "$(med "$l" 1)" "$(med "$s" 1)"); r99=$(ratio "$(med "$l" 2)" "$(med "$s" 2)")
    echo "| $conns | **$r50** | **$r99** | $(ratio "$(med "$l" 3)" "$(med "$s" 3)") | p50 $(le "$r50" 1.5), p99 $(le "$r99" 1.5) |"
  done
  if ((REVISIT)); then
    for tag in fresh revisit; do
      s="$BENCH_TMP/res.small.c$FIRST_CONNS.$tag" l="$BENCH_TMP/res.large.c$FIRST_CONNS.$tag"
      r50=$(ratio "$(med "$l" 1)" "$(med "$s" 1)"); r99=$(ratio "$(med "$l" 2)" "$(med "$s" 2)")
      echo "| $FIRST_CONNS, $tag keys | $r50 | $r99 | $(ratio "$(med "$l" 3)" "$(med "$s" 3)") | p50 $(le "$r50" 1.5), p99 $(le "$r99" 1.5) |"
    done
  fi
} >"$BENCH_TMP/report.md"
cat "$BENCH_TMP/report.md"

if [[ -n "${BENCH_SUMMARY:-}" ]]; then
  for conns in $CONNS_LIST; do
    s="$BENCH_TMP/res.small.c$conns" l="$BENCH_TMP/res.large.c$conns"
    r50=$(ratio "$(med "$l" 1)" "$(med "$s" 1)"); r99=$(ratio "$(med "$l" 2)" "$(med "$s" 2)")
    echo "ROW|Hit latency at $N_LARGE vs $N_SMALL entries, $conns conns, random keys|p50 $(f3 "$(med "$l" 1)") vs $(f3 "$(med "$s" 1)") ms, p99 $(f3 "$(med "$l" 2)") vs $(f3 "$(med "$s" 2)") ms|p50 $r50, p99 $r99|<= 1.5|p50 $(le "$r50" 1.5), p99 $(le "$r99" 1.5)" >>"$BENCH_SUMMARY"
  done
  if ((REVISIT)); then
    s="$BENCH_TMP/res.small.c$FIRST_CONNS.revisit" l="$BENCH_TMP/res.large.c$FIRST_CONNS.revisit"
    r50=$(ratio "$(med "$l" 1)" "$(med "$s" 1)"); r99=$(ratio "$(med "$l" 2)" "$(med "$s" 2)")
    echo "ROW|(diagnostic) same, $FIRST_CONNS conns, keys already read once|p50 $(f3 "$(med "$l" 1)") vs $(f3 "$(med "$s" 1)") ms, p99 $(f3 "$(med "$l" 2)") vs $(f3 "$(med "$s" 2)") ms|p50 $r50, p99 $r99|<= 1.5|p50 $(le "$r50" 1.5), p99 $(le "$r99" 1.5)" >>"$BENCH_SUMMARY"
  fi
fi
