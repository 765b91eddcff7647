/*
 * Crash and hang containment (guard.h): the slot file, the fatal-signal
 * handler, what the next start does with a crashed slot, stuck calls and
 * the bounded stop.
 */
#include "guard.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sluice/errors.h>

#include "failset.h"
#include "log.h"

#define GUARD_FILE      "handler-slots"
#define GUARD_MAGIC     0x534c4f54u /* "SLOT" */
#define GUARD_NSLOTS    512
#define GUARD_TENANT    128
#define GUARD_NAME      64
#define GUARD_ALTSTACK  (64 * 1024)
#define GUARD_ABANDONED (-1) /* signal of a slot abandoned by a stop */

enum { SLOT_FREE = 0, SLOT_IDLE, SLOT_RUNNING, SLOT_CRASHED };

/* One thread's slot; fixed size, in the shared mapping. */
typedef struct guard_slot {
	uint32_t         magic;
	_Atomic uint32_t state;
	_Atomic int32_t  signal;
	uint32_t         kind;
	uint64_t         gen;
	_Atomic uint64_t position;
	_Atomic int64_t  start_mono_ms;
	int64_t          start_wall_ms; /* for people reading the file */
	char             tenant[GUARD_TENANT];
	char             name[GUARD_NAME];
	char             def_id[40];
	uint32_t         ulen;
	char             unit[FAILSET_UNIT_MAX + 4];
} guard_slot;

static guard_slot     *slots; /* NULL: no guard */
static _Atomic uint8_t taken[GUARD_NSLOTS];
/* slots in SLOT_CRASHED (emitters' marks): none, the usual case, spares
 * every emitter call a scan of the slots */
static _Atomic size_t crash_marks;
static uint32_t        timeout_ms = 30000;
static _Atomic bool    abandoning;
static pthread_key_t   slot_key;

static __thread guard_slot *my_slot;
static __thread void       *my_altstack;
/* The ident whose names the thread's slot holds (0: none known), and
 * CLOCK_REALTIME minus CLOCK_MONOTONIC, read again when the ident
 * changes and every GUARD_WALL_EVERY calls: the wall start is for people
 * reading the file, one clock read per call is enough. */
#define GUARD_WALL_EVERY 1024
static __thread uint64_t my_ident;
static __thread int64_t  my_wall_off;
static __thread uint32_t my_calls;

static int64_t
clock_ms(clockid_t c)
{
	struct timespec ts;
	clock_gettime(c, &ts);
	return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the fatal-signal handler (async-signal-safe only) ---- */

static const char *
sig_name(int sig)
{
	switch (sig) {
	case SIGSEGV:
		return "SIGSEGV";
	case SIGBUS:
		return "SIGBUS";
	case SIGILL:
		return "SIGILL";
	case SIGFPE:
		return "SIGFPE";
	case SIGABRT:
		return "SIGABRT";
	default:
		return NULL;
	}
}

/* Append s to buf at *n (bounded). */
static void
put_str(char *buf, size_t len, size_t *n, const char *s)
{
	while (*s != '\0' && *n + 1 < len)
		buf[(*n)++] = *s++;
}

static void
put_u64(char *buf, size_t len, size_t *n, uint64_t v)
{
	char   d[24];
	size_t k = 0;
	do
		d[k++] = (char) ('0' + v % 10);
	while ((v /= 10) != 0);
	while (k > 0 && *n + 1 < len)
		buf[(*n)++] = d[--k];
}

static void
on_fatal(int sig, siginfo_t *si, void *uc)
{
	(void) si;
	(void) uc;
	guard_slot *s = my_slot;
	char        line[512];
	size_t      n    = 0;
	const char *name = sig_name(sig);
	put_str(line, sizeof(line), &n, "sluiced: fatal signal ");
	put_u64(line, sizeof(line), &n, (uint64_t) sig);
	if (name != NULL) {
		put_str(line, sizeof(line), &n, " (");
		put_str(line, sizeof(line), &n, name);
		put_str(line, sizeof(line), &n, ")");
	}
	if (s != NULL && atomic_load(&s->state) == SLOT_RUNNING) {
		atomic_store(&s->signal, sig);
		put_str(line, sizeof(line), &n, " in a plugin: tenant ");
		put_str(line, sizeof(line), &n, s->tenant);
		put_str(line, sizeof(line), &n, " processor ");
		put_str(line, sizeof(line), &n, s->name);
		put_str(line, sizeof(line), &n, " event ");
		put_u64(line, sizeof(line), &n, atomic_load(&s->position));
		put_str(line, sizeof(line), &n,
		    "; the next start marks its unit failing");
	} else {
		put_str(line, sizeof(line), &n, " outside a plugin call");
	}
	line[n++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, n);
	(void) w;
	/* die of it: the default action, delivered when this returns (a
	 * fault re-faults; abort's raise is pending) */
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigemptyset(&sa.sa_mask);
	sigaction(sig, &sa, NULL);
	raise(sig);
}

static void
install_handler(void)
{
	static const int sigs[]
	    = { SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT };
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_fatal;
	sa.sa_flags     = SA_SIGINFO | SA_ONSTACK;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, NULL);
}

