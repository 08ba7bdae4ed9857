#!/usr/bin/env bash
# podman against a real pier-registry: push and pull with --tls-verify=false,
# with basic auth (podman login), and over TLS with a trusted CA.
source "$(dirname "$0")/lib.sh"

make_image "$WORK/layout" v1
P=(podman --root "$WORK/storage" --runroot "$WORK/run" --storage-driver vfs
   --cgroup-manager cgroupfs --events-backend none)
# Import the local image into podman's storage under a name of our own.
skopeo copy -q "oci:$WORK/layout:v1" \
  "containers-storage:[vfs@$WORK/storage+$WORK/run]localhost/peers/img:v1"
img=localhost/peers/img:v1
"${P[@]}" image exists "$img" || fail "podman does not see the imported image"

start_registry plain
"${P[@]}" push -q --tls-verify=false "$img" "$REG_HTTP/peers/podman:v1"
"${P[@]}" rmi -a -f >/dev/null; [ -z "$("${P[@]}" images -q)" ] || fail "images left before pull"
"${P[@]}" pull -q --tls-verify=false "$REG_HTTP/peers/podman:v1" >/dev/null
"${P[@]}" image exists "$REG_HTTP/peers/podman:v1" || fail "pulled image missing"
"${P[@]}" tag "$REG_HTTP/peers/podman:v1" "$img"
stop_registry
echo "plain: ok"

htpasswd -cbB "$WORK/htpasswd" bob hunter2 2>/dev/null
start_registry basic --auth=basic --htpasswd="$WORK/htpasswd"
export REGISTRY_AUTH_FILE="$WORK/auth.json"
"${P[@]}" login --tls-verify=false -u bob -p wrong "$REG_HTTP" >/dev/null 2>&1 && fail "bad login accepted"
"${P[@]}" login --tls-verify=false -u bob -p hunter2 "$REG_HTTP" >/dev/null
"${P[@]}" push -q --tls-verify=false "$img" "$REG_HTTP/peers/podman-auth:v1"
"${P[@]}" rmi -a -f >/dev/null; [ -z "$("${P[@]}" images -q)" ] || fail "images left before pull"
"${P[@]}" pull -q --tls-verify=false "$REG_HTTP/peers/podman-auth:v1" >/dev/null
"${P[@]}" tag "$REG_HTTP/peers/podman-auth:v1" "$img"
stop_registry
echo "basic auth: ok"

make_certs
start_registry tls --tls-cert="$WORK/certs/server.crt" --tls-key="$WORK/certs/server.key"
"${P[@]}" push -q --cert-dir "$WORK/trust" "$img" "$REG_HTTP/peers/podman-tls:v1"
"${P[@]}" rmi -a -f >/dev/null; [ -z "$("${P[@]}" images -q)" ] || fail "images left before pull"
"${P[@]}" pull -q --cert-dir "$WORK/trust" "$REG_HTTP/peers/podman-tls:v1" >/dev/null
stop_registry
echo "tls: ok"
echo "podman: 3 passed, 0 failed"
