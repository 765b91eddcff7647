/*
 * The wire protocol's query op (docs/protocol.md): one-time and transient
 * runs of a projection, EventStoreDB's modes, answered with their states.
 * Requests are decoded and dispatched in api.c.
 */
#include "api_internal.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <sluice/errors.h>

#include "emitter.h"
#include "mp.h"

/* ---- query: one-time and transient runs (EventStoreDB's modes) ---- */

/* eproj_cancel_fn: a one-time query stops when its client is gone or the
 * daemon stops. */
static bool
query_cancelled(void *call)
{
	return api_call_cancelled(call);
}

/* A one-time query runs at most limits.query_timeout_ms (ETIMEDOUT).
 * A query's reply cannot be paged: past this size it is refused. */
#define API_QUERY_MAX_BYTES API_REPLY_SOFT_BYTES

typedef struct query_ctx {
	msgpack_sbuffer states;
	uint32_t        count;
	bool            too_big;
} query_ctx;

/* eproj_state_fn: one {key, state, result?} of the reply. */
static int
query_state(void *arg, const char *key, size_t key_len, const void *state,
    size_t state_len, const void *result, size_t result_len)
{
	query_ctx *q = arg;

	if (api_pack_state_item(msgpack_sbuffer_write, &q->states, false, key,
	        key_len, state, state_len, result, result_len)
	    != 0)
		return SL_ENOMEM;
	q->count++;
	if (q->states.size > API_QUERY_MAX_BYTES) {
		q->too_big = true;
		return SL_ETOOBIG;
	}
	return 0;
}

/* The reply's states: the ones found, or for a key without a state its
 * initial state (as get_one answers). */
static void
query_pack_states(request *r, query_ctx *q, const proj_def *def,
    const char *key, size_t key_len)
{
	mp_pack_cstr(&r->pk, "states");
	if (key != NULL && q->count == 0) {
		msgpack_pack_array(&r->pk, 1);
		msgpack_pack_map(&r->pk, 2);
		mp_pack_cstr(&r->pk, "key");
		mp_pack_strn(&r->pk, key, key_len);
		mp_pack_cstr(&r->pk, "state");
		msgpack_sbuffer_write(&r->out, def->initial, def->initial_len);
		return;
	}
	msgpack_pack_array(&r->pk, q->count);
	msgpack_sbuffer_write(&r->out, q->states.data, q->states.size);
}

static void
query_fail_too_big(request *r, const proj_def *def, bool has_key)
{
	api_fail(r, SL_ETOOBIG,
	    "the states of projection '%s' take more than %u bytes, the "
	    "largest reply a query gives%s",
	    def != NULL ? def->name : "(dropped)",
	    (unsigned) API_QUERY_MAX_BYTES,
	    has_key ? ""
	            : ": query one key with 'key', or run it continuously "
	              "and page with get_all");
}

