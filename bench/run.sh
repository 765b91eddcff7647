#!/bin/sh
# The Sluice benchmark suite in one command: builds a release build into
# build-bench/, runs every workload of issue 9 through the real daemon and
# client library, the raw limits (LMDB, NNG) and the SQLite baseline in the
# same run, prints a table and writes bench/RESULTS.md (the report above
# its "<!-- by hand:" line; the sections written by hand below it stay).
#
#   bench/run.sh            full run (5 runs per figure, ~20 min on 2 cores)
#   bench/run.sh --quick    smaller sizes, 1 run each (remote catch-up: 3;
#                           < 3 min); writes build-bench/RESULTS-quick.md
#   bench/run.sh --smoke BUILD_DIR
#                           tiny sizes with an existing build (the CI
#                           test): fails if any figure is missing
#   --build DIR             use an existing build (configured with
#                           -DCMAKE_BUILD_TYPE=Release) instead of building
#   --profile               also profile sluiced with perf (catch-up and
#                           durable append); automatic in a full run when a
#                           target is missed
#   --out FILE              where to write the results (markdown)
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)

mode=full
build=""
profile=auto
out=""
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) mode=quick ;;
	--smoke)
		mode=smoke
		build=${2:?--smoke needs the build directory}
		shift
		;;
	--build)
		build=${2:?--build needs the build directory}
		shift
		;;
	--profile) profile=yes ;;
	--no-profile) profile=no ;;
	--out)
		out=${2:?--out needs a file}
		shift
		;;
	-h | --help)
		sed -n '2,20p' "$0"
		exit 0
		;;
	*)
		echo "run.sh: unknown argument '$1'" >&2
		exit 2
		;;
	esac
	shift
done

t_start=$(date +%s)
say() { echo "bench [$(($(date +%s) - t_start)) s] $*" >&2; }

# ---- set up and build ----
as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		echo "run.sh: need root (or sudo) for: $*" >&2
		exit 1
	fi
}
need_pkg() { # package...: install those that are missing
	missing=""
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
			grep -q "ok installed" || missing="$missing $p"
	done
	if [ -n "$missing" ]; then
		say "installing:$missing"
		export DEBIAN_FRONTEND=noninteractive
		as_root apt-get update -q >&2
		# shellcheck disable=SC2086
		as_root apt-get install -y -q --no-install-recommends \
			$missing >&2
	fi
}

if [ -n "$build" ]; then
	build=$(cd "$build" && pwd)
else
	./scripts/setup.sh
	need_pkg libsqlite3-dev
	build=$ROOT/build-bench
	say "building a release build in build-bench/"
	# Frame pointers cost next to nothing on x86-64 and give perf whole
	# call chains through sluiced.
	cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DSLUICE_BENCH=ON \
		-DCMAKE_C_FLAGS=-fno-omit-frame-pointer >/dev/null
	cmake --build "$build" -j "$(nproc)" --target sluiced account_details \
		bench_sluice bench_lmdb bench_nng bench_sqlite bench_live \
		bench_remote remote_account_details sluice-host bench_emit \
		bench_emitter bench_slow_neighbour bench_lanes bench_sources \
		bench_sources_plugin >/dev/null
fi
BS=$build/bench/bench_sluice
BL=$build/bench/bench_lmdb
BN=$build/bench/bench_nng
BQ=$build/bench/bench_sqlite
BF=$build/bench/bench_live
BR=$build/bench/bench_remote
SLUICED=$build/sluiced
PLUGIN=$build/plugins/account_details.so
REMOTE_CLIENT=$build/remote_account_details
BE=$build/bench/bench_emit
BLN=$build/bench/bench_lanes
EMITTER=$build/bench/plugins/bench_emitter.so
BSRC=$build/bench/bench_sources
SOURCES=$build/bench/plugins/bench_sources_plugin.so
NEIGHBOUR=$build/bench/plugins/bench_slow_neighbour.so
for f in "$BS" "$BL" "$BN" "$BQ" "$BF" "$BR" "$SLUICED" "$PLUGIN" \
	"$REMOTE_CLIENT" "$BE" "$BLN" "$EMITTER" "$NEIGHBOUR" "$BSRC" \
	"$SOURCES" "$build/sluice-host"; do
	[ -e "$f" ] || { echo "run.sh: $f is missing (build first)" >&2; exit 1; }
done

