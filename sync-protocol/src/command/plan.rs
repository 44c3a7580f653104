//! Planning: a command and the state it reads become the event it
//! records, or a refusal. Prices come from the command or the catalog,
//! tenders must pay the total, a return naming a sale is bounded and
//! priced by it, an override records its shortfall, a count plans its
//! adjustment. Pure: no ledger, no clock.

use std::collections::BTreeMap;

use super::{invalid, Command, LineIn, Loaded, OriginalSale, ReceiptLine, Stamp};
use crate::event::{
    checked_total_minor, Approval, Event, EventKind, Line, Override, PriceOverride, Tender,
};
use crate::exchange::Identity;
use crate::fulfilment::Status;
use crate::gtin::Gtin;
use crate::ids::EventId;
use crate::ledger::{plan_count, plan_override, units_per_item, Refusal};
use crate::transfer::TransferStatus;

fn price_lines(lines: &[LineIn], prices: &BTreeMap<Gtin, i64>) -> Result<Vec<Line>, Refusal> {
    lines
        .iter()
        .map(|l| {
            let unit_price_minor = match l.unit_price_minor {
                Some(p) if p < 0 => {
                    return Err(invalid(format!(
                        "unit_price_minor must be >= 0 for {}",
                        l.gtin
                    )))
                }
                Some(p) => p,
                None => *prices.get(&l.gtin).ok_or_else(|| {
                    invalid(format!(
                        "item {} is not in the catalog; give unit_price_minor",
                        l.gtin
                    ))
                })?,
            };
            Ok(Line {
                gtin: l.gtin,
                qty: l.qty,
                unit_price_minor,
                epc: l.epc.clone(),
            })
        })
        .collect()
}

/// The lines keyed at a price other than the catalog's (an item the
/// catalog does not know has no price to override). A price read from
/// the item's label is the label's, not an override, for a
/// variable-measure item ([`Gtin::is_variable_measure`]) only: any other
/// item carries no price in its barcode, so a "label" price for it is a
/// keyed one, and needs a manager as any other. One per item. The
/// cashier terminal asks it before payment, so the manager approves a
/// keyed price before the customer pays.
pub fn price_overrides(lines: &[LineIn], catalog: &BTreeMap<Gtin, i64>) -> Vec<PriceOverride> {
    let mut out: Vec<PriceOverride> = Vec::new();
    for l in lines
        .iter()
        .filter(|l| !(l.price_from_label && l.gtin.is_variable_measure()))
    {
        if let (Some(keyed), Some(&listed)) = (l.unit_price_minor, catalog.get(&l.gtin)) {
            if keyed != listed && !out.iter().any(|p| p.gtin == l.gtin) {
                out.push(PriceOverride {
                    gtin: l.gtin,
                    catalog_minor: listed,
                    keyed_minor: keyed,
                });
            }
        }
    }
    out
}

/// The approval a command carries, checked for what it must say; `None`
/// when there is none.
fn approval_of(approval: Option<&Approval>) -> Result<Option<&Approval>, Refusal> {
    match approval {
        Some(a) if a.approver.trim().is_empty() || a.reason.trim().is_empty() => Err(invalid(
            "a manager's approval needs an approver and a reason",
        )),
        other => Ok(other),
    }
}

fn describe(overrides: &[PriceOverride]) -> String {
    let items: Vec<String> = overrides
        .iter()
        .map(|p| {
            format!(
                "{} keyed at {} (catalog {})",
                p.gtin, p.keyed_minor, p.catalog_minor
            )
        })
        .collect();
    format!("a price other than the catalog's: {}", items.join(", "))
}

/// A tender names how it was paid and pays a non-negative amount (change
/// given and refunds are not tenders of a sale). Tenders, when given, pay
/// at least the total (`total` is `None` when it overflowed, refused
/// elsewhere): a sale recorded as committed but short-paid leaves the till
/// short. More than the total is fine: front-ends may record the cash
/// handed over rather than what was applied. No tenders means payment is
/// recorded elsewhere.
fn check_tenders(tenders: &[Tender], total: Option<i64>) -> Result<(), Refusal> {
    let mut paid: i64 = 0;
    for (i, t) in tenders.iter().enumerate() {
        if t.method.trim().is_empty() {
            return Err(invalid(format!("tenders[{i}].method is empty")));
        }
        if t.amount_minor < 0 {
            return Err(invalid(format!(
                "tenders[{i}].amount_minor must be >= 0, got {}",
                t.amount_minor
            )));
        }
        paid = paid
            .checked_add(t.amount_minor)
            .ok_or_else(|| invalid(format!("the tenders add up to more than {}", i64::MAX)))?;
    }
    match total {
        Some(total) if !tenders.is_empty() && paid < total => Err(invalid(format!(
            "the tenders pay {paid} of the total {total} minor units"
        ))),
        _ => Ok(()),
    }
}

