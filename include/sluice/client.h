/*
 * The Sluice C client library: commit events, read the log, streams and
 * filter streams, query read models, run operator commands and ask the
 * daemon's status over the wire protocol
 * (docs/protocol.md, NNG req/rep, msgpack). Content, metadata and read model
 * states cross this API as JSON text.
 *
 * Threads: an sl_client is not thread-safe. Use one per thread (or guard
 * one with a lock); any number may be open at once.
 *
 * Errors: every call returns SL_OK or an sl_err code. An error reply from
 * the daemon returns the daemon's code (e.g. SL_EREVISION, SL_ENOTFOUND);
 * a transport failure returns SL_ENET or SL_ETIMEDOUT; SL_ECLOSED means
 * the daemon is shutting down (stop sending; retry after it restarted).
 * After a failure, sl_client_last_error() holds a message saying what went
 * wrong.
 */
#ifndef SLUICE_CLIENT_H
#define SLUICE_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sluice/errors.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A connection to one daemon. */
typedef struct sl_client sl_client;

/** Expected revision: commit whatever the stream holds. */
#define SL_EXPECT_ANY UINT64_MAX
/** Expected revision: the stream must not exist yet. */
#define SL_EXPECT_NO_STREAM (UINT64_MAX - 1)

/** A new event to commit. Every pointer is borrowed for the call only. */
typedef struct sl_new_event {
	const char *type;           /**< event type name, 1..256 bytes */
	const char *content_json;   /**< JSON object text, required; for a link
	                               (type "$>") also the JSON string
	                               "<revision>@<stream>" */
	const char *metadata_json;  /**< JSON object text, or NULL for {} */
	bool        is_public;      /**< visible to public filters */
	const char *correlation_id; /**< NULL: the daemon uses the event id */
} sl_new_event;

/**
 * An event whose content and metadata are msgpack already (for
 * sl_client_commit_mp): the binary way to commit, with no JSON on the
 * client. The bytes are sent as they are; the daemon checks them as it
 * checks any client's.
 */
typedef struct sl_new_event_mp {
	const char *type;        /**< event type name, 1..256 bytes */
	const void *content;     /**< one msgpack map of content_len bytes
	                              (a link, type "$>": the str
	                              "<revision>@<stream>"), required */
	size_t      content_len;
	const void *metadata;    /**< one msgpack map of metadata_len bytes,
	                              or NULL for {} */
	size_t      metadata_len;
	bool        is_public;      /**< visible to public filters */
	const char *correlation_id; /**< NULL: the daemon uses the event id */
} sl_new_event_mp;

/** The result of a commit. */
typedef struct sl_commit_result {
	uint64_t first_position; /**< log position of the first event */
	uint64_t last_position;  /**< log position of the last event */
	uint64_t first_revision; /**< stream revision of the first event */
	uint64_t count;          /**< number of events committed */
	/**
	 * Set when the commit failed with SL_EREVISION: the stream's actual
	 * last revision, or SL_EXPECT_NO_STREAM if it has no events.
	 * SL_EXPECT_ANY otherwise.
	 */
	uint64_t actual_revision;
} sl_commit_result;

/** A committed event as read back. Strings are NUL-terminated. */
typedef struct sl_read_event {
	uint64_t position;    /**< global log position */
	char    *tenant;      /**< tenant id */
	char    *stream;      /**< stream (event source) id */
	uint64_t revision;    /**< revision in its stream, from 0 */
	char    *id;          /**< event id, UUID text */
	char    *type;        /**< event type name */
	uint32_t generation;  /**< event type generation */
	int64_t  occurred_ns; /**< UTC time, ns since the epoch */
	char    *correlation_id;
	char    *causation_id;
	bool     is_public;
	char    *metadata_json; /**< JSON object text */
	char    *content_json;  /**< JSON object text */
	char    *json; /**< the whole wire event as one JSON object text */
	/*
	 * Reads with resolve_links (sl_client_read_ex): a link event (type
	 * "$>", content "N@stream") is answered as the event it points at,
	 * so the fields above are the target's, and these say where the link
	 * itself is. A link whose target does not exist is answered as
	 * itself with unresolved set. Zero / NULL otherwise.
	 */
	bool     is_link;       /**< reached through a link event */
	bool     unresolved;    /**< a link event whose target is missing */
	uint64_t link_position; /**< the link event's log position */
	char    *link_stream; /**< the link event's stream (NUL-terminated) */
	uint64_t link_revision; /**< the link event's revision in it */
} sl_read_event;

