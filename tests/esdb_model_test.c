/*
 * EventStoreDB's handler model in C (issue 15, ABI 1.3), through the one
 * engine over a real log: created() runs once per new key ($init per
 * partition), emit with metadata, linkStreamTo ("$@" events naming the
 * stream), per-key result streams with Result and, when the state goes
 * away, ResultRemoved; a projection with one static key writes its
 * results to the root stream $projections-<name>-result; a shared state
 * ($initShared) across keys, kept across a restart, untouched by a failed
 * event, for a read-model projection and an emitting one; named result
 * streams (outputTo), hashed into the definition, and a result transform
 * failing its key with its reason (result_reason).
 */
#include <stddef.h>

#include "emitter.h"
#include "plugins_internal.h"
#include "projection_testutil.h"

/* eproj_state_fn: the state as JSON into arg (256 bytes). */
static int
state_json(void *arg, const char *key, size_t key_len, const void *state,
    size_t state_len, const void *result, size_t result_len)
{
	(void) key;
	(void) key_len;
	(void) result;
	(void) result_len;
	msgpack_unpacked u;
	char *j = mp_to_json_text(pt_decode(&u, state, state_len));
	snprintf(arg, 256, "%s", j);
	free(j);
	msgpack_unpacked_destroy(&u);
	return 0;
}

static void
delete_stream(store *s, const char *stream)
{
	store_commit c;
	memset(&c, 0, sizeof(c));
	c.tenant     = "t1";
	c.tenant_len = 2;
	c.stream     = stream;
	c.stream_len = strlen(stream);
	c.expected   = STORE_EXPECT_ANY;
	c.trunc      = STORE_TRUNC_DELETE;
	CHECK_EQ(store_commit_wait(s, &c), SL_OK);
}

static proj_settings
settings(void)
{
	proj_settings set = {
		.checkpoint_handled_threshold         = 4000,
		.checkpoint_unhandled_bytes_threshold = 10u << 20,
		.pending_events_threshold             = 5000,
		.max_write_batch_length               = 500,
	};
	return set;
}

static eproj *
run(pt_env *e, const char *name, uint64_t head)
{
	const proj_def *def = pt_find(e->r, name);
	char            err[256];
	proj_settings   set = settings();
	eproj          *ep;
	CHECK_EQ(eproj_claim(e->s, def, err, sizeof(err)), SL_OK);
	CHECK_EQ(eproj_start(e->s, "t1", def, CFG_MODE_CONTINUOUS, &set, false,
	             &ep),
	    SL_OK);
	int64_t end = pt_now_ms() + PT_WAIT_MS;
	for (;;) {
		eproj_status st;
		eproj_get_status(ep, &st);
		if (st.status != NULL && st.position >= head
		    && st.writes_in_flight == 0)
			break;
		CHECK(pt_now_ms() < end);
		pt_sleep_ms(2);
	}
	return ep;
}

