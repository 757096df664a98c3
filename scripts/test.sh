#!/usr/bin/env bash
# README command 2: install dependencies, build, run every CPU test.
# Expects the fixtures in ../shared beside the checkout (as CI has them).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-deps.sh
scripts/build.sh
BUILD_DIR=${MLAWB_BUILD_DIR:-build}
if [ ! -d ../shared/fixtures ]; then
  echo "test.sh: ../shared/fixtures is missing: the tests need it beside the checkout and will fail" >&2
fi
ctest --test-dir "$BUILD_DIR" -LE gpu --output-on-failure
