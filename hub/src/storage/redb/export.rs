//! Everything an embedded hub keeps, read out of its file as typed
//! records for another engine to store (`tally-hub migrate --from`,
//! `postgres/import.rs`).
//!
//! # Design constraints
//! - **The hub is stopped, its file untouched.** The file is opened
//!   read-only ([`tally_store::ReadOnlyDb`]): refused while a hub has
//!   it open, and nothing is written to it, not even an upgrade. A file
//!   an older hub wrote, whose open-time upgrades (the content tables,
//!   the counts by status) never ran, is refused with what to do: the
//!   engine it goes to has no such upgrades of its own.
//! - **One snapshot.** Every table is read in one read transaction, so
//!   the records agree with each other and with the cursors handed out
//!   ([`Cursors`]), read in the same snapshot.
//! - **Streaming.** Records go to a [`Sink`] one at a time, table by
//!   table, each table in key order; nothing is collected, so memory
//!   does not grow with the number of events (or of anything else).
//! - **Typed, checked records.** Each value is decoded into the type the
//!   hub's logic keeps ([`Record`]): the receiving engine encodes it
//!   exactly as its own transaction would, and a record that does not
//!   decode, or whose key disagrees with its body, is
//!   [`StorageError::corrupt`], never a panic.
//! - **Indexes are not records.** What the file keeps only to find
//!   records fast (the counters' and catalog's change indexes, the status
//!   indexes, `hub_holdings`, `hub_allocation_versions`) is rebuilt by
//!   the receiving engine from the records; the indexes that carry data
//!   of their own (when a transfer became due, when the hub learned of
//!   its receipt) are records here ([`Record::TransferDue`],
//!   [`Record::TransferReceived`]). `tally-store`'s EPC tables are not
//!   read: the hub keeps its tags in `hub_epc_*` (its own events carry
//!   none).

use std::path::Path;

use tally_store::redb::{Key, ReadOnlyTable, ReadableTable, TableDefinition, TableError, Value};
use tally_store::{ReadOnlyDb, ReadTxn, StoreError};
use tally_sync::epcs::EpcState;
use tally_sync::exchange::EpcMove;
use tally_sync::explain::Explained;
use tally_sync::message::CatalogItem;
use tally_sync::{
    BoundedCounter, DemandEstimate, Epc, Event, EventId, Gtin, ItemKey, LocationId, ReplicaId,
};

use super::{content, from_json, held, records, redb_err, returns, routed, tallies, transfers};
use super::{corrupt, EXCEPTIONS, EXCEPTIONS_ACKED};
use crate::storage::held::HeldEvent;
use crate::storage::logic::orders::OrderIndex;
use crate::storage::logic::rights::GrantRecord;
use crate::storage::returns::{Claim, CrossReturn};
use crate::storage::routed::RoutedOrder;
use crate::storage::transfers::HubTransfer;
use crate::storage::{ExceptionRecord, StorageError, StoreRecord};

