/*
 * A changed projection definition (def_hash) drops the read models and
 * rebuilds them from position 0, with the same results as a fold of the log;
 * an unchanged one continues from its checkpoint; an operator's reset
 * stopped mid-way resumes after a restart.
 */
#include "projection_testutil.h"

#define PROJ "8a2f3c1e-5b7d-4e9a-9c11-2d4e6f8a0b13"

/* Put a read model no event produced, to see that a rebuild drops it. */
static void
put_stray(rmstore *rm, const char *key)
{
	MDB_txn *txn;
	MDB_dbi  dbi;
	CHECK_EQ(rm_dbi(rm, NULL, PROJ, true, &dbi), SL_OK);
	CHECK_EQ(mdb_txn_begin(rm_env(rm), NULL, 0, &txn), 0);
	MDB_val k = { strlen(key), (void *) key };
	MDB_val v = { 1, "\x80" }; /* {} */
	CHECK_EQ(mdb_put(txn, dbi, &k, &v, 0), 0);
	CHECK_EQ(mdb_txn_commit(txn), 0);
}

static rm_checkpoint
checkpoint(rmstore *rm)
{
	MDB_txn      *txn;
	rm_checkpoint cp;
	CHECK_EQ(mdb_txn_begin(rm_env(rm), NULL, MDB_RDONLY, &txn), 0);
	CHECK_EQ(rm_checkpoint_read(rm, txn, "proj:" PROJ, &cp), SL_OK);
	mdb_txn_abort(txn);
	return cp;
}

/* Wait until the processor's status satisfies ok(), or fail. */
static proc_status
wait_status(processor *p, bool (*ok)(const proc_status *), const char *what)
{
	proc_status st;
	int64_t     end = pt_now_ms() + PT_WAIT_MS;
	for (;;) {
		proc_get_status(p, &st);
		if (ok(&st))
			return st;
		if (pt_now_ms() > end) {
			fprintf(stderr, "timeout waiting for %s: %s at %" PRIu64
			    ", rebuilding %d, generation %" PRIu64 "\n",
			    what, proc_state_name(st.state), st.position,
			    st.rebuilding, st.generation);
			exit(1);
		}
		pt_sleep_ms(1);
	}
}

static bool
rebuilt_some(const proc_status *st)
{
	return st->rebuilding && st->position >= 20;
}

static bool
paused_now(const proc_status *st)
{
	return st->paused && st->state == PROC_PAUSED;
}

/*
 * An operator's reset, stopped mid-rebuild (what SIGTERM does) and started
 * again with the same definition: the rebuild resumes where it stood, and
 * the new generation is served once it has caught up. (The served
 * checkpoint has this definition's hash too, which once made the restart
 * carry on with the old generation and drop the rebuild.)
 */
static void
test_reset_resumes(store *s, rmstore *rm, const proj_def *def, pt_gen *g)
{
	processor  *p;
	uint64_t    head = store_next_position(s);
	/* one event per batch: a rebuild takes thousands of commits */
	CHECK_EQ(proc_start(s, rm, "t1", def, 1, &p), SL_OK);
	proc_status st = pt_wait_position(p, head, PT_WAIT_MS);
	uint64_t    gen0 = st.generation;
	CHECK_EQ(proc_command(p, PROC_CMD_RESET, PT_WAIT_MS), SL_OK);
	wait_status(p, rebuilt_some, "a rebuild under way");
	CHECK_EQ(proc_command(p, PROC_CMD_PAUSE, PT_WAIT_MS), SL_OK);
	st = wait_status(p, paused_now, "the pause");
	CHECK(st.rebuilding); /* stopped mid-rebuild */
	CHECK_EQ(st.generation, gen0);
	uint64_t at = st.position;
	CHECK(at > 0 && at < head);
	proc_stop(p);

	CHECK_EQ(proc_start(s, rm, "t1", def, 200, &p), SL_OK);
	st = wait_status(p, paused_now, "the pause after the restart");
	CHECK(st.rebuilding);
	CHECK_EQ(st.position, at); /* resumed, not started over or dropped */
	CHECK_EQ(st.generation, gen0);
	CHECK_EQ(proc_command(p, PROC_CMD_RESUME, PT_WAIT_MS), SL_OK);
	st = pt_wait_position(p, head, PT_WAIT_MS);
	CHECK(!st.rebuilding);
	CHECK_EQ(st.generation, gen0 + 1);
	CHECK(st.events_handled > 0 && st.events_handled < g->selected);
	proc_stop(p);
	pt_compare(rm, PROJ, g);
	rm_checkpoint cp = checkpoint(rm);
	CHECK_EQ(cp.position, head);
	CHECK(cp.def_hash == def->def_hash);
}

