//! The hub's HTTP API (axum): `POST /v1/sync` for stores (client
//! certificate), and the admin API (bearer token): orders, catalog, stock,
//! stores, exceptions, metrics. Bodies are documented in `docs/api-hub.md`.
//!
//! # Design constraints
//! - A store's identity comes only from its certificate ([`Peer`]); the
//!   body's `replica`/`location` are checked against it by `hub_handle`.
//! - Bodies are read with a limit enforced while reading; anything
//!   malformed gets a 4xx JSON error `{"error": code, "message": text}`
//!   and changes nothing.
//! - Writes go through the [`Writer`]; a 2xx is sent only after the commit
//!   (fsync) returned.

// Helpers return `Result<_, Response>` so handlers can `?`-style bail out
// with the finished error response; its size does not matter here.
#![allow(clippy::result_large_err)]

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use http_body_util::BodyExt;
use rand::RngCore;
use serde::Deserialize;
use serde_json::{json, Value};
use tally_sync::codec::{self, CodecError, Encoding};
use tally_sync::exchange::Identity;
use tally_sync::message::CatalogItem;
use tally_sync::timestamp::rfc3339;
use tally_sync::{EventId, Gtin, LocationId, SyncRequest};
use tracing::{info, warn};

use crate::metrics::{Metrics, SyncOutcome};
use crate::pki::Revocations;
use crate::storage::{CatalogResult, HubStorage, OrderRequest, OrderResult, SyncResult};
use crate::tls::Peer;
use crate::writer::{WriteError, Writer};

/// Longest order id accepted.
pub const MAX_ORDER_ID_LEN: usize = 128;
/// Most lines in one order.
pub const MAX_ORDER_LINES: usize = 1_000;
/// Most items in one catalog request.
pub const MAX_CATALOG_ITEMS: usize = 10_000;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// Storage, for reads.
    pub storage: Arc<dyn HubStorage>,
    /// The single writer.
    pub writer: Writer,
    /// Revoked certificates.
    pub revocations: Arc<Revocations>,
    /// The admin token.
    pub admin_token: Arc<str>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Limits and windows.
    pub settings: Arc<ApiSettings>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

/// Limits the handlers enforce.
#[derive(Debug, Clone, Copy)]
pub struct ApiSettings {
    /// Largest sync body.
    pub max_sync_body: usize,
    /// Largest admin body.
    pub max_admin_body: usize,
    /// Online window for `/v1/stores`.
    pub online_window_ms: u64,
}

/// The router; every request must carry a [`Peer`] extension.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/sync", post(sync))
        .route("/v1/orders", post(orders))
        .route("/v1/catalog", post(catalog))
        .route("/v1/stock/{gtin}", get(stock))
        .route("/v1/stores", get(stores))
        .route("/v1/exceptions", get(exceptions))
        .route("/v1/stats/sales", get(sales_stats))
        .route("/v1/audit", get(audit))
        .route("/metrics", get(metrics))
        .route("/", get(dashboard_page))
        .route("/assets/app.js", get(dashboard_js))
        .route("/assets/style.css", get(dashboard_css))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "not_found", "no such endpoint") })
        .with_state(state)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A JSON error response.
fn error(status: StatusCode, code: &str, message: impl std::fmt::Display) -> Response {
    (
        status,
        Json(json!({ "error": code, "message": message.to_string() })),
    )
        .into_response()
}

fn with_fields(status: StatusCode, mut body: Value) -> Response {
    if let Value::Object(m) = &mut body {
        m.entry("message").or_insert_with(|| Value::from(""));
    }
    (status, Json(body)).into_response()
}

/// Longest time a client may take to send a body.
pub const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Why a body could not be read.
enum BodyError {
    TooLarge,
    Read(String),
}

async fn read_body(headers: &HeaderMap, body: Body, max: usize) -> Result<Bytes, BodyError> {
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if len > max as u64 {
            return Err(BodyError::TooLarge);
        }
    }
    match http_body_util::Limited::new(body, max).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(BodyError::TooLarge)
        }
        Err(e) => Err(BodyError::Read(e.to_string())),
    }
}

