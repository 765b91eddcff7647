/*
 * Small helpers over msgpack-c: typed lookups in request maps and packing of
 * strings, key/value pairs and the reply envelope. Used by the wire protocol
 * on both sides and by the event codec.
 */
#include "mp.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/errors.h>

const msgpack_object *
mp_get(const msgpack_object *map, const char *key)
{
	size_t klen;

	if (map == NULL || map->type != MSGPACK_OBJECT_MAP || key == NULL)
		return NULL;
	klen = strlen(key);
	for (uint32_t i = 0; i < map->via.map.size; i++) {
		const msgpack_object *k = &map->via.map.ptr[i].key;

		if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == klen
		    && memcmp(k->via.str.ptr, key, klen) == 0)
			return &map->via.map.ptr[i].val;
	}
	return NULL;
}

int
mp_get_str(
    const msgpack_object *map, const char *key, const char **s, size_t *len)
{
	const msgpack_object *o = mp_get(map, key);

	if (o == NULL)
		return SL_ENOTFOUND;
	if (o->type != MSGPACK_OBJECT_STR)
		return SL_EPROTO;
	*s   = o->via.str.ptr;
	*len = o->via.str.size;
	return SL_OK;
}

int
mp_get_u64(const msgpack_object *map, const char *key, uint64_t *out)
{
	const msgpack_object *o = mp_get(map, key);

	if (o == NULL)
		return SL_ENOTFOUND;
	if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return SL_EPROTO;
	*out = o->via.u64;
	return SL_OK;
}

bool
mp_as_i64(const msgpack_object *o, int64_t *out)
{
	if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
		*out = o->via.i64;
		return true;
	}
	if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER
	    && o->via.u64 <= (uint64_t) INT64_MAX) {
		*out = (int64_t) o->via.u64;
		return true;
	}
	return false;
}

int
mp_get_i64(const msgpack_object *map, const char *key, int64_t *out)
{
	const msgpack_object *o = mp_get(map, key);

	if (o == NULL)
		return SL_ENOTFOUND;
	return mp_as_i64(o, out) ? SL_OK : SL_EPROTO;
}

int
mp_get_bool(const msgpack_object *map, const char *key, bool *out)
{
	const msgpack_object *o = mp_get(map, key);

	if (o == NULL)
		return SL_ENOTFOUND;
	if (o->type != MSGPACK_OBJECT_BOOLEAN)
		return SL_EPROTO;
	*out = o->via.boolean;
	return SL_OK;
}

int
mp_get_map(
    const msgpack_object *map, const char *key, const msgpack_object **out)
{
	const msgpack_object *o = mp_get(map, key);

	if (o == NULL)
		return SL_ENOTFOUND;
	if (o->type != MSGPACK_OBJECT_MAP)
		return SL_EPROTO;
	*out = o;
	return SL_OK;
}

int
mp_get_array(
    const msgpack_object *map, const char *key, const msgpack_object **out)
{
	const msgpack_object *o = mp_get(map, key);

	if (o == NULL)
		return SL_ENOTFOUND;
	if (o->type != MSGPACK_OBJECT_ARRAY)
		return SL_EPROTO;
	*out = o;
	return SL_OK;
}

/* ---- duplicate keys ---- */

/* Maps up to this size are checked pair by pair, larger ones sorted. */
#define MP_DUP_PAIRWISE 16

/* Key order for the check: strings, then integers; 0 for keys of other
 * types, which are not compared. */
static int
mp_key_class(const msgpack_object *k)
{
	switch (k->type) {
	case MSGPACK_OBJECT_STR:
		return 1;
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		return 2;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		return 3;
	default:
		return 0;
	}
}

static int
mp_key_cmp(const msgpack_object *a, const msgpack_object *b)
{
	int ca = mp_key_class(a), cb = mp_key_class(b);
	if (ca != cb)
		return ca < cb ? -1 : 1;
	switch (ca) {
	case 1: {
		uint32_t n = a->via.str.size < b->via.str.size
		    ? a->via.str.size
		    : b->via.str.size;
		int c = n > 0 ? memcmp(a->via.str.ptr, b->via.str.ptr, n) : 0;
		if (c != 0)
			return c;
		return a->via.str.size < b->via.str.size ? -1
		    : a->via.str.size > b->via.str.size  ? 1
		                                         : 0;
	}
	case 2:
		return a->via.u64 < b->via.u64 ? -1 : a->via.u64 > b->via.u64;
	case 3:
		return a->via.i64 < b->via.i64 ? -1 : a->via.i64 > b->via.i64;
	}
	return 0;
}

static int
mp_key_qcmp(const void *a, const void *b)
{
	return mp_key_cmp(*(const msgpack_object *const *) a,
	    *(const msgpack_object *const *) b);
}

