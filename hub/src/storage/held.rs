//! Events a sync refused, held for HQ to review: the way out for a store
//! whose event the hub refused.
//!
//! A store's events are recorded for good: once the hub refuses one (most
//! often an event dated beyond the hub's window by a store clock that ran
//! ahead), the store dead-letters it, but its own counter entries still
//! carry the event's effect, which no other event explains, so every
//! later sync of that store is refused (`forbidden_update`). The hub
//! therefore keeps each refused event here with why, and raises an
//! `event_held` exception; HQ reviews it and admits it
//! (`POST /v1/held/{id}/admit`): admitted, it is checked like any synced
//! event except for its date ([`tally_sync::exchange::hub_admit_held`])
//! and stored, and the store's next sync goes through.
//!
//! Table `hub_held_events`: event id → [`HeldEvent`] (JSON). At most
//! [`MAX_HELD_PER_STORE`] per store (`hub_held_count`: store → count), so
//! a hostile store cannot grow it without bound; one more refused event is
//! answered as ever and not kept.

use serde::{Deserialize, Serialize};
use tally_store::redb::{ReadableTable, TableDefinition};
use tally_store::{ReadTxn, StoreError, WriteTxn};
use tally_sync::exchange::{hub_admit_held, HandleError, Identity, SyncRefusal};
use tally_sync::{Event, EventId, LocationId, ReplicaId, SyncRequest};

use super::redb::txn::RedbTxn;
use super::redb::{append_exceptions, from_json, new_event_exceptions, redb_err, to_json};
use super::{ExceptionRecord, StorageError};

pub(super) const HELD: TableDefinition<u128, &[u8]> = TableDefinition::new("hub_held_events");
pub(super) const HELD_COUNT: TableDefinition<&str, u64> = TableDefinition::new("hub_held_count");

/// Most refused events the hub holds per store.
pub const MAX_HELD_PER_STORE: u64 = 100;

/// A refused event, as held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldEvent {
    /// The store whose certificate sent it (its replica id).
    pub store: String,
    /// That store's location.
    pub location: String,
    /// Why the sync refused it.
    pub reason: String,
    /// When the hub refused it (hub clock, Unix ms).
    pub held_at_ms: u64,
    /// The event as sent.
    pub event: Event,
}

/// What became of a request to admit a held event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdmitResult {
    /// Checked and stored; no longer held.
    Admitted {
        /// The store it belongs to.
        store: String,
    },
    /// No event with that id is held.
    NotHeld,
    /// Still refused, for a reason other than its date; still held.
    Refused(String),
}

/// Holds the event a sync was refused for (`refusal`), with why, and
/// raises an `event_held` exception; nothing if the refusal names no
/// event of `req`, the event is already held, or the store holds
/// [`MAX_HELD_PER_STORE`]. Returns whether it was held now.
pub(super) fn hold(
    txn: &WriteTxn,
    who: &Identity,
    req: &SyncRequest,
    refusal: &SyncRefusal,
    now_ms: u64,
) -> Result<bool, StoreError> {
    let SyncRefusal::Event { id, reason } = refusal else {
        return Ok(false);
    };
    let Some(event) = req.events.iter().find(|e| e.id == *id) else {
        return Ok(false);
    };
    let raw = txn.raw();
    let store = who.replica.to_string();
    let mut counts = raw.open_table(HELD_COUNT).map_err(redb_err)?;
    let held = counts
        .get(store.as_str())
        .map_err(redb_err)?
        .map_or(0, |v| v.value());
    let mut table = raw.open_table(HELD).map_err(redb_err)?;
    if held >= MAX_HELD_PER_STORE || table.get(id.0.as_u128()).map_err(redb_err)?.is_some() {
        return Ok(false);
    }
    let record = HeldEvent {
        store: store.clone(),
        location: who.location.to_string(),
        reason: reason.clone(),
        held_at_ms: now_ms,
        event: event.clone(),
    };
    table
        .insert(
            id.0.as_u128(),
            to_json("hub_held_events", &record)?.as_slice(),
        )
        .map_err(redb_err)?;
    counts.insert(store.as_str(), held + 1).map_err(redb_err)?;
    drop((table, counts));
    append_exceptions(
        txn,
        vec![ExceptionRecord {
            id: 0,
            kind: "event_held".into(),
            store,
            event_ids: vec![*id],
            at_ms: event.at_ms,
            detected_at_ms: now_ms,
            detail: serde_json::json!({
                "reason": reason,
                "event_kind": event.kind.name(),
                "admit": format!("POST /v1/held/{id}/admit"),
            }),
        }],
    )?;
    Ok(true)
}

/// Admits the held event `id` (see the module docs), in `txn`.
pub(super) fn admit(txn: &WriteTxn, id: EventId, now_ms: u64) -> Result<AdmitResult, StorageError> {
    let raw = txn.raw();
    let held: HeldEvent = {
        let table = raw.open_table(HELD).map_err(redb_err)?;
        let value = table.get(id.0.as_u128()).map_err(redb_err)?;
        match value {
            Some(v) => from_json("hub_held_events", v.value())?,
            None => return Ok(AdmitResult::NotHeld),
        }
    };
    let who = Identity {
        replica: ReplicaId::new(&held.store)
            .map_err(|e| super::redb::corrupt("hub_held_events", e))?,
        location: LocationId::new(&held.location)
            .map_err(|e| super::redb::corrupt("hub_held_events", e))?,
    };
    let mut replica = RedbTxn::new(txn);
    let outcome = match hub_admit_held(&mut replica, &who, &held.event) {
        Ok(outcome) => outcome,
        Err(HandleError::Refused(r)) => return Ok(AdmitResult::Refused(r.to_string())),
        Err(HandleError::Storage(e)) => return Err(e),
    };
    // What the event raises, as if it had synced.
    let mut exceptions = if outcome.new_events.is_empty() {
        Vec::new()
    } else {
        new_event_exceptions(&replica, &held.store, &[&held.event], &outcome, now_ms)?
    };
    drop(replica);
    raw.open_table(HELD)
        .map_err(redb_err)?
        .remove(id.0.as_u128())
        .map_err(redb_err)?;
    let mut counts = raw.open_table(HELD_COUNT).map_err(redb_err)?;
    let left = counts
        .get(held.store.as_str())
        .map_err(redb_err)?
        .map_or(0, |v| v.value())
        .saturating_sub(1);
    counts.insert(held.store.as_str(), left).map_err(redb_err)?;
    drop(counts);
    exceptions.insert(
        0,
        ExceptionRecord {
            id: 0,
            kind: "event_admitted".into(),
            store: held.store.clone(),
            event_ids: vec![id],
            at_ms: held.event.at_ms,
            detected_at_ms: now_ms,
            detail: serde_json::json!({ "reason": held.reason }),
        },
    );
    append_exceptions(txn, exceptions)?;
    Ok(AdmitResult::Admitted { store: held.store })
}

/// Held events, in id order, at most `limit`.
pub(super) fn list(txn: &ReadTxn, limit: usize) -> Result<Vec<HeldEvent>, StoreError> {
    let table = txn.raw().open_table(HELD).map_err(redb_err)?;
    let mut out = Vec::new();
    for row in table.iter().map_err(redb_err)?.take(limit) {
        let (_, v) = row.map_err(redb_err)?;
        out.push(from_json("hub_held_events", v.value())?);
    }
    Ok(out)
}
