#!/usr/bin/env bash
# The GPU session of issue 11 in one call, on a bare device machine (CUDA, pip's torch,
# transformers, cmake, ninja; no Qt, nothing to install): from the repository root,
#   1. configure with -DMLAWB_CUDA=ON against pip's LibTorch and build only what GPU work needs,
#   2. ctest -L gpu (kernel against the CPU reference; batched decode against the engine),
#   3. kernel-only timings at Llama-2-7B shapes,
#   4. mlawb perplexity (and eval) on cpu against cuda f32 on the fixtures: within 0.1%,
#   5. the decode benchmark, ours against transformers, one side-by-side table.
# Logs go to build-gpu/run/; $OUT gets at most 8 files (the device tool's limit): summary.txt,
# decode_table.txt, ctest.log, kernel_bench.log, gpu_decode.json, hf_decode.json and run.tar.gz
# (every log). A summary is printed last. Needs the fixtures in
# ${MLAWB_SHARED_DIR:-shared} and build-deps/ (scripts/gpu/pack_deps.sh) where the machine lacks
# nlohmann_json or SQLite headers. Bounded to ~9 minutes (DEVICE_RUN_SECONDS, default 540).
set -uo pipefail
cd "$(dirname "$0")/../.."
FINAL_OUT=${OUT:-$PWD/out-gpu}
mkdir -p "$FINAL_OUT"
T0=$(date +%s)
LIMIT=${DEVICE_RUN_SECONDS:-540}
BUILD=build-gpu
OUT=$PWD/$BUILD/run  # every log; the key files are copied to $FINAL_OUT at the end
rm -rf "$OUT"
mkdir -p "$OUT"
SUMMARY="$OUT/summary.txt"
: > "$SUMMARY"
elapsed() { echo $(( $(date +%s) - T0 )); }
left() { echo $(( LIMIT - $(elapsed) )); }
note() { echo "[$(elapsed)s] $*" | tee -a "$SUMMARY"; }

SHARED=$(realpath "${MLAWB_SHARED_DIR:-shared}" 2>/dev/null || true)
[ -d "$SHARED/fixtures/models" ] || note "WARNING: no fixtures at ${MLAWB_SHARED_DIR:-shared}/fixtures (tests needing them will fail)"
export TORCH_CUDA_ARCH_LIST=9.0  # torch's CMake adds no other architectures
NVCC=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
TORCH_PREFIX=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
{
    nvidia-smi
    python3 -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__, torch.cuda.get_device_name())'
    "$NVCC" --version | tail -2
    cmake --version | head -1
    c++ --version | head -1
    nproc
} > "$OUT/env.txt" 2>&1
note "env: $(grep -m1 '^torch' "$OUT/env.txt")"

# --- 1. configure and build -----------------------------------------------------------------
DEPS=()
if [ -d build-deps ]; then
    DEPS+=(-Dnlohmann_json_DIR="$PWD/build-deps/cmake" -DSQLite3_INCLUDE_DIR="$PWD/build-deps/include"
           -DSQLite3_LIBRARY="$PWD/build-deps/lib/libsqlite3.a")
fi
if ! cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMLAWB_GUI=OFF -DMLAWB_CUDA=ON \
        -DCMAKE_CUDA_COMPILER="$NVCC" -DCMAKE_PREFIX_PATH="$TORCH_PREFIX" -DMLAWB_SHARED_DIR="$SHARED" \
        -DCMAKE_POLICY_VERSION_MINIMUM=3.5 "${DEPS[@]}" > "$OUT/configure.log" 2>&1; then
    note "configure FAILED (configure.log):"
    tail -30 "$OUT/configure.log"
    exit 1
fi
note "configured"
TARGETS=(test_decode_attention test_batched_decode test_pipeline_gpu test_trainer_gpu gpu_decode mlawb)
timeout $(( $(left) - 240 > 120 ? $(left) - 240 : 120 )) ninja -C "$BUILD" -k 0 -j "$(nproc)" "${TARGETS[@]}" \
    > "$OUT/build.log" 2>&1
BUILD_RC=$?
for t in tests/gpu/test_decode_attention tests/gpu/test_batched_decode tests/gpu/gpu_decode app/cli/mlawb; do
    [ -x "$BUILD/$t" ] || note "build: $t MISSING"
done
if [ $BUILD_RC -ne 0 ]; then
    note "build returned $BUILD_RC (build.log); first errors:"
    grep -m5 -A5 -E "error|FAILED" "$OUT/build.log" | head -40
fi
note "built"

# --- 2. GPU tests ---------------------------------------------------------------------------
if [ -x "$BUILD/tests/gpu/test_decode_attention" ]; then
    (cd "$BUILD" && timeout 240 ctest -L gpu --output-on-failure --timeout 200) > "$OUT/ctest.log" 2>&1
    note "ctest -L gpu: $(grep -E 'tests passed|tests failed' "$OUT/ctest.log" | tail -1)"
    grep -E "^(FAIL|  .*rel err|  .*vs engine)" "$OUT/ctest.log" | grep -E "FAIL|NON-FINITE" | head -20 | tee -a "$SUMMARY"
