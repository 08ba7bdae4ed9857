#!/usr/bin/env bash
# --format on every listing and inspect verb of the pier CLI, against real
# daemons: images, ps, history, volume ls, volume inspect, registry ls,
# registry tags, inspect (image and container). For each: `--format json`
# prints one JSON object per line with the expected values, a template
# ('{{.Field}}') prints exactly the field; inspect and volume inspect print
# a JSON array by default. A bad template is a usage error (exit 2), an
# unknown field an error naming it (exit 1).
set -euo pipefail
if [ -z "${PIER_TEST_IN_NETNS:-}" ]; then
  exec env PIER_TEST_IN_NETNS=1 unshare --net --mount --fork -- "$0" "$@"
fi
ip link set lo up
BIN=${PIER_BIN_DIR:-$(cd "$(dirname "$0")/../build/bin" && pwd)}
WORK=$(mktemp -d /tmp/pier-cli-format-XXXXXX)
source "$(dirname "$0")/lib/daemons.sh"
cleanup() {
  if [ -n "${PIER_RUNTIME:-}" ]; then
    "$BIN/pier" rm -f fmt >/dev/null 2>&1 || true
    "$BIN/pier" volume rm fmtdata >/dev/null 2>&1 || true
  fi
  stop_daemons
  rm -rf "$WORK"
}
trap cleanup EXIT
pier() { "$BIN/pier" "$@"; }

start_daemon registry http pier-registry --listen=127.0.0.1:0 --http-listen=127.0.0.1:0 --root="$WORK/registry"
REG=$ADDR
export PIER_REGISTRY=$(grep -o "grpc listening on .*" "$WORK/registry.out" | cut -d' ' -f4)
start_daemon runtime grpc pier-runtime --listen="unix://$WORK/runtime.sock" --root="$WORK/runtime"
export PIER_RUNTIME="unix://$WORK/runtime.sock" PIER_CONFIG="$WORK/config.json"

mkdir -p "$WORK/rootfs/bin"
cp /bin/busybox "$WORK/rootfs/bin/busybox"
ln -s busybox "$WORK/rootfs/bin/sh"
tar -C "$WORK/rootfs" -cf "$WORK/rootfs.tar" .
id=$(pier import -c 'CMD ["sh"]' "$WORK/rootfs.tar" localhost/fmt:v1)
pier tag localhost/fmt:v1 "$REG/demo/fmt:v1"
digest=$(pier push -q "$REG/demo/fmt:v1")
pier volume create fmtdata >/dev/null
cid=$(pier create --name fmt --network none -v fmtdata:/data localhost/fmt:v1 true)

# json_lines CHECK VERB...: every line of the verb's --format json output is
# a JSON object; CHECK, a Python expression over `rows`, must hold.
json_lines() {
  local check=$1; shift
  pier "$@" --format json >"$WORK/out.json" || fail "pier $* --format json"
  python3 -c '
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
assert all(isinstance(r, dict) for r in rows), rows
assert '"$check"', rows
' "$WORK/out.json" || { cat "$WORK/out.json"; fail "pier $* --format json: $check"; }
}
# template WANT FORMAT VERB...: the verb prints exactly WANT.
template() {
  local want=$1 format=$2; shift 2
  local got
  got=$(pier "$@" --format "$format") || fail "pier $* --format '$format'"
  [ "$got" = "$want" ] || fail "pier $* --format '$format': got '$got', want '$want'"
}

json_lines "any(r['Repository'] == 'localhost/fmt' and r['Tag'] == 'v1' and r['ID'] == '$id' for r in rows)" images
got=$(pier images --format '{{.Repository}} {{.Tag}}' | sort)
[ "$got" = "$(printf '%s/demo/fmt v1\nlocalhost/fmt v1\n' "$REG" | sort)" ] ||
  fail "pier images --format '{{.Repository}} {{.Tag}}': $got"
json_lines "[r['Names'] for r in rows] == ['fmt'] and rows[0]['ID'] == '$cid' and rows[0]['State'] == 'created'" ps -a
template "fmt	created" '{{.Names}}\t{{.State}}' ps -a
json_lines "len(rows) >= 1 and rows[0]['CreatedBy'] != '' and isinstance(rows[0]['Size'], int)" history localhost/fmt:v1
json_lines "[r['Name'] for r in rows] == ['fmtdata'] and rows[0]['Driver'] == 'local'" volume ls
template "fmtdata local" '{{.Name}} {{.Driver}}' volume ls
json_lines "rows[0]['Name'] == 'fmtdata' and rows[0]['InUse'] is True and rows[0]['Mountpoint'] != ''" volume inspect fmtdata
json_lines "[r['Repository'] for r in rows] == ['demo/fmt']" registry ls
template "demo/fmt" '{{.Repository}}' registry ls
json_lines "[(r['Tag'], r['Digest']) for r in rows] == [('v1', '$digest')]" registry tags demo/fmt
template "v1 $digest" '{{.Tag}} {{.Digest}}' registry tags demo/fmt
json_lines "rows[0]['image']['id'] == '$id'" inspect --type image localhost/fmt:v1
template "$id" '{{.image.id}}' inspect localhost/fmt:v1
json_lines "rows[0]['container']['id'] == '$cid'" inspect fmt
template "fmt" '{{.container.name}}' inspect fmt
template '"fmt"' '{{json .container.name}}' inspect fmt

# Default inspect output: one JSON array of every record found.
pier inspect fmt localhost/fmt:v1 | python3 -c '
import json, sys
a = json.load(sys.stdin)
assert isinstance(a, list) and len(a) == 2 and a[0]["container"]["name"] == "fmt", a
' || fail "pier inspect: not a JSON array of two records"
pier volume inspect fmtdata | python3 -c '
import json, sys
a = json.load(sys.stdin)
assert a[0]["Name"] == "fmtdata", a
' || fail "pier volume inspect: not a JSON array"
# The table stays the default.
pier images | head -1 | grep "^REPOSITORY" >/dev/null || fail "images table header"

# Errors.
rc=0; pier images --format '{{.ID' >/dev/null 2>"$WORK/err" || rc=$?
[ "$rc" = 2 ] && grep -q 'unclosed "{{"' "$WORK/err" || fail "unclosed template: exit $rc: $(cat "$WORK/err")"
rc=0; pier ps -a --format '{{.Nope}}' >/dev/null 2>"$WORK/err" || rc=$?
[ "$rc" = 1 ] && grep -q 'no field "Nope".*Names' "$WORK/err" ||
  fail "unknown field: exit $rc: $(cat "$WORK/err")"
rc=0; pier history --format '{{range .}}' localhost/fmt:v1 >/dev/null 2>"$WORK/err" || rc=$?
[ "$rc" = 2 ] && grep -q 'unsupported action' "$WORK/err" || fail "unsupported action: exit $rc"
echo "--format: json and templates on images, ps, history, volume ls/inspect, registry ls/tags, inspect"
