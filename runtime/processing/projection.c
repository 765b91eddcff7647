/*
 * Projection processors: one thread per (tenant, projection) folding the log
 * into read models. Each batch of events is handled in one read-model write
 * transaction that also moves the checkpoint, so every event's effect is
 * stored exactly once, even after a kill. A failing event is retried with a
 * growing delay and never skipped; when caught up the thread waits on the
 * store's head.
 *
 * Hot reload: a new definition (proc_set_def) is taken between two batches.
 * An unchanged definition continues from the checkpoint with the new code; a
 * changed one rebuilds into the other generation (readmodels.h) while
 * queries read the current one, and the batch that catches up with the log
 * switches them over and empties the old generation in one transaction,
 * whether or not units fail in the new one (they carry over).
 *
 * Records (checkpoints db): "proj:<id>" position + def_hash of the served
 * generation; "active:<id>" the served generation; "rebuild:<id>"
 * generation + position + def_hash of a rebuild in progress, so a rebuild
 * resumes after a restart; "shape:<id>" a filter's served kind;
 * "halted:<id>" the reason of a proc_halt.
 */
#include "projection.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sluice/errors.h>

#include "emitter.h"
#include "guard.h"
#include "log.h"
#include "monotime.h"
#include "proc_internal.h"
#include "sysproj.h"

size_t proc_cache_keep = PROC_CACHE_KEEP;

/* Stop asked, or another definition waiting to be taken. */
static bool
interrupted(processor *p)
{
	pthread_mutex_lock(&p->mu);
	bool s = p->stop || p->has_pending;
	pthread_mutex_unlock(&p->mu);
	return s;
}

/* ---- the thread ---- */

/* The names it writes through, from the kind of its definition. */
int
proc_set_names(processor *p)
{
	const proj_def *d = p->def;
	p->is_filter      = def_is_filter(d);
	/* a one-time query stops at its first failure */
	p->partitioned = p->em != NULL ? p->em->mode != CFG_MODE_ONE_TIME
	                               : !p->is_filter
	        || d->filter_kind != SL_FILTER_UNPARTITIONED;
	p->public_only    = p->is_filter && d->filter_kind == SL_FILTER_PUBLIC;
	snprintf(p->name, sizeof(p->name), "%s%s",
	    p->is_filter ? RM_FILTER_PREFIX : "", p->proj_id);
	p->guard_ident = guard_ident_new();
	snprintf(p->id, sizeof(p->id), "proj:%s", p->name);
	snprintf(p->rb_key, sizeof(p->rb_key), "rebuild:%s", p->name);
	snprintf(p->pause_key, sizeof(p->pause_key), "paused:%s", p->name);
	snprintf(p->shape_key, sizeof(p->shape_key), RM_SHAPE_PREFIX "%s",
	    p->name);
	proc_sources_init(p);
	snprintf(p->halt_key, sizeof(p->halt_key), "halted:%s", p->name);
	proc_emit *em = p->em;
	if (em == NULL)
		return SL_OK;
	free(em->rprefix);
	free(em->rroot);
	free(em->rpat);
	em->rroot = em->rpat = NULL;
	em->system     = sysproj_is_system(d);
	em->sys_index  = sysproj_index(d);
	em->emits      = proj_def_emits(d, &em->n_emits);
	em->result     = proj_def_result(d);
	em->sink.def    = d;
	em->sink.system = em->system;
	em->rprefix     = eproj_result_prefix(d);
	em->root_result = proc_keys_static(d);
	if (eproj_result_names(d, &em->rroot, &em->rpat) != SL_OK)
		return SL_ENOMEM;
	return em->rprefix != NULL ? SL_OK : SL_ENOMEM;
}

/* Forget what the fold holds: a batch not stored, or another generation. */
void
proc_fold_discard(processor *p)
{
	if (p->em != NULL)
		pthread_mutex_lock(&p->em->cmu);
	scache_clear(&p->states);
	if (p->em != NULL)
		pthread_mutex_unlock(&p->em->cmu);
	p->appends.size = 0;
}

/* What setup found and decided. */
typedef enum setup_plan {
	PLAN_FRESH,    /* no read models yet: build generation 1 in place */
	PLAN_CONTINUE, /* same definition: on from the checkpoint */
	PLAN_REBUILD,  /* new rebuild into the other generation, from 0 */
	PLAN_RESUME,   /* a rebuild of this definition was under way */
} setup_plan;

static int
storage_reason(char *reason, size_t rlen, const char *what, int rc)
{
	snprintf(reason, rlen, "%s: %s", what, sl_strerror(rc));
	return rc;
}

/* The served generation's kind (a filter's shape: whether its entries
 * carry partitions), written with the switch to that generation, so reads
 * keep the old shape while a filter that changed kind rebuilds. */
static int
write_shape(processor *p, MDB_txn *txn)
{
	uint64_t kind = (uint64_t) p->def->filter_kind;
	return p->is_filter ? rm_record_write(p->rm, txn, p->shape_key, &kind, 1)
	                    : SL_OK;
}

/*
 * Read the checkpoint, the active generation and any rebuild record, decide
 * how this definition goes on, create the generation's db and write the
 * decision. Only this processor writes these records, so what the read
 * transaction saw still holds when the write transaction begins.
 */
