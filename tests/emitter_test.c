/*
 * emitter_test: the emitting projection engine (runtime/processing/emitter.c) on a
 * real log (store_open in a temp dir) with real ABI 1.2 plugins
 * (tests/plugins/emit_*.c): what it writes, event by event; the result
 * stream; restart from the checkpoint without duplicates; a definition
 * change resetting and rewriting identical streams; one-time queries and
 * transient runs; status and back-pressure; failures and retries; the load
 * checks of declared streams.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emitter.h"
#include "proc_internal.h" /* proc_cache_keep */
#include "host.h"
#include "projection_testutil.h"

#define TENANT        "t1"
#define COUNTER_SO    SL_TEST_PLUGIN_DIR "/emit_counter.so"
#define COUNTER_V2_SO SL_TEST_PLUGIN_DIR "/v2/emit_counter_v2.so"
#define SLOW_SO       SL_TEST_PLUGIN_DIR "/emit_slow.so"

static proj_settings
defaults(void)
{
	proj_settings s = {
		.checkpoint_after_ms                  = 0,
		.checkpoint_handled_threshold         = 4000,
		.checkpoint_unhandled_bytes_threshold = 10u << 20,
		.pending_events_threshold             = 5000,
		.max_write_batch_length               = 500,
		.max_allowed_writes_in_flight         = 0,
	};
	return s;
}

static store *
open_store(const char *name)
{
	char   path[4200];
	store *s;
	snprintf(path, sizeof(path), "%s/%s", tu_tmpdir(), name);
	CHECK_EQ(store_open(path, 256u << 20, false, &s), SL_OK);
	return s;
}

static registry *
load(const char *so, const char *cache)
{
	char      dir[4200], err[1024];
	registry *r;
	snprintf(dir, sizeof(dir), "%s/%s", tu_tmpdir(), cache);
	CHECK_EQ(registry_create(dir, &r), SL_OK);
	int rc = registry_load_file(r, so, err, sizeof(err));
	if (rc != SL_OK) {
		fprintf(stderr, "loading %s: %s\n", so, err);
		exit(1);
	}
	return r;
}

/* ---- reading streams back ---- */

typedef struct sev {
	char type[64];
	char content[256]; /* JSON */
	char correlation[64];
} sev;

typedef struct sread {
	sev   *v;
	size_t n, max;
} sread;

static int
stream_cb(void *arg, uint64_t position, const void *data, size_t len)
{
	sread       *r = arg;
	msgpack_zone z;
	ev_view      v;
	CHECK(msgpack_zone_init(&z, 1024));
	CHECK_EQ(ev_decode(data, len, position, &z, &v), SL_OK);
	CHECK(r->n < r->max);
	sev *o = &r->v[r->n++];
	snprintf(o->type, sizeof(o->type), "%s", v.type);
	char *j = mp_to_json_text(&v.content);
	snprintf(o->content, sizeof(o->content), "%s", j);
	snprintf(
	    o->correlation, sizeof(o->correlation), "%s", v.correlation_id);
	free(j);
	msgpack_zone_destroy(&z);
	return 0;
}

/* The events of a stream (from its first revision that is still there). */
static size_t
read_stream(
    store *s, const char *tenant, const char *stream, sev *out, size_t max)
{
	sread r = { out, 0, max };
	CHECK_EQ(
	    store_scan_stream(s, tenant, stream, 0, max + 1, stream_cb, &r),
	    SL_OK);
	return r.n;
}

/* ---- waiting on a run ---- */

static eproj_status
wait_done(eproj *e, uint64_t target)
{
	eproj_status st;
	int64_t      end = pt_now_ms() + PT_WAIT_MS;
	for (;;) {
		eproj_get_status(e, &st);
		/* past the target and past its own writes after it (the
		 * run skips them: position reaches the head) */
		if (st.position >= target && st.position >= st.head
		    && st.writes_in_flight == 0 && st.buffered_events == 0)
			return st;
		if (pt_now_ms() > end) {
			fprintf(stderr,
			    "timeout: run at %" PRIu64
			    " (%s: %s, attempts %u), "
			    "wanted %" PRIu64 "\n",
			    st.position, st.status, st.reason, st.attempts,
			    target);
			exit(1);
		}
		pt_sleep_ms(2);
	}
}

static eproj_status
wait_status(eproj *e, const char *status, uint32_t min_attempts)
{
	eproj_status st;
	int64_t      end = pt_now_ms() + PT_WAIT_MS;
	for (;;) {
		eproj_get_status(e, &st);
		if (strcmp(st.status, status) == 0
		    && st.attempts >= min_attempts && st.writes_in_flight == 0)
			return st;
		if (pt_now_ms() > end) {
			fprintf(stderr,
			    "timeout waiting for %s: %s (%s) attempts %u\n",
			    status, st.status, st.reason, st.attempts);
			exit(1);
		}
		pt_sleep_ms(2);
	}
}

/* Wait until n keys are failing, the run is at pos or beyond and nothing
 * is in flight. */
static eproj_status
wait_failing(eproj *e, size_t n, uint64_t pos)
{
	eproj_status st;
	int64_t      end = pt_now_ms() + PT_WAIT_MS;
	for (;;) {
		eproj_get_status(e, &st);
		if (st.n_failing == n && st.position >= pos
		    && st.writes_in_flight == 0 && st.buffered_events == 0)
			return st;
		if (pt_now_ms() > end) {
			fprintf(stderr,
			    "timeout waiting for %zu failing at %" PRIu64
			    ": %zu failing, at %" PRIu64 " (%s: %s)\n",
			    n, pos, st.n_failing, st.position, st.status,
			    st.reason);
			exit(1);
		}
		pt_sleep_ms(2);
	}
}

/* The failing key (the only one): its event, attempts, retry, reason. */
static void
check_unit(eproj *e, const char *key, uint64_t pos, uint32_t min_attempts,
    bool retry, const char *reason_has)
{
	proc_failing f[2];
	CHECK_EQ(eproj_get_failing(e, f, 2), 1);
	CHECK_STREQ(f[0].partition, key);
	CHECK_EQ(f[0].position, pos);
	CHECK(f[0].attempts >= min_attempts);
	CHECK_EQ(f[0].retry, retry);
	CHECK(retry ? f[0].next_try_ns > 0 : f[0].next_try_ns == 0);
	CHECK(strstr(f[0].reason, reason_has) != NULL);
}

