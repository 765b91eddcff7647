/*
 * The handling shared by every mode of an emitting projection (continuous,
 * transient, one-time query): batches (appends and states, the
 * host->emit / link_to sink), checkpoint records, and one event handled
 * with the projection's state, its result transform and what it emits.
 * The threads that drive it are in emitter.c and emitter_handler.c.
 */
#include "emitter_internal.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guard.h"
#include "host.h"
#include "mp.h"
#include "sysproj.h"

/* ---- batches ---- */

batch *
eproj_batch_new(void)
{
	batch *b = calloc(1, sizeof(*b));
	if (b == NULL)
		return NULL;
	if ((b->zone = msgpack_zone_new(8192)) == NULL) {
		free(b);
		return NULL;
	}
	return b;
}

void
eproj_batch_free(batch *b)
{
	if (b == NULL)
		return;
	free(b->appends);
	free(b->states);
	free(b->ckpt);
	msgpack_zone_free(b->zone);
	free(b);
}

static void *
zdup(msgpack_zone *z, const void *p, size_t n)
{
	void *d = msgpack_zone_malloc(z, n + 1);
	if (d == NULL)
		return NULL;
	if (n > 0)
		memcpy(d, p, n);
	((char *) d)[n] = '\0';
	return d;
}

/*
 * Append an event (content: one packed msgpack value) caused by ev (may be
 * NULL) to the batch. SL_OK or SL_ENOMEM.
 */
static int
batch_append(batch *b, const char *stream, const char *type,
    const void *content, size_t len, const ev_view *cause)
{
	if (b->n_appends == b->cap_appends) {
		size_t cap = b->cap_appends != 0 ? b->cap_appends * 2 : 32;
		store_append *na = realloc(b->appends, cap * sizeof(*na));
		if (na == NULL)
			return SL_ENOMEM;
		b->appends     = na;
		b->cap_appends = cap;
	}
	msgpack_zone   *z    = b->zone;
	void           *data = zdup(z, content, len);
	msgpack_object *obj  = msgpack_zone_malloc(z, sizeof(*obj));
	char           *st   = zdup(z, stream, strlen(stream));
	char           *ty   = zdup(z, type, strlen(type));
	size_t          off  = 0;
	if (data == NULL || obj == NULL || st == NULL || ty == NULL
	    || msgpack_unpack(data, len, &off, z, obj)
	        != MSGPACK_UNPACK_SUCCESS)
		return SL_ENOMEM;
	store_append *a = &b->appends[b->n_appends];
	memset(a, 0, sizeof(*a));
	a->stream        = st;
	a->ev.type       = ty;
	a->ev.type_len   = strlen(ty);
	a->ev.generation = 1;
	ev_uuid_generate(a->ev.id);
	a->ev.occurred_ns = ev_now_ns();
	a->ev.content     = obj;
	if (cause != NULL) {
		const char *corr      = cause->correlation_id != NULL
		         ? cause->correlation_id
		         : cause->id_text;
		a->ev.correlation_id  = zdup(z, corr, strlen(corr));
		a->ev.correlation_len = strlen(corr);
		a->ev.causation_id    = zdup(z, cause->id_text, 36);
		a->ev.causation_len   = 36;
		if (a->ev.correlation_id == NULL || a->ev.causation_id == NULL)
			return SL_ENOMEM;
	} else {
		a->ev.causation_id = "";
	}
	b->n_appends++;
	return SL_OK;
}

int
eproj_batch_state(batch *b, const centry *x)
{
	if (b->n_states == b->cap_states) {
		size_t    cap = b->cap_states != 0 ? b->cap_states * 2 : 64;
		store_kv *ns  = realloc(b->states, cap * sizeof(*ns));
		if (ns == NULL)
			return SL_ENOMEM;
		b->states     = ns;
		b->cap_states = cap;
	}
	store_kv *kv = &b->states[b->n_states];
	kv->key      = zdup(b->zone, x->key, x->key_len);
	kv->key_len  = x->key_len;
	kv->val      = NULL;
	kv->val_len  = 0;
	if (x->state != NULL) {
		kv->val     = zdup(b->zone, x->state, x->state_len);
		kv->val_len = x->state_len;
		if (kv->val == NULL)
			return SL_ENOMEM;
	}
	if (kv->key == NULL)
		return SL_ENOMEM;
	b->n_states++;
	return SL_OK;
}

/* ---- checkpoint records ---- */

/*
 * The record: a msgpack map {position, def_hash, stopped, failing}, where
 * "failing" (absent: none; records before it read as none) is an array of
 * {key, position, attempts, retry, next_try (wall ns), reason}.
 */
