//! [`Db`], an open database: opening a file exclusively through the
//! pre-writing backend (or on a caller's backend), creating every table,
//! and starting transactions; [`ReadOnlyDb`], an existing file opened
//! only to read it; and [`sync_parent_dir`], which makes a new file's
//! name durable.
//!
//! Quick repair is the owner's choice ([`Db::set_quick_repair`]): with
//! it, each commit also records the allocator state (two-phase commit, a
//! second `fdatasync`), so opening after a crash or a power cut loads
//! that state instead of walking the whole file. Without it a commit is
//! one `fdatasync` and an unclean restart reads the whole file: seconds
//! for a store's database after years, minutes for a hub's. The hub
//! turns it on, the agent keeps its commits at one `fdatasync`
//! (docs/benchmarks.md, "Restart after a crash"). A full repair is
//! logged, and [`Db::was_fully_repaired`] tells whether the open ran one.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use redb::ReadableDatabase;

use crate::error::StoreError;
use crate::prewrite::{PrewriteConfig, PrewrittenFile};
use crate::tables;
use crate::txn::{ReadTxn, WriteTxn};

/// Makes the entry of `path` in its directory durable (fsync of the
/// directory), after the file or directory was created.
pub fn sync_parent_dir(path: &Path) -> Result<(), StoreError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::Storage(format!("syncing the directory {}: {e}", dir.display())))
}

/// A builder with the page cache bounded to `cache_bytes` (`None`:
/// redb's default) that counts full repairs in `repairs`.
fn builder(cache_bytes: Option<usize>, repairs: Arc<AtomicU64>) -> redb::Builder {
    let mut builder = redb::Builder::new();
    if let Some(bytes) = cache_bytes {
        builder.set_cache_size(bytes);
    }
    builder.set_repair_callback(move |session| {
        // Called at 0 % and as the walk goes on; logged at the start.
        if session.progress() == 0.0 {
            repairs.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                "The database was not closed cleanly and its last commit did not record \
                 the allocator state: repairing it by reading the whole file."
            );
        }
    });
    builder
}

/// An open database.
#[derive(Debug)]
pub struct Db {
    db: redb::Database,
    path: PathBuf,
    /// Full repairs its open ran: 1 after an unclean shutdown whose last
    /// commit did not record the allocator state, else 0.
    repairs: Arc<AtomicU64>,
    /// Commits record the allocator state (see the module docs).
    quick_repair: bool,
}

impl Db {
    /// Opens (creating if needed) the database at `path`, exclusively, with
    /// redb's default page cache (up to 1 GiB: a server's choice).
    pub fn open(path: impl AsRef<Path>) -> Result<Db, StoreError> {
        Self::open_with_cache(path, None)
    }

    /// Like [`Db::open`], with the page cache bounded to `cache_bytes`
    /// (`None`: redb's default). The cache holds pages read and pages
    /// written since the last commit; it is what grows an agent's memory
    /// as its journal grows, so a store box bounds it.
    pub fn open_with_cache(
        path: impl AsRef<Path>,
        cache_bytes: Option<usize>,
    ) -> Result<Db, StoreError> {
        let path = path.as_ref().to_path_buf();
        let backend = PrewrittenFile::open(&path, PrewriteConfig::default())?;
        let repairs = Arc::default();
        let db = match builder(cache_bytes, Arc::clone(&repairs)).create_with_backend(backend) {
            Ok(db) => db,
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                return Err(StoreError::AlreadyOpen(path))
            }
            Err(e) => return Err(e.into()),
        };
        // The file's own fdatasyncs do not make its name durable: a power
        // cut could otherwise lose a whole new database. Every open, not
        // only the one that made the file: a crash right after a create
        // leaves a file whose name may not have reached the disk, and the
        // next open would find it existing (one fsync per start).
        sync_parent_dir(&path)?;
        Self::with_tables(db, path, repairs)
    }

    /// Like [`Db::open_with_cache`], on a storage backend of the caller's
    /// (the power-loss tests' simulated disk); `label` stands in for the
    /// path in [`Db::path`] and messages.
    pub fn open_with_backend(
        backend: impl redb::StorageBackend,
        label: impl Into<PathBuf>,
        cache_bytes: Option<usize>,
    ) -> Result<Db, StoreError> {
        let repairs = Arc::default();
        let db = builder(cache_bytes, Arc::clone(&repairs)).create_with_backend(backend)?;
        Self::with_tables(db, label.into(), repairs)
    }

    /// Creates every table up front, so read transactions never miss one,
    /// and converts the EPC histories of a database from before the EPC
    /// rows in the same transaction (see `tables::migrate_epcs`).
    fn with_tables(
        db: redb::Database,
        path: PathBuf,
        repairs: Arc<AtomicU64>,
    ) -> Result<Db, StoreError> {
        let txn = db.begin_write()?;
        tables::create_all(&txn)?;
        let migrated = tables::migrate_epcs(&txn)?;
        txn.commit()?;
        if migrated > 0 {
            tracing::info!(
                path = %path.display(),
                epcs = migrated,
                "EPC histories converted to a summary and one row per event."
            );
        }
        Ok(Db {
            db,
            path,
            repairs,
            quick_repair: false,
        })
    }

    /// The file this database lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Makes every later commit record the allocator state (two-phase,
    /// a second `fdatasync`), so that a crash costs the next open a load
    /// of that state instead of a walk of the whole file; see the module
    /// docs.
    pub fn set_quick_repair(&mut self, on: bool) {
        self.quick_repair = on;
    }

    /// Whether opening it walked the whole file to rebuild the allocator
    /// state (after an unclean shutdown whose last commit did not record
    /// it; see the module docs).
    pub fn was_fully_repaired(&self) -> bool {
        self.repairs.load(Ordering::Relaxed) > 0
    }

    /// Starts the (single) write transaction; waits while another is open.
    pub fn begin_write(&self) -> Result<WriteTxn, StoreError> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(redb::Durability::Immediate)
            .map_err(|e| StoreError::Storage(e.to_string()))?;
        txn.set_quick_repair(self.quick_repair);
        Ok(WriteTxn::new(txn))
    }

    /// Starts a read transaction: a consistent snapshot.
    pub fn begin_read(&self) -> Result<ReadTxn, StoreError> {
        Ok(ReadTxn::new(self.db.begin_read()?))
    }

    /// The underlying redb database (for tables of the caller's own).
    pub fn raw(&self) -> &redb::Database {
        &self.db
    }
}

