/*
 * File system helpers shared by the runtime's modules (see fsutil.h).
 */
#include "fsutil.h"

#include <errno.h>
#include <limits.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static long access_gid = -1;

void
fs_access_init(long gid)
{
	access_gid = gid;
	umask(gid >= 0 ? 027 : 077);
}

long
fs_access_gid(void)
{
	return access_gid;
}

/* path to mode, and to the group when there is one. */
static int
fs_own(const char *path, mode_t mode)
{
	if (access_gid >= 0 && chown(path, (uid_t) -1, (gid_t) access_gid) != 0)
		return -1;
	return chmod(path, mode);
}

int
fs_secure_dir(const char *path)
{
	return fs_own(path, access_gid >= 0 ? 02750 : 0700);
}

static int tree_err;

static int
tree_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void) f;
	int rc = 0;
	if (flag == FTW_D || flag == FTW_DP)
		rc = fs_secure_dir(path);
	else if (flag == FTW_F && S_ISREG(st->st_mode)) {
		const char *base = strrchr(path, '/');
		bool lock = strcmp(base != NULL ? base + 1 : path, "lock.mdb") == 0;
		rc        = fs_own(path,
                    access_gid < 0 ? 0600 : lock ? 0660 : 0640);
	}
	if (rc != 0 && tree_err == 0)
		tree_err = errno;
	return 0;
}

int
fs_secure_tree(const char *path)
{
	tree_err = 0;
	if (nftw(path, tree_one, 16, FTW_PHYS) != 0)
		return -1;
	if (tree_err != 0) {
		errno = tree_err;
		return -1;
	}
	return 0;
}

int
fs_secure_lmdb(const char *dir)
{
	char path[4200];
	if (snprintf(path, sizeof(path), "%s/data.mdb", dir)
	        >= (int) sizeof(path)
	    || fs_own(path, access_gid >= 0 ? 0640 : 0600) != 0)
		return -1;
	if (snprintf(path, sizeof(path), "%s/lock.mdb", dir)
	    >= (int) sizeof(path))
		return -1;
	return fs_own(path, access_gid >= 0 ? 0660 : 0600);
}

int
fs_mkdirs(const char *path)
{
	char  *p = strdup(path);
	size_t n;
	if (p == NULL) {
		errno = ENOMEM;
		return -1;
	}
	n = strlen(p);
	while (n > 1 && p[n - 1] == '/')
		p[--n] = '\0';
	for (char *s = p + 1; *s != '\0'; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		(void) mkdir(p, 0755); /* errors show at the last component */
		*s = '/';
	}
	int rc = mkdir(p, 0755) == 0 || errno == EEXIST ? 0 : -1;
	int e  = errno;
	free(p);
	errno = e;
	return rc;
}

int
fs_beside_exe(const char *rel, char *buf, size_t size)
{
	char    exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return -1;
	exe[n]      = '\0';
	char *slash = strrchr(exe, '/');
	if (slash == NULL)
		return -1;
	*slash  = '\0';
	int len = snprintf(buf, size, "%s/%s", exe, rel);
	return len > 0 && (size_t) len < size ? 0 : -1;
}
