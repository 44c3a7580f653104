//! How an event moves the counters, and the planners that fill in an
//! event's state-dependent fields before it is recorded.
//!
//! # Design constraints
//! - [`apply_event`] is the single definition of an event's effect, used
//!   by the agent (sales, returns, receipts, counts), the hub (online
//!   orders) and the simulation alike.
//! - It is all-or-nothing: it works on copies of the counters it touches
//!   and hands them back only if every line succeeded. A refused event
//!   changes nothing.
//! - It only ever moves the entries of `event.replica`, and removes only
//!   within that replica's rights, so the escrow invariant holds whatever
//!   events a replica records.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::counter::{BoundedCounter, CounterError};
use crate::epcs::{EpcError, SoldEpcs};
use crate::event::{Direction, Event, EventKind, Line, Shortfall};
use crate::gtin::Gtin;
use crate::ids::{Epc, ReplicaId};

/// Why an event was refused. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// The replica's rights for an item do not cover the quantity.
    #[error("insufficient stock of {gtin}: {requested} requested, {available} available")]
    InsufficientStock {
        /// The item.
        gtin: Gtin,
        /// Units the event needed.
        requested: u64,
        /// Rights the replica holds.
        available: u64,
        /// Units on hand at the location (every replica's), unsold: more
        /// than `available` means others hold the rights to the rest.
        on_hand: u64,
    },
    /// A serialized item was already sold.
    #[error("EPC {epc} was already sold")]
    AlreadySold {
        /// The tag.
        epc: Epc,
    },
    /// A serialized item being returned is not sold.
    #[error("EPC {epc} is not sold")]
    NotSold {
        /// The tag.
        epc: Epc,
    },
    /// A return names a sale it took back more of an item from than the
    /// sale sold (counting the returns already made against it). Checked
    /// by the store that made the sale, which knows its returns.
    #[error("return of {requested} × {gtin} exceeds sale {sale}: {returnable} returnable")]
    ExceedsSale {
        /// The original sale.
        sale: crate::ids::EventId,
        /// The item.
        gtin: Gtin,
        /// Units this return takes back.
        requested: u64,
        /// Units of the item the sale sold and no earlier return took back.
        returnable: u64,
    },
    /// The command needs a manager's approval it does not carry: a
    /// refund the store cannot check against a sale it recorded, or a
    /// price other than the catalog's. Says which.
    #[error("a manager's approval is required: {0}")]
    ApprovalRequired(String),
    /// A fulfilment move names an order this store has no allocation of
    /// (none was allocated here, or the hub's page has not arrived yet).
    #[error("no allocation of order {0} at this store")]
    UnknownOrder(String),
    /// A receipt of a transfer this store has not heard of (none was sent
    /// to it, or the hub's page has not arrived yet).
    #[error("no transfer {0} to this store is known here")]
    UnknownTransfer(String),
    /// A transfer received already.
    #[error("transfer {0} was already received")]
    TransferReceived(String),
    /// A fulfilment move the allocation's status does not allow.
    #[error("order {order_id}: {error}")]
    Move {
        /// The order.
        order_id: String,
        /// Why.
        error: crate::fulfilment::MoveError,
    },
    /// The event is malformed.
    #[error("invalid event: {0}")]
    Invalid(String),
}

/// Why a replica lacks the rights a sale or an order needs: the `reason`
/// of an `insufficient_stock` answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shortage {
    /// The location has fewer unsold units than asked: there is nothing
    /// more to sell there.
    NoStock,
    /// The units are on hand, but other replicas (the hub's online
    /// reserve) hold the rights to them.
    HeldElsewhere,
    /// As [`Shortage::HeldElsewhere`], and the hub cannot be reached to
    /// give them (decided by the store, which knows its link).
    Offline,
}

