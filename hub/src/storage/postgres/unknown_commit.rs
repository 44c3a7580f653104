//! A COMMIT that got no answer, resolved: the writer notes its
//! transaction's id and its session's process before it commits; when the
//! connection breaks during the COMMIT, a connection of its own asks the
//! server what became of the transaction (`txid_status`), ending the old
//! session first if it still holds it open. "Committed" is answered as a
//! commit; "aborted" as a lost race (nothing written: the writer runs the
//! batch again); only what the server cannot say stays
//! `outcome_unknown`.
//!
//! # Design constraints
//! - Never guesses: a transaction the server still shows in progress
//!   after its session was ended and [`RESOLVE_FOR`] has passed, or whose
//!   status the server no longer keeps, stays unknown; so does one the
//!   server says committed while synchronous standbys are configured
//!   (their confirmation is what a 2xx promises, and is not known), and
//!   any asked of a server that restarted since (or another one, after a
//!   failover), which may have given the id to another transaction.
//! - A batch that wrote nothing has no id: its COMMIT changes nothing,
//!   and its answers stand.
//! - The old session is ended only if it still runs this transaction
//!   (`pg_stat_activity`: its process and its transaction id): a process
//!   number reused meanwhile is never ended.

use std::time::{Duration, Instant};

use tracing::warn;

use super::conn::PgConn;
use crate::storage::{RetryReason, StorageError};

/// How long a transaction the server shows in progress is waited for.
pub const RESOLVE_FOR: Duration = Duration::from_secs(5);

/// What the server says became of a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitStatus {
    /// It committed.
    Committed,
    /// It was rolled back (or its session ended before its commit).
    Aborted,
    /// It still runs.
    InProgress,
    /// The server keeps no status for it (too old).
    Unknown,
}

/// Which transaction a batch ran as, in which server process and on
/// which run of the server, noted before its COMMIT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Noted {
    /// `txid_current_if_assigned()`: the transaction's id, with its epoch
    /// (none: it wrote nothing, so its COMMIT changes nothing).
    pub txid: Option<i64>,
    /// `pg_backend_pid()`: the session's server process.
    pub pid: i32,
    /// `pg_postmaster_start_time()`: a server restarted, or another one
    /// (a failover), may have given the id to another transaction.
    pub server_started: String,
}

/// The note of the transaction `conn` runs in.
pub(crate) fn note(conn: &PgConn) -> Result<Noted, StorageError> {
    let row = conn.query_one(
        "SELECT txid_current_if_assigned(), pg_backend_pid(), pg_postmaster_start_time()::text",
        &[],
    )?;
    Ok(Noted {
        txid: row.get(0),
        pid: row.get(1),
        server_started: row.get(2),
    })
}

/// What the database at `url` says became of transaction `txid` (on a
/// connection of its own: for tools and tests).
pub fn commit_status(url: &super::DatabaseUrl, txid: i64) -> Result<CommitStatus, StorageError> {
    super::with_connection(url, |conn| status(conn, txid))
}

/// What the server says became of transaction `txid`, asked on `conn`.
pub(crate) fn status(conn: &PgConn, txid: i64) -> Result<CommitStatus, StorageError> {
    let row = conn.query_one("SELECT txid_status($1)", &[&txid])?;
    let status: Option<String> = row.get(0);
    Ok(match status.as_deref() {
        Some("committed") => CommitStatus::Committed,
        Some("aborted") => CommitStatus::Aborted,
        Some("in progress") => CommitStatus::InProgress,
        _ => CommitStatus::Unknown,
    })
}

/// Resolves the batch `noted` whose COMMIT failed with `why` (see the
/// module docs), on a connection `connect` opens: `Ok` if it committed;
/// [`RetryReason::RolledBack`] if it aborted; else
/// [`StorageError::CommitUnknown`].
pub(crate) fn resolve(
    noted: &Noted,
    why: String,
    connect: impl Fn() -> Result<PgConn, StorageError>,
) -> Result<(), StorageError> {
    let unknown = |detail: &str| StorageError::CommitUnknown(format!("{why}; {detail}"));
    let Some(txid) = noted.txid else {
        // It wrote nothing: committed or not, nothing changed.
        return Ok(());
    };
    let conn = match connect() {
        Ok(c) => c,
        Err(e) => return Err(unknown(&format!("its outcome could not be asked: {e}"))),
    };
    let server = conn.query_one(
        "SELECT pg_postmaster_start_time()::text, current_setting('synchronous_standby_names')",
        &[],
    );
    let (started, standbys): (String, String) = match server {
        Ok(row) => (row.get(0), row.get(1)),
        Err(e) => return Err(unknown(&format!("its outcome could not be asked: {e}"))),
    };
    if started != noted.server_started {
        return Err(unknown(
            "the database restarted or failed over since: the id may name another transaction",
        ));
    }
    let deadline = Instant::now() + RESOLVE_FOR;
    let mut ended = false;
    loop {
        match status(&conn, txid) {
            Ok(CommitStatus::Committed) if !standbys.trim().is_empty() => {
                // Committed here, but a synchronous standby's
                // confirmation, which a 2xx promises, is not known.
                return Err(unknown(
                    "committed on the primary; its synchronous standbys' confirmation is not known",
                ));
            }
            Ok(CommitStatus::Committed) => {
                warn!(%why, txid, "A commit got no answer; the database says it committed.");
                return Ok(());
            }
            Ok(CommitStatus::Aborted) => {
                warn!(%why, txid, "A commit got no answer; the database says it was rolled back.");
                // Nothing written: the batch may run again, on a new
                // connection.
                return Err(StorageError::Retry(RetryReason::RolledBack));
            }
            Ok(CommitStatus::InProgress) if Instant::now() < deadline => {
                if !ended {
                    // The session still holds it (the server has not seen
                    // the connection go): ended, it commits or aborts.
                    ended = true;
                    let _ = conn.query_one(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                         WHERE pid = $1 AND backend_xid::text::bigint = $2 % 4294967296",
                        &[&noted.pid, &txid],
                    );
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            Ok(CommitStatus::InProgress) => return Err(unknown("the database still runs it")),
            Ok(CommitStatus::Unknown) => {
                return Err(unknown("the database keeps no status for it"))
            }
            Err(e) => return Err(unknown(&format!("its outcome could not be asked: {e}"))),
        }
    }
}