/* Wait until the run holds at most max states in memory; their number. */
static uint64_t
wait_cached(eproj *e, uint64_t max)
{
	eproj_status st;
	int64_t      end = pt_now_ms() + PT_WAIT_MS;
	for (;;) {
		eproj_get_status(e, &st);
		if (st.partitions_cached <= max)
			return st.partitions_cached;
		if (pt_now_ms() > end) {
			fprintf(stderr,
			    "timeout: %" PRIu64 " states cached, wanted at "
			    "most %" PRIu64 " (%" PRIu64
			    " writes in flight)\n",
			    st.partitions_cached, max, st.writes_in_flight);
			exit(1);
		}
		pt_sleep_ms(2);
	}
}

/* ---- states ---- */

typedef struct kst {
	char key[64];
	char state[128];
	char result[128]; /* "" when none */
} kst;

typedef struct kread {
	kst   *v;
	size_t n, max;
} kread;

static void
json_of(const void *data, size_t len, char *out, size_t cap)
{
	msgpack_unpacked up;
	size_t           off = 0;
	msgpack_unpacked_init(&up);
	CHECK(msgpack_unpack_next(&up, data, len, &off)
	    == MSGPACK_UNPACK_SUCCESS);
	char *j = mp_to_json_text(&up.data);
	snprintf(out, cap, "%s", j);
	free(j);
	msgpack_unpacked_destroy(&up);
}

/* eproj_cancel_fn: cancels the query at its fourth event */
static bool
cancel_after_3(void *arg)
{
	int *n = arg;
	return ++*n > 3;
}

static int
state_cb(void *arg, const char *key, size_t key_len, const void *state,
    size_t state_len, const void *result, size_t result_len)
{
	kread *r = arg;
	CHECK(r->n < r->max);
	kst *o = &r->v[r->n++];
	snprintf(o->key, sizeof(o->key), "%.*s", (int) key_len, key);
	json_of(state, state_len, o->state, sizeof(o->state));
	o->result[0] = '\0';
	if (result != NULL)
		json_of(result, result_len, o->result, sizeof(o->result));
	return 0;
}

/* ---- the counter: what it must have written ---- */

/* Deposits, in log order: the stream (account) of each. */
typedef struct expect {
	char     stream[32][32];
	uint64_t rev[32];
	size_t   n;
} expect;

static void
deposit(store *s, expect *x, const char *account, const char *json)
{
	uint64_t rev;
	CHECK_EQ(store_stream_next_revision(s, TENANT, account, &rev), SL_OK);
	pt_commit1(s, TENANT, account, "Deposited", json);
	snprintf(x->stream[x->n], sizeof(x->stream[0]), "%s", account);
	x->rev[x->n++] = rev;
}

/* Wait until e has read its checkpoint (status says how it goes on). */
static eproj *
wait_started(eproj *e)
{
	int64_t      end = pt_now_ms() + PT_WAIT_MS;
	eproj_status st;
	for (eproj_get_status(e, &st); st.status == NULL;
	     eproj_get_status(e, &st)) {
		CHECK(pt_now_ms() < end);
		pt_sleep_ms(1);
	}
	return e;
}

/* A continuous run of def on s's log (not stopped at start). */
static eproj *
start_continuous(store *s, const proj_def *def, proj_settings *set)
{
	eproj *e;
	CHECK_EQ(eproj_start(s, TENANT, def, CFG_MODE_CONTINUOUS, set, false, &e),
	    SL_OK);
	return wait_started(e);
}

/* A fresh log named log-<name> with emit_counter loaded (plugin cache
 * cache-<name>) and its streams claimed: its definition. */
static const proj_def *
counter_setup(const char *name, store **s, registry **r)
{
	char path[64], err[512];
	snprintf(path, sizeof(path), "log-%s", name);
	*s = open_store(path);
	snprintf(path, sizeof(path), "cache-%s", name);
	*r                  = load(COUNTER_SO, path);
	const proj_def *def = pt_find(*r, "emit_counter");
	CHECK_EQ(eproj_claim(*s, def, err, sizeof(err)), SL_OK);
	return def;
}

/*
 * Check every stream the counter wrote against x, recomputed here. by_key:
 * the links of "all-accounts" in log order per account only (a retried
 * key's writes come after what other keys wrote meanwhile).
 */
static void
check_counter_streams_by(store *s, const expect *x, bool by_key)
{
	static sev v[64];
	char       want[256], stream[128];
	/* every deposit linked, in log order (per key) */
	size_t n = read_stream(s, TENANT, "all-accounts", v, 64);
	CHECK_EQ(n, x->n);
	for (size_t i = 0; i < n && !by_key; i++) {
		CHECK_STREQ(v[i].type, "$>");
		snprintf(want, sizeof(want), "\"%" PRIu64 "@%s\"", x->rev[i],
		    x->stream[i]);
		CHECK_STREQ(v[i].content, want);
		CHECK_STREQ(v[i].correlation, "test");
	}
	for (size_t i = 0, k[2] = { 0, 0 }; i < n && by_key; i++) {
		CHECK_STREQ(v[i].type, "$>");
		CHECK_STREQ(v[i].correlation, "test");
		size_t a = strstr(v[i].content, "@account-1") != NULL ? 0 : 1;
		const char *acc = a == 0 ? "account-1" : "account-2";
		while (k[a] < x->n && strcmp(x->stream[k[a]], acc) != 0)
			k[a]++;
		CHECK(k[a] < x->n);
		snprintf(want, sizeof(want), "\"%" PRIu64 "@%s\"",
		    x->rev[k[a]], acc);
		CHECK_STREQ(v[i].content, want);
		k[a]++;
	}
	/* per account: Counted every 3rd, a result every 5th, each linked
	 * into the root result stream (as EventStoreDB) */
	const char *accounts[] = { "account-1", "account-2" };
	size_t      results    = 0;
	for (size_t a = 0; a < 2; a++) {
		int count = 0;
		for (size_t i = 0; i < x->n; i++)
			if (strcmp(x->stream[i], accounts[a]) == 0)
				count++;
		snprintf(stream, sizeof(stream), "counts-%s", accounts[a]);
		n = read_stream(s, TENANT, stream, v, 64);
		CHECK_EQ(n, count / 3);
		for (size_t i = 0; i < n; i++) {
			CHECK_STREQ(v[i].type, "Counted");
			snprintf(want, sizeof(want),
			    "{\"key\":\"%s\",\"count\":%zu}", accounts[a],
			    3 * (i + 1));
			CHECK_STREQ(v[i].content, want);
		}
		snprintf(stream, sizeof(stream),
		    "$projections-emit_counter-%s-result", accounts[a]);
		n = read_stream(s, TENANT, stream, v, 64);
		CHECK_EQ(n, count / 5);
		for (size_t i = 0; i < n; i++) {
			CHECK_STREQ(v[i].type, "Result");
			snprintf(want, sizeof(want), "{\"fives\":%zu}", i + 1);
			CHECK_STREQ(v[i].content, want);
		}
		results += n;
	}
	n = read_stream(s, TENANT, "$projections-emit_counter-result", v, 64);
	CHECK_EQ(n, results);
	for (size_t i = 0; i < n; i++) {
		CHECK_STREQ(v[i].type, "$>");
		CHECK(
		    strstr(v[i].content, "@$projections-emit_counter-account-")
		    != NULL);
	}
}

