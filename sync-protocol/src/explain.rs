//! What a store's own events explain of its own counter entries, so the
//! hub can refuse a delta that grows (or shrinks) a store's stock with no
//! event behind it.
//!
//! # Design constraints
//! - A store's `P[store]` and `N[store]` entries move only by the events it
//!   records ([`crate::ledger::apply_event`]): receipts, returns, counts
//!   up and an override's found units add; sales and counts down remove.
//!   Rights moves (rebalancing, rights on demand, releases) are `T`
//!   entries, governed by the escrow checks
//!   ([`crate::counter::BoundedCounter::validate`]), not by this module.
//! - [`effect`] is the per-item effect of one event on its recorder's own
//!   entries; it mirrors `apply_event` exactly (a property test holds the
//!   two together). The hub keeps, per (store, item), the running sum of
//!   the effects of the store's accepted events ([`Explained`]): O(1)
//!   state per item, O(lines) work per new event, never a recomputation
//!   over history.
//! - A delta entry is *explained* when its store-owned `P` and `N` are at
//!   most what the store's events (in this request or an earlier one) add
//!   up to ([`check_own`]). Merge is by max, so a state behind its events
//!   (events arrive before the counters they moved: the agent writes
//!   counters behind its journal) is always fine; a state ahead is not.
//! - Sums are checked: an overflow is a refusal, never a wrap.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::counter::{BoundedCounter, EntryKind};
use crate::event::{Direction, Event, EventKind};
use crate::gtin::Gtin;
use crate::ids::ReplicaId;

/// Units a store's accepted events add to its own `P` and `N` entries of
/// one counter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Explained {
    /// Σ units the events added (`P[store]` may be at most this).
    pub added: u64,
    /// Σ units the events removed (`N[store]` may be at most this).
    pub removed: u64,
}

/// A sum of quantities passed `u64::MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the quantities add up to more than {}", u64::MAX)]
pub struct Overflow;

impl Explained {
    /// `self + other`, checked.
    pub fn plus(self, other: Explained) -> Result<Explained, Overflow> {
        Ok(Explained {
            added: self.added.checked_add(other.added).ok_or(Overflow)?,
            removed: self.removed.checked_add(other.removed).ok_or(Overflow)?,
        })
    }

    /// What a counter's own entries of `r` already show (the baseline of
    /// a hub that starts keeping these sums over existing counters).
    pub fn shown_by(counter: &BoundedCounter, r: &ReplicaId) -> Explained {
        Explained {
            added: counter.added_by(r),
            removed: counter.removed_by(r),
        }
    }
}

/// The effect of `event` on its recorder's own `P` and `N` entries, per
/// item: what [`crate::ledger::apply_event`] moves when it accepts it.
pub fn effect(event: &Event) -> Result<BTreeMap<Gtin, Explained>, Overflow> {
    let mut out: BTreeMap<Gtin, Explained> = BTreeMap::new();
    let mut add = |gtin: Gtin, added: u64, removed: u64| -> Result<(), Overflow> {
        let e = out.entry(gtin).or_default();
        *e = e.plus(Explained { added, removed })?;
        Ok(())
    };
    match &event.kind {
        EventKind::Sale { override_, .. } => {
            if let Some(ov) = override_ {
                for s in &ov.shortfall {
                    add(s.gtin, s.units, 0)?;
                }
            }
            for l in &event.lines {
                add(l.gtin, 0, l.qty)?;
            }
        }
        EventKind::Order { .. } | EventKind::TransferOut { .. } => {
            for l in &event.lines {
                add(l.gtin, 0, l.qty)?;
            }
        }
        EventKind::Return { .. } | EventKind::Receipt | EventKind::TransferIn { .. } => {
            for l in &event.lines {
                add(l.gtin, l.qty, 0)?;
            }
        }
        EventKind::CountAdjustment { direction, .. } => {
            for l in &event.lines {
                match direction {
                    Direction::Up => add(l.gtin, l.qty, 0)?,
                    Direction::Down => add(l.gtin, 0, l.qty)?,
                }
            }
        }
        EventKind::Fulfilment { .. } => {}
    }
    // An entry that moves nothing explains nothing (a count that matched).
    out.retain(|_, e| *e != Explained::default());
    Ok(out)
}

