/*
 * The system projections' shared reader (sysfeed.h): a registry of one
 * reader per (log, tenant), its window of chunks, and the read of a chunk
 * that decides all five projections' links for the tenant's events at
 * once. A walk holds its chunk by a count, without the reader's lock.
 */
#include "sysfeed.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/errors.h>

#include "monotime.h"

/* One of the tenant's events in a chunk: bit i of own / slow for system
 * projection i, its link's index in the chunk's links (-1: none). */
typedef struct fevent {
	uint64_t position;
	uint64_t bytes; /* read since the tenant's event before it, its own */
	uint16_t own, slow;
	int32_t  link[SYSPROJ_COUNT];
	uint8_t  id[16];
	uint32_t corr_off, corr_len; /* into the arena */
} fevent;

typedef struct flink {
	uint32_t stream_off; /* NUL-terminated, in the arena */
	uint32_t target_off, target_len;
	uint64_t revision;
} flink;

/* Positions [lo, hi) of the log, read once. */
typedef struct chunk {
	uint64_t lo, hi;
	uint64_t tail; /* bytes read after the tenant's last event in it */
	uint64_t hash[SYSPROJ_COUNT]; /* the definitions it was decided by */
	fevent  *ev;
	size_t   n, cap;
	flink   *links;
	size_t   n_links, cap_links;
	char    *arena;
	size_t   alen, acap;
	int      refs;    /* walks in it (under the reader's mu) */
	bool     retired; /* out of the window: the last walk frees it */
} chunk;

struct sysfeed {
	sysfeed        *next; /* the registry */
	store          *s;
	char           *tenant;
	size_t          tenant_len;
	int             users;
	pthread_mutex_t mu;
	pthread_cond_t  cv;
	chunk          *ring[SYSFEED_RING]; /* oldest first, contiguous */
	size_t          n;
	bool            reading; /* a thread reads the next chunk */
	uint64_t        reads;   /* chunks read so far */
	/* each projection's last walk: where from (or up to), and when */
	uint64_t cpos[SYSPROJ_COUNT];
	int64_t  seen_ns[SYSPROJ_COUNT];
};

/* A projection that has not walked for this long (stopped, paused,
 * failing, waiting for its write) holds nobody up. */
#define SYSFEED_IDLE_NS 200000000LL
/* How far behind the window a projection may be for the window to wait
 * for it (it reads the log itself until it is in); one further back (a
 * reset, a rebuild) catches up on its own. */
#define SYSFEED_BEHIND SYSFEED_SPAN

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static sysfeed        *reg;

static void
chunk_free(chunk *c)
{
	if (c == NULL)
		return;
	free(c->ev);
	free(c->links);
	free(c->arena);
	free(c);
}

sysfeed *
sysfeed_get(store *s, const char *tenant)
{
	pthread_mutex_lock(&reg_mu);
	sysfeed *f = reg;
	while (f != NULL && (f->s != s || strcmp(f->tenant, tenant) != 0))
		f = f->next;
	if (f == NULL && (f = calloc(1, sizeof(*f))) != NULL) {
		if ((f->tenant = strdup(tenant)) == NULL) {
			free(f);
			f = NULL;
		} else {
			f->s          = s;
			f->tenant_len = strlen(tenant);
			pthread_mutex_init(&f->mu, NULL);
			cond_init_mono(&f->cv);
			f->next = reg;
			reg     = f;
		}
	}
	if (f != NULL)
		f->users++;
	pthread_mutex_unlock(&reg_mu);
	return f;
}

void
sysfeed_put(sysfeed *f)
{
	if (f == NULL)
		return;
	pthread_mutex_lock(&reg_mu);
	if (--f->users > 0) {
		pthread_mutex_unlock(&reg_mu);
		return;
	}
	sysfeed **pp = &reg;
	while (*pp != f)
		pp = &(*pp)->next;
	*pp = f->next;
	pthread_mutex_unlock(&reg_mu);
	/* no user left: no walk holds a chunk */
	for (size_t i = 0; i < f->n; i++)
		chunk_free(f->ring[i]);
	pthread_cond_destroy(&f->cv);
	pthread_mutex_destroy(&f->mu);
	free(f->tenant);
	free(f);
}

/* ---- reading a chunk ---- */

