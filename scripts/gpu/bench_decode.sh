#!/usr/bin/env bash
# Decode speed on the GPU, ours against transformers, in one command and one side-by-side table
# (issue 11): our batched decode (tests/bench/gpu_decode: MHA, MLA d_kv 64, MLA d_kv 16) and
# transformers' LlamaForCausalLM with sdpa (tests/bench/hf_decode.py), both on a random-weight
# Llama-2-7B-shaped model in bf16, then the table of both.
#   scripts/gpu/bench_decode.sh [BUILD_DIR] [OUT_DIR]
# Environment: GPU_DECODE_ARGS / HF_DECODE_ARGS add options (e.g. "--batches 1,8 --contexts 2048,8192");
# BENCH_SECONDS (default 420) bounds the whole run; ours gets up to 60% of it.
set -uo pipefail
cd "$(dirname "$0")/../.."
BUILD=${1:-build-gpu}
OUTDIR=${2:-${OUT:-bench-out}}
mkdir -p "$OUTDIR"
TOTAL=${BENCH_SECONDS:-420}
OURS_LIMIT=$(( TOTAL * 6 / 10 ))
START=$(date +%s)
echo "== ours: $BUILD/tests/gpu/gpu_decode (limit ${OURS_LIMIT}s)"
# shellcheck disable=SC2086
timeout "$OURS_LIMIT" "$BUILD/tests/gpu/gpu_decode" --json "$OUTDIR/gpu_decode.json" ${GPU_DECODE_ARGS:-} \
    2>&1 | tee "$OUTDIR/gpu_decode.log"
LEFT=$(( TOTAL - ($(date +%s) - START) ))
echo "== transformers: tests/bench/hf_decode.py (limit ${LEFT}s)"
if [ "$LEFT" -gt 30 ]; then
    # shellcheck disable=SC2086
    timeout "$LEFT" python3 tests/bench/hf_decode.py --json "$OUTDIR/hf_decode.json" ${HF_DECODE_ARGS:-} \
        2>&1 | tee "$OUTDIR/hf_decode.log"
else
    echo "no time left for transformers"
fi
echo
echo "== side by side (x HF: our tokens/s over transformers' at the same batch and context)"
if [ -f "$OUTDIR/gpu_decode.json" ]; then
    HF=()
    [ -f "$OUTDIR/hf_decode.json" ] && HF=(--hf "$OUTDIR/hf_decode.json")
    "$BUILD/tests/gpu/gpu_decode" --table "$OUTDIR/gpu_decode.json" "${HF[@]}" 2>&1 | tee "$OUTDIR/decode_table.txt"
else
    echo "gpu_decode wrote no results (see $OUTDIR/gpu_decode.log)"
fi
