/*
 * Test plugin for crash and hang containment (crash_guard_test), one build
 * per case, every build with the same ids and definitions:
 *   CRASH_KIND 1: projection "crash_counts" (key = stream, state
 *                 {"n":events,"sum":sum of content "i"}, Tick events),
 *                 and its neighbour "side_counts", the same fold that
 *                 never crashes;
 *   CRASH_KIND 2: partitioned filter "crash_filter" (every Tick event,
 *                 partition = stream);
 *   CRASH_KIND 3: emitting projection "crash_emitter": as crash_counts,
 *                 and it links every event into "crash-all".
 * An event with content "boom": 1 makes CRASH_HOW 1 segfault, 2 abort();
 * one with "loop": 1 makes CRASH_HOW 3 loop forever. CRASH_HOW 0 is the
 * fixed build: it handles them as any other.
 */
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <stdio.h>

#include <sluice/plugin.h>

#ifndef CRASH_KIND
#define CRASH_KIND 1
#endif
#ifndef CRASH_HOW
#define CRASH_HOW 0
#endif
#define STR_(x) #x
#define STR(x)  STR_(x)

/* A real fault, also in a sanitizer build (whose checks would end the
 * process another way first). */
__attribute__((no_sanitize("address", "undefined"))) static void
segfault(void)
{
	volatile uintptr_t   where   = 8;
	volatile int *volatile nowhere = (volatile int *) where;
	*nowhere                       = 1;
}

static void
maybe_crash(const sl_event *ev)
{
	int64_t v = 0;
	if (CRASH_HOW == 1 && sl_get_i64(ev, "boom", &v) == SL_OK && v == 1) {
		segfault();
	}
	if (CRASH_HOW == 2 && sl_get_i64(ev, "boom", &v) == SL_OK && v == 1)
		abort();
	if (CRASH_HOW == 3 && sl_get_i64(ev, "loop", &v) == SL_OK && v == 1) {
		/* a handler that never returns (sleeping, not spinning: the
		 * test machine is shared) */
		for (;;) {
			struct timespec ts = { 0, 10000000L };
			nanosleep(&ts, NULL);
		}
	}
}

#if CRASH_KIND == 1 || CRASH_KIND == 3
static const sl_selector selectors[] = {
	{ "Tick", SL_KEY_EVENT_SOURCE, NULL },
};

static sl_outcome
on_event(void *user, const sl_event *ev, const char *key, sl_state *st,
    sl_context *ctx)
{
	(void) user;
	(void) key;
#ifndef CRASH_IN_KEY
	maybe_crash(ev);
#endif
	int64_t i = 0;
	(void) sl_get_i64(ev, "i", &i);
	if (sl_set_i64(st, "n", sl_state_i64(st, "n", 0) + 1) != SL_OK
	    || sl_set_i64(st, "sum", sl_state_i64(st, "sum", 0) + i) != SL_OK)
		return sl_failf(ctx, "cannot update the state");
#if CRASH_KIND == 3
	if (sl_host()->link_to(ctx, "crash-all", ev) != SL_OK)
		return SL_FAIL; /* the host said why */
#endif
	return SL_REPLACE;
}

#if CRASH_KIND == 3
static const char *const emits[] = { "crash-all" };
#endif

#ifdef CRASH_IN_KEY
/* The key (the stream, as the selector's) from a key function (ABI 1.3,
 * partitionBy), which is where it crashes. */
static int
key_of(void *user, const sl_event *ev, char *buf, size_t len)
{
	(void) user;
	maybe_crash(ev);
	snprintf(buf, len, "%s", sl_host()->event_stream(ev));
	return SL_OK;
}
#endif

#if CRASH_KIND == 1
static sl_outcome
on_side(void *user, const sl_event *ev, const char *key, sl_state *st,
    sl_context *ctx)
{
	(void) user;
	(void) key;
	int64_t i = 0;
	(void) sl_get_i64(ev, "i", &i);
	if (sl_set_i64(st, "n", sl_state_i64(st, "n", 0) + 1) != SL_OK
	    || sl_set_i64(st, "sum", sl_state_i64(st, "sum", 0) + i) != SL_OK)
		return sl_failf(ctx, "cannot update the state");
	return SL_REPLACE;
}

static const sl_projection side = {
	.struct_size        = sizeof(sl_projection),
	.abi_version        = SL_ABI_VERSION,
	.id                 = "51de0000-3e1d-4c2b-9a7e-0b00b0b051de",
	.name               = "side_counts",
	.version            = 1,
	.initial_state_json = "{\"n\":0,\"sum\":0}",
	.selectors          = selectors,
	.n_selectors        = 1,
	.on                 = on_side,
};
#endif

static const sl_projection projection = {
	.struct_size        = sizeof(sl_projection),
	.abi_version        = SL_ABI_VERSION,
#if CRASH_KIND == 3
	.id                 = "e3a5b0b0-3e1d-4c2b-9a7e-0b00b0b0e3a5",
	.name               = "crash_emitter",
	.emits              = emits,
	.n_emits            = 1,
#else
	.id                 = "c4a5b0b0-3e1d-4c2b-9a7e-0b00b0b0c4a5",
	.name               = "crash_counts",
#endif
	.version            = 1,
	.initial_state_json = "{\"n\":0,\"sum\":0}",
	.selectors          = selectors,
	.n_selectors        = 1,
	.on                 = on_event,
#ifdef CRASH_IN_KEY
	.key                = key_of,
#endif
};
#if CRASH_KIND == 1
static const sl_projection *const projections[] = { &projection, &side };
#else
static const sl_projection *const projections[] = { &projection };
#endif
#else
static sl_verdict
on_filter(
    void *user, const sl_event *ev, const char **partition, sl_context *ctx)
{
	(void) user;
	(void) ctx;
	maybe_crash(ev);
	if (strcmp(sl_ev_type(ev), "Tick") != 0)
		return SL_EXCLUDED;
	*partition = sl_ev_stream(ev);
	return SL_INCLUDED;
}

static const sl_filter filter = {
	.struct_size = sizeof(sl_filter),
	.abi_version = SL_ABI_VERSION,
	.id          = "f11e7000-3e1d-4c2b-9a7e-0b00b0b0f11e",
	.name        = "crash_filter",
	.version     = 1,
	.kind        = SL_FILTER_PARTITIONED,
	.filter      = on_filter,
};
static const sl_filter *const filters[] = { &filter };
#endif

static const sl_plugin_desc descriptor = {
	.struct_size   = sizeof(sl_plugin_desc),
	.abi_version   = SL_ABI_VERSION,
	.name          = "crash_on_boom",
	.version       = "1.0." STR(CRASH_HOW),
#if CRASH_KIND != 2
	.projections   = projections,
	.n_projections = sizeof(projections) / sizeof(projections[0]),
#else
	.filters       = filters,
	.n_filters     = 1,
#endif
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
