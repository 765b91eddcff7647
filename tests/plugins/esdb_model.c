/*
 * Test plugin (ABI 1.3): EventStoreDB's handler model in C. esdb_model
 * (key: the stream) completes a new key's state in created() ($init per
 * partition), keeps a balance, emits "Seen" to audit-<key> with metadata,
 * links each opened account's stream into account-index (linkStreamTo),
 * and deletes the state on Closed; its result transform gives the balance,
 * so the host writes Result and, after the delete, ResultRemoved.
 * esdb_total (one static key) has one root result stream. esdb_shared (a
 * read-model projection) numbers the events it sees in its shared state
 * ($initShared) and keeps each key's last number; a "Boom" event adds to
 * the shared count and then fails for good, so its change must vanish.
 * esdb_model numbers its keys in its shared state too (created()).
 */
#include <stdio.h>
#include <string.h>

#include <sluice/plugin.h>

static const sl_host_api *H;

static const sl_selector by_stream[] = {
	{ "Opened", SL_KEY_EVENT_SOURCE, NULL },
	{ "Deposited", SL_KEY_EVENT_SOURCE, NULL },
	{ "Closed", SL_KEY_EVENT_SOURCE, NULL },
};
static const sl_selector total_sel[] = {
	{ "Deposited", SL_KEY_STATIC, "total" },
};
static const char *const emits[] = { "audit-*", "account-index" };

static sl_outcome
created(void *user, const sl_event *ev, const char *key, sl_state *st,
    sl_context *ctx)
{
	(void) user;
	(void) key;
	sl_state *sh = H->shared_state(ctx);
	int64_t   no = sl_st_i64(sh, "keys", 0) + 1;
	sl_st_set_i64(sh, "keys", no);
	sl_st_set_i64(st, "key_no", no);
	sl_st_set_i64(st, "created", sl_st_i64(st, "created", 0) + 1);
	sl_st_set_str(st, "first_type", H->event_type(ev));
	return SL_REPLACE;
}

static sl_outcome
on(void *user, const sl_event *ev, const char *key, sl_state *st,
    sl_context *ctx)
{
	(void) user;
	const char *type = H->event_type(ev);
	char        stream[300], meta[400];
	if (strcmp(type, "Closed") == 0)
		return SL_DELETE;
	if (strcmp(type, "Opened") == 0) {
		if (H->link_stream_to(ctx, "account-index", key) != SL_OK)
			return SL_FAIL;
		return SL_REPLACE;
	}
	int64_t amount = 0;
	sl_ev_i64(ev, SL_CONTENT, "amount", &amount);
	sl_st_set_i64(st, "balance", sl_st_i64(st, "balance", 0) + amount);
	snprintf(stream, sizeof(stream), "audit-%s", key);
	snprintf(meta, sizeof(meta), "{\"source\":\"%s\",\"n\":%lld}", key,
	    (long long) amount);
	if (H->emit_meta(ctx, stream, "Seen", "{}", meta) != SL_OK)
		return SL_FAIL;
	return SL_REPLACE;
}

/* A deleted account: its state says so (esdb_model); esdb_shared drops
 * the key's read model. */
static sl_outcome
deleted(void *user, const char *stream, const char *key, sl_state *st,
    sl_context *ctx)
{
	(void) user;
	(void) ctx;
	if (strcmp(stream, key) != 0)
		return SL_FAIL;
	sl_st_set_bool(st, "deleted", true);
	return SL_REPLACE;
}

static sl_outcome
deleted_drop(void *user, const char *stream, const char *key, sl_state *st,
    sl_context *ctx)
{
	(void) user;
	(void) stream;
	(void) key;
	(void) st;
	(void) ctx;
	return SL_DELETE;
}

static sl_outcome
result(void *user, const char *key, const sl_state *st, sl_state *res)
{
	(void) user;
	(void) key;
	if (sl_st_kind(st, "balance") == SL_KIND_NONE)
		return SL_DELETE;
	sl_st_set_i64(res, "balance", sl_st_i64(st, "balance", 0));
	return SL_REPLACE;
}

static sl_outcome
on_total(void *user, const sl_event *ev, const char *key, sl_state *st,
    sl_context *ctx)
{
	(void) user;
	(void) key;
	(void) ctx;
	int64_t amount = 0;
	sl_ev_i64(ev, SL_CONTENT, "amount", &amount);
	sl_st_set_i64(st, "sum", sl_st_i64(st, "sum", 0) + amount);
	return SL_REPLACE;
}

static sl_outcome
result_total(void *user, const char *key, const sl_state *st, sl_state *res)
{
	(void) user;
	(void) key;
	sl_st_set_i64(res, "sum", sl_st_i64(st, "sum", 0));
	return SL_REPLACE;
}

static const sl_projection model = {
	.struct_size        = sizeof(sl_projection),
	.abi_version        = SL_ABI_VERSION,
	.id                 = "e5db0000-0000-4000-8000-000000000001",
	.name               = "esdb_model",
	.version            = 1,
	.initial_state_json = "{}",
	.selectors          = by_stream,
	.n_selectors        = 3,
	.on                 = on,
	.emits              = emits,
	.n_emits            = 2,
	.result             = result,
	.created            = created,
	.shared_initial_state_json = "{\"keys\":0}",
	.deleted            = deleted,
};

static const sl_selector shared_sel[] = {
	{ "$any", SL_KEY_EVENT_SOURCE, NULL },
};

