//! Revoked certificates in the database, so every hub process over it
//! refuses them at once: `tally-hub revoke --database` records a store's
//! serials ([`record`]) and notifies channel [`CHANNEL`] in the same
//! transaction; each hub process follows the list ([`DbRevocations`]):
//! it LISTENs first, then loads the table, then adds each notified
//! serial as it comes, so nothing committed in between is missed.
//!
//! The certificates hub processes issue are recorded here too
//! ([`record_issued`]), so a revocation at any host covers every
//! certificate of the store ([`issued_serials`]), the renewal limit
//! counts every host's ([`issued_last_day`]), and a renewal checks
//! the database itself ([`is_revoked_at`]) after recording, so it cannot
//! slip past a revocation running at the same time (`crate::pki`'s
//! revocation order).
//!
//! Fails closed: while a hub process has no connection following the
//! list (the database unreachable), its check is an error (the request
//! is refused as unavailable), never "not revoked"; on reconnecting it
//! loads the whole list again.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::conn::{db_err, DatabaseUrl, PgConn};
use super::listen::listening;
use super::{schema, with_connection};
use crate::pki::RevocationList;
use crate::storage::StorageError;

/// The channel a revocation is announced on (payload: the serial).
pub const CHANNEL: &str = "tally_revocations";

/// Records `serials` (hex) of `store` as revoked at `url` and announces
/// each new one; answers how many were new. Blocking.
pub fn record(url: &DatabaseUrl, store: &str, serials: &[String]) -> Result<usize, StorageError> {
    with_connection(url, |conn| {
        schema::migrate(conn)?;
        conn.in_transaction(|| record_on(conn, store, serials))
    })
}

/// `record`'s writes, in the caller's transaction.
fn record_on(conn: &PgConn, store: &str, serials: &[String]) -> Result<usize, StorageError> {
    let mut added = 0;
    for serial in serials {
        let serial = serial.to_ascii_lowercase();
        let n = conn.execute(
            "INSERT INTO hub_revocations (serial, store) VALUES ($1, $2)
             ON CONFLICT (serial) DO NOTHING",
            &[&serial, &store],
        )?;
        if n == 1 {
            added += 1;
            conn.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &serial])?;
        }
    }
    Ok(added)
}

/// Records that certificate `serial` (hex) was issued to `store`, at
/// `url`. Blocking.
pub fn record_issued(url: &DatabaseUrl, store: &str, serial: &str) -> Result<(), StorageError> {
    with_connection(url, |conn| {
        conn.execute(
            "INSERT INTO hub_issued (serial, store) VALUES ($1, $2)
             ON CONFLICT (serial) DO NOTHING",
            &[&serial.to_ascii_lowercase(), &store],
        )?;
        Ok(())
    })
}

/// The serials of the certificates issued to `store` as recorded at
/// `url`, in order. Blocking.
pub fn issued_serials(url: &DatabaseUrl, store: &str) -> Result<Vec<String>, StorageError> {
    with_connection(url, |conn| {
        schema::migrate(conn)?;
        conn.query(
            "SELECT serial FROM hub_issued WHERE store = $1 ORDER BY serial",
            &[&store],
        )?
        .iter()
        .map(|r| {
            r.try_get(0)
                .map_err(|e| StorageError::corrupt("hub_issued", e))
        })
        .collect()
    })
}

/// The certificates recorded at `url` as issued to `store` in the
/// database's last 24 hours: each serial and how long ago (ms, by the
/// database's clock, so hosts' clocks do not matter). Blocking.
pub fn issued_last_day(url: &DatabaseUrl, store: &str) -> Result<Vec<(String, u64)>, StorageError> {
    with_connection(url, |conn| {
        conn.query(
            "SELECT serial,
                    greatest(0, (extract(epoch FROM now() - issued_at) * 1000))::bigint
             FROM hub_issued
             WHERE store = $1 AND issued_at > now() - interval '24 hours'",
            &[&store],
        )?
        .iter()
        .map(|r| {
            let serial: String = r
                .try_get(0)
                .map_err(|e| StorageError::corrupt("hub_issued", e))?;
            let age: i64 = r
                .try_get(1)
                .map_err(|e| StorageError::corrupt("hub_issued", e))?;
            Ok((serial, u64::try_from(age).unwrap_or(0)))
        })
        .collect()
    })
}

