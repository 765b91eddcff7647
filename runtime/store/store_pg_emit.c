/*
 * An emitting projection's batch on the PostgreSQL log (docs/postgresql.md,
 * "Leases"): its events, its states and its checkpoint in one transaction
 * with the check that this node still holds its lease, so that a node
 * that lost the lease (paused past it, cut off) cannot write twice what
 * the new holder writes. After the COMMIT the batch goes to this node's
 * mirror (the events, as any commit's) and to its copy of the owner's
 * records, which the processor reads.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/errors.h>

#include "event.h"
#include "log.h"
#include "store_pg_internal.h"

static const char deleted[] = STORE_DELETED_STREAM;

/* A text[] literal of the hex of the states' keys (or values) whose put
 * (val != NULL) is `puts`: {"6162",""} (an empty key is quoted). */
static char *
kv_hex_array(const store_kv *kv, size_t n, bool val, bool puts)
{
	static const char hx[] = "0123456789abcdef";
	size_t            len  = 3;
	for (size_t i = 0; i < n; i++)
		if ((kv[i].val != NULL) == puts)
			len += 2 * (val ? kv[i].val_len : kv[i].key_len) + 3;
	char *a = malloc(len), *p = a;
	bool  first = true;
	if (a == NULL)
		return NULL;
	*p++ = '{';
	for (size_t i = 0; i < n; i++) {
		if ((kv[i].val != NULL) != puts)
			continue;
		const uint8_t *v = val ? kv[i].val : kv[i].key;
		size_t         l = val ? kv[i].val_len : kv[i].key_len;
		if (!first)
			*p++ = ',';
		first = false;
		*p++  = '"';
		for (size_t j = 0; j < l; j++) {
			*p++ = hx[v[j] >> 4];
			*p++ = hx[v[j] & 15];
		}
		*p++ = '"';
	}
	*p++ = '}';
	*p   = '\0';
	return a;
}

/* The batch's streams, sorted and unique (their rows locked in this
 * order, as a commit's). */
static bool
emit_streams(pg_group *g, const store_emit *e)
{
	size_t k = 0, tl = strlen(e->tenant);
	g->st = calloc(e->n_appends + 2, sizeof(*g->st)); /* + $deleted */
	if (g->st == NULL)
		return false;
	for (size_t i = 0; i < e->n_appends; i++)
		g->st[i] = (pg_stream) { e->tenant, e->appends[i].stream, tl,
			strlen(e->appends[i].stream), 0, 0, false, e->owner,
			false };
	qsort(g->st, e->n_appends, sizeof(*g->st), pg_stream_cmp);
	for (size_t i = 0; i < e->n_appends; i++)
		if (k == 0 || pg_stream_cmp(&g->st[k - 1], &g->st[i]) != 0)
			g->st[k++] = g->st[i];
	g->n_st = k;
	return true;
}

static pg_stream *
emit_stream(pg_group *g, const char *tenant, const char *stream, size_t sl)
{
	pg_stream key
	    = { tenant, stream, strlen(tenant), sl, 0, 0, false, NULL, false };
	return bsearch(&key, g->st, g->n_st, sizeof(*g->st), pg_stream_cmp);
}

/* Phase one: the lease (checked and renewed: its row stays locked to the
 * COMMIT, so that no other node can take it meanwhile), the head row,
 * the streams' rows, the mirror's gap. */