/// One record of an embedded hub, as its logic keeps it. See the module
/// docs.
#[derive(Debug, Clone)]
pub(crate) enum Record {
    /// A counter, with the inventory version it last changed at (one
    /// sequence for every location).
    Counter {
        /// Its location and item.
        key: ItemKey,
        /// The inventory version it was stamped with.
        version: u64,
        /// The counter.
        counter: BoundedCounter,
    },
    /// An event accepted.
    Event(Box<Event>),
    /// A catalog item, with the catalog version it last changed at.
    Catalog {
        /// The catalog version it was stamped with.
        version: u64,
        /// The item.
        item: CatalogItem,
    },
    /// A tag's summary (`hub_epc_state`).
    EpcState {
        /// The tag.
        epc: Epc,
        /// Its summary.
        state: EpcState,
    },
    /// One sale or return of a tag (`hub_epc_rows`).
    EpcRow {
        /// The tag.
        epc: Epc,
        /// Sale or return.
        movement: EpcMove,
        /// The event.
        event: EventId,
        /// The replica that recorded it.
        replica: ReplicaId,
    },
    /// What a store's events explain of a counter (`hub_explained`).
    Explained {
        /// The store's location and the item.
        key: ItemKey,
        /// The running sums.
        explained: Explained,
    },
    /// A store's sync record.
    Store(StoreRecord),
    /// Units sold at a store in one Unix minute.
    Sales {
        /// The store.
        store: String,
        /// The minute.
        minute: u64,
        /// Units.
        units: u64,
    },
    /// Online demand for an item at a store.
    Demand {
        /// The store's location and the item.
        key: ItemKey,
        /// The decayed estimate.
        estimate: DemandEstimate,
    },
    /// How many events a store has held.
    HeldCount {
        /// The store.
        store: String,
        /// Held events.
        n: u64,
    },
    /// An event a sync refused, held for HQ.
    Held(Box<HeldEvent>),
    /// A store-named order, by id.
    StoreNamedOrder {
        /// The order id.
        order_id: String,
        /// Its fingerprint and receipt.
        index: OrderIndex,
    },
    /// A rights request granted, by request id.
    Grant {
        /// The request id.
        request_id: u128,
        /// What was granted.
        record: GrantRecord,
    },
    /// An exception (its id is the key).
    Exception(ExceptionRecord),
    /// A routed order.
    RoutedOrder(RoutedOrder),
    /// A store's allocation or transfer, with the change version it last
    /// changed at (`o:ORDER` or `t:TRANSFER`).
    AllocationChange {
        /// The store.
        store: LocationId,
        /// `o:ORDER` or `t:TRANSFER`.
        key: String,
        /// Its change version.
        version: u64,
    },
    /// A transfer.
    Transfer(Box<HubTransfer>),
    /// A transfer in transit due for the overdue sweep, since when the hub
    /// saw it (after every [`Record::Transfer`]).
    TransferDue {
        /// The transfer id.
        id: String,
        /// When the hub saw it (Unix ms).
        since_ms: u64,
    },
    /// A transfer received, when the hub learned of the receipt (after
    /// every [`Record::Transfer`]).
    TransferReceived {
        /// The transfer id.
        id: String,
        /// When the hub learned of it (Unix ms).
        at_ms: u64,
    },
    /// Routed orders or transfers with a status, counted.
    StatusCount {
        /// `orders` or `transfers`.
        kind: String,
        /// The status name.
        status: String,
        /// How many.
        n: u64,
    },
    /// Units of an item returned against an original.
    Returned {
        /// The original (sale or order event).
        original: EventId,
        /// The item.
        gtin: Gtin,
        /// Units returned.
        units: u64,
    },
    /// A checked return's claim on its original.
    ReturnClaim {
        /// The original.
        original: EventId,
        /// The return.
        return_id: EventId,
        /// What it claims.
        claim: Claim,
    },
    /// A return across stores or channels.
    CrossReturn(Box<CrossReturn>),
}

/// Where the hub's sequences stood in the exported snapshot: what the
/// cursors stores and HQ hold were handed out from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Cursors {
    /// The latest inventory version (every location's counters share it).
    pub inventory_version: u64,
    /// The latest catalog version.
    pub catalog_version: u64,
    /// The latest allocation change version.
    pub allocation_version: u64,
    /// The highest exception id.
    pub last_exception: u64,
    /// How many exceptions HQ acknowledged.
    pub acked_exceptions: u64,
}

/// What takes the records of an export, one at a time. An error stops
/// the export and is passed on.
pub(crate) trait Sink {
    /// Takes one record.
    fn put(&mut self, record: Record) -> Result<(), StorageError>;
}

