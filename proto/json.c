/*
 * JSON at the edges: the CLI, plugin descriptors' initial states and the
 * client library show and accept event content and read model state as JSON
 * while the log and the wire keep msgpack. Conversion both ways (jansson).
 */
#include "json.h"

#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/errors.h>

int
json_to_mp(const json_t *j, msgpack_packer *pk)
{
	switch (json_typeof(j)) {
	case JSON_OBJECT: {
		const char *key;
		json_t     *val;
		void       *it;

		msgpack_pack_map(pk, json_object_size(j));
		/* Iterate by hand: json_object_foreach wants a non-const. */
		for (it = json_object_iter((json_t *) j); it != NULL;
		     it = json_object_iter_next((json_t *) j, it)) {
			size_t klen;

			key  = json_object_iter_key(it);
			klen = json_object_iter_key_len(it);
			val  = json_object_iter_value(it);
			msgpack_pack_str(pk, klen);
			msgpack_pack_str_body(pk, key, klen);
			if (json_to_mp(val, pk) != SL_OK)
				return SL_EINVAL;
		}
		return SL_OK;
	}
	case JSON_ARRAY: {
		size_t n = json_array_size(j);

		msgpack_pack_array(pk, n);
		for (size_t i = 0; i < n; i++)
			if (json_to_mp(json_array_get(j, i), pk) != SL_OK)
				return SL_EINVAL;
		return SL_OK;
	}
	case JSON_STRING: {
		size_t n = json_string_length(j);

		msgpack_pack_str(pk, n);
		msgpack_pack_str_body(pk, json_string_value(j), n);
		return SL_OK;
	}
	case JSON_INTEGER:
		msgpack_pack_int64(pk, (int64_t) json_integer_value(j));
		return SL_OK;
	case JSON_REAL:
		msgpack_pack_double(pk, json_real_value(j));
		return SL_OK;
	case JSON_TRUE:
		msgpack_pack_true(pk);
		return SL_OK;
	case JSON_FALSE:
		msgpack_pack_false(pk);
		return SL_OK;
	case JSON_NULL:
		msgpack_pack_nil(pk);
		return SL_OK;
	}
	return SL_EINVAL;
}

int
json_text_to_mp(const char *text, int require_object, msgpack_packer *pk,
    char *err, size_t errlen)
{
	json_error_t je;
	json_t      *j;
	int          rc;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (text == NULL) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "no JSON text");
		return SL_EINVAL;
	}
	/* JSON_DECODE_ANY so that "3" or "\"x\"" are accepted as values and
	 * the object rule below gives its own, clearer message. */
	j = json_loads(text, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
	if (j == NULL) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen,
			    "invalid JSON at line %d, column %d: %s", je.line,
			    je.column, je.text);
		return SL_EINVAL;
	}
	if (require_object && !json_is_object(j)) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen,
			    "JSON value must be an object at line 1, column "
			    "1");
		json_decref(j);
		return SL_EINVAL;
	}
	rc = json_to_mp(j, pk);
	json_decref(j);
	if (rc != SL_OK && err != NULL && errlen > 0)
		snprintf(err, errlen, "JSON value cannot be converted");
	return rc;
}

/* True if s[0..n) is valid UTF-8 (jansson refuses anything else). */
static bool
json_utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		unsigned char c = s[i];
		size_t        more;
		uint32_t      cp;

		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xE0) == 0xC0) {
			more = 1;
			cp   = c & 0x1F;
		} else if ((c & 0xF0) == 0xE0) {
			more = 2;
			cp   = c & 0x0F;
		} else if ((c & 0xF8) == 0xF0) {
			more = 3;
			cp   = c & 0x07;
		} else {
			return false;
		}
		if (n - i - 1 < more)
			return false;
		for (size_t k = 1; k <= more; k++) {
			if ((s[i + k] & 0xC0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3F);
		}
		if ((more == 1 && cp < 0x80) || (more == 2 && cp < 0x800)
		    || (more == 3 && cp < 0x10000) || cp > 0x10FFFF
		    || (cp >= 0xD800 && cp <= 0xDFFF))
			return false;
		i += more + 1;
	}
	return true;
}

