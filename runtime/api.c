/*
 * The wire protocol's requests (docs/protocol.md): decode a msgpack map,
 * check the envelope, and run the op. Commits go to the store's writer and
 * are answered from its thread; reads run here, on the NNG callback thread.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include <sluice/errors.h>

#include "emitter.h"
#include "event.h"
#include "log.h"
#include "mp.h"
#include "runtime.h"
#include "server.h"
#include "sysproj.h"

/* A read or get_all reply stops growing near this size (one event or read
 * model always fits); the client pages on with "next" / "after". */
#define API_REPLY_SOFT_BYTES (8u << 20)
/* get_all's default and largest page. */
#define API_GET_ALL_MAX 1000
/* Deepest nesting of arrays and maps in a request. */
#define API_MAX_DEPTH 32
/* LMDB's largest key: read model keys longer than this cannot exist. */
#define API_MAX_KEY_LEN 511

typedef struct request {
	runtime        *rt;
	api_call       *call;
	msgpack_object  root;
	msgpack_zone   *zone;
	msgpack_sbuffer out; /* the reply */
	msgpack_packer  pk;
} request;

/* ---- replies ---- */

static void
api_pack_err(msgpack_packer *pk, int code, const char *message, size_t n_extra)
{
	msgpack_pack_map(pk, 5 + n_extra);
	mp_pack_kv_u64(pk, "v", SL_PROTOCOL_VERSION);
	mp_pack_kv_bool(pk, "ok", false);
	mp_pack_kv_u64(pk, "code", (uint64_t) code);
	mp_pack_kv_str(pk, "error", sl_errname(code));
	mp_pack_kv_str(pk, "message", message);
}

static void
api_send(request *r)
{
	api_reply(r->call, r->out.data, r->out.size);
}

/* Replace whatever was packed with an error reply and send it. */
static void api_fail(request *r, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
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

/* ---- request checks ---- */

static uint64_t
api_be(const unsigned char *p, size_t n)
{
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++)
		v = (v << 8) | p[i];
	return v;
}

/*
 * Walk the raw bytes once before msgpack_unpack: every length must fit in
 * what is left, every container count must be coverable by the remaining
 * bytes (an element takes at least one), nesting stays under API_MAX_DEPTH
 * and nothing trails the top object. msgpack-c would otherwise allocate a
 * claimed 4-billion-element array before finding the message short.
 */
static int
api_check_msgpack(const unsigned char *p, size_t len, char *err, size_t errlen)
{
	uint64_t pending[API_MAX_DEPTH + 1];
	int      depth = 0;
	size_t   i     = 0;

	pending[0] = 1;
	while (depth >= 0) {
		uint64_t n = 0, skip = 0;
		int      kind = 0; /* 0 scalar, 1 array, 2 map */
		uint8_t  b;

		if (pending[depth] == 0) {
			depth--;
			continue;
		}
		if (i >= len) {
			snprintf(
			    err, errlen, "truncated msgpack at byte %zu", i);
			return SL_EPROTO;
		}
		pending[depth]--;
		b = p[i++];
		if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2
		    || b == 0xc3) {
			skip = 0;
		} else if (b >= 0x80 && b <= 0x8f) {
			kind = 2, n = b & 0x0f;
		} else if (b >= 0x90 && b <= 0x9f) {
			kind = 1, n = b & 0x0f;
		} else if (b >= 0xa0 && b <= 0xbf) {
			skip = b & 0x1f;
		} else {
			static const uint8_t lenbytes[] = { /* c4 bin8 */ 1, 2,
				4, /* c7 ext8 */ 1, 2, 4,
				/* ca float */ 0, 0, /* cc uint */ 0, 0, 0, 0,
				/* d0 int */ 0, 0, 0, 0, /* d4 fixext */ 0, 0,
				0, 0, 0, /* d9 str */ 1, 2, 4,
				/* dc array */ 2, 4, /* de map */ 2, 4 };
			static const uint8_t fixed[]
			    = { 0, 0, 0, 0, 0, 0, 4, 8, 1, 2, 4, 8, 1, 2, 4, 8,
				      2, 3, 5, 9, 17, 0, 0, 0, 0, 0, 0, 0 };
			unsigned k;
			if (b == 0xc1) {
				snprintf(err, errlen,
				    "invalid msgpack byte 0xc1 at byte %zu",
				    i - 1);
				return SL_EPROTO;
			}
			k = b - 0xc4;
			if (lenbytes[k] > 0) {
				if (len - i < lenbytes[k]) {
					snprintf(err, errlen,
					    "truncated msgpack at byte %zu",
					    i);
					return SL_EPROTO;
				}
				n = api_be(p + i, lenbytes[k]);
				i += lenbytes[k];
			}
			if (b >= 0xdc && b <= 0xdd)
				kind = 1;
			else if (b >= 0xde)
				kind = 2;
			else if (b >= 0xc7 && b <= 0xc9)
				skip = n + 1; /* type byte + data */
			else if (lenbytes[k] > 0)
				skip = n;
			else
				skip = fixed[k];
		}
		if (kind == 0) {
			if (len - i < skip) {
				snprintf(err, errlen,
				    "truncated msgpack at byte %zu", i);
				return SL_EPROTO;
			}
			i += skip;
			continue;
		}
		if (kind == 2)
			n *= 2;
		if (n > len - i) {
			snprintf(err, errlen,
			    "msgpack %s at byte %zu claims more elements than "
			    "the message holds",
			    kind == 1 ? "array" : "map", i);
			return SL_EPROTO;
		}
		if (n > 0) {
			if (depth == API_MAX_DEPTH) {
				snprintf(err, errlen,
				    "msgpack nested deeper than %d levels",
				    API_MAX_DEPTH);
				return SL_EPROTO;
			}
			pending[++depth] = n;
		}
	}
	if (i != len) {
		snprintf(
		    err, errlen, "%zu bytes after the request map", len - i);
		return SL_EPROTO;
	}
	return SL_OK;
}

/* Field getters: nil counts as absent. A missing required field is
 * SL_EINVAL, a wrong type SL_EPROTO, each naming the field; the error reply
 * is sent here. Optional absent fields give SL_OK and the default. */

static const msgpack_object *
api_field(const msgpack_object *m, const char *key)
{
	const msgpack_object *o = mp_get(m, key);
	return (o == NULL || o->type == MSGPACK_OBJECT_NIL) ? NULL : o;
}

static int
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

static int
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

static int
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
static int
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

static int
api_tenant(request *r, rt_tenant **out)
{
	const char *s;
	size_t      len;
	int         rc = api_id(r, "tenant", &s, &len);

	if (rc != SL_OK)
		return rc;
	*out = runtime_tenant(r->rt, s, len);
	if (*out == NULL) {
		api_fail(
		    r, SL_ENOTFOUND, "unknown tenant '%.*s'", (int) len, s);
		return SL_ENOTFOUND;
	}
	return SL_OK;
}

static int
api_projection(request *r, const proj_def **out)
{
	const char *s;
	size_t      len;
	int         rc = api_str(r, "projection", true, &s, &len);

	if (rc != SL_OK)
		return rc;
	*out = len > 0 && len <= SL_MAX_ID_LEN
	    ? runtime_find_def(r->rt, s, len)
	    : NULL;
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
		*out = NULL;
		return SL_EINVAL;
	}
	return SL_OK;
}

/* A read model key: 1..API_MAX_KEY_LEN bytes. */
static int
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

