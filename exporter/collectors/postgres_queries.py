"""The SQL the PostgreSQL collector runs: a handful of statements per cycle, none on user tables.

Each statement folds several catalog and statistics views into one round trip (JSON columns), so
a cycle costs at most five statements: the probe, :data:`SERVER` (to which the collector appends
the wraparound and vacuum columns of ``postgres_databases.HEALTH_COLUMNS``), :data:`TABLES`,
:func:`statements_sql` and, only when new statements are listed and query text is enabled,
:func:`statement_text_sql` (the wait sampler's reads are its own, see postgres_activity.py).
Everything read comes from ``pg_stat_*``/``pg_statio_*`` views, the catalogs, settings and size
functions: nothing touches the rows of a user table.

Parameters: ``$1`` is the database filter (``NULL`` for all databases), ``$2`` a top-N bound.
:func:`statements_sql` reads every entry of the view (no query text): a few thousand rows.
"""

from __future__ import annotations

PROBE = "SELECT 1"

#: Connection states as pg_stat_activity spells them; every one is reported, zero or not.
CONNECTION_STATES: tuple[str, ...] = (
    "active",
    "idle",
    "idle in transaction",
    "idle in transaction (aborted)",
    "fastpath function call",
    "disabled",
)

# One row. Client backends only (no walsenders, autovacuum or background workers). Our own
# backend is counted as a connection (it is one) but left out of the transaction ages.
#
# The standbys are read from the walsenders' pids, not through ``pg_stat_replication``, which
# makes a whole ``pg_stat_activity`` row (some thirty columns) for every backend before it keeps
# the walsenders: 1.3 of the 5.4 ms this statement took a server with 250 idle connections. The
# client backends themselves are read whole: unlike the wait sample (postgres_activity.py),
# the connection states need every backend's state, and an idle session cannot be told from one
# idle in an aborted transaction without its row.
SERVER = """
WITH dbs AS (
    SELECT d.oid, d.datname
    FROM pg_database d
    WHERE NOT d.datistemplate AND d.datallowconn
      AND ($1::text[] IS NULL OR d.datname = ANY($1::text[]))
), act AS MATERIALIZED (
    SELECT pid, datname, state, wait_event_type, xact_start, state_change,
           coalesce(application_name, '') AS application_name
    FROM pg_stat_activity
    WHERE backend_type = 'client backend'
)
SELECT
    current_setting('server_version_num')::int AS version_num,
    current_setting('server_version') AS version,
    current_setting('max_connections')::int AS max_connections,
    current_setting('superuser_reserved_connections')::int AS superuser_reserved_connections,
    extract(epoch FROM pg_postmaster_start_time())::float8 AS postmaster_start_time,
    pg_is_in_recovery() AS in_recovery,
    current_database() AS current_database,
    (SELECT setting FROM pg_settings WHERE name = 'shared_preload_libraries') AS preload,
    (SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
      WHERE e.extname = 'pg_stat_statements') AS pgss_schema,
    (SELECT count(*) FROM act)::int AS client_backends,
    (SELECT json_agg(json_build_object(
        'datname', dbs.datname,
        'xact_commit', s.xact_commit, 'xact_rollback', s.xact_rollback,
        'blks_read', s.blks_read, 'blks_hit', s.blks_hit,
        'tup_returned', s.tup_returned, 'tup_fetched', s.tup_fetched,
        'tup_inserted', s.tup_inserted, 'tup_updated', s.tup_updated,
        'tup_deleted', s.tup_deleted, 'conflicts', s.conflicts,
        'temp_files', s.temp_files, 'temp_bytes', s.temp_bytes, 'deadlocks', s.deadlocks,
        'size_bytes', pg_database_size(dbs.oid)) ORDER BY dbs.datname)
      FROM dbs JOIN pg_stat_database s ON s.datid = dbs.oid) AS databases,
    (SELECT json_agg(json_build_object(
        'datname', c.datname, 'state', c.state, 'count', c.n, 'lock_waiters', c.lock_waiters))
      FROM (SELECT datname, coalesce(state, '') AS state, count(*) AS n,
                   count(*) FILTER (WHERE wait_event_type = 'Lock') AS lock_waiters
            FROM act WHERE datname IS NOT NULL GROUP BY 1, 2) c) AS connections,
    (SELECT json_agg(json_build_object(
        'application_name', a.application_name, 'transaction_age', a.xact_age,
        'idle_in_transaction_age', a.idle_age) ORDER BY a.xact_age DESC)
      FROM (SELECT application_name,
                   max(extract(epoch FROM now() - xact_start))::float8 AS xact_age,
                   max(extract(epoch FROM now() - state_change))
                     FILTER (WHERE state LIKE 'idle in transaction%')::float8 AS idle_age
            FROM act WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid()
            GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT $2) a) AS applications,
    CASE WHEN pg_is_in_recovery() THEN
        pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::float8
    END AS replica_lag_bytes,
    CASE WHEN pg_is_in_recovery() THEN
        CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0::float8
             ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 END
    END AS replica_lag_seconds,
    (SELECT json_agg(json_build_object(
        'application_name', r.application_name,
        'client_addr', coalesce(host(r.client_addr), ''),
        'lag_bytes', pg_wal_lsn_diff(
            CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()
                 ELSE pg_current_wal_lsn() END, r.replay_lsn)::float8,
        'lag_seconds', coalesce(extract(epoch FROM r.replay_lag), 0)::float8))
      FROM (SELECT s.application_name, s.client_addr, w.replay_lsn, w.replay_lag
            FROM pg_stat_get_wal_senders() w
            CROSS JOIN LATERAL pg_stat_get_activity(w.pid) AS s) r) AS standbys
"""

