/*
 * Small helpers over msgpack-c for reading request maps and packing
 * replies. Used by the wire protocol on both sides and by the event codec.
 */
#ifndef SL_MP_H
#define SL_MP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <msgpack.h>

/** Find key in a msgpack map object; NULL if o is not a map or key absent. */
const msgpack_object *mp_get(const msgpack_object *map, const char *key);

/*
 * Typed getters. Return SL_OK; SL_ENOTFOUND when the key is absent (out
 * untouched); SL_EPROTO when present with the wrong type (or a negative
 * number for u64). Strings are borrowed from the object (not NUL-terminated).
 */
int mp_get_str(const msgpack_object *map, const char *key, const char **s,
    size_t *len);
int mp_get_u64(const msgpack_object *map, const char *key, uint64_t *out);
int mp_get_i64(const msgpack_object *map, const char *key, int64_t *out);
/** An integer object that fits int64 into *out; false for anything else. */
bool mp_as_i64(const msgpack_object *o, int64_t *out);
int mp_get_bool(const msgpack_object *map, const char *key, bool *out);
/** The value must be a map; *out points to it. */
int mp_get_map(const msgpack_object *map, const char *key,
    const msgpack_object **out);
int mp_get_array(const msgpack_object *map, const char *key,
    const msgpack_object **out);

/**
 * Check that no map in o (o itself or one nested in it) holds a key twice:
 * a reader taking the first would see another value than one taking the
 * last. Keys compare by value: strings by their bytes, integers by their
 * number; keys of other types are not compared. The caller bounds o's
 * nesting (mpraw_check).
 * @param what  names o in the message ("request map")
 * @param err   receives where and which key: "events[0].content: key
 *              'amount' appears twice"
 * @return SL_OK; SL_EPROTO (a key twice); SL_ENOMEM.
 */
int mp_check_unique_keys(
    const msgpack_object *o, const char *what, char *err, size_t errlen);

/** True if o is a str equal to s. */
bool mp_str_eq(const msgpack_object *o, const char *s);
/** malloc'ed NUL-terminated copy of a str object; NULL if not a str / OOM. */
char *mp_strdup(const msgpack_object *o);

/** Pack a NUL-terminated C string (nil if s is NULL). */
void mp_pack_cstr(msgpack_packer *pk, const char *s);
void mp_pack_strn(msgpack_packer *pk, const char *s, size_t len);
/** Pack key (cstr) then value. */
void mp_pack_kv_str(msgpack_packer *pk, const char *key, const char *val);
void mp_pack_kv_u64(msgpack_packer *pk, const char *key, uint64_t val);
void mp_pack_kv_i64(msgpack_packer *pk, const char *key, int64_t val);
void mp_pack_kv_bool(msgpack_packer *pk, const char *key, bool val);

/*
 * Wire envelope. Every reply is a map {"v":1,"ok":true,...} or
 * {"v":1,"ok":false,"code":N,"error":"ENAME","message":"..."}.
 * mp_reply_ok packs the header of an ok map with n_extra more pairs to follow.
 */
#define SL_PROTOCOL_VERSION 1
void mp_reply_ok(msgpack_packer *pk, size_t n_extra);

/*
 * Room for more bytes at the end of sb, for writing msgpack in place
 * (mpwrite.h): sb grown by doubling (an empty one to first bytes at
 * least), as msgpack_sbuffer_write grows it. A pointer to sb's end, or
 * NULL when out of memory (sb unchanged). Inline: the log's writer
 * calls it for every record it encodes.
 */
static inline unsigned char *
mp_sbuf_room(msgpack_sbuffer *sb, size_t more, size_t first)
{
	size_t need = sb->size + more;
	if (sb->alloc < need) {
		size_t cap = sb->alloc > 0 ? sb->alloc : first;
		while (cap < need)
			cap *= 2;
		char *p = realloc(sb->data, cap);
		if (p == NULL)
			return NULL;
		sb->data  = p;
		sb->alloc = cap;
	}
	return (unsigned char *) sb->data + sb->size;
}

/*
 * A map packed before its length is known, into a packer writing to a
 * msgpack_sbuffer: mp_map_open reserves a map32 header, each mp_map_key
 * (or mp_map_* pair) counts a pair, and mp_map_close writes the count into
 * the header. Nothing else may be packed into the map (a value packed
 * after mp_map_key belongs to its pair).
 */
typedef struct mp_map {
	msgpack_packer *pk;
	size_t          at; /* the header's offset in the sbuffer */
	uint32_t        n;
} mp_map;
void mp_map_open(mp_map *m, msgpack_packer *pk);
void mp_map_key(mp_map *m, const char *key);
void mp_map_str(mp_map *m, const char *key, const char *val); /* NULL: nil */
void mp_map_u64(mp_map *m, const char *key, uint64_t val);
void mp_map_i64(mp_map *m, const char *key, int64_t val);
void mp_map_bool(mp_map *m, const char *key, bool val);
void mp_map_double(mp_map *m, const char *key, double val);
void mp_map_close(mp_map *m);
/** An ok reply's map ("v", "ok" counted), to be closed by mp_map_close. */
void mp_reply_ok_open(mp_map *m, msgpack_packer *pk);
void mp_reply_err(msgpack_packer *pk, int code, const char *message);

#endif
