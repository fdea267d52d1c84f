# Shared helpers of the llmcache gateway benchmarks; sourced by bench/*.sh.
#
# Everything listens on 127.0.0.1 only, lives in one temp dir ($BENCH_TMP)
# and is stopped by the EXIT trap (by the PIDs started here, nothing else).
# Servers are wrapped in `timeout` so that even a killed driver cannot leave
# them running for longer than BENCH_MAX_LIFETIME seconds.

set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$BENCH_DIR/.." && pwd)"
LUA_DIR="$BENCH_DIR/lua"
REQ_TEMPLATE="${REQ_TEMPLATE:-$BENCH_DIR/data/chat_request.json.tmpl}"
LLMCACHE_BIN="${LLMCACHE_BIN:-$REPO_DIR/build/src/app/llmcache}"
FAKE_UPSTREAM="$REPO_DIR/tests/fake-upstream/fake_upstream.mjs"
BENCH_MAX_LIFETIME="${BENCH_MAX_LIFETIME:-3600}"

BENCH_PIDS=()
BENCH_TMP=""

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

bench_cleanup() {
  local rc=$?
  local pid
  for pid in "${BENCH_PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${BENCH_PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  BENCH_PIDS=()
  if [[ -n "$BENCH_TMP" && -d "$BENCH_TMP" && "${KEEP_TMP:-0}" != 1 ]]; then
    rm -rf "$BENCH_TMP"
  fi
  return $rc
}

# bench_tmp NAME BIN: the run's temporary directory (removed on exit unless
# KEEP_TMP=1), and a private copy of BIN in it, printed to BENCH_BIN: a
# rebuild of the tree during the run must not swap the binary under us.
bench_tmp() {
  local name="$1" bin="$2"
  BENCH_TMP="$(mktemp -d "${TMPDIR:-/tmp}/llmcache-bench-$name.XXXXXX")"
  trap bench_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM HUP
  BENCH_BIN="$BENCH_TMP/$(basename "$bin")"
  cp "$bin" "$BENCH_BIN"
}

bench_init() {
  local name="$1"
  command -v wrk >/dev/null || die "wrk not found (scripts/install-deps installs it)"
  command -v node >/dev/null || die "node not found"
  [[ -x "$LLMCACHE_BIN" ]] || die "no gateway binary at $LLMCACHE_BIN (build the llmcache target)"
  bench_tmp "$name" "$LLMCACHE_BIN"
  LLMCACHE_BIN="$BENCH_BIN"
  "$LLMCACHE_BIN" --help >/dev/null 2>&1 || die "the copied gateway binary does not run"
}

# run_checked FN ARGS...: calls FN (which must append one result line to the
# file named in $LAST_RES_FILE and set $LAST_SHARE to the CPU % of one core
# that the server and wrk got together). On a 2-core machine a saturated run
# gives them ~150-200 %; far less means something else took the cores for
# part of the run: the line is dropped and the run repeated (up to
# MAX_RETRIES times; the last attempt is kept whatever it got).
VALID_CPU_PCT="${VALID_CPU_PCT:-140}"
MAX_RETRIES="${MAX_RETRIES:-3}"
BENCH_RETRIES=0
BENCH_KEPT_NOISY=0
run_checked() {
  local attempt
  for attempt in $(seq 0 "$MAX_RETRIES"); do
    "$@"
    if awk -v a="$LAST_SHARE" -v b="$VALID_CPU_PCT" 'BEGIN{exit !(a >= b)}'; then return 0; fi
    if ((attempt == MAX_RETRIES)); then
      log "WARNING: server+wrk got only ${LAST_SHARE}% CPU; keeping the run anyway"
      BENCH_KEPT_NOISY=$((BENCH_KEPT_NOISY + 1))
      return 0
    fi
    log "server+wrk got only ${LAST_SHARE}% CPU (< ${VALID_CPU_PCT}%): the machine was shared; repeating the run"
    sed -i '$d' "$LAST_RES_FILE"
    BENCH_RETRIES=$((BENCH_RETRIES + 1))
  done
}

