/*
 * A filter whose code changed without a version bump (issue 15, part 6),
 * in a real runtime (log, read model stores, plugins, processors, hot
 * reload, the API) with the builds of tests/plugins/filter_codechange.c
 * swapped under it, two tenants, every stream compared with a
 * recomputation over the log done here:
 *
 *  (a) new code that includes the same: validated equal, nothing rebuilt;
 *  (b) new code that includes other events, or other partitions: rebuilt,
 *      its stream then what the new code includes;
 *  (c) on_code_change fail: the filter stops failed, the reason naming the
 *      first differing position, its old stream still served and nothing
 *      appended, across a restart; code that agrees again goes on; retry
 *      goes on with the new code; reset rebuilds;
 *  (d) a reload during a validation cancels it; so does the stop;
 *  (e) an ABI 1.2 filter (no field) keeps working and is rebuilt;
 *  a stream with a retried partition's entries appended late and a unit
 *  failing for good, validated equal (the late entries where they belong,
 *  the waiting unit's events left out), and inconclusive when the new code
 *  fails; a rebuild of the definition under way starting again; and an
 *  on_code_change the host does not know refusing the plugin.
 */
#include <jansson.h>
#include <sluice/client.h>
#include <sys/stat.h>

#include "daemon_testutil.h"
#include "filter_validate.h"
#include "log.h"
#include "projection_testutil.h"
#include "runtime.h"

#define FC_ID   "3c5e8a41-7b2d-4f6e-9a10-5d2c8e7f1b34"
#define FC_DIR  SL_TEST_PLUGIN_DIR "/codechange"
#define WAIT_MS 60000
#define N_T1    1500
#define N_T2    300
#define FAIL_REASON                                                           \
	"code changed without a version bump: stream differs at position "

/* ---- a runtime of its own per case ---- */

typedef struct env {
	char       dir[1024], cfg[1200], plugin[1200], url[1200];
	sl_config *config;
	runtime   *rt;
	sl_client *cl;
	uint64_t   rng;
} env;

static void
env_start(env *e)
{
	char err[1024];
	CHECK_EQ(config_load(e->cfg, &e->config, err, sizeof(err)), SL_OK);
	CHECK_EQ(runtime_start(e->config, &e->rt), SL_OK);
	CHECK_EQ(sl_client_open(e->url, 10000, &e->cl), SL_OK);
}

static void
env_stop(env *e)
{
	sl_client_close(e->cl);
	runtime_stop(e->rt);
	config_free(e->config);
	e->cl     = NULL;
	e->rt     = NULL;
	e->config = NULL;
}

/* Install build `variant` as the plugin, as a build does (temp, rename). */
static void
install(env *e, const char *variant)
{
	char src[8192];
	snprintf(src, sizeof(src), "%s/%s.so", FC_DIR, variant);
	dt_install(src, NULL, e->plugin);
}

static void
env_open(env *e, const char *name, const char *first)
{
	char path[1100], text[8192];
	memset(e, 0, sizeof(*e));
	e->rng = 0x9e3779b97f4a7c15ULL ^ (uint64_t) name[0];
	snprintf(e->dir, sizeof(e->dir), "%s/%s", tu_tmpdir(), name);
	CHECK(mkdir(e->dir, 0755) == 0);
	snprintf(path, sizeof(path), "%s/plugins", e->dir);
	CHECK(mkdir(path, 0755) == 0);
	snprintf(e->plugin, sizeof(e->plugin), "%s/fc.so", path);
	snprintf(e->cfg, sizeof(e->cfg), "%s/resources.yaml", e->dir);
	snprintf(e->url, sizeof(e->url), "ipc://%s/api.ipc", e->dir);
	snprintf(text, sizeof(text),
	    "data_dir: %s/data\nplugin_dir: %s\nhot_reload_quiet_ms: 50\n"
	    "log_level: info\n"
	    "endpoints:\n  api: %s\n  pub: ipc://%s/pub.ipc\n"
	    "event_store:\n  sync: false\n"
	    "processing:\n  batch: 200\n"
	    "tenants:\n  - id: t1\n  - id: t2\n",
	    e->dir, path, e->url, e->dir);
	tu_write_file(e->cfg, text);
	install(e, first);
	env_start(e);
}

