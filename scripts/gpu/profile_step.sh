#!/usr/bin/env bash
# Where a decode step's time goes (issue 11), in one device call: build the GPU targets, run the
# kernel test, then Nsight Compute over the timed steps of tests/gpu/gpu_decode (no graph, so
# every kernel is its own launch) for the given engines at batch x context, and a per-kernel
# table (name, count, total us, share, GB moved, TB/s) by scripts/gpu/ncu_table.py.
#   scripts/gpu/profile_step.sh [ENGINES=mla64,mha] [BATCH=8] [CTX=8192]   (SEQUENCE=N: also N launches in order)
# Writes to $OUT (or out-gpu/): profile_<engine>.txt, ncu_<engine>.csv, build and test logs.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUTDIR=${OUT:-$PWD/out-gpu}
mkdir -p "$OUTDIR"
ENGINES=${1:-mla64,mha}
BATCH=${2:-8}
CTX=${3:-8192}
BUILD=${BUILD:-build-gpu}
export TORCH_CUDA_ARCH_LIST=9.0
NVCC=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
NCU=$(command -v ncu || ls /usr/local/cuda/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
DEPS=()
[ -d build-deps ] && DEPS+=(-Dnlohmann_json_DIR="$PWD/build-deps/cmake" -DSQLite3_INCLUDE_DIR="$PWD/build-deps/include"
                          -DSQLite3_LIBRARY="$PWD/build-deps/lib/libsqlite3.a")
if [ ! -f "$BUILD/build.ninja" ]; then
    cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMLAWB_GUI=OFF -DMLAWB_CUDA=ON \
        -DCMAKE_CUDA_COMPILER="$NVCC" -DCMAKE_PREFIX_PATH="$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')" \
        -DMLAWB_SHARED_DIR="$PWD/shared" -DCMAKE_POLICY_VERSION_MINIMUM=3.5 "${DEPS[@]}" > "$OUTDIR/configure.log" 2>&1 ||
        { tail -20 "$OUTDIR/configure.log"; exit 1; }
fi
ninja -C "$BUILD" -j "$(nproc)" ${PROFILE_TARGETS:-test_decode_attention gpu_decode} > "$OUTDIR/build.log" 2>&1 ||
    { grep -m5 -A8 -E "error|FAILED" "$OUTDIR/build.log"; exit 1; }
echo "built"
"$BUILD/tests/gpu/test_decode_attention" > "$OUTDIR/test_decode_attention.log" 2>&1
echo "test_decode_attention: $(grep -E '^Totals' "$OUTDIR/test_decode_attention.log")"
IFS=, read -r -a LIST <<< "$ENGINES"
for e in "${LIST[@]}"; do
    "$NCU" --clock-control none --profile-from-start off --csv \
        --metrics gpu__time_duration.sum,dram__bytes_read.sum,dram__bytes_write.sum \
        "$BUILD/tests/gpu/gpu_decode" --engines "$e" --batches "$BATCH" --contexts "$CTX" --steps 1 --warmup 1 \
        --no-graph --no-fit > "$OUTDIR/ncu_$e.csv" 2> "$OUTDIR/ncu_$e.log"
    python3 scripts/gpu/ncu_table.py "$OUTDIR/ncu_$e.csv" ${SEQUENCE:-0} ${SEQUENCE_FIRST:-0} | tee "$OUTDIR/profile_$e.txt"
done
