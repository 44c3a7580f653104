//! The command core's `Ledger` over the agent's write transaction:
//! [`AgentTxn`] (the shared store's tables through `TxnReplica`, plus the
//! outbox, demand, returned units and metadata), whose counter writes are
//! held back in [`BatchCounters`] until a flush.

use std::collections::BTreeMap;

use tally_store::redb::ReadableTable;
use tally_store::{LazyTable, StoreError, TxnReplica, WriteTxn};
use tally_sync::command::Ledger;
use tally_sync::epcs::{DoubleSale, EpcRecord, EpcSummary};
use tally_sync::exchange::ReplicaStore;
use tally_sync::fulfilment::OrderAllocation;
use tally_sync::journal::Inserted;
use tally_sync::transfer::Transfer;
use tally_sync::{BoundedCounter, Delta, Epc, Event, EventId, Gtin, ItemKey, LocationId};

use super::counts::{self, CountDone, CountJob};
use super::tables::{
    outbox_seq, returned_from, set_demand, storage, AGENT_META, COUNTERS_FLUSHED_UPTO, DEMAND,
    RETURNED,
};
use super::{orders, transfers, AgentDb, Unflushed};
use crate::outbox::{self, OUTBOX};

/// The counters a batch changed that are not in the counters table yet,
/// carried across the [`AgentTxn`]s of one write transaction and handed
/// to [`AgentDb::publish`] once it committed.
#[derive(Debug, Default)]
pub struct BatchCounters {
    pub(super) changed: Unflushed,
    /// The transaction flushed (the counters table now holds everything
    /// changed before the flush).
    pub(super) flushed: bool,
}

impl BatchCounters {
    /// Whether the transaction flushed.
    pub fn flushed(&self) -> bool {
        self.flushed
    }
}

/// The command core's [`Ledger`] over one write transaction: the shared
/// store's tables plus the agent's own. Counter writes are held back (see
/// [`crate::store`]'s design constraints) until [`AgentTxn::flush`].
#[allow(missing_debug_implementations)]
pub struct AgentTxn<'t> {
    db: &'t AgentDb,
    replica: TxnReplica<'t>,
    outbox: tally_store::redb::Table<'t, u64, &'static [u8]>,
    /// Ids appended in this transaction and not written yet: they go in as
    /// one run ([`outbox`]) when the tables close.
    appending: Vec<EventId>,
    /// Opened only when a refusal adds to it.
    demand: LazyTable<'t, u64, u64>,
    /// Opened only by returns that name a sale.
    returned: LazyTable<'t, (u128, u64), u64>,
    /// Opened only by allocations (pages from the hub, fulfilment moves).
    orders: LazyTable<'t, &'static str, &'static [u8]>,
    orders_by_status: LazyTable<'t, (&'static str, &'static str), ()>,
    /// Opened only by transfers.
    transfers: LazyTable<'t, &'static str, &'static [u8]>,
    transfers_by_status: LazyTable<'t, (&'static str, &'static str), ()>,
    transfer_epcs: LazyTable<'t, &'static [u8], &'static str>,
    /// Opened only by events with tagged lines.
    tags_here: LazyTable<'t, (u64, &'static [u8]), ()>,
    /// Opened only by count sessions.
    count_sessions: LazyTable<'t, &'static str, &'static [u8]>,
    count_by_status: LazyTable<'t, (&'static str, &'static str), ()>,
    count_tags: LazyTable<'t, (&'static str, &'static [u8]), u64>,
    count_items: LazyTable<'t, (&'static str, u64), u64>,
    meta: tally_store::redb::Table<'t, &'static str, u64>,
    outbox_seq: u64,
    /// The counters table covers the outbox up to here.
    flushed_upto: u64,
    appended: u64,
    batch: BatchCounters,
}

impl<'t> AgentTxn<'t> {
    /// Opens the tables in `txn`, continuing `batch` (the counters earlier
    /// jobs of this transaction changed).
    pub fn open(
        txn: &'t WriteTxn,
        db: &'t AgentDb,
        batch: BatchCounters,
    ) -> Result<Self, StoreError> {
        let raw = txn.raw();
        let meta = raw.open_table(AGENT_META).map_err(storage)?;
        let outbox = raw.open_table(OUTBOX).map_err(storage)?;
        let outbox_seq = outbox_seq(&meta, &outbox)?;
        // `AgentDb::open` always records the mark.
        let flushed_upto = meta
            .get(COUNTERS_FLUSHED_UPTO)
            .map_err(storage)?
            .map_or(outbox_seq, |v| v.value());
        Ok(Self {
            db,
            replica: txn.replica()?,
            outbox,
            appending: Vec::new(),
            demand: LazyTable::new(raw, DEMAND),
            returned: LazyTable::new(raw, RETURNED),
            orders: LazyTable::new(raw, orders::ORDERS),
            orders_by_status: LazyTable::new(raw, orders::BY_STATUS),
            transfers: LazyTable::new(raw, transfers::TRANSFERS),
            transfers_by_status: LazyTable::new(raw, transfers::BY_STATUS),
            transfer_epcs: LazyTable::new(raw, transfers::BY_EPC),
            tags_here: LazyTable::new(raw, counts::TAGS_HERE),
            count_sessions: LazyTable::new(raw, counts::SESSIONS),
            count_by_status: LazyTable::new(raw, counts::BY_STATUS),
            count_tags: LazyTable::new(raw, counts::TAGS),
            count_items: LazyTable::new(raw, counts::ITEMS),
            meta,
            outbox_seq,
            flushed_upto,
            appended: 0,
            batch,
        })
    }

