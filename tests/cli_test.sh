#!/usr/bin/env bash
# The pier CLI against real daemons: pier-registry (HTTP) and pier-runtime
# (unix socket), both on free loopback addresses under a temporary root.
# Walks import, run (foreground exit code, -d, -e, --name, --rm), ps, logs,
# stop, rm, commit, tag, push, rmi, pull, save, load, and the errors users
# meet first.
set -euo pipefail
# Containers get bridge networking by default: run everything in a private
# network namespace with only loopback, so no bridge, veth or NAT rule ever
# touches the host's network.
if [ -z "${PIER_TEST_IN_NETNS:-}" ]; then
  exec env PIER_TEST_IN_NETNS=1 unshare --net --mount --fork -- "$0" "$@"
fi
ip link set lo up
BIN=${PIER_BIN_DIR:-$(cd "$(dirname "$0")/../build/bin" && pwd)}
WORK=$(mktemp -d /tmp/pier-cli-XXXXXX)
source "$(dirname "$0")/lib/daemons.sh"
cleanup() {
  if [ -n "${PIER_RUNTIME:-}" ]; then
    for c in $("$BIN/pier" ps -a -q 2>/dev/null); do "$BIN/pier" rm -f "$c" >/dev/null 2>&1 || true; done
  fi
  stop_daemons
  rm -rf "$WORK"
}
trap cleanup EXIT
pier() { "$BIN/pier" "$@"; }


start_daemon registry http pier-registry --listen=127.0.0.1:0 --http-listen=127.0.0.1:0 --root="$WORK/registry"
REG=$ADDR

start_daemon runtime grpc pier-runtime --listen="unix://$WORK/runtime.sock" --root="$WORK/runtime"
export PIER_RUNTIME="unix://$WORK/runtime.sock"

# A base image from Debian's busybox-static.
mkdir -p "$WORK/rootfs/bin" "$WORK/rootfs/tmp"
cp /bin/busybox "$WORK/rootfs/bin/busybox"
for a in sh echo cat ls sleep env hostname ps touch id pwd; do ln -s busybox "$WORK/rootfs/bin/$a"; done
tar -C "$WORK/rootfs" -cf "$WORK/rootfs.tar" .
id=$(pier import -c 'CMD ["sh"]' -c 'ENV GREETING=hello' "$WORK/rootfs.tar" localhost/busybox:latest)
[ -n "$id" ] || fail "import printed no id"
pier images | grep "localhost/busybox" >/dev/null || fail "imported image not listed"

# Foreground run: output, exit code, environment from image and -e.
set +e
out=$(pier run --rm -e WHO=pier localhost/busybox:latest sh -c 'echo "$GREETING $WHO"; exit 3')
rc=$?
set -e
[ "$rc" = 3 ] || fail "pier run exit code $rc, expected 3"
[ "$out" = "hello pier" ] || fail "pier run output: $out"

# Detached, named; ps, logs, stop, rm.
cid=$(pier run -d --name web localhost/busybox:latest sh -c 'echo started; exec sleep 1000')
pier ps | grep " web$" >/dev/null || fail "ps does not list web"
for _ in $(seq 1 100); do pier logs web | grep started >/dev/null && break; sleep 0.05; done
pier logs web | grep started >/dev/null || fail "logs: $(pier logs web)"
# exec: a new process in the same container, stdin, exit code.
out=$(pier exec web sh -c 'cat /proc/1/cmdline | tr "\0" " "')
grep -q "sleep 1000" <<<"$out" || fail "exec does not see the container's init: $out"
out=$(echo piped | pier exec -i web cat)
[ "$out" = piped ] || fail "exec -i: $out"
set +e
pier exec web sh -c 'exit 5'; rc=$?
set -e
[ "$rc" = 5 ] || fail "exec exit code $rc, expected 5"
# exec -d: returns at once, the process runs on.
out=$(pier exec -d web sh -c 'sleep 0.2; touch /tmp/bg') || fail "exec -d failed: $out"
[ -z "$out" ] || fail "exec -d printed: $out"
for _ in $(seq 1 50); do pier exec web ls /tmp/bg >/dev/null 2>&1 && break; sleep 0.1; done
pier exec web ls /tmp/bg >/dev/null 2>&1 || fail "exec -d: the background process did not run"
set +e
pier exec -d -i web true 2>/dev/null; rc=$?
set -e
[ "$rc" = 2 ] || fail "exec -d -i exited $rc, expected 2"
# exec -it: a shell on a pty of the container, typed into through `script`.
set +e
out=$(printf 'echo ex-$((6*7)); busybox tty\nexit 6\n' |
  script -qfec "$BIN/pier exec -it web sh" /dev/null); rc=$?
