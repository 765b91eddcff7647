/*
 * The host side of the plugin ABI: the static sl_host_api table that every
 * plugin receives, and the event, state and context objects a processor
 * hands to a projection's on() or a filter's filter() callback (see
 * runtime/plugins/host.h).
 */
#include "host.h"

#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "log.h"
#include "mp.h"

/* ---- per-thread scratch for NUL-terminated copies of msgpack strings ---- */

/*
 * msgpack strings point into the event buffer without a terminating NUL, but
 * the ABI promises C strings. Copies go to a small per-thread arena; larger
 * or later ones to malloc'ed blocks chained behind it. Everything is released
 * by host_scratch_reset() (called by the processor before each callback) or
 * when a getter sees a different event than the last one on this thread,
 * since strings only need to live until the callback returns.
 */
#define SCRATCH_INLINE 8192

typedef struct scratch_block {
	struct scratch_block *next;
	char                  data[];
} scratch_block;

static __thread char           scratch_buf[SCRATCH_INLINE];
static __thread size_t         scratch_used;
static __thread scratch_block *scratch_blocks;
static __thread const void    *scratch_owner_v; /* last event seen */
static __thread const void    *scratch_owner_data;
static __thread uint64_t       scratch_owner_pos;

static pthread_key_t  scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void
scratch_free_list(void *head)
{
	scratch_block *b = head;
	while (b != NULL) {
		scratch_block *next = b->next;
		free(b);
		b = next;
	}
}

/* The key's destructor frees the overflow blocks of a thread that exits. */
static void
scratch_key_create(void)
{
	(void) pthread_key_create(&scratch_key, scratch_free_list);
}

void
host_scratch_reset(void)
{
	scratch_used = 0;
	if (scratch_blocks != NULL) {
		scratch_free_list(scratch_blocks);
		scratch_blocks = NULL;
		(void) pthread_setspecific(scratch_key, NULL);
	}
	scratch_owner_v    = NULL;
	scratch_owner_data = NULL;
	scratch_owner_pos  = 0;
}

/* Strings of an earlier event are dead once a getter sees another event. */
static void
scratch_enter(const ev_view *v)
{
	if (v == scratch_owner_v
	    && v->content.via.map.ptr == scratch_owner_data
	    && v->position == scratch_owner_pos)
		return;
	host_scratch_reset();
	scratch_owner_v    = v;
	scratch_owner_data = v->content.via.map.ptr;
	scratch_owner_pos  = v->position;
}

/* A NUL-terminated copy of p[0..n), valid until the next reset. */
static const char *
scratch_copy(const char *p, size_t n)
{
	char *dst;
	if (n < SCRATCH_INLINE - scratch_used) {
		dst = scratch_buf + scratch_used;
		scratch_used += n + 1;
	} else {
		if (n > SIZE_MAX - sizeof(scratch_block) - 1)
			return NULL;
		scratch_block *b = malloc(sizeof(*b) + n + 1);
		if (b == NULL)
			return NULL;
		pthread_once(&scratch_once, scratch_key_create);
		b->next        = scratch_blocks;
		scratch_blocks = b;
		(void) pthread_setspecific(scratch_key, b);
		dst = b->data;
	}
	if (n > 0)
		memcpy(dst, p, n);
	dst[n] = '\0';
	return dst;
}

/* ---- paths ---- */

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

/* ---- log and event fields ---- */

static void
h_log(int level, const char *msg)
{
	log_msg(level, "plugin", "%s", msg != NULL ? msg : "(null)");
}

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

/* ---- content and metadata by path ---- */

/* Look up path in the content (or metadata) map of ev. */
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
event_str(
    const sl_event *ev, bool metadata, const char *path, const char **out)
{
	const msgpack_object *o;
	int                   rc = event_lookup(ev, metadata, path, out, &o);
	if (rc != SL_OK)
		return rc;
	if (o->type != MSGPACK_OBJECT_STR)
		return SL_EINVAL;
	scratch_enter(ev->v);
	const char *s = scratch_copy(o->via.str.ptr, o->via.str.size);
	if (s == NULL)
		return SL_ENOMEM;
	*out = s;
	return SL_OK;
}

static int
h_content_str(const sl_event *ev, const char *path, const char **out)
{
	return event_str(ev, false, path, out);
}

static int
h_metadata_str(const sl_event *ev, const char *path, const char **out)
{
	return event_str(ev, true, path, out);
}

