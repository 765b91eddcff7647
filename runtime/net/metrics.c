/*
 * The Prometheus text endpoint (endpoints.metrics, off by default), on
 * NNG's own HTTP server: the log's counters and histograms, the LMDB
 * environments' map use, and a rendering of the status reply (processors,
 * plugins, remote processors, the API's connections). Names and units
 * follow Prometheus' conventions (docs/operations.md lists them).
 */
#include "metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>
#include <nng/nng.h>
#include <nng/supplemental/http/http.h>

#include <sluice/errors.h>

#include "api.h"
#include "config.h"
#include "event.h"
#include "listen.h"
#include "log.h"
#include "mp.h"
#include "plugins.h"
#include "publisher.h"
#include "readmodels.h"
#include "remote.h"
#include "runtime.h"
#include "store.h"

struct metrics {
	runtime         *rt;
	nng_http_server *srv;
	nng_url         *url;
	char             bound[256]; /* the URL with the port bound */
};

/* ---- the text, in a growing buffer ---- */

typedef struct text {
	char  *buf;
	size_t len, cap;
	bool   oom;
} text;

static void tx_printf(text *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
tx_printf(text *t, const char *fmt, ...)
{
	for (int round = 0; round < 2 && !t->oom; round++) {
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(t->buf ? t->buf + t->len : NULL,
		    t->buf ? t->cap - t->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0) {
			t->oom = true;
			return;
		}
		if (t->buf != NULL && t->len + (size_t) n < t->cap) {
			t->len += (size_t) n;
			return;
		}
		size_t ncap = t->cap ? t->cap * 2 : 16384;
		while (ncap < t->len + (size_t) n + 1)
			ncap *= 2;
		char *nb = realloc(t->buf, ncap);
		if (nb == NULL) {
			t->oom = true;
			return;
		}
		t->buf = nb;
		t->cap = ncap;
	}
}

/* A label value, escaped as the text format wants (\\, \", \n). */
static void
tx_label(text *t, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (c == '\\' || c == '"')
			tx_printf(t, "\\%c", c);
		else if (c == '\n')
			tx_printf(t, "\\n");
		else
			tx_printf(t, "%c", c);
	}
}

