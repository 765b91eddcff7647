/*
 * Paths into documents (ABI 1.3): the text a plugin passes to the state and
 * event document calls, parsed once into segments before anything is
 * looked up or changed. The syntax is in sluice/plugin.h ("Paths").
 */
#ifndef SL_DOCPATH_H
#define SL_DOCPATH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sluice/plugin.h>

/** One step of a path: a map key, or an array index (negative: from the
 * end, -1 the last item). */
typedef struct dpath_seg {
	bool        is_index;
	int64_t     index;
	const char *key; /* into dpath.buf, unescaped; not NUL-terminated */
	size_t      klen;
} dpath_seg;

/** A parsed path: n segments; n == 0 names the whole document. */
typedef struct dpath {
	size_t    n;
	dpath_seg seg[SL_DOC_MAX_DEPTH];
	char      buf[SL_PATH_MAX]; /* the keys, unescaped */
} dpath;

/**
 * Parse text (NULL or "" is the whole document).
 * @return SL_OK; SL_EINVAL (bad syntax: an empty key, an unclosed or
 *         empty bracket, an index that is not a decimal integer, a bad
 *         escape); SL_ETOOBIG (longer than SL_PATH_MAX bytes, or more than
 *         SL_DOC_MAX_DEPTH segments).
 */
int dpath_parse(const char *text, dpath *out);

/**
 * The item an index names in an array of n items: index, or n + index
 * when negative. @return false when it names none.
 */
bool dpath_item(int64_t index, size_t n, size_t *out);

#endif
