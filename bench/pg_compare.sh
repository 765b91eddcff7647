#!/bin/sh
# Appends on the PostgreSQL backend against LMDB and against PostgreSQL's
# own limit (bench_pg), alternated in one run (issue 20, bench/RESULTS.md):
#   bench/pg_compare.sh BUILD_DIR [RUNS] [SECONDS]
# BUILD_DIR is a Release build (build-rel). A throwaway cluster
# (scripts/pg_cluster.sh) lives in a temp dir and is stopped at the end.
# Prints one line per measurement ("system clients batch eps") and then
# the medians and the ratios of each run. With OLD_SLUICED=PATH (another
# build's sluiced, e.g. main's) the backend is measured with it too, in
# the same rounds, and new/old is printed.
set -eu
build=${1:?usage: pg_compare.sh BUILD_DIR [RUNS] [SECONDS]}
runs=${2:-5}
secs=${3:-2}
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/bench/pg_tmp_cluster.sh"
eps() { awk '$1 == "eps" { print $2 }'; }
for r in $(seq 1 "$runs"); do
	for cb in "1 1" "1 100" "16 1" "16 100"; do
		set -- $cb
		raw=$("$build/bench/bench_pg" append --conninfo "$ci" \
			--clients "$1" --batch "$2" --seconds "$secs" | eps)
		lmdb=$("$build/bench/bench_sluice" append --sluiced "$build/sluiced" \
			--dir "$tmp/w" --clients "$1" --batch "$2" \
			--seconds "$secs" --sync 1 | eps)
		pg=$("$build/bench/bench_sluice" append --sluiced "$build/sluiced" \
			--dir "$tmp/w" --clients "$1" --batch "$2" \
			--seconds "$secs" --sync 1 --pg "$ci" | eps)
		old=0
		if [ -n "${OLD_SLUICED:-}" ]; then
			old=$("$build/bench/bench_sluice" append --sluiced "$OLD_SLUICED" \
				--dir "$tmp/w" --clients "$1" --batch "$2" \
				--seconds "$secs" --sync 1 --pg "$ci" | eps)
		fi
		echo "run $r clients $1 batch $2 raw $raw lmdb $lmdb pg $pg load $(cut -d' ' -f1 /proc/loadavg) old $old" | tee -a "$out"
	done
done
python3 - "$out" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
by = {}
for r in rows:
    by.setdefault((int(r[3]), int(r[5])), []).append(
        (float(r[7]), float(r[9]), float(r[11]), float(r[13]),
         float(r[15])))
print("clients batch | raw PG | LMDB | PG backend | PG backend/raw "
      "(per-run median) | PG backend/LMDB | load")
for k in sorted(by):
    v = by[k]
    med = lambda i: statistics.median(x[i] for x in v)
    print("%d %d | %.0f | %.0f | %.0f | %.2f | %.2f | %.1f-%.1f" % (
        k[0], k[1], med(0), med(1), med(2),
        statistics.median(x[2] / x[0] for x in v),
        statistics.median(x[2] / x[1] for x in v),
        min(x[3] for x in v), max(x[3] for x in v)))
    if all(x[4] > 0 for x in v):
        print("    old build %.0f | new/old (per-run median) %.2f" % (
            med(4), statistics.median(x[2] / x[4] for x in v)))
EOF
