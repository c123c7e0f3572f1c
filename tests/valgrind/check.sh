#!/bin/sh
# `registrar check` under valgrind: every container of the fuzz corpus
# (tests/fuzz/corpus/*.json, each one `docker inspect` object, wrapped in
# a list) and tests/fixtures/worked-example.json, each with no site script
# and with each hostile site script in tests/valgrind/sites/.
#   check.sh SOURCE_DIR REGISTRAR_BIN
# Each file runs alone with no site script; for a site script, all of them
# run in one list (a valgrind start costs 1.5 s here: 48 runs of one file
# each took 65 to 85 s).  VALGRIND_CHECK_EACH=1 runs every file with every
# script on its own instead.
# Debian's liblua is not built with AddressSanitizer: a write past a Lua
# stack is invisible to the ASan build, and valgrind sees it.
# `check` exiting 1 (a hook failed) is expected of the bad scripts; what
# fails this is valgrind's 99 (an invalid read or write, a definite leak),
# a signal, or any other status.  One line per run.  Runs $VALGRIND_JOBS
# (default: the number of CPUs) at once.
# Exit status: 0 clean, 1 a finding, 77 valgrind missing (ctest: skipped).
set -u
[ $# -eq 2 ] || { echo "usage: $0 SOURCE_DIR REGISTRAR_BIN" >&2; exit 2; }
src=$1 bin=$2
command -v valgrind >/dev/null || { echo "valgrind not installed: skipped"; exit 77; }
[ -x "$bin" ] || { echo "$bin: not an executable" >&2; exit 2; }

jobs=${VALGRIND_JOBS:-$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/registrar-valgrind.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

# The hooks run 20 to 50 times slower under valgrind: the default budget
# of 1000 ms per hook call would stop the 10000-services script.
export SCRIPT_TIMEOUT=60000 REGISTRAR_SCRIPTS="$src/scripts"

mkdir "$tmp/in" "$tmp/out"
for f in "$src"/tests/fuzz/corpus/*.json; do
  { printf '['; cat "$f"; printf ']\n'; } >"$tmp/in/${f##*/}"
done
cp "$src/tests/fixtures/worked-example.json" "$tmp/in/"
# all.json: every container of those files in one list
{
  sep='['
  for f in "$tmp"/in/*.json; do
    text=$(cat "$f")
    text=${text#*\[}           # each file is a list: its items, unwrapped
    text=${text%]*}
    printf '%s%s\n' "$sep" "$text"
    sep=','
  done
  echo ']'
} >"$tmp/all"
mv "$tmp/all" "$tmp/in/all.json"

# run ID INPUT [SITE]: one run, its line in out/ID.line, valgrind's log kept
# in out/ID.log when it is a failure.
run() {
  id=$1 input=$2 site=${3:-}
  label="${input##*/} + ${site:+${site##*/}}"
  [ -n "$site" ] || label="${label}no site script"
  if [ -n "$site" ]; then set -- --script "$site"; else set --; fi
  start=$(date +%s)
  valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite -q --read-inline-info=no \
    --log-file="$tmp/out/$id.vg" \
    "$bin" check --containers "$input" -H h -a 10.0.0.1 "$@" >/dev/null 2>"$tmp/out/$id.err"
  rc=$?
  secs=$(($(date +%s) - start))
  verdict=FAIL
  case $rc in
    0|1) verdict=ok why= ;;
    99) why="valgrind found errors" ;;
    *) if [ "$rc" -gt 128 ]; then why="killed by signal $((rc - 128))"; else why="unexpected exit status"; fi ;;
  esac
  printf '%-4s status %-3s %3ss  %s\n' "$verdict" "$rc" "$secs" "$label" >"$tmp/out/$id.line"
  if [ "$verdict" = FAIL ]; then
    { echo "---- $label: $why"; cat "$tmp/out/$id.vg"; tail -20 "$tmp/out/$id.err"; } >"$tmp/out/$id.log"
  fi
}

# The job list, slowest first (10000 services), dealt round-robin to
# $jobs lanes that each run theirs one after another.
sites=$src/tests/valgrind/sites
n=0
job() {
  n=$((n + 1))
  echo "$n $1 $2" >>"$tmp/jobs"
}
for first in yes no; do
  for site in "$sites"/*.lua none; do
    case "$site" in */many-services.lua) slow=yes ;; *) slow=no ;; esac
    [ "$slow" = "$first" ] || continue
    if [ "$site" != none ] && [ "${VALGRIND_CHECK_EACH:-0}" != 1 ]; then
      job all.json "${site##*/}"
      continue
    fi
    for input in "$tmp"/in/*.json; do
      [ "${input##*/}" = all.json ] || job "${input##*/}" "${site##*/}"
    done
  done
done

begin=$(date +%s)
lane=0
while [ "$lane" -lt "$jobs" ]; do
  (
    while read -r i input site; do
      [ $(((i - 1) % jobs)) -eq "$lane" ] || continue
      if [ "$site" = none ]; then run "$i" "$tmp/in/$input"; else run "$i" "$tmp/in/$input" "$sites/$site"; fi
    done <"$tmp/jobs"
  ) &
  lane=$((lane + 1))
done
wait

failed=0 i=1
while [ "$i" -le "$n" ]; do
  cat "$tmp/out/$i.line"
  [ -f "$tmp/out/$i.log" ] && failed=$((failed + 1))
  i=$((i + 1))
done
i=1
while [ "$i" -le "$n" ]; do
  [ -f "$tmp/out/$i.log" ] && cat "$tmp/out/$i.log"
  i=$((i + 1))
done
echo "$n runs, $failed failed, $(($(date +%s) - begin)) s"
[ "$failed" -eq 0 ]
