/*
 * The wire protocol's log ops (docs/protocol.md): commit and delete_stream,
 * answered from the store's writer thread once durable, and read of the
 * log or a stream, run on a lane worker. Requests are decoded and
 * dispatched in api.c.
 */
#include "api_internal.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/errors.h>

#include "event.h"
#include "log.h"
#include "mp.h"

/* ---- commit ---- */

typedef struct commit_job {
	api_deferred  reply; /* first: run() gets the job */
	store_commit  sc;
	api_call     *call; /* its zone holds the request's objects and the
	                       request message its strings, both alive
	                       until api_reply */
	bool    on_writer; /* reply on the writer's thread (durable log) */
	ev_new  events[];  /* the commit's (one allocation with the job) */
} commit_job;

static void
commit_job_free(commit_job *job)
{
	free(job);
}

/* A reply small enough for the stack (a commit's or a deletion's, the
 * most frequent): packed here and copied once into the reply message,
 * no buffer allocated per reply. */
typedef struct small_reply {
	size_t len;
	char   data[192];
} small_reply;

static int
small_reply_write(void *arg, const char *buf, size_t len)
{
	small_reply *r = arg;
	if (len > sizeof(r->data) - r->len)
		return -1;
	memcpy(r->data + r->len, buf, len);
	r->len += len;
	return 0;
}

/* The error reply of a refused commit or deletion: EREVISION carries
 * actual_revision. */
static void
store_pack_err(msgpack_packer *pk, const store_commit *sc)
{
	const char *msg
	    = sc->message[0] != '\0' ? sc->message : sl_strerror(sc->rc);

	if (sc->rc != SL_EREVISION) {
		api_pack_err(pk, sc->rc, msg, 0);
		return;
	}
	api_pack_err(pk, sc->rc, msg, 1);
	mp_pack_cstr(pk, "actual_revision");
	if (sc->stream_revision == STORE_EXPECT_NO_STREAM)
		msgpack_pack_nil(pk);
	else
		msgpack_pack_uint64(pk, sc->stream_revision);
}

/* The reply of a commit or a deletion, built and sent on the server's
 * reply thread (commit_done queued it). */
