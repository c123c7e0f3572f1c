#!/bin/sh
# Builds the libFuzzer target with clang and runs it for a bounded time.
#   run.sh SOURCE_DIR WORK_DIR SECONDS [extra libFuzzer flags]
# Exit status: 0 clean, 77 clang missing (ctest: skipped), 98/99 a finding.
# The test suite runs it briefly; run it longer by hand, e.g.
#   tests/fuzz/run.sh . /tmp/fuzz 600
set -eu
src=$1 work=$2 seconds=$3
shift 3
command -v clang >/dev/null || { echo "clang not installed: fuzz target skipped"; exit 77; }
mkdir -p "$work/corpus"
cp "$src"/tests/fuzz/corpus/* "$work/corpus/"
# Debian's cJSON and Lua are linked uninstrumented: the sanitizers and the
# coverage watch our code, where the conversion lives.
clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -I"$src/engine" $(pkg-config --cflags lua5.4 libcjson) \
  "$src/tests/fuzz/fuzz_container.c" "$src/engine/container.c" "$src/engine/lua_json.c" \
  $(pkg-config --libs lua5.4 libcjson) -lm -o "$work/fuzz_container"
status=0
"$work/fuzz_container" -max_total_time="$seconds" -print_final_stats=1 -dict="$src/tests/fuzz/docker.dict" \
  -error_exitcode=99 -timeout_exitcode=98 -artifact_prefix="$work/" "$@" "$work/corpus" >"$work/fuzz.log" 2>&1 || status=$?
grep -E "^stat::|ERROR|SUMMARY|runtime error|Test unit written" "$work/fuzz.log" || true
[ "$status" -eq 0 ] || { echo "fuzzer failed (status $status); log: $work/fuzz.log"; tail -40 "$work/fuzz.log"; }
exit "$status"
