/*
 * Negative test plugin: a descriptor built for ABI major 2. The host must
 * refuse it with SL_EVERSION and read nothing else from it.
 */
#include <sluice/plugin.h>

static const sl_plugin_desc descriptor = {
	.struct_size   = sizeof(sl_plugin_desc),
	.abi_version   = (2u << 16) | 0u,
	.name          = "bad_abi",
	.version       = "2.0.0",
	.projections   = NULL,
	.n_projections = 0,
};

SL_EXPORT int
sluice_plugin_init(const sl_host_api *host, const sl_plugin_desc **out)
{
	(void) host;
	*out = &descriptor;
	return SL_OK;
}