fn body_error(e: BodyError, max: usize) -> Response {
    match e {
        BodyError::TooLarge => error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("body larger than the limit of {max} bytes"),
        ),
        BodyError::Read(e) => error(StatusCode::BAD_REQUEST, "body_unreadable", e),
    }
}

fn write_error(e: WriteError) -> Response {
    let mut r = error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", &e);
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

// ---------------------------------------------------------------- sync

async fn sync(
    State(st): State<AppState>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let (outcome, response) = sync_inner(&st, &peer, &headers, body).await;
    st.metrics.sync(outcome, started.elapsed());
    response
}

async fn sync_inner(
    st: &AppState,
    peer: &Peer,
    headers: &HeaderMap,
    body: Body,
) -> (SyncOutcome, Response) {
    // 1. Identity: from the certificate only.
    let id = match &peer.cert {
        None => {
            return (
                SyncOutcome::Unauthenticated,
                error(
                    StatusCode::UNAUTHORIZED,
                    "client_certificate_required",
                    "/v1/sync needs the store's client certificate (tally-hub enroll)",
                ),
            )
        }
        Some(Err(e)) => {
            warn!(peer = %peer.addr, error = %e, "Sync refused: certificate names no store.");
            return (
                SyncOutcome::CertRefused,
                error(StatusCode::FORBIDDEN, "certificate_not_bound_to_store", e),
            );
        }
        Some(Ok(id)) => id,
    };
    match st.revocations.is_revoked(&id.serial) {
        Ok(false) => {}
        Ok(true) => {
            warn!(store = %id.store, serial = %id.serial, peer = %peer.addr, "Sync refused: certificate revoked.");
            return (
                SyncOutcome::CertRefused,
                error(
                    StatusCode::FORBIDDEN,
                    "certificate_revoked",
                    format!("the certificate for store {} was revoked", id.store),
                ),
            );
        }
        Err(e) => {
            warn!(error = %e, "Revocation list unreadable; refusing syncs until it is fixed.");
            return (
                SyncOutcome::Unavailable,
                error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "revocation_list_unreadable",
                    e,
                ),
            );
        }
    }

    // 2. Body: content type, size, version, shape.
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(enc) = Encoding::from_content_type(ct) else {
        return (
            SyncOutcome::BadRequest,
            error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_content_type",
                "send application/x-tally-sync (binary) or application/json",
            ),
        );
    };
    let max = st.settings.max_sync_body;
    let bytes = match read_body(headers, body, max).await {
        Ok(b) => b,
        Err(e) => {
            let outcome = match e {
                BodyError::TooLarge => SyncOutcome::TooLarge,
                BodyError::Read(_) => SyncOutcome::BadRequest,
            };
            warn!(store = %id.store, "Sync refused: body too large or unreadable.");
            return (outcome, body_error(e, max));
        }
    };
    // Large bodies are decoded off the async workers.
    let decoded = if bytes.len() > 256 * 1024 {
        match tokio::task::spawn_blocking(move || codec::decode::<SyncRequest>(&bytes, enc, max))
            .await
        {
            Ok(r) => r,
            Err(e) => {
                return (
                    SyncOutcome::Unavailable,
                    error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e),
                )
            }
        }
    } else {
        codec::decode::<SyncRequest>(&bytes, enc, max)
    };
    let req: SyncRequest = match decoded {
        Ok(r) => r,
        Err(e) => {
            warn!(store = %id.store, error = %e, "Sync refused: undecodable request.");
            let r = match &e {
                CodecError::UnsupportedVersion { found, supported } => with_fields(
                    StatusCode::BAD_REQUEST,
                    json!({
                        "error": "unsupported_protocol_version",
                        "message": e.to_string(),
                        "found": found.to_string(),
                        "supported": supported.to_string(),
                    }),
                ),
                CodecError::TooLarge { .. } => {
                    return (SyncOutcome::TooLarge, body_error(BodyError::TooLarge, max))
                }
                _ => error(StatusCode::BAD_REQUEST, "malformed_request", &e),
            };
            return (SyncOutcome::BadRequest, r);
        }
    };

    // 3. Validate, merge and answer, in one durable transaction.
    let who = Identity {
        replica: id.store.clone(),
        location: match LocationId::new(id.store.as_str()) {
            Ok(l) => l,
            Err(e) => {
                return (
                    SyncOutcome::CertRefused,
                    error(StatusCode::FORBIDDEN, "certificate_not_bound_to_store", e),
                )
            }
        },
    };
    let events = req.events.len();
    match st.writer.sync(who, req, now_ms()).await {
        Ok(SyncResult::Synced(resp, summary)) => {
            st.metrics.merged(
                summary.new_events,
                summary.duplicate_events,
                summary.merged,
                summary.rights_given,
            );
            st.metrics.exceptions(summary.exceptions);
            info!(
                store = %id.store,
                events,
                new_events = summary.new_events,
                merged = summary.merged,
                rights_given = summary.rights_given,
                exceptions = summary.exceptions,
                more = resp.more,
                "Sync acknowledged."
            );
            match codec::encode(resp.as_ref(), enc) {
                Ok(body) => (
                    SyncOutcome::Ok,
                    (
                        StatusCode::OK,
                        [(header::CONTENT_TYPE, enc.content_type())],
                        body,
                    )
                        .into_response(),
                ),
                Err(e) => (
                    SyncOutcome::Unavailable,
                    error(StatusCode::INTERNAL_SERVER_ERROR, "encode_failed", e),
                ),
            }
        }
        Ok(SyncResult::Refused(refusal)) => {
            let forbidden = refusal.is_forbidden();
            warn!(store = %id.store, forbidden, error = %refusal, "Sync refused whole; nothing written.");
            if forbidden {
                (
                    SyncOutcome::Forbidden,
                    error(StatusCode::FORBIDDEN, "forbidden_update", &refusal),
                )
            } else {
                let mut body = json!({ "error": "refused_update", "message": refusal.to_string() });
                if let tally_sync::exchange::SyncRefusal::Event { id, .. } = &refusal {
                    // The client can dead-letter this event and sync the rest.
                    body["event_id"] = json!(id);
                }
                (
                    SyncOutcome::Invalid,
                    with_fields(StatusCode::UNPROCESSABLE_ENTITY, body),
                )
            }
        }
        Err(e) => (SyncOutcome::Unavailable, write_error(e)),
    }
}