int
eproj_ckpt_pack(const ckpt *c, char **out, size_t *len)
{
	msgpack_sbuffer sb;
	msgpack_packer  pk;
	size_t          nf = c->failing != NULL ? c->failing->n : 0;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, nf > 0 ? 4 : 3);
	msgpack_pack_str_with_body(&pk, "position", 8);
	msgpack_pack_uint64(&pk, c->position);
	msgpack_pack_str_with_body(&pk, "def_hash", 8);
	msgpack_pack_uint64(&pk, c->def_hash);
	msgpack_pack_str_with_body(&pk, "stopped", 7);
	if (c->stopped)
		msgpack_pack_true(&pk);
	else
		msgpack_pack_false(&pk);
	if (nf > 0) {
		msgpack_pack_str_with_body(&pk, "failing", 7);
		msgpack_pack_array(&pk, nf);
		for (size_t i = 0; i < nf; i++) {
			const fail_unit *u = &c->failing->v[i];
			msgpack_pack_map(&pk, 6);
			msgpack_pack_str_with_body(&pk, "key", 3);
			msgpack_pack_str_with_body(&pk, u->unit, u->ulen);
			msgpack_pack_str_with_body(&pk, "position", 8);
			msgpack_pack_uint64(&pk, u->pos);
			msgpack_pack_str_with_body(&pk, "attempts", 8);
			msgpack_pack_uint32(&pk, u->attempts);
			msgpack_pack_str_with_body(&pk, "retry", 5);
			if (u->retry)
				msgpack_pack_true(&pk);
			else
				msgpack_pack_false(&pk);
			msgpack_pack_str_with_body(&pk, "next_try", 8);
			msgpack_pack_int64(&pk, u->next_try_ns);
			msgpack_pack_str_with_body(&pk, "reason", 6);
			msgpack_pack_str_with_body(
			    &pk, u->reason, strlen(u->reason));
		}
	}
	*out = sb.data; /* the sbuffer's malloc'ed bytes, now the caller's */
	*len = sb.size;
	return sb.data != NULL ? SL_OK : SL_ENOMEM;
}

/* One failing unit of a checkpoint record into fs. */
static int
ckpt_unit(failset *fs, const msgpack_object *o)
{
	const char *key, *why  = "";
	size_t      klen, wlen = 0;
	uint64_t    pos, att   = 0;
	int64_t     next  = 0;
	bool        retry = false;
	if (o->type != MSGPACK_OBJECT_MAP
	    || mp_get_str(o, "key", &key, &klen) != SL_OK
	    || mp_get_u64(o, "position", &pos) != SL_OK
	    || klen > FAILSET_UNIT_MAX)
		return SL_EPROTO;
	(void) mp_get_u64(o, "attempts", &att);
	(void) mp_get_bool(o, "retry", &retry);
	(void) mp_get_i64(o, "next_try", &next);
	(void) mp_get_str(o, "reason", &why, &wlen);
	fail_unit u;
	memset(&u, 0, sizeof(u));
	char kbuf[FAILSET_UNIT_MAX + 1];
	memcpy(kbuf, key, klen);
	kbuf[klen]    = '\0';
	u.unit        = kbuf;
	u.ulen        = klen;
	u.pos         = pos;
	u.attempts    = att > UINT32_MAX ? UINT32_MAX : (uint32_t) att;
	u.retry       = retry;
	u.next_try_ns = next;
	if (wlen >= sizeof(u.reason))
		wlen = sizeof(u.reason) - 1;
	memcpy(u.reason, why, wlen);
	u.reason[wlen] = '\0';
	int rc         = failset_put(fs, NULL, NULL, &u);
	return rc;
}

static int
ckpt_cb(void *arg, const void *key, size_t key_len, const void *val,
    size_t val_len)
{
	(void) key;
	(void) key_len;
	ckpt            *c = arg;
	msgpack_unpacked up;
	size_t           off = 0;
	int              rc  = SL_EPROTO;
	msgpack_unpacked_init(&up);
	if (msgpack_unpack_next(&up, val, val_len, &off)
	        == MSGPACK_UNPACK_SUCCESS
	    && up.data.type == MSGPACK_OBJECT_MAP
	    && mp_get_u64(&up.data, "position", &c->position) == SL_OK
	    && mp_get_u64(&up.data, "def_hash", &c->def_hash) == SL_OK) {
		bool stopped = false;
		(void) mp_get_bool(&up.data, "stopped", &stopped);
		c->stopped = stopped;
		rc         = SL_OK;
		const msgpack_object *fa;
		if (c->failing != NULL
		    && mp_get_array(&up.data, "failing", &fa) == SL_OK)
			for (uint32_t i = 0;
			     i < fa->via.array.size && rc == SL_OK; i++)
				rc = ckpt_unit(
				    c->failing, &fa->via.array.ptr[i]);
	}
	msgpack_unpacked_destroy(&up);
	return rc == SL_OK ? 0 : 1;
}

