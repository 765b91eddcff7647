/*
 * A read model state as a document (ABI 1.3): a tree of maps, arrays and
 * scalars that a projection edits in memory while it handles one event, and
 * that the processor packs back to msgpack for LMDB. Maps and arrays loaded
 * from msgpack stay encoded (DOC_RAW) until a path walks into them, so a
 * state that is only read or changed at its top level packs to the very
 * bytes a 1.2 host wrote, and costs no more to load.
 */
#ifndef SL_DOC_H
#define SL_DOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>
#include <sluice/plugin.h>

#include "docpath.h"

/* The most a map, array or string header takes: sizes are counted with
 * it, so that they are an upper bound of the packed size. */
#define DOC_HDR 5

typedef enum doc_kind {
	DOC_NIL,
	DOC_BOOL,
	DOC_I64,
	DOC_F64,
	DOC_STR,
	/* any other msgpack value, kept as its encoded bytes: a map or an
	 * array not yet opened, bin, ext, an integer above INT64_MAX */
	DOC_RAW,
	DOC_MAP,
	DOC_ARR,
} doc_kind;

typedef struct doc_node  doc_node;
typedef struct doc_entry doc_entry;

struct doc_node {
	doc_kind kind;
	union {
		bool    b;
		int64_t i;
		double  f;
		struct {
			char  *p; /* DOC_STR: NUL-terminated; DOC_RAW: bytes */
			size_t len;
			bool   arena; /* p is in its state's arena: not freed */
		} s;
		struct {
			doc_entry *e; /* in insertion order */
			size_t     n, cap;
		} m;
		struct {
			doc_node *v;
			size_t    n, cap;
		} a;
	} u;
};

struct doc_entry {
	char    *key; /* NUL-terminated copy of klen bytes */
	size_t   klen;
	bool     karena; /* key is in its state's arena: not freed */
	doc_node val;
};

/** A state: a map, and an upper bound of its packed size (the size
 * limit of SL_STATE_MAX_BYTES is checked against it). */
struct sl_state {
	doc_node root; /* always DOC_MAP */
	size_t   bytes;
	/* state_load's keys and top-level strings and raw values, in one
	 * block freed with the state (nodes moved elsewhere must not
	 * outlive it: they never leave their state) */
	char *arena;
};

/** Free what n holds; n becomes nil. */
void doc_free(doc_node *n);
/** An upper bound of n's packed size (headers counted at 5 bytes). */
size_t doc_size(const doc_node *n);
/** Pack n (msgpack). */
void doc_pack(const doc_node *n, msgpack_packer *pk);
/** What a plugin sees n as (a raw value by its encoded type). */
sl_kind doc_kind_of(const doc_node *n);
/** out becomes a string: a copy of p[0..len). SL_OK or SL_ENOMEM. */
int doc_str(doc_node *out, const char *p, size_t len);
/**
 * A node for a decoded msgpack value: scalars typed, anything else raw.
 * @return SL_OK or SL_ENOMEM.
 */
int doc_from_mp(const msgpack_object *o, doc_node *out);
/**
 * A node for JSON text (any JSON value), nesting at most room maps and
 * arrays deep. @return SL_OK; SL_EINVAL (not JSON, duplicate keys);
 * SL_ETOOBIG (longer than SL_STATE_MAX_BYTES, or deeper than room);
 * SL_ENOMEM.
 */
int doc_from_json(const char *text, int room, doc_node *out);
/**
 * A node for one msgpack value of len bytes (nothing after it), nesting
 * at most room deep, its maps keyed by distinct strings without NUL.
 * @return as doc_from_json.
 */
int doc_from_msgpack(const void *data, size_t len, int room, doc_node *out);
/** n as compact JSON text (malloc'ed), or NULL when out of memory. */
char *doc_to_json(const doc_node *n);

/* ---- one map or array (sizes are the caller's to count) ---- */