# The machine's busy CPU (percent of one core) over a short sample.
machine_busy_pct() {
  local secs="${1:-1}" a b
  a=($(awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $5+$6}' /proc/stat))
  sleep "$secs"
  b=($(awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $5+$6}' /proc/stat))
  awk -v bu=$((b[0] - a[0])) -v id=$((b[1] - a[1])) -v n="$(nproc)" \
    'BEGIN{ t = bu + id; printf "%.0f\n", t ? 100 * n * bu / t : 0 }'
}

# Waits (up to MAX seconds) until the machine is nearly idle, so that a run
# does not start while something else (a build, another benchmark) is
# using the cores. Logs and returns normally when it gives up.
BENCH_NOISE_WARNINGS=0
wait_quiet() {
  local max="${1:-60}" limit="${QUIET_LIMIT_PCT:-25}" deadline=$((SECONDS + ${1:-60})) busy
  while :; do
    busy=$(machine_busy_pct 1)
    ((busy <= limit)) && return 0
    if ((SECONDS >= deadline)); then
      log "WARNING: machine still ${busy}% busy (of one core) before a run; measuring anyway"
      BENCH_NOISE_WARNINGS=$((BENCH_NOISE_WARNINGS + 1))
      return 0
    fi
    sleep 2
  done
}

# Stops one server started by this script (and forgets it).
stop_pid() {
  local pid="$1" keep=() p
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  for p in "${BENCH_PIDS[@]}"; do [[ "$p" == "$pid" ]] || keep+=("$p"); done
  BENCH_PIDS=("${keep[@]}")
}

# A loopback port that is free right now (for servers that cannot take port 0).
free_port() {
  node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

# Waits until FILE contains a line matching REGEX; prints the first match.
wait_for_line() {
  local file="$1" regex="$2" secs="${3:-20}" pid="${4:-}"
  local deadline=$((SECONDS + secs))
  while ((SECONDS < deadline)); do
    if grep -Eq "$regex" "$file" 2>/dev/null; then
      grep -Em1 "$regex" "$file"
      return 0
    fi
    if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then break; fi
    sleep 0.05
  done
  log "timed out waiting for /$regex/ in $file:"
  tail -n 20 "$file" >&2 || true
  return 1
}

# start_fake NAME -> sets FAKE_PORT (and FAKE_PID). latency_ms stays 0.
start_fake() {
  local name="$1" out="$BENCH_TMP/$1.out"
  timeout "$BENCH_MAX_LIFETIME" node "$FAKE_UPSTREAM" --port 0 --host 127.0.0.1 --ignore-stdin \
    >"$out" 2>&1 </dev/null &
  FAKE_PID=$!
  BENCH_PIDS+=("$FAKE_PID")
  local line
  line="$(wait_for_line "$out" '"port"' 20 "$FAKE_PID")" || die "fake upstream did not start"
  FAKE_PORT="$(sed -E 's/.*"port": *([0-9]+).*/\1/' <<<"$line")"
  log "fake upstream $name on 127.0.0.1:$FAKE_PORT (pid $FAKE_PID)"
}

# start_gateway NAME UPSTREAM_PORT THREADS [extra args...] -> sets GW_PORT, GW_PID
# (GW_PID is the `timeout` wrapper; GW_REAL_PID the gateway process itself).
start_gateway() {
  local name="$1" uport="$2" threads="$3"
  shift 3
  local out="$BENCH_TMP/$name.out" data="$BENCH_TMP/$name-data"
  timeout "$BENCH_MAX_LIFETIME" "$LLMCACHE_BIN" serve --listen 127.0.0.1:0 \
    --upstream "http://127.0.0.1:$uport/v1" --data-dir "$data" --threads "$threads" "$@" \
    >"$out" 2>&1 </dev/null &
  GW_PID=$!
  BENCH_PIDS+=("$GW_PID")
  local line
  line="$(wait_for_line "$out" 'listening on http://127\.0\.0\.1:[0-9]+' 60 "$GW_PID")" ||
    die "gateway $name did not start"
  GW_PORT="$(sed -E 's#.*127\.0\.0\.1:([0-9]+).*#\1#' <<<"$line")"
  GW_REAL_PID="$(pgrep -P "$GW_PID" | head -n1 || true)"
  log "gateway $name on 127.0.0.1:$GW_PORT (threads $threads, pid ${GW_REAL_PID:-?}, data $data)"
}

# start_nginx NAME WORKERS static FILE -> serves FILE at /answer.json
# start_nginx NAME WORKERS proxy UPSTREAM_PORT -> plain reverse proxy (no
#   cache) to 127.0.0.1:UPSTREAM_PORT with keep-alive upstream connections
# Sets NGINX_PORT, NGINX_PID (the `timeout` wrapper), NGINX_MASTER.
start_nginx() {
  local name="$1" workers="$2" mode="$3" arg="$4"
  local dir="$BENCH_TMP/$name" location upstream_block=""
  command -v nginx >/dev/null || die "nginx not found (scripts/install-deps installs nginx-light)"
  mkdir -p "$dir/www" "$dir/tmp" "$dir/logs"
  if [[ "$mode" == static ]]; then
    cp "$arg" "$dir/www/answer.json"
    location="root $dir/www;"
  else
    upstream_block="upstream llm_upstream { server 127.0.0.1:$arg; keepalive 64; }"
    location="location / {
      proxy_pass http://llm_upstream;
      proxy_http_version 1.1;
      proxy_set_header Connection \"\";
      proxy_buffering on;
    }"
  fi
  local user_line=""
  # A root master would hand the workers to "nobody": keep the current user.
  [[ "$(id -u)" == 0 ]] && user_line="user $(id -un) $(id -gn);"
  local attempt
  for attempt in 1 2 3 4 5; do
    NGINX_PORT="$(free_port)"
    cat >"$dir/nginx.conf" <<EOF
$user_line
worker_processes $workers;
daemon off;
master_process on;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_requests 10000000;
  keepalive_timeout 120s;
  open_file_cache max=16 inactive=600s;
  open_file_cache_valid 600s;
  client_body_temp_path $dir/tmp/client_body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fastcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;
  types { application/json json; }
  default_type application/json;
  client_body_buffer_size 64k;
  $upstream_block
  server {
    listen 127.0.0.1:$NGINX_PORT;
    $location
  }
}
EOF
    timeout "$BENCH_MAX_LIFETIME" nginx -e "$dir/logs/error.log" -p "$dir" -c "$dir/nginx.conf" \
      >"$dir/logs/stdout" 2>&1 </dev/null &
    NGINX_PID=$!
    BENCH_PIDS+=("$NGINX_PID")
    local ok=0
    for _ in $(seq 100); do
      # Any HTTP answer means it listens (the proxy may answer 404 to a GET).
      if curl -sS -o /dev/null "http://127.0.0.1:$NGINX_PORT/answer.json" 2>/dev/null; then ok=1; break; fi
      kill -0 "$NGINX_PID" 2>/dev/null || break
      sleep 0.05
    done
    if ((ok)); then
      NGINX_MASTER="$(pgrep -P "$NGINX_PID" | head -n1)"
      log "nginx $name ($mode) on 127.0.0.1:$NGINX_PORT (worker_processes $workers, master pid $NGINX_MASTER)"
      return 0
    fi
    log "nginx did not start on port $NGINX_PORT (attempt $attempt):"
    tail -n 3 "$dir/logs/error.log" >&2 || true
    stop_pid "$NGINX_PID"
    # Only a port taken between free_port and nginx's bind is worth a retry.
    grep -q 'Address already in use' "$dir/logs/error.log" || break
    : >"$dir/logs/error.log"
  done
  die "nginx did not start"
}

# run_wrk OUTFILE wrk-args... : runs wrk (bounded by timeout), keeps its full
# output in OUTFILE and prints the WRKJSON line's JSON.
run_wrk() {
  local out="$1"
  shift
  local dur=60 a
  for a in "$@"; do
    if [[ "$a" =~ ^-d([0-9]+)s?$ ]]; then dur="${BASH_REMATCH[1]}"; fi
  done
  local pin=()
  [[ -n "${PIN_WRK_CPU:-}" ]] && pin=(taskset -c "$PIN_WRK_CPU")
  timeout $((dur + 60)) "${pin[@]}" wrk "$@" >"$out" 2>&1 || { cat "$out" >&2; die "wrk failed"; }
  # CPU seconds of wrk (the only child this subshell has waited for so far).
  # (`times` must not run in a pipeline: that subshell has no children.)
  times >"$out.times"
  sed -n 2p "$out.times" | awk '{ t = 0; for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); t += a[1] * 60 + a[2] } printf "%.3f\n", t }' >"$out.cpu"
  local json
  json="$(sed -n 's/^WRKJSON //p' "$out")"
  [[ -n "$json" ]] || { cat "$out" >&2; die "wrk printed no WRKJSON line"; }
  printf '%s\n' "$json"
}

# json_get JSON FIELD -> the number (or string) of a flat JSON object.
json_get() {
  node -e 'const o=JSON.parse(process.argv[1]);const v=o[process.argv[2]];console.log(v===undefined?"":v)' "$1" "$2"
}

# median of numbers given as arguments.
median() {
  printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{ if (NR==0) {print ""} else if (NR%2) {print a[(NR+1)/2]} else {printf "%.4f\n", (a[NR/2]+a[NR/2+1])/2} }'
}

# calc EXPR -> awk arithmetic, 4 decimals.
calc() { awk "BEGIN{printf \"%.4f\n\", $*}"; }
# ratio A B -> A/B with 3 decimals.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b==0) print "nan"; else printf "%.3f\n", a/b }'; }
# le A B -> "yes" when A <= B.
le() { awk -v a="$1" -v b="$2" 'BEGIN{ print (a<=b) ? "yes" : "no" }'; }
ge() { awk -v a="$1" -v b="$2" 'BEGIN{ print (a>=b) ? "yes" : "no" }'; }

# metric PORT NAME LABEL_SUBSTRING -> summed value of a Prometheus series.
metric() {
  curl -fsS "http://127.0.0.1:$1/metrics" |
    awk -v n="$2" -v l="$3" 'index($0, n)==1 && index($0, l) { s += $NF } END { printf "%.0f\n", s }'
}

# The cache hits / misses the gateway has counted so far.
gw_hits() { metric "$1" 'llmcache_requests_total{' 'result="hit"'; }
gw_misses() { metric "$1" 'llmcache_requests_total{' 'result="miss"'; }
gw_bypasses() { metric "$1" 'llmcache_requests_total{' 'result="bypass"'; }
gw_entries() { metric "$1" 'llmcache_tier_entries{' 'tier="memory"'; }

# The body of the template's "hit-0" request, as sent by post_static.lua.
static_body() { sed 's/@@ID@@/hit-0/' "$REQ_TEMPLATE" | tr -d '\n'; }

# proc_cpu_ticks PID -> utime+stime of a process (clock ticks).
proc_cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# proc_minflt PID -> minor page faults so far
proc_minflt() { awk '{print $10}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# proc_sys_ticks PID -> stime
proc_sys_ticks() { awk '{print $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# proc_rss_mb PID
proc_rss_mb() { awk '/VmRSS/{printf "%.0f\n", $2/1024}' "/proc/$1/status" 2>/dev/null || echo 0; }

machine_summary() {
  local cpu
  cpu="$(awk -F: '/model name/{gsub(/^ +/,"",$2); print $2; exit}' /proc/cpuinfo)"
  printf '%s cores (%s), %s GiB RAM, kernel %s' "$(nproc)" "${cpu:-unknown CPU}" \
    "$(awk '/MemTotal/{printf "%.0f", $2/1048576}' /proc/meminfo)" "$(uname -r)"
}
