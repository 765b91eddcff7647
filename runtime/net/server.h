/*
 * The req/rep API server: an NNG rep socket with a pool of contexts. Each
 * request is classified and queued on a lane (lane.h) from NNG's receive
 * callback; a lane's worker runs the handler, which replies with
 * api_reply. The server knows nothing of the ops it serves: the handler,
 * the classifier and the connection-closed callback are passed in.
 */
#ifndef SL_SERVER_H
#define SL_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>
#include <nng/nng.h>

#include "lane.h"
#include "tlsconf.h"

typedef struct server server;
typedef struct api_call api_call;

/** The lanes: fast ops (status, get_one, commit, reads) and slow ones
 * (one-time queries, commands, registrations, big get_all pages). */
typedef enum server_lane {
	SERVER_LANE_FAST = 0,
	SERVER_LANE_SLOW = 1,
	/** Not a lane: handled on NNG's receive thread at once, for small
	 * requests whose handler never blocks (a commit hands itself to the
	 * store's writer): one thread hand-off less per request. */
	SERVER_LANE_INLINE = 2,
} server_lane;
#define SERVER_LANES 2

/**
 * Handle one request on a lane's worker; data (the request's bytes) is
 * valid until api_reply, which the handler (or what it hands the call to)
 * calls exactly once.
 */
typedef void (*server_handle_fn)(
    void *arg, api_call *call, const void *data, size_t len);
/**
 * Pick a request's lane from its raw bytes, on NNG's receive thread: must
 * be quick and never block. data may be anything (not yet checked).
 */
typedef server_lane (*server_classify_fn)(
    void *arg, const void *data, size_t len);
/** A client's connection (NNG pipe id) closed. */
typedef void (*server_pipe_fn)(void *arg, uint32_t pipe);

typedef struct server_settings {
	const char *url;          /* listen here (copied) */
	size_t      max_request;  /* larger requests get ETOOBIG */
	uint32_t    workers;      /* fast lane's threads */
	uint32_t    slow_workers; /* slow lane's threads */
	uint32_t    slow_queue; /* slow requests that may wait; more: EBUSY */
	server_handle_fn   handle;      /* required */
	server_classify_fn classify;    /* NULL: every request is fast */
	server_pipe_fn     pipe_closed; /* may be NULL */
	void              *arg;         /* for the three callbacks */
	/* close a connection with no request for this long and none being
	 * handled (nng_pipe_close, pipe_closed runs); 0: never */
	uint32_t idle_timeout_ms;
	/* connections beyond this are closed as they come (NNG's ADD_PRE);
	 * at least 1 */
	uint32_t max_connections;
} server_settings;

/**
 * Listen on set->url with workers + slow_workers + slow_queue contexts
 * (so slow requests can never take the contexts fast ones need).
 * @return SL_OK; SL_EINVAL (a required setting missing); SL_ENOMEM;
 * SL_ECONFIG (bad url); SL_ENET (cannot listen).
 */
int server_start(const server_settings *set, server **out);
/**
 * Stop: new requests get ECLOSED for a moment, queued ones ECLOSED,
 * running ones are cancelled (api_call_cancelled) and answered; then the
 * workers end and the socket closes. NULL is a no-op.
 */
void server_stop(server *srv);
/**
 * Change limits.max_request_bytes, limits.max_connections and
 * limits.idle_timeout_ms of a running server (SIGHUP): new requests and
 * connections see them at once; connections over a lowered cap stay.
 * @return SL_OK; SL_EINVAL (a zero limit); SL_ENOMEM (cannot start the
 * idle reaper: the other limits are set).
 */
/**
 * Serve the same API on one more URL as well (the admin page's
 * ws://HOST:PORT/PATH/api: the browser speaks req over WebSocket).
 * @return SL_OK; SL_ENET, SL_ECONFIG (cannot listen: logged).
 */
int server_listen_also(server *srv, const char *url);
int server_set_limits(server *srv, size_t max_request,
    uint32_t max_connections, uint32_t idle_timeout_ms);

