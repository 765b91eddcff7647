/*
 * Loading a JavaScript projection: read the file, run it once in a bounded
 * heap, and turn what it declared (__sl, recorded by the prelude's
 * fromAll() ... options()) into an ABI 1.3 sl_projection: sources, one
 * selector per handler ("$any" too), the key selector (the stream with
 * foreachStream(), else one static key), created/deleted/result.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsproj_internal.h"

/* The one key of a projection without foreachStream() (EventStoreDB's
 * root partition). */
#define ROOT_KEY "root"

static uint64_t
fnv64(const char *s, uint64_t h)
{
	for (; *s; s++) {
		h ^= (unsigned char) *s;
		h *= 0x100000001b3ull;
	}
	return h;
}

/* "8-4-4-4-12" hex digits, either case. */
static bool
uuid_text_ok(const char *s)
{
	static const int dash[] = { 8, 13, 18, 23 };
	if (strlen(s) != 36)
		return false;
	for (int i = 0, d = 0; i < 36; i++) {
		if (d < 4 && i == dash[d]) {
			if (s[i] != '-')
				return false;
			d++;
		} else if (!isxdigit((unsigned char) s[i]))
			return false;
	}
	return true;
}

static char *
keep(jsproj *p, const char *s)
{
	char **a = realloc(p->strs, (p->n_strs + 1) * sizeof(*a));
	if (a == NULL)
		return NULL;
	p->strs = a;
	char *c = strdup(s);
	if (c != NULL)
		p->strs[p->n_strs++] = c;
	return c;
}

typedef struct defarg {
	jsproj *p;
	char    why[512];
} defarg;

#define DEF_FAIL(...)                                                         \
	do {                                                                  \
		snprintf(d->why, sizeof(d->why), __VA_ARGS__);                \
		return 0;                                                     \
	} while (0)

static bool
allowed_special(const char *k)
{
	return strcmp(k, "$init") == 0 || strcmp(k, "$any") == 0
	    || strcmp(k, "$created") == 0 || strcmp(k, "$deleted") == 0
	    || strcmp(k, "$initShared") == 0;
}

/* options({...}): what Sluice reads; anything else is refused, so that a
 * script never runs with an option silently ignored. */
static duk_ret_t
read_options(duk_context *ctx, defarg *d)
{
	jsproj *p = d->p;
	duk_get_prop_string(ctx, -1, "options");
	duk_enum(ctx, -1, DUK_ENUM_OWN_PROPERTIES_ONLY);
	while (duk_next(ctx, -1, 1)) {
		const char *k = duk_get_string(ctx, -2);
		if (strcmp(k, "$includeLinks") == 0) {
			if (duk_to_boolean(ctx, -1))
				p->proj.source_flags |= SL_SOURCE_LINKS;
		} else if (strcmp(k, "biState") == 0) {
			if (duk_to_boolean(ctx, -1))
				p->bistate = true;
		} else if (strcmp(k, "reorderEvents") == 0
		    || strcmp(k, "processingLag") == 0) {
			/* one ordered log: nothing to reorder or wait for */
		} else if (strcmp(k, "emits") == 0) {
			if (!duk_is_array(ctx, -1))
				DEF_FAIL("%s: options.emits is a list of "
				         "stream names",
				    p->file);
			size_t n = duk_get_length(ctx, -1);
			p->emits = calloc(n ? n : 1, sizeof(char *));
			if (p->emits == NULL)
				DEF_FAIL("%s: out of memory", p->file);
			for (size_t i = 0; i < n; i++) {
				duk_get_prop_index(ctx, -1, (duk_uarridx_t) i);
				if (!duk_is_string(ctx, -1))
					DEF_FAIL("%s: options.emits[%zu] is "
					         "not a string",
					    p->file, i);
				p->emits[i] = keep(p, duk_get_string(ctx, -1));
				duk_pop(ctx);
			}
			p->n_emits = n;
		} else if (strcmp(k, "$id") == 0) {
			const char *v = duk_get_string(ctx, -1);
			char       *id;
			if (v == NULL || !uuid_text_ok(v))
				DEF_FAIL("%s: options.$id is a UUID "
				         "(8-4-4-4-12 hex digits)",
				    p->file);
			if ((id = strdup(v)) == NULL)
				DEF_FAIL("%s: out of memory", p->file);
			for (char *c = id; *c; c++)
				*c = (char) tolower((unsigned char) *c);
			free(p->id);
			p->id       = id;
			p->id_given = true;
		} else if (strcmp(k, "$name") == 0) {
			const char *v = duk_get_string(ctx, -1);
			char       *n;
			duk_size_t  len = 0;
			if (v != NULL)
				(void) duk_get_lstring(ctx, -1, &len);
			if (v == NULL || len == 0 || len > 256
			    || strlen(v) != len)
				DEF_FAIL("%s: options.$name is a name of "
				         "1..256 bytes",
				    p->file);
			if ((n = strdup(v)) == NULL)
				DEF_FAIL("%s: out of memory", p->file);
			free(p->name);
			p->name = n;
		} else if (strcmp(k, "$budgetMs") == 0) {
			double v = duk_to_number(ctx, -1);
			if (v >= 1 && v < p->lim.budget_ms)
				p->lim.budget_ms = (uint32_t) v;
		} else if (strcmp(k, "$memoryMb") == 0) {
			double v = duk_to_number(ctx, -1) * 1048576.0;
			if (v >= 1048576.0 && v < (double) p->lim.memory_bytes)
				p->lim.memory_bytes = (size_t) v;
		} else if (strcmp(k, "resultStreamName") == 0
		    || strcmp(k, "partitionResultStreamNamePattern") == 0) {
			bool root = k[0] == 'r';
			if (!duk_is_string(ctx, -1))
				DEF_FAIL("%s: options.%s is a stream name",
				    p->file, k);
			/* outputTo() wins: ESDB applies it after */
			const char **to
			    = root ? &p->result_stream : &p->partition_pattern;
			if (*to == NULL
			    && (*to = keep(p, duk_get_string(ctx, -1)))
			        == NULL)
				DEF_FAIL("%s: out of memory", p->file);
		} else
			DEF_FAIL(
			    "%s: options.%s is not supported", p->file, k);
		duk_pop_2(ctx);
	}
	duk_pop_2(ctx);
	return 0;
}

