//! The escrow (bounded) counter for one (item, location): DESIGN.md §2.
//!
//! # Design constraints
//! - State is three grow-only maps merged by pointwise max, so merge is
//!   commutative, associative and idempotent (a state-based CRDT; a state
//!   with only some entries is a valid *delta*):
//!   `P[r]` units added by replica r, `N[r]` units removed by r,
//!   `T[r→s]` rights transferred from r to s. Each map is a
//!   [`crdts::VClock`], whose merge is exactly the pointwise max.
//! - On hand = ΣP − ΣN. Rights of r = `P[r] − N[r] + Σ T[s→r] − Σ T[r→s]`.
//! - r may remove or transfer n only if rights(r) ≥ n, checked locally with
//!   no coordination. Rights are disjoint shares of the stock, so two
//!   replicas can never both sell the same unit, however long they are
//!   partitioned: **no double-selling by construction**.
//! - Only r advances `P[r]`, `N[r]` and `T[r→*]`. [`BoundedCounter::validate`]
//!   checks an incoming state against that rule and against rights(from) ≥ 0,
//!   so the hub can refuse forged or impossible updates.
//! - A failed operation changes nothing.

use std::collections::BTreeSet;

use crdts::{CmRDT, Dot, VClock};
use serde::{Deserialize, Serialize};

use crate::ids::ReplicaId;

/// An operation was refused; the counter is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CounterError {
    /// The replica holds fewer rights than the operation needs.
    #[error("insufficient rights: {requested} requested, {available} available")]
    InsufficientRights {
        /// Rights the replica holds.
        available: u64,
        /// Units the operation needed.
        requested: u64,
    },
    /// A grow-only entry would pass `u64::MAX`.
    #[error("counter entry would overflow")]
    Overflow,
}

/// Which grow-only map an entry belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// `P[r]`: units added.
    Added,
    /// `N[r]`: units removed.
    Removed,
    /// `T[r→s]`: rights transferred.
    Transferred,
}

/// Why an incoming state was refused by [`BoundedCounter::validate`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    /// The sender advanced an entry owned by another replica.
    #[error("{from} advanced {kind:?} entry owned by {owner}")]
    ForeignEntry {
        /// Who sent the update.
        from: ReplicaId,
        /// Whose entry it advanced.
        owner: ReplicaId,
        /// Which map the entry is in.
        kind: EntryKind,
    },
    /// After merging, the sender would hold negative rights: it removed or
    /// transferred more than it had.
    #[error("{from} would hold {rights} rights after merge")]
    NegativeRights {
        /// Who sent the update.
        from: ReplicaId,
        /// Its rights after the merge (negative).
        rights: i128,
    },
    /// The sender transferred rights to itself, which is meaningless.
    #[error("{from} transferred rights to itself")]
    SelfTransfer {
        /// Who sent the update.
        from: ReplicaId,
    },
    /// The sender transferred rights to another store: rights move only
    /// between a store and the hub (the two holders at a location), so
    /// such an entry is nothing any replica could use, only bloat.
    #[error("{from} transferred rights to {to}: rights move only to or from the hub")]
    StoreToStore {
        /// Who sent the update.
        from: ReplicaId,
        /// Where it sent them.
        to: ReplicaId,
    },
}

/// The key of a transfer entry: rights moved from `from` to `to`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TransferKey {
    /// The replica giving rights (the entry's owner).
    pub from: ReplicaId,
    /// The replica receiving them.
    pub to: ReplicaId,
}

/// Escrow counter for one (item, location). See the module docs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "CounterWire", into = "CounterWire")]
pub struct BoundedCounter {
    added: VClock<ReplicaId>,
    removed: VClock<ReplicaId>,
    transferred: VClock<TransferKey>,
}

/// Wire form: `{"p":{r:n}, "n":{r:n}, "t":[[from,to,n]]}`. Transfers are a
/// list because JSON map keys must be strings. Zero entries are dropped
/// and repeated ones keep the max, so any input decodes to a valid state.
#[derive(Serialize, Deserialize)]
struct CounterWire {
    p: Vec<(ReplicaId, u64)>,
    n: Vec<(ReplicaId, u64)>,
    t: Vec<(ReplicaId, ReplicaId, u64)>,
}

impl From<CounterWire> for BoundedCounter {
    fn from(w: CounterWire) -> Self {
        BoundedCounter::from_entries(
            w.p,
            w.n,
            w.t.into_iter()
                .map(|(from, to, n)| (TransferKey { from, to }, n)),
        )
    }
}

impl From<BoundedCounter> for CounterWire {
    fn from(c: BoundedCounter) -> Self {
        let (p, n, t) = c.entries();
        CounterWire {
            p,
            n,
            t: t.into_iter().map(|(k, n)| (k.from, k.to, n)).collect(),
        }
    }
}

