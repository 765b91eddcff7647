/*
 * Raw msgpack, read without msgpack-c (mpraw.h): the bounded checker that
 * requests and remote answers pass before they are unpacked, and the
 * top-level key look-up of the API's lane classifier.
 */
#include "mpraw.h"

#include <stdio.h>
#include <string.h>

/* Deepest nesting any caller may ask for. */
#define MPRAW_MAX_DEPTH 64

enum { K_SCALAR = MPRAW_SCALAR, K_ARRAY = MPRAW_ARRAY, K_MAP = MPRAW_MAP };

uint64_t
mpraw_be(const unsigned char *p, size_t n)
{
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++)
		v = (v << 8) | p[i];
	return v;
}

/*
 * Read one object's header at p[*i]: *kind and, for a container, *n its
 * elements (a map's pairs count twice); for a scalar, *skip the bytes of
 * its body. *i moves past the header. 0 on success, else -1 (truncated)
 * or -2 (the invalid byte 0xc1).
 */
static int
header(const unsigned char *p, size_t len, size_t *i, int *kind, uint64_t *n,
    uint64_t *skip)
{
	/* 0xc4..0xdf: bytes of a length field, or the fixed body size */
	static const uint8_t lenbytes[] = { /* c4 bin */ 1, 2, 4,
		/* c7 ext */ 1, 2, 4, /* ca float */ 0, 0, /* cc uint */ 0, 0,
		0, 0, /* d0 int */ 0, 0, 0, 0, /* d4 fixext */ 0, 0, 0, 0, 0,
		/* d9 str */ 1, 2, 4, /* dc array */ 2, 4, /* de map */ 2, 4 };
	static const uint8_t fixed[] = { 0, 0, 0, 0, 0, 0, 4, 8, 1, 2, 4, 8, 1,
		2, 4, 8, 2, 3, 5, 9, 17, 0, 0, 0, 0, 0, 0, 0 };
	uint8_t              b;

	if (*i >= len)
		return -1;
	b     = p[(*i)++];
	*kind = K_SCALAR;
	*n    = 0;
	*skip = 0;
	if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
		return 0;
	if (b >= 0x80 && b <= 0x8f) {
		*kind = K_MAP, *n = (uint64_t) (b & 0x0f) * 2;
		return 0;
	}
	if (b >= 0x90 && b <= 0x9f) {
		*kind = K_ARRAY, *n = b & 0x0f;
		return 0;
	}
	if (b >= 0xa0 && b <= 0xbf) {
		*skip = b & 0x1f;
		return 0;
	}
	if (b == 0xc1)
		return -2;
	unsigned k = b - 0xc4;
	uint64_t v = 0;
	if (lenbytes[k] > 0) {
		if (len - *i < lenbytes[k])
			return -1;
		v = mpraw_be(p + *i, lenbytes[k]);
		*i += lenbytes[k];
	}
	if (b == 0xdc || b == 0xdd)
		*kind = K_ARRAY, *n = v;
	else if (b == 0xde || b == 0xdf)
		*kind = K_MAP, *n = v * 2;
	else if (b >= 0xc7 && b <= 0xc9)
		*skip = v + 1; /* type byte + data */
	else if (lenbytes[k] > 0)
		*skip = v;
	else
		*skip = fixed[k];
	return 0;
}