# ---- sizes per mode ----
case $mode in
full)
	RUNS=5 T_APPEND=2 T_RAW=1 T_NNG=2 T_SQL=1.5 T_C2RM=6 T_QUERY=2
	SIZES="100000 1000000 4000000" ACCOUNTS=10000 N_LIVE=300000
	N_REMOTE=50000 REMOTE_RUNS=5 N_EMIT=200000 W_EMIT=6000
	N_LANES=100000 T_LANES=3
	;;
quick)
	RUNS=1 T_APPEND=0.5 T_RAW=0.5 T_NNG=0.5 T_SQL=0.5 T_C2RM=2 T_QUERY=0.5
	SIZES="100000 250000 500000" ACCOUNTS=10000 N_LIVE=100000
	N_REMOTE=20000 REMOTE_RUNS=3 N_EMIT=50000 W_EMIT=6000
	N_LANES=50000 T_LANES=1
	;;
smoke)
	RUNS=1 T_APPEND=0.1 T_RAW=0.1 T_NNG=0.1 T_SQL=0.1 T_C2RM=0.2
	T_QUERY=0.1 SIZES="1000 2000 4000" ACCOUNTS=200 N_LIVE=2000
	N_REMOTE=1000 REMOTE_RUNS=1 N_EMIT=2000 W_EMIT=200
	N_LANES=2000 T_LANES=0.2
	;;
esac
if [ -z "$out" ]; then
	case $mode in
	full) out=$ROOT/bench/RESULTS.md ;;
	quick) out=$build/RESULTS-quick.md ;;
	smoke) out="" ;;
	esac
fi

WORK=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/sluice-bench.XXXXXX")
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
RAW=$WORK/raw.txt
: >"$RAW"

# run KEY command...: append the command's "key value" lines as KEY.key.
# Dirty pages of the step before (a load with sync off, an import) are
# flushed first, so that their writeback does not slow this step's syncs.
run() {
	key=$1
	shift
	sync
	if ! "$@" >"$WORK/out.txt" 2>"$WORK/err.txt"; then
		echo "run.sh: failed: $*" >&2
		cat "$WORK/err.txt" >&2
		exit 1
	fi
	sed "s/^/$key./" "$WORK/out.txt" >>"$RAW"
}

load_start=$(cut -d' ' -f1 /proc/loadavg)
say "mode $mode, $RUNS run(s) per figure, work dir $WORK (load $load_start)"

# ---- append: the limits (raw LMDB, raw NNG), Sluice and SQLite ----
# Each run measures the limits, Sluice and SQLite back to back, so that the
# ratios compare figures taken under the same conditions.
for r in $(seq "$RUNS"); do
	say "run $r/$RUNS: raw LMDB append"
	for s in 1 0; do
		sk=$([ $s = 1 ] && echo sync || echo nosync)
		for t in 1 10 100 1000; do
			run "raw.lmdb.$sk.t$t" "$BL" append --dir "$WORK/lmdb" \
				--txn $t --sync $s --seconds $T_RAW
		done
	done
	say "run $r/$RUNS: raw NNG req/rep"
	for c in 1 4 16; do
		run "raw.nng.c$c" "$BN" run --dir "$WORK/nng" --clients $c \
			--seconds $T_NNG
	done
	say "run $r/$RUNS: append through sluiced (18 configurations)"
	for s in 1 0; do
		sk=$([ $s = 1 ] && echo sync || echo nosync)
		for c in 1 4 16; do
			for b in 1 10 100; do
				run "append.$sk.c$c.b$b" "$BS" append \
					--sluiced "$SLUICED" --dir "$WORK" --sync $s \
					--clients $c --batch $b --seconds $T_APPEND \
					--binary
			done
		done
	done
	say "run $r/$RUNS: SQLite append"
	for s in FULL NORMAL; do
		sk=$(echo $s | tr A-Z a-z)
		for b in 1 10 100; do
			run "sqlite.append.$sk.b$b" "$BQ" append --db "$WORK/append.db" \
				--sync $s --batch $b --seconds $T_SQL
		done
	done
done
rm -f "$WORK"/append.db*

# ---- catch-up at three log sizes, with the limit and SQLite beside ----
CU=$WORK/catchup
i=0
for n in $SIZES; do
	i=$((i + 1))
	say "catch-up $i: loading the log to $n events (no projection)"
	"$BS" load --sluiced "$SLUICED" --dir "$CU" --accounts $ACCOUNTS \
		--events "$n" --load-procs 4 2>>"$WORK/load.log" ||
		{ cat "$WORK/load.log" >&2; exit 1; }
	run "raw.sqlite.import.$i" "$BQ" import --db "$WORK/ad.db" \
		--log "$CU/data/events" --max "$n"
	for r in $(seq "$RUNS"); do
		say "catch-up $i ($n events), run $r/$RUNS: sluiced, raw fold, SQLite"
		run "catchup.$i" "$BS" catchup --sluiced "$SLUICED" --dir "$CU" \
			--plugin "$PLUGIN" --sync 1
		run "raw.scanfold.$i" "$BL" scanfold --dir "$CU/data/events" \
			--max "$n"
		run "sqlite.catchup.$i" "$BQ" project --db "$WORK/ad.db" \
			--sync FULL --batch 1000
	done