/* ---- events ---- */

/* n events of tenant on streams s0..s7: Tick, Tock or Other, mostly with
 * a "who" (w0..w4) that differs from the stream. */
static void
commit_events(env *e, const char *tenant, int n)
{
	static const char *types[] = { "Tick", "Tock", "Other" };
	pt_event           evs[4];
	for (int done = 0; done < n;) {
		int  k = 1 + (int) (dt_rnd(&e->rng) % 4);
		char stream[16];
		snprintf(stream, sizeof(stream), "s%u", dt_rnd(&e->rng) % 8);
		if (k > n - done)
			k = n - done;
		for (int i = 0; i < k; i++) {
			uint32_t r  = dt_rnd(&e->rng);
			evs[i].type = types[r % 3];
			if ((r >> 8) % 10 == 0)
				snprintf(
				    evs[i].json, sizeof(evs[i].json), "{}");
			else
				snprintf(evs[i].json, sizeof(evs[i].json),
				    "{\"who\":\"w%u\"}", (r >> 12) % 5);
		}
		pt_commit(e->rt->store, tenant, stream, evs, (size_t) k);
		done += k;
	}
}

/* ---- streams: stored, and recomputed by a rule ---- */

typedef struct sentry {
	uint64_t pos;
	char     part[64];
} sentry;

typedef struct slist {
	sentry *v;
	size_t  n, cap;
} slist;

static void
slist_add(slist *l, uint64_t pos, const char *part, size_t plen)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 1024;
		l->v   = realloc(l->v, l->cap * sizeof(*l->v));
		CHECK(l->v != NULL);
	}
	CHECK(plen < sizeof(l->v[0].part));
	l->v[l->n].pos = pos;
	memcpy(l->v[l->n].part, part, plen);
	l->v[l->n++].part[plen] = '\0';
}

static int
stored_cb(void *arg, uint64_t spos, uint64_t lpos, uint64_t other,
    const char *part, size_t plen)
{
	slist *l = arg;
	(void) other;
	CHECK_EQ(spos, l->n); /* gap-free from 0 */
	slist_add(l, lpos, part, plen);
	return 0;
}

/* The served stream of tenant, whole (in stream order). */
static void
stored(env *e, const char *tenant, slist *out)
{
	rt_tenant *t = runtime_tenant(e->rt, tenant, strlen(tenant));
	uint64_t   next;
	bool       more;
	CHECK(t != NULL);
	out->n = 0;
	CHECK_EQ(rm_stream_read(t->rm, FC_ID, NULL, 0, 0, 0, stored_cb, out,
	             &next, &more, NULL),
	    SL_OK);
	CHECK(!more);
}

typedef struct recompute {
	const char *tenant;
	int         rule;
	bool        unpartitioned;
	uint64_t    until;
	slist      *out;
	/* a unit failing for good: its events from skip_from on wait */
	const char *skip_stream;
	uint64_t    skip_from;
} recompute;

/* What the rule (FC_RULE of filter_codechange.c) includes of one event. */
static int
recompute_cb(void *arg, uint64_t pos, const void *data, size_t len)
{
	recompute   *rc = arg;
	msgpack_zone z;
	ev_view      ev;
	if (pos >= rc->until)
		return 1;
	CHECK(msgpack_zone_init(&z, 1024));
	CHECK_EQ(ev_decode(data, len, pos, &z, &ev), SL_OK);
	const char *who;
	size_t      wlen;
	bool        tick = strcmp(ev.type, "Tick") == 0;
	bool        tock = strcmp(ev.type, "Tock") == 0;
	bool has_who = mp_get_str(&ev.content, "who", &who, &wlen) == SL_OK;
	bool in      = strcmp(ev.tenant, rc->tenant) == 0
	    && (tick || (rc->rule == 3 && tock)) && (rc->rule == 4 || has_who)
	    && (rc->skip_stream == NULL || pos < rc->skip_from
	        || strcmp(ev.stream, rc->skip_stream) != 0);
	if (in && rc->unpartitioned)
		slist_add(rc->out, pos, "", 0);
	else if (in && rc->rule == 4)
		slist_add(rc->out, pos, ev.stream, strlen(ev.stream));
	else if (in)
		slist_add(rc->out, pos, who, wlen);
	msgpack_zone_destroy(&z);
	return 0;
}

