/*
 * Test plugin for filter and projection retries (ABI 1.1):
 *
 *   filter "flaky"            cece5212-dc74-4a93-89b5-f4231e294470
 *     partitioned; includes every Tick and Tock event, partition = the
 *     event's stream id; excludes every other type
 *   projection "flaky_counts" 2f9fbf60-9be2-4ce9-9afc-e3c231f6116a
 *     Tick and Tock, key = stream id (event source); state
 *     {"n": events folded, "last_attempt": retry attempt of the last one}
 *
 * Both fail by the rules of flaky_fail.h ("fatal", "fail_times",
 * "retry_after_ms" in the content), the filter for every event it sees
 * (whatever its type), the projection for the events it selects.
 * Plugin "filter_flaky", version "<FLAKY_VERSION>.0.0"; both definitions
 * declare version FLAKY_VERSION (1 by default; the filter_flaky_v2 build
 * has 2, so its definition hashes differ).
 */
#include <string.h>

#include <sluice/plugin.h>

#include "flaky_fail.h"

#ifndef FLAKY_VERSION
#define FLAKY_VERSION 1
#endif
#define STR_(x) #x
#define STR(x)  STR_(x)

static sl_verdict
flaky_filter(
    void *user, const sl_event *ev, const char **partition, sl_context *ctx)
{
	(void) user;
	if (flaky_fails(ev, ctx))
		return SL_FAILED;
	const char *type = sl_ev_type(ev);
	if (strcmp(type, "Tick") != 0 && strcmp(type, "Tock") != 0)
		return SL_EXCLUDED;
	*partition = sl_ev_stream(ev);
	return SL_INCLUDED;
}

static const sl_selector selectors[] = {
	{ "Tick", SL_KEY_EVENT_SOURCE, NULL },
	{ "Tock", SL_KEY_EVENT_SOURCE, NULL },
};

static sl_outcome
flaky_on(void *user, const sl_event *ev, const char *key, sl_state *st,
    sl_context *ctx)
{
	(void) user;
	(void) key;
	if (flaky_fails(ev, ctx))
		return SL_FAIL;
	if (sl_set_i64(st, "n", sl_state_i64(st, "n", 0) + 1) != SL_OK
	    || sl_set_i64(st, "last_attempt", sl_host()->retry_attempt(ctx))
	        != SL_OK)
		return sl_failf(ctx, "cannot update the state");
	return SL_REPLACE;
}

static const sl_filter filter = {
	.struct_size = sizeof(sl_filter),
	.abi_version = SL_ABI_VERSION,
	.id          = "cece5212-dc74-4a93-89b5-f4231e294470",
	.name        = "flaky",
	.version     = FLAKY_VERSION,
	.kind        = SL_FILTER_PARTITIONED,
	.filter      = flaky_filter,
};

static const sl_projection projection = {
	.struct_size        = sizeof(sl_projection),
	.abi_version        = SL_ABI_VERSION,
	.id                 = "2f9fbf60-9be2-4ce9-9afc-e3c231f6116a",
	.name               = "flaky_counts",
	.version            = FLAKY_VERSION,
	.initial_state_json = "{\"n\":0,\"last_attempt\":0}",
	.selectors          = selectors,
	.n_selectors        = 2,
	.on                 = flaky_on,
};

static const sl_projection *const projections[] = { &projection };
static const sl_filter *const     filters[]     = { &filter };

static const sl_plugin_desc descriptor = {
	.struct_size   = sizeof(sl_plugin_desc),
	.abi_version   = SL_ABI_VERSION,
	.name          = "filter_flaky",
	.version       = STR(FLAKY_VERSION) ".0.0",
	.projections   = projections,
	.n_projections = 1,
	.filters       = filters,
	.n_filters     = 1,
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
