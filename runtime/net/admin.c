/*
 * The admin page: static files, and the API and the live feed over
 * WebSocket on the same listener (admin.h).
 */
#include "admin.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/supplemental/http/http.h>

#include <sluice/errors.h>

#include "fsutil.h"
#include "listen.h"
#include "log.h"
#include "publisher.h"
#include "runtime.h"
#include "server.h"

struct admin {
	nng_http_server *srv;
	nng_url         *url;
};

/* The directory of the page's files, into buf. */
static bool
admin_dir(char *buf, size_t size)
{
	const char *env = getenv("SLUICE_ADMIN_DIR");
	if (env != NULL && *env != '\0') {
		snprintf(buf, size, "%s", env);
		return access(buf, R_OK) == 0;
	}
#ifdef SL_ADMIN_FROM_BIN
	char real[PATH_MAX];
	if (fs_beside_exe(SL_ADMIN_FROM_BIN "/index.html", buf, size) == 0
	    && realpath(buf, real) != NULL) {
		*strrchr(real, '/') = '\0';
		snprintf(buf, size, "%s", real);
		return true;
	}
#endif
#ifdef SL_ADMIN_SOURCE_DIR
	snprintf(buf, size, "%s", SL_ADMIN_SOURCE_DIR);
	return access(buf, R_OK) == 0;
#else
	return false;
#endif
}

int
admin_start(runtime *rt, const char *url, admin **out)
{
	char dir[PATH_MAX], ws[1024];
	*out = NULL;
	if (!admin_dir(dir, sizeof(dir))) {
		log_error("admin",
		    "no admin page to serve: set SLUICE_ADMIN_DIR to its "
		    "directory");
		return SL_ENOTFOUND;
	}
	admin *a = calloc(1, sizeof(*a));
	if (a == NULL)
		return SL_ENOMEM;
	nng_http_handler *h  = NULL;
	int               rv = nng_url_parse(&a->url, url);
	if (rv == 0)
		rv = nng_http_server_hold(&a->srv, a->url);
	if (rv == 0)
		rv = nng_http_handler_alloc_directory(&h, a->url->u_path, dir);
	if (rv == 0)
		rv = nng_http_server_add_handler(a->srv, h);
	else if (h != NULL)
		nng_http_handler_free(h);
	if (rv == 0)
		rv = nng_http_server_start(a->srv);
	if (rv != 0) {
		log_error("admin", "cannot serve %s: %s", url, nng_strerror(rv));
		admin_stop(a);
		return SL_ENET;
	}
	/* the same listener (its port as bound): PATH/api and PATH/feed */
	int rc = SL_OK;
	net_http_bound(a->srv, a->url, "ws", "/api", ws, sizeof(ws));
	/* the feed of every tenant: not under auth (it has none) */
	if ((rc = server_listen_also(rt->srv, ws)) == SL_OK && rt->pub != NULL
	    && !rt->cfg->auth_on) {
		net_http_bound(a->srv, a->url, "ws", "/feed", ws, sizeof(ws));
		rc = pub_listen_also(rt->pub, ws);
	}
	if (rc != SL_OK) {
		admin_stop(a);
		return rc;
	}
	net_http_bound(a->srv, a->url, "http", "/", ws, sizeof(ws));
	log_info("admin", "serving the admin page from %s on %s", dir, ws);
	*out = a;
	return SL_OK;
}

void
admin_stop(admin *a)
{
	if (a == NULL)
		return;
	if (a->srv != NULL)
		nng_http_server_release(a->srv);
	if (a->url != NULL)
		nng_url_free(a->url);
	free(a);
}
