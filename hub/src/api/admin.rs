//! The admin API's gate and its reads: the bearer-token check every admin
//! endpoint starts with ([`authorized`], [`admin_query`] for a GET's query
//! string, [`admin_json`] for a POST's body), and the read-only endpoints:
//! `GET /v1/stock/{gtin}`, `/v1/stores`, `/v1/exceptions`,
//! `/v1/stats/sales`, `/v1/audit` and `/metrics`. Each reads one storage
//! snapshot on the blocking pool. And HQ's acknowledgement of an
//! exception, `POST /v1/exceptions/{id}/ack`.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use tally_service::secret::secrets_equal;
use tally_sync::timestamp::rfc3339;
use tally_sync::Gtin;

use crate::storage::{
    AckResult, ExceptionRecord, MAX_ACK_BY_BYTES, MAX_ACK_NOTE_BYTES, SALES_WINDOW_MINUTES,
};

use super::{body_error, error, read_body, read_storage, write_error, AppState};

/// The bearer token a request carries.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// The admin token check: `Err` is the 401 to answer.
pub(super) fn authorized(st: &AppState, headers: &HeaderMap) -> Result<(), Response> {
    let given = bearer(headers);
    let ok = given.is_some_and(|g| secrets_equal(g.as_bytes(), st.admin_token.as_bytes()));
    if ok {
        return Ok(());
    }
    unauthorized(st)
}

/// `GET /metrics`'s check: the admin token, or the metrics token (a
/// scraper's, which reads nothing else).
fn authorized_for_metrics(st: &AppState, headers: &HeaderMap) -> Result<(), Response> {
    let given = bearer(headers);
    let scraper = match (given, &st.metrics_token) {
        (Some(g), Some(t)) => secrets_equal(g.as_bytes(), t.as_bytes()),
        _ => false,
    };
    if scraper {
        return Ok(());
    }
    authorized(st, headers)
}

/// The 401 of a request without a good token (counted).
fn unauthorized(st: &AppState) -> Result<(), Response> {
    st.metrics.admin_unauthorized();
    let mut r = error(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "admin endpoints need `Authorization: Bearer <admin token>` (DIR/admin.token)",
    );
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    Err(r)
}

