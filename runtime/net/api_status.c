/*
 * The wire protocol's operator ops (docs/protocol.md): status, the
 * processor commands (reset, retry, pause, resume, start, stop), plugins
 * and remote registrations. Requests are decoded and dispatched in api.c.
 */
#include "api_internal.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/errors.h>

#include "api.h"
#include "emitter.h"
#include "event.h"
#include "filter_validate.h"
#include "guard.h"
#include "hostsup.h"
#include "mp.h"
#include "sysproj.h"

/* ---- status ---- */

/* One lane of the API server, as status's "api" shows it. */
static void
api_pack_lane(mp_map *parent, const char *name, const lane_stats *ls)
{
	mp_map m;
	mp_map_key(parent, name);
	mp_map_open(&m, parent->pk);
	mp_map_u64(&m, "workers", ls->workers);
	mp_map_u64(&m, "busy", ls->busy);
	mp_map_u64(&m, "queued", ls->queued);
	mp_map_u64(&m, "queue_limit", ls->capacity);
	mp_map_u64(&m, "done", ls->done);
	mp_map_u64(&m, "refused", ls->refused);
	mp_map_close(&m);
}

/* The API server: "api": {contexts, in_flight, max_request_bytes, the
 * connections, fast, slow}. */
static void
api_pack_server(mp_map *parent, server *srv, size_t max_request)
{
	server_stats st;
	mp_map       m;
	memset(&st, 0, sizeof(st));
	if (srv != NULL)
		server_stats_get(srv, &st);
	mp_map_key(parent, "api");
	mp_map_open(&m, parent->pk);
	mp_map_u64(&m, "contexts", st.contexts);
	mp_map_u64(&m, "in_flight", st.in_flight);
	/* a client sizes its requests by it (a query's script) */
	mp_map_u64(&m, "max_request_bytes", max_request);
	mp_map_u64(&m, "connections", st.connections);
	mp_map_u64(&m, "max_connections", st.max_connections);
	mp_map_u64(&m, "connections_refused", st.refused_connections);
	mp_map_u64(&m, "idle_timeout_ms", st.idle_timeout_ms);
	mp_map_u64(&m, "idle_closed", st.idle_closed);
	api_pack_lane(&m, "fast", &st.lanes[SERVER_LANE_FAST]);
	api_pack_lane(&m, "slow", &st.lanes[SERVER_LANE_SLOW]);
	mp_map_close(&m);
}

/* Failing units listed per processor (failing_count has them all). */
#define API_STATUS_MAX_FAILING 100

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
	mp_map m;
	mp_map_open(&m, pk);
	mp_map_key(&m, "partition");
	mp_pack_strn(
	    pk, pf->partition, strnlen(pf->partition, sizeof(pf->partition)));
	mp_map_u64(&m, "position", pf->position);
	mp_map_u64(&m, "attempts", pf->attempts);
	mp_map_bool(&m, "retry", pf->retry);
	mp_map_key(&m, "next_try");
	if (pf->retry && pf->next_try_ns > 0)
		msgpack_pack_int64(pk, pf->next_try_ns / 1000000);
	else
		msgpack_pack_nil(pk);
	mp_map_key(&m, "reason");
	mp_pack_strn(pk, pf->reason, strnlen(pf->reason, sizeof(pf->reason)));
	mp_map_close(&m);
}

