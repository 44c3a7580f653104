//! [`HubStorage`] on redb through `tally-store`: counters, events, EPCs and
//! catalog are `tally-store`'s tables; the hub's bookkeeping lives in
//! tables of its own, written in the same transaction. One batch's
//! transaction is a `RedbTxn` (`txn.rs`), the `HubTxn` the logic
//! runs on.
//!
//! Hub tables (JSON values, so HQ tools can read them and they can grow
//! fields):
//! - `hub_stores`: store id → [`StoreRecord`] (with its sales lost by
//!   reason, merged by max from each sync, and its refused online orders
//!   by reason).
//! - `hub_exceptions`: sequence → [`ExceptionRecord`].
//! - `hub_orders`: order id → `OrderIndex` (fingerprint and receipt).
//! - `hub_sales_per_minute`: (store, Unix minute of the sale) → units sold,
//!   counted once per new sale event (the dashboard's chart).
//! - `hub_grants`: request id → what a store's request for rights was
//!   granted (a retry is answered alike, never granted twice).
//! - `hub_online_demand`: (store, GTIN) → [`DemandEstimate`], the decayed
//!   units ordered online there (accepted or refused for lack of stock),
//!   from which each sync's reserve targets come.
//! - `hub_epc_state`, `hub_epc_rows`, `hub_explained`: what a sync's
//!   content is checked against (per EPC, one row per EPC and event, per
//!   store and item); see `content.rs` here.
//! - `hub_held_events`, `hub_held_count`: events a sync refused, held for
//!   HQ to admit; see `storage/held.rs`.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use serde::{Deserialize, Serialize};
use tally_store::redb::{ReadableTable, TableDefinition};
use tally_store::{Db, StoreError, WriteTxn};
use tally_sync::command::{counters_at, record_event};
use tally_sync::exchange::ReserveTargets;
use tally_sync::exchange::{hub_handle, HandleError, HubLimits};
use tally_sync::ledger::Refusal;
use tally_sync::message::CatalogItem;
use tally_sync::rights::{self, RightsReleased, RightsRequest};
use tally_sync::{
    ByReason, DemandEstimate, EpcLedger, Event, EventId, EventKind, Gtin, ItemKey, Line,
    LocationId, ReplicaId, ReservePolicy, Shortage,
};

use self::txn::RedbTxn;
use super::held::{AdmitResult, HeldEvent};
use super::logic;
use super::routed::{self, RoutedOrder, RoutedOrderRequest, RoutedResult, RoutingSettings};
use super::txn::HubTxn;
use super::{
    AuditReport, AuditRow, CatalogResult, ExceptionRecord, GrantResult, HubStorage, HubWrite,
    OrderLine, OrderReceipt, OrderRequest, OrderResult, ReleaseResult, StorageError, StoreRecord,
    StoreStock, SyncResult, SyncSummary,
};

pub(in crate::storage) mod content;
pub(in crate::storage) mod held;
pub(in crate::storage) mod holdings;
pub(in crate::storage) mod returns;
pub(in crate::storage) mod tallies;
pub(in crate::storage) mod transfers;
pub(crate) mod txn;

pub(in crate::storage) const STORES: TableDefinition<&str, &[u8]> =
    TableDefinition::new("hub_stores");
const EXCEPTIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("hub_exceptions");
const ORDERS: TableDefinition<&str, &[u8]> = TableDefinition::new("hub_orders");
const SALES: TableDefinition<(&str, u64), u64> = TableDefinition::new("hub_sales_per_minute");
const GRANTS: TableDefinition<u128, &[u8]> = TableDefinition::new("hub_grants");
const DEMAND: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("hub_online_demand");

/// What the hub keeps per granted request id (to answer a retry alike).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct GrantRecord {
    store: String,
    gtin: Gtin,
    units: u64,
    granted: u64,
}

/// What the order-id index keeps per order.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct OrderIndex {
    fingerprint: String,
    receipt: OrderReceipt,
}

/// Settings that shape what a sync answers.
#[derive(Debug, Clone, Copy)]
pub struct SyncSettings {
    /// The online-reserve policy.
    pub policy: ReservePolicy,
    /// Response limits for `hub_handle`.
    pub limits: HubLimits,
    /// Most catalog items in one response.
    pub catalog_page: usize,
}

