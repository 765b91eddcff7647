/*
 * Filters run by processors, with real plugins (filter_flaky,
 * filter_unpartitioned, account_filters) on a real log and read model store:
 * their streams compared with a recomputation over the log; failing
 * partitions that wait while the others go on; an unpartitioned filter
 * stopping at its failing event; "do not retry" failures waiting for an
 * operator; and the operator commands pause, resume, retry and reset.
 */
#include "projection_testutil.h"

#include "event.h"
#include "log.h"

#define FLAKY      "cece5212-dc74-4a93-89b5-f4231e294470"
#define FLAKY_PROJ "2f9fbf60-9be2-4ce9-9afc-e3c231f6116a"
#define T_EVENTS   "67e19a59-fde4-445e-9080-d11446024b91"
#define PUBLIC_OPENINGS "76b549ab-de36-4185-8ed1-2a92ed32b7b0"

#define N_STREAMS 10
#define MAX_ENTRIES 4096


/* ---- a stream as stored ---- */

typedef struct entry {
	uint64_t spos, lpos, other; /* other: partition / whole position */
	char     part[64];
} entry;

typedef struct entries {
	entry  v[MAX_ENTRIES];
	size_t n;
} entries;

static int
collect(void *arg, uint64_t spos, uint64_t lpos, uint64_t other_pos, const char *part,
    size_t plen)
{
	entries *l = arg;
	CHECK(l->n < MAX_ENTRIES);
	entry *x = &l->v[l->n++];
	x->other = other_pos;
	x->spos  = spos;
	x->lpos  = lpos;
	CHECK(plen < sizeof(x->part));
	memcpy(x->part, part != NULL ? part : "", plen);
	x->part[plen] = '\0';
	return 0;
}

/* The whole stream, or one partition, from position 0. */
static void
read_stream(rmstore *rm, const char *filter, const char *part, entries *out)
{
	uint64_t next;
	bool     more;
	out->n = 0;
	CHECK_EQ(rm_stream_read(rm, filter, part, part ? strlen(part) : 0, 0,
	             0, collect, out, &next, &more, NULL),
	    SL_OK);
	CHECK(!more);
	CHECK_EQ(next, out->n);
	for (size_t i = 0; i < out->n; i++)
		CHECK_EQ(out->v[i].spos, i); /* gap-free from 0 */
}

/* ---- the same, recomputed over the log ---- */

typedef struct recompute {
	const char *tenant;
	bool        public_only;
	/* per stream s0..s9: the first event that fails for good (or MAX) */
	uint64_t    fatal_from[N_STREAMS];
	entries     want; /* in log order */
} recompute;

static int
recompute_one(void *arg, uint64_t pos, const void *data, size_t len)
{
	recompute   *rc = arg;
	msgpack_zone z;
	ev_view      ev;
	CHECK(msgpack_zone_init(&z, 1024));
	CHECK_EQ(ev_decode(data, len, pos, &z, &ev), SL_OK);
	int k = -1;
	if (strcmp(ev.tenant, rc->tenant) == 0
	    && (!rc->public_only || ev.is_public)
	    && (strcmp(ev.type, "Tick") == 0 || strcmp(ev.type, "Tock") == 0)
	    && sscanf(ev.stream, "s%d", &k) == 1 && k >= 0 && k < N_STREAMS
	    && pos < rc->fatal_from[k]) {
		entry *x = &rc->want.v[rc->want.n++];
		x->lpos  = pos;
		snprintf(x->part, sizeof(x->part), "%s", ev.stream);
	}
	msgpack_zone_destroy(&z);
	return 0;
}

static void
recompute_log(store *s, recompute *rc)
{
	rc->want.n = 0;
	CHECK_EQ(store_scan(s, 0, SIZE_MAX, recompute_one, rc, NULL), SL_OK);
}

/*
 * The flaky filter's stream equals the recomputation: each partition holds
 * exactly its events in log order; the whole stream holds every entry once,
 * each partition's in the same order (a retried partition's entries come
 * later than the log order, never out of their own order).
 */
