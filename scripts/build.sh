#!/usr/bin/env bash
# Configures and builds everything in build/ (Ninja + ccache, Release). Extra arguments go to
# cmake, e.g. scripts/build.sh -DMLAWB_GUI=OFF for a GPU server without Qt.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${MLAWB_BUILD_DIR:-build}
JOBS=${MLAWB_JOBS:-$(nproc)}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
ninja -C "$BUILD_DIR" -j "$JOBS"