/// Whether `serial` is revoked at `url`, read now (not a process's copy
/// of the list). Blocking.
pub fn is_revoked_at(url: &DatabaseUrl, serial: &str) -> Result<bool, StorageError> {
    with_connection(url, |conn| {
        Ok(!conn
            .query(
                "SELECT 1 FROM hub_revocations WHERE serial = $1",
                &[&serial.to_ascii_lowercase()],
            )?
            .is_empty())
    })
}

/// The revoked serials as this hub process knows them; `None` while it
/// is not following the list.
#[derive(Debug)]
pub struct DbRevocations {
    url: DatabaseUrl,
    known: Mutex<Option<HashSet<String>>>,
}

impl DbRevocations {
    /// Starts following the list at `url` on the current runtime, and
    /// waits (up to 10 s) until it is loaded.
    pub async fn start(url: DatabaseUrl) -> Result<Arc<Self>, StorageError> {
        let this = Arc::new(Self {
            url: url.clone(),
            known: Mutex::new(None),
        });
        tokio::spawn(follow(this.clone(), url));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !this.loaded() {
            if tokio::time::Instant::now() >= deadline {
                return Err(StorageError::Db(
                    "could not load the revocation list from the database in 10 s".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(this)
    }

    fn loaded(&self) -> bool {
        self.known.lock().is_ok_and(|k| k.is_some())
    }

    fn set(&self, known: Option<HashSet<String>>) {
        if let Ok(mut k) = self.known.lock() {
            *k = known;
        }
    }
}

impl RevocationList for DbRevocations {
    fn is_revoked(&self, serial: &str) -> Result<bool, String> {
        let known = self
            .known
            .lock()
            .map_err(|_| "the revocation list is poisoned".to_string())?;
        match known.as_ref() {
            Some(set) => Ok(set.contains(&serial.to_ascii_lowercase())),
            None => Err("the revocation list cannot be read from the database now".into()),
        }
    }

    fn is_followed(&self) -> bool {
        self.loaded()
    }

    fn record_issued(&self, store: &str, serial: &str) -> Result<(), String> {
        record_issued(&self.url, store, serial).map_err(|e| e.to_string())
    }

    fn is_revoked_now(&self, serial: &str) -> Result<bool, String> {
        is_revoked_at(&self.url, serial).map_err(|e| e.to_string())
    }

    fn issued_last_day(&self, store: &str) -> Result<Vec<(String, u64)>, String> {
        issued_last_day(&self.url, store).map_err(|e| e.to_string())
    }
}

/// Follows the list for as long as the process runs, reconnecting with
/// backoff (up to 5 s) after a failure.
async fn follow(this: Arc<DbRevocations>, url: DatabaseUrl) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let ended = session(&this, &url).await;
        this.set(None);
        if let Err(e) = ended {
            tracing::warn!(error = %e, "following the revocation list failed; retrying");
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// One connection's worth of following: LISTEN, load, then apply each
/// notification until the connection ends.
async fn session(this: &DbRevocations, url: &DatabaseUrl) -> Result<(), StorageError> {
    let (client, mut heard) = listening(url, &[CHANNEL]).await?;
    let rows = client
        .query("SELECT serial FROM hub_revocations", &[])
        .await
        .map_err(db_err)?;
    let mut set = HashSet::with_capacity(rows.len());
    for r in &rows {
        let serial: String = r
            .try_get(0)
            .map_err(|e| StorageError::corrupt("hub_revocations", e))?;
        set.insert(serial);
    }
    this.set(Some(set));
    while let Some(h) = heard.recv().await {
        if let Ok(mut known) = this.known.lock() {
            if let Some(set) = known.as_mut() {
                set.insert(h.payload.to_ascii_lowercase());
            }
        }
    }
    Err(StorageError::Db(
        "the database closed the connection".into(),
    ))
}
