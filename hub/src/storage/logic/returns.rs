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
//! What the hub keeps per original (units returned, claims) is one range
//! per original in any engine, so a check costs the returns against that
//! one sale, not the chain's history; each return taken at another store
//! than its sale's, or of a web order, is kept for HQ (`GET /v1/returns`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tally_sync::command::{return_lines, LineIn, OriginalSale};
use tally_sync::returns::{ItemUnits, ReturnCheck, ReturnCheckRequest, SoldTag};
use tally_sync::{Event, EventId, EventKind, Gtin, Refusal};

use crate::storage::txn::HubTxn;
use crate::storage::{DayCount, ExceptionRecord, StorageError, StoreRecord};

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

/// How long a claim is kept (it stopped counting after [`CLAIM_TTL_MS`]):
/// a return that arrives within it is still listed as checked. Older
/// claims of an original are deleted when it is checked again, so a
/// check's cost stays with the claims of the last week.
pub const CLAIM_KEPT_MS: u64 = 7 * 24 * 3_600_000;

/// Most return claims one store may make in a day (hub clock). Each
/// holds an original's units for a day: without a bound, one store (a
/// stolen certificate) could claim every sale and web order it can name
/// and so refuse every other store's returns. A busy store checks tens
/// of returns a day.
pub const MAX_CLAIMS_PER_DAY: u64 = 10_000;

const DAY_MS: u64 = 86_400_000;

/// Counts a new claim in `record` at `now_ms`: `false`, and nothing
/// counted, once the store made `cap` claims that day.
fn count_claim(record: &mut StoreRecord, now_ms: u64, cap: u64) -> bool {
    let day = now_ms / DAY_MS;
    let today = record
        .claims_today
        .filter(|d| d.day == day)
        .map_or(0, |d| d.count);
    if today >= cap {
        return false;
    }
    record.claims_today = Some(DayCount {
        day,
        count: today + 1,
    });
    true
}

/// Units a checked return holds against its original until it arrives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// Units per item.
    pub units: Vec<ItemUnits>,
    /// When the hub checked it (hub clock, Unix ms).
    pub at_ms: u64,
    /// The store that checked it: only that store's check again, or its
    /// return's event, stands for it (none: a claim from before stores
    /// were recorded, anyone's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<tally_sync::LocationId>,
}

