/*
 * Account Details: the example projection of Dolittle's projections overview,
 * and the file a plugin author copies to start. It folds account events into
 * one read model per account, keyed so that each kind of key selector finds
 * the account: the stream id, the partition, or a property of the content.
 *
 * Plugin rules shown here: include <sluice/plugin.h> (and libc); make every
 * function static except sluice_plugin_init (SL_EXPORT); talk to the host
 * only through the table it passes in (the sl_* helpers wrap it); never free
 * what the host hands you; keep the descriptor alive until unload.
 */
#include <string.h>

#include <sluice/plugin.h>

/* Bump VERSION when the fold changes meaning: the runtime then drops the
 * read models and rebuilds them from the start of the log. */
#define PROJECTION_ID "8a2f3c1e-5b7d-4e9a-9c11-2d4e6f8a0b13"
#define VERSION       1

/* A read model starts from this state when its key has none yet. */
static const char initial_state[] = "{\"account_id\":\"\",\"type\":\"\","
                                    "\"customer\":\"\",\"name\":\"\","
                                    "\"balance\":0}";

/*
 * Which events this projection reads, and how each finds its account:
 *  - DebitAccountOpened is written to the account's own stream, so the
 *    event source id (stream id) is the key;
 *  - CustomerRegistered lives in the customer's stream and names the
 *    account in its content at account.id;
 *  - DebitPerformed is in the account stream; the log's partition is the
 *    stream id, so the partition selector finds the account too;
 *  - WithdrawalPerformed carries the account id as a property.
 */
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

/* Read the integer "amount" of a money event, or explain why not. */
static int
read_amount(const sl_event *ev, sl_context *ctx, int64_t *amount)
{
	int rc = sl_get_i64(ev, "amount", amount);
	if (rc == SL_OK)
		return SL_OK;
	/* A failure names the event, so an operator can find it in the log. */
	sl_failf(ctx, "%s at position %llu: %s", sl_ev_type(ev),
	    (unsigned long long) sl_ev_position(ev),
	    rc == SL_ENOTFOUND ? "content has no 'amount'"
	                       : "'amount' is not an integer");
	return rc;
}

/* Copy a content string into the state when the event has it. */
static int
copy_str(const sl_event *ev, const char *path, sl_state *st, const char *key)
{
	const char *s = sl_get_str(ev, path);
	return s != NULL ? sl_set_str(st, key, s) : SL_OK;
}

/*
 * The fold. The host passes the key's current state (or the initial state);
 * the handler edits it and returns SL_REPLACE to store it, or reports a
 * failure (the host retries it later with ctx's retry state).
 */
static sl_outcome
on_event(void *user, const sl_event *ev, const char *key, sl_state *st,
    sl_context *ctx)
{
	(void) user;
	const char *type = sl_ev_type(ev);
	const char *cur  = sl_state_str(st, "account_id");
	int         rc   = SL_OK;

	/* Every event for this key belongs to account <key>, whichever event
	 * arrives first. */
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
	} else if (rc == SL_OK
	    && (is(type, "DebitPerformed")
	        || is(type, "WithdrawalPerformed"))) {
		int64_t amount, balance = sl_state_i64(st, "balance", 0);
		if (read_amount(ev, ctx, &amount) != SL_OK)
			return SL_FAIL;
		if (is(type, "WithdrawalPerformed")
		        ? __builtin_sub_overflow(balance, amount, &balance)
		        : __builtin_add_overflow(balance, amount, &balance))
			return sl_failf(ctx,
			    "%s at position %llu: balance overflows", type,
			    (unsigned long long) sl_ev_position(ev));
		rc = sl_set_i64(st, "balance", balance);
	}
	if (rc != SL_OK)
		return sl_failf(
		    ctx, "%s: cannot update the state (error %d)", type, rc);
	return SL_REPLACE;
}

static const sl_projection account_details = {
	.struct_size        = sizeof(sl_projection),
	.abi_version        = SL_ABI_VERSION,
	.id                 = PROJECTION_ID,
	.scope              = NULL, /* the default, all-zero scope */
	.name               = "account_details",
	.version            = VERSION,
	.initial_state_json = initial_state,
	.selectors          = selectors,
	.n_selectors        = sizeof(selectors) / sizeof(selectors[0]),
	.on                 = on_event,
	.user               = NULL,
};

static const sl_projection *const projections[] = { &account_details };

static const sl_plugin_desc descriptor = {
	.struct_size   = sizeof(sl_plugin_desc),
	.abi_version   = SL_ABI_VERSION,
	.name          = "account_details",
	.version       = "1.0.0",
	.projections   = projections,
	.n_projections = 1,
	.fini          = NULL, /* nothing to release */
};

/* The one exported symbol. Bind the host first: the helpers need it. */
SL_EXPORT int
sluice_plugin_init(const sl_host_api *host, const sl_plugin_desc **out)
{
	int rc = sl_bind(host);
	if (rc != SL_OK)
		return rc;
	*out = &descriptor;
	return SL_OK;
}
