/*
 * One event of an emitting projection's processor (proc_emit.c has its
 * writes): the key's state from the fold or the log's env, the handler
 * (or created / deleted) with host->emit and link_to going to the batch
 * being built, the result transform and its Result / ResultRemoved
 * events, the shared state; what a failed event emitted is dropped.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/errors.h>

#include "emitter.h"
#include "guard.h"
#include "proc_internal.h"
#include "sysfeed.h"
#include "sysproj.h"

/* ---- one event ---- */

/* What host->emit / link_to write: the batch being built. */
static int
sink_write(emit_sink *k, const char *stream, const char *type,
    const void *content, size_t len, const void *meta, size_t meta_len,
    char *err, size_t errlen)
{
	processor *p  = k->arg;
	proc_emit *em = p->em;
	if (em->mode == CFG_MODE_ONE_TIME)
		return SL_OK; /* a query writes nothing */
	if (strncmp(stream, em->rprefix, strlen(em->rprefix)) == 0
	    || eproj_is_result_stream(em->rroot, em->rpat, stream)) {
		snprintf(
		    err, errlen, "result streams are written by the host");
		return SL_EINVAL;
	}
	struct ebatch *b = proc_ebatch_get(em);
	int     rc = b != NULL
	        ? proc_ebatch_append(
	              b, stream, type, content, len, meta, meta_len, em->cur)
	        : SL_ENOMEM;
	if (rc != SL_OK)
		snprintf(err, errlen, "out of memory");
	return rc;
}

/* Whether the projection writes stream itself (its events are not
 * handled). */
static bool
own_stream(const proc_emit *em, const char *stream)
{
	if (strncmp(stream, em->rprefix, strlen(em->rprefix)) == 0
	    || eproj_is_result_stream(em->rroot, em->rpat, stream))
		return true;
	for (size_t i = 0; i < em->n_emits; i++)
		if (host_stream_matches(em->emits[i], stream))
			return true;
	return false;
}

static int
copy_cb(void *arg, const void *key, size_t key_len, const void *val,
    size_t val_len)
{
	(void) key;
	(void) key_len;
	centry *x = arg;
	if ((x->state = malloc(val_len > 0 ? val_len : 1)) == NULL)
		return SL_ENOMEM;
	memcpy(x->state, val, val_len);
	x->state_len = val_len;
	x->state_cap = 0;
	return 0;
}

/* The fold's entry of key: cached, else the stored state, else none. */
static int
emit_entry(batch_ctx *b, const char *key, size_t n, centry **out)
{
	processor *p = b->p;
	proc_emit *em = p->em;
	pthread_mutex_lock(&em->cmu);
	centry *x = scache_find(&p->states, key, n);
	if (x != NULL) {
		scache_lru_unlink(&p->states, x);
		scache_lru_front(&p->states, x);
	} else if ((x = scache_add(&p->states, key, n)) != NULL
	    && em->mode == CFG_MODE_CONTINUOUS) {
		int rc = store_get_pstate(
		    p->s, p->tenant, p->proj_id, key, n, copy_cb, x);
		if (rc != SL_OK && rc != SL_ENOTFOUND) {
			scache_remove(&p->states, x);
			pthread_mutex_unlock(&em->cmu);
			snprintf(b->reason, sizeof(b->reason),
			    "cannot load the state of key '%.100s': %s", key,
			    sl_strerror(rc));
			b->storage = true;
			return rc == SL_ENOMEM ? rc : SL_ESTORAGE;
		}
	}
	pthread_mutex_unlock(&em->cmu);
	if (x == NULL) {
		snprintf(b->reason, sizeof(b->reason), "out of memory");
		b->storage = true;
		return SL_ENOMEM;
	}
	*out = x;
	return SL_OK;
}

static bool
same_bytes(const void *a, size_t an, const void *b, size_t bn)
{
	if (a == NULL || b == NULL)
		return a == b;
	return an == bn && memcmp(a, b, an) == 0;
}

