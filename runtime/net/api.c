/*
 * The wire protocol's requests (docs/protocol.md): decode a msgpack map,
 * check the envelope, and run the op on the server's lane worker (server.h)
 * that api_classify picked from the raw bytes. Commits go to the store's
 * writer and are answered from its thread; the other ops answer here.
 * This file holds the replies, the request checks, the lanes and the
 * dispatch; the ops live in api_events.c, api_models.c, api_query.c and
 * api_status.c.
 */
#include "api_internal.h"
#include "api.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <sluice/errors.h>

#include "mp.h"
#include "mpraw.h"

/* Deepest nesting of arrays and maps in a request. */
#define API_MAX_DEPTH 32
/* LMDB's largest key: read model keys longer than this cannot exist. */
#define API_MAX_KEY_LEN 511

/* ---- replies ---- */

void
api_pack_err(msgpack_packer *pk, int code, const char *message, size_t n_extra)
{
	msgpack_pack_map(pk, 5 + n_extra);
	mp_pack_kv_u64(pk, "v", SL_PROTOCOL_VERSION);
	mp_pack_kv_bool(pk, "ok", false);
	mp_pack_kv_u64(pk, "code", (uint64_t) code);
	mp_pack_kv_str(pk, "error", sl_errname(code));
	mp_pack_kv_str(pk, "message", message);
}

void
api_send(request *r)
{
	api_reply(r->call, r->out.data, r->out.size);
}

/* Replace whatever was packed with an error reply and send it. */

void
api_fail(request *r, int code, const char *fmt, ...)
{
	char    msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	msgpack_sbuffer_clear(&r->out);
	api_pack_err(&r->pk, code, msg, 0);
	api_send(r);
}

/* ---- request fields ---- */

/* Field getters: nil counts as absent. A missing required field is
 * SL_EINVAL, a wrong type SL_EPROTO, each naming the field; the error reply
 * is sent here. Optional absent fields give SL_OK and the default. */

const msgpack_object *
api_field(const msgpack_object *m, const char *key)
{
	const msgpack_object *o = mp_get(m, key);
	return (o == NULL || o->type == MSGPACK_OBJECT_NIL) ? NULL : o;
}

int
api_str(
    request *r, const char *key, bool required, const char **s, size_t *len)
{
	const msgpack_object *o = api_field(&r->root, key);

	*s   = NULL;
	*len = 0;
	if (o == NULL) {
		if (!required)
			return SL_OK;
		api_fail(r, SL_EINVAL, "field '%s' is missing", key);
		return SL_EINVAL;
	}
	if (o->type != MSGPACK_OBJECT_STR) {
		api_fail(r, SL_EPROTO, "field '%s' must be a string", key);
		return SL_EPROTO;
	}
	*s   = o->via.str.ptr;
	*len = o->via.str.size;
	return SL_OK;
}

int
api_u64(request *r, const char *key, uint64_t dflt, uint64_t *out)
{
	const msgpack_object *o = api_field(&r->root, key);

	*out = dflt;
	if (o == NULL)
		return SL_OK;
	if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
		api_fail(r, SL_EPROTO,
		    "field '%s' must be a non-negative integer", key);
		return SL_EPROTO;
	}
	*out = o->via.u64;
	return SL_OK;
}

int
api_bool(request *r, const char *key, bool dflt, bool *out)
{
	const msgpack_object *o = api_field(&r->root, key);

	*out = dflt;
	if (o == NULL)
		return SL_OK;
	if (o->type != MSGPACK_OBJECT_BOOLEAN) {
		api_fail(
		    r, SL_EPROTO, "field '%s' must be true or false", key);
		return SL_EPROTO;
	}
	*out = o->via.boolean;
	return SL_OK;
}

/* An id (tenant, stream): 1..SL_MAX_ID_LEN bytes, no NUL. */
int
api_id(request *r, const char *key, const char **s, size_t *len)
{
	int rc = api_str(r, key, true, s, len);

	if (rc != SL_OK)
		return rc;
	if (*len == 0) {
		api_fail(r, SL_EINVAL, "field '%s' must not be empty", key);
		return SL_EINVAL;
	}
	if (*len > SL_MAX_ID_LEN) {
		api_fail(r, SL_ETOOBIG, "field '%s' is %zu bytes (limit %d)",
		    key, *len, SL_MAX_ID_LEN);
		return SL_ETOOBIG;
	}
	if (memchr(*s, '\0', *len) != NULL) {
		api_fail(r, SL_EINVAL, "field '%s' contains a NUL byte", key);
		return SL_EINVAL;
	}
	return SL_OK;
}

