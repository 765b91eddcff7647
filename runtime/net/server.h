/*
 * The req/rep API server: an NNG rep socket with a pool of contexts, each
 * receiving a request, handing it to api_handle, and sending the reply.
 */
#ifndef SL_SERVER_H
#define SL_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct runtime runtime;
typedef struct server server;
typedef struct api_call api_call;

/** Listen on rt->cfg->api_url with rt->cfg->api_workers contexts. */
int server_start(runtime *rt, server **out);
void server_stop(server *srv);

/**
 * Send the reply for a call (bytes are copied). Must be called exactly once
 * per call, from any thread, possibly after api_handle returned.
 */
void api_reply(api_call *call, const void *data, size_t len);

/** Handle one request (implemented in api.c); data valid until api_reply. */
void api_handle(runtime *rt, api_call *call, const void *data, size_t len);

/**
 * The id of the connection (NNG pipe) a call's request came on, 0 if
 * unknown. Call before api_reply. Transient projections (op query) live
 * as long as that connection: when it closes, runtime_pipe_closed runs.
 */
uint32_t api_call_pipe(api_call *call);
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
