/*
 * Spec files (spec_file.h): reading a spec's input into steps, and the
 * comparison of states, results and emitted streams with its
 * expectations, shared by the in-process runner and the live test.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uuid/uuid.h>

#include "spec_file.h"

/* The event type that soft-deletes a stream in a spec's input:
 * EventStoreDB's record of a deleted stream, and the type of the notice
 * Sluice's log writes for one. */
#define SPEC_DELETE_TYPE "$streamDeleted"

int
spec_bad(const char *file, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "sluice spec: %s: ", file);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}


static bool
is_link_type(const char *type)
{
	return strcmp(type, "$>") == 0 || strcmp(type, "$@") == 0;
}

bool
spec_step_is_link(const spec_step *s)
{
	return s->kind == SPEC_STEP_EVENT && is_link_type(s->type);
}

const char *
spec_key_of(const char *partition)
{
	return *partition == '\0' ? "root" : partition;
}

/* One entry of a stream's events into st; where names it. */
static int
load_step(
    const char *file, const char *stream, const json_t *ev, spec_step *st)
{
	const char *w    = st->where;
	json_t     *data = json_object_get(ev, "data");
	json_t     *meta = json_object_get(ev, "metadata");
	json_t     *id   = json_object_get(ev, "eventId");
	st->stream       = stream;
	st->type         = json_string_value(json_object_get(ev, "eventType"));
	if (!json_is_object(ev))
		return spec_bad(file, "%s: an event is an object", w);
	if (st->type == NULL || *st->type == '\0')
		return spec_bad(file, "%s: no eventType", w);
	st->states  = json_object_get(ev, "states");
	st->emitted = json_object_get(ev, "emitted");
	st->shared  = json_object_get(ev, "shared");
	if (st->states != NULL && !json_is_array(st->states))
		return spec_bad(file, "%s: states is not an array", w);
	if (st->emitted != NULL && !json_is_object(st->emitted))
		return spec_bad(file, "%s: emitted is not an object of streams", w);
	if (strcmp(st->type, SPEC_DELETE_TYPE) == 0) {
		st->kind = SPEC_STEP_DELETE;
		if (data != NULL || meta != NULL || id != NULL)
			return spec_bad(file,
			    "%s: a %s (a stream deletion) has no data, "
			    "metadata nor eventId",
			    w, SPEC_DELETE_TYPE);
		return 0;
	}
	st->kind = SPEC_STEP_EVENT;
	if (is_link_type(st->type)) {
		if (!json_is_string(data))
			return spec_bad(file,
			    "%s: a link event's data is a string "
			    "(\"<revision>@<stream>\" for $>, a stream id for "
			    "$@)",
			    w);
	} else if (data != NULL && !json_is_object(data))
		return spec_bad(file,
		    "%s: data is not an object (Sluice stores JSON objects)",
		    w);
	if (meta != NULL && !json_is_object(meta) && !json_is_null(meta))
		return spec_bad(file, "%s: metadata is not an object", w);
	st->data     = data;
	st->metadata = json_is_object(meta) ? meta : NULL;
	if (id != NULL) {
		uuid_t u;
		st->event_id = json_string_value(id);
		if (st->event_id == NULL || uuid_parse(st->event_id, u) != 0)
			return spec_bad(file, "%s: eventId is not a UUID", w);
	}
	return 0;
}

static int
load_input(const char *file, spec_file *f, const json_t *input)
{
	size_t n = 0;
	if (input == NULL)
		return 0;
	if (!json_is_array(input))
		return spec_bad(file, "input is not an array of streams");
	for (size_t i = 0; i < json_array_size(input); i++) {
		json_t     *st = json_array_get(input, i);
		const char *id
		    = json_string_value(json_object_get(st, "streamId"));
		json_t *evs = json_object_get(st, "events");
		if (id == NULL || *id == '\0' || !json_is_array(evs))
			return spec_bad(
			    file, "input[%zu] needs streamId and events", i);
		n += json_array_size(evs);
	}
	f->steps = calloc(n ? n : 1, sizeof(*f->steps));
	if (f->steps == NULL)
		return spec_bad(file, "out of memory");
	for (size_t i = 0; i < json_array_size(input); i++) {
		json_t     *st = json_array_get(input, i);
		const char *id
		    = json_string_value(json_object_get(st, "streamId"));
		json_t *evs = json_object_get(st, "events");
		for (size_t k = 0; k < json_array_size(evs); k++) {
			spec_step *s = &f->steps[f->n_steps++];
			snprintf(s->where, sizeof(s->where),
			    "input[%zu].events[%zu] (%.256s)", i, k, id);
			if (load_step(file, id, json_array_get(evs, k), s))
				return 1;
		}
	}
	return 0;
}