/// The hub's storage on redb.
#[derive(Debug)]
pub struct RedbHub {
    db: Db,
    settings: SyncSettings,
    routing: RoutingSettings,
}

pub(in crate::storage) fn corrupt(table: &'static str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        table,
        detail: e.to_string(),
    }
}

pub(in crate::storage) fn to_json<T: Serialize>(
    table: &'static str,
    v: &T,
) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(|e| corrupt(table, e))
}

pub(in crate::storage) fn from_json<T: serde::de::DeserializeOwned>(
    table: &'static str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| corrupt(table, e))
}

/// Appends `exceptions` to `hub_exceptions`, numbering them on from the
/// last.
pub(in crate::storage) fn append_exceptions(
    txn: &WriteTxn,
    exceptions: Vec<ExceptionRecord>,
) -> Result<(), StoreError> {
    if exceptions.is_empty() {
        return Ok(());
    }
    let mut table = txn.raw().open_table(EXCEPTIONS).map_err(redb_err)?;
    let first = match table.last().map_err(redb_err)? {
        Some((k, _)) => k.value() + 1,
        None => 1,
    };
    for (id, mut x) in (first..).zip(exceptions) {
        x.id = id;
        table
            .insert(id, to_json("hub_exceptions", &x)?.as_slice())
            .map_err(redb_err)?;
    }
    Ok(())
}

/// The event of the store-named online order `order_id`, if there is one.
pub(in crate::storage) fn store_named_order_event(
    txn: &WriteTxn,
    order_id: &str,
) -> Result<Option<EventId>, StoreError> {
    let orders = txn.raw().open_table(ORDERS).map_err(redb_err)?;
    let found = orders.get(order_id).map_err(redb_err)?;
    match found {
        Some(v) => Ok(Some(
            from_json::<OrderIndex>("hub_orders", v.value())?
                .receipt
                .event_id,
        )),
        None => Ok(None),
    }
}

pub(in crate::storage) fn redb_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Storage(e.to_string())
}

impl RedbHub {
    /// Opens (creating) the hub database at `path`, exclusively.
    pub fn open(path: &Path, settings: SyncSettings) -> Result<Self, StorageError> {
        Self::with_tables(Db::open(path)?, settings)
    }

    /// Like [`RedbHub::open`], on a storage backend of the caller's (the
    /// power-loss tests' simulated disk), labelled `label` in messages.
    pub fn open_with_backend(
        backend: impl tally_store::redb::StorageBackend,
        label: &Path,
        settings: SyncSettings,
    ) -> Result<Self, StorageError> {
        Self::with_tables(Db::open_with_backend(backend, label, None)?, settings)
    }

    /// Creates the hub's own tables.
    fn with_tables(db: Db, settings: SyncSettings) -> Result<Self, StorageError> {
        let txn = db.begin_write()?;
        {
            let raw = txn.raw();
            raw.open_table(STORES).map_err(redb_err)?;
            raw.open_table(EXCEPTIONS).map_err(redb_err)?;
            raw.open_table(ORDERS).map_err(redb_err)?;
            raw.open_table(SALES).map_err(redb_err)?;
            raw.open_table(GRANTS).map_err(redb_err)?;
            raw.open_table(DEMAND).map_err(redb_err)?;
            raw.open_table(content::EPC_STATE).map_err(redb_err)?;
            raw.open_table(content::EPC_ROWS).map_err(redb_err)?;
            raw.open_table(content::EXPLAINED).map_err(redb_err)?;
            raw.open_table(routed::ROUTED).map_err(redb_err)?;
            raw.open_table(routed::BY_STATUS).map_err(redb_err)?;
            raw.open_table(routed::CHANGES).map_err(redb_err)?;
            raw.open_table(routed::VERSIONS).map_err(redb_err)?;
            raw.open_table(routed::META).map_err(redb_err)?;
            raw.open_table(transfers::TRANSFERS).map_err(redb_err)?;
            raw.open_table(transfers::BY_STATUS).map_err(redb_err)?;
            raw.open_table(transfers::DUE).map_err(redb_err)?;
            raw.open_table(transfers::RECEIVED).map_err(redb_err)?;
            raw.open_table(tallies::COUNTS).map_err(redb_err)?;
            raw.open_table(holdings::HOLDINGS).map_err(redb_err)?;
            raw.open_table(returns::RETURNED).map_err(redb_err)?;
            raw.open_table(returns::CLAIMS).map_err(redb_err)?;
            raw.open_table(returns::CROSS).map_err(redb_err)?;
            raw.open_table(held::HELD).map_err(redb_err)?;
            raw.open_table(held::HELD_COUNT).map_err(redb_err)?;
        }
        txn.commit()?;
        content::migrate(&db)?;
        holdings::build(&db)?;
        tallies::build(&db)?;
        Ok(Self {
            db,
            settings,
            routing: RoutingSettings::default(),
        })
    }

