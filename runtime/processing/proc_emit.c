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
 *
 * This file: the batch's writes (what it emits, the checkpoint record, the
 * batch at the store), setup, reset and commands; one event's handling is
 * in proc_emit_event.c.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sluice/errors.h>

#include "emitter.h"
#include "guard.h"
#include "log.h"
#include "monotime.h"
#include "mp.h"
#include "proc_internal.h"
#include "sysfeed.h"

/* How far past its thresholds a batch grows while the one before is still
 * at the store (proc_emit_cut). */
#define PROC_EMIT_GROW 8

/* ---- what a batch emits ---- */

typedef struct ebatch {
	store_append *appends;
	size_t        n_appends, cap_appends;
	store_kv     *states;
	size_t        n_states, cap_states;
	msgpack_zone *zone; /* every string and content of the batch */
} ebatch;

struct ebatch *
proc_ebatch_get(proc_emit *em)
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

size_t
proc_ebatch_mark(const proc_emit *em)
{
	return em->eb != NULL ? em->eb->n_appends : 0;
}

void
proc_ebatch_rewind(proc_emit *em, size_t mark)
{
	if (em->eb != NULL)
		em->eb->n_appends = mark;
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
	sysfeed_put(em->feed);
	free(em->rprefix);
	free(em->rroot);
	free(em->rpat);
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
/* Room for one more append (not counted yet): NULL when out of memory. */
static store_append *
ebatch_slot(ebatch *b)
{
	if (b->n_appends == b->cap_appends) {
		size_t cap = b->cap_appends != 0 ? b->cap_appends * 2 : 32;
		store_append *na = realloc(b->appends, cap * sizeof(*na));
		if (na == NULL)
			return NULL;
		b->appends     = na;
		b->cap_appends = cap;
	}
	return &b->appends[b->n_appends];
}

int
proc_ebatch_append(ebatch *b, const char *stream, const char *type,
    const void *content, size_t len, const void *meta, size_t meta_len,
    const ev_view *cause)
{
	if (ebatch_slot(b) == NULL)
		return SL_ENOMEM;
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

/*
 * Append to the batch a link ("$>") in stream to the event appended just
 * before it, whose revision the log's writer gives (store_append's
 * link_prev). SL_OK, SL_EINVAL (nothing before it), SL_ENOMEM.
 */
int
proc_ebatch_link_prev(ebatch *b, const char *stream, const ev_view *cause)
{
	static const unsigned char empty_str = 0xa0; /* the writer's to fill */
	if (b->n_appends == 0)
		return SL_EINVAL;
	int rc = proc_ebatch_append(
	    b, stream, EV_LINK_TYPE, &empty_str, 1, NULL, 0, cause);
	if (rc == SL_OK)
		b->appends[b->n_appends - 1].link_prev = true;
	return rc;
}

/* v in decimal at out (21 bytes room); its length. */
static size_t
u64_text(uint64_t v, char *out)
{
	char   tmp[20];
	size_t n = 0;
	do {
		tmp[n++] = (char) ('0' + v % 10);
		v /= 10;
	} while (v != 0);
	for (size_t i = 0; i < n; i++)
		out[i] = tmp[n - 1 - i];
	return n;
}

/*
 * Append a link ("$>", content "<revision>@<target>") into stream, caused
 * by the event whose id and correlation id are given (as
 * proc_ebatch_append with a cause), built in place: one block of the
 * batch's zone for its strings, no msgpack to unpack, no clock read (the
 * caller's occurred_ns). SL_OK, SL_ENOMEM.
 */
int
proc_ebatch_link(ebatch *b, const char *stream, const char *target,
    size_t tlen, uint64_t revision, const uint8_t cause_id[16],
    const char *corr, size_t corr_len, int64_t occurred_ns)
{
	store_append *a = ebatch_slot(b);
	size_t        sl = strlen(stream);
	char *m = msgpack_zone_malloc(b->zone, sl + 1 + 21 + tlen + corr_len + 1 + 37);
	msgpack_object *obj = msgpack_zone_malloc(b->zone, sizeof(*obj));
	if (a == NULL || m == NULL || obj == NULL)
		return SL_ENOMEM;
	char *st = m;
	memcpy(st, stream, sl + 1);
	char  *ct = st + sl + 1;
	size_t cn = u64_text(revision, ct);
	ct[cn++]  = '@';
	memcpy(ct + cn, target, tlen);
	cn += tlen;
	char *co = ct + cn;
	memcpy(co, corr, corr_len);
	co[corr_len] = '\0';
	char *ca     = co + corr_len + 1;
	ev_uuid_text(cause_id, ca);
	obj->type         = MSGPACK_OBJECT_STR;
	obj->via.str.ptr  = ct;
	obj->via.str.size = (uint32_t) cn;
	memset(a, 0, sizeof(*a));
	a->stream        = st;
	a->ev.type       = EV_LINK_TYPE;
	a->ev.type_len   = sizeof(EV_LINK_TYPE) - 1;
	a->ev.generation = 1;
	ev_uuid_generate(a->ev.id);
	a->ev.occurred_ns     = occurred_ns;
	a->ev.content         = obj;
	a->ev.correlation_id  = co;
	a->ev.correlation_len = corr_len;
	a->ev.causation_id    = ca;
	a->ev.causation_len   = 36;
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
typedef struct shared_out {
	char  *data;
	size_t len;
} shared_out;

static int
shared_out_cb(void *arg, const void *key, size_t key_len, const void *val,
    size_t val_len)
{
	(void) key;
	(void) key_len;
	shared_out      *o = arg;
	msgpack_unpacked up;
	size_t           off = 0;
	int              rc  = SL_EPROTO;
	msgpack_unpacked_init(&up);
	if (msgpack_unpack_next(&up, val, val_len, &off)
	        == MSGPACK_UNPACK_SUCCESS
	    && up.data.type == MSGPACK_OBJECT_MAP) {
		const msgpack_object *sh = mp_get(&up.data, "shared");
		rc                       = SL_OK;
		if (sh != NULL && sh->type == MSGPACK_OBJECT_BIN) {
			o->data = malloc(sh->via.bin.size + 1);
			if (o->data == NULL)
				rc = SL_ENOMEM;
			else {
				memcpy(o->data, sh->via.bin.ptr,
				    sh->via.bin.size);
				o->len = sh->via.bin.size;
			}
		}
	}
	msgpack_unpacked_destroy(&up);
	return rc;
}

int
eproj_read_shared(store *s, const char *tenant, const proj_def *def,
    char **data, size_t *len)
{
	shared_out o = { NULL, 0 };
	int rc = store_get_checkpoint(s, tenant, def->id, shared_out_cb, &o);
	if (rc == SL_OK && o.data == NULL)
		rc = SL_ENOTFOUND;
	if (rc != SL_OK) {
		free(o.data);
		o.data = NULL;
		o.len  = 0;
	}
	*data = o.data;
	*len  = o.len;
	return rc;
}

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
	fl->w.lease          = em->lease;
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
	/* The batch at the store first: until it is durable, status shows
	 * the checkpoint before it, and storing that one again would move
	 * the checkpoint back behind what the batch wrote (a kill then
	 * writes its events twice). */
	int rc = proc_emit_sync(p, reason, sizeof(reason));
	pthread_mutex_lock(&p->mu);
	uint64_t pos = p->st.position; /* the fold is stored: between batches */
	pthread_mutex_unlock(&p->mu);
	if (rc == SL_OK)
		rc = emit_submit(p, false, pos, true, reason, sizeof(reason));
	if (rc != SL_OK)
		log_error("emitter", "%s/%s: %s", p->tenant, p->proj_id, reason);
	return rc;
}

/* ---- the lease (a log shared by nodes) ---- */

/* Whether p runs under a lease at all. */
static bool
lease_run(const processor *p)
{
	return p->em != NULL && p->em->mode == CFG_MODE_CONTINUOUS
	    && store_leased(p->s);
}

bool
proc_emit_lease_ok(processor *p)
{
	if (!lease_run(p))
		return true;
	uint64_t ep = store_lease_get(p->s, p->tenant, p->proj_id, NULL, 0);
	return ep != 0 && ep == p->em->lease;
}

bool
proc_emit_lease_wait(processor *p)
{
	char    holder[128];
	bool    said = false;
	if (!lease_run(p))
		return true;
	if (store_lease_want(p->s, p->tenant, p->proj_id) != SL_OK) {
		snprintf(holder, sizeof(holder), "out of memory");
		return false;
	}
	for (;;) {
		uint64_t ep = store_lease_get(
		    p->s, p->tenant, p->proj_id, holder, sizeof(holder));
		if (ep != 0) {
			if (said || p->em->lease != 0)
				log_info("emitter",
				    "%s/%s: this node holds its lease (epoch "
				    "%" PRIu64 "): running",
				    p->tenant, p->proj_id, ep);
			p->em->lease = ep;
			return true;
		}
		pthread_mutex_lock(&p->mu);
		p->st.state = PROC_STANDBY;
		if (holder[0] != '\0')
			snprintf(p->st.reason, sizeof(p->st.reason),
			    "another node holds its lease: %s", holder);
		else
			snprintf(p->st.reason, sizeof(p->st.reason),
			    "waiting for its lease");
		/* commands wait for the node that holds the lease */
		bool quit = p->stop || p->has_pending;
		pthread_mutex_unlock(&p->mu);
		if (!said)
			log_info("emitter", "%s/%s: standby: %s", p->tenant,
			    p->proj_id, p->st.reason);
		said = true;
		if (quit)
			return false;
		struct timespec ts = { 0, 100 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
}

/* ---- a batch ---- */

/* Whether the batch before is still at the store (its fsync not done). */
static bool
flight_writing(const proc_emit *em)
{
	eflight *fl = em->fl;
	if (fl == NULL || !fl->busy)
		return false;
	pthread_mutex_lock(&fl->mu);
	bool done = fl->done;
	pthread_mutex_unlock(&fl->mu);
	return !done;
}

bool
proc_emit_cut(const batch_ctx *b)
{
	const proc_emit *em = b->p->em;
	const proj_settings *set = &em->set;
	if (em->cancel != NULL && em->cancel(em->cancel_arg))
		return true;
	uint64_t handled = set->checkpoint_handled_threshold;
	uint64_t appends = set->max_write_batch_length;
	size_t   n_app   = em->eb != NULL ? em->eb->n_appends : 0;
	bool     reached = (handled > 0 && b->handled >= handled)
	    || (appends > 0 && n_app >= appends);
	if (!reached)
		return false;
	/* While the batch before is still being written (a disk slower than
	 * the handlers), this one grows on up to PROC_EMIT_GROW times both
	 * thresholds rather than wait for it: fewer, bigger transactions,
	 * and the handlers never idle behind an fsync. */
	bool capped = (handled > 0 && b->handled >= handled * PROC_EMIT_GROW)
	    || (appends > 0 && n_app >= appends * PROC_EMIT_GROW);
	return capped || !flight_writing(em);
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
	if (p->states.dirty != NULL && (eb = proc_ebatch_get(em)) == NULL) {
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