/* One remote registration, as status shows it (docs/remote.md). */
static void
api_pack_remote(const remote_info *rip, msgpack_packer *pk)
{
	const remote_info ri = *rip;
	char              hash[17];
	bool f = def_is_filter(ri.def);
	snprintf(hash, sizeof(hash), "%016" PRIx64, ri.def->def_hash);
	mp_map m;
	mp_map_open(&m, pk);
	mp_map_str(&m, "id", ri.def->id);
	mp_map_str(&m, "name", ri.def->name);
	mp_map_str(&m, "kind", api_kind_name(ri.def));
	if (f)
		mp_map_str(&m, "filter_kind",
		    api_filter_kind_name(ri.def->filter_kind));
	mp_map_u64(&m, "version", ri.def->version);
	mp_map_str(&m, "definition", hash);
	mp_map_str(&m, "url", ri.url);
	mp_map_bool(&m, "connected", ri.connected);
	mp_map_str(&m, "client", ri.client[0] != '\0' ? ri.client : NULL);
	/* the credential that registered it (auth on; docs/security.md) */
	if (ri.owner[0] != '\0')
		mp_map_str(&m, "credential", ri.owner);
	mp_map_u64(&m, "in_flight", ri.in_flight);
	mp_map_u64(&m, "calls", ri.calls);
	mp_map_u64(&m, "failed_calls", ri.failed_calls);
	mp_map_u64(&m, "connects", ri.connects);
	mp_map_u64(&m, "registrations", ri.registrations);
	mp_map_i64(&m, "registered_at_ns", ri.registered_at_ns);
	mp_map_i64(&m, "changed_at_ns", ri.changed_at_ns);
	mp_map_str(&m, "last_error", ri.last_error);
	mp_map_u64(&m, "window", ri.window);
	mp_map_u64(&m, "protocol", ri.protocol);
	mp_map_u64(&m, "batch", ri.batch);
	mp_map_close(&m);
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
	case PROC_STANDBY:
		snprintf(reason, len, "%s", st->reason);
		return "standby";
	}
	return "running";
}

/* Whether def is emitting, safe while a reload closes its version: its
 * vtable is read only under a hold. */
static bool
api_def_emitting(runtime *rt, const proj_def *d)
{
	if (d == NULL)
		return false;
	bool live = proj_def_try_hold(d);
	bool e    = api_emitting(rt, d, live);
	if (live)
		proj_def_release(d);
	return e;
}

/*
 * An emitting run's state: its processor's (one engine, one vocabulary),
 * except that a run EventStoreDB would call faulted (its keys all static,
 * one failing) is failed.
 */
static const char *
api_eproj_state(eproj *e, const eproj_status *st)
{
	proc_status ps;
	proc_get_status(eproj_processor(e), &ps);
	if (st->status != NULL && strcmp(st->status, "faulted") == 0
	    && ps.state != PROC_FAILING)
		return proc_state_name(PROC_FAILED);
	return proc_state_name(ps.state);
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
	/* a plugin call past limits.handler_timeout_ms (the daemon's run) */
	uint64_t stuck_pos = 0;
	int64_t  stuck_ms  = 0;
	bool     stuck     = handle == 0
	    && guard_stuck(GUARD_EMITTER, st.tenant, eproj_id(e), &stuck_pos,
	        &stuck_ms);
	char     why[300];
	snprintf(why, sizeof(why), "handler stuck on event %" PRIu64
	    " for %" PRId64 " ms", stuck_pos, stuck_ms);
	mp_map m;
	mp_map_open(&m, pk);
	mp_map_str(&m, "tenant", st.tenant);
	mp_map_str(&m, "projection", eproj_id(e));
	mp_map_str(&m, "name", d != NULL ? d->name : NULL);
	/* the processors' words too, so one vocabulary reads every entry */
	mp_map_str(&m, "kind", "projection");
	mp_map_str(&m, "state",
	    stuck ? "stuck" : api_eproj_state(e, &st));
	mp_map_bool(&m, "paused",
	    st.status != NULL && strcmp(st.status, "stopped") == 0
	        && d != NULL);
	mp_map_str(&m, "mode", api_mode_name(st.mode));
	mp_map_str(&m, "status", stuck ? "stuck" : st.status);
	mp_map_str(&m, "status_reason", stuck ? why : st.reason);
	if (stuck)
		mp_map_u64(&m, "stuck_position", stuck_pos);
	mp_map_u64(&m, "position", st.position);
	mp_map_u64(&m, "head", h);
	mp_map_double(&m, "progress", api_progress(st.position, h));
	mp_map_u64(&m, "events_processed", st.events_processed);
	mp_map_double(&m, "events_per_sec", st.events_per_sec);
	mp_map_u64(&m, "buffered_events", st.buffered_events);
	mp_map_u64(&m, "partitions_cached", st.partitions_cached);
	mp_map_u64(&m, "writes_in_flight", st.writes_in_flight);
	mp_map_u64(&m, "emitted", st.emitted);
	mp_map_u64(&m, "attempts", st.attempts);
	mp_map_u64(&m, "failures", st.failures);
	mp_map_u64(&m, "retries", st.retries);
	/* failing keys, as the processors show their failing units */
	proc_failing *fl    = malloc(API_STATUS_MAX_FAILING * sizeof(*fl));
	size_t        nf    = fl != NULL
	              ? eproj_get_failing(e, fl, API_STATUS_MAX_FAILING)
	              : st.n_failing;
	size_t        shown = fl == NULL         ? 0
	           : nf < API_STATUS_MAX_FAILING ? nf
	                                         : API_STATUS_MAX_FAILING;
	mp_map_u64(&m, "failing_count", nf);
	mp_map_key(&m, "failing");
	msgpack_pack_array(pk, shown);
	for (size_t k = 0; k < shown; k++)
		api_pack_failing(pk, &fl[k]);
	free(fl);
	mp_map_bool(&m, "system", d != NULL && sysproj_is_system(d));
	mp_map_bool(&m, "emitting", true);
	mp_map_bool(&m, "stopped",
	    st.status != NULL && strcmp(st.status, "stopped") == 0);
	mp_map_bool(&m, "transient", handle != 0);
	/* a log shared by nodes: whether this node runs it, and who does */
	if (st.leased) {
		mp_map_bool(&m, "lease_held", st.lease_held);
		mp_map_str(&m, "lease_holder", st.lease_holder);
	}
	/* where its results go (named by outputTo / resultStreamName, or
	 * EventStoreDB's names); "{0}" stands for the key */
	char *rroot = NULL, *rpat = NULL;
	if (d != NULL && proj_def_result(d) != NULL
	    && eproj_result_names(d, &rroot, &rpat) == SL_OK) {
		mp_map_str(&m, "result_stream", rroot);
		mp_map_str(&m, "partition_result_stream", rpat);
	}
	free(rroot);
	free(rpat);
	mp_map_key(&m, "handle");
	if (handle != 0)
		msgpack_pack_uint64(pk, handle);
	else
		msgpack_pack_nil(pk);
	mp_map_close(&m);
}

