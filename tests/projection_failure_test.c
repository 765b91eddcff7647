/*
 * Processing failures of a projection: a failing event is retried with the
 * retry state handed to the plugin until it succeeds, nothing is skipped,
 * later events of its key wait behind it while the other keys go on, the
 * state written before it stays intact, and a key that cannot be found is
 * a failure with a reason, not a crash. Also proc_key for every key
 * selector kind.
 */
#include "projection_testutil.h"

#define FAIL_PROJ "6f708192-a3b4-4c5d-9e6f-708192a3b4c5"
#define ACC_PROJ  "8a2f3c1e-5b7d-4e9a-9c11-2d4e6f8a0b13"

/* ---- proc_key on hand-made events ---- */

static void
key_case(const proj_def *def, const char *type, const char *json,
    int64_t occurred_ns, int want_rc, const char *want)
{
	msgpack_zone z;
	CHECK(msgpack_zone_init(&z, 1024));
	ev_view ev;
	memset(&ev, 0, sizeof(ev));
	ev.tenant      = "t1";
	ev.stream      = "stream-7";
	ev.type        = type;
	ev.occurred_ns = occurred_ns;
	ev.content     = pt_json_obj(&z, json);
	ev.metadata    = pt_json_obj(&z, "{}");
	char buf[512];
	int  rc = proc_key(def, &ev, buf, sizeof(buf));
	if (rc != want_rc || (want != NULL && strstr(buf, want) == NULL)) {
		fprintf(stderr, "proc_key(%s, %s) = %s '%s', want %s '%s'\n",
		    type, json, sl_errname(rc), buf, sl_errname(want_rc),
		    want ? want : "");
		exit(1);
	}
	msgpack_zone_destroy(&z);
}

static sl_outcome
never_called(void *user, const sl_event *ev, const char *key, sl_state *st,
    sl_context *ctx)
{
	(void) user;
	(void) ev;
	(void) key;
	(void) st;
	(void) ctx;
	return SL_FAIL;
}

static void
test_keys(void)
{
	static const sl_selector sels[] = {
		{ "Src", SL_KEY_EVENT_SOURCE, NULL },
		{ "Part", SL_KEY_PARTITION, NULL },
		{ "Prop", SL_KEY_PROPERTY, "a.b" },
		{ "Static", SL_KEY_STATIC, "all" },
		{ "Day", SL_KEY_OCCURRED, "%Y-%m-%d" },
		{ "Empty", SL_KEY_STATIC, "" },
	};
	sl_projection p = {
		.struct_size = sizeof(p),
		.abi_version = SL_ABI_VERSION,
		.selectors   = sels,
		.n_selectors = sizeof(sels) / sizeof(sels[0]),
		.on          = never_called,
	};
	proj_def def;
	memset(&def, 0, sizeof(def));
	def.p = &p;
	/* 2024-02-29T23:59:59.5Z */
	int64_t t = 1709251199LL * 1000000000LL + 500000000LL;

	key_case(&def, "Src", "{}", t, SL_OK, "stream-7");
	key_case(&def, "Part", "{}", t, SL_OK, "stream-7");
	key_case(&def, "Prop", "{\"a\":{\"b\":\"k-1\"}}", t, SL_OK, "k-1");
	key_case(&def, "Prop", "{\"a\":{\"b\":42}}", t, SL_OK, "42");
	key_case(&def, "Prop", "{\"a\":{\"b\":-7}}", t, SL_OK, "-7");
	key_case(&def, "Static", "{}", t, SL_OK, "all");
	key_case(&def, "Day", "{}", t, SL_OK, "2024-02-29");
	key_case(&def, "Day", "{}", -1, SL_OK, "1969-12-31");
	key_case(&def, "Other", "{}", t, SL_ENOTFOUND, NULL);
	/* keys that cannot be found: a reason, never a crash */
	key_case(&def, "Prop", "{}", t, SL_EINVAL, "'a.b' is missing");
	key_case(&def, "Prop", "{\"a\":5}", t, SL_EINVAL, "missing");
	key_case(&def, "Prop", "{\"a\":{\"b\":{\"c\":1}}}", t, SL_EINVAL,
	    "not a string or an integer");
	key_case(&def, "Prop", "{\"a\":{\"b\":[1]}}", t, SL_EINVAL,
	    "not a string or an integer");
	key_case(&def, "Prop", "{\"a\":{\"b\":1.5}}", t, SL_EINVAL,
	    "not a string or an integer");
	key_case(&def, "Prop", "{\"a\":{\"b\":\"\"}}", t, SL_EINVAL, "empty");
	key_case(&def, "Empty", "{}", t, SL_EINVAL, "empty");
}