/* ---- commit ---- */

typedef struct commit_job {
	store_commit  sc;
	api_call     *call;
	msgpack_zone *zone; /* the request's objects; strings are in the
	                       request message, alive until api_reply */
	ev_new *events;
} commit_job;

static void
commit_job_free(commit_job *job)
{
	msgpack_zone_free(job->zone);
	free(job->events);
	free(job);
}

static void
commit_done(store_commit *sc, void *arg)
{
	commit_job     *job = arg;
	msgpack_sbuffer sb;
	msgpack_packer  pk;
	api_call       *call = job->call;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	if (sc->rc == SL_OK) {
		mp_reply_ok(&pk, 4);
		mp_pack_kv_u64(&pk, "first_position", sc->first_position);
		mp_pack_kv_u64(&pk, "last_position",
		    sc->first_position + sc->n_events - 1);
		mp_pack_kv_u64(&pk, "first_revision", sc->first_revision);
		mp_pack_kv_u64(&pk, "count", sc->n_events);
	} else if (sc->rc == SL_EREVISION) {
		api_pack_err(&pk, sc->rc,
		    sc->message[0] != '\0' ? sc->message : sl_strerror(sc->rc),
		    1);
		mp_pack_cstr(&pk, "actual_revision");
		if (sc->stream_revision == STORE_EXPECT_NO_STREAM)
			msgpack_pack_nil(&pk);
		else
			msgpack_pack_uint64(&pk, sc->stream_revision);
	} else {
		api_pack_err(&pk, sc->rc,
		    sc->message[0] != '\0' ? sc->message : sl_strerror(sc->rc),
		    0);
	}
	commit_job_free(job);
	api_reply(call, sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);
}

