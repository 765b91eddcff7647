/*
 * Negative test plugin, one build per case (BAD_OCCURRED): a projection
 * whose occurred key selector has a strftime pattern that cannot make read
 * model keys. 1 "%Y-%Q" (no such conversion), 2 "daily" (the same key
 * for every time), 3 "%Y-%m-%" (ends inside a conversion), 4 "%Z %z"
 * (only constant conversions in UTC), 5 "%Eq" (E with a conversion it
 * does not take), 6 "%Y-%m-%d" (good: loads).
 */
#include <sluice/plugin.h>

#ifndef BAD_OCCURRED
#define BAD_OCCURRED 1
#endif

#if BAD_OCCURRED == 1
#define PATTERN "%Y-%Q"
#elif BAD_OCCURRED == 2
#define PATTERN "daily"
#elif BAD_OCCURRED == 3
#define PATTERN "%Y-%m-%"
#elif BAD_OCCURRED == 4
#define PATTERN "%Z %z"
#elif BAD_OCCURRED == 5
#define PATTERN "%Eq"
#else
#define PATTERN "%Y-%m-%d"
#endif

static const sl_selector selectors[] = {
	{ "DebitPerformed", SL_KEY_EVENT_SOURCE, NULL },
	{ "Tick", SL_KEY_OCCURRED, PATTERN },
};

static sl_outcome
on_event(void *user, const sl_event *ev, const char *key, sl_state *st,
    sl_context *ctx)
{
	(void) user;
	(void) ev;
	(void) key;
	(void) st;
	(void) ctx;
	return SL_REPLACE;
}

static const sl_projection projection = {
	.struct_size        = sizeof(sl_projection),
	.abi_version        = SL_ABI_VERSION,
	.id                 = "0cc0e4ed-0000-4000-8000-00000000000c",
	.name               = "ticks_per_day",
	.version            = 1,
	.initial_state_json = "{}",
	.selectors          = selectors,
	.n_selectors        = 2,
	.on                 = on_event,
};

static const sl_projection *const projections[] = { &projection };

static const sl_plugin_desc descriptor = {
	.struct_size   = sizeof(sl_plugin_desc),
	.abi_version   = SL_ABI_VERSION,
	.name          = "bad_occurred",
	.version       = "1.0.0",
	.projections   = projections,
	.n_projections = 1,
};

SL_EXPORT int
sluice_plugin_init(const sl_host_api *host, const sl_plugin_desc **out)
{
	int rc = sl_bind(host);
	if (rc != SL_OK)
		return rc;
	*out = &descriptor;
	return SL_OK;
}
