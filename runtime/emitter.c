/*
 * The engine of emitting projections (see emitter.h): per continuous or
 * transient run a reader thread copying the tenant's events from the log
 * into a bounded queue, and a handler thread calling the projection,
 * collecting what it emits and committing batches (appends + changed
 * states + checkpoint) through the store's writer; one-time queries run the
 * same handling in the caller's thread, in memory.
 *
 * Persisted per (tenant, projection id), in the log env:
 *   "pcheck": a msgpack map {position, def_hash, stopped}: the next
 *             position to handle, the definition it was built with, and
 *             whether an operator stopped it (PAUSE / `stop`, persisted
 *             here, so it survives a restart);
 *   "pstate": the states (msgpack maps) by key.
 *
 * At most one batch is at the store at a time: the next sealed one is
 * submitted when the previous one is done, so that a refused batch (e.g.
 * SL_EOWNED) is never followed by a later one that would move the
 * checkpoint past the events it held. max_allowed_writes_in_flight counts
 * the batches sealed and not yet durable.
 */
#include "emitter.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "host.h"
#include "log.h"
#include "mp.h"
#include "sysproj.h"

/* The reader stops adding to the queue past this many bytes as well. */
#define QUEUE_BYTES_MAX ((size_t) 64 << 20)
/* Events the reader copies per read transaction, at most. */
#define READ_CHUNK 512
/* Clean states kept in memory (continuous runs) beyond the pinned ones. */
#define CACHE_LRU_MAX 4096
/* Retry delays of a faulted run: 50 ms doubling to 10 s. */
#define RETRY_FIRST_MS 50
#define RETRY_MAX_MS   10000
/* events/s: a sliding window of this many seconds */
#define RATE_SECS 5

typedef enum run_kind {
	RUN_CONTINUOUS,
	RUN_TRANSIENT,
	RUN_QUERY,
} run_kind;

/* ---- time ---- */

static int64_t
mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void
abs_deadline(struct timespec *ts, int64_t mono_at)
{
	ts->tv_sec  = (time_t) (mono_at / 1000000000);
	ts->tv_nsec = (long) (mono_at % 1000000000);
}

/* The cond vars wait on CLOCK_MONOTONIC. */
static void
cond_init_mono(pthread_cond_t *cv)
{
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(cv, &ca);
	pthread_condattr_destroy(&ca);
}

/* ---- emitting projections: what they are and claim ---- */

bool
eproj_is_emitting(const proj_def *def)
{
	if (def == NULL || def_is_filter(def))
		return false;
	if (sysproj_is_system(def))
		return true;
	size_t n;
	(void) proj_def_emits(def, &n);
	return n > 0 || proj_def_result(def) != NULL;
}

/* "$projections-<name>-" (result streams start with it). */
static char *
result_prefix(const proj_def *def)
{
	char *p;
	if (asprintf(&p, "$projections-%s-", def->name) < 0)
		return NULL;
	return p;
}

int
eproj_claim(store *s, const proj_def *def, char *err, size_t errlen)
{
	if (s == NULL || def == NULL || def_is_filter(def)) {
		snprintf(err, errlen, "not a projection");
		return SL_EINVAL;
	}
	size_t             n;
	const char *const *emits = proj_def_emits(def, &n);
	for (size_t i = 0; i < n; i++) {
		int rc = store_claim(
		    s, emits[i], def->id, def->name, err, errlen);
		if (rc != SL_OK)
			return rc;
	}
	char *rp = result_prefix(def);
	char *pat;
	if (rp == NULL || asprintf(&pat, "%s*", rp) < 0) {
		free(rp);
		snprintf(err, errlen, "out of memory");
		return SL_ENOMEM;
	}
	free(rp);
	int rc = store_claim(s, pat, def->id, def->name, err, errlen);
	free(pat);
	return rc;
}

/* ---- the state cache ---- */

/*
 * A key's state as the run knows it: the packed state (NULL: none, the
 * initial state applies), its result when known, and whether it waits for
 * a batch (dirty) or is in one not yet durable (pin_seq > done_seq).
 */
typedef struct centry {
	char          *key; /* NUL-terminated */
	size_t         key_len;
	void          *state; /* NULL: no state (deleted or never set) */
	size_t         state_len;
	bool           result_known;
	void          *result; /* NULL with result_known: no result */
	size_t         result_len;
	bool           dirty;
	uint64_t       pin_seq;
	struct centry *hnext;         /* hash chain */
	struct centry *lprev, *lnext; /* LRU, most recent first */
	struct centry *dnext;         /* dirty list */
} centry;

typedef struct cache {
	centry **tab;
	size_t   cap, n;
	centry  *lru_head, *lru_tail;
	centry  *dirty;
} cache;