/** The entry of key in map m, or NULL. */
doc_entry *doc_map_find(const doc_node *m, const char *key, size_t klen);
/** Add key with the value *v (moved in: *v becomes nil) at the end of m.
 * @return SL_OK or SL_ENOMEM (*v untouched). */
int doc_map_add(doc_node *m, const char *key, size_t klen, doc_node *v);
/** Remove entry i of m; the later ones move up. */
void doc_map_del(doc_node *m, size_t i);
/** Insert *v (moved in) before item i of array a (i == n: at the end).
 * @return SL_OK or SL_ENOMEM (*v untouched). */
int doc_arr_insert(doc_node *a, size_t i, doc_node *v);
/** Remove item i of a; the later ones move down. */
void doc_arr_del(doc_node *a, size_t i);

/* ---- a state: the processor's side ---- */

void state_init(sl_state *st);
void state_free(sl_state *st);
/** Replace st's contents with a decoded msgpack map. SL_OK, SL_EINVAL
 * (NULL), SL_EPROTO (not one map keyed by strings) or SL_ENOMEM. */
int state_load(sl_state *st, const void *data, size_t len);
/** Pack st as a msgpack map. */
void state_pack(const sl_state *st, msgpack_packer *pk);
/** The same bytes as state_pack, written straight into sb (emptied first,
 * grown once to an upper bound): no call per value. SL_OK or SL_ENOMEM
 * (sb then empty). */
int state_pack_sbuffer(const sl_state *st, msgpack_sbuffer *sb);

/* ---- a state by path (the host's state calls) ---- */

/**
 * The node at path p, opening raw maps and arrays on the way.
 * @return SL_OK; SL_ENOTFOUND (nothing there, also when a step meets
 *         another kind of value); SL_ENOMEM.
 */
int doc_get(sl_state *st, const dpath *p, doc_node **out);
/**
 * Open n if it is a raw map or array (into DOC_MAP / DOC_ARR); other
 * nodes are left as they are. @return SL_OK; SL_EINVAL (a map with a key
 * that is not a string); SL_ENOMEM; SL_EPROTO.
 */
int doc_open(sl_state *st, doc_node *n);
/**
 * Put v at p (p->n == 0: v, a map, becomes the state), creating missing
 * maps on the way. Takes v (freed on error). Refuses to grow the state
 * past SL_STATE_MAX_BYTES. @return SL_OK; SL_EINVAL (a step
 * meets a value of another kind; a non-map for the whole state);
 * SL_ENOTFOUND (an array item that does not exist); SL_ETOOBIG; SL_ENOMEM.
 */
int doc_put(sl_state *st, const dpath *p, doc_node *v);
/** Remove the map entry or array item at p. SL_OK, SL_ENOTFOUND,
 * SL_EINVAL (the whole state), SL_ENOMEM. */
int doc_delete(sl_state *st, const dpath *p);
/**
 * Insert v into the array at p before item index (at_end: after the
 * last), creating the array (and missing maps) when absent and index is
 * 0 or at_end. Takes v. @return as doc_put; SL_EINVAL when p names
 * another kind of value; SL_ENOTFOUND when index is past the end.
 */
int doc_insert(
    sl_state *st, const dpath *p, bool at_end, size_t index, doc_node *v);

/** Remove item index of the array at p. SL_OK; SL_ENOTFOUND (no value at
 * p, or index past the end); SL_EINVAL (p names a non-array). */
int doc_remove_item(sl_state *st, const dpath *p, size_t index);

/* ---- a state's top-level keys (the 1.0 state calls) ---- */

/** The entry of the top-level key, or NULL. */
doc_entry *doc_root_find(const sl_state *st, const char *key, size_t klen);
/** Set a top-level key (at the end when new); takes v. No size limit. */
int doc_root_set(sl_state *st, const char *key, size_t klen, doc_node *v);
/** Remove a top-level key, keeping the order of the others. */
int doc_root_remove(sl_state *st, const char *key, size_t klen);

#endif
