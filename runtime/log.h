/*
 * The daemon's log: one line per message on stderr, with a UTC timestamp,
 * a level and a subsystem. Thread-safe.
 */
#ifndef SL_LOG_H
#define SL_LOG_H

#include <sluice/plugin.h> /* SL_LOG_* levels */

void log_set_level(int level);

/** Line formats: text ("TIME LEVEL subsys: message"), or one JSON object
 * per line {"ts", "level", "subsys", "msg"} for log collectors. */
enum { LOG_FORMAT_TEXT = 0, LOG_FORMAT_JSON = 1 };
void log_set_format(int format);
/** Parse "text" | "json"; -1 if unknown. */
int log_format_parse(const char *name);
/** Parse "error" | "warn" | "info" | "debug"; -1 if unknown. */
int log_level_parse(const char *name);
void log_msg(int level, const char *subsys, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_error(sub, ...) log_msg(SL_LOG_ERROR, sub, __VA_ARGS__)
#define log_warn(sub, ...) log_msg(SL_LOG_WARN, sub, __VA_ARGS__)
#define log_info(sub, ...) log_msg(SL_LOG_INFO, sub, __VA_ARGS__)
#define log_debug(sub, ...) log_msg(SL_LOG_DEBUG, sub, __VA_ARGS__)

#endif
