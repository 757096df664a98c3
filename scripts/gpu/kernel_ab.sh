#!/usr/bin/env bash
# Kernel-only A/B on the device: tests/gpu/test_decode_attention built from the working tree and
# from a baseline revision's core/cuda sources (same compile flags, same link), benched in
# alternating rounds on the same machine, then one table: median over the rounds of each side's
# median-of-20 time, and the ratio.
#   here:    rm -rf build-base && mkdir build-base && git archive REV core/cuda | tar -x -C build-base
#   device:  scripts/gpu/kernel_ab.sh build-base [SHAPE=MLA] [ROUNDS=3]     (carry build-base)
set -euo pipefail
cd "$(dirname "$0")/../.."
BASE=$(cd "$1" && pwd)
SHAPE=${2:-MLA}
ROUNDS=${3:-3}
BUILD=${BUILD:-build-gpu}
OUTDIR=${OUT:-$PWD/out-gpu}
mkdir -p "$OUTDIR" "$BASE/obj"
RAW=$(mktemp -d)  # the rounds' raw timings (the table alone goes to OUTDIR)
scripts/gpu/build.sh test_decode_attention
# The kernel objects again, from the baseline's sources: the baseline folder first on the include
# path, so its core/cuda headers win over the working tree's.
for src in decode_attention decode_elementwise; do
    obj=core/CMakeFiles/mlawb_cuda_kernels.dir/cuda/$src.cu.o
    cmd=$(ninja -C "$BUILD" -t commands "$obj" | tail -1)
    cmd=${cmd//"$PWD/core/cuda/$src.cu"/"$BASE/core/cuda/$src.cu"}
    cmd=${cmd//"$obj.d"/"$BASE/obj/$src.d"}
    cmd=${cmd//"-o $obj"/"-o $BASE/obj/$src.o"}
    cmd=${cmd/ -/ -I$BASE -}
    (cd "$BUILD" && eval "$cmd")
done
rm -f "$BASE/obj/libkernels.a" && ar rcs "$BASE/obj/libkernels.a" "$BASE/obj/decode_attention.o" "$BASE/obj/decode_elementwise.o"
link=$(ninja -C "$BUILD" -t commands tests/gpu/test_decode_attention | tail -1)
link=${link//"core/libmlawb_cuda_kernels.a"/"$BASE/obj/libkernels.a"}
link=${link//"-o tests/gpu/test_decode_attention "/"-o tests/gpu/test_decode_attention_base "}
(cd "$BUILD" && eval "$link")
echo "built baseline and current test_decode_attention"
for r in $(seq "$ROUNDS"); do
    "$BUILD/tests/gpu/test_decode_attention_base" --bench-only "$SHAPE" > "$RAW/ab_base_$r.txt"
    "$BUILD/tests/gpu/test_decode_attention" --bench-only "$SHAPE" > "$RAW/ab_new_$r.txt"
done
python3 - "$RAW" "$ROUNDS" <<'PY' | tee "$OUTDIR/kernel_ab.txt"
import re, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
def read(side):
    rows = {}
    for r in range(1, rounds + 1):
        for line in open(f"{out}/ab_{side}_{r}.txt"):
            m = re.match(r"(.{22}) +(\d+) +(\d+) +(\S+) +([\d.]+) ", line)
            if m:
                rows.setdefault((m[1].strip(), int(m[2]), int(m[3]), m[4]), []).append(float(m[5]))
    return rows
base, new = read("base"), read("new")
print(f"kernel only, one layer, bf16; median over {rounds} alternating rounds of each median of 20, us")
print(f"{'shape':22} {'batch':>5} {'ctx':>6} {'kernel':12} {'baseline':>9} {'current':>9} {'ratio':>6}")
for key in base:
    if key in new:
        b, n = statistics.median(base[key]), statistics.median(new[key])
        print(f"{key[0]:22} {key[1]:5d} {key[2]:6d} {key[3]:12} {b:9.1f} {n:9.1f} {b / n:5.2f}x")
PY
