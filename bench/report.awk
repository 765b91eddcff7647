# Turns the benchmark's "key value" lines (one per run and figure) into
# bench/RESULTS.md: medians with min and max, ratios to the limits and to
# SQLite, and the issue's targets with met / missed.
# Input: meta.txt (key=value lines), then raw.txt. Exit 4 if a target is
# missed; a figure that is missing prints MISSING (run.sh --smoke fails).
# POSIX awk (mawk): no gensub, no asort.

FNR == NR {
	i = index($0, "=")
	if (i > 0)
		meta[substr($0, 1, i - 1)] = substr($0, i + 1)
	next
}
NF == 2 {
	n[$1]++
	val[$1, n[$1]] = $2 + 0
}

function has(k) { return (k in n) }

function med(k,    m, i, j, t, a) {
	if (!(k in n)) {
		missing[k] = 1
		return ""
	}
	m = n[k]
	for (i = 1; i <= m; i++)
		a[i] = val[k, i]
	for (i = 2; i <= m; i++) {
		t = a[i]
		for (j = i - 1; j >= 1 && a[j] > t; j--)
			a[j + 1] = a[j]
		a[j + 1] = t
	}
	lo[k] = a[1]
	hi[k] = a[m]
	if (m % 2)
		return a[(m + 1) / 2]
	return (a[m / 2] + a[m / 2 + 1]) / 2
}

# 1234567 -> 1,234,567; small values keep 3 significant digits.
function num(v,    s, neg, out) {
	if (v == "")
		return "MISSING"
	if (v < 0) {
		neg = "-"
		v = -v
	}
	if (v < 10)
		return neg sprintf("%.2f", v)
	if (v < 100)
		return neg sprintf("%.1f", v)
	s = sprintf("%.0f", v)
	out = ""
	while (length(s) > 3) {
		out = "," substr(s, length(s) - 2) out
		s = substr(s, 1, length(s) - 3)
	}
	return neg s out
}

# "median (min–max)" for several runs, the median alone for one.
function cell(k,    m) {
	m = med(k)
	if (m == "")
		return "MISSING"
	if (n[k] < 2)
		return num(m)
	return num(m) " (" num(lo[k]) "–" num(hi[k]) ")"
}

# A ratio, "median× (min–max)" over the runs: 3 significant digits, as
# remote/plugin ratios can be far below 1.
function rcell(k,    m) {
	m = med(k)
	if (m == "")
		return "MISSING"
	if (n[k] < 2)
		return sprintf("%.3g×", m)
	return sprintf("%.3g× (%.3g–%.3g)", m, lo[k], hi[k])
}

function pct(a, b) {
	if (a == "" || b == "" || b == 0)
		return "MISSING"
	return sprintf("%.0f %%", 100 * a / b)
}

function times(a, b) {
	if (a == "" || b == "" || b == 0)
		return "MISSING"
	return sprintf("%.2f×", a / b)
}

# One more way of get_all (query.c1.get_all_<way>_ms) against the
# transport limit of the same pages.
function get_all_way(way, what, pages,    g) {
	g = med("query.c1.get_all_" way "_ms")
	if (g != "")
		printf "With %s: **%s ms** (Sluice takes %s).\n\n", what,
		    cell("query.c1.get_all_" way "_ms"),
		    times(g, pages * med("raw.nng.page.p50_us") / 1000)
}

# A target row: met when ok (1/0); value and requirement as text.
function target(name, value, need, ok) {
	if (value ~ /MISSING/ || need ~ /MISSING/) {
		ok = 0
		value = value " (MISSING)"
	}
	printf "| %s | %s | %s | **%s** |\n", name, value, need, ok ? "met" : "missed"
	if (!ok)
		n_missed++
}