int
main(void)
{
	char     path[4200];
	store   *s;
	rmstore *rm;
	pt_gen  *g = calloc(1, sizeof(*g));
	CHECK(g != NULL);
	pt_gen_init(g, 77);

	snprintf(path, sizeof(path), "%s/log", tu_tmpdir());
	CHECK_EQ(store_open(path, 128u << 20, false, &s), SL_OK);
	snprintf(path, sizeof(path), "%s/rm", tu_tmpdir());
	CHECK_EQ(rm_open(path, 32u << 20, false, &rm), SL_OK);
	registry       *r   = pt_load(SL_PLUGIN_DIR "/account_details.so");
	const proj_def *def = pt_find(r, "account_details");

	pt_commit_many(s, g, 1500);
	uint64_t head = store_next_position(s);

	/* First build. */
	processor *p;
	CHECK_EQ(proc_start(s, rm, "t1", def, 200, &p), SL_OK);
	proc_status st = pt_wait_position(p, head, PT_WAIT_MS);
	CHECK_EQ(st.events_handled, g->selected);
	proc_stop(p);
	pt_compare(rm, PROJ, g);

	/* Same definition, reopened stores: continues, nothing redone. */
	rm_close(rm);
	CHECK_EQ(rm_open(path, 32u << 20, false, &rm), SL_OK);
	CHECK_EQ(proc_start(s, rm, "t1", def, 200, &p), SL_OK);
	st = pt_wait_position(p, head, PT_WAIT_MS);
	CHECK_EQ(st.events_handled, 0);
	proc_stop(p);

	/* A new definition (another hash): everything is rebuilt from 0; a
	 * stray read model from the old definition is gone. */
	put_stray(rm, "acc-0249");
	proj_def changed = *def;
	changed.def_hash ^= 0x9e3779b97f4a7c15ULL;
	pt_commit_many(s, g, 200);
	head = store_next_position(s);
	CHECK_EQ(proc_start(s, rm, "t1", &changed, 300, &p), SL_OK);
	st = pt_wait_position(p, head, PT_WAIT_MS);
	CHECK_EQ(st.events_handled, g->selected); /* all of them again */
	proc_stop(p);
	pt_compare(rm, PROJ, g); /* includes: acc-0249 not found */
	rm_checkpoint cp = checkpoint(rm);
	CHECK_EQ(cp.position, head);
	CHECK(cp.def_hash == changed.def_hash);

	/* A checkpoint written by another definition (e.g. an older plugin
	 * version, found at start): the same rebuild, with the real def. */
	{
		MDB_txn      *txn;
		rm_checkpoint old = { .position = head, .def_hash = 12345 };
		CHECK_EQ(mdb_txn_begin(rm_env(rm), NULL, 0, &txn), 0);
		CHECK_EQ(
		    rm_checkpoint_write(rm, txn, "proj:" PROJ, &old), SL_OK);
		CHECK_EQ(mdb_txn_commit(txn), 0);
	}
	put_stray(rm, "acc-0248");
	CHECK_EQ(proc_start(s, rm, "t1", def, 50, &p), SL_OK);
	st = pt_wait_position(p, head, PT_WAIT_MS);
	CHECK_EQ(st.events_handled, g->selected);
	/* and live afterwards */
	pt_commit_many(s, g, 100);
	head = store_next_position(s);
	st   = pt_wait_position(p, head, PT_WAIT_MS);
	CHECK_EQ(st.events_handled, g->selected);
	proc_stop(p);
	pt_compare(rm, PROJ, g);
	cp = checkpoint(rm);
	CHECK_EQ(cp.position, head);
	CHECK(cp.def_hash == def->def_hash);

	test_reset_resumes(s, rm, def, g);

	registry_destroy(r);
	rm_close(rm);
	store_close(s);
	free(g);
	return 0;
}