/* Packed bytes of a state (malloc'ed). */
static void *
pack_state(const sl_state *st, size_t *len)
{
	msgpack_sbuffer sb;
	msgpack_packer  pk;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	state_pack(st, &pk);
	*len = sb.size;
	return sb.data; /* the sbuffer's malloc'ed bytes, now ours */
}

int
proc_emit_result(proj_result_fn fn, const proj_def *def, const char *key,
    const void *state, size_t len, void **out, size_t *out_len, char *why,
    size_t whylen)
{
	*out     = NULL;
	*out_len = 0;
	if (fn == NULL)
		return SL_OK;
	sl_state st, res;
	state_init(&st);
	state_init(&res);
	if (state == NULL) {
		state = def->initial;
		len   = def->initial_len;
	}
	int rc = state_load(&st, state, len);
	if (rc != SL_OK) {
		snprintf(
		    why, whylen, "the state of key '%.100s' is corrupt", key);
		state_free(&st);
		return SL_EPLUGIN;
	}
	host_scratch_reset();
	proj_result_reason_fn rf        = proj_def_result_reason(def);
	char                  pwhy[400] = "";
	sl_outcome            o;
	if (rf != NULL)
		o = rf(def->p->user, key, &st, &res, pwhy, sizeof(pwhy));
	else
		o = fn(def->p->user, key, &st, &res);
	if (o == SL_REPLACE) {
		*out = pack_state(&res, out_len);
		if (*out == NULL)
			rc = SL_ENOMEM;
	} else if (o == SL_FAIL && pwhy[0] != '\0') {
		pwhy[sizeof(pwhy) - 1] = '\0'; /* the plugin's text */
		snprintf(
		    why, whylen, "%s (the result of key '%.100s')", pwhy, key);
		rc = SL_EPLUGIN;
	} else if (o != SL_DELETE) {
		snprintf(why, whylen,
		    "result transform of key '%.100s' returned %d (not "
		    "SL_REPLACE or SL_DELETE)",
		    key, (int) o);
		rc = SL_EPLUGIN;
	}
	state_free(&st);
	state_free(&res);
	return rc;
}

/*
 * Write key's result res (NULL: it went away: ResultRemoved, content {})
 * to its result stream: for a projection whose keys are all static (one
 * state: EventStoreDB's unpartitioned projection) the root one
 * ("$projections-<name>-result" by default); else the partition pattern
 * with the key ("$projections-<name>-<key>-result"), and, as
 * EventStoreDB's ResultEventEmitter does, a link to it in the root one
 * (its revision is the writer's: proc_ebatch_link_prev).
 */
static int
emit_result(proc_emit *em, const char *key, const void *res, size_t len,
    const ev_view *ev)
{
	static const unsigned char empty_map = 0x80;
	struct ebatch *eb = proc_ebatch_get(em);
	char          *stream;
	if (em->root_result)
		stream = strdup(em->rroot);
	else
		stream = eproj_partition_stream(em->rpat, key);
	int rc = eb == NULL || stream == NULL ? SL_ENOMEM
	    : res != NULL
	    ? proc_ebatch_append(eb, stream, "Result", res, len, NULL, 0, ev)
	    : proc_ebatch_append(
	        eb, stream, "ResultRemoved", &empty_map, 1, NULL, 0, ev);
	free(stream);
	if (rc == SL_OK && !em->root_result)
		rc = proc_ebatch_link_prev(eb, em->rroot, ev);
	return rc;
}

/*
 * The key's new state nstate (nlen; NULL: deleted) replaces x's: its
 * result, when it changed too, is emitted to the key's result stream.
 * Takes nstate. SL_OK, HANDLE_UNIT_FAILED (the transform failed), or
 * SL_ENOMEM (b->storage).
 */
