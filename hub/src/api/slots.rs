//! What one store may have in flight at the hub at once: one sync, and a
//! bounded number of other writes (requests for rights, reports of
//! released rights). A store beyond them is answered 429 with
//! `Retry-After` instead of taking more places in the writer's queue, so
//! one store cannot slow every other store's writes. Each place is a
//! [`Slot`], freed when dropped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tally_sync::LocationId;

/// Most writes other than syncs one store may have in flight (an honest
/// agent has at most one per item its tills are short of at once).
pub const MAX_OTHER_WRITES: u32 = 64;

/// What a slot is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A sync (one at a time).
    Sync,
    /// Any other write ([`MAX_OTHER_WRITES`] at a time).
    Other,
}

/// The stores' places in flight.
#[derive(Debug, Default)]
pub struct StoreSlots {
    open: Mutex<HashMap<LocationId, (bool, u32)>>,
}

/// A store's place in flight; dropping it frees the place.
#[derive(Debug)]
pub struct Slot {
    slots: Arc<StoreSlots>,
    location: LocationId,
    kind: Kind,
}

impl StoreSlots {
    /// A place of `kind` for `location`, unless the store has all of them.
    pub fn take(self: &Arc<Self>, location: &LocationId, kind: Kind) -> Option<Slot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let (sync, others) = open.entry(location.clone()).or_insert((false, 0));
        match kind {
            Kind::Sync if *sync => return None,
            Kind::Sync => *sync = true,
            Kind::Other if *others >= MAX_OTHER_WRITES => return None,
            Kind::Other => *others += 1,
        }
        Some(Slot {
            slots: self.clone(),
            location: location.clone(),
            kind,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((sync, others)) = open.get_mut(&self.location) {
            match self.kind {
                Kind::Sync => *sync = false,
                Kind::Other => *others = others.saturating_sub(1),
            }
            if !*sync && *others == 0 {
                open.remove(&self.location);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_sync_and_a_bounded_number_of_other_writes_per_store() {
        let slots = Arc::new(StoreSlots::default());
        let a = LocationId::new("a").unwrap_or_else(|e| panic!("{e}"));
        let b = LocationId::new("b").unwrap_or_else(|e| panic!("{e}"));
        let sync = slots.take(&a, Kind::Sync);
        assert!(sync.is_some());
        assert!(slots.take(&a, Kind::Sync).is_none(), "a second sync waits");
        assert!(
            slots.take(&b, Kind::Sync).is_some(),
            "another store is not held up"
        );
        let others: Vec<_> = (0..MAX_OTHER_WRITES)
            .map(|_| slots.take(&a, Kind::Other))
            .collect();
        assert!(others.iter().all(Option::is_some));
        assert!(slots.take(&a, Kind::Other).is_none());
        drop(sync);
        assert!(
            slots.take(&a, Kind::Sync).is_some(),
            "the sync's place is free again"
        );
        drop(others);
        assert!(
            slots.open.lock().map(|o| o.is_empty()).unwrap_or(false),
            "nothing left behind"
        );
    }
}
