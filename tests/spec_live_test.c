/*
 * The specs of tests/specs run live (issue 16): their .js files in a real
 * sluiced's plugin directory, each spec's input committed through the
 * client to a tenant of its own (a deletion through delete_stream), and
 * each spec's final `output` compared with what the daemon answers: every
 * partition's state from get_all, the shared state from get_one
 * "$shared", results from the partitions' result
 * streams, emitted streams read back. The specs are read and compared by
 * the code `sluice spec` uses (client/spec_file.c), so a difference here
 * is one between the in-process run and the daemon.
 *
 * Every projection runs for every tenant; in each tenant all but the
 * spec's own are paused before its events arrive, so that no other
 * projection's emitted events reach the spec's projection. Specs run in
 * batches of at most SPECS_PER_DAEMON per daemon ($SLUICE_SPECS_PER_DAEMON
 * overrides it): all of them in one daemon today, more scripts than there
 * are real-time signals (the CPU budget shares one, docs/javascript.md).
 */
#include <dirent.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>
#include <sluice/client.h>

#include "daemon_testutil.h"
#include "json_testutil.h"
#include "spec_file.h"

#define SPECS_DIR        SL_SOURCE_DIR "/tests/specs"
#define SPECS_PER_DAEMON 64
#define MAX_SPECS        256
#define WAIT_MS          60000

typedef struct live_spec {
	char        name[128]; /* the spec file's name without -spec.json */
	char        path[4300];
	char        js[128];     /* the projection's file name */
	char        proj[128];   /* its projection's name (js without .js) */
	char        tenant[160]; /* "t-" name */
	const char *skip;        /* why it cannot run live, or NULL */
	spec_file   f;
} live_spec;

static char       dir[4096], daemon_log[4400];
static pid_t      daemon_pid = -1;
static sl_client *cl;

#define FAIL(...) DT_FAIL_LOG(daemon_log, __VA_ARGS__)

static void
cleanup(void)
{
	if (cl != NULL)
		sl_client_close(cl);
	cl = NULL;
	dt_kill_and_reap(&daemon_pid);
}

static int
by_name(const void *a, const void *b)
{
	return strcmp(
	    ((const live_spec *) a)->name, ((const live_spec *) b)->name);
}

/* Why spec s cannot run live (NULL: it can). */
static const char *
live_skip(const live_spec *s)
{
	/* a client commits "$>" links ("N@stream"), not "$@" stream
	 * links (written by projections only) */
	for (size_t i = 0; i < s->f.n_steps; i++)
		if (spec_step_is_link(&s->f.steps[i])
		    && strcmp(s->f.steps[i].type, "$>") != 0)
			return "its input holds \"$@\" stream links, which "
			       "only projections write";
	return NULL;
}

/* Every spec file of tests/specs, loaded, in name order. */
static size_t
load_specs(live_spec *v)
{
	DIR           *d = opendir(SPECS_DIR);
	struct dirent *de;
	size_t         n = 0;
	CHECK(d != NULL);
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name), suf = strlen("-spec.json");
		if (len <= suf
		    || strcmp(de->d_name + len - suf, "-spec.json") != 0)
			continue;
		CHECK(n < MAX_SPECS);
		live_spec *s = &v[n++];
		memset(s, 0, sizeof(*s));
		snprintf(s->name, sizeof(s->name), "%.*s", (int) (len - suf),
		    de->d_name);
		snprintf(
		    s->path, sizeof(s->path), "%s/%s", SPECS_DIR, de->d_name);
	}
	closedir(d);
	qsort(v, n, sizeof(*v), by_name);
	for (size_t i = 0; i < n; i++) {
		live_spec *s = &v[i];
		if (spec_file_load(s->path, &s->f) != 0)
			FAIL("%s does not load", s->path);
		const char *js = s->f.projection;
		size_t      jl = js != NULL ? strlen(js) : 0;
		if (jl < 4 || strcmp(js + jl - 3, ".js") != 0
		    || strchr(js, '/') != NULL)
			FAIL("%s: its projection is not a .js beside it",
			    s->path);
		snprintf(s->js, sizeof(s->js), "%s", js);
		snprintf(s->proj, sizeof(s->proj), "%.*s", (int) (jl - 3), js);
		snprintf(s->tenant, sizeof(s->tenant), "t-%s", s->name);
		s->skip = live_skip(s);
	}
	return n;
}

/* ---- the daemon of one batch ---- */

