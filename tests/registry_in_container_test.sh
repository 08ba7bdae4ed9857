#!/usr/bin/env bash
# Pier builds Pier, then runs it: pier-builder builds the pier-registry image
# from deploy/docker (the binary and its libraries on a busybox base it built
# itself) and pushes it to a host pier-registry; pier-runtime pulls it and
# runs it (`pier run -d -p 127.0.0.1:PORT:5000 -v regdata:/var/lib/pier/registry`);
# then an image goes into the containerised registry and back out, with
# `pier push`/`pier pull` and with skopeo, digests identical. The registry
# is replaced by a second container on the same volume, which still serves
# the image. Containers, volume and daemons are removed even on failure.
set -euo pipefail
# Bridge networking and -p: inside a private network namespace with only
# loopback, so no bridge, veth or NAT rule touches the host's network.
if [ -z "${PIER_TEST_IN_NETNS:-}" ]; then
  exec env PIER_TEST_IN_NETNS=1 unshare --net --mount --fork -- "$0" "$@"
fi
ip link set lo up
top=$(cd "$(dirname "$0")/.." && pwd)
BIN=${PIER_BIN_DIR:-$top/build/bin}
WORK=$(mktemp -d /tmp/pier-reg-in-ctr-XXXXXX)
chmod 0755 "$WORK"
source "$(dirname "$0")/lib/daemons.sh"
cleanup() {
  if [ -S "$WORK/runtime.sock" ]; then
    for c in reg reg2; do "$BIN/pier" rm -f "$c" >/dev/null 2>&1 || true; done
    "$BIN/pier" volume rm regdata >/dev/null 2>&1 || true
  fi
  for pid in "${PIDS[@]:-}"; do [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
  rm -rf "$WORK"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  for c in reg reg2; do "$BIN/pier" logs "$c" 2>/dev/null | tail -20 | sed "s/^/$c: /" >&2 || true; done
  exit 1
}

start registry "$BIN/pier-registry" --listen=127.0.0.1:0 --http-listen=127.0.0.1:0 \
  --root="$WORK/host-registry"
start builder "$BIN/pier-builder" --listen=127.0.0.1:0 --root="$WORK/builder"
start runtime "$BIN/pier-runtime" --listen="unix://$WORK/runtime.sock" --root="$WORK/runtime"
wait_listening registry http
wait_listening builder grpc
wait_listening runtime grpc
HOST_REG=$(listen_addr registry http)
export PIER_BUILDER=$(listen_addr builder grpc) PIER_RUNTIME="unix://$WORK/runtime.sock" \
       PIER_CONFIG="$WORK/config.json"
pier() { "$BIN/pier" "$@"; }

# --- pier-builder builds the registry image -----------------------------------------
mkdir -p "$WORK/base/rootfs/bin"
cp /bin/busybox "$WORK/base/rootfs/bin/"
ln -s busybox "$WORK/base/rootfs/bin/sh"
printf 'FROM scratch\nCOPY rootfs/ /\nCMD ["sh"]\n' > "$WORK/base/Dockerfile"
pier build -t "$HOST_REG/base/busybox:latest" "$WORK/base" >"$WORK/build.out" 2>&1 ||
  { cat "$WORK/build.out"; fail "build of the busybox base"; }
"$top/deploy/docker/prepare-context.sh" registry "$WORK/ctx" "$BIN" >/dev/null
image="$HOST_REG/pier/pier-registry:test"
pier build --build-arg BASE="$HOST_REG/base/busybox:latest" -t "$image" "$WORK/ctx" \
  >"$WORK/build.out" 2>&1 || { cat "$WORK/build.out"; fail "build of the registry image"; }
grep -q "^pushed $image@sha256:" "$WORK/build.out" || fail "registry image not pushed"

# --- pier-runtime runs it ----------------------------------------------------------------
pier pull -q "$image" >/dev/null || fail "runtime pull of $image"
base_id=$(pier pull -q "$HOST_REG/base/busybox:latest") || fail "runtime pull of the base"
pier volume create regdata >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
REG="127.0.0.1:$port"
pier run -d -p "$REG:5000" --name reg -v regdata:/var/lib/pier/registry "$image" >/dev/null ||
  fail "pier run of the registry image"
# serving REG: waits (bounded) until the containerised registry answers /v2/.
serving() {
  local name=$1
  for _ in $(seq 1 200); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$REG/v2/")" = 200 ] && return 0
    pier ps | grep " $name$" >/dev/null || fail "container $name is not running: $(pier ps -a)"
    sleep 0.1
  done
  fail "the registry in $name does not answer on $REG"
}
serving reg
pier logs reg 2>&1 | grep "http listening on 0.0.0.0:5000" >/dev/null || fail "registry log: $(pier logs reg)"

