/*
 * The state cache (statecache.h).
 */
#include "statecache.h"

#include <sluice/errors.h>

#include "fnv.h"

#include <stdlib.h>
#include <string.h>

static uint64_t
key_hash(const char *k, size_t n)
{
	return fnv1a(FNV1A_OFFSET, k, n);
}

static void
centry_free(centry *c)
{
	free(c->key);
	free(c->state);
	free(c->result);
	free(c);
}

void
scache_lru_unlink(cache *c, centry *x)
{
	if (x->lprev != NULL)
		x->lprev->lnext = x->lnext;
	else
		c->lru_head = x->lnext;
	if (x->lnext != NULL)
		x->lnext->lprev = x->lprev;
	else
		c->lru_tail = x->lprev;
	x->lprev = x->lnext = NULL;
}

void
scache_lru_front(cache *c, centry *x)
{
	x->lprev = NULL;
	x->lnext = c->lru_head;
	if (c->lru_head != NULL)
		c->lru_head->lprev = x;
	c->lru_head = x;
	if (c->lru_tail == NULL)
		c->lru_tail = x;
}

centry *
scache_find(cache *c, const char *key, size_t n)
{
	if (c->cap == 0)
		return NULL;
	centry *x = c->hot;
	if (x != NULL && x->key_len == n && memcmp(x->key, key, n) == 0)
		return x;
	for (x = c->tab[key_hash(key, n) & (c->cap - 1)]; x != NULL;
	     x = x->hnext)
		if (x->key_len == n && memcmp(x->key, key, n) == 0)
			return c->hot = x;
	return NULL;
}

static int
cache_grow(cache *c)
{
	size_t   ncap = c->cap != 0 ? c->cap * 2 : 256;
	centry **nt   = calloc(ncap, sizeof(*nt));
	if (nt == NULL)
		return SL_ENOMEM;
	for (size_t i = 0; i < c->cap; i++)
		for (centry *x = c->tab[i], *next; x != NULL; x = next) {
			next     = x->hnext;
			size_t h = key_hash(x->key, x->key_len) & (ncap - 1);
			x->hnext = nt[h];
			nt[h]    = x;
		}
	free(c->tab);
	c->tab = nt;
	c->cap = ncap;
	return SL_OK;
}

/* A new entry with no state (the caller fills it). NULL on OOM. */
centry *
scache_add(cache *c, const char *key, size_t n)
{
	if (c->n + 1 > c->cap / 2 * 1 + c->cap / 4 && cache_grow(c) != SL_OK)
		return NULL;
	centry *x = calloc(1, sizeof(*x));
	if (x == NULL || (x->key = malloc(n + 1)) == NULL) {
		free(x);
		return NULL;
	}
	memcpy(x->key, key, n);
	x->key[n]  = '\0';
	x->key_len = n;
	size_t h   = key_hash(key, n) & (c->cap - 1);
	x->hnext   = c->tab[h];
	c->tab[h]  = x;
	c->n++;
	scache_lru_front(c, x);
	c->hot = x;
	return x;
}

void
scache_remove(cache *c, centry *x)
{
	centry **pp = &c->tab[key_hash(x->key, x->key_len) & (c->cap - 1)];
	while (*pp != x)
		pp = &(*pp)->hnext;
	*pp = x->hnext;
	scache_lru_unlink(c, x);
	c->n--;
	if (c->hot == x)
		c->hot = NULL;
	centry_free(x);
}

void
scache_clear(cache *c)
{
	for (size_t i = 0; i < c->cap; i++)
		for (centry *x = c->tab[i], *next; x != NULL; x = next) {
			next = x->hnext;
			centry_free(x);
		}
	free(c->tab);
	memset(c, 0, sizeof(*c));
}

/* Drop clean entries no batch in flight needs, past the LRU bound. */
void
scache_evict(cache *c, uint64_t done_seq, size_t keep)
{
	size_t skipped = 0;
	for (centry *x                                    = c->lru_tail, *prev;
	     x != NULL && c->n > keep && skipped < 256; x = prev) {
		prev = x->lprev;
		if (x->dirty || x->pin_seq > done_seq) {
			skipped++;
			continue;
		}
		scache_remove(c, x);
	}
}

int
scache_cmp_entries(const void *a, const void *b)
{
	const centry *x = *(centry *const *) a, *y = *(centry *const *) b;
	size_t        n = x->key_len < y->key_len ? x->key_len : y->key_len;
	int           r = memcmp(x->key, y->key, n);
	if (r != 0)
		return r;
	return x->key_len < y->key_len ? -1 : x->key_len > y->key_len;
}
