/*
 * config_load refuses every kind of bad resources.yaml with SL_ECONFIG and a
 * message that names the file, the exact line:column and the key path.
 */
#include "config_testutil.h"

#include <dirent.h>
#include <sluice/errors.h>

static char *
repeat(char c, size_t n)
{
	char *s = malloc(n + 1);
	CHECK(s != NULL);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

static void
test_unknown_keys(void)
{
	ct_expect_err(
	    "tenants:\n  - id: demo\nfoo: 1\n", "3:1", "unknown key 'foo'");
	ct_expect_err("event_store:\n  map_size: 1GiB\n  sizee: 2\n"
	           "tenants:\n  - id: demo\n",
	    "3:3", "unknown key 'event_store.sizee'");
	ct_expect_err("tenants:\n  - id: demo\n    read_models:\n      paht: x\n",
	    "4:7", "unknown key 'tenants[0].read_models.paht'");
}

static void
test_wrong_types(void)
{
	ct_expect_err("hot_reload: 1\ntenants:\n  - id: demo\n", "1:13",
	    "key 'hot_reload': expected true or false, got '1'");
	ct_expect_err("tenants:\n  - id: demo\nevent_store:\n  sync: yes\n",
	    "4:9",
	    "key 'event_store.sync': expected true or false, got 'yes'");
	ct_expect_err("tenants: [{id: demo}]\nlimits:\n  api_workers: many\n",
	    "3:16",
	    "key 'limits.api_workers': expected an integer, got 'many'");
	ct_expect_err("event_store:\n  map_size: lots\ntenants: [{id: demo}]\n",
	    "2:13", "key 'event_store.map_size': expected a size");
	ct_expect_err("tenants:\n  - id: demo\nlimits: 5\n", "3:9",
	    "key 'limits': expected a mapping, got '5'");
	ct_expect_err("tenants:\n  - demo\n", "2:5",
	    "key 'tenants[0]': expected a mapping, got 'demo'");
	ct_expect_err("tenants:\n  id: demo\n", "2:3",
	    "key 'tenants': expected a sequence, got a mapping");
	ct_expect_err("data_dir: [a, b]\ntenants: [{id: demo}]\n", "1:11",
	    "key 'data_dir': expected a scalar, got a sequence");
	ct_expect_err("log_level: verbose\ntenants: [{id: demo}]\n", "1:12",
	    "key 'log_level': expected one of error, warn, info, debug, "
	    "got 'verbose'");
	ct_expect_err("tenants:\n  - id: demo\n    read_models: [a]\n", "3:18",
	    "key 'tenants[0].read_models': expected a mapping, got a "
	    "sequence");
}

static void
test_missing_required(void)
{
	ct_expect_err("data_dir: d\nlog_level: debug\n", "1:1",
	    "missing required key 'tenants'");
	/* The enclosing mapping starts at its first key, after comments. */
	ct_expect_err("# no tenants\n\ndata_dir: d\n", "3:1",
	    "missing required key 'tenants'");
	ct_expect_err("tenants:\n  - read_models: {path: x}\n", "2:5",
	    "missing required key 'tenants[0].id'");
	ct_expect_err("tenants:\n  - id: a\n  - read_models:\n      path: x\n",
	    "3:5", "missing required key 'tenants[1].id'");
	ct_expect_err("tenants: []\n", "1:10",
	    "key 'tenants': needs at least one tenant");
}

static void
test_bad_values(void)
{
	ct_expect_err("tenants:\n  - id: demo\nlimits:\n  api_workers: 0\n",
	    "4:16", "key 'limits.api_workers': 0 is out of range 1..256");
	ct_expect_err(
	    "tenants:\n  - id: demo\nlimits:\n  api_slow_workers: 0\n", "4:21",
	    "key 'limits.api_slow_workers': 0 is out of range 1..64");
	ct_expect_err(
	    "tenants:\n  - id: demo\nlimits:\n  api_slow_workers: 65\n",
	    "4:21", "key 'limits.api_slow_workers': 65 is out of range 1..64");
	ct_expect_err("tenants:\n  - id: demo\nlimits:\n  api_queue: 0\n",
	    "4:14", "key 'limits.api_queue': 0 is out of range 1..4096");
	ct_expect_err("tenants:\n  - id: demo\nlimits:\n  api_queue: 5000\n",
	    "4:14", "key 'limits.api_queue': 5000 is out of range 1..4096");
	ct_expect_err("hot_reload_quiet_ms: 0\ntenants: [{id: demo}]\n",
	    "1:22", "key 'hot_reload_quiet_ms': 0 is out of range 1..60000");
	ct_expect_err("hot_reload_quiet_ms: 60001\ntenants: [{id: demo}]\n",
	    "1:22",
	    "key 'hot_reload_quiet_ms': 60001 is out of range 1..60000");
	ct_expect_err("tenants:\n  - id: demo\nlimits:\n  query_timeout_ms: 5\n",
	    "4:21",
	    "key 'limits.query_timeout_ms': 5 is out of range 100..3600000");
	ct_expect_err(
	    "tenants:\n  - id: demo\nlimits:\n  handler_timeout_ms: 5\n",
	    "4:23",
	    "key 'limits.handler_timeout_ms': 5 is out of range 10..86400000");
	ct_expect_err("tenants:\n  - id: demo\nlimits:\n"
	              "  shutdown_timeout_ms: 600001\n",
	    "4:24",
	    "key 'limits.shutdown_timeout_ms': 600001 is out of range "
	    "100..600000");
	ct_expect_err("tenants:\n  - id: demo\nlimits:\n"
	              "  idle_timeout_ms: 50\n",
	    "4:20",
	    "key 'limits.idle_timeout_ms': 50 is too short: 0 (no timeout) "
	    "or 100..86400000");
	ct_expect_err("tenants:\n  - id: demo\nlimits:\n"
	              "  idle_timeout_ms: 86400001\n",
	    "4:20",
	    "key 'limits.idle_timeout_ms': 86400001 is out of range "
	    "0..86400000");
	ct_expect_err("tenants:\n  - id: demo\nlimits:\n"
	              "  max_connections: 0\n",
	    "4:20",
	    "key 'limits.max_connections': 0 is out of range 1..65536");
	ct_expect_err("tenants:\n  - id: demo\nlimits:\n"
	              "  max_connections: 65537\n",
	    "4:20",
	    "key 'limits.max_connections': 65537 is out of range 1..65536");
	ct_expect_err("tenants:\n  - id: demo\nprocessing:\n  batch: -5\n",
	    "4:10", "key 'processing.batch': -5 is out of range 1..1000000");
	ct_expect_err("tenants:\n  - id: demo\nlimits:\n"
	           "  max_read_events: 99999999999999999999999\n",
	    "4:20",
	    "key 'limits.max_read_events': 99999999999999999999999 is out "
	    "of range 1..100000");
	ct_expect_err("tenants:\n  - id: demo\nlimits:\n"
	           "  max_request_bytes: 2GiB\n",
	    "4:22",
	    "key 'limits.max_request_bytes': 2GiB is out of range "
	    "1KiB..1GiB");
	ct_expect_err("event_store:\n  map_size: 512KiB\ntenants: [{id: demo}]\n",
	    "2:13",
	    "key 'event_store.map_size': 512KiB is below the minimum 1MiB");
	ct_expect_err("tenants:\n  - id: demo\n    read_models:\n"
	           "      map_size: 12XB\n",
	    "4:17", "key 'tenants[0].read_models.map_size': expected a size");
	ct_expect_err("tenants:\n  - id: demo\n    read_models:\n"
	           "      map_size: 99999999999TiB\n",
	    "4:17",
	    "key 'tenants[0].read_models.map_size': 99999999999TiB is too "
	    "large");
	ct_expect_err("data_dir: ''\ntenants: [{id: demo}]\n", "1:11",
	    "key 'data_dir': must not be empty");
}

static void
test_duplicates(void)
{
	ct_expect_err("tenants:\n  - id: demo\nevent_store:\n  sync: true\n"
	           "  sync: false\n",
	    "5:3", "duplicate key 'event_store.sync' (first at line 4)");
	ct_expect_err("tenants: [{id: a}]\ndata_dir: x\n\"data_dir\": y\n", "3:1",
	    "duplicate key 'data_dir' (first at line 2)");
	ct_expect_err("tenants:\n  - id: demo\n  - id: other\n  - id: demo\n",
	    "4:9",
	    "key 'tenants[2].id': duplicate tenant id 'demo' (first at "
	    "tenants[0], line 2)");
	/* Two tenants' read model stores in one directory. */
	ct_expect_err("tenants:\n  - id: a\n  - id: b\n    read_models:\n"
	           "      path: tenants/a\n",
	    "5:13", "key 'tenants[1].read_models.path': ");
	ct_expect_err("event_store:\n  path: x\ntenants:\n  - id: a\n"
	           "    read_models: {path: ./x/}\n",
	    "5:25", "key 'tenants[0].read_models.path': ");
}

static void
test_tenant_ids(void)
{
	ct_expect_err("tenants:\n  - id: \"a/b\"\n", "2:9",
	    "key 'tenants[0].id': tenant id 'a/b' may only contain "
	    "A-Z a-z 0-9 . _ -");
	ct_expect_err("tenants:\n  - id: ok\n  - id: sp ace\n", "3:9",
	    "key 'tenants[1].id': tenant id 'sp ace' may only contain");
	ct_expect_err("tenants:\n  - id: \"a\\0b\"\n", "2:9",
	    "key 'tenants[0].id': must not contain a NUL byte");
	ct_expect_err("tenants:\n  - id: ..\n", "2:9",
	    "key 'tenants[0].id': tenant id '..' is not allowed");
	ct_expect_err("tenants:\n  - id: ''\n", "2:9",
	    "key 'tenants[0].id': must not be empty");
	ct_expect_err("tenants:\n  - id: [x]\n", "2:9",
	    "key 'tenants[0].id': expected a scalar, got a sequence");

	char *id = repeat('i', 257), yaml[600];
	snprintf(yaml, sizeof(yaml), "tenants:\n  - id: %s\n", id);
	ct_expect_err(yaml, "2:9",
	    "key 'tenants[0].id': tenant id is 257 bytes, max 256");
	free(id);
}

static void
test_syntax_and_file(void)
{
	/* A scanner error is placed at libyaml's problem mark. */
	ct_expect_err("tenants:\n  - id: demo: x\n", "2:13",
	    "YAML syntax error: mapping values are not allowed in this "
	    "context");
	/* An unclosed flow sequence: the problem is the end of input. */
	ct_expect_err("tenants: [a, b\n", "2:1",
	    "YAML syntax error: did not find expected ',' or ']' (while "
	    "parsing a flow sequence at line 1)");
	/* A reader error carries only a byte offset: 3rd line, 4th byte. */
	ct_expect_err("tenants:\n  - id: demo\nx: \xff\n", "3:4",
	    "YAML syntax error: invalid leading UTF-8 octet");
	ct_expect_err("", "1:1", "the file is empty");
	ct_expect_err("# only a comment\n\n", "1:1", "the file is empty");
	ct_expect_err("---\n", "1:1", "the file is empty");
	ct_expect_err("- tenants\n- data_dir\n", "1:1",
	    "expected a mapping at the top level, got a sequence");
	ct_expect_err("tenants\n", "1:1",
	    "expected a mapping at the top level, got 'tenants'");
	ct_expect_err("tenants: [{id: a}]\n---\ntenants: [{id: b}]\n", "3:1",
	    "only one YAML document is allowed");

	char path[4096], err[512];
	snprintf(path, sizeof(path), "%s/no-such.yaml", tu_tmpdir());
	sl_config *cfg = (sl_config *) &ct_n_fixtures;
	CHECK_EQ(config_load(path, &cfg, err, sizeof(err)), SL_ECONFIG);
	CHECK(cfg == NULL);
	char want[4200];
	snprintf(want, sizeof(want),
	    "%s: cannot open: No such file or "
	    "directory",
	    path);
	CHECK_STREQ(err, want);
	/* err may be NULL or short: still the code, never an overflow. */
	CHECK_EQ(config_load(path, &cfg, NULL, 0), SL_ECONFIG);
	CHECK_EQ(config_load(path, &cfg, err, 4), SL_ECONFIG);
	CHECK_EQ(strlen(err), 3);
}

static void
test_endpoints(void)
{
	ct_expect_err("endpoints:\n  api: http://localhost:80\n"
	           "tenants:\n  - id: demo\n",
	    "2:8",
	    "key 'endpoints.api': 'http://localhost:80' must start with "
	    "ipc://, tcp://, tls+tcp:// or inproc://");
	ct_expect_err("endpoints:\n  pub: tcp://\ntenants: [{id: a}]\n", "2:8",
	    "key 'endpoints.pub': 'tcp://' has no address");
	ct_expect_err("endpoints: {api: 'ipc:///x', pub: 'ipc:///x'}\n"
	           "tenants: [{id: a}]\n",
	    "1:35", "key 'endpoints.pub': same address as endpoints.api");
	/* endpoints.metrics: an HTTP URL with host, port and path */
	ct_expect_err("endpoints:\n  metrics: tcp://127.0.0.1:9464/m\n"
	              "tenants: [{id: a}]\n",
	    "2:12",
	    "key 'endpoints.metrics': 'tcp://127.0.0.1:9464/m' must start "
	    "with http://");
	ct_expect_err("endpoints:\n  metrics: http://127.0.0.1:9464\n"
	              "tenants: [{id: a}]\n",
	    "2:12", "key 'endpoints.metrics': 'http://127.0.0.1:9464' has no "
	            "path");
	ct_expect_err("endpoints:\n  metrics: http://127.0.0.1/metrics\n"
	              "tenants: [{id: a}]\n",
	    "2:12", "needs a host and a port");
	ct_expect_err("endpoints:\n  metrics: http://h:x1/metrics\n"
	              "tenants: [{id: a}]\n",
	    "2:12", "the port is not a number");
	ct_expect_err("endpoints:\n  admin: ws://127.0.0.1:9464/admin\n"
	              "tenants: [{id: a}]\n",
	    "2:10", "key 'endpoints.admin': 'ws://127.0.0.1:9464/admin' "
	            "must start with http://");

	/* 108 bytes does not fit in sockaddr_un.sun_path. */
	char *name = repeat('s', 108 - 5), yaml[1024];
	snprintf(yaml, sizeof(yaml),
	    "endpoints:\n  api: ipc:///tmp/%s\ntenants: [{id: a}]\n", name);
	ct_expect_err(yaml, "2:8",
	    "key 'endpoints.api': ipc path too long (108 bytes, max 107)");
	free(name);
	/* The default under a long data_dir is blamed on data_dir. */
	name = repeat('d', 100);
	snprintf(yaml, sizeof(yaml), "tenants: [{id: a}]\ndata_dir: /tmp/%s\n",
	    name);
	ct_expect_err(yaml, "2:11",
	    "key 'endpoints.api': ipc path too long (113 bytes, max 107)");
	free(name);
}

/* Nothing but the fixtures exists: a refused config creates nothing. */
static void
check_nothing_created(void)
{
	DIR *d = opendir(tu_tmpdir());
	CHECK(d != NULL);
	struct dirent *e;
	int            n = 0;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0
		    || strcmp(e->d_name, "..") == 0)
			continue;
		size_t len = strlen(e->d_name);
		CHECK(len > 5 && strcmp(e->d_name + len - 5, ".yaml") == 0);
		n++;
	}
	closedir(d);
	CHECK_EQ(n, ct_n_fixtures);
}