/** One page of events. */
typedef struct sl_read_result {
	sl_read_event *events;
	size_t         n_events;
	/**
	 * Where the next page starts: a log position for sl_client_read, a
	 * stream revision for sl_client_read_stream.
	 */
	uint64_t next;
	uint64_t head; /**< the log's next position when the page was read */
} sl_read_result;

/** One read model. */
typedef struct sl_read_model {
	char *key;        /**< read model key */
	char *state_json; /**< state, JSON object text */
} sl_read_model;

/** One page of read models, in key order. */
typedef struct sl_read_models {
	sl_read_model *items;
	size_t         n_items;
	bool more; /**< more read models follow the last key of this page */
} sl_read_models;

/**
 * Connect to a daemon.
 * @param url         the daemon's API endpoint, e.g.
 * "ipc:///var/sluice/api.ipc" or "tcp://127.0.0.1:5555"
 * @param timeout_ms  how long one request may take (send and reply);
 *                    <= 0 waits forever
 * @param out         receives the client on SL_OK
 * @return SL_OK; SL_EINVAL (bad url); SL_ENET (cannot connect now: the
 *         daemon is not running, the path does not exist ...); SL_ENOMEM.
 * @note On failure *out is set to NULL; as there is no client to ask,
 *       sl_client_open_error() gives the reason. Close the client with
 *       sl_client_close. Once connected, the client reconnects by itself
 *       if the daemon restarts.
 */
int sl_client_open(const char *url, int timeout_ms, sl_client **out);

/**
 * Set the token sent in every request from now on (field "token", for a
 * daemon with an auth: section; docs/security.md). Also the subscriber's
 * reads (sl_client_subscribe) carry it.
 * @param token  copied; NULL sends none again
 * @return SL_OK; SL_EINVAL (c NULL, or token empty); SL_ENOMEM.
 * @note Not thread-safe with calls on c in flight. A request passed to
 *       sl_client_request that holds a "token" of its own is sent as it is.
 */
int sl_client_set_token(sl_client *c, const char *token);

/**
 * TLS for a tls+tcp:// endpoint (docs/security.md). Zero it and set what
 * you need; every pointer is borrowed for the call that takes it (the
 * files are read then). Ignored for other endpoints.
 */
typedef struct sl_tls_options {
	/** PEM file of the CA(s) that signed the daemon's certificate;
	 * required for tls+tcp:// */
	const char *ca_file;
	/** the name the daemon's certificate must carry (a DNS name or CN:
	 * mbedtls 2.28 does not match IP address entries); NULL: the URL's
	 * host */
	const char *server_name;
	/** mutual TLS: the client's certificate (PEM), or NULL */
	const char *cert_file;
	/** its private key (PEM), with cert_file */
	const char *key_file;
	/** the key's password, or NULL if it is not encrypted */
	const char *key_password;
} sl_tls_options;

/**
 * Connect to a daemon, with TLS on a tls+tcp:// endpoint: as
 * sl_client_open. The subscriptions of the client (sl_client_subscribe)
 * use the same options for the live feed.
 * @param tls  NULL: as sl_client_open (a tls+tcp:// url then fails)
 * @return as sl_client_open; SL_EINVAL also for no CA file, a file that is
 *         missing or not PEM, a key that does not match its certificate;
 *         SL_ENET also when the daemon's certificate is not signed by the
 *         CA, does not carry the server name, or the daemon wants a
 *         client certificate (sl_client_open_error() says which it can).
 */
