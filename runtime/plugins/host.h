/*
 * The host side of the plugin ABI: the sl_host_api table, and the concrete
 * sl_event / sl_state (doc.h) / sl_context objects handed to plugin
 * callbacks.
 */
#ifndef SL_HOST_H
#define SL_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>
#include <sluice/plugin.h>

#include "doc.h"
#include "event.h"
#include "plugins.h"

typedef struct emit_sink emit_sink;

struct sl_event {
	const ev_view *v;
	const char *partition; /* partition id; for the log, the stream id */
	/* host->event_link_target's: the target of link event v into *out
	 * (valid until the callback returns), set by the processor that
	 * delivers links; NULL: SL_ENOTFOUND */
	int (*resolve)(void *arg, const ev_view *link, const sl_event **out);
	void *resolve_arg;
};

/*
 * One callback's context. The processor sets attempt and last_reason (and
 * zeroes the rest) before the call; the plugin's fail / fail_with set the
 * others. fail: failed, reason, no_retry false, retry_after_ms 0.
 */
struct sl_context {
	uint32_t attempt;
	const char *last_reason;
	bool failed;
	char reason[512];
	/* appended for fail_with (ABI 1.1) */
	bool no_retry; /* the plugin said: do not retry (wait for an operator) */
	/* the delay the plugin asked for before the next attempt, capped at
	 * HOST_RETRY_AFTER_MAX_MS; 0: the host's own growing delay (and
	 * always 0 when no_retry) */
	uint32_t retry_after_ms;
	/* appended for ABI 1.2: where host->emit / link_to write, set by the
	 * emitting projection engine (runtime/processing/emitter.c); NULL elsewhere
	 * (ordinary processors), which makes them fail with SL_EINVAL */
	emit_sink *sink;
};

/*
 * What host->emit and host->link_to write into. The host checks the
 * arguments and that the stream is declared by def (exact name, or a
 * prefix ending in '*'; a system projection may write any stream), packs
 * the content (emit: the JSON object as a msgpack map; link_to: the
 * msgpack string "<revision>@<stream>") and calls write. A refused call
 * also fails the event: ctx->failed with the reason (no retry when the
 * call itself is wrong: an operator or a new definition must fix it).
 */
struct emit_sink {
	const proj_def *def;    /* the projection writing (declared streams) */
	bool            system; /* a system projection: any stream, '$' too */
	/* non-NULL: every call is refused with this reason (transient runs) */
	const char *refuse;
	/* SL_OK, or an error code with a reason in err; content is one
	 * packed msgpack value, metadata a packed map or NULL (copy them:
	 * valid only during the call) */
	int (*write)(emit_sink *sink, const char *stream, const char *type,
	    const void *content, size_t content_len, const void *metadata,
	    size_t metadata_len, char *err, size_t errlen);
	void *arg; /* the engine's */
};

/** Whether stream matches a declared pattern (exact, or prefix + '*'). */
bool host_stream_matches(const char *pattern, const char *stream);

/** The longest delay fail_with may ask for (24 h); longer ones are cut. */
#define HOST_RETRY_AFTER_MAX_MS (24u * 60u * 60u * 1000u)

/** The host table given to every plugin (static, never freed). */
const sl_host_api *host_api(void);

/**
 * Resolve a 1.0 dotted path in a msgpack map (e.g. "account.id"): maps
 * only, no escapes (the key selectors' and the 1.0 getters' paths).
 * @return the object, or NULL when absent.
 */
const msgpack_object *host_path(const msgpack_object *map, const char *path);

/**
 * Release the strings and bytes the event getters and the state's JSON and
 * msgpack getters handed out on this thread. They live in a per-thread
 * scratch arena (msgpack strings are not NUL-terminated, so the host copies
 * them); they stay valid until the next host_scratch_reset() on the same
 * thread. A processor calls it before each plugin callback, so they are
 * valid until the callback returns.
 */
void host_scratch_reset(void);

#endif
