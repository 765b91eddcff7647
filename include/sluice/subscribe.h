/*
 * Subscriptions of the Sluice C client library: follow the whole log from a
 * position, one stream from a revision, or a filter's stream (whole, or one
 * partition) from a stream position, and get every event exactly once
 * and in order, live as it is committed. History comes from "read"
 * requests over req/rep; then the live feed (NNG sub socket on the
 * daemon's pub endpoint, docs/protocol.md "Live feed") takes over. The feed
 * drops messages when a subscriber is slow (NNG pub/sub semantics); the
 * subscription finds every gap by position or revision and fills it with a
 * read, and it rides out a restart of the daemon.
 */
#ifndef SLUICE_SUBSCRIBE_H
#define SLUICE_SUBSCRIBE_H

#include <stdint.h>

#include <sluice/client.h>

#ifdef __cplusplus
extern "C" {
#endif

/** What a subscription has done so far. */
typedef struct sl_subscribe_stats {
	uint64_t delivered;  /**< events handed to the callback */
	uint64_t from_live;  /**< ... of them taken from the live feed */
	uint64_t from_reads; /**< ... of them read over req/rep */
	/**
	 * Gaps in the live feed filled by reading: after the history, each
	 * time a read (prompted by a position or revision skipped, a head
	 * message ahead of the last event, or silence) found events that
	 * the feed had lost.
	 */
	uint64_t gap_fills;
	uint64_t duplicates; /**< live messages dropped: already delivered */
	uint64_t reads;      /**< read requests sent */
	/** Reads retried after a transport failure (daemon down, restart). */
	uint64_t retries;
} sl_subscribe_stats;

/**
 * Called with each event, in order, exactly once.
 * @param ev  the event; borrowed, valid until the callback returns
 * @return 0 to go on; anything else ends the subscription (which then
 *         returns SL_OK)
 */
typedef int (*sl_event_fn)(void *arg, const sl_read_event *ev);

/**
 * The filter stream entry an event of a filter subscription
 * (sl_subscribe_opts.filter) came with: the callback's ev is the `event`
 * member of an sl_filter_event (include/sluice/client.h), whose
 * stream_position is the event's position in what is followed (the whole
 * stream, or the partition) and partition its partition (NULL for an
 * unpartitioned filter). Only for the events of filter subscriptions;
 * borrowed like ev.
 */
static inline const sl_filter_event *
sl_subscribe_filter_event(const sl_read_event *ev)
{
	return (const sl_filter_event *) (const void *) ev;
}

/** Where a subscription starts and how it behaves. Zero is the default. */
typedef struct sl_subscribe_opts {
	/** Both NULL: the whole log, by position. Both set: one stream of
	 * one tenant, by revision. With filter: tenant alone (stream NULL). */
	const char *tenant;
	const char *stream;
	/** The first log position (log), the first revision (stream), or the
	 * first stream position (filter: of the whole stream, or of the
	 * partition's own positions when partition is set). */
	uint64_t from;
	/**
	 * The daemon's feed endpoint (endpoints.pub). NULL: ask the daemon
	 * (the "pub" field of its status reply).
	 */
	const char *pub_url;
	/**
	 * Messages the sub socket queues (NNG_OPT_RECVBUF, 1..8192); <= 0:
	 * 1024. A smaller queue drops more while the application is busy;
	 * the subscription then reads instead.
	 */
	int recv_buf;
	/** > 0: return SL_ETIMEDOUT when no event came for this long (ms). */
	int idle_ms;
	/**
	 * > 0: give up (returning the transport error) when reads have
	 * failed for this long (ms); <= 0: retry until the daemon is back.
	 */
	int retry_ms;
	/** If not NULL, kept up to date while the subscription runs. */
	sl_subscribe_stats *stats;
	/**
	 * Follow this filter's stream (filter id, UUID text, or its name) of
	 * tenant: by stream position, with read_filter for history and
	 * gaps and the feed's "f/<tenant>/<filter id>/" messages live. NULL:
	 * not a filter subscription. Needs tenant, excludes stream.
	 */
	const char *filter;
	/**
	 * With filter (partitioned or public filters only): follow this one
	 * partition (1..255 bytes), by its own positions (the feed's topic
	 * "f/<tenant>/<filter id>/<partition>\n"). NULL: the whole stream.
	 */
	const char *partition;
} sl_subscribe_opts;

/**
 * Follow the log, a stream or a filter's stream: read from opts->from to
 * the head, then follow the live feed, handing each event to fn exactly
 * once and in order (log position, stream revision, or filter stream
 * position). Blocks until fn returns
 * nonzero, opts->idle_ms passes without an event, opts->retry_ms passes
 * without reaching the daemon, or an error that retrying cannot mend.
 * @param c     a connected client, used for the reads while this call runs
 *              (not thread-safe: do not use it elsewhere meanwhile); its
 *              timeout bounds each read
 * @param opts  where to start; NULL follows the whole log from position 0
 * @return SL_OK (fn stopped it); SL_ETIMEDOUT (idle_ms passed, or retry_ms
 *         on a timeout); SL_EINVAL (only one of tenant and stream, no pub
 *         endpoint known, bad pub_url, filter without tenant or with
 *         stream, partition without filter or empty, partition of an
 *         unpartitioned filter, a projection named as the filter);
 *         SL_ENOTFOUND (unknown tenant or filter); SL_ECLOSED (a whole
 *         filter stream subscription: the stream was rebuilt, see below);
 *         SL_ENET (retry_ms passed, or the feed socket failed); SL_EPROTO
 *         (a reply broke the protocol, e.g. a filter stream position
 *         skipped in a read); SL_ENOMEM; another error code of a read
 *         reply.
 * @note Deleted streams. The reads leave out the events a stream
 *       deletion hides (sl_client_delete_stream, truncate), so the
 *       positions (or revisions) handed to fn may jump over them; an
 *       event delivered before its deletion is not taken back.
 * @note Filter subscriptions. Each event handed to fn is the event
 *       member of an sl_filter_event (sl_subscribe_filter_event(ev) gives
 *       its stream position and partition), and ev->json is the event as
 *       read_filter returns it for the whole stream or that partition:
 *       "stream_position" is the position in what is followed (for a
 *       partition its partition position; the feed's "partition_position"
 *       is not kept), with "stream_generation" and "partition". Gaps are
 *       found by stream position (whole) or partition position
 *       (partition). The feed publishes filter entries a little after
 *       the log moved: after each head message that moved the log head
 *       with no filter message since the previous head, and then after
 *       0.25, 0.5, 1, 2, 4 s without filter messages, the subscription
 *       reads from its next position (an entry the feed dropped more
 *       than about 8 s after the log's last move is read at the log's next
 *       move or the next silence of the feed).
 * @note A rebuilt filter stream (reset, changed definition: a higher
 *       stream_generation in a read reply or a feed message) may order the
 *       partitions' entries differently. A whole-stream subscription that
 *       has delivered events of an older generation (or started from a
 *       position above 0) then returns SL_ECLOSED, message "the filter's
 *       stream was rebuilt (generation G): subscribe again from 0" — it
 *       never mixes two generations' orders. A partition subscription
 *       goes on (a partition is in log order in every generation): with
 *       the new generation's first entry whose log position is above the
 *       last event delivered, so nothing is delivered twice; its stream
 *       positions are the new generation's from then on. (A changed
 *       definition may include events below that log position: they are
 *       not delivered; read_filter has them.) Feed messages of an older
 *       generation than the one read are ignored.
 * @note To resume after a return, subscribe again from the position (or
 *       revision) after the last event delivered. sl_client_last_error()
 *       tells what went wrong.
 * @note The feed socket is dialled anew after a second without any message
 *       (the daemon sends its head every 250 ms), and a read fills what
 *       was missed; a dialer of NNG 1.5.2 can otherwise stay down for good
 *       after the daemon died during its reconnect.
 * @note Environment: SLUICE_SUB_DEBUG=1 traces each step of the
 *       subscription and its state (next position or revision, log head
 *       known to be delivered, events delivered) to stderr; any other
 *       value but "" and "0" is a file the trace is appended to.
 */
int sl_client_subscribe(
    sl_client *c, const sl_subscribe_opts *opts, sl_event_fn fn, void *arg);

#ifdef __cplusplus
}
#endif
#endif