/* ---- a thread's slot ---- */

static void
release_slot(void *arg)
{
	guard_slot *s = arg;
	atomic_store(&s->state, SLOT_FREE);
	atomic_store(&taken[s - slots], 0);
	if (my_altstack != NULL) {
		stack_t ss = { .ss_flags = SS_DISABLE };
		sigaltstack(&ss, NULL);
		free(my_altstack);
		my_altstack = NULL;
	}
	my_slot  = NULL;
	my_ident = 0;
}

/* The thread's slot, claimed at its first call (NULL: none free). */
static guard_slot *
thread_slot(void)
{
	if (my_slot != NULL)
		return my_slot;
	for (size_t i = 0; i < GUARD_NSLOTS; i++) {
		uint8_t expect = 0;
		if (!atomic_compare_exchange_strong(&taken[i], &expect, 1))
			continue;
		my_slot = &slots[i];
		pthread_setspecific(slot_key, my_slot);
		/* a plugin that overflows its stack still gets a log line
		 * (unless the thread has an alternate stack already) */
		stack_t old;
		if (sigaltstack(NULL, &old) == 0
		    && (old.ss_flags & SS_DISABLE) != 0)
			my_altstack = malloc(GUARD_ALTSTACK);
		if (my_altstack != NULL) {
			stack_t ss = { .ss_sp = my_altstack,
				.ss_size          = GUARD_ALTSTACK };
			if (sigaltstack(&ss, NULL) != 0) {
				free(my_altstack);
				my_altstack = NULL;
			}
		}
		atomic_store(&my_slot->state, SLOT_IDLE);
		return my_slot;
	}
	static _Atomic bool warned;
	if (!atomic_exchange(&warned, true))
		log_warn("guard",
		    "more than %d threads call plugins: the others run "
		    "unrecorded (a crash in them is not contained)",
		    GUARD_NSLOTS);
	return NULL;
}

/* A unit's bytes into its slot: most units (keys, stream ids) are short,
 * and a copy of unknown length compiles to `rep movs`, whose start-up
 * costs more than the copy (half of the guard's time on a catch-up). */
static inline void
copy_unit(char *dst, const char *src, size_t n)
{
	if (n >= 16 && n <= 32) {
		memcpy(dst, src, 16);
		memcpy(dst + n - 16, src + n - 16, 16);
	} else if (n >= 8 && n < 16) {
		memcpy(dst, src, 8);
		memcpy(dst + n - 8, src + n - 8, 8);
	} else if (n < 8) {
		for (size_t i = 0; i < n; i++)
			dst[i] = src[i];
	} else {
		memcpy(dst, src, n);
	}
}

uint64_t
guard_ident_new(void)
{
	static _Atomic uint64_t next = 1;
	return atomic_fetch_add(&next, 1);
}


void
guard_enter_as(uint64_t ident, guard_kind kind, const char *tenant,
    const char *def_id, const char *name, uint64_t gen, const char *unit,
    size_t ulen, uint64_t position)
{
	if (slots == NULL)
		return;
	guard_slot *s = thread_slot();
	if (s == NULL)
		return;
	if (ulen > FAILSET_UNIT_MAX)
		ulen = FAILSET_UNIT_MAX;
	s->magic = GUARD_MAGIC;
	s->kind  = (uint32_t) kind;
	s->gen   = gen;
	/* a thread's processor rarely changes: its names are copied when
	 * it does (an ident names them for as long as they stay the same) */
	bool same = ident != 0 && ident == my_ident;
	if (!same) {
		if (strcmp(s->tenant, tenant) != 0)
			snprintf(s->tenant, sizeof(s->tenant), "%s", tenant);
		if (strcmp(s->def_id, def_id) != 0)
			snprintf(s->def_id, sizeof(s->def_id), "%s", def_id);
		if (strcmp(s->name, name) != 0)
			snprintf(s->name, sizeof(s->name), "%s", name);
		my_ident = ident;
	}
	copy_unit(s->unit, unit, ulen);
	s->unit[ulen] = '\0';
	s->ulen       = (uint32_t) ulen;
	/* a coarse clock: a few ns, and a stuck call is counted in seconds */
	int64_t now = clock_ms(CLOCK_MONOTONIC_COARSE);
	if (!same || my_calls++ % GUARD_WALL_EVERY == 0)
		my_wall_off = clock_ms(CLOCK_REALTIME_COARSE) - now;
	s->start_wall_ms = now + my_wall_off;
	/* release stores, in this order (plain moves on x86, where the
	 * sequentially consistent ones were an xchg each, per call): a
	 * reader that sees RUNNING (acquire) sees the rest */
	atomic_store_explicit(&s->signal, 0, memory_order_release);
	atomic_store_explicit(&s->position, position, memory_order_release);
	atomic_store_explicit(&s->start_mono_ms, now, memory_order_release);
	atomic_store_explicit(&s->state, SLOT_RUNNING, memory_order_release);
}

