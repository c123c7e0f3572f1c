#!/bin/sh
# Builds one libFuzzer target with clang and runs it for a bounded time.
#   run.sh SOURCE_DIR WORK_DIR SECONDS TARGET [extra libFuzzer flags]
# TARGET is container, json, yaml_config or env_file (tests/fuzz/fuzz_TARGET.c);
# it is built and run in WORK_DIR/TARGET/, from its seed corpus
# (tests/fuzz/corpus/ for container, corpus-json/, corpus-yaml/, corpus-env/).
# Exit status: 0 clean, 77 clang missing (ctest: skipped), 98/99 a finding
# (98 an input that ran too long), 2 a bad command line.
# $FUZZ_CFLAGS goes to clang, e.g. FUZZ_CFLAGS=-DREGISTRAR_FUZZ_STRICT.
# The test suite runs each briefly; run one longer by hand, e.g.
#   tests/fuzz/run.sh . /tmp/fuzz 600 json
set -eu
[ $# -ge 4 ] || { echo "usage: $0 SOURCE_DIR WORK_DIR SECONDS container|json|yaml_config|env_file [libFuzzer flags]" >&2; exit 2; }
src=$1 work=$2/$4 seconds=$3 target=$4
shift 4

e=$src/engine
# Debian's cJSON, libyaml and Lua are linked uninstrumented: the sanitizers
# and the coverage watch our code, where the conversions live.
case "$target" in
  container) sources="$e/docker/container.c $e/lua/registrar_json.c $e/core/buffer.c $e/core/json.c $e/core/slab.c $e/core/text.c"
             pkgs="lua5.4 libcjson" corpus=corpus dict=docker.dict ;;
  json)      sources="$e/lua/registrar_json.c $e/core/buffer.c $e/core/json.c $e/core/slab.c $e/core/text.c"
             pkgs="lua5.4 libcjson" corpus=corpus-json dict=json.dict ;;
  yaml_config) sources="$e/core/config.c $e/core/config_yaml.c $e/core/text.c $e/core/hostinfo.c"
             pkgs="libcjson yaml-0.1" corpus=corpus-yaml dict=yaml.dict ;;
  env_file)  sources="$e/core/config.c $e/core/text.c $e/core/hostinfo.c"
             pkgs="libcjson" corpus=corpus-env dict=env.dict ;;
  *) echo "run.sh: unknown target \"$target\" (container, json, yaml_config or env_file)" >&2; exit 2 ;;
esac

command -v clang >/dev/null || { echo "clang not installed: fuzz target $target skipped"; exit 77; }
mkdir -p "$work/corpus"
cp "$src/tests/fuzz/$corpus"/* "$work/corpus/"
# shellcheck disable=SC2046,SC2086
clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined ${FUZZ_CFLAGS:-} \
  -I"$e" $(pkg-config --cflags $pkgs) \
  "$src/tests/fuzz/fuzz_$target.c" $sources \
  $(pkg-config --libs $pkgs) -lm -o "$work/fuzz_$target"
status=0
"$work/fuzz_$target" -max_total_time="$seconds" -print_final_stats=1 -dict="$src/tests/fuzz/$dict" \
  -error_exitcode=99 -timeout_exitcode=98 -artifact_prefix="$work/" "$@" "$work/corpus" >"$work/fuzz.log" 2>&1 || status=$?
grep -E "^stat::|ERROR|SUMMARY|runtime error|Test unit written" "$work/fuzz.log" || true
[ "$status" -eq 0 ] || { echo "fuzzer $target failed (status $status); log: $work/fuzz.log"; tail -40 "$work/fuzz.log"; }
exit "$status"
