/*
 * Test plugin: two projections with a result transform, "cart" and
 * "cart-lines", counting Added events per stream. Their result streams
 * overlap: "$projections-cart-<key>-result" of key "lines-x" is
 * "$projections-cart-lines-x-result", which "cart-lines" would write for
 * key "x". The definitions are valid, so the plugin loads; the runtime
 * refuses the claim of the second one, which must not run, and status and
 * plugins must say so (claim_refused_test).
 */
#include <sluice/plugin.h>

static const sl_selector selectors[] = {
	{ "Added", SL_KEY_EVENT_SOURCE, NULL },
};

static sl_outcome
on_added(void *user, const sl_event *ev, const char *key, sl_state *st,
    sl_context *ctx)
{
	(void) user;
	(void) ev;
	(void) key;
	if (sl_set_i64(st, "n", sl_state_i64(st, "n", 0) + 1) != SL_OK)
		return sl_failf(ctx, "cannot update the state");
	return SL_REPLACE;
}

/* the result: the count as it is */
static sl_outcome
result(void *user, const char *key, const sl_state *st, sl_state *out)
{
	(void) user;
	(void) key;
	if (sl_set_i64(out, "n", sl_state_i64(st, "n", 0)) != SL_OK)
		return SL_DELETE;
	return SL_REPLACE;
}

static const sl_projection cart = {
	.struct_size        = sizeof(sl_projection),
	.abi_version        = SL_ABI_VERSION,
	.id                 = "0e7e0000-0000-4000-8000-000000000001",
	.name               = "cart",
	.version            = 1,
	.initial_state_json = "{\"n\":0}",
	.selectors          = selectors,
	.n_selectors        = 1,
	.on                 = on_added,
	.result             = result,
};

static const sl_projection cart_lines = {
	.struct_size        = sizeof(sl_projection),
	.abi_version        = SL_ABI_VERSION,
	.id                 = "0e7e0000-0000-4000-8000-000000000002",
	.name               = "cart-lines",
	.version            = 1,
	.initial_state_json = "{\"n\":0}",
	.selectors          = selectors,
	.n_selectors        = 1,
	.on                 = on_added,
	.result             = result,
};

static const sl_projection *const projections[] = { &cart, &cart_lines };

static const sl_plugin_desc descriptor = {
	.struct_size   = sizeof(sl_plugin_desc),
	.abi_version   = SL_ABI_VERSION,
	.name          = "overlap_results",
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
	*out = &descriptor;
	return SL_OK;
}
