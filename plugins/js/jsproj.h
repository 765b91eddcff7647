/*
 * The JavaScript projection host (issue 16): one .js file defining an
 * EventStoreDB-style projection (fromAll()/fromStream()/fromStreams()/
 * fromCategory(), .foreachStream(), .when({...}), .outputState(),
 * options({...})) run in Duktape and exposed as an ABI 1.3 sl_projection.
 * Internal to the js_host plugin: everything here reaches the runtime only
 * through the sl_host_api table.
 */
#ifndef SL_JSPROJ_H
#define SL_JSPROJ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sluice/plugin.h>

/** Bounds of a script; a script's options may only lower them. */
typedef struct jsproj_limits {
	uint32_t budget_ms;    /**< CPU time per event (and for the load) */
	size_t   memory_bytes; /**< engine memory per projection */
} jsproj_limits;

#define JSPROJ_BUDGET_MS 100
#define JSPROJ_MEMORY    (64u << 20)

typedef struct jsproj jsproj;

/**
 * Load the projection of one .js file: run the script once (bounded), read
 * its definition, and build the sl_projection. file is the name reasons
 * and the projection's name come from ("count.js"; NULL: path's
 * basename), when path is a private copy.
 * @return SL_OK; SL_EPLUGIN (the script throws, loops, calls what does not
 *         exist, or defines no valid projection: err names file:line when
 *         the engine knows it); SL_ENOTFOUND (cannot read the file);
 *         SL_ENOMEM.
 * @note *out is the caller's, freed with jsproj_close after the host's last
 *       callback into it.
 */
int jsproj_open(const sl_host_api *host, const char *path, const char *file,
    const jsproj_limits *lim, jsproj **out, char *err, size_t errlen);
/** The projection (owned by p, alive until jsproj_close). */
const sl_projection *jsproj_projection(const jsproj *p);
void                 jsproj_close(jsproj *p);

/** Make sure the budget's signal handler is installed (libsluice_jsbudget:
 * once per process, shared by every copy of the host); @return SL_OK, or
 * SL_EPLUGIN when no real-time signal from SIGRTMIN+7 on is free.
 * jsproj_fini: nothing to undo (kept for the copies' symmetry). */
int  jsproj_init(void);
void jsproj_fini(void);

#endif
