/*
 * The spec runner behind `sluice spec FILE`: it commits a spec's input
 * events to a temporary log (store_open in a mkdtemp directory), loads the
 * projection through the registry (a .js through the JS host), runs it with
 * the daemon's own processor to the head, and compares the states, results
 * and emitted streams with the spec's `output`, as JSON.
 */
#include <ftw.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <msgpack.h>
#include <uuid/uuid.h>

#include "emitter.h"
#include "json.h"
#include "log.h"
#include "plugins.h"
#include "projection.h"
#include "readmodels.h"
#include "spec.h"
#include "store.h"

#define SPEC_TENANT      "spec"
#define SPEC_WAIT_MS     20000
#define SPEC_MAX_EMITTED 10000

typedef struct spec_run_ctx {
	const char *file; /* the spec, for messages */
	store      *s;
	rmstore    *rm;
	registry   *r;
	json_t     *states; /* key -> {state, result?} as the run left them */
	json_t     *shared; /* the stored shared state (bi-state), or NULL */
	int         diffs;
	char        when[256]; /* "after input[i].events[k]: ", or "" */
} spec_ctx;

static void diff(spec_ctx *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
diff(spec_ctx *c, const char *fmt, ...)
{
	va_list ap;
	printf("%s: %s", c->file, c->when);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	c->diffs++;
}

static int bad(const char *file, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
bad(const char *file, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "sluice spec: %s: ", file);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

/* ---- JSON ---- */

/* Equal as JSON values: object keys in any order, numbers by value (a
 * state's 3 may come back as 3.0). */
static bool
same(const json_t *a, const json_t *b)
{
	if (json_is_number(a) && json_is_number(b))
		return json_number_value(a) == json_number_value(b);
	if (json_is_array(a) && json_is_array(b)) {
		if (json_array_size(a) != json_array_size(b))
			return false;
		for (size_t i = 0; i < json_array_size(a); i++)
			if (!same(json_array_get(a, i), json_array_get(b, i)))
				return false;
		return true;
	}
	if (json_is_object(a) && json_is_object(b)) {
		const char *k;
		json_t     *v;
		if (json_object_size(a) != json_object_size(b))
			return false;
		json_object_foreach((json_t *) a, k, v)
		{
			json_t *w = json_object_get(b, k);
			if (w == NULL || !same(v, w))
				return false;
		}
		return true;
	}
	return json_equal((json_t *) a, (json_t *) b);
}

/* JSON text of v for a message (malloc'ed; "(none)" for NULL). */
static char *
text(const json_t *v)
{
	if (v == NULL)
		return strdup("(none)");
	char *t
	    = json_dumps(v, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENCODE_ANY);
	return t != NULL ? t : strdup("(?)");
}

static void
diff_value(
    spec_ctx *c, const char *what, const json_t *want, const json_t *got)
{
	char *w = text(want), *g = text(got);
	diff(c, "%s differs\n  expected: %s\n  actual:   %s", what, w, g);
	free(w);
	free(g);
}

/* A msgpack object as JSON (NULL if it cannot be read). */
static json_t *
mp_json(const msgpack_object *o)
{
	char *t = mp_to_json_text(o);
	if (t == NULL)
		return NULL;
	json_t *j = json_loads(t, JSON_DECODE_ANY, NULL);
	free(t);
	return j;
}

static json_t *
mp_bytes_json(const void *data, size_t len)
{
	msgpack_unpacked u;
	size_t           off = 0;
	json_t          *j   = NULL;
	msgpack_unpacked_init(&u);
	if (msgpack_unpack_next(&u, data, len, &off) == MSGPACK_UNPACK_SUCCESS)
		j = mp_json(&u.data);
	msgpack_unpacked_destroy(&u);
	return j;
}

/* JSON value v packed into zone z as a msgpack object. */
static int
to_mp(msgpack_zone *z, const json_t *v, msgpack_object *out)
{
	msgpack_sbuffer sb;
	msgpack_packer  pk;
	char            err[200];
	char           *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	if (t == NULL)
		return SL_ENOMEM;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	int rc = json_text_to_mp(t, 0, &pk, err, sizeof(err));
	free(t);
	if (rc == SL_OK) {
		char  *copy = msgpack_zone_malloc(z, sb.size ? sb.size : 1);
		size_t off  = 0;
		if (copy == NULL)
			rc = SL_ENOMEM;
		else {
			memcpy(copy, sb.data, sb.size);
			if (msgpack_unpack(copy, sb.size, &off, z, out)
			    != MSGPACK_UNPACK_SUCCESS)
				rc = SL_EINVAL;
		}
	}
	msgpack_sbuffer_destroy(&sb);
	return rc;
}

/* ---- input ---- */

/* Commit one spec event to stream (expected revision: any). */
static int
commit_event(
    spec_ctx *c, const char *stream, const json_t *ev, size_t si, size_t ei)
{
	const char *type = json_string_value(json_object_get(ev, "eventType"));
	json_t     *data = json_object_get(ev, "data");
	json_t     *meta = json_object_get(ev, "metadata");
	const char *id   = json_string_value(json_object_get(ev, "eventId"));
	if (type == NULL || *type == '\0')
		return bad(
		    c->file, "input[%zu].events[%zu]: no eventType", si, ei);
	if (data != NULL && !json_is_object(data))
		return bad(c->file,
		    "input[%zu].events[%zu]: data is not an object (Sluice "
		    "stores JSON objects)",
		    si, ei);
	if (meta != NULL && !json_is_object(meta) && !json_is_null(meta))
		return bad(c->file,
		    "input[%zu].events[%zu]: metadata is not an object", si,
		    ei);
	msgpack_zone   z;
	msgpack_object content, metadata;
	json_t        *empty = json_object();
	int            rc;
	if (!msgpack_zone_init(&z, 1024)) {
		json_decref(empty);
		return bad(c->file, "out of memory");
	}
	rc = to_mp(&z, data != NULL ? data : empty, &content);
	if (rc == SL_OK && json_is_object(meta))
		rc = to_mp(&z, meta, &metadata);
	json_decref(empty);
	if (rc != SL_OK) {
		msgpack_zone_destroy(&z);
		return bad(c->file, "input[%zu].events[%zu]: %s", si, ei,
		    sl_errname(rc));
	}
	ev_new en;
	memset(&en, 0, sizeof(en));
	en.type       = type;
	en.type_len   = strlen(type);
	en.generation = 1;
	if (id != NULL) {
		uuid_t u;
		if (uuid_parse(id, u) != 0) {
			msgpack_zone_destroy(&z);
			return bad(c->file,
			    "input[%zu].events[%zu]: eventId '%s' is not a "
			    "UUID",
			    si, ei, id);
		}
		memcpy(en.id, u, 16);
	} else
		ev_uuid_generate(en.id);
	en.occurred_ns     = ev_now_ns();
	en.correlation_id  = "spec";
	en.correlation_len = 4;
	en.causation_id    = "";
	en.metadata        = json_is_object(meta) ? &metadata : NULL;
	en.content         = &content;
	store_commit sc;
	memset(&sc, 0, sizeof(sc));
	sc.tenant     = SPEC_TENANT;
	sc.tenant_len = strlen(SPEC_TENANT);
	sc.stream     = stream;
	sc.stream_len = strlen(stream);
	sc.expected   = STORE_EXPECT_ANY;
	sc.events     = &en;
	sc.n_events   = 1;
	rc            = store_commit_wait(c->s, &sc);
	msgpack_zone_destroy(&z);
	if (rc != SL_OK)
		return bad(c->file,
		    "input[%zu].events[%zu]: commit to '%s': "
		    "%s %s",
		    si, ei, stream, sl_errname(rc), sc.message);
	return 0;
}

/* Delete stream (a soft delete: the log writes EventStoreDB's
 * "$streamDeleted" notice in "$deleted", which calls $deleted). */
static int
delete_stream(spec_ctx *c, const char *stream, size_t si)
{
	store_commit sc;
	memset(&sc, 0, sizeof(sc));
	sc.tenant     = SPEC_TENANT;
	sc.tenant_len = strlen(SPEC_TENANT);
	sc.stream     = stream;
	sc.stream_len = strlen(stream);
	sc.expected   = STORE_EXPECT_ANY;
	sc.trunc      = STORE_TRUNC_DELETE;
	int rc        = store_commit_wait(c->s, &sc);
	if (rc != SL_OK)
		return bad(c->file, "input[%zu]: deleting '%s': %s %s", si,
		    stream, sl_errname(rc), sc.message);
	return 0;
}

/* ---- running ---- */

static void
sleep_ms(int ms)
{
	struct timespec ts = { 0, ms * 1000000L };
	nanosleep(&ts, NULL);
}

static int64_t
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A failing key is a difference: the spec expects handlers that work. */
static void
report_failing(spec_ctx *c, const proc_failing *f, size_t n, size_t total)
{
	for (size_t i = 0; i < n; i++)
		diff(c, "partition '%s' failed: %s", f[i].partition,
		    f[i].reason);
	if (total > n)
		diff(c, "%zu more failing partitions", total - n);
}

static int
state_cb(void *arg, const char *key, size_t key_len, const void *state,
    size_t state_len, const void *result, size_t result_len)
{
	spec_ctx *c = arg;
	json_t   *e = json_object();
	json_object_set_new(e, "state", mp_bytes_json(state, state_len));
	if (result != NULL)
		json_object_set_new(
		    e, "result", mp_bytes_json(result, result_len));
	char *k = strndup(key, key_len);
	json_object_set_new(c->states, k, e);
	free(k);
	return 0;
}

static int
rm_cb(void *arg, const char *key, size_t key_len, const void *data, size_t len)
{
	return state_cb(arg, key, key_len, data, len, NULL, 0);
}

/* A run of the projection: a processor for a read-model projection, an
 * emitting run for one that emits (or has a result transform). */
typedef struct runner {
	const proj_def *def;
	processor      *p;
	eproj          *ep;
} runner;

static int
runner_start(spec_ctx *c, runner *r, const proj_def *def)
{
	char          err[512];
	proj_settings set = {
		.checkpoint_handled_threshold         = 4000,
		.checkpoint_unhandled_bytes_threshold = 10u << 20,
		.pending_events_threshold             = 5000,
		.max_write_batch_length               = 500,
	};
	int rc;
	memset(r, 0, sizeof(*r));
	r->def = def;
	if (!eproj_is_emitting(def))
		rc = proc_start(c->s, c->rm, SPEC_TENANT, def, 64, &r->p);
	else if (eproj_claim(c->s, def, err, sizeof(err)) != SL_OK)
		return bad(c->file, "%s", err);
	else
		rc = eproj_start(c->s, SPEC_TENANT, def, CFG_MODE_CONTINUOUS,
		    &set, false, &r->ep);
	if (rc != SL_OK)
		return bad(c->file, "cannot start the projection: %s",
		    sl_errname(rc));
	return 0;
}

/* Whether the run has handled everything below head (or is stuck on a
 * failure); *where says where it is, for a timeout's message. */
static bool
runner_at(runner *r, uint64_t head, char *where, size_t len)
{
	if (r->p != NULL) {
		proc_status st;
		proc_get_status(r->p, &st);
		snprintf(where, len, "%s at %" PRIu64 " (%s)",
		    proc_state_name(st.state), st.position, st.reason);
		return st.position >= head
		    && (st.state == PROC_LIVE || st.n_failing > 0);
	}
	eproj_status st;
	eproj_get_status(r->ep, &st);
	snprintf(where, len, "%s at %" PRIu64 " (%s)",
	    st.status != NULL ? st.status : "starting", st.position,
	    st.reason);
	if (st.status == NULL)
		return false;
	return (st.position >= head && st.writes_in_flight == 0)
	    || strcmp(st.status, "faulted") == 0;
}

/* Wait until the run passed head, then read its states into c->states.
 * @return 0, or 1 when it does not get there. */
static int
runner_sync(spec_ctx *c, runner *r, uint64_t head)
{
	char    where[512];
	int64_t end = now_ms() + SPEC_WAIT_MS;
	while (!runner_at(r, head, where, sizeof(where))) {
		if (now_ms() > end)
			return bad(c->file,
			    "the projection did not reach position %" PRIu64
			    ": %s",
			    head, where);
		sleep_ms(2);
	}
	json_object_clear(c->states);
	bool more = false;
	int  rc   = r->p != NULL
	       ? rm_scan(c->rm, r->def->id, NULL, 0, 0, rm_cb, c, &more)
	       : eproj_read_states(c->s, SPEC_TENANT, r->def,
	           proj_def_result(r->def), NULL, 0, state_cb, c);
	if (rc != SL_OK)
		return bad(c->file, "reading the states: %s", sl_errname(rc));
	/* a bi-state projection's shared state, as get_one "$shared"
	 * reads it */
	json_decref(c->shared);
	c->shared = NULL;
	if (r->def->shared_initial == NULL)
		return 0;
	char  *sh;
	size_t shlen;
	rc = r->p != NULL
	    ? proc_shared_read_rm(c->rm, r->def->id, &sh, &shlen)
	    : eproj_read_shared(c->s, SPEC_TENANT, r->def, &sh, &shlen);
	if (rc == SL_ENOTFOUND)
		return 0;
	if (rc != SL_OK)
		return bad(
		    c->file, "reading the shared state: %s", sl_errname(rc));
	c->shared = mp_bytes_json(sh, shlen);
	free(sh);
	return 0;
}

/* Report the failing keys (and a faulted run) as differences, and stop. */
static void
runner_stop(spec_ctx *c, runner *r)
{
	proc_failing f[16];
	size_t       n;
	if (r->p != NULL) {
		n = proc_get_failing(r->p, f, 16);
		report_failing(c, f, n < 16 ? n : 16, n);
		proc_stop(r->p);
	} else if (r->ep != NULL) {
		eproj_status st;
		eproj_get_status(r->ep, &st);
		n = eproj_get_failing(r->ep, f, 16);
		if (st.status != NULL && strcmp(st.status, "faulted") == 0
		    && n == 0)
			diff(c, "the projection faulted: %s", st.reason);
		report_failing(c, f, n < 16 ? n : 16, n);
		eproj_stop(r->ep);
	}
	memset(r, 0, sizeof(*r));
}

/* ---- comparing ---- */

/* Sluice's key of a spec partition: EventStoreDB's root partition is "". */
static const char *
key_of(const char *partition)
{
	return *partition == '\0' ? "root" : partition;
}

/* "shared": a bi-state projection's shared state (null: none stored). */
static void
check_shared(spec_ctx *c, const json_t *want)
{
	if (want == NULL)
		return;
	if (json_is_null(want) ? c->shared != NULL
	                       : c->shared == NULL || !same(want, c->shared))
		diff_value(c, "the shared state",
		    json_is_null(want) ? NULL : want, c->shared);
}

static void
check_states(spec_ctx *c, const json_t *want)
{
	if (want == NULL)
		return;
	if (!json_is_array(want)) {
		diff(c, "states is not an array");
		return;
	}
	json_t *seen = json_object();
	for (size_t i = 0; i < json_array_size(want); i++) {
		json_t     *w = json_array_get(want, i);
		const char *part
		    = json_string_value(json_object_get(w, "partition"));
		if (part == NULL) {
			diff(c, "states[%zu] has no partition", i);
			continue;
		}
		const char *key = key_of(part);
		json_t     *got = json_object_get(c->states, key);
		json_object_set_new(seen, key, json_true());
		char    what[600];
		json_t *ws = json_object_get(w, "state");
		if (ws != NULL) {
			json_t *gs
			    = got ? json_object_get(got, "state") : NULL;
			if (json_is_null(ws) ? gs != NULL
			                     : gs == NULL || !same(ws, gs)) {
				snprintf(what, sizeof(what),
				    "state of partition '%s'", part);
				diff_value(
				    c, what, json_is_null(ws) ? NULL : ws, gs);
			}
		}
		json_t *wr = json_object_get(w, "result");
		if (wr != NULL) {
			json_t *gr
			    = got ? json_object_get(got, "result") : NULL;
			if (json_is_null(gr))
				gr = NULL;
			if (json_is_null(wr) ? gr != NULL
			                     : gr == NULL || !same(wr, gr)) {
				snprintf(what, sizeof(what),
				    "result of partition '%s'", part);
				diff_value(
				    c, what, json_is_null(wr) ? NULL : wr, gr);
			}
		}
	}
	/* states the spec does not list are differences too */
	const char *k;
	json_t     *v;
	json_object_foreach(c->states, k, v)
	{
		if (json_object_get(seen, k) != NULL)
			continue;
		char *t = text(json_object_get(v, "state"));
		diff(c, "unexpected partition '%s' with state %s",
		    strcmp(k, "root") == 0 ? "" : k, t);
		free(t);
	}
	json_decref(seen);
}

static int
stream_cb(void *arg, uint64_t position, const void *data, size_t len)
{
	json_t      *out = arg;
	msgpack_zone z;
	ev_view      v;
	if (!msgpack_zone_init(&z, 1024))
		return SL_ENOMEM;
	int rc = ev_decode(data, len, position, &z, &v);
	if (rc == SL_OK) {
		json_t *e = json_object();
		json_object_set_new(e, "eventType", json_string(v.type));
		json_object_set_new(e, "data", mp_json(&v.content));
		json_object_set_new(e, "metadata", mp_json(&v.metadata));
		json_array_append_new(out, e);
	}
	msgpack_zone_destroy(&z);
	return rc;
}

/* output.emitted: {stream: [{eventType, data, metadata?}]}, each stream's
 * events exactly (metadata compared only where the spec gives it). */
static void
check_emitted(spec_ctx *c, const json_t *want)
{
	const char *stream;
	json_t     *evs;
	if (want == NULL)
		return;
	if (!json_is_object(want)) {
		diff(c, "output.emitted is not an object of streams");
		return;
	}
	json_object_foreach((json_t *) want, stream, evs)
	{
		json_t *got = json_array();
		int     rc  = store_scan_stream(c->s, SPEC_TENANT, stream, 0,
		         SPEC_MAX_EMITTED, stream_cb, got);
		if (rc != SL_OK && rc != SL_ENOTFOUND) {
			diff(c, "reading stream '%s': %s", stream,
			    sl_errname(rc));
			json_decref(got);
			continue;
		}
		if (!json_is_array(evs)) {
			diff(
			    c, "output.emitted['%s'] is not an array", stream);
			json_decref(got);
			continue;
		}
		size_t nw = json_array_size(evs), ng = json_array_size(got);
		char   what[600];
		for (size_t i = 0; i < nw && i < ng; i++) {
			json_t *w   = json_array_get(evs, i);
			json_t *g   = json_array_get(got, i);
			json_t *cmp = json_object();
			json_object_set(
			    cmp, "eventType", json_object_get(g, "eventType"));
			json_object_set(
			    cmp, "data", json_object_get(g, "data"));
			if (json_object_get(w, "metadata") != NULL)
				json_object_set(cmp, "metadata",
				    json_object_get(g, "metadata"));
			json_t *wc = json_object();
			json_object_set(
			    wc, "eventType", json_object_get(w, "eventType"));
			json_object_set(
			    wc, "data", json_object_get(w, "data"));
			if (json_object_get(w, "metadata") != NULL)
				json_object_set(wc, "metadata",
				    json_object_get(w, "metadata"));
			if (!same(wc, cmp)) {
				snprintf(what, sizeof(what),
				    "event %zu emitted to '%s'", i, stream);
				diff_value(c, what, wc, cmp);
			}
			json_decref(cmp);
			json_decref(wc);
		}
		if (nw != ng) {
			char *t = text(got);
			diff(c,
			    "stream '%s' has %zu emitted events, the spec "
			    "expects %zu\n  actual: %s",
			    stream, ng, nw, t);
			free(t);
		}
		json_decref(got);
	}
}

/* Commit the spec's input: streams in order, each stream's events in
 * order (a stream may appear more than once, to interleave), then, with
 * "deleted": true, the stream's deletion. After an event (or a deletion)
 * with "states", the run catches up and its states are checked. */
static int
commit_input(spec_ctx *c, runner *r, const json_t *input)
{
	if (input == NULL)
		return 0;
	if (!json_is_array(input))
		return bad(c->file, "input is not an array of streams");
	for (size_t i = 0; i < json_array_size(input); i++) {
		json_t     *st = json_array_get(input, i);
		const char *id
		    = json_string_value(json_object_get(st, "streamId"));
		json_t *evs = json_object_get(st, "events");
		json_t *del = json_object_get(st, "deleted");
		if (del != NULL && !json_is_boolean(del))
			return bad(c->file,
			    "input[%zu]: deleted is not a "
			    "boolean",
			    i);
		if (evs == NULL && json_is_true(del))
			evs = json_array(); /* a deletion only */
		else
			json_incref(evs);
		if (id == NULL || *id == '\0' || !json_is_array(evs)) {
			json_decref(evs);
			return bad(c->file,
			    "input[%zu] needs streamId and events (or "
			    "deleted)",
			    i);
		}
		for (size_t k = 0; k < json_array_size(evs); k++) {
			json_t *ev   = json_array_get(evs, k);
			json_t *want = json_object_get(ev, "states");
			if (commit_event(c, id, ev, i, k)) {
				json_decref(evs);
				return 1;
			}
			if (want == NULL)
				continue;
			if (runner_sync(c, r, store_next_position(c->s))) {
				json_decref(evs);
				return 1;
			}
			snprintf(c->when, sizeof(c->when),
			    "after input[%zu].events[%zu] (%s): ", i, k, id);
			check_states(c, want);
			check_shared(c, json_object_get(ev, "shared"));
			c->when[0] = '\0';
		}
		json_decref(evs);
		if (!json_is_true(del))
			continue;
		if (delete_stream(c, id, i))
			return 1;
		json_t *want = json_object_get(st, "states");
		if (want == NULL)
			continue;
		if (runner_sync(c, r, store_next_position(c->s)))
			return 1;
		snprintf(c->when, sizeof(c->when),
		    "after deleting input[%zu] (%s): ", i, id);
		check_states(c, want);
		check_shared(c, json_object_get(st, "shared"));
		c->when[0] = '\0';
	}
	return 0;
}

/* ---- the whole run ---- */

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void) sb;
	(void) flag;
	(void) ftw;
	return remove(path);
}

