/*
 * Test plugin for isolation: projection "slow_neighbour" selects every
 * DebitPerformed (key: its stream) and takes SLOW_NEIGHBOUR_MS
 * (environment of the daemon; default 20) per event, sleeping, as a
 * handler waiting on a slow service would. State: {"count": N}.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include <sluice/plugin.h>

static const sl_host_api *host;
static long               slow_ms = 20;

static const sl_selector selectors[] = {
	{ "DebitPerformed", SL_KEY_EVENT_SOURCE, NULL },
};

static sl_outcome
on_event(void *user, const sl_event *ev, const char *key, sl_state *st,
    sl_context *ctx)
{
	(void) user;
	(void) ev;
	(void) key;
	struct timespec ts = { slow_ms / 1000, (slow_ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
	int64_t n = sl_state_i64(st, "count", 0) + 1;
	if (sl_set_i64(st, "count", n) != SL_OK)
		return sl_failf(ctx, "cannot update the state");
	return SL_REPLACE;
}

static const sl_projection projection = {
	.struct_size        = sizeof(sl_projection),
	.abi_version        = SL_ABI_VERSION,
	.id                 = "5e1d0b0e-7c4a-4f2e-9b3d-1a2b3c4d5e6f",
	.name               = "slow_neighbour",
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
	.name          = "slow_neighbour",
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
	(void) host;
	const char *env = getenv("SLOW_NEIGHBOUR_MS");
	if (env != NULL && atol(env) >= 0)
		slow_ms = atol(env);
	*out = &descriptor;
	return SL_OK;
}
