/*
 * Negative test plugin: a projection without its required on() callback.
 * The host must refuse the plugin and name the projection and the callback.
 */
#include <sluice/plugin.h>

static const sl_selector selectors[] = {
	{ "DebitPerformed", SL_KEY_EVENT_SOURCE, NULL },
};

static const sl_projection projection = {
	.struct_size        = sizeof(sl_projection),
	.abi_version        = SL_ABI_VERSION,
	.id                 = "0b6c2d7e-3f41-4a58-9c6d-7e8f90a1b2c3",
	.name               = "no_handler",
	.version            = 1,
	.initial_state_json = "{\"n\":0}",
	.selectors          = selectors,
	.n_selectors        = 1,
	.on                 = NULL,
};

static const sl_projection *const projections[] = { &projection };

static const sl_plugin_desc descriptor = {
	.struct_size   = sizeof(sl_plugin_desc),
	.abi_version   = SL_ABI_VERSION,
	.name          = "missing_on",
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
