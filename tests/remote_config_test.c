/*
 * The `remote:` section of resources.yaml: its defaults (an endpoint under
 * data_dir, keep-alive, timeout, window, batch, registrations and their
 * expiry), values read as
 * written, and refusals naming file:line:column and the key.
 */
#include "config_testutil.h"

int
main(void)
{
	/* defaults */
	sl_config *cfg = ct_load_ok("tenants: [{id: demo}]\n");
	char      *want;
	CHECK(asprintf(&want, "ipc://%s/remote", cfg->data_dir) >= 0);
	CHECK_STREQ(cfg->remote_url, want);
	free(want);
	CHECK_EQ(cfg->remote_keepalive_ms, 1000);
	CHECK_EQ(cfg->remote_timeout_ms, 5000);
	CHECK_EQ(cfg->remote_window, 32);
	CHECK_EQ(cfg->remote_batch, 256);
	CHECK_EQ(cfg->remote_max_registrations, 64);
	CHECK_EQ(cfg->remote_expiry_ms, 600000);
	config_free(cfg);

	/* every key set */
	cfg = ct_load_ok("tenants: [{id: demo}]\n"
	                 "insecure: true\n"
	                 "remote:\n"
	                 "  endpoint: tcp://127.0.0.1:0\n"
	                 "  keepalive_ms: 250\n"
	                 "  timeout_ms: 900\n"
	                 "  window: 1\n"
	                 "  batch: 1024\n"
	                 "  max_registrations: 5\n"
	                 "  registration_expiry_ms: 2592000000\n");
	CHECK_STREQ(cfg->remote_url, "tcp://127.0.0.1:0");
	CHECK_EQ(cfg->remote_keepalive_ms, 250);
	CHECK_EQ(cfg->remote_timeout_ms, 900);
	CHECK_EQ(cfg->remote_window, 1);
	CHECK_EQ(cfg->remote_batch, 1024);
	CHECK_EQ(cfg->remote_max_registrations, 5);
	CHECK_EQ(cfg->remote_expiry_ms, 2592000000u);
	config_free(cfg);
	cfg = ct_load_ok("tenants: [{id: demo}]\nremote:\n"
	                 "  registration_expiry_ms: 0\n"); /* never */
	CHECK_EQ(cfg->remote_expiry_ms, 0);
	config_free(cfg);
	cfg = ct_load_ok("tenants: [{id: demo}]\nremote:\n"
	              "  endpoint: inproc://calls\n");
	CHECK_STREQ(cfg->remote_url, "inproc://calls");
	config_free(cfg);
	cfg = ct_load_ok("tenants: [{id: demo}]\ninsecure: true\nremote:\n"
	              "  endpoint: tcp://[::1]:0\n");
	config_free(cfg);

	/* refusals */
	ct_expect_err("tenants: [{id: demo}]\nremote:\n  windw: 3\n", "3:3",
	    "unknown key 'remote.windw'");
	ct_expect_err("tenants: [{id: demo}]\nremote:\n  window: 0\n", "3:11",
	    "key 'remote.window': 0 is out of range 1..1024");
	ct_expect_err("tenants: [{id: demo}]\nremote:\n  batch: 0\n", "3:10",
	    "key 'remote.batch': 0 is out of range 1..1024");
	ct_expect_err("tenants: [{id: demo}]\nremote:\n  batch: 1025\n",
	    "3:10", "key 'remote.batch': 1025 is out of range 1..1024");
	ct_expect_err("tenants: [{id: demo}]\nremote:\n  batch: many\n",
	    "3:10", "key 'remote.batch': expected an integer, got 'many'");
	ct_expect_err("tenants: [{id: demo}]\nremote:\n  keepalive_ms: 5\n",
	    "3:17", "key 'remote.keepalive_ms': 5 is out of range 10..600000");
	ct_expect_err("tenants: [{id: demo}]\nremote:\n  timeout_ms: soon\n",
	    "3:15",
	    "key 'remote.timeout_ms': expected an integer, got 'soon'");
	ct_expect_err(
	    "tenants: [{id: demo}]\nremote:\n  max_registrations: 5000\n",
	    "3:22", "out of range 1..4096");
	ct_expect_err("tenants: [{id: demo}]\nremote:\n"
	              "  registration_expiry_ms: 99\n",
	    "3:27",
	    "key 'remote.registration_expiry_ms': 99 is too short: 0 "
	    "(never) or 100..2592000000");
	ct_expect_err("tenants: [{id: demo}]\nremote:\n"
	              "  registration_expiry_ms: 2592000001\n",
	    "3:27", "out of range 0..2592000000");
	ct_expect_err("tenants: [{id: demo}]\nremote: 5\n", "2:9",
	    "key 'remote': expected a mapping");
	ct_expect_err("tenants: [{id: demo}]\nremote:\n  endpoint: http://x\n",
	    "3:13", "must start with ipc://, tcp://, tls+tcp:// or inproc://");
	ct_expect_err("tenants: [{id: demo}]\nremote:\n"
	           "  endpoint: tcp://127.0.0.1:5555\n",
	    "3:13", "must have port 0");
	char *longp = malloc(200), *yaml;
	CHECK(longp != NULL);
	memset(longp, 'p', 95);
	longp[95] = '\0';
	CHECK(asprintf(&yaml,
	          "tenants: [{id: demo}]\nremote:\n  endpoint: ipc:///%s\n",
	          longp)
	    >= 0);
	ct_expect_err(yaml, "3:13", "too long for the registrations' sockets");
	free(yaml);
	free(longp);
	printf("remote_config_test: ok\n");
	return 0;
}