impl Shortage {
    /// The reason's name on the wire and in metrics.
    pub fn name(self) -> &'static str {
        match self {
            Shortage::NoStock => "no_stock",
            Shortage::HeldElsewhere => "held_elsewhere",
            Shortage::Offline => "offline",
        }
    }

    /// The reason named `name`, if it is one.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Shortage::NoStock,
            Shortage::HeldElsewhere,
            Shortage::Offline,
        ]
        .into_iter()
        .find(|s| s.name() == name)
    }
}

impl Refusal {
    /// Why an `InsufficientStock` refusal happened, from the counter alone
    /// (`reachable` says whether the hub, which may hold the rest, can be
    /// asked): `NoStock` when the location has fewer unsold units than
    /// asked, else `HeldElsewhere`, or `Offline` when the hub is out of
    /// reach. `None` for other refusals.
    pub fn shortage(&self, hub_reachable: bool) -> Option<Shortage> {
        match self {
            Refusal::InsufficientStock {
                requested, on_hand, ..
            } => Some(if on_hand < requested {
                Shortage::NoStock
            } else if hub_reachable {
                Shortage::HeldElsewhere
            } else {
                Shortage::Offline
            }),
            _ => None,
        }
    }
}

/// The counters an event touched, after it, and the EPCs it sold or
/// returned. The caller stores them (in one transaction) or drops them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// New state of every counter the event touched, by item (all at the
    /// event's location).
    pub counters: BTreeMap<Gtin, BoundedCounter>,
    /// EPCs the event sold.
    pub sold: Vec<Epc>,
    /// EPCs the event returned.
    pub returned: Vec<Epc>,
}

/// Checks the shape of an event's lines: non-empty, qty > 0, qty 1 with an
/// EPC, no EPC twice.
pub fn check_lines(lines: &[Line]) -> Result<(), Refusal> {
    if lines.is_empty() {
        return Err(Refusal::Invalid("an event needs at least one line".into()));
    }
    let mut epcs = BTreeSet::new();
    for line in lines {
        if line.qty == 0 {
            return Err(Refusal::Invalid(format!(
                "qty must be > 0 for {}",
                line.gtin
            )));
        }
        if let Some(epc) = &line.epc {
            if line.qty != 1 {
                return Err(Refusal::Invalid(format!(
                    "a line with EPC {epc} must have qty 1"
                )));
            }
            if !epcs.insert(epc) {
                return Err(Refusal::Invalid(format!("EPC {epc} appears twice")));
            }
        }
    }
    Ok(())
}

/// Applies `event` to copies of `counters` (the current counters at the
/// event's location, by item; missing ones are empty) and checks EPCs
/// against `epcs`. Returns the new counters, or why it was refused.
pub fn apply_event<E: SoldEpcs>(
    event: &Event,
    counters: &BTreeMap<Gtin, BoundedCounter>,
    epcs: &E,
) -> Result<Applied, Refusal> {
    apply(event, counters, Some(epcs))
}

/// Re-applies the counter effect of an event that was already recorded
/// (the agent's recovery of counters written behind the event journal).
/// Same arithmetic as [`apply_event`], without the EPC checks: the event's
/// EPCs are already in the ledger because of this very event. Given the
/// counters the event first saw, it yields the counters it first produced.
pub fn replay_counters(
    event: &Event,
    counters: &BTreeMap<Gtin, BoundedCounter>,
) -> Result<BTreeMap<Gtin, BoundedCounter>, Refusal> {
    apply(event, counters, None).map(|a| a.counters)
}

/// Every item whose counter `event` can move: its lines and, for an
/// override, its shortfall.
pub fn touched_gtins(event: &Event) -> BTreeSet<Gtin> {
    let mut out: BTreeSet<Gtin> = event.lines.iter().map(|l| l.gtin).collect();
    if let EventKind::Sale {
        override_: Some(ov),
        ..
    } = &event.kind
    {
        out.extend(ov.shortfall.iter().map(|s| s.gtin));
    }
    out
}

