/*
 * Document nodes (doc.h): free, size, pack, and conversion from and to
 * msgpack and JSON. The edits by path are in docedit.c; the plugin-facing
 * calls in host_state.c.
 */
#include "doc.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "json.h"
#include "mpraw.h"
#include "mpwrite.h"

/* ---- nodes ---- */

/* A state's nodes are mostly leaves: maps and arrays handle their leaf
 * children inline and call themselves only for maps and arrays (packing,
 * sizing and freeing run for every event a projection handles). */
static inline bool
is_container(const doc_node *n)
{
	return n->kind == DOC_MAP || n->kind == DOC_ARR;
}

/* What a child holds freed; the child itself is its parent's to free. */
static void child_free(doc_node *n);

void
doc_free(doc_node *n)
{
	switch (n->kind) {
	case DOC_STR:
	case DOC_RAW:
		if (!n->u.s.arena)
			free(n->u.s.p);
		break;
	case DOC_MAP:
		for (size_t i = 0; i < n->u.m.n; i++) {
			if (!n->u.m.e[i].karena)
				free(n->u.m.e[i].key);
			child_free(&n->u.m.e[i].val);
		}
		free(n->u.m.e);
		break;
	case DOC_ARR:
		for (size_t i = 0; i < n->u.a.n; i++)
			child_free(&n->u.a.v[i]);
		free(n->u.a.v);
		break;
	default:
		break;
	}
	memset(n, 0, sizeof(*n));
	n->kind = DOC_NIL;
}

static inline void
child_free(doc_node *n)
{
	if (n->kind == DOC_STR || n->kind == DOC_RAW) {
		if (!n->u.s.arena)
			free(n->u.s.p);
	} else if (is_container(n)) {
		doc_free(n);
	}
}

void
doc_pack(const doc_node *n, msgpack_packer *pk)
{
	switch (n->kind) {
	case DOC_NIL:
		msgpack_pack_nil(pk);
		break;
	case DOC_BOOL:
		if (n->u.b)
			msgpack_pack_true(pk);
		else
			msgpack_pack_false(pk);
		break;
	case DOC_I64:
		msgpack_pack_int64(pk, n->u.i);
		break;
	case DOC_F64:
		msgpack_pack_double(pk, n->u.f);
		break;
	case DOC_STR:
		msgpack_pack_str(pk, n->u.s.len);
		msgpack_pack_str_body(pk, n->u.s.p, n->u.s.len);
		break;
	case DOC_RAW:
		/* already encoded: append the bytes as they are */
		pk->callback(pk->data, n->u.s.p, n->u.s.len);
		break;
	case DOC_MAP:
		msgpack_pack_map(pk, n->u.m.n);
		for (size_t i = 0; i < n->u.m.n; i++) {
			const doc_entry *e = &n->u.m.e[i];
			msgpack_pack_str(pk, e->klen);
			msgpack_pack_str_body(pk, e->key, e->klen);
			doc_pack(&e->val, pk);
		}
		break;
	case DOC_ARR:
		msgpack_pack_array(pk, n->u.a.n);
		for (size_t i = 0; i < n->u.a.n; i++)
			doc_pack(&n->u.a.v[i], pk);
		break;
	}
}

/* ---- packing into a buffer of doc_size bytes ---- */

static unsigned char *doc_pack_to(const doc_node *n, unsigned char *o);

/* n packed at o when it is a leaf (no map or array). */
static inline unsigned char *
leaf_pack_to(const doc_node *n, unsigned char *o)
{
	uint64_t u;
	switch (n->kind) {
	case DOC_NIL:
		*o++ = 0xc0;
		break;
	case DOC_BOOL:
		*o++ = n->u.b ? 0xc3 : 0xc2;
		break;
	case DOC_I64:
		o = mpw_int(o, n->u.i);
		break;
	case DOC_F64:
		memcpy(&u, &n->u.f, sizeof(u));
		o = mpw_tv(o, 0xcb, u, 8);
		break;
	case DOC_STR:
		o = mpw_str(o, n->u.s.p, n->u.s.len);
		break;
	case DOC_RAW:
		memcpy(o, n->u.s.p, n->u.s.len);
		o += n->u.s.len;
		break;
	default:
		break;
	}
	return o;
}