static void
api_commit(request *r)
{
	const sl_config      *cfg = r->rt->cfg;
	rt_tenant            *t;
	const char           *stream;
	size_t                stream_len;
	const msgpack_object *exp, *evs;
	uint64_t              expected = STORE_EXPECT_ANY;
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

	exp = api_field(&r->root, "expected");
	if (exp == NULL || mp_str_eq(exp, "any")) {
		expected = STORE_EXPECT_ANY;
	} else if (mp_str_eq(exp, "no_stream")) {
		expected = STORE_EXPECT_NO_STREAM;
	} else if (exp->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
		expected = exp->via.u64;
		if (expected >= STORE_EXPECT_NO_STREAM) {
			api_fail(r, SL_EINVAL,
			    "field 'expected': revision %" PRIu64
			    " is out of range",
			    expected);
			return;
		}
	} else {
		api_fail(r, SL_EPROTO,
		    "field 'expected' must be \"any\", \"no_stream\" or a "
		    "non-negative integer (the stream's last revision)");
		return;
	}

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

	job = calloc(1, sizeof(*job));
	if (job != NULL)
		job->events = calloc(evs->via.array.size, sizeof(ev_new));
	if (job == NULL || job->events == NULL) {
		free(job);
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
			free(job->events);
			free(job);
			api_fail(r, rc, "events[%u]: %s", i,
			    err[0] != '\0' ? err : sl_strerror(rc));
			return;
		}
	}

	job->call          = r->call;
	job->zone          = r->zone;
	job->sc.tenant     = t->cfg->id;
	job->sc.tenant_len = strlen(t->cfg->id);
	job->sc.stream     = stream;
	job->sc.stream_len = stream_len;
	job->sc.expected   = expected;
	job->sc.events     = job->events;
	job->sc.n_events   = evs->via.array.size;
	job->sc.done       = commit_done;
	job->sc.arg        = job;
	rc                 = store_submit(r->rt->store, &job->sc);
	if (rc != SL_OK) {
		free(job->events);
		free(job);
		api_fail(r, rc, "commit not accepted: %s", sl_strerror(rc));
		return;
	}
	/* The job owns the zone now; done() replies and frees it. */
	r->zone = NULL;
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
	int       err;

	msgpack_zone_clear(&rc->zone);
	if (ev_decode(data, len, position, &rc->zone, &ev) != SL_OK) {
		log_error("api",
		    "event at position %" PRIu64 " cannot be decoded",
		    position);
		rc->rc = SL_ESTORAGE;
		return SL_ESTORAGE;
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

static void
api_read(request *r)
{
	const sl_config *cfg = r->rt->cfg;
	const char      *tenant, *stream;
	size_t           tenant_len, stream_len;
	uint64_t         from, max, from_rev, head;
	read_ctx         rc;
	bool             resolve;
	int              err;

	if (api_bool(r, "resolve_links", false, &resolve) != SL_OK
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
		rc.next = from;
		err = store_scan(r->rt->store, from, max, read_one, &rc, NULL);
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

	mp_reply_ok(&r->pk, 3);
	mp_pack_cstr(&r->pk, "events");
	msgpack_pack_array(&r->pk, rc.count);
	msgpack_sbuffer_write(&r->out, rc.events.data, rc.events.size);
	mp_pack_kv_u64(&r->pk, "next", rc.next);
	mp_pack_kv_u64(&r->pk, "head", head);
	api_send(r);
done:
	msgpack_zone_destroy(&rc.tzone);
	msgpack_zone_destroy(&rc.zone);
	msgpack_sbuffer_destroy(&rc.events);
}

/* ---- filter streams ---- */

/* The longest partition id (readmodels.h). */
#define API_MAX_PARTITION_LEN 255
/* filter_fetch_one's "got it, stop" (sl_err codes are positive). */
#define API_FETCH_DONE (-2)

static const char *
api_filter_kind_name(sl_filter_kind k)
{
	switch (k) {
	case SL_FILTER_UNPARTITIONED:
		return "unpartitioned";
	case SL_FILTER_PARTITIONED:
		return "partitioned";
	case SL_FILTER_PUBLIC:
		return "public";
	}
	return "unknown";
}

/* What a definition runs, as status and plugins name it. */
static const char *
api_kind_name(const proj_def *d)
{
	return def_is_filter(d) ? "filter" : "projection";
}

typedef struct filter_read_ctx {
	runtime        *rt;
	const char     *tenant;      /* the tenant's id (NUL-terminated) */
	bool            partitioned; /* entries carry a partition */
	msgpack_sbuffer events;      /* the reply's events, packed */
	msgpack_packer  pk;
	msgpack_zone    zone;
	uint32_t        count;
	uint64_t        next; /* stream position after the last event */
	/* the entry being fetched */
	uint64_t    stream_pos, log_pos;
	uint64_t    generation; /* of the stream read */
	const char *partition;
	size_t      plen;
	bool        found;
} filter_read_ctx;

/* store_scan callback: the event at fr->log_pos, packed with its extras. */
static int
filter_fetch_one(void *arg, uint64_t position, const void *data, size_t len)
{
	filter_read_ctx *fr = arg;
	ev_view          ev;

	if (position != fr->log_pos)
		return SL_OK; /* not there: reported by the caller */
	msgpack_zone_clear(&fr->zone);
	if (ev_decode(data, len, position, &fr->zone, &ev) != SL_OK) {
		log_error("api",
		    "event at position %" PRIu64 " cannot be decoded",
		    position);
		return SL_ESTORAGE;
	}
	/* A tenant's stream only indexes its own events; never show
	 * another tenant's, whatever the index says. */
	if (strcmp(ev.tenant, fr->tenant) != 0) {
		log_error("api",
		    "tenant %s: a filter stream names position %" PRIu64
		    " of tenant %s",
		    fr->tenant, position, ev.tenant);
		return SL_EINTERNAL;
	}
	ev_pack_wire_extra(&fr->pk, &ev, fr->partitioned ? 3 : 2);
	mp_pack_kv_u64(&fr->pk, "stream_position", fr->stream_pos);
	mp_pack_kv_u64(&fr->pk, "stream_generation", fr->generation);
	if (fr->partitioned) {
		mp_pack_cstr(&fr->pk, "partition");
		mp_pack_strn(&fr->pk, fr->partition, fr->plen);
	}
	fr->found = true;
	return API_FETCH_DONE;
}

/* rm_stream_read callback: fetch one indexed event from the log. */
static int
filter_read_one(void *arg, uint64_t stream_pos, uint64_t log_pos,
    uint64_t other_pos, const char *partition, size_t plen)
{
	(void) other_pos;
	filter_read_ctx *fr = arg;
	int              rc;

	fr->stream_pos = stream_pos;
	fr->log_pos    = log_pos;
	fr->partition  = partition;
	fr->plen       = plen;
	fr->found      = false;
	rc = store_scan(fr->rt->store, log_pos, 1, filter_fetch_one, fr, NULL);
	if (rc == API_FETCH_DONE)
		rc = SL_OK;
	if (rc == SL_OK && !fr->found) {
		log_error("api",
		    "tenant %s: a filter stream names log position %" PRIu64
		    ", which the log does not hold",
		    fr->tenant, log_pos);
		rc = SL_EINTERNAL;
	}
	if (rc != SL_OK)
		return rc;
	fr->count++;
	fr->next = stream_pos + 1;
	/* -1 stops the read; the client pages on from next. */
	return fr->events.size >= API_REPLY_SOFT_BYTES ? -1 : 0;
}

static void
api_read_filter(request *r)
{
	const sl_config *cfg = r->rt->cfg;
	rt_tenant       *t;
	const proj_def  *def;
	const char      *fid, *part;
	size_t           fid_len, part_len;
	uint64_t         from, max, next = 0;
	bool             more = false;
	filter_read_ctx  fr;
	int              rc;

	if (api_tenant(r, &t) != SL_OK
	    || api_str(r, "filter", true, &fid, &fid_len) != SL_OK
	    || api_str(r, "partition", false, &part, &part_len) != SL_OK
	    || api_u64(r, "from", 0, &from) != SL_OK
	    || api_u64(r, "max", cfg->max_read_events, &max) != SL_OK)
		return;
	if (max == 0 || max > cfg->max_read_events)
		max = cfg->max_read_events;
	def = fid_len > 0 && fid_len <= SL_MAX_ID_LEN
	    ? runtime_find_def(r->rt, fid, fid_len)
	    : NULL;
	if (def == NULL) {
		api_fail(r, SL_ENOTFOUND, "unknown filter '%.*s'",
		    (int) (fid_len > SL_MAX_ID_LEN ? SL_MAX_ID_LEN : fid_len),
		    fid);
		return;
	}
	if (!def_is_filter(def)) {
		api_fail(r, SL_EINVAL,
		    "field 'filter': '%.*s' is a projection, not a filter "
		    "(query its read models with get_one / get_all)",
		    (int) fid_len, fid);
		return;
	}
	if (part != NULL) {
		if (part_len == 0) {
			api_fail(r, SL_EINVAL,
			    "field 'partition' must not be empty");
			return;
		}
		if (part_len > API_MAX_PARTITION_LEN) {
			api_fail(r, SL_ETOOBIG,
			    "field 'partition' is %zu bytes (limit %d)",
			    part_len, API_MAX_PARTITION_LEN);
			return;
		}
		if (memchr(part, '\0', part_len) != NULL) {
			api_fail(r, SL_EINVAL,
			    "field 'partition' contains a NUL byte");
			return;
		}
		if (def->filter_kind == SL_FILTER_UNPARTITIONED) {
			api_fail(r, SL_EINVAL,
			    "field 'partition': filter '%s' (%s) is "
			    "unpartitioned",
			    def->name, def->id);
			return;
		}
	}

	memset(&fr, 0, sizeof(fr));
	fr.rt          = r->rt;
	fr.tenant      = t->cfg->id;
	fr.partitioned = def->filter_kind != SL_FILTER_UNPARTITIONED;
	fr.next        = from;
	msgpack_sbuffer_init(&fr.events);
	msgpack_packer_init(&fr.pk, &fr.events, msgpack_sbuffer_write);
	if (!msgpack_zone_init(&fr.zone, 4096)) {
		msgpack_sbuffer_destroy(&fr.events);
		api_fail(r, SL_ENOMEM, "out of memory");
		return;
	}
	/* the generation is set before the first entry is visited */
	rc = rm_stream_read(t->rm, def->id, part, part_len, from, (size_t) max,
	    filter_read_one, &fr, &next, &more, &fr.generation);
	if (rc == -1)
		rc = SL_OK; /* cut at the reply's size; more is set */
	if (rc != SL_OK) {
		api_fail(r, rc, "reading the stream of filter '%s' failed: %s",
		    def->id, sl_strerror(rc));
	} else {
		mp_reply_ok(&r->pk, 4);
		mp_pack_cstr(&r->pk, "events");
		msgpack_pack_array(&r->pk, fr.count);
		msgpack_sbuffer_write(&r->out, fr.events.data, fr.events.size);
		mp_pack_kv_u64(&r->pk, "next", fr.next);
		mp_pack_kv_bool(&r->pk, "more", more);
		mp_pack_kv_u64(&r->pk, "stream_generation", fr.generation);
		api_send(r);
	}
	msgpack_zone_destroy(&fr.zone);
	msgpack_sbuffer_destroy(&fr.events);
}

/* ---- read models ---- */

/* Whether def keeps its states in the log env (runtime/emitter.h). A
 * definition whose plugin version is closed (p NULL: dropped by a reload)
 * is one if the daemon ran it as one; its states are still served. */
static bool
api_emitting(runtime *rt, const proj_def *def)
{
	if (def_is_filter(def))
		return false;
	if (def->p != NULL)
		return eproj_is_emitting(def);
	size_t n = __atomic_load_n(&rt->n_eprojs, __ATOMIC_ACQUIRE);
	for (size_t i = 0; i < n; i++)
		if (strcmp(eproj_id(rt->eprojs[i]), def->id) == 0)
			return true;
	return false;
}

/* eproj_state_fn for get_one: a copy of the one state. */
typedef struct one_state {
	char  *data;
	size_t len;
} one_state;

static int
get_one_state(void *arg, const char *key, size_t key_len, const void *state,
    size_t state_len, const void *result, size_t result_len)
{
	one_state *o = arg;
	(void) key, (void) key_len, (void) result, (void) result_len;
	free(o->data);
	o->data = malloc(state_len > 0 ? state_len : 1);
	if (o->data == NULL)
		return SL_ENOMEM;
	memcpy(o->data, state, state_len);
	o->len = state_len;
	return SL_OK;
}

static void
api_get_one(request *r)
{
	rt_tenant      *t;
	const proj_def *def;
	const char     *key;
	size_t          key_len, len = 0;
	char           *data = NULL;
	int             rc;

	if (api_tenant(r, &t) != SL_OK || api_projection(r, &def) != SL_OK
	    || api_key(r, "key", true, &key, &key_len) != SL_OK)
		return;
	if (api_emitting(r->rt, def)) {
		one_state o = { NULL, 0 };
		rc = eproj_read_states(r->rt->store, t->cfg->id, def, key,
		    key_len, get_one_state, &o);
		if (rc == SL_OK && o.data == NULL)
			rc = SL_ENOTFOUND;
		data = o.data;
		len  = o.len;
	} else {
		rc = rm_get(t->rm, def->id, key, key_len, &data, &len);
	}
	if (rc != SL_OK && rc != SL_ENOTFOUND) {
		api_fail(r, rc, "reading the read model failed");
		return;
	}
	mp_reply_ok(&r->pk, 2);
	mp_pack_kv_bool(&r->pk, "found", rc == SL_OK);
	mp_pack_cstr(&r->pk, "state");
	/* Stored states (and the initial state) are msgpack maps already. */
	if (rc == SL_OK)
		msgpack_sbuffer_write(&r->out, data, len);
	else
		msgpack_sbuffer_write(&r->out, def->initial, def->initial_len);
	free(data);
	api_send(r);
}

typedef struct scan_ctx {
	msgpack_sbuffer items;
	msgpack_packer  pk;
	uint32_t        count;
	bool            cut; /* stopped at the byte budget */
	/* an emitting projection's states: paged here */
	const char *after;
	size_t      after_len;
	uint64_t    limit;
	bool        more;
} scan_ctx;

/* One {key, state[, result]} item of get_all / query: the map header and
 * key go through pk (which writes to items), the packed state and result
 * are copied as they are. */
static void
api_pack_state_item(msgpack_packer *pk, msgpack_sbuffer *items,
    const char *key, size_t key_len, const void *state, size_t state_len,
    const void *result, size_t result_len)
{
	msgpack_pack_map(pk, result != NULL ? 3 : 2);
	mp_pack_cstr(pk, "key");
	mp_pack_strn(pk, key, key_len);
	mp_pack_cstr(pk, "state");
	msgpack_sbuffer_write(items, state, state_len);
	if (result != NULL) {
		mp_pack_cstr(pk, "result");
		msgpack_sbuffer_write(items, result, result_len);
	}
}

/* LMDB's key order: bytes, then the shorter first. */
static int
api_key_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);
	return c != 0 ? c : (alen > blen) - (alen < blen);
}