// ---------------------------------------------------------------- admin

fn authorized(st: &AppState, headers: &HeaderMap) -> Result<(), Response> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let ok = given.is_some_and(|g| constant_time_eq(g.as_bytes(), st.admin_token.as_bytes()));
    if ok {
        return Ok(());
    }
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

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OrderBody {
    #[serde(default)]
    order_id: Option<String>,
    store: String,
    lines: Vec<OrderLineBody>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OrderLineBody {
    gtin: String,
    qty: u64,
}

fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, Response> {
    serde_json::from_slice(bytes).map_err(|e| error(StatusCode::BAD_REQUEST, "invalid_body", e))
}

fn invalid(message: impl std::fmt::Display) -> Response {
    error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", message)
}

fn validate_order(body: OrderBody) -> Result<OrderRequest, Response> {
    let now = now_ms();
    let mut random = [0u8; 10];
    rand::rngs::OsRng.fill_bytes(&mut random);
    let event_id = EventId::v7(now, random);
    let order_id = match body.order_id {
        None => event_id.to_string(),
        Some(id) => {
            if id.is_empty()
                || id.len() > MAX_ORDER_ID_LEN
                || !id.bytes().all(|b| b.is_ascii_graphic())
            {
                return Err(invalid(format!(
                    "order_id must be 1 to {MAX_ORDER_ID_LEN} printable ASCII characters"
                )));
            }
            id
        }
    };
    let store = LocationId::new(&body.store).map_err(|e| invalid(format!("store: {e}")))?;
    if store.as_str() == tally_sync::ReplicaId::HUB {
        return Err(invalid("store: \"hub\" is not a store"));
    }
    if body.lines.is_empty() || body.lines.len() > MAX_ORDER_LINES {
        return Err(invalid(format!(
            "an order has 1 to {MAX_ORDER_LINES} lines"
        )));
    }
    let mut lines: std::collections::BTreeMap<Gtin, u64> = Default::default();
    for l in body.lines {
        let gtin = Gtin::parse(&l.gtin).map_err(|e| invalid(format!("gtin {:?}: {e}", l.gtin)))?;
        if l.qty == 0 || l.qty > 1_000_000 {
            return Err(invalid(format!("qty for {gtin} must be 1 to 1000000")));
        }
        let q = lines.entry(gtin).or_default();
        *q = q.saturating_add(l.qty);
    }
    Ok(OrderRequest {
        order_id,
        store,
        lines: lines.into_iter().collect(),
        event_id,
        now_ms: now,
    })
}

async fn orders(State(st): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    if let Err(r) = authorized(&st, &headers) {
        return r;
    }
    let max = st.settings.max_admin_body;
    let bytes = match read_body(&headers, body, max).await {
        Ok(b) => b,
        Err(e) => return body_error(e, max),
    };
    let order = match parse_json::<OrderBody>(&bytes).and_then(validate_order) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let (order_id, store) = (order.order_id.clone(), order.store.clone());
    match st.writer.order(order).await {
        Ok(result) => match result {
            OrderResult::Accepted(receipt) => {
                st.metrics.order(true, false);
                info!(order_id = %order_id, store = %store, event = %receipt.event_id, "Online order accepted.");
                (StatusCode::CREATED, Json(receipt)).into_response()
            }
            OrderResult::Replayed(receipt) => {
                st.metrics.order(true, true);
                (StatusCode::OK, Json(receipt)).into_response()
            }
            OrderResult::InsufficientStock {
                gtin,
                requested,
                available,
            } => {
                st.metrics.order(false, false);
                info!(order_id = %order_id, store = %store, gtin = %gtin, requested, available, "Online order refused: insufficient stock.");
                with_fields(
                    StatusCode::CONFLICT,
                    json!({
                        "error": "insufficient_stock",
                        "message": format!("the hub holds {available} of {gtin} at store {store}, {requested} requested"),
                        "gtin": gtin,
                        "requested": requested,
                        "available": available,
                    }),
                )
            }
            OrderResult::IdConflict { order_id } => error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "order_id_conflict",
                format!("order_id {order_id:?} was already used for a different order"),
            ),
            OrderResult::Invalid(m) => invalid(m),
        },
        Err(e) => write_error(e),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogBody {
    items: Vec<CatalogItemBody>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogItemBody {
    gtin: String,
    name: String,
    price_minor: i64,
}

async fn catalog(State(st): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    if let Err(r) = authorized(&st, &headers) {
        return r;
    }
    let max = st.settings.max_admin_body;
    let bytes = match read_body(&headers, body, max).await {
        Ok(b) => b,
        Err(e) => return body_error(e, max),
    };
    let parsed: CatalogBody = match parse_json(&bytes) {
        Ok(b) => b,
        Err(r) => return r,
    };
    if parsed.items.is_empty() || parsed.items.len() > MAX_CATALOG_ITEMS {
        return invalid(format!("send 1 to {MAX_CATALOG_ITEMS} items"));
    }
    let mut items = Vec::with_capacity(parsed.items.len());
    for i in parsed.items {
        let gtin = match Gtin::parse(&i.gtin) {
            Ok(g) => g,
            Err(e) => return invalid(format!("gtin {:?}: {e}", i.gtin)),
        };
        match CatalogItem::new(gtin, &i.name, i.price_minor) {
            Ok(item) => items.push(item),
            Err(e) => return invalid(e.to_string()),
        }
    }
    let received = items.len();
    match st.writer.catalog(items).await {
        Ok(CatalogResult { changed }) => {
            info!(received, changed, "Catalog updated.");
            (
                StatusCode::OK,
                Json(json!({ "received": received, "changed": changed })),
            )
                .into_response()
        }
        Err(e) => write_error(e),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::storage::StorageError> + Send + 'static,
) -> Result<T, Response> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(error(StatusCode::SERVICE_UNAVAILABLE, "storage_failure", e)),
        Err(e) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e)),
    }
}