static void
recompute_log(env *e, const char *tenant, int rule, bool unpartitioned,
    uint64_t until, slist *out)
{
	recompute rc = { tenant, rule, unpartitioned, until, out, NULL, 0 };
	out->n       = 0;
	int r = store_scan(e->rt->store, 0, SIZE_MAX, recompute_cb, &rc, NULL);
	CHECK(r == SL_OK || r == 1);
}

static bool
same_lists(const slist *a, const slist *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (a->v[i].pos != b->v[i].pos
		    || strcmp(a->v[i].part, b->v[i].part) != 0)
			return false;
	return true;
}

/* The served stream of tenant is what rule includes of the log before
 * until (no unit failed: the stream is in log order). */
static void
check_stream(
    env *e, const char *tenant, int rule, bool unpartitioned, uint64_t until)
{
	slist have = { 0 }, want = { 0 };
	stored(e, tenant, &have);
	recompute_log(e, tenant, rule, unpartitioned, until, &want);
	if (!same_lists(&have, &want)) {
		fprintf(stderr,
		    "tenant %s: stream of %zu entries, rule %d includes %zu "
		    "before %" PRIu64 "\n",
		    tenant, have.n, rule, want.n, until);
		for (size_t i = 0; i < have.n || i < want.n; i++)
			if (i >= have.n || i >= want.n
			    || have.v[i].pos != want.v[i].pos
			    || strcmp(have.v[i].part, want.v[i].part) != 0) {
				fprintf(stderr,
				    "first difference at entry %zu\n", i);
				break;
			}
		exit(1);
	}
	CHECK(want.n > 0);
	free(have.v);
	free(want.v);
}

/* The first log position (before until) that rules a and b treat
 * differently for tenant. */
static uint64_t
first_diff(env *e, const char *tenant, int a, int b, uint64_t until)
{
	slist la = { 0 }, lb = { 0 };
	recompute_log(e, tenant, a, false, until, &la);
	recompute_log(e, tenant, b, false, until, &lb);
	uint64_t d = UINT64_MAX;
	for (size_t i = 0; i < la.n || i < lb.n; i++) {
		if (i < la.n && i < lb.n && la.v[i].pos == lb.v[i].pos
		    && strcmp(la.v[i].part, lb.v[i].part) == 0)
			continue;
		d = i >= la.n                   ? lb.v[i].pos
		    : i >= lb.n                 ? la.v[i].pos
		    : la.v[i].pos < lb.v[i].pos ? la.v[i].pos
		                                : lb.v[i].pos;
		break;
	}
	free(la.v);
	free(lb.v);
	CHECK(d != UINT64_MAX);
	return d;
}

/* ---- waiting ---- */

static processor *
proc(env *e, const char *tenant)
{
	processor *p = runtime_find_proc(e->rt, tenant, FC_ID);
	CHECK(p != NULL);
	return p;
}

/* Live at the head of the log. */
static proc_status
wait_live(env *e, const char *tenant)
{
	return pt_wait_position(
	    proc(e, tenant), store_next_position(e->rt->store), WAIT_MS);
}

/* The tenant's validation number `runs`, finished (or cancelled). */
static fval_status
wait_validation(env *e, const char *tenant, uint32_t runs)
{
	fval_status st;
	int64_t     end = pt_now_ms() + WAIT_MS;
	for (;;) {
		if (fval_get(e->rt->fval, tenant, FC_ID, &st)
		    && st.runs >= runs && st.state != FVAL_RUNNING)
			break;
		if (pt_now_ms() > end) {
			fprintf(stderr, "tenant %s: no validation %u done\n",
			    tenant, runs);
			exit(1);
		}
		pt_sleep_ms(5);
	}
	CHECK_EQ(st.runs, runs);
	return st;
}