/*
 * A JSON string for msgpack str bytes. Bytes that are not UTF-8 cannot be
 * shown as JSON text, so each byte >= 0x80 then becomes U+FFFD: lossy, but
 * this is only for display at the edges.
 */
static json_t *
json_from_bytes(const char *p, size_t n)
{
	json_t *j;
	char   *tmp;
	size_t  o = 0;

	if (n == 0) /* msgpack-c leaves an empty string's pointer NULL */
		return json_string("");
	if (json_utf8_valid((const unsigned char *) p, n))
		return json_stringn(p, n);
	tmp = malloc(n * 3 + 1);
	if (tmp == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char) p[i];

		if (c < 0x80) {
			tmp[o++] = (char) c;
		} else {
			tmp[o++] = (char) 0xEF;
			tmp[o++] = (char) 0xBF;
			tmp[o++] = (char) 0xBD;
		}
	}
	j = json_stringn(tmp, o);
	free(tmp);
	return j;
}

static json_t *
json_from_bin(const char *p, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	json_t           *j;
	char             *tmp = malloc(n * 2 + 1);

	if (tmp == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		tmp[2 * i]     = hex[((unsigned char) p[i]) >> 4];
		tmp[2 * i + 1] = hex[((unsigned char) p[i]) & 0xF];
	}
	j = json_stringn(tmp, n * 2);
	free(tmp);
	return j;
}

static json_t *
json_from_double(double d)
{
	/* JSON has no NaN or infinity; show them as null. */
	if (!isfinite(d))
		return json_null();
	return json_real(d);
}

json_t *
mp_to_json(const msgpack_object *o)
{
	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		return json_null();
	case MSGPACK_OBJECT_BOOLEAN:
		return json_boolean(o->via.boolean);
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		/* jansson integers are signed 64-bit: larger ones lose
		 * precision as a real rather than wrap around. */
		if (o->via.u64 > (uint64_t) INT64_MAX)
			return json_real((double) o->via.u64);
		return json_integer((json_int_t) o->via.u64);
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		return json_integer((json_int_t) o->via.i64);
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		return json_from_double(o->via.f64);
	case MSGPACK_OBJECT_STR:
		return json_from_bytes(o->via.str.ptr, o->via.str.size);
	case MSGPACK_OBJECT_BIN:
		return json_from_bin(o->via.bin.ptr, o->via.bin.size);
	case MSGPACK_OBJECT_EXT:
		return json_null();
	case MSGPACK_OBJECT_ARRAY: {
		json_t *a = json_array();

		if (a == NULL)
			return NULL;
		for (uint32_t i = 0; i < o->via.array.size; i++) {
			json_t *v = mp_to_json(&o->via.array.ptr[i]);

			if (v == NULL || json_array_append_new(a, v) != 0) {
				json_decref(a);
				return NULL;
			}
		}
		return a;
	}
	case MSGPACK_OBJECT_MAP: {
		json_t *m = json_object();

		if (m == NULL)
			return NULL;
		for (uint32_t i = 0; i < o->via.map.size; i++) {
			const msgpack_object *k = &o->via.map.ptr[i].key;
			json_t *v = mp_to_json(&o->via.map.ptr[i].val);
			int     rc;

			if (v == NULL) {
				json_decref(m);
				return NULL;
			}
			if (k->type == MSGPACK_OBJECT_STR
			    && json_utf8_valid(
			        (const unsigned char *) k->via.str.ptr,
			        k->via.str.size)) {
				rc = json_object_setn_new(m,
				    k->via.str.size > 0 ? k->via.str.ptr : "",
				    k->via.str.size, v);
			} else {
				/* Non-string keys: their JSON text is the key.
				 */
				char *ktext = mp_to_json_text(k);

				if (ktext == NULL) {
					json_decref(v);
					json_decref(m);
					return NULL;
				}
				rc = json_object_set_new(m, ktext, v);
				free(ktext);
			}
			if (rc != 0) {
				json_decref(m);
				return NULL;
			}
		}
		return m;
	}
	}
	return json_null();
}

