/*
 * Watching the plugin directory: one thread reading inotify events for the
 * directory and reporting each *.so file once it has been quiet for a while.
 * Only completed writes (IN_CLOSE_WRITE), renames (IN_MOVED_TO/FROM) and
 * removals (IN_DELETE) count, never IN_MODIFY: a file still open for writing
 * is not reported until it is closed. Whether the file is then whole is the
 * loader's check (elfcheck.h), not the watcher's.
 */
#include "watch.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

#include <sluice/errors.h>

#include "log.h"

#define WATCH_MASK                                                            \
	(IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE             \
	    | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)

/* A file with events, reported when due. */
typedef struct pending {
	char   *name;
	int64_t due_ms;
	int     retry_ms; /* 0, or the last wait before handing it again */
} pending;

/* Waits between hand-overs of a file the callback wants again. */
#define WATCH_RETRY_FIRST_MS 500
#define WATCH_RETRY_MAX_MS   8000

struct watch {
	char     *dir;
	int       quiet_ms;
	watch_fn  fn;
	void     *arg;
	int       ifd; /* inotify */
	int       efd; /* eventfd: stop, rescan */
	pthread_t thr;
	pending  *pend; /* thread-owned */
	size_t    n_pend, cap_pend;
	bool      rescan; /* events were lost */
	bool      alive;  /* the directory is still watched */
	/* set before efd is written: watch_stop, watch_rescan */
	_Atomic bool stop_req, rescan_req;
};

static int64_t
mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool
is_plugin_name(const char *name, size_t len)
{
	/* "*.so", or "*.js" (plugins.h's plugin_file_name; the name here is
	 * not NUL-terminated) */
	return len > 3
	    && (memcmp(name + len - 3, ".so", 3) == 0
	        || memcmp(name + len - 3, ".js", 3) == 0);
}

/* (Re)start the quiet time of name. */
static void
pend_touch(watch *w, const char *name)
{
	int64_t due = mono_ms() + w->quiet_ms;
	for (size_t i = 0; i < w->n_pend; i++)
		if (strcmp(w->pend[i].name, name) == 0) {
			w->pend[i].due_ms   = due;
			w->pend[i].retry_ms = 0;
			return;
		}
	if (w->n_pend == w->cap_pend) {
		size_t   cap = w->cap_pend ? w->cap_pend * 2 : 8;
		pending *np  = realloc(w->pend, cap * sizeof(*np));
		if (np == NULL) {
			w->rescan = true; /* remembered as lost events */
			return;
		}
		w->pend     = np;
		w->cap_pend = cap;
	}
	char *copy = strdup(name);
	if (copy == NULL) {
		w->rescan = true;
		return;
	}
	w->pend[w->n_pend].name     = copy;
	w->pend[w->n_pend].retry_ms = 0;
	w->pend[w->n_pend++].due_ms = due;
}

/* Hand name over again later (its callback asked), unless a new event
 * queued it already. */
static void
pend_retry(watch *w, char *name, int last_ms)
{
	int wait = last_ms == 0 ? WATCH_RETRY_FIRST_MS : last_ms * 2;
	if (wait > WATCH_RETRY_MAX_MS)
		wait = WATCH_RETRY_MAX_MS;
	for (size_t i = 0; i < w->n_pend; i++)
		if (strcmp(w->pend[i].name, name) == 0) {
			free(name);
			return;
		}
	if (w->n_pend == w->cap_pend) {
		size_t   cap = w->cap_pend ? w->cap_pend * 2 : 8;
		pending *np  = realloc(w->pend, cap * sizeof(*np));
		if (np == NULL) {
			free(name);
			w->rescan = true;
			return;
		}
		w->pend     = np;
		w->cap_pend = cap;
	}
	w->pend[w->n_pend].name     = name;
	w->pend[w->n_pend].retry_ms = wait;
	w->pend[w->n_pend++].due_ms = mono_ms() + wait;
}

/* Read and sort every queued event; w->alive turns false when the
 * directory is gone. */
static void
drain(watch *w)
{
	/* aligned as inotify_event requires */
	char buf[16384]
	    __attribute__((aligned(__alignof__(struct inotify_event))));
	for (;;) {
		ssize_t n = read(w->ifd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break; /* EAGAIN: drained */
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const void *) p;
			p += sizeof(*ev) + ev->len;
			if (ev->mask & IN_Q_OVERFLOW) {
				log_warn("watch",
				    "%s: inotify queue overflow: rescanning "
				    "the plugin directory",
				    w->dir);
				w->rescan = true;
			}
			if ((ev->mask
			        & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED))
			    && w->alive) {
				log_error("watch",
				    "%s: the plugin directory was removed or "
				    "moved: hot reload stops (restart sluiced "
				    "to watch it again)",
				    w->dir);
				w->alive = false;
			}
			if (ev->len == 0 || (ev->mask & IN_ISDIR))
				continue;
			size_t len = strnlen(ev->name, ev->len);
			if (is_plugin_name(ev->name, len))
				pend_touch(w, ev->name);
		}
	}
}

