/*
 * Checking what a plugin's init returned, before anything is registered:
 * each projection's and filter's ABI version, struct size, id, scope,
 * name, required callbacks, selectors, declared streams and initial state,
 * and ids unique across the registry.
 */
#include "plugins_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "event.h"
#include "json.h"
#include "store.h"

/* The longest declared stream (a name or a prefix with its '*'). */
#define EMITS_MAX_LEN 256

static const char zero_uuid[] = "00000000-0000-0000-0000-000000000000";

/* A current projection with this id from a file other than `except`. */
static const proj_def *
find_id(registry *r, const char *canon_id, const plugin *except)
{
	for (size_t i = 0; i < r->n_projs; i++)
		if (r->projs[i]->owner != except
		    && strcmp(r->projs[i]->id, canon_id) == 0)
			return r->projs[i];
	return NULL;
}

/* ---- checking a descriptor ---- */

int
plug_refuse(refusal *rf, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(rf->why, sizeof(rf->why), fmt, ap);
	va_end(ap);
	rf->code = code;
	return code;
}

/* How messages name a projection or filter: by id and name once known. */
static void
proj_label(char *buf, size_t len, size_t i, const char *id, const char *name)
{
	if (id != NULL && name != NULL)
		snprintf(buf, len, "'%s' (%s)", name, id);
	else if (id != NULL)
		snprintf(buf, len, "%s", id);
	else
		snprintf(buf, len, "#%zu", i);
}

static bool
arg_required(sl_key_kind k)
{
	return k == SL_KEY_PROPERTY || k == SL_KEY_STATIC
	    || k == SL_KEY_OCCURRED;
}

static int
check_selectors(
    const sl_projection *p, const char *label, const char *pname, refusal *rf)
{
	if (p->n_selectors < 1 || p->selectors == NULL)
		return plug_refuse(rf, SL_EPLUGIN,
		    "projection %s in plugin '%s': no selectors (need at "
		    "least "
		    "one)",
		    label, pname);
	for (size_t j = 0; j < p->n_selectors; j++) {
		const sl_selector *s = &p->selectors[j];
		if (s->event_type == NULL || s->event_type[0] == '\0')
			return plug_refuse(rf, SL_EPLUGIN,
			    "projection %s in plugin '%s': selector %zu has "
			    "no "
			    "event type",
			    label, pname, j);
		for (size_t k = 0; k < j; k++)
			if (strcmp(p->selectors[k].event_type, s->event_type)
			    == 0)
				return plug_refuse(rf, SL_EPLUGIN,
				    "projection %s in plugin '%s': event type "
				    "'%s' is selected twice (selectors %zu "
				    "and "
				    "%zu)",
				    label, pname, s->event_type, k, j);
		if ((int) s->key < SL_KEY_EVENT_SOURCE
		    || (int) s->key > SL_KEY_OCCURRED)
			return plug_refuse(rf, SL_EPLUGIN,
			    "projection %s in plugin '%s': selector for '%s' "
			    "has unknown key kind %d",
			    label, pname, s->event_type, (int) s->key);
		if (arg_required(s->key)
		    && (s->arg == NULL || s->arg[0] == '\0'))
			return plug_refuse(rf, SL_EPLUGIN,
			    "projection %s in plugin '%s': selector for '%s' "
			    "needs an arg (%s)",
			    label, pname, s->event_type,
			    s->key == SL_KEY_PROPERTY     ? "a property path"
			        : s->key == SL_KEY_STATIC ? "a static key"
			                                  : "a time pattern");
		char why[200];
		if (s->key == SL_KEY_OCCURRED
		    && !def_time_pattern_ok(s->arg, why, sizeof(why)))
			return plug_refuse(rf, SL_EPLUGIN,
			    "projection %s in plugin '%s': selector for '%s': "
			    "occurred key pattern '%.64s' %s",
			    label, pname, s->event_type, s->arg, why);
	}
	return SL_OK;
}