static void
check_partitioned(rmstore *rm, const char *filter, const recompute *rc)
{
	static entries whole, part;
	read_stream(rm, filter, NULL, &whole);
	CHECK_EQ(whole.n, rc->want.n);
	for (int k = 0; k < N_STREAMS; k++) {
		char name[16];
		snprintf(name, sizeof(name), "s%d", k);
		read_stream(rm, filter, name, &part);
		size_t w = 0, in_whole = 0;
		for (size_t i = 0; i < rc->want.n; i++) {
			if (strcmp(rc->want.v[i].part, name) != 0)
				continue;
			CHECK(w < part.n);
			CHECK_EQ(part.v[w].lpos, rc->want.v[i].lpos);
			w++;
		}
		CHECK_EQ(w, part.n);
		for (size_t i = 0; i < whole.n; i++) {
			if (strcmp(whole.v[i].part, name) != 0)
				continue;
			CHECK(in_whole < part.n);
			CHECK_EQ(whole.v[i].lpos, part.v[in_whole].lpos);
			/* each side names the other's position */
			CHECK_EQ(whole.v[i].other, in_whole);
			CHECK_EQ(part.v[in_whole].other, whole.v[i].spos);
			in_whole++;
		}
		CHECK_EQ(in_whole, part.n);
	}
}

/* Random Tick / Tock / Other events on s0..s9 of t1, and some of t2. */
static void
commit_mixed(store *s, uint64_t *rng, int n)
{
	static const char *types[] = { "Tick", "Tock", "Other" };
	for (int i = 0; i < n; i++) {
		*rng ^= *rng << 13;
		*rng ^= *rng >> 7;
		*rng ^= *rng << 17;
		char stream[16];
		snprintf(stream, sizeof(stream), "s%d",
		    (int) (*rng % N_STREAMS));
		pt_commit1(s, (*rng >> 20) % 9 == 0 ? "t2" : "t1", stream,
		    types[(*rng >> 8) % 3], "{}");
	}
}

static void
wait_n_failing(processor *p, size_t n)
{
	proc_status st;
	int64_t     end = pt_now_ms() + PT_WAIT_MS;
	do {
		proc_get_status(p, &st);
		if (st.n_failing == n)
			return;
		pt_sleep_ms(2);
	} while (pt_now_ms() < end);
	fprintf(stderr, "timeout: %zu failing, want %zu\n", st.n_failing, n);
	exit(1);
}

/* ---- partitioned ---- */

