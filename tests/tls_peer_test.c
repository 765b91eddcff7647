/*
 * Who sent a request (runtime/net/server.h, api_call_peer): the API
 * server in process on tls+tcp://127.0.0.1 with verify_clients optional
 * and a handler that answers with what api_call_peer says, reached by raw
 * NNG req0 sockets with TLS (the client library's dial): a certificate of
 * the CA gives 1 with its subject and CN, none or another CA's gives 0
 * (let in, not verified), a plain tcp:// server gives -1. This is what
 * authentication by certificate (issue 18 item 3) builds on.
 */
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "config.h"
#include "server.h"
#include "tls.h"
#include "tls_testutil.h"

static char pki[4200];

/* Answers "V|CN|SUBJECT" of the request's connection. */
static void
handle(void *arg, api_call *call, const void *data, size_t len)
{
	sl_tls_peer_info pi;
	char             buf[1024];
	(void) arg;
	(void) data;
	(void) len;
	int v = api_call_peer(call, &pi);
	int n = snprintf(buf, sizeof(buf), "%d|%s|%s", v, pi.cn, pi.subject);
	api_reply(call, buf, (size_t) n);
}

static server *
start(const char *url)
{
	server_settings set = {
		.url             = url,
		.max_request     = 65536,
		.workers         = 1,
		.slow_workers    = 1,
		.slow_queue      = 1,
		.handle          = handle,
		.max_connections = 16,
	};
	server *srv = NULL;
	CHECK_EQ(server_start(&set, &srv), SL_OK);
	return srv;
}

/* One request with these client files; the reply in out. */
static void
ask(const char *url, const char *cert, const char *key, char *out, size_t len)
{
	nng_socket      s;
	nng_tls_config *tls = NULL;
	char            err[256];
	sl_tls_options  o = { .ca_file = tt_pki("ca.crt"),
		 .cert_file            = cert != NULL ? tt_pki(cert) : NULL,
		 .key_file             = key != NULL ? tt_pki(key) : NULL };
	CHECK_EQ(nng_req0_open(&s), 0);
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 5000);
	if (sl_tls_url(url))
		CHECK_EQ(sl_tls_client_config(&o, url, &tls, err, sizeof(err)),
		    SL_OK);
	CHECK_EQ(sl_tls_dial(s, url, tls, 0, NULL), 0);
	if (tls != NULL)
		nng_tls_config_free(tls);
	CHECK_EQ(nng_send(s, "x", 1, 0), 0);
	char  *rep = NULL;
	size_t n   = 0;
	CHECK_EQ(nng_recv(s, &rep, &n, NNG_FLAG_ALLOC), 0);
	snprintf(out, len, "%.*s", (int) n, rep);
	nng_free(rep, n);
	server_close_socket(s);
}

int
main(void)
{
	tt_make_pki(tu_tmpdir(), pki);
	sl_config cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.tls.cert_file = (char *) tt_pki("server.crt");
	cfg.tls.key_file  = (char *) tt_pki("server.key");
	cfg.tls.ca_file   = (char *) tt_pki("ca.crt");
	cfg.tls.verify    = NNG_TLS_AUTH_MODE_OPTIONAL;
	CHECK_EQ(net_tls_init(&cfg), SL_OK);

	char tls_url[64], tcp_url[64], got[1024];
	snprintf(tls_url, sizeof(tls_url), "tls+tcp://127.0.0.1:%d",
	    tt_free_port());
	snprintf(
	    tcp_url, sizeof(tcp_url), "tcp://127.0.0.1:%d", tt_free_port());
	server *tls_srv = start(tls_url), *tcp_srv = start(tcp_url);

	ask(tls_url, "client.crt", "client.key", got, sizeof(got));
	CHECK_STREQ(got, "1|alice|O=Sluice tests, CN=alice");
	ask(tls_url, NULL, NULL, got, sizeof(got));
	CHECK_STREQ(got, "0||");
	/* another CA's certificate: in (optional), but nobody known */
	ask(tls_url, "other.crt", "other.key", got, sizeof(got));
	CHECK_STREQ(got, "0||");
	ask(tcp_url, NULL, NULL, got, sizeof(got));
	CHECK_STREQ(got, "-1||");

	server_stop(tls_srv);
	server_stop(tcp_srv);
	net_tls_fini();
	printf("tls_peer_test: ok\n");
	return 0;
}