/*
 * ABI 1.2: the declared streams are exact names or prefixes ending in '*',
 * 1..EMITS_MAX_LEN bytes, not in the '$' namespace of the system
 * projections.
 */
static int
check_emits(
    const sl_projection *p, const char *label, const char *pname, refusal *rf)
{
	if (p->struct_size < PROJ_V12_SIZE || p->n_emits == 0)
		return SL_OK;
	if (p->emits == NULL)
		return plug_refuse(rf, SL_EPLUGIN,
		    "projection %s in plugin '%s': %zu emits declared but "
		    "the array is NULL",
		    label, pname, p->n_emits);
	for (size_t j = 0; j < p->n_emits; j++) {
		const char *e = p->emits[j];
		size_t      n = e != NULL ? strnlen(e, EMITS_MAX_LEN + 1) : 0;
		const char *star = e != NULL ? memchr(e, '*', n) : NULL;
		const char *why  = NULL;
		if (n == 0)
			why = "is empty";
		else if (n > EMITS_MAX_LEN)
			why = "is longer than 256 bytes";
		else if (e[0] == '$')
			why = "starts with '$' (reserved for system streams)";
		else if (star != NULL && star != e + n - 1)
			why = "has a '*' that is not its last character";
		else if (n == 1)
			why = "is '*' alone (every stream)";
		if (why != NULL)
			return plug_refuse(rf, SL_EPLUGIN,
			    "projection %s in plugin '%s': emits[%zu] '%.64s' "
			    "%s",
			    label, pname, j, e != NULL ? e : "(null)", why);
	}
	return SL_OK;
}

/*
 * ABI 1.3: a named result stream (what: "result_stream" or
 * "partition_result_stream") is 1..EMITS_MAX_LEN bytes without '*', in the
 * '$' namespace only under the projection's own "$projections-<name>-";
 * a pattern holds "{0}" (the key) once, after some text (the part before
 * it is the prefix the projection owns).
 */
static int
check_result_name(const sl_projection *p, const char *s, const char *what,
    bool pattern, const char *label, const char *pname, refusal *rf)
{
	size_t      n   = strnlen(s, EMITS_MAX_LEN + 1);
	const char *why = NULL;
	const char *arg = strstr(s, "{0}");
	char        own[300];
	snprintf(own, sizeof(own), "$projections-%s-", p->name);
	if (n == 0)
		why = "is empty";
	else if (n > EMITS_MAX_LEN)
		why = "is longer than 256 bytes";
	else if (memchr(s, '*', n) != NULL)
		why = "holds a '*'";
	else if (s[0] == '$' && strncmp(s, own, strlen(own)) != 0)
		why = "starts with '$' but not with $projections-<name>- "
		      "(reserved for system streams)";
	else if (pattern && arg == NULL)
		why = "has no {0} (where the key goes)";
	else if (pattern && strstr(arg + 3, "{0}") != NULL)
		why = "has {0} more than once";
	else if (pattern && arg == s)
		why = "starts with {0} (it needs a prefix to own)";
	if (why == NULL)
		return SL_OK;
	return plug_refuse(rf, SL_EPLUGIN,
	    "projection %s in plugin '%s': %s '%.64s' %s", label, pname, what,
	    s, why);
}

static int
check_result_streams(
    const proj_def *d, const char *label, const char *pname, refusal *rf)
{
	const char *root, *pat;
	proj_def_result_streams(d, &root, &pat);
	int rc = root != NULL ? check_result_name(
	             d->p, root, "result_stream", false, label, pname, rf)
	                      : SL_OK;
	if (rc == SL_OK && pat != NULL)
		rc = check_result_name(d->p, pat, "partition_result_stream",
		    true, label, pname, rf);
	return rc;
}

/* The longest source name (a stream id, a prefix or a category). */
#define SOURCE_NAME_MAX 1024

