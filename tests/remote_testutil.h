/*
 * Shared by the remote processor tests: requests written as JSON and sent
 * through the client library, the daemon's status as JSON, and a fake
 * remote client (a raw NNG rep0 socket on a thread) that answers calls
 * well, with garbage, late, never, or not even pings.
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
		bool                  ping  = mp_str_eq(op, "ping");
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
		bool answer = true;
		if (mode == RU_SILENT || (mode == RU_NEVER && !ping)) {
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

/* Dial url (the runtime listens there) and answer on a thread. */
__attribute__((unused)) static ru_fake *
ru_fake_start(const char *url, ru_mode mode)
{
	ru_fake *f = calloc(1, sizeof(*f));
	CHECK(f != NULL);
	atomic_init(&f->mode, mode);
	atomic_init(&f->stop, false);
	f->late_ms = 1000;
	pthread_mutex_init(&f->mu, NULL);
	CHECK(nng_rep0_open(&f->sock) == 0);
	nng_socket_set_ms(f->sock, NNG_OPT_RECVTIMEO, 20);
	nng_socket_set_size(f->sock, NNG_OPT_RECVMAXSZ, 0);
	nng_socket_set_ms(f->sock, NNG_OPT_RECONNMINT, 20);
	nng_socket_set_ms(f->sock, NNG_OPT_RECONNMAXT, 100);
	CHECK(nng_dial(f->sock, url, &f->dialer, NNG_FLAG_NONBLOCK) == 0);
	CHECK(pthread_create(&f->th, NULL, ru_fake_main, f) == 0);
	return f;
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
