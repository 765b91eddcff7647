/* Failing units of a processor generation: see failset.h. */
#include "failset.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/errors.h>

#include "bytes.h"
#include "fnv.h"
#include "log.h"

/* The basis long units' keys were first hashed from (one digit short of
 * FNV1A_OFFSET): kept, since those keys are stored in the checkpoints db. */
#define FAILSET_HASH_BASIS 1469598103934665603ULL

#define FAILSET_KEY_UNIT 380 /* unit bytes kept in a record's key */
#define REC_FIXED        (8 + 8 + 4 + 1 + 2)

void
failset_init(failset *fs, const char *name, uint64_t gen)
{
	memset(fs, 0, sizeof(*fs));
	snprintf(fs->prefix, sizeof(fs->prefix), "fail:%s:%" PRIu64 ":", name,
	    gen);
}

void
failset_init_memory(failset *fs)
{
	failset_init(fs, "memory", 0);
	fs->memory_only = true;
}

static void
dirty_forget(failset *fs)
{
	for (size_t i = 0; i < fs->n_dirty; i++)
		free(fs->dirty[i]);
	fs->n_dirty = 0;
}

void
failset_free(failset *fs)
{
	for (size_t i = 0; i < fs->n; i++)
		free(fs->v[i].unit);
	free(fs->v);
	fs->v = NULL;
	fs->n = fs->cap = 0;
	dirty_forget(fs);
	free(fs->dirty);
	free(fs->dirty_len);
	fs->dirty     = NULL;
	fs->dirty_len = NULL;
	fs->dirty_cap = 0;
}

/* Remember a unit changed in memory only. */
static int
dirty_add(failset *fs, const char *unit, size_t ulen)
{
	if (fs->n_dirty == fs->dirty_cap) {
		size_t  cap = fs->dirty_cap ? fs->dirty_cap * 2 : 8;
		char  **d   = realloc(fs->dirty, cap * sizeof(*d));
		if (d == NULL)
			return SL_ENOMEM;
		fs->dirty   = d;
		size_t *l   = realloc(fs->dirty_len, cap * sizeof(*l));
		if (l == NULL)
			return SL_ENOMEM;
		fs->dirty_len = l;
		fs->dirty_cap = cap;
	}
	char *copy = malloc(ulen + 1);
	if (copy == NULL)
		return SL_ENOMEM;
	memcpy(copy, unit, ulen);
	copy[ulen]                  = '\0';
	fs->dirty[fs->n_dirty]      = copy;
	fs->dirty_len[fs->n_dirty++] = ulen;
	return SL_OK;
}

static int
unit_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	if (alen != blen)
		return alen < blen ? -1 : 1;
	return memcmp(a, b, alen);
}

/* Index of the unit, or where it would go (with *found false). */
static size_t
find_at(const failset *fs, const char *unit, size_t ulen, bool *found)
{
	size_t lo = 0, hi = fs->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = unit_cmp(fs->v[mid].unit, fs->v[mid].ulen, unit, ulen);
		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return lo;
}

fail_unit *
failset_find(failset *fs, const char *unit, size_t ulen)
{
	bool   found;
	size_t i = fs->n > 0 ? find_at(fs, unit, ulen, &found) : 0;
	return fs->n > 0 && found ? &fs->v[i] : NULL;
}

/* Versions are unique in the process, so two sets (or one set before and
 * after failset_init) never share one by chance. */
static uint64_t
next_version(void)
{
	static _Atomic uint64_t counter;
	return ++counter;
}

int
failset_copy(failset *dst, const failset *src)
{
	for (size_t i = 0; i < dst->n; i++)
		free(dst->v[i].unit);
	dst->n = 0;
	if (src->n > dst->cap) {
		fail_unit *v = realloc(dst->v, src->n * sizeof(*v));
		if (v == NULL)
			return SL_ENOMEM;
		dst->v   = v;
		dst->cap = src->n;
	}
	for (size_t i = 0; i < src->n; i++) {
		dst->v[i]      = src->v[i];
		dst->v[i].unit = malloc(src->v[i].ulen + 1);
		if (dst->v[i].unit == NULL) {
			dst->n = i;
			return SL_ENOMEM;
		}
		memcpy(dst->v[i].unit, src->v[i].unit, src->v[i].ulen + 1);
	}
	dst->n       = src->n;
	dst->version = src->version;
	return SL_OK;
}

