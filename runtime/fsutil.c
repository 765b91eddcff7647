/*
 * File system helpers shared by the runtime's modules (see fsutil.h).
 */
#include "fsutil.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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
