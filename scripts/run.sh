#!/usr/bin/env bash
# README command 1: install dependencies, build, and open the workbench on the bundled demo
# model. Without a display, run the headless demo (mlawb info + perplexity) instead.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-deps.sh
scripts/build.sh
BUILD_DIR=${MLAWB_BUILD_DIR:-build}
MODEL=resources/models/wb-tiny-mha

if [ -n "${DISPLAY:-}" ] || [ -n "${WAYLAND_DISPLAY:-}" ]; then
  echo "run.sh: opening MLA Workbench on $MODEL"
  exec "$BUILD_DIR/app/gui/mla-workbench" "$MODEL" "$@"
fi

echo "run.sh: no display found (DISPLAY and WAYLAND_DISPLAY are unset): running the headless demo instead."
echo
echo "\$ mlawb info $MODEL"
"$BUILD_DIR/app/cli/mlawb" info "$MODEL"
echo
echo "\$ mlawb perplexity $MODEL --text resources/text/demo.txt"
"$BUILD_DIR/app/cli/mlawb" perplexity "$MODEL" --text resources/text/demo.txt
echo
echo "For the window: run 'xvfb-run -a scripts/run.sh' (virtual display), or run scripts/run.sh"
echo "from a desktop session, or ssh -X into this machine."
