/*
 * The emitting projections' side of a processor (emitter.h says what they
 * are): the same thread, batches, failing units, commands and status as
 * every processor (projection.c), with these differences:
 *
 * - the states, the checkpoint record and the failing keys live in the
 *   log's env (store_emit.c: "pstate" by key, "pcheck" a msgpack map
 *   {position, def_hash, stopped, failing}); a batch's changed states,
 *   what its handlers emitted (host->emit / link_to, result streams) and
 *   its checkpoint are written in one store_emit through the log's writer,
 *   after the handlers ran: exactly once, also across SIGKILL;
 * - an operator's stop or start, and a retry, are kept in that record;
 * - a changed definition or a reset soft-deletes every stream the
 *   projection wrote for the tenant, drops its states and runs again from
 *   0 in place (what it emitted cannot be rebuilt beside the old);
 * - a batch ends at the first of its checkpoint thresholds
 *   (checkpoint_handled_threshold events handled, max_write_batch_length
 *   events emitted), after 100 ms, or when a command waits; a batch that
 *   handled and emitted nothing stores its checkpoint only once
 *   checkpoint_unhandled_bytes_threshold bytes of events have passed;
 * - a transient run keeps everything in memory and writes nothing, and a
 *   one-time query (emitter_query.c) is a processor without a thread.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/errors.h>

#include "emitter.h"
#include "guard.h"
#include "log.h"
#include "monotime.h"
#include "mp.h"
#include "proc_internal.h"

/* ---- what a batch emits ---- */

typedef struct ebatch {
	store_append *appends;
	size_t        n_appends, cap_appends;
	store_kv     *states;
	size_t        n_states, cap_states;
	msgpack_zone *zone; /* every string and content of the batch */
} ebatch;

static ebatch *
ebatch_get(proc_emit *em)
{
	if (em->eb != NULL)
		return em->eb;
	ebatch *b = calloc(1, sizeof(*b));
	if (b == NULL || (b->zone = msgpack_zone_new(8192)) == NULL) {
		free(b);
		return NULL;
	}
	return em->eb = b;
}

/* Empty b for the next batch (its memory kept). */
static void
ebatch_clear(ebatch *b)
{
	if (b == NULL)
		return;
	b->n_appends = 0;
	b->n_states  = 0;
	msgpack_zone_clear(b->zone);
}

static void
ebatch_free(ebatch *b)
{
	if (b == NULL)
		return;
	free(b->appends);
	free(b->states);
	msgpack_zone_free(b->zone);
	free(b);
}

static void flight_free(struct eflight *fl);

