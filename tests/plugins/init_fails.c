/*
 * Negative test plugin: its init function reports an error, as a plugin
 * does when it cannot set itself up. The host must refuse it.
 */
#include <sluice/plugin.h>

SL_EXPORT int
sluice_plugin_init(const sl_host_api *host, const sl_plugin_desc **out)
{
	int rc = sl_bind(host);
	if (rc != SL_OK)
		return rc;
	sl_logf(SL_LOG_WARN, "init_fails: refusing to start (on purpose)");
	*out = NULL;
	return SL_EPLUGIN;
}
