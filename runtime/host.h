/*
 * The host side of the plugin ABI: the sl_host_api table, and the concrete
 * sl_event / sl_state / sl_context objects handed to plugin callbacks.
 */
#ifndef SL_HOST_H
#define SL_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>
#include <sluice/plugin.h>

#include "event.h"

struct sl_event {
	const ev_view *v;
	const char *partition; /* partition id; for the log, the stream id */
};

enum state_kind {
	ST_NIL,
	ST_BOOL,
	ST_I64,
	ST_F64,
	ST_STR,
	ST_RAW /* any other msgpack value, kept as encoded bytes */
};

typedef struct state_field {
	char *key;
	enum state_kind kind;
	union {
		bool b;
		int64_t i;
		double f;
		struct {
			char *p; /* NUL-terminated for ST_STR */
			size_t len;
		} s;
	} u;
} state_field;

/** A read model state: a map of named fields, in insertion order. */
struct sl_state {
	state_field *fields;
	size_t n, cap;
};

struct sl_context {
	uint32_t attempt;
	const char *last_reason;
	bool failed;
	char reason[512];
};

/** The host table given to every plugin (static, never freed). */
const sl_host_api *host_api(void);

void state_init(sl_state *st);
void state_free(sl_state *st);
/** Replace st's contents with a decoded msgpack map. SL_OK or SL_EPROTO. */
int state_load(sl_state *st, const void *data, size_t len);
/** Pack st as a msgpack map. */
void state_pack(const sl_state *st, msgpack_packer *pk);

/**
 * Resolve a dotted path in a msgpack map (e.g. "account.id").
 * @return the object, or NULL when absent.
 */
const msgpack_object *host_path(const msgpack_object *map, const char *path);

/**
 * Release the strings content_str / metadata_str handed out on this thread.
 * Those strings live in a per-thread scratch arena (msgpack strings are not
 * NUL-terminated, so the host copies them); they stay valid until the next
 * host_scratch_reset() on the same thread. A processor calls it before each
 * plugin callback, so a string is valid until the callback returns.
 */
void host_scratch_reset(void);

#endif
