#!/bin/sh
# The write path, old sluiced against new, with the limits of the same run
# (issue 17 item 1, bench/RESULTS.md):
#   bench/write_ab.sh BUILD_DIR OLD_SLUICED NEW_SLUICED [RUNS] [SECONDS] [CONFIGS]
# BUILD_DIR is a Release build with -DSLUICE_BENCH=ON (its bench programs
# and client library serve both daemons); CONFIGS is a list of
# "sync,clients,batch" (default: the 18 of bench/run.sh's append table).
# Each run measures raw LMDB (one durable transaction per event), NNG's
# req/rep echo (1, 4, 16 clients) and SQLite (WAL, FULL and NORMAL, batch
# 1/10/100), then every configuration with the old and the new daemon
# back to back, the order flipped every run. Single-event commits of 16
# clients also count the daemon's context switches, system calls and
# futex calls per commit (perf stat). Prints every measurement as
# "what key value" lines, then the medians, the per-run new/old ratios
# and the ratios to the limits of the same run.
set -eu
build=${1:?usage: write_ab.sh BUILD_DIR OLD NEW [RUNS] [SECONDS] [CONFIGS]}
old=${2:?old sluiced}
new=${3:?new sluiced}
runs=${4:-5}
secs=${5:-2}
configs=${6:-"1,1,1 1,1,10 1,1,100 1,4,1 1,4,10 1,4,100 1,16,1 1,16,10 1,16,100 0,1,1 0,1,10 0,1,100 0,4,1 0,4,10 0,4,100 0,16,1 0,16,10 0,16,100"}
B=$build/bench
tmp=$(mktemp -d /tmp/sluice-writeab-XXXXXX)
trap 'rm -rf "$tmp"' EXIT INT TERM
out=$tmp/lines
: >"$out"
# "what" + the program's "key value" lines
rec() {
	what=$1
	shift
	"$@" 2>/dev/null | awk -v w="$what" 'NF == 2 { print w, $1, $2 }' \
	    | tee -a "$out"
}
for r in $(seq 1 "$runs"); do
	echo "# run $r/$runs, load $(cut -d' ' -f1 /proc/loadavg)" >&2
	rec "r$r lmdb.t1" "$B/bench_lmdb" append --dir "$tmp/lmdb" --txn 1 \
	    --sync 1 --seconds "$secs"
	for c in 1 4 16; do
		rec "r$r nng.c$c" "$B/bench_nng" run --dir "$tmp/nng" \
		    --clients $c --seconds "$secs"
	done
	for s in FULL NORMAL; do
		for b in 1 10 100; do
			rm -f "$tmp/sq.db"*
			rec "r$r sqlite.$s.b$b" "$B/bench_sqlite" append \
			    --db "$tmp/sq.db" --sync $s --batch $b \
			    --seconds "$secs"
		done
	done
	if [ $((r % 2)) = 1 ]; then order="old new"; else order="new old"; fi
	for cfg in $configs; do
		IFS=, read -r s c b <<EOF
$cfg
EOF
		for who in $order; do
			if [ "$who" = old ]; then bin=$old; else bin=$new; fi
			stat=""
			if [ "$c" = 16 ] && [ "$b" = 1 ]; then
				stat="--perf-stat $tmp/stat.txt"
			fi
			# shellcheck disable=SC2086
			rec "r$r $who.s$s.c$c.b$b" "$B/bench_sluice" append \
			    --sluiced "$bin" --dir "$tmp/w" --sync "$s" \
			    --clients "$c" --batch "$b" --seconds "$secs" $stat
		done
	done