/* The tenant's validation number `runs` under way. */
static void
wait_running(env *e, const char *tenant, uint32_t runs)
{
	fval_status st;
	int64_t     end = pt_now_ms() + WAIT_MS;
	while (!fval_get(e->rt->fval, tenant, FC_ID, &st) || st.runs < runs
	    || st.state != FVAL_RUNNING) {
		CHECK(pt_now_ms() < end);
		pt_sleep_ms(2);
	}
}

/* A rebuild past generation gen served, live at the head. */
static proc_status
wait_rebuilt(env *e, const char *tenant, uint64_t gen)
{
	int64_t     end = pt_now_ms() + WAIT_MS;
	proc_status st;
	for (;;) {
		proc_get_status(proc(e, tenant), &st);
		if (st.generation > gen && !st.rebuilding
		    && st.state == PROC_LIVE
		    && st.position >= store_next_position(e->rt->store))
			return st;
		if (pt_now_ms() > end) {
			fprintf(stderr,
			    "tenant %s: not rebuilt past generation %" PRIu64
			    " (generation %" PRIu64 ", %s)\n",
			    tenant, gen, st.generation,
			    proc_state_name(st.state));
			exit(1);
		}
		pt_sleep_ms(5);
	}
}

/* The processor stopped as failed with reason. */
static proc_status
wait_failed(env *e, const char *tenant, const char *reason)
{
	int64_t     end = pt_now_ms() + WAIT_MS;
	proc_status st;
	for (;;) {
		proc_get_status(proc(e, tenant), &st);
		if (st.state == PROC_FAILED && strcmp(st.reason, reason) == 0)
			return st;
		if (pt_now_ms() > end) {
			fprintf(stderr,
			    "tenant %s: %s '%s', want failed '%s'\n", tenant,
			    proc_state_name(st.state), st.reason, reason);
			exit(1);
		}
		pt_sleep_ms(5);
	}
}

/* ---- status over the API ---- */

/* The "processors" entry of tenant's filter in `sluice status`. */
static json_t *
status_entry(env *e, const char *tenant, json_t **root)
{
	char        *text;
	json_error_t jerr;
	CHECK_EQ(sl_client_status(e->cl, &text), SL_OK);
	*root = json_loads(text, 0, &jerr);
	sl_client_free(text);
	CHECK(*root != NULL);
	json_t *procs = json_object_get(*root, "processors"), *x;
	size_t  i;
	json_array_foreach(procs, i, x)
	{
		const char *t
		    = json_string_value(json_object_get(x, "tenant"));
		const char *id
		    = json_string_value(json_object_get(x, "projection"));
		if (t != NULL && id != NULL && strcmp(t, tenant) == 0
		    && strcmp(id, FC_ID) == 0)
			return x;
	}
	fprintf(stderr, "no status entry for %s\n", tenant);
	exit(1);
}

static const char *
jstr(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s != NULL ? s : "";
}

/* status shows the validation as fval_get does. */
static void
check_status_shows(env *e, const char *tenant, const fval_status *want)
{
	json_t *root, *x = status_entry(e, tenant, &root);
	json_t *v = json_object_get(x, "validation");
	CHECK(json_is_object(v));
	CHECK_STREQ(jstr(v, "state"), fval_state_name(want->state));
	if (want->result != FVAL_NONE)
		CHECK_STREQ(jstr(v, "result"), fval_result_name(want->result));
	CHECK_STREQ(jstr(v, "action"), fval_action_name(want->action));
	CHECK_EQ((uint64_t) json_integer_value(json_object_get(v, "position")),
	    want->position);
	CHECK_EQ((uint64_t) json_integer_value(json_object_get(v, "runs")),
	    (uint64_t) want->runs);
	json_decref(root);
}