# One row, about the connected database only (these views are per database). Tables are the
# union of the top N by blocks read, the top N by rows read in sequential scans and the top N by
# dead rows (the ones vacuum is behind on); sizes are
# computed for those only. The size functions take an AccessShareLock on the table, its TOAST
# table and their indexes: a relation someone holds or awaits an ACCESS EXCLUSIVE lock on (a
# migration) gets no size this cycle instead of stalling the whole sample until lock_timeout.
TABLES = """
WITH locked AS MATERIALIZED (
    SELECT DISTINCT relation FROM pg_locks
    WHERE locktype = 'relation' AND mode = 'AccessExclusiveLock'
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
), t AS (
    SELECT s.relid, (SELECT c.reltoastrelid FROM pg_class c WHERE c.oid = s.relid) AS toastrelid,
           s.schemaname, s.relname, s.seq_scan, s.seq_tup_read,
           coalesce(s.idx_scan, 0) AS idx_scan, s.n_live_tup, s.n_dead_tup,
           extract(epoch FROM greatest(s.last_vacuum, s.last_autovacuum))::float8 AS last_vacuum,
           extract(epoch FROM greatest(s.last_analyze, s.last_autoanalyze))::float8
             AS last_analyze,
           coalesce(io.heap_blks_hit, 0) AS heap_blks_hit,
           coalesce(io.heap_blks_read, 0) AS heap_blks_read,
           coalesce(io.idx_blks_hit, 0) AS idx_blks_hit,
           coalesce(io.idx_blks_read, 0) AS idx_blks_read
    FROM pg_stat_user_tables s JOIN pg_statio_user_tables io USING (relid)
), pick AS (
    (SELECT relid FROM t
      ORDER BY heap_blks_read + idx_blks_read DESC, heap_blks_hit + idx_blks_hit DESC, relid
      LIMIT $1)
    UNION
    (SELECT relid FROM t ORDER BY seq_tup_read DESC, seq_scan DESC, relid LIMIT $1)
    UNION
    (SELECT relid FROM t WHERE n_dead_tup > 0 ORDER BY n_dead_tup DESC, relid LIMIT $1)
)
SELECT
    current_database() AS current_database,
    (SELECT json_agg(json_build_object(
        'schemaname', t.schemaname, 'relname', t.relname,
        'seq_scan', t.seq_scan, 'seq_tup_read', t.seq_tup_read, 'idx_scan', t.idx_scan,
        'n_live_tup', t.n_live_tup, 'n_dead_tup', t.n_dead_tup,
        'last_vacuum', t.last_vacuum, 'last_analyze', t.last_analyze,
        'heap_blks_hit', t.heap_blks_hit, 'heap_blks_read', t.heap_blks_read,
        'idx_blks_hit', t.idx_blks_hit, 'idx_blks_read', t.idx_blks_read,
        'size_bytes', CASE WHEN EXISTS (
            SELECT 1 FROM locked l WHERE l.relation IN (
                SELECT c.oid FROM pg_class c WHERE c.oid IN (t.relid, t.toastrelid)
                UNION ALL
                SELECT i.indexrelid FROM pg_index i WHERE i.indrelid IN (t.relid, t.toastrelid)))
            THEN NULL ELSE pg_total_relation_size(t.relid) END) ORDER BY t.schemaname, t.relname)
      FROM t JOIN pick USING (relid)) AS tables,
    (SELECT json_agg(json_build_object(
        'schemaname', u.schemaname, 'relname', u.relname, 'indexrelname', u.indexrelname,
        'size_bytes', u.size_bytes) ORDER BY u.size_bytes DESC, u.indexrelname)
      FROM (SELECT i.schemaname, i.relname, i.indexrelname,
                   pg_relation_size(i.indexrelid) AS size_bytes
            FROM pg_stat_user_indexes i JOIN pg_index x ON x.indexrelid = i.indexrelid
            WHERE i.idx_scan = 0 AND NOT x.indisunique AND NOT x.indisprimary
              AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
              AND i.indexrelid NOT IN (SELECT relation FROM locked)
            ORDER BY 4 DESC, 3 LIMIT $1) u) AS unused_indexes
"""


