//! A simulated disk with a volatile write cache, for power-loss tests
//! (feature `sim-disk`; tests only).
//!
//! A `kill -9` loses the process but not the kernel's page cache, so a
//! crash test with real processes never sees what a power cut does: every
//! write not yet covered by a completed `fdatasync` may or may not be on
//! the platters afterwards, in any combination, down to single sectors.
//! [`SimDisk`] models exactly that, as a redb [`StorageBackend`]:
//!
//! - **Reads see every write** (the cache), as on a running machine.
//! - **`sync_data` makes everything written so far durable.**
//! - **[`SimDisk::power_cut_after`]** is a failpoint: after that many more
//!   mutating calls (`write`, `set_len`, `sync_data`) the power goes off.
//!   That call and every later one fail with an I/O error, as they would
//!   for a process whose machine just died.
//! - **[`SimDisk::restore_power`]** is the reboot: the durable image plus
//!   an arbitrary subset (drawn from a seed) of the unsynced writes, each
//!   split into [`SECTOR`]-byte pieces that survive independently, and of
//!   the unsynced length changes. A quarter of the seeds keep all of them
//!   (the cache reached the platters just before the cut: a commit whose
//!   sync call failed may still be there) and a quarter keep none.
//!
//! Clones share one disk: hand a clone to redb, keep one to cut the power.
//! Pure in-memory state, no I/O; the draw is a seeded SplitMix64, so a
//! failing case replays from its seed.

use std::sync::{Arc, Mutex, MutexGuard};

use redb::StorageBackend;

/// The unit a disk writes atomically: a write torn by a power cut keeps
/// or loses whole sectors.
pub const SECTOR: usize = 512;

/// A simulated disk; see the module docs.
#[derive(Debug, Clone, Default)]
pub struct SimDisk {
    state: Arc<Mutex<DiskState>>,
}

#[derive(Debug, Default)]
struct DiskState {
    /// What survives any power cut.
    durable: Vec<u8>,
    /// What reads see: `durable` with `unsynced` applied.
    cache: Vec<u8>,
    /// Mutations since the last completed sync, in order.
    unsynced: Vec<Pending>,
    /// Mutating calls left before the power goes off.
    power_left: Option<u64>,
    powered_off: bool,
    syncs: u64,
}

#[derive(Debug)]
enum Pending {
    Write { offset: usize, data: Vec<u8> },
    SetLen(usize),
}

/// What a [`SimDisk::restore_power`] kept and lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reboot {
    /// Unsynced sector writes and length changes that survived.
    pub kept: usize,
    /// Unsynced sector writes and length changes that were lost.
    pub lost: usize,
}

impl SimDisk {
    /// An empty disk, powered.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, DiskState> {
        // A panic while holding the lock can only come from a test that
        // is failing anyway; keep the disk usable for its report.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Arms the failpoint: the power goes off at the `calls`-th mutating
    /// call from now (0: at the next one).
    pub fn power_cut_after(&self, calls: u64) {
        self.state().power_left = Some(calls);
    }

    /// Whether the failpoint has fired.
    pub fn powered_off(&self) -> bool {
        self.state().powered_off
    }

    /// Completed `sync_data` calls so far.
    pub fn syncs(&self) -> u64 {
        self.state().syncs
    }

    /// Mutations not yet covered by a sync.
    pub fn unsynced(&self) -> usize {
        self.state().unsynced.len()
    }

    /// Cuts the power now (if it is still on) and boots again: the disk
    /// then holds its durable image plus the unsynced sectors and length
    /// changes `seed` picks: all, none, or each with probability one half
    /// (one seed in four, one in four, one in two). Returns what was kept
    /// and lost. Any redb database on this disk must have been dropped
    /// first.
    pub fn restore_power(&self, seed: u64) -> Reboot {
        let mut s = self.state();
        let mut rng = SplitMix64(seed);
        let mode = rng.next() % 4;
        let mut keep = || match mode {
            0 => false,
            1 => true,
            _ => rng.coin(),
        };
        let mut image = std::mem::take(&mut s.durable);
        let mut reboot = Reboot::default();
        for op in std::mem::take(&mut s.unsynced) {
            match op {
                Pending::SetLen(len) => {
                    if keep() {
                        image.resize(len, 0);
                        reboot.kept += 1;
                    } else {
                        reboot.lost += 1;
                    }
                }
                Pending::Write { offset, data } => {
                    for (i, piece) in data.chunks(SECTOR).enumerate() {
                        if keep() {
                            write_at(&mut image, offset + i * SECTOR, piece);
                            reboot.kept += 1;
                        } else {
                            reboot.lost += 1;
                        }
                    }
                }
            }
        }
        s.cache = image.clone();
        s.durable = image;
        s.power_left = None;
        s.powered_off = false;
        reboot
    }

    /// Counts one mutating call against the failpoint.
    fn spend(s: &mut DiskState) -> std::io::Result<()> {
        if s.powered_off {
            return Err(power_off());
        }
        match s.power_left {
            Some(0) => {
                s.powered_off = true;
                Err(power_off())
            }
            Some(n) => {
                s.power_left = Some(n - 1);
                Ok(())
            }
            None => Ok(()),
        }
    }
}

