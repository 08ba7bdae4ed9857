#!/usr/bin/env bash
# Progress of `pier push` and `pier pull` against real daemons, for an image
# of two layers (an import and a commit of a 2 MB file):
# - on a terminal (script(1) gives the CLI a pty): one line per blob named by
#   its short digest, a bar with done/total bytes, lines redrawn in place
#   (cursor-up escapes), a final state per layer and the completion line;
# - without a terminal: the same items as plain lines, no escape sequence;
# - with -q: only the digest (push) or image id (pull), nothing on stderr.
set -euo pipefail
if [ -z "${PIER_TEST_IN_NETNS:-}" ]; then
  exec env PIER_TEST_IN_NETNS=1 unshare --net --mount --fork -- "$0" "$@"
fi
ip link set lo up
BIN=${PIER_BIN_DIR:-$(cd "$(dirname "$0")/../build/bin" && pwd)}
WORK=$(mktemp -d /tmp/pier-cli-progress-XXXXXX)
source "$(dirname "$0")/lib/daemons.sh"
cleanup() {
  if [ -n "${PIER_RUNTIME:-}" ]; then "$BIN/pier" rm -f prog >/dev/null 2>&1 || true; fi
  stop_daemons
  rm -rf "$WORK"
}
trap cleanup EXIT
pier() { "$BIN/pier" "$@"; }

start_daemon registry http pier-registry --listen=127.0.0.1:0 --http-listen=127.0.0.1:0 --root="$WORK/registry"
REG=$ADDR
start_daemon runtime grpc pier-runtime --listen="unix://$WORK/runtime.sock" --root="$WORK/runtime"
export PIER_RUNTIME="unix://$WORK/runtime.sock" PIER_CONFIG="$WORK/config.json"

mkdir -p "$WORK/rootfs/bin"
cp /bin/busybox "$WORK/rootfs/bin/busybox"
ln -s busybox "$WORK/rootfs/bin/sh"
tar -C "$WORK/rootfs" -cf "$WORK/rootfs.tar" .
pier import -c 'CMD ["sh"]' "$WORK/rootfs.tar" localhost/prog:base >/dev/null
pier run --network none --name prog localhost/prog:base \
  sh -c 'busybox head -c 2000000 /dev/urandom > /big' || fail "run"
pier commit prog "$REG/demo/prog:v1" >/dev/null
pier rm prog >/dev/null

# On a terminal: the CLI's stderr and stdout are the pty script(1) records.
on_tty() { script -qfec "$*" /dev/null </dev/null | tr -d '\r'; }
layers() {  # the short ids of the pushed manifest's layers
  curl -fsS -H "Accept: application/vnd.oci.image.manifest.v1+json" \
    -H "Accept: application/vnd.docker.distribution.manifest.v2+json" \
    "http://$REG/v2/demo/prog/manifests/v1" |
    python3 -c 'import json,sys; [print(l["digest"][7:19]) for l in json.load(sys.stdin)["layers"]]'
}
esc=$(printf '\033')

out=$(on_tty "$BIN/pier" push "$REG/demo/prog:v1") || { echo "$out"; fail "push on a tty"; }
mapfile -t ids < <(layers)
[ "${#ids[@]}" = 2 ] || fail "expected 2 layers, got ${#ids[@]}"
for id in "${ids[@]}"; do
  grep -q "$id: Pushing \[" <<<"$out" || { echo "$out"; fail "push: no bar for layer $id"; }
  grep -q "$id: Pushed" <<<"$out" || { echo "$out"; fail "push: layer $id not Pushed"; }
done
grep -q "$esc\[[0-9]*A" <<<"$out" || { echo "$out"; fail "push: lines not redrawn in place"; }
grep -q "/[0-9.]*[kM]B" <<<"$out" || { echo "$out"; fail "push: no done/total bytes"; }
grep -q "^$REG/demo/prog:v1: digest: sha256:" <<<"$out" || { echo "$out"; fail "push: no completion line"; }

pier rmi "$REG/demo/prog:v1" localhost/prog:base >/dev/null
out=$(on_tty "$BIN/pier" pull "$REG/demo/prog:v1") || { echo "$out"; fail "pull on a tty"; }
for id in "${ids[@]}"; do
  grep -q "$id: Downloading \[" <<<"$out" || { echo "$out"; fail "pull: no bar for layer $id"; }
  grep -q "$id: Download complete" <<<"$out" || { echo "$out"; fail "pull: layer $id incomplete"; }
done
grep -q "$esc\[[0-9]*A" <<<"$out" || { echo "$out"; fail "pull: lines not redrawn in place"; }
grep -q "^Pulled $REG/demo/prog:v1 (sha256:" <<<"$out" || { echo "$out"; fail "pull: no completion line"; }

# Without a terminal: plain lines, one per state, no escape sequences.
pier rmi "$REG/demo/prog:v1" >/dev/null
pier pull "$REG/demo/prog:v1" >"$WORK/pull.out" 2>"$WORK/pull.err" || fail "pull without a tty"
grep -q "$esc" "$WORK/pull.err" "$WORK/pull.out" && fail "escape sequences without a tty"
for id in "${ids[@]}"; do
  [ "$(grep -c "^$id: Downloading" "$WORK/pull.err")" = 1 ] || { cat "$WORK/pull.err"; fail "plain pull: $id"; }
  grep -q "^$id: Download complete$" "$WORK/pull.err" || { cat "$WORK/pull.err"; fail "plain pull: $id done"; }
done
grep -q "^Pulled $REG/demo/prog:v1 (sha256:" "$WORK/pull.out" || fail "plain pull: completion line"
pier tag "$REG/demo/prog:v1" "$REG/demo/prog:v2"
pier push "$REG/demo/prog:v2" >"$WORK/push.out" 2>"$WORK/push.err" || fail "push without a tty"
grep -q "$esc" "$WORK/push.err" "$WORK/push.out" && fail "escape sequences in push without a tty"
for id in "${ids[@]}"; do
  grep -q "^$id: Layer already exists$" "$WORK/push.err" || { cat "$WORK/push.err"; fail "plain push: $id"; }
done

# -q: the result only, even on a terminal.
out=$(on_tty "$BIN/pier" pull -q "$REG/demo/prog:v1")
[[ "$out" =~ ^sha256:[0-9a-f]{64}$ ]] || fail "pull -q on a tty printed: $out"
out=$(on_tty "$BIN/pier" push -q "$REG/demo/prog:v1")
[[ "$out" =~ ^sha256:[0-9a-f]{64}$ ]] || fail "push -q on a tty printed: $out"
echo "progress: redrawn bars on a tty, plain lines otherwise, nothing with -q"