void
guard_enter(guard_kind kind, const char *tenant, const char *def_id,
    const char *name, uint64_t gen, const char *unit, size_t ulen,
    uint64_t position)
{
	guard_enter_as(
	    0, kind, tenant, def_id, name, gen, unit, ulen, position);
}

void
guard_leave(void)
{
	guard_slot *s = my_slot;
	if (s == NULL)
		return;
	atomic_store_explicit(&s->state, SLOT_IDLE, memory_order_release);
	/* an abandoning stop: this thread's batch must not commit, and the
	 * process is about to _exit */
	while (atomic_load(&abandoning))
		pause();
}

bool
guard_stuck(guard_kind kind, const char *tenant, const char *def_id,
    uint64_t *position, int64_t *ms)
{
	if (slots == NULL || tenant == NULL || def_id == NULL)
		return false;
	int64_t now = clock_ms(CLOCK_MONOTONIC_COARSE);
	for (size_t i = 0; i < GUARD_NSLOTS; i++) {
		guard_slot *s = &slots[i];
		if (!atomic_load(&taken[i])
		    || atomic_load_explicit(&s->state, memory_order_acquire)
		        != SLOT_RUNNING)
			continue;
		int64_t  t0  = atomic_load(&s->start_mono_ms);
		uint64_t pos = atomic_load(&s->position);
		if (now - t0 <= (int64_t) timeout_ms
		    || s->kind != (uint32_t) kind
		    || strcmp(s->tenant, tenant) != 0
		    || strcmp(s->def_id, def_id) != 0)
			continue;
		/* still the same call? */
		if (atomic_load(&s->state) != SLOT_RUNNING
		    || atomic_load(&s->start_mono_ms) != t0)
			continue;
		*position = pos;
		*ms       = now - t0;
		return true;
	}
	return false;
}

/* Log each stuck call once (status shows it meanwhile). */
static void *
stuck_watch(void *arg)
{
	(void) arg;
	int64_t logged[GUARD_NSLOTS] = { 0 }; /* start of the call logged */
	for (;;) {
		uint32_t        ms = timeout_ms / 2;
		ms                 = ms < 100 ? 100 : ms > 5000 ? 5000 : ms;
		struct timespec ts = { ms / 1000, (long) (ms % 1000) * 1000000L };
		nanosleep(&ts, NULL);
		int64_t now = clock_ms(CLOCK_MONOTONIC_COARSE);
		for (size_t i = 0; slots != NULL && i < GUARD_NSLOTS; i++) {
			guard_slot *s = &slots[i];
			if (!atomic_load(&taken[i])
			    || atomic_load(&s->state) != SLOT_RUNNING)
				continue;
			int64_t t0 = atomic_load(&s->start_mono_ms);
			if (now - t0 <= (int64_t) timeout_ms || logged[i] == t0)
				continue;
			logged[i] = t0;
			log_warn("guard",
			    "tenant %s processor %s: a plugin call on event "
			    "%" PRIu64 " has run for %" PRId64
			    " ms (limits.handler_timeout_ms %u): stuck",
			    s->tenant, s->name, atomic_load(&s->position),
			    now - t0, timeout_ms);
		}
	}
	return NULL;
}

/* ---- the next start ---- */

static void
crash_reason(const guard_slot *s, char *why, size_t len)
{
	int32_t     sig  = atomic_load(&s->signal);
	const char *name = sig_name(sig);
	uint64_t    pos  = atomic_load(&s->position);
	if (sig == GUARD_ABANDONED)
		snprintf(why, len,
		    "stuck handling event %" PRIu64
		    " (longer than limits.handler_timeout_ms), abandoned "
		    "when the daemon stopped",
		    pos);
	else if (name != NULL)
		snprintf(why, len,
		    "crashed while handling event %" PRIu64 " (signal %s)",
		    pos, name);
	else
		snprintf(why, len,
		    "crashed while handling event %" PRIu64 " (signal %d)",
		    pos, (int) sig);
}