static duk_ret_t
read_sources(duk_context *ctx, defarg *d)
{
	jsproj *p = d->p;
	duk_get_prop_string(ctx, -1, "sources");
	if (!duk_is_array(ctx, -1))
		DEF_FAIL("%s: no fromAll(), fromStream(), fromStreams(), "
		         "fromCategory() or fromCategories()",
		    p->file);
	size_t n = duk_get_length(ctx, -1);
	if (n > 0 && (p->src = calloc(n, sizeof(sl_source))) == NULL)
		DEF_FAIL("%s: out of memory", p->file);
	for (size_t i = 0; i < n; i++) {
		duk_get_prop_index(ctx, -1, (duk_uarridx_t) i);
		duk_get_prop_string(ctx, -1, "kind");
		p->src[i].kind = (sl_source_kind) duk_get_int(ctx, -1);
		duk_get_prop_string(ctx, -2, "name");
		p->src[i].name = keep(p, duk_get_string(ctx, -1));
		duk_pop_3(ctx);
	}
	p->n_src = n;
	duk_pop(ctx);
	return 0;
}

static duk_ret_t
read_handlers(duk_context *ctx, defarg *d)
{
	jsproj *p = d->p;
	duk_get_prop_string(ctx, -1, "foreachStream");
	bool per_stream = duk_to_boolean(ctx, -1);
	duk_pop(ctx);
	p->per_stream = per_stream;
	if (per_stream && p->partition_fn)
		DEF_FAIL("%s: partitionBy() and foreachStream() both choose "
		         "the key: use one",
		    p->file);
	duk_get_prop_string(ctx, -1, "handlers");
	if (!duk_is_object(ctx, -1))
		DEF_FAIL("%s: no .when({...})", p->file);
	duk_enum(ctx, -1, DUK_ENUM_OWN_PROPERTIES_ONLY);
	while (duk_next(ctx, -1, 1)) {
		const char *k = duk_get_string(ctx, -2);
		if (!duk_is_function(ctx, -1))
			DEF_FAIL(
			    "%s: when(): '%s' is not a function", p->file, k);
		if (k[0] == '$' && !allowed_special(k))
			DEF_FAIL(
			    "%s: when(): '%s' is not supported", p->file, k);
		if (strcmp(k, "$init") == 0)
			p->has_init = true;
		else if (strcmp(k, "$created") == 0)
			p->has_created = true;
		else if (strcmp(k, "$deleted") == 0)
			p->has_deleted = true;
		else if (strcmp(k, "$initShared") == 0)
			p->bistate = true;
		else {
			sl_selector *s
			    = realloc(p->sel, (p->n_sel + 1) * sizeof(*s));
			if (s == NULL)
				DEF_FAIL("%s: out of memory", p->file);
			p->sel                 = s;
			s[p->n_sel].event_type = keep(p, k);
			/* partitionBy(): sl_projection.key gives the key; the
			 * selector only says the type is handled */
			s[p->n_sel].key = per_stream || p->partition_fn
			    ? SL_KEY_EVENT_SOURCE
			    : SL_KEY_STATIC;
			s[p->n_sel].arg
			    = per_stream || p->partition_fn ? NULL : ROOT_KEY;
			p->n_sel++;
		}
		duk_pop_2(ctx);
	}
	duk_pop_2(ctx);
	if (p->n_sel == 0)
		DEF_FAIL("%s: when() has no event handler ($any or a type)",
		    p->file);
	return 0;
}