int
spec_file_load(const char *path, spec_file *f)
{
	json_error_t je;
	memset(f, 0, sizeof(*f));
	f->path = path;
	f->root = json_load_file(path, 0, &je);
	if (f->root == NULL)
		return spec_bad(path, "line %d: %s", je.line, je.text);
	if (!json_is_object(f->root))
		return spec_bad(path, "a spec is a JSON object");
	snprintf(f->dir, sizeof(f->dir), "%s", path);
	char *slash = strrchr(f->dir, '/');
	if (slash != NULL)
		*slash = '\0';
	else
		snprintf(f->dir, sizeof(f->dir), ".");
	f->projection
	    = json_string_value(json_object_get(f->root, "projection"));
	f->name
	    = json_string_value(json_object_get(f->root, "projectionName"));
	json_t *out = json_object_get(f->root, "output");
	if (out == NULL || !json_is_object(out))
		return spec_bad(path, "no \"output\" object");
	f->states  = json_object_get(out, "states");
	f->emitted = json_object_get(out, "emitted");
	f->shared  = json_object_get(out, "shared");
	if (f->states != NULL && !json_is_array(f->states))
		return spec_bad(path, "output.states is not an array");
	if (f->emitted != NULL && !json_is_object(f->emitted))
		return spec_bad(path, "output.emitted is not an object of streams");
	return load_input(path, f, json_object_get(f->root, "input"));
}

void
spec_file_free(spec_file *f)
{
	free(f->steps);
	json_decref(f->root);
	memset(f, 0, sizeof(*f));
}

/* ---- comparing ---- */

void
spec_diff(spec_cmp *c, const char *fmt, ...)
{
	va_list ap;
	printf("%s: %s", c->file, c->when);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	c->diffs++;
}

/* A state's 3 may come back as 3.0: numbers compare by value. */
bool
spec_same(const json_t *a, const json_t *b)
{
	if (json_is_number(a) && json_is_number(b))
		return json_number_value(a) == json_number_value(b);
	if (json_is_array(a) && json_is_array(b)) {
		if (json_array_size(a) != json_array_size(b))
			return false;
		for (size_t i = 0; i < json_array_size(a); i++)
			if (!spec_same(
			        json_array_get(a, i), json_array_get(b, i)))
				return false;
		return true;
	}
	if (json_is_object(a) && json_is_object(b)) {
		const char *k;
		json_t     *v;
		if (json_object_size(a) != json_object_size(b))
			return false;
		json_object_foreach((json_t *) a, k, v)
		{
			json_t *w = json_object_get(b, k);
			if (w == NULL || !spec_same(v, w))
				return false;
		}
		return true;
	}
	return json_equal((json_t *) a, (json_t *) b);
}

/* JSON text of v for a message (malloc'ed; "(none)" for NULL). */
static char *
text(const json_t *v)
{
	if (v == NULL)
		return strdup("(none)");
	char *t
	    = json_dumps(v, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENCODE_ANY);
	return t != NULL ? t : strdup("(?)");
}

static void
diff_value(
    spec_cmp *c, const char *what, const json_t *want, const json_t *got)
{
	char *w = text(want), *g = text(got);
	spec_diff(c, "%s differs\n  expected: %s\n  actual:   %s", what, w, g);
	free(w);
	free(g);
}