fn apply(
    event: &Event,
    counters: &BTreeMap<Gtin, BoundedCounter>,
    epcs: Option<&dyn SoldEpcs>,
) -> Result<Applied, Refusal> {
    if let EventKind::Fulfilment { status, .. } = &event.kind {
        // A store's move of its allocation: nothing to count.
        if !event.lines.is_empty() {
            return Err(Refusal::Invalid("a fulfilment event has no lines".into()));
        }
        if !status.handed_over() && *status != crate::fulfilment::Status::Picked {
            return Err(Refusal::Invalid(format!(
                "a store moves its allocation to picked, collected or shipped, not {status:?}"
            )));
        }
        return Ok(Applied::default());
    }
    if !matches!(event.kind, EventKind::CountAdjustment { .. }) {
        check_lines(&event.lines)?;
    }
    let r = &event.replica;
    let mut out = Applied::default();
    let touch = |gtin: Gtin, out: &mut Applied| -> BoundedCounter {
        out.counters
            .remove(&gtin)
            .unwrap_or_else(|| counters.get(&gtin).cloned().unwrap_or_default())
    };
    let refusal = |gtin: Gtin, c: &BoundedCounter, e: CounterError| match e {
        CounterError::InsufficientRights {
            available,
            requested,
        } => Refusal::InsufficientStock {
            gtin,
            requested,
            available,
            on_hand: c.value(),
        },
        CounterError::Overflow => Refusal::Invalid(format!("quantity overflow for {gtin}")),
    };

    match &event.kind {
        EventKind::Sale { override_, .. } => {
            if let Some(ov) = override_ {
                for s in &ov.shortfall {
                    let mut c = touch(s.gtin, &mut out);
                    c.add(r, s.units).map_err(|e| refusal(s.gtin, &c, e))?;
                    out.counters.insert(s.gtin, c);
                }
            }
            for line in &event.lines {
                if let Some(epc) = &line.epc {
                    if let Some(epcs) = epcs {
                        epcs.check_sellable(epc).map_err(epc_refusal)?;
                    }
                    out.sold.push(epc.clone());
                }
                let mut c = touch(line.gtin, &mut out);
                c.remove(r, line.qty)
                    .map_err(|e| refusal(line.gtin, &c, e))?;
                out.counters.insert(line.gtin, c);
            }
        }
        EventKind::TransferOut { to, .. } => {
            if *to == event.location {
                return Err(Refusal::Invalid("a transfer goes to another store".into()));
            }
            for line in &event.lines {
                // A sold tag is not on the shelf to send.
                if let (Some(epc), Some(epcs)) = (&line.epc, epcs) {
                    epcs.check_sellable(epc).map_err(epc_refusal)?;
                }
                let mut c = touch(line.gtin, &mut out);
                c.remove(r, line.qty)
                    .map_err(|e| refusal(line.gtin, &c, e))?;
                out.counters.insert(line.gtin, c);
            }
        }
        EventKind::TransferIn { from, .. } => {
            if *from == event.location {
                return Err(Refusal::Invalid(
                    "a transfer comes from another store".into(),
                ));
            }
            for line in &event.lines {
                let mut c = touch(line.gtin, &mut out);
                c.add(r, line.qty).map_err(|e| refusal(line.gtin, &c, e))?;
                out.counters.insert(line.gtin, c);
            }
        }
        EventKind::Order { .. } => {
            for line in &event.lines {
                if line.epc.is_some() {
                    return Err(Refusal::Invalid("online orders do not name EPCs".into()));
                }
                let mut c = touch(line.gtin, &mut out);
                c.remove(r, line.qty)
                    .map_err(|e| refusal(line.gtin, &c, e))?;
                out.counters.insert(line.gtin, c);
            }
        }
        EventKind::Return { .. } | EventKind::Receipt => {
            let is_return = matches!(event.kind, EventKind::Return { .. });
            for line in &event.lines {
                if let Some(epc) = &line.epc {
                    if is_return {
                        if let Some(epcs) = epcs {
                            epcs.check_returnable(epc).map_err(epc_refusal)?;
                        }
                        out.returned.push(epc.clone());
                    }
                }
                let mut c = touch(line.gtin, &mut out);
                c.add(r, line.qty).map_err(|e| refusal(line.gtin, &c, e))?;
                out.counters.insert(line.gtin, c);
            }
        }
        EventKind::CountAdjustment { direction, .. } => {
            let [line] = event.lines.as_slice() else {
                return Err(Refusal::Invalid(
                    "a count adjustment has exactly one line".into(),
                ));
            };
            if line.epc.is_some() {
                return Err(Refusal::Invalid(
                    "a count adjustment does not name an EPC".into(),
                ));
            }
            let mut c = touch(line.gtin, &mut out);
            match direction {
                Direction::Up => c.add(r, line.qty),
                Direction::Down => c.remove(r, line.qty),
            }
            .map_err(|e| refusal(line.gtin, &c, e))?;
            out.counters.insert(line.gtin, c);
        }
        EventKind::Fulfilment { .. } => {}
    }
    Ok(out)
}

