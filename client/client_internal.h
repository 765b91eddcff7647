/*
 * What the client library's parts share beyond the public headers: the
 * subscriptions (subscribe.c) report their errors through the client's
 * last-error text and free events as the reads do (client.c).
 */
#ifndef SL_CLIENT_INTERNAL_H
#define SL_CLIENT_INTERNAL_H

#include <sluice/client.h>

/** Set the text sl_client_last_error() returns (copied, truncated). */
void client_set_error(sl_client *c, const char *msg);

/** The TLS options the client was opened with (copies, living as long as
 * the client), or NULL. */
const sl_tls_options *client_tls_options(const sl_client *c);

/** A hint to add to NNG's error rv of dialing url, for TLS failures
 * ("" otherwise). Static text. */
const char *client_tls_hint(const char *url, int rv);

/** Free the strings of one event (reads and the live feed) and zero it. */
void client_event_free(sl_read_event *e);

#endif