/// A delta entry its sender's events do not explain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind:?} entry of {replica} is {claimed}, but its events explain {explained}")]
pub struct Unexplained {
    /// Whose entry.
    pub replica: ReplicaId,
    /// `Added` (`P`) or `Removed` (`N`).
    pub kind: EntryKind,
    /// The entry's value in the delta.
    pub claimed: u64,
    /// What the replica's accepted events add up to.
    pub explained: u64,
}

/// Checks that `incoming`'s entries owned by `r` (`P[r]`, `N[r]`) are at
/// most what `explained` (the sums of `r`'s events) allows.
pub fn check_own(
    r: &ReplicaId,
    incoming: &BoundedCounter,
    explained: Explained,
) -> Result<(), Unexplained> {
    let added = incoming.added_by(r);
    if added > explained.added {
        return Err(Unexplained {
            replica: r.clone(),
            kind: EntryKind::Added,
            claimed: added,
            explained: explained.added,
        });
    }
    let removed = incoming.removed_by(r);
    if removed > explained.removed {
        return Err(Unexplained {
            replica: r.clone(),
            kind: EntryKind::Removed,
            claimed: removed,
            explained: explained.removed,
        });
    }
    Ok(())
}

/// `own` (a store's own entries, as a request for rights or a report of
/// rights released carries them) with its `P[r]` and `N[r]` lowered to
/// what the hub can accept: what `r`'s events explain, or what the hub's
/// `current` counter already shows if more. The escrow checks then run on
/// the result as on any delta.
///
/// Both are lowered, not only `P`: an honest store sells units of a
/// receipt it has not synced yet, and with `P` lowered but `N` kept the
/// hub would see it overdrawn and refuse its report (a till's request for
/// rights, a release for an online order): a sale lost. `N` ahead of its
/// events tells the hub nothing it can check (a store could as well leave
/// it out), so nothing of safety rests on it; the sales reach the hub with
/// the sync that carries them. With both lowered, an honest store that
/// gives the hub only rights it can explain ([`Unsynced`]) always passes
/// the escrow checks (a property test holds this), and a forged `P` never
/// reaches the hub's counters this way.
///
/// Both are also raised to at least what `r`'s events explain: the hub
/// has accepted those events, so `N` below them would hide synced sales
/// from the escrow check and let a store hand the hub rights its sales
/// already used (the hub would then sell those units again). An honest
/// store's entries are never below its synced events.
pub fn clamp_own(
    r: &ReplicaId,
    own: &BoundedCounter,
    explained: Explained,
    current: &BoundedCounter,
) -> BoundedCounter {
    let (added, removed, transferred) = own.entries();
    let added_cap = explained.added.max(current.added_by(r));
    let removed_cap = explained.removed.max(current.removed_by(r));
    let capped = |cap: u64| {
        move |(who, n): (ReplicaId, u64)| {
            if &who == r {
                (who, n.min(cap))
            } else {
                (who, n)
            }
        }
    };
    let lowered = BoundedCounter::from_entries(
        added.into_iter().map(capped(added_cap)),
        removed.into_iter().map(capped(removed_cap)),
        transferred,
    );
    with_events(&lowered, r, explained)
}

/// `counter` with `r`'s own `P` and `N` entries raised to at least what
/// `r`'s events explain: what the hub knows of `r`'s stock from the
/// events it accepted, whatever the counters `r` sent. The escrow check of
/// a store's delta runs on this, so synced sales count even when the
/// store's `N` lags them (or is forged low).
pub fn with_events(
    counter: &BoundedCounter,
    r: &ReplicaId,
    explained: Explained,
) -> BoundedCounter {
    let mut floor = BoundedCounter::default();
    if explained != Explained::default() {
        floor = BoundedCounter::from_entries(
            [(r.clone(), explained.added)],
            [(r.clone(), explained.removed)],
            [],
        );
    }
    let mut out = counter.clone();
    out.merge(&floor);
    out
}

