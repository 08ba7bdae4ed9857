# Sourced by the bash tests that start Pier daemons from $BIN under $WORK:
#   start_daemon OUT KIND BINARY ARGS...  runs $BIN/BINARY ARGS with output
#       in $WORK/OUT.out (.err), waits (bounded, ~15 s) until it announces
#       "KIND listening on ADDRESS", records its pid in PIDS and sets ADDR;
#   stop_daemons   SIGTERMs and reaps every recorded daemon (for the trap);
#   fail MESSAGE   prints it and exits 1.
PIDS=()
fail() { echo "FAIL: $*" >&2; exit 1; }

wait_for() {  # FILE PATTERN PID
  for _ in $(seq 1 300); do
    grep -q "$2" "$1" && return 0
    kill -0 "$3" 2>/dev/null || { cat "$1" "$1.err" >&2; fail "daemon exited"; }
    sleep 0.05
  done
  fail "timed out waiting for $2"
}

start_daemon() {
  local out=$1 kind=$2 bin=$3
  shift 3
  "$BIN/$bin" "$@" >"$WORK/$out.out" 2>"$WORK/$out.out.err" &
  PIDS+=($!)
  wait_for "$WORK/$out.out" "$kind listening on" "${PIDS[-1]}"
  ADDR=$(grep -o "$kind listening on .*" "$WORK/$out.out" | head -1 | cut -d' ' -f4)
}

stop_daemons() {
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  done
}
