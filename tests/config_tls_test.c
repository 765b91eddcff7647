/*
 * resources.yaml's tls: section (docs/security.md) and tls+tcp://
 * endpoints: config_load checks every file the daemon will load (there,
 * readable, PEM that parses, the key the certificate's and not readable by
 * every user, the password right) and refuses each mistake with the file,
 * line:column and key named. Certificates made by openssl in the test.
 */
#include <sys/stat.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>

#include "config_testutil.h"
#include "tls_testutil.h"

static char pki[4200];

/* "tls:\n  cert_file: pki/server.crt\n  key_file: pki/server.key\n" with
 * extra lines after it, paths relative to the fixture's directory. */
#define TLS_OK                                                                \
	"tls:\n  cert_file: pki/server.crt\n  key_file: pki/server.key\n"

static void
test_endpoints_need_tls(void)
{
	ct_expect_err("endpoints:\n  api: tls+tcp://127.0.0.1:5555\n"
	              "tenants: [{id: demo}]\n",
	    "2:8",
	    "key 'endpoints.api': tls+tcp://127.0.0.1:5555 needs a 'tls:' "
	    "section (cert_file, key_file)");
	ct_expect_err("tenants: [{id: demo}]\nendpoints:\n"
	              "  pub: tls+tcp://127.0.0.1:5556\n",
	    "3:8", "key 'endpoints.pub': tls+tcp://127.0.0.1:5556 needs a");
	ct_expect_err("tenants: [{id: demo}]\nremote:\n"
	              "  endpoint: tls+tcp://127.0.0.1:0\n",
	    "3:13", "key 'remote.endpoint': tls+tcp://127.0.0.1:0 needs a");
	/* a registration's port is chosen per registration */
	ct_expect_err("tenants: [{id: demo}]\n" TLS_OK "remote:\n"
	              "  endpoint: tls+tcp://127.0.0.1:7000\n",
	    "6:13", "must have port 0");
	ct_expect_err("tenants: [{id: demo}]\nendpoints:\n"
	              "  api: tls+tcp://\n",
	    "3:8", "key 'endpoints.api': 'tls+tcp://' has no address");
}

static void
test_loads(void)
{
	/* a tls: section without a tls+tcp:// endpoint is fine */
	sl_config *cfg = ct_load_ok("tenants: [{id: demo}]\n" TLS_OK);
	char       want[4400];
	snprintf(want, sizeof(want), "%s/server.crt", pki);
	CHECK_STREQ(cfg->tls.cert_file, want);
	CHECK(cfg->tls.ca_file == NULL);
	CHECK_EQ(cfg->tls.verify, NNG_TLS_AUTH_MODE_NONE);
	config_free(cfg);

	/* every endpoint on TLS; a CA makes client certificates required */
	cfg = ct_load_ok("tenants: [{id: demo}]\ninsecure: true\n"
	                 "endpoints:\n"
	                 "  api: tls+tcp://127.0.0.1:5555\n"
	                 "  pub: tls+tcp://127.0.0.1:5556\n"
	                 "remote:\n  endpoint: tls+tcp://127.0.0.1:0\n" TLS_OK
	                 "  ca_file: pki/ca.crt\n");
	CHECK_STREQ(cfg->api_url, "tls+tcp://127.0.0.1:5555");
	CHECK_STREQ(cfg->remote_url, "tls+tcp://127.0.0.1:0");
	CHECK_EQ(cfg->tls.verify, NNG_TLS_AUTH_MODE_REQUIRED);
	config_free(cfg);

	cfg = ct_load_ok(
	    "tenants: [{id: demo}]\n" TLS_OK "  ca_file: pki/ca.crt\n"
	    "  verify_clients: optional\n");
	CHECK_EQ(cfg->tls.verify, NNG_TLS_AUTH_MODE_OPTIONAL);
	config_free(cfg);

	/* an encrypted key with its password */
	cfg = ct_load_ok("tenants: [{id: demo}]\ntls:\n"
	                 "  cert_file: pki/server.crt\n"
	                 "  key_file: pki/server-enc.key\n"
	                 "  key_password: s3cret\n");
	CHECK_STREQ(cfg->tls.key_password, "s3cret");
	config_free(cfg);
}

static void
test_section(void)
{
	/* blamed on the section's first value */
	ct_expect_err(
	    "tenants: [{id: demo}]\ntls:\n  key_file: pki/server.key\n",
	    "3:13", "missing required key 'tls.cert_file'");
	ct_expect_err("tenants: [{id: demo}]\ntls:\n"
	              "  cert_file: pki/server.crt\n",
	    "3:14", "missing required key 'tls.key_file'");
	ct_expect_err(
	    "tenants: [{id: demo}]\n" TLS_OK "  verify_clients: yes\n", "5:19",
	    "key 'tls.verify_clients': expected one of none, optional, "
	    "required, got 'yes'");
	ct_expect_err("tenants: [{id: demo}]\n" TLS_OK
	              "  verify_clients: required\n",
	    "5:19", "key 'tls.verify_clients': required needs 'tls.ca_file'");
	ct_expect_err("tenants: [{id: demo}]\n" TLS_OK "  cipher: rc4\n",
	    "5:3", "unknown key 'tls.cipher'");
	ct_expect_err("tenants: [{id: demo}]\ntls: pki/server.crt\n", "2:6",
	    "key 'tls': expected a mapping");
}