static void
check_counter_streams(store *s, const expect *x)
{
	check_counter_streams_by(s, x, false);
}

static void
check_counter_states(store *s, const proj_def *def, const expect *x)
{
	kst   v[8];
	kread r = { v, 0, 8 };
	CHECK_EQ(eproj_read_states(s, TENANT, def, proj_def_result(def), NULL,
	             0, state_cb, &r),
	    SL_OK);
	CHECK_EQ(r.n, 2);
	for (size_t a = 0; a < 2; a++) {
		int count = 0;
		for (size_t i = 0; i < x->n; i++)
			if (strcmp(x->stream[i], v[a].key) == 0)
				count++;
		char want[64];
		snprintf(want, sizeof(want), "{\"count\":%d}", count);
		CHECK_STREQ(v[a].state, want);
		snprintf(want, sizeof(want), "{\"fives\":%d}", count / 5);
		CHECK_STREQ(v[a].result, want);
	}
	CHECK_STREQ(v[0].key, "account-1");
	CHECK_STREQ(v[1].key, "account-2");
}

static void
test_counter(void)
{
	store          *s   = open_store("log-counter");
	registry       *r   = load(COUNTER_SO, "cache-counter");
	const proj_def *def = pt_find(r, "emit_counter");
	char            err[512];
	proj_settings   set = defaults();
	expect          x;
	memset(&x, 0, sizeof(x));
	CHECK(eproj_is_emitting(def));
	CHECK_EQ(eproj_claim(s, def, err, sizeof(err)), SL_OK);

	/* 7 deposits on account-1, 3 on account-2, unselected events and
	 * another tenant's deposits in between */
	for (int i = 0; i < 10; i++) {
		deposit(s, &x, i % 3 == 2 ? "account-2" : "account-1",
		    "{\"amount\":1}");
		if (i % 4 == 0) {
			pt_commit1(s, TENANT, "account-1", "Renamed", "{}");
			pt_commit1(s, "t2", "account-1", "Deposited", "{}");
		}
	}
	pt_commit1(s, TENANT, "account-1", "Renamed", "{}");
	deposit(s, &x, "account-1", "{\"amount\":1}");
	uint64_t head = store_next_position(s);

	eproj *e;
	e = start_continuous(s, def, &set);
	eproj_status st = wait_done(e, head);
	CHECK_STREQ(st.status, "running");
	/* links, Counted, a result and its link in the root result stream */
	CHECK_EQ(st.emitted, 11 + 3 + 1 + 1);
	if (!(st.progress > 99.0 && st.progress <= 100.0))
		fprintf(stderr,
		    "progress %f pos %" PRIu64 " head %" PRIu64 "\n",
		    st.progress, st.position, st.head);
	CHECK(st.progress > 99.0 && st.progress <= 100.0);
	CHECK_EQ(st.attempts, 0);
	check_counter_streams(s, &x);
	check_counter_states(s, def, &x);

	/* another tenant saw nothing */
	sev v[4];
	CHECK_EQ(read_stream(s, "t2", "all-accounts", v, 4), 0);

	/* stopped and started again: it continues from its checkpoint */
	eproj_stop(e);
	for (int i = 0; i < 4; i++)
		deposit(s, &x, "account-1", "{\"amount\":2}");
	deposit(s, &x, "account-2", "{\"amount\":2}");
	head = store_next_position(s);
	e = start_continuous(s, def, &set);
	st = wait_done(e, head);
	check_counter_streams(s, &x);
	check_counter_states(s, def, &x);

	/* a one-time query equals the recomputation (and the states) */
	kst      qv[8];
	kread    qr = { qv, 0, 8 };
	uint64_t qpos;
	uint64_t qprog = 0;
	CHECK_EQ(eproj_query(s, TENANT, def, NULL, 0, 5000, NULL, NULL,
	             state_cb, &qr, &qpos, &qprog, err, sizeof(err)),
	    SL_OK);
	CHECK_EQ(qpos, store_next_position(s));
	CHECK_EQ(qprog, qpos); /* the progress reached the head */
	CHECK_EQ(qr.n, 2);
	CHECK_STREQ(qv[0].key, "account-1");
	CHECK_STREQ(qv[0].state, "{\"count\":12}");
	CHECK_STREQ(qv[0].result, "{\"fives\":2}");
	CHECK_STREQ(qv[1].key, "account-2");
	CHECK_STREQ(qv[1].state, "{\"count\":4}");
	CHECK_STREQ(qv[1].result, "{\"fives\":0}");
	qr.n = 0;
	CHECK_EQ(eproj_query(s, TENANT, def, "account-2", 9, 5000, NULL, NULL,
	             state_cb, &qr, &qpos, NULL, err, sizeof(err)),
	    SL_OK);
	CHECK_EQ(qr.n, 1);
	CHECK_STREQ(qv[0].state, "{\"count\":4}");
	qr.n = 0;
	CHECK_EQ(eproj_query(s, TENANT, def, "nobody", 6, 5000, NULL, NULL,
	             state_cb, &qr, &qpos, NULL, err, sizeof(err)),
	    SL_OK);
	CHECK_EQ(qr.n, 1);
	CHECK_STREQ(qv[0].state, "{\"count\":0}"); /* the initial state */
	/* a cancelled query (its client is gone) stops: ECLOSED, no states */
	qr.n = 0;
	CHECK_EQ(eproj_query(s, TENANT, def, NULL, 0, 5000, cancel_after_3,
	             &(int) { 0 }, state_cb, &qr, &qpos, NULL, err, sizeof(err)),
	    SL_ECLOSED);
	CHECK_EQ(qr.n, 0);
	CHECK(strstr(err, "cancelled") != NULL);
	/* the query wrote nothing */
	CHECK_EQ(qpos, store_next_position(s));

	/* one key's committed state; a key without one */
	qr.n = 0;
	CHECK_EQ(eproj_read_states(s, TENANT, def, proj_def_result(def),
	             "account-1", 9, state_cb, &qr),
	    SL_OK);
	CHECK_STREQ(qv[0].state, "{\"count\":12}");
	CHECK_EQ(eproj_read_states(s, TENANT, def, proj_def_result(def),
	             "nobody", 6, state_cb, &qr),
	    SL_ENOTFOUND);

	/* an emit to an undeclared stream fails the event, with the reason,
	 * and is not retried; nothing of it is written. Its key (account-1)
	 * is marked failing at that event and the run goes on past it (the
	 * other keys would go on): status "running", one partition failing.
	 * It comes right after events the run skips (not selected), in the
	 * same commit. Before that the run skipped its own writes: caught
	 * up. */
	uint64_t before = store_next_position(s);
	wait_done(e, before);
	pt_event bad[3] = { { .type = "Renamed", .json = "{}" },
		{ .type = "Renamed", .json = "{}" },
		{ .type = "Deposited", .json = "{\"to\":\"elsewhere\"}" } };
	uint64_t fault  = pt_commit(s, TENANT, "account-1", bad, 3) + 2;
	CHECK_EQ(fault, before + 2);
	st = wait_failing(e, 1, fault + 1);
	CHECK_STREQ(st.status, "running");
	CHECK(strstr(st.reason, "1 partition failing") != NULL);
	check_unit(e, "account-1", fault, 1, false, "elsewhere");
	check_unit(e, "account-1", fault, 1, false, "not declared");
	pt_sleep_ms(200);
	check_unit(e, "account-1", fault, 1, false, "not declared");
	CHECK_EQ(read_stream(s, TENANT, "elsewhere", v, 4), 0);
	CHECK_EQ(store_next_position(s), fault + 1);
	eproj_stop(e);

	/* a changed definition: reset soft-deletes what it wrote, and the
	 * rebuild writes identical streams */
	registry       *r2   = load(COUNTER_V2_SO, "cache-counter-v2");
	const proj_def *def2 = pt_find(r2, "emit_counter");
	CHECK(def2->def_hash != def->def_hash);
	/* it fails on the same event (still undeclared): what it handled
	 * before is committed */
	CHECK_EQ(
	    eproj_start(s, TENANT, def2, CFG_MODE_CONTINUOUS, &set, false, &e),
	    SL_OK);
	st = wait_failing(e, 1, fault + 1);
	check_unit(e, "account-1", fault, 1, false, "not declared");
	check_counter_streams(s, &x);
	check_counter_states(s, def2, &x);
	eproj_stop(e);

	registry_destroy(r2);
	registry_destroy(r);
	store_close(s);
}

