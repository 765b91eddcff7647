/*
 * Read model stores: one LMDB environment per tenant with the read models of
 * every projection and one db of checkpoints, so a processor commits a state
 * change and its checkpoint in one transaction.
 *
 * Layout (named dbs):
 *   "rm:<id>:0", "rm:<id>:1"  read models of generation g in "rm:<id>:<g&1>"
 *   "checkpoints"             key -> record of be64 values:
 *       "proj:<id>"    position, def_hash (the active generation's)
 *       "active:<id>"  the generation readers see
 *       others written by processors through rm_record_* (a rebuild's).
 *
 * Rebuild without downtime: a new generation fills the other db while
 * readers go on with the active one; the transaction that catches up
 * switches "active:<id>" and empties the old db. Readers read the active
 * record inside their read transaction, so each sees one generation,
 * whole. Dbs are emptied, never deleted, while the store is in use: a
 * deleted db's handle could be closed under a reader.
 *
 * Database handles. LMDB requires that a transaction which opens a handle
 * finishes before any other transaction opens one, and a handle is only valid
 * in transactions begun after the one that opened it committed. So read
 * transactions never call mdb_dbi_open here: handles are opened at rm_open
 * (every existing "rm:" db) or in a private write transaction committed
 * before the handle is put in the cache. A generation's db is created before
 * any record names it, so a reader that finds the name in its snapshot finds
 * a handle valid in its transaction.
 *
 * Every mdb_dbi_open runs in a write transaction, whose lock serialises
 * them as LMDB requires; rm->mu only guards the handle cache, is held
 * briefly and never across a commit, and may be taken inside a write
 * transaction (never the reverse).
 */
#include "readmodels.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sluice/errors.h>

#include "fsutil.h"
#include "log.h"

#define RM_MAX_DBS     1024
#define RM_PREFIX      "rm:"
#define RM_CHECKPOINTS "checkpoints"
#define RM_CP_LEN      16

typedef struct rm_handle {
	char   *name; /* "rm:<projection id>" */
	MDB_dbi dbi;
} rm_handle;

struct rmstore {
	MDB_env        *env;
	char           *path;
	bool            sync; /* MDB_NOMETASYNC: rm_sync makes a commit durable */
	MDB_dbi         cp_dbi;
	pthread_mutex_t mu; /* guards the handle cache (only) */
	rm_handle      *handles;
	size_t          n_handles, cap_handles;
};

/* LMDB result -> sl_err; unexpected ones are logged with what was done. */
static int
map_mdb(int rc, const char *what, const char *path)
{
	switch (rc) {
	case MDB_SUCCESS:
		return SL_OK;
	case MDB_NOTFOUND:
		return SL_ENOTFOUND;
	case MDB_MAP_FULL:
		log_error("readmodels", "%s: %s: map full (raise map_size)",
		    path, what);
		return SL_EFULL;
	case MDB_BAD_VALSIZE:
		return SL_EINVAL;
	case ENOMEM:
		return SL_ENOMEM;
	default:
		log_error(
		    "readmodels", "%s: %s: %s", path, what, mdb_strerror(rc));
		return SL_ESTORAGE;
	}
}

/* mkdir -p, logged and mapped to sl_err. */
static int
mkdirs(const char *path)
{
	if (fs_mkdirs(path) == 0)
		return SL_OK;
	if (errno == ENOMEM)
		return SL_ENOMEM;
	log_error("readmodels", "mkdir %s: %s", path, strerror(errno));
	return SL_ESTORAGE;
}

/* The db of the layout before generations. */
static int
legacy_name(const char *projection_id, char *buf, size_t len)
{
	int n = snprintf(buf, len, RM_PREFIX "%s", projection_id);
	return n > 0 && (size_t) n < len ? SL_OK : SL_EINVAL;
}

/* The db of generation gen. */
static int
gen_name(const char *projection_id, uint64_t gen, char *buf, size_t len)
{
	int n = snprintf(
	    buf, len, RM_PREFIX "%s:%u", projection_id, (unsigned) (gen & 1));
	return n > 0 && (size_t) n < len ? SL_OK : SL_EINVAL;
}

/* Cache lookup; call with rm->mu held. */
static bool
cache_find(rmstore *rm, const char *name, MDB_dbi *out)
{
	for (size_t i = 0; i < rm->n_handles; i++) {
		if (strcmp(rm->handles[i].name, name) == 0) {
			*out = rm->handles[i].dbi;
			return true;
		}
	}
	return false;
}

/* Remember a committed handle; call with rm->mu held. */
static int
cache_add(rmstore *rm, const char *name, MDB_dbi dbi)
{
	if (rm->n_handles == rm->cap_handles) {
		size_t     cap = rm->cap_handles ? rm->cap_handles * 2 : 16;
		rm_handle *h   = realloc(rm->handles, cap * sizeof(*h));
		if (h == NULL)
			return SL_ENOMEM;
		rm->handles     = h;
		rm->cap_handles = cap;
	}
	char *copy = strdup(name);
	if (copy == NULL)
		return SL_ENOMEM;
	rm->handles[rm->n_handles].name  = copy;
	rm->handles[rm->n_handles++].dbi = dbi;
	return SL_OK;
}