int sl_client_open_tls(const char *url, int timeout_ms,
    const sl_tls_options *tls, sl_client **out);

/**
 * The reason the last sl_client_open() on this thread failed.
 * @return a thread-local static string ("" if none).
 */
const char *sl_client_open_error(void);

/**
 * Close the connection and free the client. NULL is ignored.
 * @note Buffers previously returned by the client stay valid.
 */
void sl_client_close(sl_client *c);

/**
 * The message of the last failed call on this client.
 * @return a string owned by the client, valid until its next call; "" when
 *         the last call succeeded.
 */
const char *sl_client_last_error(const sl_client *c);

/**
 * Commit events to one stream of one tenant, atomically.
 * @param tenant    tenant id
 * @param stream    stream id (may not start with '$')
 * @param expected  SL_EXPECT_ANY, SL_EXPECT_NO_STREAM, or the revision of
 *                  the stream's last event (EventStoreDB style)
 * @param events    n events (1 .. the daemon's max_events_per_commit)
 * @param result    receives the positions on SL_OK and actual_revision on
 *                  SL_EREVISION; may be NULL
 * @return SL_OK (durable); SL_EINVAL (bad JSON or argument: nothing sent);
 *         SL_EREVISION (the stream is elsewhere: nothing written);
 *         SL_ENOTFOUND (unknown tenant); SL_ETOOBIG; SL_EFULL; SL_ESTORAGE;
 *         SL_EUNAVAILABLE (a daemon on the PostgreSQL log cannot reach
 *         it: nothing written; retry); SL_ENET, SL_ETIMEDOUT (the commit
 *         may or may not have happened).
 */
int sl_client_commit(sl_client *c, const char *tenant, const char *stream,
    uint64_t expected, const sl_new_event *events, size_t n,
    sl_commit_result *result);

/**
 * sl_client_commit with each event's content and metadata given as
 * msgpack (sl_new_event_mp): nothing is converted from JSON, the bytes go
 * into the request as they are. Each is checked to be exactly one msgpack
 * value of its length, of the right kind (a map; a link's content may be
 * a str), nested at most SL_COMMIT_MP_MAX_DEPTH deep; otherwise SL_EINVAL
 * and nothing is sent. Returns as sl_client_commit.
 */
#define SL_COMMIT_MP_MAX_DEPTH 29
int sl_client_commit_mp(sl_client *c, const char *tenant, const char *stream,
    uint64_t expected, const sl_new_event_mp *events, size_t n,
    sl_commit_result *result);

/** What a stream deletion did. */
typedef struct sl_delete_result {
	/**
	 * Log position of the notification written with it, in the same
	 * transaction: an event of type "$streamDeleted" (or
	 * "$streamTruncated") in the tenant's stream "$deleted", content
	 * {"stream", "revision", "truncate_before"} (docs/protocol.md).
	 */
	uint64_t position;
	/** The stream's last revision: a later commit expects it, as the
	 * stream keeps counting its revisions. */
	uint64_t revision;
	/** Reads show the stream's events from this revision on. */
	uint64_t truncate_before;
	/** Set on SL_EREVISION as sl_commit_result's; SL_EXPECT_ANY
	 * otherwise. */
	uint64_t actual_revision;
} sl_delete_result;

/**
 * Soft-delete a stream (EventStoreDB's soft delete): its events are
 * hidden from reads of the stream and of the log (and so from
 * subscriptions' reads) but stay in the log, whose positions do not move.
 * A later commit continues the stream's revisions; only the events
 * committed after the delete show.
 * @param tenant    tenant id
 * @param stream    stream id (not a '$' system stream)
 * @param expected  SL_EXPECT_ANY, or the revision of the stream's last
 *                  event (a mismatch deletes nothing)
 * @param result    receives what was done on SL_OK and actual_revision on
 *                  SL_EREVISION; may be NULL
 * @return SL_OK (durable); SL_EREVISION; SL_ENOTFOUND (unknown tenant, a
 *         stream without events, or deleted with nothing committed
 *         since); SL_EOWNED (a projection owns the stream); SL_EINVAL (a
 *         '$' stream, a NUL byte; NULL tenant or stream: nothing sent);
 *         SL_ETOOBIG (an id over 256 bytes); SL_EFULL; SL_ESTORAGE;
 *         SL_ENET, SL_ETIMEDOUT (it may or may not have happened).
 */