fn advance<A: Ord + Clone + std::fmt::Debug>(
    clock: &mut VClock<A>,
    actor: &A,
    n: u64,
) -> Result<(), CounterError> {
    if n == 0 {
        return Ok(());
    }
    let next = clock
        .get(actor)
        .checked_add(n)
        .ok_or(CounterError::Overflow)?;
    clock.apply(Dot::new(actor.clone(), next));
    Ok(())
}

impl BoundedCounter {
    /// An empty counter (nothing added, nothing removed).
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a state from raw entries, with no checks at all: the same
    /// trust as a deserialized one. Use [`Self::validate`] before merging
    /// such a state from someone else.
    pub fn from_entries(
        added: impl IntoIterator<Item = (ReplicaId, u64)>,
        removed: impl IntoIterator<Item = (ReplicaId, u64)>,
        transferred: impl IntoIterator<Item = (TransferKey, u64)>,
    ) -> Self {
        let mut c = Self::new();
        for (r, n) in added {
            c.added.apply(Dot::new(r, n));
        }
        for (r, n) in removed {
            c.removed.apply(Dot::new(r, n));
        }
        for (k, n) in transferred {
            c.transferred.apply(Dot::new(k, n));
        }
        c
    }

    /// Every `P`, `N` and `T` entry, for inspection and forging in tests.
    #[allow(clippy::type_complexity)]
    pub fn entries(
        &self,
    ) -> (
        Vec<(ReplicaId, u64)>,
        Vec<(ReplicaId, u64)>,
        Vec<(TransferKey, u64)>,
    ) {
        let pairs = |c: &VClock<ReplicaId>| c.dots.iter().map(|(r, &n)| (r.clone(), n)).collect();
        (
            pairs(&self.added),
            pairs(&self.removed),
            self.transferred
                .dots
                .iter()
                .map(|(k, &n)| (k.clone(), n))
                .collect(),
        )
    }

    /// Replica `r` adds `n` units (receiving, a return, a positive count).
    /// Adding is always allowed: it grows `r`'s own rights.
    pub fn add(&mut self, r: &ReplicaId, n: u64) -> Result<(), CounterError> {
        advance(&mut self.added, r, n)
    }

    /// Replica `r` removes `n` units (a sale, an order, shrink), if it holds
    /// the rights. On error nothing changes.
    pub fn remove(&mut self, r: &ReplicaId, n: u64) -> Result<(), CounterError> {
        self.check_rights(r, n)?;
        advance(&mut self.removed, r, n)
    }

    /// Replica `r` gives `n` of its rights to `s`. Transferring to oneself
    /// is a no-op. On error nothing changes.
    pub fn transfer(&mut self, r: &ReplicaId, s: &ReplicaId, n: u64) -> Result<(), CounterError> {
        if r == s {
            return Ok(());
        }
        self.check_rights(r, n)?;
        let key = TransferKey {
            from: r.clone(),
            to: s.clone(),
        };
        advance(&mut self.transferred, &key, n)
    }

    fn check_rights(&self, r: &ReplicaId, n: u64) -> Result<(), CounterError> {
        let available = self.rights(r);
        if available < n {
            return Err(CounterError::InsufficientRights {
                available,
                requested: n,
            });
        }
        Ok(())
    }

    /// Merges another state (or delta) in: pointwise max of every entry.
    pub fn merge(&mut self, other: &Self) {
        merge_clock(&mut self.added, &other.added);
        merge_clock(&mut self.removed, &other.removed);
        merge_clock(&mut self.transferred, &other.transferred);
    }

    /// Units on hand: ΣP − ΣN. Never negative in a state built from valid
    /// operations; clamped at 0 otherwise (see [`Self::on_hand_signed`]).
    pub fn value(&self) -> u64 {
        clamp(self.on_hand_signed())
    }

    /// ΣP − ΣN without clamping.
    pub fn on_hand_signed(&self) -> i128 {
        sum(&self.added) - sum(&self.removed)
    }

    /// Units replica `r` may still remove or transfer, clamped at 0.
    pub fn rights(&self, r: &ReplicaId) -> u64 {
        clamp(self.balance(r))
    }

    /// Rights of `r` without clamping:
    /// `P[r] − N[r] + Σ T[s→r] − Σ T[r→s]`.
    pub fn balance(&self, r: &ReplicaId) -> i128 {
        let mut b = i128::from(self.added.get(r)) - i128::from(self.removed.get(r));
        for (key, &n) in &self.transferred.dots {
            if &key.to == r {
                b += i128::from(n);
            }
            if &key.from == r {
                b -= i128::from(n);
            }
        }
        b
    }

    /// `P[r]`.
    pub fn added_by(&self, r: &ReplicaId) -> u64 {
        self.added.get(r)
    }

