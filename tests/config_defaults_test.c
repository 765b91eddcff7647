/*
 * config_load fills every documented default, resolves relative paths
 * (data_dir against the config file's directory, store and read model paths
 * against data_dir) and reads a file that sets every key; config_parse_size.
 */
#include "config.h"
#include "log.h" /* SL_LOG_* */
#include "testutil.h"

#include <sluice/errors.h>
#include <sys/stat.h>

#define MIB ((size_t) 1 << 20)

static char *
cat(const char *a, const char *b)
{
	char *s;
	CHECK(asprintf(&s, "%s%s", a, b) >= 0);
	return s;
}

static sl_config *
load_ok(const char *path)
{
	sl_config *cfg       = NULL;
	char       err[1024] = "";
	int        rc        = config_load(path, &cfg, err, sizeof(err));
	if (rc != SL_OK)
		fprintf(stderr, "config_load(%s): %d %s\n", path, rc, err);
	CHECK_EQ(rc, SL_OK);
	CHECK(cfg != NULL);
	return cfg;
}

/* dir: the config file's directory, absolute and normalised. */
static void
check_minimal(sl_config *cfg, const char *file, const char *dir)
{
	char *data = cat(dir, "/data");
	char *s;
	CHECK_STREQ(cfg->file, file);
	CHECK_STREQ(cfg->data_dir, data);
	CHECK_STREQ(cfg->plugin_dir, s = cat(dir, "/plugins"));
	free(s);
	CHECK_STREQ(cfg->store_path, s = cat(data, "/events"));
	free(s);
	CHECK(asprintf(&s, "ipc://%s/api.ipc", data) >= 0);
	CHECK_STREQ(cfg->api_url, s);
	free(s);
	CHECK(asprintf(&s, "ipc://%s/pub.ipc", data) >= 0);
	CHECK_STREQ(cfg->pub_url, s);
	free(s);
	CHECK_EQ(cfg->store_map_size, 1024 * MIB);
	CHECK(cfg->store_sync);
	CHECK_EQ(cfg->n_tenants, 1);
	CHECK_STREQ(cfg->tenants[0].id, "demo");
	CHECK_STREQ(cfg->tenants[0].rm_path, s = cat(data, "/tenants/demo"));
	free(s);
	CHECK_EQ(cfg->tenants[0].rm_map_size, 256 * MIB);
	CHECK_EQ(cfg->max_request_bytes, 4 * MIB);
	CHECK_EQ(cfg->max_events_per_commit, 10000);
	CHECK_EQ(cfg->max_read_events, 1000);
	CHECK_EQ(cfg->api_workers, 16);
	CHECK_EQ(cfg->api_slow_workers, 4);
	CHECK_EQ(cfg->api_queue, 64);
	CHECK_EQ(cfg->query_timeout_ms, 10000);
	CHECK_EQ(cfg->handler_timeout_ms, 30000);
	CHECK_EQ(cfg->shutdown_timeout_ms, 10000);
	CHECK_EQ(cfg->idle_timeout_ms, 600000);
	CHECK_EQ(cfg->max_connections, 1024);
	CHECK_EQ(cfg->checkpoint_batch, 16000);
	CHECK_EQ(cfg->log_level, SL_LOG_INFO);
	CHECK(cfg->hot_reload);
	CHECK_EQ(cfg->hot_reload_quiet_ms, 150);
	free(data);
}

static void
test_minimal(void)
{
	char *dir = cat(tu_tmpdir(), "/min");
	CHECK(mkdir(dir, 0755) == 0);
	char *file = cat(dir, "/resources.yaml");
	tu_write_file(file, "tenants:\n  - id: demo\n");

	sl_config *cfg = load_ok(file);
	check_minimal(cfg, file, dir);
	config_free(cfg);

	/* A relative file name resolves against the current directory, with
	 * "./" and "//" normalised away. */
	char *cwd = getcwd(NULL, 0);
	CHECK(cwd != NULL);
	CHECK(chdir(tu_tmpdir()) == 0);
	char *here = getcwd(NULL, 0), *abs = cat(here, "/min");
	cfg = load_ok("./min//./resources.yaml");
	check_minimal(cfg, "./min//./resources.yaml", abs);
	config_free(cfg);
	CHECK(chdir(dir) == 0);
	cfg = load_ok("resources.yaml");
	check_minimal(cfg, "resources.yaml", abs);
	config_free(cfg);
	CHECK(chdir(cwd) == 0);
	/* config_load only reads: no data directory appears. */
	struct stat st;
	char       *data = cat(dir, "/data");
	CHECK(stat(data, &st) == -1 && errno == ENOENT);
	free(data);
	free(here);
	free(abs);
	free(cwd);
	free(file);
	free(dir);
}

static const char full_yaml[] = "# every key set\n"
                                "data_dir: ./state/\n"
                                "plugin_dir: /opt/sluice//plugins/\n"
                                "hot_reload: false\n"
                                "hot_reload_quiet_ms: 20\n"
                                "log_level: debug\n"
                                "insecure: true\n"
                                "endpoints:\n"
                                "  api: tcp://127.0.0.1:5555\n"
                                "  pub: inproc://feed\n"
                                "event_store:\n"
                                "  path: log\n"
                                "  map_size: 2GiB\n"
                                "  sync: false\n"
                                "tenants:\n"
                                "  - id: demo\n"
                                "    read_models:\n"
                                "      path: /var/lib/rm/demo\n"
                                "      map_size: 64MiB\n"
                                "  - id: Other_1.x-y\n"
                                "    read_models:\n"
                                "      path: rm//other/.\n"
                                "      map_size: 1048576\n"
                                "  - id: third\n"
                                "limits:\n"
                                "  max_request_bytes: 64KiB\n"
                                "  max_events_per_commit: 500\n"
                                "  max_read_events: 100000\n"
                                "  api_workers: 1\n"
                                "  api_slow_workers: 2\n"
                                "  api_queue: 4096\n"
                                "  query_timeout_ms: 60000\n"
                                "  handler_timeout_ms: 300\n"
                                "  shutdown_timeout_ms: 2000\n"
                                "  idle_timeout_ms: 0\n"
                                "  max_connections: 65536\n"
                                "processing:\n"
                                "  batch: 250\n";