/* Grow *v (of *cap elements of size sz) to hold n + 1. */
static bool
grow(void **v, size_t *cap, size_t n, size_t sz)
{
	if (n < *cap)
		return true;
	size_t nc = *cap != 0 ? *cap * 2 : 256;
	void  *nv = realloc(*v, nc * sz);
	if (nv == NULL)
		return false;
	*v   = nv;
	*cap = nc;
	return true;
}

/* Copy n bytes (and a NUL) into c's arena: their offset, or -1. */
static int64_t
arena_put(chunk *c, const void *p, size_t n)
{
	if (c->alen + n + 1 > UINT32_MAX)
		return -1;
	while (c->alen + n + 1 > c->acap) {
		size_t nc = c->acap != 0 ? c->acap * 2 : 16384;
		char  *na = realloc(c->arena, nc);
		if (na == NULL)
			return -1;
		c->arena = na;
		c->acap  = nc;
	}
	size_t at = c->alen;
	if (n > 0)
		memcpy(c->arena + at, p, n);
	c->arena[at + n] = '\0';
	c->alen += n + 1;
	return (int64_t) at;
}

typedef struct reading {
	sysfeed *f;
	chunk   *c;
	int      rc;
} reading;

/* One event of the log: the tenant's go into the chunk with each
 * projection's decision; the others are passed by. */
static int
read_cb(void *arg, uint64_t position, const void *data, size_t len)
{
	reading *rd = arg;
	chunk   *c  = rd->c;
	ev_head  h;
	ev_raw   r;
	c->tail += len; /* passed, counted with the tenant's next event */
	if (ev_peek(data, len, &h) == SL_OK
	    && (h.tenant_len != rd->f->tenant_len
	        || memcmp(h.tenant, rd->f->tenant, h.tenant_len) != 0))
		return 0; /* another tenant's: never decoded */
	if (!grow((void **) &c->ev, &c->cap, c->n, sizeof(fevent))) {
		rd->rc = SL_ENOMEM;
		return 1;
	}
	fevent *x = &c->ev[c->n];
	memset(x, 0, sizeof(*x));
	x->position = position;
	x->bytes    = c->tail;
	c->tail     = 0;
	for (size_t i = 0; i < SYSPROJ_COUNT; i++)
		x->link[i] = -1;
	/* a record not read in place (or another tenant's that does not
	 * peek): the decoder's, for every projection */
	if (ev_peek_raw(data, len, &r) != SL_OK) {
		x->slow = (1u << SYSPROJ_COUNT) - 1;
		c->n++;
		return 0;
	}
	int64_t co = arena_put(c, r.correlation_id, r.correlation_len);
	if (co < 0) {
		rd->rc = SL_ENOMEM;
		return 1;
	}
	memcpy(x->id, r.id, 16);
	x->corr_off = (uint32_t) co;
	x->corr_len = (uint32_t) r.correlation_len;
	bool sys    = r.h.stream_len > 0 && r.h.stream[0] == '$';
	for (size_t i = 0; i < SYSPROJ_COUNT; i++) {
		const proj_def *d = sysproj_def(i);
		sysproj_link    l;
		int             k;
		if (sys && sysproj_owns(i, r.h.stream, r.h.stream_len)) {
			x->own |= (uint16_t) (1u << i);
			continue;
		}
		if (d == NULL || (k = sysproj_peek(d, &r, &l)) < 0) {
			x->slow |= (uint16_t) (1u << i);
			continue;
		}
		if (k == 0)
			continue;
		int64_t so = arena_put(c, l.stream, strlen(l.stream));
		int64_t to
		    = so >= 0 ? arena_put(c, l.target, l.target_len) : -1;
		if (to < 0
		    || !grow((void **) &c->links, &c->cap_links, c->n_links,
		        sizeof(flink))) {
			rd->rc = SL_ENOMEM;
			return 1;
		}
		c->links[c->n_links] = (flink) { .stream_off = (uint32_t) so,
			.target_off                          = (uint32_t) to,
			.target_len = (uint32_t) l.target_len,
			.revision   = l.revision };
		x->link[i]           = (int32_t) c->n_links++;
	}
	c->n++;
	return 0;
}

/* Read [from, from + SYSFEED_SPAN) of the log into a new chunk: NULL
 * when nothing is there or it cannot be read (the walker reads the log
 * itself, which reports why). */