static int
setup(processor *p, bool reset, char *reason, size_t rlen)
{
	const proj_def *d = p->def;
	if (proc_set_names(p) != SL_OK) {
		snprintf(reason, rlen, "out of memory");
		return SL_ENOMEM;
	}
	proc_fold_discard(p); /* states of another generation, or definition */
	if (p->em != NULL)
		return proc_emit_setup(p, reset, reason, rlen);
	uint64_t        H = d->def_hash;
	MDB_txn        *txn;
	rm_checkpoint   cp  = { 0, 0 };
	uint64_t        act = 0, rb[3] = { 0, 0, 0 };
	int mrc = mdb_txn_begin(rm_env(p->rm), NULL, MDB_RDONLY, &txn);
	if (mrc != 0) {
		snprintf(reason, rlen, "begin: %s", mdb_strerror(mrc));
		return SL_ESTORAGE;
	}
	int crc = rm_checkpoint_read(p->rm, txn, p->id, &cp);
	int arc = rm_active_read(p->rm, txn, p->name, &act);
	int rrc = rm_record_read(p->rm, txn, p->rb_key, rb, 3);
	uint64_t paused = 0;
	int prc = rm_record_read(p->rm, txn, p->pause_key, &paused, 1);
	char     halt[sizeof(p->halt)];
	size_t   hlen = 0;
	int hrc = rm_blob_read(p->rm, txn, p->halt_key, strlen(p->halt_key),
	    halt, sizeof(halt) - 1, &hlen);
	halt[hrc == SL_OK ? hlen : 0] = '\0';
	mdb_txn_abort(txn);
	if (prc != SL_OK && prc != SL_ENOTFOUND)
		return storage_reason(reason, rlen, "reading the pause", prc);
	if (hrc != SL_OK && hrc != SL_ENOTFOUND)
		return storage_reason(reason, rlen, "reading the halt", hrc);
	if ((crc != SL_OK && crc != SL_ENOTFOUND)
	    || (arc != SL_OK && arc != SL_ENOTFOUND)
	    || (rrc != SL_OK && rrc != SL_ENOTFOUND))
		return storage_reason(reason, rlen, "reading the checkpoint",
		    crc != SL_OK && crc != SL_ENOTFOUND       ? crc
		        : arc != SL_OK && arc != SL_ENOTFOUND ? arc
		                                              : rrc);

	setup_plan plan;
	uint64_t   gen, pos = 0;
	if (arc == SL_ENOTFOUND) {
		plan = PLAN_FRESH;
		gen  = 1;
	} else if (reset) {
		plan = PLAN_REBUILD;
		gen  = act + 1;
	} else if (rrc == SL_OK && rb[2] == H && (rb[0] & 1) != (act & 1)) {
		/* before CONTINUE: after a reset the served checkpoint has
		 * this definition's hash too, and the rebuild must go on */
		plan = PLAN_RESUME;
		gen  = rb[0];
		pos  = rb[1];
	} else if (crc == SL_OK && cp.def_hash == H) {
		plan = PLAN_CONTINUE;
		gen  = act;
		pos  = cp.position;
	} else {
		plan = PLAN_REBUILD;
		gen  = act + 1;
	}

	int rc;
	if (plan == PLAN_FRESH
	    && (rc = rm_legacy_delete(p->rm, p->name)) != SL_OK)
		return storage_reason(
		    reason, rlen, "deleting the old-layout read models", rc);
	if ((rc = rm_gen_dbi(p->rm, p->name, gen, true, &p->dbi)) != SL_OK)
		return storage_reason(
		    reason, rlen, "cannot open the read model db", rc);

	if ((mrc = mdb_txn_begin(rm_env(p->rm), NULL, 0, &txn)) != 0) {
		snprintf(reason, rlen, "begin: %s", mdb_strerror(mrc));
		return SL_ESTORAGE;
	}
	rm_checkpoint start  = { .position = 0, .def_hash = H };
	uint64_t      rec[3] = { gen, 0, H };
	switch (plan) {
	case PLAN_FRESH:
		rc = rm_gen_clear(p->rm, txn, p->name, gen);
		if (rc == SL_OK)
			rc = failset_clear_gen(p->rm, txn, p->name, gen);
		if (rc == SL_OK)
			rc = proc_shared_drop_rm(p, txn, gen);
		if (rc == SL_OK)
			rc = rm_active_write(p->rm, txn, p->name, gen);
		if (rc == SL_OK)
			rc = rm_checkpoint_write(p->rm, txn, p->id, &start);
		if (rc == SL_OK)
			rc = rm_record_del(p->rm, txn, p->rb_key);
		if (rc == SL_OK)
			rc = write_shape(p, txn);
		break;
	case PLAN_CONTINUE:
		/* a rebuild of another definition was abandoned; the shape
		 * record may predate this version (the hash covers the kind) */
		rc = write_shape(p, txn);
		if (rc == SL_OK && rrc == SL_OK) {
			if ((rb[0] & 1) != (act & 1))
				rc = rm_gen_clear(p->rm, txn, p->name, rb[0]);
			if (rc == SL_OK && rb[0] != act)
				rc = failset_clear_gen(
				    p->rm, txn, p->name, rb[0]);
			if (rc == SL_OK && rb[0] != act)
				rc = proc_shared_drop_rm(p, txn, rb[0]);
			if (rc == SL_OK)
				rc = rm_record_del(p->rm, txn, p->rb_key);
		}
		break;
	case PLAN_REBUILD:
		rc = rm_gen_clear(p->rm, txn, p->name, gen);
		if (rc == SL_OK)
			rc = failset_clear_gen(p->rm, txn, p->name, gen);
		if (rc == SL_OK)
			rc = proc_shared_drop_rm(p, txn, gen);
		if (rc == SL_OK)
			rc = rm_record_write(p->rm, txn, p->rb_key, rec, 3);
		break;
	case PLAN_RESUME:
		rc = SL_OK;
		break;
	}
	/* a halt is about what was built: a rebuild ends it */
	if (rc == SL_OK && (plan == PLAN_FRESH || plan == PLAN_REBUILD)) {
		halt[0] = '\0';
		rc = rm_blob_del(p->rm, txn, p->halt_key, strlen(p->halt_key));
	}
	if (rc == SL_OK) {
		mrc = mdb_txn_commit(txn);
		if (mrc != 0)
			rc = mrc == MDB_MAP_FULL ? SL_EFULL : SL_ESTORAGE;
		else
			rc = rm_sync(p->rm);
	} else {
		mdb_txn_abort(txn);
	}
	if (rc != SL_OK)
		return storage_reason(
		    reason, rlen, "cannot read or reset the checkpoint", rc);

	/* the units still failing in the generation it writes */
	pthread_mutex_lock(&p->mu);
	failset_free(&p->fails);
	failset_init(&p->fails, p->name, gen);
	pthread_mutex_unlock(&p->mu);
	if ((mrc = mdb_txn_begin(rm_env(p->rm), NULL, MDB_RDONLY, &txn)) != 0) {
		snprintf(reason, rlen, "begin: %s", mdb_strerror(mrc));
		return SL_ESTORAGE;
	}
	pthread_mutex_lock(&p->mu);
	rc = failset_load(&p->fails, p->rm, txn);
	proc_show_failing(p);
	pthread_mutex_unlock(&p->mu);
	p->gen = gen;
	if (rc == SL_OK)
		rc = proc_shared_load_rm(p, txn);
	mdb_txn_abort(txn);
	if (rc != SL_OK)
		return storage_reason(
		    reason, rlen, "reading the failing units", rc);

	p->gen        = gen;
	p->active_gen = plan == PLAN_FRESH ? gen : act;
	p->rebuilding = plan == PLAN_REBUILD || plan == PLAN_RESUME;
	if (plan == PLAN_REBUILD && reset)
		log_info("proc",
		    "tenant %s %s %s (%s): reset by an operator, rebuilding "
		    "from position 0 as generation %" PRIu64
		    "; queries read generation %" PRIu64 " until it has "
		    "caught up",
		    p->tenant, p->is_filter ? "filter" : "projection",
		    p->proj_id, d->name ? d->name : "", gen, act);
	else if (plan == PLAN_REBUILD)
		log_info("proc",
		    "tenant %s %s %s (%s): definition changed "
		    "(hash %016" PRIx64 " -> %016" PRIx64
		    "), rebuilding from position 0 as generation %" PRIu64
		    "; queries read generation %" PRIu64 " (at %" PRIu64
		    ") until it has caught up",
		    p->tenant, p->is_filter ? "filter" : "projection", p->proj_id, d->name ? d->name : "", cp.def_hash,
		    H, gen, act, cp.position);
	else if (plan == PLAN_RESUME)
		log_info("proc",
		    "tenant %s %s %s (%s): resuming the rebuild of "
		    "generation %" PRIu64 " at position %" PRIu64,
		    p->tenant, p->is_filter ? "filter" : "projection", p->proj_id, d->name ? d->name : "", gen, pos);
	pthread_mutex_lock(&p->mu);
	p->st.position        = pos;
	p->st.rebuilding      = p->rebuilding;
	p->st.served_position = plan == PLAN_CONTINUE ? pos
	    : plan == PLAN_FRESH                      ? 0
	                                              : cp.position;
	p->st.generation      = p->active_gen;
	p->st.attempts        = 0;
	p->st.reason[0]       = '\0';
	p->st.state = p->rebuilding ? PROC_REBUILDING : PROC_CATCHING_UP;
	p->paused    = prc == SL_OK;
	p->st.paused = p->paused;
	pthread_mutex_unlock(&p->mu);
	memcpy(p->halt, halt, sizeof(halt));
	return SL_OK;
}

