/*
 * Small file system helpers the runtime's modules share: creating a
 * directory and its parents (the data dir, read model dirs, the plugin
 * cache), and the modes of what the daemon creates.
 */
#ifndef SL_FSUTIL_H
#define SL_FSUTIL_H

#include <stddef.h>

/*
 * mkdir -p: create path and its missing parents (mode 0755). Only the last
 * component's result counts: a parent that cannot be made shows there.
 * An existing path is success (it may be a non-directory: callers that
 * care check).
 * @return 0, or -1 with errno set (ENOMEM if out of memory).
 */
int fs_mkdirs(const char *path);

/*
 * What the daemon creates is its user's only (docs/security.md): the
 * process umask 077 makes directories 0700 and files 0600. With a group
 * (access.group) for read-only tools: umask 027, directories 02750 (the
 * setgid bit: what is created inside takes the group), files 0640, LMDB
 * lock files 0660 (a reader writes its slot there). Call once, before
 * anything is created.
 */
void fs_access_init(long gid);
/* The group given to fs_access_init, or -1. */
long fs_access_gid(void);
/* An existing directory made the daemon's (0700, or 02750 and the group):
 * one made by an older version, or under a looser umask. 0, or -1 with
 * errno. */
int fs_secure_dir(const char *path);
/* Everything under path (itself too): directories and regular files as
 * above (files named lock.mdb as LMDB lock files), symbolic links and
 * sockets left alone. For data_dir at start: what an older version or a
 * looser umask made, or made for another group. 0, or -1 with errno
 * (the first failure; the walk goes on). */
int fs_secure_tree(const char *path);
/* An open LMDB environment's files in dir (data.mdb, lock.mdb): modes and
 * group as above, whatever made them. 0, or -1 with errno. */
int fs_secure_lmdb(const char *dir);

/**
 * The path rel (relative, e.g. "../lib/sluice/js_host.so") from the
 * directory of this process's executable, into buf: how an installed
 * daemon finds what it installed beside it, whatever the prefix.
 * @return 0; -1 when the executable or the room in buf is missing.
 */
int fs_beside_exe(const char *rel, char *buf, size_t size);

#endif