/// What a store's events that the hub has not acknowledged add to its own
/// `P` entries, per item: units the store holds that the hub cannot yet
/// explain.
///
/// A store gives the hub only rights the hub can explain
/// ([`Self::explainable_rights`]): its rebalancing (`exchange::store_apply`)
/// and its releases for online orders (`rights::release`) move at most
/// that much. The hub lowers a store's `P` to what its synced events
/// explain ([`clamp_own`]); a transfer to the hub out of a receipt still
/// in the outbox would leave the store overdrawn in the hub's eyes, and
/// the hub would refuse every report of that counter (a till's request
/// for rights, a release) until the next sync carried the receipt: a sale
/// lost with the units on the shelf.
///
/// Built from the outbox, one event at a time ([`Self::add`]); past
/// [`Self::MAX_EVENTS`] events it gives up and counts as unknown (no
/// rights given), so the cost is bounded whatever the backlog. A store
/// with that many events unsynced gives its reserve at a later sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsynced {
    /// Units added per item; `None` once unknown.
    added: Option<BTreeMap<Gtin, u64>>,
    /// Events summed.
    events: usize,
}

impl Unsynced {
    /// Most events summed before the sums count as unknown.
    pub const MAX_EVENTS: usize = 4_096;

    /// Nothing unsynced.
    pub fn none() -> Self {
        Self {
            added: Some(BTreeMap::new()),
            events: 0,
        }
    }

    /// Unknown: the store gives no rights (an event it cannot read).
    pub fn unknown() -> Self {
        Self {
            added: None,
            events: 0,
        }
    }