async fn stock(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(gtin): Path<String>,
) -> Response {
    if let Err(r) = authorized(&st, &headers) {
        return r;
    }
    let gtin = match Gtin::parse(&gtin) {
        Ok(g) => g,
        Err(e) => return error(StatusCode::BAD_REQUEST, "invalid_gtin", e),
    };
    let storage = st.storage.clone();
    match blocking(move || Ok((storage.catalog_item(gtin)?, storage.stock(gtin)?))).await {
        Ok((item, rows)) => {
            let on_hand: u64 = rows.iter().map(|(_, s)| s.on_hand).sum();
            let stores: serde_json::Map<String, Value> =
                rows.into_iter().map(|(id, s)| (id, json!(s))).collect();
            let name = item.map(|i| i.name);
            Json(json!({ "gtin": gtin, "name": name, "on_hand": on_hand, "stores": stores }))
                .into_response()
        }
        Err(r) => r,
    }
}

/// Whether a store counts as online: its last accepted sync is within the
/// window (documented in docs/api-hub.md).
pub fn is_online(last_sync_ms: u64, now_ms: u64, window_ms: u64) -> bool {
    now_ms.saturating_sub(last_sync_ms) <= window_ms
}

async fn stores(State(st): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(r) = authorized(&st, &headers) {
        return r;
    }
    let storage = st.storage.clone();
    let window = st.settings.online_window_ms;
    match blocking(move || storage.stores()).await {
        Ok(records) => {
            let now = now_ms();
            let list: Vec<Value> = records
                .into_iter()
                .map(|r| {
                    json!({
                        "store": r.store,
                        "online": is_online(r.last_sync_ms, now, window),
                        "last_sync_ms": r.last_sync_ms,
                        "last_sync_at": rfc3339(r.last_sync_ms),
                        "seconds_since_last_sync": now.saturating_sub(r.last_sync_ms) / 1000,
                        "first_sync_ms": r.first_sync_ms,
                        "syncs": r.syncs,
                        "events_received": r.events_received,
                        "acked_events_upto": r.acked_events_upto,
                    })
                })
                .collect();
            Json(json!({ "online_window_secs": window / 1000, "stores": list })).into_response()
        }
        Err(r) => r,
    }
}

