/*
 * get_all in the client library: one walk over the reply in place (no
 * msgpack-c objects for the page) finds each item's key and state (each
 * state inside a bin, state_bytes, so the walk steps over it by its
 * length); the view hands those out as they lie in the reply, the msgpack
 * and JSON variants copy or convert them from there.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>
#include <nng/nng.h>

#include <sluice/client.h>

#include "client_internal.h"
#include "json.h"
#include "mp.h"
#include "mpraw.h"

/* A raw map key equal to the literal lit (a fixstr, as the daemon packs
 * it, compared as bytes; any other string form through mpraw_str). */
static bool
key_is(const unsigned char *p, size_t len, const char *lit)
{
	const char *s;
	size_t      n = strlen(lit);
	if (len == n + 1 && p[0] == (0xa0 | n))
		return memcmp(p + 1, lit, n) == 0;
	return mpraw_str(p, len, &s, &len) && len == n
	    && memcmp(s, lit, n) == 0;
}

/* A msgpack map header byte. */
static bool
is_map(unsigned char b)
{
	return (b >= 0x80 && b <= 0x8f) || b == 0xde || b == 0xdf;
}

/*
 * An item's state: a map as it is, or (state_bytes) a bin holding the
 * map's bytes, whose end is its length: only its first byte is looked at,
 * the inside is the stored state as the daemon read it.
 */
static bool
item_state(const unsigned char *v, size_t len, sl_read_model_view *m)
{
	size_t h;

	if (is_map(v[0])) {
		m->state     = v;
		m->state_len = len;
		return true;
	}
	h = v[0] == 0xc4 ? 2 : v[0] == 0xc5 ? 3 : v[0] == 0xc6 ? 5 : 0;
	if (h == 0 || len <= h || !is_map(v[h]))
		return false;
	m->state     = v + h;
	m->state_len = len - h;
	return true;
}

/*
 * The items array at p[*at]: each {"key": str, "state": map, ...} (other
 * fields, such as "result", stepped over). *items is malloc'ed (n_items
 * of them set), pointing into p. SL_EPROTO with the client's error set if anything is off.
 */
static int
walk_items(sl_client *c, const unsigned char *p, size_t len, size_t *at,
    sl_read_model_view **items, size_t *n_items)
{
	uint64_t n, pairs;

	if (!mpraw_array(p, len, at, &n)) {
		client_seterr(c, "the reply's 'items' is not a whole array");
		return SL_EPROTO;
	}
	if ((*items = malloc((n > 0 ? n : 1) * sizeof(**items))) == NULL) {
		client_seterr(c, "out of memory");
		return SL_ENOMEM;
	}
	for (uint64_t i = 0; i < n; i++) {
		sl_read_model_view *m  = &(*items)[i];
		bool                ok = mpraw_map(p, len, at, &pairs);
		memset(m, 0, sizeof(*m));
		for (uint64_t f = 0; ok && f < pairs; f++) {
			size_t k = *at, v;
			ok       = mpraw_skip(p, len, at);
			v        = *at;
			ok       = ok && mpraw_skip(p, len, at);
			if (!ok)
				break;
			if (key_is(p + k, v - k, "key")) {
				ok = mpraw_str(
				    p + v, *at - v, &m->key, &m->key_len);
			} else if (key_is(p + k, v - k, "state")) {
				ok = item_state(p + v, *at - v, m);
			}
		}
		if (!ok || m->key == NULL || m->state == NULL) {
			client_seterr(c,
			    "items[%llu] of the reply is malformed "
			    "(truncated, or no key string or state map)",
			    (unsigned long long) i);
			return SL_EPROTO;
		}
		(*n_items)++;
	}
	return SL_OK;
}

/*
 * A get_all page into out from its reply msg (kept in out->reply on
 * SL_OK; freed otherwise). The envelope's "v", "ok" and "more" are read
 * on the same walk; a reply that is not an ok one of this protocol goes
 * to client_reply_error for its code and message.
 */
