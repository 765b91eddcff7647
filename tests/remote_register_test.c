/*
 * Registration of remote projections and filters (op "register",
 * docs/remote.md) against a real runtime: the reply, status, queries of a
 * registered projection, every refusal with its code (and nothing
 * registered by it), takeover of an id whose client is gone (same or
 * changed definition, a fresh URL and session), and the limit.
 */
#include <inttypes.h>

#include "api_fixture.h"
#include "remote_testutil.h"

/* account_details' id, as the build's plugin declares it */
#define PLUGIN_ID "8a2f3c1e-5b7d-4e9a-9c11-2d4e6f8a0b13"
#define ID1       "11111111-2222-4333-8444-555555555555"
#define ID2       "21111111-2222-4333-8444-555555555555"
#define FID       "31111111-2222-4333-8444-555555555555"

#define SELECTORS                                                             \
	"\"selectors\":[{\"type\":\"Opened\",\"key\":\"event_source\"},"      \
	"{\"type\":\"Moved\",\"key\":\"property\",\"arg\":\"account.id\"}]"

static sl_client *cl;

/* A projection registration request with extra text inside the map. */
static char *
proj_req(const char *id, const char *fields)
{
	char *s;
	CHECK(asprintf(&s,
	          "{\"v\":1,\"op\":\"register\",\"protocol\":1,"
	          "\"kind\":\"projection\",\"id\":\"%s\",\"name\":\"remote "
	          "one\",\"initial_state\":{\"n\":0,\"key\":\"\"}%s%s}",
	          id, fields[0] != '\0' ? "," : "", fields)
	    >= 0);
	return s;
}

/* Register; expect code; the reply's message must contain want (if
 * given). Returns the reply (caller decrefs). */
static json_t *
expect(const char *json, int code, const char *want)
{
	json_t *rep = NULL;
	int     rc  = ru_request(cl, json, &rep);
	if (rc != code) {
		char *t = rep ? json_dumps(rep, 0) : NULL;
		fprintf(stderr, "request %s\n  got %d (%s), want %d\n", json,
		    rc, t ? t : "no reply", code);
		exit(1);
	}
	if (want != NULL) {
		const char *m
		    = json_string_value(json_object_get(rep, "message"));
		if (m == NULL || strstr(m, want) == NULL) {
			fprintf(stderr,
			    "request %s\n  message '%s' lacks '%s'\n", json,
			    m ? m : "(none)", want);
			exit(1);
		}
	}
	return rep;
}

static void
refused(const char *json, int code, const char *want)
{
	json_decref(expect(json, code, want));
}

static size_t
n_remotes(void)
{
	json_t *st = ru_status(cl);
	size_t  n  = json_array_size(json_object_get(st, "remotes"));
	json_decref(st);
	return n;
}

/* Processors in status for this id (one per tenant). */
static size_t
n_procs_of(const char *id)
{
	json_t *st = ru_status(cl), *p;
	size_t  i, n = 0;
	json_array_foreach(json_object_get(st, "processors"), i, p)
	{
		if (strcmp(json_string_value(json_object_get(p, "projection")),
		        id)
		    == 0) {
			CHECK(json_is_true(json_object_get(p, "remote")));
			n++;
		}
	}
	json_decref(st);
	return n;
}

static const char *
jstr(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	CHECK(s != NULL);
	return s;
}

