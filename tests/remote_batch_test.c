/*
 * Remote protocol 2 (docs/remote.md, "Protocol version 2") against a real
 * sluiced, with a client written here on a raw NNG rep0 socket that folds
 * runs itself, so that every answer can be made right or wrong on purpose:
 *  - calls carry runs: each key at most once per call, a run's events in
 *    log order, at most remote.batch events per call, many calls in
 *    flight; each run's state is the one the key's previous run left (a
 *    key is never in two calls in flight); the read models are the fold's;
 *  - a delete inside a run, and a run that ends deleted;
 *  - a failure in the middle of a run: the earlier events take effect, the
 *    failing one and the later ones wait and are retried (the retry's run
 *    starts at the failing event, attempt 1);
 *  - malformed answers (runs count, applied over the run, no state, no
 *    failure), a call never answered (timeout): each fails the units of
 *    the call with a clear reason and changes nothing; answered well
 *    afterwards, each event takes effect once;
 *  - calls are cut before 4 MiB;
 *  - a takeover by a client of protocol 1 (same definition): it gets
 *    version 1 calls, an event each, from the checkpoint; and back;
 *  - a partitioned filter: calls of events with their retry states, one
 *    outcome each; a wrong count of outcomes fails the call, changing
 *    nothing.
 */
#include <inttypes.h>

#include "daemon_testutil.h"
#include "remote_testutil.h"

#define TENANT     "demo"
#define PID        "b1111111-2222-4333-8444-555555555555"
#define PNAME      "sums"
#define FID        "c1111111-2222-4333-8444-555555555555"
#define FNAME      "all by stream"
#define BATCH      8
#define TIMEOUT_MS 400
#define MAX_KEYS   256

typedef enum bmode {
	B_GOOD,
	B_BAD_COUNT,   /* one run too few */
	B_BAD_APPLIED, /* applied over the run's events */
	B_NO_STATE,    /* applied > 0 without a state */
	B_NO_FAILED,   /* applied < events without a failure */
	B_SILENT,      /* calls never answered (pings are) */
	B_RUN_ARRAY,   /* a run answered as an array, not a map */
	B_BAD_DELETED, /* 'deleted' not a bool */
	B_DUP_APPLIED, /* 'applied' twice: the first (over the run) counts */
	B_CALL_LAST,   /* well formed, 'call' after 'runs' */
} bmode;

/* What the client remembers of a key: the state it last answered. */
typedef struct kstate {
	char    key[64];
	int64_t sum, n;
	bool    exists;
} kstate;

typedef struct bfake {
	nng_socket      sock;
	nng_dialer      dialer;
	pthread_t       th;
	atomic_int      mode;
	atomic_bool     stop;
	atomic_bool     check_states; /* runs' states against kstates */
	int             fail_after_ms;
	pthread_mutex_t mu;
	/* what it saw */
	uint64_t calls, multi_calls, events, max_events, max_run;
	uint64_t dup_keys, unordered, over_batch, bad_states, del_inside;
	size_t   max_bytes_multi; /* the largest call of more than 1 event */
	uint64_t retried_pos[16];
	size_t   n_retried;
	kstate   keys[MAX_KEYS];
	size_t   n_keys;
} bfake;

static ru_paths   P;
static pid_t      daemon_pid = -1;
static sl_client *cl, *wcl;
static char       url[400];

static kstate *
kfind(bfake *f, const char *key, size_t len)
{
	for (size_t i = 0; i < f->n_keys; i++)
		if (strlen(f->keys[i].key) == len
		    && memcmp(f->keys[i].key, key, len) == 0)
			return &f->keys[i];
	CHECK(f->n_keys < MAX_KEYS && len < sizeof(f->keys[0].key));
	kstate *k = &f->keys[f->n_keys++];
	memset(k, 0, sizeof(*k));
	memcpy(k->key, key, len);
	return k;
}