fn epc_refusal(e: EpcError) -> Refusal {
    match e {
        EpcError::AlreadySold(epc) => Refusal::AlreadySold { epc },
        EpcError::NotSold(epc) => Refusal::NotSold { epc },
    }
}

/// Units per item over `lines` (an item may have several lines).
pub fn units_per_item(lines: &[Line]) -> BTreeMap<Gtin, u64> {
    let mut units: BTreeMap<Gtin, u64> = BTreeMap::new();
    for line in lines {
        let n = units.entry(line.gtin).or_default();
        *n = n.saturating_add(line.qty);
    }
    units
}

/// For a manager-approved sale: the units of each item the lines need
/// beyond `r`'s rights. Empty if rights cover the whole sale.
pub fn plan_override(
    lines: &[Line],
    counters: &BTreeMap<Gtin, BoundedCounter>,
    r: &ReplicaId,
) -> Vec<Shortfall> {
    units_per_item(lines)
        .into_iter()
        .filter_map(|(gtin, qty)| {
            let rights = counters.get(&gtin).map_or(0, |c| c.rights(r));
            (qty > rights).then(|| Shortfall {
                gtin,
                units: qty - rights,
            })
        })
        .collect()
}

/// A cycle count, planned: how far to move on-hand towards `counted`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CountPlan {
    /// Up or down.
    pub direction: Direction,
    /// Units to move (the line's qty); 0 when the count matches.
    pub units: u64,
    /// Units missing that `r` cannot remove for lack of rights.
    pub unresolved: u64,
}

