//! One-time enrollment codes in the database ([`DbCodeBook`]), so a store
//! may redeem its code at any hub process over it, and only once:
//! `tally-hub enroll-code --database` adds a code's hash; a redemption
//! deletes the row it matches in one statement, so of two processes
//! racing on one code only one sees it deleted. Codes are rare (one per
//! store enrolled), and anyone may try one (`POST /v1/enroll` is
//! anonymous): a process keeps **one** connection for them, opened on
//! first use and again if it broke, and takes them one at a time, so
//! enrollment attempts can never take the database's connections from
//! the hub's writers and readers. Blocking.

use std::sync::Mutex;

use super::conn::{to_i64, DatabaseUrl, PgConn};
use super::schema;
use super::txn::int;
use crate::pki::{BookAnswer, CodeBook};
use crate::storage::StorageError;

/// The enrollment codes kept at a database. See the module docs.
#[derive(Debug)]
pub struct DbCodeBook {
    url: DatabaseUrl,
    /// The connection and the runtime that drives it, once opened.
    conn: Mutex<Option<(tokio::runtime::Runtime, PgConn)>>,
}

impl DbCodeBook {
    /// The codes kept at `url` (no connection until first used).
    pub fn new(url: DatabaseUrl) -> Self {
        Self {
            url,
            conn: Mutex::new(None),
        }
    }

    /// Runs `work` on the book's connection, one call at a time.
    fn with_connection<T>(
        &self,
        work: impl FnOnce(&PgConn) -> Result<T, StorageError>,
    ) -> Result<T, String> {
        let mut held = self
            .conn
            .lock()
            .map_err(|_| "the enrollment codes' connection is poisoned".to_string())?;
        if held.as_ref().is_none_or(|(_, c)| c.is_closed()) {
            if let Some((rt, conn)) = held.take() {
                drop(conn);
                rt.shutdown_background();
            }
            let rt = super::runtime().map_err(|e| e.to_string())?;
            let conn = PgConn::connect(&self.url, rt.handle()).map_err(|e| e.to_string())?;
            schema::migrate(&conn).map_err(|e| e.to_string())?;
            *held = Some((rt, conn));
        }
        let (_, conn) = held
            .as_ref()
            .ok_or_else(|| "no connection for enrollment codes".to_string())?;
        work(conn).map_err(|e| e.to_string())
    }
}

impl Drop for DbCodeBook {
    fn drop(&mut self) {
        if let Ok(mut held) = self.conn.lock() {
            if let Some((rt, conn)) = held.take() {
                drop(conn);
                rt.shutdown_background();
            }
        }
    }
}

fn ms(v: u64) -> Result<i64, StorageError> {
    to_i64("time", v)
}

impl CodeBook for DbCodeBook {
    fn add(
        &self,
        hash: &[u8; 32],
        store: &str,
        expires_ms: u64,
        now_ms: u64,
    ) -> Result<(), String> {
        self.with_connection(|conn| {
            conn.execute(
                "DELETE FROM hub_enroll_codes WHERE expires_ms <= $1",
                &[&ms(now_ms)?],
            )?;
            conn.execute(
                "INSERT INTO hub_enroll_codes (hash, store, expires_ms) VALUES ($1, $2, $3)",
                &[&hash.as_slice(), &store, &ms(expires_ms)?],
            )?;
            Ok(())
        })
    }

    fn redeem(&self, hash: &[u8; 32], store: &str, now_ms: u64) -> Result<BookAnswer, String> {
        self.with_connection(|conn| {
            let now = ms(now_ms)?;
            let taken = conn.query_opt(
                "DELETE FROM hub_enroll_codes WHERE hash = $1 AND store = $2 AND expires_ms > $3
                 RETURNING 1",
                &[&hash.as_slice(), &store, &now],
            )?;
            if taken.is_some() {
                return Ok(BookAnswer::Redeemed);
            }
            // Why not: the code as it stands now (gone, another store's,
            // or expired; an expired one is removed).
            let Some(row) = conn.query_opt(
                "SELECT store, expires_ms FROM hub_enroll_codes WHERE hash = $1",
                &[&hash.as_slice()],
            )?
            else {
                return Ok(BookAnswer::Unknown);
            };
            if int(&row, 1, "hub_enroll_codes")? <= now_ms {
                conn.execute(
                    "DELETE FROM hub_enroll_codes WHERE hash = $1",
                    &[&hash.as_slice()],
                )?;
                return Ok(BookAnswer::Expired);
            }
            Ok(BookAnswer::WrongStore)
        })
    }
}