/* The projection to run from the registry: by name, or the only one. */
static const proj_def *
pick(spec_ctx *c, const char *name)
{
	if (name != NULL) {
		const proj_def *d = registry_find(c->r, name, strlen(name));
		if (d == NULL)
			bad(c->file, "no projection '%s' in the plugin", name);
		return d;
	}
	const proj_def *only = NULL;
	size_t          n    = 0;
	for (size_t i = 0; i < registry_projection_count(c->r); i++) {
		const proj_def *d = registry_projection(c->r, i);
		if (!def_is_filter(d)) {
			only = d;
			n++;
		}
	}
	if (n != 1) {
		bad(c->file,
		    "the plugin has %zu projections: name one with "
		    "--projection or \"projectionName\"",
		    n);
		return NULL;
	}
	return only;
}

static int
run(spec_ctx *c, const json_t *spec, const char *dir, const char *plugin,
    const char *name, const char *js_host)
{
	const char *proj
	    = json_string_value(json_object_get(spec, "projection"));
	if (plugin != NULL) {
		proj = plugin; /* relative to the working directory */
		dir  = ".";
	}
	if (proj == NULL || *proj == '\0')
		return bad(
		    c->file, "no \"projection\" (the projection's file)");
	if (name == NULL)
		name = json_string_value(
		    json_object_get(spec, "projectionName"));
	char path[4200];
	/* the projection's file is relative to the spec's directory */
	int pn = proj[0] == '/'
	    ? snprintf(path, sizeof(path), "%s", proj)
	    : snprintf(path, sizeof(path), "%s/%s", dir, proj);
	if (pn < 0 || (size_t) pn >= sizeof(path))
		return bad(c->file, "the projection's path is too long");
	size_t plen  = strlen(path);
	bool   is_js = plen > 3 && strcmp(path + plen - 3, ".js") == 0;
	if (is_js && js_host != NULL && registry_set_js_host(c->r, js_host))
		return bad(c->file, "out of memory");
	char err[1024];
	int  rc = registry_load_file(c->r, path, err, sizeof(err));
	if (rc != SL_OK)
		return bad(c->file, "the projection does not load: %s", err);
	const proj_def *def = pick(c, is_js ? NULL : name);
	if (def == NULL)
		return 1;
	json_t *out = json_object_get(spec, "output");
	if (out == NULL || !json_is_object(out))
		return bad(c->file, "no \"output\" object");
	runner r;
	if (runner_start(c, &r, def))
		return 1;
	rc = commit_input(c, &r, json_object_get(spec, "input"));
	if (rc == 0)
		rc = runner_sync(c, &r, store_next_position(c->s));
	runner_stop(c, &r);
	if (rc)
		return rc;
	check_states(c, json_object_get(out, "states"));
	check_shared(c, json_object_get(out, "shared"));
	check_emitted(c, json_object_get(out, "emitted"));
	return 0;
}