static chunk *
read_chunk(sysfeed *f, uint64_t from)
{
	chunk  *c  = calloc(1, sizeof(*c));
	reading rd = { f, c, SL_OK };
	if (c == NULL)
		return NULL;
	c->lo = c->hi = from;
	for (size_t i = 0; i < SYSPROJ_COUNT; i++) {
		const proj_def *d = sysproj_def(i);
		c->hash[i]        = d != NULL ? d->def_hash : 0;
	}
	int rc = store_scan(f->s, from, SYSFEED_SPAN, read_cb, &rd, &c->hi);
	if (rc != SL_OK || rd.rc != SL_OK || c->hi <= from) {
		chunk_free(c);
		return NULL;
	}
	return c;
}

/* ---- the window ---- */

/* Out of the window (f->mu held): freed now or by its last walk. */
static void
retire(chunk *c)
{
	if (c->refs == 0)
		chunk_free(c);
	else
		c->retired = true;
}

/* The chunk holding pos, counted (f->mu held); NULL if none. */
static chunk *
held(sysfeed *f, uint64_t pos)
{
	for (size_t i = 0; i < f->n; i++)
		if (f->ring[i]->lo <= pos && pos < f->ring[i]->hi) {
			f->ring[i]->refs++;
			return f->ring[i];
		}
	return NULL;
}

/* Whether projection j walked lately (f->mu held). */
static bool
active(const sysfeed *f, size_t j, int64_t now)
{
	return f->seen_ns[j] != 0 && now - f->seen_ns[j] < SYSFEED_IDLE_NS;
}

/* Whether another active projection than i still needs chunk o (f->mu
 * held): it is in it, or a little behind it. */
static bool
needed(const sysfeed *f, size_t i, const chunk *o, int64_t now)
{
	for (size_t j = 0; j < SYSPROJ_COUNT; j++)
		if (j != i && active(f, j, now) && f->cpos[j] < o->hi
		    && f->cpos[j] + SYSFEED_BEHIND >= o->lo)
			return true;
	return false;
}

/*
 * Room for a chunk up to position upto (f->mu held): the oldest chunks
 * that no other active projection needs go; one that is needed goes only
 * when the window would hold more than SYSFEED_CHUNKS spans of positions
 * or SYSFEED_RING chunks. @return false when such a one is needed: the
 * caller waits for its projection to move on (or to become idle).
 */
static bool
make_room(sysfeed *f, size_t i, uint64_t upto, int64_t now)
{
	while (f->n > 0) {
		chunk *o      = f->ring[0];
		bool   forced = f->n == SYSFEED_RING
		    || upto - o->lo > (uint64_t) SYSFEED_CHUNKS * SYSFEED_SPAN;
		bool need = needed(f, i, o, now);
		if (need)
			return !forced;
		retire(o);
		memmove(f->ring, f->ring + 1, (f->n - 1) * sizeof(f->ring[0]));
		f->n--;
	}
	return true;
}

/* Whether another active projection than i walks the window (f->mu
 * held): one far ahead of it must not start it again at its position. */
static bool
in_use(const sysfeed *f, size_t i, int64_t now)
{
	uint64_t lo = f->ring[0]->lo, hi = f->ring[f->n - 1]->hi;
	for (size_t j = 0; j < SYSPROJ_COUNT; j++)
		if (j != i && active(f, j, now) && f->cpos[j] >= lo
		    && f->cpos[j] <= hi)
			return true;
	return false;
}

/*
 * The chunk holding pos, for projection i, counted: from the window, or
 * read now when pos is at or within a chunk's span past its end (the
 * window grows, make_room; this one waits while a chunk that must go is
 * still needed), or anywhere ahead of it when no other projection walks
 * it (the window starts again at pos). NULL: pos is behind the window,
 * or far ahead of the others, or nothing could be read.
 */
