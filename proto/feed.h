/*
 * The live feed's message format, shared by the daemon's publisher and the
 * client's subscriptions: every message is a topic (text ending in '\n')
 * followed by one msgpack object. See docs/protocol.md, "Live feed".
 */
#ifndef SL_FEED_H
#define SL_FEED_H

#include <stddef.h>

/** Events: "e/" tenant "/" stream "\n" + an array of wire event maps
 * (consecutive positions of that stream). */
#define FEED_TOPIC_EVENT "e/"
/** The log head: "h\n" + {"head": uint}, every FEED_HEAD_INTERVAL_MS. */
#define FEED_TOPIC_HEAD "h\n"
/** Filter streams: "f/" tenant "/" filter id "/" partition "\n" + an
 * array of wire events, each with stream_position, stream_generation, and
 * for partitioned filters partition and partition_position. */
#define FEED_TOPIC_FILTER "f/"

/** How often (ms) the publisher sends the head message, busy or idle. */
#define FEED_HEAD_INTERVAL_MS 250

/**
 * Write the topic of an event's stream into buf: "e/" tenant "/" stream
 * "\n", where the stream has '%', bytes below 0x20 and 0x7f written as %XX
 * (upper-case hex), so that the first '\n' ends the topic and a
 * subscription to one stream's topic matches that stream only. Tenant ids
 * (letters, digits, '.', '_', '-') are written as they are.
 * @param with_newline  false leaves off the final '\n' (a prefix for every
 *                      stream of the tenant starting with that text)
 * @return the topic's length (at most 4 + t_len + 3 * s_len), also when it
 *         does not fit in cap bytes (then buf holds a truncated topic);
 *         buf is not NUL-terminated.
 */
size_t feed_topic(char *buf, size_t cap, const char *tenant, size_t t_len,
    const char *stream, size_t s_len, int with_newline);

/**
 * The topic of a filter stream's entries: "f/" tenant "/" filter id "/"
 * partition "\n" (partition escaped as feed_topic escapes streams; empty
 * for an unpartitioned filter). Without the newline, "f/T/ID/" is the
 * prefix of the whole stream and "f/T/ID/P" of one partition (plus the
 * newline: exactly that partition). Lengths as feed_topic.
 */
size_t feed_filter_topic(char *buf, size_t cap, const char *tenant,
    size_t t_len, const char *filter_id, const char *partition, size_t p_len,
    int with_newline);

#endif