static void
start_daemon(live_spec *v, size_t n, int batch)
{
	char bdir[4200], plugins[4300], cfg[4300], url[4300], dst[4500];
	snprintf(bdir, sizeof(bdir), "%s/batch-%d", dir, batch);
	CHECK(mkdir(bdir, 0755) == 0);
	snprintf(plugins, sizeof(plugins), "%s/plugins", bdir);
	CHECK(mkdir(plugins, 0755) == 0);
	snprintf(cfg, sizeof(cfg), "%s/resources.yaml", bdir);
	snprintf(daemon_log, sizeof(daemon_log), "%s/sluiced.log", bdir);
	snprintf(url, sizeof(url), "ipc://%s/api.ipc", bdir);
	size_t cap  = 4096 + n * 256;
	char  *text = malloc(cap);
	CHECK(text != NULL);
	size_t len = dt_config_head(text, cap, bdir, plugins, url, "64MiB");
	len += (size_t) snprintf(text + len, cap - len,
	    "start_standard_projections: false\ntenants:\n");
	for (size_t i = 0; i < n; i++) {
		live_spec *s = &v[i];
		snprintf(dst, sizeof(dst), "%s/%s", plugins, s->js);
		if (access(dst, F_OK) != 0) {
			char src[4400];
			snprintf(src, sizeof(src), "%s/%s", SPECS_DIR, s->js);
			dt_install(src, NULL, dst);
		}
		len += (size_t) snprintf(text + len, cap - len,
		    "  - id: %s\n    read_models:\n      map_size: 8MiB\n",
		    s->tenant);
		CHECK(len < cap);
	}
	tu_write_file(cfg, text);
	free(text);
	daemon_pid = dt_daemon_spawn(cfg, daemon_log);
	if (!dt_wait_answer(url, &cl, 20000))
		FAIL("sluiced does not answer on %s", url);
}

/* The status entry (processors or emitting_projections) of projection
 * proj in tenant, or NULL. */
static json_t *
entry_of(json_t *st, const char *tenant, const char *proj)
{
	static const char *const lists[]
	    = { "processors", "emitting_projections" };
	for (size_t l = 0; l < 2; l++) {
		size_t  i;
		json_t *p;
		json_array_foreach(json_object_get(st, lists[l]), i, p)
		{
			if (strcmp(jstr(p, "tenant"), tenant) == 0
			    && strcmp(jstr(p, "name"), proj) == 0)
				return p;
		}
	}
	return NULL;
}

static json_t *
status(void)
{
	char *text = NULL;
	int   rc   = sl_client_status(cl, &text);
	if (rc != SL_OK)
		FAIL("status: %s", sl_errname(rc));
	json_t *st = json_loads(text, 0, NULL);
	sl_client_free(text);
	CHECK(st != NULL);
	return st;
}

/* Wait until every .js loaded and each spec's projection runs in every
 * tenant; then pause, in each tenant, every projection but its spec's. */
static void
isolate(live_spec *v, size_t n)
{
	int64_t end = dt_now_ms() + WAIT_MS;
	for (;;) {
		json_t *st    = status();
		bool    ready = true;
		size_t  i;
		json_t *p;
		json_array_foreach(json_object_get(st, "plugins"), i, p)
		{
			if (!json_is_true(json_object_get(p, "loaded"))
			    || json_is_string(json_object_get(p, "error")))
				FAIL("plugin %s: %s", jstr(p, "file"),
				    jstr(p, "error"));
		}
		for (size_t a = 0; a < n && ready; a++)
			for (size_t b = 0; b < n && ready; b++)
				ready = entry_of(st, v[a].tenant, v[b].proj)
				    != NULL;
		json_decref(st);
		if (ready)
			break;
		if (dt_now_ms() > end)
			FAIL("the projections did not start in every tenant");
		dt_sleep_ms(20);
	}
	for (size_t a = 0; a < n; a++)
		for (size_t b = 0; b < n; b++) {
			bool dup = strcmp(v[b].proj, v[a].proj) == 0;
			for (size_t k = 0; k < b && !dup; k++)
				dup = strcmp(v[k].proj, v[b].proj) == 0;
			if (dup)
				continue;
			int rc = sl_client_command(
			    cl, "pause", v[b].proj, v[a].tenant, NULL);
			if (rc != SL_OK)
				FAIL("pause %s in %s: %s %s", v[b].proj,
				    v[a].tenant, sl_errname(rc),
				    sl_client_last_error(cl));
		}
}

/* ---- input ---- */

static char *
json_text(const json_t *j)
{
	char *t = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
	CHECK(t != NULL);
	return t;
}

