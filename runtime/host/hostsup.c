/*
 * The daemon's side of `isolation: process` (hostsup.h): a thread per
 * hosted plugin starts its sluice-host child, waits for it, and starts it
 * again after a death, with a growing delay.
 */
#include "hostsup.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sluice/errors.h>

#include "event.h"
#include "fsutil.h"
#include "log.h"
#include "monotime.h"

typedef enum hstate {
	H_STARTING,
	H_RUNNING,
	H_BACKOFF,
	H_REFUSED,
	H_STOPPED,
} hstate;

static const char *const state_names[]
    = { "starting", "running", "backoff", "refused", "stopped" };

typedef struct hent {
	hostsup  *h;
	char      file[512];
	char      dir[4200]; /* data_dir/hosts/<n>: cache, record, error */
	pthread_t th;
	bool      th_started;
	hstate    state;
	pid_t     pid;
	uint32_t  starts, restarts, backoff_ms;
	bool      restart_now; /* the file changed: start again, no delay */
	bool      gone;        /* the file is gone: run nothing */
	bool      reaped;      /* the last child was waited for */
	char      last_exit[160];
	int64_t   last_exit_at_ns;
	char      error[1024];
	/* what the file was when the running host started */
	struct stat started_sb;
} hent;

struct hostsup {
	pthread_mutex_t mu;
	pthread_cond_t  cv; /* monotonic; state changes, stop */
	bool            stopping;
	char           *exe;
	char           *api;
	char          **envp; /* the children's: ours and SLUICE_TOKEN */
	uint32_t        timeout_ms;
	hent           *ents;
	size_t          n;
};

void
hostsup_describe_exit(int status, char *buf, size_t len)
{
	if (WIFSIGNALED(status)) {
		int         sig  = WTERMSIG(status);
		const char *abbr = sigabbrev_np(sig);
		snprintf(buf, len, "signal %d (SIG%s, %s)", sig,
		    abbr != NULL ? abbr : "?", strsignal(sig));
	} else if (WIFEXITED(status) && WEXITSTATUS(status) == HOST_EXIT_CUT) {
		snprintf(buf, len,
		    "exit code %d (a handler ran past remote.timeout_ms)",
		    HOST_EXIT_CUT);
	} else if (WIFEXITED(status)
	    && WEXITSTATUS(status) == HOST_EXIT_REFUSED) {
		snprintf(buf, len, "exit code %d (the plugin was refused)",
		    HOST_EXIT_REFUSED);
	} else if (WIFEXITED(status)) {
		snprintf(buf, len, "exit code %d", WEXITSTATUS(status));
	} else {
		snprintf(buf, len, "status %d", status);
	}
}

/* The program: $SLUICE_HOST, else sluice-host beside this executable. */
static char *
find_exe(const char *given)
{
	if (given != NULL)
		return strdup(given);
	const char *env = getenv("SLUICE_HOST");
	if (env != NULL && env[0] != '\0')
		return strdup(env);
	char path[PATH_MAX];
	return strdup(fs_beside_exe("sluice-host", path, sizeof(path)) == 0
	        ? path
	        : "sluice-host");
}

static void
read_error(hent *e)
{
	char path[4300];
	snprintf(path, sizeof(path), "%s/error", e->dir);
	FILE *f     = fopen(path, "r");
	e->error[0] = '\0';
	if (f == NULL) {
		snprintf(e->error, sizeof(e->error),
		    "the plugin host refused %s (no reason written)", e->file);
		return;
	}
	size_t n    = fread(e->error, 1, sizeof(e->error) - 1, f);
	e->error[n] = '\0';
	fclose(f);
}

/* Start the child (mu held); crashed: how the previous one died, or
 * NULL. @return its pid, or -1. */