/*
 * Where a batch's progress goes: the served checkpoint, or the rebuild
 * record; and the switch-over when a rebuild has caught up (caught_up: the
 * scan reached the end of the log with nothing stopping it).
 */
static int
write_progress(processor *p, batch_ctx *b, bool caught_up)
{
	uint64_t      H  = p->def->def_hash;
	rm_checkpoint cp = { .position = b->next, .def_hash = H };
	if (!p->rebuilding)
		return rm_checkpoint_write(p->rm, b->txn, p->id, &cp);
	if (!caught_up) {
		uint64_t rec[3] = { p->gen, b->next, H };
		return rm_record_write(p->rm, b->txn, p->rb_key, rec, 3);
	}
	/* One transaction: queries switch to the new generation, which has
	 * every event up to b->next, and the old one is emptied. */
	int rc = rm_active_write(p->rm, b->txn, p->name, p->gen);
	if (rc == SL_OK)
		rc = rm_checkpoint_write(p->rm, b->txn, p->id, &cp);
	if (rc == SL_OK)
		rc = rm_record_del(p->rm, b->txn, p->rb_key);
	if (rc == SL_OK)
		rc = write_shape(p, b->txn);
	if (rc == SL_OK)
		rc = rm_gen_clear(p->rm, b->txn, p->name, p->active_gen);
	if (rc == SL_OK)
		rc = failset_clear_gen(p->rm, b->txn, p->name, p->active_gen);
	if (rc == SL_OK)
		rc = proc_shared_drop_rm(p, b->txn, p->active_gen);
	if (rc == SL_OK)
		b->swapped = true;
	return rc;
}

/* The failing units as the records hold them (after an aborted batch). */
static void
reload_failures(processor *p)
{
	MDB_txn *txn;
	if (p->em != NULL) {
		proc_emit_reload(p);
		return;
	}
	if (mdb_txn_begin(rm_env(p->rm), NULL, MDB_RDONLY, &txn) != 0)
		return;
	pthread_mutex_lock(&p->mu);
	failset_load(&p->fails, p->rm, txn);
	proc_show_failing(p);
	pthread_mutex_unlock(&p->mu);
	(void) proc_shared_load_rm(p, txn); /* as stored */
	mdb_txn_abort(txn);
}