/* A transient run's current states: {handle, position, head, states}. */
static void
api_query_poll(request *r, uint64_t handle, const proj_def *def,
    const char *key, size_t key_len)
{
	runtime  *rt = r->rt;
	query_ctx q;
	uint64_t  position = 0;
	eproj    *e        = runtime_transient_get(rt, handle);
	int       rc;

	if (e == NULL) {
		api_fail(r, SL_ENOTFOUND,
		    "unknown transient handle %" PRIu64
		    " (closed, or its client disconnected)",
		    handle);
		return;
	}
	if (def != NULL && strcmp(eproj_id(e), def->id) != 0) {
		runtime_transient_put(rt, handle);
		api_fail(r, SL_EINVAL,
		    "handle %" PRIu64
		    " is a run of projection %s, not of '%s'",
		    handle, eproj_id(e), def->name);
		return;
	}
	const proj_def *rdef = eproj_def(e);
	memset(&q, 0, sizeof(q));
	msgpack_sbuffer_init(&q.states);
	rc = eproj_snapshot(e, key, key_len, query_state, &q, &position);
	if (rc == SL_OK && q.too_big)
		rc = SL_ETOOBIG;
	if (rc == SL_ETOOBIG) {
		query_fail_too_big(r, rdef != NULL ? rdef : def, key != NULL);
	} else if (rc != SL_OK) {
		api_fail(r, rc, "reading transient run %" PRIu64 " failed: %s",
		    handle, sl_strerror(rc));
	} else if (rdef == NULL && key != NULL && q.count == 0) {
		api_fail(r, SL_ENOTFOUND,
		    "transient run %" PRIu64 ": its projection was dropped",
		    handle);
	} else {
		uint64_t head = store_next_position(rt->store);
		mp_reply_ok(&r->pk, 4);
		mp_pack_kv_u64(&r->pk, "handle", handle);
		mp_pack_kv_u64(&r->pk, "position", position);
		mp_pack_kv_u64(
		    &r->pk, "head", head > position ? head : position);
		query_pack_states(r, &q, rdef, key, key_len);
		api_send(r);
	}
	msgpack_sbuffer_destroy(&q.states);
	runtime_transient_put(rt, handle);
}

/* A query's script is named for its file (basename) in every reason. */
#define API_QUERY_FILE_DEFAULT "query.js"
#define API_QUERY_FILE_MAX     255

/*
 * The request's script ("js", named by "file") loaded as a projection of
 * its own (registry_load_js_text), held for the caller: *def, SL_OK. On
 * an error the reply is sent and nothing is held. A script that declares
 * the streams it emits to is refused: a query writes nothing to the log.
 */
static int
query_script(request *r, const char *js, size_t js_len, const proj_def **def)
{
	const char *f;
	size_t      f_len;
	char        file[API_QUERY_FILE_MAX + 1];
	char        err[1024];
	int         rc;

	*def = NULL;
	if (api_str(r, "file", false, &f, &f_len) != SL_OK)
		return SL_EPROTO;
	if (f == NULL) {
		f     = API_QUERY_FILE_DEFAULT;
		f_len = strlen(f);
	}
	if (f_len < 4 || f_len > API_QUERY_FILE_MAX
	    || memcmp(f + f_len - 3, ".js", 3) != 0
	    || memchr(f, '/', f_len) != NULL
	    || memchr(f, '\0', f_len) != NULL) {
		api_fail(r, SL_EINVAL,
		    "field 'file' must be a script's file name: a name ending "
		    "in .js, at most %d bytes, without '/'",
		    API_QUERY_FILE_MAX);
		return SL_EINVAL;
	}
	memcpy(file, f, f_len);
	file[f_len] = '\0';
	if (memchr(js, '\0', js_len) != NULL) {
		api_fail(
		    r, SL_EINVAL, "%s: the script holds a NUL byte", file);
		return SL_EINVAL;
	}
	rc = registry_load_js_text(
	    r->rt->plugins, file, js, js_len, def, err, sizeof(err));
	if (rc != SL_OK) {
		api_fail(r, rc, "%s", err);
		return rc;
	}
	size_t n_emits;
	(void) proj_def_emits(*def, &n_emits);
	if (n_emits > 0) {
		api_fail(r, SL_EPLUGIN,
		    "%s: declares the streams it emits to (options({emits: "
		    "[...]})): a query writes nothing to the log; query it "
		    "without them (an emit then fails the query), or put it "
		    "in plugin_dir to run it",
		    file);
		proj_def_release(*def); /* the last hold: unloads it */
		*def = NULL;
		return SL_EPLUGIN;
	}
	return SL_OK;
}

/*
 * query {id, tenant?, key?, mode?: "one_time" | "transient", handle?,
 * close?}: run a projection to the head now and answer its states
 * (one_time), or start / poll / close a transient run. {js, file?} instead
 * of id: the projection is the script js, loaded for this query only.
 */
