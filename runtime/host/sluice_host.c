/*
 * sluice-host: runs one plugin (.so) out of the daemon's process, for
 * `isolation: process` (hostsup.h starts it). It loads the file with the
 * daemon's own loader (private copy, ELF check, ABI version, struct sizes,
 * required callbacks, definitions), registers each projection and filter
 * over the remote protocol (include/sluice/remote.h, docs/remote.md) and
 * calls the plugin per event with the same sl_event, state bytes and
 * context the daemon's in-process path gives it (runtime/plugins/host.c).
 * What the remote protocol cannot carry (emitting, result transforms,
 * sources, shared state, created / deleted / key callbacks) is refused at
 * load, with the reason, and exit code HOST_EXIT_REFUSED.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include <msgpack.h>
#include <sluice/remote.h>

#include "event.h"
#include "host.h"
#include "hostrec.h"
#include "hostsup.h"
#include "log.h"
#include "plugins.h"

#define HOST_MAX_DEFS HOSTREC_SLOTS
#define HOST_MAX_LEFT HOSTREC_SLOTS

/* One registered definition: its remote registration and record slot. */
typedef struct hosted {
	const proj_def *def;
	size_t          slot;
	/* a 1.3 definition (without sources: the rest is refused): it gets
	 * no events of `$` streams and no links, as in process */
	bool            v13;
	sl_remote      *remote;
	msgpack_zone    zone;   /* the event view's strings, per call */
	msgpack_sbuffer packed; /* the state after a call */
} hosted;

static struct {
	hostrec        *rec;
	hostrec_poison  left[HOST_MAX_LEFT]; /* events not to run again */
	size_t          n_left;
	pthread_mutex_t left_mu;
	const char     *crashed; /* how the previous host died (--crashed) */
	long            prev_pid;
} g = { .left_mu = PTHREAD_MUTEX_INITIALIZER };

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: sluice-host --plugin FILE --api URL --cache DIR "
	    "[--record FILE]\n"
	    "                   [--error-file FILE] [--timeout-ms N] "
	    "[--crashed TEXT] [--prev-pid N]\n"
	    "Runs one plugin out of the daemon's process (isolation: "
	    "process);\n"
	    "sluiced starts it (README.md, \"Process isolation\").\n");
}

/* ---- refusing what a host cannot run ---- */

static void
write_error(const char *path, const char *msg)
{
	if (path == NULL)
		return;
	FILE *f = fopen(path, "w");
	if (f != NULL) {
		fputs(msg, f);
		fclose(f);
	}
}

/* Why def cannot run behind the remote protocol, or NULL. */
static const char *
unsupported(const proj_def *def)
{
	const sl_source *src;
	size_t           n_src, n_emits;
	uint32_t         flags;
	const char      *root, *pattern;
	if (def_is_filter(def)) {
		proj_def_sources(def, &src, &n_src, &flags);
		if (n_src > 0 || flags != 0)
			return "sources (ABI 1.3)";
		if (proj_def_on_code_change(def) != SL_CODE_CHANGE_REBUILD)
			return "on_code_change SL_CODE_CHANGE_FAIL (the "
			       "daemon's code-change validation)";
		return NULL;
	}
	proj_def_emits(def, &n_emits);
	if (n_emits > 0)
		return "emits (an emitting projection, ABI 1.2)";
	if (proj_def_result(def) != NULL
	    || proj_def_result_reason(def) != NULL)
		return "a result transform (ABI 1.2)";
	proj_def_sources(def, &src, &n_src, &flags);
	if (n_src > 0 || flags != 0)
		return "sources or source_flags (ABI 1.3)";
	if (proj_def_created(def) != NULL)
		return "a created callback (ABI 1.3)";
	if (proj_def_deleted(def) != NULL)
		return "a deleted callback (ABI 1.3)";
	if (proj_def_key(def) != NULL)
		return "a key callback (ABI 1.3)";
	if (def->shared_initial != NULL)
		return "a shared state (ABI 1.3)";
	proj_def_result_streams(def, &root, &pattern);
	if (root != NULL || pattern != NULL)
		return "result streams (ABI 1.3)";
	return NULL;
}