/* Report every file whose quiet time has passed; ms until the next one. */
static int
report_due(watch *w)
{
	int64_t now  = mono_ms();
	int64_t next = -1;
	for (size_t i = 0; i < w->n_pend;) {
		if (w->pend[i].due_ms > now) {
			int64_t in = w->pend[i].due_ms - now;
			if (next < 0 || in < next)
				next = in;
			i++;
			continue;
		}
		char *name  = w->pend[i].name;
		int   last  = w->pend[i].retry_ms;
		int   again = 0;
		w->pend[i]  = w->pend[--w->n_pend];
		char *path  = NULL;
		if (asprintf(&path, "%s/%s", w->dir, name) >= 0) {
			log_debug("watch", "%s changed", path);
			again = w->fn(w->arg, path);
			free(path);
		}
		if (again != 0)
			pend_retry(w, name, last); /* takes name; at the
			                            * end, looked at below */
		else
			free(name);
		now = mono_ms(); /* a reload takes time */
	}
	if (w->rescan) {
		w->rescan = false;
		w->fn(w->arg, NULL);
	}
	return next < 0 ? -1 : (int) next;
}

/* watch_rescan: the directory again (watched again if it had gone), and
 * every file in it. */
static void
rescan_requested(watch *w)
{
	if (!w->alive) {
		if (inotify_add_watch(w->ifd, w->dir, WATCH_MASK) < 0) {
			log_error("watch", "%s: cannot watch it again: %s",
			    w->dir, strerror(errno));
		} else {
			w->alive = true;
			log_info("watch", "watching %s again", w->dir);
		}
	}
	w->rescan = true;
}

static void *
watch_thread(void *arg)
{
	watch *w       = arg;
	int    timeout = 0; /* the first rescan at once */
	for (;;) {
		struct pollfd fds[2] = {
			{ .fd = w->efd, .events = POLLIN },
			{ .fd = w->ifd, .events = POLLIN },
		};
		int n = poll(fds, w->alive ? 2 : 1, timeout);
		if (n < 0 && errno != EINTR) {
			log_error("watch", "poll: %s", strerror(errno));
			break;
		}
		if (fds[0].revents & POLLIN) {
			uint64_t v;
			while (read(w->efd, &v, sizeof(v)) < 0 && errno == EINTR)
				;
			if (atomic_load(&w->stop_req))
				break; /* watch_stop */
			if (atomic_exchange(&w->rescan_req, false))
				rescan_requested(w);
		}
		if (w->alive && (fds[1].revents & POLLIN))
			drain(w);
		timeout = report_due(w);
	}
	return NULL;
}

int
watch_start(const char *dir, int quiet_ms, watch_fn fn, void *arg, watch **out)
{
	*out     = NULL;
	watch *w = calloc(1, sizeof(*w));
	if (w == NULL || (w->dir = strdup(dir)) == NULL) {
		free(w);
		return SL_ENOMEM;
	}
	w->quiet_ms = quiet_ms > 0 ? quiet_ms : 0;
	w->rescan   = true; /* the first report: compare the whole dir */
	w->alive    = true;
	w->fn       = fn;
	w->arg      = arg;
	w->efd      = -1;
	w->ifd      = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	int rc      = SL_OK;
	if (w->ifd < 0) {
		log_error("watch", "inotify_init1: %s", strerror(errno));
		rc = SL_ESTORAGE;
	} else if (inotify_add_watch(w->ifd, dir, WATCH_MASK) < 0) {
		log_error("watch", "cannot watch the plugin directory %s: %s",
		    dir, strerror(errno));
		rc = errno == ENOMEM ? SL_ENOMEM : SL_ENOTFOUND;
	} else if ((w->efd = eventfd(0, EFD_CLOEXEC)) < 0) {
		log_error("watch", "eventfd: %s", strerror(errno));
		rc = SL_ESTORAGE;
	} else if ((errno = pthread_create(&w->thr, NULL, watch_thread, w))
	    != 0) {
		log_error("watch", "pthread_create: %s", strerror(errno));
		rc = SL_ESTORAGE;
	}
	if (rc != SL_OK) {
		if (w->ifd >= 0)
			close(w->ifd);
		if (w->efd >= 0)
			close(w->efd);
		free(w->dir);
		free(w);
		return rc;
	}
	log_info("watch", "watching %s for plugin changes (quiet time %d ms)",
	    dir, w->quiet_ms);
	*out = w;
	return SL_OK;
}

static void
wake(watch *w)
{
	uint64_t one = 1;
	while (write(w->efd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
}

void
watch_rescan(watch *w)
{
	atomic_store(&w->rescan_req, true);
	wake(w);
}

void
watch_stop(watch *w)
{
	if (w == NULL)
		return;
	atomic_store(&w->stop_req, true);
	wake(w);
	pthread_join(w->thr, NULL);
	close(w->ifd);
	close(w->efd);
	for (size_t i = 0; i < w->n_pend; i++)
		free(w->pend[i].name);
	free(w->pend);
	free(w->dir);
	free(w);
}
