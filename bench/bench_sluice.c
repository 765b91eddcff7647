/*
 * The Sluice workloads of the benchmark suite, each through the real
 * daemon (sluiced as a process, see daemon.c) and the real client library
 * (libsluice_client), with client PROCESSES where several clients run.
 * Every subcommand prints "key value" result lines that bench/run.sh
 * collects; the raw limits and the SQLite baseline are other programs.
 *
 *   append   C client processes commit batches of B for T seconds
 *            (--binary: each content prepared as msgpack and committed
 *            with sl_client_commit_mp, as the SQLite baseline gets it;
 *            else as JSON text with sl_client_commit)
 *   load     grow the Account Details log to N events (no projection)
 *   catchup  load the projection on that log, time it to the head (with
 *            --pg: a fresh node on the PostgreSQL log, mirroring and
 *            folding it)
 *   query    get_one round trips with C clients, get_all of every model
 *            (with --pg and --nodes K: K nodes on the PostgreSQL log,
 *            each folding it first, the clients spread over them)
 *   filter   read_filter through a whole filter stream (account_filters.so)
 *   c2rm     commit ack -> get_one shows it, at a steady rate or under load,
 *            or beside a slow neighbour projection (--neighbour: then also
 *            how long `pause` of that neighbour takes to be answered)
 */
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <msgpack.h>

#include <sluice/client.h>

#include "common.h"
#include "daemon.h"
#include "json.h"
#include "mp.h"
#include "workload.h"

/* The slow neighbour's projection id (tests/plugins/slow_neighbour.c). */
#define NEIGHBOUR_ID "5e1d0b0e-7c4a-4f2e-9b3d-1a2b3c4d5e6f"

/* Options shared by the subcommands; each uses the ones it needs. */
typedef struct opts {
	const char *sluiced;
	const char *dir;
	const char *plugin;
	const char *url;
	const char *out;
	const char *perf;
	const char *perf_stat;
	int         sync;
	int         clients;
	int         batch;
	double      seconds;
	uint64_t    events;
	uint64_t    seed;
	uint32_t    accounts;
	double      rate;
	int         load_procs;
	int         background;
	int         rm_batch;
	int         index;
	bool        get_all;
	int         passes; /* query --get-all: passes of each way */
	int         page;   /* query --get-all: keys per page */
	const char *neighbour; /* c2rm: a slow projection's plugin beside */
	const char *pg; /* append, load: the log on PostgreSQL at this
	                   conninfo (emptied and initialized first), not LMDB;
	                   catchup, query: the log there as it is */
	int         nodes; /* query --pg: nodes on that log (1) */
	bool        binary; /* append: sl_client_commit_mp */
} opts;

/* What a worker leaves in its result file for the parent. */
typedef struct worker_result {
	uint64_t events; /* events committed, or requests answered */
	uint64_t ops;    /* requests */
	uint64_t end_ns; /* when its last request returned */
	uint64_t cpu_ns; /* CPU time it used in the timed loop */
	uint64_t n_lat;  /* latencies (ns) that follow */
} worker_result;

static void
write_result(const char *path, const worker_result *r, const bench_lat *l)
{
	FILE *f = fopen(path, "wb");
	if (f == NULL || fwrite(r, sizeof(*r), 1, f) != 1
	    || (l->n > 0 && fwrite(l->v, sizeof(uint64_t), l->n, f) != l->n)
	    || fclose(f) != 0)
		bench_die("write %s", path);
}

/* Add a worker's result file to the totals. */
static void
read_result(const char *path, worker_result *sum, bench_lat *l)
{
	FILE         *f = fopen(path, "rb");
	worker_result r;
	if (f == NULL || fread(&r, sizeof(r), 1, f) != 1)
		bench_die("read %s", path);
	for (uint64_t i = 0; i < r.n_lat; i++) {
		uint64_t v;
		if (fread(&v, sizeof(v), 1, f) != 1)
			bench_die("read %s: short", path);
		bench_lat_add(l, v);
	}
	fclose(f);
	unlink(path);
	sum->events += r.events;
	sum->ops += r.ops;
	sum->cpu_ns += r.cpu_ns;
	if (r.end_ns > sum->end_ns)
		sum->end_ns = r.end_ns;
}

/* Run n workers (argv: "%i" is the worker index; the worker writes its
 * result to DIR/worker-<index>.res) and sum their results.
 * @return the common start time. */
static uint64_t
run_workers(
    const char *dir, int n, char **argv, worker_result *sum, bench_lat *lat)
{
	bench_workers w;
	bench_workers_spawn(&w, (size_t) n, argv);
	bench_workers_go(&w, 20000000);
	uint64_t start = w.start_ns;
	bench_workers_wait(&w);
	memset(sum, 0, sizeof(*sum));
	for (int i = 0; i < n; i++) {
		char path[1200];
		snprintf(path, sizeof(path), "%s/worker-%d.res", dir, i);
		read_result(path, sum, lat);
	}
	return start;
}

static sl_client *
open_url(const char *url)
{
	sl_client *c;
	if (sl_client_open(url, 60000, &c) != SL_OK)
		bench_die("connect %s: %s", url, sl_client_open_error());
	return c;
}

/* The size of one full get_all reply, for the transport limit. */
static size_t
page_bytes(sl_client *c, int page)
{
	msgpack_sbuffer sb;
	msgpack_packer  pk;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 6);
	mp_pack_kv_u64(&pk, "v", 1);
	mp_pack_kv_str(&pk, "op", "get_all");
	mp_pack_kv_str(&pk, "tenant", WL_TENANT);
	mp_pack_kv_str(&pk, "projection", WL_PROJECTION);
	mp_pack_kv_u64(&pk, "limit", (uint64_t) page);
	mp_pack_kv_bool(&pk, "state_bytes", true); /* as the client asks */
	void  *reply = NULL;
	size_t len   = 0;
	int    rc    = sl_client_request(c, sb.data, sb.size, &reply, &len);
	msgpack_sbuffer_destroy(&sb);
	if (rc != SL_OK)
		bench_die("get_all: %s", sl_client_last_error(c));
	sl_client_free(reply);
	return len;
}

