//! Test support: real pseudo-terminal pairs standing in for serial devices,
//! a symlink as the driver's configured path (re-pointed to a new pty to
//! simulate unplug/replug), a simulated LLRP network reader
//! ([`llrp_sim`]), deadline-bounded waits and seeded noise.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code, unused_imports)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::mpsc::Receiver;

pub mod llrp_sim;
mod pty;
pub use pty::Pty;

/// A symlink standing for a device path such as /dev/serial/by-id/….
pub struct DeviceLink {
    dir: PathBuf,
    pub path: PathBuf,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

impl DeviceLink {
    pub fn new(target: &Path) -> DeviceLink {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("tally-hw-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("device");
        std::os::unix::fs::symlink(target, &path).unwrap();
        DeviceLink { dir, path }
    }

    /// Atomically re-points the link (the device came back, maybe as
    /// another /dev/pts/N).
    pub fn repoint(&self, target: &Path) {
        let tmp = self.dir.join("device.new");
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(target, &tmp).unwrap();
        std::fs::rename(&tmp, &self.path).unwrap();
    }
}

impl Drop for DeviceLink {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The next event, or a panic naming what was awaited once `within` passes.
pub async fn next<T: std::fmt::Debug>(rx: &mut Receiver<T>, within: Duration, what: &str) -> T {
    match tokio::time::timeout(within, rx.recv()).await {
        Ok(Some(ev)) => ev,
        Ok(None) => panic!("channel closed while waiting for {what}"),
        Err(_) => panic!("no event within {within:?} while waiting for {what}"),
    }
}

/// Asserts nothing more arrives within `quiet`.
pub async fn assert_quiet<T: std::fmt::Debug>(rx: &mut Receiver<T>, quiet: Duration) {
    if let Ok(Some(ev)) = tokio::time::timeout(quiet, rx.recv()).await {
        panic!("unexpected event {ev:?}");
    }
}

/// A seed from TALLY_TEST_SEED or the clock, printed so a failure can be
/// replayed.
pub fn seed(test: &str) -> u64 {
    let seed = std::env::var("TALLY_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    eprintln!("{test}: TALLY_TEST_SEED={seed}");
    seed
}

/// splitmix64: a tiny deterministic generator for noise bytes.
pub struct Noise(u64);

impl Noise {
    pub fn new(seed: u64) -> Noise {
        Noise(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// `len` bytes drawn from `allowed`.
    pub fn bytes_from(&mut self, allowed: &[u8], len: usize) -> Vec<u8> {
        (0..len)
            .map(|_| allowed[(self.next_u64() % allowed.len() as u64) as usize])
            .collect()
    }

    /// Splits `data` into 1..=max_chunk-byte pieces.
    pub fn split<'a>(&mut self, data: &'a [u8], max_chunk: usize) -> Vec<&'a [u8]> {
        let mut out = Vec::new();
        let mut rest = data;
        while !rest.is_empty() {
            let n = 1 + (self.next_u64() as usize % max_chunk).min(rest.len() - 1);
            let (a, b) = rest.split_at(n);
            out.push(a);
            rest = b;
        }
        out
    }
}
