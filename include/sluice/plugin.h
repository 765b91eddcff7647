/*
 * The Sluice plugin ABI: the one header a plugin author includes.
 *
 * A plugin is a shared object exporting one function, sluice_plugin_init,
 * that returns a descriptor of its projections. The host hands the plugin a
 * const table of host services (sl_host_api); the plugin calls the host only
 * through that table (or through the helpers below, which wrap it) and never
 * links against host symbols.
 *
 * Ownership: the host owns every object it passes in (events, states,
 * contexts); they are valid until the callback returns. The plugin owns its
 * descriptor and everything it points to; they must stay valid until the
 * plugin is unloaded. Neither side frees the other's memory.
 *
 * Compatibility: every struct crossing the ABI starts with struct_size and
 * abi_version, and only grows by appending fields. The host refuses another
 * major ABI version and a struct_size smaller than it needs. A plugin built
 * for an older 1.x loads and behaves as it did: what it stores and reads
 * is unchanged (a 1.2 plugin's states are the same bytes under a 1.3 host).
 *
 * Threads: the host calls a plugin's callbacks on the runtime's threads,
 * never on NNG's. One thread runs a given processor (one projection or
 * filter for one tenant) and calls it one event at a time; the same
 * callback may run at the same time on other threads: other tenants'
 * processors, one-time queries (`sluice query`, run on a worker thread of
 * the API), result transforms answering get_all, and a filter's
 * validation after its code changed (see sl_code_change). Each call gets
 * its own event, state and context: use them only on the calling thread
 * and only until the callback returns (never keep a pointer to them or to
 * what the host returned for them). The plugin's globals and user
 * pointers are shared by all those threads: keep them read-only, or lock.
 * Every host function may be called from any callback at the same time as
 * from others; log also from threads of the plugin's own. sluice_plugin_init
 * runs once per load of the file, before any callback of that load, and
 * fini once, after the last of them has returned.
 *
 * ABI 1.3 adds documents: a state is a tree of maps, arrays and scalars
 * (not only a map of scalars), and content and metadata are read whole or
 * by path, with array indexes and keys that contain dots. See "Documents
 * and paths" before sl_host_api.
 */
#ifndef SLUICE_PLUGIN_H
#define SLUICE_PLUGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sluice/errors.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SL_ABI_MAJOR 1
#define SL_ABI_MINOR 3
/** The ABI version a plugin is compiled against: major << 16 | minor. */
#define SL_ABI_VERSION ((uint32_t) ((SL_ABI_MAJOR << 16) | SL_ABI_MINOR))
#define SL_ABI_MAJOR_OF(v) ((uint32_t) (v) >> 16)

/** Marks the one exported symbol of a plugin. */
#define SL_EXPORT __attribute__((visibility("default")))

/** Name of the exported init function, for dlsym. */
#define SL_PLUGIN_INIT_SYMBOL "sluice_plugin_init"

/** An event, read through sl_host_api. Valid until the callback returns. */
typedef struct sl_event sl_event;
/** A read model state being built. Valid until the callback returns. */
typedef struct sl_state sl_state;
/** The call context: retry state and failure reporting. */
typedef struct sl_context sl_context;

/** Which document of an event a 1.3 event call reads. */
typedef enum sl_part {
	SL_CONTENT  = 0, /**< the content (a map; a link's: a string) */
	SL_METADATA = 1, /**< the metadata (a map, maybe empty) */
} sl_part;

/** The kind of a value in a document (ABI 1.3). */
typedef enum sl_kind {
	SL_KIND_NONE  = 0, /**< no value there (only the sl_ helpers say so) */
	SL_KIND_NIL   = 1, /**< null */
	SL_KIND_BOOL  = 2,
	SL_KIND_INT   = 3, /**< an integer (above INT64_MAX: not an i64) */
	SL_KIND_FLOAT = 4,
	SL_KIND_STR   = 5,
	SL_KIND_BIN   = 6, /**< msgpack binary (JSON: hex text) */
	SL_KIND_ARRAY = 7,
	SL_KIND_MAP   = 8,
	SL_KIND_EXT   = 9, /**< a msgpack extension type (JSON: null) */
} sl_kind;

/**
 * Limits of documents (ABI 1.3). A state nests at most SL_DOC_MAX_DEPTH
 * maps and arrays, its own map counting as one (so that it always fits in
 * replies and the remote protocol, which msgpack-c decodes 32 levels
 * deep); a path has at most SL_DOC_MAX_DEPTH steps and SL_PATH_MAX bytes;
 * a 1.3 call that would grow a state past SL_STATE_MAX_BYTES packed bytes
 * (counted as an upper bound), or takes JSON text or msgpack longer than
 * that, is refused with SL_ETOOBIG and changes nothing. The 1.0 state
 * setters are not limited (as before 1.3).
 */
#define SL_DOC_MAX_DEPTH   16
#define SL_PATH_MAX        1024
#define SL_STATE_MAX_BYTES (4u << 20)

/**
 * How a projection finds the read model key of an event. An occurred
 * selector's strftime pattern must make keys: the plugin is refused at
 * load when it has a conversion strftime does not know ("%Q"), ends inside
 * one, gives an empty key or one over 511 bytes, or gives the same key for
 * every time ("daily", "%Z").
 */
