#!/bin/sh
# The unit test binaries under valgrind, leaks of our code included.
#   unit.sh VALGRIND TEST_BINARY...
# A finding is what valgrind reports (an invalid read or write, a use of
# uninitialised memory, a definite leak): valgrind then exits 99.  The
# binaries' own checks must hold too; the few that cannot under valgrind
# (a hook stopped after 1000 ms of wall time, the resident size of a
# process valgrind doubles) are left out when REGISTRAR_UNDER_VALGRIND is
# set, and unit.* runs them without it.
# Exit status: 0 clean, 1 a finding or a failed check.
set -u
[ $# -ge 2 ] || { echo "usage: $0 VALGRIND TEST_BINARY..." >&2; exit 2; }
valgrind=$1
shift
status=0
for t in "$@"; do
  start=$(date +%s)
  REGISTRAR_UNDER_VALGRIND=1 "$valgrind" --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite -q "$t" >"${TMPDIR:-/tmp}/registrar-valgrind-unit.$$" 2>&1
  rc=$?
  secs=$(($(date +%s) - start))
  case $rc in
    0) echo "ok   ${t##*/} (${secs} s)" ;;
    *) echo "FAIL ${t##*/} (${secs} s): status $rc"
       cat "${TMPDIR:-/tmp}/registrar-valgrind-unit.$$"
       status=1 ;;
  esac
done
rm -f "${TMPDIR:-/tmp}/registrar-valgrind-unit.$$"
exit "$status"