static void
test_success(void)
{
	char   *req = proj_req(ID1, SELECTORS);
	json_t *rep = expect(req, SL_OK, NULL);
	free(req);
	CHECK(strncmp(jstr(rep, "url"), "ipc://", 6) == 0);
	CHECK(strstr(jstr(rep, "url"), "/remote-") != NULL);
	CHECK(json_integer_value(json_object_get(rep, "session")) > 0);
	CHECK_EQ(json_integer_value(json_object_get(rep, "window")), 4);
	CHECK_EQ(
	    json_integer_value(json_object_get(rep, "keepalive_ms")), 100);
	CHECK_EQ(json_integer_value(json_object_get(rep, "timeout_ms")), 600);
	CHECK_EQ(json_integer_value(json_object_get(rep, "protocol")), 1);
	/* a protocol 1 reply is as it was: no batch */
	CHECK(json_object_get(rep, "batch") == NULL);
	CHECK_STREQ(jstr(rep, "registration"), "new");
	CHECK_EQ(strlen(jstr(rep, "definition")), 16);
	json_decref(rep);

	/* status: a registration, a projection marked remote, a processor
	 * per tenant */
	json_t *st = ru_status(cl), *p;
	json_t *r  = ru_remote(st, ID1);
	CHECK(r != NULL);
	CHECK_STREQ(jstr(r, "name"), "remote one");
	CHECK_STREQ(jstr(r, "kind"), "projection");
	CHECK(json_is_false(json_object_get(r, "connected")));
	CHECK(json_is_null(json_object_get(r, "client")));
	CHECK_EQ(json_integer_value(json_object_get(r, "registrations")), 1);
	size_t i;
	bool   listed = false;
	json_array_foreach(json_object_get(st, "projections"), i, p)
	{
		if (strcmp(jstr(p, "id"), ID1) == 0) {
			listed = true;
			CHECK(json_is_true(json_object_get(p, "remote")));
		} else {
			CHECK(json_is_false(json_object_get(p, "remote")));
		}
	}
	CHECK(listed);
	json_decref(st);
	CHECK_EQ(n_procs_of(ID1), 1);

	/* queries find it, by id and by name: the initial state */
	json_t *g
	    = expect("{\"v\":1,\"op\":\"get_one\",\"tenant\":\"" FX_TENANT
	             "\",\"projection\":\"remote one\",\"key\":\"k\"}",
	        SL_OK, NULL);
	CHECK(json_is_false(json_object_get(g, "found")));
	CHECK_EQ(json_integer_value(
	             json_object_get(json_object_get(g, "state"), "n")),
	    0);
	json_decref(g);
	refused("{\"v\":1,\"op\":\"get_all\",\"tenant\":\"" FX_TENANT
	        "\",\"projection\":\"" ID1 "\"}",
	    SL_OK, NULL);
	/* operator commands reach its processor */
	json_t *c = expect(
	    "{\"v\":1,\"op\":\"pause\",\"id\":\"" ID1 "\"}", SL_OK, NULL);
	CHECK_EQ(json_integer_value(json_object_get(c, "processors")), 1);
	json_decref(c);
	refused("{\"v\":1,\"op\":\"resume\",\"id\":\"" ID1 "\"}", SL_OK, NULL);
}