/* Forget a handle (its db was deleted); call with rm->mu held. */
static void
cache_remove(rmstore *rm, const char *name)
{
	for (size_t i = 0; i < rm->n_handles; i++) {
		if (strcmp(rm->handles[i].name, name) == 0) {
			free(rm->handles[i].name);
			rm->handles[i] = rm->handles[--rm->n_handles];
			return;
		}
	}
}

static bool
cache_lookup(rmstore *rm, const char *name, MDB_dbi *out)
{
	pthread_mutex_lock(&rm->mu);
	bool found = cache_find(rm, name, out);
	pthread_mutex_unlock(&rm->mu);
	return found;
}

/* Open the checkpoints db and every existing read model db (no other
 * thread uses the env yet). */
static int
open_existing(rmstore *rm)
{
	MDB_txn    *txn;
	MDB_cursor *cur;
	MDB_dbi     main_dbi;
	MDB_val     k, v;
	int         rc = mdb_txn_begin(rm->env, NULL, 0, &txn);
	if (rc != 0)
		return map_mdb(rc, "begin", rm->path);
	rc = mdb_dbi_open(txn, RM_CHECKPOINTS, MDB_CREATE, &rm->cp_dbi);
	if (rc == 0)
		rc = mdb_dbi_open(txn, NULL, 0, &main_dbi);
	if (rc == 0)
		rc = mdb_cursor_open(txn, main_dbi, &cur);
	if (rc != 0)
		goto fail;

	/* Collect names first: opening a db while iterating the main db
	 * would touch the cursor's pages. */
	char **names = NULL;
	size_t n = 0, cap = 0;
	int    op = MDB_FIRST;
	while ((rc = mdb_cursor_get(cur, &k, &v, op)) == 0) {
		op = MDB_NEXT;
		if (k.mv_size <= strlen(RM_PREFIX)
		    || memcmp(k.mv_data, RM_PREFIX, strlen(RM_PREFIX)) != 0)
			continue;
		if (n == cap) {
			cap       = cap ? cap * 2 : 8;
			char **nn = realloc(names, cap * sizeof(*nn));
			if (nn == NULL) {
				rc = ENOMEM;
				break;
			}
			names = nn;
		}
		names[n] = strndup(k.mv_data, k.mv_size);
		if (names[n] == NULL) {
			rc = ENOMEM;
			break;
		}
		n++;
	}
	mdb_cursor_close(cur);
	if (rc == MDB_NOTFOUND)
		rc = 0;
	for (size_t i = 0; i < n; i++) {
		MDB_dbi dbi;
		if (rc == 0) {
			int orc = mdb_dbi_open(txn, names[i], 0, &dbi);
			if (orc == 0)
				orc = cache_add(rm, names[i], dbi) == SL_OK
				    ? 0
				    : ENOMEM;
			else if (orc == MDB_INCOMPATIBLE)
				orc = 0; /* a plain key, not a db: not ours */
			rc = orc;
		}
		free(names[i]);
	}
	free(names);
	if (rc != 0)
		goto fail;
	rc = mdb_txn_commit(txn);
	return map_mdb(rc, "open dbs", rm->path);
fail:
	mdb_txn_abort(txn);
	return map_mdb(rc, "open dbs", rm->path);
}

void
rm_map_use(rmstore *rm, uint64_t *size, uint64_t *used)
{
	MDB_envinfo info;
	MDB_stat    st;
	*size = *used = 0;
	if (mdb_env_info(rm->env, &info) == 0
	    && mdb_env_stat(rm->env, &st) == 0) {
		*size = info.me_mapsize;
		*used = ((uint64_t) info.me_last_pgno + 1) * st.ms_psize;
	}
}

int
rm_open(const char *path, size_t map_size, bool sync, rmstore **out)
{
	*out   = NULL;
	int rc = mkdirs(path);
	if (rc != SL_OK)
		return rc;
	rmstore *rm = calloc(1, sizeof(*rm));
	if (rm == NULL)
		return SL_ENOMEM;
	pthread_mutex_init(&rm->mu, NULL);
	if ((rm->path = strdup(path)) == NULL) {
		rm_close(rm);
		return SL_ENOMEM;
	}
	int mrc = mdb_env_create(&rm->env);
	if (mrc == 0)
		mrc = mdb_env_set_maxdbs(rm->env, RM_MAX_DBS);
	if (mrc == 0 && map_size > 0)
		mrc = mdb_env_set_mapsize(rm->env, map_size);
	if (mrc == 0)
		/* durable: one sync per transaction, its meta page synced
		 * by the next one (the processors' batches are derived from
		 * the log: a machine crash that undoes the last one, states
		 * and checkpoint together, has it handled again); what must
		 * last at once is made durable by rm_sync */
		mrc = mdb_env_open(rm->env, path,
		    MDB_NOTLS | (sync ? MDB_NOMETASYNC : MDB_NOSYNC), 0644);
	rm->sync = sync;
	if (mrc != 0) {
		rc = map_mdb(mrc, "open env", path);
		if (rc == SL_ENOTFOUND || rc == SL_EINVAL)
			rc = SL_ESTORAGE;
		rm_close(rm);
		return rc;
	}
	if (fs_secure_dir(path) != 0 || fs_secure_lmdb(path) != 0)
		log_warn("readmodels", "cannot restrict the modes of %s: %s",
		    path, strerror(errno));
	if ((rc = open_existing(rm)) != SL_OK) {
		rm_close(rm);
		return rc;
	}
	*out = rm;
	return SL_OK;
}

