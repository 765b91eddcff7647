/*
 * What a selective projection costs against a whole-log one (issue 15,
 * ABI 1.3 sources), in process: the real processor over a log written by
 * `bench_sluice load` (the Account Details workload), each projection of
 * bench_sources_plugin.c folding it from 0 into a fresh read-model store;
 * the time from start to the head, per projection, "key value" lines.
 *
 *   bench_sources --log DIR/data/events --plugin SO --tmp DIR
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common.h"
#include "workload.h"
#include "plugins.h"
#include "projection.h"
#include "readmodels.h"
#include "store.h"

static const char *const names[] = { "whole_v12", "whole_v13",
	"category_cust", "one_stream" };

static const proj_def *
find(registry *r, const char *name)
{
	const proj_def *d = registry_find(r, name, strlen(name));
	if (d == NULL)
		bench_die("no projection %s in the plugin", name);
	return d;
}

int
main(int argc, char **argv)
{
	const char *log = NULL, *so = NULL, *tmp = NULL;
	int         c;
	static const struct option opts[] = { { "log", 1, NULL, 'l' },
		{ "plugin", 1, NULL, 'p' }, { "tmp", 1, NULL, 't' },
		{ NULL, 0, NULL, 0 } };
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'l')
			log = optarg;
		else if (c == 'p')
			so = optarg;
		else if (c == 't')
			tmp = optarg;
		else
			bench_die("usage: bench_sources --log DIR --plugin SO "
			          "--tmp DIR");
	}
	if (log == NULL || so == NULL || tmp == NULL)
		bench_die("usage: bench_sources --log DIR --plugin SO --tmp DIR");
	store    *s;
	registry *r;
	char      path[4200], err[512];
	if (store_open(log, (size_t) 8 << 30, false, &s) != SL_OK)
		bench_die("cannot open the log %s", log);
	snprintf(path, sizeof(path), "%s/plugin-cache", tmp);
	if (registry_create(path, &r) != SL_OK
	    || registry_load_file(r, so, err, sizeof(err)) != SL_OK)
		bench_die("cannot load %s: %s", so, err);
	uint64_t head = store_next_position(s);
	bench_out("events", (double) head);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		rmstore   *rm;
		processor *p;
		proc_status st;
		snprintf(path, sizeof(path), "%s/rm-%s", tmp, names[i]);
		mkdir(path, 0700);
		if (rm_open(path, (size_t) 4 << 30, false, &rm) != SL_OK)
			bench_die("cannot open %s", path);
		uint64_t t0 = bench_now_ns();
		if (proc_start(s, rm, WL_TENANT, find(r, names[i]), 1000, &p) != SL_OK)
			bench_die("cannot start %s", names[i]);
		for (;;) {
			proc_get_status(p, &st);
			if (st.position >= head)
				break;
			bench_sleep_ns(1000000);
		}
		double secs = (double) (bench_now_ns() - t0) / 1e9;
		proc_stop(p);
		rm_close(rm);
		bench_outf(secs, "%s.seconds", names[i]);
		bench_outf((double) head / secs, "%s.log_eps", names[i]);
		bench_outf((double) st.events_handled, "%s.handled", names[i]);
	}
	registry_destroy(r);
	store_close(s);
	return 0;
}
