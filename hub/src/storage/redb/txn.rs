//! [`RedbTxn`]: the hub's [`HubTxn`] on one redb write transaction:
//! `tally-store`'s replica (counters, events, its EPC rows, the catalog)
//! plus the hub's own tables, opened as they are needed.
//!
//! # Design constraints
//! - redb refuses to open a table twice at once in one transaction, so
//!   the tables a `RedbTxn` keeps open (the replica's, `hub_holdings`) are
//!   opened lazily and closed by [`RedbTxn::write_txn`] before code that
//!   opens tables of its own is handed the raw transaction; the hub's
//!   other tables are opened and closed within each call.
//! - Every counter the hub writes goes through [`ReplicaStore::put_counter`]
//!   here, which keeps the index of where the hub holds rights
//!   ([`super::holdings`]) in the same transaction.

use std::cell::OnceCell;
use std::collections::BTreeMap;

use tally_store::redb::ReadableTable;
use tally_store::{LazyTable, StoreError, TxnReplica, WriteTxn};
use tally_sync::epcs::{DoubleSale, EpcRecord, EpcState};
use tally_sync::exchange::{EpcMove, HubReplica, ReplicaStore};
use tally_sync::explain::Explained;
use tally_sync::journal::Inserted;
use tally_sync::transfer::TransferStatus;
use tally_sync::{
    BoundedCounter, Delta, Epc, Event, EventId, Gtin, ItemKey, LocationId, ReplicaId,
};

use tally_sync::fulfilment::Status;
use tally_sync::message::CatalogItem;
use tally_sync::DemandEstimate;

use super::content::{put_epc, EPC_ROWS, EPC_STATE, EXPLAINED};
use super::{corrupt, from_json, held, holdings, records, redb_err, returns, routed, transfers};
use crate::storage::held::HeldEvent;
use crate::storage::logic::orders::OrderIndex;
use crate::storage::logic::rights::GrantRecord;
use crate::storage::returns::{Claim, CrossReturn};
use crate::storage::routed::RoutedOrder;
use crate::storage::transfers::HubTransfer;
use crate::storage::txn::HubTxn;
use crate::storage::{ExceptionRecord, StorageError, StoreRecord};

/// One batch's redb write transaction as a [`HubTxn`]. See the module
/// docs.
pub(crate) struct RedbTxn<'t> {
    txn: &'t WriteTxn,
    replica: OnceCell<TxnReplica<'t>>,
    holdings: LazyTable<'t, (u64, &'static str), u64>,
}

impl<'t> RedbTxn<'t> {
    /// `txn` as a [`HubTxn`], no table opened yet.
    pub(crate) fn new(txn: &'t WriteTxn) -> Self {
        Self {
            txn,
            replica: OnceCell::new(),
            holdings: LazyTable::new(txn.raw(), holdings::HOLDINGS),
        }
    }

    /// The raw transaction, for `tally-store` calls that open the
    /// replica's tables themselves: every table this object holds open is
    /// closed first.
    fn write_txn(&mut self) -> &'t WriteTxn {
        self.replica = OnceCell::new();
        self.holdings = LazyTable::new(self.txn.raw(), holdings::HOLDINGS);
        self.txn
    }

    /// `tally-store`'s replica in this transaction, created on first use.
    fn store(&self) -> Result<&TxnReplica<'t>, StoreError> {
        if let Some(r) = self.replica.get() {
            return Ok(r);
        }
        let r = self.txn.replica()?;
        Ok(self.replica.get_or_init(|| r))
    }

    /// Like [`Self::store`], to write.
    fn store_mut(&mut self) -> Result<&mut TxnReplica<'t>, StoreError> {
        if self.replica.get().is_none() {
            self.replica = OnceCell::from(self.txn.replica()?);
        }
        self.replica
            .get_mut()
            .ok_or_else(|| StoreError::Storage("the replica was not created".into()))
    }
}

impl ReplicaStore for RedbTxn<'_> {
    type Error = StorageError;

    fn counter(&self, key: &ItemKey) -> Result<BoundedCounter, StorageError> {
        Ok(self.store()?.counter(key)?)
    }

    fn put_counter(&mut self, key: &ItemKey, counter: BoundedCounter) -> Result<(), StorageError> {
        holdings::update(self.holdings.get_mut()?, key, &counter)?;
        Ok(self.store_mut()?.put_counter(key, counter)?)
    }

    fn delta_since(
        &self,
        location: &LocationId,
        cursor: u64,
        limit: usize,
    ) -> Result<(Delta, u64), StorageError> {
        Ok(self.store()?.delta_since(location, cursor, limit)?)
    }

    fn insert_event(&mut self, event: &Event) -> Result<Inserted, StorageError> {
        Ok(self.store_mut()?.insert_event(event)?)
    }

    fn record_epc_sale(
        &mut self,
        epc: &Epc,
        record: EpcRecord,
    ) -> Result<Option<DoubleSale>, StorageError> {
        Ok(self.store_mut()?.record_epc_sale(epc, record)?)
    }

    fn record_epc_return(&mut self, epc: &Epc, record: EpcRecord) -> Result<(), StorageError> {
        Ok(self.store_mut()?.record_epc_return(epc, record)?)
    }
}