/* ---- retries with the fail_on_type plugin ---- */


static uint64_t
read_checkpoint(rmstore *rm, const char *proj)
{
	MDB_txn      *txn;
	rm_checkpoint cp;
	char          id[64];
	snprintf(id, sizeof(id), "proj:%s", proj);
	CHECK_EQ(mdb_txn_begin(rm_env(rm), NULL, MDB_RDONLY, &txn), 0);
	CHECK_EQ(rm_checkpoint_read(rm, txn, id, &cp), SL_OK);
	mdb_txn_abort(txn);
	return cp.position;
}

static bool
has_model(rmstore *rm, const char *proj, const char *key)
{
	char  *data = NULL;
	size_t len;
	int    rc = rm_get(rm, proj, key, strlen(key), &data, &len);
	CHECK(rc == SL_OK || rc == SL_ENOTFOUND);
	free(data);
	return rc == SL_OK;
}

/* Fails 3 times, then succeeds: retried, not skipped, state correct; the
 * other keys go on meanwhile, the failing key's later events wait. */
static void
test_fail_then_succeed(void)
{
	pt_env e;
	pt_env_open(&e, "retry", SL_TEST_PLUGIN_DIR "/fail_on_type.so");
	const proj_def *def = pt_find(e.r, "fail_on_type");

	pt_commit1(e.s, "t1", "s1", "Tick", "{}");
	pt_commit1(e.s, "t1", "s2", "Tick", "{}");
	uint64_t bad = pt_commit1(
	    e.s, "t1", "s1", "Tick", "{\"fail\":true,\"fail_times\":3}");
	pt_commit1(e.s, "t1", "s2", "Tock", "{}");
	pt_commit1(e.s, "t1", "s1", "Tock", "{}");
	uint64_t head = store_next_position(e.s);

	processor *p;
	int64_t    t0 = pt_now_ms();
	CHECK_EQ(proc_start(e.s, e.rm, "t1", def, 100, &p), SL_OK);
	proc_failing f;
	pt_wait_unit(p, "s1", 1, PT_WAIT_MS, &f);
	CHECK_STREQ(f.reason, "refused: Tick");
	CHECK_EQ(f.position, bad); /* s1 waits at its failing event */
	CHECK(f.retry && f.next_try_ns > 0);
	/* s2 went on; s1 has the state before its failing event */
	pt_wait_failing_units(p, head, PT_WAIT_MS);
	CHECK_EQ(read_checkpoint(e.rm, FAIL_PROJ), head);
	CHECK_EQ(pt_state_i64(e.rm, FAIL_PROJ, "s2", "count"), 2);
	CHECK_EQ(pt_state_i64(e.rm, FAIL_PROJ, "s1", "count"), 1);

	pt_wait_unit(p, "s1", 3, PT_WAIT_MS, &f);
	CHECK_EQ(f.position, bad);
	CHECK_EQ(pt_state_i64(e.rm, FAIL_PROJ, "s1", "count"), 1);

	/* then it goes through, with the event behind it, once each */
	int64_t end = pt_now_ms() + PT_WAIT_MS;
	while (pt_unit_failing(p, "s1") && pt_now_ms() < end)
		pt_sleep_ms(2);
	CHECK(!pt_unit_failing(p, "s1"));
	int64_t took = pt_now_ms() - t0;
	/* delays 50 + 100 + 200 ms before attempts 1, 2 and 3 */
	CHECK(took >= 340);
	proc_status st = pt_wait_position(p, head, PT_WAIT_MS);
	CHECK_EQ(st.n_failing, 0);
	/* the retry's count shows once its batch has committed */
	end = pt_now_ms() + PT_WAIT_MS;
	while (st.events_handled < 5 && pt_now_ms() < end) {
		pt_sleep_ms(2);
		proc_get_status(p, &st);
	}
	CHECK_EQ(st.events_handled, 5);
	CHECK_EQ(pt_state_i64(e.rm, FAIL_PROJ, "s1", "count"), 3);
	CHECK_EQ(pt_state_i64(e.rm, FAIL_PROJ, "s2", "count"), 2);
	CHECK_EQ(read_checkpoint(e.rm, FAIL_PROJ), head);

	/* After the recovery, the next failure starts counting afresh. */
	uint64_t bad2 = pt_commit1(
	    e.s, "t1", "s3", "Tock", "{\"fail\":true,\"fail_times\":1}");
	pt_wait_unit(p, "s3", 1, PT_WAIT_MS, &f);
	CHECK_EQ(f.attempts, 1);
	CHECK_EQ(f.position, bad2);
	end = pt_now_ms() + PT_WAIT_MS;
	while (pt_unit_failing(p, "s3") && pt_now_ms() < end)
		pt_sleep_ms(2);
	st  = pt_wait_position(p, bad2 + 1, PT_WAIT_MS);
	end = pt_now_ms() + PT_WAIT_MS;
	while (st.events_handled < 6 && pt_now_ms() < end) {
		pt_sleep_ms(2);
		proc_get_status(p, &st);
	}
	CHECK_EQ(pt_state_i64(e.rm, FAIL_PROJ, "s3", "count"), 1);
	CHECK_EQ(st.events_handled, 6);

	proc_stop(p);
	pt_env_close(&e);
}

