//! Transfers between stores at the hub (issue 22): each store's
//! `transfer_out` event opens a transfer in transit, the destination's
//! `transfer_in` closes it; both stores hear of each change through their
//! allocation pages (`routed::announce`, tagged `t:`). HQ lists transfers
//! by status, and a transfer in transit longer than the configured time
//! raises one `transfer_overdue` exception (`flag_overdue`, swept by the
//! hub every minute).
//!
//! Tables: `hub_transfers` (id → [`HubTransfer`], JSON),
//! `hub_transfers_by_status` ((status, id) → ()) and
//! `hub_transfers_due` ((hub time it was seen, id) → ()), the transfers in
//! transit not yet flagged, oldest first: the sweep reads only those due;
//! `hub_transfers_received` ((hub time the receipt arrived, id) → ()), the
//! received ones in the order the hub learned of their receipt, so the
//! latest receipts are one reverse range read (`recent`). Each move is
//! counted by status as it happens (`tallies`).

use serde::{Deserialize, Serialize};
use tally_store::redb::{ReadableTable, TableDefinition};
use tally_store::{by_status, ReadTxn, StoreError, WriteTxn};
use tally_sync::transfer::{Transfer, TransferLine, TransferStatus};
use tally_sync::{Event, EventKind, LocationId};

use super::redb::tallies;
use super::redb::{from_json, redb_err, to_json};
use super::routed::announce;
use super::ExceptionRecord;

pub(super) const TRANSFERS: TableDefinition<&str, &[u8]> = TableDefinition::new("hub_transfers");
pub(super) const BY_STATUS: TableDefinition<(&str, &str), ()> =
    TableDefinition::new("hub_transfers_by_status");
pub(super) const DUE: TableDefinition<(u64, &str), ()> = TableDefinition::new("hub_transfers_due");
pub(super) const RECEIVED: TableDefinition<(u64, &str), ()> =
    TableDefinition::new("hub_transfers_received");

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

fn get(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    id: &str,
) -> Result<Option<HubTransfer>, StoreError> {
    match table.get(id).map_err(redb_err)? {
        Some(v) => Ok(Some(from_json("hub_transfers", v.value())?)),
        None => Ok(None),
    }
}

fn put(txn: &WriteTxn, t: &HubTransfer, was: Option<TransferStatus>) -> Result<(), StoreError> {
    let raw = txn.raw();
    let id = t.transfer.transfer_id.as_str();
    raw.open_table(TRANSFERS)
        .map_err(redb_err)?
        .insert(id, to_json("hub_transfers", t)?.as_slice())
        .map_err(redb_err)?;
    by_status::move_status(
        &mut raw.open_table(BY_STATUS).map_err(redb_err)?,
        id,
        was.map(TransferStatus::name),
        t.transfer.status.name(),
    )?;
    tallies::moved(
        txn,
        tallies::TRANSFERS,
        was.map(TransferStatus::name),
        t.transfer.status.name(),
    )
}