fi

# --- 3. kernel-only timings -----------------------------------------------------------------
if [ -x "$BUILD/tests/gpu/test_decode_attention" ] && [ "$(left)" -gt 300 ]; then
    timeout 90 "$BUILD/tests/gpu/test_decode_attention" --bench > "$OUT/kernel_bench.log" 2>&1
    note "kernel timings (kernel_bench.log):"
    sed -n '/kernel only/,$p' "$OUT/kernel_bench.log" | tee -a "$SUMMARY"
fi

# --- 4. perplexity and eval: cpu against cuda -----------------------------------------------
MLAWB="$BUILD/app/cli/mlawb"
if [ -x "$MLAWB" ] && [ -d "$SHARED/fixtures/models" ] && [ "$(left)" -gt 240 ]; then
    TEXT="$SHARED/fixtures/heldout.txt"
    ppl() { timeout 120 "$MLAWB" perplexity "$@" --text "$TEXT" --max-windows 6 --threads "$(nproc)" --json 2>>"$OUT/perplexity.log" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["perplexity"])' 2>>"$OUT/perplexity.log"; }
    for model in wb-tiny-mha wb-tiny-gqa; do
        for spec in "" "strategy=high,r=4,d_kv=16,svd=joint"; do
            MLA=()
            [ -n "$spec" ] && MLA=(--mla "$spec")
            cpu=$(ppl "$SHARED/fixtures/models/$model" "${MLA[@]}")
            cuda=$(ppl "$SHARED/fixtures/models/$model" "${MLA[@]}" --device cuda --dtype f32)
            bf16=$(ppl "$SHARED/fixtures/models/$model" "${MLA[@]}" --device cuda --dtype bf16)
            verdict=$(python3 -c "
c, g, h = '$cpu', '$cuda', '$bf16'
try:
    c, g = float(c), float(g)
    r = abs(g - c) / c
    hb = ('%.4f (%+.2f%%)' % (float(h), 100 * (float(h) - c) / c)) if h else 'n/a'
    print('%s cpu f32 %.4f  cuda f32 %.4f  rel %.1e  %s  cuda bf16 %s' % ('PASS' if r < 1e-3 else 'FAIL', c, g, r, '<1e-3' if r < 1e-3 else '>=1e-3', hb))
except Exception as e:
    print('FAIL no result (cpu=%r cuda=%r): see perplexity.log' % (c, g))
")
            note "perplexity $model ${spec:-original}: $verdict"
        done
    done
    # LongBench-style eval (greedy decoding), a few records: scores on cuda f32 equal to cpu.
    if [ -f "$SHARED/fixtures/longbench-syn/passkey.jsonl" ]; then
        for dev in cpu cuda; do
            timeout 90 "$MLAWB" eval "$SHARED/fixtures/models/wb-tiny-mha" --tasks "$SHARED/fixtures/longbench-syn" \
                --datasets passkey,kv_retrieval --limit 6 --max-prompt 1024 --db "$OUT/eval_$dev.db" --device "$dev" --json \
                > "$OUT/eval_$dev.json" 2>>"$OUT/eval.log"
        done
        note "eval passkey,kv_retrieval (6 records): $(python3 -c "
import json
try:
    a, b = (json.load(open('$OUT/eval_%s.json' % d))['scores'] for d in ('cpu', 'cuda'))
    print(('PASS' if a == b else 'DIFFERENT') + ' cpu ' + json.dumps(a) + ' cuda ' + json.dumps(b))
except Exception as e:
    print('FAIL no result: %s (eval.log)' % e)
")"
    fi
fi

# --- 5. decode benchmark ----------------------------------------------------------------------
if [ -x "$BUILD/tests/gpu/gpu_decode" ] && [ "$(left)" -gt 90 ]; then
    BENCH_SECONDS=$(( $(left) - 20 )) scripts/gpu/bench_decode.sh "$BUILD" "$OUT" > "$OUT/bench.log" 2>&1
    note "decode benchmark (bench.log, decode_table.txt)"
else
    note "decode benchmark skipped ($(left)s left)"
fi

for f in summary.txt decode_table.txt ctest.log kernel_bench.log gpu_decode.json hf_decode.json; do
    [ -f "$OUT/$f" ] && cp "$OUT/$f" "$FINAL_OUT/"
done
tar -C "$BUILD" -czf "$FINAL_OUT/run.tar.gz" run 2>/dev/null

echo
echo "================ summary ($(elapsed)s) ================"
cat "$SUMMARY"
echo
[ -f "$OUT/gpu_decode.log" ] && grep -E "largest batch|weights .* GB" "$OUT/gpu_decode.log"
[ -f "$OUT/hf_decode.log" ] && grep -E "largest batch|^transformers" "$OUT/hf_decode.log"
[ -f "$OUT/decode_table.txt" ] && cat "$OUT/decode_table.txt"
