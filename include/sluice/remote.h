/*
 * Remote projections and filters in C: the handler runs in this process,
 * the daemon keeps the log, checkpoints, retries and read models (Dolittle's
 * reverse calls; the protocol is docs/remote.md).
 *
 * Register a projection (sl_remote_register_projection) or a filter
 * (sl_remote_register_filter) with a daemon, then answer its calls with
 * sl_remote_run (blocking) or sl_remote_start (a thread of its own). The
 * library answers keep-alive pings, and registers again by itself when the
 * daemon restarts or the connection was lost for good: no request for 3
 * keep-alive periods. A handler is called once per event, on the running
 * thread, one call at a time; it reads the event and the read model state
 * through the sl_remote_* helpers below and returns what to do.
 * Under protocol 2 (the default) a call of the daemon carries runs of
 * events; the library folds each run by calling the handler once per event
 * with the state the previous event left, and answers the whole call. A
 * failing event ends its run (the events after it wait with the key, as
 * they do after any failure); to answer with the state before it, the
 * library folds the run's earlier events again, so handlers must compute
 * their answer and do nothing else.
 *
 * A call may reach the handler again after a reconnect (the daemon never
 * took its first answer); only the answer the daemon takes has an effect,
 * so a handler should do nothing but compute its answer.
 *
 * Threads: one sl_remote is driven by one thread. sl_remote_stop and
 * sl_remote_get_stats may be called from any thread (stop also from a
 * signal handler). Any number of sl_remote may run in one process.
 *
 * Errors: every call returns SL_OK or an sl_err code; the daemon's own
 * refusals keep their codes (SL_EEXIST, SL_EINVAL, SL_EVERSION, ...).
 */
#ifndef SLUICE_REMOTE_H
#define SLUICE_REMOTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sluice/client.h>
#include <sluice/errors.h>

