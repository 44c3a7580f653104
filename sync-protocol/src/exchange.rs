//! The sync exchange itself: what the hub does with a [`SyncRequest`] and
//! what a store does with the [`SyncResponse`], written once against a
//! small storage trait so the hub server, the agent and the simulation run
//! the very same logic.
//!
//! # Design constraints
//! - [`hub_handle`] validates the *whole* request before writing anything:
//!   identity (from the caller, i.e. the client certificate), every event's
//!   origin and shape, and the counter delta with
//!   [`crate::inventory::validate_delta_with`]. A forged or impossible
//!   request is refused whole. The caller runs it inside one storage
//!   transaction and commits only on `Ok`, so a refused or failed request
//!   leaves nothing behind.
//! - Everything is idempotent: events are keyed by id, deltas merge by max,
//!   acks and cursors are high-water marks. A duplicated or reordered
//!   exchange changes nothing the first one did not.
//! - Rebalancing calls [`crate::policy::rebalance`] on both sides; each side
//!   executes only the moves of rights it owns. The reserve targets come
//!   from the hub (from its record of online demand, computed by the
//!   caller) and travel in the response, so both sides use the same ones.

use std::collections::{BTreeMap, BTreeSet};

use crate::counter::BoundedCounter;
use crate::epcs::{DoubleSale, EpcRecord};
use crate::event::{Event, EventKind};
use crate::gtin::Gtin;
use crate::ids::{Epc, EventId, LocationId, ReplicaId};
use crate::inventory::{validate_delta_with, Delta, DeltaEntry, DeltaViolation, ItemKey};
use crate::journal::Inserted;
use crate::ledger::check_lines;
use crate::message::{
    Demand, RejectedEvent, ReserveTarget, SyncRequest, SyncResponse, PROTOCOL_VERSION,
};
use crate::policy::{rebalance, Rebalance, RightsView};

/// The storage a replica's sync logic runs against. The in-memory
/// [`MemoryReplica`] implements it for the simulation and tests; the agent
/// and hub implement it over a redb write transaction.
pub trait ReplicaStore {
    /// Storage failure (I/O, corruption).
    type Error;
    /// The counter for `key` (empty if never touched).
    fn counter(&self, key: &ItemKey) -> Result<BoundedCounter, Self::Error>;
    /// Stores `counter`, stamping a new version if it changed.
    fn put_counter(&mut self, key: &ItemKey, counter: BoundedCounter) -> Result<(), Self::Error>;
    /// Counters at `location` changed after version `cursor`, oldest first,
    /// at most `limit` of them.
    fn delta_since(
        &self,
        location: &LocationId,
        cursor: u64,
        limit: usize,
    ) -> Result<(Delta, u64), Self::Error>;
    /// Stores an event unless its id is taken.
    fn insert_event(&mut self, event: &Event) -> Result<Inserted, Self::Error>;
    /// Records a sale of `epc`; returns the double sale if it made one.
    fn record_epc_sale(
        &mut self,
        epc: &Epc,
        record: EpcRecord,
    ) -> Result<Option<DoubleSale>, Self::Error>;
    /// Records a return of `epc`.
    fn record_epc_return(&mut self, epc: &Epc, record: EpcRecord) -> Result<(), Self::Error>;
}

/// Who is syncing, as established by the transport (the client
/// certificate), never by the message body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The store's replica id.
    pub replica: ReplicaId,
    /// The store's location.
    pub location: LocationId,
}

/// Why the hub refused a request whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyncRefusal {
    /// The body names another store than the certificate.
    #[error("request names replica {claimed_replica} at {claimed_location}, but the certificate is for {replica} at {location}")]
    WrongIdentity {
        /// From the certificate.
        replica: ReplicaId,
        /// From the certificate.
        location: LocationId,
        /// From the body.
        claimed_replica: ReplicaId,
        /// From the body.
        claimed_location: LocationId,
    },
    /// A counter update broke the escrow rules.
    #[error("forged or impossible counter update: {0}")]
    Delta(#[from] DeltaViolation),
    /// An event the store may not have recorded (another store's, an
    /// online order) or a malformed one.
    #[error("event {id} refused: {reason}")]
    Event {
        /// The event.
        id: EventId,
        /// Why.
        reason: String,
    },
}

impl SyncRefusal {
    /// Whether this is about identity or forgery (403) rather than a
    /// malformed body (422).
    pub fn is_forbidden(&self) -> bool {
        match self {
            SyncRefusal::WrongIdentity { .. } => true,
            SyncRefusal::Delta(DeltaViolation::WrongLocation { .. }) => true,
            SyncRefusal::Delta(DeltaViolation::Counter { violation, .. }) => {
                matches!(violation, crate::counter::Violation::ForeignEntry { .. })
            }
            SyncRefusal::Event { .. } => false,
        }
    }
}

