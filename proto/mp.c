/*
 * Small helpers over msgpack-c: typed lookups in request maps and packing of
 * strings, key/value pairs and the reply envelope. Used by the wire protocol
 * on both sides and by the event codec.
 */
#include "mp.h"

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