int sl_client_delete_stream(sl_client *c, const char *tenant,
    const char *stream, uint64_t expected, sl_delete_result *result);

/**
 * Truncate a stream before a revision (EventStoreDB's $tb): the revisions
 * below `before` are hidden as sl_client_delete_stream hides them, and a
 * "$streamTruncated" notification is written.
 * @param before  1 .. the stream's next revision (which hides them all),
 *                above what is hidden already
 * @return as sl_client_delete_stream; SL_EINVAL also for a `before`
 *         outside that range.
 */
int sl_client_truncate_stream(sl_client *c, const char *tenant,
    const char *stream, uint64_t expected, uint64_t before,
    sl_delete_result *result);

/**
 * Read the log from a position.
 * @param from  first position to read
 * @param max   most events to return; 0 or more than the daemon's
 *              max_read_events means that limit
 * @param out   receives the page on SL_OK (free with sl_read_result_free);
 *              fewer events than max does not mean the end: the log ends
 *              where out->next == out->head. Events of deleted streams
 *              are left out (positions then skip them), and a page may
 *              even be empty with out->next moved on: read on from it
 * @return SL_OK; SL_ENET; SL_ETIMEDOUT; SL_ESTORAGE; SL_ENOMEM.
 */
int sl_client_read(
    sl_client *c, uint64_t from, size_t max, sl_read_result *out);

/**
 * Read one stream from a revision.
 * @param from_revision  first revision to read
 * @param max            as for sl_client_read
 * @param out            receives the page (free with sl_read_result_free);
 *                       out->next is the revision to read next; an empty
 *                       page is the end of the stream. Revisions a
 *                       deletion hides are left out: the page starts at
 *                       the first one shown when from_revision is below
 * @return SL_OK (also for a stream with no events); SL_ENOTFOUND (unknown
 *         tenant); SL_EINVAL; SL_ENET; SL_ETIMEDOUT.
 */
int sl_client_read_stream(sl_client *c, const char *tenant, const char *stream,
    uint64_t from_revision, size_t max, sl_read_result *out);

/** Free what a read returned and zero *r. NULL is ignored. */
void sl_read_result_free(sl_read_result *r);

/**
 * What sl_client_read_ex reads. Zero it, then set what you need: fields
 * are only ever appended, and zero is each field's default.
 */
typedef struct sl_read_opts {
	/** With stream: read that stream of that tenant by revision; both
	 * NULL: read the whole log by position. */
	const char *tenant;
	const char *stream;
	/** First position (log) or revision (stream) to read. */
	uint64_t from;
	/** Most events; 0 or more than the daemon's max_read_events means
	 * that limit. */
	size_t max;
	/** Answer link events as the events they point at (see
	 * sl_read_event.is_link); a link whose target is missing comes as
	 * itself with unresolved set. */
	bool resolve_links;
} sl_read_opts;

/**
 * Read the log or one stream, with options (sl_client_read and
 * sl_client_read_stream are this with resolve_links off).
 * @param opts  what to read (borrowed for the call)
 * @param out   receives the page (free with sl_read_result_free); out->next
 *              is where the next page starts: a position (log) or a
 *              revision (stream), also when links were resolved (the
 *              events' own positions are then their targets')
 * @return SL_OK; SL_EINVAL (a stream without a tenant or the reverse:
 *         nothing sent); SL_ENOTFOUND (unknown tenant); SL_ESTORAGE;
 *         SL_ENET; SL_ETIMEDOUT; SL_ENOMEM.
 */
