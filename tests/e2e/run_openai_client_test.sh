#!/usr/bin/env bash
# Runs the official openai npm client tests (tests/node/openai_client.test.mjs)
# against a real `llmcache serve` in front of the fake upstream.
#
#   run_openai_client_test.sh <path to llmcache> <source dir>
#
# Both processes pick free ports themselves (port 0): the fake prints
# {"port": N}, the gateway its listening URL. Exits 77 (CTest: skipped)
# when tests/node/node_modules is missing (run scripts/install-deps).
set -euo pipefail

LLMCACHE=${1:?usage: $0 <llmcache binary> <source dir>}
SRC=${2:?usage: $0 <llmcache binary> <source dir>}

if [ ! -d "$SRC/tests/node/node_modules/openai" ]; then
  echo "tests/node/node_modules is missing: run scripts/install-deps (npm ci)" >&2
  exit 77
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/llmcache-openai-XXXXXX")
FAKE_PID=""
GW_PID=""
cleanup() {
  local rc=$?
  [ -n "$GW_PID" ] && kill "$GW_PID" 2>/dev/null && wait "$GW_PID" 2>/dev/null
  [ -n "$FAKE_PID" ] && kill "$FAKE_PID" 2>/dev/null && wait "$FAKE_PID" 2>/dev/null
  if [ "$rc" != 0 ]; then
    echo "--- gateway log" >&2
    cat "$WORK/gateway.log" >&2 2>/dev/null || true
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Polls (at most ~20 s) until the command succeeds.
wait_until() {
  for _ in $(seq 1 200); do
    if "$@"; then return 0; fi
    sleep 0.1
  done
  return 1
}

# The fake upstream reads its stdin from a pipe whose only writer is this
# shell: when the shell dies, however it dies, the fake sees EOF and exits.
exec {FAKE_IN}> >(exec node "$SRC/tests/fake-upstream/fake_upstream.mjs" --port 0 \
  >"$WORK/fake.out" 2>"$WORK/fake.err")
FAKE_PID=$!
fake_port() { grep -o '"port": *[0-9]*' "$WORK/fake.out" 2>/dev/null | grep -o '[0-9]*$'; }
if ! wait_until fake_port >/dev/null; then
  echo "the fake upstream did not start" >&2
  cat "$WORK/fake.err" >&2
  exit 1
fi
FAKE_PORT=$(fake_port)

# The gateway and the node tests die with this shell too (parent-death
# signal), where util-linux's setpriv offers it.
DIE_WITH_US=()
if setpriv --pdeathsig KILL true 2>/dev/null; then DIE_WITH_US=(setpriv --pdeathsig KILL); fi

# The gateway on port 0; its banner names the port it got.
"${DIE_WITH_US[@]}" "$LLMCACHE" serve --listen 127.0.0.1:0 --upstream "http://127.0.0.1:$FAKE_PORT/v1" \
  --data-dir "$WORK/data" --threads 2 >"$WORK/gateway.log" 2>&1 {FAKE_IN}>&- &
GW_PID=$!
gw_port() { grep -o 'listening on http://127.0.0.1:[0-9]*' "$WORK/gateway.log" 2>/dev/null | grep -o '[0-9]*$'; }
if ! wait_until gw_port >/dev/null; then
  echo "the gateway did not start" >&2
  exit 1
fi
GW_PORT=$(gw_port)

healthy() {
  # bash's /dev/tcp: no curl needed.
  exec 3<>"/dev/tcp/127.0.0.1/$GW_PORT" || return 1
  printf 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3
  local line
  IFS= read -r -t 2 line <&3 || { exec 3<&-; return 1; }
  exec 3<&-
  [[ "$line" == "HTTP/1.1 200"* ]]
}
if ! wait_until healthy 2>/dev/null; then
  echo "the gateway never answered /healthz" >&2
  exit 1
fi

echo "fake upstream on :$FAKE_PORT, gateway on :$GW_PORT"
cd "$SRC/tests/node"
GATEWAY_URL="http://127.0.0.1:$GW_PORT/v1" EXPECT_CACHE_HEADERS=1 \
  "${DIE_WITH_US[@]}" timeout 150 "${DIE_WITH_US[@]}" node --test openai_client.test.mjs {FAKE_IN}>&-