/* plugins: (isolation: process, docs/plugins.md) */
static void
test_plugins(void)
{
	ct_expect_err("tenants: [{id: demo}]\nplugins:\n  - file: a.so\n"
	              "    isolation: separate\n",
	    "4:16",
	    "key 'plugins[0].isolation': expected one of in_process, "
	    "process, got 'separate'");
	ct_expect_err("tenants: [{id: demo}]\nplugins:\n  - isolation: "
	              "process\n",
	    "3:5", "missing required key 'plugins[0].file'");
	ct_expect_err("tenants: [{id: demo}]\nplugins:\n  - file: x/a.so\n",
	    "3:11",
	    "key 'plugins[0].file': 'x/a.so' is not the name of a .so file "
	    "in plugin_dir (no '/')");
	ct_expect_err("tenants: [{id: demo}]\nplugins:\n  - file: a.js\n",
	    "3:11", "key 'plugins[0].file': 'a.js' is not the name of a .so");
	ct_expect_err("tenants: [{id: demo}]\nplugins:\n  - file: a.so\n"
	              "  - file: a.so\n    isolation: process\n",
	    "4:11",
	    "key 'plugins[1].file': duplicate plugin 'a.so' (first at "
	    "plugins[0], line 3)");
	ct_expect_err("tenants: [{id: demo}]\nplugins:\n  - file: a.so\n"
	              "    isolate: process\n",
	    "4:5", "unknown key 'plugins[0].isolate'");
	ct_expect_err("tenants: [{id: demo}]\nplugins: a.so\n", "2:10",
	    "key 'plugins': expected a sequence");
	sl_config *cfg = ct_load_ok("tenants: [{id: demo}]\nplugins:\n"
	                            "  - file: a.so\n    isolation: process\n"
	                            "  - file: b.so\n");
	CHECK_EQ(cfg->n_plugins, 2);
	CHECK(strcmp(cfg->plugins[0].file, "a.so") == 0);
	CHECK_EQ(cfg->plugins[0].isolation, CFG_ISOLATION_PROCESS);
	CHECK_EQ(cfg->plugins[1].isolation, CFG_ISOLATION_IN_PROCESS);
	config_free(cfg);
}