/*
 * ABI 1.3: each source a known kind, with a name (none for SL_SOURCE_ALL)
 * of 1..SOURCE_NAME_MAX bytes and its types non-empty; known flags only.
 */
static int
check_sources(const proj_def *d, const char *what, const char *label,
    const char *pname, refusal *rf)
{
	const sl_source *src;
	size_t           n;
	uint32_t         flags;
	if (!proj_def_sources(d, &src, &n, &flags))
		return SL_OK;
	const sl_source *raw = def_is_filter(d) ? d->f->sources : d->p->sources;
	size_t raw_n = def_is_filter(d) ? d->f->n_sources : d->p->n_sources;
	if (raw == NULL && raw_n > 0)
		return plug_refuse(rf, SL_EPLUGIN,
		    "%s %s in plugin '%s': %zu sources declared but the array "
		    "is NULL",
		    what, label, pname, raw_n);
	if ((flags & ~(SL_SOURCE_SYSTEM_STREAMS | SL_SOURCE_LINKS)) != 0)
		return plug_refuse(rf, SL_EPLUGIN,
		    "%s %s in plugin '%s': unknown source_flags 0x%x", what,
		    label, pname, flags);
	for (size_t j = 0; j < n; j++) {
		const sl_source *x    = &src[j];
		int              kind = (int) x->kind; /* any value, as int */
		size_t           len  = x->name != NULL
		             ? strnlen(x->name, SOURCE_NAME_MAX + 1)
		             : 0;
		const char      *why  = NULL;
		if (kind < SL_SOURCE_ALL || kind > SL_SOURCE_CATEGORY)
			why = "has an unknown kind";
		else if (kind == SL_SOURCE_ALL && x->name != NULL)
			why = "is SL_SOURCE_ALL with a name";
		else if (kind != SL_SOURCE_ALL && len == 0)
			why = "has no name";
		else if (len > SOURCE_NAME_MAX)
			why = "has a name longer than 1024 bytes";
		else if (x->n_types > 0 && x->types == NULL)
			why = "declares types but the array is NULL";
		for (size_t k = 0; why == NULL && k < x->n_types; k++)
			if (x->types[k] == NULL || x->types[k][0] == '\0')
				why = "has an empty event type";
		if (why != NULL)
			return plug_refuse(rf, SL_EPLUGIN,
			    "%s %s in plugin '%s': sources[%zu] %s", what,
			    label, pname, j, why);
	}
	return SL_OK;
}

/*
 * Two projections may not declare overlapping streams: the second one
 * loaded is refused. A projection of this file's previous version is being
 * replaced (no conflict); earlier ones of this version are checked too.
 */
static int
check_emits_overlap(
    registry *r, const plugin_ver *v, proj_def **defs, size_t i, refusal *rf)
{
	const proj_def    *d = defs[i];
	size_t             n, m;
	if (v->detached)
		return SL_OK; /* a query's script: runs beside no one */
	const char *const *mine  = proj_def_emits(d, &n);
	size_t             total = r->n_projs + i;
	for (size_t k = 0; k < total && n > 0; k++) {
		const proj_def *o
		    = k < r->n_projs ? r->projs[k] : defs[k - r->n_projs];
		if (o == d || def_is_filter(o)
		    || (k < r->n_projs && o->owner == v->owner))
			continue;
		const char *const *theirs = proj_def_emits(o, &m);
		for (size_t a = 0; a < n; a++)
			for (size_t b = 0; b < m; b++)
				if (store_pattern_overlap(mine[a], theirs[b]))
					return plug_refuse(rf, SL_EEXIST,
					    "projection '%s' (%s) in plugin "
					    "'%s': declared stream '%s' "
					    "overlaps '%s' of projection '%s' "
					    "(%s) from %s",
					    d->name, d->id, v->name, mine[a],
					    theirs[b], o->name, o->id,
					    o->owner != NULL ? o->owner->file
					                     : "?");
	}
	return SL_OK;
}

