/*
 * sluice-host's record of the plugin call each of its threads is inside: a
 * small file mapped MAP_SHARED (plain stores, no fsync: the page cache
 * outlives the process), as the daemon's guard.h keeps one for in-process
 * calls. When a host dies inside a call (a fatal signal, or its watchdog
 * cutting a call that ran past the remote timeout), the next host started
 * on the same file reads what was running and answers that one event as
 * failed instead of running it again: only that key fails.
 */
#ifndef SL_HOSTREC_H
#define SL_HOSTREC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** Slots in the file: one per registration thread. */
#define HOSTREC_SLOTS 64

/** What a crashed host left: one event not to run again. */
typedef struct hostrec_poison {
	char     tenant[257];
	char     def_id[37];
	char     key[512];
	uint64_t position;
	bool     cut; /* the watchdog cut it (it ran too long), not a signal */
	int64_t  ran_ms; /* how long it had run when cut */
} hostrec_poison;

typedef struct hostrec hostrec;

/**
 * Map path (creating it), copy what a previous host left in it into
 * *left (up to max; *n_left gets how many), then clear it.
 * @return SL_OK; SL_ESTORAGE (the host then runs without a record).
 */
int  hostrec_open(const char *path, hostrec_poison *left, size_t max,
     size_t *n_left, hostrec **out);
void hostrec_close(hostrec *r);

/** The calling thread's slot i (0 .. HOSTREC_SLOTS-1) is about to call the
 * plugin with this event (strings copied, cut to fit). */
void hostrec_enter(hostrec *r, size_t i, const char *tenant,
    const char *def_id, const char *key, uint64_t position);
/** The call returned. */
void hostrec_leave(hostrec *r, size_t i);

/**
 * Watchdog: whether a slot has been inside one call for longer than ms;
 * if so it is marked cut (the next host says so) and *ran_ms says how
 * long it ran.
 */
bool hostrec_overdue(hostrec *r, int64_t ms, int64_t *ran_ms);

#endif