static void
test_refusals(void)
{
	size_t before = n_remotes();
	char  *req;

	/* a plugin's id */
	req = proj_req(PLUGIN_ID, SELECTORS);
	refused(req, SL_EEXIST, "plugin");
	free(req);
	/* protocol version */
	refused("{\"v\":1,\"op\":\"register\",\"protocol\":3,\"kind\":"
	        "\"projection\",\"id\":\"" ID2 "\",\"name\":\"x\"," SELECTORS
	        "}",
	    SL_EVERSION, "remote protocol version 3");
	refused("{\"v\":1,\"op\":\"register\",\"protocol\":0,\"kind\":"
	        "\"projection\",\"id\":\"" ID2 "\",\"name\":\"x\"," SELECTORS
	        "}",
	    SL_EVERSION, "remote protocol version 0");
	refused("{\"v\":1,\"op\":\"register\",\"kind\":\"projection\",\"id\":"
	        "\"" ID2 "\",\"name\":\"x\"," SELECTORS "}",
	    SL_EINVAL, "'protocol' is missing");
	refused("{\"v\":1,\"op\":\"register\",\"protocol\":\"1\",\"kind\":"
	        "\"projection\",\"id\":\"" ID2 "\",\"name\":\"x\"," SELECTORS
	        "}",
	    SL_EPROTO, "'protocol'");
	/* kind */
	refused("{\"v\":1,\"op\":\"register\",\"protocol\":1,\"kind\":"
	        "\"aggregate\",\"id\":\"" ID2 "\",\"name\":\"x\"," SELECTORS
	        "}",
	    SL_EINVAL, "unknown kind 'aggregate'");
	refused("{\"v\":1,\"op\":\"register\",\"protocol\":1,\"id\":\"" ID2
	        "\",\"name\":\"x\"," SELECTORS "}",
	    SL_EINVAL, "'kind' is missing");
	refused("{\"v\":1,\"op\":\"register\",\"protocol\":1,\"kind\":"
	        "\"filter\",\"id\":\"" ID2 "\",\"name\":\"x\"}",
	    SL_EINVAL, "'filter_kind' is missing");
	refused("{\"v\":1,\"op\":\"register\",\"protocol\":1,\"kind\":"
	        "\"filter\",\"id\":\"" ID2 "\",\"name\":\"x\",\"filter_kind\":"
	        "\"sideways\"}",
	    SL_EINVAL, "unknown filter kind 'sideways'");
	/* ids and names */
	req = proj_req("not-a-uuid", SELECTORS);
	refused(req, SL_EINVAL, "not a UUID");
	free(req);
	req = proj_req(ID2, "\"scope\":\"nope\"," SELECTORS);
	refused(req, SL_EINVAL, "'scope'");
	free(req);
	refused("{\"v\":1,\"op\":\"register\",\"protocol\":1,\"kind\":"
	        "\"projection\",\"id\":\"" ID2 "\"," SELECTORS "}",
	    SL_EINVAL, "'name' is missing");
	{
		char name[400], *r2;
		memset(name, 'n', 300);
		name[300] = '\0';
		CHECK(
		    asprintf(&r2,
		        "{\"v\":1,\"op\":\"register\",\"protocol\":1,\"kind\":"
		        "\"projection\",\"id\":\"" ID2
		        "\",\"name\":\"%s\"," SELECTORS "}",
		        name)
		    >= 0);
		refused(r2, SL_ETOOBIG, "'name'");
		free(r2);
	}
	req = proj_req(ID2, "\"version\":-1," SELECTORS);
	refused(req, SL_EPROTO, "'version'");
	free(req);
	refused("{\"v\":1,\"op\":\"register\",\"protocol\":1,\"kind\":"
	        "\"projection\",\"id\":\"" ID2 "\",\"name\":\"x\","
	        "\"initial_state\":[1]," SELECTORS "}",
	    SL_EPROTO, "'initial_state'");
	/* selectors */
	req = proj_req(ID2, "");
	refused(req, SL_EINVAL, "'selectors' is missing");
	free(req);
	req = proj_req(ID2, "\"selectors\":[]");
	refused(req, SL_EINVAL, "'selectors' is empty");
	free(req);
	req = proj_req(ID2, "\"selectors\":{}");
	refused(req, SL_EPROTO, "must be an array");
	free(req);
	req = proj_req(ID2, "\"selectors\":[\"Opened\"]");
	refused(req, SL_EPROTO, "'selectors[0]' must be a map");
	free(req);
	req = proj_req(ID2, "\"selectors\":[{\"key\":\"event_source\"}]");
	refused(req, SL_EINVAL, "'selectors[0].type' is missing");
	free(req);
	req = proj_req(ID2,
	    "\"selectors\":[{\"type\":\"A\",\"key\":\"event_source\"},"
	    "{\"type\":\"A\",\"key\":\"partition\"}]");
	refused(req, SL_EINVAL, "selected twice");
	free(req);
	req = proj_req(
	    ID2, "\"selectors\":[{\"type\":\"A\",\"key\":\"color\"}]");
	refused(req, SL_EINVAL, "unknown key selector 'color'");
	free(req);
	req = proj_req(
	    ID2, "\"selectors\":[{\"type\":\"A\",\"key\":\"property\"}]");
	refused(req, SL_EINVAL, "'selectors[0].arg' is missing");
	free(req);
	req = proj_req(ID2,
	    "\"selectors\":[{\"type\":\"A\",\"key\":\"static\",\"arg\":7}]");
	refused(req, SL_EPROTO, "'selectors[0].arg' must be a string");
	free(req);
	req = proj_req(ID2,
	    "\"selectors\":[{\"type\":\"A\",\"key\":\"occurred\",\"arg\":\"\"}"
	    "]");
	refused(req, SL_EINVAL, "must not be empty");
	free(req);
	/* an occurred pattern that makes no keys, as a plugin's at load */
	req = proj_req(ID2,
	    "\"selectors\":[{\"type\":\"A\",\"key\":\"occurred\",\"arg\":"
	    "\"%Y-%Q\"}]");
	refused(req, SL_EINVAL,
	    "'selectors[0].arg': occurred key pattern '%Y-%Q' '%Q' is not a "
	    "strftime conversion");
	free(req);
	req = proj_req(ID2,
	    "\"selectors\":[{\"type\":\"A\",\"key\":\"occurred\",\"arg\":"
	    "\"monthly\"}]");
	refused(req, SL_EINVAL, "gives the same key 'monthly' for every time");
	free(req);

	/* nothing was registered by any of them */
	CHECK_EQ(n_remotes(), before);
	CHECK_EQ(n_procs_of(ID2), 0);
	refused("{\"v\":1,\"op\":\"get_one\",\"tenant\":\"" FX_TENANT
	        "\",\"projection\":\"" ID2 "\",\"key\":\"k\"}",
	    SL_ENOTFOUND, NULL);
}