typedef enum sl_key_kind {
	SL_KEY_EVENT_SOURCE = 1, /**< the event's stream id (event source id) */
	SL_KEY_PARTITION    = 2, /**< the partition id; for the log, the stream id */
	SL_KEY_PROPERTY     = 3, /**< a dotted path into the content, e.g. "account.id" */
	SL_KEY_STATIC       = 4, /**< a fixed key (arg) */
	SL_KEY_OCCURRED     = 5, /**< occurred time formatted with strftime pattern (arg) */
} sl_key_kind;

/** One selector: events of this type go to the key this selector finds. */
typedef struct sl_selector {
	const char *event_type; /**< event type name */
	sl_key_kind key;        /**< key selector kind */
	const char *arg; /**< property path, static key or time pattern; else NULL */
} sl_selector;

/**
 * Where a projection or filter reads from (ABI 1.3: sl_projection.sources,
 * sl_filter.sources). Without sources a 1.3 definition reads the whole
 * tenant log ($any). Either way, events of `$`-prefixed (system) streams
 * and link events are delivered only when source_flags asks for them
 * (SL_SOURCE_SYSTEM_STREAMS, SL_SOURCE_LINKS), except that a source naming
 * a `$` stream, prefix or category reads it. Definitions built for ABI 1.0
 * to 1.2 read the whole tenant log, system streams and links included, as
 * before. The host skips an event no source selects (and, for a
 * projection, whose type no selector names) without decoding it.
 */
typedef enum sl_source_kind {
	SL_SOURCE_ALL      = 1, /**< the whole tenant log; name NULL */
	SL_SOURCE_STREAM   = 2, /**< one stream: name is its id */
	SL_SOURCE_PREFIX   = 3, /**< streams whose id starts with name */
	/** streams of category name: the part of the id before the
	 * system projections' separator (system_projections.category_separator,
	 * "-" by default: "account-1" is of category "account") */
	SL_SOURCE_CATEGORY = 4,
} sl_source_kind;

/** One source, optionally of some event types only. */
typedef struct sl_source {
	sl_source_kind     kind;
	const char        *name;  /**< stream, prefix or category; see kind */
	const char *const *types; /**< event types (NULL: all) */
	size_t             n_types;
} sl_source;

/** source_flags (ABI 1.3). */
#define SL_SOURCE_SYSTEM_STREAMS 0x1u /**< `$` streams too */
/** link events too (type "$>", host->event_link_target resolves one;
 * and "$@", stream links: the content names the stream) */
#define SL_SOURCE_LINKS 0x2u

/** What a projection's on() callback decided. */
typedef enum sl_outcome {
	SL_REPLACE = 0, /**< store the (modified) state */
	SL_DELETE  = 1, /**< delete the read model for this key */
	SL_FAIL    = 2, /**< processing failed: see sl_host_api.fail */
} sl_outcome;

/**
 * A projection: folds selected events into read models, one per key.
 * The definition (id, scope, initial state, selectors, version) is hashed by
 * the host; when it changes, the read models are rebuilt from position 0.
 */
