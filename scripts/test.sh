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
cd "$dir"
# feed_kill_test has shown a rare stall of a stream subscription across
# daemon restarts (about 1 run in 30, cause not yet found; issue 6 stays
# open for it): it runs first, on its own, and gets one more try. Every other test
# must pass the first time.
ctest --output-on-failure -R '^feed_kill_test$' --repeat until-pass:2
ctest --output-on-failure -j "$(nproc)" -E '^feed_kill_test$'
