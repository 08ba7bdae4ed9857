#!/usr/bin/env bash
# Checks what deploy/ ships, for real:
# - each example config in deploy/config is accepted: the three daemons start
#   with --config (its /etc/pier, /var/lib/pier and /run/pier paths moved
#   under a temporary directory, TLS files from scripts/certs, listen
#   addresses on free loopback ports), `pier status` sees all three SERVING
#   over mTLS, a client without a certificate is refused, and each exits 0 on
#   SIGTERM. The registry runs as it does under its systemd unit: as an
#   unprivileged user, with no_new_privs and an empty capability set. A config
#   with an unknown key is refused (exit 2).
# - the systemd units pass `systemd-analyze verify` without a warning.
# - the Kubernetes manifests parse and have the shape deploy/ documents.
# - prepare-context.sh makes a context whose rootfs runs each service alone
#   (chroot): the ldd-copied libraries are complete.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
BIN=${PIER_BIN_DIR:-$top/build/bin}
WORK=$(mktemp -d /tmp/pier-deploy-XXXXXX)
chmod 0755 "$WORK"
source "$(dirname "$0")/lib/daemons.sh"
cleanup() {
  for pid in "${PIDS[@]:-}"; do [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# --- example configs -------------------------------------------------------
"$top/scripts/certs" "$WORK/etc/pier/tls" >/dev/null
htpasswd -cbB "$WORK/etc/pier/htpasswd" alice s3cret 2>/dev/null
for s in registry builder runtime; do
  sed -e "s#/etc/pier#$WORK/etc/pier#g" -e "s#/var/lib/pier#$WORK/lib#g" \
      -e "s#/run/pier#$WORK/run#g" "$top/deploy/config/$s.conf" > "$WORK/$s.conf"
  grep -q "$WORK" "$WORK/$s.conf" || fail "$s.conf names no path under /etc/pier or /var/lib/pier"
done
# The registry's unit runs it as an unprivileged user: so does this test.
mkdir -p "$WORK/lib/registry"
chown nobody "$WORK/lib/registry" "$WORK/etc/pier/tls/server.key" "$WORK/etc/pier/htpasswd"
chmod 0755 "$WORK/lib" "$WORK/etc" "$WORK/etc/pier" "$WORK/etc/pier/tls"

start registry setpriv --reuid=nobody --regid=nogroup --clear-groups --no-new-privs \
  --inh-caps=-all --bounding-set=-all \
  "$BIN/pier-registry" --config="$WORK/registry.conf" --listen=127.0.0.1:0 --http-listen=127.0.0.1:0
start builder "$BIN/pier-builder" --config="$WORK/builder.conf" --listen=127.0.0.1:0
start runtime "$BIN/pier-runtime" --config="$WORK/runtime.conf"
wait_listening registry http
wait_listening builder grpc
wait_listening runtime grpc
export PIER_REGISTRY=$(listen_addr registry grpc) PIER_BUILDER=$(listen_addr builder grpc) \
       PIER_RUNTIME=$(listen_addr runtime grpc)
[ "$PIER_RUNTIME" = "unix://$WORK/run/runtime.sock" ] || fail "runtime not on its configured socket: $PIER_RUNTIME"
http=$(listen_addr registry http)
tls=(--tls-ca "$WORK/etc/pier/tls/ca.crt" --tls-cert "$WORK/etc/pier/tls/client.crt"
     --tls-key "$WORK/etc/pier/tls/client.key")
"$BIN/pier" "${tls[@]}" status || fail "pier status over mTLS"
if "$BIN/pier" --tls-ca "$WORK/etc/pier/tls/ca.crt" status --timeout 2 >"$WORK/nocert.out"; then
  fail "a client without a certificate was served"
fi
[ "$(grep -c UNREACHABLE "$WORK/nocert.out")" = 3 ] || { cat "$WORK/nocert.out"; fail "no-cert refusal"; }
# The registry's HTTP side: TLS, and the token auth of the config.
code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$WORK/etc/pier/tls/ca.crt" "https://$http/v2/")
[ "$code" = 401 ] || fail "GET /v2/ without a token answered $code, want 401"
curl -fsS --cacert "$WORK/etc/pier/tls/ca.crt" -u alice:s3cret \
  "https://$http/token?service=pier-registry" | grep '"token"' >/dev/null || fail "no token for alice"
[ "$(stat -c %U "$WORK/lib/registry/meta")" = nobody ] || fail "registry did not run as nobody"

for name in registry builder runtime; do
  eval "pid=\$${name}_pid"
  kill -TERM "$pid"
  rc=0; wait "$pid" || rc=$?
  [ "$rc" = 0 ] || { cat "$WORK/$name.err" >&2; fail "$name exited $rc on SIGTERM"; }
done
PIDS=()
# A config is really read: an unknown key is refused.
{ cat "$WORK/builder.conf"; echo "no-such-flag = 1"; } > "$WORK/bad.conf"
rc=0; "$BIN/pier-builder" --config="$WORK/bad.conf" --listen=127.0.0.1:0 >/dev/null 2>"$WORK/bad.err" || rc=$?
[ "$rc" = 2 ] && grep -q "no-such-flag" "$WORK/bad.err" || fail "bad config: exit $rc"
echo "ok: example configs accepted (mTLS, token auth, unprivileged registry)"

# --- systemd units -----------------------------------------------------------
if command -v systemd-analyze >/dev/null; then
  mkdir -p "$WORK/units"
  for u in "$top"/deploy/systemd/*.service; do
    sed "s#/usr/local/bin/#$BIN/#" "$u" > "$WORK/units/$(basename "$u")"
  done
  out=$(systemd-analyze verify "$WORK"/units/*.service 2>&1) || fail "systemd-analyze verify: $out"
  [ -z "$out" ] || fail "systemd-analyze verify warned: $out"
  for u in "$WORK"/units/*.service; do
    grep -q "^ExecStart=$BIN/pier-[a-z]* --config=/etc/pier/[a-z]*.conf$" "$u" || fail "$u: ExecStart"
  done
  echo "ok: systemd units verified"
else
  echo "skip: systemd-analyze not installed"
fi

# --- Kubernetes manifests ----------------------------------------------------
/usr/bin/python3 - "$top/deploy/kubernetes" <<'PY' || fail "kubernetes manifests"
import glob, sys, yaml
docs = {}
for path in sorted(glob.glob(sys.argv[1] + "/*.yaml")):
    for d in yaml.safe_load_all(open(path)):
        assert d["apiVersion"] and d["kind"] and d["metadata"]["name"], path
        docs[(d["kind"], d["metadata"]["name"])] = d
def pod(kind, name):
    return docs[(kind, name)]["spec"]["template"]["spec"]
reg = pod("Deployment", "pier-registry")
claims = [v["persistentVolumeClaim"]["claimName"] for v in reg["volumes"] if "persistentVolumeClaim" in v]
assert claims and ("PersistentVolumeClaim", claims[0]) in docs, "registry PVC"
svc = docs[("Service", "pier-registry")]["spec"]
assert {p["port"] for p in svc["ports"]} == {5000, 5050}, "registry Service ports"
assert not reg["containers"][0]["securityContext"].get("privileged"), "registry unprivileged"
assert pod("Deployment", "pier-builder")["containers"][0]["securityContext"]["privileged"]
rt = pod("DaemonSet", "pier-runtime")
assert rt["containers"][0]["securityContext"]["privileged"] and rt["hostPID"]
paths = {v["hostPath"]["path"] for v in rt["volumes"] if "hostPath" in v}
for p in ["/var/lib/pier/runtime", "/run/pier", "/sys/fs/cgroup", "/usr/lib/cni"]:
    assert p in paths, "runtime hostPath " + p
for kind, name in docs:
    if kind in ("Deployment", "DaemonSet"):
        spec = docs[(kind, name)]["spec"]
        labels = spec["template"]["metadata"]["labels"]
        assert all(labels.get(k) == v for k, v in spec["selector"]["matchLabels"].items()), name
        vols = {v["name"] for v in spec["template"]["spec"]["volumes"]}
        for c in spec["template"]["spec"]["containers"]:
            for m in c.get("volumeMounts", []):
                assert m["name"] in vols, f"{name}: mount of undeclared volume {m['name']}"
            for a in c["args"]:
                assert a.startswith("--"), f"{name}: arg {a}"
print(f"ok: {len(docs)} Kubernetes objects")
PY
# Every flag the manifests pass exists (--help lists it).
for s in registry builder runtime; do
  for flag in $(grep -o -- '- --[a-z-]*' "$top/deploy/kubernetes/$s.yaml" | cut -c3-); do
    "$BIN/pier-$s" --help | grep -- "$flag " >/dev/null || fail "$s.yaml: pier-$s has no $flag"
  done
done

# --- image contexts ----------------------------------------------------------
for s in registry builder runtime; do
  "$top/deploy/docker/prepare-context.sh" "$s" "$WORK/ctx-$s" "$BIN" >/dev/null
  [ -f "$WORK/ctx-$s/Dockerfile" ] || fail "$s: no Dockerfile in the context"
  chroot "$WORK/ctx-$s/rootfs" "/usr/local/bin/pier-$s" --help | grep "^Usage: pier-$s" >/dev/null ||
    fail "$s: the context's rootfs cannot run pier-$s"
done
# pier-shim has no --help; exit 127 would mean chroot could not execute it.
rc=0; chroot "$WORK/ctx-runtime/rootfs" /usr/local/bin/pier-shim >/dev/null 2>&1 || rc=$?
[ "$rc" != 127 ] || fail "runtime: pier-shim cannot run in its rootfs"
# pier-builder builds the registry's image from that context, FROM a busybox
# base it built itself, and pushes it to pier-registry.
start registry "$BIN/pier-registry" --listen=127.0.0.1:0 --http-listen=127.0.0.1:0 \
  --root="$WORK/build-registry"
start builder "$BIN/pier-builder" --listen=127.0.0.1:0 --root="$WORK/build-builder"
wait_listening registry http
wait_listening builder grpc
http=$(listen_addr registry http)
mkdir -p "$WORK/base/rootfs/bin"
cp /bin/busybox "$WORK/base/rootfs/bin/"
ln -s busybox "$WORK/base/rootfs/bin/sh"
printf 'FROM scratch\nCOPY rootfs/ /\nCMD ["sh"]\n' > "$WORK/base/Dockerfile"
pb() { "$BIN/pier" --builder "$(listen_addr builder grpc)" build "$@" >"$WORK/build.out" 2>&1 ||
  { cat "$WORK/build.out"; fail "pier build $*"; }; }
pb -t "$http/base/busybox:latest" "$WORK/base"
pb --build-arg BASE="$http/base/busybox:latest" -t "$http/pier/pier-registry:test" "$WORK/ctx-registry"
grep -q "^pushed $http/pier/pier-registry:test@sha256:" "$WORK/build.out" || fail "image not pushed"
curl -fsS "http://$http/v2/pier/pier-registry/tags/list" | grep '"test"' >/dev/null || fail "tag not listed"
echo "ok: pier build of the registry image"
echo "deploy: configs, units, manifests and image contexts OK"
