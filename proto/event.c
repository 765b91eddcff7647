/*
 * The event codec: the stored record in the log (a msgpack array, position
 * is the LMDB key), the wire form of a committed event (a named map), and
 * parsing of a new event from a commit request with its defaults and limits.
 */
#include "event.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <uuid/uuid.h>

#include <sluice/errors.h>

#include "mp.h"
#include "mpraw.h"
#include "mpwrite.h"

/* Number of fields in the stored array; a record with another count is
 * corrupt (a new field would come with a new count and a decoder for it). */
#define EV_FIELDS 12

/* A link event's type ("$>": its content is a str "N@stream"; "$@": a
 * str, the linked stream), not a map. */
static bool
ev_is_link_type(const char *type, size_t len)
{
	return type != NULL && len == 2
	    && (memcmp(type, EV_LINK_TYPE, 2) == 0
	        || memcmp(type, EV_STREAM_LINK_TYPE, 2) == 0);
}

static bool
ev_has_nul(const char *s, size_t len)
{
	return s != NULL && len > 0 && memchr(s, '\0', len) != NULL;
}

const char *
ev_new_nul_field(const ev_new *e)
{
	if (ev_has_nul(e->type, e->type_len))
		return "type";
	if (ev_has_nul(e->correlation_id, e->correlation_len))
		return "correlation_id";
	if (ev_has_nul(e->causation_id, e->causation_len))
		return "causation_id";
	return NULL;
}

/* What ev_encode refuses: a missing content or type, content neither a
 * map nor a link's str, metadata not a map, a NUL byte in a string. */
static bool
ev_encode_ok(const char *tenant, size_t tenant_len, const char *stream,
    size_t stream_len, const ev_new *e)
{
	return !(e == NULL || e->content == NULL || e->type == NULL
	    || (e->content->type != MSGPACK_OBJECT_MAP
	        && !(e->content->type == MSGPACK_OBJECT_STR
	            && ev_is_link_type(e->type, e->type_len)))
	    || (e->metadata != NULL && e->metadata->type != MSGPACK_OBJECT_MAP)
	    || ev_has_nul(tenant, tenant_len) || ev_has_nul(stream, stream_len)
	    || ev_new_nul_field(e) != NULL);
}

int
ev_encode(msgpack_packer *pk, const char *tenant, size_t tenant_len,
    const char *stream, size_t stream_len, uint64_t revision, const ev_new *e)
{
	char idtext[37];

	if (!ev_encode_ok(tenant, tenant_len, stream, stream_len, e))
		return SL_EINVAL;
	msgpack_pack_array(pk, EV_FIELDS);
	mp_pack_strn(pk, tenant, tenant_len);
	mp_pack_strn(pk, stream, stream_len);
	msgpack_pack_uint64(pk, revision);
	msgpack_pack_bin(pk, 16);
	msgpack_pack_bin_body(pk, e->id, 16);
	mp_pack_strn(pk, e->type, e->type_len);
	msgpack_pack_uint32(pk, e->generation);
	msgpack_pack_int64(pk, e->occurred_ns);
	/* A NULL correlation id means the default: the event's own id. */
	if (e->correlation_id == NULL) {
		ev_uuid_text(e->id, idtext);
		mp_pack_strn(pk, idtext, 36);
	} else {
		mp_pack_strn(pk, e->correlation_id, e->correlation_len);
	}
	if (e->causation_id == NULL)
		mp_pack_strn(pk, "", 0);
	else
		mp_pack_strn(pk, e->causation_id, e->causation_len);
	if (e->is_public)
		msgpack_pack_true(pk);
	else
		msgpack_pack_false(pk);
	if (e->metadata == NULL)
		msgpack_pack_map(pk, 0);
	else
		msgpack_pack_object(pk, *e->metadata);
	msgpack_pack_object(pk, *e->content);
	return SL_OK;
}

/* metadata or content as msgpack_pack_object packs it: a str or an empty
 * map written in place (a link's content, no metadata), anything else
 * through msgpack-c's packer. */
static int
ev_sbuf_object(msgpack_sbuffer *sb, const msgpack_object *o)
{
	unsigned char *p, *q;
	if (o == NULL
	    || (o->type == MSGPACK_OBJECT_MAP && o->via.map.size == 0)) {
		if ((p = mp_sbuf_room(sb, 1, MSGPACK_SBUFFER_INIT_SIZE))
		    == NULL)
			return SL_ENOMEM;
		*p = 0x80;
		sb->size++;
		return SL_OK;
	}
	if (o->type == MSGPACK_OBJECT_STR) {
		if ((p = mp_sbuf_room(sb, MPW_HDR_MAX + o->via.str.size,
		         MSGPACK_SBUFFER_INIT_SIZE))
		    == NULL)
			return SL_ENOMEM;
		q = mpw_str(p, o->via.str.size > 0 ? o->via.str.ptr : "",
		    o->via.str.size);
		sb->size += (size_t) (q - p);
		return SL_OK;
	}
	msgpack_packer pk;
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	return msgpack_pack_object(&pk, *o) == 0 ? SL_OK : SL_ENOMEM;
}

