#!/usr/bin/env bash
# skopeo against a real pier-registry: copy a multi-layer OCI image in and
# back out with identical digests, inspect, list-tags, delete; then the same
# copy with basic auth, with token auth and over TLS, and refusals of a wrong
# password and of an untrusted certificate.
source "$(dirname "$0")/lib.sh"

make_image "$WORK/layout" v1
src_digest=$(skopeo inspect --raw "oci:$WORK/layout:v1" | sha256sum | cut -d' ' -f1)

# --- Plain HTTP.
start_registry plain
skopeo copy -q --dest-tls-verify=false "oci:$WORK/layout:v1" "docker://$REG_HTTP/peers/multi:v1"
skopeo copy -q --dest-tls-verify=false "oci:$WORK/layout:v1" "docker://$REG_HTTP/peers/multi:v2"
reg_digest=$(skopeo inspect --tls-verify=false --raw "docker://$REG_HTTP/peers/multi:v1" | sha256sum | cut -d' ' -f1)
[ "$reg_digest" = "$src_digest" ] || fail "manifest changed in the registry"
skopeo inspect --tls-verify=false "docker://$REG_HTTP/peers/multi:v1" | grep -q '"Layers"' || fail "inspect"
tags=$(skopeo list-tags --tls-verify=false "docker://$REG_HTTP/peers/multi")
echo "$tags" | grep -q '"v1"' && echo "$tags" | grep -q '"v2"' || fail "list-tags: $tags"
skopeo copy -q --src-tls-verify=false "docker://$REG_HTTP/peers/multi:v1" "oci:$WORK/back:v1"
back_digest=$(skopeo inspect --raw "oci:$WORK/back:v1" | sha256sum | cut -d' ' -f1)
[ "$back_digest" = "$src_digest" ] || fail "round trip changed the manifest digest"
nblobs=0
for blob in "$WORK"/back/blobs/sha256/*; do
  cmp -s "$blob" "$WORK/layout/blobs/sha256/$(basename "$blob")" || fail "blob $(basename "$blob") differs"
  [ "$(sha256sum < "$blob" | cut -d' ' -f1)" = "$(basename "$blob")" ] || fail "blob $(basename "$blob") corrupt"
  nblobs=$((nblobs + 1))
done
[ "$nblobs" -ge 5 ] || fail "expected manifest, config and 3 layers back, got $nblobs blobs"
skopeo delete --tls-verify=false "docker://$REG_HTTP/peers/multi:v2"
skopeo inspect --tls-verify=false --raw "docker://$REG_HTTP/peers/multi:v2" >/dev/null 2>&1 \
  && fail "deleted tag still served"
stop_registry
echo "plain: ok"

# --- Basic auth.
htpasswd -cbB "$WORK/htpasswd" alice s3cret 2>/dev/null
start_registry basic --auth=basic --htpasswd="$WORK/htpasswd"
skopeo copy -q --dest-tls-verify=false --dest-creds alice:s3cret \
  "oci:$WORK/layout:v1" "docker://$REG_HTTP/peers/auth:v1"
skopeo copy -q --dest-tls-verify=false --dest-creds alice:wrong \
  "oci:$WORK/layout:v1" "docker://$REG_HTTP/peers/auth:v2" 2>/dev/null && fail "wrong password accepted"
skopeo inspect --tls-verify=false --raw "docker://$REG_HTTP/peers/auth:v1" >/dev/null 2>&1 \
  && fail "anonymous pull accepted"
skopeo inspect --tls-verify=false --creds alice:s3cret --raw "docker://$REG_HTTP/peers/auth:v1" >/dev/null
stop_registry
echo "basic auth: ok"

# --- Token auth.
start_registry token --auth=token --htpasswd="$WORK/htpasswd"
skopeo copy -q --dest-tls-verify=false --dest-creds alice:s3cret \
  "oci:$WORK/layout:v1" "docker://$REG_HTTP/peers/token:v1"
skopeo inspect --tls-verify=false --creds alice:s3cret --raw "docker://$REG_HTTP/peers/token:v1" >/dev/null
skopeo inspect --tls-verify=false --creds alice:nope --raw "docker://$REG_HTTP/peers/token:v1" >/dev/null 2>&1 \
  && fail "wrong password got a token"
stop_registry
echo "token auth: ok"

# --- TLS.
make_certs
start_registry tls --tls-cert="$WORK/certs/server.crt" --tls-key="$WORK/certs/server.key"
skopeo copy -q --dest-cert-dir "$WORK/trust" "oci:$WORK/layout:v1" "docker://$REG_HTTP/peers/tls:v1"
skopeo inspect --cert-dir "$WORK/trust" --raw "docker://$REG_HTTP/peers/tls:v1" >/dev/null
skopeo inspect --raw "docker://$REG_HTTP/peers/tls:v1" >/dev/null 2>&1 && fail "untrusted certificate accepted"
stop_registry
echo "tls: ok"
echo "skopeo: 4 passed, 0 failed"