int
api_tenant(request *r, rt_tenant **out)
{
	const char *s;
	size_t      len;
	int         rc = api_id(r, "tenant", &s, &len);

	if (rc != SL_OK)
		return rc;
	if (!api_may_tenant(r, s, len))
		return SL_EACCES;
	*out = runtime_tenant(r->rt, s, len);
	if (*out == NULL) {
		api_fail(
		    r, SL_ENOTFOUND, "unknown tenant '%.*s'", (int) len, s);
		return SL_ENOTFOUND;
	}
	return SL_OK;
}

int
api_projection(request *r, const proj_def **out, bool *live)
{
	const char *s;
	size_t      len;
	int         rc = api_str(r, "projection", true, &s, &len);

	*out  = NULL;
	*live = false;
	if (rc != SL_OK)
		return rc;
	if (len > 0 && len <= SL_MAX_ID_LEN)
		*out = runtime_find_def_held(r->rt, s, len, live);
	if (*out == NULL) {
		api_fail(r, SL_ENOTFOUND, "unknown projection '%.*s'",
		    (int) (len > SL_MAX_ID_LEN ? SL_MAX_ID_LEN : len), s);
		return SL_ENOTFOUND;
	}
	/* A filter has a stream, not read models: never hand its def to
	 * read model code. */
	if (def_is_filter(*out)) {
		api_fail(r, SL_EINVAL,
		    "field 'projection': '%.*s' is a filter, not a projection "
		    "(read its stream with op read_filter)",
		    (int) len, s);
		if (*live)
			proj_def_release(*out);
		*out  = NULL;
		*live = false;
		return SL_EINVAL;
	}
	return SL_OK;
}

/* A read model key: 1..API_MAX_KEY_LEN bytes. */
int
api_key(
    request *r, const char *field, bool required, const char **s, size_t *len)
{
	int rc = api_str(r, field, required, s, len);

	if (rc != SL_OK || *s == NULL)
		return rc;
	if (*len == 0) {
		api_fail(r, SL_EINVAL, "field '%s' must not be empty", field);
		return SL_EINVAL;
	}
	if (*len > API_MAX_KEY_LEN) {
		api_fail(r, SL_ETOOBIG, "field '%s' is %zu bytes (limit %d)",
		    field, *len, API_MAX_KEY_LEN);
		return SL_ETOOBIG;
	}
	return SL_OK;
}

/* ---- lanes ---- */

/* The largest commit decoded on NNG's receive thread (bigger ones go to
 * the fast lane's workers, so that decoding never holds up the I/O). */
#define API_INLINE_MAX (64u * 1024)

/* Headers the classifier may walk: a client puts "v" and "op" first, so
 * this only runs out for a request that hides its op behind big values. */
#define API_CLASSIFY_BUDGET 64

static bool
api_raw_op_is(const char *s, size_t n, const char *name)
{
	return strlen(name) == n && memcmp(s, name, n) == 0;
}

server_lane
api_classify(const void *data, size_t len)
{
	static const char *const slow_ops[] = { "query", "reset", "retry",
		"pause", "resume", "start", "stop", "register", NULL };
	const unsigned char     *v;
	size_t                   vlen, n;
	const char              *op;
	uint64_t                 limit;
	int                      found;

	found
	    = mpraw_map_find(data, len, "op", API_CLASSIFY_BUDGET, &v, &vlen);
	if (found == 0 || (found == 1 && !mpraw_str(v, vlen, &op, &n)))
		return SERVER_LANE_FAST; /* answered EPROTO at once */
	if (found < 0) {
		/* not a map, or malformed: EPROTO at once; a map whose op
		 * the budget did not reach may be anything */
		const unsigned char *p   = data;
		bool                 map = len > 0
		    && ((p[0] >= 0x80 && p[0] <= 0x8f) || p[0] == 0xde
		        || p[0] == 0xdf);
		return map && len > API_CLASSIFY_BUDGET ? SERVER_LANE_SLOW
		                                        : SERVER_LANE_FAST;
	}
	for (size_t i = 0; slow_ops[i] != NULL; i++)
		if (api_raw_op_is(op, n, slow_ops[i]))
			return SERVER_LANE_SLOW;
	/* a small commit or deletion is decoded and queued for the store's
	 * writer on the receive thread: it never waits there */
	if (len <= API_INLINE_MAX
	    && (api_raw_op_is(op, n, "commit")
	        || api_raw_op_is(op, n, "delete_stream")))
		return SERVER_LANE_INLINE;
	if (!api_raw_op_is(op, n, "get_all"))
		return SERVER_LANE_FAST;
	found = mpraw_map_find(
	    data, len, "limit", API_CLASSIFY_BUDGET, &v, &vlen);
	if (found == 1 && mpraw_uint(v, vlen, &limit) && limit > 0
	    && limit <= API_FAST_GET_ALL)
		return SERVER_LANE_FAST;
	return SERVER_LANE_SLOW;
}

/* ---- dispatch ---- */

