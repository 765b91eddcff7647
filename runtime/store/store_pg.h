/*
 * The event log on PostgreSQL (docs/postgresql.md): the database holds the
 * log of record, this node's LMDB log (store.h) is its mirror. Commits go
 * from the store's writer to PostgreSQL, one transaction per group; a
 * follower thread appends what the database holds to the mirror, in
 * position order, and every reader keeps reading the mirror. Only what
 * opens this backend (sluiced) links libpq.
 */
#ifndef SL_STORE_PG_H
#define SL_STORE_PG_H

#include <stddef.h>

#include "store.h"

/** The schema version this build writes and reads (sl_schema.version). */
#define STORE_PG_SCHEMA_VERSION 1

/**
 * Make PostgreSQL at url (a libpq URL or conninfo) the log of record of s,
 * before any commit, and start its follower. When the database answers,
 * its schema is checked first: none, or another version, refuses (logged:
 * run sluiced --init-db, or upgrade sluiced), and so does a mirror that
 * holds what the database does not (made from another database). A
 * database that does not answer yet is waited for: commits answer
 * SL_EUNAVAILABLE until it does. timeout_ms (event_store.timeout_ms; 0:
 * 5000) bounds each round trip of a group and of the follower: a server
 * that does not answer in time is taken as unreachable.
 * @return SL_OK; SL_ECONFIG (schema or mirror refused); SL_ENOMEM.
 */
int store_pg_attach(store *s, const char *url, int timeout_ms);

/**
 * sluiced --init-db: create the schema in the database at url, or migrate
 * it to STORE_PG_SCHEMA_VERSION; a database at that version is left as it
 * is (idempotent; concurrent runs serialize on an advisory lock).
 * @return SL_OK; SL_EUNAVAILABLE (cannot connect); SL_EVERSION (the
 * schema is newer than this build knows); SL_ESTORAGE (a statement
 * failed); err (errlen bytes) says which.
 */
int store_pg_init_db(const char *url, char *err, size_t errlen);

#endif
