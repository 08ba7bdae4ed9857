#!/usr/bin/env bash
# Prepares a build context for one Pier service's image:
#   deploy/docker/prepare-context.sh SERVICE DIR [BIN_DIR]
# SERVICE is registry, builder or runtime; BIN_DIR defaults to build/bin.
# DIR receives the service's Dockerfile and rootfs/: the binaries in
# /usr/local/bin and every shared library they load (from ldd, at the same
# paths, with the dynamic loader), so the image needs nothing from its base
# but a shell for debugging: Debian's busybox-static imported as an image
# does. For the runtime, the CNI plugins and iptables (the plugins call it)
# come along too. Then, with pier-builder and a registry up:
#   pier build --build-arg BASE=<registry>/base/busybox:latest \
#     -t <registry>/pier/pier-SERVICE:TAG DIR
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
service=${1:?usage: prepare-context.sh registry|builder|runtime DIR [BIN_DIR]}
dir=${2:?usage: prepare-context.sh registry|builder|runtime DIR [BIN_DIR]}
bin=${3:-$top/build/bin}
case "$service" in
  registry) bins=(pier-registry) ;;
  builder) bins=(pier-builder) ;;
  runtime) bins=(pier-runtime pier-shim) ;;
  *) echo "prepare-context: unknown service \"$service\" (registry|builder|runtime)" >&2; exit 2 ;;
esac
rm -rf "$dir/rootfs"
mkdir -p "$dir/rootfs/usr/local/bin"
cp "$top/deploy/docker/$service.Dockerfile" "$dir/Dockerfile"

# Copies FILE to rootfs at DEST (default: the same path), dereferenced.
put() {
  local src=$1 dest=${2:-$1}
  mkdir -p "$dir/rootfs$(dirname "$dest")"
  cp -L --preserve=mode "$src" "$dir/rootfs$dest"
}
# The libraries FILE needs, by the paths the loader finds them at, and the
# loader itself. A static binary has none.
libs_of() {
  ldd "$1" 2>/dev/null | awk '/=> \//{print $3} /^[ \t]*\/[^ ]*ld-linux/{print $1}' || true
}
declare -A seen=()
with_libs() {  # SRC [DEST]
  put "$@"
  local lib
  for lib in $(libs_of "$1"); do
    [ -n "${seen[$lib]:-}" ] && continue
    seen[$lib]=1
    put "$lib"
  done
}

for b in "${bins[@]}"; do
  [ -x "$bin/$b" ] || { echo "prepare-context: $bin/$b missing: run scripts/build" >&2; exit 1; }
  with_libs "$bin/$b" "/usr/local/bin/$b"
  # Debug information stays in the build tree (a RelWithDebInfo binary is
  # mostly that).
  if command -v strip >/dev/null; then strip --strip-debug "$dir/rootfs/usr/local/bin/$b"; fi
done

if [ "$service" = runtime ]; then
  # CNI plugins the runtime runs for bridge networking (static Go binaries).
  for p in bridge host-local loopback portmap; do
    [ -x "/usr/lib/cni/$p" ] && with_libs "/usr/lib/cni/$p"
  done
  # iptables (bridge's ipMasq and portmap call it) with its extensions,
  # which it loads with dlopen and ldd cannot see.
  if ipt=$(command -v iptables); then
    real=$(readlink -f "$ipt")
    with_libs "$real"
    for name in iptables iptables-save iptables-restore ip6tables ip6tables-save \
                ip6tables-restore; do
      ln -sf "$(basename "$real")" "$dir/rootfs$(dirname "$real")/$name"
    done
    xt=$(dirname "$(libs_of "$real" | grep -m1 libxtables)")/xtables
    if [ -d "$xt" ]; then
      for so in "$xt"/*.so; do with_libs "$so"; done
    fi
  fi
fi
echo "prepare-context: $dir ($(du -sh "$dir/rootfs" | cut -f1) in rootfs/)"