/* A key that fails for good: its later events wait, in order, while the
 * other keys advance; the failure survives a restart; retry and the
 * handler's fix (a reload) are what moves it. */
static void
test_failing_key_waits_alone(void)
{
	pt_env e;
	pt_env_open(&e, "block", SL_TEST_PLUGIN_DIR "/fail_on_type.so");
	const proj_def *def = pt_find(e.r, "fail_on_type");

	pt_commit1(e.s, "t1", "a", "Tick", "{}");
	pt_commit1(e.s, "t1", "a", "Tock", "{}");
	uint64_t bad = pt_commit1(e.s, "t1", "b", "Tock", "{\"fail\":true}");
	for (int i = 0; i < 5; i++) {
		pt_commit1(e.s, "t1", "c", "Tick", "{}");
		pt_commit1(e.s, "t1", "a", "Tick", "{}");
		pt_commit1(e.s, "t1", "b", "Tick", "{}");
	}
	uint64_t head = store_next_position(e.s);

	processor *p;
	CHECK_EQ(proc_start(e.s, e.rm, "t1", def, 3, &p), SL_OK);
	proc_failing f;
	pt_wait_unit(p, "b", 3, PT_WAIT_MS, &f);
	CHECK_STREQ(f.reason, "refused: Tock");
	CHECK_EQ(f.position, bad);
	proc_status st = pt_wait_position(p, head, PT_WAIT_MS);
	CHECK_EQ(st.n_failing, 1);
	CHECK_EQ(st.events_handled, 12); /* a: 7, c: 5; b: none */
	CHECK_EQ(read_checkpoint(e.rm, FAIL_PROJ), head);
	CHECK_EQ(pt_state_i64(e.rm, FAIL_PROJ, "a", "count"), 7);
	CHECK_EQ(pt_state_i64(e.rm, FAIL_PROJ, "c", "count"), 5);
	CHECK(!has_model(e.rm, FAIL_PROJ, "b"));

	/* More commits while b fails: the others go on, b's wait. */
	pt_commit1(e.s, "t1", "c", "Tick", "{}");
	pt_commit1(e.s, "t1", "b", "Tick", "{}");
	st = pt_wait_position(p, head + 2, PT_WAIT_MS);
	CHECK_EQ(pt_state_i64(e.rm, FAIL_PROJ, "c", "count"), 6);
	CHECK(!has_model(e.rm, FAIL_PROJ, "b"));

	/* The retry delay (now 400+ ms) is interrupted by proc_stop. */
	int64_t t0 = pt_now_ms();
	proc_stop(p);
	CHECK(pt_now_ms() - t0 < 300);

	/* A restarted processor still has b failing at the same event,
	 * with the attempts so far, and retries it. */
	CHECK_EQ(proc_start(e.s, e.rm, "t1", def, 100, &p), SL_OK);
	proc_failing again;
	pt_wait_unit(p, "b", f.attempts + 1, PT_WAIT_MS, &again);
	CHECK_EQ(again.position, bad);
	proc_get_status(p, &st);
	CHECK_EQ(st.events_handled, 0);
	CHECK(!has_model(e.rm, FAIL_PROJ, "b"));
	proc_stop(p);
	CHECK_EQ(pt_state_i64(e.rm, FAIL_PROJ, "a", "count"), 7);
	pt_env_close(&e);
}

/* A poison event met during a rebuild (here: an operator's reset): the
 * new generation is served once it reaches the head all the same, with
 * the failing key carried over and listed; every other key shows the
 * events committed since. */
