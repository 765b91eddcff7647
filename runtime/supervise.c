/* The supervisor of `sluiced --supervise`: see supervise.h. */
#include "supervise.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS   5000

static int64_t
mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Wait for a signal of set up to ms (<0: no limit); 0 on timeout.
 */
static int
wait_signal(const sigset_t *set, int64_t ms)
{
	for (;;) {
		int sig;
		if (ms < 0) {
			if (sigwait(set, &sig) == 0)
				return sig;
			continue;
		}
		struct timespec ts = { (time_t) (ms / 1000),
			(long) (ms % 1000) * 1000000L };
		sig = sigtimedwait(set, NULL, &ts);
		if (sig > 0)
			return sig;
		if (errno == EAGAIN)
			return 0;
	}
}

int
supervise(void)
{
	sigset_t set, old;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, &old);
	pid_t   me       = getpid();
	int64_t deaths[SUPERVISE_MAX_QUICK + 1]; /* within the window */
	int     n_deaths = 0;
	int     backoff  = BACKOFF_FIRST_MS;
	bool    stopping = false;

	for (;;) {
		pid_t child = fork();
		if (child < 0) {
			log_error("supervise", "fork: %s", strerror(errno));
			return 1;
		}
		if (child == 0) {
			/* the daemon: dies with its supervisor */
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (getppid() != me)
				_exit(1);
			sigprocmask(SIG_SETMASK, &old, NULL);
			return -1;
		}
		int64_t started = mono_ms();
		log_info("supervise", "sluiced started (pid %ld)",
		    (long) child);

		int status = 0;
		for (;;) {
			int sig = wait_signal(&set, -1);
			if (sig == SIGTERM || sig == SIGINT) {
				stopping = true;
				kill(child, sig);
				continue;
			}
			if (sig == SIGHUP) {
				kill(child, sig); /* the daemon reconfigures */
				continue;
			}
			pid_t r = waitpid(child, &status, WNOHANG);
			if (r == child)
				break;
		}
		if (stopping || WIFEXITED(status)) {
			int code = WIFEXITED(status) ? WEXITSTATUS(status)
			                             : 128 + WTERMSIG(status);
			log_info("supervise", "sluiced (pid %ld) %s %d; done",
			    (long) child,
			    WIFEXITED(status) ? "exited with status"
			                      : "died of signal",
			    WIFEXITED(status) ? WEXITSTATUS(status)
			                      : WTERMSIG(status));
			return code;
		}
		int64_t now = mono_ms();
		int     k   = 0;
		for (int i = 0; i < n_deaths; i++)
			if (now - deaths[i] < SUPERVISE_WINDOW_MS)
				deaths[k++] = deaths[i];
		n_deaths           = k;
		deaths[n_deaths++] = now;
		if (n_deaths > SUPERVISE_MAX_QUICK) {
			log_error("supervise",
			    "sluiced (pid %ld) died of signal %d (%s); it died "
			    "%d times within %d s: giving up",
			    (long) child, WTERMSIG(status),
			    strsignal(WTERMSIG(status)), n_deaths,
			    SUPERVISE_WINDOW_MS / 1000);
			return 1;
		}
		/* a long healthy run starts the delays over */
		if (now - started > SUPERVISE_WINDOW_MS)
			backoff = BACKOFF_FIRST_MS;
		log_error("supervise",
		    "sluiced (pid %ld) died of signal %d (%s); starting it "
		    "again in %d ms",
		    (long) child, WTERMSIG(status),
		    strsignal(WTERMSIG(status)), backoff);
		/* a stop during the delay ends it */
		int64_t until = now + backoff;
		while (!stopping && mono_ms() < until) {
			int sig = wait_signal(&set, until - mono_ms());
			if (sig == SIGTERM || sig == SIGINT)
				stopping = true;
		}
		if (stopping) {
			log_info("supervise", "stopped");
			return 0;
		}
		backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS
		                                       : backoff * 2;
	}
}