static pid_t
perf_attach(pid_t pid, const char *out)
{
	char p[32];
	snprintf(p, sizeof(p), "%ld", (long) pid);
	char *argv[] = { "/usr/bin/perf", "record", "-g", "-q", "-F", "999",
		"-o", (char *) out, "-p", p, NULL };
	pid_t perf   = bench_spawn(argv, "/dev/null");
	bench_sleep_ns(300000000); /* let it attach */
	return perf;
}

/* What --perf-stat counts in the daemon (tracepoints and software
 * counters: cheap); BENCH_PERF_EVENTS adds more, e.g. the uprobes of
 * `perf probe -x libc.so.6 --add malloc` (probe_libc:malloc). */
#define PERF_STAT_EVENTS                                                      \
	"syscalls:sys_enter_fdatasync,syscalls:sys_enter_fsync,"              \
	"context-switches,raw_syscalls:sys_enter,syscalls:sys_enter_futex,"   \
	"task-clock"

static pid_t
perf_stat_attach(pid_t pid, const char *out)
{
	char        p[32], ev[1024];
	const char *more = getenv("BENCH_PERF_EVENTS");
	snprintf(p, sizeof(p), "%ld", (long) pid);
	snprintf(ev, sizeof(ev), "%s%s%s", PERF_STAT_EVENTS,
	    more != NULL && more[0] != '\0' ? "," : "",
	    more != NULL ? more : "");
	char *argv[] = { "/usr/bin/perf", "stat", "-x", ",", "-e", ev, "-o",
		(char *) out, "-p", p, NULL };
	pid_t perf   = bench_spawn(argv, "/dev/null");
	bench_sleep_ns(300000000);
	return perf;
}

/* A count from perf stat -x, output: "COUNT,,EVENT,...". */
static double
perf_stat_count(const char *file, const char *event)
{
	FILE  *f = fopen(file, "r");
	char   line[512];
	double v = 0;
	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strstr(line, event) != NULL && line[0] >= '0'
		    && line[0] <= '9')
			v = atof(line);
	fclose(f);
	return v;
}

/* Every count of a perf stat -x output per commit, as "per_commit_EVENT"
 * lines (the daemon's whole run: its idle wait before the clients start
 * counts too, a few wake-ups). */
static void
perf_stat_per_commit(const char *file, double commits)
{
	FILE *f = fopen(file, "r");
	char  line[512];
	if (f == NULL || commits <= 0) {
		if (f != NULL)
			fclose(f);
		return;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		if (line[0] < '0' || line[0] > '9')
			continue;
		/* COUNT,UNIT,EVENT,... */
		char *unit = strchr(line, ',');
		char *name = unit != NULL ? strchr(unit + 1, ',') : NULL;
		char *end  = name != NULL ? strchr(name + 1, ',') : NULL;
		if (end == NULL)
			continue;
		*end        = '\0';
		*name       = '\0';
		bool   msec = strcmp(unit + 1, "msec") == 0;
		double v    = atof(line) / commits;
		char   key[160];
		snprintf(key, sizeof(key), "per_commit_%s%s", name + 1,
		    msec ? "_us" : "");
		for (char *k = key; *k != '\0'; k++)
			if (*k == ':' || *k == '-')
				*k = '_';
		bench_out(key, msec ? v * 1e3 : v);
	}
	fclose(f);
}

static void
perf_detach(pid_t perf)
{
	kill(perf, SIGINT);
	bench_reap(perf, 60000);
}

/* ---- append ---- */

static int
cmd_append_worker(const opts *o)
{
	sl_client *c = open_url(o->url);
	int        b = o->batch;
	/* Contents are prepared before the clock starts: as JSON text, which
	 * the client library converts for each commit, as a user's JSON
	 * commit would; with --binary as msgpack, sent as it is. */
	enum { RING = 256 };
	static char     content[RING][512];
	msgpack_sbuffer mp[RING];
	char            stream[64], err[200];
	sl_new_event    ev[100];
	sl_new_event_mp evm[100];
	for (int i = 0; i < RING; i++) {
		snprintf(stream, sizeof(stream), "w%d-s%d", o->index, i % 64);
		wl_append_content(content[i], sizeof(content[i]), stream,
		    (uint64_t) o->index * 1000000 + (uint64_t) i);
		msgpack_packer pk;
		msgpack_sbuffer_init(&mp[i]);
		msgpack_packer_init(&pk, &mp[i], msgpack_sbuffer_write);
		if (o->binary
		    && json_text_to_mp(content[i], 1, &pk, err, sizeof(err))
		        != SL_OK)
			bench_die("content: %s", err);
	}
	bench_lat     lat   = { 0 };
	worker_result r     = { 0 };
	uint64_t      start = bench_worker_ready();
	uint64_t      end   = start + (uint64_t) (o->seconds * 1e9);
	uint64_t      k     = 0;
	uint64_t      cpu0  = bench_self_cpu_ns();
	for (uint64_t now = start; now < end;) {
		snprintf(
		    stream, sizeof(stream), "w%d-s%" PRIu64, o->index, k % 64);
		for (int i = 0; i < b; i++) {
			size_t x = (k + (uint64_t) i) % RING;
			ev[i]    = (sl_new_event) { .type = WL_APPEND_TYPE,
				   .content_json         = content[x] };
			evm[i]   = (sl_new_event_mp) { .type = WL_APPEND_TYPE,
				  .content                 = mp[x].data,
				  .content_len             = mp[x].size };
		}
		int rc = o->binary
		    ? sl_client_commit_mp(c, WL_TENANT, stream, SL_EXPECT_ANY,
		          evm, (size_t) b, NULL)
		    : sl_client_commit(c, WL_TENANT, stream, SL_EXPECT_ANY, ev,
		          (size_t) b, NULL);
		uint64_t t = bench_now_ns();
		if (rc != SL_OK)
			bench_die("commit: %s: %s", sl_errname(rc),
			    sl_client_last_error(c));
		bench_lat_add(&lat, t - now);
		r.events += (uint64_t) b;
		r.ops++;
		k++;
		now = t;
	}
	for (int i = 0; i < RING; i++)
		msgpack_sbuffer_destroy(&mp[i]);
	r.end_ns = bench_now_ns();
	r.cpu_ns = bench_self_cpu_ns() - cpu0;
	r.n_lat  = lat.n;
	write_result(o->out, &r, &lat);
	bench_lat_free(&lat);
	sl_client_close(c);
	return 0;
}