int sl_client_read_ex(
    sl_client *c, const sl_read_opts *opts, sl_read_result *out);

/**
 * Get one read model.
 * @param projection  projection id (UUID text) or name
 * @param key         read model key
 * @param state_json  receives the state as a JSON object text (malloc'ed;
 *                    free with sl_client_free); the projection's initial
 *                    state when the key has no read model
 * @param found       if not NULL, receives whether the key has one
 * @return SL_OK; SL_ENOTFOUND (unknown tenant or projection, not key);
 *         SL_EINVAL (projection names a filter); SL_ENET; SL_ETIMEDOUT.
 */
int sl_client_get_one(sl_client *c, const char *tenant, const char *projection,
    const char *key, char **state_json, bool *found);

/** The largest page get_all answers (a larger limit is this one). */
#define SL_GET_ALL_MAX_LIMIT 10000

/**
 * Get read models in key order, one page.
 * @param after  start after this key; NULL starts at the first
 * @param limit  most items; 0 means 1000, more than SL_GET_ALL_MAX_LIMIT
 *               means SL_GET_ALL_MAX_LIMIT (a daemon before that limit
 *               answers at most 1000)
 * @param out    receives the page (free with sl_read_models_free); page on
 *               with after = the last key while out->more
 * @return SL_OK; SL_ENOTFOUND (unknown tenant or projection); SL_EINVAL
 *         (projection names a filter); SL_ENET; SL_ETIMEDOUT.
 */
int sl_client_get_all(sl_client *c, const char *tenant, const char *projection,
    const char *after, size_t limit, sl_read_models *out);

/** Free what sl_client_get_all returned and zero *m. NULL is ignored. */
void sl_read_models_free(sl_read_models *m);

/** A read model with its state as msgpack (the wire's bytes, a map). */
typedef struct sl_read_model_mp {
	char       *key;       /**< read model key */
	const void *state;     /**< the state: one msgpack map */
	size_t      state_len; /**< its bytes */
} sl_read_model_mp;

/** One page of read models with msgpack states, in key order. */
typedef struct sl_read_models_mp {
	sl_read_model_mp *items;
	size_t            n_items;
	bool  more; /**< more read models follow the last key of this page */
	void *buf;  /**< holds the states' bytes (freed with the page) */
} sl_read_models_mp;

/**
 * sl_client_get_all, with each state as msgpack instead of JSON text: for
 * a program that reads states itself (with msgpack-c, say), no JSON is
 * made on the way. Same arguments, paging and errors as
 * sl_client_get_all; free the page with sl_read_models_mp_free.
 */
int sl_client_get_all_mp(sl_client *c, const char *tenant,
    const char *projection, const char *after, size_t limit,
    sl_read_models_mp *out);

/** Free what sl_client_get_all_mp returned and zero *m. NULL is ignored. */
void sl_read_models_mp_free(sl_read_models_mp *m);

/**
 * A read model borrowed from its page (sl_client_get_all_view): key and
 * state point into the reply as it came off the wire, nothing copied.
 */
typedef struct sl_read_model_view {
	const char *key;       /**< the key's bytes, NOT NUL-terminated */
	size_t      key_len;   /**< its length */
	const void *state;     /**< the state: one msgpack map */
	size_t      state_len; /**< its bytes */
} sl_read_model_view;

/** One page of borrowed read models, in key order. */
typedef struct sl_read_models_view {
	sl_read_model_view *items;
	size_t              n_items;
	bool  more;  /**< more read models follow the last key of this page */
	void *reply; /**< the reply the items point into (the library's) */
} sl_read_models_view;

