/*
 * The transport limit: NNG req/rep round trips over ipc:// between client
 * PROCESSES and an echo server PROCESS set up like sluiced's API server (a
 * rep0 socket with 16 contexts) and clients set up like libsluice_client
 * (req0, no resend, no receive limit). The server does no work: it sends
 * the request back (256 bytes by default: about a get_one or a one-event
 * commit), or a reply of --reply-size bytes.
 *
 *   bench_nng run --dir D --clients C --seconds S [--size B] [--reply-size B]
 *
 * Prints "key value" lines for bench/run.sh.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>

#include "common.h"

#define WORKERS 16

typedef struct echo_ctx {
	nng_ctx  ctx;
	nng_aio *aio;
	bool     sending;
} echo_ctx;

static size_t reply_size;

static void
echo_cb(void *arg)
{
	echo_ctx *e  = arg;
	int       rv = nng_aio_result(e->aio);
	if (e->sending) {
		if (rv != 0)
			nng_msg_free(nng_aio_get_msg(e->aio));
		e->sending = false;
		nng_ctx_recv(e->ctx, e->aio);
		return;
	}
	if (rv != 0) {
		if (rv != NNG_ECLOSED && rv != NNG_ECANCELED)
			nng_ctx_recv(e->ctx, e->aio);
		return;
	}
	nng_msg *m = nng_aio_get_msg(e->aio);
	if (reply_size > 0) {
		/* A reply built fresh, as the daemon builds each reply. */
		nng_msg_free(m);
		if (nng_msg_alloc(&m, reply_size) != 0)
			bench_die("out of memory");
		memset(nng_msg_body(m), 'r', reply_size);
	}
	nng_aio_set_msg(e->aio, m);
	e->sending = true;
	nng_ctx_send(e->ctx, e->aio);
}

static int
cmd_serve(const char *url)
{
	nng_socket s;
	echo_ctx   ctx[WORKERS];
	sigset_t   set;
	int        sig, rv;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	if ((rv = nng_rep0_open(&s)) != 0)
		bench_die("rep0: %s", nng_strerror(rv));
	nng_socket_set_size(s, NNG_OPT_RECVMAXSZ, 0);
	for (int i = 0; i < WORKERS; i++) {
		ctx[i].sending = false;
		if (nng_ctx_open(&ctx[i].ctx, s) != 0
		    || nng_aio_alloc(&ctx[i].aio, echo_cb, &ctx[i]) != 0)
			bench_die("ctx");
	}
	if ((rv = nng_listen(s, url, NULL, 0)) != 0)
		bench_die("listen %s: %s", url, nng_strerror(rv));
	for (int i = 0; i < WORKERS; i++)
		nng_ctx_recv(ctx[i].ctx, ctx[i].aio);
	while (sigwait(&set, &sig) != 0)
		;
	nng_close(s);
	for (int i = 0; i < WORKERS; i++)
		nng_aio_free(ctx[i].aio);
	return 0;
}

typedef struct result {
	uint64_t ops, end_ns, cpu_ns, n_lat;
} result;

static int
cmd_client(const char *url, double seconds, size_t size, const char *out)
{
	nng_socket s;
	int        rv;
	if ((rv = nng_req0_open(&s)) != 0)
		bench_die("req0: %s", nng_strerror(rv));
	nng_socket_set_size(s, NNG_OPT_RECVMAXSZ, 0);
	nng_socket_set_ms(s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 60000);
	if ((rv = nng_dial(s, url, NULL, 0)) != 0)
		bench_die("dial %s: %s", url, nng_strerror(rv));
	char *payload = malloc(size);
	if (payload == NULL)
		bench_die("out of memory");
	memset(payload, 'q', size);
	bench_lat lat   = { 0 };
	result    r     = { 0 };
	uint64_t  start = bench_worker_ready();
	uint64_t  end   = start + (uint64_t) (seconds * 1e9);
	uint64_t  cpu0  = bench_self_cpu_ns();
	for (uint64_t now = start; now < end;) {
		nng_msg *m;
		/* The client library copies the packed request into a new
		 * message; so does this. */
		if (nng_msg_alloc(&m, size) != 0)
			bench_die("out of memory");
		memcpy(nng_msg_body(m), payload, size);
		if ((rv = nng_sendmsg(s, m, 0)) != 0)
			bench_die("send: %s", nng_strerror(rv));
		if ((rv = nng_recvmsg(s, &m, 0)) != 0)
			bench_die("recv: %s", nng_strerror(rv));
		nng_msg_free(m);
		uint64_t t = bench_now_ns();
		bench_lat_add(&lat, t - now);
		r.ops++;
		now = t;
	}
	r.end_ns = bench_now_ns();
	r.cpu_ns = bench_self_cpu_ns() - cpu0;
	r.n_lat  = lat.n;
	FILE *f  = fopen(out, "wb");
	if (f == NULL || fwrite(&r, sizeof(r), 1, f) != 1
	    || fwrite(lat.v, sizeof(uint64_t), lat.n, f) != lat.n
	    || fclose(f) != 0)
		bench_die("write %s", out);
	nng_close(s);
	free(payload);
	bench_lat_free(&lat);
	return 0;
}