static void
pack_sum_state(msgpack_packer *pk, int64_t sum, int64_t n)
{
	msgpack_pack_map(pk, 2);
	mp_pack_cstr(pk, "sum");
	msgpack_pack_int64(pk, sum);
	mp_pack_cstr(pk, "n");
	msgpack_pack_int64(pk, n);
}

/* Fold one run and pack its answer (mode permitting). */
static void
answer_run(bfake *f, const msgpack_object *run, int mode, msgpack_packer *pk)
{
	const msgpack_object *key     = mp_get(run, "key");
	const msgpack_object *evs     = mp_get(run, "events");
	const msgpack_object *st      = mp_get(run, "state");
	uint64_t              attempt = 0;
	int64_t               sum = 0, n = 0;
	CHECK(key != NULL && key->type == MSGPACK_OBJECT_STR);
	CHECK(evs != NULL && evs->type == MSGPACK_OBJECT_ARRAY);
	CHECK(st != NULL && st->type == MSGPACK_OBJECT_MAP);
	mp_get_u64(mp_get(run, "retry"), "attempt", &attempt);
	mp_get_i64(st, "sum", &sum);
	mp_get_i64(st, "n", &n);
	size_t ne = evs->via.array.size;
	if (ne > f->max_run)
		f->max_run = ne;

	kstate *k = kfind(f, key->via.str.ptr, key->via.str.size);
	if (atomic_load(&f->check_states)
	    && (k->exists ? (k->sum != sum || k->n != n)
	                  : (sum != 0 || n != 0)))
		f->bad_states++;

	size_t   applied = 0;
	bool     deleted = false, failed = false;
	char     reason[128];
	uint64_t prev = 0;
	for (size_t j = 0; j < ne; j++) {
		const msgpack_object *ev   = &evs->via.array.ptr[j];
		const msgpack_object *c    = mp_get(ev, "content");
		uint64_t              pos  = 0;
		bool                  fail = false;
		int64_t               v    = 0;
		mp_get_u64(ev, "position", &pos);
		if (j > 0 && pos <= prev)
			f->unordered++;
		prev = pos;
		if (j == 0 && attempt > 0 && f->n_retried < 16)
			f->retried_pos[f->n_retried++] = pos;
		if (failed)
			continue;
		mp_get_bool(c, "fail", &fail);
		mp_get_i64(c, "v", &v);
		if (mp_str_eq(mp_get(ev, "type"), "Del")) {
			sum = n = 0;
			deleted = true;
			if (j + 1 < ne)
				f->del_inside++;
			applied++;
		} else if (fail && !(j == 0 && attempt > 0)) {
			failed = true;
			snprintf(
			    reason, sizeof(reason), "fail at %" PRIu64, pos);
		} else {
			sum += v;
			n++;
			deleted = false;
			applied++;
		}
	}
	if (mode == B_GOOD || mode == B_CALL_LAST) {
		k->exists = !deleted;
		k->sum    = sum;
		k->n      = n;
	}
	size_t a           = mode == B_BAD_APPLIED                     ? ne + 1
	              : mode == B_NO_FAILED && ne > 0 && applied == ne ? ne - 1
	                                                               : applied;
	bool   with_state  = a > 0 && mode != B_NO_STATE;
	bool   with_failed = failed && mode != B_NO_FAILED;
	if (mode == B_RUN_ARRAY) {
		msgpack_pack_array(pk, 1);
		mp_pack_cstr(pk, "applied");
		return;
	}
	if (mode == B_BAD_DELETED) {
		msgpack_pack_map(pk, 2);
		mp_pack_kv_u64(pk, "applied", a);
		mp_pack_kv_str(pk, "deleted", "yes");
		return;
	}
	msgpack_pack_map(
	    pk, 1 + with_state + with_failed + (mode == B_DUP_APPLIED));
	if (mode == B_DUP_APPLIED)
		mp_pack_kv_u64(pk, "applied", ne + 1);
	mp_pack_kv_u64(pk, "applied", a);
	if (with_state && deleted && !failed) {
		mp_pack_kv_bool(pk, "deleted", true);
	} else if (with_state) {
		mp_pack_cstr(pk, "state");
		pack_sum_state(pk, sum, n);
	}
	if (with_failed) {
		mp_pack_cstr(pk, "failed");
		msgpack_pack_map(pk, 3);
		mp_pack_kv_str(pk, "reason", reason);
		mp_pack_kv_bool(pk, "retry", true);
		mp_pack_kv_u64(
		    pk, "retry_after_ms", (uint64_t) f->fail_after_ms);
	}
}

