/*
 * What a processor reads (ABI 1.3 sources, plugin.h's sl_source_kind):
 * whether a stored event can be selected at all, decided from its tenant,
 * stream and type read in place (ev_peek), so that the events a processor
 * cannot select are never decoded. Definitions built before 1.3 read the
 * whole tenant log, system streams and links included; 1.3 ones get `$`
 * streams and links only when they ask.
 */
#include <stdlib.h>
#include <string.h>

#include "guard.h"
#include "mp.h"
#include "proc_internal.h"
#include "sysproj.h"

void
proc_src_init(proc_src *s, const proj_def *def, const char *tenant)
{
	s->def        = def;
	s->tenant     = tenant;
	s->tenant_len = strlen(tenant);
	s->v13        = proj_def_sources(def, &s->v, &s->n, &s->flags);
	s->deleted    = proj_def_deleted(def) != NULL;
}

void
proc_sources_init(processor *p)
{
	proc_src_init(&p->src, p->def, p->tenant);
}

bool
proc_selects(const processor *p, const ev_head *h)
{
	return proc_src_selects(&p->src, h);
}

static bool
type_listed(const sl_source *x, const ev_head *h)
{
	if (x->n_types == 0 || h->type == NULL)
		return true;
	for (size_t k = 0; k < x->n_types; k++)
		if (strlen(x->types[k]) == h->type_len
		    && memcmp(x->types[k], h->type, h->type_len) == 0)
			return true;
	return false;
}

static bool
source_matches(const proc_src *s, const sl_source *x, const ev_head *h,
    bool is_sys)
{
	size_t nl = x->name != NULL ? strlen(x->name) : 0;
	bool   in;
	switch (x->kind) {
	case SL_SOURCE_ALL:
		in = !is_sys || (s->flags & SL_SOURCE_SYSTEM_STREAMS);
		break;
	case SL_SOURCE_STREAM:
		in = nl == h->stream_len && memcmp(x->name, h->stream, nl) == 0;
		break;
	case SL_SOURCE_PREFIX: /* a '$' prefix names system streams */
		in = nl <= h->stream_len && memcmp(x->name, h->stream, nl) == 0;
		break;
	case SL_SOURCE_CATEGORY:
		in = sysproj_in_category(h->stream, h->stream_len, x->name);
		break;
	default:
		in = false;
	}
	return in && type_listed(x, h);
}

bool
proc_src_selects(const proc_src *s, const ev_head *h)
{
	if (h->tenant_len != s->tenant_len
	    || memcmp(h->tenant, s->tenant, s->tenant_len) != 0)
		return false;
	/* the log's deletion notices, for a deleted callback */
	if (s->deleted && h->stream_len == sizeof(STORE_DELETED_STREAM) - 1
	    && memcmp(h->stream, STORE_DELETED_STREAM, h->stream_len) == 0)
		return h->type_len == sizeof(STORE_EV_STREAM_DELETED) - 1
		    && memcmp(h->type, STORE_EV_STREAM_DELETED, h->type_len)
		    == 0;
	if (s->v13) {
		/* links to events ("$>") and to streams ("$@") */
		bool is_link = h->type_len == 2
		    && (memcmp(h->type, EV_LINK_TYPE, 2) == 0
		        || memcmp(h->type, EV_STREAM_LINK_TYPE, 2) == 0);
		bool is_sys  = h->stream_len > 0 && h->stream[0] == '$';
		if (is_link && !(s->flags & SL_SOURCE_LINKS))
			return false;
		if (s->n == 0 && is_sys
		    && !(s->flags & SL_SOURCE_SYSTEM_STREAMS))
			return false;
		bool in = s->n == 0;
		for (size_t i = 0; i < s->n && !in; i++)
			in = source_matches(s, &s->v[i], h, is_sys);
		if (!in)
			return false;
	}
	/* a projection's events: of a type a selector names */
	return def_is_filter(s->def)
	    || proc_type_selected(s->def, h->type, h->type_len);
}

