/*
 * The remote client library reading protocol 2 projection calls in place
 * (client/remote.c: lazy_map, ev_obj), against a daemon played by the
 * test over real NNG sockets (a rep0 API that accepts the registration, a
 * req0 listener that sends the calls):
 *  - a handler reading each event through the object accessors (type,
 *    stream, position, content and metadata paths, the event's JSON) and
 *    its bytes (sl_remote_event_msgpack) sees what was sent, and the runs
 *    fold as they did when the whole call was unpacked (a failure inside
 *    a run answered with the state before it);
 *  - every truncation of a call and thousands of corrupted ones are
 *    dropped or answered, never a crash (run it under ASan), and the
 *    client answers a good call afterwards.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>

#include <msgpack.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>

#include <sluice/remote.h>

#include "daemon_testutil.h"
#include "mp.h"
#include "testutil.h"

#define PROJ_ID  "0b8f1e2a-3c4d-4e5f-8a6b-7c8d9e0f1a2b"
#define SESSION  7
#define MAX_SEEN 64

static char api_url[4300], calls_url[4300];

/* ---- the daemon's API: every register request accepted ---- */

static nng_socket  api;
static atomic_bool api_stop;
static atomic_int  registrations;

static void *
api_main(void *arg)
{
	(void) arg;
	while (!atomic_load(&api_stop)) {
		nng_msg *msg;
		int      rv = nng_recvmsg(api, &msg, 0);
		if (rv == NNG_ETIMEDOUT)
			continue;
		if (rv != 0)
			break;
		nng_msg_free(msg);
		msgpack_sbuffer sb;
		msgpack_packer  pk;
		msgpack_sbuffer_init(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		msgpack_pack_map(&pk, 4);
		mp_pack_kv_bool(&pk, "ok", true);
		mp_pack_kv_str(&pk, "url", calls_url);
		mp_pack_kv_u64(&pk, "session", SESSION);
		mp_pack_kv_u64(&pk, "keepalive_ms", 600000);
		nng_msg *rep;
		CHECK(nng_msg_alloc(&rep, sb.size) == 0);
		memcpy(nng_msg_body(rep), sb.data, sb.size);
		if (nng_sendmsg(api, rep, 0) != 0)
			nng_msg_free(rep);
		msgpack_sbuffer_destroy(&sb);
		atomic_fetch_add(&registrations, 1);
	}
	return NULL;
}

/* ---- the handler: records what it saw, sums content.amount ---- */

typedef struct seen {
	char     type[32], stream[32], meta[32];
	uint64_t position;
	int64_t  amount;
	bool     json_ok;  /* sl_remote_event's JSON has the amount */
	bool     bytes_ok; /* sl_remote_event_msgpack: a map, read back */
	bool     state_ok; /* sl_remote_state_msgpack: the total the
	                      accessor reads */
} seen;

static pthread_mutex_t seen_mu = PTHREAD_MUTEX_INITIALIZER;
static seen            seen_v[MAX_SEEN];
static size_t          n_seen;

static sl_remote_result
on_event(void *user, sl_remote_call *c)
{
	(void) user;
	seen        s = { 0 };
	const char *str;
	s.position = sl_remote_event_position(c);
	snprintf(s.type, sizeof(s.type), "%s", sl_remote_event_type(c));
	snprintf(s.stream, sizeof(s.stream), "%s", sl_remote_event_stream(c));
	if (sl_remote_get_str(c, "$metadata.who", &str) == SL_OK)
		snprintf(s.meta, sizeof(s.meta), "%s", str);
	int                  rc = sl_remote_get_i64(c, "amount", &s.amount);
	const sl_read_event *e  = sl_remote_event(c);
	char                 want[64];
	snprintf(want, sizeof(want), "\"amount\":%" PRId64, s.amount);
	s.json_ok = e != NULL && e->json != NULL && strstr(e->json, want);
	const void *bytes;
	size_t      len;
	if (sl_remote_event_msgpack(c, &bytes, &len) == SL_OK && len > 0) {
		msgpack_zone   z;
		msgpack_object o;
		size_t         off    = 0;
		int64_t        amount = -1;
		msgpack_zone_init(&z, 1024);
		s.bytes_ok = msgpack_unpack(bytes, len, &off, &z, &o)
		        == MSGPACK_UNPACK_SUCCESS
		    && off == len
		    && mp_get_i64(mp_get(&o, "content"), "amount", &amount)
		        == SL_OK
		    && amount == s.amount;
		msgpack_zone_destroy(&z);
	}
	/* the corrupted calls' events (tenant "corrupted-calls") are
	 * answered, not recorded */
	if (strcmp(sl_remote_tenant(c), "t") != 0)
		return SL_REMOTE_REPLACE;
	pthread_mutex_lock(&seen_mu);
	if (n_seen < MAX_SEEN)
		seen_v[n_seen++] = s;
	pthread_mutex_unlock(&seen_mu);
	if (rc != SL_OK)
		return sl_remote_fail(c, true, 0, "no amount");
	if (s.amount < 0)
		return sl_remote_fail(c, false, 0, "negative amount");
	int64_t total = 0, raw_total = 0;
	sl_remote_state_i64(c, "total", &total);
	const void *sbytes;
	size_t      slen;
	if (sl_remote_state_msgpack(c, &sbytes, &slen) == SL_OK) {
		msgpack_zone   z;
		msgpack_object o;
		size_t         off = 0;
		msgpack_zone_init(&z, 512);
		if (msgpack_unpack(sbytes, slen, &off, &z, &o)
		        == MSGPACK_UNPACK_SUCCESS
		    && off == slen)
			mp_get_i64(&o, "total", &raw_total);
		msgpack_zone_destroy(&z);
	}
	pthread_mutex_lock(&seen_mu);
	seen_v[n_seen - 1].state_ok = raw_total == total;
	pthread_mutex_unlock(&seen_mu);
	sl_remote_set_i64(c, "total", total + s.amount);
	return SL_REMOTE_REPLACE;
}

/* ---- the calls ---- */

static void
pack_event(
    msgpack_packer *pk, uint64_t pos, const char *stream, int64_t amount)
{
	msgpack_pack_map(pk, 13);
	mp_pack_kv_u64(pk, "position", pos);
	mp_pack_kv_str(pk, "tenant", "t");
	mp_pack_kv_str(pk, "stream", stream);
	mp_pack_kv_u64(pk, "revision", pos);
	mp_pack_kv_str(pk, "id", "5f0c8a51-1d9e-4a8e-9c1b-2e3f4a5b6c7d");
	mp_pack_kv_str(pk, "type", "debited");
	mp_pack_kv_u64(pk, "generation", 1);
	mp_pack_kv_i64(pk, "occurred", 1700000000000000000LL);
	mp_pack_kv_str(pk, "correlation_id", "");
	mp_pack_kv_str(pk, "causation_id", "");
	mp_pack_kv_bool(pk, "public", false);
	mp_pack_cstr(pk, "metadata");
	msgpack_pack_map(pk, 1);
	mp_pack_kv_str(pk, "who", stream);
	mp_pack_cstr(pk, "content");
	msgpack_pack_map(pk, 1);
	mp_pack_kv_i64(pk, "amount", amount);
}

static void
pack_run(msgpack_packer *pk, const char *key, int64_t total,
    const int64_t *amounts, size_t n, uint64_t *pos)
{
	msgpack_pack_map(pk, 4);
	mp_pack_kv_str(pk, "key", key);
	mp_pack_cstr(pk, "state");
	msgpack_pack_map(pk, 1);
	mp_pack_kv_i64(pk, "total", total);
	mp_pack_cstr(pk, "retry");
	msgpack_pack_map(pk, 2);
	mp_pack_kv_u64(pk, "attempt", 0);
	mp_pack_kv_str(pk, "reason", "");
	mp_pack_cstr(pk, "events");
	msgpack_pack_array(pk, n);
	for (size_t i = 0; i < n; i++)
		pack_event(pk, (*pos)++, key, amounts[i]);
}

/* A call of three runs: "a" (1 + 10 + 5), "b" (7), "c" (a negative
 * amount second: it fails after its first, 2). @return where its runs
 * start. */
static size_t
pack_call(msgpack_sbuffer *sb, uint64_t call, const char *tenant)
{
	msgpack_packer pk;
	uint64_t       pos = 1;
	msgpack_sbuffer_clear(sb);
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 5);
	mp_pack_kv_u64(&pk, "call", call);
	mp_pack_kv_u64(&pk, "session", SESSION);
	mp_pack_kv_str(&pk, "op", "project");
	mp_pack_kv_str(&pk, "tenant", tenant);
	mp_pack_cstr(&pk, "runs");
	size_t runs = sb->size;
	msgpack_pack_array(&pk, 3);
	pack_run(&pk, "a", 1, (const int64_t[]) { 10, 5 }, 2, &pos);
	pack_run(&pk, "b", 0, (const int64_t[]) { 7 }, 1, &pos);
	pack_run(&pk, "c", 0, (const int64_t[]) { 2, -1, 3 }, 3, &pos);
	return runs;
}

