#!/usr/bin/env bash
# Configure (once) and build the GPU targets on the device machine: CUDA on, GUI off, against
# pip's LibTorch, fixtures from ./shared, build-deps/ for nlohmann_json and SQLite where the
# machine lacks them (scripts/gpu/pack_deps.sh).
#   scripts/gpu/build.sh [TARGET...]     (default: everything)   BUILD=build-gpu
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build-gpu}
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
if [ -d shared/fixtures/models ] && [ -d resources/models/wb-tiny-mha ] && [ ! -e shared/fixtures/models/wb-tiny-mha/config.json ]; then
    rm -rf shared/fixtures/models/wb-tiny-mha
    ln -sfn "$PWD/resources/models/wb-tiny-mha" shared/fixtures/models/wb-tiny-mha
fi
DEPS=()
[ -d build-deps ] && DEPS+=(-Dnlohmann_json_DIR="$PWD/build-deps/cmake" -DSQLite3_INCLUDE_DIR="$PWD/build-deps/include"
                          -DSQLite3_LIBRARY="$PWD/build-deps/lib/libsqlite3.a")
mkdir -p "$BUILD"
if [ ! -f "$BUILD/build.ninja" ]; then
    cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMLAWB_GUI=OFF -DMLAWB_CUDA=ON \
        -DCMAKE_CUDA_COMPILER="$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)" \
        -DCMAKE_PREFIX_PATH="$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')" \
        -DMLAWB_SHARED_DIR="$PWD/shared" -DCMAKE_POLICY_VERSION_MINIMUM=3.5 "${DEPS[@]}" > "$BUILD/configure.log" 2>&1 ||
        { tail -30 "$BUILD/configure.log"; exit 1; }
fi
cmake --build "$BUILD" -j "$(nproc)" ${1:+--target "$@"} > "$BUILD/build.log" 2>&1 ||
    { grep -m5 -B2 -A10 -E "error|FAILED" "$BUILD/build.log"; exit 1; }
echo "built $BUILD ${*:-all}"