/* A processor's unit: failing from the event on, not retried. */
static int
mark_unit(const guard_slot *s, rmstore *rm, const char *why)
{
	failset  fs;
	MDB_txn *txn;
	int      rc;
	failset_init(&fs, s->name, s->gen);
	if (mdb_txn_begin(rm_env(rm), NULL, 0, &txn) != 0)
		return SL_ESTORAGE;
	rc = failset_load(&fs, rm, txn);
	if (rc == SL_OK) {
		fail_unit *old = failset_find(&fs, s->unit, s->ulen);
		fail_unit  u   = { .unit = (char *) s->unit, .ulen = s->ulen };
		u.pos          = atomic_load(&s->position);
		/* a retry of an older failure crashed: its events before
		 * this one were not committed either */
		if (old != NULL && old->pos < u.pos)
			u.pos = old->pos;
		u.attempts = old != NULL ? old->attempts + 1 : 1;
		u.retry    = false;
		snprintf(u.reason, sizeof(u.reason), "%s", why);
		rc = failset_put(&fs, rm, txn, &u);
	}
	if (rc == SL_OK)
		rc = mdb_txn_commit(txn) == 0 ? rm_sync(rm) : SL_ESTORAGE;
	else
		mdb_txn_abort(txn);
	failset_free(&fs);
	return rc;
}

static void
recover(rmstore *(*rm_of)(void *arg, const char *tenant), void *arg)
{
	for (size_t i = 0; i < GUARD_NSLOTS; i++) {
		guard_slot *s = &slots[i];
		uint32_t    st = atomic_load(&s->state);
		if (s->magic != GUARD_MAGIC || st == SLOT_FREE)
			continue;
		s->tenant[sizeof(s->tenant) - 1] = '\0';
		s->name[sizeof(s->name) - 1]     = '\0';
		s->def_id[sizeof(s->def_id) - 1] = '\0';
		if (s->ulen > FAILSET_UNIT_MAX)
			s->ulen = FAILSET_UNIT_MAX;
		s->unit[s->ulen] = '\0';
		if (st == SLOT_CRASHED) { /* an emitter's, kept until retry */
			atomic_store(&taken[i], 1);
			atomic_fetch_add(&crash_marks, 1);
			continue;
		}
		/* a call the process did not return from: only a fatal
		 * signal (or an abandoning stop) is the plugin's doing; a
		 * SIGKILL or power loss is not */
		int32_t sig = atomic_load(&s->signal);
		if (st != SLOT_RUNNING || sig == 0) {
			memset(s, 0, sizeof(*s));
			continue;
		}
		char why[FAILSET_REASON];
		crash_reason(s, why, sizeof(why));
		char label[300];
		snprintf(label, sizeof(label), "%.250s",
		    s->ulen > 0 && s->unit[0] == '\x01' ? s->unit + 1 : s->unit);
		if (s->kind == GUARD_QUERY) {
			log_error("guard",
			    "tenant %s query of projection %s: %s in the last "
			    "run",
			    s->tenant, s->def_id, why);
			memset(s, 0, sizeof(*s));
			continue;
		}
		if (s->kind == GUARD_EMITTER) {
			log_error("guard",
			    "tenant %s emitting projection %s: %s in the last "
			    "run; the next start marks its key failing at that "
			    "event (the whole projection faulted when it has "
			    "no key of its own), not retried until `sluice "
			    "retry` or `reset`",
			    s->tenant, s->def_id, why);
			atomic_store(&s->state, SLOT_CRASHED);
			atomic_store(&taken[i], 1);
			atomic_fetch_add(&crash_marks, 1);
			continue;
		}
		rmstore *rm = rm_of(arg, s->tenant);
		int      rc = rm != NULL ? mark_unit(s, rm, why) : SL_ENOTFOUND;
		if (rc == SL_OK)
			log_error("guard",
			    "tenant %s %s %s: '%s' %s in the last run; "
			    "marked failing, not retried (waits for `sluice "
			    "retry` or `reset`)",
			    s->tenant,
			    strncmp(s->name, "f:", 2) == 0 ? "filter"
			                                   : "projection",
			    s->def_id, label, why);
		else
			log_error("guard",
			    "tenant %s processor %s: '%s' %s in the last run; "
			    "cannot mark it failing: %s",
			    s->tenant, s->name, label, why, sl_strerror(rc));
		memset(s, 0, sizeof(*s));
	}
}