void
api_handle(runtime *rt, api_call *call, const void *data, size_t len)
{
	request               r;
	char                  err[320];
	size_t                off = 0;
	const msgpack_object *v, *op;
	int                   rc;

	memset(&r, 0, sizeof(r));
	r.rt   = rt;
	r.call = call;
	msgpack_sbuffer_init(&r.out);
	msgpack_packer_init(&r.pk, &r.out, msgpack_sbuffer_write);

	if (len == 0) {
		api_fail(&r, SL_EPROTO, "empty request");
		goto out;
	}
	/* msgpack-c would allocate what a lying header claims */
	if (!mpraw_check(
	        data, len, API_MAX_DEPTH, "request map", err, sizeof(err))) {
		api_fail(&r, SL_EPROTO, "%s", err);
		goto out;
	}
	r.zone = api_call_zone(call);
	if (r.zone == NULL) {
		api_fail(&r, SL_ENOMEM, "out of memory");
		goto out;
	}
	/* Strings point into data, which lives until api_reply. */
	rc = msgpack_unpack(data, len, &off, r.zone, &r.root);
	if (rc != MSGPACK_UNPACK_SUCCESS) {
		api_fail(&r,
		    rc == MSGPACK_UNPACK_NOMEM_ERROR ? SL_ENOMEM : SL_EPROTO,
		    "request is not valid msgpack");
		goto out;
	}
	if (r.root.type != MSGPACK_OBJECT_MAP) {
		api_fail(&r, SL_EPROTO, "request must be a msgpack map");
		goto out;
	}
	/* every op reads its fields with mp_get, which takes the first of
	 * two equal keys; another reader may take the last */
	rc = mp_check_unique_keys(&r.root, "request map", err, sizeof(err));
	if (rc != SL_OK) {
		api_fail(&r, rc, "%s", err);
		goto out;
	}
	v = mp_get(&r.root, "v");
	if (v == NULL) {
		api_fail(
		    &r, SL_EPROTO, "field 'v' (protocol version) is missing");
		goto out;
	}
	if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
		api_fail(&r, SL_EPROTO,
		    "field 'v' (protocol version) must be an integer");
		goto out;
	}
	if (v->via.u64 != SL_PROTOCOL_VERSION) {
		api_fail(&r, SL_EVERSION,
		    "protocol version %" PRIu64
		    " is not supported (this server speaks %d)",
		    v->via.u64, SL_PROTOCOL_VERSION);
		goto out;
	}
	op = mp_get(&r.root, "op");
	if (op == NULL) {
		api_fail(&r, SL_EPROTO, "field 'op' is missing");
		goto out;
	}
	if (op->type != MSGPACK_OBJECT_STR) {
		api_fail(&r, SL_EPROTO, "field 'op' must be a string");
		goto out;
	}
	if (api_authenticate(&r, op->via.str.ptr, op->via.str.size) != SL_OK)
		goto out;
	/* Definitions and processors an op finds stay valid until it ends,
	 * also an expired registration's (runtime/grace.h). */
	unsigned side = grace_enter(&rt->grace);
	if (mp_str_eq(op, "commit"))
		api_commit(&r);
	else if (mp_str_eq(op, "delete_stream"))
		api_delete_stream(&r);
	else if (mp_str_eq(op, "read"))
		api_read(&r);
	else if (mp_str_eq(op, "get_one"))
		api_get_one(&r);
	else if (mp_str_eq(op, "get_all"))
		api_get_all(&r);
	else if (mp_str_eq(op, "read_filter"))
		api_read_filter(&r);
	else if (mp_str_eq(op, "status"))
		api_status(&r);
	else if (mp_str_eq(op, "reset"))
		api_command(&r, PROC_CMD_RESET, "reset");
	else if (mp_str_eq(op, "retry"))
		api_command(&r, PROC_CMD_RETRY, "retry");
	else if (mp_str_eq(op, "pause"))
		api_command(&r, PROC_CMD_PAUSE, "pause");
	else if (mp_str_eq(op, "resume"))
		api_command(&r, PROC_CMD_RESUME, "resume");
	else if (mp_str_eq(op, "plugins"))
		api_plugins(&r);
	else if (mp_str_eq(op, "register"))
		api_register(&r);
	else if (mp_str_eq(op, "query"))
		api_query(&r);
	else if (mp_str_eq(op, "start"))
		api_command(&r, PROC_CMD_RESUME, "start");
	else if (mp_str_eq(op, "stop"))
		api_command(&r, PROC_CMD_PAUSE, "stop");
	else
		api_fail(&r, SL_EUNKNOWNOP, "unknown op '%.*s'",
		    (int) (op->via.str.size > 64 ? 64 : op->via.str.size),
		    op->via.str.ptr);
	grace_leave(&rt->grace, side);
out:
	/* Every path above replied exactly once (a commit replies later,
	 * from the store's writer). The zone is the call's (r.zone). */
	msgpack_sbuffer_destroy(&r.out);
}