/* A batch not stored: nothing of it stays, in memory or on disk. */
static int
batch_abort(processor *p, batch_ctx *b, int rc)
{
	if (b->rtxn != NULL)
		mdb_txn_abort(b->rtxn);
	b->rtxn = NULL;
	if (b->txn != NULL)
		mdb_txn_abort(b->txn);
	b->txn     = NULL;
	b->swapped = false;
	proc_fold_discard(p);
	reload_failures(p); /* also forgets the failures not stored */
	return rc;
}

/*
 * After a retry of one unit (b->retrying, up to b->limit): the unit is no
 * longer failing when the scan reached the limit; it failed again (its
 * record updated by proc_record_failure); or the batch ended before the limit,
 * and the unit's position moves past what it handled. In memory, stored by
 * the batch's write.
 */
static int
retry_progress(processor *p, batch_ctx *b, uint64_t scanned_to)
{
	int rc = SL_OK;
	if (b->failed)
		return SL_OK;
	pthread_mutex_lock(&p->mu);
	if (scanned_to >= b->limit || b->next >= b->limit) {
		rc = failset_del(&p->fails, p->rm, NULL, b->ru.unit, b->ru.ulen);
	} else {
		fail_unit u   = b->ru;
		u.pos         = scanned_to;
		u.attempts    = 0;
		u.next_try_ns = 0; /* go on at once */
		rc            = failset_put(&p->fails, p->rm, NULL, &u);
	}
	pthread_mutex_unlock(&p->mu);
	return rc;
}

/* The fold's changed states and stream entries, in b->txn. */
static int
write_fold(processor *p, batch_ctx *b)
{
	for (centry *x = p->states.dirty; x != NULL; x = x->dnext) {
		MDB_val k = { x->key_len, x->key };
		MDB_val v = { x->state_len, x->state };
		int     mrc = x->state != NULL
		        ? mdb_put(b->txn, p->dbi, &k, &v, 0)
		        : mdb_del(b->txn, p->dbi, &k, NULL);
		if (mrc != 0 && !(mrc == MDB_NOTFOUND && x->state == NULL))
			return proc_storage_failed(b, mrc, "storing key", x->key);
	}
	const unsigned char *a = (const unsigned char *) p->appends.data;
	for (size_t off = 0; off < p->appends.size;) {
		uint64_t lpos = 0;
		for (int i = 0; i < 8; i++)
			lpos = lpos << 8 | a[off + i];
		size_t      plen = (size_t) a[off + 8] << 8 | a[off + 9];
		const char *part = (const char *) a + off + 10;
		off += 10 + plen;
		int rc = rm_stream_append(p->rm, b->txn, p->dbi,
		    plen > 0 ? part : NULL, plen, lpos, NULL);
		if (rc != SL_OK) {
			snprintf(b->reason, sizeof(b->reason),
			    "appending to the stream: %s", sl_strerror(rc));
			return rc;
		}
	}
	return SL_OK;
}

/* After the write committed: the fold's states are the stored ones. */
static void
fold_stored(processor *p)
{
	proc_emit *em = p->em;
	if (em != NULL)
		pthread_mutex_lock(&em->cmu);
	for (centry *x = p->states.dirty, *next; x != NULL; x = next) {
		next     = x->dnext;
		x->dirty = false;
		x->dnext = NULL;
	}
	p->states.dirty = NULL;
	p->appends.size = 0;
	p->shared_dirty = false;
	/* an emitting run's evicts once its batch is durable
	 * (proc_emit_commit); a transient run's states live only here */
	if (em == NULL)
		scache_evict(&p->states, 0, proc_cache_keep);
	if (em != NULL)
		pthread_mutex_unlock(&em->cmu);
}

/*
 * One batch from pos: fold up to p->batch events through the handler in
 * memory (the states read in a read transaction, PROC_BATCH_NS at most, cut
 * short by a command or the stop), then store the changed states, the
 * stream entries, the failing units and the checkpoint past what was
 * handled (or, retrying a unit, that unit's record) in one short write
 * transaction: none is open while a handler runs. @return SL_OK (maybe
 * with b->failed: stopped at the failing event), or an error with nothing
 * stored (reason in b).
 */
