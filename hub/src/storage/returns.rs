//! Returns across stores and channels at the hub (issue 22): the chain-wide
//! bound of what may come back against a sale or an online order.
//!
//! - `check` answers a store's `POST /v1/returns/check`: it finds the
//!   original (the sale or order event named, a web order by its id, or the
//!   last sale of a returned tag), bounds the return by it net of every
//!   return anywhere (`tally_sync::command::return_lines`, the rule the
//!   stores run), and *claims* the units under the return's id until the
//!   return's event arrives (a claim not redeemed within a day stops
//!   counting).
//! - `on_return` counts every return event that arrives (from any store,
//!   checked or not) against its original, redeeming its claim, and raises
//!   `return_exceeds_sale` when the original's units are exceeded (a
//!   return a store accepted offline).
//!
//! Tables: `hub_returned` ((original, gtin) → units returned) and
//! `hub_return_claims` ((original, return id) → [`Claim`], JSON): both a
//! range per original, so a check costs the returns against that one
//! sale, not the chain's history. `hub_cross_store_returns` keeps each
//! return taken at another store than its sale's, or of a web order, by
//! time, for HQ (`GET /v1/returns`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tally_store::redb::{ReadableTable, TableDefinition};
use tally_store::{StoreError, WriteTxn};
use tally_sync::command::{return_lines, LineIn, OriginalSale};
use tally_sync::exchange::HubReplica;
use tally_sync::returns::{ItemUnits, ReturnCheck, ReturnCheckRequest, SoldTag};
use tally_sync::{Event, EventId, EventKind, Gtin, Refusal};

use super::redb::txn::RedbTxn;
use super::redb::{from_json, redb_err, to_json};
use super::txn::HubTxn;
use super::{ExceptionRecord, StorageError};

pub(super) const RETURNED: TableDefinition<(u128, u64), u64> = TableDefinition::new("hub_returned");
pub(super) const CLAIMS: TableDefinition<(u128, u128), &[u8]> =
    TableDefinition::new("hub_return_claims");
/// Return event id (UUIDv7: time order) → [`CrossReturn`] (JSON): the
/// returns taken at another store than their sale's, or of a web order.
pub(super) const CROSS: TableDefinition<u128, &[u8]> =
    TableDefinition::new("hub_cross_store_returns");

/// A return across stores or channels, as HQ lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrossReturn {
    /// The return's event.
    pub return_id: EventId,
    /// The store that took it back.
    pub store: tally_sync::LocationId,
    /// The sale or online order it names.
    pub original_id: EventId,
    /// Where that was sold (an online order: the store it was taken from).
    pub original_store: tally_sync::LocationId,
    /// `sale` or `order` (a web order).
    pub original_kind: String,
    /// Units per item it took back.
    pub units: Vec<ItemUnits>,
    /// Its refund, in minor units.
    pub refund_minor: i64,
    /// Whether the hub checked it before it was taken (else taken offline).
    pub checked: bool,
    /// When the store recorded it (its clock, Unix ms).
    pub at_ms: u64,
}

/// How long a claim counts without its return's event arriving.
pub const CLAIM_TTL_MS: u64 = 24 * 3_600_000;

/// Units a checked return holds against its original until it arrives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// Units per item.
    pub units: Vec<ItemUnits>,
    /// When the hub checked it (hub clock, Unix ms).
    pub at_ms: u64,
}

/// What the hub answers a store's check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckResult {
    /// Within the bound; the units are held for this return.
    Authorized(Box<ReturnCheck>),
    /// The hub knows no original for it (not named, not synced yet, or
    /// not a sale or an order).
    UnknownOriginal(String),
    /// Beyond the bound, or not returnable: nothing held.
    Refused(Refusal),
}