#ifdef __cplusplus
extern "C" {
#endif

/** One registration and its connection. */
typedef struct sl_remote sl_remote;
/** One call being handled. Valid until the handler returns. */
typedef struct sl_remote_call sl_remote_call;

/** How a projection finds an event's read model key (as in plugin.h). */
typedef enum sl_remote_key_kind {
	SL_REMOTE_KEY_EVENT_SOURCE = 1, /**< the event's stream id */
	SL_REMOTE_KEY_PARTITION    = 2, /**< the partition (the stream id) */
	SL_REMOTE_KEY_PROPERTY     = 3, /**< a dotted path in the content */
	SL_REMOTE_KEY_STATIC       = 4, /**< a fixed key (arg) */
	SL_REMOTE_KEY_OCCURRED     = 5, /**< occurred, formatted by arg */
} sl_remote_key_kind;

/** Events of this type go to the key this selector finds. */
typedef struct sl_remote_selector {
	const char        *event_type; /**< event type name, 1..256 bytes */
	sl_remote_key_kind key;
	/** property path, static key or strftime pattern; else NULL */
	const char *arg;
} sl_remote_selector;

/** What a handler decided. */
typedef enum sl_remote_result {
	SL_REMOTE_REPLACE  = 0, /**< projections: store the (edited) state */
	SL_REMOTE_DELETE   = 1, /**< projections: delete the read model */
	SL_REMOTE_INCLUDED = 2, /**< filters: see sl_remote_include */
	SL_REMOTE_EXCLUDED = 3, /**< filters: not in the stream */
	SL_REMOTE_FAILED   = 4, /**< see sl_remote_fail */
} sl_remote_result;

/** The three kinds of filter. */
typedef enum sl_remote_filter_kind {
	SL_REMOTE_UNPARTITIONED = 1,
	SL_REMOTE_PARTITIONED   = 2,
	SL_REMOTE_PUBLIC        = 3, /**< partitioned, public events only */
} sl_remote_filter_kind;

/**
 * A handler: called once per event (with its key and state for a
 * projection), in log order per key (per source stream for a filter).
 * @param user  the definition's user pointer
 * @param call  the call; valid until the handler returns
 */
typedef sl_remote_result (*sl_remote_handler)(
    void *user, sl_remote_call *call);

/**
 * A remote projection. Everything is copied at registration. The
 * definition (id, scope, version, initial state, selectors) is hashed by
 * the daemon: registering a changed one rebuilds the read models.
 */
typedef struct sl_remote_projection {
	const char *id;      /**< UUID text; unique among the daemon's */
	const char *scope;   /**< UUID text, or NULL for the all-zero scope */
	const char *name;    /**< 1..256 bytes */
	uint32_t    version; /**< declared definition version */
	/** initial state of a read model: a JSON object text (NULL: {}) */
	const char               *initial_state_json;
	const sl_remote_selector *selectors; /**< at least one */
	size_t                    n_selectors;
	sl_remote_handler         on; /**< required */
	void                     *user;
} sl_remote_projection;

/** A remote filter. Everything is copied at registration. */
typedef struct sl_remote_filter {
	const char           *id;    /**< UUID text */
	const char           *scope; /**< UUID text, or NULL */
	const char           *name;
	uint32_t              version;
	sl_remote_filter_kind kind;
	sl_remote_handler     filter; /**< required */
	void                 *user;
} sl_remote_filter;

/** Log levels for sl_remote_options.log. */
enum {
	SL_REMOTE_LOG_ERROR = 0,
	SL_REMOTE_LOG_WARN  = 1,
	SL_REMOTE_LOG_INFO  = 2,
	SL_REMOTE_LOG_DEBUG = 3,
};

/** Options; NULL (or zeroed fields) for the defaults. */
typedef struct sl_remote_options {
	/** one API request (register) may take this long; 0: 5000 ms */
	int api_timeout_ms;
	/** where the library says what it does (reconnects, refusals);
	 * NULL: nowhere. Called on the running thread. */
	void (*log)(void *user, int level, const char *msg);
	void *log_user;
	/** the remote protocol to speak (docs/remote.md): 0 or 2, many
	 * events per call (the default); 1, one event per call (for a daemon
	 * older than protocol 2). The handler is called once per event
	 * either way. */
	uint32_t protocol;
	/** the token sent with the registration, for a daemon with an auth:
	 * section (docs/security.md); copied; NULL: none. The registration
	 * runs for the tenants the token may read, and only the same token
	 * may take it over. */
	const char *token;
	/** TLS for tls+tcp:// (the API's and the registration's endpoint,
	 * docs/security.md); NULL: none. Copied at registration. */
	const sl_tls_options *tls;
} sl_remote_options;

/**
 * Register a remote projection with the daemon at api_url and connect to
 * the URL its reply names. Returns once registered: calls are answered
 * only while sl_remote_run runs.
 * @param api_url  the daemon's API endpoint (endpoints.api)
 * @param out      receives the registration (sl_remote_close it)
 * @return SL_OK; SL_EINVAL (a bad definition: caught here or by the
 *         daemon); SL_EEXIST (the id is a plugin's, or a connected client
 *         registered it); SL_EVERSION; SL_ETOOBIG; SL_ENET or SL_ETIMEDOUT
 *         (the daemon cannot be reached); SL_ENOMEM.
 * @note On failure *out is NULL and sl_remote_open_error() says why.
 */
int sl_remote_register_projection(const char *api_url,
    const sl_remote_projection *def, const sl_remote_options *opts,
    sl_remote **out);

/** Register a remote filter; as sl_remote_register_projection. */
int sl_remote_register_filter(const char *api_url, const sl_remote_filter *def,
    const sl_remote_options *opts, sl_remote **out);

/**
 * Why the last registration on this thread failed.
 * @return a thread-local string ("" if none).
 */
const char *sl_remote_open_error(void);

/**
 * Answer calls until sl_remote_stop. Rides out a lost connection and a
 * daemon restart (registering again; a refusal of a connected duplicate is
 * retried, with a growing delay up to 5 s).
 * @return SL_OK once stopped; SL_EINVAL, SL_EVERSION or SL_ETOOBIG when the
 *         daemon refuses the definition on a new registration (a daemon
 *         of another version or configuration): it will not accept it
 *         again; SL_ENET if the socket failed.
 */
int sl_remote_run(sl_remote *r);

/** Run sl_remote_run on a thread of its own. @return SL_OK; SL_EINVAL (it
 * already runs); SL_ENOMEM. */
int sl_remote_start(sl_remote *r);

/** Make sl_remote_run return (within 100 ms). Any thread; signal-safe. */
void sl_remote_stop(sl_remote *r);

/** Stop (joining a thread sl_remote_start made), disconnect, free. */
void sl_remote_close(sl_remote *r);

/** What a registration has done so far. */
typedef struct sl_remote_stats {
	bool     connected;       /**< connected to the daemon's call URL */
	uint64_t calls;           /**< events handled (pings not counted) */
	uint64_t failed;          /**< answered "failed" */
	uint64_t pings;           /**< keep-alive pings answered */
	uint32_t registrations;   /**< accepted register requests */
	uint64_t session;         /**< the current registration's session */
	char     url[320];        /**< the URL dialed */
	char     last_error[256]; /**< "" if none */
} sl_remote_stats;

/** Copy the stats (any thread). */
void sl_remote_get_stats(sl_remote *r, sl_remote_stats *out);

/* ---- in a handler: the call ----
 * Strings returned here are NUL-terminated and valid until the handler
 * returns. Paths are dotted ("account.id") and walk nested maps. Getters
 * return SL_OK, SL_ENOTFOUND (absent, or nil) or SL_EINVAL (another type).
 */

/** The tenant the event belongs to. */
const char *sl_remote_tenant(const sl_remote_call *c);
/** Projections: the read model key; NULL for a filter. */
const char *sl_remote_key(const sl_remote_call *c);
/** Failed attempts on this event so far (0 on the first try). */
uint32_t sl_remote_attempt(const sl_remote_call *c);
/** The last attempt's failure reason ("" on the first try). */
const char *sl_remote_retry_reason(const sl_remote_call *c);

/** Event fields. */
const char *sl_remote_event_type(const sl_remote_call *c);
const char *sl_remote_event_stream(const sl_remote_call *c);
uint64_t    sl_remote_event_position(const sl_remote_call *c);
/** The whole event as the client library reads events (JSON texts for
 * content, metadata and the event). */
const sl_read_event *sl_remote_event(sl_remote_call *c);

/** Content values by dotted path (metadata: prefix the path with
 * "$metadata."). Integers as int64; f64 also takes integers. */
int sl_remote_get_str(sl_remote_call *c, const char *path, const char **out);
int sl_remote_get_i64(sl_remote_call *c, const char *path, int64_t *out);
int sl_remote_get_f64(sl_remote_call *c, const char *path, double *out);
int sl_remote_get_bool(sl_remote_call *c, const char *path, bool *out);

/* ---- in a projection's handler: the state (top-level keys) ---- */

int sl_remote_state_str(sl_remote_call *c, const char *key, const char **out);
int sl_remote_state_i64(sl_remote_call *c, const char *key, int64_t *out);
int sl_remote_state_f64(sl_remote_call *c, const char *key, double *out);
int sl_remote_state_bool(sl_remote_call *c, const char *key, bool *out);
/** Set a top-level key. @return SL_OK; SL_EINVAL (not a projection call);
 * SL_ENOMEM. */
int sl_remote_set_str(sl_remote_call *c, const char *key, const char *val);
int sl_remote_set_i64(sl_remote_call *c, const char *key, int64_t val);
int sl_remote_set_f64(sl_remote_call *c, const char *key, double val);
int sl_remote_set_bool(sl_remote_call *c, const char *key, bool val);
int sl_remote_remove(sl_remote_call *c, const char *key);
/** The state now, as a JSON object text. */
const char *sl_remote_state_json(sl_remote_call *c);
/** Replace the whole state. @return SL_OK; SL_EINVAL (not a JSON object,
 * or not a projection call). */
int sl_remote_set_state_json(sl_remote_call *c, const char *json);

/* ---- raw msgpack: the bytes the daemon sent, without JSON ----
 * For a handler that works on msgpack itself (sluice-host, which hands a
 * plugin the same event and state bytes the daemon's in-process path
 * does). Bytes returned are valid until the handler returns or, for the
 * state, until the state is changed.
 */

/** The event: one msgpack map, the committed event of docs/remote.md
 * (protocol.md's "A committed event"). @return SL_OK; SL_EINVAL (NULL
 * arguments); SL_ENOMEM. */
int sl_remote_event_msgpack(sl_remote_call *c, const void **out, size_t *len);
/** Projections: the state now (as the call brought it, or as the handler
 * set it) as one msgpack map. @return SL_OK; SL_EINVAL (a filter's call,
 * NULL arguments); SL_ENOMEM. */
int sl_remote_state_msgpack(sl_remote_call *c, const void **out, size_t *len);
/** Projections: replace the whole state with len bytes of one msgpack map
 * (copied; nothing may follow the map). The JSON state calls above see it
 * too. @return SL_OK; SL_EINVAL (not one map, a filter's call); SL_ENOMEM.
 */
int sl_remote_set_state_msgpack(
    sl_remote_call *c, const void *data, size_t len);

/* ---- outcomes ---- */

/**
 * Record a failure (printf-style reason) and return SL_REMOTE_FAILED:
 * retry false waits for an operator's `sluice retry` or `reset`;
 * retry_after_ms > 0 asks for that delay before the next attempt (0: the
 * daemon's growing delay).
 */
sl_remote_result sl_remote_fail(sl_remote_call *c, bool retry,
    uint32_t retry_after_ms, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/**
 * Filters: include the event, in partition (1..255 bytes; copied) for a
 * partitioned or public filter (NULL for an unpartitioned one), and return
 * SL_REMOTE_INCLUDED.
 */
sl_remote_result sl_remote_include(sl_remote_call *c, const char *partition);

#ifdef __cplusplus
}
#endif
#endif
