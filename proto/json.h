/*
 * JSON at the edges: the CLI, the plugin descriptor's initial state and the
 * client library show msgpack content as JSON (jansson).
 */
#ifndef SL_JSON_H
#define SL_JSON_H

#include <stddef.h>

#include <jansson.h>
#include <msgpack.h>

/**
 * Parse JSON text and pack it into pk (objects -> maps, arrays -> arrays,
 * integers -> ints, reals -> float64, strings, true/false/null).
 * @param require_object  if nonzero, the top level must be an object
 * @return SL_OK, or SL_EINVAL with a message in err (line and column).
 */
int json_text_to_mp(const char *text, int require_object, msgpack_packer *pk,
    char *err, size_t errlen);
/** Pack a jansson value. @return SL_OK or SL_EINVAL. */
int json_to_mp(const json_t *j, msgpack_packer *pk);
/**
 * Convert a msgpack object to a new jansson value (caller decrefs). Binary
 * becomes a base16 string, extension types become null; map keys that are
 * not strings are rendered as their JSON text. @return NULL on OOM.
 */
json_t *mp_to_json(const msgpack_object *o);
/** msgpack object to compact JSON text (malloc'ed, caller frees). */
char *mp_to_json_text(const msgpack_object *o);
/* The same through jansson's tree (what mp_to_json_text must equal; for
 * tests). */
char *mp_to_json_text_jansson(const msgpack_object *o);

#endif