/* A filter's call: every event included in the partition of its stream
 * (B_BAD_COUNT: one outcome short). */
static void
answer_filter(
    bfake *f, const msgpack_object *req, int mode, msgpack_packer *pk)
{
	const msgpack_object *evs = mp_get(req, "events");
	const msgpack_object *rts = mp_get(req, "retries");
	CHECK(evs != NULL && evs->type == MSGPACK_OBJECT_ARRAY);
	CHECK(rts != NULL && rts->type == MSGPACK_OBJECT_ARRAY);
	CHECK_EQ(evs->via.array.size, rts->via.array.size);
	pthread_mutex_lock(&f->mu);
	f->calls++;
	f->events += evs->via.array.size;
	if (evs->via.array.size > 1)
		f->multi_calls++;
	pthread_mutex_unlock(&f->mu);
	size_t n = evs->via.array.size;
	if (mode == B_BAD_COUNT && n > 0)
		n--;
	mp_pack_cstr(pk, "outcomes");
	msgpack_pack_array(pk, n);
	for (size_t i = 0; i < n; i++) {
		const char *stream;
		size_t      len;
		CHECK_EQ(mp_get_str(
		             &evs->via.array.ptr[i], "stream", &stream, &len),
		    SL_OK);
		msgpack_pack_map(pk, 2);
		mp_pack_kv_str(pk, "outcome", "included");
		mp_pack_cstr(pk, "partition");
		msgpack_pack_str(pk, len);
		msgpack_pack_str_body(pk, stream, len);
	}
}