int
ev_encode_sbuf(msgpack_sbuffer *sb, const char *tenant, size_t tenant_len,
    const char *stream, size_t stream_len, uint64_t revision, const ev_new *e)
{
	if (!ev_encode_ok(tenant, tenant_len, stream, stream_len, e))
		return SL_EINVAL;
	size_t corr_len = e->correlation_id == NULL ? 36 : e->correlation_len;
	size_t caus_len = e->causation_id == NULL ? 0 : e->causation_len;
	/* the array's header and the ten fields before metadata, each a
	 * header (or an integer) at most MPW_HDR_MAX bytes, and their
	 * strings' bytes */
	size_t bound = 11 * MPW_HDR_MAX + tenant_len + stream_len + 16
	    + e->type_len + corr_len + caus_len;
	unsigned char *p = mp_sbuf_room(sb, bound, MSGPACK_SBUFFER_INIT_SIZE),
	              *o = p;
	if (p == NULL)
		return SL_ENOMEM;
	o    = mpw_array(o, EV_FIELDS);
	o    = mpw_str(o, tenant_len > 0 ? tenant : "", tenant_len);
	o    = mpw_str(o, stream_len > 0 ? stream : "", stream_len);
	o    = mpw_uint(o, revision);
	*o++ = 0xc4; /* bin 8 */
	*o++ = 16;
	o    = mpw_raw(o, e->id, 16);
	o    = mpw_str(o, e->type, e->type_len);
	o    = mpw_uint(o, e->generation);
	o    = mpw_int(o, e->occurred_ns);
	if (e->correlation_id == NULL) {
		/* the default: the event's own id */
		char idtext[37];
		ev_uuid_text(e->id, idtext);
		o = mpw_str(o, idtext, 36);
	} else {
		o = mpw_str(
		    o, corr_len > 0 ? e->correlation_id : "", corr_len);
	}
	o    = mpw_str(o, caus_len > 0 ? e->causation_id : "", caus_len);
	*o++ = e->is_public ? 0xc3 : 0xc2;
	sb->size += (size_t) (o - p);
	int rc = ev_sbuf_object(sb, e->metadata);
	return rc != SL_OK ? rc : ev_sbuf_object(sb, e->content);
}

/* NUL-terminated copy of a str object in the zone; NULL if not a str. */
static const char *
ev_zone_str(msgpack_zone *zone, const msgpack_object *o)
{
	char *s;

	if (o->type != MSGPACK_OBJECT_STR)
		return NULL;
	s = msgpack_zone_malloc(zone, o->via.str.size + 1);
	if (s == NULL)
		return NULL;
	if (o->via.str.size > 0)
		memcpy(s, o->via.str.ptr, o->via.str.size);
	s[o->via.str.size] = '\0';
	return s;
}

/* A msgpack str at *i of p (n bytes): its bytes and length; *i past it. */
static bool
peek_str(const unsigned char *p, size_t n, size_t *i, const char **s,
    size_t *slen)
{
	size_t k = *i, l;
	if (k >= n)
		return false;
	unsigned char h = p[k];
	if ((h & 0xe0) == 0xa0) {
		l = h & 0x1f;
		k += 1;
	} else if (h == 0xd9 && k + 1 < n) {
		l = p[k + 1];
		k += 2;
	} else if (h == 0xda && k + 2 < n) {
		l = (size_t) p[k + 1] << 8 | p[k + 2];
		k += 3;
	} else if (h == 0xdb && k + 4 < n) {
		l = (size_t) p[k + 1] << 24 | (size_t) p[k + 2] << 16
		    | (size_t) p[k + 3] << 8 | p[k + 4];
		k += 5;
	} else {
		return false;
	}
	if (l > n - k)
		return false;
	*s    = (const char *) p + k;
	*slen = l;
	*i    = k + l;
	return true;
}

int
ev_peek(const void *data, size_t len, ev_head *out)
{
	const unsigned char *p = data;
	size_t               i;
	if (len < 1)
		return SL_EPROTO;
	if (p[0] == 0x90 + EV_FIELDS)
		i = 1;
	else if (p[0] == 0xdc && len > 3
	    && ((size_t) p[1] << 8 | p[2]) == EV_FIELDS)
		i = 3;
	else
		return SL_EPROTO;
	if (!peek_str(p, len, &i, &out->tenant, &out->tenant_len)
	    || !peek_str(p, len, &i, &out->stream, &out->stream_len))
		return SL_EPROTO;
	/* the revision: a positive fixint or uint 8..64 */
	if (i >= len)
		return SL_EPROTO;
	if (p[i] <= 0x7f) {
		out->revision = p[i];
		i += 1;
	} else if (p[i] >= 0xcc && p[i] <= 0xcf) {
		size_t nb = (size_t) 1 << (p[i] - 0xcc);

		if (nb > len - i - 1)
			return SL_EPROTO;
		out->revision = 0;
		for (size_t b = 1; b <= nb; b++)
			out->revision = out->revision << 8 | p[i + b];
		i += 1 + nb;
	} else {
		return SL_EPROTO;
	}
	/* the id: bin 8 of 16 bytes */
	if (i + 2 > len || p[i] != 0xc4 || p[i + 1] != 16)
		return SL_EPROTO;
	i += 18;
	return peek_str(p, len, &i, &out->type, &out->type_len) ? SL_OK
	                                                        : SL_EPROTO;
}

int
ev_decode_mp(const void *data, size_t len, uint64_t position,
    msgpack_zone *zone, ev_view *out)
{
	msgpack_object        root;
	const msgpack_object *f;
	size_t                off = 0;
	msgpack_unpack_return ur;

	ur = msgpack_unpack(data, len, &off, zone, &root);
	if (ur != MSGPACK_UNPACK_SUCCESS || root.type != MSGPACK_OBJECT_ARRAY
	    || root.via.array.size != EV_FIELDS)
		return SL_EPROTO;
	f = root.via.array.ptr;
	if (f[2].type != MSGPACK_OBJECT_POSITIVE_INTEGER
	    || f[3].type != MSGPACK_OBJECT_BIN || f[3].via.bin.size != 16
	    || f[5].type != MSGPACK_OBJECT_POSITIVE_INTEGER
	    || f[5].via.u64 > UINT32_MAX
	    || (f[6].type != MSGPACK_OBJECT_POSITIVE_INTEGER
	        && f[6].type != MSGPACK_OBJECT_NEGATIVE_INTEGER)
	    || (f[6].type == MSGPACK_OBJECT_POSITIVE_INTEGER
	        && f[6].via.u64 > (uint64_t) INT64_MAX)
	    || f[4].type != MSGPACK_OBJECT_STR
	    || f[9].type != MSGPACK_OBJECT_BOOLEAN
	    || f[10].type != MSGPACK_OBJECT_MAP
	    || (f[11].type != MSGPACK_OBJECT_MAP
	        && !(f[11].type == MSGPACK_OBJECT_STR
	            && ev_is_link_type(f[4].via.str.ptr, f[4].via.str.size))))
		return SL_EPROTO;

	memset(out, 0, sizeof(*out));
	out->position       = position;
	out->tenant         = ev_zone_str(zone, &f[0]);
	out->stream         = ev_zone_str(zone, &f[1]);
	out->type           = ev_zone_str(zone, &f[4]);
	out->correlation_id = ev_zone_str(zone, &f[7]);
	out->causation_id   = ev_zone_str(zone, &f[8]);
	if (out->tenant == NULL || out->stream == NULL || out->type == NULL
	    || out->correlation_id == NULL || out->causation_id == NULL)
		return SL_EPROTO;
	out->revision = f[2].via.u64;
	memcpy(out->id, f[3].via.bin.ptr, 16);
	ev_uuid_text(out->id, out->id_text);
	out->generation  = (uint32_t) f[5].via.u64;
	out->occurred_ns = f[6].type == MSGPACK_OBJECT_POSITIVE_INTEGER
	    ? (int64_t) f[6].via.u64
	    : f[6].via.i64;
	out->is_public   = f[9].via.boolean;
	out->metadata    = f[10];
	out->content     = f[11];
	return SL_OK;
}