    /// The hub with `routing` for orders that name no store.
    pub fn with_routing(mut self, routing: RoutingSettings) -> Self {
        self.routing = routing;
        self
    }

    /// The underlying database (tests read it directly).
    pub fn db(&self) -> &Db {
        &self.db
    }

    fn sync(
        &self,
        txn: &WriteTxn,
        who: &tally_sync::exchange::Identity,
        req: &tally_sync::SyncRequest,
        now_ms: u64,
    ) -> Result<SyncResult, StorageError> {
        let s = &self.settings;
        let targets = reserve_targets(txn, &who.location, &s.policy, now_ms)?;
        let mut replica = RedbTxn::new(txn);
        let handled = hub_handle(&mut replica, who, req, &targets, &s.limits, now_ms);
        let (mut resp, outcome) = match handled {
            Ok(x) => x,
            Err(HandleError::Refused(r)) => {
                drop(replica);
                // Nothing of the request is written; the event it was
                // refused for is held for HQ to review.
                logic::held::hold(&mut RedbTxn::new(txn), who, req, &r, now_ms)?;
                return Ok(SyncResult::Refused(r));
            }
            Err(HandleError::Storage(e)) => return Err(e),
        };

        // Exceptions, with the events' own times.
        let store = who.replica.to_string();
        let new: HashSet<_> = outcome.new_events.iter().copied().collect();
        let new_events: Vec<&Event> = req.events.iter().filter(|e| new.contains(&e.id)).collect();
        let mut exceptions = logic::exceptions::new_event_exceptions(
            &replica,
            &store,
            &new_events,
            &outcome,
            now_ms,
        )?;
        let mut sold_per_minute: BTreeMap<u64, u64> = BTreeMap::new();
        for e in &new_events {
            if matches!(e.kind, EventKind::Sale { .. }) {
                let units: u64 = e.lines.iter().map(|l| l.qty).fold(0, u64::saturating_add);
                let slot = sold_per_minute.entry(e.at_ms / 60_000).or_default();
                *slot = slot.saturating_add(units);
            }
        }
        drop(replica);

        // Returns, counted against their originals chain-wide.
        for e in &new_events {
            if matches!(e.kind, EventKind::Return { .. }) {
                exceptions.extend(logic::returns::on_return(
                    &mut RedbTxn::new(txn),
                    e,
                    now_ms,
                )?);
            }
        }

        // Transfers sent and received.
        for e in &new_events {
            if matches!(
                e.kind,
                EventKind::TransferOut { .. } | EventKind::TransferIn { .. }
            ) {
                exceptions.extend(logic::transfers::on_event(
                    &mut RedbTxn::new(txn),
                    e,
                    now_ms,
                )?);
            }
        }

        // The store's moves of its order allocations.
        for e in &new_events {
            if let EventKind::Fulfilment { order_id, status } = &e.kind {
                let kind = match routed::store_moved(txn, &who.location, order_id, *status)? {
                    routed::Moved::Merged => continue,
                    routed::Moved::Conflict { kept } => (
                        "order_conflict",
                        serde_json::json!({
                            "order_id": order_id,
                            "kept": kept,
                            "message": "the store handed over an allocation HQ had cancelled: the customer has the goods, and the cancellation put them back in stock (count them out)",
                        }),
                    ),
                    routed::Moved::Unknown => (
                        "unknown_allocation",
                        serde_json::json!({ "order_id": order_id, "status": status }),
                    ),
                };
                exceptions.push(ExceptionRecord {
                    id: 0,
                    kind: kind.0.into(),
                    store: store.clone(),
                    event_ids: vec![e.id],
                    at_ms: e.at_ms,
                    detected_at_ms: now_ms,
                    detail: kind.1,
                });
            }
        }

        // Catalog changes since the store's cursor, paged.
        let (items, cursor) = txn.catalog_since(req.catalog_cursor, s.catalog_page)?;
        resp.more |= items.len() >= s.catalog_page;
        resp.catalog = items;
        resp.catalog_cursor = cursor;

        // Bookkeeping.
        let raw = txn.raw();
        let mut stores = raw.open_table(STORES).map_err(redb_err)?;
        let old: Option<StoreRecord> = match stores.get(store.as_str()).map_err(redb_err)? {
            Some(v) => Some(from_json("hub_stores", v.value())?),
            None => None,
        };
        let new_events = outcome.new_events.len() as u64;
        let record = match old {
            Some(mut r) => {
                r.last_sync_ms = r.last_sync_ms.max(now_ms);
                r.syncs += 1;
                r.events_received += new_events;
                r.acked_events_upto = r.acked_events_upto.max(req.events_upto);
                r.lost_sales.merge(&req.lost);
                r
            }
            None => StoreRecord {
                store: store.clone(),
                first_sync_ms: now_ms,
                last_sync_ms: now_ms,
                syncs: 1,
                events_received: new_events,
                acked_events_upto: req.events_upto,
                lost_sales: {
                    let mut lost = ByReason::default();
                    lost.merge(&req.lost);
                    lost
                },
                refused_orders: ByReason::default(),
            },
        };
        stores
            .insert(store.as_str(), to_json("hub_stores", &record)?.as_slice())
            .map_err(redb_err)?;
        if !sold_per_minute.is_empty() {
            let mut sales = raw.open_table(SALES).map_err(redb_err)?;
            for (minute, units) in sold_per_minute {
                let before = sales
                    .get((store.as_str(), minute))
                    .map_err(redb_err)?
                    .map_or(0, |v| v.value());
                sales
                    .insert((store.as_str(), minute), before.saturating_add(units))
                    .map_err(redb_err)?;
            }
        }
        let n_exceptions = exceptions.len() as u64;
        append_exceptions(txn, exceptions)?;
        let rejected = resp.rejected_events.len() as u64;
        let summary = SyncSummary {
            new_events,
            duplicate_events: (req.events.len() as u64).saturating_sub(new_events + rejected),
            rejected_events: rejected,
            merged: outcome.merged as u64,
            rights_given: outcome
                .given
                .iter()
                .fold(0u64, |sum, (_, n)| sum.saturating_add(*n)),
            exceptions: n_exceptions,
        };
        Ok(SyncResult::Synced(Box::new(resp), summary))
    }
}