/// Hands every record of the embedded hub database at `path` to `sink`,
/// table by table (see the module docs), and answers where its
/// sequences stood.
pub(crate) fn export(path: &Path, sink: &mut dyn Sink) -> Result<Cursors, StorageError> {
    let db = ReadOnlyDb::open(path)?;
    let txn = db.begin_read()?;
    for (marker, what) in [
        (content::MIGRATED, "tag and explained-units tables"),
        (tallies::BUILT, "counts by status"),
    ] {
        if txn.get_meta(marker)?.as_deref() != Some(b"1".as_slice()) {
            return Err(StorageError::Store(StoreError::Storage(format!(
                "{} was last opened by an older tally-hub (its {what} were never built): \
                 start the current tally-hub on it once (it upgrades the file as it starts), \
                 stop it, then migrate",
                path.display()
            ))));
        }
    }
    let cursors = Cursors {
        inventory_version: txn.inventory_version()?,
        catalog_version: txn.catalog_version()?,
        allocation_version: match open(&txn, routed::META)? {
            Some(t) => t
                .get(routed::VERSION_KEY)
                .map_err(redb_err)?
                .map_or(0, |v| v.value()),
            None => 0,
        },
        last_exception: match open(&txn, EXCEPTIONS)? {
            Some(t) => t.last().map_err(redb_err)?.map_or(0, |(k, _)| k.value()),
            None => 0,
        },
        acked_exceptions: match open(&txn, EXCEPTIONS_ACKED)? {
            Some(t) => tally_store::redb::ReadableTableMetadata::len(&t).map_err(redb_err)?,
            None => 0,
        },
    };

    // tally-store's tables.
    txn.try_visit_counters(|key, version, counter| {
        sink.put(Record::Counter {
            key,
            version,
            counter,
        })
    })?;
    txn.try_visit_events(|e| sink.put(Record::Event(Box::new(e))))?;
    txn.try_visit_catalog(|version, item| sink.put(Record::Catalog { version, item }))?;

    // What a sync's content is checked against.
    each(&txn, content::EPC_STATE, |k, v| {
        sink.put(Record::EpcState {
            epc: Epc::from_bytes(k).map_err(|e| corrupt("hub_epc_state", e))?,
            state: from_json("hub_epc_state", v)?,
        })
    })?;
    each(
        &txn,
        content::EPC_ROWS,
        |(epc, movement, event), replica| {
            sink.put(Record::EpcRow {
                epc: Epc::from_bytes(epc).map_err(|e| corrupt("hub_epc_rows", e))?,
                movement: match movement {
                    0 => EpcMove::Sale,
                    1 => EpcMove::Return,
                    other => {
                        return Err(corrupt("hub_epc_rows", format!("movement {other}")).into())
                    }
                },
                event: event_id(event),
                replica: ReplicaId::new(replica).map_err(|e| corrupt("hub_epc_rows", e))?,
            })
        },
    )?;
    each(
        &txn,
        content::EXPLAINED,
        |(store, gtin), (added, removed)| {
            sink.put(Record::Explained {
                key: item_key("hub_explained", store, gtin)?,
                explained: Explained { added, removed },
            })
        },
    )?;

    // Per store and per id.
    each(&txn, records::STORES, |store, v| {
        let record: StoreRecord = from_json("hub_stores", v)?;
        same("hub_stores", store, &record.store)?;
        sink.put(Record::Store(record))
    })?;
    each(&txn, records::SALES, |(store, minute), units| {
        sink.put(Record::Sales {
            store: store.to_string(),
            minute,
            units,
        })
    })?;
    each(&txn, records::DEMAND, |(store, gtin), v| {
        sink.put(Record::Demand {
            key: item_key("hub_online_demand", store, gtin)?,
            estimate: from_json("hub_online_demand", v)?,
        })
    })?;
    each(&txn, held::HELD_COUNT, |store, n| {
        sink.put(Record::HeldCount {
            store: store.to_string(),
            n,
        })
    })?;
    each(&txn, held::HELD, |id, v| {
        let h: HeldEvent = from_json("hub_held_events", v)?;
        same("hub_held_events", &event_id(id), &h.event.id)?;
        sink.put(Record::Held(Box::new(h)))
    })?;
    each(&txn, records::ORDERS, |order_id, v| {
        sink.put(Record::StoreNamedOrder {
            order_id: order_id.to_string(),
            index: from_json("hub_orders", v)?,
        })
    })?;
    each(&txn, records::GRANTS, |request_id, v| {
        sink.put(Record::Grant {
            request_id,
            record: from_json("hub_grants", v)?,
        })
    })?;
    each(&txn, EXCEPTIONS, |id, v| {
        let x: ExceptionRecord = from_json("hub_exceptions", v)?;
        same("hub_exceptions", &id, &x.id)?;
        sink.put(Record::Exception(x))
    })?;

    // Routed orders and transfers, with their stores' change pages.
    each(&txn, routed::ROUTED, |id, v| {
        let o: RoutedOrder = from_json("hub_routed_orders", v)?;
        same("hub_routed_orders", id, &o.order_id)?;
        sink.put(Record::RoutedOrder(o))
    })?;
    each(&txn, routed::CHANGES, |(store, version), key| {
        sink.put(Record::AllocationChange {
            store: LocationId::new(store).map_err(|e| corrupt("hub_allocation_changes", e))?,
            key: key.to_string(),
            version,
        })
    })?;
    each(&txn, transfers::TRANSFERS, |id, v| {
        let t: HubTransfer = from_json("hub_transfers", v)?;
        same("hub_transfers", id, &t.transfer.transfer_id)?;
        sink.put(Record::Transfer(Box::new(t)))
    })?;
    each(&txn, transfers::DUE, |(since_ms, id), ()| {
        sink.put(Record::TransferDue {
            id: id.to_string(),
            since_ms,
        })
    })?;
    each(&txn, transfers::RECEIVED, |(at_ms, id), ()| {
        sink.put(Record::TransferReceived {
            id: id.to_string(),
            at_ms,
        })
    })?;
    each(&txn, tallies::COUNTS, |(kind, status), n| {
        sink.put(Record::StatusCount {
            kind: kind.to_string(),
            status: status.to_string(),
            n,
        })
    })?;

    // Returns.
    each(&txn, returns::RETURNED, |(original, gtin), units| {
        sink.put(Record::Returned {
            original: event_id(original),
            gtin: Gtin::from_u64(gtin).map_err(|e| corrupt("hub_returned", e))?,
            units,
        })
    })?;
    each(&txn, returns::CLAIMS, |(original, return_id), v| {
        sink.put(Record::ReturnClaim {
            original: event_id(original),
            return_id: event_id(return_id),
            claim: from_json("hub_return_claims", v)?,
        })
    })?;
    each(&txn, returns::CROSS, |id, v| {
        let c: CrossReturn = from_json("hub_cross_store_returns", v)?;
        same("hub_cross_store_returns", &event_id(id), &c.return_id)?;
        sink.put(Record::CrossReturn(Box::new(c)))
    })?;
    Ok(cursors)
}

