/*
 * Validating a filter whose code changed without a version bump (see
 * filter_validate.h): one thread per (tenant, filter) runs the new code
 * over the log in chunks and compares, chunk by chunk, what it would
 * include with the stored stream, then acts on the first difference.
 *
 * The stored stream is in the order the processor appended it: log order,
 * except that a retried unit's entries come after later events of other
 * units. So the stream is read as two sorted sequences, its entries in
 * log order (each one past every entry before it in the stream) and the
 * "late" ones (a retried unit's, collected and sorted once, in the
 * snapshot), merged while comparing. What is compared is fixed by the
 * snapshot: the generation, its checkpoint (`until`), its length (later
 * entries are the processor's new work) and its failing units (whose
 * events from their failing one on wait, in the stream and here alike).
 *
 * Partitions are compared by their FNV-1a 64 hash (with the length), so
 * that a chunk's and the late entries' memory does not depend on them.
 */
#include "filter_validate.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/errors.h>

#include "event.h"
#include "failset.h"
#include "fnv.h"
#include "guard.h"
#include "host.h"
#include "log.h"
#include "proc_internal.h"

/* Log events per chunk: a chunk's entries are compared in one read
 * transaction of the read model store, between two of the log's. */
#define FVAL_CHUNK 1024
/* Status shows how far the new code has run every this many positions
 * (a power of two). */
#define FVAL_SHOW_EVERY 64

/* What the scans' callbacks return to stop one (no sl_err code). */
#define FVAL_STOP (-1)

/* The reason a filter that asked to fail on a code change stops with. */
#define FVAL_FAIL_REASON                                                      \
	"code changed without a version bump: stream differs at position "

/* One entry of a stream: its log position and its partition's hash. */
typedef struct fentry {
	uint64_t pos;
	uint64_t part;
} fentry;

typedef struct fvec {
	fentry *v;
	size_t  n, cap;
} fvec;

typedef struct job {
	fval           *owner;
	char           *tenant;
	char            id[37];
	store          *s;
	rmstore        *rm;
	processor      *p;
	const proj_def *def; /* held while the thread runs */
	pthread_t       thr;
	bool            joinable; /* under owner->ctl */
	atomic_bool     cancel;
	fval_status     st; /* under owner->mu */
} job;

struct fval {
	pthread_mutex_t ctl; /* start, cancel, destroy: one at a time */
	pthread_mutex_t mu;  /* the list and every job's st */
	job           **jobs;
	size_t          n, cap;
};

/* One validation's working state (its thread's). */
typedef struct work {
	job             *j;
	const sl_filter *f;
	char             name[40]; /* "f:<id>": what the processor writes as */
	char             cp_key[48];
	char             rb_key[56];
	bool             partitioned, public_only;
	proc_src         src; /* what the filter reads, as its processor */
	uint64_t         gen, until, length; /* the snapshot */
	failset          fails;
	fvec             late;   /* sorted by position */
	size_t           li;     /* the next late entry to compare */
	uint64_t         s_next; /* the next stream position to read */
	uint64_t         max;    /* the last in-order entry's log position */
	bool             any;    /* ... once there is one */
	/* the chunk */
	uint64_t     from, next; /* log positions: [from, next) handled */
	uint64_t     end;        /* entries before it are compared */
	fvec         mine, stored;
	msgpack_zone zone;
	bool         cancelled;
	bool         failed; /* the new code failed at `next` */
	bool         oom;    /* ... or memory did */
	char         why[320];
	/* the outcome */
	uint64_t    compared;
	bool        differs;
	uint64_t    diff_pos;
	const char *diff_how;
} work;

/* ---- names ---- */

const char *
fval_state_name(fval_state s)
{
	switch (s) {
	case FVAL_RUNNING:
		return "running";
	case FVAL_DONE:
		return "done";
	case FVAL_CANCELLED:
		return "cancelled";
	}
	return "unknown";
}

