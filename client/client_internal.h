/*
 * What the client library's parts share beyond the public headers: the
 * subscriptions (subscribe.c) report their errors through the client's
 * last-error text and free events as the reads do (client.c); get_all
 * (getall.c) sends its request and reads the reply in place.
 */
#ifndef SL_CLIENT_INTERNAL_H
#define SL_CLIENT_INTERNAL_H

#include <stddef.h>

#include <msgpack.h>
#include <nng/nng.h>

#include <sluice/client.h>

/** Set the text sl_client_last_error() returns (copied, truncated). */
void client_set_error(sl_client *c, const char *msg);
/** The same, formatted. */
void client_seterr(sl_client *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/** Start a request map: its "v" and "op" and n_fields more pairs to pack
 * with pk into sb (the caller destroys sb). */
void client_begin(
    msgpack_sbuffer *sb, msgpack_packer *pk, const char *op, size_t n_fields);

/** Send req[0..len) (with the client's token), receive the reply.
 * @return SL_OK with *out the reply (the caller frees it); SL_ENET,
 * SL_ETIMEDOUT, SL_ENOMEM with the error text set. */
int client_roundtrip(
    sl_client *c, const void *req, size_t len, nng_msg **out);

/** What a reply that is not a well-formed ok one says: its error code and
 * message (set as the error text), SL_EVERSION, or SL_EPROTO. Frees msg. */
int client_reply_error(sl_client *c, nng_msg *msg);

/** The TLS options the client was opened with (copies, living as long as
 * the client), or NULL. */
const sl_tls_options *client_tls_options(const sl_client *c);

/** A hint to add to NNG's error rv of dialing url, for TLS failures
 * ("" otherwise). Static text. */
const char *client_tls_hint(const char *url, int rv);

/** sl_client_read_ex, telling the daemon (gap: true) that the read fills
 * a gap of the live feed (messages the feed dropped or sent while the
 * subscriber was away), so its metrics can count them. */
int client_read_opts(sl_client *c, const sl_read_opts *opts, bool gap,
    sl_read_result *out);

/** sl_client_read_filter with the same gap mark. */
int client_read_filter_gap(sl_client *c, const char *tenant,
    const char *filter, const char *partition, uint64_t from, size_t max,
    bool gap, sl_filter_page *out);

/** Free the strings of one event (reads and the live feed) and zero it. */
void client_event_free(sl_read_event *e);

#endif