void
rm_close(rmstore *rm)
{
	if (rm == NULL)
		return;
	if (rm->env != NULL)
		mdb_env_close(rm->env);
	for (size_t i = 0; i < rm->n_handles; i++)
		free(rm->handles[i].name);
	free(rm->handles);
	free(rm->path);
	pthread_mutex_destroy(&rm->mu);
	free(rm);
}

int
rm_sync(rmstore *rm)
{
	if (!rm->sync)
		return SL_OK;
	return map_mdb(mdb_env_sync(rm->env, 1), "sync", rm->path);
}

MDB_env *
rm_env(rmstore *rm)
{
	return rm->env;
}

/* ---- generations ---- */

int
rm_gen_dbi(rmstore *rm, const char *projection_id, uint64_t gen, bool create,
    MDB_dbi *out)
{
	char name[300];
	if (gen_name(projection_id, gen, name, sizeof(name)) != SL_OK)
		return SL_EINVAL;
	if (cache_lookup(rm, name, out))
		return SL_OK;
	if (!create)
		return SL_ENOTFOUND; /* would be in the cache if it existed */
	/* The write txn serialises dbi opens (LMDB allows one at a time);
	 * mu is only held for the cache, never across the commit, so
	 * readers do not wait for its sync. */
	MDB_txn *own;
	int      mrc = mdb_txn_begin(rm->env, NULL, 0, &own);
	if (mrc != 0)
		return map_mdb(mrc, "create db", rm->path);
	if (cache_lookup(rm, name, out)) { /* created meanwhile */
		mdb_txn_abort(own);
		return SL_OK;
	}
	mrc = mdb_dbi_open(own, name, MDB_CREATE, out);
	if (mrc == 0)
		mrc = mdb_txn_commit(own);
	else
		mdb_txn_abort(own);
	int rc = map_mdb(mrc, "create db", rm->path);
	if (rc == SL_OK) {
		pthread_mutex_lock(&rm->mu);
		rc = cache_add(rm, name, *out);
		pthread_mutex_unlock(&rm->mu);
	}
	return rc;
}

int
rm_gen_clear(
    rmstore *rm, MDB_txn *txn, const char *projection_id, uint64_t gen)
{
	char    name[300];
	MDB_dbi dbi;
	if (gen_name(projection_id, gen, name, sizeof(name)) != SL_OK)
		return SL_EINVAL;
	if (!cache_lookup(rm, name, &dbi))
		return SL_OK; /* no db: nothing to empty */
	return map_mdb(mdb_drop(txn, dbi, 0), "empty db", rm->path);
}

static int
active_key(const char *projection_id, char *buf, size_t len)
{
	int n = snprintf(buf, len, "active:%s", projection_id);
	return n > 0 && (size_t) n < len ? SL_OK : SL_EINVAL;
}

int
rm_active_read(
    rmstore *rm, MDB_txn *txn, const char *projection_id, uint64_t *gen)
{
	char key[300];
	if (active_key(projection_id, key, sizeof(key)) != SL_OK)
		return SL_EINVAL;
	return rm_record_read(rm, txn, key, gen, 1);
}

int
rm_active_write(
    rmstore *rm, MDB_txn *txn, const char *projection_id, uint64_t gen)
{
	char key[300];
	if (active_key(projection_id, key, sizeof(key)) != SL_OK)
		return SL_EINVAL;
	return rm_record_write(rm, txn, key, &gen, 1);
}

/* In the caller's write txn: the active generation's handle; with create
 * and none, generation 1 is created (handle not cached) and made active. */
static int
dbi_in_txn(rmstore *rm, MDB_txn *txn, const char *projection_id, bool create,
    MDB_dbi *out)
{
	char     name[300];
	uint64_t gen = 1;
	int      rc  = rm_active_read(rm, txn, projection_id, &gen);
	if (rc != SL_OK && (rc != SL_ENOTFOUND || !create))
		return rc;
	bool fresh = rc == SL_ENOTFOUND;
	if (gen_name(projection_id, gen, name, sizeof(name)) != SL_OK)
		return SL_EINVAL;
	if (cache_lookup(rm, name, out))
		rc = SL_OK;
	else if (create)
		rc = map_mdb(mdb_dbi_open(txn, name, MDB_CREATE, out),
		    "create db", rm->path);
	else
		rc = SL_ENOTFOUND;
	if (rc == SL_OK && fresh)
		rc = rm_active_write(rm, txn, projection_id, gen);
	return rc;
}