static inline unsigned char *
child_pack_to(const doc_node *n, unsigned char *o)
{
	return is_container(n) ? doc_pack_to(n, o) : leaf_pack_to(n, o);
}

static unsigned char *
doc_pack_to(const doc_node *n, unsigned char *o)
{
	switch (n->kind) {
	case DOC_MAP:
		o = mpw_map(o, n->u.m.n);
		for (size_t i = 0; i < n->u.m.n; i++) {
			o = mpw_str(o, n->u.m.e[i].key, n->u.m.e[i].klen);
			o = child_pack_to(&n->u.m.e[i].val, o);
		}
		return o;
	case DOC_ARR:
		o = mpw_array(o, n->u.a.n);
		for (size_t i = 0; i < n->u.a.n; i++)
			o = child_pack_to(&n->u.a.v[i], o);
		return o;
	default:
		return leaf_pack_to(n, o);
	}
}

int
state_pack_sbuffer(const sl_state *st, msgpack_sbuffer *sb)
{
	/* doc_size bounds the packed size: every header at its widest */
	size_t need = doc_size(&st->root);
	sb->size    = 0;
	if (sb->alloc < need) {
		char *p = realloc(sb->data, need);
		if (p == NULL)
			return SL_ENOMEM;
		sb->data  = p;
		sb->alloc = need;
	}
	sb->size = (size_t) (doc_pack_to(&st->root, (unsigned char *) sb->data)
	    - (unsigned char *) sb->data);
	return SL_OK;
}

sl_kind
doc_kind_of(const doc_node *n)
{
	switch (n->kind) {
	case DOC_NIL:
		return SL_KIND_NIL;
	case DOC_BOOL:
		return SL_KIND_BOOL;
	case DOC_I64:
		return SL_KIND_INT;
	case DOC_F64:
		return SL_KIND_FLOAT;
	case DOC_STR:
		return SL_KIND_STR;
	case DOC_MAP:
		return SL_KIND_MAP;
	case DOC_ARR:
		return SL_KIND_ARRAY;
	case DOC_RAW:
		break;
	}
	/* the first byte of the encoding tells the type */
	unsigned char b = n->u.s.len > 0 ? (unsigned char) n->u.s.p[0] : 0xc1;
	if ((b >= 0x80 && b <= 0x8f) || b == 0xde || b == 0xdf)
		return SL_KIND_MAP;
	if ((b >= 0x90 && b <= 0x9f) || b == 0xdc || b == 0xdd)
		return SL_KIND_ARRAY;
	if (b >= 0xc4 && b <= 0xc6)
		return SL_KIND_BIN;
	if (b == 0xcf || b == 0xd3)
		return SL_KIND_INT;
	return SL_KIND_EXT; /* c7..c9, d4..d8 */
}

/* n becomes a copy of p[0..len) as a string (NUL-terminated) or raw. */
static int
node_bytes(doc_node *n, doc_kind kind, const char *p, size_t len)
{
	char *copy = malloc(len + 1);
	if (copy == NULL)
		return SL_ENOMEM;
	if (len > 0)
		memcpy(copy, p, len);
	copy[len]  = '\0';
	n->kind    = kind;
	n->u.s.p   = copy;
	n->u.s.len = len;
	return SL_OK;
}

int
doc_str(doc_node *out, const char *p, size_t len)
{
	memset(out, 0, sizeof(*out));
	return node_bytes(out, DOC_STR, p, len);
}

/* n becomes the encoded bytes of o. */
static int
node_raw(doc_node *n, const msgpack_object *o)
{
	msgpack_sbuffer sb;
	msgpack_packer  pk;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	if (msgpack_pack_object(&pk, *o) != 0 || sb.data == NULL) {
		msgpack_sbuffer_destroy(&sb);
		return SL_ENOMEM;
	}
	n->kind    = DOC_RAW;
	n->u.s.p   = sb.data; /* the sbuffer's malloc'ed buffer, now ours */
	n->u.s.len = sb.size;
	return SL_OK;
}