static nng_socket calls;

static void
send_bytes(const void *p, size_t len)
{
	nng_msg *m;
	CHECK(nng_msg_alloc(&m, len) == 0);
	memcpy(nng_msg_body(m), p, len);
	if (nng_sendmsg(calls, m, 0) != 0)
		nng_msg_free(m);
}

/* Send the good call and wait for its answer (the client may be
 * registering again after a corrupted session: sent again until then). */
static void
good_call(uint64_t call, msgpack_zone *z, msgpack_object *ans, nng_msg **keep)
{
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	pack_call(&sb, call, "t");
	int64_t end = dt_now_ms() + 20000;
	for (;;) {
		CHECK(dt_now_ms() < end);
		pthread_mutex_lock(&seen_mu);
		n_seen = 0;
		pthread_mutex_unlock(&seen_mu);
		send_bytes(sb.data, sb.size);
		nng_msg *rep;
		if (nng_recvmsg(calls, &rep, 0) != 0)
			continue;
		size_t   off = 0;
		uint64_t got = 0;
		if (msgpack_unpack(
		        nng_msg_body(rep), nng_msg_len(rep), &off, z, ans)
		        == MSGPACK_UNPACK_SUCCESS
		    && mp_get_u64(ans, "call", &got) == SL_OK && got == call) {
			*keep = rep;
			break;
		}
		nng_msg_free(rep);
	}
	msgpack_sbuffer_destroy(&sb);
}