def quote_ident(name: str) -> str:
    """An SQL identifier, quoted (the extension's schema comes from the catalog)."""
    return '"' + name.replace('"', '""') + '"'


def statements_sql(schema: str, version_num: int, changed_only: bool = False) -> str:
    """Every pg_stat_statements entry (one row each) and one row of the view's info.

    ``pg_stat_statements(false)`` skips reading the query-text file. The accounting of the
    entries (deltas, top N, ``other``) happens in :mod:`exporter.collectors.postgres_statements`.
    Entries whose queryid, database or role is not visible arrive with NULLs and only ever count
    in ``other``. The info row (``is_info``) carries ``dealloc`` and ``stats_reset`` (on 14+) and
    ``entries``, how many visible entries the view holds; with no entry at all it is the only row.

    ``changed_only``: only the entries whose calls or stats_since differ from what the
    exporter knows, given as array literals in ``$2`` .. ``$7`` (queryid, dbid, userid,
    toplevel, calls, stats_since: :meth:`StatementAccounts.known`), and every hidden entry. Text,
    because asyncpg encodes an array parameter element by element in Python: thousands of
    entries cost more that way than reading them all.
    """
    q = quote_ident(schema)
    exec_time = "total_exec_time" if version_num >= 130000 else "total_time"
    toplevel = "p.toplevel" if version_num >= 140000 else "true"
    since = "extract(epoch FROM p.stats_since)::float8" if version_num >= 170000 else "NULL::float8"
    # 17 split blk_read_time/blk_write_time into shared_ and local_: their sum is the old column
    if version_num >= 170000:
        blk_read = "p.shared_blk_read_time + p.local_blk_read_time"
        blk_write = "p.shared_blk_write_time + p.local_blk_write_time"
    else:
        blk_read, blk_write = "p.blk_read_time", "p.blk_write_time"
    dealloc, reset, info_from = "NULL::int8", "NULL::float8", ""
    if version_num >= 140000:
        dealloc, reset = "i.dealloc", "extract(epoch FROM i.stats_reset)::float8"
        info_from = f"\n  FROM {q}.pg_stat_statements_info i"
    known, changed = "", ""
    if changed_only:
        known = """
  LEFT JOIN unnest($2::text::int8[], $3::text::int8[], $4::text::int8[], $5::text::bool[],
                   $6::text::int8[], $7::text::float8[])
       AS k(queryid, dbid, userid, toplevel, calls, since)
    ON k.queryid = e.queryid AND k.dbid = e.dbid AND k.userid = e.userid
       AND k.toplevel = e.toplevel"""
        changed = """
   AND (e.queryid IS NULL OR k.calls IS DISTINCT FROM e.calls
        OR k.since IS DISTINCT FROM e.since)"""
    return f"""
WITH e AS (
  SELECT p.queryid, p.dbid::int8 AS dbid, p.userid::int8 AS userid, {toplevel} AS toplevel,
         d.datname::text AS datname, r.rolname::text AS rolname, p.calls,
         p.{exec_time}::float8 AS exec_ms, p.rows, p.shared_blks_hit, p.shared_blks_read,
         ({blk_read})::float8 AS blk_read_ms, ({blk_write})::float8 AS blk_write_ms,
         {since} AS since
    FROM {q}.pg_stat_statements(false) p
    LEFT JOIN pg_database d ON d.oid = p.dbid
    LEFT JOIN pg_roles r ON r.oid = p.userid
   WHERE $1::text[] IS NULL OR d.datname = ANY($1::text[])
)
SELECT false AS is_info, e.queryid, e.dbid, e.userid, e.toplevel, e.datname, e.rolname,
       e.calls, e.exec_ms, e.rows, e.shared_blks_hit, e.shared_blks_read, e.blk_read_ms,
       e.blk_write_ms, e.since, NULL::int8 AS dealloc, NULL::float8 AS stats_reset,
       NULL::int8 AS entries
  FROM e{known}
 WHERE true{changed}
UNION ALL
SELECT true, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       {dealloc}, {reset}, (SELECT count(*) FROM e WHERE e.queryid IS NOT NULL){info_from}
"""


def statement_text_sql(schema: str) -> str:
    """Normalized text of the given queryids (``$1``); run only for listed ids not yet known."""
    return f"""
SELECT DISTINCT ON (queryid) queryid, query
FROM {quote_ident(schema)}.pg_stat_statements(true)
WHERE queryid = ANY($1::bigint[])
ORDER BY queryid, calls DESC
"""