/* eproj_state_fn for get_all: keys after `after`, at most limit. */
static int
get_all_state(void *arg, const char *key, size_t key_len, const void *state,
    size_t state_len, const void *result, size_t result_len)
{
	scan_ctx *sc = arg;

	if (sc->after != NULL
	    && api_key_cmp(key, key_len, sc->after, sc->after_len) <= 0)
		return 0;
	if (sc->count >= sc->limit) {
		sc->more = true;
		return -1;
	}
	api_pack_state_item(&sc->pk, &sc->items, key, key_len, state,
	    state_len, result, result_len);
	sc->count++;
	if (sc->items.size >= API_REPLY_SOFT_BYTES) {
		sc->cut = true;
		return -1;
	}
	return 0;
}

static int
get_all_one(
    void *arg, const char *key, size_t key_len, const void *data, size_t len)
{
	scan_ctx *sc = arg;

	msgpack_pack_map(&sc->pk, 2);
	mp_pack_cstr(&sc->pk, "key");
	mp_pack_strn(&sc->pk, key, key_len);
	mp_pack_cstr(&sc->pk, "state");
	msgpack_sbuffer_write(&sc->items, data, len);
	sc->count++;
	if (sc->items.size >= API_REPLY_SOFT_BYTES) {
		sc->cut = true;
		return -1;
	}
	return 0;
}

static void
api_get_all(request *r)
{
	rt_tenant      *t;
	const proj_def *def;
	const char     *after;
	size_t          after_len;
	uint64_t        limit;
	scan_ctx        sc;
	bool            more = false;
	int             rc;

	if (api_tenant(r, &t) != SL_OK || api_projection(r, &def) != SL_OK
	    || api_key(r, "after", false, &after, &after_len) != SL_OK
	    || api_u64(r, "limit", API_GET_ALL_MAX, &limit) != SL_OK)
		return;
	if (limit == 0 || limit > API_GET_ALL_MAX)
		limit = API_GET_ALL_MAX;

	memset(&sc, 0, sizeof(sc));
	msgpack_sbuffer_init(&sc.items);
	msgpack_packer_init(&sc.pk, &sc.items, msgpack_sbuffer_write);
	if (api_emitting(r->rt, def)) {
		/* the states live in the log env, in key order */
		sc.after     = after;
		sc.after_len = after_len;
		sc.limit     = limit;
		rc = eproj_read_states(r->rt->store, t->cfg->id, def, NULL, 0,
		    get_all_state, &sc);
		more = sc.more;
	} else {
		rc = rm_scan(t->rm, def->id, after, after_len, limit,
		    get_all_one, &sc, &more);
	}
	if (rc == -1 || rc == SL_ENOTFOUND)
		rc = SL_OK; /* cut short, or the projection never stored */
	if (rc != SL_OK) {
		api_fail(r, rc, "reading the read models failed");
	} else {
		mp_reply_ok(&r->pk, 2);
		mp_pack_cstr(&r->pk, "items");
		msgpack_pack_array(&r->pk, sc.count);
		msgpack_sbuffer_write(&r->out, sc.items.data, sc.items.size);
		mp_pack_kv_bool(&r->pk, "more", more || sc.cut);
		api_send(r);
	}
	msgpack_sbuffer_destroy(&sc.items);
}

/* ---- query: one-time and transient runs (EventStoreDB's modes) ---- */

/* A one-time query runs at most limits.query_timeout_ms (ETIMEDOUT).
 * A query's reply cannot be paged: past this size it is refused. */
#define API_QUERY_MAX_BYTES API_REPLY_SOFT_BYTES

typedef struct query_ctx {
	msgpack_sbuffer states;
	msgpack_packer  pk;
	uint32_t        count;
	bool            too_big;
} query_ctx;

