/*
 * Events through the host table: their fields, and their content and
 * metadata read by path (the 1.0 getters, with dotted paths through maps)
 * or as documents (ABI 1.3: docpath.h paths, kinds, lengths, keys, whole
 * values as JSON or msgpack). Strings and bytes handed out are copies in
 * the thread's scratch (host_internal.h), valid until the callback returns.
 */
#include <stdlib.h>
#include <string.h>

#include "docpath.h"
#include "host_internal.h"
#include "json.h"
#include "mp.h"

/* ---- 1.0 paths ---- */

static const msgpack_object *
map_find(const msgpack_object *map, const char *key, size_t klen)
{
	if (map == NULL || map->type != MSGPACK_OBJECT_MAP)
		return NULL;
	for (uint32_t i = 0; i < map->via.map.size; i++) {
		const msgpack_object_kv *kv = &map->via.map.ptr[i];
		if (kv->key.type == MSGPACK_OBJECT_STR
		    && kv->key.via.str.size == klen
		    && (klen == 0
		        || memcmp(kv->key.via.str.ptr, key, klen) == 0))
			return &kv->val;
	}
	return NULL;
}

const msgpack_object *
host_path(const msgpack_object *map, const char *path)
{
	if (map == NULL || path == NULL || *path == '\0')
		return NULL;
	const msgpack_object *o   = map;
	const char           *seg = path;
	for (;;) {
		const char *dot = strchr(seg, '.');
		size_t n = dot != NULL ? (size_t) (dot - seg) : strlen(seg);
		if (n == 0)
			return NULL; /* "a..b", ".a" and "a." name nothing */
		o = map_find(o, seg, n);
		if (o == NULL || dot == NULL)
			return o;
		seg = dot + 1;
	}
}

/* ---- event fields ---- */

/* Event getters cannot report errors, so a NULL event reads as empty. */
static const ev_view *
view_of(const sl_event *ev)
{
	return ev != NULL ? ev->v : NULL;
}

static const char *
str_or_empty(const char *s)
{
	return s != NULL ? s : "";
}

static const char *
h_event_type(const sl_event *ev)
{
	const ev_view *v = view_of(ev);
	return v != NULL ? str_or_empty(v->type) : "";
}

static uint32_t
h_event_generation(const sl_event *ev)
{
	const ev_view *v = view_of(ev);
	return v != NULL ? v->generation : 0;
}

static const char *
h_event_tenant(const sl_event *ev)
{
	const ev_view *v = view_of(ev);
	return v != NULL ? str_or_empty(v->tenant) : "";
}

static const char *
h_event_stream(const sl_event *ev)
{
	const ev_view *v = view_of(ev);
	return v != NULL ? str_or_empty(v->stream) : "";
}

/* The log itself is partitioned by stream, so no partition means stream. */
static const char *
h_event_partition(const sl_event *ev)
{
	if (ev == NULL)
		return "";
	if (ev->partition != NULL)
		return ev->partition;
	return h_event_stream(ev);
}

static uint64_t
h_event_position(const sl_event *ev)
{
	const ev_view *v = view_of(ev);
	return v != NULL ? v->position : 0;
}

static uint64_t
h_event_revision(const sl_event *ev)
{
	const ev_view *v = view_of(ev);
	return v != NULL ? v->revision : 0;
}

static int64_t
h_event_occurred(const sl_event *ev)
{
	const ev_view *v = view_of(ev);
	return v != NULL ? v->occurred_ns : 0;
}

static bool
h_event_public(const sl_event *ev)
{
	const ev_view *v = view_of(ev);
	return v != NULL && v->is_public;
}

static const char *
h_event_id(const sl_event *ev)
{
	const ev_view *v = view_of(ev);
	return v != NULL ? v->id_text : "";
}

static const char *
h_event_correlation_id(const sl_event *ev)
{
	const ev_view *v = view_of(ev);
	return v != NULL ? str_or_empty(v->correlation_id) : "";
}

static const char *
h_event_causation_id(const sl_event *ev)
{
	const ev_view *v = view_of(ev);
	return v != NULL ? str_or_empty(v->causation_id) : "";
}

/* ---- typed values (1.0 and 1.3 getters alike) ---- */

static int
value_str(const sl_event *ev, const msgpack_object *o, const char **out)
{
	if (o->type != MSGPACK_OBJECT_STR)
		return SL_EINVAL;
	host_scratch_enter(ev->v);
	const char *s = host_scratch_copy(o->via.str.ptr, o->via.str.size);
	if (s == NULL)
		return SL_ENOMEM;
	*out = s;
	return SL_OK;
}

/* another type, or too large for int64: SL_EINVAL */
static int
value_i64(const msgpack_object *o, int64_t *out)
{
	return mp_as_i64(o, out) ? SL_OK : SL_EINVAL;
}

