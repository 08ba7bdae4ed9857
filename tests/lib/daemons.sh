# Sourced by the bash tests that start Pier daemons under $WORK:
#   start NAME COMMAND...   runs COMMAND in the background with output in
#       $WORK/NAME.out (.err) and records its pid in PIDS and NAME_pid, so
#       several can start together and be waited for afterwards;
#   wait_listening NAME KIND   waits (bounded, ~15 s) until NAME announces
#       "KIND listening on ADDRESS"; fails if it exits first;
#   listen_addr NAME KIND   the ADDRESS NAME announced for KIND;
#   start_daemon OUT KIND BINARY ARGS...  start + wait_listening of
#       $BIN/BINARY, and ADDR set to its KIND address;
#   stop_daemons   SIGTERMs and reaps every recorded daemon (for the trap);
#   fail MESSAGE   prints it and exits 1.
PIDS=()
fail() { echo "FAIL: $*" >&2; exit 1; }

start() {
  local name=$1
  shift
  "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
  PIDS+=($!)
  eval "${name}_pid=$!"
}

wait_listening() {
  local pid
  eval "pid=\$${1}_pid"
  for _ in $(seq 1 300); do
    grep -q "$2 listening on" "$WORK/$1.out" && return 0
    kill -0 "$pid" 2>/dev/null || { cat "$WORK/$1.out" "$WORK/$1.err" >&2; fail "$1 exited"; }
    sleep 0.05
  done
  fail "$1: timed out waiting for $2 listening on"
}

listen_addr() { grep -o "$2 listening on .*" "$WORK/$1.out" | head -1 | cut -d' ' -f4; }

start_daemon() {
  local out=$1 kind=$2 bin=$3
  shift 3
  start "$out" "$BIN/$bin" "$@"
  wait_listening "$out" "$kind"
  ADDR=$(listen_addr "$out" "$kind")
}

stop_daemons() {
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  done
}
