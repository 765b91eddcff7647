#!/bin/sh
# Sets up, builds and runs the whole test suite with ctest.
# SLUICE_SANITIZE=1 builds with ASan+UBSan into build-asan/ instead.
set -eu
cd "$(dirname "$0")/.."
./scripts/setup.sh

dir=build
flags=""
if [ "${SLUICE_SANITIZE:-0}" = 1 ]; then
	dir=build-asan
	flags="-DSLUICE_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug"
fi
# shellcheck disable=SC2086
cmake -S . -B "$dir" $flags >/dev/null
cmake --build "$dir" -j "$(nproc)"
(cd "$dir" && ctest --output-on-failure -j "$(nproc)")
# The libFuzzer targets, briefly: the request path and resources.yaml
# (fuzz/run.sh SECONDS runs them longer).
if [ "${SLUICE_SANITIZE:-0}" != 1 ]; then
	./fuzz/run.sh "${SLUICE_FUZZ_SECONDS:-20}"
fi