static int
cmd_append(const opts *o, const char *self)
{
	bench_daemon d;
	char         dir[1100];
	snprintf(dir, sizeof(dir), "%s/append", o->dir);
	bench_rmrf(dir);
	daemon_init(&d, o->sluiced, dir, o->sync != 0);
	if (o->pg != NULL)
		daemon_use_pg(&d, o->pg);
	daemon_start(&d);
	pid_t     perf  = o->perf != NULL ? perf_attach(d.pid, o->perf) : -1;
	pid_t     pstat = o->perf_stat != NULL
	        ? perf_stat_attach(d.pid, o->perf_stat)
	        : -1;
	long long cpu0  = bench_proc_cpu_ns(d.pid);

	char b[16], s[32], out[1200];
	snprintf(b, sizeof(b), "%d", o->batch);
	snprintf(s, sizeof(s), "%g", o->seconds);
	snprintf(out, sizeof(out), "%s/worker-%%i.res", dir);
	char *argv[]
	    = { (char *) self, "append-worker", "--url", d.url, "--batch", b,
		      "--seconds", s, "--index", "%i", "--out", out,
		      o->binary ? "--binary" : NULL, NULL };
	worker_result sum;
	bench_lat     lat   = { 0 };
	uint64_t      start = run_workers(dir, o->clients, argv, &sum, &lat);
	double        secs  = (double) (sum.end_ns - start) / 1e9;
	double        dcpu  = (double) (bench_proc_cpu_ns(d.pid) - cpu0);
	if (perf > 0)
		perf_detach(perf);
	if (pstat > 0)
		perf_detach(pstat);
	daemon_stop(&d);

	bench_out("eps", (double) sum.events / secs);
	bench_out("commits_per_s", (double) sum.ops / secs);
	/* CPU per commit: the daemon's includes the wait before the run. */
	bench_out("daemon_cpu_us_per_commit", dcpu / 1e3 / (double) sum.ops);
	bench_out("client_cpu_us_per_commit",
	    (double) sum.cpu_ns / 1e3 / (double) sum.ops);
	if (pstat > 0) {
		/* LMDB syncs twice per durable write transaction (data, then
		 * the meta page). */
		double syncs = perf_stat_count(o->perf_stat, "fdatasync")
		    + perf_stat_count(o->perf_stat, "sys_enter_fsync");
		bench_out("fsyncs_per_s", syncs / secs);
		bench_out("commits_per_fsync",
		    syncs > 0 ? (double) sum.ops / syncs : 0);
		perf_stat_per_commit(o->perf_stat, (double) sum.ops);
	}
	bench_out("p50_us", (double) bench_lat_pct(&lat, 50) / 1e3);
	bench_out("p99_us", (double) bench_lat_pct(&lat, 99) / 1e3);
	bench_lat_free(&lat);
	bench_rmrf(dir);
	return 0;
}

/* ---- load: grow the Account Details log ---- */

/*
 * A load worker: phase "setup" opens its accounts (a % n == index) and
 * registers their customers; phase "money" commits o->events money events
 * in batches of 10 to its accounts' streams, round robin.
 */
static int
cmd_load_worker(const opts *o, const char *phase)
{
	sl_client *c = open_url(o->url);
	int        n = o->clients;
	wl_event   e[10];
	(void) bench_worker_ready();
	if (strcmp(phase, "setup") == 0) {
		for (uint32_t a = (uint32_t) o->index; a < o->accounts;
		     a += (uint32_t) n) {
			wl_open(&e[0], a);
			wl_customer(&e[1], a);
			for (int i = 0; i < 2; i++) {
				sl_new_event ne = { .type = e[i].type,
					.content_json     = e[i].content };
				int rc = sl_client_commit(c, WL_TENANT,
				    e[i].stream, SL_EXPECT_ANY, &ne, 1, NULL);
				if (rc != SL_OK)
					bench_die("load: %s",
					    sl_client_last_error(c));
			}
		}
	} else {
		uint64_t rng  = 0x51u + (uint64_t) o->index * 7919u + o->seed;
		uint64_t left = o->events;
		uint32_t a    = (uint32_t) o->index;
		sl_new_event ne[10];
		while (left > 0) {
			int k = left < 10 ? (int) left : 10;
			for (int i = 0; i < k; i++) {
				wl_money(&e[i], a, &rng);
				ne[i] = (sl_new_event) { .type = e[i].type,
					.content_json = e[i].content };
			}
			int rc = sl_client_commit(c, WL_TENANT, e[0].stream,
			    SL_EXPECT_ANY, ne, (size_t) k, NULL);
			if (rc != SL_OK)
				bench_die("load: %s", sl_client_last_error(c));
			left -= (uint64_t) k;
			a += (uint32_t) n;
			if (a >= o->accounts)
				a = (uint32_t) o->index;
		}
	}
	worker_result r = { .end_ns = bench_now_ns() };
	bench_lat     l = { 0 };
	write_result(o->out, &r, &l);
	sl_client_close(c);
	return 0;
}