set -e
[ "$rc" = 6 ] || fail "exec -it exit code $rc, expected 6: $out"
grep -q "ex-42" <<<"$out" || fail "exec -it output: $out"
grep -q "^/dev/pts/[0-9]" <<<"$out" || fail "exec -it has no pty: $out"
out=$(script -qfec "stty rows 31 cols 97; $BIN/pier exec -t web busybox stty size" /dev/null </dev/null)
grep -q "31 97" <<<"$out" || fail "exec -t tty size: $out"
# Attach: run -it / -i / -t in the foreground and pier attach; `script`
# gives the CLI a pty.
set +e
out=$(printf 'echo hi-$((6*7))\nexit 7\n' |
  script -qfec "$BIN/pier run -it --rm localhost/busybox:latest sh" /dev/null); rc=$?
set -e
[ "$rc" = 7 ] || fail "run -it exit code $rc, expected 7: $out"
grep -q "hi-42" <<<"$out" || fail "run -it output: $out"
out=$(pier run -i --rm localhost/busybox:latest cat <<< piped)
[ "$out" = piped ] || fail "run -i: $out"
out=$(pier run -i --rm localhost/busybox:latest echo quick </dev/null)
[ "$out" = quick ] || fail "run -i of a short-lived container: $out"
out=$(script -qfec "stty rows 33 cols 101; $BIN/pier run -t --rm localhost/busybox:latest \
  sh -c 'sleep 0.5; busybox stty size'" /dev/null </dev/null)
