/*
 * Remote catch-up (docs/remote.md): how fast a remote projection catches up
 * on a log compared with the in-process plugin, on the same log in the
 * same run. One invocation measures, back to back on the log of --dir
 * (grown by `bench_sluice load`):
 *   - the Account Details plugin catching up from position 0;
 *   - the same projection as a remote client process (the
 *     remote_account_details example, on the C client library
 *     include/sluice/remote.h) speaking protocol 1 (an event per call) with
 *     remote.window 1, then with the daemon's default window (32) (keys
 *     w1, wdef);
 *   - the same client speaking protocol 2 (runs of events per call) with
 *     the default window (or --window) and remote.batch (--batch,
 *     default the daemon's 256) (key b);
 *   - with --host, the same plugin with `isolation: process`: run by a
 *     sluice-host child of sluiced (runtime/host/hostsup.h), which
 *     registers it over protocol 2 with the defaults, or --window and
 *     --batch (key h; its "client" CPU is the host's); with --protocol
 *     none, only the plugin and this row;
 * and prints "key value" lines: events/s of each, each remote one as a
 * ratio to the plugin's, and CPU per event of sluiced and of the client.
 * --protocol 1 or 2 runs only that protocol's rows, none neither.
 *
 *   bench_remote catchup --sluiced PATH --dir DIR --plugin SO --client PATH
 *                        [--sync 0|1] [--protocol 1|2|none] [--batch N]
 *                        [--window N] [--rm-batch N] [--host]
 * --rm-batch sets processing.batch (events per read model transaction)
 * for every row.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include <sluice/client.h>

#include "common.h"
#include "daemon.h"
#include "workload.h"

/* The example's projection name (client/remote_account_details.c). */
#define REMOTE_NAME "remote_account_details"

typedef struct opts {
	const char *sluiced;
	const char *dir;
	const char *plugin;
	const char *client;
	int         sync;
	int         protocol; /* 0: both */
	int         batch;    /* protocol 2's remote.batch; 0: default */
	int         window;   /* remote.window of protocol 2 and the host */
	int         rm_batch; /* processing.batch; 0: default */
	bool        host;     /* also the plugin under isolation: process */
} opts;

/* One catch-up's figures. */
typedef struct result {
	uint64_t events;
	double   seconds;
	double   daemon_cpu_s;
	double   client_cpu_s;
	uint64_t models;
	int      window;        /* remote: the window status reports */
	int      batch;         /* remote: the batch status reports */
	int      in_flight_max; /* remote: most calls in flight status saw */
	uint64_t calls;         /* remote: calls made (status) */
	uint64_t failed_calls;  /* remote: calls that failed whole */
} result;

/* Count the read models of projection by paging through get_all. */
static uint64_t
count_models(sl_client *c, const char *projection)
{
	uint64_t n     = 0;
	char    *after = NULL;
	for (;;) {
		sl_read_models m;
		if (sl_client_get_all(
		        c, WL_TENANT, projection, after, 1000, &m)
		    != SL_OK)
			bench_die("get_all %s: %s", projection,
			    sl_client_last_error(c));
		n += m.n_items;
		free(after);
		after     = m.n_items > 0 ? strdup(m.items[m.n_items - 1].key)
		                          : NULL;
		bool more = m.more;
		sl_read_models_free(&m);
		if (!more || after == NULL)
			break;
	}
	free(after);
	return n;
}

/*
 * The processor of name in the status: whether it is at the head (dies if
 * it fails: a benchmark must not time retries); for a remote one, the
 * registration's window and the most calls in flight seen so far.
 */
