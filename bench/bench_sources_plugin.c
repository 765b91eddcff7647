/*
 * bench_sources' plugin: four projections that count events per stream,
 * reading the Account Details log (acc-NNNNNN and cust-NNNNNN streams)
 * from other sources: the whole log declared as ABI 1.2 (every event
 * decoded), the whole log as 1.3, the "cust" category, one stream.
 */
#include <sluice/plugin.h>

static const sl_selector any_by_stream[] = {
	{ "$any", SL_KEY_EVENT_SOURCE, NULL },
};

static sl_outcome
count(void *user, const sl_event *ev, const char *key, sl_state *st,
    sl_context *ctx)
{
	(void) user;
	(void) ev;
	(void) key;
	(void) ctx;
	return sl_st_set_i64(st, "n", sl_st_i64(st, "n", 0) + 1) == SL_OK
	    ? SL_REPLACE
	    : SL_FAIL;
}

static const sl_source cust[] = { { SL_SOURCE_CATEGORY, "cust", NULL, 0 } };
static const sl_source one[]  = { { SL_SOURCE_STREAM, "acc-000001", NULL, 0 } };

#define PROJ(var, abi, idtail, nm, src, nsrc)                                 \
	static const sl_projection var = {                                    \
		.struct_size        = sizeof(sl_projection),                  \
		.abi_version        = abi,                                    \
		.id                 = "b5c0e5e5-0000-4000-8000-0000000000" idtail, \
		.name               = nm,                                     \
		.version            = 1,                                      \
		.initial_state_json = "{}",                                   \
		.selectors          = any_by_stream,                          \
		.n_selectors        = 1,                                      \
		.on                 = count,                                  \
		.sources            = src,                                    \
		.n_sources          = nsrc,                                   \
	}

PROJ(p_v12, (1u << 16) | 2u, "01", "whole_v12", NULL, 0);
PROJ(p_v13, SL_ABI_VERSION, "02", "whole_v13", NULL, 0);
PROJ(p_cat, SL_ABI_VERSION, "03", "category_cust", cust, 1);
PROJ(p_one, SL_ABI_VERSION, "04", "one_stream", one, 1);

static const sl_projection *const projections[] = { &p_v12, &p_v13, &p_cat,
	&p_one };

static const sl_plugin_desc desc = {
	.struct_size   = sizeof(sl_plugin_desc),
	.abi_version   = SL_ABI_VERSION,
	.name          = "bench_sources",
	.version       = "1.0.0",
	.projections   = projections,
	.n_projections = 4,
};

SL_EXPORT int
sluice_plugin_init(const sl_host_api *host, const sl_plugin_desc **out)
{
	if (sl_bind(host) != SL_OK)
		return SL_EVERSION;
	*out = &desc;
	return SL_OK;
}