grep -q "33 101" <<<"$out" || fail "run -t tty size: $out"
pier run -d -i --name att localhost/busybox:latest sh -c 'read x; echo got-$x; exit 4' >/dev/null
set +e
out=$(echo hello | pier attach att); rc=$?
set -e
[ "$rc" = 4 ] || fail "attach exit code $rc, expected 4: $out"
[ "$out" = got-hello ] || fail "attach output: $out"
pier rm att >/dev/null
pier ps -a | grep " att$" >/dev/null && fail "att still listed after rm"
# Detach keys. tty_start runs a CLI command on a pty (script) typed into
# through fd 3 (a fifo); its output collects in $WORK/tty.out.
tty_start() {
  rm -f "$WORK/tty.in" "$WORK/tty.out"
  mkfifo "$WORK/tty.in"
  script -qfec "$1" /dev/null <"$WORK/tty.in" >"$WORK/tty.out" 2>&1 &
  TTY_PID=$!
  exec 3>"$WORK/tty.in"
}
tty_expect() {
  for _ in $(seq 1 200); do grep -qF -- "$1" "$WORK/tty.out" && return 0; sleep 0.05; done
  fail "no \"$1\" on the terminal: $(cat -v "$WORK/tty.out")"
}
# Waits (10 s at most) for the command to end; its exit code in TTY_RC.
tty_end() {
  for _ in $(seq 1 200); do kill -0 "$TTY_PID" 2>/dev/null || break; sleep 0.05; done
  if kill -0 "$TTY_PID" 2>/dev/null; then
    kill "$TTY_PID"
    exec 3>&-
    fail "$1 did not end: $(cat -v "$WORK/tty.out")"
  fi
  set +e
  wait "$TTY_PID"
  TTY_RC=$?
  set -e
  exec 3>&-
}
# run -it: ctrl-p ctrl-q leaves the shell running; the CLI exits 0 quietly.
tty_start "$BIN/pier run -it --name x localhost/busybox:latest sh"
for _ in $(seq 1 100); do pier ps | grep " x$" >/dev/null && break; sleep 0.05; done
printf 'echo typed-$((6*7))\n' >&3
tty_expect typed-42
printf '\020\021' >&3
tty_end "run -it after ctrl-p ctrl-q"
[ "$TTY_RC" = 0 ] || fail "run -it detach exit code $TTY_RC: $(cat -v "$WORK/tty.out")"
grep -q "escape" "$WORK/tty.out" && fail "run -it detach printed: $(cat -v "$WORK/tty.out")"
pier ps | grep " x$" | grep Up >/dev/null || fail "x not running after detach: $(pier ps -a)"
# pier attach --detach-keys: its own keys only; as docker, it reports the
# escape sequence and exits 1.
tty_start "$BIN/pier attach --detach-keys ctrl-x,y x"
printf 'echo again-$((6*7))\n' >&3
tty_expect again-42
printf '\030y' >&3
tty_end "attach after ctrl-x y"
[ "$TTY_RC" = 1 ] || fail "attach detach exit code $TTY_RC: $(cat -v "$WORK/tty.out")"
tty_expect "read escape sequence"
pier ps | grep " x$" | grep Up >/dev/null || fail "x not running after attach detach: $(pier ps -a)"
# A partial match is forwarded once the next byte breaks it; the default
# keys mean nothing with other keys set.
pier run -d -it --name cv localhost/busybox:latest \
  sh -c 'while read -r l; do echo "[$l]" | cat -v; done' >/dev/null
tty_start "$BIN/pier attach --detach-keys ctrl-x,y cv"
printf 'sync\n' >&3
tty_expect "[sync]"
printf 'a\030zb\020c\n' >&3
tty_expect "[a^Xzb^Pc]"
printf '\030y' >&3
tty_end "attach cv after ctrl-x y"
[ "$TTY_RC" = 1 ] || fail "attach cv detach exit code $TTY_RC"
pier ps | grep " cv$" | grep Up >/dev/null || fail "cv not running after detach: $(pier ps -a)"
# The config file's detach-keys, and a malformed sequence.
printf 'detach-keys = ctrl-x,y\n' >"$WORK/pier.conf"
tty_start "PIER_CLI_CONFIG=$WORK/pier.conf $BIN/pier attach x"
printf 'echo conf-$((6*7))\n' >&3
tty_expect conf-42
printf '\030y' >&3
tty_end "attach with the config file's detach keys"
[ "$TTY_RC" = 1 ] || fail "attach (config keys) exit code $TTY_RC"
out=$(pier attach --detach-keys ctrl-1 x 2>&1) && fail "attach accepted ctrl-1"
echo "$out" | grep 'ctrl-1' >/dev/null || fail "bad detach keys error: $out"
# start -ai: attached from the start, detached by the keys.
pier stop -t 1 x >/dev/null
tty_start "$BIN/pier start -ai x"
printf 'echo start-$((6*7))\n' >&3
tty_expect start-42
printf '\020\021' >&3
tty_end "start -ai after ctrl-p ctrl-q"
[ "$TTY_RC" = 0 ] || fail "start -ai detach exit code $TTY_RC: $(cat -v "$WORK/tty.out")"
pier ps | grep " x$" | grep Up >/dev/null || fail "x not running after start -ai detach: $(pier ps -a)"
once=$(pier create localhost/busybox:latest sh -c 'echo from-start; exit 3')
set +e
out=$(pier start -a "$once"); rc=$?
set -e
[ "$rc" = 3 ] && [ "$out" = from-start ] || fail "start -a: exit code $rc, output: $out"
pier rm -f x cv "$once" >/dev/null
set +e
pier run -d --name web localhost/busybox:latest true >/dev/null 2>"$WORK/err"; rc=$?
set -e
[ "$rc" = 1 ] && grep -qi "web" "$WORK/err" || fail "name clash not refused: $(cat "$WORK/err")"
pier rm web >/dev/null 2>&1 && fail "rm of a running container without -f succeeded"
pier stop -t 1 web >/dev/null
pier ps -a | grep " web$" | grep -i "exited" >/dev/null || fail "web not exited after stop: $(pier ps -a)"
pier rm web >/dev/null
pier ps -a | grep " web$" >/dev/null && fail "web still listed after rm"
# Events: web's lifecycle, replayed (--since) up to now (--until ends it).
out=$(pier events --since 10m --until 0s --filter container=web)
for a in create start kill die stop destroy; do
  grep -q " container $a $cid" <<<"$out" || fail "events lack $a of web: $out"
