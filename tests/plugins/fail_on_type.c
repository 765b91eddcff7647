/*
 * Test plugin for retries: projection "fail_on_type" counts "Tick" and
 * "Tock" events per stream (state {"count":N}, key = stream id). An event
 * whose content has "fail": true is refused with the reason
 * "refused: <type>" while the retry attempt is below content "fail_times"
 * (absent: refused on every attempt), and counted once it is accepted.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <sluice/plugin.h>

static const sl_host_api *host;

static const sl_selector selectors[] = {
	{ "Tick", SL_KEY_EVENT_SOURCE, NULL },
	{ "Tock", SL_KEY_EVENT_SOURCE, NULL },
};

static sl_outcome
on_event(void *user, const sl_event *ev, const char *key, sl_state *st,
    sl_context *ctx)
{
	(void) user;
	(void) key;
	bool    fail       = false;
	int64_t fail_times = INT64_MAX;
	if (host->content_bool(ev, "fail", &fail) == SL_OK && fail) {
		(void) host->content_i64(ev, "fail_times", &fail_times);
		if ((int64_t) host->retry_attempt(ctx) < fail_times) {
			char reason[300];
			snprintf(reason, sizeof(reason), "refused: %s",
			    host->event_type(ev));
			return host->fail(ctx, reason);
		}
	}
	int64_t n = 0;
	(void) host->state_i64(st, "count", &n);
	if (host->state_set_i64(st, "count", n + 1) != SL_OK)
		return host->fail(ctx, "cannot update the state");
	return SL_REPLACE;
}

static const sl_projection projection = {
	.struct_size        = sizeof(sl_projection),
	.abi_version        = SL_ABI_VERSION,
	.id                 = "6f708192-a3b4-4c5d-9e6f-708192a3b4c5",
	.name               = "fail_on_type",
	.version            = 1,
	.initial_state_json = "{\"count\":0}",
	.selectors          = selectors,
	.n_selectors        = 2,
	.on                 = on_event,
};

static const sl_projection *const projections[] = { &projection };

static const sl_plugin_desc descriptor = {
	.struct_size   = sizeof(sl_plugin_desc),
	.abi_version   = SL_ABI_VERSION,
	.name          = "fail_on_type",
	.version       = "1.0.0",
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