static int
h_content_i64(const sl_event *ev, const char *path, int64_t *out)
{
	const msgpack_object *o;
	int                   rc = event_lookup(ev, false, path, out, &o);
	if (rc != SL_OK)
		return rc;
	/* another type, or too large for int64: SL_EINVAL */
	return mp_as_i64(o, out) ? SL_OK : SL_EINVAL;
}

static int
h_content_f64(const sl_event *ev, const char *path, double *out)
{
	const msgpack_object *o;
	int                   rc = event_lookup(ev, false, path, out, &o);
	if (rc != SL_OK)
		return rc;
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
h_content_bool(const sl_event *ev, const char *path, bool *out)
{
	const msgpack_object *o;
	int                   rc = event_lookup(ev, false, path, out, &o);
	if (rc != SL_OK)
		return rc;
	if (o->type != MSGPACK_OBJECT_BOOLEAN)
		return SL_EINVAL;
	*out = o->via.boolean;
	return SL_OK;
}

/* ---- state ---- */

void
state_init(sl_state *st)
{
	st->fields = NULL;
	st->n      = 0;
	st->cap    = 0;
}

static void
field_clear_value(state_field *f)
{
	if (f->kind == ST_STR || f->kind == ST_RAW)
		free(f->u.s.p);
	f->kind = ST_NIL;
}

void
state_free(sl_state *st)
{
	if (st == NULL)
		return;
	for (size_t i = 0; i < st->n; i++) {
		field_clear_value(&st->fields[i]);
		free(st->fields[i].key);
	}
	free(st->fields);
	state_init(st);
}

static state_field *
state_find(const sl_state *st, const char *key, size_t klen)
{
	for (size_t i = 0; i < st->n; i++)
		if (strlen(st->fields[i].key) == klen
		    && memcmp(st->fields[i].key, key, klen) == 0)
			return &st->fields[i];
	return NULL;
}

/*
 * The field for key, created (as nil, at the end) if absent; its old value
 * is left for the caller to clear. NULL on OOM.
 */
static state_field *
state_slot(sl_state *st, const char *key, size_t klen)
{
	state_field *f = state_find(st, key, klen);
	if (f != NULL)
		return f;
	if (st->n == st->cap) {
		size_t       cap = st->cap != 0 ? st->cap * 2 : 8;
		state_field *nf  = realloc(st->fields, cap * sizeof(*nf));
		if (nf == NULL)
			return NULL;
		st->fields = nf;
		st->cap    = cap;
	}
	char *k = malloc(klen + 1);
	if (k == NULL)
		return NULL;
	memcpy(k, key, klen);
	k[klen] = '\0';
	f       = &st->fields[st->n++];
	memset(f, 0, sizeof(*f));
	f->key  = k;
	f->kind = ST_NIL;
	return f;
}

/* Set a field to a copy of bytes as a string or a raw msgpack value. */
static int
field_set_bytes(
    state_field *f, enum state_kind kind, const char *p, size_t len)
{
	char *copy = malloc(len + 1);
	if (copy == NULL)
		return SL_ENOMEM;
	if (len > 0)
		memcpy(copy, p, len);
	copy[len] = '\0';
	field_clear_value(f);
	f->kind    = kind;
	f->u.s.p   = copy;
	f->u.s.len = len;
	return SL_OK;
}

/* Set a field to the encoded bytes of any other msgpack value. */
static int
field_set_raw(state_field *f, const msgpack_object *o)
{
	msgpack_sbuffer sb;
	msgpack_packer  pk;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	if (msgpack_pack_object(&pk, *o) != 0 || sb.data == NULL) {
		msgpack_sbuffer_destroy(&sb);
		return SL_ENOMEM;
	}
	field_clear_value(f);
	f->kind    = ST_RAW;
	f->u.s.p   = sb.data; /* the sbuffer's malloc'ed buffer, now ours */
	f->u.s.len = sb.size;
	return SL_OK;
}

static int
field_load(state_field *f, const msgpack_object *o)
{
	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		field_clear_value(f);
		return SL_OK;
	case MSGPACK_OBJECT_BOOLEAN:
		field_clear_value(f);
		f->kind = ST_BOOL;
		f->u.b  = o->via.boolean;
		return SL_OK;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		field_clear_value(f);
		f->kind = ST_I64;
		f->u.i  = o->via.i64;
		return SL_OK;
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		if (o->via.u64 > (uint64_t) INT64_MAX)
			return field_set_raw(f, o); /* keep it exact */
		field_clear_value(f);
		f->kind = ST_I64;
		f->u.i  = (int64_t) o->via.u64;
		return SL_OK;
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		field_clear_value(f);
		f->kind = ST_F64;
		f->u.f  = o->via.f64;
		return SL_OK;
	case MSGPACK_OBJECT_STR:
		return field_set_bytes(
		    f, ST_STR, o->via.str.ptr, o->via.str.size);
	default:
		return field_set_raw(f, o);
	}
}

