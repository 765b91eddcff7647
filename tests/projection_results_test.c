/*
 * A processor running the real Account Details plugin over a real log builds
 * exactly the read models a plain-C fold of the same events gives: while
 * catching up, while live (woken by commits, not by a poll), and after a
 * restart from its checkpoint (only the new events are handled).
 */
#include "projection_testutil.h"

#define PROJ "8a2f3c1e-5b7d-4e9a-9c11-2d4e6f8a0b13"

int
main(void)
{
	char     path[4200];
	store   *s;
	rmstore *rm;
	pt_gen  *g = calloc(1, sizeof(*g));
	CHECK(g != NULL);
	pt_gen_init(g, 0x5eed1234abcdULL);

	snprintf(path, sizeof(path), "%s/log", tu_tmpdir());
	CHECK_EQ(store_open(path, 256u << 20, false, &s), SL_OK);
	snprintf(path, sizeof(path), "%s/rm-t1", tu_tmpdir());
	CHECK_EQ(rm_open(path, 64u << 20, false, &rm), SL_OK);
	registry       *r   = pt_load(SL_PLUGIN_DIR "/account_details.so");
	const proj_def *def = pt_find(r, "account_details");
	CHECK_STREQ(def->id, PROJ);

	/* Before any processor ran: no read models, nothing to scan. */
	char  *data;
	size_t len;
	CHECK_EQ(rm_get(rm, PROJ, "acc-0001", 8, &data, &len), SL_ENOTFOUND);

	/* ~5,000 events in many commits, then catch up from 0. */
	pt_commit_many(s, g, 5000);
	uint64_t head = store_next_position(s);
	CHECK(head >= 5000);
	uint64_t selected = g->selected;

	processor *p;
	int64_t    t0 = pt_now_ms();
	CHECK_EQ(proc_start(s, rm, "t1", def, 256, &p), SL_OK);
	proc_status st = pt_wait_position(p, head, PT_WAIT_MS);
	fprintf(stderr, "caught up with %" PRIu64 " events in %lld ms\n", head,
	    (long long) (pt_now_ms() - t0));
	CHECK_EQ(st.position, head);
	CHECK_EQ(st.events_handled, selected);
	CHECK_EQ(st.attempts, 0);
	CHECK_STREQ(st.reason, "");
	CHECK_STREQ(st.tenant, "t1");
	CHECK(st.def == def);
	pt_compare(rm, PROJ, g);

	/* The checkpoint in the store is the status position. */
	{
		MDB_txn      *txn;
		rm_checkpoint cp;
		CHECK_EQ(mdb_txn_begin(rm_env(rm), NULL, MDB_RDONLY, &txn), 0);
		CHECK_EQ(
		    rm_checkpoint_read(rm, txn, "proj:" PROJ, &cp), SL_OK);
		CHECK_EQ(cp.position, head);
		CHECK(cp.def_hash == def->def_hash);
		CHECK_EQ(rm_checkpoint_read(rm, txn, "proj:nope", &cp),
		    SL_ENOTFOUND);
		mdb_txn_abort(txn);
	}

	/* Live: each commit is picked up quickly (woken by the store; the
	 * processor's own wait timeout is 500 ms, so 20 rounds that each took
	 * a timeout would show). */
	int64_t live_start = pt_now_ms();
	for (int round = 0; round < 20; round++) {
		size_t n = pt_commit_random(s, g);
		(void) n;
		head      = store_next_position(s);
		int64_t t = pt_now_ms();
		pt_wait_position(p, head, PT_WAIT_MS);
		int64_t took = pt_now_ms() - t;
		if (took > 250) {
			fprintf(stderr, "live event took %lld ms to apply\n",
			    (long long) took);
			exit(1);
		}
	}
	fprintf(stderr, "20 live commits applied in %lld ms\n",
	    (long long) (pt_now_ms() - live_start));
	pt_commit_many(s, g, 500); /* and a burst */
	head = store_next_position(s);
	st   = pt_wait_position(p, head, PT_WAIT_MS);
	CHECK_EQ(st.events_handled, g->selected);
	pt_compare(rm, PROJ, g);

	/* Restart: a new processor continues from the checkpoint. */
	proc_stop(p);
	uint64_t before = g->selected;
	pt_commit_many(s, g, 300);
	head = store_next_position(s);
	CHECK_EQ(proc_start(s, rm, "t1", def, 64, &p), SL_OK);
	st = pt_wait_position(p, head, PT_WAIT_MS);
	CHECK_EQ(st.events_handled, g->selected - before);
	pt_compare(rm, PROJ, g);

	/* A processor of another tenant on its own store sees only t2. */
	rmstore *rm2;
	snprintf(path, sizeof(path), "%s/rm-t2", tu_tmpdir());
	CHECK_EQ(rm_open(path, 16u << 20, false, &rm2), SL_OK);
	processor *p2;
	CHECK_EQ(proc_start(s, rm2, "t2", def, 1000, &p2), SL_OK);
	st = pt_wait_position(p2, head, PT_WAIT_MS);
	CHECK(g->t2 > 0);
	CHECK_EQ(st.events_handled, g->t2);
	proc_stop(p2);
	rm_close(rm2);

	proc_stop(p);
	registry_destroy(r);
	rm_close(rm);
	store_close(s);
	free(g);
	return 0;
}