static int
cmd_load(const opts *o, const char *self)
{
	bench_daemon d;
	/* Loading is not measured: sync off makes it quicker, and the log's
	 * contents are the same. */
	daemon_init(&d, o->sluiced, o->dir, false);
	if (o->pg != NULL)
		daemon_use_pg(&d, o->pg);
	daemon_set_plugin(&d, NULL);
	daemon_start(&d);
	sl_client    *c = daemon_client(&d);
	daemon_status st;
	daemon_get_status(c, &st);
	uint64_t t0 = bench_now_ns();

	char n[16], acc[16], ev[32], seed[32], out[1200];
	snprintf(n, sizeof(n), "%d", o->load_procs);
	snprintf(acc, sizeof(acc), "%u", o->accounts);
	snprintf(out, sizeof(out), "%s/worker-%%i.res", o->dir);
	worker_result sum;
	bench_lat     lat = { 0 };
	if (st.head == 0) {
		char *argv[] = { (char *) self, "load-worker", "setup",
			"--url", d.url, "--clients", n, "--accounts", acc,
			"--index", "%i", "--out", out, NULL };
		run_workers(o->dir, o->load_procs, argv, &sum, &lat);
		daemon_get_status(c, &st);
	}
	if (o->events > st.head) {
		uint64_t money = o->events - st.head;
		uint64_t per   = money / (uint64_t) o->load_procs;
		/* Workers get the same count; the remainder goes in a second
		 * round with one worker. */
		uint64_t rest = money - per * (uint64_t) o->load_procs;
		snprintf(ev, sizeof(ev), "%" PRIu64, per);
		snprintf(seed, sizeof(seed), "%" PRIu64, st.head);
		char *argv[] = { (char *) self, "load-worker", "money",
			"--url", d.url, "--clients", n, "--accounts", acc,
			"--index", "%i", "--events", ev, "--seed", seed,
			"--out", out, NULL };
		if (per > 0)
			run_workers(o->dir, o->load_procs, argv, &sum, &lat);
		if (rest > 0) {
			snprintf(ev, sizeof(ev), "%" PRIu64, rest);
			snprintf(n, sizeof(n), "1");
			run_workers(o->dir, 1, argv, &sum, &lat);
		}
		daemon_get_status(c, &st);
	}
	double secs = (double) (bench_now_ns() - t0) / 1e9;
	sl_client_close(c);
	daemon_stop(&d);
	bench_lat_free(&lat);
	if (st.head != o->events)
		bench_die("load: log holds %" PRIu64
		          " events, wanted %" PRIu64,
		    st.head, o->events);
	fprintf(stderr, "bench: loaded %" PRIu64 " events in %.1f s\n",
	    st.head, secs);
	return 0;
}

/* ---- catch-up ---- */


/* The ways to page through get_all: JSON text per state, msgpack copies
 * (get_all_mp), or the reply's own bytes (get_all_view). */
enum { GA_JSON, GA_MP, GA_VIEW, GA_WAYS };
static const char *const ga_name[GA_WAYS] = { "get_all", "get_all_mp",
	"get_all_view" };

/* Count read models by paging through get_all one way, page keys at a
 * time (0: the daemon's default). */
static uint64_t
count_models_as(sl_client *c, int way, size_t page)
{
	uint64_t n     = 0;
	char    *after = NULL;
	size_t   alen  = 0;
	for (;;) {
		sl_read_models      m  = { 0 };
		sl_read_models_mp   mm = { 0 };
		sl_read_models_view mv = { 0 };
		int                 rc;
		size_t              k = 0;
		bool                more;
		const char         *last = NULL;
		size_t              llen = 0;
		if (way == GA_JSON) {
			rc   = sl_client_get_all(c, WL_TENANT, WL_PROJECTION,
                            after, page, &m);
			k    = m.n_items;
			more = m.more;
			if (k > 0)
				last = m.items[k - 1].key, llen = strlen(last);
		} else if (way == GA_MP) {
			rc   = sl_client_get_all_mp(c, WL_TENANT, WL_PROJECTION,
                            after, page, &mm);
			k    = mm.n_items;
			more = mm.more;
			if (k > 0)
				last = mm.items[k - 1].key, llen = strlen(last);
		} else {
			rc   = sl_client_get_all_view(c, WL_TENANT,
                            WL_PROJECTION, after, alen, page, &mv);
			k    = mv.n_items;
			more = mv.more;
			if (k > 0)
				last = mv.items[k - 1].key,
				llen = mv.items[k - 1].key_len;
		}
		if (rc != SL_OK)
			bench_die("%s: %s", ga_name[way], sl_client_last_error(c));
		n += k;
		free(after);
		after = last != NULL ? strndup(last, llen) : NULL;
		alen  = llen;
		sl_read_models_free(&m);
		sl_read_models_mp_free(&mm);
		sl_read_models_view_free(&mv);
		if (!more || after == NULL)
			break;
	}
	free(after);
	return n;
}

static uint64_t
count_models(sl_client *c)
{
	return count_models_as(c, GA_JSON, 1000);
}

static int
cmd_catchup(const opts *o)
{
	bench_daemon d;
	char         rm[1200];
	daemon_init_batch(&d, o->sluiced, o->dir, o->sync != 0, o->rm_batch);
	/* From position 0, with a store that has never seen the projection
	 * (on PostgreSQL: a fresh node, its mirror made too, up to the
	 * events the database holds). */
	snprintf(rm, sizeof(rm), "%s/data/tenants", o->dir);
	bench_rmrf(rm);
	uint64_t want = 0;
	if (o->pg != NULL) {
		char mirror[1200];
		snprintf(mirror, sizeof(mirror), "%s/data/events", o->dir);
		bench_rmrf(mirror);
		daemon_pg_config(&d, o->pg);
		if ((want = o->events) == 0)
			bench_die("catchup --pg: --events N (the log's size)");
	}
	daemon_set_plugin(&d, o->plugin);

	uint64_t t0 = bench_now_ns();
	daemon_start(&d);
	pid_t      perf = o->perf != NULL ? perf_attach(d.pid, o->perf) : -1;
	sl_client *c    = daemon_client(&d);
	daemon_status st;
	long long     anon_max = 0;
	uint64_t      next_mem = 0;
	for (;;) {
		uint64_t now = bench_now_ns();
		if (now >= next_mem) {
			long long a = bench_proc_kb(
			    d.pid, "smaps_rollup", "Anonymous");
			if (a > anon_max)
				anon_max = a;
			next_mem = now + 20000000;
		}
		daemon_get_status(c, &st);
		if (st.n_processors > 0 && st.head >= want
		    && st.position >= st.head)
			break;
		if (strcmp(st.state, "failing") == 0)
			bench_die(
			    "catch-up: processor failing: %s", st.reason);
		bench_sleep_ns(2000000);
	}
	uint64_t  t1   = bench_now_ns();
	long long cpu1 = bench_proc_cpu_ns(d.pid);
	if (perf > 0)
		perf_detach(perf);
	long long a = bench_proc_kb(d.pid, "smaps_rollup", "Anonymous");
	if (a > anon_max)
		anon_max = a;
	long long hwm    = bench_proc_kb(d.pid, "status", "VmHWM");
	uint64_t  models = count_models(c);
	sl_client_close(c);
	daemon_stop(&d);
	daemon_set_plugin(&d, NULL);

	char path[1200];
	snprintf(path, sizeof(path), "%s/data/events", o->dir);
	long long log_bytes = bench_disk_bytes(path);
	long long rm_bytes  = bench_disk_bytes(rm);
	double    secs      = (double) (t1 - t0) / 1e9;
	bench_out("events", (double) st.head);
	bench_out("seconds", secs);
	bench_out("eps", (double) st.head / secs);
	/* 100 = one core busy all the time (from the start of sluiced). */
	bench_out("cpu_pct", (double) cpu1 / 1e7 / secs);
	bench_out("rss_mib", (double) hwm / 1048576.0);
	bench_out("anon_mib", (double) anon_max / 1048576.0);
	bench_out(
	    "log_bytes_per_event", (double) log_bytes / (double) st.head);
	bench_out("models", (double) models);
	bench_out("rm_bytes_per_model",
	    models > 0 ? (double) rm_bytes / (double) models : 0);
	return 0;
}

