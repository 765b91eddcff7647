/*
 * The state cache of a run: the states a processor knows by key (hash
 * table), the clean ones in LRU order so a continuous run keeps a bounded
 * number, and the dirty ones waiting for the next write (the dirty list).
 * Used by the emitting projections' runs (emitter_run.c) and the
 * processors' folds (proc_events.c): handlers change states here, in
 * memory, and one short write transaction stores the dirty ones.
 */
#ifndef SL_STATECACHE_H
#define SL_STATECACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * A key's state as the run knows it: the packed state (NULL: none, the
 * initial state applies), its result when known, and whether it waits for
 * a batch (dirty) or is in one not yet durable (pin_seq > done_seq).
 */
typedef struct centry {
	char          *key; /* NUL-terminated */
	size_t         key_len;
	void          *state; /* NULL: no state (deleted or never set) */
	size_t         state_len;
	size_t         state_cap; /* state's allocation (0: unknown) */
	bool           result_known;
	void          *result; /* NULL with result_known: no result */
	size_t         result_len;
	bool           dirty;
	uint64_t       pin_seq;
	struct centry *hnext;         /* hash chain */
	struct centry *lprev, *lnext; /* LRU, most recent first */
	struct centry *dnext;         /* dirty list */
} centry;

typedef struct cache {
	centry **tab;
	size_t   cap, n;
	centry  *lru_head, *lru_tail;
	centry  *dirty;
	centry  *hot; /* the last entry found or added (an event's key is
	                 looked up for its state and again to store it) */
} cache;

void    scache_lru_unlink(cache *c, centry *x);
void    scache_lru_front(cache *c, centry *x);
centry *scache_find(cache *c, const char *key, size_t n);
/* A new entry with no state (the caller fills it). NULL on OOM. */
centry *scache_add(cache *c, const char *key, size_t n);
void    scache_remove(cache *c, centry *x);
void    scache_clear(cache *c);
/* Drop clean entries no batch in flight needs, past the LRU bound. */
void scache_evict(cache *c, uint64_t done_seq, size_t keep);
/* qsort order of centry pointers: by key. */
int scache_cmp_entries(const void *a, const void *b);

#endif