done
sed -n 's/^raw\.sqlite\.import\.\([0-9]\)\.bytes_per_event /sqlite.catchup.\1.bytes_per_event /p' \
	"$RAW" >"$WORK/sq.txt"
cat "$WORK/sq.txt" >>"$RAW"

# ---- queries on the read models of the last catch-up ----
for r in $(seq "$RUNS"); do
	say "run $r/$RUNS: queries (get_one 1 and 4 clients, get_all)"
	# The transport limit again, next to the queries it is compared with.
	run raw.nng.qc1 "$BN" run --dir "$WORK/nng" --clients 1 --seconds $T_NNG
	run raw.nng.qc4 "$BN" run --dir "$WORK/nng" --clients 4 --seconds $T_NNG
	run query.c1 "$BS" query --sluiced "$SLUICED" --dir "$CU" \
		--plugin "$PLUGIN" --clients 1 --seconds $T_QUERY --get-all
	run query.c4 "$BS" query --sluiced "$SLUICED" --dir "$CU" \
		--plugin "$PLUGIN" --clients 4 --seconds $T_QUERY
done
# The transport limit for get_all: 1 client, replies the size of a page.
page=$(awk '$1 == "query.c1.get_all_page_bytes" { print int($2); exit }' "$RAW")
for r in $(seq "$RUNS"); do
	run raw.nng.page "$BN" run --dir "$WORK/nng" --clients 1 \
		--seconds $T_NNG --size 64 --reply-size "${page:-131072}"
done

# ---- commit to read model (sync false) ----
for r in $(seq "$RUNS"); do
	say "run $r/$RUNS: commit to read model, 1,000 events/s, saturated, beside a slow neighbour"
	run c2rm.steady "$BS" c2rm --sluiced "$SLUICED" --dir "$WORK" \
		--plugin "$PLUGIN" --sync 0 --rate 1000 --seconds $T_C2RM
	run c2rm.sat "$BS" c2rm --sluiced "$SLUICED" --dir "$WORK" \
		--plugin "$PLUGIN" --sync 0 --rate 1000 --background 4 \
		--seconds $T_C2RM
	run c2rm.neighbour "$BS" c2rm --sluiced "$SLUICED" --dir "$WORK" \
		--plugin "$PLUGIN" --sync 0 --rate 1000 --seconds $T_C2RM \
		--neighbour "$NEIGHBOUR"
done

# ---- live feed: subscribers following the log while appenders commit ----
for r in $(seq "$RUNS"); do
	say "run $r/$RUNS: live feed, 1 and 4 subscribers"
	for k in 1 4; do
		run "live.c$k" "$BF" run --sluiced "$SLUICED" --dir "$WORK" \
			--subscribers $k --events $N_LIVE --appenders 4 --batch 100
	done
done

# ---- remote catch-up: the plugin vs a remote client process ----
# A log of its own (a remote catch-up takes a round trip per event): one
# account per 10 events. Each run times, back to back on that log, the
# plugin, then the remote_account_details example (C client library)
# speaking protocol 1 with remote.window 1 and with the default window,
# protocol 2 with the defaults, and the plugin under `isolation: process`
# (a sluice-host child of sluiced); the ratios are per run.
RC=$WORK/remote
REMOTE_ACCOUNTS=$((N_REMOTE / 10))
say "remote catch-up: loading the log to $N_REMOTE events (no projection)"
"$BS" load --sluiced "$SLUICED" --dir "$RC" --accounts $REMOTE_ACCOUNTS \
	--events $N_REMOTE --load-procs 4 2>>"$WORK/load.log" ||
	{ cat "$WORK/load.log" >&2; exit 1; }
for r in $(seq "$REMOTE_RUNS"); do
	say "run $r/$REMOTE_RUNS: remote catch-up: plugin, protocol 1 (window 1, default window), protocol 2, plugin host"
	run remote "$BR" catchup --sluiced "$SLUICED" --dir "$RC" \
		--plugin "$PLUGIN" --client "$REMOTE_CLIENT" --sync 1 --host