/* event_store.timeout_ms (docs/postgresql.md): 5000 by default, a
 * PostgreSQL round trip's limit, only for that backend, in range. */
static void
test_pg_timeout(void)
{
	sl_config *cfg = ct_load_ok("event_store:\n  backend: postgresql\n"
	                            "  url: x\ntenants: [{id: demo}]\n");
	CHECK_EQ(cfg->store_timeout_ms, 5000);
	config_free(cfg);
	cfg = ct_load_ok("event_store:\n  backend: postgresql\n  url: x\n"
	                 "  timeout_ms: 250\ntenants: [{id: demo}]\n");
	CHECK_EQ(cfg->store_timeout_ms, 250);
	config_free(cfg);
	ct_expect_err("event_store:\n  timeout_ms: 1000\n"
	              "tenants: [{id: demo}]\n",
	    "2:15",
	    "key 'event_store.timeout_ms': only for 'backend: postgresql'");
	ct_expect_err("event_store:\n  backend: postgresql\n  url: x\n"
	              "  timeout_ms: 50\ntenants: [{id: demo}]\n",
	    "4:15", "key 'event_store.timeout_ms'");
	ct_expect_err("event_store:\n  backend: postgresql\n  url: x\n"
	              "  timeout_ms: soon\ntenants: [{id: demo}]\n",
	    "4:15", "key 'event_store.timeout_ms'");
}