/**
 * Get read models in key order, one page, without copying them: each
 * item's key and state point into the reply message, which the page holds
 * until sl_read_models_view_free. The fastest way to list read models: the
 * states come inside bins (the request's state_bytes) and the reply is
 * walked once in place (no msgpack-c objects, no JSON, no allocation per
 * item); its framing is checked as it is walked (every key and state lies
 * in the reply, each state begins with a map header), the states' insides
 * are the stored bytes as the daemon read them.
 * @param after      start after this key (after_len bytes, may hold any
 *                   byte: an item's key and key_len page on as they are);
 *                   NULL starts at the first
 * @param after_len  its length
 * @param limit      most items; 0 means 1000, more than
 *                   SL_GET_ALL_MAX_LIMIT means SL_GET_ALL_MAX_LIMIT (a
 *                   daemon before this limit answers at most 1000)
 * @param out        receives the page; page on with after = the last
 *                   item's key while out->more
 * @return SL_OK; SL_ENOTFOUND (unknown tenant or projection); SL_EINVAL
 *         (projection names a filter; NULL arguments); SL_EPROTO (a
 *         reply that is not a well-formed get_all page: truncated, an item
 *         without a key string or a state map, bytes after the reply:
 *         *out is left empty); SL_EVERSION; SL_ENET; SL_ETIMEDOUT;
 *         SL_ENOMEM.
 * @note The items, keys and states are owned by the page and valid until
 *       sl_read_models_view_free; on failure *out is zeroed.
 */
int sl_client_get_all_view(sl_client *c, const char *tenant,
    const char *projection, const char *after, size_t after_len,
    size_t limit, sl_read_models_view *out);

/** Free what sl_client_get_all_view returned and zero *m. NULL is
 * ignored. */
void sl_read_models_view_free(sl_read_models_view *m);

/** An event of a filter's stream, as read back. */
typedef struct sl_filter_event {
	/**
	 * The committed event; its json holds the whole wire event, with
	 * "stream_position" (and "partition") among its keys.
	 */
	sl_read_event event;
	/**
	 * Its position in the stream that was read, from 0: in the whole
	 * stream, or in the partition when one partition was read.
	 */
	uint64_t stream_position;
	/** Its partition (NUL-terminated); NULL for an unpartitioned filter.
	 */
	char *partition;
} sl_filter_event;

/** One page of a filter's stream, in stream order. */
typedef struct sl_filter_page {
	sl_filter_event *events;
	size_t           n_events;
	/** The stream position the next page starts at (from, when empty). */
	uint64_t next;
	/** More entries followed this page when it was read. */
	bool more;
	/**
	 * The generation of the stream read (0: the filter has written
	 * nothing yet). A reset or a changed definition serves a rebuilt
	 * generation, whose whole stream may order the partitions' entries
	 * differently (each partition keeps its order): a reader paging
	 * through the whole stream starts over from 0 when it changes.
	 */
	uint64_t generation;
} sl_filter_page;

/**
 * Read a filter's stream (the events it included, per tenant) from a
 * stream position.
 * @param tenant     tenant id
 * @param filter     filter id (UUID text) or name
 * @param partition  read only this partition (1..255 bytes) of a
 *                   partitioned or public filter; NULL reads the whole
 *                   stream (every partition, in the order the filter
 *                   included them)
 * @param from       first stream position to read (the partition's own
 *                   positions when partition is given)
 * @param max        most events; 0 or more than the daemon's
 *                   max_read_events means that limit
 * @param out        receives the page on SL_OK (free with
 *                   sl_filter_page_free; on failure it is left empty);
 *                   page on with from = out->next while out->more
 * @return SL_OK (also for a stream with no entries yet); SL_ENOTFOUND
 *         (unknown tenant or filter); SL_EINVAL (a projection named as the
 *         filter, a partition for an unpartitioned filter, a bad partition:
 *         nothing sent for a NULL tenant or filter or an empty partition);
 *         SL_ETOOBIG (partition over 255 bytes); SL_ESTORAGE; SL_ENET;
 *         SL_ETIMEDOUT.
 */
int sl_client_read_filter(sl_client *c, const char *tenant, const char *filter,
    const char *partition, uint64_t from, size_t max, sl_filter_page *out);

