/*
 * Registrations of clients long gone are freed (issue 18 item 5,
 * remote.registration_expiry_ms): a registration whose client
 * disconnected expires, status no longer lists it (remotes, projections,
 * processors), its slot in remote.max_registrations is free, a client
 * registering the id again starts afresh and continues from the stored
 * checkpoint and state; under auth the credential's max_registrations
 * slot is free too; and registrations expiring over and over while other
 * threads read status and send commands in a loop break nothing (run it
 * in the ASan build).
 */
#include <inttypes.h>

#include "api_fixture.h"
#include "remote_expiry.h"
#include "remote_testutil.h"

#define ID_A      "aaaaaaaa-1111-4111-8111-111111111111"
#define ID_B      "bbbbbbbb-1111-4111-8111-111111111111"
#define ID_C      "cccccccc-1111-4111-8111-111111111111"
#define EXPIRY_MS 400

static sl_client *cl;

/* Register projection id (name "remote <id>") selecting Opened by event
 * source; the reply in *rep when not NULL. @return the code. */
static int
reg(sl_client *c, const char *id, const char *token, json_t **rep)
{
	char req[1024];
	snprintf(req, sizeof(req),
	    "{\"v\":1,\"op\":\"register\",\"protocol\":1,"
	    "\"kind\":\"projection\",\"id\":\"%s\",\"name\":\"remote %s\","
	    "\"selectors\":[{\"type\":\"Opened\",\"key\":\"event_source\"}]"
	    "%s%s%s}",
	    id, id, token != NULL ? ",\"token\":\"" : "",
	    token != NULL ? token : "", token != NULL ? "\"" : "");
	return ru_request(c, req, rep);
}

/* Register id and connect a fake client answering well. */
static ru_fake *
reg_connected(const char *id)
{
	json_t *rep = NULL;
	CHECK_EQ(reg(cl, id, NULL, &rep), SL_OK);
	ru_fake *f = ru_fake_start(
	    json_string_value(json_object_get(rep, "url")), RU_GOOD);
	json_decref(rep);
	CHECK(ru_wait_connected(cl, id, true, 10000));
	return f;
}

/* Whether status lists id anywhere: remotes, projections, processors. */
static bool
listed(const char *id)
{
	json_t *st = ru_status(cl), *e;
	size_t  i;
	bool    found = ru_remote(st, id) != NULL;
	json_array_foreach(json_object_get(st, "projections"), i, e)
	{
		found
		    |= strcmp(json_string_value(json_object_get(e, "id")), id)
		    == 0;
	}
	json_array_foreach(json_object_get(st, "processors"), i, e)
	{
		found |= strcmp(json_string_value(
		                    json_object_get(e, "projection")),
		             id)
		    == 0;
	}
	json_decref(st);
	return found;
}

/* Wait (at most ms) until status no longer lists id. @return the ms it
 * took, or -1. */
static int64_t
wait_unlisted(const char *id, int ms)
{
	int64_t t0 = ru_now_ms();
	while (listed(id)) {
		if (ru_now_ms() - t0 > ms)
			return -1;
		ru_sleep_ms(20);
	}
	return ru_now_ms() - t0;
}

/* Wait (at most 10 s) until n registrations expired in all. */
static void
wait_expired(uint64_t n)
{
	int64_t end = ru_now_ms() + 10000;
	while (expiry_count(fx_rt->expiry) < n) {
		CHECK(ru_now_ms() < end);
		ru_sleep_ms(5);
	}
	CHECK_EQ(expiry_count(fx_rt->expiry), n);
}

static void
commit_opened(const char *stream)
{
	sl_new_event     e = { .type = "Opened", .content_json = "{}" };
	sl_commit_result r;
	CHECK_EQ(
	    sl_client_commit(cl, FX_TENANT, stream, SL_EXPECT_ANY, &e, 1, &r),
	    SL_OK);
}

