#!/usr/bin/env bash
# scripts/up --tls on free ports under a temporary PIER_HOME: every service is
# SERVING through mTLS with the generated client certificate; a client
# without a certificate is refused on gRPC and on the registry's HTTPS port
# (and plain http is not served); the services use mTLS among themselves:
# pier-builder pushes a FROM-scratch busybox image to the registry and pulls
# it back as the base of a second build, pier-runtime pulls it. scripts/down
# stops everything.
set -euo pipefail
if [ -z "${PIER_TEST_IN_NETNS:-}" ]; then
  # Containers are not run, but keep the suite off the host's network anyway.
  exec env PIER_TEST_IN_NETNS=1 unshare --net --mount --fork -- "$0" "$@"
fi
ip link set lo up
top=$(cd "$(dirname "$0")/.." && pwd)
export PIER_HOME=$(mktemp -d /tmp/pier-up-tls-test-XXXXXX)
trap 'PIER_HOME=$PIER_HOME "$top/scripts/down" >/dev/null 2>&1; rm -rf "$PIER_HOME"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
export PIER_REGISTRY_LISTEN=127.0.0.1:0 PIER_REGISTRY_HTTP_LISTEN=127.0.0.1:0 \
       PIER_BUILDER_LISTEN=127.0.0.1:0 \
       PIER_RUNTIME_LISTEN="unix://$PIER_HOME/run/runtime.sock"
out=$("$top/scripts/up" --tls)
echo "$out"
# Take the environment exactly as scripts/up prints it.
eval "$(echo "$out" | grep '^  export PIER_')"
[ -f "$PIER_TLS_CA" ] && [ -f "$PIER_TLS_CERT" ] && [ -f "$PIER_TLS_KEY" ] || fail "TLS env not printed"
pier() { "$top/build/bin/pier" "$@"; }
for d in pier-registry pier-builder pier-runtime; do
  echo "$out" | grep -E "^$d\s.*\sSERVING$" >/dev/null || fail "$d not SERVING"
done
pier status >/dev/null || fail "pier status with PIER_TLS_*"
# docker's flag names work as well as the environment.
env -u PIER_TLS_CA -u PIER_TLS_CERT -u PIER_TLS_KEY "$top/build/bin/pier" \
  --tlscacert "$PIER_TLS_CA" --tlscert "$PIER_TLS_CERT" --tlskey "$PIER_TLS_KEY" status >/dev/null ||
  fail "pier --tlscacert/--tlscert/--tlskey status"

# Refusals: no client certificate, or no TLS at all.
nocert=$(env -u PIER_TLS_CERT -u PIER_TLS_KEY "$top/build/bin/pier" status --timeout 2) &&
  fail "gRPC served a client without a certificate"
[ "$(echo "$nocert" | grep -c UNREACHABLE)" = 3 ] || fail "no-cert: $nocert"
plain=$(env -u PIER_TLS_CA -u PIER_TLS_CERT -u PIER_TLS_KEY "$top/build/bin/pier" status --timeout 2) &&
  fail "gRPC served a plaintext client"
http=$(echo "$out" | grep -o "pier-registry: http listening on .*" | cut -d' ' -f5)
[ -n "$http" ] || fail "no HTTP address announced"
curl -fsS --cacert "$PIER_TLS_CA" --cert "$PIER_TLS_CERT" --key "$PIER_TLS_KEY" \
  "https://$http/v2/" >/dev/null || fail "GET /v2/ with the client certificate"
curl -sS --cacert "$PIER_TLS_CA" "https://$http/v2/" >/dev/null 2>&1 &&
  fail "registry HTTPS served a client without a certificate"
curl -sS "http://$http/v2/" >/dev/null 2>&1 && fail "registry served plain http"

# Builder -> registry (push, then pull of the base) and runtime -> registry.
ctx=$PIER_HOME/ctx
mkdir -p "$ctx/base/rootfs/bin" "$ctx/app"
cp /bin/busybox "$ctx/base/rootfs/bin/"
printf 'FROM scratch\nCOPY rootfs/ /\nCMD ["busybox", "sh"]\n' > "$ctx/base/Dockerfile"
pier build -t "$http/base/busybox:latest" "$ctx/base" >"$PIER_HOME/build.out" 2>&1 ||
  { cat "$PIER_HOME/build.out"; fail "build and push over mTLS"; }
printf 'FROM %s/base/busybox:latest\nLABEL stage=app\n' "$http" > "$ctx/app/Dockerfile"
pier build --pull -t "$http/demo/app:v1" "$ctx/app" >"$PIER_HOME/build.out" 2>&1 ||
  { cat "$PIER_HOME/build.out"; fail "build pulling its base over mTLS"; }
grep -q "^pushed $http/demo/app:v1@sha256:" "$PIER_HOME/build.out" || fail "app not pushed"
pier pull "$http/demo/app:v1" >/dev/null 2>&1 || fail "runtime pull over mTLS"
pier images | grep "$http/demo/app" >/dev/null || fail "pulled image not listed"

"$top/scripts/down" | grep -c stopped | grep -x 3 >/dev/null || fail "scripts/down did not stop 3 daemons"
echo "scripts/up --tls: mTLS between CLI, builder, runtime and registry; clients without certificates refused"