static void
test_poison_during_rebuild(void)
{
	pt_env e;
	pt_env_open(&e, "poison", SL_TEST_PLUGIN_DIR "/fail_on_type.so");
	const proj_def *def = pt_find(e.r, "fail_on_type");

	pt_commit1(e.s, "t1", "a", "Tick", "{}");
	pt_commit1(e.s, "t1", "b", "Tick", "{}");
	uint64_t    head = store_next_position(e.s);
	processor  *p;
	CHECK_EQ(proc_start(e.s, e.rm, "t1", def, 2, &p), SL_OK);
	proc_status st   = pt_wait_position(p, head, PT_WAIT_MS);
	uint64_t    gen0 = st.generation;

	CHECK_EQ(proc_command(p, PROC_CMD_PAUSE, PT_WAIT_MS), SL_OK);
	CHECK_EQ(proc_command(p, PROC_CMD_RESET, PT_WAIT_MS), SL_OK);
	uint64_t bad = pt_commit1(e.s, "t1", "b", "Tock", "{\"fail\":true}");
	for (int i = 0; i < 4; i++) {
		pt_commit1(e.s, "t1", "a", "Tick", "{}");
		pt_commit1(e.s, "t1", "b", "Tick", "{}");
	}
	head = store_next_position(e.s);
	CHECK_EQ(proc_command(p, PROC_CMD_RESUME, PT_WAIT_MS), SL_OK);

	proc_failing f;
	pt_wait_unit(p, "b", 1, PT_WAIT_MS, &f);
	CHECK_EQ(f.position, bad);
	int64_t end = pt_now_ms() + PT_WAIT_MS;
	for (;;) {
		proc_get_status(p, &st);
		if (!st.rebuilding && st.position >= head)
			break;
		CHECK(pt_now_ms() < end); /* the rebuild never switched */
		pt_sleep_ms(2);
	}
	CHECK_EQ(st.generation, gen0 + 1);
	CHECK_EQ(st.served_position, head);
	CHECK_EQ(st.n_failing, 1);
	CHECK_EQ(pt_state_i64(e.rm, FAIL_PROJ, "a", "count"), 5);
	/* b: its state before the poison event, in the new generation */
	CHECK_EQ(pt_state_i64(e.rm, FAIL_PROJ, "b", "count"), 1);
	CHECK(pt_unit_failing(p, "b"));
	proc_stop(p);

	/* after a restart: the new generation still served, b still listed */
	CHECK_EQ(proc_start(e.s, e.rm, "t1", def, 2, &p), SL_OK);
	pt_wait_unit(p, "b", 1, PT_WAIT_MS, &f);
	CHECK_EQ(f.position, bad);
	proc_get_status(p, &st);
	CHECK(!st.rebuilding);
	CHECK_EQ(st.generation, gen0 + 1);
	proc_stop(p);
	CHECK_EQ(pt_state_i64(e.rm, FAIL_PROJ, "a", "count"), 5);
	pt_env_close(&e);
}

/* Whether the read model of acc-<i> holds the name it was opened with. */
static bool
has_account(rmstore *rm, int i)
{
	char  key[32], *data = NULL;
	size_t len;
	snprintf(key, sizeof(key), "acc-%05d", i);
	int rc = rm_get(rm, ACC_PROJ, key, strlen(key), &data, &len);
	CHECK(rc == SL_OK || rc == SL_ENOTFOUND);
	free(data);
	return rc == SL_OK;
}

/*
 * The read-model map fills up in the middle of a catch-up: the batch's
 * write fails as a whole (storage trouble, retried, the processor says
 * failing), what the earlier batches stored is intact and exactly up to the
 * checkpoint, and once the map is larger (reopened) the processor goes on
 * from that checkpoint to a complete set, nothing handled twice.
 */
