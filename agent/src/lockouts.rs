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
//! data directory. Owner-only (0600), like the database.
//!
//! Never in the way of selling: a write that fails (redb then refuses
//! every later one) drops the open file, and the next attempt opens it
//! again; a file redb finds damaged or not its own at start is moved
//! aside (`lockouts.redb.unreadable-MS`) and the agent starts with no
//! streak, logged as an error (whoever can damage the file can do worse
//! on the box); an I/O error stops the start, streaks kept.
//!
//! Row: key `kind/id` (kind `manager` or `cashier`) → wrong (4 bytes,
//! little-endian), locked until (8, Unix ms; 0: not locked).
//!
//! [`FREE_FAILURES`]: crate::managers::FREE_FAILURES

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tally_store::redb::{self, ReadableDatabase, TableDefinition};

/// The file, in the data directory.
pub const LOCKOUTS_FILE: &str = "lockouts.redb";

const TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("pin_streaks");

/// One streak as kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
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

/// One kind's streaks as kept: id and streak.
pub type Streaks = Vec<(String, Kept)>;

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

/// The file (locked while this value lives).
#[derive(Debug)]
pub struct LockoutStore {
    path: PathBuf,
    /// Open, or dropped after a failed write (opened again when next
    /// needed).
    db: Mutex<Option<redb::Database>>,
}

impl LockoutStore {
    /// Opens (or creates) the file in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Self, LockoutError> {
        let path = data_dir.join(LOCKOUTS_FILE);
        let db = open_file(&path)?;
        Ok(Self {
            path,
            db: Mutex::new(Some(db)),
        })
    }

    /// [`Self::open`], then [`Self::load`] each of `kinds`; a file that
    /// cannot be opened or read is moved aside (logged) and a new one
    /// made, once. Answers the store and each kind's streaks.
    pub fn open_and_load(
        data_dir: &Path,
        kinds: &[&str],
    ) -> Result<(Self, Vec<Streaks>), LockoutError> {
        let attempt = || -> Result<_, LockoutError> {
            let store = Self::open(data_dir)?;
            let loaded = kinds
                .iter()
                .map(|k| store.load(k))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((store, loaded))
        };
        match attempt() {
            Ok(done) => Ok(done),
            // Only a file redb finds damaged or cannot read as its own:
            // an I/O error (permissions, a full disk) is the operator's
            // to fix, the streaks kept.
            Err(e)
                if e.path.exists()
                    && e.redb().is_some_and(|r| match r {
                        redb::Error::Corrupted(_) | redb::Error::UpgradeRequired(_) => true,
                        // "Not a redb database".
                        redb::Error::Io(io) => io.kind() == std::io::ErrorKind::InvalidData,
                        _ => false,
                    }) =>
            {
                let aside = e.path.with_extension(format!(
                    "redb.unreadable-{}",
                    tally_sync::clock::Clock::now_ms(&tally_store::SystemClock)
                ));
                tracing::error!(error = %e, aside = %aside.display(), "The PIN lockouts file cannot be read: moved aside; every wrong-PIN streak starts afresh.");
                std::fs::rename(&e.path, &aside).map_err(|io| LockoutError {
                    path: e.path.clone(),
                    source: Box::new(io),
                })?;
                attempt()
            }
            Err(e) => Err(e),
        }
    }

    /// The streaks kept for `kind` (`manager`, `cashier`), by id. A row
    /// that cannot be read is left out (its owner starts afresh).
    pub fn load(&self, kind: &str) -> Result<Streaks, LockoutError> {
        let guard = self.db.lock().unwrap_or_else(|p| p.into_inner());
        let Some(db) = guard.as_ref() else {
            return Ok(Vec::new());
        };
        let txn = db.begin_read().map_err(|e| error(&self.path, e))?;
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
    /// committed before this returns. On failure the file is dropped, to
    /// be opened again by the next call.
    pub fn put(&self, kind: &str, id: &str, kept: Option<Kept>) -> Result<(), LockoutError> {
        let mut guard = self.db.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            *guard = Some(open_file(&self.path)?);
        }
        let Some(db) = guard.as_ref() else {
            return Ok(());
        };
        let written = self.write(db, kind, id, kept);
        if written.is_err() {
            // redb refuses every write after a failed one: start anew.
            *guard = None;
        }
        written
    }

    fn write(
        &self,
        db: &redb::Database,
        kind: &str,
        id: &str,
        kept: Option<Kept>,
    ) -> Result<(), LockoutError> {
        let key = format!("{kind}/{id}");
        let txn = db.begin_write().map_err(|e| error(&self.path, e))?;
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

/// Opens or creates the file at `path`, owner-only, its name durable.
fn open_file(path: &Path) -> Result<redb::Database, LockoutError> {
    let existed = path.exists();
    let db = redb::Database::create(path).map_err(|e| error(path, e))?;
    let io = |e: Box<dyn std::error::Error + Send + Sync>| LockoutError {
        path: path.to_path_buf(),
        source: e,
    };
    tally_service::files::make_private(path).map_err(|e| io(Box::new(e)))?;
    if !existed {
        tally_store::sync_parent_dir(path).map_err(|e| io(Box::new(e)))?;
    }
    Ok(db)
}

impl LockoutError {
    /// redb's error, if it is one.
    fn redb(&self) -> Option<&redb::Error> {
        self.source.downcast_ref::<redb::Error>()
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

    /// A file that cannot be read at start is moved aside and the agent
    /// starts with no streak; one another process holds is an error.
    #[test]
    fn an_unreadable_file_is_moved_aside_at_start() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.path().join(LOCKOUTS_FILE), b"not a redb file")
            .unwrap_or_else(|e| panic!("{e}"));
        let (store, loaded) = LockoutStore::open_and_load(dir.path(), &["manager", "cashier"])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(loaded, vec![Vec::new(), Vec::new()]);
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap_or_else(|e| panic!("{e}"))
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        assert!(
            names
                .iter()
                .any(|n| n.starts_with("lockouts.redb.unreadable-")),
            "{names:?}"
        );
        store
            .put("manager", "ann", Some(Kept::default()))
            .unwrap_or_else(|e| panic!("{e}"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(LOCKOUTS_FILE))
                .map(|m| m.permissions().mode() & 0o777)
                .unwrap_or_default();
            assert_eq!(mode, 0o600);
        }
        assert!(LockoutStore::open_and_load(dir.path(), &["manager"]).is_err());
    }
}
