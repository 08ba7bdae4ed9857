#!/usr/bin/env bash
# The whole story, as the README's quickstart tells it: scripts/up starts the
# suite on its default addresses, then a base image made from Debian's
# busybox-static is imported and pushed, an image is built on pier-builder
# from a Dockerfile, pushed, pulled and run with a published port and a
# restart policy, reached with curl, exec'd into with a tty, followed with
# logs -f, committed, saved, loaded, exported, imported, tagged, pushed and
# pulled under a second name, stopped, started, killed and removed. Every
# step's effect is checked.
#
# It runs in private network and mount namespaces: the default ports
# (5000, 5050, 5051, 8080) and /run/pier are this test's own, and the
# containers' bridge and NAT rules never touch the host's network.
set -euo pipefail
if [ -z "${PIER_TEST_IN_NETNS:-}" ]; then
  exec env PIER_TEST_IN_NETNS=1 unshare --net --mount --fork -- "$0" "$@"
fi
mount --make-rprivate /
ip link set lo up
mkdir -p /run/pier
mount -t tmpfs tmpfs /run/pier
top=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/pier-e2e-XXXXXX)
export PIER_HOME="$WORK/home"
LOGS_PID=""
cleanup() {
  set +e
  [ -n "$LOGS_PID" ] && kill "$LOGS_PID" 2>/dev/null && wait "$LOGS_PID" 2>/dev/null
  if [ -n "${PIER_RUNTIME:-}" ]; then
    for c in $("$top/build/bin/pier" ps -aq 2>/dev/null); do
      "$top/build/bin/pier" rm -f "$c" >/dev/null 2>&1
    done
  fi
  "$top/scripts/down" >/dev/null 2>&1
  rm -rf "$WORK"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  for d in pier-registry pier-builder pier-runtime; do
    echo "--- $d log (tail)" >&2
    tail -n 20 "$PIER_HOME/log/$d.log" >&2 2>/dev/null
  done
  exit 1
}
step() { echo "== $*"; }
export PATH="$top/build/bin:$PATH"

# Waits (bounded: ~10 s) until the command succeeds.
eventually() {
  for _ in $(seq 1 100); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  "$@"
}