/* ---- the calls ---- */

/* Every failure a host answers for an event a previous host died on
 * starts with this: a call that brings it back as its retry reason is an
 * operator's `sluice retry`, which runs the event again. */
#define LEFT_PREFIX "plugin host: "

/* Whether this event killed the previous host (*p gets it). With drop,
 * it is taken off the list. An entry stays until then: the request a dead
 * host never answered may reach the next one twice (NNG's req0 sends a
 * request again on a new connection), and each must fail. */
static bool
find_left(const char *tenant, const char *def_id, const char *key,
    uint64_t position, bool drop, hostrec_poison *p)
{
	bool hit = false;
	pthread_mutex_lock(&g.left_mu);
	for (size_t i = 0; i < g.n_left && !hit; i++) {
		hostrec_poison *l = &g.left[i];
		if (l->position == position && strcmp(l->tenant, tenant) == 0
		    && strcmp(l->def_id, def_id) == 0
		    && strcmp(l->key, key) == 0) {
			*p  = *l;
			hit = true;
			if (drop) {
				g.left[i] = g.left[g.n_left - 1];
				__atomic_store_n(
				    &g.n_left, g.n_left - 1, __ATOMIC_RELEASE);
			}
		}
	}
	pthread_mutex_unlock(&g.left_mu);
	return hit;
}

static sl_remote_result fail_left(sl_remote_call *c, const hostrec_poison *p);

/* Whether the previous host died on this event (of unit: the key, or a
 * filter's partition); if so *res is the failure to answer. */
static bool
died_on(const hosted *h, sl_remote_call *c, const char *unit,
    uint64_t position, sl_remote_result *res)
{
	hostrec_poison p;
	if (__atomic_load_n(&g.n_left, __ATOMIC_ACQUIRE) == 0)
		return false;
	/* the daemon has our failure: an operator retries the event */
	bool retried = strncmp(sl_remote_retry_reason(c), LEFT_PREFIX,
	                   strlen(LEFT_PREFIX))
	    == 0;
	if (!find_left(
	        sl_remote_tenant(c), h->def->id, unit, position, retried, &p)
	    || retried)
		return false;
	*res = fail_left(c, &p);
	return true;
}

static sl_remote_result
fail_left(sl_remote_call *c, const hostrec_poison *p)
{
	if (p->cut)
		return sl_remote_fail(c, false, 0,
		    LEFT_PREFIX
		    "the handler did not return within %" PRId64
		    " ms: its host (pid %ld) was ended on this event, which "
		    "is not run again until `sluice retry`",
		    p->ran_ms, g.prev_pid);
	return sl_remote_fail(c, false, 0,
	    LEFT_PREFIX "the host (pid %ld) died of %s on this event, which "
	                "is not run again until `sluice retry`",
	    g.prev_pid, g.crashed != NULL ? g.crashed : "a crash");
}

/* The call's event as the in-process path sees it; SL_OK or a failure
 * already recorded on c. */
static int
call_event(hosted *h, sl_remote_call *c, ev_view *v)
{
	const void *data;
	size_t      len;
	msgpack_zone_clear(&h->zone);
	if (sl_remote_event_msgpack(c, &data, &len) != SL_OK
	    || ev_from_wire(data, len, &h->zone, v) != SL_OK) {
		sl_remote_fail(c, true, 0, "the call's event cannot be read");
		return SL_EPROTO;
	}
	return SL_OK;
}

static void
context_of(sl_remote_call *c, sl_context *ctx)
{
	memset(ctx, 0, sizeof(*ctx));
	ctx->attempt     = sl_remote_attempt(c);
	ctx->last_reason = sl_remote_retry_reason(c);
}

static sl_remote_result
failed(sl_remote_call *c, const sl_context *ctx, const char *dflt)
{
	return sl_remote_fail(c, !ctx->no_retry, ctx->retry_after_ms, "%s",
	    ctx->failed && ctx->reason[0] != '\0' ? ctx->reason : dflt);
}