int
doc_from_mp(const msgpack_object *o, doc_node *out)
{
	memset(out, 0, sizeof(*out));
	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		out->kind = DOC_NIL;
		return SL_OK;
	case MSGPACK_OBJECT_BOOLEAN:
		out->kind = DOC_BOOL;
		out->u.b  = o->via.boolean;
		return SL_OK;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		out->kind = DOC_I64;
		out->u.i  = o->via.i64;
		return SL_OK;
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		if (o->via.u64 > (uint64_t) INT64_MAX)
			return node_raw(out, o); /* keep it exact */
		out->kind = DOC_I64;
		out->u.i  = (int64_t) o->via.u64;
		return SL_OK;
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		out->kind = DOC_F64;
		out->u.f  = o->via.f64;
		return SL_OK;
	case MSGPACK_OBJECT_STR:
		return node_bytes(
		    out, DOC_STR, o->via.str.ptr, o->via.str.size);
	default:
		return node_raw(out, o);
	}
}

/* An empty map or array with room for n children, zeroed; or, for
 * state_load, which fills every entry it counts, not zeroed: calloc is
 * served without glibc's per-thread cache, and that runs for every state
 * loaded. */
static int
node_container_as(doc_node *out, doc_kind kind, size_t n, bool zero)
{
	memset(out, 0, sizeof(*out));
	out->kind = kind;
	if (n == 0)
		return SL_OK;
	size_t size = kind == DOC_MAP ? sizeof(doc_entry) : sizeof(doc_node);
	void  *items = zero ? calloc(n, size)
	     : n <= SIZE_MAX / size ? malloc(n * size)
	                            : NULL;
	if (items == NULL)
		return SL_ENOMEM;
	if (kind == DOC_MAP) {
		out->u.m.e   = items;
		out->u.m.cap = n;
	} else {
		out->u.a.v   = items;
		out->u.a.cap = n;
	}
	return SL_OK;
}

static int
node_container(doc_node *out, doc_kind kind, size_t n)
{
	return node_container_as(out, kind, n, true);
}

/* The next entry of a map built by node_container: key copied; its value
 * is left nil for the caller to fill. */
static doc_entry *
node_entry(doc_node *m, const char *key, size_t klen)
{
	doc_entry *e = &m->u.m.e[m->u.m.n];
	if ((e->key = malloc(klen + 1)) == NULL)
		return NULL;
	memcpy(e->key, key, klen);
	e->key[klen] = '\0';
	e->klen      = klen;
	e->val.kind  = DOC_NIL;
	m->u.m.n++;
	return e;
}

static int
key_cmp(const void *a, const void *b)
{
	const doc_entry *x = *(const doc_entry *const *) a;
	const doc_entry *y = *(const doc_entry *const *) b;
	if (x->klen != y->klen)
		return x->klen < y->klen ? -1 : 1;
	return memcmp(x->key, y->key, x->klen);
}

/* Whether a map has a key twice: SL_OK, SL_EINVAL or SL_ENOMEM. */
static int
check_unique(const doc_node *m)
{
	size_t n = m->u.m.n;
	if (n < 2)
		return SL_OK;
	const doc_entry **v = malloc(n * sizeof(*v));
	if (v == NULL)
		return SL_ENOMEM;
	for (size_t i = 0; i < n; i++)
		v[i] = &m->u.m.e[i];
	qsort(v, n, sizeof(*v), key_cmp);
	int rc = SL_OK;
	for (size_t i = 1; i < n && rc == SL_OK; i++)
		if (key_cmp(&v[i - 1], &v[i]) == 0)
			rc = SL_EINVAL;
	free(v);
	return rc;
}

