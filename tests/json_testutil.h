/*
 * Reading the daemon's JSON (status, plugins) in the tests that run it as
 * a process: a field as a string ("" when absent or not a string), as an
 * integer (-1 when absent or not an integer), and an object as compact
 * text with sorted keys for a failure message.
 */
#ifndef SL_JSON_TESTUTIL_H
#define SL_JSON_TESTUTIL_H

#include <stdlib.h>

#include <jansson.h>

__attribute__((unused)) static const char *
jstr(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	return json_is_string(v) ? json_string_value(v) : "";
}

__attribute__((unused)) static long long
jint(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	return json_is_integer(v) ? (long long) json_integer_value(v) : -1;
}

/* Valid until the next call. */
__attribute__((unused)) static char *
dump(json_t *j)
{
	static char *last;
	free(last);
	last = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	return last != NULL ? last : "(null)";
}

#endif