/// The reserve targets at `location` at `now_ms`: every item with recorded
/// online demand there (those whose demand decayed to nothing with target
/// 0, so the hub gives their reserve back). O(items ordered online there).
fn reserve_targets(
    txn: &WriteTxn,
    location: &LocationId,
    policy: &ReservePolicy,
    now_ms: u64,
) -> Result<ReserveTargets, StoreError> {
    let table = txn.raw().open_table(DEMAND).map_err(redb_err)?;
    let store = location.as_str();
    let mut out = ReserveTargets::new();
    for row in table
        .range((store, 0)..=(store, u64::MAX))
        .map_err(redb_err)?
    {
        let (k, v) = row.map_err(redb_err)?;
        let gtin = Gtin::from_u64(k.value().1).map_err(|e| corrupt("hub_online_demand", e))?;
        let d: DemandEstimate = from_json("hub_online_demand", v.value())?;
        out.insert(gtin, policy.wanted(d.level_at(now_ms, policy)));
    }
    Ok(out)
}

/// Counts `lines` ordered online at `store` at `now_ms` as online demand
/// there.
pub(in crate::storage) fn record_demand(
    txn: &WriteTxn,
    store: &LocationId,
    lines: &[(Gtin, u64)],
    now_ms: u64,
    policy: &ReservePolicy,
) -> Result<(), StoreError> {
    let mut table = txn.raw().open_table(DEMAND).map_err(redb_err)?;
    let store = store.as_str();
    for &(gtin, qty) in lines {
        let key = (store, gtin.as_u64());
        let mut d: DemandEstimate = match table.get(key).map_err(redb_err)? {
            Some(v) => from_json("hub_online_demand", v.value())?,
            None => DemandEstimate::default(),
        };
        d.observe(qty, now_ms, policy);
        table
            .insert(key, to_json("hub_online_demand", &d)?.as_slice())
            .map_err(redb_err)?;
    }
    Ok(())
}