/* ---- queries ---- */

static int
cmd_query_worker(const opts *o)
{
	/* --url U0,U1,...: worker i asks node i mod their number */
	char        url[1200];
	const char *u = o->url;
	int         n = 1;
	for (const char *p = u; (p = strchr(p, ',')) != NULL; p++)
		n++;
	for (int i = o->index % n; i > 0; i--)
		u = strchr(u, ',') + 1;
	snprintf(url, sizeof(url), "%.*s", (int) strcspn(u, ","), u);
	sl_client    *c   = open_url(url);
	uint64_t      rng = 0x1234567u + (uint64_t) o->index;
	char          key[32];
	bench_lat     lat   = { 0 };
	worker_result r     = { 0 };
	uint64_t      start = bench_worker_ready();
	uint64_t      end   = start + (uint64_t) (o->seconds * 1e9);
	for (uint64_t now = start; now < end;) {
		wl_account_id(key, sizeof(key),
		    (uint32_t) (bench_rand(&rng) % o->accounts));
		char *state = NULL;
		bool  found = false;
		int   rc    = sl_client_get_one(
		         c, WL_TENANT, WL_PROJECTION, key, &state, &found);
		uint64_t t = bench_now_ns();
		if (rc != SL_OK || !found)
			bench_die("get_one %s: %s", key,
			    rc != SL_OK ? sl_client_last_error(c) : "missing");
		sl_client_free(state);
		bench_lat_add(&lat, t - now);
		r.events++;
		r.ops++;
		now = t;
	}
	r.end_ns = bench_now_ns();
	r.n_lat  = lat.n;
	write_result(o->out, &r, &lat);
	bench_lat_free(&lat);
	sl_client_close(c);
	return 0;
}

/* Start sluiced in dir with o->plugin on the loaded log (on PostgreSQL:
 * o->pg, with a mirror of its own, up to o->events); return a client once
 * the (first) processor is at the head. */
static sl_client *
start_at_head_in(const opts *o, bench_daemon *d, const char *dir)
{
	daemon_init(d, o->sluiced, dir, o->sync != 0);
	if (o->pg != NULL)
		daemon_pg_config(d, o->pg);
	daemon_set_plugin(d, o->plugin);
	daemon_start(d);
	sl_client    *c = daemon_client(d);
	daemon_status st;
	uint64_t      want = o->pg != NULL ? o->events : 0;
	for (;;) {
		daemon_get_status(c, &st);
		if (st.n_processors > 0 && st.head >= want
		    && st.position >= st.head)
			return c;
		bench_sleep_ns(5000000);
	}
}

static sl_client *
start_at_head(const opts *o, bench_daemon *d)
{
	return start_at_head_in(o, d, o->dir);
}

