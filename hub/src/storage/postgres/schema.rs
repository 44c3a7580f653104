//! The hub's schema on PostgreSQL, versioned: each migration is one SQL
//! file under `migrations/`, applied once, in order, in a transaction of
//! its own, and recorded in `hub_schema_migrations`. Every hub process
//! applies what is missing when it starts (`tally-hub migrate` does it
//! ahead of time); a session advisory lock makes concurrent starts take
//! turns, so a migration is never applied twice. A database whose schema
//! is newer than the binary is refused, never touched: at start, and by
//! each write batch of a process already running (a rolling upgrade),
//! migrations taking the write lock as the batches do.

use super::conn::PgConn;
use crate::storage::StorageError;

/// Every migration, in order: (version, name, SQL).
pub(super) const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "init", include_str!("migrations/0001_init.sql")),
    (
        2,
        "revocations",
        include_str!("migrations/0002_revocations.sql"),
    ),
    (
        3,
        "enroll codes",
        include_str!("migrations/0003_enroll_codes.sql"),
    ),
    (
        4,
        "held events in bytea",
        include_str!("migrations/0004_held_events_bytea.sql"),
    ),
    (
        5,
        "issued certificates",
        include_str!("migrations/0005_issued.sql"),
    ),
    (
        6,
        "acknowledged exceptions",
        include_str!("migrations/0006_exceptions_acked.sql"),
    ),
    (
        7,
        "commit marks",
        include_str!("migrations/0007_commit_marks.sql"),
    ),
    (
        8,
        "link order",
        include_str!("migrations/0008_link_order.sql"),
    ),
];

/// The advisory lock key migrations take turns on ("tally-mi" in ASCII).
const MIGRATION_LOCK: i64 = 0x7461_6c6c_792d_6d69;

/// The schema version this binary runs on.
pub fn latest() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.0)
}

/// What a migration run did ([`PgHub::migrate`](super::PgHub::migrate)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// The schema version found (0: an empty database).
    pub from: i32,
    /// The schema version now.
    pub to: i32,
}

/// Brings the database's schema to [`latest`]. See the module docs.
pub(crate) fn migrate(conn: &PgConn) -> Result<MigrationReport, StorageError> {
    conn.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])?;
    let applied = apply_missing(conn);
    let unlocked = conn.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]);
    let report = applied?;
    unlocked?;
    Ok(report)
}

fn apply_missing(conn: &PgConn) -> Result<MigrationReport, StorageError> {
    conn.batch(
        "CREATE TABLE IF NOT EXISTS hub_schema_migrations (
             version    integer PRIMARY KEY,
             name       text    NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )?;
    let from = current(conn)?;
    if from > latest() {
        return Err(StorageError::Db(format!(
            "the database's schema is version {from}, newer than this hub's ({}): run a newer tally-hub",
            latest()
        )));
    }
    for &(version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > from) {
        conn.in_transaction(|| {
            // Under the write lock: a running hub process's batch either
            // committed before it or sees the new version after it
            // ([`check_not_newer`]).
            conn.execute("SELECT pg_advisory_xact_lock($1)", &[&super::WRITE_LOCK])?;
            conn.batch(sql)?;
            conn.execute(
                "INSERT INTO hub_schema_migrations (version, name) VALUES ($1, $2)",
                &[&version, &name],
            )
        })
        .map_err(|e| StorageError::Db(format!("migration {version} ({name}) failed: {e}")))?;
        tracing::info!(version, name, "database schema migrated");
    }
    Ok(MigrationReport { from, to: latest() })
}

/// Refuses to write to a database a newer hub migrated meanwhile (a
/// rolling upgrade): this process's writes would follow the old rules.
/// Run in each write batch, under the write lock.
pub(crate) fn check_not_newer(conn: &PgConn) -> Result<(), StorageError> {
    let version = current(conn)?;
    if version > latest() {
        return Err(StorageError::Db(format!(
            "the database's schema is version {version}, newer than this hub process's ({}): \
             a newer tally-hub migrated it; this process writes nothing until it is upgraded",
            latest()
        )));
    }
    Ok(())
}

/// The schema version the database is at (0: none applied).
pub(crate) fn current(conn: &PgConn) -> Result<i32, StorageError> {
    let row = conn.query_one(
        "SELECT coalesce(max(version), 0) FROM hub_schema_migrations",
        &[],
    )?;
    row.try_get(0)
        .map_err(|e| StorageError::corrupt("hub_schema_migrations", e))
}
