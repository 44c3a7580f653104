//! The storage backend every database file is opened with: redb's own
//! `FileBackend` (reads, writes, syncs, the locks that make a file
//! exclusive) plus a background thread that writes zeros into the file's
//! new space shortly before the database gets there.
//!
//! # Why
//! redb grows its file with `set_len`, which leaves the new space a hole:
//! no blocks are allocated until something is written there. A commit
//! whose pages land in a hole makes the filesystem allocate blocks when
//! `fdatasync` writes them back, and `fdatasync` must then also write the
//! inode (its block map changed): one more synchronous write before the
//! cache flush, on the path every sale waits on. A B-tree that grows
//! (the event journal) puts a page in new space on almost every commit:
//! on the 2-core test machine 89 % of group commits allocated blocks
//! (tracepoint `ext4:ext4_allocate_blocks`), and a raw write + `fdatasync`
//! costs 0.21 ms into new space against 0.09 ms over written blocks. So
//! databases write their files' space ahead of use (PostgreSQL zero-fills
//! WAL segments before it uses them; InnoDB extends its files with written
//! pages); this does the same for redb's file.
//!
//! # Design constraints
//! - **No byte ever changes.** Zeros go only into holes this backend made
//!   itself by growing the file, and only while nothing has written them
//!   since ([`Holes`]). A hole reads as zeros, so writing zeros there
//!   changes nothing a reader could see, before or after a crash or a
//!   power cut. Every zero write happens under one lock with the set of
//!   holes; a database write that reaches into a hole takes that lock and
//!   removes its range first, so the two never overlap. Holes of a file
//!   that existed before it was opened are not known and stay as they
//!   are (probing with `SEEK_HOLE` could mistake the kernel's
//!   not-yet-allocated dirty pages for a hole).
//! - **Off the commit path.** The thread stays at most
//!   [`PrewriteConfig::headroom`] ahead of the highest offset the database
//!   has written, so the disk space used follows the data rather than
//!   redb's doubling of the file; and it syncs its own zeros every
//!   [`PrewriteConfig::sync_every`] bytes, so their allocation reaches the
//!   disk before a commit needs it.
//! - **Never fails the database.** An error while pre-writing (a full
//!   disk) stops pre-writing, logged once; database I/O goes on exactly as
//!   without this backend.

use std::fs::File;
use std::ops::Bound;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use redb::backends::FileBackend;
use redb::{BackendError, StorageBackend};

use crate::holes::Holes;

/// How far ahead, and in what steps, the file's space is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrewriteConfig {
    /// Bytes past the highest offset the database wrote that are kept
    /// written (if the file is that long).
    pub headroom: u64,
    /// Bytes of zeros per write (the lock is held that long).
    pub piece: usize,
    /// Bytes of zeros between two syncs of the thread's own.
    pub sync_every: u64,
}

impl Default for PrewriteConfig {
    /// 16 MiB ahead (~3 s of the agent's fastest growth, ~5 MB/s), in
    /// 64 KiB writes, synced every 2 MiB.
    fn default() -> Self {
        PrewriteConfig {
            headroom: 16 << 20,
            piece: 64 << 10,
            sync_every: 2 << 20,
        }
    }
}

/// redb's file backend with the file's new space written ahead of use.
#[derive(Debug)]
pub struct PrewrittenFile {
    inner: FileBackend,
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// What the backend and its thread share.
#[derive(Debug)]
struct Shared {
    /// A second handle to the file, for the zeros and their syncs.
    file: File,
    state: Mutex<State>,
    wake: Condvar,
    /// `state.holes.floor()`, readable without the lock: a write ending
    /// at or below it touches no hole.
    floor: AtomicU64,
    /// The highest end offset the database has written.
    high: AtomicU64,
    /// The thread is waiting (or about to): a write that moves `high`
    /// must wake it. Set under the lock before its last look at `high`.
    waiting: AtomicBool,
    /// Bytes of zeros written so far.
    prewritten: AtomicU64,
    config: PrewriteConfig,
}

#[derive(Debug)]
struct State {
    holes: Holes,
    /// The thread is filling the headroom (else it rests until half of
    /// it is used).
    filling: bool,
    stop: bool,
}

/// A view of a [`PrewrittenFile`]'s progress (tests, diagnostics).
#[derive(Debug, Clone)]
pub struct PrewriteStats(Arc<Shared>);

impl PrewriteStats {
    /// Bytes of zeros written into holes so far.
    pub fn prewritten(&self) -> u64 {
        self.0.prewritten.load(Ordering::Relaxed)
    }

    /// Bytes still in holes this backend knows of.
    pub fn hole_bytes(&self) -> u64 {
        self.0.lock().holes.bytes()
    }

    /// Whether the thread has nothing left to write for now: no hole is
    /// due within the headroom. (Its last zeros may still be syncing.)
    pub fn caught_up(&self) -> bool {
        let s = self.0.lock();
        s.stop || (!s.filling && self.0.next_piece(&s).is_none())
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is consistent after every statement that changes it,
        // so a poisoned lock still holds usable state.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn publish_floor(&self, s: &State) {
        self.floor.store(s.holes.floor(), Ordering::Release);
    }

