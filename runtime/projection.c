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
 * switches them over and empties the old generation in one transaction.
 *
 * Records (checkpoints db): "proj:<id>" position + def_hash of the served
 * generation; "active:<id>" the served generation; "rebuild:<id>"
 * generation + position + def_hash of a rebuild in progress, so a rebuild
 * resumes after a restart.
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

#include "host.h"
#include "log.h"

#define PROC_WAIT_MS        500           /* store_wait timeout when live */
#define PROC_RETRY_FIRST_NS 50000000LL    /* 50 ms, doubling */
#define PROC_RETRY_MAX_NS   10000000000LL /* 10 s */
#define PROC_KEY_MAX        512

struct processor {
	store          *s;
	rmstore        *rm;
	char           *tenant;
	const proj_def *def; /* held; NULL while dropped (thread-owned) */
	char            proj_id[37];
	uint32_t        batch;
	char            id[48]; /* checkpoint key: "proj:<projection id>" */
	char            rb_key[56]; /* rebuild record: "rebuild:<id>" */
	pthread_t       thr;

	/* the generation being written (thread-owned) */
	MDB_dbi  dbi;
	uint64_t gen;        /* written by batches */
	uint64_t active_gen; /* read by queries */
	bool     rebuilding; /* gen != active_gen */

	pthread_mutex_t mu; /* guards st, stop and the pending def */
	pthread_cond_t  cv; /* signalled by proc_stop and proc_set_def */
	bool            stop;
	bool            has_pending;
	const proj_def *pending; /* held; may be NULL (drop) */
	proc_status     st;

	/* thread-only state */
	msgpack_zone    zone;
	msgpack_sbuffer buf;
	char            last_reason[256]; /* handed to the plugin on retry */
	uint64_t        fail_pos; /* position of the failing event, or MAX */
};

/* What one batch did, filled while scanning. */
typedef struct batch_ctx {
	processor *p;
	MDB_txn   *txn;
	uint64_t   next;    /* position after the last event fully handled */
	uint64_t   handled; /* selected events handled in this batch */
	bool       failed;  /* the event at `next` failed */
	bool       storage; /* ... and the txn must be aborted */
	bool       swapped; /* the rebuild caught up and is now served */
	char       reason[640];
} batch_ctx;

const char *
proc_state_name(proc_state s)
{
	switch (s) {
	case PROC_STARTING:
		return "starting";
	case PROC_CATCHING_UP:
		return "catching_up";
	case PROC_LIVE:
		return "live";
	case PROC_FAILING:
		return "failing";
	case PROC_STOPPED:
		return "stopped";
	case PROC_REBUILDING:
		return "rebuilding";
	case PROC_PAUSED:
		return "paused";
	case PROC_FAILED:
		return "failed";
	}
	return "unknown";
}

/* ---- keys ---- */

static const sl_selector *
find_selector(const proj_def *def, const char *type)
{
	for (size_t i = 0; i < def->p->n_selectors; i++) {
		const sl_selector *sel = &def->p->selectors[i];
		if (sel->event_type != NULL
		    && strcmp(sel->event_type, type) == 0)
			return sel;
	}
	return NULL;
}

