/*
 * Test plugin for the API's lanes: projection "query_slow" selects every
 * event ("$any") into one key ("all") and sleeps QUERY_SLOW_US (environment
 * of sluiced; default 1000 us) per event, so that a one-time query of it
 * over a few thousand events runs for seconds while using no CPU (the fast
 * ops measured beside it compete with the daemon, not with the plugin).
 * Configure it `mode: one_time` so that the daemon does not run it itself.
 * State: {"count": N}.
 */
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include <sluice/plugin.h>

static long slow_us = 1000;

static const sl_selector selectors[] = {
	{ "$any", SL_KEY_STATIC, "all" },
};

static sl_outcome
on_event(void *user, const sl_event *ev, const char *key, sl_state *st,
    sl_context *ctx)
{
	struct timespec ts = { slow_us / 1000000, (slow_us % 1000000) * 1000 };

	(void) user;
	(void) ev;
	(void) key;
	nanosleep(&ts, NULL);
	if (sl_set_i64(st, "count", sl_state_i64(st, "count", 0) + 1) != SL_OK)
		return sl_failf(ctx, "cannot update the state");
	return SL_REPLACE;
}

static const sl_projection projection = {
	.struct_size        = sizeof(sl_projection),
	.abi_version        = SL_ABI_VERSION,
	.id                 = "e2e0e2e0-0014-4000-8000-000000000014",
	.name               = "query_slow",
	.version            = 1,
	.initial_state_json = "{\"count\":0}",
	.selectors          = selectors,
	.n_selectors        = 1,
	.on                 = on_event,
};

static const sl_projection *const projections[] = { &projection };

static const sl_plugin_desc descriptor = {
	.struct_size   = sizeof(sl_plugin_desc),
	.abi_version   = SL_ABI_VERSION,
	.name          = "query_slow",
	.version       = "1.0.0",
	.projections   = projections,
	.n_projections = 1,
};

SL_EXPORT int
sluice_plugin_init(const sl_host_api *h, const sl_plugin_desc **out)
{
	const char *e  = getenv("QUERY_SLOW_US");
	int         rc = sl_bind(h);
	if (rc != SL_OK)
		return rc;
	if (e != NULL && e[0] != '\0')
		slow_us = strtol(e, NULL, 10);
	*out = &descriptor;
	return SL_OK;
}