static void
test_partitioned(void)
{
	pt_env e;
	pt_env_open(&e, "part", SL_TEST_PLUGIN_DIR "/filter_flaky.so");
	const proj_def *def = pt_find(e.r, "flaky");
	CHECK(def_is_filter(def));
	uint64_t rng = 77;

	commit_mixed(e.s, &rng, 300);
	/* s3 fails twice, s5 once with its own delay, s7 for good */
	uint64_t flaky3 = pt_commit1(
	    e.s, "t1", "s3", "Tick", "{\"fail_times\":2}");
	pt_commit1(e.s, "t1", "s5", "Tock",
	    "{\"fail_times\":1,\"retry_after_ms\":30}");
	uint64_t fatal7 = pt_commit1(e.s, "t1", "s7", "Tick", "{\"fatal\":true}");
	commit_mixed(e.s, &rng, 300);
	uint64_t head = store_next_position(e.s);

	processor *p;
	CHECK_EQ(proc_start(e.s, e.rm, "t1", def, 50, &p), SL_OK);
	proc_failing f;
	pt_wait_unit(p, "s3", 1, PT_WAIT_MS, &f);
	CHECK_EQ(f.position, flaky3);
	CHECK_STREQ(f.reason, "flaky attempt 0");
	/* the others (not s7) go on to the head while s3 waits */
	pt_wait_position(p, head, PT_WAIT_MS);
	wait_n_failing(p, 1); /* s3 and s5 recovered, s7 not */
	pt_wait_unit(p, "s7", 1, PT_WAIT_MS, &f);
	CHECK_EQ(f.position, fatal7);
	CHECK(!f.retry && f.next_try_ns == 0);
	CHECK(strstr(f.reason, "fatal: Tick at position") != NULL);

	recompute *rc = calloc(1, sizeof(*rc));
	CHECK(rc != NULL);
	rc->tenant = "t1";
	for (int k = 0; k < N_STREAMS; k++)
		rc->fatal_from[k] = UINT64_MAX;
	rc->fatal_from[7] = fatal7;
	recompute_log(e.s, rc);
	check_partitioned(e.rm, FLAKY, rc);

	/* not retried by itself; an operator's retry tries it again */
	pt_sleep_ms(100);
	pt_wait_unit(p, "s7", 1, PT_WAIT_MS, &f);
	CHECK_EQ(f.attempts, 1);
	CHECK_EQ(proc_command(p, PROC_CMD_RETRY, 5000), SL_OK);
	pt_wait_unit(p, "s7", 2, PT_WAIT_MS, &f);
	CHECK(!f.retry);

	/* the others keep going live; s7's new events wait */
	commit_mixed(e.s, &rng, 100);
	pt_commit1(e.s, "t1", "s7", "Tock", "{}");
	head = store_next_position(e.s);
	proc_status st = pt_wait_position(p, head, PT_WAIT_MS);
	CHECK_EQ(st.n_failing, 1);
	recompute_log(e.s, rc);
	check_partitioned(e.rm, FLAKY, rc);

	/* a restart keeps s7 waiting at the same event */
	proc_stop(p);
	CHECK_EQ(proc_start(e.s, e.rm, "t1", def, 50, &p), SL_OK);
	pt_wait_position(p, head, PT_WAIT_MS);
	pt_wait_unit(p, "s7", 2, PT_WAIT_MS, &f);
	CHECK_EQ(f.position, fatal7);
	check_partitioned(e.rm, FLAKY, rc);

	/* reset: rebuilt from 0 into a new generation; s7 fails again */
	proc_get_status(p, &st);
	uint64_t gen = st.generation;
	CHECK_EQ(proc_command(p, PROC_CMD_RESET, 5000), SL_OK);
	pt_wait_unit(p, "s7", 1, PT_WAIT_MS, &f);
	CHECK_EQ(f.attempts, 1);
	/* a rebuild with a failing partition replaces the served stream
	 * once it reaches the head, s7 failing in it as it did before */
	int64_t end = pt_now_ms() + PT_WAIT_MS;
	do {
		proc_get_status(p, &st);
		CHECK(pt_now_ms() < end);
		pt_sleep_ms(2);
	} while (st.rebuilding || st.position < head);
	CHECK_EQ(st.generation, gen + 1);
	CHECK(st.n_failing >= 1);
	wait_n_failing(p, 1); /* s3 and s5 recover by retries, s7 not */
	pt_wait_unit(p, "s7", 1, PT_WAIT_MS, &f);
	CHECK_EQ(f.position, fatal7);
	check_partitioned(e.rm, FLAKY, rc);
	proc_stop(p);
	free(rc);
	pt_env_close(&e);
}

static bool
served_kind_is(rmstore *rm, const char *filter, sl_filter_kind k)
{
	uint64_t kind;
	CHECK_EQ(rm_served_kind(rm, filter, &kind), SL_OK);
	return kind == (uint64_t) k;
}

/* A filter that changed kind (partitioned -> unpartitioned) rebuilds; until
 * the switch its served stream keeps the old shape (partitions readable,
 * the served kind says partitioned), then the new one. */