    /// `N[r]`.
    pub fn removed_by(&self, r: &ReplicaId) -> u64 {
        self.removed.get(r)
    }

    /// `T[r→s]`.
    pub fn transferred(&self, r: &ReplicaId, s: &ReplicaId) -> u64 {
        self.transferred.get(&TransferKey {
            from: r.clone(),
            to: s.clone(),
        })
    }

    /// ΣP: every unit ever added at this location.
    pub fn total_added(&self) -> u64 {
        clamp(sum(&self.added))
    }

    /// ΣN: every unit ever removed at this location.
    pub fn total_removed(&self) -> u64 {
        clamp(sum(&self.removed))
    }

    /// Every replica that appears in any entry.
    pub fn replicas(&self) -> BTreeSet<ReplicaId> {
        let mut out: BTreeSet<ReplicaId> = self.added.dots.keys().cloned().collect();
        out.extend(self.removed.dots.keys().cloned());
        for key in self.transferred.dots.keys() {
            out.insert(key.from.clone());
            out.insert(key.to.clone());
        }
        out
    }

    /// Whether no entry is set.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.transferred.is_empty()
    }

    /// Whether merging `other` in would change nothing (other ≤ self).
    pub fn covers(&self, other: &Self) -> bool {
        other
            .added
            .dots
            .iter()
            .all(|(r, &n)| self.added.get(r) >= n)
            && other
                .removed
                .dots
                .iter()
                .all(|(r, &n)| self.removed.get(r) >= n)
            && other
                .transferred
                .dots
                .iter()
                .all(|(k, &n)| self.transferred.get(k) >= n)
    }

    /// Only the entries owned by `r` (`P[r]`, `N[r]`, `T[r→*]`): what `r`
    /// needs to ship for others to learn its own changes.
    pub fn owned_by(&self, r: &ReplicaId) -> Self {
        let mut out = Self::new();
        if let Some(&n) = self.added.dots.get(r) {
            out.added.dots.insert(r.clone(), n);
        }
        if let Some(&n) = self.removed.dots.get(r) {
            out.removed.dots.insert(r.clone(), n);
        }
        for (k, &n) in &self.transferred.dots {
            if &k.from == r {
                out.transferred.dots.insert(k.clone(), n);
            }
        }
        out
    }

    /// Every entry *not* owned by `r`: what others wrote, which is all `r`
    /// can learn from a peer (its own entries it always has).
    pub fn without(&self, r: &ReplicaId) -> Self {
        let mut out = self.clone();
        out.added.dots.remove(r);
        out.removed.dots.remove(r);
        out.transferred.dots.retain(|k, _| &k.from != r);
        out
    }

    /// Checks an incoming state (or delta) sent by `from` against this one,
    /// without changing anything. Refuses it if `from` advances any entry it
    /// does not own, transfers to itself or from one store to another, or
    /// would be left with negative rights after the merge. The hub calls
    /// this on every sync. O(entries of both).
    pub fn validate(&self, from: &ReplicaId, incoming: &Self) -> Result<(), Violation> {
        let foreign = |owner: &ReplicaId, kind| Violation::ForeignEntry {
            from: from.clone(),
            owner: owner.clone(),
            kind,
        };
        for (r, &n) in &incoming.added.dots {
            if r != from && n > self.added.get(r) {
                return Err(foreign(r, EntryKind::Added));
            }
        }
        for (r, &n) in &incoming.removed.dots {
            if r != from && n > self.removed.get(r) {
                return Err(foreign(r, EntryKind::Removed));
            }
        }
        for (k, &n) in &incoming.transferred.dots {
            if n > self.transferred.get(k) {
                if &k.from != from {
                    return Err(foreign(&k.from, EntryKind::Transferred));
                }
                if k.from == k.to {
                    return Err(Violation::SelfTransfer { from: from.clone() });
                }
                if !k.from.is_hub() && !k.to.is_hub() {
                    return Err(Violation::StoreToStore {
                        from: from.clone(),
                        to: k.to.clone(),
                    });
                }
            }
        }
        let mut merged = self.clone();
        merged.merge(incoming);
        let rights = merged.balance(from);
        if rights < 0 {
            return Err(Violation::NegativeRights {
                from: from.clone(),
                rights,
            });
        }
        Ok(())
    }
}

/// Pointwise max without cloning the whole clock (`VClock::merge` takes it
/// by value); `apply` only ever raises an entry.
fn merge_clock<A: Ord + Clone + std::fmt::Debug>(into: &mut VClock<A>, from: &VClock<A>) {
    for (actor, &n) in &from.dots {
        into.apply(Dot::new(actor.clone(), n));
    }
}

fn sum<A: Ord>(clock: &VClock<A>) -> i128 {
    clock.dots.values().map(|&n| i128::from(n)).sum()
}

