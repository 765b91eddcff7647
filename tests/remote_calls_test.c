/*
 * The reverse calls of a registration (runtime/remote/remote.h) over real NNG
 * sockets, driven from the test the way a processor drives them, against a
 * fake client (a raw rep0 socket) that answers well, with garbage, with
 * another call id, late, never, or not even pings: each call gets its
 * answer or a failure to retry, in the window; keep-alive pings, a client
 * going away (calls answered "disconnected"), coming back, and the
 * runtime answering other requests meanwhile. No event is committed, so
 * the registrations' own processors make no calls of their own.
 */
#include <inttypes.h>

#include "api_fixture.h"
#include "event.h"
#include "remote.h"
#include "remote_testutil.h"

#define PID "51111111-2222-4333-8444-555555555555" /* projection */
#define FID "61111111-2222-4333-8444-555555555555" /* filter */
#define QID "71111111-2222-4333-8444-555555555555" /* 2nd projection */

#define TIMEOUT_MS 400
#define WINDOW     4

static sl_client *cl;

/* A stored event (as the log holds it) of tenant FX_TENANT. */
typedef struct stored {
	msgpack_sbuffer sb;
} stored;

static void
make_event(
    stored *e, const char *stream, const char *type, const char *content_json)
{
	msgpack_sbuffer cb;
	msgpack_packer  pk;
	msgpack_zone    zone;
	msgpack_object  content;
	char            err[128];
	size_t          off = 0;
	ev_new          ne;
	msgpack_sbuffer_init(&cb);
	msgpack_packer_init(&pk, &cb, msgpack_sbuffer_write);
	CHECK_EQ(json_text_to_mp(content_json, 1, &pk, err, sizeof(err)), 0);
	CHECK(msgpack_zone_init(&zone, 1024));
	CHECK(msgpack_unpack(cb.data, cb.size, &off, &zone, &content)
	    == MSGPACK_UNPACK_SUCCESS);
	memset(&ne, 0, sizeof(ne));
	ne.type        = type;
	ne.type_len    = strlen(type);
	ne.generation  = 1;
	ne.occurred_ns = 1732435200000000000LL;
	ne.content     = &content;
	ev_uuid_generate(ne.id);
	msgpack_sbuffer_init(&e->sb);
	msgpack_packer_init(&pk, &e->sb, msgpack_sbuffer_write);
	CHECK_EQ(ev_encode(&pk, FX_TENANT, strlen(FX_TENANT), stream,
	             strlen(stream), 3, &ne),
	    0);
	msgpack_zone_destroy(&zone);
	msgpack_sbuffer_destroy(&cb);
}

/* {"n": n} packed */
static void
pack_state(msgpack_sbuffer *sb, int n)
{
	msgpack_packer pk;
	msgpack_sbuffer_init(sb);
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 1);
	mp_pack_kv_i64(&pk, "n", n);
}

static uint64_t
start(remote_caller *c, const stored *e, const char *key, int n,
    uint32_t attempt, const char *reason)
{
	msgpack_sbuffer st;
	uint64_t        call = 0;
	pack_state(&st, n);
	remote_req req = {
		.tenant      = FX_TENANT,
		.event       = e->sb.data,
		.event_len   = e->sb.size,
		.position    = 42,
		.key         = key,
		.state       = st.data,
		.state_len   = st.size,
		.attempt     = attempt,
		.last_reason = reason,
	};
	CHECK_EQ(remote_call_start(c, &req, &call), SL_OK);
	CHECK(call > 0);
	msgpack_sbuffer_destroy(&st);
	return call;
}

static void
next(remote_caller *c, remote_resp *r)
{
	memset(r, 0, sizeof(*r));
	CHECK_EQ(remote_call_next(c, 5000, r), SL_OK);
}

/* The registration's session and url, from a register reply. */
static uint64_t
register_json(const char *json, char *url, size_t len)
{
	json_t *rep = NULL;
	CHECK_EQ(ru_request(cl, json, &rep), SL_OK);
	snprintf(
	    url, len, "%s", json_string_value(json_object_get(rep, "url")));
	uint64_t s
	    = (uint64_t) json_integer_value(json_object_get(rep, "session"));
	json_decref(rep);
	return s;
}

