//! The raw-disk baseline of every ratio in the report: a single writer's
//! `fdatasync`s per second and their latency on a file in the bench's
//! directory, for three write patterns.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::stats::pct;

/// What one raw-disk writer does before each `fdatasync`.
#[derive(Debug, Clone, Copy)]
pub enum Raw {
    /// Overwrite the same 4 KiB block (data only): the classic baseline.
    Overwrite,
    /// Append 4 KiB (the file's size must be synced too).
    Append,
    /// Overwrite this many 4 KiB blocks at scattered offsets of a 16 MiB
    /// file, as a B-tree commit does (the disk sees one request per run of
    /// neighbouring blocks).
    Scattered(u64),
}

/// The raw-disk rows of the report; the first is the baseline of the
/// ratios. 12 blocks: what one redb commit of a batch of sales writes
/// (strace: 10–13 `pwrite`s before its `fdatasync`).
pub const RAW_PATTERNS: [(Raw, &str); 3] = [
    (Raw::Overwrite, "overwrite one block"),
    (Raw::Append, "append (file grows)"),
    (
        Raw::Scattered(12),
        "12 scattered blocks (a redb commit's page count)",
    ),
];

/// Raw single-writer fsync rate and p50/p99 latency for one pattern,
/// in a loop for `for_secs`, on a file in `dir`.
pub fn raw_fsync(dir: &Path, raw: Raw, for_secs: f64) -> (f64, Duration, Duration) {
    use std::os::unix::fs::FileExt;
    const BLOCK: u64 = 4096;
    const SPAN: u64 = 4096; // blocks in the scattered file (16 MiB)
    let path = dir.join(format!("raw-{raw:?}"));
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let block = [0x5au8; BLOCK as usize];
    let prealloc = match raw {
        Raw::Overwrite => 1,
        Raw::Append => 0,
        Raw::Scattered(_) => SPAN,
    };
    for b in 0..prealloc {
        f.write_all_at(&block, b * BLOCK).unwrap();
    }
    f.sync_all().unwrap();
    let (mut lat, mut end, mut rng) = (Vec::new(), 0u64, 0x9e37_79b9_7f4a_7c15u64);
    let start = Instant::now();
    while start.elapsed().as_secs_f64() < for_secs {
        let t = Instant::now();
        match raw {
            Raw::Overwrite => f.write_all_at(&block, 0).unwrap(),
            Raw::Append => {
                f.write_all_at(&block, end).unwrap();
                end += BLOCK;
            }
            Raw::Scattered(n) => {
                for _ in 0..n {
                    rng = rng
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    f.write_all_at(&block, ((rng >> 33) % SPAN) * BLOCK)
                        .unwrap();
                }
            }
        }
        f.sync_data().unwrap();
        lat.push(t.elapsed());
    }
    let rate = lat.len() as f64 / start.elapsed().as_secs_f64();
    lat.sort();
    drop(f);
    let _ = std::fs::remove_file(&path);
    (rate, pct(&lat, 0.5), pct(&lat, 0.99))
}
