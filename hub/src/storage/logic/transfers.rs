//! Transfers between stores at the hub (issue 22): each store's
//! `transfer_out` event opens a transfer in transit, the destination's
//! `transfer_in` closes it; both stores hear of each change through their
//! allocation pages (`HubTxn::announce`, tagged `t:`). HQ lists transfers
//! by status, and a transfer in transit longer than the configured time
//! raises one `transfer_overdue` exception (`flag_overdue`, swept by the
//! hub every minute): the sweep reads only the transfers due
//! (`HubTxn::transfers_due`).

use serde::{Deserialize, Serialize};
use tally_sync::transfer::{Transfer, TransferLine, TransferStatus};
use tally_sync::{Event, EventKind};

use crate::storage::txn::HubTxn;
use crate::storage::{ExceptionRecord, StorageError};

/// Most transfers one sweep flags.
const SWEEP: usize = 1_000;

/// A transfer as the hub keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HubTransfer {
    /// The transfer (status included).
    pub transfer: Transfer,
    /// When the hub learned of it (hub clock, Unix ms).
    pub seen_at_ms: u64,
    /// When the destination received it (its clock, Unix ms).
    pub received_at_ms: Option<u64>,
    /// Whether `transfer_overdue` was raised for it.
    #[serde(default)]
    pub overdue: bool,
}

fn exception(event: &Event, kind: &str, now_ms: u64, detail: serde_json::Value) -> ExceptionRecord {
    ExceptionRecord {
        id: 0,
        kind: kind.into(),
        store: event.location.to_string(),
        event_ids: vec![event.id],
        at_ms: event.at_ms,
        detected_at_ms: now_ms,
        acknowledged: None,
        detail,
    }
}

fn lines_of(event: &Event) -> Vec<TransferLine> {
    TransferLine::of_event(&event.lines)
}

/// A store's new `transfer_out` or `transfer_in` event, just stored:
/// opens or closes its transfer and tells the other store. Answers the
/// exception it raises, if any (an id reused, a receipt of no transfer
/// sent to that store, a receipt other than what was sent).
pub(crate) fn on_event<T: HubTxn>(
    txn: &mut T,
    event: &Event,
    now_ms: u64,
) -> Result<Option<ExceptionRecord>, StorageError> {
    match &event.kind {
        EventKind::TransferOut { transfer_id, to } => {
            if let Some(old) = txn.transfer(transfer_id)? {
                return Ok(Some(exception(
                    event,
                    "transfer_conflict",
                    now_ms,
                    serde_json::json!({
                        "transfer_id": transfer_id,
                        "message": format!("the id was already used by a transfer from {} to {}", old.transfer.from, old.transfer.to),
                    }),
                )));
            }
            let t = HubTransfer {
                transfer: Transfer {
                    transfer_id: transfer_id.clone(),
                    from: event.location.clone(),
                    to: to.clone(),
                    lines: lines_of(event),
                    status: TransferStatus::InTransit,
                    sent_at_ms: event.at_ms,
                    sent_event: Some(event.id),
                },
                seen_at_ms: now_ms,
                received_at_ms: None,
                overdue: false,
            };
            txn.put_transfer(&t, None)?;
            txn.set_transfer_due(now_ms, transfer_id, true)?;
            txn.announce(to, &format!("t:{transfer_id}"))?;
            Ok(None)
        }
        EventKind::TransferIn { transfer_id, from } => {
            let found = txn.transfer(transfer_id)?;
            let Some(mut t) =
                found.filter(|t| t.transfer.to == event.location && t.transfer.from == *from)
            else {
                return Ok(Some(exception(
                    event,
                    "transfer_unknown",
                    now_ms,
                    serde_json::json!({
                        "transfer_id": transfer_id,
                        "from": from,
                        "message": "received a transfer the hub has no record of sent to this store",
                    }),
                )));
            };
            let mismatch = t.transfer.units()
                != Transfer {
                    lines: lines_of(event),
                    ..t.transfer.clone()
                }
                .units();
            let was = t.transfer.status;
            if was == TransferStatus::Received {
                // Another event receiving a transfer received already (the
                // same event again is never stored twice): its units came
                // once, yet this one adds them to the store's stock again.
                return Ok(Some(exception(
                    event,
                    "transfer_duplicate",
                    now_ms,
                    serde_json::json!({
                        "transfer_id": transfer_id,
                        "from": from,
                        "message": "a transfer received already was received again: its units would count twice",
                    }),
                )));
            }
            t.transfer.status = TransferStatus::Received;
            t.received_at_ms = Some(event.at_ms);
            txn.put_transfer(&t, Some(was))?;
            txn.set_transfer_due(t.seen_at_ms, transfer_id, false)?;
            txn.transfer_received_at_hub(transfer_id, now_ms)?;
            txn.announce(&t.transfer.from, &format!("t:{transfer_id}"))?;
            Ok(mismatch.then(|| {
                exception(
                    event,
                    "transfer_mismatch",
                    now_ms,
                    serde_json::json!({
                        "transfer_id": transfer_id,
                        "message": "the units received are not the units sent",
                    }),
                )
            }))
        }
        _ => Ok(None),
    }
}

