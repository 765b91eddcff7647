/*
 * Test plugin for isolation: process (host_isolation_test backoff): its
 * init function aborts, every time. In sluiced this would end the daemon;
 * under a plugin host it ends only the host, which the daemon starts again
 * with a growing delay.
 */
#include <stdlib.h>

#include <sluice/plugin.h>

SL_EXPORT int
sluice_plugin_init(const sl_host_api *host, const sl_plugin_desc **out)
{
	(void) host;
	(void) out;
	abort();
}