/* A batch the store refuses (a stream another owner wrote: SL_EOWNED)
 * faults the run with the store's reason; it restarts from its checkpoint
 * with a growing delay, and none of the batch is written. */
static void
test_batch_refused(void)
{
	store          *s   = open_store("log-owned");
	registry       *r   = load(COUNTER_SO, "cache-owned");
	const proj_def *def = pt_find(r, "emit_counter");
	proj_settings   set = defaults();
	char            err[512];

	/* another owner wrote counts-account-1 first */
	msgpack_zone z;
	CHECK(msgpack_zone_init(&z, 1024));
	msgpack_object content = pt_json_obj(&z, "{\"n\":1}");
	store_append   a;
	memset(&a, 0, sizeof(a));
	a.stream          = "counts-account-1";
	a.ev.type         = "Other";
	a.ev.type_len     = 5;
	a.ev.generation   = 1;
	a.ev.causation_id = "";
	a.ev.content      = &content;
	ev_uuid_generate(a.ev.id);
	a.ev.occurred_ns = ev_now_ns();
	store_emit em;
	memset(&em, 0, sizeof(em));
	em.tenant    = TENANT;
	em.owner     = "e0000000-0000-4000-8000-0000000000ff";
	em.appends   = &a;
	em.n_appends = 1;
	CHECK_EQ(store_emit_wait(s, &em), SL_OK);
	msgpack_zone_destroy(&z);

	CHECK_EQ(eproj_claim(s, def, err, sizeof(err)), SL_OK);
	expect x;
	memset(&x, 0, sizeof(x));
	deposit(s, &x, "account-2", "{}");
	uint64_t first = store_next_position(s);
	for (int i = 0; i < 3; i++)
		deposit(s, &x, "account-1", "{}");
	eproj *e;
	e = start_continuous(s, def, &set);
	eproj_status st = wait_status(e, "faulted", 2);
	/* the error's name, then the store's reason naming the owner */
	CHECK(strstr(st.reason,
	          "writing a batch failed: EOWNED: stream 'counts-account-1' "
	          "is owned by projection "
	          "'e0000000-0000-4000-8000-0000000000ff'")
	    != NULL);
	CHECK(st.position <= first);
	sev v[8];
	CHECK_EQ(read_stream(s, TENANT, "counts-account-1", v, 8), 1);
	CHECK_STREQ(v[0].type, "Other");
	/* the link of the refused batch's events was not written either */
	CHECK(read_stream(s, TENANT, "all-accounts", v, 8) <= 1);
	eproj_stop(e);
	registry_destroy(r);
	store_close(s);
}

/* Many keys: the states held in memory stay bounded (the LRU bound plus
 * what batches in flight pin), and an evicted key's state is read back
 * from the store. */
static int
count_cb(void *arg, const char *key, size_t key_len, const void *state,
    size_t state_len, const void *result, size_t result_len)
{
	(void) key;
	(void) key_len;
	(void) state;
	(void) state_len;
	(void) result;
	(void) result_len;
	(*(size_t *) arg)++;
	return 0;
}

static void
test_many_keys(void)
{
	store          *s   = open_store("log-many");
	registry       *r   = load(COUNTER_SO, "cache-many");
	const proj_def *def = pt_find(r, "emit_counter");
	proj_settings   set = defaults();
	char            stream[32];
	eproj          *e;
	for (int i = 0; i < 6000; i++) {
		snprintf(stream, sizeof(stream), "acc-%d", i);
		pt_commit1(s, TENANT, stream, "Deposited", "{}");
	}
	uint64_t head = store_next_position(s);
	proc_cache_keep = 4096; /* lowered from PROC_CACHE_KEEP */
	e = start_continuous(s, def, &set);
	/* the bound the processor keeps: after each stored batch it trims
	 * its fold to proc_cache_keep clean states */
	wait_done(e, head);
	CHECK_EQ(wait_cached(e, 4096), 4096);
	size_t n = 0;
	CHECK_EQ(eproj_read_states(s, TENANT, def, proj_def_result(def), NULL,
	             0, count_cb, &n),
	    SL_OK);
	CHECK_EQ(n, 6000);
	/* acc-0 left the cache long ago: its state comes from the store */
	pt_commit1(s, TENANT, "acc-0", "Deposited", "{}");
	head = store_next_position(s);
	wait_done(e, head);
	kst   v[2];
	kread kr = { v, 0, 2 };
	CHECK_EQ(eproj_read_states(s, TENANT, def, proj_def_result(def),
	             "acc-0", 5, state_cb, &kr),
	    SL_OK);
	CHECK_STREQ(v[0].state, "{\"count\":2}");
	sev lv[2];
	CHECK_EQ(read_stream(s, TENANT, "counts-acc-0", lv, 2), 0);
	proc_cache_keep = PROC_CACHE_KEEP;
	eproj_stop(e);
	registry_destroy(r);
	store_close(s);
}