typedef struct sl_projection {
	uint32_t struct_size; /**< sizeof(sl_projection) as compiled */
	uint32_t abi_version; /**< SL_ABI_VERSION */
	const char *id;    /**< UUID text; unique among loaded projections */
	const char *scope; /**< UUID text, or NULL for the all-zero scope */
	const char *name;  /**< human-readable name */
	uint32_t version;  /**< declared definition version; bump to rebuild */
	/** Initial state of a read model, as a JSON object text. Required. */
	const char *initial_state_json;
	const sl_selector *selectors; /**< at least one */
	size_t n_selectors;
	/**
	 * Required. Called once per selected event, in log order per key, with
	 * the key's current state (the initial state if it has none). Modify
	 * the state through the host and return SL_REPLACE, or return SL_DELETE,
	 * or report a failure with host->fail() and return SL_FAIL.
	 * @param user  the user pointer of this struct
	 * @param key   the read model key (NUL-terminated), valid for the call
	 */
	sl_outcome (*on)(void *user, const sl_event *event, const char *key,
	    sl_state *state, sl_context *ctx);
	void *user; /**< passed to on() */

	/* ABI 1.2 (read only when struct_size covers them) */
	/**
	 * The streams this projection writes with host->emit / link_to: exact
	 * names, or prefixes ending in '*' ("summary-*"). NULL-free array of
	 * n_emits entries. Names may not start with '$' (reserved for the
	 * system projections). A projection that declares streams (or has a
	 * result transform) is an emitting projection: it owns what it
	 * declares, its state and checkpoint live in the event log and commit
	 * in one transaction with what it wrote (exactly once). Another
	 * loaded projection declaring an overlapping stream is refused.
	 */
	const char *const *emits;
	size_t n_emits;
	/**
	 * Optional result transform (EventStoreDB's transformBy/outputState):
	 * called after a key's state changed; fill result (empty on entry)
	 * and return SL_REPLACE, or return SL_DELETE for "no result". When
	 * the result differs from the one before the event, the host writes
	 * it as a "Result" event to stream "$projections-<name>-<key>-result"
	 * ("ResultRemoved" when it went away) and, as EventStoreDB does,
	 * links it ("$>") into "$projections-<name>-result"; a projection
	 * whose keys are all static writes its results to that root stream
	 * itself (see also result_stream). One-time queries return it with the
	 * state. Result streams are owned like declared ones: of two
	 * projections whose result streams overlap (names "cart" and
	 * "cart-lines"), the second does not run; status and plugins show it
	 * as "refused", with why.
	 */
	sl_outcome (*result)(void *user, const char *key, const sl_state *state,
	    sl_state *result);

	/* ABI 1.3 (read only when struct_size covers them) */
	/** Where it reads from (see sl_source_kind); NULL with n_sources 0:
	 * the whole tenant log. Part of the definition: a change rebuilds. */
	const sl_source *sources;
	size_t           n_sources;
	uint32_t         source_flags; /**< SL_SOURCE_SYSTEM_STREAMS, _LINKS */
	/**
	 * Optional (EventStoreDB's $init per partition and $created): called
	 * once for a key that has no state yet, before on() gets its first
	 * event (that event is passed), with the initial state to complete.
	 * Return SL_REPLACE, or fail as on() does (the event then fails).
	 * Same threads and lifetimes as on(). Not part of the definition's
	 * hash: what it computes is code, as on()'s is.
	 */
	sl_outcome (*created)(void *user, const sl_event *event,
	    const char *key, sl_state *state, sl_context *ctx);
	/**
	 * Optional (EventStoreDB's $initShared / bi-state): the initial state
	 * shared by every key, a JSON object text; NULL: none. on(),
	 * created() and deleted() read and change it through
	 * host->shared_state(ctx); it
	 * is stored with the keys' states and the checkpoint (exactly once),
	 * and what a failed event did to it is undone. Part of the
	 * definition.
	 */
	const char *shared_initial_state_json;
	/**
	 * Optional (EventStoreDB's $deleted): called when a stream this
	 * projection reads is deleted (the log's "$streamDeleted" notice in
	 * "$deleted"), for the key that is the stream's id, when that key
	 * has a state. Return SL_REPLACE (keep the changed state), SL_DELETE,
	 * or fail as on() does. The projection's events of that stream were
	 * folded before; a rebuild folds them again (the processors read the
	 * log as it was written, deleted events too), then this call.
	 */
	sl_outcome (*deleted)(void *user, const char *stream, const char *key,
	    sl_state *state, sl_context *ctx);
	/**
	 * Optional (EventStoreDB's partitionBy): the read model key of a
	 * selected event, computed by the plugin instead of the selector's
	 * key kind (the selectors still say which event types are handled).
	 * Called by the processor once per selected event before on(), on
	 * its thread (threads and lifetimes as on()). Write the key (1 to
	 * len - 1 bytes, NUL-terminated) into buf and return SL_OK; return
	 * SL_ENOTFOUND to skip the event (no key: it is not handled); any
	 * other code is "no key": buf may hold the reason, and the event
	 * fails (not retried: only a new definition, which rebuilds, can
	 * find its key). NULL: the selectors' key kinds. Not part of the
	 * definition's hash: bump version when the keys it gives change.
	 * Read only when struct_size covers it.
	 */
	int (*key)(void *user, const sl_event *event, char *buf, size_t len);
	/**
	 * Optional (EventStoreDB's outputTo(resultStream, pattern) and
	 * options({resultStreamName})): where the host writes the results
	 * of the result transform. result_stream is the result stream of a
	 * projection whose keys are all static (one state; EventStoreDB's
	 * root partition); NULL: "$projections-<name>-result".
	 * partition_result_stream is the result stream of each key, "{0}"
	 * standing for the key (it must hold "{0}" once); NULL:
	 * "$projections-<name>-{0}-result". A name is 1..256 bytes, holds no
	 * '*', and starts with '$' only as "$projections-<name>-" does. The
	 * projection owns them as it owns its declared streams (a pattern:
	 * every stream that starts with the part before "{0}"); a projection
	 * whose result streams overlap another's is refused. Part of the
	 * definition when set. Read only when struct_size covers them.
	 */
	const char *result_stream;
	const char *partition_result_stream;
	/**
	 * Optional: the result transform with a reason, used instead of
	 * result when set (keep result set too for older hosts). As result;
	 * on SL_FAIL write why the transform failed (NUL-terminated, at most
	 * whylen bytes) into why: the key fails with that reason and is not
	 * retried by itself (the transform sees only the state: a retry
	 * gives the same), it waits for `sluice retry` or a new definition.
	 * Threads and lifetimes as result. Read only when struct_size covers
	 * it.
	 */
	sl_outcome (*result_reason)(void *user, const char *key,
	    const sl_state *state, sl_state *result, char *why, size_t whylen);
} sl_projection;

/** The three kinds of filter (Dolittle's). */
typedef enum sl_filter_kind {
	SL_FILTER_UNPARTITIONED = 1, /**< included?; one stream, one order */
	SL_FILTER_PARTITIONED   = 2, /**< included? + partition id */
	/** partitioned, sees only events committed as public; its stream is
	 * a public stream */
	SL_FILTER_PUBLIC = 3,
} sl_filter_kind;