static bool
emit_send_reads(
    pg_group *g, const store_emit *e, char *from, char *tok, char *ttl)
{
	char       *sa = hex_array(g->st, g->n_st, true);
	const char *lv[5]
	    = { e->tenant, e->owner, pg_lease_me(g->b), tok, ttl };
	int         ll[5] = { (int) strlen(e->tenant), 0, 0, 0, 0 };
	int         lf[5] = { 1, 0, 0, 0, 0 };
	const char *sv[2] = { e->tenant, sa };
	int         sl[2] = { (int) strlen(e->tenant), 0 };
	int         sf[2] = { 1, 0 };
	snprintf(tok, 24, "%" PRIu64, e->lease);
	snprintf(ttl, 16, "%" PRIu32, pg_lease_ttl_ms(g->b));
	char idle[96];
	/* a holder frozen inside this transaction (SIGSTOP, a stalled VM)
	 * would keep the lease's and the head's row locks, and with them
	 * every node's appends and the lease's move: the server ends it
	 * once it idles as long as the lease row lasts */
	snprintf(idle, sizeof(idle),
	    "SET LOCAL idle_in_transaction_session_timeout = %" PRIu32,
	    pg_lease_ttl_ms(g->b));
	bool ok = sa != NULL && pg_send(g, "BEGIN", 0, NULL, NULL, NULL, 0)
	    && pg_send(g, idle, 0, NULL, NULL, NULL, 0)
	    && pg_send(g,
	        "UPDATE sl_leases SET expires_at = clock_timestamp() + "
	        "$5::bigint * interval '1 millisecond' WHERE tenant = $1 AND "
	        "owner = $2 AND holder = $3 AND token = $4::bigint RETURNING "
	        "token",
	        5, lv, ll, lf, 0)
	    && pg_send(g, "SELECT next FROM sl_head WHERE one = 1 FOR UPDATE",
	        0, NULL, NULL, NULL, 0)
	    && pg_send(g,
	        "SELECT stream, next_revision, truncate_before, owner FROM "
	        "sl_streams WHERE tenant = $1 AND stream IN (SELECT "
	        "decode(s, 'hex') FROM unnest($2::text[]) AS u(s)) ORDER BY "
	        "stream FOR UPDATE",
	        2, sv, sl, sf, 1)
	    && pg_send_gap(g, from);
	/* a reset: the tenant's STORE_DELETED_STREAM (its notifications
	 * go there), the owner's streams given up, those with revisions to
	 * hide marked so, their names and next revisions back */
	const char *dv[2] = { e->tenant, deleted };
	int         dl[2] = { (int) strlen(e->tenant), (int) strlen(deleted) };
	int         df[2] = { 1, 1 };
	const char *ov[2] = { e->tenant, e->owner };
	int         ol[2] = { (int) strlen(e->tenant), 0 };
	int         of[2] = { 1, 0 };
	if (ok && e->reset)
		ok = pg_send(g,
		         "SELECT next_revision, truncate_before FROM "
		         "sl_streams "
		         "WHERE tenant = $1 AND stream = $2 FOR UPDATE",
		         2, dv, dl, df, 1)
		    && pg_send(g,
		        "UPDATE sl_streams SET owner = NULL WHERE tenant = $1 "
		        "AND owner = $2 AND next_revision <= truncate_before",
		        2, ov, ol, of, 1)
		    && pg_send(g,
		        "UPDATE sl_streams SET truncate_before = "
		        "next_revision, "
		        "owner = NULL WHERE tenant = $1 AND owner = $2 AND "
		        "next_revision > truncate_before RETURNING stream, "
		        "next_revision",
		        2, ov, ol, of, 1);
	free(sa);
	return ok;
}

/*
 * A reset's notifications: each stream the owner wrote, whose revisions
 * it hides now, gets a STORE_EV_STREAM_DELETED in the tenant's
 * STORE_DELETED_STREAM (as a client's deletion writes it), after what
 * emit_encode placed: every node's mirror takes the marks from them
 * (store_mirror_delete), as the log is all they read. del: that stream's
 * row; hid: the streams and their next revisions. SL_OK or e's rc.
 */
