/*
 * Topics of the live feed (proto/feed.h): how the publisher names each
 * event's tenant and stream so that a plain NNG subscriber can filter.
 */
#include "feed.h"

static void
feed_put(char *buf, size_t cap, size_t *n, char ch)
{
	if (*n < cap)
		buf[*n] = ch;
	(*n)++;
}

/* An id as a topic part: '%', control bytes and 0x7f as %XX. */
static void
feed_escaped(char *buf, size_t cap, size_t *n, const char *s, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char) s[i];
		if (ch == '%' || ch < 0x20 || ch == 0x7f) {
			feed_put(buf, cap, n, '%');
			feed_put(buf, cap, n, hex[ch >> 4]);
			feed_put(buf, cap, n, hex[ch & 15]);
		} else {
			feed_put(buf, cap, n, (char) ch);
		}
	}
}

size_t
feed_filter_topic(char *buf, size_t cap, const char *tenant, size_t t_len,
    const char *filter_id, const char *partition, size_t p_len,
    int with_newline)
{
	size_t n = 0;
	feed_put(buf, cap, &n, 'f');
	feed_put(buf, cap, &n, '/');
	for (size_t i = 0; i < t_len; i++)
		feed_put(buf, cap, &n, tenant[i]);
	feed_put(buf, cap, &n, '/');
	for (const char *c = filter_id; *c != '\0'; c++)
		feed_put(buf, cap, &n, *c);
	feed_put(buf, cap, &n, '/');
	if (partition != NULL)
		feed_escaped(buf, cap, &n, partition, p_len);
	if (with_newline)
		feed_put(buf, cap, &n, '\n');
	return n;
}

size_t
feed_topic(char *buf, size_t cap, const char *tenant, size_t t_len,
    const char *stream, size_t s_len, int with_newline)
{
	size_t n = 0;

	feed_put(buf, cap, &n, 'e');
	feed_put(buf, cap, &n, '/');
	for (size_t i = 0; i < t_len; i++)
		feed_put(buf, cap, &n, tenant[i]);
	feed_put(buf, cap, &n, '/');
	feed_escaped(buf, cap, &n, stream, s_len);
	if (with_newline)
		feed_put(buf, cap, &n, '\n');
	return n;
}
