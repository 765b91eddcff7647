/*
 * Test plugin for back-pressure (tests/emitter_test.c): projection
 * "emit_slow" counts every "Tick" under the static key "all", sleeping
 * content "sleep_us" (default 2000) per event, and fails an event whose
 * content has "fail": true while the retry attempt is below "fail_times"
 * (absent: on every attempt), with fail_with(retry = !"hard"). It declares
 * "slow-out" (an emitting projection) but writes nothing there.
 */
#include <stdbool.h>
#include <stdint.h>
#include <unistd.h>

#include <sluice/plugin.h>

static const sl_host_api *host;

static const sl_selector selectors[] = {
	{ "Tick", SL_KEY_STATIC, "all" },
};

static const char *const emits[] = { "slow-out" };

static sl_outcome
on_event(void *user, const sl_event *ev, const char *key, sl_state *st,
    sl_context *ctx)
{
	(void) user;
	(void) key;
	int64_t us = 2000, fail_times = INT64_MAX;
	bool    fail = false, hard = false;
	(void) host->content_i64(ev, "sleep_us", &us);
	if (us > 0)
		usleep((useconds_t) us);
	if (host->content_bool(ev, "fail", &fail) == SL_OK && fail) {
		(void) host->content_i64(ev, "fail_times", &fail_times);
		(void) host->content_bool(ev, "hard", &hard);
		if ((int64_t) host->retry_attempt(ctx) < fail_times)
			return host->fail_with(ctx, "refused: fail", !hard, 0);
	}
	int64_t n = 0;
	(void) host->state_i64(st, "count", &n);
	host->state_set_i64(st, "count", n + 1);
	return SL_REPLACE;
}

static const sl_projection projection = {
	.struct_size        = sizeof(sl_projection),
	.abi_version        = SL_ABI_VERSION,
	.id                 = "e0000000-0000-4000-8000-000000000002",
	.name               = "emit_slow",
	.version            = 1,
	.initial_state_json = "{\"count\":0}",
	.selectors          = selectors,
	.n_selectors        = 1,
	.on                 = on_event,
	.emits              = emits,
	.n_emits            = 1,
};

static const sl_projection *const projections[] = { &projection };

static const sl_plugin_desc descriptor = {
	.struct_size   = sizeof(sl_plugin_desc),
	.abi_version   = SL_ABI_VERSION,
	.name          = "emit_slow",
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