/// [`hub_handle`] failed: refused, or storage failed.
#[derive(Debug, thiserror::Error)]
pub enum HandleError<E> {
    /// The request is refused whole; nothing was written.
    #[error(transparent)]
    Refused(#[from] SyncRefusal),
    /// Storage failed; the caller must abort its transaction.
    #[error("storage: {0}")]
    Storage(E),
}

/// What the hub did with one request, beyond the response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HubOutcome {
    /// Events stored for the first time.
    pub new_events: Vec<EventId>,
    /// New override sales among them (exceptions to surface).
    pub overrides: Vec<EventId>,
    /// EPCs this request made double-sold (exceptions to surface).
    pub double_sales: Vec<DoubleSale>,
    /// Rights the hub gave back to the store, per item.
    pub given: Vec<(Gtin, u64)>,
    /// Counters changed by the merge.
    pub merged: usize,
}

/// Limits on one response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HubLimits {
    /// At most this many counters in the response delta.
    pub max_delta_entries: usize,
}

impl Default for HubLimits {
    fn default() -> Self {
        Self {
            max_delta_entries: 50_000,
        }
    }
}

/// The hub's reserve targets at one location: units per item
/// ([`crate::reserve::ReservePolicy::wanted`] of its online demand, not
/// capped at on hand); an item absent has target 0.
pub type ReserveTargets = BTreeMap<Gtin, u64>;

/// Handles one sync request at the hub. See the module docs. `targets`
/// are the hub's reserve targets at the store's location now. The caller
/// fills in the response's catalog fields.
pub fn hub_handle<S: ReplicaStore>(
    store: &mut S,
    who: &Identity,
    req: &SyncRequest,
    targets: &ReserveTargets,
    limits: &HubLimits,
) -> Result<(SyncResponse, HubOutcome), HandleError<S::Error>> {
    // 1. Validate everything before writing anything. A store may never
    // speak as the hub, whose entries it could then forge.
    if req.replica != who.replica || req.location != who.location || who.replica.is_hub() {
        return Err(SyncRefusal::WrongIdentity {
            replica: who.replica.clone(),
            location: who.location.clone(),
            claimed_replica: req.replica.clone(),
            claimed_location: req.location.clone(),
        }
        .into());
    }
    for event in &req.events {
        check_event_origin(who, event)?;
    }
    validate_delta_with(&who.replica, &who.location, &req.delta, |k| {
        store.counter(k)
    })
    .map_err(|e| match e {
        Ok(v) => HandleError::Refused(SyncRefusal::Delta(v)),
        Err(s) => HandleError::Storage(s),
    })?;

    // 2. Store events, EPCs and the delta.
    let mut outcome = HubOutcome::default();
    let mut rejected = Vec::new();
    for event in &req.events {
        match store.insert_event(event).map_err(HandleError::Storage)? {
            Inserted::New => {
                outcome.new_events.push(event.id);
                if event.is_override() {
                    outcome.overrides.push(event.id);
                }
                record_epcs(store, event, &mut outcome).map_err(HandleError::Storage)?;
            }
            Inserted::Duplicate => {}
            Inserted::Conflict => rejected.push(RejectedEvent {
                id: event.id,
                reason: "another event with this id is already stored".into(),
            }),
        }
    }
    let mut touched: BTreeSet<Gtin> = BTreeSet::new();
    for entry in &req.delta.entries {
        let mut c = store.counter(&entry.key).map_err(HandleError::Storage)?;
        if !c.covers(&entry.counter) {
            c.merge(&entry.counter);
            store
                .put_counter(&entry.key, c)
                .map_err(HandleError::Storage)?;
            outcome.merged += 1;
        }
        touched.insert(entry.key.gtin);
    }

    // 3. Rebalance: the hub executes the moves of its own rights. Items
    // with a target are considered on every sync, so a reserve follows
    // demand even where no counter changed.
    let demand: BTreeMap<Gtin, u64> = req.demand.iter().map(|d| (d.gtin, d.units)).collect();
    touched.extend(demand.keys().copied());
    touched.extend(targets.keys().copied());
    let hub = ReplicaId::hub();
    for gtin in touched {
        let key = ItemKey::new(who.location.clone(), gtin);
        let mut c = store.counter(&key).map_err(HandleError::Storage)?;
        let view = view_of(&c, &who.replica, demand.get(&gtin).copied().unwrap_or(0));
        let target = targets.get(&gtin).copied().unwrap_or(0);
        if let Rebalance::ToStore(n) = rebalance(target, &view) {
            let n = n.min(c.rights(&hub));
            if n > 0 && c.transfer(&hub, &who.replica, n).is_ok() {
                store.put_counter(&key, c).map_err(HandleError::Storage)?;
                outcome.given.push((gtin, n));
            }
        }
    }

    // 4. Answer with what the store lacks: others' entries only.
    let (changed, hub_cursor) = store
        .delta_since(&who.location, req.hub_cursor, limits.max_delta_entries)
        .map_err(HandleError::Storage)?;
    let more = changed.len() >= limits.max_delta_entries;
    let delta = Delta {
        entries: changed
            .entries
            .into_iter()
            .map(|e| DeltaEntry {
                counter: e.counter.without(&who.replica),
                key: e.key,
            })
            .filter(|e| !e.counter.is_empty())
            .collect(),
    };
    let response = SyncResponse {
        version: PROTOCOL_VERSION,
        acked_delta_version: req.delta_version,
        acked_events_upto: req.events_upto,
        rejected_events: rejected,
        delta,
        hub_cursor,
        reserve: targets
            .iter()
            .filter(|(_, &units)| units > 0)
            .map(|(&gtin, &units)| ReserveTarget { gtin, units })
            .collect(),
        catalog: Vec::new(),
        catalog_cursor: req.catalog_cursor,
        more,
    };
    Ok((response, outcome))
}