impl HubReplica for RedbTxn<'_> {
    fn has_event(&self, id: &EventId) -> Result<bool, StorageError> {
        Ok(self.store()?.event(id)?.is_some())
    }

    fn epc_state(&self, epc: &Epc) -> Result<Option<EpcState>, StorageError> {
        let table = self.txn.raw().open_table(EPC_STATE).map_err(redb_err)?;
        let found = table.get(epc.as_bytes()).map_err(redb_err)?;
        Ok(found
            .map(|v| from_json("hub_epc_state", v.value()))
            .transpose()?)
    }

    fn put_epc(
        &mut self,
        epc: &Epc,
        movement: EpcMove,
        record: &EpcRecord,
        state: &EpcState,
    ) -> Result<(), StorageError> {
        Ok(put_epc(self.txn, epc, movement, record, state)?)
    }

    fn epc_sales(&self, epc: &Epc, limit: usize) -> Result<Vec<EpcRecord>, StorageError> {
        let table = self.txn.raw().open_table(EPC_ROWS).map_err(redb_err)?;
        let e = epc.as_bytes();
        let mut out = Vec::new();
        for row in table
            .range((e, 0u8, 0u128)..=(e, 0u8, u128::MAX))
            .map_err(redb_err)?
            .take(limit)
        {
            let (k, v) = row.map_err(redb_err)?;
            out.push(EpcRecord {
                event: EventId(uuid::Uuid::from_u128(k.value().2)),
                replica: ReplicaId::new(v.value()).map_err(|e| corrupt("hub_epc_rows", e))?,
            });
        }
        Ok(out)
    }

    fn explained(&self, key: &ItemKey) -> Result<Explained, StorageError> {
        let table = self.txn.raw().open_table(EXPLAINED).map_err(redb_err)?;
        let found = table
            .get((key.location.as_str(), key.gtin.as_u64()))
            .map_err(redb_err)?;
        Ok(found.map_or_else(Explained::default, |v| {
            let (added, removed) = v.value();
            Explained { added, removed }
        }))
    }

    fn put_explained(&mut self, key: &ItemKey, x: Explained) -> Result<(), StorageError> {
        self.txn
            .raw()
            .open_table(EXPLAINED)
            .map_err(redb_err)?
            .insert(
                (key.location.as_str(), key.gtin.as_u64()),
                (x.added, x.removed),
            )
            .map_err(redb_err)?;
        Ok(())
    }
}

