#!/usr/bin/env bash
# Token auth across the suite: pier-registry with --auth=token and an
# htpasswd user; pier-builder and pier-runtime get the credentials `pier
# login` stored from the CLI (BuildSpec.registry_auth, PullImageRequest.auth,
# PushImageRequest.auth) and do the Bearer token flow themselves.
# - without a login, a build's push, a runtime pull and a runtime push are
#   refused (exit 1) with a message naming the registry and `pier login`;
# - a wrong password is refused by `pier login`, and nothing is stored;
# - after `pier login`, the builder pushes and pulls its base, the runtime
#   pulls and pushes;
# - a token for one repository does not open another, a pull token does not
#   push, and a forged token is refused.
set -euo pipefail
if [ -z "${PIER_TEST_IN_NETNS:-}" ]; then
  # No container is run, but keep the suite off the host's network anyway.
  exec env PIER_TEST_IN_NETNS=1 unshare --net --mount --fork -- "$0" "$@"
fi
ip link set lo up
top=$(cd "$(dirname "$0")/.." && pwd)
BIN=${PIER_BIN_DIR:-$top/build/bin}
WORK=$(mktemp -d /tmp/pier-token-auth-XXXXXX)
source "$(dirname "$0")/lib/daemons.sh"
cleanup() {
  for pid in "${PIDS[@]:-}"; do [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
  rm -rf "$WORK"
}
trap cleanup EXIT


htpasswd -cbB "$WORK/htpasswd" alice s3cret 2>/dev/null
start registry "$BIN/pier-registry" --listen=127.0.0.1:0 --http-listen=127.0.0.1:0 \
  --root="$WORK/registry" --auth=token --htpasswd="$WORK/htpasswd"
start builder "$BIN/pier-builder" --listen=127.0.0.1:0 --root="$WORK/builder"
start runtime "$BIN/pier-runtime" --listen="unix://$WORK/runtime.sock" --root="$WORK/runtime"
wait_listening registry http
wait_listening builder grpc
wait_listening runtime grpc
REG=$(listen_addr registry http)
export PIER_REGISTRY=$(listen_addr registry grpc) PIER_BUILDER=$(listen_addr builder grpc) \
       PIER_RUNTIME="unix://$WORK/runtime.sock" PIER_CONFIG="$WORK/config.json"
pier() { "$BIN/pier" "$@"; }

# expect_refused WHAT COMMAND...: exit 1, and stderr names the registry and
# tells the user to `pier login` to it.
expect_refused() {
  local what=$1; shift
  local rc=0
  "$@" >"$WORK/refused.out" 2>&1 || rc=$?
  [ "$rc" = 1 ] || { cat "$WORK/refused.out"; fail "$what: exit $rc, want 1"; }
  grep -q "registry $REG requires authentication.*pier login $REG" "$WORK/refused.out" ||
    { cat "$WORK/refused.out"; fail "$what: the error does not say to pier login $REG"; }
}

mkdir -p "$WORK/base/rootfs/bin" "$WORK/app"
cp /bin/busybox "$WORK/base/rootfs/bin/"
printf 'FROM scratch\nCOPY rootfs/ /\nCMD ["busybox", "sh"]\n' > "$WORK/base/Dockerfile"
printf 'FROM %s/base/busybox:v1\nLABEL stage=app\n' "$REG" > "$WORK/app/Dockerfile"

# --- no login ------------------------------------------------------------------
expect_refused "build push without login" pier build -t "$REG/base/busybox:v1" "$WORK/base"
expect_refused "runtime pull without login" pier pull "$REG/base/busybox:v1"
[ ! -e "$PIER_CONFIG" ] || fail "a refused build stored credentials"

# --- pier login ------------------------------------------------------------------
rc=0
echo wrong | pier login -u alice --password-stdin "$REG" >"$WORK/login.out" 2>&1 || rc=$?
[ "$rc" = 1 ] || { cat "$WORK/login.out"; fail "login with a wrong password: exit $rc"; }
grep -q "refused the password of user \"alice\"" "$WORK/login.out" ||
  { cat "$WORK/login.out"; fail "wrong password: unclear error"; }
[ ! -e "$PIER_CONFIG" ] || fail "a refused login stored credentials"
echo s3cret | pier login -u alice --password-stdin "$REG" | grep "Login Succeeded" >/dev/null ||
  fail "pier login alice"

# --- builder: push, then pull its base, with the stored credentials -----------------
pier build -t "$REG/base/busybox:v1" "$WORK/base" >"$WORK/build.out" 2>&1 ||
  { cat "$WORK/build.out"; fail "build push after login"; }
grep -q "^pushed $REG/base/busybox:v1@sha256:" "$WORK/build.out" || fail "base not pushed"
pier build --pull -t "$REG/demo/app:v1" "$WORK/app" >"$WORK/build.out" 2>&1 ||
  { cat "$WORK/build.out"; fail "build pulling its base from the token registry"; }
app=$(grep -o "^pushed $REG/demo/app:v1@sha256:[0-9a-f]*" "$WORK/build.out" | cut -d@ -f2)
[ -n "$app" ] || { cat "$WORK/build.out"; fail "app not pushed"; }

# --- runtime: pull and push with the stored credentials ------------------------------
PIER_CONFIG="$WORK/none.json" expect_refused "runtime pull of a pushed image without login" \
  "$BIN/pier" pull "$REG/demo/app:v1"
pier pull "$REG/demo/app:v1" >"$WORK/pull.out" 2>&1 || { cat "$WORK/pull.out"; fail "runtime pull"; }
pier images | grep "$REG/demo/app" >/dev/null || fail "pulled image not listed"
pier tag "$REG/demo/app:v1" "$REG/demo/copy:v1"
PIER_CONFIG="$WORK/none.json" expect_refused "runtime push without login" \
  "$BIN/pier" push "$REG/demo/copy:v1"
pushed=$(pier push -q "$REG/demo/copy:v1") || fail "runtime push after login"
[ "$pushed" = "$app" ] || fail "pushed copy has digest $pushed, the build made $app"

# --- tokens are scoped ----------------------------------------------------------------
token=$(curl -fsS -u alice:s3cret \
  "http://$REG/token?service=pier-registry&scope=repository:demo/app:pull" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
accept=(-H "Accept: application/vnd.oci.image.manifest.v1+json")
[ "$(code "${accept[@]}" -H "Authorization: Bearer $token" "http://$REG/v2/demo/app/manifests/v1")" = 200 ] ||
  fail "a pull token for demo/app does not pull demo/app"
[ "$(code "${accept[@]}" -H "Authorization: Bearer $token" "http://$REG/v2/demo/copy/manifests/v1")" = 401 ] ||
  fail "a token for demo/app opened demo/copy"
curl -s -D - -o /dev/null -H "Authorization: Bearer $token" "http://$REG/v2/demo/copy/tags/list" |
  grep -qi '^www-authenticate: Bearer .*error="insufficient_scope"' ||
  fail "refusal of another repository's token is not insufficient_scope"
[ "$(code -X POST -H "Authorization: Bearer $token" "http://$REG/v2/demo/app/blobs/uploads/")" = 401 ] ||
  fail "a pull token started an upload"
forged="${token%.*}.$(printf 'x%.0s' $(seq 1 43))"
[ "$(code "${accept[@]}" -H "Authorization: Bearer $forged" "http://$REG/v2/demo/app/manifests/v1")" = 401 ] ||
  fail "a token with a forged signature was accepted"

pier logout "$REG" >/dev/null
expect_refused "runtime pull after logout" pier pull "$REG/demo/app:v1"
echo "token auth: builder and runtime push and pull with pier login credentials; refusals clear"
