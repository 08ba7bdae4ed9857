#!/usr/bin/env bash
# scripts/up starts all three daemons (here on free ports under a temporary
# PIER_HOME), `pier status` reports each SERVING, and scripts/down stops them:
# each exits 0 within 2 seconds of SIGTERM.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
export PIER_HOME=$(mktemp -d /tmp/pier-up-test-XXXXXX)
trap 'PIER_HOME=$PIER_HOME "$top/scripts/down" >/dev/null 2>&1; rm -rf "$PIER_HOME"' EXIT
export PIER_REGISTRY_LISTEN=127.0.0.1:0 PIER_REGISTRY_HTTP_LISTEN=127.0.0.1:0 \
       PIER_BUILDER_LISTEN=127.0.0.1:0 \
       PIER_RUNTIME_LISTEN="unix://$PIER_HOME/run/runtime.sock"
out=$("$top/scripts/up")
echo "$out"
for d in pier-registry pier-builder pier-runtime; do
  echo "$out" | grep -E "^$d\s.*\sSERVING$" >/dev/null || { echo "FAIL: $d not SERVING"; exit 1; }
done
http=$(echo "$out" | grep -o "pier-registry: http listening on .*" | cut -d' ' -f5)
[ -n "$http" ] || { echo "FAIL: no HTTP address announced"; exit 1; }
curl -fsS "http://$http/v2/" >/dev/null || { echo "FAIL: GET /v2/ on $http"; exit 1; }
for d in pier-runtime pier-builder pier-registry; do
  pid=$(cat "$PIER_HOME/run/$d.pid")
  kill -TERM "$pid"
  for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then echo "FAIL: $d still running 2 s after SIGTERM"; exit 1; fi
  grep -q "stopped" "$PIER_HOME/log/$d.log" || { echo "FAIL: $d did not stop cleanly"; exit 1; }
done
echo "scripts/up: 3 daemons SERVING, all stopped on SIGTERM"
