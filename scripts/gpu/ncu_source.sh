#!/usr/bin/env bash
# Nsight Compute over one tensor-core partial-kernel launch, with the per-line stall samples:
# the report, its details page and its source page (CUDA lines and SASS, as CSV) into $OUT.
# Needs a built build-gpu/tests/gpu/test_decode_attention (scripts/gpu/build.sh).
#   scripts/gpu/ncu_source.sh [SHAPE="MLA L 2048 + 32"] [SKIP=80]
# SKIP 80 is the 6th launch of batch 8 x 8k in test_decode_attention --bench-only's order
# (25 launches a shape: batch 1 x 2k, 1 x 8k, 8 x 2k, then 8 x 8k).
set -uo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build-gpu}
OUTDIR=${OUT:-$PWD/out-gpu}
mkdir -p "$OUTDIR"
SHAPE=${1:-MLA L 2048 + 32}
SKIP=${2:-80}
NCU=$(command -v ncu || ls /usr/local/cuda/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
"$NCU" --kernel-name regex:decode_mma --launch-skip "$SKIP" --launch-count 1 --set full --import-source yes -f \
    -o "$OUTDIR/decode_mma" "$BUILD/tests/gpu/test_decode_attention" --bench-only "$SHAPE" > /tmp/ncu_run.log 2>&1 ||
    { tail -20 /tmp/ncu_run.log; exit 1; }
"$NCU" -i "$OUTDIR/decode_mma.ncu-rep" --page details > "$OUTDIR/ncu_details.txt" 2>&1
for what in cuda sass; do
    "$NCU" -i "$OUTDIR/decode_mma.ncu-rep" --page source --csv --print-source "$what" > "$OUTDIR/ncu_source_$what.csv" 2>&1 ||
        head -5 "$OUTDIR/ncu_source_$what.csv"
done
grep -E "Duration|Issue Slots Busy|Eligible Warps|Warp Cycles Per Issued|DRAM Throughput" "$OUTDIR/ncu_details.txt"
wc -c "$OUTDIR"/ncu_source_*.csv