/* eproj_state_fn: one {key, state, result?} of the reply. */
static int
query_state(void *arg, const char *key, size_t key_len, const void *state,
    size_t state_len, const void *result, size_t result_len)
{
	query_ctx *q = arg;

	api_pack_state_item(&q->pk, &q->states, key, key_len, state,
	    state_len, result, result_len);
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
	msgpack_packer_init(&q.pk, &q.states, msgpack_sbuffer_write);
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

/*
 * query {id, tenant?, key?, mode?: "one_time" | "transient", handle?,
 * close?}: run a projection to the head now and answer its states
 * (one_time), or start / poll / close a transient run.
 */
static void
api_query(request *r)
{
	runtime              *rt = r->rt;
	const char           *id, *key;
	size_t                id_len = 0, key_len;
	const msgpack_object *mode;
	bool                  transient = false, close;
	uint64_t              handle;
	const proj_def       *def = NULL;
	rt_tenant            *t   = NULL;
	char                  err[512];
	int                   rc;

	if (api_str(r, "id", false, &id, &id_len) != SL_OK
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
	if (id == NULL && handle == 0) {
		api_fail(r, SL_EINVAL,
		    "field 'id' is missing (the projection's id or name)");
		return;
	}
	if (id != NULL && id_len == 0) {
		api_fail(r, SL_EINVAL, "field 'id' must not be empty");
		return;
	}
	if (id != NULL) {
		def = id_len <= SL_MAX_ID_LEN
		    ? runtime_find_def(rt, id, id_len)
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
			return;
		}
	}
	if (handle != 0) {
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
					return;
				}
			}
			if (runtime_transient_close(rt, handle) != SL_OK) {
				api_fail(r, SL_ENOTFOUND,
				    "unknown transient handle %" PRIu64,
				    handle);
				return;
			}
			mp_reply_ok(&r->pk, 2);
			mp_pack_kv_u64(&r->pk, "handle", handle);
			mp_pack_kv_bool(&r->pk, "closed", true);
			api_send(r);
			return;
		}
		api_query_poll(r, handle, def, key, key_len);
		return;
	}
	if (def->remote != NULL) {
		api_fail(r, SL_EINVAL,
		    "projection '%s' (%s) is a remote client's: only plugin "
		    "and system projections can be queried",
		    def->name, def->id);
		return;
	}
	if (def->p == NULL) {
		api_fail(r, SL_ENOTFOUND,
		    "projection '%s' (%s) is not loaded any more", def->name,
		    def->id);
		return;
	}
	/* the tenant: given, or the only one */
	if (api_field(&r->root, "tenant") != NULL || rt->n_tenants != 1) {
		if (api_field(&r->root, "tenant") == NULL) {
			api_fail(r, SL_EINVAL,
			    "field 'tenant' is missing (the daemon serves "
			    "%zu tenants)",
			    rt->n_tenants);
			return;
		}
		if (api_tenant(r, &t) != SL_OK)
			return;
	} else {
		t = &rt->tenants[0];
	}

	err[0] = '\0';
	if (transient) {
		if (key != NULL) {
			api_fail(r, SL_EINVAL,
			    "field 'key' goes with polling a transient run "
			    "(with its 'handle'), not with starting one");
			return;
		}
		rc = runtime_transient_open(rt, api_call_pipe(r->call), t, def,
		    &handle, err, sizeof(err));
		if (rc != SL_OK) {
			api_fail(r, rc, "%s",
			    err[0] != '\0' ? err : sl_strerror(rc));
			return;
		}
		mp_reply_ok(&r->pk, 1);
		mp_pack_kv_u64(&r->pk, "handle", handle);
		api_send(r);
		return;
	}

	query_ctx q;
	uint64_t  position = 0;
	memset(&q, 0, sizeof(q));
	msgpack_sbuffer_init(&q.states);
	msgpack_packer_init(&q.pk, &q.states, msgpack_sbuffer_write);
	rc = eproj_query(rt->store, t->cfg->id, def, key, key_len,
	    (int) rt->cfg->query_timeout_ms, query_state, &q, &position, err,
	    sizeof(err));
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
}

/* ---- status ---- */

/* Failing units listed per processor (failing_count has them all). */
#define API_STATUS_MAX_FAILING 100

/* key, then the string or nil when NULL */
static void
api_kv_cstr(msgpack_packer *pk, const char *key, const char *val)
{
	mp_pack_cstr(pk, key);
	mp_pack_cstr(pk, val);
}

/*
 * The current projections, copied once: a hot reload may change the list
 * between counting and reading it. malloc'ed (NULL when none or no memory).
 */
static const proj_def **
api_projections(runtime *rt, size_t *n)
{
	size_t           cap  = registry_projection_count(rt->plugins);
	const proj_def **defs = cap > 0 ? calloc(cap, sizeof(*defs)) : NULL;
	*n                    = 0;
	for (size_t i = 0; defs != NULL && i < cap; i++) {
		const proj_def *d = registry_projection(rt->plugins, i);
		if (d != NULL)
			defs[(*n)++] = d;
	}
	return defs;
}

/* One failing unit of a processor, as status shows it. */
static void
api_pack_failing(msgpack_packer *pk, const proc_failing *pf)
{
	msgpack_pack_map(pk, 6);
	mp_pack_cstr(pk, "partition");
	mp_pack_strn(
	    pk, pf->partition, strnlen(pf->partition, sizeof(pf->partition)));
	mp_pack_kv_u64(pk, "position", pf->position);
	mp_pack_kv_u64(pk, "attempts", pf->attempts);
	mp_pack_kv_bool(pk, "retry", pf->retry);
	mp_pack_cstr(pk, "next_try");
	if (pf->retry && pf->next_try_ns > 0)
		msgpack_pack_int64(pk, pf->next_try_ns / 1000000);
	else
		msgpack_pack_nil(pk);
	mp_pack_cstr(pk, "reason");
	mp_pack_strn(pk, pf->reason, strnlen(pf->reason, sizeof(pf->reason)));
}

/* One remote registration, as status shows it (docs/remote.md). */
static void
api_pack_remote(runtime *rt, size_t i, msgpack_packer *pk)
{
	remote_info ri;
	char        hash[17];
	if (!remotes_info(rt->remotes, i, &ri)) {
		msgpack_pack_nil(pk);
		return;
	}
	bool f = def_is_filter(ri.def);
	snprintf(hash, sizeof(hash), "%016" PRIx64, ri.def->def_hash);
	msgpack_pack_map(pk, 17 + f);
	api_kv_cstr(pk, "id", ri.def->id);
	api_kv_cstr(pk, "name", ri.def->name);
	api_kv_cstr(pk, "kind", api_kind_name(ri.def));
	if (f)
		api_kv_cstr(pk, "filter_kind",
		    api_filter_kind_name(ri.def->filter_kind));
	mp_pack_kv_u64(pk, "version", ri.def->version);
	api_kv_cstr(pk, "definition", hash);
	api_kv_cstr(pk, "url", ri.url);
	mp_pack_kv_bool(pk, "connected", ri.connected);
	api_kv_cstr(pk, "client", ri.client[0] != '\0' ? ri.client : NULL);
	mp_pack_kv_u64(pk, "in_flight", ri.in_flight);
	mp_pack_kv_u64(pk, "calls", ri.calls);
	mp_pack_kv_u64(pk, "failed_calls", ri.failed_calls);
	mp_pack_kv_u64(pk, "connects", ri.connects);
	mp_pack_kv_u64(pk, "registrations", ri.registrations);
	mp_pack_kv_i64(pk, "registered_at_ns", ri.registered_at_ns);
	mp_pack_kv_i64(pk, "changed_at_ns", ri.changed_at_ns);
	api_kv_cstr(pk, "last_error", ri.last_error);
	mp_pack_kv_u64(pk, "window", ri.window);
}

static const char *
api_mode_name(cfg_mode m)
{
	switch (m) {
	case CFG_MODE_CONTINUOUS:
		return "continuous";
	case CFG_MODE_ONE_TIME:
		return "one_time";
	case CFG_MODE_TRANSIENT:
		return "transient";
	}
	return "unknown";
}

static const char *
api_run_name(cfg_run r)
{
	switch (r) {
	case CFG_RUN_NONE:
		return "none";
	case CFG_RUN_SYSTEM:
		return "system";
	case CFG_RUN_ALL:
		return "all";
	}
	return "unknown";
}

static double
api_progress(uint64_t position, uint64_t head)
{
	if (head == 0 || position >= head)
		return 100.0;
	return 100.0 * (double) position / (double) head;
}

static void
api_kv_double(msgpack_packer *pk, const char *key, double v)
{
	mp_pack_cstr(pk, key);
	msgpack_pack_double(pk, v);
}

/*
 * A processor's state in EventStoreDB's words (status, status_reason):
 * live / catching up: running; paused: stopped; failing / failed:
 * faulted with the reason; rebuilding: running, "rebuilding"; a remote
 * client gone: waiting.
 */
