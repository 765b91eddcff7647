/*
 * The daemon's log on stderr. Each line is written with one write() so that
 * lines from different threads never interleave.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* both set at start, the level also on SIGHUP: read with relaxed loads */
static int level_now  = SL_LOG_INFO;
static int format_now = LOG_FORMAT_TEXT;
static const char *const names[] = { "error", "warn", "info", "debug" };

void
log_set_level(int level)
{
	__atomic_store_n(&level_now, level, __ATOMIC_RELAXED);
}

void
log_set_format(int format)
{
	__atomic_store_n(&format_now, format, __ATOMIC_RELAXED);
}

int
log_format_parse(const char *name)
{
	return strcmp(name, "text") == 0 ? LOG_FORMAT_TEXT
	    : strcmp(name, "json") == 0  ? LOG_FORMAT_JSON
	                                 : -1;
}

/* text as the body of a JSON string into out (size > 6), cut short
 * rather than overflow. @return the bytes written. */
static size_t
json_escape(char *out, size_t size, const char *text)
{
	size_t n = 0;
	for (const unsigned char *p = (const unsigned char *) text;
	     *p != '\0' && n + 7 < size; p++) {
		if (*p == '"' || *p == '\\') {
			out[n++] = '\\';
			out[n++] = (char) *p;
		} else if (*p == '\n') {
			out[n++] = '\\';
			out[n++] = 'n';
		} else if (*p < 0x20) {
			n += (size_t) snprintf(out + n, size - n, "\\u%04x", *p);
		} else {
			out[n++] = (char) *p;
		}
	}
	return n;
}

int
log_level_parse(const char *name)
{
	for (int i = 0; i < 4; i++)
		if (strcmp(name, names[i]) == 0)
			return i;
	return -1;
}

void
log_msg(int level, const char *subsys, const char *fmt, ...)
{
	if (level > __atomic_load_n(&level_now, __ATOMIC_RELAXED))
		return;
	char            line[2048], msg[2048], when[64];
	struct timespec ts;
	struct tm       tm;
	const char     *name = names[level < 0 ? 0 : level > 3 ? 3 : level];
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(when, sizeof(when), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (m < 0)
		return;
	int n;
	if (__atomic_load_n(&format_now, __ATOMIC_RELAXED) == LOG_FORMAT_JSON) {
		/* one JSON object per line, for log collectors */
		char esc_sub[128], esc_msg[1600];
		esc_sub[json_escape(esc_sub, sizeof(esc_sub), subsys)] = '\0';
		esc_msg[json_escape(esc_msg, sizeof(esc_msg), msg)]    = '\0';
		n = snprintf(line, sizeof(line),
		    "{\"ts\":\"%s\",\"level\":\"%s\",\"subsys\":\"%s\","
		    "\"msg\":\"%s\"}",
		    when, name, esc_sub, esc_msg);
	} else {
		n = snprintf(line, sizeof(line), "%s %-5s %s: %s", when, name,
		    subsys, msg);
	}
	if (n < 0)
		return;
	if ((size_t) n >= sizeof(line) - 1)
		n = (int) sizeof(line) - 2;
	line[n++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, (size_t) n);
	(void) w;
}