static bool
caught_up(sl_client *c, const char *name, result *res)
{
	char *text = NULL;
	if (sl_client_status(c, &text) != SL_OK)
		bench_die("status: %s", sl_client_last_error(c));
	json_error_t jerr;
	json_t      *st = json_loads(text, 0, &jerr);
	sl_client_free(text);
	if (st == NULL)
		bench_die("status: bad JSON: %s", jerr.text);
	json_int_t head = json_integer_value(json_object_get(st, "head"));
	json_t    *p, *r;
	size_t     i;
	bool       done = false;
	json_array_foreach(json_object_get(st, "processors"), i, p)
	{
		const char *n = json_string_value(json_object_get(p, "name"));
		if (n == NULL || strcmp(n, name) != 0)
			continue;
		const char *s = json_string_value(json_object_get(p, "state"));
		if (s != NULL
		    && (strcmp(s, "failing") == 0 || strcmp(s, "failed") == 0))
			bench_die("catch-up of %s: processor %s: %s", name, s,
			    json_string_value(json_object_get(p, "reason")));
		done = json_integer_value(json_object_get(p, "position"))
		    >= head;
	}
	json_array_foreach(json_object_get(st, "remotes"), i, r)
	{
		const char *n = json_string_value(json_object_get(r, "name"));
		if (n == NULL || strcmp(n, name) != 0)
			continue;
		res->window
		    = (int) json_integer_value(json_object_get(r, "window"));
		res->batch
		    = (int) json_integer_value(json_object_get(r, "batch"));
		int in_flight = (int) json_integer_value(
		    json_object_get(r, "in_flight"));
		if (in_flight > res->in_flight_max)
			res->in_flight_max = in_flight;
		res->calls = (uint64_t) json_integer_value(
		    json_object_get(r, "calls"));
		res->failed_calls = (uint64_t) json_integer_value(
		    json_object_get(r, "failed_calls"));
	}
	json_decref(st);
	return done;
}

/*
 * Time a catch-up from position 0 into an empty read model store: from
 * starting sluiced (and, for a remote one, the client right after) until
 * status shows the processor at the head. window < 0: the plugin; 0: a
 * remote client with the daemon's default window; else remote.window.
 * protocol: the client's (1 or 2); batch: remote.batch (0: default).
 */
/* The pid of the first plugin host in status (0: none). */
static pid_t
host_pid(sl_client *c)
{
	char *text = NULL;
	if (sl_client_status(c, &text) != SL_OK)
		bench_die("status: %s", sl_client_last_error(c));
	json_t *st = json_loads(text, 0, NULL);
	sl_client_free(text);
	pid_t pid = (pid_t) json_integer_value(json_object_get(
	    json_array_get(json_object_get(st, "hosts"), 0), "pid"));
	json_decref(st);
	return pid;
}

/* hosted: the plugin under isolation: process (protocol is then not
 * used; window and batch > 0 go to remote: as for a client) */
