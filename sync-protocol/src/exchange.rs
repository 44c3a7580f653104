//! The sync exchange itself: what the hub does with a [`SyncRequest`] and
//! what a store does with the [`SyncResponse`], written once against a
//! small storage trait so the hub server, the agent and the simulation run
//! the very same logic.
//!
//! # Design constraints
//! - [`hub_handle`] validates the *whole* request before writing anything:
//!   identity (from the caller, i.e. the client certificate), every event's
//!   origin and shape, every new event's content
//!   ([`crate::limits::check_event`], the agent's own rules) and date
//!   ([`crate::limits::DateWindow`]: hub time, and the store's allowance
//!   after HQ admitted one of its events), returns of
//!   tagged items (only a tag the hub knows as sold, as the same item:
//!   [`crate::epcs::EpcState::after_return`]), the demand's bounds, the
//!   counter delta with [`crate::inventory::validate_delta_with`] (escrow:
//!   ownership and rights), and that the store's own `P` and `N` entries
//!   in the delta are explained by its events in this request or earlier
//!   ones ([`crate::explain`]). A forged or impossible request is refused
//!   whole. The caller runs it inside one storage transaction and commits
//!   only on `Ok`, so a refused or failed request leaves nothing behind.
//! - Cost is linear in the request, never in the store's history: the hub
//!   keeps O(1)-sized running state per (store, item) ([`Explained`]) and
//!   per EPC ([`EpcState`]) beside one row per (EPC, event)
//!   ([`HubReplica`]).
//! - Reported demand moves the hub's rights to the store only up to the
//!   units the store reports it lost in refused sales
//!   ([`SyncRequest::lost`], cumulative): [`effective_demand`].
//! - Everything is idempotent: events are keyed by id, deltas merge by max,
//!   acks and cursors are high-water marks. A duplicated or reordered
//!   exchange changes nothing the first one did not.
//! - Rebalancing calls [`crate::policy::rebalance`] on both sides; each side
//!   executes only the moves of rights it owns. The reserve targets come
//!   from the hub (from its record of online demand, computed by the
//!   caller) and travel in the response, so both sides use the same ones.

use std::collections::{BTreeMap, BTreeSet};

use crate::counter::BoundedCounter;
use crate::epcs::{DoubleSale, EpcRecord, EpcState};
use crate::event::{Event, EventKind};
use crate::explain::{self, Explained, Unexplained, Unsynced};
use crate::gtin::Gtin;
use crate::ids::{Epc, EventId, LocationId, ReplicaId};
use crate::inventory::{validate_delta_with, Delta, DeltaEntry, DeltaViolation, ItemKey};
use crate::journal::Inserted;
use crate::ledger::check_lines;
use crate::limits::{self, ContentError, DateWindow};
use crate::message::{
    Demand, LostSales, RejectedEvent, ReserveTarget, SyncRequest, SyncResponse, PROTOCOL_VERSION,
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

/// Whether an EPC row records a sale or a return.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EpcMove {
    /// A sale of the tag.
    Sale,
    /// A return of the tag.
    Return,
}

/// Most sales a double-sale report lists (the first ones recorded): the
/// report costs the same however often a tag was sold.
pub const MAX_LISTED_SALES: usize = 16;