type QueryResult<Q> = Result<Query<Q>, axum::extract::rejection::QueryRejection>;

/// The admin token check and the query string of an admin GET: the query
/// or the 401/400 to answer (with `usage` saying what the query takes).
fn admin_query<Q>(
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

#[derive(Debug, Deserialize)]
struct ExceptionsQuery {
    #[serde(default)]
    since: u64,
    #[serde(default)]
    limit: Option<usize>,
}

async fn exceptions(
    State(st): State<AppState>,
    headers: HeaderMap,
    query: QueryResult<ExceptionsQuery>,
) -> Response {
    let q = match admin_query(
        &st,
        &headers,
        query,
        "since and limit must be non-negative integers",
    ) {
        Ok(q) => q,
        Err(r) => return r,
    };
    let limit = q.limit.unwrap_or(1000).clamp(1, 10_000);
    let storage = st.storage.clone();
    match blocking(move || storage.exceptions(q.since, limit)).await {
        Ok(list) => {
            let next = list.last().map_or(q.since, |x| x.id);
            let list: Vec<Value> = list
                .into_iter()
                .map(|x| {
                    let at = rfc3339(x.at_ms);
                    let mut v = json!(x);
                    v["at"] = json!(at);
                    v
                })
                .collect();
            Json(json!({ "exceptions": list, "next": next })).into_response()
        }
        Err(r) => r,
    }
}

#[derive(Debug, Deserialize)]
struct SalesQuery {
    #[serde(default)]
    minutes: Option<u64>,
}

/// Units sold at the tills per store and minute over the last `minutes`
/// (default 60, at most 7 days), for the dashboard's chart.
async fn sales_stats(
    State(st): State<AppState>,
    headers: HeaderMap,
    query: QueryResult<SalesQuery>,
) -> Response {
    let q = match admin_query(
        &st,
        &headers,
        query,
        "minutes must be a non-negative integer",
    ) {
        Ok(q) => q,
        Err(r) => return r,
    };
    let minutes = q.minutes.unwrap_or(60).clamp(1, 7 * 24 * 60);
    let since = (now_ms() / 60_000).saturating_sub(minutes);
    let storage = st.storage.clone();
    match blocking(move || storage.sales_per_minute(since)).await {
        Ok(rows) => {
            let mut stores = serde_json::Map::new();
            for (store, minute, units) in rows {
                if let Value::Array(points) = stores.entry(store).or_insert_with(|| json!([])) {
                    points.push(json!({ "t": minute * 60, "units": units }));
                }
            }
            Json(json!({ "bucket_seconds": 60, "minutes": minutes, "stores": stores }))
                .into_response()
        }
        Err(r) => r,
    }
}

/// Units in and out per (store, item) from every event the hub holds,
/// against its counters: the chain-wide "was anything sold twice?" check
/// (docs/api-hub.md).
async fn audit(State(st): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(r) = authorized(&st, &headers) {
        return r;
    }
    let storage = st.storage.clone();
    match blocking(move || storage.audit()).await {
        Ok(report) => {
            let double_sold: u64 = report.rows.iter().map(|r| r.oversold).sum();
            let disagreeing = report
                .rows
                .iter()
                .filter(|r| r.on_hand != r.on_hand_by_events)
                .count();
            Json(json!({
                "events": report.events,
                "double_sold": double_sold,
                "epcs_sold_twice": report.epcs_sold_twice.len(),
                "epcs_sold_twice_list": report.epcs_sold_twice,
                "counters_disagreeing": disagreeing,
                "items": report.rows,
            }))
            .into_response()
        }
        Err(r) => r,
    }
}

async fn metrics(State(st): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(r) = authorized(&st, &headers) {
        return r;
    }
    let storage = st.storage.clone();
    let window = st.settings.online_window_ms;
    let (stores, online) = match blocking(move || storage.stores()).await {
        Ok(records) => {
            let now = now_ms();
            let online = records
                .iter()
                .filter(|r| is_online(r.last_sync_ms, now, window))
                .count();
            (records.len(), online)
        }
        Err(r) => return r,
    };
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        st.metrics.render(stores, online),
    )
        .into_response()
}