const char *
fval_result_name(fval_result r)
{
	switch (r) {
	case FVAL_NONE:
		return NULL;
	case FVAL_EQUAL:
		return "equal";
	case FVAL_DIFFERS:
		return "differs";
	case FVAL_INCONCLUSIVE:
		return "inconclusive";
	case FVAL_SKIPPED:
		return "skipped";
	case FVAL_ERROR:
		return "error";
	}
	return "unknown";
}

const char *
fval_action_name(fval_action a)
{
	switch (a) {
	case FVAL_ACT_NONE:
		return "none";
	case FVAL_ACT_REBUILD:
		return "rebuild";
	case FVAL_ACT_FAIL:
		return "fail";
	}
	return "unknown";
}

/* ---- entries ---- */

static int
fvec_push(fvec *x, uint64_t pos, uint64_t part)
{
	if (x->n == x->cap) {
		size_t  cap = x->cap != 0 ? x->cap * 2 : 256;
		fentry *nv  = realloc(x->v, cap * sizeof(*nv));
		if (nv == NULL)
			return SL_ENOMEM;
		x->v   = nv;
		x->cap = cap;
	}
	x->v[x->n].pos    = pos;
	x->v[x->n++].part = part;
	return SL_OK;
}

static uint64_t
part_hash(const char *part, size_t plen)
{
	uint64_t n = plen;
	return fnv1a(fnv1a(FNV1A_OFFSET, &n, sizeof(n)), part, plen);
}

static int
by_pos(const void *a, const void *b)
{
	const fentry *x = a, *y = b;
	return x->pos < y->pos ? -1 : x->pos > y->pos ? 1 : 0;
}

/* ---- status ---- */

static void
set_status(work *w, void (*fn)(fval_status *st, const work *w))
{
	pthread_mutex_lock(&w->j->owner->mu);
	fn(&w->j->st, w);
	pthread_mutex_unlock(&w->j->owner->mu);
}

/* Running: the position the new code is at. */
static void
show_scanned(fval_status *st, const work *w)
{
	st->position = w->next;
}

static void
show_progress(fval_status *st, const work *w)
{
	st->position = w->end;
	st->until    = w->until;
	st->compared = w->compared;
}

/* ---- the snapshot ---- */

/* Pass one over the stored stream: the late entries. */
static int
late_cb(void *arg, uint64_t spos, uint64_t lpos, uint64_t other,
    const char *part, size_t plen)
{
	work *w = arg;
	(void) spos;
	(void) other;
	if (w->any && lpos <= w->max)
		return fvec_push(&w->late, lpos, part_hash(part, plen))
		        == SL_OK
		    ? 0
		    : SL_ENOMEM;
	w->max = lpos;
	w->any = true;
	return 0;
}

/*
 * What is compared, read in one transaction: the served generation of
 * this definition, its checkpoint, failing units and length, and the
 * stream's late entries. @return SL_OK; SL_OK with *rebuilding (a rebuild
 * of this definition is under way: nothing to compare, it starts again);
 * SL_ENOTFOUND (nothing built by this definition: it rebuilds anyway);
 * else a storage error (w->why).
 */