int
main(void)
{
	pt_env e;
	pt_env_open(&e, "esdb", SL_TEST_PLUGIN_DIR "/esdb_model.so");
	pt_commit1(e.s, "t1", "acc-1", "Opened", "{}");
	pt_commit1(e.s, "t1", "acc-1", "Deposited", "{\"amount\":5}");
	pt_commit1(e.s, "t1", "acc-2", "Opened", "{}");
	pt_commit1(e.s, "t1", "acc-1", "Deposited", "{\"amount\":7}");
	pt_commit1(e.s, "t1", "acc-2", "Deposited", "{\"amount\":1}");
	pt_commit1(e.s, "t1", "acc-2", "Closed", "{}");
	uint64_t head = store_next_position(e.s);

	eproj *m = run(&e, "esdb_model", head);
	eproj *t = run(&e, "esdb_total", head);
	eproj_stop(m);
	eproj_stop(t);

	static pt_sev v[16];
	/* created once per key, before its first event, which it saw */
	char json[256] = "";
	CHECK_EQ(eproj_read_states(e.s, "t1", pt_find(e.r, "esdb_model"), NULL,
	             "acc-1", 5, state_json, json),
	    SL_OK);
	CHECK_STREQ(json, "{\"key_no\":1,\"created\":1,"
	                  "\"first_type\":\"Opened\",\"balance\":12}");

	/* emit with metadata */
	CHECK_EQ(pt_read_stream(e.s, "audit-acc-1", v, 16), 2);
	CHECK_STREQ(v[0].type, "Seen");
	CHECK_STREQ(v[0].meta, "{\"source\":\"acc-1\",\"n\":5}");
	CHECK_STREQ(v[1].meta, "{\"source\":\"acc-1\",\"n\":7}");
	/* linkStreamTo: "$@" events whose content is the stream's id */
	CHECK_EQ(pt_read_stream(e.s, "account-index", v, 16), 2);
	CHECK_STREQ(v[0].type, "$@");
	CHECK_STREQ(v[0].content, "\"acc-1\"");
	CHECK_STREQ(v[1].content, "\"acc-2\"");
	/* per-key results; the deleted key's result removed */
	size_t k = pt_read_stream(e.s, "$projections-esdb_model-acc-1-result", v, 16);
	CHECK_EQ(k, 2);
	CHECK_STREQ(v[0].type, "Result");
	CHECK_STREQ(v[0].content, "{\"balance\":5}");
	CHECK_STREQ(v[1].content, "{\"balance\":12}");
	k = pt_read_stream(e.s, "$projections-esdb_model-acc-2-result", v, 16);
	CHECK_EQ(k, 2);
	CHECK_STREQ(v[0].content, "{\"balance\":1}");
	CHECK_STREQ(v[1].type, "ResultRemoved");
	/* each result (and removal) linked into the root result stream, in
	 * the order written, as EventStoreDB's ResultEventEmitter */
	k = pt_read_stream(e.s, "$projections-esdb_model-result", v, 16);
	CHECK_EQ(k, 4);
	for (size_t i = 0; i < k; i++)
		CHECK_STREQ(v[i].type, "$>");
	CHECK_STREQ(
	    v[0].content, "\"0@$projections-esdb_model-acc-1-result\"");
	CHECK_STREQ(
	    v[3].content, "\"1@$projections-esdb_model-acc-2-result\"");
	/* one static key: the root result stream */
	k = pt_read_stream(e.s, "$projections-esdb_total-result", v, 16);
	CHECK_EQ(k, 3);
	CHECK_STREQ(v[2].content, "{\"sum\":13}");
	CHECK_EQ(pt_read_stream(e.s, "$projections-esdb_total-total-result", v, 16),
	    0);

	/* the shared state of an emitting projection outlives a restart:
	 * the next new key is number 3 */
	pt_commit1(e.s, "t1", "acc-3", "Opened", "{}");
	head = store_next_position(e.s);
	m    = run(&e, "esdb_model", head);
	eproj_stop(m);
	CHECK_EQ(eproj_read_states(e.s, "t1", pt_find(e.r, "esdb_model"),
	             NULL, "acc-3", 5, state_json, json),
	    SL_OK);
	CHECK(strstr(json, "\"key_no\":3") != NULL);

	/* a read-model projection's shared state: numbers every event; the
	 * failed Boom's count vanishes; kept across a stop and start */
	const proj_def *sd = pt_find(e.r, "esdb_shared");
	pt_commit1(e.s, "t1", "x-1", "Boom", "{}");
	pt_commit1(e.s, "t1", "x-2", "Ping", "{}");
	head = store_next_position(e.s);
	processor *p;
	CHECK_EQ(proc_start(e.s, e.rm, "t1", sd, 16, &p), SL_OK);
	proc_status pst = pt_wait_position(p, head, PT_WAIT_MS);
	CHECK_EQ(pst.n_failing, 1); /* x-1 */
	proc_stop(p);
	/* before Boom: 7 commits and the 3 "Seen" esdb_model emitted
	 * (system streams and links are not its sources); Ping is the 11th */
	CHECK_EQ(pt_state_i64(e.rm, "e5db0000-0000-4000-8000-000000000003",
	             "x-2", "n"),
	    11);
	pt_commit1(e.s, "t1", "x-3", "Ping", "{}");
	head = store_next_position(e.s);
	CHECK_EQ(proc_start(e.s, e.rm, "t1", sd, 16, &p), SL_OK);
	pt_wait_position(p, head, PT_WAIT_MS);
	proc_stop(p);
	CHECK_EQ(pt_state_i64(e.rm, "e5db0000-0000-4000-8000-000000000003",
	             "x-3", "n"),
	    12);

	/* $deleted: a deleted stream's key goes to the deleted callback:
	 * esdb_model marks acc-1's state, esdb_shared drops x-2's read model;
	 * keys without a state (acc-9 never existed) are not called */
	delete_stream(e.s, "acc-1");
	delete_stream(e.s, "x-2");
	head = store_next_position(e.s);
	m    = run(&e, "esdb_model", head);
	eproj_stop(m);
	CHECK_EQ(eproj_read_states(e.s, "t1", pt_find(e.r, "esdb_model"),
	             NULL, "acc-1", 5, state_json, json),
	    SL_OK);
	CHECK(strstr(json, "\"deleted\":true") != NULL);
	CHECK(strstr(json, "\"balance\":12") != NULL);
	CHECK_EQ(proc_start(e.s, e.rm, "t1", sd, 16, &p), SL_OK);
	pt_wait_position(p, head, PT_WAIT_MS);
	proc_stop(p);
	char  *data;
	size_t dlen;
	CHECK_EQ(rm_get(e.rm, "e5db0000-0000-4000-8000-000000000003", "x-2", 3,
	             &data, &dlen),
	    SL_ENOTFOUND);
	CHECK_EQ(pt_state_i64(e.rm, "e5db0000-0000-4000-8000-000000000003",
	             "x-3", "n"),
	    12);

	/* sl_projection.key (partitionBy): keys from the function, an
	 * event it skips, one it finds no key for (failed, its reason) */
	pt_commit1(e.s, "t1", "k-1", "Keyed", "{\"owner\":\"ann\"}");
	pt_commit1(e.s, "t1", "k-2", "Keyed", "{\"owner\":\"ann\"}");
	pt_commit1(e.s, "t1", "k-3", "Keyed", "{\"owner\":\"bob\"}");
	pt_commit1(e.s, "t1", "k-4", "Keyed", "{}");
	pt_commit1(e.s, "t1", "k-5", "Keyed", "{\"owner\":\"bad\"}");
	head = store_next_position(e.s);
	CHECK_EQ(proc_start(e.s, e.rm, "t1", pt_find(e.r, "esdb_keyed"), 16,
	             &p),
	    SL_OK);
	pst = pt_wait_failing_units(p, head, PT_WAIT_MS);
	CHECK_EQ(pst.n_failing, 1);
	proc_failing pf;
	proc_get_failing(p, &pf, 1);
	CHECK(strstr(pf.reason, "owner bad in k-5") != NULL);
	CHECK(!pf.retry);
	proc_stop(p);
	static const char keyed_id[] = "e5db0000-0000-4000-8000-000000000004";
	CHECK_EQ(pt_state_i64(e.rm, keyed_id, "owner-ann", "n"), 2);
	CHECK_EQ(pt_state_i64(e.rm, keyed_id, "owner-bob", "n"), 1);
	CHECK_EQ(rm_get(e.rm, keyed_id, "k-1", 3, &data, &dlen), SL_ENOTFOUND);
	CHECK_EQ(rm_get(e.rm, keyed_id, "k-4", 3, &data, &dlen), SL_ENOTFOUND);

	/* named result streams (outputTo): each key's results in
	 * "named-<key>-out", none under the default names; result_reason's
	 * failure fails acc-2 with its reason, not retried; the names are
	 * part of the definition */
	const proj_def *nd = pt_find(e.r, "esdb_named");
	pt_commit1(e.s, "t1", "acc-1", "Named", "{}");
	pt_commit1(e.s, "t1", "acc-2", "Named", "{}");
	pt_commit1(e.s, "t1", "acc-1", "Named", "{}");
	head            = store_next_position(e.s);
	eproj       *ne = run(&e, "esdb_named", head);
	proc_failing nf;
	CHECK_EQ(eproj_get_failing(ne, &nf, 1), 1);
	CHECK_STREQ(nf.partition, "acc-2");
	CHECK(strstr(nf.reason,
	          "no result for acc-2 (the result of key "
	          "'acc-2')")
	    != NULL);
	CHECK(!nf.retry);
	eproj_stop(ne);
	CHECK_EQ(pt_read_stream(e.s, "named-acc-1-out", v, 16), 2);
	CHECK_STREQ(v[1].type, "Result");
	CHECK_STREQ(v[1].content, "{\"count\":2}");
	CHECK_EQ(pt_read_stream(e.s, "named-acc-2-out", v, 16), 0);
	CHECK_EQ(
	    pt_read_stream(e.s, "$projections-esdb_named-acc-1-result", v, 16),
	    0);
	/* the root result stream: a link to each key's result */
	CHECK_EQ(pt_read_stream(e.s, "named-all", v, 16), 2);
	CHECK_STREQ(v[0].type, "$>");
	CHECK_STREQ(v[0].content, "\"0@named-acc-1-out\"");
	CHECK_STREQ(v[1].content, "\"1@named-acc-1-out\"");
	sl_projection other           = *nd->p;
	proj_def      od              = *nd;
	od.p                          = &other;
	other.partition_result_stream = "named-{0}-other";
	CHECK(plug_def_hash(&od) != nd->def_hash);
	other.result_stream           = NULL;
	other.partition_result_stream = NULL;
	uint64_t unnamed              = plug_def_hash(&od);
	CHECK(unnamed != nd->def_hash);
	/* without the 1.3 names (a shorter struct): the hash of no names */
	other             = *nd->p;
	other.struct_size = (uint32_t) offsetof(sl_projection, result_stream);
	CHECK_EQ(plug_def_hash(&od), unnamed);
	pt_env_close(&e);
	printf("esdb_model_test: ok\n");
	return 0;
}
