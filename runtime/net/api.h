/*
 * The wire protocol's entry points, as the server (server.h) is handed
 * them by the runtime: pick a request's lane, and handle a request.
 */
#ifndef SL_API_H
#define SL_API_H

#include <stddef.h>

#include "server.h"

typedef struct runtime runtime;

/** get_all pages of at most this many read models are fast. */
#define API_FAST_GET_ALL 100

/**
 * The lane of a request, from its raw bytes (never unpacked, never more
 * than a bounded walk, so it suits NNG's receive thread). Slow: op query,
 * the operator commands (reset, retry, pause, resume, start, stop),
 * register, and get_all without a limit or with one over
 * API_FAST_GET_ALL; also a request whose op cannot be found within the
 * walk's budget. Fast: the rest (commit, read, get_one, small get_all,
 * read_filter, status, plugins), and whatever is malformed (its error
 * reply is quick).
 */
server_lane api_classify(const void *data, size_t len);

/** Handle one request (a server_handle_fn); data valid until api_reply. */
void api_handle(runtime *rt, api_call *call, const void *data, size_t len);

struct msgpack_packer;
struct cfg_cred;
/**
 * The status reply (op status: {ok: true, head, api, tenants, plugins,
 * projections, remotes, processors, emitting_projections}, see
 * docs/protocol.md) packed into pk; also what the metrics endpoint renders.
 * @param cred  the caller (auth.h): only its tenants and registrations
 *              are shown; NULL: everything (auth off, the metrics)
 * @return SL_OK; SL_ENOMEM (pk may hold part of it).
 */
int api_status_pack(
    runtime *rt, const struct cfg_cred *cred, struct msgpack_packer *pk);

#endif
