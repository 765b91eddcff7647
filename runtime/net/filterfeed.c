/* The live feed of filter streams: see filterfeed.h. */
#include "filterfeed.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include <sluice/errors.h>

#include "event.h"
#include "feed.h"
#include "log.h"
#include "mp.h"

#define FF_READ_MAX  256         /* entries per stream read */
#define FF_MSG_BYTES (64 * 1024) /* a message is closed past this */
#define FF_TOPIC_MAX (8 + 256 + 40 + 3 * 256)

/* One followed stream. */
typedef struct ff_track {
	char    *tenant;
	char     filter[40];
	uint64_t gen;  /* generation followed */
	uint64_t next; /* next whole stream position to publish */
	bool     dirty;
} ff_track;

/* One entry read, before its event is fetched. */
typedef struct ff_entry {
	uint64_t spos, lpos, ppos;
	char     part[256];
	size_t   plen;
} ff_entry;

struct filterfeed {
	publisher   *pub;
	store       *s;
	ff_tenant_fn tenant_rm;
	void        *ctx;
	pthread_t    thr;

	pthread_mutex_t mu; /* guards tracks (the dirty flags, the list) */
	pthread_cond_t  cv;
	bool            stop, any_dirty;
	ff_track       *tracks;
	size_t          n, cap;

	atomic_ullong sent;
	/* thread only */
	ff_entry       *ents;
	size_t          n_ents;
	msgpack_zone    zone;
	msgpack_sbuffer body; /* events of the message being built */
	msgpack_sbuffer out;
	size_t          n_body;
	char            topic[FF_TOPIC_MAX];
	size_t          topic_len;
};

void
ff_notify(void *arg, const char *tenant, const char *filter_id)
{
	filterfeed *f = arg;
	pthread_mutex_lock(&f->mu);
	ff_track *t = NULL;
	for (size_t i = 0; i < f->n && t == NULL; i++)
		if (strcmp(f->tracks[i].filter, filter_id) == 0
		    && strcmp(f->tracks[i].tenant, tenant) == 0)
			t = &f->tracks[i];
	if (t == NULL && (f->n < f->cap || f->cap < 4096)) {
		if (f->n == f->cap) {
			size_t    cap = f->cap ? f->cap * 2 : 16;
			ff_track *v   = realloc(f->tracks, cap * sizeof(*v));
			if (v == NULL)
				goto out;
			f->tracks = v;
			f->cap    = cap;
		}
		t = &f->tracks[f->n];
		memset(t, 0, sizeof(*t));
		if ((t->tenant = strdup(tenant)) == NULL)
			goto out;
		snprintf(t->filter, sizeof(t->filter), "%s", filter_id);
		t->next = UINT64_MAX; /* first look: from the head */
		f->n++;
	}
	if (t != NULL) {
		t->dirty     = true;
		f->any_dirty = true;
		pthread_cond_signal(&f->cv);
	}
out:
	pthread_mutex_unlock(&f->mu);
}

static int
ff_collect(void *arg, uint64_t spos, uint64_t lpos, uint64_t ppos,
    const char *part, size_t plen)
{
	filterfeed *f = arg;
	ff_entry   *e = &f->ents[f->n_ents++];
	e->spos       = spos;
	e->lpos       = lpos;
	e->ppos       = ppos;
	e->plen       = plen < sizeof(e->part) ? plen : sizeof(e->part) - 1;
	memcpy(e->part, part != NULL ? part : "", e->plen);
	e->part[e->plen] = '\0';
	return 0;
}

static void
ff_flush(filterfeed *f)
{
	msgpack_packer pk;
	if (f->n_body == 0)
		return;
	msgpack_sbuffer_clear(&f->out);
	msgpack_packer_init(&pk, &f->out, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, f->n_body);
	msgpack_sbuffer_write(&f->out, f->body.data, f->body.size);
	pub_send_raw(f->pub, f->topic, f->topic_len, f->out.data, f->out.size);
	atomic_fetch_add(&f->sent, f->n_body);
	f->n_body = 0;
	msgpack_sbuffer_clear(&f->body);
}

typedef struct ff_fetch {
	filterfeed     *f;
	const ff_entry *e;
	const ff_track *t;
	bool            partitioned;
	bool            packed;
} ff_fetch;

/* store_scan callback: the entry's event, packed with its extras. */
static int
ff_pack_one(void *arg, uint64_t position, const void *data, size_t len)
{
	ff_fetch       *x = arg;
	filterfeed     *f = x->f;
	ev_view         ev;
	msgpack_packer  pk;
	if (position != x->e->lpos)
		return 1;
	msgpack_zone_clear(&f->zone);
	if (ev_decode(data, len, position, &f->zone, &ev) != SL_OK
	    || strcmp(ev.tenant, x->t->tenant) != 0)
		return 1; /* not sent: subscribers read, and see the damage */
	msgpack_packer_init(&pk, &f->body, msgpack_sbuffer_write);
	ev_pack_wire_extra(&pk, &ev, x->partitioned ? 4 : 2);
	mp_pack_kv_u64(&pk, "stream_position", x->e->spos);
	mp_pack_kv_u64(&pk, "stream_generation", x->t->gen);
	if (x->partitioned) {
		mp_pack_cstr(&pk, "partition");
		mp_pack_strn(&pk, x->e->part, x->e->plen);
		mp_pack_kv_u64(&pk, "partition_position", x->e->ppos);
	}
	x->packed = true;
	return 1;
}