int
proc_run_batch(processor *p, uint64_t pos, batch_ctx *b)
{
	b->p       = p;
	b->next    = pos;
	b->txn     = NULL;
	b->rtxn    = NULL;
	b->deadline_ns = mono_ns() + PROC_BATCH_NS;
	/* an emitting projection reads its states from the log's env */
	int mrc = p->em != NULL
	    ? 0
	    : mdb_txn_begin(rm_env(p->rm), NULL, MDB_RDONLY, &b->rtxn);
	if (mrc != 0) {
		b->rtxn = NULL;
		snprintf(b->reason, sizeof(b->reason), "begin: %s",
		    mdb_strerror(mrc));
		return SL_ESTORAGE;
	}
	bool     retry_unit = b->retrying && b->limit != 0;
	uint64_t scanned_to = pos;
	/* a system projection: its tenant's shared reader, when it holds
	 * pos; else (and any other processor) the log */
	int rc = p->em != NULL ? proc_emit_sys_feed(b, pos) : PROC_SLOW;
	if (rc != PROC_SLOW)
		scanned_to = b->next;
	else
		rc = store_scan(p->s, pos, p->batch,
		    p->caller != NULL ? proc_remote_scan_cb : proc_scan_cb, b,
		    &scanned_to);
	if (p->caller != NULL)
		proc_remote_drain(b);
	if (b->rtxn != NULL)
		mdb_txn_abort(b->rtxn); /* one transaction at a time */
	b->rtxn = NULL;
	if (b->cut)
		scanned_to = b->cut_at; /* that event was not handled */
	if (b->storage)
		return batch_abort(p, b, SL_ESTORAGE);
	if (b->disconnected)
		return batch_abort(p, b, SL_ECLOSED);
	if (!b->failed && !b->cut && rc != SL_OK && rc != 1) {
		snprintf(b->reason, sizeof(b->reason), "reading the log: %s",
		    sl_strerror(rc));
		return batch_abort(p, b, rc);
	}

	if (p->em != NULL) {
		/* retrying a unit: the processor is at the retry's limit */
		rc = retry_unit ? retry_progress(p, b, scanned_to) : SL_OK;
		if (rc == SL_OK)
			rc = proc_emit_commit(
			    p, b, retry_unit ? b->limit : b->next);
		if (rc != SL_OK)
			return batch_abort(p, b, rc);
		fold_stored(p);
		return SL_OK;
	}
	if ((mrc = mdb_txn_begin(rm_env(p->rm), NULL, 0, &b->txn)) != 0) {
		b->txn = NULL;
		snprintf(b->reason, sizeof(b->reason), "begin: %s",
		    mdb_strerror(mrc));
		return batch_abort(p, b, SL_ESTORAGE);
	}
	if ((rc = write_fold(p, b)) != SL_OK
	    || (rc = proc_shared_write_rm(p, b->txn)) != SL_OK)
		return batch_abort(p, b, rc);
	if (retry_unit) {
		rc = retry_progress(p, b, scanned_to);
	} else {
		/* fewer events than asked for: the scan saw the end of the
		 * log. A rebuild with failing units is served all the same:
		 * they carry over into the served generation (status lists
		 * them, retries go on there), and every other key is new */
		bool caught_up = !b->failed && !b->cut
		    && scanned_to - pos < p->batch;
		rc             = write_progress(p, b, caught_up);
	}
	if (rc == SL_OK) {
		pthread_mutex_lock(&p->mu);
		rc = failset_flush(&p->fails, p->rm, b->txn);
		pthread_mutex_unlock(&p->mu);
	}
	if (rc != SL_OK) {
		snprintf(b->reason, sizeof(b->reason),
		    "writing the checkpoint: %s", sl_strerror(rc));
		return batch_abort(p, b, rc);
	}
	mrc    = mdb_txn_commit(b->txn);
	b->txn = NULL;
	if (mrc != 0) {
		snprintf(b->reason, sizeof(b->reason), "commit: %s",
		    mdb_strerror(mrc));
		batch_abort(p, b, SL_ESTORAGE);
		return mrc == MDB_MAP_FULL ? SL_EFULL : SL_ESTORAGE;
	}
	fold_stored(p);
	if (b->appended > 0 || b->swapped) {
		pthread_mutex_lock(&p->mu);
		proc_notify_fn fn  = p->notify;
		void          *arg = p->notify_arg;
		pthread_mutex_unlock(&p->mu);
		if (fn != NULL)
			fn(arg, p->tenant, p->proj_id);
	}
	return SL_OK;
}

/* After a committed switch-over: the new generation is the served one. */
static void
rebuild_done(processor *p, uint64_t pos)
{
	log_info("proc",
	    "tenant %s %s %s (%s): generation %" PRIu64
	    " rebuilt up to position %" PRIu64
	    ", now served (generation %" PRIu64 " emptied)",
	    p->tenant, p->is_filter ? "filter" : "projection", p->proj_id,
	    p->def->name ? p->def->name : "", p->gen, pos, p->active_gen);
	p->active_gen = p->gen;
	p->rebuilding = false;
	pthread_mutex_lock(&p->mu);
	p->st.rebuilding = false;
	p->st.generation = p->gen;
	pthread_mutex_unlock(&p->mu);
}

/* Sleep until the wall-clock time until_ns, a command, a definition or
 * the stop. */
static void
wait_until(processor *p, int64_t until_ns)
{
	int64_t delay = until_ns - ev_now_ns();
	if (delay > PROC_RETRY_MAX_NS)
		delay = PROC_RETRY_MAX_NS; /* look again now and then */
	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	if (delay > 0) {
		int64_t ns = (int64_t) until.tv_nsec + delay % 1000000000LL;
		until.tv_sec += (time_t) (delay / 1000000000LL
		    + ns / 1000000000LL);
		until.tv_nsec = (long) (ns % 1000000000LL);
	}
	pthread_mutex_lock(&p->mu);
	while (!p->stop && !p->has_pending && p->cmds == 0) {
		if (pthread_cond_timedwait(&p->cv, &p->mu, &until)
		    == ETIMEDOUT)
			break;
	}
	pthread_mutex_unlock(&p->mu);
}

/* Storage trouble (not a unit's failure): wait the growing delay. */
static void
fail_and_wait(processor *p, uint64_t position, const char *reason)
{
	pthread_mutex_lock(&p->mu);
	if (position != p->fail_pos)
		p->st.attempts = 0; /* another event than the last failure */
	p->fail_pos = position;
	p->st.attempts++;
	uint32_t a     = p->st.attempts;
	int64_t  delay = proc_retry_delay_ns(a, 0);
	snprintf(p->st.reason, sizeof(p->st.reason), "%s", reason);
	p->st.state         = PROC_FAILING;
	p->st.next_retry_ns = ev_now_ns() + delay;
	pthread_mutex_unlock(&p->mu);
	log_warn("proc",
	    "tenant %s %s %s: at position %" PRIu64
	    " (attempt %u), retry in %" PRId64 " ms: %s",
	    p->tenant, p->is_filter ? "filter" : "projection", p->proj_id,
	    position, a, delay / 1000000, reason);
	wait_until(p, ev_now_ns() + delay);
}

/* Commands that do not need a new setup: pause, resume, retry. Stored
 * before they count as taken: the read-model records, or an emitting
 * projection's checkpoint record (with its position and failing keys). */
