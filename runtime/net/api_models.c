/*
 * The wire protocol's read model ops (docs/protocol.md): read_filter over
 * a filter's partitioned streams, and get_one / get_all over a
 * projection's states. Requests are decoded and dispatched in api.c.
 */
#include "api_internal.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/client.h>
#include <sluice/errors.h>

#include "emitter.h"
#include "event.h"
#include "log.h"
#include "mp.h"

/* get_all's page when the request names no limit; the largest is
 * SL_GET_ALL_MAX_LIMIT (client.h). */
#define API_GET_ALL_DEFAULT 1000

/* ---- filter streams ---- */

/* The longest partition id (readmodels.h). */
#define API_MAX_PARTITION_LEN 255

const char *
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
const char *
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
	store_reader   *log; /* opened at the first entry, inside the stream's
	                        read: it sees every position the stream names */
	uint32_t        count;
	uint64_t        next; /* stream position after the last event */
	/* the entry being fetched */
	uint64_t    stream_pos;
	uint64_t    generation; /* of the stream read */
	const char *partition;
	size_t      plen;
} filter_read_ctx;

/* The event at position (data, len), packed with its extras. */
static int
filter_pack_one(
    filter_read_ctx *fr, uint64_t position, const void *data, size_t len)
{
	ev_view  ev;
	ev_head  h;
	uint32_t extra = fr->partitioned ? 3 : 2;
	size_t   tl    = strlen(fr->tenant);

	/* A tenant's stream only indexes its own events; never show
	 * another tenant's, whatever the index says. The wire map comes
	 * straight from the stored bytes, decoded only when
	 * ev_pack_wire_raw does not take them. */
	bool raw = ev_peek(data, len, &h) == SL_OK;
	if (raw
	    && (h.tenant_len != tl || memcmp(h.tenant, fr->tenant, tl) != 0)) {
		log_error("api",
		    "tenant %s: a filter stream names position %" PRIu64
		    " of tenant %.*s",
		    fr->tenant, position, (int) h.tenant_len, h.tenant);
		return SL_EINTERNAL;
	}
	if (!raw
	    || ev_pack_wire_raw(&fr->pk, data, len, position, extra)
	        != SL_OK) {
		msgpack_zone_clear(&fr->zone);
		if (ev_decode(data, len, position, &fr->zone, &ev) != SL_OK) {
			log_error("api",
			    "event at position %" PRIu64 " cannot be decoded",
			    position);
			return SL_ESTORAGE;
		}
		if (strcmp(ev.tenant, fr->tenant) != 0) {
			log_error("api",
			    "tenant %s: a filter stream names position %" PRIu64
			    " of tenant %s",
			    fr->tenant, position, ev.tenant);
			return SL_EINTERNAL;
		}
		ev_pack_wire_extra(&fr->pk, &ev, extra);
	}
	mp_pack_kv_u64(&fr->pk, "stream_position", fr->stream_pos);
	mp_pack_kv_u64(&fr->pk, "stream_generation", fr->generation);
	if (fr->partitioned) {
		mp_pack_cstr(&fr->pk, "partition");
		mp_pack_strn(&fr->pk, fr->partition, fr->plen);
	}
	return SL_OK;
}

/* rm_stream_read callback: fetch one indexed event from the log. */
static int
filter_read_one(void *arg, uint64_t stream_pos, uint64_t log_pos,
    uint64_t other_pos, const char *partition, size_t plen)
{
	(void) other_pos;
	filter_read_ctx *fr = arg;
	int              rc;

	const void *data;
	size_t      len;

	fr->stream_pos = stream_pos;
	fr->partition  = partition;
	fr->plen       = plen;
	if (fr->log == NULL
	    && (rc = store_reader_open(fr->rt->store, &fr->log)) != SL_OK)
		return rc;
	rc = store_reader_get(fr->log, log_pos, &data, &len);
	if (rc == SL_ENOTFOUND) {
		log_error("api",
		    "tenant %s: a filter stream names log position %" PRIu64
		    ", which the log does not hold",
		    fr->tenant, log_pos);
		rc = SL_EINTERNAL;
	}
	if (rc == SL_OK)
		rc = filter_pack_one(fr, log_pos, data, len);
	if (rc != SL_OK)
		return rc;
	fr->count++;
	fr->next = stream_pos + 1;
	/* -1 stops the read; the client pages on from next. */
	return fr->events.size >= API_REPLY_SOFT_BYTES ? -1 : 0;
}