int
spec_run(const char *file, const char *plugin, const char *projection,
    const char *js_host)
{
	json_error_t je;
	json_t      *spec = json_load_file(file, 0, &je);
	if (spec == NULL)
		return bad(file, "line %d: %s", je.line, je.text);
	if (!json_is_object(spec)) {
		json_decref(spec);
		return bad(file, "a spec is a JSON object");
	}
	log_set_level(SL_LOG_ERROR);
	char dir[4200];
	snprintf(dir, sizeof(dir), "%s", file);
	char *slash = strrchr(dir, '/');
	if (slash != NULL)
		*slash = '\0';
	else
		snprintf(dir, sizeof(dir), ".");

	const char *tmp = getenv("TMPDIR");
	char        work[4096], path[4200];
	snprintf(work, sizeof(work) - 100, "%s/sluice-spec-XXXXXX",
	    tmp != NULL && *tmp != '\0' ? tmp : "/tmp");
	if (mkdtemp(work) == NULL) {
		json_decref(spec);
		return bad(file, "cannot create a temporary directory in %s",
		    tmp != NULL ? tmp : "/tmp");
	}
	spec_ctx c      = { .file = file, .states = json_object() };
	int      status = 1, rc;
	snprintf(path, sizeof(path), "%s/log", work);
	if ((rc = store_open(path, 64u << 20, false, &c.s)) != SL_OK) {
		bad(file, "store_open %s: %s", path, sl_errname(rc));
		goto out;
	}
	snprintf(path, sizeof(path), "%s/rm", work);
	if ((rc = rm_open(path, 32u << 20, false, &c.rm)) != SL_OK) {
		bad(file, "rm_open %s: %s", path, sl_errname(rc));
		goto out;
	}
	snprintf(path, sizeof(path), "%s/plugin-cache", work);
	if ((rc = registry_create(path, &c.r)) != SL_OK) {
		bad(file, "registry_create: %s", sl_errname(rc));
		goto out;
	}
	status = run(&c, spec, dir, plugin, projection, js_host);
	if (status == 0 && c.diffs > 0)
		status = SPEC_EXIT_DIFF;
	if (status == 0)
		printf("%s: ok (%zu partitions)\n", file,
		    json_object_size(c.states));
	else if (status == SPEC_EXIT_DIFF)
		printf("%s: %d difference%s\n", file, c.diffs,
		    c.diffs == 1 ? "" : "s");
out:
	if (c.r != NULL)
		registry_destroy(c.r);
	if (c.rm != NULL)
		rm_close(c.rm);
	if (c.s != NULL)
		store_close(c.s);
	nftw(work, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	json_decref(c.states);
	json_decref(c.shared);
	json_decref(spec);
	return status;
}
