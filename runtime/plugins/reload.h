/*
 * Hot reload in the running daemon: the plugin directory's watcher reports
 * a changed or removed .so; the registry loads the new version (or unloads
 * it), and each processor of the plugin's projections gets its new
 * definition (switching between two batches), is started (a projection the
 * new version adds) or stops (one it drops; its read models stay served).
 */
#ifndef SL_RELOAD_H
#define SL_RELOAD_H

#include <stdbool.h>

#include "runtime.h"

/** Processors per tenant the runtime makes room for (rt->cap_procs):
 * the read model store holds two dbs per projection, 1024 at most. */
#define RELOAD_MAX_PROJECTIONS 512
/**
 * Watch cfg->plugin_dir (rt->watch) and apply its changes on the watcher's
 * thread, each file once it has been quiet for cfg->hot_reload_quiet_ms.
 * Call once the processors run.
 * @return SL_OK, or the error of watch_start (logged).
 */
int reload_start(runtime *rt);
/** Stop watching (a reload in progress finishes first). */
void reload_stop(runtime *rt);

/**
 * Apply what is now at path: (re)load it, or unload it if it is gone.
 * Not thread-safe: one caller at a time (the watcher's thread).
 * @return true if it was refused for want of file descriptors (EMFILE,
 *         ENFILE: many connections, see docs/security.md), which come
 *         back: worth trying again later.
 */
bool reload_file(runtime *rt, const char *path);
/** Compare the plugin directory with the registry and apply each file. */
void reload_rescan(runtime *rt);
/**
 * reload_rescan on the watcher's thread (SIGHUP; a plugin directory that
 * was removed and made again is watched again); with hot reload off, on
 * the caller's. Returns at once when there is a watcher.
 */
void reload_request_rescan(runtime *rt);

#endif
