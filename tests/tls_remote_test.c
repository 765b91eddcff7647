/*
 * Remote processors over TLS (issue 18 item 2, docs/security.md): sluiced
 * with its API and remote.endpoint on tls+tcp://127.0.0.1, client
 * certificates required. Certificates made by openssl in the test.
 *  1. A remote projection of the C library (sl_remote_options.tls with
 *     alice's certificate) registers, dials its registration's TLS port
 *     and folds the events: its read models are answered; the daemon's log
 *     names alice on the API and on the registration's connection.
 *  2. The same library with another CA's certificate (mallory) cannot
 *     register (ENET, saying TLS), and without TLS options for a
 *     tls+tcp:// endpoint is refused at once (EINVAL); the daemon serves on.
 *  3. The C example (remote_account_details --tls-ca/--tls-cert/--tls-key)
 *     and the Python client (client/python/remote_account_details.py, run by
 *     Debian's python3 with --tls-ca/--tls-cert/--tls-key) registers the
 *     Account Details projection over TLS and its read models appear.
 */
#include <sluice/client.h>
#include <sluice/remote.h>

#include "daemon_testutil.h"
#include "tls_testutil.h"

#define TENANT "demo"
#define C_ID   "3c1d9e0a-6b2f-4a7d-8e5c-9f0a1b2c3d4e"
#define PY_ID  "5b0de2a4-7c1e-4f59-9a3d-2e8c4b6f1a07" /* the example's */
#define EX_ID  "c5a0e7d2-4b1f-4c3e-8d2a-6f9b0e1d2c34" /* the C example's */
#define SCRIPT SL_SOURCE_DIR "/client/python/remote_account_details.py"

static char  dir[4096], cfgp[4200], logp[4200], url_unused[4200];
static char  pki[4200], api[128], pylog[4300];
static pid_t daemon_pid = -1, py_pid = -1;

static void
cleanup(void)
{
	dt_kill_and_reap(&py_pid);
	dt_kill_and_reap(&daemon_pid);
}

static sl_tls_options
alice(void)
{
	sl_tls_options o = { .ca_file = tt_pki("ca.crt"),
		.cert_file            = tt_pki("client.crt"),
		.key_file             = tt_pki("client.key") };
	return o;
}

static void
start_daemon(void)
{
	char text[8192];
	snprintf(api, sizeof(api), "tls+tcp://127.0.0.1:%d", tt_free_port());
	size_t n = dt_config_head(
	    text, sizeof(text), dir, SL_PLUGIN_DIR, api, "64MiB");
	snprintf(text + n, sizeof(text) - n,
	    "tenants:\n  - id: " TENANT "\n"
	    "remote:\n  endpoint: tls+tcp://127.0.0.1:0\n"
	    /* no auth: here (TLS alone); a tcp registration socket needs
	     * it anyway (docs/security.md) */
	    "insecure: true\n"
	    "tls:\n"
	    "  cert_file: %s\n  key_file: %s\n  ca_file: %s\n"
	    "  verify_clients: required\n",
	    tt_pki("server.crt"), tt_pki("server.key"), tt_pki("ca.crt"));
	tu_write_file(cfgp, text);
	daemon_pid       = dt_daemon_spawn(cfgp, logp);
	sl_client     *c = NULL;
	sl_tls_options o = alice();
	if (!dt_wait_answer_tls(api, &o, &c, 15000)) {
		dt_dump_file(logp, "sluiced log");
		CHECK(!"the daemon answers over TLS");
	}
	sl_client_close(c);
}

/* get_one until the state holds want (ms at most). */
static bool
wait_state(
    sl_client *c, const char *proj, const char *key, const char *want, int ms)
{
	int64_t end = dt_now_ms() + ms;
	for (;;) {
		char *state = NULL;
		bool  found = false;
		/* ENOTFOUND: the projection is not registered yet */
		int rc
		    = sl_client_get_one(c, TENANT, proj, key, &state, &found);
		CHECK(rc == SL_OK || rc == SL_ENOTFOUND);
		bool ok = rc == SL_OK && found && strstr(state, want) != NULL;
		if (!ok && dt_now_ms() > end)
			fprintf(stderr, "%s %s: %s\n", proj, key,
			    state != NULL ? state : "(none)");
		sl_client_free(state);
		if (ok)
			return true;
		if (dt_now_ms() > end)
			return false;
		dt_sleep_ms(50);
	}
}

/* The C remote projection: counts each stream's Deposited events. */
static sl_remote_result
count_deposits(void *user, sl_remote_call *call)
{
	int64_t n = 0;
	(void) user;
	sl_remote_state_i64(call, "deposits", &n);
	sl_remote_set_i64(call, "deposits", n + 1);
	return SL_REMOTE_REPLACE;
}

static const sl_remote_selector c_selectors[]
    = { { "Deposited", SL_REMOTE_KEY_EVENT_SOURCE, NULL } };

static sl_remote_projection
c_projection(void)
{
	sl_remote_projection p = { .id = C_ID,
		.name                  = "tls_deposits",
		.version               = 1,
		.initial_state_json    = "{\"deposits\":0}",
		.selectors             = c_selectors,
		.n_selectors           = 1,
		.on                    = count_deposits };
	return p;
}

