/*
 * Shared by the remote processor tests: requests written as JSON and sent
 * through the client library, the daemon's status as JSON, and a fake
 * remote client (a raw NNG rep0 socket on a thread) that answers calls
 * well, with garbage, late, never, or not even pings. For the end to end
 * tests (remote_client_test, remote_python_test): sluiced and a client
 * process started and stopped, status polled, read models and filter
 * streams read whole and compared.
 */
#ifndef SL_REMOTE_TESTUTIL_H
#define SL_REMOTE_TESTUTIL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <msgpack.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>

#include <sluice/client.h>

#include "daemon_testutil.h"
#include "json.h"
#include "mp.h"
#include "server.h" /* server_close_socket: a bounded nng_close */
#include "testutil.h"

__attribute__((unused)) static int64_t
ru_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

__attribute__((unused)) static void
ru_sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long) (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0)
		;
}

/*
 * Send a request written as JSON; the reply (also an error reply) as a
 * jansson object in *reply when not NULL (caller decrefs).
 * @return the reply's code (SL_OK for ok: true).
 */
__attribute__((unused)) static int
ru_request(sl_client *c, const char *json, json_t **reply)
{
	msgpack_sbuffer sb;
	msgpack_packer  pk;
	char            err[256];
	void           *rep = NULL;
	size_t          len = 0;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	if (json_text_to_mp(json, 1, &pk, err, sizeof(err)) != 0) {
		fprintf(stderr, "bad test JSON: %s: %s\n", err, json);
		exit(1);
	}
	int rc = sl_client_request(c, sb.data, sb.size, &rep, &len);
	msgpack_sbuffer_destroy(&sb);
	if (reply != NULL) {
		*reply = NULL;
		if (rep != NULL) {
			msgpack_zone   zone;
			msgpack_object o;
			size_t         off = 0;
			CHECK(msgpack_zone_init(&zone, 4096));
			CHECK(msgpack_unpack(rep, len, &off, &zone, &o)
			    == MSGPACK_UNPACK_SUCCESS);
			*reply = mp_to_json(&o);
			msgpack_zone_destroy(&zone);
		}
	}
	sl_client_free(rep);
	return rc;
}

/* The daemon's status reply as jansson (caller decrefs). */
__attribute__((unused)) static json_t *
ru_status(sl_client *c)
{
	json_t *st = NULL;
	CHECK_EQ(ru_request(c, "{\"v\":1,\"op\":\"status\"}", &st), 0);
	return st;
}

/* The registration with this id in status "remotes" (borrowed from st). */
__attribute__((unused)) static json_t *
ru_remote(json_t *st, const char *id)
{
	json_t *arr = json_object_get(st, "remotes"), *r;
	size_t  i;
	json_array_foreach(arr, i, r)
	{
		if (strcmp(json_string_value(json_object_get(r, "id")), id)
		    == 0)
			return r;
	}
	return NULL;
}

/* Wait (at most ms) until status shows the registration connected or
 * not. @return whether it did. */
__attribute__((unused)) static bool
ru_wait_connected(sl_client *c, const char *id, bool want, int ms)
{
	int64_t end = ru_now_ms() + ms;
	for (;;) {
		json_t *st = ru_status(c);
		json_t *r  = ru_remote(st, id);
		bool    is = r != NULL
		    && json_is_true(json_object_get(r, "connected"));
		json_decref(st);
		if (is == want)
			return true;
		if (ru_now_ms() > end)
			return false;
		ru_sleep_ms(10);
	}
}

/* ---- end to end: sluiced, a client process, what they build ---- */

/* Where an end to end test keeps its files, and the daemon's URL. */
typedef struct ru_paths {
	char dir[4096], cfg_path[4300], log_path[4300], client_log[4300];
	char api_url[4400];
} ru_paths;