static void *
bfake_main(void *arg)
{
	bfake *f = arg;
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
		uint64_t call = 0;
		mp_get_u64(&req, "call", &call);
		int             mode = atomic_load(&f->mode);
		bool            ping = mp_str_eq(mp_get(&req, "op"), "ping");
		msgpack_sbuffer sb;
		msgpack_packer  pk;
		msgpack_sbuffer_init(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		bool call_last = mode == B_CALL_LAST && !ping
		    && mp_str_eq(mp_get(&req, "op"), "project");
		msgpack_pack_map(&pk, 2);
		if (!call_last)
			mp_pack_kv_u64(&pk, "call", call);
		if (ping) {
			mp_pack_kv_str(&pk, "outcome", "pong");
		} else {
			if (mp_str_eq(mp_get(&req, "op"), "filter")) {
				answer_filter(f, &req, mode, &pk);
				goto send;
			}
			CHECK(mp_str_eq(mp_get(&req, "op"), "project"));
			CHECK(mp_get(&req, "event")
			    == NULL); /* not protocol 1 */
			const msgpack_object *runs = mp_get(&req, "runs");
			CHECK(runs != NULL
			    && runs->type == MSGPACK_OBJECT_ARRAY);
			pthread_mutex_lock(&f->mu);
			f->calls++;
			size_t nr = runs->via.array.size, total = 0;
			for (size_t i = 0; i < nr; i++) {
				const msgpack_object *ki
				    = mp_get(&runs->via.array.ptr[i], "key");
				const msgpack_object *ei = mp_get(
				    &runs->via.array.ptr[i], "events");
				total += ei != NULL ? ei->via.array.size : 0;
				for (size_t j = 0; j < i; j++) {
					const msgpack_object *kj = mp_get(
					    &runs->via.array.ptr[j], "key");
					if (kj->via.str.size
					        == ki->via.str.size
					    && memcmp(kj->via.str.ptr,
					           ki->via.str.ptr,
					           ki->via.str.size)
					        == 0)
						f->dup_keys++;
				}
			}
			f->events += total;
			if (total > f->max_events)
				f->max_events = total;
			if (total > BATCH)
				f->over_batch++;
			if (total > 1) {
				f->multi_calls++;
				if (nng_msg_len(msg) > f->max_bytes_multi)
					f->max_bytes_multi = nng_msg_len(msg);
			}
			mp_pack_cstr(&pk, "runs");
			msgpack_pack_array(
			    &pk, mode == B_BAD_COUNT && nr > 0 ? nr - 1 : nr);
			for (size_t i = 0; i < nr; i++)
				if (!(mode == B_BAD_COUNT && i == nr - 1))
					answer_run(f, &runs->via.array.ptr[i],
					    mode, &pk);
			if (call_last)
				mp_pack_kv_u64(&pk, "call", call);
			pthread_mutex_unlock(&f->mu);
		}
	send:
		msgpack_zone_destroy(&zone);
		nng_msg_free(msg);
		if (ping || mode != B_SILENT) {
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

static bfake *
bfake_start(bfake *f)
{
	if (f == NULL) {
		f = calloc(1, sizeof(*f));
		CHECK(f != NULL);
		pthread_mutex_init(&f->mu, NULL);
		f->fail_after_ms = 1500;
	}
	atomic_init(&f->stop, false);
	CHECK(nng_rep0_open(&f->sock) == 0);
	nng_socket_set_ms(f->sock, NNG_OPT_RECVTIMEO, 20);
	nng_socket_set_size(f->sock, NNG_OPT_RECVMAXSZ, 0);
	nng_socket_set_ms(f->sock, NNG_OPT_RECONNMINT, 20);
	nng_socket_set_ms(f->sock, NNG_OPT_RECONNMAXT, 100);
	CHECK(nng_dial(f->sock, url, &f->dialer, NNG_FLAG_NONBLOCK) == 0);
	CHECK(pthread_create(&f->th, NULL, bfake_main, f) == 0);
	return f;
}

/* Disconnect (the fake's memory stays for bfake_start again). */
static void
bfake_stop(bfake *f)
{
	atomic_store(&f->stop, true);
	pthread_join(f->th, NULL);
	nng_dialer_close(f->dialer);
	server_close_socket(f->sock);
}

/* Register the projection (again) with protocol; its URL in url. */
static void
register_as(int protocol, const char *want_registration)
{
	char    req[600];
	json_t *rep;
	snprintf(req, sizeof(req),
	    "{\"v\":1,\"op\":\"register\",\"protocol\":%d,\"kind\":"
	    "\"projection\",\"id\":\"" PID "\",\"name\":\"" PNAME
	    "\",\"initial_state\":{\"sum\":0,\"n\":0},\"selectors\":["
	    "{\"type\":\"Add\",\"key\":\"property\",\"arg\":\"k\"},"
	    "{\"type\":\"Del\",\"key\":\"property\",\"arg\":\"k\"}]}",
	    protocol);
	CHECK_EQ(ru_request(cl, req, &rep), SL_OK);
	CHECK_EQ(
	    json_integer_value(json_object_get(rep, "protocol")), protocol);
	if (protocol == 2)
		CHECK_EQ(
		    json_integer_value(json_object_get(rep, "batch")), BATCH);
	else
		CHECK(json_object_get(rep, "batch") == NULL);
	CHECK_STREQ(json_string_value(json_object_get(rep, "registration")),
	    want_registration);
	snprintf(url, sizeof(url), "%s",
	    json_string_value(json_object_get(rep, "url")));
	json_decref(rep);
}

static void
write_config(void)
{
	char extra[64];
	snprintf(extra, sizeof(extra), "  window: 4\n  batch: %d\n", BATCH);
	ru_write_config_ex(
	    &P, SL_PLUGIN_DIR, false, TENANT, TIMEOUT_MS, extra);
}

static void
add(const char *key, int64_t v, bool fail)
{
	char content[160];
	snprintf(content, sizeof(content),
	    "{\"k\":\"%s\",\"v\":%" PRId64 "%s}", key, v,
	    fail ? ",\"fail\":true" : "");
	ru_commit1(
	    &wcl, P.api_url, TENANT, key, SL_EXPECT_ANY, "Add", content);
}

/* The processor: at the head with nothing failing. */
static void
wait_caught_up(int ms)
{
	const char *names[] = { PNAME };
	ru_wait_caught_up(cl, names, 1, 0, false, ms, &P, "(no client log)");
}

/* get_one: whether found, and sum and n. */
static bool
get(const char *key, int64_t *sum, int64_t *n)
{
	char    req[400];
	json_t *rep;
	snprintf(req, sizeof(req),
	    "{\"v\":1,\"op\":\"get_one\",\"tenant\":\"" TENANT
	    "\",\"projection\":\"" PNAME "\",\"key\":\"%s\"}",
	    key);
	CHECK_EQ(ru_request(cl, req, &rep), SL_OK);
	bool    found = json_is_true(json_object_get(rep, "found"));
	json_t *st    = json_object_get(rep, "state");
	*sum          = json_integer_value(json_object_get(st, "sum"));
	*n            = json_integer_value(json_object_get(st, "n"));
	json_decref(rep);
	return found;
}

static void
expect_state(const char *key, bool found, int64_t sum, int64_t n)
{
	int64_t s, c;
	bool    f = get(key, &s, &c);
	if (f != found || s != sum || c != n) {
		fprintf(stderr,
		    "key %s: found %d sum %" PRId64 " n %" PRId64
		    ", want %d %" PRId64 " %" PRId64 "\n",
		    key, f, s, c, found, sum, n);
		CHECK(false);
	}
}

/* Wait until the processor's failing units include key with a reason
 * containing what; @return its position. */
static uint64_t
wait_failing_in(const char *name, const char *key, const char *what, int ms)
{
	int64_t end = dt_now_ms() + ms;
	for (;;) {
		json_t  *st  = ru_status(cl);
		json_t  *p   = ru_proc_named(st, name), *u;
		uint64_t pos = UINT64_MAX;
		size_t   i;
		json_array_foreach(json_object_get(p, "failing"), i, u)
		{
			const char *part = json_string_value(
			    json_object_get(u, "partition"));
			const char *reason
			    = json_string_value(json_object_get(u, "reason"));
			if (part != NULL
			    && (key == NULL || strcmp(part, key) == 0)
			    && reason != NULL && strstr(reason, what) != NULL)
				pos = (uint64_t) json_integer_value(
				    json_object_get(u, "position"));
		}
		if (pos == UINT64_MAX && dt_now_ms() > end) {
			char *t = json_dumps(p, JSON_INDENT(1));
			fprintf(stderr, "no failing key %s (%s):\n%s\n",
			    key != NULL ? key : "(any)", what,
			    t != NULL ? t : "(no status)");
			free(t);
			DT_FAIL_LOG(P.log_path, "not failing as expected");
		}
		json_decref(st);
		if (pos != UINT64_MAX)
			return pos;
		dt_sleep_ms(20);
	}
}

static uint64_t
wait_failing(const char *key, const char *what, int ms)
{
	return wait_failing_in(PNAME, key, what, ms);
}

static int64_t
head(void)
{
	json_t *st = ru_status(cl);
	int64_t h  = json_integer_value(json_object_get(st, "head"));
	json_decref(st);
	return h;
}

int
main(void)
{
	ru_paths_init(&P);
	write_config();
	daemon_pid = ru_daemon_start(&P);
	CHECK_EQ(sl_client_open(P.api_url, 15000, &cl), SL_OK);

	register_as(2, "new");

	/* 1. runs: many keys, many calls in flight, deletes inside runs */
	int64_t want[10] = { 0 };
	for (int i = 0; i < 30; i++)
		for (int k = 0; k < 10; k++) {
			char key[16];
			snprintf(key, sizeof(key), "k%d", k);
			add(key, i * 10 + k, false);
			want[k] += i * 10 + k;
		}
	bfake *f = bfake_start(NULL);
	atomic_store(&f->check_states, true);
	wait_caught_up(30000);
	/* each key's events in one commit, the client idle: one run each */
	{
		sl_new_event d[4] = {
			{ .type           = "Add",
			    .content_json = "{\"k\":\"d\",\"v\":1}" },
			{ .type           = "Add",
			    .content_json = "{\"k\":\"d\",\"v\":2}" },
			{ .type = "Del", .content_json = "{\"k\":\"d\"}" },
			{ .type           = "Add",
			    .content_json = "{\"k\":\"d\",\"v\":5}" },
		};
		sl_new_event e[2] = {
			{ .type           = "Add",
			    .content_json = "{\"k\":\"e\",\"v\":1}" },
			{ .type = "Del", .content_json = "{\"k\":\"e\"}" },
		};
		sl_commit_result r;
		CHECK_EQ(sl_client_commit(
		             wcl, TENANT, "d", SL_EXPECT_ANY, d, 4, &r),
		    SL_OK);
		CHECK_EQ(sl_client_commit(
		             wcl, TENANT, "e", SL_EXPECT_ANY, e, 2, &r),
		    SL_OK);
	}
	wait_caught_up(10000);
	for (int k = 0; k < 10; k++) {
		char key[16];
		snprintf(key, sizeof(key), "k%d", k);
		expect_state(key, true, want[k], 30);
	}
	expect_state("d", true, 5, 1);
	expect_state("e", false, 0, 0);
	pthread_mutex_lock(&f->mu);
	printf("phase 1: %" PRIu64 " calls, %" PRIu64
	       " events, at most %" PRIu64 " per call, runs up to %" PRIu64
	       "\n",
	    f->calls, f->events, f->max_events, f->max_run);
	CHECK_EQ(f->events, 306);
	CHECK(f->multi_calls > 0);
	CHECK(f->max_run > 1);
	CHECK_EQ(f->max_events, BATCH);
	CHECK_EQ(f->over_batch, 0);
	CHECK_EQ(f->dup_keys, 0);
	CHECK_EQ(f->unordered, 0);
	CHECK_EQ(f->bad_states, 0);
	CHECK(f->del_inside >= 1);
	pthread_mutex_unlock(&f->mu);
	atomic_store(&f->check_states, false);

	/* 2. a failure in the middle of a run: one commit of four events of
	 * key f (one run); the first two take effect, the third fails, it and
	 * the fourth wait, then are retried from the third (attempt 1) */
	{
		sl_new_event e[4] = {
			{ .type           = "Add",
			    .content_json = "{\"k\":\"f\",\"v\":1}" },
			{ .type           = "Add",
			    .content_json = "{\"k\":\"f\",\"v\":2}" },
			{ .type = "Add",
			    .content_json
			    = "{\"k\":\"f\",\"v\":4,\"fail\":true}" },
			{ .type           = "Add",
			    .content_json = "{\"k\":\"f\",\"v\":8}" },
		};
		sl_commit_result r;
		CHECK_EQ(sl_client_commit(
		             wcl, TENANT, "f", SL_EXPECT_ANY, e, 4, &r),
		    SL_OK);
		uint64_t pos = wait_failing("f", "fail at", 5000);
		CHECK_EQ(pos, (uint64_t) head() - 2);
		expect_state("f", true, 3, 2);
		wait_caught_up(10000);
		expect_state("f", true, 15, 4);
		pthread_mutex_lock(&f->mu);
		CHECK(f->n_retried >= 1);
		CHECK_EQ(f->retried_pos[0], pos);
		pthread_mutex_unlock(&f->mu);
	}

	/* 3. malformed answers fail the call's units with the reason, change
	 * nothing; answered well, each event takes effect once */
	static const struct {
		bmode       mode;
		const char *reason;
	} bad[] = {
		{ B_BAD_COUNT, "runs answered, the call had" },
		{ B_BAD_APPLIED, "'applied' is missing, not a uint or over" },
		{ B_NO_STATE, "no 'state' map" },
		{ B_NO_FAILED, "but no 'failed' map" },
		{ B_RUN_ARRAY, "run 0 is not a map" },
		{ B_BAD_DELETED, "'deleted' is not a bool" },
		{ B_DUP_APPLIED, "'applied' is missing, not a uint or over" },
	};
	int64_t m = 0;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *st    = ru_status(cl);
		int64_t fails = json_integer_value(
		    json_object_get(ru_remote(st, PID), "failed_calls"));
		json_decref(st);
		atomic_store(&f->mode, bad[i].mode);
		add("m", 100 + (int64_t) i, false);
		wait_failing("m", bad[i].reason, 5000);
		st        = ru_status(cl);
		json_t *r = ru_remote(st, PID);
		CHECK(json_integer_value(json_object_get(r, "failed_calls"))
		    > fails);
		CHECK(
		    strstr(json_string_value(json_object_get(r, "last_error")),
		        bad[i].reason)
		    != NULL);
		json_decref(st);
		expect_state("m", m > 0, m, (int64_t) i);
		atomic_store(&f->mode, B_GOOD);
		wait_caught_up(10000);
		m += 100 + (int64_t) i;
		expect_state("m", true, m, (int64_t) i + 1);
	}
	/* the answer's fields in another order: taken as well */
	atomic_store(&f->mode, B_CALL_LAST);
	add("m", 1000, false);
	wait_caught_up(10000);
	m += 1000;
	expect_state(
	    "m", true, m, (int64_t) (sizeof(bad) / sizeof(bad[0])) + 1);
	atomic_store(&f->mode, B_GOOD);

	/* 4. a call never answered: timed out, retried */
	atomic_store(&f->mode, B_SILENT);
	add("t", 7, false);
	char why[64];
	snprintf(why, sizeof(why), "timed out after %d ms", TIMEOUT_MS);
	wait_failing("t", why, 5000);
	expect_state("t", false, 0, 0);
	atomic_store(&f->mode, B_GOOD);
	wait_caught_up(10000);
	expect_state("t", true, 7, 1);

	/* 5. calls are cut before 4 MiB: ten events of 600 KB while the
	 * client is away, then caught up in calls of at most 4 MiB */
	bfake_stop(f);
	CHECK(ru_wait_connected(cl, PID, false, 5000));
	size_t big     = 600 * 1024;
	char  *content = malloc(big + 100);
	CHECK(content != NULL);
	for (int i = 0; i < 10; i++) {
		char key[16];
		snprintf(key, sizeof(key), "big%d", i);
		int n = snprintf(
		    content, 100, "{\"k\":\"%s\",\"v\":1,\"pad\":\"", key);
		memset(content + n, 'x', big);
		strcpy(content + n + big, "\"}");
		ru_commit1(&wcl, P.api_url, TENANT, key, SL_EXPECT_ANY, "Add",
		    content);
	}
	free(content);
	pthread_mutex_lock(&f->mu);
	uint64_t calls_before = f->calls;
	f->max_bytes_multi    = 0;
	pthread_mutex_unlock(&f->mu);
	bfake_start(f);
	wait_caught_up(20000);
	expect_state("big9", true, 1, 1);
	pthread_mutex_lock(&f->mu);
	printf("phase 5: %" PRIu64 " calls, the largest of several events %zu "
	       "bytes\n",
	    f->calls - calls_before, f->max_bytes_multi);
	CHECK(f->calls - calls_before >= 2); /* 6 MB in calls under 4 MiB */
	CHECK(f->max_bytes_multi <= (size_t) 4 << 20);
	CHECK(f->max_bytes_multi > (size_t) 2 << 20);
	pthread_mutex_unlock(&f->mu);

	/* 6. a takeover by a protocol 1 client of the same definition: it
	 * goes on from the checkpoint with version 1 calls (an event each,
	 * with its key and state), then a protocol 2 client takes it back */
	bfake_stop(f);
	CHECK(ru_wait_connected(cl, PID, false, 5000));
	add("v1a", 3, false); /* waits for a client */
	register_as(1, "same");
	json_t *st = ru_status(cl);
	CHECK_EQ(json_integer_value(
	             json_object_get(ru_remote(st, PID), "protocol")),
	    1);
	CHECK_EQ(
	    json_integer_value(json_object_get(ru_remote(st, PID), "batch")),
	    1);
	json_decref(st);
	ru_fake *v1 = ru_fake_start(url, RU_GOOD);
	wait_caught_up(10000);
	pthread_mutex_lock(&v1->mu);
	CHECK_EQ(v1->n_calls, 1); /* v1a's event alone: nothing redone */
	CHECK_STREQ(v1->last_op, "project");
	CHECK_STREQ(v1->last_key, "v1a");
	CHECK(v1->last_event != NULL
	    && strstr(v1->last_event, "\"v1a\"") != NULL);
	pthread_mutex_unlock(&v1->mu);
	int64_t s1, n1;
	CHECK(get("v1a", &s1, &n1)); /* RU_GOOD's state: {n: 1, key} */
	CHECK_EQ(n1, 1);
	ru_fake_stop(v1);
	CHECK(ru_wait_connected(cl, PID, false, 5000));
	register_as(2, "same");
	bfake_start(f);
	add("v2a", 4, false);
	wait_caught_up(10000);
	expect_state("v2a", true, 4, 1);

	/* 7. a partitioned filter of protocol 2: every event in the
	 * partition of its stream; one outcome short fails the call */
	json_t *frep;
	CHECK_EQ(ru_request(cl,
	             "{\"v\":1,\"op\":\"register\",\"protocol\":2,"
	             "\"kind\":\"filter\",\"id\":\"" FID "\",\"name\":\"" FNAME
	             "\",\"filter_kind\":\"partitioned\"}",
	             &frep),
	    SL_OK);
	snprintf(url, sizeof(url), "%s",
	    json_string_value(json_object_get(frep, "url")));
	json_decref(frep);
	bfake      *ff       = bfake_start(NULL);
	const char *fnames[] = { FNAME };
	ru_wait_caught_up(cl, fnames, 1, 0, false, 20000, &P, "(none)");
	size_t count;
	free(ru_filter_text(cl, TENANT, FNAME, NULL, false, &count));
	CHECK_EQ((int64_t) count, head());
	pthread_mutex_lock(&ff->mu);
	CHECK_EQ((int64_t) ff->events, head());
	CHECK(ff->multi_calls > 0);
	pthread_mutex_unlock(&ff->mu);
	atomic_store(&ff->mode, B_BAD_COUNT);
	add("fz", 1, false);
	add("fz", 2, false);
	wait_failing_in(FNAME, NULL, "outcomes answered, the call had", 5000);
	free(ru_filter_text(cl, TENANT, FNAME, NULL, false, &count));
	CHECK_EQ((int64_t) count, head() - 2);
	atomic_store(&ff->mode, B_GOOD);
	ru_wait_caught_up(cl, fnames, 1, 0, false, 10000, &P, "(none)");
	free(ru_filter_text(cl, TENANT, FNAME, NULL, false, &count));
	CHECK_EQ((int64_t) count, head());
	bfake_stop(ff);
	pthread_mutex_destroy(&ff->mu);
	free(ff);

	bfake_stop(f);
	pthread_mutex_destroy(&f->mu);
	free(f);
	sl_client_close(wcl);
	sl_client_close(cl);
	ru_daemon_stop(daemon_pid, P.log_path);
	printf("remote_batch_test: ok\n");
	return 0;
}