static const char *
api_proc_status(const proc_status *st, char *reason, size_t len)
{
	reason[0] = '\0';
	switch (st->state) {
	case PROC_STARTING:
	case PROC_CATCHING_UP:
	case PROC_LIVE:
		if (st->n_failing > 0)
			snprintf(reason, len,
			    "%zu partition%s failing, the others go on",
			    st->n_failing, st->n_failing == 1 ? "" : "s");
		return "running";
	case PROC_REBUILDING:
		snprintf(reason, len, "rebuilding");
		return "running";
	case PROC_PAUSED:
		return "stopped";
	case PROC_STOPPED:
		snprintf(reason, len, "its definition was dropped");
		return "stopped";
	case PROC_FAILING:
		snprintf(reason, len, "%s (retrying)", st->reason);
		return "faulted";
	case PROC_FAILED:
		snprintf(reason, len, "%s", st->reason);
		return "faulted";
	case PROC_DISCONNECTED:
		snprintf(reason, len, "%s",
		    st->reason[0] != '\0'
		        ? st->reason
		        : "the remote client is disconnected");
		return "waiting";
	}
	return "running";
}

/* Whether def is emitting, safe on a closed version (p NULL). */
static bool
api_def_emitting(runtime *rt, const proj_def *d)
{
	return d != NULL && api_emitting(rt, d);
}

/* One emitting run (of the daemon, or a transient run: handle != 0). */
static void
api_pack_eproj(msgpack_packer *pk, eproj *e, uint64_t handle, uint64_t head)
{
	eproj_status st;
	memset(&st, 0, sizeof(st));
	eproj_get_status(e, &st);
	const proj_def *d = st.def;
	uint64_t        h = head > st.head ? head : st.head;
	msgpack_pack_map(pk, 21);
	api_kv_cstr(pk, "tenant", st.tenant);
	api_kv_cstr(pk, "projection", eproj_id(e));
	api_kv_cstr(pk, "name", d != NULL ? d->name : NULL);
	api_kv_cstr(pk, "mode", api_mode_name(st.mode));
	api_kv_cstr(pk, "status", st.status);
	api_kv_cstr(pk, "status_reason", st.reason);
	mp_pack_kv_u64(pk, "position", st.position);
	mp_pack_kv_u64(pk, "head", h);
	api_kv_double(pk, "progress", api_progress(st.position, h));
	mp_pack_kv_u64(pk, "events_processed", st.events_processed);
	api_kv_double(pk, "events_per_sec", st.events_per_sec);
	mp_pack_kv_u64(pk, "buffered_events", st.buffered_events);
	mp_pack_kv_u64(pk, "partitions_cached", st.partitions_cached);
	mp_pack_kv_u64(pk, "writes_in_flight", st.writes_in_flight);
	mp_pack_kv_u64(pk, "emitted", st.emitted);
	mp_pack_kv_u64(pk, "attempts", st.attempts);
	mp_pack_kv_bool(pk, "system", d != NULL && sysproj_is_system(d));
	mp_pack_kv_bool(pk, "emitting", true);
	mp_pack_kv_bool(pk, "stopped",
	    st.status != NULL && strcmp(st.status, "stopped") == 0);
	mp_pack_kv_bool(pk, "transient", handle != 0);
	mp_pack_cstr(pk, "handle");
	if (handle != 0)
		msgpack_pack_uint64(pk, handle);
	else
		msgpack_pack_nil(pk);
}

