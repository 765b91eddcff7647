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
#include "spec_file.h"
#include "store.h"

#define SPEC_TENANT      "spec"
#define SPEC_WAIT_MS     20000
#define SPEC_MAX_EMITTED 10000

typedef struct spec_run_ctx {
	const char *file; /* the spec, for messages */
	spec_cmp    cmp;  /* the differences found */
	store      *s;
	rmstore    *rm;
	registry   *r;
	json_t     *states; /* key -> {state, result?} as the run left them */
	json_t     *shared; /* the stored shared state (bi-state), or NULL */
} spec_ctx;

#define diff(c, ...) spec_diff(&(c)->cmp, __VA_ARGS__)


/* ---- JSON ---- */

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

/* Commit one spec event (expected revision: any); a link's data is its
 * text, stored as a string as the runtime's links are. */
static int
commit_event(spec_ctx *c, const spec_step *st)
{
	msgpack_zone   z;
	msgpack_object content, metadata;
	json_t        *empty = json_object();
	int            rc;
	if (!msgpack_zone_init(&z, 1024)) {
		json_decref(empty);
		return spec_bad(c->file, "out of memory");
	}
	rc = to_mp(&z, st->data != NULL ? st->data : empty, &content);
	if (rc == SL_OK && st->metadata != NULL)
		rc = to_mp(&z, st->metadata, &metadata);
	json_decref(empty);
	if (rc != SL_OK) {
		msgpack_zone_destroy(&z);
		return spec_bad(c->file, "%s: %s", st->where, sl_errname(rc));
	}
	ev_new en;
	memset(&en, 0, sizeof(en));
	en.type       = st->type;
	en.type_len   = strlen(st->type);
	en.generation = 1;
	if (st->event_id != NULL) {
		uuid_t u;
		uuid_parse(st->event_id, u); /* checked by spec_file_load */
		memcpy(en.id, u, 16);
	} else
		ev_uuid_generate(en.id);
	en.occurred_ns     = ev_now_ns();
	en.correlation_id  = "spec";
	en.correlation_len = 4;
	en.causation_id    = "";
	en.metadata        = st->metadata != NULL ? &metadata : NULL;
	en.content         = &content;
	store_commit sc;
	memset(&sc, 0, sizeof(sc));
	sc.tenant     = SPEC_TENANT;
	sc.tenant_len = strlen(SPEC_TENANT);
	sc.stream     = st->stream;
	sc.stream_len = strlen(st->stream);
	sc.expected   = STORE_EXPECT_ANY;
	sc.events     = &en;
	sc.n_events   = 1;
	rc            = store_commit_wait(c->s, &sc);
	msgpack_zone_destroy(&z);
	if (rc != SL_OK)
		return spec_bad(c->file, "%s: commit to '%s': %s %s", st->where,
		    st->stream, sl_errname(rc), sc.message);
	return 0;
}

