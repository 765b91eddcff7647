/*
 * Emitting projections (issue 8, docs/projections.md) through the real
 * daemon: sluiced as a process, the client library, the log of
 * `bench_sluice load`. Every figure is printed as "key value" lines that
 * bench/run.sh collects.
 *
 *   catchup  on a copy of the log, back to back: the read-model projection
 *            account_details (the baseline of bench_sluice catchup), the
 *            five system projections (start_standard_projections: true),
 *            then the emitting plugin bench_emitter (a link per event, an
 *            emitted event per 10); each timed from starting sluiced until
 *            status shows it past the log's last event; events/s, links
 *            (and emitted events) per second, ratios to account_details
 *   append   1 client, batch B, for T seconds, on an empty log under
 *            several configurations that differ only in what owns
 *            streams and runs (the ownership check of client commits)
 *
 *   bench_emit catchup --sluiced PATH --dir DIR --plugin SO --emitter SO
 *                      [--sync 0|1] [--extra-config YAML] [--subscriber]
 *            (YAML: top-level keys appended to the generated
 *            resources.yaml of the emitting runs, e.g. projection_settings;
 *            --subscriber: a sub0 socket of every topic follows the live
 *            feed through each emitting run, taking and dropping its
 *            messages: the feed's cost when somebody listens, which the
 *            daemon does not pay while nobody does)
 *   bench_emit append --sluiced PATH --dir DIR --emitter SO --batch B
 *                     --seconds T [--sync 0|1] [--warmup EVENTS]
 *                     [--configs a,b,...]
 */
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>
#include <nng/nng.h>
#include <nng/protocol/pubsub0/sub.h>
#include <pthread.h>

#include <sluice/client.h>

#include "common.h"
#include "daemon.h"
#include "nngclose.h"
#include "workload.h"

#define EMITTER_NAME "bench_emitter"
#define N_SYSTEM     5

typedef struct opts {
	const char *sluiced;
	const char *dir;
	const char *plugin;
	const char *emitter;
	const char *configs;
	const char *extra; /* catchup: appended to resources.yaml (emitting) */
	int         sync;
	bool        subscriber; /* catchup: follow the feed in emitting runs */
	int         batch;
	double      seconds;
	uint64_t    warmup;
} opts;

/* Append text to the generated resources.yaml: daemon.c writes top-level
 * keys only, so a top-level key appended after them is the file's own. */
static void
cfg_append(const bench_daemon *d, const char *text)
{
	FILE *f = fopen(d->cfg, "a");
	if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0)
		bench_die("append to %s failed", d->cfg);
}

/* Run a command (argv[0] a path) to its end; dies if it fails. */
static void
run_cmd(char *const argv[])
{
	pid_t pid = bench_spawn(argv, NULL);
	int   st  = bench_reap(pid, 600000);
	if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		bench_die("%s failed (status %d)", argv[0], st);
}

/* Copy a plugin into d's plugin directory under its own file name. */
static void
put_plugin(const bench_daemon *d, const char *so)
{
	char *argv[]
	    = { "/bin/cp", (char *) so, (char *) d->plugin_dir, NULL };
	run_cmd(argv);
}

/*
 * A fresh run directory for one catch-up: run/data/events a copy of the
 * log in dir (as `bench_sluice load` left it, never written by a
 * projection), no read models, no plugin.
 */
static void
fresh_copy(const char *dir, const char *run)
{
	char src[1300], data[1300];
	bench_rmrf(run);
	snprintf(data, sizeof(data), "%s/data", run);
	bench_mkdirs(data);
	snprintf(src, sizeof(src), "%s/data/events", dir);
	char *argv[] = { "/bin/cp", "-a", src, data, NULL };
	run_cmd(argv);
}

static json_t *
get_status(sl_client *c)
{
	char *text = NULL;
	if (sl_client_status(c, &text) != SL_OK)
		bench_die("status: %s", sl_client_last_error(c));
	json_error_t jerr;
	json_t      *st = json_loads(text, 0, &jerr);
	sl_client_free(text);
	if (st == NULL)
		bench_die("status: bad JSON: %s", jerr.text);
	return st;
}

static uint64_t
ju64(json_t *o, const char *k)
{
	return (uint64_t) json_integer_value(json_object_get(o, k));
}

/* What to wait for in a catch-up. */
typedef enum which { W_READ_MODEL, W_SYSTEM, W_EMITTER } which;