static void
test_kind_change(void)
{
	pt_env e;
	pt_env_open(&e, "kind", SL_TEST_PLUGIN_DIR "/filter_flaky.so");
	const proj_def *def = pt_find(e.r, "flaky");
	uint64_t        rng = 99;
	commit_mixed(e.s, &rng, 200);
	uint64_t head = store_next_position(e.s);

	processor *p;
	CHECK_EQ(proc_start(e.s, e.rm, "t1", def, 50, &p), SL_OK);
	pt_wait_position(p, head, PT_WAIT_MS);
	CHECK(served_kind_is(e.rm, FLAKY, SL_FILTER_PARTITIONED));
	static entries part, whole;
	read_stream(e.rm, FLAKY, "s1", &part);
	CHECK(part.n > 0);
	CHECK_EQ(proc_command(p, PROC_CMD_PAUSE, 5000), SL_OK);
	proc_stop(p);

	proj_def changed    = *def;
	changed.filter_kind = SL_FILTER_UNPARTITIONED;
	changed.def_hash ^= 0x9e3779b97f4a7c15ULL;
	CHECK_EQ(proc_start(e.s, e.rm, "t1", &changed, 50, &p), SL_OK);
	proc_status st;
	int64_t     end = pt_now_ms() + PT_WAIT_MS;
	do {
		proc_get_status(p, &st);
		CHECK(pt_now_ms() < end);
		pt_sleep_ms(2);
	} while (!st.paused || !st.rebuilding);
	/* paused mid-rebuild: the old shape is served */
	CHECK(served_kind_is(e.rm, FLAKY, SL_FILTER_PARTITIONED));
	size_t before = part.n;
	read_stream(e.rm, FLAKY, "s1", &part);
	CHECK_EQ(part.n, before);

	CHECK_EQ(proc_command(p, PROC_CMD_RESUME, 5000), SL_OK);
	end = pt_now_ms() + PT_WAIT_MS;
	do {
		proc_get_status(p, &st);
		CHECK(pt_now_ms() < end);
		pt_sleep_ms(2);
	} while (st.rebuilding || st.position < head);
	CHECK(served_kind_is(e.rm, FLAKY, SL_FILTER_UNPARTITIONED));
	read_stream(e.rm, FLAKY, "s1", &part);
	CHECK_EQ(part.n, 0); /* no partitions in the new shape */
	read_stream(e.rm, FLAKY, NULL, &whole);
	CHECK(whole.n > 0);
	for (size_t i = 0; i < whole.n; i++)
		CHECK_STREQ(whole.v[i].part, "");
	proc_stop(p);
	pt_env_close(&e);
}

/* The projection of the same plugin: retry state seen, keys wait alone. */
static void
test_projection_retry_state(void)
{
	pt_env e;
	pt_env_open(&e, "proj", SL_TEST_PLUGIN_DIR "/filter_flaky.so");
	const proj_def *def = pt_find(e.r, "flaky_counts");
	CHECK(!def_is_filter(def));

	for (int i = 0; i < 4; i++) {
		pt_commit1(e.s, "t1", "a", "Tick", "{}");
		pt_commit1(e.s, "t1", "b", "Tock", "{}");
	}
	pt_commit1(e.s, "t1", "a", "Tick", "{\"fail_times\":3}");
	pt_commit1(e.s, "t1", "b", "Tick", "{}");
	uint64_t head = store_next_position(e.s);

	processor *p;
	CHECK_EQ(proc_start(e.s, e.rm, "t1", def, 100, &p), SL_OK);
	pt_wait_position(p, head, PT_WAIT_MS);
	wait_n_failing(p, 0);
	CHECK_EQ(pt_state_i64(e.rm, FLAKY_PROJ, "a", "n"), 5);
	/* handled on attempt 3, after three failures */
	CHECK_EQ(pt_state_i64(e.rm, FLAKY_PROJ, "a", "last_attempt"), 3);
	CHECK_EQ(pt_state_i64(e.rm, FLAKY_PROJ, "b", "n"), 5);
	CHECK_EQ(pt_state_i64(e.rm, FLAKY_PROJ, "b", "last_attempt"), 0);
	proc_stop(p);
	pt_env_close(&e);
}

/* ---- unpartitioned ---- */

static void
wait_state(processor *p, proc_state want, uint64_t pos, proc_status *out)
{
	int64_t end = pt_now_ms() + PT_WAIT_MS;
	do {
		proc_get_status(p, out);
		if (out->state == want && out->position == pos)
			return;
		pt_sleep_ms(2);
	} while (pt_now_ms() < end);
	fprintf(stderr, "timeout: %s at %" PRIu64 ", want %s at %" PRIu64 "\n",
	    proc_state_name(out->state), out->position, proc_state_name(want),
	    pos);
	exit(1);
}