/** What a filter's filter() callback decided. */
typedef enum sl_verdict {
	SL_EXCLUDED = 0, /**< not in the filter's stream */
	SL_INCLUDED = 1, /**< in the stream (partitioned: in *partition) */
	SL_FAILED   = 2, /**< could not decide: see sl_host_api.fail */
} sl_verdict;

/**
 * What the host does when a filter's code changed but its definition did
 * not (ABI 1.3, sl_filter.on_code_change). A reload of a plugin file
 * whose bytes changed while a filter's id, scope, kind and version stayed
 * the same starts a validation per tenant, Dolittle's way: on a thread of
 * its own, the new filter() is run over the log from position 0 up to the
 * checkpoint of the stream being served, and the (position, partition)
 * entries it would include are compared with the stored stream. Equal:
 * nothing changes. Different (some event is included, left out or put in
 * another partition by the new code), the first such log position N is
 * logged and this field decides. Meanwhile the processor goes on with the
 * new code; a newer reload cancels a validation still running.
 *
 * The validation calls filter() as the processor does (once per event of
 * the tenant, public events only for a public filter), at the same time
 * as the processors of other tenants and that tenant's own processor, with
 * attempt 0. A filter() that fails (SL_FAILED, a bad partition) makes the
 * validation inconclusive: nothing is done.
 */
typedef enum sl_code_change {
	/** Rebuild the stream from position 0 with the new code, as `sluice
	 * reset` does (queries read the old one until it has caught up).
	 * The default, also for a filter built for ABI 1.1 or 1.2. */
	SL_CODE_CHANGE_REBUILD = 0,
	/** Stop the filter and show it failed, with the reason "code
	 * changed without a version bump: stream differs at position N";
	 * its old stream is still served. `sluice retry` goes on with the
	 * new code from the checkpoint, `sluice reset` rebuilds, a build
	 * with another definition version rebuilds, and a later reload
	 * whose validation finds the stream equal goes on. Kept across
	 * restarts. */
	SL_CODE_CHANGE_FAIL = 1,
} sl_code_change;

/**
 * A filter (ABI 1.1): builds a stream, an index of the log positions of the
 * events it includes, per tenant (and per partition when partitioned). The
 * definition (id, scope, kind, version) is hashed by the host; when it
 * changes, the stream is rebuilt from position 0. When only its code
 * changes, the stream is validated (see sl_code_change).
 */
typedef struct sl_filter {
	uint32_t struct_size; /**< sizeof(sl_filter) as compiled */
	uint32_t abi_version; /**< SL_ABI_VERSION */
	const char *id;    /**< UUID text; unique among loaded processors */
	const char *scope; /**< UUID text, or NULL for the all-zero scope */
	const char *name;  /**< human-readable name */
	uint32_t version;  /**< declared definition version; bump to rebuild */
	sl_filter_kind kind;
	/**
	 * Required. Called once per event of the tenant (public filters: once
	 * per public event), in log order per source stream. Return
	 * SL_INCLUDED or SL_EXCLUDED, or report a failure with host->fail()
	 * (or fail_with) and return SL_FAILED. A partitioned or public filter
	 * that includes an event sets *partition to the partition id (a
	 * NUL-terminated string of 1..255 bytes, valid until the callback
	 * returns; the host copies it). Unpartitioned filters ignore it.
	 */
	sl_verdict (*filter)(void *user, const sl_event *event,
	    const char **partition, sl_context *ctx);
	void *user; /**< passed to filter() */

	/* ABI 1.3 (read only when struct_size covers them) */
	/** Where it reads from, as a projection's (sl_source_kind). */
	const sl_source *sources;
	size_t           n_sources;
	uint32_t         source_flags;
	/** What a code change without a version bump does to the stream
	 * when the validation finds it differs (see sl_code_change). Not
	 * part of the definition: changing it rebuilds nothing. Another
	 * value refuses the plugin. */
	sl_code_change on_code_change;
} sl_filter;

/** The descriptor a plugin returns from sluice_plugin_init. */
typedef struct sl_plugin_desc {
	uint32_t struct_size; /**< sizeof(sl_plugin_desc) as compiled */
	uint32_t abi_version; /**< SL_ABI_VERSION */
	const char *name;     /**< plugin name */
	const char *version;  /**< plugin version text, e.g. "1.2.0" */
	const sl_projection *const *projections;
	size_t n_projections;
	/** Optional: called before the plugin is unloaded. */
	void (*fini)(void);
	/* ABI 1.1 (read only when struct_size covers them) */
	const sl_filter *const *filters;
	size_t n_filters;
} sl_plugin_desc;

/** Log levels for sl_host_api.log. */
enum { SL_LOG_ERROR = 0, SL_LOG_WARN = 1, SL_LOG_INFO = 2, SL_LOG_DEBUG = 3 };

