/*
 * Helpers for plugin authors (declared at the end of sluice/plugin.h). This
 * file is compiled into each plugin, never into the host: every plugin keeps
 * its own hidden copy of the bound host table.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <sluice/plugin.h>

/* The fields an ABI 1.0 plugin uses; a smaller host table is refused. */
#define HOST_V1_SIZE (offsetof(sl_host_api, fail) + sizeof(void *))
/* A host table this big has fail_with (ABI 1.1). */
#define HOST_V11_SIZE (offsetof(sl_host_api, fail_with) + sizeof(void *))
/* A host table this big has the document and link calls (ABI 1.3). */
#define HOST_V13_SIZE                                                         \
	(offsetof(sl_host_api, link_stream_to) + sizeof(void *))

static const sl_host_api *bound;

int
sl_bind(const sl_host_api *host)
{
	if (host == NULL)
		return SL_EINVAL;
	if (SL_ABI_MAJOR_OF(host->abi_version) != SL_ABI_MAJOR
	    || host->struct_size < HOST_V1_SIZE)
		return SL_EVERSION;
	bound = host;
	return SL_OK;
}

const sl_host_api *
sl_host(void)
{
	return bound;
}

const char *
sl_ev_type(const sl_event *ev)
{
	return bound != NULL ? bound->event_type(ev) : "";
}

const char *
sl_ev_stream(const sl_event *ev)
{
	return bound != NULL ? bound->event_stream(ev) : "";
}

uint64_t
sl_ev_position(const sl_event *ev)
{
	return bound != NULL ? bound->event_position(ev) : 0;
}

const char *
sl_get_str(const sl_event *ev, const char *path)
{
	const char *s = NULL;
	if (bound == NULL || bound->content_str(ev, path, &s) != SL_OK)
		return NULL;
	return s;
}

int
sl_get_i64(const sl_event *ev, const char *path, int64_t *out)
{
	if (bound == NULL)
		return SL_EINVAL;
	return bound->content_i64(ev, path, out);
}

int64_t
sl_state_i64(const sl_state *st, const char *key, int64_t dflt)
{
	int64_t v;
	if (bound == NULL || bound->state_i64(st, key, &v) != SL_OK)
		return dflt;
	return v;
}

const char *
sl_state_str(const sl_state *st, const char *key)
{
	const char *s = NULL;
	if (bound == NULL || bound->state_str(st, key, &s) != SL_OK)
		return NULL;
	return s;
}

int
sl_set_str(sl_state *st, const char *key, const char *val)
{
	if (bound == NULL)
		return SL_EINVAL;
	return bound->state_set_str(st, key, val);
}

int
sl_set_i64(sl_state *st, const char *key, int64_t val)
{
	if (bound == NULL)
		return SL_EINVAL;
	return bound->state_set_i64(st, key, val);
}

sl_outcome
sl_failf(sl_context *ctx, const char *fmt, ...)
{
	char    buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (bound == NULL)
		return SL_FAIL;
	return bound->fail(ctx, buf);
}

sl_outcome
sl_fail_with(
    sl_context *ctx, bool retry, uint32_t retry_after_ms, const char *fmt, ...)
{
	char    buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (bound == NULL)
		return SL_FAIL;
	if (bound->struct_size < HOST_V11_SIZE || bound->fail_with == NULL)
		return bound->fail(ctx, buf); /* a 1.0 host: always retried */
	return bound->fail_with(ctx, buf, retry, retry_after_ms);
}