/* ---- the cases ---- */

static int
by_pos(const void *a, const void *b)
{
	const sentry *x = a, *y = b;
	return x->pos < y->pos ? -1 : x->pos > y->pos ? 1 : 0;
}

/* A stream with late entries (a retried partition's) and a partition
 * failing for good. */
static void
test_retried(void)
{
	env e;
	env_open(&e, "retried", "fc_base");
	commit_events(&e, "t1", 500);
	/* s3 fails twice (retried after 50 and 100 ms), s5 for good */
	pt_event flaky = { .type = "Tick" }, fatal = { .type = "Tick" };
	snprintf(flaky.json, sizeof(flaky.json),
	    "{\"who\":\"w1\",\"fail_times\":2}");
	snprintf(
	    fatal.json, sizeof(fatal.json), "{\"who\":\"w2\",\"fatal\":true}");
	uint64_t flaky_pos = pt_commit(e.rt->store, "t1", "s3", &flaky, 1);
	uint64_t fatal_pos = pt_commit(e.rt->store, "t1", "s5", &fatal, 1);
	commit_events(&e, "t1", 1000);
	uint64_t     head = store_next_position(e.rt->store);
	processor   *p    = proc(&e, "t1");
	proc_failing pf;
	int64_t      end = pt_now_ms() + WAIT_MS;
	/* s3 retried through, s5 waiting */
	while (proc_get_failing(p, &pf, 1) != 1
	    || strcmp(pf.partition, "s5") != 0) {
		CHECK(pt_now_ms() < end);
		pt_sleep_ms(5);
	}
	proc_status ps = wait_live(&e, "t1");
	CHECK_EQ(ps.n_failing, 1);

	/* stored: late entries, and what rule 1 includes but s5's wait */
	slist have = { 0 }, want = { 0 };
	stored(&e, "t1", &have);
	size_t late = 0;
	for (size_t i = 1; i < have.n; i++)
		late += have.v[i].pos < have.v[i - 1].pos;
	CHECK(late > 0);
	qsort(have.v, have.n, sizeof(*have.v), by_pos);
	recompute rc = { "t1", 1, false, head, &want, "s5", fatal_pos };
	CHECK_EQ(store_scan(e.rt->store, 0, SIZE_MAX, recompute_cb, &rc, NULL),
	    SL_OK);
	CHECK(same_lists(&have, &want));

	/* other code that never fails: equal */
	install(&e, "fc_same");
	fval_status st = wait_validation(&e, "t1", 1);
	CHECK_EQ(st.result, FVAL_EQUAL);
	CHECK_EQ(st.compared, have.n);
	CHECK_EQ(st.until, head);
	/* the failing code again: it fails on s3's event, inconclusive */
	install(&e, "fc_base");
	st = wait_validation(&e, "t1", 2);
	CHECK_EQ(st.result, FVAL_INCONCLUSIVE);
	CHECK_EQ(st.action, FVAL_ACT_NONE);
	CHECK_EQ(st.position, flaky_pos);
	CHECK(strstr(st.reason, "flaky attempt 0") != NULL);
	CHECK_EQ(wait_live(&e, "t1").generation, ps.generation);
	free(have.v);
	free(want.v);
	env_stop(&e);
	printf("retried: late entries and a failing unit, validated\n");
}

/* A rebuild of the definition under way (paused) when the code changes:
 * it starts again, with the new code. */
static void
test_rebuild_under_way(void)
{
	env e;
	env_open(&e, "under_way", "fc_base");
	commit_events(&e, "t1", 500);
	uint64_t   gen = wait_live(&e, "t1").generation;
	processor *p   = proc(&e, "t1");
	CHECK_EQ(proc_command(p, PROC_CMD_PAUSE, 5000), SL_OK);
	CHECK_EQ(proc_command(p, PROC_CMD_RESET, 5000), SL_OK);
	proc_status ps;
	proc_get_status(p, &ps);
	CHECK(ps.rebuilding);
	install(&e, "fc_more");
	fval_status st = wait_validation(&e, "t1", 1);
	CHECK_EQ(st.result, FVAL_SKIPPED);
	CHECK_EQ(st.action, FVAL_ACT_REBUILD);
	/* the old stream is served meanwhile */
	check_stream(&e, "t1", 1, false, store_next_position(e.rt->store));
	CHECK_EQ(proc_command(p, PROC_CMD_RESUME, 5000), SL_OK);
	wait_rebuilt(&e, "t1", gen);
	check_stream(&e, "t1", 3, false, store_next_position(e.rt->store));
	env_stop(&e);
	printf("under way: the rebuild started again\n");
}

