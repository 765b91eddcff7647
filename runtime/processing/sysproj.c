/*
 * The five system projections of EventStoreDB as built-in projection
 * vtables: each on() looks at one event of the log and links it with
 * host->link_to; the emitting projection engine (runtime/processing/emitter.c) runs
 * them and commits the links with their checkpoint. Their state is never
 * touched ("{}"), so the engine never writes one.
 */
#include "sysproj.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fnv.h"
#include "host.h"
#include "log.h"
#include "mpraw.h"

#define SYS_SCOPE "00000000-0000-0000-0000-000000000000"

/* What on() needs besides the event: the configuration, read only. */
typedef struct sys_conf {
	int  which;      /* SYS_* */
	char prefix[16]; /* of the streams it writes, e.g. "$ce-" */
} sys_conf;

enum { SYS_CATEGORY, SYS_TYPE, SYS_CORRELATION, SYS_STREAM_CAT, SYS_STREAMS };

/* The system_projections configuration (sysproj_init). */
static char *cat_sep;
static bool  cat_last;
static char *corr_prop;

static const sl_selector any_sel[] = { { "$any", SL_KEY_STATIC, "" } };

static sl_outcome sys_on(void *user, const sl_event *ev, const char *key,
    sl_state *state, sl_context *ctx);

/* In sysproj.h's order: ids ...0001 to ...0005. */
static const struct {
	const char *id;
	const char *name;
	const char *emits; /* what it writes, claimed for it */
} sys_info[SYSPROJ_COUNT] = {
	{ "00000000-0000-0000-0000-000000000001", "$by_category", "$ce-*" },
	{ "00000000-0000-0000-0000-000000000002", "$by_event_type", "$et-*" },
	{ "00000000-0000-0000-0000-000000000003", "$by_correlation_id",
	    "$bc-*" },
	{ "00000000-0000-0000-0000-000000000004", "$stream_by_category",
	    "$category-*" },
	{ "00000000-0000-0000-0000-000000000005", "$streams", "$streams" },
};

static sys_conf confs[SYSPROJ_COUNT] = {
	{ SYS_CATEGORY, "$ce-" },
	{ SYS_TYPE, "$et-" },
	{ SYS_CORRELATION, "$bc-" },
	{ SYS_STREAM_CAT, "$category-" },
	{ SYS_STREAMS, "$streams" },
};
static const char   *emits[SYSPROJ_COUNT][1];
static sl_projection vts[SYSPROJ_COUNT];
static proj_def      defs[SYSPROJ_COUNT];
static char          initial[1] = { (char) 0x80 }; /* msgpack {} */
static bool          ready;

int
sysproj_category(
    const char *stream, const char *sep, bool last, char *out, size_t len)
{
	size_t      sl  = strlen(sep);
	const char *hit = NULL;
	if (stream[0] == '$' || sl == 0)
		return 0;
	const char *p = strstr(stream, sep);
	while (p != NULL) {
		hit = p;
		p   = last ? strstr(p + 1, sep) : NULL;
	}
	/* as EventStoreDB: no separator, or one at 0, is no category */
	if (hit == NULL || hit == stream)
		return 0;
	size_t n = (size_t) (hit - stream);
	if (n >= len)
		return -1;
	memcpy(out, stream, n);
	out[n] = '\0';
	return (int) n;
}

bool
sysproj_in_category(const char *stream, size_t len, const char *cat)
{
	char id[1025], got[1025];
	if (len >= sizeof(id))
		return false;
	memcpy(id, stream, len);
	id[len] = '\0';
	return sysproj_category(id, cat_sep != NULL ? cat_sep : "-", cat_last,
	           got, sizeof(got))
	        > 0
	    && strcmp(got, cat) == 0;
}

/* FNV-1a 64 continued over a string and its terminating NUL. */
static uint64_t
fold(uint64_t h, const char *s)
{
	return fnv1a(h, s, strlen(s) + 1);
}

/* One event as a system projection sees it: from a decoded view (sys_on)
 * or from the stored bytes (sysproj_peek). */