static void
test_full(void)
{
	char *dir = cat(tu_tmpdir(), "/full"), *s;
	CHECK(mkdir(dir, 0755) == 0);
	char *file = cat(dir, "/sluice.yaml");
	tu_write_file(file, full_yaml);
	sl_config *cfg  = load_ok(file);
	char      *data = cat(dir, "/state");
	CHECK_STREQ(cfg->data_dir, data);
	CHECK_STREQ(cfg->plugin_dir, "/opt/sluice/plugins");
	CHECK(!cfg->hot_reload);
	CHECK_EQ(cfg->hot_reload_quiet_ms, 20);
	CHECK_EQ(cfg->log_level, SL_LOG_DEBUG);
	CHECK_STREQ(cfg->api_url, "tcp://127.0.0.1:5555");
	CHECK_STREQ(cfg->pub_url, "inproc://feed");
	CHECK_STREQ(cfg->store_path, s = cat(data, "/log"));
	free(s);
	CHECK_EQ(cfg->store_map_size, 2048 * MIB);
	CHECK(!cfg->store_sync);
	CHECK_EQ(cfg->n_tenants, 3);
	CHECK_STREQ(cfg->tenants[0].id, "demo");
	CHECK_STREQ(cfg->tenants[0].rm_path, "/var/lib/rm/demo");
	CHECK_EQ(cfg->tenants[0].rm_map_size, 64 * MIB);
	CHECK_STREQ(cfg->tenants[1].id, "Other_1.x-y");
	CHECK_STREQ(cfg->tenants[1].rm_path, s = cat(data, "/rm/other"));
	free(s);
	CHECK_EQ(cfg->tenants[1].rm_map_size, MIB);
	CHECK_STREQ(cfg->tenants[2].id, "third");
	CHECK_STREQ(cfg->tenants[2].rm_path, s = cat(data, "/tenants/third"));
	free(s);
	CHECK_EQ(cfg->tenants[2].rm_map_size, 256 * MIB);
	CHECK_EQ(cfg->max_request_bytes, 64 * 1024);
	CHECK_EQ(cfg->max_events_per_commit, 500);
	CHECK_EQ(cfg->max_read_events, 100000);
	CHECK_EQ(cfg->api_workers, 1);
	CHECK_EQ(cfg->api_slow_workers, 2);
	CHECK_EQ(cfg->api_queue, 4096);
	CHECK_EQ(cfg->query_timeout_ms, 60000);
	CHECK_EQ(cfg->handler_timeout_ms, 300);
	CHECK_EQ(cfg->shutdown_timeout_ms, 2000);
	CHECK_EQ(cfg->idle_timeout_ms, 0);
	CHECK_EQ(cfg->max_connections, 65536);
	CHECK_EQ(cfg->checkpoint_batch, 250);
	config_free(cfg);
	free(data);
	free(file);
	free(dir);
}

/* The resources.yaml shipped in the repository loads. */
static void
test_shipped(void)
{
	sl_config *cfg = load_ok(SL_SOURCE_DIR "/resources.yaml");
	CHECK_STREQ(cfg->plugin_dir, SL_SOURCE_DIR "/build/plugins");
	CHECK_STREQ(cfg->data_dir, SL_SOURCE_DIR "/data");
	CHECK_EQ(cfg->n_tenants, 1);
	config_free(cfg);
	config_free(NULL);
}

static void
size_ok(const char *text, size_t want)
{
	size_t v = 0;
	if (config_parse_size(text, &v) != 0 || v != want) {
		fprintf(stderr, "config_parse_size(\"%s\") = %zu, want %zu\n",
		    text, v, want);
		exit(1);
	}
}

static void
size_bad(const char *text)
{
	size_t v = 12345;
	if (config_parse_size(text, &v) != -1 || v != 12345) {
		fprintf(stderr, "config_parse_size(\"%s\") accepted\n", text);
		exit(1);
	}
}

static void
test_parse_size(void)
{
	size_ok("4096", 4096);
	size_ok("0", 0);
	size_ok("64KiB", 64 * 1024);
	size_ok("64K", 64 * 1024);
	size_ok("1MiB", MIB);
	size_ok("10 MiB", 10 * MIB);
	size_ok("2GiB", 2048 * MIB);
	size_ok("3T", (size_t) 3 << 40);
	size_ok("18446744073709551615", SIZE_MAX);
	size_ok("16777215TiB", ((size_t) 16777215) << 40);
	size_bad("");
	size_bad("12XB");
	size_bad("-1");
	size_bad("+1");
	size_bad("18446744073709551616"); /* SIZE_MAX + 1 */
	size_bad("16777216TiB");          /* 2^64 */
	size_bad("1.5GiB");
	size_bad("KiB");
	size_bad("10 MB");
	size_bad("1kib");
	size_bad(" 1");
	size_bad("1 ");
	size_bad("1  KiB");
	size_bad("0x10");
	size_bad(NULL);
}

int
main(void)
{
	test_minimal();
	test_full();
	test_shipped();
	test_parse_size();
	printf("config_defaults_test OK\n");
	return 0;
}