/* One batch pins more keys than the cache keeps (all 400 events come in
 * one read, the queue never runs dry before the last): the cache can only
 * be trimmed when the batch is durable, and it is, then. */
static void
test_cache_trim(void)
{
	store          *s   = open_store("log-trim");
	registry       *r   = load(COUNTER_SO, "cache-trim");
	const proj_def *def = pt_find(r, "emit_counter");
	proj_settings   set = defaults();
	char            stream[32];
	eproj          *e;
	for (int i = 0; i < 400; i++) {
		snprintf(stream, sizeof(stream), "acc-%d", i);
		pt_commit1(s, TENANT, stream, "Deposited", "{}");
	}
	uint64_t head       = store_next_position(s);
	proc_cache_keep = 100;
	e = start_continuous(s, def, &set);
	wait_done(e, head);
	CHECK_EQ(wait_cached(e, 100), 100);
	/* a key that left the cache: its state comes from the store */
	pt_commit1(s, TENANT, "acc-0", "Deposited", "{}");
	wait_done(e, store_next_position(s));
	kst   v[2];
	kread kr = { v, 0, 2 };
	CHECK_EQ(eproj_read_states(s, TENANT, def, proj_def_result(def),
	             "acc-0", 5, state_cb, &kr),
	    SL_OK);
	CHECK_STREQ(v[0].state, "{\"count\":2}");
	eproj_stop(e);
	proc_cache_keep = PROC_CACHE_KEEP;
	registry_destroy(r);
	store_close(s);
}

/* ---- back-pressure, status, failures, transient runs ---- */

static void
commit_ticks(store *s, int n, const char *json)
{
	pt_event *evs = calloc((size_t) n, sizeof(*evs));
	CHECK(evs != NULL);
	for (int i = 0; i < n; i++) {
		evs[i].type = "Tick";
		snprintf(evs[i].json, sizeof(evs[i].json), "%s", json);
	}
	pt_commit(s, TENANT, "clock", evs, (size_t) n);
	free(evs);
}


/* Key's state is {"count": count} (read with the result transform, when
 * def has one). */
static void
check_count_of(store *s, const proj_def *def, const char *key, int count)
{
	kst   v[2];
	kread r = { v, 0, 2 };
	char  want[64];
	CHECK_EQ(eproj_read_states(s, TENANT, def, proj_def_result(def), key,
	             strlen(key), state_cb, &r),
	    SL_OK);
	snprintf(want, sizeof(want), "{\"count\":%d}", count);
	CHECK_STREQ(v[0].state, want);
}

static void
check_count(store *s, const proj_def *def, int count)
{
	check_count_of(s, def, "all", count);
}

static void
test_slow(void)
{
	store          *s            = open_store("log-slow");
	registry       *r            = load(SLOW_SO, "cache-slow");
	const proj_def *def          = pt_find(r, "emit_slow");
	proj_settings   set          = defaults();
	commit_ticks(s, 400, "{\"sleep_us\":2000}");
	uint64_t head = store_next_position(s);

	eproj *e;
	e = start_continuous(s, def, &set);
	/* no queue of read events: the processor reads the log as it goes,
	 * and a slow handler's batch ends after 100 ms, so its checkpoint
	 * moves while it catches up */
	eproj_status st;
	int64_t      end = pt_now_ms() + PT_WAIT_MS;
	for (;;) {
		eproj_get_status(e, &st);
		if (st.position > 0 && st.position < head)
			break;
		CHECK(pt_now_ms() < end);
		pt_sleep_ms(1);
	}
	CHECK_STREQ(st.status, "running");
	CHECK_EQ(st.buffered_events, 0);
	CHECK(st.progress < 100.0);
	st = wait_done(e, head);
	CHECK_STREQ(st.status, "running");
	CHECK_EQ(st.events_processed, 400);
	CHECK(st.events_per_sec > 0);
	CHECK_EQ(st.partitions_cached, 1);
	CHECK_EQ(st.emitted, 0);
	check_count(s, def, 400);

	/* stop (persisted), restart stopped, start */
	CHECK_EQ(eproj_command(e, PROC_CMD_PAUSE, 5000), SL_OK);
	st = wait_status(e, "stopped", 0);
	eproj_stop(e);
	commit_ticks(s, 3, "{\"sleep_us\":0}");
	head = store_next_position(s);
	e = start_continuous(s, def, &set);
	pt_sleep_ms(200);
	eproj_get_status(e, &st);
	CHECK_STREQ(st.status, "stopped");
	CHECK(st.position < head);
	CHECK_EQ(eproj_command(e, PROC_CMD_RESUME, 5000), SL_OK);
	st = wait_done(e, head);
	CHECK_STREQ(st.status, "running");
	check_count(s, def, 403);

	/* reset: from 0 again, same state */
	uint64_t seen = st.events_processed;
	CHECK_EQ(eproj_command(e, PROC_CMD_RESET, 5000), SL_OK);
	end = pt_now_ms() + PT_WAIT_MS;
	do {
		CHECK(pt_now_ms() < end);
		pt_sleep_ms(2);
		st = wait_done(e, head);
	} while (st.events_processed < seen + head);
	check_count(s, def, 403);

	/* the failures come last: a reset or a transient run would meet
	 * them again */
	/* a failure retried with a growing delay, then accepted */
	commit_ticks(s, 1, "{\"sleep_us\":0,\"fail\":true,\"fail_times\":3}");
	head = store_next_position(s);
	st   = wait_status(e, "faulted", 2);
	CHECK(strstr(st.reason, "refused: fail") != NULL);
	wait_status(e, "running", 0); /* its key's retry went through */
	st = wait_done(e, head);
	CHECK_STREQ(st.status, "running");
	CHECK_EQ(st.attempts, 0);
	check_count(s, def, 404);

	/* a failure that says "do not retry" waits for retry */
	commit_ticks(s, 1,
	    "{\"sleep_us\":0,\"fail\":true,\"fail_times\":1,\"hard\":true}");
	head = store_next_position(s);
	st   = wait_status(e, "faulted", 1);
	pt_sleep_ms(300);
	eproj_get_status(e, &st);
	CHECK_STREQ(st.status, "faulted");
	CHECK_EQ(st.attempts, 1);
	CHECK_EQ(eproj_command(e, PROC_CMD_RETRY, 5000), SL_OK);
	wait_status(e, "running", 0);
	st = wait_done(e, head);
	CHECK_STREQ(st.status, "running");
	check_count(s, def, 405);

	eproj_stop(e);

	/* a transient run: the same states in memory, nothing written (it
	 * meets the failure that is not retried: a snapshot shows the states
	 * before it) */
	uint64_t before              = store_next_position(s);
	CHECK_EQ(
	    eproj_start(s, "t1", def, CFG_MODE_TRANSIENT, &set, false, &e),
	    SL_OK);
	end = pt_now_ms() + PT_WAIT_MS;
	for (;;) {
		proc_failing f;
		eproj_get_status(e, &st);
		if (st.position >= before - 1
		    && strcmp(st.status, "faulted") == 0
		    && eproj_get_failing(e, &f, 1) == 1
		    && f.position == before - 1)
			break;
		CHECK(pt_now_ms() < end);
		pt_sleep_ms(5);
	}
	kst      v[2];
	kread    kr = { v, 0, 2 };
	uint64_t pos;
	CHECK_EQ(eproj_snapshot(e, NULL, 0, state_cb, &kr, &pos), SL_OK);
	CHECK(pos >= before - 1); /* the failing key waits alone */
	CHECK_EQ(kr.n, 1);
	CHECK_STREQ(v[0].state, "{\"count\":404}");
	kr.n = 0;
	CHECK_EQ(eproj_snapshot(e, "none", 4, state_cb, &kr, &pos), SL_OK);
	CHECK_STREQ(v[0].state, "{\"count\":0}");
	eproj_stop(e);
	CHECK_EQ(store_next_position(s), before);

	registry_destroy(r);
	store_close(s);
}