static int
snapshot(work *w, bool *rebuilding)
{
	job          *j = w->j;
	MDB_txn      *txn;
	uint64_t      act = 0, rb[3] = { 0, 0, 0 };
	rm_checkpoint cp = { 0, 0 };
	*rebuilding      = false;
	int mrc = mdb_txn_begin(rm_env(j->rm), NULL, MDB_RDONLY, &txn);
	if (mrc != 0) {
		snprintf(
		    w->why, sizeof(w->why), "begin: %s", mdb_strerror(mrc));
		return SL_ESTORAGE;
	}
	int arc = rm_active_read(j->rm, txn, w->name, &act);
	int crc = rm_checkpoint_read(j->rm, txn, w->cp_key, &cp);
	int rrc = rm_record_read(j->rm, txn, w->rb_key, rb, 3);
	int rc  = SL_OK;
	if ((arc != SL_OK && arc != SL_ENOTFOUND)
	    || (crc != SL_OK && crc != SL_ENOTFOUND)
	    || (rrc != SL_OK && rrc != SL_ENOTFOUND)) {
		rc = SL_ESTORAGE;
		snprintf(w->why, sizeof(w->why), "reading the checkpoint");
	} else if (rrc == SL_OK && rb[2] == j->def->def_hash
	    && (arc != SL_OK || (rb[0] & 1) != (act & 1))) {
		/* a rebuild of this definition (as the processor's setup
		 * tells one to resume) */
		*rebuilding = true;
	} else if (arc != SL_OK || crc != SL_OK
	    || cp.def_hash != j->def->def_hash) {
		rc = SL_ENOTFOUND;
	} else {
		w->gen   = act;
		w->until = cp.position;
		failset_init(&w->fails, w->name, act);
		rc = failset_load(&w->fails, j->rm, txn);
		if (rc == SL_OK)
			rc = rm_stream_walk(j->rm, txn, j->id, act, 0, 0,
			    late_cb, w, &w->length);
		if (rc != SL_OK)
			snprintf(w->why, sizeof(w->why),
			    "reading the stream: %s", sl_strerror(rc));
	}
	mdb_txn_abort(txn);
	if (w->late.n > 1)
		qsort(w->late.v, w->late.n, sizeof(*w->late.v), by_pos);
	w->any = false; /* pass two finds the in-order entries again */
	w->max = 0;
	return rc;
}

/* ---- the new code over the log ---- */

/* The new code failed on the event at position (w->why says how): the
 * chunk ends before it. */
static int
code_failed(work *w, uint64_t position)
{
	w->failed = true;
	w->next   = position;
	return FVAL_STOP;
}

/* One event of the log through the new filter(), as the processor's
 * filter_event calls it. */
static int
scan_cb(void *arg, uint64_t position, const void *data, size_t len)
{
	work *w = arg;
	job  *j = w->j;
	if (position >= w->until)
		return FVAL_STOP;
	if (atomic_load_explicit(&j->cancel, memory_order_relaxed)) {
		w->cancelled = true;
		return FVAL_STOP;
	}
	/* what the processor passes without decoding (its sources) */
	ev_head h;
	if (ev_peek(data, len, &h) == SL_OK && !proc_src_selects(&w->src, &h)) {
		w->next = position + 1;
		return 0;
	}
	ev_view ev;
	msgpack_zone_clear(&w->zone);
	int rc = ev_decode(data, len, position, &w->zone, &ev);
	if (rc != SL_OK) {
		/* the processor cannot read it either */
		snprintf(w->why, sizeof(w->why),
		    "cannot decode the event at position %" PRIu64 ": %s",
		    position, sl_strerror(rc));
		return code_failed(w, position);
	}
	w->next = position + 1;
	if ((position & (FVAL_SHOW_EVERY - 1)) == 0)
		set_status(w, show_scanned);
	if (strcmp(ev.tenant, j->tenant) != 0
	    || (w->public_only && !ev.is_public))
		return 0;
	/* a failing unit's events wait (in the stream too) */
	const char      *unit = w->partitioned ? ev.stream : "";
	const fail_unit *u    = failset_find(&w->fails, unit, strlen(unit));
	if (u != NULL && position >= u->pos)
		return 0;

	struct sl_event sev  = { .v = &ev, .partition = ev.stream };
	sl_context      ctx  = { .last_reason = "" };
	const char     *part = NULL;
	host_scratch_reset();
	guard_enter(GUARD_QUERY, j->tenant, j->id, w->name, w->gen, unit,
	    strlen(unit), position);
	sl_verdict v = w->f->filter(w->f->user, &sev, &part, &ctx);
	guard_leave();
	if (v == SL_EXCLUDED)
		return 0;
	if (v != SL_INCLUDED) {
		if (v == SL_FAILED)
			snprintf(w->why, sizeof(w->why),
			    "the new code failed on the event at position "
			    "%" PRIu64 ": %.200s",
			    position,
			    ctx.reason[0] != '\0' ? ctx.reason
			                          : "no reason given");
		else
			snprintf(w->why, sizeof(w->why),
			    "the new code returned an unknown verdict %d on "
			    "the event at position %" PRIu64,
			    (int) v, position);
		return code_failed(w, position);
	}
	size_t plen = 0;
	if (w->partitioned) {
		plen = part != NULL ? strnlen(part, 256) : 0;
		if (plen == 0 || plen > 255) {
			snprintf(w->why, sizeof(w->why),
			    "the new code included the event at position "
			    "%" PRIu64 " without a partition id of 1..255 "
			    "bytes",
			    position);
			return code_failed(w, position);
		}
	}
	if (fvec_push(&w->mine, position, part_hash(part, plen)) != SL_OK) {
		snprintf(w->why, sizeof(w->why), "out of memory");
		w->oom = true;
		return code_failed(w, position);
	}
	return 0;
}