static void
commit_input(live_spec *s)
{
	for (size_t i = 0; i < s->f.n_steps; i++) {
		const spec_step *st = &s->f.steps[i];
		int              rc;
		if (st->kind == SPEC_STEP_DELETE) {
			rc = sl_client_delete_stream(
			    cl, s->tenant, st->stream, SL_EXPECT_ANY, NULL);
		} else {
			char *data     = st->data != NULL ? json_text(st->data)
			                                  : strdup("{}");
			char *meta     = st->metadata != NULL
			        ? json_text(st->metadata)
			        : NULL;
			sl_new_event e = { .type = st->type,
				.content_json    = data,
				.metadata_json   = meta };
			rc = sl_client_commit(cl, s->tenant, st->stream,
			    SL_EXPECT_ANY, &e, 1, NULL);
			free(data);
			free(meta);
		}
		if (rc != SL_OK)
			FAIL("%s: %s: %s %s", s->path, st->where,
			    sl_errname(rc), sl_client_last_error(cl));
	}
}

/* Wait until the spec's projection handled its tenant's events up to the
 * head; a failing key fails the test with its reason. */
static void
wait_head(live_spec *s)
{
	int64_t end = dt_now_ms() + WAIT_MS;
	for (;;) {
		json_t   *st   = status();
		long long head = jint(st, "head");
		json_t   *p    = entry_of(st, s->tenant, s->proj);
		if (p != NULL && jint(p, "failing_count") > 0)
			FAIL("%s: %s fails in %s: %s", s->name, s->proj,
			    s->tenant, dump(json_object_get(p, "failing")));
		bool done = p != NULL && jint(p, "position") == head
		    && jint(p, "writes_in_flight") <= 0
		    && strcmp(jstr(p, "state"), "live") == 0;
		json_t *pc = p != NULL ? json_deep_copy(p) : NULL;
		json_decref(st);
		if (done) {
			json_decref(pc);
			return;
		}
		if (dt_now_ms() > end)
			FAIL("%s: %s did not reach the head %lld in %s: %s",
			    s->name, s->proj, head, s->tenant,
			    pc != NULL ? dump(pc) : "(no processor)");
		json_decref(pc);
		dt_sleep_ms(10);
	}
}

/* ---- what the daemon answers ---- */

/* A stream of the spec's tenant as [{eventType, data, metadata}]. */
static json_t *
read_stream(void *arg, spec_cmp *c, const char *stream)
{
	live_spec *s   = arg;
	json_t    *out = json_array();
	uint64_t   rev = 0;
	for (;;) {
		sl_read_result r;
		int            rc
		    = sl_client_read_stream(cl, s->tenant, stream, rev, 0, &r);
		if (rc != SL_OK) {
			spec_diff(c, "reading stream '%s': %s %s", stream,
			    sl_errname(rc), sl_client_last_error(cl));
			json_decref(out);
			return NULL;
		}
		for (size_t i = 0; i < r.n_events; i++) {
			sl_read_event *e = &r.events[i];
			json_t        *j = json_object();
			json_object_set_new(
			    j, "eventType", json_string(e->type));
			json_object_set_new(j, "data",
			    json_loads(
			        e->content_json, JSON_DECODE_ANY, NULL));
			json_object_set_new(j, "metadata",
			    json_loads(
			        e->metadata_json, JSON_DECODE_ANY, NULL));
			json_array_append_new(out, j);
		}
		bool end = r.n_events == 0 || r.next <= rev;
		rev      = r.next;
		sl_read_result_free(&r);
		if (end)
			return out;
	}
}

/* The result stream of key, as status names it for the spec's
 * projection in its tenant (result_stream for the one state,
 * partition_result_stream with "{0}" for the key otherwise). */
static void
result_stream(live_spec *s, const char *key, char *out, size_t len)
{
	json_t     *st   = status();
	json_t     *e    = entry_of(st, s->tenant, s->proj);
	const char *root = e != NULL ? jstr(e, "result_stream") : "";
	const char *pat  = e != NULL ? jstr(e, "partition_result_stream") : "";
	const char *at   = strstr(pat, "{0}");
	if (*root == '\0' || at == NULL)
		FAIL("%s: status names no result streams", s->name);
	if (strcmp(key, "root") == 0)
		snprintf(out, len, "%s", root);
	else
		snprintf(out, len, "%.*s%s%s", (int) (at - pat), pat, key,
		    at + 3);
	json_decref(st);
}

/* The result of key: the last event of its result stream (Result: its
 * data; ResultRemoved or none: null). */
static json_t *
result_of(live_spec *s, spec_cmp *c, const char *key)
{
	char stream[600];
	result_stream(s, key, stream, sizeof(stream));
	json_t *evs = read_stream(s, c, stream);
	json_t *res = json_null();
	size_t  n   = evs != NULL ? json_array_size(evs) : 0;
	if (n > 0) {
		json_t *last = json_array_get(evs, n - 1);
		if (strcmp(jstr(last, "eventType"), "Result") == 0)
			res = json_incref(json_object_get(last, "data"));
	}
	json_decref(evs);
	return res;
}

