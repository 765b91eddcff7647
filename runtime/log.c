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

static int level_now = SL_LOG_INFO;
static const char *const names[] = { "error", "warn", "info", "debug" };

void
log_set_level(int level)
{
	level_now = level;
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
	if (level > level_now)
		return;
	char            line[2048];
	struct timespec ts;
	struct tm       tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	int n = snprintf(line, sizeof(line),
	    "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s %s: ", tm.tm_year + 1900,
	    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	    ts.tv_nsec / 1000000, names[level < 0 ? 0 : level > 3 ? 3 : level],
	    subsys);
	va_list ap;
	va_start(ap, fmt);
	if (n > 0 && (size_t) n < sizeof(line))
		n += vsnprintf(line + n, sizeof(line) - (size_t) n, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t) n >= sizeof(line) - 1)
		n = (int) sizeof(line) - 2;
	line[n++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, (size_t) n);
	(void) w;
}
