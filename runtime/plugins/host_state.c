/*
 * A read model's state through the host table: the 1.0 calls on its
 * top-level keys (taken as they are, "a.b" is one key), and the 1.3 calls
 * on the document by path (doc.h, docpath.h). The processor loads the
 * state before a callback and packs it after (state_load / state_pack).
 */
#include <stdlib.h>
#include <string.h>

#include "doc.h"
#include "docpath.h"
#include "host_internal.h"

/* ---- 1.0: top-level keys ---- */

/* The value of a top-level key for a getter. */
static int
key_get(
    const sl_state *st, const char *key, const void *out, const doc_node **n)
{
	if (st == NULL || key == NULL || out == NULL)
		return SL_EINVAL;
	const doc_entry *e = doc_root_find(st, key, strlen(key));
	if (e == NULL)
		return SL_ENOTFOUND;
	*n = &e->val;
	return SL_OK;
}

static int
h_state_str(const sl_state *st, const char *key, const char **out)
{
	const doc_node *n;
	int             rc = key_get(st, key, out, &n);
	if (rc != SL_OK)
		return rc;
	if (n->kind != DOC_STR)
		return SL_EINVAL;
	*out = n->u.s.p;
	return SL_OK;
}

static int
h_state_i64(const sl_state *st, const char *key, int64_t *out)
{
	const doc_node *n;
	int             rc = key_get(st, key, out, &n);
	if (rc != SL_OK)
		return rc;
	if (n->kind != DOC_I64)
		return SL_EINVAL;
	*out = n->u.i;
	return SL_OK;
}

static int
h_state_f64(const sl_state *st, const char *key, double *out)
{
	const doc_node *n;
	int             rc = key_get(st, key, out, &n);
	if (rc != SL_OK)
		return rc;
	if (n->kind == DOC_I64)
		*out = (double) n->u.i;
	else if (n->kind == DOC_F64)
		*out = n->u.f;
	else
		return SL_EINVAL;
	return SL_OK;
}

static int
h_state_bool(const sl_state *st, const char *key, bool *out)
{
	const doc_node *n;
	int             rc = key_get(st, key, out, &n);
	if (rc != SL_OK)
		return rc;
	if (n->kind != DOC_BOOL)
		return SL_EINVAL;
	*out = n->u.b;
	return SL_OK;
}

/* Set a top-level key to v (taken), in place when it exists. */
static int
key_set(sl_state *st, const char *key, doc_node *v)
{
	if (st == NULL || key == NULL || *key == '\0') {
		doc_free(v);
		return SL_EINVAL;
	}
	return doc_root_set(st, key, strlen(key), v);
}

static int
h_state_set_str(sl_state *st, const char *key, const char *val)
{
	doc_node v;
	if (val == NULL)
		return SL_EINVAL;
	/* val may point into this very value (set_str(k, state_str(k))):
	 * the copy is made before the old value goes */
	if (doc_str(&v, val, strlen(val)) != SL_OK)
		return SL_ENOMEM;
	return key_set(st, key, &v);
}

static int
h_state_set_i64(sl_state *st, const char *key, int64_t val)
{
	doc_node v = { .kind = DOC_I64, .u.i = val };
	return key_set(st, key, &v);
}

static int
h_state_set_f64(sl_state *st, const char *key, double val)
{
	doc_node v = { .kind = DOC_F64, .u.f = val };
	return key_set(st, key, &v);
}

static int
h_state_set_bool(sl_state *st, const char *key, bool val)
{
	doc_node v = { .kind = DOC_BOOL, .u.b = val };
	return key_set(st, key, &v);
}

static int
h_state_set_nil(sl_state *st, const char *key)
{
	doc_node v = { .kind = DOC_NIL };
	return key_set(st, key, &v);
}

/* Removal keeps the order of the remaining keys (insertion order). */
static int
h_state_remove(sl_state *st, const char *key)
{
	if (st == NULL || key == NULL)
		return SL_EINVAL;
	return doc_root_remove(st, key, strlen(key));
}

/* ---- ABI 1.3: the document by path ---- */

/*
 * The node at path for a getter. Reading may open (decode) raw maps and
 * arrays on the way, which changes how the state is held but not what it
 * holds: hence the cast of a const state.
 */
static int
path_get(const sl_state *st, const char *path, const void *out, doc_node **n)
{
	dpath p;
	int   rc;
	if (st == NULL || out == NULL)
		return SL_EINVAL;
	if ((rc = dpath_parse(path, &p)) != SL_OK)
		return rc;
	return doc_get((sl_state *) st, &p, n);
}

/* path_get, the node opened when it is a raw map or array. */
static int
path_get_open(
    const sl_state *st, const char *path, const void *out, doc_node **n)
{
	int rc = path_get(st, path, out, n);
	return rc != SL_OK ? rc : doc_open((sl_state *) st, *n);
}

