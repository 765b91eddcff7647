/*
 * JavaScript projections in a plugin directory (issue 16): the registry
 * loads each *.js file with a private copy of js_host.so, shows a file that
 * does not load with file:line in its plugin info, reloads a changed file
 * (the definition follows the text: a new hash), skips the same bytes,
 * keeps the previous version running when a new one is broken, and the
 * loaded projection folds events through the processor. Then many: more
 * scripts than there are real-time signals (the CPU budget is one signal
 * for all, libsluice_jsbudget) load and fold side by side, a looping one
 * among them fails its key by the budget, also after copies of the host
 * were unloaded by reloads.
 */
#include <sys/stat.h>

#include "emitter.h"
#include "projection_testutil.h"

static void
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	CHECK(f != NULL);
	CHECK(fputs(text, f) >= 0);
	CHECK(fclose(f) == 0);
}

/* The plugin info of file name (basename); exits if none. */
static plugin_info
info_of(registry *r, const char *name)
{
	for (size_t i = 0; i < registry_plugin_count(r); i++) {
		plugin_info pi;
		registry_plugin_info(r, i, &pi);
		const char *slash = strrchr(pi.file, '/');
		if (strcmp(slash ? slash + 1 : pi.file, name) == 0)
			return pi;
	}
	fprintf(stderr, "no plugin info for %s\n", name);
	exit(1);
}

static const char count_v1[]
    = "fromAll().when({\n"
      "  $init: function () { return { count: 0 }; },\n"
      "  $any: function (s, e) { s.count += 1; }\n"
      "});\n";
static const char count_v2[]
    = "fromAll().when({\n"
      "  $init: function () { return { count: 0, v: 2 }; },\n"
      "  $any: function (s, e) { s.count += 10; }\n"
      "});\n";
static const char broken[] = "fromAll().when({\n"
                             "  $any: function (s, e) { s.x = ; }\n"
                             "});\n";

/* outputTo(): a pattern without {0} is refused by the host; two
 * projections whose result streams overlap cannot both claim them */
static const char out_nokey[] = "fromAll().foreachStream().when({\n"
                                "  $any: function (s, e) { s.n = 1; }\n"
                                "}).outputTo('all-balances', 'balance');\n";
static const char out_a[]     = "fromAll().foreachStream().when({\n"
                                "  $any: function (s, e) { s.n = 1; }\n"
                                "}).outputTo('res-all', 'res-{0}');\n";
static const char out_b[]     = "fromAll().when({\n"
                                "  $any: function (s, e) { s.n = 1; }\n"
                                "}).outputTo('res-x-total');\n";

static void
reload(registry *r, const char *path, int want)
{
	proj_change *ch = NULL;
	size_t       n  = 0;
	char         err[1024];
	CHECK_EQ(
	    registry_reload_file(r, path, &ch, &n, err, sizeof(err)), want);
	free(ch);
}

/* More scripts than real-time signals (SIGRTMIN+7 .. SIGRTMAX: 24). */
#define N_MANY 40

static const char spin[]
    = "options({ $budgetMs: 20 });\n"
      "fromAll().foreachStream().when({\n"
      "  $any: function (s, e) {\n"
      "    while (e.streamId === 'a-2') { s.n = 1; }\n"
      "    s.n = (s.n || 0) + 1;\n"
      "  }\n"
      "});\n";

/* Run every many_i.js and spin.js over the log at once: many_i counts
 * i + 1 per event (v: the version it was written with); spin fails a-2
 * by its budget and folds the rest. */
