/*
 * Paths into documents (ABI 1.3): "lines[0].sku", "coupons[\"SPRING.10\"]",
 * "lines[-1]". Parsed whole before a document is touched, so that a bad
 * path is an error and never half an edit.
 */
#include "docpath.h"

#include <string.h>

/* A bracket: [digits], [-digits] or ["key"]. *p is at '['. */
static int
parse_bracket(const char **p, char **w, dpath_seg *seg)
{
	const char *s = *p + 1;
	if (*s == '"') {
		char *start = *w;
		for (s++; *s != '"'; s++) {
			if (*s == '\0')
				return SL_EINVAL; /* no closing quote */
			if (*s == '\\') {
				s++;
				if (*s != '"' && *s != '\\')
					return SL_EINVAL;
			}
			*(*w)++ = *s;
		}
		if (s[1] != ']')
			return SL_EINVAL;
		seg->is_index = false;
		seg->key      = start;
		seg->klen     = (size_t) (*w - start);
		*p            = s + 2;
		return SL_OK;
	}
	bool neg = *s == '-';
	if (neg)
		s++;
	int64_t v = 0;
	size_t  n = 0;
	for (; *s >= '0' && *s <= '9'; s++, n++) {
		if (n == 18)
			return SL_EINVAL; /* beyond any array */
		v = v * 10 + (*s - '0');
	}
	if (n == 0 || *s != ']')
		return SL_EINVAL;
	seg->is_index = true;
	seg->index    = neg ? -v : v;
	*p            = s + 1;
	return SL_OK;
}

int
dpath_parse(const char *text, dpath *out)
{
	out->n = 0;
	if (text == NULL || *text == '\0')
		return SL_OK;
	if (strnlen(text, SL_PATH_MAX + 1) > SL_PATH_MAX)
		return SL_ETOOBIG;
	const char *p = text;
	char       *w = out->buf;
	while (*p != '\0') {
		if (out->n == SL_DOC_MAX_DEPTH)
			return SL_ETOOBIG;
		dpath_seg *seg = &out->seg[out->n];
		if (out->n > 0 && *p == '.') {
			p++;
			if (*p == '.' || *p == '[' || *p == '\0')
				return SL_EINVAL; /* "a..b", "a.[0]", "a." */
		} else if (out->n > 0 && *p != '[') {
			return SL_EINVAL; /* only '.' or '[' after ']' */
		}
		if (*p == '[') {
			int rc = parse_bracket(&p, &w, seg);
			if (rc != SL_OK)
				return rc;
		} else {
			size_t n = strcspn(p, ".[");
			if (n == 0)
				return SL_EINVAL; /* ".a" */
			memcpy(w, p, n);
			seg->is_index = false;
			seg->key      = w;
			seg->klen     = n;
			w += n;
			p += n;
		}
		out->n++;
	}
	return SL_OK;
}

bool
dpath_item(int64_t index, size_t n, size_t *out)
{
	if (index < 0) {
		if ((uint64_t) -index > n)
			return false;
		*out = n - (size_t) -index;
		return true;
	}
	if ((uint64_t) index >= n)
		return false;
	*out = (size_t) index;
	return true;
}