static uint64_t
key_hash(const char *k, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char) k[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static void
centry_free(centry *c)
{
	free(c->key);
	free(c->state);
	free(c->result);
	free(c);
}

static void
lru_unlink(cache *c, centry *x)
{
	if (x->lprev != NULL)
		x->lprev->lnext = x->lnext;
	else
		c->lru_head = x->lnext;
	if (x->lnext != NULL)
		x->lnext->lprev = x->lprev;
	else
		c->lru_tail = x->lprev;
	x->lprev = x->lnext = NULL;
}

static void
lru_front(cache *c, centry *x)
{
	x->lprev = NULL;
	x->lnext = c->lru_head;
	if (c->lru_head != NULL)
		c->lru_head->lprev = x;
	c->lru_head = x;
	if (c->lru_tail == NULL)
		c->lru_tail = x;
}

static centry *
cache_find(cache *c, const char *key, size_t n)
{
	if (c->cap == 0)
		return NULL;
	for (centry *x = c->tab[key_hash(key, n) & (c->cap - 1)]; x != NULL;
	     x         = x->hnext)
                if (x->key_len == n && memcmp(x->key, key, n) == 0)
                        return x;
	return NULL;
}

static int
cache_grow(cache *c)
{
	size_t   ncap = c->cap != 0 ? c->cap * 2 : 256;
	centry **nt   = calloc(ncap, sizeof(*nt));
	if (nt == NULL)
		return SL_ENOMEM;
	for (size_t i = 0; i < c->cap; i++)
		for (centry *x = c->tab[i], *next; x != NULL; x = next) {
			next     = x->hnext;
			size_t h = key_hash(x->key, x->key_len) & (ncap - 1);
			x->hnext = nt[h];
			nt[h]    = x;
		}
	free(c->tab);
	c->tab = nt;
	c->cap = ncap;
	return SL_OK;
}

/* A new entry with no state (the caller fills it). NULL on OOM. */
static centry *
cache_add(cache *c, const char *key, size_t n)
{
	if (c->n + 1 > c->cap / 2 * 1 + c->cap / 4 && cache_grow(c) != SL_OK)
		return NULL;
	centry *x = calloc(1, sizeof(*x));
	if (x == NULL || (x->key = malloc(n + 1)) == NULL) {
		free(x);
		return NULL;
	}
	memcpy(x->key, key, n);
	x->key[n]  = '\0';
	x->key_len = n;
	size_t h   = key_hash(key, n) & (c->cap - 1);
	x->hnext   = c->tab[h];
	c->tab[h]  = x;
	c->n++;
	lru_front(c, x);
	return x;
}

static void
cache_remove(cache *c, centry *x)
{
	centry **pp = &c->tab[key_hash(x->key, x->key_len) & (c->cap - 1)];
	while (*pp != x)
		pp = &(*pp)->hnext;
	*pp = x->hnext;
	lru_unlink(c, x);
	c->n--;
	centry_free(x);
}

static void
cache_clear(cache *c)
{
	for (size_t i = 0; i < c->cap; i++)
		for (centry *x = c->tab[i], *next; x != NULL; x = next) {
			next = x->hnext;
			centry_free(x);
		}
	free(c->tab);
	memset(c, 0, sizeof(*c));
}

/* Drop clean entries no batch in flight needs, past the LRU bound. */
static void
cache_evict(cache *c, uint64_t done_seq, size_t keep)
{
	size_t skipped = 0;
	for (centry *x                                    = c->lru_tail, *prev;
	     x != NULL && c->n > keep && skipped < 256; x = prev) {
		prev = x->lprev;
		if (x->dirty || x->pin_seq > done_seq) {
			skipped++;
			continue;
		}
		cache_remove(c, x);
	}
}

static int
cmp_entries(const void *a, const void *b)
{
	const centry *x = *(centry *const *) a, *y = *(centry *const *) b;
	size_t        n = x->key_len < y->key_len ? x->key_len : y->key_len;
	int           r = memcmp(x->key, y->key, n);
	if (r != 0)
		return r;
	return x->key_len < y->key_len ? -1 : x->key_len > y->key_len;
}

/* ---- batches ---- */

typedef struct batch {
	struct eproj *e;
	uint64_t      seq;
	store_emit    em;
	store_append *appends;
	size_t        n_appends, cap_appends;
	store_kv     *states;
	size_t        n_states, cap_states;
	msgpack_zone *zone; /* every string, content and object of the batch */
	uint64_t      handled; /* events handled */
	uint64_t      unhandled_bytes;
	uint64_t      end_pos; /* the checkpoint's position */
	struct batch *next;
	char          ckpt[64];
} batch;

static batch *
batch_new(void)
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

static void
batch_free(batch *b)
{
	if (b == NULL)
		return;
	free(b->appends);
	free(b->states);
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

static int
batch_state(batch *b, const centry *x)
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

typedef struct ckpt {
	uint64_t position;
	uint64_t def_hash;
	bool     stopped;
} ckpt;

static size_t
ckpt_pack(const ckpt *c, char *buf, size_t cap)
{
	msgpack_sbuffer sb;
	msgpack_packer  pk;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 3);
	msgpack_pack_str_with_body(&pk, "position", 8);
	msgpack_pack_uint64(&pk, c->position);
	msgpack_pack_str_with_body(&pk, "def_hash", 8);
	msgpack_pack_uint64(&pk, c->def_hash);
	msgpack_pack_str_with_body(&pk, "stopped", 7);
	if (c->stopped)
		msgpack_pack_true(&pk);
	else
		msgpack_pack_false(&pk);
	size_t n = sb.size <= cap ? sb.size : 0;
	if (n > 0)
		memcpy(buf, sb.data, n);
	msgpack_sbuffer_destroy(&sb);
	return n;
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
	}
	msgpack_unpacked_destroy(&up);
	return rc == SL_OK ? 0 : 1;
}

/* SL_OK, SL_ENOTFOUND, SL_ESTORAGE, SL_EPROTO (a corrupt record). */
static int
ckpt_read(store *s, const char *tenant, const char *owner, ckpt *out)
{
	memset(out, 0, sizeof(*out));
	int rc = store_get_checkpoint(s, tenant, owner, ckpt_cb, out);
	return rc == 1 ? SL_EPROTO : rc;
}

/* ---- a run: the handling shared by every mode ---- */

typedef struct run {
	run_kind           kind;
	store             *s;
	const char        *tenant;
	const proj_def    *def;
	bool               system;
	const char *const *emits;
	size_t             n_emits;
	proj_result_fn     result;
	char              *rprefix; /* "$projections-<name>-" */
	cache              c;
	batch             *b;    /* continuous: the batch being built */
	msgpack_zone      *zone; /* per event decoding */
	emit_sink          sink;
	const ev_view     *cur;      /* the event being handled */
	int                sink_rc;  /* first failure of the sink */
	const char        *only_key; /* query: just this key (NULL: all) */
	size_t             only_len;
	pthread_mutex_t   *cmu; /* transient: the cache, for snapshots */
} run;

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
static int
run_set_def(run *r, const proj_def *def)
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
	if ((r->rprefix = result_prefix(def)) == NULL)
		return SL_ENOMEM;
	r->sink.def    = def;
	r->sink.system = r->system;
	return SL_OK;
}

static int
run_init(
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
	return run_set_def(r, def);
}