/* Insert or update in memory only. */
static int
mem_put(failset *fs, const fail_unit *u)
{
	fs->version = next_version();
	bool   found;
	size_t i = find_at(fs, u->unit, u->ulen, &found);
	if (found) {
		char *keep = fs->v[i].unit;
		fs->v[i]      = *u;
		fs->v[i].unit = keep;
		return SL_OK;
	}
	if (fs->n == fs->cap) {
		size_t     cap = fs->cap ? fs->cap * 2 : 8;
		fail_unit *v   = realloc(fs->v, cap * sizeof(*v));
		if (v == NULL)
			return SL_ENOMEM;
		fs->v   = v;
		fs->cap = cap;
	}
	char *copy = malloc(u->ulen + 1);
	if (copy == NULL)
		return SL_ENOMEM;
	memcpy(copy, u->unit, u->ulen);
	copy[u->ulen] = '\0';
	memmove(&fs->v[i + 1], &fs->v[i], (fs->n - i) * sizeof(*fs->v));
	fs->v[i]      = *u;
	fs->v[i].unit = copy;
	fs->n++;
	return SL_OK;
}


static size_t
record_key(const failset *fs, const char *unit, size_t ulen, char *key,
    size_t klen)
{
	size_t plen = strlen(fs->prefix);
	memcpy(key, fs->prefix, plen);
	if (ulen <= FAILSET_KEY_UNIT) {
		memcpy(key + plen, unit, ulen);
		return plen + ulen;
	}
	memcpy(key + plen, unit, FAILSET_KEY_UNIT);
	size_t n = plen + FAILSET_KEY_UNIT;
	n += (size_t) snprintf(
	    key + n, klen - n, "#%016" PRIx64, fnv1a(FAILSET_HASH_BASIS, unit, ulen));
	return n;
}

static int
write_record(failset *fs, rmstore *rm, MDB_txn *txn, const fail_unit *u)
{
	char          key[600];
	size_t        klen = record_key(fs, u->unit, u->ulen, key, sizeof(key));
	size_t        rlen = strnlen(u->reason, sizeof(u->reason));
	unsigned char rec[REC_FIXED + FAILSET_UNIT_MAX + FAILSET_REASON];
	if (u->ulen > FAILSET_UNIT_MAX)
		return SL_EINVAL;
	put_be(rec, u->pos, 8);
	put_be(rec + 8, (uint64_t) u->next_try_ns, 8);
	put_be(rec + 16, u->attempts, 4);
	rec[20] = u->retry ? 1 : 0;
	put_be(rec + 21, u->ulen, 2);
	memcpy(rec + REC_FIXED, u->unit, u->ulen);
	memcpy(rec + REC_FIXED + u->ulen, u->reason, rlen);
	return rm_blob_write(rm, txn, key, klen, rec, REC_FIXED + u->ulen + rlen);
}

static int
delete_record(
    failset *fs, rmstore *rm, MDB_txn *txn, const char *unit, size_t ulen)
{
	char   key[600];
	size_t klen = record_key(fs, unit, ulen, key, sizeof(key));
	return rm_blob_del(rm, txn, key, klen);
}

int
failset_put(failset *fs, rmstore *rm, MDB_txn *txn, const fail_unit *u)
{
	if (u->ulen > FAILSET_UNIT_MAX)
		return SL_EINVAL;
	int rc = txn != NULL    ? write_record(fs, rm, txn, u)
	    : fs->memory_only ? SL_OK
	                      : dirty_add(fs, u->unit, u->ulen);
	return rc == SL_OK ? mem_put(fs, u) : rc;
}

int
failset_flush(failset *fs, rmstore *rm, MDB_txn *txn)
{
	int rc = SL_OK;
	for (size_t i = 0; i < fs->n_dirty && rc == SL_OK; i++) {
		const fail_unit *u
		    = failset_find(fs, fs->dirty[i], fs->dirty_len[i]);
		rc = u != NULL ? write_record(fs, rm, txn, u)
		               : delete_record(fs, rm, txn, fs->dirty[i],
		                     fs->dirty_len[i]);
	}
	if (rc == SL_OK)
		dirty_forget(fs);
	return rc;
}