/* Bi-state ($initShared, or options({biState: true})): the shared
 * state's initial value is what $initShared returns (else {}), computed
 * once at load; the host keeps the shared state from there. */
static duk_ret_t
read_shared(duk_context *ctx, defarg *d)
{
	jsproj *p = d->p;
	duk_get_global_string(ctx, "__sl_init_shared");
	jsheap_script_begin();
	duk_call(ctx, 0);
	jsheap_script_end();
	if (!duk_is_object(ctx, -1) || duk_is_array(ctx, -1)
	    || duk_is_function(ctx, -1))
		DEF_FAIL("%s: $initShared must return an object", p->file);
	p->shared_json = keep(p, duk_json_encode(ctx, -1));
	duk_pop(ctx);
	if (p->shared_json == NULL)
		DEF_FAIL("%s: out of memory", p->file);
	return 0;
}

static duk_ret_t
def_body(duk_context *ctx, void *arg)
{
	defarg *d = arg;
	jsproj *p = d->p;
	duk_get_global_string(ctx, "__sl");
	duk_get_prop_string(ctx, -1, "partitionBy");
	p->partition_fn = !duk_is_null(ctx, -1);
	duk_pop(ctx);
	/* outputTo(stream, pattern) */
	duk_get_prop_string(ctx, -1, "resultStream");
	if (duk_is_string(ctx, -1))
		p->result_stream = keep(p, duk_get_string(ctx, -1));
	duk_get_prop_string(ctx, -2, "partitionPattern");
	if (duk_is_string(ctx, -1))
		p->partition_pattern = keep(p, duk_get_string(ctx, -1));
	duk_pop_2(ctx);
	read_sources(ctx, d);
	if (d->why[0] == '\0')
		read_handlers(ctx, d);
	if (d->why[0] == '\0')
		read_options(ctx, d);
	/* as EventStoreDB ("Deleted stream notifications are only supported
	 * with foreachStream()"): the notice names a stream, and only
	 * foreachStream() makes the stream its key */
	if (d->why[0] == '\0' && p->has_deleted && !p->per_stream)
		DEF_FAIL("%s: $deleted is only supported with foreachStream() "
		         "(as in EventStoreDB: a deleted stream's notice goes "
		         "to the key that is the stream's id%s)",
		    p->file,
		    p->partition_fn ? "; partitionBy() keys are not streams"
		                    : "");
	if (d->why[0] == '\0' && p->bistate)
		read_shared(ctx, d);
	if (d->why[0] == '\0') {
		duk_get_prop_string(ctx, -1, "outputState");
		if (duk_to_boolean(ctx, -1)) {
			p->proj.result        = jscall_result;
			p->proj.result_reason = jscall_result_reason;
		}
		duk_pop(ctx);
		duk_get_prop_string(ctx, -1, "transforms");
		p->n_transforms = duk_get_length(ctx, -1);
		duk_pop(ctx);
	}
	duk_pop(ctx);
	return 0;
}

static char *
read_file(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	char  *buf = NULL;
	size_t n = 0, cap = 0, got;
	do {
		if (cap - n < 4096) {
			cap     = cap ? cap * 2 : 8192;
			char *b = realloc(buf, cap + 1);
			if (b == NULL || cap > (SL_STATE_MAX_BYTES)) {
				free(b ? b : buf);
				fclose(f);
				snprintf(err, errlen, "%s: too big", path);
				return NULL;
			}
			buf = b;
		}
		got = fread(buf + n, 1, cap - n, f);
		n += got;
	} while (got > 0);
	fclose(f);
	buf[n] = '\0';
	if (strlen(buf) != n) {
		free(buf);
		snprintf(err, errlen, "%s: holds a NUL byte", path);
		return NULL;
	}
	return buf;
}

/* A stable UUID for the name (the file's, without .js): the same file
 * keeps its id, and so its read models, across loads. */