static void
run_fini(run *r)
{
	cache_clear(&r->c);
	batch_free(r->b);
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
static int
compute_result(proj_result_fn fn, const proj_def *def, const char *key,
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
	centry *x = cache_find(&r->c, key, n);
	if (x != NULL) {
		lru_unlink(&r->c, x);
		lru_front(&r->c, x);
		*out = x;
		return SL_OK;
	}
	if ((x = cache_add(&r->c, key, n)) == NULL)
		return SL_ENOMEM;
	if (r->kind == RUN_CONTINUOUS) {
		int rc = store_get_pstate(
		    r->s, r->tenant, r->def->id, key, n, copy_cb, x);
		if (rc != SL_OK && rc != SL_ENOTFOUND) {
			cache_remove(&r->c, x);
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

/* What handling one event came to. */
typedef enum hres {
	H_SKIPPED, /* not the tenant's, not selected, or in its own stream */
	H_HANDLED,
	H_FAILED, /* why says why; ctx.no_retry / retry_after_ms apply */
	H_ERROR,  /* storage or memory: the run restarts */
} hres;

typedef struct hfail {
	char     why[512];
	bool     no_retry;
	uint32_t retry_after_ms;
} hfail;

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
	if (rc != SL_OK)
		return fail_with(f, true, "%s", key);
	size_t kn = strlen(key);
	if (r->only_key != NULL
	    && (kn != r->only_len || memcmp(key, r->only_key, kn) != 0))
		return H_SKIPPED;

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
	sl_outcome out = r->def->p->on(r->def->p->user, &ev, key, &st, &ctx);
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
		    && compute_result(r->result, r->def, key, x->state,
		           x->state_len, &ores, &ores_len, f->why,
		           sizeof(f->why))
		        != SL_OK)
			goto result_failed;
		if (nstate != NULL
		    && compute_result(r->result, r->def, key, nstate, nlen,
		           &nres, &nres_len, f->why, sizeof(f->why))
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
static hres
run_record(run *r, uint64_t pos, const void *data, size_t len,
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

/* ---- the continuous / transient run ---- */

typedef struct qrec {
	struct qrec  *next;
	uint64_t      position;
	size_t        len;
	unsigned char data[];
} qrec;

struct eproj {
	store          *s;
	char           *tenant;
	char            id[37];
	cfg_mode        mode;
	proj_settings   set;
	run             r; /* handler thread only (cache: cmu for transient) */
	pthread_mutex_t cmu;

	pthread_mutex_t mu;
	pthread_cond_t  cv;  /* the handler: records, batches, commands */
	pthread_cond_t  rcv; /* the reader: room, restarts */
	pthread_cond_t  cmd_cv;
	pthread_t       reader, handler;
	bool            reader_started, handler_started;
	bool            stopping;

	/* definitions */
	const proj_def *def;      /* the one status shows (held) */
	const proj_def *next_def; /* from eproj_set_def, held */
	bool            def_pending;

	/* the queue */
	qrec    *qhead, *qtail;
	size_t   qn, qbytes;
	uint64_t read_pos; /* the reader's next position */
	uint64_t read_gen; /* bumped when the handler restarts the reader */
	uint64_t skipped_bytes; /* other tenants' bytes the reader passed */
	bool     reader_full;

	/* commands */
	proc_cmd cmd;
	uint64_t cmd_seq, cmd_taken;

	/* batches */
	batch   *sealed_head, *sealed_tail;
	batch   *submitted;
	uint32_t in_flight; /* sealed + submitted */
	uint64_t next_seq, done_seq;
	int      batch_rc;
	char     batch_msg[200];

	/* status */
	char     status_reason[256];
	bool     paused, faulted, waiting_writes;
	uint64_t position, head, events_processed, emitted, cached;
	/* the handled position when nothing is left to commit: the events
	 * after the checkpoint were all skipped (e.g. its own writes), so it
	 * is as good as committed (status only; never stored for that) */
	uint64_t clean_pos;
	uint32_t attempts;
	uint64_t rate_sec[RATE_SECS];
	uint64_t rate_n[RATE_SECS];
	int64_t  started_ns;
};

const char *
eproj_id(const eproj *e)
{
	return e->id;
}

const char *
eproj_tenant(const eproj *e)
{
	return e->tenant;
}

const proj_def *
eproj_def(eproj *e)
{
	pthread_mutex_lock(&e->mu);
	const proj_def *d = e->def;
	pthread_mutex_unlock(&e->mu);
	return d;
}

/* Count n events processed now (under mu). */
static void
rate_add(eproj *e, uint64_t n)
{
	uint64_t sec = (uint64_t) (mono_ns() / 1000000000);
	size_t   i   = sec % RATE_SECS;
	if (e->rate_sec[i] != sec) {
		e->rate_sec[i] = sec;
		e->rate_n[i]   = 0;
	}
	e->rate_n[i] += n;
	e->events_processed += n;
}

static double
rate_get(const eproj *e)
{
	int64_t  now = mono_ns();
	uint64_t sec = (uint64_t) (now / 1000000000), sum = 0;
	for (size_t i = 0; i < RATE_SECS; i++)
		if (e->rate_sec[i] + RATE_SECS > sec)
			sum += e->rate_n[i];
	double span = (double) (now - e->started_ns) / 1e9;
	if (span > RATE_SECS)
		span = RATE_SECS;
	if (span < 1)
		span = 1;
	return (double) sum / span;
}

/* ---- the reader thread ---- */

/* Whether a stored record (msgpack array, tenant first) is tenant's.
 * Unreadable headers say yes: the handler decodes and reports them. */
static bool
rec_is_tenant(const unsigned char *p, size_t len, const char *t, size_t tl)
{
	size_t i = 0;
	if (len < 2)
		return true;
	if ((p[0] & 0xf0) == 0x90)
		i = 1;
	else if (p[0] == 0xdc)
		i = 3;
	else if (p[0] == 0xdd)
		i = 5;
	else
		return true;
	if (i >= len)
		return true;
	size_t        n;
	unsigned char h = p[i];
	if ((h & 0xe0) == 0xa0) {
		n = h & 0x1f;
		i += 1;
	} else if (h == 0xd9 && i + 1 < len) {
		n = p[i + 1];
		i += 2;
	} else if (h == 0xda && i + 2 < len) {
		n = (size_t) p[i + 1] << 8 | p[i + 2];
		i += 3;
	} else {
		return true;
	}
	return n == tl && i + n <= len && memcmp(p + i, t, n) == 0;
}

typedef struct rscan {
	eproj   *e;
	qrec    *head, *tail;
	size_t   n, bytes;
	uint64_t skipped;
	size_t   tl;
} rscan;

static int
reader_cb(void *arg, uint64_t position, const void *data, size_t len)
{
	rscan *rs = arg;
	if (!rec_is_tenant(data, len, rs->e->tenant, rs->tl)) {
		rs->skipped += len;
		return 0;
	}
	qrec *q = malloc(sizeof(*q) + len);
	if (q == NULL)
		return SL_ENOMEM;
	q->next     = NULL;
	q->position = position;
	q->len      = len;
	memcpy(q->data, data, len);
	if (rs->tail != NULL)
		rs->tail->next = q;
	else
		rs->head = q;
	rs->tail = q;
	rs->n++;
	rs->bytes += len;
	return rs->bytes >= QUEUE_BYTES_MAX / 8 ? 1 : 0;
}

static void
qrec_free_list(qrec *q)
{
	while (q != NULL) {
		qrec *next = q->next;
		free(q);
		q = next;
	}
}

static void *
reader_main(void *arg)
{
	eproj *e     = arg;
	size_t limit = e->set.pending_events_threshold > 0
	    ? e->set.pending_events_threshold
	    : 1;
	pthread_mutex_lock(&e->mu);
	while (!e->stopping) {
		if (e->qn >= limit || e->qbytes >= QUEUE_BYTES_MAX) {
			e->reader_full = true;
			pthread_cond_wait(&e->rcv, &e->mu);
			continue;
		}
		e->reader_full = false;
		uint64_t from = e->read_pos, gen = e->read_gen;
		size_t   room = limit - e->qn;
		if (room > READ_CHUNK)
			room = READ_CHUNK;
		pthread_mutex_unlock(&e->mu);

		rscan    rs   = { .e = e, .tl = strlen(e->tenant) };
		uint64_t next = from;
		int rc = store_scan(e->s, from, room, reader_cb, &rs, &next);
		uint64_t head = store_next_position(e->s);

		pthread_mutex_lock(&e->mu);
		if (gen != e->read_gen) { /* restarted meanwhile */
			qrec_free_list(rs.head);
			continue;
		}
		if (rc != SL_OK && rc != 1) {
			qrec_free_list(rs.head);
			log_error("emitter",
			    "%s/%s: reading the log at %" PRIu64 ": %s",
			    e->tenant, e->id, from, sl_strerror(rc));
			struct timespec ts;
			abs_deadline(&ts, mono_ns() + 1000000000LL);
			pthread_cond_timedwait(&e->rcv, &e->mu, &ts);
			continue;
		}
		if (rs.head != NULL) {
			if (e->qtail != NULL)
				e->qtail->next = rs.head;
			else
				e->qhead = rs.head;
			e->qtail = rs.tail;
			e->qn += rs.n;
			e->qbytes += rs.bytes;
		}
		e->read_pos = next;
		e->skipped_bytes += rs.skipped;
		e->head = head;
		pthread_cond_broadcast(&e->cv);
		if (next >= head) {
			/* caught up: wait for the log to grow */
			pthread_mutex_unlock(&e->mu);
			head = store_wait(e->s, next, 1000);
			pthread_mutex_lock(&e->mu);
			e->head = head > e->head ? head : e->head;
		}
	}
	pthread_mutex_unlock(&e->mu);
	return NULL;
}

/* ---- batches of the handler (call with mu held unless said) ---- */

static void set_reason(eproj *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void
set_reason(eproj *e, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->status_reason, sizeof(e->status_reason), fmt, ap);
	va_end(ap);
}

static void
batch_done(store_emit *em, void *arg)
{
	batch *b = arg;
	eproj *e = b->e;
	pthread_mutex_lock(&e->mu);
	if (em->rc == SL_OK) {
		e->position = b->end_pos;
		e->done_seq = b->seq;
		e->emitted += b->n_appends;
	} else if (e->batch_rc == SL_OK) {
		e->batch_rc = em->rc;
		snprintf(e->batch_msg, sizeof(e->batch_msg), "%s",
		    em->message[0] != '\0' ? em->message
		                           : sl_strerror(em->rc));
	}
	e->submitted = NULL;
	e->in_flight--;
	pthread_cond_broadcast(&e->cv);
	pthread_mutex_unlock(&e->mu);
	batch_free(b);
}

/* Submit the next sealed batch if none is at the store. */
static void
submit_next(eproj *e)
{
	while (e->submitted == NULL && e->sealed_head != NULL
	    && e->batch_rc == SL_OK) {
		batch *b       = e->sealed_head;
		e->sealed_head = b->next;
		if (e->sealed_head == NULL)
			e->sealed_tail = NULL;
		b->next      = NULL;
		e->submitted = b;
		pthread_mutex_unlock(&e->mu);
		int rc = store_submit_emit(e->s, &b->em);
		pthread_mutex_lock(&e->mu);
		if (rc != SL_OK) {
			e->submitted = NULL;
			e->in_flight--;
			e->batch_rc = rc;
			snprintf(e->batch_msg, sizeof(e->batch_msg),
			    "cannot submit a batch: %s", sl_strerror(rc));
			batch_free(b);
		}
	}
}

/*
 * Seal r.b as a batch ending at pos (the next position to handle), with
 * the dirty states, and queue it for the store. stopped: the flag kept in
 * its checkpoint.
 */
static int
seal(eproj *e, uint64_t pos, bool stopped)
{
	run   *r = &e->r;
	batch *b = r->b;
	if (b == NULL && (b = batch_new()) == NULL)
		return SL_ENOMEM;
	r->b   = NULL;
	b->e   = e;
	b->seq = ++e->next_seq;
	int rc = SL_OK;
	for (centry *x = r->c.dirty, *next; x != NULL; x = next) {
		next       = x->dnext;
		x->dnext   = NULL;
		x->dirty   = false;
		x->pin_seq = b->seq;
		if (rc == SL_OK)
			rc = batch_state(b, x);
	}
	r->c.dirty = NULL;
	if (rc != SL_OK) {
		batch_free(b);
		return rc;
	}
	ckpt c               = { .position = pos,
		              .def_hash    = r->def != NULL ? r->def->def_hash : 0,
		              .stopped     = stopped };
	b->end_pos           = pos;
	b->em.tenant         = e->tenant;
	b->em.owner          = e->id;
	b->em.appends        = b->appends;
	b->em.n_appends      = b->n_appends;
	b->em.states         = b->states;
	b->em.n_states       = b->n_states;
	b->em.checkpoint     = b->ckpt;
	b->em.checkpoint_len = ckpt_pack(&c, b->ckpt, sizeof(b->ckpt));
	b->em.done           = batch_done;
	b->em.arg            = b;
	if (e->sealed_tail != NULL)
		e->sealed_tail->next = b;
	else
		e->sealed_head = b;
	e->sealed_tail = b;
	e->in_flight++;
	submit_next(e);
	return SL_OK;
}

/* Wait (mu held) until every sealed batch is done. */
static void
drain(eproj *e)
{
	for (;;) {
		submit_next(e);
		if (e->batch_rc != SL_OK) {
			/* a failed batch: the ones after it are dropped */
			while (e->sealed_head != NULL) {
				batch *b       = e->sealed_head;
				e->sealed_head = b->next;
				e->in_flight--;
				batch_free(b);
			}
			e->sealed_tail = NULL;
		}
		if (e->in_flight == 0)
			return;
		pthread_cond_wait(&e->cv, &e->mu);
	}
}

/* Drop the queue, the cache and the batch being built; the reader starts
 * again at pos. */
static void
restart_at(eproj *e, uint64_t pos)
{
	qrec_free_list(e->qhead);
	e->qhead = e->qtail = NULL;
	e->qn = e->qbytes = 0;
	e->read_pos       = pos;
	e->clean_pos      = 0;
	e->read_gen++;
	e->skipped_bytes = 0;
	pthread_mutex_lock(&e->cmu);
	cache_clear(&e->r.c);
	pthread_mutex_unlock(&e->cmu);
	batch_free(e->r.b);
	e->r.b    = NULL;
	e->cached = 0;
	pthread_cond_broadcast(&e->rcv);
	/* the reader may be waiting for the log to grow */
	store_wake_all(e->s);
}

/* Soft-delete what the run wrote and start again from 0 (mu held). */
static int
do_reset(eproj *e)
{
	drain(e);
	e->batch_rc = SL_OK;
	restart_at(e, 0);
	if (e->mode == CFG_MODE_TRANSIENT) {
		e->position = 0;
		return SL_OK;
	}
	ckpt       c = { .position = 0,
		      .def_hash    = e->r.def != NULL ? e->r.def->def_hash : 0,
		      .stopped     = e->paused };
	char       buf[64];
	store_emit em = { .tenant = e->tenant, .owner = e->id, .reset = true };
	em.checkpoint = buf;
	em.checkpoint_len = ckpt_pack(&c, buf, sizeof(buf));
	pthread_mutex_unlock(&e->mu);
	int rc = store_emit_wait(e->s, &em);
	pthread_mutex_lock(&e->mu);
	if (rc != SL_OK) {
		e->batch_rc = rc;
		snprintf(e->batch_msg, sizeof(e->batch_msg), "reset: %s",
		    em.message[0] != '\0' ? em.message : sl_strerror(rc));
		return rc;
	}
	e->position = 0;
	log_info("emitter",
	    "%s/%s: reset: streams soft-deleted, states "
	    "dropped, running again from 0",
	    e->tenant, e->id);
	return SL_OK;
}

static uint32_t
retry_delay_ms(uint32_t attempts)
{
	uint64_t d = RETRY_FIRST_MS;
	for (uint32_t i = 1; i < attempts && d < RETRY_MAX_MS; i++)
		d *= 2;
	return d > RETRY_MAX_MS ? RETRY_MAX_MS : (uint32_t) d;
}

static void
timed_wait_until(eproj *e, int64_t at)
{
	struct timespec ts;
	abs_deadline(&ts, at);
	pthread_cond_timedwait(&e->cv, &e->mu, &ts);
}

/* ---- the handler thread ---- */

typedef struct hstate {
	uint64_t hpos; /* next position to handle (in memory) */
	bool     need_reset;
	int64_t  last_commit;
	/* a faulted event */
	bool    fault_retry;
	int64_t next_try;
	char    last_reason[512];
	/* a failed batch */
	uint32_t batch_failures;
	int64_t  restart_at;
} hstate;

/* Whether the batch being built should be committed now. */
static bool
want_commit(eproj *e, const hstate *h, bool caught_up)
{
	const batch *b = e->r.b;
	uint64_t     n = b != NULL ? b->handled : 0;
	uint64_t u = (b != NULL ? b->unhandled_bytes : 0) + e->skipped_bytes;
	size_t   a = b != NULL ? b->n_appends : 0;
	if (e->mode == CFG_MODE_TRANSIENT)
		return false;
	if (h->hpos <= e->position && e->in_flight == 0 && a == 0)
		return false;
	return n >= e->set.checkpoint_handled_threshold
	    || u >= e->set.checkpoint_unhandled_bytes_threshold
	    || (e->set.max_write_batch_length > 0
	        && a >= e->set.max_write_batch_length)
	    || (caught_up && (n > 0 || a > 0));
}

/* Commit the batch being built if the settings allow it now; else report
 * when to look again (0: when something happens). */
static void
maybe_commit(eproj *e, hstate *h, bool caught_up, int64_t *wake)
{
	*wake = 0;
	if (!want_commit(e, h, caught_up)) {
		e->waiting_writes = false;
		return;
	}
	int64_t after
	    = h->last_commit + (int64_t) e->set.checkpoint_after_ms * 1000000;
	int64_t now = mono_ns();
	if (now < after) {
		*wake = after;
		return;
	}
	if (e->set.max_allowed_writes_in_flight > 0
	    && e->in_flight >= e->set.max_allowed_writes_in_flight) {
		e->waiting_writes = true;
		return;
	}
	e->waiting_writes = false;
	e->skipped_bytes  = 0;
	int rc            = seal(e, h->hpos, e->paused);
	if (rc != SL_OK) {
		e->batch_rc = rc;
		snprintf(e->batch_msg, sizeof(e->batch_msg),
		    "cannot build a batch: %s", sl_strerror(rc));
	}
	h->last_commit = now;
	pthread_mutex_lock(&e->cmu);
	cache_evict(&e->r.c, e->done_seq, CACHE_LRU_MAX);
	pthread_mutex_unlock(&e->cmu);
	e->cached = e->r.c.n;
}

/* Take an operator command (mu held). */
static void
take_command(eproj *e, hstate *h)
{
	if (e->cmd_taken == e->cmd_seq)
		return;
	proc_cmd cmd = e->cmd;
	e->cmd_taken = e->cmd_seq;
	switch (cmd) {
	case PROC_CMD_RESET:
		h->need_reset = true;
		break;
	case PROC_CMD_RETRY:
		if (e->faulted) {
			h->fault_retry = true;
			h->next_try    = 0;
		}
		h->restart_at = 0;
		break;
	case PROC_CMD_PAUSE:
	case PROC_CMD_RESUME: {
		bool stop = cmd == PROC_CMD_PAUSE;
		if (e->paused == stop)
			break;
		e->paused = stop;
		if (e->mode != CFG_MODE_TRANSIENT && e->batch_rc == SL_OK
		    && e->r.def != NULL) {
			/* persisted in the checkpoint, with what was handled
			 */
			e->skipped_bytes = 0;
			(void) seal(e, h->hpos, stop);
			h->last_commit = mono_ns();
		}
		break;
	}
	}
	pthread_cond_broadcast(&e->cmd_cv);
}

/* Switch to a definition handed over by eproj_set_def (mu held). */
static void
take_def(eproj *e, hstate *h)
{
	if (!e->def_pending)
		return;
	const proj_def *nd = e->next_def, *od = e->def;
	e->def_pending = false;
	e->next_def    = NULL;
	if (nd != NULL && od != NULL && nd->def_hash != od->def_hash)
		h->need_reset = true;
	if (nd == NULL && e->r.b != NULL && e->batch_rc == SL_OK) {
		e->skipped_bytes = 0;
		(void) seal(e, h->hpos, e->paused); /* keep what was done */
	}
	/* the same definition (new code) switches between two events */
	drain(e); /* a batch in flight was built by the old definition */
	if (run_set_def(&e->r, nd) != SL_OK)
		log_error("emitter", "%s/%s: out of memory", e->tenant, e->id);
	e->def = nd;
	proj_def_release(od);
}

static void
set_fault(eproj *e, hstate *h, const hfail *f, uint64_t pos)
{
	e->faulted = true;
	e->attempts++;
	h->fault_retry = !f->no_retry;
	uint32_t delay = f->retry_after_ms > 0 ? f->retry_after_ms
	                                       : retry_delay_ms(e->attempts);
	h->next_try    = mono_ns() + (int64_t) delay * 1000000;
	snprintf(h->last_reason, sizeof(h->last_reason), "%s", f->why);
	set_reason(e, "event at position %" PRIu64 ": %.200s", pos, f->why);
	log_warn("emitter", "%s/%s '%s': %s (attempt %u%s)", e->tenant, e->id,
	    e->def != NULL ? e->def->name : "?", e->status_reason, e->attempts,
	    h->fault_retry ? "" : ", not retried until retry or reset");
}

static void
clear_fault(eproj *e, hstate *h)
{
	if (!e->faulted)
		return;
	e->faulted        = false;
	e->attempts       = 0;
	h->last_reason[0] = '\0';
	if (!e->waiting_writes)
		e->status_reason[0] = '\0';
}

static void *
handler_main(void *arg)
{
	eproj *e = arg;
	hstate h;
	memset(&h, 0, sizeof(h));
	pthread_mutex_lock(&e->mu);
	h.hpos        = e->position;
	h.last_commit = 0;
	h.need_reset  = e->batch_rc == -1; /* set by eproj_start */
	if (h.need_reset)
		e->batch_rc = SL_OK;

	while (!e->stopping) {
		take_command(e, &h);
		take_def(e, &h);
		submit_next(e);

		/* a failed batch: fault, then start again from the last
		 * committed checkpoint */
		if (e->batch_rc != SL_OK) {
			if (h.restart_at == 0) {
				h.batch_failures++;
				e->faulted  = true;
				e->attempts = h.batch_failures;
				set_reason(e, "writing a batch failed: %.200s",
				    e->batch_msg);
				log_warn("emitter", "%s/%s: %s", e->tenant,
				    e->id, e->status_reason);
				h.restart_at = mono_ns()
				    + (int64_t) retry_delay_ms(
				          h.batch_failures)
				        * 1000000;
			}
			if (mono_ns() < h.restart_at && !h.need_reset) {
				timed_wait_until(e, h.restart_at);
				continue;
			}
			drain(e);
			e->batch_rc  = SL_OK;
			h.restart_at = 0;
			restart_at(e, e->position);
			h.hpos              = e->position;
			e->faulted          = false;
			e->attempts         = 0;
			e->status_reason[0] = '\0';
			continue;
		}
		if (h.need_reset && e->def != NULL) {
			h.need_reset = false;
			clear_fault(e, &h);
			if (do_reset(e) != SL_OK)
				continue;
			h.hpos           = 0;
			h.batch_failures = 0;
			continue;
		}
		if (e->def == NULL || e->def->p == NULL || e->paused) {
			pthread_cond_wait(&e->cv, &e->mu);
			continue;
		}
		if (e->faulted && (!h.fault_retry || mono_ns() < h.next_try)) {
			if (h.fault_retry)
				timed_wait_until(e, h.next_try);
			else
				pthread_cond_wait(&e->cv, &e->mu);
			continue;
		}
		if (e->qhead == NULL) {
			/* caught up with what was read */
			if (e->read_pos > h.hpos)
				h.hpos = e->read_pos;
			int64_t wake;
			maybe_commit(e, &h, true, &wake);
			if ((e->r.b == NULL
			        || (e->r.b->handled == 0
			            && e->r.b->n_appends == 0))
			    && e->r.c.dirty == NULL && e->in_flight == 0)
				e->clean_pos = h.hpos;
			if (wake != 0)
				timed_wait_until(e, wake);
			else if (e->qhead == NULL && !e->stopping)
				pthread_cond_wait(&e->cv, &e->mu);
			continue;
		}
		if (e->waiting_writes
		    && e->set.max_allowed_writes_in_flight > 0
		    && e->in_flight >= e->set.max_allowed_writes_in_flight) {
			set_reason(e,
			    "max_allowed_writes_in_flight (%u) reached",
			    e->set.max_allowed_writes_in_flight);
			pthread_cond_wait(&e->cv, &e->mu);
			continue;
		}

		qrec    *q   = e->qhead;
		uint64_t gen = e->read_gen;
		uint32_t att = e->faulted ? e->attempts : 0;
		pthread_mutex_unlock(&e->mu);

		if (e->r.b == NULL && e->mode != CFG_MODE_TRANSIENT)
			e->r.b = batch_new(); /* NULL: fails below as ENOMEM */
		hfail f;
		memset(&f, 0, sizeof(f));
		hres res;
		if (e->r.b == NULL && e->mode != CFG_MODE_TRANSIENT) {
			snprintf(f.why, sizeof(f.why), "out of memory");
			res = H_ERROR;
		} else {
			res = run_record(&e->r, q->position, q->data, q->len,
			    att, att > 0 ? h.last_reason : NULL, &f);
		}

		pthread_mutex_lock(&e->mu);
		if (gen != e->read_gen)
			continue; /* restarted meanwhile (cannot happen: the
			             handler restarts) */
		if (res == H_FAILED) {
			set_fault(e, &h, &f, q->position);
			/* what was handled before it is committed */
			if (e->mode != CFG_MODE_TRANSIENT && e->r.b != NULL
			    && (e->r.b->handled > 0
			        || e->r.b->n_appends > 0)) {
				e->skipped_bytes = 0;
				(void) seal(e, h.hpos, e->paused);
				h.last_commit = mono_ns();
			}
			continue;
		}
		if (res == H_ERROR) {
			e->batch_rc = SL_ESTORAGE;
			snprintf(e->batch_msg, sizeof(e->batch_msg), "%.190s",
			    f.why);
			continue;
		}
		clear_fault(e, &h);
		e->qhead = q->next;
		if (e->qhead == NULL)
			e->qtail = NULL;
		e->qn--;
		e->qbytes -= q->len;
		h.hpos = q->position + 1;
		if (e->r.b != NULL) {
			if (res == H_HANDLED)
				e->r.b->handled++;
			else
				e->r.b->unhandled_bytes += q->len;
		}
		rate_add(e, 1);
		if (e->mode == CFG_MODE_TRANSIENT)
			e->position = h.hpos;
		e->cached = e->r.c.n;
		free(q);
		pthread_cond_signal(&e->rcv);
		int64_t wake;
		maybe_commit(e, &h, e->qhead == NULL, &wake);
	}

	/* stopping: commit what was handled, wait for the store */
	if (e->mode != CFG_MODE_TRANSIENT && e->batch_rc == SL_OK
	    && e->def != NULL
	    && (h.hpos > e->position
	        || (e->r.b != NULL && e->r.b->n_appends > 0)))
		(void) seal(e, h.hpos, e->paused);
	drain(e);
	pthread_mutex_unlock(&e->mu);
	return NULL;
}

/* ---- lifecycle ---- */

int
eproj_start(store *s, const char *tenant, const proj_def *def, cfg_mode mode,
    const proj_settings *set, bool stopped, eproj **out)
{
	*out = NULL;
	if (s == NULL || tenant == NULL || def == NULL || set == NULL
	    || def_is_filter(def) || mode == CFG_MODE_ONE_TIME)
		return SL_EINVAL;
	eproj *e = calloc(1, sizeof(*e));
	if (e == NULL || (e->tenant = strdup(tenant)) == NULL) {
		free(e);
		return SL_ENOMEM;
	}
	e->s    = s;
	e->mode = mode;
	e->set  = *set;
	memcpy(e->id, def->id, sizeof(e->id));
	e->started_ns = mono_ns();
	pthread_mutex_init(&e->mu, NULL);
	pthread_mutex_init(&e->cmu, NULL);
	cond_init_mono(&e->cv);
	cond_init_mono(&e->rcv);
	cond_init_mono(&e->cmd_cv);
	int rc = run_init(&e->r,
	    mode == CFG_MODE_TRANSIENT ? RUN_TRANSIENT : RUN_CONTINUOUS, s,
	    e->tenant, def);
	if (mode == CFG_MODE_TRANSIENT)
		e->r.cmu = &e->cmu;
	e->paused = stopped;
	if (rc == SL_OK && mode != CFG_MODE_TRANSIENT) {
		ckpt c;
		rc = ckpt_read(s, tenant, def->id, &c);
		if (rc == SL_OK) {
			e->paused = c.stopped;
			if (c.def_hash == def->def_hash)
				e->position = c.position;
			else
				e->batch_rc
				    = -1; /* the handler resets first */
		} else if (rc == SL_ENOTFOUND || rc == SL_EPROTO) {
			if (rc == SL_EPROTO) {
				log_error("emitter",
				    "%s/%s: the checkpoint is "
				    "corrupt: resetting",
				    tenant, def->id);
				e->batch_rc = -1;
			}
			rc = SL_OK;
		}
	}
	if (rc != SL_OK) {
		run_fini(&e->r);
		free(e->tenant);
		free(e);
		return rc == SL_ENOMEM ? rc : SL_ESTORAGE;
	}
	proj_def_hold(def);
	e->def      = def;
	e->read_pos = e->position;
	e->head     = store_next_position(s);
	if (pthread_create(&e->handler, NULL, handler_main, e) != 0) {
		proj_def_release(def);
		run_fini(&e->r);
		free(e->tenant);
		free(e);
		return SL_ENOMEM;
	}
	e->handler_started = true;
	if (pthread_create(&e->reader, NULL, reader_main, e) == 0)
		e->reader_started = true;
	else {
		eproj_stop(e);
		return SL_ENOMEM;
	}
	*out = e;
	return SL_OK;
}

void
eproj_stop(eproj *e)
{
	if (e == NULL)
		return;
	pthread_mutex_lock(&e->mu);
	e->stopping = true;
	pthread_cond_broadcast(&e->cv);
	pthread_cond_broadcast(&e->rcv);
	pthread_mutex_unlock(&e->mu);
	store_wake_all(e->s);
	if (e->reader_started)
		pthread_join(e->reader, NULL);
	if (e->handler_started)
		pthread_join(e->handler, NULL);
	qrec_free_list(e->qhead);
	run_fini(&e->r);
	proj_def_release(e->def);
	if (e->def_pending)
		proj_def_release(e->next_def);
	pthread_mutex_destroy(&e->mu);
	pthread_mutex_destroy(&e->cmu);
	pthread_cond_destroy(&e->cv);
	pthread_cond_destroy(&e->rcv);
	pthread_cond_destroy(&e->cmd_cv);
	free(e->tenant);
	free(e);
}

void
eproj_set_def(eproj *e, const proj_def *def)
{
	proj_def_hold(def);
	pthread_mutex_lock(&e->mu);
	if (e->def_pending)
		proj_def_release(e->next_def);
	e->next_def    = def;
	e->def_pending = true;
	pthread_cond_broadcast(&e->cv);
	pthread_mutex_unlock(&e->mu);
}

int
eproj_command(eproj *e, proc_cmd cmd, int timeout_ms)
{
	if (cmd != PROC_CMD_RESET && cmd != PROC_CMD_RETRY
	    && cmd != PROC_CMD_PAUSE && cmd != PROC_CMD_RESUME)
		return SL_EINVAL;
	pthread_mutex_lock(&e->mu);
	/* one command at a time: wait for the previous one to be taken */
	int64_t deadline = mono_ns() + (int64_t) timeout_ms * 1000000;
	while (e->cmd_taken != e->cmd_seq && mono_ns() < deadline) {
		struct timespec ts;
		abs_deadline(&ts, deadline);
		pthread_cond_timedwait(&e->cmd_cv, &e->mu, &ts);
	}
	e->cmd      = cmd;
	uint64_t me = ++e->cmd_seq;
	pthread_cond_broadcast(&e->cv);
	int rc = SL_OK;
	while (e->cmd_taken < me) {
		if (mono_ns() >= deadline) {
			rc = SL_ETIMEDOUT;
			break;
		}
		struct timespec ts;
		abs_deadline(&ts, deadline);
		pthread_cond_timedwait(&e->cmd_cv, &e->mu, &ts);
	}
	pthread_mutex_unlock(&e->mu);
	return rc;
}

void
eproj_get_status(eproj *e, eproj_status *out)
{
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&e->mu);
	out->tenant = e->tenant;
	out->def    = e->def;
	out->mode   = e->mode;
	if (e->def == NULL) {
		out->status = "stopped";
		snprintf(out->reason, sizeof(out->reason),
		    "the projection was unloaded");
	} else if (e->paused) {
		out->status = "stopped";
	} else if (e->faulted) {
		out->status = "faulted";
		snprintf(
		    out->reason, sizeof(out->reason), "%s", e->status_reason);
	} else if (e->waiting_writes) {
		out->status = "waiting";
		snprintf(out->reason, sizeof(out->reason),
		    "max_allowed_writes_in_flight (%u) reached",
		    e->set.max_allowed_writes_in_flight);
	} else if (e->reader_full) {
		out->status = "waiting";
		snprintf(out->reason, sizeof(out->reason),
		    "pending_events_threshold (%u) reached: the handler is "
		    "behind",
		    e->set.pending_events_threshold);
	} else {
		out->status = "running";
	}
	out->position
	    = e->position > e->clean_pos ? e->position : e->clean_pos;
	out->head              = e->head > e->position ? e->head : e->position;
	out->progress          = out->head == 0
	             ? 100.0
	             : 100.0 * (double) out->position / (double) out->head;
	out->events_processed  = e->events_processed;
	out->events_per_sec    = rate_get(e);
	out->buffered_events   = e->qn;
	out->partitions_cached = e->cached;
	out->writes_in_flight  = e->in_flight;
	out->emitted           = e->emitted;
	out->attempts          = e->attempts;
	pthread_mutex_unlock(&e->mu);
}

/* ---- reading states ---- */

typedef struct rs_ctx {
	const proj_def *def;
	proj_result_fn  result;
	eproj_state_fn  fn;
	void           *arg;
	int             rc;
} rs_ctx;

/* Call fn with a state and its result. */
static int
call_with_result(rs_ctx *c, const char *key, size_t key_len, const void *state,
    size_t state_len)
{
	char   k[PROC_KEY_MAX];
	void  *res  = NULL;
	size_t rlen = 0;
	char   why[256];
	if (c->result != NULL && key_len < sizeof(k)) {
		memcpy(k, key, key_len);
		k[key_len] = '\0';
		if (compute_result(c->result, c->def, k, state, state_len,
		        &res, &rlen, why, sizeof(why))
		    != SL_OK)
			log_warn("emitter", "'%s': %s", c->def->name, why);
	}
	int rc = c->fn(c->arg, key, key_len, state, state_len, res, rlen);
	free(res);
	return rc;
}

static int
read_cb(void *arg, const void *key, size_t key_len, const void *val,
    size_t val_len)
{
	return call_with_result(arg, key, key_len, val, val_len);
}

int
eproj_read_states(store *s, const char *tenant, const proj_def *def,
    const char *key, size_t key_len, eproj_state_fn fn, void *arg)
{
	if (s == NULL || tenant == NULL || def == NULL || fn == NULL)
		return SL_EINVAL;
	rs_ctx c = { .def = def,
		.result   = def->p != NULL ? proj_def_result(def) : NULL,
		.fn       = fn,
		.arg      = arg };
	if (key != NULL)
		return store_get_pstate(
		    s, tenant, def->id, key, key_len, read_cb, &c);
	return store_scan_pstates(s, tenant, def->id, NULL, 0, read_cb, &c);
}

/* Call fn for the cached states in key order (only key when given). */
static int
cache_each(const cache *ch, const proj_def *def, proj_result_fn result,
    const char *key, size_t key_len, eproj_state_fn fn, void *arg,
    bool initial_if_none)
{
	rs_ctx c = { .def = def, .result = result, .fn = fn, .arg = arg };
	if (key != NULL) {
		centry *x = cache_find((cache *) ch, key, key_len);
		if (x != NULL && x->state != NULL)
			return call_with_result(
			    &c, key, key_len, x->state, x->state_len);
		if (!initial_if_none)
			return SL_ENOTFOUND;
		return call_with_result(
		    &c, key, key_len, def->initial, def->initial_len);
	}
	centry **v = ch->n > 0 ? malloc(ch->n * sizeof(*v)) : NULL;
	size_t   n = 0;
	if (ch->n > 0 && v == NULL)
		return SL_ENOMEM;
	for (size_t i = 0; i < ch->cap; i++)
		for (centry *x = ch->tab[i]; x != NULL; x = x->hnext)
			if (x->state != NULL)
				v[n++] = x;
	if (n > 1)
		qsort(v, n, sizeof(*v), cmp_entries);
	int rc = SL_OK;
	for (size_t i = 0; i < n && rc == SL_OK; i++)
		rc = call_with_result(&c, v[i]->key, v[i]->key_len,
		    v[i]->state, v[i]->state_len);
	free(v);
	return rc;
}

int
eproj_snapshot(eproj *e, const char *key, size_t key_len, eproj_state_fn fn,
    void *arg, uint64_t *position)
{
	if (e == NULL || fn == NULL)
		return SL_EINVAL;
	pthread_mutex_lock(&e->mu);
	const proj_def *def = e->def;
	proj_def_hold(def);
	if (position != NULL)
		*position = e->position;
	pthread_mutex_unlock(&e->mu);
	if (def == NULL || def->p == NULL) {
		proj_def_release(def);
		return SL_ENOTFOUND;
	}
	pthread_mutex_lock(&e->cmu);
	int rc = cache_each(
	    &e->r.c, def, proj_def_result(def), key, key_len, fn, arg, true);
	pthread_mutex_unlock(&e->cmu);
	proj_def_release(def);
	return rc;
}

/* ---- one-time queries ---- */

typedef struct qscan {
	run     *r;
	hfail    f;
	uint64_t failed_at;
	hres     res;
	uint64_t seen;
} qscan;

static int
query_cb(void *arg, uint64_t position, const void *data, size_t len)
{
	qscan *q = arg;
	q->seen++;
	hres res = run_record(q->r, position, data, len, 0, NULL, &q->f);
	if (res == H_FAILED || res == H_ERROR) {
		q->res       = res;
		q->failed_at = position;
		return 1;
	}
	return 0;
}

int
eproj_query(store *s, const char *tenant, const proj_def *def, const char *key,
    size_t key_len, int timeout_ms, eproj_state_fn fn, void *arg,
    uint64_t *position, char *err, size_t errlen)
{
	char dummy[1];
	if (err == NULL || errlen == 0) {
		err    = dummy;
		errlen = sizeof(dummy);
	}
	err[0] = '\0';
	if (s == NULL || tenant == NULL || def == NULL || fn == NULL
	    || def_is_filter(def) || def->p == NULL) {
		snprintf(err, errlen, "not a loaded projection");
		return SL_EINVAL;
	}
	run r;
	int rc = run_init(&r, RUN_QUERY, s, tenant, def);
	if (rc != SL_OK) {
		run_fini(&r);
		return rc;
	}
	r.only_key        = key;
	r.only_len        = key_len;
	uint64_t head     = store_next_position(s);
	uint64_t pos      = 0;
	int64_t  deadline = timeout_ms >= 0
	     ? mono_ns() + (int64_t) timeout_ms * 1000000
	     : INT64_MAX;
	if (position != NULL)
		*position = head;
	while (pos < head && rc == SL_OK) {
		qscan    q = { .r = &r };
		uint64_t next;
		size_t max = head - pos < 4096 ? (size_t) (head - pos) : 4096;
		rc         = store_scan(s, pos, max, query_cb, &q, &next);
		if (rc == 1) {
			snprintf(err, errlen,
			    "projection '%s', event at position %" PRIu64
			    ": %s",
			    def->name, q.failed_at, q.f.why);
			rc = q.res == H_ERROR ? SL_ESTORAGE : SL_EPLUGIN;
			break;
		}
		if (rc != SL_OK) {
			snprintf(err, errlen, "reading the log: %s",
			    sl_strerror(rc));
			break;
		}
		if (next == pos)
			break; /* nothing more */
		pos = next;
		if (mono_ns() > deadline) {
			snprintf(err, errlen,
			    "projection '%s': the query did not reach the "
			    "head "
			    "(%" PRIu64 ") in %d ms (at %" PRIu64 ")",
			    def->name, head, timeout_ms, pos);
			rc = SL_ETIMEDOUT;
		}
	}
	if (rc == SL_OK)
		rc = cache_each(
		    &r.c, def, r.result, key, key_len, fn, arg, true);
	run_fini(&r);
	return rc;
}
