/*
 * Handling one event in a processor's batch: its unit (read model key,
 * source stream, or the whole), whether it is selected, the plugin's call,
 * the state or stream entry written, and a unit's failure recorded with the
 * batch (failset.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sluice/errors.h>

#include "guard.h"
#include "log.h"
#include "monotime.h"
#include "proc_internal.h"

/* ---- handling one event ---- */

/*
 * The handler calls: today the plugin's callbacks in this process. Kept to
 * these functions so a remote handler can take their place.
 */
sl_outcome
proc_handler_call(processor *p, const sl_event *ev, const char *key,
    sl_state *state, sl_context *ctx)
{
	host_scratch_reset();
	proc_guard_enter(p, GUARD_PROC, key, strlen(key), ev->v->position);
	sl_outcome out = p->def->p->on(p->def->p->user, ev, key, state, ctx);
	guard_leave();
	return out;
}

int
proc_created(batch_ctx *b, int gk, const sl_event *ev,
    const char *key, sl_state *state, sl_context *ctx)
{
	processor      *p  = b->p;
	proj_created_fn fn = proj_def_created(p->def);
	if (fn == NULL)
		return SL_OK;
	host_scratch_reset();
	proc_guard_enter(p, gk, key, strlen(key), ev->v->position);
	sl_outcome out = fn(p->def->p->user, ev, key, state, ctx);
	guard_leave();
	if (out == SL_REPLACE && !ctx->failed)
		return SL_OK;
	return proc_unit_fail(b, ctx, "created: %s",
	    ctx->failed && ctx->reason[0] != '\0' ? ctx->reason
	    : out == SL_FAIL ? "failed (no reason given)"
	                     : "returned an outcome other than SL_REPLACE");
}

sl_verdict
proc_filter_call(processor *p, const sl_event *ev, const char **partition,
    sl_context *ctx)
{
	host_scratch_reset();
	const char *unit = p->partitioned ? ev->v->stream : "";
	proc_guard_enter(p, GUARD_PROC, unit, strlen(unit), ev->v->position);
	sl_verdict v = p->def->f->filter(p->def->f->user, ev, partition, ctx);
	guard_leave();
	return v;
}

