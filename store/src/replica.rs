//! [`TxnReplica`]: the model's storage (`tally_sync::exchange::ReplicaStore`)
//! inside one write transaction. Writing a counter stamps the next
//! inventory version and indexes it by `(location, version)`; stale index
//! entries are pruned lazily, [`PRUNE_LAG`] versions behind (see the crate
//! docs, "Stale index entries are removed lazily"). Recording a sale or
//! return of an EPC appends one row and rewrites the tag's fixed-size
//! summary, never its history (see the crate docs, "EPC history is rows").

use std::cell::Cell;
use std::collections::HashMap;

use redb::ReadableTable;

use tally_sync::epcs::{DoubleSale, EpcHistory, EpcRecord, EpcSummary};
use tally_sync::exchange::{ReplicaStore, MAX_LISTED_SALES};
use tally_sync::journal::Inserted;
use tally_sync::message::CatalogItem;
use tally_sync::{BoundedCounter, Delta, Epc, Event, EventId, Gtin, ItemKey, LocationId};

use crate::catalog;
use crate::error::{corrupt, StoreError};
use crate::tables::{
    self, encode, epc_row, epc_state_value, read_u64, with_version, EpcRowKey, EpcStateValue,
    CATALOG, CHANGES, COUNTERS, EPC_RETURN, EPC_ROWS, EPC_SALE, EPC_STATE, EVENTS,
    INVENTORY_VERSION, META, PRUNED_PREFIX,
};
use crate::txn::LazyTable;

/// How far behind the latest version stale change-index entries are left
/// for a pruning pass (see the crate docs).
pub const PRUNE_LAG: u64 = 4096;

/// The model's storage (`ReplicaStore`) inside one write transaction. Its
/// tables are opened on first use ([`LazyTable`]).
#[allow(missing_debug_implementations)]
pub struct TxnReplica<'t> {
    counters: LazyTable<'t, (&'static str, u64), &'static [u8]>,
    changes: LazyTable<'t, (&'static str, u64), u64>,
    events: LazyTable<'t, u128, &'static [u8]>,
    epc_state: LazyTable<'t, &'static [u8], EpcStateValue>,
    epc_rows: LazyTable<'t, EpcRowKey, ()>,
    catalog: LazyTable<'t, u64, &'static [u8]>,
    meta: LazyTable<'t, &'static str, &'static [u8]>,
    /// The inventory version, once read.
    version: Cell<Option<u64>>,
    /// Pruning watermarks read so far, by location.
    pruned: HashMap<String, u64>,
}

impl<'t> TxnReplica<'t> {
    /// The replica of `txn`, no table opened yet.
    pub(crate) fn new(txn: &'t redb::WriteTransaction) -> Self {
        TxnReplica {
            counters: LazyTable::new(txn, COUNTERS),
            changes: LazyTable::new(txn, CHANGES),
            events: LazyTable::new(txn, EVENTS),
            epc_state: LazyTable::new(txn, EPC_STATE),
            epc_rows: LazyTable::new(txn, EPC_ROWS),
            catalog: LazyTable::new(txn, CATALOG),
            meta: LazyTable::new(txn, META),
            version: Cell::new(None),
            pruned: HashMap::new(),
        }
    }
}