/* A JSON object text (what: its name in the refusal) into *out, *len (a
 * msgpack map, malloc'ed). */
static int
parse_object(const char *json, const char *what, char **out, size_t *len,
    const char *label, const char *pname, refusal *rf)
{
	msgpack_sbuffer sb;
	msgpack_packer  pk;
	char            jerr[256] = "";
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	if (json_text_to_mp(json, 1, &pk, jerr, sizeof(jerr)) != SL_OK) {
		msgpack_sbuffer_destroy(&sb);
		return plug_refuse(rf, SL_EPLUGIN,
		    "projection %s in plugin '%s': %s is not a JSON object: "
		    "%s",
		    label, pname, what, jerr[0] != '\0' ? jerr : "invalid JSON");
	}
	*out = sb.data; /* the sbuffer's malloc'ed bytes, now ours */
	*len = sb.size;
	return SL_OK;
}

/* Parse the initial state JSON into d->initial (a msgpack map), and a 1.3
 * projection's shared initial state into d->shared_initial. */
static int
parse_initial(const sl_projection *p, proj_def *d, const char *label,
    const char *pname, refusal *rf)
{
	if (p->initial_state_json == NULL)
		return plug_refuse(rf, SL_EPLUGIN,
		    "projection %s in plugin '%s': initial_state_json is "
		    "missing",
		    label, pname);
	int rc = parse_object(p->initial_state_json, "initial state",
	    &d->initial, &d->initial_len, label, pname, rf);
	if (rc != SL_OK || p->struct_size < PROJ_V13S_SIZE
	    || (p->abi_version & 0xffffu) < 3
	    || p->shared_initial_state_json == NULL)
		return rc;
	return parse_object(p->shared_initial_state_json,
	    "shared initial state", &d->shared_initial,
	    &d->shared_initial_len, label, pname, rf);
}

/* How messages call a definition: "projection" or "filter". */
static const char *
def_word(const proj_def *d)
{
	return def_is_filter(d) ? "filter" : "projection";
}

/*
 * The checks projections and filters share: id (a UUID, kept in canonical
 * form), scope (a UUID or NULL for the all-zero scope) and name. On success
 * label names the definition by name and id.
 */
static int
check_ident(proj_def *d, const char *what, size_t i, const char *id,
    const char *scope, const char *name, const char *pname, char *label,
    size_t label_len, refusal *rf)
{
	if (id == NULL || !ev_uuid_canon(id, strlen(id), d->id))
		return plug_refuse(rf, SL_EPLUGIN,
		    "%s %s in plugin '%s': id '%s' is not a UUID", what, label,
		    pname, id != NULL ? id : "(null)");
	proj_label(label, label_len, i, d->id, NULL);
	if (scope == NULL) {
		memcpy(d->scope, zero_uuid, sizeof(zero_uuid));
	} else if (!ev_uuid_canon(scope, strlen(scope), d->scope)) {
		return plug_refuse(rf, SL_EPLUGIN,
		    "%s %s in plugin '%s': scope '%s' is not a UUID", what,
		    label, pname, scope);
	}
	if (name == NULL || name[0] == '\0')
		return plug_refuse(rf, SL_EPLUGIN,
		    "%s %s in plugin '%s': name is missing", what, label,
		    pname);
	if ((d->name = strdup(name)) == NULL)
		return plug_refuse(rf, SL_ENOMEM, "out of memory");
	proj_label(label, label_len, i, d->id, name);
	return SL_OK;
}

/* Ids are unique across the projections and filters of other files' current
 * versions; this file's previous version is being replaced. */
