/*
 * Per-tenant live feeds under auth (issue 18 item 4, endpoints.feeds): a
 * real sluiced with two tenants, auth: on, and a tls+tcp:// feed per
 * tenant whose connections are admitted by their client certificate
 * (certificates made in the test by openssl). A subject allowed t1 gets
 * t1's events live and none of t2's; the same subject on t2's feed, a
 * certificate of another CA and no certificate are closed before anything
 * is sent, and logged; the daemon serves on. sl_client_subscribe follows a
 * stream of t1 on t1's feed (events taken live), named by status' "feeds"
 * (only the caller's tenants'); the CLI's `sluice subscribe` too.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>

#include <nng/nng.h>
#include <nng/protocol/pubsub0/sub.h>

#include <sluice/client.h>
#include <sluice/subscribe.h>

#include "auth.h"
#include "daemon_testutil.h"
#include "server.h" /* server_close_socket */
#include "testutil.h"
#include "tls_testutil.h"

static char  dir[4096], cfgp[4200], logp[4200], api[4200], pki[4200];
static char  feed1[128], feed2[128];
static pid_t daemon_pid = -1;

#define WRITER_TOKEN "writer-token"
#define READER_TOKEN "reader-t1-token"

static void
cleanup(void)
{
	dt_kill_and_reap(&daemon_pid);
}

static sl_tls_options
opts(const char *cert, const char *key)
{
	sl_tls_options o = {
		.ca_file   = tt_pki("ca.crt"),
		.cert_file = cert != NULL ? tt_pki(cert) : NULL,
		.key_file  = key != NULL ? tt_pki(key) : NULL,
	};
	return o;
}

static void
start_daemon(void)
{
	char   text[8192], hw[65], hr[65];
	size_t n = dt_config_head(
	    text, sizeof(text), dir, SL_PLUGIN_DIR, api, "64MiB");
	snprintf(
	    feed1, sizeof(feed1), "tls+tcp://127.0.0.1:%d", tt_free_port());
	snprintf(
	    feed2, sizeof(feed2), "tls+tcp://127.0.0.1:%d", tt_free_port());
	auth_hash_hex(WRITER_TOKEN, strlen(WRITER_TOKEN), hw);
	auth_hash_hex(READER_TOKEN, strlen(READER_TOKEN), hr);
	/* the feeds go under endpoints: (the head ends with event_store) */
	char *es = strstr(text, "event_store:");
	CHECK(es != NULL);
	n = (size_t) (es - text);
	n += (size_t) snprintf(text + n, sizeof(text) - n,
	    "  feeds:\n"
	    "    - {tenant: t1, url: \"%s\"}\n"
	    "    - {tenant: t2, url: \"%s\"}\n"
	    "event_store:\n  map_size: 64MiB\n  sync: false\n"
	    "tenants:\n"
	    "  - {id: t1, read_models: {map_size: 16MiB}}\n"
	    "  - {id: t2, read_models: {map_size: 16MiB}}\n"
	    "tls:\n"
	    "  cert_file: %s\n"
	    "  key_file: %s\n"
	    "  ca_file: %s\n"
	    "  verify_clients: optional\n"
	    "auth:\n"
	    "  tokens:\n"
	    "    - {name: writer, token_sha256: %s, tenants: [t1, t2],\n"
	    "       roles: [write, read]}\n"
	    "    - {name: reader-t1, token_sha256: %s, tenants: [t1],\n"
	    "       roles: [read]}\n"
	    "  subjects:\n"
	    "    - name: alice\n"
	    "      subject: \"O=Sluice tests, CN=alice\"\n"
	    "      tenants: [t1]\n"
	    "      roles: [read]\n",
	    feed1, feed2, tt_pki("server.crt"), tt_pki("server.key"),
	    tt_pki("ca.crt"), hw, hr);
	CHECK(n < sizeof(text));
	tu_write_file(cfgp, text);
	daemon_pid  = dt_daemon_spawn(cfgp, logp);
	int64_t end = dt_now_ms() + 15000;
	for (;;) {
		sl_client *c = NULL;
		char      *st;
		if (sl_client_open(api, 2000, &c) == SL_OK) {
			sl_client_set_token(c, WRITER_TOKEN);
			int rc = sl_client_status(c, &st);
			if (rc == SL_OK)
				sl_client_free(st);
			sl_client_close(c);
			if (rc == SL_OK)
				return;
		}
		if (dt_now_ms() > end)
			DT_FAIL_LOG(logp, "sluiced did not come up");
		dt_sleep_ms(20);
	}
}

static sl_client *writer;

/* How many times the daemon's log holds text. */
static int
log_count(const char *text)
{
	size_t len;
	char  *s = dt_slurp(logp, &len);
	int    n = 0;
	for (const char *p = s; p != NULL && (p = strstr(p, text)) != NULL;
	     p++)
		n++;
	free(s);
	return n;
}