/// `definition` in `txn`, or `None` if the file has no such table (an
/// older hub never made it: it is empty).
fn open<K: Key + 'static, V: Value + 'static>(
    txn: &ReadTxn,
    definition: TableDefinition<'static, K, V>,
) -> Result<Option<ReadOnlyTable<K, V>>, StorageError> {
    match txn.raw().open_table(definition) {
        Ok(t) => Ok(Some(t)),
        Err(TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(redb_err(e).into()),
    }
}

/// Hands every row of `definition` to `f`, in key order.
fn each<K: Key + 'static, V: Value + 'static>(
    txn: &ReadTxn,
    definition: TableDefinition<'static, K, V>,
    mut f: impl for<'a> FnMut(K::SelfType<'a>, V::SelfType<'a>) -> Result<(), StorageError>,
) -> Result<(), StorageError> {
    let Some(table) = open(txn, definition)? else {
        return Ok(());
    };
    for row in table.iter().map_err(redb_err)? {
        let (k, v) = row.map_err(redb_err)?;
        f(k.value(), v.value())?;
    }
    Ok(())
}

fn event_id(id: u128) -> EventId {
    EventId(uuid::Uuid::from_u128(id))
}

fn item_key(table: &'static str, store: &str, gtin: u64) -> Result<ItemKey, StorageError> {
    Ok(ItemKey::new(
        LocationId::new(store).map_err(|e| corrupt(table, e))?,
        Gtin::from_u64(gtin).map_err(|e| corrupt(table, e))?,
    ))
}

/// A record of `table` whose key (`key`) is not the id in its body
/// (`body`) is corrupt: the two engines would file it differently.
fn same<A: PartialEq<B> + std::fmt::Debug + ?Sized, B: std::fmt::Debug + ?Sized>(
    table: &'static str,
    key: &A,
    body: &B,
) -> Result<(), StorageError> {
    if key == body {
        Ok(())
    } else {
        Err(corrupt(table, format!("key {key:?} holds the record of {body:?}")).into())
    }
}
