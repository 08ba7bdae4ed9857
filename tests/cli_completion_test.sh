#!/usr/bin/env bash
# `pier completion bash` sourced into bash completes verbs, each verb's flags
# and subcommands (checked through COMP_WORDS/COMP_CWORD/COMPREPLY as bash
# calls it); and `pier --help` and `pier VERB --help` for every verb the CLI
# lists exit 0 with a Usage line; service addresses come from flags, else the
# environment, else the config file, else the defaults. Needs no daemon.
set -euo pipefail
BIN=${PIER_BIN_DIR:-$(cd "$(dirname "$0")/../build/bin" && pwd)}
fail() { echo "FAIL: $*" >&2; exit 1; }
script=$("$BIN/pier" completion bash) || fail "pier completion bash"
source <(echo "$script")
complete -p pier | grep -- "-F _pier" >/dev/null || fail "no completion registered for pier"
complete_words() {  # WORD... (the last is the one being completed)
  COMP_WORDS=("$@")
  COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
  COMPREPLY=()
  _pier
  echo "${COMPREPLY[*]}"
}
[ "$(complete_words pier ru)" = "run" ] || fail "pier ru<TAB>: $(complete_words pier ru)"
[ "$(complete_words pier run --na)" = "--name" ] || fail "pier run --na<TAB>: $(complete_words pier run --na)"
[ "$(complete_words pier r)" = "registry rm rmi run" ] || fail "pier r<TAB>: $(complete_words pier r)"
[ "$(complete_words pier --runtime unix:///x vol)" = "volume" ] || fail "global flag value skipped"
[ "$(complete_words pier --tlsc)" = "--tlscacert --tlscert" ] || fail "pier --tlsc<TAB>"
[ "$(complete_words pier volume "")" = "create ls inspect rm prune" ] || fail "pier volume <TAB>"
[ "$(complete_words pier image "")" = "ls prune rm" ] || fail "pier image <TAB>"
[ "$(complete_words pier container p)" = "prune" ] || fail "pier container p<TAB>"
grep -qw -- --detach-keys <<<"$(complete_words pier attach --d)" || fail "pier attach --d<TAB>"
[ "$(complete_words pier registry t)" = "tags" ] || fail "pier registry t<TAB>"
[ "$(complete_words pier build --build-a)" = "--build-arg" ] || fail "pier build --build-a<TAB>"
[ "$(complete_words pier build -o type=l)" = "type=local" ] || fail "pier build -o type=l<TAB>: $(complete_words pier build -o type=l)"
[ "$(complete_words pier build --output compression=z)" = "compression=zstd" ] || fail "pier build --output compression=z<TAB>"
[ "$(complete_words pier build --progress p)" = "plain" ] || fail "pier build --progress p<TAB>"
[ "$(complete_words pier ps -)" != "" ] || fail "pier ps -<TAB> is empty"
complete_words pier ps - | grep -w -- --format >/dev/null || fail "pier ps -<TAB> lacks --format"
[ -z "$(complete_words pier nosuchverb --x)" ] || fail "unknown verb completed flags"
echo "ok: completion"

"$BIN/pier" --help | grep "^Usage: pier" >/dev/null || fail "pier --help"
verbs=$("$BIN/pier" --help | sed -n '/^Commands:/,/^$/p' | awk 'NR > 1 && NF { print $1 }')
[ "$(echo "$verbs" | wc -l)" -ge 30 ] || fail "pier --help lists too few verbs: $verbs"
for v in $verbs; do
  out=$("$BIN/pier" "$v" --help 2>&1) || fail "pier $v --help exited $?"
  grep -q "^Usage: pier $v" <<<"$out" || fail "pier $v --help has no Usage line: $out"
  grep -q "^    $v) flags=" <<<"$script" || fail "completion has no case for $v"
done
for sub in "registry ls" "registry tags" "registry gc" "volume create" "volume ls" \
           "volume inspect" "volume rm" "volume prune" "image prune" "container prune"; do
  # shellcheck disable=SC2086
  out=$("$BIN/pier" $sub --help 2>&1) || fail "pier $sub --help exited $?"
  grep -q "^Usage: pier $sub" <<<"$out" || fail "pier $sub --help has no Usage line: $out"
done
rc=0; "$BIN/pier" nosuchverb >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "unknown verb exited $rc, want 2"
echo "ok: --help for $(echo "$verbs" | wc -l) verbs"

# Address precedence, read back from `pier status` (nothing listens there).
WORK=$(mktemp -d /tmp/pier-cli-conf-XXXXXX)
trap 'rm -rf "$WORK"' EXIT
printf 'registry = 127.0.0.9:1\nbuilder = "127.0.0.9:2"\n# comment\nruntime = unix://%s/c.sock\n' \
  "$WORK" > "$WORK/pier.conf"
addr_of() {  # SERVICE COMMAND... -> the address `pier status` used
  local service=$1
  shift
  "$@" status --timeout 1 2>/dev/null | awk -v s="$service" '$1 == s { print $2 }'
}
st() { addr_of "$1" env -u PIER_REGISTRY -u PIER_BUILDER -u PIER_RUNTIME "${@:2}"; }
[ "$(st pier-registry PIER_CLI_CONFIG="$WORK/pier.conf" "$BIN/pier")" = 127.0.0.9:1 ] || fail "config registry"
[ "$(st pier-builder PIER_CLI_CONFIG="$WORK/pier.conf" "$BIN/pier")" = 127.0.0.9:2 ] || fail "config builder"
[ "$(st pier-runtime PIER_CLI_CONFIG="$WORK/pier.conf" "$BIN/pier")" = "unix://$WORK/c.sock" ] || fail "config runtime"
mkdir -p "$WORK/home/.config/pier" && cp "$WORK/pier.conf" "$WORK/home/.config/pier/"
[ "$(st pier-registry HOME="$WORK/home" "$BIN/pier")" = 127.0.0.9:1 ] || fail "~/.config/pier/pier.conf"
[ "$(st pier-registry HOME="$WORK/none" "$BIN/pier")" = 127.0.0.1:5050 ] || fail "default registry"
[ "$(st pier-registry PIER_CLI_CONFIG="$WORK/pier.conf" PIER_REGISTRY=127.0.0.8:3 "$BIN/pier")" = 127.0.0.8:3 ] ||
  fail "environment over config"
[ "$(st pier-registry PIER_REGISTRY=127.0.0.8:3 "$BIN/pier" --registry 127.0.0.7:4)" = 127.0.0.7:4 ] ||
  fail "flag over environment"
echo "bogus = 1" > "$WORK/bad.conf"
rc=0; PIER_CLI_CONFIG="$WORK/bad.conf" "$BIN/pier" status >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "bad config file exited $rc, want 2"
echo "ok: addresses from flags, environment, config file"