static pid_t
spawn(hent *e, const char *crashed, pid_t prev)
{
	hostsup *h = e->h;
	char     cache[4300], record[4300], errfile[4300], tmo[24], prevs[24];
	snprintf(cache, sizeof(cache), "%s/cache", e->dir);
	snprintf(record, sizeof(record), "%s/record", e->dir);
	snprintf(errfile, sizeof(errfile), "%s/error", e->dir);
	snprintf(tmo, sizeof(tmo), "%" PRIu32, h->timeout_ms);
	snprintf(prevs, sizeof(prevs), "%ld", (long) prev);
	unlink(errfile);
	const char *argv[20];
	int         a = 0;
	argv[a++]     = "sluice-host";
	argv[a++]     = "--plugin";
	argv[a++]     = e->file;
	argv[a++]     = "--api";
	argv[a++]     = h->api;
	argv[a++]     = "--cache";
	argv[a++]     = cache;
	argv[a++]     = "--record";
	argv[a++]     = record;
	argv[a++]     = "--error-file";
	argv[a++]     = errfile;
	argv[a++]     = "--timeout-ms";
	argv[a++]     = tmo;
	if (crashed != NULL) {
		argv[a++] = "--crashed";
		argv[a++] = crashed;
		argv[a++] = "--prev-pid";
		argv[a++] = prevs;
	}
	argv[a] = NULL;
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pid_t parent = getpid();
	pid_t pid    = fork();
	if (pid == 0) {
		/* the child: async-signal-safe calls only until exec. It dies
		 * with this thread (the daemon's), also on SIGKILL. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		sigset_t none;
		sigemptyset(&none);
		for (int s = 1; s < 32; s++)
			if (s != SIGKILL && s != SIGSTOP)
				signal(s, SIG_DFL);
		sigprocmask(SIG_SETMASK, &none, NULL);
		if (h->envp != NULL)
			execve(h->exe, (char *const *) argv, h->envp);
		else
			execv(h->exe, (char *const *) argv);
		_exit(127);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return pid;
}

/* Wait (mu held) until woken or ms passed (<0: until woken). */
static void
wait_ms(hostsup *h, int64_t ms)
{
	if (ms < 0) {
		pthread_cond_wait(&h->cv, &h->mu);
		return;
	}
	struct timespec ts;
	abs_deadline(&ts, mono_ns() + ms * 1000000);
	pthread_cond_timedwait(&h->cv, &h->mu, &ts);
}

static void *
host_main(void *arg)
{
	hent    *e = arg;
	hostsup *h = e->h;
	char     crashed[160];
	bool     have_crash = false;
	pid_t    prev       = 0;
	pthread_mutex_lock(&h->mu);
	while (!h->stopping) {
		if (e->gone || (e->state == H_REFUSED && !e->restart_now)) {
			wait_ms(h, -1);
			continue;
		}
		if (e->restart_now) /* a new file: the delays start over */
			e->backoff_ms = 0;
		e->restart_now = false;
		stat(e->file, &e->started_sb);
		e->state  = H_STARTING;
		e->reaped = false;
		pid_t pid = spawn(e, have_crash ? crashed : NULL, prev);
		if (pid < 0) {
			snprintf(e->last_exit, sizeof(e->last_exit),
			    "cannot start %s: %s", h->exe, strerror(errno));
			log_error("host", "%s: %s", e->file, e->last_exit);
		} else {
			e->pid = pid;
			e->starts++;
			e->state = H_RUNNING;
			log_info("host", "%s: plugin host started (pid %ld)",
			    e->file, (long) pid);
		}
		int64_t started = mono_ns();
		pthread_mutex_unlock(&h->mu);
		int status = 0;
		if (pid > 0)
			while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
				;
		pthread_mutex_lock(&h->mu);
		e->pid    = 0;
		e->reaped = true;
		pthread_cond_broadcast(&h->cv);
		if (pid > 0) {
			hostsup_describe_exit(
			    status, e->last_exit, sizeof(e->last_exit));
			e->last_exit_at_ns = ev_now_ns();
		}
		if (h->stopping)
			break;
		prev       = pid;
		have_crash = false;
		if (e->restart_now || e->gone) {
			/* stopped on purpose (its file changed): at once */
			e->backoff_ms = 0;
			e->error[0]   = '\0';
			continue;
		}
		if (pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 127) {
			/* the child's exec failed: no program to run */
			snprintf(e->error, sizeof(e->error),
			    "cannot run the plugin host %s (not there, or not "
			    "executable; $SLUICE_HOST names another)",
			    h->exe);
			e->state = H_REFUSED;
			log_error("host", "%s: %s", e->file, e->error);
			continue;
		}
		if (pid > 0 && WIFEXITED(status)
		    && WEXITSTATUS(status) == HOST_EXIT_REFUSED) {
			read_error(e);
			e->state = H_REFUSED;
			log_error("host",
			    "%s: the plugin host refused it: %s; not started "
			    "again until the file changes",
			    e->file, e->error);
			continue;
		}
		if (pid > 0
		    && (WIFSIGNALED(status)
		        || (WIFEXITED(status)
		            && WEXITSTATUS(status) == HOST_EXIT_CUT))) {
			snprintf(crashed, sizeof(crashed), "%s", e->last_exit);
			have_crash = true;
		}
		e->restarts++;
		int64_t ran_ms = (mono_ns() - started) / 1000000;
		if (ran_ms >= HOSTSUP_STABLE_MS || e->backoff_ms == 0)
			e->backoff_ms = HOSTSUP_BACKOFF_FIRST_MS;
		else if (e->backoff_ms < HOSTSUP_BACKOFF_MAX_MS)
			e->backoff_ms
			    = e->backoff_ms * 2 > HOSTSUP_BACKOFF_MAX_MS
			    ? HOSTSUP_BACKOFF_MAX_MS
			    : e->backoff_ms * 2;
		e->state = H_BACKOFF;
		log_warn("host",
		    "%s: the plugin host (pid %ld) ended with %s after "
		    "%" PRId64 " ms; starting it again in %" PRIu32 " ms",
		    e->file, (long) pid, e->last_exit, ran_ms, e->backoff_ms);
		int64_t until = mono_ns() + (int64_t) e->backoff_ms * 1000000;
		while (!h->stopping && !e->restart_now && mono_ns() < until)
			wait_ms(h, (until - mono_ns()) / 1000000 + 1);
	}
	e->state = H_STOPPED;
	pthread_mutex_unlock(&h->mu);
	return NULL;
}

int
hostsup_start(const sl_config *cfg, const char *sluice_host, hostsup **out)
{
	*out       = NULL;
	hostsup *h = calloc(1, sizeof(*h));
	if (h == NULL)
		return SL_ENOMEM;
	pthread_mutex_init(&h->mu, NULL);
	cond_init_mono(&h->cv);
	h->exe        = find_exe(sluice_host);
	h->api        = strdup(cfg->api_url);
	h->timeout_ms = cfg->remote_timeout_ms;
	size_t n      = 0;
	for (size_t i = 0; i < cfg->n_plugins; i++)
		n += cfg->plugins[i].isolation == CFG_ISOLATION_PROCESS;
	h->ents = calloc(n > 0 ? n : 1, sizeof(*h->ents));
	if (h->exe == NULL || h->api == NULL || h->ents == NULL) {
		hostsup_free(h);
		return SL_ENOMEM;
	}
	for (size_t i = 0; i < cfg->n_plugins; i++) {
		const cfg_plugin *cp = &cfg->plugins[i];
		if (cp->isolation != CFG_ISOLATION_PROCESS)
			continue;
		hent *e = &h->ents[h->n];
		e->h    = h;
		snprintf(e->file, sizeof(e->file), "%s/%s", cfg->plugin_dir,
		    cp->file);
		snprintf(e->dir, sizeof(e->dir), "%s/hosts/%zu", cfg->data_dir,
		    h->n);
		e->gone = stat(e->file, &e->started_sb) != 0;
		if (e->gone)
			log_warn("host",
			    "%s (isolation: process) is not there "
			    "yet: its host starts once it is",
			    e->file);
		h->n++;
		if (fs_mkdirs(e->dir) != 0)
			log_warn("host", "cannot create %s: %s", e->dir,
			    strerror(errno));
	}
	*out = h;
	return SL_OK;
}

/* Start the threads (once the API serves: hosts register there). */
int
hostsup_run(hostsup *h)
{
	if (h == NULL)
		return SL_OK;
	for (size_t i = 0; i < h->n; i++) {
		hent *e = &h->ents[i];
		if (pthread_create(&e->th, NULL, host_main, e) != 0)
			return SL_ENOMEM;
		e->th_started = true;
	}
	return SL_OK;
}

/* SIGTERM e's host and wait (mu held) until it is reaped, SIGKILL after
 * HOSTSUP_STOP_MS. */
static void
stop_child(hostsup *h, hent *e)
{
	if (e->pid <= 0)
		return;
	pid_t pid = e->pid;
	kill(pid, SIGTERM);
	int64_t end = mono_ns() + (int64_t) HOSTSUP_STOP_MS * 1000000;
	while (e->pid == pid && mono_ns() < end)
		wait_ms(h, (end - mono_ns()) / 1000000 + 1);
	if (e->pid == pid) {
		log_warn("host",
		    "%s: the plugin host (pid %ld) did not stop "
		    "within %d ms: killing it",
		    e->file, (long) pid, HOSTSUP_STOP_MS);
		kill(pid, SIGKILL);
		while (e->pid == pid)
			wait_ms(h, -1);
	}
}

void
hostsup_stop(hostsup *h)
{
	if (h == NULL)
		return;
	pthread_mutex_lock(&h->mu);
	if (h->stopping) {
		pthread_mutex_unlock(&h->mu);
		return;
	}
	h->stopping = true;
	pthread_cond_broadcast(&h->cv);
	for (size_t i = 0; i < h->n; i++)
		if (h->ents[i].pid > 0)
			kill(h->ents[i].pid, SIGTERM);
	for (size_t i = 0; i < h->n; i++)
		stop_child(h, &h->ents[i]);
	pthread_mutex_unlock(&h->mu);
	for (size_t i = 0; i < h->n; i++)
		if (h->ents[i].th_started) {
			pthread_join(h->ents[i].th, NULL);
			h->ents[i].th_started = false;
		}
}

void
hostsup_free(hostsup *h)
{
	if (h == NULL)
		return;
	hostsup_stop(h);
	free(h->ents);
	free(h->exe);
	free(h->api);
	for (size_t i = 0; h->envp != NULL && h->envp[i] != NULL; i++)
		free(h->envp[i]);
	free(h->envp);
	pthread_cond_destroy(&h->cv);
	pthread_mutex_destroy(&h->mu);
	free(h);
}

int
hostsup_set_token(hostsup *h, const char *token)
{
	extern char **environ;
	size_t        n = 0;
	while (environ[n] != NULL)
		n++;
	char **envp = calloc(n + 2, sizeof(*envp));
	if (envp == NULL)
		return SL_ENOMEM;
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "SLUICE_TOKEN=", 13) != 0
		    && (envp[k++] = strdup(environ[i])) == NULL)
			goto nomem;
	if (asprintf(&envp[k++], "SLUICE_TOKEN=%s", token) < 0) {
		envp[--k] = NULL;
		goto nomem;
	}
	pthread_mutex_lock(&h->mu);
	char **old = h->envp;
	h->envp    = envp;
	pthread_mutex_unlock(&h->mu);
	for (size_t i = 0; old != NULL && old[i] != NULL; i++)
		free(old[i]);
	free(old);
	return SL_OK;
nomem:
	for (size_t i = 0; i < k; i++)
		free(envp[i]);
	free(envp);
	return SL_ENOMEM;
}

