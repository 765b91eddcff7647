/*
 * Shared by the two halves of the remote processors: runtime/remote/remote.c (the
 * calls: connection, NNG contexts, keep-alive, the processors' callers) and
 * runtime/remote/remote_reg.c (registrations: requests, definitions, takeover,
 * status). Not for other modules: they use remote.h.
 */
#ifndef SL_REMOTE_INTERNAL_H
#define SL_REMOTE_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <msgpack.h>
#include <nng/nng.h>

#include "hist.h"
#include "monotime.h"
#include "mp.h"
#include "remote.h"

/* The remote protocol versions a register request may name (field
 * protocol): 1, one event per call; 2, many (docs/remote.md). */
#define REMOTE_PROTOCOL     2
#define REMOTE_PROTOCOL_MIN 1
/* Protocol 2: a call is cut before its body would pass this (an event
 * that passes it alone goes alone). */
#define REMOTE_MAX_CALL_BYTES (4u << 20)
/* Answers over this size fail the call; over twice it NNG drops the
 * connection (its receive limit). */
#define REMOTE_MAX_ANSWER    (16u << 20)
#define REMOTE_MAX_SELECTORS 1024
#define REMOTE_MAX_NAME      256 /* name, event types */
#define REMOTE_MAX_ARG       1024 /* a selector's property path, key or pattern */
#define REMOTE_MAX_PARTITION 255
#define REMOTE_MAX_DEPTH     32 /* nesting in an answer */

/* ---- types ---- */

/* A registration's definition: the proj_def processors run and the
 * host-owned vtable it points to (selectors, initial state; no callback). */
typedef struct rdef {
	proj_def      def; /* first: processors get &rdef->def */
	sl_projection proj;
	sl_filter     filt;
	sl_selector  *sels; /* event_type and arg malloc'ed */
	size_t        n_sels;
	struct rdef  *next; /* every definition of the registration */
} rdef;

enum { ABORT_NONE = 0, ABORT_DISCONNECTED = 1, ABORT_CLOSED = 2 };

/* One event's answer as the processor thread collects it: small, in an
 * array per call (ablock), so that the answers NNG's thread wrote are read
 * one after the other, several to a cache line, and nothing per event is
 * allocated or zeroed; a text only when the outcome has one. */
typedef struct answer {
	uint64_t tag;   /* the request's */
	void    *state; /* REPLACE: msgpack map (malloc'ed) */
	uint32_t state_len;
	uint32_t retry_after_ms;
	uint8_t  outcome; /* remote_outcome */
	bool     retry;
	/* malloc'ed: INCLUDED's partition, or the reason of FAILED,
	 * DISCONNECTED or SKIPPED; NULL: none (SKIPPED: the usual one) */
	char *text;
} answer;

/* The answers of one call (protocol 1: one; protocol 2: its events', in
 * the call's order), or of events the runtime answers itself. */
typedef struct ablock {
	struct ablock *next;
	uint64_t       call;
	uint32_t       n;  /* answers in a */
	uint32_t       at; /* the next to hand out (the caller's thread's) */
	answer         a[];
} ablock;

/* One NNG context and its aio: carries one call (or the ping) at a time. */
typedef struct slot {
	remote_proc   *rp;
	nng_ctx        ctx;
	nng_aio       *aio;
	remote_caller *owner; /* the caller of the call it carries */
	ablock        *blk;   /* its answers, allocated with the call */
	bool           batched; /* a protocol 2 call */
	bool           is_ping;
	/* rp->hello: the first call on a connection under auth, which the
	 * client answers with the registration's session */
	bool           is_hello;
	uint32_t       hello_pipe;    /* the connection it was sent on */
	uint64_t       hello_session; /* the session its answer must carry */
	bool           busy;
	bool           recv_phase; /* sent; waiting for the answer */
	int            abort;      /* ABORT_*: why it is being cancelled */
	uint64_t       call;
	int64_t        deadline_ms; /* monotonic */
	int64_t        sent_ns;     /* monotonic: slot_send (metrics) */
	def_kind       kind;        /* of the registration */
	sl_filter_kind fkind;       /* filters: partitioned answers */
	/* protocol 2 (its events' answers in blk, in call order): a
	 * projection's number of events of each run */
	uint32_t       *run_len;
	size_t          n_runs;
} slot;

/* Protocol 2: a projection's run of one key in the open batch. Its key,
 * state and retry state are packed once, in the call's wire form, into
 * the batch's heads; its events are a list through the batch's events
 * (no allocation per run, and the batch's bytes written in one place). */
typedef struct brun {
	size_t   key_off, klen;      /* the key's bytes in ob->heads */
	size_t   head_off, head_len; /* "key", "state", "retry" pairs */
	uint32_t first, last;        /* its events (ob->ev_next links them) */
	size_t   n;                  /* how many */
} brun;

/* Protocol 2: the events a caller has added and not sent yet, packed one
 * after the other into evs as the wire shows them. */