fn check_event_origin(who: &Identity, event: &Event) -> Result<(), SyncRefusal> {
    let refuse = |reason: String| SyncRefusal::Event {
        id: event.id,
        reason,
    };
    if event.location != who.location || event.replica != who.replica {
        return Err(refuse(format!(
            "recorded by {} at {}, not by this store",
            event.replica, event.location
        )));
    }
    if matches!(event.kind, EventKind::Order { .. }) {
        return Err(refuse("only the hub records online orders".into()));
    }
    if !matches!(event.kind, EventKind::CountAdjustment { .. }) {
        check_lines(&event.lines).map_err(|e| refuse(e.to_string()))?;
    }
    Ok(())
}

fn record_epcs<S: ReplicaStore>(
    store: &mut S,
    event: &Event,
    outcome: &mut HubOutcome,
) -> Result<(), S::Error> {
    for line in &event.lines {
        let Some(epc) = &line.epc else { continue };
        let record = EpcRecord {
            event: event.id,
            replica: event.replica.clone(),
        };
        match event.kind {
            EventKind::Sale { .. } => {
                if let Some(d) = store.record_epc_sale(epc, record)? {
                    outcome.double_sales.push(d);
                }
            }
            EventKind::Return { .. } => store.record_epc_return(epc, record)?,
            _ => {}
        }
    }
    Ok(())
}

/// What the policy sees of a counter, for store `store`.
pub fn view_of(c: &BoundedCounter, store: &ReplicaId, demand: u64) -> RightsView {
    RightsView {
        on_hand: c.value(),
        hub_rights: c.rights(&ReplicaId::hub()),
        store_rights: c.rights(store),
        store_demand: demand,
    }
}

/// A store's sync cursors (persisted with its state).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SyncCursors {
    /// The store's inventory version the hub has acknowledged.
    pub acked_delta_version: u64,
    /// The store's outbox sequence the hub has acknowledged.
    pub acked_events_upto: u64,
    /// The hub version the store has applied.
    pub hub_cursor: u64,
    /// The catalog version the store has applied.
    pub catalog_cursor: u64,
}

/// A store's next request, from what one consistent read of its state
/// gave: its own counter entries changed since the hub's ack (`delta`, up
/// to inventory version `delta_version`), the unacknowledged `events`
/// (the last at outbox sequence `events_upto`), its cursors and its
/// refused demand (items with none are left out). Its totals of sales
/// lost for lack of rights are added with [`SyncRequest::with_lost`].
pub fn store_request(
    who: &Identity,
    cursors: &SyncCursors,
    delta: Delta,
    delta_version: u64,
    events: Vec<Event>,
    events_upto: u64,
    demand: &BTreeMap<Gtin, u64>,
) -> SyncRequest {
    SyncRequest {
        version: PROTOCOL_VERSION,
        replica: who.replica.clone(),
        location: who.location.clone(),
        delta,
        delta_version,
        events,
        events_upto,
        hub_cursor: cursors.hub_cursor,
        catalog_cursor: cursors.catalog_cursor,
        demand: demand
            .iter()
            .filter(|(_, &units)| units > 0)
            .map(|(&gtin, &units)| Demand { gtin, units })
            .collect(),
        lost: Vec::new(),
    }
}