static void
run_many(registry *r, store *s, rmstore *rm, int version)
{
	processor      *ps[N_MANY + 1];
	const proj_def *ds[N_MANY + 1];
	uint64_t        head = store_next_position(s);
	for (int i = 0; i <= N_MANY; i++) {
		char name[32];
		if (i < N_MANY)
			snprintf(name, sizeof(name), "many_%02d", i);
		else
			snprintf(name, sizeof(name), "spin");
		ds[i] = pt_find(r, name);
		CHECK(ds[i] != NULL);
		CHECK_EQ(proc_start(s, rm, "t1", ds[i], 16, &ps[i]), SL_OK);
	}
	proc_failing f;
	pt_wait_unit(ps[N_MANY], "a-2", 1, PT_WAIT_MS, &f);
	if (strstr(f.reason, "spin.js: over its CPU budget of 20 ms") == NULL) {
		fprintf(stderr, "spin: reason '%s'\n", f.reason);
		exit(1);
	}
	pt_wait_failing_units(ps[N_MANY], head, PT_WAIT_MS);
	for (int i = 0; i < N_MANY; i++)
		pt_wait_position(ps[i], head, PT_WAIT_MS);
	for (int i = 0; i <= N_MANY; i++)
		proc_stop(ps[i]);
	for (int i = 0; i < N_MANY; i++) {
		CHECK_EQ(pt_state_i64(rm, ds[i]->id, "root", "count"),
		    3 * (i + 1));
		CHECK_EQ(pt_state_i64(rm, ds[i]->id, "root", "v"), version);
	}
	CHECK_EQ(pt_state_i64(rm, ds[N_MANY]->id, "a-1", "n"), 2);
}

static void
write_many(const char *dir, int version)
{
	for (int i = 0; i < N_MANY; i++) {
		char path[4300], text[300];
		snprintf(path, sizeof(path), "%s/many_%02d.js", dir, i);
		snprintf(text, sizeof(text),
		    "fromAll().when({\n"
		    "  $init: function () { return { count: 0, v: %d }; },\n"
		    "  $any: function (s, e) { s.count += %d; }\n"
		    "});\n",
		    version, i + 1);
		write_file(path, text);
	}
}

static void
many(registry *r, const char *dir, store *s, rmstore *rm)
{
	char path[4300];
	write_many(dir, 1);
	snprintf(path, sizeof(path), "%s/spin.js", dir);
	write_file(path, spin);
	CHECK_EQ(registry_load_dir(r, dir), SL_OK);
	for (int i = 0; i < N_MANY; i++) {
		char name[32];
		snprintf(name, sizeof(name), "many_%02d.js", i);
		plugin_info pi = info_of(r, name);
		if (!pi.loaded || pi.error != NULL) {
			fprintf(stderr, "%s: %s\n", name,
			    pi.error ? pi.error : "not loaded");
			exit(1);
		}
	}
	run_many(r, s, rm, 1);
	/* new versions: every old copy of the host is unloaded; the budget
	 * (its handler in the shared library) still cuts the loop */
	write_many(dir, 2);
	for (int i = 0; i < N_MANY; i++) {
		snprintf(path, sizeof(path), "%s/many_%02d.js", dir, i);
		reload(r, path, SL_OK);
	}
	run_many(r, s, rm, 2);
}