/* Who the caller is, as the daemon sees it (auth on). */
static void
api_pack_caller(mp_map *reply, const cfg_cred *c)
{
	msgpack_packer *pk = reply->pk;
	size_t          n  = 0;
	mp_map          m;
	for (unsigned b = CFG_ROLE_READ; b <= CFG_ROLE_ADMIN; b <<= 1)
		n += (c->roles & b) != 0;
	mp_map_key(reply, "caller");
	mp_map_open(&m, pk);
	mp_map_str(&m, "credential", c->name);
	mp_map_key(&m, "roles");
	msgpack_pack_array(pk, n);
	for (unsigned b = CFG_ROLE_READ; b <= CFG_ROLE_ADMIN; b <<= 1)
		if (c->roles & b)
			mp_pack_cstr(pk, auth_role_name(b));
	mp_map_bool(&m, "all_tenants", c->all_tenants);
	mp_map_u64(&m, "max_registrations", c->max_registrations);
	mp_map_close(&m);
}

void
api_status(request *r)
{
	if (api_status_pack(r->rt, r->cred, &r->pk) != SL_OK)
		api_fail(r, SL_ENOMEM, "out of memory");
	else
		api_send(r);
}

/* Whether status shows cred the registration: its own, every one for an
 * admin or without auth. */
static bool
api_owns(const cfg_cred *cred, const remote_info *ri)
{
	return cred == NULL || (cred->roles & CFG_ROLE_ADMIN)
	    || strcmp(ri->owner, cred->name) == 0;
}

/* Whether cred sees tenant (NUL-terminated; NULL: no). */
static bool
api_sees(const cfg_cred *cred, const char *tenant)
{
	return tenant != NULL && auth_tenant_ok(cred, tenant, strlen(tenant));
}

/* The one-time queries running now (the caller's tenants'): queries:
 * [{tenant, projection, name, position, head, elapsed_ms}]. */
