//! Audits computed from events alone, independent of the counters.
//!
//! The simulation and the end-to-end tests use these to check the model
//! without trusting it: if the counters let a unit be sold twice, the
//! events show more units leaving a location than ever arrived there.

use std::collections::BTreeMap;

use crate::event::{Direction, Event, EventKind};
use crate::inventory::ItemKey;

/// Units in and out of one (location, item), summed from events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flow {
    /// Received, returned, counted up, or found by an override.
    pub units_in: u64,
    /// Sold at a till.
    pub sold: u64,
    /// Ordered online.
    pub ordered: u64,
    /// Counted down (shrink).
    pub shrink: u64,
}

impl Flow {
    /// Units that left, by any way.
    pub fn out(&self) -> u64 {
        self.sold
            .saturating_add(self.ordered)
            .saturating_add(self.shrink)
    }

    /// Units that left beyond what ever arrived: the double-sold units.
    pub fn oversold(&self) -> u64 {
        self.out().saturating_sub(self.units_in)
    }

    /// What the events say should be on hand (clamped at 0).
    pub fn on_hand(&self) -> u64 {
        self.units_in.saturating_sub(self.out())
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
            let q = line.qty;
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
            }
        }
        if let EventKind::Sale {
            override_: Some(ov),
            ..
        } = &e.kind
        {
            for s in &ov.shortfall {
                flow(s.gtin, &mut |f| {
                    f.units_in = f.units_in.saturating_add(s.units)
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
pub fn double_sold<'a>(events: impl IntoIterator<Item = &'a Event>) -> u64 {
    flows(events).values().map(Flow::oversold).sum()
}
