/*
 * Tiny test harness shared by the test executables: checks that abort the
 * test with file and line, and a private temp directory removed at exit.
 */
#ifndef SL_TESTUTIL_H
#define SL_TESTUTIL_H

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHECK(cond)                                                        \
	do {                                                               \
		if (!(cond)) {                                             \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n",       \
			    __FILE__, __LINE__, #cond);                    \
			exit(1);                                           \
		}                                                          \
	} while (0)

#define CHECK_EQ(a, b)                                                     \
	do {                                                               \
		long long a_ = (long long) (a), b_ = (long long) (b);      \
		if (a_ != b_) {                                            \
			fprintf(stderr, "%s:%d: CHECK_EQ failed: %s == %s "  \
			    "(%lld != %lld)\n", __FILE__, __LINE__, #a, #b, \
			    a_, b_);                                       \
			exit(1);                                           \
		}                                                          \
	} while (0)

#define CHECK_STREQ(a, b)                                                  \
	do {                                                               \
		const char *a_ = (a), *b_ = (b);                           \
		if (a_ == NULL || b_ == NULL || strcmp(a_, b_) != 0) {     \
			fprintf(stderr, "%s:%d: CHECK_STREQ failed: %s == %s " \
			    "(\"%s\" != \"%s\")\n", __FILE__, __LINE__, #a,  \
			    #b, a_ ? a_ : "(null)", b_ ? b_ : "(null)");   \
			exit(1);                                           \
		}                                                          \
	} while (0)

static char tu_dir_[4096];

static int
tu_rm_one_(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void) sb;
	(void) flag;
	(void) ftw;
	return remove(p);
}

/** Remove a directory tree. */
static inline void
tu_rmrf(const char *path)
{
	nftw(path, tu_rm_one_, 16, FTW_DEPTH | FTW_PHYS);
}

static void
tu_cleanup_(void)
{
	if (tu_dir_[0] != '\0' && getenv("SLUICE_KEEP_TMP") == NULL)
		tu_rmrf(tu_dir_);
}

/**
 * A fresh temp directory for this test, removed at exit (unless
 * SLUICE_KEEP_TMP is set). Same path on every call in one process.
 */
static inline const char *
tu_tmpdir(void)
{
	if (tu_dir_[0] == '\0') {
		const char *base = getenv("TMPDIR");
		snprintf(tu_dir_, sizeof(tu_dir_), "%s/sluice-test-XXXXXX",
		    base != NULL ? base : "/tmp");
		if (mkdtemp(tu_dir_) == NULL) {
			perror("mkdtemp");
			exit(1);
		}
		atexit(tu_cleanup_);
	}
	return tu_dir_;
}

/** Write a whole file; exits the test on failure. */
static inline void
tu_write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	CHECK(f != NULL);
	CHECK(fputs(text, f) >= 0);
	CHECK(fclose(f) == 0);
}

#endif