/// An online order: answered again on a repeat of its id; else recorded
/// against the hub's rights at the store, or refused. Accepted or refused
/// for lack of stock, it counts as online demand if `o.record_demand`.
fn order(
    txn: &WriteTxn,
    o: &OrderRequest,
    policy: &ReservePolicy,
) -> Result<OrderResult, StorageError> {
    if routed::exists(txn, &o.order_id)? {
        return Ok(OrderResult::IdConflict {
            order_id: o.order_id.clone(),
        });
    }
    {
        let orders = txn.raw().open_table(ORDERS).map_err(redb_err)?;
        let found = orders
            .get(o.order_id.as_str())
            .map_err(redb_err)?
            .map(|v| from_json::<OrderIndex>("hub_orders", v.value()));
        if let Some(index) = found {
            let index = index?;
            return Ok(if index.fingerprint == o.fingerprint() {
                OrderResult::Replayed(index.receipt)
            } else {
                OrderResult::IdConflict {
                    order_id: o.order_id.clone(),
                }
            });
        }
    }
    let event = order_event(txn, o.event_id, &o.store, &o.order_id, &o.lines, o.now_ms)?;
    match record_hub_event(txn, &event)? {
        Ok(_) => {
            if o.record_demand {
                record_demand(txn, &o.store, &o.lines, o.now_ms, policy)?;
            }
        }
        Err(Refusal::InsufficientStock {
            gtin,
            requested,
            available,
            on_hand,
        }) => {
            if o.record_demand {
                record_demand(txn, &o.store, &o.lines, o.now_ms, policy)?;
            }
            return Ok(OrderResult::InsufficientStock {
                gtin,
                requested,
                available,
                on_hand,
            });
        }
        Err(other) => return Ok(OrderResult::Invalid(other.to_string())),
    }
    let receipt = OrderReceipt {
        order_id: o.order_id.clone(),
        event_id: event.id,
        store: o.store.clone(),
        lines: event
            .lines
            .iter()
            .map(|l| OrderLine {
                gtin: l.gtin,
                qty: l.qty,
                unit_price_minor: l.unit_price_minor,
            })
            .collect(),
        at_ms: o.now_ms,
    };
    let index = OrderIndex {
        fingerprint: o.fingerprint(),
        receipt: receipt.clone(),
    };
    txn.raw()
        .open_table(ORDERS)
        .map_err(redb_err)?
        .insert(
            o.order_id.as_str(),
            to_json("hub_orders", &index)?.as_slice(),
        )
        .map_err(redb_err)?;
    Ok(OrderResult::Accepted(receipt))
}

/// Records an event of the hub's own (an online order, or its
/// cancellation) at its location, against the counters there now.
pub(in crate::storage) fn record_hub_event(
    txn: &WriteTxn,
    event: &Event,
) -> Result<Result<tally_sync::ledger::Applied, Refusal>, StorageError> {
    let mut replica = RedbTxn::new(txn);
    let counters = counters_at(
        &replica,
        &event.location,
        event.lines.iter().map(|l| l.gtin),
    )?;
    record_event(&mut replica, event, &counters, &EpcLedger::new())
}

/// The `Order` event the hub records for `lines` of order `order_id` at
/// `store`: replica `hub`, each line at the catalog price (0 if the item
/// has none). Store-named and routed orders alike.
pub(in crate::storage) fn order_event(
    txn: &WriteTxn,
    id: EventId,
    store: &LocationId,
    order_id: &str,
    lines: &[(Gtin, u64)],
    now_ms: u64,
) -> Result<Event, StoreError> {
    let mut priced = Vec::with_capacity(lines.len());
    for &(gtin, qty) in lines {
        let price = txn.catalog_item(gtin)?.map_or(0, |c| c.price_minor);
        priced.push(Line {
            gtin,
            qty,
            unit_price_minor: price,
            epc: None,
        });
    }
    Ok(Event {
        id,
        location: store.clone(),
        replica: ReplicaId::hub(),
        at_ms: now_ms,
        kind: EventKind::Order {
            reference: Some(order_id.to_string()),
        },
        lines: priced,
        staff: Default::default(),
        price_overrides: Vec::new(),
    })
}

