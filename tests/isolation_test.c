/*
 * One slow projection does not stall its tenant: with a neighbour taking
 * 20 ms per event (tests/plugins/slow_neighbour.c) in the same tenant,
 * account_details' commit-to-read-model latency stays within twice its
 * value without the neighbour (p99 over the same commits, measured in this
 * run), and `pause` of the neighbour is answered within 100 ms. A real
 * runtime on ipc://, real plugins, the client library.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sluice/client.h>

#include "api_fixture.h"
#include "daemon_testutil.h"

#define NEIGHBOUR "5e1d0b0e-7c4a-4f2e-9b3d-1a2b3c4d5e6f"
#define SAMPLES   150

static int64_t
now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static long long
balance(sl_client *cl)
{
	char     *json = NULL;
	bool      found;
	long long b    = -1;
	CHECK_EQ(sl_client_get_one(
	             cl, FX_TENANT, FX_PROJECTION, "acc-1", &json, &found),
	    SL_OK);
	const char *at = json != NULL ? strstr(json, "\"balance\":") : NULL;
	if (found && at != NULL)
		b = strtoll(at + 10, NULL, 10);
	sl_client_free(json);
	return b;
}

static int
cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;
	return x < y ? -1 : x > y;
}

/* p99 (µs) of SAMPLES commits' time until account_details shows them. */
static int64_t
latency_p99(sl_client *cl, long long *expect)
{
	static int64_t v[SAMPLES];
	sl_new_event   ev = { .type = "DebitPerformed",
		  .content_json    = "{\"amount\":1}" };
	for (int i = 0; i < SAMPLES; i++) {
		sl_commit_result res;
		int64_t          t0 = now_us();
		CHECK_EQ(sl_client_commit(
		             cl, FX_TENANT, "acc-1", SL_EXPECT_ANY, &ev, 1, &res),
		    SL_OK);
		(*expect)++;
		while (balance(cl) != *expect) {
			CHECK(now_us() - t0 < 10000000);
			dt_sleep_ms(0);
		}
		v[i] = now_us() - t0;
	}
	qsort(v, SAMPLES, sizeof(v[0]), cmp_i64);
	return v[SAMPLES * 99 / 100];
}

/* The neighbour's processor says paused. */
static bool
neighbour_paused(sl_client *cl)
{
	char *text = NULL;
	CHECK_EQ(sl_client_status(cl, &text), SL_OK);
	json_t *st = json_loads(text, 0, NULL);
	sl_client_free(text);
	CHECK(st != NULL);
	bool    paused = false, found = false;
	size_t  i;
	json_t *p;
	json_array_foreach(json_object_get(st, "processors"), i, p)
	{
		const char *id = json_string_value(json_object_get(p, "projection"));
		if (id != NULL && strcmp(id, NEIGHBOUR) == 0) {
			found  = true;
			paused = json_is_true(json_object_get(p, "paused"));
		}
	}
	json_decref(st);
	CHECK(found);
	return paused;
}

static bool
status_has(sl_client *cl, const char *what)
{
	char *json = NULL;
	CHECK_EQ(sl_client_status(cl, &json), SL_OK);
	bool has = strstr(json, what) != NULL;
	sl_client_free(json);
	return has;
}

int
main(void)
{
	char plugins[4200], dst[4400], tmp[4400], yaml[8192];
	snprintf(plugins, sizeof(plugins), "%s/plugins", tu_tmpdir());
	CHECK(mkdir(plugins, 0755) == 0);
	snprintf(dst, sizeof(dst), "%s/account_details.so", plugins);
	snprintf(tmp, sizeof(tmp), "%s/.account_details.tmp", tu_tmpdir());
	dt_install(SL_PLUGIN_DIR "/account_details.so", tmp, dst);
	snprintf(yaml, sizeof(yaml),
	    "plugin_dir: %s\n"
	    "hot_reload: true\n"
	    "tenants:\n"
	    "  - id: " FX_TENANT "\n"
	    "    read_models:\n"
	    "      map_size: 64MiB\n",
	    plugins);
	fx_start_yaml(yaml);
	sl_client *cl;
	CHECK_EQ(sl_client_open(fx_url, 20000, &cl), SL_OK);

	long long expect = 0;
	(void) latency_p99(cl, &expect); /* warm up */
	int64_t base = latency_p99(cl, &expect);

	/* the neighbour arrives (hot reload) with every DebitPerformed so
	 * far to fold at 20 ms each: busy for the whole measurement */
	snprintf(dst, sizeof(dst), "%s/slow_neighbour.so", plugins);
	snprintf(tmp, sizeof(tmp), "%s/.slow_neighbour.tmp", tu_tmpdir());
	dt_install(SL_TEST_PLUGIN_DIR "/slow_neighbour.so", tmp, dst);
	int64_t end = dt_now_ms() + 10000;
	while (!status_has(cl, "slow_neighbour")) {
		CHECK(dt_now_ms() < end);
		dt_sleep_ms(20);
	}
	/* twice the p99 alone; a floor of 5 ms for the alone figure keeps
	 * a shared machine's scheduling noise from deciding, and so does a
	 * second and third measurement when one is over (a stall of the
	 * whole machine shows in all three) */
	int64_t bound = 2 * (base > 5000 ? base : 5000), with = 0;
	for (int i = 0; i < 3 && (i == 0 || with > bound); i++) {
		with = latency_p99(cl, &expect);
		printf("account_details commit-to-read-model p99: %.2f ms "
		       "alone, %.2f ms beside a 20 ms/event neighbour (ratio "
		       "%.2f)\n",
		    (double) base / 1000, (double) with / 1000,
		    (double) with / (double) base);
	}
	CHECK(with <= bound);

	/* the neighbour is still working through its backlog: pause is
	 * taken between two of its events */
	CHECK(!neighbour_paused(cl));
	size_t  n  = 0;
	int64_t t0 = now_us();
	CHECK_EQ(sl_client_command(cl, "pause", NEIGHBOUR, FX_TENANT, &n),
	    SL_OK);
	int64_t took = now_us() - t0;
	printf("pause of the busy neighbour answered in %.2f ms\n",
	    (double) took / 1000);
	CHECK_EQ(n, 1);
	CHECK(took < 100000);
	CHECK(neighbour_paused(cl));
	CHECK_EQ(sl_client_command(cl, "resume", NEIGHBOUR, FX_TENANT, &n),
	    SL_OK);

	sl_client_close(cl);
	fx_stop();
	printf("isolation_test: ok\n");
	return 0;
}
