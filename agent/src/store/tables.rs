//! The agent's own tables beside `tally-store`'s, in the same database:
//! their definitions and metadata keys, and the reads and writes on them
//! that more than one part of the store uses (the outbox's last sequence
//! number, refused demand, units returned per sale, the sync cursors,
//! sales lost by reason).

use std::collections::BTreeMap;

use tally_store::redb::{ReadableTable, TableDefinition};
use tally_store::{ReadTxn, StoreError, WriteTxn};
use tally_sync::exchange::SyncCursors;
use tally_sync::lost::REASONS;
use tally_sync::{ByReason, EventId, Gtin, Lost, Shortage};

use crate::outbox;

/// Refused demand: gtin → units.
pub(super) const DEMAND: TableDefinition<u64, u64> = TableDefinition::new("agent_demand");
/// Units returns took back from this store's sales: (sale id, gtin) →
/// units. Written with each return that names a sale recorded here.
pub(super) const RETURNED: TableDefinition<(u128, u64), u64> =
    TableDefinition::new("agent_returned");
/// Sales refused for lack of rights since the database was created:
/// reason (`tally_sync::Shortage::name`) → (sales, units). Only rises;
/// every sync request carries the totals (`tally_sync::lost`).
pub(super) const LOST_SALES: TableDefinition<&str, (u64, u64)> =
    TableDefinition::new("agent_lost_sales");
/// The agent's counters: name → value.
pub(super) const AGENT_META: TableDefinition<&str, u64> = TableDefinition::new("agent_meta");
/// Events the hub refused for good: event id → reason (UTF-8).
pub(super) const DEAD_LETTER: TableDefinition<u128, &[u8]> =
    TableDefinition::new("agent_dead_letter");
/// Last outbox sequence number handed out, written when entries are
/// removed (otherwise the outbox's last key is newer).
pub(super) const OUTBOX_SEQ: &str = "outbox_seq";
/// The counters table holds the effect of every outbox entry up to this
/// sequence number (see `crate::store`'s design constraints).
pub(super) const COUNTERS_FLUSHED_UPTO: &str = "counters_flushed_upto";
/// The sync cursors (`tally_sync::exchange::SyncCursors`), one key each.
pub(super) const CURSOR_KEYS: [&str; 4] = [
    "sync_acked_delta_version",
    "sync_acked_events_upto",
    "sync_hub_cursor",
    "sync_catalog_cursor",
];
/// `tally-store` metadata key of the store id.
pub(super) const STORE_ID: &str = "store_id";
/// `tally-store` metadata key of the secret that keys derived event ids
/// ([`crate::event_ids`]): made once, never sent.
pub(super) const EVENT_ID_SECRET: &str = "event_id_secret";

/// A redb error as a storage failure.
pub(crate) fn storage(e: impl std::fmt::Display) -> StoreError {
    StoreError::Storage(e.to_string())
}

/// The last outbox sequence number handed out.
pub(super) fn outbox_seq(
    meta: &impl ReadableTable<&'static str, u64>,
    outbox: &impl ReadableTable<u64, &'static [u8]>,
) -> Result<u64, StoreError> {
    let stored = meta
        .get(OUTBOX_SEQ)
        .map_err(storage)?
        .map_or(0, |v| v.value());
    Ok(stored.max(outbox::last_seq(outbox)?))
}

/// Stores the last outbox sequence number before entries are removed, so
/// numbers never repeat once the outbox empties.
pub(super) fn pin_outbox_seq(
    meta: &mut tally_store::redb::Table<'_, &'static str, u64>,
    outbox: &impl ReadableTable<u64, &'static [u8]>,
) -> Result<(), StoreError> {
    let seq = outbox_seq(meta, outbox)?;
    meta.insert(OUTBOX_SEQ, seq).map_err(storage)?;
    Ok(())
}

pub(super) fn read_demand(txn: &ReadTxn) -> Result<BTreeMap<Gtin, u64>, StoreError> {
    let t = txn.raw().open_table(DEMAND).map_err(storage)?;
    let mut out = BTreeMap::new();
    for row in t.iter().map_err(storage)? {
        let (k, v) = row.map_err(storage)?;
        let gtin = Gtin::from_u64(k.value()).map_err(|e| StoreError::Corrupt {
            table: "agent_demand",
            detail: e.to_string(),
        })?;
        out.insert(gtin, v.value());
    }
    Ok(out)
}

/// Sets the refused demand for `gtin` to `units` (none kept at 0).
pub(super) fn set_demand(
    table: &mut tally_store::redb::Table<'_, u64, u64>,
    gtin: Gtin,
    units: u64,
) -> Result<(), StoreError> {
    let key = gtin.as_u64();
    if units == 0 {
        table.remove(key).map_err(storage)?;
    } else {
        table.insert(key, units).map_err(storage)?;
    }
    Ok(())
}

/// The totals of sales lost for lack of rights, by reason.
pub(super) fn read_lost(txn: &ReadTxn) -> Result<ByReason<Lost>, StoreError> {
    let t = txn.raw().open_table(LOST_SALES).map_err(storage)?;
    let mut out = ByReason::<Lost>::default();
    for row in t.iter().map_err(storage)? {
        let (k, v) = row.map_err(storage)?;
        let reason = Shortage::from_name(k.value()).ok_or_else(|| StoreError::Corrupt {
            table: "agent_lost_sales",
            detail: format!("unknown reason {:?}", k.value()),
        })?;
        let (sales, units) = v.value();
        *out.get_mut(reason) = Lost { sales, units };
    }
    Ok(out)
}

/// Adds a batch's lost sales to the totals in `txn` (saturating).
pub(crate) fn add_lost(txn: &WriteTxn, added: &ByReason<Lost>) -> Result<(), StoreError> {
    let mut t = txn.raw().open_table(LOST_SALES).map_err(storage)?;
    for reason in REASONS {
        let add = *added.get(reason);
        if add == Lost::default() {
            continue;
        }
        let (sales, units) = t
            .get(reason.name())
            .map_err(storage)?
            .map_or((0, 0), |v| v.value());
        let mut total = Lost { sales, units };
        total.add(add);
        t.insert(reason.name(), (total.sales, total.units))
            .map_err(storage)?;
    }
    Ok(())
}

pub(super) fn returned_from(
    t: &impl ReadableTable<(u128, u64), u64>,
    sale: &EventId,
) -> Result<BTreeMap<Gtin, u64>, StoreError> {
    let sale = sale.0.as_u128();
    let mut units = BTreeMap::new();
    for row in t.range((sale, 0)..=(sale, u64::MAX)).map_err(storage)? {
        let (k, v) = row.map_err(storage)?;
        let gtin = Gtin::from_u64(k.value().1).map_err(|e| StoreError::Corrupt {
            table: "agent_returned",
            detail: e.to_string(),
        })?;
        units.insert(gtin, v.value());
    }
    Ok(units)
}

pub(super) fn read_cursors(txn: &ReadTxn) -> Result<SyncCursors, StoreError> {
    cursors_from(&txn.raw().open_table(AGENT_META).map_err(storage)?)
}

pub(super) fn cursors_from(
    meta: &impl ReadableTable<&'static str, u64>,
) -> Result<SyncCursors, StoreError> {
    let mut v = [0u64; 4];
    for (slot, key) in v.iter_mut().zip(CURSOR_KEYS) {
        *slot = meta.get(key).map_err(storage)?.map_or(0, |x| x.value());
    }
    Ok(SyncCursors {
        acked_delta_version: v[0],
        acked_events_upto: v[1],
        hub_cursor: v[2],
        catalog_cursor: v[3],
    })
}
