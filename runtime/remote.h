/*
 * Remote processors (Dolittle's reverse calls): a client process registers
 * a projection or a filter over the API (op "register"); the runtime then
 * calls the client back for each event over a connection of that
 * registration, and keeps the log, checkpoints, retries and read models
 * itself. The wire protocol is docs/remote.md.
 *
 * A registration is a proj_def like a plugin's (def->remote set, p and f
 * NULL): the same processor code runs it, with the same checkpoints, failing
 * units, rebuilds and status. Only the handler call differs: instead of
 * calling the plugin, the processor starts calls on the remote_proc and
 * collects their answers, up to `window` in flight.
 *
 * Threads: remote_call_start / remote_call_next are called by the one
 * processor thread of each (tenant, registration); the connection's own
 * I/O runs on NNG's threads. Several tenants' processors share one
 * remote_proc: calls carry the tenant, answers are routed back to the
 * processor that started them (by its remote_caller).
 */
#ifndef SL_REMOTE_H
#define SL_REMOTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct remote_proc   remote_proc;
typedef struct remote_caller remote_caller;

/** One call: an event for a projection (with its key and state) or a
 * filter. All pointers borrowed until remote_call_start returns. */
typedef struct remote_req {
	const char *tenant;
	const void *event; /* the stored event (as the log holds it) */
	size_t      event_len;
	uint64_t    position;
	const char *key;   /* projections: the read model key; else NULL */
	const void *state; /* projections: msgpack map (current or initial) */
	size_t      state_len;
	uint32_t    attempt;     /* retry state: 0 on the first try */
	const char *last_reason; /* "" if none */
} remote_req;

typedef enum remote_outcome {
	REMOTE_REPLACE  = 0, /* projections: state is the new state */
	REMOTE_DELETE   = 1,
	REMOTE_INCLUDED = 2, /* filters: partition set when partitioned */
	REMOTE_EXCLUDED = 3,
	REMOTE_FAILED   = 4, /* reason, retry, retry_after_ms */
	/* not the handler's answer: the client is gone (or never came); the
	 * processor waits, without counting an attempt, until it is back */
	REMOTE_DISCONNECTED = 5,
} remote_outcome;

/** An answer. Owned by the caller of remote_call_next until
 * remote_resp_free. */
typedef struct remote_resp {
	uint64_t       call; /* as remote_call_start returned */
	remote_outcome outcome;
	void          *state; /* REPLACE: msgpack map (malloc'ed) */
	size_t         state_len;
	char           partition[256]; /* INCLUDED by a partitioned filter */
	char           reason[512];    /* FAILED: why (timeouts, garbage too) */
	bool           retry;
	uint32_t       retry_after_ms;
} remote_resp;

void remote_resp_free(remote_resp *r);

/** A processor's handle for its calls (one per processor thread). */
int  remote_caller_open(remote_proc *r, remote_caller **out);
void remote_caller_close(remote_caller *c);

/**
 * Send one call. Never blocks on the network.
 * @return SL_OK with *call set; SL_EFULL when this caller already has
 * `window` calls in flight (collect an answer first); SL_ECLOSED when the
 * client is not connected (nothing sent).
 */
int remote_call_start(remote_caller *c, const remote_req *req, uint64_t *call);
/**
 * The next answer to one of this caller's calls, in any order, waiting at
 * most timeout_ms. A call the client does not answer within the
 * registration's call timeout is answered REMOTE_FAILED (retry) here; a
 * malformed answer likewise; calls lost with the connection are answered
 * REMOTE_DISCONNECTED.
 * @return SL_OK; SL_ETIMEDOUT (nothing in time); SL_ENOTFOUND (no call in
 * flight).
 */
int remote_call_next(remote_caller *c, int timeout_ms, remote_resp *out);
/** Calls in flight for this caller. */
size_t remote_calls_in_flight(const remote_caller *c);
/** The window: calls in flight allowed per caller (>= 1). */
uint32_t remote_window(const remote_proc *r);
/** Whether the client is connected now. */
bool remote_connected(const remote_proc *r);
/**
 * Wait (at most timeout_ms) until the client is connected; returns early
 * when remote_wake is called. @return whether it is connected.
 */
bool remote_wait_connected(remote_proc *r, int timeout_ms);
/** Wake every remote_wait_connected (a processor stopping). */
void remote_wake(remote_proc *r);

#endif