/* Through jansson's tree: the reference for what the direct writer
 * below produces, and its fallback. */
static char *
mp_to_json_text_tree(const msgpack_object *o)
{
	json_t *j = mp_to_json(o);
	char   *s;

	if (j == NULL)
		return NULL;
	s = json_dumps(
	    j, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
	json_decref(j);
	return s;
}

/*
 * The direct writer: msgpack to JSON text without building jansson's tree
 * (issue 17: a get_all page's states spent most of the client's time
 * there), byte for byte what mp_to_json_text_tree writes. Maps it cannot
 * write the same way (a key that is not a UTF-8 string, a key twice:
 * jansson keeps the first place and the last value) make it give up:
 * jt_write returns false and the tree writes the whole.
 */
typedef struct jtext {
	char  *p;
	size_t n, cap;
	bool   oom;
} jtext;

static void
jt_put(jtext *t, const char *s, size_t n)
{
	if (t->oom || n == 0)
		return;
	if (t->n + n + 1 > t->cap) {
		size_t cap = t->cap != 0 ? t->cap * 2 : 256;
		while (cap < t->n + n + 1)
			cap *= 2;
		char *np = realloc(t->p, cap);
		if (np == NULL) {
			t->oom = true;
			return;
		}
		t->p   = np;
		t->cap = cap;
	}
	memcpy(t->p + t->n, s, n);
	t->n += n;
}

/* A JSON string of n UTF-8 bytes, escaped as jansson escapes them (no
 * ASCII-only output, '/' as it is). */
static void
jt_string(jtext *t, const char *p, size_t n)
{
	size_t run = 0;
	if (n == 0) { /* (msgpack-c's pointer may be NULL) */
		jt_put(t, "\"\"", 2);
		return;
	}
	jt_put(t, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char) p[i];
		const char   *esc = NULL;
		char          u[8];
		switch (c) {
		case '"': esc = "\\\""; break;
		case '\\': esc = "\\\\"; break;
		case '\b': esc = "\\b"; break;
		case '\f': esc = "\\f"; break;
		case '\n': esc = "\\n"; break;
		case '\r': esc = "\\r"; break;
		case '\t': esc = "\\t"; break;
		default:
			if (c < 0x20) {
				snprintf(u, sizeof(u), "\\u%04X", c);
				esc = u;
			}
		}
		if (esc == NULL) {
			run++;
			continue;
		}
		jt_put(t, p + i - run, run);
		run = 0;
		jt_put(t, esc, strlen(esc));
	}
	jt_put(t, p + n - run, run);
	jt_put(t, "\"", 1);
}

/* A real as jansson writes it: %.17g, with ".0" when it would read back
 * as an integer, and no '+' or leading zeros in the exponent. */
static void
jt_real(jtext *t, double d)
{
	char b[64];
	int  n = snprintf(b, sizeof(b) - 3, "%.17g", d);
	if (n < 0 || (size_t) n >= sizeof(b) - 3) {
		t->oom = true;
		return;
	}
	if (strchr(b, '.') == NULL && strchr(b, 'e') == NULL) {
		b[n++] = '.';
		b[n++] = '0';
		b[n]   = '\0';
	}
	char *e = strchr(b, 'e');
	if (e != NULL) {
		char *start = e + 1, *end = e + 2;
		if (*start == '-')
			start++;
		while (*end == '0')
			end++;
		if (end != start) {
			memmove(start, end, strlen(end) + 1);
			n = (int) strlen(b);
		}
	}
	jt_put(t, b, (size_t) n);
}

