/*
 * Edits of a state by path (doc.h): each is checked whole before the state
 * changes (the path walked, the kinds on the way, the size limit), so an
 * error leaves the state as it was. The size is counted as it changes.
 */
#include "doc.h"

#include <string.h>

/* Whether the state may grow by add after losing sub (1.3 calls only). */
static bool
fits(const sl_state *st, size_t add, size_t sub)
{
	return add <= sub || st->bytes - sub + add <= SL_STATE_MAX_BYTES;
}

static void
count(sl_state *st, size_t add, size_t sub)
{
	st->bytes = st->bytes - sub + add;
}

/*
 * Walk segments [0, upto) of p from the root, opening raw maps and arrays
 * on the way. *at gets the first segment that names nothing (upto when
 * all do), *node the last node reached (the one segment *at looks in).
 * @return SL_OK; SL_EINVAL when a segment meets a value of another kind
 *         (a key on a non-map, an index on a non-array); as doc_open.
 */
static int
walk(sl_state *st, const dpath *p, size_t upto, size_t *at, doc_node **node)
{
	doc_node *n = &st->root;
	size_t    i;
	for (i = 0; i < upto; i++) {
		const dpath_seg *s    = &p->seg[i];
		doc_node        *next = NULL;
		int              rc   = doc_open(st, n);
		if (rc != SL_OK)
			return rc;
		if (s->is_index) {
			size_t k;
			if (n->kind != DOC_ARR)
				return SL_EINVAL;
			if (dpath_item(s->index, n->u.a.n, &k))
				next = &n->u.a.v[k];
		} else {
			if (n->kind != DOC_MAP)
				return SL_EINVAL;
			doc_entry *e = doc_map_find(n, s->key, s->klen);
			if (e != NULL)
				next = &e->val;
		}
		if (next == NULL)
			break;
		n = next;
	}
	*at   = i;
	*node = n;
	return SL_OK;
}

int
doc_get(sl_state *st, const dpath *p, doc_node **out)
{
	size_t    at;
	doc_node *n;
	int       rc = walk(st, p, p->n, &at, &n);
	if (rc == SL_EINVAL || (rc == SL_OK && at < p->n))
		return SL_ENOTFOUND;
	if (rc != SL_OK)
		return rc;
	*out = n;
	return SL_OK;
}

/*
 * Put v at p where segment at, a key of map n, names nothing: v wrapped in
 * new maps for the segments after it, added to n in one step. Takes v.
 */
static int
put_new(sl_state *st, const dpath *p, size_t at, doc_node *n, doc_node *v)
{
	int rc = SL_ENOTFOUND; /* an array item cannot be created */
	for (size_t i = at; i < p->n; i++)
		if (p->seg[i].is_index)
			goto fail;
	for (size_t i = p->n - 1; i > at; i--) {
		doc_node m;
		memset(&m, 0, sizeof(m));
		m.kind = DOC_MAP;
		if (doc_map_add(&m, p->seg[i].key, p->seg[i].klen, v)
		    != SL_OK) {
			rc = SL_ENOMEM;
			goto fail;
		}
		*v = m;
	}
	size_t add = DOC_HDR + p->seg[at].klen + doc_size(v);
	rc         = SL_ETOOBIG;
	if (!fits(st, add, 0))
		goto fail;
	rc = doc_map_add(n, p->seg[at].key, p->seg[at].klen, v);
	if (rc != SL_OK)
		goto fail;
	count(st, add, 0);
	return SL_OK;
fail:
	doc_free(v);
	return rc;
}

int
doc_put(sl_state *st, const dpath *p, doc_node *v)
{
	int rc = SL_EINVAL;
	if (p->n == 0) {
		size_t add = doc_size(v);
		if (v->kind != DOC_MAP)
			goto fail;
		rc = SL_ETOOBIG;
		if (!fits(st, add, st->bytes))
			goto fail;
		doc_free(&st->root);
		st->root  = *v;
		st->bytes = add;
		v->kind   = DOC_NIL;
		return SL_OK;
	}
	size_t           at;
	doc_node        *n, *slot = NULL;
	const dpath_seg *last = &p->seg[p->n - 1];
	if ((rc = walk(st, p, p->n - 1, &at, &n)) != SL_OK)
		goto fail;
	if (at < p->n - 1)
		return put_new(st, p, at, n, v);
	if ((rc = doc_open(st, n)) != SL_OK)
		goto fail;
	rc = SL_EINVAL;
	if (last->is_index) {
		size_t k;
		if (n->kind != DOC_ARR)
			goto fail;
		rc = SL_ENOTFOUND;
		if (!dpath_item(last->index, n->u.a.n, &k))
			goto fail;
		slot = &n->u.a.v[k];
	} else {
		if (n->kind != DOC_MAP)
			goto fail;
		doc_entry *e = doc_map_find(n, last->key, last->klen);
		if (e == NULL)
			return put_new(st, p, p->n - 1, n, v);
		slot = &e->val;
	}
	size_t add = doc_size(v), sub = doc_size(slot);
	rc = SL_ETOOBIG;
	if (!fits(st, add, sub))
		goto fail;
	doc_free(slot);
	*slot   = *v;
	v->kind = DOC_NIL;
	count(st, add, sub);
	return SL_OK;
fail:
	doc_free(v);
	return rc;
}

