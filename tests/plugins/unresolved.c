/*
 * Negative test plugin: calls a function that no library defines. It is
 * linked without --no-undefined, so the link succeeds and dlopen with
 * RTLD_NOW must fail ("undefined symbol").
 */
#include <sluice/plugin.h>

extern int sluice_test_function_that_does_not_exist(void);

SL_EXPORT int
sluice_plugin_init(const sl_host_api *host, const sl_plugin_desc **out)
{
	(void) host;
	*out = NULL;
	return sluice_test_function_that_does_not_exist();
}