impl Claim {
    /// Whether `store` made it.
    fn made_by(&self, store: &tally_sync::LocationId) -> bool {
        self.store.as_ref().is_none_or(|s| s == store)
    }
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
fn original<T: HubTxn>(txn: &T, req: &ReturnCheckRequest) -> Result<Option<Event>, StorageError> {
    if let Some(id) = req.original_sale {
        return txn.event(&id);
    }
    if let Some(order_id) = &req.order_id {
        let first = req.lines.first().map(|l| l.gtin);
        let mut ids: Vec<EventId> = Vec::new();
        if let Some(order) = txn.routed_order(order_id)? {
            ids.extend(order.allocations.iter().map(|a| a.event_id));
        }
        ids.extend(
            txn.store_named_order(order_id)?
                .and_then(|index| index.receipt)
                .map(|receipt| receipt.event_id),
        );
        for id in ids {
            if let Some(e) = txn.event(&id)? {
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
    match txn.last_sale_of(epc)? {
        Some(id) => txn.event(&id),
        None => Ok(None),
    }
}

/// Units returned against `original` (events the hub holds, and claims
/// younger than [`CLAIM_TTL_MS`] other than `except`'s, `claims` being the
/// original's).
fn returned_before<T: HubTxn>(
    txn: &T,
    original: EventId,
    claims: Vec<(EventId, Claim)>,
    except: EventId,
    now_ms: u64,
) -> Result<BTreeMap<Gtin, u64>, StorageError> {
    let mut out = txn.returned(original)?;
    for (id, claim) in claims {
        if id == except || now_ms.saturating_sub(claim.at_ms) > CLAIM_TTL_MS {
            continue;
        }
        for u in claim.units {
            let r = out.entry(u.gtin).or_default();
            *r = r.saturating_add(u.units);
        }
    }
    Ok(out)
}

/// Checks and claims `store`'s return (see the module docs). A return id
/// another store's claim holds is refused: a store cannot take over, or
/// release, the units another store's customer is bringing back.
pub(crate) fn check<T: HubTxn>(
    txn: &mut T,
    req: &ReturnCheckRequest,
    store: &tally_sync::LocationId,
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
    let mut claims = txn.return_claims(original.id)?;
    if claims
        .iter()
        .any(|(id, c)| *id == req.return_id && !c.made_by(store))
    {
        return Ok(CheckResult::Refused(Refusal::Invalid(format!(
            "return id {} is another store's checked return: a new return needs a new id",
            req.return_id
        ))));
    }
    // Claims past keeping are forgotten as the original is checked.
    let mut kept = Vec::with_capacity(claims.len());
    for (id, claim) in claims.drain(..) {
        if now_ms.saturating_sub(claim.at_ms) > CLAIM_KEPT_MS {
            txn.take_return_claim(original.id, id)?;
        } else {
            kept.push((id, claim));
        }
    }
    let claims = kept;
    // A check again of this store's claim still holding: its first
    // check's time (one that stopped holding is claimed anew, counted).
    let checked_at = claims
        .iter()
        .find(|(id, _)| *id == req.return_id)
        .map(|(_, c)| c.at_ms)
        .filter(|at| now_ms.saturating_sub(*at) <= CLAIM_TTL_MS);
    let returned = returned_before(txn, original.id, claims, req.return_id, now_ms)?;
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
    let mut tags = Vec::new();
    for l in &req.lines {
        let Some(epc) = &l.epc else { continue };
        let state = txn.epc_state(epc)?.unwrap_or_default();
        if let Err(e) = state.after_return(epc, l.gtin) {
            return Ok(CheckResult::Refused(Refusal::Invalid(e.to_string())));
        }
        tags.push(SoldTag {
            epc: epc.clone(),
            gtin: l.gtin,
        });
    }
    let mut units: BTreeMap<Gtin, u64> = BTreeMap::new();
    for l in &req.lines {
        *units.entry(l.gtin).or_default() += l.qty;
    }
    // A new claim (not a check again of the store's own) counts in the
    // store's day.
    if checked_at.is_none() {
        let mut record = txn
            .store_record(store.as_str())?
            .unwrap_or_else(|| StoreRecord::new(store.as_str()));
        if !count_claim(&mut record, now_ms, MAX_CLAIMS_PER_DAY) {
            return Ok(CheckResult::Refused(Refusal::Invalid(format!(
                "store {store} checked {MAX_CLAIMS_PER_DAY} returns today, the most a store may: \
                 the hub holds no more units for its returns until tomorrow (UTC)"
            ))));
        }
        txn.put_store_record(&record)?;
    }
    // A check again keeps its claim's time: the hold is not renewed
    // (else one store could keep every original it names held, for ever,
    // within its day's count).
    let claim = Claim {
        units: units
            .into_iter()
            .map(|(gtin, units)| ItemUnits { gtin, units })
            .collect(),
        at_ms: checked_at.unwrap_or(now_ms),
        store: Some(store.clone()),
    };
    txn.put_return_claim(original.id, req.return_id, &claim)?;
    Ok(CheckResult::Authorized(Box::new(ReturnCheck {
        original: tally_sync::returns::shown_to_stores(original),
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
pub(crate) fn on_return<T: HubTxn>(
    txn: &mut T,
    event: &Event,
    now_ms: u64,
) -> Result<Option<ExceptionRecord>, StorageError> {
    let EventKind::Return {
        original_sale: Some(original),
    } = &event.kind
    else {
        return Ok(None);
    };
    // Redeemed only by the return of the store that checked it.
    let own_claim = txn
        .return_claims(*original)?
        .iter()
        .any(|(id, c)| *id == event.id && c.made_by(&event.location));
    let checked = own_claim && txn.take_return_claim(*original, event.id)?;
    let mut over = Vec::new();
    let found = txn.event(original)?;
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
            txn.put_cross_return(&cross)?;
        }
    }
    let known = !sold.is_empty();
    for (gtin, units) in tally_sync::ledger::units_per_item(&event.lines) {
        let total = txn.add_returned(*original, gtin, units)?;
        let sold_units = sold.get(&gtin).copied().unwrap_or(0);
        if known && total > sold_units {
            over.push(serde_json::json!({
                "gtin": gtin, "returned": total, "sold": sold_units,
            }));
        }
    }
    Ok((!over.is_empty()).then(|| ExceptionRecord {
        id: 0,
        kind: "return_exceeds_sale".into(),
        store: event.location.to_string(),
        event_ids: vec![event.id, *original],
        at_ms: event.at_ms,
        detected_at_ms: now_ms,
        acknowledged: None,
        detail: serde_json::json!({
            "original_sale_id": original,
            "items": over,
            "message": "returns anywhere in the chain took back more than the original sold (a return accepted while the store could not ask the hub)",
        }),
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use tally_sync::exchange::ReplicaStore;
    use tally_sync::returns::ReturnLineCheck;

    use super::super::test_support::event;
    use super::*;
    use crate::storage::redb::txn::RedbTxn;
    use crate::storage::HubStorage;
    use tally_sync::LocationId;

    fn at(store: &str) -> LocationId {
        LocationId::new(store).unwrap()
    }

    /// Sale 1 at s1: 3 units of the test item.
    fn sale_of_three() -> Event {
        event(
            1,
            "s1",
            EventKind::Sale {
                tenders: Vec::new(),
                override_: None,
            },
            3,
        )
    }

    /// A check under `return_id` of `qty` units of the test item
    /// against `sale`.
    fn check_of(return_id: EventId, sale: &Event, qty: u64) -> ReturnCheckRequest {
        ReturnCheckRequest {
            return_id,
            original_sale: Some(sale.id),
            order_id: None,
            lines: vec![ReturnLineCheck {
                gtin: sale.lines[0].gtin,
                qty,
                epc: None,
            }],
        }
    }

    /// Claims older than a week are deleted when their original is
    /// checked again; younger ones stay.
    #[test]
    fn claims_past_keeping_are_forgotten_when_their_original_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let hub = super::super::test_support::hub(dir.path());
        let sale = sale_of_three();
        let ask = |n: u8| check_of(EventId::v7(1, [n; 10]), &sale, 1);
        let txn = hub.db().begin_write().unwrap();
        {
            let mut t = RedbTxn::new(&txn);
            t.insert_event(&sale).unwrap();
            let s2 = at("s2");
            for (n, now) in [(1, 10), (2, 20)] {
                let r = check(&mut t, &ask(n), &s2, now).unwrap();
                assert!(matches!(r, CheckResult::Authorized(_)), "{r:?}");
            }
            let r = check(&mut t, &ask(3), &s2, 15 + CLAIM_KEPT_MS).unwrap();
            assert!(matches!(r, CheckResult::Authorized(_)), "{r:?}");
            let kept: Vec<EventId> = t
                .return_claims(sale.id)
                .unwrap()
                .into_iter()
                .map(|(id, _)| id)
                .collect();
            assert_eq!(kept, vec![ask(2).return_id, ask(3).return_id]);
        }
    }

    /// A store's claims are counted per day of the hub's clock: up to
    /// the cap, then refused (nothing counted) until the next day.
    #[test]
    fn claims_are_counted_per_store_and_day_up_to_the_cap() {
        let mut r = StoreRecord::new("s2");
        let day = 20_000 * DAY_MS;
        for n in 1..=3 {
            assert!(count_claim(&mut r, day + n, 3));
        }
        assert!(!count_claim(&mut r, day + DAY_MS - 1, 3), "the cap");
        assert_eq!(
            r.claims_today,
            Some(DayCount {
                day: 20_000,
                count: 3
            })
        );
        assert!(count_claim(&mut r, day + DAY_MS, 3), "the next day");
        assert_eq!(
            r.claims_today,
            Some(DayCount {
                day: 20_001,
                count: 1
            })
        );
    }

    #[test]
    fn returns_are_bounded_by_their_original_chain_wide() {
        let dir = tempfile::tempdir().unwrap();
        let hub = super::super::test_support::hub(dir.path());
        let sale = sale_of_three();
        let back = EventKind::Return {
            original_sale: Some(sale.id),
        };
        let (checked, unchecked) = (event(2, "s2", back.clone(), 2), event(3, "s1", back, 2));
        let ask = |r: &Event| check_of(r.id, &sale, 2);
        let txn = hub.db().begin_write().unwrap();
        {
            let mut t = RedbTxn::new(&txn);
            t.insert_event(&sale).unwrap();
            // 2 of 3 claimed; 2 more would be 4 of 3; a retry of the first
            // is answered alike.
            let (s1, s2) = (at("s1"), at("s2"));
            let first = check(&mut t, &ask(&checked), &s2, 10).unwrap();
            assert!(matches!(first, CheckResult::Authorized(_)), "{first:?}");
            let second = check(&mut t, &ask(&unchecked), &s1, 10).unwrap();
            assert!(matches!(second, CheckResult::Refused(_)), "{second:?}");
            let again = check(&mut t, &ask(&checked), &s2, 11).unwrap();
            assert!(matches!(again, CheckResult::Authorized(_)), "{again:?}");
            // Another store cannot take over (or release) s2's claim by
            // checking under its id.
            let theft = check(&mut t, &ask(&checked), &s1, 12).unwrap();
            assert!(
                matches!(theft, CheckResult::Refused(Refusal::Invalid(_))),
                "{theft:?}"
            );
            let claims = t.return_claims(sale.id).unwrap();
            assert_eq!(claims.len(), 1);
            assert_eq!(claims[0].1.store, Some(s2.clone()));
            assert_eq!(
                claims[0].1.at_ms, 10,
                "the theft changed nothing, and a check again keeps the first check's time"
            );
            // Its event redeems the claim; one taken offline beyond the
            // sale raises the exception.
            assert_eq!(on_return(&mut t, &checked, 20).unwrap(), None);
            assert_eq!(t.return_claims(sale.id).unwrap(), Vec::new());
            let over = on_return(&mut t, &unchecked, 30).unwrap().unwrap();
            assert_eq!(over.kind, "return_exceeds_sale");
            assert_eq!(t.returned(sale.id).unwrap().values().sum::<u64>(), 4);
            // Once the claim expires, it stops counting.
            let fresh = event(4, "s1", checked.kind.clone(), 2);
            check(&mut t, &ask(&fresh), &s1, 40).unwrap();
            let late = 40 + CLAIM_TTL_MS + 1;
            let claims = t.return_claims(sale.id).unwrap();
            let bound =
                returned_before(&t, sale.id, claims, EventId::v7(9, [9; 10]), late).unwrap();
            assert_eq!(bound.values().sum::<u64>(), 4);
        }
        txn.commit().unwrap();
        // Only the return at another store than its sale's is listed.
        let cross = hub.cross_returns(10).unwrap();
        assert_eq!(cross.len(), 1);
        assert_eq!(cross[0].return_id, checked.id);
        assert!(cross[0].checked);
    }

    /// A claim is redeemed only by the return of the store that made it:
    /// another store's event under the same id is counted, listed as not
    /// checked, and leaves the claim in place.
    #[test]
    fn a_claim_is_redeemed_only_by_its_stores_return() {
        let dir = tempfile::tempdir().unwrap();
        let hub = super::super::test_support::hub(dir.path());
        let sale = sale_of_three();
        let back = EventKind::Return {
            original_sale: Some(sale.id),
        };
        let mine = event(2, "s2", back, 1);
        let forged = Event {
            location: at("s3"),
            ..mine.clone()
        };
        let req = check_of(mine.id, &sale, 1);
        let txn = hub.db().begin_write().unwrap();
        {
            let mut t = RedbTxn::new(&txn);
            t.insert_event(&sale).unwrap();
            let ok = check(&mut t, &req, &at("s2"), 10).unwrap();
            assert!(matches!(ok, CheckResult::Authorized(_)), "{ok:?}");
            assert_eq!(on_return(&mut t, &forged, 20).unwrap(), None);
            assert_eq!(t.return_claims(sale.id).unwrap().len(), 1, "still held");
        }
        txn.commit().unwrap();
        let cross = hub.cross_returns(10).unwrap();
        assert_eq!(cross.len(), 1);
        assert!(!cross[0].checked, "not the checking store's return");
    }
}
