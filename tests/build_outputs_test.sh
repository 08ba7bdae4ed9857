#!/usr/bin/env bash
# `pier build` outputs and git sources against a real pier-builder,
# pier-registry and pier-runtime on loopback:
# - -o type=local,dest=DIR (and the -o DIR shorthand): the image's root
#   filesystem lands in DIR on the client: files, modes, symlinks, owners,
#   and a file deleted by a later RUN (a whiteout) is absent; -o type=tar
#   writes the same tree as a plain tar;
# - -o type=registry,compression=zstd: the build's new layers are pushed as
#   tar+zstd (the base's stay gzip), with force-compression=true every layer
#   is zstd; the registry's manifest (curl and skopeo inspect --raw) names
#   the media types, and pier-runtime pulls and runs the image;
#   compression=uncompressed gives plain tar layers; type=oci carries zstd
#   layers, type=docker refuses zstd, mismatched outputs are refused;
# - ADD from a git daemon on 127.0.0.1: a branch, an annotated tag, a commit
#   id with a subdirectory, --keep-git-dir, --chown; a rebuild hits the
#   cache, a new commit on the branch misses only that step; a repository
#   on a dumb HTTP server; an unknown ref, a missing subdirectory and an
#   unreachable repository are errors naming the line and the URL.
set -euo pipefail
if [ -z "${PIER_TEST_IN_NETNS:-}" ]; then
  exec env PIER_TEST_IN_NETNS=1 unshare --net --mount --fork -- "$0" "$@"
fi
ip link set lo up
BIN=${PIER_BIN_DIR:-$(cd "$(dirname "$0")/../build/bin" && pwd)}
WORK=$(mktemp -d /tmp/pier-build-outputs-XXXXXX)
source "$(dirname "$0")/lib/daemons.sh"
SERVERS=()  # git daemon, http server: they exit non-zero on SIGTERM
cleanup() {
  if [ -n "${PIER_RUNTIME:-}" ]; then "$BIN/pier" rm -f zrun >/dev/null 2>&1 || true; fi
  for pid in "${SERVERS[@]:-}"; do
    [ -n "$pid" ] && { kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; }
  done
  stop_daemons
  rm -rf "$WORK"
}
trap cleanup EXIT
[ "$(id -u)" = 0 ] || fail "required: root (pier-builder runs RUN steps in namespaces)"
[ -x /bin/busybox ] || fail "required: busybox-static"
command -v git >/dev/null || fail "required: git"
command -v skopeo >/dev/null || fail "required: skopeo"

start_daemon registry http pier-registry --listen=127.0.0.1:0 --http-listen=127.0.0.1:0 --root="$WORK/registry"
REG=$ADDR
start_daemon builder grpc pier-builder --listen=127.0.0.1:0 --root="$WORK/builder"
export PIER_BUILDER=$ADDR
start_daemon runtime grpc pier-runtime --listen="unix://$WORK/runtime.sock" --root="$WORK/runtime"
export PIER_RUNTIME="unix://$WORK/runtime.sock" PIER_CONFIG="$WORK/config.json"
pier() { "$BIN/pier" "$@"; }
build() {  # LOG ARGS...: pier build, output in $WORK/LOG (shown on failure)
  local log=$1
  shift
  pier build --progress=plain "$@" >"$WORK/$log" 2>&1 || { cat "$WORK/$log"; fail "pier build $*"; }
}
manifest() {  # REPO TAG
  curl -fsS -H "Accept: application/vnd.oci.image.manifest.v1+json" "http://$REG/v2/$1/manifests/$2"
}
layer_types() {  # reads a manifest, prints its layers' media types
  python3 -c 'import json,sys; [print(l["mediaType"]) for l in json.load(sys.stdin)["layers"]]'
}
# The status ("CACHED" or "DONE") of the step whose title contains $2 in log $1.
step_status() {
  local n
  n=$(grep -F -- "$2" "$WORK/$1" | grep -o '^#[0-9]*' | head -1)
  [ -n "$n" ] || { cat "$WORK/$1"; fail "no step $2 in $1"; }
  grep -E "^$n (CACHED|DONE)" "$WORK/$1" | head -1 | cut -d' ' -f2
}