/* doc_size of a leaf. */
static inline size_t
leaf_size(const doc_node *n)
{
	switch (n->kind) {
	case DOC_NIL:
	case DOC_BOOL:
		return 1;
	case DOC_I64:
	case DOC_F64:
		return 9;
	case DOC_STR:
		return DOC_HDR + n->u.s.len;
	case DOC_RAW:
		return n->u.s.len;
	default:
		return DOC_HDR;
	}
}

size_t
doc_size(const doc_node *n)
{
	size_t t = DOC_HDR;
	switch (n->kind) {
	case DOC_MAP:
		for (size_t i = 0; i < n->u.m.n; i++) {
			const doc_node *v = &n->u.m.e[i].val;
			t += DOC_HDR + n->u.m.e[i].klen
			    + (is_container(v) ? doc_size(v) : leaf_size(v));
		}
		return t;
	case DOC_ARR:
		for (size_t i = 0; i < n->u.a.n; i++) {
			const doc_node *v = &n->u.a.v[i];
			t += is_container(v) ? doc_size(v) : leaf_size(v);
		}
		return t;
	default:
		return leaf_size(n);
	}
}

/* ---- maps and arrays ---- */

doc_entry *
doc_map_find(const doc_node *m, const char *key, size_t klen)
{
	for (size_t i = 0; i < m->u.m.n; i++) {
		doc_entry *e = &m->u.m.e[i];
		/* the first byte before memcmp: most keys differ there */
		if (e->klen == klen
		    && (klen == 0
		        || (e->key[0] == key[0]
		            && memcmp(e->key, key, klen) == 0)))
			return e;
	}
	return NULL;
}

/* Room for one more child in a map or array. */
static int
grow(void **items, size_t *cap, size_t n, size_t size)
{
	if (n < *cap)
		return SL_OK;
	size_t c = *cap != 0 ? *cap * 2 : 4;
	void  *p = realloc(*items, c * size);
	if (p == NULL)
		return SL_ENOMEM;
	*items = p;
	*cap   = c;
	return SL_OK;
}

int
doc_map_add(doc_node *m, const char *key, size_t klen, doc_node *v)
{
	char *k = malloc(klen + 1);
	if (k == NULL
	    || grow((void **) &m->u.m.e, &m->u.m.cap, m->u.m.n,
	           sizeof(doc_entry))
	        != SL_OK) {
		free(k);
		return SL_ENOMEM;
	}
	if (klen > 0)
		memcpy(k, key, klen);
	k[klen]      = '\0';
	doc_entry *e = &m->u.m.e[m->u.m.n++];
	e->key       = k;
	e->klen      = klen;
	e->karena    = false;
	e->val       = *v;
	v->kind      = DOC_NIL;
	return SL_OK;
}

void
doc_map_del(doc_node *m, size_t i)
{
	doc_entry *e = &m->u.m.e[i];
	if (!e->karena)
		free(e->key);
	doc_free(&e->val);
	memmove(e, e + 1, (m->u.m.n - i - 1) * sizeof(*e));
	m->u.m.n--;
}

int
doc_arr_insert(doc_node *a, size_t i, doc_node *v)
{
	if (grow((void **) &a->u.a.v, &a->u.a.cap, a->u.a.n, sizeof(doc_node))
	    != SL_OK)
		return SL_ENOMEM;
	memmove(
	    &a->u.a.v[i + 1], &a->u.a.v[i], (a->u.a.n - i) * sizeof(doc_node));
	a->u.a.v[i] = *v;
	a->u.a.n++;
	v->kind = DOC_NIL;
	return SL_OK;
}

void
doc_arr_del(doc_node *a, size_t i)
{
	doc_free(&a->u.a.v[i]);
	memmove(&a->u.a.v[i], &a->u.a.v[i + 1],
	    (a->u.a.n - i - 1) * sizeof(doc_node));
	a->u.a.n--;
}