/// Prices and checks the lines of a return against the sale it names:
/// each item at most the units the sale sold less what earlier returns
/// took back (else [`Refusal::ExceedsSale`]), refunded at the price it was
/// sold at (the lowest, if the sale sold it at several) unless a lower one
/// is given. A price above it is invalid: a refund never pays out more
/// than the sale took in; so is a tagged unit the sale did not sell.
pub fn return_lines(lines: &[LineIn], original: &OriginalSale) -> Result<Vec<Line>, Refusal> {
    let sale = &original.event;
    if !matches!(sale.kind, EventKind::Sale { .. } | EventKind::Order { .. }) {
        return Err(invalid(format!(
            "original_sale_id {} is a {}, not a sale or an online order",
            sale.id,
            sale.kind.name()
        )));
    }
    let mut sold: BTreeMap<Gtin, (u64, i64)> = BTreeMap::new();
    for l in &sale.lines {
        let (units, price) = sold.entry(l.gtin).or_insert((0, l.unit_price_minor));
        *units = units.saturating_add(l.qty);
        *price = (*price).min(l.unit_price_minor);
    }
    let mut priced = Vec::with_capacity(lines.len());
    for l in lines {
        if let Some(epc) = &l.epc {
            match sale.lines.iter().find(|s| s.epc.as_ref() == Some(epc)) {
                None => {
                    return Err(invalid(format!(
                        "EPC {epc} was not sold in sale {}",
                        sale.id
                    )))
                }
                Some(s) if s.gtin != l.gtin => {
                    return Err(invalid(format!(
                        "EPC {epc} was sold as {}, not {}",
                        s.gtin, l.gtin
                    )))
                }
                Some(_) => {}
            }
        }
        let sold_price = sold.get(&l.gtin).map(|&(_, p)| p);
        let unit_price_minor = match (l.unit_price_minor, sold_price) {
            (Some(p), _) if p < 0 => {
                return Err(invalid(format!(
                    "unit_price_minor must be >= 0 for {}",
                    l.gtin
                )))
            }
            (Some(p), Some(at)) if p > at => {
                return Err(invalid(format!(
                    "unit_price_minor {p} for {} is more than the {at} sale {} sold it at",
                    l.gtin, sale.id
                )))
            }
            (Some(p), _) => p,
            (None, Some(at)) => at,
            // Not in the sale: refused below with nothing returnable.
            (None, None) => 0,
        };
        priced.push(Line {
            gtin: l.gtin,
            qty: l.qty,
            unit_price_minor,
            epc: l.epc.clone(),
        });
    }
    for (gtin, units) in units_per_item(&priced) {
        let sold_units = sold.get(&gtin).map_or(0, |&(u, _)| u);
        let earlier = original.returned.get(&gtin).copied().unwrap_or(0);
        let returnable = sold_units.saturating_sub(earlier);
        if units > returnable {
            return Err(Refusal::ExceedsSale {
                sale: sale.id,
                gtin,
                requested: units,
                returnable,
            });
        }
    }
    Ok(priced)
}

