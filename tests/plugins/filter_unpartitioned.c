/*
 * Test plugin: one unpartitioned filter (ABI 1.1).
 *
 *   filter "t_events"  67e19a59-fde4-445e-9080-d11446024b91  unpartitioned
 *     includes every event whose type starts with "T" (Tick, Tock, ...),
 *     excludes the others; it never sets the partition
 *
 * It fails by the rules of flaky_fail.h ("fatal", "fail_times",
 * "retry_after_ms" in the content) for every event it sees. Plugin
 * "filter_unpartitioned", version "1.0.0", definition version 1.
 */
#include <sluice/plugin.h>

#include "flaky_fail.h"

static sl_verdict
t_events(
    void *user, const sl_event *ev, const char **partition, sl_context *ctx)
{
	(void) user;
	(void) partition;
	if (flaky_fails(ev, ctx))
		return SL_FAILED;
	return sl_ev_type(ev)[0] == 'T' ? SL_INCLUDED : SL_EXCLUDED;
}

static const sl_filter filter = {
	.struct_size = sizeof(sl_filter),
	.abi_version = SL_ABI_VERSION,
	.id          = "67e19a59-fde4-445e-9080-d11446024b91",
	.name        = "t_events",
	.version     = 1,
	.kind        = SL_FILTER_UNPARTITIONED,
	.filter      = t_events,
};

static const sl_filter *const filters[] = { &filter };

static const sl_plugin_desc descriptor = {
	.struct_size = sizeof(sl_plugin_desc),
	.abi_version = SL_ABI_VERSION,
	.name        = "filter_unpartitioned",
	.version     = "1.0.0",
	.filters     = filters,
	.n_filters   = 1,
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