int
state_load(sl_state *st, const void *data, size_t len)
{
	if (st == NULL || (data == NULL && len > 0))
		return SL_EINVAL;
	msgpack_unpacked up;
	msgpack_unpacked_init(&up);
	size_t off = 0;
	int    rc  = SL_EPROTO;
	if (msgpack_unpack_next(&up, data, len, &off) != MSGPACK_UNPACK_SUCCESS
	    || off != len || up.data.type != MSGPACK_OBJECT_MAP) {
		msgpack_unpacked_destroy(&up);
		return SL_EPROTO;
	}
	/* Build aside and swap, so st is unchanged on error. */
	sl_state                  tmp;
	const msgpack_object_map *m = &up.data.via.map;
	state_init(&tmp);
	for (uint32_t i = 0; i < m->size; i++) {
		const msgpack_object_kv *kv = &m->ptr[i];
		if (kv->key.type != MSGPACK_OBJECT_STR) {
			rc = SL_EPROTO;
			goto fail;
		}
		state_field *f = state_slot(
		    &tmp, kv->key.via.str.ptr, kv->key.via.str.size);
		if (f == NULL) {
			rc = SL_ENOMEM;
			goto fail;
		}
		if ((rc = field_load(f, &kv->val)) != SL_OK)
			goto fail;
	}
	msgpack_unpacked_destroy(&up);
	state_free(st);
	*st = tmp;
	return SL_OK;
fail:
	msgpack_unpacked_destroy(&up);
	state_free(&tmp);
	return rc;
}

void
state_pack(const sl_state *st, msgpack_packer *pk)
{
	if (st == NULL) {
		msgpack_pack_map(pk, 0);
		return;
	}
	msgpack_pack_map(pk, st->n);
	for (size_t i = 0; i < st->n; i++) {
		const state_field *f    = &st->fields[i];
		size_t             klen = strlen(f->key);
		msgpack_pack_str(pk, klen);
		msgpack_pack_str_body(pk, f->key, klen);
		switch (f->kind) {
		case ST_NIL:
			msgpack_pack_nil(pk);
			break;
		case ST_BOOL:
			if (f->u.b)
				msgpack_pack_true(pk);
			else
				msgpack_pack_false(pk);
			break;
		case ST_I64:
			msgpack_pack_int64(pk, f->u.i);
			break;
		case ST_F64:
			msgpack_pack_double(pk, f->u.f);
			break;
		case ST_STR:
			msgpack_pack_str(pk, f->u.s.len);
			msgpack_pack_str_body(pk, f->u.s.p, f->u.s.len);
			break;
		case ST_RAW:
			/* already encoded: append the bytes as they are */
			pk->callback(pk->data, f->u.s.p, f->u.s.len);
			break;
		}
	}
}

/* The field for a getter: SL_EINVAL on NULL arguments, else found or not. */
static int
state_get(const sl_state *st, const char *key, const void *out,
    const state_field **f)
{
	if (st == NULL || key == NULL || out == NULL)
		return SL_EINVAL;
	*f = state_find(st, key, strlen(key));
	return *f != NULL ? SL_OK : SL_ENOTFOUND;
}

static int
h_state_str(const sl_state *st, const char *key, const char **out)
{
	const state_field *f;
	int                rc = state_get(st, key, out, &f);
	if (rc != SL_OK)
		return rc;
	if (f->kind != ST_STR)
		return SL_EINVAL;
	*out = f->u.s.p;
	return SL_OK;
}

static int
h_state_i64(const sl_state *st, const char *key, int64_t *out)
{
	const state_field *f;
	int                rc = state_get(st, key, out, &f);
	if (rc != SL_OK)
		return rc;
	if (f->kind != ST_I64)
		return SL_EINVAL;
	*out = f->u.i;
	return SL_OK;
}