static int
walk_page(sl_client *c, nng_msg *msg, sl_read_models_view *out)
{
	const unsigned char *p   = nng_msg_body(msg);
	size_t               len = nng_msg_len(msg), at = 0;
	uint64_t             pairs, v = 0;
	bool                 ok = false, items = false;
	int                  rc = SL_OK;

	if (!mpraw_map(p, len, &at, &pairs))
		return client_reply_error(c, msg);
	for (uint64_t f = 0; rc == SL_OK && f < pairs; f++) {
		size_t k = at, val;
		if (!mpraw_skip(p, len, &at)) {
			rc = SL_EPROTO;
			break;
		}
		val = at;
		if (key_is(p + k, val - k, "items") && !items) {
			items = true;
			rc = walk_items(c, p, len, &at, &out->items, &out->n_items);
			if (rc != SL_OK)
				break;
			continue;
		}
		if (!mpraw_skip(p, len, &at)) {
			rc = SL_EPROTO;
			break;
		}
		if (key_is(p + k, val - k, "v"))
			mpraw_uint(p + val, at - val, &v);
		else if (key_is(p + k, val - k, "ok"))
			mpraw_bool(p + val, at - val, &ok);
		else if (key_is(p + k, val - k, "more"))
			mpraw_bool(p + val, at - val, &out->more);
	}
	if (rc == SL_OK && (!ok || v != SL_PROTOCOL_VERSION)) {
		/* an error reply, or none of ours: its own code and text */
		free(out->items);
		memset(out, 0, sizeof(*out));
		return client_reply_error(c, msg);
	}
	if (rc == SL_OK && !items) {
		client_seterr(c, "the reply has no 'items' array");
		rc = SL_EPROTO;
	} else if (rc == SL_OK && at != len) {
		client_seterr(c, "%zu bytes after the reply", len - at);
		rc = SL_EPROTO;
	} else if (rc == SL_EPROTO && sl_client_last_error(c)[0] == '\0') {
		client_seterr(c, "the reply is truncated or malformed msgpack");
	}
	if (rc != SL_OK) {
		free(out->items);
		memset(out, 0, sizeof(*out));
		nng_msg_free(msg);
		return rc;
	}
	out->reply = msg;
	return SL_OK;
}

void
sl_read_models_view_free(sl_read_models_view *m)
{
	if (m == NULL)
		return;
	free(m->items);
	if (m->reply != NULL)
		nng_msg_free(m->reply);
	memset(m, 0, sizeof(*m));
}

int
sl_client_get_all_view(sl_client *c, const char *tenant,
    const char *projection, const char *after, size_t after_len,
    size_t limit, sl_read_models_view *out)
{
	msgpack_sbuffer sb;
	msgpack_packer  pk;
	nng_msg        *msg;

	if (c == NULL || out == NULL)
		return SL_EINVAL;
	memset(out, 0, sizeof(*out));
	client_set_error(c, "");
	if (tenant == NULL || projection == NULL) {
		client_seterr(c, "tenant and projection are required");
		return SL_EINVAL;
	}
	client_begin(&sb, &pk, "get_all", 4 + (after != NULL));
	mp_pack_kv_str(&pk, "tenant", tenant);
	mp_pack_kv_str(&pk, "projection", projection);
	mp_pack_kv_u64(&pk, "limit", limit);
	/* states inside bins: their ends known without walking them (a
	 * daemon before state_bytes ignores it and sends maps) */
	mp_pack_kv_bool(&pk, "state_bytes", true);
	if (after != NULL) {
		mp_pack_cstr(&pk, "after");
		mp_pack_strn(&pk, after, after_len);
	}
	int rc = client_roundtrip(c, sb.data, sb.size, &msg);
	msgpack_sbuffer_destroy(&sb);
	if (rc != SL_OK)
		return rc;
	return walk_page(c, msg, out);
}

/* ---- the copying variants, on the view ---- */

void
sl_read_models_mp_free(sl_read_models_mp *m)
{
	if (m == NULL)
		return;
	/* keys and states live in buf */
	free(m->items);
	free(m->buf);
	memset(m, 0, sizeof(*m));
}