/* Record a failure of the event's unit: a reason and the retry decision. */
int
proc_unit_fail(batch_ctx *b, const sl_context *ctx, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int
proc_unit_fail(batch_ctx *b, const sl_context *ctx, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(b->reason, sizeof(b->reason), fmt, ap);
	va_end(ap);
	b->uf.retry    = ctx == NULL || !ctx->no_retry;
	b->uf.delay_ms = ctx != NULL ? ctx->retry_after_ms : 0;
	return HANDLE_UNIT_FAILED;
}

void
proc_set_unit(batch_ctx *b, const char *prefix, const char *s)
{
	size_t pl = strlen(prefix), n = strlen(s);
	if (pl + n > FAILSET_UNIT_MAX)
		n = FAILSET_UNIT_MAX - pl;
	memcpy(b->uf.unit, prefix, pl);
	memcpy(b->uf.unit + pl, s, n);
	b->uf.ulen            = pl + n;
	b->uf.unit[b->uf.ulen] = '\0';
}

/* Whether the event at position of unit b->uf is to be handled in this
 * batch. A failing unit's events from its failing one on wait; those
 * before it are handled (a crash marks a unit at an event of a batch that
 * was not committed). */
bool
proc_unit_selected(batch_ctx *b, uint64_t position)
{
	processor *p = b->p;
	if (b->retrying)
		return b->uf.ulen == b->ru.ulen
		    && memcmp(b->uf.unit, b->ru.unit, b->ru.ulen) == 0;
	/* a partitioned processor's failing units wait for their retry */
	if (!p->partitioned)
		return true;
	const fail_unit *u = failset_find(&p->fails, b->uf.unit, b->uf.ulen);
	return u == NULL || position < u->pos;
}

/* The retry state of the event at position: only the failing one has it. */
void
proc_retry_state(batch_ctx *b, uint64_t position, sl_context *ctx)
{
	ctx->last_reason = "";
	if (b->retrying && position == b->ru.pos) {
		ctx->attempt     = b->ru.attempts;
		ctx->last_reason = b->ru.reason;
	}
}

int
proc_storage_failed(batch_ctx *b, int mrc, const char *what, const char *key)
{
	snprintf(b->reason, sizeof(b->reason), "%s '%.100s': %s", what, key,
	    mdb_strerror(mrc));
	/* a failed put leaves the LMDB txn unusable */
	b->storage = true;
	return mrc == MDB_MAP_FULL ? SL_EFULL : SL_ESTORAGE;
}

/* ---- the fold: states in the cache, stored by the batch's write ---- */

static int
out_of_memory(batch_ctx *b, const char *what)
{
	snprintf(b->reason, sizeof(b->reason), "%s: out of memory", what);
	b->storage = true;
	return SL_ENOMEM;
}

int
proc_state_get(batch_ctx *b, const char *key, size_t klen, const void **data,
    size_t *len)
{
	centry *x;
	return proc_state_get_at(b, key, klen, data, len, &x);
}

int
proc_state_get_at(batch_ctx *b, const char *key, size_t klen,
    const void **data, size_t *len, centry **at)
{
	processor *p = b->p;
	centry    *x = scache_find(&p->states, key, klen);
	*at          = NULL;
	if (x != NULL) {
		scache_lru_unlink(&p->states, x);
		scache_lru_front(&p->states, x);
	} else {
		MDB_val k = { klen, (void *) key }, v;
		int     mrc = mdb_get(b->rtxn, p->dbi, &k, &v);
		if (mrc != 0 && mrc != MDB_NOTFOUND)
			return proc_storage_failed(
			    b, mrc, "read model get", key);
		if ((x = scache_add(&p->states, key, klen)) == NULL)
			return out_of_memory(b, "caching a state");
		if (mrc == 0) {
			if ((x->state = malloc(v.mv_size + 1)) == NULL) {
				scache_remove(&p->states, x);
				return out_of_memory(b, "caching a state");
			}
			memcpy(x->state, v.mv_data, v.mv_size);
			x->state_len = v.mv_size;
			x->state_cap = v.mv_size + 1;
		}
	}
	*at = x;
	if (x->state == NULL)
		return SL_ENOTFOUND;
	*data = x->state;
	*len  = x->state_len;
	return SL_OK;
}

/* x waits for the batch's write. */
static void
mark_dirty(cache *c, centry *x)
{
	if (!x->dirty) {
		x->dirty = true;
		x->dnext = c->dirty;
		c->dirty = x;
	}
}

int
proc_state_set(batch_ctx *b, const char *key, size_t klen, const void *data,
    size_t len)
{
	processor *p = b->p;
	centry    *x = scache_find(&p->states, key, klen);
	if (x == NULL && (x = scache_add(&p->states, key, klen)) == NULL)
		return out_of_memory(b, "storing a state");
	if (data == NULL) {
		free(x->state);
		x->state     = NULL;
		x->state_len = 0;
		x->state_cap = 0;
	} else if (data != x->state) {
		/* the key's buffer reused: a state keeps about its size from
		 * one event to the next */
		if (x->state == NULL || len + 1 > x->state_cap) {
			void *copy = realloc(x->state, len + 1);
			if (copy == NULL)
				return out_of_memory(b, "storing a state");
			x->state     = copy;
			x->state_cap = len + 1;
		}
		memcpy(x->state, data, len);
		x->state_len = len;
	}
	mark_dirty(&p->states, x);
	return SL_OK;
}

int
proc_state_take(batch_ctx *b, centry *at, const char *key, size_t klen,
    void *data, size_t len)
{
	processor *p = b->p;
	/* the entry the state was read from for the call, not looked up
	 * again: in a remote batch the answer comes long after, cold */
	centry *x = at != NULL && at->key_len == klen
	        && memcmp(at->key, key, klen) == 0
	    ? at
	    : scache_find(&p->states, key, klen);
	if (x == NULL && (x = scache_add(&p->states, key, klen)) == NULL) {
		free(data);
		return out_of_memory(b, "storing a state");
	}
	/* no copy: a remote answer's state becomes the key's */
	free(x->state);
	x->state     = data;
	x->state_len = len;
	x->state_cap = 0; /* exactly len: the next set reallocates */
	mark_dirty(&p->states, x);
	return SL_OK;
}

bool
proc_cut(batch_ctx *b, uint64_t position)
{
	processor *p = b->p;
	/* read without the lock: set under it by commands, proc_set_def and
	 * proc_stop, which also wake the thread; seen at the next event */
	bool wake = __atomic_load_n(&p->stop, __ATOMIC_RELAXED)
	    || __atomic_load_n(&p->has_pending, __ATOMIC_RELAXED)
	    || __atomic_load_n(&p->cmds, __ATOMIC_RELAXED) != 0;
	if (p->em != NULL)
		wake = wake || proc_emit_cut(b);
	/* a system projection's clocks: once per PROC_SYS_CLOCK events */
	bool clock = p->em == NULL || !p->em->system
	    || b->sys_events++ % PROC_SYS_CLOCK == 0;
	if (clock && p->em != NULL && p->em->system)
		b->sys_now_ns = 0; /* read again at its next link */
	if (!wake
	    && (b->deadline_ns == 0 || !clock
	        || mono_coarse_ns() < b->deadline_ns))
		return false;
	b->cut    = true;
	b->cut_at = position;
	return true;
}

/* The state packed into p->buf, into the fold. */
static int
store_put(batch_ctx *b, const char *key, size_t klen, const sl_state *state)
{
	processor *p = b->p;
	if (state_pack_sbuffer(state, &p->buf) != SL_OK)
		return out_of_memory(b, "packing a state");
	return proc_state_set(b, key, klen, p->buf.data, p->buf.size);
}

int
proc_project_unit(batch_ctx *b, const ev_view *ev, char *key)
{
	int        rc;
	processor *p = b->p;
	if (proj_def_key(p->def) != NULL) {
		/* plugin code: the crash guard names the event's unit while
		 * it has no key (its stream's), and a unit a crash marked
		 * waits without calling it again */
		proc_set_unit(b, PROC_NO_KEY, ev->stream);
		if (!b->retrying && !proc_unit_selected(b, ev->position))
			return PROC_SKIP;
		struct sl_event sev = proc_sl_event(p, ev);
		int             gk  = p->em == NULL ? GUARD_PROC
		                 : p->em->mode == CFG_MODE_CONTINUOUS
		                 ? GUARD_EMITTER
		                 : GUARD_QUERY;
		proc_guard_enter(p, gk, b->uf.unit, b->uf.ulen, ev->position);
		rc = proc_key_fn_call(p->def, &sev, key, PROC_KEY_MAX);
		guard_leave();
	} else
		rc = proc_key(b->p->def, ev, key, PROC_KEY_MAX);
	if (rc == SL_ENOTFOUND)
		return PROC_SKIP; /* type not selected */
	if (rc != SL_OK) {
		/* No key: the event waits in a unit of its stream. Only a
		 * new definition (which rebuilds) can find its key. */
		proc_set_unit(b, PROC_NO_KEY, ev->stream);
		if (!proc_unit_selected(b, ev->position))
			return PROC_SKIP;
		sl_context nr = { .no_retry = true };
		return proc_unit_fail(b, &nr, "%s", key);
	}
	proc_set_unit(b, "", key);
	/* retrying the no-key unit of this event's stream, whose key a
	 * fixed key function now finds: its events are the retry's */
	if (b->retrying && b->ru.ulen > 1 && b->ru.unit[0] == PROC_NO_KEY[0]
	    && strcmp(b->ru.unit + 1, ev->stream) == 0)
		return SL_OK;
	return proc_unit_selected(b, ev->position) ? SL_OK : PROC_SKIP;
}

int
proc_event_unit(batch_ctx *b, const ev_view *ev, char *key, bool *deleting)
{
	/* a deleted stream's key goes to the deleted callback */
	int rc    = proc_deletion_unit(b, ev, key);
	*deleting = rc == SL_OK;
	return rc == SL_ENOTFOUND ? proc_project_unit(b, ev, key) : rc;
}

int
proc_filter_unit(batch_ctx *b, const ev_view *ev)
{
	processor *p = b->p;
	if (p->public_only && !ev->is_public)
		return PROC_SKIP;
	proc_set_unit(b, "", p->partitioned ? ev->stream : "");
	return proc_unit_selected(b, ev->position) ? SL_OK : PROC_SKIP;
}

/* A projection's event: the key's state through the handler. */
static int
project_event(batch_ctx *b, const ev_view *ev, uint64_t position)
{
	processor *p = b->p;
	char       key[PROC_KEY_MAX];
	bool deleting;
	int  rc = proc_event_unit(b, ev, key, &deleting);
	if (rc != SL_OK)
		return rc == PROC_SKIP ? SL_OK : rc;

	/* The state: the fold's (the stored one, or as this batch left
	 * it), or the initial one. */
	size_t      klen = strlen(key), len;
	const void *data;
	sl_state    state;
	state_init(&state);
	rc = proc_state_get(b, key, klen, &data, &len);
	bool created = rc == SL_ENOTFOUND;
	if (deleting && created)
		return SL_OK; /* no state: nothing to tell it */
	if (rc == SL_OK) {
		rc = state_load(&state, data, len);
	} else if (rc == SL_ENOTFOUND) {
		rc = state_load(&state, p->def->initial, p->def->initial_len);
	} else {
		state_free(&state);
		return rc;
	}
	if (rc != SL_OK) {
		state_free(&state);
		return proc_unit_fail(b, NULL, "cannot load the state of key '%.100s': %s",
		    key, sl_strerror(rc));
	}

	struct sl_event sev = proc_sl_event(p, ev);
	sl_context      ctx = { 0 };
	sl_state        shared;
	proc_retry_state(b, position, &ctx);
	proc_shared_begin(p, &shared, &ctx);
	if (created
	    && (rc = proc_created(b, GUARD_PROC, &sev, key, &state, &ctx))
	        != SL_OK) {
		proc_shared_end(b, &shared, &ctx, false);
		state_free(&state);
		return rc;
	}
	sl_outcome out;
	if (deleting)
		proc_deleted_call(
		    b, GUARD_PROC, key, position, &state, &ctx, &out);
	else
		out = proc_handler_call(p, &sev, key, &state, &ctx);
	/* what a failed event did to the shared state is dropped */
	rc = proc_shared_end(
	    b, &shared, &ctx, out == SL_REPLACE || out == SL_DELETE);
	if (rc != SL_OK) {
		state_free(&state);
		return rc;
	}
	switch (out) {
	case SL_REPLACE:
		rc = store_put(b, key, klen, &state);
		break;
	case SL_DELETE:
		rc = proc_state_set(b, key, klen, NULL, 0);
		break;
	case SL_FAIL:
		state_free(&state);
		return proc_unit_fail(b, &ctx, "%s",
		    ctx.reason[0] != '\0' ? ctx.reason
		                          : "handler failed (no reason given)");
	default:
		state_free(&state);
		return proc_unit_fail(b, &ctx,
		    "handler returned an unknown outcome %d", (int) out);
	}
	state_free(&state);
	if (rc != SL_OK)
		return rc;
	b->handled++;
	return SL_OK;
}

/* A filter's event: included (in which partition) or not. */
static int
filter_event(batch_ctx *b, const ev_view *ev, uint64_t position)
{
	processor *p = b->p;
	if (proc_filter_unit(b, ev) != SL_OK)
		return SL_OK;

	struct sl_event sev       = proc_sl_event(p, ev);
	sl_context      ctx       = { 0 };
	const char     *partition = NULL;
	proc_retry_state(b, position, &ctx);
	sl_verdict v = proc_filter_call(p, &sev, &partition, &ctx);
	switch (v) {
	case SL_EXCLUDED:
		b->handled++;
		return SL_OK;
	case SL_INCLUDED:
		break;
	case SL_FAILED:
		return proc_unit_fail(b, &ctx, "%s",
		    ctx.reason[0] != '\0' ? ctx.reason
		                          : "filter failed (no reason given)");
	default:
		return proc_unit_fail(b, &ctx, "filter returned an unknown verdict %d",
		    (int) v);
	}
	return proc_filter_include(b, &ctx, partition, position);
}

int
proc_filter_include(batch_ctx *b, const sl_context *ctx,
    const char *partition, uint64_t position)
{
	processor *p    = b->p;
	size_t     plen = 0;
	if (p->partitioned) {
		plen = partition != NULL ? strnlen(partition, 256) : 0;
		if (plen == 0 || plen > 255)
			return proc_unit_fail(b, ctx,
			    "filter included the event without a partition "
			    "id of 1..255 bytes");
	}
	unsigned char head[10];
	for (int i = 0; i < 8; i++)
		head[i] = (unsigned char) (position >> (56 - 8 * i));
	head[8] = (unsigned char) (plen >> 8);
	head[9] = (unsigned char) plen;
	if (msgpack_sbuffer_write(&p->appends, (const char *) head, 10) != 0
	    || (plen > 0
	        && msgpack_sbuffer_write(&p->appends, partition, plen) != 0))
		return out_of_memory(b, "appending to the stream");
	b->handled++;
	b->appended++;
	return SL_OK;
}

/*
 * Handle one event into the fold: SL_OK on success or skip;
 * HANDLE_UNIT_FAILED with b->uf and b->reason; else a storage error
 * (b->storage, the txn must be aborted).
 */
int
proc_handle_event(batch_ctx *b, uint64_t position, const void *data, size_t len)
{
	processor *p = b->p;
	ev_view    ev;
	ev_head    h;
	int        rc;

	/* what it cannot select is not decoded (a record that does not
	 * peek is decoded: that reports it) */
	/* a system projection's links are made from the stored bytes */
	ev_raw r;
	if (p->em != NULL && p->em->system && p->em->mode == CFG_MODE_CONTINUOUS
	    && p->em->only_key == NULL && ev_peek_raw(data, len, &r) == SL_OK) {
		if (!proc_selects(p, &r.h))
			return SL_OK;
		if ((rc = proc_emit_sys_raw(b, &r, position)) != PROC_SLOW)
			return rc;
	} else if (ev_peek(data, len, &h) == SL_OK && !proc_selects(p, &h)) {
		return SL_OK;
	}
	msgpack_zone_clear(&p->zone);
	if ((rc = ev_decode(data, len, position, &p->zone, &ev)) != SL_OK) {
		/* a log that cannot be read stops the processor, not a unit */
		snprintf(b->reason, sizeof(b->reason),
		    "cannot decode the event at position %" PRIu64 ": %s",
		    position, sl_strerror(rc));
		b->storage = true;
		return rc;
	}
	if (strcmp(ev.tenant, p->tenant) != 0)
		return SL_OK;
	return p->is_filter  ? filter_event(b, &ev, position)
	    : p->em != NULL ? proc_emit_event(b, &ev, position)
	                    : project_event(b, &ev, position);
}

/* The growing delay after attempt a (1: the first failure). */
int64_t
proc_retry_delay_ns(uint32_t a, uint32_t handler_ms)
{
	if (handler_ms > 0)
		return (int64_t) handler_ms * 1000000LL;
	if (a == 0 || a > 9)
		return PROC_RETRY_MAX_NS;
	int64_t d = PROC_RETRY_FIRST_NS << (a - 1);
	return d > PROC_RETRY_MAX_NS ? PROC_RETRY_MAX_NS : d;
}

/* A readable name for a unit, for logs and status. */
void
proc_unit_label(const char *unit, size_t ulen, char *out, size_t olen)
{
	if (ulen > 0 && unit[0] == '\x01')
		snprintf(out, olen, "(no key) stream %.*s", (int) (ulen - 1),
		    unit + 1);
	else
		snprintf(out, olen, "%.*s", (int) ulen, unit);
}

/* Record the failure of the event at position in memory, stored by the
 * batch's write. */
int
proc_record_failure(batch_ctx *b, uint64_t position)
{
	processor  *p   = b->p;
	fail_unit   u   = { .unit = b->uf.unit, .ulen = b->uf.ulen };
	fail_unit  *old = NULL;
	char        label[300];
	pthread_mutex_lock(&p->mu);
	old        = failset_find(&p->fails, u.unit, u.ulen);
	u.pos      = position;
	u.attempts = old != NULL && old->pos == position ? old->attempts + 1 : 1;
	p->st.failures++;
	u.retry    = b->uf.retry;
	int64_t delay = proc_retry_delay_ns(u.attempts, b->uf.delay_ms);
	u.next_try_ns = u.retry ? ev_now_ns() + delay : 0;
	snprintf(u.reason, sizeof(u.reason), "%.*s",
	    (int) sizeof(u.reason) - 1, b->reason);
	int rc = failset_put(&p->fails, p->rm, NULL, &u); /* stored with
	                                                   * the batch */
	pthread_mutex_unlock(&p->mu);
	if (rc != SL_OK) {
		snprintf(b->reason, sizeof(b->reason),
		    "recording a failure: %s", sl_strerror(rc));
		b->storage = true;
		return rc;
	}
	proc_unit_label(u.unit, u.ulen, label, sizeof(label));
	if (u.retry)
		log_warn("proc",
		    "tenant %s %s %s: position %" PRIu64 "%s of '%s' failed "
		    "(attempt %u), retry in %" PRId64 " ms: %s",
		    p->tenant, p->is_filter ? "filter" : "projection",
		    p->proj_id, position, p->rebuilding ? " (rebuild)" : "",
		    label, u.attempts, delay / 1000000, u.reason);
	else
		log_error("proc",
		    "tenant %s %s %s: position %" PRIu64 "%s of '%s' failed "
		    "and is not retried (waits for `sluice retry` or "
		    "`reset`): %s",
		    p->tenant, p->is_filter ? "filter" : "projection",
		    p->proj_id, position, p->rebuilding ? " (rebuild)" : "",
		    label, u.reason);
	return SL_OK;
}

int
proc_scan_cb(void *arg, uint64_t position, const void *data, size_t len)
{
	batch_ctx *b = arg;
	if (b->limit != 0 && position >= b->limit)
		return 1; /* a retry reached the processor's own position */
	if (proc_cut(b, position))
		return 1;
	b->bytes += len;
	int rc = proc_handle_event(b, position, data, len);
	if (rc == SL_OK) {
		b->next = position + 1;
		return proc_handled(b, position) == SL_OK ? 0 : 1;
	}
	if (rc != HANDLE_UNIT_FAILED)
		return 1; /* storage: the batch is aborted */
	return proc_failed(b, position) ? 1 : 0;
}

int
proc_handled(batch_ctx *b, uint64_t position)
{
	/* an unpartitioned processor's failing event went through */
	if (!b->retrying || b->limit != 0 || position != b->ru.pos)
		return SL_OK;
	processor *p = b->p;
	pthread_mutex_lock(&p->mu);
	int rc = failset_del(&p->fails, p->rm, NULL, b->ru.unit, b->ru.ulen);
	pthread_mutex_unlock(&p->mu);
	if (rc != SL_OK) {
		b->storage = true;
		return rc;
	}
	b->retrying = false;
	return SL_OK;
}

bool
proc_failed(batch_ctx *b, uint64_t position)
{
	if (proc_record_failure(b, position) != SL_OK)
		return true; /* storage: the batch is aborted */
	if (!b->retrying && b->p->partitioned) {
		/* the others go on (a remote answer may come after later
		 * events were sent: never move back) */
		if (b->next < position + 1)
			b->next = position + 1;
		return false;
	}
	b->failed = true; /* stop at the failing event */
	b->next   = position;
	return true;
}