/* ---- stop and start ---- */

static void
check_key_count(store *s, const proj_def *def, const char *key, int count)
{
	kst   v[2];
	kread r = { v, 0, 2 };
	char  want[64];
	CHECK_EQ(eproj_read_states(s, TENANT, def, proj_def_result(def), key,
	             strlen(key), state_cb, &r),
	    SL_OK);
	snprintf(want, sizeof(want), "{\"count\":%d}", count);
	CHECK_STREQ(v[0].state, want);
}

/* A stopped run reads nothing (its reader waits to be started: the system
 * projections are stopped by default, and each would otherwise wake on
 * every commit and buffer up to pending_events_threshold events); started,
 * it catches up. A stop drops what was buffered; a reset while stopped
 * reads nothing either. */
static void
test_stopped_reads_nothing(void)
{
	store          *s   = open_store("log-stopped");
	registry       *r   = load(COUNTER_SO, "cache-stopped");
	const proj_def *def = pt_find(r, "emit_counter");
	proj_settings   set = defaults();
	pt_event        evs[100];
	eproj          *e;
	eproj_status    st;
	for (size_t i = 0; i < 100; i++) {
		evs[i].type = "Deposited";
		snprintf(evs[i].json, sizeof(evs[i].json), "{}");
	}
	CHECK_EQ(
	    eproj_start(s, TENANT, def, CFG_MODE_CONTINUOUS, &set, true, &e),
	    SL_OK);
	for (int i = 0; i < 20; i++)
		pt_commit(s, TENANT, "account-1", evs, 100);
	uint64_t head = store_next_position(s);
	int64_t  end  = pt_now_ms() + 300;
	while (pt_now_ms() < end) {
		eproj_get_status(e, &st);
		CHECK_STREQ(st.status, "stopped");
		CHECK_EQ(st.buffered_events, 0);
		CHECK_EQ(st.events_processed, 0);
		CHECK_EQ(st.position, 0);
		pt_sleep_ms(5);
	}
	CHECK_EQ(st.head, head); /* status still sees the log grow */
	CHECK_EQ(st.progress, 0.0);
	CHECK_EQ(eproj_command(e, PROC_CMD_RESUME, 5000), SL_OK);
	st = wait_done(e, head);
	CHECK_STREQ(st.status, "running");
	CHECK(st.events_processed >= 2000);
	check_key_count(s, def, "account-1", 2000);

	/* stopped while it has events buffered: they are dropped, and it
	 * starts again where it stopped */
	proj_settings few            = defaults();
	few.pending_events_threshold = 50;
	eproj_stop(e);
	CHECK_EQ(
	    eproj_start(s, TENANT, def, CFG_MODE_CONTINUOUS, &few, false, &e),
	    SL_OK);
	for (int i = 0; i < 20; i++)
		pt_commit(s, TENANT, "account-1", evs, 100);
	head = store_next_position(s);
	CHECK_EQ(eproj_command(e, PROC_CMD_PAUSE, 5000), SL_OK);
	eproj_get_status(e, &st);
	CHECK_STREQ(st.status, "stopped");
	CHECK_EQ(st.buffered_events, 0);
	uint64_t seen = st.events_processed;
	pt_sleep_ms(100);
	eproj_get_status(e, &st);
	CHECK_EQ(st.buffered_events, 0);
	CHECK_EQ(st.events_processed, seen);
	CHECK_EQ(eproj_command(e, PROC_CMD_RESUME, 5000), SL_OK);
	wait_done(e, head);
	check_key_count(s, def, "account-1", 4000);

	/* a reset while stopped: done, still stopped, nothing read */
	CHECK_EQ(eproj_command(e, PROC_CMD_PAUSE, 5000), SL_OK);
	CHECK_EQ(eproj_command(e, PROC_CMD_RESET, 5000), SL_OK);
	end = pt_now_ms() + PT_WAIT_MS; /* the command is taken, not done */
	do {
		CHECK(pt_now_ms() < end);
		pt_sleep_ms(5);
		eproj_get_status(e, &st);
		CHECK_STREQ(st.status, "stopped");
		CHECK_EQ(st.buffered_events, 0);
	} while (st.position != 0);
	pt_sleep_ms(100);
	eproj_get_status(e, &st);
	CHECK_EQ(st.position, 0);
	CHECK_EQ(st.buffered_events, 0);
	head = store_next_position(s);
	CHECK_EQ(eproj_command(e, PROC_CMD_RESUME, 5000), SL_OK);
	wait_done(e, head);
	check_key_count(s, def, "account-1", 4000);
	eproj_stop(e);
	registry_destroy(r);
	store_close(s);
}

/* An operator's stop or start is persisted also when the run is in that
 * state already by the caller's word and has no checkpoint yet: it then
 * outlives a change of that word (start_standard_projections). */
