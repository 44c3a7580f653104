//! The pre-writing backend (`tally_store::prewrite`) against a model of
//! the file: whatever the interleaving of the database's writes and
//! resizes with the thread's zeros, the file must read exactly as the
//! model (every byte the database wrote, zeros elsewhere), and the thread
//! must really have written the new space (blocks allocated). Then a whole
//! database on it: grown through several resizes, closed, reopened, every
//! record there.
//!
//! Seeds are fixed and printed with every failure; `TALLY_PREWRITE_SEEDS`
//! runs more.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tally_store::redb::{StorageBackend, TableDefinition};
use tally_store::{PrewriteConfig, PrewriteStats, PrewrittenFile};

/// The workspace's seeded generator (ChaCha8, as the simulation's):
/// replayable from the seed.
struct Rng(ChaCha8Rng);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(ChaCha8Rng::seed_from_u64(seed))
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0.next_u64() % n.max(1)
    }
}

const KIB: u64 = 1024;

/// A small headroom and pieces, so a short run crosses many of them.
fn small() -> PrewriteConfig {
    PrewriteConfig {
        headroom: 64 * KIB,
        piece: 4 * KIB as usize,
        sync_every: 16 * KIB,
    }
}

fn wait_caught_up(stats: &PrewriteStats, seed: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !stats.caught_up() {
        assert!(
            Instant::now() < deadline,
            "seed {seed}: pre-writing never caught up"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn check_content(backend: &PrewrittenFile, model: &[u8], seed: u64, step: usize) {
    assert_eq!(
        backend.len().unwrap(),
        model.len() as u64,
        "seed {seed} step {step}: length"
    );
    let mut got = vec![0u8; model.len()];
    backend.read(0, &mut got).unwrap();
    if got != model {
        let at = got.iter().zip(model).position(|(a, b)| a != b).unwrap();
        panic!(
            "seed {seed} step {step}: byte {at} is {} but the database wrote {}",
            got[at], model[at]
        );
    }
}

/// One seeded run: the database's operations, mostly writes near a
/// growing frontier (as a B-tree's lowest-free-page allocator does), some
/// far ahead, some resizes.
fn run_model(seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let backend = PrewrittenFile::open(&path, small()).unwrap();
    let stats = backend.stats();
    let mut rng = Rng::new(seed);
    let mut model: Vec<u8> = Vec::new();
    let mut frontier = 0u64;
    for step in 0..600 {
        match rng.below(20) {
            0 if model.len() as u64 <= 2048 * KIB => {
                // Grow, as redb does: double (up to a bound), or by a chunk.
                let len = (model.len() as u64 * 2).clamp(64 * KIB, model.len() as u64 + 512 * KIB)
                    + rng.below(8) * 4 * KIB;
                backend.set_len(len).unwrap();
                model.resize(len as usize, 0);
            }
            1 if model.len() as u64 > 64 * KIB => {
                let len = model.len() as u64 - rng.below(model.len() as u64 / 4);
                backend.set_len(len).unwrap();
                model.truncate(len as usize);
                frontier = frontier.min(len);
            }
            2 => backend.sync_data().unwrap(),
            _ if !model.is_empty() => {
                let len = model.len() as u64;
                let size = 1 + rng.below(3 * 4096);
                let offset = if rng.below(8) == 0 {
                    rng.below(len)
                } else {
                    // Near the frontier.
                    (frontier + rng.below(16 * KIB)).min(len - 1)
                };
                let size = size.min(len - offset);
                let byte = 1 + rng.below(255) as u8;
                let data = vec![byte; size as usize];
                backend.write(offset, &data).unwrap();
                model[offset as usize..(offset + size) as usize].fill(byte);
                frontier = frontier.max(offset + size);
            }
            _ => {}
        }
        if step % 50 == 0 {
            check_content(&backend, &model, seed, step);
        }
    }
    wait_caught_up(&stats, seed);
    check_content(&backend, &model, seed, usize::MAX);
    assert!(
        stats.prewritten() > 0,
        "seed {seed}: nothing was pre-written"
    );
    // The thread's zeros allocated blocks: the file holds at least what
    // was pre-written (blocks are 512-byte units here).
    let allocated = std::fs::metadata(&path).unwrap().blocks() * 512;
    assert!(
        allocated >= stats.prewritten().min(model.len() as u64) / 2,
        "seed {seed}: {allocated} bytes allocated after {} pre-written",
        stats.prewritten()
    );
    backend.close().unwrap();
    drop(backend);
    // And what the next open reads is the same.
    let again = std::fs::read(&path).unwrap();
    assert!(again == model, "seed {seed}: the file changed after close");
}

#[test]
fn content_is_exactly_what_the_database_wrote() {
    let seeds: u64 = std::env::var("TALLY_PREWRITE_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(24);
    for seed in 1..=seeds {
        run_model(seed);
    }
}

#[test]
fn new_space_is_written_ahead_but_not_far_ahead() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let config = small();
    let backend = PrewrittenFile::open(&path, config).unwrap();
    let stats = backend.stats();
    // A 1 MiB hole; the database has written its first 4 KiB only.
    backend.set_len(1024 * KIB).unwrap();
    backend.write(0, &[7u8; 4096]).unwrap();
    wait_caught_up(&stats, 0);
    let ahead = stats.prewritten();
    assert!(
        ahead >= config.headroom && ahead <= config.headroom + 4 * KIB,
        "pre-written {ahead} bytes for a 64 KiB headroom"
    );
    // Moving the frontier by less than half the headroom wakes nothing.
    backend.write(20 * KIB, &[8u8; 4096]).unwrap();
    wait_caught_up(&stats, 0);
    assert_eq!(stats.prewritten(), ahead, "refilled before half was used");
    // Past half of it, the thread fills the headroom again.
    backend.write(40 * KIB, &[9u8; 4096]).unwrap();
    wait_caught_up(&stats, 0);
    assert!(stats.prewritten() > ahead);
    assert_eq!(
        stats.hole_bytes(),
        1024 * KIB - 44 * KIB - config.headroom,
        "the rest of the hole stays a hole"
    );
    backend.close().unwrap();
}

const ROWS: TableDefinition<u64, &[u8]> = TableDefinition::new("rows");

#[test]
fn a_database_grown_on_it_reopens_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    let value = |i: u64| format!("row {i} {}", "x".repeat((i % 200) as usize)).into_bytes();
    let rows = 40_000u64;
    {
        let backend = PrewrittenFile::open(&path, small()).unwrap();
        let stats = backend.stats();
        let db = tally_store::redb::Builder::new()
            .create_with_backend(backend)
            .unwrap();
        for chunk in (0..rows).collect::<Vec<_>>().chunks(500) {
            let txn = db.begin_write().unwrap();
            {
                let mut t = txn.open_table(ROWS).unwrap();
                for &i in chunk {
                    t.insert(i, value(i).as_slice()).unwrap();
                }
            }
            txn.commit().unwrap();
        }
        assert!(
            stats.prewritten() > 0,
            "the database grew, nothing pre-written"
        );
    }
    let db = tally_store::redb::Builder::new()
        .create_with_backend(PrewrittenFile::open(&path, small()).unwrap())
        .unwrap();
    let txn = tally_store::redb::ReadableDatabase::begin_read(&db).unwrap();
    let t = txn.open_table(ROWS).unwrap();
    for i in 0..rows {
        let got = t.get(i).unwrap().expect("row missing");
        assert_eq!(got.value(), value(i).as_slice());
    }
}