done
out=$(pier events --since 10m --until 0s --filter container=web --filter event=die --format json)
[ "$(echo "$out" | wc -l)" = 1 ] && grep -q '"action":"die"' <<<"$out" \
  || fail "events --filter event=die --format json: $out"
pier events --filter type=nope >/dev/null 2>&1 && fail "events accepted type=nope"

# Commit, tag, push, remove, pull, save, load.
pier run --name maker localhost/busybox:latest sh -c 'echo made > /tmp/artifact' >/dev/null
pier commit maker localhost/made:v1 >/dev/null
pier rm maker >/dev/null
out=$(pier run --rm localhost/made:v1 cat /tmp/artifact)
[ "$out" = made ] || fail "committed image lost the file: $out"
pier history localhost/made:v1 | grep "pier commit" >/dev/null || fail "history: $(pier history localhost/made:v1)"
pier inspect localhost/made:v1 | grep '"repo_tags"' >/dev/null || fail "inspect image"
pier run --name exp localhost/made:v1 sh -c : >/dev/null
pier inspect exp | grep '"name": "exp"' >/dev/null || fail "inspect container: $(pier inspect exp)"
pier export -o "$WORK/exp.tar" exp
tar -tf "$WORK/exp.tar" | grep "tmp/artifact" >/dev/null || fail "export lacks tmp/artifact"
pier rm exp >/dev/null
pier tag localhost/made:v1 "$REG/demo/made:v1"
pier push -q "$REG/demo/made:v1" >/dev/null
pier rmi "$REG/demo/made:v1" localhost/made:v1 >/dev/null
pier pull -q "$REG/demo/made:v1" >/dev/null
out=$(pier run --rm "$REG/demo/made:v1" cat /tmp/artifact)
[ "$out" = made ] || fail "pulled image lost the file: $out"
pier save -o "$WORK/made.tar" "$REG/demo/made:v1"
pier rmi "$REG/demo/made:v1" >/dev/null
pier load -i "$WORK/made.tar" | grep "demo/made:v1" >/dev/null || fail "load did not report the image"
out=$(pier run --rm "$REG/demo/made:v1" cat /tmp/artifact)
[ "$out" = made ] || fail "loaded image lost the file: $out"

# Flags, checked from inside and outside the container.
[ "$(pier run --rm --hostname box7 localhost/busybox:latest hostname)" = box7 ] || fail "--hostname"
[ "$(pier run --rm localhost/busybox:latest hostname)" != "$(hostname)" ] || fail "hostname not isolated"
n=$(pier run --rm localhost/busybox:latest ps -o pid | wc -l)
[ "$n" -le 3 ] || fail "ps in the container sees $n lines: not its own pid namespace"
pier run --rm --read-only localhost/busybox:latest touch /x 2>/dev/null && fail "--read-only accepted a write"
[ "$(pier run --rm -u 1234:5678 localhost/busybox:latest id -u)" = 1234 ] || fail "-u"
[ "$(pier run --rm -w /tmp localhost/busybox:latest sh -c pwd)" = /tmp ] || fail "-w"
# Capabilities and namespaces: --privileged has root's whole set here,
# --cap-drop/--cap-add take one away or add it, --pid=host sees this shell.
[ "$(pier run --rm --privileged localhost/busybox:latest busybox grep CapEff /proc/self/status)" = \
  "$(grep CapEff /proc/self/status)" ] || fail "--privileged lacks capabilities"
