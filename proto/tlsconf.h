/*
 * TLS for NNG's tls+tcp:// transport (mbedtls underneath), shared by the
 * daemon (its listeners, from resources.yaml's `tls:`) and the client
 * library (the API, the live feed, remote registrations): PEM files read
 * and checked with a message naming the file, and NNG TLS configurations
 * built from them.
 */
#ifndef SL_TLSCONF_H
#define SL_TLSCONF_H

#include <stdbool.h>
#include <stddef.h>

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>

#include <sluice/client.h>

/** Whether url is a tls+tcp:// one. */
bool sl_tls_url(const char *url);

/** What the daemon presents and whom it accepts. */
typedef struct sl_tls_server {
	const char *cert_file;    /* PEM certificate (chain), required */
	const char *key_file;     /* PEM private key, required */
	const char *key_password; /* NULL: the key is not encrypted */
	const char *ca_file;      /* CAs of client certificates, or NULL */
	int         verify;       /* NNG_TLS_AUTH_MODE_* for clients */
} sl_tls_server;

/**
 * Check the server's files (readable, PEM that parses, the key matches the
 * certificate and opens with the password; the key file not readable by
 * every user) and build a server configuration.
 * @param out  receives the configuration (nng_tls_config_free it); NULL
 *             only checks
 * @param what receives which key is wrong: "cert_file", "key_file",
 *             "key_password" or "ca_file" (static), on an error
 * @return SL_OK; SL_ECONFIG (err says why); SL_ENOMEM.
 */
int sl_tls_server_config(const sl_tls_server *s, nng_tls_config **out,
    const char **what, char *err, size_t errlen);

/**
 * A client configuration for dialing url: the daemon's certificate must
 * be signed by o->ca_file and carry o->server_name (NULL: url's host);
 * o->cert_file and o->key_file are presented for mutual TLS.
 * @return SL_OK; SL_EINVAL (no CA, a file missing or bad: err says
 *         which); SL_ENOMEM.
 */
int sl_tls_client_config(const sl_tls_options *o, const char *url,
    nng_tls_config **out, char *err, size_t errlen);

/** Copy the strings of src into dst (strdup each). @return false when out
 * of memory (dst then empty). */
bool sl_tls_options_copy(sl_tls_options *dst, const sl_tls_options *src);
/** Free what sl_tls_options_copy made (the password wiped) and zero it. */
void sl_tls_options_free(sl_tls_options *o);

/**
 * nng_dial with tls (may be NULL, then a plain nng_dial). flags as
 * nng_dial's. @return NNG's error.
 */
int sl_tls_dial(nng_socket s, const char *url, nng_tls_config *tls, int flags,
    nng_dialer *out);

/** A connection's peer certificate, as sl_tls_peer finds it. */
typedef struct sl_tls_peer_info {
	char subject[512]; /* "C=.., O=.., CN=..": "" if not verified */
	char cn[256];      /* its (last) common name, "" if none */
} sl_tls_peer_info;

/**
 * The verified peer certificate of a connection (NNG pipe) of a TLS
 * listener, when Sluice's engine runs (sl_tls_engine_init): its subject
 * and common name (NUL terminated, cut to fit). Any thread; does not
 * block (one lock of NNG's connection).
 * @return 1: the peer presented a certificate that the CA verified; 0: a
 *         TLS connection without one (verify_clients: none or optional);
 *         -1: not a TLS connection (or gone). out is "" but for 1.
 */
int sl_tls_peer(nng_pipe p, sl_tls_peer_info *out);

/**
 * Use Sluice's TLS engine (mbedtls, as NNG's own, but it keeps each
 * connection's peer certificate subject for sl_tls_peer). Before any TLS
 * configuration is made; the daemon calls it.
 * @param on_handshake_failed  may be NULL; called (on NNG's thread, with
 *        a connection's lock held: be quick) with mbedtls's reason when a
 *        client's handshake with a server configuration fails
 * @return 0 or NNG's error.
 */
int sl_tls_engine_init(void (*on_handshake_failed)(const char *why));

#endif