END {
	split(meta["sizes"], size, " ")
	syncname["sync"] = "true"
	syncname["nosync"] = "false"
	sqlsync["sync"] = "full"
	sqlsync["nosync"] = "normal"

	print "# Sluice benchmark results"
	print ""
	printf "- **Date:** %s; **mode:** %s, each figure the median of %s run(s) " \
	    "with (min–max)\n", meta["date"], meta["mode"], meta["runs"]
	printf "- **Machine:** %s cores (`nproc`), %s, Linux %s\n", meta["nproc"],
	    meta["cpu"], meta["kernel"]
	printf "- **Filesystem** of the data (`df -T`): %s\n", meta["fs"]
	printf "- **Build:** %s, commit %s\n", meta["build"], meta["commit"]
	printf "- **Load average** (1 min) at start %s, at end %s; the run took " \
	    "%d min %d s\n", meta["load_start"], meta["load_end"],
	    meta["duration"] / 60, meta["duration"] % 60
	print "- Command: `bench/run.sh" (meta["mode"] == "full" ? "" : " --" meta["mode"]) "`." \
	    " Everything runs on generated data in a temporary directory;" \
	    " Sluice figures go through `sluiced` as a process and" \
	    " `libsluice_client` (client *processes* where there are several" \
	    " clients); the limits and the baseline are separate C programs in" \
	    " `bench/`."
	print ""

	# ---- limits ----
	print "## The limits (raw programs, same run)"
	print ""
	print "| limit | median (min–max) | unit |"
	print "|---|---|---|"
	for (s = 1; s >= 0; s--) {
		sk = s ? "sync" : "nosync"
		for (t = 1; t <= 1000; t *= 10)
			printf "| LMDB `MDB_APPEND` of the encoded events, %d per txn, %s | %s | events/s |\n",
			    t, s ? "durable" : "`MDB_NOSYNC`", cell("raw.lmdb." sk ".t" t ".eps")
	}
	printf "| LMDB, 1 event per durable txn: commit p50 | %s | µs |\n",
	    cell("raw.lmdb.sync.t1.txn_p50_us")
	printf "| encoded event record | %s | bytes |\n", cell("raw.lmdb.sync.t1.record_bytes")
	for (i = 1; i <= 3; i++)
		printf "| LMDB cursor scan + `ev_decode` + fold into a hash map, %s events | %s | events/s |\n",
		    num(size[i]), cell("raw.scanfold." i ".eps")
	for (c = 1; c <= 16; c *= 4) {
		printf "| NNG req/rep echo over ipc://, %d client process%s: round trips | %s | per s |\n",
		    c, (c > 1 ? "es" : ""), cell("raw.nng.c" c ".rtps")
		printf "| ... p50 / p99 | %s / %s | µs |\n", cell("raw.nng.c" c ".p50_us"),
		    cell("raw.nng.c" c ".p99_us")
		printf "| ... CPU per round trip: echo server / clients | %s / %s | µs |\n",
		    num(med("raw.nng.c" c ".server_cpu_us_per_rt")),
		    num(med("raw.nng.c" c ".client_cpu_us_per_rt"))
	}
	printf "| NNG req/rep echo, 1 / 4 clients, measured beside the queries: p50 | %s / %s | µs |\n",
	    cell("raw.nng.qc1.p50_us"), cell("raw.nng.qc4.p50_us")
	printf "| NNG req/rep, 1 client, reply of one get_all page (%s bytes): p50 | %s | µs |\n",
	    num(med("query.c1.get_all_page_bytes")), cell("raw.nng.page.p50_us")
	print ""

	# ---- append ----
	print "## Append"
	print ""
	print "Client processes commit batches of ~300-byte events (content " \
	    "msgpack ~300 bytes, stored record " num(med("raw.lmdb.sync.t1.record_bytes")) \
	    " bytes) to 64 streams each, expected revision `any`, no projection " \
	    "loaded. Each client prepares its contents as msgpack before the " \
	    "clock, as the SQLite baseline gets them, and commits them with " \
	    "`sl_client_commit_mp` (a JSON commit, `sl_client_commit`, costs " \
	    "the client ~3.7 µs more per event: bench/RESULTS.md, \"The binary " \
	    "commit\"). SQLite: one writer, WAL, `synchronous=FULL` (durable) or " \
	    "`NORMAL`, the same events with a stream index and stream heads, " \
	    "one transaction per batch. CPU µs/commit: user + system time of " \
	    "sluiced (all threads, from `/proc`) and of all client processes, " \
	    "per commit; with " meta["nproc"] " cores their sum bounds the " \
	    "commit rate."
	print ""
	print "| sync | clients | batch | events/s | commit p50 µs | p99 µs | of LMDB 1000/txn | × LMDB 1 txn per commit | commits/s of NNG echo | × SQLite | CPU µs/commit sluiced / clients |"
	print "|---|---|---|---|---|---|---|---|---|---|---|"
	for (s = 1; s >= 0; s--) {
		sk = s ? "sync" : "nosync"
		for (c = 1; c <= 16; c *= 4)
			for (b = 1; b <= 100; b *= 10) {
				k = "append." sk ".c" c ".b" b
				e = med(k ".eps")
				printf "| %s | %d | %d | %s | %s | %s | %s | %s | %s | %s | %s / %s |\n",
				    syncname[sk], c, b, cell(k ".eps"), num(med(k ".p50_us")),
				    num(med(k ".p99_us")),
				    pct(e, med("raw.lmdb." sk ".t1000.eps")),
				    times(e, med("raw.lmdb." sk ".t" b ".eps")),
				    pct(med(k ".commits_per_s"), med("raw.nng.c" c ".rtps")),
				    times(e, med("sqlite.append." sqlsync[sk] ".b" b ".eps")),
				    num(med(k ".daemon_cpu_us_per_commit")),
				    num(med(k ".client_cpu_us_per_commit"))
			}
	}
	print ""
	print "| SQLite baseline | batch | events/s | commit p50 µs | p99 µs |"
	print "|---|---|---|---|---|"
	for (s = 1; s >= 0; s--) {
		q = s ? "full" : "normal"
		for (b = 1; b <= 100; b *= 10) {
			k = "sqlite.append." q ".b" b
			printf "| WAL, synchronous=%s | %d | %s | %s | %s |\n", toupper(q), b,
			    cell(k ".eps"), num(med(k ".p50_us")), num(med(k ".p99_us"))
		}
	}
	print ""

	# ---- catch-up ----
	print "## Projection catch-up"
	print ""
	print "The Account Details workload (" num(meta["accounts"]) " accounts: each " \
	    "opened and its customer registered, then debits and withdrawals " \
	    "in commits of 10 to the account's stream) is committed with no " \
	    "plugin loaded; then sluiced is stopped, `account_details.so` put " \
	    "in its plugin directory, the read model store removed, and the " \
	    "time measured from starting sluiced until `status` shows the " \
	    "processor at the head (`sync: true`, default `processing.batch`). " \
	    "Memory is sampled from `/proc/<pid>` of sluiced during the " \
	    "catch-up: peak RSS is `VmHWM` (it includes LMDB's mapped pages), " \
	    "private memory the `Anonymous` total of `smaps_rollup`. The " \
	    "limit folds into a C hash map; SQLite: the same events, a C " \
	    "projector upserting one row per account, checkpoint in the same " \
	    "transaction, 1,000 events per transaction, `synchronous=FULL`. " \
	    "sluiced CPU %: its CPU time over the catch-up's wall time " \
	    "(100 % = one core)."
	print ""
	print "| events | catch-up s | events/s | of raw scan+decode+fold | × SQLite projector | time per event vs " num(size[1]) " | sluiced CPU % | peak RSS MiB | private MiB | log bytes/event | bytes/read model | read models |"
	print "|---|---|---|---|---|---|---|---|---|---|---|---|"
	for (i = 1; i <= 3; i++) {
		k = "catchup." i
		e = med(k ".eps")
		printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
		    num(size[i]), cell(k ".seconds"), cell(k ".eps"),
		    pct(e, med("raw.scanfold." i ".eps")),
		    times(e, med("sqlite.catchup." i ".eps")),
		    times(med(k ".seconds") / size[i], med("catchup.1.seconds") / size[1]),
		    num(med(k ".cpu_pct")), cell(k ".rss_mib"), cell(k ".anon_mib"),
		    num(med(k ".log_bytes_per_event")), num(med(k ".rm_bytes_per_model")),
		    num(med(k ".models"))
	}
	print ""
	print "| SQLite baseline | events/s | database bytes/event |"
	print "|---|---|---|"
	for (i = 1; i <= 3; i++)
		printf "| projector, %s events | %s | %s |\n", num(size[i]),
		    cell("sqlite.catchup." i ".eps"), num(med("sqlite.catchup." i ".bytes_per_event"))
	print ""

	# ---- commit to read model ----
	rtt = med("raw.nng.qc1.p50_us")
	print "## Commit to read model (`sync: false`)"
	print ""
	print "A probe commits one `DebitPerformed` of 1 to one of ten accounts of " \
	    "its own at 1,000 events/s and, after the acknowledgement, calls " \
	    "`get_one` until the balance shows it (each commit makes a balance " \
	    "no earlier state had). Saturated: four more client processes " \
	    "commit batches of 10 as fast as the daemon takes them. The limit " \
	    "is one raw NNG round trip (p50, 1 client, measured beside the " \
	    "queries): a `get_one` has to " \
	    "make at least one."
	print ""
	print "| load | p50 µs | p99 µs | p50 × NNG round trip | probes/s | get_one calls per probe | background events/s |"
	print "|---|---|---|---|---|---|---|"
	printf "| steady 1,000 events/s | %s | %s | %s | %s | %s | — |\n",
	    cell("c2rm.steady.p50_us"), cell("c2rm.steady.p99_us"),
	    times(med("c2rm.steady.p50_us"), rtt), num(med("c2rm.steady.probe_rate")),
	    num(med("c2rm.steady.polls_per_probe"))
	printf "| saturated (4 committers) | %s | %s | %s | %s | %s | %s |\n",
	    cell("c2rm.sat.p50_us"), cell("c2rm.sat.p99_us"),
	    times(med("c2rm.sat.p50_us"), rtt), num(med("c2rm.sat.probe_rate")),
	    num(med("c2rm.sat.polls_per_probe")), cell("c2rm.sat.load_eps")
	if (has("c2rm.neighbour.p99_us"))
		printf "| steady, beside a 20 ms/event neighbour projection | %s | %s | %s | %s | %s | — |\n",
		    cell("c2rm.neighbour.p50_us"), cell("c2rm.neighbour.p99_us"),
		    times(med("c2rm.neighbour.p50_us"), rtt),
		    num(med("c2rm.neighbour.probe_rate")),
		    num(med("c2rm.neighbour.polls_per_probe"))
	print ""
	if (has("c2rm.neighbour.p99_us")) {
		print "Isolation: beside a neighbour projection of the same tenant " \
		    "that takes 20 ms per event (`slow_neighbour`, selecting the " \
		    "probes' `DebitPerformed`), account_details' p99 is " \
		    times(med("c2rm.neighbour.p99_us"), med("c2rm.steady.p99_us")) \
		    " its p99 alone (target: at most 2×), and `pause` of the busy " \
		    "neighbour is answered in " cell("c2rm.neighbour.pause_ms") \
		    " ms (target: under 100 ms)."
		print ""
	}

	# ---- queries ----
	print "## Queries"
	print ""
	print "`get_one` of random accounts among the " num(med("query.c1.get_all_models")) \
	    " read models of the last catch-up, from client processes; `get_all` " \
	    "pages through all of them (1,000 per page; best of 5 passes)."
	print ""
	print "| query | round trips/s | p50 µs | p99 µs | round trips of NNG echo (same clients, measured beside) | p50 × NNG |"
	print "|---|---|---|---|---|---|"
	for (c = 1; c <= 4; c *= 4) {
		k = "query.c" c
		printf "| get_one, %d client%s | %s | %s | %s | %s | %s |\n", c,
		    (c > 1 ? "s" : ""), cell(k ".rtps"), cell(k ".p50_us"),
		    cell(k ".p99_us"), pct(med(k ".rtps"), med("raw.nng.qc" c ".rtps")),
		    times(med(k ".p50_us"), med("raw.nng.qc" c ".p50_us"))
	}
	pages = int((med("query.c1.get_all_models") + 999) / 1000)
	ga = med("query.c1.get_all_ms")
	printf "\n`get_all` of %s read models: **%s ms** (%s read models/s); the " \
	    "transport limit, %d round trips with replies of one page, is %s ms " \
	    "(Sluice takes %s).\n\n", num(med("query.c1.get_all_models")),
	    cell("query.c1.get_all_ms"), num(ga != "" && ga > 0 ? med("query.c1.get_all_models") * 1000 / ga : ""),
	    pages, num(pages * med("raw.nng.page.p50_us") / 1000),
	    times(ga, pages * med("raw.nng.page.p50_us") / 1000)
	get_all_way("mp", "`sl_client_get_all_mp` (states as msgpack, no " \
	    "JSON on the client)", pages)
	get_all_way("view", "`sl_client_get_all_view` (keys and states as " \
	    "pointers into the reply)", pages)

	# ---- live feed ----
	print "## Live feed"
	print ""
	print "Subscriber processes follow the whole log from position 0 " \
	    "(`sl_client_subscribe`: reads, then the NNG pub feed, gaps filled " \
	    "by reading; each checks every position arrives once, in order) " \
	    "while four appender processes commit " num(meta["n_live"]) " events " \
	    "of ~300 bytes in batches of 100 (`sync: false`). events/s: from " \
	    "the appenders' start to the last event at the slowest subscriber. " \
	    "The limit is the commit rate of the same run: a feed cannot " \
	    "deliver faster than events are committed."
	print ""
	print "| subscribers | events/s to each (slowest) | all subscribers together | committed events/s (same run) | of the commit rate | from the live feed | gap fills per subscriber |"
	print "|---|---|---|---|---|---|---|"
	for (c = 1; c <= 4; c *= 4) {
		k = "live.c" c
		printf "| %d | %s | %s | %s | %s | %s | %s |\n", c, cell(k ".eps"),
		    num(med(k ".total_eps")), cell(k ".append_eps"),
		    pct(med(k ".eps"), med(k ".append_eps")),
		    (med(k ".live_pct") == "" ? "MISSING" : sprintf("%.0f %%", med(k ".live_pct"))),
		    num(med(k ".gap_fills"))
	}
	print ""

	# ---- remote catch-up ----
	print "## Remote catch-up"
	print ""
	print "The Account Details workload with " num(meta["n_remote"]) " events (" \
	    num(meta["remote_accounts"]) " accounts) is committed with no " \
	    "projection; then each run times, back to back on that log, the " \
	    "catch-up from position 0 into an empty read model store (from " \
	    "starting sluiced until `status` shows the processor at the head, " \
	    "`sync: true`) of the `account_details.so` plugin, and of the same " \
	    "projection run by a client process, the `remote_account_details` " \
	    "example (C client library `include/sluice/remote.h`, calls over " \
	    "`ipc://`, docs/remote.md), speaking protocol 1 (an event per " \
	    "call) with `remote.window: 1` and with the default window, and " \
	    "protocol 2 (runs of up to `remote.batch` events per call) with " \
	    "the defaults. × plugin: the remote events/s over the plugin's " \
	    "in the same run, median of " meta["remote_runs"] " run(s). CPU: " \
	    "user + system time of sluiced (from its start) and of the client " \
	    "process, per event. In flight: the most calls `status` showed in " \
	    "flight while sampling every 2 ms (median over runs). Under " \
	    "protocol 1 each remote event is one call, a req/rep " \
	    "round trip: compare µs/event with the raw NNG echo above (1 " \
	    "client, p50 " num(med("raw.nng.c1.p50_us")) " µs)."
	print ""
	print "| handler | events/s | × plugin (same run) | µs/event | sluiced CPU µs/event | client CPU µs/event | in flight |"
	print "|---|---|---|---|---|---|---|"
	e = med("remote.plugin.eps")
	printf "| plugin, in process | %s | 1× | %s | %s | — | — |\n", cell("remote.plugin.eps"),
	    num(e != "" && e > 0 ? 1e6 / e : ""), num(med("remote.plugin.daemon_cpu_us_per_event"))
	for (w = 1; w <= 3; w++) {
		k = w == 1 ? "remote.w1" : w == 2 ? "remote.wdef" : "remote.b"
		e = med(k ".eps")
		printf "| remote, %s | %s | %s | %s | %s | %s | %s |\n",
		    (w == 1 ? "protocol 1, window 1" : w == 2 ? "protocol 1, window " (med(k ".window") == "" ? "MISSING" : sprintf("%d", med(k ".window"))) " (default)" : "protocol 2, window " (med(k ".window") == "" ? "MISSING" : sprintf("%d", med(k ".window"))) ", batch " (med(k ".batch") == "" ? "MISSING" : sprintf("%d", med(k ".batch"))) " (defaults)"), cell(k ".eps"),
		    rcell(k ".ratio"), num(e != "" && e > 0 ? 1e6 / e : ""),
		    num(med(k ".daemon_cpu_us_per_event")),
		    num(med(k ".client_cpu_us_per_event")),
		    (med(k ".in_flight_max") == "" ? "MISSING" : sprintf("%d", med(k ".in_flight_max")))
	}
	e = med("remote.h.eps")
	printf "| plugin host (`isolation: process`, sluice-host), protocol 2 defaults | %s | %s | %s | %s | %s (the host) | — |\n",
	    cell("remote.h.eps"), rcell("remote.h.ratio"),
	    num(e != "" && e > 0 ? 1e6 / e : ""),
	    num(med("remote.h.daemon_cpu_us_per_event")),
	    num(med("remote.h.client_cpu_us_per_event"))
	print ""

	# ---- emitting projections (issue 8) ----
	print "## Emitting projections (issue 8)"
	print ""
	print "The Account Details workload with " num(meta["n_emit"]) " events (" \
	    num(meta["accounts"]) " accounts) is committed with no projection. " \
	    "Each run, on a fresh copy of that log (nothing a projection wrote " \
	    "is kept), times back to back the catch-up from position 0 of: the " \
	    "read-model projection `account_details.so` (until `status` shows " \
	    "its processor at the head); the five system projections " \
	    "(`start_standard_projections: true`, no plugin; until all five " \
	    "`emitting_projections` entries show `position` past the log's " \
	    "last event); the emitting plugin `bench_emitter` (bench/" \
	    "bench_emitter.c: links each event of the four types into " \
	    "`bench-all`, emits a `Summary` to `bench-summary` for one event " \
	    "in ten). Each is timed from starting sluiced, `sync: true`, " \
	    "default settings (`checkpoint_handled_threshold` 4000, " \
	    "`max_write_batch_length` 500). Written/s: links and emitted events " \
	    "(status `emitted`, checked against the head's growth). × " \
	    "account_details: events/s over account_details' in the same run " \
	    "(median of the per-run ratios); of raw: over the median of the raw " \
	    "scan+decode+fold of the same log taken in the same runs " \
	    "(" num(med("emit.raw.eps")) " events/s). CPU: user + system time " \
	    "of sluiced from its start, over the wall time and per event of " \
	    "the log."
	print ""
	print "| projection | catch-up s | events/s | written/s | written | × account_details (same run) | of raw scan+decode+fold | sluiced CPU % | sluiced CPU µs/event |"
	print "|---|---|---|---|---|---|---|---|---|"
	lim = med("emit.raw.eps")
	printf "| account_details (read model, baseline) | %s | %s | — | — | 1× | %s | %s | %s |\n",
	    cell("emit.ad.seconds"), cell("emit.ad.eps"),
	    pct(med("emit.ad.eps"), lim), num(med("emit.ad.cpu_pct")),
	    num(med("emit.ad.cpu_us_per_event"))
	for (w = 1; w <= 2; w++) {
		k = w == 1 ? "emit.sys" : "emit.em"
		printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
		    (w == 1 ? "the five system projections together" : "bench_emitter (link each, emit 1 in 10)"),
		    cell(k ".seconds"), cell(k ".eps"), cell(k ".emitted_per_s"),
		    num(med(k ".emitted")), rcell(k ".ratio"), pct(med(k ".eps"), lim),
		    num(med(k ".cpu_pct")), num(med(k ".cpu_us_per_event"))
	}
	print ""
	print "Append with the ownership check (1 client, `sync: false`, an empty " \
	    "log, no read-model plugin; every client commit checks the claims " \
	    "under a mutex and reads the stream's `owners` record, whatever the " \
	    "configuration: the system projections' claims are always made). " \
	    "`none`: `run_projections: none`, nothing loaded but the system " \
	    "projections' claims; `claims`: the same plus `bench_emitter` " \
	    "loaded (its streams claimed, a probe commit to one refused with " \
	    "`EOWNED`), nothing running; `stopped`: the default `run_projections: " \
	    "all`, system projections loaded and stopped, `bench_emitter` loaded " \
	    "with `mode: one_time` (claimed, not run). Each daemon first takes " \
	    num(meta["w_emit"]) " events untimed (a stopped projection's reader " \
	    "still reads new events until `pending_events_threshold`, 5,000, " \
	    "wait in its queue; the warm-up keeps that out of the figure). " \
	    "Configurations run interleaved; × none is per run."
	print ""
	print "| batch | configuration | events/s | × none (same run) | commit p50 µs | sluiced CPU µs/commit |"
	print "|---|---|---|---|---|---|"
	for (b = 1; b <= 100; b *= 100) {
		split("none claims stopped", cf, " ")
		for (i = 1; i <= 3; i++) {
			k = "emit.append.b" b "." cf[i]
			printf "| %d | %s | %s | %s | %s | %s |\n", b, cf[i], cell(k ".eps"),
			    (i == 1 ? "1×" : rcell(k ".ratio")), num(med(k ".p50_us")),
			    num(med(k ".daemon_cpu_us_per_commit"))
		}
	}
	print ""

	# ---- the API's lanes (issue 14) ----
	print "## The API's lanes (issue 14)"
	print ""
	print "One client times `status`, `get_one` (account_details, one key) " \
	    "and a 1-event commit in turn (`sync: false`, default limits: 16 " \
	    "fast workers, 4 slow ones at nice +10, 64 slow requests may " \
	    "wait), first with nothing else running (idle), then while " \
	    num(med("lanes.queriers")) " client threads each send one-time " \
	    "queries of account_details (one key; each scans the whole log of " \
	    num(med("lanes.events")) " Account Details events) one after " \
	    "another, keeping the slow lane full (loaded: " \
	    num(med("lanes.loaded.queries_per_s")) " queries/s, " \
	    num(med("lanes.loaded.busy")) " `EBUSY`). × idle: loaded p99 over " \
	    "idle p99 in the same run."
	print ""
	print "| op | idle p50 µs | idle p99 µs | loaded p50 µs | loaded p99 µs | loaded p99 × idle p99 |"
	print "|---|---|---|---|---|---|"
	split("status get_one commit", lop, " ")
	for (i = 1; i <= 3; i++)
		printf "| %s | %s | %s | %s | %s | %s |\n", lop[i],
		    cell("lanes.idle." lop[i] ".p50_us"),
		    cell("lanes.idle." lop[i] ".p99_us"),
		    cell("lanes.loaded." lop[i] ".p50_us"),
		    cell("lanes.loaded." lop[i] ".p99_us"),
		    rcell("lanes." lop[i] ".p99_ratio")
	print ""

	# ---- targets ----
	print "## Targets (issues 9 and 17)"
	print ""
	print "| target | measured | required | |"
	print "|---|---|---|---|"
	cu = med("catchup.2.eps")
	target("catch-up of Account Details, " num(size[2]) " events", num(cu) " events/s",
	    "≥ 500,000 events/s", cu != "" && cu >= 500000)
	lim = med("raw.scanfold.2.eps")
	target("catch-up vs the raw scan-decode-fold limit (issue 17)", pct(cu, lim), "≥ 30 %",
	    cu != "" && lim != "" && cu >= 0.30 * lim)
	a1 = med("append.sync.c16.b1.eps")
	l1 = med("raw.lmdb.sync.t1.eps")
	target("durable append, 16 clients, batch 1, vs raw LMDB one txn per event",
	    times(a1, l1) " (" num(a1) " vs " num(l1) " events/s)", "≥ 5×",
	    a1 != "" && l1 != "" && a1 >= 5 * l1)
	nn = med("raw.nng.c16.rtps")
	target("durable append, 16 clients, batch 1, vs raw NNG req/rep of 16 clients",
	    pct(a1, nn) " (" num(a1) " vs " num(nn) " round trips/s)", "≥ 60 %",
	    a1 != "" && nn != "" && a1 >= 0.6 * nn)
	a100 = med("append.sync.c16.b100.eps")
	l1000 = med("raw.lmdb.sync.t1000.eps")
	target("durable append, 16 clients, batch 100, vs raw LMDB 1000 per txn",
	    pct(a100, l1000) " (" num(a100) " vs " num(l1000) " events/s)", "≥ 50 %",
	    a100 != "" && l1000 != "" && a100 >= 0.5 * l1000)
	p99 = med("c2rm.steady.p99_us")
	target("commit to read model p99 at 1,000 events/s, sync false",
	    num(p99) " µs", "< 2,000 µs", p99 != "" && p99 < 2000)
	g50 = med("query.c1.p50_us")
	r50 = med("raw.nng.qc1.p50_us")
	target("get_one p50 vs raw NNG round trip p50 (1 client)",
	    times(g50, r50) " (" num(g50) " vs " num(r50) " µs)", "≤ 1.3×",
	    g50 != "" && r50 != "" && g50 <= 1.3 * r50)
	ahead = 0
	total = 0
	behind = ""
	for (s = 1; s >= 0; s--) {
		sk = s ? "sync" : "nosync"
		for (c = 1; c <= 16; c *= 4)
			for (b = 1; b <= 100; b *= 10) {
				x = med("append." sk ".c" c ".b" b ".eps")
				y = med("sqlite.append." sqlsync[sk] ".b" b ".eps")
				total++
				if (x != "" && y != "" && x > y)
					ahead++
				else
					behind = behind (behind == "" ? "" : ", ") "append sync=" syncname[sk] " " c "×" b
			}
	}
	for (i = 1; i <= 3; i++) {
		x = med("catchup." i ".eps")
		y = med("sqlite.catchup." i ".eps")
		total++
		if (x != "" && y != "" && x > y)
			ahead++
		else
			behind = behind (behind == "" ? "" : ", ") "catch-up " num(size[i])
	}
	target("every append and catch-up figure ahead of SQLite",
	    ahead " of " total " ahead" (behind == "" ? "" : "; behind: " behind),
	    "all", ahead == total)
	rb = med("remote.b.ratio")
	target("remote projection catch-up, protocol 2 defaults, vs the plugin in process (issue 17)",
	    num(rb) "×", "≥ 0.5×", rb != "" && rb >= 0.5)
	# get_all: the fastest of the client's ways (JSON text, msgpack, view)
	gpages = int((med("query.c1.get_all_models") + 999) / 1000)
	glim = gpages * med("raw.nng.page.p50_us") / 1000
	gbest = med("query.c1.get_all_ms")
	gway = "sl_client_get_all"
	split("mp view", gways, " ")
	for (gi = 1; gi <= 2; gi++) {
		gv = med("query.c1.get_all_" gways[gi] "_ms")
		if (gv != "" && (gbest == "" || gv < gbest)) {
			gbest = gv
			gway = "sl_client_get_all_" gways[gi]
		}
	}
	target("get_all of " num(med("query.c1.get_all_models")) " read models vs the transport (" gpages " replies of one page) (issue 17)",
	    times(gbest, glim) " (" num(gbest) " vs " num(glim) " ms, " gway ")",
	    "≤ 3×", gbest != "" && glim > 0 && gbest <= 3 * glim)
	le = med("live.c1.eps")
	la = med("live.c1.append_eps")
	target("live feed, 1 subscriber, vs the commit rate of the same run (issue 17)",
	    pct(le, la), "≥ 90 %", le != "" && la != "" && le >= 0.9 * la)
	hr = med("remote.h.ratio")
	target("catch-up through a plugin host (isolation: process) vs the plugin in process",
	    num(hr) "×", "≥ 0.5×", hr != "" && hr >= 0.5)
	pm = med("catchup.2.anon_mib")
	target("private memory of sluiced during the " num(size[2]) " catch-up",
	    num(pm) " MiB", "< 64 MiB", pm != "" && pm < 64)
	p1 = med("catchup.1.anon_mib")
	p3 = med("catchup.3.anon_mib")
	target("private memory flat as the log grows (" num(size[1]) " → " num(size[3]) " events)",
	    num(p1) " → " num(p3) " MiB", "≤ +25 % or ≤ +4 MiB",
	    p1 != "" && p3 != "" && (p3 <= 1.25 * p1 || p3 - p1 <= 4))
	sr = med("emit.sys.ratio")
	target("the five system projections' catch-up vs account_details, same run (issue 17)",
	    (sr != "" ? sprintf("%.2f×", sr) : "MISSING"), "≥ 0.5×",
	    sr != "" && sr >= 0.5)
	print ""

	nm = 0
	for (k in missing) {
		if (nm == 0)
			printf "MISSING figures:"
		printf " %s", k
		nm++
	}
	if (nm > 0)
		print ""
	if (n_missed > 0)
		exit 4
}
