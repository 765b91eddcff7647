/*
 * The metrics endpoint (endpoints.metrics): Prometheus' text format over
 * NNG's HTTP server, GET on the configured path; any other path is 404.
 */
#ifndef SL_METRICS_H
#define SL_METRICS_H

typedef struct runtime runtime;
typedef struct metrics metrics;

/**
 * Serve rt's metrics on url (http://HOST:PORT/PATH; port 0 takes a free
 * one, metrics_url names it). Call once rt's store and tenants are open.
 * @return SL_OK; SL_ENOMEM; SL_ENET (cannot listen: logged).
 */
int metrics_start(runtime *rt, const char *url, metrics **out);
/** The URL served, with the port bound. */
const char *metrics_url(const metrics *m);
/** Stop serving (a scrape in progress finishes first) and free. NULL: no-op. */
void metrics_stop(metrics *m);

#endif
