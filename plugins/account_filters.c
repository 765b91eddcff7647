/*
 * Account filters: the example filters (ABI 1.1) beside the Account Details
 * projection. A filter reads every event of a tenant and builds a stream: an
 * index of the positions of the events it includes, per partition.
 *
 *   "customer events"          partitioned
 *       id a468a0ac-3f00-4a28-ac0e-e4a0e8400cb3, version 1
 *   "public account openings"  public
 *       id 76b549ab-de36-4185-8ed1-2a92ed32b7b0, version 1
 *
 * "customer events" includes the four Account Details event types
 * (CustomerRegistered, DebitAccountOpened, DebitPerformed,
 * WithdrawalPerformed), partitioned by the customer id in the content at
 * "customer_id". An event of those types without one is a failure that no
 * retry can mend (events never change), so it is reported with retry=false:
 * its source stream waits for an operator (`sluice retry` after a fixed
 * plugin, or `reset`) while the other streams go on.
 *
 * "public account openings" sees only events committed as public and
 * includes the DebitAccountOpened ones, partitioned by the account id:
 * content "account_id", or the stream id (an account's own stream) when the
 * content has none.
 *
 * Same plugin rules as account_details.c: every function static except
 * sluice_plugin_init, the host only through its table (the sl_* helpers),
 * never free what the host hands you. Bump a filter's version when what it
 * includes changes: the runtime then rebuilds its stream from position 0.
 */
#include <string.h>

#include <sluice/plugin.h>

#define CUSTOMER_EVENTS_ID "a468a0ac-3f00-4a28-ac0e-e4a0e8400cb3"
#define PUBLIC_OPENINGS_ID "76b549ab-de36-4185-8ed1-2a92ed32b7b0"
#define VERSION            1

/* The partition id a filter hands back is 1..255 bytes. */
#define PARTITION_MAX 255

static int
is(const char *type, const char *name)
{
	return strcmp(type, name) == 0;
}

static int
account_event(const char *type)
{
	return is(type, "CustomerRegistered") || is(type, "DebitAccountOpened")
	    || is(type, "DebitPerformed") || is(type, "WithdrawalPerformed");
}

/* Include the account events under their customer's id. */
static sl_verdict
customer_events(
    void *user, const sl_event *ev, const char **partition, sl_context *ctx)
{
	(void) user;
	const char *type = sl_ev_type(ev);
	if (!account_event(type))
		return SL_EXCLUDED;
	const char *customer = NULL;
	int         rc = sl_host()->content_str(ev, "customer_id", &customer);
	/* A failure names the event, so an operator can find it in the log;
	 * retry=false: the same event would fail the same way again. */
	if (rc != SL_OK)
		return (sl_verdict) sl_fail_with(ctx, false, 0,
		    "%s at position %llu: %s", type,
		    (unsigned long long) sl_ev_position(ev),
		    rc == SL_ENOTFOUND ? "content has no 'customer_id'"
		                       : "'customer_id' is not a string");
	size_t len = strlen(customer);
	if (len == 0 || len > PARTITION_MAX)
		return (sl_verdict) sl_fail_with(ctx, false, 0,
		    "%s at position %llu: 'customer_id' is %s", type,
		    (unsigned long long) sl_ev_position(ev),
		    len == 0 ? "empty" : "longer than 255 bytes");
	*partition = customer;
	return SL_INCLUDED;
}

/* Include the (public) account openings under their account's id. */
static sl_verdict
public_openings(
    void *user, const sl_event *ev, const char **partition, sl_context *ctx)
{
	(void) user;
	const char *type = sl_ev_type(ev);
	if (!is(type, "DebitAccountOpened"))
		return SL_EXCLUDED;
	const char *account = sl_get_str(ev, "account_id");
	if (account == NULL || account[0] == '\0')
		account = sl_ev_stream(ev); /* the account's own stream */
	if (account[0] == '\0' || strlen(account) > PARTITION_MAX)
		return (sl_verdict) sl_fail_with(ctx, false, 0,
		    "%s at position %llu: no account id of 1..255 bytes", type,
		    (unsigned long long) sl_ev_position(ev));
	*partition = account;
	return SL_INCLUDED;
}

static const sl_filter customer_events_filter = {
	.struct_size = sizeof(sl_filter),
	.abi_version = SL_ABI_VERSION,
	.id          = CUSTOMER_EVENTS_ID,
	.scope       = NULL, /* the default, all-zero scope */
	.name        = "customer events",
	.version     = VERSION,
	.kind        = SL_FILTER_PARTITIONED,
	.filter      = customer_events,
	.user        = NULL,
};

static const sl_filter public_openings_filter = {
	.struct_size = sizeof(sl_filter),
	.abi_version = SL_ABI_VERSION,
	.id          = PUBLIC_OPENINGS_ID,
	.scope       = NULL,
	.name        = "public account openings",
	.version     = VERSION,
	.kind        = SL_FILTER_PUBLIC,
	.filter      = public_openings,
	.user        = NULL,
};

static const sl_filter *const filters[]
    = { &customer_events_filter, &public_openings_filter };

static const sl_plugin_desc descriptor = {
	.struct_size   = sizeof(sl_plugin_desc),
	.abi_version   = SL_ABI_VERSION,
	.name          = "account_filters",
	.version       = "1.0.0",
	.projections   = NULL,
	.n_projections = 0,
	.fini          = NULL,
	.filters       = filters,
	.n_filters     = sizeof(filters) / sizeof(filters[0]),
};

/* The one exported symbol. Bind the host first: the helpers need it. */
SL_EXPORT int
sluice_plugin_init(const sl_host_api *host, const sl_plugin_desc **out)
{
	int rc = sl_bind(host);
	if (rc != SL_OK)
		return rc;
	/* the filters need fail_with: refuse a host older than ABI 1.1 */
	if (host->abi_version < SL_ABI_VERSION
	    || host->struct_size < sizeof(sl_host_api))
		return SL_EVERSION;
	*out = &descriptor;
	return SL_OK;
}