static char *
uuid_of(const char *name)
{
	uint64_t a = fnv64(name, 0xcbf29ce484222325ull);
	uint64_t b = fnv64("sluice-js", fnv64(name, 0x84222325cbf29ce4ull));
	char     buf[40];
	snprintf(buf, sizeof(buf), "%08x-%04x-8%03x-%04x-%012llx",
	    (unsigned) (a >> 32), (unsigned) (a >> 16) & 0xffffu,
	    (unsigned) a & 0xfffu, (unsigned) ((b >> 48) & 0x3fffu) | 0x8000u,
	    (unsigned long long) (b & 0xffffffffffffull));
	return strdup(buf);
}

int
jsproj_open(const sl_host_api *host, const char *path, const char *file,
    const jsproj_limits *lim, jsproj **out, char *err, size_t errlen)
{
	*out      = NULL;
	jsproj *p = calloc(1, sizeof(*p));
	if (p == NULL)
		return SL_ENOMEM;
	p->host = host;
	p->lim
	    = lim ? *lim : (jsproj_limits) { JSPROJ_BUDGET_MS, JSPROJ_MEMORY };
	pthread_mutex_init(&p->mu, NULL);
	if (file == NULL) {
		const char *slash = strrchr(path, '/');
		file              = slash ? slash + 1 : path;
	}
	p->path = strdup(file);
	if (p->path == NULL) {
		jsproj_close(p);
		return SL_ENOMEM;
	}
	p->file = p->path;
	if ((p->text = read_file(path, err, errlen)) == NULL) {
		jsproj_close(p);
		return SL_ENOTFOUND;
	}
	size_t flen = strlen(p->file);
	if (flen < 4 || strcmp(p->file + flen - 3, ".js") != 0) {
		snprintf(err, errlen, "%s: not a .js file", p->file);
		jsproj_close(p);
		return SL_EPLUGIN;
	}
	p->name = strndup(p->file, flen - 3);
	p->id   = p->name ? uuid_of(p->name) : NULL;
	if (p->id == NULL) {
		jsproj_close(p);
		return SL_ENOMEM;
	}

	jsheap *h = jsheap_take(p, err, errlen);
	if (h == NULL) {
		jsproj_close(p);
		return SL_EPLUGIN;
	}
	defarg d = { .p = p };
	bool   dead;
	int    rc = jsheap_run(h, def_body, &d, NULL, &dead, err, errlen);
	if (dead)
		jsheap_drop(h);
	else
		jsheap_give(h);
	if (rc == SL_OK && d.why[0] != '\0') {
		snprintf(err, errlen, "%s", d.why);
		rc = SL_EPLUGIN;
	}
	if (rc != SL_OK) {
		jsproj_close(p);
		return rc;
	}
	/* options.$name without $id: the id follows the name */
	if (!p->id_given) {
		char *id = uuid_of(p->name);
		if (id == NULL) {
			jsproj_close(p);
			return SL_ENOMEM;
		}
		free(p->id);
		p->id = id;
	}

	sl_projection *j = &p->proj;
	j->struct_size   = sizeof(*j);
	j->abi_version   = SL_ABI_VERSION;
	j->id            = p->id;
	j->name          = p->name;
	/* the definition is the file's text: any edit rebuilds */
	j->version = (uint32_t) fnv64(p->text, 0xcbf29ce484222325ull) | 1u;
	j->initial_state_json = "{}";
	j->selectors          = p->sel;
	j->n_selectors        = p->n_sel;
	j->on                 = jscall_on;
	j->user               = p;
	j->emits              = p->emits;
	j->n_emits            = p->n_emits;
	j->sources            = p->src;
	j->n_sources          = p->n_src;
	if (p->has_init || p->has_created)
		j->created = jscall_created;
	if (p->has_deleted)
		j->deleted = jscall_deleted;
	if (p->partition_fn)
		j->key = jscall_key;
	j->result_stream           = p->result_stream;
	j->partition_result_stream = p->partition_pattern;
	if (p->bistate) {
		j->shared_initial_state_json = p->shared_json;
		/* each new key's [state, shared] goes through __sl_init */
		j->created = jscall_created;
	}
	*out = p;
	return SL_OK;
}

const sl_projection *
jsproj_projection(const jsproj *p)
{
	return &p->proj;
}

void
jsproj_close(jsproj *p)
{
	if (p == NULL)
		return;
	jsheap_pool_free(p);
	pthread_mutex_destroy(&p->mu);
	for (size_t i = 0; i < p->n_strs; i++)
		free(p->strs[i]);
	free(p->strs);
	free(p->sel);
	free(p->src);
	free(p->emits);
	free(p->id);
	free(p->name);
	free(p->text);
	free(p->path);
	free(p);
}