static int
value_f64(const msgpack_object *o, double *out)
{
	switch (o->type) {
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		*out = (double) o->via.u64;
		return SL_OK;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		*out = (double) o->via.i64;
		return SL_OK;
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		*out = o->via.f64;
		return SL_OK;
	default:
		return SL_EINVAL;
	}
}

static int
value_bool(const msgpack_object *o, bool *out)
{
	if (o->type != MSGPACK_OBJECT_BOOLEAN)
		return SL_EINVAL;
	*out = o->via.boolean;
	return SL_OK;
}

/* ---- content and metadata by 1.0 path ---- */

/* Look up a 1.0 path in the content (or metadata) map of ev. */
static int
event_lookup(const sl_event *ev, bool metadata, const char *path,
    const void *out, const msgpack_object **o)
{
	const ev_view *v = view_of(ev);
	if (v == NULL || path == NULL || out == NULL)
		return SL_EINVAL;
	*o = host_path(metadata ? &v->metadata : &v->content, path);
	return *o != NULL ? SL_OK : SL_ENOTFOUND;
}

static int
h_content_str(const sl_event *ev, const char *path, const char **out)
{
	const msgpack_object *o;
	int                   rc = event_lookup(ev, false, path, out, &o);
	return rc != SL_OK ? rc : value_str(ev, o, out);
}

static int
h_metadata_str(const sl_event *ev, const char *path, const char **out)
{
	const msgpack_object *o;
	int                   rc = event_lookup(ev, true, path, out, &o);
	return rc != SL_OK ? rc : value_str(ev, o, out);
}

static int
h_content_i64(const sl_event *ev, const char *path, int64_t *out)
{
	const msgpack_object *o;
	int                   rc = event_lookup(ev, false, path, out, &o);
	return rc != SL_OK ? rc : value_i64(o, out);
}

static int
h_content_f64(const sl_event *ev, const char *path, double *out)
{
	const msgpack_object *o;
	int                   rc = event_lookup(ev, false, path, out, &o);
	return rc != SL_OK ? rc : value_f64(o, out);
}

static int
h_content_bool(const sl_event *ev, const char *path, bool *out)
{
	const msgpack_object *o;
	int                   rc = event_lookup(ev, false, path, out, &o);
	return rc != SL_OK ? rc : value_bool(o, out);
}

/* ---- ABI 1.3: content and metadata as documents ---- */

/*
 * The value at a 1.3 path in part of ev. A step that meets another kind
 * of value names nothing (SL_ENOTFOUND), as a missing key does.
 */
static int
event_find(const sl_event *ev, sl_part part, const char *path, const void *out,
    const msgpack_object **o)
{
	const ev_view *v = view_of(ev);
	dpath          p;
	int            rc;
	if (v == NULL || out == NULL
	    || (part != SL_CONTENT && part != SL_METADATA))
		return SL_EINVAL;
	if ((rc = dpath_parse(path, &p)) != SL_OK)
		return rc;
	const msgpack_object *cur
	    = part == SL_CONTENT ? &v->content : &v->metadata;
	for (size_t i = 0; i < p.n; i++) {
		const dpath_seg *s = &p.seg[i];
		size_t           k;
		if (!s->is_index) {
			cur = map_find(cur, s->key, s->klen);
		} else if (cur->type == MSGPACK_OBJECT_ARRAY
		    && dpath_item(s->index, cur->via.array.size, &k)) {
			cur = &cur->via.array.ptr[k];
		} else {
			cur = NULL;
		}
		if (cur == NULL)
			return SL_ENOTFOUND;
	}
	*o = cur;
	return SL_OK;
}

static sl_kind
value_kind(const msgpack_object *o)
{
	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		return SL_KIND_NIL;
	case MSGPACK_OBJECT_BOOLEAN:
		return SL_KIND_BOOL;
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		return SL_KIND_INT;
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		return SL_KIND_FLOAT;
	case MSGPACK_OBJECT_STR:
		return SL_KIND_STR;
	case MSGPACK_OBJECT_BIN:
		return SL_KIND_BIN;
	case MSGPACK_OBJECT_ARRAY:
		return SL_KIND_ARRAY;
	case MSGPACK_OBJECT_MAP:
		return SL_KIND_MAP;
	default:
		return SL_KIND_EXT;
	}
}

static int
h_event_kind(const sl_event *ev, sl_part part, const char *path, sl_kind *out)
{
	const msgpack_object *o;
	int                   rc = event_find(ev, part, path, out, &o);
	if (rc == SL_OK)
		*out = value_kind(o);
	return rc;
}

static int
h_event_len(const sl_event *ev, sl_part part, const char *path, size_t *out)
{
	const msgpack_object *o;
	int                   rc = event_find(ev, part, path, out, &o);
	if (rc != SL_OK)
		return rc;
	if (o->type == MSGPACK_OBJECT_MAP)
		*out = o->via.map.size;
	else if (o->type == MSGPACK_OBJECT_ARRAY)
		*out = o->via.array.size;
	else
		return SL_EINVAL;
	return SL_OK;
}