/* ---- the stored stream, compared ---- */

/* Pass two: the stream's in-order entries before w->end. */
static int
stored_cb(void *arg, uint64_t spos, uint64_t lpos, uint64_t other,
    const char *part, size_t plen)
{
	work *w = arg;
	(void) other;
	if (spos >= w->length)
		return FVAL_STOP; /* appended after the snapshot */
	if (w->any && lpos <= w->max) {
		w->s_next = spos + 1; /* a late one: compared from w->late */
		return 0;
	}
	if (lpos >= w->end)
		return FVAL_STOP; /* the next chunk's: read again then */
	w->max    = lpos;
	w->any    = true;
	w->s_next = spos + 1;
	return fvec_push(&w->stored, lpos, part_hash(part, plen)) == SL_OK
	    ? 0
	    : SL_ENOMEM;
}

/* Whether the snapshot's generation is still the served one (a rebuild
 * that caught up meanwhile emptied it). */
static bool
gen_current(work *w, MDB_txn *txn)
{
	uint64_t act;
	return rm_active_read(w->j->rm, txn, w->name, &act) == SL_OK
	    && act == w->gen;
}

/* The stored entries before w->end, in log order, against w->mine: the
 * first difference into w->diff_pos. */
static void
compare(work *w)
{
	size_t ic = 0, io = 0;
	for (;;) {
		const fentry *c = ic < w->mine.n ? &w->mine.v[ic] : NULL;
		const fentry *o = io < w->stored.n ? &w->stored.v[io] : NULL;
		const fentry *l
		    = w->li < w->late.n && w->late.v[w->li].pos < w->end
		    ? &w->late.v[w->li]
		    : NULL;
		bool late = l != NULL && (o == NULL || l->pos < o->pos);
		if (late)
			o = l;
		if (c == NULL && o == NULL)
			return;
		if (c != NULL && o != NULL && c->pos == o->pos
		    && c->part == o->part) {
			ic++;
			if (late)
				w->li++;
			else
				io++;
			w->compared++;
			continue;
		}
		w->differs = true;
		if (c != NULL && o != NULL && c->pos == o->pos) {
			w->diff_pos = c->pos;
			w->diff_how = "puts it in another partition";
		} else if (o == NULL || (c != NULL && c->pos < o->pos)) {
			w->diff_pos = c->pos;
			w->diff_how = "includes it, the stream does not";
		} else {
			w->diff_pos = o->pos;
			w->diff_how = "leaves out what the stream includes";
		}
		return;
	}
}

