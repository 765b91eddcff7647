/*
 * The config tests' fixtures: a YAML text written to a fresh file in the
 * test's temp dir, loaded with config_load, expected to load or to be
 * refused with "<file>:<line:col>: " and a message.
 */
#ifndef SL_CONFIG_TESTUTIL_H
#define SL_CONFIG_TESTUTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/errors.h>

#include "config.h"
#include "testutil.h"

static int ct_n_fixtures;

/* Write yaml to a new file; the caller frees the path. */
__attribute__((unused)) static char *
ct_write_fixture(const char *yaml)
{
	char *path;
	CHECK(asprintf(&path, "%s/cfg%02d.yaml", tu_tmpdir(), ct_n_fixtures++)
	    >= 0);
	tu_write_file(path, yaml);
	return path;
}

/* Load yaml, which must be valid; free with config_free. */
__attribute__((unused)) static sl_config *
ct_load_ok(const char *yaml)
{
	char      *path      = ct_write_fixture(yaml);
	sl_config *cfg       = NULL;
	char       err[1024] = "";
	int        rc        = config_load(path, &cfg, err, sizeof(err));
	if (rc != SL_OK) {
		fprintf(stderr, "%s\nrc %d: %s\n", yaml, rc, err);
		exit(1);
	}
	free(path);
	return cfg;
}

/* Load yaml: expect SL_ECONFIG, *out reset to NULL, and the message
 * "<file>:<where>: " followed by text containing what. */
__attribute__((unused)) static void
ct_expect_err(const char *yaml, const char *where, const char *what)
{
	char      *path = ct_write_fixture(yaml);
	char       prefix[4200], err[1024];
	sl_config *cfg = (sl_config *) &ct_n_fixtures; /* must be reset */
	memset(err, 'x', sizeof(err));
	int rc = config_load(path, &cfg, err, sizeof(err));
	snprintf(prefix, sizeof(prefix), "%s:%s: ", path, where);
	if (rc != SL_ECONFIG || cfg != NULL
	    || strncmp(err, prefix, strlen(prefix)) != 0
	    || strstr(err + strlen(prefix), what) == NULL) {
		fprintf(stderr,
		    "fixture:\n%s\nrc %d, want %d (SL_ECONFIG)\n"
		    "got:  %s\nwant: %s...%s\n",
		    yaml, rc, SL_ECONFIG, err, prefix, what);
		exit(1);
	}
	free(path);
}

#endif
