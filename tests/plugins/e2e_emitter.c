/*
 * Test plugin for the end-to-end tests of emitting projections (ABI 1.2):
 * projection "e2e_emitter" handles AccountOpened and Deposited per account
 * stream; for each it writes one "Ledger" event {"source": position,
 * "stream": S, "revision": R, "type": T} to "ledger-<S>" (S the source
 * stream) and links the source event into "ledger-all". It declares
 * "ledger-*", so it owns those streams. State: {"count": events handled}.
 * Result transform: {"count": N, "account": key}, which changes with every
 * handled event, so "$projections-e2e_emitter-<stream>-result" gets one
 * "Result" per source event too. An event whose content has "fail_times":
 * N fails while the retry attempt is below N, not retried when "hard" is
 * true (tests/emit_failing_kill_test.c).
 *
 * e2e_conflict.c builds the same code as another projection (E2E_ID,
 * E2E_NAME) that declares the same streams.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <sluice/plugin.h>

#ifndef E2E_ID
#define E2E_ID   "e2e0e2e0-0001-4000-8000-000000000001"
#define E2E_NAME "e2e_emitter"
#endif

static const sl_host_api *host;

static const sl_selector selectors[] = {
	{ "AccountOpened", SL_KEY_EVENT_SOURCE, NULL },
	{ "Deposited", SL_KEY_EVENT_SOURCE, NULL },
};

static const char *const emits[] = { "ledger-*" };

/* The host's code as text (a plugin cannot call sl_errname). */
static const char *
code_name(int rc)
{
	return rc == SL_EOWNED ? "EOWNED"
	    : rc == SL_EINVAL  ? "EINVAL"
	    : rc == SL_ETOOBIG ? "ETOOBIG"
	                       : "error";
}

static sl_outcome
on_event(void *user, const sl_event *ev, const char *key, sl_state *st,
    sl_context *ctx)
{
	char    stream[600], content[1024];
	int64_t n;
	int     rc;

	(void) user;
	int64_t ft   = 0;
	bool    hard = false;
	if (host->content_i64(ev, "fail_times", &ft) == SL_OK
	    && (int64_t) host->retry_attempt(ctx) < ft) {
		(void) host->content_bool(ev, "hard", &hard);
		return sl_fail_with(
		    ctx, !hard, 0, "refused: fail_times %" PRId64, ft);
	}
	snprintf(stream, sizeof(stream), "ledger-%s", key);
	snprintf(content, sizeof(content),
	    "{\"source\":%" PRIu64 ",\"stream\":\"%s\",\"revision\":%" PRIu64
	    ",\"type\":\"%s\"}",
	    host->event_position(ev), host->event_stream(ev),
	    host->event_revision(ev), host->event_type(ev));
	if ((rc = host->emit(ctx, stream, "Ledger", content)) != SL_OK)
		return sl_fail_with(ctx, false, 0, "emit to %s: %s (%d)",
		    stream, code_name(rc), rc);
	if ((rc = host->link_to(ctx, "ledger-all", ev)) != SL_OK)
		return sl_fail_with(ctx, false, 0,
		    "link to ledger-all: %s (%d)", code_name(rc), rc);
	n = sl_state_i64(st, "count", 0);
	if (sl_set_i64(st, "count", n + 1) != SL_OK)
		return sl_failf(ctx, "cannot update the state");
	return SL_REPLACE;
}

static sl_outcome
result_of(void *user, const char *key, const sl_state *st, sl_state *res)
{
	int64_t n = 0;

	(void) user;
	(void) host->state_i64(st, "count", &n);
	if (host->state_set_i64(res, "count", n) != SL_OK
	    || host->state_set_str(res, "account", key) != SL_OK)
		return SL_FAIL;
	return SL_REPLACE;
}

static const sl_projection projection = {
	.struct_size        = sizeof(sl_projection),
	.abi_version        = SL_ABI_VERSION,
	.id                 = E2E_ID,
	.name               = E2E_NAME,
	.version            = 1,
	.initial_state_json = "{\"count\":0}",
	.selectors          = selectors,
	.n_selectors        = sizeof(selectors) / sizeof(selectors[0]),
	.on                 = on_event,
	.emits              = emits,
	.n_emits            = 1,
	.result             = result_of,
};

static const sl_projection *const projections[] = { &projection };

static const sl_plugin_desc descriptor = {
	.struct_size   = sizeof(sl_plugin_desc),
	.abi_version   = SL_ABI_VERSION,
	.name          = E2E_NAME,
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
