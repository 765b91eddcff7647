#!/bin/sh
# Build the libFuzzer targets with clang (build-fuzz/) and run each one for
# SECONDS (default 20) from fresh seeds; a crash, a hang or a bad reply
# stops with the input in build-fuzz/crashes/.
#   usage: fuzz/run.sh [SECONDS]
set -eu
cd "$(dirname "$0")/.."
secs=${1:-20}
if ! command -v clang >/dev/null; then
	echo "fuzz: no clang (scripts/setup.sh installs it)" >&2
	exit 1
fi
CC=clang cmake -S . -B build-fuzz -DSLUICE_FUZZ=ON \
	-DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-fuzz -j "$(nproc)" --target fuzz_api fuzz_config fuzz_auth \
	>/dev/null
corpus=$(mktemp -d /tmp/sl_fuzz.XXXXXX)
trap 'rm -rf "$corpus"' EXIT INT TERM
/usr/bin/python3 fuzz/seeds.py "$corpus" # Debian's, with python3-msgpack
mkdir -p build-fuzz/crashes
for t in api config auth; do
	echo "fuzz: fuzz_$t for $secs s"
	ASAN_OPTIONS=detect_leaks=0 ./build-fuzz/fuzz/fuzz_$t \
		-max_total_time="$secs" -max_len=65536 -timeout=60 \
		-print_final_stats=1 -artifact_prefix=build-fuzz/crashes/ \
		"$corpus/$t" 2>"$corpus/$t.log" || {
		tail -40 "$corpus/$t.log" >&2
		echo "fuzz: fuzz_$t failed; the input is in build-fuzz/crashes/" >&2
		exit 1
	}
	grep -E "stat::number_of_executed_units|stat::peak_rss" "$corpus/$t.log" |
		sed "s/^/fuzz: fuzz_$t /"
done