/* Read and compare the stored entries of the chunk [.., w->end). */
static int
compare_chunk(work *w)
{
	MDB_txn *txn;
	int      mrc = mdb_txn_begin(rm_env(w->j->rm), NULL, MDB_RDONLY, &txn);
	if (mrc != 0) {
		snprintf(
		    w->why, sizeof(w->why), "begin: %s", mdb_strerror(mrc));
		return SL_ESTORAGE;
	}
	int rc      = SL_OK;
	w->stored.n = 0;
	if (!gen_current(w, txn)) {
		rc = SL_ECLOSED;
		snprintf(w->why, sizeof(w->why),
		    "the stream was rebuilt meanwhile");
	} else {
		rc = rm_stream_walk(w->j->rm, txn, w->j->id, w->gen, w->s_next,
		    0, stored_cb, w, NULL);
		if (rc == FVAL_STOP)
			rc = SL_OK; /* stopped where the chunk ends */
		if (rc != SL_OK)
			snprintf(w->why, sizeof(w->why),
			    "reading the stream: %s", sl_strerror(rc));
	}
	mdb_txn_abort(txn);
	if (rc == SL_OK)
		compare(w);
	return rc;
}

/* ---- the thread ---- */

static void
show_start(fval_status *st, const work *w)
{
	st->until = w->until;
}

/* The finished validation's status. */
typedef struct outcome {
	fval_state  state;
	fval_result result;
	fval_action action;
	uint64_t    position;
	char        reason[320];
} outcome;

static void
finish(job *j, uint64_t compared, const outcome *o)
{
	pthread_mutex_lock(&j->owner->mu);
	j->st.state       = o->state;
	j->st.result      = o->result;
	j->st.action      = o->action;
	j->st.position    = o->position;
	j->st.compared    = compared;
	j->st.finished_ns = ev_now_ns();
	if (o->state == FVAL_CANCELLED)
		j->st.cancelled++;
	snprintf(j->st.reason, sizeof(j->st.reason), "%s", o->reason);
	pthread_mutex_unlock(&j->owner->mu);
}

/* Act on a difference (or on a rebuild of this definition built in part
 * by the old code), unless the validation was cancelled meanwhile. */
static void
act(job *j, outcome *o)
{
	if (atomic_load(&j->cancel)) {
		o->state  = FVAL_CANCELLED;
		o->result = FVAL_NONE;
		o->action = FVAL_ACT_NONE;
		return;
	}
	int rc = o->action == FVAL_ACT_FAIL
	    ? proc_halt(j->p, o->reason, 0)
	    : proc_command(j->p, PROC_CMD_RESET, 0);
	/* 0 ms: not waited for, taken between two batches */
	if (rc != SL_OK && rc != SL_ETIMEDOUT)
		log_error("fval", "tenant %s filter %s: cannot %s: %s",
		    j->tenant, j->id,
		    o->action == FVAL_ACT_FAIL ? "stop it" : "rebuild it",
		    sl_strerror(rc));
}

/* Run the new code over the log, chunk by chunk, comparing as it goes. */
static int
run_chunks(work *w)
{
	job *j  = w->j;
	w->from = 0;
	while (w->from < w->until && !w->differs) {
		w->mine.n = 0;
		w->next   = w->from;
		int rc
		    = store_scan(j->s, w->from, FVAL_CHUNK, scan_cb, w, NULL);
		if (w->cancelled)
			return SL_OK;
		if (rc != SL_OK && rc != FVAL_STOP) {
			snprintf(w->why, sizeof(w->why), "reading the log: %s",
			    sl_strerror(rc));
			return rc;
		}
		if (w->next == w->from && !w->failed) {
			/* the checkpoint is never past the head */
			snprintf(w->why, sizeof(w->why),
			    "the log ends at %" PRIu64 ", before the "
			    "checkpoint",
			    w->from);
			return SL_ESTORAGE;
		}
		w->end = w->next < w->until ? w->next : w->until;
		if ((rc = compare_chunk(w)) != SL_OK)
			return rc;
		set_status(w, show_progress);
		if (w->failed)
			return SL_OK;
		w->from = w->end;
	}
	return SL_OK;
}