/* A raw map or array decoded one level: its children typed or raw. */
static int
node_open(const msgpack_object *o, doc_node *out)
{
	int rc;
	if (o->type == MSGPACK_OBJECT_MAP) {
		const msgpack_object_map *m = &o->via.map;
		if ((rc = node_container(out, DOC_MAP, m->size)) != SL_OK)
			return rc;
		for (uint32_t i = 0; i < m->size; i++) {
			const msgpack_object *k = &m->ptr[i].key;
			doc_entry            *e;
			if (k->type != MSGPACK_OBJECT_STR)
				return SL_EINVAL;
			e = node_entry(out, k->via.str.ptr, k->via.str.size);
			if (e == NULL)
				return SL_ENOMEM;
			if ((rc = doc_from_mp(&m->ptr[i].val, &e->val))
			    != SL_OK)
				return rc;
		}
		return SL_OK;
	}
	const msgpack_object_array *a = &o->via.array;
	if ((rc = node_container(out, DOC_ARR, a->size)) != SL_OK)
		return rc;
	for (uint32_t i = 0; i < a->size; i++) {
		if ((rc = doc_from_mp(&a->ptr[i], &out->u.a.v[i])) != SL_OK)
			return rc;
		out->u.a.n++;
	}
	return SL_OK;
}

int
doc_open(sl_state *st, doc_node *n)
{
	if (n->kind != DOC_RAW)
		return SL_OK;
	sl_kind k = doc_kind_of(n);
	if (k != SL_KIND_MAP && k != SL_KIND_ARRAY)
		return SL_OK; /* a leaf */
	msgpack_unpacked up;
	doc_node         out;
	size_t           off = 0;
	int              rc;
	memset(&out, 0, sizeof(out));
	msgpack_unpacked_init(&up);
	if (msgpack_unpack_next(&up, n->u.s.p, n->u.s.len, &off)
	        != MSGPACK_UNPACK_SUCCESS
	    || off != n->u.s.len)
		rc = SL_EPROTO;
	else
		rc = node_open(&up.data, &out);
	msgpack_unpacked_destroy(&up);
	if (rc != SL_OK) {
		doc_free(&out);
		return rc;
	}
	size_t before = n->u.s.len;
	doc_free(n);
	*n        = out;
	st->bytes = st->bytes - before + doc_size(n);
	return SL_OK;
}

/* ---- from JSON ---- */

static int
node_from_json(const json_t *j, int room, doc_node *out)
{
	int rc;
	memset(out, 0, sizeof(*out));
	switch (json_typeof(j)) {
	case JSON_OBJECT: {
		if (room < 1)
			return SL_ETOOBIG;
		if ((rc = node_container(out, DOC_MAP, json_object_size(j)))
		    != SL_OK)
			return rc;
		/* iterate by hand: json_object_foreach wants a non-const */
		for (void *it = json_object_iter((json_t *) j); it != NULL;
		     it       = json_object_iter_next((json_t *) j, it)) {
			const char *k    = json_object_iter_key(it);
			size_t      klen = json_object_iter_key_len(it);
			doc_entry  *e;
			if (memchr(k, '\0', klen) != NULL)
				return SL_EINVAL; /* the caller frees out */
			if ((e = node_entry(out, k, klen)) == NULL)
				return SL_ENOMEM;
			rc = node_from_json(
			    json_object_iter_value(it), room - 1, &e->val);
			if (rc != SL_OK)
				return rc;
		}
		return SL_OK;
	}
	case JSON_ARRAY: {
		size_t n = json_array_size(j);
		if (room < 1)
			return SL_ETOOBIG;
		if ((rc = node_container(out, DOC_ARR, n)) != SL_OK)
			return rc;
		for (size_t i = 0; i < n; i++) {
			rc = node_from_json(
			    json_array_get(j, i), room - 1, &out->u.a.v[i]);
			out->u.a.n++;
			if (rc != SL_OK)
				return rc;
		}
		return SL_OK;
	}
	case JSON_STRING:
		return node_bytes(
		    out, DOC_STR, json_string_value(j), json_string_length(j));
	case JSON_INTEGER:
		out->kind = DOC_I64;
		out->u.i  = (int64_t) json_integer_value(j);
		return SL_OK;
	case JSON_REAL:
		out->kind = DOC_F64;
		out->u.f  = json_real_value(j);
		return SL_OK;
	case JSON_TRUE:
	case JSON_FALSE:
		out->kind = DOC_BOOL;
		out->u.b  = json_is_true(j);
		return SL_OK;
	case JSON_NULL:
		out->kind = DOC_NIL;
		return SL_OK;
	}
	return SL_EINVAL;
}