static int64_t
run_total(const msgpack_object *run)
{
	int64_t t = -1;
	CHECK_EQ(mp_get_i64(mp_get(run, "state"), "total", &t), SL_OK);
	return t;
}

/* The answer to pack_call's call, and what the handler saw. */
static void
check_answer(const msgpack_object *ans)
{
	const msgpack_object *runs = mp_get(ans, "runs");
	uint64_t              applied;
	CHECK(runs != NULL && runs->type == MSGPACK_OBJECT_ARRAY);
	CHECK_EQ(runs->via.array.size, 3u);
	const msgpack_object *r = runs->via.array.ptr;
	CHECK_EQ(mp_get_u64(&r[0], "applied", &applied), SL_OK);
	CHECK_EQ(applied, 2u);
	CHECK_EQ(run_total(&r[0]), 16);
	CHECK(mp_get(&r[0], "failed") == NULL);
	CHECK_EQ(mp_get_u64(&r[1], "applied", &applied), SL_OK);
	CHECK_EQ(applied, 1u);
	CHECK_EQ(run_total(&r[1]), 7);
	/* "c": its first applied, the second failed, the third not run */
	CHECK_EQ(mp_get_u64(&r[2], "applied", &applied), SL_OK);
	CHECK_EQ(applied, 1u);
	CHECK_EQ(run_total(&r[2]), 2);
	const char *reason;
	size_t      rlen;
	CHECK_EQ(mp_get_str(mp_get(&r[2], "failed"), "reason", &reason, &rlen),
	    SL_OK);
	CHECK(rlen == strlen("negative amount")
	    && memcmp(reason, "negative amount", rlen) == 0);

	/* a, a, b, c, c; then c's first again (the state before the failing
	 * event is folded afresh) */
	static const struct {
		uint64_t pos;
		int64_t  amount;
		char     stream[4];
	} want[] = { { 1, 10, "a" }, { 2, 5, "a" }, { 3, 7, "b" },
		{ 4, 2, "c" }, { 5, -1, "c" }, { 4, 2, "c" } };
	pthread_mutex_lock(&seen_mu);
	CHECK_EQ(n_seen, sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < n_seen; i++) {
		const seen *s = &seen_v[i];
		CHECK_EQ(s->position, want[i].pos);
		CHECK_EQ(s->amount, want[i].amount);
		CHECK_STREQ(s->stream, want[i].stream);
		CHECK_STREQ(s->meta, want[i].stream);
		CHECK_STREQ(s->type, "debited");
		CHECK(s->json_ok);
		CHECK(s->bytes_ok);
		CHECK(s->state_ok || s->amount < 0);
	}
	pthread_mutex_unlock(&seen_mu);
}