# The base image: busybox FROM scratch, gzip layers.
mkdir -p "$WORK/base/rootfs/bin" "$WORK/base/rootfs/tmp"
cp /bin/busybox "$WORK/base/rootfs/bin/busybox"
for a in sh echo cat rm ln chmod mkdir; do ln -s busybox "$WORK/base/rootfs/bin/$a"; done
printf 'FROM scratch\nCOPY rootfs/ /\nCMD ["/bin/sh"]\n' >"$WORK/base/Dockerfile"
build base.log -t "$REG/base/busybox:v1" "$WORK/base"

# --- type=local and type=tar ----------------------------------------------------
mkdir -p "$WORK/app"
cat >"$WORK/app/Dockerfile" <<EOF
FROM $REG/base/busybox:v1
RUN mkdir -p /out/sub && echo hello > /out/hello.txt && echo gone > /out/gone.txt && \
    ln -s hello.txt /out/link && chmod 0750 /out/sub && echo x > /out/sub/owned
RUN rm /out/gone.txt && chmod 0640 /out/hello.txt && chown 1234:4321 /out/sub/owned
CMD ["cat", "/out/hello.txt"]
EOF
build local.log -o "type=local,dest=$WORK/local" "$WORK/app"
grep -q "wrote $WORK/local" "$WORK/local.log" || { cat "$WORK/local.log"; fail "no 'wrote DIR' line"; }
L=$WORK/local
[ "$(cat "$L/out/hello.txt")" = hello ] || fail "type=local: out/hello.txt"
[ "$(stat -c %a "$L/out/hello.txt")" = 640 ] || fail "type=local: hello.txt mode $(stat -c %a "$L/out/hello.txt")"
[ "$(stat -c %a "$L/out/sub")" = 750 ] || fail "type=local: sub mode"
[ "$(readlink "$L/out/link")" = hello.txt ] || fail "type=local: symlink"
[ "$(stat -c %u:%g "$L/out/sub/owned")" = 1234:4321 ] || fail "type=local: owner"
[ ! -e "$L/out/gone.txt" ] || fail "type=local: the deleted file is there"
[ -x "$L/bin/busybox" ] && [ "$(readlink "$L/bin/sh")" = busybox ] || fail "type=local: base layer"
ls -a "$L/out" | grep '^\.wh\.' >/dev/null && fail "type=local: a whiteout file was written"
# -o DIR is type=local,dest=DIR; type=tar writes the tree as one plain tar.
build short.log -o "$WORK/short" "$WORK/app"
[ "$(cat "$WORK/short/out/hello.txt")" = hello ] || fail "-o DIR"
build tar.log -o "type=tar,dest=$WORK/rootfs.tar" "$WORK/app"
tar -tf "$WORK/rootfs.tar" >"$WORK/rootfs.list" || fail "type=tar: not a plain tar"
grep -qx "out/hello.txt" "$WORK/rootfs.list" || { cat "$WORK/rootfs.list"; fail "type=tar: out/hello.txt"; }
grep -q "gone" "$WORK/rootfs.list" && fail "type=tar: the deleted file is there"
# pier-unpack (what type=local runs) refuses a hostile tar and writes nothing
# outside its directory.
python3 - "$WORK/hostile.tar" <<'PY'
import io, sys, tarfile
with tarfile.open(sys.argv[1], "w") as t:
    data = b"escaped\n"
    info = tarfile.TarInfo("../escaped.txt")
    info.size = len(data)
    t.addfile(info, io.BytesIO(data))
PY
mkdir -p "$WORK/hostile"
rc=0; out=$("$BIN/pier-unpack" "$WORK/hostile/dest" <"$WORK/hostile.tar" 2>&1) || rc=$?
[ "$rc" = 1 ] || fail "pier-unpack of a hostile tar exited $rc: $out"
grep -q "escaped.txt" <<<"$out" || fail "pier-unpack error does not name the entry: $out"
[ ! -e "$WORK/hostile/escaped.txt" ] || fail "pier-unpack wrote outside its directory"
echo "ok: type=local, -o DIR, type=tar, pier-unpack refuses a hostile tar"

