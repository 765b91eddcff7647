/*
 * The live-feed workload: K subscriber processes follow the whole log
 * from position 0 (sl_client_subscribe: reads, then the NNG pub feed, with
 * gap filling) while A appender processes commit N events through the
 * daemon (sync off, batches of B). Each subscriber stops at the N-th
 * event; the figure is the rate at which events reach the subscribers,
 * beside the rate they were committed at (the feed's limit: it cannot
 * deliver what is not committed yet).
 *
 *   bench_live run --sluiced PATH --dir DIR --subscribers K --events N
 *                  [--appenders A] [--batch B]
 *
 * Prints "key value" lines for bench/run.sh.
 */
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sluice/client.h>
#include <sluice/subscribe.h>

#include "common.h"
#include "daemon.h"
#include "workload.h"

/* What a worker leaves in its result file. */
typedef struct live_result {
	uint64_t events;    /* committed, or delivered */
	uint64_t end_ns;    /* last commit acknowledged, or last delivery */
	uint64_t from_live; /* subscribers: delivered from the feed */
	uint64_t gap_fills; /* subscribers: gaps filled by reading */
} live_result;

static void
write_result(const char *path, const live_result *r)
{
	FILE *f = fopen(path, "wb");
	if (f == NULL || fwrite(r, sizeof(*r), 1, f) != 1 || fclose(f) != 0)
		bench_die("write %s", path);
}

static void
read_result(const char *path, live_result *r)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL || fread(r, sizeof(*r), 1, f) != 1)
		bench_die("read %s", path);
	fclose(f);
	unlink(path);
}

static sl_client *
open_url(const char *url)
{
	sl_client *c;
	if (sl_client_open(url, 60000, &c) != SL_OK)
		bench_die("connect %s: %s", url, sl_client_open_error());
	return c;
}

/* An appender: its share of the events, in batches, to its own streams. */
static int
cmd_append(
    const char *url, int index, uint64_t events, int batch, const char *out)
{
	sl_client *c = open_url(url);
	enum { RING = 64 };
	static char  content[RING][512];
	char         stream[64];
	sl_new_event ev[100];
	for (int i = 0; i < RING; i++) {
		snprintf(stream, sizeof(stream), "live%d-s%d", index, i % 16);
		wl_append_content(
		    content[i], sizeof(content[i]), stream, (uint64_t) i);
	}
	(void) bench_worker_ready();
	live_result r = { 0 };
	for (uint64_t k = 0; r.events < events; k++) {
		int n = (int) (events - r.events < (uint64_t) batch
		        ? events - r.events
		        : (uint64_t) batch);
		snprintf(
		    stream, sizeof(stream), "live%d-s%" PRIu64, index, k % 16);
		for (int i = 0; i < n; i++)
			ev[i] = (sl_new_event) { .type = WL_APPEND_TYPE,
				.content_json
				= content[(k + (uint64_t) i) % RING] };
		int rc = sl_client_commit(
		    c, WL_TENANT, stream, SL_EXPECT_ANY, ev, (size_t) n, NULL);
		if (rc != SL_OK)
			bench_die("commit: %s: %s", sl_errname(rc),
			    sl_client_last_error(c));
		r.events += (uint64_t) n;
	}
	r.end_ns = bench_now_ns();
	write_result(out, &r);
	sl_client_close(c);
	return 0;
}

typedef struct sub_state {
	uint64_t want, got, next_pos, end_ns;
} sub_state;

static int
on_event(void *arg, const sl_read_event *ev)
{
	sub_state *s = arg;
	/* Exactly once and in order is the feed's promise: check it. */
	if (ev->position != s->next_pos)
		bench_die("subscriber: position %" PRIu64
		          ", expected %" PRIu64,
		    ev->position, s->next_pos);
	s->next_pos++;
	if (++s->got < s->want)
		return 0;
	s->end_ns = bench_now_ns();
	return 1;
}

/* A subscriber: the whole log from 0 until the want-th event. */
static int
cmd_sub(const char *url, uint64_t want, const char *out)
{
	sl_client         *c     = open_url(url);
	sl_subscribe_stats stats = { 0 };
	sl_subscribe_opts  opts  = { .from = 0,
		  .idle_ms                 = 30000, /* fail, do not hang */
		  .stats                   = &stats };
	sub_state          s     = { .want = want };
	(void) bench_worker_ready();
	int rc = sl_client_subscribe(c, &opts, on_event, &s);
	if (rc != SL_OK || s.got != want)
		bench_die("subscribe: %s after %" PRIu64 " events: %s",
		    sl_errname(rc), s.got, sl_client_last_error(c));
	live_result r = { .events = s.got,
		.end_ns           = s.end_ns,
		.from_live        = stats.from_live,
		.gap_fills        = stats.gap_fills };
	write_result(out, &r);
	sl_client_close(c);
	return 0;
}

