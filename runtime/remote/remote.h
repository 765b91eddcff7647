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
 * Protocol 2 (a registration's choice) carries many events per call: the
 * processor still starts one remote_req per event and gets one remote_resp
 * per event back (by its tag), but remote_call_start only adds the event
 * to the caller's open batch (a run per key) and remote_call_flush sends
 * that batch as one call. The answer to a run is split back into per-event
 * answers: REMOTE_APPLIED for the run's events before its last applied one,
 * REPLACE or DELETE for that one, FAILED for the first failing one and
 * REMOTE_SKIPPED for the events after it (not applied: they wait with the
 * unit, as after any failure).
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

#include <msgpack.h>

#include "hist.h"
#include "plugins.h"

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
	uint64_t    tag;         /* the caller's: given back in the answer */
	/* the event already decoded from event (ev_decode), or NULL */
	const struct ev_view *view;
	/* with view: the event as that decode read it in place
	 * (ev_decode_raw), or NULL */
	const struct ev_raw *raw;
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
	/* protocol 2, projections: the event took effect; the state of its
	 * run's last applied event (REPLACE or DELETE) carries it */
	REMOTE_APPLIED = 6,
	/* protocol 2: an event after the failing one of its run (or of a call
	 * that failed whole): not applied, it waits with its unit */
	REMOTE_SKIPPED = 7,
} remote_outcome;

/** An answer. Owned by the caller of remote_call_next until
 * remote_resp_free. */
typedef struct remote_resp {
	uint64_t       call; /* the call that carried it (protocol 2: shared) */
	uint64_t       tag;  /* the request's tag */
	remote_outcome outcome;
	void          *state; /* REPLACE: msgpack map (malloc'ed) */
	size_t         state_len;
	bool           retry;
	uint32_t       retry_after_ms;
	/* the texts last: remote_call_next writes only the one the outcome
	 * carries (partition or reason; both "" otherwise) */
	char partition[256]; /* INCLUDED by a partitioned filter */
	char reason[512];    /* FAILED: why (timeouts, garbage too) */
} remote_resp;

void remote_resp_free(remote_resp *r);

/** A processor's handle for its calls (one per processor thread). */
int  remote_caller_open(remote_proc *r, remote_caller **out);
void remote_caller_close(remote_caller *c);

/**
 * Protocol 1: send one call. Protocol 2: add the event to this caller's
 * open batch (a projection's event to its key's run: req->state counts
 * only for the run's first event), sent by remote_call_flush. Never blocks
 * on the network.
 * @return SL_OK with *call set (protocol 2: 0, the call is not made yet);
 * SL_EFULL when this caller already has `window` calls in flight (protocol
 * 1: collect an answer first) or the open batch is full (protocol 2:
 * `batch` events, or the event would take the call over
 * REMOTE_MAX_CALL_BYTES: flush first); SL_ECLOSED when the client is not
 * connected (nothing sent). Protocol 2 with a batch open: the registration
 * is not looked at again (no lock per event); a client gone meanwhile is
 * found by remote_call_flush, which drops the batch.
 */
int remote_call_start(remote_caller *c, const remote_req *req, uint64_t *call);
/**
 * Protocol 2: send the open batch as one call (nothing to do when it is
 * empty, or under protocol 1).
 * @return SL_OK; SL_EFULL (`window` calls in flight: collect first);
 * SL_ECLOSED (the client is gone, or another connection than the batch's
 * first event saw: the batch is dropped, its events are answered
 * REMOTE_DISCONNECTED); SL_ENOMEM (likewise dropped).
 */
int remote_call_flush(remote_caller *c);
/** Drop this caller's open batch: its events are answered
 * REMOTE_DISCONNECTED (a batch given up). */
void remote_call_discard(remote_caller *c);
/** Events in this caller's open batch (protocol 2). */
size_t remote_call_open(const remote_caller *c);
/** The protocol (1 or 2) and the most events per call (1 under protocol
 * 1) of the registration's current client. */