static void
work_free(work *w)
{
	failset_free(&w->fails);
	free(w->late.v);
	free(w->mine.v);
	free(w->stored.v);
	msgpack_zone_destroy(&w->zone);
	free(w);
}

static void
run_validation(job *j, work *w, outcome *o)
{
	const proj_def *d    = j->def;
	const char     *kind = "filter";
	bool            rebuilding;
	int             rc = snapshot(w, &rebuilding);
	if (rebuilding) {
		o->result = FVAL_SKIPPED;
		o->action = FVAL_ACT_REBUILD;
		snprintf(o->reason, sizeof(o->reason),
		    "a rebuild of this definition was under way, made in "
		    "part by the old code: it starts again with the new");
		log_warn("fval",
		    "tenant %s %s %s (%s): code changed "
		    "without a version bump: %s",
		    j->tenant, kind, j->id, d->name, o->reason);
		act(j, o);
		return;
	}
	if (rc == SL_ENOTFOUND) {
		o->result = FVAL_SKIPPED;
		snprintf(o->reason, sizeof(o->reason),
		    "nothing built by this definition yet");
		return;
	}
	if (rc == SL_OK) {
		set_status(w, show_start);
		rc = run_chunks(w);
	}
	o->position = w->end;
	if (w->cancelled) {
		o->state = FVAL_CANCELLED;
		snprintf(o->reason, sizeof(o->reason),
		    "cancelled at position %" PRIu64, w->end);
		log_info("fval",
		    "tenant %s %s %s (%s): validation cancelled "
		    "at position %" PRIu64,
		    j->tenant, kind, j->id, d->name, w->end);
		return;
	}
	if (w->differs) {
		bool fail = proj_def_on_code_change(d) == SL_CODE_CHANGE_FAIL;
		o->result = FVAL_DIFFERS;
		o->position = w->diff_pos;
		o->action   = fail ? FVAL_ACT_FAIL : FVAL_ACT_REBUILD;
		snprintf(o->reason, sizeof(o->reason),
		    FVAL_FAIL_REASON "%" PRIu64, w->diff_pos);
		log_warn("fval",
		    "tenant %s %s %s (%s): %s (the new code %s); "
		    "%s",
		    j->tenant, kind, j->id, d->name, o->reason, w->diff_how,
		    fail ? "stopped as failed (on_code_change: fail); its "
		           "old stream is still served"
		         : "rebuilding it from position 0 with the new code");
		act(j, o);
		return;
	}
	if (rc != SL_OK || w->oom) {
		o->result = FVAL_ERROR;
		snprintf(o->reason, sizeof(o->reason), "%s", w->why);
		log_warn("fval",
		    "tenant %s %s %s (%s): validation ended at "
		    "position %" PRIu64 ": %s; nothing done",
		    j->tenant, kind, j->id, d->name, w->end, w->why);
		return;
	}
	if (w->failed) {
		o->result = FVAL_INCONCLUSIVE;
		snprintf(o->reason, sizeof(o->reason), "%s", w->why);
		log_warn("fval",
		    "tenant %s %s %s (%s): validation "
		    "inconclusive, nothing done: the stream is equal up to "
		    "position %" PRIu64 ", then %s",
		    j->tenant, kind, j->id, d->name, w->end, w->why);
		return;
	}
	o->result = FVAL_EQUAL;
	snprintf(o->reason, sizeof(o->reason),
	    "the new code includes what the stream holds up to position "
	    "%" PRIu64,
	    w->until);
	log_info("fval",
	    "tenant %s %s %s (%s): code changed without a "
	    "version bump; validated: %s (%" PRIu64 " entries)",
	    j->tenant, kind, j->id, d->name, o->reason, w->compared);
	/* a stop for an earlier code's difference ends: this code agrees */
	if (!atomic_load(&j->cancel))
		proc_halt(j->p, NULL, 0);
}