/// Raises `transfer_overdue` for every transfer in transit that the hub
/// has known for longer than `overdue_ms` and not flagged yet; answers
/// how many. Reads only the transfers due.
pub(crate) fn flag_overdue<T: HubTxn>(
    txn: &mut T,
    now_ms: u64,
    overdue_ms: u64,
) -> Result<Vec<ExceptionRecord>, StorageError> {
    let cutoff = now_ms.saturating_sub(overdue_ms);
    let due = txn.transfers_due(cutoff, SWEEP)?;
    let mut raised = Vec::new();
    for (at, id) in due {
        txn.set_transfer_due(at, &id, false)?;
        let Some(mut t) = txn.transfer(&id)? else {
            continue;
        };
        if t.transfer.status != TransferStatus::InTransit {
            continue;
        }
        t.overdue = true;
        txn.put_transfer(&t, Some(t.transfer.status))?;
        raised.push(ExceptionRecord {
            id: 0,
            kind: "transfer_overdue".into(),
            store: t.transfer.to.to_string(),
            event_ids: t.transfer.sent_event.into_iter().collect(),
            at_ms: t.transfer.sent_at_ms,
            detected_at_ms: now_ms,
            acknowledged: None,
            detail: serde_json::json!({
                "transfer_id": id,
                "from": t.transfer.from,
                "to": t.transfer.to,
                "units": t.transfer.units().values().sum::<u64>(),
                "message": "in transit longer than the hub allows: not received at its destination",
            }),
        });
    }
    Ok(raised)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use tally_sync::LocationId;

    use super::super::test_support::event;
    use super::*;
    use crate::storage::redb::txn::RedbTxn;
    use crate::storage::HubStorage;

    #[test]
    fn a_transfer_opens_is_swept_once_and_closes_on_receipt() {
        let dir = tempfile::tempdir().unwrap();
        let hub = super::super::test_support::hub(dir.path());
        let (s1, s2) = (
            LocationId::new("s1").unwrap(),
            LocationId::new("s2").unwrap(),
        );
        let out = EventKind::TransferOut {
            transfer_id: "T1".into(),
            to: s2.clone(),
        };
        let txn = hub.db().begin_write().unwrap();
        {
            let mut t = RedbTxn::new(&txn);
            assert_eq!(
                on_event(&mut t, &event(1, "s1", out.clone(), 3), 10).unwrap(),
                None
            );
            // The id again: a conflict, and the transfer stays as it was.
            let again = on_event(&mut t, &event(2, "s1", out, 3), 11).unwrap();
            assert_eq!(again.unwrap().kind, "transfer_conflict");
            // Not due before its time; due once after it.
            assert!(flag_overdue(&mut t, 50, 100).unwrap().is_empty());
            let raised = flag_overdue(&mut t, 200, 100).unwrap();
            assert_eq!(raised.len(), 1);
            assert_eq!(raised[0].kind, "transfer_overdue");
            assert!(flag_overdue(&mut t, 300, 100).unwrap().is_empty());
            // Received with fewer units than sent: closed, with a mismatch.
            let inn = EventKind::TransferIn {
                transfer_id: "T1".into(),
                from: s1.clone(),
            };
            let got = on_event(&mut t, &event(3, "s2", inn.clone(), 2), 400).unwrap();
            assert_eq!(got.unwrap().kind, "transfer_mismatch");
            // Received again by another event: raised, the transfer as it was.
            let twice = on_event(&mut t, &event(4, "s2", inn, 2), 401).unwrap();
            assert_eq!(twice.unwrap().kind, "transfer_duplicate");
        }
        txn.commit().unwrap();

        let t = hub.transfer("T1").unwrap().unwrap();
        assert_eq!(t.transfer.status, TransferStatus::Received);
        assert!(t.overdue);
        assert_eq!(t.seen_at_ms, 10);
        let received = hub.transfers_received_recently(10).unwrap();
        assert_eq!(received.len(), 1);
        let counts = hub.status_counts().unwrap();
        assert_eq!(counts.transfers["received"], 1);
        assert_eq!(counts.transfers["in_transit"], 0);
        // Both ends heard of it.
        for store in [&s1, &s2] {
            let page = hub.allocations(store, 0, 10).unwrap();
            assert_eq!(page.transfers.len(), 1, "{store}");
        }
    }
}