fn clamp(v: i128) -> u64 {
    u64::try_from(v.max(0)).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> ReplicaId {
        ReplicaId::new(s).unwrap()
    }

    #[test]
    fn add_remove_transfer_follow_rights() {
        let (a, b) = (r("a"), r("b"));
        let mut c = BoundedCounter::new();
        c.add(&a, 5).unwrap();
        assert_eq!(c.value(), 5);
        assert_eq!(c.rights(&a), 5);
        assert_eq!(c.rights(&b), 0);
        assert_eq!(
            c.remove(&b, 1),
            Err(CounterError::InsufficientRights {
                available: 0,
                requested: 1
            })
        );
        c.transfer(&a, &b, 2).unwrap();
        assert_eq!((c.rights(&a), c.rights(&b)), (3, 2));
        c.remove(&b, 2).unwrap();
        assert_eq!(c.value(), 3);
        let before = c.clone();
        assert!(c.remove(&a, 4).is_err());
        assert!(c.transfer(&a, &b, 4).is_err());
        assert_eq!(c, before, "a refused operation changes nothing");
    }

    #[test]
    fn concurrent_replicas_cannot_both_sell_the_last_unit() {
        let (store, hub) = (r("store"), r("hub"));
        let mut base = BoundedCounter::new();
        base.add(&store, 1).unwrap();
        // Both see "1 on hand" while partitioned; only the rights holder sells.
        let mut at_store = base.clone();
        let mut at_hub = base.clone();
        assert!(at_store.remove(&store, 1).is_ok());
        assert!(at_hub.remove(&hub, 1).is_err());
        at_store.merge(&at_hub);
        assert_eq!(at_store.value(), 0);
    }

    #[test]
    fn validate_refuses_foreign_and_overdrawn_updates() {
        let (s1, s2) = (r("s1"), r("s2"));
        let mut hub_view = BoundedCounter::new();
        hub_view.add(&s1, 3).unwrap();

        // s2 claims to have removed s1's units.
        let mut forged = hub_view.clone();
        forged.removed.apply(Dot::new(s1.clone(), 1));
        assert!(matches!(
            hub_view.validate(&s2, &forged),
            Err(Violation::ForeignEntry {
                kind: EntryKind::Removed,
                ..
            })
        ));

        // s1 removes more than it holds.
        let mut overdrawn = hub_view.clone();
        overdrawn.removed.apply(Dot::new(s1.clone(), 4));
        assert!(matches!(
            hub_view.validate(&s1, &overdrawn),
            Err(Violation::NegativeRights { rights: -1, .. })
        ));

        // s1 gives rights to another store: no entry any replica uses.
        let mut sideways = hub_view.clone();
        sideways.transfer(&s1, &s2, 1).unwrap();
        assert_eq!(
            hub_view.validate(&s1, &sideways),
            Err(Violation::StoreToStore {
                from: s1.clone(),
                to: s2.clone()
            })
        );

        // s1 legitimately sells 2 and gives 1 to the hub.
        let mut ok = hub_view.clone();
        ok.remove(&s1, 2).unwrap();
        ok.transfer(&s1, &ReplicaId::hub(), 1).unwrap();
        assert_eq!(hub_view.validate(&s1, &ok), Ok(()));
        // Re-sending entries of others that the hub already has is fine.
        let mut echo = ok.clone();
        echo.merge(&hub_view);
        assert_eq!(ok.validate(&s2, &echo), Ok(()));
    }

    #[test]
    fn overflow_is_an_error_not_a_wrap() {
        let a = r("a");
        let mut c = BoundedCounter::new();
        c.add(&a, u64::MAX).unwrap();
        assert_eq!(c.add(&a, 1), Err(CounterError::Overflow));
        assert_eq!(c.rights(&a), u64::MAX);
    }

    #[test]
    fn owned_by_keeps_only_own_entries() {
        let (a, b) = (r("a"), ReplicaId::hub());
        let mut c = BoundedCounter::new();
        c.add(&a, 5).unwrap();
        c.add(&b, 5).unwrap();
        c.transfer(&a, &b, 1).unwrap();
        c.remove(&b, 2).unwrap();
        let own = c.owned_by(&a);
        assert_eq!(own.added_by(&a), 5);
        assert_eq!(own.added_by(&b), 0);
        assert_eq!(own.transferred(&a, &b), 1);
        assert_eq!(own.removed_by(&b), 0);
        assert!(c.covers(&own));
        let mut rebuilt = c.without(&a);
        assert_eq!(rebuilt.added_by(&a), 0);
        assert_eq!(rebuilt.removed_by(&b), 2);
        rebuilt.merge(&own);
        assert_eq!(rebuilt, c);
        assert_eq!(BoundedCounter::new().validate(&a, &own), Ok(()));
    }
}
