/*
 * TLS on the daemon's tcp endpoints (issue 18 item 2, docs/security.md):
 * a real sluiced with the API and the live feed on tls+tcp://127.0.0.1,
 * certificates made by openssl in the test (tls_testutil.h).
 *  1. verify_clients: optional. A client with the right CA commits, reads
 *     and gets a read model; a subscription follows the TLS feed live. A
 *     client with another CA, a wrong server name, no CA or a file that
 *     is not PEM is refused with a clear error, and the daemon keeps
 *     serving. A client certificate of the CA ("alice") is logged with
 *     its subject; one of another CA ("mallory") is let in unverified and
 *     logged as such.
 *  2. verify_clients: required, the daemon's key encrypted (with
 *     tls.key_password). A client without a certificate and one
 *     with mallory's are refused (the daemon logs why); alice's is
 *     accepted, served, and its subject is in the log; the daemon
 *     serves on after the refusals.
 *  3. The CLI's --tls-ca / --tls-cert / --tls-key / --tls-server-name
 *     and SLUICE_TLS_* variables against that daemon.
 *  4. auth.subjects: alice's certificate, without a token, is her
 *     credential (read: reads, not commits); mallory's or none is
 *     refused EACCES.
 */
#include <pthread.h>
#include <stdarg.h>

#include <sluice/client.h>
#include <sluice/subscribe.h>

#include "daemon_testutil.h"
#include "tls_testutil.h"

#define TENANT  "demo"
#define PROJ_ID "8a2f3c1e-5b7d-4e9a-9c11-2d4e6f8a0b13" /* account_details */

static char  dir[4096], cfgp[4200], logp[4200], url_unused[4200];
static char  pki[4200], api[128], pub[128];
static pid_t daemon_pid = -1;

static void
cleanup(void)
{
	dt_kill_and_reap(&daemon_pid);
}

static sl_tls_options
opts(const char *ca, const char *cert, const char *key)
{
	sl_tls_options o = {
		.ca_file   = ca != NULL ? tt_pki(ca) : NULL,
		.cert_file = cert != NULL ? tt_pki(cert) : NULL,
		.key_file  = key != NULL ? tt_pki(key) : NULL,
	};
	return o;
}

/* Start sluiced with the API and feed on TLS, clients verified as
 * verify says, its key encrypted (enc) or not; wait until a client with
 * the right CA is answered. */
static void
start_daemon_with(const char *verify, bool enc, const char *auth)
{
	char text[8192];
	snprintf(api, sizeof(api), "tls+tcp://127.0.0.1:%d", tt_free_port());
	snprintf(pub, sizeof(pub), "tls+tcp://127.0.0.1:%d", tt_free_port());
	size_t n = dt_config_head(
	    text, sizeof(text), dir, SL_PLUGIN_DIR, api, "64MiB");
	/* the feed too: the head put it on ipc */
	char *p = strstr(text, "  pub: ");
	CHECK(p != NULL);
	n = (size_t) (p - text);
	n += (size_t) snprintf(text + n, sizeof(text) - n,
	    "  pub: %s\n"
	    "event_store:\n  map_size: 64MiB\n  sync: false\n"
	    "tenants:\n  - id: " TENANT "\n"
	    "%s"
	    "tls:\n"
	    "  cert_file: %s\n"
	    "  key_file: %s\n"
	    "%s"
	    "  ca_file: %s\n"
	    "  verify_clients: %s\n",
	    pub, auth, tt_pki("server.crt"),
	    tt_pki(enc ? "server-enc.key" : "server.key"),
	    enc ? "  key_password: s3cret\n" : "", tt_pki("ca.crt"), verify);
	tu_write_file(cfgp, text);
	daemon_pid       = dt_daemon_spawn(cfgp, logp);
	sl_client     *c = NULL;
	sl_tls_options o = opts("ca.crt", "client.crt", "client.key");
	if (!dt_wait_answer_tls(api, &o, &c, 15000)) {
		dt_dump_file(logp, "sluiced log");
		CHECK(!"the daemon answers over TLS");
	}
	sl_client_close(c);
}

