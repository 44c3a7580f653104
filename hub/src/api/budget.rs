//! The hub's budget of request-body bytes in flight (read, decoded, or
//! waiting for the writer), taken as bytes arrive and given back when the
//! request is answered. One pool for everything let a few peers that stall
//! large bodies starve every store's syncs (measured: 17 store
//! certificates, or two addresses with no certificate at all, filled it in
//! seconds). So it is tiered:
//!
//! - **Anonymous** bodies (enrolment, before anything is checked) come from
//!   a small pool of their own ([`Budget::anonymous_size`]): they can delay
//!   other enrolments, never a store's sync.
//! - **Known** peers' bodies (a store's certificate, the admin token) come
//!   from the whole budget; the part of each body beyond its first
//!   [`Budget::small_size`] bytes comes from the **bulk** tier as well,
//!   three quarters of the budget. Large bodies together can therefore
//!   never hold more than the bulk tier plus one small part each, and the
//!   last quarter is kept for the small bodies honest syncs are (a few
//!   KiB; 1,000 events are ~200 KiB). Starving them takes a quarter of
//!   the budget in small parts at once, i.e. hundreds of bodies; a store
//!   has one sync and a bounded number of small writes in flight
//!   (`slots.rs`).
//!
//! What does not fit is refused at once (503 `overloaded` with
//! `Retry-After`), never queued.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Who sends a body, as far as the hub knows before reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payer {
    /// A store (its certificate checked) or HQ (the admin token checked).
    Known,
    /// Anyone: enrolment, before its code is checked.
    Anonymous,
}

/// The budget. See the module docs.
#[derive(Debug)]
pub struct Budget {
    total: usize,
    all: Arc<Semaphore>,
    bulk: Arc<Semaphore>,
    anonymous: Arc<Semaphore>,
    anonymous_size: usize,
    small: usize,
}

/// The budget one body holds until it is dropped.
#[derive(Debug, Default)]
pub struct Held {
    permits: Vec<OwnedSemaphorePermit>,
    bytes: usize,
}

impl Held {
    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

/// The body does not fit in what is left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overloaded;

impl Budget {
    /// A budget of `total` bytes (at least 16) for known peers, with its
    /// tiers, and the anonymous pool beside it.
    pub fn new(total: usize) -> Self {
        let total = total.clamp(16, Semaphore::MAX_PERMITS);
        let small = (total / 16).clamp(1, 256 * 1024);
        let bulk = total / 4 * 3;
        let anonymous_size = (total / 32).clamp(64 * 1024, 8 * 1024 * 1024);
        Self {
            total,
            all: Arc::new(Semaphore::new(total)),
            bulk: Arc::new(Semaphore::new(bulk)),
            anonymous: Arc::new(Semaphore::new(anonymous_size)),
            anonymous_size,
            small,
        }
    }

    /// Bytes of a known peer's body taken from the whole budget only.
    pub fn small_size(&self) -> usize {
        self.small
    }

    /// The anonymous pool's size.
    pub fn anonymous_size(&self) -> usize {
        self.anonymous_size
    }

    /// Bytes of known peers' and anonymous bodies held now.
    pub fn in_flight(&self) -> usize {
        self.total.saturating_sub(self.all.available_permits())
            + self
                .anonymous_size
                .saturating_sub(self.anonymous.available_permits())
    }

    /// Takes the next `n` bytes of a body that already holds `held`, or
    /// refuses; on a refusal `held` is unchanged (the caller drops it with
    /// the request).
    pub fn take(&self, payer: Payer, held: &mut Held, n: usize) -> Result<(), Overloaded> {
        if n == 0 {
            return Ok(());
        }
        let count = |n: usize| u32::try_from(n).map_err(|_| Overloaded);
        let mut got = Vec::with_capacity(2);
        match payer {
            Payer::Anonymous => {
                got.push(take(&self.anonymous, count(n)?)?);
            }
            Payer::Known => {
                let beyond_small = (held.bytes + n).saturating_sub(self.small.max(held.bytes));
                if beyond_small > 0 {
                    got.push(take(&self.bulk, count(beyond_small)?)?);
                }
                got.push(take(&self.all, count(n)?)?);
            }
        }
        held.permits.extend(got);
        held.bytes += n;
        Ok(())
    }
}

fn take(pool: &Arc<Semaphore>, n: u32) -> Result<OwnedSemaphorePermit, Overloaded> {
    pool.clone()
        .try_acquire_many_owned(n)
        .map_err(|_| Overloaded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_bodies_leave_a_quarter_for_small_ones() {
        let b = Budget::new(1024 * 1024);
        assert_eq!(b.small_size(), 64 * 1024);
        // Large bodies stall one after another until the bulk tier is full.
        let mut hogs = Vec::new();
        loop {
            let mut h = Held::default();
            let mut refused = false;
            while h.bytes() < 500 * 1024 {
                if b.take(Payer::Known, &mut h, 4096).is_err() {
                    refused = true;
                    break;
                }
            }
            hogs.push(h);
            if refused {
                break;
            }
        }
        let held: usize = hogs.iter().map(Held::bytes).sum();
        assert!(held <= 768 * 1024 + hogs.len() * 64 * 1024, "{held}");
        // A small body still fits, again and again.
        for _ in 0..3 {
            let mut honest = Held::default();
            b.take(Payer::Known, &mut honest, 10 * 1024).unwrap();
            b.take(Payer::Known, &mut honest, 10 * 1024).unwrap();
        }
        // Dropped, the hogs give everything back.
        drop(hogs);
        assert_eq!(b.in_flight(), 0);
    }

    #[test]
    fn anonymous_bodies_have_their_own_pool() {
        let b = Budget::new(1024 * 1024);
        let mut flood = Vec::new();
        loop {
            let mut h = Held::default();
            if b.take(Payer::Anonymous, &mut h, 16 * 1024).is_err() {
                break;
            }
            flood.push(h);
        }
        assert_eq!(flood.len() * 16 * 1024, b.anonymous_size());
        let mut sync = Held::default();
        b.take(Payer::Known, &mut sync, 512 * 1024).unwrap();
        assert_eq!(b.in_flight(), b.anonymous_size() + 512 * 1024);
    }

    #[test]
    fn a_refused_take_keeps_nothing() {
        let b = Budget::new(64);
        let mut h = Held::default();
        b.take(Payer::Known, &mut h, 40).unwrap();
        let before = b.in_flight();
        assert_eq!(b.take(Payer::Known, &mut h, 40), Err(Overloaded));
        assert_eq!((b.in_flight(), h.bytes()), (before, 40));
    }
}