/* One catch-up's figures. */
typedef struct result {
	uint64_t events;   /* the log's events before (the tenant's) */
	double   seconds;  /* from starting sluiced until caught up */
	double   cpu_s;    /* sluiced's CPU time over that */
	uint64_t emitted;  /* events the projection(s) wrote (links incl.) */
	uint64_t head_end; /* the log head once caught up */
} result;

/*
 * Whether what w names has handled every event below n0: a read-model
 * processor's position, or the committed checkpoint (`position`) of the
 * emitting run(s) of the tenant; dies on a failing or faulted one.
 */
static bool
caught_up(sl_client *c, which w, uint64_t n0, result *res)
{
	json_t *st = get_status(c);
	json_t *p;
	size_t  i;
	int     done = 0, seen = 0;
	if (w == W_READ_MODEL) {
		json_array_foreach(json_object_get(st, "processors"), i, p)
		{
			const char *n
			    = json_string_value(json_object_get(p, "name"));
			if (n == NULL || strcmp(n, WL_PROJECTION) != 0)
				continue;
			const char *s
			    = json_string_value(json_object_get(p, "state"));
			if (s != NULL && strcmp(s, "failing") == 0)
				bench_die("catch-up: %s failing: %s", n,
				    json_string_value(
				        json_object_get(p, "reason")));
			seen++;
			done += ju64(p, "position") >= n0;
		}
		json_decref(st);
		return seen == 1 && done == 1;
	}
	uint64_t emitted = 0;
	json_array_foreach(json_object_get(st, "emitting_projections"), i, p)
	{
		const char *t
		    = json_string_value(json_object_get(p, "tenant"));
		const char *n = json_string_value(json_object_get(p, "name"));
		bool        sys = json_is_true(json_object_get(p, "system"));
		if (t == NULL || strcmp(t, WL_TENANT) != 0 || n == NULL)
			continue;
		if (w == W_SYSTEM ? !sys : strcmp(n, EMITTER_NAME) != 0)
			continue;
		const char *s
		    = json_string_value(json_object_get(p, "status"));
		if (s != NULL && strcmp(s, "faulted") == 0)
			bench_die("catch-up: %s faulted: %s", n,
			    json_string_value(
			        json_object_get(p, "status_reason")));
		if (s != NULL && strcmp(s, "stopped") == 0)
			bench_die("catch-up: %s is stopped", n);
		seen++;
		done += ju64(p, "position") >= n0;
		emitted += ju64(p, "emitted");
	}
	json_decref(st);
	res->emitted = emitted;
	int want     = w == W_SYSTEM ? N_SYSTEM : 1;
	return seen == want && done == want;
}

/* A subscriber of every topic on the daemon's feed, draining it on a
 * thread of its own until stopped. */
typedef struct feed_sub {
	nng_socket sock;
	pthread_t  thr;
	uint64_t   msgs; /* messages taken (the thread's until joined) */
	atomic_bool stop;
} feed_sub;

static void *
feed_sub_main(void *arg)
{
	feed_sub *f = arg;
	while (!atomic_load(&f->stop)) {
		nng_msg *m;
		if (nng_recvmsg(f->sock, &m, 0) == 0) {
			f->msgs++;
			nng_msg_free(m);
		}
	}
	return NULL;
}

/* Dial the feed of the daemon in dir (it redials until the daemon
 * listens) and start draining it. */
static void
feed_sub_start(feed_sub *f, const char *dir)
{
	char url[1300];
	snprintf(url, sizeof(url), "ipc://%s/pub.ipc", dir);
	memset(f, 0, sizeof(*f));
	if (nng_sub0_open(&f->sock) != 0
	    || nng_socket_set(f->sock, NNG_OPT_SUB_SUBSCRIBE, "", 0) != 0)
		bench_die("--subscriber: cannot open a sub0 socket");
	nng_socket_set_ms(f->sock, NNG_OPT_RECVTIMEO, 100);
	nng_socket_set_int(f->sock, NNG_OPT_RECVBUF, 1024);
	nng_socket_set_ms(f->sock, NNG_OPT_RECONNMINT, 1);
	nng_socket_set_ms(f->sock, NNG_OPT_RECONNMAXT, 5);
	if (nng_dial(f->sock, url, NULL, NNG_FLAG_NONBLOCK) != 0
	    || pthread_create(&f->thr, NULL, feed_sub_main, f) != 0)
		bench_die("--subscriber: cannot follow %s", url);
}