/* A reason in the key buffer, cut to fit: callers may pass a small one. */
static void
key_reason(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void
key_reason(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

static int
key_copy(const char *s, size_t n, char *buf, size_t len, const char *what)
{
	if (n == 0) {
		snprintf(buf, len, "%s is empty: no read model key", what);
		return SL_EINVAL;
	}
	if (n >= len || n >= PROC_KEY_MAX) {
		key_reason(buf, len, "%s is too long for a key (%zu bytes)",
		    what, n);
		return SL_EINVAL;
	}
	if (memchr(s, '\0', n) != NULL) {
		snprintf(buf, len, "%s contains a NUL byte", what);
		return SL_EINVAL;
	}
	memmove(buf, s, n);
	buf[n] = '\0';
	return SL_OK;
}

static int
key_property(const sl_selector *sel, const ev_view *ev, char *buf, size_t len)
{
	const char           *path = sel->arg != NULL ? sel->arg : "";
	const msgpack_object *o    = host_path(&ev->content, path);
	char                  num[32];
	if (o == NULL) {
		snprintf(buf, len,
		    "key property '%s' is missing in event type %s", path,
		    ev->type);
		return SL_EINVAL;
	}
	switch (o->type) {
	case MSGPACK_OBJECT_STR:
		return key_copy(
		    o->via.str.ptr, o->via.str.size, buf, len, "key property");
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		snprintf(num, sizeof(num), "%" PRIu64, o->via.u64);
		return key_copy(num, strlen(num), buf, len, "key property");
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		snprintf(num, sizeof(num), "%" PRId64, o->via.i64);
		return key_copy(num, strlen(num), buf, len, "key property");
	default:
		snprintf(buf, len,
		    "key property '%s' in event type %s is not a string or "
		    "an integer",
		    path, ev->type);
		return SL_EINVAL;
	}
}

static int
key_occurred(const sl_selector *sel, const ev_view *ev, char *buf, size_t len)
{
	int64_t   ns   = ev->occurred_ns;
	time_t    secs = (time_t) (ns / 1000000000LL);
	struct tm tm;
	if (ns % 1000000000LL < 0)
		secs--; /* floor for times before the epoch */
	if (sel->arg == NULL || gmtime_r(&secs, &tm) == NULL) {
		snprintf(buf, len, "occurred key: no pattern or bad time");
		return SL_EINVAL;
	}
	char   tmp[PROC_KEY_MAX];
	size_t n = strftime(tmp, sizeof(tmp), sel->arg, &tm);
	return key_copy(tmp, n, buf, len, "occurred key pattern result");
}

int
proc_key(const proj_def *def, const ev_view *ev, char *buf, size_t len)
{
	if (len == 0)
		return SL_EINVAL;
	buf[0]                 = '\0';
	const sl_selector *sel = find_selector(def, ev->type);
	if (sel == NULL)
		return SL_ENOTFOUND;
	switch (sel->key) {
	case SL_KEY_EVENT_SOURCE:
	case SL_KEY_PARTITION: /* the log's partition is the stream */
		return key_copy(ev->stream, strlen(ev->stream), buf, len,
		    "event source id");
	case SL_KEY_PROPERTY:
		return key_property(sel, ev, buf, len);
	case SL_KEY_STATIC:
		if (sel->arg == NULL) {
			snprintf(buf, len, "static key selector has no key");
			return SL_EINVAL;
		}
		return key_copy(
		    sel->arg, strlen(sel->arg), buf, len, "static key");
	case SL_KEY_OCCURRED:
		return key_occurred(sel, ev, buf, len);
	}
	snprintf(buf, len, "unknown key selector kind %d", (int) sel->key);
	return SL_EINVAL;
}

/* ---- status ---- */

static void
set_state(processor *p, proc_state s)
{
	pthread_mutex_lock(&p->mu);
	p->st.state = s;
	pthread_mutex_unlock(&p->mu);
}

static bool
stopping(processor *p)
{
	pthread_mutex_lock(&p->mu);
	bool s = p->stop;
	pthread_mutex_unlock(&p->mu);
	return s;
}

/* Stop asked, or another definition waiting to be taken. */
static bool
interrupted(processor *p)
{
	pthread_mutex_lock(&p->mu);
	bool s = p->stop || p->has_pending;
	pthread_mutex_unlock(&p->mu);
	return s;
}

/*
 * Record a failure and sleep the retry delay (50 ms doubling, at most 10 s),
 * or less if proc_stop is called or another definition arrives (it may be
 * the fix).
 */
static void
fail_and_wait(processor *p, uint64_t position, const char *reason)
{
	pthread_mutex_lock(&p->mu);
	if (position != p->fail_pos)
		p->st.attempts = 0; /* another event than the last failure */
	p->fail_pos = position;
	p->st.attempts++;
	uint32_t a = p->st.attempts;
	int64_t  delay
	    = a > 9 ? PROC_RETRY_MAX_NS : PROC_RETRY_FIRST_NS << (a - 1);
	if (delay > PROC_RETRY_MAX_NS)
		delay = PROC_RETRY_MAX_NS;
	snprintf(p->st.reason, sizeof(p->st.reason), "%s", reason);
	snprintf(p->last_reason, sizeof(p->last_reason), "%s", reason);
	p->st.state         = PROC_FAILING;
	p->st.next_retry_ns = ev_now_ns() + delay;
	pthread_mutex_unlock(&p->mu);

	log_warn("proc",
	    "tenant %s projection %s (%s): position %" PRIu64
	    "%s failed (attempt %u), retry in %" PRId64 " ms: %s",
	    p->tenant, p->proj_id,
	    p->def != NULL && p->def->name != NULL ? p->def->name : "",
	    position, p->rebuilding ? " (rebuild)" : "", a, delay / 1000000,
	    reason);

	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	int64_t ns = (int64_t) until.tv_nsec + delay % 1000000000LL;
	until.tv_sec += (time_t) (delay / 1000000000LL + ns / 1000000000LL);
	until.tv_nsec = (long) (ns % 1000000000LL);
	pthread_mutex_lock(&p->mu);
	while (!p->stop && !p->has_pending) {
		if (pthread_cond_timedwait(&p->cv, &p->mu, &until)
		    == ETIMEDOUT)
			break;
	}
	pthread_mutex_unlock(&p->mu);
}

/* ---- handling one event ---- */

/*
 * The handler call: today the plugin's on() in this process. Kept to this one
 * function so a remote handler can take its place.
 */
static sl_outcome
handler_call(processor *p, const sl_event *ev, const char *key,
    sl_state *state, sl_context *ctx)
{
	host_scratch_reset();
	return p->def->p->on(p->def->p->user, ev, key, state, ctx);
}

/* Handle one event in b->txn. SL_OK on success or skip; else b->failed. */
static int
handle_event(batch_ctx *b, uint64_t position, const void *data, size_t len)
{
	processor *p = b->p;
	ev_view    ev;
	char       key[PROC_KEY_MAX];
	int        rc;

	msgpack_zone_clear(&p->zone);
	if ((rc = ev_decode(data, len, position, &p->zone, &ev)) != SL_OK) {
		snprintf(b->reason, sizeof(b->reason),
		    "cannot decode the event at position %" PRIu64 ": %s",
		    position, sl_strerror(rc));
		return rc;
	}
	if (strcmp(ev.tenant, p->tenant) != 0)
		return SL_OK;
	rc = proc_key(p->def, &ev, key, sizeof(key));
	if (rc == SL_ENOTFOUND)
		return SL_OK; /* type not selected */
	if (rc != SL_OK) {
		snprintf(b->reason, sizeof(b->reason), "%s", key);
		return rc;
	}

	/* The state: the stored one (seeing this txn's writes), or initial. */
	MDB_val  k = { strlen(key), key }, v;
	sl_state state;
	state_init(&state);
	int mrc = mdb_get(b->txn, p->dbi, &k, &v);
	if (mrc == 0) {
		rc = state_load(&state, v.mv_data, v.mv_size);
	} else if (mrc == MDB_NOTFOUND) {
		rc = state_load(&state, p->def->initial, p->def->initial_len);
	} else {
		snprintf(b->reason, sizeof(b->reason), "read model get: %s",
		    mdb_strerror(mrc));
		b->storage = true;
		state_free(&state);
		return SL_ESTORAGE;
	}
	if (rc != SL_OK) {
		snprintf(b->reason, sizeof(b->reason),
		    "cannot load the state of key '%.100s': %s", key,
		    sl_strerror(rc));
		state_free(&state);
		return rc;
	}

	struct sl_event sev = { .v = &ev, .partition = ev.stream };
	sl_context      ctx = { 0 };
	/* Retry state belongs to the failing event only. */
	if (position == p->fail_pos) {
		pthread_mutex_lock(&p->mu);
		ctx.attempt = p->st.attempts;
		pthread_mutex_unlock(&p->mu);
		ctx.last_reason = p->last_reason;
	} else {
		ctx.last_reason = "";
	}
	sl_outcome out = handler_call(p, &sev, key, &state, &ctx);

	switch (out) {
	case SL_REPLACE:
		p->buf.size = 0;
		{
			msgpack_packer pk;
			msgpack_packer_init(
			    &pk, &p->buf, msgpack_sbuffer_write);
			state_pack(&state, &pk);
		}
		v.mv_size = p->buf.size;
		v.mv_data = p->buf.data;
		mrc       = mdb_put(b->txn, p->dbi, &k, &v, 0);
		break;
	case SL_DELETE:
		mrc = mdb_del(b->txn, p->dbi, &k, NULL);
		if (mrc == MDB_NOTFOUND)
			mrc = 0;
		break;
	case SL_FAIL:
		snprintf(b->reason, sizeof(b->reason), "%s",
		    ctx.reason[0] != '\0'
		        ? ctx.reason
		        : "handler failed (no reason given)");
		state_free(&state);
		return SL_EPLUGIN;
	default:
		snprintf(b->reason, sizeof(b->reason),
		    "handler returned an unknown outcome %d", (int) out);
		state_free(&state);
		return SL_EPLUGIN;
	}
	state_free(&state);
	if (mrc != 0) {
		snprintf(b->reason, sizeof(b->reason),
		    "storing key '%.100s': %s", key, mdb_strerror(mrc));
		/* a failed put leaves the LMDB txn unusable */
		b->storage = true;
		return mrc == MDB_MAP_FULL ? SL_EFULL : SL_ESTORAGE;
	}
	b->handled++;
	return SL_OK;
}

static int
scan_cb(void *arg, uint64_t position, const void *data, size_t len)
{
	batch_ctx *b = arg;
	if (handle_event(b, position, data, len) != SL_OK) {
		b->failed = true;
		return 1; /* stop the scan at the failing event */
	}
	b->next = position + 1;
	return 0;
}

/* ---- the thread ---- */

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

/*
 * Read the checkpoint, the active generation and any rebuild record, decide
 * how this definition goes on, create the generation's db and write the
 * decision. Only this processor writes these records, so what the read
 * transaction saw still holds when the write transaction begins.
 */
static int
setup(processor *p, char *reason, size_t rlen)
{
	const proj_def *d = p->def;
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
	int arc = rm_active_read(p->rm, txn, p->proj_id, &act);
	int rrc = rm_record_read(p->rm, txn, p->rb_key, rb, 3);
	mdb_txn_abort(txn);
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
	} else if (crc == SL_OK && cp.def_hash == H) {
		plan = PLAN_CONTINUE;
		gen  = act;
		pos  = cp.position;
	} else if (rrc == SL_OK && rb[2] == H && (rb[0] & 1) != (act & 1)) {
		plan = PLAN_RESUME;
		gen  = rb[0];
		pos  = rb[1];
	} else {
		plan = PLAN_REBUILD;
		gen  = act + 1;
	}

	int rc;
	if (plan == PLAN_FRESH
	    && (rc = rm_legacy_delete(p->rm, p->proj_id)) != SL_OK)
		return storage_reason(
		    reason, rlen, "deleting the old-layout read models", rc);
	if ((rc = rm_gen_dbi(p->rm, p->proj_id, gen, true, &p->dbi)) != SL_OK)
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
		rc = rm_gen_clear(p->rm, txn, p->proj_id, gen);
		if (rc == SL_OK)
			rc = rm_active_write(p->rm, txn, p->proj_id, gen);
		if (rc == SL_OK)
			rc = rm_checkpoint_write(p->rm, txn, p->id, &start);
		if (rc == SL_OK)
			rc = rm_record_del(p->rm, txn, p->rb_key);
		break;
	case PLAN_CONTINUE:
		/* a rebuild of another definition was abandoned */
		rc = SL_OK;
		if (rrc == SL_OK) {
			if ((rb[0] & 1) != (act & 1))
				rc = rm_gen_clear(
				    p->rm, txn, p->proj_id, rb[0]);
			if (rc == SL_OK)
				rc = rm_record_del(p->rm, txn, p->rb_key);
		}
		break;
	case PLAN_REBUILD:
		rc = rm_gen_clear(p->rm, txn, p->proj_id, gen);
		if (rc == SL_OK)
			rc = rm_record_write(p->rm, txn, p->rb_key, rec, 3);
		break;
	case PLAN_RESUME:
		rc = SL_OK;
		break;
	}
	if (rc == SL_OK) {
		mrc = mdb_txn_commit(txn);
		if (mrc != 0)
			rc = mrc == MDB_MAP_FULL ? SL_EFULL : SL_ESTORAGE;
	} else {
		mdb_txn_abort(txn);
	}
	if (rc != SL_OK)
		return storage_reason(
		    reason, rlen, "cannot read or reset the checkpoint", rc);

	p->gen        = gen;
	p->active_gen = plan == PLAN_FRESH ? gen : act;
	p->rebuilding = plan == PLAN_REBUILD || plan == PLAN_RESUME;
	if (plan == PLAN_REBUILD)
		log_info("proc",
		    "tenant %s projection %s (%s): definition changed "
		    "(hash %016" PRIx64 " -> %016" PRIx64
		    "), rebuilding from position 0 as generation %" PRIu64
		    "; queries read generation %" PRIu64 " (at %" PRIu64
		    ") until it has caught up",
		    p->tenant, p->proj_id, d->name ? d->name : "", cp.def_hash,
		    H, gen, act, cp.position);
	else if (plan == PLAN_RESUME)
		log_info("proc",
		    "tenant %s projection %s (%s): resuming the rebuild of "
		    "generation %" PRIu64 " at position %" PRIu64,
		    p->tenant, p->proj_id, d->name ? d->name : "", gen, pos);
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
	pthread_mutex_unlock(&p->mu);
	return SL_OK;
}