static int
cmd_run(const char *sluiced, const char *dir, int subs, int apps,
    uint64_t events, int batch)
{
	bench_daemon d;
	char         wdir[1100], url[1200], ev[32], share[32], b[16];
	char         sout[1200], aout[1200];
	snprintf(wdir, sizeof(wdir), "%s/live", dir);
	bench_rmrf(wdir);
	daemon_init(&d, sluiced, wdir, false);
	daemon_start(&d);
	snprintf(url, sizeof(url), "%s", d.url);
	snprintf(ev, sizeof(ev), "%" PRIu64, events);
	snprintf(share, sizeof(share), "%" PRIu64, events / (uint64_t) apps);
	snprintf(b, sizeof(b), "%d", batch);
	snprintf(sout, sizeof(sout), "%s/sub-%%i.res", wdir);
	snprintf(aout, sizeof(aout), "%s/app-%%i.res", wdir);

	/* Subscribers first, so that they are following when the appenders
	 * start; both groups start at the same moment. */
	char *sargv[] = { "bench_live", "sub", "--url", url, "--events", ev,
		"--index", "%i", "--out", sout, NULL };
	char *aargv[] = { "bench_live", "append", "--url", url, "--events",
		share, "--batch", b, "--index", "%i", "--out", aout, NULL };
	bench_workers ws, wa;
	bench_workers_spawn(&ws, (size_t) subs, sargv);
	bench_workers_spawn(&wa, (size_t) apps, aargv);
	uint64_t t0 = bench_now_ns() + 500000000;
	bench_workers_go_at(&ws, t0);
	bench_workers_go_at(&wa, t0);
	uint64_t start = wa.start_ns;
	bench_workers_wait(&wa);
	bench_workers_wait(&ws);
	daemon_stop(&d);

	live_result r;
	uint64_t app_end = 0, sub_end = 0, committed = 0, live = 0, fills = 0;
	double   slowest = 0;
	for (int i = 0; i < apps; i++) {
		char path[1300];
		snprintf(path, sizeof(path), "%s/app-%d.res", wdir, i);
		read_result(path, &r);
		committed += r.events;
		if (r.end_ns > app_end)
			app_end = r.end_ns;
	}
	if (committed != events)
		bench_die("appenders committed %" PRIu64 " of %" PRIu64,
		    committed, events);
	for (int i = 0; i < subs; i++) {
		char path[1300];
		snprintf(path, sizeof(path), "%s/sub-%d.res", wdir, i);
		read_result(path, &r);
		live += r.from_live;
		fills += r.gap_fills;
		if (r.end_ns > sub_end)
			sub_end = r.end_ns;
		double secs = (double) (r.end_ns - start) / 1e9;
		if (slowest == 0 || (double) events / secs < slowest)
			slowest = (double) events / secs;
	}
	double asecs = (double) (app_end - start) / 1e9;
	double ssecs = (double) (sub_end - start) / 1e9;
	/* Events per second reaching one subscriber (the slowest), and all
	 * of them together. */
	bench_out("eps", slowest);
	bench_out("total_eps", (double) events * subs / ssecs);
	bench_out("append_eps", (double) events / asecs);
	bench_out(
	    "live_pct", 100.0 * (double) live / (double) (events * subs));
	bench_out("gap_fills", (double) fills / subs);
	bench_rmrf(wdir);
	return 0;
}

int
main(int argc, char **argv)
{
	const char *sluiced = NULL, *dir = NULL, *url = NULL, *out = NULL;
	int         subs = 1, apps = 4, batch = 100, index = 0;
	uint64_t    events              = 100000;
	static const struct option lo[] = {
		{ "sluiced", required_argument, NULL, 'S' },
		{ "dir", required_argument, NULL, 'd' },
		{ "url", required_argument, NULL, 'u' },
		{ "out", required_argument, NULL, 'o' },
		{ "subscribers", required_argument, NULL, 's' },
		{ "appenders", required_argument, NULL, 'a' },
		{ "batch", required_argument, NULL, 'b' },
		{ "events", required_argument, NULL, 'e' },
		{ "index", required_argument, NULL, 'i' },
		{ NULL, 0, NULL, 0 },
	};
	if (argc < 2)
		goto usage;
	optind = 2;
	int ch;
	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (ch) {
		case 'S':
			sluiced = optarg;
			break;
		case 'd':
			dir = optarg;
			break;
		case 'u':
			url = optarg;
			break;
		case 'o':
			out = optarg;
			break;
		case 's':
			subs = atoi(optarg);
			break;
		case 'a':
			apps = atoi(optarg);
			break;
		case 'b':
			batch = atoi(optarg);
			break;
		case 'e':
			events = strtoull(optarg, NULL, 10);
			break;
		case 'i':
			index = atoi(optarg);
			break;
		default:
			goto usage;
		}
	}
	if (subs < 1 || subs > 64 || apps < 1 || apps > 64 || batch < 1
	    || batch > 100 || events < (uint64_t) apps)
		goto usage;
	signal(SIGPIPE, SIG_IGN);
	char path[1300];
	if (out != NULL && strstr(out, "%i") != NULL) {
		const char *p = strstr(out, "%i");
		snprintf(path, sizeof(path), "%.*s%d%s", (int) (p - out), out,
		    index, p + 2);
		out = path;
	}
	if (strcmp(argv[1], "append") == 0 && url != NULL && out != NULL)
		return cmd_append(url, index, events, batch, out);
	if (strcmp(argv[1], "sub") == 0 && url != NULL && out != NULL)
		return cmd_sub(url, events, out);
	if (strcmp(argv[1], "run") == 0 && sluiced != NULL && dir != NULL) {
		bench_handle_signals();
		/* Every appender commits the same share. */
		events -= events % (uint64_t) apps;
		return cmd_run(sluiced, dir, subs, apps, events, batch);
	}
usage:
	fprintf(stderr,
	    "usage: bench_live run --sluiced PATH --dir DIR --subscribers K "
	    "--events N [--appenders A] [--batch B]\n");
	return 2;
}
