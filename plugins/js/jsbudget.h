/*
 * The CPU budget of the JavaScript host, in a small shared library of its
 * own (libsluice_jsbudget.so) that every loaded copy of js_host.so links:
 * the dynamic linker loads it once per process, so all copies share one
 * real-time signal, one handler and one CPU-time timer per thread, and
 * the number of loaded scripts is not bounded by the number of signals.
 * The library is never unloaded (-z nodelete): its handler stays valid.
 *
 * A run on a thread: jsb_run_begin(&jmp) (the thread's jump target, the
 * state cleared), jsb_arm(ms), script between jsb_script_begin/end, host
 * code between jsb_guard_begin/end, jsb_disarm(), jsb_run_end(). When the
 * timer fires while script runs (not in host code), the thread leaves
 * with siglongjmp(jmp, JSB_JMP_BUDGET); in host code, at its end.
 * Not part of any contract.
 */
#ifndef SL_JSBUDGET_H
#define SL_JSBUDGET_H

#include <setjmp.h>
#include <stdint.h>

#define JSB_JMP_BUDGET 1

#define JSB_EXPORT __attribute__((visibility("default")))

/* Install the handler on the first free real-time signal from SIGRTMIN+7
 * (once per process). @return 0, or -1 when every one is taken. */
JSB_EXPORT int jsb_init(void);
/* The signal in use (0 before jsb_init succeeded). */
JSB_EXPORT int jsb_signal(void);
/* Start a run on this thread: jmp is where an overrun leaves to.
 * @return 0, or -1 with errno when the thread's timer cannot be made. */
JSB_EXPORT int  jsb_run_begin(sigjmp_buf *jmp);
JSB_EXPORT void jsb_run_end(void);
JSB_EXPORT void jsb_arm(uint32_t ms);
JSB_EXPORT void jsb_disarm(void);
JSB_EXPORT void jsb_script_begin(void);
JSB_EXPORT void jsb_script_end(void);
JSB_EXPORT void jsb_guard_begin(void);
JSB_EXPORT void jsb_guard_end(void);
/* The jump target of the run on this thread, or NULL. */
JSB_EXPORT sigjmp_buf *jsb_jmp(void);

#endif
