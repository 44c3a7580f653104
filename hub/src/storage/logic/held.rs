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
//! An event refused for its date (`SyncRefusal::OutOfWindow`) is not
//! dead-lettered by the store: it stays in its outbox and is sent again.
//! Admitting it also lets that store's events be dated as far from the
//! hub's clock as the held event was when it was refused
//! ([`HeldEvent::clock_offset_ms`]: the store's clock then, as near as
//! the hub can tell, and what HQ sees before it admits), and an hour
//! more, for a week ([`tally_sync::limits::DateAllowance`], in the
//! store's record): a clock that ran three days ahead dated every sale
//! since three days ahead, and HQ admits one of them, not each, however
//! long after. Only the held event's own date counts: a store cannot
//! widen what HQ grants with other events.
//!
//! At most [`MAX_HELD_PER_STORE`] are held per store, so a hostile store
//! cannot grow them without bound; one more refused event is answered as
//! ever and not kept.

use serde::{Deserialize, Serialize};
use tally_sync::exchange::{hub_admit_held, HandleError, Identity, SyncRefusal};
use tally_sync::limits::{offset_ms, DateAllowance, DateWindow};
use tally_sync::{Event, EventId, LocationId, ReplicaId, SyncRequest};

use super::exceptions::new_event_exceptions;
use crate::storage::txn::HubTxn;
use crate::storage::{ExceptionRecord, StorageError, StoreRecord};

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

impl HeldEvent {
    /// For an event refused for its date (outside the usual window when
    /// it was held): its date less the hub's clock then, ms (positive:
    /// ahead), the store's clock as near as the hub can tell. What
    /// admitting it lets the store's events be dated, for a while.
    pub fn clock_offset_ms(&self) -> Option<i64> {
        DateWindow::at(self.held_at_ms)
            .check(self.event.at_ms)
            .is_err()
            .then(|| offset_ms(self.event.at_ms, self.held_at_ms))
    }
}

/// What became of a request to admit a held event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdmitResult {
    /// Checked and stored; no longer held.
    Admitted {
        /// The store it belongs to.
        store: String,
        /// The store's allowance for dates past the usual window, if the
        /// event was dated past it (widened to cover it).
        dates_allowed: Option<DateAllowance>,
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
pub(crate) fn hold<T: HubTxn>(
    txn: &mut T,
    who: &Identity,
    req: &SyncRequest,
    refusal: &SyncRefusal,
    now_ms: u64,
) -> Result<bool, StorageError> {
    let (SyncRefusal::Event { id, reason } | SyncRefusal::OutOfWindow { id, reason }) = refusal
    else {
        return Ok(false);
    };
    let Some(event) = req.events.iter().find(|e| e.id == *id) else {
        return Ok(false);
    };
    let store = who.replica.to_string();
    let held = txn.held_count(&store)?;
    if held >= MAX_HELD_PER_STORE || txn.held_event(*id)?.is_some() {
        return Ok(false);
    }
    let record = HeldEvent {
        store: store.clone(),
        location: who.location.to_string(),
        reason: reason.clone(),
        held_at_ms: now_ms,
        event: event.clone(),
    };
    txn.put_held(&record)?;
    txn.put_held_count(&store, held + 1)?;
    txn.append_exceptions(vec![ExceptionRecord {
        id: 0,
        kind: "event_held".into(),
        store,
        event_ids: vec![*id],
        at_ms: event.at_ms,
        detected_at_ms: now_ms,
        acknowledged: None,
        detail: serde_json::json!({
            "reason": reason,
            "event_kind": event.kind.name(),
            "admit": format!("POST /v1/held/{id}/admit"),
        }),
    }])?;
    Ok(true)
}

/// Admits the held event `id` (see the module docs), in `txn`.
pub(crate) fn admit<T: HubTxn>(
    txn: &mut T,
    id: EventId,
    now_ms: u64,
) -> Result<AdmitResult, StorageError> {
    let Some(held) = txn.held_event(id)? else {
        return Ok(AdmitResult::NotHeld);
    };
    let who = Identity {
        replica: ReplicaId::new(&held.store)
            .map_err(|e| StorageError::corrupt("hub_held_events", e))?,
        location: LocationId::new(&held.location)
            .map_err(|e| StorageError::corrupt("hub_held_events", e))?,
    };
    let outcome = match hub_admit_held(txn, &who, &held.event) {
        Ok(outcome) => outcome,
        Err(HandleError::Refused(r)) => return Ok(AdmitResult::Refused(r.to_string())),
        Err(HandleError::Storage(e)) => return Err(e),
    };
    // What the event raises, as if it had synced.
    let mut exceptions = if outcome.new_events.is_empty() {
        Vec::new()
    } else {
        new_event_exceptions(&*txn, &held.store, &[&held.event], &outcome, now_ms)?
    };
    txn.remove_held(id)?;
    let left = txn.held_count(&held.store)?.saturating_sub(1);
    txn.put_held_count(&held.store, left)?;
    // Held for its date: the store's events dated alike (as far from
    // the hub's clock as this one was when refused) go through for a
    // while, without HQ admitting each.
    let dates_allowed = match held.clock_offset_ms() {
        Some(clock) => {
            let mut record = txn
                .store_record(&held.store)?
                .unwrap_or_else(|| StoreRecord::new(&held.store));
            let allowed = record
                .dates_allowed
                .unwrap_or_default()
                .covering(clock, now_ms);
            record.dates_allowed = Some(allowed);
            txn.put_store_record(&record)?;
            Some(allowed)
        }
        None => None,
    };
    exceptions.insert(
        0,
        ExceptionRecord {
            id: 0,
            kind: "event_admitted".into(),
            store: held.store.clone(),
            event_ids: vec![id],
            at_ms: held.event.at_ms,
            detected_at_ms: now_ms,
            acknowledged: None,
            detail: serde_json::json!({
                "reason": held.reason,
                "dates_allowed": dates_allowed,
            }),
        },
    );
    txn.append_exceptions(exceptions)?;
    Ok(AdmitResult::Admitted {
        store: held.store,
        dates_allowed,
    })
}