/* store_resolve_link's: a copy of the target (the record is the read
 * transaction's), decoded. */
static int
target_cb(void *arg, uint64_t position, const void *data, size_t len)
{
	processor *p = arg;
	if (len > p->link.cap) {
		unsigned char *nb = realloc(p->link.buf, len);
		if (nb == NULL)
			return SL_ENOMEM;
		p->link.buf = nb;
		p->link.cap = len;
	}
	memcpy(p->link.buf, data, len);
	msgpack_zone_clear(p->link.zone);
	return ev_decode(p->link.buf, len, position, p->link.zone, &p->link.v);
}

static int
resolve(void *arg, const ev_view *link, const sl_event **out)
{
	processor *p = arg;
	if (p->link.zone == NULL
	    && (p->link.zone = msgpack_zone_new(4096)) == NULL)
		return SL_ENOMEM;
	int rc = store_resolve_link(p->s, p->tenant, link->content.via.str.ptr,
	    link->content.via.str.size, target_cb, p);
	if (rc != SL_OK)
		return rc == SL_EINVAL ? SL_ENOTFOUND : rc;
	p->link.ev = (struct sl_event) { .v = &p->link.v,
		.partition                   = p->link.v.stream };
	*out       = &p->link.ev;
	return SL_OK;
}

struct sl_event
proc_sl_event(processor *p, const ev_view *ev)
{
	return (struct sl_event) { .v = ev,
		.partition                = ev->stream,
		.resolve                  = resolve,
		.resolve_arg              = p };
}

void
proc_link_free(processor *p)
{
	if (p->link.zone != NULL)
		msgpack_zone_free(p->link.zone);
	free(p->link.buf);
}

/* Whether stream (a deleted one) is read by p's sources. */
static bool
reads_stream(const processor *p, const char *stream)
{
	const proc_src *s = &p->src;
	ev_head         h = { .tenant = s->tenant,
		        .tenant_len           = s->tenant_len,
		        .stream               = stream,
		        .stream_len           = strlen(stream) };
	bool            is_sys = stream[0] == '$';
	if (!s->v13 || s->n == 0)
		return !s->v13 || !is_sys || (s->flags & SL_SOURCE_SYSTEM_STREAMS);
	for (size_t i = 0; i < s->n; i++)
		if (source_matches(s, &s->v[i], &h, is_sys))
			return true;
	return false;
}

int
proc_deletion_unit(batch_ctx *b, const ev_view *ev, char *key)
{
	processor *p = b->p;
	if (!p->src.deleted || strcmp(ev->stream, STORE_DELETED_STREAM) != 0
	    || strcmp(ev->type, STORE_EV_STREAM_DELETED) != 0)
		return SL_ENOTFOUND;
	const char *stream;
	size_t      len;
	if (ev->content.type != MSGPACK_OBJECT_MAP
	    || mp_get_str(&ev->content, "stream", &stream, &len) != SL_OK
	    || len == 0 || len >= PROC_KEY_MAX)
		return PROC_SKIP; /* not a notice this host wrote */
	memcpy(key, stream, len);
	key[len] = '\0';
	if (!reads_stream(p, key))
		return PROC_SKIP;
	proc_set_unit(b, "", key);
	return proc_unit_selected(b, ev->position) ? SL_OK : PROC_SKIP;
}

int
proc_deleted_call(batch_ctx *b, int gk, const char *key, uint64_t position,
    sl_state *state, sl_context *ctx, sl_outcome *out)
{
	processor      *p  = b->p;
	proj_deleted_fn fn = proj_def_deleted(p->def);
	host_scratch_reset();
	proc_guard_enter(p, gk, key, strlen(key), position);
	*out = fn(p->def->p->user, key, key, state, ctx);
	guard_leave();
	return SL_OK;
}
