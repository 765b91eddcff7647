/*
 * Big-endian integers in stored keys and records: keys sort by number, and
 * the bytes are the same on every machine.
 */
#ifndef SL_BYTES_H
#define SL_BYTES_H

#include <stddef.h>
#include <stdint.h>

static inline void
put_be(unsigned char *p, uint64_t v, size_t n)
{
	for (size_t i = n; i-- > 0;) {
		p[i] = (unsigned char) (v & 0xff);
		v >>= 8;
	}
}

static inline uint64_t
get_be(const unsigned char *p, size_t n)
{
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++)
		v = (v << 8) | p[i];
	return v;
}

static inline void
put_be64(unsigned char *p, uint64_t v)
{
	put_be(p, v, 8);
}

static inline uint64_t
get_be64(const unsigned char *p)
{
	return get_be(p, 8);
}

#endif