static void
measure_ex(const opts *o, int window, int protocol, int batch, bool hosted,
    result *res)
{
	bench_daemon d;
	char         rm[1200], clog[1200], proto[16];
	bool         remote = window >= 0 && !hosted;
	memset(res, 0, sizeof(*res));
	daemon_init_batch(&d, o->sluiced, o->dir, o->sync != 0, o->rm_batch);
	if (hosted) {
		FILE *f = fopen(d.cfg, "a");
		if (f == NULL
		    || fprintf(f, "plugins:\n  - file: account_details.so\n"
		                  "    isolation: process\n")
		        < 0
		    || fclose(f) != 0)
			bench_die("append to %s failed", d.cfg);
	}
	if (window > 0 || batch > 0) {
		/* daemon.c writes top-level keys only: a section appended
		 * after them is the file's own. */
		FILE *f = fopen(d.cfg, "a");
		if (f == NULL || fprintf(f, "remote:\n") < 0
		    || (window > 0 && fprintf(f, "  window: %d\n", window) < 0)
		    || (batch > 0 && fprintf(f, "  batch: %d\n", batch) < 0)
		    || fclose(f) != 0)
			bench_die("append to %s failed", d.cfg);
	}
	snprintf(proto, sizeof(proto), "%d", protocol);
	snprintf(rm, sizeof(rm), "%s/data/tenants", o->dir);
	bench_rmrf(rm);
	daemon_set_plugin(&d, remote ? NULL : o->plugin);
	snprintf(clog, sizeof(clog), "%s/client.log", o->dir);

	uint64_t t0 = bench_now_ns();
	daemon_start(&d);
	pid_t client = -1;
	if (remote) {
		char *argv[] = { (char *) o->client, "--url", d.url,
			"--protocol", proto, "--quiet", NULL };
		client       = bench_spawn(argv, clog);
	}
	sl_client  *c    = daemon_client(&d);
	const char *name = remote ? REMOTE_NAME : WL_PROJECTION;
	for (;;) {
		if (caught_up(c, name, res))
			break;
		if (client > 0 && waitpid(client, NULL, WNOHANG) == client) {
			bench_untrack(client);
			bench_die("the remote client exited; see %s", clog);
		}
		bench_sleep_ns(2000000);
	}
	uint64_t t1       = bench_now_ns();
	res->seconds      = (double) (t1 - t0) / 1e9;
	res->daemon_cpu_s = (double) bench_proc_cpu_ns(d.pid) / 1e9;
	if (client > 0)
		res->client_cpu_s = (double) bench_proc_cpu_ns(client) / 1e9;
	pid_t hp = hosted ? host_pid(c) : 0;
	if (hp > 0)
		res->client_cpu_s = (double) bench_proc_cpu_ns(hp) / 1e9;
	else if (hosted)
		bench_die("no plugin host in status; see %s", d.log);
	daemon_status st;
	daemon_get_status(c, &st);
	res->events = st.head;
	res->models = count_models(c, name);
	sl_client_close(c);
	if (client > 0) {
		kill(client, SIGTERM);
		int cst = bench_reap(client, 10000);
		if (cst == -1 || !WIFEXITED(cst) || WEXITSTATUS(cst) != 0)
			bench_die("the remote client did not stop cleanly "
			          "(status %d); see %s",
			    cst, clog);
	}
	daemon_stop(&d);
	daemon_set_plugin(&d, NULL);
}

static void
measure(const opts *o, int window, int protocol, int batch, result *res)
{
	measure_ex(o, window, protocol, batch, false, res);
}

static void
print_remote(const char *key, const result *r, const result *plugin)
{
	double eps  = (double) r->events / r->seconds;
	double peps = (double) plugin->events / plugin->seconds;
	bench_outf((double) r->window, "%s.window", key);
	bench_outf((double) r->batch, "%s.batch", key);
	bench_outf((double) r->in_flight_max, "%s.in_flight_max", key);
	bench_outf((double) r->calls, "%s.calls", key);
	bench_outf((double) r->failed_calls, "%s.failed_calls", key);
	bench_outf(r->seconds, "%s.seconds", key);
	bench_outf(eps, "%s.eps", key);
	bench_outf(eps / peps, "%s.ratio", key);
	bench_outf(r->daemon_cpu_s * 1e6 / (double) r->events,
	    "%s.daemon_cpu_us_per_event", key);
	bench_outf(r->client_cpu_s * 1e6 / (double) r->events,
	    "%s.client_cpu_us_per_event", key);
}

