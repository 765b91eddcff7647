/*
 * A real runtime for the API tests: a config in the test's temp dir with one
 * tenant, the build's plugins (account_details) and an ipc:// endpoint.
 */
#ifndef SL_API_FIXTURE_H
#define SL_API_FIXTURE_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "auth.h"
#include "config.h"
#include "json.h"
#include "runtime.h"
#include "testutil.h"

#define FX_TENANT "acme"

static sl_config *fx_cfg;
static runtime   *fx_rt;
static char       fx_url[4200];
static char       fx_pub_url[4200];
static char       fx_config_path[4200];
/* event_store.sync of the next fx_start (default false: quicker tests) */
static bool       fx_sync;

/* The account_details projection, as the build's plugin declares it. */
#define FX_PROJECTION "account_details"

/**
 * Write a config with the fixture's data dir, endpoints (fx_url,
 * fx_pub_url) and event store, followed by tail_yaml (plugin_dir, tenants,
 * limits ...), and start the runtime.
 */
static inline void
fx_start_yaml(const char *tail_yaml)
{
	const char *dir = tu_tmpdir();
	char        text[32768], err[512];

	snprintf(fx_url, sizeof(fx_url), "ipc://%s/api.ipc", dir);
	snprintf(fx_pub_url, sizeof(fx_pub_url), "ipc://%s/pub.ipc", dir);
	snprintf(
	    fx_config_path, sizeof(fx_config_path), "%s/resources.yaml", dir);
	snprintf(text, sizeof(text),
	    "data_dir: data\n"
	    "log_level: warn\n"
	    "endpoints:\n"
	    "  api: %s\n"
	    "  pub: %s\n"
	    "event_store:\n"
	    "  map_size: 64MiB\n"
	    "  sync: %s\n"
	    "%s",
	    fx_url, fx_pub_url, fx_sync ? "true" : "false", tail_yaml);
	tu_write_file(fx_config_path, text);
	if (config_load(fx_config_path, &fx_cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "config: %s\n", err);
		exit(1);
	}
	CHECK_EQ(runtime_start(fx_cfg, &fx_rt), 0);
}

/**
 * Start with one tenant (FX_TENANT) and the build's plugins; extra_yaml is
 * appended (e.g. a limits: block).
 */
static inline void
fx_start(const char *extra_yaml)
{
	char tail[8192];

	snprintf(tail, sizeof(tail),
	    "plugin_dir: %s\n"
	    "tenants:\n"
	    "  - id: " FX_TENANT "\n"
	    "    read_models:\n"
	    "      map_size: 64MiB\n"
	    "%s",
	    SL_PLUGIN_DIR, extra_yaml != NULL ? extra_yaml : "");
	fx_start_yaml(tail);
}

/**
 * fx_start with an auth: section of one credential, "registrar", of token
 * (FX_TENANT only) whose other keys (roles, caps) are cred_yaml, lines
 * indented by 6; extra_yaml as fx_start's.
 */
static inline void
fx_start_auth(const char *extra_yaml, const char *token, const char *cred_yaml)
{
	char tail[4096], hex[65];
	auth_hash_hex(token, strlen(token), hex);
	snprintf(tail, sizeof(tail),
	    "%s"
	    "auth:\n"
	    "  tokens:\n"
	    "    - name: registrar\n"
	    "      token_sha256: %s\n"
	    "      tenants: [" FX_TENANT "]\n"
	    "%s",
	    extra_yaml, hex, cred_yaml);
	fx_start(tail);
}

/**
 * A state as get_all_mp / get_all_view hand it out: state[0..len) is
 * exactly one msgpack map, whose JSON text is json (what get_all says).
 */
static inline void
fx_check_state_json(const void *state, size_t len, const char *json)
{
	msgpack_unpacked u;
	size_t           off = 0;
	msgpack_unpacked_init(&u);
	CHECK(msgpack_unpack_next(&u, state, len, &off)
	    == MSGPACK_UNPACK_SUCCESS);
	CHECK_EQ(off, len); /* one map, nothing more */
	CHECK(u.data.type == MSGPACK_OBJECT_MAP);
	char *text = mp_to_json_text(&u.data);
	CHECK_STREQ(text, json);
	free(text);
	msgpack_unpacked_destroy(&u);
}

static inline void
fx_stop(void)
{
	runtime_stop(fx_rt);
	config_free(fx_cfg);
	fx_rt  = NULL;
	fx_cfg = NULL;
}

#endif