/// Counts a refused online order in its store's record (none if the store
/// never synced: an order may name any store).
fn order_refused(txn: &WriteTxn, store: &LocationId, reason: Shortage) -> Result<bool, StoreError> {
    let mut stores = txn.raw().open_table(STORES).map_err(redb_err)?;
    let found: Option<StoreRecord> = match stores.get(store.as_str()).map_err(redb_err)? {
        Some(v) => Some(from_json("hub_stores", v.value())?),
        None => None,
    };
    let Some(mut record) = found else {
        return Ok(false);
    };
    let n = record.refused_orders.get_mut(reason);
    *n = n.saturating_add(1);
    stores
        .insert(store.as_str(), to_json("hub_stores", &record)?.as_slice())
        .map_err(redb_err)?;
    Ok(true)
}

/// One batch's write transaction: the writer's [`HubWrite`] on redb.
struct RedbWrite<'a> {
    hub: &'a RedbHub,
    txn: RedbTxn<'a>,
}

/// A request for rights: answered again if its id was granted, else the
/// hub's rights move to the store and the grant is recorded under the id.
fn grant(
    txn: &WriteTxn,
    who: &tally_sync::exchange::Identity,
    req: &RightsRequest,
    hold_back: u64,
) -> Result<GrantResult, StorageError> {
    let record = GrantRecord {
        store: who.replica.to_string(),
        gtin: req.gtin,
        units: req.units,
        granted: 0,
    };
    let id = req.request_id.0.as_u128();
    let found = {
        let grants = txn.raw().open_table(GRANTS).map_err(redb_err)?;
        let found = grants.get(id).map_err(redb_err)?;
        match found {
            Some(v) => Some(from_json::<GrantRecord>("hub_grants", v.value())?),
            None => None,
        }
    };
    let replica = RedbTxn::new(txn);
    if let Some(old) = found {
        let same = GrantRecord {
            granted: 0,
            ..old.clone()
        } == record;
        if !same {
            return Ok(GrantResult::IdConflict);
        }
        return Ok(GrantResult::Replayed(rights::regrant(
            &replica,
            who,
            req,
            old.granted,
        )?));
    }
    drop(replica);
    let req = &RightsRequest {
        own: content::explained_own(txn, who, req.gtin, &req.own)?,
        ..req.clone()
    };
    let mut replica = RedbTxn::new(txn);
    let granted = match rights::grant_holding(&mut replica, who, req, hold_back)? {
        Ok(g) => g,
        Err(violation) => return Ok(GrantResult::Forged(violation.to_string())),
    };
    drop(replica);
    let record = GrantRecord {
        granted: granted.granted,
        ..record
    };
    txn.raw()
        .open_table(GRANTS)
        .map_err(redb_err)?
        .insert(id, to_json("hub_grants", &record)?.as_slice())
        .map_err(redb_err)?;
    Ok(GrantResult::Granted(granted))
}

