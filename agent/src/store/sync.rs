//! The store's side of a sync exchange: the request, built from one
//! snapshot ([`AgentDb::sync_request`]), and the writes the committer
//! runs outside the command core's `Ledger`, each in its write
//! transaction: applying the hub's answer ([`apply_sync`]), dead-lettering
//! an event ([`dead_letter`]) and storing catalog items
//! ([`put_catalog`]).

use std::collections::BTreeMap;

use tally_store::redb::ReadableTable;
use tally_store::{StoreError, WriteTxn};
use tally_sync::exchange::{store_apply, store_request, Identity};
use tally_sync::explain::Unsynced;
use tally_sync::limits::MAX_DELTA_ENTRIES;
use tally_sync::message::CatalogItem;
use tally_sync::{EventId, Gtin, SyncRequest, SyncResponse};

use super::tables::{
    cursors_from, pin_outbox_seq, read_cursors, read_demand, read_lost, set_demand, storage,
    AGENT_META, CURSOR_KEYS, DEAD_LETTER, DEMAND,
};
use super::AgentDb;
use crate::outbox::{self, OUTBOX};

impl AgentDb {
    /// The next sync request, built from ONE snapshot so the delta, its
    /// version, the events and the cursors agree (docs/sync.md): own
    /// counter entries changed since the hub's last ack, at most
    /// `max_events` outbox events after the acked sequence (the delta held
    /// back while more remain: `SyncRequest::holding_delta_back`), refused demand
    /// and the totals of sales lost by reason (cumulative: the hub keeps
    /// the largest it saw, so nothing is subtracted on its answer).
    pub fn sync_request(&self, max_events: usize) -> Result<SyncRequest, StoreError> {
        self.sync_page(max_events).map(|page| page.request)
    }

    /// [`Self::sync_request`], with whether more of the delta waits: the
    /// delta is a page of at most [`MAX_DELTA_ENTRIES`] changed counters,
    /// oldest change first (the hub refuses more in one request).
    pub fn sync_page(&self, max_events: usize) -> Result<SyncPage, StoreError> {
        let txn = self.read()?;
        let cursors = read_cursors(&txn)?;
        let (delta, delta_version) = txn.delta_since(
            &self.who().location,
            cursors.acked_delta_version,
            MAX_DELTA_ENTRIES,
        )?;
        let more_delta = delta.len() >= MAX_DELTA_ENTRIES;
        let outbox = txn.raw().open_table(OUTBOX).map_err(storage)?;
        let mut events = Vec::new();
        let mut events_upto = cursors.acked_events_upto;
        let max_events = max_events.max(1);
        let mut entries =
            outbox::entries_after(&outbox, cursors.acked_events_upto, max_events + 1)?;
        // More events than one request holds: the delta waits for the
        // request carrying the last of them (the hub refuses own entries
        // its events do not explain).
        let more_events = entries.len() > max_events;
        entries.truncate(max_events);
        for (seq, id) in entries {
            let event = txn.event(&id)?.ok_or_else(|| StoreError::Corrupt {
                table: "agent_outbox_runs",
                detail: format!("outbox entry {seq} names missing event {id}"),
            })?;
            events.push(event);
            events_upto = seq;
        }
        let req = store_request(
            self.who(),
            &cursors,
            delta.owned_by(&self.who().replica),
            delta_version,
            events,
            events_upto,
            &read_demand(&txn)?,
        )
        .with_lost(&read_lost(&txn)?);
        Ok(if more_events {
            SyncPage {
                request: req.holding_delta_back(cursors.acked_delta_version),
                more: true,
            }
        } else {
            SyncPage {
                request: req,
                more: more_delta,
            }
        })
    }
}

/// One sync request and whether more waits behind it (outbox events or
/// delta pages it could not carry).
#[derive(Debug, Clone)]
pub struct SyncPage {
    /// The request.
    pub request: SyncRequest,
    /// Whether more waits: send again once this one is answered.
    pub more: bool,
}

/// What applying a sync response did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncApplied {
    /// Counters the hub's entries changed here.
    pub merged: usize,
    /// Rights given to the hub for its online reserve, per item.
    pub given: Vec<(Gtin, u64)>,
    /// Outbox entries the hub acknowledged and that were removed.
    pub acked: u64,
    /// Events the hub refused for good that dead-lettering took out of
    /// the outbox (those its acknowledgement took out are in `acked`).
    pub dead_lettered: usize,
    /// Catalog items that changed.
    pub catalog_changed: usize,
}

