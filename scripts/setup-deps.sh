#!/usr/bin/env bash
# Installs every Debian 12 package the build, the app and the tests need. Idempotent: when
# everything is installed already it only checks (about a second).
set -euo pipefail

PACKAGES=(
  qt6-base-dev qt6-svg-dev libqcustomplot-dev libqcustomplot2.1-qt6   # GUI: Qt 6 Widgets, Qt SVG (plot export), QCustomPlot (Qt 6 build)
  libtorch-dev libeigen3-dev libsqlite3-dev nlohmann-json3-dev
  libopenblas0-pthread   # Debian's LibTorch calls libblas.so.3: OpenBLAS instead of netlib's reference BLAS is ~30x faster
  cmake ninja-build ccache g++
  xvfb xauth             # GUI under a virtual display (screenshots, run.sh without a desktop)
)

missing=()
for p in "${PACKAGES[@]}"; do
  [[ $p == \#* ]] && continue
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup-deps: all ${#PACKAGES[@]} packages already installed"
  exit 0
fi

echo "setup-deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