/// What the hub keeps beyond a [`ReplicaStore`] to check a store's
/// requests in time linear in the request: events by id, per-EPC state
/// with one row per (EPC, event), and per (location, item) what the
/// location's store's own events explain. [`MemoryReplica`] implements it
/// for the simulation and tests, the hub over redb.
pub trait HubReplica: ReplicaStore {
    /// Whether an event with this id is stored.
    fn has_event(&self, id: &EventId) -> Result<bool, Self::Error>;
    /// The state of `epc` (none if never sold or returned here).
    fn epc_state(&self, epc: &Epc) -> Result<Option<EpcState>, Self::Error>;
    /// Records one sale or return of `epc` (one row per event) and its
    /// state after it.
    fn put_epc(
        &mut self,
        epc: &Epc,
        movement: EpcMove,
        record: &EpcRecord,
        state: &EpcState,
    ) -> Result<(), Self::Error>;
    /// Up to `limit` recorded sales of `epc`, in key order.
    fn epc_sales(&self, epc: &Epc, limit: usize) -> Result<Vec<EpcRecord>, Self::Error>;
    /// What the store at `key.location` has explained by its events so far
    /// for `key` (zero if nothing).
    fn explained(&self, key: &ItemKey) -> Result<Explained, Self::Error>;
    /// Stores what the store's events explain for `key`.
    fn put_explained(&mut self, key: &ItemKey, explained: Explained) -> Result<(), Self::Error>;
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
    /// online order), a malformed one, one beyond the content bounds or
    /// the hub's time window, or the return of a tag the hub does not know
    /// as sold (as that item).
    #[error("event {id} refused: {reason}")]
    Event {
        /// The event.
        id: EventId,
        /// Why.
        reason: String,
    },
    /// An event dated outside the hub's window for this store (its
    /// clock ran ahead, or restarted at a date long past): the store
    /// keeps it and sends it again, the hub holds it for HQ, and once HQ
    /// admits it the store's events dated alike go through for a while
    /// ([`crate::limits::DateAllowance`]).
    #[error("event {id} refused: {reason}")]
    OutOfWindow {
        /// The event.
        id: EventId,
        /// Why (the window and the event's date).
        reason: String,
    },
    /// Request content beyond the bounds that no single event carries
    /// (the demand).
    #[error("request refused: {0}")]
    Content(ContentError),
    /// The delta advances the store's own `P` or `N` entry of a counter
    /// beyond what its events explain: stock (or its removal) with no
    /// event behind it.
    #[error("counter {gtin} at {location}: {unexplained}")]
    Unexplained {
        /// The counter's location.
        location: LocationId,
        /// The counter's item.
        gtin: Gtin,
        /// The entry and the numbers.
        unexplained: Unexplained,
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
            SyncRefusal::Unexplained { .. } => true,
            SyncRefusal::Delta(DeltaViolation::Duplicate { .. })
            | SyncRefusal::Event { .. }
            | SyncRefusal::OutOfWindow { .. }
            | SyncRefusal::Content(_) => false,
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

/// The hub's rights at one location held for online orders waiting on
/// the store's release, per item: never given to the store meanwhile.
pub type Held = BTreeMap<Gtin, u64>;

/// Handles one sync request at the hub. See the module docs. `targets`
/// are the hub's reserve targets at the store's location now, `held` its
/// rights there held for waiting orders (the rebalancing gives none of
/// them to the store: an order waiting on the store's release would lose
/// what it already had), `dates` the hub's clock and the dates this
/// store's new events may carry. The caller fills in the response's
/// catalog fields.
pub fn hub_handle<S: HubReplica>(
    store: &mut S,
    who: &Identity,
    req: &SyncRequest,
    targets: &ReserveTargets,
    held: &Held,
    limits: &HubLimits,
    dates: &DateWindow,
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
    limits::check_demand(&req.demand).map_err(SyncRefusal::Content)?;
    limits::check_delta_size(&req.delta).map_err(SyncRefusal::Content)?;
    let explained = check_events(store, who, &req.events, Some(dates))?;
    // Each counter as the hub knows it, the store's own entries raised to
    // what its accepted events explain (this request's included): a
    // delta whose `N` lags or hides synced sales cannot hand the hub
    // rights those sales used.
    validate_delta_with(&who.replica, &who.location, &req.delta, |k| {
        let x = match explained.get(&k.gtin) {
            Some(&x) => x,
            None => store.explained(k)?,
        };
        Ok(explain::with_events(&store.counter(k)?, &who.replica, x))
    })
    .map_err(|e| match e {
        Ok(v) => HandleError::Refused(SyncRefusal::Delta(v)),
        Err(s) => HandleError::Storage(s),
    })?;
    for entry in &req.delta.entries {
        let x = match explained.get(&entry.key.gtin) {
            Some(&x) => x,
            None => store.explained(&entry.key).map_err(HandleError::Storage)?,
        };
        explain::check_own(&who.replica, &entry.counter, x).map_err(|unexplained| {
            SyncRefusal::Unexplained {
                location: entry.key.location.clone(),
                gtin: entry.key.gtin,
                unexplained,
            }
        })?;
    }

    // 2. Store events, EPCs, what they explain, and the delta.
    let mut outcome = HubOutcome::default();
    let rejected = store_events(store, who, &req.events, explained, &mut outcome)
        .map_err(HandleError::Storage)?;
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
    let demand = effective_demand(&req.demand, &req.lost);
    touched.extend(demand.keys().copied());
    touched.extend(targets.keys().copied());
    let hub = ReplicaId::hub();
    for gtin in touched {
        let key = ItemKey::new(who.location.clone(), gtin);
        let mut c = store.counter(&key).map_err(HandleError::Storage)?;
        let view = view_of(&c, &who.replica, demand.get(&gtin).copied().unwrap_or(0));
        let target = targets.get(&gtin).copied().unwrap_or(0);
        if let Rebalance::ToStore(n) = rebalance(target, &view) {
            let free = c
                .rights(&hub)
                .saturating_sub(held.get(&gtin).copied().unwrap_or(0));
            let n = n.min(free);
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
    if !matches!(
        event.kind,
        EventKind::CountAdjustment { .. } | EventKind::Fulfilment { .. }
    ) {
        check_lines(&event.lines).map_err(|e| refuse(e.to_string()))?;
    }
    Ok(())
}

/// Stores validated `events` (by [`check_events`]): each new one with its
/// EPC rows, then what they `explained`. Returns the events refused for
/// an id already taken by another event.
fn store_events<S: HubReplica>(
    store: &mut S,
    who: &Identity,
    events: &[Event],
    explained: BTreeMap<Gtin, Explained>,
    outcome: &mut HubOutcome,
) -> Result<Vec<RejectedEvent>, S::Error> {
    let mut rejected = Vec::new();
    for event in events {
        match store.insert_event(event)? {
            Inserted::New => {
                outcome.new_events.push(event.id);
                record_epcs(store, event, outcome)?;
            }
            Inserted::Duplicate => {}
            Inserted::Conflict => rejected.push(RejectedEvent {
                id: event.id,
                reason: "another event with this id is already stored".into(),
            }),
        }
    }
    for (gtin, x) in explained {
        let key = ItemKey::new(who.location.clone(), gtin);
        store.put_explained(&key, x)?;
    }
    Ok(rejected)
}

/// Admits one event HQ reviewed after a sync refused it for its date (a
/// store whose clock ran ahead): every check a sync makes of an event
/// except the date window ([`crate::limits::DateWindow`]), then
/// stored as a sync stores it, so the store's own entries it explains
/// are accepted on its next sync. An event a sync would refuse for any
/// other reason is refused here too. Nothing else of the store's is
/// touched (no delta, no rebalance). `Ok` with no new event if the hub
/// already has it.
pub fn hub_admit_held<S: HubReplica>(
    store: &mut S,
    who: &Identity,
    event: &Event,
) -> Result<HubOutcome, HandleError<S::Error>> {
    let events = std::slice::from_ref(event);
    let explained = check_events(store, who, events, None)?;
    let mut outcome = HubOutcome::default();
    let rejected =
        store_events(store, who, events, explained, &mut outcome).map_err(HandleError::Storage)?;
    if let Some(r) = rejected.into_iter().next() {
        // Another event holds its id: nothing was stored, so it is not
        // admitted (and stays held for HQ).
        return Err(SyncRefusal::Event {
            id: r.id,
            reason: r.reason,
        }
        .into());
    }
    Ok(outcome)
}

/// Validates a request's events: origin and shape of each; for each
/// event new to the hub (not stored, not earlier in the request), its
/// content, date (within `dates`; not checked when `None`, an event HQ
/// admitted) and tagged returns, in order (a tag sold earlier in
/// the same request may be returned by a later event). Returns, per item
/// at the store's location, what the store's events explain once the new
/// ones are added (items the new events do not touch are left out).
fn check_events<S: HubReplica>(
    store: &S,
    who: &Identity,
    events: &[Event],
    dates: Option<&DateWindow>,
) -> Result<BTreeMap<Gtin, Explained>, HandleError<S::Error>> {
    let mut seen: BTreeSet<EventId> = BTreeSet::new();
    let mut explained: BTreeMap<Gtin, Explained> = BTreeMap::new();
    let mut epcs: BTreeMap<&Epc, EpcState> = BTreeMap::new();
    for event in events {
        check_event_origin(who, event)?;
        if !seen.insert(event.id) || store.has_event(&event.id).map_err(HandleError::Storage)? {
            continue; // a duplicate or a conflict: nothing of it is written
        }
        let refuse = |reason: String| SyncRefusal::Event {
            id: event.id,
            reason,
        };
        limits::check_event(event).map_err(|e| refuse(e.to_string()))?;
        let effect = explain::effect(event).map_err(|e| refuse(e.to_string()))?;
        for (gtin, x) in effect {
            let sum = match explained.get(&gtin) {
                Some(&s) => s,
                None => store
                    .explained(&ItemKey::new(who.location.clone(), gtin))
                    .map_err(HandleError::Storage)?,
            };
            let sum = sum.plus(x).map_err(|e| refuse(e.to_string()))?;
            explained.insert(gtin, sum);
        }
        for line in &event.lines {
            let Some(epc) = &line.epc else { continue };
            let state = match epcs.get(epc) {
                Some(&s) => s,
                None => store
                    .epc_state(epc)
                    .map_err(HandleError::Storage)?
                    .unwrap_or_default(),
            };
            let next = match event.kind {
                EventKind::Sale { .. } => state.after_sale(line.gtin).0,
                EventKind::Return { .. } => state
                    .after_return(epc, line.gtin)
                    .map_err(|e| refuse(e.to_string()))?,
                _ => continue,
            };
            epcs.insert(epc, next);
        }
        // The date last: refused for it, an event passes every other
        // check, so the store keeps it and HQ's admission stores it (one
        // that fails another check is dead-lettered, and stays refused).
        if let Some(dates) = dates {
            dates
                .check(event.at_ms)
                .map_err(|e| SyncRefusal::OutOfWindow {
                    id: event.id,
                    reason: e.to_string(),
                })?;
        }
    }
    Ok(explained)
}

/// Records the EPCs of a new event: one row each, and the tag's new state
/// (validated by [`check_events`]).
fn record_epcs<S: HubReplica>(
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
        let state = store.epc_state(epc)?.unwrap_or_default();
        match event.kind {
            EventKind::Sale { .. } => {
                let (next, newly_double) = state.after_sale(line.gtin);
                store.put_epc(epc, EpcMove::Sale, &record, &next)?;
                if newly_double {
                    outcome.double_sales.push(DoubleSale {
                        epc: epc.clone(),
                        sales: store.epc_sales(epc, MAX_LISTED_SALES)?,
                    });
                }
            }
            EventKind::Return { .. } => {
                // Checked before anything was written; a tag that fails it
                // here would be a bug, and is recorded as it is.
                let next = state.after_return(epc, line.gtin).unwrap_or(EpcState {
                    returns: state.returns.saturating_add(1),
                    ..state
                });
                store.put_epc(epc, EpcMove::Return, &record, &next)?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// The demand the hub acts on: each item's reported units, in order, as
/// long as the total stays within the units the store reports it lost in
/// refused sales (the sum over reasons of its cumulative `lost` totals,
/// each reason once).
/// A store cannot draw on the hub's reserve by demand it does not also
/// report as refused sales, which the hub shows per store.
pub fn effective_demand(demand: &[Demand], lost: &[LostSales]) -> BTreeMap<Gtin, u64> {
    let mut totals = crate::lost::ByReason::<crate::lost::Lost>::default();
    totals.merge(lost); // a reason listed twice counts once
    let mut left = crate::lost::REASONS
        .iter()
        .fold(0u64, |sum, &r| sum.saturating_add(totals.get(r).units));
    let mut out = BTreeMap::new();
    for d in demand {
        let units = d.units.min(left);
        left -= units;
        if units > 0 {
            out.insert(d.gtin, units);
        }
    }
    out
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
        // Within the hub's bounds (`limits::check_demand`); what is left
        // out stays for the next request (the store subtracts only what it
        // sent).
        demand: demand
            .iter()
            .filter(|(_, &units)| units > 0)
            .take(limits::MAX_DEMAND_ITEMS)
            .map(|(&gtin, &units)| Demand {
                gtin,
                units: units.min(limits::MAX_DEMAND_UNITS),
            })
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
/// store's outstanding refused demand per item; `unsynced`, what its
/// events after the response's acknowledgement add: it gives the hub only
/// rights the hub can explain ([`Unsynced::explainable_rights`]). Safe to
/// call with a stale, duplicated or reordered response.
pub fn store_apply<S: ReplicaStore>(
    store: &mut S,
    who: &Identity,
    cursors: &mut SyncCursors,
    resp: &SyncResponse,
    own_changes: impl IntoIterator<Item = Gtin>,
    demand: &BTreeMap<Gtin, u64>,
    unsynced: &Unsynced,
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
            let n = n.min(unsynced.explainable_rights(&c, &who.replica, gtin));
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
    /// Sold EPCs (as a store keeps them, and the hub's rows per event).
    pub epcs: crate::epcs::EpcLedger,
    /// The hub's state per EPC ([`HubReplica`]).
    pub epc_states: BTreeMap<Epc, EpcState>,
    /// The hub's sums of what each store's events explain ([`HubReplica`]).
    pub explained: BTreeMap<ItemKey, Explained>,
}

impl HubReplica for MemoryReplica {
    fn has_event(&self, id: &EventId) -> Result<bool, Self::Error> {
        Ok(self.journal.get(id).is_some())
    }

    fn epc_state(&self, epc: &Epc) -> Result<Option<EpcState>, Self::Error> {
        Ok(self.epc_states.get(epc).copied())
    }

    fn put_epc(
        &mut self,
        epc: &Epc,
        movement: EpcMove,
        record: &EpcRecord,
        state: &EpcState,
    ) -> Result<(), Self::Error> {
        match movement {
            EpcMove::Sale => {
                self.epcs.record_sale(epc, record.clone());
            }
            EpcMove::Return => self.epcs.record_return(epc, record.clone()),
        }
        self.epc_states.insert(epc.clone(), *state);
        Ok(())
    }

    fn epc_sales(&self, epc: &Epc, limit: usize) -> Result<Vec<EpcRecord>, Self::Error> {
        Ok(self
            .epcs
            .get(epc)
            .map(|h| h.sales.iter().take(limit).cloned().collect())
            .unwrap_or_default())
    }

    fn explained(&self, key: &ItemKey) -> Result<Explained, Self::Error> {
        Ok(self.explained.get(key).copied().unwrap_or_default())
    }

    fn put_explained(&mut self, key: &ItemKey, explained: Explained) -> Result<(), Self::Error> {
        self.explained.insert(key.clone(), explained);
        Ok(())
    }
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