/* A NUL-terminated copy of s[0..n) in zone, or NULL. */
static const char *
zone_strn(msgpack_zone *zone, const char *s, size_t n)
{
	char *c = msgpack_zone_malloc(zone, n + 1);
	if (c != NULL) {
		if (n > 0)
			memcpy(c, s, n);
		c[n] = '\0';
	}
	return c;
}

static int peek_raw_as(const void *data, size_t len, ev_raw *out,
    msgpack_zone *zone, msgpack_object *meta, msgpack_object *content);

int
ev_decode(const void *data, size_t len, uint64_t position, msgpack_zone *zone,
    ev_view *out)
{
	ev_raw r;
	bool   peeked;
	return ev_decode_raw(data, len, position, zone, out, &r, &peeked);
}

int
ev_decode_raw(const void *data, size_t len, uint64_t position,
    msgpack_zone *zone, ev_view *out, ev_raw *raw, bool *peeked)
{
	/* The fields read in place and the two maps by mpraw_object, without
	 * msgpack-c's state machine (this runs for every event a processor
	 * handles). What they do not take (an unusual encoding, a string
	 * holding a NUL byte, a corrupt record) is msgpack-c's to decode or
	 * to refuse, as before. */
	const ev_raw        *r   = raw;
	const ev_head       *h   = &r->h;
	const unsigned char *end = (const unsigned char *) data + len;
	*peeked                  = false;
	if (peek_raw_as(data, len, raw, zone, &out->metadata, &out->content)
	        != SL_OK
	    || r->content + r->content_len != end)
		return ev_decode_mp(data, len, position, zone, out);
	out->position       = position;
	out->tenant         = zone_strn(zone, h->tenant, h->tenant_len);
	out->stream         = zone_strn(zone, h->stream, h->stream_len);
	out->type           = zone_strn(zone, h->type, h->type_len);
	out->correlation_id
	    = zone_strn(zone, r->correlation_id, r->correlation_len);
	out->causation_id = zone_strn(zone, r->causation_id, r->causation_len);
	if (out->tenant == NULL || out->stream == NULL || out->type == NULL
	    || out->correlation_id == NULL || out->causation_id == NULL)
		return SL_EPROTO;
	out->revision = h->revision;
	memcpy(out->id, r->id, 16);
	ev_uuid_text(out->id, out->id_text);
	out->generation  = r->generation;
	out->occurred_ns = r->occurred_ns;
	out->is_public   = r->is_public;
	*peeked          = true;
	return SL_OK;
}

void
ev_pack_wire(msgpack_packer *pk, const ev_view *ev)
{
	ev_pack_wire_extra(pk, ev, 0);
}

void
ev_pack_wire_extra(msgpack_packer *pk, const ev_view *ev, uint32_t n_extra)
{
	msgpack_pack_map(pk, 13 + n_extra);
	mp_pack_kv_u64(pk, "position", ev->position);
	mp_pack_kv_str(pk, "tenant", ev->tenant);
	mp_pack_kv_str(pk, "stream", ev->stream);
	mp_pack_kv_u64(pk, "revision", ev->revision);
	mp_pack_kv_str(pk, "id", ev->id_text);
	mp_pack_kv_str(pk, "type", ev->type);
	mp_pack_kv_u64(pk, "generation", ev->generation);
	mp_pack_kv_i64(pk, "occurred", ev->occurred_ns);
	mp_pack_kv_str(pk, "correlation_id", ev->correlation_id);
	mp_pack_kv_str(pk, "causation_id", ev->causation_id);
	mp_pack_kv_bool(pk, "public", ev->is_public);
	mp_pack_cstr(pk, "metadata");
	msgpack_pack_object(pk, ev->metadata);
	mp_pack_cstr(pk, "content");
	msgpack_pack_object(pk, ev->content);
}

/* A hex digit's value, or -1 (what uuid_hex reads a digit with). */
static const int8_t hexval[256] = {
	['0'] = 0 + 1, ['1'] = 1 + 1, ['2'] = 2 + 1, ['3'] = 3 + 1,
	['4'] = 4 + 1, ['5'] = 5 + 1, ['6'] = 6 + 1, ['7'] = 7 + 1,
	['8'] = 8 + 1, ['9'] = 9 + 1, ['a'] = 10 + 1, ['b'] = 11 + 1,
	['c'] = 12 + 1, ['d'] = 13 + 1, ['e'] = 14 + 1, ['f'] = 15 + 1,
	['A'] = 10 + 1, ['B'] = 11 + 1, ['C'] = 12 + 1, ['D'] = 13 + 1,
	['E'] = 14 + 1, ['F'] = 15 + 1,
}; /* stored + 1: 0 is "not a digit" */

/* A UUID's text (8-4-4-4-12 hex digits, any case: what uuid_parse takes)
 * into its bytes and lower-case text, without uuid_parse's strtoul per
 * byte (a plugin host reads one per event). */