pier run --rm localhost/busybox:latest sh -c 'touch /tmp/f && busybox chown 1 /tmp/f' \
  || fail "chown refused without --cap-drop"
pier run --rm --cap-drop CHOWN localhost/busybox:latest sh -c 'touch /tmp/f && busybox chown 1 /tmp/f' \
  2>/dev/null && fail "--cap-drop CHOWN still allows chown"
pier run --rm --network none localhost/busybox:latest busybox ip link set lo mtu 1400 2>/dev/null \
  && fail "ip link set without NET_ADMIN succeeded"
pier run --rm --network none --cap-add NET_ADMIN localhost/busybox:latest busybox ip link set lo mtu 1400 \
  || fail "--cap-add NET_ADMIN"
pier run --rm --pid=host localhost/busybox:latest sh -c "test -d /proc/$$" || fail "--pid=host"
pier run --rm localhost/busybox:latest sh -c "test -d /proc/$$" && fail "pid namespace sees the host"
echo "FROM_FILE=yes" > "$WORK/env.list"
[ "$(pier run --rm --env-file "$WORK/env.list" localhost/busybox:latest sh -c 'echo $FROM_FILE')" = yes ] \
  || fail "--env-file"
set +e
pier run --rm -m 32m localhost/busybox:latest busybox dd if=/dev/zero of=/dev/shm/fill bs=1M count=200 \
  >/dev/null 2>&1; rc=$?
set -e
[ "$rc" = 137 ] || fail "-m 32m: expected an OOM kill (137), got $rc"
set +e
out=$(pier run --rm --pids-limit 4 localhost/busybox:latest sh -c \
  'for i in 1 2 3 4 5 6; do sleep 2 & done; wait' 2>&1); rc=$?
set -e
echo "$out" | grep -i "fork\|resource" >/dev/null || fail "--pids-limit did not refuse forks: rc=$rc $out"
pier run -d --name stubborn localhost/busybox:latest sh -c "trap '' TERM; while true; do sleep 1; done" >/dev/null
pier stop -t 1 stubborn >/dev/null
[ "$(pier wait stubborn)" = 137 ] || fail "stop did not SIGKILL a process ignoring SIGTERM"
pier rm stubborn >/dev/null
pier run -d --name flaky --restart=on-failure:2 localhost/busybox:latest sh -c 'echo run; exit 1' >/dev/null
for _ in $(seq 1 100); do [ "$(pier logs flaky | grep -c run)" -ge 3 ] && break; sleep 0.1; done
[ "$(pier logs flaky | grep -c run)" = 3 ] || fail "--restart=on-failure:2 ran $(pier logs flaky | grep -c run) times"
pier rm -f flaky >/dev/null
set +e
pier run --rm --restart=sometimes localhost/busybox:latest true 2>"$WORK/err"; rc=$?
set -e
[ "$rc" = 2 ] && grep -q "sometimes" "$WORK/err" || fail "invalid restart policy: rc=$rc"

# Volumes: a named one outlives its containers; an image VOLUME path gets
# an anonymous one that `rm -v` removes.
pier volume create data >/dev/null
pier run --rm -v data:/data localhost/busybox:latest sh -c 'echo kept > /data/f' >/dev/null
out=$(pier run --rm -v data:/data:ro localhost/busybox:latest cat /data/f)
[ "$out" = kept ] || fail "named volume lost its data: $out"
pier run --rm -v data:/data:ro localhost/busybox:latest touch /data/g 2>/dev/null \
  && fail "read-only volume accepted a write"
