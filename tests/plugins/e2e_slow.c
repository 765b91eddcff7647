/*
 * Test plugin for back-pressure: projection "e2e_slow" selects every event
 * ("$any") into one key ("all") and spends about E2E_SLOW_NS (environment
 * of sluiced; default 15000 ns) busy per event, so that the engine's reader
 * outruns it and waits at pending_events_threshold. Every 100,000 counted
 * events it emits a "Tick" {"count": N} to "ticks" (declared: an emitting
 * projection). Its own ticks and '$' streams are not counted.
 * State: {"count": N}.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sluice/plugin.h>

#define TICK_EVERY 100000

static const sl_host_api *host;
static long               slow_ns = 15000;

static const sl_selector selectors[] = {
	{ "$any", SL_KEY_STATIC, "all" },
};

static const char *const emits[] = { "ticks" };

static int64_t
now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static sl_outcome
on_event(void *user, const sl_event *ev, const char *key, sl_state *st,
    sl_context *ctx)
{
	const char *stream = host->event_stream(ev);
	int64_t     n, end;
	char        content[64];
	int         rc;

	(void) user;
	(void) key;
	if (stream[0] == '$' || strcmp(stream, "ticks") == 0)
		return SL_REPLACE; /* state unchanged */
	end = now_ns() + slow_ns;
	while (now_ns() < end)
		;
	n = sl_state_i64(st, "count", 0) + 1;
	if (sl_set_i64(st, "count", n) != SL_OK)
		return sl_failf(ctx, "cannot update the state");
	if (n % TICK_EVERY == 0) {
		snprintf(
		    content, sizeof(content), "{\"count\":%" PRId64 "}", n);
		if ((rc = host->emit(ctx, "ticks", "Tick", content)) != SL_OK)
			return sl_fail_with(
			    ctx, false, 0, "emit to ticks: error %d", rc);
	}
	return SL_REPLACE;
}

static const sl_projection projection = {
	.struct_size        = sizeof(sl_projection),
	.abi_version        = SL_ABI_VERSION,
	.id                 = "e2e0e2e0-0003-4000-8000-000000000003",
	.name               = "e2e_slow",
	.version            = 1,
	.initial_state_json = "{\"count\":0}",
	.selectors          = selectors,
	.n_selectors        = 1,
	.on                 = on_event,
	.emits              = emits,
	.n_emits            = 1,
};

static const sl_projection *const projections[] = { &projection };

static const sl_plugin_desc descriptor = {
	.struct_size   = sizeof(sl_plugin_desc),
	.abi_version   = SL_ABI_VERSION,
	.name          = "e2e_slow",
	.version       = "1.0.0",
	.projections   = projections,
	.n_projections = 1,
};

SL_EXPORT int
sluice_plugin_init(const sl_host_api *h, const sl_plugin_desc **out)
{
	const char *e  = getenv("E2E_SLOW_NS");
	int         rc = sl_bind(h);
	if (rc != SL_OK)
		return rc;
	if (e != NULL && e[0] != '\0')
		slow_ns = strtol(e, NULL, 10);
	host = h;
	*out = &descriptor;
	return SL_OK;
}