static int
h_state_kind(const sl_state *st, const char *path, sl_kind *out)
{
	doc_node *n;
	int       rc = path_get(st, path, out, &n);
	if (rc == SL_OK)
		*out = doc_kind_of(n);
	return rc;
}

static int
h_state_len(const sl_state *st, const char *path, size_t *out)
{
	doc_node *n;
	int       rc = path_get_open(st, path, out, &n);
	if (rc != SL_OK)
		return rc;
	if (n->kind == DOC_MAP)
		*out = n->u.m.n;
	else if (n->kind == DOC_ARR)
		*out = n->u.a.n;
	else
		return SL_EINVAL;
	return SL_OK;
}

static int
h_state_key(const sl_state *st, const char *path, size_t i, const char **out)
{
	doc_node *n;
	int       rc = path_get_open(st, path, out, &n);
	if (rc != SL_OK)
		return rc;
	if (n->kind != DOC_MAP)
		return SL_EINVAL;
	if (i >= n->u.m.n)
		return SL_ENOTFOUND;
	*out = n->u.m.e[i].key;
	return SL_OK;
}

static int
h_state_get_str(const sl_state *st, const char *path, const char **out)
{
	doc_node *n;
	int       rc = path_get(st, path, out, &n);
	if (rc != SL_OK)
		return rc;
	if (n->kind != DOC_STR)
		return SL_EINVAL;
	*out = n->u.s.p;
	return SL_OK;
}

static int
h_state_get_i64(const sl_state *st, const char *path, int64_t *out)
{
	doc_node *n;
	int       rc = path_get(st, path, out, &n);
	if (rc != SL_OK)
		return rc;
	if (n->kind != DOC_I64)
		return SL_EINVAL; /* above INT64_MAX too */
	*out = n->u.i;
	return SL_OK;
}

/* The value of an integer above INT64_MAX (a raw uint 64). */
static double
raw_u64(const doc_node *n)
{
	uint64_t v = 0;
	for (size_t i = 1; i < 9 && i < n->u.s.len; i++)
		v = v << 8 | (unsigned char) n->u.s.p[i];
	return (double) v;
}

static int
h_state_get_f64(const sl_state *st, const char *path, double *out)
{
	doc_node *n;
	int       rc = path_get(st, path, out, &n);
	if (rc != SL_OK)
		return rc;
	if (n->kind == DOC_I64)
		*out = (double) n->u.i;
	else if (n->kind == DOC_F64)
		*out = n->u.f;
	else if (doc_kind_of(n) == SL_KIND_INT)
		*out = raw_u64(n);
	else
		return SL_EINVAL;
	return SL_OK;
}

static int
h_state_get_bool(const sl_state *st, const char *path, bool *out)
{
	doc_node *n;
	int       rc = path_get(st, path, out, &n);
	if (rc != SL_OK)
		return rc;
	if (n->kind != DOC_BOOL)
		return SL_EINVAL;
	*out = n->u.b;
	return SL_OK;
}

static int
h_state_get_json(const sl_state *st, const char *path, const char **out)
{
	doc_node *n;
	int       rc = path_get(st, path, out, &n);
	if (rc != SL_OK)
		return rc;
	char *text = doc_to_json(n);
	if (text == NULL)
		return SL_ENOMEM;
	*out = host_scratch_copy(text, strlen(text));
	free(text);
	return *out != NULL ? SL_OK : SL_ENOMEM;
}

static int
h_state_get_msgpack(
    const sl_state *st, const char *path, const void **out, size_t *len)
{
	doc_node *n;
	int       rc = path_get(st, path, out, &n);
	if (rc != SL_OK)
		return rc;
	if (len == NULL)
		return SL_EINVAL;
	msgpack_sbuffer sb;
	msgpack_packer  pk;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	doc_pack(n, &pk);
	*out = sb.data != NULL ? host_scratch_copy(sb.data, sb.size) : NULL;
	*len = sb.size;
	msgpack_sbuffer_destroy(&sb);
	return *out != NULL ? SL_OK : SL_ENOMEM;
}

/* Put v (taken) at path. */
static int
path_put(sl_state *st, const char *path, doc_node *v)
{
	dpath p;
	int   rc = st != NULL ? dpath_parse(path, &p) : SL_EINVAL;
	if (rc != SL_OK) {
		doc_free(v);
		return rc;
	}
	return doc_put(st, &p, v);
}

static int
h_state_put_str(sl_state *st, const char *path, const char *val)
{
	doc_node v;
	if (val == NULL)
		return SL_EINVAL;
	if (doc_str(&v, val, strlen(val)) != SL_OK)
		return SL_ENOMEM;
	return path_put(st, path, &v);
}

static int
h_state_put_i64(sl_state *st, const char *path, int64_t val)
{
	doc_node v = { .kind = DOC_I64, .u.i = val };
	return path_put(st, path, &v);
}