static int
check_unique(registry *r, const plugin_ver *v, const proj_def *d,
    const char *label, refusal *rf)
{
	if (v->detached)
		return SL_OK; /* a query's script: not registered */
	const proj_def *other = find_id(r, d->id, v->owner);
	if (other == NULL)
		return SL_OK;
	return plug_refuse(rf, SL_EEXIST,
	    "%s %s in plugin '%s': id already loaded by %s '%s' from %s",
	    def_word(d), label, v->name, def_word(other), other->name,
	    other->owner->file);
}

/*
 * What is checked of a projection's or filter's struct (what: its word,
 * oldest: the smallest struct accepted) before any field past its header
 * is read: it is there, of this ABI major, and big enough.
 */
static int
check_struct(bool present, uint32_t abi, uint32_t size, size_t min,
    const char *what, const char *oldest, const char *label,
    const char *pname, refusal *rf)
{
	if (!present)
		return plug_refuse(rf, SL_EPLUGIN, "%s %s in plugin '%s' is NULL",
		    what, label, pname);
	if (SL_ABI_MAJOR_OF(abi) != SL_ABI_MAJOR)
		return plug_refuse(rf, SL_EVERSION,
		    "%s %s in plugin '%s': ABI version %u.%u is not supported "
		    "(host ABI %u.%u)",
		    what, label, pname, SL_ABI_MAJOR_OF(abi), abi & 0xffffu,
		    SL_ABI_MAJOR, SL_ABI_MINOR);
	if (size < min)
		return plug_refuse(rf, SL_EVERSION,
		    "%s %s in plugin '%s': struct_size %u is smaller than %s "
		    "(%zu)",
		    what, label, pname, size, oldest, min);
	return SL_OK;
}

/* Check one projection and fill a new proj_def for it. */
static int
check_projection(
    registry *r, plugin_ver *v, size_t i, proj_def **out, refusal *rf)
{
	const sl_projection *p     = v->desc->projections[i];
	const char          *pname = v->name;
	char                 label[400];
	*out = NULL;
	proj_label(label, sizeof(label), i, NULL, NULL);
	int rc = check_struct(p != NULL, p != NULL ? p->abi_version : 0,
	    p != NULL ? p->struct_size : 0, PROJ_V1_SIZE, "projection",
	    "sl_projection of ABI 1.0", label, pname, rf);
	if (rc != SL_OK)
		return rc;

	proj_def *d = calloc(1, sizeof(*d));
	if (d == NULL)
		return plug_refuse(rf, SL_ENOMEM, "out of memory");
	d->kind    = DEF_PROJECTION;
	d->p       = p;
	d->owner   = v->owner;
	d->ver     = v;
	d->version = p->version;
	rc         = check_ident(d, "projection", i, p->id, p->scope, p->name,
	        pname, label, sizeof(label), rf);
	if (rc != SL_OK)
		goto fail;
	if (p->on == NULL) {
		rc = plug_refuse(rf, SL_EPLUGIN,
		    "projection %s in plugin '%s': required callback 'on' is "
		    "missing",
		    label, pname);
		goto fail;
	}
	if ((rc = parse_initial(p, d, label, pname, rf)) != SL_OK)
		goto fail;
	if ((rc = check_selectors(p, label, pname, rf)) != SL_OK)
		goto fail;
	if ((rc = check_emits(p, label, pname, rf)) != SL_OK)
		goto fail;
	if ((rc = check_sources(d, "projection", label, pname, rf)) != SL_OK)
		goto fail;
	if ((rc = check_result_streams(d, label, pname, rf)) != SL_OK)
		goto fail;
	if ((rc = check_unique(r, v, d, label, rf)) != SL_OK)
		goto fail;
	d->def_hash = plug_def_hash(d);
	*out        = d;
	return SL_OK;
fail:
	proj_def_free(d);
	return rc;
}

