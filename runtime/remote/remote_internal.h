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

#include "monotime.h"
#include "mp.h"
#include "remote.h"

/* The remote protocol version a register request names (field protocol). */
#define REMOTE_PROTOCOL 1
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

typedef struct answer {
	remote_resp    resp;
	struct answer *next;
} answer;

/* One NNG context and its aio: carries one call (or the ping) at a time. */
typedef struct slot {
	remote_proc   *rp;
	nng_ctx        ctx;
	nng_aio       *aio;
	remote_caller *owner; /* the caller of the call it carries */
	struct answer *ans;   /* its answer's node, allocated with the call */
	bool           is_ping;
	bool           busy;
	bool           recv_phase; /* sent; waiting for the answer */
	int            abort;      /* ABORT_*: why it is being cancelled */
	uint64_t       call;
	int64_t        deadline_ms; /* monotonic */
	def_kind       kind;        /* of the registration */
	sl_filter_kind fkind;       /* filters: partitioned answers */
} slot;

struct remote_caller {
	remote_proc   *rp;
	pthread_cond_t cv;
	answer        *head, *tail; /* answers not yet collected */
	size_t         in_flight;   /* started, not collected */
	size_t         busy_slots;  /* slots carrying its calls */
	bool           closing;
	remote_caller *next;
	/* the processor thread's own, for packing calls */
	msgpack_zone    zone;
	msgpack_sbuffer buf;
	msgpack_packer  pk;
};

struct remote_proc {
	remotes        *rs;
	char            id[37];
	def_kind        kind;
	rdef           *cur; /* current definition; older ones via next */
	uint32_t        window, keepalive_ms, timeout_ms;
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
	slot          **slots; /* every slot, for aborts and teardown */
	size_t          n_slots, cap_slots;
	slot          **free_slots;
	size_t          n_free;
	slot           *ping;
	size_t          busy_calls; /* slots carrying calls (not the ping) */
	nng_aio        *timer;
	remote_caller  *callers;
	/* status */
	uint64_t calls, failed_calls;
	uint32_t connects, registrations;
	int64_t  registered_at_ns, changed_at_ns;
	char     last_error[256];
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
/** Free a caller and the answers it did not collect. */
void remote_caller_free(remote_caller *c);
/** The registration socket's pipe events (arg: the remote_proc). */
void remote_pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg);
/** The keep-alive timer's callback (arg: the remote_proc) and period. */
void         remote_timer_cb(void *arg);
nng_duration remote_tick_ms(const remote_proc *rp);

#endif