void
sl_logf(int level, const char *fmt, ...)
{
	char    buf[1024];
	va_list ap;
	if (bound == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	bound->log(level, buf);
}

int
sl_state_remove(sl_state *st, const char *key)
{
	if (bound == NULL)
		return SL_EINVAL;
	return bound->state_remove(st, key);
}

/* ---- ABI 1.3: documents ---- */

/* The bound host, if it has the 1.3 calls. */
static const sl_host_api *
h13(void)
{
	return bound != NULL && bound->struct_size >= HOST_V13_SIZE ? bound
	                                                            : NULL;
}

sl_kind
sl_ev_kind(const sl_event *ev, sl_part part, const char *path)
{
	sl_kind k;
	if (h13() == NULL || bound->event_kind(ev, part, path, &k) != SL_OK)
		return SL_KIND_NONE;
	return k;
}

size_t
sl_ev_len(const sl_event *ev, sl_part part, const char *path)
{
	size_t n;
	if (h13() == NULL || bound->event_len(ev, part, path, &n) != SL_OK)
		return 0;
	return n;
}

const char *
sl_ev_key(const sl_event *ev, sl_part part, const char *path, size_t i)
{
	const char *k;
	if (h13() == NULL || bound->event_key(ev, part, path, i, &k) != SL_OK)
		return NULL;
	return k;
}

const char *
sl_ev_str(const sl_event *ev, sl_part part, const char *path)
{
	const char *s;
	if (h13() == NULL || bound->event_get_str(ev, part, path, &s) != SL_OK)
		return NULL;
	return s;
}

int
sl_ev_i64(const sl_event *ev, sl_part part, const char *path, int64_t *out)
{
	return h13() != NULL ? bound->event_get_i64(ev, part, path, out)
	                     : SL_EVERSION;
}

int
sl_ev_f64(const sl_event *ev, sl_part part, const char *path, double *out)
{
	return h13() != NULL ? bound->event_get_f64(ev, part, path, out)
	                     : SL_EVERSION;
}

int
sl_ev_bool(const sl_event *ev, sl_part part, const char *path, bool *out)
{
	return h13() != NULL ? bound->event_get_bool(ev, part, path, out)
	                     : SL_EVERSION;
}

const char *
sl_ev_json(const sl_event *ev, sl_part part, const char *path)
{
	const char *j;
	if (h13() == NULL
	    || bound->event_get_json(ev, part, path, &j) != SL_OK)
		return NULL;
	return j;
}

int
sl_ev_msgpack(const sl_event *ev, sl_part part, const char *path,
    const void **out, size_t *len)
{
	return h13() != NULL
	    ? bound->event_get_msgpack(ev, part, path, out, len)
	    : SL_EVERSION;
}

int
sl_ev_link_target(const sl_event *ev, const sl_event **out)
{
	*out = NULL;
	return h13() != NULL ? bound->event_link_target(ev, out)
	                     : SL_EVERSION;
}

sl_kind
sl_st_kind(const sl_state *st, const char *path)
{
	sl_kind k;
	if (h13() == NULL || bound->state_kind(st, path, &k) != SL_OK)
		return SL_KIND_NONE;
	return k;
}

size_t
sl_st_len(const sl_state *st, const char *path)
{
	size_t n;
	if (h13() == NULL || bound->state_len(st, path, &n) != SL_OK)
		return 0;
	return n;
}

const char *
sl_st_key(const sl_state *st, const char *path, size_t i)
{
	const char *k;
	if (h13() == NULL || bound->state_key(st, path, i, &k) != SL_OK)
		return NULL;
	return k;
}

const char *
sl_st_str(const sl_state *st, const char *path)
{
	const char *s;
	if (h13() == NULL || bound->state_get_str(st, path, &s) != SL_OK)
		return NULL;
	return s;
}

int64_t
sl_st_i64(const sl_state *st, const char *path, int64_t dflt)
{
	int64_t v;
	if (h13() == NULL || bound->state_get_i64(st, path, &v) != SL_OK)
		return dflt;
	return v;
}

double
sl_st_f64(const sl_state *st, const char *path, double dflt)
{
	double v;
	if (h13() == NULL || bound->state_get_f64(st, path, &v) != SL_OK)
		return dflt;
	return v;
}

bool
sl_st_bool(const sl_state *st, const char *path, bool dflt)
{
	bool v;
	if (h13() == NULL || bound->state_get_bool(st, path, &v) != SL_OK)
		return dflt;
	return v;
}

const char *
sl_st_json(const sl_state *st, const char *path)
{
	const char *j;
	if (h13() == NULL || bound->state_get_json(st, path, &j) != SL_OK)
		return NULL;
	return j;
}

int
sl_st_msgpack(
    const sl_state *st, const char *path, const void **out, size_t *len)
{
	return h13() != NULL ? bound->state_get_msgpack(st, path, out, len)
	                     : SL_EVERSION;
}

int
sl_st_set_str(sl_state *st, const char *path, const char *val)
{
	return h13() != NULL ? bound->state_put_str(st, path, val)
	                     : SL_EVERSION;
}

int
sl_st_set_i64(sl_state *st, const char *path, int64_t val)
{
	return h13() != NULL ? bound->state_put_i64(st, path, val)
	                     : SL_EVERSION;
}

int
sl_st_set_f64(sl_state *st, const char *path, double val)
{
	return h13() != NULL ? bound->state_put_f64(st, path, val)
	                     : SL_EVERSION;
}

int
sl_st_set_bool(sl_state *st, const char *path, bool val)
{
	return h13() != NULL ? bound->state_put_bool(st, path, val)
	                     : SL_EVERSION;
}

int
sl_st_set_nil(sl_state *st, const char *path)
{
	return h13() != NULL ? bound->state_put_nil(st, path) : SL_EVERSION;
}

int
sl_st_set_json(sl_state *st, const char *path, const char *json)
{
	return h13() != NULL ? bound->state_put_json(st, path, json)
	                     : SL_EVERSION;
}

int
sl_st_set_msgpack(sl_state *st, const char *path, const void *data, size_t len)
{
	return h13() != NULL ? bound->state_put_msgpack(st, path, data, len)
	                     : SL_EVERSION;
}

int
sl_st_remove(sl_state *st, const char *path)
{
	return h13() != NULL ? bound->state_delete(st, path) : SL_EVERSION;
}

int
sl_st_append(sl_state *st, const char *path, const char *json)
{
	return h13() != NULL ? bound->state_array_append(st, path, json)
	                     : SL_EVERSION;
}

int
sl_st_insert(sl_state *st, const char *path, size_t index, const char *json)
{
	return h13() != NULL ? bound->state_array_insert(st, path, index, json)
	                     : SL_EVERSION;
}

int
sl_st_array_remove(sl_state *st, const char *path, size_t index)
{
	return h13() != NULL ? bound->state_array_remove(st, path, index)
	                     : SL_EVERSION;
}

/* Whether key can be written plainly: bytes other than '.' and '['. */
static bool
plain_key(const char *key)
{
	return key[0] != '\0' && strcspn(key, ".[") == strlen(key);
}

/* A path being written into a caller's buffer; full once it overflowed. */
typedef struct path_buf {
	char  *buf;
	size_t size, n;
	bool   full;
} path_buf;

static void
path_put(path_buf *b, const char *s, bool escape)
{
	for (; *s != '\0'; s++) {
		bool esc = escape && (*s == '"' || *s == '\\');
		if (b->n + 1 + esc >= b->size) {
			b->full = true;
			return;
		}
		if (esc)
			b->buf[b->n++] = '\\';
		b->buf[b->n++] = *s;
	}
}

int
sl_path_key(char *buf, size_t size, const char *base, const char *key)
{
	if (buf == NULL || key == NULL)
		return SL_EINVAL;
	path_buf b = { .buf = buf, .size = size };
	path_put(&b, base != NULL ? base : "", false);
	if (plain_key(key)) {
		path_put(&b, b.n > 0 ? "." : "", false);
		path_put(&b, key, false);
	} else {
		path_put(&b, "[\"", false);
		path_put(&b, key, true);
		path_put(&b, "\"]", false);
	}
	if (b.full) {
		if (size > 0)
			buf[0] = '\0';
		return SL_ETOOBIG;
	}
	buf[b.n] = '\0';
	return SL_OK;
}