/* Check one filter (ABI 1.1) and fill a new proj_def for it. */
static int
check_filter(registry *r, plugin_ver *v, size_t i, proj_def **out, refusal *rf)
{
	const sl_filter *f     = v->desc->filters[i];
	const char      *pname = v->name;
	char             label[400];
	*out = NULL;
	proj_label(label, sizeof(label), i, NULL, NULL);
	int rc = check_struct(f != NULL, f != NULL ? f->abi_version : 0,
	    f != NULL ? f->struct_size : 0, FILTER_V11_SIZE, "filter",
	    "sl_filter of ABI 1.1", label, pname, rf);
	if (rc != SL_OK)
		return rc;

	proj_def *d = calloc(1, sizeof(*d));
	if (d == NULL)
		return plug_refuse(rf, SL_ENOMEM, "out of memory");
	d->kind    = DEF_FILTER;
	d->f       = f;
	d->owner   = v->owner;
	d->ver     = v;
	d->version = f->version;
	rc = check_ident(d, "filter", i, f->id, f->scope, f->name, pname,
	    label, sizeof(label), rf);
	if (rc != SL_OK)
		goto fail;
	if (f->filter == NULL) {
		rc = plug_refuse(rf, SL_EPLUGIN,
		    "filter %s in plugin '%s': required callback 'filter' is "
		    "missing",
		    label, pname);
		goto fail;
	}
	/* read as an int: a plugin can put any value in the enum */
	int kind = (int) f->kind;
	if (kind != SL_FILTER_UNPARTITIONED && kind != SL_FILTER_PARTITIONED
	    && kind != SL_FILTER_PUBLIC) {
		rc = plug_refuse(rf, SL_EPLUGIN,
		    "filter %s in plugin '%s': unknown kind %d (unpartitioned "
		    "%d, partitioned %d or public %d)",
		    label, pname, kind, SL_FILTER_UNPARTITIONED,
		    SL_FILTER_PARTITIONED, SL_FILTER_PUBLIC);
		goto fail;
	}
	d->filter_kind = f->kind;
	if ((rc = check_sources(d, "filter", label, pname, rf)) != SL_OK)
		goto fail;
	int change     = f->struct_size >= FILTER_V13_SIZE
	        ? (int) f->on_code_change
	        : SL_CODE_CHANGE_REBUILD;
	if (change != SL_CODE_CHANGE_REBUILD
	    && change != SL_CODE_CHANGE_FAIL) {
		rc = plug_refuse(rf, SL_EPLUGIN,
		    "filter %s in plugin '%s': unknown on_code_change %d "
		    "(rebuild %d or fail %d)",
		    label, pname, change, SL_CODE_CHANGE_REBUILD,
		    SL_CODE_CHANGE_FAIL);
		goto fail;
	}
	if ((rc = check_unique(r, v, d, label, rf)) != SL_OK)
		goto fail;
	d->def_hash = plug_filter_hash(d);
	*out        = d;
	return SL_OK;
fail:
	proj_def_free(d);
	return rc;
}

/*
 * Check the descriptor; on success defs[] holds one proj_def for each
 * projection, then one for each filter.
 */
int
plug_check_desc(registry *r, plugin_ver *v, proj_def **defs, refusal *rf)
{
	size_t np = v->n_defs - v->n_filters;
	for (size_t i = 0; i < v->n_defs; i++) {
		int rc = i < np ? check_projection(r, v, i, &defs[i], rf)
		                : check_filter(r, v, i - np, &defs[i], rf);
		if (rc == SL_OK && i < np)
			rc = check_emits_overlap(r, v, defs, i, rf);
		if (rc != SL_OK)
			return rc;
		for (size_t k = 0; k < i; k++)
			if (strcmp(defs[k]->id, defs[i]->id) == 0)
				return plug_refuse(rf, SL_EEXIST,
				    "%s '%s' (%s) in plugin '%s': id is used "
				    "twice in this plugin (also by %s '%s')",
				    def_word(defs[i]), defs[i]->name,
				    defs[i]->id, v->name, def_word(defs[k]),
				    defs[k]->name);
	}
	return SL_OK;
}