static int
cmd_catchup(const opts *o)
{
	result plugin, w1, wdef, bt, ht;
	bool   v1 = o->protocol == 0 || o->protocol == 1;
	bool   v2 = o->protocol == 0 || o->protocol == 2;
	measure(o, -1, 0, 0, &plugin);
	if (o->host) {
		measure_ex(o, o->window, 2, o->batch, true, &ht);
		if (ht.models != plugin.models || ht.events != plugin.events)
			bench_die("read models differ: plugin %llu, host %llu",
			    (unsigned long long) plugin.models,
			    (unsigned long long) ht.models);
	}
	if (v1) {
		measure(o, 1, 1, 0, &w1);
		measure(o, 0, 1, 0, &wdef);
		if (w1.window != 1 || w1.batch != 1)
			bench_die("remote.window 1 not in effect (status says "
			          "window %d, batch %d)",
			    w1.window, w1.batch);
	}
	if (v2) {
		measure(o, o->window, 2, o->batch, &bt);
		if (o->batch > 0 && bt.batch != o->batch)
			bench_die("remote.batch %d not in effect (status says "
			          "%d)",
			    o->batch, bt.batch);
	}
	/* The same log gives the same read models, as many. */
	if ((v1
	        && (w1.models != plugin.models || wdef.models != plugin.models
	            || w1.events != plugin.events
	            || wdef.events != plugin.events))
	    || (v2
	        && (bt.models != plugin.models || bt.events != plugin.events)))
		bench_die("read models differ: plugin %llu, window 1 %llu, "
		          "default %llu, protocol 2 %llu",
		    (unsigned long long) plugin.models,
		    (unsigned long long) (v1 ? w1.models : 0),
		    (unsigned long long) (v1 ? wdef.models : 0),
		    (unsigned long long) (v2 ? bt.models : 0));
	bench_out("events", (double) plugin.events);
	bench_out("models", (double) plugin.models);
	bench_out("plugin.seconds", plugin.seconds);
	bench_out("plugin.eps", (double) plugin.events / plugin.seconds);
	bench_out("plugin.daemon_cpu_us_per_event",
	    plugin.daemon_cpu_s * 1e6 / (double) plugin.events);
	if (v1) {
		print_remote("w1", &w1, &plugin);
		print_remote("wdef", &wdef, &plugin);
	}
	if (v2)
		print_remote("b", &bt, &plugin);
	if (o->host)
		print_remote("h", &ht, &plugin);
	return 0;
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: bench_remote catchup --sluiced PATH --dir DIR --plugin "
	    "SO\n"
	    "                            --client PATH [--sync 0|1]\n"
	    "                            [--protocol 1|2|none] [--batch N] "
	    "[--window N]\n"
	    "                            [--rm-batch N] [--host]\n"
	    "DIR holds a log grown by `bench_sluice load`; --client is the\n"
	    "remote_account_details example. Prints \"key value\" lines.\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "catchup") != 0)
		usage();
	opts o = { .sync = 1 };
	enum {
		O_SLUICED = 256,
		O_DIR,
		O_PLUGIN,
		O_CLIENT,
		O_SYNC,
		O_PROTOCOL,
		O_BATCH,
		O_WINDOW,
		O_RM_BATCH,
		O_HOST
	};
	static const struct option lo[] = {
		{ "sluiced", required_argument, NULL, O_SLUICED },
		{ "dir", required_argument, NULL, O_DIR },
		{ "plugin", required_argument, NULL, O_PLUGIN },
		{ "client", required_argument, NULL, O_CLIENT },
		{ "sync", required_argument, NULL, O_SYNC },
		{ "protocol", required_argument, NULL, O_PROTOCOL },
		{ "batch", required_argument, NULL, O_BATCH },
		{ "window", required_argument, NULL, O_WINDOW },
		{ "rm-batch", required_argument, NULL, O_RM_BATCH },
		{ "host", no_argument, NULL, O_HOST },
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
		case O_CLIENT:
			o.client = optarg;
			break;
		case O_SYNC:
			o.sync = atoi(optarg);
			break;
		case O_PROTOCOL:
			o.protocol = strcmp(optarg, "none") == 0 ? -1
			                                         : atoi(optarg);
			break;
		case O_BATCH:
			o.batch = atoi(optarg);
			break;
		case O_WINDOW:
			o.window = atoi(optarg);
			break;
		case O_RM_BATCH:
			o.rm_batch = atoi(optarg);
			break;
		case O_HOST:
			o.host = true;
			break;
		default:
			usage();
		}
	}
	if (o.sluiced == NULL || o.dir == NULL || o.plugin == NULL
	    || o.client == NULL)
		usage();
	signal(SIGPIPE, SIG_IGN);
	bench_handle_signals();
	return cmd_catchup(&o);
}