/* want (null: none) against got (NULL or null: none). */
static void
check_value(spec_cmp *c, const char *what, const char *part,
    const json_t *want, const json_t *got)
{
	char msg[600];
	if (json_is_null(got))
		got = NULL;
	if (json_is_null(want) ? got == NULL
	                       : got != NULL && spec_same(want, got))
		return;
	snprintf(msg, sizeof(msg), "%s of partition '%s'", what, part);
	diff_value(c, msg, json_is_null(want) ? NULL : want, got);
}

void
spec_check_shared(spec_cmp *c, const json_t *want, const json_t *actual)
{
	if (want == NULL)
		return;
	if (json_is_null(want) ? actual == NULL
	                       : actual != NULL && spec_same(want, actual))
		return;
	diff_value(c, "the shared state", json_is_null(want) ? NULL : want,
	    actual);
}

void
spec_check_states(spec_cmp *c, const json_t *want, const json_t *actual)
{
	if (want == NULL)
		return;
	json_t *seen = json_object();
	for (size_t i = 0; i < json_array_size(want); i++) {
		json_t     *w = json_array_get(want, i);
		const char *part
		    = json_string_value(json_object_get(w, "partition"));
		if (part == NULL) {
			spec_diff(c, "states[%zu] has no partition", i);
			continue;
		}
		const char *key = spec_key_of(part);
		json_t     *got = json_object_get(actual, key);
		json_object_set_new(seen, key, json_true());
		json_t *ws = json_object_get(w, "state");
		if (ws != NULL)
			check_value(c, "state", part, ws,
			    got ? json_object_get(got, "state") : NULL);
		json_t *wr = json_object_get(w, "result");
		if (wr != NULL)
			check_value(c, "result", part, wr,
			    got ? json_object_get(got, "result") : NULL);
	}
	/* states the spec does not list are differences too */
	const char *k;
	json_t     *v;
	json_object_foreach((json_t *) actual, k, v)
	{
		if (json_object_get(seen, k) != NULL)
			continue;
		char *t = text(json_object_get(v, "state"));
		spec_diff(c, "unexpected partition '%s' with state %s",
		    strcmp(k, "root") == 0 ? "" : k, t);
		free(t);
	}
	json_decref(seen);
}

/* {eventType, data, metadata?} of e: metadata only if with_meta. */
static json_t *
cmp_view(const json_t *e, bool with_meta)
{
	json_t *v = json_object();
	json_object_set(v, "eventType", json_object_get(e, "eventType"));
	json_object_set(v, "data", json_object_get(e, "data"));
	if (with_meta)
		json_object_set(v, "metadata", json_object_get(e, "metadata"));
	return v;
}

void
spec_check_emitted(
    spec_cmp *c, const json_t *want, spec_read_stream_fn read, void *arg)
{
	const char *stream;
	json_t     *evs;
	if (want == NULL)
		return;
	json_object_foreach((json_t *) want, stream, evs)
	{
		if (!json_is_array(evs)) {
			spec_diff(c, "emitted['%s'] is not an array", stream);
			continue;
		}
		json_t *got = read(arg, c, stream);
		if (got == NULL)
			continue;
		size_t nw = json_array_size(evs), ng = json_array_size(got);
		char   what[600];
		for (size_t i = 0; i < nw && i < ng; i++) {
			json_t *w    = json_array_get(evs, i);
			bool    meta = json_object_get(w, "metadata") != NULL;
			json_t *wc   = cmp_view(w, meta);
			json_t *gc   = cmp_view(json_array_get(got, i), meta);
			if (!spec_same(wc, gc)) {
				snprintf(what, sizeof(what),
				    "event %zu emitted to '%s'", i, stream);
				diff_value(c, what, wc, gc);
			}
			json_decref(gc);
			json_decref(wc);
		}
		if (nw != ng) {
			char *t = text(got);
			spec_diff(c,
			    "stream '%s' has %zu emitted events, the spec "
			    "expects %zu\n  actual: %s",
			    stream, ng, nw, t);
			free(t);
		}
		json_decref(got);
	}
}
