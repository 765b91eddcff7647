/*
 * The admin page (endpoints.admin, off by default): static files on NNG's
 * HTTP server at PATH/, the API over WebSocket at PATH/api (req/rep, the
 * same requests as the API endpoint) and the live feed at PATH/feed (pub),
 * so that a browser needs nothing but the page (docs/operations.md).
 */
#ifndef SL_ADMIN_H
#define SL_ADMIN_H

typedef struct runtime runtime;
typedef struct admin   admin;

/**
 * Serve the page of files in the admin directory ($SLUICE_ADMIN_DIR, else
 * an installed daemon's DATADIR/sluice/admin, else the source tree's
 * admin/) on url (http://HOST:PORT/PATH; the port may be the metrics
 * endpoint's: one listener serves both). Call once rt's API server and
 * publisher run.
 * @return SL_OK; SL_ENOMEM; SL_ENOTFOUND (no admin directory); SL_ENET
 *         (cannot listen: logged).
 */
int admin_start(runtime *rt, const char *url, admin **out);
/** Stop serving the files (the API and feed listeners close with their
 * sockets) and free. NULL: no-op. */
void admin_stop(admin *a);

#endif
