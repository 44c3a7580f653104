//! The hub's HTTP API (axum): `POST /v1/sync` and `POST /v1/rights` for
//! stores (client certificate), the admin API (bearer token): orders, catalog, stock,
//! stores, exceptions, metrics, and the HQ dashboard's files. Bodies are
//! documented in `docs/api-hub.md`.
//!
//! This module owns what every endpoint shares: [`AppState`], the
//! [`router`], error responses, body reading and running storage reads off
//! the async workers. The endpoints live in:
//! - `sync`: `POST /v1/sync`, in named steps (identify, decode, submit,
//!   answer).
//! - `rights`: `POST /v1/rights`, a store's request for the hub's rights
//!   at its location (identified as for a sync).
//! - `link`: `GET /v1/link`, a store's live link (a long-lived stream of
//!   notices), and `POST /v1/rights/released`, its report of rights it
//!   gave up for an online order.
//! - `admin`: the admin token check and the admin reads (stock, stores,
//!   exceptions, sales per minute, orders and transfers by status, audit,
//!   metrics).
//! - `orders`: `POST /v1/orders`: validating an online order.
//! - `catalog`: `POST /v1/catalog`.
//! - `dashboard`: the dashboard's files, embedded in the binary.
//! - `enroll`: `POST /v1/enroll` (a store's first certificate, for a
//!   one-time code and a signing request) and `POST /v1/renew` (a new
//!   certificate over the current one).
//!
//! # Design constraints
//! - A store's identity comes only from its certificate ([`Peer`]); the
//!   body's `replica`/`location` are checked against it by `hub_handle`.
//! - Bodies are read with a limit enforced while reading; anything
//!   malformed gets a 4xx JSON error `{"error": code, "message": text}`
//!   and changes nothing.
//! - Writes go through the [`Writer`]; a 2xx is sent only after the commit
//!   (fsync) returned.
//!
//! [`Peer`]: crate::tls::Peer

// Helpers return `Result<_, Response>` so handlers can `?`-style bail out
// with the finished error response; its size does not matter here.
#![allow(clippy::result_large_err)]

mod admin;
mod allocations;
pub mod budget;
mod catalog;
mod dashboard;
mod enroll;
mod held;
mod link;
mod orders;
mod returns;
mod rights;
mod slots;
mod sync;
mod transfers;

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use budget::{Budget, Held, Payer};
use http_body_util::BodyExt;
use tally_sync::clock::Clock;
use tally_sync::error_body::ErrorBody;

use crate::link::Links;
use crate::metrics::Metrics;
use crate::pki::Revocations;
use crate::storage::{HubStorage, StorageError};
use crate::writer::{HoldsAt, WriteError, Writer};

pub use self::slots::StoreSlots;
use self::slots::{Kind, Slot};

pub use self::admin::is_online;
pub use self::catalog::MAX_CATALOG_ITEMS;
pub use self::orders::{MAX_ORDER_ID_LEN, MAX_ORDER_LINES};

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// Storage, for reads.
    pub storage: Arc<dyn HubStorage>,
    /// The single writer.
    pub writer: Writer,
    /// Revoked certificates.
    pub revocations: Arc<Revocations>,
    /// One-time enrollment codes kept in the shared database (beside the
    /// data directory's), if the hub runs on one.
    pub enroll_codes: Option<Arc<dyn crate::pki::CodeBook>>,
    /// The admin token.
    pub admin_token: Arc<str>,
    /// The metrics token (`GET /metrics` only), if the data directory has
    /// one.
    pub metrics_token: Option<Arc<str>>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Limits and windows.
    pub settings: Arc<ApiSettings>,
    /// The wall clock: the time of syncs and orders, and "now" for the
    /// online window and the sales feed.
    pub clock: Arc<dyn Clock>,
    /// The stores' live links.
    pub links: Arc<Links>,
    /// Bytes of request bodies in flight (read, decoded or waiting for
    /// the writer), tiered so large or anonymous bodies cannot starve
    /// small syncs (`budget.rs`).
    pub budget: Arc<Budget>,
    /// What each store has in flight (one sync, a bounded number of
    /// other writes).
    pub slots: Arc<StoreSlots>,
    /// Enrollments being redeemed ([`crate::Config::max_enrollments`]).
    pub enrollments: Arc<tokio::sync::Semaphore>,
}

