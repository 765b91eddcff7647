/*
 * bench_js_host's C side: the projections of bench/js (js_count.js,
 * js_accounts.js) written as a 1.3 C plugin, through the same document
 * calls a C author would use.
 */
#include <string.h>

#include <sluice/plugin.h>

static const sl_selector any_root[]  = { { "$any", SL_KEY_STATIC, "root" } };
static const sl_selector by_stream[] = {
	{ "AccountOpened", SL_KEY_EVENT_SOURCE, NULL },
	{ "Deposited", SL_KEY_EVENT_SOURCE, NULL },
	{ "Withdrawn", SL_KEY_EVENT_SOURCE, NULL },
};
static const sl_source accounts_src[] = {
	{ SL_SOURCE_CATEGORY, "account", NULL, 0 },
};

static sl_outcome
count_on(void *user, const sl_event *ev, const char *key, sl_state *st,
    sl_context *ctx)
{
	(void) user;
	(void) ev;
	(void) key;
	(void) ctx;
	sl_st_set_i64(st, "count", sl_st_i64(st, "count", 0) + 1);
	return SL_REPLACE;
}

static sl_outcome
accounts_on(void *user, const sl_event *ev, const char *key, sl_state *st,
    sl_context *ctx)
{
	(void) user;
	(void) key;
	(void) ctx;
	const char *type   = sl_ev_type(ev);
	int64_t     amount = 0;
	if (strcmp(type, "AccountOpened") == 0) {
		const char *name = sl_ev_str(ev, SL_CONTENT, "name");
		sl_st_set_str(st, "name", name ? name : "");
		sl_st_set_bool(st, "open", true);
		return SL_REPLACE;
	}
	sl_ev_i64(ev, SL_CONTENT, "amount", &amount);
	int64_t balance = sl_st_i64(st, "balance", 0);
	if (strcmp(type, "Deposited") == 0)
		sl_st_set_i64(st, "balance", balance + amount);
	else if (balance >= amount)
		sl_st_set_i64(st, "balance", balance - amount);
	else
		sl_st_set_i64(
		    st, "rejected", sl_st_i64(st, "rejected", 0) + 1);
	sl_st_set_i64(st, "ops", sl_st_i64(st, "ops", 0) + 1);
	return SL_REPLACE;
}

static const sl_projection c_count = {
	.struct_size        = sizeof(sl_projection),
	.abi_version        = SL_ABI_VERSION,
	.id                 = "b3c70000-0000-4000-8000-000000000001",
	.name               = "c_count",
	.version            = 1,
	.initial_state_json = "{\"count\":0}",
	.selectors          = any_root,
	.n_selectors        = 1,
	.on                 = count_on,
};

static const sl_projection c_accounts = {
	.struct_size        = sizeof(sl_projection),
	.abi_version        = SL_ABI_VERSION,
	.id                 = "b3c70000-0000-4000-8000-000000000002",
	.name               = "c_accounts",
	.version            = 1,
	.initial_state_json = "{\"balance\":0,\"ops\":0}",
	.selectors          = by_stream,
	.n_selectors        = 3,
	.on                 = accounts_on,
	.sources            = accounts_src,
	.n_sources          = 1,
};

static const sl_projection *const projections[] = { &c_count, &c_accounts };

static const sl_plugin_desc desc = {
	.struct_size   = sizeof(sl_plugin_desc),
	.abi_version   = SL_ABI_VERSION,
	.name          = "bench_js_plugin",
	.version       = "1.0.0",
	.projections   = projections,
	.n_projections = 2,
};

SL_EXPORT int
sluice_plugin_init(const sl_host_api *host, const sl_plugin_desc **out)
{
	int rc = sl_bind(host);
	if (rc != SL_OK)
		return rc;
	*out = &desc;
	return SL_OK;
}
