/*
 * FNV-1a 64: the runtime's one non-cryptographic hash (definition hashes,
 * which are stored with checkpoints and must never change; failing units'
 * keys; the emitter's state cache).
 */
#ifndef SL_FNV_H
#define SL_FNV_H

#include <stddef.h>
#include <stdint.h>

#define FNV1A_OFFSET 0xcbf29ce484222325ULL

/** Continue the hash h over n bytes at p (start with FNV1A_OFFSET). */
static inline uint64_t
fnv1a(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

#endif