/* All in a fresh temporary directory. */
__attribute__((unused)) static void
ru_paths_init(ru_paths *p)
{
	snprintf(p->dir, sizeof(p->dir), "%s", tu_tmpdir());
	snprintf(
	    p->cfg_path, sizeof(p->cfg_path), "%s/resources.yaml", p->dir);
	snprintf(p->log_path, sizeof(p->log_path), "%s/sluiced.log", p->dir);
	snprintf(
	    p->client_log, sizeof(p->client_log), "%s/client.log", p->dir);
	snprintf(p->api_url, sizeof(p->api_url), "ipc://%s/api.ipc", p->dir);
}

/* The config of the end to end tests: plugins from plugin_dir, hot reload
 * on or off, one tenant, remote calls timing out after timeout_ms, then
 * extra (more keys, e.g. a plugins: section; "" for none). */
__attribute__((unused)) static void
ru_write_config_ex(const ru_paths *p, const char *plugin_dir,
    bool hot_reload, const char *tenant, int timeout_ms, const char *extra)
{
	char text[8192];
	snprintf(text, sizeof(text),
	    "data_dir: data\n"
	    "plugin_dir: %s\n"
	    "hot_reload: %s\n"
	    "log_level: info\n"
	    "endpoints:\n"
	    "  api: %s\n"
	    "event_store:\n"
	    "  map_size: 256MiB\n"
	    "  sync: false\n"
	    "tenants:\n"
	    "  - id: %s\n"
	    "    read_models:\n"
	    "      map_size: 256MiB\n"
	    "processing:\n"
	    "  batch: 200\n"
	    "remote:\n"
	    "  keepalive_ms: 200\n"
	    "  timeout_ms: %d\n"
	    "%s",
	    plugin_dir, hot_reload ? "true" : "false", p->api_url, tenant,
	    timeout_ms, extra);
	tu_write_file(p->cfg_path, text);
}

/* ru_write_config_ex with the build's plugins, no hot reload. */
__attribute__((unused)) static void
ru_write_config(const ru_paths *p, const char *tenant, int timeout_ms)
{
	ru_write_config_ex(p, SL_PLUGIN_DIR, false, tenant, timeout_ms, "");
}

/* Spawn sluiced and wait (15 s at most) until it answers status.
 * @return its pid. */
__attribute__((unused)) static pid_t
ru_daemon_start(const ru_paths *p)
{
	pid_t   pid = dt_daemon_spawn(p->cfg_path, p->log_path);
	int64_t end = dt_now_ms() + 15000;
	for (;;) {
		sl_client *c;
		if (sl_client_open(p->api_url, 2000, &c) == SL_OK) {
			char *st = NULL;
			int   rc = sl_client_status(c, &st);
			sl_client_free(st);
			sl_client_close(c);
			if (rc == SL_OK)
				break;
		}
		if (dt_now_ms() > end)
			DT_FAIL_LOG(p->log_path, "sluiced did not come up");
		dt_sleep_ms(20);
	}
	return pid;
}

/* SIGTERM sluiced; it must exit with status 0 within 15 s. */
__attribute__((unused)) static void
ru_daemon_stop(pid_t pid, const char *log_path)
{
	kill(pid, SIGTERM);
	int st;
	if (!dt_wait_exit(pid, 15000, &st))
		DT_FAIL_LOG(log_path, "sluiced did not stop on SIGTERM");
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		DT_FAIL_LOG(log_path, "sluiced ended with status 0x%x on SIGTERM",
		    (unsigned) st);
}

/* Commit one event through *wcl (opened on first use), retrying while the
 * daemon is away. */
__attribute__((unused)) static void
ru_commit1(sl_client **wcl, const char *api_url, const char *tenant,
    const char *stream, uint64_t expect, const char *type, const char *content)
{
	if (*wcl == NULL)
		CHECK_EQ(sl_client_open(api_url, 15000, wcl), SL_OK);
	sl_new_event     e = { .type = type, .content_json = content };
	sl_commit_result r;
	int              rc;
	for (int tries = 0;; tries++) {
		rc = sl_client_commit(*wcl, tenant, stream, expect, &e, 1, &r);
		if (rc != SL_ENET && rc != SL_ETIMEDOUT && rc != SL_ECLOSED)
			break;
		CHECK(tries < 200);
		dt_sleep_ms(50);
	}
	CHECK_EQ(rc, SL_OK);
}

