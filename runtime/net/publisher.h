/*
 * The live event feed: an NNG pub0 socket on endpoints.pub that carries
 * every committed event, in log order, once it is durable, plus a periodic
 * "head" message; and per-tenant feeds (endpoints.feeds, a daemon with
 * auth:), each a pub0 socket of its own carrying one tenant's events and
 * filter entries to the connections its admission callback lets in. A thread
 * of its own follows the log by position, so the store's writer never waits on
 * the network (docs/protocol.md, "Live feed"; the message format is in
 * proto/feed.h).
 */
#ifndef SL_PUBLISHER_H
#define SL_PUBLISHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nng/nng.h>

#include "store.h"

typedef struct publisher publisher;

/**
 * Whether connection p of tenant's feed may follow it. Called on NNG's
 * pipe callback (NNG_PIPE_EV_ADD_PRE, before anything is sent on it):
 * quick, never blocks; false closes the connection.
 */
typedef bool (*pub_admit_fn)(void *arg, const char *tenant, nng_pipe p);

/** One tenant's feed: only its events and filter entries. */
typedef struct pub_feed {
	const char *tenant;
	const char *url;
} pub_feed;

/**
 * Listen on url and publish every event committed to s from its current
 * head on (earlier events are history: subscribers read them).
 * @param url   the feed of every tenant; NULL: none
 * @param feeds per-tenant feeds (n_feeds, may be 0); strings copied
 * @param admit who may follow a tenant's feed (required with feeds); arg
 *              is handed to it
 * @param s     the log; borrowed, must outlive the publisher
 * @return SL_OK; SL_EINVAL (bad url); SL_ENET (cannot listen, e.g. another
 *         daemon is there); SL_ENOMEM. Nothing runs on failure.
 */
int pub_start(const char *url, const pub_feed *feeds, size_t n_feeds,
    pub_admit_fn admit, void *arg, store *s, publisher **out);

/** Stop the thread and close the socket. NULL is ignored. */
void pub_stop(publisher *p);
/** Publish on one more URL as well (the admin page's live tail over
 * WebSocket). @return SL_OK; SL_ENET (logged); SL_EINVAL (no feed of
 * every tenant). */
int pub_listen_also(publisher *p, const char *url);

/** Send one message (topic + body) on the feed's socket, and on the
 * feed of the topic's tenant ("e/T/..." or "f/T/...") if it has one;
 * never blocks (pub0 drops it for a subscriber whose queue is full).
 * Thread-safe. */
void pub_send_raw(publisher *p, const char *topic, size_t topic_len,
    const void *body, size_t body_len);

/** Whether a connection is open on any of its sockets: while none is,
 * what would be sent is dropped by pub0 anyway, so it need not be read or
 * packed. Thread-safe. */
bool pub_listening(publisher *p);

/** Events sent so far: handed to a socket with a connection open (none
 * are read or sent while nobody is connected). */
uint64_t pub_sent(publisher *p);

/** A subscriber's read that filled a gap of the feed (the client marks
 * it: `gap: true` on read / read_filter) returned n events: the feed lost
 * them for that subscriber (pub0 drops silently for a subscriber whose
 * queue is full, so the subscribers are the ones who can tell). NULL is
 * ignored. */
void pub_note_gap(publisher *p, uint64_t n);
/** Gap-filling reads so far, and the events they returned. */
void pub_gaps(publisher *p, uint64_t *reads, uint64_t *events);

#endif
