/*
 * The host side of the plugin ABI: the sl_host_api table that every plugin
 * receives (its event calls are in host_event.c, its state calls in
 * host_state.c), the per-thread scratch that the strings handed to a
 * callback live in, logging, the context's failure reporting, and emit.
 */
#include "host_internal.h"

#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "log.h"

/* ---- per-thread scratch for what a callback is handed ---- */

/*
 * msgpack strings point into the event buffer without a terminating NUL, but
 * the ABI promises C strings; JSON and msgpack copies of documents need a
 * home too. Copies go to a small per-thread arena; larger or later ones to
 * malloc'ed blocks chained behind it. Everything is released by
 * host_scratch_reset() (called by the processor before each callback) or
 * when an event getter sees a different event than the last one on this
 * thread, since they only need to live until the callback returns.
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

/* Strings of an earlier event are dead once a getter sees another event;
 * what was copied since the last reset for no event (a state's JSON, say)
 * belongs to this callback and stays. */
void
host_scratch_enter(const ev_view *v)
{
	if (v == scratch_owner_v
	    && v->content.via.map.ptr == scratch_owner_data
	    && v->position == scratch_owner_pos)
		return;
	if (scratch_owner_v != NULL)
		host_scratch_reset();
	scratch_owner_v    = v;
	scratch_owner_data = v->content.via.map.ptr;
	scratch_owner_pos  = v->position;
}

const char *
host_scratch_copy(const void *p, size_t n)
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

/* ---- log ---- */

static void
h_log(int level, const char *msg)
{
	log_msg(level, "plugin", "%s", msg != NULL ? msg : "(null)");
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
	return ctx != NULL && ctx->last_reason != NULL ? ctx->last_reason : "";
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
    const char *type, const void *content, size_t len, const void *meta,
    size_t meta_len)
{
	char err[400] = "";
	int  rc       = ctx->sink->write(ctx->sink, stream, type, content, len,
	           meta, meta_len, err, sizeof(err));
	if (rc == SL_OK)
		return SL_OK;
	return emit_refuse(ctx, true, rc,
	    "%s to stream '%.256s' by "
	    "projection '%s': %s",
	    what, stream, ctx->sink->def != NULL ? ctx->sink->def->name : "?",
	    err[0] != '\0' ? err : sl_strerror(rc));
}

/* A JSON object text packed into sb, at most SL_MAX_EVENT_BYTES; what
 * ("content", "metadata") names it in the refusal. */
static int
emit_pack(sl_context *ctx, const char *stream, const char *what,
    const char *json, msgpack_sbuffer *sb)
{
	const char    *name = ctx->sink->def != NULL ? ctx->sink->def->name : "?";
	msgpack_packer pk;
	char           jerr[256] = "";
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	if (json == NULL
	    || json_text_to_mp(json, 1, &pk, jerr, sizeof(jerr)) != SL_OK)
		return emit_refuse(ctx, true, SL_EINVAL,
		    "emit to stream '%.256s' by projection '%s': the %s is "
		    "not a JSON object: %s",
		    stream, name, what, jerr[0] != '\0' ? jerr : "none given");
	if (sb->size > SL_MAX_EVENT_BYTES)
		return emit_refuse(ctx, true, SL_ETOOBIG,
		    "emit to stream '%.256s' by projection '%s': the %s is "
		    "larger than %u bytes",
		    stream, name, what, SL_MAX_EVENT_BYTES);
	return SL_OK;
}

static int
h_emit_meta(sl_context *ctx, const char *stream, const char *type,
    const char *content_json, const char *metadata_json)
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
	msgpack_sbuffer sb, mb;
	msgpack_sbuffer_init(&sb);
	msgpack_sbuffer_init(&mb);
	rc = emit_pack(ctx, stream, "content", content_json, &sb);
	if (rc == SL_OK && metadata_json != NULL)
		rc = emit_pack(ctx, stream, "metadata", metadata_json, &mb);
	if (rc == SL_OK)
		rc = emit_write(ctx, "emit", stream, type, sb.data, sb.size,
		    metadata_json != NULL ? mb.data : NULL, mb.size);
	msgpack_sbuffer_destroy(&sb);
	msgpack_sbuffer_destroy(&mb);
	return rc;
}

static int
h_emit(sl_context *ctx, const char *stream, const char *type,
    const char *content_json)
{
	return h_emit_meta(ctx, stream, type, content_json, NULL);
}

/* A link's content (a msgpack str) of type to stream. */
static int
emit_link(sl_context *ctx, const char *what, const char *stream,
    const char *type, const char *text, size_t n)
{
	msgpack_sbuffer sb;
	msgpack_packer  pk;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_str(&pk, n);
	msgpack_pack_str_body(&pk, text, n);
	int rc = emit_write(ctx, what, stream, type, sb.data, sb.size, NULL, 0);
	msgpack_sbuffer_destroy(&sb);
	return rc;
}

static int
h_link_stream_to(sl_context *ctx, const char *stream, const char *linked)
{
	int rc = emit_check(ctx, "link_stream_to", stream);
	if (rc != SL_OK)
		return rc;
	size_t n = linked != NULL ? strnlen(linked, SL_MAX_ID_LEN + 1) : 0;
	if (n == 0 || n > SL_MAX_ID_LEN)
		return emit_refuse(ctx, true, SL_EINVAL,
		    "link_stream_to stream '%.256s' by projection '%s': the "
		    "linked stream id must be 1..%d bytes",
		    stream,
		    ctx->sink->def != NULL ? ctx->sink->def->name : "?",
		    SL_MAX_ID_LEN);
	return emit_link(
	    ctx, "link_stream_to", stream, EV_STREAM_LINK_TYPE, linked, n);
}

static int
h_link_to(sl_context *ctx, const char *stream, const sl_event *ev)
{
	int rc = emit_check(ctx, "link_to", stream);
	if (rc != SL_OK)
		return rc;
	const ev_view *v = ev != NULL ? ev->v : NULL;
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
	return emit_link(ctx, "link_to", stream, EV_LINK_TYPE, link, (size_t) n);
}

/* ---- the table ---- */

static sl_host_api    host_table;
static pthread_once_t host_table_once = PTHREAD_ONCE_INIT;

/* Filled once, then only read: the calls live beside what they serve. */
static void
host_table_fill(void)
{
	sl_host_api *t = &host_table;
	t->struct_size = sizeof(sl_host_api);
	t->abi_version = SL_ABI_VERSION;
	t->log         = h_log;
	host_event_calls(t);
	host_state_calls(t);
	t->retry_attempt = h_retry_attempt;
	t->retry_reason  = h_retry_reason;
	t->fail          = h_fail;
	/* ABI 1.1 */
	t->fail_with = h_fail_with;
	/* ABI 1.2 */
	t->emit    = h_emit;
	t->link_to = h_link_to;
	/* ABI 1.3 */
	t->emit_meta      = h_emit_meta;
	t->link_stream_to = h_link_stream_to;
}

const sl_host_api *
host_api(void)
{
	pthread_once(&host_table_once, host_table_fill);
	return &host_table;
}
