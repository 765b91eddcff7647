/*
 * Duktape heaps for the JavaScript host, and the bounds on a script: every
 * allocation goes through a counting allocator (the memory cap per
 * projection), and every call runs under a CPU-time budget. Debian's
 * Duktape is built without DUK_USE_EXEC_TIMEOUT_CHECK (bench/RESULTS.md),
 * so the budget is a per-thread CPU-time timer whose signal leaves the
 * engine with siglongjmp while script runs; the heap is then dropped
 * whole (its blocks are all on a list), never touched again.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "jsproj_internal.h"

struct jsblk {
	jsblk *prev, *next;
	size_t size;
	size_t pad; /* keeps the payload 16-byte aligned */
};

/* ---- the budget (jsbudget.c, shared by every copy of the host) ---- */

static __thread jscall *t_call;
static __thread char    t_fatal[256];

enum { JMP_BUDGET = JSB_JMP_BUDGET, JMP_FATAL = 2 };

int
jsproj_init(void)
{
	return jsb_init() == 0 ? SL_OK : SL_EPLUGIN;
}

void
jsproj_fini(void)
{
	/* the signal and the threads' timers belong to libsluice_jsbudget,
	 * which stays */
}

jscall *
jsheap_call(void)
{
	return t_call;
}

/* ---- the counting allocator ---- */

static void
blk_link(jsheap *h, jsblk *b)
{
	b->prev = NULL;
	b->next = h->blocks;
	if (h->blocks != NULL)
		h->blocks->prev = b;
	h->blocks = b;
}

static void
blk_unlink(jsheap *h, jsblk *b)
{
	if (b->prev != NULL)
		b->prev->next = b->next;
	else
		h->blocks = b->next;
	if (b->next != NULL)
		b->next->prev = b->prev;
}

static bool
over_cap(jsheap *h, size_t more)
{
	jsproj *p = h->owner;
	if (atomic_load(&p->bytes) + more > p->lim.memory_bytes) {
		h->refused = true;
		return true;
	}
	return false;
}

static void *
js_alloc(void *udata, duk_size_t size)
{
	jsheap *h   = udata;
	void   *out = NULL;
	jsheap_guard_begin();
	if (!over_cap(h, size)) {
		jsblk *b = malloc(sizeof(jsblk) + size);
		if (b != NULL) {
			b->size = size;
			blk_link(h, b);
			h->bytes += size;
			atomic_fetch_add(&h->owner->bytes, size);
			out = b + 1;
		}
	}
	jsheap_guard_end();
	return out;
}

static void
js_free(void *udata, void *ptr)
{
	jsheap *h = udata;
	if (ptr == NULL)
		return;
	jsheap_guard_begin();
	jsblk *b = (jsblk *) ptr - 1;
	blk_unlink(h, b);
	h->bytes -= b->size;
	atomic_fetch_sub(&h->owner->bytes, b->size);
	free(b);
	jsheap_guard_end();
}

static void *
js_realloc(void *udata, void *ptr, duk_size_t size)
{
	jsheap *h = udata;
	if (ptr == NULL)
		return js_alloc(udata, size);
	if (size == 0) {
		js_free(udata, ptr);
		return NULL;
	}
	void *out = NULL;
	jsheap_guard_begin();
	jsblk *b   = (jsblk *) ptr - 1;
	size_t old = b->size;
	if (size <= old || !over_cap(h, size - old)) {
		blk_unlink(h, b);
		jsblk *nb = realloc(b, sizeof(jsblk) + size);
		if (nb == NULL)
			nb = b; /* unchanged: put it back */
		else {
			nb->size = size;
			h->bytes = h->bytes - old + size;
			if (size > old)
				atomic_fetch_add(&h->owner->bytes, size - old);
			else
				atomic_fetch_sub(&h->owner->bytes, old - size);
			out = nb + 1;
		}
		blk_link(h, nb);
	}
	jsheap_guard_end();
	return out;
}

static void
js_fatal(void *udata, const char *msg)
{
	(void) udata;
	snprintf(t_fatal, sizeof(t_fatal), "%s", msg ? msg : "?");
	sigjmp_buf *jmp = jsb_jmp();
	if (jmp != NULL)
		siglongjmp(*jmp, JMP_FATAL);
	/* outside a call the engine is never used: cannot happen */
	abort();
}

/* ---- heaps ---- */

void
jsheap_drop(jsheap *h)
{
	if (h == NULL)
		return;
	jsblk *b = h->blocks;
	while (b != NULL) {
		jsblk *next = b->next;
		atomic_fetch_sub(&h->owner->bytes, b->size);
		free(b);
		b = next;
	}
	free(h);
}

static void
heap_destroy(jsheap *h)
{
	duk_destroy_heap(h->ctx);
	jsheap_drop(h); /* what the engine left, if anything */
}

void
jsheap_give(jsheap *h)
{
	jsproj *p = h->owner;
	pthread_mutex_lock(&p->mu);
	h->next = p->pool;
	p->pool = h;
	pthread_mutex_unlock(&p->mu);
}