static sl_outcome
on_shared(void *user, const sl_event *ev, const char *key, sl_state *st,
    sl_context *ctx)
{
	(void) user;
	(void) key;
	sl_state *sh = H->shared_state(ctx);
	int64_t   n  = sl_st_i64(sh, "seen", 0) + 1;
	if (sh == NULL || sl_st_set_i64(sh, "seen", n) != SL_OK)
		return SL_FAIL;
	if (strcmp(H->event_type(ev), "Boom") == 0)
		return H->fail_with(ctx, "boom", false, 0);
	sl_st_set_i64(st, "n", n);
	return SL_REPLACE;
}

static const sl_projection shared = {
	.struct_size        = sizeof(sl_projection),
	.abi_version        = SL_ABI_VERSION,
	.id                 = "e5db0000-0000-4000-8000-000000000003",
	.name               = "esdb_shared",
	.version            = 1,
	.initial_state_json = "{}",
	.selectors          = shared_sel,
	.n_selectors        = 1,
	.on                 = on_shared,
	.shared_initial_state_json = "{\"seen\":0}",
	.deleted            = deleted_drop,
};

static const sl_projection total = {
	.struct_size        = sizeof(sl_projection),
	.abi_version        = SL_ABI_VERSION,
	.id                 = "e5db0000-0000-4000-8000-000000000002",
	.name               = "esdb_total",
	.version            = 1,
	.initial_state_json = "{}",
	.selectors          = total_sel,
	.n_selectors        = 1,
	.on                 = on_total,
	.result             = result_total,
};

/* partitionBy in C (sl_projection.key): "Keyed" events go to the key
 * "owner-<owner>"; an event without an owner is skipped, owner "bad" has
 * no key (the event fails with the function's reason). */
static const sl_selector keyed_sel[] = {
	{ "Keyed", SL_KEY_EVENT_SOURCE, NULL },
};

static int
key_owner(void *user, const sl_event *ev, char *buf, size_t len)
{
	(void) user;
	const char *owner = sl_ev_str(ev, SL_CONTENT, "owner");
	if (owner == NULL)
		return SL_ENOTFOUND;
	if (strcmp(owner, "bad") == 0) {
		snprintf(buf, len, "owner bad in %s", H->event_stream(ev));
		return SL_EINVAL;
	}
	snprintf(buf, len, "owner-%s", owner);
	return SL_OK;
}

static sl_outcome
on_keyed(void *user, const sl_event *ev, const char *key, sl_state *st,
    sl_context *ctx)
{
	(void) user;
	(void) ev;
	(void) ctx;
	sl_st_set_i64(st, "n", sl_st_i64(st, "n", 0) + 1);
	sl_st_set_str(st, "key", key);
	return SL_REPLACE;
}

static const sl_projection keyed = {
	.struct_size        = sizeof(sl_projection),
	.abi_version        = SL_ABI_VERSION,
	.id                 = "e5db0000-0000-4000-8000-000000000004",
	.name               = "esdb_keyed",
	.version            = 1,
	.initial_state_json = "{}",
	.selectors          = keyed_sel,
	.n_selectors        = 1,
	.on                 = on_keyed,
	.key                = key_owner,
};

/* outputTo in C (sl_projection.result_stream, partition_result_stream)
 * and a result transform with a reason (result_reason): per stream the
 * number of "Named" events, its results in "named-<key>-out"; acc-2's
 * transform fails with a reason. */
static const sl_selector named_sel[] = {
	{ "Named", SL_KEY_EVENT_SOURCE, NULL },
};

static sl_outcome
on_named(void *user, const sl_event *ev, const char *key, sl_state *st,
    sl_context *ctx)
{
	(void) user;
	(void) ev;
	(void) key;
	(void) ctx;
	sl_st_set_i64(st, "n", sl_st_i64(st, "n", 0) + 1);
	return SL_REPLACE;
}

static sl_outcome
result_named_why(void *user, const char *key, const sl_state *st,
    sl_state *res, char *why, size_t whylen)
{
	(void) user;
	if (sl_st_kind(st, "n") == SL_KIND_NONE)
		return SL_DELETE;
	if (strcmp(key, "acc-2") == 0) {
		snprintf(why, whylen, "no result for %s", key);
		return SL_FAIL;
	}
	sl_st_set_i64(res, "count", sl_st_i64(st, "n", 0));
	return SL_REPLACE;
}

/* for a host without result_reason */
static sl_outcome
result_named(void *user, const char *key, const sl_state *st, sl_state *res)
{
	char why[128];
	return result_named_why(user, key, st, res, why, sizeof(why));
}

static const sl_projection named = {
	.struct_size             = sizeof(sl_projection),
	.abi_version             = SL_ABI_VERSION,
	.id                      = "e5db0000-0000-4000-8000-000000000005",
	.name                    = "esdb_named",
	.version                 = 1,
	.initial_state_json      = "{}",
	.selectors               = named_sel,
	.n_selectors             = 1,
	.on                      = on_named,
	.result                  = result_named,
	.result_stream           = "named-all",
	.partition_result_stream = "named-{0}-out",
	.result_reason           = result_named_why,
};

static const sl_projection *const projections[]
    = { &model, &total, &shared, &keyed, &named };

static const sl_plugin_desc desc = {
	.struct_size   = sizeof(sl_plugin_desc),
	.abi_version   = SL_ABI_VERSION,
	.name          = "esdb_model",
	.version       = "1.0.0",
	.projections   = projections,
	.n_projections = 5,
};

SL_EXPORT int
sluice_plugin_init(const sl_host_api *host, const sl_plugin_desc **out)
{
	if (sl_bind(host) != SL_OK || host->struct_size < sizeof(sl_host_api))
		return SL_EVERSION;
	H    = host;
	*out = &desc;
	return SL_OK;
}