/** The server's counters at one moment (status's "api"). */
typedef struct server_stats {
	uint32_t   contexts;  /* requests that may be in flight */
	uint32_t   in_flight; /* received and not yet answered */
	lane_stats lanes[SERVER_LANES];
	uint32_t   connections;         /* open now */
	uint32_t   max_connections;     /* limits.max_connections */
	uint32_t   idle_timeout_ms;     /* limits.idle_timeout_ms (0: none) */
	uint64_t   refused_connections; /* over max_connections, since start */
	uint64_t   idle_closed;         /* closed for idleness, since start */
} server_stats;
void server_stats_get(server *srv, server_stats *out);

/**
 * Send the reply for a call (bytes are copied). Must be called exactly once
 * per call, from any thread, possibly after the handler returned.
 */
void api_reply(api_call *call, const void *data, size_t len);
/**
 * api_reply with a reply built as a message (nothing copied): the server
 * takes rep (NULL: none could be made; the requester times out).
 */
void api_reply_msg(api_call *call, nng_msg *rep);

/**
 * A reply to build and send on the server's reply thread instead of the
 * caller's (api_defer). Embed it in what the reply needs; run() is
 * called once, on that thread, and must end with api_reply for the call.
 */
typedef struct api_deferred {
	struct api_deferred *next;
	void (*run)(struct api_deferred *d);
} api_deferred;
/**
 * Queue d for the reply thread and return at once (no allocation; a
 * wake-up only when that thread waits). For the log's writer: its
 * replies (packing, NNG's send, the wake-ups a send makes) leave its
 * path, which goes on to the next group meanwhile. The call counts as
 * in flight until run() replies, so server_stop waits for it.
 */
void api_defer(api_call *call, api_deferred *d);

/**
 * The call's zone for its request's decoded objects: emptied here (what
 * an earlier request left in it ends now), owned by the call and kept
 * between its requests, so a request allocates no zone of its own.
 * Valid until the call's next request, which comes only after
 * api_reply. NULL: out of memory.
 */
msgpack_zone *api_call_zone(api_call *call);

/**
 * The id of the connection (NNG pipe) a call's request came on, 0 if
 * unknown. Call before api_reply. Transient projections (op query) live
 * as long as that connection: when it closes, pipe_closed runs.
 */
uint32_t api_call_pipe(api_call *call);
/**
 * The verified client certificate of the connection a call's request came
 * on (mutual TLS, tls.ca_file): its subject and CN. Call before api_reply.
 * @return 1 verified (out filled); 0 a TLS connection without one; -1 not
 *         a TLS connection.
 */
int api_call_peer(api_call *call, sl_tls_peer_info *out);
/**
 * Whether a call should stop: its client's connection is gone or the
 * server is stopping. Cheap (one atomic load): long ops check it often.
 * Call before api_reply.
 */
bool api_call_cancelled(api_call *call);
/**
 * Tag connection pipe (e.g. with the credential that uses it), unless it
 * has that tag already, so that at most max open connections carry one
 * tag; a connection's tag goes with it when it closes.
 * @return SL_OK (tagged now or before); SL_EFULL (max connections carry
 * tag already: pipe keeps its tag); SL_ENOTFOUND (no such connection).
 */
int server_pipe_tag(server *srv, uint32_t pipe, uint32_t tag, uint32_t max);
/** Whether connection pipe is still open (it was added and not removed). */
bool server_pipe_alive(server *srv, uint32_t pipe);

#include <stdbool.h>

#include <nng/nng.h>

/**
 * Close an NNG socket without hanging shutdown: NNG 1.5.2 can hang for
 * good in nng_close() of a socket whose peers are busy (nanomsg/nng#1543).
 * The close runs on a helper thread; after a bounded wait (2 s, or 0.1 s
 * once a close has hung before in this process) the socket is left to the
 * process exit. Stop every aio of the socket first.
 * @return true if the socket was closed, false if it was left (logged).
 */
bool server_close_socket(nng_socket sock);

#endif