void
jsheap_error_text(jsproj *p, duk_context *ctx, char *buf, size_t len)
{
	int line = 0;
	if (duk_is_error(ctx, -1)) {
		/* a native's error names the line that called it */
		duk_get_prop_string(ctx, -1, "__sl_where");
		if (duk_is_string(ctx, -1)) {
			char where[300];
			snprintf(where, sizeof(where), "%s",
			    duk_get_string(ctx, -1));
			duk_pop(ctx);
			duk_get_prop_string(ctx, -1, "message");
			snprintf(buf, len, "%s: Error: %s", where,
			    duk_safe_to_string(ctx, -1));
			duk_pop(ctx);
			return;
		}
		duk_pop(ctx);
		duk_get_prop_string(ctx, -1, "lineNumber");
		line = duk_get_int(ctx, -1);
		duk_pop(ctx);
	}
	const char *msg = duk_safe_to_string(ctx, -1);
	if (line > 0)
		snprintf(buf, len, "%s:%d: %s", p->file, line, msg);
	else
		snprintf(buf, len, "%s: %s", p->file, msg);
}

typedef struct runarg {
	jsbody body;
	void  *arg;
} runarg;

static duk_ret_t
tramp(duk_context *ctx, void *udata)
{
	runarg *ra = udata;
	return ra->body(ctx, ra->arg) < 0 ? DUK_RET_ERROR : 0;
}

int
jsheap_run(jsheap *h, jsbody body, void *arg, jscall *call, bool *dead,
    char *why, size_t len)
{
	jsproj    *p = h->owner;
	sigjmp_buf jb;
	*dead      = false;
	h->refused = false;
	if (jsb_run_begin(&jb) != 0) {
		snprintf(why, len, "%s: cannot start the CPU budget: %s",
		    p->file, strerror(errno));
		return SL_EPLUGIN;
	}
	t_call = call;
	int jr = sigsetjmp(jb, 0);
	if (jr != 0) {
		jsb_disarm();
		jsb_run_end();
		t_call = NULL;
		*dead  = true;
		if (jr == JMP_BUDGET)
			snprintf(why, len,
			    "%s: over its CPU budget of %u ms for one event",
			    p->file, (unsigned) p->lim.budget_ms);
		else
			snprintf(why, len, "%s: engine failure: %s", p->file,
			    t_fatal);
		return SL_EPLUGIN;
	}
	jsb_arm(p->lim.budget_ms);
	runarg    ra = { body, arg };
	duk_int_t rc = duk_safe_call(h->ctx, tramp, &ra, 0, 1);
	jsb_disarm();
	jsb_run_end();
	t_call  = NULL;
	int out = SL_OK;
	if (rc != DUK_EXEC_SUCCESS) {
		jsheap_error_text(p, h->ctx, why, len);
		out = SL_EPLUGIN;
	}
	duk_pop(h->ctx);
	if (h->refused) {
		/* the script may have caught the RangeError: still a failure,
		 * and the heap may hold what it grew to */
		snprintf(why, len, "%s: over its memory cap of %zu bytes",
		    p->file, p->lim.memory_bytes);
		*dead = true;
		out   = SL_EPLUGIN;
	}
	return out;
}

/* Evaluate source text under a file name (in a body). */
static void
eval_named(duk_context *ctx, const char *src, const char *file)
{
	duk_push_string(ctx, file);
	duk_compile_lstring_filename(ctx, 0, src, strlen(src));
	jsheap_script_begin();
	duk_call(ctx, 0);
	jsheap_script_end();
	duk_pop(ctx);
}

static duk_ret_t
load_body(duk_context *ctx, void *arg)
{
	jsproj *p = arg;
	jscall_define_globals(ctx);
	eval_named(ctx, p->text, p->file);
	return 0;
}

jsheap *
jsheap_take(jsproj *p, char *why, size_t len)
{
	pthread_mutex_lock(&p->mu);
	jsheap *h = p->pool;
	if (h != NULL)
		p->pool = h->next;
	pthread_mutex_unlock(&p->mu);
	if (h != NULL)
		return h;
	h = calloc(1, sizeof(*h));
	if (h == NULL) {
		snprintf(why, len, "%s: out of memory", p->file);
		return NULL;
	}
	h->owner = p;
	h->ctx   = duk_create_heap(js_alloc, js_realloc, js_free, h, js_fatal);
	if (h->ctx == NULL) {
		snprintf(why, len, "%s: cannot create a heap%s", p->file,
		    h->refused ? " (memory cap)" : "");
		jsheap_drop(h);
		return NULL;
	}
	bool dead;
	if (jsheap_run(h, load_body, p, NULL, &dead, why, len) != SL_OK) {
		if (dead)
			jsheap_drop(h);
		else
			heap_destroy(h);
		return NULL;
	}
	return h;
}

void
jsheap_pool_free(jsproj *p)
{
	while (p->pool != NULL) {
		jsheap *h = p->pool;
		p->pool   = h->next;
		heap_destroy(h);
	}
}
