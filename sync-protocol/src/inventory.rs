//! A whole inventory: one [`BoundedCounter`] per (location, item), with
//! versions for delta extraction.
//!
//! # Design constraints
//! - Every change to a counter (a local operation, or a merge that raised an
//!   entry) stamps it with the next value of a local, monotonic `version`.
//!   [`Inventory::delta_since`] returns the counters of one location whose
//!   stamp is above a cursor, so sync ships only what changed since the peer
//!   last acknowledged: bytes grow with activity, not with catalog size.
//! - A [`Delta`] is just counters (full or partial states); merging it is a
//!   pointwise max, so applying a delta twice, late, or out of order is safe.
//! - [`Inventory::validate_delta`] checks a whole delta as one unit: entries
//!   are validated cumulatively, so splitting a forged update over several
//!   entries for the same key does not get it through.
//! - The agent and hub keep their counters in redb with the same
//!   version-stamp scheme; this in-memory form is what the simulation,
//!   tests and benchmarks use, and it defines the semantics.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::counter::{BoundedCounter, CounterError, Violation};
use crate::gtin::Gtin;
use crate::ids::{LocationId, ReplicaId};

/// Identifies one counter: an item at a location.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ItemKey {
    /// The store (or warehouse) holding the stock.
    pub location: LocationId,
    /// The item.
    pub gtin: Gtin,
}

impl ItemKey {
    /// A key for `gtin` at `location`.
    pub fn new(location: LocationId, gtin: Gtin) -> Self {
        Self { location, gtin }
    }
}

/// One counter in a delta.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeltaEntry {
    /// Which counter.
    pub key: ItemKey,
    /// Its state (full, or only some entries).
    pub counter: BoundedCounter,
}

/// Counters that changed: what one replica ships to another.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delta {
    /// The changed counters.
    pub entries: Vec<DeltaEntry>,
}

impl Delta {
    /// Whether there is nothing to ship.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Number of counters in the delta.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Keeps only the entries `r` owns in each counter, dropping counters
    /// left empty: a replica needs to ship only its own writes.
    pub fn owned_by(&self, r: &ReplicaId) -> Delta {
        Delta {
            entries: self
                .entries
                .iter()
                .map(|e| DeltaEntry {
                    key: e.key.clone(),
                    counter: e.counter.owned_by(r),
                })
                .filter(|e| !e.counter.is_empty())
                .collect(),
        }
    }
}

/// Why a delta was refused by [`Inventory::validate_delta`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeltaViolation {
    /// A counter update broke the escrow rules.
    #[error("counter {gtin} at {location}: {violation}")]
    Counter {
        /// The counter's location.
        location: LocationId,
        /// The counter's item.
        gtin: Gtin,
        /// What was wrong.
        violation: Violation,
    },
    /// The delta names a counter twice (a store's delta has one entry
    /// per changed counter).
    #[error("counter {gtin} at {location} is in the delta twice")]
    Duplicate {
        /// The counter's location.
        location: LocationId,
        /// The counter's item.
        gtin: Gtin,
    },
    /// The sender wrote to a location it may not write to.
    #[error("{from} may not write counters at location {location}")]
    WrongLocation {
        /// Who sent the delta.
        from: ReplicaId,
        /// The location it wrote to.
        location: LocationId,
    },
}

