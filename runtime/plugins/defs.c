/*
 * Plugin definitions (proj_def) and their hashes: the FNV-1a 64 hashes of
 * a projection's or a filter's definition, stored with its checkpoints,
 * what a projection declares under ABI 1.2 (emits, result), and whether an
 * occurred key selector's pattern can make keys; what a filter's code
 * change does (ABI 1.3).
 */
#include "plugins_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "projection.h"

/* A string and its terminator, so ("ab","c") and ("a","bc") differ; NULL
 * hashes as one 0xff byte, distinct from "". */
static void
fnv_str(fnv *f, const char *s)
{
	if (s == NULL) {
		unsigned char ff = 0xff;
		fnv_bytes(f, &ff, 1);
		return;
	}
	fnv_bytes(f, s, strlen(s) + 1);
}

static void
fnv_u64(fnv *f, uint64_t v)
{
	unsigned char b[8];
	for (int i = 0; i < 8; i++)
		b[i] = (unsigned char) (v >> (8 * i)); /* fixed byte order */
	fnv_bytes(f, b, 8);
}

/*
 * A filter's definition: id, scope, kind and declared version. The hashed
 * bytes start with a tag that no projection's can start with (those start
 * with the id, a UUID), so a filter and a projection never share an input.
 */
uint64_t
defhash_filter(const char *id, const char *scope, sl_filter_kind kind,
    uint32_t version)
{
	fnv f = { FNV1A_OFFSET };
	fnv_str(&f, "$filter");
	fnv_str(&f, id);
	fnv_str(&f, scope);
	fnv_u64(&f, (uint64_t) kind);
	fnv_u64(&f, version);
	return f.h;
}

/*
 * Whether the 1.3 rules (no system streams, no links unless asked) can
 * select other events than 1.2 did for d without sources: a filter sees
 * every event; a projection only those of its selectors' types, and the
 * system streams hold only links ("$>"), '$' types and result streams'
 * "Result" events. A plugin rebuilt against 1.3 keeps its hash (and read
 * models) unless its selection changed.
 */
static bool
v13_rules_matter(const proj_def *d)
{
	if (def_is_filter(d))
		return true;
	for (size_t i = 0; i < d->p->n_selectors; i++) {
		const char *t = d->p->selectors[i].event_type;
		if (t != NULL && (t[0] == '$' || strcmp(t, "Result") == 0))
			return true;
	}
	return false;
}

/* A 1.3 definition's sources (none before 1.3: the hash stays). */
static uint64_t
defhash_sources(uint64_t base, const proj_def *d)
{
	const sl_source *src;
	size_t           n;
	uint32_t         flags;
	if (!proj_def_sources(d, &src, &n, &flags)
	    || (n == 0 && flags == 0 && !v13_rules_matter(d)))
		return base;
	fnv f = { base };
	fnv_str(&f, "$sources");
	fnv_u64(&f, n);
	for (size_t i = 0; i < n; i++) {
		fnv_u64(&f, (uint64_t) src[i].kind);
		fnv_str(&f, src[i].name);
		fnv_u64(&f, src[i].n_types);
		for (size_t k = 0; k < src[i].n_types; k++)
			fnv_str(&f, src[i].types[k]);
	}
	fnv_u64(&f, flags);
	return f.h;
}

uint64_t
plug_filter_hash(const proj_def *d)
{
	return defhash_sources(
	    defhash_filter(d->id, d->scope, d->filter_kind, d->version), d);
}

proj_created_fn
proj_def_created(const proj_def *def)
{
	if (def == NULL || def_is_filter(def) || def->p == NULL
	    || def->p->struct_size < PROJ_V13C_SIZE
	    || (def->p->abi_version & 0xffffu) < 3)
		return NULL;
	return def->p->created;
}

proj_deleted_fn
proj_def_deleted(const proj_def *def)
{
	if (def == NULL || def_is_filter(def) || def->p == NULL
	    || def->p->struct_size < PROJ_V13D_SIZE
	    || (def->p->abi_version & 0xffffu) < 3)
		return NULL;
	return def->p->deleted;
}