int
rm_dbi(rmstore *rm, MDB_txn *txn, const char *projection_id, bool create,
    MDB_dbi *out)
{
	if (txn != NULL)
		return dbi_in_txn(rm, txn, projection_id, create, out);
	MDB_txn *rd;
	uint64_t gen;
	int      rc = map_mdb(mdb_txn_begin(rm->env, NULL, MDB_RDONLY, &rd),
	         "begin read", rm->path);
	if (rc != SL_OK)
		return rc;
	rc = rm_active_read(rm, rd, projection_id, &gen);
	mdb_txn_abort(rd);
	if (rc == SL_OK)
		return rm_gen_dbi(rm, projection_id, gen, create, out);
	if (rc != SL_ENOTFOUND || !create)
		return rc;
	/* None yet: generation 1, created first, then made active (only if
	 * nobody made another one active meanwhile). */
	if ((rc = rm_gen_dbi(rm, projection_id, 1, true, out)) != SL_OK)
		return rc;
	MDB_txn *wr;
	if ((rc = map_mdb(
	         mdb_txn_begin(rm->env, NULL, 0, &wr), "begin", rm->path))
	    != SL_OK)
		return rc;
	rc = rm_active_read(rm, wr, projection_id, &gen);
	if (rc == SL_ENOTFOUND) {
		gen = 1;
		rc  = rm_active_write(rm, wr, projection_id, 1);
	}
	if (rc != SL_OK) {
		mdb_txn_abort(wr);
		return rc;
	}
	rc = map_mdb(mdb_txn_commit(wr), "commit", rm->path);
	return rc == SL_OK ? rm_gen_dbi(rm, projection_id, gen, false, out)
	                   : rc;
}

int
rm_drop(rmstore *rm, MDB_txn *txn, const char *projection_id)
{
	uint64_t gen;
	int      rc = rm_active_read(rm, txn, projection_id, &gen);
	if (rc == SL_ENOTFOUND)
		return SL_OK; /* nothing to drop */
	if (rc != SL_OK)
		return rc;
	/* Empty it but keep the db, so the handle stays valid for readers. */
	return rm_gen_clear(rm, txn, projection_id, gen);
}

int
rm_legacy_delete(rmstore *rm, const char *projection_id)
{
	char    name[300];
	MDB_dbi dbi;
	if (legacy_name(projection_id, name, sizeof(name)) != SL_OK)
		return SL_EINVAL;
	if (!cache_lookup(rm, name, &dbi))
		return SL_OK;
	MDB_txn *own;
	int      mrc = mdb_txn_begin(rm->env, NULL, 0, &own);
	if (mrc != 0)
		return map_mdb(mrc, "begin", rm->path);
	if (!cache_lookup(rm, name, &dbi)) {
		mdb_txn_abort(own);
		return SL_OK;
	}
	/* No reader resolves this name, so no handle use can race the
	 * close that mdb_drop(1) does at commit. */
	mrc = mdb_drop(own, dbi, 1);
	if (mrc == 0)
		mrc = mdb_txn_commit(own);
	else
		mdb_txn_abort(own);
	if (mrc == 0) {
		pthread_mutex_lock(&rm->mu);
		cache_remove(rm, name);
		pthread_mutex_unlock(&rm->mu);
	}
	if (mrc == 0)
		log_info("readmodels",
		    "%s: deleted %s (layout before generations)", rm->path,
		    name);
	return map_mdb(mrc, "delete db", rm->path);
}

static void
put_be64(unsigned char *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (unsigned char) (v & 0xff);
		v >>= 8;
	}
}

static uint64_t
get_be64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

int
rm_checkpoint_read(
    rmstore *rm, MDB_txn *txn, const char *processor_id, rm_checkpoint *out)
{
	MDB_val k  = { strlen(processor_id), (void *) processor_id }, v;
	int     rc = map_mdb(
	        mdb_get(txn, rm->cp_dbi, &k, &v), "read checkpoint", rm->path);
	if (rc != SL_OK)
		return rc;
	if (v.mv_size != RM_CP_LEN) {
		log_error("readmodels", "%s: checkpoint %s: bad size %zu",
		    rm->path, processor_id, v.mv_size);
		return SL_ESTORAGE;
	}
	out->position = get_be64(v.mv_data);
	out->def_hash = get_be64((const unsigned char *) v.mv_data + 8);
	return SL_OK;
}

int
rm_checkpoint_write(rmstore *rm, MDB_txn *txn, const char *processor_id,
    const rm_checkpoint *cp)
{
	unsigned char buf[RM_CP_LEN];
	put_be64(buf, cp->position);
	put_be64(buf + 8, cp->def_hash);
	MDB_val k = { strlen(processor_id), (void *) processor_id };
	MDB_val v = { sizeof(buf), buf };
	return map_mdb(
	    mdb_put(txn, rm->cp_dbi, &k, &v, 0), "write checkpoint", rm->path);
}