/* Wait until the processor of id is at the head. */
static void
wait_caught_up(const char *id)
{
	char name[64];
	snprintf(name, sizeof(name), "remote %s", id);
	int64_t end = ru_now_ms() + 10000;
	for (;;) {
		json_t *st   = ru_status(cl);
		int64_t head = json_integer_value(json_object_get(st, "head"));
		json_t *p    = ru_proc_named(st, name);
		bool    ok   = p != NULL
		    && json_integer_value(json_object_get(p, "position"))
		        == head;
		json_decref(st);
		if (ok)
			return;
		CHECK(ru_now_ms() < end);
		ru_sleep_ms(10);
	}
}

/* The n of read model key in projection id (0 when none). */
static int64_t
model_n(const char *id, const char *key)
{
	char   *state = NULL;
	bool    found = false;
	json_t *j;
	CHECK_EQ(
	    sl_client_get_one(cl, FX_TENANT, id, key, &state, &found), SL_OK);
	CHECK((j = json_loads(state, 0, NULL)) != NULL);
	int64_t n = json_integer_value(json_object_get(j, "n"));
	json_decref(j);
	sl_client_free(state);
	return n;
}

/* Expiry, the freed slot, and a client coming back. */
static void
test_expiry(void)
{
	fx_start("remote:\n"
	         "  keepalive_ms: 100\n"
	         "  timeout_ms: 1000\n"
	         "  max_registrations: 2\n"
	         "  registration_expiry_ms: 400\n"); /* EXPIRY_MS */
	CHECK_EQ(sl_client_open(fx_url, 10000, &cl), SL_OK);

	ru_fake *fa = reg_connected(ID_A);
	ru_fake *fb = reg_connected(ID_B);
	commit_opened("s1");
	commit_opened("s2");
	commit_opened("s3");
	wait_caught_up(ID_A);
	CHECK_EQ(ru_fake_calls(fa), 3);
	CHECK_EQ(model_n(ID_A, "s1"), 1);

	/* the cap is reached; a connected client never expires */
	json_t *rep = NULL;
	CHECK_EQ(reg(cl, ID_C, NULL, &rep), SL_ETOOBIG);
	json_decref(rep);
	ru_sleep_ms(2 * EXPIRY_MS);
	CHECK(listed(ID_A) && listed(ID_B));

	/* A's client goes: A is listed until it expires, then not */
	ru_fake_stop(fa);
	CHECK(ru_wait_connected(cl, ID_A, false, 10000));
	CHECK(listed(ID_A));
	int64_t ms = wait_unlisted(ID_A, 10000);
	printf("remote_expiry_test: unlisted %" PRId64
	       " ms after the disconnect was seen (expiry %d ms)\n",
	    ms, EXPIRY_MS);
	CHECK(ms >= 0);
	CHECK(listed(ID_B));
	wait_expired(1);
	/* its read models stay; its definition is gone */
	char *state = NULL;
	bool  found = true;
	CHECK_EQ(sl_client_get_one(cl, FX_TENANT, ID_A, "s1", &state, &found),
	    SL_ENOTFOUND);

	/* its slot is free: C, refused before, registers; its client never
	 * comes, so it expires in turn and frees the slot for A */
	CHECK_EQ(reg(cl, ID_C, NULL, NULL), SL_OK);
	CHECK(wait_unlisted(ID_C, 10000) >= 0);

	/* A again: a new registration, which goes on from the checkpoint and
	 * the states A's processor stored */
	commit_opened("s1");
	commit_opened("s4");
	CHECK_EQ(reg(cl, ID_A, NULL, &rep), SL_OK);
	CHECK(strcmp(json_string_value(json_object_get(rep, "registration")),
	          "new")
	    == 0);
	ru_fake *fa2 = ru_fake_start(
	    json_string_value(json_object_get(rep, "url")), RU_GOOD);
	json_decref(rep);
	CHECK(ru_wait_connected(cl, ID_A, true, 10000));
	wait_caught_up(ID_A);
	CHECK_EQ(ru_fake_calls(fa2), 2); /* s1 and s4, not the first three */
	CHECK_EQ(model_n(ID_A, "s1"), 2);
	CHECK_EQ(model_n(ID_A, "s4"), 1);
	CHECK_EQ(ru_registrations(cl, ID_A), 1);

	sl_client_close(cl);
	fx_stop();
	ru_fake_stop(fa2);
	ru_fake_stop(fb);
}

