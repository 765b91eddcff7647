/*
 * The TLS engine NNG's tls+tcp:// transport runs in the daemon: mbedtls,
 * as NNG's built-in engine, registered with nng_tls_engine_register. It
 * exists for one thing NNG 1.5.2 does not give: the subject of a
 * connection's verified peer certificate (NNG has NNG_OPT_TLS_VERIFIED
 * only; NNG_OPT_TLS_PEER_CN came in 1.6). NNG answers a pipe's
 * NNG_OPT_TLS_VERIFIED by calling the engine's verified() on the caller's
 * thread, under the connection's lock; sl_tls_peer sets a thread-local
 * buffer around that call and verified() fills it.
 */
#include "tlsconf.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>
#include <nng/supplemental/tls/engine.h>

/* One random generator for every connection, under a lock. */
static pthread_mutex_t          rng_mu = PTHREAD_MUTEX_INITIALIZER;
static mbedtls_entropy_context  rng_entropy;
static mbedtls_ctr_drbg_context rng_drbg;

static int
rng(void *arg, unsigned char *buf, size_t len)
{
	(void) arg;
	pthread_mutex_lock(&rng_mu);
	int rc = mbedtls_ctr_drbg_random(&rng_drbg, buf, len);
	pthread_mutex_unlock(&rng_mu);
	return rc;
}

/* Our certificates and keys: kept as long as the configuration. */
typedef struct own {
	struct own        *next;
	mbedtls_x509_crt   crt;
	mbedtls_pk_context key;
} own;

struct nng_tls_engine_config {
	bool               server;
	mbedtls_ssl_config conf;
	mbedtls_x509_crt   ca;
	mbedtls_x509_crl   crl;
	own               *owns;
	char              *server_name;
	int                authmode;
};

struct nng_tls_engine_conn {
	void                  *tls; /* NNG's connection, for the bio */
	mbedtls_ssl_context    ctx;
	nng_tls_engine_config *cfg;
};

/* sl_tls_peer's buffers, while it asks NNG (NULL otherwise). */
static _Thread_local struct {
	char  *subject, *cn;
	size_t subject_len, cn_len;
} peer_want;

static int
nng_of(int rc)
{
	switch (rc) {
	case MBEDTLS_ERR_SSL_WANT_READ:
	case MBEDTLS_ERR_SSL_WANT_WRITE:
		return NNG_EAGAIN;
	case MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY:
		return NNG_ECLOSED;
	case MBEDTLS_ERR_SSL_ALLOC_FAILED:
		return NNG_ENOMEM;
	case MBEDTLS_ERR_X509_CERT_VERIFY_FAILED:
	case MBEDTLS_ERR_SSL_NO_CLIENT_CERTIFICATE:
	case MBEDTLS_ERR_SSL_PEER_VERIFY_FAILED:
		return NNG_EPEERAUTH;
	case MBEDTLS_ERR_NET_SEND_FAILED:
	case MBEDTLS_ERR_NET_RECV_FAILED:
		return NNG_ECONNSHUT;
	default:
		return NNG_ECRYPTO;
	}
}

static int
bio_send(void *tls, const unsigned char *buf, size_t len)
{
	size_t n  = len;
	int    rv = nng_tls_engine_send(tls, buf, &n);
	if (rv == 0)
		return (int) n;
	return rv == NNG_EAGAIN ? MBEDTLS_ERR_SSL_WANT_WRITE
	                        : MBEDTLS_ERR_NET_SEND_FAILED;
}

static int
bio_recv(void *tls, unsigned char *buf, size_t len)
{
	size_t n  = len;
	int    rv = nng_tls_engine_recv(tls, buf, &n);
	if (rv == 0)
		return (int) n;
	return rv == NNG_EAGAIN ? MBEDTLS_ERR_SSL_WANT_READ
	                        : MBEDTLS_ERR_NET_RECV_FAILED;
}

/* ---- connections ---- */