/*
 * Where a batch's progress goes: the served checkpoint, or the rebuild
 * record; and the switch-over when a rebuild has caught up (caught_up: the
 * scan reached the end of the log with nothing failing).
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
	int rc = rm_active_write(p->rm, b->txn, p->proj_id, p->gen);
	if (rc == SL_OK)
		rc = rm_checkpoint_write(p->rm, b->txn, p->id, &cp);
	if (rc == SL_OK)
		rc = rm_record_del(p->rm, b->txn, p->rb_key);
	if (rc == SL_OK)
		rc = rm_gen_clear(p->rm, b->txn, p->proj_id, p->active_gen);
	if (rc == SL_OK)
		b->swapped = true;
	return rc;
}

/*
 * One batch from pos: handle up to p->batch events in one transaction and
 * move the checkpoint past what succeeded. @return SL_OK (maybe with
 * b->failed: committed up to the failing event), or an error with nothing
 * committed (reason in b).
 */
static int
run_batch(processor *p, uint64_t pos, batch_ctx *b)
{
	memset(b, 0, sizeof(*b));
	b->p    = p;
	b->next = pos;
	int mrc = mdb_txn_begin(rm_env(p->rm), NULL, 0, &b->txn);
	if (mrc != 0) {
		snprintf(b->reason, sizeof(b->reason), "begin: %s",
		    mdb_strerror(mrc));
		return SL_ESTORAGE;
	}
	uint64_t scanned_to = pos;
	int      rc = store_scan(p->s, pos, p->batch, scan_cb, b, &scanned_to);
	if (!b->failed && rc != SL_OK) {
		snprintf(b->reason, sizeof(b->reason), "reading the log: %s",
		    sl_strerror(rc));
		mdb_txn_abort(b->txn);
		return rc;
	}
	if (b->storage) {
		mdb_txn_abort(b->txn);
		return SL_ESTORAGE;
	}
	/* fewer events than asked for: the scan saw the end of the log */
	bool caught_up = !b->failed && scanned_to - pos < p->batch;
	rc             = write_progress(p, b, caught_up);
	if (rc != SL_OK) {
		snprintf(b->reason, sizeof(b->reason),
		    "writing the checkpoint: %s", sl_strerror(rc));
		mdb_txn_abort(b->txn);
		b->swapped = false;
		return rc;
	}
	if ((mrc = mdb_txn_commit(b->txn)) != 0) {
		snprintf(b->reason, sizeof(b->reason), "commit: %s",
		    mdb_strerror(mrc));
		b->swapped = false;
		return mrc == MDB_MAP_FULL ? SL_EFULL : SL_ESTORAGE;
	}
	return SL_OK;
}

