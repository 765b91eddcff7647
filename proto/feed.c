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

size_t
feed_topic(char *buf, size_t cap, const char *tenant, size_t t_len,
    const char *stream, size_t s_len, int with_newline)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t            n     = 0;

	feed_put(buf, cap, &n, 'e');
	feed_put(buf, cap, &n, '/');
	for (size_t i = 0; i < t_len; i++)
		feed_put(buf, cap, &n, tenant[i]);
	feed_put(buf, cap, &n, '/');
	for (size_t i = 0; i < s_len; i++) {
		unsigned char ch = (unsigned char) stream[i];
		if (ch == '%' || ch < 0x20 || ch == 0x7f) {
			feed_put(buf, cap, &n, '%');
			feed_put(buf, cap, &n, hex[ch >> 4]);
			feed_put(buf, cap, &n, hex[ch & 15]);
		} else {
			feed_put(buf, cap, &n, (char) ch);
		}
	}
	if (with_newline)
		feed_put(buf, cap, &n, '\n');
	return n;
}