/// Applies the hub's answer to `req` in `txn` (no [`AgentTxn`](super::AgentTxn) may be
/// open on it): `store_apply` (merge, cursors, reserve transfers),
/// persisted cursors, acknowledged outbox entries removed, refused events
/// dead-lettered, the request's demand subtracted, catalog upserted.
/// Safe with a stale, duplicated or reordered response.
pub fn apply_sync(
    txn: &WriteTxn,
    who: &Identity,
    req: &SyncRequest,
    resp: &SyncResponse,
) -> Result<SyncApplied, StoreError> {
    // The hub acknowledges at most what this request carried: an answer
    // acknowledging more (a hub bug, a mixed-up response) must not take
    // unsent events out of the outbox.
    let capped;
    let resp = if resp.acked_events_upto > req.events_upto {
        tracing::warn!(
            acked = resp.acked_events_upto,
            sent = req.events_upto,
            "The hub acknowledged events beyond those sent; taking only those sent."
        );
        capped = SyncResponse {
            acked_events_upto: req.events_upto,
            ..resp.clone()
        };
        &capped
    } else {
        resp
    };
    let raw = txn.raw();
    let mut out = SyncApplied::default();
    {
        let mut meta = raw.open_table(AGENT_META).map_err(storage)?;
        let mut cursors = cursors_from(&meta)?;
        let mut demand = raw.open_table(DEMAND).map_err(storage)?;
        let mut current: BTreeMap<Gtin, u64> = BTreeMap::new();
        for row in demand.iter().map_err(storage)? {
            let (k, v) = row.map_err(storage)?;
            if let Ok(g) = Gtin::from_u64(k.value()) {
                current.insert(g, v.value());
            }
        }
        let unsynced = unsynced_after(txn, cursors.acked_events_upto.max(resp.acked_events_upto))?;
        let mut replica = txn.replica()?;
        let applied = store_apply(
            &mut replica,
            who,
            &mut cursors,
            resp,
            req.delta.entries.iter().map(|e| e.key.gtin),
            &current,
            &unsynced,
        )?;
        drop(replica);
        out.merged = applied.merged;
        out.given = applied.given;
        for (key, value) in CURSOR_KEYS.iter().zip([
            cursors.acked_delta_version,
            cursors.acked_events_upto,
            cursors.hub_cursor,
            cursors.catalog_cursor,
        ]) {
            meta.insert(*key, value).map_err(storage)?;
        }
        // The hub committed everything up to the ack: only now may the
        // outbox let go of it.
        let mut outbox = raw.open_table(OUTBOX).map_err(storage)?;
        pin_outbox_seq(&mut meta, &outbox)?;
        out.acked = outbox::remove_upto(&mut outbox, cursors.acked_events_upto)?;
        // The hub has acted on the demand this request carried.
        for d in &req.demand {
            let left = current
                .get(&d.gtin)
                .copied()
                .unwrap_or(0)
                .saturating_sub(d.units);
            set_demand(&mut demand, d.gtin, left)?;
        }
    }
    for rejected in &resp.rejected_events {
        // Counted once: a rejected event the ack already took out of the
        // outbox is dead-lettered, but the outbox depth fell already.
        if dead_letter(txn, rejected.id, &rejected.reason)? {
            out.dead_lettered += 1;
        }
    }
    out.catalog_changed = put_catalog(txn, &resp.catalog)?;
    Ok(out)
}

/// What the outbox's events after the hub's last acknowledgement add to
/// this store's own stock ([`Unsynced`]): rights the hub cannot explain
/// yet, so none the store may give it. Reads at most
/// [`Unsynced::MAX_EVENTS`] + 1 events.
pub fn unsynced(txn: &WriteTxn) -> Result<Unsynced, StoreError> {
    let acked = {
        let meta = txn.raw().open_table(AGENT_META).map_err(storage)?;
        cursors_from(&meta)?.acked_events_upto
    };
    unsynced_after(txn, acked)
}

/// [`unsynced`] for the events after sequence number `acked`.
fn unsynced_after(txn: &WriteTxn, acked: u64) -> Result<Unsynced, StoreError> {
    let outbox = txn.raw().open_table(OUTBOX).map_err(storage)?;
    let replica = txn.replica()?;
    let mut out = Unsynced::none();
    outbox::for_each_after(&outbox, acked, |seq, id| {
        let event = replica.event(&id)?.ok_or_else(|| StoreError::Corrupt {
            table: "agent_outbox_runs",
            detail: format!("outbox entry {seq} names missing event {id}"),
        })?;
        Ok(out.add(&event))
    })?;
    Ok(out)
}

/// Moves an event the hub will never accept out of the outbox into the
/// dead-letter table (the event itself stays recorded locally).
pub fn dead_letter(txn: &WriteTxn, id: EventId, reason: &str) -> Result<bool, StoreError> {
    let raw = txn.raw();
    let mut outbox = raw.open_table(OUTBOX).map_err(storage)?;
    pin_outbox_seq(&mut raw.open_table(AGENT_META).map_err(storage)?, &outbox)?;
    let found = outbox::remove_id(&mut outbox, id)?;
    raw.open_table(DEAD_LETTER)
        .map_err(storage)?
        .insert(id.0.as_u128(), reason.as_bytes())
        .map_err(storage)?;
    Ok(found.is_some())
}

/// Stores catalog items in `txn` (no [`AgentTxn`](super::AgentTxn) may be open on it);
/// returns how many changed.
pub fn put_catalog(txn: &WriteTxn, items: &[CatalogItem]) -> Result<usize, StoreError> {
    let mut changed = 0;
    for item in items {
        if txn.put_catalog_item(item)? {
            changed += 1;
        }
    }
    Ok(changed)
}