static int
cmd_query(const opts *o, const char *self)
{
	bench_daemon d, more[7];
	int          n_nodes = o->pg != NULL && o->nodes > 1 ? o->nodes : 1;
	char         urls[8 * 1100 + 8];
	/* The read models are there already; wait for the processor's
	 * checkpoint check so it does not compete with the queries. (On
	 * PostgreSQL: every node folds the log first, in a dir of its own.) */
	sl_client *c = start_at_head(o, &d);
	uint64_t models = count_models(c);
	if (models == 0)
		bench_die("query: no read models (run catchup first)");
	if (n_nodes > 8)
		bench_die("query: --nodes 1..8");
	snprintf(urls, sizeof(urls), "%s", d.url);
	for (int i = 1; i < n_nodes; i++) {
		char dir[1100];
		snprintf(dir, sizeof(dir), "%s/node-%d", o->dir, i);
		bench_rmrf(dir);
		sl_client *ci = start_at_head_in(o, &more[i - 1], dir);
		if (count_models(ci) != models)
			bench_die("query: node %d has other read models", i);
		sl_client_close(ci);
		strcat(urls, ",");
		strcat(urls, more[i - 1].url);
	}

	char n[16], acc[32], s[32], out[1200];
	snprintf(n, sizeof(n), "%d", o->clients);
	snprintf(acc, sizeof(acc), "%" PRIu64, models);
	snprintf(s, sizeof(s), "%g", o->seconds);
	snprintf(out, sizeof(out), "%s/worker-%%i.res", o->dir);
	char         *argv[] = { (char *) self, "query-worker", "--url", urls,
		        "--accounts", acc, "--seconds", s, "--index", "%i", "--out",
		        out, NULL };
	worker_result sum;
	bench_lat     lat = { 0 };
	uint64_t start    = run_workers(o->dir, o->clients, argv, &sum, &lat);
	double   secs     = (double) (sum.end_ns - start) / 1e9;
	bench_out("rtps", (double) sum.ops / secs);
	bench_out("p50_us", (double) bench_lat_pct(&lat, 50) / 1e3);
	bench_out("p99_us", (double) bench_lat_pct(&lat, 99) / 1e3);
	bench_lat_free(&lat);

	if (o->get_all) {
		/* Each way o->passes times, the ways alternated pass by pass
		 * (the machine is shared): the best and the median of each. */
		int       np = o->passes > 0 ? o->passes : 1;
		uint64_t *t  = calloc((size_t) np * GA_WAYS, sizeof(*t));
		/* CPU of this process (its NNG threads too) and of sluiced */
		uint64_t  ccpu[GA_WAYS] = { 0 };
		long long dcpu[GA_WAYS] = { 0 };
		if (t == NULL)
			bench_die("out of memory");
		for (int i = 0; i < np; i++)
			for (int w = 0; w < GA_WAYS; w++) {
				uint64_t  c0 = bench_self_cpu_ns();
				long long d0 = bench_proc_cpu_ns_fine(d.pid);
				uint64_t  t0 = bench_now_ns();
				if (count_models_as(c, w, (size_t) o->page)
				    != models)
					bench_die("%s: another count", ga_name[w]);
				t[w * np + i] = bench_now_ns() - t0;
				ccpu[w] += bench_self_cpu_ns() - c0;
				dcpu[w] += bench_proc_cpu_ns_fine(d.pid) - d0;
			}
		uint64_t per = o->page > 0 ? (uint64_t) o->page : 1000;
		double   pages
		    = (double) np * (double) ((models + per - 1) / per);
		bench_out("get_all_models", (double) models);
		for (int w = 0; w < GA_WAYS; w++) {
			uint64_t *v = t + w * np;
			for (int i = 1; i < np; i++) /* insertion sort */
				for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
					uint64_t x = v[j];
					v[j]       = v[j - 1];
					v[j - 1]   = x;
				}
			char k[64];
			snprintf(k, sizeof(k), "%s_ms", ga_name[w]);
			bench_out(k, (double) v[0] / 1e6);
			snprintf(k, sizeof(k), "%s_median_ms", ga_name[w]);
			bench_out(k, (double) v[np / 2] / 1e6);
			snprintf(k, sizeof(k), "%s_client_cpu_us_per_page",
			    ga_name[w]);
			bench_out(k, (double) ccpu[w] / 1e3 / pages);
			snprintf(k, sizeof(k), "%s_sluiced_cpu_us_per_page",
			    ga_name[w]);
			bench_out(k, (double) dcpu[w] / 1e3 / pages);
		}
		free(t);
		bench_out("get_all_page_bytes", (double) page_bytes(c, o->page));
	}
	sl_client_close(c);
	daemon_stop(&d);
	daemon_set_plugin(&d, NULL);
	for (int i = 1; i < n_nodes; i++)
		daemon_stop(&more[i - 1]);
	return 0;
}

/* ---- read_filter ---- */

/* Page through a filter's whole stream; @return the events read. */
static uint64_t
read_filter_all(sl_client *c, const char *filter, size_t max)
{
	uint64_t n = 0, from = 0;
	for (;;) {
		sl_filter_page page;
		int rc = sl_client_read_filter(
		    c, WL_TENANT, filter, NULL, from, max, &page);
		if (rc != SL_OK)
			bench_die("read_filter: %s", sl_client_last_error(c));
		n += page.n_events;
		from      = page.next;
		bool more = page.more;
		sl_filter_page_free(&page);
		if (!more)
			break;
	}
	return n;
}

/* The example filters (account_filters.so) over a loaded log: once they
 * are at the head, the median of 5 passes paging through the partitioned
 * "customer events" stream (every account event) with read_filter. */
static int
cmd_filter(const opts *o)
{
	static const char filter[] = "customer events";
	bench_daemon      d;
	sl_client        *c = start_at_head(o, &d);
	/* every filter's processor at the head: the stream no longer grows */
	uint64_t n = 0, prev = UINT64_MAX;
	while ((n = read_filter_all(c, filter, 0)) != prev) {
		prev = n;
		bench_sleep_ns(200000000);
	}
	if (n == 0)
		bench_die("filter: the stream is empty (run load first)");
	uint64_t t[5];
	for (int i = 0; i < 5; i++) {
		uint64_t t0 = bench_now_ns();
		if (read_filter_all(c, filter, 0) != n)
			bench_die("filter: the stream changed while read");
		t[i] = bench_now_ns() - t0;
	}
	for (int i = 1; i < 5; i++) /* insertion sort: the median */
		for (int j = i; j > 0 && t[j - 1] > t[j]; j--) {
			uint64_t x = t[j];
			t[j]       = t[j - 1];
			t[j - 1]   = x;
		}
	bench_out("read_filter_events", (double) n);
	bench_out("read_filter_ms", (double) t[2] / 1e6);
	bench_out("read_filter_eps", (double) n / ((double) t[2] / 1e9));
	sl_client_close(c);
	daemon_stop(&d);
	daemon_set_plugin(&d, NULL);
	return 0;
}

/* ---- commit to read model ---- */

/* A background committer for the saturation case: batches of 10 money
 * events to accounts of its own, as fast as the daemon takes them. */
static int
cmd_c2rm_load(const opts *o)
{
	sl_client    *c   = open_url(o->url);
	uint64_t      rng = 0x77u + (uint64_t) o->index;
	wl_event      e[10];
	sl_new_event  ne[10];
	worker_result r     = { 0 };
	bench_lat     lat   = { 0 };
	uint64_t      start = bench_worker_ready();
	uint64_t      end   = start + (uint64_t) (o->seconds * 1e9);
	for (uint32_t k = 0; bench_now_ns() < end; k++) {
		uint32_t a
		    = 1000000u + (uint32_t) o->index * 1000u + k % 1000u;
		for (int i = 0; i < 10; i++) {
			wl_money(&e[i], a, &rng);
			ne[i] = (sl_new_event) { .type = e[i].type,
				.content_json          = e[i].content };
		}
		int rc = sl_client_commit(
		    c, WL_TENANT, e[0].stream, SL_EXPECT_ANY, ne, 10, NULL);
		if (rc != SL_OK)
			bench_die("load: %s", sl_client_last_error(c));
		r.events += 10;
		r.ops++;
	}
	r.end_ns = bench_now_ns();
	write_result(o->out, &r, &lat);
	bench_lat_free(&lat);
	sl_client_close(c);
	return 0;
}

static int64_t
state_balance(const char *state)
{
	const char *p = strstr(state, "\"balance\":");
	return p != NULL ? strtoll(p + 10, NULL, 10) : -1;
}