int
main(void)
{
	char dir[4200], count[4300], bad[4300], cache[4300], path[4300];
	snprintf(dir, sizeof(dir), "%s/js", tu_tmpdir());
	CHECK(mkdir(dir, 0700) == 0);
	snprintf(count, sizeof(count), "%s/count.js", dir);
	snprintf(bad, sizeof(bad), "%s/bad.js", dir);
	write_file(count, count_v1);
	write_file(bad, broken);
	snprintf(path, sizeof(path), "%s/out_nokey.js", dir);
	write_file(path, out_nokey);
	snprintf(path, sizeof(path), "%s/out_a.js", dir);
	write_file(path, out_a);
	snprintf(path, sizeof(path), "%s/out_b.js", dir);
	write_file(path, out_b);

	registry *r;
	snprintf(cache, sizeof(cache), "%s/plugin-cache", tu_tmpdir());
	CHECK_EQ(registry_create(cache, &r), SL_OK);
	CHECK_EQ(registry_set_js_host(r, SL_BUILD_DIR "/examples/js_host.so"),
	    SL_OK);
	CHECK_EQ(registry_load_dir(r, dir), SL_OK);

	/* the good file loads: its projection is named for the file */
	const proj_def *d1 = pt_find(r, "count");
	uint64_t        h1 = d1->def_hash;
	plugin_info     pi = info_of(r, "count.js");
	CHECK(pi.loaded);
	CHECK_STREQ(pi.name, "count");
	CHECK_EQ(pi.n_projections, 1);
	/* the broken one is shown with file:line */
	pi = info_of(r, "bad.js");
	CHECK(!pi.loaded);
	CHECK(pi.error != NULL);
	if (strstr(pi.error, "bad.js:2: SyntaxError") == NULL) {
		fprintf(stderr, "error: %s\n", pi.error);
		exit(1);
	}
	CHECK(registry_find(r, "bad", 3) == NULL);
	pi = info_of(r, "out_nokey.js");
	CHECK(!pi.loaded);
	if (pi.error == NULL
	    || strstr(pi.error, "partition_result_stream 'balance' has no {0}")
	        == NULL) {
		fprintf(stderr, "error: %s\n", pi.error ? pi.error : "none");
		exit(1);
	}

	/* the same bytes again: nothing loaded */
	reload(r, count, SL_OK);
	CHECK(pt_find(r, "count") == d1);
	/* changed text: a new version whose definition hash differs */
	write_file(count, count_v2);
	reload(r, count, SL_OK);
	const proj_def *d2 = pt_find(r, "count");
	CHECK(d2 != d1);
	CHECK(d2->def_hash != h1);
	CHECK_STREQ(d2->id, d1->id); /* the same file keeps its id */
	/* broken: refused with file:line, the previous version keeps running
	 */
	write_file(count, broken);
	reload(r, count, SL_EPLUGIN);
	CHECK(pt_find(r, "count") == d2);
	pi = info_of(r, "count.js");
	CHECK(pi.loaded);
	CHECK(pi.error != NULL && strstr(pi.error, "count.js:2:") != NULL);
	/* the fixed bad.js loads */
	write_file(bad, count_v1);
	reload(r, bad, SL_OK);
	CHECK(pt_find(r, "bad") != NULL);
	CHECK(info_of(r, "bad.js").error == NULL);

	/* the running version folds events through the processor */
	store   *s;
	rmstore *rm;
	snprintf(path, sizeof(path), "%s/log", tu_tmpdir());
	CHECK_EQ(store_open(path, 16u << 20, false, &s), SL_OK);
	snprintf(path, sizeof(path), "%s/rm", tu_tmpdir());
	CHECK_EQ(rm_open(path, 16u << 20, false, &rm), SL_OK);
	pt_commit1(s, "t1", "a-1", "Ping", "{}");
	pt_commit1(s, "t1", "a-2", "Ping", "{}");
	pt_commit1(s, "t1", "a-1", "Pong", "{}");
	/* result streams are owned: out_a claims res-all and res-*, so
	 * out_b's res-x-total is refused, naming both */
	char err[512];
	CHECK_EQ(eproj_claim(s, pt_find(r, "out_a"), err, sizeof(err)), SL_OK);
	CHECK_EQ(
	    eproj_claim(s, pt_find(r, "out_b"), err, sizeof(err)), SL_EEXIST);
	if (strstr(err, "out_a") == NULL) {
		fprintf(stderr, "claim: %s\n", err);
		exit(1);
	}
	processor *p;
	CHECK_EQ(proc_start(s, rm, "t1", d2, 16, &p), SL_OK);
	pt_wait_position(p, store_next_position(s), PT_WAIT_MS);
	proc_stop(p);
	CHECK_EQ(pt_state_i64(rm, d2->id, "root", "count"), 30);
	CHECK_EQ(pt_state_i64(rm, d2->id, "root", "v"), 2);
	many(r, dir, s, rm);
	rm_close(rm);
	store_close(s);
	registry_destroy(r);
	printf("js_plugin_dir_test: ok\n");
	return 0;
}
