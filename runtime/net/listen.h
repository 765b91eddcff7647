/*
 * Listening on an NNG URL with the daemon's socket access (docs/security.md):
 * an ipc:// socket file gets access.socket_mode (0660 by default) and, with
 * access.group, that group, whatever the process umask; a tls+tcp://
 * listener gets the daemon's TLS configuration (tls.h, net_tls_init).
 */
#ifndef SL_LISTEN_H
#define SL_LISTEN_H

#include <stdint.h>

#include <nng/nng.h>

/* Mode and group (-1: the daemon's) of the ipc sockets listened on from
 * now on. */
void net_access_init(uint32_t socket_mode, long gid);

/*
 * nng_listen with the access above; *out (may be NULL) receives the
 * started listener. @return 0 or NNG's error (nothing left listening).
 */
int net_listen(nng_socket s, const char *url, nng_listener *out);

struct nng_http_server;
/*
 * The URL an HTTP server of url is reached at, its port as bound (url may
 * say port 0): scheme "://" host ":" port path suffix, into out.
 */
void net_http_bound(struct nng_http_server *srv, const nng_url *url,
    const char *scheme, const char *suffix, char *out, size_t size);

#endif
