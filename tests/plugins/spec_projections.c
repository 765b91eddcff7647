/*
 * Test plugin (ABI 1.3): the projections of the tests/specs JS files written
 * in C, so that the same spec files run through `sluice spec --plugin` for a
 * .so (tests/CMakeLists.txt). Each keeps its JS twin's name, sources, keys
 * ("root" for one state over its sources, the stream for foreachStream)
 * and state; $any becomes the list of the types the specs commit.
 */
#include <stdio.h>
#include <string.h>

#include <sluice/plugin.h>

static const sl_host_api *H;

#define ROOT(t)                                                               \
	{                                                                     \
		t, SL_KEY_STATIC, "root"                                      \
	}
#define STREAM(t)                                                             \
	{                                                                     \
		t, SL_KEY_EVENT_SOURCE, NULL                                  \
	}

static const sl_source account_cat[]
    = { { SL_SOURCE_CATEGORY, "account", NULL, 0 } };
static const sl_source bank_1[] = { { SL_SOURCE_STREAM, "bank-1", NULL, 0 } };

/* ---- count_all: fromAll, $init, $any ---- */

static const sl_selector count_sel[]
    = { ROOT("AccountOpened"), ROOT("Deposited"), ROOT("Audit") };

static sl_outcome
count_on(void *user, const sl_event *ev, const char *key, sl_state *st,
    sl_context *ctx)
{
	(void) user, (void) ev, (void) key, (void) ctx;
	sl_st_set_i64(st, "count", sl_st_i64(st, "count", 0) + 1);
	return SL_REPLACE;
}

/* ---- account_details: fromCategory('account').foreachStream() ---- */

static const sl_selector details_sel[]
    = { STREAM("AccountOpened"), STREAM("Deposited"), STREAM("Withdrawn") };

static sl_outcome
details_on(void *user, const sl_event *ev, const char *key, sl_state *st,
    sl_context *ctx)
{
	(void) user, (void) key, (void) ctx;
	const char *type   = sl_ev_type(ev);
	int64_t     amount = 0;
	if (strcmp(type, "AccountOpened") == 0) {
		const char *name = sl_ev_str(ev, SL_CONTENT, "name");
		sl_st_set_str(st, "name", name != NULL ? name : "");
		return SL_REPLACE;
	}
	sl_ev_i64(ev, SL_CONTENT, "amount", &amount);
	if (strcmp(type, "Withdrawn") == 0)
		amount = -amount;
	sl_st_set_i64(st, "balance", sl_st_i64(st, "balance", 0) + amount);
	sl_st_set_i64(st, "ops", sl_st_i64(st, "ops", 0) + 1);
	return SL_REPLACE;
}

/* ---- category_total: fromCategory('account'), one state ---- */

static const sl_selector total_sel[] = { ROOT("Deposited") };

static sl_outcome
total_on(void *user, const sl_event *ev, const char *key, sl_state *st,
    sl_context *ctx)
{
	(void) user, (void) key, (void) ctx;
	int64_t amount = 0;
	char    path[SL_PATH_MAX];
	sl_ev_i64(ev, SL_CONTENT, "amount", &amount);
	sl_st_set_i64(st, "total", sl_st_i64(st, "total", 0) + amount);
	if (sl_path_key(path, sizeof(path), "streams", sl_ev_stream(ev))
	    != SL_OK)
		return sl_failf(ctx, "stream id too long");
	sl_st_set_i64(st, path, sl_st_i64(st, path, 0) + 1);
	return SL_REPLACE;
}

/* ---- emit_audit: emit with metadata, per account ---- */

static const sl_selector audit_sel[]   = { STREAM("Deposited") };
static const char *const audit_emits[] = { "audit-*" };

static sl_outcome
audit_on(void *user, const sl_event *ev, const char *key, sl_state *st,
    sl_context *ctx)
{
	(void) user;
	int64_t amount = 0;
	char    stream[600], body[64], meta[600];
	sl_ev_i64(ev, SL_CONTENT, "amount", &amount);
	snprintf(stream, sizeof(stream), "audit-%s", key);
	snprintf(body, sizeof(body), "{\"amount\":%lld}", (long long) amount);
	snprintf(meta, sizeof(meta), "{\"source\":\"%s\"}", key);
	int rc = H->emit_meta(ctx, stream, "Seen", body, meta);
	if (rc != SL_OK)
		return sl_failf(ctx, "emit to %s: error %d", stream, rc);
	sl_st_set_i64(st, "n", sl_st_i64(st, "n", 0) + 1);
	return SL_REPLACE;
}

