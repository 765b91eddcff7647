/*
 * Proves the API of EventStoreDB's projection model against a real sluiced
 * (the build's plugins, plain NNG req sockets, raw msgpack requests):
 * reads resolving the system projections' links, one-time queries equal to
 * the read models, transient runs (poll, close, ended by a disconnect,
 * capped), start / stop of a system projection, the status fields, what
 * run_projections none and system run (and an operator's start / stop
 * across restarts), an emitting plugin projection (get_one / get_all from
 * the log env, EOWNED, a refused overlapping claim in status, unresolved
 * links after its reset, dropped by hot reload), and a clear error for
 * every malformed request while the daemon goes on serving.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>
#include <msgpack.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include <sluice/errors.h>

#include "daemon_testutil.h"
#include "json.h"
#include "mp.h"

#define TENANT        "acme"
#define PROJECTION_ID "8a2f3c1e-5b7d-4e9a-9c11-2d4e6f8a0b13"
#define PROJECTION    "account_details"
#define FILTER        "customer events" /* plugins/account_filters.c */
#define WAIT_MS       20000

static char  dir[4096], cfg_path[4200], log_path[4200], url[4200];
static pid_t daemon_pid = -1;
/* the position after the last event this test committed */
static uint64_t client_head;

static void
cleanup(void)
{
	dt_kill_and_reap(&daemon_pid);
}

#define FAIL(...) DT_FAIL_LOG(log_path, __VA_ARGS__)

/* ---- raw requests on plain NNG req sockets ---- */

static nng_socket
conn_open(void)
{
	nng_socket s;
	CHECK(nng_req0_open(&s) == 0);
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 30000);
	nng_socket_set_ms(s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	nng_socket_set_size(s, NNG_OPT_RECVMAXSZ, 0);
	/* In the background: a daemon that is still starting is dialled
	 * again, and the first request waits for it. */
	CHECK(nng_dial(s, url, NULL, NNG_FLAG_NONBLOCK) == 0);
	return s;
}

/*
 * Send the request given as JSON text (v is added), with printf
 * arguments; return the reply as JSON (caller decrefs).
 */