static int
h_state_f64(const sl_state *st, const char *key, double *out)
{
	const state_field *f;
	int                rc = state_get(st, key, out, &f);
	if (rc != SL_OK)
		return rc;
	if (f->kind == ST_I64)
		*out = (double) f->u.i;
	else if (f->kind == ST_F64)
		*out = f->u.f;
	else
		return SL_EINVAL;
	return SL_OK;
}

static int
h_state_bool(const sl_state *st, const char *key, bool *out)
{
	const state_field *f;
	int                rc = state_get(st, key, out, &f);
	if (rc != SL_OK)
		return rc;
	if (f->kind != ST_BOOL)
		return SL_EINVAL;
	*out = f->u.b;
	return SL_OK;
}

/* The field a setter writes, created if absent; NULL sets *rc. */
static state_field *
state_set(sl_state *st, const char *key, int *rc)
{
	if (st == NULL || key == NULL || *key == '\0') {
		*rc = SL_EINVAL;
		return NULL;
	}
	state_field *f = state_slot(st, key, strlen(key));
	*rc            = f != NULL ? SL_OK : SL_ENOMEM;
	return f;
}

static int
h_state_set_str(sl_state *st, const char *key, const char *val)
{
	int rc;
	if (val == NULL)
		return SL_EINVAL;
	state_field *f = state_set(st, key, &rc);
	if (f == NULL)
		return rc;
	/* val may point into this very field (set_str(k, state_str(k))) */
	return field_set_bytes(f, ST_STR, val, strlen(val));
}

static int
h_state_set_i64(sl_state *st, const char *key, int64_t val)
{
	int          rc;
	state_field *f = state_set(st, key, &rc);
	if (f == NULL)
		return rc;
	field_clear_value(f);
	f->kind = ST_I64;
	f->u.i  = val;
	return SL_OK;
}

static int
h_state_set_f64(sl_state *st, const char *key, double val)
{
	int          rc;
	state_field *f = state_set(st, key, &rc);
	if (f == NULL)
		return rc;
	field_clear_value(f);
	f->kind = ST_F64;
	f->u.f  = val;
	return SL_OK;
}

static int
h_state_set_bool(sl_state *st, const char *key, bool val)
{
	int          rc;
	state_field *f = state_set(st, key, &rc);
	if (f == NULL)
		return rc;
	field_clear_value(f);
	f->kind = ST_BOOL;
	f->u.b  = val;
	return SL_OK;
}

static int
h_state_set_nil(sl_state *st, const char *key)
{
	int          rc;
	state_field *f = state_set(st, key, &rc);
	if (f == NULL)
		return rc;
	field_clear_value(f);
	return SL_OK;
}

/* Removal keeps the order of the remaining fields (insertion order). */
static int
h_state_remove(sl_state *st, const char *key)
{
	if (st == NULL || key == NULL)
		return SL_EINVAL;
	state_field *f = state_find(st, key, strlen(key));
	if (f == NULL)
		return SL_ENOTFOUND;
	size_t i = (size_t) (f - st->fields);
	field_clear_value(f);
	free(f->key);
	memmove(
	    &st->fields[i], &st->fields[i + 1], (st->n - i - 1) * sizeof(*f));
	st->n--;
	return SL_OK;
}

/* ---- context ---- */

static uint32_t
h_retry_attempt(const sl_context *ctx)
{
	return ctx != NULL ? ctx->attempt : 0;
}

static const char *
h_retry_reason(const sl_context *ctx)
{
	return ctx != NULL ? str_or_empty(ctx->last_reason) : "";
}

static sl_outcome
h_fail(sl_context *ctx, const char *reason)
{
	if (ctx == NULL)
		return SL_FAIL;
	if (reason == NULL || *reason == '\0')
		reason = "failed (no reason given)";
	/* reason may be ctx->reason itself (handed back via retry_reason) */
	if (reason >= ctx->reason
	    && reason < ctx->reason + sizeof(ctx->reason)) {
		size_t n = strnlen(reason,
		    (size_t) (ctx->reason + sizeof(ctx->reason) - reason) - 1);
		memmove(ctx->reason, reason, n);
		ctx->reason[n] = '\0';
	} else {
		snprintf(ctx->reason, sizeof(ctx->reason), "%s", reason);
	}
	ctx->failed         = true;
	ctx->no_retry       = false;
	ctx->retry_after_ms = 0;
	return SL_FAIL;
}

