/*
 * Watching the plugin directory (hot reload): inotify reports finished
 * writes, renames and removals of *.so files; after a quiet time with no
 * further event for a file, the watcher hands its path to a callback, which
 * reloads or unloads the plugin (runtime/plugins/reload.c).
 */
#ifndef SL_WATCH_H
#define SL_WATCH_H

typedef struct watch watch;

/**
 * Called on the watcher's thread for a .so file of the directory that was
 * written (closed after writing), renamed into place, removed or renamed
 * away, once no event came for it during the quiet time. path is
 * "<dir>/<name>", valid for the call; the callback looks at what is there
 * now. path NULL: compare the whole directory with what is loaded; the
 * first call is always that one (so a change made before the watch began
 * is not missed), and it follows an inotify queue overflow.
 * @return 0; or, for a path whose load failed for want of a resource that
 *         comes back (open files, issue 18), non-zero: the watcher hands
 *         it over again later (after 0.5 s, doubling up to 8 s), until
 *         it returns 0 or a new event for the file comes.
 */
typedef int (*watch_fn)(void *arg, const char *path);

/**
 * Start watching dir on a new thread.
 * @param quiet_ms  the debounce: a file is reported this long after its
 *                  last event (a linker may close and reopen its output)
 * @return SL_OK; SL_ENOTFOUND (dir cannot be watched: missing, not a
 *         directory, no permission); SL_ENOMEM; SL_ESTORAGE (inotify or the
 *         thread could not be set up). The reason is logged.
 */
int watch_start(
    const char *dir, int quiet_ms, watch_fn fn, void *arg, watch **out);

/**
 * Rescan dir on the watch's thread (SIGHUP): every file is handed to the
 * callback (unchanged ones are skipped there), and a directory that was
 * removed and made again is watched again. Returns at once.
 */
void watch_rescan(watch *w);

/** Stop the thread (a callback in progress finishes first) and free. */
void watch_stop(watch *w);

#endif