/* A key twice in map m (not its children): the key, or NULL. */
static const msgpack_object *
mp_map_dup(const msgpack_object *m, bool *nomem)
{
	uint32_t              n   = m->via.map.size;
	const msgpack_object *dup = NULL;

	if (n <= MP_DUP_PAIRWISE) {
		for (uint32_t i = 1; i < n; i++) {
			const msgpack_object *k = &m->via.map.ptr[i].key;
			if (mp_key_class(k) == 0)
				continue;
			for (uint32_t j = 0; j < i; j++)
				if (mp_key_cmp(k, &m->via.map.ptr[j].key) == 0)
					return k;
		}
		return NULL;
	}
	const msgpack_object **keys = malloc(n * sizeof(*keys));
	if (keys == NULL) {
		*nomem = true;
		return NULL;
	}
	uint32_t k = 0;
	for (uint32_t i = 0; i < n; i++)
		if (mp_key_class(&m->via.map.ptr[i].key) != 0)
			keys[k++] = &m->via.map.ptr[i].key;
	qsort(keys, k, sizeof(*keys), mp_key_qcmp);
	for (uint32_t i = 1; i < k && dup == NULL; i++)
		if (mp_key_cmp(keys[i - 1], keys[i]) == 0)
			dup = keys[i];
	free(keys);
	return dup;
}