/* Account number i of the Account Details workload: opened, its customer
 * registered, debits, a withdrawal, committed through *wcl. */
__attribute__((unused)) static void
ru_one_account(sl_client **wcl, const char *api_url, const char *tenant,
    int i, int debits)
{
	char acc[32], cust[32], content[256];
	snprintf(acc, sizeof(acc), "acc-%05d", i);
	snprintf(cust, sizeof(cust), "cust-%03d", i % 50);
	snprintf(content, sizeof(content),
	    "{\"account_id\":\"%s\",\"customer_id\":\"%s\",\"name\":"
	    "\"Account %d\"}",
	    acc, cust, i);
	ru_commit1(wcl, api_url, tenant, acc, SL_EXPECT_ANY,
	    "DebitAccountOpened", content);
	snprintf(content, sizeof(content),
	    "{\"customer_id\":\"%s\",\"name\":\"Customer %d\","
	    "\"account\":{\"id\":\"%s\"}}",
	    cust, i % 50, acc);
	ru_commit1(wcl, api_url, tenant, cust, SL_EXPECT_ANY,
	    "CustomerRegistered", content);
	for (int d = 0; d < debits; d++) {
		snprintf(content, sizeof(content),
		    "{\"customer_id\":\"%s\",\"amount\":%d}", cust, 100 + d);
		ru_commit1(wcl, api_url, tenant, acc, SL_EXPECT_ANY,
		    "DebitPerformed", content);
	}
	snprintf(content, sizeof(content),
	    "{\"account_id\":\"%s\",\"customer_id\":\"%s\",\"amount\":%d}",
	    acc, cust, i % 7);
	ru_commit1(wcl, api_url, tenant, acc, SL_EXPECT_ANY,
	    "WithdrawalPerformed", content);
}

/* The processor of name in status (borrowed from st), or NULL. */
__attribute__((unused)) static json_t *
ru_proc_named(json_t *st, const char *name)
{
	json_t *p;
	size_t  i;
	json_array_foreach(json_object_get(st, "processors"), i, p)
	{
		const char *n = json_string_value(json_object_get(p, "name"));
		if (n != NULL && strcmp(n, name) == 0)
			return p;
	}
	return NULL;
}

/* The registrations count of the registration id in status. */
__attribute__((unused)) static int64_t
ru_registrations(sl_client *c, const char *id)
{
	json_t *st = ru_status(c);
	int64_t n  = json_integer_value(
	     json_object_get(ru_remote(st, id), "registrations"));
	json_decref(st);
	return n;
}

/* The failing units of a processor as one JSON text: partition, position,
 * retry and reason of each (attempts and times differ between
 * processors). */