/// The original `req` names: by event, by web order (the allocation or
/// order event that took the first line's item), or by the last sale of
/// its first tag.
fn original(txn: &WriteTxn, req: &ReturnCheckRequest) -> Result<Option<Event>, StorageError> {
    let replica = RedbTxn::new(txn);
    if let Some(id) = req.original_sale {
        return replica.event(&id);
    }
    if let Some(order_id) = &req.order_id {
        let first = req.lines.first().map(|l| l.gtin);
        let mut ids: Vec<EventId> = Vec::new();
        drop(replica);
        if let Some(order) = super::routed::read_in(txn, order_id)? {
            ids.extend(order.allocations.iter().map(|a| a.event_id));
        }
        ids.extend(super::redb::store_named_order_event(txn, order_id)?);
        let replica = RedbTxn::new(txn);
        for id in ids {
            if let Some(e) = replica.event(&id)? {
                if first.is_none_or(|g| e.lines.iter().any(|l| l.gtin == g)) {
                    return Ok(Some(e));
                }
            }
        }
        return Ok(None);
    }
    let Some(epc) = req.lines.iter().find_map(|l| l.epc.as_ref()) else {
        return Ok(None);
    };
    let last = super::redb::content::last_sale_of(txn, epc)?;
    match last {
        Some(id) => replica.event(&id),
        None => Ok(None),
    }
}

/// Units returned against `original` (events the hub holds, and claims
/// younger than [`CLAIM_TTL_MS`] other than `except`'s).
fn returned_before(
    txn: &WriteTxn,
    original: EventId,
    except: EventId,
    now_ms: u64,
) -> Result<BTreeMap<Gtin, u64>, StoreError> {
    let o = original.0.as_u128();
    let mut out: BTreeMap<Gtin, u64> = BTreeMap::new();
    let returned = txn.raw().open_table(RETURNED).map_err(redb_err)?;
    for row in returned
        .range((o, 0u64)..=(o, u64::MAX))
        .map_err(redb_err)?
    {
        let (k, v) = row.map_err(redb_err)?;
        if let Ok(g) = Gtin::from_u64(k.value().1) {
            *out.entry(g).or_default() += v.value();
        }
    }
    let claims = txn.raw().open_table(CLAIMS).map_err(redb_err)?;
    for row in claims
        .range((o, 0u128)..=(o, u128::MAX))
        .map_err(redb_err)?
    {
        let (k, v) = row.map_err(redb_err)?;
        if k.value().1 == except.0.as_u128() {
            continue;
        }
        let claim: Claim = from_json("hub_return_claims", v.value())?;
        if now_ms.saturating_sub(claim.at_ms) > CLAIM_TTL_MS {
            continue;
        }
        for u in claim.units {
            let r = out.entry(u.gtin).or_default();
            *r = r.saturating_add(u.units);
        }
    }
    Ok(out)
}

/// Checks and claims a store's return (see the module docs).
pub(super) fn check(
    txn: &WriteTxn,
    req: &ReturnCheckRequest,
    now_ms: u64,
) -> Result<CheckResult, StorageError> {
    let Some(original) = original(txn, req)? else {
        return Ok(CheckResult::UnknownOriginal(
            "no sale or online order the hub holds matches this return".into(),
        ));
    };
    if !matches!(
        original.kind,
        EventKind::Sale { .. } | EventKind::Order { .. }
    ) {
        return Ok(CheckResult::UnknownOriginal(format!(
            "event {} is a {}, not a sale or an online order",
            original.id,
            original.kind.name()
        )));
    }
    let returned = returned_before(txn, original.id, req.return_id, now_ms)?;
    let lines: Vec<LineIn> = req
        .lines
        .iter()
        .map(|l| LineIn {
            gtin: l.gtin,
            qty: l.qty,
            unit_price_minor: None,
            price_from_label: false,
            epc: l.epc.clone(),
        })
        .collect();
    let sale = OriginalSale {
        event: original.clone(),
        returned: returned.clone(),
    };
    if let Err(refusal) = return_lines(&lines, &sale) {
        return Ok(CheckResult::Refused(refusal));
    }
    // Each tag must be sold now (chain-wide), as the item the line names.
    let replica = RedbTxn::new(txn);
    let mut tags = Vec::new();
    for l in &req.lines {
        let Some(epc) = &l.epc else { continue };
        let state = replica.epc_state(epc)?.unwrap_or_default();
        if let Err(e) = state.after_return(epc, l.gtin) {
            return Ok(CheckResult::Refused(Refusal::Invalid(e.to_string())));
        }
        tags.push(SoldTag {
            epc: epc.clone(),
            gtin: l.gtin,
        });
    }
    drop(replica);
    let mut units: BTreeMap<Gtin, u64> = BTreeMap::new();
    for l in &req.lines {
        *units.entry(l.gtin).or_default() += l.qty;
    }
    let claim = Claim {
        units: units
            .into_iter()
            .map(|(gtin, units)| ItemUnits { gtin, units })
            .collect(),
        at_ms: now_ms,
    };
    txn.raw()
        .open_table(CLAIMS)
        .map_err(redb_err)?
        .insert(
            (original.id.0.as_u128(), req.return_id.0.as_u128()),
            to_json("hub_return_claims", &claim)?.as_slice(),
        )
        .map_err(redb_err)?;
    Ok(CheckResult::Authorized(Box::new(ReturnCheck {
        original,
        returned: returned
            .into_iter()
            .map(|(gtin, units)| ItemUnits { gtin, units })
            .collect(),
        tags,
    })))
}

