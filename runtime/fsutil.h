/*
 * Small file system helpers the runtime's modules share: creating a
 * directory and its parents (the data dir, read model dirs, the plugin
 * cache).
 */
#ifndef SL_FSUTIL_H
#define SL_FSUTIL_H

/*
 * mkdir -p: create path and its missing parents (mode 0755). Only the last
 * component's result counts: a parent that cannot be made shows there.
 * An existing path is success (it may be a non-directory: callers that
 * care check).
 * @return 0, or -1 with errno set (ENOMEM if out of memory).
 */
int fs_mkdirs(const char *path);

#endif