static void
tx_head(text *t, const char *name, const char *type, const char *help)
{
	tx_printf(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{k="v",...} value: labels as pairs of (key, msgpack string). */
static void
tx_sample(text *t, const char *name, const char *const *keys,
    const msgpack_object *const *vals, size_t n, double v)
{
	tx_printf(t, "%s", name);
	for (size_t i = 0; i < n; i++) {
		tx_printf(t, "%s%s=\"", i == 0 ? "{" : ",", keys[i]);
		if (vals[i] != NULL && vals[i]->type == MSGPACK_OBJECT_STR)
			tx_label(t, vals[i]->via.str.ptr, vals[i]->via.str.size);
		tx_printf(t, "\"");
	}
	tx_printf(t, "%s %.12g\n", n > 0 ? "}" : "", v);
}

static void
tx_one(text *t, const char *name, const char *type, const char *help,
    double v)
{
	tx_head(t, name, type, help);
	tx_sample(t, name, NULL, NULL, 0, v);
}

/* One histogram's samples; labels: "" or 'k="v",...' put before le. */
static void
tx_hist_samples(text *t, const char *name, const char *labels,
    const hist *h, double scale)
{
	uint64_t    cum = 0;
	const char *sep = labels[0] != '\0' ? "," : "";
	for (size_t i = 0; i < h->n_bounds; i++) {
		cum += h->counts[i];
		tx_printf(t, "%s_bucket{%s%sle=\"%.12g\"} %" PRIu64 "\n", name,
		    labels, sep, (double) h->bounds[i] * scale, cum);
	}
	cum += h->counts[h->n_bounds];
	tx_printf(t, "%s_bucket{%s%sle=\"+Inf\"} %" PRIu64 "\n", name, labels,
	    sep, cum);
	const char *open = labels[0] != '\0' ? "{" : "";
	const char *shut = labels[0] != '\0' ? "}" : "";
	tx_printf(t, "%s_sum%s%s%s %.12g\n%s_count%s%s%s %" PRIu64 "\n", name,
	    open, labels, shut, (double) h->sum * scale, name, open, labels,
	    shut, cum);
}

static void
tx_hist(text *t, const char *name, const char *help, const hist *h,
    double scale)
{
	tx_head(t, name, "histogram", help);
	tx_hist_samples(t, name, "", h, scale);
}

/* The remote processors' call latency, per registration. */
static void
tx_remote_latency(text *t, runtime *rt)
{
	remote_info *all;
	size_t       n;
	if (remotes_list(rt->remotes, &all, &n) != SL_OK) {
		t->oom = true;
		return;
	}
	if (n > 0)
		tx_head(t, "sluice_remote_call_duration_seconds", "histogram",
		    "From sending a call to a remote processor to its "
		    "answer.");
	for (size_t i = 0; i < n; i++) {
		const remote_info *ri = &all[i];
		text               lb = { 0 };
		tx_printf(&lb, "id=\"");
		tx_label(&lb, ri->def->id, strlen(ri->def->id));
		tx_printf(&lb, "\",name=\"");
		tx_label(&lb, ri->def->name, strlen(ri->def->name));
		tx_printf(&lb, "\"");
		if (lb.oom)
			t->oom = true;
		else
			tx_hist_samples(t,
			    "sluice_remote_call_duration_seconds", lb.buf,
			    &ri->call_latency, 1e-9);
		free(lb.buf);
	}
	free(all);
}

/* ---- from the status reply ---- */

/* A number of a status entry; a boolean is 1 or 0. */
static double
num(const msgpack_object *map, const char *key)
{
	const msgpack_object *o = mp_get(map, key);
	if (o == NULL)
		return 0;
	switch (o->type) {
	case MSGPACK_OBJECT_POSITIVE_INTEGER: return (double) o->via.u64;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER: return (double) o->via.i64;
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64: return o->via.f64;
	case MSGPACK_OBJECT_BOOLEAN: return o->via.boolean ? 1 : 0;
	default: return 0;
	}
}

/* One metric over an array of status entries, labelled by keys. */
typedef struct column {
	const char *name, *type, *help;
	const char *field; /* the entry's number, or NULL: by fn */
	double (*fn)(const msgpack_object *e, void *arg);
} column;

static void
tx_columns(text *t, const msgpack_object *arr, const char *const *keys,
    size_t n_keys, const column *cols, size_t n_cols, void *arg)
{
	if (arr == NULL || arr->type != MSGPACK_OBJECT_ARRAY
	    || arr->via.array.size == 0)
		return;
	for (size_t c = 0; c < n_cols; c++) {
		tx_head(t, cols[c].name, cols[c].type, cols[c].help);
		for (uint32_t i = 0; i < arr->via.array.size; i++) {
			const msgpack_object *e = &arr->via.array.ptr[i];
			const msgpack_object *vals[4];
			if (e->type != MSGPACK_OBJECT_MAP)
				continue;
			for (size_t k = 0; k < n_keys && k < 4; k++)
				vals[k] = mp_get(e, keys[k]);
			double v = cols[c].field != NULL
			    ? num(e, cols[c].field)
			    : cols[c].fn(e, arg);
			tx_sample(t, cols[c].name, keys, vals, n_keys, v);
		}
	}
}

typedef struct lag_ctx {
	uint64_t      head;
	store_reader *rd;
	int64_t       now_ns;
} lag_ctx;

static double
lag_events(const msgpack_object *e, void *arg)
{
	const lag_ctx *l   = arg;
	double         pos = num(e, "position");
	return (double) l->head > pos ? (double) l->head - pos : 0;
}

/* Seconds since the oldest event the processor has not handled occurred
 * (0 when it is caught up). */
static double
lag_seconds(const msgpack_object *e, void *arg)
{
	const lag_ctx *l   = arg;
	uint64_t       pos = (uint64_t) num(e, "position");
	const void    *data;
	size_t         len;
	if (pos >= l->head || l->rd == NULL
	    || store_reader_get(l->rd, pos, &data, &len) != SL_OK)
		return 0;
	msgpack_zone zone;
	ev_view      v;
	double       s = 0;
	if (!msgpack_zone_init(&zone, 1024))
		return 0;
	if (ev_decode(data, len, pos, &zone, &v) == SL_OK
	    && l->now_ns > v.occurred_ns)
		s = (double) (l->now_ns - v.occurred_ns) / 1e9;
	msgpack_zone_destroy(&zone);
	return s;
}

static double
has_error(const msgpack_object *e, void *arg)
{
	(void) arg;
	const msgpack_object *o = mp_get(e, "error");
	return o != NULL && o->type == MSGPACK_OBJECT_STR;
}

static double
progress_ratio(const msgpack_object *e, void *arg)
{
	(void) arg;
	return num(e, "progress") / 100.0;
}

static void
render_status(text *t, runtime *rt, const msgpack_object *st)
{
	const msgpack_object *api = mp_get(st, "api");
	uint64_t              head = (uint64_t) num(st, "head");
	tx_one(t, "sluice_log_head_position", "gauge",
	    "The log's next position (events in the log).", (double) head);
	tx_one(t, "sluice_uptime_seconds", "gauge",
	    "Seconds since the daemon started.", num(st, "uptime_ms") / 1000);
	if (api != NULL) {
		tx_one(t, "sluice_api_connections", "gauge",
		    "Open API connections.", num(api, "connections"));
		tx_one(t, "sluice_api_connections_refused_total", "counter",
		    "API connections refused (limits.max_connections).",
		    num(api, "connections_refused"));
		tx_one(t, "sluice_api_idle_closed_total", "counter",
		    "API connections closed idle (limits.idle_timeout_ms).",
		    num(api, "idle_closed"));
		tx_one(t, "sluice_api_requests_in_flight", "gauge",
		    "API requests being handled.", num(api, "in_flight"));
	}

	static const char *const pkeys[] = { "file", "name" };
	static const column      pcols[] = {
                { "sluice_plugin_loaded", "gauge",
                    "1 when the plugin file is loaded.", "loaded", NULL },
                { "sluice_plugin_error", "gauge",
                    "1 when the plugin file's last load failed.", NULL,
                    has_error },
	};
	tx_columns(t, mp_get(st, "plugins"), pkeys, 2, pcols, 2, NULL);

	lag_ctx lag = { .head = head, .now_ns = ev_now_ns() };
	if (store_reader_open(rt->store, &lag.rd) != SL_OK)
		lag.rd = NULL;
	static const char *const keys[] = { "tenant", "name", "projection",
		"kind" };
	const column cols[] = {
		{ "sluice_processor_position", "gauge",
		    "The next log position the processor handles.", "position",
		    NULL },
		{ "sluice_processor_lag_events", "gauge",
		    "Events in the log the processor has not handled yet.",
		    NULL, lag_events },
		{ "sluice_processor_lag_seconds", "gauge",
		    "Seconds since the oldest event not handled yet occurred.",
		    NULL, lag_seconds },
		{ "sluice_processor_events_processed_total", "counter",
		    "Events handled since the daemon started.",
		    "events_processed", NULL },
		{ "sluice_processor_events_per_second", "gauge",
		    "The processor's recent rate.", "events_per_sec", NULL },
		{ "sluice_processor_failing_units", "gauge",
		    "Keys (or partitions) failing now.", "failing_count",
		    NULL },
		{ "sluice_processor_retry_attempts", "gauge",
		    "Attempts at the event the processor is retrying.",
		    "attempts", NULL },
		{ "sluice_processor_handler_failures_total", "counter",
		    "Handler calls that failed (each attempt) since start.",
		    "failures", NULL },
		{ "sluice_processor_retries_total", "counter",
		    "Retries of failing keys or partitions since start.",
		    "retries", NULL },
		{ "sluice_processor_rebuilding", "gauge",
		    "1 while the processor rebuilds from the start.",
		    "rebuilding", NULL },
		{ "sluice_processor_progress_ratio", "gauge",
		    "Position over the log's head, 0..1.", NULL,
		    progress_ratio },
		{ "sluice_processor_paused", "gauge",
		    "1 when the processor is paused.", "paused", NULL },
	};
	tx_columns(t, mp_get(st, "processors"), keys, 4, cols,
	    sizeof(cols) / sizeof(cols[0]), &lag);
	static const char *const ekeys[] = { "tenant", "name", "projection" };
	const column             ecols[] = {
                { "sluice_emitting_projection_position", "gauge",
                    "The next log position the emitting projection handles.",
                    "position", NULL },
                { "sluice_emitting_projection_lag_events", "gauge",
                    "Events in the log it has not handled yet.", NULL,
                    lag_events },
                { "sluice_emitting_projection_lag_seconds", "gauge",
                    "Seconds since the oldest event not handled yet "
                    "occurred.",
                    NULL, lag_seconds },
                { "sluice_emitting_projection_events_processed_total",
                    "counter", "Events handled since the daemon started.",
                    "events_processed", NULL },
                { "sluice_emitting_projection_emitted_total", "counter",
                    "Events it emitted (links included).", "emitted", NULL },
                { "sluice_emitting_projection_failing_units", "gauge",
                    "Partitions failing now.", "failing_count", NULL },
                { "sluice_emitting_projection_handler_failures_total",
                    "counter",
                    "Handler calls that failed (each attempt) since start.",
                    "failures", NULL },
                { "sluice_emitting_projection_retries_total", "counter",
                    "Retries of failing keys since start.", "retries",
                    NULL },
	};
	tx_columns(t, mp_get(st, "emitting_projections"), ekeys, 3, ecols,
	    sizeof(ecols) / sizeof(ecols[0]), &lag);
	if (lag.rd != NULL)
		store_reader_close(lag.rd);

	static const char *const rkeys[] = { "id", "name" };
	static const column      rcols[] = {
                { "sluice_remote_connected", "gauge",
                    "1 while the remote processor's client is connected.",
                    "connected", NULL },
                { "sluice_remote_calls_in_flight", "gauge",
                    "Calls sent and not answered yet.", "in_flight", NULL },
                { "sluice_remote_calls_total", "counter",
                    "Calls made to the remote processor.", "calls", NULL },
                { "sluice_remote_calls_failed_total", "counter",
                    "Calls that failed (timeout, error, disconnect).",
                    "failed_calls", NULL },
                { "sluice_remote_connects_total", "counter",
                    "Times a client connected for it.", "connects", NULL },
	};
	tx_columns(t, mp_get(st, "remotes"), rkeys, 2, rcols,
	    sizeof(rcols) / sizeof(rcols[0]), NULL);
	tx_remote_latency(t, rt);
}

/* An LMDB figure: the log's (events_value) and each tenant's read
 * models' (used or size, by rm_map_use). */
static void
tx_map_use(text *t, runtime *rt, const char *name, const char *help,
    uint64_t events_value, bool used)
{
	tx_head(t, name, "gauge", help);
	tx_printf(t, "%s{environment=\"events\",tenant=\"\"} %" PRIu64 "\n",
	    name, events_value);
	for (size_t i = 0; i < rt->n_tenants; i++) {
		uint64_t size, in_use;
		const char *id = rt->tenants[i].cfg->id;
		rm_map_use(rt->tenants[i].rm, &size, &in_use);
		tx_printf(t, "%s{environment=\"read_models\",tenant=\"", name);
		tx_label(t, id, strlen(id));
		tx_printf(t, "\"} %" PRIu64 "\n", used ? in_use : size);
	}
}

/* ---- the whole page ---- */

static void
render(metrics *m, text *t)
{
	runtime    *rt = m->rt;
	store_stats ss;
	store_stats_get(rt->store, &ss);

	tx_head(t, "sluice_build_info", "gauge", "The daemon's version.");
	tx_printf(t, "sluice_build_info{version=\"%s\"} 1\n", SLUICE_VERSION);
	tx_one(t, "sluice_commits_total", "counter",
	    "Client commits (and stream deletions) acknowledged.",
	    (double) ss.commits_ok);
	tx_one(t, "sluice_commits_refused_total", "counter",
	    "Client commits refused (revision, ownership, storage).",
	    (double) ss.commits_refused);
	tx_one(t, "sluice_events_appended_total", "counter",
	    "Events written to the log: committed and emitted.",
	    (double) ss.events_appended);
	tx_one(t, "sluice_write_transactions_total", "counter",
	    "Write transactions of the log (group commit).",
	    (double) ss.txns);
	tx_hist(t, "sluice_commit_duration_seconds",
	    "From a commit's arrival at the writer's queue to its ack.",
	    &ss.commit_latency, 1e-9);
	tx_hist(t, "sluice_group_commit_events",
	    "Events per write transaction of the log.", &ss.group_events, 1);
	uint64_t loads, load_errors;
	registry_load_counts(rt->plugins, &loads, &load_errors);
	tx_one(t, "sluice_plugin_loads_total", "counter",
	    "Plugin files loaded or reloaded since the daemon started.",
	    (double) loads);
	tx_one(t, "sluice_plugin_load_errors_total", "counter",
	    "Plugin loads refused (bad ABI, missing symbol, init failed ...).",
	    (double) load_errors);
	if (rt->pub != NULL) {
		uint64_t gap_reads, gap_events;
		pub_gaps(rt->pub, &gap_reads, &gap_events);
		tx_one(t, "sluice_feed_messages_total", "counter",
		    "Events published on the live feed (a message carries "
		    "those of one write).",
		    (double) pub_sent(rt->pub));
		tx_one(t, "sluice_feed_gap_reads_total", "counter",
		    "Subscribers' reads that filled a gap of the feed "
		    "(messages it dropped or sent while they were away).",
		    (double) gap_reads);
		tx_one(t, "sluice_feed_dropped_events_total", "counter",
		    "Events the feed lost for a subscriber, read back by it "
		    "(counted by each subscriber that noticed).",
		    (double) gap_events);
	}

	tx_map_use(t, rt, "sluice_lmdb_map_size_bytes",
	    "An LMDB environment's map size.", ss.map_size, false);
	tx_map_use(t, rt, "sluice_lmdb_map_used_bytes",
	    "Bytes of an LMDB environment's map in use (its last page).",
	    ss.map_used, true);

	/* the rest, from the status reply */
	msgpack_sbuffer sb;
	msgpack_packer  pk;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	if (api_status_pack(rt, NULL, &pk) == SL_OK && sb.data != NULL) {
		msgpack_unpacked up;
		msgpack_unpacked_init(&up);
		if (msgpack_unpack_next(&up, sb.data, sb.size, NULL)
		    == MSGPACK_UNPACK_SUCCESS)
			render_status(t, rt, &up.data);
		msgpack_unpacked_destroy(&up);
	} else {
		t->oom = true;
	}
	msgpack_sbuffer_destroy(&sb);
}

static void
reply(nng_aio *aio, uint16_t code, const char *body, size_t len)
{
	nng_http_res *res;
	int           rv = nng_http_res_alloc(&res);
	if (rv == 0)
		rv = nng_http_res_set_status(res, code);
	if (rv == 0)
		rv = nng_http_res_set_header(res, "Content-Type",
		    "text/plain; version=0.0.4; charset=utf-8");
	if (rv == 0)
		rv = nng_http_res_copy_data(res, body, len);
	if (rv != 0) {
		if (res != NULL)
			nng_http_res_free(res);
		nng_aio_finish(aio, rv);
		return;
	}
	nng_aio_set_output(aio, 0, res);
	nng_aio_finish(aio, 0);
}

static void
handle(nng_aio *aio)
{
	nng_http_handler *h = nng_aio_get_input(aio, 1);
	metrics          *m = nng_http_handler_get_data(h);
	text              t = { 0 };
	/* status and the registrations' definitions: valid throughout */
	unsigned side = grace_enter(&m->rt->grace);
	render(m, &t);
	grace_leave(&m->rt->grace, side);
	if (t.oom || t.buf == NULL) {
		static const char msg[] = "out of memory\n";
		reply(aio, NNG_HTTP_STATUS_INTERNAL_SERVER_ERROR, msg,
		    sizeof(msg) - 1);
	} else {
		reply(aio, NNG_HTTP_STATUS_OK, t.buf, t.len);
	}
	free(t.buf);
}

int
metrics_start(runtime *rt, const char *url, metrics **out)
{
	*out         = NULL;
	metrics *m   = calloc(1, sizeof(*m));
	int      rv  = 0;
	nng_http_handler *h = NULL;
	if (m == NULL)
		return SL_ENOMEM;
	m->rt = rt;
	if ((rv = nng_url_parse(&m->url, url)) != 0
	    || (rv = nng_http_server_hold(&m->srv, m->url)) != 0
	    || (rv = nng_http_handler_alloc(&h, m->url->u_path, handle)) != 0
	    || (rv = nng_http_handler_set_method(h, "GET")) != 0
	    || (rv = nng_http_handler_set_data(h, m, NULL)) != 0
	    || (rv = nng_http_server_add_handler(m->srv, h)) != 0) {
		if (h != NULL)
			nng_http_handler_free(h);
		log_error("metrics", "cannot serve %s: %s", url,
		    nng_strerror(rv));
		metrics_stop(m);
		return SL_ENET;
	}
	if ((rv = nng_http_server_start(m->srv)) != 0) {
		log_error("metrics", "cannot listen on %s: %s", url,
		    nng_strerror(rv));
		metrics_stop(m);
		return SL_ENET;
	}
	net_http_bound(m->srv, m->url, "http", "", m->bound, sizeof(m->bound));
	log_info("metrics", "serving metrics on %s", m->bound);
	*out = m;
	return SL_OK;
}

const char *
metrics_url(const metrics *m)
{
	return m != NULL ? m->bound : NULL;
}

void
metrics_stop(metrics *m)
{
	if (m == NULL)
		return;
	if (m->srv != NULL) {
		nng_http_server_stop(m->srv);
		nng_http_server_release(m->srv);
	}
	if (m->url != NULL)
		nng_url_free(m->url);
	free(m);
}