    /// Sums `events`, stopping once unknown.
    pub fn of<'a>(events: impl IntoIterator<Item = &'a Event>) -> Self {
        let mut out = Self::none();
        for e in events {
            if out.add(e).is_break() {
                break;
            }
        }
        out
    }

    /// Adds one unsynced event; breaks once the sums are unknown (past
    /// [`Self::MAX_EVENTS`], or a sum overflowing).
    pub fn add(&mut self, event: &Event) -> std::ops::ControlFlow<()> {
        use std::ops::ControlFlow;
        self.events = self.events.saturating_add(1);
        let known = match (&mut self.added, effect(event)) {
            (Some(added), Ok(moves)) if self.events <= Self::MAX_EVENTS => {
                moves.into_iter().all(|(gtin, e)| {
                    let n = added.entry(gtin).or_default();
                    n.checked_add(e.added).map(|sum| *n = sum).is_some()
                })
            }
            _ => false,
        };
        if known {
            ControlFlow::Continue(())
        } else {
            self.added = None;
            ControlFlow::Break(())
        }
    }

    /// Units of `gtin` the unsynced events add (`None`: unknown).
    pub fn added(&self, gtin: Gtin) -> Option<u64> {
        self.added
            .as_ref()
            .map(|a| a.get(&gtin).copied().unwrap_or(0))
    }

    /// Of `r`'s rights in `counter` (of `gtin`), those the hub can
    /// explain: the rights less what unsynced events added (0 if unknown).
    pub fn explainable_rights(&self, counter: &BoundedCounter, r: &ReplicaId, gtin: Gtin) -> u64 {
        self.added(gtin)
            .map_or(0, |added| counter.rights(r).saturating_sub(added))
    }

    /// The rest of `r`'s rights: those the hub cannot explain yet.
    pub fn unexplained_rights(&self, counter: &BoundedCounter, r: &ReplicaId, gtin: Gtin) -> u64 {
        counter
            .rights(r)
            .saturating_sub(self.explainable_rights(counter, r, gtin))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::epcs::EpcLedger;
    use crate::event::{Line, Override, Shortfall};
    use crate::ids::{EventId, LocationId};
    use crate::ledger::apply_event;
    use proptest::prelude::*;

    fn gtin(n: u64) -> Gtin {
        Gtin::from_body(n).unwrap()
    }

    fn r() -> ReplicaId {
        ReplicaId::new("s1").unwrap()
    }

    fn event(n: u64, kind: EventKind, lines: Vec<(u64, u64)>) -> Event {
        Event {
            id: EventId::v7(n, [1; 10]),
            location: LocationId::new("s1").unwrap(),
            replica: r(),
            at_ms: n,
            kind,
            lines: lines
                .into_iter()
                .map(|(g, qty)| Line {
                    gtin: gtin(g),
                    qty,
                    unit_price_minor: 0,
                    epc: None,
                })
                .collect(),
            staff: Default::default(),
            price_overrides: Vec::new(),
        }
    }

    /// An arbitrary event of any kind a store records.
    fn any_event() -> impl Strategy<Value = (u8, Vec<(u64, u64)>, u64)> {
        (
            0u8..5,
            prop::collection::vec((1u64..4, 1u64..20), 1..4),
            0u64..20,
        )
    }

    fn build(n: u64, (kind, lines, extra): (u8, Vec<(u64, u64)>, u64)) -> Event {
        let kind = match kind {
            0 => EventKind::Receipt,
            1 => EventKind::Return {
                original_sale: None,
            },
            2 => EventKind::Sale {
                tenders: vec![],
                override_: Some(Override {
                    approver: "m".into(),
                    reason: "r".into(),
                    shortfall: vec![Shortfall {
                        gtin: gtin(lines[0].0),
                        units: extra.min(lines[0].1),
                    }],
                }),
            },
            3 => EventKind::CountAdjustment {
                counted: extra,
                direction: Direction::Up,
                unresolved: 0,
            },
            _ => EventKind::Sale {
                tenders: vec![],
                override_: None,
            },
        };
        let lines = if matches!(kind, EventKind::CountAdjustment { .. }) {
            vec![lines[0]]
        } else {
            lines
        };
        event(n, kind, lines)
    }

    proptest! {
        /// The law that holds `effect` to `apply_event`: whatever events a
        /// store records, its own entries equal the sums of their effects,
        /// so a delta explained by its events is accepted, and raising any
        /// own entry by one is refused.
        #[test]
        fn effects_add_up_to_what_apply_event_moved(
            events in prop::collection::vec(any_event(), 0..30),
        ) {
            let mut counters: BTreeMap<Gtin, BoundedCounter> = BTreeMap::new();
            let mut explained: BTreeMap<Gtin, Explained> = BTreeMap::new();
            for (i, spec) in events.into_iter().enumerate() {
                let e = build(i as u64 + 1, spec);
                // Refused events (a sale beyond rights) move nothing and
                // are never sent.
                let Ok(applied) = apply_event(&e, &counters, &EpcLedger::new()) else {
                    continue;
                };
                counters.extend(applied.counters);
                for (g, x) in effect(&e).unwrap() {
                    let s = explained.entry(g).or_default();
                    *s = s.plus(x).unwrap();
                }
            }
            for (g, c) in &counters {
                let x = explained.get(g).copied().unwrap_or_default();
                prop_assert_eq!(Explained::shown_by(c, &r()), x);
                prop_assert!(check_own(&r(), &c.owned_by(&r()), x).is_ok());
                let mut more = c.clone();
                more.add(&r(), 1).unwrap();
                prop_assert!(check_own(&r(), &more, x).is_err());
                if c.rights(&r()) > 0 {
                    let mut fewer = c.clone();
                    fewer.remove(&r(), 1).unwrap();
                    prop_assert!(check_own(&r(), &fewer, x).is_err());
                }
            }
        }
    }

    /// One step of an honest store's life, for the law below.
    #[derive(Debug, Clone)]
    enum Step {
        /// It records an event.
        Record((u8, Vec<(u64, u64)>, u64)),
        /// It gives the hub up to this many rights to item 1, as much as
        /// the hub can explain.
        Give(u64),
        /// A sync: the hub takes every event so far and the store's
        /// entries; the store hears the answer or not.
        Sync { heard: bool },
        /// It reports its own entries of item 1 (a request for rights, a
        /// release).
        Report,
    }

    fn any_step() -> impl Strategy<Value = Step> {
        prop_oneof![
            3 => any_event().prop_map(Step::Record),
            2 => (1u64..10).prop_map(Step::Give),
            1 => any::<bool>().prop_map(|heard| Step::Sync { heard }),
            2 => Just(Step::Report),
        ]
    }

    proptest! {
        /// The law rights on demand rests on: a store that gives the hub
        /// only rights it can explain ([`Unsynced::explainable_rights`],
        /// over the events after the last answer it heard) never has a
        /// report refused by the hub, which lowers it to what the synced
        /// events explain ([`clamp_own`]) and runs the escrow checks;
        /// whatever it records meanwhile, receipts and sales of them
        /// included, and whether or not it heard the hub's answers.
        #[test]
        fn an_honest_stores_reports_always_pass(
            steps in prop::collection::vec(any_step(), 0..60),
        ) {
            let item = gtin(1);
            let hub = ReplicaId::hub();
            let mut counters: BTreeMap<Gtin, BoundedCounter> = BTreeMap::new();
            let mut log: Vec<Event> = Vec::new();
            // Events the hub took, and those the store knows it took.
            let (mut hub_took, mut store_heard) = (0usize, 0usize);
            let mut at_hub = BoundedCounter::new();
            let explained_by = |events: &[Event]| {
                events.iter().fold(Explained::default(), |sum, e| {
                    let x = effect(e).unwrap().get(&item).copied().unwrap_or_default();
                    sum.plus(x).unwrap()
                })
            };
            for (i, step) in steps.into_iter().enumerate() {
                match step {
                    Step::Record(spec) => {
                        let e = build(i as u64 + 1, spec);
                        if let Ok(applied) = apply_event(&e, &counters, &EpcLedger::new()) {
                            counters.extend(applied.counters);
                            log.push(e);
                        }
                    }
                    Step::Give(n) => {
                        let c = counters.entry(item).or_default();
                        let unsynced = Unsynced::of(&log[store_heard..]);
                        let n = n.min(unsynced.explainable_rights(c, &r(), item));
                        if n > 0 {
                            c.transfer(&r(), &hub, n).unwrap();
                        }
                    }
                    Step::Sync { heard } => {
                        hub_took = log.len();
                        if let Some(c) = counters.get(&item) {
                            at_hub.merge(&c.owned_by(&r()));
                        }
                        if heard {
                            store_heard = hub_took;
                        }
                    }
                    Step::Report => {
                        let own = counters.get(&item).cloned().unwrap_or_default().owned_by(&r());
                        let x = explained_by(&log[..hub_took]);
                        let clamped = clamp_own(&r(), &own, x, &at_hub);
                        prop_assert!(
                            at_hub.validate(&r(), &clamped).is_ok(),
                            "{:?}", at_hub.validate(&r(), &clamped)
                        );
                        at_hub.merge(&clamped);
                    }
                }
            }
        }

        /// [`Unsynced`] sums exactly what the events add to their
        /// recorder's own `P`, per item.
        #[test]
        fn unsynced_sums_the_events_additions(
            events in prop::collection::vec(any_event(), 0..30),
        ) {
            let events: Vec<Event> =
                events.into_iter().enumerate().map(|(i, e)| build(i as u64 + 1, e)).collect();
            let unsynced = Unsynced::of(&events);
            for g in 1..4 {
                let expected: u64 = events
                    .iter()
                    .map(|e| effect(e).unwrap().get(&gtin(g)).map_or(0, |x| x.added))
                    .sum();
                prop_assert_eq!(unsynced.added(gtin(g)), Some(expected));
            }
        }
    }

    #[test]
    fn too_many_unsynced_events_give_nothing() {
        let e = event(1, EventKind::Receipt, vec![(1, 1)]);
        let mut c = BoundedCounter::new();
        c.add(&r(), 100).unwrap();
        let few = Unsynced::of(std::iter::repeat_n(&e, Unsynced::MAX_EVENTS));
        assert_eq!(few.added(gtin(1)), Some(Unsynced::MAX_EVENTS as u64));
        assert_eq!(few.explainable_rights(&c, &r(), gtin(2)), 100);
        let many = Unsynced::of(std::iter::repeat_n(&e, Unsynced::MAX_EVENTS + 1));
        assert_eq!(many.added(gtin(1)), None);
        assert_eq!(many.explainable_rights(&c, &r(), gtin(2)), 0);
        assert_eq!(Unsynced::none().explainable_rights(&c, &r(), gtin(1)), 100);
    }

    #[test]
    fn an_overflowing_sum_is_an_error_not_a_wrap() {
        let big = Explained {
            added: u64::MAX,
            removed: 0,
        };
        assert_eq!(
            big.plus(Explained {
                added: 1,
                removed: 0
            }),
            Err(Overflow)
        );
        let e = event(1, EventKind::Receipt, vec![(1, u64::MAX), (1, 1)]);
        assert_eq!(effect(&e), Err(Overflow));
    }

    #[test]
    fn clamping_keeps_what_is_explained_or_already_shown() {
        let mut own = BoundedCounter::new();
        own.add(&r(), 10).unwrap();
        own.remove(&r(), 4).unwrap();
        own.transfer(&r(), &ReplicaId::hub(), 1).unwrap();
        let x = Explained {
            added: 6,
            removed: 0,
        };
        let mut current = BoundedCounter::new();
        current.add(&r(), 7).unwrap();
        let c = clamp_own(&r(), &own, x, &current);
        assert_eq!(c.added_by(&r()), 7, "what the hub already shows");
        assert_eq!(c.removed_by(&r()), 0, "removals wait for their events too");
        assert_eq!(c.transferred(&r(), &ReplicaId::hub()), 1);
        // Fully explained: unchanged.
        let all = Explained {
            added: 10,
            removed: 4,
        };
        assert_eq!(clamp_own(&r(), &own, all, &current), own);
    }

    #[test]
    fn a_state_behind_its_events_is_explained() {
        let x = Explained {
            added: 5,
            removed: 2,
        };
        let mut c = BoundedCounter::new();
        c.add(&r(), 3).unwrap();
        assert!(check_own(&r(), &c, x).is_ok());
        // Others' entries are not this check's business.
        c.add(&ReplicaId::hub(), 100).unwrap();
        assert!(check_own(&r(), &c, x).is_ok());
    }

    /// A report or request whose `N` hides sales the hub accepted is
    /// raised to them before the escrow check: it cannot hand the hub
    /// rights those sales used.
    #[test]
    fn own_entries_are_raised_to_what_the_events_explain() {
        let mut own = BoundedCounter::default();
        own.add(&r(), 10).unwrap();
        own.transfer(&r(), &ReplicaId::hub(), 10).unwrap();
        let sold = Explained {
            added: 10,
            removed: 10,
        };
        let at_hub = BoundedCounter::default();
        let clamped = clamp_own(&r(), &own, sold, &at_hub);
        assert_eq!(clamped.removed_by(&r()), 10, "the synced sales count");
        assert!(at_hub.validate(&r(), &clamped).is_err(), "overdrawn");
        // Without the hidden sales' rights handed over, it passes.
        let mut honest = BoundedCounter::default();
        honest.add(&r(), 10).unwrap();
        let clamped = clamp_own(&r(), &honest, sold, &at_hub);
        assert_eq!(at_hub.validate(&r(), &clamped), Ok(()));
        assert_eq!(
            with_events(&BoundedCounter::default(), &r(), Explained::default()),
            BoundedCounter::default()
        );
    }
}
