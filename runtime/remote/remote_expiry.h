/*
 * Registrations of clients long gone are freed (remote.registration_expiry_ms,
 * docs/remote.md): a thread of the runtime looks for registrations whose
 * client has been away that long, takes each out (remotes_unlink), stops
 * its processors, and frees all of it once no API request or metrics
 * scrape can still hold a pointer to it (rt->grace).
 */
#ifndef SL_REMOTE_EXPIRY_H
#define SL_REMOTE_EXPIRY_H

#include <stdint.h>

struct runtime;
typedef struct rt_expiry rt_expiry;

/**
 * Start the expiry of rt's registrations after gone_ms without a client.
 * @return SL_OK with *out (NULL with gone_ms 0: never); SL_ENOMEM;
 * SL_EINTERNAL (no thread).
 */
int expiry_start(struct runtime *rt, uint32_t gone_ms, rt_expiry **out);
/** Stop the thread (an expiry under way finishes, except its wait for
 * readers). NULL is ignored. */
void expiry_stop(rt_expiry *x);
/** Free what expired and was not freed yet, and x. Only once no reader
 * can hold a pointer to it (the API server and metrics are stopped), and
 * after expiry_stop. NULL is ignored. */
void expiry_free(rt_expiry *x);
/** Registrations expired so far (status, tests). */
uint64_t expiry_count(const rt_expiry *x);

#endif