done
rm -rf "$RC"

# ---- emitting projections (issue 8) ----
# A log of its own (the Account Details workload, ACCOUNTS accounts). Each
# run, on fresh copies of that log: the catch-up of account_details (the
# read-model baseline), of the five system projections and of the
# bench_emitter plugin (a link per event, an emitted event per 10), back to
# back, with the raw scan+decode+fold beside; then the append cost of the
# ownership check (1 client, sync false), configurations interleaved,
# each after W_EMIT events not timed (stopped projections' readers buffer
# the first pending_events_threshold events, then wait).
EM=$WORK/emit
say "emitting projections: loading the log to $N_EMIT events (no projection)"
"$BS" load --sluiced "$SLUICED" --dir "$EM" --accounts $ACCOUNTS \
	--events $N_EMIT --load-procs 4 2>>"$WORK/load.log" ||
	{ cat "$WORK/load.log" >&2; exit 1; }
for r in $(seq "$RUNS"); do
	say "run $r/$RUNS: emitting projections: catch-up (account_details, system, bench_emitter), raw fold"
	run emit "$BE" catchup --sluiced "$SLUICED" --dir "$EM" \
		--plugin "$PLUGIN" --emitter "$EMITTER" --sync 1
	run emit.raw "$BL" scanfold --dir "$EM/data/events" --max $N_EMIT
	say "run $r/$RUNS: emitting projections: append, ownership claims (batch 1, 100)"
	for b in 1 100; do
		run "emit.append.b$b" "$BE" append --sluiced "$SLUICED" \
			--dir "$WORK" --emitter "$EMITTER" --batch $b \
			--seconds $T_APPEND --sync 0 --warmup $W_EMIT
	done
	# ABI 1.3 sources (issue 15): a selective projection against a
	# whole-log one, in process, on a copy of the same log
	say "run $r/$RUNS: sources: whole log, one category, one stream"
	rm -rf "$WORK/src" && mkdir -p "$WORK/src/t"
	cp -r "$EM/data/events" "$WORK/src/log"
	run sources "$BSRC" --log "$WORK/src/log" --plugin "$SOURCES" \
		--tmp "$WORK/src/t"
	rm -rf "$WORK/src"
done
rm -rf "$EM"

# ---- the API's lanes (issue 14) ----
# Fast ops (status, get_one, commit) timed with nothing else running, then
# while 8 client threads keep the slow lane full of one-time queries; a log
# of N_LANES Account Details events of its own.
for r in $(seq "$RUNS"); do
	say "run $r/$RUNS: API lanes: fast ops idle and beside one-time queries"
	run lanes "$BLN" run --sluiced "$SLUICED" --dir "$WORK/lanes" \
		--plugin "$PLUGIN" --events $N_LANES --queriers 8 --seconds $T_LANES
done

# ---- report ----
meta() {
	cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
	fs=$(df -T "$WORK" | awk 'NR == 2 { print $2 " (" $1 ", mounted on " $7 ")" }')
	commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
	dirty=$(git -C "$ROOT" status --porcelain 2>/dev/null | grep -q . && echo " + uncommitted changes" || true)
	btype=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$build/CMakeCache.txt")
	cflags=$(sed -n 's/^CMAKE_C_FLAGS:[A-Z]*=//p' "$build/CMakeCache.txt")
	cat <<EOF
date=$(date -u '+%Y-%m-%d %H:%M UTC')
mode=$mode
runs=$RUNS
nproc=$(nproc)
cpu=$cpu
kernel=$(uname -r)
fs=$fs
commit=$commit$dirty
build=${btype:-default (RelWithDebInfo)}${cflags:+ $cflags}
load_start=$load_start
load_end=$(cut -d' ' -f1 /proc/loadavg)
duration=$(($(date +%s) - t_start))
sizes=$SIZES
accounts=$ACCOUNTS
n_live=$N_LIVE
n_remote=$N_REMOTE
remote_accounts=$REMOTE_ACCOUNTS
remote_runs=$REMOTE_RUNS
n_emit=$N_EMIT
w_emit=$W_EMIT
EOF
}
meta >"$WORK/meta.txt"
status=0
awk -f "$ROOT/bench/report.awk" "$WORK/meta.txt" "$RAW" >"$WORK/RESULTS.md" ||
	status=$?
if [ $status -ne 0 ] && [ $status -ne 4 ]; then
	echo "run.sh: report failed ($status)" >&2
	exit 1
fi
# status 4: some target missed.

