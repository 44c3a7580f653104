//! One-time enrollment codes in the database ([`DbCodeBook`]), so a store
//! may redeem its code at any hub process over it, and only once:
//! `tally-hub enroll-code --database` adds a code's hash; a redemption
//! deletes the row it matches in one statement, so of two processes
//! racing on one code only one sees it deleted. Codes are rare (one per
//! store enrolled): each call opens a connection of its own. Blocking.

use super::conn::{to_i64, DatabaseUrl};
use super::txn::int;
use super::{schema, with_connection};
use crate::pki::{BookAnswer, CodeBook};
use crate::storage::StorageError;

/// The enrollment codes kept at a database. See the module docs.
#[derive(Debug, Clone)]
pub struct DbCodeBook {
    url: DatabaseUrl,
}

impl DbCodeBook {
    /// The codes kept at `url`.
    pub fn new(url: DatabaseUrl) -> Self {
        Self { url }
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
        with_connection(&self.url, |conn| {
            schema::migrate(conn)?;
            conn.execute(
                "DELETE FROM hub_enroll_codes WHERE expires_ms <= $1",
                &[&ms(now_ms)?],
            )?;
            conn.execute(
                "INSERT INTO hub_enroll_codes (hash, store, expires_ms) VALUES ($1, $2, $3)",
                &[&hash.as_slice(), &store, &ms(expires_ms)?],
            )?;
            Ok::<_, StorageError>(())
        })
        .map_err(|e| e.to_string())
    }

    fn redeem(&self, hash: &[u8; 32], store: &str, now_ms: u64) -> Result<BookAnswer, String> {
        with_connection(&self.url, |conn| {
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
            Ok::<_, StorageError>(BookAnswer::WrongStore)
        })
        .map_err(|e| e.to_string())
    }
}
