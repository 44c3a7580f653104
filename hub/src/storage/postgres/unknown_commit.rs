//! A COMMIT that got no answer, resolved: each writing batch inserts a
//! random token (`hub_commit_marks`) in its own transaction, and notes
//! its session (process id and start). When the connection breaks during
//! the COMMIT, a connection of its own waits until that session is gone
//! (ending it if the server still runs it), then looks for the token:
//! there, the batch committed (each write gets its own answer); not
//! there, it did not (the writer runs it again, as after a lost race).
//! Only what cannot be learnt stays `outcome_unknown`.
//!
//! # Design constraints
//! - Definitive, whatever happened to the server: once the old session is
//!   gone, its transaction committed or never will, and a committed
//!   one's rows are seen by every new session, after a crash-restart's
//!   recovery too. (A transaction id is no such proof: a server that
//!   crashed may give the id of a transaction it lost to another.)
//! - Never guesses: a session still there after [`RESOLVE_FOR`], or a
//!   server that cannot be asked, leaves the outcome unknown; so does a
//!   token seen while synchronous standbys are configured (their
//!   confirmation, which a 2xx promises, is not known).
//! - The old session is ended only if it is that session (its process id
//!   and its start): a process id reused meanwhile is never ended.
//! - One token per process stays: each batch deletes the one before.

use std::time::{Duration, Instant};

use tracing::warn;
use uuid::Uuid;

use super::conn::PgConn;
use crate::storage::{RetryReason, StorageError};

/// How long the old session is waited for (after it was ended).
pub const RESOLVE_FOR: Duration = Duration::from_secs(5);

/// What became of a batch whose COMMIT got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitStatus {
    /// It committed.
    Committed,
    /// It did not, and never will.
    Aborted,
    /// Its session still runs.
    InProgress,
}

/// A writing batch's token and session, noted before its COMMIT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Noted {
    /// The token it inserted (none: it wrote nothing, so its COMMIT
    /// changes nothing).
    pub token: Option<Uuid>,
    /// `pg_backend_pid()`: the session's server process.
    pub pid: i32,
    /// When that session started (with the pid, which session it is).
    pub session_start: String,
}

/// Notes the batch `conn` runs: if it wrote anything, inserts its token,
/// and deletes `previous` (the last batch's of this process, committed).
pub(crate) fn note(conn: &PgConn, previous: Option<Uuid>) -> Result<Noted, StorageError> {
    let row = conn.query_one(
        "SELECT txid_current_if_assigned() IS NOT NULL, pg_backend_pid(),
                (SELECT backend_start::text FROM pg_stat_activity WHERE pid = pg_backend_pid())",
        &[],
    )?;
    let wrote: bool = row.get(0);
    let token = if wrote {
        let token = Uuid::now_v7();
        conn.execute(
            "INSERT INTO hub_commit_marks (token) VALUES ($1)",
            &[&token],
        )?;
        if let Some(previous) = previous {
            conn.execute(
                "DELETE FROM hub_commit_marks WHERE token = $1",
                &[&previous],
            )?;
        }
        Some(token)
    } else {
        None
    };
    Ok(Noted {
        token,
        pid: row.get(1),
        session_start: row.get::<_, Option<String>>(2).unwrap_or_default(),
    })
}

/// What became of the batch `noted` (with a token), asked on `conn`.
pub(crate) fn status(conn: &PgConn, noted: &Noted) -> Result<CommitStatus, StorageError> {
    let Some(token) = noted.token else {
        return Ok(CommitStatus::Aborted);
    };
    let row = conn.query_one(
        "SELECT EXISTS (SELECT 1 FROM pg_stat_activity
                        WHERE pid = $1 AND backend_start::text = $2),
                EXISTS (SELECT 1 FROM hub_commit_marks WHERE token = $3)",
        &[&noted.pid, &noted.session_start, &token],
    )?;
    let (running, marked): (bool, bool) = (row.get(0), row.get(1));
    Ok(match (marked, running) {
        (true, _) => CommitStatus::Committed,
        (false, true) => CommitStatus::InProgress,
        (false, false) => CommitStatus::Aborted,
    })
}

/// What became of the batch `noted`, asked of the database at `url` on a
/// connection of its own (for tools and tests).
pub fn commit_status(
    url: &super::DatabaseUrl,
    noted: &Noted,
) -> Result<CommitStatus, StorageError> {
    super::with_connection(url, |conn| status(conn, noted))
}

/// Resolves the batch `noted` whose COMMIT failed with `why` (see the
/// module docs), on a connection `connect` opens: `Ok` if it committed;
/// [`RetryReason::RolledBack`] if it did not; else
/// [`StorageError::CommitUnknown`].
pub(crate) fn resolve(
    noted: &Noted,
    why: String,
    connect: impl Fn() -> Result<PgConn, StorageError>,
) -> Result<(), StorageError> {
    let unknown = |detail: &str| StorageError::CommitUnknown(format!("{why}; {detail}"));
    if noted.token.is_none() {
        // It wrote nothing: committed or not, nothing changed.
        return Ok(());
    }
    let conn = match connect() {
        Ok(c) => c,
        Err(e) => return Err(unknown(&format!("its outcome could not be asked: {e}"))),
    };
    let standbys: String =
        match conn.query_one("SELECT current_setting('synchronous_standby_names')", &[]) {
            Ok(row) => row.get(0),
            Err(e) => return Err(unknown(&format!("its outcome could not be asked: {e}"))),
        };
    let deadline = Instant::now() + RESOLVE_FOR;
    let mut ended = false;
    loop {
        match status(&conn, noted) {
            Ok(CommitStatus::Committed) if !standbys.trim().is_empty() => {
                return Err(unknown(
                    "committed on the primary; its synchronous standbys' confirmation is not known",
                ));
            }
            Ok(CommitStatus::Committed) => {
                warn!(%why, "A commit got no answer; the database shows it committed.");
                return Ok(());
            }
            Ok(CommitStatus::Aborted) => {
                warn!(%why, "A commit got no answer; the database shows it was not committed.");
                // Nothing written: the batch may run again, on a new
                // connection.
                return Err(StorageError::Retry(RetryReason::RolledBack));
            }
            Ok(CommitStatus::InProgress) if Instant::now() < deadline => {
                if !ended {
                    // The session still runs (the server has not seen the
                    // connection go): ended, it commits or it does not.
                    ended = true;
                    let _ = conn.query_one(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                         WHERE pid = $1 AND backend_start::text = $2",
                        &[&noted.pid, &noted.session_start],
                    );
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            Ok(CommitStatus::InProgress) => {
                return Err(unknown("its session still runs on the database"))
            }
            Err(e) => return Err(unknown(&format!("its outcome could not be asked: {e}"))),
        }
    }
}
