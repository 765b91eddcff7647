/* Shared by the JavaScript host's files: heaps, the bounded call, the
 * loaded definition. Not part of any contract. */
#ifndef SL_JSPROJ_INTERNAL_H
#define SL_JSPROJ_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include <duktape.h>

#include "jsbudget.h"
#include "jsproj.h"

typedef struct jsblk jsblk;

/* One Duktape heap holding the evaluated script. A heap runs on one thread
 * at a time: the projection keeps a pool and a call takes one out. */
typedef struct jsheap {
	duk_context   *ctx;
	struct jsproj *owner;
	jsblk         *blocks; /* every live allocation, to drop the heap
	                          wholesale after a budget overrun */
	size_t         bytes;
	bool           refused; /* an allocation was refused by the cap */
	struct jsheap *next;    /* in the pool */
} jsheap;

struct jsproj {
	const sl_host_api *host;
	char              *path;
	const char        *file; /* basename of path, for reasons */
	char              *text; /* the script */
	jsproj_limits      lim;
	atomic_size_t      bytes; /* over all its heaps */

	pthread_mutex_t mu;
	jsheap         *pool;

	/* the definition read from the script */
	sl_projection proj;
	char         *id, *name;
	sl_selector  *sel;
	size_t        n_sel;
	sl_source    *src;
	size_t        n_src;
	char        **strs; /* owned strings the definition points to */
	size_t        n_strs;
	const char  **emits;
	size_t        n_emits;
	bool          has_init, has_created, has_deleted;
	bool          bistate;     /* $initShared / options.biState */
	const char   *shared_json; /* its initial shared state */
	size_t        n_transforms; /* transformBy() and filterBy() calls */
	bool          partition_fn; /* partitionBy(f): sl_projection.key */
	bool          id_given;     /* options.$id (else from the name) */
	bool          per_stream;   /* foreachStream() */
	/* outputTo() / options.resultStreamName: the result streams (kept
	 * strings; NULL: the host's default) */
	const char *result_stream, *partition_pattern;
};

/* A call's host side, for the natives (emit, linkTo) on this thread. */
typedef struct jscall {
	jsproj         *p;
	const sl_event *ev;
	sl_context     *ctx;
} jscall;

/* A body run under jsheap_run: the heap's value stack is as the caller
 * left it; return 0, or throw (duk_error) with the reason. */
typedef duk_ret_t (*jsbody)(duk_context *ctx, void *arg);

/* Take a heap with the script evaluated (from the pool or a new one);
 * NULL with why on failure. */
jsheap *jsheap_take(jsproj *p, char *why, size_t len);
/* Give a heap back to the pool. */
void jsheap_give(jsheap *h);
/* Drop a heap (after an overrun its insides are not to be touched). */
void jsheap_drop(jsheap *h);
/*
 * Run body in a protected call with the CPU budget armed while script runs
 * (jsheap_script_begin/end mark it). @return SL_OK, or SL_EPLUGIN with why
 * ("file:line: message"); *dead is set when the heap must be dropped
 * (budget overrun, memory cap, engine failure).
 */
int jsheap_run(jsheap *h, jsbody body, void *arg, jscall *call, bool *dead,
    char *why, size_t len);
/* Around the parts of a body that run script (the budget counts these). */
static inline void
jsheap_script_begin(void)
{
	jsb_script_begin();
}
static inline void
jsheap_script_end(void)
{
	jsb_script_end();
}
/* Around host calls from natives: a budget signal waits until the end. */
static inline void
jsheap_guard_begin(void)
{
	jsb_guard_begin();
}
static inline void
jsheap_guard_end(void)
{
	jsb_guard_end();
}
/* The call running on this thread (for natives). */
jscall *jsheap_call(void);

/* Where the error at the top of ctx's stack came from, as
 * "file:line: Error: message". */
void jsheap_error_text(jsproj *p, duk_context *ctx, char *buf, size_t len);

/* Define the globals a script may call (jscall.c). */
void jscall_define_globals(duk_context *ctx);
/* Destroy the heaps in p's pool (at close). */
void jsheap_pool_free(jsproj *p);

/* The sl_projection callbacks (jscall.c); user is the jsproj. */
sl_outcome jscall_on(void *user, const sl_event *ev, const char *key,
    sl_state *st, sl_context *ctx);
sl_outcome jscall_created(void *user, const sl_event *ev, const char *key,
    sl_state *st, sl_context *ctx);
sl_outcome jscall_deleted(void *user, const char *stream, const char *key,
    sl_state *st, sl_context *ctx);
int        jscall_key(void *user, const sl_event *ev, char *buf, size_t len);
sl_outcome jscall_result(
    void *user, const char *key, const sl_state *state, sl_state *result);
sl_outcome jscall_result_reason(void *user, const char *key,
    const sl_state *state, sl_state *result, char *why, size_t whylen);

#endif