static bool
uuid_hex(const char *t, size_t len, uint8_t id[16], char text[37])
{
	static const char digits[] = "0123456789abcdef";
	if (len != 36 || t[8] != '-' || t[13] != '-' || t[18] != '-'
	    || t[23] != '-')
		return false;
	size_t b = 0;
	for (size_t i = 0; i < 36; i += 2) {
		if (i == 8 || i == 13 || i == 18 || i == 23)
			text[i++] = '-';
		int hi = hexval[(unsigned char) t[i]] - 1;
		int lo = hexval[(unsigned char) t[i + 1]] - 1;
		if (hi < 0 || lo < 0)
			return false;
		text[i]     = digits[hi];
		text[i + 1] = digits[lo];
		id[b++]     = (uint8_t) (hi << 4 | lo);
	}
	text[36] = '\0';
	return true;
}

/* An unsigned integer at p[*i] (fixint or uint 8..64). */
static bool
raw_uint(const unsigned char *p, size_t n, size_t *i, uint64_t *v)
{
	size_t k = *i;
	if (k >= n)
		return false;
	if (p[k] <= 0x7f) {
		*v = p[k];
		*i = k + 1;
		return true;
	}
	if (p[k] < 0xcc || p[k] > 0xcf)
		return false;
	size_t nb = (size_t) 1 << (p[k] - 0xcc);
	if (nb > n - k - 1)
		return false;
	*v = 0;
	for (size_t b = 1; b <= nb; b++)
		*v = *v << 8 | p[k + b];
	*i = k + 1 + nb;
	return true;
}

/* A signed integer at p[*i] (any msgpack integer that fits int64). */
static bool
raw_int(const unsigned char *p, size_t n, size_t *i, int64_t *v)
{
	uint64_t u;
	size_t   k = *i;
	if (k >= n)
		return false;
	if (p[k] <= 0x7f || (p[k] >= 0xcc && p[k] <= 0xcf)) {
		if (!raw_uint(p, n, i, &u) || u > (uint64_t) INT64_MAX)
			return false;
		*v = (int64_t) u;
		return true;
	}
	if (p[k] >= 0xe0) {
		*v = (int8_t) p[k];
		*i = k + 1;
		return true;
	}
	if (p[k] < 0xd0 || p[k] > 0xd3)
		return false;
	size_t nb = (size_t) 1 << (p[k] - 0xd0);
	if (nb > n - k - 1)
		return false;
	u = 0;
	for (size_t b = 1; b <= nb; b++)
		u = u << 8 | p[k + b];
	/* sign-extend from nb bytes */
	if (nb < 8 && (u >> (nb * 8 - 1)) != 0)
		u |= ~(uint64_t) 0 << (nb * 8);
	*v = (int64_t) u;
	*i = k + 1 + nb;
	return true;
}

/* The value at p[*i] and its span, when it is a map (or, with str_ok, a
 * str). */
/* The map (or, str_ok, str) at p[*i] of n bytes: its bytes, and with
 * zone decoded into obj (mpraw_object_at) rather than stepped over; *i
 * moves past it. */
static bool
raw_value(const unsigned char *p, size_t n, size_t *i, bool str_ok,
    msgpack_zone *zone, msgpack_object *obj, const unsigned char **v,
    size_t *vlen)
{
	size_t k = *i;
	if (k >= n)
		return false;
	bool map = (p[k] >= 0x80 && p[k] <= 0x8f) || p[k] == 0xde
	    || p[k] == 0xdf;
	bool str = (p[k] >= 0xa0 && p[k] <= 0xbf)
	    || (p[k] >= 0xd9 && p[k] <= 0xdb);
	if (!map && !(str_ok && str))
		return false;
	if (zone != NULL ? !mpraw_object_at(p, n, i, zone, obj)
	                 : !mpraw_skip(p, n, i))
		return false;
	*v    = p + k;
	*vlen = *i - k;
	return true;
}

/* ev_pack_wire's keys as packed (a fixstr header, in octal, then the
 * name), each padded to 16 bytes, in its order; and 16 bytes of 0xff,
 * then 16 of 0. */
static const unsigned char wire_keys[][16] = { "\250position", "\246tenant",
	"\246stream", "\250revision", "\242id", "\244type", "\252generation",
	"\250occurred", "\256correlation_id", "\254causation_id", "\246public",
	"\250metadata", "\247content" };