impl HubWrite for RedbWrite<'_> {
    fn check_return(
        &mut self,
        req: &tally_sync::returns::ReturnCheckRequest,
        now_ms: u64,
    ) -> Result<logic::returns::CheckResult, StorageError> {
        logic::returns::check(&mut self.txn, req, now_ms)
    }

    fn flag_overdue_transfers(
        &mut self,
        now_ms: u64,
        overdue_ms: u64,
    ) -> Result<usize, StorageError> {
        let raised = logic::transfers::flag_overdue(&mut self.txn, now_ms, overdue_ms)?;
        let n = raised.len();
        self.txn.append_exceptions(raised)?;
        Ok(n)
    }

    fn cancel_order(
        &mut self,
        order_id: &str,
        seed: [u8; 10],
        now_ms: u64,
    ) -> Result<routed::CancelResult, StorageError> {
        routed::cancel(self.txn.write_txn(), order_id, seed, now_ms)
    }

    fn route_order(&mut self, o: &RoutedOrderRequest) -> Result<RoutedResult, StorageError> {
        let txn = self.txn.write_txn();
        let store_named = txn
            .raw()
            .open_table(ORDERS)
            .map_err(redb_err)?
            .get(o.order_id.as_str())
            .map_err(redb_err)?
            .is_some();
        routed::route_order(
            txn,
            o,
            &self.hub.routing,
            &self.hub.settings.policy,
            store_named,
        )
    }

    fn admit_held(&mut self, id: EventId, now_ms: u64) -> Result<AdmitResult, StorageError> {
        logic::held::admit(&mut self.txn, id, now_ms)
    }

    fn sync(
        &mut self,
        who: &tally_sync::exchange::Identity,
        req: &tally_sync::SyncRequest,
        now_ms: u64,
    ) -> Result<SyncResult, StorageError> {
        self.hub.sync(self.txn.write_txn(), who, req, now_ms)
    }

    fn order(&mut self, o: &OrderRequest) -> Result<OrderResult, StorageError> {
        order(self.txn.write_txn(), o, &self.hub.settings.policy)
    }

    fn order_refused(
        &mut self,
        store: &LocationId,
        reason: Shortage,
    ) -> Result<bool, StorageError> {
        Ok(order_refused(self.txn.write_txn(), store, reason)?)
    }

    fn catalog(&mut self, items: &[CatalogItem]) -> Result<CatalogResult, StorageError> {
        let mut changed = 0;
        for item in items {
            if self.txn.write_txn().put_catalog_item(item)? {
                changed += 1;
            }
        }
        Ok(CatalogResult { changed })
    }

    fn grant(
        &mut self,
        who: &tally_sync::exchange::Identity,
        req: &RightsRequest,
        hold_back: u64,
    ) -> Result<GrantResult, StorageError> {
        grant(self.txn.write_txn(), who, req, hold_back)
    }

    fn release(
        &mut self,
        who: &tally_sync::exchange::Identity,
        released: &RightsReleased,
    ) -> Result<ReleaseResult, StorageError> {
        let own = content::explained_own(self.txn.write_txn(), who, released.gtin, &released.own)?;
        let mut replica = RedbTxn::new(self.txn.write_txn());
        Ok(
            match rights::merge_own(&mut replica, who, released.gtin, &own)? {
                Ok(changed) => ReleaseResult::Merged(changed),
                Err(violation) => ReleaseResult::Forged(violation.to_string()),
            },
        )
    }
}

impl HubStorage for RedbHub {
    fn write_batch(
        &self,
        batch: &mut dyn FnMut(&mut dyn HubWrite) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        let txn = self.db.begin_write()?;
        let written = batch(&mut RedbWrite {
            hub: self,
            txn: RedbTxn::new(&txn),
        });
        if let Err(e) = written {
            // Dropping the transaction aborts it; say why.
            let _ = txn.abort();
            return Err(e);
        }
        txn.commit()?;
        Ok(())
    }

    fn catalog_item(&self, gtin: Gtin) -> Result<Option<CatalogItem>, StorageError> {
        Ok(self.db.begin_read()?.catalog_item(gtin)?)
    }

    fn counter(&self, key: &ItemKey) -> Result<tally_sync::BoundedCounter, StorageError> {
        Ok(self.db.begin_read()?.counter(key)?)
    }

    fn stock(&self, gtin: Gtin) -> Result<Vec<(String, StoreStock)>, StorageError> {
        let txn = self.db.begin_read()?;
        let stores = txn.raw().open_table(STORES).map_err(redb_err)?;
        let hub = ReplicaId::hub();
        let mut out = Vec::new();
        for row in stores.iter().map_err(redb_err)? {
            let (k, _) = row.map_err(redb_err)?;
            let id = k.value().to_string();
            let (Ok(location), Ok(replica)) = (
                tally_sync::LocationId::new(&id),
                tally_sync::ReplicaId::new(&id),
            ) else {
                return Err(corrupt("hub_stores", format!("bad store id {id:?}")).into());
            };
            let c = txn.counter(&ItemKey::new(location, gtin))?;
            if c.is_empty() {
                continue;
            }
            out.push((
                id,
                StoreStock {
                    on_hand: c.value(),
                    store_rights: c.rights(&replica),
                    hub_rights: c.rights(&hub),
                },
            ));
        }
        Ok(out)
    }

    fn stores(&self) -> Result<Vec<StoreRecord>, StorageError> {
        let txn = self.db.begin_read()?;
        let stores = txn.raw().open_table(STORES).map_err(redb_err)?;
        let mut out = Vec::new();
        for row in stores.iter().map_err(redb_err)? {
            let (_, v) = row.map_err(redb_err)?;
            out.push(from_json("hub_stores", v.value())?);
        }
        Ok(out)
    }