static void
take_commands(processor *p)
{
	pthread_mutex_lock(&p->mu);
	unsigned cmds = p->cmds & ~CMD_BIT(PROC_CMD_RESET);
	p->cmds &= CMD_BIT(PROC_CMD_RESET);
	char halt[sizeof(p->halt)];
	memcpy(halt, cmds & CMD_BIT(CMD_HALT) ? p->halt_next : p->halt,
	    sizeof(halt));
	pthread_mutex_unlock(&p->mu);
	if (cmds == 0)
		return;
	if (cmds & CMD_BIT(PROC_CMD_RETRY))
		halt[0] = '\0'; /* an operator goes on with this code */
	bool pause = p->paused;
	if (cmds & CMD_BIT(PROC_CMD_PAUSE))
		pause = true;
	if (cmds & CMD_BIT(PROC_CMD_RESUME))
		pause = false;
	MDB_txn *txn = NULL;
	int      rc  = SL_OK;
	if (p->em == NULL) {
		if ((rc = mdb_txn_begin(rm_env(p->rm), NULL, 0, &txn)) != 0) {
			log_error("proc", "tenant %s %s: command: begin: %s",
			    p->tenant, p->proj_id, mdb_strerror(rc));
			return;
		}
		uint64_t one = 1;
		size_t   hk  = strlen(p->halt_key);
		rc = pause ? rm_record_write(p->rm, txn, p->pause_key, &one, 1)
		           : rm_record_del(p->rm, txn, p->pause_key);
		if (rc == SL_OK && strcmp(halt, p->halt) != 0)
			rc = halt[0] != '\0'
			    ? rm_blob_write(p->rm, txn, p->halt_key, hk, halt,
			        strlen(halt))
			    : rm_blob_del(p->rm, txn, p->halt_key, hk);
	} else if (cmds & CMD_BIT(PROC_CMD_RETRY)) {
		guard_clear_emitter(p->tenant, p->proj_id); /* a crash's mark */
	}
	pthread_mutex_lock(&p->mu);
	if (rc == SL_OK && (cmds & CMD_BIT(PROC_CMD_RETRY))) {
		/* every failing unit: try again now, whatever it said */
		int64_t now = ev_now_ns();
		for (size_t i = 0; i < p->fails.n && rc == SL_OK; i++) {
			fail_unit u   = p->fails.v[i];
			u.retry       = true;
			u.next_try_ns = now;
			rc = failset_put(&p->fails, p->rm, txn, &u);
		}
		p->fail_pos = UINT64_MAX;
	}
	pthread_mutex_unlock(&p->mu);
	bool was = p->paused;
	if (p->em != NULL) {
		p->paused = pause; /* the record says it */
		if (rc == SL_OK)
			rc = proc_emit_persist(p);
	} else if (rc == SL_OK) {
		rc = mdb_txn_commit(txn) == 0 ? rm_sync(p->rm) : SL_ESTORAGE;
	} else {
		mdb_txn_abort(txn);
	}
	if (rc != SL_OK) {
		p->paused = was;
		log_error("proc", "tenant %s %s: command not stored: %s",
		    p->tenant, p->proj_id, sl_strerror(rc));
		reload_failures(p);
		return;
	}
	if (pause != was)
		log_info("proc", "tenant %s %s %s: %s by an operator",
		    p->tenant, p->is_filter ? "filter" : "projection",
		    p->proj_id, pause ? "paused" : "resumed");
	if (strcmp(halt, p->halt) != 0)
		log_info("proc", "tenant %s %s %s: %s%s", p->tenant,
		    p->is_filter ? "filter" : "projection", p->proj_id,
		    halt[0] != '\0' ? "stopped as failed: " : "goes on again",
		    halt);
	memcpy(p->halt, halt, sizeof(halt));
	p->paused = pause;
	pthread_mutex_lock(&p->mu);
	p->st.paused = pause;
	/* shown with the answer, not after it (process() goes on to wait
	 * as paused; a dropped definition stays "stopped") */
	if (pause && p->def != NULL)
		p->st.state = PROC_PAUSED;
	proc_show_failing(p); /* a retry changed them, committed */
	if (p->cmds == 0)
		p->cmd_done = p->cmd_seq;
	pthread_cond_broadcast(&p->done_cv);
	pthread_mutex_unlock(&p->mu);
}

/* Stop asked, another definition, or a reset: setup must run again. */
static bool
must_setup(processor *p)
{
	pthread_mutex_lock(&p->mu);
	bool s = p->stop || p->has_pending
	    || (p->cmds & CMD_BIT(PROC_CMD_RESET));
	pthread_mutex_unlock(&p->mu);
	return s;
}

void
proc_update_rate(proc_status *st, bool restart)
{
	int64_t now = ev_now_ns();
	if (st->rate_at_ns == 0 || now < st->rate_at_ns) {
		st->rate_at_ns = now;
		st->rate_base  = st->events_handled;
		return;
	}
	int64_t el = now - st->rate_at_ns;
	if (el <= 0)
		return;
	/* a window shorter than a second counts while it is the first */
	if (el < PROC_RATE_WINDOW_NS && st->events_per_sec != 0)
		return;
	st->events_per_sec = (double) (st->events_handled - st->rate_base)
	    * 1e9 / (double) el;
	if (restart && el >= PROC_RATE_WINDOW_NS) {
		st->rate_at_ns = now;
		st->rate_base  = st->events_handled;
	}
}

