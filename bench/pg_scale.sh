#!/bin/sh
# Catch-up and read scaling on the PostgreSQL log (issue 20,
# bench/RESULTS.md), each alternated with its baseline in one run:
#   bench/pg_scale.sh BUILD_DIR [RUNS] [EVENTS] [QUERY_SECONDS]
# BUILD_DIR is a Release build (build-rel). One throwaway cluster
# (scripts/pg_cluster.sh) in a temp dir, stopped at the end.
#   catch-up: a fresh node on the PostgreSQL log (mirroring it into LMDB
#             and folding Account Details) vs folding the same log on LMDB
#             (bench_sluice catchup, sync on), EVENTS events, 10,000
#             accounts
#   reads:    get_one round trips, 6 client processes spread over 1, 2
#             and 3 nodes on that database (bench_sluice query --nodes K)
# Prints one line per run and then the medians and per-run ratios.
set -eu
build=${1:?usage: pg_scale.sh BUILD_DIR [RUNS] [EVENTS] [QUERY_SECONDS]}
runs=${2:-5}
events=${3:-500000}
qsecs=${4:-3}
here=$(cd "$(dirname "$0")/.." && pwd)
bs=$build/bench/bench_sluice
plugin=$build/plugins/account_details.so
. "$here/bench/pg_tmp_cluster.sh"
val() { awk -v k="$1" '$1 == k { print $2 }'; }
load() { cut -d' ' -f1 /proc/loadavg; }

echo "loading $events events into LMDB and into PostgreSQL" >&2
"$bs" load --sluiced "$build/sluiced" --dir "$tmp/lmdb" --accounts 10000 \
	--events "$events" --load-procs 4 >/dev/null
# Loading is not measured: PostgreSQL without waiting for its WAL flush
# (a role setting, reset before the runs), so that it takes minutes not
# hours on this machine; the log's contents are the same.
psql -q -X "$ci" -c "ALTER ROLE postgres SET synchronous_commit = off"
"$bs" load --sluiced "$build/sluiced" --dir "$tmp/pgload" --accounts 10000 \
	--events "$events" --load-procs 4 --pg "$ci" >/dev/null
psql -q -X "$ci" -c "ALTER ROLE postgres RESET synchronous_commit"
rm -rf "$tmp/pgload"
for r in $(seq 1 "$runs"); do
	lmdb=$("$bs" catchup --sluiced "$build/sluiced" --dir "$tmp/lmdb" \
		--plugin "$plugin" --sync 1 | val eps)
	pg=$("$bs" catchup --sluiced "$build/sluiced" --dir "$tmp/pgnode" \
		--plugin "$plugin" --sync 1 --pg "$ci" --events "$events" | val eps)
	echo "catchup run $r lmdb $lmdb pg $pg load $(load)" | tee -a "$out"
done
for r in $(seq 1 "$runs"); do
	line="reads run $r"
	for k in 1 2 3; do
		rt=$("$bs" query --sluiced "$build/sluiced" --dir "$tmp/q" \
			--plugin "$plugin" --pg "$ci" --events "$events" \
			--nodes "$k" --clients 6 --seconds "$qsecs" | val rtps)
		line="$line n$k $rt"
	done
	echo "$line load $(load)" | tee -a "$out"
done
python3 - "$out" <<'PY'
import statistics as st, sys
rows = [l.split() for l in open(sys.argv[1])]
cu = [r for r in rows if r[0] == "catchup"]
rd = [r for r in rows if r[0] == "reads"]
m = lambda v: st.median(v)
if cu:
    l = [float(r[4]) for r in cu]; p = [float(r[6]) for r in cu]
    print("catch-up eps: LMDB %.0f | PostgreSQL node %.0f | PG/LMDB "
          "(per-run median) %.2f | load %.1f-%.1f" % (m(l), m(p),
          m([b / a for a, b in zip(l, p)]),
          min(float(r[8]) for r in cu), max(float(r[8]) for r in cu)))
if rd:
    n = {k: [float(r[4 + 2 * (k - 1)]) for r in rd] for k in (1, 2, 3)}
    print("get_one rtps, 6 clients: 1 node %.0f | 2 nodes %.0f | 3 nodes "
          "%.0f | 2/1 %.2f | 3/1 %.2f | load %.1f-%.1f" % (m(n[1]), m(n[2]),
          m(n[3]), m([b / a for a, b in zip(n[1], n[2])]),
          m([c / a for a, c in zip(n[1], n[3])]),
          min(float(r[-1]) for r in rd), max(float(r[-1]) for r in rd)))
PY