static int
emit_reset_rows(
    pg_group *g, store_emit *e, const PGresult *del, const PGresult *hid)
{
	size_t   n = (size_t) PQntuples(hid), tl = strlen(e->tenant);
	uint64_t drev = 0, dtb = 0;
	if (n == 0)
		return SL_OK;
	if (PQntuples(del) == 1 && PQgetlength(del, 0, 0) == 8
	    && PQgetlength(del, 0, 1) == 8) {
		drev = store_get_be64((const uint8_t *) PQgetvalue(del, 0, 0));
		dtb  = store_get_be64((const uint8_t *) PQgetvalue(del, 0, 1));
	}
	pg_row *nr = realloc(g->rows, (g->n_rows + n + 1) * sizeof(*nr));
	if (nr == NULL)
		return store_emit_fail(e, SL_ENOMEM, "out of memory");
	g->rows = nr;
	for (size_t i = 0; i < n; i++) {
		store_commit c;
		memset(&c, 0, sizeof(c));
		c.tenant     = e->tenant;
		c.tenant_len = tl;
		c.stream     = PQgetvalue(hid, (int) i, 0);
		c.stream_len = (size_t) PQgetlength(hid, (int) i, 0);
		c.trunc      = STORE_TRUNC_DELETE;
		if (PQgetlength(hid, (int) i, 1) != 8)
			return store_emit_fail(
			    e, SL_ESTORAGE, "sl_streams: a bad next_revision");
		uint64_t next = store_get_be64(
		    (const uint8_t *) PQgetvalue(hid, (int) i, 1));
		size_t  off = g->b->enc.size;
		pg_row *row = &g->rows[g->n_rows];
		if (store_delete_encode(
		        &g->b->enc, &c, next, next, drev, row->id)
		    != SL_OK)
			return store_emit_fail(e, c.rc, "%s", c.message);
		row->position   = g->end;
		row->revision   = drev;
		row->tenant     = e->tenant;
		row->tenant_len = tl;
		row->stream     = deleted;
		row->stream_len = strlen(deleted);
		row->off        = off;
		row->len        = g->b->enc.size - off;
		g->n_rows++;
		g->end++;
		drev++;
	}
	g->st[g->n_st++] = (pg_stream) { e->tenant, deleted, tl,
		strlen(deleted), drev, dtb, true, NULL, false };
	return SL_OK;
}

/* The streams' rows as the database has them: revisions, and whether
 * another owner wrote them. */
static void
emit_apply_streams(pg_group *g, const store_emit *e, const PGresult *r)
{
	for (int i = 0; i < PQntuples(r); i++) {
		pg_stream *st = emit_stream(g, e->tenant, PQgetvalue(r, i, 0),
		    (size_t) PQgetlength(r, i, 0));
		if (st == NULL || PQgetlength(r, i, 1) != 8
		    || PQgetlength(r, i, 2) != 8)
			continue;
		st->next
		    = store_get_be64((const uint8_t *) PQgetvalue(r, i, 1));
		st->tb = store_get_be64((const uint8_t *) PQgetvalue(r, i, 2));
		if (!PQgetisnull(r, i, 3)
		    && ((size_t) PQgetlength(r, i, 3) != strlen(e->owner)
		        || memcmp(
		               PQgetvalue(r, i, 3), e->owner, strlen(e->owner))
		            != 0))
			st->owned = true;
	}
}

/* Encode the appends at positions from g->head, revisions from their
 * streams' rows: SL_OK, or e's rc. */
static int
emit_encode(pg_group *g, store_emit *e)
{
	msgpack_packer pk;
	size_t         tl  = strlen(e->tenant);
	uint64_t       rev = 0;
	msgpack_packer_init(&pk, &g->b->enc, msgpack_sbuffer_write);
	g->end = g->head;
	for (size_t i = 0; i < e->n_appends; i++) {
		store_linked        lk;
		const store_append *a = store_emit_linked(e, i, rev, &lk);
		if (a == NULL)
			return e->rc;
		size_t     sl = strlen(a->stream);
		pg_stream *st = emit_stream(g, e->tenant, a->stream, sl);
		if (st == NULL)
			return store_emit_fail(e, SL_EINTERNAL,
			    "appends[%zu]: stream not locked", i);
		if (st->owned)
			return store_emit_fail(e, SL_EOWNED,
			    "stream '%s' is owned by another projection",
			    a->stream);
		size_t off = g->b->enc.size;
		int    rc  = ev_encode(
		        &pk, e->tenant, tl, a->stream, sl, st->next, &a->ev);
		if (rc != SL_OK)
			return store_emit_fail(e, rc,
			    "appends[%zu] cannot be encoded (content must be "
			    "a "
			    "map, or a str for a link)",
			    i);
		if (g->b->enc.size - off
		    > SL_MAX_EVENT_BYTES + 4 * SL_MAX_ID_LEN + 64)
			return store_emit_fail(e, SL_ETOOBIG,
			    "appends[%zu] takes %zu bytes (limit %u)", i,
			    g->b->enc.size - off, SL_MAX_EVENT_BYTES);
		pg_row *row = &g->rows[g->n_rows++];
		*row        = (pg_row) { .position = g->end,
			       .revision           = st->next,
			       .tenant             = e->tenant,
			       .stream             = st->stream,
			       .tenant_len         = tl,
			       .stream_len         = sl,
			       .off                = off,
			       .len                = g->b->enc.size - off };
		memcpy(row->id, a->ev.id, 16);
		rev = st->next;
		st->next++;
		st->changed = true;
		g->end++;
	}
	return SL_OK;
}