    /// The next range of zeros to write, if one is due. The thread rests
    /// until the database comes within half the headroom of the written
    /// space, then fills the whole headroom: so it wakes and syncs once per
    /// half headroom of growth, not once per commit.
    fn next_piece(&self, s: &State) -> Option<std::ops::Range<u64>> {
        let config = &self.config;
        let high = self.high.load(Ordering::SeqCst);
        let hole = s.holes.first()?;
        let mark = if s.filling {
            config.headroom
        } else {
            config.headroom / 2
        };
        if hole.start >= high.saturating_add(mark) {
            return None;
        }
        let end = hole
            .end
            .min(high.saturating_add(config.headroom))
            .min(hole.start.saturating_add(config.piece as u64));
        Some(hole.start..end)
    }
}

impl PrewrittenFile {
    /// Opens (creating if needed) the file at `path` as redb's own
    /// `Builder::create` does, and starts the thread.
    pub fn open(path: &Path, config: PrewriteConfig) -> Result<Self, redb::DatabaseError> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        Self::new(file, config)
    }

    /// The backend over an open file; starts the thread.
    pub fn new(file: File, config: PrewriteConfig) -> Result<Self, redb::DatabaseError> {
        let shared = Arc::new(Shared {
            file: file.try_clone()?,
            state: Mutex::new(State {
                holes: Holes::new(),
                filling: false,
                stop: false,
            }),
            wake: Condvar::new(),
            floor: AtomicU64::new(u64::MAX),
            high: AtomicU64::new(0),
            waiting: AtomicBool::new(false),
            prewritten: AtomicU64::new(0),
            config,
        });
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("tally-prewrite".into())
                .spawn(move || fill(&shared))?
        };
        Ok(Self {
            inner: FileBackend::new(file)?,
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// A handle on the backend's progress, valid after redb took it.
    pub fn stats(&self) -> PrewriteStats {
        PrewriteStats(self.shared.clone())
    }

    fn stop(&self) {
        self.shared.lock().stop = true;
        self.shared.wake.notify_all();
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(t) = thread {
            if t.join().is_err() {
                tracing::warn!("The pre-writing thread panicked.");
            }
        }
    }
}

impl Drop for PrewrittenFile {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The thread: writes the due pieces of zeros, syncs them, waits for more.
fn fill(shared: &Shared) {
    let zeros = vec![0u8; shared.config.piece.max(1)];
    let mut unsynced = 0u64;
    loop {
        let mut s = shared.lock();
        let piece = loop {
            if s.stop {
                return;
            }
            // Announce the wait before the last look at `high` (see
            // `Shared::waiting`).
            shared.waiting.store(true, Ordering::SeqCst);
            if let Some(p) = shared.next_piece(&s) {
                shared.waiting.store(false, Ordering::SeqCst);
                s.filling = true;
                break Some(p);
            }
            s.filling = false;
            if unsynced > 0 {
                shared.waiting.store(false, Ordering::SeqCst);
                break None;
            }
            s = shared.wake.wait(s).unwrap_or_else(PoisonError::into_inner);
        };
        let Some(piece) = piece else {
            drop(s);
            if !sync(shared, &mut unsynced) {
                return;
            }
            continue;
        };
        // Under the lock: no database write can reach this range until it
        // is out of the hole set, and it is written by then.
        let n = piece.end - piece.start;
        let buf = zeros.get(..usize::try_from(n).unwrap_or(zeros.len()));
        let written = buf.map_or(Ok(()), |b| shared.file.write_all_at(b, piece.start));
        if let Err(error) = written {
            give_up(shared, &mut s, &error);
            return;
        }
        s.holes.remove(piece);
        shared.publish_floor(&s);
        drop(s);
        shared.prewritten.fetch_add(n, Ordering::Relaxed);
        unsynced += n;
        if unsynced >= shared.config.sync_every && !sync(shared, &mut unsynced) {
            return;
        }
    }
}

fn sync(shared: &Shared, unsynced: &mut u64) -> bool {
    match shared.file.sync_data() {
        Ok(()) => {
            *unsynced = 0;
            true
        }
        Err(error) => {
            give_up(shared, &mut shared.lock(), &error);
            false
        }
    }
}

/// Stops pre-writing for good: the holes stay holes.
fn give_up(shared: &Shared, s: &mut State, error: &std::io::Error) {
    tracing::warn!(%error, "Pre-writing the database file's new space failed; stopped (commits that grow the file will be slower).");
    s.holes = Holes::new();
    s.stop = true;
    shared.publish_floor(s);
}

impl StorageBackend for PrewrittenFile {
    fn len(&self) -> Result<u64, std::io::Error> {
        self.inner.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), std::io::Error> {
        self.inner.read(offset, out)
    }

    fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
        // Under the lock, so no zeros are written past a shrunk end (they
        // would extend the file again) and a new hole is known before any
        // write can reach it.
        let mut s = self.shared.lock();
        let old = self.inner.len()?;
        if len < old {
            s.holes.truncate(len);
            self.shared.publish_floor(&s);
        }
        self.inner.set_len(len)?;
        if len > old && !s.stop {
            s.holes.insert(old..len);
            self.shared.publish_floor(&s);
            self.shared.wake.notify_one();
        }
        Ok(())
    }

    fn sync_data(&self) -> Result<(), std::io::Error> {
        self.inner.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
        let end = offset.saturating_add(data.len() as u64);
        if end > self.shared.floor.load(Ordering::Acquire) {
            let mut s = self.shared.lock();
            s.holes.remove(offset..end);
            self.shared.publish_floor(&s);
        }
        let before = self.shared.high.fetch_max(end, Ordering::SeqCst);
        if end > before && self.shared.waiting.load(Ordering::SeqCst) {
            // Under the lock, so the thread is either waiting already or
            // has yet to look at `high`.
            let s = self.shared.lock();
            if self.shared.next_piece(&s).is_some() {
                self.shared.wake.notify_one();
            }
        }
        self.inner.write(offset, data)
    }

    fn close(&self) -> Result<(), std::io::Error> {
        self.stop();
        self.inner.close()
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        self.inner.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.query_lock_range(start, end)
    }
}