# --- compression --------------------------------------------------------------
build zstd.log -t "$REG/demo/z:v1" -o type=registry,compression=zstd "$WORK/app"
mapfile -t types < <(manifest demo/z v1 | layer_types)
[ "${#types[@]}" = 3 ] || fail "zstd: ${#types[@]} layers"
[ "${types[0]}" = application/vnd.oci.image.layer.v1.tar+gzip ] || fail "zstd: base layer ${types[0]}"
[ "${types[1]}" = application/vnd.oci.image.layer.v1.tar+zstd ] || fail "zstd: new layer ${types[1]}"
[ "${types[2]}" = application/vnd.oci.image.layer.v1.tar+zstd ] || fail "zstd: new layer ${types[2]}"
[ "$(step_status zstd.log "rm /out/gone.txt")" = CACHED ] || fail "zstd: the steps were not cached"

build zstdf.log -t "$REG/demo/zf:v1" -o type=registry,compression=zstd,force-compression=true,compression-level=9 "$WORK/app"
manifest demo/zf v1 | layer_types | sort -u >"$WORK/zf.types"
[ "$(cat "$WORK/zf.types")" = application/vnd.oci.image.layer.v1.tar+zstd ] || { cat "$WORK/zf.types"; fail "force-compression: not all zstd"; }
skopeo inspect --raw --tls-verify=false "docker://$REG/demo/zf:v1" >"$WORK/zf.raw" || fail "skopeo inspect --raw"
[ "$(layer_types <"$WORK/zf.raw" | grep -c 'tar+zstd$')" = 3 ] || { cat "$WORK/zf.raw"; fail "skopeo: zstd media types"; }
zlayer=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["layers"][2]["digest"])' <"$WORK/zf.raw")
curl -fsS -o "$WORK/zlayer" "http://$REG/v2/demo/zf/blobs/$zlayer" || fail "fetch the zstd layer"
[ "$(od -An -tx1 -N4 "$WORK/zlayer" | tr -d ' ')" = 28b52ffd ] ||
  fail "the zstd layer blob has no zstd magic"
# pier-runtime pulls and runs the zstd image.
pier pull -q "$REG/demo/zf:v1" >/dev/null || fail "runtime pull of the zstd image"
[ "$(pier run --rm --network none "$REG/demo/zf:v1")" = hello ] || fail "runtime run of the zstd image"
pier run --network none --name zrun "$REG/demo/zf:v1" cat /out/sub/owned >/dev/null || fail "run zrun"
pier rm zrun >/dev/null

build plain.log -t "$REG/demo/u:v1" -o type=registry,compression=uncompressed,force-compression=true "$WORK/app"
manifest demo/u v1 | layer_types | sort -u >"$WORK/u.types"
[ "$(cat "$WORK/u.types")" = application/vnd.oci.image.layer.v1.tar ] || { cat "$WORK/u.types"; fail "uncompressed: $(cat "$WORK/u.types")"; }
ulayer=$(manifest demo/u v1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["layers"][1]["digest"])')
curl -fsS -o "$WORK/ulayer" "http://$REG/v2/demo/u/blobs/$ulayer" || fail "fetch the plain layer"
tar -tf "$WORK/ulayer" | grep "out/hello.txt" >/dev/null ||
  fail "uncompressed: the layer is not a plain tar"
[ "$(pier run --rm --network none "$REG/demo/u:v1" 2>/dev/null)" = hello ] || fail "runtime run of the uncompressed image"

build oci.log -o "type=oci,dest=$WORK/z.oci.tar,compression=zstd" "$WORK/app"
mkdir "$WORK/oci" && tar -xf "$WORK/z.oci.tar" -C "$WORK/oci"
m=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["digest"][7:])' "$WORK/oci/index.json")
[ "$(layer_types <"$WORK/oci/blobs/sha256/$m" | grep -c 'tar+zstd$')" = 2 ] || fail "type=oci: zstd layers"

