/*
 * The API's lanes (issue 14) through the real daemon: how much slower fast
 * ops (status, get_one, a 1-event commit) get while one-time queries keep
 * the slow lane full. sluiced as a process (sync false, account_details
 * loaded, default limits), the client library, an Account Details log of
 * its own. Every figure is printed as "key value" lines that bench/run.sh
 * collects.
 *
 *   bench_lanes run --sluiced PATH --dir DIR --plugin SO [--events N]
 *                   [--queriers K] [--seconds T]
 *
 * Loads N events (default 100,000; 1,000 accounts) and waits until
 * account_details is at the head. Then, back to back: "idle", one client
 * timing status, get_one and commit in turn for T seconds (default 2);
 * "loaded", the same while K client threads (default 8) each send
 * one-time queries of account_details (one key; each a scan of the whole
 * log) one after another. Keys (run.sh prefixes "lanes."):
 * <idle|loaded>.<op>.p50_us / .p99_us,
 * <op>.p99_ratio (loaded / idle), loaded.queries_per_s,
 * loaded.busy (EBUSY answers), queriers, events.
 */
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/client.h>

#include "common.h"
#include "daemon.h"
#include "workload.h"

#define N_ACCOUNTS   1000
#define BATCH        500
#define MAX_QUERIERS 64

typedef struct opts {
	const char *sluiced;
	const char *dir;
	const char *plugin;
	uint64_t    events;
	int         queriers;
	double      seconds;
} opts;

static const char *const op_names[] = { "status", "get_one", "commit" };

typedef struct querier {
	pthread_t    th;
	const char  *url;
	atomic_bool *stop;
	uint64_t     done, busy, failed;
} querier;

static void
load_log(sl_client *c, uint64_t n)
{
	static wl_event     evs[BATCH];
	static sl_new_event nev[BATCH];
	uint64_t            rng = 42, i = 0;

	/* one event per call group of the same stream: the opening events
	 * first, then money events of random accounts, batch per account */
	for (uint32_t a = 0; a < N_ACCOUNTS && i < n; a++, i++) {
		wl_open(&evs[0], a);
		nev[0] = (sl_new_event) { .type = evs[0].type,
			.content_json           = evs[0].content };
		if (sl_client_commit(c, WL_TENANT, evs[0].stream,
		        SL_EXPECT_ANY, nev, 1, NULL)
		    != SL_OK)
			bench_die("load: %s", sl_client_last_error(c));
	}
	while (i < n) {
		uint32_t a = (uint32_t) (bench_rand(&rng) % N_ACCOUNTS);
		size_t   k = n - i < BATCH ? (size_t) (n - i) : BATCH;
		for (size_t j = 0; j < k; j++) {
			wl_money(&evs[j], a, &rng);
			nev[j] = (sl_new_event) { .type = evs[j].type,
				.content_json           = evs[j].content };
		}
		if (sl_client_commit(c, WL_TENANT, evs[0].stream,
		        SL_EXPECT_ANY, nev, k, NULL)
		    != SL_OK)
			bench_die("load: %s", sl_client_last_error(c));
		i += k;
	}
}

static void
wait_caught_up(sl_client *c)
{
	uint64_t end = bench_now_ns() + 300000000000ull;
	for (;;) {
		daemon_status st;
		daemon_get_status(c, &st);
		if (st.n_processors > 0 && st.position >= st.head)
			return;
		if (bench_now_ns() > end)
			bench_die("account_details did not catch up");
		bench_sleep_ns(20000000);
	}
}

static void *
querier_main(void *arg)
{
	querier   *q = arg;
	sl_client *c;
	char       key[32];

	if (sl_client_open(q->url, 600000, &c) != SL_OK)
		bench_die("querier: cannot connect");
	wl_account_id(key, sizeof(key), 1);
	while (!atomic_load(q->stop)) {
		sl_query_result r;
		memset(&r, 0, sizeof(r));
		int rc = sl_client_query(c, WL_TENANT, WL_PROJECTION, key, &r);
		sl_query_result_free(&r);
		if (rc == SL_OK)
			q->done++;
		else if (rc == SL_EBUSY)
			q->busy++;
		else
			q->failed++;
	}
	sl_client_close(c);
	return NULL;
}

/* Time the three fast ops in turn for seconds; lat[op] gets the samples. */
static void
measure(sl_client *c, double seconds, bench_lat lat[3])
{
	sl_new_event ev  = { .type = "AccountOpened",
		 .content_json     = "{\"owner\":\"probe\"}" };
	uint64_t     end = bench_now_ns() + (uint64_t) (seconds * 1e9);
	char         key[32];

	wl_account_id(key, sizeof(key), 7);
	while (bench_now_ns() < end) {
		char    *text = NULL;
		uint64_t t0   = bench_now_ns();
		if (sl_client_status(c, &text) != SL_OK)
			bench_die("status: %s", sl_client_last_error(c));
		bench_lat_add(&lat[0], bench_now_ns() - t0);
		sl_client_free(text);
		text = NULL;
		t0   = bench_now_ns();
		if (sl_client_get_one(
		        c, WL_TENANT, WL_PROJECTION, key, &text, NULL)
		    != SL_OK)
			bench_die("get_one: %s", sl_client_last_error(c));
		bench_lat_add(&lat[1], bench_now_ns() - t0);
		sl_client_free(text);
		t0 = bench_now_ns();
		if (sl_client_commit(
		        c, WL_TENANT, "probe-1", SL_EXPECT_ANY, &ev, 1, NULL)
		    != SL_OK)
			bench_die("commit: %s", sl_client_last_error(c));
		bench_lat_add(&lat[2], bench_now_ns() - t0);
	}
}