proj_key_fn
proj_def_key(const proj_def *def)
{
	if (def == NULL || def_is_filter(def) || def->p == NULL
	    || def->p->struct_size < PROJ_V13K_SIZE
	    || (def->p->abi_version & 0xffffu) < 3)
		return NULL;
	return def->p->key;
}

static bool
has_v13r(const proj_def *def)
{
	return def != NULL && !def_is_filter(def) && def->p != NULL
	    && def->p->struct_size >= PROJ_V13R_SIZE
	    && (def->p->abi_version & 0xffffu) >= 3;
}

void
proj_def_result_streams(
    const proj_def *def, const char **root, const char **pattern)
{
	*root    = NULL;
	*pattern = NULL;
	if (!has_v13r(def))
		return;
	*root    = def->p->result_stream;
	*pattern = def->p->partition_result_stream;
}

proj_result_reason_fn
proj_def_result_reason(const proj_def *def)
{
	return has_v13r(def) ? def->p->result_reason : NULL;
}

bool
proj_def_sources(const proj_def *def, const sl_source **src, size_t *n,
    uint32_t *flags)
{
	*src   = NULL;
	*n     = 0;
	*flags = 0;
	if (def == NULL)
		return false;
	if (def_is_filter(def)) {
		const sl_filter *f = def->f;
		if (f == NULL || f->struct_size < FILTER_V13_SIZE
		    || (f->abi_version & 0xffffu) < 3)
			return false;
		*src   = f->n_sources > 0 ? f->sources : NULL;
		*n     = *src != NULL ? f->n_sources : 0;
		*flags = f->source_flags;
		return true;
	}
	const sl_projection *p = def->p;
	if (p == NULL || p->struct_size < PROJ_V13_SIZE
	    || (p->abi_version & 0xffffu) < 3)
		return false;
	*src   = p->n_sources > 0 ? p->sources : NULL;
	*n     = *src != NULL ? p->n_sources : 0;
	*flags = p->source_flags;
	return true;
}

/* A projection's definition. Stored with its checkpoints: keep the bytes
 * hashed here as they are, or every read model would be rebuilt. */
uint64_t
defhash_projection(const char *id, const char *scope, uint32_t version,
    const void *initial, size_t initial_len, const sl_selector *sels,
    size_t n_sels)
{
	fnv f = { FNV1A_OFFSET };
	fnv_str(&f, id);
	fnv_str(&f, scope);
	fnv_u64(&f, version);
	fnv_u64(&f, initial_len);
	fnv_bytes(&f, initial, initial_len);
	fnv_u64(&f, n_sels);
	for (size_t i = 0; i < n_sels; i++) {
		fnv_str(&f, sels[i].event_type);
		fnv_u64(&f, (uint64_t) sels[i].key);
		fnv_str(&f, sels[i].arg);
	}
	return f.h;
}

uint64_t
defhash_emits(
    uint64_t base, const char *const *emits, size_t n, bool has_result)
{
	if (n == 0 && !has_result)
		return base;
	fnv f = { base };
	fnv_str(&f, "$emits");
	fnv_u64(&f, n);
	for (size_t i = 0; i < n; i++)
		fnv_str(&f, emits[i]);
	fnv_u64(&f, has_result ? 1 : 0);
	return f.h;
}

const char *const *
proj_def_emits(const proj_def *def, size_t *n)
{
	*n = 0;
	if (def == NULL || def_is_filter(def) || def->p == NULL
	    || def->p->struct_size < PROJ_V12_SIZE || def->p->emits == NULL)
		return NULL;
	*n = def->p->n_emits;
	return def->p->emits;
}

proj_result_fn
proj_def_result(const proj_def *def)
{
	if (def == NULL || def_is_filter(def) || def->p == NULL
	    || def->p->struct_size < PROJ_V12_SIZE)
		return NULL;
	return def->p->result;
}

sl_code_change
proj_def_on_code_change(const proj_def *def)
{
	if (def == NULL || !def_is_filter(def) || def->f == NULL
	    || def->f->struct_size < FILTER_V13_SIZE)
		return SL_CODE_CHANGE_REBUILD;
	return def->f->on_code_change;
}