    fn sales_per_minute(&self, since_minute: u64) -> Result<Vec<(String, u64, u64)>, StorageError> {
        let txn = self.db.begin_read()?;
        let table = txn.raw().open_table(SALES).map_err(redb_err)?;
        let mut out = Vec::new();
        for row in table.iter().map_err(redb_err)? {
            let (k, v) = row.map_err(redb_err)?;
            let (store, minute) = k.value();
            if minute >= since_minute {
                out.push((store.to_string(), minute, v.value()));
            }
        }
        Ok(out)
    }

    fn routed_orders(
        &self,
        status: tally_sync::fulfilment::Status,
        after: &str,
        limit: usize,
    ) -> Result<Vec<RoutedOrder>, StorageError> {
        Ok(routed::list(&self.db.begin_read()?, status, after, limit)?)
    }

    fn routed_order(&self, order_id: &str) -> Result<Option<RoutedOrder>, StorageError> {
        Ok(routed::read(&self.db.begin_read()?, order_id)?)
    }

    fn transfers(
        &self,
        status: tally_sync::transfer::TransferStatus,
        after: &str,
        limit: usize,
    ) -> Result<Vec<logic::transfers::HubTransfer>, StorageError> {
        Ok(transfers::list(
            &self.db.begin_read()?,
            status,
            after,
            limit,
        )?)
    }

    fn cross_returns(
        &self,
        limit: usize,
    ) -> Result<Vec<logic::returns::CrossReturn>, StorageError> {
        Ok(returns::cross_returns(&self.db.begin_read()?, limit)?)
    }

    fn transfer(&self, id: &str) -> Result<Option<logic::transfers::HubTransfer>, StorageError> {
        Ok(transfers::read(&self.db.begin_read()?, id)?)
    }

    fn transfers_received_recently(
        &self,
        limit: usize,
    ) -> Result<Vec<logic::transfers::HubTransfer>, StorageError> {
        Ok(transfers::recent(&self.db.begin_read()?, limit)?)
    }

    fn status_counts(&self) -> Result<super::StatusCounts, StorageError> {
        Ok(tallies::read(&self.db.begin_read()?)?)
    }

    fn allocations(
        &self,
        store: &LocationId,
        after: u64,
        limit: usize,
    ) -> Result<tally_sync::message::AllocationsPage, StorageError> {
        Ok(routed::allocations_page(
            &self.db.begin_read()?,
            store,
            after,
            limit,
        )?)
    }

    fn held_events(&self, limit: usize) -> Result<Vec<HeldEvent>, StorageError> {
        Ok(held::list(&self.db.begin_read()?, limit)?)
    }

    fn exceptions(&self, since: u64, limit: usize) -> Result<Vec<ExceptionRecord>, StorageError> {
        let txn = self.db.begin_read()?;
        let table = txn.raw().open_table(EXCEPTIONS).map_err(redb_err)?;
        let mut out = Vec::new();
        for row in table
            .range(since.saturating_add(1)..)
            .map_err(redb_err)?
            .take(limit)
        {
            let (_, v) = row.map_err(redb_err)?;
            out.push(from_json("hub_exceptions", v.value())?);
        }
        Ok(out)
    }

    fn audit(&self) -> Result<AuditReport, StorageError> {
        let txn = self.db.begin_read()?;
        // Streamed: memory grows with items × stores, not with the
        // chain's whole history of events.
        let mut tally = tally_sync::audit::FlowTally::default();
        let events = txn.visit_events(|e| tally.add(&e))?;
        let mut rows = Vec::new();
        for (key, flow) in tally.into_flows() {
            let on_hand = txn.counter(&key)?.value();
            rows.push(AuditRow {
                store: key.location.as_str().to_string(),
                gtin: key.gtin,
                units_in: flow.units_in,
                sold: flow.sold,
                ordered: flow.ordered,
                shrink: flow.shrink,
                transferred_out: flow.transferred_out,
                transferred_in: flow.transferred_in,
                oversold: flow.oversold(),
                on_hand_by_events: flow.on_hand(),
                on_hand,
            });
        }
        Ok(AuditReport {
            events,
            double_sold: rows
                .iter()
                .fold(0u128, |sum, r| sum.saturating_add(r.oversold)),
            rows,
            epcs_sold_twice: content::epcs_sold_twice(&txn)?,
            holdings_disagreeing: holdings::disagreeing(&txn)?,
        })
    }
}
