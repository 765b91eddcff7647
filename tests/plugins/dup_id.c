/*
 * Negative test plugin: a valid projection that reuses account_details' id
 * (in upper case, which is the same UUID). Loaded after account_details it
 * must be refused with SL_EEXIST; loaded alone it is fine.
 */
#include <sluice/plugin.h>

static const sl_selector selectors[] = {
	{ "DebitPerformed", SL_KEY_EVENT_SOURCE, NULL },
};

static sl_outcome
on_event(void *user, const sl_event *ev, const char *key, sl_state *st,
    sl_context *ctx)
{
	(void) user;
	(void) ev;
	(void) key;
	(void) ctx;
	return sl_set_i64(st, "n", sl_state_i64(st, "n", 0) + 1) == SL_OK
	    ? SL_REPLACE
	    : SL_FAIL;
}

static const sl_projection projection = {
	.struct_size        = sizeof(sl_projection),
	.abi_version        = SL_ABI_VERSION,
	.id                 = "8A2F3C1E-5B7D-4E9A-9C11-2D4E6F8A0B13",
	.name               = "dup_account_details",
	.version            = 1,
	.initial_state_json = "{\"n\":0}",
	.selectors          = selectors,
	.n_selectors        = 1,
	.on                 = on_event,
};

static const sl_projection *const projections[] = { &projection };

static const sl_plugin_desc descriptor = {
	.struct_size   = sizeof(sl_plugin_desc),
	.abi_version   = SL_ABI_VERSION,
	.name          = "dup_id",
	.version       = "1.0.0",
	.projections   = projections,
	.n_projections = 1,
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