#define RM_RECORD_MAX 8

int
rm_record_read(
    rmstore *rm, MDB_txn *txn, const char *key, uint64_t *v, size_t n)
{
	MDB_val k = { strlen(key), (void *) key }, d;
	if (n == 0 || n > RM_RECORD_MAX)
		return SL_EINVAL;
	int rc = map_mdb(
	    mdb_get(txn, rm->cp_dbi, &k, &d), "read record", rm->path);
	if (rc != SL_OK)
		return rc;
	if (d.mv_size != n * 8) {
		log_error("readmodels", "%s: record %s: bad size %zu",
		    rm->path, key, d.mv_size);
		return SL_ESTORAGE;
	}
	for (size_t i = 0; i < n; i++)
		v[i] = get_be64((const unsigned char *) d.mv_data + 8 * i);
	return SL_OK;
}

int
rm_record_write(
    rmstore *rm, MDB_txn *txn, const char *key, const uint64_t *v, size_t n)
{
	unsigned char buf[8 * RM_RECORD_MAX];
	if (n == 0 || n > RM_RECORD_MAX)
		return SL_EINVAL;
	for (size_t i = 0; i < n; i++)
		put_be64(buf + 8 * i, v[i]);
	MDB_val k = { strlen(key), (void *) key };
	MDB_val d = { n * 8, buf };
	return map_mdb(
	    mdb_put(txn, rm->cp_dbi, &k, &d, 0), "write record", rm->path);
}

int
rm_served_kind(rmstore *rm, const char *filter_id, uint64_t *kind)
{
	char     key[300];
	MDB_txn *txn;
	int      len = snprintf(key, sizeof(key),
	         RM_SHAPE_PREFIX RM_FILTER_PREFIX "%s", filter_id);
	if (len < 0 || (size_t) len >= sizeof(key))
		return SL_EINVAL;
	int rc = map_mdb(mdb_txn_begin(rm->env, NULL, MDB_RDONLY, &txn),
	    "begin read", rm->path);
	if (rc != SL_OK)
		return rc;
	rc = rm_record_read(rm, txn, key, kind, 1);
	mdb_txn_abort(txn);
	return rc;
}

int
rm_record_del(rmstore *rm, MDB_txn *txn, const char *key)
{
	MDB_val k  = { strlen(key), (void *) key };
	int     rc = mdb_del(txn, rm->cp_dbi, &k, NULL);
	return rc == MDB_NOTFOUND ? SL_OK
	                          : map_mdb(rc, "delete record", rm->path);
}

int
rm_blob_write(rmstore *rm, MDB_txn *txn, const char *key, size_t klen,
    const void *data, size_t len)
{
	MDB_val k = { klen, (void *) key };
	MDB_val d = { len, (void *) data };
	return map_mdb(
	    mdb_put(txn, rm->cp_dbi, &k, &d, 0), "write record", rm->path);
}

int
rm_blob_read(rmstore *rm, MDB_txn *txn, const char *key, size_t klen,
    void *buf, size_t cap, size_t *len)
{
	MDB_val k  = { klen, (void *) key }, d;
	int     rc = map_mdb(
	        mdb_get(txn, rm->cp_dbi, &k, &d), "read record", rm->path);
	if (rc != SL_OK)
		return rc;
	*len = d.mv_size < cap ? d.mv_size : cap;
	memcpy(buf, d.mv_data, *len);
	return SL_OK;
}

int
rm_blob_del(rmstore *rm, MDB_txn *txn, const char *key, size_t klen)
{
	MDB_val k  = { klen, (void *) key };
	int     rc = mdb_del(txn, rm->cp_dbi, &k, NULL);
	return rc == MDB_NOTFOUND ? SL_OK
	                          : map_mdb(rc, "delete record", rm->path);
}

int
rm_blob_scan(rmstore *rm, MDB_txn *txn, const char *prefix, rm_blob_fn fn,
    void *arg)
{
	MDB_cursor *cur;
	size_t      plen = strlen(prefix);
	int rc = map_mdb(mdb_cursor_open(txn, rm->cp_dbi, &cur), "cursor",
	    rm->path);
	if (rc != SL_OK)
		return rc;
	MDB_val k = { plen, (void *) prefix }, d;
	int     mrc = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE);
	while (mrc == 0 && k.mv_size >= plen
	    && memcmp(k.mv_data, prefix, plen) == 0) {
		if ((rc = fn(arg, k.mv_data, k.mv_size, d.mv_data, d.mv_size))
		    != 0)
			break;
		mrc = mdb_cursor_get(cur, &k, &d, MDB_NEXT);
	}
	mdb_cursor_close(cur);
	if (rc != 0)
		return rc;
	return mrc == 0 || mrc == MDB_NOTFOUND
	    ? SL_OK
	    : map_mdb(mrc, "scan records", rm->path);
}

/*
 * A reader's read txn and the handle of the generation that is active in
 * it. SL_ENOTFOUND when the projection has none (never ran).
 */