done >/dev/null
echo "# medians over $runs runs (per-run ratios: medians of each run's own)"
awk '
function med(list,   n, a, i, j, t) {
	n = split(list, a, " ")
	for (i = 2; i <= n; i++)
		for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) {
			t = a[j]; a[j] = a[j - 1]; a[j - 1] = t
		}
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function add(k, v) { vals[k] = (k in vals) ? vals[k] " " v : v }
{
	run = $1; split($2, w, "."); what = $2; key = $3; v = $4
	sub(/^(old|new)\./, "", what)
	if ($2 ~ /^(old|new)\./) {
		who = w[1]
		if (key == "eps" || key == "commits_per_s" || key ~ /^daemon_cpu/ \
		    || key ~ /^client_cpu/ || key ~ /^per_commit_/ \
		    || key == "commits_per_fsync" || key == "p50_us")
			add(who "|" what "|" key, v)
		x[run "|" who "|" what "|" key] = v
		cfgs[what] = 1
	} else {
		add($2 "|" key, v)
		x[run "|" $2 "|" key] = v
	}
	runs[run] = 1
}
END {
	n = 0
	for (c in cfgs) {
		cs[++n] = c
		for (j = n; j > 1 && cs[j - 1] > cs[j]; j--) {
			t = cs[j]; cs[j] = cs[j - 1]; cs[j - 1] = t
		}
	}
	printf "%-12s %10s %10s %7s %14s %16s %9s %9s %9s %9s\n", "config", \
	    "old eps", "new eps", "new/old", "dcpu old>new", "cs/sys/futex o>n", \
	    "xLMDB1", "of echo", "xSQLite", "old xSQL"
	for (i = 1; i <= n; i++) {
		c = cs[i]
		split(c, p, "."); s = substr(p[1], 2); cl = substr(p[2], 2)
		b = substr(p[3], 2)
		rl = ""; rn = ""; rq = ""; rqo = ""; rr = ""
		for (r in runs) {
			o = x[r "|old|" c "|eps"]; nw = x[r "|new|" c "|eps"]
			if (o > 0) rr = rr " " nw / o
			l = x[r "|lmdb.t1|eps"]
			if (l > 0) rl = rl " " nw / l
			e = x[r "|nng.c" cl "|rtps"]
			if (e > 0) rn = rn " " (nw / b) / e
			q = x[r "|sqlite." (s == 1 ? "FULL" : "NORMAL") ".b" b "|eps"]
			if (q > 0) { rq = rq " " nw / q; rqo = rqo " " o / q }
		}
		cso = vals["old|" c "|per_commit_context_switches"]
		csn = vals["new|" c "|per_commit_context_switches"]
		cnt = "-"
		if (cso != "")
			cnt = sprintf("%.1f/%.1f/%.1f>%.1f/%.1f/%.1f", med(cso), \
			    med(vals["old|" c "|per_commit_raw_syscalls_sys_enter"]), \
			    med(vals["old|" c "|per_commit_syscalls_sys_enter_futex"]), \
			    med(csn), \
			    med(vals["new|" c "|per_commit_raw_syscalls_sys_enter"]), \
			    med(vals["new|" c "|per_commit_syscalls_sys_enter_futex"]))
		printf "%-12s %10.0f %10.0f %7.2f %6.1f>%-6.1f %16s %9s %9s %9.2f %9.2f\n", \
		    c, med(vals["old|" c "|eps"]), med(vals["new|" c "|eps"]), \
		    med(substr(rr, 2)), med(vals["old|" c "|daemon_cpu_us_per_commit"]), \
		    med(vals["new|" c "|daemon_cpu_us_per_commit"]), cnt, \
		    (s == 1 && b == 1 ? sprintf("%.2f", med(substr(rl, 2))) : "-"), \
		    (b == 1 ? sprintf("%.0f%%", 100 * med(substr(rn, 2))) : "-"), \
		    med(substr(rq, 2)), med(substr(rqo, 2))
	}
	printf "limits: LMDB 1/txn %.0f events/s; NNG echo c1/c4/c16 %.0f/%.0f/%.0f rt/s; SQLite FULL b1/b10/b100 %.0f/%.0f/%.0f, NORMAL %.0f/%.0f/%.0f events/s\n", \
	    med(vals["lmdb.t1|eps"]), med(vals["nng.c1|rtps"]), \
	    med(vals["nng.c4|rtps"]), med(vals["nng.c16|rtps"]), \
	    med(vals["sqlite.FULL.b1|eps"]), med(vals["sqlite.FULL.b10|eps"]), \
	    med(vals["sqlite.FULL.b100|eps"]), med(vals["sqlite.NORMAL.b1|eps"]), \
	    med(vals["sqlite.NORMAL.b10|eps"]), med(vals["sqlite.NORMAL.b100|eps"])
}' "$out"
echo "# load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