static sl_remote_result
on_project(void *user, sl_remote_call *c)
{
	hosted          *h = user;
	ev_view          v;
	sl_remote_result res;
	const char      *key    = sl_remote_key(c);
	const char      *tenant = sl_remote_tenant(c);
	if (call_event(h, c, &v) != SL_OK)
		return SL_REMOTE_FAILED;
	if (died_on(h, c, key, v.position, &res))
		return res;

	const void *sdata;
	size_t      slen;
	sl_state    st;
	state_init(&st);
	if (sl_remote_state_msgpack(c, &sdata, &slen) != SL_OK
	    || state_load(&st, sdata, slen) != SL_OK) {
		state_free(&st);
		return sl_remote_fail(
		    c, true, 0, "cannot load the state of key '%.100s'", key);
	}
	struct sl_event sev = { .v = &v, .partition = v.stream };
	sl_context      ctx;
	context_of(c, &ctx);
	const sl_projection *pj = h->def->p;
	host_scratch_reset();
	hostrec_enter(g.rec, h->slot, tenant, h->def->id, key, v.position);
	sl_outcome out = pj->on(pj->user, &sev, key, &st, &ctx);
	hostrec_leave(g.rec, h->slot);
	switch (out) {
	case SL_REPLACE:
		/* packed in place, as the in-process path packs it */
		res = state_pack_sbuffer(&st, &h->packed) == SL_OK
		        && sl_remote_set_state_msgpack(
		               c, h->packed.data, h->packed.size)
		            == SL_OK
		    ? SL_REMOTE_REPLACE
		    : sl_remote_fail(c, true, 0,
		        "the state of key '%.100s' cannot be sent", key);
		break;
	case SL_DELETE:
		res = SL_REMOTE_DELETE;
		break;
	case SL_FAIL:
		res = failed(c, &ctx, "handler failed (no reason given)");
		break;
	default:
		res = sl_remote_fail(c, !ctx.no_retry, ctx.retry_after_ms,
		    "handler returned an unknown outcome %d", (int) out);
	}
	state_free(&st);
	return res;
}

static sl_remote_result
on_filter(void *user, sl_remote_call *c)
{
	hosted          *h = user;
	ev_view          v;
	sl_remote_result res;
	const char      *tenant = sl_remote_tenant(c);
	if (call_event(h, c, &v) != SL_OK)
		return SL_REMOTE_FAILED;
	/* what the daemon's 1.3 rules would not have handed it (remote
	 * registrations get the whole log) */
	if (h->v13
	    && (v.stream[0] == '$' || strcmp(v.type, EV_LINK_TYPE) == 0
	        || strcmp(v.type, EV_STREAM_LINK_TYPE) == 0))
		return SL_REMOTE_EXCLUDED;
	const char *unit
	    = h->def->filter_kind == SL_FILTER_UNPARTITIONED ? "" : v.stream;
	if (died_on(h, c, unit, v.position, &res))
		return res;
	struct sl_event sev = { .v = &v, .partition = v.stream };
	sl_context      ctx;
	const char     *partition = NULL;
	context_of(c, &ctx);
	const sl_filter *f = h->def->f;
	host_scratch_reset();
	hostrec_enter(g.rec, h->slot, tenant, h->def->id, unit, v.position);
	sl_verdict verdict = f->filter(f->user, &sev, &partition, &ctx);
	hostrec_leave(g.rec, h->slot);
	switch (verdict) {
	case SL_EXCLUDED:
		return SL_REMOTE_EXCLUDED;
	case SL_INCLUDED:
		return sl_remote_include(c,
		    h->def->filter_kind == SL_FILTER_UNPARTITIONED
		        ? NULL
		        : partition);
	case SL_FAILED:
		return failed(c, &ctx, "filter failed (no reason given)");
	default:
		return sl_remote_fail(c, true, 0,
		    "filter returned an unknown verdict %d", (int) verdict);
	}
}