/* Without auth: (TLS alone; tests/auth_test.c has auth) */
static void
start_daemon(const char *verify, bool enc)
{
	start_daemon_with(verify, enc, "insecure: true\n");
}

static void
stop_daemon(void)
{
	CHECK(kill(daemon_pid, SIGTERM) == 0);
	int st;
	CHECK(dt_wait_exit(daemon_pid, 15000, &st));
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	daemon_pid = -1;
}

/* Whether the daemon's log has text (within ms: lines come from NNG's
 * callbacks, a moment after the client connected). */
static bool
log_has(const char *text, int ms)
{
	return dt_wait_file_has(logp, text, ms);
}

static int
open_with(const sl_tls_options *o, sl_client **c)
{
	return sl_client_open_tls(api, 5000, o, c);
}

static void
expect_status(sl_client *c)
{
	char *st = NULL;
	CHECK_EQ(sl_client_status(c, &st), SL_OK);
	CHECK(strstr(st, "tls+tcp://127.0.0.1") != NULL);
	sl_client_free(st);
}

/* ---- 1. the API and the feed over TLS, verify_clients: optional ---- */

static void
test_api_over_tls(void)
{
	sl_tls_options o = opts("ca.crt", NULL, NULL);
	sl_client     *c = NULL;
	CHECK_EQ(open_with(&o, &c), SL_OK);
	CHECK_EQ(tt_commit(c, TENANT, "acc-1", "DebitAccountOpened",
	             "{\"account_id\":\"acc-1\",\"name\":\"Everyday\"}"),
	    SL_OK);
	sl_read_result rr;
	CHECK_EQ(sl_client_read(c, 0, 10, &rr), SL_OK);
	CHECK_EQ(rr.n_events, 1);
	CHECK_STREQ(rr.events[0].type, "DebitAccountOpened");
	CHECK_STREQ(rr.events[0].stream, "acc-1");
	sl_read_result_free(&rr);
	/* the projection folds it a moment later */
	char   *state = NULL;
	bool    found = false;
	int64_t end   = dt_now_ms() + 10000;
	while (!found && dt_now_ms() < end) {
		CHECK_EQ(sl_client_get_one(
		             c, TENANT, PROJ_ID, "acc-1", &state, &found),
		    SL_OK);
		if (!found) {
			sl_client_free(state);
			dt_sleep_ms(20);
		}
	}
	CHECK(found);
	CHECK(strstr(state, "\"Everyday\"") != NULL);
	sl_client_free(state);
	/* no client certificate under optional: let in, logged as such */
	CHECK(log_has("no verified client certificate", 3000));
	sl_client_close(c);
}

typedef struct committer {
	sl_tls_options o;
	int            n;
} committer;

/* Commits n events, one every 50 ms, on a TLS client of its own. */
static void *
commit_later(void *arg)
{
	committer *cm = arg;
	sl_client *c  = NULL;
	CHECK_EQ(open_with(&cm->o, &c), SL_OK);
	dt_sleep_ms(300);
	for (int i = 0; i < cm->n; i++) {
		CHECK_EQ(tt_commit(c, TENANT, "acc-2", "DebitPerformed",
		             "{\"amount\":1}"),
		    SL_OK);
		dt_sleep_ms(50);
	}
	sl_client_close(c);
	return NULL;
}

static int
until_position(void *arg, const sl_read_event *ev)
{
	return ev->position >= *(uint64_t *) arg;
}

static void
test_feed_over_tls(void)
{
	/* with alice's certificate: the feed's connection is logged too */
	sl_tls_options     o = opts("ca.crt", "client.crt", "client.key");
	sl_client         *c = NULL;
	sl_subscribe_stats st;
	memset(&st, 0, sizeof(st));
	CHECK_EQ(open_with(&o, &c), SL_OK);
	committer cm = { .o = opts("ca.crt", NULL, NULL), .n = 20 };
	pthread_t t;
	CHECK(pthread_create(&t, NULL, commit_later, &cm) == 0);
	/* position 0 is acc-1's; the 20 new ones are 1..20 */
	uint64_t          last = 20;
	sl_subscribe_opts so   = { .from = 0, .idle_ms = 10000, .stats = &st };
	int rc = sl_client_subscribe(c, &so, until_position, &last);
	pthread_join(t, NULL);
	if (rc != SL_OK)
		fprintf(stderr, "subscribe: %s\n", sl_client_last_error(c));
	CHECK_EQ(rc, SL_OK);
	CHECK_EQ(st.delivered, 21);
	/* the feed itself carried events, over TLS */
	CHECK(st.from_live > 0);
	/* the feed's TLS connection, with alice's certificate */
	CHECK(log_has("publisher: TLS connection", 3000));
	CHECK(log_has("client certificate verified, subject \"O=Sluice "
	              "tests, CN=alice\"",
	    3000));
	sl_client_close(c);
}

