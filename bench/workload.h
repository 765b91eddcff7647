/*
 * The generated data every benchmark uses, so that Sluice, the raw limits
 * and the SQLite baseline handle the same events: the ~300-byte events of
 * the append workload, and the Account Details workload (accounts opened,
 * customers registered, debits and withdrawals) of the catch-up.
 */
#ifndef SL_BENCH_WORKLOAD_H
#define SL_BENCH_WORKLOAD_H

#include <stddef.h>
#include <stdint.h>

#define WL_TENANT     "bench"
#define WL_PROJECTION "account_details"

/* The append workload: one event type, ~300 bytes of content. */
#define WL_APPEND_TYPE "DebitPerformed"

/** Content JSON of append event seq for stream (~300 bytes as msgpack). */
void wl_append_content(
    char *buf, size_t len, const char *stream, uint64_t seq);

/** An Account Details event: type, stream and content JSON. */
typedef struct wl_event {
	const char *type;
	char        stream[32];
	char        content[192];
} wl_event;

/** "acc-000042" for account a. */
void wl_account_id(char *buf, size_t len, uint32_t a);
/** The account's opening event (stream acc-X). */
void wl_open(wl_event *e, uint32_t a);
/** The account's customer registration (stream cust-X, account.id). */
void wl_customer(wl_event *e, uint32_t a);
/**
 * A money event of account a: a DebitPerformed or WithdrawalPerformed
 * (stream acc-X), chosen and sized from the PRNG state.
 */
void wl_money(wl_event *e, uint32_t a, uint64_t *rng);

#endif