/* ---- registering ---- */

/* $SLUICE_TOKEN as the host was started with (NULL: none). */
static char *host_token;

static void
remote_log(void *user, int level, const char *msg)
{
	const hosted *h = user;
	log_msg(level, "host", "%s: %s", h->def->name, msg);
}

static int
register_def(hosted *h, const char *api, char *err, size_t errlen)
{
	sl_remote_options opts
	    = { .log = remote_log, .log_user = h, .token = host_token };
	const proj_def   *d    = h->def;
	int               rc;
	if (def_is_filter(d)) {
		sl_remote_filter f = {
			.id      = d->id,
			.scope   = d->scope,
			.name    = d->name,
			.version = d->version,
			.kind    = (sl_remote_filter_kind) d->filter_kind,
			.filter  = on_filter,
			.user    = h,
		};
		rc = sl_remote_register_filter(api, &f, &opts, &h->remote);
	} else {
		const sl_projection *p = d->p;
		sl_remote_selector
		    sels[p->n_selectors > 0 ? p->n_selectors : 1];
		for (size_t i = 0; i < p->n_selectors; i++) {
			sels[i].event_type = p->selectors[i].event_type;
			sels[i].key = (sl_remote_key_kind) p->selectors[i].key;
			sels[i].arg = p->selectors[i].arg;
		}
		sl_remote_projection rp = {
			.id                 = d->id,
			.scope              = d->scope,
			.name               = d->name,
			.version            = d->version,
			.initial_state_json = p->initial_state_json,
			.selectors          = sels,
			.n_selectors        = p->n_selectors,
			.on                 = on_project,
			.user               = h,
		};
		rc = sl_remote_register_projection(
		    api, &rp, &opts, &h->remote);
	}
	if (rc != SL_OK)
		snprintf(err, errlen, "%s '%s' (%s): registration refused: %s",
		    def_is_filter(d) ? "filter" : "projection", d->name, d->id,
		    sl_remote_open_error());
	return rc;
}

static bool wait_stop(int ms);

/* Register, riding out the short while in which the daemon still sees the
 * previous host connected (EEXIST) or is not answering yet. */
static int
register_retrying(hosted *h, const char *api, volatile sig_atomic_t *stop,
    char *err, size_t errlen)
{
	for (int attempt = 0;; attempt++) {
		int rc = register_def(h, api, err, errlen);
		if (rc == SL_OK || *stop
		    || !(rc == SL_EEXIST || rc == SL_ENET || rc == SL_ETIMEDOUT
		        || rc == SL_ECLOSED)
		    || attempt >= 100)
			return rc;
		if (wait_stop(100))
			return rc;
	}
}

/* ---- main ---- */

/* SIGTERM and SIGINT are blocked in every thread and taken here. */
static volatile sig_atomic_t stopping;
static sigset_t              stop_set;

/* Wait up to ms for a stop signal; true once stopping. */
static bool
wait_stop(int ms)
{
	struct timespec ts = { ms / 1000, (long) (ms % 1000) * 1000000L };
	if (!stopping && sigtimedwait(&stop_set, NULL, &ts) > 0)
		stopping = 1;
	return stopping;
}

typedef struct watchdog {
	int64_t   limit_ms;
	pthread_t th;
} watchdog;

/* A handler past the remote timeout holds its registration's thread for
 * good: end the process, leaving the record for the next host, which
 * fails that event (only its key) and serves the rest. */
static void *
watchdog_main(void *arg)
{
	watchdog *w = arg;
	while (!stopping) {
		int64_t         ran;
		struct timespec ts = { 0, 50 * 1000000L };
		nanosleep(&ts, NULL);
		if (hostrec_overdue(g.rec, w->limit_ms, &ran)) {
			log_error("host",
			    "a handler has run for %" PRId64 " ms (the "
			    "remote timeout is %" PRId64 " ms): ending this "
			    "host",
			    ran, w->limit_ms);
			_exit(HOST_EXIT_CUT);
		}
	}
	return NULL;
}