static void
test_unpartitioned(void)
{
	pt_env e;
	pt_env_open(&e, "unpart", SL_TEST_PLUGIN_DIR "/filter_unpartitioned.so");
	const proj_def *def = pt_find(e.r, "t_events");
	uint64_t        rng = 5;

	commit_mixed(e.s, &rng, 100);
	uint64_t bad = pt_commit1(e.s, "t1", "s1", "Tock", "{\"fail_times\":2}");
	commit_mixed(e.s, &rng, 100);
	uint64_t head = store_next_position(e.s);

	processor *p;
	proc_status st;
	CHECK_EQ(proc_start(e.s, e.rm, "t1", def, 30, &p), SL_OK);
	/* it stops at the failing event: nothing after it is handled */
	wait_state(p, PROC_FAILING, bad, &st);
	CHECK_STREQ(st.reason, "flaky attempt 0");
	CHECK_EQ(st.n_failing, 1);
	proc_failing f;
	CHECK_EQ(proc_get_failing(p, &f, 1), 1);
	CHECK_STREQ(f.partition, "");
	CHECK_EQ(f.position, bad);
	static entries whole;
	read_stream(e.rm, T_EVENTS, NULL, &whole);
	for (size_t i = 0; i < whole.n; i++)
		CHECK(whole.v[i].lpos < bad);

	st = pt_wait_position(p, head, PT_WAIT_MS);
	CHECK_EQ(st.n_failing, 0);
	/* the stream, in log order exactly */
	recompute *rc = calloc(1, sizeof(*rc));
	CHECK(rc != NULL);
	rc->tenant = "t1";
	for (int k = 0; k < N_STREAMS; k++)
		rc->fatal_from[k] = UINT64_MAX;
	recompute_log(e.s, rc);
	read_stream(e.rm, T_EVENTS, NULL, &whole);
	CHECK_EQ(whole.n, rc->want.n);
	for (size_t i = 0; i < whole.n; i++) {
		CHECK_EQ(whole.v[i].lpos, rc->want.v[i].lpos);
		CHECK_STREQ(whole.v[i].part, "");
	}

	/* "do not retry": failed, waits for an operator */
	uint64_t fatal = pt_commit1(e.s, "t1", "s2", "Tick", "{\"fatal\":true}");
	pt_commit1(e.s, "t1", "s3", "Tick", "{}");
	wait_state(p, PROC_FAILED, fatal, &st);
	CHECK(strstr(st.reason, "fatal: Tick") != NULL);
	CHECK_EQ(st.attempts, 1);
	pt_sleep_ms(100);
	proc_get_status(p, &st);
	CHECK_EQ(st.state, PROC_FAILED);
	CHECK_EQ(st.attempts, 1);
	CHECK_EQ(proc_command(p, PROC_CMD_RETRY, 5000), SL_OK);
	int64_t end = pt_now_ms() + PT_WAIT_MS;
	do {
		proc_get_status(p, &st);
		pt_sleep_ms(2);
	} while (st.attempts < 2 && pt_now_ms() < end);
	CHECK_EQ(st.attempts, 2);
	CHECK_EQ(st.state, PROC_FAILED);
	CHECK_EQ(st.position, fatal);

	/* pause (kept across a restart) and resume */
	CHECK_EQ(proc_command(p, PROC_CMD_PAUSE, 5000), SL_OK);
	wait_state(p, PROC_PAUSED, fatal, &st);
	CHECK(st.paused);
	proc_stop(p);
	CHECK_EQ(proc_start(e.s, e.rm, "t1", def, 30, &p), SL_OK);
	wait_state(p, PROC_PAUSED, fatal, &st);
	CHECK_EQ(proc_command(p, PROC_CMD_RESUME, 5000), SL_OK);
	wait_state(p, PROC_FAILED, fatal, &st);
	CHECK(!st.paused);
	proc_stop(p);
	free(rc);
	pt_env_close(&e);
}

/* ---- pause, resume and reset of a projection while events arrive ---- */