static void *
fval_thread(void *arg)
{
	job    *j = arg;
	outcome o = { .state = FVAL_DONE };
	work   *w = calloc(1, sizeof(*w));
	if (w == NULL || !msgpack_zone_init(&w->zone, 4096)) {
		free(w);
		o.result = FVAL_ERROR;
		snprintf(o.reason, sizeof(o.reason), "out of memory");
		finish(j, 0, &o);
		proj_def_release(j->def);
		return NULL;
	}
	w->j           = j;
	w->f           = j->def->f;
	w->partitioned = j->def->filter_kind != SL_FILTER_UNPARTITIONED;
	w->public_only = j->def->filter_kind == SL_FILTER_PUBLIC;
	proc_src_init(&w->src, j->def, j->tenant);
	snprintf(w->name, sizeof(w->name), RM_FILTER_PREFIX "%s", j->id);
	snprintf(w->cp_key, sizeof(w->cp_key), "proj:%s", w->name);
	snprintf(w->rb_key, sizeof(w->rb_key), "rebuild:%s", w->name);
	failset_init(&w->fails, w->name, 0);
	run_validation(j, w, &o);
	finish(j, w->compared, &o);
	work_free(w);
	proj_def_release(j->def);
	return NULL;
}

/* ---- the list ---- */

int
fval_create(fval **out)
{
	fval *v = calloc(1, sizeof(*v));
	if (v == NULL)
		return SL_ENOMEM;
	pthread_mutex_init(&v->ctl, NULL);
	pthread_mutex_init(&v->mu, NULL);
	*out = v;
	return SL_OK;
}

/* Cancel j and wait for its thread (v->ctl held). */
static void
stop_job(job *j)
{
	if (!j->joinable)
		return;
	atomic_store(&j->cancel, true);
	pthread_join(j->thr, NULL);
	j->joinable = false;
}

void
fval_destroy(fval *v)
{
	if (v == NULL)
		return;
	pthread_mutex_lock(&v->ctl);
	for (size_t i = 0; i < v->n; i++)
		stop_job(v->jobs[i]);
	pthread_mutex_unlock(&v->ctl);
	for (size_t i = 0; i < v->n; i++) {
		free(v->jobs[i]->tenant);
		free(v->jobs[i]);
	}
	free(v->jobs);
	pthread_mutex_destroy(&v->ctl);
	pthread_mutex_destroy(&v->mu);
	free(v);
}

/* The job of (tenant, id), or NULL (v->mu held). */
static job *
find_job(fval *v, const char *tenant, const char *id)
{
	for (size_t i = 0; i < v->n; i++)
		if (strcmp(v->jobs[i]->id, id) == 0
		    && strcmp(v->jobs[i]->tenant, tenant) == 0)
			return v->jobs[i];
	return NULL;
}

/* A new job of (tenant, def), appended (v->mu held). */
static job *
add_job(fval *v, const char *tenant, const proj_def *def)
{
	if (v->n == v->cap) {
		size_t cap = v->cap != 0 ? v->cap * 2 : 8;
		job  **nj  = realloc(v->jobs, cap * sizeof(*nj));
		if (nj == NULL)
			return NULL;
		v->jobs = nj;
		v->cap  = cap;
	}
	job *j = calloc(1, sizeof(*j));
	if (j == NULL || (j->tenant = strdup(tenant)) == NULL) {
		free(j);
		return NULL;
	}
	j->owner = v;
	snprintf(j->id, sizeof(j->id), "%s", def->id);
	v->jobs[v->n++] = j;
	return j;
}