/* The command line. */
typedef struct host_opts {
	const char *plugin, *api, *cache, *record, *errfile;
	long        timeout_ms;
} host_opts;

/* @return -1 to go on, else the exit status */
static int
parse_args(int argc, char **argv, host_opts *o)
{
	static const struct option longs[] = {
		{ "plugin", required_argument, NULL, 'p' },
		{ "api", required_argument, NULL, 'a' },
		{ "cache", required_argument, NULL, 'C' },
		{ "record", required_argument, NULL, 'r' },
		{ "error-file", required_argument, NULL, 'e' },
		{ "timeout-ms", required_argument, NULL, 't' },
		{ "crashed", required_argument, NULL, 'x' },
		{ "prev-pid", required_argument, NULL, 'P' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int opt;
	memset(o, 0, sizeof(*o));
	o->timeout_ms = 5000;
	while ((opt = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
		switch (opt) {
		case 'p':
			o->plugin = optarg;
			break;
		case 'a':
			o->api = optarg;
			break;
		case 'C':
			o->cache = optarg;
			break;
		case 'r':
			o->record = optarg;
			break;
		case 'e':
			o->errfile = optarg;
			break;
		case 't':
			o->timeout_ms = strtol(optarg, NULL, 10);
			break;
		case 'x':
			g.crashed = optarg;
			break;
		case 'P':
			g.prev_pid = strtol(optarg, NULL, 10);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (o->plugin == NULL || o->api == NULL || o->cache == NULL
	    || o->timeout_ms < 1) {
		usage(stderr);
		return 2;
	}
	return -1;
}

/* Map the record; after a death in a call (--crashed), what the previous
 * host was running becomes an event not to run again. */
static void
open_record(const char *record)
{
	hostrec_poison left[HOST_MAX_LEFT];
	size_t         n = 0;
	if (record == NULL)
		return;
	if (hostrec_open(record, left, HOST_MAX_LEFT, &n, &g.rec) != SL_OK)
		log_warn("host",
		    "cannot map %s: crashes of this host will not be traced "
		    "to an event",
		    record);
	/* a host stopped on purpose (reload, stop) gets no --crashed */
	if (g.crashed == NULL)
		return;
	memcpy(g.left, left, n * sizeof(left[0]));
	g.n_left = n;
	for (size_t i = 0; i < n; i++)
		log_warn("host",
		    "the previous host (pid %ld) died of %s in a call of %s "
		    "for tenant '%s', key '%s', at position %" PRIu64
		    ": that event fails, not run again",
		    g.prev_pid, left[i].cut ? "a cut" : g.crashed,
		    left[i].def_id, left[i].tenant, left[i].key,
		    left[i].position);
}

/* Load the plugin with the daemon's loader and check that a host can run
 * every definition. @return SL_OK; else err says why (SL_EPLUGIN: refused,
 * SL_ENOMEM / SL_ESTORAGE: could not try). */
static int
load_plugin(const host_opts *o, registry **reg, char *err, size_t errlen)
{
	if (registry_create(o->cache, reg) != SL_OK) {
		snprintf(err, errlen, "cannot create the cache %s", o->cache);
		*reg = NULL;
		return SL_ESTORAGE;
	}
	if (registry_load_file(*reg, o->plugin, err, errlen) != SL_OK)
		return SL_EPLUGIN;
	size_t n = registry_projection_count(*reg);
	if (n > HOST_MAX_DEFS) {
		snprintf(err, errlen,
		    "%s: %zu projections and filters; a plugin host runs at "
		    "most %d",
		    o->plugin, n, HOST_MAX_DEFS);
		return SL_EPLUGIN;
	}
	for (size_t i = 0; i < n; i++) {
		const proj_def *d   = registry_projection(*reg, i);
		const char     *why = unsupported(d);
		if (why != NULL) {
			snprintf(err, errlen,
			    "%s: %s '%s' (%s) uses %s, which a plugin host "
			    "(isolation: process) cannot run: run it "
			    "in_process",
			    o->plugin,
			    def_is_filter(d) ? "filter" : "projection",
			    d->name, d->id, why);
			return SL_EPLUGIN;
		}
	}
	return SL_OK;
}

/* Register every definition and answer calls until stopped.
 * @return the exit status */
static int
serve_defs(const host_opts *o, registry *reg, hosted *hs, size_t n_defs)
{
	char   err[1024] = "";
	int    rc        = SL_OK;
	size_t started   = 0;
	for (size_t i = 0; i < n_defs && rc == SL_OK && !stopping; i++) {
		hosted          *h = &hs[i];
		const sl_source *src;
		size_t           n_src;
		uint32_t         flags;
		h->def  = registry_projection(reg, i);
		h->slot = i;
		h->v13  = proj_def_sources(h->def, &src, &n_src, &flags);
		msgpack_zone_init(&h->zone, 4096);
		msgpack_sbuffer_init(&h->packed);
		rc = register_retrying(h, o->api, &stopping, err, sizeof(err));
		if (rc == SL_OK)
			rc = sl_remote_start(h->remote);
		if (rc == SL_OK)
			started++;
	}
	if (stopping)
		return 0;
	if (rc != SL_OK) {
		/* a definition the daemon refuses will not change by itself */
		/* (SL_EACCES: a daemon with auth: takes no registration
		 * without a token, and a host has none) */
		bool permanent = rc == SL_EINVAL || rc == SL_EPROTO
		    || rc == SL_EVERSION || rc == SL_ETOOBIG || rc == SL_EACCES
		    || (rc == SL_EEXIST && strstr(err, "connected") == NULL);
		write_error(o->errfile, err);
		log_error("host", "%s", err);
		return permanent ? HOST_EXIT_REFUSED : 1;
	}
	log_info("host", "%s: %zu projection(s) and filter(s) registered",
	    o->plugin, started);
	watchdog w  = { .limit_ms = o->timeout_ms };
	bool     wd = pthread_create(&w.th, NULL, watchdog_main, &w) == 0;
	while (!wait_stop(1000))
		;
	if (wd)
		pthread_join(w.th, NULL);
	return 0;
}

int
main(int argc, char **argv)
{
	host_opts o;
	int       status = parse_args(argc, argv, &o);
	if (status >= 0)
		return status;
	/* the daemon's credential under auth: (hostsup_set_token), kept out
	 * of what the plugin's children would inherit */
	const char *tok = getenv("SLUICE_TOKEN");
	if (tok != NULL && (host_token = strdup(tok)) != NULL)
		unsetenv("SLUICE_TOKEN");
	/* a host never outlives the daemon that started it */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	sigemptyset(&stop_set);
	sigaddset(&stop_set, SIGTERM);
	sigaddset(&stop_set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &stop_set, NULL); /* before any thread */
	signal(SIGPIPE, SIG_IGN);
	open_record(o.record);

	registry *reg;
	char      err[1024];
	int       rc = load_plugin(&o, &reg, err, sizeof(err));
	if (rc != SL_OK) {
		write_error(o.errfile, err);
		log_error("host", "%s", err);
		status = rc == SL_EPLUGIN ? HOST_EXIT_REFUSED : 1;
	} else {
		size_t  n_defs = registry_projection_count(reg);
		hosted *hs     = calloc(n_defs > 0 ? n_defs : 1, sizeof(*hs));
		status = hs != NULL ? serve_defs(&o, reg, hs, n_defs) : 1;
		for (size_t i = 0; hs != NULL && i < n_defs; i++) {
			if (hs[i].remote != NULL)
				sl_remote_close(hs[i].remote);
			if (hs[i].def != NULL) {
				msgpack_zone_destroy(&hs[i].zone);
				msgpack_sbuffer_destroy(&hs[i].packed);
			}
		}
		free(hs);
	}
	if (reg != NULL)
		registry_destroy(reg);
	hostrec_close(g.rec);
	return status;
}