step "scripts/up"
"$top/scripts/up" >"$WORK/up.out" 2>&1 || { cat "$WORK/up.out"; fail "scripts/up"; }
eval "$(grep -o 'export PIER_REGISTRY=.*' "$WORK/up.out")"
[ "$PIER_REGISTRY" = 127.0.0.1:5050 ] && [ "$PIER_BUILDER" = 127.0.0.1:5051 ] &&
  [ "$PIER_RUNTIME" = unix:///run/pier/runtime.sock ] || fail "unexpected addresses: $(cat "$WORK/up.out")"
pier status | grep -c SERVING | grep -x 3 >/dev/null || fail "not all SERVING: $(pier status)"
REG=127.0.0.1:5000

step "a base image from busybox-static: import, push"
mkdir -p "$WORK/rootfs/bin" "$WORK/rootfs/tmp"
cp /bin/busybox "$WORK/rootfs/bin/busybox"
for a in $(/bin/busybox --list); do
  [ "$a" = busybox ] || ln -s busybox "$WORK/rootfs/bin/$a"
done
tar -C "$WORK/rootfs" -cf "$WORK/rootfs.tar" .
pier import -c 'CMD ["sh"]' "$WORK/rootfs.tar" localhost/busybox:latest >/dev/null
pier push -q localhost/busybox:latest >/dev/null
pier registry tags busybox | grep latest >/dev/null || fail "busybox not in the registry: $(pier registry tags busybox)"

step "pier build -t $REG/demo/web:v1"
mkdir -p "$WORK/demo"
cat >"$WORK/demo/Dockerfile" <<'EOF'
FROM localhost/busybox:latest
MAINTAINER Pier <admin@example.org>
RUN mkdir -p /www && echo hello > /www/index.html
EXPOSE 80 443
CMD ["httpd", "-f", "-p", "80", "-h", "/www"]
EOF
pier build -t "$REG/demo/web:v1" "$WORK/demo" >"$WORK/build.out" 2>&1 ||
  { cat "$WORK/build.out"; fail "pier build"; }
pier registry tags demo/web | grep v1 >/dev/null || fail "demo/web:v1 not pushed: $(pier registry tags demo/web)"

step "pier pull, inspect: the Dockerfile's config"
pier pull -q "$REG/demo/web:v1" >/dev/null
pier inspect "$REG/demo/web:v1" >"$WORK/image.json"
grep -q '"80/tcp"' "$WORK/image.json" && grep -q '"443/tcp"' "$WORK/image.json" ||
  fail "EXPOSE 80 443 missing: $(cat "$WORK/image.json")"
grep -q 'admin@example.org' "$WORK/image.json" || fail "MAINTAINER missing"
grep -q '"httpd"' "$WORK/image.json" || fail "CMD missing"

step "pier run -d -p 127.0.0.1:8080:80 --name web --restart=always"
pier run -d -p 127.0.0.1:8080:80 --name web --restart=always "$REG/demo/web:v1" >/dev/null
eventually curl -fsS http://127.0.0.1:8080/ >"$WORK/curl.out" || fail "curl: $(cat "$WORK/curl.out")"
[ "$(curl -fsS http://127.0.0.1:8080/)" = hello ] || fail "curl said: $(curl -sS http://127.0.0.1:8080/)"
pier ps | grep " web$" >/dev/null || fail "ps: $(pier ps)"
pier ps | grep " web$" | grep "127.0.0.1:8080->80/tcp" >/dev/null || fail "ps lacks the port: $(pier ps)"

step "pier exec -it web sh"
if [ -z "${SKIP_EXEC_TTY:-}" ]; then
out=$(printf 'cat /www/index.html; echo pid-of-init=$(cat /proc/1/comm); tty\nexit\n' |
  script -qfec "pier exec -it web sh" /dev/null) || fail "exec -it: $out"
grep -q "^hello" <<<"$out" || fail "exec -it did not show index.html: $out"
grep -q "pid-of-init=httpd" <<<"$out" || fail "exec -it not in the container: $out"
grep -q "/dev/pts/" <<<"$out" || fail "exec -it has no tty: $out"
fi

step "pier logs -f web"
pier logs -f web >"$WORK/logs.out" 2>&1 &
LOGS_PID=$!
pier exec web sh -c 'echo from-the-story > /proc/1/fd/1'
eventually grep -q from-the-story "$WORK/logs.out" || fail "logs -f missed the line: $(cat "$WORK/logs.out")"
kill -0 "$LOGS_PID" || fail "logs -f ended while web runs"
kill "$LOGS_PID"; wait "$LOGS_PID" 2>/dev/null || true; LOGS_PID=""

# FIELD of web's state from `pier inspect` (pid, status: running, exited...).
web_state() {
  pier inspect web | python3 -c '
import json, sys
d = json.load(sys.stdin)
d = d[0] if isinstance(d, list) else d
s = d["container"].get("state", {})
f = sys.argv[1]
v = s.get(f, 0 if f == "pid" else "")
print(v.replace("CONTAINER_STATUS_", "").lower() if f == "status" else v)' "$1"
}

step "--restart=always brings web back after its process dies"
pid=$(web_state pid)
[ -n "$pid" ] && [ "$pid" -gt 0 ] || fail "no pid for web"
kill -KILL "$pid"
restarted() {
  local p
  [ "$(web_state status)" = running ] || return 1
  p=$(web_state pid)
  [ "$p" != 0 ] && [ "$p" != "$pid" ]
}
eventually restarted || fail "web not restarted: $(pier inspect web)"
eventually curl -fsS http://127.0.0.1:8080/ || fail "web does not answer after its restart"

step "pier commit web backup/web, save, load"
pier exec web sh -c 'echo bye > /www/bye.html'
pier commit web backup/web >/dev/null
[ "$(pier run --rm backup/web cat /www/bye.html)" = bye ] || fail "commit lost /www/bye.html"
pier save -o "$WORK/web.tar" backup/web
tar -tf "$WORK/web.tar" | grep manifest.json >/dev/null || fail "save wrote no manifest.json"
pier rmi backup/web >/dev/null
pier images | grep "backup/web" >/dev/null && fail "rmi left backup/web"
pier load -i "$WORK/web.tar" | grep "backup/web" >/dev/null || fail "load did not report backup/web"
[ "$(pier run --rm backup/web cat /www/bye.html)" = bye ] || fail "loaded image lost /www/bye.html"

step "pier export | pier import"
pier export -o "$WORK/fs.tar" web
pier import -c 'CMD ["httpd", "-f", "-p", "80", "-h", "/www"]' "$WORK/fs.tar" localhost/web-flat:latest >/dev/null
[ "$(pier run --rm localhost/web-flat:latest cat /www/index.html)" = hello ] || fail "imported export lost index.html"
[ "$(pier history localhost/web-flat:latest -q 2>/dev/null | wc -l)" -le 2 ] || true

step "pier tag / push / pull between two names"
pier tag "$REG/demo/web:v1" "$REG/demo/web:v2"
pier push -q "$REG/demo/web:v2" >/dev/null
tags=$(pier registry tags demo/web)
grep -q v1 <<<"$tags" && grep -q v2 <<<"$tags" || fail "registry tags: $tags"
d1=$(echo "$tags" | awk '$1=="v1"{print $2}')
d2=$(echo "$tags" | awk '$1=="v2"{print $2}')
[ -n "$d1" ] && [ "$d1" = "$d2" ] || fail "v1 and v2 differ: $tags"
pier rmi "$REG/demo/web:v2" >/dev/null
pier pull -q "$REG/demo/web:v2" >/dev/null
[ "$(pier run --rm "$REG/demo/web:v2" cat /www/index.html)" = hello ] || fail "pulled v2 lost index.html"

step "pier stop: SIGTERM, and the restart policy leaves it stopped"
pier stop web >/dev/null
state() { web_state status; }
[ "$(state)" = exited ] || fail "web is $(state) after stop"
sleep 1
[ "$(state)" = exited ] || fail "web came back after stop: $(state)"
curl -fsS --max-time 2 http://127.0.0.1:8080/ >/dev/null 2>&1 && fail "web still answers after stop"

step "pier start, pier kill"
pier start web >/dev/null
eventually curl -fsS http://127.0.0.1:8080/ || fail "web does not answer after start"
pier kill web >/dev/null
[ "$(pier wait web)" = 137 ] || fail "kill: exit code $(pier wait web), expected 137"
sleep 1
[ "$(state)" = exited ] || fail "web came back after kill: $(state)"

step "pier rm"
pier rm web >/dev/null
pier ps -a | grep " web$" >/dev/null && fail "web still listed after rm"
set +e
pier inspect web >/dev/null 2>"$WORK/err"; rc=$?
set -e
[ "$rc" = 1 ] && grep -q web "$WORK/err" || fail "inspect of a removed container: rc=$rc $(cat "$WORK/err")"
echo "e2e story: passed"
