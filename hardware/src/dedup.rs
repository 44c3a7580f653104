//! De-duplication of RFID reads: a reader sees the same tag many times a
//! second; Tally reports each tag once per window with how often it was
//! read and its best RSSI.
//!
//! Design constraints:
//! - Pure and clock-injected: every method takes `now`; nothing reads a
//!   clock, so tests drive time directly.
//! - A tag's window opens at its first read and closes `window` later; the
//!   report is due then, carrying every read inside the window. The next
//!   read after that opens a new window.
//! - Windows close in the order they opened (all windows have the same
//!   length), so [`Deduplicator::due`] pops a queue: O(1) per report.
//! - Memory is bounded: with `max_tags` windows open, the oldest is closed
//!   early to make room, so nothing is silently dropped.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use tally_sync::Epc;

use crate::rfid::TagRead;

/// The default window.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(2);
/// The default number of windows open at once.
pub const DEFAULT_MAX_TAGS: usize = 65_536;

/// A tag's reads in one window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagReport {
    /// The EPC.
    pub epc: Epc,
    /// Reads in the window.
    pub count: u32,
    /// Best (highest) RSSI in dBm.
    pub best_rssi: i8,
    /// First read.
    pub first_seen: Instant,
    /// Last read.
    pub last_seen: Instant,
}

/// See the module docs.
#[derive(Debug)]
pub struct Deduplicator {
    window: Duration,
    max_tags: usize,
    open: HashMap<Epc, TagReport>,
    /// EPCs in the order their windows opened, with their deadlines.
    order: VecDeque<(Instant, Epc)>,
}

impl Deduplicator {
    /// A de-duplicator with the given window and capacity (at least 1).
    pub fn new(window: Duration, max_tags: usize) -> Self {
        Deduplicator {
            window,
            max_tags: max_tags.max(1),
            open: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// The window length.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Windows open now.
    pub fn open_windows(&self) -> usize {
        self.open.len()
    }

    /// Records a read at `now`. Returns a report closed early if the
    /// capacity was reached.
    pub fn observe(&mut self, read: &TagRead, now: Instant) -> Option<TagReport> {
        if let Some(r) = self.open.get_mut(&read.epc) {
            r.count = r.count.saturating_add(1);
            r.best_rssi = r.best_rssi.max(read.rssi);
            r.last_seen = now;
            return None;
        }
        let evicted = if self.open.len() >= self.max_tags {
            self.pop_oldest()
        } else {
            None
        };
        self.open.insert(
            read.epc.clone(),
            TagReport {
                epc: read.epc.clone(),
                count: 1,
                best_rssi: read.rssi,
                first_seen: now,
                last_seen: now,
            },
        );
        self.order.push_back((now + self.window, read.epc.clone()));
        evicted
    }

    fn pop_oldest(&mut self) -> Option<TagReport> {
        let (_, epc) = self.order.pop_front()?;
        self.open.remove(&epc)
    }

    /// Reports whose window has closed by `now`, oldest first.
    pub fn due(&mut self, now: Instant) -> Vec<TagReport> {
        let mut out = Vec::new();
        while let Some((deadline, _)) = self.order.front() {
            if *deadline > now {
                break;
            }
            if let Some(r) = self.pop_oldest() {
                out.push(r);
            }
        }
        out
    }

    /// When the next window closes, if any is open.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.order.front().map(|(d, _)| *d)
    }

    /// Closes every window now (on shutdown), oldest first.
    pub fn flush(&mut self) -> Vec<TagReport> {
        std::iter::from_fn(|| self.pop_oldest()).collect()
    }
}

impl Default for Deduplicator {
    fn default() -> Self {
        Deduplicator::new(DEFAULT_WINDOW, DEFAULT_MAX_TAGS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(epc: &str, rssi: i8) -> TagRead {
        TagRead {
            epc: Epc::from_hex(epc).unwrap(),
            rssi,
            pc: 0x3000,
            antenna: None,
        }
    }

    const A: &str = "3074257BF7194E4000001A85";
    const B: &str = "3074257BF7194E4000001A86";

    #[test]
    fn one_report_per_window_with_count_and_best_rssi() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut d = Deduplicator::new(Duration::from_secs(2), 100);
        // Table of (time ms, epc, rssi).
        let reads = [
            (0, A, -60),
            (100, A, -50),
            (200, B, -70),
            (1999, A, -65),
            (2000, A, -40),
        ];
        let mut reports = Vec::new();
        for (t, epc, rssi) in reads {
            reports.extend(d.due(ms(t)));
            assert!(d.observe(&read(epc, rssi), ms(t)).is_none());
        }
        // At 2000 ms A's first window (opened at 0) closed before the read
        // at 2000 was observed: 3 reads, best −50. The 2000 ms read opened a
        // new window.
        assert_eq!(reports.len(), 1);
        assert_eq!((reports[0].count, reports[0].best_rssi), (3, -50));
        assert_eq!(d.next_deadline(), Some(ms(2200)));
        assert!(d.due(ms(2199)).is_empty());
        let b = d.due(ms(2200));
        assert_eq!(b.len(), 1);
        assert_eq!(
            (b[0].epc.to_hex().as_str(), b[0].count, b[0].best_rssi),
            (B, 1, -70)
        );
        let rest = d.flush();
        assert_eq!(rest.len(), 1);
        assert_eq!(
            (rest[0].count, rest[0].best_rssi, rest[0].first_seen),
            (1, -40, ms(2000))
        );
        assert_eq!(d.open_windows(), 0);
    }

    #[test]
    fn capacity_closes_oldest_early() {
        let t0 = Instant::now();
        let mut d = Deduplicator::new(Duration::from_secs(2), 1);
        assert!(d.observe(&read(A, -1), t0).is_none());
        let evicted = d.observe(&read(B, -2), t0).unwrap();
        assert_eq!(evicted.epc.to_hex(), A);
        assert_eq!(d.open_windows(), 1);
    }

    #[test]
    fn configurable_window() {
        let t0 = Instant::now();
        let mut d = Deduplicator::new(Duration::from_millis(10), 10);
        d.observe(&read(A, -1), t0);
        assert!(d.due(t0 + Duration::from_millis(9)).is_empty());
        assert_eq!(d.due(t0 + Duration::from_millis(10)).len(), 1);
        assert_eq!(d.window(), Duration::from_millis(10));
    }
}