static int
conn_init(nng_tls_engine_conn *c, void *tls, nng_tls_engine_config *cfg)
{
	int rc;
	c->tls = tls;
	c->cfg = cfg;
	mbedtls_ssl_init(&c->ctx);
	if ((rc = mbedtls_ssl_setup(&c->ctx, &cfg->conf)) != 0)
		return nng_of(rc);
	mbedtls_ssl_set_bio(&c->ctx, tls, bio_send, bio_recv, NULL);
	if (cfg->server_name != NULL
	    && (rc = mbedtls_ssl_set_hostname(&c->ctx, cfg->server_name)) != 0)
		return nng_of(rc);
	return 0;
}

static void
conn_fini(nng_tls_engine_conn *c)
{
	mbedtls_ssl_free(&c->ctx);
}

static void
conn_close(nng_tls_engine_conn *c)
{
	(void) mbedtls_ssl_close_notify(&c->ctx);
}

/* Told of each server handshake that failed (sl_tls_engine_init). */
static void (*handshake_failed)(const char *why);

static int
conn_handshake(nng_tls_engine_conn *c)
{
	int rc = mbedtls_ssl_handshake(&c->ctx);
	if (rc == 0)
		return 0;
	int rv = nng_of(rc);
	if (rv != NNG_EAGAIN && c->cfg->server && handshake_failed != NULL) {
		char why[160];
		mbedtls_strerror(rc, why, sizeof(why));
		handshake_failed(why);
	}
	return rv;
}

static int
conn_recv(nng_tls_engine_conn *c, uint8_t *buf, size_t *len)
{
	int rc = mbedtls_ssl_read(&c->ctx, buf, *len);
	if (rc < 0)
		return nng_of(rc);
	if (rc == 0)
		return NNG_ECLOSED;
	*len = (size_t) rc;
	return 0;
}

static int
conn_send(nng_tls_engine_conn *c, const uint8_t *buf, size_t *len)
{
	int rc = mbedtls_ssl_write(&c->ctx, buf, *len);
	if (rc < 0)
		return nng_of(rc);
	*len = (size_t) rc;
	return 0;
}

static bool
conn_verified(nng_tls_engine_conn *c)
{
	const mbedtls_x509_crt *peer = mbedtls_ssl_get_peer_cert(&c->ctx);
	bool ok = peer != NULL && mbedtls_ssl_get_verify_result(&c->ctx) == 0;
	if (!ok || peer_want.subject == NULL)
		return ok;
	if (mbedtls_x509_dn_gets(
	        peer_want.subject, peer_want.subject_len, &peer->subject)
	    < 0)
		peer_want.subject[0] = '\0';
	/* the last CN, as the most specific (RFC 6125 takes that one) */
	for (const mbedtls_x509_name *n = &peer->subject; n != NULL;
	     n                          = n->next) {
		if (MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &n->oid) != 0)
			continue;
		size_t len = n->val.len < peer_want.cn_len - 1
		    ? n->val.len
		    : peer_want.cn_len - 1;
		memcpy(peer_want.cn, n->val.p, len);
		peer_want.cn[len] = '\0';
	}
	return ok;
}

/* ---- configurations ---- */

static int
cfg_init(nng_tls_engine_config *cfg, nng_tls_mode mode)
{
	int ep = mode == NNG_TLS_MODE_SERVER ? MBEDTLS_SSL_IS_SERVER
	                                     : MBEDTLS_SSL_IS_CLIENT;
	int rc;
	cfg->server = mode == NNG_TLS_MODE_SERVER;
	/* as NNG: servers ask no certificate, clients verify the server */
	cfg->authmode = mode == NNG_TLS_MODE_SERVER
	    ? MBEDTLS_SSL_VERIFY_NONE
	    : MBEDTLS_SSL_VERIFY_REQUIRED;
	mbedtls_ssl_config_init(&cfg->conf);
	mbedtls_x509_crt_init(&cfg->ca);
	mbedtls_x509_crl_init(&cfg->crl);
	if ((rc = mbedtls_ssl_config_defaults(&cfg->conf, ep,
	         MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT))
	    != 0)
		return nng_of(rc);
	mbedtls_ssl_conf_authmode(&cfg->conf, cfg->authmode);
	mbedtls_ssl_conf_rng(&cfg->conf, rng, NULL);
	/* TLS 1.2 (the highest mbedtls 2.28 speaks) */
	mbedtls_ssl_conf_min_version(&cfg->conf, MBEDTLS_SSL_MAJOR_VERSION_3,
	    MBEDTLS_SSL_MINOR_VERSION_3);
	return 0;
}