bool
mpraw_check(const void *data, size_t len, int max_depth, const char *what,
    char *err, size_t errlen)
{
	const unsigned char *p = data;
	uint64_t             pending[MPRAW_MAX_DEPTH + 1];
	int                  depth = 0;
	size_t               i     = 0;

	if (max_depth > MPRAW_MAX_DEPTH)
		max_depth = MPRAW_MAX_DEPTH;
	pending[0] = 1;
	while (depth >= 0) {
		uint64_t n, skip;
		int      kind, rc;

		if (pending[depth] == 0) {
			depth--;
			continue;
		}
		pending[depth]--;
		size_t at = i;
		rc        = header(p, len, &i, &kind, &n, &skip);
		if (rc == -2) {
			snprintf(err, errlen,
			    "invalid msgpack byte 0xc1 at byte %zu", at);
			return false;
		}
		if (rc != 0 || (kind == K_SCALAR && len - i < skip)) {
			snprintf(err, errlen, "truncated msgpack at byte %zu",
			    rc != 0 ? at : i);
			return false;
		}
		if (kind == K_SCALAR) {
			i += skip;
			continue;
		}
		if (n > len - i) {
			snprintf(err, errlen,
			    "msgpack %s at byte %zu claims more elements than "
			    "the message holds",
			    kind == K_ARRAY ? "array" : "map", i);
			return false;
		}
		if (n > 0) {
			if (depth == max_depth) {
				snprintf(err, errlen,
				    "msgpack nested deeper than %d levels",
				    max_depth);
				return false;
			}
			pending[++depth] = n;
		}
	}
	if (i != len) {
		snprintf(err, errlen, "%zu bytes after the %s", len - i, what);
		return false;
	}
	return true;
}

/* Skip one object at p[*i], visiting at most *budget headers. */
static bool
skip_object(const unsigned char *p, size_t len, size_t *i, size_t *budget)
{
	uint64_t pending = 1;

	while (pending > 0) {
		uint64_t n, skip;
		int      kind;

		if (*budget == 0)
			return false;
		(*budget)--;
		pending--;
		if (header(p, len, i, &kind, &n, &skip) != 0)
			return false;
		if (kind == K_SCALAR) {
			if (len - *i < skip)
				return false;
			*i += skip;
		} else {
			if (n > len - *i)
				return false;
			pending += n;
		}
	}
	return true;
}

int
mpraw_map_find(const void *data, size_t len, const char *key, size_t budget,
    const unsigned char **val, size_t *val_len)
{
	const unsigned char *p      = data;
	size_t               i      = 0;
	size_t               keylen = strlen(key);
	uint64_t             n, skip;
	int                  kind;

	*val     = NULL;
	*val_len = 0;
	if (header(p, len, &i, &kind, &n, &skip) != 0 || kind != K_MAP
	    || n > len - i)
		return -1;
	for (uint64_t pair = 0; pair < n / 2; pair++) {
		size_t      k = i;
		const char *s;
		size_t      slen;
		if (!skip_object(p, len, &i, &budget))
			return -1;
		bool match = mpraw_str(p + k, i - k, &s, &slen)
		    && slen == keylen && memcmp(s, key, keylen) == 0;
		size_t v = i;
		if (!skip_object(p, len, &i, &budget))
			return -1;
		if (match) {
			*val     = p + v;
			*val_len = i - v;
			return 1;
		}
	}
	return 0;
}

bool
mpraw_str(const unsigned char *v, size_t len, const char **s, size_t *n)
{
	size_t   i = 0;
	uint64_t cn, skip;
	int      kind;

	if (len == 0 || header(v, len, &i, &kind, &cn, &skip) != 0
	    || kind != K_SCALAR || len - i < skip)
		return false;
	/* fixstr, str8/16/32 */
	if (!((v[0] >= 0xa0 && v[0] <= 0xbf)
	        || (v[0] >= 0xd9 && v[0] <= 0xdb)))
		return false;
	*s = (const char *) v + i;
	*n = (size_t) skip;
	return true;
}

bool
mpraw_uint(const unsigned char *v, size_t len, uint64_t *out)
{
	if (len == 0)
		return false;
	if (v[0] <= 0x7f) {
		*out = v[0];
		return true;
	}
	if (v[0] >= 0xcc && v[0] <= 0xcf) {
		size_t nb = (size_t) 1 << (v[0] - 0xcc);
		if (len < 1 + nb)
			return false;
		*out = mpraw_be(v + 1, nb);
		return true;
	}
	return false;
}

/* The whole size of a value that its first byte tells (fixint, fixstr,
 * nil, bool, floats, ints, fixext); 0: a container or a length field. */
static const uint8_t one_byte_size[256] = {
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
	17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32,
	1, 0, 1, 1, 0, 0, 0, 0, 0, 0, 5, 9, 2, 3, 5, 9,
	2, 3, 5, 9, 3, 4, 6, 10, 18, 0, 0, 0, 0, 0, 0, 0,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
};

