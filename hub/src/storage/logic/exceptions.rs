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