/// What a store did with one response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreApplied {
    /// Counters changed by the merge.
    pub merged: usize,
    /// Rights the store gave the hub for its online reserve, per item.
    pub given: Vec<(Gtin, u64)>,
    /// Events the hub refused for good: dead-letter them.
    pub rejected: Vec<RejectedEvent>,
}

/// Applies a response at the store: merges the hub's delta, raises the
/// cursors, and gives the hub rights for its reserve where the policy asks
/// (for the items in the response, its reserve targets and `own_changes`;
/// an item without a target in the response has target 0). `demand` is the
/// store's outstanding refused demand per item. Safe to call with a stale,
/// duplicated or reordered response.
pub fn store_apply<S: ReplicaStore>(
    store: &mut S,
    who: &Identity,
    cursors: &mut SyncCursors,
    resp: &SyncResponse,
    own_changes: impl IntoIterator<Item = Gtin>,
    demand: &BTreeMap<Gtin, u64>,
) -> Result<StoreApplied, S::Error> {
    let mut out = StoreApplied {
        rejected: resp.rejected_events.clone(),
        ..Default::default()
    };
    let mut touched: BTreeSet<Gtin> = own_changes.into_iter().collect();
    for entry in &resp.delta.entries {
        if entry.key.location != who.location {
            continue; // not ours: the hub never sends these; ignore defensively
        }
        let mut c = store.counter(&entry.key)?;
        if !c.covers(&entry.counter) {
            c.merge(&entry.counter);
            store.put_counter(&entry.key, c)?;
            out.merged += 1;
        }
        touched.insert(entry.key.gtin);
    }
    cursors.acked_delta_version = cursors.acked_delta_version.max(resp.acked_delta_version);
    cursors.acked_events_upto = cursors.acked_events_upto.max(resp.acked_events_upto);
    cursors.hub_cursor = cursors.hub_cursor.max(resp.hub_cursor);
    cursors.catalog_cursor = cursors.catalog_cursor.max(resp.catalog_cursor);

    let targets: ReserveTargets = resp.reserve.iter().map(|t| (t.gtin, t.units)).collect();
    touched.extend(targets.keys().copied());
    let hub = ReplicaId::hub();
    for gtin in touched {
        let key = ItemKey::new(who.location.clone(), gtin);
        let mut c = store.counter(&key)?;
        let view = view_of(&c, &who.replica, demand.get(&gtin).copied().unwrap_or(0));
        let target = targets.get(&gtin).copied().unwrap_or(0);
        if let Rebalance::ToHub(n) = rebalance(target, &view) {
            let n = n.min(c.rights(&who.replica));
            if n > 0 && c.transfer(&who.replica, &hub, n).is_ok() {
                store.put_counter(&key, c)?;
                out.given.push((gtin, n));
            }
        }
    }
    Ok(out)
}

/// The in-memory replica state: the simulation's and tests' storage.
#[derive(Debug, Clone, Default)]
pub struct MemoryReplica {
    /// Counters.
    pub inventory: crate::inventory::Inventory,
    /// Events.
    pub journal: crate::journal::Journal,
    /// Sold EPCs.
    pub epcs: crate::epcs::EpcLedger,
}

impl ReplicaStore for MemoryReplica {
    type Error = std::convert::Infallible;

    fn counter(&self, key: &ItemKey) -> Result<BoundedCounter, Self::Error> {
        Ok(self.inventory.counter(key))
    }

    fn put_counter(&mut self, key: &ItemKey, counter: BoundedCounter) -> Result<(), Self::Error> {
        self.inventory.put(key, counter);
        Ok(())
    }

    fn delta_since(
        &self,
        location: &LocationId,
        cursor: u64,
        limit: usize,
    ) -> Result<(Delta, u64), Self::Error> {
        Ok(self.inventory.delta_since_limited(location, cursor, limit))
    }

    fn insert_event(&mut self, event: &Event) -> Result<Inserted, Self::Error> {
        Ok(self.journal.insert(event.clone()))
    }

    fn record_epc_sale(
        &mut self,
        epc: &Epc,
        record: EpcRecord,
    ) -> Result<Option<DoubleSale>, Self::Error> {
        Ok(self.epcs.record_sale(epc, record))
    }

    fn record_epc_return(&mut self, epc: &Epc, record: EpcRecord) -> Result<(), Self::Error> {
        self.epcs.record_return(epc, record);
        Ok(())
    }
}
