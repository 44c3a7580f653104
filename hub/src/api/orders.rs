//! `POST /v1/orders`: an online order, sold from the hub's rights at one
//! store. The body is validated here (order id, store, lines merged by
//! item) into an [`OrderRequest`]; the writer records it, or refuses it,
//! in one durable transaction.

use std::collections::{BTreeMap, BTreeSet};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use rand::RngCore;
use serde::Deserialize;
use std::time::Instant;
use tally_sync::error_body::ErrorBody;
use tally_sync::exchange::Identity;
use tally_sync::limits::MAX_LINE_QTY;
use tally_sync::rights::RightsReleased;
use tally_sync::routing::Unfillable;
use tally_sync::{EventId, Gtin, ItemKey, LocationId, Refusal};

use tracing::{info, warn};

use super::admin::admin_json;
use super::{error, invalid, read_storage, with_details, write_error, AppState};
use crate::link::{Asked, ReleaseAsk};
use crate::metrics::ReleaseOutcome;
use crate::storage::routed::{CancelResult, RoutedOrder, RoutedOrderRequest, RoutedResult};
use crate::storage::{OrderRequest, OrderResult, ReleaseResult};
use tally_sync::fulfilment::Fulfilment;

/// Longest order id accepted.
pub const MAX_ORDER_ID_LEN: usize = tally_sync::fulfilment::MAX_ORDER_ID_BYTES;
/// Most lines in one order.
pub const MAX_ORDER_LINES: usize = 1_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OrderBody {
    #[serde(default)]
    order_id: Option<String>,
    /// The store whose stock it takes; optional for `ship`, which the
    /// hub routes.
    #[serde(default)]
    store: Option<String>,
    #[serde(default)]
    fulfilment: Option<Fulfilment>,
    lines: Vec<OrderLineBody>,
}