static void
test_refusals(void)
{
	sl_client     *c = NULL, *good = NULL;
	sl_tls_options o = opts("ca.crt", NULL, NULL);
	CHECK_EQ(open_with(&o, &good), SL_OK);

	/* another CA: the daemon's certificate is not trusted */
	o = opts("other-ca.crt", NULL, NULL);
	CHECK_EQ(open_with(&o, &c), SL_ENET);
	CHECK(c == NULL);
	fprintf(stderr, "wrong CA: %s\n", sl_client_open_error());
	CHECK(strstr(sl_client_open_error(), "TLS") != NULL);

	/* the right CA, but a name the certificate does not carry */
	o             = opts("ca.crt", NULL, NULL);
	o.server_name = "db.example.org";
	CHECK_EQ(open_with(&o, &c), SL_ENET);
	CHECK(strstr(sl_client_open_error(), "TLS") != NULL);
	/* ... and the name it does carry, asked for by name */
	o.server_name = "localhost";
	CHECK_EQ(open_with(&o, &c), SL_OK);
	sl_client_close(c);
	c = NULL;

	/* no CA at all: refused before any connection */
	CHECK_EQ(open_with(NULL, &c), SL_EINVAL);
	CHECK(strstr(sl_client_open_error(), "CA") != NULL);
	o = opts(NULL, NULL, NULL);
	CHECK_EQ(open_with(&o, &c), SL_EINVAL);

	/* files that are missing or not PEM, named */
	o = opts("nothere.crt", NULL, NULL);
	CHECK_EQ(open_with(&o, &c), SL_EINVAL);
	CHECK(strstr(sl_client_open_error(), "nothere.crt") != NULL);
	o = opts("bad.pem", NULL, NULL);
	CHECK_EQ(open_with(&o, &c), SL_EINVAL);
	CHECK(strstr(sl_client_open_error(), "bad.pem") != NULL);
	CHECK(strstr(sl_client_open_error(), "not a PEM certificate") != NULL);
	/* a certificate with another's key */
	o = opts("ca.crt", "client.crt", "other.key");
	CHECK_EQ(open_with(&o, &c), SL_EINVAL);
	CHECK(strstr(sl_client_open_error(), "not the key of") != NULL);
	/* a certificate without its key */
	o = opts("ca.crt", "client.crt", NULL);
	CHECK_EQ(open_with(&o, &c), SL_EINVAL);

	/* mallory's certificate (another CA) under optional: let in, not
	 * taken as verified */
	o = opts("ca.crt", "other.crt", "other.key");
	CHECK_EQ(open_with(&o, &c), SL_OK);
	expect_status(c);
	sl_client_close(c);
	CHECK(!log_has("CN=mallory", 500));

	/* the daemon served on through all of it */
	expect_status(good);
	CHECK_EQ(tt_commit(good, TENANT, "acc-3", "DebitAccountOpened",
	             "{\"account_id\":\"acc-3\"}"),
	    SL_OK);
	sl_client_close(good);
}

/* ---- 2. mutual TLS required ---- */