int
fval_start(fval *v, store *s, rmstore *rm, processor *p, const proj_def *def)
{
	if (v == NULL || def == NULL || !def_is_filter(def)
	    || def->remote != NULL || def->ver == NULL)
		return SL_EINVAL;
	const char *tenant = proc_tenant(p);
	pthread_mutex_lock(&v->ctl);
	pthread_mutex_lock(&v->mu);
	job *j = find_job(v, tenant, def->id);
	pthread_mutex_unlock(&v->mu);
	if (j != NULL)
		stop_job(j); /* one at a time: the newer code wins */
	if (!proj_def_try_hold(def)) {
		pthread_mutex_unlock(&v->ctl);
		return SL_ENOTFOUND;
	}
	if (def->f == NULL || def->f->filter == NULL) {
		proj_def_release(def);
		pthread_mutex_unlock(&v->ctl);
		return SL_EINVAL;
	}
	pthread_mutex_lock(&v->mu);
	if (j == NULL)
		j = add_job(v, tenant, def);
	uint32_t runs      = j != NULL ? j->st.runs : 0;
	uint32_t cancelled = j != NULL ? j->st.cancelled : 0;
	if (j != NULL) {
		j->s   = s;
		j->rm  = rm;
		j->p   = p;
		j->def = def;
		atomic_store(&j->cancel, false);
		memset(&j->st, 0, sizeof(j->st));
		j->st.state      = FVAL_RUNNING;
		j->st.runs       = runs + 1;
		j->st.cancelled  = cancelled;
		j->st.started_ns = ev_now_ns();
	}
	pthread_mutex_unlock(&v->mu);
	if (j != NULL)
		log_info("fval",
		    "tenant %s filter %s (%s): code changed without a version "
		    "bump: validating its stream against the new code",
		    tenant, def->id, def->name);
	int rc
	    = j != NULL ? pthread_create(&j->thr, NULL, fval_thread, j) : -1;
	if (rc != 0) {
		if (j != NULL) {
			pthread_mutex_lock(&v->mu);
			j->st.state  = FVAL_DONE;
			j->st.result = FVAL_ERROR;
			snprintf(j->st.reason, sizeof(j->st.reason),
			    "cannot start its thread");
			pthread_mutex_unlock(&v->mu);
		}
		proj_def_release(def);
		pthread_mutex_unlock(&v->ctl);
		return SL_ENOMEM;
	}
	j->joinable = true;
	pthread_mutex_unlock(&v->ctl);
	return SL_OK;
}

void
fval_cancel(fval *v, const char *filter_id)
{
	if (v == NULL)
		return;
	pthread_mutex_lock(&v->ctl);
	/* the list only grows under ctl */
	for (size_t i = 0; i < v->n; i++)
		if (strcmp(v->jobs[i]->id, filter_id) == 0)
			stop_job(v->jobs[i]);
	pthread_mutex_unlock(&v->ctl);
}

bool
fval_get(fval *v, const char *tenant, const char *filter_id, fval_status *out)
{
	if (v == NULL)
		return false;
	pthread_mutex_lock(&v->mu);
	job *j = find_job(v, tenant, filter_id);
	if (j != NULL)
		*out = j->st;
	pthread_mutex_unlock(&v->mu);
	return j != NULL;
}

void
fval_pack_status(fval *v, mp_map *m, const char *tenant, const char *filter_id)
{
	fval_status st;
	mp_map_key(m, "validation");
	if (!fval_get(v, tenant, filter_id, &st)) {
		msgpack_pack_nil(m->pk);
		return;
	}
	mp_map e;
	mp_map_open(&e, m->pk);
	mp_map_str(&e, "state", fval_state_name(st.state));
	mp_map_str(&e, "result", fval_result_name(st.result));
	mp_map_str(&e, "action", fval_action_name(st.action));
	mp_map_u64(&e, "position", st.position);
	mp_map_u64(&e, "until", st.until);
	mp_map_u64(&e, "compared", st.compared);
	mp_map_u64(&e, "runs", st.runs);
	mp_map_u64(&e, "cancelled", st.cancelled);
	mp_map_i64(&e, "started_at_ns", st.started_ns);
	mp_map_i64(&e, "finished_at_ns", st.finished_ns);
	mp_map_str(&e, "reason", st.reason[0] != '\0' ? st.reason : NULL);
	mp_map_close(&e);
}