    /// Does a count-session job (`crate::store::counts`) at `now_ms`.
    /// An accepted session also settles the tags held here
    /// (`counts::settle_tags`).
    pub fn count(&mut self, job: &CountJob, now_ms: u64) -> Result<CountDone, StoreError> {
        let done = counts::apply(
            counts::CountTables {
                sessions: self.count_sessions.get_mut()?,
                by_status: self.count_by_status.get_mut()?,
                tags: self.count_tags.get_mut()?,
                items: self.count_items.get_mut()?,
            },
            job,
            now_ms,
        )?;
        if let (CountJob::Accepted { session_id, items }, CountDone::Session(_)) = (job, &done) {
            let replica = &self.replica;
            counts::settle_tags(
                self.tags_here.get_mut()?,
                self.count_tags.get_mut()?,
                session_id,
                items,
                |epc| Ok(replica.epc_summary(epc)?.is_some_and(|s| s.is_sold())),
            )?;
        }
        Ok(done)
    }

    /// What a flush now would cover: the events recorded since the last
    /// one (the replay after a crash) and the counters held in memory.
    pub fn unflushed(&self) -> (u64, usize) {
        let committed = if self.batch.flushed {
            0
        } else {
            self.db.unflushed_len()
        };
        (
            self.outbox_seq.saturating_sub(self.flushed_upto),
            committed + self.batch.changed.len(),
        )
    }

    /// Writes the appended outbox entries and closes the tables; returns
    /// the events appended and the batch's counters. Call it before the
    /// transaction commits: until then the entries are only in memory (so
    /// that a batch writes one outbox row), and an `AgentTxn` dropped
    /// without it leaves its events out of the outbox.
    pub fn close(mut self) -> Result<(u64, BatchCounters), StoreError> {
        let first = self.outbox_seq - self.appending.len() as u64 + 1;
        outbox::append(&mut self.outbox, first, &self.appending)?;
        Ok((self.appended, self.batch))
    }

    /// Records that the hub's allocation changes up to `cursor` are
    /// merged here.
    pub fn set_allocations_cursor(&mut self, cursor: u64) -> Result<(), StoreError> {
        self.meta
            .insert(orders::ALLOCATIONS_CURSOR, cursor)
            .map_err(storage)?;
        Ok(())
    }

    /// Writes every unflushed counter (the committed ones and this
    /// batch's) to the counters table and records the outbox sequence
    /// number the table now covers. Returns how many counters it wrote.
    pub fn flush(&mut self) -> Result<usize, StoreError> {
        let mut writes: Vec<(ItemKey, BoundedCounter)> = Vec::new();
        if !self.batch.flushed {
            let unflushed = self.db.read_unflushed();
            writes.extend(
                unflushed
                    .iter()
                    .filter(|(k, _)| !self.batch.changed.contains_key(*k))
                    .map(|(k, c)| (k.clone(), c.clone())),
            );
        }
        writes.extend(self.batch.changed.drain());
        // Key order: neighbouring counters share pages.
        writes.sort_by(|a, b| a.0.cmp(&b.0));
        let written = writes.len();
        for (key, c) in writes {
            self.replica.put_counter(&key, c)?;
        }
        self.meta
            .insert(COUNTERS_FLUSHED_UPTO, self.outbox_seq)
            .map_err(storage)?;
        self.flushed_upto = self.outbox_seq;
        self.batch.flushed = true;
        Ok(written)
    }
}

