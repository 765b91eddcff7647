/*
 * Negative ABI 1.2 plugins for tests/emitter_test.c, one build per case
 * (EMIT_BAD): 1 declares "counts-x*", which overlaps emit_counter's
 * "counts-*" (refused with SL_EEXIST when loaded beside it); 2 declares
 * "$ce-x" (the '$' namespace); 3 "a*b" ('*' not last); 4 an empty name.
 */
#include <sluice/plugin.h>

#ifndef EMIT_BAD
#define EMIT_BAD 1
#endif

static const sl_selector selectors[] = {
	{ "Deposited", SL_KEY_EVENT_SOURCE, NULL },
};

#if EMIT_BAD == 1
static const char *const emits[] = { "other", "counts-x*" };
#elif EMIT_BAD == 2
static const char *const emits[] = { "$ce-x" };
#elif EMIT_BAD == 3
static const char *const emits[] = { "a*b" };
#else
static const char *const emits[] = { "" };
#endif

static sl_outcome
on_event(void *user, const sl_event *ev, const char *key, sl_state *st,
    sl_context *ctx)
{
	(void) user;
	(void) ev;
	(void) key;
	(void) st;
	(void) ctx;
	return SL_REPLACE;
}

static const sl_projection projection = {
	.struct_size        = sizeof(sl_projection),
	.abi_version        = SL_ABI_VERSION,
	.id                 = "e0000000-0000-4000-8000-000000000003",
	.name               = "emit_bad",
	.version            = 1,
	.initial_state_json = "{}",
	.selectors          = selectors,
	.n_selectors        = 1,
	.on                 = on_event,
	.emits              = emits,
	.n_emits            = sizeof(emits) / sizeof(emits[0]),
};

static const sl_projection *const projections[] = { &projection };

static const sl_plugin_desc descriptor = {
	.struct_size   = sizeof(sl_plugin_desc),
	.abi_version   = SL_ABI_VERSION,
	.name          = "emit_bad",
	.version       = "1.0.0",
	.projections   = projections,
	.n_projections = 1,
};

SL_EXPORT int
sluice_plugin_init(const sl_host_api *h, const sl_plugin_desc **out)
{
	int rc = sl_bind(h);
	if (rc != SL_OK)
		return rc;
	*out = &descriptor;
	return SL_OK;
}
