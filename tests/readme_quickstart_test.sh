#!/usr/bin/env bash
# Runs the README's quickstart exactly as written, line by line, after the
# README's first command (scripts/up), the way a user pastes them: from the
# repository's root, on the default addresses. Two lines are interactive and
# are adapted, not changed: `pier exec -it` gets a terminal (script(1)) and
# types `exit`, `pier logs -f` is stopped after a moment as Ctrl-C would.
# Every other line must exit 0.
#
# Private network and mount namespaces make the default ports, /run/pier and
# the bridge this test's own.
set -euo pipefail
if [ -z "${PIER_TEST_IN_NETNS:-}" ]; then
  exec env PIER_TEST_IN_NETNS=1 unshare --net --mount --fork -- "$0" "$@"
fi
mount --make-rprivate /
ip link set lo up
mkdir -p /run/pier
mount -t tmpfs tmpfs /run/pier
top=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/pier-readme-XXXXXX)
export PIER_HOME="$WORK/home"
cleanup() {
  set +e
  for c in $("$top/build/bin/pier" ps -aq 2>/dev/null); do "$top/build/bin/pier" rm -f "$c" >/dev/null 2>&1; done
  "$top/scripts/down" >/dev/null 2>&1
  rm -rf "$WORK" /tmp/pier-quickstart
}
trap cleanup EXIT

# The quickstart's lines: between the markers, indented by four spaces.
sed -n '/<!-- quickstart:begin -->/,/<!-- quickstart:end -->/p' "$top/README.md" |
  grep '^    ' | sed 's/^    //' >"$WORK/quickstart.txt"
[ "$(wc -l <"$WORK/quickstart.txt")" -gt 20 ] || { echo "FAIL: no quickstart in README.md"; exit 1; }

# A script that runs them in order with -e, adapting the interactive ones.
{
  echo 'set -euo pipefail'
  while IFS= read -r line; do
    case "$line" in
      "pier exec -it "*)
        cmd=${line%%#*}
        printf 'printf "echo inside-\\$(hostname)\\nexit\\n" | script -qfec %q /dev/null | tee %q\n' \
          "$cmd" "$WORK/exec.out"
        ;;
      "pier logs -f "*)
        cmd=${line%%#*}
        printf 'timeout -s INT 2 %s >%q || [ $? = 124 ]\n' "$cmd" "$WORK/logs.out"
        ;;
      *) printf '%s\n' "$line" ;;
    esac
  done <"$WORK/quickstart.txt"
} >"$WORK/quickstart.sh"

cd "$top"
scripts/up >"$WORK/up.out" 2>&1 || { cat "$WORK/up.out"; echo "FAIL: scripts/up"; exit 1; }
if ! bash -x "$WORK/quickstart.sh" >"$WORK/run.out" 2>&1; then
  tail -n 40 "$WORK/run.out"
  for d in pier-registry pier-builder pier-runtime; do tail -n 5 "$PIER_HOME/log/$d.log"; done
  echo "FAIL: the README's quickstart stopped at the line above"
  exit 1
fi
grep -qx hello "$WORK/run.out" || { cat "$WORK/run.out"; echo "FAIL: curl did not print hello"; exit 1; }
grep -q "inside-" "$WORK/exec.out" || { cat "$WORK/exec.out"; echo "FAIL: exec -it gave no shell"; exit 1; }
echo "README quickstart: $(wc -l <"$WORK/quickstart.txt") lines ran"