static void
commit_reply(api_deferred *d)
{
	commit_job     *job = (commit_job *) d;
	store_commit   *sc  = &job->sc;
	msgpack_sbuffer sb;
	msgpack_packer  pk;
	small_reply     r    = { .len = 0 };
	api_call       *call = job->call;

	if (sc->rc != SL_OK) {
		msgpack_sbuffer_init(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		store_pack_err(&pk, sc);
		commit_job_free(job);
		api_reply(call, sb.data, sb.size);
		msgpack_sbuffer_destroy(&sb);
		return;
	}
	/* fixed maps: "v", "ok" and the results */
	msgpack_packer_init(&pk, &r, small_reply_write);
	if (sc->trunc != STORE_TRUNC_NONE) {
		msgpack_pack_map(&pk, 5);
		mp_pack_kv_u64(&pk, "v", SL_PROTOCOL_VERSION);
		mp_pack_kv_bool(&pk, "ok", true);
		mp_pack_kv_u64(&pk, "position", sc->first_position);
		mp_pack_kv_u64(&pk, "revision", sc->stream_revision);
		mp_pack_kv_u64(&pk, "truncate_before", sc->truncate_before);
	} else {
		msgpack_pack_map(&pk, 6);
		mp_pack_kv_u64(&pk, "v", SL_PROTOCOL_VERSION);
		mp_pack_kv_bool(&pk, "ok", true);
		mp_pack_kv_u64(&pk, "first_position", sc->first_position);
		mp_pack_kv_u64(&pk, "last_position",
		    sc->first_position + sc->n_events - 1);
		mp_pack_kv_u64(&pk, "first_revision", sc->first_revision);
		mp_pack_kv_u64(&pk, "count", sc->n_events);
	}
	commit_job_free(job);
	api_reply(call, r.data, r.len);
}

/*
 * The store's done(), on the writer thread once the transaction is
 * durable (or refused). Without fsync the reply leaves the writer's path
 * (the reply thread sends it while the writer takes the next group). With
 * fsync the writer sends the replies itself: while it does, the clients
 * it answered first commit again, so the next group, and the fsync it
 * pays for, is larger (handed off, 16 clients of single-event durable
 * commits made 0.78x the events/s; bench/RESULTS.md).
 */
static void
commit_done(store_commit *sc, void *arg)
{
	commit_job *job = arg;
	(void) sc;
	job->reply.run = commit_reply;
	if (job->on_writer)
		commit_reply(&job->reply);
	else
		api_defer(job->call, &job->reply);
}

/* The request's "expected": "any" (default), "no_stream" or the revision
 * of the stream's last event. The error reply is sent here. */
static int
api_expected(request *r, uint64_t *out)
{
	const msgpack_object *exp = api_field(&r->root, "expected");

	*out = STORE_EXPECT_ANY;
	if (exp == NULL || mp_str_eq(exp, "any"))
		return SL_OK;
	if (mp_str_eq(exp, "no_stream")) {
		*out = STORE_EXPECT_NO_STREAM;
		return SL_OK;
	}
	if (exp->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
		api_fail(r, SL_EPROTO,
		    "field 'expected' must be \"any\", \"no_stream\" or a "
		    "non-negative integer (the stream's last revision)");
		return SL_EPROTO;
	}
	if (exp->via.u64 >= STORE_EXPECT_NO_STREAM) {
		api_fail(r, SL_EINVAL,
		    "field 'expected': revision %" PRIu64 " is out of range",
		    exp->via.u64);
		return SL_EINVAL;
	}
	*out = exp->via.u64;
	return SL_OK;
}

/* Hand job (its store_commit filled but for done) to the store; the
 * reply comes from commit_done. */
static void
commit_submit(request *r, commit_job *job)
{
	int rc;

	job->call      = r->call;
	job->on_writer = r->rt->cfg->store_sync;
	job->sc.done = commit_done;
	job->sc.arg  = job;
	rc           = store_submit(r->rt->store, &job->sc);
	if (rc != SL_OK) {
		free(job);
		api_fail(r, rc, "not accepted by the event log: %s",
		    sl_strerror(rc));
		return;
	}
}

void
api_commit(request *r)
{
	const sl_config      *cfg = r->rt->cfg;
	rt_tenant            *t;
	const char           *stream;
	size_t                stream_len;
	const msgpack_object *evs;
	uint64_t              expected;
	commit_job           *job;
	char                  err[256];
	int                   rc;

	if (api_tenant(r, &t) != SL_OK
	    || api_id(r, "stream", &stream, &stream_len) != SL_OK)
		return;
	if (stream[0] == '$') {
		api_fail(r, SL_EINVAL,
		    "field 'stream': ids starting with '$' are system "
		    "streams, "
		    "written only by projections");
		return;
	}
	if (api_expected(r, &expected) != SL_OK)
		return;

	evs = mp_get(&r->root, "events");
	if (evs == NULL) {
		api_fail(r, SL_EINVAL, "field 'events' is missing");
		return;
	}
	if (evs->type != MSGPACK_OBJECT_ARRAY) {
		api_fail(r, SL_EPROTO, "field 'events' must be an array");
		return;
	}
	if (evs->via.array.size == 0) {
		api_fail(r, SL_EINVAL, "field 'events' is empty");
		return;
	}
	if (evs->via.array.size > cfg->max_events_per_commit) {
		api_fail(r, SL_ETOOBIG,
		    "field 'events' holds %u events (limit %zu per commit)",
		    evs->via.array.size, cfg->max_events_per_commit);
		return;
	}

	/* bounded by max_events_per_commit (checked above) */
	job = calloc(1,
	    sizeof(*job) + (size_t) evs->via.array.size * sizeof(ev_new));
	if (job == NULL) {
		api_fail(r, SL_ENOMEM, "out of memory");
		return;
	}
	for (uint32_t i = 0; i < evs->via.array.size; i++) {
		const msgpack_object *o = &evs->via.array.ptr[i];
		ev_new               *e = &job->events[i];

		err[0] = '\0';
		if (o->type != MSGPACK_OBJECT_MAP) {
			rc = SL_EPROTO;
			snprintf(err, sizeof(err), "must be a map");
		} else {
			rc = ev_parse_new(o, e, err, sizeof(err));
		}
		if (rc != SL_OK) {
			free(job);
			api_fail(r, rc, "events[%u]: %s", i,
			    err[0] != '\0' ? err : sl_strerror(rc));
			return;
		}
	}

	job->sc.tenant     = t->cfg->id;
	job->sc.tenant_len = strlen(t->cfg->id);
	job->sc.stream     = stream;
	job->sc.stream_len = stream_len;
	job->sc.expected   = expected;
	job->sc.events     = job->events;
	job->sc.n_events   = evs->via.array.size;
	commit_submit(r, job);
}

/* ---- delete_stream ---- */

void
api_delete_stream(request *r)
{
	rt_tenant  *t;
	const char *stream;
	size_t      stream_len;
	uint64_t    expected, before;
	bool        truncate;
	commit_job *job;

	if (api_tenant(r, &t) != SL_OK
	    || api_id(r, "stream", &stream, &stream_len) != SL_OK
	    || api_expected(r, &expected) != SL_OK)
		return;
	truncate = api_field(&r->root, "truncate_before") != NULL;
	if (api_u64(r, "truncate_before", 0, &before) != SL_OK)
		return;
	/* The store refuses the rest (a '$' stream, an owned one, nothing
	 * to hide, a revision outside the stream), naming why. */
	job = calloc(1, sizeof(*job));
	if (job == NULL) {
		api_fail(r, SL_ENOMEM, "out of memory");
		return;
	}
	job->sc.tenant     = t->cfg->id;
	job->sc.tenant_len = strlen(t->cfg->id);
	job->sc.stream     = stream;
	job->sc.stream_len = stream_len;
	job->sc.expected   = expected;
	job->sc.trunc = truncate ? STORE_TRUNC_BEFORE : STORE_TRUNC_DELETE;
	job->sc.truncate_before = before;
	commit_submit(r, job);
}

/* ---- read ---- */

typedef struct read_ctx {
	msgpack_sbuffer events;
	msgpack_packer  pk;
	msgpack_zone    zone;
	uint32_t        count;
	uint64_t        next;
	bool            by_revision; /* next is a revision, not a position */
	int             rc;
	/* resolve_links: a link event is answered as its target */
	bool           resolve;
	store         *store;
	msgpack_zone   tzone; /* the target's decoded event */
	const ev_view *link;  /* the link being resolved */
	bool           resolved;
	/* a read of the log: only these tenants' events (auth.h) */
	const cfg_cred *cred;
} read_ctx;

/* The link event type and its content, "N@stream" (EventStoreDB's). */
#define API_LINK_TYPE "$>"

/* store_resolve_link callback: the target, packed with the link's place. */
static int
read_link_target(void *arg, uint64_t position, const void *data, size_t len)
{
	read_ctx      *rc = arg;
	const ev_view *l  = rc->link;
	ev_view        ev;

	msgpack_zone_clear(&rc->tzone);
	if (ev_decode(data, len, position, &rc->tzone, &ev) != SL_OK) {
		log_error("api",
		    "event at position %" PRIu64
		    " (a link's target) cannot be decoded",
		    position);
		return SL_ESTORAGE;
	}
	ev_pack_wire_extra(&rc->pk, &ev, 1);
	mp_pack_cstr(&rc->pk, "link");
	msgpack_pack_map(&rc->pk, 3);
	mp_pack_kv_u64(&rc->pk, "position", l->position);
	mp_pack_kv_str(&rc->pk, "stream", l->stream);
	mp_pack_kv_u64(&rc->pk, "revision", l->revision);
	rc->resolved = true;
	return SL_OK;
}

/* Pack ev, or with resolve_links its target when ev is a link. */
static int
read_pack(read_ctx *rc, const ev_view *ev)
{
	if (!rc->resolve || strcmp(ev->type, API_LINK_TYPE) != 0) {
		ev_pack_wire(&rc->pk, ev);
		return SL_OK;
	}
	rc->link     = ev;
	rc->resolved = false;
	if (ev->content.type == MSGPACK_OBJECT_STR) {
		int err = store_resolve_link(rc->store, ev->tenant,
		    ev->content.via.str.ptr, ev->content.via.str.size,
		    read_link_target, rc);
		if (err != SL_OK && err != SL_ENOTFOUND && err != SL_EINVAL)
			return err;
	}
	if (!rc->resolved) {
		/* deleted, never written, or not a link's content */
		ev_pack_wire_extra(&rc->pk, ev, 1);
		mp_pack_kv_bool(&rc->pk, "unresolved", true);
	}
	return SL_OK;
}

static int
read_one(void *arg, uint64_t position, const void *data, size_t len)
{
	read_ctx *rc = arg;
	ev_view   ev;
	ev_head   h;
	int       err;

	bool peeked = ev_peek(data, len, &h) == SL_OK;

	/* another tenant's event: not the caller's to see (next passes it,
	 * as it passes hidden events) */
	if (peeked && !auth_tenant_ok(rc->cred, h.tenant, h.tenant_len)) {
		rc->next = position + 1;
		return 0;
	}
	/* not a link to resolve: the wire map straight from the stored
	 * bytes; decoded only when ev_pack_wire_raw does not take them */
	if (peeked
	    && (!rc->resolve || h.type_len != strlen(API_LINK_TYPE)
	        || memcmp(h.type, API_LINK_TYPE, h.type_len) != 0)
	    && ev_pack_wire_raw(&rc->pk, data, len, position, 0) == SL_OK) {
		rc->count++;
		rc->next = rc->by_revision ? h.revision + 1 : position + 1;
		return rc->events.size >= API_REPLY_SOFT_BYTES ? -1 : 0;
	}
	msgpack_zone_clear(&rc->zone);
	if (ev_decode(data, len, position, &rc->zone, &ev) != SL_OK) {
		log_error("api",
		    "event at position %" PRIu64 " cannot be decoded",
		    position);
		rc->rc = SL_ESTORAGE;
		return SL_ESTORAGE;
	}
	if (!auth_tenant_ok(rc->cred, ev.tenant, strlen(ev.tenant))) {
		rc->next = position + 1;
		return 0;
	}
	if ((err = read_pack(rc, &ev)) != SL_OK) {
		rc->rc = err;
		return err;
	}
	rc->count++;
	rc->next = rc->by_revision ? ev.revision + 1 : position + 1;
	/* Nonzero stops the scan; the client pages on from next. */
	return rc->events.size >= API_REPLY_SOFT_BYTES ? -1 : 0;
}

void
api_read(request *r)
{
	const sl_config *cfg = r->rt->cfg;
	const char      *tenant, *stream;
	size_t           tenant_len, stream_len;
	uint64_t         from, max, from_rev, head;
	read_ctx         rc;
	bool             resolve, gap;
	int              err;

	if (api_bool(r, "resolve_links", false, &resolve) != SL_OK
	    || api_bool(r, "gap", false, &gap) != SL_OK
	    || api_u64(r, "from", 0, &from) != SL_OK
	    || api_u64(r, "max", cfg->max_read_events, &max) != SL_OK
	    || api_u64(r, "from_revision", 0, &from_rev) != SL_OK
	    || api_str(r, "tenant", false, &tenant, &tenant_len) != SL_OK
	    || api_str(r, "stream", false, &stream, &stream_len) != SL_OK)
		return;
	if (max == 0 || max > cfg->max_read_events)
		max = cfg->max_read_events;
	if ((tenant == NULL) != (stream == NULL)) {
		api_fail(r, SL_EINVAL,
		    "fields 'tenant' and 'stream' go together: give both to "
		    "read one stream, or neither to read the log");
		return;
	}

	memset(&rc, 0, sizeof(rc));
	rc.resolve = resolve;
	rc.store   = r->rt->store;
	rc.cred    = r->cred;
	msgpack_sbuffer_init(&rc.events);
	msgpack_packer_init(&rc.pk, &rc.events, msgpack_sbuffer_write);
	if (!msgpack_zone_init(&rc.zone, 4096)) {
		msgpack_sbuffer_destroy(&rc.events);
		api_fail(r, SL_ENOMEM, "out of memory");
		return;
	}
	if (!msgpack_zone_init(&rc.tzone, 4096)) {
		msgpack_zone_destroy(&rc.zone);
		msgpack_sbuffer_destroy(&rc.events);
		api_fail(r, SL_ENOMEM, "out of memory");
		return;
	}
	head = store_next_position(r->rt->store);
	if (tenant != NULL) {
		char t[SL_MAX_ID_LEN + 1], s[SL_MAX_ID_LEN + 1];
		if (api_id(r, "tenant", &tenant, &tenant_len) != SL_OK
		    || api_id(r, "stream", &stream, &stream_len) != SL_OK)
			goto done;
		if (!api_may_tenant(r, tenant, tenant_len))
			goto done;
		memcpy(t, tenant, tenant_len);
		t[tenant_len] = '\0';
		memcpy(s, stream, stream_len);
		s[stream_len] = '\0';
		if (runtime_tenant(r->rt, tenant, tenant_len) == NULL) {
			api_fail(r, SL_ENOTFOUND, "unknown tenant '%s'", t);
			goto done;
		}
		rc.by_revision = true;
		rc.next        = from_rev;
		err            = store_scan_stream(
		               r->rt->store, t, s, from_rev, max, read_one, &rc);
	} else {
		/* Events of deleted streams are skipped; next goes past them
		 * (a page may come back empty with next moved on). */
		err = store_scan_visible(
		    r->rt->store, from, max, read_one, &rc, &rc.next);
	}
	if (err == -1)
		err = SL_OK;
	if (err != SL_OK || rc.rc != SL_OK) {
		api_fail(
		    r, rc.rc != SL_OK ? rc.rc : err, "reading the log failed");
		goto done;
	}
	if (!rc.by_revision && head < rc.next)
		head = rc.next; /* commits landed during the scan */
	if (gap && rc.count > 0)
		pub_note_gap(r->rt->pub, rc.count);

	{
		mp_map m;

		mp_reply_ok_open(&m, &r->pk);
		mp_map_key(&m, "events");
		msgpack_pack_array(&r->pk, rc.count);
		msgpack_sbuffer_write(&r->out, rc.events.data, rc.events.size);
		mp_map_u64(&m, "next", rc.next);
		mp_map_u64(&m, "head", head);
		mp_map_close(&m);
	}
	api_send(r);
done:
	msgpack_zone_destroy(&rc.tzone);
	msgpack_zone_destroy(&rc.zone);
	msgpack_sbuffer_destroy(&rc.events);
}