/**
 * Documents and paths (ABI 1.3).
 *
 * A read model's state is a document: a map whose values are scalars
 * (null, bool, integer, float, string), maps (string keys, kept in
 * insertion order) and arrays, nested up to SL_DOC_MAX_DEPTH. It is stored
 * as msgpack in LMDB and get_one / get_all return it as stored. An event's
 * content and metadata are documents too (read only).
 *
 * A path names a value in a document, step by step from the top:
 *
 *   ""                    the whole document (NULL too)
 *   name                  the value of key "name" in the top map
 *   customer.name         key "name" in the map at key "customer"
 *   lines[0]              the first item of the array at "lines"
 *   lines[-1].qty         "qty" of the last item (negative: from the end)
 *   coupons["SPRING.10"]  a key in brackets and quotes: any bytes but NUL,
 *                         with '"' written \" and '\' written \\
 *   ["a.b"]               key "a.b" of the top map (not b in map a)
 *
 * A plain key is one or more bytes other than '.' and '['; '.' starts the
 * next plain key, '[' an index ([N], [-N], decimal) or a quoted key. An
 * index names an array item and a key a map entry, nothing else. A path
 * that breaks these rules is SL_EINVAL; one over SL_PATH_MAX bytes or
 * SL_DOC_MAX_DEPTH steps is SL_ETOOBIG. sl_path_key() appends a key to a
 * path, quoting it when needed.
 *
 * Reading (event_* and state_get_*, _kind, _len, _key): SL_OK; SL_ENOTFOUND
 * when the path names no value (also when a step meets a value of another
 * kind: a key on an array, an index past the end); SL_EINVAL for a bad
 * path or argument, or when a typed getter finds another kind. An i64
 * getter takes integers that fit int64_t; an f64 getter integers and
 * floats. Strings containing NUL read cut at the first NUL (read them as
 * JSON or msgpack instead). JSON is compact UTF-8 text (binary as hex
 * text, extension types and non-finite floats as null); msgpack is the
 * value's encoding.
 *
 * Writing (state_put_*, _delete, _array_*): the state changes completely
 * or not at all. Putting at a path creates the maps missing on the way
 * ("totals.amount" on a state without "totals" creates it) but never an
 * array item: SL_ENOTFOUND. A step that meets another kind of value
 * ("name.first" where "name" is a string) is SL_EINVAL: the value is not
 * replaced. Putting at "" replaces the whole state (it must be a map).
 * JSON text and msgpack given to put, append and insert must be one whole
 * value (JSON objects without duplicate keys; msgpack maps keyed by
 * distinct strings without NUL) and fit at the path within
 * SL_DOC_MAX_DEPTH: else SL_EINVAL (or SL_ETOOBIG for the depth). Any
 * write may also fail with SL_ENOMEM (nothing changed).
 *
 * Lifetimes: strings and bytes returned for an event are owned by the
 * host and valid until the callback returns. Those returned for a state:
 * a string or key until that value (or a map or array holding it) is
 * replaced or removed, or the callback returns, whichever is first; JSON
 * and msgpack until the callback returns. Never free them. Reading a
 * state may decode parts of it (hence the threads rule above); it never
 * changes what the state holds.
 *
 * The 1.0 calls (content_str ... state_remove) keep their 1.0 meaning:
 * their content and metadata paths are dotted and walk maps only ("a.b"
 * is key b in map a; "tags[0]" is one key), and their state keys are top
 * level keys taken as they are ("a.b" is one key, the same as the 1.3
 * path ["a.b"]).
 */

/**
 * Services the host offers a plugin. Appended to only; check struct_size
 * before using a field added after ABI 1.0 (the sl_ helpers do).
 *
 * 1.0 getters return SL_OK, SL_ENOTFOUND when the field or path is absent,
 * or SL_EINVAL when it has another type. Returned strings are borrowed from
 * the host, NUL-terminated, and valid until the callback returns.
 * Integer getters accept msgpack integers; float getters accept integers and
 * floats. 1.0 paths are dotted ("account.id") and walk nested maps.
 */