impl ReplicaStore for AgentTxn<'_> {
    type Error = StoreError;

    fn counter(&self, key: &ItemKey) -> Result<BoundedCounter, StoreError> {
        if let Some(c) = self.batch.changed.get(key) {
            return Ok(c.clone());
        }
        if !self.batch.flushed {
            let unflushed = self.db.read_unflushed();
            if let Some(c) = unflushed.get(key) {
                return Ok(c.clone());
            }
        }
        self.replica.counter(key)
    }

    fn put_counter(&mut self, key: &ItemKey, counter: BoundedCounter) -> Result<(), StoreError> {
        self.batch.changed.insert(key.clone(), counter);
        Ok(())
    }

    /// Only what was flushed: callers flush first.
    fn delta_since(
        &self,
        location: &LocationId,
        cursor: u64,
        limit: usize,
    ) -> Result<(Delta, u64), StoreError> {
        self.replica.delta_since(location, cursor, limit)
    }

    /// The command core looks a caller's id up before it plans, and
    /// generates the others: the insert need not look again.
    /// An event of this store with tagged lines also moves its tags in or
    /// out of `agent_tags_here`.
    fn insert_event(&mut self, event: &Event) -> Result<Inserted, StoreError> {
        let inserted = self.replica.insert_new_event(event)?;
        if inserted == Inserted::New
            && event.location == self.db.who().location
            && event.lines.iter().any(|l| l.epc.is_some())
        {
            counts::note_tags(self.tags_here.get_mut()?, event)?;
        }
        Ok(inserted)
    }

    fn record_epc_sale(
        &mut self,
        epc: &Epc,
        record: EpcRecord,
    ) -> Result<Option<DoubleSale>, StoreError> {
        self.replica.record_epc_sale(epc, record)
    }

    fn record_epc_return(&mut self, epc: &Epc, record: EpcRecord) -> Result<(), StoreError> {
        self.replica.record_epc_return(epc, record)
    }
}

impl AgentTxn<'_> {
    /// Takes `units` of `gtin` back out of the refused demand (a rerun's
    /// refusal, counted by the first run already; never below 0).
    pub fn take_back_demand(&mut self, gtin: Gtin, units: u64) -> Result<(), StoreError> {
        let demand = self.demand.get_mut()?;
        let old = demand
            .get(gtin.as_u64())
            .map_err(storage)?
            .map_or(0, |v| v.value());
        set_demand(demand, gtin, old.saturating_sub(units))
    }
}

impl Ledger for AgentTxn<'_> {
    fn event(&self, id: &EventId) -> Result<Option<Event>, StoreError> {
        self.replica.event(id)
    }

    fn epc_summary(&self, epc: &Epc) -> Result<Option<EpcSummary>, StoreError> {
        self.replica.epc_summary(epc)
    }

    fn catalog_price(&self, gtin: Gtin) -> Result<Option<i64>, StoreError> {
        Ok(self.replica.catalog_item(gtin)?.map(|i| i.price_minor))
    }

    fn append_outbox(&mut self, id: EventId) -> Result<u64, StoreError> {
        self.outbox_seq += 1;
        self.appending.push(id);
        self.appended += 1;
        Ok(self.outbox_seq)
    }

    fn add_demand(&mut self, gtin: Gtin, units: u64) -> Result<(), StoreError> {
        let key = gtin.as_u64();
        let demand = self.demand.get_mut()?;
        let old = demand.get(key).map_err(storage)?.map_or(0, |v| v.value());
        demand
            .insert(key, old.saturating_add(units))
            .map_err(storage)?;
        Ok(())
    }

    fn returned_from(&self, sale: &EventId) -> Result<BTreeMap<Gtin, u64>, StoreError> {
        returned_from(self.returned.get()?, sale)
    }

    fn add_returned(
        &mut self,
        sale: &EventId,
        units: &BTreeMap<Gtin, u64>,
    ) -> Result<(), StoreError> {
        let sale = sale.0.as_u128();
        let returned = self.returned.get_mut()?;
        for (gtin, u) in units {
            let key = (sale, gtin.as_u64());
            let old = returned.get(key).map_err(storage)?.map_or(0, |v| v.value());
            returned
                .insert(key, old.saturating_add(*u))
                .map_err(storage)?;
        }
        Ok(())
    }

    fn allocation(&self, order_id: &str) -> Result<Option<OrderAllocation>, StoreError> {
        orders::get(self.orders.get()?, order_id)
    }

    fn put_allocation(&mut self, allocation: &OrderAllocation) -> Result<(), StoreError> {
        let (table, index) = (self.orders.get_mut()?, self.orders_by_status.get_mut()?);
        orders::put(table, index, allocation)
    }

    fn transfer(&self, transfer_id: &str) -> Result<Option<Transfer>, StoreError> {
        transfers::get(self.transfers.get()?, transfer_id)
    }

    fn put_transfer(&mut self, transfer: &Transfer) -> Result<(), StoreError> {
        let (table, index) = (
            self.transfers.get_mut()?,
            self.transfers_by_status.get_mut()?,
        );
        transfers::put(table, index, transfer)?;
        if transfer.lines.iter().any(|l| l.epc.is_some()) {
            transfers::index_epcs(self.transfer_epcs.get_mut()?, transfer)?;
        }
        Ok(())
    }
}