void
api_query(request *r)
{
	runtime              *rt = r->rt;
	const char           *id, *key, *js;
	size_t                id_len = 0, key_len, js_len = 0;
	const msgpack_object *mode;
	bool                  transient = false, close;
	uint64_t              handle;
	const proj_def       *def = NULL;
	rt_tenant            *t   = NULL;
	bool                  live = false; /* def held */
	char                  err[512];
	int                   rc;

	if (api_str(r, "id", false, &id, &id_len) != SL_OK
	    || api_str(r, "js", false, &js, &js_len) != SL_OK
	    || api_key(r, "key", false, &key, &key_len) != SL_OK
	    || api_u64(r, "handle", 0, &handle) != SL_OK
	    || api_bool(r, "close", false, &close) != SL_OK)
		return;
	mode = api_field(&r->root, "mode");
	if (mode == NULL || mp_str_eq(mode, "one_time")) {
		transient = false;
	} else if (mp_str_eq(mode, "transient")) {
		transient = true;
	} else {
		api_fail(r,
		    mode->type == MSGPACK_OBJECT_STR ? SL_EINVAL : SL_EPROTO,
		    "field 'mode' must be \"one_time\" or \"transient\"");
		return;
	}
	if (api_field(&r->root, "handle") != NULL && handle == 0) {
		api_fail(r, SL_EINVAL, "field 'handle': 0 is no handle");
		return;
	}
	if (handle != 0 && mode != NULL && !transient) {
		api_fail(r, SL_EINVAL,
		    "field 'handle' belongs to a transient run: mode "
		    "\"one_time\" takes none");
		return;
	}
	if (close && handle == 0) {
		api_fail(r, SL_EINVAL,
		    "field 'close' needs the 'handle' of the transient run to "
		    "end");
		return;
	}
	if (js != NULL && (id != NULL || handle != 0)) {
		api_fail(r, SL_EINVAL,
		    "field 'js' (a script to run) goes without %s",
		    id != NULL ? "'id': give one of them"
		               : "'handle': poll or close a transient run by "
		                 "its handle alone");
		return;
	}
	if (id == NULL && js == NULL && handle == 0) {
		api_fail(r, SL_EINVAL,
		    "field 'id' is missing (the projection's id or name)");
		return;
	}
	if (id != NULL && id_len == 0) {
		api_fail(r, SL_EINVAL, "field 'id' must not be empty");
		return;
	}
	if (id != NULL) {
		/* held from here: a reload must not unload the code this
		 * thread runs (the query) or reads (the vtable) */
		def = id_len <= SL_MAX_ID_LEN
		    ? runtime_find_def_held(rt, id, id_len, &live)
		    : NULL;
		if (def == NULL) {
			api_fail(r, SL_ENOTFOUND, "unknown projection '%.*s'",
			    (int) (id_len > SL_MAX_ID_LEN ? SL_MAX_ID_LEN
			                                  : id_len),
			    id);
			return;
		}
		if (def_is_filter(def)) {
			api_fail(r, SL_EINVAL,
			    "field 'id': '%s' is a filter: only projections "
			    "can be queried",
			    def->name);
			goto done;
		}
	}
	if (js != NULL) {
		if (query_script(r, js, js_len, &def) != SL_OK)
			return;
		live = true; /* held: released at done (or by its run) */
	}
	if (handle != 0) {
		/* another tenant's run is no run for this caller */
		eproj *own = runtime_transient_get(rt, handle);
		bool   hidden
		    = own != NULL && !api_cred_tenant(r, eproj_tenant(own));
		if (own != NULL)
			runtime_transient_put(rt, handle);
		if (hidden) {
			api_fail(r, SL_ENOTFOUND,
			    "unknown transient handle %" PRIu64, handle);
			goto done;
		}
		if (close) {
			if (def != NULL) {
				eproj *e = runtime_transient_get(rt, handle);
				bool   other = e != NULL
				    && strcmp(eproj_id(e), def->id) != 0;
				if (e != NULL)
					runtime_transient_put(rt, handle);
				if (other) {
					api_fail(r, SL_EINVAL,
					    "handle %" PRIu64
					    " is a run of another projection "
					    "than '%s'",
					    handle, def->name);
					goto done;
				}
			}
			if (runtime_transient_close(rt, handle) != SL_OK) {
				api_fail(r, SL_ENOTFOUND,
				    "unknown transient handle %" PRIu64,
				    handle);
				goto done;
			}
			mp_reply_ok(&r->pk, 2);
			mp_pack_kv_u64(&r->pk, "handle", handle);
			mp_pack_kv_bool(&r->pk, "closed", true);
			api_send(r);
			goto done;
		}
		api_query_poll(r, handle, def, key, key_len);
		goto done;
	}
	if (def->remote != NULL) {
		api_fail(r, SL_EINVAL,
		    "projection '%s' (%s) is a remote client's: only plugin "
		    "and system projections can be queried",
		    def->name, def->id);
		goto done;
	}
	if (!live || def->p == NULL) {
		api_fail(r, SL_ENOTFOUND,
		    "projection '%s' (%s) is not loaded any more", def->name,
		    def->id);
		goto done;
	}
	/* the tenant: given, or the only one */
	if (api_field(&r->root, "tenant") != NULL || rt->n_tenants != 1) {
		if (api_field(&r->root, "tenant") == NULL) {
			api_fail(r, SL_EINVAL,
			    "field 'tenant' is missing (the daemon serves "
			    "%zu tenants)",
			    rt->n_tenants);
			goto done;
		}
		if (api_tenant(r, &t) != SL_OK)
			goto done;
	} else {
		t = &rt->tenants[0];
		if (!api_may_tenant(r, t->cfg->id, strlen(t->cfg->id)))
			goto done;
	}

	err[0] = '\0';
	if (transient) {
		if (key != NULL) {
			api_fail(r, SL_EINVAL,
			    "field 'key' goes with polling a transient run "
			    "(with its 'handle'), not with starting one");
			goto done;
		}
		rc = runtime_transient_open(rt, api_call_pipe(r->call), t, def,
		    js != NULL, &handle, err, sizeof(err));
		if (rc != SL_OK) {
			api_fail(r, rc, "%s",
			    err[0] != '\0' ? err : sl_strerror(rc));
			goto done;
		}
		if (js != NULL)
			live = false; /* the run holds the script now */
		mp_reply_ok(&r->pk, 1);
		mp_pack_kv_u64(&r->pk, "handle", handle);
		api_send(r);
		goto done;
	}

	query_ctx q;
	uint64_t  position = 0;
	memset(&q, 0, sizeof(q));
	msgpack_sbuffer_init(&q.states);
	/* listed in status while it runs: `sluice query` shows progress */
	rt_query *run = runtime_query_begin(
	    rt, t->cfg->id, def, store_next_position(rt->store));
	rc = eproj_query(rt->store, t->cfg->id, def, key, key_len,
	    (int) rt->cfg->query_timeout_ms, query_cancelled, r->call,
	    query_state, &q, &position, run != NULL ? &run->position : NULL,
	    err, sizeof(err));
	runtime_query_end(rt, run);
	if (q.too_big)
		query_fail_too_big(r, def, key != NULL);
	else if (rc == SL_ETIMEDOUT)
		api_fail(r, rc,
		    "the one-time query of '%s' did not reach the head of the "
		    "log within %d ms",
		    def->name, (int) rt->cfg->query_timeout_ms);
	else if (rc != SL_OK)
		api_fail(r, rc, "the one-time query of '%s' failed: %s",
		    def->name, err[0] != '\0' ? err : sl_strerror(rc));
	else {
		mp_reply_ok(&r->pk, 2);
		mp_pack_kv_u64(&r->pk, "position", position);
		query_pack_states(r, &q, def, key, key_len);
		api_send(r);
	}
	msgpack_sbuffer_destroy(&q.states);
done:
	if (live)
		proj_def_release(def);
}