int
sl_client_get_all_mp(sl_client *c, const char *tenant,
    const char *projection, const char *after, size_t limit,
    sl_read_models_mp *out)
{
	sl_read_models_view v;
	size_t              bytes = 0;
	char               *b;

	if (c == NULL || out == NULL)
		return SL_EINVAL;
	memset(out, 0, sizeof(*out));
	int rc = sl_client_get_all_view(c, tenant, projection, after,
	    after != NULL ? strlen(after) : 0, limit, &v);
	if (rc != SL_OK)
		return rc;
	/* the states, then the keys with their NULs, in one buffer */
	for (size_t i = 0; i < v.n_items; i++)
		bytes += v.items[i].state_len + v.items[i].key_len + 1;
	out->items = calloc(v.n_items > 0 ? v.n_items : 1, sizeof(*out->items));
	out->buf   = b = malloc(bytes > 0 ? bytes : 1);
	if (out->items == NULL || b == NULL) {
		sl_read_models_view_free(&v);
		sl_read_models_mp_free(out);
		client_seterr(c, "out of memory");
		return SL_ENOMEM;
	}
	for (size_t i = 0; i < v.n_items; i++) {
		const sl_read_model_view *s = &v.items[i];
		sl_read_model_mp         *m = &out->items[i];
		memcpy(b, s->state, s->state_len);
		m->state     = b;
		m->state_len = s->state_len;
		b += s->state_len;
		memcpy(b, s->key, s->key_len);
		b[s->key_len] = '\0';
		m->key        = b;
		b += s->key_len + 1;
	}
	out->n_items = v.n_items;
	out->more    = v.more;
	sl_read_models_view_free(&v);
	return SL_OK;
}

void
sl_read_models_free(sl_read_models *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->n_items; i++) {
		free(m->items[i].key);
		free(m->items[i].state_json);
	}
	free(m->items);
	memset(m, 0, sizeof(*m));
}

int
sl_client_get_all(sl_client *c, const char *tenant, const char *projection,
    const char *after, size_t limit, sl_read_models *out)
{
	sl_read_models_view v;
	msgpack_zone        zone;
	int                 rc;

	if (c == NULL || out == NULL)
		return SL_EINVAL;
	memset(out, 0, sizeof(*out));
	rc = sl_client_get_all_view(c, tenant, projection, after,
	    after != NULL ? strlen(after) : 0, limit, &v);
	if (rc != SL_OK)
		return rc;
	out->more  = v.more;
	out->items = calloc(v.n_items > 0 ? v.n_items : 1, sizeof(*out->items));
	if (out->items == NULL
	    || !msgpack_zone_init(&zone, MSGPACK_ZONE_CHUNK_SIZE)) {
		free(out->items);
		out->items = NULL;
		sl_read_models_view_free(&v);
		client_seterr(c, "out of memory");
		return SL_ENOMEM;
	}
	/* one state's objects at a time, in one zone cleared between */
	for (size_t i = 0; rc == SL_OK && i < v.n_items; i++) {
		const sl_read_model_view *s = &v.items[i];
		sl_read_model            *m = &out->items[i];
		msgpack_object            st;
		size_t                    off = 0;
		out->n_items++;
		msgpack_zone_clear(&zone);
		if (msgpack_unpack(s->state, s->state_len, &off, &zone, &st)
		    != MSGPACK_UNPACK_SUCCESS) {
			client_seterr(c, "items[%zu] of the reply is malformed",
			    i);
			rc = SL_EPROTO;
		} else if ((m->key = malloc(s->key_len + 1)) == NULL
		    || (m->state_json = mp_to_json_text(&st)) == NULL) {
			client_seterr(c, "out of memory");
			rc = SL_ENOMEM;
		} else {
			memcpy(m->key, s->key, s->key_len);
			m->key[s->key_len] = '\0';
		}
	}
	msgpack_zone_destroy(&zone);
	sl_read_models_view_free(&v);
	if (rc != SL_OK)
		sl_read_models_free(out);
	return rc;
}