static void
commit(const char *tenant, const char *stream)
{
	if (writer == NULL) {
		CHECK_EQ(sl_client_open(api, 10000, &writer), SL_OK);
		CHECK_EQ(sl_client_set_token(writer, WRITER_TOKEN), SL_OK);
	}
	CHECK_EQ(
	    tt_commit(writer, tenant, stream, "Noted", "{\"x\":1}"), SL_OK);
}

/* A raw subscriber of every topic on url, dialing with the certificate
 * cert (NULL: none). */
typedef struct raw_sub {
	nng_socket      sock;
	nng_dialer      d;
	nng_tls_config *tls;
} raw_sub;

static void
raw_open(raw_sub *r, const char *url, const char *cert, const char *key,
    int reconn_ms)
{
	sl_tls_options o = opts(cert, key);
	char           err[256];
	CHECK_EQ(
	    sl_tls_client_config(&o, url, &r->tls, err, sizeof(err)), SL_OK);
	CHECK(nng_sub0_open(&r->sock) == 0);
	CHECK(nng_socket_set(r->sock, NNG_OPT_SUB_SUBSCRIBE, "", 0) == 0);
	nng_socket_set_ms(r->sock, NNG_OPT_RECVTIMEO, 200);
	nng_socket_set_ms(r->sock, NNG_OPT_RECONNMINT, reconn_ms);
	nng_socket_set_ms(r->sock, NNG_OPT_RECONNMAXT, reconn_ms);
	CHECK(
	    sl_tls_dial(r->sock, url, r->tls, NNG_FLAG_NONBLOCK, &r->d) == 0);
}

static void
raw_close(raw_sub *r)
{
	nng_dialer_close(r->d);
	server_close_socket(r->sock);
	nng_tls_config_free(r->tls);
}

/* Receive for ms: count the events of tenant t1 and t2 (by topic) and the
 * other messages (heads). */
static void
raw_count(raw_sub *r, int ms, int *t1, int *t2, int *heads)
{
	int64_t end = dt_now_ms() + ms;
	while (dt_now_ms() < end) {
		nng_msg *m;
		if (nng_recvmsg(r->sock, &m, 0) != 0)
			continue;
		const char *b = nng_msg_body(m);
		size_t      n = nng_msg_len(m);
		if (n > 5 && memcmp(b, "e/t1/", 5) == 0)
			(*t1)++;
		else if (n > 5 && memcmp(b, "e/t2/", 5) == 0)
			(*t2)++;
		else if (n > 2 && memcmp(b, "h\n", 2) == 0)
			(*heads)++;
		else
			CHECK(!"a message of another topic");
		nng_msg_free(m);
	}
}

static void
test_admitted(void)
{
	raw_sub r;
	int     t1 = 0, t2 = 0, heads = 0;
	raw_open(&r, feed1, "client.crt", "client.key", 100);
	CHECK(dt_wait_file_has(logp,
	    "to tenant t1's feed admitted: credential 'alice' (subject "
	    "\"O=Sluice tests, CN=alice\")",
	    10000));
	/* a head message: the feed sends to this connection now */
	int64_t end = dt_now_ms() + 10000;
	while (heads == 0) {
		CHECK(dt_now_ms() < end);
		raw_count(&r, 50, &t1, &t2, &heads);
	}
	CHECK_EQ(t1 + t2, 0);
	commit("t1", "s1");
	commit("t2", "s2");
	commit("t2", "s2");
	commit("t1", "s1");
	commit("t1", "s3");
	raw_count(&r, 1500, &t1, &t2, &heads);
	printf("feed_tenant_test: t1's feed: %d t1 messages, %d t2, %d "
	       "heads\n",
	    t1, t2, heads);
	CHECK_EQ(t1, 3); /* one message per commit */
	CHECK_EQ(t2, 0);
	CHECK(heads >= 1); /* a head a second */
	raw_close(&r);
}

/* Connections the feed closes get nothing, and the refusal is logged
 * (once more than before). */
static void
test_refused(const char *url, const char *tenant, const char *cert,
    const char *key, const char *logged)
{
	raw_sub r;
	int     t1 = 0, t2 = 0, heads = 0, before = log_count(logged);
	/* one connection: a TLS socket of NNG 1.5.2 closed while its
	 * dialer redials can wedge the process's reaper (docs/security.md) */
	raw_open(&r, url, cert, key, 3600000);
	int64_t end = dt_now_ms() + 10000;
	while (log_count(logged) == before) {
		if (dt_now_ms() > end)
			DT_FAIL_LOG(logp, "no refusal logged: %s", logged);
		dt_sleep_ms(20);
	}
	commit(tenant, "s9");
	raw_count(&r, 1200, &t1, &t2, &heads);
	CHECK_EQ(t1 + t2 + heads, 0);
	raw_close(&r);
	/* the daemon serves on */
	commit(tenant, "s9");
}

/* ---- the client library and the CLI ---- */

typedef struct counted {
	int      n, want;
	uint64_t last_rev;
} counted;

static int
on_event(void *arg, const sl_read_event *ev)
{
	counted *c  = arg;
	c->last_rev = ev->revision;
	return ++c->n >= c->want;
}