/* The states (puts and deletions) and the checkpoint. */
static bool
emit_send_records(pg_group *g, const store_emit *e)
{
	bool ok = true, puts = false, dels = false;
	for (size_t i = 0; i < e->n_states; i++) {
		puts = puts || e->states[i].val != NULL;
		dels = dels || e->states[i].val == NULL;
	}
	int tl = (int) strlen(e->tenant);
	if (puts) {
		char *ka = kv_hex_array(e->states, e->n_states, false, true);
		char *va = kv_hex_array(e->states, e->n_states, true, true);
		const char *pv[4] = { e->tenant, e->owner, ka, va };
		int         pl[4] = { tl, 0, 0, 0 };
		int         pf[4] = { 1, 0, 0, 0 };
		ok                = ka != NULL && va != NULL
		    && pg_send(g,
		        "INSERT INTO sl_pstate (tenant, owner, key, val) "
		        "SELECT "
		        "$1, $2, decode(k, 'hex'), decode(v, 'hex') FROM "
		        "unnest($3::text[], $4::text[]) AS u(k, v) ON "
		        "CONFLICT "
		        "(tenant, owner, key) DO UPDATE SET val = "
		        "EXCLUDED.val",
		        4, pv, pl, pf, 0);
		free(ka);
		free(va);
	}
	if (ok && dels) {
		char *ka = kv_hex_array(e->states, e->n_states, false, false);
		const char *pv[3] = { e->tenant, e->owner, ka };
		int         pl[3] = { tl, 0, 0 };
		int         pf[3] = { 1, 0, 0 };
		ok                = ka != NULL
		    && pg_send(g,
		        "DELETE FROM sl_pstate WHERE tenant = $1 AND owner = "
		        "$2 "
		        "AND key IN (SELECT decode(k, 'hex') FROM "
		        "unnest($3::text[]) AS u(k))",
		        3, pv, pl, pf, 0);
		free(ka);
	}
	if (ok && e->checkpoint != NULL) {
		const char *pv[3] = { e->tenant, e->owner, e->checkpoint };
		int         pl[3] = { tl, 0, (int) e->checkpoint_len };
		int         pf[3] = { 1, 0, 1 };
		ok                = pg_send(g,
		                   "INSERT INTO sl_pcheck (tenant, owner, checkpoint) VALUES "
		                                  "($1, $2, $3) ON CONFLICT (tenant, owner) DO UPDATE SET "
		                                  "checkpoint = EXCLUDED.checkpoint",
		                   3, pv, pl, pf, 0);
	}
	return ok;
}

/* Refusals before the database: what the claims or this node's lease
 * already say. SL_OK or e's rc. */