pier volume ls -q | grep -x data >/dev/null || fail "volume ls: $(pier volume ls)"
pier run -d --name holder -v data:/data localhost/busybox:latest sleep 1000 >/dev/null
pier volume rm data >/dev/null 2>&1 && fail "removed a volume in use"
pier rm -f holder >/dev/null
pier volume rm data >/dev/null
pier volume ls -q | grep -x data >/dev/null && fail "volume still listed after rm"
pier import -c 'VOLUME /state' "$WORK/rootfs.tar" localhost/withvol:latest >/dev/null
pier run --name v1 localhost/withvol:latest sh -c 'echo x > /state/y' >/dev/null
[ "$(pier volume ls -q | wc -l)" = 1 ] || fail "no anonymous volume for VOLUME /state"
pier rm -v v1 >/dev/null
[ "$(pier volume ls -q | wc -l)" = 0 ] || fail "rm -v left the anonymous volume"

# volume prune: unused anonymous volumes, with -a named ones too; asks
# first without -f.
pier volume create keep-named >/dev/null
anon=$(pier volume create)
out=$(echo n | pier volume prune 2>/dev/null)
pier volume ls -q | grep -x "$anon" >/dev/null || fail "volume prune without confirmation removed $anon"
out=$(echo y | pier volume prune 2>/dev/null)
echo "$out" | grep -x "$anon" >/dev/null && echo "$out" | grep "Total reclaimed space" >/dev/null \
  || fail "volume prune: $out"
pier volume ls -q | grep -x keep-named >/dev/null || fail "volume prune removed a named volume"
pier volume prune -a -f | grep -x keep-named >/dev/null || fail "volume prune -a kept keep-named"
[ "$(pier volume ls -q | wc -l)" = 0 ] || fail "volume prune -a left: $(pier volume ls -q)"

# pause / unpause: the container's processes stop, then go on; exec is
# refused while paused; kill works on a paused container.
pier run -d --name frozen localhost/busybox:latest \
  sh -c 'i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.05; done' >/dev/null
fpid=$(pier inspect frozen | python3 -c 'import json,sys; d=json.load(sys.stdin); d=d[0] if isinstance(d,list) else d; print(d["container"]["state"]["pid"])')
# The file is rewritten (truncated, then written) 20 times a second: a read
# can land in between and see it empty, so an empty read is read again.
count() {
  local v=""
  for _ in 1 2 3 4 5; do
    v=$(cat "/proc/$fpid/root/tmp/count" 2>/dev/null) || v=""
    [ -n "$v" ] && break
    sleep 0.01
  done
  echo "${v:-0}"
}
for _ in $(seq 1 100); do [ "$(count)" -gt 2 ] && break; sleep 0.05; done
pier pause frozen
pier ps | grep " frozen$" | grep "Paused" >/dev/null || fail "ps does not show frozen as paused: $(pier ps)"
a=$(count); sleep 0.5; b=$(count)
[ "$a" = "$b" ] || fail "a paused container went on counting: $a -> $b"
pier exec frozen sh -c : 2>"$WORK/err" && fail "exec into a paused container succeeded"
grep -q "paused" "$WORK/err" || fail "exec into a paused container: $(cat "$WORK/err")"
pier pause frozen 2>"$WORK/err" && fail "pause of a paused container succeeded"
pier unpause frozen
c=$b
for _ in $(seq 1 100); do c=$(count); [ "$c" -gt "$b" ] && break; sleep 0.05; done
[ "$c" -gt "$b" ] || fail "the container did not go on after unpause ($b -> $c)"
pier pause frozen
pier kill frozen >/dev/null
[ "$(pier wait frozen)" = 137 ] || fail "kill of a paused container: $(pier wait frozen)"
pier rm frozen >/dev/null