// ---------------------------------------------------------------- dashboard

// The HQ dashboard's static files, built into the binary. They hold no
// data: the page asks for the admin token and calls the admin API with it.
const DASHBOARD_HTML: &str = include_str!("../assets/index.html");
const DASHBOARD_JS: &str = include_str!("../assets/app.js");
const DASHBOARD_CSS: &str = include_str!("../assets/style.css");

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

async fn dashboard_page() -> Response {
    asset("text/html; charset=utf-8", DASHBOARD_HTML)
}

async fn dashboard_js() -> Response {
    asset("text/javascript; charset=utf-8", DASHBOARD_JS)
}

async fn dashboard_css() -> Response {
    asset("text/css; charset=utf-8", DASHBOARD_CSS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_compares_whole_strings() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }

    #[test]
    fn online_rule() {
        assert!(is_online(1_000, 121_000, 120_000));
        assert!(!is_online(1_000, 121_001, 120_000));
        assert!(is_online(5_000, 1_000, 120_000));
    }

    #[test]
    fn orders_are_validated_and_merged_by_item() {
        let g = "4006381333931";
        let body = OrderBody {
            order_id: Some("web-1".into()),
            store: "s1".into(),
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
        let o = validate_order(body).unwrap();
        assert_eq!(o.lines, vec![(Gtin::parse(g).unwrap(), 5)]);
        for (store, qty, id) in [
            ("hub", 1, "x"),
            ("s1", 0, "x"),
            ("s1", 1, "a b"),
            ("a/b", 1, "x"),
        ] {
            let bad = OrderBody {
                order_id: Some(id.into()),
                store: store.into(),
                lines: vec![OrderLineBody {
                    gtin: g.into(),
                    qty,
                }],
            };
            assert!(validate_order(bad).is_err(), "{store} {qty} {id}");
        }
    }
}