static void
test_mutual_required(void)
{
	sl_client     *c = NULL;
	sl_tls_options o = opts("ca.crt", NULL, NULL);
	/* no certificate: the handshake fails */
	CHECK_EQ(open_with(&o, &c), SL_ENET);
	CHECK(c == NULL);
	fprintf(stderr, "no client certificate: %s\n", sl_client_open_error());
	CHECK(strstr(sl_client_open_error(), "TLS") != NULL);
	/* ... and the daemon says why */
	CHECK(log_has("tls: a client's TLS handshake failed: SSL - No client "
	              "certification received",
	    3000));
	/* a certificate of another CA */
	o = opts("ca.crt", "other.crt", "other.key");
	CHECK_EQ(open_with(&o, &c), SL_ENET);
	CHECK(c == NULL);
	CHECK(log_has("handshake failed: X509 - Certificate verification "
	              "failed",
	    3000));
	/* alice's: in, served, and named in the log */
	o = opts("ca.crt", "client.crt", "client.key");
	CHECK_EQ(open_with(&o, &c), SL_OK);
	expect_status(c);
	CHECK_EQ(tt_commit(c, TENANT, "acc-4", "DebitAccountOpened",
	             "{\"account_id\":\"acc-4\"}"),
	    SL_OK);
	CHECK(log_has("client certificate verified, subject \"O=Sluice "
	              "tests, CN=alice\"",
	    3000));
	/* the log has no line of a verified mallory */
	CHECK(!log_has("CN=mallory", 0));
	/* the events of both daemons' runs are there, nothing more */
	sl_read_result rr;
	CHECK_EQ(sl_client_read(c, 0, 100, &rr), SL_OK);
	CHECK_EQ(rr.n_events, 23);
	sl_read_result_free(&rr);
	sl_client_close(c);
}

/* ---- 3. the CLI ---- */

/* Run the CLI with args (NULL-terminated) and env (NAME=VALUE strings,
 * NULL-terminated, or NULL) and no other SLUICE_ variable; its stdout and
 * stderr in dir/cli.out. @return its exit status. */
