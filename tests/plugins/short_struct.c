/*
 * Negative test plugin: the descriptor claims struct_size 8, as if built
 * against a header older than ABI 1.0. The host must refuse it with
 * SL_EVERSION rather than read past the struct.
 */
#include <sluice/plugin.h>

static const sl_plugin_desc descriptor = {
	.struct_size   = 8,
	.abi_version   = SL_ABI_VERSION,
	.name          = "short_struct",
	.version       = "1.0.0",
	.projections   = NULL,
	.n_projections = 0,
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