/* A filter returns fail_with's result as its verdict. */
_Static_assert((int) SL_FAIL == (int) SL_FAILED,
    "fail_with's result is returned from filter() too");

/* fail with the plugin's retry decision; the last call of either wins. A
 * delay means nothing without a retry, and a day is the longest. */
static sl_outcome
h_fail_with(
    sl_context *ctx, const char *reason, bool retry, uint32_t retry_after_ms)
{
	(void) h_fail(ctx, reason);
	if (ctx == NULL)
		return SL_FAIL;
	if (retry_after_ms > HOST_RETRY_AFTER_MAX_MS)
		retry_after_ms = HOST_RETRY_AFTER_MAX_MS;
	ctx->no_retry       = !retry;
	ctx->retry_after_ms = retry ? retry_after_ms : 0;
	return SL_FAIL;
}

/* ---- ABI 1.2: emit and link_to ---- */

bool
host_stream_matches(const char *pattern, const char *stream)
{
	size_t n = strlen(pattern);
	if (n > 0 && pattern[n - 1] == '*')
		return strncmp(pattern, stream, n - 1) == 0;
	return strcmp(pattern, stream) == 0;
}

/*
 * A refused emit / link_to: logged, and (fail) the event fails with the
 * reason and waits for an operator or a new definition, since the same
 * call would be refused again.
 */
static int emit_refuse(sl_context *ctx, bool fail, int code, const char *fmt,
    ...) __attribute__((format(printf, 4, 5)));