/* (a) and (b): rebuild, the default. */
static void
test_rebuild(void)
{
	env e;
	env_open(&e, "rebuild", "fc_base");
	commit_events(&e, "t1", N_T1);
	commit_events(&e, "t2", N_T2);
	const char *tenants[] = { "t1", "t2" };
	uint64_t    gen[2], head = store_next_position(e.rt->store);
	for (int i = 0; i < 2; i++) {
		gen[i] = wait_live(&e, tenants[i]).generation;
		check_stream(&e, tenants[i], 1, false, head);
		/* never validated yet: null */
		json_t *root, *x = status_entry(&e, tenants[i], &root);
		CHECK(json_is_null(json_object_get(x, "validation")));
		json_decref(root);
	}

	/* (a) other code, the same entries: equal, nothing rebuilt */
	install(&e, "fc_same");
	for (int i = 0; i < 2; i++) {
		fval_status st = wait_validation(&e, tenants[i], 1);
		CHECK_EQ(st.state, FVAL_DONE);
		CHECK_EQ(st.result, FVAL_EQUAL);
		CHECK_EQ(st.action, FVAL_ACT_NONE);
		CHECK_EQ(st.until, head);
		CHECK_EQ(st.position, head);
		CHECK(st.compared > 0);
		check_status_shows(&e, tenants[i], &st);
		proc_status ps = wait_live(&e, tenants[i]);
		CHECK_EQ(ps.generation, gen[i]);
		check_stream(&e, tenants[i], 1, false, head);
	}
	/* new events go on with the new code, into the same generation */
	commit_events(&e, "t1", 100);
	head = store_next_position(e.rt->store);
	CHECK_EQ(wait_live(&e, "t1").generation, gen[0]);
	check_stream(&e, "t1", 2, false, head);

	/* (b) other code that also includes Tock: rebuilt from 0 */
	uint64_t d1 = first_diff(&e, "t1", 1, 3, head);
	uint64_t d2 = first_diff(&e, "t2", 1, 3, head);
	install(&e, "fc_more");
	fval_status st = wait_validation(&e, "t1", 2);
	CHECK_EQ(st.result, FVAL_DIFFERS);
	CHECK_EQ(st.action, FVAL_ACT_REBUILD);
	CHECK_EQ(st.position, d1);
	char want[200];
	snprintf(want, sizeof(want), FAIL_REASON "%" PRIu64, d1);
	CHECK_STREQ(st.reason, want);
	check_status_shows(&e, "t1", &st);
	st = wait_validation(&e, "t2", 2);
	CHECK_EQ(st.result, FVAL_DIFFERS);
	CHECK_EQ(st.position, d2);
	for (int i = 0; i < 2; i++) {
		gen[i] = wait_rebuilt(&e, tenants[i], gen[i]).generation;
		check_stream(&e, tenants[i], 3, false,
		    store_next_position(e.rt->store));
	}

	/* (b) the same events in other partitions: rebuilt again */
	head = store_next_position(e.rt->store);
	d1   = first_diff(&e, "t1", 3, 4, head);
	install(&e, "fc_moved");
	st = wait_validation(&e, "t1", 3);
	CHECK_EQ(st.result, FVAL_DIFFERS);
	CHECK_EQ(st.position, d1);
	wait_rebuilt(&e, "t1", gen[0]);
	check_stream(&e, "t1", 4, false, store_next_position(e.rt->store));
	wait_validation(&e, "t2", 3);
	wait_rebuilt(&e, "t2", gen[1]);
	check_stream(&e, "t2", 4, false, store_next_position(e.rt->store));
	env_stop(&e);
	printf("rebuild: equal code kept, other code rebuilt\n");
}

