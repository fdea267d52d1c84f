#!/usr/bin/env bash
# Where the gateway's time goes, for one workload: syscalls per request
# (strace -c) and a CPU profile (perf, when it works here), next to the same
# numbers for nginx doing the comparable job.
#
#   bench/profile.sh hit     # exact hits (64 connections) vs nginx static file
#   bench/profile.sh miss    # unique requests (1 connection) vs nginx proxy
#
# Environment: THREADS [1], SECONDS_PROFILED [5], PERF [1] (0: skip perf),
# OUT_DIR [a new temp dir; kept], LLMCACHE_BIN, REQ_TEMPLATE.
# strace slows the traced process a lot: its counts are per request and
# meaningful; its timings are not.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

MODE="${1:-}"
[[ "$MODE" == hit || "$MODE" == miss ]] || die "usage: bench/profile.sh hit|miss"
THREADS="${THREADS:-1}"
SECS="${SECONDS_PROFILED:-5}"
PERF="${PERF:-1}"
OUT_DIR="${OUT_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/llmcache-profile.XXXXXX")}"
mkdir -p "$OUT_DIR"
command -v strace >/dev/null || die "strace not found"

bench_init "profile-$MODE"
start_fake fake
start_gateway gw "$FAKE_PORT" "$THREADS"
GW_URL="http://127.0.0.1:$GW_PORT/v1/chat/completions"
static_body >"$BENCH_TMP/request.json"
curl -fsS -o "$BENCH_TMP/answer.json" -H 'Content-Type: application/json' --data-binary @"$BENCH_TMP/request.json" "$GW_URL"
if [[ $MODE == hit ]]; then
  start_nginx ref "$THREADS" static "$BENCH_TMP/answer.json"
  REF_URL="http://127.0.0.1:$NGINX_PORT/answer.json"
  CONNS=64
  gw_load() { wrk -t1 -c$CONNS -d"$1s" -s "$LUA_DIR/post_static.lua" "$GW_URL" -- "$REQ_TEMPLATE"; }
  ref_load() { wrk -t1 -c$CONNS -d"$1s" -s "$LUA_DIR/get.lua" "$REF_URL"; }
else
  start_nginx ref "$THREADS" proxy "$FAKE_PORT"
  REF_URL="http://127.0.0.1:$NGINX_PORT/v1/chat/completions"
  CONNS=1
  gw_load() { wrk -t1 -c$CONNS -d"$1s" -s "$LUA_DIR/post_unique.lua" "$GW_URL" -- "$REQ_TEMPLATE" "prof-gw-$RANDOM"; }
  ref_load() { wrk -t1 -c$CONNS -d"$1s" -s "$LUA_DIR/post_unique.lua" "$REF_URL" -- "$REQ_TEMPLATE" "prof-ref-$RANDOM"; }
fi
REF_WORKERS="$(pgrep -P "$NGINX_MASTER" | tr '\n' ',' | sed 's/,$//')"

# requests the server answered during the strace window = wrk's rate x window
syscalls() { # syscalls NAME PIDS LOADFN
  local name="$1" pids="$2" load="$3" p args=()
  for p in ${pids//,/ }; do args+=(-p "$p"); done
  "$load" $((SECS + 3)) >"$OUT_DIR/strace-load.$name.txt" 2>&1 &
  local wpid=$!
  sleep 1
  timeout "$SECS" strace -c -f "${args[@]}" -o "$OUT_DIR/strace.$name.txt" 2>/dev/null || true
  wait "$wpid" || true
}
# The request count inside the strace window is not known exactly; count the
# write side instead: each answered request is one response write (sendmsg
# for the gateway, writev/sendfile for nginx).
per_request() { # per_request FILE RESPONSE_SYSCALL CALLS_OF_IT_PER_REQUEST
  awk -v w="$2" -v k="${3:-1}" '
    $NF ~ /^[a-z_0-9]+$/ && $NF != "total" && $4 ~ /^[0-9]+$/ { calls[$NF] = $4; if ($NF != "futex" && $NF != "restart_syscall") total += $4 }
    END {
      n = calls[w] / k; if (!n) { print "no " w " calls"; exit }
      printf "%.1f syscalls per request (", total / n
      first = 1
      for (k in calls) if (k != "futex" && k != "restart_syscall" && calls[k] / n >= 0.05) {
        printf "%s%s %.1f", (first ? "" : ", "), k, calls[k] / n; first = 0
      }
      print ")"
    }' "$1"
}

log "strace -c, ${SECS}s each"
syscalls gw "$GW_REAL_PID" gw_load
syscalls ref "$REF_WORKERS" ref_load
if [[ $MODE == hit ]]; then
  GW_SC=$(per_request "$OUT_DIR/strace.gw.txt" sendmsg)
  REF_SC=$(per_request "$OUT_DIR/strace.ref.txt" writev)
else
  # A proxied request writes twice: the upstream request and the response.
  GW_SC=$(per_request "$OUT_DIR/strace.gw.txt" sendmsg 2)
  REF_SC=$(per_request "$OUT_DIR/strace.ref.txt" writev 2)
fi

if ((PERF)) && command -v perf >/dev/null; then
  log "perf record, ${SECS}s"
  gw_load $((SECS + 3)) >"$OUT_DIR/perf-load.txt" 2>&1 &
  wpid=$!
  sleep 1
  if perf record -F 999 --call-graph dwarf,16384 -p "$GW_REAL_PID" -o "$OUT_DIR/perf.gw.data" -- sleep "$SECS" >/dev/null 2>&1; then
    perf report -i "$OUT_DIR/perf.gw.data" --stdio --no-children --sort dso -g none 2>/dev/null |
      grep -v '^#' | grep -v '^$' | head -n 8 >"$OUT_DIR/perf.dso.txt" || true
    perf report -i "$OUT_DIR/perf.gw.data" --stdio --no-children --sort sym -g none 2>/dev/null |
      grep -v '^#' | grep -v '^$' | head -n 25 | cut -c1-160 >"$OUT_DIR/perf.self.txt" || true
    perf report -i "$OUT_DIR/perf.gw.data" --stdio --children --sort sym -g none 2>/dev/null |
      grep -v '^#' | grep -v '^$' | grep -E 'llmcache::|rocksdb::DBImpl::(Write|Get)$' | head -n 25 | cut -c1-160 >"$OUT_DIR/perf.children.txt" || true
  else
    log "perf record failed; skipping the CPU profile"
  fi
  wait "$wpid" || true
fi

{
  echo "### Profile: $MODE (gateway --threads $THREADS, wrk -c$CONNS)"
  echo
  echo "Syscalls per request, gateway: $GW_SC"
  echo "Syscalls per request, nginx ($([[ $MODE == hit ]] && echo static file || echo reverse proxy)): $REF_SC"
  if [[ -s "$OUT_DIR/perf.dso.txt" ]]; then
    echo
    echo "perf, gateway samples by object:"
    echo '```'
    cat "$OUT_DIR/perf.dso.txt"
    echo '```'
    echo "perf, top self symbols:"
    echo '```'
    cat "$OUT_DIR/perf.self.txt"
    echo '```'
    echo "perf, llmcache functions including callees:"
    echo '```'
    cat "$OUT_DIR/perf.children.txt"
    echo '```'
  fi
  echo
  echo "Raw data: $OUT_DIR"
} | tee "$OUT_DIR/report.md"