/* Under auth: the credential's max_registrations slot is freed too. */
static void
test_credential_cap(void)
{
	fx_start_auth("remote:\n  registration_expiry_ms: 200\n", "reg-token",
	    "      roles: [register, read]\n"
	    "      max_registrations: 1\n");
	CHECK_EQ(sl_client_open(fx_url, 10000, &cl), SL_OK);
	CHECK_EQ(sl_client_set_token(cl, "reg-token"), SL_OK);
	json_t *rep = NULL;
	CHECK_EQ(reg(cl, ID_A, NULL, NULL), SL_OK);
	CHECK_EQ(reg(cl, ID_B, NULL, &rep), SL_ETOOBIG);
	CHECK(strstr(json_string_value(json_object_get(rep, "message")),
	          "registrar")
	    != NULL);
	json_decref(rep);
	/* A's client never came: it expires, and B fits */
	CHECK(wait_unlisted(ID_A, 10000) >= 0);
	CHECK_EQ(reg(cl, ID_B, NULL, NULL), SL_OK);
	sl_client_close(cl);
	fx_stop();
}

/* ---- expiring while others read ---- */

static atomic_bool stop_readers;

static void *
reader_main(void *arg)
{
	sl_client *c;
	int        n   = 0;
	bool       cmd = arg != NULL;
	CHECK_EQ(sl_client_open(fx_url, 10000, &c), SL_OK);
	while (!atomic_load(&stop_readers)) {
		if (cmd) {
			/* a command on a registration that may be expiring:
			 * done, or not found, or it stopped meanwhile */
			int rc = ru_request(c,
			    "{\"v\":1,\"op\":\"pause\",\"id\":\"" ID_B "\"}",
			    NULL);
			if (rc != SL_OK && rc != SL_ENOTFOUND
			    && rc != SL_ECLOSED)
				fprintf(
				    stderr, "pause: %s\n", sl_strerror(rc));
			CHECK(rc == SL_OK || rc == SL_ENOTFOUND
			    || rc == SL_ECLOSED);
			rc = ru_request(c,
			    "{\"v\":1,\"op\":\"get_one\",\"tenant\":"
			    "\"" FX_TENANT "\",\"projection\":\"" ID_B
			    "\",\"key\":\"s1\"}",
			    NULL);
			CHECK(rc == SL_OK || rc == SL_ENOTFOUND);
		} else {
			json_decref(ru_status(c));
		}
		n++;
	}
	sl_client_close(c);
	printf("remote_expiry_test: a %s thread sent %d rounds\n",
	    cmd ? "command" : "status", n);
	return NULL;
}

static void
test_expiring_while_read(void)
{
	fx_start("remote:\n"
	         "  keepalive_ms: 50\n"
	         "  timeout_ms: 1000\n"
	         "  registration_expiry_ms: 100\n");
	CHECK_EQ(sl_client_open(fx_url, 10000, &cl), SL_OK);
	commit_opened("s1");
	pthread_t th[3];
	atomic_store(&stop_readers, false);
	for (int i = 0; i < 3; i++)
		CHECK(pthread_create(&th[i], NULL, reader_main,
		          i == 2 ? (void *) 1 : NULL)
		    == 0);
	int rounds = 20;
	for (int i = 0; i < rounds; i++) {
		/* half the time with a client that comes and goes */
		json_t *rep = NULL;
		int     rc  = reg(cl, ID_B, NULL, &rep);
		CHECK(rc == SL_OK);
		if (i % 2 == 0) {
			ru_fake *f = ru_fake_start(
			    json_string_value(json_object_get(rep, "url")),
			    RU_GOOD);
			ru_wait_connected(cl, ID_B, true, 10000);
			ru_fake_stop(f);
		}
		json_decref(rep);
		CHECK(wait_unlisted(ID_B, 10000) >= 0);
	}
	atomic_store(&stop_readers, true);
	for (int i = 0; i < 3; i++)
		pthread_join(th[i], NULL);
	wait_expired((uint64_t) rounds);
	/* the daemon serves on */
	commit_opened("s2");
	sl_client_close(cl);
	fx_stop();
}

int
main(void)
{
	test_expiry();
	test_credential_cap();
	test_expiring_while_read();
	printf("remote_expiry_test: ok\n");
	return 0;
}
