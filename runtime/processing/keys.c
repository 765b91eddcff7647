/* Read model keys of events: the five key selectors (projection.h). */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <sluice/errors.h>

#include "host.h"
#include "projection.h"

/* The selector event type that selects every event (runtime/processing/sysproj.h). */
#define SELECT_ANY "$any"

/* ---- keys ---- */

/* The selector of the event's type, else a "$any" selector (every event,
 * as the system projections select), else none. */
static const sl_selector *
find_selector(const proj_def *def, const char *type)
{
	const sl_selector *any = NULL;
	for (size_t i = 0; i < def->p->n_selectors; i++) {
		const sl_selector *sel = &def->p->selectors[i];
		const char *t = sel->event_type;
		/* first bytes before strcmp: this runs for every event */
		if (t == NULL)
			continue;
		if (t[0] == type[0] && strcmp(t, type) == 0)
			return sel;
		if (any == NULL && t[0] == SELECT_ANY[0]
		    && strcmp(t, SELECT_ANY) == 0)
			any = sel;
	}
	return any;
}

/* A reason in the key buffer, cut to fit: callers may pass a small one. */
static void
key_reason(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void
key_reason(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

static int
key_copy(const char *s, size_t n, char *buf, size_t len, const char *what)
{
	if (n == 0) {
		snprintf(buf, len, "%s is empty: no read model key", what);
		return SL_EINVAL;
	}
	if (n >= len || n >= PROC_KEY_MAX) {
		key_reason(buf, len, "%s is too long for a key (%zu bytes)",
		    what, n);
		return SL_EINVAL;
	}
	if (memchr(s, '\0', n) != NULL) {
		snprintf(buf, len, "%s contains a NUL byte", what);
		return SL_EINVAL;
	}
	memmove(buf, s, n);
	buf[n] = '\0';
	return SL_OK;
}

static int
key_property(const sl_selector *sel, const ev_view *ev, char *buf, size_t len)
{
	const char           *path = sel->arg != NULL ? sel->arg : "";
	const msgpack_object *o    = host_path(&ev->content, path);
	char                  num[32];
	if (o == NULL) {
		snprintf(buf, len,
		    "key property '%s' is missing in event type %s", path,
		    ev->type);
		return SL_EINVAL;
	}
	switch (o->type) {
	case MSGPACK_OBJECT_STR:
		return key_copy(
		    o->via.str.ptr, o->via.str.size, buf, len, "key property");
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		snprintf(num, sizeof(num), "%" PRIu64, o->via.u64);
		return key_copy(num, strlen(num), buf, len, "key property");
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		snprintf(num, sizeof(num), "%" PRId64, o->via.i64);
		return key_copy(num, strlen(num), buf, len, "key property");
	default:
		snprintf(buf, len,
		    "key property '%s' in event type %s is not a string or "
		    "an integer",
		    path, ev->type);
		return SL_EINVAL;
	}
}

static int
key_occurred(const sl_selector *sel, const ev_view *ev, char *buf, size_t len)
{
	int64_t   ns   = ev->occurred_ns;
	time_t    secs = (time_t) (ns / 1000000000LL);
	struct tm tm;
	if (ns % 1000000000LL < 0)
		secs--; /* floor for times before the epoch */
	if (sel->arg == NULL || gmtime_r(&secs, &tm) == NULL) {
		snprintf(buf, len, "occurred key: no pattern or bad time");
		return SL_EINVAL;
	}
	char   tmp[PROC_KEY_MAX];
	size_t n = strftime(tmp, sizeof(tmp), sel->arg, &tm);
	return key_copy(tmp, n, buf, len, "occurred key pattern result");
}

int
proc_key(const proj_def *def, const ev_view *ev, char *buf, size_t len)
{
	if (len == 0)
		return SL_EINVAL;
	buf[0]                 = '\0';
	const sl_selector *sel = find_selector(def, ev->type);
	if (sel == NULL)
		return SL_ENOTFOUND;
	switch (sel->key) {
	case SL_KEY_EVENT_SOURCE:
	case SL_KEY_PARTITION: /* the log's partition is the stream */
		return key_copy(ev->stream, strlen(ev->stream), buf, len,
		    "event source id");
	case SL_KEY_PROPERTY:
		return key_property(sel, ev, buf, len);
	case SL_KEY_STATIC:
		if (sel->arg == NULL) {
			snprintf(buf, len, "static key selector has no key");
			return SL_EINVAL;
		}
		/* "": the one key of a system projection, whose selector
		 * is "$any" (plugins are refused an empty static key at
		 * load) */
		if (sel->arg[0] == '\0'
		    && strcmp(sel->event_type, SELECT_ANY) == 0)
			return SL_OK;
		return key_copy(
		    sel->arg, strlen(sel->arg), buf, len, "static key");
	case SL_KEY_OCCURRED:
		return key_occurred(sel, ev, buf, len);
	}
	snprintf(buf, len, "unknown key selector kind %d", (int) sel->key);
	return SL_EINVAL;
}

int
proc_key_fn_call(const proj_def *def, const sl_event *sev, char *buf,
    size_t len)
{
	if (len == 0)
		return SL_EINVAL;
	buf[0]          = '\0';
	proj_key_fn key = proj_def_key(def);
	if (key == NULL || find_selector(def, sev->v->type) == NULL)
		return SL_ENOTFOUND;
	host_scratch_reset();
	int rc = key(def->p->user, sev, buf, len);
	if (rc == SL_ENOTFOUND)
		return SL_ENOTFOUND;
	size_t n = strnlen(buf, len);
	if (rc != SL_OK) {
		if (n == 0 || n == len)
			snprintf(buf, len, "the key function failed (%s)",
			    sl_errname(rc));
		return SL_EINVAL;
	}
	if (n == len) {
		snprintf(buf, len, "the key function's key is too long");
		return SL_EINVAL;
	}
	char tmp[PROC_KEY_MAX];
	snprintf(tmp, sizeof(tmp), "%s", buf);
	return key_copy(tmp, n, buf, len, "the key function's key");
}

bool
proc_key_is_static(const proj_def *def, const ev_view *ev)
{
	const sl_selector *sel = find_selector(def, ev->type);
	return sel != NULL && sel->key == SL_KEY_STATIC;
}

bool
proc_keys_static(const proj_def *def)
{
	if (def == NULL || def->p == NULL || def->p->n_selectors == 0)
		return false;
	for (size_t i = 0; i < def->p->n_selectors; i++)
		if (def->p->selectors[i].key != SL_KEY_STATIC)
			return false;
	return true;
}

bool
proc_type_selected(const proj_def *def, const char *type, size_t len)
{
	for (size_t i = 0; i < def->p->n_selectors; i++) {
		const char *t = def->p->selectors[i].event_type;
		if (t == NULL)
			continue;
		/* first bytes before the rest: this runs for every event */
		if ((len == 0 || t[0] == type[0]) && strlen(t) == len
		    && memcmp(t, type, len) == 0)
			return true;
		if (t[0] == SELECT_ANY[0] && strcmp(t, SELECT_ANY) == 0)
			return true;
	}
	return false;
}