static bool
jt_write(jtext *t, const msgpack_object *o, int depth)
{
	char b[32];
	if (depth > 64)
		return false; /* the tree decides */
	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
	case MSGPACK_OBJECT_EXT:
		jt_put(t, "null", 4);
		return true;
	case MSGPACK_OBJECT_BOOLEAN:
		if (o->via.boolean)
			jt_put(t, "true", 4);
		else
			jt_put(t, "false", 5);
		return true;
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		if (o->via.u64 > (uint64_t) INT64_MAX) {
			jt_real(t, (double) o->via.u64);
			return true;
		}
		jt_put(t, b,
		    (size_t) snprintf(b, sizeof(b), "%" PRIu64, o->via.u64));
		return true;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		jt_put(t, b,
		    (size_t) snprintf(b, sizeof(b), "%" PRId64, o->via.i64));
		return true;
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		if (!isfinite(o->via.f64))
			jt_put(t, "null", 4);
		else
			jt_real(t, o->via.f64);
		return true;
	case MSGPACK_OBJECT_STR:
		if (!json_utf8_valid((const unsigned char *) o->via.str.ptr,
		        o->via.str.size))
			return false; /* shown lossy: the tree does that */
		jt_string(t, o->via.str.ptr, o->via.str.size);
		return true;
	case MSGPACK_OBJECT_BIN: {
		static const char hex[] = "0123456789abcdef";
		jt_put(t, "\"", 1);
		for (uint32_t i = 0; i < o->via.bin.size; i++) {
			unsigned char c = (unsigned char) o->via.bin.ptr[i];
			char          h[2] = { hex[c >> 4], hex[c & 0xF] };
			jt_put(t, h, 2);
		}
		jt_put(t, "\"", 1);
		return true;
	}
	case MSGPACK_OBJECT_ARRAY:
		jt_put(t, "[", 1);
		for (uint32_t i = 0; i < o->via.array.size; i++) {
			if (i > 0)
				jt_put(t, ",", 1);
			if (!jt_write(t, &o->via.array.ptr[i], depth + 1))
				return false;
		}
		jt_put(t, "]", 1);
		return true;
	case MSGPACK_OBJECT_MAP: {
		const msgpack_object_kv *kv = o->via.map.ptr;
		uint32_t                 n  = o->via.map.size;
		if (n > 64)
			return false; /* keys twice are looked for pairwise */
		jt_put(t, "{", 1);
		for (uint32_t i = 0; i < n; i++) {
			const msgpack_object *k = &kv[i].key;
			if (k->type != MSGPACK_OBJECT_STR
			    || !json_utf8_valid(
			        (const unsigned char *) k->via.str.ptr,
			        k->via.str.size))
				return false;
			for (uint32_t j = 0; j < i; j++)
				if (kv[j].key.via.str.size == k->via.str.size
				    && (k->via.str.size == 0
				        || memcmp(kv[j].key.via.str.ptr,
				               k->via.str.ptr, k->via.str.size)
				            == 0))
					return false;
			if (i > 0)
				jt_put(t, ",", 1);
			jt_string(t, k->via.str.ptr, k->via.str.size);
			jt_put(t, ":", 1);
			if (!jt_write(t, &kv[i].val, depth + 1))
				return false;
		}
		jt_put(t, "}", 1);
		return true;
	}
	}
	jt_put(t, "null", 4);
	return true;
}

char *
mp_to_json_text(const msgpack_object *o)
{
	jtext t = { 0 };
	if (jt_write(&t, o, 0) && !t.oom) {
		t.p[t.n] = '\0';
		return t.p;
	}
	free(t.p);
	return mp_to_json_text_tree(o);
}

char *
mp_to_json_text_jansson(const msgpack_object *o)
{
	return mp_to_json_text_tree(o);
}