static int
cmd_run(
    const char *dir, int clients, double seconds, size_t size, size_t rsize)
{
	char url[1100], rs[32], sz[32], secs[32], out[1200];
	snprintf(url, sizeof(url), "ipc://%s/echo.ipc", dir);
	snprintf(rs, sizeof(rs), "%zu", rsize);
	snprintf(sz, sizeof(sz), "%zu", size);
	snprintf(secs, sizeof(secs), "%g", seconds);
	snprintf(out, sizeof(out), "%s/echo-%%i.res", dir);
	bench_mkdirs(dir);

	/* The server is a process of its own, as sluiced is. */
	char *sargv[] = { "/proc/self/exe", "serve", "--url", url,
		"--reply-size", rs, NULL };
	pid_t server  = bench_spawn(sargv, NULL);
	/* Wait until it listens. */
	for (int i = 0;; i++) {
		nng_socket s;
		nng_req0_open(&s);
		int rv = nng_dial(s, url, NULL, 0);
		nng_close(s);
		if (rv == 0)
			break;
		if (i > 5000)
			bench_die("echo server not listening");
		bench_sleep_ns(1000000);
	}

	char *cargv[] = { "bench_nng", "client", "--url", url, "--seconds",
		secs, "--size", sz, "--index", "%i", "--out", out, NULL };
	bench_workers w;
	bench_workers_spawn(&w, (size_t) clients, cargv);
	bench_workers_go(&w, 20000000);
	uint64_t  start = w.start_ns;
	long long scpu0 = bench_proc_cpu_ns(server);
	bench_workers_wait(&w);
	long long scpu = bench_proc_cpu_ns(server) - scpu0;
	kill(server, SIGTERM);
	bench_reap(server, 10000);

	bench_lat lat = { 0 };
	uint64_t  ops = 0, last = 0, ccpu = 0;
	for (int i = 0; i < clients; i++) {
		char path[1200];
		snprintf(path, sizeof(path), "%s/echo-%d.res", dir, i);
		FILE  *f = fopen(path, "rb");
		result r;
		if (f == NULL || fread(&r, sizeof(r), 1, f) != 1)
			bench_die("read %s", path);
		for (uint64_t j = 0; j < r.n_lat; j++) {
			uint64_t v;
			if (fread(&v, sizeof(v), 1, f) != 1)
				bench_die("read %s", path);
			bench_lat_add(&lat, v);
		}
		fclose(f);
		unlink(path);
		ops += r.ops;
		ccpu += r.cpu_ns;
		if (r.end_ns > last)
			last = r.end_ns;
	}
	double s = (double) (last - start) / 1e9;
	bench_out("rtps", (double) ops / s);
	bench_out("p50_us", (double) bench_lat_pct(&lat, 50) / 1e3);
	bench_out("p99_us", (double) bench_lat_pct(&lat, 99) / 1e3);
	/* CPU per round trip: the server's is measured from before the
	 * clients start, so it includes their connecting. */
	bench_out("server_cpu_us_per_rt", (double) scpu / 1e3 / (double) ops);
	bench_out("client_cpu_us_per_rt", (double) ccpu / 1e3 / (double) ops);
	bench_lat_free(&lat);
	return 0;
}

int
main(int argc, char **argv)
{
	const char                *dir = NULL, *url = NULL, *out = NULL;
	int                        clients = 1, index = 0;
	double                     seconds = 1;
	size_t                     size = 256, rsize = 0;
	static const struct option lo[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "url", required_argument, NULL, 'u' },
		{ "out", required_argument, NULL, 'o' },
		{ "clients", required_argument, NULL, 'c' },
		{ "seconds", required_argument, NULL, 's' },
		{ "size", required_argument, NULL, 'z' },
		{ "reply-size", required_argument, NULL, 'r' },
		{ "index", required_argument, NULL, 'i' },
		{ NULL, 0, NULL, 0 },
	};
	if (argc < 2)
		goto usage;
	optind = 2;
	int ch;
	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (ch) {
		case 'd':
			dir = optarg;
			break;
		case 'u':
			url = optarg;
			break;
		case 'o':
			out = optarg;
			break;
		case 'c':
			clients = atoi(optarg);
			break;
		case 's':
			seconds = atof(optarg);
			break;
		case 'z':
			size = strtoul(optarg, NULL, 10);
			break;
		case 'r':
			rsize = strtoul(optarg, NULL, 10);
			break;
		case 'i':
			index = atoi(optarg);
			break;
		default:
			goto usage;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	if (strcmp(argv[1], "run") == 0)
		bench_handle_signals();
	if (strcmp(argv[1], "serve") == 0 && url != NULL) {
		reply_size = rsize;
		return cmd_serve(url);
	}
	if (strcmp(argv[1], "client") == 0 && url != NULL && out != NULL) {
		char        path[1200];
		const char *p = strstr(out, "%i");
		if (p != NULL) {
			snprintf(path, sizeof(path), "%.*s%d%s",
			    (int) (p - out), out, index, p + 2);
			out = path;
		}
		return cmd_client(url, seconds, size, out);
	}
	if (strcmp(argv[1], "run") == 0 && dir != NULL && clients >= 1
	    && size >= 1)
		return cmd_run(dir, clients, seconds, size, rsize);
usage:
	fprintf(stderr,
	    "usage: bench_nng run --dir D --clients C --seconds S "
	    "[--size B] [--reply-size B]\n");
	return 2;
}
