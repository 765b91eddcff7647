/*
 * The wire protocol's insides, shared by its files: api.c (replies, request
 * checks, dispatch), api_events.c (commit, delete_stream, read),
 * api_models.c (read_filter, get_one, get_all), api_query.c (query) and
 * api_status.c (status, operator commands, plugins, remote registrations).
 * Not for other parts of the runtime.
 */
#ifndef SL_API_INTERNAL_H
#define SL_API_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>
#include <sluice/plugin.h>

#include "auth.h"
#include "projection.h"
#include "publisher.h"
#include "runtime.h"
#include "server.h"

/* A read or get_all reply stops growing near this size (one event or read
 * model always fits); the client pages on with "next" / "after". */
#define API_REPLY_SOFT_BYTES (8u << 20)

typedef struct request {
	runtime        *rt;
	api_call       *call;
	msgpack_object  root;
	msgpack_zone   *zone; /* the call's (api_call_zone) */
	msgpack_sbuffer out; /* the reply */
	msgpack_packer  pk;
	/* the caller (auth.h); NULL when the daemon has no auth: section */
	const cfg_cred *cred;
	char            op[24]; /* the op's name, for refusals */
} request;

/* ---- replies (api.c) ---- */

/* Pack an error reply's map header and its five fields; n_extra more
 * key/value pairs follow. */
void api_pack_err(
    msgpack_packer *pk, int code, const char *message, size_t n_extra);
/* Send what was packed into r->out. */
void api_send(request *r);
/* Replace whatever was packed with an error reply and send it. */
void api_fail(request *r, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- request fields (api.c) ---- */

/* Field getters: nil counts as absent. A missing required field is
 * SL_EINVAL, a wrong type SL_EPROTO, each naming the field; the error reply
 * is sent here. Optional absent fields give SL_OK and the default. */
const msgpack_object *api_field(const msgpack_object *m, const char *key);

int api_str(
    request *r, const char *key, bool required, const char **s, size_t *len);
int api_u64(request *r, const char *key, uint64_t dflt, uint64_t *out);
int api_bool(request *r, const char *key, bool dflt, bool *out);
/* An id (tenant, stream): 1..SL_MAX_ID_LEN bytes, no NUL. */
int api_id(request *r, const char *key, const char **s, size_t *len);
/* The request's "tenant", which must exist. */
int api_tenant(request *r, rt_tenant **out);
/* The request's "projection": defined, and not a filter; found with
 * runtime_find_def_held. On SL_OK *live tells whether its code may run and
 * then the caller owes proj_def_release(*out); on an error nothing is held. */
int api_projection(request *r, const proj_def **out, bool *live);
/* A read model key: 1..API_MAX_KEY_LEN bytes. */
int api_key(
    request *r, const char *field, bool required, const char **s, size_t *len);

/* ---- who may (api_auth.c, docs/security.md) ---- */

/* With auth on: find the caller by the request's token and check that
 * its roles cover op; on a refusal EACCES is sent (and logged) and
 * SL_EACCES returned. Sets r->cred. SL_OK at once with auth off. */
int api_authenticate(request *r, const char *op, size_t op_len);
/* Whether the caller may use tenant; if not, EACCES naming the op and
 * the tenant is sent (and logged), whether the tenant exists or not. */
bool api_may_tenant(request *r, const char *tenant, size_t len);
/* Whether the caller may see tenant (NUL-terminated); nothing sent: for
 * what an op leaves out (status, a command without a tenant). */
bool api_cred_tenant(const request *r, const char *tenant);

/* ---- shared by the ops ---- */

/* A filter's kind, as status and plugins name it (api_models.c). */
const char *api_filter_kind_name(sl_filter_kind k);
/* What a definition runs, as status and plugins name it (api_models.c). */
const char *api_kind_name(const proj_def *d);
/* Whether def keeps its states in the log env (api_models.c); live: def is
 * held (its vtable may be read), else the emitting runs tell. */
bool api_emitting(runtime *rt, const proj_def *def, bool live);
/* One {key, state[, result]} item of get_all / query (api_models.c),
 * through write into dst (as_bin: state and result inside a bin); -1 if a
 * write failed. */
int api_pack_state_item(msgpack_packer_write write, void *dst, bool as_bin,
    const char *key, size_t key_len, const void *state, size_t state_len,
    const void *result, size_t result_len);

/* ---- the ops; each replies exactly once ---- */

/* api_events.c; api_commit and api_delete_stream reply later, from the
 * store's writer */
void api_commit(request *r);
void api_delete_stream(request *r);
void api_read(request *r);
/* api_models.c */
void api_read_filter(request *r);
void api_get_one(request *r);
void api_get_all(request *r);
/* api_query.c */
void api_query(request *r);
/* api_status.c */
void api_status(request *r);
void api_command(request *r, proc_cmd cmd, const char *op);
void api_plugins(request *r);
void api_register(request *r);

#endif