/* SL_OK, SL_ENOTFOUND, SL_ESTORAGE, SL_EPROTO (a corrupt record). */
int
eproj_ckpt_read(store *s, const char *tenant, const char *owner, ckpt *out)
{
	failset *fs = out->failing;
	memset(out, 0, sizeof(*out));
	out->failing = fs;
	int rc = store_get_checkpoint(s, tenant, owner, ckpt_cb, out);
	return rc == 1 ? SL_EPROTO : rc;
}

/* ---- a run: the handling shared by every mode ---- */

static int
sink_write(emit_sink *k, const char *stream, const char *type,
    const void *content, size_t len, char *err, size_t errlen)
{
	run *r = k->arg;
	if (r->kind == RUN_QUERY)
		return SL_OK; /* a query writes nothing */
	if (r->b == NULL) {
		snprintf(err, errlen, "no batch to write into");
		return SL_EINTERNAL;
	}
	if (r->rprefix != NULL
	    && strncmp(stream, r->rprefix, strlen(r->rprefix)) == 0) {
		snprintf(
		    err, errlen, "result streams are written by the host");
		return SL_EINVAL;
	}
	int rc = batch_append(r->b, stream, type, content, len, r->cur);
	if (rc != SL_OK)
		snprintf(err, errlen, "out of memory");
	return rc;
}

/* Set r's definition (held by the caller). */
int
eproj_run_set_def(run *r, const proj_def *def)
{
	free(r->rprefix);
	r->rprefix = NULL;
	r->def     = def;
	r->emits   = NULL;
	r->n_emits = 0;
	r->result  = NULL;
	r->system  = false;
	if (def == NULL)
		return SL_OK;
	r->system = sysproj_is_system(def);
	r->emits  = proj_def_emits(def, &r->n_emits);
	r->result = proj_def_result(def);
	if ((r->rprefix = eproj_result_prefix(def)) == NULL)
		return SL_ENOMEM;
	r->sink.def    = def;
	r->sink.system = r->system;
	return SL_OK;
}

int
eproj_run_init(
    run *r, run_kind kind, store *s, const char *tenant, const proj_def *def)
{
	memset(r, 0, sizeof(*r));
	r->kind       = kind;
	r->s          = s;
	r->tenant     = tenant;
	r->sink.write = sink_write;
	r->sink.arg   = r;
	if (kind == RUN_TRANSIENT)
		r->sink.refuse = "a transient run writes no events";
	if ((r->zone = msgpack_zone_new(8192)) == NULL)
		return SL_ENOMEM;
	return eproj_run_set_def(r, def);
}

void
eproj_run_fini(run *r)
{
	scache_clear(&r->c);
	eproj_batch_free(r->b);
	r->b = NULL;
	if (r->zone != NULL)
		msgpack_zone_free(r->zone);
	r->zone = NULL;
	free(r->rprefix);
	r->rprefix = NULL;
}