static remote_proc *
proc_of(const char *id)
{
	const proj_def *d = runtime_find_def(fx_rt, id, strlen(id));
	CHECK(d != NULL && d->remote != NULL);
	return d->remote;
}

static void
test_projection_calls(void)
{
	char     url[400];
	uint64_t session = register_json(
	    "{\"v\":1,\"op\":\"register\",\"protocol\":1,\"kind\":"
	    "\"projection\",\"id\":\"" PID "\",\"name\":\"calls\","
	    "\"selectors\":[{\"type\":\"T\",\"key\":\"event_source\"}]}",
	    url, sizeof(url));
	remote_proc   *rp = proc_of(PID);
	remote_caller *c;
	remote_resp    r;
	stored         ev;
	make_event(&ev, "s1", "T", "{\"amount\":5}");
	CHECK_EQ(remote_window(rp), WINDOW);
	CHECK_EQ(remote_caller_open(rp, &c), SL_OK);

	/* not connected: nothing is sent; waiting times out */
	CHECK(!remote_connected(rp));
	msgpack_sbuffer st;
	pack_state(&st, 0);
	remote_req req = { .tenant = FX_TENANT,
		.event             = ev.sb.data,
		.event_len         = ev.sb.size,
		.position          = 42,
		.key               = "k",
		.state             = st.data,
		.state_len         = st.size,
		.last_reason       = "" };
	uint64_t   call;
	CHECK_EQ(remote_call_start(c, &req, &call), SL_ECLOSED);
	msgpack_sbuffer_destroy(&st);
	CHECK(!remote_wait_connected(rp, 50));
	CHECK_EQ(remote_call_next(c, 10, &r), SL_ENOTFOUND);

	ru_fake *f = ru_fake_start(url, RU_GOOD);
	CHECK(remote_wait_connected(rp, 5000));

	/* one call: what the client gets, what comes back */
	call = start(c, &ev, "k1", 1, 0, "");
	CHECK_EQ(remote_calls_in_flight(c), 1);
	next(c, &r);
	CHECK_EQ(r.call, call);
	CHECK_EQ(r.outcome, REMOTE_REPLACE);
	CHECK(r.state != NULL);
	{
		msgpack_zone   z;
		msgpack_object o;
		size_t         off = 0;
		int64_t        n   = 0;
		CHECK(msgpack_zone_init(&z, 256));
		CHECK(msgpack_unpack(r.state, r.state_len, &off, &z, &o)
		    == MSGPACK_UNPACK_SUCCESS);
		CHECK_EQ(mp_get_i64(&o, "n", &n), SL_OK);
		CHECK_EQ(n, 2);
		msgpack_zone_destroy(&z);
	}
	remote_resp_free(&r);
	CHECK_EQ(remote_calls_in_flight(c), 0);
	pthread_mutex_lock(&f->mu);
	CHECK_STREQ(f->last_op, "project");
	CHECK_STREQ(f->last_tenant, FX_TENANT);
	CHECK_STREQ(f->last_type, "T");
	CHECK_STREQ(f->last_key, "k1");
	CHECK_EQ(f->last_call, call);
	CHECK_EQ(f->last_session, session);
	CHECK_EQ(f->last_attempt, 0);
	CHECK(
	    f->last_state != NULL && strcmp(f->last_state, "{\"n\":1}") == 0);
	CHECK(strstr(f->last_event, "\"position\":42") != NULL);
	CHECK(strstr(f->last_event, "\"stream\":\"s1\"") != NULL);
	CHECK(strstr(f->last_event, "\"content\":{\"amount\":5}") != NULL);
	pthread_mutex_unlock(&f->mu);

	/* retry state reaches the client */
	start(c, &ev, "k1", 1, 3, "it broke");
	next(c, &r);
	CHECK_EQ(r.outcome, REMOTE_REPLACE);
	remote_resp_free(&r);
	pthread_mutex_lock(&f->mu);
	CHECK_EQ(f->last_attempt, 3);
	CHECK_STREQ(f->last_reason, "it broke");
	pthread_mutex_unlock(&f->mu);

	/* delete, and a failure with the client's retry decision */
	start(c, &ev, "del", 1, 0, "");
	next(c, &r);
	CHECK_EQ(r.outcome, REMOTE_DELETE);
	start(c, &ev, "fail", 1, 0, "");
	next(c, &r);
	CHECK_EQ(r.outcome, REMOTE_FAILED);
	CHECK(!r.retry);
	CHECK_EQ(r.retry_after_ms, 250);
	CHECK_STREQ(r.reason, "nope");

	/* the window: full after WINDOW calls; answers in any order, each
	 * once */
	uint64_t ids[WINDOW];
	for (int i = 0; i < WINDOW; i++) {
		char key[16];
		snprintf(key, sizeof(key), "w%d", i);
		ids[i] = start(c, &ev, key, i, 0, "");
	}
	msgpack_sbuffer st2;
	pack_state(&st2, 0);
	req.state     = st2.data;
	req.state_len = st2.size;
	CHECK_EQ(remote_call_start(c, &req, &call), SL_EFULL);
	CHECK_EQ(remote_calls_in_flight(c), WINDOW);
	bool seen[WINDOW] = { false };
	for (int i = 0; i < WINDOW; i++) {
		next(c, &r);
		CHECK_EQ(r.outcome, REMOTE_REPLACE);
		remote_resp_free(&r);
		int k = -1;
		for (int j = 0; j < WINDOW; j++)
			if (ids[j] == r.call)
				k = j;
		CHECK(k >= 0 && !seen[k]);
		seen[k] = true;
	}
	CHECK_EQ(remote_call_next(c, 10, &r), SL_ENOTFOUND);

	/* bad answers: each a failure to retry, naming what was wrong */
	struct {
		ru_mode     mode;
		const char *want;
	} bad[] = {
		{ RU_GARBAGE, "malformed answer: invalid msgpack" },
		{ RU_NOT_A_MAP, "malformed answer: not a msgpack map" },
		{ RU_WRONG_CALL, "malformed answer: field 'call'" },
		{ RU_WRONG_KIND, "does not answer a projection call" },
		{ RU_NO_STATE, "needs a 'state' map" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		atomic_store(&f->mode, bad[i].mode);
		call = start(c, &ev, "k2", 1, 0, "");
		next(c, &r);
		CHECK_EQ(r.call, call);
		CHECK_EQ(r.outcome, REMOTE_FAILED);
		CHECK(r.retry);
		if (strstr(r.reason, bad[i].want) == NULL) {
			fprintf(stderr, "mode %d: '%s' lacks '%s'\n",
			    bad[i].mode, r.reason, bad[i].want);
			exit(1);
		}
	}

	/* late and never: timed out, while the API serves meanwhile */
	f->late_ms = TIMEOUT_MS + 300; /* no ping meanwhile: a call is out */
	atomic_store(&f->mode, RU_LATE);
	int64_t t0 = ru_now_ms();
	call       = start(c, &ev, "k3", 1, 0, "");
	int64_t s0 = ru_now_ms();
	json_decref(ru_status(cl));
	CHECK(ru_now_ms() - s0 < 300);
	next(c, &r);
	int64_t took = ru_now_ms() - t0;
	CHECK_EQ(r.call, call);
	CHECK_EQ(r.outcome, REMOTE_FAILED);
	CHECK(r.retry);
	CHECK(strstr(r.reason, "timed out after 400 ms") != NULL);
	CHECK(took >= TIMEOUT_MS - 50 && took < TIMEOUT_MS + 1500);
	ru_sleep_ms(400); /* the late answer arrives and is dropped */
	atomic_store(&f->mode, RU_NEVER);
	call = start(c, &ev, "k4", 1, 0, "");
	next(c, &r);
	CHECK_EQ(r.outcome, REMOTE_FAILED);
	CHECK(strstr(r.reason, "timed out") != NULL);
	/* still connected: pings are answered */
	CHECK(remote_connected(rp));
	json_t *stj = ru_status(cl);
	json_t *rj  = ru_remote(stj, PID);
	CHECK(json_integer_value(json_object_get(rj, "failed_calls")) >= 7);
	CHECK(strstr(json_string_value(json_object_get(rj, "last_error")),
	          "timed out")
	    != NULL);
	json_decref(stj);

	/* good again */
	atomic_store(&f->mode, RU_GOOD);
	start(c, &ev, "k5", 1, 0, "");
	next(c, &r);
	CHECK_EQ(r.outcome, REMOTE_REPLACE);
	remote_resp_free(&r);

	/* keep-alive: idle, the runtime pings */
	uint64_t p0 = ru_fake_pings(f);
	ru_sleep_ms(500);
	CHECK(ru_fake_pings(f) >= p0 + 2);

	/* the client goes with calls in flight: answered disconnected */
	atomic_store(&f->mode, RU_NEVER);
	uint64_t n0 = ru_fake_calls(f);
	start(c, &ev, "k6", 1, 0, "");
	start(c, &ev, "k7", 1, 0, "");
	while (ru_fake_calls(f) < n0 + 2)
		ru_sleep_ms(5);
	t0 = ru_now_ms();
	ru_fake_stop(f);
	for (int i = 0; i < 2; i++) {
		next(c, &r);
		CHECK_EQ(r.outcome, REMOTE_DISCONNECTED);
	}
	CHECK(ru_now_ms() - t0 < TIMEOUT_MS);
	/* the pipe's removal may be noticed just after the answers */
	for (int i = 0; i < 400 && remote_connected(rp); i++)
		ru_sleep_ms(5);
	CHECK(!remote_connected(rp));
	CHECK_EQ(remote_call_start(c, &req, &call), SL_ECLOSED);
	CHECK(ru_wait_connected(cl, PID, false, 1000));

	/* a wake ends a wait early */
	t0 = ru_now_ms();
	remote_wake(rp);
	CHECK(!remote_wait_connected(rp, 100));
	CHECK(ru_now_ms() - t0 < 1000);

	/* the client dials again (same registration): calls go on */
	f = ru_fake_start(url, RU_GOOD);
	CHECK(remote_wait_connected(rp, 5000));
	start(c, &ev, "k8", 1, 0, "");
	next(c, &r);
	CHECK_EQ(r.outcome, REMOTE_REPLACE);
	remote_resp_free(&r);

	/* a client that does not even answer pings is disconnected */
	atomic_store(&f->mode, RU_SILENT);
	start(c, &ev, "k9", 1, 0, "");
	next(c, &r); /* the call: timed out, or cut by the disconnect */
	CHECK(r.outcome == REMOTE_FAILED || r.outcome == REMOTE_DISCONNECTED);
	int64_t end = ru_now_ms() + 5000;
	while (remote_connected(rp) && ru_now_ms() < end)
		ru_sleep_ms(5);
	CHECK(!remote_connected(rp));
	stj = ru_status(cl);
	rj  = ru_remote(stj, PID);
	CHECK(strstr(json_string_value(json_object_get(rj, "last_error")),
	          "keep-alive")
	    != NULL);
	json_decref(stj);
	/* it comes back (its dialer reconnects) and answers again */
	atomic_store(&f->mode, RU_GOOD);
	CHECK(remote_wait_connected(rp, 5000));
	start(c, &ev, "k10", 1, 0, "");
	next(c, &r);
	CHECK_EQ(r.outcome, REMOTE_REPLACE);
	remote_resp_free(&r);

	/* an event the log cannot decode: failed, not retried, not sent */
	uint64_t before = ru_fake_calls(f);
	req.event       = "\x93\x01\x02\x03";
	req.event_len   = 4;
	CHECK_EQ(remote_call_start(c, &req, &call), SL_OK);
	next(c, &r);
	CHECK_EQ(r.outcome, REMOTE_FAILED);
	CHECK(!r.retry);
	CHECK_EQ(ru_fake_calls(f), before);

	/* closing a caller with a call in flight ends it promptly */
	atomic_store(&f->mode, RU_NEVER);
	start(c, &ev, "k11", 1, 0, "");
	t0 = ru_now_ms();
	remote_caller_close(c);
	CHECK(ru_now_ms() - t0 < TIMEOUT_MS);
	msgpack_sbuffer_destroy(&st2);
	msgpack_sbuffer_destroy(&ev.sb);
	ru_fake_stop(f);
}

/* Filters: included with a partition, excluded; a partitioned filter's
 * included without one is malformed. Another registration answers while
 * this one hangs. */
static void
test_filter_calls(void)
{
	char        url[400], url2[400];
	remote_resp r;
	register_json("{\"v\":1,\"op\":\"register\",\"protocol\":1,\"kind\":"
	              "\"filter\",\"id\":\"" FID "\",\"name\":\"fcalls\","
	              "\"filter_kind\":\"partitioned\"}",
	    url, sizeof(url));
	register_json(
	    "{\"v\":1,\"op\":\"register\",\"protocol\":1,\"kind\":"
	    "\"projection\",\"id\":\"" QID "\",\"name\":\"other\","
	    "\"selectors\":[{\"type\":\"T\",\"key\":\"partition\"}]}",
	    url2, sizeof(url2));
	remote_proc   *rp = proc_of(FID), *rq = proc_of(QID);
	remote_caller *c, *cq;
	stored         a, out, np;
	make_event(&a, "acc-1", "T", "{}");
	make_event(&out, "out", "T", "{}");
	make_event(&np, "nopart", "T", "{}");
	CHECK_EQ(remote_caller_open(rp, &c), SL_OK);
	CHECK_EQ(remote_caller_open(rq, &cq), SL_OK);
	ru_fake *f = ru_fake_start(url, RU_GOOD);
	ru_fake *g = ru_fake_start(url2, RU_GOOD);
	CHECK(remote_wait_connected(rp, 5000));
	CHECK(remote_wait_connected(rq, 5000));

	remote_req req = { .tenant = FX_TENANT,
		.event             = a.sb.data,
		.event_len         = a.sb.size,
		.position          = 7,
		.last_reason       = "" };
	uint64_t   call;
	CHECK_EQ(remote_call_start(c, &req, &call), SL_OK);
	next(c, &r);
	CHECK_EQ(r.outcome, REMOTE_INCLUDED);
	CHECK_STREQ(r.partition, "p-acc-1");
	pthread_mutex_lock(&f->mu);
	CHECK_STREQ(f->last_op, "filter");
	CHECK(f->last_state == NULL); /* no state for filters */
	pthread_mutex_unlock(&f->mu);
	req.event     = out.sb.data;
	req.event_len = out.sb.size;
	CHECK_EQ(remote_call_start(c, &req, &call), SL_OK);
	next(c, &r);
	CHECK_EQ(r.outcome, REMOTE_EXCLUDED);
	req.event     = np.sb.data;
	req.event_len = np.sb.size;
	CHECK_EQ(remote_call_start(c, &req, &call), SL_OK);
	next(c, &r);
	CHECK_EQ(r.outcome, REMOTE_FAILED);
	CHECK(strstr(r.reason, "needs a 'partition'") != NULL);

	/* this filter's client hangs; the other registration answers */
	atomic_store(&f->mode, RU_NEVER);
	req.event     = a.sb.data;
	req.event_len = a.sb.size;
	CHECK_EQ(remote_call_start(c, &req, &call), SL_OK);
	int64_t t0 = ru_now_ms();
	start(cq, &a, "acc-1", 5, 0, "");
	next(cq, &r);
	CHECK_EQ(r.outcome, REMOTE_REPLACE);
	remote_resp_free(&r);
	CHECK(ru_now_ms() - t0 < TIMEOUT_MS / 2);
	next(c, &r);
	CHECK_EQ(r.outcome, REMOTE_FAILED);
	CHECK(strstr(r.reason, "timed out") != NULL);

	/* stopping: a call in flight is answered "disconnected" */
	CHECK_EQ(remote_call_start(c, &req, &call), SL_OK);
	remotes_shutdown(fx_rt->remotes);
	next(c, &r);
	CHECK_EQ(r.outcome, REMOTE_DISCONNECTED);
	CHECK(!remote_connected(rp));
	CHECK(!remote_wait_connected(rp, 1000)); /* at once */
	CHECK_EQ(remote_call_start(c, &req, &call), SL_ECLOSED);
	remote_caller_close(c);
	remote_caller_close(cq);
	ru_fake_stop(f);
	ru_fake_stop(g);
	msgpack_sbuffer_destroy(&a.sb);
	msgpack_sbuffer_destroy(&out.sb);
	msgpack_sbuffer_destroy(&np.sb);
}

int
main(void)
{
	fx_start("remote:\n"
	         "  keepalive_ms: 100\n"
	         "  timeout_ms: 400\n"
	         "  window: 4\n");
	CHECK_EQ(sl_client_open(fx_url, 10000, &cl), SL_OK);
	test_projection_calls();
	test_filter_calls();
	sl_client_close(cl);
	fx_stop();
	printf("remote_calls_test: ok\n");
	return 0;
}
