/*
 * Test plugin (ABI 1.3 sources): projections that count the events they
 * get per stream (key: the stream id, state {"n": count}), each reading
 * from other sources, and a filter reading one prefix. A link event (type
 * "$>") delivered to links_all is resolved: its state counts the targets
 * found ("resolved") and keeps the last target's type. Built with
 * -DBAD_SOURCE=1 (an unknown kind) or 2 (a stream source without a name)
 * to be refused at load.
 */
#include <string.h>

#include <sluice/plugin.h>

static const sl_host_api *H;

static const sl_selector any_by_stream[] = {
	{ "$any", SL_KEY_EVENT_SOURCE, NULL },
};

static sl_outcome
count(void *user, const sl_event *ev, const char *key, sl_state *st,
    sl_context *ctx)
{
	(void) user;
	(void) key;
	(void) ctx;
	int64_t n = sl_st_i64(st, "n", 0);
	if (sl_st_set_i64(st, "n", n + 1) != SL_OK)
		return SL_FAIL;
	const char *type = H->event_type(ev);
	if (type != NULL && strcmp(type, "$>") == 0) {
		const sl_event *t;
		if (sl_ev_link_target(ev, &t) == SL_OK) {
			const char *tt = H->event_type(t);
			sl_st_set_i64(st, "resolved", sl_st_i64(st, "resolved", 0) + 1);
			sl_st_set_str(st, "target_type", tt != NULL ? tt : "");
		}
	}
	return SL_REPLACE;
}

static const char *const deposited[] = { "Deposited" };

static const sl_source src_stream[]   = { { SL_SOURCE_STREAM, "account-1", NULL, 0 } };
static const sl_source src_prefix[]   = { { SL_SOURCE_PREFIX, "acc", NULL, 0 } };
static const sl_source src_category[] = { { SL_SOURCE_CATEGORY, "account", NULL, 0 } };
static const sl_source src_types[]    = { { SL_SOURCE_CATEGORY, "account", deposited, 1 } };
static const sl_source src_two[]      = {
	{ SL_SOURCE_STREAM, "order-1", NULL, 0 },
	{ SL_SOURCE_STREAM, "$misc", NULL, 0 },
};
static const sl_source src_orders[]   = { { SL_SOURCE_PREFIX, "order-", NULL, 0 } };
#if BAD_SOURCE == 1
static const sl_source src_bad[] = { { (sl_source_kind) 9, "x", NULL, 0 } };
#elif BAD_SOURCE == 2
static const sl_source src_bad[] = { { SL_SOURCE_STREAM, NULL, NULL, 0 } };
#endif

#define PROJ(var, idtail, nm, src, nsrc, flags)                               \
	static const sl_projection var = {                                    \
		.struct_size        = sizeof(sl_projection),                  \
		.abi_version        = SL_ABI_VERSION,                         \
		.id                 = "50c0e5e5-0000-4000-8000-0000000000" idtail, \
		.name               = nm,                                     \
		.version            = 1,                                      \
		.initial_state_json = "{}",                                   \
		.selectors          = any_by_stream,                          \
		.n_selectors        = 1,                                      \
		.on                 = count,                                  \
		.sources            = src,                                    \
		.n_sources          = nsrc,                                   \
		.source_flags       = flags,                                  \
	}

PROJ(p_all, "01", "all", NULL, 0, 0);
PROJ(p_links, "02", "links_all", NULL, 0,
    SL_SOURCE_SYSTEM_STREAMS | SL_SOURCE_LINKS);
PROJ(p_stream, "03", "one_stream", src_stream, 1, 0);
PROJ(p_prefix, "04", "prefix", src_prefix, 1, 0);
PROJ(p_category, "05", "category", src_category, 1, 0);
PROJ(p_types, "06", "category_deposits", src_types, 1, 0);
PROJ(p_two, "07", "two_streams", src_two, 2, 0);
#ifdef BAD_SOURCE
PROJ(p_bad, "08", "bad", src_bad, 1, 0);
#endif

/* Built like the others, but declaring ABI 1.2: the whole log, as before
 * 1.3 (its 1.3 fields are not read). */
static const sl_projection p_legacy = {
	.struct_size        = sizeof(sl_projection),
	.abi_version        = (1u << 16) | 2u,
	.id                 = "50c0e5e5-0000-4000-8000-000000000009",
	.name               = "legacy_all",
	.version            = 1,
	.initial_state_json = "{}",
	.selectors          = any_by_stream,
	.n_selectors        = 1,
	.on                 = count,
	.sources            = src_stream, /* ignored: 1.2 */
	.n_sources          = 1,
};

static sl_verdict
include_all(void *user, const sl_event *ev, const char **partition,
    sl_context *ctx)
{
	(void) user;
	(void) ev;
	(void) partition;
	(void) ctx;
	return SL_INCLUDED;
}

static const sl_filter f_orders = {
	.struct_size = sizeof(sl_filter),
	.abi_version = SL_ABI_VERSION,
	.id          = "50c0e5e5-0000-4000-8000-0000000000f1",
	.name        = "orders",
	.version     = 1,
	.kind        = SL_FILTER_UNPARTITIONED,
	.filter      = include_all,
	.sources     = src_orders,
	.n_sources   = 1,
};

static const sl_projection *const projections[] = {
	&p_all, &p_links, &p_stream, &p_prefix, &p_category, &p_types, &p_two,
	&p_legacy,
#ifdef BAD_SOURCE
	&p_bad,
#endif
};
static const sl_filter *const filters[] = { &f_orders };

static const sl_plugin_desc desc = {
	.struct_size   = sizeof(sl_plugin_desc),
	.abi_version   = SL_ABI_VERSION,
	.name          = "sources",
	.version       = "1.0.0",
	.projections   = projections,
	.n_projections = sizeof(projections) / sizeof(projections[0]),
	.filters       = filters,
	.n_filters     = 1,
};

SL_EXPORT int
sluice_plugin_init(const sl_host_api *host, const sl_plugin_desc **out)
{
	if (sl_bind(host) != SL_OK)
		return SL_EVERSION;
	H    = host;
	*out = &desc;
	return SL_OK;
}