/// A database opened read-only: a consistent snapshot source that writes
/// nothing to the file, not even the repair or table creation an open
/// for writing makes (a copy of a stopped program's data elsewhere, e.g.
/// `tally-hub migrate --from`). While it is open, the program that owns
/// the file cannot open it for writing, and it cannot be opened while
/// that program has it ([`StoreError::AlreadyOpen`]).
pub struct ReadOnlyDb {
    db: redb::ReadOnlyDatabase,
    path: PathBuf,
}

impl std::fmt::Debug for ReadOnlyDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadOnlyDb")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl ReadOnlyDb {
    /// Opens the existing database at `path` read-only. A file that was
    /// not closed cleanly is refused (a repair would write to it): open
    /// it once for writing ([`Db::open`]) first.
    pub fn open(path: impl AsRef<Path>) -> Result<ReadOnlyDb, StoreError> {
        let path = path.as_ref().to_path_buf();
        let db = match redb::Builder::new().open_read_only(&path) {
            Ok(db) => db,
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                return Err(StoreError::AlreadyOpen(path))
            }
            Err(redb::DatabaseError::RepairAborted) => {
                return Err(StoreError::Storage(format!(
                    "{} was not closed cleanly and needs a repair, which a read-only open \
                     cannot make: start and stop its program once, then try again",
                    path.display()
                )))
            }
            Err(e) => {
                return Err(StoreError::Storage(format!(
                    "opening {} read-only: {e}",
                    path.display()
                )))
            }
        };
        Ok(ReadOnlyDb { db, path })
    }

    /// The file this database lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Starts a read transaction: a consistent snapshot.
    pub fn begin_read(&self) -> Result<ReadTxn, StoreError> {
        Ok(ReadTxn::new(self.db.begin_read()?))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use redb::ReadableTableMetadata;

    use super::*;

    #[test]
    fn a_new_database_file_is_opened_and_its_directory_synced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.redb");
        let db = Db::open(&path).unwrap();
        assert_eq!(db.path(), path);
        assert!(sync_parent_dir(&path).is_ok());
        let err = sync_parent_dir(&dir.path().join("missing/new.redb")).unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
    }

    const ROWS: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("rows");

    /// Writes `n` commits of 100 rows each through `begin_write`.
    fn fill(db: &Db, n: u64) {
        for c in 0..n {
            let txn = db.begin_write().unwrap();
            {
                let mut t = txn.raw().open_table(ROWS).unwrap();
                for i in 0..100 {
                    t.insert(c * 100 + i, [7u8; 64].as_slice()).unwrap();
                }
            }
            txn.commit().unwrap();
        }
    }

    /// A power cut right after commits in quick-repair mode (the header
    /// never rewritten by a clean close): every commit is there, and the
    /// open loads the allocator state the last commit recorded instead of
    /// walking the file. A file whose last commit did not record it (the
    /// default) is walked, and that is counted.
    #[test]
    fn a_power_cut_costs_a_quick_open_not_a_walk_of_the_file() {
        use crate::sim_disk::SimDisk;
        for seed in 0..8 {
            let disk = SimDisk::new();
            let mut db = Db::open_with_backend(disk.clone(), "sim", None).unwrap();
            db.set_quick_repair(true);
            assert!(!db.was_fully_repaired());
            fill(&db, 20);
            disk.power_cut_after(0);
            drop(db);
            disk.restore_power(seed);
            let db = Db::open_with_backend(disk.clone(), "sim", None).unwrap();
            assert!(!db.was_fully_repaired(), "seed {seed}");
            let n = db
                .begin_read()
                .unwrap()
                .raw()
                .open_table(ROWS)
                .unwrap()
                .len()
                .unwrap();
            assert_eq!(n, 2_000, "seed {seed}: every acknowledged commit");

            // The control: one last commit without the allocator state.
            fill(&db, 1);
            disk.power_cut_after(0);
            drop(db);
            disk.restore_power(seed);
            let db = Db::open_with_backend(disk, "sim", None).unwrap();
            assert!(
                db.was_fully_repaired(),
                "seed {seed}: the control walks the file"
            );
        }
    }
}