/* Status after a batch: how far, and what it waits for. */
static void
show_progress(processor *p, uint64_t pos, const batch_ctx *b)
{
	uint64_t head = store_next_position(p->s);
	pthread_mutex_lock(&p->mu);
	/* an emitting run's batch at the store: what is durable */
	p->st.position = p->em != NULL && p->st.writes_in_flight > 0
	    ? p->em->committed
	    : pos;
	p->st.head     = head;
	if (!p->rebuilding)
		p->st.served_position = pos;
	p->st.events_handled += b->handled;
	p->st.cached = p->states.n;
	proc_update_rate(&p->st, true);
	proc_show_failing(p);
	/* an emitting run's failed write counts as failing until a batch
	 * after it is durable (proc_emit_sync) */
	bool unsettled = p->em != NULL && p->st.writes_in_flight > 0
	    && p->st.state == PROC_FAILING;
	if (!unsettled)
		p->fail_pos = UINT64_MAX;
	/* an unpartitioned processor stopped by its failing event */
	const fail_unit *u = !p->partitioned && p->fails.n > 0 ? &p->fails.v[0]
	                                                      : NULL;
	if (unsettled) {
		/* as it was */
	} else if (u != NULL) {
		p->st.state = u->retry ? PROC_FAILING : PROC_FAILED;
		p->st.attempts      = u->attempts;
		p->st.next_retry_ns = u->next_try_ns;
		snprintf(p->st.reason, sizeof(p->st.reason), "%s", u->reason);
	} else {
		p->st.attempts      = 0;
		p->st.next_retry_ns = 0;
		p->st.reason[0]     = '\0';
		/* live while it keeps up, catching up when a batch behind */
		if (p->rebuilding)
			p->st.state = PROC_REBUILDING;
		else if (pos >= head)
			p->st.state = PROC_LIVE;
		else if (head - pos > p->batch || p->st.state != PROC_LIVE)
			p->st.state = PROC_CATCHING_UP;
	}
	pthread_mutex_unlock(&p->mu);
}

/* A remote definition whose client is gone: wait (not a failure, no
 * attempt counted) until it is back, a command, a definition or the stop. */
static void
wait_connected(processor *p)
{
	remote_proc *r = p->def->remote;
	if (r == NULL || remote_connected(r))
		return;
	proc_set_state(p, PROC_DISCONNECTED);
	log_info("proc", "tenant %s %s %s: its remote client is not "
	    "connected; waiting for it", p->tenant,
	    p->is_filter ? "filter" : "projection", p->proj_id);
	while (!must_setup(p) && !remote_wait_connected(r, PROC_WAIT_MS)) {
		pthread_mutex_lock(&p->mu);
		bool cmds = p->cmds != 0;
		pthread_mutex_unlock(&p->mu);
		if (cmds)
			take_commands(p);
	}
	proc_set_state(p, p->rebuilding ? PROC_REBUILDING : PROC_CATCHING_UP);
}

/* Retry the next due failing unit, if any. @return whether one ran. */
static bool
retry_due(processor *p, uint64_t *pos, int64_t *next_try)
{
	bool       due;
	batch_ctx *b = calloc(1, sizeof(*b));
	*next_try    = INT64_MAX;
	if (b == NULL)
		return false;
	pthread_mutex_lock(&p->mu);
	fail_unit *u = failset_next(&p->fails, ev_now_ns(), &due);
	*next_try    = u != NULL ? u->next_try_ns : INT64_MAX;
	if (u != NULL && due) {
		b->ru      = *u;
		b->ru.unit = strndup(u->unit, u->ulen);
		p->st.retries += b->ru.unit != NULL;
	}
	pthread_mutex_unlock(&p->mu);
	if (b->ru.unit == NULL) {
		free(b);
		return false;
	}
	b->retrying = true;
	b->limit    = p->partitioned ? *pos : 0;
	uint64_t from = p->partitioned ? b->ru.pos : *pos;
	int      rc   = proc_run_batch(p, from, b);
	if (rc == SL_ECLOSED)
		wait_connected(p);
	else if (rc != SL_OK) {
		fail_and_wait(
		    p, p->em != NULL ? p->em->committed : from, b->reason);
		if (p->em != NULL) /* from what is stored */
			*pos = p->em->committed;
	} else if (!p->partitioned) {
		*pos = b->next;
		if (b->swapped)
			rebuild_done(p, *pos);
	}
	if (rc == SL_OK)
		show_progress(p, *pos, b);
	free(b->ru.unit);
	free(b);
	return true;
}

/*
 * Caught up: an emitting run's batch at the store is waited for, so that
 * its failure shows now, not with the next event. @return whether it
 * failed (the run then goes on from what is stored: *pos).
 */
static bool
emit_settle(processor *p, uint64_t *pos)
{
	char why[256];
	if (p->em == NULL)
		return false;
	if (proc_emit_sync(p, why, sizeof(why)) == SL_OK) {
		pthread_mutex_lock(&p->mu);
		p->st.position = *pos; /* all of it durable, or skipped */
		if (!p->rebuilding)
			p->st.served_position = *pos;
		pthread_mutex_unlock(&p->mu);
		return false;
	}
	proc_fold_discard(p);
	reload_failures(p);
	fail_and_wait(p, p->em->committed, why);
	*pos = p->em->committed;
	return true;
}