/* A connected client keeps its id; once it is gone the id is taken over
 * (same definition: "same"; another: "changed"), at a fresh URL. */
static void
test_takeover(void)
{
	char   *req = proj_req(ID1, SELECTORS);
	json_t *st  = ru_status(cl);
	char   *url = strdup(jstr(ru_remote(st, ID1), "url"));
	json_decref(st);

	ru_fake *f = ru_fake_start(url, RU_GOOD);
	CHECK(ru_wait_connected(cl, ID1, true, 5000));
	st = ru_status(cl);
	CHECK(strncmp(jstr(ru_remote(st, ID1), "client"), "ipc", 3) == 0);
	json_decref(st);
	/* the duplicate of a connected registration, also the same one */
	refused(req, SL_EEXIST, "connected");
	char *other = proj_req(ID1, "\"version\":7," SELECTORS);
	refused(other, SL_EEXIST, "connected");
	/* pings keep it connected */
	ru_sleep_ms(400);
	CHECK(ru_fake_pings(f) >= 2);
	st = ru_status(cl);
	CHECK(json_is_true(json_object_get(ru_remote(st, ID1), "connected")));
	json_decref(st);

	/* the client goes */
	ru_fake_stop(f);
	CHECK(ru_wait_connected(cl, ID1, false, 5000));
	st = ru_status(cl);
	CHECK(json_is_null(json_object_get(ru_remote(st, ID1), "client")));
	json_decref(st);

	/* same definition */
	json_t *rep = expect(req, SL_OK, NULL);
	CHECK_STREQ(jstr(rep, "registration"), "same");
	char *url2 = strdup(jstr(rep, "url"));
	CHECK(strcmp(url, url2) != 0);
	char *def1 = strdup(jstr(rep, "definition"));
	json_decref(rep);
	CHECK_EQ(n_procs_of(ID1), 1);

	/* the old URL is closed; the new one connects */
	f = ru_fake_start(url, RU_GOOD);
	ru_sleep_ms(300);
	CHECK(ru_wait_connected(cl, ID1, false, 10));
	ru_fake_stop(f);
	f = ru_fake_start(url2, RU_GOOD);
	CHECK(ru_wait_connected(cl, ID1, true, 5000));
	ru_fake_stop(f);
	CHECK(ru_wait_connected(cl, ID1, false, 5000));

	/* another definition: "changed", another hash, same processors */
	rep = expect(other, SL_OK, NULL);
	CHECK_STREQ(jstr(rep, "registration"), "changed");
	CHECK(strcmp(def1, jstr(rep, "definition")) != 0);
	json_decref(rep);
	CHECK_EQ(n_procs_of(ID1), 1);
	st = ru_status(cl);
	CHECK_EQ(json_integer_value(
	             json_object_get(ru_remote(st, ID1), "registrations")),
	    3);
	CHECK_EQ(
	    json_integer_value(json_object_get(ru_remote(st, ID1), "version")),
	    7);
	json_decref(st);

	/* the same id as the other kind */
	refused("{\"v\":1,\"op\":\"register\",\"protocol\":1,\"kind\":"
	        "\"filter\",\"id\":\"" ID1 "\",\"name\":\"x\",\"filter_kind\":"
	        "\"partitioned\"}",
	    SL_EEXIST, "registered as a projection");
	free(req);
	free(other);
	free(url);
	free(url2);
	free(def1);
}