void
api_read_filter(request *r)
{
	const sl_config *cfg = r->rt->cfg;
	rt_tenant       *t;
	const proj_def  *def;
	const char      *fid, *part;
	size_t           fid_len, part_len;
	uint64_t         from, max, next = 0;
	bool             more = false, gap;
	filter_read_ctx  fr;
	int              rc;

	if (api_tenant(r, &t) != SL_OK
	    || api_bool(r, "gap", false, &gap) != SL_OK
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
	/* the served generation's shape: the definition's kind may be one
	 * a rebuild has not served yet */
	sl_filter_kind kind = def->filter_kind;
	uint64_t       served;
	if ((rc = rm_served_kind(t->rm, def->id, &served)) == SL_OK)
		kind = (sl_filter_kind) served;
	else if (rc != SL_ENOTFOUND) {
		api_fail(r, rc, "reading the stream of filter '%s' failed: %s",
		    def->id, sl_strerror(rc));
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
		if (kind == SL_FILTER_UNPARTITIONED) {
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
	fr.partitioned = kind != SL_FILTER_UNPARTITIONED;
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
		if (gap && fr.count > 0)
			pub_note_gap(r->rt->pub, fr.count);
		mp_reply_ok(&r->pk, 4);
		mp_pack_cstr(&r->pk, "events");
		msgpack_pack_array(&r->pk, fr.count);
		msgpack_sbuffer_write(&r->out, fr.events.data, fr.events.size);
		mp_pack_kv_u64(&r->pk, "next", fr.next);
		mp_pack_kv_bool(&r->pk, "more", more);
		mp_pack_kv_u64(&r->pk, "stream_generation", fr.generation);
		api_send(r);
	}
	store_reader_close(fr.log);
	msgpack_zone_destroy(&fr.zone);
	msgpack_sbuffer_destroy(&fr.events);
}

/* ---- read models ---- */

/* Whether def keeps its states in the log env (runtime/processing/emitter.h). A
 * definition whose plugin version is closed (not live: dropped by a
 * reload) is one if the daemon ran it as one; its states are still
 * served. Its vtable (plugin memory) is read only while it is held. */
bool
api_emitting(runtime *rt, const proj_def *def, bool live)
{
	if (def_is_filter(def))
		return false;
	if (live && def->p != NULL)
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

void
api_get_one(request *r)
{
	rt_tenant      *t;
	const proj_def *def;
	const char     *key;
	size_t          key_len, len = 0;
	char           *data = NULL;
	bool            live;
	int             rc;

	if (api_tenant(r, &t) != SL_OK
	    || api_key(r, "key", true, &key, &key_len) != SL_OK
	    || api_projection(r, &def, &live) != SL_OK)
		return;
	/* "$shared": a bi-state projection's shared state (its initial one
	 * when none is stored yet) */
	bool shared = def->shared_initial != NULL
	    && key_len == strlen(PROC_SHARED_KEY)
	    && memcmp(key, PROC_SHARED_KEY, key_len) == 0;
	if (shared && api_emitting(r->rt, def, live)) {
		rc = eproj_read_shared(
		    r->rt->store, t->cfg->id, def, &data, &len);
	} else if (shared) {
		rc = proc_shared_read_rm(t->rm, def->id, &data, &len);
	} else if (api_emitting(r->rt, def, live)) {
		/* get_one answers the state only: no result transform runs */
		one_state o = { NULL, 0 };
		rc = eproj_read_states(r->rt->store, t->cfg->id, def, NULL,
		    key, key_len, get_one_state, &o);
		if (rc == SL_OK && o.data == NULL)
			rc = SL_ENOTFOUND;
		data = o.data;
		len  = o.len;
	} else {
		rc = rm_get(t->rm, def->id, key, key_len, &data, &len);
	}
	if (rc != SL_OK && rc != SL_ENOTFOUND) {
		api_fail(r, rc, "reading the read model failed");
	} else {
		mp_reply_ok(&r->pk, 2);
		mp_pack_kv_bool(&r->pk, "found", rc == SL_OK);
		mp_pack_cstr(&r->pk, "state");
		/* Stored states (and the initial state) are msgpack maps. */
		if (rc == SL_OK)
			msgpack_sbuffer_write(&r->out, data, len);
		else if (shared)
			msgpack_sbuffer_write(&r->out, def->shared_initial,
			    def->shared_initial_len);
		else
			msgpack_sbuffer_write(
			    &r->out, def->initial, def->initial_len);
		api_send(r);
	}
	free(data);
	if (live)
		proj_def_release(def);
}

/* Items are gathered here and appended to the reply in runs of this
 * size: a call into NNG per run, not two per item. */
#define API_STAGE_BYTES 16384

typedef struct scan_ctx {
	nng_msg *msg;   /* the reply, the items appended to it */
	size_t   staged; /* bytes in stage, not yet in msg */
	bool     fail;   /* an append failed */
	char     stage[API_STAGE_BYTES];
	size_t   base;  /* where the items start in msg */
	uint32_t count; /* items appended */
	bool     cut;   /* stopped at the byte budget */
	bool     oom;   /* the reply could not grow */
	uint64_t limit;
	bool     as_bin; /* states (and results) as bin: state_bytes */
	/* an emitting projection's states: paged here */
	const char *after;
	size_t      after_len;
	bool        more;
} scan_ctx;

/* A bin header for n bytes at p; its length. */
static size_t
bin_header(unsigned char *p, size_t n)
{
	if (n <= UINT8_MAX) {
		p[0] = 0xc4;
		p[1] = (unsigned char) n;
		return 2;
	}
	if (n <= UINT16_MAX) {
		p[0] = 0xc5;
		p[1] = (unsigned char) (n >> 8);
		p[2] = (unsigned char) n;
		return 3;
	}
	p[0] = 0xc6;
	for (int i = 0; i < 4; i++)
		p[1 + i] = (unsigned char) (n >> (24 - 8 * i));
	return 5;
}

/* One {key, state[, result]} item of get_all / query: the map header, key
 * and "state" are written as one run of bytes, the packed state and
 * result are copied as they are (as_bin: each inside a bin, so that a
 * reader finds its end without walking it). write is msgpack-c's kind of
 * writer; -1 if one of its writes failed. */
int
api_pack_state_item(msgpack_packer_write write, void *dst, bool as_bin,
    const char *key, size_t key_len, const void *state, size_t state_len,
    const void *result, size_t result_len)
{
	unsigned char h[112], *p = h;
	int           rc = 0;

	*p++ = result != NULL ? 0x83 : 0x82;
	memcpy(p, "\xa3key", 4);
	p += 4;
	if (key_len < 32) {
		*p++ = (unsigned char) (0xa0 | key_len);
	} else if (key_len <= UINT8_MAX) {
		*p++ = 0xd9;
		*p++ = (unsigned char) key_len;
	} else if (key_len <= UINT16_MAX) {
		*p++ = 0xda;
		*p++ = (unsigned char) (key_len >> 8);
		*p++ = (unsigned char) key_len;
	} else {
		*p++ = 0xdb;
		for (int sh = 24; sh >= 0; sh -= 8)
			*p++ = (unsigned char) (key_len >> sh);
	}
	/* room left for "state" and a bin header */
	if (key_len <= sizeof(h) - 11 - (size_t) (p - h)) {
		memcpy(p, key, key_len);
		p += key_len;
	} else {
		rc |= write(dst, (const char *) h, (size_t) (p - h));
		rc |= write(dst, key, key_len);
		p = h;
	}
	memcpy(p, "\xa5state", 6);
	p += 6;
	if (as_bin)
		p += bin_header(p, state_len);
	rc |= write(dst, (const char *) h, (size_t) (p - h));
	rc |= write(dst, state, state_len);
	if (result != NULL) {
		memcpy(h, "\xa6result", 7);
		p = h + 7;
		if (as_bin)
			p += bin_header(p, result_len);
		rc |= write(dst, (const char *) h, (size_t) (p - h));
		rc |= write(dst, result, result_len);
	}
	return rc != 0 ? -1 : 0;
}

/* LMDB's key order: bytes, then the shorter first. */
static int
api_key_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);
	return c != 0 ? c : (alen > blen) - (alen < blen);
}

/* Append n bytes to the reply, its room doubled when it runs out
 * (nng_msg_append alone would grow it by what each append needs). */
static int
msg_append(nng_msg *m, const void *buf, size_t n)
{
	size_t need = nng_msg_len(m) + n, cap = nng_msg_capacity(m);
	if (need > cap && nng_msg_reserve(m, need > 2 * cap ? need : 2 * cap))
		return -1;
	return nng_msg_append(m, buf, n) == 0 ? 0 : -1;
}

/* The staged bytes into the reply. */
static int
stage_flush(scan_ctx *sc)
{
	int rc = sc->staged > 0 ? msg_append(sc->msg, sc->stage, sc->staged)
	                        : 0;
	sc->staged = 0;
	if (rc != 0)
		sc->fail = true;
	return rc;
}

/* msgpack_packer_write into the stage (scan_ctx), a run too big for it
 * straight into the reply. */
static int
stage_write(void *data, const char *buf, size_t len)
{
	scan_ctx *sc = data;
	if (len > sizeof(sc->stage) - sc->staged && stage_flush(sc) != 0)
		return -1;
	if (len > sizeof(sc->stage)) {
		if (msg_append(sc->msg, buf, len) != 0) {
			sc->fail = true;
			return -1;
		}
		return 0;
	}
	memcpy(sc->stage + sc->staged, buf, len);
	sc->staged += len;
	return 0;
}

/*
 * Whether the item just packed ends the page at the byte budget. After the
 * first item the reply is sized once for the whole page, by that item's
 * size (states of one projection are alike): one allocation, no copy on
 * growth, for the common page.
 */
static bool
scan_item_done(scan_ctx *sc, int packed)
{
	size_t used = nng_msg_len(sc->msg) + sc->staged - sc->base;

	if (packed != 0) { /* no room */
		sc->oom = true;
		return true;
	}
	if (++sc->count == 1) {
		uint64_t want = (uint64_t) used * sc->limit;
		want += want / 16 + 64;
		if (want > API_REPLY_SOFT_BYTES)
			want = API_REPLY_SOFT_BYTES;
		if (nng_msg_reserve(sc->msg, sc->base + (size_t) want) != 0) {
			sc->oom = true;
			return true;
		}
	}
	if (used >= API_REPLY_SOFT_BYTES) {
		sc->cut = true;
		return true;
	}
	return false;
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
	return scan_item_done(sc,
	           api_pack_state_item(stage_write, sc, sc->as_bin, key,
	               key_len, state, state_len, result, result_len))
	    ? -1
	    : 0;
}

/* rm_scan_fn for get_all: the stored state's bytes go into the reply as
 * they are. */
static int
get_all_one(
    void *arg, const char *key, size_t key_len, const void *data, size_t len)
{
	scan_ctx *sc = arg;

	return scan_item_done(sc,
	           api_pack_state_item(stage_write, sc, sc->as_bin, key,
	               key_len, data, len, NULL, 0))
	    ? -1
	    : 0;
}

void
api_get_all(request *r)
{
	rt_tenant      *t;
	const proj_def *def;
	const char     *after;
	size_t          after_len;
	uint64_t        limit;
	scan_ctx        sc; /* 16 KiB with its stage: a worker's stack */
	bool            more = false, live, as_bin;
	int             rc;

	if (api_tenant(r, &t) != SL_OK
	    || api_key(r, "after", false, &after, &after_len) != SL_OK
	    || api_u64(r, "limit", API_GET_ALL_DEFAULT, &limit) != SL_OK
	    || api_bool(r, "state_bytes", false, &as_bin) != SL_OK
	    || api_projection(r, &def, &live) != SL_OK)
		return;
	if (limit == 0)
		limit = API_GET_ALL_DEFAULT;
	if (limit > SL_GET_ALL_MAX_LIMIT)
		limit = SL_GET_ALL_MAX_LIMIT;

	/* The reply is built as the message that is sent: its head (the
	 * items array with a 32-bit count written when the scan ends), then
	 * the items from the store in runs of the stage's size. */
	memset(&sc, 0, sizeof(sc));
	sc.limit  = limit;
	sc.as_bin = as_bin;
	if (nng_msg_alloc(&sc.msg, 0) != 0) {
		api_fail(r, SL_ENOMEM, "out of memory");
		goto out;
	}
	mp_reply_ok(&r->pk, 2);
	mp_pack_cstr(&r->pk, "items");
	sc.base = r->out.size + 5; /* after the array32 header */
	if (nng_msg_append(sc.msg, r->out.data, r->out.size) != 0
	    || nng_msg_append(sc.msg, "\xdd\0\0\0\0", 5) != 0) {
		api_fail(r, SL_ENOMEM, "out of memory");
		goto out;
	}
	msgpack_sbuffer_clear(&r->out);
	if (api_emitting(r->rt, def, live)) {
		/* the states live in the log env, in key order; the result
		 * transform is the plugin's code: only while def is held */
		sc.after     = after;
		sc.after_len = after_len;
		rc           = eproj_read_states(r->rt->store, t->cfg->id, def,
                    live ? proj_def_result(def) : NULL, NULL, 0, get_all_state,
		              &sc);
		more = sc.more;
	} else {
		rc = rm_scan(t->rm, def->id, after, after_len, limit,
		    get_all_one, &sc, &more);
	}
	if (rc == -1 || rc == SL_ENOTFOUND)
		rc = SL_OK; /* cut short, or the projection never stored */
	if (rc == SL_OK && (sc.oom || stage_flush(&sc) != 0 || sc.fail))
		rc = SL_ENOMEM;
	if (rc != SL_OK) {
		api_fail(r, rc, "reading the read models failed");
		goto out;
	}
	unsigned char *n = (unsigned char *) nng_msg_body(sc.msg) + sc.base - 4;
	n[0]             = (unsigned char) (sc.count >> 24);
	n[1]             = (unsigned char) (sc.count >> 16);
	n[2]             = (unsigned char) (sc.count >> 8);
	n[3]             = (unsigned char) sc.count;
	mp_pack_kv_bool(&r->pk, "more", more || sc.cut);
	if (nng_msg_append(sc.msg, r->out.data, r->out.size) != 0) {
		api_fail(r, SL_ENOMEM, "out of memory");
		goto out;
	}
	api_reply_msg(r->call, sc.msg);
	sc.msg = NULL;
out:
	if (sc.msg != NULL)
		nng_msg_free(sc.msg);
	if (live)
		proj_def_release(def);
}