typedef struct sys_in {
	const char *stream; /* NUL-terminated */
	const char *type;
	size_t      type_len;
	uint64_t    revision;
	bool        is_link; /* of type "$>" */
	/* $by_correlation_id: the property's value (NULL: absent, not a
	 * string, or not asked) */
	const char *corr;
	size_t      corr_len;
	/* a link's content string (NULL: none, or not a string) */
	const char *content;
	size_t      content_len;
} sys_in;

/* What to link: into prefix + name, the event at trev of tstream. */
typedef struct sys_out {
	char        cat[SL_MAX_ID_LEN + 1];
	const char *name;
	size_t      name_len;
	const char *tstream; /* NULL: the event itself */
	size_t      tlen;
	uint64_t    trev;
} sys_out;

/*
 * The one decision of the five, for both paths: 1 link (o filled), 0 no
 * link. A link event (written by an emitting projection into a stream of
 * its own) is linked by EventStoreDB's $by_category to its target, not to
 * itself, when its content is "N@stream" (a client's own "$>" may not
 * be); it is never linked by the others but $stream_by_category and
 * $streams, which take it as any first event of a stream.
 */
static int
sys_decide(const sys_conf *c, const sys_in *in, sys_out *o)
{
	/* System streams are where links are written: never link them. */
	if (in->stream[0] == '$')
		return 0;
	o->tstream = NULL;
	switch (c->which) {
	case SYS_CATEGORY: {
		int n = sysproj_category(
		    in->stream, cat_sep, cat_last, o->cat, sizeof(o->cat));
		if (n <= 0)
			return 0;
		o->name     = o->cat;
		o->name_len = (size_t) n;
		const char *ts;
		size_t      tl;
		uint64_t    rev;
		if (in->is_link && in->content != NULL
		    && ev_parse_link(
		        in->content, in->content_len, &rev, &ts, &tl)
		    && tl > 0) {
			o->tstream = ts;
			o->tlen    = tl;
			o->trev    = rev;
		}
		return 1;
	}
	case SYS_TYPE:
		o->name     = in->type;
		o->name_len = in->type_len;
		return !in->is_link;
	case SYS_CORRELATION:
		/* absent, not a string or empty: not correlated */
		o->name     = in->corr;
		o->name_len = in->corr_len;
		return !in->is_link && in->corr != NULL && in->corr_len > 0;
	case SYS_STREAM_CAT: {
		int n = in->revision == 0 ? sysproj_category(in->stream,
		                                cat_sep, cat_last, o->cat,
		                                sizeof(o->cat))
		                          : 0;
		o->name     = o->cat;
		o->name_len = n > 0 ? (size_t) n : 0;
		return n > 0;
	}
	default: /* SYS_STREAMS: the stream itself is the name */
		o->name     = "";
		o->name_len = 0;
		return in->revision == 0;
	}
}

/* Into out (SL_MAX_ID_LEN + 1 bytes): the stream c links into for name.
 * @return false when it would be longer than SL_MAX_ID_LEN. */
static bool
sys_stream(const sys_conf *c, const char *name, size_t n, char *out)
{
	size_t pl = strlen(c->prefix);
	if (pl + n > SL_MAX_ID_LEN)
		return false;
	memcpy(out, c->prefix, pl);
	memcpy(out + pl, name, n);
	out[pl + n] = '\0';
	return true;
}

