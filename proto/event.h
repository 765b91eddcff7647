/*
 * The event record: its stored encoding in the log (msgpack array, the
 * position is the LMDB key) and its wire encoding (msgpack map with names).
 */
#ifndef SL_EVENT_H
#define SL_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

/** Limits on event fields; a commit over any is refused with SL_ETOOBIG. */
#define SL_MAX_ID_LEN 256      /* tenant, stream, type, correlation ids */
#define SL_MAX_EVENT_BYTES (1u << 20) /* encoded content + metadata */

/**
 * A new event as a client submits it. All pointers are borrowed (from the
 * request) and must stay valid until the commit completes.
 */
typedef struct ev_new {
	const char *type;
	size_t type_len;
	uint32_t generation;   /* default 1 */
	uint8_t id[16];        /* event id; generated when the client gives none */
	int64_t occurred_ns;   /* default: time of commit */
	const char *correlation_id; size_t correlation_len; /* default: event id */
	const char *causation_id;   size_t causation_len;   /* default: "" */
	bool is_public;
	const msgpack_object *metadata; /* map or NULL (empty map) */
	const msgpack_object *content;  /* map, required (a link: a str) */
} ev_new;

/** The type of a link event, whose content is a msgpack str "N@stream"
 * (the target: revision N of stream), as EventStoreDB writes them. */
#define EV_LINK_TYPE "$>"
/** The type of a stream link (EventStoreDB's linkStreamTo), whose content
 * is a msgpack str: the linked stream's id. */
#define EV_STREAM_LINK_TYPE "$@"

/**
 * Parse a link's content "N@stream" (len bytes, not NUL-terminated):
 * N decimal without sign or leading zeros, below UINT64_MAX - 1; the
 * stream is the rest (not checked here: may be empty or too long).
 * @return whether it has that form; *stream points into link.
 */
bool ev_parse_link(const char *link, size_t len, uint64_t *rev,
    const char **stream, size_t *stream_len);


/**
 * A decoded committed event. Strings are NUL-terminated, allocated in the
 * zone passed to ev_decode (valid until the zone is cleared); metadata and
 * content point into the zone/buffer likewise.
 */
typedef struct ev_view {
	uint64_t position;
	const char *tenant;
	const char *stream;
	uint64_t revision;
	uint8_t id[16];
	char id_text[37];
	const char *type;
	uint32_t generation;
	int64_t occurred_ns;
	const char *correlation_id;
	const char *causation_id;
	bool is_public;
	msgpack_object metadata; /* map */
	msgpack_object content;  /* map; a str for a link (EV_LINK_TYPE) */
} ev_view;

/**
 * The first string field of e ("type", "correlation_id", "causation_id")
 * holding a NUL byte, or NULL if none does. Readers see the stored strings
 * NUL-terminated, so such a string would be read cut short: every path that
 * writes an event refuses it.
 */
const char *ev_new_nul_field(const ev_new *e);

/**
 * Encode a new event for storage: [tenant, stream, revision, id(bin16),
 * type, generation, occurred_ns, correlation, causation, public, metadata,
 * content]. Appends to the packer's buffer. content must be a map, or a
 * str when the type is EV_LINK_TYPE; no string (tenant and stream too) may
 * hold a NUL byte (see ev_new_nul_field). @return SL_OK, SL_EINVAL.
 */
int ev_encode(msgpack_packer *pk, const char *tenant, size_t tenant_len,
    const char *stream, size_t stream_len, uint64_t revision,
    const ev_new *e);

/**
 * ev_encode's record, byte for byte, appended to sb without msgpack-c's
 * packer (the fields written in place, only a non-empty metadata or a
 * content map packed by msgpack-c): the store's writer encodes every
 * appended event with it. @return SL_OK, SL_EINVAL (as ev_encode),
 * SL_ENOMEM (sb then holds a part of the record: clear it).
 */
int ev_encode_sbuf(msgpack_sbuffer *sb, const char *tenant, size_t tenant_len,
    const char *stream, size_t stream_len, uint64_t revision, const ev_new *e);

/** The first fields of a stored event, read without decoding it: the
 * strings point into the record (not NUL-terminated). */
typedef struct ev_head {
	const char *tenant, *stream, *type;
	size_t      tenant_len, stream_len, type_len;
	uint64_t    revision; /* in its stream */
} ev_head;

/**
 * Read a stored event's tenant, stream, revision and type (ev_encode's
 * first fields) in place: no allocation, no decoding of the rest (what a
 * processor needs to select an event, and a read to tell whether a
 * stream deletion hides it). @return SL_OK,
 * or SL_EPROTO when the record does not start as ev_encode writes (decode
 * it to find out why).
 */
int ev_peek(const void *data, size_t len, ev_head *out);

/** Every field of a stored event read in place (ev_peek_raw): strings
 * point into the record (not NUL-terminated, and holding no NUL byte),
 * metadata and content are their raw msgpack bytes. */
typedef struct ev_raw {
	ev_head              h; /* tenant, stream, revision, type */
	const uint8_t       *id; /* 16 bytes */
	uint32_t             generation;
	int64_t              occurred_ns;
	const char          *correlation_id, *causation_id;
	size_t               correlation_len, causation_len;
	bool                 is_public;
	const unsigned char *metadata, *content;
	size_t               metadata_len, content_len;
} ev_raw;