typedef struct sl_host_api {
	uint32_t struct_size;
	uint32_t abi_version;

	void (*log)(int level, const char *msg);

	/* event fields */
	const char *(*event_type)(const sl_event *ev);
	uint32_t (*event_generation)(const sl_event *ev);
	const char *(*event_tenant)(const sl_event *ev);
	const char *(*event_stream)(const sl_event *ev);
	const char *(*event_partition)(const sl_event *ev);
	uint64_t (*event_position)(const sl_event *ev);
	uint64_t (*event_revision)(const sl_event *ev);
	int64_t (*event_occurred)(const sl_event *ev); /**< ns since epoch, UTC */
	bool (*event_public)(const sl_event *ev);
	const char *(*event_id)(const sl_event *ev); /**< UUID text */
	const char *(*event_correlation_id)(const sl_event *ev);
	const char *(*event_causation_id)(const sl_event *ev);

	/* event content (and metadata) by dotted path */
	int (*content_str)(const sl_event *ev, const char *path, const char **out);
	int (*content_i64)(const sl_event *ev, const char *path, int64_t *out);
	int (*content_f64)(const sl_event *ev, const char *path, double *out);
	int (*content_bool)(const sl_event *ev, const char *path, bool *out);
	int (*metadata_str)(const sl_event *ev, const char *path, const char **out);

	/* state: a map of fields; top-level keys */
	int (*state_str)(const sl_state *st, const char *key, const char **out);
	int (*state_i64)(const sl_state *st, const char *key, int64_t *out);
	int (*state_f64)(const sl_state *st, const char *key, double *out);
	int (*state_bool)(const sl_state *st, const char *key, bool *out);
	int (*state_set_str)(sl_state *st, const char *key, const char *val);
	int (*state_set_i64)(sl_state *st, const char *key, int64_t val);
	int (*state_set_f64)(sl_state *st, const char *key, double val);
	int (*state_set_bool)(sl_state *st, const char *key, bool val);
	int (*state_set_nil)(sl_state *st, const char *key);
	int (*state_remove)(sl_state *st, const char *key);

	/* context */
	uint32_t (*retry_attempt)(const sl_context *ctx); /**< 0 on first try */
	const char *(*retry_reason)(const sl_context *ctx); /**< "" if none */
	/**
	 * Record why processing failed; the host copies the text. Returns
	 * SL_FAIL so a handler can write: return host->fail(ctx, "why");
	 */
	sl_outcome (*fail)(sl_context *ctx, const char *reason);

	/* ABI 1.1 */
	/**
	 * Record a failure with a retry decision: retry false stops the
	 * failing processor (or partition / key) until an operator's
	 * `sluice retry` or `reset`; retry_after_ms > 0 asks for that delay
	 * before the next attempt instead of the host's growing delay
	 * (capped at 24 h). Returns SL_FAIL (== SL_FAILED).
	 */
	sl_outcome (*fail_with)(sl_context *ctx, const char *reason, bool retry,
	    uint32_t retry_after_ms);

	/* ABI 1.2: writing from an emitting projection (sl_projection.emits) */
	/**
	 * Write a new event (type, content as a JSON object text) to stream.
	 * It is written in the same transaction as the state and checkpoint
	 * of the event being handled: exactly once, also across a crash.
	 * @return SL_OK; SL_EINVAL (not an emitting projection, stream not
	 * declared, bad type or JSON); SL_EOWNED (another projection owns
	 * the stream); SL_ETOOBIG.
	 */
	int (*emit)(sl_context *ctx, const char *stream, const char *type,
	    const char *content_json);
	/**
	 * Write a link event to stream: type "$>", content the string
	 * "<revision>@<stream of ev>" (as EventStoreDB writes links).
	 * @return as emit.
	 */
	int (*link_to)(sl_context *ctx, const char *stream, const sl_event *ev);

	/* ABI 1.3: events as documents ("Documents and paths" above). part
	 * is SL_CONTENT or SL_METADATA (another value: SL_EINVAL). */
	/** The kind of the value at path into *out. */
	int (*event_kind)(
	    const sl_event *ev, sl_part part, const char *path, sl_kind *out);
	/** The number of items (array) or keys (map) at path; SL_EINVAL for
	 * another kind. */
	int (*event_len)(
	    const sl_event *ev, sl_part part, const char *path, size_t *out);
	/** Key i (from 0, in stored order) of the map at path; SL_ENOTFOUND
	 * past the last, SL_EINVAL when path names no map. */
	int (*event_key)(const sl_event *ev, sl_part part, const char *path,
	    size_t i, const char **out);
	int (*event_get_str)(const sl_event *ev, sl_part part,
	    const char *path, const char **out);
	int (*event_get_i64)(
	    const sl_event *ev, sl_part part, const char *path, int64_t *out);
	int (*event_get_f64)(
	    const sl_event *ev, sl_part part, const char *path, double *out);
	int (*event_get_bool)(
	    const sl_event *ev, sl_part part, const char *path, bool *out);
	/** The value at path ("": the whole content or metadata) as JSON
	 * text. @return also SL_ENOMEM. */
	int (*event_get_json)(const sl_event *ev, sl_part part,
	    const char *path, const char **out);
	/** The value at path ("": whole) as msgpack: *len bytes at *out. */
	int (*event_get_msgpack)(const sl_event *ev, sl_part part,
	    const char *path, const void **out, size_t *len);

	/* ABI 1.3: the state as a document. Getters as the event's. */
	int (*state_kind)(const sl_state *st, const char *path, sl_kind *out);
	int (*state_len)(const sl_state *st, const char *path, size_t *out);
	int (*state_key)(
	    const sl_state *st, const char *path, size_t i, const char **out);
	int (*state_get_str)(
	    const sl_state *st, const char *path, const char **out);
	int (*state_get_i64)(
	    const sl_state *st, const char *path, int64_t *out);
	int (*state_get_f64)(
	    const sl_state *st, const char *path, double *out);
	int (*state_get_bool)(const sl_state *st, const char *path, bool *out);
	/** The value at path ("": the whole state) as JSON text. */
	int (*state_get_json)(
	    const sl_state *st, const char *path, const char **out);
	/** The value at path ("": the whole state, as it would be stored) as
	 * msgpack: *len bytes at *out. */
	int (*state_get_msgpack)(const sl_state *st, const char *path,
	    const void **out, size_t *len);
	/**
	 * Put a value at path, replacing what is there (a new map key goes
	 * last; a replaced one keeps its place). The host copies val.
	 * @return SL_OK; SL_EINVAL (bad path, NULL, a step through another
	 *         kind, "" for a scalar); SL_ENOTFOUND (an array item that
	 *         does not exist); SL_ETOOBIG; SL_ENOMEM.
	 */
	int (*state_put_str)(sl_state *st, const char *path, const char *val);
	int (*state_put_i64)(sl_state *st, const char *path, int64_t val);
	int (*state_put_f64)(sl_state *st, const char *path, double val);
	int (*state_put_bool)(sl_state *st, const char *path, bool val);
	int (*state_put_nil)(sl_state *st, const char *path);
	/** Put the value of JSON text (any JSON value; "" takes an object:
	 * the whole state is replaced). @return as state_put_str. */
	int (*state_put_json)(
	    sl_state *st, const char *path, const char *json);
	/** Put the value of len msgpack bytes (as state_put_json). */
	int (*state_put_msgpack)(
	    sl_state *st, const char *path, const void *data, size_t len);
	/** Remove the map key or array item at path (later items move
	 * down). @return SL_OK; SL_ENOTFOUND; SL_EINVAL (bad path, ""). */
	int (*state_delete)(sl_state *st, const char *path);
	/**
	 * Append the value of JSON text to the array at path, creating the
	 * array (and missing maps) when there is none.
	 * @return as state_put_str; SL_EINVAL when path names a non-array.
	 */
	int (*state_array_append)(
	    sl_state *st, const char *path, const char *json);
	/** Insert the value of JSON text before item index of the array at
	 * path (index == length appends; an absent array is created for
	 * index 0). @return as state_array_append; SL_ENOTFOUND when index
	 * is past the end. */
	int (*state_array_insert)(
	    sl_state *st, const char *path, size_t index, const char *json);
	/** Remove item index of the array at path (later items move down).
	 * @return SL_OK; SL_ENOTFOUND (no array there, or index past the
	 * end); SL_EINVAL (a value of another kind, a bad path). */
	int (*state_array_remove)(
	    sl_state *st, const char *path, size_t index);

	/* ABI 1.3: links (a definition with SL_SOURCE_LINKS gets them) */
	/**
	 * The event a link event ev points to (EventStoreDB's
	 * resolveLinkTos), read from the log: *out is valid until the
	 * callback returns. @return SL_OK; SL_EINVAL (ev is not a link);
	 * SL_ENOTFOUND (its target is deleted or was never written).
	 */
	int (*event_link_target)(const sl_event *ev, const sl_event **out);

	/* ABI 1.3: writing, as EventStoreDB's emit and linkStreamTo */
	/**
	 * emit with metadata: metadata_json a JSON object text (NULL: none)
	 * stored as the event's metadata. @return as emit.
	 */
	int (*emit_meta)(sl_context *ctx, const char *stream, const char *type,
	    const char *content_json, const char *metadata_json);
	/**
	 * Write to stream a link to the stream linked_stream (EventStoreDB's
	 * linkStreamTo: an event of type "$@" whose content is the linked
	 * stream's id). @return as emit.
	 */
	int (*link_stream_to)(
	    sl_context *ctx, const char *stream, const char *linked_stream);
	/**
	 * The state shared by every key of the projection being called
	 * (sl_projection.shared_initial_state_json), a document like a key's
	 * state, valid until the callback returns; NULL when the projection
	 * has none (or outside on(), created() and deleted()).
	 */
	sl_state *(*shared_state)(sl_context *ctx);
} sl_host_api;

