/*
 * Proves that a processor takes a new definition between batches: the same
 * definition continues from the checkpoint with the new code; a changed one
 * rebuilds into the other generation while queries keep getting the
 * complete old read models, and is served once it reaches the head (keys
 * failing in it carried over, retried there), the switch-over exposing no
 * missing read model; a dropped projection stops and stays
 * served. Every event is handled once per rebuild.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include "host.h"
#include "log.h"
#include "projection_testutil.h"

#define PROJ "8a2f3c1e-5b7d-4e9a-9c11-2d4e6f8a0b13"

static const sl_projection *real; /* the plugin's vtable */
static atomic_long          calls;
static atomic_ullong        fail_from = UINT64_MAX;

/* The plugin's on(), counted, failing from position fail_from on. */
static sl_outcome
wrapped_on(void *user, const sl_event *ev, const char *key, sl_state *st,
    sl_context *ctx)
{
	if (host_api()->event_position(ev) >= atomic_load(&fail_from))
		return host_api()->fail(ctx, "stuck on purpose");
	atomic_fetch_add(&calls, 1);
	return real->on(user, ev, key, st, ctx);
}

/* A definition with the plugin's selectors and the wrapped handler. */
static void
make_def(
    proj_def *out, sl_projection *vt, const proj_def *base, uint64_t hash_xor)
{
	*vt      = *base->p;
	vt->on   = wrapped_on;
	*out     = *base;
	out->p   = vt;
	out->ver = NULL; /* not the registry's: no holds */
	out->def_hash ^= hash_xor;
}

static proc_status
wait_state(processor *p, proc_state want, bool rebuilding, int max_ms)
{
	proc_status st;
	int64_t     end = pt_now_ms() + max_ms;
	for (;;) {
		proc_get_status(p, &st);
		if (st.state == want && st.rebuilding == rebuilding)
			return st;
		if (pt_now_ms() > end) {
			fprintf(stderr,
			    "timeout: state %s rebuilding %d at %" PRIu64
			    " (%s)\n",
			    proc_state_name(st.state), st.rebuilding,
			    st.position, st.reason);
			exit(1);
		}
		pt_sleep_ms(2);
	}
}

/* ---- a reader that must never lose a read model ---- */

static rmstore    *rd_rm;
static atomic_bool rd_stop;
/* set while a rebuild with failing keys is served: a key failing at its
 * first event has no read model in the new generation, by design */
static atomic_bool rd_hold;
static atomic_long rd_reads, rd_lost, rd_errors;

static void *
reader(void *arg)
{
	(void) arg;
	bool seen[PT_UNIVERSE] = { false };
	while (!atomic_load(&rd_stop)) {
		if (atomic_load(&rd_hold)) {
			memset(seen, 0, sizeof(seen));
			sched_yield();
			continue;
		}
		for (int a = 0; a < PT_ACCOUNTS; a++) {
			char   key[32], *data = NULL;
			size_t len;
			snprintf(key, sizeof(key), "acc-%04d", a);
			int rc = rm_get(
			    rd_rm, PROJ, key, strlen(key), &data, &len);
			if (atomic_load(&rd_hold)) {
				free(data); /* read across the hold's start */
				break;
			}
			if (rc == SL_OK)
				seen[a] = true;
			else if (rc == SL_ENOTFOUND && seen[a])
				atomic_fetch_add(&rd_lost, 1);
			else if (rc != SL_ENOTFOUND)
				atomic_fetch_add(&rd_errors, 1);
			free(data);
			atomic_fetch_add(&rd_reads, 1);
		}
	}
	return NULL;
}

static uint64_t
rebuild_position(rmstore *rm)
{
	MDB_txn *txn;
	uint64_t rec[3] = { 0, 0, 0 };
	CHECK_EQ(mdb_txn_begin(rm_env(rm), NULL, MDB_RDONLY, &txn), 0);
	int rc = rm_record_read(rm, txn, "rebuild:" PROJ, rec, 3);
	mdb_txn_abort(txn);
	return rc == SL_OK ? rec[1] : UINT64_MAX;
}