static uint64_t
feed_sub_stop(feed_sub *f)
{
	atomic_store(&f->stop, true);
	pthread_join(f->thr, NULL);
	/* NNG 1.5.2 can hang in a close (proto/nngclose.h) */
	sl_nng_close_bounded(f->sock, 1000);
	return f->msgs;
}

/*
 * Time one catch-up on a fresh copy of the log: from starting sluiced
 * until status shows it past event n0 - 1 (n0 0: the log head as status
 * first reports it, for the read-model run, which never writes the log).
 */
static void
measure(const opts *o, which w, uint64_t n0, result *res)
{
	bench_daemon d;
	char         run[1200];
	memset(res, 0, sizeof(*res));
	snprintf(run, sizeof(run), "%s.run", o->dir);
	fresh_copy(o->dir, run);
	daemon_init(&d, o->sluiced, run, o->sync != 0);
	if (w == W_SYSTEM)
		cfg_append(&d, "start_standard_projections: true\n");
	if (w != W_READ_MODEL && o->extra != NULL)
		cfg_append(&d, o->extra);
	if (w == W_READ_MODEL)
		put_plugin(&d, o->plugin);
	if (w == W_EMITTER)
		put_plugin(&d, o->emitter);

	feed_sub sub;
	bool     follow = o->subscriber && w != W_READ_MODEL;
	if (follow)
		feed_sub_start(&sub, run);
	uint64_t t0 = bench_now_ns();
	daemon_start(&d);
	sl_client *c = daemon_client(&d);
	if (n0 == 0) {
		if (w != W_READ_MODEL)
			bench_die("measure: no event count");
		json_t *st = get_status(c);
		n0         = ju64(st, "head");
		json_decref(st);
	}
	while (!caught_up(c, w, n0, res))
		bench_sleep_ns(2000000);
	uint64_t t1   = bench_now_ns();
	res->seconds  = (double) (t1 - t0) / 1e9;
	res->cpu_s    = (double) bench_proc_cpu_ns(d.pid) / 1e9;
	res->events   = n0;
	json_t *st    = get_status(c);
	res->head_end = ju64(st, "head");
	json_decref(st);
	sl_client_close(c);
	daemon_stop(&d);
	if (follow && feed_sub_stop(&sub) == 0)
		bench_die("--subscriber: no message from the feed");
	bench_rmrf(run);
}

static void
print_result(const char *key, const result *r, const result *base)
{
	double eps = (double) r->events / r->seconds;
	bench_outf(r->seconds, "%s.seconds", key);
	bench_outf(eps, "%s.eps", key);
	bench_outf(r->cpu_s * 100.0 / r->seconds, "%s.cpu_pct", key);
	/* Less sensitive to a busy machine than the wall time. */
	bench_outf(
	    r->cpu_s * 1e6 / (double) r->events, "%s.cpu_us_per_event", key);
	if (base == NULL)
		return;
	bench_outf(
	    eps / ((double) base->events / base->seconds), "%s.ratio", key);
	bench_outf((double) r->emitted, "%s.emitted", key);
	bench_outf((double) r->emitted / r->seconds, "%s.emitted_per_s", key);
}

static int
cmd_catchup(const opts *o)
{
	result ad, sys, em;
	measure(o, W_READ_MODEL, 0, &ad);
	measure(o, W_SYSTEM, ad.events, &sys);
	measure(o, W_EMITTER, ad.events, &em);
	/* Every write of the system runs is a link; the head moved by as
	 * many (nothing else writes), which checks the status counters. */
	if (sys.head_end - sys.events != sys.emitted
	    || em.head_end - em.events != em.emitted)
		bench_die("emitted counts differ from the log: system %" PRIu64
		          " vs %" PRIu64 ", emitter %" PRIu64 " vs %" PRIu64,
		    sys.emitted, sys.head_end - sys.events, em.emitted,
		    em.head_end - em.events);
	bench_out("events", (double) ad.events);
	print_result("ad", &ad, NULL);
	print_result("sys", &sys, &ad);
	print_result("em", &em, &ad);
	return 0;
}

/* ---- append: the ownership check of client commits ---- */