static const unsigned char ones_zeros[32]  = { 0xff, 0xff, 0xff, 0xff, 0xff,
	 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

/* Whether the 16 bytes at p start with the packed key k (n bytes, header
 * included): two loads and masks, not a string call per key. */
static inline bool
key_is(const unsigned char *p, const unsigned char k[16], size_t n)
{
	uint64_t a[2], w[2], m[2];
	memcpy(a, p, 16);
	memcpy(w, k, 16);
	memcpy(m, ones_zeros + 16 - n, 16);
	return (((a[0] ^ w[0]) & m[0]) | ((a[1] ^ w[1]) & m[1])) == 0;
}

int
ev_from_wire(const void *data, size_t len, msgpack_zone *zone, ev_view *out)
{
	/* the wire map's keys; ev_pack_wire's order is tried first */
	enum { W_POS, W_TENANT, W_STREAM, W_REV, W_ID, W_TYPE, W_GEN, W_OCC,
		W_CORR, W_CAUS, W_PUB, W_META, W_CONT, W_N };
	static const char *const names[W_N] = { "position", "tenant",
		"stream", "revision", "id", "type", "generation", "occurred",
		"correlation_id", "causation_id", "public", "metadata",
		"content" };
	static const uint8_t lens[W_N] = { 8, 6, 6, 8, 2, 4, 10, 8, 14, 12,
		6, 8, 7 };
	static const msgpack_object empty = { .type = MSGPACK_OBJECT_MAP };
	const unsigned char *p = data;
	const char          *sv[W_N];
	size_t               sl[W_N], i = 0, n;
	bool                 seen[W_N] = { false };
	uint64_t             u;
	memset(out, 0, sizeof(*out));
	out->metadata = empty;
	if (len == 0)
		return SL_EPROTO;
	if (p[0] >= 0x80 && p[0] <= 0x8f) {
		n = p[0] & 0x0f;
		i = 1;
	} else if (p[0] == 0xde && len >= 3) {
		n = (size_t) p[1] << 8 | p[2];
		i = 3;
	} else {
		return SL_EPROTO;
	}
	for (size_t pair = 0; pair < n; pair++) {
		const char *k;
		size_t      kl;
		int         j = -1;
		/* the key ev_pack_wire puts here, fixstr and all, compared
		 * 16 bytes at a time (a value follows it: they are there) */
		if (pair < W_N && i + 16 <= len
		    && key_is(
		        p + i, wire_keys[pair], 1 + (size_t) lens[pair])) {
			i += 1 + (size_t) lens[pair];
			j = (int) pair;
			goto known;
		}
		if (!peek_str(p, len, &i, &k, &kl))
			return SL_EPROTO;
		if (pair < W_N && lens[pair] == kl
		    && memcmp(names[pair], k, kl) == 0)
			j = (int) pair;
		for (int w = 0; j < 0 && w < W_N; w++)
			if (lens[w] == kl && memcmp(names[w], k, kl) == 0)
				j = w;
	known:
		if (j < 0 || seen[j]) {
			if (!mpraw_skip(p, len, &i))
				return SL_EPROTO;
			continue;
		}
		seen[j] = true;
		switch (j) {
		case W_TENANT:
		case W_STREAM:
		case W_ID:
		case W_TYPE:
		case W_CORR:
		case W_CAUS:
			if (!peek_str(p, len, &i, &sv[j], &sl[j]))
				return SL_EPROTO;
			break;
		case W_POS:
		case W_REV:
		case W_GEN:
			if (!raw_uint(p, len, &i, &u))
				return SL_EPROTO;
			if (j == W_POS)
				out->position = u;
			else if (j == W_REV)
				out->revision = u;
			else if (u > UINT32_MAX)
				return SL_EPROTO;
			else
				out->generation = (uint32_t) u;
			break;
		case W_OCC:
			if (!raw_int(p, len, &i, &out->occurred_ns))
				return SL_EPROTO;
			break;
		case W_PUB:
			if (i >= len || (p[i] != 0xc2 && p[i] != 0xc3))
				return SL_EPROTO;
			out->is_public = p[i++] == 0xc3;
			break;
		default: { /* metadata, content: decoded, as ev_decode's */
			/* by mpraw_object_at (the plugin host reads an event
			 * per call this way); what it does not vouch for is
			 * msgpack-c's to decode or refuse */
			msgpack_object o;
			size_t         off = i;
			if (!mpraw_object_at(data, len, &off, zone, &o)) {
				off                      = i;
				msgpack_unpack_return ur = msgpack_unpack(
				    data, len, &off, zone, &o);
				if (ur != MSGPACK_UNPACK_SUCCESS
				    && ur != MSGPACK_UNPACK_EXTRA_BYTES)
					return SL_EPROTO;
			}
			i = off;
			if (j == W_CONT)
				out->content = o;
			else if (o.type == MSGPACK_OBJECT_MAP)
				out->metadata = o;
			else if (o.type != MSGPACK_OBJECT_NIL)
				return SL_EPROTO;
		}
		}
	}
	for (int j = 0; j < W_N; j++)
		if (!seen[j] && j != W_META)
			return SL_EPROTO;
	out->tenant         = zone_strn(zone, sv[W_TENANT], sl[W_TENANT]);
	out->stream         = zone_strn(zone, sv[W_STREAM], sl[W_STREAM]);
	out->type           = zone_strn(zone, sv[W_TYPE], sl[W_TYPE]);
	out->correlation_id = zone_strn(zone, sv[W_CORR], sl[W_CORR]);
	out->causation_id   = zone_strn(zone, sv[W_CAUS], sl[W_CAUS]);
	if (out->tenant == NULL || out->stream == NULL || out->type == NULL
	    || out->correlation_id == NULL || out->causation_id == NULL
	    || !uuid_hex(sv[W_ID], sl[W_ID], out->id, out->id_text))
		return SL_EPROTO;
	return SL_OK;
}

/* ev_peek_raw, and with zone the metadata and content decoded into
 * meta and content by mpraw_object_at on the way (ev_decode) rather than
 * stepped over. */
static int
peek_raw_as(const void *data, size_t len, ev_raw *out, msgpack_zone *zone,
    msgpack_object *meta, msgpack_object *content)
{
	const unsigned char *p = data;
	size_t               i;
	uint64_t             gen;

	if (len >= 1 && p[0] == 0x90 + EV_FIELDS)
		i = 1;
	else if (len > 3 && p[0] == 0xdc && ((size_t) p[1] << 8 | p[2]) == EV_FIELDS)
		i = 3;
	else
		return SL_EPROTO;
	ev_head *h = &out->h;
	if (!peek_str(p, len, &i, &h->tenant, &h->tenant_len)
	    || !peek_str(p, len, &i, &h->stream, &h->stream_len)
	    || !raw_uint(p, len, &i, &h->revision) || i + 18 > len
	    || p[i] != 0xc4 || p[i + 1] != 16)
		return SL_EPROTO;
	out->id = p + i + 2;
	i += 18;
	if (!peek_str(p, len, &i, &h->type, &h->type_len)
	    || !raw_uint(p, len, &i, &gen) || gen > UINT32_MAX
	    || !raw_int(p, len, &i, &out->occurred_ns)
	    || !peek_str(p, len, &i, &out->correlation_id,
	        &out->correlation_len)
	    || !peek_str(p, len, &i, &out->causation_id, &out->causation_len)
	    || i >= len || (p[i] != 0xc2 && p[i] != 0xc3))
		return SL_EPROTO;
	out->generation = (uint32_t) gen;
	out->is_public  = p[i++] == 0xc3;
	bool link = ev_is_link_type(h->type, h->type_len);
	if (!raw_value(p, len, &i, false, zone, meta, &out->metadata,
	        &out->metadata_len)
	    || !raw_value(p, len, &i, link, zone, content, &out->content,
	        &out->content_len))
		return SL_EPROTO;
	/* the decoded path's strings end at a NUL byte (they are copied as
	 * C strings): such a record is the decoder's */
	if (memchr(h->tenant, 0, h->tenant_len)
	    || memchr(h->stream, 0, h->stream_len)
	    || memchr(h->type, 0, h->type_len)
	    || memchr(out->correlation_id, 0, out->correlation_len)
	    || memchr(out->causation_id, 0, out->causation_len))
		return SL_EPROTO;
	return SL_OK;
}

size_t
ev_wire_raw(const void *data, size_t len, uint64_t position, uint32_t n_extra,
    unsigned char *out)
{
	ev_raw r;
	if (ev_peek_raw(data, len, &r) != SL_OK)
		return 0;
	return ev_wire_peeked(&r, position, n_extra, NULL, out);
}

size_t
ev_wire_peeked(const ev_raw *rp, uint64_t position, uint32_t n_extra,
    const char *id_text, unsigned char *out)
{
	const ev_raw   r = *rp;
	const ev_head *h = &r.h;
	unsigned char *o = out;

	o = mpw_map(o, 13 + (size_t) n_extra);
	o = MPW_CSTR(o, "position");
	o = mpw_uint(o, position);
	o = MPW_CSTR(o, "tenant");
	o = mpw_str(o, h->tenant, h->tenant_len);
	o = MPW_CSTR(o, "stream");
	o = mpw_str(o, h->stream, h->stream_len);
	o = MPW_CSTR(o, "revision");
	o = mpw_uint(o, h->revision);
	o = MPW_CSTR(o, "id");
	o = mpw_hdr(o, 0xa0, 32, 0xd9, 0xda, 36);
	if (id_text != NULL)
		memcpy(o, id_text, 36); /* ev_decode wrote it already */
	else
		ev_uuid_text(
		    r.id, (char *) o); /* its NUL is overwritten next */
	o += 36;
	o    = MPW_CSTR(o, "type");
	o    = mpw_str(o, h->type, h->type_len);
	o    = MPW_CSTR(o, "generation");
	o    = mpw_uint(o, r.generation);
	o    = MPW_CSTR(o, "occurred");
	o    = mpw_int(o, r.occurred_ns);
	o    = MPW_CSTR(o, "correlation_id");
	o    = mpw_str(o, r.correlation_id, r.correlation_len);
	o    = MPW_CSTR(o, "causation_id");
	o    = mpw_str(o, r.causation_id, r.causation_len);
	o    = MPW_CSTR(o, "public");
	*o++ = r.is_public ? 0xc3 : 0xc2;
	o    = MPW_CSTR(o, "metadata");
	o    = mpw_raw(o, r.metadata, r.metadata_len);
	o    = MPW_CSTR(o, "content");
	o    = mpw_raw(o, r.content, r.content_len);
	return (size_t) (o - out);
}

int
ev_peek_raw(const void *data, size_t len, ev_raw *out)
{
	return peek_raw_as(data, len, out, NULL, NULL, NULL);
}

int
ev_pack_wire_raw(msgpack_packer *pk, const void *data, size_t len,
    uint64_t position, uint32_t n_extra)
{
	unsigned char  stack[4096];
	unsigned char *buf = stack;
	if (EV_WIRE_RAW_BOUND(len) > sizeof(stack)
	    && (buf = malloc(EV_WIRE_RAW_BOUND(len))) == NULL)
		return SL_ENOMEM;
	size_t n  = ev_wire_raw(data, len, position, n_extra, buf);
	int    rc = n > 0 ? pk->callback(pk->data, (const char *) buf, n) : 0;
	if (buf != stack)
		free(buf);
	return n == 0 ? SL_EPROTO : rc != 0 ? SL_ENOMEM : SL_OK;
}

/* Exact msgpack-encoded size of an object (as msgpack_pack_object writes
 * it), so the event size limit is the real size, not a guess. */
static size_t
ev_mp_size(const msgpack_object *o)
{
	size_t n;

	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
	case MSGPACK_OBJECT_BOOLEAN:
		return 1;
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		return o->via.u64 < 128        ? 1
		    : o->via.u64 < 256         ? 2
		    : o->via.u64 < 65536       ? 3
		    : o->via.u64 <= UINT32_MAX ? 5
		                               : 9;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		return o->via.i64 >= -32      ? 1
		    : o->via.i64 >= -128      ? 2
		    : o->via.i64 >= -32768    ? 3
		    : o->via.i64 >= INT32_MIN ? 5
		                              : 9;
	case MSGPACK_OBJECT_FLOAT32:
		return 5;
	case MSGPACK_OBJECT_FLOAT64:
		return 9;
	case MSGPACK_OBJECT_STR:
		n = o->via.str.size;
		return n + (n < 32 ? 1 : n < 256 ? 2 : n < 65536 ? 3 : 5);
	case MSGPACK_OBJECT_BIN:
		n = o->via.bin.size;
		return n + (n < 256 ? 2 : n < 65536 ? 3 : 5);
	case MSGPACK_OBJECT_EXT:
		n = o->via.ext.size;
		if (n == 1 || n == 2 || n == 4 || n == 8 || n == 16)
			return n + 2;
		return n + (n < 256 ? 3 : n < 65536 ? 4 : 6);
	case MSGPACK_OBJECT_ARRAY:
		n = o->via.array.size < 16      ? 1
		    : o->via.array.size < 65536 ? 3
		                                : 5;
		for (uint32_t i = 0; i < o->via.array.size; i++)
			n += ev_mp_size(&o->via.array.ptr[i]);
		return n;
	case MSGPACK_OBJECT_MAP:
		n = o->via.map.size < 16 ? 1 : o->via.map.size < 65536 ? 3 : 5;
		for (uint32_t i = 0; i < o->via.map.size; i++)
			n += ev_mp_size(&o->via.map.ptr[i].key)
			    + ev_mp_size(&o->via.map.ptr[i].val);
		return n;
	}
	return 9;
}