static int
emit_new_state(batch_ctx *b, centry *x, const char *key, const ev_view *ev,
    void *nstate, size_t nlen)
{
	processor *p    = b->p;
	proc_emit *em   = p->em;
	void      *nres = NULL, *ores = NULL;
	size_t     nres_len = 0, ores_len = 0;
	char       why[512];
	int        rc = SL_OK;
	if (em->result != NULL) {
		if ((!x->result_known
		        && proc_emit_result(em->result, p->def, key, x->state,
		               x->state_len, &ores, &ores_len, why,
		               sizeof(why))
		            != SL_OK)
		    || (nstate != NULL
		        && proc_emit_result(em->result, p->def, key, nstate,
		               nlen, &nres, &nres_len, why, sizeof(why))
		            != SL_OK)) {
			free(ores);
			free(nres);
			free(nstate);
			/* result_reason's failure is the transform's verdict
			 * on the state: a retry gives the same */
			sl_context nr = { .no_retry = true };
			return proc_unit_fail(b,
			    proj_def_result_reason(p->def) != NULL ? &nr
			                                           : NULL,
			    "%s", why);
		}
		if (x->result_known) {
			ores      = x->result;
			ores_len  = x->result_len;
			x->result = NULL;
		}
		/* a result written, or removed (EventStoreDB's Result and
		 * ResultRemoved) */
		if (em->mode != CFG_MODE_ONE_TIME
		    && !same_bytes(ores, ores_len, nres, nres_len))
			rc = emit_result(em, key, nres, nres_len, ev);
		free(ores);
	}
	if (rc != SL_OK) {
		free(nres);
		free(nstate);
		snprintf(b->reason, sizeof(b->reason), "out of memory");
		b->storage = true;
		return rc;
	}
	pthread_mutex_lock(&em->cmu);
	free(x->state);
	x->state     = nstate;
	x->state_len = nlen;
	x->state_cap = 0;
	free(x->result);
	x->result       = nres;
	x->result_len   = nres_len;
	x->result_known = em->result != NULL;
	if (!x->dirty) {
		x->dirty        = true;
		x->dnext        = p->states.dirty;
		p->states.dirty = x;
	}
	pthread_mutex_unlock(&em->cmu);
	return SL_OK;
}

