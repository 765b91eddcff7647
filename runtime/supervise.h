/*
 * `sluiced --supervise`: a small parent process that runs the daemon as its
 * child and starts it again when it dies of a signal (a plugin's crash is
 * then marked at the next start, guard.h), with a growing delay and a cap
 * on quick restarts. SIGTERM and SIGINT are passed on to the child.
 */
#ifndef SL_SUPERVISE_H
#define SL_SUPERVISE_H

/**
 * Call before any thread exists. Returns in the child (-1: go on being the
 * daemon); in the supervisor it returns the status to exit with once the
 * child exited by itself or after a stop signal, or 1 when it keeps dying
 * (more than SUPERVISE_MAX_QUICK restarts within SUPERVISE_WINDOW_MS).
 */
int supervise(void);

#define SUPERVISE_MAX_QUICK 5
#define SUPERVISE_WINDOW_MS 60000

#endif