/// Validates a delta sent by `from` against the counters `current` returns
/// (see [`Inventory::validate_delta`]); usable over any storage. The error
/// is `Ok(violation)` when the delta is refused and `Err(e)` when reading
/// a counter failed.
pub fn validate_delta_with<E>(
    from: &ReplicaId,
    location: &LocationId,
    delta: &Delta,
    mut current: impl FnMut(&ItemKey) -> Result<BoundedCounter, E>,
) -> Result<(), Result<DeltaViolation, E>> {
    let mut seen: BTreeSet<&ItemKey> = BTreeSet::new();
    for entry in &delta.entries {
        if &entry.key.location != location {
            return Err(Ok(DeltaViolation::WrongLocation {
                from: from.clone(),
                location: entry.key.location.clone(),
            }));
        }
        // Each counter once, checked against what the receiver has: the
        // work is linear in the delta (a counter named again and again
        // would be checked against a growing merge each time).
        if !seen.insert(&entry.key) {
            return Err(Ok(DeltaViolation::Duplicate {
                location: entry.key.location.clone(),
                gtin: entry.key.gtin,
            }));
        }
        let state = current(&entry.key).map_err(Err)?;
        state.validate(from, &entry.counter).map_err(|violation| {
            Ok(DeltaViolation::Counter {
                location: entry.key.location.clone(),
                gtin: entry.key.gtin,
                violation,
            })
        })?;
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Versioned {
    counter: BoundedCounter,
    version: u64,
}

/// All counters a replica knows, with version stamps. See the module docs.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    counters: BTreeMap<ItemKey, Versioned>,
    changes: BTreeMap<(LocationId, u64), Gtin>,
    version: u64,
}

impl Inventory {
    /// An empty inventory.
    pub fn new() -> Self {
        Self::default()
    }

    /// The latest version stamp: a cursor covering every change so far.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The counter for `key`, if any change ever touched it.
    pub fn get(&self, key: &ItemKey) -> Option<&BoundedCounter> {
        self.counters.get(key).map(|v| &v.counter)
    }

    /// The counter for `key`, or an empty one.
    pub fn counter(&self, key: &ItemKey) -> BoundedCounter {
        self.get(key).cloned().unwrap_or_default()
    }

    /// Number of counters held.
    pub fn len(&self) -> usize {
        self.counters.len()
    }

    /// Whether no counter is held.
    pub fn is_empty(&self) -> bool {
        self.counters.is_empty()
    }

    /// Every counter, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&ItemKey, &BoundedCounter)> {
        self.counters.iter().map(|(k, v)| (k, &v.counter))
    }

    /// Every counter at `location`, in item order.
    pub fn at_location<'a>(
        &'a self,
        location: &'a LocationId,
    ) -> impl Iterator<Item = (&'a ItemKey, &'a BoundedCounter)> + 'a {
        let lo = ItemKey::new(location.clone(), Gtin::MIN);
        let hi = ItemKey::new(location.clone(), Gtin::MAX);
        self.counters.range(lo..=hi).map(|(k, v)| (k, &v.counter))
    }

    /// Runs `op` on a copy of `key`'s counter and keeps the result only if
    /// `op` succeeds; stamps a new version if the counter changed.
    pub fn update<T, E>(
        &mut self,
        key: &ItemKey,
        op: impl FnOnce(&mut BoundedCounter) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut counter = self.counter(key);
        let out = op(&mut counter)?;
        self.put(key, counter);
        Ok(out)
    }

    /// Stores `counter` for `key`, stamping a new version if it differs.
    pub fn put(&mut self, key: &ItemKey, counter: BoundedCounter) -> bool {
        let old = self.counters.get(key);
        if old.map(|v| &v.counter) == Some(&counter) || (old.is_none() && counter.is_empty()) {
            return false;
        }
        if let Some(old) = old {
            self.changes.remove(&(key.location.clone(), old.version));
        }
        self.version += 1;
        self.changes
            .insert((key.location.clone(), self.version), key.gtin);
        self.counters.insert(
            key.clone(),
            Versioned {
                counter,
                version: self.version,
            },
        );
        true
    }

    /// Replica `r` adds `n` units of an item at a location.
    pub fn add(&mut self, key: &ItemKey, r: &ReplicaId, n: u64) -> Result<(), CounterError> {
        self.update(key, |c| c.add(r, n))
    }

    /// Replica `r` removes `n` units, if it holds the rights.
    pub fn remove(&mut self, key: &ItemKey, r: &ReplicaId, n: u64) -> Result<(), CounterError> {
        self.update(key, |c| c.remove(r, n))
    }

    /// Replica `r` gives `n` rights to `s`, if it holds them.
    pub fn transfer(
        &mut self,
        key: &ItemKey,
        r: &ReplicaId,
        s: &ReplicaId,
        n: u64,
    ) -> Result<(), CounterError> {
        self.update(key, |c| c.transfer(r, s, n))
    }

    /// Merges a delta in. Returns how many counters changed.
    pub fn merge_delta(&mut self, delta: &Delta) -> usize {
        let mut changed = 0;
        for entry in &delta.entries {
            let current = self.get(&entry.key);
            if current.is_some_and(|c| c.covers(&entry.counter)) || entry.counter.is_empty() {
                continue;
            }
            let mut merged = current.cloned().unwrap_or_default();
            merged.merge(&entry.counter);
            if self.put(&entry.key, merged) {
                changed += 1;
            }
        }
        changed
    }

    /// Checks that `from` may send `delta`: every entry is at `location`,
    /// and, taken cumulatively, no entry breaks [`BoundedCounter::validate`].
    /// Changes nothing.
    pub fn validate_delta(
        &self,
        from: &ReplicaId,
        location: &LocationId,
        delta: &Delta,
    ) -> Result<(), DeltaViolation> {
        validate_delta_with(from, location, delta, |k| {
            Ok::<_, std::convert::Infallible>(self.counter(k))
        })
        .map_err(|e| match e {
            Ok(v) => v,
            Err(never) => match never {},
        })
    }

    /// The counters at `location` changed after version `cursor`, oldest
    /// change first. The caller's next cursor is [`Self::version`].
    pub fn delta_since(&self, location: &LocationId, cursor: u64) -> Delta {
        self.delta_since_limited(location, cursor, usize::MAX).0
    }

    /// Like [`Self::delta_since`], at most `limit` counters; also returns
    /// the cursor to ask from next time (the version just before the
    /// first change left out, or [`Self::version`] if everything fitted).
    pub fn delta_since_limited(
        &self,
        location: &LocationId,
        cursor: u64,
        limit: usize,
    ) -> (Delta, u64) {
        let from = (location.clone(), cursor.saturating_add(1));
        let to = (location.clone(), u64::MAX);
        let mut next = self.version.max(cursor);
        let mut entries = Vec::new();
        for ((loc, version), gtin) in self.changes.range(from..=to) {
            if entries.len() == limit {
                next = version - 1;
                break;
            }
            let key = ItemKey::new(loc.clone(), *gtin);
            if let Some(counter) = self.get(&key) {
                entries.push(DeltaEntry {
                    key,
                    counter: counter.clone(),
                });
            }
        }
        (Delta { entries }, next)
    }

    /// Whether both hold the same counters at `location` (versions aside).
    pub fn same_state_at(&self, other: &Inventory, location: &LocationId) -> bool {
        self.at_location(location).eq(other.at_location(location))
    }

    /// Whether both hold the same counters everywhere (versions aside).
    pub fn same_state(&self, other: &Inventory) -> bool {
        self.iter().eq(other.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(loc: &str, body: u64) -> ItemKey {
        ItemKey::new(
            LocationId::new(loc).unwrap(),
            Gtin::from_body(body).unwrap(),
        )
    }

    #[test]
    fn delta_since_ships_only_changes_after_cursor() {
        let s = ReplicaId::new("s1").unwrap();
        let loc = LocationId::new("s1").unwrap();
        let mut inv = Inventory::new();
        inv.add(&key("s1", 1), &s, 5).unwrap();
        inv.add(&key("s1", 2), &s, 5).unwrap();
        inv.add(&key("s2", 3), &s, 5).unwrap();
        let cursor = inv.version();
        assert_eq!(inv.delta_since(&loc, 0).len(), 2);
        assert!(inv.delta_since(&loc, cursor).is_empty());
        inv.remove(&key("s1", 1), &s, 1).unwrap();
        let d = inv.delta_since(&loc, cursor);
        assert_eq!(d.len(), 1);
        assert_eq!(d.entries[0].key, key("s1", 1));
        // A refused operation stamps nothing.
        let v = inv.version();
        assert!(inv.remove(&key("s1", 2), &s, 6).is_err());
        assert_eq!(inv.version(), v);
    }

    #[test]
    fn merge_delta_is_idempotent_and_restamps_changes() {
        let s = ReplicaId::new("s1").unwrap();
        let loc = LocationId::new("s1").unwrap();
        let mut a = Inventory::new();
        a.add(&key("s1", 1), &s, 5).unwrap();
        let d = a.delta_since(&loc, 0);
        let mut b = Inventory::new();
        assert_eq!(b.merge_delta(&d), 1);
        let v = b.version();
        assert_eq!(b.merge_delta(&d), 0);
        assert_eq!(b.version(), v);
        assert!(a.same_state(&b));
    }

    #[test]
    fn validate_delta_names_each_counter_once_and_is_location_bound() {
        let s = ReplicaId::new("s1").unwrap();
        let hub_id = ReplicaId::hub();
        let loc = LocationId::new("s1").unwrap();
        let mut hub = Inventory::new();
        hub.add(&key("s1", 1), &s, 3).unwrap();
        let base = hub.counter(&key("s1", 1));
        let mut sold = base.clone();
        sold.remove(&s, 3).unwrap();
        let mut moved = base.clone();
        moved.transfer(&s, &hub_id, 3).unwrap();
        let one = |c: &BoundedCounter| DeltaEntry {
            key: key("s1", 1),
            counter: c.clone(),
        };
        // Each valid alone.
        for c in [&sold, &moved] {
            let d = Delta {
                entries: vec![one(c)],
            };
            assert_eq!(hub.validate_delta(&s, &loc, &d), Ok(()));
        }
        // Two entries for one key (together overdrawing): refused as
        // such, before any of them is merged.
        let twice = Delta {
            entries: vec![one(&sold), one(&moved)],
        };
        assert!(matches!(
            hub.validate_delta(&s, &loc, &twice),
            Err(DeltaViolation::Duplicate { .. })
        ));
        // Both in one entry: overdrawn.
        let mut both = sold.clone();
        both.merge(&moved);
        assert!(matches!(
            hub.validate_delta(
                &s,
                &loc,
                &Delta {
                    entries: vec![one(&both)]
                }
            ),
            Err(DeltaViolation::Counter {
                violation: crate::counter::Violation::NegativeRights { .. },
                ..
            })
        ));
        // Rights given to another store: refused.
        let mut sideways = base.clone();
        sideways
            .transfer(&s, &ReplicaId::new("x").unwrap(), 1)
            .unwrap();
        assert!(matches!(
            hub.validate_delta(
                &s,
                &loc,
                &Delta {
                    entries: vec![one(&sideways)]
                }
            ),
            Err(DeltaViolation::Counter {
                violation: crate::counter::Violation::StoreToStore { .. },
                ..
            })
        ));
        let mut elsewhere = Inventory::new();
        elsewhere.add(&key("s2", 1), &s, 1).unwrap();
        let d = elsewhere.delta_since(&LocationId::new("s2").unwrap(), 0);
        assert!(matches!(
            hub.validate_delta(&s, &loc, &d),
            Err(DeltaViolation::WrongLocation { .. })
        ));
    }
}