static int
emit_precheck(pgb *b, store_emit *e)
{
	if (e->reset && e->n_appends > 0) /* proc_emit_setup's have none */
		return store_emit_fail(e, SL_EINVAL,
		    "a reset batch writes no events on 'event_store.backend: "
		    "postgresql'");
	if (e->lease == 0
	    || pg_lease_get(b, e->tenant, e->owner, NULL, 0) != e->lease)
		return store_emit_fail(e, SL_EOWNED,
		    "this node does not hold the lease of %s/%s (epoch "
		    "%" PRIu64 ") any more: another node runs it",
		    e->tenant, e->owner, e->lease);
	for (size_t i = 0; i < e->n_appends; i++) {
		const char *st = e->appends[i].stream;
		int rc = store_claims_allow(b->s, st, strlen(st), e->owner,
		    e->message, sizeof(e->message));
		if (rc != SL_OK) {
			e->rc = rc;
			return rc;
		}
	}
	return SL_OK;
}

/* End the transaction without writing (the pipeline stays usable, or
 * the connection goes). */
static void
emit_rollback(pg_group *g)
{
	if (!pg_send(g, "ROLLBACK", 0, NULL, NULL, NULL, 0)
	    || !pg_sync(g, NULL, 0, "rollback")
	    || !PQexitPipelineMode(g->b->wconn)) {
		PQfinish(g->b->wconn);
		g->b->wconn = NULL;
	}
}

/* A failure before COMMIT: nothing was written. */
static void
emit_failed(pg_group *g, store_emit *e)
{
	pg_txn_failed(g); /* drops the connection */
	store_emit_fail(
	    e, g->lost ? SL_EUNAVAILABLE : SL_ESTORAGE, "%s", g->err);
}

