/*
 * Negative test plugins for filters (ABI 1.1), one source built once per
 * case with -DBAD_FILTER=<case> (tests/plugins/CMakeLists.txt). Each but
 * the last must be refused, naming the filter and the problem:
 *
 *   1 filter_no_callback   filter 'no_callback'
 *                          (64bc1346-be16-4b5e-8d21-d6fa83aea9f1) has no
 *                          filter() callback                      EPLUGIN
 *   2 filter_bad_kind      filter 'bad_kind'
 *                          (92d8fa3c-d261-4e84-84d9-58b0cbc82a6e) has kind 7
 *                                                                 EPLUGIN
 *   3 filter_bad_id        filter id "not-a-uuid"                 EPLUGIN
 *   4 filter_dup_id        filter 'dup_filter' reuses the id of its own
 *                          plugin's projection 'dup_projection'
 *                          (c243c492-fbe7-4026-8d44-1f0ccd510544) EEXIST
 *   5 filter_clash         filter 'clash' reuses account_details'
 *                          projection id (8a2f3c1e-...-2d4e6f8a0b13):
 *                          EEXIST when account_details is loaded
 *   6 filter_null_array    n_filters 1, filters NULL              EPLUGIN
 *   7 filter_short_struct  filter #0 with struct_size 16 (its id,
 *                          5c0b8815-c141-4ed5-b175-55e5fec8ec79, and name
 *                          'short' are not read)                  EVERSION
 * The plugin is named "bad_filter_<filter name>" (e.g. bad_filter_clash).
 *   8 filter_old_desc      descriptor struct_size of ABI 1.0 (ends at fini)
 *                          with filters set (case 1's): the host must not
 *                          read them; loads with projection 'old_desc'
 *                          (d2ea3b47-7958-4d71-a00a-00cae0902e84) only
 */
#include <stddef.h>

#include <sluice/plugin.h>

#ifndef BAD_FILTER
#error "build with -DBAD_FILTER=<case>"
#endif

__attribute__((unused)) static sl_verdict
include_all(
    void *user, const sl_event *ev, const char **partition, sl_context *ctx)
{
	(void) user;
	(void) ctx;
	*partition = sl_ev_stream(ev);
	return SL_INCLUDED;
}

static sl_outcome
count(void *user, const sl_event *ev, const char *key, sl_state *st,
    sl_context *ctx)
{
	(void) user;
	(void) ev;
	(void) key;
	(void) ctx;
	return sl_set_i64(st, "n", sl_state_i64(st, "n", 0) + 1) == SL_OK
	    ? SL_REPLACE
	    : SL_FAIL;
}

static const sl_selector selectors[] = {
	{ "Tick", SL_KEY_EVENT_SOURCE, NULL },
};

#if BAD_FILTER == 1 || BAD_FILTER == 8
#define F_ID   "64bc1346-be16-4b5e-8d21-d6fa83aea9f1"
#define F_NAME "no_callback"
#elif BAD_FILTER == 2
#define F_ID   "92d8fa3c-d261-4e84-84d9-58b0cbc82a6e"
#define F_NAME "bad_kind"
#elif BAD_FILTER == 3
#define F_ID   "not-a-uuid"
#define F_NAME "bad_id"
#elif BAD_FILTER == 4
#define F_ID   "c243c492-fbe7-4026-8d44-1f0ccd510544"
#define F_NAME "dup_filter"
#elif BAD_FILTER == 5
#define F_ID   "8A2F3C1E-5B7D-4E9A-9C11-2D4E6F8A0B13"
#define F_NAME "clash"
#elif BAD_FILTER == 6
#define F_ID   "5c0b8815-c141-4ed5-b175-55e5fec8ec79"
#define F_NAME "null_array"
#else
#define F_ID   "5c0b8815-c141-4ed5-b175-55e5fec8ec79"
#define F_NAME "short"
#endif

#if BAD_FILTER == 1 || BAD_FILTER == 8
#define F_CALLBACK NULL
#else
#define F_CALLBACK include_all
#endif
#if BAD_FILTER == 2
#define F_KIND ((sl_filter_kind) 7)
#else
#define F_KIND SL_FILTER_PARTITIONED
#endif
#if BAD_FILTER == 4
#define P_ID   "c243c492-fbe7-4026-8d44-1f0ccd510544" /* = the filter's */
#define P_NAME "dup_projection"
#else
#define P_ID   "d2ea3b47-7958-4d71-a00a-00cae0902e84"
#define P_NAME "old_desc"
#endif

static const sl_filter filter = {
	.struct_size = BAD_FILTER == 7 ? 16 : sizeof(sl_filter),
	.abi_version = SL_ABI_VERSION,
	.id          = F_ID,
	.name        = F_NAME,
	.version     = 1,
	.kind        = F_KIND,
	.filter      = F_CALLBACK,
};

static const sl_filter *const filters[] = { &filter };

static const sl_projection projection = {
	.struct_size        = sizeof(sl_projection),
	.abi_version        = SL_ABI_VERSION,
	.id                 = P_ID,
	.name               = P_NAME,
	.version            = 1,
	.initial_state_json = "{\"n\":0}",
	.selectors          = selectors,
	.n_selectors        = 1,
	.on                 = count,
};

static const sl_projection *const projections[] = { &projection };

static const sl_plugin_desc descriptor = {
	.struct_size   = BAD_FILTER == 8
	      ? offsetof(sl_plugin_desc, fini) + sizeof(void (*)(void))
	      : sizeof(sl_plugin_desc),
	.abi_version   = SL_ABI_VERSION,
	.name          = "bad_filter_" F_NAME,
	.version       = "1.0.0",
	.projections   = projections,
	.n_projections = BAD_FILTER == 4 || BAD_FILTER == 8 ? 1 : 0,
	.filters       = BAD_FILTER == 6 ? NULL : filters,
	.n_filters     = 1,
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