typedef struct sub_run {
	sl_client         *c;
	sl_subscribe_stats st;
	counted            cnt;
	int                rc;
} sub_run;

static void *
sub_main(void *arg)
{
	sub_run          *s = arg;
	sl_subscribe_opts o = { .tenant = "t1",
		.stream                 = "live",
		.idle_ms                = 15000,
		.stats                  = &s->st };
	s->rc               = sl_client_subscribe(s->c, &o, on_event, &s->cnt);
	return NULL;
}

static void
test_client_subscribe(void)
{
	sl_tls_options o = opts("client.crt", "client.key");
	sub_run        s = { .cnt = { .want = 4 } };
	char          *st;
	CHECK_EQ(sl_client_open_tls(api, 10000, &o, &s.c), SL_OK);
	CHECK_EQ(sl_client_set_token(s.c, READER_TOKEN), SL_OK);
	/* status names t1's feed to a reader of t1, not t2's */
	CHECK_EQ(sl_client_status(s.c, &st), SL_OK);
	CHECK(strstr(st, feed1) != NULL);
	CHECK(strstr(st, feed2) == NULL);
	sl_client_free(st);

	commit("t1", "live"); /* history */
	int       admitted = log_count("feed admitted: credential 'alice'");
	pthread_t th;
	CHECK(pthread_create(&th, NULL, sub_main, &s) == 0);
	/* once it follows the feed, the rest comes live */
	int64_t end = dt_now_ms() + 10000;
	while (__atomic_load_n(&s.cnt.n, __ATOMIC_ACQUIRE) < 1
	    || log_count("feed admitted: credential 'alice'") == admitted) {
		if (dt_now_ms() > end)
			DT_FAIL_LOG(logp,
			    "the subscription did not follow t1's "
			    "feed");
		dt_sleep_ms(20);
	}
	dt_sleep_ms(300);
	commit("t2", "live");
	commit("t1", "live");
	commit("t1", "live");
	commit("t1", "live");
	pthread_join(th, NULL);
	printf("feed_tenant_test: subscription: rc %s, %" PRIu64
	       " delivered, %" PRIu64 " live, %" PRIu64 " read\n",
	    sl_errname(s.rc), s.st.delivered, s.st.from_live, s.st.from_reads);
	CHECK_EQ(s.rc, SL_OK);
	CHECK_EQ(s.cnt.n, 4);
	CHECK_EQ(s.cnt.last_rev, 3);
	CHECK(s.st.from_live >= 1);
	sl_client_close(s.c);
}

/* sluice subscribe on the feed: --tls-* for the feed, --token for the
 * reads; it ends after --count events. */
static void
test_cli(void)
{
	char out[4300];
	snprintf(out, sizeof(out), "%s/cli.out", dir);
	int         admitted = log_count("feed admitted: credential 'alice'");
	char *const argv[] = { "sluice", "--url", api, "--token", READER_TOKEN,
		"--tls-ca", (char *) tt_pki("ca.crt"), "--tls-cert",
		(char *) tt_pki("client.crt"), "--tls-key",
		(char *) tt_pki("client.key"), "subscribe", "--tenant", "t1",
		"--stream", "cli", "--count", "2", "--idle-ms", "10000",
		NULL };
	pid_t       pid = dt_spawn_logged(out, SL_BUILD_DIR "/sluice", argv);
	int64_t     end = dt_now_ms() + 10000;
	while (log_count("feed admitted: credential 'alice'") == admitted) {
		CHECK(dt_now_ms() < end);
		dt_sleep_ms(20);
	}
	dt_sleep_ms(300);
	commit("t1", "cli");
	commit("t1", "cli");
	int st;
	CHECK(dt_wait_exit(pid, 15000, &st));
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		dt_dump_file(out, "sluice subscribe");
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	CHECK(dt_wait_file_has(out, "\"revision\":1", 100));
}

int
main(void)
{
	char url_unused[4200];
	atexit(cleanup);
	dt_test_paths(dir, cfgp, logp, url_unused);
	snprintf(api, sizeof(api), "%s", url_unused);
	tt_make_pki(dir, pki);
	start_daemon();

	test_refused(feed2, "t2", "client.crt", "client.key",
	    "to tenant t2's feed closed: credential 'alice' may not read "
	    "that tenant");
	test_refused(feed1, "t1", "other.crt", "other.key",
	    "to tenant t1's feed closed: no client certificate the CA "
	    "verified");
	test_refused(feed1, "t1", NULL, NULL,
	    "to tenant t1's feed closed: no client certificate the CA "
	    "verified");
	test_client_subscribe();
	test_admitted();
	test_cli();

	sl_client_close(writer);
	CHECK(kill(daemon_pid, SIGTERM) == 0);
	int st;
	CHECK(dt_wait_exit(daemon_pid, 15000, &st));
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	daemon_pid = -1;
	printf("feed_tenant_test: ok\n");
	return 0;
}