static int
emit_refuse(sl_context *ctx, bool fail, int code, const char *fmt, ...)
{
	char    why[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	log_warn("host", "%s", why);
	if (fail && ctx != NULL)
		(void) h_fail_with(ctx, why, false, 0);
	return code;
}

/* The checks emit and link_to share: a sink, a valid declared stream. */
static int
emit_check(sl_context *ctx, const char *what, const char *stream)
{
	if (ctx == NULL || ctx->sink == NULL)
		return emit_refuse(ctx, false, SL_EINVAL,
		    "%s: only an emitting projection (one that declares "
		    "emits in ABI 1.2) may write events",
		    what);
	emit_sink      *k    = ctx->sink;
	const proj_def *d    = k->def;
	const char     *name = d != NULL ? d->name : "?";
	if (k->refuse != NULL)
		return emit_refuse(ctx, false, SL_EINVAL,
		    "%s by projection "
		    "'%s': %s",
		    what, name, k->refuse);
	size_t n = stream != NULL ? strnlen(stream, SL_MAX_ID_LEN + 1) : 0;
	if (n == 0 || n > SL_MAX_ID_LEN)
		return emit_refuse(ctx, true, SL_EINVAL,
		    "%s by projection '%s': the stream id must be 1..%d "
		    "bytes",
		    what, name, SL_MAX_ID_LEN);
	if (k->system)
		return SL_OK;
	size_t             ne;
	const char *const *emits = proj_def_emits(d, &ne);
	for (size_t i = 0; i < ne; i++)
		if (host_stream_matches(emits[i], stream))
			return SL_OK;
	return emit_refuse(ctx, true, SL_EINVAL,
	    "%s to stream '%.256s' by projection '%s': the stream is not "
	    "declared in its emits (%zu declared)",
	    what, stream, name, ne);
}

/* Hand one packed event to the sink; a refusal fails the event. */
static int
emit_write(sl_context *ctx, const char *what, const char *stream,
    const char *type, const void *content, size_t len)
{
	char err[400] = "";
	int  rc       = ctx->sink->write(
	           ctx->sink, stream, type, content, len, err, sizeof(err));
	if (rc == SL_OK)
		return SL_OK;
	return emit_refuse(ctx, true, rc,
	    "%s to stream '%.256s' by "
	    "projection '%s': %s",
	    what, stream, ctx->sink->def != NULL ? ctx->sink->def->name : "?",
	    err[0] != '\0' ? err : sl_strerror(rc));
}

static int
h_emit(sl_context *ctx, const char *stream, const char *type,
    const char *content_json)
{
	int rc = emit_check(ctx, "emit", stream);
	if (rc != SL_OK)
		return rc;
	const char *name = ctx->sink->def != NULL ? ctx->sink->def->name : "?";
	size_t      tl   = type != NULL ? strnlen(type, SL_MAX_ID_LEN + 1) : 0;
	if (tl == 0 || tl > SL_MAX_ID_LEN || type[0] == '$')
		return emit_refuse(ctx, true, SL_EINVAL,
		    "emit to stream '%.256s' by projection '%s': the event "
		    "type must be 1..%d bytes, not starting with '$'",
		    stream, name, SL_MAX_ID_LEN);
	msgpack_sbuffer sb;
	msgpack_packer  pk;
	char            jerr[256] = "";
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	if (content_json == NULL
	    || json_text_to_mp(content_json, 1, &pk, jerr, sizeof(jerr))
	        != SL_OK) {
		msgpack_sbuffer_destroy(&sb);
		return emit_refuse(ctx, true, SL_EINVAL,
		    "emit to stream '%.256s' by projection '%s': the content "
		    "is not a JSON object: %s",
		    stream, name, jerr[0] != '\0' ? jerr : "no content");
	}
	if (sb.size > SL_MAX_EVENT_BYTES) {
		msgpack_sbuffer_destroy(&sb);
		return emit_refuse(ctx, true, SL_ETOOBIG,
		    "emit to stream '%.256s' by projection '%s': the content "
		    "is larger than %u bytes",
		    stream, name, SL_MAX_EVENT_BYTES);
	}
	rc = emit_write(ctx, "emit", stream, type, sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);
	return rc;
}

static int
h_link_to(sl_context *ctx, const char *stream, const sl_event *ev)
{
	int rc = emit_check(ctx, "link_to", stream);
	if (rc != SL_OK)
		return rc;
	const ev_view *v = view_of(ev);
	if (v == NULL || v->stream == NULL)
		return emit_refuse(ctx, true, SL_EINVAL,
		    "link_to stream '%.256s' by projection '%s': no event",
		    stream,
		    ctx->sink->def != NULL ? ctx->sink->def->name : "?");
	char link[SL_MAX_ID_LEN + 32];
	int  n = snprintf(
	     link, sizeof(link), "%" PRIu64 "@%s", v->revision, v->stream);
	if (n < 0 || (size_t) n >= sizeof(link))
		return emit_refuse(ctx, true, SL_EINVAL,
		    "link_to stream '%.256s': the linked event's stream id "
		    "is too long",
		    stream);
	msgpack_sbuffer sb;
	msgpack_packer  pk;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_str(&pk, (size_t) n);
	msgpack_pack_str_body(&pk, link, (size_t) n);
	rc = emit_write(ctx, "link_to", stream, "$>", sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);
	return rc;
}

/* ---- the table ---- */

static const sl_host_api host_table = {
	.struct_size          = sizeof(sl_host_api),
	.abi_version          = SL_ABI_VERSION,
	.log                  = h_log,
	.event_type           = h_event_type,
	.event_generation     = h_event_generation,
	.event_tenant         = h_event_tenant,
	.event_stream         = h_event_stream,
	.event_partition      = h_event_partition,
	.event_position       = h_event_position,
	.event_revision       = h_event_revision,
	.event_occurred       = h_event_occurred,
	.event_public         = h_event_public,
	.event_id             = h_event_id,
	.event_correlation_id = h_event_correlation_id,
	.event_causation_id   = h_event_causation_id,
	.content_str          = h_content_str,
	.content_i64          = h_content_i64,
	.content_f64          = h_content_f64,
	.content_bool         = h_content_bool,
	.metadata_str         = h_metadata_str,
	.state_str            = h_state_str,
	.state_i64            = h_state_i64,
	.state_f64            = h_state_f64,
	.state_bool           = h_state_bool,
	.state_set_str        = h_state_set_str,
	.state_set_i64        = h_state_set_i64,
	.state_set_f64        = h_state_set_f64,
	.state_set_bool       = h_state_set_bool,
	.state_set_nil        = h_state_set_nil,
	.state_remove         = h_state_remove,
	.retry_attempt        = h_retry_attempt,
	.retry_reason         = h_retry_reason,
	.fail                 = h_fail,
	/* ABI 1.1; struct_size (sizeof) covers it */
	.fail_with = h_fail_with,
	/* ABI 1.2 */
	.emit    = h_emit,
	.link_to = h_link_to,
};

const sl_host_api *
host_api(void)
{
	return &host_table;
}