static hent *
find(const hostsup *h, const char *path)
{
	for (size_t i = 0; h != NULL && i < h->n; i++)
		if (strcmp(h->ents[i].file, path) == 0)
			return &h->ents[i];
	return NULL;
}

bool
hostsup_owns(const hostsup *h, const char *path)
{
	return find(h, path) != NULL; /* the list never changes */
}

static bool
same_file(const struct stat *a, const struct stat *b)
{
	return a->st_ino == b->st_ino && a->st_dev == b->st_dev
	    && a->st_size == b->st_size
	    && a->st_mtim.tv_sec == b->st_mtim.tv_sec
	    && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

void
hostsup_file_changed(hostsup *h, const char *path)
{
	hent *e = find(h, path);
	if (e == NULL)
		return;
	struct stat sb;
	bool        there = stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
	pthread_mutex_lock(&h->mu);
	if (!h->stopping) {
		if (!there) {
			if (!e->gone)
				log_info("host",
				    "%s is gone: stopping its "
				    "plugin host",
				    path);
			e->gone = true;
			stop_child(h, e);
		} else if (e->gone || !same_file(&sb, &e->started_sb)) {
			/* (a rescan reports files that did not change) */
			log_info("host",
			    "%s changed: starting its plugin "
			    "host again",
			    path);
			e->gone        = false;
			e->restart_now = true;
			pthread_cond_broadcast(&h->cv);
			stop_child(h, e);
		}
	}
	pthread_mutex_unlock(&h->mu);
}

size_t
hostsup_count(const hostsup *h)
{
	return h != NULL ? h->n : 0;
}

void
hostsup_info_get(hostsup *h, size_t i, hostsup_info *out)
{
	memset(out, 0, sizeof(*out));
	if (h == NULL || i >= h->n)
		return;
	pthread_mutex_lock(&h->mu);
	const hent *e = &h->ents[i];
	snprintf(out->file, sizeof(out->file), "%s", e->file);
	out->state           = e->gone ? "stopped" : state_names[e->state];
	out->pid             = e->pid;
	out->starts          = e->starts;
	out->restarts        = e->restarts;
	out->backoff_ms      = e->backoff_ms;
	out->last_exit_at_ns = e->last_exit_at_ns;
	snprintf(out->last_exit, sizeof(out->last_exit), "%s", e->last_exit);
	snprintf(out->error, sizeof(out->error), "%s", e->error);
	pthread_mutex_unlock(&h->mu);
}