static void
api_status(request *r)
{
	runtime         *rt        = r->rt;
	msgpack_packer  *pk        = &r->pk;
	size_t           n_plugins = registry_plugin_count(rt->plugins);
	size_t           n_proj;
	const proj_def **defs = api_projections(rt, &n_proj);
	/* processors only ever get appended (hot reload) */
	size_t  n_procs = __atomic_load_n(&rt->n_procs, __ATOMIC_ACQUIRE);
	int64_t up      = ev_now_ns() - rt->started_ns;
	proc_failing *failing
	    = malloc(API_STATUS_MAX_FAILING * sizeof(*failing));

	if (failing == NULL) {
		free(defs);
		api_fail(r, SL_ENOMEM, "out of memory");
		return;
	}
	uint64_t head = store_next_position(rt->store);
	mp_reply_ok(pk, 10);
	mp_pack_kv_u64(pk, "head", head);
	api_kv_cstr(
	    pk, "run_projections", api_run_name(rt->cfg->run_projections));
	mp_pack_kv_u64(pk, "uptime_ms", up > 0 ? (uint64_t) up / 1000000 : 0);
	/* Where subscribers dial the live feed (docs/protocol.md). */
	api_kv_cstr(pk, "pub", rt->cfg->pub_url);

	mp_pack_cstr(pk, "tenants");
	msgpack_pack_array(pk, rt->n_tenants);
	for (size_t i = 0; i < rt->n_tenants; i++)
		mp_pack_cstr(pk, rt->tenants[i].cfg->id);

	mp_pack_cstr(pk, "plugins");
	msgpack_pack_array(pk, n_plugins);
	for (size_t i = 0; i < n_plugins; i++) {
		plugin_info pi;
		memset(&pi, 0, sizeof(pi));
		registry_plugin_info(rt->plugins, i, &pi);
		msgpack_pack_map(pk, 6);
		api_kv_cstr(pk, "file", pi.file);
		api_kv_cstr(pk, "name", pi.name);
		api_kv_cstr(pk, "version", pi.version);
		mp_pack_kv_bool(pk, "loaded", pi.loaded);
		api_kv_cstr(pk, "error", pi.error);
		mp_pack_kv_u64(pk, "projections", pi.n_projections);
	}

	/* Registrations are only ever added: count once, show that many. */
	size_t n_remote = remotes_count(rt->remotes);
	size_t n_sys    = sysproj_count();
	mp_pack_cstr(pk, "projections");
	msgpack_pack_array(pk, n_sys + n_proj + n_remote);
	for (size_t i = 0; i < n_sys + n_proj + n_remote; i++) {
		remote_info ri;
		size_t      k = i - n_sys;
		if (i >= n_sys + n_proj)
			remotes_info(rt->remotes, k - n_proj, &ri);
		const proj_def *d = i < n_sys ? sysproj_def(i)
		    : k < n_proj              ? defs[k]
		                              : ri.def;
		bool            f = def_is_filter(d);
		cfg_mode        m = CFG_MODE_CONTINUOUS;
		config_projection(rt->cfg, d->id, d->name, &m);
		msgpack_pack_map(pk, 8 + f);
		api_kv_cstr(pk, "id", d->id);
		api_kv_cstr(pk, "name", d->name);
		api_kv_cstr(pk, "scope", d->scope);
		api_kv_cstr(pk, "kind", api_kind_name(d));
		if (f)
			api_kv_cstr(pk, "filter_kind",
			    api_filter_kind_name(d->filter_kind));
		mp_pack_kv_bool(pk, "remote", d->remote != NULL);
		api_kv_cstr(pk, "mode", api_mode_name(m));
		mp_pack_kv_bool(pk, "system", sysproj_is_system(d));
		mp_pack_kv_bool(pk, "emitting", api_def_emitting(rt, d));
	}

	free(defs);

	mp_pack_cstr(pk, "remotes");
	msgpack_pack_array(pk, n_remote);
	for (size_t i = 0; i < n_remote; i++)
		api_pack_remote(rt, i, pk);

	mp_pack_cstr(pk, "processors");
	msgpack_pack_array(pk, n_procs);
	for (size_t i = 0; i < n_procs; i++) {
		proc_status st;
		size_t      n_failing, n_shown;
		bool        f;
		memset(&st, 0, sizeof(st));
		proc_get_status(rt->procs[i], &st);
		/* The array and its count from one snapshot. */
		n_failing = proc_get_failing(
		    rt->procs[i], failing, API_STATUS_MAX_FAILING);
		n_shown = n_failing < API_STATUS_MAX_FAILING
		    ? n_failing
		    : API_STATUS_MAX_FAILING;
		f       = st.def != NULL && def_is_filter(st.def);
		char        why[300];
		const char *status = api_proc_status(&st, why, sizeof(why));
		cfg_mode    m      = CFG_MODE_CONTINUOUS;
		if (st.def != NULL)
			config_projection(
			    rt->cfg, st.def->id, st.def->name, &m);
		msgpack_pack_map(pk, 28 + f);
		api_kv_cstr(pk, "tenant", st.tenant);
		api_kv_cstr(pk, "projection", st.def ? st.def->id : NULL);
		api_kv_cstr(pk, "name", st.def ? st.def->name : NULL);
		api_kv_cstr(pk, "kind", st.def ? api_kind_name(st.def) : NULL);
		if (f)
			api_kv_cstr(pk, "filter_kind",
			    api_filter_kind_name(st.def->filter_kind));
		api_kv_cstr(pk, "state", proc_state_name(st.state));
		mp_pack_kv_u64(pk, "position", st.position);
		mp_pack_kv_u64(pk, "events_handled", st.events_handled);
		mp_pack_kv_u64(pk, "attempts", st.attempts);
		api_kv_cstr(pk, "reason", st.reason);
		mp_pack_kv_i64(pk, "next_retry_ns",
		    st.state == PROC_FAILING ? st.next_retry_ns : 0);
		mp_pack_kv_bool(pk, "rebuilding", st.rebuilding);
		mp_pack_kv_u64(pk, "served_position", st.served_position);
		mp_pack_kv_u64(pk, "generation", st.generation);
		mp_pack_kv_bool(pk, "paused", st.paused);
		mp_pack_kv_bool(
		    pk, "remote", st.def != NULL && st.def->remote != NULL);
		mp_pack_kv_u64(pk, "failing_count", n_failing);
		mp_pack_cstr(pk, "failing");
		msgpack_pack_array(pk, n_shown);
		for (size_t k = 0; k < n_shown; k++)
			api_pack_failing(pk, &failing[k]);
		/* EventStoreDB's status words (issue 8) */
		api_kv_cstr(pk, "mode", api_mode_name(m));
		api_kv_cstr(pk, "status", status);
		api_kv_cstr(pk, "status_reason", why);
		api_kv_double(pk, "progress", api_progress(st.position, head));
		mp_pack_kv_u64(pk, "events_processed", st.events_handled);
		api_kv_double(pk, "events_per_sec", st.events_per_sec);
		mp_pack_kv_u64(pk, "buffered_events", 0);
		mp_pack_kv_u64(pk, "partitions_cached", 0);
		mp_pack_kv_u64(pk, "writes_in_flight", 0);
		mp_pack_kv_bool(pk, "system", false);
		mp_pack_kv_bool(pk, "emitting", false);
	}
	free(failing);

	/* Emitting runs (only ever appended), then transient runs: the
	 * handles first, each run held while it is looked at. */
	size_t   n_eprojs = __atomic_load_n(&rt->n_eprojs, __ATOMIC_ACQUIRE);
	uint64_t handles[RT_MAX_TRANSIENT];
	size_t   n_tr = 0;
	pthread_mutex_lock(&rt->transient_mu);
	for (size_t i = 0; i < RT_MAX_TRANSIENT; i++)
		if (rt->transients[i].handle != 0
		    && !rt->transients[i].closing)
			handles[n_tr++] = rt->transients[i].handle;
	pthread_mutex_unlock(&rt->transient_mu);
	eproj *truns[RT_MAX_TRANSIENT];
	size_t n_held = 0;
	for (size_t i = 0; i < n_tr; i++) {
		truns[n_held] = runtime_transient_get(rt, handles[i]);
		if (truns[n_held] != NULL)
			handles[n_held++] = handles[i];
	}
	mp_pack_cstr(pk, "emitting_projections");
	msgpack_pack_array(pk, n_eprojs + n_held);
	for (size_t i = 0; i < n_eprojs; i++)
		api_pack_eproj(pk, rt->eprojs[i], 0, head);
	for (size_t i = 0; i < n_held; i++) {
		api_pack_eproj(pk, truns[i], handles[i], head);
		runtime_transient_put(rt, handles[i]);
	}
	api_send(r);
}

/* ---- operator commands ---- */

/* How long a command waits for the processors to take it, in all. */
#define API_COMMAND_TIMEOUT_MS 5000

static int64_t
api_now_ms(void)
{
	return ev_now_ns() / 1000000;
}

/*
 * reset / retry / pause / resume {id, tenant?}: run the command on the
 * processors of one projection or filter, of one tenant or of all.
 */
static void
api_command(request *r, proc_cmd cmd, const char *op)
{
	runtime        *rt = r->rt;
	const char     *id, *tenant;
	size_t          id_len, tenant_len;
	rt_tenant      *t = NULL;
	const proj_def *def;
	processor     **hits;
	eproj         **ehits;
	size_t          n_procs, n_eprojs, n = 0, ne = 0, n_timeout = 0;
	int64_t         deadline;
	int             rc = SL_OK;

	if (api_id(r, "id", &id, &id_len) != SL_OK
	    || api_str(r, "tenant", false, &tenant, &tenant_len) != SL_OK)
		return;
	if (tenant != NULL && api_tenant(r, &t) != SL_OK)
		return;
	def = runtime_find_def(rt, id, id_len);
	if (def == NULL) {
		api_fail(r, SL_ENOTFOUND,
		    "unknown projection or filter '%.*s'", (int) id_len, id);
		return;
	}
	/* processors and emitting runs only ever get appended */
	n_procs  = __atomic_load_n(&rt->n_procs, __ATOMIC_ACQUIRE);
	n_eprojs = __atomic_load_n(&rt->n_eprojs, __ATOMIC_ACQUIRE);
	hits     = calloc(n_procs + 1, sizeof(*hits));
	ehits    = calloc(n_eprojs + 1, sizeof(*ehits));
	if (hits == NULL || ehits == NULL) {
		free(hits);
		free(ehits);
		api_fail(r, SL_ENOMEM, "out of memory");
		return;
	}
	for (size_t i = 0; i < n_procs; i++) {
		processor *p = rt->procs[i];
		if (strcmp(proc_projection_id(p), def->id) == 0
		    && (t == NULL || strcmp(proc_tenant(p), t->cfg->id) == 0))
			hits[n++] = p;
	}
	for (size_t i = 0; i < n_eprojs; i++) {
		eproj *e = rt->eprojs[i];
		if (strcmp(eproj_id(e), def->id) == 0
		    && (t == NULL || strcmp(eproj_tenant(e), t->cfg->id) == 0))
			ehits[ne++] = e;
	}
	if (n + ne == 0) {
		const char *why = rt->cfg->run_projections == CFG_RUN_NONE
		    ? " (run_projections is none)"
		    : rt->cfg->run_projections == CFG_RUN_SYSTEM
		        && !sysproj_is_system(def)
		    ? " (run_projections is system)"
		    : "";
		if (t != NULL)
			api_fail(r, SL_ENOTFOUND,
			    "%s '%s' (%s) does not run for tenant '%s'%s",
			    api_kind_name(def), def->name, def->id, t->cfg->id,
			    why);
		else
			api_fail(r, SL_ENOTFOUND,
			    "%s '%s' (%s) does not run%s", api_kind_name(def),
			    def->name, def->id, why);
		free(hits);
		free(ehits);
		return;
	}
	/* One budget for all, so many tenants cannot hold the reply for
	 * n times the timeout; a command not taken in time still will be. */
	deadline = api_now_ms() + API_COMMAND_TIMEOUT_MS;
	for (size_t i = 0; i < n + ne; i++) {
		int64_t left = deadline - api_now_ms();
		int     ms   = left > 0 ? (int) left : 1;
		int     prc  = i < n ? proc_command(hits[i], cmd, ms)
		                     : eproj_command(ehits[i - n], cmd, ms);
		if (prc == SL_ETIMEDOUT)
			n_timeout++;
		else if (prc != SL_OK && rc == SL_OK)
			rc = prc;
	}
	free(hits);
	free(ehits);
	if (rc != SL_OK)
		api_fail(r, rc, "op '%s' on %s '%s' failed: %s", op,
		    api_kind_name(def), def->id, sl_strerror(rc));
	else if (n_timeout > 0)
		api_fail(r, SL_ETIMEDOUT,
		    "op '%s' on %s '%s': %zu of %zu processors did not take "
		    "it within %d ms (they will when they get to it)",
		    op, api_kind_name(def), def->id, n_timeout, n + ne,
		    API_COMMAND_TIMEOUT_MS);
	else {
		mp_reply_ok(&r->pk, 1);
		mp_pack_kv_u64(&r->pk, "processors", n + ne);
		api_send(r);
	}
}

