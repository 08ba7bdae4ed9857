# Shared helpers for the peer-client tests: start a real pier-registry on
# loopback (free ports) under a temporary directory, and clean up by PID.
# Sourced by the *_test.sh scripts; BIN points at build/bin.
set -euo pipefail

BIN=${PIER_BIN_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../build/bin" && pwd)}
WORK=$(mktemp -d /tmp/pier-peers-XXXXXX)
PIDS=()

cleanup() {
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }

# start_registry NAME [flags...]: starts pier-registry with its data in
# $WORK/NAME, sets REG_HTTP and REG_GRPC, and REG_PID.
start_registry() {
  local name=$1; shift
  local out="$WORK/$name.out"
  "$BIN/pier-registry" --listen=127.0.0.1:0 --http-listen=127.0.0.1:0 \
      --root="$WORK/$name" "$@" >"$out" 2>"$WORK/$name.err" &
  REG_PID=$!
  PIDS+=("$REG_PID")
  for _ in $(seq 1 300); do
    if grep -q "http listening on" "$out"; then break; fi
    kill -0 "$REG_PID" 2>/dev/null || { cat "$WORK/$name.err" >&2; fail "pier-registry exited"; }
    sleep 0.05
  done
  REG_HTTP=$(grep -o "http listening on .*" "$out" | cut -d' ' -f4)
  REG_GRPC=$(grep -o "grpc listening on .*" "$out" | cut -d' ' -f4)
  [ -n "$REG_HTTP" ] || fail "pier-registry did not announce its HTTP address"
}

stop_registry() {
  kill -TERM "$REG_PID"
  wait "$REG_PID" || fail "pier-registry did not exit 0 on SIGTERM"
}

# make_image LAYOUT TAG: a three-layer OCI image built with umoci from
# busybox-static, so nothing comes from a public registry. Each layer is one
# unpack, change, repack.
make_image() {
  local layout=$1 tag=$2
  local bundle="$WORK/bundle-$tag"
  umoci init --layout "$layout" 2>/dev/null || true
  umoci new --image "$layout:$tag"
  umoci unpack --image "$layout:$tag" "$bundle" >/dev/null
  mkdir -p "$bundle/rootfs/bin"
  cp /bin/busybox "$bundle/rootfs/bin/busybox"
  ln -sf busybox "$bundle/rootfs/bin/sh"
  umoci repack --image "$layout:$tag" "$bundle"
  rm -rf "$bundle"
  umoci unpack --image "$layout:$tag" "$bundle" >/dev/null
  mkdir -p "$bundle/rootfs/etc"
  echo "pier peer test $tag" > "$bundle/rootfs/etc/motd"
  head -c 300000 /dev/urandom > "$bundle/rootfs/etc/random.bin"
  umoci repack --image "$layout:$tag" "$bundle"
  rm -rf "$bundle"
  umoci unpack --image "$layout:$tag" "$bundle" >/dev/null
  rm -f "$bundle/rootfs/etc/motd"
  umoci repack --image "$layout:$tag" "$bundle"
  rm -rf "$bundle"
  umoci config --image "$layout:$tag" --config.cmd /bin/sh --config.env PIER=1
}

# make_certs: a throwaway CA ($WORK/trust/ca.crt, as a cert dir for skopeo and
# podman) and a server certificate for 127.0.0.1 ($WORK/certs/server.{crt,key}).
make_certs() {
  mkdir -p "$WORK/certs" "$WORK/trust"
  ( cd "$WORK/certs"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 1 \
      -subj /CN=pier-peers-ca
    openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1
    printf 'subjectAltName=IP:127.0.0.1' > san.ext
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt \
      -days 1 -extfile san.ext ) >/dev/null 2>&1
  cp "$WORK/certs/ca.crt" "$WORK/trust/ca.crt"
}