/**
 * Read every field of a stored event in place: no allocation, no
 * decoding (what the live feed and the system projections take from an
 * event). @return SL_OK; SL_EPROTO for a record it does not take
 * (malformed, an unusual encoding, or a string holding a NUL byte, which
 * the decoder cuts there): decode it (ev_decode) instead.
 */
int ev_peek_raw(const void *data, size_t len, ev_raw *out);

/**
 * Decode a stored event. @return SL_OK or SL_EPROTO (corrupt record).
 * Only allocates from zone; data must outlive the view.
 */
int ev_decode(const void *data, size_t len, uint64_t position,
    msgpack_zone *zone, ev_view *out);
/**
 * ev_decode, also giving the record's fields as read in place (*raw,
 * pointing into data) when it was (*peeked; false when the record took
 * msgpack-c's decoder, or on error): what ev_wire_peeked writes from.
 */
int ev_decode_raw(const void *data, size_t len, uint64_t position,
    msgpack_zone *zone, ev_view *out, ev_raw *raw, bool *peeked);
/** ev_decode through msgpack-c alone: the reference the fast path of
 * ev_decode is tested against (and what it falls back to). */
int ev_decode_mp(const void *data, size_t len, uint64_t position,
    msgpack_zone *zone, ev_view *out);

/**
 * Pack the wire form of a committed event: a map with keys position,
 * tenant, stream, revision, id (UUID text), type, generation, occurred (ns),
 * correlation_id, causation_id, public, metadata, content.
 */
void ev_pack_wire(msgpack_packer *pk, const ev_view *ev);
/**
 * Read back a committed event's wire map (ev_pack_wire's bytes; a remote
 * call's `event`), len bytes at data, into a view, as ev_decode does a
 * stored record: strings are NUL-terminated copies in zone; metadata and
 * content are decoded into zone (their strings point into data, which
 * must outlive the view). An absent or nil metadata is an empty map;
 * unknown keys are skipped.
 * @return SL_OK, or SL_EPROTO (not such a map: a field missing or of
 * another type, truncated).
 */
int ev_from_wire(
    const void *data, size_t len, msgpack_zone *zone, ev_view *out);
/** ev_pack_wire with room for n_extra more pairs, which the caller packs
 * right after (e.g. a filter stream's stream_position). */
void ev_pack_wire_extra(msgpack_packer *pk, const ev_view *ev,
    uint32_t n_extra);

/**
 * Parse a new event from its wire form (a map with type, content and the
 * optional generation, id, occurred, correlation_id, causation_id, public,
 * metadata). Fills defaults (id generated, occurred = now, generation 1).
 * A string field holding a NUL byte is SL_EINVAL.
 * @return SL_OK; SL_EINVAL/SL_EPROTO with a message in err; SL_ETOOBIG.
 */
int ev_parse_new(const msgpack_object *o, ev_new *out, char *err,
    size_t errlen);

/** UUID helpers (libuuid). Text is 36 chars + NUL. ev_uuid_generate makes
 * a version 4 UUID from a per-thread generator seeded from getrandom
 * (unique, not secret; reseeded in a forked child). */
void ev_uuid_generate(uint8_t id[16]);
void ev_uuid_text(const uint8_t id[16], char out[37]);

/**
 * A stored event straight to its wire map (ev_pack_wire_extra's bytes),
 * without decoding it: metadata and content are copied as stored. The map
 * is sized for n_extra more pairs, which the caller packs after it.
 * @return SL_OK; SL_EPROTO for a record it does not take (malformed, or
 * an unusual encoding), with nothing packed: decode it (ev_decode) and
 * use ev_pack_wire_extra instead, which says what is wrong.
 */
int ev_pack_wire_raw(msgpack_packer *pk, const void *data, size_t len,
    uint64_t position, uint32_t n_extra);
/** The most bytes ev_wire_raw writes for a stored record of len bytes
 * (the keys, the id as text, the widest position: well under 256). */
#define EV_WIRE_RAW_BOUND(len) ((size_t) (len) + 256)
/**
 * ev_pack_wire_raw's bytes written straight at out, which has room for
 * EV_WIRE_RAW_BOUND(len) bytes (no call per value: the remote path packs
 * every event of a call with it).
 * @return the bytes written; 0 for a record ev_pack_wire_raw refuses.
 */
size_t ev_wire_raw(const void *data, size_t len, uint64_t position,
    uint32_t n_extra, unsigned char *out);
/**
 * ev_wire_raw's bytes from a record already read in place (ev_peek_raw,
 * or ev_decode_raw with *peeked): the record is not read again. id_text:
 * the id as text when known (an ev_view's id_text), else NULL.
 * @return the bytes written (at most EV_WIRE_RAW_BOUND of the record).
 */
size_t ev_wire_peeked(const ev_raw *r, uint64_t position, uint32_t n_extra,
    const char *id_text, unsigned char *out);
int ev_uuid_parse(const char *text, size_t len, uint8_t id[16]);
/**
 * Whether text (len bytes) is a UUID (8-4-4-4-12 hex digits, any case, as
 * libuuid reads it); if so out gets its canonical lower-case form (out may
 * be NULL).
 */
bool ev_uuid_canon(const char *text, size_t len, char out[37]);

/** Current UTC time in ns since the epoch. */
int64_t ev_now_ns(void);

#endif