/* event_store.backend (docs/postgresql.md): LMDB stays the default, a
 * PostgreSQL log needs its url, and what it cannot run yet is refused. */
static void
test_backend(void)
{
	sl_config *cfg = ct_load_ok("tenants: [{id: demo}]\n");
	CHECK_EQ(cfg->store_backend, CFG_BACKEND_LMDB);
	CHECK(cfg->store_url == NULL);
	config_free(cfg);
	cfg = ct_load_ok("event_store:\n  backend: postgresql\n"
	                 "  url: postgresql://sluice@db/sluice\n"
	                 "tenants: [{id: demo}]\n");
	CHECK_EQ(cfg->store_backend, CFG_BACKEND_POSTGRESQL);
	CHECK_STREQ(cfg->store_url, "postgresql://sluice@db/sluice");
	config_free(cfg);
	ct_expect_err("event_store:\n  backend: mysql\ntenants: [{id: demo}]\n",
	    "2:12",
	    "key 'event_store.backend': expected one of lmdb, postgresql, "
	    "got 'mysql'");
	ct_expect_err(
	    "event_store:\n  backend: postgresql\ntenants: [{id: demo}]\n",
	    "2:12",
	    "key 'event_store.backend': postgresql needs 'event_store.url'");
	ct_expect_err("event_store:\n  url: postgresql://db/x\n"
	              "tenants: [{id: demo}]\n",
	    "2:8", "key 'event_store.url': only for 'backend: postgresql'");
	ct_expect_err("event_store:\n  backend: postgresql\n  url: ''\n"
	              "tenants: [{id: demo}]\n",
	    "3:8", "key 'event_store.url': must not be empty");
	ct_expect_err("event_store:\n  backend: postgresql\n  url: x\n"
	              "start_standard_projections: true\n"
	              "tenants: [{id: demo}]\n",
	    "4:29",
	    "key 'start_standard_projections': the system projections do "
	    "not run on 'event_store.backend: postgresql' yet");
	ct_expect_err("event_store:\n  backend: postgresql\n  url: x\n"
	              "run_projections: system\ntenants: [{id: demo}]\n",
	    "4:18", "key 'run_projections': 'system' runs only the system");
}

int
main(void)
{
	test_unknown_keys();
	test_backend();
	test_pg_timeout();
	test_wrong_types();
	test_missing_required();
	test_bad_values();
	test_duplicates();
	test_tenant_ids();
	test_syntax_and_file();
	test_endpoints();
	test_plugins();
	check_nothing_created();
	printf("config_errors_test: %d fixtures OK\n", ct_n_fixtures);
	return 0;
}
