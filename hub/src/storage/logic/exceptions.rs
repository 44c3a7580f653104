//! What events new at the hub raise for HQ: a manager's approvals, EPCs
//! sold twice, counts left unresolved, each an [`ExceptionRecord`] with
//! its event's own time. Shared by a store's sync and the admission of a
//! held event.

use tally_sync::{Event, EventKind, Exception};

use crate::storage::txn::HubTxn;
use crate::storage::{AckResult, ExceptionAck, ExceptionRecord, StorageError};

/// HQ acknowledges exception `id`: recorded with who, the note and the
/// time, once; a second acknowledgement changes nothing and answers the
/// first.
pub(crate) fn acknowledge<T: HubTxn>(
    txn: &mut T,
    id: u64,
    by: &str,
    note: &str,
    now_ms: u64,
) -> Result<AckResult, StorageError> {
    let Some(mut x) = txn.exception(id)? else {
        return Ok(AckResult::NotFound);
    };
    if x.acknowledged.is_some() {
        return Ok(AckResult::Already(Box::new(x)));
    }
    x.acknowledged = Some(ExceptionAck {
        by: by.to_string(),
        note: note.to_string(),
        at_ms: now_ms,
    });
    txn.put_acknowledged(&x)?;
    Ok(AckResult::Acknowledged(Box::new(x)))
}

/// The exceptions `new_events` (of `store`, just stored) raise: what a
/// manager approved, EPCs they made sold twice (`outcome`), counts they
/// left unresolved; each with its event's own time.
pub(crate) fn new_event_exceptions<T: HubTxn>(
    replica: &T,
    store: &str,
    new_events: &[&Event],
    outcome: &tally_sync::exchange::HubOutcome,
    now_ms: u64,
) -> Result<Vec<ExceptionRecord>, StorageError> {
    let store = store.to_string();
    let mut exceptions = Vec::new();
    for e in new_events {
        for kind in e.exceptions() {
            exceptions.push(ExceptionRecord {
                id: 0,
                kind: kind.name().into(),
                store: store.clone(),
                event_ids: vec![e.id],
                at_ms: e.at_ms,
                detected_at_ms: now_ms,
                acknowledged: None,
                detail: approved_exception(e, kind),
            });
        }
    }
    for d in &outcome.double_sales {
        let mut sales = Vec::new();
        let mut latest = 0;
        for rec in &d.sales {
            let at = replica.event(&rec.event)?.map(|e| e.at_ms);
            latest = latest.max(at.unwrap_or(0));
            sales.push(serde_json::json!({
                "event_id": rec.event,
                "store": rec.replica,
                "at_ms": at,
            }));
        }
        exceptions.push(ExceptionRecord {
            id: 0,
            kind: "epc_sold_twice".into(),
            store: store.clone(),
            event_ids: d.sales.iter().map(|r| r.event).collect(),
            at_ms: latest,
            detected_at_ms: now_ms,
            acknowledged: None,
            detail: serde_json::json!({ "epc": d.epc, "sales": sales }),
        });
    }
    for e in new_events {
        if let EventKind::CountAdjustment {
            counted,
            unresolved,
            ..
        } = &e.kind
        {
            if *unresolved > 0 {
                exceptions.push(ExceptionRecord {
                    id: 0,
                    kind: "count_unresolved".into(),
                    store: store.clone(),
                    event_ids: vec![e.id],
                    at_ms: e.at_ms,
                    detected_at_ms: now_ms,
                    acknowledged: None,
                    detail: serde_json::json!({
                        "gtin": e.lines.first().map(|l| l.gtin),
                        "counted": counted,
                        "unresolved": unresolved,
                    }),
                });
            }
        }
    }
    Ok(exceptions)
}

/// Flags each `override_sale` among `raised` whose sale found units of
/// an item the hub holds at the store's location for online orders
/// waiting on its release (`holds`): the store asked the hub before the
/// override (rights on demand) and the hub kept those units back, so the
/// units the cashier sold may be the ones those orders count on, and an
/// order may now be short at the shelf. The detail gets
/// `held_for_orders`, per such item the units held, for HQ to check the
/// orders.
pub(crate) fn flag_held_for_orders(
    raised: &mut [ExceptionRecord],
    events: &[&Event],
    holds: &tally_sync::exchange::Held,
) {
    for x in raised
        .iter_mut()
        .filter(|x| x.kind == Exception::OverrideSale.name())
    {
        let Some(EventKind::Sale {
            override_: Some(ov),
            ..
        }) = events
            .iter()
            .find(|e| x.event_ids.first() == Some(&e.id))
            .map(|e| &e.kind)
        else {
            continue;
        };
        let held: Vec<serde_json::Value> = ov
            .shortfall
            .iter()
            .filter_map(|s| {
                let units = holds.get(&s.gtin).copied().unwrap_or(0);
                (units > 0).then(|| serde_json::json!({"gtin": s.gtin, "units": units}))
            })
            .collect();
        if let (false, Some(d)) = (held.is_empty(), x.detail.as_object_mut()) {
            d.insert("held_for_orders".into(), held.into());
        }
    }
}

