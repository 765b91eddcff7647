/*
 * Test plugin for the emitting projection engine (tests/emitter_test.c):
 * projection "emit_counter" counts "Deposited" events per account (key =
 * stream id, state {"count":N}), links every event into "all-accounts",
 * emits a "Counted" event {"key","count"} to "counts-<key>" on every 3rd
 * event of a key, and has a result transform {"fives": count / 5} that
 * changes only on every 5th event. An event whose content has "to" emits
 * a "Counted" event to that stream instead (undeclared streams fail).
 * An event whose content has "fail_times": N fails while the retry attempt
 * is below N ("refused: fail_times"), retried after "retry_after_ms" (the
 * host's delay when absent), not retried when "hard" is true.
 * "Moved" events are counted under their content's "account" (the
 * tests commit them without one: an event whose key cannot be found).
 * Built twice: EMIT_COUNTER_VERSION 2 is the same code with another
 * declared version (a changed definition: reset and rebuild).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <sluice/plugin.h>

#ifndef EMIT_COUNTER_VERSION
#define EMIT_COUNTER_VERSION 1
#endif

static const sl_host_api *host;

static const sl_selector selectors[] = {
	{ "Deposited", SL_KEY_EVENT_SOURCE, NULL },
	{ "Moved", SL_KEY_PROPERTY, "account" },
};

static const char *const emits[] = { "counts-*", "all-accounts" };

static sl_outcome
on_event(void *user, const sl_event *ev, const char *key, sl_state *st,
    sl_context *ctx)
{
	(void) user;
	int64_t n = 0, fail_times = 0, after = 0;
	bool    hard = false;
	if (host->content_i64(ev, "fail_times", &fail_times) == SL_OK
	    && (int64_t) host->retry_attempt(ctx) < fail_times) {
		(void) host->content_i64(ev, "retry_after_ms", &after);
		(void) host->content_bool(ev, "hard", &hard);
		return host->fail_with(ctx, "refused: fail_times", !hard,
		    after > 0 ? (uint32_t) after : 0);
	}
	(void) host->state_i64(st, "count", &n);
	n++;
	if (host->state_set_i64(st, "count", n) != SL_OK)
		return host->fail(ctx, "cannot update the state");
	if (host->link_to(ctx, "all-accounts", ev) != SL_OK)
		return SL_FAIL; /* the host said why */
	const char *to = NULL;
	char        stream[300], body[400];
	if (host->content_str(ev, "to", &to) == SL_OK || n % 3 == 0) {
		if (to == NULL) {
			snprintf(stream, sizeof(stream), "counts-%s", key);
			to = stream;
		}
		snprintf(body, sizeof(body), "{\"key\":\"%s\",\"count\":%lld}",
		    key, (long long) n);
		if (host->emit(ctx, to, "Counted", body) != SL_OK)
			return SL_FAIL;
	}
	return SL_REPLACE;
}

static sl_outcome
result(void *user, const char *key, const sl_state *st, sl_state *res)
{
	(void) user;
	(void) key;
	int64_t n = 0;
	(void) host->state_i64(st, "count", &n);
	host->state_set_i64(res, "fives", n / 5);
	return SL_REPLACE;
}

static const sl_projection projection = {
	.struct_size        = sizeof(sl_projection),
	.abi_version        = SL_ABI_VERSION,
	.id                 = "e0000000-0000-4000-8000-000000000001",
	.name               = "emit_counter",
	.version            = EMIT_COUNTER_VERSION,
	.initial_state_json = "{\"count\":0}",
	.selectors          = selectors,
	.n_selectors        = 2,
	.on                 = on_event,
	.emits              = emits,
	.n_emits            = 2,
	.result             = result,
};

static const sl_projection *const projections[] = { &projection };

static const sl_plugin_desc descriptor = {
	.struct_size   = sizeof(sl_plugin_desc),
	.abi_version   = SL_ABI_VERSION,
	.name          = "emit_counter",
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