static void
test_commands(void)
{
	pt_env e;
	pt_env_open(&e, "cmds", SL_TEST_PLUGIN_DIR "/filter_flaky.so");
	const proj_def *def = pt_find(e.r, "flaky_counts");
	for (int i = 0; i < 50; i++)
		pt_commit1(e.s, "t1", i % 2 ? "a" : "b", "Tick", "{}");
	uint64_t   head = store_next_position(e.s);
	processor *p;
	CHECK_EQ(proc_start(e.s, e.rm, "t1", def, 7, &p), SL_OK);
	proc_status st = pt_wait_position(p, head, PT_WAIT_MS);
	CHECK_EQ(st.generation, 1);

	CHECK_EQ(proc_command(p, PROC_CMD_PAUSE, 5000), SL_OK);
	for (int i = 0; i < 10; i++)
		pt_commit1(e.s, "t1", "a", "Tick", "{}");
	pt_sleep_ms(50);
	proc_get_status(p, &st);
	CHECK_EQ(st.state, PROC_PAUSED);
	CHECK_EQ(st.position, head);
	CHECK_EQ(pt_state_i64(e.rm, FLAKY_PROJ, "a", "n"), 25);
	CHECK_EQ(proc_command(p, PROC_CMD_RESUME, 5000), SL_OK);
	head = store_next_position(e.s);
	pt_wait_position(p, head, PT_WAIT_MS);
	CHECK_EQ(pt_state_i64(e.rm, FLAKY_PROJ, "a", "n"), 35);

	/* reset: a new generation, built while the old one answers */
	CHECK_EQ(proc_command(p, PROC_CMD_RESET, 5000), SL_OK);
	for (int i = 0; i < 10; i++) {
		CHECK(pt_state_i64(e.rm, FLAKY_PROJ, "b", "n") == 25);
		pt_commit1(e.s, "t1", "c", "Tock", "{}");
	}
	head = store_next_position(e.s);
	int64_t end = pt_now_ms() + PT_WAIT_MS;
	do {
		st = pt_wait_position(p, head, PT_WAIT_MS);
	} while (st.generation != 2 && pt_now_ms() < end);
	CHECK_EQ(st.generation, 2);
	CHECK(!st.rebuilding);
	CHECK_EQ(pt_state_i64(e.rm, FLAKY_PROJ, "a", "n"), 35);
	CHECK_EQ(pt_state_i64(e.rm, FLAKY_PROJ, "b", "n"), 25);
	CHECK_EQ(pt_state_i64(e.rm, FLAKY_PROJ, "c", "n"), 10);
	/* an unknown command */
	CHECK_EQ(proc_command(p, (proc_cmd) 99, 100), SL_EINVAL);
	proc_stop(p);
	pt_env_close(&e);
}

/* ---- public filter: public events only ---- */

static void
test_public(void)
{
	pt_env e;
	pt_env_open(&e, "pub", SL_PLUGIN_DIR "/account_filters.so");
	const proj_def *def = pt_find(e.r, "public account openings");
	CHECK(def->filter_kind == SL_FILTER_PUBLIC);
	pt_event open = { .type = "DebitAccountOpened" };
	snprintf(open.json, sizeof(open.json),
	    "{\"account_id\":\"acc-1\",\"name\":\"A\",\"customer_id\":\"c1\"}");
	uint64_t p1 = pt_commit_ex(e.s, "t1", "acc-1", &open, 1, true);
	snprintf(open.json, sizeof(open.json),
	    "{\"account_id\":\"acc-2\",\"name\":\"B\",\"customer_id\":\"c1\"}");
	pt_commit_ex(e.s, "t1", "acc-2", &open, 1, false); /* private */
	snprintf(open.json, sizeof(open.json), "{\"name\":\"C\"}");
	uint64_t p3 = pt_commit_ex(e.s, "t1", "acc-3", &open, 1, true);
	pt_event debit = { .type = "DebitPerformed" };
	snprintf(debit.json, sizeof(debit.json), "{\"amount\":5}");
	pt_commit_ex(e.s, "t1", "acc-1", &debit, 1, true);
	uint64_t head = store_next_position(e.s);

	processor *p;
	CHECK_EQ(proc_start(e.s, e.rm, "t1", def, 100, &p), SL_OK);
	proc_status st = pt_wait_position(p, head, PT_WAIT_MS);
	CHECK_EQ(st.n_failing, 0);
	static entries whole;
	read_stream(e.rm, PUBLIC_OPENINGS, NULL, &whole);
	CHECK_EQ(whole.n, 2);
	CHECK_EQ(whole.v[0].lpos, p1);
	CHECK_STREQ(whole.v[0].part, "acc-1");
	CHECK_EQ(whole.v[1].lpos, p3);
	CHECK_STREQ(whole.v[1].part, "acc-3"); /* from the stream id */
	proc_stop(p);
	pt_env_close(&e);
}

int
main(void)
{
	log_set_level(SL_LOG_ERROR);
	test_partitioned();
	test_kind_change();
	test_projection_retry_state();
	test_unpartitioned();
	test_commands();
	test_public();
	printf("filter_processing_test: ok\n");
	return 0;
}