/// A valid order: at the store it names (today's meaning), or routed.
#[derive(Debug)]
enum Validated {
    AtStore(OrderRequest),
    Routed(RoutedOrderRequest),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OrderLineBody {
    gtin: String,
    qty: u64,
}

/// The order the body asks for at `now` (Unix ms): at its store with no
/// fulfilment (today's meaning: sold from the hub's reserve there), or
/// with a fulfilment (allocated at the store it names, or routed when a
/// `ship` order names none), or the 422 to answer.
fn validate(body: OrderBody, now: u64) -> Result<Validated, Response> {
    let Some(fulfilment) = body.fulfilment else {
        if body.store.is_none() {
            return Err(invalid(
                "store: required, unless fulfilment is \"ship\" (then the hub routes the order)",
            ));
        }
        return validate_order(body, now).map(Validated::AtStore);
    };
    let store = match (body.store.as_deref(), fulfilment) {
        (None, Fulfilment::Pickup) => {
            return Err(invalid(
                "store: a pickup order names the store the customer collects it at",
            ))
        }
        (None, Fulfilment::Ship) => None,
        (Some(s), _) => Some(checked_store(s)?),
    };
    let mut seed = [0u8; 10];
    rand::rngs::OsRng.fill_bytes(&mut seed);
    let order_id = match body.order_id {
        Some(id) => checked_order_id(id)?,
        None => EventId::v7(now, seed).to_string(),
    };
    Ok(Validated::Routed(RoutedOrderRequest {
        order_id,
        fulfilment,
        store,
        lines: order_lines(body.lines)?,
        seed,
        now_ms: now,
    }))
}

fn checked_store(store: &str) -> Result<LocationId, Response> {
    let store = LocationId::new(store).map_err(|e| invalid(format!("store: {e}")))?;
    if store.as_str() == tally_sync::ReplicaId::HUB {
        return Err(invalid("store: \"hub\" is not a store"));
    }
    Ok(store)
}

fn checked_order_id(id: String) -> Result<String, Response> {
    if !tally_sync::fulfilment::valid_order_id(&id) {
        return Err(invalid(format!(
            "order_id must be 1 to {MAX_ORDER_ID_LEN} printable ASCII characters"
        )));
    }
    Ok(id)
}

/// An order's lines, merged by item, in item order; or the 422.
fn order_lines(body: Vec<OrderLineBody>) -> Result<Vec<(Gtin, u64)>, Response> {
    if body.is_empty() || body.len() > MAX_ORDER_LINES {
        return Err(invalid(format!(
            "an order has 1 to {MAX_ORDER_LINES} lines"
        )));
    }
    let mut lines: BTreeMap<Gtin, u64> = BTreeMap::new();
    for l in body {
        let gtin = Gtin::parse(&l.gtin).map_err(|e| invalid(format!("gtin {:?}: {e}", l.gtin)))?;
        let q = lines.entry(gtin).or_default();
        *q = q.saturating_add(l.qty);
        // Each line, and the lines of one item added up: the order's
        // event is held to the limit every event is.
        if l.qty == 0 || *q > MAX_LINE_QTY {
            return Err(invalid(format!(
                "qty for {gtin} must be 1 to {MAX_LINE_QTY} (its lines added up)"
            )));
        }
    }
    Ok(lines.into_iter().collect())
}

/// The order the body asks for at its store at `now` (Unix ms), with a
/// fresh event id (and the order id from it when the body has none), or
/// the 422 to answer.
fn validate_order(body: OrderBody, now: u64) -> Result<OrderRequest, Response> {
    let mut random = [0u8; 10];
    rand::rngs::OsRng.fill_bytes(&mut random);
    let event_id = EventId::v7(now, random);
    let order_id = match body.order_id {
        None => event_id.to_string(),
        Some(id) => checked_order_id(id)?,
    };
    let store = checked_store(body.store.as_deref().unwrap_or_default())?;
    Ok(OrderRequest {
        order_id,
        store,
        lines: order_lines(body.lines)?,
        event_id,
        now_ms: now,
        record_demand: true,
    })
}

/// The most rounds of asking stores for rights one order makes (each
/// round asks for every item still short at once).
const MAX_RELEASE_ROUNDS: usize = 8;

/// What a store-named order learned of its store's items while asking
/// for their rights: those asked for, those the store then gave nothing
/// of, and those whose report the hub refused.
#[derive(Debug, Default)]
struct AskedItems {
    asked: BTreeSet<Gtin>,
    exhausted: BTreeSet<Gtin>,
    refused: BTreeSet<Gtin>,
}

/// One item a store-named order asks its store for.
#[derive(Debug)]
struct ItemAsk {
    gtin: Gtin,
    /// The units beyond the hub's rights there.
    units: u64,
    /// What the order needs held there meanwhile: all its units of the
    /// item (the hub's rights and those asked for).
    hold: u64,
    counter: tally_sync::BoundedCounter,
}

impl AskedItems {
    /// The items of `lines` (with the store's `counters`, in the same
    /// order) the hub's rights do not cover, all asked for in one round:
    /// each at least once even when the hub's books show nothing beyond
    /// its rights there (a receipt the store has not synced is not in
    /// them), again while they show more, never again once the store gave
    /// nothing or its report was refused.
    fn to_ask(
        &self,
        lines: &[(Gtin, u64)],
        counters: Vec<tally_sync::BoundedCounter>,
    ) -> Vec<ItemAsk> {
        let hub = tally_sync::ReplicaId::hub();
        lines
            .iter()
            .zip(counters)
            .filter_map(|(&(gtin, qty), counter)| {
                let available = counter.rights(&hub);
                let nothing_more = self.exhausted.contains(&gtin)
                    || self.refused.contains(&gtin)
                    || (counter.value() <= available && self.asked.contains(&gtin));
                (qty > available && !nothing_more).then(|| ItemAsk {
                    gtin,
                    units: qty - available,
                    hold: qty,
                    counter,
                })
            })
            .collect()
    }
}

/// The handler: 201 with the receipt when recorded now, 200 with the same
/// receipt on a repeat of its id, 409 without the stock, 422 otherwise.
///
/// An order the hub's reserve cannot fill asks the store, if it is live,
/// to release unsold rights (`crate::link::Links::ask_release`) for every
/// item short at once, and runs again with the store's reports merged in
/// the same transaction ([`AskedItems::to_ask`] says which items). The
/// order is refused when the store has no unsold units (`no_stock`) or is
/// not reachable (`offline`).
pub(super) async fn orders(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Response> {
    let mut order = match validate(admin_json(&st, &headers, body).await?, st.clock.now_ms())? {
        Validated::AtStore(o) => o,
        Validated::Routed(o) => return routed(&st, o).await,
    };
    let (order_id, store) = (order.order_id.clone(), order.store.clone());
    let deadline = Instant::now() + st.settings.rights_wait;
    // Units held for this order while it waits; released when it is done.
    let mut holds = OrderHolds::default();
    let mut items = AskedItems::default();
    // Items whose release report this store had refused a short while
    // ago are not asked for again (by this order or any other).
    for (gtin, _) in &order.lines {
        if st.links.release_paused(&store, *gtin) {
            items.refused.insert(*gtin);
        }
    }
    // The store's reports of the last round, merged with the next run.
    let mut reports: Vec<(Identity, RightsReleased)> = Vec::new();
    let mut store_reachable = true;
    // Whether an ask went unanswered in time (the store live): its report
    // may land just after, merged on its own; the order runs once more.
    let mut unanswered = false;
    let mut rounds = 0;
    let result = loop {
        let last_round = !store_reachable;
        let result = if reports.is_empty() {
            st.writer.order(order.clone()).await
        } else {
            let gtins: Vec<Gtin> = reports.iter().map(|(_, r)| r.gtin).collect();
            st.writer
                .order_after_releases(std::mem::take(&mut reports), order.clone())
                .await
                .map(|(merged, result)| {
                    for (gtin, merged) in gtins.into_iter().zip(merged) {
                        if let ReleaseResult::Forged(why) = merged {
                            warn!(store = %store, %gtin, %why, "A store's release report was refused; not asking it again for this item.");
                            // Asking again would only move more of its
                            // rights where nobody can use them (e.g. a
                            // store with a dead-lettered event, whose
                            // reports fail the check until HQ admits it).
                            items.refused.insert(gtin);
                            st.links.release_refused(&store, gtin);
                        }
                    }
                    result
                })
        };
        // The first attempt counted the order as online demand; a retry
        // after asking the store is the same order.
        order.record_demand = false;
        let Ok(OrderResult::InsufficientStock { .. }) = &result else {
            break result;
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if last_round || rounds == MAX_RELEASE_ROUNDS || left.is_zero() {
            break result;
        }
        let keys: Vec<ItemKey> = order
            .lines
            .iter()
            .map(|(gtin, _)| ItemKey::new(store.clone(), *gtin))
            .collect();
        let counters = read_storage(&st, move |s| {
            keys.iter()
                .map(|k| s.counter(k))
                .collect::<Result<Vec<_>, _>>()
        })
        .await?;
        // The lines the hub's rights there cover already.
        let hub = tally_sync::ReplicaId::hub();
        let covered: Vec<(Gtin, u64)> = order
            .lines
            .iter()
            .zip(&counters)
            .filter(|(&(_, qty), counter)| counter.rights(&hub) >= qty)
            .map(|(line, _)| *line)
            .collect();
        let asks = items.to_ask(&order.lines, counters);
        if asks.is_empty() {
            break result;
        }
        // Those are held too while the order waits (first come, first
        // served: no till takes them meanwhile); not the lines the store
        // has none of, which no wait will fill.
        for (gtin, qty) in covered {
            let more = holds.beyond(&store, gtin, qty);
            if more > 0 {
                holds.keep(st.links.hold(&store, gtin, more, left, st.clock.now_ms()));
            }
        }
        rounds += 1;
        let answers = ask_all(
            &st,
            asks.iter()
                .map(|a| ReleaseAsk {
                    location: &store,
                    gtin: a.gtin,
                    units: a.units,
                    hold: holds.beyond(&store, a.gtin, a.hold),
                    counter: &a.counter,
                    wait: left,
                })
                .collect(),
        )
        .await;
        for (a, answer) in asks.iter().zip(answers) {
            match answer {
                Asked::Reported {
                    who,
                    released,
                    hold,
                } => {
                    items.asked.insert(a.gtin);
                    if released.released == 0 {
                        items.exhausted.insert(a.gtin);
                    }
                    holds.keep(hold);
                    reports.push((who, released));
                }
                Asked::NotLive => store_reachable = false,
                Asked::NoAnswer => {
                    store_reachable = false;
                    unanswered = true;
                }
            }
        }
        // Unreachable for some item: what the store did report is merged
        // (it moved those rights to the hub in its books), then answered;
        // after an ask that went unanswered in time, the order runs once
        // more (a report just late was merged meanwhile).
        if !store_reachable && reports.is_empty() && !unanswered {
            break result;
        }
    };
    drop(holds);
    Ok(match result {
        Ok(OrderResult::Accepted(receipt)) => {
            st.metrics.order(true, false);
            info!(order_id = %order_id, store = %store, event = %receipt.event_id, "Online order accepted.");
            (StatusCode::CREATED, Json(receipt)).into_response()
        }
        Ok(OrderResult::Replayed(receipt)) => {
            st.metrics.order(true, true);
            (StatusCode::OK, Json(receipt)).into_response()
        }
        Ok(OrderResult::InsufficientStock {
            gtin,
            requested,
            available,
            on_hand,
        }) => {
            st.metrics.order(false, false);
            // The store gave all it had: what the hub's books show beyond
            // its reserve there is sold (the sales not synced yet).
            let on_hand = if items.exhausted.contains(&gtin) {
                on_hand.min(available)
            } else {
                on_hand
            };
            let refusal = Refusal::InsufficientStock {
                gtin,
                requested,
                available,
                on_hand,
            };
            let body = ErrorBody::of_refusal(&refusal, store_reachable);
            if let Some(reason) = body.reason.as_deref() {
                st.metrics.order_refused(reason);
            }
            if let Some(why) = refusal.shortage(store_reachable) {
                // Durable before the answer, like every count the hub shows;
                // a failure here does not change the refusal.
                let now_ms = st.clock.now_ms();
                if let Err(e) = st.writer.order_refused(store.clone(), why, now_ms).await {
                    warn!(store = %store, error = %e, "Refused order not counted in the store's record.");
                }
            }
            info!(order_id = %order_id, store = %store, gtin = %gtin, requested, available, on_hand, reason = ?body.reason, "Online order refused: insufficient stock.");
            with_details(
                StatusCode::CONFLICT,
                ErrorBody {
                    message: format!(
                        "the hub holds {available} of {gtin} at store {store} ({on_hand} on hand), {requested} requested"
                    ),
                    ..body
                },
            )
        }
        Ok(OrderResult::IdConflict { order_id }) => error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "order_id_conflict",
            format!("order_id {order_id:?} was already used for a different order"),
        ),
        Ok(OrderResult::Invalid(m)) => invalid(m),
        Err(e) => write_error(e),
    })
}

/// The units an order holds while it waits, per store and item, across
/// its rounds of asks. A round holds only what the order needs there
/// beyond what it holds already, so together they hold what it needs,
/// never more (twice as much would keep the store's tills from units
/// nobody waits for, for the rest of the wait).
#[derive(Default)]
struct OrderHolds(Vec<crate::link::Hold>);

impl OrderHolds {
    /// Of `needed` units of `gtin` at `location`, those not held yet.
    fn beyond(&self, location: &LocationId, gtin: Gtin, needed: u64) -> u64 {
        let held = self
            .0
            .iter()
            .filter(|h| h.key().0 == *location && h.key().1 == gtin)
            .fold(0u64, |sum, h| sum.saturating_add(h.units()));
        needed.saturating_sub(held)
    }

    /// Keeps `hold` until the order is done.
    fn keep(&mut self, hold: crate::link::Hold) {
        self.0.push(hold);
    }
}

/// Asks live stores holding unsold units of `short.missing` items
/// (beyond the hub's rights there) to release them to the hub, all at
/// once, within `left`; merges each report. Only the order's store when
/// it names one. If any store is asked, what the reserves would give
/// meanwhile (`short.partial`) is held too, as the asked units are, in
/// `holds` (for this order while it lives: first come, first served, no
/// till takes them); with no store to ask, nothing is held and no till
/// is kept waiting. Answers whether any store released anything.
async fn release_for(
    st: &AppState,
    store: Option<&LocationId>,
    short: &Unfillable,
    holds: &mut OrderHolds,
    left: std::time::Duration,
) -> Result<bool, Response> {
    let missing = &short.missing;
    let live: Vec<LocationId> = st
        .links
        .live()
        .into_iter()
        .map(|l| l.location)
        .filter(|l| store.is_none_or(|s| s == l))
        .collect();
    let hub = tally_sync::ReplicaId::hub();
    let deadline = Instant::now() + left;
    let mut asks = Vec::new();
    for m in missing {
        // Reading the stores' books takes time too: the asks go out with
        // what is found by the order's deadline, not past it.
        if Instant::now() >= deadline {
            break;
        }
        let keys: Vec<ItemKey> = live
            .iter()
            .map(|l| ItemKey::new(l.clone(), m.gtin))
            .collect();
        let counters = read_storage(st, move |s| {
            keys.iter()
                .map(|k| Ok((k.location.clone(), s.counter(k)?)))
                .collect::<Result<Vec<_>, _>>()
        })
        .await?;
        // The stores with the most unsold units beyond the hub's rights
        // first, until the missing units are covered.
        let mut spare: Vec<(u64, LocationId, tally_sync::BoundedCounter)> = counters
            .into_iter()
            .map(|(l, c)| (c.value().saturating_sub(c.rights(&hub)), l, c))
            .filter(|(n, l, _)| *n > 0 && !st.links.release_paused(l, m.gtin))
            .collect();
        spare.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        let mut wanted = m.qty;
        for (n, location, counter) in spare {
            if wanted == 0 {
                break;
            }
            let units = n.min(wanted);
            wanted -= units;
            asks.push((location, m.gtin, units, counter));
        }
    }
    if asks.is_empty() {
        return Ok(false);
    }
    for part in &short.partial {
        for line in &part.lines {
            let more = holds.beyond(&part.store, line.gtin, line.qty);
            if more > 0 {
                holds.keep(st.links.hold(
                    &part.store,
                    line.gtin,
                    more,
                    deadline.saturating_duration_since(Instant::now()),
                    st.clock.now_ms(),
                ));
            }
        }
    }
    let asked = ask_all(
        st,
        asks.iter()
            .map(|(l, g, units, c)| ReleaseAsk {
                location: l,
                gtin: *g,
                units: *units,
                // Held there meanwhile: the hub's rights the plan counts
                // on and those asked for, beyond what it holds already.
                hold: holds.beyond(l, *g, c.rights(&hub).saturating_add(*units)),
                counter: c,
                wait: deadline.saturating_duration_since(Instant::now()),
            })
            .collect(),
    )
    .await;
    let mut released_any = false;
    for a in asked {
        // Unanswered in time: a report just late is merged on its own, so
        // the order runs once more rather than being refused at once.
        released_any |= matches!(a, Asked::NoAnswer);
        if let Asked::Reported {
            who,
            released,
            hold,
        } = a
        {
            let units = released.released;
            let (location, gtin) = (who.location.clone(), released.gtin);
            match st
                .writer
                .release(who, released)
                .await
                .map_err(write_error)?
            {
                ReleaseResult::Forged(why) => {
                    warn!(store = %location, %gtin, %why, "A store's release report was refused; not asking it again for this item for a while.");
                    st.links.release_refused(&location, gtin);
                }
                _ => released_any |= units > 0,
            }
            holds.keep(hold);
        }
    }
    Ok(released_any)
}

/// Sends every ask at once and waits for the answers (each within its
/// `wait`); counts each in the metrics, by outcome, with how long it took.
async fn ask_all(st: &AppState, asks: Vec<ReleaseAsk<'_>>) -> Vec<Asked> {
    let now = st.clock.now_ms();
    let links = &st.links;
    let answers = futures_util::future::join_all(asks.into_iter().map(|ask| async move {
        let asked_at = Instant::now();
        let answer = links.ask_release(ask, now).await;
        (answer, asked_at.elapsed())
    }))
    .await;
    answers
        .into_iter()
        .map(|(answer, took)| {
            let (outcome, units) = match &answer {
                Asked::Reported { released, .. } => (ReleaseOutcome::Reported, released.released),
                Asked::NotLive => (ReleaseOutcome::NotLive, 0),
                Asked::NoAnswer => (ReleaseOutcome::NoAnswer, 0),
            };
            st.metrics.release(outcome, units, took);
            answer
        })
        .collect()
}

/// Tells each store of `order` that its allocation changed: it fetches
/// its allocations at once (the live link's `sync_now`); a store not live
/// gets them at its next sync.
fn notify_stores(st: &AppState, order: &RoutedOrder) {
    for a in &order.allocations {
        st.links.notify(&a.store, tally_sync::link::Notice::SyncNow);
    }
}

/// An order with a fulfilment: 201 with its allocations, 200 on a
/// repeat, 409 `insufficient_stock` with what the chain lacks, 422 on an
/// id conflict. When the hub's reserves cannot fill it, live stores with
/// unsold units are asked to release them (rights on demand) and the
/// order is routed again.
async fn routed(st: &AppState, o: RoutedOrderRequest) -> Result<Response, Response> {
    let order_id = o.order_id.clone();
    let deadline = Instant::now() + st.settings.rights_wait;
    let mut holds = OrderHolds::default();
    let mut rounds = 0;
    let result = loop {
        let result = st
            .writer
            .route_order(o.clone())
            .await
            .map_err(write_error)?;
        let RoutedResult::Unfillable(short) = &result else {
            break result;
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if rounds == MAX_RELEASE_ROUNDS || left.is_zero() {
            break result;
        }
        rounds += 1;
        let released = release_for(st, o.store.as_ref(), short, &mut holds, left).await?;
        if !released {
            break result;
        }
    };
    drop(holds);
    Ok(match result {
        RoutedResult::Accepted(order) => {
            st.metrics.order(true, false);
            let stores: Vec<&str> = order.allocations.iter().map(|a| a.store.as_str()).collect();
            info!(order_id = %order_id, stores = ?stores, fulfilment = ?order.fulfilment, "Order allocated.");
            notify_stores(st, &order);
            (StatusCode::CREATED, Json(order_view(&order))).into_response()
        }
        RoutedResult::Replayed(order) => {
            st.metrics.order(true, true);
            (StatusCode::OK, Json(order_view(&order))).into_response()
        }
        RoutedResult::IdConflict => error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "order_id_conflict",
            format!("order_id {order_id:?} was already used for a different order"),
        ),
        RoutedResult::Unfillable(Unfillable { missing, .. }) => {
            st.metrics.order(false, false);
            let text: Vec<String> = missing
                .iter()
                .map(|m| format!("{} more of {}", m.qty, m.gtin))
                .collect();
            info!(order_id = %order_id, missing = %text.join(", "), "Online order refused: the chain's reserves cannot fill it.");
            let mut body = serde_json::to_value(ErrorBody::new(
                "insufficient_stock",
                format!(
                    "the hub's reserves at every store cannot fill the order: {}",
                    text.join(", ")
                ),
            ))
            .unwrap_or_default();
            body["missing"] = serde_json::json!(missing);
            (StatusCode::CONFLICT, Json(body)).into_response()
        }
    })
}

/// A routed order as the API shows it.
fn order_view(o: &RoutedOrder) -> serde_json::Value {
    serde_json::json!({
        "order_id": o.order_id,
        "fulfilment": o.fulfilment,
        "status": o.status,
        "at": tally_sync::timestamp::rfc3339(o.at_ms),
        "allocations": o.allocations.iter().map(|a| serde_json::json!({
            "store": a.store,
            "status": a.status,
            "event_id": a.event_id,
            "lines": a.lines,
        })).collect::<Vec<_>>(),
    })
}

/// `GET /v1/orders/{id}`: a routed order with its allocations (404 for an
/// id no routed order has; store-named orders are answered by their
/// receipt when placed).
pub(super) async fn order(
    State(st): State<AppState>,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Json<serde_json::Value>, Response> {
    super::admin::authorized(&st, &headers)?;
    let found = read_storage(&st, move |s| s.routed_order(&id)).await?;
    match found {
        Some(o) => Ok(Json(order_view(&o))),
        None => Err(error(
            StatusCode::NOT_FOUND,
            "not_found",
            "no routed order has this id",
        )),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct ListQuery {
    status: tally_sync::fulfilment::Status,
    #[serde(default)]
    after: String,
    #[serde(default)]
    limit: Option<usize>,
}

/// `GET /v1/orders?status=S&after=ID&limit=N`: routed orders with that
/// status, by id, a page (`next`: the last id, to pass as `after`).
pub(super) async fn list(
    State(st): State<AppState>,
    headers: HeaderMap,
    query: super::admin::QueryResult<ListQuery>,
) -> Result<Json<serde_json::Value>, Response> {
    let q = super::admin::admin_query(
        &st,
        &headers,
        query,
        "status is one of allocated, picked, cancelled, collected, shipped; after an order id; limit 1 to 1000",
    )?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1_000);
    let (status, after) = (q.status, q.after.clone());
    let orders = read_storage(&st, move |s| s.routed_orders(status, &after, limit)).await?;
    let next = orders.last().map(|o| o.order_id.clone());
    Ok(Json(serde_json::json!({
        "orders": orders.iter().map(order_view).collect::<Vec<_>>(),
        "next": next,
    })))
}

/// `POST /v1/orders/{id}/cancel`: 200 with the order, its open
/// allocations cancelled and their units back in the hub's reserves (also
/// on a repeat); 404 for no routed order; 409 `handed_over` when an
/// allocation was collected or shipped.
pub(super) async fn cancel(
    State(st): State<AppState>,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Response, Response> {
    super::admin::authorized(&st, &headers)?;
    let mut seed = [0u8; 10];
    rand::rngs::OsRng.fill_bytes(&mut seed);
    match st
        .writer
        .cancel_order(id.clone(), seed, st.clock.now_ms())
        .await
        .map_err(write_error)?
    {
        CancelResult::Cancelled(order) => {
            info!(order_id = %id, "Routed order cancelled.");
            notify_stores(&st, &order);
            Ok(Json(order_view(&order)).into_response())
        }
        CancelResult::NotFound => Err(error(
            StatusCode::NOT_FOUND,
            "not_found",
            "no routed order has this id",
        )),
        CancelResult::HandedOver(order) => Err((
            StatusCode::CONFLICT,
            Json(serde_json::json!({
                "error": "handed_over",
                "message": "an allocation was already collected or shipped: nothing cancelled",
                "order": order_view(&order),
            })),
        )
            .into_response()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_are_validated_and_merged_by_item() {
        let g = "4006381333931";
        let body = OrderBody {
            order_id: Some("web-1".into()),
            store: Some("s1".into()),
            fulfilment: None,
            lines: vec![
                OrderLineBody {
                    gtin: g.into(),
                    qty: 2,
                },
                OrderLineBody {
                    gtin: g.into(),
                    qty: 3,
                },
            ],
        };
        let o = validate_order(body, 1).unwrap();
        assert_eq!(o.lines, vec![(Gtin::parse(g).unwrap(), 5)]);
        for (store, qty, id) in [
            ("hub", 1, "x"),
            ("s1", 0, "x"),
            ("s1", 1, "a b"),
            ("a/b", 1, "x"),
        ] {
            let bad = OrderBody {
                order_id: Some(id.into()),
                store: Some(store.into()),
                fulfilment: None,
                lines: vec![OrderLineBody {
                    gtin: g.into(),
                    qty,
                }],
            };
            assert!(validate_order(bad, 1).is_err(), "{store} {qty} {id}");
        }
    }
}
