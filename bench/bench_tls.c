/*
 * What TLS costs (issue 18 item 2, docs/security.md): the same sluiced
 * (sync off, no plugin) with its API on tcp://127.0.0.1 and on
 * tls+tcp://127.0.0.1 (mbedtls, EC P-256 certificates made with openssl,
 * mutual TLS required), runs alternated. Per run: one client's
 * single-event commits (round trips/s, p50/p99) and the time to open a
 * client and get status on a new connection (the TLS handshake), medians.
 *
 *   bench_tls --sluiced PATH --dir DIR [--runs 5] [--commits 5000]
 *             [--connects 100]
 * prints "key value" lines: tcp_commits_s, tls_commits_s, ... per run.
 */
#include <arpa/inet.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sluice/client.h>

#include "common.h"

static char pki[1100];

static const char *
pf(const char *name)
{
	static char buf[4][1200];
	static int  i;
	char       *b = buf[i++ % 4];
	snprintf(b, sizeof(buf[0]), "%s/%s", pki, name);
	return b;
}

static void
make_pki(const char *dir)
{
	char cmd[4096];
	snprintf(pki, sizeof(pki), "%s/pki", dir);
	snprintf(cmd, sizeof(cmd),
	    "set -e; mkdir -p '%s'; cd '%s'; umask 077\n"
	    "K='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes'\n"
	    "openssl req -x509 $K -keyout ca.key -out ca.crt -days 2 "
	    "-subj '/CN=bench CA' 2>/dev/null\n"
	    "printf 'subjectAltName=DNS:127.0.0.1\\n' > s.ext\n"
	    "openssl req $K -keyout server.key -out s.csr -subj '/CN=x' "
	    "2>/dev/null\n"
	    "openssl x509 -req -in s.csr -CA ca.crt -CAkey ca.key "
	    "-CAcreateserial -days 2 -extfile s.ext -out server.crt "
	    "2>/dev/null\n"
	    "openssl req $K -keyout client.key -out c.csr -subj '/CN=bench' "
	    "2>/dev/null\n"
	    "openssl x509 -req -in c.csr -CA ca.crt -CAkey ca.key "
	    "-CAcreateserial -days 2 -out client.crt 2>/dev/null\n",
	    pki, pki);
	if (system(cmd) != 0)
		bench_die("openssl failed (scripts/setup.sh installs it)");
}

/* A port the kernel gives now, released for the daemon to take. */
static int
free_port(void)
{
	struct sockaddr_in a   = { .sin_family = AF_INET };
	socklen_t          len = sizeof(a);
	int                fd  = socket(AF_INET, SOCK_STREAM, 0);
	a.sin_addr.s_addr      = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *) &a, sizeof(a)) != 0
	    || getsockname(fd, (struct sockaddr *) &a, &len) != 0)
		bench_die("no free port");
	close(fd);
	return ntohs(a.sin_port);
}

typedef struct tls_daemon {
	char  url[128], dir[1100];
	pid_t pid;
} tls_daemon;

static void
start(tls_daemon *d, const char *sluiced, const char *root, bool tls,
    const sl_tls_options *o)
{
	static int n;
	char       cfg[1200], text[4096], log[1200];
	snprintf(d->dir, sizeof(d->dir), "%s/d%d", root, n++);
	bench_mkdirs(d->dir);
	snprintf(d->url, sizeof(d->url), "%s://127.0.0.1:%d",
	    tls ? "tls+tcp" : "tcp", free_port());
	snprintf(text, sizeof(text),
	    "data_dir: %s/data\nplugin_dir: %s/plugins\nlog_level: warn\n"
	    "hot_reload: false\n"
	    "endpoints:\n  api: %s\n  pub: ipc://%s/pub.ipc\n"
	    "event_store: {map_size: 1GiB, sync: false}\n"
	    "tenants: [{id: bench}]\n"
	    "%s%s%s%s%s%s%s",
	    d->dir, d->dir, d->url, d->dir, tls ? "tls:\n  cert_file: " : "",
	    tls ? pf("server.crt") : "", tls ? "\n  key_file: " : "",
	    tls ? pf("server.key") : "", tls ? "\n  ca_file: " : "",
	    tls ? pf("ca.crt") : "",
	    tls ? "\n  verify_clients: required\n" : "");
	snprintf(cfg, sizeof(cfg), "%s/resources.yaml", d->dir);
	snprintf(log, sizeof(log), "%s/sluiced.log", d->dir);
	char plugins[1200];
	snprintf(plugins, sizeof(plugins), "%s/plugins", d->dir);
	bench_mkdirs(plugins);
	bench_write_file(cfg, text);
	char *argv[] = { (char *) sluiced, "-c", cfg, NULL };
	d->pid       = bench_spawn(argv, log);
	for (int i = 0; i < 600; i++) {
		sl_client *c;
		if (sl_client_open_tls(d->url, 2000, o, &c) == SL_OK) {
			char *st = NULL;
			int   rc = sl_client_status(c, &st);
			sl_client_free(st);
			sl_client_close(c);
			if (rc == SL_OK)
				return;
		}
		bench_sleep_ns(100000000ULL);
	}
	bench_die("sluiced on %s did not answer (%s; see %s)", d->url,
	    sl_client_open_error(), log);
}

