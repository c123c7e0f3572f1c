#!/bin/sh
# The unit test binaries under valgrind, leaks of our code included.
#   unit.sh VALGRIND TEST_BINARY...
# A finding is what valgrind reports (an invalid read or write, a use of
# uninitialised memory, a definite leak): valgrind then exits 99.  The
# binaries' own checks run too, but a few of test_script's cannot hold
# under valgrind -- a hook stopped after 1000 ms of wall time, the resident
# size of a process valgrind doubles -- and unit.* runs them all without
# it: a check failing (status 1) is shown, not counted.
# Exit status: 0 clean, 1 a finding.
set -u
[ $# -ge 2 ] || { echo "usage: $0 VALGRIND TEST_BINARY..." >&2; exit 2; }
valgrind=$1
shift
status=0
for t in "$@"; do
  start=$(date +%s)
  "$valgrind" --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite -q "$t" >"${TMPDIR:-/tmp}/registrar-valgrind-unit.$$" 2>&1
  rc=$?
  secs=$(($(date +%s) - start))
  case $rc in
    0) echo "ok   ${t##*/} (${secs} s)" ;;
    1) echo "ok   ${t##*/} (${secs} s): valgrind found nothing; checks that do not hold under valgrind failed:"
       grep "check failed" "${TMPDIR:-/tmp}/registrar-valgrind-unit.$$" | sed 's/^/       /' ;;
    *) echo "FAIL ${t##*/} (${secs} s): status $rc"
       cat "${TMPDIR:-/tmp}/registrar-valgrind-unit.$$"
       status=1 ;;
  esac
done
rm -f "${TMPDIR:-/tmp}/registrar-valgrind-unit.$$"
exit "$status"