static int ev_fail(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
ev_fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return code;
}

/* An optional id-like string field: wrong type is SL_EPROTO, over
 * SL_MAX_ID_LEN is SL_ETOOBIG. Absent leaves *s untouched. */
static int
ev_opt_id(const msgpack_object *o, const char *key, const char **s,
    size_t *len, char *err, size_t errlen)
{
	const char *p;
	size_t      n;
	int         rc = mp_get_str(o, key, &p, &n);

	if (rc == SL_ENOTFOUND)
		return SL_OK;
	if (rc != SL_OK)
		return ev_fail(err, errlen, SL_EPROTO,
		    "field '%s' must be a string", key);
	if (n > SL_MAX_ID_LEN)
		return ev_fail(err, errlen, SL_ETOOBIG,
		    "field '%s' is %zu bytes (limit %d)", key, n,
		    SL_MAX_ID_LEN);
	*s   = p;
	*len = n;
	return SL_OK;
}

/*
 * Error codes: a missing required field or a bad value is SL_EINVAL, a field
 * of the wrong msgpack type (or a non-map event) is SL_EPROTO, a size over a
 * limit is SL_ETOOBIG. A defaulted correlation id is left NULL: ev_encode
 * stores the event id in its place, since ev_new has no room for its text.
 */
int
ev_parse_new(const msgpack_object *o, ev_new *out, char *err, size_t errlen)
{
	const msgpack_object *v;
	uint64_t              u;
	size_t                size;
	int                   rc;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	memset(out, 0, sizeof(*out));
	if (o == NULL || o->type != MSGPACK_OBJECT_MAP)
		return ev_fail(err, errlen, SL_EPROTO, "event must be a map");

	/* type: required, non-empty string */
	v = mp_get(o, "type");
	if (v == NULL)
		return ev_fail(
		    err, errlen, SL_EINVAL, "field 'type' is missing");
	if (v->type != MSGPACK_OBJECT_STR)
		return ev_fail(
		    err, errlen, SL_EPROTO, "field 'type' must be a string");
	if (v->via.str.size == 0)
		return ev_fail(
		    err, errlen, SL_EINVAL, "field 'type' must not be empty");
	if (v->via.str.size > SL_MAX_ID_LEN)
		return ev_fail(err, errlen, SL_ETOOBIG,
		    "field 'type' is %u bytes (limit %d)", v->via.str.size,
		    SL_MAX_ID_LEN);
	out->type     = v->via.str.ptr;
	out->type_len = v->via.str.size;

	/* content: required map; a link event's ("$>") may be its target,
	 * "<revision>@<stream>", as EventStoreDB's clients write links */
	v = mp_get(o, "content");
	if (v == NULL)
		return ev_fail(
		    err, errlen, SL_EINVAL, "field 'content' is missing");
	bool link = out->type_len == strlen(EV_LINK_TYPE)
	    && memcmp(out->type, EV_LINK_TYPE, out->type_len) == 0;
	if (link && v->type == MSGPACK_OBJECT_STR) {
		uint64_t    rev;
		const char *stream;
		size_t      sl;
		if (!ev_parse_link(v->via.str.ptr, v->via.str.size, &rev,
		        &stream, &sl)
		    || sl == 0 || sl > SL_MAX_ID_LEN
		    || memchr(stream, '\0', sl) != NULL)
			return ev_fail(err, errlen, SL_EINVAL,
			    "field 'content' of a link event (type '%s') is "
			    "\"<revision>@<stream>\" (a stream of 1..%d bytes)",
			    EV_LINK_TYPE, SL_MAX_ID_LEN);
	} else if (v->type != MSGPACK_OBJECT_MAP)
		return ev_fail(err, errlen, SL_EPROTO,
		    link ? "field 'content' must be a map, or the link's "
		           "\"<revision>@<stream>\""
		         : "field 'content' must be a map");
	out->content = v;

	/* metadata: optional map (nil = none) */
	v = mp_get(o, "metadata");
	if (v != NULL && v->type != MSGPACK_OBJECT_NIL) {
		if (v->type != MSGPACK_OBJECT_MAP)
			return ev_fail(err, errlen, SL_EPROTO,
			    "field 'metadata' must be a map");
		out->metadata = v;
	}

	/* generation: optional u32, from 1 */
	out->generation = 1;
	rc              = mp_get_u64(o, "generation", &u);
	if (rc == SL_EPROTO)
		return ev_fail(err, errlen, SL_EPROTO,
		    "field 'generation' must be a non-negative integer");
	if (rc == SL_OK) {
		if (u == 0 || u > UINT32_MAX)
			return ev_fail(err, errlen, SL_EINVAL,
			    "field 'generation' is %" PRIu64
			    " (must be 1 .. %" PRIu32 ")",
			    u, UINT32_MAX);
		out->generation = (uint32_t) u;
	}

	/* id: optional UUID text or 16-byte bin; generated otherwise */
	v = mp_get(o, "id");
	if (v == NULL || v->type == MSGPACK_OBJECT_NIL) {
		ev_uuid_generate(out->id);
	} else if (v->type == MSGPACK_OBJECT_STR) {
		if (ev_uuid_parse(v->via.str.ptr, v->via.str.size, out->id)
		    != SL_OK)
			return ev_fail(err, errlen, SL_EINVAL,
			    "field 'id' is not a UUID");
	} else if (v->type == MSGPACK_OBJECT_BIN && v->via.bin.size == 16) {
		memcpy(out->id, v->via.bin.ptr, 16);
	} else {
		return ev_fail(err, errlen, SL_EPROTO,
		    "field 'id' must be a UUID string");
	}

	/* occurred: optional i64 ns since the epoch; default now */
	rc = mp_get_i64(o, "occurred", &out->occurred_ns);
	if (rc == SL_EPROTO)
		return ev_fail(err, errlen, SL_EPROTO,
		    "field 'occurred' must be an integer (ns since the "
		    "epoch)");
	if (rc == SL_ENOTFOUND)
		out->occurred_ns = ev_now_ns();

	rc = ev_opt_id(o, "correlation_id", &out->correlation_id,
	    &out->correlation_len, err, errlen);
	if (rc != SL_OK)
		return rc;
	out->causation_id  = "";
	out->causation_len = 0;
	rc                 = ev_opt_id(o, "causation_id", &out->causation_id,
	                    &out->causation_len, err, errlen);
	if (rc != SL_OK)
		return rc;

	rc = mp_get_bool(o, "public", &out->is_public);
	if (rc == SL_EPROTO)
		return ev_fail(err, errlen, SL_EPROTO,
		    "field 'public' must be a boolean");

	/* stored as is, but read back NUL-terminated: "A\0B" would be
	 * read as "A" */
	const char *nul = ev_new_nul_field(out);
	if (nul != NULL)
		return ev_fail(err, errlen, SL_EINVAL,
		    "field '%s' contains a NUL byte", nul);

	size = ev_mp_size(out->content)
	    + (out->metadata != NULL ? ev_mp_size(out->metadata) : 1);
	if (size > SL_MAX_EVENT_BYTES)
		return ev_fail(err, errlen, SL_ETOOBIG,
		    "content and metadata take %zu bytes (limit %u)", size,
		    SL_MAX_EVENT_BYTES);
	return SL_OK;
}

