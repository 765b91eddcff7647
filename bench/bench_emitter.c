/*
 * The emitting plugin projection of bench_emit (docs/projections.md, ABI
 * 1.2): "bench_emitter" handles the four Account Details event types per
 * stream, links every one into "bench-all" and, for one event in ten (log
 * position % 10 == 0), emits a "Summary" event to "bench-summary". It
 * declares both streams, so it owns them. State: {"count": events handled}.
 * Links and emitted events are not selected (types "$>", "Summary"), so it
 * never handles what it wrote.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>

#include <sluice/plugin.h>

static const sl_host_api *host;

static const sl_selector selectors[] = {
	{ "DebitAccountOpened", SL_KEY_EVENT_SOURCE, NULL },
	{ "CustomerRegistered", SL_KEY_EVENT_SOURCE, NULL },
	{ "DebitPerformed", SL_KEY_EVENT_SOURCE, NULL },
	{ "WithdrawalPerformed", SL_KEY_EVENT_SOURCE, NULL },
};

static const char *const emits[] = { "bench-all", "bench-summary" };

static sl_outcome
on_event(void *user, const sl_event *ev, const char *key, sl_state *st,
    sl_context *ctx)
{
	char     content[256];
	uint64_t pos = host->event_position(ev);
	int64_t  n;
	int      rc;

	(void) user;
	if ((rc = host->link_to(ctx, "bench-all", ev)) != SL_OK)
		return sl_fail_with(
		    ctx, false, 0, "link to bench-all: %d", rc);
	n = sl_state_i64(st, "count", 0) + 1;
	if (pos % 10 == 0) {
		snprintf(content, sizeof(content),
		    "{\"source\":%" PRIu64
		    ",\"stream\":\"%s\",\"count\":%" PRId64 "}",
		    pos, key, n);
		rc = host->emit(ctx, "bench-summary", "Summary", content);
		if (rc != SL_OK)
			return sl_fail_with(
			    ctx, false, 0, "emit to bench-summary: %d", rc);
	}
	if (sl_set_i64(st, "count", n) != SL_OK)
		return sl_failf(ctx, "cannot update the state");
	return SL_REPLACE;
}

static const sl_projection projection = {
	.struct_size        = sizeof(sl_projection),
	.abi_version        = SL_ABI_VERSION,
	.id                 = "be0cbe0c-0008-4000-8000-000000000008",
	.name               = "bench_emitter",
	.version            = 1,
	.initial_state_json = "{\"count\":0}",
	.selectors          = selectors,
	.n_selectors        = sizeof(selectors) / sizeof(selectors[0]),
	.on                 = on_event,
	.emits              = emits,
	.n_emits            = sizeof(emits) / sizeof(emits[0]),
};

static const sl_projection *const projections[] = { &projection };

static const sl_plugin_desc descriptor = {
	.struct_size   = sizeof(sl_plugin_desc),
	.abi_version   = SL_ABI_VERSION,
	.name          = "bench_emitter",
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
	host = h;
	*out = &descriptor;
	return SL_OK;
}