/* Every partition's state (get_all), with its result where the spec
 * expects one: key -> {state, result?}. */
static json_t *
actual_states(live_spec *s, spec_cmp *c)
{
	json_t *out   = json_object();
	char   *after = NULL;
	for (;;) {
		sl_read_models m;
		int            rc
		    = sl_client_get_all(cl, s->tenant, s->proj, after, 0, &m);
		if (rc != SL_OK)
			FAIL("%s: get_all %s: %s %s", s->name, s->proj,
			    sl_errname(rc), sl_client_last_error(cl));
		for (size_t i = 0; i < m.n_items; i++) {
			json_t *e = json_object();
			json_object_set_new(e, "state",
			    json_loads(m.items[i].state_json, 0, NULL));
			json_object_set_new(out, m.items[i].key, e);
		}
		free(after);
		after     = m.n_items > 0 ? strdup(m.items[m.n_items - 1].key)
		                          : NULL;
		bool more = m.more;
		sl_read_models_free(&m);
		if (!more)
			break;
	}
	free(after);
	/* results where the spec has them */
	size_t  i;
	json_t *w;
	json_array_foreach((json_t *) s->f.states, i, w)
	{
		const char *part
		    = json_string_value(json_object_get(w, "partition"));
		if (part == NULL || json_object_get(w, "result") == NULL)
			continue;
		const char *key = spec_key_of(part);
		json_t     *e   = json_object_get(out, key);
		if (e != NULL)
			json_object_set_new(e, "result", result_of(s, c, key));
	}
	return out;
}

static int
check(live_spec *s)
{
	spec_cmp c = { .file = s->path };
	snprintf(c.when, sizeof(c.when), "live (tenant %s): ", s->tenant);
	json_t *actual = actual_states(s, &c);
	spec_check_states(&c, s->f.states, actual);
	if (s->f.shared != NULL) {
		/* a bi-state projection's shared state: get_one "$shared" */
		char  *text  = NULL;
		bool   found = false;
		json_t *got  = NULL;
		CHECK_EQ(sl_client_get_one(
		             cl, s->tenant, s->proj, "$shared", &text, &found),
		    SL_OK);
		if (found)
			got = json_loads(text, 0, NULL);
		sl_client_free(text);
		spec_check_shared(&c, s->f.shared, got);
		json_decref(got);
	}
	spec_check_emitted(&c, s->f.emitted, read_stream, s);
	json_decref(actual);
	return c.diffs;
}

static int
run_batch(live_spec *v, size_t n, int batch)
{
	int diffs = 0;
	start_daemon(v, n, batch);
	isolate(v, n);
	for (size_t i = 0; i < n; i++)
		commit_input(&v[i]);
	for (size_t i = 0; i < n; i++) {
		wait_head(&v[i]);
		int d = check(&v[i]);
		printf("%s: %s live (%s)\n", v[i].name,
		    d ? "DIFFERS" : "equal", v[i].proj);
		diffs += d;
	}
	cleanup();
	return diffs;
}

int
main(void)
{
	static live_spec all[MAX_SPECS];
	live_spec       *run[MAX_SPECS];
	size_t           per = SPECS_PER_DAEMON, n_run = 0;
	const char      *env = getenv("SLUICE_SPECS_PER_DAEMON");
	if (env != NULL && atoi(env) > 0)
		per = (size_t) atoi(env);
	snprintf(dir, sizeof(dir), "%s", tu_tmpdir());
	snprintf(daemon_log, sizeof(daemon_log), "%s/none.log", dir);
	atexit(cleanup);
	size_t n = load_specs(all);
	CHECK(n >= 25);
	for (size_t i = 0; i < n; i++) {
		if (all[i].skip != NULL)
			printf("%s: not run live: %s\n", all[i].name,
			    all[i].skip);
		else
			run[n_run++] = &all[i];
	}
	/* batches of live specs, each one daemon */
	static live_spec batch[MAX_SPECS];
	int              diffs = 0, b = 0;
	for (size_t i = 0; i < n_run; i += per, b++) {
		size_t k = n_run - i < per ? n_run - i : per;
		for (size_t j = 0; j < k; j++)
			batch[j] = *run[i + j];
		diffs += run_batch(batch, k, b);
	}
	for (size_t i = 0; i < n; i++)
		spec_file_free(&all[i].f);
	if (diffs > 0) {
		fprintf(stderr, "spec_live_test: %d differences\n", diffs);
		return 1;
	}
	printf("spec_live_test: ok (%zu specs live in %d daemons, %zu not "
	       "live)\n",
	    n_run, b, n - n_run);
	return 0;
}