static void
make_key(void)
{
	pthread_key_create(&slot_key, release_slot);
	pthread_t      t;
	pthread_attr_t a;
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &a, stuck_watch, NULL) != 0)
		log_warn("guard", "no watch thread: stuck calls are not logged");
	pthread_attr_destroy(&a);
}

int
guard_open(const char *data_dir, uint32_t handler_timeout_ms,
    rmstore *(*rm_of)(void *arg, const char *tenant), void *arg)
{
	char   path[4200];
	size_t size = GUARD_NSLOTS * sizeof(guard_slot);
	timeout_ms  = handler_timeout_ms;
	if (snprintf(path, sizeof(path), "%s/" GUARD_FILE, data_dir)
	    >= (int) sizeof(path))
		return SL_EINVAL;
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0 || ftruncate(fd, (off_t) size) != 0) {
		log_error("guard", "cannot open %s: %s; plugin crashes are "
		    "not contained", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return SL_ESTORAGE;
	}
	void *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (m == MAP_FAILED) {
		log_error("guard", "cannot map %s: %s; plugin crashes are not "
		    "contained", path, strerror(errno));
		return SL_ESTORAGE;
	}
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, make_key);
	slots = m;
	atomic_store(&crash_marks, 0); /* recover counts this file's */
	recover(rm_of, arg);
	install_handler();
	return SL_OK;
}

/* ---- emitting projections ---- */

bool
guard_emitter_crashed(const char *tenant, const char *def_id,
    uint64_t position, char *why, size_t wlen)
{
	if (slots == NULL
	    || atomic_load_explicit(&crash_marks, memory_order_acquire) == 0)
		return false;
	for (size_t i = 0; i < GUARD_NSLOTS; i++) {
		guard_slot *s = &slots[i];
		if (atomic_load(&s->state) != SLOT_CRASHED
		    || atomic_load(&s->position) != position
		    || strcmp(s->tenant, tenant) != 0
		    || strcmp(s->def_id, def_id) != 0)
			continue;
		crash_reason(s, why, wlen);
		return true;
	}
	return false;
}

void
guard_clear_emitter(const char *tenant, const char *def_id)
{
	if (slots == NULL)
		return;
	for (size_t i = 0; i < GUARD_NSLOTS; i++) {
		guard_slot *s = &slots[i];
		if (atomic_load(&s->state) != SLOT_CRASHED
		    || strcmp(s->tenant, tenant) != 0
		    || strcmp(s->def_id, def_id) != 0)
			continue;
		memset(s, 0, sizeof(*s));
		atomic_store(&taken[i], 0);
		atomic_fetch_sub(&crash_marks, 1);
	}
}

/* ---- the bounded stop ---- */

static void *
stop_watch(void *arg)
{
	uint32_t        ms = (uint32_t) (uintptr_t) arg;
	struct timespec ts = { ms / 1000, (long) (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
	/* still here: the stop waits for threads inside plugins */
	atomic_store(&abandoning, true);
	int64_t now  = clock_ms(CLOCK_MONOTONIC_COARSE);
	size_t  left = 0;
	for (size_t i = 0; slots != NULL && i < GUARD_NSLOTS; i++) {
		guard_slot *s = &slots[i];
		if (!atomic_load(&taken[i])
		    || atomic_load(&s->state) != SLOT_RUNNING)
			continue;
		int64_t ran = now - atomic_load(&s->start_mono_ms);
		left++;
		if (ran > (int64_t) timeout_ms)
			atomic_store(&s->signal, GUARD_ABANDONED);
		log_error("guard",
		    "stopping: tenant %s processor %s still inside its "
		    "plugin on event %" PRIu64 " after %" PRId64
		    " ms; abandoned, its batch is not committed%s",
		    s->tenant, s->name, atomic_load(&s->position), ran,
		    ran > (int64_t) timeout_ms
		        ? " (its unit is marked failing at the next start)"
		        : "");
	}
	log_error("guard",
	    "stop did not complete within limits.shutdown_timeout_ms "
	    "(%u ms, %zu call%s in plugins): exiting now",
	    ms, left, left == 1 ? "" : "s");
	_exit(1);
	return NULL;
}

void
guard_stop_within(uint32_t ms)
{
	pthread_t      t;
	pthread_attr_t a;
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &a, stop_watch, (void *) (uintptr_t) ms) != 0)
		log_warn("guard", "cannot bound the stop: no watch thread");
	pthread_attr_destroy(&a);
}