static void
api_pack_queries(mp_map *reply, runtime *rt, const cfg_cred *cred)
{
	rt_query q[RT_MAX_QUERIES];
	size_t   n   = 0;
	int64_t  now = ev_now_ns();
	pthread_mutex_lock(&rt->queries_mu);
	for (size_t i = 0; i < RT_MAX_QUERIES; i++)
		if (rt->queries[i].used && api_sees(cred, rt->queries[i].tenant)) {
			q[n] = rt->queries[i];
			q[n++].position = __atomic_load_n(
			    &rt->queries[i].position, __ATOMIC_RELAXED);
		}
	pthread_mutex_unlock(&rt->queries_mu);
	mp_map_key(reply, "queries");
	msgpack_pack_array(reply->pk, n);
	for (size_t i = 0; i < n; i++) {
		mp_map e;
		mp_map_open(&e, reply->pk);
		mp_map_str(&e, "tenant", q[i].tenant);
		mp_map_str(&e, "projection", q[i].id);
		mp_map_str(&e, "name", q[i].name);
		mp_map_u64(&e, "position", q[i].position);
		mp_map_u64(&e, "head", q[i].head);
		mp_map_u64(&e, "elapsed_ms",
		    now > q[i].started_ns
		        ? (uint64_t) (now - q[i].started_ns) / 1000000
		        : 0);
		mp_map_close(&e);
	}
}