__attribute__((unused)) static char *
ru_failing_text(json_t *p)
{
	json_t *out = json_array(), *f;
	size_t  i;
	json_array_foreach(json_object_get(p, "failing"), i, f)
	{
		json_array_append_new(out,
		    json_pack("{s:O,s:O,s:O,s:O}", "partition",
		        json_object_get(f, "partition"), "position",
		        json_object_get(f, "position"), "retry",
		        json_object_get(f, "retry"), "reason",
		        json_object_get(f, "reason")));
	}
	char *t = json_dumps(out, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(out);
	return t;
}

/* Wait (at most ms) until the named processors are at the head (handled
 * and served), each with n_failing failing units; with same_failing the
 * same ones in each pair (names[0] vs names[1], names[2] vs names[3]).
 * Failing, it shows the client log (as client_title) and the daemon's. */
__attribute__((unused)) static void
ru_wait_caught_up(sl_client *c, const char *const *names, size_t n,
    size_t n_failing, bool same_failing, int ms, const ru_paths *paths,
    const char *client_title)
{
	int64_t end = dt_now_ms() + ms;
	for (;;) {
		json_t *st   = ru_status(c);
		int64_t head = json_integer_value(json_object_get(st, "head"));
		size_t  ok   = 0;
		for (size_t i = 0; i < n; i++) {
			json_t *p = ru_proc_named(st, names[i]);
			ok += p != NULL
			    && json_integer_value(
			           json_object_get(p, "position"))
			        == head
			    && json_integer_value(
			           json_object_get(p, "served_position"))
			        == head
			    && (size_t) json_integer_value(
			           json_object_get(p, "failing_count"))
			        == n_failing;
		}
		for (size_t i = 0; same_failing && ok == n && i + 1 < n;
		     i += 2) {
			char *a = ru_failing_text(ru_proc_named(st, names[i]));
			char *b
			    = ru_failing_text(ru_proc_named(st, names[i + 1]));
			if (strcmp(a, b) != 0)
				ok = 0;
			free(a);
			free(b);
		}
		if (ok == n) {
			json_decref(st);
			return;
		}
		if (dt_now_ms() > end) {
			char *t = json_dumps(st, JSON_INDENT(1));
			fprintf(stderr, "not caught up:\n%s\n", t);
			free(t);
			dt_dump_file(paths->client_log, client_title);
			DT_FAIL_LOG(
			    paths->log_path, "processors did not catch up");
		}
		json_decref(st);
		dt_sleep_ms(20);
	}
}

/* Every read model of a projection as one JSON array text of {key, state}
 * (json_dumps flags: dump_flags); their number in *count. */
__attribute__((unused)) static char *
ru_all_models(sl_client *c, const char *tenant, const char *projection,
    size_t *count, size_t dump_flags)
{
	json_t *all   = json_array();
	char   *after = NULL;
	for (;;) {
		sl_read_models m;
		CHECK_EQ(
		    sl_client_get_all(c, tenant, projection, after, 1000, &m),
		    SL_OK);
		for (size_t i = 0; i < m.n_items; i++) {
			json_error_t je;
			json_t *s = json_loads(m.items[i].state_json, 0, &je);
			if (s == NULL) {
				fprintf(stderr,
				    "%s key %s: bad state %s: %s\n",
				    projection, m.items[i].key,
				    m.items[i].state_json
				        ? m.items[i].state_json
				        : "(null)",
				    je.text);
				exit(1);
			}
			json_array_append_new(all,
			    json_pack("{s:s,s:o}", "key", m.items[i].key,
			        "state", s));
		}
		free(after);
		after     = m.n_items > 0 ? strdup(m.items[m.n_items - 1].key)
		                          : NULL;
		bool more = m.more;
		sl_read_models_free(&m);
		if (!more)
			break;
	}
	free(after);
	*count  = json_array_size(all);
	char *t = json_dumps(all, dump_flags);
	json_decref(all);
	return t;
}

/* A filter's stream (of one partition, or all with partition NULL) as one
 * compact JSON array text: of positions, or with with_partition of
 * [position, partition] pairs; its length in *count when not NULL. */
__attribute__((unused)) static char *
ru_filter_text(sl_client *c, const char *tenant, const char *filter,
    const char *partition, bool with_partition, size_t *count)
{
	json_t  *arr  = json_array();
	uint64_t from = 0;
	for (;;) {
		sl_filter_page pg;
		CHECK_EQ(sl_client_read_filter(
		             c, tenant, filter, partition, from, 1000, &pg),
		    SL_OK);
		for (size_t i = 0; i < pg.n_events; i++) {
			const sl_filter_event *fe = &pg.events[i];
			json_int_t pos = (json_int_t) fe->event.position;
			json_array_append_new(arr,
			    with_partition ? json_pack("[I,s]", pos,
			        fe->partition ? fe->partition : "(none)")
			                   : json_integer(pos));
		}
		from      = pg.next;
		bool more = pg.more;
		sl_filter_page_free(&pg);
		if (!more)
			break;
	}
	if (count != NULL)
		*count = json_array_size(arr);
	char *t = json_dumps(arr, JSON_COMPACT);
	json_decref(arr);
	return t;
}

/* Fail unless the plugin's text a (na items) equals b (nb items, built by
 * who) with at least want items; frees a and b. */
__attribute__((unused)) static void
ru_check_same_text(const char *what, const char *who, char *a, size_t na,
    char *b, size_t nb, size_t want)
{
	if (strcmp(a, b) != 0 || na < want) {
		fprintf(stderr,
		    "%s differ (%zu plugin, %zu %s, want %zu)\n"
		    "plugin: %.2000s\n%s: %.2000s\n",
		    what, na, nb, who, want, a, who, b);
		exit(1);
	}
	free(a);
	free(b);
}

/* ---- a fake remote client ---- */

typedef enum ru_mode {
	RU_GOOD,       /* answers as the protocol says */
	RU_GARBAGE,    /* answers calls with bytes that are not msgpack */
	RU_NOT_A_MAP,  /* answers calls with a msgpack array */
	RU_WRONG_CALL, /* answers with another call id */
	RU_WRONG_KIND, /* a projection call answered "included" */
	RU_NO_STATE,   /* "replace" without a state */
	RU_LATE,       /* answers calls after late_ms */
	RU_NEVER,      /* never answers calls; answers pings */
	RU_SILENT,     /* answers nothing, not even pings */
} ru_mode;

typedef struct ru_fake {
	nng_socket      sock;
	nng_dialer      dialer;
	pthread_t       th;
	atomic_int      mode;
	atomic_bool     stop;
	/* a daemon with auth: sends hello first; the answer carries this
	 * session (0: answered "pong", as a client that does not know it) */
	_Atomic uint64_t session;
	int             late_ms;
	pthread_mutex_t mu;
	/* what it got */
	uint64_t n_calls, n_pings;
	uint64_t last_call, last_session, last_attempt;
	char     last_op[32], last_tenant[64], last_type[64], last_key[128];
	char     last_reason[128];
	char    *last_state; /* JSON of the state it got */
	char    *last_event; /* JSON of the event it got */
} ru_fake;

/* The answer to a call in RU_GOOD: projections by key ("del" deletes,
 * "fail" fails without retry after 250 ms, anything else replaces the
 * state with n + 1 and the key); filters include the event into
 * partition "p-" + its stream ("nopart" as a stream: no partition). */
static void
ru_pack_good(msgpack_packer *pk, const msgpack_object *req, uint64_t call)
{
	const msgpack_object *op  = mp_get(req, "op");
	const msgpack_object *key = mp_get(req, "key");
	if (mp_str_eq(op, "ping")) {
		msgpack_pack_map(pk, 2);
		mp_pack_kv_u64(pk, "call", call);
		mp_pack_kv_str(pk, "outcome", "pong");
		return;
	}
	if (mp_str_eq(op, "filter")) {
		const msgpack_object *ev     = mp_get(req, "event");
		const msgpack_object *stream = mp_get(ev, "stream");
		if (mp_str_eq(stream, "nopart")) {
			msgpack_pack_map(pk, 2);
			mp_pack_kv_u64(pk, "call", call);
			mp_pack_kv_str(pk, "outcome", "included");
			return;
		}
		if (mp_str_eq(stream, "out")) {
			msgpack_pack_map(pk, 2);
			mp_pack_kv_u64(pk, "call", call);
			mp_pack_kv_str(pk, "outcome", "excluded");
			return;
		}
		char part[300];
		snprintf(part, sizeof(part), "p-%.*s",
		    (int) stream->via.str.size, stream->via.str.ptr);
		msgpack_pack_map(pk, 3);
		mp_pack_kv_u64(pk, "call", call);
		mp_pack_kv_str(pk, "outcome", "included");
		mp_pack_kv_str(pk, "partition", part);
		return;
	}
	if (mp_str_eq(key, "del")) {
		msgpack_pack_map(pk, 2);
		mp_pack_kv_u64(pk, "call", call);
		mp_pack_kv_str(pk, "outcome", "delete");
		return;
	}
	if (mp_str_eq(key, "fail")) {
		msgpack_pack_map(pk, 5);
		mp_pack_kv_u64(pk, "call", call);
		mp_pack_kv_str(pk, "outcome", "failed");
		mp_pack_kv_str(pk, "reason", "nope");
		mp_pack_kv_bool(pk, "retry", false);
		mp_pack_kv_u64(pk, "retry_after_ms", 250);
		return;
	}
	int64_t n = 0;
	mp_get_i64(mp_get(req, "state"), "n", &n);
	msgpack_pack_map(pk, 3);
	mp_pack_kv_u64(pk, "call", call);
	mp_pack_kv_str(pk, "outcome", "replace");
	mp_pack_cstr(pk, "state");
	msgpack_pack_map(pk, 2);
	mp_pack_kv_i64(pk, "n", n + 1);
	mp_pack_cstr(pk, "key");
	if (key != NULL && key->type == MSGPACK_OBJECT_STR)
		mp_pack_strn(pk, key->via.str.ptr, key->via.str.size);
	else
		msgpack_pack_nil(pk);
}

static void
ru_copy(char *dst, size_t cap, const msgpack_object *o)
{
	dst[0] = '\0';
	if (o != NULL && o->type == MSGPACK_OBJECT_STR)
		snprintf(
		    dst, cap, "%.*s", (int) o->via.str.size, o->via.str.ptr);
}

static void *
ru_fake_main(void *arg)
{
	ru_fake *f = arg;
	while (!atomic_load(&f->stop)) {
		nng_msg *msg;
		int      rv = nng_recvmsg(f->sock, &msg, 0);
		if (rv == NNG_ETIMEDOUT)
			continue;
		if (rv != 0)
			break;
		msgpack_zone   zone;
		msgpack_object req;
		size_t         off = 0;
		CHECK(msgpack_zone_init(&zone, 4096));
		CHECK(msgpack_unpack(nng_msg_body(msg), nng_msg_len(msg), &off,
		          &zone, &req)
		    == MSGPACK_UNPACK_SUCCESS);
		uint64_t call = 0, session = 0;
		mp_get_u64(&req, "call", &call);
		mp_get_u64(&req, "session", &session);
		const msgpack_object *op    = mp_get(&req, "op");
		/* hello (auth on) counts as a ping: no event */
		bool ping = mp_str_eq(op, "ping") || mp_str_eq(op, "hello");
		int                   mode  = atomic_load(&f->mode);
		const msgpack_object *retry = mp_get(&req, "retry");
		pthread_mutex_lock(&f->mu);
		if (ping) {
			f->n_pings++;
		} else {
			f->n_calls++;
			f->last_call    = call;
			f->last_session = session;
			ru_copy(f->last_op, sizeof(f->last_op), op);
			ru_copy(f->last_tenant, sizeof(f->last_tenant),
			    mp_get(&req, "tenant"));
			ru_copy(f->last_type, sizeof(f->last_type),
			    mp_get(mp_get(&req, "event"), "type"));
			ru_copy(f->last_key, sizeof(f->last_key),
			    mp_get(&req, "key"));
			ru_copy(f->last_reason, sizeof(f->last_reason),
			    mp_get(retry, "reason"));
			f->last_attempt = 0;
			mp_get_u64(retry, "attempt", &f->last_attempt);
			free(f->last_state);
			free(f->last_event);
			const msgpack_object *st = mp_get(&req, "state");
			f->last_state
			    = st != NULL ? mp_to_json_text(st) : NULL;
			f->last_event = mp_to_json_text(mp_get(&req, "event"));
		}
		pthread_mutex_unlock(&f->mu);

		/* the objects point into msg: it lives until answered */
		msgpack_sbuffer sb;
		msgpack_packer  pk;
		msgpack_sbuffer_init(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		bool     answer   = true;
		uint64_t session_ = atomic_load(&f->session);
		if (mp_str_eq(op, "hello")) {
			msgpack_pack_map(&pk, session_ != 0 ? 3 : 2);
			mp_pack_kv_u64(&pk, "call", call);
			mp_pack_kv_str(
			    &pk, "outcome", session_ != 0 ? "hello" : "pong");
			if (session_ != 0)
				mp_pack_kv_u64(&pk, "session", session_);
		} else if (mode == RU_SILENT || (mode == RU_NEVER && !ping)) {
			answer = false;
		} else if (ping || mode == RU_GOOD) {
			ru_pack_good(&pk, &req, call);
		} else if (mode == RU_GARBAGE) {
			msgpack_sbuffer_write(&sb, "\xc1garbage", 8);
		} else if (mode == RU_NOT_A_MAP) {
			msgpack_pack_array(&pk, 1);
			msgpack_pack_uint64(&pk, call);
		} else if (mode == RU_WRONG_CALL) {
			ru_pack_good(&pk, &req, call + 1000);
		} else if (mode == RU_WRONG_KIND) {
			msgpack_pack_map(&pk, 2);
			mp_pack_kv_u64(&pk, "call", call);
			mp_pack_kv_str(&pk, "outcome", "included");
		} else if (mode == RU_NO_STATE) {
			msgpack_pack_map(&pk, 2);
			mp_pack_kv_u64(&pk, "call", call);
			mp_pack_kv_str(&pk, "outcome", "replace");
		} else if (mode == RU_LATE) {
			ru_sleep_ms(f->late_ms);
			ru_pack_good(&pk, &req, call);
		}
		msgpack_zone_destroy(&zone);
		nng_msg_free(msg);
		if (answer) {
			nng_msg *rep;
			CHECK(nng_msg_alloc(&rep, sb.size) == 0);
			memcpy(nng_msg_body(rep), sb.data, sb.size);
			if (nng_sendmsg(f->sock, rep, 0) != 0)
				nng_msg_free(rep);
		}
		msgpack_sbuffer_destroy(&sb);
	}
	return NULL;
}

/* Dial url (the runtime listens there) and answer on a thread: hello
 * with session (0: as a client that does not know it), a connection the
 * runtime closed dialed again after reconn_ms. */
__attribute__((unused)) static ru_fake *
ru_fake_start_ex(
    const char *url, ru_mode mode, uint64_t session, int reconn_ms)
{
	ru_fake *f = calloc(1, sizeof(*f));
	CHECK(f != NULL);
	atomic_init(&f->mode, mode);
	atomic_init(&f->stop, false);
	atomic_init(&f->session, session);
	f->late_ms = 1000;
	pthread_mutex_init(&f->mu, NULL);
	CHECK(nng_rep0_open(&f->sock) == 0);
	nng_socket_set_ms(f->sock, NNG_OPT_RECVTIMEO, 20);
	nng_socket_set_size(f->sock, NNG_OPT_RECVMAXSZ, 0);
	nng_socket_set_ms(f->sock, NNG_OPT_RECONNMINT, reconn_ms);
	nng_socket_set_ms(
	    f->sock, NNG_OPT_RECONNMAXT, reconn_ms > 100 ? reconn_ms : 100);
	CHECK(nng_dial(f->sock, url, &f->dialer, NNG_FLAG_NONBLOCK) == 0);
	CHECK(pthread_create(&f->th, NULL, ru_fake_main, f) == 0);
	return f;
}

/* ru_fake_start_ex without a session, dialing again after 20 ms. */
__attribute__((unused)) static ru_fake *
ru_fake_start(const char *url, ru_mode mode)
{
	return ru_fake_start_ex(url, mode, 0, 20);
}

/* Close its socket (the runtime sees the client go) and free it. */
__attribute__((unused)) static void
ru_fake_stop(ru_fake *f)
{
	if (f == NULL)
		return;
	atomic_store(&f->stop, true);
	pthread_join(f->th, NULL);
	/* The connection first, then the socket without peers (NNG 1.5 can
	 * hang closing a socket whose peer keeps sending). */
	nng_dialer_close(f->dialer);
	server_close_socket(f->sock);
	free(f->last_state);
	free(f->last_event);
	pthread_mutex_destroy(&f->mu);
	free(f);
}

__attribute__((unused)) static uint64_t
ru_fake_calls(ru_fake *f)
{
	pthread_mutex_lock(&f->mu);
	uint64_t n = f->n_calls;
	pthread_mutex_unlock(&f->mu);
	return n;
}

__attribute__((unused)) static uint64_t
ru_fake_pings(ru_fake *f)
{
	pthread_mutex_lock(&f->mu);
	uint64_t n = f->n_pings;
	pthread_mutex_unlock(&f->mu);
	return n;
}

#endif
