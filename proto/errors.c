/*
 * Messages and stable names for the sl_err codes. Shared by the runtime, the
 * client library and the wire protocol (the "error" field of a reply).
 */
#include <sluice/errors.h>

#include <stddef.h>

typedef struct err_entry {
	const char *name;
	const char *text;
} err_entry;

/* Indexed by code; a code never changes meaning, so entries only append. */
static const err_entry err_table[SL_ERR_COUNT] = {
	[SL_OK]        = { "OK", "success" },
	[SL_EINVAL]    = { "EINVAL", "invalid argument" },
	[SL_ENOTFOUND] = { "ENOTFOUND", "not found" },
	[SL_EREVISION]
	= { "EREVISION", "expected revision does not match the stream" },
	[SL_ETOOBIG]    = { "ETOOBIG", "size limit exceeded" },
	[SL_EPROTO]     = { "EPROTO", "malformed message" },
	[SL_EPLUGIN]    = { "EPLUGIN", "plugin error" },
	[SL_ENOMEM]     = { "ENOMEM", "out of memory" },
	[SL_ESTORAGE]   = { "ESTORAGE", "storage error" },
	[SL_ENET]       = { "ENET", "transport error" },
	[SL_ETIMEDOUT]  = { "ETIMEDOUT", "timed out" },
	[SL_ECONFIG]    = { "ECONFIG", "bad configuration" },
	[SL_EVERSION]   = { "EVERSION", "unsupported version" },
	[SL_EEXIST]     = { "EEXIST", "already exists" },
	[SL_ECLOSED]    = { "ECLOSED", "closed or shutting down" },
	[SL_EFULL]      = { "EFULL", "storage is full" },
	[SL_EUNKNOWNOP] = { "EUNKNOWNOP", "unknown operation" },
	[SL_EINTERNAL]  = { "EINTERNAL", "internal error" },
	[SL_EOWNED]     = { "EOWNED", "stream is owned by a projection" },
	[SL_EBUSY]      = { "EBUSY", "server busy: retry later" },
	[SL_EACCES]     = { "EACCES", "permission denied" },
	[SL_EUNAVAILABLE] = { "EUNAVAILABLE",
		"the event log's database cannot be reached" },
};

static const err_entry *
err_lookup(int code)
{
	if (code < 0 || code >= SL_ERR_COUNT || err_table[code].name == NULL)
		return NULL;
	return &err_table[code];
}

const char *
sl_strerror(int code)
{
	const err_entry *e = err_lookup(code);

	return e != NULL ? e->text : "unknown error";
}

const char *
sl_errname(int code)
{
	const err_entry *e = err_lookup(code);

	return e != NULL ? e->name : "EUNKNOWN";
}
