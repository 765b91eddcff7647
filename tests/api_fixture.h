/*
 * A real runtime for the API tests: a config in the test's temp dir with one
 * tenant, the build's plugins (account_details) and an ipc:// endpoint.
 */
#ifndef SL_API_FIXTURE_H
#define SL_API_FIXTURE_H

#include <stdio.h>
#include <string.h>

#include "config.h"
#include "runtime.h"
#include "testutil.h"

#define FX_TENANT "acme"

static sl_config *fx_cfg;
static runtime   *fx_rt;
static char       fx_url[4200];
static char       fx_config_path[4200];

/* The account_details projection, as the build's plugin declares it. */
#define FX_PROJECTION "account_details"

/**
 * Write the config (extra_yaml appended, e.g. a limits: block) and start
 * the runtime.
 */
static void
fx_start(const char *extra_yaml)
{
	const char *dir = tu_tmpdir();
	char        text[16384], err[512];

	snprintf(fx_url, sizeof(fx_url), "ipc://%s/api.ipc", dir);
	snprintf(
	    fx_config_path, sizeof(fx_config_path), "%s/resources.yaml", dir);
	snprintf(text, sizeof(text),
	    "data_dir: data\n"
	    "plugin_dir: %s\n"
	    "log_level: warn\n"
	    "endpoints:\n"
	    "  api: %s\n"
	    "  pub: ipc://%s/pub.ipc\n"
	    "event_store:\n"
	    "  map_size: 64MiB\n"
	    "  sync: false\n"
	    "tenants:\n"
	    "  - id: " FX_TENANT "\n"
	    "    read_models:\n"
	    "      map_size: 64MiB\n"
	    "%s",
	    SL_PLUGIN_DIR, fx_url, dir, extra_yaml != NULL ? extra_yaml : "");
	tu_write_file(fx_config_path, text);
	if (config_load(fx_config_path, &fx_cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "config: %s\n", err);
		exit(1);
	}
	CHECK_EQ(runtime_start(fx_cfg, &fx_rt), 0);
}

static void
fx_stop(void)
{
	runtime_stop(fx_rt);
	config_free(fx_cfg);
	fx_rt  = NULL;
	fx_cfg = NULL;
}

#endif
