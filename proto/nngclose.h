/*
 * A bounded nng_close, for the daemon and the client library alike.
 *
 * NNG 1.5.2 (Debian 12's libnng) can hang for good in nng_close() of a
 * socket whose peers are still sending or going away: its reaper waits on a
 * task that never runs (nanomsg/nng#1543, #1813, fixed upstream after 1.7).
 * The close runs on a helper thread; if it has not finished in time the
 * socket is left to the process exit instead of hanging the caller.
 */
#ifndef SL_NNGCLOSE_H
#define SL_NNGCLOSE_H

#include <stdbool.h>

#include <nng/nng.h>

/** Close sock, waiting at most ms. @return false if it was abandoned. */
bool sl_nng_close_bounded(nng_socket sock, int ms);

#endif