int
doc_delete(sl_state *st, const dpath *p)
{
	if (p->n == 0)
		return SL_EINVAL;
	size_t           at, k;
	doc_node        *n;
	const dpath_seg *last = &p->seg[p->n - 1];
	int              rc   = walk(st, p, p->n - 1, &at, &n);
	if (rc == SL_OK)
		rc = doc_open(st, n);
	if (rc == SL_EINVAL || (rc == SL_OK && at < p->n - 1))
		return SL_ENOTFOUND;
	if (rc != SL_OK)
		return rc;
	if (last->is_index) {
		if (n->kind != DOC_ARR
		    || !dpath_item(last->index, n->u.a.n, &k))
			return SL_ENOTFOUND;
		size_t sub = doc_size(&n->u.a.v[k]);
		doc_arr_del(n, k);
		count(st, 0, sub);
		return SL_OK;
	}
	doc_entry *e;
	if (n->kind != DOC_MAP
	    || (e = doc_map_find(n, last->key, last->klen)) == NULL)
		return SL_ENOTFOUND;
	size_t sub = DOC_HDR + e->klen + doc_size(&e->val);
	doc_map_del(n, (size_t) (e - n->u.m.e));
	count(st, 0, sub);
	return SL_OK;
}

int
doc_insert(
    sl_state *st, const dpath *p, bool at_end, size_t index, doc_node *v)
{
	size_t    at;
	doc_node *n;
	int       rc = walk(st, p, p->n, &at, &n);
	if (rc != SL_OK)
		goto fail;
	if (at < p->n) { /* absent: a new array of one item */
		doc_node a;
		rc = SL_ENOTFOUND;
		if (!at_end && index != 0)
			goto fail;
		memset(&a, 0, sizeof(a));
		a.kind = DOC_ARR;
		rc     = doc_arr_insert(&a, 0, v);
		if (rc != SL_OK)
			goto fail;
		return doc_put(st, p, &a);
	}
	if ((rc = doc_open(st, n)) != SL_OK)
		goto fail;
	rc = SL_EINVAL;
	if (n->kind != DOC_ARR)
		goto fail;
	rc = SL_ENOTFOUND;
	if (at_end)
		index = n->u.a.n;
	else if (index > n->u.a.n)
		goto fail;
	size_t add = doc_size(v);
	rc         = SL_ETOOBIG;
	if (!fits(st, add, 0))
		goto fail;
	if ((rc = doc_arr_insert(n, index, v)) != SL_OK)
		goto fail;
	count(st, add, 0);
	return SL_OK;
fail:
	doc_free(v);
	return rc;
}

int
doc_remove_item(sl_state *st, const dpath *p, size_t index)
{
	doc_node *n;
	int       rc = doc_get(st, p, &n);
	if (rc == SL_OK)
		rc = doc_open(st, n);
	if (rc != SL_OK)
		return rc;
	if (n->kind != DOC_ARR)
		return SL_EINVAL;
	if (index >= n->u.a.n)
		return SL_ENOTFOUND;
	size_t sub = doc_size(&n->u.a.v[index]);
	doc_arr_del(n, index);
	count(st, 0, sub);
	return SL_OK;
}

/* ---- top-level keys (the 1.0 calls: no size limit, as before) ---- */

doc_entry *
doc_root_find(const sl_state *st, const char *key, size_t klen)
{
	return doc_map_find(&st->root, key, klen);
}

int
doc_root_set(sl_state *st, const char *key, size_t klen, doc_node *v)
{
	doc_entry *e   = doc_root_find(st, key, klen);
	size_t     add = doc_size(v);
	if (e != NULL) {
		size_t sub = doc_size(&e->val);
		doc_free(&e->val);
		e->val  = *v;
		v->kind = DOC_NIL;
		count(st, add, sub);
		return SL_OK;
	}
	if (doc_map_add(&st->root, key, klen, v) != SL_OK) {
		doc_free(v);
		return SL_ENOMEM;
	}
	count(st, DOC_HDR + klen + add, 0);
	return SL_OK;
}

int
doc_root_remove(sl_state *st, const char *key, size_t klen)
{
	doc_entry *e = doc_root_find(st, key, klen);
	if (e == NULL)
		return SL_ENOTFOUND;
	size_t sub = DOC_HDR + e->klen + doc_size(&e->val);
	doc_map_del(&st->root, (size_t) (e - st->root.u.m.e));
	count(st, 0, sub);
	return SL_OK;
}