void
pg_write_emit(void *ctx, store_emit *e)
{
	pgb      *b = ctx;
	pg_group  g = { .b = b };
	PGresult *r[9], *cr = NULL;
	char      from[24], tok[24], ttl[16], sql[96], notify[64];
	bool      committed;

	pthread_mutex_lock(&b->mu);
	if (b->fatal[0] != '\0') {
		store_emit_fail(e, SL_ESTORAGE, "%s", b->fatal);
		pthread_mutex_unlock(&b->mu);
		return;
	}
	pthread_mutex_unlock(&b->mu);
	if (emit_precheck(b, e) != SL_OK)
		return;
	if (!pg_writer_conn(b, g.err, sizeof(g.err))) {
		store_emit_fail(e, SL_EUNAVAILABLE, "%s", g.err);
		return;
	}
	g.rows = malloc((e->n_appends + 1) * sizeof(*g.rows));
	if (g.rows == NULL || !emit_streams(&g, e)) {
		store_emit_fail(e, SL_ENOMEM, "out of memory");
		goto out;
	}
	msgpack_sbuffer_clear(&b->enc);
	if (!PQenterPipelineMode(b->wconn)) {
		pg_msg(g.err, sizeof(g.err), "pipeline mode",
		    PQerrorMessage(b->wconn));
		emit_failed(&g, e);
		goto out;
	}
	if (!emit_send_reads(&g, e, from, tok, ttl)) {
		pg_msg(g.err, sizeof(g.err), "send", PQerrorMessage(b->wconn));
		emit_failed(&g, e);
		goto out;
	}
	int nr = e->reset ? 9 : 6;
	if (!pg_sync(&g, r, (size_t) nr, "read under the lease")) {
		for (int i = 0; i < nr; i++)
			PQclear(r[i]);
		emit_failed(&g, e);
		goto out;
	}
	/* r: BEGIN, SET, the lease, the head, the streams, the gap */
	bool held = PQntuples(r[2]) == 1;
	if (held) {
		g.head = PQntuples(r[3]) == 1
		    ? strtoull(PQgetvalue(r[3], 0, 0), NULL, 10)
		    : 0;
		if (pg_head_behind(&g)) {
			for (int i = 0; i < nr; i++)
				PQclear(r[i]);
			emit_rollback(&g);
			store_emit_fail(e, SL_ESTORAGE, "%s", g.err);
			goto out;
		}
		emit_apply_streams(&g, e, r[4]);
		if (g.mirror_next < g.head
		    && (uint64_t) PQntuples(r[5]) == g.head - g.mirror_next) {
			g.gap = r[5];
			r[5]  = NULL;
		}
	}
	if (!held) {
		for (int i = 0; i < nr; i++)
			PQclear(r[i]);
		/* another node took it: this one stands down, nothing
		 * written */
		emit_rollback(&g);
		pg_lease_drop(b, e->tenant, e->owner);
		store_emit_fail(e, SL_EOWNED,
		    "the lease of %s/%s (epoch %" PRIu64 ") was taken by "
		    "another node: nothing written, this node stands down",
		    e->tenant, e->owner, e->lease);
		log_warn("store", "postgresql: %s", e->message);
		goto out;
	}
	int rc = emit_encode(&g, e);
	if (rc == SL_OK && e->reset)
		rc = emit_reset_rows(&g, e, r[6], r[8]);
	for (int i = 0; i < nr; i++)
		PQclear(r[i]);
	if (rc != SL_OK) {
		emit_rollback(&g);
		goto out;
	}
	/* Phase two: the writes, in one round trip. */
	snprintf(sql, sizeof(sql),
	    "UPDATE sl_head SET next = %" PRIu64 " WHERE one = 1", g.end);
	snprintf(
	    notify, sizeof(notify), "NOTIFY sl_log, '%" PRIu64 "'", g.end);
	const char *ov[2] = { e->tenant, e->owner };
	int         ol[2] = { (int) strlen(e->tenant), 0 };
	int         of[2] = { 1, 0 };
	bool ok = pg_send_events(&g) && pg_send_streams_update(&g, true);
	if (ok && e->reset) /* its states and checkpoint go too */
		ok = pg_send(&g,
		         "DELETE FROM sl_pstate WHERE tenant = $1 AND owner = "
		         "$2",
		         2, ov, ol, of, 0)
		    && pg_send(&g,
		        "DELETE FROM sl_pcheck WHERE tenant = $1 AND owner = "
		        "$2",
		        2, ov, ol, of, 0);
	ok = ok && emit_send_records(&g, e);
	if (ok && g.end > g.head)
		ok = pg_send(&g, sql, 0, NULL, NULL, NULL, 0)
		    && pg_send(&g, notify, 0, NULL, NULL, NULL, 0);
	if (!ok) {
		pg_msg(g.err, sizeof(g.err), "send", PQerrorMessage(b->wconn));
		emit_failed(&g, e);
		goto out;
	}
	if (!pg_sync(&g, NULL, 0, "write")) {
		emit_failed(&g, e);
		goto out;
	}
	committed = pg_send(&g, "COMMIT", 0, NULL, NULL, NULL, 0)
	    && pg_sync(&g, &cr, 1, "commit")
	    && strcmp(PQcmdStatus(cr), "COMMIT") == 0;
	PQclear(cr);
	if (!committed && (g.lost || PQstatus(b->wconn) != CONNECTION_OK)) {
		/* Outcome unknown: this node gives the lease up and takes it
		 * again, loading what the database holds, so that the run
		 * goes on from there either way. */
		PQfinish(b->wconn);
		b->wconn = NULL;
		pg_lease_drop(b, e->tenant, e->owner);
		store_emit_fail(e, SL_EUNAVAILABLE,
		    "connection lost during COMMIT: the run goes on from the "
		    "checkpoint in the database");
		goto out;
	}
	if (!committed) {
		emit_failed(&g, e);
		goto out;
	}
	if (!PQexitPipelineMode(b->wconn)) {
		PQfinish(b->wconn);
		b->wconn = NULL;
	}
	e->rc             = SL_OK;
	e->first_position = g.head;
	if (g.end > g.head || g.gap != NULL)
		pg_mirror_group(&g);
	int mrc = store_emit_local(b->s, e);
	if (mrc != 0) {
		/* committed; this node's copy is behind: load it again */
		log_error("store",
		    "postgresql: %s/%s: committed, but this node's copy of "
		    "its "
		    "states cannot take them (%s): loading them again",
		    e->tenant, e->owner, sl_strerror(store_map_err(mrc)));
		pg_lease_drop(b, e->tenant, e->owner);
	}
out:
	PQclear(g.gap);
	free(g.st);
	free(g.rows);
}
