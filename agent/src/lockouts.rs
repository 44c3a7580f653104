//! Wrong-PIN streaks kept across restarts: `lockouts.redb` in the data
//! directory, one row per manager or cashier with a streak (kind and id →
//! wrong PINs in a row, locked out until when by the wall clock).
//!
//! Kept in memory only, a lockout ended with the process: whoever could
//! restart the agent (power-cycle the POS box) got [`FREE_FAILURES`]
//! guesses more each time instead of waiting out lockouts of up to 15
//! minutes. [`Managers`](crate::managers::Managers) writes each attempt's
//! count here, committed (fsync'd) before the PIN is checked, and reads
//! the rows back at start.
//!
//! A file of its own, not a table of the store's database: that one has a
//! single writer (the committer), and a PIN check must not wait for a
//! batch of sales. redb locks it like the store's database: one agent per
//! data directory.
//!
//! Row: key `kind/id` (kind `manager` or `cashier`) → wrong (4 bytes,
//! little-endian), locked until (8, Unix ms; 0: not locked).
//!
//! [`FREE_FAILURES`]: crate::managers::FREE_FAILURES

use std::path::{Path, PathBuf};

use tally_store::redb::{self, ReadableDatabase, TableDefinition};

/// The file, in the data directory.
pub const LOCKOUTS_FILE: &str = "lockouts.redb";

const TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("pin_streaks");

/// One streak as kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kept {
    /// Wrong PINs in a row.
    pub wrong: u32,
    /// Locked out until (Unix ms), if locked.
    pub locked_until_ms: Option<u64>,
}

impl Kept {
    fn encode(&self) -> [u8; 12] {
        let mut out = [0u8; 12];
        out[..4].copy_from_slice(&self.wrong.to_le_bytes());
        out[4..].copy_from_slice(&self.locked_until_ms.unwrap_or(0).to_le_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let bytes: &[u8; 12] = bytes.try_into().ok()?;
        let mut wrong = [0u8; 4];
        wrong.copy_from_slice(&bytes[..4]);
        let mut until = [0u8; 8];
        until.copy_from_slice(&bytes[4..]);
        let until = u64::from_le_bytes(until);
        Some(Self {
            wrong: u32::from_le_bytes(wrong),
            locked_until_ms: (until != 0).then_some(until),
        })
    }
}

/// Why the streaks cannot be read or kept.
#[derive(Debug, thiserror::Error)]
#[error("the PIN lockouts file {path}: {source}")]
pub struct LockoutError {
    /// The file.
    pub path: PathBuf,
    /// What redb or the system said.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// The open file (locked while this value lives).
#[derive(Debug)]
pub struct LockoutStore {
    path: PathBuf,
    db: redb::Database,
}

impl LockoutStore {
    /// Opens (or creates) the file in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Self, LockoutError> {
        let path = data_dir.join(LOCKOUTS_FILE);
        let existed = path.exists();
        let db = redb::Database::create(&path).map_err(|e| error(&path, e))?;
        if !existed {
            // The new file's name is durable too.
            tally_store::sync_parent_dir(&path).map_err(|e| LockoutError {
                path: path.clone(),
                source: Box::new(e),
            })?;
        }
        Ok(Self { path, db })
    }

    /// The streaks kept for `kind` (`manager`, `cashier`), by id. A row
    /// that cannot be read is left out (its owner starts afresh).
    pub fn load(&self, kind: &str) -> Result<Vec<(String, Kept)>, LockoutError> {
        let txn = self.db.begin_read().map_err(|e| error(&self.path, e))?;
        let table = match txn.open_table(TABLE) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(error(&self.path, e)),
        };
        let prefix = format!("{kind}/");
        let mut out = Vec::new();
        for row in table
            .range(prefix.as_str()..)
            .map_err(|e| error(&self.path, e))?
        {
            let (key, value) = row.map_err(|e| error(&self.path, e))?;
            let Some(id) = key.value().strip_prefix(&prefix) else {
                break;
            };
            match Kept::decode(value.value()) {
                Some(kept) => out.push((id.to_string(), kept)),
                None => tracing::warn!(kind, id, "A PIN streak that cannot be read is ignored."),
            }
        }
        Ok(out)
    }

    /// Keeps `kept` as the streak of `kind` `id` (none: it ended),
    /// committed before this returns.
    pub fn put(&self, kind: &str, id: &str, kept: Option<Kept>) -> Result<(), LockoutError> {
        let key = format!("{kind}/{id}");
        let txn = self.db.begin_write().map_err(|e| error(&self.path, e))?;
        {
            let mut table = txn.open_table(TABLE).map_err(|e| error(&self.path, e))?;
            match kept {
                Some(k) => {
                    table
                        .insert(key.as_str(), k.encode().as_slice())
                        .map_err(|e| error(&self.path, e))?;
                }
                None => {
                    table
                        .remove(key.as_str())
                        .map_err(|e| error(&self.path, e))?;
                }
            }
        }
        txn.commit().map_err(|e| error(&self.path, e))
    }
}

fn error(path: &Path, e: impl Into<redb::Error>) -> LockoutError {
    let e: redb::Error = e.into();
    LockoutError {
        path: path.to_path_buf(),
        source: Box::new(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streaks_are_kept_per_kind_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = LockoutStore::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert!(store.load("manager").unwrap_or_default().is_empty());
        let locked = Kept {
            wrong: 6,
            locked_until_ms: Some(1_780_000_060_000),
        };
        let counting = Kept {
            wrong: 2,
            locked_until_ms: None,
        };
        for (kind, id, kept) in [
            ("manager", "ann", locked),
            ("manager", "bo", counting),
            ("cashier", "ann", counting),
        ] {
            store
                .put(kind, id, Some(kept))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        store
            .put("manager", "bo", None)
            .unwrap_or_else(|e| panic!("{e}"));
        drop(store);
        let store = LockoutStore::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            store.load("manager").unwrap_or_default(),
            vec![("ann".to_string(), locked)]
        );
        assert_eq!(
            store.load("cashier").unwrap_or_default(),
            vec![("ann".to_string(), counting)]
        );
        // One agent per data directory.
        assert!(LockoutStore::open(dir.path()).is_err());
    }
}
