#!/bin/sh
# Old against new, alternated, on one machine in one session: the
# emitting projections' catch-up (bench_emit catchup: account_details,
# the five system projections, bench_emitter) with each build's own
# sluiced, plugins and bench_emit, RUNS times each, old first, for each
# sync setting given; then the medians of each figure per build.
#
#   bench/ab_emit.sh OLD_BUILD NEW_BUILD LOG_DIR [RUNS] [SYNCS]
#
# LOG_DIR holds a log grown by `bench_sluice load` (copied for each run,
# never written). RUNS defaults to 5, SYNCS to "1 0". Raw lines go to
# ab_emit.raw in the current directory ("build sync run key value").
set -eu
old=$1 new=$2 log=$3 runs=${4:-5} syncs=${5:-"1 0"}
raw=ab_emit.raw
: >"$raw"
echo "ab_emit: $(date -u +%Y-%m-%dT%H:%MZ), nproc $(nproc)," \
	"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')," \
	"load $(cut -d' ' -f1-3 /proc/loadavg)"
for s in $syncs; do
	r=1
	while [ "$r" -le "$runs" ]; do
		for b in old new; do
			eval dir=\$$b
			"$dir/bench/bench_emit" catchup --sluiced "$dir/sluiced" \
				--dir "$log" --plugin "$dir/plugins/account_details.so" \
				--emitter "$dir/bench/plugins/bench_emitter.so" \
				--sync "$s" 2>/dev/null |
				sed "s/^/$b $s $r /" >>"$raw"
		done
		r=$((r + 1))
	done
done
echo "ab_emit: load at the end $(cut -d' ' -f1-3 /proc/loadavg)"
# medians per build, sync and key
awk '{ k = $1 " sync=" $2 " " $4; v[k, ++n[k]] = $5 }
END {
	for (k in n) {
		m = n[k]
		for (i = 1; i <= m; i++) a[i] = v[k, i]
		for (i = 2; i <= m; i++) {
			t = a[i]
			for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]
			a[j + 1] = t
		}
		med = m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
		printf "%s median %g (min %g, max %g, n %d)\n", k, med, a[1], a[m], m
	}
}' "$raw" | sort
