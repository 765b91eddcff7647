/*
 * Test plugin: one filter whose code changes between builds while its
 * definition (id, scope, kind, version) stays the same, for
 * filter_validate_test. Built once per variant with -D flags:
 *
 *   FC_RULE 1  includes Tick events with a "who", partition = "who"
 *           2  the same events and partitions, by other code that
 *              never fails
 *           3  Tick and Tock events (more), partition = content "who"
 *           4  Tick events, partition = the source stream (moved)
 *   Rules 1, 3 and 4 fail by the rules of flaky_fail.h ("fatal",
 *   "fail_times" in the content).
 *   FC_FAIL      on_code_change = SL_CODE_CHANGE_FAIL
 *   FC_SLOW_MS   sleeps this long per event
 *   FC_LEGACY    an ABI 1.2 build: unpartitioned (partition ignored), and
 *                its sl_filter as 1.2 had it (no on_code_change)
 *   FC_BAD_MODE  on_code_change = 7 (refused at load)
 *
 *   filter "code_change" 3c5e8a41-7b2d-4f6e-9a10-5d2c8e7f1b34, version 1
 */
#include <string.h>
#include <time.h>

#include <sluice/plugin.h>

#ifndef FC_RULE
#define FC_RULE 1
#endif
#ifndef FC_SLOW_MS
#define FC_SLOW_MS 0
#endif

#if FC_RULE != 2
#include "flaky_fail.h"
#endif

#define STR2(x) #x
#define STR(x)  STR2(x)

static sl_verdict
code_change(
    void *user, const sl_event *ev, const char **partition, sl_context *ctx)
{
	(void) user;
#if FC_SLOW_MS > 0
	struct timespec ts = { 0, FC_SLOW_MS * 1000000L };
	nanosleep(&ts, NULL);
#endif
	const char *type = sl_ev_type(ev);
#if FC_RULE == 2
	/* the same as rule 1, written otherwise */
	(void) ctx;
	if (strncmp(type, "Tick", 5) != 0)
		return SL_EXCLUDED;
	*partition = sl_get_str(ev, "who");
	return *partition != NULL ? SL_INCLUDED : SL_EXCLUDED;
#else
	if (flaky_fails(ev, ctx))
		return SL_FAILED;
	bool wanted = strcmp(type, "Tick") == 0
	    || (FC_RULE == 3 && strcmp(type, "Tock") == 0);
	if (!wanted)
		return SL_EXCLUDED;
	*partition = FC_RULE == 4 ? sl_ev_stream(ev) : sl_get_str(ev, "who");
	if (*partition == NULL)
		return SL_EXCLUDED;
	return SL_INCLUDED;
#endif
}

#ifdef FC_LEGACY
/* sl_filter as ABI 1.2 had it: everything before on_code_change */
#define FC_SIZE ((uint32_t) offsetof(sl_filter, on_code_change))
#define FC_ABI  ((uint32_t) ((1 << 16) | 2))
#define FC_KIND SL_FILTER_UNPARTITIONED
#else
#define FC_SIZE ((uint32_t) sizeof(sl_filter))
#define FC_ABI  SL_ABI_VERSION
#define FC_KIND SL_FILTER_PARTITIONED
#endif

static const sl_filter filter = {
	.struct_size = FC_SIZE,
	.abi_version = FC_ABI,
	.id          = "3c5e8a41-7b2d-4f6e-9a10-5d2c8e7f1b34",
	.name        = "code_change",
	.version     = 1,
	.kind        = FC_KIND,
	.filter      = code_change,
#if defined(FC_BAD_MODE)
	.on_code_change = (sl_code_change) 7,
#elif defined(FC_FAIL)
	.on_code_change = SL_CODE_CHANGE_FAIL,
#endif
};

static const sl_filter *const filters[] = { &filter };

static const sl_plugin_desc descriptor = {
	.struct_size = sizeof(sl_plugin_desc),
	.abi_version = FC_ABI,
	.name        = "filter_codechange",
	/* differs per build, so each build is other bytes */
	.version = "rule " STR(FC_RULE) " slow " STR(FC_SLOW_MS)
#ifdef FC_FAIL
	    " fail"
#endif
	,
	.filters   = filters,
	.n_filters = 1,
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