impl HubTxn for RedbTxn<'_> {
    fn event(&self, id: &EventId) -> Result<Option<Event>, StorageError> {
        Ok(self.store()?.event(id)?)
    }

    fn append_exceptions(&mut self, exceptions: Vec<ExceptionRecord>) -> Result<(), StorageError> {
        Ok(super::append_exceptions(self.txn, exceptions)?)
    }

    fn exception(&self, id: u64) -> Result<Option<ExceptionRecord>, StorageError> {
        Ok(super::exception(self.txn, id)?)
    }

    fn put_acknowledged(&mut self, x: &ExceptionRecord) -> Result<(), StorageError> {
        Ok(super::put_acknowledged(self.txn, x)?)
    }

    fn announce(&mut self, store: &LocationId, key: &str) -> Result<(), StorageError> {
        Ok(routed::announce(self.txn, store, key)?)
    }

    fn last_sale_of(&self, epc: &Epc) -> Result<Option<EventId>, StorageError> {
        Ok(super::content::last_sale_of(self.txn, epc)?)
    }

    fn catalog_item(&self, gtin: Gtin) -> Result<Option<CatalogItem>, StorageError> {
        Ok(self.store()?.catalog_item(gtin)?)
    }

    fn put_catalog_item(&mut self, item: &CatalogItem) -> Result<bool, StorageError> {
        Ok(self.write_txn().put_catalog_item(item)?)
    }

    fn catalog_since(
        &mut self,
        cursor: u64,
        limit: usize,
    ) -> Result<(Vec<CatalogItem>, u64), StorageError> {
        Ok(self.write_txn().catalog_since(cursor, limit)?)
    }

    fn store_record(&self, store: &str) -> Result<Option<StoreRecord>, StorageError> {
        Ok(records::store_record(self.txn, store)?)
    }

    fn put_store_record(&mut self, record: &StoreRecord) -> Result<(), StorageError> {
        Ok(records::put_store_record(self.txn, record)?)
    }

    fn add_sales(&mut self, store: &str, minute: u64, units: u64) -> Result<(), StorageError> {
        Ok(records::add_sales(self.txn, store, minute, units)?)
    }

    fn drop_sales_before(&mut self, store: &str, minute: u64) -> Result<(), StorageError> {
        Ok(records::drop_sales_before(self.txn, store, minute)?)
    }

    fn demand_at(
        &self,
        location: &LocationId,
    ) -> Result<Vec<(Gtin, DemandEstimate)>, StorageError> {
        Ok(records::demand_at(self.txn, location)?)
    }

    fn demand(
        &self,
        location: &LocationId,
        gtin: Gtin,
    ) -> Result<Option<DemandEstimate>, StorageError> {
        Ok(records::demand(self.txn, location, gtin)?)
    }

    fn put_demand(
        &mut self,
        location: &LocationId,
        gtin: Gtin,
        demand: &DemandEstimate,
    ) -> Result<(), StorageError> {
        Ok(records::put_demand(self.txn, location, gtin, demand)?)
    }

    fn forget_demand(&mut self, location: &LocationId, gtin: Gtin) -> Result<(), StorageError> {
        Ok(records::forget_demand(self.txn, location, gtin)?)
    }

    fn grant_record(&self, request_id: u128) -> Result<Option<GrantRecord>, StorageError> {
        Ok(records::grant_record(self.txn, request_id)?)
    }

    fn put_grant_record(
        &mut self,
        request_id: u128,
        record: &GrantRecord,
    ) -> Result<(), StorageError> {
        Ok(records::put_grant_record(self.txn, request_id, record)?)
    }

    fn holders(&self, gtin: Gtin) -> Result<Vec<(LocationId, u64)>, StorageError> {
        Ok(holdings::holders(self.holdings.get()?, gtin)?)
    }

    fn held_at(&self, gtin: Gtin, store: &LocationId) -> Result<u64, StorageError> {
        Ok(holdings::held_at(self.holdings.get()?, gtin, store)?)
    }

    fn routed_order(&self, order_id: &str) -> Result<Option<RoutedOrder>, StorageError> {
        Ok(routed::read_in(self.txn, order_id)?)
    }

    fn put_routed_order(
        &mut self,
        order: &RoutedOrder,
        was: Option<Status>,
    ) -> Result<(), StorageError> {
        Ok(routed::put(self.txn, order, was)?)
    }

    fn store_named_order(&self, order_id: &str) -> Result<Option<OrderIndex>, StorageError> {
        Ok(records::store_named_order(self.txn, order_id)?)
    }

    fn put_store_named_order(
        &mut self,
        order_id: &str,
        index: &OrderIndex,
    ) -> Result<(), StorageError> {
        Ok(records::put_store_named_order(self.txn, order_id, index)?)
    }

    fn returned(&self, original: EventId) -> Result<BTreeMap<Gtin, u64>, StorageError> {
        Ok(returns::returned(self.txn, original)?)
    }

    fn add_returned(
        &mut self,
        original: EventId,
        gtin: Gtin,
        units: u64,
    ) -> Result<u64, StorageError> {
        Ok(returns::add_returned(self.txn, original, gtin, units)?)
    }

    fn return_claims(&self, original: EventId) -> Result<Vec<(EventId, Claim)>, StorageError> {
        Ok(returns::claims(self.txn, original)?)
    }

    fn put_return_claim(
        &mut self,
        original: EventId,
        return_id: EventId,
        claim: &Claim,
    ) -> Result<(), StorageError> {
        Ok(returns::put_claim(self.txn, original, return_id, claim)?)
    }

    fn take_return_claim(
        &mut self,
        original: EventId,
        return_id: EventId,
    ) -> Result<bool, StorageError> {
        Ok(returns::take_claim(self.txn, original, return_id)?)
    }

    fn put_cross_return(&mut self, cross: &CrossReturn) -> Result<(), StorageError> {
        Ok(returns::put_cross(self.txn, cross)?)
    }

    fn held_count(&self, store: &str) -> Result<u64, StorageError> {
        Ok(held::count(self.txn, store)?)
    }

    fn put_held_count(&mut self, store: &str, n: u64) -> Result<(), StorageError> {
        Ok(held::put_count(self.txn, store, n)?)
    }

    fn held_event(&self, id: EventId) -> Result<Option<HeldEvent>, StorageError> {
        Ok(held::get(self.txn, id)?)
    }

    fn put_held(&mut self, h: &HeldEvent) -> Result<(), StorageError> {
        Ok(held::put(self.txn, h)?)
    }

    fn remove_held(&mut self, id: EventId) -> Result<(), StorageError> {
        Ok(held::remove(self.txn, id)?)
    }

    fn transfer(&self, id: &str) -> Result<Option<HubTransfer>, StorageError> {
        Ok(transfers::get_in(self.txn, id)?)
    }

    fn put_transfer(
        &mut self,
        t: &HubTransfer,
        was: Option<TransferStatus>,
    ) -> Result<(), StorageError> {
        Ok(transfers::put(self.txn, t, was)?)
    }

    fn set_transfer_due(
        &mut self,
        seen_at_ms: u64,
        id: &str,
        due: bool,
    ) -> Result<(), StorageError> {
        Ok(transfers::set_due(self.txn, seen_at_ms, id, due)?)
    }

    fn transfer_received_at_hub(&mut self, id: &str, now_ms: u64) -> Result<(), StorageError> {
        Ok(transfers::received(self.txn, id, now_ms)?)
    }

    fn transfers_due(
        &self,
        cutoff_ms: u64,
        limit: usize,
    ) -> Result<Vec<(u64, String)>, StorageError> {
        Ok(transfers::due(self.txn, cutoff_ms, limit)?)
    }
}