static chunk *
acquire(sysfeed *f, size_t i, uint64_t pos)
{
	pthread_mutex_lock(&f->mu);
	f->cpos[i]    = pos;
	f->seen_ns[i] = mono_ns();
	pthread_cond_broadcast(&f->cv); /* a reader may wait for it */
	for (;;) {
		while (f->reading)
			pthread_cond_wait(&f->cv, &f->mu);
		int64_t now = mono_ns();
		chunk  *c   = held(f, pos);
		if (c != NULL || (f->n > 0 && pos < f->ring[0]->lo)) {
			pthread_mutex_unlock(&f->mu);
			return c;
		}
		uint64_t hi = f->n > 0 ? f->ring[f->n - 1]->hi : 0;
		bool     on = f->n > 0 && pos - hi < SYSFEED_SPAN;
		if (f->n > 0 && !on && in_use(f, i, now)) {
			pthread_mutex_unlock(&f->mu);
			return NULL;
		}
		uint64_t head = store_next_position(f->s);
		if (on
		    && !make_room(f, i,
		        hi + SYSFEED_SPAN < head ? hi + SYSFEED_SPAN : head,
		        now)) {
			struct timespec until;
			abs_deadline(&until, now + 20000000LL);
			pthread_cond_timedwait(&f->cv, &f->mu, &until);
			continue;
		}
		uint64_t from = on ? hi : pos;
		f->reading    = true;
		pthread_mutex_unlock(&f->mu);
		c = read_chunk(f, from); /* without the lock */
		pthread_mutex_lock(&f->mu);
		f->reading = false;
		f->reads += c != NULL;
		pthread_cond_broadcast(&f->cv);
		if (c == NULL) {
			pthread_mutex_unlock(&f->mu);
			return NULL;
		}
		if (!on) {
			while (f->n > 0)
				retire(f->ring[--f->n]);
		}
		f->ring[f->n++] = c; /* make_room left room */
		if (c->hi <= pos) {  /* the log ends before pos */
			pthread_mutex_unlock(&f->mu);
			return NULL;
		}
	}
}

/* The walk of projection i ended: it got up to reached. */
static void
release(sysfeed *f, chunk *c, size_t i, uint64_t reached)
{
	pthread_mutex_lock(&f->mu);
	if (--c->refs == 0 && c->retired)
		chunk_free(c);
	f->cpos[i]    = reached;
	f->seen_ns[i] = mono_ns();
	pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->mu);
}

int
sysfeed_walk(sysfeed *f, size_t i, uint64_t def_hash, uint64_t pos,
    uint64_t limit, sysfeed_fn fn, void *arg, uint64_t *next, uint64_t *tail)
{
	if (i >= SYSPROJ_COUNT)
		return SL_ENOTFOUND;
	chunk *c = acquire(f, i, pos);
	if (c == NULL)
		return SL_ENOTFOUND;
	if (c->hash[i] != def_hash) {
		release(f, c, i, pos);
		return SL_ENOTFOUND;
	}
	/* the first of the tenant's events at or after pos */
	size_t lo = 0, hi = c->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (c->ev[mid].position < pos)
			lo = mid + 1;
		else
			hi = mid;
	}
	int      rc      = SL_OK;
	uint64_t reached = pos;
	for (size_t k = lo; k < c->n && c->ev[k].position < limit; k++) {
		const fevent *x = &c->ev[k];
		sysfeed_event e = { .position = x->position,
			.bytes                = x->bytes,
			.own                  = (x->own >> i) & 1,
			.slow                 = (x->slow >> i) & 1,
			.id                   = x->id,
			.corr                 = c->arena + x->corr_off,
			.corr_len             = x->corr_len };
		if (x->link[i] >= 0) {
			const flink *l = &c->links[x->link[i]];
			e.stream       = c->arena + l->stream_off;
			e.target       = c->arena + l->target_off;
			e.target_len   = l->target_len;
			e.revision     = l->revision;
		}
		if ((rc = fn(arg, &e)) != 0)
			break;
		reached = x->position + 1;
	}
	if (rc == SL_OK) {
		*next = reached = c->hi < limit ? c->hi : limit;
		*tail           = c->hi <= limit ? c->tail : 0;
	}
	release(f, c, i, reached);
	return rc;
}

void
sysfeed_window(sysfeed *f, uint64_t *lo, uint64_t *hi, uint64_t *reads)
{
	pthread_mutex_lock(&f->mu);
	*lo    = f->n > 0 ? f->ring[0]->lo : 0;
	*hi    = f->n > 0 ? f->ring[f->n - 1]->hi : 0;
	*reads = f->reads;
	pthread_mutex_unlock(&f->mu);
}