# stats: limits from the flags, processes, CPU of a busy loop.
pier run -d --name busy -m 64m --pids-limit 20 localhost/busybox:latest \
  sh -c 'while :; do :; done' >/dev/null
out=$(pier stats --no-stream --format json busy)
python3 - "$out" <<'PY' || fail "stats: $out"
import json, sys
r = json.loads(sys.argv[1])
assert r["MemLimit"] == 64 << 20, r
assert r["PIDsLimit"] == 20 and r["PIDs"] >= 1, r
assert float(r["CPUPerc"].rstrip("%")) > 20, r  # a busy loop, sampled over a second
PY
pier stats --no-stream busy | grep "MEM USAGE / LIMIT" >/dev/null || fail "stats table: $(pier stats --no-stream busy)"
pier rm -f busy >/dev/null
pier stats --no-stream busy 2>"$WORK/err" && fail "stats of a removed container succeeded"

# -d --rm: the runtime removes the container itself once it exits.
pier run -d --rm --name auto localhost/busybox:latest sh -c 'sleep 0.3' >/dev/null
pier ps -a | grep " auto$" >/dev/null || fail "-d --rm container not listed while it runs"
for _ in $(seq 1 100); do pier ps -a | grep " auto$" >/dev/null || break; sleep 0.1; done
pier ps -a | grep " auto$" >/dev/null && fail "-d --rm container still listed after its exit: $(pier ps -a)"
set +e
pier run -d --rm --restart=always localhost/busybox:latest true >/dev/null 2>"$WORK/err"; rc=$?
set -e
[ "$rc" = 1 ] && grep -q "restart" "$WORK/err" || fail "--rm with --restart=always: rc=$rc $(cat "$WORK/err")"

# container prune: stopped containers go, running ones stay; image prune:
# dangling images, then with -a every unused one, counted in bytes.
pier run --name stopped1 localhost/busybox:latest sh -c : >/dev/null
pier run -d --name running1 localhost/busybox:latest sleep 1000 >/dev/null
sid=$(pier inspect stopped1 | python3 -c 'import json,sys; d=json.load(sys.stdin); d=d[0] if isinstance(d,list) else d; print(d["container"]["id"])')
out=$(pier container prune -f)
echo "$out" | grep -x "$sid" >/dev/null || fail "container prune: $out"
pier ps -a | grep " stopped1$" >/dev/null && fail "container prune left stopped1"
pier ps | grep " running1$" >/dev/null || fail "container prune removed running1"
pier import "$WORK/rootfs.tar" >/dev/null  # dangling
out=$(pier image prune -f)
echo "$out" | grep "^deleted: sha256:" >/dev/null || fail "image prune: $out"
pier images | grep "<none>" >/dev/null && fail "image prune left a dangling image: $(pier images)"
pier image prune -f --filter until=nonsense >/dev/null 2>&1 && fail "image prune took until=nonsense"
pier image prune -a -f --filter until=1h | grep "^deleted" >/dev/null && fail "until=1h pruned a new image"
out=$(pier image prune -a -f)
echo "$out" | grep "^untagged: " >/dev/null || fail "image prune -a: $out"
pier images | grep "localhost/busybox" >/dev/null || fail "image prune -a removed the image running1 uses"
pier rm -f running1 >/dev/null

# Errors users meet first.
set +e
pier run --rm localhost/nope:latest true >/dev/null 2>"$WORK/err"; rc=$?
set -e
[ "$rc" = 1 ] && grep -q "nope" "$WORK/err" || fail "unknown image: rc=$rc $(cat "$WORK/err")"
set +e
pier run --rm -v /does/not/exist:/data localhost/busybox:latest true >/dev/null 2>"$WORK/err"; rc=$?
set -e
[ "$rc" = 1 ] && grep -q "/does/not/exist" "$WORK/err" || fail "missing volume: rc=$rc $(cat "$WORK/err")"
echo "cli: 1 passed, 0 failed"