/// Plans a cycle count of one item by replica `r`: brings on-hand to
/// `counted` as far as `r`'s rights allow (a store cannot remove units
/// whose rights another replica holds, e.g. the hub's online reserve).
pub fn plan_count(counter: &BoundedCounter, r: &ReplicaId, counted: u64) -> CountPlan {
    let on_hand = counter.value();
    if counted >= on_hand {
        return CountPlan {
            direction: Direction::Up,
            units: counted - on_hand,
            unresolved: 0,
        };
    }
    let missing = on_hand - counted;
    let units = missing.min(counter.rights(r));
    CountPlan {
        direction: Direction::Down,
        units,
        unresolved: missing - units,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::epcs::EpcLedger;
    use crate::event::{Override, Tender};
    use crate::ids::{EventId, LocationId};

    fn gtin(n: u64) -> Gtin {
        Gtin::from_body(n).unwrap()
    }

    fn event(kind: EventKind, lines: Vec<Line>) -> Event {
        Event {
            id: EventId::v7(1, [1; 10]),
            location: LocationId::new("s1").unwrap(),
            replica: ReplicaId::new("s1").unwrap(),
            at_ms: 1,
            kind,
            lines,
            staff: Default::default(),
            price_overrides: Vec::new(),
        }
    }

    fn line(g: u64, qty: u64) -> Line {
        Line {
            gtin: gtin(g),
            qty,
            unit_price_minor: 100,
            epc: None,
        }
    }

    fn sale(lines: Vec<Line>) -> Event {
        event(
            EventKind::Sale {
                tenders: vec![Tender {
                    method: "cash".into(),
                    amount_minor: 100,
                    reference: None,
                }],
                override_: None,
            },
            lines,
        )
    }

    #[test]
    fn sale_is_all_or_nothing() {
        let r = ReplicaId::new("s1").unwrap();
        let mut counters = BTreeMap::new();
        let mut c = BoundedCounter::new();
        c.add(&r, 2).unwrap();
        counters.insert(gtin(1), c);
        let ok = apply_event(
            &sale(vec![line(1, 1), line(1, 1)]),
            &counters,
            &EpcLedger::new(),
        );
        assert_eq!(ok.unwrap().counters[&gtin(1)].value(), 0);
        let refused = apply_event(
            &sale(vec![line(1, 2), line(1, 1)]),
            &counters,
            &EpcLedger::new(),
        );
        assert_eq!(
            refused,
            Err(Refusal::InsufficientStock {
                gtin: gtin(1),
                requested: 1,
                available: 0,
                on_hand: 0,
            })
        );
        let unknown = apply_event(&sale(vec![line(2, 1)]), &counters, &EpcLedger::new());
        assert!(matches!(
            unknown,
            Err(Refusal::InsufficientStock { available: 0, .. })
        ));
    }

    /// An operation of the replay property below: (kind, item, qty, tag).
    fn op() -> impl proptest::strategy::Strategy<Value = (u8, u64, u64, Option<u8>)> {
        (0u8..5, 1u64..4, 1u64..5, proptest::option::of(0u8..4))
    }

    proptest::proptest! {
        /// Recovery: replaying the accepted events' counter effects, in
        /// order, from the counters they first saw, gives the counters
        /// `apply_event` produced, whatever refusals happened in between.
        #[test]
        fn replay_reproduces_the_counters(ops in proptest::collection::vec(op(), 1..60)) {
            let r = ReplicaId::new("s1").unwrap();
            let mut counters: BTreeMap<Gtin, BoundedCounter> = BTreeMap::new();
            let mut epcs = EpcLedger::new();
            let mut accepted = Vec::new();
            for (i, (kind, item, qty, tag)) in ops.into_iter().enumerate() {
                let epc = tag.map(|t| Epc::from_hex(&format!("303400000000000000000{t:03}")).unwrap());
                let mut l = line(item, if epc.is_some() { 1 } else { qty });
                l.epc = epc;
                let mut e = match kind {
                    0 => event(EventKind::Receipt, vec![Line { epc: None, ..l }]),
                    1 => sale(vec![l]),
                    2 => event(EventKind::Return { original_sale: None }, vec![l]),
                    3 => {
                        let plan = plan_count(&counters.get(&gtin(item)).cloned().unwrap_or_default(), &r, qty);
                        event(
                            EventKind::CountAdjustment { direction: plan.direction, counted: qty, unresolved: plan.unresolved },
                            vec![Line { qty: plan.units.max(1), epc: None, ..l }],
                        )
                    }
                    _ => {
                        let lines = vec![l];
                        let shortfall = plan_override(&lines, &counters, &r);
                        event(
                            EventKind::Sale {
                                tenders: vec![],
                                override_: Some(Override { approver: "m".into(), reason: "r".into(), shortfall }),
                            },
                            lines,
                        )
                    }
                };
                e.id = EventId::v7(i as u64, [i as u8; 10]);
                if let Ok(applied) = apply_event(&e, &counters, &epcs) {
                    counters.extend(applied.counters);
                    for epc in &applied.sold {
                        epcs.record_sale(epc, crate::epcs::EpcRecord { event: e.id, replica: r.clone() });
                    }
                    for epc in &applied.returned {
                        epcs.record_return(epc, crate::epcs::EpcRecord { event: e.id, replica: r.clone() });
                    }
                    accepted.push(e);
                }
            }
            let mut replayed: BTreeMap<Gtin, BoundedCounter> = BTreeMap::new();
            for e in &accepted {
                let before = touched_gtins(e)
                    .into_iter()
                    .map(|g| (g, replayed.get(&g).cloned().unwrap_or_default()))
                    .collect();
                let after = replay_counters(e, &before);
                proptest::prop_assert!(after.is_ok(), "{:?}: {:?}", e, after);
                replayed.extend(after.unwrap_or_default());
            }
            proptest::prop_assert_eq!(replayed, counters);
        }
    }

    #[test]
    fn override_adds_the_shortfall_then_sells() {
        let r = ReplicaId::new("s1").unwrap();
        let counters = BTreeMap::new();
        let lines = vec![line(1, 2)];
        let shortfall = plan_override(&lines, &counters, &r);
        assert_eq!(
            shortfall,
            vec![Shortfall {
                gtin: gtin(1),
                units: 2
            }]
        );
        let ev = event(
            EventKind::Sale {
                tenders: vec![],
                override_: Some(Override {
                    approver: "mgr".into(),
                    reason: "on shelf".into(),
                    shortfall,
                }),
            },
            lines,
        );
        let out = apply_event(&ev, &counters, &EpcLedger::new()).unwrap();
        let c = &out.counters[&gtin(1)];
        assert_eq!((c.value(), c.total_added(), c.total_removed()), (0, 2, 2));
    }

    #[test]
    fn epc_rules() {
        let r = ReplicaId::new("s1").unwrap();
        let epc = Epc::from_hex("3074257BF7194E4000001A85").unwrap();
        let mut counters = BTreeMap::new();
        let mut c = BoundedCounter::new();
        c.add(&r, 5).unwrap();
        counters.insert(gtin(1), c);
        let mut l = line(1, 1);
        l.epc = Some(epc.clone());
        let mut ledger = EpcLedger::new();
        let out = apply_event(&sale(vec![l.clone()]), &counters, &ledger).unwrap();
        assert_eq!(out.sold, vec![epc.clone()]);
        ledger.record_sale(
            &epc,
            crate::epcs::EpcRecord {
                event: EventId::v7(1, [1; 10]),
                replica: r.clone(),
            },
        );
        assert_eq!(
            apply_event(&sale(vec![l.clone()]), &counters, &ledger),
            Err(Refusal::AlreadySold { epc: epc.clone() })
        );
        assert!(matches!(
            apply_event(
                &sale(vec![l.clone(), l.clone()]),
                &counters,
                &EpcLedger::new()
            ),
            Err(Refusal::Invalid(_))
        ));
        let ret = event(
            EventKind::Return {
                original_sale: None,
            },
            vec![l.clone()],
        );
        assert!(apply_event(&ret, &counters, &ledger).is_ok());
        assert_eq!(
            apply_event(&ret, &counters, &EpcLedger::new()),
            Err(Refusal::NotSold { epc })
        );
    }

    #[test]
    fn count_plan_respects_rights() {
        let (s, hub) = (ReplicaId::new("s1").unwrap(), ReplicaId::hub());
        let mut c = BoundedCounter::new();
        c.add(&s, 10).unwrap();
        c.transfer(&s, &hub, 4).unwrap();
        let up = plan_count(&c, &s, 12);
        assert_eq!(
            (up.direction, up.units, up.unresolved),
            (Direction::Up, 2, 0)
        );
        let down = plan_count(&c, &s, 1);
        assert_eq!(
            (down.direction, down.units, down.unresolved),
            (Direction::Down, 6, 3)
        );
        let same = plan_count(&c, &s, 10);
        assert_eq!(same.units, 0);
    }

    #[test]
    fn bad_lines_are_invalid() {
        let counters = BTreeMap::new();
        assert!(matches!(
            apply_event(&sale(vec![]), &counters, &EpcLedger::new()),
            Err(Refusal::Invalid(_))
        ));
        assert!(matches!(
            apply_event(&sale(vec![line(1, 0)]), &counters, &EpcLedger::new()),
            Err(Refusal::Invalid(_))
        ));
    }
}