static sl_outcome
sys_on(void *user, const sl_event *ev, const char *key, sl_state *state,
    sl_context *ctx)
{
	const sl_host_api *h = host_api();
	const sys_conf    *c = user;
	sys_in             in;
	sys_out            o;
	(void) key;
	(void) state;

	memset(&in, 0, sizeof(in));
	in.stream   = h->event_stream(ev);
	in.type     = h->event_type(ev);
	in.type_len = strlen(in.type);
	in.revision = h->event_revision(ev);
	in.is_link  = strcmp(in.type, EV_LINK_TYPE) == 0;
	const msgpack_object *co = &ev->v->content;
	if (co->type == MSGPACK_OBJECT_STR) {
		in.content     = co->via.str.ptr;
		in.content_len = co->via.str.size;
	}
	if (c->which == SYS_CORRELATION && in.stream[0] != '$'
	    && h->metadata_str(ev, corr_prop, &in.corr) == SL_OK
	    && in.corr != NULL)
		in.corr_len = strlen(in.corr);
	else
		in.corr = NULL;
	if (sys_decide(c, &in, &o) == 0)
		return SL_REPLACE;
	char stream[SL_MAX_ID_LEN + 1];
	if (!sys_stream(c, o.name, o.name_len, stream)) {
		log_warn("sysproj",
		    "%s: not linking %" PRIu64 "@%.64s...: stream id '%s%.64s"
		    "...' would be longer than %d bytes",
		    sys_info[c - confs].name, in.revision, in.stream,
		    c->prefix, o.name, SL_MAX_ID_LEN);
		return SL_REPLACE;
	}
	/* link_to needs only the target's stream and revision (it writes
	 * "<revision>@<stream>"), so a view with those two stands in for
	 * a link's target */
	ev_view  tv;
	sl_event te;
	char     buf[SL_MAX_ID_LEN + 32];
	if (o.tstream != NULL && o.tlen < sizeof(buf)) {
		memcpy(buf, o.tstream, o.tlen); /* NUL-terminated */
		buf[o.tlen] = '\0';
		memset(&tv, 0, sizeof(tv));
		tv.tenant    = ev->v->tenant;
		tv.stream    = buf;
		tv.revision  = o.trev;
		te.v         = &tv;
		te.partition = tv.stream;
		ev           = &te;
	}
	/* A refused write fails the event when the host says so; in a
	 * query, where nothing is written, the refusal is not an error. */
	if (h->link_to(ctx, stream, ev) != SL_OK && ctx->failed)
		return SL_FAIL;
	return SL_REPLACE;
}

/* $by_correlation_id's property in metadata (a dotted path, as
 * host_path walks it): 1 a string (*s, *n), 0 none (absent, not a
 * string), -1 not decided here (not a map on the way, malformed). */
static int
raw_corr(const ev_raw *ev, const char **s, size_t *n)
{
	const unsigned char *v  = ev->metadata;
	size_t               vl = ev->metadata_len;
	const char          *seg = corr_prop;
	char                 key[SL_MAX_ID_LEN + 1];
	for (;;) {
		const char *dot = strchr(seg, '.');
		size_t      kn  = dot != NULL ? (size_t) (dot - seg) : strlen(seg);
		if (kn == 0)
			return 0;
		if (kn >= sizeof(key))
			return -1;
		memcpy(key, seg, kn);
		key[kn] = '\0';
		const unsigned char *val;
		size_t               val_len;
		int r = mpraw_map_find(v, vl, key, 4096, &val, &val_len);
		if (r <= 0)
			return r;
		v  = val;
		vl = val_len;
		if (dot == NULL)
			break;
		seg = dot + 1;
	}
	if (!mpraw_str(v, vl, s, n))
		return 0;
	return memchr(*s, 0, *n) != NULL ? -1 : 1;
}

int
sysproj_peek(const proj_def *def, const ev_raw *ev, sysproj_link *out)
{
	const sys_conf *c = def->p->user;
	const ev_head  *h = &ev->h;
	char            stream[SL_MAX_ID_LEN + 1];
	sys_in          in;
	sys_out         o;
	if (h->stream_len >= sizeof(stream))
		return -1;
	memcpy(stream, h->stream, h->stream_len);
	stream[h->stream_len] = '\0';
	memset(&in, 0, sizeof(in));
	in.stream   = stream;
	in.type     = h->type;
	in.type_len = h->type_len;
	in.revision = h->revision;
	in.is_link  = h->type_len == 2 && memcmp(h->type, EV_LINK_TYPE, 2) == 0;
	if (in.is_link
	    && !mpraw_str(ev->content, ev->content_len, &in.content,
	        &in.content_len))
		in.content = NULL;
	if (c->which == SYS_CORRELATION && stream[0] != '$') {
		int r = raw_corr(ev, &in.corr, &in.corr_len);
		if (r < 0)
			return -1;
		if (r == 0)
			in.corr = NULL;
	}
	if (sys_decide(c, &in, &o) == 0)
		return 0;
	/* what sys_on logs or refuses (too long, a NUL) is its to do */
	if (!sys_stream(c, o.name, o.name_len, out->stream))
		return -1;
	if (o.tstream != NULL) {
		if (o.tlen > SL_MAX_ID_LEN || memchr(o.tstream, 0, o.tlen))
			return -1;
		out->target     = o.tstream;
		out->target_len = o.tlen;
		out->revision   = o.trev;
	} else {
		out->target     = h->stream;
		out->target_len = h->stream_len;
		out->revision   = h->revision;
	}
	return 1;
}