int
proc_emit_event(batch_ctx *b, const ev_view *ev, uint64_t position)
{
	processor *p  = b->p;
	proc_emit *em = p->em;
	char       key[PROC_KEY_MAX];
	if (own_stream(em, ev->stream))
		return SL_OK;
	/* the event this projection crashed on in the last run waits for
	 * an operator (guard.h); with a key function, which may be what
	 * crashed, in its stream's unit and without calling it again */
	char why[256];
	bool crashed = em->mode == CFG_MODE_CONTINUOUS
	    && guard_emitter_crashed(
	        p->tenant, p->proj_id, position, why, sizeof(why));
	sl_context nr = { .no_retry = true };
	if (crashed && proj_def_key(p->def) != NULL) {
		proc_set_unit(b, PROC_NO_KEY, ev->stream);
		return proc_unit_selected(b, position)
		    ? proc_unit_fail(b, &nr, "%s", why)
		    : SL_OK;
	}
	bool deleting;
	int  rc = proc_event_unit(b, ev, key, &deleting);
	if (rc != SL_OK)
		return rc == PROC_SKIP ? SL_OK : rc;
	size_t kn = strlen(key);
	if (em->only_key != NULL
	    && (kn != em->only_len || memcmp(key, em->only_key, kn) != 0))
		return SL_OK;
	if (crashed)
		return proc_unit_fail(b, &nr, "%s", why);
	centry *x;
	if ((rc = emit_entry(b, key, kn, &x)) != SL_OK)
		return rc;
	if (deleting && x->state == NULL)
		return SL_OK; /* no state: nothing to tell it */
	sl_state st;
	state_init(&st);
	rc = x->state != NULL
	    ? state_load(&st, x->state, x->state_len)
	    : state_load(&st, p->def->initial, p->def->initial_len);
	if (rc != SL_OK) {
		state_free(&st);
		return proc_unit_fail(
		    b, &nr, "the state of key '%.100s' is corrupt", key);
	}

	size_t     mark = proc_ebatch_mark(em);
	sl_context ctx;
	sl_state   shared;
	memset(&ctx, 0, sizeof(ctx));
	proc_retry_state(b, position, &ctx);
	ctx.sink            = &em->sink;
	proc_shared_begin(p, &shared, &ctx);
	struct sl_event sev = proc_sl_event(p, ev);
	int gk = em->mode == CFG_MODE_CONTINUOUS ? GUARD_EMITTER : GUARD_QUERY;
	em->cur = ev;
	if (x->state == NULL
	    && (rc = proc_created(b, gk, &sev, key, &st, &ctx)) != SL_OK) {
		em->cur = NULL;
		proc_shared_end(b, &shared, &ctx, false);
		state_free(&st);
		proc_ebatch_rewind(em, mark);
		return rc;
	}
	sl_outcome out;
	if (deleting) {
		proc_deleted_call(b, gk, key, position, &st, &ctx, &out);
	} else {
		host_scratch_reset();
		guard_enter((guard_kind) gk, p->tenant, p->proj_id, p->proj_id,
		    0, key, kn, position);
		out = p->def->p->on(p->def->p->user, &sev, key, &st, &ctx);
		guard_leave();
	}
	em->cur = NULL;
	if (ctx.failed || (out != SL_REPLACE && out != SL_DELETE)) {
		/* what a failed event did to the shared state is dropped */
		proc_shared_end(b, &shared, &ctx, false);
		state_free(&st);
		proc_ebatch_rewind(em, mark); /* what it emitted: dropped */
		if (ctx.failed || out == SL_FAIL)
			return proc_unit_fail(b, &ctx, "%s",
			    ctx.reason[0] != '\0'
			        ? ctx.reason
			        : "handler failed (no reason given)");
		return proc_unit_fail(b, &ctx,
		    "handler returned an unknown outcome %d", (int) out);
	}
	void  *nstate = NULL;
	size_t nlen   = 0;
	if (out == SL_REPLACE && (nstate = pack_state(&st, &nlen)) == NULL) {
		proc_shared_end(b, &shared, &ctx, false);
		state_free(&st);
		snprintf(b->reason, sizeof(b->reason), "out of memory");
		b->storage = true;
		return SL_ENOMEM;
	}
	state_free(&st);
	rc = same_bytes(x->state, x->state_len, nstate, nlen)
	    ? (free(nstate), SL_OK)
	    : emit_new_state(b, x, key, ev, nstate, nlen);
	if (rc == HANDLE_UNIT_FAILED)
		proc_ebatch_rewind(em, mark);
	/* the shared state as the handler left it, unless the event failed
	 * after all (its result transform) */
	int src = proc_shared_end(b, &shared, &ctx, rc == SL_OK);
	if (rc == SL_OK && src != SL_OK)
		return src;
	if (rc == SL_OK)
		b->handled++;
	return rc;
}

/*
 * A system projection's event, from the stored bytes: the link its on()
 * would write (sysproj_peek), appended to the batch without decoding the
 * event, calling on() or touching its state (always "{}", never stored).
 * What it does not decide here goes the decoded way (PROC_SLOW): an odd
 * record, a crash mark, what on() logs or refuses.
 */
int
proc_emit_sys_raw(batch_ctx *b, const ev_raw *r, uint64_t position)
{
	processor     *p  = b->p;
	proc_emit     *em = p->em;
	const ev_head *h  = &r->h;
	sysproj_link   l;
	char           why[256];
	if (h->stream_len > 0 && h->stream[0] == '$') {
		/* what it writes is not handled; the other system streams
		 * are, without a link (sys_decide) */
		char st[SL_MAX_ID_LEN + 1];
		if (h->stream_len >= sizeof(st))
			return PROC_SLOW;
		memcpy(st, h->stream, h->stream_len);
		st[h->stream_len] = '\0';
		if (own_stream(em, st))
			return SL_OK;
	}
	if (guard_emitter_crashed(
	        p->tenant, p->proj_id, position, why, sizeof(why)))
		return PROC_SLOW;
	proc_set_unit(b, "", ""); /* its one key, static "" */
	if (!proc_unit_selected(b, position))
		return SL_OK;
	int rc = sysproj_peek(p->def, r, &l);
	if (rc < 0)
		return PROC_SLOW;
	if (rc > 0) {
		struct ebatch *eb = proc_ebatch_get(em);
		if (b->sys_now_ns == 0)
			b->sys_now_ns = ev_now_ns();
		if (eb == NULL
		    || proc_ebatch_link(eb, l.stream, l.target, l.target_len,
		           l.revision, r->id, r->correlation_id,
		           r->correlation_len, b->sys_now_ns)
		        != SL_OK) {
			snprintf(b->reason, sizeof(b->reason), "out of memory");
			b->storage = true;
			return SL_ENOMEM;
		}
	}
	b->handled++;
	return SL_OK;
}