typedef struct obatch {
	brun           *runs; /* projections: one per key */
	size_t          n_runs, cap_runs;
	int32_t        *index; /* open addressing over runs: key -> i + 1 */
	size_t          index_cap;
	msgpack_sbuffer evs;     /* the events */
	msgpack_sbuffer retries; /* filters: retry states */
	msgpack_sbuffer heads;   /* projections: the runs' heads */
	/* per event (up to cap_ev, the batch): where it starts in evs, its
	 * request's tag, the next event of its run (projections) */
	size_t   *ev_at;
	uint64_t *tags;
	uint32_t *ev_next;
	size_t    cap_ev;
	/* the answers' block, made with the batch's first event (room for
	 * cap_ev): the call takes it, or its events are answered with it */
	ablock         *blk;
	size_t          n;      /* events */
	size_t          bytes;  /* their packed size, about */
	uint32_t        epoch;  /* rp->connects when the first was added */
	uint32_t        limit;  /* rp->batch then: most events */
	char           *tenant; /* the caller's (copied once) */
} obatch;

struct remote_caller {
	remote_proc   *rp;
	pthread_cond_t cv;
	ablock        *head, *tail; /* answers not yet collected */
	/* the caller's thread's own: answers taken from head..tail, not
	 * handed out yet */
	ablock        *mine;
	size_t         in_flight;   /* started, not collected (the caller's
	                               thread's own) */
	size_t         busy_slots;  /* slots carrying its calls */
	bool           closing;
	remote_caller *next;
	/* the processor thread's own, for packing calls */
	msgpack_zone    zone;
	msgpack_sbuffer buf;
	msgpack_packer  pk;
	obatch          ob; /* protocol 2 (thread-owned) */
};

struct remote_proc {
	remotes        *rs;
	char            id[37];
	def_kind        kind;
	rdef           *cur; /* current definition; older ones via next */
	uint32_t        window, keepalive_ms, timeout_ms;
	uint32_t        protocol; /* the current client's (1 or 2) */
	uint32_t        batch;    /* protocol 2: most events per call */
	nng_socket      sock;
	nng_listener    listener; /* the current URL's */
	bool            listening;
	char            url[320];
	uint64_t        session;
	pthread_mutex_t mu;
	pthread_cond_t  cv;       /* connected, closing or wake_gen changed */
	bool            has_pipe; /* a pipe was accepted (maybe not added) */
	bool            connected;
	bool            closing;
	nng_pipe        pipe;
	char            client[160];
	uint64_t        wake_gen;
	uint64_t        next_call;
	int64_t         last_activity_ms; /* monotonic: last send or answer */
	/* monotonic: since when no client is connected (registered, or the
	 * last disconnect); meaningless while has_pipe */
	int64_t         gone_since_ms;
	slot          **slots; /* every slot, for aborts and teardown */
	size_t          n_slots, cap_slots;
	slot          **free_slots;
	size_t          n_free;
	slot           *ping;
	/* under auth (remote_config.prove_clients): a new connection is
	 * proving until it answers hello with the session, and only then
	 * connected */
	slot           *hello;
	bool            proving;
	size_t          busy_calls; /* slots carrying calls (not the ping) */
	nng_aio        *timer;
	remote_caller  *callers;
	/* status */
	uint64_t calls, failed_calls;
	hist     call_latency; /* ns from send to answer, answered calls */
	uint32_t connects, registrations;
	int64_t  registered_at_ns, changed_at_ns;
	char     last_error[256];
	char     owner[65]; /* the credential that registered it; "" none */
};

struct remotes {
	remote_config   cfg; /* endpoint malloc'ed */
	pthread_mutex_t mu;
	remote_proc   **regs; /* max_registrations slots, never moved */
	size_t          n_regs;
	uint32_t        next_n; /* URL numbers: 1, 2, ... per listener */
	bool            closing;
};

struct remote_spec {
	uint32_t       protocol;
	def_kind       kind;
	sl_filter_kind fkind;
	char           id[37];
	char           scope[37];
	char          *name;
	uint32_t       version;
	char          *initial; /* projections: msgpack map */
	size_t         initial_len;
	sl_selector   *sels;
	size_t         n_sels;
	char           owner[65]; /* remote_spec_set_owner */
	uint32_t       owner_max; /* registrations owner may hold */
	bool           owner_capped;
};

/* ---- small helpers of both halves ---- */

static inline const char *
kind_word(def_kind k)
{
	return k == DEF_FILTER ? "filter" : "projection";
}

/* A field that counts as absent when missing or nil. */
static inline const msgpack_object *
field(const msgpack_object *m, const char *key)
{
	const msgpack_object *o = mp_get(m, key);
	return o == NULL || o->type == MSGPACK_OBJECT_NIL ? NULL : o;
}

/* ---- remote.c: the calls, for the registrations' side ---- */

/** A new slot (an NNG context and its aio) on rp's socket; NULL when out
 * of memory. */
slot *remote_slot_alloc(remote_proc *rp);
/** Record s among rp's slots (with rp->mu). @return false: out of memory. */
bool remote_slot_track(remote_proc *rp, slot *s);
/** Abort every call in flight (a disconnect, or stopping). With rp->mu NOT
 * held. */
void remote_abort_all(remote_proc *rp, int why);
/** Free a block of answers and what its answers not handed out hold.
 * NULL is ignored. */
void remote_ablock_free(ablock *b);
/** Free a caller and the answers it did not collect. */
void remote_caller_free(remote_caller *c);
/** The registration socket's pipe events (arg: the remote_proc). */
void remote_pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg);
/** The keep-alive timer's callback (arg: the remote_proc) and period. */
void         remote_timer_cb(void *arg);
nng_duration remote_tick_ms(const remote_proc *rp);

#endif
