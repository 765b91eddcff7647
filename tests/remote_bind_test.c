/*
 * Under auth a registration's connection is bound to the client that
 * registered (issue 18 item 4, docs/security.md): the daemon's first call
 * on a new connection is hello, without the session, and only a client
 * answering with the registration's session (which the register reply
 * gave to the credential that registered) is connected and called. A
 * process that dials the URL while the client is away and cannot answer
 * (no session, a wrong one, an older client's pong) is closed before any
 * event reaches it, and the refusal is logged; the client then connects.
 */
#include <inttypes.h>

#include "api_fixture.h"
#include "remote_testutil.h"

#define ID "dddddddd-1111-4111-8111-111111111111"

static sl_client *cl;

/* Dial url as a client with session (0: none) and wait (at most ms) for
 * status' verdict. @return whether it was connected. A client the
 * daemon refuses does not dial again: NNG 1.5.2 can leak a dialer's
 * objects closed while it redials in a loop. */
static bool
try_client(const char *url, uint64_t session, bool good, ru_fake **out, int ms)
{
	ru_fake *f
	    = ru_fake_start_ex(url, RU_GOOD, session, good ? 20 : 3600000);
	bool ok = ru_wait_connected(cl, ID, true, ms);
	*out    = f;
	return ok;
}

static const char *
last_error(void)
{
	static char buf[512];
	json_t     *st = ru_status(cl);
	snprintf(buf, sizeof(buf), "%s",
	    json_string_value(
	        json_object_get(ru_remote(st, ID), "last_error")));
	json_decref(st);
	return buf;
}

int
main(void)
{
	fx_start_auth("remote:\n  keepalive_ms: 100\n  timeout_ms: 500\n",
	    "reg-token", "      roles: [register, read, write]\n");
	CHECK_EQ(sl_client_open(fx_url, 10000, &cl), SL_OK);
	CHECK_EQ(sl_client_set_token(cl, "reg-token"), SL_OK);
	json_t *rep = NULL;
	CHECK_EQ(ru_request(cl,
	             "{\"v\":1,\"op\":\"register\",\"protocol\":1,"
	             "\"kind\":\"projection\",\"id\":\"" ID "\","
	             "\"name\":\"bound\",\"selectors\":[{\"type\":\"Opened\","
	             "\"key\":\"event_source\"}]}",
	             &rep),
	    SL_OK);
	char     url[512];
	uint64_t session
	    = (uint64_t) json_integer_value(json_object_get(rep, "session"));
	snprintf(url, sizeof(url), "%s",
	    json_string_value(json_object_get(rep, "url")));
	json_decref(rep);
	sl_new_event     e = { .type = "Opened", .content_json = "{}" };
	sl_commit_result cr;
	CHECK_EQ(
	    sl_client_commit(cl, FX_TENANT, "s1", SL_EXPECT_ANY, &e, 1, &cr),
	    SL_OK);

	/* a dialer without the session (an older client answers pong), and
	 * one with a wrong session: closed, never called */
	ru_fake *f;
	CHECK(!try_client(url, 0, false, &f, 1500));
	CHECK(strstr(last_error(),
	          "a connection was refused: it did not answer hello")
	    != NULL);
	pthread_mutex_lock(&f->mu);
	CHECK(strcmp(f->last_op, "project") != 0);
	pthread_mutex_unlock(&f->mu);
	ru_fake_stop(f);
	CHECK(!try_client(url, session ^ 1, false, &f, 1500));
	CHECK(strstr(last_error(), "does not carry the registration's session")
	    != NULL);
	pthread_mutex_lock(&f->mu);
	CHECK(strcmp(f->last_op, "project") != 0);
	pthread_mutex_unlock(&f->mu);
	ru_fake_stop(f);

	/* the client that registered: connected, and called */
	CHECK(try_client(url, session, true, &f, 10000));
	int64_t end = ru_now_ms() + 10000;
	while (ru_fake_calls(f) < 1) {
		CHECK(ru_now_ms() < end);
		ru_sleep_ms(10);
	}
	pthread_mutex_lock(&f->mu);
	CHECK_STREQ(f->last_op, "project");
	CHECK_STREQ(f->last_key, "s1");
	CHECK_EQ(f->last_session, session);
	pthread_mutex_unlock(&f->mu);
	/* it goes; a dialer without the session is refused again, and the
	 * client comes back */
	ru_fake_stop(f);
	CHECK(ru_wait_connected(cl, ID, false, 10000));
	CHECK(!try_client(url, 0, false, &f, 1500));
	ru_fake_stop(f);
	CHECK(try_client(url, session, true, &f, 10000));
	ru_fake_stop(f);

	sl_client_close(cl);
	fx_stop();
	printf("remote_bind_test: ok\n");
	return 0;
}