rc=0; pier build -o "type=docker,dest=$WORK/d.tar,compression=zstd" "$WORK/app" >"$WORK/d.log" 2>&1 || rc=$?
[ "$rc" = 1 ] && grep -q "cannot hold zstd" "$WORK/d.log" || { cat "$WORK/d.log"; fail "type=docker,compression=zstd was not refused"; }
rc=0; pier build -t "$REG/demo/x:v1" -o type=registry,compression=zstd -o "type=oci,dest=$WORK/x.tar,compression=gzip" \
  "$WORK/app" >"$WORK/x.log" 2>&1 || rc=$?
[ "$rc" = 1 ] && grep -q "different layer compressions" "$WORK/x.log" || { cat "$WORK/x.log"; fail "mismatched compressions"; }
rc=0; pier build -o type=image,compression=zstd,compression-level=42 "$WORK/app" >"$WORK/lvl.log" 2>&1 || rc=$?
[ "$rc" = 1 ] && grep -q "compression-level 42 is out of range" "$WORK/lvl.log" || { cat "$WORK/lvl.log"; fail "level 42"; }
rc=0; pier build -o type=image,compression=lz4 "$WORK/app" >"$WORK/lz4.log" 2>&1 || rc=$?
[ "$rc" = 2 ] && grep -q 'unknown compression "lz4"' "$WORK/lz4.log" || { cat "$WORK/lz4.log"; fail "compression=lz4"; }
echo "ok: compression zstd, uncompressed, force-compression, oci, docker refused"

# --- ADD from git ---------------------------------------------------------------
g() { git -c user.name=pier -c user.email=pier@example.invalid -c init.defaultBranch=main "$@"; }
mkdir -p "$WORK/src/sub"
echo one >"$WORK/src/a.txt"
echo sub >"$WORK/src/sub/b.txt"
printf '#!/bin/sh\necho run\n' >"$WORK/src/tool.sh" && chmod 755 "$WORK/src/tool.sh"
g init -q "$WORK/src"
g -C "$WORK/src" add -A && g -C "$WORK/src" commit -qm first
first=$(git -C "$WORK/src" rev-parse HEAD)
g -C "$WORK/src" tag -a v1 -m "version 1"
mkdir "$WORK/git"
g clone -q --bare "$WORK/src" "$WORK/git/repo.git"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
git daemon --export-all --base-path="$WORK/git" --listen=127.0.0.1 --port="$port" --reuseaddr \
  >"$WORK/gitd.out" 2>&1 &
SERVERS+=($!)
URL="git://127.0.0.1:$port/repo.git"
for _ in $(seq 1 100); do git ls-remote "$URL" >/dev/null 2>&1 && break; sleep 0.1; done
git ls-remote "$URL" >/dev/null || fail "git daemon does not answer"

mkdir -p "$WORK/gitapp"
cat >"$WORK/gitapp/Dockerfile" <<EOF
FROM $REG/base/busybox:v1
ADD --keep-git-dir=true $URL#v1 /tagged
ADD $URL#$first:sub /subonly
ADD --chown=7:8 $URL#main /src
EOF
build git1.log -o "type=local,dest=$WORK/g1" "$WORK/gitapp"
G=$WORK/g1
[ "$(cat "$G/src/a.txt")" = one ] || fail "git branch: a.txt"
[ "$(cat "$G/src/sub/b.txt")" = sub ] || fail "git branch: sub/b.txt"
[ "$(stat -c %a "$G/src/tool.sh")" = 755 ] || fail "git: tool.sh mode $(stat -c %a "$G/src/tool.sh")"
[ "$(stat -c %u:%g "$G/src/a.txt")" = 7:8 ] || fail "git --chown: $(stat -c %u:%g "$G/src/a.txt")"
[ ! -e "$G/src/.git" ] || fail "git: .git kept without --keep-git-dir"
[ -d "$G/tagged/.git" ] || fail "git --keep-git-dir: no .git"
[ "$(cat "$G/tagged/a.txt")" = one ] || fail "git tag: a.txt"
[ "$(cat "$G/subonly/b.txt")" = sub ] && [ ! -e "$G/subonly/a.txt" ] || fail "git commit:subdir"