impl TxnReplica<'_> {
    fn pruned_upto(&mut self, location: &str) -> Result<u64, StoreError> {
        if let Some(&v) = self.pruned.get(location) {
            return Ok(v);
        }
        let v = read_u64(self.meta.get()?, &format!("{PRUNED_PREFIX}{location}"))?;
        self.pruned.insert(location.to_string(), v);
        Ok(v)
    }

    fn version(&self) -> Result<u64, StoreError> {
        if let Some(v) = self.version.get() {
            return Ok(v);
        }
        let v = read_u64(self.meta.get()?, INVENTORY_VERSION)?;
        self.version.set(Some(v));
        Ok(v)
    }

    /// Deletes the stale change-index entries of `location` (entries of
    /// counters changed again since) up to version `upto`, scanning only
    /// what was not scanned before; returns how many it deleted. Never
    /// changes what `delta_since` returns, for any cursor.
    pub fn prune_changes(&mut self, location: &LocationId, upto: u64) -> Result<u64, StoreError> {
        let loc = location.as_str();
        let from = self.pruned_upto(loc)?;
        let upto = upto.min(self.version()?);
        if upto <= from {
            return Ok(0);
        }
        let mut stale = Vec::new();
        for row in self.changes.get()?.range((loc, from + 1)..=(loc, upto))? {
            let (k, gtin) = row?;
            let version = k.value().1;
            let gtin = Gtin::from_u64(gtin.value()).map_err(|e| corrupt("counter_changes", e))?;
            let key = ItemKey::new(location.clone(), gtin);
            if tables::counter(self.counters.get()?, &key)?.map(|(v, _)| v) != Some(version) {
                stale.push(version);
            }
        }
        let changes = self.changes.get_mut()?;
        for v in &stale {
            changes.remove((loc, *v))?;
        }
        self.meta.get_mut()?.insert(
            format!("{PRUNED_PREFIX}{loc}").as_str(),
            upto.to_le_bytes().as_slice(),
        )?;
        self.pruned.insert(loc.to_string(), upto);
        Ok(stale.len() as u64)
    }

    /// The latest inventory version (a cursor covering every change).
    pub fn inventory_version(&self) -> Result<u64, StoreError> {
        self.version()
    }

    /// The stored event with `id`.
    pub fn event(&self, id: &EventId) -> Result<Option<Event>, StoreError> {
        tables::event(self.events.get()?, id)
    }

    /// The summary of `epc` (one fixed-size row).
    pub fn epc_summary(&self, epc: &Epc) -> Result<Option<EpcSummary>, StoreError> {
        tables::epc_summary(self.epc_state.get()?, epc)
    }

    /// The whole history of `epc`: a range read over its rows, for a
    /// lookup (recording an event never reads it).
    pub fn epc_history(&self, epc: &Epc) -> Result<Option<EpcHistory>, StoreError> {
        tables::epc_history(self.epc_state.get()?, self.epc_rows.get()?, epc)
    }

    /// A catalog item.
    pub fn catalog_item(&self, gtin: Gtin) -> Result<Option<CatalogItem>, StoreError> {
        catalog::item(self.catalog.get()?, gtin)
    }

    /// Like [`ReplicaStore::insert_event`], for a caller that has looked
    /// the id up already in this transaction or has just generated it: one
    /// descent of the event tree instead of two (a lookup costs as much as
    /// the insert). Should the id be there after all, the stored record is
    /// put back, never replaced, and the answer is `Duplicate` or
    /// `Conflict` as from `insert_event`.
    pub fn insert_new_event(&mut self, e: &Event) -> Result<Inserted, StoreError> {
        let bytes = encode("events", e)?;
        let events = self.events.get_mut()?;
        let Some(old) = events
            .insert(e.id.0.as_u128(), bytes.as_slice())?
            .map(|v| v.value().to_vec())
        else {
            return Ok(Inserted::New);
        };
        events.insert(e.id.0.as_u128(), old.as_slice())?;
        Ok(already_stored(&tables::decode_event(&old)?, e))
    }

    /// Appends the row of `record` as a sale or return of `epc` and
    /// returns the tag's summary before it, or `None` if the row was there
    /// already (the record is held: nothing changes). One point read and
    /// one insert, whatever the tag's history.
    fn add_epc_row(
        &mut self,
        epc: &Epc,
        movement: u8,
        record: &EpcRecord,
    ) -> Result<Option<EpcSummary>, StoreError> {
        let before = self.epc_summary(epc)?.unwrap_or_default();
        let held = self
            .epc_rows
            .get_mut()?
            .insert(epc_row(epc, movement, record), ())?
            .is_some();
        Ok((!held).then_some(before))
    }

    fn put_epc_summary(&mut self, epc: &Epc, summary: &EpcSummary) -> Result<(), StoreError> {
        self.epc_state
            .get_mut()?
            .insert(epc.as_bytes(), epc_state_value(summary))?;
        Ok(())
    }
}

/// What inserting `new` means when `existing` has its id already.
fn already_stored(existing: &Event, new: &Event) -> Inserted {
    if existing == new {
        Inserted::Duplicate
    } else {
        Inserted::Conflict
    }
}