# ---- profile the misses ----
# perf record -g on sluiced (threads, libraries, symbols) for the largest
# catch-up and for durable append with 16 clients x batch 1, plus a count
# of the daemon's fdatasync calls (group commit: commits per sync).
if [ "$mode" != smoke ] && { [ "$profile" = yes ] ||
	{ [ "$profile" = auto ] && [ "$mode" = full ] && [ $status -eq 4 ]; }; }; then
	need_pkg linux-perf
	say "profiling sluiced with perf: catch-up, durable append"
	{
		echo
		echo "## Profiles (\`perf record -g -F 999 -p <sluiced>\`)"
		echo
		echo "On-CPU samples only; on a VM without a PMU perf samples" \
			"with cpu-clock, which piles kernel time onto the points" \
			"where interrupts are re-enabled (finish_task_switch," \
			"_raw_spin_unlock_irqrestore). Libraries without symbols" \
			"show as addresses."
		echo
	} >>"$WORK/RESULTS.md"
	report_perf() { # title, perf.data
		{
			echo "### $1"
			echo
			echo '```'
			echo "# by thread"
			perf report -i "$2" --no-children --stdio --sort pid \
				-g none 2>/dev/null | grep -E '^ +[0-9.]+%' | head -12
			echo "# by library"
			perf report -i "$2" --no-children --stdio --sort dso \
				-g none 2>/dev/null | grep -E '^ +[0-9.]+%' | head -10
			echo "# by symbol (self)"
			perf report -i "$2" --no-children --stdio --sort dso,symbol \
				-g none --percent-limit 1 2>/dev/null |
				grep -E '^ +[0-9.]+%' | sed 's/ *- *- *$//' | head -30
			echo "# user-space functions including callees"
			perf report -i "$2" --children --stdio --sort dso,symbol \
				-g none --percent-limit 2 2>/dev/null |
				grep -E '^ +[0-9.]+% .*\[\.\] [a-z_]' |
				sed 's/ *- *- *$//' | head -30
			echo '```'
			echo
		} >>"$WORK/RESULTS.md"
	}
	prof() { # title, perf.data, bench_sluice args...
		title=$1 data=$2
		shift 2
		sync
		if "$BS" "$@" --perf "$data" >"$WORK/perf.out" 2>"$WORK/perf.err" &&
			[ -s "$data" ]; then
			report_perf "$title" "$data"
		else
			echo "perf record failed here ($(head -c 300 "$WORK/perf.err"));" \
				"use valgrind --tool=callgrind on a smaller run instead." \
				>>"$WORK/RESULTS.md"
		fi
	}
	last=$(echo "$SIZES" | awk '{ print $NF }')
	prof "catch-up of $last events" "$WORK/catchup.perf" catchup \
		--sluiced "$SLUICED" --dir "$CU" --plugin "$PLUGIN" --sync 1
	prof "append, durable, 16 clients, batch 1" "$WORK/append.perf" append \
		--sluiced "$SLUICED" --dir "$WORK" --sync 1 --clients 16 --batch 1 \
		--seconds 3
	if "$BS" append --sluiced "$SLUICED" --dir "$WORK" --sync 1 --clients 16 \
		--batch 1 --seconds 3 --perf-stat "$WORK/stat.txt" \
		>"$WORK/stat.out" 2>&1; then
		{
			echo "Group commit (durable, 16 clients, batch 1, counted with" \
				"\`perf stat -e syscalls:sys_enter_fdatasync\`; LMDB syncs" \
				"twice per write transaction):"
			echo
			echo '```'
			grep -E '^(eps|commits_per_s|fsyncs_per_s|commits_per_fsync|daemon_cpu|client_cpu)' \
				"$WORK/stat.out"
			echo '```'
			echo
		} >>"$WORK/RESULTS.md"
	fi
fi

cat "$WORK/RESULTS.md"
if [ -n "$out" ]; then
	# The sections written by hand below the marker line of an existing
	# file are history: the new report replaces only what is above it.
	marker='<!-- by hand:'
	if [ -f "$out" ] && grep -q "^$marker" "$out"; then
		echo >>"$WORK/RESULTS.md"
		sed -n "/^$marker/,\$p" "$out" >>"$WORK/RESULTS.md"
		say "kept the sections written by hand in $out"
	fi
	cp "$WORK/RESULTS.md" "$out"
	say "wrote $out"
fi
say "done"
if [ "$mode" = smoke ] && grep -q 'MISSING' "$WORK/RESULTS.md"; then
	echo "run.sh: some figures are missing" >&2
	exit 1
fi
exit 0
