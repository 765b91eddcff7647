/*
 * Variants of the Account Details example for the hot reload tests, built
 * from this one source with different settings:
 *   AD_VERSION        the declared definition version (1 = the example's)
 *   AD_UNIT           balance = sum of amount * AD_UNIT (1 = the example's)
 *   AD_PLUGIN_VERSION the plugin's version text
 *   AD_WITH_EVENTS    also an "account_events" projection (money events
 *                     per account: "events" count, "moved" sum of amounts)
 * Same AD_VERSION as the example: same definition hash (code change only).
 */
#include <string.h>

#include <sluice/plugin.h>

#define PROJECTION_ID "8a2f3c1e-5b7d-4e9a-9c11-2d4e6f8a0b13"
#define EVENTS_ID     "5d1e7a90-2c3b-4f6d-8e9a-0b1c2d3e4f50"

static const char initial_state[] = "{\"account_id\":\"\",\"type\":\"\","
                                    "\"customer\":\"\",\"name\":\"\","
                                    "\"balance\":0}";

static const sl_selector selectors[] = {
	{ "DebitAccountOpened", SL_KEY_EVENT_SOURCE, NULL },
	{ "CustomerRegistered", SL_KEY_PROPERTY, "account.id" },
	{ "DebitPerformed", SL_KEY_PARTITION, NULL },
	{ "WithdrawalPerformed", SL_KEY_PROPERTY, "account_id" },
};

static int
is(const char *type, const char *name)
{
	return strcmp(type, name) == 0;
}

static int
copy_str(const sl_event *ev, const char *path, sl_state *st, const char *key)
{
	const char *s = sl_get_str(ev, path);
	return s != NULL ? sl_set_str(st, key, s) : SL_OK;
}

static sl_outcome
on_event(void *user, const sl_event *ev, const char *key, sl_state *st,
    sl_context *ctx)
{
	(void) user;
	const char *type = sl_ev_type(ev);
	const char *cur  = sl_state_str(st, "account_id");
	int         rc   = SL_OK;
	if (cur == NULL || cur[0] == '\0')
		rc = sl_set_str(st, "account_id", key);
	if (rc == SL_OK && is(type, "DebitAccountOpened")) {
		rc = copy_str(ev, "account_id", st, "account_id");
		if (rc == SL_OK)
			rc = sl_set_str(st, "type", "debit");
		if (rc == SL_OK)
			rc = copy_str(ev, "name", st, "name");
	} else if (rc == SL_OK && is(type, "CustomerRegistered")) {
		rc = copy_str(ev, "name", st, "customer");
	} else if (rc == SL_OK) {
		int64_t amount;
		if (sl_get_i64(ev, "amount", &amount) != SL_OK)
			return sl_failf(ctx, "%s at position %llu: no amount",
			    type, (unsigned long long) sl_ev_position(ev));
		amount *= AD_UNIT;
		if (is(type, "WithdrawalPerformed"))
			amount = -amount;
		rc = sl_set_i64(
		    st, "balance", sl_state_i64(st, "balance", 0) + amount);
	}
	if (rc != SL_OK)
		return sl_failf(ctx, "%s: cannot update the state", type);
	return SL_REPLACE;
}

static const sl_projection account_details = {
	.struct_size        = sizeof(sl_projection),
	.abi_version        = SL_ABI_VERSION,
	.id                 = PROJECTION_ID,
	.scope              = NULL,
	.name               = "account_details",
	.version            = AD_VERSION,
	.initial_state_json = initial_state,
	.selectors          = selectors,
	.n_selectors        = sizeof(selectors) / sizeof(selectors[0]),
	.on                 = on_event,
	.user               = NULL,
};

#if AD_WITH_EVENTS
static const sl_selector events_selectors[] = {
	{ "DebitPerformed", SL_KEY_PARTITION, NULL },
	{ "WithdrawalPerformed", SL_KEY_PROPERTY, "account_id" },
};

static sl_outcome
on_money(void *user, const sl_event *ev, const char *key, sl_state *st,
    sl_context *ctx)
{
	(void) user;
	(void) key;
	int64_t amount;
	if (sl_get_i64(ev, "amount", &amount) != SL_OK)
		return sl_failf(ctx, "no amount");
	if (sl_set_i64(st, "events", sl_state_i64(st, "events", 0) + 1)
	        != SL_OK
	    || sl_set_i64(st, "moved", sl_state_i64(st, "moved", 0) + amount)
	        != SL_OK)
		return sl_failf(ctx, "cannot update the state");
	return SL_REPLACE;
}

static const sl_projection account_events = {
	.struct_size        = sizeof(sl_projection),
	.abi_version        = SL_ABI_VERSION,
	.id                 = EVENTS_ID,
	.name               = "account_events",
	.version            = 1,
	.initial_state_json = "{\"events\":0,\"moved\":0}",
	.selectors          = events_selectors,
	.n_selectors        = 2,
	.on                 = on_money,
};

static const sl_projection *const projections[]
    = { &account_details, &account_events };
#else
static const sl_projection *const projections[] = { &account_details };
#endif

static const sl_plugin_desc descriptor = {
	.struct_size   = sizeof(sl_plugin_desc),
	.abi_version   = SL_ABI_VERSION,
	.name          = "account_details",
	.version       = AD_PLUGIN_VERSION,
	.projections   = projections,
	.n_projections = sizeof(projections) / sizeof(projections[0]),
	.fini          = NULL,
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