static void
test_stop_start_persisted(void)
{
	store          *s   = open_store("log-persist");
	registry       *r   = load(SLOW_SO, "cache-persist");
	const proj_def *def = pt_find(r, "emit_slow");
	proj_settings   set = defaults();
	eproj          *e;
	eproj_status    st;

	/* started stopped, no checkpoint: a stop is kept */
	commit_ticks(s, 3, "{\"sleep_us\":0}");
	CHECK_EQ(
	    eproj_start(s, TENANT, def, CFG_MODE_CONTINUOUS, &set, true, &e),
	    SL_OK);
	CHECK_EQ(eproj_command(e, PROC_CMD_PAUSE, 5000), SL_OK);
	eproj_get_status(e, &st);
	CHECK_STREQ(st.status, "stopped");
	eproj_stop(e);
	e = start_continuous(s, def, &set);
	pt_sleep_ms(100);
	eproj_get_status(e, &st);
	CHECK_STREQ(st.status, "stopped");
	CHECK_EQ(st.events_processed, 0);
	eproj_stop(e);
	store_close(s);

	/* started running on an empty log (nothing to checkpoint): a start
	 * is kept */
	s = open_store("log-persist2");
	e = start_continuous(s, def, &set);
	CHECK_EQ(eproj_command(e, PROC_CMD_RESUME, 5000), SL_OK);
	eproj_stop(e);
	CHECK_EQ(
	    eproj_start(s, TENANT, def, CFG_MODE_CONTINUOUS, &set, true, &e),
	    SL_OK);
	wait_started(e);
	eproj_get_status(e, &st);
	CHECK_STREQ(st.status, "running");
	commit_ticks(s, 3, "{\"sleep_us\":0}");
	st = wait_done(e, store_next_position(s));
	CHECK_STREQ(st.status, "running");
	check_count(s, def, 3);
	eproj_stop(e);
	registry_destroy(r);
	store_close(s);
}

/* eproj_command(PAUSE) answers SL_OK once the stop is durable: status says
 * "stopped" (not "stopping") right away, with nothing buffered; stopping
 * and starting 200 times loses and repeats no event. */
static void
test_stop_answer(void)
{
	store          *s   = open_store("log-answer");
	registry       *r   = load(SLOW_SO, "cache-answer");
	const proj_def *def = pt_find(r, "emit_slow");
	proj_settings   set = defaults();
	eproj          *e;
	eproj_status    st;
	e = start_continuous(s, def, &set);
	for (int i = 0; i < 200; i++) {
		commit_ticks(s, 20, "{\"sleep_us\":0}");
		CHECK_EQ(eproj_command(e, PROC_CMD_PAUSE, 5000), SL_OK);
		eproj_get_status(e, &st);
		if (strcmp(st.status, "stopped") != 0)
			fprintf(stderr, "round %d: %s (%s)\n", i, st.status,
			    st.reason);
		CHECK_STREQ(st.status, "stopped");
		CHECK_EQ(st.buffered_events, 0);
		CHECK_EQ(eproj_command(e, PROC_CMD_RESUME, 5000), SL_OK);
	}
	st = wait_done(e, store_next_position(s));
	CHECK_STREQ(st.status, "running");
	check_count(s, def, 4000);
	eproj_stop(e);
	registry_destroy(r);
	store_close(s);
}

/* ---- load checks of declared streams ---- */

static void
test_load_checks(void)
{
	char      dir[4200], err[1024];
	registry *r  = load(COUNTER_SO, "cache-load");
	int       rc = registry_load_file(
	          r, SL_TEST_PLUGIN_DIR "/emit_bad_overlap.so", err, sizeof(err));
	CHECK_EQ(rc, SL_EEXIST);
	CHECK(strstr(err, "emit_bad") != NULL);
	CHECK(strstr(err, "emit_counter") != NULL);
	CHECK(strstr(err, "counts-x*") != NULL);
	/* shown in status like other refusals; the first one keeps running */
	plugin_info pi;
	registry_plugin_info(r, 1, &pi);
	CHECK(!pi.loaded);
	CHECK(pi.error != NULL && strstr(pi.error, "overlaps") != NULL);
	CHECK(registry_find(r, "emit_counter", 12) != NULL);
	CHECK(registry_find(r, "emit_bad", 8) == NULL);
	registry_destroy(r);

	/* alone it loads (no overlap) */
	r = load(SL_TEST_PLUGIN_DIR "/emit_bad_overlap.so", "cache-load2");
	registry_destroy(r);

	const char *bad[]
	    = { "emit_bad_dollar", "emit_bad_star", "emit_bad_empty" };
	const char *why[] = { "starts with '$'", "not its last", "is empty" };
	for (size_t i = 0; i < 3; i++) {
		snprintf(dir, sizeof(dir), "%s/cache-bad%zu", tu_tmpdir(), i);
		CHECK_EQ(registry_create(dir, &r), SL_OK);
		char so[4200];
		snprintf(
		    so, sizeof(so), "%s/%s.so", SL_TEST_PLUGIN_DIR, bad[i]);
		CHECK_EQ(
		    registry_load_file(r, so, err, sizeof(err)), SL_EPLUGIN);
		CHECK(strstr(err, why[i]) != NULL);
		registry_destroy(r);
	}

	/* the hash of a projection without emits is what it always was */
	r = load(SL_PLUGIN_DIR "/account_details.so", "cache-h");
	const proj_def *ad = pt_find(r, "account_details");
	CHECK(!eproj_is_emitting(ad));
	CHECK_EQ(ad->def_hash,
	    defhash_projection(ad->id, ad->scope, ad->version, ad->initial,
	        ad->initial_len, ad->p->selectors, ad->p->n_selectors));
	registry_destroy(r);
	r                   = load(COUNTER_SO, "cache-h2");
	const proj_def *cnt = pt_find(r, "emit_counter");
	CHECK(cnt->def_hash
	    != defhash_projection(cnt->id, cnt->scope, cnt->version,
	        cnt->initial, cnt->initial_len, cnt->p->selectors,
	        cnt->p->n_selectors));

	/* emit / link_to outside an emitting run: SL_EINVAL */
	sl_context ctx;
	memset(&ctx, 0, sizeof(ctx));
	CHECK_EQ(
	    host_api()->emit(&ctx, "counts-a", "Counted", "{}"), SL_EINVAL);
	CHECK_EQ(host_api()->link_to(&ctx, "all-accounts", NULL), SL_EINVAL);
	CHECK(!ctx.failed);
	registry_destroy(r);
}

/* ---- failing keys (issue 14) ---- */

/* The committed count of key is count. */