/**
 * The one symbol a plugin exports.
 * @param host  the host services; valid until the plugin is unloaded
 * @param out   receives the plugin's descriptor (plugin-owned)
 * @return SL_OK, or an error code; the host refuses the plugin on error
 */
typedef int (*sl_plugin_init_fn)(const sl_host_api *host,
    const sl_plugin_desc **out);

/* ---- helpers for plugin authors (plugin-api/, linked into the plugin) ---- */

/**
 * Remember the host table for the helpers below; call first in
 * sluice_plugin_init. @return SL_OK, or SL_EVERSION if the host's ABI major
 * differs or its table is too small.
 */
int sl_bind(const sl_host_api *host);
/** The bound host table (NULL before sl_bind). */
const sl_host_api *sl_host(void);

const char *sl_ev_type(const sl_event *ev);
const char *sl_ev_stream(const sl_event *ev);
uint64_t sl_ev_position(const sl_event *ev);
/** Content string at path, or NULL when absent or not a string. */
const char *sl_get_str(const sl_event *ev, const char *path);
/** Content integer at path into *out; SL_OK, SL_ENOTFOUND or SL_EINVAL. */
int sl_get_i64(const sl_event *ev, const char *path, int64_t *out);
/** State integer for key, or dflt when absent. */
int64_t sl_state_i64(const sl_state *st, const char *key, int64_t dflt);
/** State string for key, or NULL when absent. */
const char *sl_state_str(const sl_state *st, const char *key);
int sl_set_str(sl_state *st, const char *key, const char *val);
int sl_set_i64(sl_state *st, const char *key, int64_t val);
/** Format a failure reason (printf-style) and return SL_FAIL. */
sl_outcome sl_failf(sl_context *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/**
 * Format a failure reason (printf-style) and record it with a retry
 * decision through sl_host_api.fail_with (ABI 1.1): retry false waits for
 * an operator; retry_after_ms > 0 asks for that delay (the host caps it at
 * 24 h). A filter returns the result as its verdict (SL_FAIL == SL_FAILED).
 * On a 1.0 host, which has no fail_with, it falls back to fail (retried
 * with the host's growing delay).
 * @return SL_FAIL
 */
sl_outcome sl_fail_with(sl_context *ctx, bool retry, uint32_t retry_after_ms,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/** Log through the host (printf-style). */
void sl_logf(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/** Remove a top-level state key (1.0 state_remove): SL_OK, SL_ENOTFOUND. */
int sl_state_remove(sl_state *st, const char *key);

/*
 * ABI 1.3 helpers over the document calls (see "Documents and paths").
 * On a host older than 1.3 the int ones return SL_EVERSION and the others
 * their "absent" value. Lifetimes are the host calls'.
 */

/** The kind of the event value at path; SL_KIND_NONE when absent. */
sl_kind sl_ev_kind(const sl_event *ev, sl_part part, const char *path);
/** Items or keys at path; 0 when absent or not an array or map. */
size_t sl_ev_len(const sl_event *ev, sl_part part, const char *path);
/** Key i of the map at path, or NULL. */
const char *sl_ev_key(
    const sl_event *ev, sl_part part, const char *path, size_t i);
/** The string at path, or NULL when absent or not a string. */
const char *sl_ev_str(const sl_event *ev, sl_part part, const char *path);
/** Typed values at path into *out: SL_OK, SL_ENOTFOUND or SL_EINVAL. */
int sl_ev_i64(
    const sl_event *ev, sl_part part, const char *path, int64_t *out);
int sl_ev_f64(const sl_event *ev, sl_part part, const char *path, double *out);
int sl_ev_bool(const sl_event *ev, sl_part part, const char *path, bool *out);
/** The value at path ("": whole) as JSON text, or NULL. */
const char *sl_ev_json(const sl_event *ev, sl_part part, const char *path);
/** The value at path ("": whole) as msgpack into *out, *len. */
int sl_ev_msgpack(const sl_event *ev, sl_part part, const char *path,
    const void **out, size_t *len);

/** The event link event ev points to (host->event_link_target): SL_OK,
 * SL_EINVAL (not a link), SL_ENOTFOUND, SL_EVERSION (a host before 1.3). */
int sl_ev_link_target(const sl_event *ev, const sl_event **out);

/** The kind of the state value at path; SL_KIND_NONE when absent. */
sl_kind sl_st_kind(const sl_state *st, const char *path);
/** Items or keys at path; 0 when absent or not an array or map. */
size_t sl_st_len(const sl_state *st, const char *path);
/** Key i of the map at path, or NULL. */
const char *sl_st_key(const sl_state *st, const char *path, size_t i);
/** The string at path, or NULL when absent or not a string. */
const char *sl_st_str(const sl_state *st, const char *path);
/** The number or bool at path, or dflt when absent or of another kind. */
int64_t sl_st_i64(const sl_state *st, const char *path, int64_t dflt);
double  sl_st_f64(const sl_state *st, const char *path, double dflt);
bool    sl_st_bool(const sl_state *st, const char *path, bool dflt);
/** The value at path ("": the whole state) as JSON text, or NULL. */
const char *sl_st_json(const sl_state *st, const char *path);
/** The value at path ("": whole) as msgpack into *out, *len. */
int sl_st_msgpack(
    const sl_state *st, const char *path, const void **out, size_t *len);
/** Put a value at path (state_put_*): SL_OK or an error code. */
int sl_st_set_str(sl_state *st, const char *path, const char *val);
int sl_st_set_i64(sl_state *st, const char *path, int64_t val);
int sl_st_set_f64(sl_state *st, const char *path, double val);
int sl_st_set_bool(sl_state *st, const char *path, bool val);
int sl_st_set_nil(sl_state *st, const char *path);
/** Put the value of JSON text at path ("" and an object: the whole
 * state). */
int sl_st_set_json(sl_state *st, const char *path, const char *json);
/** Put the value of msgpack bytes at path ("" and a map: the whole
 * state). */
int sl_st_set_msgpack(
    sl_state *st, const char *path, const void *data, size_t len);
/** Remove the map key or array item at path. */
int sl_st_remove(sl_state *st, const char *path);
/** Append the value of JSON text to the array at path (created if
 * absent). */
int sl_st_append(sl_state *st, const char *path, const char *json);
/** Insert the value of JSON text before item index of the array at path. */
int sl_st_insert(
    sl_state *st, const char *path, size_t index, const char *json);
/** Remove item index of the array at path. */
int sl_st_array_remove(sl_state *st, const char *path, size_t index);
/**
 * Write into buf the path base (NULL or "": the top) followed by key: as
 * ".key" (or "key" at the top) when key is a plain key, else as
 * ["key"] with '"' and '\' escaped. Needs no host.
 * @return SL_OK; SL_EINVAL (NULL key or buf); SL_ETOOBIG (buf too small:
 *         buf is then "").
 */
int sl_path_key(char *buf, size_t size, const char *base, const char *key);

#ifdef __cplusplus
}
#endif
#endif