uint32_t remote_protocol(const remote_proc *r);
uint32_t remote_batch(const remote_proc *r);
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
/** Whether remote_call_next would return an answer without waiting. */
bool remote_call_ready(remote_caller *c);
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

/* ---- registrations (the runtime's side; processors use the calls above)
 * ----
 *
 * A registration lives until the runtime stops, or until it expires (its
 * client gone for remote.registration_expiry_ms, remotes_unlink): its
 * remote_proc, its NNG req0 socket and every definition it had (retired
 * ones too, like a plugin's) stay valid until then. Pointers to its
 * definitions (remotes_find, remotes_list, a processor's status) are
 * valid to readers inside a grace section (runtime/grace.h): the runtime
 * frees an expired registration only after those readers left. A
 * registration of an id whose client is gone takes it over: a fresh
 * listening URL and session, the same remote_proc, and a new definition
 * when the content changed.
 */

/** The `remote:` section of resources.yaml. */
typedef struct remote_config {
	/* base of each registration's URL: ipc://PATH (PATH-<n>.ipc),
	 * inproc://NAME (NAME-<n>) or tcp://HOST:0 (a port each) */
	const char *endpoint;
	uint32_t    keepalive_ms; /* ping after this long without traffic */
	uint32_t    timeout_ms;   /* a call (or ping) not answered: failed */
	uint32_t    window;       /* calls in flight per processor */
	uint32_t    batch;        /* protocol 2: most events per call */
	uint32_t    max_registrations;
	/* a new connection must prove it holds the registration (answer
	 * op "hello" with the session the register reply gave) before any
	 * call: binds the connection to whoever registered (auth on) */
	bool prove_clients;
} remote_config;

/** Every registration of one runtime. */
typedef struct remotes remotes;

/** @return SL_OK; SL_EINVAL (bad config); SL_ENOMEM. cfg is copied. */
int remotes_create(const remote_config *cfg, remotes **out);
/**
 * Stopping, step one (before the processors stop): refuse new
 * registrations and calls, answer every call in flight
 * REMOTE_DISCONNECTED and wake every remote_wait_connected.
 */
void remotes_shutdown(remotes *rs);
/** Stopping, step two (after the processors stopped): close the sockets
 * and free every registration and definition. NULL is ignored. */
void remotes_destroy(remotes *rs);

/** A checked registration request (op "register"), owning its copies. */
typedef struct remote_spec remote_spec;

/**
 * Check the fields of a register request (docs/remote.md) and copy them.
 * @param req  the request map (its v and op already checked)
 * @return SL_OK with *out (free with remote_spec_free); SL_EINVAL (a missing
 * field, a bad value: ids, name, kind, filter_kind, selectors), SL_EPROTO (a
 * field of the wrong type), SL_ETOOBIG (a field over its limit), SL_EVERSION
 * (field protocol is not 1 or 2), SL_ENOMEM; err names the field.
 */
int remote_spec_parse(const msgpack_object *req, remote_spec **out,
    char *err, size_t errlen);
void remote_spec_free(remote_spec *s);
/**
 * The credential registering (docs/security.md): a takeover of an id
 * needs the same owner (else SL_EACCES), and a new id is refused with
 * SL_ETOOBIG once owner holds max registrations. Not called: no owner
 * ("", auth off), no cap of its own. owner is copied (at most 64 bytes).
 */
void remote_spec_set_owner(remote_spec *s, const char *owner, uint32_t max);

/** What a registration did. */
typedef enum remote_reg_kind {
	REMOTE_REG_NEW     = 0, /* a new id: processors are to be started */
	REMOTE_REG_SAME    = 1, /* took over an id, same definition */
	REMOTE_REG_CHANGED = 2, /* took over an id, another definition */
} remote_reg_kind;