# --- pier push / pier pull through it ------------------------------------------------------
pier tag "$HOST_REG/base/busybox:latest" "$REG/demo/busybox:v1"
pushed=$(pier push -q "$REG/demo/busybox:v1") || fail "pier push into the containerised registry"
case "$pushed" in sha256:*) ;; *) fail "pier push printed no digest: $pushed" ;; esac
# Nothing of it stays on the node: the pull fetches every blob from the container.
pier rmi "$REG/demo/busybox:v1" "$HOST_REG/base/busybox:latest" >/dev/null
pier images | grep "busybox" >/dev/null && fail "busybox still listed after rmi: $(pier images)"
pulled=$(pier pull -q "$REG/demo/busybox:v1") || fail "pier pull from the containerised registry"
[ "$pulled" = "$base_id" ] || fail "pulled image $pulled, pushed $base_id"
pier pull -q "$REG/demo/busybox@$pushed" >/dev/null || fail "pier pull by the pushed digest"
served=$(curl -fsS -H "Accept: application/vnd.oci.image.manifest.v1+json" \
  -H "Accept: application/vnd.docker.distribution.manifest.v2+json" \
  "http://$REG/v2/demo/busybox/manifests/v1" | sha256sum | cut -d' ' -f1)
[ "sha256:$served" = "$pushed" ] || fail "registry serves sha256:$served, pier pushed $pushed"

# --- skopeo through it ------------------------------------------------------------------------
skopeo copy -q --src-tls-verify=false "docker://$REG/demo/busybox:v1" "oci:$WORK/layout:v1" ||
  fail "skopeo copy out of the containerised registry"
skopeo copy -q --preserve-digests --dest-tls-verify=false "oci:$WORK/layout:v1" \
  "docker://$REG/demo/skopeo:v1" || fail "skopeo copy into the containerised registry"
sk=$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$REG/demo/skopeo:v1")
[ "$sk" = "$pushed" ] || fail "skopeo's copy has digest $sk, want $pushed"
[ "$(pier pull -q "$REG/demo/skopeo:v1")" = "$base_id" ] || fail "pier pull of skopeo's copy"

# --- the data lives on the volume: a new container serves it ---------------------------------------
pier stop reg >/dev/null || fail "pier stop reg"
pier ps | grep " reg$" >/dev/null && fail "reg still running after stop"
pier rm reg >/dev/null || fail "pier rm reg (refused unless stopped)"
pier run -d -p "$REG:5000" --name reg2 -v regdata:/var/lib/pier/registry "$image" >/dev/null ||
  fail "second registry container on the same volume"
serving reg2
curl -fsS "http://$REG/v2/demo/busybox/tags/list" | grep '"v1"' >/dev/null ||
  fail "the new container does not list demo/busybox:v1"
pier rm -f reg2 >/dev/null || fail "pier rm -f reg2"
pier volume rm regdata >/dev/null || fail "pier volume rm regdata"
[ -z "$(pier ps -a -q)" ] || fail "containers left: $(pier ps -a)"
echo "registry in a container: built by pier-builder, run by pier-runtime, push/pull by pier and skopeo"