static int
begin_read(rmstore *rm, const char *projection_id, MDB_dbi *dbi, MDB_txn **txn,
    uint64_t *gen_out)
{
	char     name[300];
	uint64_t gen;
	int      rc = map_mdb(mdb_txn_begin(rm->env, NULL, MDB_RDONLY, txn),
	         "begin read", rm->path);
	if (rc != SL_OK)
		return rc;
	rc = rm_active_read(rm, *txn, projection_id, &gen);
	if (rc == SL_OK && gen_out != NULL)
		*gen_out = gen;
	if (rc == SL_OK)
		rc = gen_name(projection_id, gen, name, sizeof(name));
	if (rc == SL_OK && !cache_lookup(rm, name, dbi)) {
		log_error("readmodels", "%s: active db %s has no handle",
		    rm->path, name);
		rc = SL_ESTORAGE;
	}
	if (rc != SL_OK)
		mdb_txn_abort(*txn);
	return rc;
}

int
rm_get(rmstore *rm, const char *projection_id, const char *key, size_t key_len,
    char **data, size_t *len)
{
	MDB_dbi  dbi;
	MDB_txn *txn;
	*data = NULL;
	*len  = 0;
	if (key_len == 0 || key_len > (size_t) mdb_env_get_maxkeysize(rm->env))
		return SL_ENOTFOUND; /* no read model can have such a key */
	int rc = begin_read(rm, projection_id, &dbi, &txn, NULL);
	if (rc != SL_OK)
		return rc;
	MDB_val k = { key_len, (void *) key }, v;
	rc        = map_mdb(mdb_get(txn, dbi, &k, &v), "get", rm->path);
	if (rc == SL_OK) {
		/* +1 so an empty value still gets a non-NULL buffer */
		*data = malloc(v.mv_size + 1);
		if (*data == NULL) {
			rc = SL_ENOMEM;
		} else {
			memcpy(*data, v.mv_data, v.mv_size);
			*len = v.mv_size;
		}
	}
	mdb_txn_abort(txn);
	return rc;
}

/*
 * max 0 means no limit. The callback's nonzero return stops the scan and is
 * returned. An unknown projection (never ran) scans nothing: SL_OK.
 */
int
rm_scan(rmstore *rm, const char *projection_id, const char *after,
    size_t after_len, size_t max, rm_scan_fn fn, void *arg, bool *more)
{
	MDB_dbi     dbi;
	MDB_txn    *txn;
	MDB_cursor *cur;
	MDB_val     k, v;
	if (more != NULL)
		*more = false;
	int rc = begin_read(rm, projection_id, &dbi, &txn, NULL);
	if (rc == SL_ENOTFOUND)
		return SL_OK;
	if (rc != SL_OK)
		return rc;
	int mrc = mdb_cursor_open(txn, dbi, &cur);
	if (mrc != 0) {
		mdb_txn_abort(txn);
		return map_mdb(mrc, "cursor", rm->path);
	}
	if (after != NULL && after_len > 0) {
		k.mv_size = after_len;
		k.mv_data = (void *) after;
		mrc       = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		if (mrc == 0 && k.mv_size == after_len
		    && memcmp(k.mv_data, after, after_len) == 0)
			mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	} else {
		mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	}
	size_t n = 0;
	rc       = SL_OK;
	while (mrc == 0) {
		if (max > 0 && n == max) {
			if (more != NULL)
				*more = true;
			break;
		}
		if ((rc = fn(arg, k.mv_data, k.mv_size, v.mv_data, v.mv_size))
		    != 0)
			break;
		n++;
		mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	if (rc == SL_OK && mrc != 0 && mrc != MDB_NOTFOUND)
		rc = map_mdb(mrc, "scan", rm->path);
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	return rc;
}

/* ---- filter streams ---- */

/*
 * Keys of a stream db (readmodels.h): 'A' + be64 for the whole stream,
 * 'P' + partition + '\0' + be64 per partition. The next position of either
 * is one past the last key of its range, found by seeking to the first key
 * past the range (MDB_SET_RANGE) and stepping back (MDB_PREV), so nothing
 * is cached in memory and an aborted txn leaves nothing to undo.
 */
#define RM_STREAM_ALL      'A'
#define RM_STREAM_PART     'P'
#define RM_STREAM_PART_MAX 255
#define RM_STREAM_KEY_MAX  (1 + RM_STREAM_PART_MAX + 1 + 8)

static bool
stream_partition_ok(const char *partition, size_t plen)
{
	return plen >= 1 && plen <= RM_STREAM_PART_MAX
	    && memchr(partition, '\0', plen) == NULL;
}

/* 'P' + partition + '\0' (+ be64 pos when with_pos); returns its length. */
static size_t
stream_part_key(unsigned char *buf, const char *partition, size_t plen,
    bool with_pos, uint64_t pos)
{
	buf[0] = RM_STREAM_PART;
	memcpy(buf + 1, partition, plen);
	buf[1 + plen] = '\0';
	if (!with_pos)
		return 2 + plen;
	put_be64(buf + 2 + plen, pos);
	return 2 + plen + 8;
}

/*
 * The next position of the range of keys that start with prefix (plen
 * bytes) followed by a be64: one past the last such key, 0 when none.
 * bound is the smallest key above the whole range.
 */
static int
stream_next(rmstore *rm, MDB_cursor *cur, const unsigned char *prefix,
    size_t plen, const unsigned char *bound, size_t blen, uint64_t *out)
{
	MDB_val k   = { blen, (void *) bound }, d;
	int     mrc = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE);
	if (mrc == 0)
		mrc = mdb_cursor_get(cur, &k, &d, MDB_PREV);
	else if (mrc == MDB_NOTFOUND) /* nothing above: the db's last key */
		mrc = mdb_cursor_get(cur, &k, &d, MDB_LAST);
	*out = 0;
	if (mrc == MDB_NOTFOUND)
		return SL_OK; /* empty db, or nothing below bound */
	if (mrc != 0)
		return map_mdb(mrc, "seek stream", rm->path);
	if (k.mv_size != plen + 8 || memcmp(k.mv_data, prefix, plen) != 0)
		return SL_OK; /* the key below is another range's */
	uint64_t last = get_be64((const unsigned char *) k.mv_data + plen);
	if (last == UINT64_MAX) {
		log_error(
		    "readmodels", "%s: stream position overflow", rm->path);
		return SL_ESTORAGE;
	}
	*out = last + 1;
	return SL_OK;
}