static void
test_files(void)
{
	char dirpath[4400], cmd[9000];
	ct_expect_err("tenants: [{id: demo}]\ntls:\n"
	              "  cert_file: pki/nothere.crt\n"
	              "  key_file: pki/server.key\n",
	    "3:14", "key 'tls.cert_file': cannot open");
	ct_expect_err("tenants: [{id: demo}]\ntls:\n"
	              "  cert_file: pki/nothere.crt\n"
	              "  key_file: pki/server.key\n",
	    "3:14", "nothere.crt: No such file or directory");
	/* a directory */
	snprintf(dirpath, sizeof(dirpath), "%s/adir", pki);
	CHECK(mkdir(dirpath, 0700) == 0);
	ct_expect_err("tenants: [{id: demo}]\ntls:\n"
	              "  cert_file: pki/adir\n  key_file: pki/server.key\n",
	    "3:14", "adir: not a regular file");
	/* not PEM, and PEM that does not parse */
	ct_expect_err("tenants: [{id: demo}]\ntls:\n"
	              "  cert_file: pki/server.ext\n"
	              "  key_file: pki/server.key\n",
	    "3:14", "server.ext: not a PEM file");
	ct_expect_err("tenants: [{id: demo}]\ntls:\n"
	              "  cert_file: pki/bad.pem\n  key_file: pki/server.key\n",
	    "3:14", "key 'tls.cert_file': ");
	ct_expect_err("tenants: [{id: demo}]\ntls:\n"
	              "  cert_file: pki/bad.pem\n  key_file: pki/server.key\n",
	    "3:14", "bad.pem: not a PEM certificate");
	/* a certificate where the key should be */
	ct_expect_err("tenants: [{id: demo}]\ntls:\n"
	              "  cert_file: pki/server.crt\n"
	              "  key_file: pki/client.crt\n",
	    "4:13", "client.crt: not a PEM private key");
	/* another's key */
	ct_expect_err("tenants: [{id: demo}]\ntls:\n"
	              "  cert_file: pki/server.crt\n"
	              "  key_file: pki/client.key\n",
	    "4:13", "client.key is not the key of the certificate");
	/* the CA */
	ct_expect_err("tenants: [{id: demo}]\n" TLS_OK
	              "  ca_file: pki/bad.pem\n",
	    "5:12", "key 'tls.ca_file': ");
	ct_expect_err("tenants: [{id: demo}]\n" TLS_OK
	              "  ca_file: pki/nothere.crt\n",
	    "5:12", "cannot open");

	/* an encrypted key: no password, a wrong one */
	ct_expect_err("tenants: [{id: demo}]\ntls:\n"
	              "  cert_file: pki/server.crt\n"
	              "  key_file: pki/server-enc.key\n",
	    "4:13", "server-enc.key is encrypted: a password is needed");
	ct_expect_err("tenants: [{id: demo}]\ntls:\n"
	              "  cert_file: pki/server.crt\n"
	              "  key_file: pki/server-enc.key\n"
	              "  key_password: guess\n",
	    "5:17", "key 'tls.key_password': the password does not open");

	/* OpenSSL 3's default encryption: named as what mbedtls lacks */
	ct_expect_err("tenants: [{id: demo}]\ntls:\n"
	              "  cert_file: pki/server.crt\n"
	              "  key_file: pki/server-sha256.key\n"
	              "  key_password: s3cret\n",
	    "4:13", "traditional encrypted PEM key ('openssl ec -aes256'");

	/* a key every user may read: refused; the group may */
	snprintf(cmd, sizeof(cmd), "%s/server.key", pki);
	CHECK(chmod(cmd, 0644) == 0);
	ct_expect_err("tenants: [{id: demo}]\n" TLS_OK, "4:13",
	    "server.key is readable by every user (mode 0644): chmod o-r");
	CHECK(chmod(cmd, 0640) == 0);
	config_free(ct_load_ok("tenants: [{id: demo}]\n" TLS_OK));
	CHECK(chmod(cmd, 0600) == 0);

	/* unreadable (root reads whatever the mode) */
	if (geteuid() != 0) {
		snprintf(cmd, sizeof(cmd), "%s/server.crt", pki);
		CHECK(chmod(cmd, 0) == 0);
		ct_expect_err("tenants: [{id: demo}]\n" TLS_OK, "3:14",
		    "server.crt: Permission denied");
		CHECK(chmod(cmd, 0600) == 0);
	} else {
		fprintf(stderr,
		    "config_tls_test: run as root: the "
		    "unreadable file case is left out\n");
	}
}