/* After a committed switch-over: the new generation is the served one. */
static void
rebuild_done(processor *p, uint64_t pos)
{
	log_info("proc",
	    "tenant %s projection %s (%s): generation %" PRIu64
	    " rebuilt up to position %" PRIu64
	    ", now served (generation %" PRIu64 " emptied)",
	    p->tenant, p->proj_id, p->def->name ? p->def->name : "", p->gen,
	    pos, p->active_gen);
	p->active_gen = p->gen;
	p->rebuilding = false;
	pthread_mutex_lock(&p->mu);
	p->st.rebuilding = false;
	p->st.generation = p->gen;
	pthread_mutex_unlock(&p->mu);
}

/* Fold the log with the current definition until interrupted. */
static void
process(processor *p)
{
	uint64_t  pos;
	batch_ctx b;
	pthread_mutex_lock(&p->mu);
	p->fail_pos       = UINT64_MAX;
	p->last_reason[0] = '\0';
	pos               = p->st.position;
	pthread_mutex_unlock(&p->mu);

	while (!interrupted(p)) {
		uint64_t head = store_next_position(p->s);
		/* a rebuild that has caught up still runs one (empty) batch:
		 * that is where it switches over */
		if (head <= pos && !p->rebuilding) {
			set_state(p, PROC_LIVE);
			store_wait(p->s, pos, PROC_WAIT_MS);
			continue;
		}
		int rc = run_batch(p, pos, &b);
		if (rc != SL_OK) {
			fail_and_wait(p, pos, b.reason);
			continue;
		}
		pos = b.next;
		if (b.swapped)
			rebuild_done(p, pos);
		pthread_mutex_lock(&p->mu);
		p->st.position = pos;
		if (!p->rebuilding)
			p->st.served_position = pos;
		p->st.events_handled += b.handled;
		if (b.failed) {
			pthread_mutex_unlock(&p->mu);
			fail_and_wait(p, pos, b.reason);
			continue;
		}
		p->st.attempts      = 0;
		p->st.next_retry_ns = 0;
		p->st.reason[0]     = '\0';
		p->fail_pos         = UINT64_MAX;
		p->last_reason[0]   = '\0';
		/* live while it keeps up, catching up when a batch behind */
		head = store_next_position(p->s);
		if (p->rebuilding)
			p->st.state = PROC_REBUILDING;
		else if (pos >= head)
			p->st.state = PROC_LIVE;
		else if (head - pos > p->batch || p->st.state != PROC_LIVE)
			p->st.state = PROC_CATCHING_UP;
		pthread_mutex_unlock(&p->mu);
	}
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
		    "tenant %s projection %s (%s): switching to the reloaded "
		    "code (definition %016" PRIx64 ")",
		    p->tenant, p->proj_id, p->def->name ? p->def->name : "",
		    p->def->def_hash);
	else
		log_info("proc",
		    "tenant %s projection %s: dropped by its plugin; stopped "
		    "(its read models are still served)",
		    p->tenant, p->proj_id);
	proj_def_release(old);
	return true;
}