/** Free what sl_client_read_filter returned and zero *p. NULL is ignored. */
void sl_filter_page_free(sl_filter_page *p);

/**
 * Run an operator command on the processors of one projection or filter
 * (and on emitting and system projections, EventStoreDB's model).
 * @param op            "reset" (rebuild from position 0 into a new
 *                      generation; queries see the old one until it caught
 *                      up; an emitting projection's written streams are
 *                      removed and written anew), "retry" (retry every
 *                      failing event now), "pause" (stop processing, kept
 *                      across restarts), "resume", or EventStoreDB's names
 *                      "stop" (= pause) and "start" (= resume)
 * @param id            projection or filter id (UUID text) or name
 * @param tenant        one tenant's processor; NULL: every tenant's
 * @param n_processors  if not NULL, receives how many processors took the
 *                      command on SL_OK
 * @return SL_OK (every processor took it); SL_EINVAL (unknown op, NULL id:
 *         nothing sent); SL_EUNKNOWNOP (a daemon without "start" / "stop");
 *         SL_ENOTFOUND (unknown id or tenant, or no
 *         processor for it); SL_ETIMEDOUT (some processor did not take it
 *         within the daemon's 5 s, or no reply: it still will take it);
 *         SL_ENET.
 */
int sl_client_command(sl_client *c, const char *op, const char *id,
    const char *tenant, size_t *n_processors);

/* ---- queries (EventStoreDB's one-time and transient projections) ---- */

/** One key's state, and its result when the projection has a result
 * transform. */
typedef struct sl_query_state {
	char *key;         /**< read model key */
	char *state_json;  /**< state, JSON object text */
	char *result_json; /**< result, JSON object text; NULL for none */
} sl_query_state;

/** What a query answered, states in key order. */
typedef struct sl_query_result {
	/** The log position the states are at: the events before it were
	 * handled. */
	uint64_t position;
	/** The log head: a one-time query ran to it (== position); a
	 * transient run is caught up when position == head. */
	uint64_t        head;
	sl_query_state *states;
	size_t          n_states;
} sl_query_result;

/** Free what a query returned and zero *r. NULL is ignored. */
void sl_query_result_free(sl_query_result *r);

/**
 * One-time query: the daemon runs a projection over the tenant's events
 * from position 0 to the log head as it is now, in memory (nothing is
 * written, emitted events are dropped), and answers its states.
 * @param tenant      tenant id
 * @param projection  projection id (UUID text) or name
 * @param key         only this key (its initial state when it has none);
 *                    NULL: every key the run produced
 * @param out         receives the states (free with sl_query_result_free)
 * @return SL_OK; SL_EINVAL (NULL tenant or projection: nothing sent; or a
 *         filter named); SL_ENOTFOUND (unknown tenant or projection);
 *         SL_EPLUGIN (the handler failed: the message says where);
 *         SL_ETOOBIG (the states exceed one reply: ask for one key);
 *         SL_ETIMEDOUT (the run or the reply took too long); SL_ENET.
 */
int sl_client_query(sl_client *c, const char *tenant, const char *projection,
    const char *key, sl_query_result *out);

/**
 * Start a transient run of a projection (EventStoreDB's transient mode):
 * it runs from position 0 and follows the log, in memory, for as long as
 * this client is connected or until sl_client_query_close.
 * @param handle  receives the run's handle
 * @return as sl_client_query (SL_ETOOBIG: the daemon runs its limit of
 *         transient runs already; close one first).
 * @note The run belongs to this client's connection: it ends when the
 *       client is closed or the daemon loses the connection.
 */
int sl_client_query_start(sl_client *c, const char *tenant,
    const char *projection, uint64_t *handle);