int
main(void)
{
	char     path[4200];
	store   *s;
	rmstore *rm;
	pt_gen  *g = calloc(1, sizeof(*g));
	CHECK(g != NULL);
	pt_gen_init(g, 4242);
	log_set_level(SL_LOG_ERROR);

	snprintf(path, sizeof(path), "%s/log", tu_tmpdir());
	CHECK_EQ(store_open(path, 128u << 20, false, &s), SL_OK);
	snprintf(path, sizeof(path), "%s/rm", tu_tmpdir());
	CHECK_EQ(rm_open(path, 64u << 20, false, &rm), SL_OK);
	registry       *r   = pt_load(SL_PLUGIN_DIR "/account_details.so");
	const proj_def *def = pt_find(r, "account_details");
	real                = def->p;

	pt_commit_many(s, g, 1500);
	uint64_t   head = store_next_position(s);
	processor *p;
	CHECK_EQ(proc_start(s, rm, "t1", def, 100, &p), SL_OK);
	proc_status st = pt_wait_position(p, head, PT_WAIT_MS);
	CHECK_EQ(st.generation, 1);
	CHECK(!st.rebuilding);
	pt_compare(rm, PROJ, g);

	rd_rm = rm;
	pthread_t rt;
	CHECK(pthread_create(&rt, NULL, reader, NULL) == 0);

	/* 1. Same definition, new code: continues, nothing redone. */
	sl_projection vt_same;
	proj_def      same;
	make_def(&same, &vt_same, def, 0);
	proc_set_def(p, &same);
	uint64_t before = g->selected;
	pt_commit_many(s, g, 120);
	head = store_next_position(s);
	st   = pt_wait_position(p, head, PT_WAIT_MS);
	CHECK_EQ(atomic_load(&calls), (long) (g->selected - before));
	CHECK_EQ(st.generation, 1);
	pt_compare(rm, PROJ, g);

	/* 2. Changed definition whose keys fail from position 700 on: the
	 * rebuild goes on with the others to the head and is served there,
	 * the failing keys carried over (listed, retried) with their state
	 * before 700; queries never miss a read model at the switch. */
	sl_projection vt_b;
	proj_def      b;
	make_def(&b, &vt_b, def, 0x5555);
	atomic_store(&calls, 0);
	atomic_store(&fail_from, 700);
	atomic_store(&rd_hold, true);
	proc_set_def(p, &b);
	int64_t end = pt_now_ms() + PT_WAIT_MS;
	do {
		proc_get_status(p, &st);
		CHECK(pt_now_ms() < end);
		pt_sleep_ms(2);
	} while (st.rebuilding || st.position < head || st.n_failing == 0);
	CHECK_EQ(st.generation, 2);
	CHECK_EQ(st.served_position, head);
	proc_failing f;
	CHECK(proc_get_failing(p, &f, 1) == st.n_failing);
	CHECK(f.position >= 700 && f.retry);
	CHECK(strstr(f.reason, "stuck on purpose") != NULL);
	CHECK_EQ(rebuild_position(rm), UINT64_MAX); /* switched */
	long stuck_calls = atomic_load(&calls);

	/* 3. Restart, the handler fixed: the failing keys are retried in
	 * the served generation, and no event handled before is handled
	 * again. */
	proc_stop(p);
	atomic_store(&fail_from, UINT64_MAX);
	pt_commit_many(s, g, 300); /* more events while nobody processes */
	head = store_next_position(s);
	CHECK_EQ(proc_start(s, rm, "t1", &b, 100, &p), SL_OK);
	CHECK_EQ(proc_command(p, PROC_CMD_RETRY, PT_WAIT_MS), SL_OK);
	end = pt_now_ms() + PT_WAIT_MS;
	do {
		proc_get_status(p, &st);
		CHECK(pt_now_ms() < end);
		pt_sleep_ms(2);
	} while (st.position < head || st.n_failing > 0
	    || atomic_load(&calls) < (long) g->selected);
	CHECK(!st.rebuilding);
	CHECK_EQ(st.generation, 2);
	CHECK_EQ(st.served_position, head);
	/* every selected event handled exactly once since the definition
	 * changed (calls counts on from stuck_calls) */
	CHECK(stuck_calls > 0 && stuck_calls < (long) g->selected);
	pt_sleep_ms(50);
	CHECK_EQ(atomic_load(&calls), (long) g->selected);
	atomic_store(&rd_hold, false);
	CHECK_EQ(rebuild_position(rm), UINT64_MAX); /* record gone */
	pt_compare(rm, PROJ, g);
	rm_checkpoint cp;
	{
		MDB_txn *txn;
		CHECK_EQ(mdb_txn_begin(rm_env(rm), NULL, MDB_RDONLY, &txn), 0);
		CHECK_EQ(
		    rm_checkpoint_read(rm, txn, "proj:" PROJ, &cp), SL_OK);
		uint64_t gen;
		CHECK_EQ(rm_active_read(rm, txn, PROJ, &gen), SL_OK);
		CHECK_EQ(gen, 2);
		mdb_txn_abort(txn);
	}
	CHECK_EQ(cp.position, head);
	CHECK(cp.def_hash == b.def_hash);

	/* 4. Dropped: stops, keeps serving; events go by unhandled. */
	proc_set_def(p, NULL);
	st                  = wait_state(p, PROC_STOPPED, false, PT_WAIT_MS);
	uint64_t stopped_at = st.position;
	pt_gen  *frozen     = malloc(sizeof(*frozen));
	CHECK(frozen != NULL);
	*frozen = *g;
	pt_commit_many(s, g, 200);
	pt_sleep_ms(50);
	proc_get_status(p, &st);
	CHECK_EQ(st.position, stopped_at);
	CHECK_EQ(st.state, PROC_STOPPED);
	CHECK(st.def == &b); /* status still names it */
	pt_compare(rm, PROJ, frozen);

	/* 5. Back with the plugin's own definition (another hash than b):
	 * rebuilt from 0 into generation 3 while generation 2 is served,
	 * then switched over while commits go on. */
	proc_set_def(p, def);
	for (int i = 0; i < 20; i++)
		pt_commit_many(s, g, 25);
	head = store_next_position(s);
	st   = pt_wait_position(p, head, PT_WAIT_MS);
	CHECK_EQ(st.generation, 3);
	pt_compare(rm, PROJ, g);

	atomic_store(&rd_stop, true);
	pthread_join(rt, NULL);
	CHECK(atomic_load(&rd_reads) > 0);
	CHECK_EQ(atomic_load(&rd_lost), 0);
	CHECK_EQ(atomic_load(&rd_errors), 0);

	proc_stop(p);
	registry_destroy(r);
	rm_close(rm);
	store_close(s);
	printf("projection_reload_test: ok (%ld concurrent reads, none "
	       "lost)\n",
	    (long) atomic_load(&rd_reads));
	free(frozen);
	free(g);
	return 0;
}