uint64_t
plug_def_hash(const proj_def *d)
{
	uint64_t           h = defhash_projection(d->id, d->scope, d->version,
	              d->initial, d->initial_len, d->p->selectors, d->p->n_selectors);
	size_t             n;
	const char *const *emits = proj_def_emits(d, &n);
	h = defhash_sources(
	    defhash_emits(h, emits, n, proj_def_result(d) != NULL), d);
	/* named result streams change what is written (hashed only when
	 * set, so that every other hash stays) */
	const char *rroot, *rpat;
	proj_def_result_streams(d, &rroot, &rpat);
	if (rroot != NULL || rpat != NULL) {
		fnv r = { h };
		fnv_str(&r, "$results");
		fnv_str(&r, rroot);
		fnv_str(&r, rpat);
		h = r.h;
	}
	if (d->shared_initial == NULL)
		return h;
	fnv f = { h };
	fnv_str(&f, "$shared");
	fnv_u64(&f, d->shared_initial_len);
	fnv_bytes(&f, d->shared_initial, d->shared_initial_len);
	return f.h;
}

void
proj_def_free(proj_def *d)
{
	if (d == NULL)
		return;
	free(d->initial);
	free(d->shared_initial);
	free((char *) d->name);
	free(d);
}

/* ---- occurred key patterns ---- */

/* strftime's conversions (C99, POSIX and glibc's), and those that take
 * the E or O modifier. */
#define TIME_CONVERSIONS   "aAbBcCdDeFgGhHIjklmMnpPrRsStTuUVwWxXyYzZ%"
#define TIME_E_CONVERSIONS "cCxXyY"
#define TIME_O_CONVERSIONS "bBdeHImMSuUVwWy"

/* Three times that differ in every field strftime shows: century, year,
 * month, day, weekday, hour (AM and PM), minute and second. */
static const time_t time_samples[] = {
	0,          /* Thu 1970-01-01 00:00:00 */
	1000000000, /* Sun 2001-09-09 01:46:40 */
	2131454242, /* Fri 2037-07-17 14:37:22 */
};

/* The first conversion of pattern strftime does not know, or NULL; *n
 * gets its length, 0 when the pattern ends inside it. */
static const char *
time_bad_conversion(const char *pattern, size_t *n)
{
	for (const char *p = pattern; *p != '\0'; p++) {
		if (*p != '%')
			continue;
		const char *c = p + 1;
		c += strspn(c, "_-0^#");      /* glibc's flags */
		c += strspn(c, "0123456789"); /* and width */
		char        mod = *c == 'E' || *c == 'O' ? *c++ : '\0';
		const char *set = mod == 'E' ? TIME_E_CONVERSIONS
		    : mod == 'O'             ? TIME_O_CONVERSIONS
		                             : TIME_CONVERSIONS;
		if (*c == '\0') {
			*n = 0;
			return p;
		}
		if (strchr(set, *c) == NULL) {
			*n = (size_t) (c - p) + 1;
			return p;
		}
		p = c;
	}
	return NULL;
}

bool
def_time_pattern_ok(const char *pattern, char *why, size_t len)
{
	char   text[3][PROC_KEY_MAX];
	size_t n;

	if (pattern == NULL || pattern[0] == '\0') {
		snprintf(why, len, "is empty");
		return false;
	}
	const char *bad = time_bad_conversion(pattern, &n);
	if (bad != NULL) {
		if (n == 0)
			snprintf(why, len,
			    "ends in an unfinished conversion '%s'", bad);
		else
			snprintf(why, len,
			    "'%.*s' is not a strftime conversion", (int) n,
			    bad);
		return false;
	}
	for (size_t i = 0; i < 3; i++) {
		struct tm tm;
		if (gmtime_r(&time_samples[i], &tm) == NULL) {
			snprintf(why, len, "cannot be tried");
			return false;
		}
		/* 0: empty, or longer than a key */
		if (strftime(text[i], sizeof(text[i]), pattern, &tm) == 0) {
			snprintf(why, len,
			    "gives an empty key or one longer than %d bytes",
			    PROC_KEY_MAX - 1);
			return false;
		}
	}
	if (strcmp(text[0], text[1]) == 0 && strcmp(text[1], text[2]) == 0) {
		snprintf(why, len,
		    "gives the same key '%.64s' for every time (no time "
		    "conversion such as %%Y or %%m-%%d)",
		    text[0]);
		return false;
	}
	return true;
}