build git2.log -o "type=local,dest=$WORK/g2" "$WORK/gitapp"
for s in "#v1 /tagged" ":sub /subonly" "#main /src"; do
  [ "$(step_status git2.log "$s")" = CACHED ] || { cat "$WORK/git2.log"; fail "git rebuild: $s not cached"; }
done
echo two >"$WORK/src/a.txt"
g -C "$WORK/src" commit -qam second
git -C "$WORK/src" push -q "$WORK/git/repo.git" main
build git3.log -o "type=local,dest=$WORK/g3" "$WORK/gitapp"
[ "$(step_status git3.log "#v1 /tagged")" = CACHED ] || { cat "$WORK/git3.log"; fail "git: the tag step missed"; }
[ "$(step_status git3.log "#main /src")" = DONE ] || { cat "$WORK/git3.log"; fail "git: a new commit hit the cache"; }
[ "$(cat "$WORK/g3/src/a.txt")" = two ] || fail "git: the new commit's content"
[ "$(cat "$WORK/g3/tagged/a.txt")" = one ] || fail "git: the tag moved"

# The dumb HTTP protocol (a static file server): no shallow fetches there.
git -C "$WORK/git/repo.git" update-server-info
hport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m http.server --bind 127.0.0.1 --directory "$WORK/git" "$hport" >"$WORK/httpd.out" 2>&1 &
SERVERS+=($!)
HURL="http://127.0.0.1:$hport/repo.git"
for _ in $(seq 1 100); do curl -fs "$HURL/info/refs" >/dev/null && break; sleep 0.1; done
printf 'FROM %s/base/busybox:v1\nADD %s#main:sub /viahttp\n' "$REG" "$HURL" >"$WORK/gitapp/Dockerfile"
build githttp.log -o "type=local,dest=$WORK/gh" "$WORK/gitapp"
[ "$(cat "$WORK/gh/viahttp/b.txt")" = sub ] && [ ! -e "$WORK/gh/viahttp/a.txt" ] || fail "git over dumb HTTP"

printf 'FROM %s/base/busybox:v1\nADD %s#nosuch /x\n' "$REG" "$URL" >"$WORK/gitapp/Dockerfile"
rc=0; pier build "$WORK/gitapp" >"$WORK/gitbad.log" 2>&1 || rc=$?
[ "$rc" = 1 ] && grep "Dockerfile:2" "$WORK/gitbad.log" | grep -F "$URL" | grep '"nosuch"' >/dev/null ||
  { cat "$WORK/gitbad.log"; fail "unknown git ref"; }
printf 'FROM %s/base/busybox:v1\nADD %s#main:nosuchdir /x\n' "$REG" "$URL" >"$WORK/gitapp/Dockerfile"
rc=0; pier build "$WORK/gitapp" >"$WORK/gitbad.log" 2>&1 || rc=$?
[ "$rc" = 1 ] && grep -F "Dockerfile:2: ADD $URL#main:nosuchdir: no directory nosuchdir" "$WORK/gitbad.log" >/dev/null ||
  { cat "$WORK/gitbad.log"; fail "missing git subdirectory"; }
printf 'FROM %s/base/busybox:v1\nADD git://127.0.0.1:1/none.git /x\n' "$REG" >"$WORK/gitapp/Dockerfile"
rc=0; pier build "$WORK/gitapp" >"$WORK/gitbad.log" 2>&1 || rc=$?
[ "$rc" = 1 ] && grep "Dockerfile:2" "$WORK/gitbad.log" | grep "git://127.0.0.1:1/none.git" >/dev/null ||
  { cat "$WORK/gitbad.log"; fail "unreachable git repository"; }
echo "ok: ADD from git"