/**
 * One-time query of a JavaScript projection that is not loaded: the daemon
 * loads the script (EventStoreDB style, docs/javascript.md) for this query
 * only, runs it as sl_client_query runs a loaded projection, answers its
 * states and unloads it.
 * @param file        the script's file name as reasons show it (its
 *                    basename is sent; it must end in ".js"; the
 *                    projection is named for it); NULL: "query.js"
 * @param script      the script's text, script_len bytes (borrowed for
 *                    the call); the whole request must fit the daemon's
 *                    limits.max_request_bytes (4 MiB by default)
 * @param key, out    as sl_client_query
 * @return as sl_client_query, and SL_EPLUGIN also when the script does
 *         not load (the message says why, "file.js:3: SyntaxError: ..."),
 *         or declares the streams it emits to (a query writes nothing);
 *         SL_EINVAL also for a file name not ending in ".js" and a
 *         script holding a NUL byte;
 *         SL_ETOOBIG also for a request over the daemon's size limit (a
 *         request more than twice that size is dropped by the transport:
 *         SL_ETIMEDOUT or SL_ENET).
 */
int sl_client_query_js(sl_client *c, const char *tenant, const char *file,
    const char *script, size_t script_len, const char *key,
    sl_query_result *out);

/**
 * Start a transient run of a JavaScript projection that is not loaded (as
 * sl_client_query_js loads it): poll it with sl_client_query_poll and end
 * it with sl_client_query_close, as a run of sl_client_query_start; the
 * daemon unloads the script when the run ends (also when this client's
 * connection goes).
 * @return as sl_client_query_js and sl_client_query_start.
 */
int sl_client_query_js_start(sl_client *c, const char *tenant,
    const char *file, const char *script, size_t script_len, uint64_t *handle);

/**
 * A transient run's current states.
 * @param key  only this key (its initial state when it has none), or NULL
 * @param out  receives position, head and states (free with
 *             sl_query_result_free)
 * @return SL_OK; SL_ENOTFOUND (no such run: closed, or its client
 *         disconnected); SL_ETOOBIG (as sl_client_query); SL_ENET;
 *         SL_ETIMEDOUT.
 * @note A faulted run keeps answering its last states; sl_client_status
 *       shows its status and reason.
 */
int sl_client_query_poll(
    sl_client *c, uint64_t handle, const char *key, sl_query_result *out);

/**
 * End a transient run. @return SL_OK; SL_ENOTFOUND (no such run); SL_ENET;
 * SL_ETIMEDOUT.
 */
int sl_client_query_close(sl_client *c, uint64_t handle);

/**
 * The daemon's status: head, uptime, tenants, plugins, projections and
 * processors (see docs/protocol.md, op "status").
 * @param json  receives the reply (without "v" and "ok") as a JSON object
 *              text, malloc'ed; free with sl_client_free
 * @return SL_OK; SL_ENET; SL_ETIMEDOUT.
 */
int sl_client_status(sl_client *c, char **json);

/**
 * The plugin files: running version, load time, how many versions were
 * loaded, errors of refused builds, projections (see docs/protocol.md, op
 * "plugins").
 * @param json  receives the reply (without "v" and "ok") as a JSON object
 *              text, malloc'ed; free with sl_client_free
 * @return SL_OK; SL_ENET; SL_ETIMEDOUT.
 */
int sl_client_plugins(sl_client *c, char **json);

/**
 * Send a raw request (a msgpack map, see docs/protocol.md) and receive the
 * raw reply.
 * @param req, req_len  the request bytes (borrowed for the call)
 * @param reply         receives the reply bytes (malloc'ed; free with
 *                      sl_client_free) whenever the daemon answered, also
 *                      with an error reply; NULL on a transport failure
 * @param reply_len     receives the reply's length
 * @return SL_OK (an "ok": true reply); the reply's error code; SL_EPROTO
 *         (the reply is not a valid envelope); SL_ENET; SL_ETIMEDOUT.
 */
int sl_client_request(sl_client *c, const void *req, size_t req_len,
    void **reply, size_t *reply_len);

/** Free a buffer or string returned by this library. NULL is ignored. */
void sl_client_free(void *p);

#ifdef __cplusplus
}
#endif
#endif