/* Dropped: wait for a definition (or the stop). */
static void
wait_for_def(processor *p)
{
	pthread_mutex_lock(&p->mu);
	p->st.state = PROC_STOPPED;
	while (!p->stop && !p->has_pending)
		pthread_cond_wait(&p->cv, &p->mu);
	pthread_mutex_unlock(&p->mu);
}

static void *
proc_thread(void *arg)
{
	processor *p = arg;
	char       reason[256];

	while (!stopping(p)) {
		take_pending(p);
		if (p->def == NULL) {
			wait_for_def(p);
			continue;
		}
		int rc;
		while ((rc = setup(p, reason, sizeof(reason))) != SL_OK
		    && !interrupted(p))
			fail_and_wait(p, 0, reason);
		if (rc == SL_OK)
			process(p);
	}
	set_state(p, PROC_STOPPED);
	return NULL;
}

int
proc_start(store *s, rmstore *rm, const char *tenant, const proj_def *def,
    uint32_t batch, processor **out)
{
	*out = NULL;
	if (s == NULL || rm == NULL || tenant == NULL || def == NULL
	    || def->p == NULL || def->p->on == NULL)
		return SL_EINVAL;
	processor *p = calloc(1, sizeof(*p));
	if (p == NULL)
		return SL_ENOMEM;
	p->s        = s;
	p->rm       = rm;
	p->def      = def;
	p->batch    = batch > 0 ? batch : 1000;
	p->tenant   = strdup(tenant);
	p->fail_pos = UINT64_MAX;
	snprintf(p->proj_id, sizeof(p->proj_id), "%s", def->id);
	snprintf(p->id, sizeof(p->id), "proj:%s", def->id);
	snprintf(p->rb_key, sizeof(p->rb_key), "rebuild:%s", def->id);
	if (p->tenant == NULL || !msgpack_zone_init(&p->zone, 4096)) {
		free(p->tenant);
		free(p);
		return SL_ENOMEM;
	}
	msgpack_sbuffer_init(&p->buf);
	pthread_mutex_init(&p->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->cv, &ca);
	pthread_condattr_destroy(&ca);
	p->st.tenant = p->tenant;
	p->st.def    = def;
	p->st.state  = PROC_STARTING;
	proj_def_hold(def);
	int rc = pthread_create(&p->thr, NULL, proc_thread, p);
	if (rc != 0) {
		log_error("proc", "pthread_create: %s", strerror(rc));
		proj_def_release(def);
		pthread_cond_destroy(&p->cv);
		pthread_mutex_destroy(&p->mu);
		msgpack_sbuffer_destroy(&p->buf);
		msgpack_zone_destroy(&p->zone);
		free(p->tenant);
		free(p);
		return SL_ENOMEM;
	}
	log_debug("proc", "started tenant %s projection %s (%s)", tenant,
	    def->id, def->name != NULL ? def->name : "");
	*out = p;
	return SL_OK;
}

void
proc_set_def(processor *p, const proj_def *def)
{
	if (p == NULL)
		return;
	proj_def_hold(def);
	pthread_mutex_lock(&p->mu);
	const proj_def *superseded = p->has_pending ? p->pending : NULL;
	p->pending                 = def;
	p->has_pending             = true;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	proj_def_release(superseded);
	/* a live processor waits on the store's head */
	store_wake_all(p->s);
}

void
proc_stop(processor *p)
{
	if (p == NULL)
		return;
	pthread_mutex_lock(&p->mu);
	p->stop = true;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	store_wake_all(p->s);
	pthread_join(p->thr, NULL);
	proj_def_release(p->def);
	if (p->has_pending)
		proj_def_release(p->pending);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	msgpack_sbuffer_destroy(&p->buf);
	msgpack_zone_destroy(&p->zone);
	free(p->tenant);
	free(p);
}

void
proc_get_status(processor *p, proc_status *out)
{
	pthread_mutex_lock(&p->mu);
	*out = p->st;
	pthread_mutex_unlock(&p->mu);
}

const char *
proc_projection_id(const processor *p)
{
	return p->proj_id;
}

const char *
proc_tenant(const processor *p)
{
	return p->tenant;
}