/* endpoints.feeds: a tenant's own feed, admitted by TLS subject (auth
 * on, tls+tcp://, a CA to verify clients with). */
#define FEEDS_BASE                                                            \
	"tenants: [{id: t1}, {id: t2}]\n" TLS_OK "  ca_file: pki/ca.crt\n"    \
	"auth:\n  subjects:\n    - {name: a, subject: \"CN=a\", roles: "      \
	"[read], tenants: [t1]}\n"

static void
test_feeds(void)
{
	sl_config *cfg = ct_load_ok(FEEDS_BASE
	    "endpoints:\n  feeds:\n"
	    "    - {tenant: t1, url: \"tls+tcp://127.0.0.1:7001\"}\n"
	    "    - {tenant: t2, url: \"tls+tcp://127.0.0.1:7002\"}\n");
	CHECK_EQ(cfg->n_feeds, 2);
	CHECK_STREQ(cfg->feeds[0].tenant, "t1");
	CHECK_STREQ(cfg->feeds[1].url, "tls+tcp://127.0.0.1:7002");
	config_free(cfg);
	/* under auth a registration's client proves it registered (hello):
	 * on tls+tcp:// that needs no insecure: true */
	cfg = ct_load_ok(
	    FEEDS_BASE "remote:\n  endpoint: tls+tcp://127.0.0.1:0\n");
	config_free(cfg);
	ct_expect_err("tenants: [{id: t1}]\n" TLS_OK "remote:\n"
	              "  endpoint: tls+tcp://127.0.0.1:0\n",
	    "6:13", "without 'auth:' no client proves it registered");
	ct_expect_err("tenants: [{id: t1}]\n" TLS_OK "  ca_file: pki/ca.crt\n"
	              "endpoints:\n  feeds:\n"
	              "    - {tenant: t1, url: tls+tcp://127.0.0.1:7001}\n",
	    "8:7",
	    "key 'endpoints.feeds[0]': a tenant's feed admits "
	    "connections by their credential: it needs an 'auth:'");
	ct_expect_err(FEEDS_BASE "endpoints:\n  feeds:\n"
	                         "    - {tenant: t3, url: tls+tcp://h:1}\n",
	    "11:16", "key 'endpoints.feeds[0].tenant': 't3' is not a tenant");
	ct_expect_err(FEEDS_BASE "endpoints:\n  feeds:\n"
	                         "    - {tenant: t1, url: tcp://h:1}\n",
	    "11:25",
	    "key 'endpoints.feeds[0].url': tcp://h:1: a tenant's "
	    "feed admits a connection by its verified TLS client "
	    "certificate");
	ct_expect_err(FEEDS_BASE "endpoints:\n  feeds:\n"
	                         "    - {tenant: t1}\n",
	    "11:7", "missing required key 'endpoints.feeds[0].url'");
	ct_expect_err(FEEDS_BASE "endpoints:\n  feeds:\n"
	                         "    - {tenant: t1, url: tls+tcp://h:1}\n"
	                         "    - {tenant: t1, url: tls+tcp://h:2}\n",
	    "12:16", "tenant 't1' has a feed already (endpoints.feeds[0])");
	ct_expect_err(FEEDS_BASE "endpoints:\n  feeds:\n"
	                         "    - {tenant: t1, url: tls+tcp://h:1}\n"
	                         "    - {tenant: t2, url: tls+tcp://h:1}\n",
	    "12:25", "same address as endpoints.feeds[0]");
	ct_expect_err(FEEDS_BASE
	    "endpoints:\n  feeds:\n"
	    "    - {tenant: t1, url: tls+tcp://h:1, x: 1}\n",
	    "11:40", "unknown key 'endpoints.feeds[0].x'");
	/* no CA: no certificate can be verified */
	ct_expect_err("tenants: [{id: t1}]\n" TLS_OK
	              "auth:\n  subjects:\n    - {name: a, subject: \"CN=a\", "
	              "roles: [read], tenants: [t1]}\n"
	              "endpoints:\n  feeds:\n"
	              "    - {tenant: t1, url: tls+tcp://127.0.0.1:7001}\n",
	    "10:25", "must be tls+tcp://, with tls.ca_file");
}

int
main(void)
{
	tt_make_pki(tu_tmpdir(), pki);
	test_endpoints_need_tls();
	test_loads();
	test_section();
	test_files();
	test_feeds();
	printf("config_tls_test: %d fixtures OK\n", ct_n_fixtures);
	return 0;
}