/* Most log positions one batch walks, in p->batch (what one read of the
 * log passes). */
#define SYS_FEED_BATCHES 8

/* A walk of the shared reader's chunk for one batch. */
typedef struct feed_walk {
	batch_ctx *b;
	bool       took; /* an event was handled (or passed) */
} feed_walk;

/* One of the tenant's events from the shared reader: as
 * proc_emit_sys_raw, with the decision made already. 0 goes on; 1 the
 * batch is cut; 2 the event is the decoder's; 3 out of memory. */
static int
feed_cb(void *arg, const sysfeed_event *e)
{
	feed_walk *w = arg;
	batch_ctx *b = w->b;
	processor *p = b->p;
	char       why[256];
	if (proc_cut(b, e->position))
		return 1;
	if (e->slow
	    || guard_emitter_crashed(
	        p->tenant, p->proj_id, e->position, why, sizeof(why)))
		return 2;
	w->took = true;
	b->bytes += e->bytes; /* the other tenants' before it too */
	if (!e->own) {
		struct ebatch *eb = e->stream != NULL ? proc_ebatch_get(p->em)
		                                      : NULL;
		if (e->stream != NULL && b->sys_now_ns == 0)
			b->sys_now_ns = ev_now_ns();
		if (e->stream != NULL
		    && (eb == NULL
		        || proc_ebatch_link(eb, e->stream, e->target,
		               e->target_len, e->revision, e->id, e->corr,
		               e->corr_len, b->sys_now_ns)
		            != SL_OK)) {
			snprintf(b->reason, sizeof(b->reason), "out of memory");
			b->storage = true;
			return 3;
		}
		b->handled++;
	}
	b->next = e->position + 1;
	return 0;
}

int
proc_emit_sys_feed(batch_ctx *b, uint64_t pos)
{
	processor *p  = b->p;
	proc_emit *em = p->em;
	uint64_t   next, tail;
	feed_walk  w = { b, false };
	/* a failing unit (the one static key) or its retry: the log */
	if (em->feed == NULL || em->sys_index < 0 || b->retrying
	    || p->fails.n > 0 || em->mode != CFG_MODE_CONTINUOUS)
		return PROC_SLOW;
	/* chunk after chunk, until a threshold or the time cuts the batch
	 * (proc_cut): walking costs little, so a batch may pass more of
	 * the log than a read of it would (p->batch) */
	uint64_t limit = pos + (uint64_t) p->batch * SYS_FEED_BATCHES;
	int      rc    = SL_OK;
	while (rc == SL_OK && pos < limit) {
		rc = sysfeed_walk(em->feed, (size_t) em->sys_index,
		    p->def->def_hash, pos, limit, feed_cb, &w, &next, &tail);
		if (rc == SL_OK) {
			b->next = pos = next; /* the tenant's events up to it */
			b->bytes += tail;
		}
	}
	if (rc == 3)
		return SL_ENOMEM;
	if ((rc == SL_ENOTFOUND || rc == 2) && !w.took)
		return PROC_SLOW; /* this batch reads the log */
	return SL_OK;
}

/* The sink's engine side (proc_new's caller sets arg). */
void
proc_emit_bind(processor *p)
{
	proc_emit *em = p->em;
	em->sink.write = sink_write;
	em->sink.arg   = p;
	em->sink.refuse = em->mode == CFG_MODE_TRANSIENT
	    ? "a transient run writes no events"
	    : NULL;
}
