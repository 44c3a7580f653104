//! Audits computed from events alone, independent of the counters.
//!
//! The simulation and the end-to-end tests use these to check the model
//! without trusting it: if the counters let a unit be sold twice, the
//! events show more units leaving a location than ever arrived there.
//!
//! Sums are `u128`: each quantity is a `u64`, so no number of events a
//! hub can hold makes a sum wrap (a wrapped sum could read 0 and hide a
//! double sale), and the additions saturate besides.

use std::collections::BTreeMap;

use crate::event::{Direction, Event, EventKind};
use crate::inventory::ItemKey;

/// Units in and out of one (location, item), summed from events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flow {
    /// Received, returned, counted up, or found by an override.
    pub units_in: u128,
    /// Sold at a till.
    pub sold: u128,
    /// Ordered online.
    pub ordered: u128,
    /// Counted down (shrink).
    pub shrink: u128,
    /// Sent to another store (in transit or received there).
    pub transferred_out: u128,
    /// Received from another store.
    pub transferred_in: u128,
}

impl Flow {
    /// Units that left, by any way.
    pub fn out(&self) -> u128 {
        self.sold
            .saturating_add(self.ordered)
            .saturating_add(self.shrink)
            .saturating_add(self.transferred_out)
    }

    /// Units that arrived, by any way.
    pub fn arrived(&self) -> u128 {
        self.units_in.saturating_add(self.transferred_in)
    }

    /// Units that left beyond what ever arrived: the double-sold units.
    pub fn oversold(&self) -> u128 {
        self.out().saturating_sub(self.arrived())
    }

    /// What the events say should be on hand (clamped at 0).
    pub fn on_hand(&self) -> u128 {
        self.arrived().saturating_sub(self.out())
    }
}

/// Sums every event's units per (location, item). Pass each accepted event
/// once (e.g. the union of every replica's journal).
pub fn flows<'a>(events: impl IntoIterator<Item = &'a Event>) -> BTreeMap<ItemKey, Flow> {
    let mut tally = FlowTally::default();
    for e in events {
        tally.add(e);
    }
    tally.into_flows()
}

/// [`flows`] one event at a time, for callers that stream events from
/// storage: memory grows with the (location, item) pairs, not the events.
#[derive(Debug, Clone, Default)]
pub struct FlowTally {
    flows: BTreeMap<ItemKey, Flow>,
}

impl FlowTally {
    /// Adds one event's units.
    pub fn add(&mut self, e: &Event) {
        let out = &mut self.flows;
        let mut flow = |gtin, f: &mut dyn FnMut(&mut Flow)| {
            f(out
                .entry(ItemKey::new(e.location.clone(), gtin))
                .or_default())
        };
        for line in &e.lines {
            let q = u128::from(line.qty);
            match &e.kind {
                EventKind::Sale { .. } => {
                    flow(line.gtin, &mut |f| f.sold = f.sold.saturating_add(q))
                }
                EventKind::Order { .. } => {
                    flow(line.gtin, &mut |f| f.ordered = f.ordered.saturating_add(q))
                }
                EventKind::Receipt | EventKind::Return { .. } => flow(line.gtin, &mut |f| {
                    f.units_in = f.units_in.saturating_add(q)
                }),
                EventKind::CountAdjustment { direction, .. } => match direction {
                    Direction::Up => flow(line.gtin, &mut |f| {
                        f.units_in = f.units_in.saturating_add(q)
                    }),
                    Direction::Down => {
                        flow(line.gtin, &mut |f| f.shrink = f.shrink.saturating_add(q))
                    }
                },
                // Has no lines: the hub's `Order` event moved the units.
                EventKind::Fulfilment { .. } => {}
                EventKind::TransferOut { .. } => flow(line.gtin, &mut |f| {
                    f.transferred_out = f.transferred_out.saturating_add(q)
                }),
                EventKind::TransferIn { .. } => flow(line.gtin, &mut |f| {
                    f.transferred_in = f.transferred_in.saturating_add(q)
                }),
            }
        }
        if let EventKind::Sale {
            override_: Some(ov),
            ..
        } = &e.kind
        {
            for s in &ov.shortfall {
                flow(s.gtin, &mut |f| {
                    f.units_in = f.units_in.saturating_add(u128::from(s.units))
                });
            }
        }
    }

    /// The flows of every event added.
    pub fn into_flows(self) -> BTreeMap<ItemKey, Flow> {
        self.flows
    }
}

/// Σ over (location, item) of units sold or ordered beyond units received.
/// Zero is the promise.
pub fn double_sold<'a>(events: impl IntoIterator<Item = &'a Event>) -> u128 {
    flows(events)
        .values()
        .fold(0u128, |sum, f| sum.saturating_add(f.oversold()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Line;
    use crate::gtin::Gtin;
    use crate::ids::{EventId, LocationId, ReplicaId};
    use proptest::prelude::*;

    fn event(n: u64, at: &str, kind: EventKind, qty: u64) -> Event {
        Event {
            id: EventId::v7(n, [0; 10]),
            location: LocationId::new(at).unwrap(),
            replica: ReplicaId::new(at).unwrap(),
            at_ms: n,
            kind,
            lines: vec![Line {
                gtin: Gtin::from_body(n % 3 + 1).unwrap(),
                qty,
                unit_price_minor: 0,
                epc: None,
            }],
            staff: Default::default(),
            price_overrides: Vec::new(),
        }
    }

    fn sale() -> EventKind {
        EventKind::Sale {
            tenders: vec![],
            override_: None,
        }
    }

    proptest! {
        /// One store's absurd quantities, whatever they are, cannot make
        /// the chain's double-sold count read less than another store's
        /// double sale: nothing wraps.
        #[test]
        fn absurd_quantities_elsewhere_cannot_hide_a_double_sale(
            absurd in prop::collection::vec((any::<u64>(), any::<bool>()), 0..40),
        ) {
            // s1 received 1 unit of an item and sold it twice.
            let mut events = vec![
                event(0, "s1", EventKind::Receipt, 1),
                event(3, "s1", sale(), 1),
                event(6, "s1", sale(), 1),
            ];
            for (i, (qty, sells)) in absurd.into_iter().enumerate() {
                let kind = if sells { sale() } else { EventKind::Receipt };
                events.push(event(10 + i as u64, "evil", kind, qty));
            }
            prop_assert!(double_sold(&events) >= 1);
        }
    }

    #[test]
    fn sums_beyond_u64_are_kept() {
        let events: Vec<Event> = (0..3)
            .map(|i| event(i * 3, "s1", sale(), u64::MAX))
            .collect();
        assert_eq!(double_sold(&events), 3 * u128::from(u64::MAX));
    }
}