/* (c) on_code_change: fail. */
static void
test_fail(void)
{
	env  e;
	char reason[200];
	env_open(&e, "fail", "fc_base");
	commit_events(&e, "t1", N_T1);
	commit_events(&e, "t2", N_T2);
	uint64_t head = store_next_position(e.rt->store);
	uint64_t gen  = wait_live(&e, "t1").generation;
	wait_live(&e, "t2");
	uint64_t d = first_diff(&e, "t1", 1, 3, head);
	snprintf(reason, sizeof(reason), FAIL_REASON "%" PRIu64, d);

	install(&e, "fc_fail_more");
	fval_status st = wait_validation(&e, "t1", 1);
	CHECK_EQ(st.result, FVAL_DIFFERS);
	CHECK_EQ(st.action, FVAL_ACT_FAIL);
	CHECK_EQ(st.position, d);
	CHECK_STREQ(st.reason, reason);
	proc_status ps = wait_failed(&e, "t1", reason);
	CHECK_EQ(ps.generation, gen);
	CHECK_EQ(ps.position, head);
	wait_validation(&e, "t2", 1);
	/* status: failed with the reason, faulted in EventStoreDB's words */
	json_t *root, *x = status_entry(&e, "t1", &root);
	CHECK_STREQ(jstr(x, "state"), "failed");
	CHECK_STREQ(jstr(x, "reason"), reason);
	CHECK_STREQ(jstr(x, "status"), "faulted");
	CHECK_STREQ(jstr(x, "status_reason"), reason);
	CHECK_STREQ(jstr(json_object_get(x, "validation"), "action"), "fail");
	json_decref(root);

	/* the old stream is served; new events wait */
	commit_events(&e, "t1", 100);
	pt_sleep_ms(300);
	proc_get_status(proc(&e, "t1"), &ps);
	CHECK_EQ(ps.state, PROC_FAILED);
	CHECK_EQ(ps.position, head);
	check_stream(&e, "t1", 1, false, head);

	/* across a restart (the build on disk is still fc_fail_more) */
	env_stop(&e);
	env_start(&e);
	ps = wait_failed(&e, "t1", reason);
	CHECK_EQ(ps.position, head);
	check_stream(&e, "t1", 1, false, head);

	/* code that agrees with the stream again: validated, goes on */
	install(&e, "fc_fail_base");
	st = wait_validation(&e, "t1", 1);
	CHECK_EQ(st.result, FVAL_EQUAL);
	CHECK_EQ(st.until, head);
	wait_live(&e, "t1");
	head = store_next_position(e.rt->store);
	check_stream(&e, "t1", 1, false, head);

	/* differs again: stopped again; retry goes on with the new code */
	d = first_diff(&e, "t1", 1, 3, head);
	snprintf(reason, sizeof(reason), FAIL_REASON "%" PRIu64, d);
	install(&e, "fc_fail_more");
	st = wait_validation(&e, "t1", 2);
	CHECK_EQ(st.action, FVAL_ACT_FAIL);
	wait_failed(&e, "t1", reason);
	commit_events(&e, "t1", 50);
	CHECK_EQ(proc_command(proc(&e, "t1"), PROC_CMD_RETRY, 5000), SL_OK);
	ps = wait_live(&e, "t1");
	CHECK_EQ(ps.generation, gen);
	CHECK_EQ(ps.reason[0], '\0');

	/* reset rebuilds with the new code */
	CHECK_EQ(proc_command(proc(&e, "t1"), PROC_CMD_RESET, 5000), SL_OK);
	wait_rebuilt(&e, "t1", gen);
	check_stream(&e, "t1", 3, false, store_next_position(e.rt->store));
	/* and a restart finds nothing stopped */
	env_stop(&e);
	env_start(&e);
	wait_live(&e, "t1");
	env_stop(&e);
	printf("fail: stopped with the position, kept, lifted\n");
}