/** The result of remote_register; strings copied. */
typedef struct remote_reg_result {
	remote_reg_kind kind;
	const proj_def *def;     /* the definition to run from now on */
	const proj_def *old_def; /* takeover: the previous one (== def when
	                            nothing changed); NULL when new */
	char     url[320];       /* where the client dials */
	uint64_t session;        /* sent in every call of this registration */
	uint32_t window, keepalive_ms, timeout_ms;
	uint32_t protocol, batch; /* the client's protocol; its batch (2) */
} remote_reg_result;

/**
 * Register a remote projection or filter, or take over the id of one whose
 * client is gone. Serialised with itself; call it from one thread at a time
 * per id (the runtime holds a lock around it and the processor start).
 * @param plugins  ids of the registry's projections and filters are refused
 * @return SL_OK; SL_EEXIST (a plugin has the id, a connected client has
 * registered it, or it is registered as the other kind); SL_ETOOBIG
 * (max_registrations reached); SL_ENET (cannot listen); SL_ECLOSED (the
 * runtime is stopping); SL_ENOMEM. err says why. Nothing changes on error.
 */
int remote_register(remotes *rs, const remote_spec *spec, registry *plugins,
    remote_reg_result *out, char *err, size_t errlen);

/** The current definition of a registration by id (UUID text, any case) or
 * name, NULL if none. Valid until remotes_destroy, or (an expired one)
 * while the caller stays in the grace section it found it in. */
const proj_def *remotes_find(remotes *rs, const char *id_or_name, size_t len);
/** How many registrations (ids) there are now. */
size_t remotes_count(remotes *rs);

/** What status shows of a registration. */
typedef struct remote_info {
	const proj_def *def; /* current definition */
	char     url[320];
	bool     connected;
	char     client[160]; /* the client's address; "" when none */
	uint64_t session;
	size_t   in_flight;     /* calls sent, not yet answered (all tenants) */
	uint64_t calls;         /* calls sent (pings not counted) */
	uint64_t failed_calls;  /* timed out or malformed answers */
	uint32_t connects;      /* connections accepted */
	uint32_t registrations; /* register requests taken (1 + takeovers) */
	int64_t  registered_at_ns; /* the last one, wall clock */
	int64_t  changed_at_ns;    /* last connect or disconnect; 0: never */
	char     last_error[256];  /* last timeout, malformed answer or
	                              disconnect; "" if none */
	uint32_t window, keepalive_ms, timeout_ms;
	uint32_t protocol, batch;
	char     owner[65]; /* the credential that registered it; "" none */
	hist     call_latency; /* answered calls: ns from send to answer */
} remote_info;

/**
 * Every registration at one moment, in registration order.
 * @param out  malloc'ed (free()); NULL when there are none. Its def
 * pointers as remotes_find's.
 * @return SL_OK with *n; SL_ENOMEM (none listed).
 */
int remotes_list(remotes *rs, remote_info **out, size_t *n);

/**
 * The ids of at most max registrations whose client has been gone (not
 * connected, none connecting; or never came) for gone_ms or longer.
 * @return how many; 0 with gone_ms 0 (never) or while stopping.
 */
size_t remotes_expired(
    remotes *rs, uint32_t gone_ms, char (*ids)[37], size_t max);
/**
 * Take registration id out if its client is still gone for gone_ms: it is
 * no longer found, listed or counted (its slot in max_registrations and
 * its owner's are free), a connection to it is refused, its URL is closed,
 * its calls in flight are answered REMOTE_DISCONNECTED and its processors'
 * waits end. Call it with the runtime's registration lock held, so that
 * the id is not registered again before its processors are stopped.
 * @return the registration, to free with remote_proc_free once its
 * processors have stopped and no reader can hold its definitions; NULL
 * when it is not registered, or its client came back.
 */
remote_proc *remotes_unlink(remotes *rs, const char *id, uint32_t gone_ms);
/** The id of a registration (UUID text). */
const char *remote_proc_id(const remote_proc *rp);
/** Free an unlinked registration: its socket, definitions, everything. */
void remote_proc_free(remote_proc *rp);

#endif