static int
cmd_c2rm(const opts *o, const char *self)
{
	bench_daemon d;
	char         dir[1100];
	snprintf(dir, sizeof(dir), "%s/c2rm", o->dir);
	bench_rmrf(dir);
	daemon_init(&d, o->sluiced, dir, o->sync != 0);
	daemon_set_plugin(&d, o->plugin);
	if (o->neighbour != NULL)
		daemon_add_plugin(&d, o->neighbour, "neighbour.so");
	daemon_start(&d);
	sl_client *c = daemon_client(&d);

	/* The background load, if any, runs while the probe measures. */
	bench_workers w        = { 0 };
	int           nbg      = o->background;
	uint64_t      bg_start = 0;
	char          s[32], out[1200];
	snprintf(s, sizeof(s), "%g", o->seconds + 1.0);
	snprintf(out, sizeof(out), "%s/worker-%%i.res", dir);
	if (nbg > 0) {
		char *argv[] = { (char *) self, "c2rm-load", "--url", d.url,
			"--seconds", s, "--index", "%i", "--out", out, NULL };
		bench_workers_spawn(&w, (size_t) nbg, argv);
		bench_workers_go(&w, 20000000);
		bg_start = w.start_ns;
		bench_sleep_ns(500000000); /* let the backlog build up */
	}

	/* The probe: one DebitPerformed of 1 per commit to ten accounts of
	 * its own, so each commit gives its account a balance no earlier
	 * state had. */
	enum { PROBES = 10 };
	int64_t   balance[PROBES] = { 0 };
	char      stream[32];
	bench_lat lat    = { 0 };
	uint64_t  period = o->rate > 0 ? (uint64_t) (1e9 / o->rate) : 0;
	uint64_t  start  = bench_now_ns();
	uint64_t  end    = start + (uint64_t) (o->seconds * 1e9);
	uint64_t  polls  = 0;
	for (uint64_t i = 0;; i++) {
		uint64_t due = start + i * period;
		if (due >= end)
			break;
		bench_sleep_until(due);
		if (bench_now_ns() >= end)
			break;
		int p = (int) (i % PROBES);
		snprintf(stream, sizeof(stream), "probe-%d", p);
		sl_new_event ev = { .type = "DebitPerformed",
			.content_json     = "{\"amount\":1}" };
		int          rc = sl_client_commit(
		             c, WL_TENANT, stream, SL_EXPECT_ANY, &ev, 1, NULL);
		uint64_t acked = bench_now_ns();
		if (rc != SL_OK)
			bench_die("probe commit: %s", sl_client_last_error(c));
		balance[p]++;
		for (;;) {
			char *state = NULL;
			rc          = sl_client_get_one(
			             c, WL_TENANT, WL_PROJECTION, stream, &state, NULL);
			if (rc != SL_OK)
				bench_die("probe get_one: %s",
				    sl_client_last_error(c));
			int64_t b = state_balance(state);
			sl_client_free(state);
			polls++;
			if (b == balance[p])
				break;
			if (b > balance[p])
				bench_die("probe: balance %lld ahead of %lld",
				    (long long) b, (long long) balance[p]);
		}
		bench_lat_add(&lat, bench_now_ns() - acked);
	}
	double secs = (double) (bench_now_ns() - start) / 1e9;
	bench_out("probes", (double) lat.n);
	bench_out("probe_rate", (double) lat.n / secs);
	bench_out("polls_per_probe", (double) polls / (double) lat.n);
	bench_out("p50_us", (double) bench_lat_pct(&lat, 50) / 1e3);
	bench_out("p99_us", (double) bench_lat_pct(&lat, 99) / 1e3);
	bench_lat_free(&lat);
	if (o->neighbour != NULL) {
		/* the neighbour is behind by now (each probe costs it its
		 * handler time): pause is taken between two of its events */
		size_t   n;
		uint64_t t0 = bench_now_ns();
		if (sl_client_command(c, "pause", NEIGHBOUR_ID, WL_TENANT, &n)
		    != SL_OK)
			bench_die("pause: %s", sl_client_last_error(c));
		bench_out("pause_ms", (double) (bench_now_ns() - t0) / 1e6);
	}
	if (nbg > 0) {
		bench_workers_wait(&w);
		worker_result sum = { 0 };
		bench_lat     l   = { 0 };
		for (int i = 0; i < nbg; i++) {
			char path[1200];
			snprintf(
			    path, sizeof(path), "%s/worker-%d.res", dir, i);
			read_result(path, &sum, &l);
		}
		double lsecs = (double) (sum.end_ns - bg_start) / 1e9;
		bench_out("load_eps", (double) sum.events / lsecs);
	}
	sl_client_close(c);
	daemon_stop(&d);
	bench_rmrf(dir);
	return 0;
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: bench_sluice append|load|catchup|query|filter|c2rm "
	    "[options]\n"
	    "  --sluiced PATH --dir DIR --plugin SO --sync 0|1\n"
	    "  --clients N --batch N --seconds S --events N --accounts N\n"
	    "  --rate R --load-procs N --background N --get-all --perf FILE\n"
	    "  --binary (append: contents as msgpack, sl_client_commit_mp)\n"
	    "  --perf-stat FILE --rm-batch N (catchup: processing.batch)\n"
	    "  --neighbour SO (c2rm: a slow projection in the same tenant)\n"
	    "  --passes N --page K (query --get-all: passes of each way,\n"
	    "  default 5, alternated; keys per page, default 1000)\n"
	    "  --pg CONNINFO (append, load: the log on PostgreSQL, its sl_\n"
	    "  tables dropped and made again by sluiced --init-db first;\n"
	    "  catchup, query: on that log as it is, --events N its size)\n"
	    "  --nodes K (query --pg: K nodes, the clients spread over them)\n"
	    "  filter: --plugin account_filters.so, pages through the\n"
	    "  'customer events' stream with read_filter\n"
	    "Prints \"key value\" lines. See bench/run.sh.\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	if (argc < 2)
		usage();
	const char *cmd   = argv[1];
	const char *phase = NULL;
	int         first = 2;
	if (strcmp(cmd, "load-worker") == 0) {
		if (argc < 3)
			usage();
		phase = argv[2];
		first = 3;
	}
	opts o = { .sync    = 1,
		.clients    = 1,
		.batch      = 1,
		.seconds    = 1,
		.accounts   = 10000,
		.load_procs = 4,
		.passes     = 5,
		.page       = 1000 };
	enum {
		O_SLUICED = 256,
		O_DIR,
		O_PLUGIN,
		O_URL,
		O_OUT,
		O_PERF,
		O_SYNC,
		O_CLIENTS,
		O_BATCH,
		O_SECONDS,
		O_EVENTS,
		O_ACCOUNTS,
		O_RATE,
		O_LOADP,
		O_INDEX,
		O_GETALL,
		O_SEED,
		O_BG,
		O_PSTAT,
		O_RMB,
		O_NEIGHBOUR,
		O_PASSES,
		O_PAGE,
		O_PG,
		O_NODES,
		O_BINARY
	};
	static const struct option lo[] = {
		{ "sluiced", required_argument, NULL, O_SLUICED },
		{ "dir", required_argument, NULL, O_DIR },
		{ "plugin", required_argument, NULL, O_PLUGIN },
		{ "url", required_argument, NULL, O_URL },
		{ "out", required_argument, NULL, O_OUT },
		{ "perf", required_argument, NULL, O_PERF },
		{ "sync", required_argument, NULL, O_SYNC },
		{ "clients", required_argument, NULL, O_CLIENTS },
		{ "batch", required_argument, NULL, O_BATCH },
		{ "seconds", required_argument, NULL, O_SECONDS },
		{ "events", required_argument, NULL, O_EVENTS },
		{ "accounts", required_argument, NULL, O_ACCOUNTS },
		{ "rate", required_argument, NULL, O_RATE },
		{ "load-procs", required_argument, NULL, O_LOADP },
		{ "index", required_argument, NULL, O_INDEX },
		{ "get-all", no_argument, NULL, O_GETALL },
		{ "seed", required_argument, NULL, O_SEED },
		{ "background", required_argument, NULL, O_BG },
		{ "perf-stat", required_argument, NULL, O_PSTAT },
		{ "rm-batch", required_argument, NULL, O_RMB },
		{ "neighbour", required_argument, NULL, O_NEIGHBOUR },
		{ "passes", required_argument, NULL, O_PASSES },
		{ "page", required_argument, NULL, O_PAGE },
		{ "pg", required_argument, NULL, O_PG },
		{ "nodes", required_argument, NULL, O_NODES },
		{ "binary", no_argument, NULL, O_BINARY },
		{ NULL, 0, NULL, 0 },
	};
	optind = first;
	int ch;
	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (ch) {
		case O_SLUICED:
			o.sluiced = optarg;
			break;
		case O_DIR:
			o.dir = optarg;
			break;
		case O_PLUGIN:
			o.plugin = optarg;
			break;
		case O_URL:
			o.url = optarg;
			break;
		case O_OUT:
			o.out = optarg;
			break;
		case O_PERF:
			o.perf = optarg;
			break;
		case O_SYNC:
			o.sync = atoi(optarg);
			break;
		case O_CLIENTS:
			o.clients = atoi(optarg);
			break;
		case O_BATCH:
			o.batch = atoi(optarg);
			break;
		case O_SECONDS:
			o.seconds = atof(optarg);
			break;
		case O_EVENTS:
			o.events = strtoull(optarg, NULL, 10);
			break;
		case O_ACCOUNTS:
			o.accounts = (uint32_t) strtoul(optarg, NULL, 10);
			break;
		case O_RATE:
			o.rate = atof(optarg);
			break;
		case O_LOADP:
			o.load_procs = atoi(optarg);
			break;
		case O_INDEX:
			o.index = atoi(optarg);
			break;
		case O_GETALL:
			o.get_all = true;
			break;
		case O_BINARY:
			o.binary = true;
			break;
		case O_SEED:
			o.seed = strtoull(optarg, NULL, 10);
			break;
		case O_BG:
			o.background = atoi(optarg);
			break;
		case O_PSTAT:
			o.perf_stat = optarg;
			break;
		case O_RMB:
			o.rm_batch = atoi(optarg);
			break;
		case O_NEIGHBOUR:
			o.neighbour = optarg;
			break;
		case O_PASSES:
			o.passes = atoi(optarg);
			break;
		case O_PAGE:
			o.page = atoi(optarg);
			break;
		case O_PG:
			o.pg = optarg;
			break;
		case O_NODES:
			o.nodes = atoi(optarg);
			break;
		default:
			usage();
		}
	}
	/* Workers take their result path with the index filled in. */
	char out[1200];
	if (o.out != NULL && strstr(o.out, "%i") != NULL) {
		const char *p = strstr(o.out, "%i");
		snprintf(out, sizeof(out), "%.*s%d%s", (int) (p - o.out),
		    o.out, o.index, p + 2);
		o.out = out;
	}
	if (o.batch < 1 || o.batch > 100 || o.clients < 1 || o.clients > 64)
		bench_die("--batch 1..100, --clients 1..64");
	signal(SIGPIPE, SIG_IGN);
	bench_handle_signals();

	if (strcmp(cmd, "append-worker") == 0)
		return cmd_append_worker(&o);
	if (strcmp(cmd, "load-worker") == 0)
		return cmd_load_worker(&o, phase);
	if (strcmp(cmd, "query-worker") == 0)
		return cmd_query_worker(&o);
	if (strcmp(cmd, "c2rm-load") == 0)
		return cmd_c2rm_load(&o);
	if (o.sluiced == NULL || o.dir == NULL)
		usage();
	if (strcmp(cmd, "append") == 0)
		return cmd_append(&o, argv[0]);
	if (strcmp(cmd, "load") == 0)
		return cmd_load(&o, argv[0]);
	if (o.plugin == NULL)
		usage();
	if (strcmp(cmd, "catchup") == 0)
		return cmd_catchup(&o);
	if (strcmp(cmd, "query") == 0)
		return cmd_query(&o, argv[0]);
	if (strcmp(cmd, "filter") == 0)
		return cmd_filter(&o);
	if (strcmp(cmd, "c2rm") == 0)
		return cmd_c2rm(&o, argv[0]);
	usage();
}