static int
cli(const char *const *env, ...)
{
	const char *argv[32] = { "sluice" };
	int         n        = 1;
	va_list     ap;
	va_start(ap, env);
	const char *a;
	while ((a = va_arg(ap, const char *)) != NULL && n < 31)
		argv[n++] = a;
	va_end(ap);
	argv[n] = NULL;
	char out[4300];
	snprintf(out, sizeof(out), "%s/cli.out", dir);
	pid_t parent = getpid(), pid;
	fflush(NULL);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		dt_child_setup(parent);
		int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		unsetenv("SLUICE_URL");
		unsetenv("SLUICE_TLS_CA");
		unsetenv("SLUICE_TLS_CERT");
		unsetenv("SLUICE_TLS_KEY");
		unsetenv("SLUICE_TLS_SERVER_NAME");
		for (int i = 0; env != NULL && env[i] != NULL; i++)
			putenv((char *) env[i]);
		execv(SL_BUILD_DIR "/sluice", (char *const *) argv);
		_exit(127);
	}
	int st;
	CHECK(dt_waitpid(pid, &st, 0) == pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static bool
cli_said(const char *text)
{
	char out[4300];
	snprintf(out, sizeof(out), "%s/cli.out", dir);
	size_t len;
	char  *s  = dt_slurp(out, &len);
	bool   ok = s != NULL && strstr(s, text) != NULL;
	if (!ok)
		fprintf(stderr, "cli said: %s\n", s != NULL ? s : "(nothing)");
	free(s);
	return ok;
}

static void
test_cli(void)
{
	static char env_url[256], env_ca[4400], env_cert[4400], env_key[4400];
	/* flags: alice's certificate against required */
	CHECK_EQ(cli(NULL, "--url", api, "--tls-ca", tt_pki("ca.crt"),
	             "--tls-cert", tt_pki("client.crt"), "--tls-key",
	             tt_pki("client.key"), "status", NULL),
	    0);
	CHECK(cli_said("tls+tcp://"));
	/* options after the command too, and the server's name given */
	CHECK_EQ(
	    cli(NULL, "--url", api, "get-one", "--tenant", TENANT,
	        "--projection", PROJ_ID, "acc-4", "--tls-ca", tt_pki("ca.crt"),
	        "--tls-cert", tt_pki("client.crt"), "--tls-key",
	        tt_pki("client.key"), "--tls-server-name", "localhost", NULL),
	    0);
	CHECK(cli_said("acc-4"));
	/* no certificate: cannot reach it (3), saying why */
	CHECK_EQ(cli(NULL, "--url", api, "--tls-ca", tt_pki("ca.crt"),
	             "status", NULL),
	    3);
	CHECK(cli_said("TLS"));
	/* no CA: a usage error (1) */
	CHECK_EQ(cli(NULL, "--url", api, "status", NULL), 1);
	CHECK(cli_said("CA"));
	/* a key without its certificate */
	CHECK_EQ(cli(NULL, "--url", api, "--tls-ca", tt_pki("ca.crt"),
	             "--tls-key", tt_pki("client.key"), "status", NULL),
	    1);
	/* the environment stands in for the flags */
	snprintf(env_url, sizeof(env_url), "SLUICE_URL=%s", api);
	snprintf(env_ca, sizeof(env_ca), "SLUICE_TLS_CA=%s", tt_pki("ca.crt"));
	snprintf(env_cert, sizeof(env_cert), "SLUICE_TLS_CERT=%s",
	    tt_pki("client.crt"));
	snprintf(env_key, sizeof(env_key), "SLUICE_TLS_KEY=%s",
	    tt_pki("client.key"));
	const char *env[] = { env_url, env_ca, env_cert, env_key, NULL };
	CHECK_EQ(cli(env, "status", NULL), 0);
	CHECK(cli_said("tls+tcp://"));
	/* ... and a flag wins over the environment */
	CHECK_EQ(
	    cli(env, "--tls-ca", tt_pki("other-ca.crt"), "status", NULL), 3);
}

/* ---- 4. auth.subjects: the verified certificate is the credential ---- */

static void
test_subjects(void)
{
	sl_client     *c  = NULL;
	sl_tls_options o  = opts("ca.crt", "client.crt", "client.key");
	char          *st = NULL;
	/* alice, no token: her subject's credential (read only) */
	CHECK_EQ(open_with(&o, &c), SL_OK);
	CHECK_EQ(sl_client_status(c, &st), SL_OK);
	sl_client_free(st);
	sl_read_result rr;
	CHECK_EQ(sl_client_read_stream(c, TENANT, "acc-1", 0, 10, &rr), SL_OK);
	CHECK_EQ(rr.n_events, 1);
	sl_read_result_free(&rr);
	CHECK_EQ(tt_commit(c, TENANT, "acc-9", "DebitAccountOpened",
	             "{\"account_id\":\"acc-9\"}"),
	    SL_EACCES);
	CHECK(strstr(sl_client_last_error(c),
	          "credential 'alice' lacks role "
	          "'write'")
	    != NULL);
	sl_client_close(c);
	/* mallory's certificate (let in under optional, not verified) and
	 * none at all: no credential */
	o = opts("ca.crt", "other.crt", "other.key");
	CHECK_EQ(open_with(&o, &c), SL_OK);
	CHECK_EQ(sl_client_status(c, &st), SL_EACCES);
	CHECK(strstr(sl_client_last_error(c),
	          "no client certificate the CA "
	          "verified")
	    != NULL);
	sl_client_close(c);
	o = opts("ca.crt", NULL, NULL);
	CHECK_EQ(open_with(&o, &c), SL_OK);
	CHECK_EQ(sl_client_status(c, &st), SL_EACCES);
	sl_client_close(c);
}

int
main(void)
{
	atexit(cleanup);
	dt_test_paths(dir, cfgp, logp, url_unused);
	tt_make_pki(dir, pki);

	start_daemon("optional", false);
	test_api_over_tls();
	test_feed_over_tls();
	test_refusals();
	stop_daemon();

	start_daemon("required", true);
	test_mutual_required();
	test_cli();
	stop_daemon();

	start_daemon_with("optional", false,
	    "auth:\n  subjects:\n"
	    "    - name: alice\n"
	    "      subject: \"O=Sluice tests, CN=alice\"\n"
	    "      tenants: [" TENANT "]\n"
	    "      roles: [read]\n");
	test_subjects();
	stop_daemon();
	printf("tls_api_test: ok\n");
	return 0;
}