/*
 * The configurations (each on an empty log, no read-model plugin):
 *   none     run_projections: none; the system projections' claims are
 *            made all the same (always, at load), nothing runs
 *   claims   none + bench_emitter loaded: its two streams and its result
 *            prefix claimed too; nothing runs
 *   stopped  the default run_projections: all, system projections
 *            loaded and stopped (start_standard_projections: false),
 *            bench_emitter loaded with mode one_time (claimed, not run)
 *   base     the generated file as it is (also for builds before issue 8)
 */
static void
config(bench_daemon *d, const opts *o, const char *name)
{
	if (strcmp(name, "none") == 0) {
		cfg_append(d, "run_projections: none\n");
	} else if (strcmp(name, "claims") == 0) {
		cfg_append(d, "run_projections: none\n");
		put_plugin(d, o->emitter);
	} else if (strcmp(name, "stopped") == 0) {
		cfg_append(d,
		    "run_projections: all\n"
		    "start_standard_projections: false\n"
		    "projections:\n"
		    "  - name: " EMITTER_NAME "\n"
		    "    mode: one_time\n");
		put_plugin(d, o->emitter);
	} else if (strcmp(name, "base") != 0) {
		bench_die("unknown configuration '%s'", name);
	}
}

/* @return the events/s. */
static double
append_one(const opts *o, const char *name)
{
	bench_daemon d;
	char         run[1200];
	snprintf(run, sizeof(run), "%s/emit-append", o->dir);
	bench_rmrf(run);
	daemon_init(&d, o->sluiced, run, o->sync != 0);
	config(&d, o, name);
	daemon_start(&d);
	sl_client *c = daemon_client(&d);
	if (strcmp(name, "claims") == 0 || strcmp(name, "stopped") == 0) {
		/* The plugin's claim is in effect. */
		sl_new_event e  = { .type = "Probe", .content_json = "{}" };
		int          rc = sl_client_commit(
		             c, WL_TENANT, "bench-summary", SL_EXPECT_ANY, &e, 1, NULL);
		if (rc != SL_EOWNED)
			bench_die("%s: a commit to bench-summary gave %s, not "
			          "EOWNED",
			    name, sl_errname(rc));
	}

	enum { RING = 256 };
	static char  content[RING][512];
	char         stream[64];
	sl_new_event ev[100];
	int          b = o->batch;
	if (b < 1 || b > 100)
		bench_die("--batch: 1..100");
	for (int i = 0; i < RING; i++) {
		snprintf(stream, sizeof(stream), "w0-s%d", i % 64);
		wl_append_content(
		    content[i], sizeof(content[i]), stream, (uint64_t) i);
	}
	/* Warm-up, not timed: the readers of stopped projections read up to
	 * pending_events_threshold (5000) new events each, then wait. */
	uint64_t k = 0;
	for (uint64_t w = 0; w < o->warmup; w += (uint64_t) b, k++) {
		snprintf(stream, sizeof(stream), "w0-s%" PRIu64, k % 64);
		for (int i = 0; i < b; i++)
			ev[i] = (sl_new_event) { .type = WL_APPEND_TYPE,
				.content_json
				= content[(k + (uint64_t) i) % RING] };
		int rc = sl_client_commit(
		    c, WL_TENANT, stream, SL_EXPECT_ANY, ev, (size_t) b, NULL);
		if (rc != SL_OK)
			bench_die("commit: %s: %s", sl_errname(rc),
			    sl_client_last_error(c));
	}
	bench_lat lat    = { 0 };
	uint64_t  events = 0, ops = 0;
	long long dcpu0 = bench_proc_cpu_ns(d.pid);
	uint64_t  start = bench_now_ns();
	uint64_t  end   = start + (uint64_t) (o->seconds * 1e9);
	uint64_t  now   = start;
	while (now < end) {
		snprintf(stream, sizeof(stream), "w0-s%" PRIu64, k % 64);
		for (int i = 0; i < b; i++)
			ev[i] = (sl_new_event) { .type = WL_APPEND_TYPE,
				.content_json
				= content[(k + (uint64_t) i) % RING] };
		int rc = sl_client_commit(
		    c, WL_TENANT, stream, SL_EXPECT_ANY, ev, (size_t) b, NULL);
		uint64_t t = bench_now_ns();
		if (rc != SL_OK)
			bench_die("commit: %s: %s", sl_errname(rc),
			    sl_client_last_error(c));
		bench_lat_add(&lat, t - now);
		events += (uint64_t) b;
		ops++;
		k++;
		now = t;
	}
	double secs = (double) (now - start) / 1e9;
	double dcpu = (double) (bench_proc_cpu_ns(d.pid) - dcpu0);
	sl_client_close(c);
	daemon_stop(&d);
	bench_outf((double) events / secs, "%s.eps", name);
	bench_outf(
	    dcpu / 1e3 / (double) ops, "%s.daemon_cpu_us_per_commit", name);
	bench_outf((double) bench_lat_pct(&lat, 50) / 1e3, "%s.p50_us", name);
	bench_lat_free(&lat);
	bench_rmrf(run);
	return (double) events / secs;
}

