/*
 * Read model stores: one LMDB environment per tenant with a database of read
 * models per projection ("rm:<id>") and one of checkpoints, so a processor
 * commits a state change and its checkpoint in one transaction.
 *
 * Checkpoint record (db "checkpoints", key = processor id, e.g.
 * "proj:<projection id>"): 16 bytes, be64 position then be64 def_hash.
 *
 * Database handles. LMDB requires that a transaction which opens a handle
 * finishes before any other transaction opens one, and a handle is only valid
 * in transactions begun after the one that opened it committed. So read
 * transactions never call mdb_dbi_open here: handles are opened at rm_open
 * (every existing "rm:" db) or in a private write transaction committed
 * inside rm_dbi (txn NULL), and only then put in a cache that readers use
 * before they begin their transaction.
 */
#include "readmodels.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sluice/errors.h>

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
	MDB_dbi         cp_dbi;
	pthread_mutex_t mu; /* guards the handle cache and every dbi open */
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

/* mkdir -p: create path and its parents. */
static int
mkdirs(const char *path)
{
	char  *p = strdup(path);
	size_t n;
	if (p == NULL)
		return SL_ENOMEM;
	n = strlen(p);
	while (n > 1 && p[n - 1] == '/')
		p[--n] = '\0';
	for (char *s = p + 1; *s != '\0'; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0755) != 0 && errno != EEXIST) {
			*s = '/';
			break;
		}
		*s = '/';
	}
	int rc = mkdir(p, 0755) == 0 || errno == EEXIST ? SL_OK : SL_ESTORAGE;
	if (rc != SL_OK)
		log_error("readmodels", "mkdir %s: %s", p, strerror(errno));
	free(p);
	return rc;
}

static int
db_name(const char *projection_id, char *buf, size_t len)
{
	int n = snprintf(buf, len, RM_PREFIX "%s", projection_id);
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
		mrc = mdb_env_open(
		    rm->env, path, MDB_NOTLS | (sync ? 0 : MDB_NOSYNC), 0644);
	if (mrc != 0) {
		rc = map_mdb(mrc, "open env", path);
		if (rc == SL_ENOTFOUND || rc == SL_EINVAL)
			rc = SL_ESTORAGE;
		rm_close(rm);
		return rc;
	}
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

MDB_env *
rm_env(rmstore *rm)
{
	return rm->env;
}

/*
 * txn NULL: open (create if asked) in a private write transaction committed
 * before return, so the handle is valid in every transaction begun after;
 * must not be called so while this thread holds a write txn on the env.
 * txn given: a cached handle, else (create only) the db is created in txn,
 * which must be a write txn; that handle is not cached, so the processor
 * creates its db with txn NULL first.
 */
int
rm_dbi(rmstore *rm, MDB_txn *txn, const char *projection_id, bool create,
    MDB_dbi *out)
{
	char name[300];
	if (db_name(projection_id, name, sizeof(name)) != SL_OK)
		return SL_EINVAL;
	pthread_mutex_lock(&rm->mu);
	if (cache_find(rm, name, out)) {
		pthread_mutex_unlock(&rm->mu);
		return SL_OK;
	}
	int rc;
	if (!create) {
		rc = SL_ENOTFOUND; /* would exist in the cache if it existed */
	} else if (txn != NULL) {
		rc = map_mdb(mdb_dbi_open(txn, name, MDB_CREATE, out),
		    "create db", rm->path);
	} else {
		MDB_txn *own;
		int      mrc = mdb_txn_begin(rm->env, NULL, 0, &own);
		if (mrc == 0) {
			mrc = mdb_dbi_open(own, name, MDB_CREATE, out);
			if (mrc == 0)
				mrc = mdb_txn_commit(own);
			else
				mdb_txn_abort(own);
		}
		rc = map_mdb(mrc, "create db", rm->path);
		if (rc == SL_OK)
			rc = cache_add(rm, name, *out);
	}
	pthread_mutex_unlock(&rm->mu);
	return rc;
}

int
rm_drop(rmstore *rm, MDB_txn *txn, const char *projection_id)
{
	MDB_dbi dbi;
	int     rc = rm_dbi(rm, txn, projection_id, false, &dbi);
	if (rc == SL_ENOTFOUND)
		return SL_OK; /* nothing to drop */
	if (rc != SL_OK)
		return rc;
	/* Empty it but keep the db, so the handle stays valid for readers. */
	return map_mdb(mdb_drop(txn, dbi, 0), "drop", rm->path);
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

/* A reader's handle and read txn; the handle is looked up before the txn
 * begins so that it is valid in it. */
static int
begin_read(rmstore *rm, const char *projection_id, MDB_dbi *dbi, MDB_txn **txn)
{
	int rc = rm_dbi(rm, NULL, projection_id, false, dbi);
	if (rc != SL_OK)
		return rc;
	return map_mdb(mdb_txn_begin(rm->env, NULL, MDB_RDONLY, txn),
	    "begin read", rm->path);
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
	int rc = begin_read(rm, projection_id, &dbi, &txn);
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
	int rc = begin_read(rm, projection_id, &dbi, &txn);
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
