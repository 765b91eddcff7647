/*
 * Sluice error codes, shared by the runtime, the client library, plugins and
 * the wire protocol. A code, once published, never changes meaning: new codes
 * are appended.
 */
#ifndef SLUICE_ERRORS_H
#define SLUICE_ERRORS_H

#ifdef __cplusplus
extern "C" {
#endif

/** Result codes. 0 is success; every other value is a stable error code. */
typedef enum sl_err {
	SL_OK        = 0,  /**< success */
	SL_EINVAL    = 1,  /**< invalid argument or request field */
	SL_ENOTFOUND = 2,  /**< no such tenant, projection, stream or key */
	SL_EREVISION = 3,  /**< expected revision does not match the stream */
	SL_ETOOBIG   = 4,  /**< a size limit was exceeded; nothing was done */
	SL_EPROTO    = 5,  /**< malformed message: not msgpack, wrong types */
	SL_EPLUGIN   = 6,  /**< a plugin failed to load or a handler failed */
	SL_ENOMEM    = 7,  /**< out of memory */
	SL_ESTORAGE  = 8,  /**< the storage engine (LMDB) reported an error */
	SL_ENET      = 9,  /**< transport (NNG) error */
	SL_ETIMEDOUT = 10, /**< the operation timed out */
	SL_ECONFIG   = 11, /**< bad configuration */
	SL_EVERSION  = 12, /**< unsupported protocol or ABI version */
	SL_EEXIST    = 13, /**< already exists (e.g. a duplicate projection id) */
	SL_ECLOSED   = 14, /**< the object is closed or shutting down */
	SL_EFULL     = 15, /**< storage is full (LMDB map size reached) */
	SL_EUNKNOWNOP = 16, /**< the request names an unknown operation */
	SL_EINTERNAL = 17, /**< an internal invariant failed */
	/** the stream is written by a projection (it owns it): clients and
	 * other projections may not write there */
	SL_EOWNED = 18,
	/** the server is too busy to take the request (a queue of slow
	 * requests is full); nothing was done: retry later */
	SL_EBUSY = 19,
	/** the caller may not do this: no valid credential, or its roles or
	 * tenants do not cover the op (the message names the op and the
	 * tenant); nothing was done */
	SL_EACCES = 20,
	/** the log of record (PostgreSQL) cannot be reached: nothing was
	 * written (after a connection lost during COMMIT the daemon looked
	 * the commit up before answering); retry later */
	SL_EUNAVAILABLE = 21,
} sl_err;

/** Number of defined codes (one past the largest). */
#define SL_ERR_COUNT 22

/**
 * A human-readable message for an error code.
 * @return a static string; never NULL ("unknown error" for unknown codes).
 */
const char *sl_strerror(int code);

/**
 * The stable symbolic name of an error code, e.g. "EREVISION".
 * @return a static string; never NULL ("EUNKNOWN" for unknown codes).
 */
const char *sl_errname(int code);

#ifdef __cplusplus
}
#endif
#endif