static int
h_state_put_f64(sl_state *st, const char *path, double val)
{
	doc_node v = { .kind = DOC_F64, .u.f = val };
	return path_put(st, path, &v);
}

static int
h_state_put_bool(sl_state *st, const char *path, bool val)
{
	doc_node v = { .kind = DOC_BOOL, .u.b = val };
	return path_put(st, path, &v);
}

static int
h_state_put_nil(sl_state *st, const char *path)
{
	doc_node v = { .kind = DOC_NIL };
	return path_put(st, path, &v);
}

/*
 * Parse path, and the value that goes items levels below it (0: at it, 1:
 * into an array at it) from JSON text or, when json is NULL, msgpack.
 */
static int
path_value(sl_state *st, const char *path, int items, const char *json,
    const void *data, size_t len, dpath *p, doc_node *v)
{
	int rc = st != NULL ? dpath_parse(path, p) : SL_EINVAL;
	memset(v, 0, sizeof(*v));
	if (rc != SL_OK)
		return rc;
	/* maps and arrays above the value: the state's own and one per
	 * step, or one more for an array item */
	int room = SL_DOC_MAX_DEPTH - (int) p->n - items;
	if (room < 0)
		return SL_ETOOBIG;
	return json != NULL ? doc_from_json(json, room, v)
	                    : doc_from_msgpack(data, len, room, v);
}

static int
h_state_put_json(sl_state *st, const char *path, const char *json)
{
	dpath    p;
	doc_node v;
	int rc = json != NULL ? path_value(st, path, 0, json, NULL, 0, &p, &v)
	                      : SL_EINVAL;
	return rc != SL_OK ? rc : doc_put(st, &p, &v);
}

static int
h_state_put_msgpack(
    sl_state *st, const char *path, const void *data, size_t len)
{
	dpath    p;
	doc_node v;
	int      rc = data != NULL
	         ? path_value(st, path, 0, NULL, data, len, &p, &v)
	         : SL_EINVAL;
	return rc != SL_OK ? rc : doc_put(st, &p, &v);
}

static int
h_state_delete(sl_state *st, const char *path)
{
	dpath p;
	int   rc = st != NULL ? dpath_parse(path, &p) : SL_EINVAL;
	return rc != SL_OK ? rc : doc_delete(st, &p);
}

static int
h_state_array_append(sl_state *st, const char *path, const char *json)
{
	dpath    p;
	doc_node v;
	int rc = json != NULL ? path_value(st, path, 1, json, NULL, 0, &p, &v)
	                      : SL_EINVAL;
	return rc != SL_OK ? rc : doc_insert(st, &p, true, 0, &v);
}

static int
h_state_array_insert(
    sl_state *st, const char *path, size_t index, const char *json)
{
	dpath    p;
	doc_node v;
	int rc = json != NULL ? path_value(st, path, 1, json, NULL, 0, &p, &v)
	                      : SL_EINVAL;
	return rc != SL_OK ? rc : doc_insert(st, &p, false, index, &v);
}

static int
h_state_array_remove(sl_state *st, const char *path, size_t index)
{
	dpath p;
	int   rc = st != NULL ? dpath_parse(path, &p) : SL_EINVAL;
	return rc != SL_OK ? rc : doc_remove_item(st, &p, index);
}

/* ---- the table's state calls ---- */

void
host_state_calls(sl_host_api *t)
{
	t->state_str      = h_state_str;
	t->state_i64      = h_state_i64;
	t->state_f64      = h_state_f64;
	t->state_bool     = h_state_bool;
	t->state_set_str  = h_state_set_str;
	t->state_set_i64  = h_state_set_i64;
	t->state_set_f64  = h_state_set_f64;
	t->state_set_bool = h_state_set_bool;
	t->state_set_nil  = h_state_set_nil;
	t->state_remove   = h_state_remove;
	/* ABI 1.3 */
	t->state_kind         = h_state_kind;
	t->state_len          = h_state_len;
	t->state_key          = h_state_key;
	t->state_get_str      = h_state_get_str;
	t->state_get_i64      = h_state_get_i64;
	t->state_get_f64      = h_state_get_f64;
	t->state_get_bool     = h_state_get_bool;
	t->state_get_json     = h_state_get_json;
	t->state_get_msgpack  = h_state_get_msgpack;
	t->state_put_str      = h_state_put_str;
	t->state_put_i64      = h_state_put_i64;
	t->state_put_f64      = h_state_put_f64;
	t->state_put_bool     = h_state_put_bool;
	t->state_put_nil      = h_state_put_nil;
	t->state_put_json     = h_state_put_json;
	t->state_put_msgpack  = h_state_put_msgpack;
	t->state_delete       = h_state_delete;
	t->state_array_append = h_state_array_append;
	t->state_array_insert = h_state_array_insert;
	t->state_array_remove = h_state_array_remove;
}