void
proc_emit_free(proc_emit *em)
{
	if (em == NULL)
		return;
	flight_free(em->fl);
	ebatch_free(em->eb);
	free(em->rprefix);
	free(em);
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
ebatch_append(ebatch *b, const char *stream, const char *type,
    const void *content, size_t len, const void *meta, size_t meta_len,
    const ev_view *cause)
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
	if (meta != NULL) {
		void           *md = zdup(z, meta, meta_len);
		msgpack_object *mo = msgpack_zone_malloc(z, sizeof(*mo));
		size_t          mo_off = 0;
		if (md == NULL || mo == NULL
		    || msgpack_unpack(md, meta_len, &mo_off, z, mo)
		        != MSGPACK_UNPACK_SUCCESS)
			return SL_ENOMEM;
		a->ev.metadata = mo;
	}
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

/* Add x's state (or its deletion) to b. SL_OK or SL_ENOMEM. */
static int
ebatch_state(ebatch *b, const centry *x)
{
	if (b->n_states == b->cap_states) {
		size_t    cap = b->cap_states != 0 ? b->cap_states * 2 : 64;
		store_kv *ns  = realloc(b->states, cap * sizeof(*ns));
		if (ns == NULL)
			return SL_ENOMEM;
		b->states     = ns;
		b->cap_states = cap;
	}
	/* copies: the next batch changes the fold while this one is
	 * written */
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

/* ---- the checkpoint record ---- */

/*
 * {position, def_hash, stopped, failing, shared}, where "failing"
 * (absent: none) is an array of {key, position, attempts, retry, next_try
 * (wall ns), reason}, and "shared" (absent: none yet) the shared state's
 * packed bytes. Into *out (malloc'ed), its length in *len.
 */
static int
ckpt_pack(uint64_t position, uint64_t def_hash, bool stopped,
    const failset *failing, const void *shared, size_t shared_len,
    char **out, size_t *len)
{
	msgpack_sbuffer sb;
	msgpack_packer  pk;
	mp_map          m;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	mp_map_open(&m, &pk);
	mp_map_u64(&m, "position", position);
	mp_map_u64(&m, "def_hash", def_hash);
	mp_map_bool(&m, "stopped", stopped);
	if (failing != NULL && failing->n > 0) {
		mp_map_key(&m, "failing");
		msgpack_pack_array(&pk, failing->n);
		for (size_t i = 0; i < failing->n; i++) {
			const fail_unit *u = &failing->v[i];
			mp_map           f;
			mp_map_open(&f, &pk);
			mp_map_str(&f, "key", u->unit);
			mp_map_u64(&f, "position", u->pos);
			mp_map_u64(&f, "attempts", u->attempts);
			mp_map_bool(&f, "retry", u->retry);
			mp_map_i64(&f, "next_try", u->next_try_ns);
			mp_map_str(&f, "reason", u->reason);
			mp_map_close(&f);
		}
	}
	if (shared != NULL) { /* the shared state (ABI 1.3), packed */
		mp_map_key(&m, "shared");
		msgpack_pack_bin(&pk, shared_len);
		msgpack_pack_bin_body(&pk, shared, shared_len);
	}
	mp_map_close(&m);
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
	return failset_put(fs, NULL, NULL, &u);
}

typedef struct ckpt {
	uint64_t  position, def_hash;
	bool      stopped;
	failset  *failing; /* filled when not NULL */
	processor *shared; /* its shared state set when not NULL */
} ckpt;

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
		(void) mp_get_bool(&up.data, "stopped", &c->stopped);
		rc = SL_OK;
		const msgpack_object *sh = mp_get(&up.data, "shared");
		if (c->shared != NULL)
			proc_shared_set(c->shared,
			    sh != NULL && sh->type == MSGPACK_OBJECT_BIN
			        ? sh->via.bin.ptr
			        : NULL,
			    sh != NULL && sh->type == MSGPACK_OBJECT_BIN
			        ? sh->via.bin.size
			        : 0);
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
static int
ckpt_read(processor *p, ckpt *out)
{
	int rc = store_get_checkpoint(p->s, p->tenant, p->proj_id, ckpt_cb, out);
	return rc == 1 ? SL_EPROTO : rc;
}

/*
 * The batch at the store: one at a time, built while the one before is
 * written (its fsync overlaps the next batch's handling). Its states are
 * the fold's, clean but kept in the cache until it is durable (evicted
 * only after proc_emit_sync); a failed one takes the batches after it
 * down too: the fold is discarded and the run goes on from the stored
 * checkpoint (em->committed).
 */
typedef struct eflight {
	store_emit      w;
	ebatch         *eb;
	char           *ck;
	uint64_t        position;
	bool            busy, done;
	pthread_mutex_t mu;
	pthread_cond_t  cv;
} eflight;

static void
flight_done(store_emit *w, void *arg)
{
	(void) w;
	eflight *fl = arg;
	pthread_mutex_lock(&fl->mu);
	fl->done = true;
	pthread_cond_signal(&fl->cv);
	pthread_mutex_unlock(&fl->mu);
}

static eflight *
flight_get(proc_emit *em)
{
	if (em->fl != NULL)
		return em->fl;
	eflight *fl = calloc(1, sizeof(*fl));
	if (fl == NULL)
		return NULL;
	pthread_mutex_init(&fl->mu, NULL);
	pthread_cond_init(&fl->cv, NULL);
	return em->fl = fl;
}

static void
flight_free(eflight *fl)
{
	if (fl == NULL)
		return;
	ebatch_free(fl->eb);
	free(fl->ck);
	pthread_cond_destroy(&fl->cv);
	pthread_mutex_destroy(&fl->mu);
	free(fl);
}

int
proc_emit_sync(processor *p, char *reason, size_t rlen)
{
	proc_emit *em = p->em;
	eflight   *fl = em->fl;
	if (fl == NULL || !fl->busy)
		return SL_OK;
	pthread_mutex_lock(&fl->mu);
	while (!fl->done)
		pthread_cond_wait(&fl->cv, &fl->mu);
	pthread_mutex_unlock(&fl->mu);
	fl->busy = false;
	int rc   = fl->w.rc;
	pthread_mutex_lock(&p->mu);
	p->st.writes_in_flight = 0;
	if (rc == SL_OK) {
		p->st.emitted = em->emitted + fl->w.n_appends;
		if (fl->position > p->st.position)
			p->st.position = p->st.served_position = fl->position;
		if (p->st.state == PROC_FAILING) { /* a failed write's */
			p->st.state         = PROC_CATCHING_UP;
			p->st.attempts      = 0;
			p->st.next_retry_ns = 0;
			p->st.reason[0]     = '\0';
			p->fail_pos         = UINT64_MAX;
		}
	}
	pthread_mutex_unlock(&p->mu);
	if (rc == SL_OK) {
		em->committed = fl->position;
		em->emitted += fl->w.n_appends;
	} else {
		snprintf(reason, rlen, "writing a batch failed: %s: %s",
		    sl_errname(rc),
		    fl->w.message[0] != '\0' ? fl->w.message
		                             : sl_strerror(rc));
	}
	free(fl->ck);
	fl->ck = NULL;
	/* its appends' memory serves the next batch */
	ebatch_clear(fl->eb);
	if (em->eb == NULL) {
		em->eb = fl->eb;
		fl->eb = NULL;
	}
	return rc;
}

/*
 * Hand the batch to the store: reset (soft-delete what it wrote), the
 * batch's appends and states (em->eb, may be NULL), and the checkpoint at
 * position; the one before must be done (proc_emit_sync). With wait, until
 * it is durable. SL_OK, or an error with why in reason.
 */
static int
emit_submit(processor *p, bool reset, uint64_t position, bool wait,
    char *reason, size_t rlen)
{
	proc_emit *em = p->em;
	eflight   *fl = flight_get(em);
	char      *ck = NULL;
	size_t     cklen;
	int        rc = fl != NULL ? ckpt_pack(position, p->def->def_hash,
	                          p->paused, &p->fails, p->shared,
	                          p->shared_len, &ck, &cklen)
	                           : SL_ENOMEM;
	if (rc != SL_OK) {
		free(ck);
		snprintf(reason, rlen, "out of memory");
		return rc;
	}
	ebatch_free(fl->eb);
	fl->eb = em->eb; /* the next batch builds into another */
	em->eb = NULL;
	ebatch *b = fl->eb;
	memset(&fl->w, 0, sizeof(fl->w));
	fl->w.tenant         = p->tenant;
	fl->w.owner          = p->proj_id;
	fl->w.reset          = reset;
	fl->w.appends        = b != NULL ? b->appends : NULL;
	fl->w.n_appends      = b != NULL ? b->n_appends : 0;
	fl->w.states         = b != NULL ? b->states : NULL;
	fl->w.n_states       = b != NULL ? b->n_states : 0;
	fl->w.checkpoint     = ck;
	fl->w.checkpoint_len = cklen;
	fl->w.done           = flight_done;
	fl->w.arg            = fl;
	fl->ck               = ck;
	fl->position         = position;
	fl->done             = false;
	fl->busy             = true;
	em->fails_version    = p->fails.version;
	em->unhandled        = 0;
	pthread_mutex_lock(&p->mu);
	p->st.writes_in_flight = 1;
	pthread_mutex_unlock(&p->mu);
	if ((rc = store_submit_emit(p->s, &fl->w)) != SL_OK) {
		fl->w.rc = rc; /* done() will not run */
		fl->done = true;
	}
	return wait ? proc_emit_sync(p, reason, rlen) : SL_OK;
}

/* ---- setup: the checkpoint, or a reset ---- */

int
proc_emit_setup(processor *p, bool reset, char *reason, size_t rlen)
{
	proc_emit *em = p->em;
	uint64_t   H  = p->def->def_hash;
	bool       paused = em->stopped;
	uint64_t   pos    = 0;
	/* a batch of the definition before, if any, is done first (the
	 * checkpoint read below then knows it) */
	if (proc_emit_sync(p, reason, rlen) != SL_OK)
		log_warn("emitter", "%s/%s: %s", p->tenant, p->proj_id, reason);
	ebatch_clear(em->eb);
	pthread_mutex_lock(&p->mu);
	failset_free(&p->fails);
	failset_init_memory(&p->fails);
	pthread_mutex_unlock(&p->mu);
	if (em->mode == CFG_MODE_CONTINUOUS) {
		failset read;
		failset_init_memory(&read);
		ckpt c  = { .failing = &read, .shared = p };
		int  rc = ckpt_read(p, &c);
		if (rc == SL_OK) {
			paused = c.stopped;
			if (c.def_hash != H && !reset)
				log_info("emitter",
				    "%s/%s (%s): definition changed (hash "
				    "%016" PRIx64 " -> %016" PRIx64
				    "): resetting",
				    p->tenant, p->proj_id, p->def->name,
				    c.def_hash, H);
			reset = reset || c.def_hash != H;
			pos   = c.position;
		} else if (rc == SL_EPROTO) {
			log_error("emitter",
			    "%s/%s: the checkpoint is corrupt: resetting",
			    p->tenant, p->proj_id);
			reset = true;
		} else if (rc != SL_ENOTFOUND) {
			failset_free(&read);
			snprintf(reason, rlen, "reading the checkpoint: %s",
			    sl_strerror(rc));
			return rc;
		}
		if (reset) {
			failset_free(&read);
			proc_shared_set(p, NULL, 0);
			guard_clear_emitter(p->tenant, p->proj_id);
			p->paused = paused; /* kept by the reset's record */
			if ((rc = emit_submit(p, true, 0, true, reason, rlen))
			    != SL_OK)
				return rc;
			pos = 0;
			log_info("emitter",
			    "%s/%s: reset: streams soft-deleted, states "
			    "dropped, running again from 0",
			    p->tenant, p->proj_id);
		} else {
			pthread_mutex_lock(&p->mu);
			failset_free(&p->fails);
			p->fails = read;
			pthread_mutex_unlock(&p->mu);
		}
	}
	em->committed     = pos;
	em->fails_version = p->fails.version;
	em->unhandled     = 0;
	p->gen = p->active_gen = 0;
	p->rebuilding          = false;
	p->paused              = paused;
	pthread_mutex_lock(&p->mu);
	proc_show_failing(p);
	p->st.position        = pos;
	p->st.served_position = pos;
	p->st.rebuilding      = false;
	p->st.generation      = 0;
	p->st.attempts        = 0;
	p->st.reason[0]       = '\0';
	p->st.state           = PROC_CATCHING_UP;
	p->st.paused          = paused;
	pthread_mutex_unlock(&p->mu);
	return SL_OK;
}

void
proc_emit_reload(processor *p)
{
	char    why[256];
	failset read;
	failset_init_memory(&read);
	(void) proc_emit_sync(p, why, sizeof(why)); /* its error: known */
	if (p->em->mode != CFG_MODE_CONTINUOUS)
		p->em->committed = 0; /* its states were only the fold */
	if (p->em->mode == CFG_MODE_CONTINUOUS) {
		ckpt c = { .failing = &read, .shared = p };
		int  rc = ckpt_read(p, &c);
		if (rc != SL_OK && rc != SL_ENOTFOUND) {
			log_error("emitter",
			    "%s/%s: cannot read the failing keys of the "
			    "checkpoint: %s",
			    p->tenant, p->proj_id, sl_strerror(rc));
			failset_free(&read);
			return;
		}
	}
	/* a transient run starts again from 0: none fail */
	pthread_mutex_lock(&p->mu);
	failset_free(&p->fails);
	p->fails = read;
	proc_show_failing(p);
	pthread_mutex_unlock(&p->mu);
	ebatch_clear(p->em->eb);
}

int
proc_emit_persist(processor *p)
{
	char reason[256];
	if (p->em->mode != CFG_MODE_CONTINUOUS)
		return SL_OK;
	if (p->def == NULL)
		return SL_OK; /* dropped: its next definition's setup decides */
	pthread_mutex_lock(&p->mu);
	uint64_t pos = p->st.position; /* the fold is stored: between batches */
	pthread_mutex_unlock(&p->mu);
	int rc = proc_emit_sync(p, reason, sizeof(reason));
	if (rc == SL_OK)
		rc = emit_submit(p, false, pos, true, reason, sizeof(reason));
	if (rc != SL_OK)
		log_error("emitter", "%s/%s: %s", p->tenant, p->proj_id, reason);
	return rc;
}

/* ---- a batch ---- */

bool
proc_emit_cut(const batch_ctx *b)
{
	const proc_emit *em = b->p->em;
	const proj_settings *set = &em->set;
	if (em->cancel != NULL && em->cancel(em->cancel_arg))
		return true;
	if (set->checkpoint_handled_threshold > 0
	    && b->handled >= set->checkpoint_handled_threshold)
		return true;
	return em->eb != NULL && set->max_write_batch_length > 0
	    && em->eb->n_appends >= set->max_write_batch_length;
}

int
proc_emit_commit(processor *p, batch_ctx *b, uint64_t position)
{
	proc_emit *em = p->em;
	if (em->mode != CFG_MODE_CONTINUOUS) {
		em->committed = position;
		return SL_OK;
	}
	/* the batch before is durable: its states may leave the cache */
	int rc = proc_emit_sync(p, b->reason, sizeof(b->reason));
	if (rc != SL_OK)
		return rc;
	pthread_mutex_lock(&em->cmu);
	scache_evict(&p->states, 0, proc_cache_keep);
	pthread_mutex_unlock(&em->cmu);
	ebatch *eb = em->eb;
	em->unhandled += b->bytes;
	bool nothing = p->states.dirty == NULL && !p->shared_dirty
	    && (eb == NULL || eb->n_appends == 0)
	    && p->fails.version == em->fails_version;
	/* events passed, nothing handled: the checkpoint can wait (a
	 * restart would pass them again) */
	if (nothing
	    && (position == em->committed
	        || em->unhandled
	            < em->set.checkpoint_unhandled_bytes_threshold))
		return SL_OK;
	if (p->states.dirty != NULL && (eb = ebatch_get(em)) == NULL) {
		snprintf(b->reason, sizeof(b->reason), "out of memory");
		return SL_ENOMEM;
	}
	for (centry *x = p->states.dirty; x != NULL; x = x->dnext)
		if (ebatch_state(eb, x) != SL_OK) {
			snprintf(b->reason, sizeof(b->reason), "out of memory");
			return SL_ENOMEM;
		}
	/* written while the next batch is handled */
	return emit_submit(
	    p, false, position, false, b->reason, sizeof(b->reason));
}

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
	if (strncmp(stream, em->rprefix, strlen(em->rprefix)) == 0) {
		snprintf(
		    err, errlen, "result streams are written by the host");
		return SL_EINVAL;
	}
	ebatch *b  = ebatch_get(em);
	int     rc = b != NULL
	        ? ebatch_append(
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
	if (strncmp(stream, em->rprefix, strlen(em->rprefix)) == 0)
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

/*
 * Write key's result res (NULL: it went away: ResultRemoved, content {})
 * to its result stream: "$projections-<name>-<key>-result", or for a
 * projection whose keys are all static (one state: EventStoreDB's
 * unpartitioned projection) "$projections-<name>-result".
 */
static int
emit_result(proc_emit *em, const char *key, const void *res, size_t len,
    const ev_view *ev)
{
	static const unsigned char empty_map = 0x80;
	ebatch *eb     = ebatch_get(em);
	char   *stream = NULL;
	int     n      = em->root_result
	         ? asprintf(&stream, "%sresult", em->rprefix)
	         : asprintf(&stream, "%s%s-result", em->rprefix, key);
	int rc = eb == NULL || n < 0 ? SL_ENOMEM
	    : res != NULL
	    ? ebatch_append(eb, stream, "Result", res, len, NULL, 0, ev)
	    : ebatch_append(
	          eb, stream, "ResultRemoved", &empty_map, 1, NULL, 0, ev);
	if (n >= 0)
		free(stream);
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
			return proc_unit_fail(b, NULL, "%s", why);
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
	bool deleting;
	int  rc = proc_event_unit(b, ev, key, &deleting);
	if (rc != SL_OK)
		return rc == PROC_SKIP ? SL_OK : rc;
	size_t kn = strlen(key);
	if (em->only_key != NULL
	    && (kn != em->only_len || memcmp(key, em->only_key, kn) != 0))
		return SL_OK;
	/* the event this projection crashed on in the last run waits for
	 * an operator (guard.h) */
	char why[256];
	if (em->mode == CFG_MODE_CONTINUOUS
	    && guard_emitter_crashed(
	        p->tenant, p->proj_id, position, why, sizeof(why))) {
		sl_context nr = { .no_retry = true };
		return proc_unit_fail(b, &nr, "%s", why);
	}
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
		sl_context nr = { .no_retry = true };
		return proc_unit_fail(
		    b, &nr, "the state of key '%.100s' is corrupt", key);
	}

	ebatch    *eb   = em->eb;
	size_t     mark = eb != NULL ? eb->n_appends : 0;
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
		if (em->eb != NULL)
			em->eb->n_appends = mark;
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
		if (em->eb != NULL)
			em->eb->n_appends = mark; /* what it emitted: dropped */
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
	if (rc == HANDLE_UNIT_FAILED && em->eb != NULL)
		em->eb->n_appends = mark;
	/* the shared state as the handler left it, unless the event failed
	 * after all (its result transform) */
	int src = proc_shared_end(b, &shared, &ctx, rc == SL_OK);
	if (rc == SL_OK && src != SL_OK)
		return src;
	if (rc == SL_OK)
		b->handled++;
	return rc;
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
