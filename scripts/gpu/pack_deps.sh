#!/usr/bin/env bash
# Packs the two build dependencies a GPU server may lack (it has CUDA, pip's torch, cmake and
# ninja, and nothing can be installed there): nlohmann_json (headers plus a minimal CMake
# package) and SQLite (header plus static library), from this Debian machine into build-deps/
# (ignored by git, ~4 MB). Carry build-deps with the device call; device_run.sh uses it.
#   scripts/gpu/pack_deps.sh        (needs nlohmann-json3-dev and libsqlite3-dev here)
set -euo pipefail
cd "$(dirname "$0")/../.."
D=build-deps
rm -rf "$D"
mkdir -p "$D/include" "$D/lib" "$D/cmake"
cp -r /usr/include/nlohmann "$D/include/"
cp /usr/include/sqlite3.h /usr/include/sqlite3ext.h "$D/include/"
cp /usr/lib/x86_64-linux-gnu/libsqlite3.a "$D/lib/"
version=$(sed -n 's/^#define NLOHMANN_JSON_VERSION_MAJOR \([0-9]*\).*/\1/p' /usr/include/nlohmann/detail/abi_macros.hpp 2>/dev/null).$(sed -n 's/^#define NLOHMANN_JSON_VERSION_MINOR \([0-9]*\).*/\1/p' /usr/include/nlohmann/detail/abi_macros.hpp 2>/dev/null).$(sed -n 's/^#define NLOHMANN_JSON_VERSION_PATCH \([0-9]*\).*/\1/p' /usr/include/nlohmann/detail/abi_macros.hpp 2>/dev/null)
[ "$version" = ".." ] && version=3.11.2
cat > "$D/cmake/nlohmann_jsonConfig.cmake" <<CFG
# Minimal package for the headers beside it (scripts/gpu/pack_deps.sh).
if(NOT TARGET nlohmann_json::nlohmann_json)
  add_library(nlohmann_json::nlohmann_json INTERFACE IMPORTED)
  set_target_properties(nlohmann_json::nlohmann_json PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "\${CMAKE_CURRENT_LIST_DIR}/../include")
endif()
set(nlohmann_json_VERSION $version)
CFG
cat > "$D/cmake/nlohmann_jsonConfigVersion.cmake" <<CFG
set(PACKAGE_VERSION $version)
if(PACKAGE_FIND_VERSION VERSION_GREATER PACKAGE_VERSION)
  set(PACKAGE_VERSION_COMPATIBLE FALSE)
else()
  set(PACKAGE_VERSION_COMPATIBLE TRUE)
  if(PACKAGE_FIND_VERSION STREQUAL PACKAGE_VERSION)
    set(PACKAGE_VERSION_EXACT TRUE)
  endif()
endif()
CFG
du -sh "$D"