int
api_status_pack(runtime *rt, const cfg_cred *cred, msgpack_packer *pk)
{
	size_t           n_plugins = registry_plugin_count(rt->plugins);
	size_t           n_proj;
	const proj_def **defs = api_projections(rt, &n_proj);
	/* processors and registrations as they are now (an expired
	 * registration's go; the caller's grace section keeps what it saw
	 * valid) */
	size_t        n_procs, n_remote;
	processor   **procs = runtime_procs(rt, &n_procs);
	remote_info  *regs  = NULL;
	int64_t       up    = ev_now_ns() - rt->started_ns;
	proc_failing *failing
	    = malloc(API_STATUS_MAX_FAILING * sizeof(*failing));

	if (failing == NULL
	    || remotes_list(rt->remotes, &regs, &n_remote) != SL_OK) {
		free(failing);
		free(procs);
		free(defs);
		return SL_ENOMEM;
	}
	uint64_t head = store_next_position(rt->store);
	mp_map reply;
	mp_reply_ok_open(&reply, pk);
	mp_map_u64(&reply, "head", head);
	mp_map_str(&reply, "run_projections",
	    api_run_name(rt->cfg->run_projections));
	mp_map_u64(&reply, "uptime_ms", up > 0 ? (uint64_t) up / 1000000 : 0);
	/* Where subscribers dial the live feed (docs/protocol.md); nil
	 * under auth, which has no feed (docs/security.md). */
	mp_map_str(&reply, "pub",
	    rt->pub != NULL && !rt->cfg->auth_on ? rt->cfg->pub_url : NULL);
	/* under auth: the tenants' own feeds the caller may follow
	 * (endpoints.feeds; docs/security.md, "The live feed") */
	if (rt->cfg->n_feeds > 0) {
		size_t n_feeds = 0;
		for (size_t i = 0; i < rt->cfg->n_feeds; i++)
			n_feeds += api_sees(cred, rt->cfg->feeds[i].tenant);
		mp_map_key(&reply, "feeds");
		msgpack_pack_map(pk, n_feeds);
		for (size_t i = 0; i < rt->cfg->n_feeds; i++)
			if (api_sees(cred, rt->cfg->feeds[i].tenant)) {
				mp_pack_cstr(pk, rt->cfg->feeds[i].tenant);
				mp_pack_cstr(pk, rt->cfg->feeds[i].url);
			}
	}
	api_pack_server(&reply, rt->srv, rt->cfg->max_request_bytes);
	if (cred != NULL)
		api_pack_caller(&reply, cred);

	/* the caller's tenants only, and what runs for them */
	size_t n_seen = 0;
	for (size_t i = 0; i < rt->n_tenants; i++)
		n_seen += api_sees(cred, rt->tenants[i].cfg->id);
	mp_map_key(&reply, "tenants");
	msgpack_pack_array(pk, n_seen);
	for (size_t i = 0; i < rt->n_tenants; i++)
		if (api_sees(cred, rt->tenants[i].cfg->id))
			mp_pack_cstr(pk, rt->tenants[i].cfg->id);

	mp_map_key(&reply, "plugins");
	msgpack_pack_array(pk, n_plugins);
	for (size_t i = 0; i < n_plugins; i++) {
		plugin_info pi;
		memset(&pi, 0, sizeof(pi));
		registry_plugin_info(rt->plugins, i, &pi);
		mp_map e;
		mp_map_open(&e, pk);
		mp_map_str(&e, "file", pi.file);
		mp_map_str(&e, "name", pi.name);
		mp_map_str(&e, "version", pi.version);
		mp_map_bool(&e, "loaded", pi.loaded);
		mp_map_str(&e, "error", pi.error);
		mp_map_u64(&e, "projections", pi.n_projections);
		mp_map_close(&e);
	}

	size_t n_sys = sysproj_count();
	mp_map_key(&reply, "projections");
	msgpack_pack_array(pk, n_sys + n_proj + n_remote);
	for (size_t i = 0; i < n_sys + n_proj + n_remote; i++) {
		size_t          k = i - n_sys;
		const proj_def *d = i < n_sys ? sysproj_def(i)
		    : k < n_proj              ? defs[k]
		                              : regs[k - n_proj].def;
		bool            f = def_is_filter(d);
		cfg_mode        m = CFG_MODE_CONTINUOUS;
		config_projection(rt->cfg, d->id, d->name, &m);
		mp_map e;
		mp_map_open(&e, pk);
		mp_map_str(&e, "id", d->id);
		mp_map_str(&e, "name", d->name);
		mp_map_str(&e, "scope", d->scope);
		mp_map_str(&e, "kind", api_kind_name(d));
		if (f)
			mp_map_str(&e, "filter_kind",
			    api_filter_kind_name(d->filter_kind));
		mp_map_bool(&e, "remote", d->remote != NULL);
		mp_map_str(&e, "mode", api_mode_name(m));
		mp_map_bool(&e, "system", sysproj_is_system(d));
		mp_map_bool(&e, "emitting", api_def_emitting(rt, d));
		/* loaded but not run, and why (e.g. overlapping streams) */
		mp_map_str(
		    &e, "refused", registry_refused(rt->plugins, d->id, NULL));
		mp_map_close(&e);
	}

	free(defs);

	/* registrations: the caller's own (every one for an admin) */
	n_seen = 0;
	for (size_t i = 0; i < n_remote; i++)
		n_seen += api_owns(cred, &regs[i]);
	mp_map_key(&reply, "remotes");
	msgpack_pack_array(pk, n_seen);
	for (size_t i = 0; i < n_remote; i++)
		if (api_owns(cred, &regs[i]))
			api_pack_remote(&regs[i], pk);
	free(regs);

	/* plugins with isolation: process (runtime/host/hostsup.h) */
	size_t n_hosts = hostsup_count(rt->hosts);
	mp_map_key(&reply, "hosts");
	msgpack_pack_array(pk, n_hosts);
	for (size_t i = 0; i < n_hosts; i++) {
		hostsup_info hi;
		hostsup_info_get(rt->hosts, i, &hi);
		mp_map e;
		mp_map_open(&e, pk);
		mp_map_str(&e, "file", hi.file);
		mp_map_str(&e, "state", hi.state);
		mp_map_i64(&e, "pid", hi.pid);
		mp_map_u64(&e, "starts", hi.starts);
		mp_map_u64(&e, "restarts", hi.restarts);
		mp_map_str(&e, "last_exit", hi.last_exit);
		mp_map_i64(&e, "last_exit_at_ns", hi.last_exit_at_ns);
		mp_map_str(&e, "error", hi.error);
		mp_map_u64(&e, "backoff_ms", hi.backoff_ms);
		mp_map_close(&e);
	}

	n_seen = 0;
	for (size_t i = 0; i < n_procs; i++)
		n_seen += api_sees(cred, proc_tenant(procs[i]));
	mp_map_key(&reply, "processors");
	msgpack_pack_array(pk, n_seen);
	for (size_t i = 0; i < n_procs; i++) {
		proc_status st;
		size_t      n_failing, n_shown;
		bool        f;
		if (!api_sees(cred, proc_tenant(procs[i])))
			continue;
		memset(&st, 0, sizeof(st));
		proc_get_status(procs[i], &st);
		/* The array and its count from one snapshot. */
		n_failing = proc_get_failing(
		    procs[i], failing, API_STATUS_MAX_FAILING);
		n_shown = n_failing < API_STATUS_MAX_FAILING
		    ? n_failing
		    : API_STATUS_MAX_FAILING;
		f       = st.def != NULL && def_is_filter(st.def);
		char        why[300];
		const char *status = api_proc_status(&st, why, sizeof(why));
		/* a plugin call past limits.handler_timeout_ms */
		uint64_t stuck_pos = 0;
		int64_t  stuck_ms  = 0;
		bool     stuck     = st.def != NULL
		    && guard_stuck(GUARD_PROC, st.tenant, st.def->id, &stuck_pos,
		        &stuck_ms);
		if (stuck)
			snprintf(why, sizeof(why),
			    "handler stuck on event %" PRIu64 " for %" PRId64
			    " ms", stuck_pos, stuck_ms);
		cfg_mode    m      = CFG_MODE_CONTINUOUS;
		if (st.def != NULL)
			config_projection(
			    rt->cfg, st.def->id, st.def->name, &m);
		mp_map e;
		mp_map_open(&e, pk);
		mp_map_str(&e, "tenant", st.tenant);
		mp_map_str(&e, "projection", st.def ? st.def->id : NULL);
		mp_map_str(&e, "name", st.def ? st.def->name : NULL);
		mp_map_str(&e, "kind", st.def ? api_kind_name(st.def) : NULL);
		if (f)
			mp_map_str(&e, "filter_kind",
			    api_filter_kind_name(st.def->filter_kind));
		mp_map_str(&e, "state",
		    stuck ? "stuck" : proc_state_name(st.state));
		if (stuck)
			mp_map_u64(&e, "stuck_position", stuck_pos);
		mp_map_u64(&e, "position", st.position);
		mp_map_u64(&e, "events_handled", st.events_handled);
		mp_map_u64(&e, "attempts", st.attempts);
		mp_map_u64(&e, "failures", st.failures);
		mp_map_u64(&e, "retries", st.retries);
		mp_map_str(&e, "reason", st.reason);
		mp_map_i64(&e, "next_retry_ns",
		    st.state == PROC_FAILING ? st.next_retry_ns : 0);
		mp_map_bool(&e, "rebuilding", st.rebuilding);
		mp_map_u64(&e, "served_position", st.served_position);
		mp_map_u64(&e, "generation", st.generation);
		mp_map_bool(&e, "paused", st.paused);
		mp_map_bool(
		    &e, "remote", st.def != NULL && st.def->remote != NULL);
		mp_map_u64(&e, "failing_count", n_failing);
		mp_map_key(&e, "failing");
		msgpack_pack_array(pk, n_shown);
		for (size_t k = 0; k < n_shown; k++)
			api_pack_failing(pk, &failing[k]);
		/* EventStoreDB's status words (issue 8) */
		mp_map_str(&e, "mode", api_mode_name(m));
		mp_map_str(&e, "status", status);
		mp_map_str(&e, "status_reason", why);
		mp_map_double(&e, "progress", api_progress(st.position, head));
		mp_map_u64(&e, "events_processed", st.events_handled);
		mp_map_double(&e, "events_per_sec", st.events_per_sec);
		mp_map_u64(&e, "buffered_events", 0);
		mp_map_u64(&e, "partitions_cached", st.cached);
		mp_map_u64(&e, "writes_in_flight", 0);
		mp_map_bool(&e, "system", false);
		mp_map_bool(&e, "emitting", false);
		if (f) /* a code change's check (filter_validate.h) */
			fval_pack_status(rt->fval, &e, st.tenant, st.def->id);
		mp_map_close(&e);
	}
	free(failing);
	free(procs);

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
		if (truns[n_held] == NULL)
			continue;
		if (!api_sees(cred, eproj_tenant(truns[n_held]))) {
			runtime_transient_put(rt, handles[i]);
			continue;
		}
		handles[n_held++] = handles[i];
	}
	n_seen = 0;
	for (size_t i = 0; i < n_eprojs; i++)
		n_seen += api_sees(cred, eproj_tenant(rt->eprojs[i]));
	mp_map_key(&reply, "emitting_projections");
	msgpack_pack_array(pk, n_seen + n_held);
	for (size_t i = 0; i < n_eprojs; i++)
		if (api_sees(cred, eproj_tenant(rt->eprojs[i])))
			api_pack_eproj(pk, rt->eprojs[i], 0, head);
	for (size_t i = 0; i < n_held; i++) {
		api_pack_eproj(pk, truns[i], handles[i], head);
		runtime_transient_put(rt, handles[i]);
	}
	api_pack_queries(&reply, rt, cred);
	mp_map_close(&reply);
	return SL_OK;
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
void
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
	/* the processors now (valid throughout the request: its grace
	 * section); emitting runs only ever get appended */
	processor **procs = runtime_procs(rt, &n_procs);
	n_eprojs          = __atomic_load_n(&rt->n_eprojs, __ATOMIC_ACQUIRE);
	hits              = calloc(n_procs + 1, sizeof(*hits));
	ehits             = calloc(n_eprojs + 1, sizeof(*ehits));
	if (hits == NULL || ehits == NULL) {
		free(procs);
		free(hits);
		free(ehits);
		api_fail(r, SL_ENOMEM, "out of memory");
		return;
	}
	for (size_t i = 0; i < n_procs; i++) {
		processor *p = procs[i];
		if (strcmp(proc_projection_id(p), def->id) == 0
		    && (t == NULL || strcmp(proc_tenant(p), t->cfg->id) == 0)
		    && api_cred_tenant(r, proc_tenant(p)))
			hits[n++] = p;
	}
	for (size_t i = 0; i < n_eprojs; i++) {
		eproj *e = rt->eprojs[i];
		if (strcmp(eproj_id(e), def->id) == 0
		    && (t == NULL || strcmp(eproj_tenant(e), t->cfg->id) == 0)
		    && api_cred_tenant(r, eproj_tenant(e)))
			ehits[ne++] = e;
	}
	free(procs);
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
			    "%s '%s' (%s) does not run%s%s",
			    api_kind_name(def), def->name, def->id,
			    auth_all_tenants(r->cred) ? ""
			                              : " for your tenants",
			    why);
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
void
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
		mp_map e;
		mp_map_open(&e, pk);
		mp_map_str(&e, "file", pi->file);
		mp_map_str(&e, "name", pi->name);
		mp_map_str(&e, "version", pi->version);
		mp_map_bool(&e, "loaded", pi->loaded);
		mp_map_i64(&e, "loaded_at_ns", pi->loaded_at_ns);
		mp_map_u64(&e, "loads", pi->loads);
		mp_map_u64(&e, "versions_open", pi->versions_open);
		mp_map_str(&e, "error", pi->error);
		mp_map_i64(&e, "error_at_ns", pi->error_at_ns);
		mp_map_key(&e, "projections");
		msgpack_pack_array(pk, np);
		for (size_t k = 0; k < n_proj; k++) {
			const proj_def *d = defs[k];
			char            hash[17];
			if (d->owner != pi->owner)
				continue;
			snprintf(
			    hash, sizeof(hash), "%016" PRIx64, d->def_hash);
			mp_map p;
			mp_map_open(&p, pk);
			mp_map_str(&p, "id", d->id);
			mp_map_str(&p, "name", d->name);
			mp_map_u64(&p, "version", d->version);
			mp_map_str(&p, "definition", hash);
			mp_map_str(&p, "kind", api_kind_name(d));
			if (def_is_filter(d))
				mp_map_str(&p, "filter_kind",
				    api_filter_kind_name(d->filter_kind));
			mp_map_str(&p, "refused",
			    registry_refused(rt->plugins, d->id, NULL));
			mp_map_close(&p);
		}
		mp_map_close(&e);
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
void
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
	if (r->cred != NULL)
		remote_spec_set_owner(
		    spec, r->cred->name, r->cred->max_registrations);
	rc = runtime_register(r->rt, spec, r->cred, &res, err, sizeof(err));
	remote_spec_free(spec);
	if (rc != SL_OK) {
		api_fail(r, rc, "%s", err[0] != '\0' ? err : sl_strerror(rc));
		return;
	}
	snprintf(hash, sizeof(hash), "%016" PRIx64, res.def->def_hash);
	mp_map reply;
	mp_reply_ok_open(&reply, &r->pk);
	mp_map_str(&reply, "url", res.url);
	mp_map_u64(&reply, "session", res.session);
	mp_map_u64(&reply, "window", res.window);
	mp_map_u64(&reply, "keepalive_ms", res.keepalive_ms);
	mp_map_u64(&reply, "timeout_ms", res.timeout_ms);
	mp_map_u64(&reply, "protocol", res.protocol);
	if (res.protocol >= 2) /* a protocol 1 reply stays as it was */
		mp_map_u64(&reply, "batch", res.batch);
	mp_map_str(&reply, "registration", api_reg_kind_name(res.kind));
	mp_map_str(&reply, "definition", hash);
	mp_map_close(&reply);
	api_send(r);
}