int
rm_stream_append(rmstore *rm, MDB_txn *txn, MDB_dbi dbi, const char *partition,
    size_t plen, uint64_t log_pos, uint64_t *stream_pos)
{
	unsigned char key[RM_STREAM_KEY_MAX], bound[RM_STREAM_KEY_MAX];
	unsigned char val[16 + RM_STREAM_PART_MAX];
	uint64_t      all_pos, part_pos = 0;
	MDB_cursor   *cur;
	int           rc;

	if (partition != NULL && !stream_partition_ok(partition, plen))
		return SL_EINVAL;
	rc = map_mdb(mdb_cursor_open(txn, dbi, &cur), "cursor", rm->path);
	if (rc != SL_OK)
		return rc;
	key[0]   = RM_STREAM_ALL;
	bound[0] = RM_STREAM_ALL + 1;
	rc       = stream_next(rm, cur, key, 1, bound, 1, &all_pos);
	if (rc == SL_OK && partition != NULL) {
		size_t n = stream_part_key(key, partition, plen, false, 0);
		memcpy(bound, key, n);
		bound[n - 1] = '\0' + 1; /* past every key of the partition */
		rc = stream_next(rm, cur, key, n, bound, n, &part_pos);
	}
	mdb_cursor_close(cur);
	if (rc != SL_OK)
		return rc;

	/* whole: 'A' + pos -> log pos + partition pos + partition */
	key[0] = RM_STREAM_ALL;
	put_be64(key + 1, all_pos);
	put_be64(val, log_pos);
	put_be64(val + 8, partition != NULL ? part_pos : all_pos);
	if (partition != NULL)
		memcpy(val + 16, partition, plen);
	MDB_val k = { 9, key };
	MDB_val d = { 16 + (partition != NULL ? plen : 0), val };
	rc        = map_mdb(
	           mdb_put(txn, dbi, &k, &d, 0), "append to stream", rm->path);
	if (rc == SL_OK && partition != NULL) {
		/* partition: 'P' + p + '\0' + pos -> log pos + whole pos */
		k.mv_size
		    = stream_part_key(key, partition, plen, true, part_pos);
		put_be64(val + 8, all_pos);
		d.mv_size = 16;
		rc        = map_mdb(mdb_put(txn, dbi, &k, &d, 0),
		           "append to stream partition", rm->path);
	}
	if (rc == SL_OK && stream_pos != NULL)
		*stream_pos = all_pos;
	return rc;
}

/*
 * The cursor walk of rm_stream_read and rm_stream_walk over db dbi of the
 * stream name, in txn: the whole stream (partition NULL) or a partition,
 * from position from, at most max entries (0: no limit).
 */