static void
expect_good(uint64_t call)
{
	msgpack_zone   z;
	msgpack_object ans;
	nng_msg       *rep = NULL;
	CHECK(msgpack_zone_init(&z, 4096));
	good_call(call, &z, &ans, &rep);
	check_answer(&ans);
	nng_msg_free(rep);
	msgpack_zone_destroy(&z);
}

int
main(void)
{
	const char *dir = tu_tmpdir();
	pthread_t   th;
	snprintf(api_url, sizeof(api_url), "ipc://%s/api.ipc", dir);
	snprintf(calls_url, sizeof(calls_url), "ipc://%s/calls.ipc", dir);
	CHECK(nng_rep0_open(&api) == 0);
	nng_socket_set_ms(api, NNG_OPT_RECVTIMEO, 20);
	CHECK(nng_listen(api, api_url, NULL, 0) == 0);
	CHECK(nng_req0_open(&calls) == 0);
	nng_socket_set_ms(calls, NNG_OPT_RECVTIMEO, 2000);
	nng_socket_set_ms(calls, NNG_OPT_SENDTIMEO, 2000);
	CHECK(nng_listen(calls, calls_url, NULL, 0) == 0);
	CHECK(pthread_create(&th, NULL, api_main, NULL) == 0);

	sl_remote_selector sel
	    = { .event_type = "debited", .key = SL_REMOTE_KEY_EVENT_SOURCE };
	sl_remote_projection def = {
		.id                 = PROJ_ID,
		.name               = "requests_test",
		.version            = 1,
		.initial_state_json = "{}",
		.selectors          = &sel,
		.n_selectors        = 1,
		.on                 = on_event,
	};
	sl_remote *r;
	CHECK_EQ(
	    sl_remote_register_projection(api_url, &def, NULL, &r), SL_OK);
	CHECK_EQ(sl_remote_start(r), SL_OK);

	/* what the handler sees through the accessors, read in place */
	expect_good(1);

	/* every truncation, then corruptions: dropped or answered, and the
	 * client serves the good call after them */
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	/* the runs only: a corrupted session would send the client off
	 * registering again, which the test does not need to wait for */
	size_t         runs = pack_call(&sb, 2, "corrupted-calls");
	unsigned char *buf  = malloc(sb.size);
	CHECK(buf != NULL);
	for (size_t n = 0; n < sb.size; n++)
		send_bytes(sb.data, n);
	expect_good(3);
	uint64_t seed = 0x5eed17;
	for (int i = 0; i < 4000; i++) {
		memcpy(buf, sb.data, sb.size);
		int flips = 1 + (int) (dt_rnd(&seed) % 4);
		for (int k = 0; k < flips; k++)
			buf[runs + dt_rnd(&seed) % (sb.size - runs)]
			    = (unsigned char) dt_rnd(&seed);
		send_bytes(buf, sb.size);
		if (i % 1000 == 999)
			expect_good(4 + (uint64_t) i);
	}
	expect_good(10000);
	CHECK(atomic_load(&registrations) >= 1);
	free(buf);
	msgpack_sbuffer_destroy(&sb);

	sl_remote_close(r);
	atomic_store(&api_stop, true);
	pthread_join(th, NULL);
	nng_close(calls);
	nng_close(api);
	printf("remote_requests_test: ok\n");
	return 0;
}