int
failset_del(
    failset *fs, rmstore *rm, MDB_txn *txn, const char *unit, size_t ulen)
{
	int rc = txn != NULL    ? delete_record(fs, rm, txn, unit, ulen)
	    : fs->memory_only ? SL_OK
	                      : dirty_add(fs, unit, ulen);
	if (rc != SL_OK)
		return rc;
	bool   found;
	size_t i = fs->n > 0 ? find_at(fs, unit, ulen, &found) : 0;
	if (fs->n > 0 && found) {
		fs->version = next_version();
		free(fs->v[i].unit);
		memmove(&fs->v[i], &fs->v[i + 1],
		    (fs->n - i - 1) * sizeof(*fs->v));
		fs->n--;
	}
	return SL_OK;
}

static int
load_one(void *arg, const char *key, size_t klen, const void *data, size_t len)
{
	failset             *fs = arg;
	const unsigned char *d  = data;
	(void) key;
	(void) klen;
	if (len < REC_FIXED)
		return SL_ESTORAGE;
	fail_unit u = { 0 };
	u.pos         = get_be(d, 8);
	u.next_try_ns = (int64_t) get_be(d + 8, 8);
	u.attempts    = (uint32_t) get_be(d + 16, 4);
	u.retry       = d[20] != 0;
	u.ulen        = (size_t) get_be(d + 21, 2);
	if (len < REC_FIXED + u.ulen)
		return SL_ESTORAGE;
	u.unit      = (char *) d + REC_FIXED;
	size_t rlen = len - REC_FIXED - u.ulen;
	if (rlen >= sizeof(u.reason))
		rlen = sizeof(u.reason) - 1;
	memcpy(u.reason, d + REC_FIXED + u.ulen, rlen);
	u.reason[rlen] = '\0';
	return mem_put(fs, &u);
}

int
failset_load(failset *fs, rmstore *rm, MDB_txn *txn)
{
	for (size_t i = 0; i < fs->n; i++)
		free(fs->v[i].unit);
	fs->n = 0;
	dirty_forget(fs);
	fs->version = next_version();
	int rc = rm_blob_scan(rm, txn, fs->prefix, load_one, fs);
	if (rc != SL_OK)
		log_error("failset", "reading failing units %s: %s",
		    fs->prefix, sl_strerror(rc));
	return rc;
}

typedef struct key_list {
	char  **keys;
	size_t *lens;
	size_t  n, cap;
} key_list;

static int
collect_key(
    void *arg, const char *key, size_t klen, const void *data, size_t len)
{
	key_list *l = arg;
	(void) data;
	(void) len;
	if (l->n == l->cap) {
		size_t  cap  = l->cap ? l->cap * 2 : 16;
		char  **keys = realloc(l->keys, cap * sizeof(*keys));
		if (keys == NULL)
			return SL_ENOMEM;
		l->keys      = keys;
		size_t *lens = realloc(l->lens, cap * sizeof(*lens));
		if (lens == NULL)
			return SL_ENOMEM;
		l->lens = lens;
		l->cap  = cap;
	}
	if ((l->keys[l->n] = malloc(klen)) == NULL)
		return SL_ENOMEM;
	memcpy(l->keys[l->n], key, klen);
	l->lens[l->n++] = klen;
	return SL_OK;
}

int
failset_clear_gen(rmstore *rm, MDB_txn *txn, const char *name, uint64_t gen)
{
	failset fs;
	failset_init(&fs, name, gen);
	key_list l  = { 0 };
	int      rc = rm_blob_scan(rm, txn, fs.prefix, collect_key, &l);
	for (size_t i = 0; i < l.n; i++) {
		if (rc == SL_OK)
			rc = rm_blob_del(rm, txn, l.keys[i], l.lens[i]);
		free(l.keys[i]);
	}
	free(l.keys);
	free(l.lens);
	return rc;
}

fail_unit *
failset_next(failset *fs, int64_t now, bool *due)
{
	fail_unit *best = NULL;
	for (size_t i = 0; i < fs->n; i++) {
		fail_unit *u = &fs->v[i];
		if (!u->retry)
			continue;
		if (best == NULL || u->next_try_ns < best->next_try_ns
		    || (u->next_try_ns == best->next_try_ns
		        && u->pos < best->pos))
			best = u;
	}
	*due = best != NULL && best->next_try_ns <= now;
	return best;
}
