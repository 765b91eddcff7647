/*
 * TLS for the daemon's listeners (tls.h): one server configuration for
 * every tls+tcp:// endpoint (API, feed, remote registrations), and the
 * peer certificate of a connection for the log and for authorization.
 */
#include "tls.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>

#include <sluice/errors.h>

#include "log.h"
#include "monotime.h"

static nng_tls_config *server_cfg;

/* Failed handshakes logged per second; more are counted and summed up in
 * the next second's first line. */
#define TLS_FAIL_LOG_PER_S 10

static pthread_mutex_t fail_mu = PTHREAD_MUTEX_INITIALIZER;
static int64_t         fail_win_ns;
static unsigned        fail_logged;
static uint64_t        fail_quiet;

/* A client's handshake failed: no connection was made (a client with
 * another CA, or without a certificate under verify_clients: required). */
static void
handshake_failed(const char *why)
{
	int64_t  now   = mono_ns();
	bool     log   = false;
	uint64_t quiet = 0;
	pthread_mutex_lock(&fail_mu);
	if (now - fail_win_ns >= 1000000000LL) {
		quiet       = fail_quiet;
		fail_quiet  = 0;
		fail_logged = 0;
		fail_win_ns = now;
	}
	if (fail_logged < TLS_FAIL_LOG_PER_S) {
		fail_logged++;
		log = true;
	} else {
		fail_quiet++;
	}
	pthread_mutex_unlock(&fail_mu);
	if (quiet > 0)
		log_warn("tls", "%llu more TLS handshake(s) failed",
		    (unsigned long long) quiet);
	if (log)
		log_warn("tls", "a client's TLS handshake failed: %s", why);
}

int
net_tls_init(const sl_config *cfg)
{
	char        err[512];
	const char *what = NULL;
	int         rv, rc;
	/* every connection's peer subject (sl_tls_peer) needs our engine */
	if ((rv = sl_tls_engine_init(handshake_failed)) != 0) {
		log_error("tls", "cannot register the TLS engine: %s",
		    nng_strerror(rv));
		return rv == NNG_ENOMEM ? SL_ENOMEM : SL_ECONFIG;
	}
	if (cfg->tls.cert_file == NULL)
		return SL_OK;
	sl_tls_server s;
	config_tls_server(cfg, &s);
	if ((rc = sl_tls_server_config(
	         &s, &server_cfg, &what, err, sizeof(err)))
	    != SL_OK) {
		log_error("tls", "tls.%s: %s", what, err);
		return rc;
	}
	static const char *const modes[] = { "none", "optional", "required" };
	log_info("tls",
	    "TLS for tls+tcp:// endpoints: certificate %s, client "
	    "certificates %s%s%s (engine %s)",
	    cfg->tls.cert_file, modes[cfg->tls.verify],
	    cfg->tls.ca_file != NULL ? ", CA " : "",
	    cfg->tls.ca_file != NULL ? cfg->tls.ca_file : "",
	    nng_tls_engine_name());
	return SL_OK;
}

void
net_tls_fini(void)
{
	if (server_cfg != NULL)
		nng_tls_config_free(server_cfg);
	server_cfg = NULL;
}

nng_tls_config *
net_tls_server(void)
{
	return server_cfg;
}

int
net_tls_msg_peer(nng_msg *msg, sl_tls_peer_info *out)
{
	return sl_tls_peer(nng_msg_get_pipe(msg), out);
}

void
net_tls_log_peer(const char *who, nng_pipe p)
{
	sl_tls_peer_info pi;
	nng_sockaddr     sa;
	char             addr[64] = "?";
	int              v        = sl_tls_peer(p, &pi);
	if (v < 0)
		return;
	if (nng_pipe_get_addr(p, NNG_OPT_REMADDR, &sa) == 0) {
		char ip[INET6_ADDRSTRLEN] = "?";
		if (sa.s_family == NNG_AF_INET) {
			inet_ntop(AF_INET, &sa.s_in.sa_addr, ip, sizeof(ip));
			snprintf(addr, sizeof(addr), "%s:%u", ip,
			    (unsigned) ntohs(sa.s_in.sa_port));
		} else if (sa.s_family == NNG_AF_INET6) {
			inet_ntop(AF_INET6, sa.s_in6.sa_addr, ip, sizeof(ip));
			snprintf(addr, sizeof(addr), "[%s]:%u", ip,
			    (unsigned) ntohs(sa.s_in6.sa_port));
		}
	}
	if (v == 1)
		log_info(who,
		    "TLS connection %d from %s: client certificate "
		    "verified, subject \"%s\"",
		    nng_pipe_id(p), addr, pi.subject);
	else
		log_info(who,
		    "TLS connection %d from %s: no verified client "
		    "certificate",
		    nng_pipe_id(p), addr);
}