fn power_off() -> std::io::Error {
    std::io::Error::other("simulated power cut")
}

fn to_usize(v: u64) -> std::io::Result<usize> {
    usize::try_from(v).map_err(|_| std::io::Error::other("offset beyond the address space"))
}

/// Writes `data` at `offset`, growing `buf` with zeros as a file would
/// (`offset + data.len()` was checked when the write was taken).
fn write_at(buf: &mut Vec<u8>, offset: usize, data: &[u8]) {
    let end = offset + data.len();
    if buf.len() < end {
        buf.resize(end, 0);
    }
    buf[offset..end].copy_from_slice(data);
}

impl StorageBackend for SimDisk {
    fn len(&self) -> std::io::Result<u64> {
        let s = self.state();
        if s.powered_off {
            return Err(power_off());
        }
        Ok(s.cache.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        let s = self.state();
        if s.powered_off {
            return Err(power_off());
        }
        let start = to_usize(offset)?;
        let bytes = start
            .checked_add(out.len())
            .and_then(|end| s.cache.get(start..end))
            .ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "read past the end")
            })?;
        out.copy_from_slice(bytes);
        Ok(())
    }

    fn set_len(&self, len: u64) -> std::io::Result<()> {
        let mut s = self.state();
        Self::spend(&mut s)?;
        let len = to_usize(len)?;
        s.cache.resize(len, 0);
        s.unsynced.push(Pending::SetLen(len));
        Ok(())
    }

    fn sync_data(&self) -> std::io::Result<()> {
        let mut s = self.state();
        Self::spend(&mut s)?;
        s.durable = s.cache.clone();
        s.unsynced.clear();
        s.syncs += 1;
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        let mut s = self.state();
        Self::spend(&mut s)?;
        let offset = to_usize(offset)?;
        if offset.checked_add(data.len()).is_none() {
            return Err(std::io::Error::other("write beyond the address space"));
        }
        write_at(&mut s.cache, offset, data);
        s.unsynced.push(Pending::Write {
            offset,
            data: data.to_vec(),
        });
        Ok(())
    }
}

/// SplitMix64: a tiny seeded generator, so the store crate needs no
/// random-number dependency for its tests.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn coin(&mut self) -> bool {
        self.next() & 1 == 1
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn read_all(d: &SimDisk) -> Vec<u8> {
        let mut out = vec![0; usize::try_from(d.len().unwrap()).unwrap()];
        d.read(0, &mut out).unwrap();
        out
    }

    #[test]
    fn reads_see_unsynced_writes_and_a_reboot_keeps_synced_ones() {
        let d = SimDisk::new();
        d.write(0, &[1; 10]).unwrap();
        d.sync_data().unwrap();
        d.write(2, &[2; 3]).unwrap();
        assert_eq!(read_all(&d), [1, 1, 2, 2, 2, 1, 1, 1, 1, 1]);
        // Some seed loses the unsynced write, some keeps it; the synced
        // bytes survive every time.
        let mut outcomes = std::collections::BTreeSet::new();
        for seed in 0..16 {
            let d2 = SimDisk::new();
            d2.write(0, &[1; 10]).unwrap();
            d2.sync_data().unwrap();
            d2.write(2, &[2; 3]).unwrap();
            d2.restore_power(seed);
            outcomes.insert(read_all(&d2));
        }
        assert_eq!(
            outcomes.into_iter().collect::<Vec<_>>(),
            vec![vec![1; 10], vec![1, 1, 2, 2, 2, 1, 1, 1, 1, 1]]
        );
    }

    #[test]
    fn a_torn_write_keeps_whole_sectors_only() {
        let d = SimDisk::new();
        d.write(0, &vec![7u8; 3 * SECTOR]).unwrap();
        let reboot = d.restore_power(3);
        assert_eq!(reboot.kept + reboot.lost, 3);
        let after = read_all(&d);
        for sector in after.chunks(SECTOR) {
            assert!(sector.iter().all(|&b| b == sector[0]), "torn sector");
        }
    }

    #[test]
    fn the_failpoint_turns_the_power_off_for_good() {
        let d = SimDisk::new();
        d.power_cut_after(2);
        d.write(0, &[1]).unwrap();
        d.sync_data().unwrap();
        assert!(d.write(1, &[2]).is_err());
        assert!(d.powered_off());
        assert!(d.sync_data().is_err());
        assert!(d.read(0, &mut [0]).is_err());
        d.restore_power(0);
        assert!(!d.powered_off());
        assert_eq!(read_all(&d), [1], "the synced byte only");
        assert_eq!(d.syncs(), 1);
    }

    #[test]
    fn reading_past_the_end_is_an_error() {
        let d = SimDisk::new();
        d.set_len(4).unwrap();
        assert!(d.read(2, &mut [0; 4]).is_err());
        assert!(d.read(u64::MAX, &mut [0; 1]).is_err());
    }
}