/* Append to a path, cut at its end (a message, not a name). */
static void mp_path_add(char *path, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void
mp_path_add(char *path, size_t cap, const char *fmt, ...)
{
	size_t  n = strlen(path);
	va_list ap;
	if (n + 1 >= cap)
		return;
	va_start(ap, fmt);
	vsnprintf(path + n, cap - n, fmt, ap);
	va_end(ap);
}

/* How a message shows a key: a string's printable bytes (cut), an
 * integer's digits. */
static void
mp_key_text(const msgpack_object *k, char *out, size_t cap)
{
	if (k->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
		snprintf(out, cap, "%" PRIu64, k->via.u64);
		return;
	}
	if (k->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
		snprintf(out, cap, "%" PRId64, k->via.i64);
		return;
	}
	size_t n = 0;
	for (uint32_t i = 0; i < k->via.str.size && n + 1 < cap; i++) {
		unsigned char c = (unsigned char) k->via.str.ptr[i];
		out[n++]        = c < 0x20 || c == 0x7f ? '?' : (char) c;
	}
	out[n] = '\0';
}

#define MP_PATH_MAX 160

/*
 * Look for a key twice in o's maps, depth-first. With path NULL only
 * whether (the fast pass every request takes); with a path, the message
 * in err names the map's place (path holds the place of o).
 */
static int
mp_unique_walk(const msgpack_object *o, char *path, char *err, size_t errlen)
{
	size_t at = path != NULL ? strlen(path) : 0;
	int    rc = SL_OK;

	if (o->type == MSGPACK_OBJECT_ARRAY) {
		for (uint32_t i = 0; i < o->via.array.size && rc == SL_OK;
		     i++) {
			if (path != NULL)
				mp_path_add(
				    path, MP_PATH_MAX, "[%" PRIu32 "]", i);
			rc = mp_unique_walk(
			    &o->via.array.ptr[i], path, err, errlen);
			if (path != NULL)
				path[at] = '\0';
		}
		return rc;
	}
	if (o->type != MSGPACK_OBJECT_MAP)
		return SL_OK;
	bool                  nomem = false;
	const msgpack_object *dup   = mp_map_dup(o, &nomem);
	if (nomem) {
		snprintf(err, errlen, "out of memory");
		return SL_ENOMEM;
	}
	if (dup != NULL) {
		char key[68];
		mp_key_text(dup, key, sizeof(key));
		snprintf(err, errlen, "%s: key '%s' appears twice",
		    path != NULL ? path : "", key);
		return SL_EPROTO;
	}
	for (uint32_t i = 0; i < o->via.map.size && rc == SL_OK; i++) {
		if (path != NULL) {
			const msgpack_object *k       = &o->via.map.ptr[i].key;
			char                  key[68] = "?";
			if (mp_key_class(k) != 0)
				mp_key_text(k, key, sizeof(key));
			mp_path_add(
			    path, MP_PATH_MAX, at == 0 ? "%s" : ".%s", key);
		}
		rc = mp_unique_walk(&o->via.map.ptr[i].val, path, err, errlen);
		if (path != NULL)
			path[at] = '\0';
	}
	return rc;
}

int
mp_check_unique_keys(
    const msgpack_object *o, const char *what, char *err, size_t errlen)
{
	char path[MP_PATH_MAX] = "";
	char inner[300]        = "";
	int  rc                = mp_unique_walk(o, NULL, inner, sizeof(inner));
	if (rc != SL_EPROTO) {
		if (rc != SL_OK)
			snprintf(err, errlen, "%s", inner);
		return rc;
	}
	/* found: again, naming where (requests that fail are rare) */
	rc = mp_unique_walk(o, path, inner, sizeof(inner));
	if (inner[0] == ':')
		snprintf(err, errlen, "%s%s", what, inner); /* at the top */
	else
		snprintf(err, errlen, "%s", inner);
	return rc;
}

bool
mp_str_eq(const msgpack_object *o, const char *s)
{
	size_t n;

	if (o == NULL || o->type != MSGPACK_OBJECT_STR || s == NULL)
		return false;
	n = strlen(s);
	return o->via.str.size == n && memcmp(o->via.str.ptr, s, n) == 0;
}

char *
mp_strdup(const msgpack_object *o)
{
	char *s;

	if (o == NULL || o->type != MSGPACK_OBJECT_STR)
		return NULL;
	s = malloc(o->via.str.size + 1);
	if (s == NULL)
		return NULL;
	if (o->via.str.size > 0)
		memcpy(s, o->via.str.ptr, o->via.str.size);
	s[o->via.str.size] = '\0';
	return s;
}

void
mp_pack_cstr(msgpack_packer *pk, const char *s)
{
	if (s == NULL) {
		msgpack_pack_nil(pk);
		return;
	}
	mp_pack_strn(pk, s, strlen(s));
}

void
mp_pack_strn(msgpack_packer *pk, const char *s, size_t len)
{
	msgpack_pack_str(pk, len);
	if (len > 0)
		msgpack_pack_str_body(pk, s, len);
}

void
mp_pack_kv_str(msgpack_packer *pk, const char *key, const char *val)
{
	mp_pack_cstr(pk, key);
	mp_pack_cstr(pk, val);
}

void
mp_pack_kv_u64(msgpack_packer *pk, const char *key, uint64_t val)
{
	mp_pack_cstr(pk, key);
	msgpack_pack_uint64(pk, val);
}

void
mp_pack_kv_i64(msgpack_packer *pk, const char *key, int64_t val)
{
	mp_pack_cstr(pk, key);
	msgpack_pack_int64(pk, val);
}

void
mp_pack_kv_bool(msgpack_packer *pk, const char *key, bool val)
{
	mp_pack_cstr(pk, key);
	if (val)
		msgpack_pack_true(pk);
	else
		msgpack_pack_false(pk);
}

void
mp_reply_ok(msgpack_packer *pk, size_t n_extra)
{
	msgpack_pack_map(pk, 2 + n_extra);
	mp_pack_kv_u64(pk, "v", SL_PROTOCOL_VERSION);
	mp_pack_kv_bool(pk, "ok", true);
}

void
mp_map_open(mp_map *m, msgpack_packer *pk)
{
	static const char header[5] = { (char) 0xdf, 0, 0, 0, 0 };
	msgpack_sbuffer  *sb       = pk->data;
	m->pk                      = pk;
	m->at                      = sb->size;
	m->n                       = 0;
	msgpack_sbuffer_write(sb, header, sizeof(header));
}

void
mp_map_key(mp_map *m, const char *key)
{
	m->n++;
	mp_pack_cstr(m->pk, key);
}

void
mp_map_str(mp_map *m, const char *key, const char *val)
{
	mp_map_key(m, key);
	mp_pack_cstr(m->pk, val);
}

void
mp_map_u64(mp_map *m, const char *key, uint64_t val)
{
	mp_map_key(m, key);
	msgpack_pack_uint64(m->pk, val);
}

void
mp_map_i64(mp_map *m, const char *key, int64_t val)
{
	mp_map_key(m, key);
	msgpack_pack_int64(m->pk, val);
}

void
mp_map_bool(mp_map *m, const char *key, bool val)
{
	mp_map_key(m, key);
	if (val)
		msgpack_pack_true(m->pk);
	else
		msgpack_pack_false(m->pk);
}

void
mp_map_double(mp_map *m, const char *key, double val)
{
	mp_map_key(m, key);
	msgpack_pack_double(m->pk, val);
}

void
mp_map_close(mp_map *m)
{
	msgpack_sbuffer *sb = m->pk->data;
	unsigned char   *h  = (unsigned char *) sb->data + m->at;
	/* a failed write (out of memory) left no header to fill */
	if (sb->size < m->at + 5 || h[0] != 0xdf)
		return;
	h[1] = (unsigned char) (m->n >> 24);
	h[2] = (unsigned char) (m->n >> 16);
	h[3] = (unsigned char) (m->n >> 8);
	h[4] = (unsigned char) m->n;
}

void
mp_reply_ok_open(mp_map *m, msgpack_packer *pk)
{
	mp_map_open(m, pk);
	mp_map_u64(m, "v", SL_PROTOCOL_VERSION);
	mp_map_bool(m, "ok", true);
}

void
mp_reply_err(msgpack_packer *pk, int code, const char *message)
{
	msgpack_pack_map(pk, 5);
	mp_pack_kv_u64(pk, "v", SL_PROTOCOL_VERSION);
	mp_pack_kv_bool(pk, "ok", false);
	mp_pack_kv_i64(pk, "code", code);
	mp_pack_kv_str(pk, "error", sl_errname(code));
	mp_pack_kv_str(
	    pk, "message", message != NULL ? message : sl_strerror(code));
}