static int
h_event_key(const sl_event *ev, sl_part part, const char *path, size_t i,
    const char **out)
{
	const msgpack_object *o;
	int                   rc = event_find(ev, part, path, out, &o);
	if (rc != SL_OK)
		return rc;
	if (o->type != MSGPACK_OBJECT_MAP)
		return SL_EINVAL;
	if (i >= o->via.map.size)
		return SL_ENOTFOUND;
	/* a key that is not a string has no C string to give */
	return value_str(ev, &o->via.map.ptr[i].key, out);
}

static int
h_event_get_str(
    const sl_event *ev, sl_part part, const char *path, const char **out)
{
	const msgpack_object *o;
	int                   rc = event_find(ev, part, path, out, &o);
	return rc != SL_OK ? rc : value_str(ev, o, out);
}

static int
h_event_get_i64(
    const sl_event *ev, sl_part part, const char *path, int64_t *out)
{
	const msgpack_object *o;
	int                   rc = event_find(ev, part, path, out, &o);
	return rc != SL_OK ? rc : value_i64(o, out);
}

static int
h_event_get_f64(
    const sl_event *ev, sl_part part, const char *path, double *out)
{
	const msgpack_object *o;
	int                   rc = event_find(ev, part, path, out, &o);
	return rc != SL_OK ? rc : value_f64(o, out);
}

static int
h_event_get_bool(const sl_event *ev, sl_part part, const char *path, bool *out)
{
	const msgpack_object *o;
	int                   rc = event_find(ev, part, path, out, &o);
	return rc != SL_OK ? rc : value_bool(o, out);
}

static int
h_event_get_json(
    const sl_event *ev, sl_part part, const char *path, const char **out)
{
	const msgpack_object *o;
	int                   rc = event_find(ev, part, path, out, &o);
	if (rc != SL_OK)
		return rc;
	char *text = mp_to_json_text(o);
	if (text == NULL)
		return SL_ENOMEM;
	host_scratch_enter(ev->v);
	*out = host_scratch_copy(text, strlen(text));
	free(text);
	return *out != NULL ? SL_OK : SL_ENOMEM;
}

static int
h_event_get_msgpack(const sl_event *ev, sl_part part, const char *path,
    const void **out, size_t *len)
{
	const msgpack_object *o;
	int                   rc = event_find(ev, part, path, out, &o);
	if (rc != SL_OK)
		return rc;
	if (len == NULL)
		return SL_EINVAL;
	msgpack_sbuffer sb;
	msgpack_packer  pk;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	if (msgpack_pack_object(&pk, *o) != 0 || sb.data == NULL) {
		msgpack_sbuffer_destroy(&sb);
		return SL_ENOMEM;
	}
	host_scratch_enter(ev->v);
	*out = host_scratch_copy(sb.data, sb.size);
	*len = sb.size;
	msgpack_sbuffer_destroy(&sb);
	return *out != NULL ? SL_OK : SL_ENOMEM;
}

/* ---- the table's event calls ---- */

static int
h_event_link_target(const sl_event *ev, const sl_event **out)
{
	if (out != NULL)
		*out = NULL;
	if (ev == NULL || ev->v == NULL || out == NULL)
		return SL_EINVAL;
	if (strcmp(ev->v->type, EV_LINK_TYPE) != 0
	    || ev->v->content.type != MSGPACK_OBJECT_STR)
		return SL_EINVAL;
	if (ev->resolve == NULL)
		return SL_ENOTFOUND;
	return ev->resolve(ev->resolve_arg, ev->v, out);
}

void
host_event_calls(sl_host_api *t)
{
	t->event_type           = h_event_type;
	t->event_generation     = h_event_generation;
	t->event_tenant         = h_event_tenant;
	t->event_stream         = h_event_stream;
	t->event_partition      = h_event_partition;
	t->event_position       = h_event_position;
	t->event_revision       = h_event_revision;
	t->event_occurred       = h_event_occurred;
	t->event_public         = h_event_public;
	t->event_id             = h_event_id;
	t->event_correlation_id = h_event_correlation_id;
	t->event_causation_id   = h_event_causation_id;
	t->content_str          = h_content_str;
	t->content_i64          = h_content_i64;
	t->content_f64          = h_content_f64;
	t->content_bool         = h_content_bool;
	t->metadata_str         = h_metadata_str;
	/* ABI 1.3 */
	t->event_kind        = h_event_kind;
	t->event_len         = h_event_len;
	t->event_key         = h_event_key;
	t->event_get_str     = h_event_get_str;
	t->event_get_i64     = h_event_get_i64;
	t->event_get_f64     = h_event_get_f64;
	t->event_get_bool    = h_event_get_bool;
	t->event_get_json    = h_event_get_json;
	t->event_get_msgpack = h_event_get_msgpack;
	t->event_link_target = h_event_link_target;
}