int
sysproj_init(const sl_config *cfg)
{
	char *sep  = strdup(cfg != NULL ? cfg->category_separator : "-");
	char *prop = strdup(
	    cfg != NULL ? cfg->correlation_property : "$correlationId");
	if (sep == NULL || prop == NULL) {
		free(sep);
		free(prop);
		return SL_ENOMEM;
	}
	free(cat_sep);
	free(corr_prop);
	cat_sep   = sep;
	corr_prop = prop;
	cat_last  = cfg != NULL && cfg->category_last;

	for (size_t i = 0; i < SYSPROJ_COUNT; i++) {
		sl_projection *p = &vts[i];
		proj_def      *d = &defs[i];
		emits[i][0]      = sys_info[i].emits;
		*p               = (sl_projection) {
			              .struct_size        = sizeof(sl_projection),
			              .abi_version        = (SL_ABI_MAJOR << 16) | 2, /* whole log */
			              .id                 = sys_info[i].id,
			              .scope              = SYS_SCOPE,
			              .name               = sys_info[i].name,
			              .version            = 1,
			              .initial_state_json = "{}",
			              .selectors          = any_sel,
			              .n_selectors        = 1,
			              .on                 = sys_on,
			              .user               = &confs[i],
			              .emits              = emits[i],
			              .n_emits            = 1,
		};
		*d = (proj_def) {
			.p           = p,
			.name        = sys_info[i].name,
			.initial     = initial,
			.initial_len = sizeof(initial),
			.version     = 1,
			.kind        = DEF_PROJECTION,
		};
		snprintf(d->id, sizeof(d->id), "%s", sys_info[i].id);
		snprintf(d->scope, sizeof(d->scope), "%s", SYS_SCOPE);
		uint64_t hh = defhash_projection(d->id, d->scope, d->version,
		    d->initial, d->initial_len, any_sel, 1);
		hh          = defhash_emits(hh, emits[i], 1, false);
		/* the configuration is part of the definition: a change
		 * rebuilds the streams it shaped */
		switch (confs[i].which) {
		case SYS_CATEGORY:
		case SYS_STREAM_CAT:
			hh = fold(
			    fold(hh, cat_sep), cat_last ? "last" : "first");
			break;
		case SYS_CORRELATION:
			hh = fold(hh, corr_prop);
			break;
		default:
			break;
		}
		d->def_hash = hh;
	}
	ready = true;
	return SL_OK;
}

void
sysproj_fini(void)
{
	ready = false;
	free(cat_sep);
	free(corr_prop);
	cat_sep   = NULL;
	corr_prop = NULL;
}

size_t
sysproj_count(void)
{
	return ready ? SYSPROJ_COUNT : 0;
}

const proj_def *
sysproj_def(size_t i)
{
	return ready && i < SYSPROJ_COUNT ? &defs[i] : NULL;
}

bool
sysproj_is_system(const proj_def *def)
{
	for (size_t i = 0; i < SYSPROJ_COUNT; i++)
		if (def == &defs[i])
			return true;
	return false;
}

int
sysproj_index(const proj_def *def)
{
	for (size_t i = 0; i < SYSPROJ_COUNT; i++)
		if (def == &defs[i])
			return (int) i;
	return -1;
}

bool
sysproj_owns(size_t i, const char *stream, size_t len)
{
	/* "$projections-<name>-": its result streams' prefix */
	static const char rp[] = "$projections-";
	size_t            nl = strlen(sys_info[i].name), rl = sizeof(rp) - 1;
	size_t            el = strlen(sys_info[i].emits);
	if (len >= rl + nl + 1 && memcmp(stream, rp, rl) == 0
	    && memcmp(stream + rl, sys_info[i].name, nl) == 0
	    && stream[rl + nl] == '-')
		return true;
	if (sys_info[i].emits[el - 1] == '*')
		return len >= el - 1 && memcmp(stream, sys_info[i].emits, el - 1) == 0;
	return len == el && memcmp(stream, sys_info[i].emits, el) == 0;
}
