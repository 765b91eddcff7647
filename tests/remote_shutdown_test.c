/*
 * Stopping with many remote registrations (issue 18 item 5): 60
 * registrations, 20 of them with a connected client answering calls and
 * pings, 40 whose clients never came; the runtime stops (what SIGTERM
 * does) within a bound that does not grow with their number: each
 * registration's socket is closed at the same time as the others', not
 * one after another (each close may wait for NNG).
 */
#include <inttypes.h>

#include "api_fixture.h"
#include "remote_testutil.h"

#define N_REGS      60
#define N_CONNECTED 20
/* A stop may wait for one registration's close (server_close_socket:
 * 2 s at most) and for processors to end; never for all 60 in a row. */
#define STOP_BOUND_MS 6000

static sl_client *cl;

int
main(void)
{
	fx_start("remote:\n"
	         "  keepalive_ms: 100\n"
	         "  timeout_ms: 1000\n"
	         "  max_registrations: 64\n");
	CHECK_EQ(sl_client_open(fx_url, 10000, &cl), SL_OK);
	ru_fake *fakes[N_CONNECTED];
	for (int i = 0; i < N_REGS; i++) {
		char    req[1024];
		json_t *rep = NULL;
		snprintf(req, sizeof(req),
		    "{\"v\":1,\"op\":\"register\",\"protocol\":1,"
		    "\"kind\":\"projection\","
		    "\"id\":\"%08d-2222-4333-8444-555555555555\","
		    "\"name\":\"remote %d\",\"selectors\":[{\"type\":"
		    "\"Opened\",\"key\":\"event_source\"}]}",
		    i, i);
		CHECK_EQ(ru_request(cl, req, &rep), SL_OK);
		if (i < N_CONNECTED)
			fakes[i] = ru_fake_start(
			    json_string_value(json_object_get(rep, "url")),
			    RU_GOOD);
		json_decref(rep);
	}
	for (int i = 0; i < N_CONNECTED; i++) {
		char id[64];
		snprintf(id, sizeof(id),
		    "%08d-2222-4333-8444-555555555555", i);
		ru_wait_connected(cl, id, true, 10000);
	}
	sl_client_close(cl);

	int64_t t0 = ru_now_ms();
	runtime_stop(fx_rt);
	int64_t ms = ru_now_ms() - t0;
	config_free(fx_cfg);
	printf("remote_shutdown_test: stopped with %d registrations (%d "
	       "connected) in %" PRId64 " ms\n",
	    N_REGS, N_CONNECTED, ms);
	CHECK(ms < STOP_BOUND_MS);
	for (int i = 0; i < N_CONNECTED; i++)
		ru_fake_stop(fakes[i]);
	printf("remote_shutdown_test: ok\n");
	return 0;
}
