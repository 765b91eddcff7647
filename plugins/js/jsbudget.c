/*
 * The JavaScript host's CPU budget (jsbudget.h): one signal and handler
 * per process, one CPU-time timer per thread, whatever the number of
 * loaded copies of js_host.so.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "jsbudget.h"

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int            js_sig; /* 0: none free */
static pthread_key_t  timer_key;

static __thread volatile sig_atomic_t t_script;  /* script is running */
static __thread volatile sig_atomic_t t_guard;   /* in host code */
static __thread volatile sig_atomic_t t_expired; /* the timer fired */
static __thread sigjmp_buf *volatile t_jmp;
static __thread timer_t *t_timer; /* this thread's, made at its first run */

static void
on_budget(int sig)
{
	(void) sig;
	t_expired = 1;
	if (!t_script || t_guard || t_jmp == NULL)
		return; /* at the next jsb_script_begin or jsb_guard_end */
	t_script = 0;
	siglongjmp(*t_jmp, JSB_JMP_BUDGET);
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
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_budget;
	/* NODEFER: the jump leaves the handler without restoring the mask */
	sa.sa_flags = SA_RESTART | SA_NODEFER;
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