fn exception(event: &Event, kind: &str, now_ms: u64, detail: serde_json::Value) -> ExceptionRecord {
    ExceptionRecord {
        id: 0,
        kind: kind.into(),
        store: event.location.to_string(),
        event_ids: vec![event.id],
        at_ms: event.at_ms,
        detected_at_ms: now_ms,
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
pub(super) fn on_event(
    txn: &WriteTxn,
    event: &Event,
    now_ms: u64,
) -> Result<Option<ExceptionRecord>, StoreError> {
    let table = txn.raw().open_table(TRANSFERS).map_err(redb_err)?;
    match &event.kind {
        EventKind::TransferOut { transfer_id, to } => {
            if let Some(old) = get(&table, transfer_id)? {
                drop(table);
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
            drop(table);
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
            put(txn, &t, None)?;
            txn.raw()
                .open_table(DUE)
                .map_err(redb_err)?
                .insert((now_ms, transfer_id.as_str()), ())
                .map_err(redb_err)?;
            announce(txn, to, &format!("t:{transfer_id}"))?;
            Ok(None)
        }
        EventKind::TransferIn { transfer_id, from } => {
            let found = get(&table, transfer_id)?;
            drop(table);
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
                return Ok(None);
            }
            t.transfer.status = TransferStatus::Received;
            t.received_at_ms = Some(event.at_ms);
            put(txn, &t, Some(was))?;
            txn.raw()
                .open_table(DUE)
                .map_err(redb_err)?
                .remove((t.seen_at_ms, transfer_id.as_str()))
                .map_err(redb_err)?;
            txn.raw()
                .open_table(RECEIVED)
                .map_err(redb_err)?
                .insert((now_ms, transfer_id.as_str()), ())
                .map_err(redb_err)?;
            announce(txn, &t.transfer.from, &format!("t:{transfer_id}"))?;
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
pub(super) fn flag_overdue(
    txn: &WriteTxn,
    now_ms: u64,
    overdue_ms: u64,
) -> Result<Vec<ExceptionRecord>, StoreError> {
    let cutoff = now_ms.saturating_sub(overdue_ms);
    let due: Vec<(u64, String)> = {
        let table = txn.raw().open_table(DUE).map_err(redb_err)?;
        let mut out = Vec::new();
        for row in table
            .range((0u64, "")..(cutoff, ""))
            .map_err(redb_err)?
            .take(1_000)
        {
            let (k, _) = row.map_err(redb_err)?;
            let (at, id) = k.value();
            out.push((at, id.to_string()));
        }
        out
    };
    let mut raised = Vec::new();
    for (at, id) in due {
        txn.raw()
            .open_table(DUE)
            .map_err(redb_err)?
            .remove((at, id.as_str()))
            .map_err(redb_err)?;
        let found = get(&txn.raw().open_table(TRANSFERS).map_err(redb_err)?, &id)?;
        let Some(mut t) = found else { continue };
        if t.transfer.status != TransferStatus::InTransit {
            continue;
        }
        t.overdue = true;
        put(txn, &t, Some(t.transfer.status))?;
        raised.push(ExceptionRecord {
            id: 0,
            kind: "transfer_overdue".into(),
            store: t.transfer.to.to_string(),
            event_ids: t.transfer.sent_event.into_iter().collect(),
            at_ms: t.transfer.sent_at_ms,
            detected_at_ms: now_ms,
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

/// Transfers with `status`, by id after `after`, at most `limit`.
pub(super) fn list(
    txn: &ReadTxn,
    status: TransferStatus,
    after: &str,
    limit: usize,
) -> Result<Vec<HubTransfer>, StoreError> {
    let index = txn.raw().open_table(BY_STATUS).map_err(redb_err)?;
    let table = txn.raw().open_table(TRANSFERS).map_err(redb_err)?;
    by_status::records_with_status(&index, &[status.name()], after, limit, |id| get(&table, id))
}

/// The latest `limit` transfers received, the latest first (by when the
/// hub learned of the receipt).
pub(super) fn recent(txn: &ReadTxn, limit: usize) -> Result<Vec<HubTransfer>, StoreError> {
    let index = txn.raw().open_table(RECEIVED).map_err(redb_err)?;
    let table = txn.raw().open_table(TRANSFERS).map_err(redb_err)?;
    let mut out = Vec::new();
    for row in index.iter().map_err(redb_err)?.rev() {
        if out.len() == limit {
            break;
        }
        let (k, _) = row.map_err(redb_err)?;
        out.extend(get(&table, k.value().1)?);
    }
    Ok(out)
}

/// Fills [`RECEIVED`] from the transfers received before it existed, by
/// the time of their receipt (the receiving store's clock: the hub did
/// not keep its own then). Part of [`super::redb::tallies::build`].
pub(super) fn index_received(txn: &WriteTxn) -> Result<(), StoreError> {
    let raw = txn.raw();
    let ids = by_status::ids_with_status(
        &raw.open_table(BY_STATUS).map_err(redb_err)?,
        TransferStatus::Received.name(),
        "",
        usize::MAX,
    )?;
    let table = raw.open_table(TRANSFERS).map_err(redb_err)?;
    let mut index = raw.open_table(RECEIVED).map_err(redb_err)?;
    for id in ids {
        if let Some(t) = get(&table, &id)? {
            let at = t.received_at_ms.unwrap_or(t.seen_at_ms);
            index.insert((at, id.as_str()), ()).map_err(redb_err)?;
        }
    }
    Ok(())
}

/// The transfer `id`.
pub(super) fn read(txn: &ReadTxn, id: &str) -> Result<Option<HubTransfer>, StoreError> {
    get(&txn.raw().open_table(TRANSFERS).map_err(redb_err)?, id)
}

/// The transfer `id` as `store` (one of its two ends) keeps it.
pub(super) fn store_view(
    txn: &ReadTxn,
    id: &str,
    store: &LocationId,
) -> Result<Option<Transfer>, StoreError> {
    Ok(read(txn, id)?
        .map(|t| t.transfer)
        .filter(|t| t.from == *store || t.to == *store))
}