static void
test_c_remote(sl_client *c)
{
	sl_tls_options       o   = alice();
	sl_remote_options    ro  = { .api_timeout_ms = 5000, .tls = &o };
	sl_remote_projection def = c_projection();
	sl_remote           *r   = NULL;
	int rc = sl_remote_register_projection(api, &def, &ro, &r);
	if (rc != SL_OK)
		fprintf(stderr, "register: %s\n", sl_remote_open_error());
	CHECK_EQ(rc, SL_OK);
	CHECK_EQ(sl_remote_start(r), SL_OK);
	sl_remote_stats st;
	sl_remote_get_stats(r, &st);
	CHECK(strncmp(st.url, "tls+tcp://127.0.0.1:", 20) == 0);
	for (int i = 0; i < 3; i++)
		CHECK_EQ(tt_commit(c, TENANT, "acc-1", "Deposited",
		             "{\"amount\":5}"),
		    SL_OK);
	CHECK(wait_state(c, C_ID, "acc-1", "\"deposits\":3", 15000));
	/* the registration's connection, named in the log */
	CHECK(dt_wait_file_has(logp, "remote: TLS connection", 3000));
	CHECK(dt_wait_file_has(logp,
	    "client certificate verified, subject \"O=Sluice tests, "
	    "CN=alice\"",
	    0));
	sl_remote_close(r);
}

static void
test_c_refused(sl_client *c)
{
	sl_tls_options       o   = { .ca_file = tt_pki("ca.crt"),
		        .cert_file            = tt_pki("other.crt"),
		        .key_file             = tt_pki("other.key") };
	sl_remote_options    ro  = { .api_timeout_ms = 2000, .tls = &o };
	sl_remote_projection def = c_projection();
	sl_remote           *r   = NULL;
	CHECK_EQ(sl_remote_register_projection(api, &def, &ro, &r), SL_ENET);
	CHECK(r == NULL);
	fprintf(stderr, "mallory: %s\n", sl_remote_open_error());
	CHECK(strstr(sl_remote_open_error(), "TLS") != NULL);
	ro.tls = NULL;
	CHECK_EQ(sl_remote_register_projection(api, &def, &ro, &r), SL_EINVAL);
	CHECK(strstr(sl_remote_open_error(), "CA") != NULL);
	/* served on */
	CHECK_EQ(tt_commit(c, TENANT, "acc-1", "Deposited", "{\"amount\":5}"),
	    SL_OK);
	char *st = NULL;
	CHECK_EQ(sl_client_status(c, &st), SL_OK);
	sl_client_free(st);
}

/* Run an Account Details example (the C one, or python's with
 * python3 != NULL) with alice's certificate until acc-7's read model of
 * projection id is there, then SIGTERM it (status 0). */
static void
run_example(
    sl_client *c, const char *python3, const char *prog, const char *id)
{
	pid_t parent = getpid();
	int   fd = open(pylog, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	CHECK(fd >= 0);
	fflush(NULL);
	py_pid = fork();
	CHECK(py_pid >= 0);
	if (py_pid == 0) {
		dt_child_setup(parent);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		const char *argv[] = { python3 != NULL ? python3 : prog, prog,
			"--url", api, "--tls-ca", tt_pki("ca.crt"),
			"--tls-cert", tt_pki("client.crt"), "--tls-key",
			tt_pki("client.key"), NULL };
		execv(argv[0],
		    (char *const *) (python3 != NULL ? argv : argv + 1));
		_exit(127);
	}
	close(fd);
	if (!wait_state(c, id, "acc-7", "\"balance\":40", 20000)) {
		dt_dump_file(pylog, prog);
		CHECK(!"the example's read model");
	}
	CHECK(wait_state(c, id, "acc-7", "\"Travel\"", 0));
	/* SIGTERM stops it with status 0 */
	CHECK(kill(py_pid, SIGTERM) == 0);
	int st;
	CHECK(dt_wait_exit(py_pid, 10000, &st));
	py_pid = -1;
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void
test_examples(sl_client *c)
{
	pid_t parent = getpid();
	int   st;
	snprintf(pylog, sizeof(pylog), "%s/example.log", dir);
	CHECK_EQ(tt_commit(c, TENANT, "acc-7", "DebitAccountOpened",
	             "{\"account_id\":\"acc-7\",\"name\":\"Travel\"}"),
	    SL_OK);
	CHECK_EQ(
	    tt_commit(c, TENANT, "acc-7", "DebitPerformed", "{\"amount\":40}"),
	    SL_OK);
	run_example(c, NULL, SL_BUILD_DIR "/remote_account_details", EX_ID);
	run_example(c, SL_PYTHON3, SCRIPT, PY_ID);

	/* without --tls-ca: refused before it connects, saying so */
	fflush(NULL);
	pid_t p = fork();
	CHECK(p >= 0);
	if (p == 0) {
		dt_child_setup(parent);
		int f = open(pylog, O_WRONLY | O_TRUNC);
		dup2(f, STDOUT_FILENO);
		dup2(f, STDERR_FILENO);
		unsetenv("SLUICE_TLS_CA");
		execl(SL_PYTHON3, "python3", SCRIPT, "--url", api,
		    (char *) NULL);
		_exit(127);
	}
	CHECK(dt_wait_exit(p, 10000, &st));
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 2);
	CHECK(dt_wait_file_has(pylog, "needs --tls-ca", 0));
}

int
main(void)
{
	atexit(cleanup);
	dt_test_paths(dir, cfgp, logp, url_unused);
	tt_make_pki(dir, pki);
	start_daemon();
	sl_client     *c = NULL;
	sl_tls_options o = alice();
	CHECK_EQ(sl_client_open_tls(api, 10000, &o, &c), SL_OK);
	test_c_remote(c);
	test_c_refused(c);
	test_examples(c);
	sl_client_close(c);
	CHECK(kill(daemon_pid, SIGTERM) == 0);
	int st;
	CHECK(dt_wait_exit(daemon_pid, 15000, &st));
	daemon_pid = -1;
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	printf("tls_remote_test: ok\n");
	return 0;
}