/* (d) a reload during a validation cancels it; the stop does too. */
static void
test_cancel(void)
{
	env e;
	env_open(&e, "cancel", "fc_base");
	commit_events(&e, "t1", N_T1);
	commit_events(&e, "t2", N_T2);
	uint64_t head = store_next_position(e.rt->store);
	uint64_t gen  = wait_live(&e, "t1").generation;
	wait_live(&e, "t2");

	/* 5 ms per event: some seconds for t1's */
	install(&e, "fc_slow");
	wait_running(&e, "t1", 1);
	pt_sleep_ms(200);
	fval_status st;
	CHECK(fval_get(e.rt->fval, "t1", FC_ID, &st));
	CHECK_EQ(st.state, FVAL_RUNNING);
	CHECK_EQ(st.until, head);
	check_status_shows(&e, "t1", &st);

	install(&e, "fc_base");
	st = wait_validation(&e, "t1", 2);
	CHECK_EQ(st.cancelled, 1);
	CHECK_EQ(st.result, FVAL_EQUAL);
	CHECK_EQ(wait_live(&e, "t1").generation, gen);
	check_stream(&e, "t1", 1, false, head);
	st = wait_validation(&e, "t2", 2);
	CHECK_EQ(st.result, FVAL_EQUAL);

	/* the stop cancels a validation under way, within a call or so */
	install(&e, "fc_slow");
	wait_running(&e, "t1", 3);
	pt_sleep_ms(100);
	int64_t t = pt_now_ms();
	env_stop(&e);
	int64_t ms = pt_now_ms() - t;
	printf("cancel: stopped during a validation in %lld ms\n",
	    (long long) ms);
	CHECK(ms < 5000); /* the validation alone would take seconds */
	/* nothing of it was acted on */
	env_start(&e);
	CHECK_EQ(wait_live(&e, "t1").generation, gen);
	check_stream(&e, "t1", 1, false, head);
	env_stop(&e);
}

/* (e) a filter built for ABI 1.2: no on_code_change, rebuilt. */
static void
test_legacy(void)
{
	env e;
	env_open(&e, "legacy", "fc_legacy_base");
	commit_events(&e, "t1", N_T1);
	uint64_t head = store_next_position(e.rt->store);
	uint64_t gen  = wait_live(&e, "t1").generation;
	check_stream(&e, "t1", 1, true, head);
	install(&e, "fc_legacy_same");
	fval_status st = wait_validation(&e, "t1", 1);
	CHECK_EQ(st.result, FVAL_EQUAL);
	install(&e, "fc_legacy_more");
	st = wait_validation(&e, "t1", 2);
	CHECK_EQ(st.result, FVAL_DIFFERS);
	CHECK_EQ(st.action, FVAL_ACT_REBUILD);
	wait_rebuilt(&e, "t1", gen);
	check_stream(&e, "t1", 3, true, store_next_position(e.rt->store));
	env_stop(&e);
	printf("legacy: a 1.2 filter validated and rebuilt\n");
}

/* An on_code_change the host does not know refuses the plugin. */
static void
test_bad_mode(void)
{
	char      cache[4200], err[1024];
	registry *r;
	snprintf(cache, sizeof(cache), "%s/bad-cache", tu_tmpdir());
	CHECK_EQ(registry_create(cache, &r), SL_OK);
	CHECK_EQ(
	    registry_load_file(r, FC_DIR "/fc_bad_mode.so", err, sizeof(err)),
	    SL_EPLUGIN);
	CHECK(strstr(err, "unknown on_code_change 7") != NULL);
	CHECK(strstr(err, "code_change") != NULL);
	CHECK_EQ(registry_projection_count(r), 0);
	registry_destroy(r);
}

int
main(void)
{
	test_bad_mode();
	test_retried();
	test_rebuild_under_way();
	test_rebuild();
	test_fail();
	test_cancel();
	test_legacy();
	return 0;
}