/* Whether the run writes stream itself (its events are not handled). */
static bool
run_own_stream(const run *r, const char *stream)
{
	if (r->rprefix != NULL
	    && strncmp(stream, r->rprefix, strlen(r->rprefix)) == 0)
		return true;
	for (size_t i = 0; i < r->n_emits; i++)
		if (host_stream_matches(r->emits[i], stream))
			return true;
	return false;
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

/*
 * The result of a state (packed map in *out, malloc'ed; NULL: no result).
 * SL_OK, or SL_EPLUGIN with a reason in why.
 */
int
eproj_compute_result(proj_result_fn fn, const proj_def *def, const char *key,
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
	sl_outcome o = fn(def->p->user, key, &st, &res);
	if (o == SL_REPLACE) {
		*out = pack_state(&res, out_len);
		if (*out == NULL)
			rc = SL_ENOMEM;
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
	return 0;
}

/* The entry of key: cached, else the committed state, else none. */
static int
run_entry(run *r, const char *key, size_t n, centry **out)
{
	centry *x = scache_find(&r->c, key, n);
	if (x != NULL) {
		scache_lru_unlink(&r->c, x);
		scache_lru_front(&r->c, x);
		*out = x;
		return SL_OK;
	}
	if ((x = scache_add(&r->c, key, n)) == NULL)
		return SL_ENOMEM;
	if (r->kind == RUN_CONTINUOUS) {
		int rc = store_get_pstate(
		    r->s, r->tenant, r->def->id, key, n, copy_cb, x);
		if (rc != SL_OK && rc != SL_ENOTFOUND) {
			scache_remove(&r->c, x);
			return rc == SL_ENOMEM ? rc : SL_ESTORAGE;
		}
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

static hres fail_with(hfail *f, bool no_retry, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static hres
fail_with(hfail *f, bool no_retry, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(f->why, sizeof(f->why), fmt, ap);
	va_end(ap);
	f->no_retry       = no_retry;
	f->retry_after_ms = 0;
	return H_FAILED;
}

/*
 * Handle one decoded event of the tenant. On success the key's entry holds
 * the new state (dirty when its bytes changed) and the batch what it
 * emitted; on failure nothing changed.
 */
static hres
run_event(run *r, const ev_view *v, uint32_t attempt, const char *last_reason,
    hfail *f)
{
	char key[PROC_KEY_MAX];
	if (run_own_stream(r, v->stream))
		return H_SKIPPED;
	int rc = proc_key(r->def, v, key, sizeof(key));
	if (rc == SL_ENOTFOUND)
		return H_SKIPPED;
	if (rc != SL_OK) {
		/* no key: the event waits in a unit of its stream, as a
		 * processor's does, not retried (only a new definition can
		 * find its key); the stream's keyed events go on */
		int un = snprintf(f->key, sizeof(f->key), PROC_NO_KEY "%s",
		    v->stream);
		if (un < 0 || (size_t) un >= sizeof(f->key))
			return fail_with(f, true, "%s", key);
		if (r->only_key != NULL
		    && ((size_t) un != r->only_len
		        || memcmp(f->key, r->only_key, (size_t) un) != 0))
			return H_SKIPPED;
		if (r->failing != NULL && !r->retrying) {
			const fail_unit *u = failset_find(
			    (failset *) r->failing, f->key, (size_t) un);
			if (u != NULL && v->position >= u->pos)
				return H_SKIPPED;
		}
		f->key_known = true;
		f->key_len   = (size_t) un;
		return fail_with(f, true, "%s", key);
	}
	size_t kn = strlen(key);
	if (r->only_key != NULL
	    && (kn != r->only_len || memcmp(key, r->only_key, kn) != 0))
		return H_SKIPPED;
	/* a failing key's later events wait for its retry */
	if (r->failing != NULL && !r->retrying) {
		const fail_unit *u
		    = failset_find((failset *) r->failing, key, kn);
		if (u != NULL && v->position >= u->pos)
			return H_SKIPPED;
	}
	/* a failure of this event holds up its key alone, unless the key is
	 * static (one key for the whole) */
	f->key_known = kn > 0 && !proc_key_is_static(r->def, v);
	f->key_len   = kn;
	memcpy(f->key, key, kn + 1);

	if (r->cmu != NULL)
		pthread_mutex_lock(r->cmu);
	centry *x;
	rc = run_entry(r, key, kn, &x);
	if (r->cmu != NULL)
		pthread_mutex_unlock(r->cmu);
	if (rc != SL_OK) {
		snprintf(f->why, sizeof(f->why),
		    "cannot load the state of key '%.100s': %s", key,
		    sl_strerror(rc));
		return H_ERROR;
	}
	sl_state st;
	state_init(&st);
	rc = x->state != NULL
	    ? state_load(&st, x->state, x->state_len)
	    : state_load(&st, r->def->initial, r->def->initial_len);
	if (rc != SL_OK) {
		state_free(&st);
		return fail_with(
		    f, true, "the state of key '%.100s' is corrupt", key);
	}

	size_t     mark = r->b != NULL ? r->b->n_appends : 0;
	sl_context ctx;
	memset(&ctx, 0, sizeof(ctx));
	ctx.attempt        = attempt;
	ctx.last_reason    = last_reason;
	ctx.sink           = &r->sink;
	r->cur             = v;
	struct sl_event ev = { .v = v, .partition = v->stream };
	host_scratch_reset();
	/* the event this projection crashed on in the last run waits for
	 * an operator (guard.h) */
	if (r->kind == RUN_CONTINUOUS
	    && guard_emitter_crashed(
	        r->tenant, r->def->id, v->position, f->why, sizeof(f->why))) {
		r->cur = NULL;
		state_free(&st);
		f->no_retry = true;
		return H_FAILED;
	}
	guard_enter(r->kind == RUN_CONTINUOUS ? GUARD_EMITTER : GUARD_QUERY,
	    r->tenant, r->def->id, r->def->id, 0, key, strlen(key),
	    v->position);
	sl_outcome out = r->def->p->on(r->def->p->user, &ev, key, &st, &ctx);
	guard_leave();
	r->cur         = NULL;
	if (out != SL_REPLACE && out != SL_DELETE && !ctx.failed)
		(void) fail_with(f, false,
		    "handler returned an unknown outcome %d", (int) out);
	else if (out == SL_FAIL || ctx.failed)
		snprintf(f->why, sizeof(f->why), "%s",
		    ctx.reason[0] != '\0'
		        ? ctx.reason
		        : "handler failed (no reason given)");
	if (ctx.failed || (out != SL_REPLACE && out != SL_DELETE)) {
		f->no_retry       = ctx.failed && ctx.no_retry;
		f->retry_after_ms = ctx.failed ? ctx.retry_after_ms : 0;
		state_free(&st);
		if (r->b != NULL)
			r->b->n_appends
			    = mark; /* what it emitted is dropped */
		return H_FAILED;
	}

	void  *nstate = NULL;
	size_t nlen   = 0;
	if (out == SL_REPLACE && (nstate = pack_state(&st, &nlen)) == NULL) {
		state_free(&st);
		if (r->b != NULL)
			r->b->n_appends = mark;
		snprintf(f->why, sizeof(f->why), "out of memory");
		return H_ERROR;
	}
	state_free(&st);
	if (same_bytes(x->state, x->state_len, nstate, nlen)) {
		free(nstate);
		return H_HANDLED;
	}

	/* the state changed: the result, when it changed too, is written */
	void  *nres = NULL, *ores = NULL;
	size_t nres_len = 0, ores_len = 0;
	if (r->result != NULL) {
		if (!x->result_known
		    && eproj_compute_result(r->result, r->def, key, x->state,
		           x->state_len, &ores, &ores_len, f->why,
		           sizeof(f->why))
		        != SL_OK)
			goto result_failed;
		if (nstate != NULL
		    && eproj_compute_result(r->result, r->def, key, nstate,
		           nlen, &nres, &nres_len, f->why, sizeof(f->why))
		        != SL_OK)
			goto result_failed;
		if (x->result_known) {
			ores      = x->result;
			ores_len  = x->result_len;
			x->result = NULL;
		}
		if (nres != NULL && r->b != NULL
		    && !same_bytes(ores, ores_len, nres, nres_len)) {
			char *stream;
			if (asprintf(&stream, "%s%s-result", r->rprefix, key)
			        < 0
			    || (rc = batch_append(
			            r->b, stream, "Result", nres, nres_len, v))
			        != SL_OK) {
				if (rc == SL_OK)
					stream = NULL;
				free(stream);
				free(ores);
				free(nres);
				free(nstate);
				r->b->n_appends = mark;
				snprintf(
				    f->why, sizeof(f->why), "out of memory");
				return H_ERROR;
			}
			free(stream);
		}
		free(ores);
	}
	if (r->cmu != NULL)
		pthread_mutex_lock(r->cmu);
	free(x->state);
	x->state     = nstate;
	x->state_len = nlen;
	free(x->result);
	x->result       = nres;
	x->result_len   = nres_len;
	x->result_known = r->result != NULL;
	if (!x->dirty && r->kind == RUN_CONTINUOUS) {
		x->dirty   = true;
		x->dnext   = r->c.dirty;
		r->c.dirty = x;
	}
	if (r->cmu != NULL)
		pthread_mutex_unlock(r->cmu);
	return H_HANDLED;

result_failed:
	free(ores);
	free(nres);
	free(nstate);
	if (r->b != NULL)
		r->b->n_appends = mark;
	f->no_retry       = false;
	f->retry_after_ms = 0;
	return H_FAILED;
}

/* Decode a record and handle it if it is the tenant's. */
hres
eproj_run_record(run *r, uint64_t pos, const void *data, size_t len,
    uint32_t attempt, const char *last_reason, hfail *f)
{
	ev_view v;
	msgpack_zone_clear(r->zone);
	if (ev_decode(data, len, pos, r->zone, &v) != SL_OK)
		return fail_with(f, true,
		    "the event at position %" PRIu64 " cannot be decoded",
		    pos);
	if (strcmp(v.tenant, r->tenant) != 0)
		return H_SKIPPED;
	return run_event(r, &v, attempt, last_reason, f);
}
