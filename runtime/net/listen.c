/*
 * Listening with the daemon's socket access (listen.h).
 */
#include "listen.h"

#include <errno.h>
#include <stdio.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include <nng/supplemental/http/http.h>

#include "log.h"
#include "tls.h"

static uint32_t sock_mode = 0660;
static long     sock_gid  = -1;

void
net_access_init(uint32_t socket_mode, long gid)
{
	sock_mode = socket_mode;
	sock_gid  = gid;
}

int
net_listen(nng_socket s, const char *url, nng_listener *out)
{
	nng_listener l;
	bool         ipc = strncmp(url, "ipc://", 6) == 0;
	bool         tls = sl_tls_url(url);
	int          rv;
	/* checked at load: a tls+tcp:// endpoint has a tls: section */
	if (tls && net_tls_server() == NULL)
		return NNG_EINVAL;
	if ((rv = nng_listener_create(&l, s, url)) != 0)
		return rv;
	/* NNG sets the mode right after bind(), before any peer connects */
	if ((ipc
	        && (rv = nng_listener_set_int(
	                l, NNG_OPT_IPC_PERMISSIONS, (int) sock_mode))
	            != 0)
	    || (tls
	        && (rv = nng_listener_set_ptr(
	                l, NNG_OPT_TLS_CONFIG, net_tls_server()))
	            != 0)
	    || (rv = nng_listener_start(l, 0)) != 0) {
		nng_listener_close(l);
		return rv;
	}
	if (ipc && sock_gid >= 0
	    && chown(url + 6, (uid_t) -1, (gid_t) sock_gid) != 0) {
		log_error("listen", "cannot give %s to group %ld: %s", url + 6,
		    sock_gid, strerror(errno));
		nng_listener_close(l);
		return NNG_EPERM;
	}
	if (out != NULL)
		*out = l;
	return 0;
}

void
net_http_bound(struct nng_http_server *srv, const nng_url *url,
    const char *scheme, const char *suffix, char *out, size_t size)
{
	nng_sockaddr sa;
	unsigned     port = 0;
	if (nng_http_server_get_addr(srv, &sa) == 0) {
		uint16_t p = sa.s_family == NNG_AF_INET6 ? sa.s_in6.sa_port
		                                         : sa.s_in.sa_port;
		port = (unsigned) (uint16_t) ((p >> 8) | (p << 8)); /* network
		                                                      order */
	}
	const char *path = url->u_path;
	size_t      plen = strlen(path);
	while (plen > 0 && path[plen - 1] == '/' && *suffix != '\0')
		plen--;
	snprintf(out, size, "%s://%s:%u%.*s%s", scheme, url->u_hostname, port,
	    (int) plen, path, suffix);
}