int
doc_from_json(const char *text, int room, doc_node *out)
{
	memset(out, 0, sizeof(*out));
	if (text == NULL)
		return SL_EINVAL;
	if (strnlen(text, SL_STATE_MAX_BYTES + 1) > SL_STATE_MAX_BYTES)
		return SL_ETOOBIG;
	json_error_t je;
	json_t      *j
	    = json_loads(text, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
	if (j == NULL)
		return SL_EINVAL;
	int rc = node_from_json(j, room, out);
	json_decref(j);
	if (rc != SL_OK)
		doc_free(out);
	return rc;
}

/* ---- from msgpack ---- */

static int
node_from_object(const msgpack_object *o, int room, doc_node *out)
{
	int rc;
	if (o->type == MSGPACK_OBJECT_MAP) {
		const msgpack_object_map *m = &o->via.map;
		if (room < 1)
			return SL_ETOOBIG;
		if ((rc = node_container(out, DOC_MAP, m->size)) != SL_OK)
			return rc;
		for (uint32_t i = 0; i < m->size; i++) {
			const msgpack_object *k = &m->ptr[i].key;
			doc_entry            *e;
			if (k->type != MSGPACK_OBJECT_STR
			    || memchr(k->via.str.ptr, '\0', k->via.str.size)
			        != NULL)
				return SL_EINVAL;
			e = node_entry(out, k->via.str.ptr, k->via.str.size);
			if (e == NULL)
				return SL_ENOMEM;
			rc = node_from_object(
			    &m->ptr[i].val, room - 1, &e->val);
			if (rc != SL_OK)
				return rc;
		}
		return check_unique(out);
	}
	if (o->type == MSGPACK_OBJECT_ARRAY) {
		const msgpack_object_array *a = &o->via.array;
		if (room < 1)
			return SL_ETOOBIG;
		if ((rc = node_container(out, DOC_ARR, a->size)) != SL_OK)
			return rc;
		for (uint32_t i = 0; i < a->size; i++) {
			rc = node_from_object(
			    &a->ptr[i], room - 1, &out->u.a.v[i]);
			out->u.a.n++;
			if (rc != SL_OK)
				return rc;
		}
		return SL_OK;
	}
	return doc_from_mp(o, out);
}

int
doc_from_msgpack(const void *data, size_t len, int room, doc_node *out)
{
	memset(out, 0, sizeof(*out));
	if (data == NULL || len == 0)
		return SL_EINVAL;
	if (len > SL_STATE_MAX_BYTES)
		return SL_ETOOBIG;
	msgpack_unpacked up;
	size_t           off = 0;
	msgpack_unpacked_init(&up);
	msgpack_unpack_return r = msgpack_unpack_next(&up, data, len, &off);
	int                   rc;
	if (r == MSGPACK_UNPACK_NOMEM_ERROR)
		rc = SL_ETOOBIG; /* msgpack-c's own nesting limit (32) */
	else if (r != MSGPACK_UNPACK_SUCCESS || off != len)
		rc = SL_EINVAL;
	else
		rc = node_from_object(&up.data, room, out);
	msgpack_unpacked_destroy(&up);
	if (rc != SL_OK)
		doc_free(out);
	return rc;
}

char *
doc_to_json(const doc_node *n)
{
	msgpack_sbuffer  sb;
	msgpack_packer   pk;
	msgpack_unpacked up;
	char            *text = NULL;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	doc_pack(n, &pk);
	msgpack_unpacked_init(&up);
	if (sb.data != NULL
	    && msgpack_unpack_next(&up, sb.data, sb.size, NULL)
	        == MSGPACK_UNPACK_SUCCESS)
		text = mp_to_json_text(&up.data);
	msgpack_unpacked_destroy(&up);
	msgpack_sbuffer_destroy(&sb);
	return text;
}

/* ---- a state: the processor's side ---- */

void
state_init(sl_state *st)
{
	memset(st, 0, sizeof(*st));
	st->root.kind = DOC_MAP;
	st->bytes     = DOC_HDR;
}

void
state_free(sl_state *st)
{
	if (st == NULL)
		return;
	doc_free(&st->root);
	free(st->arena);
	state_init(st);
}

/* n becomes a string or raw value held in the state's arena at *arena
 * (NUL-terminated copy of p[0..len)); *arena moves past it. */
static void
node_arena(doc_node *n, doc_kind kind, const char *p, size_t len, char **arena)
{
	memcpy(*arena, p, len);
	(*arena)[len] = '\0';
	n->kind       = kind;
	n->u.s.p      = *arena;
	n->u.s.len    = len;
	n->u.s.arena  = true;
	*arena += len + 1;
}

/* A string's type byte: fixstr, str8/16/32. */
static bool
is_str(uint8_t b)
{
	return (b >= 0xa0 && b <= 0xbf) || (b >= 0xd9 && b <= 0xdb);
}

/*
 * The value at p[*at] of a state's top level as a node, *at moved past
 * it: scalars decoded, a string copied, anything else (maps and arrays not
 * yet opened, bin, ext, an integer above INT64_MAX) kept as its bytes, as
 * doc_from_mp does through msgpack-c, but without unpacking it.
 * @return SL_OK or SL_EPROTO (truncated or invalid).
 */
static int
doc_read_value(const unsigned char *p, size_t len, size_t *at, doc_node *out,
    char **arena)
{
	size_t   v = *at, i = v;
	uint64_t n, body, u;
	memset(out, 0, sizeof(*out));
	if (v >= len)
		return SL_EPROTO;
	uint8_t b = p[v];
	/* the usual values without a header call: fixints, short strings */
	if (b <= 0x7f || b >= 0xe0) {
		out->kind = DOC_I64;
		out->u.i  = b <= 0x7f ? b : (int8_t) b;
		*at       = v + 1;
		return SL_OK;
	}
	if (b >= 0xa0 && b <= 0xbf) {
		body = b & 0x1f;
		if (len - v - 1 < body)
			return SL_EPROTO;
		node_arena(out, DOC_STR, (const char *) p + v + 1, body, arena);
		*at = v + 1 + body;
		return SL_OK;
	}
	int kind = mpraw_header(p, len, &i, &n, &body);
	if (kind < 0)
		return SL_EPROTO;
	if (kind != MPRAW_SCALAR) { /* a map or an array, as its bytes */
		if (!mpraw_skip(p, len, at))
			return SL_EPROTO;
		node_arena(out, DOC_RAW, (const char *) p + v, *at - v, arena);
		return SL_OK;
	}
	if (len - i < body)
		return SL_EPROTO;
	*at                    = i + body;
	const unsigned char *d = p + i;
	if (is_str(b)) {
		node_arena(out, DOC_STR, (const char *) d, body, arena);
		return SL_OK;
	}
	switch (b) {
	case 0xc0:
		out->kind = DOC_NIL;
		return SL_OK;
	case 0xc2:
	case 0xc3:
		out->kind = DOC_BOOL;
		out->u.b  = b == 0xc3;
		return SL_OK;
	case 0xcc:
	case 0xcd:
	case 0xce:
	case 0xcf:
		if ((u = mpraw_be(d, body)) > (uint64_t) INT64_MAX)
			break; /* kept exact, as its bytes */
		out->kind = DOC_I64;
		out->u.i  = (int64_t) u;
		return SL_OK;
	case 0xd0:
	case 0xd1:
	case 0xd2:
	case 0xd3: /* sign-extend the body's two's complement */
		u = mpraw_be(d, body);
		if (body < 8 && (u >> (8 * body - 1)) != 0)
			u |= ~(uint64_t) 0 << (8 * body);
		out->kind = DOC_I64;
		memcpy(&out->u.i, &u, sizeof(u));
		return SL_OK;
	case 0xca: {
		uint32_t w = (uint32_t) mpraw_be(d, 4);
		float    f;
		memcpy(&f, &w, sizeof(f));
		out->kind = DOC_F64;
		out->u.f  = f;
		return SL_OK;
	}
	case 0xcb:
		u = mpraw_be(d, 8);
		memcpy(&out->u.f, &u, sizeof(u));
		out->kind = DOC_F64;
		return SL_OK;
	default:
		break; /* bin, ext */
	}
	node_arena(out, DOC_RAW, (const char *) p + v, *at - v, arena);
	return SL_OK;
}

int
state_load(sl_state *st, const void *data, size_t len)
{
	if (st == NULL || (data == NULL && len > 0))
		return SL_EINVAL;
	/* Read straight from the bytes (no msgpack-c objects: this runs for
	 * every event a projection handles). Build aside and swap, so st is
	 * unchanged on error. As the 1.2 host did, a key given twice keeps
	 * its first place and last value. */
	const unsigned char *p  = data;
	size_t               at = 0;
	uint64_t             n;
	if (!mpraw_map(p, len, &at, &n))
		return SL_EPROTO;
	sl_state tmp;
	int      rc = SL_OK;
	state_init(&tmp);
	/* every key and value copied at most once, each with a NUL */
	if (n > 0
	    && (node_container_as(&tmp.root, DOC_MAP, (size_t) n, false)
	            != SL_OK
	        || (tmp.arena = malloc(len + 2 * (size_t) n)) == NULL)) {
		state_free(&tmp);
		return SL_ENOMEM;
	}
	char    *arena = tmp.arena;
	uint64_t seen  = 0;
	for (uint64_t i = 0; i < n && rc == SL_OK; i++) {
		size_t   k = at;
		uint64_t cn, klen;
		doc_node val;
		/* a key is a string (a fixstr read here, the usual case) */
		if (at < len && p[at] >= 0xa0 && p[at] <= 0xbf) {
			klen = p[at++] & 0x1f;
			if (len - at < klen) {
				rc = SL_EPROTO;
				break;
			}
		} else if (mpraw_header(p, len, &at, &cn, &klen) != MPRAW_SCALAR
		    || !is_str(p[k]) || len - at < klen) {
			rc = SL_EPROTO;
			break;
		}
		const char *key = (const char *) p + at;
		at += klen;
		if ((rc = doc_read_value(p, len, &at, &val, &arena)) != SL_OK)
			break;
		size_t add = doc_size(&val);
		/* a key given twice is rare: a bit per (first byte, length)
		 * seen spares most keys the look-up among the earlier ones */
		uint64_t   bit = (uint64_t) 1
		    << (((klen > 0 ? (uint8_t) key[0] : 0) + 7 * klen) & 63);
		doc_entry *e   = (seen & bit) != 0
		      ? doc_map_find(&tmp.root, key, klen)
		      : NULL;
		seen |= bit;
		if (e != NULL) { /* given twice: its place, the last value */
			tmp.bytes = tmp.bytes - doc_size(&e->val) + add;
			doc_free(&e->val);
			e->val = val;
			continue;
		}
		e = &tmp.root.u.m.e[tmp.root.u.m.n++];
		memcpy(arena, key, klen);
		arena[klen] = '\0';
		e->key      = arena;
		e->klen     = klen;
		e->karena   = true;
		e->val      = val;
		arena += klen + 1;
		tmp.bytes += DOC_HDR + klen + add;
	}
	if (rc == SL_OK && at != len)
		rc = SL_EPROTO; /* bytes after the map */
	if (rc != SL_OK) {
		state_free(&tmp);
		return rc;
	}
	state_free(st);
	*st = tmp;
	return SL_OK;
}

void
state_pack(const sl_state *st, msgpack_packer *pk)
{
	if (st == NULL) {
		msgpack_pack_map(pk, 0);
		return;
	}
	doc_pack(&st->root, pk);
}