/// What HQ sees of an exception a manager approved: who keyed the event,
/// at which till, who approved it and why, and what it did (the units an
/// override found, the prices keyed against the catalog's, a refund's
/// lines and total).
fn approved_exception(e: &Event, kind: Exception) -> serde_json::Value {
    let approval = e.staff.approval.as_ref();
    let legacy = match &e.kind {
        EventKind::Sale {
            override_: Some(ov),
            ..
        } => Some((&ov.approver, &ov.reason, &ov.shortfall)),
        _ => None,
    };
    let mut detail = serde_json::json!({
        "cashier": e.staff.cashier,
        "till": e.staff.till,
        "approver": approval.map(|a| &a.approver).or(legacy.map(|l| l.0)),
        "reason": approval.map(|a| &a.reason).or(legacy.map(|l| l.1)),
    });
    let what = match kind {
        Exception::OverrideSale => serde_json::json!({ "shortfall": legacy.map(|l| l.2) }),
        Exception::PriceOverride => serde_json::json!({ "price_overrides": e.price_overrides }),
        Exception::NoReceiptRefund => serde_json::json!({
            "lines": e.lines,
            "total_minor": e.total_minor(),
        }),
    };
    if let (Some(d), serde_json::Value::Object(w)) = (detail.as_object_mut(), what) {
        d.extend(w);
    }
    detail
}

#[cfg(test)]
mod tests {
    use tally_sync::event::{Approval, Line, Override, Shortfall, Staff};
    use tally_sync::exchange::Held;
    use tally_sync::Gtin;

    use super::*;

    fn gtin(n: u64) -> Gtin {
        Gtin::from_body(96_385_070 + n).unwrap()
    }

    fn override_sale(found: &[(u64, u64)]) -> Event {
        let kind = EventKind::Sale {
            tenders: Vec::new(),
            override_: Some(Override {
                approver: "ann".into(),
                reason: "on the shelf".into(),
                shortfall: found
                    .iter()
                    .map(|&(g, units)| Shortfall {
                        gtin: gtin(g),
                        units,
                    })
                    .collect(),
            }),
        };
        Event {
            lines: found
                .iter()
                .map(|&(g, qty)| Line {
                    gtin: gtin(g),
                    qty,
                    unit_price_minor: 100,
                    epc: None,
                })
                .collect(),
            staff: Staff {
                approval: Some(Approval {
                    approver: "ann".into(),
                    reason: "on the shelf".into(),
                }),
                ..Staff::default()
            },
            ..super::super::test_support::event(1, "s1", kind, 0)
        }
    }

    /// An override that found units of an item the hub holds for
    /// waiting orders names them; one that found only other items, or a
    /// store with nothing held, is left as it was.
    #[test]
    fn an_override_of_units_held_for_orders_says_so() {
        let sale = override_sale(&[(1, 2), (2, 1)]);
        let raised = || {
            sale.exceptions()
                .into_iter()
                .map(|kind| ExceptionRecord {
                    id: 0,
                    kind: kind.name().into(),
                    store: "s1".into(),
                    event_ids: vec![sale.id],
                    at_ms: sale.at_ms,
                    detected_at_ms: 5,
                    acknowledged: None,
                    detail: approved_exception(&sale, kind),
                })
                .collect::<Vec<_>>()
        };
        let mut flagged = raised();
        let holds: Held = [(gtin(1), 3), (gtin(3), 4)].into_iter().collect();
        flag_held_for_orders(&mut flagged, &[&sale], &holds);
        let x = flagged
            .iter()
            .find(|x| x.kind == "override_sale")
            .expect("an override_sale");
        assert_eq!(
            x.detail["held_for_orders"],
            serde_json::json!([{"gtin": gtin(1), "units": 3}])
        );
        for holds in [Held::new(), [(gtin(3), 4)].into_iter().collect()] {
            let mut plain = raised();
            flag_held_for_orders(&mut plain, &[&sale], &holds);
            assert_eq!(plain, raised());
        }
    }
}