static int
cmd_append(const opts *o)
{
	char  *list = strdup(o->configs), *save = NULL;
	double first = 0;
	/* Each configuration's events/s over the first one's, this run. */
	for (char *n = strtok_r(list, ",", &save); n != NULL;
	     n       = strtok_r(NULL, ",", &save)) {
		double eps = append_one(o, n);
		if (first == 0)
			first = eps;
		else
			bench_outf(eps / first, "%s.ratio", n);
	}
	free(list);
	return 0;
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: bench_emit catchup --sluiced PATH --dir DIR --plugin SO "
	    "--emitter SO [--sync 0|1]\n"
	    "                         [--extra-config YAML] [--subscriber]\n"
	    "       bench_emit append --sluiced PATH --dir DIR --emitter SO "
	    "--batch B --seconds T\n"
	    "                         [--sync 0|1] [--warmup EVENTS] "
	    "[--configs none,claims,stopped,base]\n"
	    "catchup: DIR holds a log grown by `bench_sluice load` (copied, "
	    "never written).\nPrints \"key value\" lines.\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	if (argc < 2)
		usage();
	bool catchup = strcmp(argv[1], "catchup") == 0;
	if (!catchup && strcmp(argv[1], "append") != 0)
		usage();
	opts o = { .sync = catchup ? 1 : 0,
		.batch   = 1,
		.seconds = 2,
		.configs = "none,claims,stopped" };
	enum {
		O_SLUICED = 256,
		O_DIR,
		O_PLUGIN,
		O_EMITTER,
		O_SYNC,
		O_BATCH,
		O_SECONDS,
		O_CONFIGS,
		O_WARMUP,
		O_EXTRA,
		O_SUBSCRIBER
	};
	static const struct option lo[] = {
		{ "sluiced", required_argument, NULL, O_SLUICED },
		{ "dir", required_argument, NULL, O_DIR },
		{ "plugin", required_argument, NULL, O_PLUGIN },
		{ "emitter", required_argument, NULL, O_EMITTER },
		{ "sync", required_argument, NULL, O_SYNC },
		{ "batch", required_argument, NULL, O_BATCH },
		{ "seconds", required_argument, NULL, O_SECONDS },
		{ "configs", required_argument, NULL, O_CONFIGS },
		{ "warmup", required_argument, NULL, O_WARMUP },
		{ "extra-config", required_argument, NULL, O_EXTRA },
		{ "subscriber", no_argument, NULL, O_SUBSCRIBER },
		{ NULL, 0, NULL, 0 },
	};
	optind = 2;
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
		case O_EMITTER:
			o.emitter = optarg;
			break;
		case O_SYNC:
			o.sync = atoi(optarg);
			break;
		case O_BATCH:
			o.batch = atoi(optarg);
			break;
		case O_SECONDS:
			o.seconds = atof(optarg);
			break;
		case O_CONFIGS:
			o.configs = optarg;
			break;
		case O_EXTRA:
			o.extra = optarg;
			break;
		case O_SUBSCRIBER:
			o.subscriber = true;
			break;
		case O_WARMUP:
			o.warmup = strtoull(optarg, NULL, 10);
			break;
		default:
			usage();
		}
	}
	if (o.sluiced == NULL || o.dir == NULL
	    || (catchup && (o.plugin == NULL || o.emitter == NULL)))
		usage();
	if (!catchup && o.emitter == NULL
	    && (strstr(o.configs, "claims") != NULL
	        || strstr(o.configs, "stopped") != NULL))
		usage();
	signal(SIGPIPE, SIG_IGN);
	bench_handle_signals();
	return catchup ? cmd_catchup(&o) : cmd_append(&o);
}
