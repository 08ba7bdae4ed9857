#!/usr/bin/env bash
# `pier build` progress display against a real pier-builder and
# pier-registry on loopback: on a terminal (a pty from `script`) the live
# display redraws with ANSI cursor movement and shows each step's stage,
# n/m, instruction and state, the RUN output under the running step and a
# summary; --progress=plain on that terminal, and auto on a pipe, print plain
# lines without any escape sequence; --progress=tty on a failing RUN marks
# its step ERROR with its output; a bad --progress value is a usage error.
set -euo pipefail
unset SOURCE_DATE_EPOCH
BIN=${PIER_BIN_DIR:-$(cd "$(dirname "$0")/../build/bin" && pwd)}
WORK=$(mktemp -d /tmp/pier-progress-XXXXXX)
source "$(dirname "$0")/lib/daemons.sh"
cleanup() {
  stop_daemons
  rm -rf "$WORK"
}
trap cleanup EXIT
[ "$(id -u)" = 0 ] || fail "required: root (pier-builder runs RUN steps in namespaces)"
command -v script >/dev/null || fail "required: script (bsdutils)"
[ -x /bin/busybox ] || fail "required: busybox-static"

start_daemon registry http pier-registry --listen=127.0.0.1:0 --http-listen=127.0.0.1:0 --root="$WORK/registry"
REG=$ADDR
start_daemon builder grpc pier-builder --listen=127.0.0.1:0 --root="$WORK/builder"
BLD=$ADDR
pier() { "$BIN/pier" --builder="$BLD" "$@"; }
# Runs pier on a pseudo-terminal; its output (with \r\n line ends) to stdout.
on_tty() {
  local cmd
  cmd=$(printf '%q ' "$BIN/pier" --builder="$BLD" "$@")
  TERM=xterm script -qfec "$cmd" /dev/null </dev/null
}
ESC=$'\x1b'

# The base image: busybox FROM scratch.
mkdir -p "$WORK/base/rootfs/bin" "$WORK/base/rootfs/tmp"
cp /bin/busybox "$WORK/base/rootfs/bin/busybox"
for a in sh echo cat sleep false; do ln -s busybox "$WORK/base/rootfs/bin/$a"; done
printf 'FROM scratch\nCOPY rootfs/ /\nCMD ["/bin/sh"]\n' >"$WORK/base/Dockerfile"
pier build --progress=plain -t "$REG/base/busybox:latest" "$WORK/base" >"$WORK/base.log" 2>&1 \
  || { cat "$WORK/base.log" >&2; fail "base image build failed"; }

mkdir -p "$WORK/app"
echo data >"$WORK/app/f.txt"
cat >"$WORK/app/Dockerfile" <<EOF
FROM $REG/base/busybox:latest
COPY f.txt /f.txt
RUN echo progress-out-1 && echo progress-err-2 >&2 && sleep 0.3 && cat /f.txt
CMD ["true"]
EOF

# 1. On a terminal (auto): escape sequences, every step, RUN output, states,
#    the summary.
out=$(on_tty build -t "$REG/demo/progress:v1" "$WORK/app") || { echo "$out" >&2; fail "tty build failed"; }
printf '%s' "$out" >"$WORK/tty1.log"
grep -q "${ESC}\[[0-9]*A" <<<"$out" || fail "tty output has no cursor-up sequence: $out"
grep -q "${ESC}\[2K" <<<"$out" || fail "tty output has no erase-line sequence"
for want in "#1 \[0 1/4\] FROM $REG/base/busybox:latest" "#2 \[0 2/4\] COPY f.txt /f.txt" \
  "#3 \[0 3/4\] RUN /bin/sh -c echo progress-out-1" "#4 \[0 4/4\] CMD \[\"true\"\]" \
  "  > progress-out-1" "  > progress-err-2" "  > data" "\[+\] Building" "CACHED" "DONE [0-9.]*s" \
  "manifest sha256:" "pushed $REG/demo/progress:v1@sha256:" \
  "built sha256:[0-9a-f]\{12\} in [0-9.]*s: 1/4 steps cached, pushed $REG/demo/progress:v1"; do
  grep -q -- "$want" <<<"$out" || fail "tty output lacks '$want':
$out"
done
# The final state of each step is printed once it is final: the RUN step's
# last line says DONE.
grep -a "#3 \[0 3/4\]" <<<"$out" | tail -1 | grep "DONE [0-9.]*s" >/dev/null || fail "RUN step not DONE at the end"

# 2. Unchanged rebuild on the terminal: every step CACHED, and (history
#    times come from the cache records) the very same image, without
#    SOURCE_DATE_EPOCH.
first_manifest=$(grep -o "manifest sha256:[0-9a-f]*" <<<"$out")
out=$(on_tty build -t "$REG/demo/progress:v1" "$WORK/app") || { echo "$out" >&2; fail "tty rebuild failed"; }
[ "$(grep -c "CACHED" <<<"$out")" -ge 4 ] || fail "rebuild: not every step CACHED: $out"
grep -q "4/4 steps cached" <<<"$out" || fail "rebuild summary: $out"
[ -n "$first_manifest" ] && grep -q "$first_manifest" <<<"$out" \
  || fail "unchanged rebuild made another manifest than $first_manifest: $out"

# 3. --progress=plain on the terminal, and auto on a pipe: no escapes.
out=$(on_tty build --progress=plain --no-cache -t "$REG/demo/progress:v2" "$WORK/app") \
  || { echo "$out" >&2; fail "plain build on a tty failed"; }
grep -q "$ESC" <<<"$out" && fail "--progress=plain wrote escape sequences: $out"
for want in "#3 \[0 3/4\] RUN" "#3 progress-out-1" "#3 DONE" "#1 CACHED" "manifest sha256:" \
  "built sha256:"; do
  grep -q -- "$want" <<<"$out" || fail "plain output lacks '$want': $out"
done
out=$(pier build --no-cache -t "$REG/demo/progress:v3" "$WORK/app" 2>&1 | cat) || fail "piped build failed"
grep -q "$ESC" <<<"$out" && fail "auto on a pipe wrote escape sequences: $out"
grep -q "#3 progress-out-1" <<<"$out" || fail "piped output lacks the RUN output: $out"

# 4. A failing RUN on the terminal: exit 1, its step ERROR with its output.
mkdir -p "$WORK/bad"
printf 'FROM %s\nRUN echo before-failing && false\n' "$REG/base/busybox:latest" >"$WORK/bad/Dockerfile"
set +e
out=$(on_tty build --progress=tty "$WORK/bad")
rc=$?
set -e
[ "$rc" = 1 ] || fail "failing build exited $rc: $out"
grep -a "#2 \[0 2/2\]" <<<"$out" | tail -1 | grep "ERROR [0-9.]*s" >/dev/null || fail "failing step not ERROR: $out"
grep -q "  > before-failing" <<<"$out" || fail "failing step's output not shown: $out"
grep -q "build failed" <<<"$out" || fail "no failure line: $out"

# 5. Bad value.
set +e
pier build --progress=fancy "$WORK/app" >"$WORK/bad.out" 2>&1
rc=$?
set -e
[ "$rc" = 2 ] || fail "--progress=fancy exited $rc"
grep -q "expected auto, tty or plain" "$WORK/bad.out" || fail "--progress=fancy: $(cat "$WORK/bad.out")"
echo "build_progress_test: OK"