/* ---- plugins ---- */

/* Every plugin file with its running version, load history, error and
 * the projections it registered. */
static void
api_plugins(request *r)
{
	runtime         *rt = r->rt;
	msgpack_packer  *pk = &r->pk;
	size_t           n_proj, n = 0;
	size_t           cap   = registry_plugin_count(rt->plugins);
	plugin_info     *infos = calloc(cap + 1, sizeof(*infos));
	const proj_def **defs  = api_projections(rt, &n_proj);
	if (infos == NULL || (n_proj > 0 && defs == NULL)) {
		free(infos);
		free(defs);
		api_fail(r, SL_ENOMEM, "out of memory");
		return;
	}
	for (size_t i = 0; i < cap; i++) {
		registry_plugin_info(rt->plugins, i, &infos[n]);
		if (infos[n].file != NULL) /* not unloaded meanwhile */
			n++;
	}
	mp_reply_ok(pk, 1);
	mp_pack_cstr(pk, "plugins");
	msgpack_pack_array(pk, n);
	for (size_t i = 0; i < n; i++) {
		const plugin_info *pi = &infos[i];
		size_t             np = 0;
		for (size_t k = 0; k < n_proj; k++)
			np += defs[k]->owner == pi->owner;
		msgpack_pack_map(pk, 10);
		api_kv_cstr(pk, "file", pi->file);
		api_kv_cstr(pk, "name", pi->name);
		api_kv_cstr(pk, "version", pi->version);
		mp_pack_kv_bool(pk, "loaded", pi->loaded);
		mp_pack_kv_i64(pk, "loaded_at_ns", pi->loaded_at_ns);
		mp_pack_kv_u64(pk, "loads", pi->loads);
		mp_pack_kv_u64(pk, "versions_open", pi->versions_open);
		api_kv_cstr(pk, "error", pi->error);
		mp_pack_kv_i64(pk, "error_at_ns", pi->error_at_ns);
		mp_pack_cstr(pk, "projections");
		msgpack_pack_array(pk, np);
		for (size_t k = 0; k < n_proj; k++) {
			const proj_def *d = defs[k];
			char            hash[17];
			if (d->owner != pi->owner)
				continue;
			snprintf(
			    hash, sizeof(hash), "%016" PRIx64, d->def_hash);
			msgpack_pack_map(pk, 5 + def_is_filter(d));
			api_kv_cstr(pk, "id", d->id);
			api_kv_cstr(pk, "name", d->name);
			mp_pack_kv_u64(pk, "version", d->version);
			api_kv_cstr(pk, "definition", hash);
			api_kv_cstr(pk, "kind", api_kind_name(d));
			if (def_is_filter(d))
				api_kv_cstr(pk, "filter_kind",
				    api_filter_kind_name(d->filter_kind));
		}
	}
	free(infos);
	free(defs);
	api_send(r);
}

/* ---- remote registrations (docs/remote.md) ---- */

static const char *
api_reg_kind_name(remote_reg_kind k)
{
	switch (k) {
	case REMOTE_REG_NEW:
		return "new";
	case REMOTE_REG_SAME:
		return "same";
	case REMOTE_REG_CHANGED:
		return "changed";
	}
	return "unknown";
}

/*
 * register {protocol, kind, id, scope?, name, version?, initial_state?,
 * selectors | filter_kind}: a client's projection or filter; the reply
 * says where the client dials to be called back.
 */
static void
api_register(request *r)
{
	remote_spec      *spec;
	remote_reg_result res;
	char              err[512], hash[17];
	int rc = remote_spec_parse(&r->root, &spec, err, sizeof(err));

	if (rc != SL_OK) {
		api_fail(r, rc, "%s", err[0] != '\0' ? err : sl_strerror(rc));
		return;
	}
	rc = runtime_register(r->rt, spec, &res, err, sizeof(err));
	remote_spec_free(spec);
	if (rc != SL_OK) {
		api_fail(r, rc, "%s", err[0] != '\0' ? err : sl_strerror(rc));
		return;
	}
	snprintf(hash, sizeof(hash), "%016" PRIx64, res.def->def_hash);
	mp_reply_ok(&r->pk, 8);
	api_kv_cstr(&r->pk, "url", res.url);
	mp_pack_kv_u64(&r->pk, "session", res.session);
	mp_pack_kv_u64(&r->pk, "window", res.window);
	mp_pack_kv_u64(&r->pk, "keepalive_ms", res.keepalive_ms);
	mp_pack_kv_u64(&r->pk, "timeout_ms", res.timeout_ms);
	mp_pack_kv_u64(&r->pk, "protocol", 1);
	api_kv_cstr(&r->pk, "registration", api_reg_kind_name(res.kind));
	api_kv_cstr(&r->pk, "definition", hash);
	api_send(r);
}

/* ---- dispatch ---- */

void
api_handle(runtime *rt, api_call *call, const void *data, size_t len)
{
	request               r;
	char                  err[160];
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
	if ((rc = api_check_msgpack(data, len, err, sizeof(err))) != SL_OK) {
		api_fail(&r, rc, "%s", err);
		goto out;
	}
	r.zone = msgpack_zone_new(MSGPACK_ZONE_CHUNK_SIZE);
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
	if (mp_str_eq(op, "commit"))
		api_commit(&r);
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
out:
	/* Every path above replied exactly once (a commit replies later,
	 * from the store's writer, and took the zone). */
	if (r.zone != NULL)
		msgpack_zone_free(r.zone);
	msgpack_sbuffer_destroy(&r.out);
}