/// The admin token check and the JSON body of an admin POST (read up to
/// the admin body limit): the body, or the 401/413/400 to answer.
pub(super) async fn admin_json<T: DeserializeOwned>(
    st: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<T, Response> {
    authorized(st, headers)?;
    let max = st.settings.max_admin_body;
    let read = read_body(st, headers, body, max, super::budget::Payer::Known)
        .await
        .map_err(|e| body_error(e, max))?;
    serde_json::from_slice(&read.bytes)
        .map_err(|e| error(StatusCode::BAD_REQUEST, "invalid_body", e))
}

pub(super) type QueryResult<Q> = Result<Query<Q>, axum::extract::rejection::QueryRejection>;

/// The admin token check and the query string of an admin GET: the query
/// or the 401/400 to answer (with `usage` saying what the query takes).
pub(super) fn admin_query<Q>(
    st: &AppState,
    headers: &HeaderMap,
    query: QueryResult<Q>,
    usage: &str,
) -> Result<Q, Response> {
    authorized(st, headers)?;
    query
        .map(|Query(q)| q)
        .map_err(|_| error(StatusCode::BAD_REQUEST, "invalid_query", usage))
}

/// `GET /v1/stock/{gtin}`: the item's name and its stock at every store.
pub(super) async fn stock(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(gtin): Path<String>,
) -> Result<Json<Value>, Response> {
    authorized(&st, &headers)?;
    let gtin = Gtin::parse(&gtin).map_err(|e| error(StatusCode::BAD_REQUEST, "invalid_gtin", e))?;
    let (item, rows) =
        read_storage(&st, move |s| Ok((s.catalog_item(gtin)?, s.stock(gtin)?))).await?;
    let on_hand: u64 = rows.iter().map(|(_, s)| s.on_hand).sum();
    let stores: serde_json::Map<String, Value> =
        rows.into_iter().map(|(id, s)| (id, json!(s))).collect();
    let name = item.map(|i| i.name);
    Ok(Json(
        json!({ "gtin": gtin, "name": name, "on_hand": on_hand, "stores": stores }),
    ))
}

/// Whether a store counts as online: its last accepted sync is within the
/// window (documented in docs/api-hub.md).
pub fn is_online(last_sync_ms: u64, now_ms: u64, window_ms: u64) -> bool {
    now_ms.saturating_sub(last_sync_ms) <= window_ms
}

/// `GET /v1/stores`: every store that synced, online or not; `live`: its
/// live link is open now (then it is online too).
pub(super) async fn stores(
    State(st): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, Response> {
    authorized(&st, &headers)?;
    let window = st.settings.online_window_ms;
    let mut records = read_storage(&st, |s| s.stores()).await?;
    // A record HQ's admission of a held event made before the store's
    // first accepted sync is not a store that synced.
    records.retain(|r| r.syncs > 0);
    let now = st.clock.now_ms();
    let live: std::collections::HashMap<String, u64> = st
        .links
        .live()
        .into_iter()
        .map(|l| (l.location.to_string(), l.since_ms))
        .collect();
    let list: Vec<Value> = records
        .into_iter()
        .map(|r| {
            let live_since = live.get(&r.store).copied();
            let last_day = r.recent.last_day(now);
            json!({
                "store": r.store,
                "online": live_since.is_some() || is_online(r.last_sync_ms, now, window),
                "live": live_since.is_some(),
                "live_since": live_since.map(rfc3339),
                "last_sync_ms": r.last_sync_ms,
                "last_sync_at": rfc3339(r.last_sync_ms),
                "seconds_since_last_sync": now.saturating_sub(r.last_sync_ms) / 1000,
                "first_sync_ms": r.first_sync_ms,
                "syncs": r.syncs,
                "events_received": r.events_received,
                "acked_events_upto": r.acked_events_upto,
                "lost_sales": r.lost_sales,
                "refused_orders": r.refused_orders,
                "last_24h": last_day,
                "dates_allowed": r
                    .dates_allowed
                    .filter(|a| a.until_ms >= now)
                    .as_ref()
                    .map(super::held::allowance_json),
            })
        })
        .collect();
    Ok(Json(
        json!({ "online_window_secs": window / 1000, "stores": list }),
    ))
}

#[derive(Debug, Deserialize)]
pub(super) struct ExceptionsQuery {
    #[serde(default)]
    since: u64,
    #[serde(default)]
    limit: Option<usize>,
}

/// `GET /v1/exceptions`: exceptions after `since`, oldest first, a page.
pub(super) async fn exceptions(
    State(st): State<AppState>,
    headers: HeaderMap,
    query: QueryResult<ExceptionsQuery>,
) -> Result<Json<Value>, Response> {
    let q = admin_query(
        &st,
        &headers,
        query,
        "since and limit must be non-negative integers",
    )?;
    let limit = q.limit.unwrap_or(1000).clamp(1, 10_000);
    let (list, last, acknowledged) = read_storage(&st, move |s| {
        Ok((
            s.exceptions(q.since, limit)?,
            s.last_exception_id()?,
            s.acknowledged_exceptions()?,
        ))
    })
    .await?;
    let next = list.last().map_or(q.since, |x| x.id);
    let list: Vec<Value> = list.into_iter().map(exception_json).collect();
    Ok(Json(json!({
        "exceptions": list,
        "next": next,
        "last": last,
        "acknowledged": acknowledged,
        "open": last.saturating_sub(acknowledged),
    })))
}

/// An exception as HQ reads it: times also as RFC 3339.
fn exception_json(x: ExceptionRecord) -> Value {
    let at = rfc3339(x.at_ms);
    let acked_at = x.acknowledged.as_ref().map(|a| rfc3339(a.at_ms));
    let mut v = json!(x);
    v["at"] = json!(at);
    if let Some(acked_at) = acked_at {
        v["acknowledged"]["at"] = json!(acked_at);
    }
    v
}

/// The body of `POST /v1/exceptions/{id}/ack`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AckBody {
    by: String,
    #[serde(default)]
    note: String,
}

/// `POST /v1/exceptions/{id}/ack` (admin token), `{"by", "note"}`: HQ
/// has looked at the exception. 200 with the exception acknowledged (now,
/// or before: the first acknowledgement stands, `"already": true`), 404
/// no such exception, 422 a `by` or `note` out of bounds.
pub(super) async fn acknowledge(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<Value>, Response> {
    let ack: AckBody = admin_json(&st, &headers, body).await?;
    let id: u64 = id.parse().map_err(|_| {
        error(
            StatusCode::BAD_REQUEST,
            "invalid_exception_id",
            format!("exception id {id:?}: a positive integer"),
        )
    })?;
    // Ids are numbered from 1 and every engine keeps them as i64.
    if id == 0 || i64::try_from(id).is_err() {
        return Err(error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no exception {id}"),
        ));
    }
    let by = ack.by.trim();
    let note = ack.note.trim();
    let printable = |s: &str| !s.chars().any(char::is_control);
    if by.is_empty() || by.len() > MAX_ACK_BY_BYTES || !printable(by) {
        return Err(error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            format!(
                "by: who acknowledges it, 1 to {MAX_ACK_BY_BYTES} bytes, no control characters"
            ),
        ));
    }
    if note.len() > MAX_ACK_NOTE_BYTES || note.chars().any(|c| c.is_control() && c != '\n') {
        return Err(error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            format!(
                "note: at most {MAX_ACK_NOTE_BYTES} bytes, no control characters but new lines"
            ),
        ));
    }
    let result = st
        .writer
        .acknowledge_exception(id, by.to_string(), note.to_string(), st.clock.now_ms())
        .await
        .map_err(write_error)?;
    match result {
        AckResult::Acknowledged(x) => {
            tracing::info!(exception = id, kind = %x.kind, store = %x.store, by, "Exception acknowledged by HQ.");
            let mut v = exception_json(*x);
            v["already"] = json!(false);
            Ok(Json(v))
        }
        AckResult::Already(x) => {
            let mut v = exception_json(*x);
            v["already"] = json!(true);
            Ok(Json(v))
        }
        AckResult::NotFound => Err(error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no exception {id}"),
        )),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct SalesQuery {
    #[serde(default)]
    minutes: Option<u64>,
}