/*
 * Event ids: version 4 UUIDs from a generator per thread (xoshiro256**),
 * seeded with 256 bits from getrandom when a thread first needs one and
 * again in a forked child (which would otherwise repeat its parent's
 * ids). libuuid's uuid_generate read the kernel's random source for every
 * id: 1.7 us each on the writer's path (issue 17). The ids need to be
 * unique, not secret: a client that cares picks its own.
 */
typedef struct idgen {
	uint64_t s[4];
	uint64_t epoch; /* the fork epoch it was seeded in; 0: not yet */
} idgen;

static _Thread_local idgen  gen;
static uint64_t             fork_epoch = 1; /* bumped in a forked child */
static pthread_once_t       fork_once  = PTHREAD_ONCE_INIT;

static void
after_fork_child(void)
{
	__atomic_add_fetch(&fork_epoch, 1, __ATOMIC_RELAXED);
}

static void
watch_forks(void)
{
	pthread_atfork(NULL, NULL, after_fork_child);
}

static inline uint64_t
rotl64(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static uint64_t
idgen_next(idgen *g)
{
	uint64_t *s = g->s;
	uint64_t  r = rotl64(s[1] * 5, 7) * 9;
	uint64_t  t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl64(s[3], 45);
	return r;
}

static void
idgen_seed(idgen *g, uint64_t epoch)
{
	uint8_t buf[sizeof(g->s)];
	size_t  got = 0;
	while (got < sizeof(buf)) {
		ssize_t n = getrandom(buf + got, sizeof(buf) - got, 0);
		if (n > 0)
			got += (size_t) n;
		else if (errno != EINTR)
			break;
	}
	if (got < sizeof(buf)) /* no getrandom: libuuid's source */
		for (size_t i = 0; i < sizeof(buf); i += 16)
			uuid_generate(buf + i);
	memcpy(g->s, buf, sizeof(buf));
	if ((g->s[0] | g->s[1] | g->s[2] | g->s[3]) == 0)
		g->s[0] = 1; /* the one state it must not have */
	g->epoch = epoch;
}

void
ev_uuid_generate(uint8_t id[16])
{
	pthread_once(&fork_once, watch_forks);
	uint64_t epoch = __atomic_load_n(&fork_epoch, __ATOMIC_RELAXED);
	if (gen.epoch != epoch)
		idgen_seed(&gen, epoch);
	uint64_t a = idgen_next(&gen), b = idgen_next(&gen);
	memcpy(id, &a, 8);
	memcpy(id + 8, &b, 8);
	id[6] = (uint8_t) ((id[6] & 0x0f) | 0x40); /* version 4 */
	id[8] = (uint8_t) ((id[8] & 0x3f) | 0x80); /* RFC 4122 variant */
}

void
ev_uuid_text(const uint8_t id[16], char out[37])
{
	/* uuid_unparse_lower's text, two digits per look-up (every event
	 * decoded gets its id's text) */
	static const char pairs[] =
	    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
	    "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
	    "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f"
	    "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"
	    "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
	    "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
	    "c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
	    "e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";
	char *o = out;
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			*o++ = '-';
		memcpy(o, pairs + 2 * id[i], 2);
		o += 2;
	}
	*o = '\0';
}

