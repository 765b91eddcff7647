/*
 * The JavaScript host's CPU budget (jsbudget.h): one signal and handler
 * per process, one CPU-time timer per thread, whatever the number of
 * loaded copies of js_host.so.
 */
#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include <duktape.h>

#include "jsbudget.h"

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int            js_sig; /* 0: none free */
static pthread_key_t  timer_key;

static __thread volatile sig_atomic_t t_script;  /* script is running */
static __thread volatile sig_atomic_t t_guard;   /* in host code */
static __thread volatile sig_atomic_t t_expired; /* the timer fired */
static __thread sigjmp_buf *volatile t_jmp;
static __thread timer_t *t_timer; /* this thread's, made at its first run */

/* The engine's code (libduktape's executable segments, found at install;
 * this library links it and is never unloaded, so it stays where it is).
 * Only there may a cut jump out: elsewhere, in the C library above all
 * (Date's time-zone code holds a lock, malloc its arenas'), a jump would
 * leave a lock held for good; the cut then comes back 1 ms later. */
#define MAX_SEGS 4
static uintptr_t seg_lo[MAX_SEGS], seg_hi[MAX_SEGS];
static int       n_segs;

static bool
in_engine(const void *uc)
{
	if (n_segs == 0)
		return true; /* not found at install: the old way */
	const ucontext_t *u = uc;
#if defined(__x86_64__)
	uintptr_t pc = (uintptr_t) u->uc_mcontext.gregs[REG_RIP];
#elif defined(__aarch64__)
	uintptr_t pc = (uintptr_t) u->uc_mcontext.pc;
#else
	(void) u;
	return true;
#endif
	for (int i = 0; i < n_segs; i++)
		if (pc >= seg_lo[i] && pc < seg_hi[i])
			return true;
	return false;
}

static void set_timer(uint32_t ms);

static void
on_budget(int sig, siginfo_t *si, void *uc)
{
	(void) sig;
	(void) si;
	t_expired = 1;
	if (!t_script || t_guard || t_jmp == NULL)
		return; /* at the next jsb_script_begin or jsb_guard_end */
	if (!in_engine(uc)) {
		set_timer(1); /* timer_settime is async-signal-safe */
		return;
	}
	t_script = 0;
	siglongjmp(*t_jmp, JSB_JMP_BUDGET);
}

static int
find_segs(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void) size;
	const char *name = arg;
	if (info->dlpi_name == NULL || strcmp(info->dlpi_name, name) != 0)
		return 0;
	for (int i = 0; i < info->dlpi_phnum && n_segs < MAX_SEGS; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
			continue;
		seg_lo[n_segs] = info->dlpi_addr + ph->p_vaddr;
		seg_hi[n_segs] = seg_lo[n_segs] + ph->p_memsz;
		n_segs++;
	}
	return 1;
}

/* A thread that ran script ends: its timer goes with it. */
static void
timer_gone(void *t)
{
	timer_delete(*(timer_t *) t);
	free(t);
}

static void
install(void)
{
	struct sigaction sa, cur;
	if (pthread_key_create(&timer_key, timer_gone) != 0)
		return;
	Dl_info di;
	if (dladdr((void *) duk_create_heap, &di) != 0 && di.dli_fname != NULL)
		dl_iterate_phdr(find_segs, (void *) di.dli_fname);
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_budget;
	/* NODEFER: the jump leaves the handler without restoring the mask */
	sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	for (int sig = SIGRTMIN + 7; sig <= SIGRTMAX; sig++) {
		if (sigaction(sig, NULL, &cur) != 0
		    || (cur.sa_flags & SA_SIGINFO)
		    || cur.sa_handler != SIG_DFL)
			continue;
		if (sigaction(sig, &sa, NULL) == 0)
			js_sig = sig;
		return;
	}
}

int
jsb_init(void)
{
	pthread_once(&once, install);
	return js_sig != 0 ? 0 : -1;
}

int
jsb_signal(void)
{
	return js_sig;
}

int
jsb_run_begin(sigjmp_buf *jmp)
{
	if (js_sig == 0) {
		errno = EAGAIN;
		return -1;
	}
	if (t_timer == NULL) {
		timer_t *t = malloc(sizeof(*t));
		if (t == NULL)
			return -1;
		struct sigevent sev;
		memset(&sev, 0, sizeof(sev));
		sev.sigev_notify   = SIGEV_THREAD_ID;
		sev.sigev_signo    = js_sig;
		sev._sigev_un._tid = gettid();
		if (timer_create(CLOCK_THREAD_CPUTIME_ID, &sev, t) != 0) {
			free(t);
			return -1;
		}
		if (pthread_setspecific(timer_key, t) != 0) {
			timer_delete(*t);
			free(t);
			errno = ENOMEM;
			return -1;
		}
		t_timer = t;
	}
	t_expired = 0;
	t_script  = 0;
	t_guard   = 0;
	t_jmp     = jmp;
	return 0;
}

void
jsb_run_end(void)
{
	t_jmp    = NULL;
	t_script = 0;
	t_guard  = 0;
}

static void
set_timer(uint32_t ms)
{
	struct itimerspec it;
	memset(&it, 0, sizeof(it));
	it.it_value.tv_sec  = ms / 1000;
	it.it_value.tv_nsec = (long) (ms % 1000) * 1000000L;
	if (t_timer != NULL)
		timer_settime(*t_timer, 0, &it, NULL);
}

void
jsb_arm(uint32_t ms)
{
	set_timer(ms);
}

void
jsb_disarm(void)
{
	set_timer(0);
}

void
jsb_script_begin(void)
{
	t_script = 1;
	if (t_expired && !t_guard && t_jmp != NULL) {
		t_script = 0;
		siglongjmp(*t_jmp, JSB_JMP_BUDGET);
	}
}

void
jsb_script_end(void)
{
	t_script = 0;
}

void
jsb_guard_begin(void)
{
	t_guard++;
}

void
jsb_guard_end(void)
{
	if (--t_guard == 0 && t_expired && t_script && t_jmp != NULL) {
		t_script = 0;
		siglongjmp(*t_jmp, JSB_JMP_BUDGET);
	}
}

sigjmp_buf *
jsb_jmp(void)
{
	return t_jmp;
}