impl AppState {
    /// How the writer reads the holds of orders waiting on a store's
    /// release, as a sync or a grant runs ([`Links::holds_at`]).
    fn holds_at(&self) -> HoldsAt {
        let links = self.links.clone();
        Arc::new(move |at| links.holds_at(at))
    }
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
    /// How often a live link carries a heartbeat.
    pub heartbeat: std::time::Duration,
    /// How long an online order short of the hub's reserve waits for a
    /// live store to release rights.
    pub rights_wait: std::time::Duration,
    /// Longest time a client may take to send a body.
    pub body_read_timeout: std::time::Duration,
    /// Most events in one sync request.
    pub max_sync_events: usize,
    /// The budget's size: most bytes of bodies in flight at once.
    pub max_queued_bytes: usize,
    /// How long a transfer may stay in transit before it is overdue.
    pub transfer_overdue_ms: u64,
}

/// The router; every request must carry a [`Peer`] extension.
///
/// [`Peer`]: crate::tls::Peer
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/sync", post(sync::sync))
        .route("/v1/rights", post(rights::rights))
        .route("/v1/rights/released", post(link::released))
        .route("/v1/link", get(link::link))
        .route("/v1/allocations", get(allocations::allocations))
        .route("/v1/returns/check", post(returns::check))
        .route("/v1/returns", get(returns::list))
        .route("/v1/enroll", post(enroll::enroll))
        .route("/v1/renew", post(enroll::renew))
        .route("/v1/orders", post(orders::orders).get(orders::list))
        .route("/v1/orders/{id}", get(orders::order))
        .route("/v1/orders/{id}/cancel", post(orders::cancel))
        .route("/v1/transfers", get(transfers::list))
        .route("/v1/transfers/{id}", get(transfers::transfer))
        .route("/v1/catalog", post(catalog::catalog))
        .route("/v1/stock/{gtin}", get(admin::stock))
        .route("/v1/stores", get(admin::stores))
        .route("/v1/exceptions", get(admin::exceptions))
        .route("/v1/exceptions/{id}/ack", post(admin::acknowledge))
        .route("/v1/held", get(held::list))
        .route("/v1/held/{id}/admit", post(held::admit))
        .route("/v1/stats/sales", get(admin::sales_stats))
        .route("/v1/stats/orders", get(admin::order_stats))
        .route("/v1/audit", get(admin::audit))
        .route("/metrics", get(admin::metrics))
        .route("/", get(dashboard::page))
        .route("/assets/app.js", get(dashboard::js))
        .route("/assets/style.css", get(dashboard::css))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "not_found", "no such endpoint") })
        .with_state(state)
}

/// A JSON error response (`tally_sync::error_body::ErrorBody`, the
/// agent's shape too).
fn error(status: StatusCode, code: &str, message: impl std::fmt::Display) -> Response {
    with_details(status, ErrorBody::new(code, message))
}

/// A JSON error response with details beyond `error` and `message`.
fn with_details(status: StatusCode, body: ErrorBody) -> Response {
    (status, Json(body)).into_response()
}

/// A 422 `invalid_request`.
fn invalid(message: impl std::fmt::Display) -> Response {
    error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", message)
}

/// Why a body could not be read.
enum BodyError {
    TooLarge,
    /// The client took longer than the body-read timeout.
    Timeout,
    /// Bodies in flight already hold the whole byte budget.
    Overloaded,
    Read(String),
}

/// A request body read whole. It holds its share of the hub's budget of
/// bytes in flight ([`ApiSettings::max_queued_bytes`]) until dropped:
/// keep it until the writer has answered.
struct ReadBody {
    bytes: Bytes,
    _budget: Held,
}

/// Reads a body of at most `max` bytes within the body-read timeout,
/// taking its bytes from the budget, as `payer`, as they arrive.
async fn read_body(
    st: &AppState,
    headers: &HeaderMap,
    mut body: Body,
    max: usize,
    payer: Payer,
) -> Result<ReadBody, BodyError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max as u64) {
        return Err(BodyError::TooLarge);
    }
    let deadline = tokio::time::Instant::now() + st.settings.body_read_timeout;
    let mut buf: Vec<u8> = Vec::new();
    let mut budget = Held::default();
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => {
                st.metrics.shed("body_timeout");
                return Err(BodyError::Timeout);
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(BodyError::Read(e.to_string())),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        if buf.len() + data.len() > max {
            return Err(BodyError::TooLarge);
        }
        if st.budget.take(payer, &mut budget, data.len()).is_err() {
            st.metrics.shed(match payer {
                Payer::Known => "writer_queue_full",
                Payer::Anonymous => "anonymous_budget_full",
            });
            return Err(BodyError::Overloaded);
        }
        buf.extend_from_slice(&data);
    }
    Ok(ReadBody {
        bytes: Bytes::from(buf),
        _budget: budget,
    })
}