static void
test_map_full(void)
{
	char     path[4200];
	store   *s;
	rmstore *rm;
	snprintf(path, sizeof(path), "%s/full-log", tu_tmpdir());
	CHECK_EQ(store_open(path, 64u << 20, false, &s), SL_OK);
	snprintf(path, sizeof(path), "%s/full-rm", tu_tmpdir());
	CHECK_EQ(rm_open(path, 256u << 10, false, &rm), SL_OK);
	registry *r = pt_load(SL_PLUGIN_DIR "/account_details.so");
	const proj_def *def = pt_find(r, "account_details");

	enum { N = 3000 };
	char name[200];
	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	for (int i = 0; i < N; i++) {
		char stream[32], json[256];
		snprintf(stream, sizeof(stream), "acc-%05d", i);
		snprintf(json, sizeof(json), "{\"name\":\"%.180s\"}", name);
		pt_commit1(s, "t1", stream, "DebitAccountOpened", json);
	}
	uint64_t head = store_next_position(s);

	processor *p;
	CHECK_EQ(proc_start(s, rm, "t1", def, 100, &p), SL_OK);
	proc_status st = pt_wait_failing(p, 1, PT_WAIT_MS);
	CHECK(strstr(st.reason, "MDB_MAP_FULL") != NULL
	    || strstr(st.reason, "full") != NULL);
	proc_stop(p);
	uint64_t at = read_checkpoint(rm, ACC_PROJ);
	CHECK(at > 0 && at < head);
	/* exactly what the committed batches handled, no more */
	for (int i = 0; i < N; i++)
		CHECK_EQ(has_account(rm, i), (uint64_t) i < at);

	/* a larger map: on from the checkpoint to the head */
	rm_close(rm);
	CHECK_EQ(rm_open(path, 64u << 20, false, &rm), SL_OK);
	CHECK_EQ(proc_start(s, rm, "t1", def, 100, &p), SL_OK);
	st = pt_wait_position(p, head, PT_WAIT_MS);
	CHECK_EQ(st.events_handled, head - at);
	proc_stop(p);
	for (int i = 0; i < N; i++)
		CHECK(has_account(rm, i));
	registry_destroy(r);
	rm_close(rm);
	store_close(s);
}

/* A property key selector on a missing or non-scalar property: the event
 * waits, not retried (only a new definition can find its key), and the
 * other keys go on. */
static void
test_missing_key_property(void)
{
	pt_env e;
	pt_env_open(&e, "keys", SL_PLUGIN_DIR "/account_details.so");
	const proj_def *def = pt_find(e.r, "account_details");

	pt_commit1(e.s, "t1", "acc-1", "DebitPerformed", "{\"amount\":10}");
	uint64_t bad = pt_commit1(
	    e.s, "t1", "atm-1", "WithdrawalPerformed", "{\"amount\":5}");
	pt_commit1(e.s, "t1", "acc-1", "DebitPerformed", "{\"amount\":20}");
	uint64_t head = store_next_position(e.s);

	processor *p;
	CHECK_EQ(proc_start(e.s, e.rm, "t1", def, 100, &p), SL_OK);
	proc_failing f;
	pt_wait_unit(p, "(no key) stream atm-1", 1, PT_WAIT_MS, &f);
	CHECK(strstr(f.reason, "'account_id' is missing") != NULL);
	CHECK(strstr(f.reason, "WithdrawalPerformed") != NULL);
	CHECK_EQ(f.position, bad);
	CHECK(!f.retry && f.next_try_ns == 0);
	pt_wait_position(p, head, PT_WAIT_MS);
	CHECK_EQ(pt_state_i64(e.rm, ACC_PROJ, "acc-1", "balance"), 30);
	pt_sleep_ms(100); /* not retried */
	pt_wait_unit(p, "(no key) stream atm-1", 1, PT_WAIT_MS, &f);
	CHECK_EQ(f.attempts, 1);
	proc_stop(p);

	/* non-scalar property: same, in another tenant's store */
	rmstore *rm2;
	char     path[4200];
	snprintf(path, sizeof(path), "%s/keys-rm2", tu_tmpdir());
	CHECK_EQ(rm_open(path, 16u << 20, false, &rm2), SL_OK);
	uint64_t bad2 = pt_commit1(e.s, "t2", "cust-1", "CustomerRegistered",
	    "{\"name\":\"X\",\"account\":{\"id\":{\"nested\":1}}}");
	CHECK_EQ(proc_start(e.s, rm2, "t2", def, 100, &p), SL_OK);
	pt_wait_unit(p, "(no key) stream cust-1", 1, PT_WAIT_MS, &f);
	CHECK(strstr(f.reason, "not a string or an integer") != NULL);
	CHECK_EQ(f.position, bad2);
	proc_stop(p);
	CHECK(!has_model(rm2, ACC_PROJ, "acc-1"));
	rm_close(rm2);
	pt_env_close(&e);
}

int
main(void)
{
	test_keys();
	test_fail_then_succeed();
	test_failing_key_waits_alone();
	test_poison_during_rebuild();
	test_map_full();
	test_missing_key_property();
	return 0;
}