/* Fold the log with the current definition until setup must run again. */
static void
process(processor *p)
{
	uint64_t   pos;
	batch_ctx *b = malloc(sizeof(*b));
	if (b == NULL) {
		fail_and_wait(p, 0, "out of memory");
		return;
	}
	pthread_mutex_lock(&p->mu);
	p->fail_pos = UINT64_MAX;
	pos         = p->st.position;
	pthread_mutex_unlock(&p->mu);

	while (!must_setup(p)) {
		take_commands(p);
		if (p->paused) {
			proc_set_state(p, PROC_PAUSED);
			wait_until(p, INT64_MAX);
			continue;
		}
		if (p->halt[0] != '\0') {
			pthread_mutex_lock(&p->mu);
			p->st.state = PROC_FAILED;
			snprintf(
			    p->st.reason, sizeof(p->st.reason), "%s", p->halt);
			pthread_mutex_unlock(&p->mu);
			wait_until(p, INT64_MAX);
			continue;
		}
		if (p->def->remote != NULL && !remote_connected(p->def->remote)) {
			wait_connected(p);
			continue;
		}
		int64_t next_try;
		if (retry_due(p, &pos, &next_try))
			continue;
		if (!p->partitioned && p->fails.n > 0) {
			/* stopped at its failing event until the retry */
			memset(b, 0, sizeof(*b));
			show_progress(p, pos, b);
			wait_until(p, next_try);
			continue;
		}
		uint64_t head = store_next_position(p->s);
		/* a rebuild that has caught up still runs one (empty) batch:
		 * that is where it switches over */
		if (head <= pos && !p->rebuilding && emit_settle(p, &pos))
			continue;
		if (head <= pos && !p->rebuilding) {
			proc_set_state(p, p->rebuilding ? PROC_REBUILDING : PROC_LIVE);
			int64_t wait_ms = PROC_WAIT_MS;
			if (next_try != INT64_MAX) {
				int64_t ms = (next_try - ev_now_ns()) / 1000000;
				wait_ms    = ms < 1 ? 1 : ms < wait_ms ? ms : wait_ms;
			}
			store_wait(p->s, pos, (int) wait_ms);
			continue;
		}
		memset(b, 0, sizeof(*b));
		int rc = proc_run_batch(p, pos, b);
		if (rc == SL_ECLOSED) {
			wait_connected(p);
			continue;
		}
		if (rc != SL_OK) {
			fail_and_wait(p, p->em != NULL ? p->em->committed : pos,
			    b->reason);
			if (p->em != NULL) /* from what is stored */
				pos = p->em->committed;
			continue;
		}
		pos = b->next;
		if (b->swapped)
			rebuild_done(p, pos);
		show_progress(p, pos, b);
	}
	free(b);
	char why[256];
	if (p->em != NULL && proc_emit_sync(p, why, sizeof(why)) != SL_OK)
		log_warn("emitter", "%s/%s: %s", p->tenant, p->proj_id, why);
}

/*
 * Take a definition handed over by proc_set_def, if any: release the one
 * that ran. @return true if the definition changed.
 */
static bool
take_pending(processor *p)
{
	pthread_mutex_lock(&p->mu);
	if (!p->has_pending) {
		pthread_mutex_unlock(&p->mu);
		return false;
	}
	const proj_def *old = p->def;
	p->def              = p->pending;
	p->pending          = NULL;
	p->has_pending      = false;
	if (p->def != NULL)
		p->st.def = p->def; /* a dropped one keeps showing its last */
	p->st.attempts      = 0;
	p->st.next_retry_ns = 0;
	p->st.reason[0]     = '\0';
	pthread_mutex_unlock(&p->mu);
	if (p->def != NULL)
		log_info("proc",
		    "tenant %s %s %s (%s): switching to the new definition "
		    "(%016" PRIx64 ")",
		    p->tenant, def_is_filter(p->def) ? "filter" : "projection",
		    p->proj_id, p->def->name ? p->def->name : "",
		    p->def->def_hash);
	else
		log_info("proc",
		    "tenant %s %s %s: dropped; stopped (what it built is "
		    "still served)",
		    p->tenant, p->is_filter ? "filter" : "projection",
		    p->proj_id);
	proj_def_release(old);
	return true;
}

/* A reset was taken by setup (or cannot be, the definition is gone). */
static void
reset_taken(processor *p)
{
	pthread_mutex_lock(&p->mu);
	p->cmds &= ~CMD_BIT(PROC_CMD_RESET);
	if (p->cmds == 0)
		p->cmd_done = p->cmd_seq;
	pthread_cond_broadcast(&p->done_cv);
	pthread_mutex_unlock(&p->mu);
}

/* Dropped: wait for a definition (or the stop); pause, resume and retry
 * are still recorded, a reset waits for a definition to run. */
static void
wait_for_def(processor *p)
{
	pthread_mutex_lock(&p->mu);
	p->st.state = PROC_STOPPED;
	while (!p->stop && !p->has_pending) {
		if (p->cmds != 0) {
			bool reset = p->cmds & CMD_BIT(PROC_CMD_RESET);
			pthread_mutex_unlock(&p->mu);
			if (reset) {
				log_warn("proc",
				    "tenant %s %s: reset ignored: no plugin "
				    "defines it now",
				    p->tenant, p->proj_id);
				reset_taken(p);
			}
			take_commands(p);
			pthread_mutex_lock(&p->mu);
			continue;
		}
		pthread_cond_wait(&p->cv, &p->mu);
	}
	pthread_mutex_unlock(&p->mu);
}

void *
proc_thread(void *arg)
{
	processor *p = arg;
	char       reason[256];

	while (!proc_stopping(p)) {
		take_pending(p);
		if (p->def == NULL) {
			wait_for_def(p);
			continue;
		}
		pthread_mutex_lock(&p->mu);
		bool reset = p->cmds & CMD_BIT(PROC_CMD_RESET);
		pthread_mutex_unlock(&p->mu);
		int rc;
		while ((rc = setup(p, reset, reason, sizeof(reason))) != SL_OK
		    && !interrupted(p))
			fail_and_wait(p, 0, reason);
		if (rc == SL_OK && reset)
			reset_taken(p);
		if (rc == SL_OK && p->def->remote != NULL
		    && (rc = proc_remote_open(p)) != SL_OK)
			fail_and_wait(p, 0, "cannot open the remote calls");
		if (rc == SL_OK)
			process(p);
		proc_remote_close(p);
	}
	proc_set_state(p, PROC_STOPPED);
	return NULL;
}