static int
stream_walk(rmstore *rm, MDB_txn *txn, MDB_dbi dbi, const char *name,
    const char *partition, size_t plen, uint64_t from, size_t max,
    rm_stream_fn fn, void *arg, uint64_t *next, bool *more)
{
	unsigned char key[RM_STREAM_KEY_MAX];
	size_t        prefix_len;
	MDB_cursor   *cur;
	MDB_val       k, d;
	size_t        n  = 0;
	int           rc = SL_OK, mrc;

	if ((mrc = mdb_cursor_open(txn, dbi, &cur)) != 0)
		return map_mdb(mrc, "cursor", rm->path);
	if (partition == NULL) {
		key[0] = RM_STREAM_ALL;
		put_be64(key + 1, from);
		k.mv_size  = 9;
		prefix_len = 1;
	} else {
		k.mv_size  = stream_part_key(key, partition, plen, true, from);
		prefix_len = k.mv_size - 8;
	}
	k.mv_data = key;
	mrc       = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE);
	/* Keys of the range sort together and all have prefix + be64. */
	while (mrc == 0 && k.mv_size == prefix_len + 8
	    && memcmp(k.mv_data, key, prefix_len) == 0) {
		const unsigned char *v = d.mv_data;
		uint64_t             pos
		    = get_be64((const unsigned char *) k.mv_data + prefix_len);
		if (max > 0 && n == max) {
			if (more != NULL)
				*more = true;
			break;
		}
		if (partition == NULL ? d.mv_size < 16 : d.mv_size != 16) {
			log_error("readmodels",
			    "%s: stream %s: entry %llu: bad size %zu",
			    rm->path, name, (unsigned long long) pos,
			    d.mv_size);
			rc = SL_ESTORAGE;
			break;
		}
		n++;
		if (next != NULL)
			*next = pos + 1;
		rc = partition == NULL
		    ? fn(arg, pos, get_be64(v), get_be64(v + 8),
		        (const char *) v + 16, d.mv_size - 16)
		    : fn(arg, pos, get_be64(v), get_be64(v + 8), partition,
		        plen);
		if (rc != 0) {
			/* stopped by fn: say whether entries remain */
			mrc = mdb_cursor_get(cur, &k, &d, MDB_NEXT);
			if (more != NULL && mrc == 0
			    && k.mv_size == prefix_len + 8
			    && memcmp(k.mv_data, key, prefix_len) == 0)
				*more = true;
			mrc = 0;
			break;
		}
		mrc = mdb_cursor_get(cur, &k, &d, MDB_NEXT);
	}
	if (rc == SL_OK && mrc != 0 && mrc != MDB_NOTFOUND)
		rc = map_mdb(mrc, "read stream", rm->path);
	mdb_cursor_close(cur);
	return rc;
}

/* "f:<id>", the name a filter's processor writes through. */
static int
filter_name(const char *filter_id, char *buf, size_t len)
{
	int n = snprintf(buf, len, RM_FILTER_PREFIX "%s", filter_id);
	return n > 0 && (size_t) n < len ? SL_OK : SL_EINVAL;
}

int
rm_stream_read(rmstore *rm, const char *filter_id, const char *partition,
    size_t plen, uint64_t from, size_t max, rm_stream_fn fn, void *arg,
    uint64_t *next, bool *more, uint64_t *generation)
{
	char     name[300];
	MDB_dbi  dbi;
	MDB_txn *txn;

	if (next != NULL)
		*next = from;
	if (more != NULL)
		*more = false;
	if (partition != NULL && !stream_partition_ok(partition, plen))
		return SL_EINVAL; /* no partition can have such an id */
	if (filter_name(filter_id, name, sizeof(name)) != SL_OK)
		return SL_EINVAL;
	if (generation != NULL)
		*generation = 0;
	int rc = begin_read(rm, name, &dbi, &txn, generation);
	if (rc == SL_ENOTFOUND)
		return SL_OK; /* the filter never wrote: an empty stream */
	if (rc != SL_OK)
		return rc;
	rc = stream_walk(rm, txn, dbi, name, partition, plen, from, max, fn,
	    arg, next, more);
	mdb_txn_abort(txn);
	return rc;
}

int
rm_stream_walk(rmstore *rm, MDB_txn *txn, const char *filter_id, uint64_t gen,
    uint64_t from, size_t max, rm_stream_fn fn, void *arg, uint64_t *next)
{
	char    name[300];
	MDB_dbi dbi;
	if (next != NULL)
		*next = from;
	if (filter_name(filter_id, name, sizeof(name)) != SL_OK)
		return SL_EINVAL;
	int rc = rm_gen_dbi(rm, name, gen, false, &dbi);
	if (rc == SL_ENOTFOUND)
		return SL_OK; /* never written */
	if (rc != SL_OK)
		return rc;
	return stream_walk(
	    rm, txn, dbi, name, NULL, 0, from, max, fn, arg, next, NULL);
}

int
rm_stream_head(rmstore *rm, const char *filter_id, uint64_t *next,
    uint64_t *generation)
{
	char          name[300];
	unsigned char key[1] = { RM_STREAM_ALL }, bound[1] = { RM_STREAM_ALL + 1 };
	MDB_dbi       dbi;
	MDB_txn      *txn;
	MDB_cursor   *cur;
	*next       = 0;
	*generation = 0;
	if (filter_name(filter_id, name, sizeof(name)) != SL_OK)
		return SL_EINVAL;
	int rc = begin_read(rm, name, &dbi, &txn, generation);
	if (rc == SL_ENOTFOUND)
		return SL_OK; /* the filter never wrote */
	if (rc != SL_OK)
		return rc;
	rc = map_mdb(mdb_cursor_open(txn, dbi, &cur), "cursor", rm->path);
	if (rc == SL_OK) {
		rc = stream_next(rm, cur, key, 1, bound, 1, next);
		mdb_cursor_close(cur);
	}
	mdb_txn_abort(txn);
	return rc;
}
