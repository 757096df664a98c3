#!/usr/bin/env bash
# The recovery table of issue #10: wb-tiny-mha and wb-tiny-gqa, the control fine-tune of the
# original and 2-norm r4 joint d_kv 8/16/32 conversions, each evaluated (held-out perplexity,
# LongBench-syn) before and after the recipe's fine-tune (245 steps x 4 x 2048 tokens, lr 1e-4,
# warmup 24, 1-sqrt decay over the last 10%, clip 1.0). Rows run as parallel bench_recovery
# processes (the tiny models leave a GPU mostly idle), then one table is printed.
#
#   scripts/recovery_table.sh [--device cuda] [--jobs 8] [--build DIR] [--out DIR]
#                             [--models wb-tiny-mha,wb-tiny-gqa] [--rows control,8,16,32] [-- BENCH ARGS...]
#
# BENCH ARGS go to every row (e.g. -- --steps 60 --seq-len 512 --longbench-limit 10 for a
# reduced run). bench_recovery is built (ninja) in the build folder (default $MLAWB_BUILD_DIR or
# build/), configured first when the folder has no build.ninja (extra cmake arguments from
# $MLAWB_CMAKE_ARGS, e.g. -DMLAWB_CUDA=ON -DCMAKE_PREFIX_PATH=<pip torch's cmake prefix>).
# Writes DIR/rows/*.jsonl (one JSON line per row), DIR/rows/*.log (progress) and
# DIR/recovery_table.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

device=cpu
jobs=8
build=${MLAWB_BUILD_DIR:-build}
out=recovery-$(date +%Y%m%d-%H%M%S)
models=wb-tiny-mha,wb-tiny-gqa
rows=control,8,16,32
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --models) models=$2; shift 2 ;;
    --rows) rows=$2; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n 2,16p "$0"; exit 0 ;;
    *) echo "recovery_table.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

bench=$build/tests/bench/bench_recovery
if [ ! -f "$build/build.ninja" ]; then
  echo "configuring $build" >&2
  # shellcheck disable=SC2086
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMLAWB_GUI=OFF ${MLAWB_CMAKE_ARGS:-} >/dev/null
fi
ninja -C "$build" bench_recovery >&2   # a no-op when up to date

mkdir -p "$out/rows"
# CPU threads per row process: the cores shared among the parallel rows (the CPU parts are
# calibration, conversion and, on a CPU run, everything).
cores=$(nproc)
per_job=$(( cores / jobs )); [ "$per_job" -ge 1 ] || per_job=1
export OMP_NUM_THREADS=$per_job OPENBLAS_NUM_THREADS=$per_job MKL_NUM_THREADS=$per_job

start=$(date +%s)
"$bench" --prepare --models "$models"   # tokenize the training data into the cache once

IFS=, read -r -a model_list <<<"$models"
IFS=, read -r -a row_list <<<"$rows"
pids=()
for m in "${model_list[@]}"; do
  for r in "${row_list[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
    rm -f "$out/rows/$m-$r.jsonl"
    "$bench" --device "$device" --models "$m" --rows "$r" --row-out "$out/rows/$m-$r.jsonl" "${extra[@]}" \
      >"$out/rows/$m-$r.log" 2>&1 &
    pids+=($!)
    echo "started $m $r (pid $!)" >&2
  done
done
failed=0
for pid in "${pids[@]}"; do wait "$pid" || failed=$((failed + 1)); done
[ "$failed" -eq 0 ] || { echo "$failed row(s) failed; see $out/rows/*.log" >&2; tail -n 5 "$out"/rows/*.log >&2; }

shopt -s nullglob
row_files=("$out"/rows/*.jsonl)
[ ${#row_files[@]} -gt 0 ] || { echo "no rows finished" >&2; exit 1; }
"$bench" --table "${row_files[@]}" | tee "$out/recovery_table.txt"
echo "wall time $(( $(date +%s) - start )) s; rows and logs in $out/rows" | tee -a "$out/recovery_table.txt"
[ "$failed" -eq 0 ]
