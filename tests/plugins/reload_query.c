/*
 * Test plugin for reload_query_test: projection "reload_query" counts
 * "Ticked" events per stream (state {"count":N}) and has a result
 * transform {"variant":V,"fives":count/5}, so that one-time queries run its
 * on() and get_all its result() on the API threads. Built three times with
 * RELOAD_QUERY_VARIANT 1..3: the same definition with other code (the
 * variant only shows in the result), so a swap is a reload that goes on
 * from the checkpoint, never a rebuild.
 */
#include <sluice/plugin.h>

#ifndef RELOAD_QUERY_VARIANT
#define RELOAD_QUERY_VARIANT 1
#endif

static const sl_host_api *host;

static const sl_selector selectors[] = {
	{ "Ticked", SL_KEY_EVENT_SOURCE, NULL },
};

static sl_outcome
on_event(void *user, const sl_event *ev, const char *key, sl_state *st,
    sl_context *ctx)
{
	(void) user, (void) ev, (void) key;
	int64_t n = 0;
	(void) host->state_i64(st, "count", &n);
	if (host->state_set_i64(st, "count", n + 1) != SL_OK)
		return host->fail(ctx, "cannot update the state");
	return SL_REPLACE;
}

static sl_outcome
result(void *user, const char *key, const sl_state *st, sl_state *res)
{
	(void) user, (void) key;
	int64_t n = 0;
	(void) host->state_i64(st, "count", &n);
	if (host->state_set_i64(res, "variant", RELOAD_QUERY_VARIANT) != SL_OK
	    || host->state_set_i64(res, "fives", n / 5) != SL_OK)
		return SL_FAIL;
	return SL_REPLACE;
}

static const sl_projection projection = {
	.struct_size        = sizeof(sl_projection),
	.abi_version        = SL_ABI_VERSION,
	.id                 = "7c3e9a10-4b2d-4f6e-8a1c-5d0e2f4a6b81",
	.name               = "reload_query",
	.version            = 1,
	.initial_state_json = "{\"count\":0}",
	.selectors          = selectors,
	.n_selectors        = 1,
	.on                 = on_event,
	.result             = result,
};

static const sl_projection *const projections[] = { &projection };

#define STR_(x) #x
#define STR(x)  STR_(x)

static const sl_plugin_desc descriptor = {
	.struct_size   = sizeof(sl_plugin_desc),
	.abi_version   = SL_ABI_VERSION,
	.name          = "reload_query",
	.version       = STR(RELOAD_QUERY_VARIANT) ".0.0",
	.projections   = projections,
	.n_projections = 1,
};

SL_EXPORT int
sluice_plugin_init(const sl_host_api *h, const sl_plugin_desc **out)
{
	int rc = sl_bind(h);
	if (rc != SL_OK)
		return rc;
	host = h;
	*out = &descriptor;
	return SL_OK;
}
