/*
 * Raw msgpack, read without msgpack-c: one bounded checker that every
 * message from outside (API requests, remote processors' answers) passes
 * before msgpack-c unpacks it, and a look-up of one top-level key that the
 * API's lane classifier runs on NNG's receive thread.
 */
#ifndef SL_MPRAW_H
#define SL_MPRAW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack/object.h>
#include <msgpack/zone.h>

/**
 * Check that p[0..len) holds exactly one msgpack object: every length fits
 * in what is left, every container count is coverable by the remaining
 * bytes (an element takes at least one), nesting stays within max_depth and
 * nothing trails the object. msgpack-c would otherwise allocate what a
 * lying header claims before finding the message short.
 * @param what  names the object in a trailing-bytes message ("request map")
 * @param err   receives why on failure ("truncated msgpack at byte 12")
 * @return true if the bytes pass.
 */
bool mpraw_check(const void *p, size_t len, int max_depth, const char *what,
    char *err, size_t errlen);

/**
 * Find key in the top-level map of p[0..len) without unpacking it: the
 * first key that equals it. Values are skipped by walking their headers,
 * at most budget headers in all (values of other keys first in the map
 * cost their size).
 * @param val, val_len  receive the raw value (borrowed from p) when found
 * @return 1 found; 0 not in the map; -1 not a map, malformed or over the
 * budget (the caller decides what an unknown means).
 */
int mpraw_map_find(const void *p, size_t len, const char *key, size_t budget,
    const unsigned char **val, size_t *val_len);

/**
 * Step over the one value at p[*at] (nested containers too, without
 * recursion): *at moves past it. @return false if it is truncated or holds
 * the invalid byte 0xc1 (*at unchanged).
 */
bool mpraw_skip(const void *p, size_t len, size_t *at);

/** What mpraw_header found. */
enum { MPRAW_SCALAR, MPRAW_ARRAY, MPRAW_MAP };

/**
 * The header of the value at p[*at], *at moved past it: for a map or an
 * array, *n its elements (a map's pairs count twice); for anything else,
 * *body the bytes after the header (a string's, a number's, bin's; ext's
 * type byte and data), which the caller checks are there.
 * @return MPRAW_SCALAR, MPRAW_ARRAY or MPRAW_MAP; -1 when the header is
 * truncated or the byte is 0xc1 (*at unchanged).
 */
int mpraw_header(
    const void *p, size_t len, size_t *at, uint64_t *n, uint64_t *body);

/**
 * Read the header of a map at p[*at]: *n its pairs; *at moves past the
 * header. @return false if the value there is no map, its header is
 * truncated, or its pairs cannot fit in the bytes left (*at unchanged).
 */
bool mpraw_map(const void *p, size_t len, size_t *at, uint64_t *n);
/** mpraw_map for an array: *n its elements. */
bool mpraw_array(const void *p, size_t len, size_t *at, uint64_t *n);

/** The big-endian unsigned integer in p[0..n) (n <= 8). */
uint64_t mpraw_be(const unsigned char *p, size_t n);

/** A raw value as a string (borrowed). @return false if it is none. */
bool mpraw_str(const unsigned char *v, size_t len, const char **s, size_t *n);
/** A raw value as a boolean. @return false if it is none. */
bool mpraw_bool(const unsigned char *v, size_t len, bool *out);
/** A raw value as an unsigned integer. @return false if it is none. */
bool mpraw_uint(const unsigned char *v, size_t len, uint64_t *out);

/** The deepest nesting mpraw_object takes (the event's own array and a
 * map or array in it counted, msgpack-c takes 32). */
#define MPRAW_OBJECT_DEPTH 16

/**
 * The one msgpack value p[0..len) as msgpack-c's msgpack_unpack makes it,
 * without its state machine (what the processors do for every event):
 * the same object types, strings, bin and ext pointing into p, arrays and
 * maps allocated in zone. Takes only what it can vouch for: a value
 * nested deeper than MPRAW_OBJECT_DEPTH, with a count its bytes cannot
 * hold, truncated, holding 0xc1 or followed by more bytes is refused
 * (the caller then asks msgpack-c, which says why).
 * @return true and *out on success; false otherwise (zone may hold a
 * part of the object).
 */
bool mpraw_object(
    const void *p, size_t len, msgpack_zone *zone, msgpack_object *out);
/** mpraw_object for the value at p[*at] (more may follow): *at moves
 * past it. @return as mpraw_object (*at unchanged on false). */
bool mpraw_object_at(const void *p, size_t len, size_t *at,
    msgpack_zone *zone, msgpack_object *out);

#endif