bool
mpraw_skip(const void *data, size_t len, size_t *at)
{
	const unsigned char *p       = data;
	size_t               i       = *at;
	uint64_t             pending = 1; /* values still to pass */
	while (pending > 0) {
		int      kind;
		uint64_t n, skip;
		pending--;
		/* what the first byte tells (a state's fields: fixmap,
		 * fixstr, ints, floats, nil, bool; str8, bin8) without the
		 * general decoder */
		if (i < len) {
			unsigned b  = p[i];
			size_t   sz = one_byte_size[b];
			if (sz > 0) {
				if (sz > len - i)
					return false;
				i += sz;
				continue;
			}
			if (b >= 0x80 && b <= 0x9f) {
				n = b <= 0x8f ? (uint64_t) (b & 0x0f) * 2
				              : b & 0x0f;
				i++;
				if (n > len - i)
					return false;
				pending += n;
				continue;
			}
			if ((b == 0xd9 || b == 0xc4) && len - i >= 2) {
				if (p[i + 1] > len - i - 2)
					return false;
				i += 2 + (size_t) p[i + 1];
				continue;
			}
		}
		if (header(p, len, &i, &kind, &n, &skip) != 0)
			return false;
		if (kind != K_SCALAR) {
			/* each element takes at least one byte */
			if (n > len - i)
				return false;
			pending += n;
		} else {
			if (skip > len - i)
				return false;
			i += (size_t) skip;
		}
	}
	*at = i;
	return true;
}

/* A container's header at p[*at] of the kind wanted. */
static bool
container(const void *data, size_t len, size_t *at, int want, uint64_t *n)
{
	const unsigned char *p = data;
	size_t               i = *at;
	uint64_t             cn, skip;
	int                  kind;

	if (header(p, len, &i, &kind, &cn, &skip) != 0 || kind != want
	    || cn > len - i)
		return false;
	*n  = want == K_MAP ? cn / 2 : cn;
	*at = i;
	return true;
}

int
mpraw_header(
    const void *p, size_t len, size_t *at, uint64_t *n, uint64_t *body)
{
	size_t i = *at;
	int    kind;
	if (header(p, len, &i, &kind, n, body) != 0)
		return -1;
	*at = i;
	return kind;
}

bool
mpraw_map(const void *p, size_t len, size_t *at, uint64_t *n)
{
	return container(p, len, at, K_MAP, n);
}

bool
mpraw_array(const void *p, size_t len, size_t *at, uint64_t *n)
{
	return container(p, len, at, K_ARRAY, n);
}

bool
mpraw_bool(const unsigned char *v, size_t len, bool *out)
{
	if (len == 0 || (v[0] != 0xc2 && v[0] != 0xc3))
		return false;
	*out = v[0] == 0xc3;
	return true;
}

/* One value at p[*i] into o for mpraw_object; depth: containers it may
 * still open. */