static void
cfg_fini(nng_tls_engine_config *cfg)
{
	mbedtls_ssl_config_free(&cfg->conf);
	mbedtls_x509_crt_free(&cfg->ca);
	mbedtls_x509_crl_free(&cfg->crl);
	while (cfg->owns != NULL) {
		own *o    = cfg->owns;
		cfg->owns = o->next;
		mbedtls_x509_crt_free(&o->crt);
		mbedtls_pk_free(&o->key);
		free(o);
	}
	free(cfg->server_name);
}

static int
cfg_server(nng_tls_engine_config *cfg, const char *name)
{
	char *s = strdup(name);
	if (s == NULL)
		return NNG_ENOMEM;
	free(cfg->server_name);
	cfg->server_name = s;
	return 0;
}

static int
cfg_auth(nng_tls_engine_config *cfg, nng_tls_auth_mode mode)
{
	switch (mode) {
	case NNG_TLS_AUTH_MODE_NONE:
		cfg->authmode = MBEDTLS_SSL_VERIFY_NONE;
		break;
	case NNG_TLS_AUTH_MODE_OPTIONAL:
		cfg->authmode = MBEDTLS_SSL_VERIFY_OPTIONAL;
		break;
	case NNG_TLS_AUTH_MODE_REQUIRED:
		cfg->authmode = MBEDTLS_SSL_VERIFY_REQUIRED;
		break;
	default:
		return NNG_EINVAL;
	}
	mbedtls_ssl_conf_authmode(&cfg->conf, cfg->authmode);
	return 0;
}

static int
cfg_ca_chain(nng_tls_engine_config *cfg, const char *certs, const char *crl)
{
	int rc = mbedtls_x509_crt_parse(
	    &cfg->ca, (const unsigned char *) certs, strlen(certs) + 1);
	if (rc != 0)
		return rc == MBEDTLS_ERR_X509_ALLOC_FAILED ? NNG_ENOMEM
		                                           : NNG_EINVAL;
	if (crl != NULL
	    && (rc = mbedtls_x509_crl_parse(
	            &cfg->crl, (const unsigned char *) crl, strlen(crl) + 1))
	        != 0)
		return NNG_EINVAL;
	mbedtls_ssl_conf_ca_chain(
	    &cfg->conf, &cfg->ca, crl != NULL ? &cfg->crl : NULL);
	return 0;
}

static int
cfg_own_cert(nng_tls_engine_config *cfg, const char *cert, const char *key,
    const char *pass)
{
	own *o = calloc(1, sizeof(*o));
	int  rc;
	if (o == NULL)
		return NNG_ENOMEM;
	mbedtls_x509_crt_init(&o->crt);
	mbedtls_pk_init(&o->key);
	if ((rc = mbedtls_x509_crt_parse(
	         &o->crt, (const unsigned char *) cert, strlen(cert) + 1))
	        != 0
	    || (rc = mbedtls_pk_parse_key(&o->key, (const unsigned char *) key,
	            strlen(key) + 1, (const unsigned char *) pass,
	            pass != NULL ? strlen(pass) : 0))
	        != 0
	    || (rc = mbedtls_ssl_conf_own_cert(&cfg->conf, &o->crt, &o->key))
	        != 0) {
		mbedtls_x509_crt_free(&o->crt);
		mbedtls_pk_free(&o->key);
		free(o);
		return rc == MBEDTLS_ERR_SSL_ALLOC_FAILED ? NNG_ENOMEM
		                                          : NNG_EINVAL;
	}
	o->next   = cfg->owns;
	cfg->owns = o;
	return 0;
}

