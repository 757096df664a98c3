#!/usr/bin/env bash
# Builds and runs every libFuzzer target (issue 12) for SECONDS_PER_TARGET seconds each
# (default 60) under ASan + UBSan; exits non-zero on any finding (crash, leak, UB report,
# timeout, out-of-memory) and leaves the input under <build>/fuzz/artifacts/<target>/.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     e.g. scripts/fuzz.sh 30 fuzz_mla_spec
#
# Needs clang (installed when missing) and python3 (seed corpora are generated from
# ../shared/fixtures and tests/data on every run, never committed). Corpora grow across runs
# in <build>/fuzz/corpus. Environment: MLAWB_FUZZ_BUILD_DIR (default build-fuzz),
# MLAWB_JOBS (build jobs, default 2), MLAWB_FUZZ_RSS_MB (default 2048).
set -euo pipefail
cd "$(dirname "$0")/.."
SOURCE_DIR=$(pwd)
SECONDS_PER_TARGET=${1:-60}
shift || true
BUILD_DIR=${MLAWB_FUZZ_BUILD_DIR:-build-fuzz}
JOBS=${MLAWB_JOBS:-2}
RSS_MB=${MLAWB_FUZZ_RSS_MB:-2048}
SHARED_DIR=${MLAWB_SHARED_DIR:-$SOURCE_DIR/../shared}
ALL_TARGETS=(fuzz_safetensors fuzz_config fuzz_tokenizer_load fuzz_tokenizer_encode fuzz_longbench
             fuzz_mla_spec fuzz_rope_scores fuzz_custom_mask fuzz_prediction_folder)
[ $# -gt 0 ] && TARGETS=("$@") || TARGETS=("${ALL_TARGETS[@]}")

# Debian's clang package ships libFuzzer and the sanitizer runtimes; install it like setup-deps.sh.
if [ -z "${MLAWB_FUZZ_CXX:-}" ] && ! command -v clang++ >/dev/null; then
  echo "fuzz.sh: installing clang (libFuzzer)"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends clang
fi
CXX_COMPILER=${MLAWB_FUZZ_CXX:-$(command -v clang++)}
if [ ! -d "$SHARED_DIR/fixtures" ]; then
  echo "fuzz.sh: $SHARED_DIR/fixtures is missing: the seed corpora and fuzz_tokenizer_encode need it" >&2
  exit 2
fi

cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER="$CXX_COMPILER" \
  -DMLAWB_FUZZ=ON -DMLAWB_GUI=OFF -DMLAWB_TESTS=OFF -DMLAWB_SHARED_DIR="$SHARED_DIR" >/dev/null
ninja -C "$BUILD_DIR" -j "$JOBS" "${TARGETS[@]}"

FUZZ_DIR=$BUILD_DIR/fuzz
rm -rf "$FUZZ_DIR/seeds"
python3 tests/fuzz/make_seeds.py "$SOURCE_DIR" "$SHARED_DIR" "$FUZZ_DIR/seeds" >/dev/null

# Leaks are findings too (libFuzzer's -detect_leaks is on); UBSan stops at the first report.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export MLAWB_SHARED_DIR=$SHARED_DIR

status=0
printf '%-24s %10s %8s %8s %8s  %s\n' target execs exec/s cov ft result
for target in "${TARGETS[@]}"; do
  corpus=$FUZZ_DIR/corpus/$target
  artifacts=$FUZZ_DIR/artifacts/$target
  log=$FUZZ_DIR/logs/$target.log
  dict=$FUZZ_DIR/dict/$target.dict
  mkdir -p "$corpus" "$artifacts" "$(dirname "$log")" "$(dirname "$dict")"
  # JSON targets get the JSON syntax tokens plus their keys; the spec and text targets only theirs.
  case $target in
    fuzz_mla_spec|fuzz_tokenizer_encode) cat "tests/fuzz/dict/$target.dict" >"$dict" ;;
    *) cat tests/fuzz/dict/json.dict "tests/fuzz/dict/$target.dict" >"$dict" ;;
  esac
  result=ok
  if ! "$BUILD_DIR/tests/fuzz/$target" -max_total_time="$SECONDS_PER_TARGET" -timeout=25 \
       -rss_limit_mb="$RSS_MB" -malloc_limit_mb="$RSS_MB" -use_value_profile=1 -print_final_stats=1 \
       -dict="$dict" -artifact_prefix="$artifacts/" "$corpus" "$FUZZ_DIR/seeds/$target" >"$log" 2>&1; then
    result="FINDING (see $log and $artifacts/)"
    status=1
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
  ft=$(grep -oE 'ft: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
  printf '%-24s %10s %8s %8s %8s  %s\n' "$target" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "$result"
done
exit $status