/// `GET /v1/stats/sales`: units sold at the tills per store and minute
/// over the last `minutes` (default 60, at most 7 days), for the
/// dashboard's chart.
pub(super) async fn sales_stats(
    State(st): State<AppState>,
    headers: HeaderMap,
    query: QueryResult<SalesQuery>,
) -> Result<Json<Value>, Response> {
    let q = admin_query(
        &st,
        &headers,
        query,
        "minutes must be a non-negative integer",
    )?;
    let minutes = q.minutes.unwrap_or(60).clamp(1, SALES_WINDOW_MINUTES);
    let since = (st.clock.now_ms() / 60_000).saturating_sub(minutes);
    let rows = read_storage(&st, move |s| s.sales_per_minute(since)).await?;
    let mut stores = serde_json::Map::new();
    for (store, minute, units) in rows {
        if let Value::Array(points) = stores.entry(store).or_insert_with(|| json!([])) {
            points.push(json!({ "t": minute * 60, "units": units }));
        }
    }
    Ok(Json(
        json!({ "bucket_seconds": 60, "minutes": minutes, "stores": stores }),
    ))
}

/// `GET /v1/stats/orders`: routed orders and transfers counted by status
/// (kept as they move: O(statuses), whatever their number).
pub(super) async fn order_stats(
    State(st): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, Response> {
    authorized(&st, &headers)?;
    let counts = read_storage(&st, |s| s.status_counts()).await?;
    Ok(Json(json!(counts)))
}

/// `GET /v1/audit`: units in and out per (store, item) from every event
/// the hub holds, against its counters: the chain-wide "was anything sold
/// twice?" check (docs/api-hub.md).
pub(super) async fn audit(
    State(st): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, Response> {
    authorized(&st, &headers)?;
    let report = read_storage(&st, |s| s.audit()).await?;
    let disagreeing = report
        .rows
        .iter()
        .filter(|r| u128::from(r.on_hand) != r.on_hand_by_events)
        .count();
    Ok(Json(json!({
        "events": report.events,
        "double_sold": report.double_sold,
        "epcs_sold_twice": report.epcs_sold_twice.len(),
        "epcs_sold_twice_list": report.epcs_sold_twice,
        "counters_disagreeing": disagreeing,
        "holdings_disagreeing": report.holdings_disagreeing,
        "items": report.rows,
    })))
}

/// `GET /metrics`: the Prometheus text, with the stores known and online.
pub(super) async fn metrics(
    State(st): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, Response> {
    authorized_for_metrics(&st, &headers)?;
    let window = st.settings.online_window_ms;
    let mut records = read_storage(&st, |s| s.stores()).await?;
    records.retain(|r| r.syncs > 0);
    let now = st.clock.now_ms();
    let online = records
        .iter()
        .filter(|r| is_online(r.last_sync_ms, now, window))
        .count();
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        st.metrics.render(
            records.len(),
            online,
            crate::metrics::Gauges {
                live: st.links.count() as u64,
                dropped: st.links.dropped(),
                bytes_in_flight: st.budget.in_flight() as u64,
                units_held: st.links.units_held(),
                bus: st.links.bus_state(),
                revocations_followed: st.revocations.shared_followed(),
            },
        ),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn online_rule() {
        assert!(is_online(1_000, 121_000, 120_000));
        assert!(!is_online(1_000, 121_001, 120_000));
        assert!(is_online(5_000, 1_000, 120_000));
    }
}
