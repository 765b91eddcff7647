/*
 * Test plugin: a valid plugin with two projections. "all_totals" folds every
 * money event into one read model under the static key "all";
 * "customers_per_stream" counts CustomerRegistered events per stream.
 */
#include <string.h>

#include <sluice/plugin.h>

static const sl_selector totals_selectors[] = {
	{ "DebitPerformed", SL_KEY_STATIC, "all" },
	{ "WithdrawalPerformed", SL_KEY_STATIC, "all" },
};

static const sl_selector customers_selectors[] = {
	{ "CustomerRegistered", SL_KEY_EVENT_SOURCE, NULL },
};

/* total += amount (debits) or -= amount (withdrawals); events += 1 */
static sl_outcome
on_totals(void *user, const sl_event *ev, const char *key, sl_state *st,
    sl_context *ctx)
{
	(void) user;
	(void) key;
	int64_t amount;
	if (sl_get_i64(ev, "amount", &amount) != SL_OK)
		return sl_failf(
		    ctx, "%s without an integer amount", sl_ev_type(ev));
	if (strcmp(sl_ev_type(ev), "WithdrawalPerformed") == 0)
		amount = -amount;
	if (sl_set_i64(st, "total", sl_state_i64(st, "total", 0) + amount)
	        != SL_OK
	    || sl_set_i64(st, "events", sl_state_i64(st, "events", 0) + 1)
	        != SL_OK)
		return sl_failf(ctx, "cannot update the state");
	return SL_REPLACE;
}

static sl_outcome
on_customers(void *user, const sl_event *ev, const char *key, sl_state *st,
    sl_context *ctx)
{
	(void) user;
	(void) ev;
	(void) key;
	if (sl_set_i64(st, "count", sl_state_i64(st, "count", 0) + 1) != SL_OK)
		return sl_failf(ctx, "cannot update the state");
	return SL_REPLACE;
}

static const sl_projection totals = {
	.struct_size        = sizeof(sl_projection),
	.abi_version        = SL_ABI_VERSION,
	.id                 = "3c4d5e6f-7081-4293-a4b5-c6d7e8f90a1b",
	.name               = "all_totals",
	.version            = 1,
	.initial_state_json = "{\"total\":0,\"events\":0}",
	.selectors          = totals_selectors,
	.n_selectors        = 2,
	.on                 = on_totals,
};

static const sl_projection customers = {
	.struct_size        = sizeof(sl_projection),
	.abi_version        = SL_ABI_VERSION,
	.id                 = "4d5e6f70-8192-43a4-b5c6-d7e8f90a1b2c",
	.scope              = "11111111-2222-4333-8444-555555555555",
	.name               = "customers_per_stream",
	.version            = 3,
	.initial_state_json = "{\"count\":0}",
	.selectors          = customers_selectors,
	.n_selectors        = 1,
	.on                 = on_customers,
};

static const sl_projection *const projections[] = { &totals, &customers };

static const sl_plugin_desc descriptor = {
	.struct_size   = sizeof(sl_plugin_desc),
	.abi_version   = SL_ABI_VERSION,
	.name          = "two_projections",
	.version       = "0.2.0",
	.projections   = projections,
	.n_projections = 2,
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