static void
report(const char *phase, bench_lat lat[3], double p99[3])
{
	for (int i = 0; i < 3; i++) {
		bench_outf((double) bench_lat_pct(&lat[i], 50) / 1e3,
		    "%s.%s.p50_us", phase, op_names[i]);
		p99[i] = (double) bench_lat_pct(&lat[i], 99) / 1e3;
		bench_outf(p99[i], "%s.%s.p99_us", phase, op_names[i]);
		bench_outf(
		    (double) lat[i].n, "%s.%s.samples", phase, op_names[i]);
	}
}

static void
run(const opts *o)
{
	bench_daemon d;
	bench_lat    idle[3], loaded[3];
	double       p_idle[3], p_loaded[3];
	querier      q[MAX_QUERIERS];
	atomic_bool  stop = false;

	memset(idle, 0, sizeof(idle));
	memset(loaded, 0, sizeof(loaded));
	bench_rmrf(o->dir);
	bench_mkdirs(o->dir);
	daemon_init(&d, o->sluiced, o->dir, false);
	daemon_set_plugin(&d, o->plugin);
	daemon_start(&d);
	sl_client *c = daemon_client(&d);
	load_log(c, o->events);
	wait_caught_up(c);

	measure(c, o->seconds, idle);

	memset(q, 0, sizeof(q));
	for (int i = 0; i < o->queriers; i++) {
		q[i].url  = d.url;
		q[i].stop = &stop;
		if (pthread_create(&q[i].th, NULL, querier_main, &q[i]) != 0)
			bench_die("cannot start a querier thread");
	}
	/* let the slow lane fill */
	bench_sleep_ns(300000000);
	uint64_t t0 = bench_now_ns();
	measure(c, o->seconds, loaded);
	double took = (double) (bench_now_ns() - t0) / 1e9;
	atomic_store(&stop, true);
	uint64_t done = 0, busy = 0, failed = 0;
	for (int i = 0; i < o->queriers; i++) {
		pthread_join(q[i].th, NULL);
		done += q[i].done;
		busy += q[i].busy;
		failed += q[i].failed;
	}
	if (failed > 0)
		bench_die("%" PRIu64 " one-time queries failed", failed);

	report("idle", idle, p_idle);
	report("loaded", loaded, p_loaded);
	for (int i = 0; i < 3; i++)
		bench_outf(p_idle[i] > 0 ? p_loaded[i] / p_idle[i] : 0,
		    "%s.p99_ratio", op_names[i]);
	bench_out("loaded.queries_per_s", (double) done / took);
	bench_out("loaded.busy", (double) busy);
	bench_out("queriers", o->queriers);
	bench_out("events", (double) o->events);

	sl_client_close(c);
	daemon_stop(&d);
	for (int i = 0; i < 3; i++) {
		bench_lat_free(&idle[i]);
		bench_lat_free(&loaded[i]);
	}
	bench_rmrf(o->dir);
}

int
main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "sluiced", required_argument, NULL, 's' },
		{ "dir", required_argument, NULL, 'd' },
		{ "plugin", required_argument, NULL, 'p' },
		{ "events", required_argument, NULL, 'n' },
		{ "queriers", required_argument, NULL, 'q' },
		{ "seconds", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 },
	};
	opts o = { .events = 100000, .queriers = 8, .seconds = 2 };
	int  ch;

	if (argc < 2 || strcmp(argv[1], "run") != 0)
		bench_die("usage: bench_lanes run --sluiced PATH --dir DIR "
		          "--plugin SO [--events N] [--queriers K] "
		          "[--seconds T]");
	optind = 2;
	while ((ch = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
		switch (ch) {
		case 's':
			o.sluiced = optarg;
			break;
		case 'd':
			o.dir = optarg;
			break;
		case 'p':
			o.plugin = optarg;
			break;
		case 'n':
			o.events = strtoull(optarg, NULL, 10);
			break;
		case 'q':
			o.queriers = atoi(optarg);
			break;
		case 't':
			o.seconds = atof(optarg);
			break;
		default:
			bench_die("bad argument");
		}
	}
	if (o.sluiced == NULL || o.dir == NULL || o.plugin == NULL
	    || o.queriers < 1 || o.queriers > MAX_QUERIERS || o.events == 0)
		bench_die(
		    "bench_lanes run: --sluiced, --dir, --plugin needed");
	bench_handle_signals();
	run(&o);
	return 0;
}