/// Plans `cmd` into the event it records, given the state it reads.
/// Pure; refusals found by planning (bad input, unknown price) come back
/// as `Err`. Rights and EPCs are checked by `apply_event` afterwards.
pub fn plan(
    cmd: &Command,
    who: &Identity,
    loaded: &Loaded,
    stamp: Stamp,
) -> Result<Event, Refusal> {
    let id = cmd
        .id()
        .unwrap_or_else(|| EventId::v7(stamp.now_ms, stamp.random));
    let mut overrides = Vec::new();
    // What needs a manager's approval the command lacks; refused once the
    // command is otherwise valid (a malformed request is a 422 first).
    let mut needs_approval = None;
    let (kind, lines) = match cmd {
        Command::Sale {
            lines: keyed,
            tenders,
            staff,
            ..
        } => {
            let approval = approval_of(staff.approval.as_ref())?;
            let lines = price_lines(keyed, &loaded.prices)?;
            check_tenders(tenders, checked_total_minor(&lines))?;
            overrides = price_overrides(keyed, &loaded.prices);
            if approval.is_none() && !overrides.is_empty() {
                needs_approval = Some(describe(&overrides));
            }
            // An approved sale sells beyond rights: what it lacks is
            // recorded as found. Within rights it is a plain sale.
            let shortfall = plan_override(&lines, &loaded.counters, &who.replica);
            let override_ = match approval {
                Some(a) if !shortfall.is_empty() => Some(Override {
                    approver: a.approver.clone(),
                    reason: a.reason.clone(),
                    shortfall,
                }),
                _ => None,
            };
            (
                EventKind::Sale {
                    tenders: tenders.clone(),
                    override_,
                },
                lines,
            )
        }
        Command::Return {
            lines: keyed,
            original_sale,
            staff,
            ..
        } => (
            EventKind::Return {
                // The hub may have found the original (by order or tag).
                original_sale: loaded
                    .original
                    .as_ref()
                    .map(|o| o.event.id)
                    .or(*original_sale),
            },
            {
                let approval = approval_of(staff.approval.as_ref())?;
                // A sale recorded elsewhere (another store of the chain),
                // or none named, cannot be checked here: priced like a
                // sale, and a manager approves the refund.
                let lines = match &loaded.original {
                    Some(original) => return_lines(keyed, original)?,
                    None => {
                        let lines = price_lines(keyed, &loaded.prices)?;
                        overrides = price_overrides(keyed, &loaded.prices);
                        if approval.is_none() {
                            needs_approval = Some(match original_sale {
                                None => "a refund without a receipt".to_string(),
                                Some(id) => format!(
                                    "a refund against sale {id}, which this store did not record"
                                ),
                            });
                        }
                        lines
                    }
                };
                // A tag comes back as the item it was sold as (the hub
                // checks it too: `EpcState::after_return`).
                for l in &lines {
                    let sold_as = l.epc.as_ref().and_then(|e| loaded.epc_items.get(e));
                    if let (Some(epc), Some(&sold_as)) = (&l.epc, sold_as) {
                        if sold_as != l.gtin {
                            return Err(invalid(format!(
                                "EPC {epc} was sold as {sold_as}, not {}",
                                l.gtin
                            )));
                        }
                    }
                }
                lines
            },
        ),
        Command::Receipt { lines, .. } => (
            EventKind::Receipt,
            lines.iter().map(|l| l.unpriced()).collect(),
        ),
        Command::Count { gtin, counted, .. } => {
            let counter = loaded.counters.get(gtin).cloned().unwrap_or_default();
            let plan = plan_count(&counter, &who.replica, *counted);
            (
                EventKind::CountAdjustment {
                    counted: *counted,
                    direction: plan.direction,
                    unresolved: plan.unresolved,
                },
                vec![Line {
                    gtin: *gtin,
                    qty: plan.units,
                    unit_price_minor: 0,
                    epc: None,
                }],
            )
        }
        Command::TransferOut {
            transfer_id,
            to,
            lines,
            ..
        } => {
            if !crate::fulfilment::valid_order_id(transfer_id) {
                return Err(invalid(format!(
                    "transfer_id must be 1 to {} printable ASCII characters",
                    crate::fulfilment::MAX_ORDER_ID_BYTES
                )));
            }
            if loaded.transfer.is_some() {
                return Err(invalid(format!(
                    "transfer {transfer_id} already exists; a new transfer needs a new id"
                )));
            }
            if *to == who.location || to.as_str() == crate::ids::ReplicaId::HUB {
                return Err(invalid(format!("to_store {to}: another store")));
            }
            (
                EventKind::TransferOut {
                    transfer_id: transfer_id.clone(),
                    to: to.clone(),
                },
                lines.iter().map(|l| l.unpriced()).collect(),
            )
        }
        Command::TransferIn { transfer_id, .. } => {
            let Some(t) = &loaded.transfer else {
                return Err(Refusal::UnknownTransfer(transfer_id.clone()));
            };
            if t.to != who.location {
                return Err(invalid(format!(
                    "transfer {transfer_id} goes from {} to {}, not to this store",
                    t.from, t.to
                )));
            }
            if t.status == TransferStatus::Received {
                return Err(Refusal::TransferReceived(transfer_id.clone()));
            }
            (
                EventKind::TransferIn {
                    transfer_id: transfer_id.clone(),
                    from: t.from.clone(),
                },
                t.lines
                    .iter()
                    .map(|l| ReceiptLine {
                        gtin: l.gtin,
                        qty: l.qty,
                        epc: l.epc.clone(),
                    })
                    .map(|l| l.unpriced())
                    .collect(),
            )
        }
        Command::Fulfil { order_id, to, .. } => {
            let Some(allocation) = &loaded.allocation else {
                return Err(Refusal::UnknownOrder(order_id.clone()));
            };
            if !matches!(to, Status::Picked | Status::Collected | Status::Shipped) {
                return Err(invalid(format!(
                    "a store moves an allocation to picked, collected or shipped, not {to:?}"
                )));
            }
            let status = allocation
                .status
                .advance(*to, allocation.fulfilment)
                .map_err(|error| Refusal::Move {
                    order_id: order_id.clone(),
                    error,
                })?;
            (
                EventKind::Fulfilment {
                    order_id: order_id.clone(),
                    status,
                },
                Vec::new(),
            )
        }
    };
    if matches!(kind, EventKind::Sale { .. } | EventKind::Return { .. })
        && checked_total_minor(&lines).is_none()
    {
        return Err(invalid(format!(
            "the total of these lines exceeds {} minor units",
            i64::MAX
        )));
    }
    let event = Event {
        id,
        location: who.location.clone(),
        replica: who.replica.clone(),
        at_ms: stamp.now_ms,
        kind,
        lines,
        staff: cmd.staff().clone(),
        price_overrides: overrides,
    };
    // The bounds the hub checks too: an event recorded here is never
    // refused there for its content.
    crate::limits::check_event(&event).map_err(|e| invalid(e.to_string()))?;
    if let Some(what) = needs_approval {
        return Err(Refusal::ApprovalRequired(what));
    }
    Ok(event)
}
