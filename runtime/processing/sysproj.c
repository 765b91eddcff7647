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

/*
 * link_to into prefix + name; a stream id over SL_MAX_ID_LEN is logged and
 * skipped (EventStoreDB has no such limit: faulting a system projection
 * forever on one long id would stop every other link). A refused write
 * fails the event when the host says so; in a query, where nothing is
 * written, the refusal is not an error.
 */
static sl_outcome
link(sl_context *ctx, const sys_conf *c, const char *name, const sl_event *ev)
{
	const sl_host_api *h = host_api();
	char               stream[SL_MAX_ID_LEN + 1];
	int n = snprintf(stream, sizeof(stream), "%s%s", c->prefix, name);
	if (n < 0 || (size_t) n >= sizeof(stream)) {
		log_warn("sysproj",
		    "%s: not linking %" PRIu64 "@%.64s...: stream id '%s%.64s"
		    "...' would be longer than %d bytes",
		    sys_info[c - confs].name, h->event_revision(ev),
		    h->event_stream(ev), c->prefix, name, SL_MAX_ID_LEN);
		return SL_REPLACE;
	}
	if (h->link_to(ctx, stream, ev) != SL_OK && ctx->failed)
		return SL_FAIL;
	return SL_REPLACE;
}

/*
 * A link event (written by an emitting projection into a stream of its
 * own) is linked by EventStoreDB's $by_category to its target, not to
 * itself. link_to needs only the target's stream and revision (it writes
 * "<revision>@<stream>"), so a view with those two stands in for it.
 * Returns false when content is not "N@stream" (a client's own "$>").
 */
static bool
link_target(const sl_event *ev, ev_view *tv, char *buf, size_t len)
{
	const msgpack_object *o = &ev->v->content;
	const char           *stream;
	size_t                sl;
	uint64_t              rev;
	if (o->type != MSGPACK_OBJECT_STR
	    || !ev_parse_link(o->via.str.ptr, o->via.str.size, &rev, &stream,
	        &sl)
	    || sl == 0 || sl >= len)
		return false;
	memcpy(buf, stream, sl); /* NUL-terminated for the view */
	buf[sl] = '\0';
	memset(tv, 0, sizeof(*tv));
	tv->tenant   = ev->v->tenant;
	tv->stream   = buf;
	tv->revision = rev;
	return true;
}

static sl_outcome
sys_on(void *user, const sl_event *ev, const char *key, sl_state *state,
    sl_context *ctx)
{
	const sl_host_api *h       = host_api();
	const sys_conf    *c       = user;
	const char        *stream  = h->event_stream(ev);
	const char        *type    = h->event_type(ev);
	bool               is_link = strcmp(type, EV_LINK_TYPE) == 0;
	char               cat[SL_MAX_ID_LEN + 1];
	(void) key;
	(void) state;

	/* System streams are where links are written: never link them. */
	if (stream[0] == '$')
		return SL_REPLACE;
	switch (c->which) {
	case SYS_CATEGORY: {
		if (sysproj_category(
		        stream, cat_sep, cat_last, cat, sizeof(cat))
		    <= 0)
			return SL_REPLACE;
		ev_view  tv;
		sl_event te;
		char     buf[SL_MAX_ID_LEN + 32];
		if (is_link && link_target(ev, &tv, buf, sizeof(buf))) {
			te.v         = &tv;
			te.partition = tv.stream;
			return link(ctx, c, cat, &te);
		}
		return link(ctx, c, cat, ev);
	}
	case SYS_TYPE:
		return is_link ? SL_REPLACE : link(ctx, c, type, ev);
	case SYS_CORRELATION: {
		const char *id = NULL;
		/* absent, not a string or empty: not correlated */
		if (is_link || h->metadata_str(ev, corr_prop, &id) != SL_OK
		    || id == NULL || id[0] == '\0')
			return SL_REPLACE;
		return link(ctx, c, id, ev);
	}
	case SYS_STREAM_CAT:
		if (h->event_revision(ev) != 0
		    || sysproj_category(
		           stream, cat_sep, cat_last, cat, sizeof(cat))
		        <= 0)
			return SL_REPLACE;
		return link(ctx, c, cat, ev);
	default: /* SYS_STREAMS: the stream itself is the name */
		return h->event_revision(ev) != 0 ? SL_REPLACE
		                                  : link(ctx, c, "", ev);
	}
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