/*
 * A failing event holds up its key alone: the other key's states and
 * emitted events go on to the head while the failing key's later events
 * wait; status lists the key. A failure retried after a delay catches up
 * by itself; one that says "do not retry" survives a stop and start (its
 * unit is in the checkpoint record) and catches up after `retry`. Both
 * then equal a recomputation (links per key in order: a retried key's
 * writes come later in the log).
 */
static void
test_failing_keys(void)
{
	store          *s;
	registry       *r;
	const proj_def *def = counter_setup("failing", &s, &r);
	proj_settings   set = defaults();
	expect          x;
	eproj          *e;
	memset(&x, 0, sizeof(x));
	e = start_continuous(s, def, &set);
	for (int i = 0; i < 2; i++) {
		deposit(s, &x, "account-1", "{}");
		deposit(s, &x, "account-2", "{}");
	}
	wait_done(e, store_next_position(s));

	/* account-1 fails three times, retried 300 ms apart; meanwhile
	 * account-2 goes on, account-1's later events wait */
	uint64_t bad = store_next_position(s);
	deposit(
	    s, &x, "account-1", "{\"fail_times\":3,\"retry_after_ms\":300}");
	for (int i = 0; i < 4; i++)
		deposit(s, &x, "account-2", "{}");
	for (int i = 0; i < 3; i++)
		deposit(s, &x, "account-1", "{}");
	eproj_status st = wait_failing(e, 1, store_next_position(s));
	CHECK_STREQ(st.status, "running");
	CHECK(strstr(st.reason, "1 partition failing") != NULL);
	check_unit(e, "account-1", bad, 1, true, "refused: fail_times");
	check_count_of(s, def, "account-2", 6);
	check_count_of(s, def, "account-1", 2);
	static sev v[16];
	CHECK_EQ(read_stream(s, TENANT, "counts-account-2", v, 16), 2);
	CHECK_EQ(read_stream(s, TENANT, "counts-account-1", v, 16), 0);
	/* retried by itself: caught up, as if it never failed */
	int64_t end = pt_now_ms() + PT_WAIT_MS;
	do {
		CHECK(pt_now_ms() < end);
		pt_sleep_ms(10);
		st = wait_done(e, store_next_position(s));
	} while (st.n_failing != 0);
	CHECK_STREQ(st.reason, "");
	check_counter_states(s, def, &x);
	check_counter_streams_by(s, &x, true);

	/* a failure that is not retried: account-2 waits, account-1 goes
	 * on; it holds over a stop and start (the checkpoint has it) */
	bad = store_next_position(s);
	deposit(s, &x, "account-2", "{\"fail_times\":1,\"hard\":true}");
	deposit(s, &x, "account-1", "{}");
	deposit(s, &x, "account-2", "{}");
	deposit(s, &x, "account-1", "{}");
	wait_failing(e, 1, store_next_position(s));
	check_unit(e, "account-2", bad, 1, false, "refused: fail_times");
	check_count_of(s, def, "account-1", 8);
	check_count_of(s, def, "account-2", 6);
	eproj_stop(e);
	e = start_continuous(s, def, &set);
	eproj_get_status(e, &st);
	CHECK_EQ(st.n_failing, 1); /* read with the checkpoint */
	deposit(s, &x, "account-1", "{}");
	deposit(s, &x, "account-2", "{}");
	wait_failing(e, 1, store_next_position(s));
	pt_sleep_ms(200);
	check_unit(e, "account-2", bad, 1, false, "refused: fail_times");
	check_count_of(s, def, "account-1", 9);
	check_count_of(s, def, "account-2", 6);
	/* the operator's retry: the key catches up */
	CHECK_EQ(eproj_command(e, PROC_CMD_RETRY, 5000), SL_OK);
	end = pt_now_ms() + PT_WAIT_MS;
	do {
		CHECK(pt_now_ms() < end);
		pt_sleep_ms(10);
		st = wait_done(e, store_next_position(s));
	} while (st.n_failing != 0);
	CHECK_STREQ(st.status, "running");
	check_counter_states(s, def, &x);
	check_counter_streams_by(s, &x, true);
	/* and after a restart nothing is failing any more */
	eproj_stop(e);
	e = start_continuous(s, def, &set);
	eproj_get_status(e, &st);
	CHECK_EQ(st.n_failing, 0);
	eproj_stop(e);
	check_counter_states(s, def, &x);
	check_counter_streams_by(s, &x, true);

	registry_destroy(r);
	store_close(s);
}

/*
 * An event whose key cannot be found (a property missing from its content)
 * waits in a unit of its stream, "(no key) stream S", not retried (only a
 * new definition can find its key), as a processor's does; every key goes
 * on, and an operator's retry tries it again (and fails again).
 */
static void
test_keyless_event(void)
{
	store          *s;
	registry       *r;
	const proj_def *def = counter_setup("keyless", &s, &r);
	proj_settings   set = defaults();
	expect          x;
	eproj          *e;
	memset(&x, 0, sizeof(x));
	e = start_continuous(s, def, &set);
	deposit(s, &x, "account-1", "{}");
	uint64_t bad = pt_commit1(s, TENANT, "mover-1", "Moved", "{}");
	deposit(s, &x, "account-1", "{}");
	deposit(s, &x, "account-2", "{}");
	eproj_status st = wait_failing(e, 1, store_next_position(s));
	CHECK_STREQ(st.status, "running");
	check_unit(e, "(no key) stream mover-1", bad, 1, false, "account");
	check_count_of(s, def, "account-1", 2);
	check_count_of(s, def, "account-2", 1);
	/* retried by the operator: fails again, the others still go on */
	CHECK_EQ(eproj_command(e, PROC_CMD_RETRY, 5000), SL_OK);
	deposit(s, &x, "account-2", "{}");
	int64_t end = pt_now_ms() + PT_WAIT_MS;
	proc_failing f[2];
	do {
		CHECK(pt_now_ms() < end);
		pt_sleep_ms(10);
		wait_failing(e, 1, store_next_position(s));
		CHECK_EQ(eproj_get_failing(e, f, 2), 1);
	} while (f[0].attempts < 2);
	check_unit(e, "(no key) stream mover-1", bad, 2, false, "account");
	check_count_of(s, def, "account-2", 2);
	eproj_stop(e);
	check_counter_states(s, def, &x);
	registry_destroy(r);
	store_close(s);
}

int
main(void)
{
	test_load_checks();
	test_counter();
	test_failing_keys();
	test_keyless_event();
	test_slow();
	test_batch_refused();
	test_many_keys();
	test_cache_trim();
	test_stopped_reads_nothing();
	test_stop_start_persisted();
	test_stop_answer();
	printf("emitter_test: ok\n");
	return 0;
}