static void
test_filter(void)
{
	json_t *rep = expect("{\"v\":1,\"op\":\"register\",\"protocol\":1,"
	                     "\"kind\":\"filter\",\"id\":\"" FID
	                     "\",\"name\":\"remote filter\",\"filter_kind\":"
	                     "\"partitioned\"}",
	    SL_OK, NULL);
	CHECK_STREQ(jstr(rep, "registration"), "new");
	json_decref(rep);
	json_t *st = ru_status(cl);
	json_t *r  = ru_remote(st, FID);
	CHECK_STREQ(jstr(r, "kind"), "filter");
	CHECK_STREQ(jstr(r, "filter_kind"), "partitioned");
	json_decref(st);
	CHECK_EQ(n_procs_of(FID), 1);
	/* its stream is read like a plugin filter's (empty yet) */
	rep = expect("{\"v\":1,\"op\":\"read_filter\",\"tenant\":\"" FX_TENANT
	             "\",\"filter\":\"remote filter\"}",
	    SL_OK, NULL);
	CHECK_EQ(json_array_size(json_object_get(rep, "events")), 0);
	json_decref(rep);
	refused("{\"v\":1,\"op\":\"get_one\",\"tenant\":\"" FX_TENANT
	        "\",\"projection\":\"" FID "\",\"key\":\"k\"}",
	    SL_EINVAL, "is a filter");
}

static void
test_limit(void)
{
	/* max_registrations is 3: ID1 and FID, then one more, of protocol
	 * 2: its reply names the batch (remote.batch) and status shows both */
	json_t *rep = expect("{\"v\":1,\"op\":\"register\",\"protocol\":2,"
	                     "\"kind\":\"projection\",\"id\":\"" ID2
	                     "\",\"name\":\"remote v2\"," SELECTORS "}",
	    SL_OK, NULL);
	CHECK_EQ(json_integer_value(json_object_get(rep, "protocol")), 2);
	CHECK_EQ(json_integer_value(json_object_get(rep, "batch")), 16);
	CHECK_EQ(json_integer_value(json_object_get(rep, "window")), 4);
	json_decref(rep);
	json_t *st = ru_status(cl);
	CHECK_EQ(json_integer_value(
	             json_object_get(ru_remote(st, ID2), "protocol")),
	    2);
	CHECK_EQ(
	    json_integer_value(json_object_get(ru_remote(st, ID2), "batch")),
	    16);
	CHECK_EQ(json_integer_value(
	             json_object_get(ru_remote(st, ID1), "protocol")),
	    1);
	CHECK_EQ(
	    json_integer_value(json_object_get(ru_remote(st, ID1), "batch")),
	    1);
	json_decref(st);
	char *req
	    = proj_req("41111111-2222-4333-8444-555555555555", SELECTORS);
	refused(req, SL_ETOOBIG, "max_registrations (3)");
	free(req);
	CHECK_EQ(n_remotes(), 3);
}

int
main(void)
{
	fx_start("remote:\n"
	         "  keepalive_ms: 100\n"
	         "  timeout_ms: 600\n"
	         "  window: 4\n"
	         "  max_registrations: 3\n"
	         "  batch: 16\n");
	CHECK_EQ(sl_client_open(fx_url, 10000, &cl), SL_OK);
	test_success();
	test_refusals();
	test_takeover();
	test_filter();
	test_limit();
	sl_client_close(cl);
	fx_stop();
	printf("remote_register_test: ok\n");
	return 0;
}
