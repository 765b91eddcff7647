/*
 * Msgpack written straight into a buffer the caller sized, byte for byte
 * as msgpack-c's packer writes it (smallest forms, str8 for strings),
 * without a call per value: what the processor packs states with
 * (runtime/plugins/doc.c) and the remote path packs events with
 * (proto/event.c, ev_wire_raw). Nothing here checks room: the caller
 * bounds the size first.
 */
#ifndef SL_MPWRITE_H
#define SL_MPWRITE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* An n-byte big-endian value. */
static inline unsigned char *
mpw_be(unsigned char *o, uint64_t v, int n)
{
	for (int i = n - 1; i >= 0; i--) {
		o[i] = (unsigned char) v;
		v >>= 8;
	}
	return o + n;
}

/* A type byte and an n-byte big-endian value. */
static inline unsigned char *
mpw_tv(unsigned char *o, uint8_t type, uint64_t v, int n)
{
	*o++ = type;
	return mpw_be(o, v, n);
}

/* A str, map or array header as msgpack-c writes it (fix form, then the
 * 8 (str only), 16 and 32-bit forms). */
static inline unsigned char *
mpw_hdr(unsigned char *o, uint8_t fix, size_t fixmax, uint8_t b8, uint8_t b16,
    size_t n)
{
	if (n < fixmax) {
		*o++ = (unsigned char) (fix | n);
		return o;
	}
	if (b8 != 0 && n < 256)
		return mpw_tv(o, b8, n, 1);
	if (n < 65536)
		return mpw_tv(o, b16, n, 2);
	return mpw_tv(o, (uint8_t) (b16 + 1), n, 4);
}

static inline unsigned char *
mpw_map(unsigned char *o, size_t n)
{
	return mpw_hdr(o, 0x80, 16, 0, 0xde, n);
}

static inline unsigned char *
mpw_array(unsigned char *o, size_t n)
{
	return mpw_hdr(o, 0x90, 16, 0, 0xdc, n);
}

/* An integer in the smallest form, as msgpack_pack_int64 chooses it. */
static inline unsigned char *
mpw_int(unsigned char *o, int64_t d)
{
	if (d < -(1LL << 5)) {
		if (d < -(1LL << 15))
			return d < -(1LL << 31)
			    ? mpw_tv(o, 0xd3, (uint64_t) d, 8)
			    : mpw_tv(o, 0xd2, (uint64_t) d, 4);
		return d < -(1LL << 7) ? mpw_tv(o, 0xd1, (uint64_t) d, 2)
		                       : mpw_tv(o, 0xd0, (uint64_t) d, 1);
	}
	if (d < (1LL << 7)) {
		*o++ = (unsigned char) d; /* fixints, both signs */
		return o;
	}
	if (d < (1LL << 16))
		return d < (1LL << 8) ? mpw_tv(o, 0xcc, (uint64_t) d, 1)
		                      : mpw_tv(o, 0xcd, (uint64_t) d, 2);
	return d < (1LL << 32) ? mpw_tv(o, 0xce, (uint64_t) d, 4)
	                       : mpw_tv(o, 0xcf, (uint64_t) d, 8);
}

/* An unsigned integer in the smallest form (msgpack_pack_uint64). */
static inline unsigned char *
mpw_uint(unsigned char *o, uint64_t v)
{
	if (v < 128) {
		*o++ = (unsigned char) v;
		return o;
	}
	if (v < (1ULL << 16))
		return v < 256 ? mpw_tv(o, 0xcc, v, 1) : mpw_tv(o, 0xcd, v, 2);
	return v < (1ULL << 32) ? mpw_tv(o, 0xce, v, 4)
	                        : mpw_tv(o, 0xcf, v, 8);
}

static inline unsigned char *
mpw_str(unsigned char *o, const char *p, size_t len)
{
	o = mpw_hdr(o, 0xa0, 32, 0xd9, 0xda, len);
	memcpy(o, p, len);
	return o + len;
}

/* A string known at compile time (a map key). */
#define MPW_CSTR(o, s) mpw_str((o), (s), sizeof(s) - 1)

/* Bytes as they are (an already packed value). */
static inline unsigned char *
mpw_raw(unsigned char *o, const void *p, size_t len)
{
	memcpy(o, p, len);
	return o + len;
}

/* The most bytes a header (or an integer) takes. */
#define MPW_HDR_MAX 9

#endif