impl ReplicaStore for TxnReplica<'_> {
    type Error = StoreError;

    fn counter(&self, key: &ItemKey) -> Result<BoundedCounter, StoreError> {
        Ok(tables::counter(self.counters.get()?, key)?
            .map(|(_, c)| c)
            .unwrap_or_default())
    }

    fn put_counter(&mut self, key: &ItemKey, c: BoundedCounter) -> Result<(), StoreError> {
        let loc = key.location.as_str();
        let old = tables::counter(self.counters.get()?, key)?;
        match &old {
            Some((_, o)) if *o == c => return Ok(()),
            None if c.is_empty() => return Ok(()),
            _ => {}
        }
        if let Some((v, _)) = old {
            // Below the watermark no pruning scan will pass again.
            if v <= self.pruned_upto(loc)? {
                self.changes.get_mut()?.remove((loc, v))?;
            }
        }
        let version = self.version()? + 1;
        self.version.set(Some(version));
        self.meta
            .get_mut()?
            .insert(INVENTORY_VERSION, version.to_le_bytes().as_slice())?;
        self.changes
            .get_mut()?
            .insert((loc, version), key.gtin.as_u64())?;
        self.counters.get_mut()?.insert(
            (loc, key.gtin.as_u64()),
            with_version("counters", version, &c)?.as_slice(),
        )?;
        if version.saturating_sub(self.pruned_upto(loc)?) > 2 * PRUNE_LAG {
            self.prune_changes(&key.location, version - PRUNE_LAG)?;
        }
        Ok(())
    }

    fn delta_since(
        &self,
        location: &LocationId,
        cursor: u64,
        limit: usize,
    ) -> Result<(Delta, u64), StoreError> {
        tables::delta_since(
            self.counters.get()?,
            self.changes.get()?,
            self.version()?,
            location,
            cursor,
            limit,
        )
    }

    fn insert_event(&mut self, e: &Event) -> Result<Inserted, StoreError> {
        if let Some(existing) = self.event(&e.id)? {
            return Ok(already_stored(&existing, e));
        }
        self.events
            .get_mut()?
            .insert(e.id.0.as_u128(), encode("events", e)?.as_slice())?;
        Ok(Inserted::New)
    }

    /// One row and the tag's summary, whatever its history. A double sale
    /// lists the first [`MAX_LISTED_SALES`] sales (a bounded range read).
    fn record_epc_sale(
        &mut self,
        epc: &Epc,
        record: EpcRecord,
    ) -> Result<Option<DoubleSale>, StoreError> {
        let Some(before) = self.add_epc_row(epc, EPC_SALE, &record)? else {
            return Ok(None);
        };
        let (after, newly_double) = before.after_sale(&record);
        self.put_epc_summary(epc, &after)?;
        if !newly_double {
            return Ok(None);
        }
        Ok(Some(DoubleSale {
            epc: epc.clone(),
            sales: tables::epc_records(self.epc_rows.get()?, epc, EPC_SALE, MAX_LISTED_SALES)?,
        }))
    }

    /// One row and the tag's summary, whatever its history.
    fn record_epc_return(&mut self, epc: &Epc, record: EpcRecord) -> Result<(), StoreError> {
        if let Some(before) = self.add_epc_row(epc, EPC_RETURN, &record)? {
            self.put_epc_summary(epc, &before.after_return())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::Db;

    #[test]
    fn an_event_inserted_as_new_is_written_once_and_never_replaced() {
        use tally_sync::{EventKind, Line, ReplicaId};
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path().join("e.redb")).unwrap();
        let event = |units: u64| Event {
            id: EventId::v7(7, [7; 10]),
            location: LocationId::new("s1").unwrap(),
            replica: ReplicaId::new("s1").unwrap(),
            at_ms: 1,
            kind: EventKind::Receipt,
            lines: vec![Line {
                gtin: Gtin::from_body(7).unwrap(),
                qty: units,
                unit_price_minor: 0,
                epc: None,
            }],
            staff: Default::default(),
            price_overrides: Vec::new(),
        };
        let txn = db.begin_write().unwrap();
        {
            let mut r = txn.replica().unwrap();
            assert_eq!(r.insert_new_event(&event(1)).unwrap(), Inserted::New);
            assert_eq!(r.insert_new_event(&event(1)).unwrap(), Inserted::Duplicate);
            assert_eq!(r.insert_new_event(&event(2)).unwrap(), Inserted::Conflict);
            // The same answers as the looking-up insert.
            assert_eq!(r.insert_event(&event(1)).unwrap(), Inserted::Duplicate);
            assert_eq!(r.insert_event(&event(2)).unwrap(), Inserted::Conflict);
        }
        txn.commit().unwrap();
        let stored = db.begin_read().unwrap().event(&event(1).id).unwrap();
        assert_eq!(stored, Some(event(1)), "the first record stays");
    }
}