static int
cfg_version(nng_tls_engine_config *cfg, nng_tls_version lo, nng_tls_version hi)
{
	if (lo > hi || lo > NNG_TLS_1_2)
		return NNG_ENOTSUP;
	if (hi > NNG_TLS_1_2)
		hi = NNG_TLS_1_2;
	mbedtls_ssl_conf_min_version(
	    &cfg->conf, MBEDTLS_SSL_MAJOR_VERSION_3, (int) (lo & 0xff));
	mbedtls_ssl_conf_max_version(
	    &cfg->conf, MBEDTLS_SSL_MAJOR_VERSION_3, (int) (hi & 0xff));
	return 0;
}

static nng_tls_engine_conn_ops conn_ops = {
	.size      = sizeof(nng_tls_engine_conn),
	.init      = conn_init,
	.fini      = conn_fini,
	.close     = conn_close,
	.handshake = conn_handshake,
	.recv      = conn_recv,
	.send      = conn_send,
	.verified  = conn_verified,
};

static nng_tls_engine_config_ops config_ops = {
	.size     = sizeof(nng_tls_engine_config),
	.init     = cfg_init,
	.fini     = cfg_fini,
	.server   = cfg_server,
	.auth     = cfg_auth,
	.ca_chain = cfg_ca_chain,
	.own_cert = cfg_own_cert,
	.version  = cfg_version,
};

static const nng_tls_engine engine = {
	.version     = NNG_TLS_ENGINE_VERSION,
	.config_ops  = &config_ops,
	.conn_ops    = &conn_ops,
	.name        = "sluice-mbed",
	.description = "mbedtls, with the peer's subject (Sluice)",
	.fips_mode   = false,
};

static pthread_once_t engine_once = PTHREAD_ONCE_INIT;
static int            engine_rv;

static void
engine_register(void)
{
	static const char pers[] = "sluice-tls";
	mbedtls_entropy_init(&rng_entropy);
	mbedtls_ctr_drbg_init(&rng_drbg);
	if (mbedtls_ctr_drbg_seed(&rng_drbg, mbedtls_entropy_func,
	        &rng_entropy, (const unsigned char *) pers, sizeof(pers) - 1)
	    != 0) {
		engine_rv = NNG_ECRYPTO;
		return;
	}
	/* NNG registers its own engine when it initializes, lazily, at the
	 * first socket or TLS configuration: make that happen first */
	nng_tls_config *first;
	if ((engine_rv = nng_tls_config_alloc(&first, NNG_TLS_MODE_CLIENT))
	    != 0)
		return;
	nng_tls_config_free(first);
	engine_rv = nng_tls_engine_register(&engine);
	if (engine_rv == 0 && strcmp(nng_tls_engine_name(), engine.name) != 0)
		engine_rv = NNG_ENOTSUP;
}

int
sl_tls_engine_init(void (*on_handshake_failed)(const char *why))
{
	handshake_failed = on_handshake_failed;
	pthread_once(&engine_once, engine_register);
	return engine_rv;
}

int
sl_tls_peer(nng_pipe p, sl_tls_peer_info *out)
{
	bool v = false;
	int  rv;
	memset(out, 0, sizeof(*out));
	peer_want.subject     = out->subject;
	peer_want.subject_len = sizeof(out->subject);
	peer_want.cn          = out->cn;
	peer_want.cn_len      = sizeof(out->cn);
	rv                    = nng_pipe_get_bool(p, NNG_OPT_TLS_VERIFIED, &v);
	memset(&peer_want, 0, sizeof(peer_want));
	if (rv != 0 || !v) {
		out->subject[0] = '\0';
		out->cn[0]      = '\0';
	}
	return rv != 0 ? -1 : v;
}