static void
stop(tls_daemon *d)
{
	kill(d->pid, SIGTERM);
	if (bench_reap(d->pid, 30000) != 0)
		bench_die("sluiced did not stop cleanly");
	bench_rmrf(d->dir);
}

/* One client's single-event commits; connects: open + status + close. */
static void
measure(const char *name, const tls_daemon *d, const sl_tls_options *o,
    int commits, int connects)
{
	sl_client   *c;
	bench_lat    lat;
	sl_new_event ev = { .type = "Bench",
		.content_json     = "{\"account_id\":\"a-1\",\"amount\":100,"
		                    "\"note\":\"a benchmark event of about a "
		                    "hundred bytes of content\"}" };
	memset(&lat, 0, sizeof(lat));
	if (sl_client_open_tls(d->url, 10000, o, &c) != SL_OK)
		bench_die("open %s: %s", d->url, sl_client_open_error());
	for (int i = 0; i < commits / 10; i++) /* warm-up */
		sl_client_commit(c, "bench", "s", SL_EXPECT_ANY, &ev, 1, NULL);
	uint64_t t0 = bench_now_ns();
	for (int i = 0; i < commits; i++) {
		uint64_t t = bench_now_ns();
		if (sl_client_commit(
		        c, "bench", "s", SL_EXPECT_ANY, &ev, 1, NULL)
		    != SL_OK)
			bench_die("commit: %s", sl_client_last_error(c));
		bench_lat_add(&lat, bench_now_ns() - t);
	}
	double secs = (double) (bench_now_ns() - t0) / 1e9;
	sl_client_close(c);
	bench_outf((double) commits / secs, "%s_commits_s", name);
	bench_outf(
	    (double) bench_lat_pct(&lat, 50) / 1e3, "%s_commit_p50_us", name);
	bench_outf(
	    (double) bench_lat_pct(&lat, 99) / 1e3, "%s_commit_p99_us", name);
	bench_lat_free(&lat);

	uint64_t total = 0;
	for (int i = 0; i < connects; i++) {
		uint64_t t  = bench_now_ns();
		char    *st = NULL;
		if (sl_client_open_tls(d->url, 10000, o, &c) != SL_OK
		    || sl_client_status(c, &st) != SL_OK)
			bench_die("connect %s", d->url);
		total += bench_now_ns() - t;
		sl_client_free(st);
		sl_client_close(c);
	}
	bench_outf((double) total / connects / 1e3, "%s_connect_us", name);
}

int
main(int argc, char **argv)
{
	const char *sluiced = NULL, *dir = NULL;
	int         runs = 5, commits = 5000, connects = 100, ch;
	static const struct option lo[] = {
		{ "sluiced", required_argument, NULL, 's' },
		{ "dir", required_argument, NULL, 'd' },
		{ "runs", required_argument, NULL, 'r' },
		{ "commits", required_argument, NULL, 'c' },
		{ "connects", required_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 },
	};
	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (ch) {
		case 's':
			sluiced = optarg;
			break;
		case 'd':
			dir = optarg;
			break;
		case 'r':
			runs = atoi(optarg);
			break;
		case 'c':
			commits = atoi(optarg);
			break;
		case 'n':
			connects = atoi(optarg);
			break;
		default:
			bench_die("unknown option");
		}
	}
	if (sluiced == NULL || dir == NULL)
		bench_die(
		    "usage: bench_tls --sluiced PATH --dir DIR [--runs N] "
		    "[--commits N] [--connects N]");
	bench_handle_signals();
	bench_mkdirs(dir);
	make_pki(dir);
	/* copies: pf's buffers are reused */
	sl_tls_options o = { .ca_file = strdup(pf("ca.crt")),
		.cert_file            = strdup(pf("client.crt")),
		.key_file             = strdup(pf("client.key")) };
	for (int r = 0; r < runs; r++) {
		/* alternated: tcp first in even runs, tls first in odd ones */
		for (int k = 0; k < 2; k++) {
			bool       tls = (k + r) % 2 == 1;
			tls_daemon d;
			start(&d, sluiced, dir, tls, tls ? &o : NULL);
			measure(tls ? "tls" : "tcp", &d, tls ? &o : NULL,
			    commits, connects);
			stop(&d);
		}
	}
	return 0;
}