/* Publish what the track's stream has past t->next. */
static void
ff_follow(filterfeed *f, ff_track *t)
{
	rmstore *rm = f->tenant_rm(f->ctx, t->tenant);
	uint64_t head, gen;
	if (rm == NULL || rm_stream_head(rm, t->filter, &head, &gen) != SL_OK)
		return;
	if (t->next == UINT64_MAX || (gen != t->gen && t->gen != 0)) {
		/* first seen, or rebuilt: follow from the head on */
		t->gen  = gen;
		t->next = head;
		return;
	}
	/* a stream's first generation (it had none when first seen) is
	 * followed from its start */
	t->gen = gen;
	if (!pub_listening(f->pub)) {
		t->next = head; /* nobody connected: nothing to read for */
		return;
	}
	while (t->next < head) {
		uint64_t next = t->next, g = 0;
		bool     more = false;
		f->n_ents     = 0;
		if (rm_stream_read(rm, t->filter, NULL, 0, t->next, FF_READ_MAX,
		        ff_collect, f, &next, &more, &g)
		        != SL_OK
		    || g != t->gen || f->n_ents == 0)
			return; /* next look sees the new generation */
		for (size_t i = 0; i < f->n_ents; i++) {
			const ff_entry *e = &f->ents[i];
			char            topic[FF_TOPIC_MAX];
			size_t tl = feed_filter_topic(topic, sizeof(topic),
			    t->tenant, strlen(t->tenant), t->filter,
			    e->plen > 0 ? e->part : NULL, e->plen, 1);
			if (tl > sizeof(topic))
				continue;
			if (f->n_body > 0
			    && (tl != f->topic_len
			        || memcmp(topic, f->topic, tl) != 0
			        || f->body.size >= FF_MSG_BYTES))
				ff_flush(f);
			memcpy(f->topic, topic, tl);
			f->topic_len = tl;
			ff_fetch x   = { .f = f, .e = e, .t = t,
			      .partitioned = e->plen > 0 };
			store_scan(f->s, e->lpos, 1, ff_pack_one, &x, NULL);
			if (x.packed)
				f->n_body++;
		}
		ff_flush(f);
		t->next = next;
	}
}

static void *
ff_main(void *arg)
{
	filterfeed *f = arg;
	pthread_mutex_lock(&f->mu);
	while (!f->stop) {
		if (!f->any_dirty) {
			pthread_cond_wait(&f->cv, &f->mu);
			continue;
		}
		f->any_dirty = false;
		for (size_t i = 0; i < f->n && !f->stop; i++) {
			if (!f->tracks[i].dirty)
				continue;
			f->tracks[i].dirty = false;
			/* the list may grow (realloc) meanwhile: work on a
			 * copy, write back the progress */
			ff_track t = f->tracks[i];
			pthread_mutex_unlock(&f->mu);
			ff_follow(f, &t);
			pthread_mutex_lock(&f->mu);
			f->tracks[i].gen  = t.gen;
			f->tracks[i].next = t.next;
		}
	}
	pthread_mutex_unlock(&f->mu);
	return NULL;
}

int
ff_start(publisher *pub, store *s, ff_tenant_fn tenant_rm, void *ctx,
    filterfeed **out)
{
	*out = NULL;
	if (pub == NULL || s == NULL || tenant_rm == NULL)
		return SL_EINVAL;
	filterfeed *f = calloc(1, sizeof(*f));
	if (f == NULL)
		return SL_ENOMEM;
	f->ents = calloc(FF_READ_MAX, sizeof(*f->ents));
	if (f->ents == NULL || !msgpack_zone_init(&f->zone, 4096)) {
		free(f->ents);
		free(f);
		return SL_ENOMEM;
	}
	f->pub       = pub;
	f->s         = s;
	f->tenant_rm = tenant_rm;
	f->ctx       = ctx;
	atomic_init(&f->sent, 0);
	msgpack_sbuffer_init(&f->body);
	msgpack_sbuffer_init(&f->out);
	pthread_mutex_init(&f->mu, NULL);
	pthread_cond_init(&f->cv, NULL);
	if (pthread_create(&f->thr, NULL, ff_main, f) != 0) {
		pthread_cond_destroy(&f->cv);
		pthread_mutex_destroy(&f->mu);
		msgpack_sbuffer_destroy(&f->body);
		msgpack_sbuffer_destroy(&f->out);
		msgpack_zone_destroy(&f->zone);
		free(f->ents);
		free(f);
		return SL_ENOMEM;
	}
	*out = f;
	return SL_OK;
}

void
ff_stop(filterfeed *f)
{
	if (f == NULL)
		return;
	pthread_mutex_lock(&f->mu);
	f->stop = true;
	pthread_cond_signal(&f->cv);
	pthread_mutex_unlock(&f->mu);
	pthread_join(f->thr, NULL);
	for (size_t i = 0; i < f->n; i++)
		free(f->tracks[i].tenant);
	free(f->tracks);
	pthread_cond_destroy(&f->cv);
	pthread_mutex_destroy(&f->mu);
	msgpack_sbuffer_destroy(&f->body);
	msgpack_sbuffer_destroy(&f->out);
	msgpack_zone_destroy(&f->zone);
	free(f->ents);
	free(f);
}

uint64_t
ff_sent(filterfeed *f)
{
	return f != NULL ? atomic_load(&f->sent) : 0;
}
