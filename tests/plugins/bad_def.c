/*
 * Negative test plugin: a projection whose initial state is a JSON array,
 * not an object. The host must refuse it and say why.
 */
#include <sluice/plugin.h>

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
	(void) st;
	(void) ctx;
	return SL_REPLACE;
}

static const sl_projection projection = {
	.struct_size        = sizeof(sl_projection),
	.abi_version        = SL_ABI_VERSION,
	.id                 = "1d3e5f70-8192-4a3b-8c4d-5e6f70819203",
	.name               = "bad_initial_state",
	.version            = 1,
	.initial_state_json = "[1, 2, 3]",
	.selectors          = selectors,
	.n_selectors        = 1,
	.on                 = on_event,
};

static const sl_projection *const projections[] = { &projection };

static const sl_plugin_desc descriptor = {
	.struct_size   = sizeof(sl_plugin_desc),
	.abi_version   = SL_ABI_VERSION,
	.name          = "bad_def",
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