static bool
object_at(const unsigned char *p, size_t len, size_t *i, int depth,
    msgpack_zone *zone, msgpack_object *o)
{
	if (*i >= len)
		return false;
	uint8_t b = p[*i];
	if (b <= 0x7f) { /* the usual small integers, without a header */
		o->type    = MSGPACK_OBJECT_POSITIVE_INTEGER;
		o->via.u64 = b;
		*i += 1;
		return true;
	}
	size_t   at = *i;
	uint64_t n, body = 0;
	int      kind;
	if (header(p, len, &at, &kind, &n, &body) != 0)
		return false;
	if (kind != K_SCALAR) {
		/* an element takes a byte at least: a lying count is refused
		 * before anything is allocated for it */
		if (depth == 0 || n > len - at)
			return false;
		if (kind == K_ARRAY) {
			msgpack_object *v = msgpack_zone_malloc(
			    zone, (size_t) n * sizeof(msgpack_object));
			if (v == NULL)
				return false;
			for (uint64_t k = 0; k < n; k++)
				if (!object_at(p, len, &at, depth - 1, zone,
				        &v[k]))
					return false;
			o->type           = MSGPACK_OBJECT_ARRAY;
			o->via.array.size = (uint32_t) n;
			o->via.array.ptr  = v;
		} else {
			uint64_t            pairs = n / 2;
			msgpack_object_kv *kv    = msgpack_zone_malloc(
                            zone, (size_t) pairs * sizeof(msgpack_object_kv));
			if (kv == NULL)
				return false;
			for (uint64_t k = 0; k < pairs; k++)
				if (!object_at(p, len, &at, depth - 1, zone,
				        &kv[k].key)
				    || !object_at(p, len, &at, depth - 1, zone,
				        &kv[k].val))
					return false;
			o->type         = MSGPACK_OBJECT_MAP;
			o->via.map.size = (uint32_t) pairs;
			o->via.map.ptr  = kv;
		}
		*i = at;
		return true;
	}
	if (len - at < body)
		return false;
	const unsigned char *d = p + at;
	uint64_t             u;
	if (b >= 0xe0) {
		o->type    = MSGPACK_OBJECT_NEGATIVE_INTEGER;
		o->via.i64 = (int8_t) b;
	} else if ((b >= 0xa0 && b <= 0xbf) || (b >= 0xd9 && b <= 0xdb)) {
		o->type         = MSGPACK_OBJECT_STR;
		o->via.str.ptr  = (const char *) d;
		o->via.str.size = (uint32_t) body;
	} else if (b >= 0xc4 && b <= 0xc6) {
		o->type         = MSGPACK_OBJECT_BIN;
		o->via.bin.ptr  = (const char *) d;
		o->via.bin.size = (uint32_t) body;
	} else if ((b >= 0xc7 && b <= 0xc9) || (b >= 0xd4 && b <= 0xd8)) {
		if (body < 1)
			return false;
		o->type         = MSGPACK_OBJECT_EXT;
		o->via.ext.type = (int8_t) d[0];
		o->via.ext.ptr  = (const char *) d + 1;
		o->via.ext.size = (uint32_t) (body - 1);
	} else if (b >= 0xcc && b <= 0xcf) {
		o->type    = MSGPACK_OBJECT_POSITIVE_INTEGER;
		o->via.u64 = mpraw_be(d, body);
	} else if (b >= 0xd0 && b <= 0xd3) {
		/* signed: msgpack-c types a value >= 0 as positive */
		u = mpraw_be(d, body);
		if (body < 8 && (u >> (8 * body - 1)) != 0)
			u |= ~(uint64_t) 0 << (8 * body);
		int64_t v;
		memcpy(&v, &u, sizeof(v));
		if (v < 0) {
			o->type    = MSGPACK_OBJECT_NEGATIVE_INTEGER;
			o->via.i64 = v;
		} else {
			o->type    = MSGPACK_OBJECT_POSITIVE_INTEGER;
			o->via.u64 = (uint64_t) v;
		}
	} else if (b == 0xca) {
		uint32_t w = (uint32_t) mpraw_be(d, 4);
		float    f;
		memcpy(&f, &w, sizeof(f));
		o->type    = MSGPACK_OBJECT_FLOAT32;
		o->via.f64 = f;
	} else if (b == 0xcb) {
		u = mpraw_be(d, 8);
		o->type = MSGPACK_OBJECT_FLOAT64;
		memcpy(&o->via.f64, &u, sizeof(u));
	} else if (b == 0xc0) {
		o->type = MSGPACK_OBJECT_NIL;
	} else if (b == 0xc2 || b == 0xc3) {
		o->type        = MSGPACK_OBJECT_BOOLEAN;
		o->via.boolean = b == 0xc3;
	} else {
		return false;
	}
	*i = at + body;
	return true;
}

bool
mpraw_object_at(const void *p, size_t len, size_t *at, msgpack_zone *zone,
    msgpack_object *out)
{
	size_t i = *at;
	if (!object_at(p, len, &i, MPRAW_OBJECT_DEPTH, zone, out))
		return false;
	*at = i;
	return true;
}

bool
mpraw_object(
    const void *p, size_t len, msgpack_zone *zone, msgpack_object *out)
{
	size_t at = 0;
	return mpraw_object_at(p, len, &at, zone, out) && at == len;
}
