/*
 * Negative test plugin: a shared object that does not export
 * sluice_plugin_init (its entry point has a misspelt name).
 */
#include <sluice/plugin.h>

SL_EXPORT int sluice_plugin_setup(
    const sl_host_api *host, const sl_plugin_desc **out);

SL_EXPORT int
sluice_plugin_setup(const sl_host_api *host, const sl_plugin_desc **out)
{
	(void) host;
	*out = NULL;
	return SL_OK;
}