int
ev_uuid_parse(const char *text, size_t len, uint8_t id[16])
{
	char buf[37];

	/* uuid_parse wants a NUL-terminated string of exactly 36 chars. */
	if (text == NULL || len != 36)
		return SL_EINVAL;
	memcpy(buf, text, 36);
	buf[36] = '\0';
	if (memchr(buf, '\0', 36) != NULL || uuid_parse(buf, id) != 0)
		return SL_EINVAL;
	return SL_OK;
}

bool
ev_uuid_canon(const char *text, size_t len, char out[37])
{
	uint8_t id[16];
	char    canon[37];
	if (ev_uuid_parse(text, len, id) != SL_OK)
		return false;
	ev_uuid_text(id, out != NULL ? out : canon);
	return true;
}

int64_t
ev_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

bool
ev_parse_link(const char *link, size_t len, uint64_t *rev,
    const char **stream, size_t *stream_len)
{
	const char *at;
	uint64_t    n = 0;
	size_t      digits;

	if (link == NULL || len == 0)
		return false;
	at = memchr(link, '@', len);
	if (at == NULL)
		return false;
	digits = (size_t) (at - link);
	if (digits == 0 || (digits > 1 && link[0] == '0'))
		return false;
	for (size_t i = 0; i < digits; i++) {
		unsigned d = (unsigned char) link[i] - '0';

		if (d > 9 || n > (UINT64_MAX - 2 - d) / 10)
			return false;
		n = n * 10 + d;
	}
	*rev        = n;
	*stream     = at + 1;
	*stream_len = len - digits - 1;
	return true;
}