/* ---- link_big: linkTo ---- */

static const sl_selector big_sel[]   = { ROOT("Deposited") };
static const char *const big_emits[] = { "big-deposits" };

static sl_outcome
big_on(void *user, const sl_event *ev, const char *key, sl_state *st,
    sl_context *ctx)
{
	(void) user, (void) key;
	int64_t amount = 0;
	sl_ev_i64(ev, SL_CONTENT, "amount", &amount);
	if (amount >= 90) {
		int rc = H->link_to(ctx, "big-deposits", ev);
		if (rc != SL_OK)
			return sl_failf(ctx, "link_to: error %d", rc);
	}
	sl_st_set_i64(st, "seen", sl_st_i64(st, "seen", 0) + 1);
	return SL_REPLACE;
}

/* ---- output_state: the state is the result ---- */

static const sl_selector out_sel[] = { ROOT("Audit") };

static sl_outcome
out_on(void *user, const sl_event *ev, const char *key, sl_state *st,
    sl_context *ctx)
{
	(void) user, (void) key, (void) ctx;
	const char *note = sl_ev_str(ev, SL_CONTENT, "note");
	sl_st_set_i64(st, "n", sl_st_i64(st, "n", 0) + 1);
	sl_st_set_str(st, "last", note != NULL ? note : "");
	return SL_REPLACE;
}

static sl_outcome
out_result(void *user, const char *key, const sl_state *st, sl_state *res)
{
	(void) user, (void) key;
	return sl_st_set_json(res, "", sl_st_json(st, "")) == SL_OK
	    ? SL_REPLACE
	    : SL_DELETE;
}

#define PROJ(var, uuid, nm, init, sel, fn)                                    \
	.struct_size = sizeof(sl_projection), .abi_version = SL_ABI_VERSION,  \
	.id = uuid, .name = nm, .version = 1, .initial_state_json = init,     \
	.selectors = sel, .n_selectors = sizeof(sel) / sizeof(sel[0]),        \
	.on = fn

static const sl_projection count_all = {
	PROJ(count_all, "5bd1c6f0-0001-4c1e-9a1e-5e7a1c000001", "count_all",
	    "{\"count\":0}", count_sel, count_on),
};
static const sl_projection account_details = {
	PROJ(account_details, "5bd1c6f0-0002-4c1e-9a1e-5e7a1c000002",
	    "account_details", "{\"balance\":0,\"ops\":0}", details_sel,
	    details_on),
	.sources   = account_cat,
	.n_sources = 1,
};
static const sl_projection category_total = {
	PROJ(category_total, "5bd1c6f0-0003-4c1e-9a1e-5e7a1c000003",
	    "category_total", "{\"total\":0,\"streams\":{}}", total_sel,
	    total_on),
	.sources   = account_cat,
	.n_sources = 1,
};
static const sl_projection emit_audit = {
	PROJ(emit_audit, "5bd1c6f0-0004-4c1e-9a1e-5e7a1c000004", "emit_audit",
	    "{}", audit_sel, audit_on),
	.emits     = audit_emits,
	.n_emits   = 1,
	.sources   = account_cat,
	.n_sources = 1,
};
static const sl_projection link_big = {
	PROJ(link_big, "5bd1c6f0-0005-4c1e-9a1e-5e7a1c000005", "link_big",
	    "{}", big_sel, big_on),
	.emits     = big_emits,
	.n_emits   = 1,
	.sources   = account_cat,
	.n_sources = 1,
};
static const sl_projection output_state = {
	PROJ(output_state, "5bd1c6f0-0006-4c1e-9a1e-5e7a1c000006",
	    "output_state", "{\"n\":0}", out_sel, out_on),
	.result    = out_result,
	.sources   = bank_1,
	.n_sources = 1,
};

static const sl_projection *const projections[]
    = { &count_all, &account_details, &category_total, &emit_audit, &link_big,
	      &output_state };

static const sl_plugin_desc descriptor = {
	.struct_size   = sizeof(sl_plugin_desc),
	.abi_version   = SL_ABI_VERSION,
	.name          = "spec_projections",
	.version       = "1.0.0",
	.projections   = projections,
	.n_projections = sizeof(projections) / sizeof(projections[0]),
};

SL_EXPORT int
sluice_plugin_init(const sl_host_api *host, const sl_plugin_desc **out)
{
	int rc = sl_bind(host);
	if (rc != SL_OK)
		return rc;
	if (host->struct_size < sizeof(sl_host_api))
		return SL_EVERSION;
	H    = host;
	*out = &descriptor;
	return SL_OK;
}
