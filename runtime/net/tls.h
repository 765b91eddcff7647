/*
 * The daemon's side of TLS (docs/security.md): the server configuration
 * every tls+tcp:// listener gets (net_listen), made once from
 * resources.yaml's `tls:`, and who is at the other end of a connection.
 */
#ifndef SL_NET_TLS_H
#define SL_NET_TLS_H

#include <stdbool.h>

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>

#include "config.h"
#include "tlsconf.h"

/**
 * Register Sluice's TLS engine and, with a tls: section, build the server
 * configuration for tls+tcp:// listeners. Before any listener starts.
 * @return SL_OK; SL_ECONFIG (logged: a file changed since the config was
 *         checked); SL_ENOMEM.
 */
int net_tls_init(const sl_config *cfg);
/** Drop the configuration (listeners hold their own reference). */
void net_tls_fini(void);
/** The server configuration, or NULL without a tls: section. */
nng_tls_config *net_tls_server(void);

/**
 * Who sent a message: the verified client certificate of its connection
 * (mutual TLS). For authorization (issue 18): the subject and CN of a
 * certificate the configured CA (tls.ca_file) verified.
 * @return as sl_tls_peer: 1 verified (out filled), 0 TLS without a
 *         verified certificate, -1 not TLS.
 */
int net_tls_msg_peer(nng_msg *msg, sl_tls_peer_info *out);

/**
 * Log a new connection of a TLS listener with its client certificate's
 * subject ("who": the part logging, e.g. "server"); nothing for other
 * transports. On NNG's pipe callback: quick, never blocks.
 */
void net_tls_log_peer(const char *who, nng_pipe p);

#endif