/* Soft-delete a stream, as the API's delete_stream does. */
static int
delete_stream(spec_ctx *c, const spec_step *st)
{
	store_commit sc;
	memset(&sc, 0, sizeof(sc));
	sc.tenant     = SPEC_TENANT;
	sc.tenant_len = strlen(SPEC_TENANT);
	sc.stream     = st->stream;
	sc.stream_len = strlen(st->stream);
	sc.expected   = STORE_EXPECT_ANY;
	sc.trunc      = STORE_TRUNC_DELETE;
	int rc        = store_commit_wait(c->s, &sc);
	if (rc != SL_OK)
		return spec_bad(c->file, "%s: delete '%s': %s %s", st->where,
		    st->stream, sl_errname(rc), sc.message);
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
		return spec_bad(c->file, "%s", err);
	else
		rc = eproj_start(c->s, SPEC_TENANT, def, CFG_MODE_CONTINUOUS,
		    &set, false, &r->ep);
	if (rc != SL_OK)
		return spec_bad(c->file, "cannot start the projection: %s",
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
			return spec_bad(c->file,
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
		return spec_bad(c->file, "reading the states: %s", sl_errname(rc));
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
		return spec_bad(
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

/* spec_read_stream_fn over the temporary log. */
static json_t *
read_stream(void *arg, spec_cmp *cmp, const char *stream)
{
	spec_ctx *c   = arg;
	json_t   *got = json_array();
	int       rc  = store_scan_stream(
	           c->s, SPEC_TENANT, stream, 0, SPEC_MAX_EMITTED, stream_cb, got);
	if (rc != SL_OK && rc != SL_ENOTFOUND) {
		spec_diff(
		    cmp, "reading stream '%s': %s", stream, sl_errname(rc));
		json_decref(got);
		return NULL;
	}
	return got;
}

/* Commit the spec's input, step by step. After a step with "states" or
 * "emitted", the run catches up and those are checked. */
static int
commit_input(spec_ctx *c, runner *r, const spec_file *f)
{
	for (size_t i = 0; i < f->n_steps; i++) {
		const spec_step *st = &f->steps[i];
		int rc = st->kind == SPEC_STEP_DELETE ? delete_stream(c, st)
		                                      : commit_event(c, st);
		if (rc)
			return 1;
		if (st->states == NULL && st->emitted == NULL
		    && st->shared == NULL)
			continue;
		if (runner_sync(c, r, store_next_position(c->s)))
			return 1;
		snprintf(
		    c->cmp.when, sizeof(c->cmp.when), "after %s: ", st->where);
		spec_check_states(&c->cmp, st->states, c->states);
		spec_check_shared(&c->cmp, st->shared, c->shared);
		spec_check_emitted(&c->cmp, st->emitted, read_stream, c);
		c->cmp.when[0] = '\0';
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
			spec_bad(c->file, "no projection '%s' in the plugin", name);
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
		spec_bad(c->file,
		    "the plugin has %zu projections: name one with "
		    "--projection or \"projectionName\"",
		    n);
		return NULL;
	}
	return only;
}

static int
run(spec_ctx *c, const spec_file *f, const char *plugin, const char *name,
    const char *js_host)
{
	const char *proj = f->projection;
	const char *dir  = f->dir;
	if (plugin != NULL) {
		proj = plugin; /* relative to the working directory */
		dir  = ".";
	}
	if (proj == NULL || *proj == '\0')
		return spec_bad(
		    c->file, "no \"projection\" (the projection's file)");
	if (name == NULL)
		name = f->name;
	char path[4200];
	/* the projection's file is relative to the spec's directory */
	int pn = proj[0] == '/'
	    ? snprintf(path, sizeof(path), "%s", proj)
	    : snprintf(path, sizeof(path), "%s/%s", dir, proj);
	if (pn < 0 || (size_t) pn >= sizeof(path))
		return spec_bad(c->file, "the projection's path is too long");
	size_t plen  = strlen(path);
	bool   is_js = plen > 3 && strcmp(path + plen - 3, ".js") == 0;
	if (is_js && js_host != NULL && registry_set_js_host(c->r, js_host))
		return spec_bad(c->file, "out of memory");
	char err[1024];
	int  rc = registry_load_file(c->r, path, err, sizeof(err));
	if (rc != SL_OK)
		return spec_bad(c->file, "the projection does not load: %s", err);
	const proj_def *def = pick(c, is_js ? NULL : name);
	if (def == NULL)
		return 1;
	runner r;
	if (runner_start(c, &r, def))
		return 1;
	rc = commit_input(c, &r, f);
	if (rc == 0)
		rc = runner_sync(c, &r, store_next_position(c->s));
	runner_stop(c, &r);
	if (rc)
		return rc;
	spec_check_states(&c->cmp, f->states, c->states);
	spec_check_shared(&c->cmp, f->shared, c->shared);
	spec_check_emitted(&c->cmp, f->emitted, read_stream, c);
	return 0;
}

int
spec_run(const char *file, const char *plugin, const char *projection,
    const char *js_host)
{
	spec_file f;
	if (spec_file_load(file, &f)) {
		spec_file_free(&f);
		return 1;
	}
	log_set_level(SL_LOG_ERROR);
	const char *tmp = getenv("TMPDIR");
	char        work[4096], path[4200];
	snprintf(work, sizeof(work) - 100, "%s/sluice-spec-XXXXXX",
	    tmp != NULL && *tmp != '\0' ? tmp : "/tmp");
	if (mkdtemp(work) == NULL) {
		spec_file_free(&f);
		return spec_bad(file, "cannot create a temporary directory in %s",
		    tmp != NULL ? tmp : "/tmp");
	}
	spec_ctx c = {
		.file = file, .cmp = { .file = file }, .states = json_object()
	};
	int status = 1, rc;
	snprintf(path, sizeof(path), "%s/log", work);
	if ((rc = store_open(path, 64u << 20, false, &c.s)) != SL_OK) {
		spec_bad(file, "store_open %s: %s", path, sl_errname(rc));
		goto out;
	}
	snprintf(path, sizeof(path), "%s/rm", work);
	if ((rc = rm_open(path, 32u << 20, false, &c.rm)) != SL_OK) {
		spec_bad(file, "rm_open %s: %s", path, sl_errname(rc));
		goto out;
	}
	snprintf(path, sizeof(path), "%s/plugin-cache", work);
	if ((rc = registry_create(path, &c.r)) != SL_OK) {
		spec_bad(file, "registry_create: %s", sl_errname(rc));
		goto out;
	}
	status = run(&c, &f, plugin, projection, js_host);
	if (status == 0 && c.cmp.diffs > 0)
		status = SPEC_EXIT_DIFF;
	if (status == 0)
		printf("%s: ok (%zu partitions)\n", file,
		    json_object_size(c.states));
	else if (status == SPEC_EXIT_DIFF)
		printf("%s: %d difference%s\n", file, c.cmp.diffs,
		    c.cmp.diffs == 1 ? "" : "s");
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
	spec_file_free(&f);
	return status;
}