static json_t *call(nng_socket s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static json_t *
call(nng_socket s, const char *fmt, ...)
{
	char            text[8192];
	va_list         ap;
	json_error_t    je;
	msgpack_sbuffer sb;
	msgpack_packer  pk;
	nng_msg        *msg;
	int             rv;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	json_t *req = json_loads(text, 0, &je);
	if (req == NULL)
		FAIL("bad request JSON in the test: %s (%s)", text, je.text);
	json_object_set_new(req, "v", json_integer(SL_PROTOCOL_VERSION));
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	CHECK_EQ(json_to_mp(req, &pk), SL_OK);
	json_decref(req);
	if ((rv = nng_send(s, sb.data, sb.size, 0)) != 0)
		FAIL("send %s: %s", text, nng_strerror(rv));
	msgpack_sbuffer_destroy(&sb);
	if ((rv = nng_recvmsg(s, &msg, 0)) != 0)
		FAIL("no reply to %s: %s", text, nng_strerror(rv));
	msgpack_unpacked up;
	msgpack_unpacked_init(&up);
	size_t off = 0;
	if (msgpack_unpack_next(&up, nng_msg_body(msg), nng_msg_len(msg), &off)
	    != MSGPACK_UNPACK_SUCCESS)
		FAIL("reply to %s is not msgpack", text);
	json_t *rep = mp_to_json(&up.data);
	CHECK(rep != NULL);
	msgpack_unpacked_destroy(&up);
	nng_msg_free(msg);
	return rep;
}

static bool
is_ok(const json_t *rep)
{
	return json_is_true(json_object_get(rep, "ok"));
}

static const char *
jstr(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static long long
jint(const json_t *o, const char *k)
{
	return (long long) json_integer_value(json_object_get(o, k));
}

/* An ok reply, or the test fails naming the request. */
static json_t *
ok(json_t *rep, const char *what)
{
	if (!is_ok(rep)) {
		char *t = json_dumps(rep, JSON_COMPACT);
		FAIL("%s: want ok, got %s", what, t);
	}
	return rep;
}

/* An error reply with code `code` and a message; freed here. */
static void
expect_err(json_t *rep, int code, const char *what)
{
	char *t = json_dumps(rep, JSON_COMPACT);
	if (is_ok(rep) || jint(rep, "code") != code
	    || jstr(rep, "error") == NULL
	    || strcmp(jstr(rep, "error"), sl_errname(code)) != 0
	    || jstr(rep, "message") == NULL
	    || strlen(jstr(rep, "message")) == 0)
		FAIL("%s: want %s, got %s", what, sl_errname(code), t);
	free(t);
	json_decref(rep);
}

/* ---- the daemon ---- */

static void
daemon_start(void)
{
	daemon_pid  = dt_daemon_spawn(cfg_path, log_path);
	int64_t end = dt_now_ms() + WAIT_MS;
	for (;;) {
		struct stat sb;
		if (stat(url + 6, &sb) == 0)
			break;
		if (dt_now_ms() > end)
			FAIL("sluiced did not open %s", url);
		dt_sleep_ms(20);
	}
	nng_socket s = conn_open();
	for (;;) {
		json_t *st = call(s, "{\"op\":\"status\"}");
		bool    up = is_ok(st);
		json_decref(st);
		if (up)
			break;
		if (dt_now_ms() > end)
			FAIL("sluiced does not answer status");
		dt_sleep_ms(20);
	}
	nng_close(s);
}

static void
daemon_stop(void)
{
	int status;
	kill(daemon_pid, SIGTERM);
	if (!dt_wait_exit(daemon_pid, 15000, &status))
		FAIL("sluiced did not stop on SIGTERM");
	daemon_pid = -1;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		FAIL("sluiced exited with status %d", status);
}

/* (Re)write the config in dir: the plugin directory (NULL: the build's
 * plugins), and extra yaml. */
static void
write_config(const char *plugin_dir, const char *extra_yaml)
{
	char text[32768];
	snprintf(text, sizeof(text),
	    "data_dir: %s/data\n"
	    "plugin_dir: %s\n"
	    "log_level: info\n"
	    "endpoints:\n"
	    "  api: %s\n"
	    "  pub: ipc://%s/pub.ipc\n"
	    "event_store:\n"
	    "  map_size: 64MiB\n"
	    "  sync: false\n"
	    "tenants:\n"
	    "  - id: " TENANT "\n"
	    "    read_models:\n"
	    "      map_size: 32MiB\n"
	    "%s",
	    dir, plugin_dir != NULL ? plugin_dir : SL_PLUGIN_DIR, url, dir,
	    extra_yaml);
	tu_write_file(cfg_path, text);
}

/* A data dir of its own (sub of the test's temp dir), the plugin
 * directory (NULL: the build's plugins), and extra yaml. */
static void
setup_in(const char *name, const char *plugin_dir, const char *extra_yaml)
{
	snprintf(dir, sizeof(dir), "%s/%s", tu_tmpdir(), name);
	CHECK(mkdir(dir, 0755) == 0);
	snprintf(cfg_path, sizeof(cfg_path), "%s/resources.yaml", dir);
	snprintf(log_path, sizeof(log_path), "%s/sluiced.log", dir);
	snprintf(url, sizeof(url), "ipc://%s/api.ipc", dir);
	write_config(plugin_dir, extra_yaml);
}

static void
setup(const char *name, const char *extra_yaml)
{
	setup_in(name, NULL, extra_yaml);
}

/* ---- helpers over the API ---- */

static uint64_t
commit(nng_socket s, const char *stream, const char *type, const char *content,
    const char *corr)
{
	char meta[256] = "{}";
	if (corr != NULL)
		snprintf(
		    meta, sizeof(meta), "{\"$correlationId\":\"%s\"}", corr);
	json_t  *r = ok(call(s,
	                    "{\"op\":\"commit\",\"tenant\":\"" TENANT
	                    "\",\"stream\":\"%s\",\"events\":[{\"type\":"
	                     "\"%s\",\"content\":%s,\"metadata\":%s}]}",
	                    stream, type, content, meta),
	     "commit");
	uint64_t p = (uint64_t) jint(r, "last_position");
	json_decref(r);
	client_head = p + 1;
	return p;
}

static json_t *
status(nng_socket s)
{
	return ok(call(s, "{\"op\":\"status\"}"), "status");
}

/* The entry of name in status's emitting_projections (not transient). */
static json_t *
eproj_of(json_t *st, const char *name)
{
	size_t  i;
	json_t *e;
	json_array_foreach(json_object_get(st, "emitting_projections"), i, e)
	{
		if (json_is_false(json_object_get(e, "transient"))
		    && jstr(e, "name") != NULL
		    && strcmp(jstr(e, "name"), name) == 0)
			return e;
	}
	return NULL;
}

static json_t *
proc_of(json_t *st, const char *id)
{
	size_t  i;
	json_t *p;
	json_array_foreach(json_object_get(st, "processors"), i, p)
	{
		if (jstr(p, "projection") != NULL
		    && strcmp(jstr(p, "projection"), id) == 0)
			return p;
	}
	return NULL;
}

/*
 * Wait until every processor is at the head and every running emitting
 * projection's committed checkpoint is past the last client event: what
 * it wrote for them is durable with it. (Its own links come after; it
 * skips them without a checkpoint of their own, so it need not reach the
 * head.)
 */
static void
wait_caught_up(nng_socket s)
{
	int64_t end = dt_now_ms() + WAIT_MS;
	for (;;) {
		json_t   *st   = status(s);
		long long head = jint(st, "head");
		bool      all  = true;
		size_t    i;
		json_t   *e;
		json_array_foreach(
		    json_object_get(st, "emitting_projections"), i, e)
		{
			if (strcmp(jstr(e, "status"), "running") == 0
			    && (uint64_t) jint(e, "position") < client_head)
				all = false;
		}
		json_array_foreach(json_object_get(st, "processors"), i, e)
		{
			if (jint(e, "position") != head)
				all = false;
		}
		if (!all && dt_now_ms() > end) {
			char *t = json_dumps(st, JSON_INDENT(1));
			FAIL("projections did not catch up with the head:\n%s",
			    t);
		}
		json_decref(st);
		if (all)
			return;
		dt_sleep_ms(20);
	}
}

/* Read a stream (resolving links or not): the reply's events. */
static json_t *
read_stream(nng_socket s, const char *stream, bool resolve)
{
	json_t *r  = ok(call(s,
	                    "{\"op\":\"read\",\"tenant\":\"" TENANT
	                    "\",\"stream\":\"%s\",\"resolve_links\":%s}",
	                    stream, resolve ? "true" : "false"),
	     stream);
	json_t *ev = json_incref(json_object_get(r, "events"));
	json_decref(r);
	return ev;
}

/* The number of events in a stream (links not resolved). */
static size_t
stream_size(nng_socket s, const char *stream)
{
	json_t *evs = read_stream(s, stream, false);
	size_t  n   = json_array_size(evs);
	json_decref(evs);
	return n;
}

/* One expected link: the target (stream, revision) at link revision i. */
typedef struct want_link {
	const char *stream;
	uint64_t    revision;
	const char *type;
} want_link;

/* stream holds exactly these links, resolved and unresolved. */
static void
check_links(nng_socket s, const char *stream, const want_link *w, size_t n)
{
	json_t *raw = read_stream(s, stream, false);
	json_t *res = read_stream(s, stream, true);
	if (json_array_size(raw) != n || json_array_size(res) != n)
		FAIL("%s: %zu / %zu events, want %zu", stream,
		    json_array_size(raw), json_array_size(res), n);
	for (size_t i = 0; i < n; i++) {
		json_t *l = json_array_get(raw, i),
		       *t = json_array_get(res, i);
		char data[600];
		snprintf(data, sizeof(data), "%llu@%s",
		    (unsigned long long) w[i].revision, w[i].stream);
		/* as stored: a link event, content "N@stream" */
		CHECK_STREQ(jstr(l, "type"), "$>");
		CHECK_STREQ(jstr(l, "stream"), stream);
		CHECK_EQ(jint(l, "revision"), i);
		CHECK(json_is_string(json_object_get(l, "content")));
		CHECK_STREQ(jstr(l, "content"), data);
		CHECK(json_object_get(l, "link") == NULL);
		/* resolved: the target, with the link's own place */
		CHECK_STREQ(jstr(t, "stream"), w[i].stream);
		CHECK_EQ(jint(t, "revision"), w[i].revision);
		CHECK_STREQ(jstr(t, "type"), w[i].type);
		CHECK(json_is_object(json_object_get(t, "content")));
		json_t *lk = json_object_get(t, "link");
		CHECK(json_is_object(lk));
		CHECK_EQ(jint(lk, "position"), jint(l, "position"));
		CHECK_STREQ(jstr(lk, "stream"), stream);
		CHECK_EQ(jint(lk, "revision"), i);
		CHECK(json_object_get(t, "unresolved") == NULL);
	}
	json_decref(raw);
	json_decref(res);
}

/* get_all's items as [{key, state}] (one page: the test has few). */
static json_t *
get_all(nng_socket s)
{
	json_t *r = ok(call(s,
	                   "{\"op\":\"get_all\",\"tenant\":\"" TENANT
	                   "\",\"projection\":\"" PROJECTION "\"}"),
	    "get_all");
	CHECK(json_is_false(json_object_get(r, "more")));
	json_t *items = json_incref(json_object_get(r, "items"));
	json_decref(r);
	return items;
}

/* The {key, state} pairs of a query's states (result dropped). */
static json_t *
key_states(json_t *states)
{
	json_t *out = json_array();
	size_t  i;
	json_t *e;
	json_array_foreach(states, i, e)
	{
		json_t *o = json_object();
		json_object_set(o, "key", json_object_get(e, "key"));
		json_object_set(o, "state", json_object_get(e, "state"));
		json_array_append_new(out, o);
	}
	return out;
}

static void
check_equal(json_t *a, json_t *b, const char *what)
{
	if (!json_equal(a, b)) {
		char *ta = json_dumps(a, JSON_COMPACT);
		char *tb = json_dumps(b, JSON_COMPACT);
		FAIL("%s differ:\n  %s\n  %s", what, ta, tb);
	}
}

/* ---- scenario 1: run_projections all, standard projections started ---- */

static void
fill_log(nng_socket s)
{
	commit(s, "account-1", "DebitAccountOpened",
	    "{\"account_id\":\"account-1\",\"name\":\"Main\","
	    "\"customer_id\":\"c9\"}",
	    "corr-1");
	commit(s, "account-1", "DebitPerformed",
	    "{\"amount\":100,\"customer_id\":\"c9\"}", "corr-1");
	commit(s, "account-2", "DebitAccountOpened",
	    "{\"account_id\":\"account-2\",\"name\":\"Savings\","
	    "\"customer_id\":\"c9\"}",
	    "corr-2");
	commit(s, "customer-9", "CustomerRegistered",
	    "{\"account\":{\"id\":\"account-1\"},\"name\":\"Ada\","
	    "\"customer_id\":\"c9\"}",
	    "corr-1");
	commit(s, "account-1", "DebitPerformed",
	    "{\"amount\":23,\"customer_id\":\"c9\"}", NULL);
	commit(s, "account-2", "WithdrawalPerformed",
	    "{\"account_id\":\"account-2\",\"amount\":5,"
	    "\"customer_id\":\"c9\"}",
	    "corr-2");
	commit(s, "single", "Lonely", "{}", NULL);
}

/* fill_log's events as link targets */
#define OPENED_1                                                              \
	{                                                                     \
		"account-1", 0, "DebitAccountOpened"                          \
	}
#define DEBIT_1A                                                              \
	{                                                                     \
		"account-1", 1, "DebitPerformed"                              \
	}
#define OPENED_2                                                              \
	{                                                                     \
		"account-2", 0, "DebitAccountOpened"                          \
	}
#define CUSTOMER_9                                                            \
	{                                                                     \
		"customer-9", 0, "CustomerRegistered"                         \
	}
#define DEBIT_1B                                                              \
	{                                                                     \
		"account-1", 2, "DebitPerformed"                              \
	}
#define WITHDRAW_2                                                            \
	{                                                                     \
		"account-2", 1, "WithdrawalPerformed"                         \
	}
#define LONELY                                                                \
	{                                                                     \
		"single", 0, "Lonely"                                         \
	}

static void
check_resolve_links(nng_socket s)
{
	static const struct {
		const char *stream;
		want_link   links[5]; /* up to the first with no stream */
	} want[] = {
		{ "$ce-account",
		    { OPENED_1, DEBIT_1A, OPENED_2, DEBIT_1B, WITHDRAW_2 } },
		{ "$ce-customer", { CUSTOMER_9 } },
		{ "$et-DebitPerformed", { DEBIT_1A, DEBIT_1B } },
		{ "$bc-corr-1", { OPENED_1, DEBIT_1A, CUSTOMER_9 } },
		{ "$category-account", { OPENED_1, OPENED_2 } },
		{ "$streams", { OPENED_1, OPENED_2, CUSTOMER_9, LONELY } },
	};
	for (size_t k = 0; k < sizeof(want) / sizeof(want[0]); k++) {
		size_t n = 0;
		while (n < 5 && want[k].links[n].stream != NULL)
			n++;
		check_links(s, want[k].stream, want[k].links, n);
	}

	/* the whole log: each link answered as its target */
	json_t *r = ok(call(s,
	                   "{\"op\":\"read\",\"from\":0,\"max\":1000,"
	                   "\"resolve_links\":true}"),
	    "read log resolved");
	size_t  i, n_links = 0;
	json_t *e;
	json_array_foreach(json_object_get(r, "events"), i, e)
	{
		json_t *lk = json_object_get(e, "link");
		CHECK(strcmp(jstr(e, "type"), "$>") != 0);
		if (lk == NULL) {
			CHECK(jstr(e, "stream")[0] != '$');
			continue;
		}
		n_links++;
		CHECK(jstr(lk, "stream")[0] == '$');
		/* in the log at the link's position, not the target's */
		CHECK(jint(lk, "position") > jint(e, "position"));
	}
	/* 6 ce ("single" has no category), 7 et, 5 bc, 3 category, 4
	 * streams */
	CHECK_EQ(n_links, 6 + 7 + 5 + 3 + 4);
	json_decref(r);
}

static json_t *
get_one(nng_socket s, const char *proj, const char *key, const char *what)
{
	return ok(call(s,
	              "{\"op\":\"get_one\",\"tenant\":\"" TENANT
	              "\",\"projection\":\"%s\",\"key\":\"%s\"}",
	              proj, key),
	    what);
}

/* A one-time query of one key: that state only, as get_one has it (the
 * initial state for a key without one). @return get_one's reply (caller
 * decrefs). */
static json_t *
check_query_key(nng_socket s, const char *key)
{
	char    what[128];
	json_t *q = ok(
	    call(s,
	        "{\"op\":\"query\",\"id\":\"" PROJECTION "\",\"key\":\"%s\"}",
	        key),
	    "query key");
	json_t *one    = get_one(s, PROJECTION, key, "get_one");
	json_t *states = json_object_get(q, "states");
	CHECK_EQ(json_array_size(states), 1);
	CHECK_STREQ(jstr(json_array_get(states, 0), "key"), key);
	snprintf(what, sizeof(what), "query key %s and get_one", key);
	check_equal(json_object_get(json_array_get(states, 0), "state"),
	    json_object_get(one, "state"), what);
	json_decref(q);
	return one;
}

static void
check_one_time(nng_socket s)
{
	json_t *items = get_all(s);
	CHECK_EQ(json_array_size(items), 2);
	json_t *q = ok(call(s, "{\"op\":\"query\",\"id\":\"" PROJECTION "\"}"),
	    "query one_time");
	json_t *st = status(s);
	CHECK(jint(q, "position") > 0
	    && jint(q, "position") <= jint(st, "head"));
	json_decref(st);
	json_t *ks = key_states(json_object_get(q, "states"));
	check_equal(ks, items, "one-time query and get_all");
	json_decref(ks);
	json_decref(q);

	/* by id, with the tenant and the mode spelled out */
	q  = ok(call(s,
	            "{\"op\":\"query\",\"id\":\"" PROJECTION_ID
	            "\",\"tenant\":\"" TENANT "\",\"mode\":\"one_time\"}"),
	     "query by id");
	ks = key_states(json_object_get(q, "states"));
	check_equal(ks, items, "one-time query by id and get_all");
	json_decref(ks);
	json_decref(q);

	/* one key: that state only; a key without one: the initial state */
	json_t *one = check_query_key(s, "account-2");
	CHECK_EQ(jint(json_object_get(one, "state"), "balance"), -5);
	json_decref(one);
	one = check_query_key(s, "account-77");
	CHECK(json_is_false(json_object_get(one, "found")));
	json_decref(one);
	json_decref(items);
}

/* The transient entries status shows now. */
static size_t
n_transient(nng_socket s)
{
	json_t *st = status(s);
	size_t  i, n = 0;
	json_t *e;
	json_array_foreach(json_object_get(st, "emitting_projections"), i, e)
	{
		if (json_is_true(json_object_get(e, "transient"))) {
			CHECK_STREQ(jstr(e, "mode"), "transient");
			CHECK(jint(e, "handle") > 0);
			n++;
		}
	}
	json_decref(st);
	return n;
}

/* Wait until status shows no transient run; why names what ends them. */
static void
wait_no_transient(nng_socket s, const char *why)
{
	int64_t end = dt_now_ms() + WAIT_MS;
	while (n_transient(s) != 0) {
		if (dt_now_ms() > end)
			FAIL("transient runs outlived %s", why);
		dt_sleep_ms(20);
	}
}

static long long
transient_start(nng_socket s)
{
	json_t   *r = ok(call(s,
	                     "{\"op\":\"query\",\"id\":\"" PROJECTION
	                     "\",\"mode\":\"transient\"}"),
	      "transient start");
	long long h = jint(r, "handle");
	CHECK(h > 0);
	json_decref(r);
	return h;
}

static void
check_transient(nng_socket s)
{
	json_t    *items = get_all(s);
	nng_socket a     = conn_open();
	long long  h     = transient_start(a);
	CHECK_EQ(n_transient(s), 1);

	/* polled (from any connection) until it reached the head */
	int64_t end = dt_now_ms() + WAIT_MS;
	json_t *p;
	for (;;) {
		p = ok(call(s,
		           "{\"op\":\"query\",\"handle\":%lld,\"mode\":"
		           "\"transient\"}",
		           h),
		    "transient poll");
		CHECK_EQ(jint(p, "handle"), h);
		CHECK(jint(p, "position") <= jint(p, "head"));
		if ((uint64_t) jint(p, "position") >= client_head)
			break;
		json_decref(p);
		if (dt_now_ms() > end)
			FAIL("transient run did not reach the head");
		dt_sleep_ms(20);
	}
	json_t *ks = key_states(json_object_get(p, "states"));
	check_equal(ks, items, "transient states and get_all");
	json_decref(ks);
	json_decref(p);

	/* it follows new events */
	commit(s, "account-3", "DebitAccountOpened",
	    "{\"account_id\":\"account-3\",\"name\":\"New\","
	    "\"customer_id\":\"c9\"}",
	    NULL);
	end = dt_now_ms() + WAIT_MS;
	for (;;) {
		p           = ok(call(a,
		                     "{\"op\":\"query\",\"id\":\"" PROJECTION
		                     "\",\"handle\":%lld,\"key\":\"account-3\"}",
		                     h),
		              "transient poll key");
		json_t *st0 = json_array_get(json_object_get(p, "states"), 0);
		bool    got = st0 != NULL
		    && strcmp(
		           jstr(json_object_get(st0, "state"), "name"), "New")
		        == 0;
		json_decref(p);
		if (got)
			break;
		if (dt_now_ms() > end)
			FAIL("transient run did not see the new event");
		dt_sleep_ms(20);
	}

	/* closed: gone from status, its handle unknown */
	json_t *c = ok(
	    call(a, "{\"op\":\"query\",\"handle\":%lld,\"close\":true}", h),
	    "transient close");
	CHECK(json_is_true(json_object_get(c, "closed")));
	json_decref(c);
	CHECK_EQ(n_transient(s), 0);
	expect_err(call(a, "{\"op\":\"query\",\"handle\":%lld}", h),
	    SL_ENOTFOUND, "poll a closed run");
	expect_err(
	    call(a, "{\"op\":\"query\",\"handle\":%lld,\"close\":true}", h),
	    SL_ENOTFOUND, "close a closed run");

	/* ended when its client's connection goes */
	nng_socket b  = conn_open();
	long long  hb = transient_start(b);
	CHECK(hb != h);
	CHECK_EQ(n_transient(s), 1);
	nng_close(b);
	wait_no_transient(s, "its client's connection");
	expect_err(call(a, "{\"op\":\"query\",\"handle\":%lld}", hb),
	    SL_ENOTFOUND, "poll a run whose client left");

	/* at most 16 at once */
	for (int i = 0; i < 16; i++)
		transient_start(a);
	CHECK_EQ(n_transient(s), 16);
	expect_err(call(a,
	               "{\"op\":\"query\",\"id\":\"" PROJECTION
	               "\",\"mode\":\"transient\"}"),
	    SL_ETOOBIG, "17th transient run");
	nng_close(a);
	wait_no_transient(s, "their client");
	json_decref(items);
}

static void
check_start_stop(nng_socket s)
{
	json_t *r = ok(call(s, "{\"op\":\"stop\",\"id\":\"$by_event_type\"}"),
	    "stop $by_event_type");
	CHECK_EQ(jint(r, "processors"), 1);
	json_decref(r);
	json_t *st = status(s);
	json_t *e  = eproj_of(st, "$by_event_type");
	CHECK(e != NULL);
	CHECK_STREQ(jstr(e, "status"), "stopped");
	CHECK(json_is_true(json_object_get(e, "stopped")));
	/* the processors' vocabulary too */
	CHECK_STREQ(jstr(e, "state"), "paused");
	CHECK(json_is_true(json_object_get(e, "paused")));
	CHECK_STREQ(jstr(e, "kind"), "projection");
	json_decref(st);

	commit(s, "zed-1", "Zed", "{}", NULL);
	wait_caught_up(s); /* the running ones */
	CHECK_EQ(stream_size(s, "$et-Zed"), 0);
	/* the others did link it */
	CHECK_EQ(stream_size(s, "$ce-zed"), 1);

	/* started again (by id): it catches up */
	r = ok(call(s,
	           "{\"op\":\"start\",\"id\":"
	           "\"00000000-0000-0000-0000-000000000002\",\"tenant\":"
	           "\"" TENANT "\"}"),
	    "start $by_event_type");
	json_decref(r);
	wait_caught_up(s);
	st = status(s);
	CHECK_STREQ(jstr(eproj_of(st, "$by_event_type"), "status"), "running");
	CHECK(!json_is_true(json_object_get(eproj_of(st, "$by_event_type"),
	    "paused")));
	CHECK(strcmp(jstr(eproj_of(st, "$by_event_type"), "state"), "live")
	        == 0
	    || strcmp(jstr(eproj_of(st, "$by_event_type"), "state"),
	           "catching_up")
	        == 0);
	json_decref(st);
	const want_link zed[] = { { "zed-1", 0, "Zed" } };
	check_links(s, "$et-Zed", zed, 1);
}

/* Wait until the account_details processor's status is want. */
static void
wait_proc_status(nng_socket s, const char *want)
{
	int64_t end = dt_now_ms() + WAIT_MS;
	for (;;) {
		json_t *st = status(s);
		bool    is
		    = strcmp(jstr(proc_of(st, PROJECTION_ID), "status"), want)
		    == 0;
		json_decref(st);
		if (is)
			return;
		if (dt_now_ms() > end)
			FAIL("the processor's status did not become %s", want);
		dt_sleep_ms(10);
	}
}

static void
check_status_fields(nng_socket s)
{
	json_t *st = status(s);
	CHECK_STREQ(jstr(st, "run_projections"), "all");
	size_t  i, n_sys = 0;
	json_t *e;
	json_array_foreach(json_object_get(st, "projections"), i, e)
	{
		CHECK(json_is_boolean(json_object_get(e, "system")));
		CHECK(json_is_boolean(json_object_get(e, "emitting")));
		CHECK_STREQ(jstr(e, "mode"), "continuous");
		if (json_is_true(json_object_get(e, "system"))) {
			n_sys++;
			CHECK(jstr(e, "name")[0] == '$');
			CHECK(json_is_true(json_object_get(e, "emitting")));
		}
	}
	CHECK_EQ(n_sys, 5);
	json_array_foreach(json_object_get(st, "emitting_projections"), i, e)
	{
		CHECK_STREQ(jstr(e, "tenant"), TENANT);
		CHECK_STREQ(jstr(e, "status"), "running");
		CHECK_STREQ(jstr(e, "status_reason"), "");
		CHECK_STREQ(jstr(e, "mode"), "continuous");
		CHECK(json_is_true(json_object_get(e, "system")));
		CHECK(json_is_true(json_object_get(e, "emitting")));
		CHECK((uint64_t) jint(e, "position") >= client_head);
		CHECK(jint(e, "position") <= jint(e, "head"));
		CHECK(json_real_value(json_object_get(e, "progress")) > 50.0);
		CHECK(
		    json_real_value(json_object_get(e, "progress")) <= 100.0);
		CHECK(jint(e, "events_processed") > 0);
		CHECK(json_real_value(json_object_get(e, "events_per_sec"))
		    >= 0.0);
		CHECK(json_is_integer(json_object_get(e, "buffered_events")));
		CHECK(
		    json_is_integer(json_object_get(e, "partitions_cached")));
		CHECK(json_is_integer(json_object_get(e, "writes_in_flight")));
	}
	CHECK_EQ(
	    json_array_size(json_object_get(st, "emitting_projections")), 5);
	json_t *p = proc_of(st, PROJECTION_ID);
	CHECK(p != NULL);
	CHECK_STREQ(jstr(p, "status"), "running");
	CHECK_STREQ(jstr(p, "mode"), "continuous");
	CHECK(json_is_false(json_object_get(p, "system")));
	CHECK(json_is_false(json_object_get(p, "emitting")));
	CHECK(json_real_value(json_object_get(p, "progress")) == 100.0);
	CHECK(jint(p, "events_processed") == jint(p, "events_handled"));
	CHECK(json_real_value(json_object_get(p, "events_per_sec")) >= 0.0);
	CHECK_EQ(jint(p, "buffered_events"), 0);
	json_decref(st);

	/* pause maps to stopped, resume back to running (the reply comes
	 * once the processor took the command; its status follows) */
	json_decref(ok(
	    call(s, "{\"op\":\"pause\",\"id\":\"" PROJECTION "\"}"), "pause"));
	wait_proc_status(s, "stopped");
	json_decref(ok(call(s, "{\"op\":\"start\",\"id\":\"" PROJECTION "\"}"),
	    "start a processor"));
	wait_proc_status(s, "running");
}

/* Each malformed request: its code and a message; nothing changes. */
static void
check_malformed(nng_socket s)
{
	json_t   *st0  = status(s);
	long long head = jint(st0, "head");
	json_decref(st0);

	expect_err(call(s, "{\"op\":\"query\"}"), SL_EINVAL, "query no id");
	expect_err(
	    call(s, "{\"op\":\"query\",\"id\":7}"), SL_EPROTO, "query id int");
	expect_err(call(s, "{\"op\":\"query\",\"id\":\"\"}"), SL_EINVAL,
	    "query id empty");
	expect_err(call(s, "{\"op\":\"query\",\"id\":\"nope\"}"), SL_ENOTFOUND,
	    "query unknown");
	expect_err(call(s, "{\"op\":\"query\",\"id\":\"" FILTER "\"}"),
	    SL_EINVAL, "query a filter");
	expect_err(call(s,
	               "{\"op\":\"query\",\"id\":\"" PROJECTION
	               "\",\"mode\":\"forever\"}"),
	    SL_EINVAL, "query bad mode");
	expect_err(
	    call(s, "{\"op\":\"query\",\"id\":\"" PROJECTION "\",\"mode\":3}"),
	    SL_EPROTO, "query mode int");
	expect_err(call(s,
	               "{\"op\":\"query\",\"id\":\"" PROJECTION
	               "\",\"handle\":\"x\"}"),
	    SL_EPROTO, "query handle str");
	expect_err(
	    call(s,
	        "{\"op\":\"query\",\"id\":\"" PROJECTION "\",\"handle\":-4}"),
	    SL_EPROTO, "query handle negative");
	expect_err(call(s, "{\"op\":\"query\",\"handle\":0}"), SL_EINVAL,
	    "query handle 0");
	expect_err(call(s, "{\"op\":\"query\",\"handle\":987654}"),
	    SL_ENOTFOUND, "query unknown handle");
	expect_err(call(s,
	               "{\"op\":\"query\",\"handle\":5,\"mode\":"
	               "\"one_time\"}"),
	    SL_EINVAL, "query handle one_time");
	expect_err(
	    call(s,
	        "{\"op\":\"query\",\"id\":\"" PROJECTION "\",\"close\":true}"),
	    SL_EINVAL, "query close without handle");
	expect_err(call(s, "{\"op\":\"query\",\"handle\":5,\"close\":1}"),
	    SL_EPROTO, "query close int");
	expect_err(
	    call(s,
	        "{\"op\":\"query\",\"id\":\"" PROJECTION "\",\"key\":\"\"}"),
	    SL_EINVAL, "query empty key");
	expect_err(
	    call(
	        s, "{\"op\":\"query\",\"id\":\"" PROJECTION "\",\"key\":[1]}"),
	    SL_EPROTO, "query key array");
	expect_err(call(s,
	               "{\"op\":\"query\",\"id\":\"" PROJECTION
	               "\",\"tenant\":\"other\"}"),
	    SL_ENOTFOUND, "query unknown tenant");
	expect_err(call(s,
	               "{\"op\":\"query\",\"id\":\"" PROJECTION
	               "\",\"tenant\":\"\"}"),
	    SL_EINVAL, "query empty tenant");
	expect_err(call(s,
	               "{\"op\":\"query\",\"id\":\"" PROJECTION
	               "\",\"mode\":\"transient\",\"key\":\"k\"}"),
	    SL_EINVAL, "transient start with a key");
	expect_err(call(s, "{\"op\":\"read\",\"resolve_links\":\"yes\"}"),
	    SL_EPROTO, "read resolve_links str");
	expect_err(call(s, "{\"op\":\"read\",\"resolve_links\":1}"), SL_EPROTO,
	    "read resolve_links int");
	expect_err(call(s, "{\"op\":\"start\"}"), SL_EINVAL, "start no id");
	expect_err(
	    call(s, "{\"op\":\"stop\",\"id\":3}"), SL_EPROTO, "stop id int");
	expect_err(call(s, "{\"op\":\"start\",\"id\":\"$by_nothing\"}"),
	    SL_ENOTFOUND, "start unknown");
	expect_err(call(s,
	               "{\"op\":\"stop\",\"id\":\"$by_category\","
	               "\"tenant\":\"other\"}"),
	    SL_ENOTFOUND, "stop unknown tenant");
	expect_err(call(s,
	               "{\"op\":\"reset\",\"id\":\"$by_category\","
	               "\"tenant\":5}"),
	    SL_EPROTO, "reset tenant int");
	expect_err(call(s,
	               "{\"op\":\"get_all\",\"tenant\":\"" TENANT
	               "\",\"projection\":\"$by_nothing\"}"),
	    SL_ENOTFOUND, "get_all unknown");
	expect_err(call(s,
	               "{\"op\":\"commit\",\"tenant\":\"" TENANT
	               "\",\"stream\":\"$ce-account\",\"events\":[{"
	               "\"type\":\"X\",\"content\":{}}]}"),
	    SL_EINVAL, "commit to a system stream");

	/* still serving, nothing written, nothing stopped */
	json_t *st = status(s);
	CHECK_EQ(jint(st, "head"), head);
	size_t  i;
	json_t *e;
	json_array_foreach(json_object_get(st, "emitting_projections"), i, e)
	    CHECK_STREQ(jstr(e, "status"), "running");
	json_array_foreach(json_object_get(st, "processors"), i, e)
	    CHECK_STREQ(jstr(e, "status"), "running");
	json_decref(st);
}

static void
scenario_all(void)
{
	setup("all", "start_standard_projections: true\n");
	daemon_start();
	nng_socket s = conn_open();
	fill_log(s);
	wait_caught_up(s);
	check_resolve_links(s);
	check_one_time(s);
	check_status_fields(s);
	check_transient(s);
	check_start_stop(s);
	check_malformed(s);
	nng_close(s);
	daemon_stop();
}

/* ---- scenario 2: run_projections none ---- */

static void
scenario_none(void)
{
	setup("none",
	    "run_projections: none\n"
	    "start_standard_projections: true\n");
	daemon_start();
	nng_socket s = conn_open();
	fill_log(s);
	wait_caught_up(s); /* filters only */
	json_t *st = status(s);
	CHECK_STREQ(jstr(st, "run_projections"), "none");
	CHECK_EQ(
	    json_array_size(json_object_get(st, "emitting_projections")), 0);
	size_t  i, n_filters = 0;
	json_t *e;
	json_array_foreach(json_object_get(st, "processors"), i, e)
	{
		CHECK_STREQ(jstr(e, "kind"), "filter");
		n_filters++;
	}
	CHECK(n_filters >= 1);
	json_decref(st);
	/* nothing linked, no read model built */
	CHECK_EQ(stream_size(s, "$ce-account"), 0);
	json_t *items = get_all(s);
	CHECK_EQ(json_array_size(items), 0);
	json_decref(items);
	expect_err(call(s, "{\"op\":\"start\",\"id\":\"$by_category\"}"),
	    SL_ENOTFOUND, "start with run_projections none");
	json_t *r = call(s, "{\"op\":\"start\",\"id\":\"" PROJECTION "\"}");
	CHECK(!is_ok(r) && strstr(jstr(r, "message"), "none") != NULL);
	json_decref(r);
	/* a one-time query still answers, from the log */
	json_t *q = ok(call(s, "{\"op\":\"query\",\"id\":\"" PROJECTION "\"}"),
	    "query with none");
	CHECK_EQ(json_array_size(json_object_get(q, "states")), 2);
	json_decref(q);
	nng_close(s);
	daemon_stop();
	/* the log line says why nothing runs */
	size_t len;
	char  *log = dt_slurp(log_path, &len);
	CHECK(strstr(log, "run_projections: none") != NULL);
	free(log);
}

/* ---- scenario 3: run_projections system, started by an operator ---- */

/* In status, the system projection name is its, every other one others. */
static void
check_sys_statuses(
    nng_socket s, const char *name, const char *its, const char *others)
{
	json_t *st = status(s), *e;
	size_t  i;
	json_array_foreach(json_object_get(st, "emitting_projections"), i, e)
	{
		if (strcmp(jstr(e, "name"), name) == 0)
			CHECK_STREQ(jstr(e, "status"), its);
		else
			CHECK_STREQ(jstr(e, "status"), others);
	}
	json_decref(st);
}

static void
scenario_system(void)
{
	setup("system", "run_projections: system\n");
	daemon_start();
	nng_socket s = conn_open();
	fill_log(s);
	json_t *st = status(s);
	CHECK_STREQ(jstr(st, "run_projections"), "system");
	size_t  i;
	json_t *e;
	CHECK_EQ(
	    json_array_size(json_object_get(st, "emitting_projections")), 5);
	/* start_standard_projections false: all stopped */
	json_array_foreach(json_object_get(st, "emitting_projections"), i, e)
	{
		CHECK_STREQ(jstr(e, "status"), "stopped");
		CHECK(json_is_true(json_object_get(e, "system")));
	}
	CHECK(proc_of(st, PROJECTION_ID) == NULL);
	json_array_foreach(json_object_get(st, "processors"), i, e)
	    CHECK_STREQ(jstr(e, "kind"), "filter");
	json_decref(st);

	json_decref(ok(call(s, "{\"op\":\"start\",\"id\":\"$by_category\"}"),
	    "start $by_category"));
	wait_caught_up(s);
	const want_link ce_customer[] = { CUSTOMER_9 };
	check_links(s, "$ce-customer", ce_customer, 1);
	CHECK_EQ(stream_size(s, "$et-Lonely"), 0);
	nng_close(s);
	daemon_stop();

	/* after a restart the operator's start still holds, the config's
	 * "stopped" for the others too */
	daemon_start();
	s = conn_open();
	check_sys_statuses(s, "$by_category", "running", "stopped");
	/* and an operator's stop holds over start_standard_projections
	 * (as in EventStoreDB, that setting only starts the system
	 * projections that were never started or stopped) */
	json_decref(ok(call(s, "{\"op\":\"stop\",\"id\":\"$by_category\"}"),
	    "stop $by_category"));
	nng_close(s);
	daemon_stop();
	write_config(NULL,
	    "run_projections: system\n"
	    "start_standard_projections: true\n");
	daemon_start();
	s = conn_open();
	check_sys_statuses(s, "$by_category", "stopped", "running");
	nng_close(s);
	daemon_stop();
}

/* ---- scenario 4: an emitting plugin projection ---- */

#define EMITTER    "e2e_emitter" /* tests/plugins/e2e_emitter.c */
#define CONFLICT   "e2e_conflict"
#define EMITTER_ID "e2e0e2e0-0001-4000-8000-000000000001"

static json_t *
get_all_of(nng_socket s, const char *proj, const char *extra)
{
	return ok(call(s,
	              "{\"op\":\"get_all\",\"tenant\":\"" TENANT
	              "\",\"projection\":\"%s\"%s}",
	              proj, extra),
	    "get_all");
}

/* A client's commit to ledger-acct-1 (e2e_emitter writes it): the
 * reply. */
static json_t *
commit_to_ledger(nng_socket s)
{
	return call(s,
	    "{\"op\":\"commit\",\"tenant\":\"" TENANT
	    "\",\"stream\":\"ledger-acct-1\",\"events\":[{"
	    "\"type\":\"X\",\"content\":{}}]}");
}

static void
scenario_emitting(void)
{
	char pdir[4300], dst[4400];
	snprintf(pdir, sizeof(pdir), "%s/emitting-plugins", tu_tmpdir());
	CHECK(mkdir(pdir, 0755) == 0);
	/* loaded in name order: the emitter claims "ledger-*" first, the
	 * conflicting one (same streams, another id) is refused */
	snprintf(dst, sizeof(dst), "%s/a_emitter.so", pdir);
	dt_install(
	    SL_TEST_PLUGIN_DIR "/e2e_emitter/e2e_emitter.so", NULL, dst);
	snprintf(dst, sizeof(dst), "%s/b_conflict.so", pdir);
	dt_install(
	    SL_TEST_PLUGIN_DIR "/e2e_conflict/e2e_conflict.so", NULL, dst);
	setup_in("emitting", pdir, "start_standard_projections: true\n");
	daemon_start();
	nng_socket s   = conn_open();
	int64_t    end = 0;
	commit(s, "acct-1", "AccountOpened", "{}", NULL);
	commit(s, "acct-1", "Deposited", "{\"amount\":5}", NULL);
	commit(s, "acct-2", "AccountOpened", "{}", NULL);
	wait_caught_up(s);

	json_t *st = status(s);
	size_t  i;
	json_t *e;
	bool    refused = false;
	json_array_foreach(json_object_get(st, "plugins"), i, e)
	{
		if (strstr(jstr(e, "file"), "b_conflict.so") == NULL)
			continue;
		/* status says why it does not run */
		const char *why = jstr(e, "error");
		if (why == NULL || strstr(why, CONFLICT) == NULL
		    || strstr(why, EMITTER) == NULL)
			FAIL("the refused projection's plugin shows %s",
			    why != NULL ? why : "no error");
		refused = true;
	}
	CHECK(refused);
	CHECK(eproj_of(st, CONFLICT) == NULL);
	long long h0 = jint(st, "head");
	e            = eproj_of(st, EMITTER);
	CHECK(e != NULL);
	CHECK_STREQ(jstr(e, "status"), "running");
	CHECK(json_is_false(json_object_get(e, "system")));
	CHECK(json_is_true(json_object_get(e, "emitting")));
	/* a Ledger event and a link per event at least */
	if (jint(e, "emitted") < 6 || jint(e, "emitted") > h0 - 3)
		FAIL("emitted: %s", json_dumps(e, JSON_COMPACT));
	json_decref(st);

	/* read models from the log env, as get_one / get_all answer them */
	json_t *one = get_one(s, EMITTER, "acct-1", "get_one emitting");
	CHECK(json_is_true(json_object_get(one, "found")));
	CHECK_EQ(jint(json_object_get(one, "state"), "count"), 2);
	json_decref(one);
	one = get_one(s, EMITTER, "acct-9", "get_one emitting missing");
	CHECK(json_is_false(json_object_get(one, "found")));
	CHECK_EQ(jint(json_object_get(one, "state"), "count"), 0);
	json_decref(one);
	json_t *all = get_all_of(s, EMITTER, "");
	CHECK_EQ(json_array_size(json_object_get(all, "items")), 2);
	CHECK(json_is_false(json_object_get(all, "more")));
	json_t *page = get_all_of(s, EMITTER, ",\"limit\":1");
	CHECK_EQ(json_array_size(json_object_get(page, "items")), 1);
	CHECK(json_is_true(json_object_get(page, "more")));
	CHECK_STREQ(
	    jstr(json_array_get(json_object_get(page, "items"), 0), "key"),
	    "acct-1");
	json_decref(page);
	page = get_all_of(s, EMITTER, ",\"after\":\"acct-1\"");
	CHECK_EQ(json_array_size(json_object_get(page, "items")), 1);
	CHECK(json_is_false(json_object_get(page, "more")));
	CHECK_STREQ(
	    jstr(json_array_get(json_object_get(page, "items"), 0), "key"),
	    "acct-2");
	json_decref(page);

	/* a one-time query of it: the same states, nothing written */
	json_t *q = ok(call(s, "{\"op\":\"query\",\"id\":\"" EMITTER "\"}"),
	    "query emitting");
	/* results (if it has a result transform) included */
	check_equal(json_object_get(q, "states"),
	    json_object_get(all, "items"),
	    "one-time query and get_all of an emitting projection");
	json_decref(q);
	json_decref(all);

	/* a client's commit to its stream: EOWNED naming the owner, and
	 * nothing written there (the head itself may still move: the
	 * system projections link the emitter's events) */
	size_t  ledger = stream_size(s, "ledger-acct-1");
	json_t *r      = commit_to_ledger(s);
	if (is_ok(r) || jint(r, "code") != SL_EOWNED
	    || strstr(jstr(r, "message"), EMITTER) == NULL)
		FAIL("commit to an owned stream: %s",
		    json_dumps(r, JSON_COMPACT));
	json_decref(r);
	CHECK(ledger > 0);
	CHECK_EQ(stream_size(s, "ledger-acct-1"), ledger);

	/* A reset removes the streams it wrote and writes them again: the
	 * links $by_event_type made to its first Ledger events are
	 * unresolved now, those to the new ones resolve. */
	json_decref(ok(call(s, "{\"op\":\"reset\",\"id\":\"" EMITTER "\"}"),
	    "reset emitting"));
	end = dt_now_ms() + WAIT_MS;
	for (;;) {
		json_t *raw     = read_stream(s, "$et-Ledger", false);
		json_t *res     = read_stream(s, "$et-Ledger", true);
		size_t  n_unres = 0, n_res = 0;
		if (json_array_size(raw) != json_array_size(res)) {
			/* it grew between the two reads */
			json_decref(raw);
			json_decref(res);
			continue;
		}
		json_array_foreach(res, i, e)
		{
			json_t *l = json_array_get(raw, i);
			if (json_is_true(json_object_get(e, "unresolved"))) {
				/* answered as the link itself */
				CHECK_STREQ(jstr(e, "type"), "$>");
				CHECK_STREQ(jstr(e, "stream"), "$et-Ledger");
				json_t *c = json_deep_copy(e);
				json_object_del(c, "unresolved");
				CHECK(
				    json_equal(c, l)); /* plus "unresolved" */
				json_decref(c);
				n_unres++;
			} else {
				CHECK_STREQ(jstr(e, "type"), "Ledger");
				CHECK(json_is_object(
				    json_object_get(e, "link")));
				n_res++;
			}
		}
		json_decref(raw);
		json_decref(res);
		if (n_unres >= 3 && n_res >= 3) {
			CHECK_EQ(n_unres, 3); /* the first build's */
			break;
		}
		if (dt_now_ms() > end)
			FAIL("$et-Ledger: %zu unresolved, %zu resolved links "
			     "after the reset",
			    n_unres, n_res);
		dt_sleep_ms(20);
	}

	/* Hot reload drops it: its run stops, its declared streams are free
	 * again, the streams it wrote stay its own. (The refused plugin
	 * goes first, so that nothing claims them meanwhile.) */
	snprintf(dst, sizeof(dst), "%s/b_conflict.so", pdir);
	CHECK(unlink(dst) == 0);
	snprintf(dst, sizeof(dst), "%s/a_emitter.so", pdir);
	CHECK(unlink(dst) == 0);
	end = dt_now_ms() + WAIT_MS;
	for (;;) {
		st         = status(s);
		json_t *em = NULL;
		json_array_foreach(
		    json_object_get(st, "emitting_projections"), i, e)
		{
			if (strcmp(jstr(e, "projection"), EMITTER_ID) == 0)
				em = e;
		}
		CHECK(em != NULL);
		bool stopped = strcmp(jstr(em, "status"), "stopped") == 0;
		json_decref(st);
		if (stopped)
			break;
		if (dt_now_ms() > end)
			FAIL("the dropped emitting projection did not stop");
		dt_sleep_ms(20);
	}
	r = commit_to_ledger(s);
	if (is_ok(r) || jint(r, "code") != SL_EOWNED)
		FAIL("commit to a stream a dropped projection wrote: %s",
		    json_dumps(r, JSON_COMPACT));
	json_decref(r);
	commit(s, "ledger-new", "X", "{}", NULL);
	/* its states are still served */
	one = get_one(s, EMITTER_ID, "acct-1",
	    "get_one of a dropped emitting projection");
	CHECK(json_is_true(json_object_get(one, "found")));
	CHECK_EQ(jint(json_object_get(one, "state"), "count"), 2);
	json_decref(one);
	nng_close(s);
	daemon_stop();
}

int
main(void)
{
	atexit(cleanup);
	scenario_all();
	scenario_none();
	scenario_system();
	scenario_emitting();
	printf("esdb_api_test: ok\n");
	return 0;
}