/// Counts a new return `event` (just stored, from any store) against its
/// original: redeems its claim, adds its units, and answers the
/// `return_exceeds_sale` exception when the original's units are
/// exceeded.
pub(super) fn on_return(
    txn: &WriteTxn,
    event: &Event,
    now_ms: u64,
) -> Result<Option<ExceptionRecord>, StorageError> {
    let EventKind::Return {
        original_sale: Some(original),
    } = &event.kind
    else {
        return Ok(None);
    };
    let o = original.0.as_u128();
    let checked = txn
        .raw()
        .open_table(CLAIMS)
        .map_err(redb_err)?
        .remove((o, event.id.0.as_u128()))
        .map_err(redb_err)?
        .is_some();
    let mut over = Vec::new();
    let found = RedbTxn::new(txn).event(original)?;
    let sold: BTreeMap<Gtin, u64> = match &found {
        Some(e) if matches!(e.kind, EventKind::Sale { .. } | EventKind::Order { .. }) => {
            tally_sync::ledger::units_per_item(&e.lines)
        }
        // Not (yet) at the hub: counted, checked when a later return
        // against it arrives.
        _ => BTreeMap::new(),
    };
    if let Some(orig) = &found {
        let web = matches!(orig.kind, EventKind::Order { .. });
        if web || orig.location != event.location {
            let cross = CrossReturn {
                return_id: event.id,
                store: event.location.clone(),
                original_id: orig.id,
                original_store: orig.location.clone(),
                original_kind: if web { "order" } else { "sale" }.into(),
                units: tally_sync::ledger::units_per_item(&event.lines)
                    .into_iter()
                    .map(|(gtin, units)| ItemUnits { gtin, units })
                    .collect(),
                refund_minor: event.total_minor(),
                checked,
                at_ms: event.at_ms,
            };
            txn.raw()
                .open_table(CROSS)
                .map_err(redb_err)?
                .insert(
                    event.id.0.as_u128(),
                    to_json("hub_cross_store_returns", &cross)?.as_slice(),
                )
                .map_err(redb_err)?;
        }
    }
    let known = !sold.is_empty();
    {
        let mut table = txn.raw().open_table(RETURNED).map_err(redb_err)?;
        for (gtin, units) in tally_sync::ledger::units_per_item(&event.lines) {
            let key = (o, gtin.as_u64());
            let total = table
                .get(key)
                .map_err(redb_err)?
                .map_or(0, |v| v.value())
                .saturating_add(units);
            table.insert(key, total).map_err(redb_err)?;
            let sold_units = sold.get(&gtin).copied().unwrap_or(0);
            if known && total > sold_units {
                over.push(serde_json::json!({
                    "gtin": gtin, "returned": total, "sold": sold_units,
                }));
            }
        }
    }
    Ok((!over.is_empty()).then(|| ExceptionRecord {
        id: 0,
        kind: "return_exceeds_sale".into(),
        store: event.location.to_string(),
        event_ids: vec![event.id, *original],
        at_ms: event.at_ms,
        detected_at_ms: now_ms,
        detail: serde_json::json!({
            "original_sale_id": original,
            "items": over,
            "message": "returns anywhere in the chain took back more than the original sold (a return accepted while the store could not ask the hub)",
        }),
    }))
}

/// The latest `limit` returns across stores or channels, newest first.
pub(super) fn cross_returns(
    txn: &tally_store::ReadTxn,
    limit: usize,
) -> Result<Vec<CrossReturn>, StoreError> {
    let table = txn.raw().open_table(CROSS).map_err(redb_err)?;
    let mut out = Vec::new();
    for row in table.iter().map_err(redb_err)?.rev().take(limit) {
        let (_, v) = row.map_err(redb_err)?;
        out.push(from_json("hub_cross_store_returns", v.value())?);
    }
    Ok(out)
}