fn body_error(e: BodyError, max: usize) -> Response {
    match e {
        BodyError::TooLarge => error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("body larger than the limit of {max} bytes"),
        ),
        BodyError::Timeout => error(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            "the request body did not arrive within the body-read timeout",
        ),
        BodyError::Overloaded => overloaded("the hub has too many request bytes in flight"),
        BodyError::Read(e) => error(StatusCode::BAD_REQUEST, "body_unreadable", e),
    }
}

/// A store's small JSON write (`POST /v1/rights`, `/v1/rights/released`)
/// once admitted: the store (from its certificate), its place among its
/// writes in flight (keep it until answered), and the body read under
/// `max` and parsed as `T` (a 422 `not a {what}` otherwise). `endpoint`
/// names the route in a refusal of the certificate.
async fn store_json<T: serde::de::DeserializeOwned>(
    st: &AppState,
    peer: &crate::tls::Peer,
    endpoint: &str,
    headers: &HeaderMap,
    body: Body,
    max: usize,
    what: &str,
) -> Result<(tally_sync::exchange::Identity, Slot, T), Response> {
    let who = sync::identify(st, peer, endpoint)
        .and_then(sync::store_identity)
        .map_err(|(_, response)| response)?;
    let slot = store_slot(st, &who.location, Kind::Other)?;
    let read = read_body(st, headers, body, max, Payer::Known)
        .await
        .map_err(|e| body_error(e, max))?;
    let parsed =
        serde_json::from_slice(&read.bytes).map_err(|e| invalid(format!("not a {what}: {e}")))?;
    Ok((who, slot, parsed))
}

/// A place among `location`'s requests in flight, or the 429
/// (`Retry-After`) to answer: the store has all its places of `kind`.
fn store_slot(
    st: &AppState,
    location: &tally_sync::LocationId,
    kind: Kind,
) -> Result<Slot, Response> {
    st.slots.take(location, kind).ok_or_else(|| {
        let (reason, code, message) = match kind {
            Kind::Sync => (
                "sync_in_progress",
                "sync_in_progress",
                "this store's previous sync is still in flight; retry after it is answered",
            ),
            Kind::Other => (
                "store_writes_in_flight",
                "too_many_requests",
                "this store has too many requests in flight; retry later",
            ),
        };
        st.metrics.shed(reason);
        let mut r = error(StatusCode::TOO_MANY_REQUESTS, code, message);
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        r
    })
}

/// A 503 `overloaded` with `Retry-After`: nothing was done; retry later.
fn overloaded(message: impl std::fmt::Display) -> Response {
    let mut r = error(StatusCode::SERVICE_UNAVAILABLE, "overloaded", message);
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

/// A 503 with `Retry-After`: the write was not committed, or (code
/// `outcome_unknown`) its commit was not confirmed; a retry under the
/// same ids is answered alike either way.
fn write_error(e: WriteError) -> Response {
    let code = match e {
        WriteError::Unknown(_) => "outcome_unknown",
        WriteError::Storage(_) | WriteError::Stopped => "unavailable",
    };
    let mut r = error(StatusCode::SERVICE_UNAVAILABLE, code, &e);
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

/// Runs a storage read on the blocking pool, off the async workers: its
/// value, or the 503 (storage failed) or 500 to answer.
async fn read_storage<T: Send + 'static>(
    st: &AppState,
    read: impl FnOnce(&dyn HubStorage) -> Result<T, StorageError> + Send + 'static,
) -> Result<T, Response> {
    let storage = st.storage.clone();
    match tokio::task::spawn_blocking(move || read(storage.as_ref())).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(error(StatusCode::SERVICE_UNAVAILABLE, "storage_failure", e)),
        Err(e) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e)),
    }
}
